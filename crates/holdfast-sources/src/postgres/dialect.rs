//! PostgreSQL as a [`Dialect`].
//!
//! - Whole copy: `pg_dump`'s plain SQL streamed straight into the
//!   repository, uncompressed so that consecutive dumps share chunks; its
//!   COPY blocks are counted per table as it streams, and it counts as whole
//!   only if pg_dump exits 0 and its output reached the completion marker.
//! - Tables mode: see [`super::tables`].
//! - Restore: one psql session in one transaction (`--single-transaction`,
//!   `ON_ERROR_STOP`), so a failure leaves nothing half-loaded; the target
//!   database is created when absent, and an existing one must be empty
//!   unless `clean` — then it is dropped and created again. A database the
//!   restore created is dropped again when the restore fails.

use holdfast_engine::{EngineError, Result};
use holdfast_format::manifest::{Manifest, ManifestColumn, ManifestTable};
use serde_json::json;

use super::copy_text::csv_to_copy_text;
use super::tables::{InSnapshot, SnapshotHolder};
use super::{PgClient, SQL, ServerInfo};
use crate::database::backup::dump_file_name;
use crate::database::names_starting;
use crate::database::restore::{FeedPart, count_rows, feed_parts};
use crate::database::{
    Dialect, Export, Exported, Out, Stored, Table, Target, ToolCopy, WholeCopy, not_empty,
};
use crate::dump_scan::postgres::PgDumpScan;
use crate::secret::Secret;
use crate::source_url::{DbAddress, SourceAddress};
use crate::writer::FileSink;

/// Objects that make a database "not empty": relations, functions and
/// schemas besides the built-in ones.
const USER_OBJECTS: &str = "SELECT \
    (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
      WHERE n.nspname <> 'information_schema' AND n.nspname !~ '^pg_') + \
    (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
      WHERE n.nspname <> 'information_schema' AND n.nspname !~ '^pg_') + \
    (SELECT count(*) FROM pg_namespace n \
      WHERE n.nspname NOT IN ('public', 'information_schema') AND n.nspname !~ '^pg_');";

pub struct Postgres {
    client: PgClient,
    server: Option<ServerInfo>,
    holder: Option<SnapshotHolder>,
    /// The restore's target and whether it created it.
    target: Option<Target>,
}

impl Postgres {
    pub fn new(addr: DbAddress, password: Option<Secret>) -> Result<Postgres> {
        Ok(Postgres {
            client: PgClient::new(addr, password)?,
            server: None,
            holder: None,
            target: None,
        })
    }

    fn database(&self) -> String {
        self.client.addr.database.clone()
    }

    /// The server's facts (asked once, in `database`), with the tools
    /// matched to its version.
    fn server(&mut self, database: &str) -> Result<ServerInfo> {
        if let Some(s) = &self.server {
            return Ok(s.clone());
        }
        let server = self.client.server_info(database)?;
        self.client.pick_tools(&server)?;
        self.server = Some(server.clone());
        Ok(server)
    }

