//! Restoring a snapshot into a directory.
//!
//! Safety is structural: every entry is created with a `*at` system call
//! relative to an open descriptor of its parent directory, with a single,
//! validated name component (never empty, `.`, `..`, or containing `/` or
//! NUL), and without following symlinks (`O_NOFOLLOW`, `AT_SYMLINK_NOFOLLOW`).
//! Directories are entered only through descriptors opened with
//! `O_DIRECTORY | O_NOFOLLOW`, so a symlink — restored from a hostile
//! snapshot or already present in the target — can never redirect a later
//! write outside the target. Duplicate names in a tree are refused.
//!
//! The walker performs every namespace operation (mkdir, create, symlink,
//! mknod, link, unlink) itself, in tree order; worker threads only fill
//! already-created files and set their metadata. (Creating files from the
//! workers was measured to be much slower: creates in one directory are
//! serialised by its lock anyway, and on ext4 after mass deletions, when
//! each create scans for an inode not recently freed, the waiting workers
//! spun on that lock and took the CPU from the one creating — 20–30 s of
//! system time for the benchmark's 52 k files instead of 3–4.) A directory's own metadata
//! (owner, mode, times) is therefore applied once its subtree is walked,
//! after which nothing creates entries in it again.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_channel::bounded;
use holdfast_engine::repository::Repository;
use holdfast_engine::{EngineError, Result};
use holdfast_format::gotime::GoTime;
use holdfast_format::tree::{Node, NodeType};
use holdfast_format::{BlobType, Id};
use rustix::fs::{AtFlags, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;

use crate::filter::PathMatcher;
use crate::progress::{ItemError, Progress};

pub struct RestoreOptions {
    pub target: PathBuf,
    pub includes: PathMatcher,
    pub excludes: PathMatcher,
    /// Remove entries of the target that the snapshot does not have.
    pub delete: bool,
    /// Report what would change; change nothing.
    pub dry_run: bool,
    /// Threads writing file contents.
    pub workers: usize,
    /// Leave all-zero blobs as holes.
    pub sparse: bool,
    /// A tenant's restore: `target` lies beneath this root and is created
    /// and opened through [`crate::confine`] (no symlink in any component
    /// below the root, no escape); everything below the target is reached
    /// with `*at` calls from its descriptor as always.
    pub confine: Option<PathBuf>,
}

/// What the restore did (or, with `dry_run`, would do) to one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Created because it did not exist.
    Create(String),
    /// Existed with different content or type, rewritten.
    Update(String),
    /// Existed with identical content; only metadata was set.
    Unchanged(String),
    /// Removed (with `delete`).
    Delete(String),
}

#[derive(Debug, Default)]
pub struct RestoreSummary {
    pub files_restored: u64,
    pub files_unchanged: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub hardlinks: u64,
    pub special: u64,
    pub deleted: u64,
    pub bytes_written: u64,
    /// Device nodes not created because the restore does not run as root.
    pub skipped_devices: u64,
    pub errors: u64,
}

pub type ActionSink<'a> = &'a (dyn Fn(Action) + Sync);

#[derive(Default)]
struct Counters {
    files_restored: AtomicU64,
    files_unchanged: AtomicU64,
    dirs: AtomicU64,
    symlinks: AtomicU64,
    hardlinks: AtomicU64,
    special: AtomicU64,
    deleted: AtomicU64,
    bytes_written: AtomicU64,
    skipped_devices: AtomicU64,
}

/// A name is safe to create in a directory: one component, nothing that
/// resolves elsewhere.
pub fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.contains(&b'/') && !name.contains(&0)
}

fn lossy(p: &[u8]) -> String {
    String::from_utf8_lossy(p).into_owned()
}

fn errno(e: Errno) -> io::Error {
    io::Error::from(e)
}

fn ts(t: &GoTime) -> Timespec {
    Timespec {
        tv_sec: t.secs,
        tv_nsec: t.nanos as _,
    }
}

fn stat_at(dir: &OwnedFd, name: &[u8]) -> io::Result<Option<rustix::fs::Stat>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(s) => Ok(Some(s)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(errno(e)),
    }
}

fn file_type_bits(st: &rustix::fs::Stat) -> u32 {
    st.st_mode & 0o170000
}

fn open_dir_at(dir: &OwnedFd, name: &[u8]) -> io::Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno)
}

/// Remove `name` from `dir`, recursively if it is a directory, never
/// following symlinks.
pub fn remove_at(dir: &OwnedFd, name: &[u8], depth: usize) -> io::Result<()> {
    let Some(st) = stat_at(dir, name)? else {
        return Ok(());
    };
    if file_type_bits(&st) == 0o040000 {
        if depth > holdfast_engine::tree_walk::MAX_DEPTH {
            return Err(io::Error::other("directory tree too deep to remove"));
        }
        let sub = open_dir_at(dir, name)?;
        for child in list_dir(&sub)? {
            remove_at(&sub, &child, depth + 1)?;
        }
        rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR).map_err(errno)
    } else {
        rustix::fs::unlinkat(dir, name, AtFlags::empty()).map_err(errno)
    }
}

