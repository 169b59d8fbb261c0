//! MySQL/MariaDB tables mode: every selected table as CSV, all read in ONE
//! client session inside `START TRANSACTION WITH CONSISTENT SNAPSHOT, READ
//! ONLY` (one instant for InnoDB tables), with the DDL from the dump tool
//! and a manifest — the layout and CSV dialect of PostgreSQL's tables mode.
//!
//! The server builds each CSV record itself (`CONCAT_WS` of quoted values,
//! binary columns as `\x` + hex, NULL as an empty field); the session's
//! output is one stream, split into per-table files at marker lines. A
//! marker starts with `#`, which no record can start with outside quotes
//! (a record starts with `"`, `,` or a newline), so the split is exact.
//!
//! Layout: `schema.sql` (tables and views, no triggers), `schema-post.sql`
//! (triggers, routines, events), `tables/<table>.csv`, `manifest.json`.

use std::collections::HashSet;
use std::io::{self, BufRead, BufReader, Read, Write};

use holdfast_engine::{EngineError, Result};
use holdfast_format::manifest::{ManifestColumn, ManifestTable};
use holdfast_format::table_csv::{CsvRecords, RecordCounter, parse_hex_field};

use super::ddl_filter::DropForeignKeys;
use super::{MyClient, SQL, sql_string};
use crate::command::Spawned;
use crate::database::restore::FeedPart;
use crate::database::restore::columns_from_rows;
use crate::database::{
    self, Export, Exportable, Exported, Out, Table, csv_header, fields, tables_from_catalog,
};
use crate::dump_scan::ScanningReader;
use crate::dump_scan::mysql::{MysqlDumpScan, quote_ident};
use crate::writer::FileSink;

const MARK_TABLE: &str = "#holdfast-table";
const MARK_END: &str = "#holdfast-end";

/// A column type's base (`decimal(12,2)` → `decimal`, `int(11) unsigned`
/// → `int`): information_schema's DATA_TYPE.
fn base_type(sql_type: &str) -> String {
    sql_type
        .split(['(', ' '])
        .next()
        .unwrap_or("")
        .to_ascii_lowercase()
}

fn is_binary(data_type: &str) -> bool {
    matches!(
        data_type,
        "binary"
            | "varbinary"
            | "tinyblob"
            | "blob"
            | "mediumblob"
            | "longblob"
            | "geometry"
            | "point"
            | "linestring"
            | "polygon"
            | "multipoint"
            | "multilinestring"
            | "multipolygon"
            | "geometrycollection"
    )
}

pub(crate) fn list_tables(client: &MyClient, db: &str) -> Result<Vec<Table>> {
    let name = sql_string(db);
    let rows = client.query(
        None,
        &format!(
            "SELECT c.TABLE_NAME, c.COLUMN_NAME, c.COLUMN_TYPE, \
               IFNULL(k.ORDINAL_POSITION, ''), IF(c.EXTRA LIKE '%GENERATED%', 'g', '') \
             FROM information_schema.COLUMNS c \
             JOIN information_schema.TABLES t ON t.TABLE_SCHEMA = c.TABLE_SCHEMA \
               AND t.TABLE_NAME = c.TABLE_NAME AND t.TABLE_TYPE = 'BASE TABLE' \
             LEFT JOIN information_schema.KEY_COLUMN_USAGE k ON k.TABLE_SCHEMA = c.TABLE_SCHEMA \
               AND k.TABLE_NAME = c.TABLE_NAME AND k.COLUMN_NAME = c.COLUMN_NAME \
               AND k.CONSTRAINT_NAME = 'PRIMARY' \
             WHERE c.TABLE_SCHEMA = {name} \
             ORDER BY c.TABLE_NAME, c.ORDINAL_POSITION;"
        ),
    )?;
    tables_from_catalog(rows.into_iter().map(|r| {
        let [table, col, col_type, pk, generated] = fields(r, "catalog")?;
        let column = ManifestColumn {
            name: col,
            sql_type: col_type,
            generated: !generated.is_empty(),
        };
        Ok((vec![table], column, pk.parse().ok()))
    }))
}

