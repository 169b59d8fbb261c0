//! Backing up directory trees.
//!
//! ```text
//!  walker (this thread)          readers (N)                finisher (1)
//!  readdir, lstat, compare  ──▶  open, chunk, hash,    ──▶  wait for a dir's
//!  with the parent tree          save blobs                 entries, save its
//!  ─────── one DirJob per directory, in post-order ──────▶  tree blob
//! ```
//!
//! The walker never waits for file contents: each directory becomes a job
//! holding its finished nodes and one-shot receivers for the pending ones.
//! Directories are queued in post-order, so when the finisher reaches a
//! directory every subdirectory has already been finished. All queues are
//! bounded. Unreadable entries are reported and left out; repository errors
//! stop the backup before any snapshot is written.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam_channel::{Receiver, Sender, bounded};
use holdfast_engine::repository::Repository;
use holdfast_engine::snapshot_builder::{SnapshotBuilder, StoreError};
use holdfast_engine::{EngineError, Result};
use holdfast_format::Id;
use holdfast_format::snapshot::{Snapshot, SnapshotSummary};
use holdfast_format::tree::{Node, NodeType, Tree};

use super::metadata::{node_from_stat, read_xattrs, read_xattrs_fd};

use crate::filter::PathMatcher;
use crate::progress::Progress;
use crate::spec::{BackupReport, BackupSettings};

pub struct DirBackupOptions {
    /// Files and directories to back up, as given (relative ones are made
    /// absolute against the current directory).
    pub paths: Vec<PathBuf>,
    pub excludes: PathMatcher,
    pub one_file_system: bool,
    /// Files read in parallel.
    pub readers: usize,
    /// The snapshot to compare with (unchanged files are not read again).
    pub parent: Option<(Id, Snapshot)>,
    /// Count the source first so progress can show totals and an ETA.
    pub scan: bool,
    /// A tenant's backup: every directory at or below this root is opened
    /// with [`holdfast_confine::confine`] (no symlink, no escape, checked by the
    /// kernel at each open), so a symlink swapped in while the walk runs
    /// cannot lead it outside. `None`: ordinary path opens.
    pub confine: Option<PathBuf>,
}

/// Make `p` absolute and remove `.` and `..` lexically, as restic does.
pub fn clean_absolute(p: &Path) -> io::Result<PathBuf> {
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()?.join(p)
    };
    let mut out = PathBuf::from("/");
    for c in abs.components() {
        match c {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
        }
    }
    Ok(out)
}

/// The backed-up paths, organised by component: intermediate directories
/// (recorded with their own metadata but only the listed children) and the
/// targets themselves (recorded whole).
enum Trie {
    Target,
    Inner(BTreeMap<Vec<u8>, Trie>),
}

fn build_trie(paths: &[PathBuf]) -> BTreeMap<Vec<u8>, Trie> {
    let mut root: BTreeMap<Vec<u8>, Trie> = BTreeMap::new();
    for p in paths {
        let parts: Vec<Vec<u8>> = p
            .components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n.as_bytes().to_vec()),
                _ => None,
            })
            .collect();
        let mut level = &mut root;
        for (i, part) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            let entry = level.entry(part.clone()).or_insert_with(|| {
                if last {
                    Trie::Target
                } else {
                    Trie::Inner(BTreeMap::new())
                }
            });
            if last {
                *entry = Trie::Target;
                break;
            }
            match entry {
                Trie::Target => break, // an ancestor is already backed up whole
                Trie::Inner(m) => level = m,
            }
        }
    }
    root
}

#[derive(Default)]
struct Counters {
    files_new: AtomicU64,
    files_changed: AtomicU64,
    files_unmodified: AtomicU64,
    dirs_new: AtomicU64,
    dirs_changed: AtomicU64,
    dirs_unmodified: AtomicU64,
    total_files: AtomicU64,
    total_bytes: AtomicU64,
}

fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

type DirOutcome = Result<Id>;

enum Slot {
    Ready(Node),
    File(Receiver<Option<Node>>),
    Dir(Node, Receiver<DirOutcome>),
}

struct DirJob {
    slots: Vec<Slot>,
    prev: Option<Id>,
    /// Count this directory in the summary (the virtual root is not).
    counted: bool,
    reply: Sender<DirOutcome>,
}

