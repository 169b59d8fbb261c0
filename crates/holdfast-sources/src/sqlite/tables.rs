//! SQLite tables mode: every selected table as CSV, all read inside one
//! read transaction (one instant, while the application keeps writing in
//! WAL mode), with the DDL and a manifest — the same layout and CSV
//! dialect as PostgreSQL's tables mode (`holdfast_format::table_csv`).
//!
//! Layout: `schema.sql` (CREATE TABLE), `schema-post.sql` (indexes,
//! triggers, views), `sequences.sql` (AUTOINCREMENT counters),
//! `tables/<table>.csv`, `queries/<name>.csv`, `manifest.json`.
//! Values: integers and reals as SQLite prints them, text as is, blobs as
//! `\x` + hex, NULL as an empty unquoted field.

use std::collections::HashMap;
use std::io::{self, BufReader, Read};
use std::path::Path;
use std::sync::Arc;

use holdfast_engine::blob_reader::BlobReader;
use holdfast_engine::repository::Repository;
use holdfast_engine::{EngineError, Result};
use holdfast_format::Id;
use holdfast_format::snapshot::Snapshot;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, Rows};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::restore::{SqliteRestoreOptions, check_target, replace_with};
use super::{check_integrity, list_tables, open_read_only, quote_ident, schema_sql, sqlite_err};
use crate::db_backup::{
    DumpBackupOptions, DumpBackupResult, Selection, TableFilter, TablesOptions, commit_source,
    table_file,
};
use crate::db_restore::{RestoreReport, verify_counts};
use crate::progress::Progress;
use crate::writer::SnapshotWriter;
use holdfast_engine::manifest::root_file;
use holdfast_format::manifest::{Manifest, ManifestColumn, ManifestTable};
use holdfast_format::table_csv::{CsvField, CsvRecords, hex_field, parse_hex_field, write_text};

/// Rows of a statement as CSV bytes, produced as they are read.
struct CsvRows<'s> {
    rows: Rows<'s>,
    columns: usize,
    header: Option<Vec<u8>>,
    buf: Vec<u8>,
    pos: usize,
    count: u64,
}

