//! The walker: every namespace operation of a restore, in tree order.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use holdfast_engine::repository::Repository;
use holdfast_engine::{EngineError, Result};
use holdfast_format::Id;
use holdfast_format::tree::{Node, NodeType};
use rustix::fs::{AtFlags, Mode, OFlags, Timestamps};
use rustix::io::Errno;

use super::metadata::MetaSetter;
use super::*;
use crate::dir::fd::*;

/// What a worker does with one regular file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FileAction {
    /// Same size and modification time: only set metadata.
    MetaOnly,
    /// Same size: compare content, rewrite only if it differs.
    Compare,
    /// Create (or truncate and rewrite) the file.
    Write,
}

/// A path below the restore target, as its components.
pub(super) type RelPath = Vec<Vec<u8>>;

pub(super) struct FileJob {
    pub(super) dir: Arc<OwnedFd>,
    /// The directory makes new entries inherit its group (setgid bit).
    pub(super) parent_setgid: bool,
    pub(super) name: Vec<u8>,
    pub(super) node: Node,
    pub(super) path: String,
    pub(super) action: FileAction,
    pub(super) existed: bool,
    /// For [`FileAction::Write`]: the file, created (or opened to be
    /// rewritten) by the walker.
    pub(super) file: Option<File>,
}

pub(super) struct Walk<'a> {
    pub(super) repo: &'a Repository,
    pub(super) opts: &'a RestoreOptions,
    pub(super) on_action: ActionSink<'a>,
    pub(super) counters: &'a Counters,
    pub(super) root: OwnedFd,
    /// Closed (set to `None`) when the walk is done.
    pub(super) jobs: Option<crossbeam_channel::Sender<FileJob>>,
    pub(super) meta: &'a MetaSetter<'a>,
    /// (device, inode) of hardlinked files already restored → their path.
    pub(super) links: HashMap<(u64, u64), Vec<Vec<u8>>>,
    /// Further names of hard-linked files: (name, first name), created once
    /// the workers have created every file.
    pub(super) pending_links: Vec<(RelPath, RelPath)>,
    /// Directories' metadata, applied children first after everything else.
    pub(super) dir_meta: Vec<(RelPath, Node)>,
    pub(super) last_dir_setgid: Option<(usize, bool)>,
    pub(super) am_root: bool,
}

/// A directory on the walk: opened (or, while includes have not selected
/// anything in it yet, still to be created).
pub(super) struct DirCursor<'p> {
    /// `Some(None)`: does not exist and a dry run will not create it.
    pub(super) fd: std::cell::OnceCell<Option<Arc<OwnedFd>>>,
    pub(super) parent: Option<&'p DirCursor<'p>>,
    /// Components below the target.
    pub(super) rel: Vec<Vec<u8>>,
    pub(super) existed: std::cell::Cell<bool>,
}

impl Walk<'_> {
    pub(super) fn error(&self, path: &[u8], during: &'static str, e: impl std::fmt::Display) {
        self.meta.error(path, during, e)
    }

    /// The descriptor of `dir`, creating it (and its pending parents) first;
    /// `None` in a dry run for a directory that does not exist yet.
    pub(super) fn materialize(&self, dir: &DirCursor) -> io::Result<Option<Arc<OwnedFd>>> {
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

    pub(super) fn ensure_dir(
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

    pub(super) fn walk_tree(
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
    pub(super) fn finish_dir(
        &mut self,
        fd: &Arc<OwnedFd>,
        node: &Node,
        cursor: &DirCursor,
        spath: &[u8],
    ) {
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

    pub(super) fn delete_extras(&self, fd: &OwnedFd, tree: &Id, spath: &[u8]) {
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
    pub(super) fn set_meta_at(&self, dir: &OwnedFd, name: &[u8], node: &Node, spath: &[u8]) {
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

    pub(super) fn restore_entry(
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
                let same = existing.as_ref().is_some_and(|st| {
                    file_type_bits(st) == 0o120000
                        && rustix::fs::readlinkat(dir, name, Vec::new())
                            .map(|t| t.as_bytes() == target.as_slice())
                            .unwrap_or(false)
                });
                if self.make_way(dir, node, spath, existing.is_some(), same)? {
                    rustix::fs::symlinkat(target.as_slice(), dir, name).map_err(errno)?;
                    self.counters.symlinks.fetch_add(1, Ordering::Relaxed);
                    self.set_meta_at(dir, name, node, spath);
                }
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
                let same = existing.as_ref().is_some_and(|st| {
                    file_type_bits(st) == want
                        && (node.node_type == NodeType::Fifo || st.st_rdev == node.device)
                });
                if !self.make_way(dir, node, spath, existing.is_some(), same)? {
                    return Ok(());
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

    /// Before a symlink, fifo or device is created: when what is there is
    /// the `same`, only its metadata is set; otherwise the change is
    /// reported and, unless a dry run, what `existed` removed. Whether to
    /// create the entry now.
    fn make_way(
        &self,
        dir: &OwnedFd,
        node: &Node,
        spath: &[u8],
        existed: bool,
        same: bool,
    ) -> io::Result<bool> {
        if same {
            (self.on_action)(Action::Unchanged(lossy(spath)));
            if !self.opts.dry_run {
                self.set_meta_at(dir, &node.name, node, spath);
            }
            return Ok(false);
        }
        (self.on_action)(Action::changed(existed, lossy(spath)));
        if existed && !self.opts.dry_run {
            remove_at(dir, &node.name, 0)?;
        }
        Ok(!self.opts.dry_run)
    }

    /// Does `dir` have the setgid bit (new entries inherit its group)?
    /// Cached for the directory whose entries are being restored.
    pub(super) fn setgid_dir(&mut self, dir: &Arc<OwnedFd>) -> bool {
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
    pub(super) fn finish(&mut self) {
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

    pub(super) fn link(
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
        (self.on_action)(Action::changed(existing.is_some(), display.to_string()));
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

pub(super) fn snapshot_path(rel: &[Vec<u8>]) -> Vec<u8> {
    let mut p = Vec::new();
    for c in rel {
        p.push(b'/');
        p.extend_from_slice(c);
    }
    p
}

pub(super) fn display_rel(rel: &[Vec<u8>]) -> String {
    lossy(&snapshot_path(rel))
}
