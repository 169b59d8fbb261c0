//! A snapshot of files built from streams: each file's content comes from
//! a reader (a dump tool's output, a COPY stream, an HTTP body), nothing is
//! held whole in memory, and the snapshot is written only by `commit`. The
//! stream source and the database sources build on this; the blobs, trees
//! and the snapshot go through the engine's `SnapshotBuilder`, which keeps
//! the write order.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;

use holdfast_engine::blob_saver::SaverOptions;
use holdfast_engine::chunker::ChunkerParams;
use holdfast_engine::repository::Repository;
use holdfast_engine::snapshot_builder::{SnapshotBuilder, SnapshotMeta, StoreError};
use holdfast_engine::{EngineError, Result, system};
use holdfast_format::Id;
use holdfast_format::gotime::GoTime;
use holdfast_format::snapshot::{Snapshot, SnapshotSummary};
use holdfast_format::tree::{Node, NodeType, Tree, gomode};
use sha2::{Digest, Sha256};

use crate::progress::Progress;

/// Bytes per batch handed to the whole-file hashing thread, and how many
/// batches may wait for it.
const HASH_BATCH: usize = 1 << 20;
const HASH_BATCHES: usize = 4;

/// What was stored for one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileFacts {
    pub size: u64,
    pub sha256: Id,
}

/// Where a table export's files go: the snapshot being written (a backup)
/// or only their digests (a drill reading a restored table back).
pub trait FileSink {
    /// Take `reader`'s bytes as the file at `path`; their size and SHA-256.
    fn add_file(&mut self, path: &str, reader: &mut dyn Read) -> Result<FileFacts>;
}

impl FileSink for SnapshotWriter<'_> {
    fn add_file(&mut self, path: &str, reader: &mut dyn Read) -> Result<FileFacts> {
        SnapshotWriter::add_file(self, path, reader)
    }
}

enum Entry {
    File(Box<Node>),
    Dir(BTreeMap<Vec<u8>, Entry>),
}

pub struct SnapshotWriter<'a> {
    builder: SnapshotBuilder,
    root: BTreeMap<Vec<u8>, Entry>,
    files: u64,
    bytes: u64,
    dirs: u64,
    buf: Vec<u8>,
    progress: &'a Progress,
}

/// Check one path component given for a stored file.
pub fn validate_name(name: &str) -> Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(EngineError::Invalid(format!(
            "file name {name:?} must be a single file name (no '/', not '.' or '..')"
        )));
    }
    Ok(())
}

/// A node owned by this process's user, with every time `now`.
fn owned_node(name: Vec<u8>, kind: NodeType, mode: u32, now: GoTime) -> Node {
    let mut node = Node::new(name, kind);
    node.mode = gomode::from_unix(mode);
    node.mtime = now;
    node.atime = now;
    node.ctime = now;
    node.uid = system::uid();
    node.gid = system::gid();
    node.user = system::user_name(node.uid).unwrap_or_default();
    node.group = system::group_name(node.gid).unwrap_or_default();
    node
}

fn file_node(name: &str, size: u64, content: Vec<Id>, now: GoTime) -> Node {
    let mut node = owned_node(name.as_bytes().to_vec(), NodeType::File, 0o100644, now);
    node.size = size;
    node.links = 1;
    node.content = Some(content);
    node
}