impl Read for CsvRows<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
            if let Some(h) = self.header.take() {
                self.buf = h;
            } else {
                let row = self.rows.next().map_err(io::Error::other)?;
                let Some(row) = row else { return Ok(0) };
                for i in 0..self.columns {
                    if i > 0 {
                        self.buf.push(b',');
                    }
                    match row.get_ref(i).map_err(io::Error::other)? {
                        ValueRef::Null => {}
                        ValueRef::Integer(v) => {
                            self.buf.extend_from_slice(v.to_string().as_bytes())
                        }
                        ValueRef::Real(v) => {
                            self.buf.extend_from_slice(format!("{v:?}").as_bytes())
                        }
                        ValueRef::Text(t) => {
                            write_text(&mut self.buf, &String::from_utf8_lossy(t))?
                        }
                        ValueRef::Blob(b) => self.buf.extend_from_slice(hex_field(b).as_bytes()),
                    }
                }
                self.buf.push(b'\n');
                self.count += 1;
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn header(names: &[String]) -> Vec<u8> {
    let mut h = Vec::new();
    for (i, n) in names.iter().enumerate() {
        if i > 0 {
            h.push(b',');
        }
        let _ = write_text(&mut h, n);
    }
    h.push(b'\n');
    h
}

/// Stream the result of `sql` into the snapshot as `file`; returns the
/// rows and the file's facts.
fn export_query(
    conn: &Connection,
    sql: &str,
    file: &str,
    writer: &mut SnapshotWriter,
) -> Result<(u64, crate::writer::FileFacts, Vec<ManifestColumn>)> {
    let mut stmt = conn
        .prepare(sql)
        .map_err(|e| sqlite_err(format!("preparing the export of {file}"), e))?;
    // nothing that writes, attaches or ends the snapshot's transaction
    if !stmt.readonly() {
        return Err(holdfast_engine::EngineError::Invalid(format!(
            "the export of {file} is not a read-only statement"
        )));
    }
    let columns: Vec<ManifestColumn> = stmt
        .columns()
        .iter()
        .map(|c| ManifestColumn {
            name: c.name().to_string(),
            sql_type: c.decl_type().unwrap_or("").to_string(),
            generated: false,
        })
        .collect();
    let names: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
    let rows = stmt
        .query([])
        .map_err(|e| sqlite_err(format!("reading {file}"), e))?;
    let mut reader = CsvRows {
        rows,
        columns: names.len(),
        header: Some(header(&names)),
        buf: Vec::new(),
        pos: 0,
        count: 0,
    };
    let facts = writer.add_file(file, &mut reader)?;
    Ok((reader.count, facts, columns))
}

/// Back up the SQLite database at `path` in tables mode.
pub fn backup_sqlite_tables(
    repo: &Arc<Repository>,
    path: &Path,
    topts: &TablesOptions,
    opts: DumpBackupOptions,
    progress: &Progress,
) -> Result<DumpBackupResult> {
    let conn = open_read_only(path)?;
    let filter = TableFilter::new(topts)?;
    // One read transaction: every SELECT below sees the same instant.
    conn.execute_batch("BEGIN")
        .map_err(|e| sqlite_err("starting the read transaction", e))?;
    let all = list_tables(&conn)?;
    let mut chosen = Vec::new();
    let mut left_out = Vec::new();
    for t in &all {
        let cols: Vec<String> = t.columns.iter().map(|c| c.name.clone()).collect();
        match filter.select(None, &t.name, &cols) {
            Selection::Left => left_out.push(t.name.clone()),
            s => chosen.push((t, s)),
        }
    }
    topts.check_tenant_found(chosen.iter().map(|(_, s)| *s), &path.display().to_string())?;
    let mut warnings = topts.query_warnings();

    let address = format!("sqlite://{}", path.display());
    let mut writer = SnapshotWriter::new(repo, opts.chunker, &opts.saver, opts.dry_run, progress)?;
    let mut manifest = Manifest::new("sqlite", "tables", address.clone());
    manifest.database = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let version: String = conn
        .query_row("SELECT sqlite_version()", [], |r| r.get(0))
        .map_err(|e| sqlite_err("reading sqlite_version()", e))?;
    manifest.server_version = Some(version);
    let user_version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| sqlite_err("reading PRAGMA user_version", e))?;
    manifest
        .extra
        .insert("user_version".into(), json!(user_version));

    // DDL of what stays: tables first, then indexes, triggers and views.
    let mut stmt = conn
        .prepare("SELECT type, name, tbl_name, sql FROM sqlite_schema WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY rowid")
        .map_err(|e| sqlite_err("reading the schema", e))?;
    let schema: Vec<(String, String, String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .and_then(|rows| rows.collect())
        .map_err(|e| sqlite_err("reading the schema", e))?;
    drop(stmt);
    let kept = |tbl: &str| chosen.iter().any(|(t, _)| t.name == tbl);
    // What names a left-out table goes with it: views over it (and views
    // over those), triggers that name it, foreign keys into it.
    let mut gone = left_out.clone();
    loop {
        let before = gone.len();
        for (kind, name, _, sql) in &schema {
            if kind == "view" && !gone.contains(name) && schema_sql::names_any(sql, &gone) {
                warnings.push(format!(
                    "view {name} reads a table that is left out: it is left out too"
                ));
                gone.push(name.clone());
            }
        }
        if gone.len() == before {
            break;
        }
    }
    let (mut pre, mut post) = (String::new(), String::new());
    for (kind, name, tbl, sql) in &schema {
        match kind.as_str() {
            "table" if kept(tbl) => {
                let (sql, n) = schema_sql::without_foreign_keys_into(sql, &left_out);
                if n > 0 {
                    warnings.push(format!(
                        "{n} foreign key(s) of {tbl} reference a table that is left out: \
                         they are left out"
                    ));
                }
                pre.push_str(&format!("{sql};\n"));
            }
            "index" if kept(tbl) => post.push_str(&format!("{sql};\n")),
            "trigger" if kept(tbl) => {
                if schema_sql::names_any(sql, &gone) {
                    warnings.push(format!(
                        "trigger {name} on {tbl} names a table or view that is left out: \
                         it is left out too"
                    ));
                } else {
                    post.push_str(&format!("{sql};\n"));
                }
            }
            "view" if !gone.contains(name) => post.push_str(&format!("{sql};\n")),
            _ => {}
        }
    }
    for (file, text) in [("schema.sql", &pre), ("schema-post.sql", &post)] {
        let f = writer.add_bytes(file, text.as_bytes())?;
        manifest.add_file(file, f.size, &f.sha256);
    }
    let mut seq = String::from("-- AUTOINCREMENT counters at the snapshot's instant.\n");
    let has_seq: bool = conn
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name = 'sqlite_sequence'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n > 0)
        .unwrap_or(false);
    if has_seq {
        let mut stmt = conn
            .prepare("SELECT name, seq FROM sqlite_sequence ORDER BY name")
            .map_err(|e| sqlite_err("reading sqlite_sequence", e))?;
        let rows: Vec<(String, i64)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|rows| rows.collect())
            .map_err(|e| sqlite_err("reading sqlite_sequence", e))?;
        for (name, value) in rows.into_iter().filter(|(n, _)| kept(n)) {
            seq.push_str(&format!(
                "INSERT INTO sqlite_sequence (name, seq) VALUES ('{}', {value});\n",
                name.replace('\'', "''")
            ));
        }
    }
    let f = writer.add_bytes("sequences.sql", seq.as_bytes())?;
    manifest.add_file("sequences.sql", f.size, &f.sha256);

    for (t, selection) in &chosen {
        let q = quote_ident(&t.name);
        let cols: Vec<String> = t.columns.iter().map(|c| quote_ident(&c.name)).collect();
        let mut sql = format!("SELECT {} FROM {q}", cols.join(", "));
        if *selection == Selection::TenantRows {
            let tenant = topts.tenant.as_ref().expect("tenant rows need a tenant");
            sql.push_str(&format!(
                " WHERE {} = '{}'",
                quote_ident(&tenant.column),
                tenant.value.replace('\'', "''")
            ));
        }
        let pk = primary_key(&conn, &t.name)?;
        sql.push_str(&if pk.is_empty() {
            " ORDER BY rowid".to_string()
        } else {
            format!(
                " ORDER BY {}",
                pk.iter()
                    .map(|c| quote_ident(c))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        });
        let file = table_file("tables", &t.name);
        let (rows, facts, _) = export_query(&conn, &sql, &file, &mut writer)?;
        manifest.add_file(&file, facts.size, &facts.sha256);
        manifest.tables.push(ManifestTable {
            name: t.name.clone(),
            parts: vec![t.name.clone()],
            rows,
            file: Some(file),
            columns: t.columns.clone(),
        });
    }
    for (name, sql) in &topts.queries {
        let file = table_file("queries", name);
        let (rows, facts, columns) =
            export_query(&conn, sql.trim().trim_end_matches(';'), &file, &mut writer)?;
        manifest.add_file(&file, facts.size, &facts.sha256);
        manifest.tables.push(ManifestTable {
            name: name.clone(),
            parts: vec![name.clone()],
            rows,
            file: Some(file),
            columns,
        });
    }
    conn.execute_batch("COMMIT")
        .map_err(|e| sqlite_err("ending the read transaction", e))?;
    drop(conn);

    topts.describe_in(&mut manifest);
    commit_source(
        writer,
        manifest,
        opts.meta,
        None,
        Default::default(),
        warnings,
    )
}