struct FileJob {
    /// The directory, open, so the file is opened without a path walk.
    dir: DirFd,
    path: PathBuf,
    node: Node,
    /// Extended attributes still to be read (from the open file).
    read_xattrs: bool,
    prev: Option<Node>,
    reply: Sender<Option<Node>>,
}

struct Ctx<'a> {
    repo: &'a Arc<Repository>,
    builder: &'a SnapshotBuilder,
    progress: &'a Progress,
    excludes: &'a PathMatcher,
    one_file_system: bool,
    counters: Counters,
    fatal: Mutex<Option<EngineError>>,
    confine: Option<PathBuf>,
}

impl Ctx<'_> {
    fn fail(&self, e: EngineError) {
        let mut f = self.fatal.lock().unwrap();
        if f.is_none() {
            *f = Some(e);
        }
    }

    fn failed(&self) -> bool {
        self.fatal.lock().unwrap().is_some()
    }

    fn item_error(&self, path: &Path, during: &'static str, e: impl std::fmt::Display) {
        self.progress
            .item_error(path.display().to_string(), during, e);
    }

    fn load_tree(&self, id: Option<Id>, path: &Path) -> Option<Tree> {
        let id = id?;
        match self.repo.load_tree(&id) {
            Ok(t) => Some(t),
            Err(e) => {
                self.item_error(
                    path,
                    "load parent tree",
                    format!("{e}; reading everything below it"),
                );
                None
            }
        }
    }
}

fn prev_node<'t>(tree: &'t Option<Tree>, name: &[u8]) -> Option<&'t Node> {
    let t = tree.as_ref()?;
    t.nodes
        .binary_search_by(|n| n.name.as_slice().cmp(name))
        .ok()
        .map(|i| &t.nodes[i])
}

fn snap_path(parent: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = parent.to_vec();
    p.push(b'/');
    p.extend_from_slice(name);
    p
}

struct Walker<'c, 'a> {
    ctx: &'c Ctx<'a>,
    files: Sender<FileJob>,
    dirs: Sender<DirJob>,
}

impl Walker<'_, '_> {
    fn queue_dir(&self, slots: Vec<Slot>, prev: Option<Id>, counted: bool) -> Receiver<DirOutcome> {
        let (tx, rx) = bounded(1);
        let job = DirJob {
            slots,
            prev,
            counted,
            reply: tx,
        };
        if let Err(e) = self.dirs.send(job) {
            let _ = e.into_inner().reply.send(Err(EngineError::Interrupted));
        }
        rx
    }

    /// The virtual levels above the targets.
    fn walk_trie(
        &self,
        dir: &Path,
        spath: &[u8],
        children: &BTreeMap<Vec<u8>, Trie>,
        prev_tree: Option<Id>,
        counted: bool,
    ) -> Receiver<DirOutcome> {
        let prev = self.ctx.load_tree(prev_tree, dir);
        let mut slots = Vec::new();
        // a virtual level is only a handle to look up the named children
        // from (never listed, never read): O_PATH, which needs no read
        // right on it (a job restricted to its source by Landlock may not
        // read `/`); below a confine root, confined like every directory
        let dirfd = match open_level(dir, self.ctx.confine.as_deref()) {
            Ok(fd) => Arc::new(fd),
            Err(e) => {
                self.ctx.item_error(dir, "open directory", e);
                return self.queue_dir(slots, prev_tree, counted);
            }
        };
        for (name, child) in children {
            let path = dir.join(std::ffi::OsStr::from_bytes(name));
            let sp = snap_path(spath, name);
            let old = prev_node(&prev, name).cloned();
            match child {
                // relative to the (possibly confined) open parent
                Trie::Target => match rustix::fs::statat(
                    &*dirfd,
                    name.as_slice(),
                    rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
                ) {
                    Ok(st) => {
                        if let Some(s) = self.entry(&dirfd, &path, &sp, name, &st, old, st.st_dev) {
                            slots.push(s);
                        }
                    }
                    Err(e) => self.ctx.item_error(&path, "lstat", io::Error::from(e)),
                },
                Trie::Inner(grand) => {
                    // An intermediate directory: follow a symlink here, the
                    // user named a path through it.
                    let st = match rustix::fs::stat(&path) {
                        Ok(st) => st,
                        Err(e) => {
                            self.ctx.item_error(&path, "stat", io::Error::from(e));
                            continue;
                        }
                    };
                    let mut node = node_from_stat(name, &st);
                    node.node_type = NodeType::Dir;
                    let sub = old
                        .filter(|o| o.node_type == NodeType::Dir)
                        .and_then(|o| o.subtree);
                    let rx = self.walk_trie(&path, &sp, grand, sub, true);
                    slots.push(Slot::Dir(node, rx));
                }
            }
        }
        self.queue_dir(slots, prev_tree, counted)
    }