impl<'a> SnapshotWriter<'a> {
    pub fn new(
        repo: &Arc<Repository>,
        chunker: ChunkerParams,
        saver: &SaverOptions,
        dry_run: bool,
        progress: &'a Progress,
    ) -> Result<SnapshotWriter<'a>> {
        Ok(SnapshotWriter {
            builder: SnapshotBuilder::start(repo, chunker, saver, dry_run)?,
            root: BTreeMap::new(),
            files: 0,
            bytes: 0,
            dirs: 0,
            buf: Vec::new(),
            progress,
        })
    }

    /// Store `reader`'s content as the file at `path` (`/`-separated,
    /// relative). A read error fails the whole snapshot.
    pub fn add_file(&mut self, path: &str, reader: impl Read) -> Result<FileFacts> {
        let parts: Vec<&str> = path.split('/').collect();
        for p in &parts {
            validate_name(p)?;
        }
        // bytes count as progress when they are read, not when a chunk is
        // complete: a slow stream must not look stalled to a service's
        // no-progress timeout while a large chunk fills
        let reader = CountingReader {
            inner: reader,
            progress: self.progress,
        };
        // The whole file's SHA-256 (for manifests) is a second pass over
        // every byte: it runs on a thread of its own, so the reading
        // thread — the one a dump tool waits on — only chunks and names
        // chunks. The bytes reach it in order, copied into batches of
        // about HASH_BATCH whose buffers come back for reuse: one hand-off
        // per chunk cost more than the hashing (database chunks are ~8 KiB).
        let (to_hasher, batches) = crossbeam_channel::bounded::<Vec<u8>>(HASH_BATCHES);
        let (recycle, recycled) = crossbeam_channel::bounded::<Vec<u8>>(HASH_BATCHES + 2);
        let hasher = std::thread::spawn(move || {
            let mut h = Sha256::new();
            for b in batches {
                h.update(&b);
                let _ = recycle.try_send(b);
            }
            Id(h.finalize().into())
        });
        let mut batch = Vec::with_capacity(HASH_BATCH);
        let stored = self.builder.store(reader, &mut self.buf, |chunk| {
            batch.extend_from_slice(chunk);
            if batch.len() >= HASH_BATCH {
                let mut next = recycled
                    .try_recv()
                    .unwrap_or_else(|_| Vec::with_capacity(HASH_BATCH));
                next.clear();
                let _ = to_hasher.send(std::mem::replace(&mut batch, next));
            }
            Ok(())
        });
        if !batch.is_empty() {
            let _ = to_hasher.send(batch);
        }
        drop(to_hasher);
        let sha256 = hasher.join().expect("the hashing thread does not panic");
        let stored = stored.map_err(|e| match e {
            StoreError::Read(e) => EngineError::io(format!("reading the data for {path}"), e),
            StoreError::Stop(e) => e,
        })?;
        let (size, content) = (stored.size, stored.content);
        let (name, dirs) = parts.split_last().expect("split yields at least one part");
        let mut level = &mut self.root;
        for d in dirs {
            let e = level
                .entry(d.as_bytes().to_vec())
                .or_insert_with(|| Entry::Dir(BTreeMap::new()));
            level = match e {
                Entry::Dir(m) => m,
                Entry::File(_) => {
                    return Err(EngineError::Invalid(format!(
                        "{path}: {d} is already a file"
                    )));
                }
            };
        }
        if level.contains_key(name.as_bytes()) {
            return Err(EngineError::Invalid(format!("{path} is stored twice")));
        }
        level.insert(
            name.as_bytes().to_vec(),
            Entry::File(Box::new(file_node(name, size, content, GoTime::now()))),
        );
        self.files += 1;
        self.bytes += size;
        self.progress.file_done();
        Ok(FileFacts { size, sha256 })
    }

    /// Store a small in-memory document (a manifest, a schema).
    pub fn add_bytes(&mut self, path: &str, data: &[u8]) -> Result<FileFacts> {
        self.add_file(path, data)
    }

    fn save_dir(&mut self, entries: BTreeMap<Vec<u8>, Entry>) -> Result<Id> {
        let mut nodes = Vec::new();
        let now = GoTime::now();
        for (name, e) in entries {
            match e {
                Entry::File(n) => nodes.push(*n),
                Entry::Dir(children) => {
                    let sub = self.save_dir(children)?;
                    let mut d = owned_node(name, NodeType::Dir, 0o040755, now);
                    d.subtree = Some(sub);
                    self.dirs += 1;
                    nodes.push(d);
                }
            }
        }
        self.builder.save_tree(&Tree { nodes })
    }

    /// Flush everything, then write the snapshot (unless a dry run). The
    /// snapshot's paths are its top-level entries.
    pub fn commit(mut self, mut meta: SnapshotMeta) -> Result<(Option<Id>, Snapshot)> {
        let root = std::mem::take(&mut self.root);
        if meta.paths.is_empty() {
            meta.paths = root
                .keys()
                .map(|k| format!("/{}", String::from_utf8_lossy(k)))
                .collect();
        }
        let tree = self.save_dir(root)?;
        let summary = SnapshotSummary {
            files_new: self.files,
            dirs_new: self.dirs,
            total_files_processed: self.files,
            total_bytes_processed: self.bytes,
            ..Default::default()
        };
        let (id, snap, _) = self.builder.commit(tree, meta, summary)?;
        Ok((id, snap))
    }
}

/// Adds what passes through to the progress counters.
struct CountingReader<'p, R> {
    inner: R,
    progress: &'p Progress,
}

impl<R: Read> Read for CountingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.add_bytes(n as u64);
        Ok(n)
    }
}