    /// Sessions in the open tables-mode snapshot.
    fn in_snapshot(&self) -> Result<InSnapshot<'_>> {
        let holder = self
            .holder
            .as_ref()
            .ok_or_else(|| EngineError::Invalid("no snapshot is open".into()))?;
        Ok(InSnapshot {
            client: &self.client,
            database: &self.client.addr.database,
            id: &holder.id,
        })
    }

    /// The database to connect to for CREATE/DROP DATABASE.
    fn maintenance_db(&self) -> Result<String> {
        let mut last = None;
        for db in ["postgres", "template1"] {
            match self.client.query(db, "SELECT 1;", &[]) {
                Ok(_) => return Ok(db.to_string()),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("tried at least one"))
    }

    /// The number `sql` counts in `database` (0 when it returns none).
    fn count(&self, database: &str, sql: &str, vars: &[(&str, &str)]) -> Result<u64> {
        let rows = self.client.query(database, sql, vars)?;
        let first = rows.first().and_then(|r| r.first());
        Ok(first.and_then(|v| v.parse().ok()).unwrap_or(0))
    }

    fn exists(&self, maint: &str, database: &str) -> Result<bool> {
        let sql = "SELECT count(*) FROM pg_database WHERE datname = :'db';";
        Ok(self.count(maint, sql, &[("db", database)])? > 0)
    }

    /// Drop `database`, ending its sessions where the server can (13 and
    /// later: a session left open must not keep a scratch database), and
    /// waiting for locks at most 30 s.
    fn drop_now(&mut self, maint: &str, database: &str) -> Result<()> {
        let force = if self.server(maint)?.major() >= 13 {
            " WITH (FORCE)"
        } else {
            ""
        };
        self.client
            .query(
                maint,
                &format!(
                    "SET lock_timeout = '30s';\nSET statement_timeout = '120s';\n\
                     DROP DATABASE IF EXISTS :\"db\"{force};"
                ),
                &[("db", database)],
            )
            .map(drop)
    }

    /// Feed `parts` to one psql session in one transaction.
    fn feed(&self, from: &Stored<'_>, parts: &[FeedPart]) -> Result<u64> {
        let database = &self.target.as_ref().expect("prepared").database;
        let cmd = self
            .client
            .psql(database, &["--single-transaction", "-o", "/dev/null"]);
        feed_parts(cmd, "psql", from, parts)
    }
}

impl Dialect for Postgres {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn address(&self) -> SourceAddress {
        SourceAddress::Postgres(self.client.addr.clone())
    }

    fn describe(&mut self, manifest: &mut Manifest) -> Result<()> {
        let server = self.server(&self.database())?;
        manifest.database = Some(self.database());
        manifest.server_version = Some(server.version.clone());
        manifest.tool = Some(self.client.tools.version.clone());
        if manifest.mode == "tables" {
            // COPY writes UTF-8 whatever the server's encoding.
            manifest.extra.insert("encoding".into(), json!("UTF8"));
            manifest
                .extra
                .insert("server_encoding".into(), json!(server.encoding));
        } else {
            manifest
                .extra
                .insert("encoding".into(), json!(server.encoding));
        }
        Ok(())
    }

    fn whole_copy(&mut self) -> Result<(String, Box<dyn WholeCopy>)> {
        let database = self.database();
        self.server(&database)?;
        let mut cmd = self.client.command(&self.client.tools.pg_dump, &database);
        // Plain SQL that loads into any database of any owner: no owner or
        // privilege statements (roles are cluster-wide and not in the dump).
        cmd.args([
            "--format=plain",
            "--no-owner",
            "--no-privileges",
            "--no-password",
        ]);
        let copy = ToolCopy::start(cmd, "pg_dump", PgDumpScan::default())?;
        Ok((dump_file_name(&database, "sql"), Box::new(copy)))
    }

    fn begin_snapshot(&mut self) -> Result<()> {
        let database = self.database();
        self.server(&database)?;
        self.holder = Some(SnapshotHolder::start(&self.client, &database)?);
        Ok(())
    }

    fn list_tables(&mut self) -> Result<Vec<Table>> {
        self.in_snapshot()?.list_tables()
    }

    fn write_schema(
        &mut self,
        _kept: &[&Table],
        left_out: &[&Table],
        out: &mut Out<'_, '_>,
    ) -> Result<Vec<String>> {
        self.in_snapshot()?.write_schema(left_out, out)
    }

    fn describe_query(&mut self, sql: &str) -> Result<Vec<ManifestColumn>> {
        self.in_snapshot()?.describe_query(sql)
    }

