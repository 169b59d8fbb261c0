//! MySQL and MariaDB as a [`Dialect`].
//!
//! - Whole copy: mariadb-dump's (or mysqldump's) SQL streamed straight into
//!   the repository, uncompressed so that consecutive dumps share chunks;
//!   its INSERT rows are counted per table as it streams, and it counts as
//!   whole only if the tool exits 0 and its output reached the `-- Dump
//!   completed` marker.
//! - Tables mode: see [`super::tables`].
//! - Restore: the dump fed to the `mariadb` (or `mysql`) client. The target
//!   database is created when absent, with the character set and collation
//!   the dumped database had; an existing one must be empty, unless `clean`
//!   — then it is dropped and created again. MySQL commits every CREATE
//!   TABLE on its own, so a load cannot run in one transaction as
//!   PostgreSQL's does: when it fails, the database is put back as it was
//!   before — dropped if the restore created it, emptied (dropped and
//!   created again) if it existed empty.

use holdfast_engine::{EngineError, Result};
use holdfast_format::manifest::{Manifest, ManifestColumn, ManifestTable};
use serde_json::json;

use super::tables;
use super::{DumpTool, Flavor, MyClient, ServerInfo, sql_string};
use crate::database::backup::dump_file_name;
use crate::database::names_starting;
use crate::database::restore::{FeedPart, count_rows, feed_parts};
use crate::database::{
    Dialect, Export, Exported, Out, Stored, Table, Target, ToolCopy, WholeCopy, not_empty,
};
use crate::dump_scan::mysql::{MysqlDumpScan, quote_ident};
use crate::secret::Secret;
use crate::source_url::{DbAddress, SourceAddress};
use crate::writer::FileSink;

/// The dump tool's options (after the connection's, before the database).
///
/// - `--single-transaction`: one consistent InnoDB snapshot, without
///   locking the tables (it turns `--lock-tables` off);
/// - `--routines --triggers --events`: the whole database, not just tables;
/// - `--hex-blob`: binary columns as `0x…`, safe through any character set;
/// - `--default-character-set=utf8mb4`: every character survives;
/// - `--skip-dump-date`, `--order-by-primary`: the same data gives the same
///   bytes, so consecutive dumps deduplicate;
/// - `--no-tablespaces`: no CREATE TABLESPACE, which needs privileges a
///   restore into another database should not need;
/// - `--max-allowed-packet=1G`: rows up to the server's own limit;
/// - no `--databases`: the dump names no database (no `CREATE DATABASE`,
///   no `USE`), so it loads into whichever database the restore names.
///
/// MySQL's mysqldump (5.6 and later) also gets `--set-gtid-purged=OFF`: on
/// a GTID server it would otherwise write a `SET @@GLOBAL.GTID_PURGED` that
/// fails on any server with its own GTID history.
pub fn dump_args(tool: &DumpTool) -> Vec<&'static str> {
    let mut args = vec![
        "--single-transaction",
        "--routines",
        "--triggers",
        "--events",
        "--hex-blob",
        "--default-character-set=utf8mb4",
        "--skip-dump-date",
        "--order-by-primary",
        "--no-tablespaces",
        "--max-allowed-packet=1G",
    ];
    if tool.flavor == Flavor::Mysql && tool.release.is_some_and(|r| r >= (5, 6)) {
        args.push("--set-gtid-purged=OFF");
    }
    args
}

/// A database's default character set and collation.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Charset {
    character_set: String,
    collation: String,
}

pub struct Mysql {
    client: MyClient,
    asked: Asked,
    /// The restore's target, and what it was before the load (None when
    /// the restore created it): what `undo` puts back.
    target: Option<(Target, Option<Charset>)>,
}

/// What was asked of the server and the tools, once.
#[derive(Default)]
struct Asked {
    server: Option<ServerInfo>,
    dump_tool: Option<DumpTool>,
}

impl Mysql {
    pub fn new(addr: DbAddress, password: Option<Secret>) -> Result<Mysql> {
        Ok(Mysql {
            client: MyClient::new(addr, password)?,
            asked: Asked::default(),
            target: None,
        })
    }

    fn database(&self) -> String {
        self.client.addr.database.clone()
    }

    /// The dump tool and its version (asked once).
    fn dump_tool(&mut self) -> Result<DumpTool> {
        if self.asked.dump_tool.is_none() {
            self.asked.dump_tool = Some(self.client.tools.dump_tool()?);
        }
        Ok(self.asked.dump_tool.clone().expect("set above"))
    }

