//! Databases behind one interface: [`Dialect`] is what PostgreSQL, MySQL/
//! MariaDB and SQLite each provide (their folders implement it and nothing
//! else), and [`backup`] and [`restore`] are the whole-copy and tables-mode
//! backups and the restores, written once on top of it.
//!
//! Invariants:
//! - a dialect value serves one operation: it may hold a session (the
//!   tables-mode snapshot) and what undoing a restore needs;
//! - no snapshot is written unless every file is whole: a whole copy's
//!   [`WholeCopy::finish`] and every export check their tool's exit status
//!   and completeness before the generic code commits;
//! - a restore loads into a target [`Dialect::prepare`]d for it, is counted
//!   against the manifest, and only then [`Dialect::commit`]ted; any failure
//!   on that way goes through [`Dialect::undo`].
//!
//! What a new database kind provides (docs/ARCHITECTURE.md has the list):
//! server facts for the manifest, a whole copy (a dump tool's stream with
//! its scanner, or the database file), the tables-mode steps (a consistent
//! snapshot, the table list, the schema files, query description, CSV
//! export in the dialect of `holdfast_format::table_csv`), and the restore
//! steps (prepare, load a whole copy, load tables, count rows, commit,
//! undo). Then one arm in [`for_address`].

pub mod backup;
pub mod restore;
pub mod select;

use std::io::Read;
use std::process::ChildStdout;

use holdfast_engine::repository::Repository;
use holdfast_engine::{EngineError, Result};
use holdfast_format::manifest::{Manifest, ManifestColumn, ManifestTable};
use holdfast_format::snapshot::Snapshot;

use crate::command::{Spawned, tool_name};
use crate::dump_scan::{DumpScanner, ScanningReader};
use crate::line_filter::{LineEdit, LineFilter};
use crate::progress::Progress;
use crate::secret::Secret;
use crate::source_url::SourceAddress;
use crate::writer::{FileFacts, FileSink, SnapshotWriter};
use select::Tenant;

