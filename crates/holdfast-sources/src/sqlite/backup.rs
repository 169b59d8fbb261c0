//! `backup sqlite:///path/app.db`: SQLite's online backup API copies the
//! database page by page into a temporary file in one step, under one read
//! transaction — a consistent instant even while the application writes
//! (in WAL mode writers are not blocked; in rollback-journal mode they wait
//! for the copy). The copy is checked with `PRAGMA quick_check`, its tables
//! counted, and streamed into the repository as the database file itself.
//!
//! The temporary copy needs as much free space as the database, in
//! `$TMPDIR` (or /tmp); it is deleted whatever happens.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use holdfast_engine::repository::Repository;
use holdfast_engine::{EngineError, Result};
use rusqlite::Connection;
use rusqlite::backup::{Backup, StepResult};
use serde_json::json;

use super::{check_integrity, list_tables, open_read_only, sqlite_err};
use crate::db_backup::{DumpBackupOptions, DumpBackupResult, commit_source, dump_file_name};
use crate::progress::Progress;
use crate::writer::SnapshotWriter;
use holdfast_format::manifest::Manifest;

/// The name the database file gets in the snapshot: its own file name.
fn stored_name(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name.is_empty() || name == holdfast_format::manifest::MANIFEST_FILE {
        dump_file_name("database", "db")
    } else {
        name
    }
}

/// How long the copy waits for a lock held by another connection.
const BUSY_WAIT: Duration = Duration::from_secs(60);

/// Back up the SQLite database at `path`.
pub fn backup_sqlite(
    repo: &Arc<Repository>,
    path: &Path,
    opts: DumpBackupOptions,
    progress: &Progress,
) -> Result<DumpBackupResult> {
    let source = open_read_only(path)?;
    let temp = tempfile::Builder::new()
        .prefix(".holdfast-sqlite-")
        .suffix(".db")
        .tempfile()
        .map_err(|e| EngineError::io("creating a temporary file for the SQLite copy", e))?;
    let mut copy =
        Connection::open(temp.path()).map_err(|e| sqlite_err("opening the temporary copy", e))?;
    {
        let backup = Backup::new(&source, &mut copy)
            .map_err(|e| sqlite_err(format!("starting the backup of {}", path.display()), e))?;
        // -1: every page in one step, so the copy is one consistent instant
        // and a busy writer cannot make it restart forever. A step that
        // finds the database busy or locked is retried for a while.
        let deadline = std::time::Instant::now() + BUSY_WAIT;
        loop {
            holdfast_engine::cancel::check()?;
            match backup
                .step(-1)
                .map_err(|e| sqlite_err(format!("copying {}", path.display()), e))?
            {
                StepResult::Done => break,
                StepResult::More => continue,
                StepResult::Busy | StepResult::Locked if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100))
                }
                _ => {
                    return Err(EngineError::source_transient(format!(
                        "{} stayed locked by another connection for {} s; no snapshot was written",
                        path.display(),
                        BUSY_WAIT.as_secs()
                    )));
                }
            }
        }
    }
    drop(source);
    check_integrity(&copy, true).map_err(|e| {
        EngineError::source(format!(
            "the copy of {} is damaged ({e}); no snapshot was written",
            path.display()
        ))
    })?;
    let table_list = list_tables(&copy)?;
    let pragma = |name: &str| -> Result<serde_json::Value> {
        copy.query_row(&format!("PRAGMA {name}"), [], |r| {
            r.get::<_, rusqlite::types::Value>(0)
        })
        .map(|v| match v {
            rusqlite::types::Value::Integer(i) => json!(i),
            rusqlite::types::Value::Text(t) => json!(t),
            _ => serde_json::Value::Null,
        })
        .map_err(|e| sqlite_err(format!("reading PRAGMA {name}"), e))
    };
    let page_size = pragma("page_size")?;
    let page_count = pragma("page_count")?;
    let user_version = pragma("user_version")?;
    let sqlite_version: String = copy
        .query_row("SELECT sqlite_version()", [], |r| r.get(0))
        .map_err(|e| sqlite_err("reading sqlite_version()", e))?;
    drop(copy);

    let file_name = stored_name(path);
    let address = format!("sqlite://{}", path.display());
    let mut writer = SnapshotWriter::new(repo, opts.chunker, &opts.saver, opts.dry_run, progress)?;
    let reader = std::fs::File::open(temp.path())
        .map_err(|e| EngineError::io("reading the temporary SQLite copy", e))?;
    let facts = writer.add_file(
        &file_name,
        std::io::BufReader::with_capacity(1 << 20, reader),
    )?;
    drop(temp);

    let mut manifest = Manifest::new("sqlite", "file", address.clone());
    manifest.database = Some(file_name.clone());
    manifest.server_version = Some(sqlite_version.clone());
    manifest.tool = Some(format!("SQLite online backup API {sqlite_version}"));
    manifest.extra.insert("page_size".into(), page_size);
    manifest.extra.insert("page_count".into(), page_count);
    manifest.extra.insert("user_version".into(), user_version);
    manifest.add_file(&file_name, facts.size, &facts.sha256);
    manifest.tables = table_list;
    commit_source(
        writer,
        manifest,
        opts.meta,
        Some(&file_name),
        Default::default(),
        Vec::new(),
    )
}
