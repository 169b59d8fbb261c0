//! `backup sqlite:///path/app.db`: SQLite's online backup API copies the
//! database page by page into a temporary file in one step, under one read
//! transaction — a consistent instant even while the application writes
//! (in WAL mode writers are not blocked; in rollback-journal mode they wait
//! for the copy). The copy is checked with `PRAGMA quick_check`, its tables
//! counted, and streamed into the repository as the database file itself.
//!
//! The temporary copy needs as much free space as the database, in
//! `$TMPDIR` (or /tmp); it is deleted whatever happens.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;
use std::time::Duration;

use holdfast_engine::{EngineError, Result};
use holdfast_format::manifest::{Manifest, ManifestTable};
use rusqlite::Connection;
use rusqlite::backup::{Backup, StepResult};
use serde_json::json;

use super::{check_integrity, list_tables, open_read_only, sqlite_err};
use crate::database::WholeCopy;
use crate::database::backup::dump_file_name;

/// The name the database file gets in the snapshot: its own file name.
pub(crate) fn stored_name(path: &Path) -> String {
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

/// The checked copy of a database, read as the snapshot's file; what it
/// holds goes into the manifest at the end.
pub(crate) struct SqliteCopy {
    reader: BufReader<File>,
    _temp: tempfile::NamedTempFile,
    tables: Vec<ManifestTable>,
    sqlite_version: String,
    /// page_size, page_count, user_version.
    pragmas: Vec<(&'static str, serde_json::Value)>,
}

/// Copy the database at `path` with the online backup API, check the copy
/// and count its tables.
pub(crate) fn copy(path: &Path) -> Result<SqliteCopy> {
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
    let mut pragmas = Vec::new();
    for name in ["page_size", "page_count", "user_version"] {
        pragmas.push((name, pragma(name)?));
    }
    let sqlite_version: String = copy
        .query_row("SELECT sqlite_version()", [], |r| r.get(0))
        .map_err(|e| sqlite_err("reading sqlite_version()", e))?;
    drop(copy);
    let file = File::open(temp.path())
        .map_err(|e| EngineError::io("reading the temporary SQLite copy", e))?;
    Ok(SqliteCopy {
        reader: BufReader::with_capacity(1 << 20, file),
        _temp: temp,
        tables: table_list,
        sqlite_version,
        pragmas,
    })
}

impl Read for SqliteCopy {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.reader.read(buf)
    }
}

impl WholeCopy for SqliteCopy {
    fn finish(self: Box<Self>, manifest: &mut Manifest) -> Result<()> {
        let version = &self.sqlite_version;
        manifest.server_version = Some(version.clone());
        manifest.tool = Some(format!("SQLite online backup API {version}"));
        for (name, value) in self.pragmas {
            manifest.extra.insert(name.into(), value);
        }
        manifest.tables = self.tables;
        Ok(())
    }

    fn abort(self: Box<Self>) {}
}
