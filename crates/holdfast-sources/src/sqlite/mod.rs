//! SQLite: a consistent copy taken with SQLite's online backup API while
//! the application keeps writing, stored as the database file itself (so
//! `restic restore` gives back a working database), and restored to a
//! file that must pass `PRAGMA integrity_check` and the manifest's row
//! counts before it replaces anything.
//!
//! - [`dialect`]: SQLite as a [`crate::database::Dialect`];
//! - [`backup`]: the consistent copy for `file` mode; [`tables`]: tables
//!   mode; [`schema_sql`]: reading SQLite's stored DDL.

pub mod backup;
pub mod dialect;
pub mod schema_sql;
pub mod tables;

pub use dialect::Sqlite;

use std::path::Path;
use std::time::Duration;

use holdfast_engine::{EngineError, Result};
use rusqlite::{Connection, OpenFlags};

use holdfast_format::manifest::{ManifestColumn, ManifestTable};

use crate::database::{Syntax, Table, standard_literal, tables_from_catalog};
pub(crate) use crate::dump_scan::postgres::quote_ident;

/// How SQLite writes SQL (names and strings as PostgreSQL does); a table
/// without a primary key is ordered as its rows are stored.
pub(crate) const SQL: Syntax = Syntax {
    ident: quote_ident,
    literal: standard_literal,
    unkeyed_order: |_| "rowid".into(),
};

/// How long a statement waits for another connection's lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) fn sqlite_err(what: impl std::fmt::Display, e: rusqlite::Error) -> EngineError {
    EngineError::source(format!("{what}: {e}"))
}

/// Open an existing database read-only, with a clear error when it is
/// missing or not a database.
pub(crate) fn open_read_only(path: &Path) -> Result<Connection> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(EngineError::source(format!(
                "no SQLite database at {}: the file does not exist",
                path.display()
            )));
        }
        Err(e) => return Err(EngineError::io(format!("reading {}", path.display()), e)),
        Ok(m) if !m.is_file() => {
            return Err(EngineError::source(format!(
                "{} is not a file, so not a SQLite database",
                path.display()
            )));
        }
        Ok(_) => {}
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| sqlite_err(format!("opening {}", path.display()), e))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| sqlite_err("setting the busy timeout", e))?;
    // The first read tells a database from any other file.
    conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
        r.get::<_, i64>(0)
    })
    .map_err(|e| {
        sqlite_err(
            format!("{} is not a readable SQLite database", path.display()),
            e,
        )
    })?;
    Ok(conn)
}

/// Every table (not SQLite's own) with its columns and primary key, in
/// name order.
pub(crate) fn catalog(conn: &Connection) -> Result<Vec<Table>> {
    // table_xinfo also lists generated columns (hidden 2: virtual, 3:
    // stored); hidden 1 is a virtual table's hidden column
    let sql = "SELECT s.name, c.name, c.type, c.pk, c.hidden \
        FROM sqlite_schema s JOIN pragma_table_xinfo(s.name) c \
        WHERE s.type = 'table' AND s.name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
          AND c.hidden <> 1 ORDER BY s.name, c.cid";
    let rows = query_all(conn, sql, "listing tables", |r| {
        let column = ManifestColumn {
            name: r.get(1)?,
            sql_type: r.get(2)?,
            generated: r.get::<_, i64>(4)? != 0,
        };
        let key: u32 = r.get(3)?;
        Ok((vec![r.get(0)?], column, (key > 0).then_some(key)))
    })?;
    tables_from_catalog(rows.into_iter().map(Ok))
}

/// Every row of `sql`, read by `row`; `what` names the reading in errors.
pub(crate) fn query_all<T>(
    conn: &Connection,
    sql: &str,
    what: &str,
    row: impl FnMut(&rusqlite::Row) -> rusqlite::Result<T>,
) -> Result<Vec<T>> {
    let mut stmt = conn.prepare(sql).map_err(|e| sqlite_err(what, e))?;
    let rows = stmt.query_map([], row).and_then(|rows| rows.collect());
    rows.map_err(|e| sqlite_err(what, e))
}

/// Every table (not SQLite's own) with its columns and row count, in name
/// order.
pub(crate) fn list_tables(conn: &Connection) -> Result<Vec<ManifestTable>> {
    catalog(conn)?
        .into_iter()
        .map(|t| {
            let name = t.display_name();
            let rows: i64 = conn
                .query_row(
                    &format!("SELECT count(*) FROM {}", quote_ident(&name)),
                    [],
                    |r| r.get(0),
                )
                .map_err(|e| sqlite_err(format!("counting rows of {name}"), e))?;
            Ok(ManifestTable {
                name,
                parts: t.parts,
                rows: rows as u64,
                file: None,
                columns: t.columns,
            })
        })
        .collect()
}

/// `PRAGMA integrity_check` (or `quick_check`): Ok when SQLite says "ok",
/// else the first problems it lists.
pub(crate) fn check_integrity(conn: &Connection, quick: bool) -> Result<()> {
    let pragma = if quick {
        "quick_check"
    } else {
        "integrity_check"
    };
    let (sql, what) = (format!("PRAGMA {pragma}(5)"), format!("running {pragma}"));
    let lines: Vec<String> = query_all(conn, &sql, &what, |r| r.get(0))?;
    if lines.len() == 1 && lines[0] == "ok" {
        return Ok(());
    }
    Err(EngineError::source(format!(
        "PRAGMA {pragma} found problems:\n  {}",
        lines.join("\n  ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_and_integrity_of_a_fresh_database() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.db");
        let c = Connection::open(&p).unwrap();
        c.execute_batch(
            "CREATE TABLE \"we\"\"ird\" (a INTEGER PRIMARY KEY, b TEXT);
             INSERT INTO \"we\"\"ird\" (b) VALUES ('x'), ('y');
             CREATE TABLE empty (z BLOB);",
        )
        .unwrap();
        drop(c);
        let c = open_read_only(&p).unwrap();
        let t = list_tables(&c).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!((t[0].name.as_str(), t[0].rows), ("empty", 0));
        assert_eq!((t[1].name.as_str(), t[1].rows), ("we\"ird", 2));
        assert_eq!(t[1].columns[1].sql_type, "TEXT");
        check_integrity(&c, false).unwrap();

        let missing = open_read_only(&dir.path().join("nope.db"))
            .unwrap_err()
            .to_string();
        assert!(missing.contains("does not exist"), "{missing}");
        std::fs::write(dir.path().join("junk.db"), vec![7u8; 8192]).unwrap();
        let junk = open_read_only(&dir.path().join("junk.db"))
            .unwrap_err()
            .to_string();
        assert!(junk.contains("not a readable SQLite database"), "{junk}");
    }
}