/// One kind of database, as the generic backups and restores use it. The
/// tables-mode steps come in the order `begin_snapshot`, `describe`,
/// `list_tables`, `write_schema`, `describe_query`…, `export`,
/// `end_snapshot`; a restore's in the order `prepare`, `load_*`,
/// `count_rows`, `commit` (or `undo` after any failure).
pub trait Dialect {
    /// The manifest's `kind`: `postgres`, `mysql`, `sqlite`.
    fn kind(&self) -> &'static str;
    /// The manifest's mode for a whole copy: `dump` (a tool's SQL) or
    /// `file` (the database file itself).
    fn whole_mode(&self) -> &'static str {
        "dump"
    }
    /// The database's address (its `Display` is redacted).
    fn address(&self) -> SourceAddress;
    /// The source or target, redacted: messages, reports, the manifest.
    fn display(&self) -> String {
        self.address().to_string()
    }
    /// How a message names the database (`"shop"`, `/srv/app.db`).
    fn database_for_messages(&self) -> String {
        match self.address() {
            SourceAddress::Postgres(db) | SourceAddress::Mysql(db) => format!("{:?}", db.database),
            SourceAddress::Sqlite(path) => path.display().to_string(),
            other => other.to_string(),
        }
    }

    /// Learn about the server (proving the credentials) and fill in the
    /// manifest's database, server version, tool and extras for the mode
    /// it is in.
    fn describe(&mut self, manifest: &mut Manifest) -> Result<()>;

    /// Start a consistent copy of the whole database: the stored file's
    /// name and its bytes.
    fn whole_copy(&mut self) -> Result<(String, Box<dyn WholeCopy>)>;

    /// Open the one instant every later tables-mode step reads.
    fn begin_snapshot(&mut self) -> Result<()>;
    /// Every user table with its columns and primary key.
    fn list_tables(&mut self) -> Result<Vec<Table>>;
    /// Store the schema of `kept` (`schema.sql`, `schema-post.sql`, and
    /// `sequences.sql` where the database has sequences) through `out`,
    /// leaving out what only makes sense with `left_out`; the warnings say
    /// what was left out besides.
    fn write_schema(
        &mut self,
        kept: &[&Table],
        left_out: &[&Table],
        out: &mut Out<'_, '_>,
    ) -> Result<Vec<String>>;
    /// The columns a `--query` returns.
    fn describe_query(&mut self, sql: &str) -> Result<Vec<ManifestColumn>>;
    /// Write each item as CSV (header row first) through `writer` (the
    /// snapshot; a drill's digests); the rows of each, in order.
    fn export(&mut self, items: &[Export<'_>], writer: &mut dyn FileSink) -> Result<Vec<Exported>>;
    /// Close the snapshot.
    fn end_snapshot(&mut self) -> Result<()>;

    /// Make the target ready to load into: created when absent, refused
    /// when not empty unless `clean`.
    fn prepare(&mut self, manifest: &Manifest, clean: bool) -> Result<Target>;
    /// Load the whole copy stored as `file`; the bytes read.
    fn load_whole(&mut self, from: &Stored<'_>, file: &str) -> Result<u64>;
    /// Load a tables-mode snapshot's schema and `tables`; the bytes read.
    fn load_tables(&mut self, from: &Stored<'_>, tables: &[ManifestTable]) -> Result<u64>;
    /// The rows each of `tables` has in the loaded target (`u64::MAX` for
    /// one that is missing), after whatever integrity check the database
    /// has.
    fn count_rows(&mut self, tables: &[ManifestTable]) -> Result<Vec<u64>>;
    /// Make the verified load the target (where it was loaded beside it).
    fn commit(&mut self) -> Result<()> {
        Ok(())
    }
    /// Put the target back as `prepare` found it, after `error`; the error
    /// to report.
    fn undo(&mut self, error: EngineError) -> EngineError;
    /// Remove the target a finished restore created (a drill's scratch
    /// database, once verified). A target that existed before is left.
    fn discard(&mut self) -> Result<()>;
    /// Drop every database on the server whose name starts with `prefix`
    /// (a drill's scratch databases a killed process left); how many.
    /// Databases the dialect has no server for (SQLite) have none.
    fn drop_prefixed(&mut self, _prefix: &str) -> Result<usize> {
        Ok(0)
    }
    /// Drop the database named `name` if the server has it (a drill's
    /// scratch database its interrupted run left); whether it had. Waits
    /// for locks a bounded time: the server may be a tenant's.
    fn drop_named(&mut self, _name: &str) -> Result<bool> {
        Ok(false)
    }
}

/// The dialect for a database address. `credential` replaces a password in
/// the address; without either the tools find their own.
pub fn for_address(addr: SourceAddress, credential: Option<Secret>) -> Result<Box<dyn Dialect>> {
    Ok(match addr {
        SourceAddress::Postgres(db) => {
            let pw = credential.or_else(|| db.password.as_deref().map(Secret::new));
            Box::new(crate::postgres::Postgres::new(db, pw)?)
        }
        SourceAddress::Mysql(db) => {
            let pw = credential.or_else(|| db.password.as_deref().map(Secret::new));
            Box::new(crate::mysql::Mysql::new(db, pw)?)
        }
        SourceAddress::Sqlite(path) => {
            if credential.is_some() {
                return Err(EngineError::Invalid(
                    "SQLite has no passwords: no credentials apply to it".into(),
                ));
            }
            Box::new(crate::sqlite::Sqlite::new(path))
        }
        other => {
            return Err(EngineError::Invalid(format!(
                "{other} is not a database address"
            )));
        }
    })
}

/// A table as a database's catalog describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// `[schema, table]` where the database has schemas, else `[table]`.
    pub parts: Vec<String>,
    /// Every column, generated ones included and marked: an export shows
    /// the table as its users see it, a restore leaves those to the
    /// database.
    pub columns: Vec<ManifestColumn>,
    /// Primary key columns, in key order.
    pub primary_key: Vec<String>,
}

impl Table {
    /// `schema.table` or `table`, unquoted, for people and file names.
    pub fn display_name(&self) -> String {
        self.parts.join(".")
    }

    pub fn name(&self) -> &str {
        self.parts.last().map(String::as_str).unwrap_or("")
    }

    pub fn schema(&self) -> Option<&str> {
        (self.parts.len() > 1).then(|| self.parts[0].as_str())
    }

    pub fn column_names(&self) -> Vec<String> {
        self.columns.iter().map(|c| c.name.clone()).collect()
    }
}

/// How a dialect writes SQL text, for the statements written once here.
pub(crate) struct Syntax {
    /// A name quoted as an identifier.
    pub ident: fn(&str) -> String,
    /// A string literal.
    pub literal: fn(&str) -> String,
    /// What orders the rows of a table without a primary key.
    pub unkeyed_order: fn(&Table) -> String,
}

impl Syntax {
    /// Names quoted and joined by `sep`: a column list (`", "`) or a
    /// qualified name (`"."`).
    pub fn idents<S: AsRef<str>>(&self, names: impl IntoIterator<Item = S>, sep: &str) -> String {
        let quoted: Vec<String> = names
            .into_iter()
            .map(|n| (self.ident)(n.as_ref()))
            .collect();
        quoted.join(sep)
    }

    /// The SELECT of `list` that exports `t`: only the tenant's rows when
    /// given, in primary-key order (else [`Syntax::unkeyed_order`]).
    pub fn table_select(&self, list: &str, t: &Table, tenant: Option<&Tenant>) -> String {
        let mut sql = format!("SELECT {list} FROM {}", self.idents(&t.parts, "."));
        if let Some(tenant) = tenant {
            let (column, value) = ((self.ident)(&tenant.column), (self.literal)(&tenant.value));
            sql.push_str(&format!(" WHERE {column} = {value}"));
        }
        let order = match t.primary_key.is_empty() {
            true => (self.unkeyed_order)(t),
            false => self.idents(&t.primary_key, ", "),
        };
        if !order.is_empty() {
            sql.push_str(&format!(" ORDER BY {order}"));
        }
        sql
    }
}

/// A standard SQL string literal (PostgreSQL's, with the
/// standard_conforming_strings every supported server has on; SQLite's).
pub(crate) fn standard_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Tables from a catalog's rows, one a column: (the table's name parts,
/// the column, its position in the primary key), grouped by table with
/// the columns in order. The key columns come out in key order.
pub(crate) fn tables_from_catalog(
    rows: impl IntoIterator<Item = Result<(Vec<String>, ManifestColumn, Option<u32>)>>,
) -> Result<Vec<Table>> {
    let mut out: Vec<Table> = Vec::new();
    let mut keys: Vec<Vec<(u32, String)>> = Vec::new();
    for row in rows {
        let (parts, column, key) = row?;
        if out.last().is_none_or(|t| t.parts != parts) {
            out.push(Table {
                parts,
                columns: Vec::new(),
                primary_key: Vec::new(),
            });
            keys.push(Vec::new());
        }
        if let Some(k) = key {
            keys.last_mut()
                .expect("pushed above")
                .push((k, column.name.clone()));
        }
        out.last_mut().expect("pushed above").columns.push(column);
    }
    for (t, mut k) in out.iter_mut().zip(keys) {
        k.sort();
        t.primary_key = k.into_iter().map(|(_, c)| c).collect();
    }
    Ok(out)
}

/// One CSV file a tables-mode backup stores.
#[derive(Clone)]
pub struct Export<'a> {
    /// Where it goes in the snapshot (`tables/x.csv`, `queries/q.csv`).
    pub file: String,
    pub what: Exportable<'a>,
}

#[derive(Clone)]
pub enum Exportable<'a> {
    /// A table's rows (only the tenant's, when given), in key order.
    Table {
        table: &'a Table,
        tenant: Option<&'a Tenant>,
    },
    /// A `--query`'s result, with the columns `describe_query` found.
    Query {
        sql: &'a str,
        columns: &'a [ManifestColumn],
    },
}

