//! Dump mode: `pg_dump`'s plain SQL streamed straight into the repository
//! (no temporary file), uncompressed so that consecutive dumps share
//! chunks. While it streams, the COPY blocks are counted per table; the dump
//! counts as whole only if pg_dump exits 0 and its output reached the
//! completion marker. Otherwise no snapshot is written.
//!
//! The snapshot holds `<database>.sql` and `manifest.json` (server version,
//! database, per-table row counts, the dump's SHA-256).

use std::sync::Arc;

use holdfast_engine::repository::Repository;
use holdfast_engine::{EngineError, Result};
use serde_json::json;

use super::PgClient;
use crate::command::Spawned;
use crate::db_backup::{commit_source, manifest_tables, store_tool_output};
// The shared dump-backup types, where the CLI has always found them.
pub use crate::db_backup::{DumpBackupOptions, DumpBackupResult, dump_file_name};
use crate::dump_scan::postgres::PgDumpScan;
use crate::progress::Progress;
use crate::writer::SnapshotWriter;
use holdfast_format::manifest::Manifest;

/// Back up one database with pg_dump.
pub fn backup_pg_dump(
    repo: &Arc<Repository>,
    client: &mut PgClient,
    opts: DumpBackupOptions,
    progress: &Progress,
) -> Result<DumpBackupResult> {
    let database = client.addr.database.clone();
    let server = client.server_info(&database)?;
    client.pick_tools(&server)?;
    let file = dump_file_name(&database, "sql");

    let mut cmd = client.command(&client.tools.pg_dump, &database);
    // Plain SQL that loads into any database of any owner: no owner or
    // privilege statements (roles are cluster-wide and not in the dump).
    cmd.args([
        "--format=plain",
        "--no-owner",
        "--no-privileges",
        "--no-password",
    ]);
    let (child, stdout) = Spawned::start(cmd, "pg_dump")?;

    let mut writer =
        match SnapshotWriter::new(repo, opts.chunker, &opts.saver, opts.dry_run, progress) {
            Ok(w) => w,
            Err(e) => {
                child.kill();
                return Err(e);
            }
        };
    let (facts, scan) =
        store_tool_output(&mut writer, &file, child, stdout, PgDumpScan::default())?;
    scan.verdict().map_err(|why| {
        EngineError::source(format!(
            "pg_dump output is incomplete: {why}; no snapshot was written"
        ))
    })?;

    let mut manifest = Manifest::new("postgres", "dump", client.display());
    manifest.database = Some(database.clone());
    manifest.server_version = Some(server.version.clone());
    manifest.tool = Some(client.tools.version.clone());
    manifest
        .extra
        .insert("encoding".into(), json!(server.encoding));
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
