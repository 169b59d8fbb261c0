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

//!
//! - [`walk`]: the walker (every namespace operation, in tree order);
//! - [`write`]: the workers filling files (sparse where blobs are zero);
//! - [`metadata`]: owners, modes, times and extended attributes;
//! - `crate::dir::fd`: the descriptor-relative calls all of them use.

mod metadata;
mod walk;
mod write;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_channel::bounded;
use holdfast_engine::repository::Repository;
use holdfast_engine::{EngineError, Result};
use holdfast_format::Id;
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use crate::filter::PathMatcher;
use crate::progress::Progress;

use crate::dir::fd::*;
use metadata::{MetaSetter, current_umask};
use walk::{DirCursor, FileJob, Walk};
use write::{WorkerCtx, write_file};

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
    /// and opened through [`holdfast_confine::confine`] (no symlink in any component
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

impl Action {
    /// `Update` of what `existed`, else `Create`.
    pub(crate) fn changed(existed: bool, path: String) -> Action {
        if existed {
            Action::Update(path)
        } else {
            Action::Create(path)
        }
    }
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
pub(super) struct Counters {
    pub(super) files_restored: AtomicU64,
    pub(super) files_unchanged: AtomicU64,
    pub(super) dirs: AtomicU64,
    pub(super) symlinks: AtomicU64,
    pub(super) hardlinks: AtomicU64,
    pub(super) special: AtomicU64,
    pub(super) deleted: AtomicU64,
    pub(super) bytes_written: AtomicU64,
    pub(super) skipped_devices: AtomicU64,
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
            holdfast_confine::confine::Confined::new(root, &opts.target).ok_or_else(|| {
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