/// A table's primary key columns, in key order.
fn primary_key(conn: &Connection, table: &str) -> Result<Vec<String>> {
    let mut stmt = conn
        .prepare(&format!("PRAGMA table_info({})", quote_ident(table)))
        .map_err(|e| sqlite_err(format!("reading the key of {table}"), e))?;
    let mut cols: Vec<(i64, String)> = stmt
        .query_map([], |r| Ok((r.get::<_, i64>(5)?, r.get::<_, String>(1)?)))
        .and_then(|rows| rows.collect())
        .map_err(|e| sqlite_err(format!("reading the key of {table}"), e))?;
    cols.retain(|(pk, _)| *pk > 0);
    cols.sort();
    Ok(cols.into_iter().map(|(_, c)| c).collect())
}

/// A snapshot file read whole-stream, with its SHA-256 checked against the
/// manifest at the end.
fn read_checked(
    repo: &Repository,
    snapshot: &Snapshot,
    manifest: &Manifest,
    path: &str,
    mut each: impl FnMut(&mut dyn io::BufRead) -> Result<()>,
) -> Result<u64> {
    let expected = manifest
        .file(path)
        .ok_or_else(|| EngineError::Invalid(format!("the manifest does not list {path}")))?;
    let node = match path.split_once('/') {
        None => root_file(repo, snapshot, path)?,
        Some((dir, name)) => match root_file_dir(repo, snapshot, dir)? {
            Some(tree) => repo
                .load_tree(&tree)?
                .nodes
                .into_iter()
                .find(|n| n.name == name.as_bytes()),
            None => None,
        },
    }
    .ok_or_else(|| EngineError::Invalid(format!("{path} is missing from the snapshot")))?;
    let content = node.content.unwrap_or_default();
    let mut hashing = Sha256Read {
        inner: BlobReader::new(repo, &content),
        hasher: Sha256::new(),
        count: 0,
    };
    {
        let mut buffered = BufReader::with_capacity(1 << 20, &mut hashing);
        each(&mut buffered)?;
        io::copy(&mut buffered, &mut io::sink())
            .map_err(|e| EngineError::io(format!("reading {path}"), e))?;
    }
    let sha = Id(hashing.hasher.finalize().into());
    if sha.to_hex() != expected.sha256 || hashing.count != expected.size {
        return Err(EngineError::source(format!(
            "{path} read back from the repository does not match the manifest; nothing was replaced"
        )));
    }
    Ok(hashing.count)
}