/// The list of expressions that makes the server write CSV records.
fn csv_fields(columns: &[ManifestColumn]) -> String {
    let fields: Vec<String> = columns
        .iter()
        .map(|c| {
            let (q, dt) = (quote_ident(&c.name), base_type(&c.sql_type));
            let text = if is_binary(&dt) {
                format!("CONCAT('\\\\x', LOWER(HEX({q})))")
            } else if dt == "bit" {
                // BIT as its number: HEX() drops leading zero digits.
                format!("CONCAT('\"', CAST({q} + 0 AS CHAR), '\"')")
            } else {
                format!("CONCAT('\"', REPLACE(CAST({q} AS CHAR), '\"', '\"\"'), '\"')")
            };
            format!("IF({q} IS NULL, '', {text})")
        })
        .collect();
    format!("CONCAT_WS(',', {})", fields.join(", "))
}

/// A `--query` result as CSV records. The query becomes a derived table;
/// a LIMIT inside keeps MariaDB from dropping its ORDER BY, and the rows
/// come out in the order it gives.
fn query_select(columns: &[ManifestColumn], sql: &str) -> String {
    let lower = sql.to_ascii_lowercase();
    let inner = if lower.split_whitespace().any(|w| w == "limit") {
        sql.to_string()
    } else {
        format!("{sql} LIMIT 18446744073709551615")
    };
    format!("SELECT {} FROM ({inner}) AS q", csv_fields(columns))
}

/// One table's records from the shared session output: bytes up to the
/// next marker line (a line starting with `#` outside quotes).
struct TableRecords<'a, R> {
    inner: &'a mut R,
    in_quotes: bool,
    at_line_start: bool,
    done: bool,
}

impl<R: BufRead> Read for TableRecords<'_, R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.done || out.is_empty() {
            return Ok(0);
        }
        let buf = self.inner.fill_buf()?;
        if buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the client's output ended in the middle of a table",
            ));
        }
        if self.at_line_start && !self.in_quotes && buf[0] == b'#' {
            self.done = true;
            return Ok(0);
        }
        let limit = buf.len().min(out.len());
        let mut n = 0;
        while n < limit {
            let b = buf[n];
            n += 1;
            self.at_line_start = false;
            if b == b'"' {
                self.in_quotes = !self.in_quotes;
            } else if b == b'\n' && !self.in_quotes {
                self.at_line_start = true;
                break;
            }
        }
        out[..n].copy_from_slice(&buf[..n]);
        self.inner.consume(n);
        Ok(n)
    }
}

fn expect_marker(r: &mut impl BufRead, want: &str) -> Result<()> {
    let mut line = String::new();
    r.read_line(&mut line)
        .map_err(|e| EngineError::io("reading the client's output", e))?;
    if line.trim_end() != want {
        return Err(EngineError::source(format!(
            "the table export lost its place (expected {want:?}, got {:?}); no snapshot was written",
            line.chars().take(80).collect::<String>()
        )));
    }
    Ok(())
}

/// Views of `db` that read one of `tables`, directly or through other
/// views. The server stores a view's definition with every table named
/// `` `db`.`table` ``, which is what is looked for.
fn views_over(client: &MyClient, db: &str, tables: &[String]) -> Result<Vec<String>> {
    let rows = client.query(
        None,
        &format!(
            "SELECT TABLE_NAME, VIEW_DEFINITION \
             FROM information_schema.VIEWS WHERE TABLE_SCHEMA = {} ORDER BY TABLE_NAME;",
            sql_string(db)
        ),
    )?;
    let views: Vec<(String, String)> = rows
        .into_iter()
        .filter_map(|r| <[String; 2]>::try_from(r).ok())
        .map(|[name, definition]| (name, definition))
        .collect();
    let reads = |definition: &str, names: &[String]| {
        names
            .iter()
            .any(|n| definition.contains(&SQL.idents([db, n], ".")))
    };
    Ok(database::views_over(&views, tables, reads))
}

/// Foreign keys of other tables of `db` that reference one of `tables`:
/// (table, constraint).
fn foreign_keys_into(
    client: &MyClient,
    db: &str,
    tables: &[String],
) -> Result<Vec<(String, String)>> {
    let rows = client.query(
        None,
        &format!(
            "SELECT TABLE_NAME, CONSTRAINT_NAME, REFERENCED_TABLE_NAME \
             FROM information_schema.REFERENTIAL_CONSTRAINTS \
             WHERE CONSTRAINT_SCHEMA = {0} AND UNIQUE_CONSTRAINT_SCHEMA = {0} \
             ORDER BY TABLE_NAME, CONSTRAINT_NAME;",
            sql_string(db)
        ),
    )?;
    Ok(rows
        .into_iter()
        .filter_map(|r| <[String; 3]>::try_from(r).ok())
        .filter(|[table, _, referenced]| tables.contains(referenced) && !tables.contains(table))
        .map(|[table, constraint, _]| (table, constraint))
        .collect())
}

