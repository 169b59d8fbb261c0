//! One place that maps a database or stream address to its source: the
//! CLI's `backup ADDRESS` and the service's workers both come through here.

use std::path::Path;
use std::sync::Arc;

use holdfast_engine::repository::Repository;
use holdfast_engine::{EngineError, Result};

use holdfast_format::Id;
use holdfast_format::manifest::snapshot_kind;
use holdfast_format::snapshot::Snapshot;

use crate::database::backup::{backup_tables, backup_whole};
use crate::database::restore::{RestoreReport, restore};
use crate::database::select::TablesOptions;
use crate::database::{Stored, for_address};
use crate::jsonl::Endpoint;
use crate::jsonl::backup::{JsonlBackupOptions, backup_jsonl};
use crate::jsonl::replay::{ReplayOptions, replay_events};
use crate::progress::Progress;
use crate::secret::Secret;
use crate::source_url::SourceAddress;
use crate::spec::{BackupReport, BackupSettings};

/// Source options that only some kinds of source take.
#[derive(Debug, Clone, Default)]
pub struct SourceOptions {
    pub max_schema_version: Option<u64>,
    /// Tables mode (`--mode tables`) and its selection; None for dump mode.
    pub tables: Option<TablesOptions>,
}

/// Back up the database or event stream at `addr`. `credential` is the
/// password (databases) or bearer token (event streams); without it a
/// password in the address is used, else the tools' own means (PGPASSWORD,
/// ~/.pgpass, MYSQL_PWD, option files).
pub fn backup_address(
    repo: &Arc<Repository>,
    addr: SourceAddress,
    credential: Option<Secret>,
    source_opts: &SourceOptions,
    opts: BackupSettings,
    progress: &Progress,
) -> Result<BackupReport> {
    match addr {
        SourceAddress::Jsonl(address) => {
            if source_opts.tables.is_some() {
                return Err(EngineError::Invalid(
                    "--mode tables applies to databases, not to event streams".into(),
                ));
            }
            let endpoint = Endpoint {
                address,
                token: credential,
            };
            let jopts = JsonlBackupOptions {
                max_schema_version: source_opts.max_schema_version,
            };
            backup_jsonl(repo, &endpoint, &jopts, opts, progress)
        }
        SourceAddress::Path(p) => Err(EngineError::Invalid(format!(
            "{} is a path, not a source address",
            p.display()
        ))),
        addr => {
            let mut d = for_address(addr, credential)?;
            match &source_opts.tables {
                Some(t) => backup_tables(repo, d.as_mut(), t, opts, progress),
                None => backup_whole(repo, d.as_mut(), opts, progress),
            }
        }
    }
}

/// Restore a database or stream snapshot into `addr`.
/// `credential` as for [`backup_address`]; `replay_state` is where event
/// replays keep their progress so an interrupted one resumes.
#[allow(clippy::too_many_arguments)]
pub fn restore_address(
    repo: &Repository,
    snapshot_id: &Id,
    snapshot: &Snapshot,
    addr: SourceAddress,
    credential: Option<Secret>,
    clean: bool,
    replay_state: &Path,
    progress: &Progress,
) -> Result<RestoreReport> {
    let Some((kind, mode)) = snapshot_kind(snapshot) else {
        return Err(EngineError::Invalid(
            "this snapshot holds files, not a database: restore it into a directory".into(),
        ));
    };
    let Some(manifest) = holdfast_engine::manifest::load(repo, snapshot)? else {
        return Err(EngineError::Invalid(
            "the snapshot has no manifest.json: it cannot be restored into a database".into(),
        ));
    };
    let refused = |addr: &dyn std::fmt::Display| {
        EngineError::Invalid(format!(
            "a {kind} {mode} snapshot cannot be restored into {addr}"
        ))
    };
    match addr {
        SourceAddress::Jsonl(address) if kind == "jsonl" && mode == "events" => {
            let endpoint = Endpoint {
                address,
                token: credential,
            };
            let replay = ReplayOptions::new(replay_state.to_path_buf());
            replay_events(
                repo,
                snapshot_id,
                snapshot,
                &manifest,
                &endpoint,
                &replay,
                progress,
            )
        }
        SourceAddress::Postgres(_) | SourceAddress::Mysql(_) | SourceAddress::Sqlite(_) => {
            let shown = addr.to_string();
            let mut d = for_address(addr, credential)?;
            if d.kind() != kind || (mode != "tables" && mode != d.whole_mode()) {
                return Err(refused(&shown));
            }
            let from = Stored {
                repo,
                snapshot,
                manifest: &manifest,
                progress,
            };
            restore(d.as_mut(), &from, clean)
        }
        addr => Err(refused(&addr)),
    }
}
