//! Writing one snapshot: streams stored as a file's data blobs (chunk,
//! hash, deduplicate, save), trees saved, then the snapshot committed.
//! Directory backups and every stream source (dumps, tables, events,
//! commands) build their snapshots through this one type.
//!
//! Invariants:
//! - the write order of restic's format: data blobs, then the trees that
//!   name them, then the snapshot; [`SnapshotBuilder::commit`] flushes the
//!   blob pipeline (packs and their index durable) before the snapshot file
//!   is written, so a snapshot never names a blob that is not stored;
//! - a blob the repository (or this backup) already has is not saved again;
//! - a dry run goes through every step but writes nothing.

use std::io::{self, Read};
use std::sync::Arc;

use holdfast_format::gotime::GoTime;
use holdfast_format::snapshot::{Snapshot, SnapshotSummary};
use holdfast_format::tree::Tree;
use holdfast_format::{BlobType, Id};

use crate::blob_saver::{BlobSaver, SaverOptions, SaverSummary};
use crate::chunker::{Chunker, ChunkerParams};
use crate::repository::Repository;
use crate::{EngineError, Result};

/// Everything a snapshot records besides its tree.
#[derive(Debug, Clone, Default)]
pub struct SnapshotMeta {
    pub paths: Vec<String>,
    pub hostname: String,
    pub username: String,
    pub uid: u32,
    pub gid: u32,
    pub tags: Vec<String>,
    pub excludes: Vec<String>,
    pub parent: Option<Id>,
    /// holdfast's own fields, stored under the `holdfast` key.
    pub extra: Option<serde_json::Value>,
}

impl SnapshotMeta {
    /// Add holdfast's own fields to `extra`, keeping those already there
    /// (a caller's, such as the service's audit anchor).
    pub fn add_extra(&mut self, fields: serde_json::Value) {
        match (&mut self.extra, fields) {
            (Some(serde_json::Value::Object(have)), serde_json::Value::Object(new)) => {
                have.extend(new)
            }
            (slot, new) => *slot = Some(new),
        }
    }
}

/// The version string written into snapshots.
pub fn program_version() -> String {
    format!("holdfast {}", env!("CARGO_PKG_VERSION"))
}

/// Why storing a stream stopped.
#[derive(Debug)]
pub enum StoreError {
    /// The stream could not be read: the caller decides whether that fails
    /// the backup (a dump) or only leaves the item out (a file).
    Read(io::Error),
    /// The backup must stop: a save failed, or it was cancelled.
    Stop(EngineError),
}

/// A stream stored as data blobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredStream {
    pub content: Vec<Id>,
    pub size: u64,
}

/// One snapshot being written. Its methods take `&self`: several threads
/// may store streams at once (the blob pipeline is shared).
pub struct SnapshotBuilder {
    repo: Arc<Repository>,
    saver: BlobSaver,
    chunker: ChunkerParams,
    seed: u64,
    start: GoTime,
    dry_run: bool,
}

impl SnapshotBuilder {
    /// Start the blob pipeline, against the repository's index.
    pub fn start(
        repo: &Arc<Repository>,
        chunker: ChunkerParams,
        opts: &SaverOptions,
        dry_run: bool,
    ) -> Result<SnapshotBuilder> {
        let index = repo.load_index()?;
        let saver = BlobSaver::new(
            repo.clone(),
            index,
            SaverOptions {
                dry_run,
                ..opts.clone()
            },
        );
        Ok(SnapshotBuilder {
            repo: repo.clone(),
            saver,
            chunker,
            seed: repo.chunker_seed(),
            start: GoTime::now(),
            dry_run,
        })
    }

    /// Whether the data blob `id` is stored already (or being stored).
    pub fn known(&self, id: &Id) -> bool {
        self.saver.known(id, BlobType::Data)
    }

    /// Store `reader`'s bytes as data blobs. `on_chunk` sees every chunk in
    /// order before it is saved (progress, a whole-file hash) and may stop
    /// the store. `buf` is the chunker's buffer, lent and given back, so a
    /// thread storing many streams allocates it once.
    pub fn store(
        &self,
        reader: impl Read,
        buf: &mut Vec<u8>,
        mut on_chunk: impl FnMut(&[u8]) -> Result<()>,
    ) -> std::result::Result<StoredStream, StoreError> {
        let mut chunker =
            Chunker::with_buffer(reader, self.chunker, self.seed, std::mem::take(buf));
        let mut content = Vec::new();
        let stored = loop {
            if let Err(e) = crate::cancel::check() {
                break Err(StoreError::Stop(e));
            }
            let chunk = match chunker.next_chunk() {
                Ok(Some(c)) => c,
                Ok(None) => break Ok(()),
                Err(e) => break Err(StoreError::Read(e)),
            };
            if let Err(e) = on_chunk(chunk) {
                break Err(StoreError::Stop(e));
            }
            let id = Id::hash(chunk);
            if !self.known(&id) {
                let mut b = self.saver.buffer(chunk.len());
                b.extend_from_slice(chunk);
                if let Err(e) = self.saver.save_hashed(BlobType::Data, id, b) {
                    break Err(StoreError::Stop(e));
                }
            }
            content.push(id);
        };
        let size = chunker.position;
        *buf = chunker.into_buffer();
        stored.map(|()| StoredStream { content, size })
    }

    /// Save a tree (its nodes already in restic's order); its id.
    pub fn save_tree(&self, tree: &Tree) -> Result<Id> {
        let blob = tree.to_blob();
        let id = Id::hash(&blob);
        self.saver.save_hashed(BlobType::Tree, id, blob)?;
        Ok(id)
    }

    /// Flush every blob, then write the snapshot of `tree` (unless a dry
    /// run): its id, the snapshot, and what the pipeline saved.
    pub fn commit(
        self,
        tree: Id,
        meta: SnapshotMeta,
        mut summary: SnapshotSummary,
    ) -> Result<(Option<Id>, Snapshot, SaverSummary)> {
        let saved = self.saver.finish()?;
        summary.data_blobs = saved.data_blobs;
        summary.tree_blobs = saved.tree_blobs;
        summary.data_added = saved.added_plain;
        summary.data_added_packed = saved.added_packed;
        summary.backup_start = self.start;
        summary.backup_end = GoTime::now();
        let mut snap = Snapshot::new(tree, meta.paths, self.start);
        snap.parent = meta.parent;
        snap.hostname = meta.hostname;
        snap.username = meta.username;
        snap.uid = meta.uid;
        snap.gid = meta.gid;
        snap.tags = meta.tags;
        snap.excludes = meta.excludes;
        snap.program_version = Some(program_version());
        snap.summary = Some(summary);
        if let Some(extra) = meta.extra {
            snap.extra.insert("holdfast".into(), extra);
        }
        let id = if self.dry_run {
            None
        } else {
            Some(self.repo.save_snapshot(&snap)?)
        };
        Ok((id, snap, saved))
    }
}
