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

use std::io::{self, BufReader, Read};

use holdfast_engine::{EngineError, Result};
use holdfast_format::manifest::{ManifestColumn, ManifestTable};
use holdfast_format::table_csv::{CsvField, CsvRecords, hex_field, parse_hex_field, write_text};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, Rows};

use super::{SQL, query_all, quote_ident, schema_sql, sqlite_err};
use crate::database::{self, Export, Exportable, Exported, Out, Stored, Table, csv_header};
use crate::writer::FileSink;

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

/// Stream the result of `sql` into the snapshot as `file`.
fn export_query(
    conn: &Connection,
    sql: &str,
    file: &str,
    writer: &mut dyn FileSink,
) -> Result<Exported> {
    let (mut stmt, columns) = prepare_read_only(conn, sql, file)?;
    let rows = stmt
        .query([])
        .map_err(|e| sqlite_err(format!("reading {file}"), e))?;
    let mut reader = CsvRows {
        rows,
        columns: columns.len(),
        header: Some(csv_header(&columns)),
        buf: Vec::new(),
        pos: 0,
        count: 0,
    };
    let facts = writer.add_file(file, &mut reader)?;
    Ok(Exported {
        rows: reader.count,
        facts,
    })
}

/// `sql` prepared, and the columns it returns; refused unless it only
/// reads (nothing that writes, attaches or ends the snapshot's
/// transaction).
fn prepare_read_only<'c>(
    conn: &'c Connection,
    sql: &str,
    what: &str,
) -> Result<(rusqlite::Statement<'c>, Vec<ManifestColumn>)> {
    let stmt = conn
        .prepare(sql)
        .map_err(|e| sqlite_err(format!("preparing the export of {what}"), e))?;
    if !stmt.readonly() {
        return Err(EngineError::Invalid(format!(
            "the export of {what} is not a read-only statement"
        )));
    }
    let columns = stmt
        .columns()
        .iter()
        .map(|c| ManifestColumn {
            name: c.name().to_string(),
            sql_type: c.decl_type().unwrap_or("").to_string(),
            generated: false,
        })
        .collect();
    Ok((stmt, columns))
}

/// The DDL of what stays: tables first (without foreign keys into left-out
/// tables), then indexes, triggers and views (without those that name a
/// left-out table), then the AUTOINCREMENT counters.
pub(crate) fn write_schema(
    conn: &Connection,
    kept: &[&Table],
    left_out: &[&Table],
    out: &mut Out<'_, '_>,
) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    let left_out: Vec<String> = left_out.iter().map(|t| t.name().to_string()).collect();
    // DDL of what stays: tables first, then indexes, triggers and views.
    let schema: Vec<(String, String, String, String)> = query_all(
        conn,
        "SELECT type, name, tbl_name, sql FROM sqlite_schema WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY rowid",
        "reading the schema",
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    let kept = |tbl: &str| kept.iter().any(|t| t.name() == tbl);
    // What names a left-out table goes with it: views over it (and views
    // over those), triggers that name it, foreign keys into it.
    let views: Vec<(String, String)> = schema
        .iter()
        .filter(|(kind, ..)| kind == "view")
        .map(|(_, name, _, sql)| (name.clone(), sql.clone()))
        .collect();
    let mut gone = left_out.clone();
    for name in database::views_over(&views, &left_out, schema_sql::names_any) {
        warnings.push(format!(
            "view {name} reads a table that is left out: it is left out too"
        ));
        gone.push(name);
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
        out.store(file, text.as_bytes())?;
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
        let rows: Vec<(String, i64)> = query_all(
            conn,
            "SELECT name, seq FROM sqlite_sequence ORDER BY name",
            "reading sqlite_sequence",
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        for (name, value) in rows.into_iter().filter(|(n, _)| kept(n)) {
            let name = (SQL.literal)(&name);
            seq.push_str(&format!(
                "INSERT INTO sqlite_sequence (name, seq) VALUES ({name}, {value});\n"
            ));
        }
    }
    out.store("sequences.sql", seq.as_bytes())?;
    Ok(warnings)
}

/// The columns a `--query` returns.
pub(crate) fn describe_query(conn: &Connection, sql: &str) -> Result<Vec<ManifestColumn>> {
    Ok(prepare_read_only(conn, sql, "a query")?.1)
}

/// One table (the tenant's rows when given, in key order) or query.
pub(crate) fn export(
    conn: &Connection,
    item: &Export<'_>,
    writer: &mut dyn FileSink,
) -> Result<Exported> {
    let sql = match &item.what {
        Exportable::Query { sql, .. } => sql.to_string(),
        Exportable::Table { table, tenant } => {
            let columns = SQL.idents(table.columns.iter().map(|c| &c.name), ", ");
            SQL.table_select(&columns, table, *tenant)
        }
    };
    export_query(conn, &sql, &item.file, writer)
}

/// Build a tables-mode snapshot's database in `conn`, in one transaction:
/// `schema.sql`, every table's rows, `schema-post.sql`, `sequences.sql`,
/// `user_version`. Every file is checked against the manifest.
pub(crate) fn load(
    mut conn: Connection,
    from: &Stored<'_>,
    tables: &[ManifestTable],
) -> Result<u64> {
    let tx = conn
        .transaction()
        .map_err(|e| sqlite_err("starting the restore transaction", e))?;
    let mut bytes = 0u64;
    let run_file = |file: &str, tx: &rusqlite::Transaction| -> Result<u64> {
        let mut r = from.open(file)?;
        let mut sql = String::new();
        r.read_to_string(&mut sql)
            .map_err(|e| EngineError::io(format!("reading {file}"), e))?;
        let n = r.check()?;
        tx.execute_batch(&sql)
            .map_err(|e| sqlite_err(format!("running {file}"), e))?;
        Ok(n)
    };
    bytes += run_file("schema.sql", &tx)?;
    for t in tables {
        let file = t.file.clone().unwrap_or_default();
        // generated columns are exported, and computed again here
        let affinity: Vec<Option<char>> = t
            .columns
            .iter()
            .map(|c| (!c.generated).then(|| affinity(&c.sql_type)))
            .collect();
        let cols = SQL.idents(t.loaded_columns().map(|c| &c.name), ", ");
        let marks = vec!["?"; t.loaded_columns().count()].join(", ");
        let mut insert = tx
            .prepare(&format!(
                "INSERT INTO {} ({cols}) VALUES ({marks})",
                quote_ident(&t.name)
            ))
            .map_err(|e| sqlite_err(format!("preparing the load of {}", t.name), e))?;
        let mut r = from.open(&file)?;
        {
            let read_err = |e| EngineError::io(format!("reading {file}"), e);
            let mut buffered = BufReader::with_capacity(1 << 20, &mut r);
            let mut csv = CsvRecords::new(&mut buffered);
            let mut rec = Vec::new();
            csv.read_record(&mut rec).map_err(read_err)?; // the header
            while csv.read_record(&mut rec).map_err(read_err)? {
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
            io::copy(&mut buffered, &mut io::sink()).map_err(read_err)?;
        }
        bytes += r.check()?;
    }
    bytes += run_file("schema-post.sql", &tx)?;
    bytes += run_file("sequences.sql", &tx)?;
    let user_version = from
        .manifest
        .extra
        .get("user_version")
        .and_then(|v| v.as_i64())
        .unwrap_or(0);
    tx.execute_batch(&format!("PRAGMA user_version = {user_version}"))
        .map_err(|e| sqlite_err("setting user_version", e))?;
    tx.commit()
        .map_err(|e| sqlite_err("committing the restore", e))?;
    Ok(bytes)
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