fn list_dir(dir: &OwnedFd) -> io::Result<Vec<Vec<u8>>> {
    let dup = rustix::io::dup(dir).map_err(errno)?;
    let mut d = rustix::fs::Dir::read_from(&dup).map_err(errno)?;
    let mut out = Vec::new();
    while let Some(e) = d.read() {
        let e = e.map_err(errno)?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            out.push(n.to_vec());
        }
    }
    Ok(out)
}

/// Open `rel` (components below `root`) as a directory without following
/// any symlink and without leaving `root`.
fn open_beneath(root: &OwnedFd, rel: &[Vec<u8>]) -> io::Result<OwnedFd> {
    let mut cur = rustix::io::dup(root).map_err(errno)?;
    for c in rel {
        cur = open_dir_at(&cur, c)?;
    }
    Ok(cur)
}

/// What a worker does with one regular file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileAction {
    /// Same size and modification time: only set metadata.
    MetaOnly,
    /// Same size: compare content, rewrite only if it differs.
    Compare,
    /// Create (or truncate and rewrite) the file.
    Write,
}

/// A path below the restore target, as its components.
type RelPath = Vec<Vec<u8>>;

struct FileJob {
    dir: Arc<OwnedFd>,
    /// The directory makes new entries inherit its group (setgid bit).
    parent_setgid: bool,
    name: Vec<u8>,
    node: Node,
    path: String,
    action: FileAction,
    existed: bool,
    /// For [`FileAction::Write`]: the file, created (or opened to be
    /// rewritten) by the walker.
    file: Option<File>,
}

struct Walk<'a> {
    repo: &'a Repository,
    opts: &'a RestoreOptions,
    on_action: ActionSink<'a>,
    counters: &'a Counters,
    root: OwnedFd,
    /// Closed (set to `None`) when the walk is done.
    jobs: Option<crossbeam_channel::Sender<FileJob>>,
    meta: &'a MetaSetter<'a>,
    /// (device, inode) of hardlinked files already restored → their path.
    links: HashMap<(u64, u64), Vec<Vec<u8>>>,
    /// Further names of hard-linked files: (name, first name), created once
    /// the workers have created every file.
    pending_links: Vec<(RelPath, RelPath)>,
    /// Directories' metadata, applied children first after everything else.
    dir_meta: Vec<(RelPath, Node)>,
    last_dir_setgid: Option<(usize, bool)>,
    am_root: bool,
}

/// A directory on the walk: opened (or, while includes have not selected
/// anything in it yet, still to be created).
struct DirCursor<'p> {
    /// `Some(None)`: does not exist and a dry run will not create it.
    fd: std::cell::OnceCell<Option<Arc<OwnedFd>>>,
    parent: Option<&'p DirCursor<'p>>,
    /// Components below the target.
    rel: Vec<Vec<u8>>,
    existed: std::cell::Cell<bool>,
}