fn root_file_dir(repo: &Repository, snapshot: &Snapshot, dir: &str) -> Result<Option<Id>> {
    Ok(repo
        .load_tree(&snapshot.tree)?
        .nodes
        .into_iter()
        .find(|n| n.name == dir.as_bytes())
        .and_then(|n| n.subtree))
}

struct Sha256Read<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> Read for Sha256Read<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Restore a SQLite tables-mode snapshot into a new database file.
pub fn restore_sqlite_tables(
    repo: &Repository,
    snapshot: &Snapshot,
    manifest: &Manifest,
    target: &Path,
    opts: &SqliteRestoreOptions,
    progress: &Progress,
) -> Result<RestoreReport> {
    let existed = check_target(target, opts.clean)?;
    let restorable: Vec<ManifestTable> =
        manifest.restorable_tables().into_iter().cloned().collect();
    let (bytes, counted) = replace_with(target, existed, |partial| {
        let mut conn =
            Connection::open(partial).map_err(|e| sqlite_err("creating the database", e))?;
        let tx = conn
            .transaction()
            .map_err(|e| sqlite_err("starting the restore transaction", e))?;
        let mut bytes = 0u64;
        let run_file = |file: &str, tx: &rusqlite::Transaction| -> Result<u64> {
            let mut sql = String::new();
            let n = read_checked(
                repo,
                snapshot,
                manifest,
                file,
                &mut |r: &mut dyn io::BufRead| {
                    r.read_to_string(&mut sql)
                        .map_err(|e| EngineError::io(format!("reading {file}"), e))?;
                    Ok(())
                },
            )?;
            tx.execute_batch(&sql)
                .map_err(|e| sqlite_err(format!("running {file}"), e))?;
            Ok(n)
        };
        bytes += run_file("schema.sql", &tx)?;
        for t in &restorable {
            let file = t.file.clone().unwrap_or_default();
            // generated columns are exported, and computed again here
            let affinity: Vec<Option<char>> = t
                .columns
                .iter()
                .map(|c| (!c.generated).then(|| affinity(&c.sql_type)))
                .collect();
            let cols: Vec<String> = t.loaded_columns().map(|c| quote_ident(&c.name)).collect();
            let marks = vec!["?"; cols.len()].join(", ");
            let mut insert = tx
                .prepare(&format!(
                    "INSERT INTO {} ({}) VALUES ({marks})",
                    quote_ident(&t.name),
                    cols.join(", ")
                ))
                .map_err(|e| sqlite_err(format!("preparing the load of {}", t.name), e))?;
            bytes += read_checked(
                repo,
                snapshot,
                manifest,
                &file,
                &mut |r: &mut dyn io::BufRead| {
                    let mut csv = CsvRecords::new(r);
                    let mut rec = Vec::new();
                    csv.read_record(&mut rec)
                        .map_err(|e| EngineError::io(format!("reading {file}"), e))?; // header
                    while csv
                        .read_record(&mut rec)
                        .map_err(|e| EngineError::io(format!("reading {file}"), e))?
                    {
                        holdfast_engine::cancel::check()?;
                        let values: Vec<rusqlite::types::Value> = rec
                            .iter()
                            .zip(affinity.iter())
                            .filter_map(|(f, a)| a.map(|a| typed(f, a)))
                            .collect();
                        insert
                            .execute(rusqlite::params_from_iter(values))
                            .map_err(|e| sqlite_err(format!("loading a row of {}", t.name), e))?;
                    }
                    progress.file_done();
                    Ok(())
                },
            )?;
        }
        bytes += run_file("schema-post.sql", &tx)?;
        bytes += run_file("sequences.sql", &tx)?;
        let user_version = manifest
            .extra
            .get("user_version")
            .and_then(|v| v.as_i64())
            .unwrap_or(0);
        tx.execute_batch(&format!("PRAGMA user_version = {user_version}"))
            .map_err(|e| sqlite_err("setting user_version", e))?;
        tx.commit()
            .map_err(|e| sqlite_err("committing the restore", e))?;
        drop(conn);

        let check = open_read_only(partial)?;
        check_integrity(&check, false)?;
        let now: HashMap<String, u64> = list_tables(&check)?
            .into_iter()
            .map(|t| (t.name, t.rows))
            .collect();
        let mut only = manifest.clone();
        only.tables = restorable.clone();
        let found: Vec<u64> = only
            .tables
            .iter()
            .map(|t| now.get(&t.name).copied().unwrap_or(0))
            .collect();
        let counted = verify_counts(&only, &found)?;
        Ok((bytes, counted))
    })?;
    Ok(RestoreReport {
        target: format!("sqlite://{}", target.display()),
        database: manifest.database.clone().unwrap_or_default(),
        created: !existed,
        bytes,
        tables: counted,
        resumed_after: 0,
    })
}

