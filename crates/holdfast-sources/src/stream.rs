//! One byte stream stored as a one-file snapshot (`--stdin`), with bounded
//! memory whatever its length. Database dumps build on this.

use std::io::Read;
use std::sync::Arc;

use holdfast_engine::blob_saver::SaverOptions;
use holdfast_engine::chunker::{Chunker, ChunkerParams};
use holdfast_engine::repository::Repository;
use holdfast_engine::{EngineError, Result, system};
use holdfast_format::gotime::GoTime;
use holdfast_format::snapshot::{Snapshot, SnapshotSummary};
use holdfast_format::tree::{Node, NodeType, Tree, gomode};
use holdfast_format::{BlobType, Id};
use sha2::{Digest, Sha256};

use crate::commit::{SnapshotMeta, commit, start_saver};
use crate::progress::Progress;

pub struct StreamBackupOptions {
    /// Name of the file in the snapshot.
    pub filename: String,
    pub chunker: ChunkerParams,
    pub saver: SaverOptions,
    pub meta: SnapshotMeta,
    pub dry_run: bool,
}

pub struct StreamBackupResult {
    pub snapshot_id: Option<Id>,
    pub snapshot: Snapshot,
    /// Bytes read from the stream.
    pub size: u64,
    /// SHA-256 of the whole stream.
    pub sha256: Id,
}

/// Check a file name given for a stream: one non-empty path component.
pub fn validate_filename(name: &str) -> Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(EngineError::Invalid(format!(
            "stream file name {name:?} must be a single file name (no '/', not '.' or '..')"
        )));
    }
    Ok(())
}

/// Read `reader` to its end and store it as a snapshot holding one file.
/// A read error fails the backup: no snapshot is written.
pub fn backup_stream(
    repo: &Arc<Repository>,
    reader: impl Read,
    opts: StreamBackupOptions,
    progress: &Progress,
) -> Result<StreamBackupResult> {
    validate_filename(&opts.filename)?;
    let start = GoTime::now();
    let saver = start_saver(repo, &opts.saver, opts.dry_run)?;
    let mut hasher = Sha256::new();
    let mut chunker = Chunker::new(reader, opts.chunker, repo.chunker_seed());
    let mut content = Vec::new();
    loop {
        holdfast_engine::cancel::check()?;
        let chunk = match chunker.next_chunk() {
            Ok(Some(c)) => c,
            Ok(None) => break,
            Err(e) => {
                return Err(EngineError::io(
                    format!("reading the stream for {}", opts.filename),
                    e,
                ));
            }
        };
        hasher.update(chunk);
        let id = Id::hash(chunk);
        progress.add_bytes(chunk.len() as u64);
        if !saver.known(&id, BlobType::Data) {
            let mut b = saver.buffer(chunk.len());
            b.extend_from_slice(chunk);
            saver.save_hashed(BlobType::Data, id, b)?;
        }
        content.push(id);
    }
    let size = chunker.position;
    let now = GoTime::now();
    let mut node = Node::new(opts.filename.as_bytes().to_vec(), NodeType::File);
    node.mode = gomode::from_unix(0o100644);
    node.mtime = now;
    node.atime = now;
    node.ctime = now;
    node.uid = system::uid();
    node.gid = system::gid();
    node.user = system::user_name(node.uid).unwrap_or_default();
    node.group = system::group_name(node.gid).unwrap_or_default();
    node.size = size;
    node.links = 1;
    node.content = Some(content);
    let tree = Tree { nodes: vec![node] };
    let blob = tree.to_blob();
    let root = saver.save(BlobType::Tree, blob)?.id;
    progress.file_done();
    let summary = SnapshotSummary {
        files_new: 1,
        total_files_processed: 1,
        total_bytes_processed: size,
        ..Default::default()
    };
    let mut meta = opts.meta;
    meta.paths = vec![format!("/{}", opts.filename)];
    let sha256 = Id(hasher.finalize().into());
    let (snapshot_id, snapshot, _) = commit(repo, saver, root, meta, summary, start, opts.dry_run)?;
    Ok(StreamBackupResult {
        snapshot_id,
        snapshot,
        size,
        sha256,
    })
}