    /// A whole directory below a target.
    fn walk_dir(
        &self,
        dir: &Path,
        spath: &[u8],
        prev_tree: Option<Id>,
        dev: u64,
    ) -> Receiver<DirOutcome> {
        let prev = self.ctx.load_tree(prev_tree, dir);
        let mut slots = Vec::new();
        // Entries are examined relative to a descriptor of the directory:
        // one path walk per directory, not one per entry.
        let (dirfd, mut names) = match list_dir(dir, self.ctx.confine.as_deref()) {
            Ok((fd, names)) => (Some(fd), names),
            Err(e) => {
                self.ctx.item_error(dir, "readdir", e);
                (None, Vec::new())
            }
        };
        names.sort();
        for name in names {
            if holdfast_engine::cancel::check().is_err() {
                self.ctx.fail(EngineError::Interrupted);
            }
            if self.ctx.failed() {
                break;
            }
            let path = dir.join(std::ffi::OsStr::from_bytes(&name));
            let sp = snap_path(spath, &name);
            if self.ctx.excludes.matches_exact(&sp) {
                continue;
            }
            let Some(fd) = &dirfd else { break };
            let st = match rustix::fs::statat(
                fd,
                name.as_slice(),
                rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
            ) {
                Ok(st) => st,
                Err(e) => {
                    self.ctx.item_error(&path, "lstat", io::Error::from(e));
                    continue;
                }
            };
            let old = prev_node(&prev, &name).cloned();
            if let Some(s) = self.entry(fd, &path, &sp, &name, &st, old, dev) {
                slots.push(s);
            }
        }
        self.ctx.progress.dirs_done.fetch_add(1, Ordering::Relaxed);
        self.queue_dir(slots, prev_tree, true)
    }

    #[allow(clippy::too_many_arguments)]
    fn entry(
        &self,
        dirfd: &DirFd,
        path: &Path,
        sp: &[u8],
        name: &[u8],
        st: &rustix::fs::Stat,
        old: Option<Node>,
        dev: u64,
    ) -> Option<Slot> {
        let mut node = node_from_stat(name, st);
        // Extended attributes and link targets change only together with
        // the ctime: an entry with the parent's inode and ctime keeps them.
        let same_inode = old.as_ref().is_some_and(|o| {
            o.node_type == node.node_type && o.inode == node.inode && o.ctime == node.ctime
        });
        // (a regular file's are read from the open file by the reader)
        let file_reads_xattrs = !same_inode && node.node_type == NodeType::File;
        if same_inode {
            let o = old.as_ref().expect("checked above");
            node.extended_attributes = o.extended_attributes.clone();
        } else if !file_reads_xattrs {
            match read_xattrs(path) {
                Ok(x) => node.extended_attributes = x,
                Err(e) => self.ctx.item_error(path, "read extended attributes", e),
            }
        }
        match node.node_type {
            NodeType::Dir => {
                if self.ctx.one_file_system && st.st_dev != dev {
                    // A mount point: recorded, its contents are not.
                    let rx = self.queue_dir(Vec::new(), None, true);
                    return Some(Slot::Dir(node, rx));
                }
                let sub = old
                    .filter(|o| o.node_type == NodeType::Dir)
                    .and_then(|o| o.subtree);
                let rx = self.walk_dir(path, sp, sub, dev);
                Some(Slot::Dir(node, rx))
            }
            NodeType::File => {
                inc(&self.ctx.counters.total_files);
                self.ctx
                    .counters
                    .total_bytes
                    .fetch_add(node.size, Ordering::Relaxed);
                if let Some(o) = &old
                    && unchanged(o, &node)
                    && o.content
                        .as_ref()
                        .is_some_and(|c| c.iter().all(|id| self.ctx.builder.known(id)))
                {
                    node.content = o.content.clone();
                    inc(&self.ctx.counters.files_unmodified);
                    self.ctx.progress.add_bytes(node.size);
                    self.ctx.progress.file_done();
                    return Some(Slot::Ready(node));
                }
                let (tx, rx) = bounded(1);
                let job = FileJob {
                    dir: dirfd.clone(),
                    path: path.to_path_buf(),
                    node,
                    read_xattrs: file_reads_xattrs,
                    prev: old,
                    reply: tx,
                };
                if self.files.send(job).is_err() {
                    return None;
                }
                Some(Slot::File(rx))
            }
            NodeType::Symlink if same_inode => {
                let o = old.as_ref().expect("same_inode implies a parent node");
                node.linktarget = o.linktarget.clone();
                node.linktarget_raw = o.linktarget_raw.clone();
                Some(Slot::Ready(node))
            }
            NodeType::Symlink => match fs::read_link(path) {
                Ok(t) => {
                    node.set_link_target(t.as_os_str().as_bytes());
                    Some(Slot::Ready(node))
                }
                Err(e) => {
                    self.ctx.item_error(path, "readlink", e);
                    None
                }
            },
            _ => Some(Slot::Ready(node)),
        }
    }
}