/// SQLite's type affinity of a declared type (section 3.1 of its
/// datatype documentation): 'I'nteger, 'T'ext, 'B'lob, 'R'eal, 'N'umeric.
fn affinity(decl: &str) -> char {
    let d = decl.to_ascii_uppercase();
    if d.contains("INT") {
        'I'
    } else if d.contains("CHAR") || d.contains("CLOB") || d.contains("TEXT") {
        'T'
    } else if d.contains("BLOB") || d.is_empty() {
        'B'
    } else if d.contains("REAL") || d.contains("FLOA") || d.contains("DOUB") {
        'R'
    } else {
        'N'
    }
}

/// A CSV field as the value to insert: blobs back from hex where the
/// column holds blobs, numbers where the text is one, else text.
fn typed(f: &CsvField, affinity: char) -> rusqlite::types::Value {
    use rusqlite::types::Value;
    let Some(s) = f.value() else {
        return Value::Null;
    };
    if affinity == 'B'
        && let Some(b) = parse_hex_field(s)
    {
        return Value::Blob(b);
    }
    if affinity != 'T' {
        if let Ok(i) = s.parse::<i64>() {
            return Value::Integer(i);
        }
        if let Ok(r) = s.parse::<f64>()
            && s.chars().any(|c| c.is_ascii_digit())
        {
            return Value::Real(r);
        }
    }
    Value::Text(s.to_string())
}
