//! Tables mode: every selected table exported as CSV, all at one instant.
//!
//! A holder session opens `REPEATABLE READ READ ONLY` and exports its
//! snapshot (`pg_export_snapshot()`); every other session — the catalog
//! query, one `COPY … TO STDOUT` per table, pg_dump for the DDL — adopts
//! it with `SET TRANSACTION SNAPSHOT` / `--snapshot`, so all files show
//! the same instant while the application keeps writing.
//!
//! Snapshot layout: `schema.sql` (pre-data DDL), `schema-post.sql`
//! (indexes, constraints, triggers), `sequences.sql` (setval lines),
//! `tables/<schema.table>.csv`, `queries/<name>.csv`, `manifest.json`.
//! CSV: header row, NULL as an empty unquoted field, empty string as `""`,
//! bytea as hex (`\x…`), timestamps in ISO format at UTC.
//! An excluded table leaves no file, no manifest entry and no DDL: views
//! that read it and foreign keys that reference it are left out too (with
//! a warning each), since restoring them would fail without it.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Stdio};
use std::time::{Duration, Instant};

use holdfast_engine::{EngineError, Result};
use holdfast_format::manifest::ManifestColumn;
use holdfast_format::table_csv::RecordCounter;

use super::ddl_filter::{DropEntries, foreign_key_headers};
use super::{PgClient, SQL};
use crate::command::Spawned;
use crate::database::backup::store_tool_output;
use crate::database::restore::columns_from_rows;
use crate::database::{Export, Exportable, Exported, Out, Table, fields, tables_from_catalog};
use crate::dump_scan::postgres::PgDumpScan;
use crate::writer::FileSink;

/// Session settings that make the CSV the same on every server.
const SESSION: &str = "SET bytea_output = hex; SET DateStyle = 'ISO, YMD'; \
    SET IntervalStyle = postgres; SET extra_float_digits = 3; SET TimeZone = 'UTC';\n";

/// A session that holds the exported snapshot open until dropped.
pub(crate) struct SnapshotHolder {
    child: Child,
    stdin: Option<ChildStdin>,
    pub(crate) id: String,
    _dir: tempfile::TempDir,
}