/// The schema files of the tables not `left_out`: `schema.sql` (tables
/// and views) and `schema-post.sql` (triggers, routines, events) from the
/// dump tool. What kept objects say about left-out tables goes too: views
/// over them, and foreign keys that reference them (the dump tool keeps
/// both); the warnings say so.
pub(crate) fn write_schema(
    client: &MyClient,
    database: &str,
    left_out: &[&Table],
    out: &mut Out<'_, '_>,
) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    let mut left_out: Vec<String> = left_out.iter().map(|t| t.name().to_string()).collect();
    let mut drop_keys = HashSet::new();
    if !left_out.is_empty() {
        for view in views_over(client, database, &left_out)? {
            warnings.push(format!(
                "view {view} reads a table that is left out: it is left out too"
            ));
            left_out.push(view);
        }
        for (table, constraint) in foreign_keys_into(client, database, &left_out)? {
            warnings.push(format!(
                "foreign key {constraint} of {table} references a table that is left out: \
                 the constraint is left out"
            ));
            drop_keys.insert((table, constraint));
        }
    }
    let tool = client.tools.dump_tool()?;
    for (post, file) in [(false, "schema.sql"), (true, "schema-post.sql")] {
        let mut cmd = client.command(&tool.path);
        cmd.args([
            "--single-transaction",
            "--no-data",
            "--skip-dump-date",
            "--no-tablespaces",
            "--default-character-set=utf8mb4",
        ]);
        if post {
            cmd.args(["--no-create-info", "--triggers", "--routines", "--events"]);
        } else {
            cmd.arg("--skip-triggers");
        }
        for t in &left_out {
            cmd.arg(format!("--ignore-table={database}.{t}"));
        }
        cmd.arg("--").arg(database);
        out.store_ddl(
            file,
            cmd,
            &format!("{} (DDL)", tool.name()),
            DropForeignKeys::new(drop_keys.clone()),
            MysqlDumpScan::default(),
        )?;
    }
    Ok(warnings)
}

/// Every item in ONE client session inside one consistent snapshot: the
/// session's output is split into the items' files at marker lines.
pub(crate) fn export(
    client: &MyClient,
    database: &str,
    items: &[Export<'_>],
    writer: &mut dyn FileSink,
) -> Result<Vec<Exported>> {
    let mut script = String::from(
        "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ;\n\
         START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY;\n",
    );
    for (i, item) in items.iter().enumerate() {
        script.push_str(&format!("SELECT '{MARK_TABLE} {i}';\n"));
        script.push_str(&match &item.what {
            Exportable::Table { table, tenant } => {
                SQL.table_select(&csv_fields(&table.columns), table, *tenant)
            }
            Exportable::Query { sql, columns } => query_select(columns, sql),
        });
        script.push_str(";\n");
    }
    script.push_str(&format!("SELECT '{MARK_END}';\nCOMMIT;\n"));
    let (cmd, _) = client.client_command(
        Some(database),
        &[
            "--raw",
            "--quick",
            "--skip-column-names",
            "--max-allowed-packet=1G",
        ],
    )?;
    let (child, stdout) = Spawned::start_with_script(cmd, "mariadb", script)?;
    let mut out = BufReader::with_capacity(1 << 20, stdout);
    child.alongside(|| {
        let mut exported = Vec::new();
        for (i, item) in items.iter().enumerate() {
            expect_marker(&mut out, &format!("{MARK_TABLE} {i}"))?;
            let columns = match &item.what {
                Exportable::Table { table, .. } => &table.columns[..],
                Exportable::Query { columns, .. } => columns,
            };
            let header = csv_header(columns);
            let records = TableRecords {
                inner: &mut out,
                in_quotes: false,
                at_line_start: true,
                done: false,
            };
            let mut scan = ScanningReader::new(records, RecordCounter::default());
            let facts = writer.add_file(&item.file, &mut (&header[..]).chain(&mut scan))?;
            exported.push(Exported {
                rows: scan.scanner.records(),
                facts,
            });
        }
        expect_marker(&mut out, MARK_END)?;
        Ok(exported)
    })
}

/// The columns of a query's result: materialised empty (`LIMIT 0`) as a
/// temporary table in a session of its own, then described.
pub(crate) fn describe_query(
    client: &MyClient,
    db: &str,
    sql: &str,
) -> Result<Vec<ManifestColumn>> {
    let rows = client.query(
        Some(db),
        &format!(
            "CREATE TEMPORARY TABLE `holdfast_query_columns` AS SELECT * FROM ({sql}) AS q LIMIT 0;\n\
             SHOW COLUMNS FROM `holdfast_query_columns`;"
        ),
    )?;
    Ok(columns_from_rows(rows))
}

/// How a column's CSV text goes back into SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Literal {
    Text,
    /// `\x…` hex → `X'…'`.
    Binary,
    /// BIT: a bare number.
    Number,
    /// A generated column: exported, left to the server on restore.
    Computed,
}