    fn target(&self) -> &str {
        &self.target.as_ref().expect("prepared").0.database
    }

    /// The database's character set, if it exists (and we may see it).
    fn existing(&self, db: &str) -> Result<Option<Charset>> {
        let rows = self.client.query(
            None,
            &format!(
                "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME \
                 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = {};",
                sql_string(db)
            ),
        )?;
        Ok(rows.into_iter().next().map(|mut r| {
            r.resize(2, String::new());
            Charset {
                character_set: std::mem::take(&mut r[0]),
                collation: std::mem::take(&mut r[1]),
            }
        }))
    }

    /// Tables, views, routines and events in `db`: what makes it "not empty".
    fn object_count(&self, db: &str) -> Result<u64> {
        let name = sql_string(db);
        let rows = self.client.query(
            None,
            &format!(
                "SELECT \
                   (SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = {name}) + \
                   (SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = {name}) + \
                   (SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = {name});"
            ),
        )?;
        rows.first()
            .and_then(|r| r.first())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| EngineError::source(format!("unexpected object count output {rows:?}")))
    }

    fn create_database(&self, db: &str, cs: &Charset) -> Result<()> {
        let mut sql = format!(
            "CREATE DATABASE {} CHARACTER SET {}",
            quote_ident(db),
            quote_ident(&cs.character_set)
        );
        if !cs.collation.is_empty() {
            sql.push_str(&format!(" COLLATE {}", quote_ident(&cs.collation)));
        }
        sql.push(';');
        self.client.query(None, &sql).map(drop)
    }

    /// Drop `db`, waiting for locks at most 30 s.
    fn drop_database(&self, db: &str) -> Result<()> {
        self.client
            .query(
                None,
                &format!(
                    "SET SESSION lock_wait_timeout = 30;\nDROP DATABASE {};",
                    quote_ident(db)
                ),
            )
            .map(drop)
    }

    /// Feed `parts` to the client, connected to the target.
    fn feed(&self, from: &Stored<'_>, parts: &[FeedPart]) -> Result<u64> {
        let (cmd, name) = self
            .client
            .client_command(Some(self.target()), &["--max-allowed-packet=1G"])?;
        feed_parts(cmd, &name, from, parts)
    }
}

/// The character set the dumped database had (`utf8mb4` for manifests
/// that do not say).
fn dumped_charset(manifest: &Manifest) -> Charset {
    let get = |k: &str| {
        manifest
            .extra
            .get(k)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string()
    };
    let character_set = get("character_set");
    if character_set.is_empty() {
        return Charset {
            character_set: "utf8mb4".into(),
            collation: String::new(),
        };
    }
    Charset {
        character_set,
        collation: get("collation"),
    }
}

