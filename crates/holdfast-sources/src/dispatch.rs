//! One place that maps a database or stream address to its source: the
//! CLI's `backup ADDRESS` and the service's workers both come through here.

use std::path::Path;
use std::sync::Arc;

use holdfast_engine::repository::Repository;
use holdfast_engine::{EngineError, Result};

use holdfast_format::Id;
use holdfast_format::snapshot::Snapshot;

use crate::db_backup::{DumpBackupOptions, DumpBackupResult, TablesOptions};
use crate::db_restore::RestoreReport;
use crate::jsonl::Endpoint;
use crate::jsonl::backup::{JsonlBackupOptions, backup_jsonl};
use crate::jsonl::replay::{ReplayOptions, replay_events};
use crate::mysql::MyClient;
use crate::mysql::dump::backup_mysql_dump;
use crate::mysql::restore::{MyRestoreOptions, restore_mysql_dump};
use crate::mysql::tables::backup_mysql_tables;
use crate::mysql::tables::restore_mysql_tables;
use crate::postgres::PgClient;
use crate::postgres::dump::backup_pg_dump;
use crate::postgres::restore::{PgRestoreOptions, restore_pg_dump, restore_pg_tables};
use crate::postgres::tables::backup_pg_tables;
use crate::progress::Progress;
use crate::secret::Secret;
use crate::source_url::SourceAddress;
use crate::sqlite::backup::backup_sqlite;
use crate::sqlite::restore::{SqliteRestoreOptions, restore_sqlite};
use crate::sqlite::tables::backup_sqlite_tables;
use crate::sqlite::tables::restore_sqlite_tables;
use holdfast_format::manifest::snapshot_kind;

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
    opts: DumpBackupOptions,
    progress: &Progress,
) -> Result<DumpBackupResult> {
    if source_opts.tables.is_some() && matches!(addr, SourceAddress::Jsonl(_)) {
        return Err(EngineError::Invalid(
            "--mode tables applies to databases, not to event streams".into(),
        ));
    }
    match addr {
        SourceAddress::Postgres(db) => {
            let pw = credential.or_else(|| db.password.as_deref().map(Secret::new));
            let mut client = PgClient::new(db, pw)?;
            match &source_opts.tables {
                Some(t) => backup_pg_tables(repo, &mut client, t, opts, progress),
                None => backup_pg_dump(repo, &mut client, opts, progress),
            }
        }
        SourceAddress::Mysql(db) => {
            let pw = credential.or_else(|| db.password.as_deref().map(Secret::new));
            let client = MyClient::new(db, pw)?;
            match &source_opts.tables {
                Some(t) => backup_mysql_tables(repo, &client, t, opts, progress),
                None => backup_mysql_dump(repo, &client, opts, progress),
            }
        }
        SourceAddress::Sqlite(path) => {
            if credential.is_some() {
                return Err(EngineError::Invalid(
                    "SQLite has no passwords: no credentials apply to it".into(),
                ));
            }
            match &source_opts.tables {
                Some(t) => backup_sqlite_tables(repo, &path, t, opts, progress),
                None => backup_sqlite(repo, &path, opts, progress),
            }
        }
        SourceAddress::Jsonl(address) => {
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
    match (addr, kind.as_str(), mode.as_str()) {
        (SourceAddress::Postgres(db), "postgres", mode @ ("dump" | "tables")) => {
            let pw = credential.or_else(|| db.password.as_deref().map(Secret::new));
            let mut client = PgClient::new(db, pw)?;
            let restore = if mode == "dump" {
                restore_pg_dump
            } else {
                restore_pg_tables
            };
            restore(
                repo,
                snapshot,
                &manifest,
                &mut client,
                &PgRestoreOptions { clean },
                progress,
            )
        }
        (SourceAddress::Mysql(db), "mysql", mode @ ("dump" | "tables")) => {
            let pw = credential.or_else(|| db.password.as_deref().map(Secret::new));
            let client = MyClient::new(db, pw)?;
            let restore = if mode == "dump" {
                restore_mysql_dump
            } else {
                restore_mysql_tables
            };
            restore(
                repo,
                snapshot,
                &manifest,
                &client,
                &MyRestoreOptions { clean },
                progress,
            )
        }
        (SourceAddress::Sqlite(path), "sqlite", mode @ ("file" | "tables")) => {
            let restore = if mode == "file" {
                restore_sqlite
            } else {
                restore_sqlite_tables
            };
            restore(
                repo,
                snapshot,
                &manifest,
                &path,
                &SqliteRestoreOptions { clean },
                progress,
            )
        }
        (SourceAddress::Jsonl(address), "jsonl", "events") => {
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
        (addr, kind, mode) => Err(EngineError::Invalid(format!(
            "a {kind} {mode} snapshot cannot be restored into {addr}"
        ))),
    }
}
