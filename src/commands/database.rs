//! The database and stream sources behind `backup ADDRESS` and
//! `restore SNAPSHOT --to ADDRESS`: one place that maps an address to its
//! source, and prints what a source run did.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use holdfast_engine::repository::Repository;
use holdfast_format::Id;
use holdfast_format::snapshot::Snapshot;
use holdfast_sources::database::restore::RestoreReport;
use holdfast_sources::progress::Progress;
use holdfast_sources::secret;
use holdfast_sources::source_url::SourceAddress;
use holdfast_sources::spec::{Confinement, RestoreSpec};

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

/// The bearer token for an HTTP source: a token file, else
/// `HOLDFAST_SOURCE_TOKEN`.
fn http_token(password_file: Option<&Path>) -> Result<Option<secret::Secret>> {
    if let Some(t) = secret::resolve(password_file, None)? {
        return Ok(Some(t));
    }
    Ok(std::env::var("HOLDFAST_SOURCE_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
        .map(secret::Secret::new))
}

/// Where resumable work (event replays) keeps its progress.
pub fn state_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("HOLDFAST_CACHE_DIR") {
        return PathBuf::from(d);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("holdfast")
}

/// The credential a backup of `addr` uses: the bearer token of an event
/// stream, or the database password from `--source-password-file` (else
/// the tools' own means: PGPASSWORD, ~/.pgpass, MYSQL_PWD, option files).
pub fn credential_for(
    ui: &Ui,
    addr: &SourceAddress,
    password_file: Option<&Path>,
) -> Result<Option<secret::Secret>> {
    warn_password_in_address(ui, addr);
    Ok(match addr {
        SourceAddress::Jsonl(_) => http_token(password_file)?,
        SourceAddress::Sqlite(_) if password_file.is_some() => {
            bail!("--source-password-file does not apply to SQLite, which has no passwords")
        }
        _ => password_file.map(secret::read_password_file).transpose()?,
    })
}

/// Restore a database or stream snapshot into `addr`, through the sources'
/// one entry point.
#[allow(clippy::too_many_arguments)]
pub fn restore(
    ui: &Ui,
    repo: &Repository,
    snapshot_id: &Id,
    snapshot: &Snapshot,
    addr: SourceAddress,
    password_file: Option<&Path>,
    clean: bool,
    progress: &Progress,
) -> Result<RestoreReport> {
    warn_password_in_address(ui, &addr);
    let credential = match &addr {
        SourceAddress::Jsonl(_) => http_token(password_file)?,
        _ => password_file.map(secret::read_password_file).transpose()?,
    };
    let r = holdfast_sources::spec::restore(
        repo,
        snapshot_id,
        snapshot,
        RestoreSpec::Address {
            addr,
            credential,
            clean,
            replay_state: state_dir().join("replay"),
        },
        &Confinement::default(),
        progress,
        &|_| {},
    )
    .map_err(|e| e.error)?;
    match r {
        holdfast_sources::spec::RestoreReport::Address(r) => Ok(r),
        holdfast_sources::spec::RestoreReport::Tree(_) => {
            unreachable!("an address restores as one")
        }
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
        "resumed_after": r.resumed_after,
        "total_duration": took.as_secs_f64(),
    }));
    if r.database.ends_with(".jsonl") {
        ui.print(&format!(
            "replayed {} events ({}) into {}{}; every batch acknowledged, the stream's SHA-256 \
             verified, in {}",
            r.rows(),
            fmt_bytes(r.bytes),
            r.target,
            if r.resumed_after > 0 {
                format!(" (resumed after event {})", r.resumed_after)
            } else {
                String::new()
            },
            crate::ui::fmt_duration(took)
        ));
        return;
    }
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
