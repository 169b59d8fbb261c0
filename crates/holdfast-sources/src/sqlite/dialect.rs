//! SQLite as a [`Dialect`].
//!
//! - Whole copy (`file` mode): the database file itself, copied with the
//!   online backup API ([`super::backup`]), so `restic restore` gives back a
//!   working database.
//! - Tables mode: see [`super::tables`].
//! - Restore: the database is built beside the target as
//!   `NAME.holdfast-partial` (the stored file written back, or the tables
//!   loaded in one transaction), then `PRAGMA integrity_check` and the
//!   manifest's row counts; only then does it replace the target — the old
//!   database's `-wal`, `-shm` and `-journal` files go first (they would be
//!   replayed into the new one), then an atomic rename. A failed restore
//!   leaves the target untouched.

use std::fs::File;
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};

use holdfast_engine::{EngineError, Result};
use holdfast_format::manifest::{Manifest, ManifestColumn, ManifestTable};
use rusqlite::Connection;
use serde_json::json;

use super::{backup, catalog, check_integrity, list_tables, open_read_only, sqlite_err, tables};
use crate::database::{Dialect, Export, Exported, Out, Stored, Table, Target, WholeCopy};
use crate::source_url::SourceAddress;
use crate::writer::FileSink;

pub struct Sqlite {
    path: PathBuf,
    /// The tables-mode snapshot: a connection inside a read transaction.
    conn: Option<Connection>,
    /// A restore's target exists (and so is replaced on commit).
    existed: bool,
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Remove the file at `path`, if there is one.
fn remove_if_present(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

impl Sqlite {
    pub fn new(path: PathBuf) -> Sqlite {
        Sqlite {
            path,
            conn: None,
            existed: false,
        }
    }

    fn conn(&self) -> Result<&Connection> {
        self.conn
            .as_ref()
            .ok_or_else(|| EngineError::Invalid("no snapshot is open".into()))
    }

    /// Where a restore builds the database before it replaces the target.
    fn partial(&self) -> PathBuf {
        with_suffix(&self.path, ".holdfast-partial")
    }
}

impl Dialect for Sqlite {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn whole_mode(&self) -> &'static str {
        "file"
    }

    fn address(&self) -> SourceAddress {
        SourceAddress::Sqlite(self.path.clone())
    }

    fn describe(&mut self, manifest: &mut Manifest) -> Result<()> {
        if manifest.mode != "tables" {
            // the rest comes from the copy (WholeCopy::finish)
            manifest.database = Some(backup::stored_name(&self.path));
            return Ok(());
        }
        let conn = self.conn()?;
        let version: String = conn
            .query_row("SELECT sqlite_version()", [], |r| r.get(0))
            .map_err(|e| sqlite_err("reading sqlite_version()", e))?;
        let user_version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| sqlite_err("reading PRAGMA user_version", e))?;
        manifest.database = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned());
        manifest.server_version = Some(version);
        manifest
            .extra
            .insert("user_version".into(), json!(user_version));
        Ok(())
    }

    fn whole_copy(&mut self) -> Result<(String, Box<dyn WholeCopy>)> {
        let copy = backup::copy(&self.path)?;
        Ok((backup::stored_name(&self.path), Box::new(copy)))
    }

    fn begin_snapshot(&mut self) -> Result<()> {
        let conn = open_read_only(&self.path)?;
        // One read transaction: every SELECT after this sees one instant.
        conn.execute_batch("BEGIN")
            .map_err(|e| sqlite_err("starting the read transaction", e))?;
        self.conn = Some(conn);
        Ok(())
    }

    fn list_tables(&mut self) -> Result<Vec<Table>> {
        catalog(self.conn()?)
    }

    fn write_schema(
        &mut self,
        kept: &[&Table],
        left_out: &[&Table],
        out: &mut Out<'_, '_>,
    ) -> Result<Vec<String>> {
        tables::write_schema(self.conn()?, kept, left_out, out)
    }

    fn describe_query(&mut self, sql: &str) -> Result<Vec<ManifestColumn>> {
        tables::describe_query(self.conn()?, sql)
    }

    fn export(&mut self, items: &[Export<'_>], writer: &mut dyn FileSink) -> Result<Vec<Exported>> {
        let conn = self.conn()?;
        items
            .iter()
            .map(|item| tables::export(conn, item, writer))
            .collect()
    }

    fn end_snapshot(&mut self) -> Result<()> {
        if let Some(conn) = self.conn.take() {
            conn.execute_batch("COMMIT")
                .map_err(|e| sqlite_err("ending the read transaction", e))?;
        }
        Ok(())
    }

    fn prepare(&mut self, manifest: &Manifest, clean: bool) -> Result<Target> {
        let target = &self.path;
        self.existed = match std::fs::metadata(target) {
            Ok(m) if m.is_dir() => {
                return Err(EngineError::Invalid(format!(
                    "{} is a directory; give the database file's path",
                    target.display()
                )));
            }
            Ok(m) if m.len() > 0 && !clean => {
                return Err(EngineError::Invalid(format!(
                    "{} already exists and is not empty; restore to a new path, or add --clean \
                     to replace it (stop the application first)",
                    target.display()
                )));
            }
            Ok(_) => true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(EngineError::io(format!("reading {}", target.display()), e)),
        };
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| EngineError::io(format!("creating {}", parent.display()), e))?;
        }
        let _ = std::fs::remove_file(self.partial());
        Ok(Target {
            database: manifest.database.clone().unwrap_or_default(),
            created: !self.existed,
        })
    }

    fn load_whole(&mut self, from: &Stored<'_>, file: &str) -> Result<u64> {
        let partial = self.partial();
        let write_err = |e| EngineError::io(format!("writing {}", partial.display()), e);
        let out = File::create(&partial)
            .map_err(|e| EngineError::io(format!("creating {}", partial.display()), e))?;
        let mut out = BufWriter::with_capacity(1 << 20, out);
        let mut stored = from.open(file)?;
        io::copy(&mut stored, &mut out).map_err(write_err)?;
        let out = out.into_inner().map_err(|e| write_err(e.into_error()))?;
        out.sync_all().map_err(write_err)?;
        stored.check()
    }

    fn load_tables(&mut self, from: &Stored<'_>, tables: &[ManifestTable]) -> Result<u64> {
        let conn =
            Connection::open(self.partial()).map_err(|e| sqlite_err("creating the database", e))?;
        tables::load(conn, from, tables)
    }

    fn count_rows(&mut self, tables: &[ManifestTable]) -> Result<Vec<u64>> {
        let conn = open_read_only(&self.partial())?;
        check_integrity(&conn, false).map_err(|e| {
            EngineError::source(format!(
                "the restored database failed its check: {e}; nothing was replaced"
            ))
        })?;
        let now = list_tables(&conn)?;
        Ok(tables
            .iter()
            .map(|t| {
                now.iter()
                    .find(|n| n.name == t.name)
                    .map_or(u64::MAX, |n| n.rows)
            })
            .collect())
    }

    fn commit(&mut self) -> Result<()> {
        let (target, partial) = (&self.path, self.partial());
        if self.existed {
            for side in ["-wal", "-shm", "-journal"] {
                remove_if_present(&with_suffix(target, side)).map_err(|e| {
                    EngineError::io(format!("removing the old database's {side} file"), e)
                })?;
            }
        }
        std::fs::rename(&partial, target).map_err(|e| {
            EngineError::io(format!("moving the database into {}", target.display()), e)
        })?;
        if let Some(parent) = target.parent()
            && let Ok(d) = File::open(parent)
        {
            let _ = d.sync_all();
        }
        Ok(())
    }

    fn undo(&mut self, error: EngineError) -> EngineError {
        let _ = std::fs::remove_file(self.partial());
        error
    }

    fn discard(&mut self) -> Result<()> {
        if self.existed {
            return Ok(());
        }
        remove_if_present(&self.path)
            .map_err(|e| EngineError::io(format!("removing {}", self.path.display()), e))
    }
}
