//! `holdfast drill [SNAPSHOT]`: restore a snapshot into a scratch target,
//! verify it against the snapshot, remove the target (see
//! `holdfast_sources::drill`). Exit 0 only when the snapshot restored and
//! verified.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use clap::Args;
use holdfast_engine::snapshots;
use holdfast_sources::drill::{DrillOptions, drill};
use holdfast_sources::progress::Progress;
use holdfast_sources::source_url::SourceAddress;
use serde_json::json;

use crate::global::GlobalOpts;
use crate::ui::{Ui, fmt_bytes, fmt_duration};

#[derive(Args, Debug)]
pub struct DrillArgs {
    /// Snapshot id, unique id prefix, or "latest"
    #[arg(default_value = "latest")]
    pub snapshot: String,
    /// Where files and SQLite databases are restored for the drill (a fresh
    /// directory in it, removed afterwards) [default: holdfast's cache
    /// directory]
    #[arg(long, value_name = "DIR")]
    pub scratch: Option<PathBuf>,
    /// The database server a PostgreSQL or MySQL drill restores on
    /// (postgres://USER@HOST/, mysql://USER@HOST/): a scratch database is
    /// created there and dropped afterwards
    #[arg(long, value_name = "ADDRESS")]
    pub server: Option<String>,
    /// Read the server's password from this file
    #[arg(long, value_name = "FILE", requires = "server")]
    pub server_password_file: Option<PathBuf>,
    /// Files written in parallel [default: 4]
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    #[command(flatten)]
    pub filter: super::FilterArgs,
}

pub fn run(g: &GlobalOpts, ui: &Arc<Ui>, a: &DrillArgs) -> Result<u8> {
    let server = match &a.server {
        Some(s) => {
            let addr = SourceAddress::parse(s)?;
            let credential =
                super::database::credential_for(ui, &addr, a.server_password_file.as_deref())?;
            Some((addr, credential))
        }
        None => None,
    };
    let scratch = a
        .scratch
        .clone()
        .unwrap_or_else(|| super::database::state_dir().join("drills"));
    let repo = g.open()?;
    let _lock = g.lock(&repo, false, ui)?;
    let (id, snap) = snapshots::find(&repo, &a.snapshot, &a.filter.filter())?;
    ui.notice(&format!(
        "drilling snapshot {} of {:?} at {}",
        id.short(),
        snap.paths,
        crate::ui::fmt_local(&snap.time)
    ));
    let opts = DrillOptions {
        scratch,
        server,
        workers: a.workers.unwrap_or(4),
        name: None,
    };
    let ui2 = ui.clone();
    let progress = Arc::new(Progress::new(Box::new(move |e| ui2.item_error(e))));
    let handle = ui.start_progress(progress.clone(), "restored");
    let r = drill(&repo, &snap, &opts, &progress);
    handle.finish();
    let r = r?;
    ui.json_line(&json!({
        "message_type": "summary",
        "snapshot_id": id.to_hex(),
        "kind": r.kind,
        "bytes": r.bytes,
        "items": r.items,
        "rows": r.rows(),
        "tables": r.tables.iter().map(|(t, n)| json!({"name": t, "rows": n})).collect::<Vec<_>>(),
        "checks": r.checks,
        "duration": r.duration.as_secs_f64(),
    }));
    for c in &r.checks {
        ui.print(&format!("  ok  {c}"));
    }
    ui.print(&format!(
        "drill passed: snapshot {} ({}) restored and verified, {} in {}",
        id.short(),
        r.kind,
        fmt_bytes(r.bytes),
        fmt_duration(r.duration)
    ));
    Ok(crate::exit::OK)
}