    fn export(&mut self, items: &[Export<'_>], writer: &mut dyn FileSink) -> Result<Vec<Exported>> {
        let snapshot = self.in_snapshot()?;
        items
            .iter()
            .map(|item| snapshot.export(item, writer))
            .collect()
    }

    fn end_snapshot(&mut self) -> Result<()> {
        if let Some(h) = self.holder.take() {
            h.finish();
        }
        Ok(())
    }

    fn prepare(&mut self, manifest: &Manifest, clean: bool) -> Result<Target> {
        let target = self.database();
        let maint = self.maintenance_db()?;
        let server = self.server(&maint)?;
        let exists = self.exists(&maint, &target)?;
        if exists {
            let objects = self.count(&target, USER_OBJECTS, &[])?;
            if objects > 0 {
                if !clean {
                    return Err(not_empty(&target, objects, "tables, functions or schemas"));
                }
                let force = if server.major() >= 13 {
                    " WITH (FORCE)"
                } else {
                    ""
                };
                self.client.query(
                    &maint,
                    &format!("DROP DATABASE :\"db\"{force};"),
                    &[("db", &target)],
                )?;
            }
        }
        let mut created = false;
        if (!exists || clean) && !self.exists(&maint, &target)? {
            let encoding = manifest
                .extra
                .get("encoding")
                .and_then(|e| e.as_str())
                .unwrap_or("UTF8")
                .to_string();
            self.client.query(
                &maint,
                "CREATE DATABASE :\"db\" TEMPLATE template0 ENCODING :'enc';",
                &[("db", &target), ("enc", &encoding)],
            )?;
            created = true;
        }
        let t = Target {
            database: target,
            created,
        };
        self.target = Some(t.clone());
        Ok(t)
    }

    fn load_whole(&mut self, from: &Stored<'_>, file: &str) -> Result<u64> {
        self.feed(from, &[FeedPart::File(file.to_string())])
    }

    /// The pre-data DDL, every table's CSV through `COPY … FROM STDIN`, then
    /// indexes, constraints and triggers, then the sequences' values.
    fn load_tables(&mut self, from: &Stored<'_>, tables: &[ManifestTable]) -> Result<u64> {
        let mut parts = vec![
            FeedPart::Text("SET client_encoding = 'UTF8';\n".into()),
            FeedPart::File("schema.sql".into()),
        ];
        for t in tables {
            let Some(file) = &t.file else {
                return Err(EngineError::Invalid(format!(
                    "the manifest names no file for table {}",
                    t.name
                )));
            };
            // generated columns are exported but computed again by the database
            let cols = SQL.idents(t.loaded_columns().map(|c| &c.name), ", ");
            let computed = t.generated_positions();
            // Text format, not the stored CSV: see csv_to_copy_text.
            let name = SQL.idents(&t.parts, ".");
            parts.push(FeedPart::Text(format!(
                "COPY {name} ({cols}) FROM STDIN;\n"
            )));
            parts.push(FeedPart::Converted {
                file: file.clone(),
                convert: Box::new(move |r, w| csv_to_copy_text(r, w, &computed)),
            });
            parts.push(FeedPart::Text("\\.\n".into()));
        }
        parts.push(FeedPart::File("schema-post.sql".into()));
        parts.push(FeedPart::File("sequences.sql".into()));
        self.feed(from, &parts)
    }

    fn count_rows(&mut self, tables: &[ManifestTable]) -> Result<Vec<u64>> {
        let database = &self.target.as_ref().expect("prepared").database;
        let names = tables.iter().map(|t| SQL.idents(&t.parts, "."));
        count_rows(names, |sql| self.client.query(database, sql, &[]))
    }

    fn undo(&mut self, error: EngineError) -> EngineError {
        let _ = self.discard();
        error
    }

    fn drop_prefixed(&mut self, prefix: &str) -> Result<usize> {
        let maint = self.maintenance_db()?;
        let names = names_starting(
            self.client
                .query(&maint, "SELECT datname FROM pg_database;", &[])?,
            prefix,
        );
        for name in &names {
            self.drop_now(&maint, name)?;
        }
        Ok(names.len())
    }

    fn drop_named(&mut self, name: &str) -> Result<bool> {
        let maint = self.maintenance_db()?;
        if !self.exists(&maint, name)? {
            return Ok(false);
        }
        self.drop_now(&maint, name)?;
        Ok(true)
    }

    fn discard(&mut self) -> Result<()> {
        let Some(t) = self.target.take().filter(|t| t.created) else {
            return Ok(());
        };
        let maint = self.maintenance_db()?;
        self.drop_now(&maint, &t.database)
    }
}
