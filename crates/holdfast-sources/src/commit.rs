//! Finishing a backup: flush the blob pipeline, then write the snapshot.
//! Packs and their index are durable before the snapshot is written.

use std::sync::Arc;

use holdfast_engine::Result;
use holdfast_engine::blob_saver::{BlobSaver, SaverOptions, SaverSummary};
use holdfast_engine::repository::Repository;
use holdfast_format::Id;
use holdfast_format::gotime::GoTime;
use holdfast_format::snapshot::{Snapshot, SnapshotSummary};

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

/// Start the blob pipeline of a backup, against the repository's index.
pub fn start_saver(
    repo: &Arc<Repository>,
    opts: &SaverOptions,
    dry_run: bool,
) -> Result<BlobSaver> {
    let index = repo.load_index()?;
    Ok(BlobSaver::new(
        repo.clone(),
        index,
        SaverOptions {
            dry_run,
            ..opts.clone()
        },
    ))
}

/// The version string written into snapshots.
pub fn program_version() -> String {
    format!("holdfast {}", env!("CARGO_PKG_VERSION"))
}

/// Flush `saver` and write the snapshot for `tree` (unless `dry_run`).
pub fn commit(
    repo: &Arc<Repository>,
    saver: BlobSaver,
    tree: Id,
    meta: SnapshotMeta,
    mut summary: SnapshotSummary,
    start: GoTime,
    dry_run: bool,
) -> Result<(Option<Id>, Snapshot, SaverSummary)> {
    let saved = saver.finish()?;
    summary.data_blobs = saved.data_blobs;
    summary.tree_blobs = saved.tree_blobs;
    summary.data_added = saved.added_plain;
    summary.data_added_packed = saved.added_packed;
    summary.backup_start = start;
    summary.backup_end = GoTime::now();
    let mut snap = Snapshot::new(tree, meta.paths, start);
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
    let id = if dry_run {
        None
    } else {
        Some(repo.save_snapshot(&snap)?)
    };
    Ok((id, snap, saved))
}