fn csv_to_inserts(
    table: &str,
    columns: Vec<(String, Literal)>,
) -> crate::database::restore::Converter {
    let table = table.to_string();
    Box::new(move |r: &mut dyn BufRead, w: &mut dyn Write| {
        let mut csv = CsvRecords::new(r);
        let mut rec = Vec::new();
        csv.read_record(&mut rec)?; // the header
        let head = format!(
            "INSERT INTO {} ({}) VALUES ",
            quote_ident(&table),
            columns
                .iter()
                .filter(|(_, l)| *l != Literal::Computed)
                .map(|(c, _)| quote_ident(c))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut stmt = String::new();
        while csv.read_record(&mut rec)? {
            if rec.len() != columns.len() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "a record of {table} has {} fields, not {}",
                        rec.len(),
                        columns.len()
                    ),
                ));
            }
            stmt.push_str(if stmt.is_empty() { &head } else { "," });
            stmt.push('(');
            let values = rec
                .iter()
                .zip(&columns)
                .filter(|(_, (_, l))| *l != Literal::Computed);
            for (i, (f, (_, literal))) in values.enumerate() {
                if i > 0 {
                    stmt.push(',');
                }
                match f.value() {
                    None => stmt.push_str("NULL"),
                    Some(s)
                        if *literal == Literal::Number
                            && !s.is_empty()
                            && s.bytes().all(|b| b.is_ascii_digit()) =>
                    {
                        stmt.push_str(s)
                    }
                    Some(s) if *literal == Literal::Binary => match parse_hex_field(s) {
                        Some(b) if b.is_empty() => stmt.push_str("''"),
                        Some(b) => {
                            stmt.push_str("X'");
                            for byte in b {
                                stmt.push_str(&format!("{byte:02X}"));
                            }
                            stmt.push('\'');
                        }
                        None => stmt.push_str(&sql_string(s)),
                    },
                    Some(s) => stmt.push_str(&sql_string(s)),
                }
            }
            stmt.push(')');
            if stmt.len() > 1 << 20 {
                stmt.push_str(";\n");
                w.write_all(stmt.as_bytes())?;
                stmt.clear();
            }
        }
        if !stmt.is_empty() {
            stmt.push_str(";\n");
            w.write_all(stmt.as_bytes())?;
        }
        Ok(())
    })
}

/// What a tables-mode restore feeds the client: the DDL, then every
/// table's rows as INSERTs with foreign key checks off, then triggers,
/// routines and events.
pub(crate) fn load_parts(tables: &[ManifestTable]) -> Vec<FeedPart> {
    let mut parts = vec![
        FeedPart::Text("SET FOREIGN_KEY_CHECKS = 0;\nSET UNIQUE_CHECKS = 0;\n".into()),
        FeedPart::File("schema.sql".into()),
    ];
    for t in tables {
        let columns: Vec<(String, Literal)> = t
            .columns
            .iter()
            .map(|c| {
                let literal = match base_type(&c.sql_type).as_str() {
                    _ if c.generated => Literal::Computed,
                    "bit" => Literal::Number,
                    b if is_binary(b) => Literal::Binary,
                    _ => Literal::Text,
                };
                (c.name.clone(), literal)
            })
            .collect();
        parts.push(FeedPart::Converted {
            file: t.file.clone().unwrap_or_default(),
            convert: csv_to_inserts(&t.name, columns),
        });
    }
    parts.push(FeedPart::File("schema-post.sql".into()));
    parts.push(FeedPart::Text("SET FOREIGN_KEY_CHECKS = 1;\n".into()));
    parts
}
