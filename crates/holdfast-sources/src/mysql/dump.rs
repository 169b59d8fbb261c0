//! Dump mode: mariadb-dump's (or mysqldump's) SQL streamed straight into
//! the repository (no temporary file), uncompressed so that consecutive
//! dumps share chunks. While it streams, the INSERT rows are counted per
//! table; the dump counts as whole only if the tool exits 0 and its output
//! reached the `-- Dump completed` marker. Otherwise no snapshot is
//! written.
//!
//! The snapshot holds `<database>.sql` and `manifest.json` (server version,
//! the database's character set, per-table row counts, the dump's SHA-256).

use std::sync::Arc;

use holdfast_engine::repository::Repository;
use holdfast_engine::{EngineError, Result};
use serde_json::json;

use super::{DumpTool, Flavor, MyClient};
use crate::command::Spawned;
use crate::db_backup::{
    DumpBackupOptions, DumpBackupResult, commit_source, dump_file_name, manifest_tables,
    store_tool_output,
};
use crate::dump_scan::mysql::MysqlDumpScan;
use crate::progress::Progress;
use crate::writer::SnapshotWriter;
use holdfast_format::manifest::Manifest;

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

/// Back up one database with mariadb-dump or mysqldump.
pub fn backup_mysql_dump(
    repo: &Arc<Repository>,
    client: &MyClient,
    opts: DumpBackupOptions,
    progress: &Progress,
) -> Result<DumpBackupResult> {
    let database = client.addr.database.clone();
    let server = client.server_info(Some(&database))?;
    let tool = client.tools.dump_tool()?;
    let name = tool.name();
    let file = dump_file_name(&database, "sql");

    let mut cmd = client.command(&tool.path);
    cmd.args(dump_args(&tool)).arg("--").arg(&database);
    let (child, stdout) = Spawned::start(cmd, &name)?;

    let mut writer =
        match SnapshotWriter::new(repo, opts.chunker, &opts.saver, opts.dry_run, progress) {
            Ok(w) => w,
            Err(e) => {
                child.kill();
                return Err(e);
            }
        };
    let (facts, scan) =
        store_tool_output(&mut writer, &file, child, stdout, MysqlDumpScan::default())?;
    scan.verdict().map_err(|why| {
        EngineError::source(format!(
            "{name} output is incomplete: {why}; no snapshot was written"
        ))
    })?;

    let mut manifest = Manifest::new("mysql", "dump", client.display());
    manifest.database = Some(database.clone());
    manifest.server_version = Some(server.version.clone());
    manifest.tool = Some(tool.version.clone());
    manifest
        .extra
        .insert("character_set".into(), json!(server.character_set));
    manifest
        .extra
        .insert("collation".into(), json!(server.collation));
    manifest.add_file(&file, facts.size, &facts.sha256);
    manifest.tables = manifest_tables(scan.into_tables());
    commit_source(
        writer,
        manifest,
        opts.meta,
        Some(&file),
        Default::default(),
        Vec::new(),
    )
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
