//! The database and stream sources behind `backup ADDRESS` and
//! `restore SNAPSHOT --to ADDRESS`: one place that maps an address to its
//! source, and prints what a source run did.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Result, bail};
use holdfast_engine::repository::Repository;
use holdfast_format::snapshot::Snapshot;
use holdfast_sources::db_restore::RestoreReport;
use holdfast_sources::manifest::{Manifest, snapshot_kind};
use holdfast_sources::mysql::MyClient;
use holdfast_sources::mysql::dump::backup_mysql_dump;
use holdfast_sources::mysql::restore::{MyRestoreOptions, restore_mysql_dump};
use holdfast_sources::postgres::PgClient;
use holdfast_sources::postgres::dump::{DumpBackupOptions, DumpBackupResult, backup_pg_dump};
use holdfast_sources::postgres::restore::{PgRestoreOptions, restore_pg_dump};
use holdfast_sources::progress::Progress;
use holdfast_sources::secret;
use holdfast_sources::source_url::SourceAddress;

use crate::ui::{Ui, fmt_bytes};

fn warn_password_in_address(ui: &Ui, addr: &SourceAddress) {
    if addr.has_password() {
        ui.warn(
            "the address holds a password, which other users can read from this process's command line; \
             use the tool's environment variable (PGPASSWORD, MYSQL_PWD), its option file, \
             or --source-password-file",
        );
    }
}

pub fn backup(
    ui: &Ui,
    repo: &Arc<Repository>,
    addr: SourceAddress,
    password_file: Option<&Path>,
    opts: DumpBackupOptions,
    progress: &Progress,
) -> Result<DumpBackupResult> {
    warn_password_in_address(ui, &addr);
    match addr {
        SourceAddress::Postgres(db) => {
            let pw = secret::resolve(password_file, db.password.as_deref())?;
            let mut client = PgClient::new(db, pw)?;
            Ok(backup_pg_dump(repo, &mut client, opts, progress)?)
        }
        SourceAddress::Mysql(db) => {
            let pw = secret::resolve(password_file, db.password.as_deref())?;
            let client = MyClient::new(db, pw)?;
            Ok(backup_mysql_dump(repo, &client, opts, progress)?)
        }
        other => bail!("backing up {other} is not supported yet"),
    }
}

/// Restore a database or stream snapshot into `addr`.
pub fn restore(
    ui: &Ui,
    repo: &Repository,
    snapshot: &Snapshot,
    addr: SourceAddress,
    password_file: Option<&Path>,
    clean: bool,
    progress: &Progress,
) -> Result<RestoreReport> {
    warn_password_in_address(ui, &addr);
    let Some((kind, mode)) = snapshot_kind(snapshot) else {
        bail!("this snapshot holds files, not a database: restore it with --target DIR");
    };
    let Some(manifest) = Manifest::load(repo, snapshot)? else {
        bail!("the snapshot has no manifest.json: it cannot be restored into a database");
    };
    match (addr, kind.as_str(), mode.as_str()) {
        (SourceAddress::Postgres(db), "postgres", "dump") => {
            let pw = secret::resolve(password_file, db.password.as_deref())?;
            let mut client = PgClient::new(db, pw)?;
            Ok(restore_pg_dump(
                repo,
                snapshot,
                &manifest,
                &mut client,
                &PgRestoreOptions { clean },
                progress,
            )?)
        }
        (SourceAddress::Mysql(db), "mysql", "dump") => {
            let pw = secret::resolve(password_file, db.password.as_deref())?;
            let client = MyClient::new(db, pw)?;
            Ok(restore_mysql_dump(
                repo,
                snapshot,
                &manifest,
                &client,
                &MyRestoreOptions { clean },
                progress,
            )?)
        }
        (addr, kind, mode) => bail!("a {kind} {mode} snapshot cannot be restored into {addr}"),
    }
}

/// One line about a source run, from the snapshot's `holdfast.source`.
pub fn describe_source(src: &serde_json::Value) -> String {
    let s = |k: &str| src.get(k).and_then(|v| v.as_str()).unwrap_or("");
    let n = |k: &str| src.get(k).and_then(|v| v.as_u64());
    let mut out = format!("{} {} of {}", s("kind"), s("mode"), s("address"));
    if !s("server_version").is_empty() {
        out.push_str(&format!(" (server {})", s("server_version")));
    }
    if let (Some(t), Some(r)) = (n("tables"), n("rows")) {
        out.push_str(&format!(": {t} tables, {r} rows"));
    }
    if let Some(size) = n("size") {
        out.push_str(&format!(", {} {}", fmt_bytes(size), s("file")));
    }
    out
}

pub fn print_restore_report(ui: &Ui, r: &RestoreReport, took: std::time::Duration) {
    ui.json_line(&serde_json::json!({
        "message_type": "summary",
        "target": r.target,
        "database": r.database,
        "created": r.created,
        "bytes": r.bytes,
        "tables": r.tables.len(),
        "rows": r.rows(),
        "verified": true,
        "total_duration": took.as_secs_f64(),
    }));
    ui.print(&format!(
        "restored {} into {}{}: {} tables, {} rows; row counts verified against the manifest in {}",
        fmt_bytes(r.bytes),
        r.target,
        if r.created { " (created)" } else { "" },
        r.tables.len(),
        r.rows(),
        crate::ui::fmt_duration(took)
    ));
}
