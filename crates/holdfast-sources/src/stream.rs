//! One byte stream stored as a one-file snapshot (`--stdin`), with bounded
//! memory whatever its length. Database dumps build on this.

use std::io::Read;
use std::sync::Arc;

use holdfast_engine::Result;
use holdfast_engine::repository::Repository;
use holdfast_format::Id;
use holdfast_format::snapshot::Snapshot;

use crate::progress::Progress;
use crate::spec::BackupSettings;

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
    crate::writer::validate_name(name)
}

/// What a stream turned out to be, for the caller's verdict before the
/// snapshot is written.
pub struct StreamFacts {
    pub size: u64,
    pub sha256: Id,
}

/// Read `reader` to its end and store it as a snapshot holding one file.
/// A read error fails the backup: no snapshot is written.
pub fn backup_stream(
    repo: &Arc<Repository>,
    reader: impl Read,
    filename: &str,
    opts: BackupSettings,
    progress: &Progress,
) -> Result<StreamBackupResult> {
    backup_stream_checked(repo, reader, filename, opts, progress, |_| Ok(None))
}

/// Like [`backup_stream`], with a verdict: once the stream has ended,
/// `verify` decides whether it is complete (an error means no snapshot, as
/// for a dump tool that failed) and may return holdfast's own metadata for
/// the snapshot.
pub fn backup_stream_checked(
    repo: &Arc<Repository>,
    reader: impl Read,
    filename: &str,
    opts: BackupSettings,
    progress: &Progress,
    verify: impl FnOnce(&StreamFacts) -> Result<Option<serde_json::Value>>,
) -> Result<StreamBackupResult> {
    validate_filename(filename)?;
    let mut w = opts.writer(repo, progress)?;
    let facts = w.add_file(filename, reader)?;
    let extra = verify(&StreamFacts {
        size: facts.size,
        sha256: facts.sha256,
    })?;
    let mut meta = opts.meta;
    meta.paths = vec![format!("/{filename}")];
    if let Some(extra) = extra {
        meta.add_extra(extra);
    }
    let (snapshot_id, snapshot) = w.commit(meta)?;
    Ok(StreamBackupResult {
        snapshot_id,
        snapshot,
        size: facts.size,
        sha256: facts.sha256,
    })
}