/// What an export stored.
pub struct Exported {
    pub rows: u64,
    pub facts: FileFacts,
}

/// Where schema files go: the snapshot and the manifest's file list.
pub struct Out<'w, 'p> {
    pub writer: &'w mut SnapshotWriter<'p>,
    pub manifest: &'w mut Manifest,
}

impl Out<'_, '_> {
    /// Store `reader` as `file` and list it in the manifest.
    pub fn store(&mut self, file: &str, reader: impl Read) -> Result<FileFacts> {
        let facts = self.writer.add_file(file, reader)?;
        self.manifest.add_file(file, facts.size, &facts.sha256);
        Ok(facts)
    }

    /// Store a dump tool's DDL as `file`: its output edited line by line
    /// by `edit`, and whole only if `scanner` saw its completion marker
    /// (`what` names the tool in the error).
    pub fn store_ddl(
        &mut self,
        file: &str,
        cmd: std::process::Command,
        what: &str,
        edit: impl LineEdit,
        scanner: impl DumpScanner,
    ) -> Result<()> {
        let name = tool_name(std::path::Path::new(cmd.get_program()));
        let (child, stdout) = Spawned::start(cmd, &name)?;
        let stdout = LineFilter::new(std::io::BufReader::new(stdout), edit);
        let (facts, scanner) =
            backup::store_tool_output(self.writer, file, child, stdout, scanner)?;
        check_whole(&scanner, what)?;
        self.manifest.add_file(file, facts.size, &facts.sha256);
        Ok(())
    }
}

