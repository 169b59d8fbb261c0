use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use clap::Args;
use holdfast_engine::snapshots;
use holdfast_sources::dir::restore::{Action, RestoreOptions};
use holdfast_sources::filter::PathMatcher;
use holdfast_sources::progress::Progress;
use holdfast_sources::source_url::SourceAddress;
use holdfast_sources::spec::{Confinement, RestoreReport, RestoreSpec};
use serde_json::json;

use super::FilterArgs;
use crate::global::GlobalOpts;
use crate::ui::{Ui, fmt_bytes, fmt_duration};

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// Snapshot id, unique id prefix, or "latest"
    pub snapshot: String,
    /// Directory to restore into
    #[arg(
        long,
        short = 't',
        required_unless_present = "to",
        conflicts_with = "to"
    )]
    pub target: Option<PathBuf>,
    /// Restore a database snapshot into this database (postgres://…/DB,
    /// mysql://…/DB, sqlite:///FILE; created if absent), or replay an event
    /// stream into jsonl+https://… (resumes where an interrupted replay stopped)
    #[arg(long, value_name = "ADDRESS")]
    pub to: Option<String>,
    /// With --to: drop and recreate a target database that is not empty
    #[arg(long, requires = "to")]
    pub clean: bool,
    /// With --to: read the database password from this file
    #[arg(long, value_name = "FILE", requires = "to")]
    pub source_password_file: Option<PathBuf>,
    /// Restore only paths matching a pattern (repeatable)
    #[arg(long, short = 'i', value_name = "PATTERN")]
    pub include: Vec<String>,
    /// Do not restore paths matching a pattern (repeatable)
    #[arg(long, short = 'e', value_name = "PATTERN")]
    pub exclude: Vec<String>,
    /// Remove files in the target that the snapshot does not have
    #[arg(long)]
    pub delete: bool,
    /// Show what would change, change nothing
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Write zero blocks instead of leaving holes
    #[arg(long)]
    pub no_sparse: bool,
    /// Files written in parallel [default: 4, or the storage's connections
    /// on object storage]
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    #[command(flatten)]
    pub filter: FilterArgs,
}

pub fn run(g: &GlobalOpts, ui: &Arc<Ui>, a: &RestoreArgs) -> Result<u8> {
    let includes = PathMatcher::new(&a.include).map_err(anyhow::Error::msg)?;
    let excludes = PathMatcher::new(&a.exclude).map_err(anyhow::Error::msg)?;
    let repo = g.open()?;
    let _lock = g.lock(&repo, false, ui)?;
    let (id, snap) = snapshots::find(&repo, &a.snapshot, &a.filter.filter())?;
    if let Some(to) = &a.to {
        let addr = SourceAddress::parse(to)?;
        ui.notice(&format!(
            "restoring snapshot {} of {:?} into {addr}",
            id.short(),
            snap.paths
        ));
        let started = Instant::now();
        let ui2 = ui.clone();
        let progress = Arc::new(Progress::new(Box::new(move |e| ui2.item_error(e))));
        let handle = ui.start_progress(progress.clone(), "");
        let r = super::database::restore(
            ui,
            &repo,
            &id,
            &snap,
            addr,
            a.source_password_file.as_deref(),
            a.clean,
            &progress,
        );
        handle.finish();
        super::database::print_restore_report(ui, &r?, started.elapsed());
        return Ok(crate::exit::OK);
    }
    let target = a
        .target
        .clone()
        .expect("clap requires --target without --to");
    ui.notice(&format!(
        "restoring snapshot {} of {:?} at {} to {}",
        id.short(),
        snap.paths,
        crate::ui::fmt_local(&snap.time),
        target.display()
    ));
    let started = Instant::now();
    let ui2 = ui.clone();
    let progress = Arc::new(Progress::new(Box::new(move |e| ui2.item_error(e))));
    let spec = RestoreSpec::Tree(RestoreOptions {
        target,
        includes,
        excludes,
        delete: a.delete,
        dry_run: a.dry_run,
        // object storage is bound by request latency: one reader per connection
        workers: a
            .workers
            .unwrap_or_else(|| repo.backend().connections().max(4)),
        sparse: !a.no_sparse,
        confine: None,
    });
    let show_actions = a.dry_run || ui.verbose > 0;
    let ui3 = ui.clone();
    let on_action = move |act: Action| {
        if !show_actions {
            return;
        }
        let (kind, p) = match &act {
            Action::Create(p) => ("new", p),
            Action::Update(p) => ("updated", p),
            Action::Unchanged(p) => ("unchanged", p),
            Action::Delete(p) => ("deleted", p),
        };
        if ui3.json {
            ui3.json_line(&json!({"message_type": "verbose_status", "action": kind, "item": p}));
        } else if kind != "unchanged" || ui3.verbose > 1 {
            let prefix = if a.dry_run {
                "would restore"
            } else {
                "restored"
            };
            let verb = match kind {
                "deleted" if a.dry_run => "would delete".to_string(),
                "deleted" => "deleted".to_string(),
                "unchanged" => "unchanged".to_string(),
                k => format!("{prefix} ({k})"),
            };
            ui3.print(&format!("{verb:>24}  {p}"));
        }
    };
    let handle = ui.start_progress(progress.clone(), "restored");
    let r = holdfast_sources::spec::restore(
        &repo,
        &id,
        &snap,
        spec,
        &Confinement::default(),
        &progress,
        &on_action,
    );
    handle.finish();
    // the engine's error, for the exit code
    let s = match r.map_err(|e| e.error)? {
        RestoreReport::Tree(s) => s,
        RestoreReport::Address(_) => unreachable!("a tree restores as one"),
    };
    let took = started.elapsed();
    ui.json_line(&json!({
        "message_type": "summary",
        "dry_run": a.dry_run,
        "snapshot_id": id.to_hex(),
        "files_restored": s.files_restored,
        "files_unchanged": s.files_unchanged,
        "dirs": s.dirs,
        "symlinks": s.symlinks,
        "hardlinks": s.hardlinks,
        "special": s.special,
        "files_deleted": s.deleted,
        "bytes_written": s.bytes_written,
        "skipped_devices": s.skipped_devices,
        "errors": s.errors,
        "total_duration": took.as_secs_f64(),
    }));
    ui.print(&format!(
        "Summary: {} {} files, {} unchanged, {} deleted, {} written in {}",
        if a.dry_run {
            "would restore"
        } else {
            "restored"
        },
        s.files_restored,
        s.files_unchanged,
        s.deleted,
        fmt_bytes(s.bytes_written),
        fmt_duration(took)
    ));
    if s.skipped_devices > 0 {
        ui.notice(&format!(
            "{} device node(s) not restored: creating them needs root",
            s.skipped_devices
        ));
    }
    if s.errors > 0 {
        anyhow::bail!(
            "{} error(s) during restore; see the messages above",
            s.errors
        );
    }
    Ok(crate::exit::OK)
}