impl Dialect for Mysql {
    fn kind(&self) -> &'static str {
        "mysql"
    }

    fn address(&self) -> SourceAddress {
        SourceAddress::Mysql(self.client.addr.clone())
    }

    fn describe(&mut self, manifest: &mut Manifest) -> Result<()> {
        let server = match &self.asked.server {
            Some(s) => s.clone(),
            None => self.client.server_info(Some(&self.database()))?,
        };
        manifest.database = Some(self.database());
        manifest.server_version = Some(server.version.clone());
        if manifest.mode == "dump" {
            manifest.tool = Some(self.dump_tool()?.version);
        }
        manifest
            .extra
            .insert("character_set".into(), json!(server.character_set));
        manifest
            .extra
            .insert("collation".into(), json!(server.collation));
        self.asked.server = Some(server);
        Ok(())
    }

    fn whole_copy(&mut self) -> Result<(String, Box<dyn WholeCopy>)> {
        let database = self.database();
        let tool = self.dump_tool()?;
        let mut cmd = self.client.command(&tool.path);
        cmd.args(dump_args(&tool)).arg("--").arg(&database);
        let copy = ToolCopy::start(cmd, &tool.name(), MysqlDumpScan::default())?;
        Ok((dump_file_name(&database, "sql"), Box::new(copy)))
    }

    /// The snapshot is the export's own session ([`tables::export`]).
    fn begin_snapshot(&mut self) -> Result<()> {
        Ok(())
    }

    fn list_tables(&mut self) -> Result<Vec<Table>> {
        tables::list_tables(&self.client, &self.database())
    }

    fn write_schema(
        &mut self,
        _kept: &[&Table],
        left_out: &[&Table],
        out: &mut Out<'_, '_>,
    ) -> Result<Vec<String>> {
        tables::write_schema(&self.client, &self.database(), left_out, out)
    }

    fn describe_query(&mut self, sql: &str) -> Result<Vec<ManifestColumn>> {
        tables::describe_query(&self.client, &self.database(), sql)
    }

    fn export(&mut self, items: &[Export<'_>], writer: &mut dyn FileSink) -> Result<Vec<Exported>> {
        tables::export(&self.client, &self.database(), items, writer)
    }

    fn end_snapshot(&mut self) -> Result<()> {
        Ok(())
    }

    fn prepare(&mut self, manifest: &Manifest, clean: bool) -> Result<Target> {
        self.client.tools.client()?;
        let target = self.database();
        let mut before = self.existing(&target)?;
        if before.is_some() {
            let objects = self.object_count(&target)?;
            if objects > 0 {
                if !clean {
                    return Err(not_empty(
                        &target,
                        objects,
                        "tables, views, routines or events",
                    ));
                }
                self.drop_database(&target)?;
                before = None;
            }
        }
        let created = before.is_none();
        if created {
            self.create_database(&target, &dumped_charset(manifest))?;
        }
        let t = Target {
            database: target,
            created,
        };
        self.target = Some((t.clone(), before));
        Ok(t)
    }

    fn load_whole(&mut self, from: &Stored<'_>, file: &str) -> Result<u64> {
        self.feed(from, &[FeedPart::File(file.to_string())])
    }

    fn load_tables(&mut self, from: &Stored<'_>, tables: &[ManifestTable]) -> Result<u64> {
        self.feed(from, &tables::load_parts(tables))
    }

    fn count_rows(&mut self, tables: &[ManifestTable]) -> Result<Vec<u64>> {
        let names = tables
            .iter()
            .map(|t| quote_ident(t.parts.last().unwrap_or(&t.name)));
        count_rows(names, |sql| self.client.query(Some(self.target()), sql))
    }

    /// Put the database back as it was before the load.
    fn undo(&mut self, error: EngineError) -> EngineError {
        let Some((target, before)) = self.target.take() else {
            return error;
        };
        let db = target.database;
        let undo = self.drop_database(&db).and_then(|()| match &before {
            Some(cs) => self.create_database(&db, cs),
            None => Ok(()),
        });
        match undo {
            Ok(()) => error,
            Err(u) => EngineError::source(format!(
                "{error}\n(but removing the partial restore failed: {u}; the database {db:?} \
                 may hold part of the dump)"
            )),
        }
    }

    fn drop_prefixed(&mut self, prefix: &str) -> Result<usize> {
        let names = names_starting(
            self.client
                .query(None, "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA;")?,
            prefix,
        );
        for name in &names {
            self.drop_database(name)?;
        }
        Ok(names.len())
    }

    fn drop_named(&mut self, name: &str) -> Result<bool> {
        let found = self.client.query(
            None,
            &format!(
                "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = {};",
                sql_string(name)
            ),
        )?;
        if found.is_empty() {
            return Ok(false);
        }
        self.drop_database(name)?;
        Ok(true)
    }

    fn discard(&mut self) -> Result<()> {
        match self.target.take() {
            Some((target, None)) => self.drop_database(&target.database),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_per_tool() {
        let maria = DumpTool::new(
            "/usr/bin/mariadb-dump".into(),
            "mariadb-dump  Ver 10.19 Distrib 10.11.14-MariaDB, for debian-linux-gnu".into(),
        );
        let args = dump_args(&maria);
        assert!(args.contains(&"--single-transaction") && args.contains(&"--hex-blob"));
        assert!(
            !args
                .iter()
                .any(|a| a.starts_with("--databases") || a.contains("gtid"))
        );
        let mysql8 = DumpTool::new(
            "/usr/bin/mysqldump".into(),
            "mysqldump  Ver 8.0.36 for Linux on x86_64 (MySQL Community Server - GPL)".into(),
        );
        assert!(dump_args(&mysql8).contains(&"--set-gtid-purged=OFF"));
        let mysql55 = DumpTool::new(
            "/usr/bin/mysqldump".into(),
            "mysqldump  Ver 10.13 Distrib 5.5.62, for Linux (x86_64)".into(),
        );
        assert!(!dump_args(&mysql55).contains(&"--set-gtid-purged=OFF"));
    }
}