impl SnapshotHolder {
    pub(crate) fn start(client: &PgClient, database: &str) -> Result<SnapshotHolder> {
        // psql buffers its output on a pipe; the id goes to a file instead,
        // which `\o` closes (and so flushes) after the one query.
        let dir = tempfile::tempdir()
            .map_err(|e| EngineError::io("creating a temporary directory", e))?;
        let id_file: PathBuf = dir.path().join("snapshot-id");
        let mut cmd = client.psql(database, &["-A", "-t"]);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| {
            EngineError::io(format!("cannot start {}", client.tools.psql.display()), e)
        })?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let script = format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;\n\\o {}\nSELECT pg_export_snapshot();\n\\o\n",
            id_file.display()
        );
        stdin
            .write_all(script.as_bytes())
            .and_then(|()| stdin.flush())
            .map_err(|e| EngineError::io("starting the snapshot session", e))?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(text) = std::fs::read_to_string(&id_file)
                && text.ends_with('\n')
                && !text.trim().is_empty()
            {
                return Ok(SnapshotHolder {
                    child,
                    stdin: Some(stdin),
                    id: text.trim().to_string(),
                    _dir: dir,
                });
            }
            if let Ok(Some(status)) = child.try_wait() {
                let mut err = Vec::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = std::io::Read::read_to_end(&mut e, &mut err);
                }
                let otherwise = format!("cannot open a snapshot on {}", client.display());
                return Err(client.failure(status, &err, database, &otherwise));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err(EngineError::source(format!(
                    "{} did not export a snapshot within a minute",
                    client.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn finish(mut self) {
        if let Some(mut s) = self.stdin.take() {
            let _ = s.write_all(b"COMMIT;\n");
        }
        let _ = self.child.wait();
    }
}

impl Drop for SnapshotHolder {
    fn drop(&mut self) {
        if self.stdin.is_some() {
            self.stdin = None;
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Sessions that adopt the exported snapshot `id` of `database`: every
/// tables-mode step after the holder's.
pub(crate) struct InSnapshot<'a> {
    pub client: &'a PgClient,
    pub database: &'a str,
    pub id: &'a str,
}

impl InSnapshot<'_> {
    /// `sql` as a psql script that runs it in the snapshot.
    fn script(&self, sql: &str) -> String {
        let id = self.id;
        format!(
            "{SESSION}BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;\nSET TRANSACTION SNAPSHOT '{id}';\n{sql}\nCOMMIT;\n"
        )
    }

    /// The rows of `sql`, run in the snapshot.
    fn query(&self, sql: &str) -> Result<Vec<Vec<String>>> {
        self.client.query(self.database, &self.script(sql), &[])
    }

    /// Every user table (partitioned parents, not their partitions; not
    /// extensions' tables) with its columns and primary key.
    pub fn list_tables(&self) -> Result<Vec<Table>> {
        let rows = self.query(
            "SELECT n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod), \
                 coalesce(array_position(i.indkey::int2[], a.attnum)::text, ''), a.attgenerated <> '' \
               FROM pg_class c \
               JOIN pg_namespace n ON n.oid = c.relnamespace \
               JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
               LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary \
               WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition \
                 AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_' \
                 AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass \
                                 AND d.objid = c.oid AND d.deptype = 'e') \
               ORDER BY n.nspname, c.relname, a.attnum;",
        )?;
        tables_from_catalog(rows.into_iter().map(|r| {
            let [schema, name, col, ty, pk, generated] = fields(r, "catalog")?;
            let column = ManifestColumn {
                name: col,
                sql_type: ty,
                generated: generated == "t",
            };
            Ok((vec![schema, name], column, pk.parse().ok()))
        }))
    }

    /// Column names and types of a query's result (psql's `\gdesc`, which
    /// describes without running it).
    pub fn describe_query(&self, sql: &str) -> Result<Vec<ManifestColumn>> {
        Ok(columns_from_rows(self.query(&format!("{sql} \\gdesc"))?))
    }

    /// Views and materialized views that read one of `tables`, directly or
    /// through other views: (schema, name).
    fn views_over(&self, tables: &[&Table]) -> Result<Vec<(String, String)>> {
        let rows = self.query(&format!(
            "WITH RECURSIVE reads(oid) AS ( \
               SELECT unnest({}::oid[]) \
               UNION \
               SELECT r.ev_class FROM pg_depend d \
                 JOIN pg_rewrite r ON r.oid = d.objid \
                 JOIN reads ON d.refobjid = reads.oid \
               WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass \
                 AND r.ev_class <> d.refobjid) \
             SELECT n.nspname, c.relname FROM reads JOIN pg_class c ON c.oid = reads.oid \
               JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('v', 'm') ORDER BY 1, 2;",
            regclass_array(tables)
        ))?;
        rows.into_iter()
            .map(|r| fields(r, "view").map(|[schema, name]| (schema, name)))
            .collect()
    }

    /// Foreign keys of other tables that reference one of `tables`:
    /// (schema, table, constraint).
    fn foreign_keys_into(&self, tables: &[&Table]) -> Result<Vec<(String, String, String)>> {
        let left = regclass_array(tables);
        let rows = self.query(&format!(
            "SELECT n.nspname, c.relname, con.conname FROM pg_constraint con \
               JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE con.contype = 'f' AND con.confrelid = ANY({left}) AND NOT con.conrelid = ANY({left}) \
             ORDER BY 1, 2, 3;"
        ))?;
        rows.into_iter()
            .map(|r| {
                fields(r, "foreign key")
                    .map(|[schema, table, constraint]| (schema, table, constraint))
            })
            .collect()
    }

    fn list_sequences(&self) -> Result<Vec<PgSequence>> {
        let rows = self.query(
            "SELECT s.schemaname, s.sequencename, coalesce(s.last_value::text, ''), \
                 coalesce(tn.nspname, ''), coalesce(t.relname, '') \
               FROM pg_sequences s \
               JOIN pg_namespace sn ON sn.nspname = s.schemaname \
               JOIN pg_class sc ON sc.relname = s.sequencename AND sc.relnamespace = sn.oid \
               LEFT JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = sc.oid \
                    AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') \
               LEFT JOIN pg_class t ON t.oid = d.refobjid \
               LEFT JOIN pg_namespace tn ON tn.oid = t.relnamespace \
               ORDER BY 1, 2;",
        )?;
        rows.into_iter()
            .map(|r| {
                let [schema, name, value, owner_schema, owner] = fields(r, "sequence")?;
                Ok(PgSequence {
                    schema,
                    name,
                    last_value: (!value.is_empty()).then_some(value),
                    owner: (!owner.is_empty()).then_some((owner_schema, owner)),
                })
            })
            .collect()
    }

    /// The schema files of the tables not `left_out`: `schema.sql` and
    /// `schema-post.sql` from pg_dump's sections, `sequences.sql` with the
    /// sequences' values. What kept objects say about left-out tables goes
    /// too: views over them, and foreign keys that reference them (pg_dump
    /// keeps both); the warnings say so.
    pub fn write_schema(&self, left_out: &[&Table], out: &mut Out<'_, '_>) -> Result<Vec<String>> {
        let mut warnings = Vec::new();
        let sequences = self.list_sequences()?;
        let mut left_relations: Vec<String> = sequences
            .iter()
            .filter(|s| s.owned_by_any(left_out))
            .map(PgSequence::sql_name)
            .collect();
        let mut drop_entries = Vec::new();
        if !left_out.is_empty() {
            for (schema, name) in self.views_over(left_out)? {
                warnings.push(format!(
                    "view {schema}.{name} reads a table that is left out: it is left out too"
                ));
                left_relations.push(SQL.idents([schema, name], "."));
            }
            for (schema, table, constraint) in self.foreign_keys_into(left_out)? {
                warnings.push(format!(
                    "foreign key {constraint} of {schema}.{table} references a table that is left out: \
                     the constraint is left out"
                ));
                drop_entries.extend(foreign_key_headers(&schema, &table, &constraint));
            }
        }
        // Double quotes make the table patterns literal (no wildcards,
        // exact case).
        let left_tables = left_out.iter().map(|t| SQL.idents(&t.parts, "."));
        let excluded: Vec<String> = left_tables.chain(left_relations).collect();
        for (section, file) in [("pre-data", "schema.sql"), ("post-data", "schema-post.sql")] {
            let mut cmd = self
                .client
                .command(&self.client.tools.pg_dump, self.database);
            // --section alone: pg_dump refuses it next to --schema-only.
            cmd.args(["--no-owner", "--no-privileges", "--no-password"]);
            cmd.arg(format!("--section={section}"));
            cmd.arg(format!("--snapshot={}", self.id));
            cmd.args(excluded.iter().map(|t| format!("--exclude-table={t}")));
            out.store_ddl(
                file,
                cmd,
                &format!("pg_dump --section={section}"),
                DropEntries::new(drop_entries.clone()),
                PgDumpScan::default(),
            )?;
        }
        let sequences = sequences_sql(&sequences, left_out);
        out.store("sequences.sql", sequences.as_bytes())?;
        Ok(warnings)
    }

    /// One table or query streamed through `COPY … TO STDOUT` into the
    /// snapshot.
    pub fn export(&self, item: &Export<'_>, writer: &mut dyn FileSink) -> Result<Exported> {
        let select = match &item.what {
            Exportable::Table { table, tenant } => {
                let columns = SQL.idents(table.columns.iter().map(|c| &c.name), ", ");
                SQL.table_select(&columns, table, *tenant)
            }
            Exportable::Query { sql, .. } => sql.to_string(),
        };
        let mut cmd = self.client.psql(self.database, &[]);
        cmd.env("PGCLIENTENCODING", "UTF8");
        let script = self.script(&format!(
            "COPY ({select}) TO STDOUT WITH (FORMAT csv, HEADER);"
        ));
        let (child, stdout) = Spawned::start_with_script(cmd, "psql", script)?;
        let file = &item.file;
        let (facts, scan) =
            store_tool_output(writer, file, child, stdout, RecordCounter::default())?;
        if scan.open_quote() || scan.records() == 0 {
            return Err(EngineError::source(format!(
                "the export of {file} ended early; no snapshot was written"
            )));
        }
        Ok(Exported {
            rows: scan.records() - 1,
            facts,
        })
    }
}

/// `ARRAY[...]::regclass[]` of the given tables, for catalog queries.
fn regclass_array(tables: &[&Table]) -> String {
    let names: Vec<String> = tables
        .iter()
        .map(|t| (SQL.literal)(&SQL.idents(&t.parts, ".")))
        .collect();
    format!("ARRAY[{}]::regclass[]", names.join(", "))
}

/// A sequence, its value at the snapshot and the table that owns it.
struct PgSequence {
    schema: String,
    name: String,
    last_value: Option<String>,
    owner: Option<(String, String)>,
}

impl PgSequence {
    fn sql_name(&self) -> String {
        SQL.idents([&self.schema, &self.name], ".")
    }

    /// Owned by one of these tables (and so leaves with it).
    fn owned_by_any(&self, tables: &[&Table]) -> bool {
        self.owner
            .as_ref()
            .is_some_and(|(s, t)| tables.iter().any(|x| x.parts == [s.as_str(), t.as_str()]))
    }
}

/// `SELECT setval(…)` for every used sequence that stays in the snapshot.
fn sequences_sql(sequences: &[PgSequence], left_out: &[&Table]) -> String {
    let mut out = String::from("-- Sequence values at the snapshot's instant.\n");
    for s in sequences {
        if s.owned_by_any(left_out) {
            continue;
        }
        if let Some(v) = &s.last_value {
            out.push_str(&format!(
                "SELECT pg_catalog.setval({}, {v}, true);\n",
                (SQL.literal)(&s.sql_name())
            ));
        }
    }
    out
}