/// The one row a query must return, with `N` fields; `missing` says what
/// its absence means.
pub(crate) fn one_row<const N: usize>(
    rows: Vec<Vec<String>>,
    missing: &str,
) -> Result<[String; N]> {
    rows.into_iter()
        .next()
        .and_then(|r| <[String; N]>::try_from(r).ok())
        .ok_or_else(|| EngineError::source(missing.to_string()))
}

/// The header record of a CSV file with `columns`.
pub(crate) fn csv_header(columns: &[ManifestColumn]) -> Vec<u8> {
    let mut h = Vec::new();
    for (i, c) in columns.iter().enumerate() {
        if i > 0 {
            h.push(b',');
        }
        let _ = holdfast_format::table_csv::write_text(&mut h, &c.name);
    }
    h.push(b'\n');
    h
}

/// The views among `views` (name, definition) that read one of `tables`,
/// directly or through other views, in the order found; `reads(definition,
/// names)` says whether a definition reads one of `names`.
pub(crate) fn views_over(
    views: &[(String, String)],
    tables: &[String],
    reads: impl Fn(&str, &[String]) -> bool,
) -> Vec<String> {
    let mut gone = tables.to_vec();
    let mut found = Vec::new();
    loop {
        let before = found.len();
        for (name, definition) in views {
            if !gone.contains(name) && reads(definition, &gone) {
                found.push(name.clone());
                gone.push(name.clone());
            }
        }
        if found.len() == before {
            return found;
        }
    }
}

/// A query's row as its `N` fields; `what` names the row in the error.
pub(crate) fn fields<const N: usize>(row: Vec<String>, what: &str) -> Result<[String; N]> {
    <[String; N]>::try_from(row)
        .map_err(|r| EngineError::source(format!("unexpected {what} row {r:?}")))
}

/// The first field of each row, where it starts with `prefix` (database
/// names a catalog query listed).
pub(crate) fn names_starting(rows: Vec<Vec<String>>, prefix: &str) -> Vec<String> {
    rows.into_iter()
        .filter_map(|r| r.into_iter().next())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

/// A restore's target once prepared.
#[derive(Debug, Clone)]
pub struct Target {
    /// The database's name (for SQLite, the stored file's).
    pub database: String,
    /// It did not exist (or was dropped with `clean`) and was created.
    pub created: bool,
}

/// A target database that holds `objects` (of the kinds `what` lists)
/// and may not be replaced.
pub(crate) fn not_empty(target: &str, objects: u64, what: &str) -> EngineError {
    EngineError::Invalid(format!(
        "the target database {target:?} is not empty ({objects} {what}): \
         restore into a new database, or add --clean to drop and recreate it"
    ))
}

/// The snapshot a restore reads.
pub struct Stored<'a> {
    pub repo: &'a Repository,
    pub snapshot: &'a Snapshot,
    pub manifest: &'a Manifest,
    pub progress: &'a Progress,
}

/// A whole database's copy, read as one stream.
pub trait WholeCopy: Read {
    /// After the stream ended: check the copy is whole, and put what it
    /// holds (its tables, the tool's findings) into the manifest.
    fn finish(self: Box<Self>, manifest: &mut Manifest) -> Result<()>;
    /// Storing failed: stop producing the copy.
    fn abort(self: Box<Self>);
}

/// Whether the output of the tool `what` that `scanner` saw is whole.
fn check_whole(scanner: &impl DumpScanner, what: &str) -> Result<()> {
    scanner.verdict().map_err(|why| {
        EngineError::source(format!(
            "{what} output is incomplete: {why}; no snapshot was written"
        ))
    })
}

/// A dump tool's standard output as a whole copy, scanned as it passes.
pub struct ToolCopy<S> {
    child: Spawned,
    reader: ScanningReader<ChildStdout, S>,
}

impl<S: DumpScanner> ToolCopy<S> {
    pub fn start(cmd: std::process::Command, tool: &str, scanner: S) -> Result<ToolCopy<S>> {
        let (child, stdout) = Spawned::start(cmd, tool)?;
        Ok(ToolCopy {
            child,
            reader: ScanningReader::new(stdout, scanner),
        })
    }
}

impl<S: DumpScanner> Read for ToolCopy<S> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.reader.read(buf)
    }
}

impl<S: DumpScanner> WholeCopy for ToolCopy<S> {
    fn finish(self: Box<Self>, manifest: &mut Manifest) -> Result<()> {
        let what = self.child.what.clone();
        self.child.finish()?;
        let scan = self.reader.scanner;
        check_whole(&scan, &what)?;
        manifest.tables = backup::manifest_tables(scan.into_tables());
        Ok(())
    }

    fn abort(self: Box<Self>) {
        self.child.kill();
    }
}