impl Walk<'_> {
    fn error(&self, path: &[u8], during: &'static str, e: impl std::fmt::Display) {
        self.meta.error(path, during, e)
    }

    /// The descriptor of `dir`, creating it (and its pending parents) first;
    /// `None` in a dry run for a directory that does not exist yet.
    fn materialize(&self, dir: &DirCursor) -> io::Result<Option<Arc<OwnedFd>>> {
        if let Some(fd) = dir.fd.get() {
            return Ok(fd.clone());
        }
        let parent = dir.parent.expect("the root cursor is always materialized");
        let fd = match self.materialize(parent)? {
            None => {
                (self.on_action)(Action::Create(display_rel(&dir.rel)));
                None
            }
            Some(pfd) => {
                let name = dir.rel.last().expect("non-root cursors have a name");
                self.ensure_dir(&pfd, name, &dir.rel, &dir.existed)?
                    .map(Arc::new)
            }
        };
        let _ = dir.fd.set(fd.clone());
        Ok(fd)
    }

    fn ensure_dir(
        &self,
        parent: &OwnedFd,
        name: &[u8],
        rel: &[Vec<u8>],
        existed: &std::cell::Cell<bool>,
    ) -> io::Result<Option<OwnedFd>> {
        let display = display_rel(rel);
        match stat_at(parent, name)? {
            Some(st) if file_type_bits(&st) == 0o040000 => {
                existed.set(true);
            }
            Some(_) => {
                (self.on_action)(Action::Update(display));
                if self.opts.dry_run {
                    return Ok(None);
                }
                remove_at(parent, name, 0)?;
                rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o700)).map_err(errno)?;
            }
            None => {
                (self.on_action)(Action::Create(display));
                if self.opts.dry_run {
                    return Ok(None);
                }
                rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o700)).map_err(errno)?;
            }
        }
        self.counters.dirs.fetch_add(1, Ordering::Relaxed);
        open_dir_at(parent, name).map(Some)
    }

    fn walk_tree(
        &mut self,
        tree: &Id,
        dir: &DirCursor,
        selected: bool,
        depth: usize,
    ) -> Result<()> {
        if depth > holdfast_engine::tree_walk::MAX_DEPTH {
            return Err(EngineError::corrupt(
                format!("tree {tree}"),
                "nested too deep",
            ));
        }
        let t = self.repo.load_tree(tree)?;
        let mut seen: HashSet<&[u8]> = HashSet::new();
        for node in &t.nodes {
            holdfast_engine::cancel::check()?;
            let mut rel = dir.rel.clone();
            rel.push(node.name.clone());
            let spath = snapshot_path(&rel);
            if !valid_name(&node.name) {
                self.error(
                    &spath,
                    "restore",
                    "refusing an entry whose name is empty, '.', '..' or contains '/' or NUL",
                );
                continue;
            }
            if !seen.insert(&node.name) {
                self.error(
                    &spath,
                    "restore",
                    "refusing a second entry with the same name in one directory",
                );
                continue;
            }
            if self.opts.excludes.matches_exact(&spath) {
                continue;
            }
            let sel = selected || self.opts.includes.matches_exact(&spath);
            if node.node_type == NodeType::Dir {
                let child = DirCursor {
                    fd: std::cell::OnceCell::new(),
                    parent: Some(dir),
                    rel,
                    existed: std::cell::Cell::new(false),
                };
                if sel && let Err(e) = self.materialize(&child) {
                    self.error(&spath, "create directory", e);
                    continue;
                }
                match node.subtree {
                    Some(sub) => self.walk_tree(&sub, &child, sel, depth + 1)?,
                    None => self.error(&spath, "restore", "directory without a subtree"),
                }
                if let Some(Some(fd)) = child.fd.get() {
                    self.finish_dir(fd, node, &child, &spath);
                }
                continue;
            }
            if !sel {
                continue;
            }
            let dfd = match self.materialize(dir) {
                Ok(Some(fd)) => fd,
                Ok(None) => {
                    // dry run below a directory that does not exist yet
                    (self.on_action)(Action::Create(lossy(&spath)));
                    continue;
                }
                Err(e) => {
                    self.error(&spath, "create directory", e);
                    continue;
                }
            };
            if let Err(e) = self.restore_entry(&dfd, node, &rel, &spath) {
                self.error(&spath, "restore", e);
            }
        }
        Ok(())
    }

    /// After a directory's subtree: delete extras; its metadata is set at
    /// the end, once workers no longer create entries in it.
    fn finish_dir(&mut self, fd: &Arc<OwnedFd>, node: &Node, cursor: &DirCursor, spath: &[u8]) {
        if self.opts.delete
            && cursor.existed.get()
            && let Some(sub) = node.subtree
        {
            self.delete_extras(fd, &sub, spath);
        }
        if !self.opts.dry_run {
            self.dir_meta.push((cursor.rel.clone(), node.clone()));
        }
    }

    fn delete_extras(&self, fd: &OwnedFd, tree: &Id, spath: &[u8]) {
        let Ok(t) = self.repo.load_tree(tree) else {
            return;
        };
        let keep: HashSet<&[u8]> = t.nodes.iter().map(|n| n.name.as_slice()).collect();
        let existing = match list_dir(fd) {
            Ok(v) => v,
            Err(e) => {
                self.error(spath, "list for --delete", e);
                return;
            }
        };
        for name in existing {
            if keep.contains(name.as_slice()) {
                continue;
            }
            let mut p = spath.to_vec();
            p.push(b'/');
            p.extend_from_slice(&name);
            if self.opts.excludes.matches_exact(&p) {
                continue;
            }
            (self.on_action)(Action::Delete(lossy(&p)));
            self.counters.deleted.fetch_add(1, Ordering::Relaxed);
            if !self.opts.dry_run
                && let Err(e) = remove_at(fd, &name, 0)
            {
                self.error(&p, "delete", e);
            }
        }
    }

    /// Owner, xattrs and times of a symlink, fifo or device (no chmod on
    /// symlinks: Linux has none).
    fn set_meta_at(&self, dir: &OwnedFd, name: &[u8], node: &Node, spath: &[u8]) {
        let r = rustix::fs::chownat(
            dir,
            name,
            Some(rustix::fs::Uid::from_raw(node.uid)),
            Some(rustix::fs::Gid::from_raw(node.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        );
        if let Err(e) = r
            && self.am_root
        {
            self.error(spath, "chown", errno(e));
        }
        if node.node_type != NodeType::Symlink
            && let Err(e) = rustix::fs::chmodat(
                dir,
                name,
                Mode::from_raw_mode(node.unix_perm()),
                AtFlags::empty(),
            )
        {
            self.error(spath, "chmod", errno(e));
        }
        if !node.extended_attributes.is_empty() {
            let proc_path = format!("/proc/self/fd/{}/", std::os::fd::AsRawFd::as_raw_fd(dir));
            let mut p = proc_path.into_bytes();
            p.extend_from_slice(name);
            self.meta.set_xattrs(node, spath, |name, value| {
                match rustix::fs::lsetxattr(
                    p.as_slice(),
                    name,
                    value,
                    rustix::fs::XattrFlags::empty(),
                ) {
                    // symlinks take no user.* attributes on Linux
                    Err(Errno::PERM) => Ok(()),
                    r => r,
                }
            });
        }
        let times = Timestamps {
            last_access: ts(&node.atime),
            last_modification: ts(&node.mtime),
        };
        if let Err(e) = rustix::fs::utimensat(dir, name, &times, AtFlags::SYMLINK_NOFOLLOW) {
            self.error(spath, "set times", errno(e));
        }
    }

    fn restore_entry(
        &mut self,
        dir: &Arc<OwnedFd>,
        node: &Node,
        rel: &[Vec<u8>],
        spath: &[u8],
    ) -> io::Result<()> {
        let name = node.name.as_slice();
        let display = lossy(spath);
        let existing = stat_at(dir, name)?;
        match node.node_type {
            NodeType::File => {
                // Hard links: the second and later names link to the first,
                // once every file exists.
                let key = (node.device_id, node.inode);
                if node.links > 1 && node.inode != 0 {
                    if let Some(first) = self.links.get(&key).cloned() {
                        self.pending_links.push((rel.to_vec(), first));
                        return Ok(());
                    }
                    self.links.insert(key, rel.to_vec());
                }
                let regular = existing
                    .as_ref()
                    .is_some_and(|st| file_type_bits(st) == 0o100000);
                let same_size = regular
                    && existing
                        .as_ref()
                        .is_some_and(|st| st.st_size as u64 == node.size);
                let action = match &existing {
                    Some(st)
                        if same_size
                            && st.st_mtime == node.mtime.secs
                            && st.st_mtime_nsec as u32 == node.mtime.nanos =>
                    {
                        FileAction::MetaOnly
                    }
                    _ if same_size => FileAction::Compare,
                    _ => FileAction::Write,
                };
                if existing.is_some() && !regular && !self.opts.dry_run {
                    remove_at(dir, name, 0)?;
                }
                let parent_setgid = self.setgid_dir(dir);
                // a new file is created with its final permission bits: one
                // chmod fewer
                let file = match action {
                    FileAction::Write if !self.opts.dry_run => {
                        match rustix::fs::openat(
                            dir.as_ref(),
                            name,
                            OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                            Mode::from_raw_mode(node.unix_perm() & 0o777),
                        ) {
                            Ok(fd) => Some(File::from(fd)),
                            Err(e) => {
                                self.error(spath, "create", errno(e));
                                return Ok(());
                            }
                        }
                    }
                    _ => None,
                };
                let job = FileJob {
                    dir: dir.clone(),
                    parent_setgid,
                    name: name.to_vec(),
                    node: node.clone(),
                    path: display,
                    action,
                    existed: existing.is_some(),
                    file,
                };
                let sent = self.jobs.as_ref().map(|j| j.send(job).is_ok());
                if sent != Some(true) {
                    return Err(io::Error::other("restore workers stopped"));
                }
                Ok(())
            }
            NodeType::Symlink => {
                let target = node.link_target();
                if let Some(st) = &existing {
                    if file_type_bits(st) == 0o120000
                        && rustix::fs::readlinkat(dir, name, Vec::new())
                            .map(|t| t.as_bytes() == target.as_slice())
                            .unwrap_or(false)
                    {
                        (self.on_action)(Action::Unchanged(display));
                        if !self.opts.dry_run {
                            self.set_meta_at(dir, name, node, spath);
                        }
                        return Ok(());
                    }
                    (self.on_action)(Action::Update(display));
                    if self.opts.dry_run {
                        return Ok(());
                    }
                    remove_at(dir, name, 0)?;
                } else {
                    (self.on_action)(Action::Create(display));
                    if self.opts.dry_run {
                        return Ok(());
                    }
                }
                rustix::fs::symlinkat(target.as_slice(), dir, name).map_err(errno)?;
                self.counters.symlinks.fetch_add(1, Ordering::Relaxed);
                self.set_meta_at(dir, name, node, spath);
                Ok(())
            }
            NodeType::Fifo | NodeType::Dev | NodeType::Chardev => {
                if node.node_type != NodeType::Fifo && !self.am_root {
                    // Creating device nodes needs root; not an error.
                    self.counters
                        .skipped_devices
                        .fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                let want = match node.node_type {
                    NodeType::Fifo => 0o010000,
                    NodeType::Dev => 0o060000,
                    _ => 0o020000,
                };
                if let Some(st) = &existing
                    && file_type_bits(st) == want
                    && (node.node_type == NodeType::Fifo || st.st_rdev == node.device)
                {
                    (self.on_action)(Action::Unchanged(display));
                    if !self.opts.dry_run {
                        self.set_meta_at(dir, name, node, spath);
                    }
                    return Ok(());
                }
                (self.on_action)(if existing.is_some() {
                    Action::Update(display)
                } else {
                    Action::Create(display)
                });
                if self.opts.dry_run {
                    return Ok(());
                }
                if existing.is_some() {
                    remove_at(dir, name, 0)?;
                }
                let ft = match node.node_type {
                    NodeType::Fifo => rustix::fs::FileType::Fifo,
                    NodeType::Dev => rustix::fs::FileType::BlockDevice,
                    _ => rustix::fs::FileType::CharacterDevice,
                };
                rustix::fs::mknodat(dir, name, ft, Mode::from_raw_mode(0o600), node.device as _)
                    .map_err(errno)?;
                self.counters.special.fetch_add(1, Ordering::Relaxed);
                self.set_meta_at(dir, name, node, spath);
                Ok(())
            }
            NodeType::Socket => Ok(()),
            _ => Err(io::Error::other(format!(
                "unsupported node type {:?}",
                node.node_type.as_str()
            ))),
        }
    }

    /// Does `dir` have the setgid bit (new entries inherit its group)?
    /// Cached for the directory whose entries are being restored.
    fn setgid_dir(&mut self, dir: &Arc<OwnedFd>) -> bool {
        let key = Arc::as_ptr(dir) as usize;
        if let Some((k, v)) = self.last_dir_setgid
            && k == key
        {
            return v;
        }
        let v = rustix::fs::fstat(dir.as_ref())
            .map(|st| st.st_mode & 0o2000 != 0)
            .unwrap_or(true);
        self.last_dir_setgid = Some((key, v));
        v
    }

    /// Create the deferred hard links, then set directory metadata.
    fn finish(&mut self) {
        for (rel, first) in std::mem::take(&mut self.pending_links) {
            let display = display_rel(&rel);
            let spath = snapshot_path(&rel);
            let (name, dirs) = rel.split_last().expect("paths have a name");
            if self.opts.dry_run {
                match open_beneath(&self.root, dirs) {
                    Ok(dfd) => {
                        let existing = stat_at(&dfd, name).ok().flatten();
                        let _ = self.link(&dfd, name, &first, existing.as_ref(), &display);
                    }
                    Err(_) => (self.on_action)(Action::Create(display)),
                }
                continue;
            }
            let r = open_beneath(&self.root, dirs).and_then(|dfd| {
                let existing = stat_at(&dfd, name)?;
                self.link(&dfd, name, &first, existing.as_ref(), &display)
            });
            if let Err(e) = r {
                self.error(&spath, "link", e);
            }
        }
        for (rel, node) in std::mem::take(&mut self.dir_meta) {
            let spath = snapshot_path(&rel);
            match open_beneath(&self.root, &rel) {
                Ok(fd) => self.meta.set_meta_fd(&fd, &node, &spath),
                Err(e) => self.error(&spath, "set directory metadata", e),
            }
        }
    }

    fn link(
        &self,
        dir: &OwnedFd,
        name: &[u8],
        first: &[Vec<u8>],
        existing: Option<&rustix::fs::Stat>,
        display: &str,
    ) -> io::Result<()> {
        let (src_name, src_dirs) = first.split_last().expect("paths have a name");
        let src_dir = open_beneath(&self.root, src_dirs)?;
        if let (Some(st), Some(src)) = (existing, stat_at(&src_dir, src_name)?)
            && st.st_ino == src.st_ino
            && st.st_dev == src.st_dev
        {
            (self.on_action)(Action::Unchanged(display.to_string()));
            return Ok(());
        }
        (self.on_action)(if existing.is_some() {
            Action::Update(display.to_string())
        } else {
            Action::Create(display.to_string())
        });
        if self.opts.dry_run {
            return Ok(());
        }
        if existing.is_some() {
            remove_at(dir, name, 0)?;
        }
        rustix::fs::linkat(&src_dir, src_name, dir, name, AtFlags::empty()).map_err(errno)?;
        self.counters.hardlinks.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

fn snapshot_path(rel: &[Vec<u8>]) -> Vec<u8> {
    let mut p = Vec::new();
    for c in rel {
        p.push(b'/');
        p.extend_from_slice(c);
    }
    p
}

fn display_rel(rel: &[Vec<u8>]) -> String {
    lossy(&snapshot_path(rel))
}

/// Granularity of hole detection: a file system block.
const HOLE_BLOCK: usize = 4096;

/// Write `data` at `off`, leaving aligned all-zero blocks unwritten (holes,
/// since the file was empty to begin with). Returns the bytes written and
/// the file offset just past the last byte written (`off` if none was).
fn write_sparse(f: &File, data: &[u8], off: u64) -> io::Result<(u64, u64)> {
    let mut written = 0u64;
    let mut end = off;
    let mut pos = 0usize;
    // first piece up to the next block boundary of the file
    let lead = ((HOLE_BLOCK as u64 - off % HOLE_BLOCK as u64) % HOLE_BLOCK as u64) as usize;
    let mut run_start: Option<usize> = None;
    let mut flush = |start: usize, stop: usize, written: &mut u64| -> io::Result<()> {
        f.write_all_at(&data[start..stop], off + start as u64)?;
        *written += (stop - start) as u64;
        end = off + stop as u64;
        Ok(())
    };
    while pos < data.len() {
        let end = if pos == 0 && lead > 0 {
            lead.min(data.len())
        } else {
            (pos + HOLE_BLOCK).min(data.len())
        };
        let block = &data[pos..end];
        if is_zero(block) {
            if let Some(s) = run_start.take() {
                flush(s, pos, &mut written)?;
            }
        } else if run_start.is_none() {
            run_start = Some(pos);
        }
        pos = end;
    }
    if let Some(s) = run_start {
        flush(s, data.len(), &mut written)?;
    }
    Ok((written, end))
}

fn is_zero(b: &[u8]) -> bool {
    let (pre, mid, post) = unsafe { b.align_to::<u128>() };
    pre.iter().all(|&x| x == 0) && mid.iter().all(|&x| x == 0) && post.iter().all(|&x| x == 0)
}

/// Create or open one file, fill it (or confirm it is already identical),
/// then set its metadata.
fn write_file(w: &WorkerCtx, job: FileJob) {
    let spath = job.path.as_bytes();
    let content = job.node.content.clone().unwrap_or_default();
    let open = |flags: OFlags| -> io::Result<File> {
        rustix::fs::openat(
            job.dir.as_ref(),
            job.name.as_slice(),
            flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map(File::from)
        .map_err(errno)
    };
    let unchanged = |file: Option<&File>| {
        (w.on_action)(Action::Unchanged(job.path.clone()));
        w.counters.files_unchanged.fetch_add(1, Ordering::Relaxed);
        w.progress.add_bytes(job.node.size);
        w.progress.file_done();
        if let Some(f) = file {
            w.meta.set_meta_fd(f, &job.node, spath);
        }
    };
    let mut file = job.file;
    match job.action {
        FileAction::MetaOnly => {
            if w.dry_run {
                return unchanged(None);
            }
            match open(OFlags::RDONLY) {
                Ok(f) => return unchanged(Some(&f)),
                Err(e) => return w.meta.error(spath, "open", e),
            }
        }
        FileAction::Compare => {
            let flags = if w.dry_run {
                OFlags::RDONLY
            } else {
                OFlags::RDWR
            };
            let f = match open(flags) {
                Ok(f) => f,
                Err(e) => return w.meta.error(spath, "open", e),
            };
            match same_content(w.repo, &f, &content) {
                Ok(true) => return unchanged((!w.dry_run).then_some(&f)),
                Ok(false) => file = Some(f),
                Err(e) => return w.meta.error(spath, "compare", e),
            }
        }
        FileAction::Write => {}
    }
    (w.on_action)(if job.existed {
        Action::Update(job.path.clone())
    } else {
        Action::Create(job.path.clone())
    });
    w.counters.files_restored.fetch_add(1, Ordering::Relaxed);
    if w.dry_run {
        return;
    }
    // Write: the walker created or opened it; Compare: opened above
    let Some(f) = file else {
        return w.meta.error(spath, "create", "the file was not opened");
    };
    let file_was_open = job.action == FileAction::Compare;
    if let Err(e) = fill(w, &f, &job.node, &content, job.existed || file_was_open) {
        w.meta.error(spath, "write", e);
        return;
    }
    if job.existed || file_was_open {
        w.meta.set_meta_fd(&f, &job.node, spath);
    } else {
        w.meta
            .set_meta_created(&f, &job.node, spath, job.parent_setgid);
    }
    w.progress.file_done();
}

fn fill(
    w: &WorkerCtx,
    f: &File,
    node: &Node,
    content: &[Id],
    existed: bool,
) -> std::result::Result<(), String> {
    if existed {
        f.set_len(0).map_err(|e| e.to_string())?;
    }
    let mut off = 0u64;
    let mut end = 0u64;
    for id in content {
        if holdfast_engine::cancel::check().is_err() {
            return Err("interrupted".into());
        }
        let data = w
            .repo
            .load_blob(id, BlobType::Data)
            .map_err(|e| format!("blob {} of this file cannot be restored: {e}", id.short()))?;
        let (written, last) = if w.sparse {
            write_sparse(f, &data, off)
        } else {
            f.write_all_at(&data, off)
                .map(|()| (data.len() as u64, off + data.len() as u64))
        }
        .map_err(|e| e.to_string())?;
        end = end.max(last);
        w.counters
            .bytes_written
            .fetch_add(written, Ordering::Relaxed);
        off += data.len() as u64;
        w.progress.add_bytes(data.len() as u64);
    }
    // a trailing hole (or an empty file) needs the size set explicitly
    if end != off {
        f.set_len(off).map_err(|e| e.to_string())?;
    }
    if off != node.size {
        return Err(format!(
            "restored {off} bytes, the snapshot records {} bytes",
            node.size
        ));
    }
    Ok(())
}

/// Compare an existing file with the snapshot's blobs, blob by blob.
fn same_content(repo: &Repository, file: &File, content: &[Id]) -> io::Result<bool> {
    let idx = repo.index().map_err(io::Error::other)?;
    let mut reader = io::BufReader::with_capacity(1 << 20, file);
    let mut buf = Vec::new();
    for id in content {
        let Some(loc) = idx.lookup(id, BlobType::Data) else {
            return Ok(false);
        };
        buf.resize(loc.plain_len() as usize, 0);
        if reader.read_exact(&mut buf).is_err() {
            return Ok(false);
        }
        if Id::hash(&buf) != *id {
            return Ok(false);
        }
    }
    let mut rest = [0u8; 1];
    Ok(reader.read(&mut rest)? == 0)
}

struct WorkerCtx<'a> {
    repo: &'a Repository,
    progress: &'a Progress,
    counters: &'a Counters,
    on_action: ActionSink<'a>,
    dry_run: bool,
    sparse: bool,
    meta: &'a MetaSetter<'a>,
}

/// The metadata setters, shareable with worker threads.
struct MetaSetter<'a> {
    progress: &'a Progress,
    am_root: bool,
    euid: u32,
    egid: u32,
    umask: u32,
}

/// The process's umask, read without changing it.
fn current_umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o777)
}

impl MetaSetter<'_> {
    fn error(&self, path: &[u8], during: &'static str, e: impl std::fmt::Display) {
        self.progress.error(ItemError {
            path: lossy(path),
            during,
            message: e.to_string(),
        });
    }

    /// Metadata of a file this restore just created with mode `perm & 0o777`
    /// (so far owned by us): skip the calls that would change nothing.
    fn set_meta_created(&self, fd: &impl AsFd, node: &Node, spath: &[u8], parent_setgid: bool) {
        let perm = node.unix_perm();
        let owner_ok = node.uid == self.euid && node.gid == self.egid && !parent_setgid;
        let mode_ok = perm & 0o7000 == 0 && perm & self.umask == 0;
        if owner_ok && mode_ok {
            self.set_xattrs_and_times(fd, node, spath);
        } else {
            self.set_meta_fd(fd, node, spath);
        }
    }

    fn set_meta_fd(&self, fd: &impl AsFd, node: &Node, spath: &[u8]) {
        if let Err(e) = rustix::fs::fchown(
            fd,
            Some(rustix::fs::Uid::from_raw(node.uid)),
            Some(rustix::fs::Gid::from_raw(node.gid)),
        ) && self.am_root
        {
            self.error(spath, "chown", errno(e));
        }
        if let Err(e) = rustix::fs::fchmod(fd, Mode::from_raw_mode(node.unix_perm())) {
            self.error(spath, "chmod", errno(e));
        }
        self.set_xattrs_and_times(fd, node, spath);
    }

    /// Set each extended attribute with `set`; failures an unprivileged
    /// user expects (trusted.*, security.*) are not reported.
    fn set_xattrs(
        &self,
        node: &Node,
        spath: &[u8],
        set: impl Fn(&str, &[u8]) -> rustix::io::Result<()>,
    ) {
        for x in &node.extended_attributes {
            if let Err(e) = set(x.name.as_str(), &x.value)
                && (self.am_root || x.name.starts_with("user."))
            {
                self.error(
                    spath,
                    "set extended attribute",
                    format!("{}: {}", x.name, errno(e)),
                );
            }
        }
    }

    fn set_xattrs_and_times(&self, fd: &impl AsFd, node: &Node, spath: &[u8]) {
        self.set_xattrs(node, spath, |name, value| {
            rustix::fs::fsetxattr(fd, name, value, rustix::fs::XattrFlags::empty())
        });
        let times = Timestamps {
            last_access: ts(&node.atime),
            last_modification: ts(&node.mtime),
        };
        if let Err(e) = rustix::fs::futimens(fd, &times) {
            self.error(spath, "set times", errno(e));
        }
    }
}