/// Open a directory, not following a symlink in its last component; at or
/// below `confine`, not following one anywhere below the root either.
/// Levels above the root (the virtual directories leading to it) are the
/// admin's and opened as usual.
fn open_dir(dir: &Path, confine: Option<&Path>) -> io::Result<std::os::fd::OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    if let Some(c) = confine.and_then(|root| holdfast_confine::confine::Confined::new(root, dir)) {
        return c.open(OFlags::RDONLY | OFlags::DIRECTORY);
    }
    Ok(rustix::fs::open(dir, flags, Mode::empty())?)
}

/// A virtual level above the targets: `O_PATH` (see `walk_trie`).
fn open_level(dir: &Path, confine: Option<&Path>) -> io::Result<std::os::fd::OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    if let Some(c) = confine.and_then(|root| holdfast_confine::confine::Confined::new(root, dir)) {
        return c.open(OFlags::PATH | OFlags::DIRECTORY);
    }
    Ok(rustix::fs::open(
        dir,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Open a directory (not following a symlink) and list its entry names.
fn list_dir(dir: &Path, confine: Option<&Path>) -> io::Result<(DirFd, Vec<Vec<u8>>)> {
    let fd = open_dir(dir, confine)?;
    let names = super::fd::list_dir(&fd)?;
    Ok((Arc::new(fd), names))
}

/// An open directory shared by the jobs reading its files.
type DirFd = Arc<std::os::fd::OwnedFd>;

/// restic's change detection: same type, size, mtime, ctime and inode.
fn unchanged(old: &Node, new: &Node) -> bool {
    old.node_type == NodeType::File
        && old.size == new.size
        && old.mtime == new.mtime
        && old.ctime == new.ctime
        && old.inode == new.inode
}

fn read_file(ctx: &Ctx, job: FileJob, buf: &mut Vec<u8>) -> Option<Node> {
    let FileJob {
        dir,
        path,
        mut node,
        read_xattrs,
        prev,
        ..
    } = job;
    let f = match super::fd::open_for_reading(&dir, &node.name) {
        Ok(f) => f,
        Err(e) => {
            ctx.item_error(&path, "open", e);
            return None;
        }
    };
    match rustix::fs::fstat(&f) {
        Ok(st) if st.st_mode & 0o170000 == 0o100000 => {
            if st.st_ino != node.inode || st.st_size as u64 != node.size {
                // replaced or changed since lstat: describe what we read
                let x = std::mem::take(&mut node.extended_attributes);
                node = node_from_stat(&node.name, &st);
                node.extended_attributes = x;
            }
        }
        Ok(_) => {
            ctx.item_error(&path, "open", "no longer a regular file");
            return None;
        }
        Err(e) => {
            ctx.item_error(&path, "fstat", io::Error::from(e));
            return None;
        }
    }
    drop(dir);
    if read_xattrs {
        match read_xattrs_fd(&f) {
            Ok(x) => node.extended_attributes = x,
            Err(e) => ctx.item_error(&path, "read extended attributes", e),
        }
    }
    ctx.progress.set_current(Some(path.display().to_string()));
    // Read what the file held when it was examined: no extra read to find
    // the end (a file that grows meanwhile is caught by the next backup).
    let reader = io::Read::take(f, node.size);
    let stored = ctx.builder.store(reader, buf, |chunk| {
        if ctx.failed() {
            return Err(EngineError::Interrupted);
        }
        ctx.progress.add_bytes(chunk.len() as u64);
        Ok(())
    });
    let content = match stored {
        Ok(s) => {
            node.size = s.size;
            s.content
        }
        Err(StoreError::Read(e)) => {
            ctx.item_error(&path, "read", e);
            return None;
        }
        Err(StoreError::Stop(e)) => {
            ctx.fail(e);
            return None;
        }
    };
    let same = prev
        .as_ref()
        .is_some_and(|p| p.content.as_deref() == Some(content.as_slice()));
    node.content = Some(content);
    match (&prev, same) {
        (None, _) => inc(&ctx.counters.files_new),
        (Some(_), true) => inc(&ctx.counters.files_unmodified),
        (Some(_), false) => inc(&ctx.counters.files_changed),
    }
    ctx.progress.file_done();
    Some(node)
}

fn finish_dir(ctx: &Ctx, job: DirJob) -> DirOutcome {
    let mut nodes = Vec::with_capacity(job.slots.len());
    for slot in job.slots {
        match slot {
            Slot::Ready(n) => nodes.push(n),
            Slot::File(rx) => {
                if let Ok(Some(n)) = rx.recv() {
                    nodes.push(n);
                }
            }
            Slot::Dir(mut n, rx) => match rx.recv() {
                Ok(Ok(id)) => {
                    n.subtree = Some(id);
                    nodes.push(n);
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(EngineError::Interrupted),
            },
        }
    }
    let mut tree = Tree { nodes };
    tree.sort();
    let id = ctx.builder.save_tree(&tree)?;
    if job.counted {
        let c = &ctx.counters;
        match job.prev {
            None => inc(&c.dirs_new),
            Some(p) if p == id => inc(&c.dirs_unmodified),
            Some(_) => inc(&c.dirs_changed),
        }
    }
    Ok(id)
}

/// Count files and bytes below `paths` for progress totals.
fn scan(paths: &[PathBuf], excludes: &PathMatcher, progress: &Progress, stop: &dyn Fn() -> bool) {
    let mut stack: Vec<PathBuf> = paths.to_vec();
    while let Some(p) = stack.pop() {
        if stop() {
            return;
        }
        let Ok(md) = fs::symlink_metadata(&p) else {
            continue;
        };
        if md.is_file() {
            progress.total_files.fetch_add(1, Ordering::Relaxed);
            progress.total_bytes.fetch_add(md.size(), Ordering::Relaxed);
        } else if md.is_dir()
            && let Ok(rd) = fs::read_dir(&p)
        {
            for e in rd.flatten() {
                let child = e.path();
                if !excludes.matches_exact(child.as_os_str().as_bytes()) {
                    stack.push(child);
                }
            }
        }
    }
    progress
        .scan_finished
        .store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Back up `opts.paths` into `repo`.
pub fn backup_dirs(
    repo: &Arc<Repository>,
    opts: DirBackupOptions,
    settings: BackupSettings,
    progress: &Progress,
) -> Result<BackupReport> {
    let mut targets = Vec::new();
    for p in &opts.paths {
        let abs = clean_absolute(p).map_err(|e| EngineError::io("current directory", e))?;
        match fs::symlink_metadata(&abs) {
            Ok(_) => targets.push(abs),
            Err(e) => progress.item_error(abs.display().to_string(), "lstat", e),
        }
    }
    if targets.is_empty() {
        return Err(EngineError::Invalid(
            "none of the source paths exist; nothing to back up".into(),
        ));
    }
    targets.sort();
    targets.dedup();
    // A path inside another target adds nothing: it is backed up whole
    // with its ancestor (and the snapshot's path list stays canonical).
    let all = targets.clone();
    targets.retain(|t| !all.iter().any(|o| o != t && t.starts_with(o)));
    let trie = build_trie(&targets);
    let builder =
        SnapshotBuilder::start(repo, settings.chunker, &settings.saver, settings.dry_run)?;
    let (parent_id, parent_tree) = match &opts.parent {
        Some((id, s)) => (Some(*id), Some(s.tree)),
        None => (None, None),
    };
    let ctx = Ctx {
        repo,
        builder: &builder,
        progress,
        excludes: &opts.excludes,
        one_file_system: opts.one_file_system,
        counters: Counters::default(),
        fatal: Mutex::new(None),
        confine: opts.confine.clone(),
    };
    let readers = opts.readers.max(1);
    // the readers and the finisher belong to the caller's job: cancelling it
    // (a service timeout) stops them at their next file or chunk
    let job = &holdfast_engine::cancel::JobScope::current();
    let root = std::thread::scope(|s| -> DirOutcome {
        let (file_tx, file_rx) = bounded::<FileJob>(readers * 8);
        let (dir_tx, dir_rx) = bounded::<DirJob>(256);
        let ctx = &ctx;
        if opts.scan {
            let t = &targets;
            let ex = &opts.excludes;
            s.spawn(move || job.enter(|| scan(t, ex, progress, &|| ctx.failed())));
        }
        for _ in 0..readers {
            let rx = file_rx.clone();
            s.spawn(move || {
                job.enter(|| {
                    // one chunker buffer per reader, reused for every file
                    let mut buf = Vec::new();
                    for job in rx {
                        let reply = job.reply.clone();
                        let r = if ctx.failed() {
                            None
                        } else {
                            read_file(ctx, job, &mut buf)
                        };
                        let _ = reply.send(r);
                    }
                })
            });
        }
        drop(file_rx);
        let finisher = s.spawn(move || {
            job.enter(|| {
                for job in dir_rx {
                    let reply = job.reply.clone();
                    let r = if ctx.failed() {
                        Err(EngineError::Interrupted)
                    } else {
                        // The first real error is kept for the caller; parents
                        // waiting on this directory only learn it stopped.
                        finish_dir(ctx, job).map_err(|e| {
                            ctx.fail(e);
                            EngineError::Interrupted
                        })
                    };
                    let _ = reply.send(r);
                }
            })
        });
        let walker = Walker {
            ctx,
            files: file_tx,
            dirs: dir_tx,
        };
        let rx = walker.walk_trie(Path::new("/"), b"", &trie, parent_tree, false);
        drop(walker);
        let r = rx.recv().unwrap_or(Err(EngineError::Interrupted));
        let _ = finisher.join();
        r
    });
    if let Some(e) = ctx.fatal.lock().unwrap().take() {
        return Err(e);
    }
    let root = root?;
    let c = &ctx.counters;
    let summary = SnapshotSummary {
        files_new: c.files_new.load(Ordering::Relaxed),
        files_changed: c.files_changed.load(Ordering::Relaxed),
        files_unmodified: c.files_unmodified.load(Ordering::Relaxed),
        dirs_new: c.dirs_new.load(Ordering::Relaxed),
        dirs_changed: c.dirs_changed.load(Ordering::Relaxed),
        dirs_unmodified: c.dirs_unmodified.load(Ordering::Relaxed),
        total_files_processed: c.total_files.load(Ordering::Relaxed),
        total_bytes_processed: c.total_bytes.load(Ordering::Relaxed),
        ..Default::default()
    };
    let mut meta = settings.meta;
    meta.paths = targets
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    meta.parent = parent_id;
    meta.excludes = opts.excludes.patterns();
    let (snapshot_id, snapshot, _) = builder.commit(root, meta, summary)?;
    Ok(BackupReport {
        unreadable: progress.errors(),
        ..BackupReport::new(snapshot_id, snapshot)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_paths() {
        assert_eq!(
            clean_absolute(Path::new("/a/./b/../c")).unwrap(),
            PathBuf::from("/a/c")
        );
        assert_eq!(
            clean_absolute(Path::new("/../..")).unwrap(),
            PathBuf::from("/")
        );
    }

    #[test]
    fn a_fifo_swapped_in_for_a_file_does_not_block_the_reader() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("was-a-file");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
            0,
        )
        .unwrap();
        let dir = open_dir(d.path(), None).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let f = crate::dir::fd::open_for_reading(&dir, b"was-a-file");
            let _ = tx.send(f.map(|f| rustix::fs::fstat(&f).unwrap().st_mode & 0o170000));
        });
        // without O_NONBLOCK the open waits for a writer forever
        let mode = rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("the open returned")
            .unwrap();
        assert_eq!(mode, 0o010000, "seen as a FIFO, not read");
    }

    #[test]
    fn trie_merges_nested_targets() {
        let t = build_trie(&[
            PathBuf::from("/a/b"),
            PathBuf::from("/a/b/c"),
            PathBuf::from("/a/d"),
        ]);
        let Trie::Inner(a) = &t[&b"a".to_vec()] else {
            panic!()
        };
        assert!(matches!(a[&b"b".to_vec()], Trie::Target));
        assert!(matches!(a[&b"d".to_vec()], Trie::Target));
    }
}
