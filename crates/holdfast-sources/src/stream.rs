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
use crate::writer::FileFacts;

/// Read `reader` to its end and store it as a snapshot holding one file:
/// its id (none for a dry run) and the snapshot. A read error fails the
/// backup: no snapshot is written.
pub fn backup_stream(
    repo: &Arc<Repository>,
    reader: impl Read,
    filename: &str,
    opts: BackupSettings,
    progress: &Progress,
) -> Result<(Option<Id>, Snapshot)> {
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
    verify: impl FnOnce(&FileFacts) -> Result<Option<serde_json::Value>>,
) -> Result<(Option<Id>, Snapshot)> {
    // one non-empty path component
    crate::writer::validate_name(filename)?;
    let mut w = opts.writer(repo, progress)?;
    let facts = w.add_file(filename, reader)?;
    let extra = verify(&facts)?;
    let mut meta = opts.meta;
    meta.paths = vec![format!("/{filename}")];
    if let Some(extra) = extra {
        meta.add_extra(extra);
    }
    w.commit(meta)
}