/// Restore the snapshot tree `tree` into `opts.target`.
pub fn restore(
    repo: &Repository,
    tree: &Id,
    opts: &RestoreOptions,
    progress: &Progress,
    on_action: ActionSink,
) -> Result<RestoreSummary> {
    repo.load_index()?;
    let confined = match &opts.confine {
        Some(root) => Some(
            crate::confine::Confined::new(root, &opts.target).ok_or_else(|| {
                EngineError::Invalid(format!(
                    "{}: refused: not beneath {}",
                    opts.target.display(),
                    root.display()
                ))
            })?,
        ),
        None => None,
    };
    if !opts.dry_run {
        match &confined {
            Some(c) => c.create_dirs().map(drop),
            None => std::fs::create_dir_all(&opts.target),
        }
        .map_err(|e| EngineError::io(format!("create target {}", opts.target.display()), e))?;
    }
    let opened = match &confined {
        Some(c) => c
            .open(OFlags::RDONLY | OFlags::DIRECTORY)
            .map_err(|e| EngineError::io(format!("open target {}", opts.target.display()), e))
            .map(Ok),
        None => Ok(rustix::fs::open(
            &opts.target,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )),
    }?;
    let root = match opened {
        Ok(fd) => fd,
        Err(Errno::NOENT) if opts.dry_run => rustix::fs::open(
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| EngineError::io("open .", errno(e)))?,
        Err(e) => {
            return Err(EngineError::io(
                format!("open target {}", opts.target.display()),
                errno(e),
            ));
        }
    };
    let am_root = rustix::process::geteuid().is_root();
    let counters = Counters::default();
    let meta = MetaSetter {
        progress,
        am_root,
        euid: rustix::process::geteuid().as_raw(),
        egid: rustix::process::getegid().as_raw(),
        umask: current_umask(),
    };
    let workers = opts.workers.max(1);
    let root_fd = Arc::new(rustix::io::dup(&root).map_err(|e| EngineError::io("dup", errno(e)))?);
    let wctx = WorkerCtx {
        repo,
        progress,
        counters: &counters,
        on_action,
        dry_run: opts.dry_run,
        sparse: opts.sparse,
        meta: &meta,
    };
    // the writers belong to the caller's job (a service timeout stops them)
    let job = &holdfast_engine::cancel::JobScope::current();
    let result = std::thread::scope(|s| -> Result<()> {
        let (tx, rx) = bounded::<FileJob>(workers * 4);
        let wctx = &wctx;
        let meta = &meta;
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                let rx = rx.clone();
                s.spawn(move || {
                    job.enter(|| {
                        for job in rx {
                            write_file(wctx, job);
                        }
                    })
                })
            })
            .collect();
        drop(rx);
        let mut walk = Walk {
            repo,
            opts,
            on_action,
            counters: &counters,
            root,
            jobs: Some(tx),
            meta,
            links: HashMap::new(),
            pending_links: Vec::new(),
            dir_meta: Vec::new(),
            last_dir_setgid: None,
            am_root,
        };
        let top = DirCursor {
            fd: std::cell::OnceCell::from(Some(root_fd)),
            parent: None,
            rel: Vec::new(),
            existed: std::cell::Cell::new(true),
        };
        let r = walk.walk_tree(tree, &top, opts.includes.is_empty(), 0);
        // every file exists once the workers are done: then the links,
        // then the directories' own metadata, children first
        walk.jobs = None;
        for h in handles {
            let _ = h.join();
        }
        if r.is_ok() {
            walk.finish();
        }
        r
    });
    result?;
    Ok(RestoreSummary {
        files_restored: counters.files_restored.load(Ordering::Relaxed),
        files_unchanged: counters.files_unchanged.load(Ordering::Relaxed),
        dirs: counters.dirs.load(Ordering::Relaxed),
        symlinks: counters.symlinks.load(Ordering::Relaxed),
        hardlinks: counters.hardlinks.load(Ordering::Relaxed),
        special: counters.special.load(Ordering::Relaxed),
        deleted: counters.deleted.load(Ordering::Relaxed),
        bytes_written: counters.bytes_written.load(Ordering::Relaxed),
        skipped_devices: counters.skipped_devices.load(Ordering::Relaxed),
        errors: progress.errors.load(Ordering::Relaxed),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name(b"ok"));
        assert!(valid_name(b"\xff weird but fine"));
        for bad in [&b""[..], b".", b"..", b"a/b", b"/etc", b"a\0b"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }
}
