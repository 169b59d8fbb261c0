//! The workers: fill files the walker created, sparse where blobs are
//! all zeros, and compare content before rewriting an existing file.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;

use holdfast_engine::repository::Repository;
use holdfast_format::tree::Node;
use holdfast_format::{BlobType, Id};
use rustix::fs::{Mode, OFlags};

use crate::progress::Progress;

use super::metadata::MetaSetter;
use super::walk::{FileAction, FileJob};
use super::*;
use crate::dir::fd::*;

/// Granularity of hole detection: a file system block.
pub(super) const HOLE_BLOCK: usize = 4096;

/// Write `data` at `off`, leaving aligned all-zero blocks unwritten (holes,
/// since the file was empty to begin with). Returns the bytes written and
/// the file offset just past the last byte written (`off` if none was).
pub(super) fn write_sparse(f: &File, data: &[u8], off: u64) -> io::Result<(u64, u64)> {
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

pub(super) fn is_zero(b: &[u8]) -> bool {
    let (pre, mid, post) = unsafe { b.align_to::<u128>() };
    pre.iter().all(|&x| x == 0) && mid.iter().all(|&x| x == 0) && post.iter().all(|&x| x == 0)
}

/// Create or open one file, fill it (or confirm it is already identical),
/// then set its metadata.
pub(super) fn write_file(w: &WorkerCtx, job: FileJob) {
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
    (w.on_action)(Action::changed(job.existed, job.path.clone()));
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

pub(super) fn fill(
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
pub(super) fn same_content(repo: &Repository, file: &File, content: &[Id]) -> io::Result<bool> {
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

pub(super) struct WorkerCtx<'a> {
    pub(super) repo: &'a Repository,
    pub(super) progress: &'a Progress,
    pub(super) counters: &'a Counters,
    pub(super) on_action: ActionSink<'a>,
    pub(super) dry_run: bool,
    pub(super) sparse: bool,
    pub(super) meta: &'a MetaSetter<'a>,
}
