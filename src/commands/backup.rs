use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use holdfast_engine::blob_saver::SaverOptions;
use holdfast_engine::chunker::ChunkerParams;
use holdfast_engine::snapshot_builder::SnapshotMeta;
use holdfast_engine::snapshots::{self, SnapshotFilter};
use holdfast_engine::system;
use holdfast_format::snapshot::SnapshotSummary;
use holdfast_sources::database::select::{TablesOptions, Tenant};
use holdfast_sources::dir::backup::{DirBackupOptions, clean_absolute};
use holdfast_sources::dispatch::SourceOptions;
use holdfast_sources::filter::{PathMatcher, read_pattern_file};
use holdfast_sources::progress::Progress;
use holdfast_sources::source_url::SourceAddress;
use holdfast_sources::spec::{BackupSettings, Confinement, SourceSpec};
use serde_json::json;

use crate::global::GlobalOpts;
use crate::ui::{Ui, fmt_bytes, fmt_duration};

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// Files and directories to back up
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Back up the data read from standard input as one file
    #[arg(long)]
    pub stdin: bool,
    /// File name to store standard input (or --command's output) under
    #[arg(long, default_value = "stdin", value_name = "NAME")]
    pub stdin_filename: String,
    /// Back up the standard output of a command (run with /bin/sh -c); a
    /// non-zero exit status or a signal fails the backup
    #[arg(long, value_name = "CMD", conflicts_with = "stdin")]
    pub command: Option<String>,
    /// Add a tag to the snapshot (repeatable, or comma-separated)
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Host name to record (default: this machine's)
    #[arg(long, short = 'H', value_name = "HOST")]
    pub host: Option<String>,
    /// Exclude paths matching a pattern (repeatable)
    #[arg(long, short = 'e', value_name = "PATTERN")]
    pub exclude: Vec<String>,
    /// Read exclude patterns from a file (repeatable)
    #[arg(long, value_name = "FILE")]
    pub exclude_file: Vec<PathBuf>,
    /// Do not cross file system boundaries
    #[arg(long, short = 'x')]
    pub one_file_system: bool,
    /// Compare with this snapshot instead of the latest one of the same host and paths
    #[arg(long, value_name = "SNAPSHOT")]
    pub parent: Option<String>,
    /// Read every file again, ignoring the parent snapshot
    #[arg(long)]
    pub force: bool,
    /// Do everything except writing to the repository
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Chunk sizes MIN:AVG:MAX (default 512K:1M:8M for files, 2K:8K:64K for
    /// database sources and --rows)
    #[arg(long, value_name = "MIN:AVG:MAX")]
    pub chunk_size: Option<String>,
    /// The input is rows (a dump, CSV, JSON Lines piped in with --stdin or
    /// --command): small chunks cut where a row ends, as for database sources
    #[arg(long)]
    pub rows: bool,
    /// Files read in parallel
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub read_concurrency: usize,
    /// Read the database password (or the HTTP token) from this file
    #[arg(long, value_name = "FILE")]
    pub source_password_file: Option<std::path::PathBuf>,
    /// Event streams: refuse events whose schemaVersion is higher
    #[arg(long, value_name = "N")]
    pub max_schema_version: Option<u64>,
    /// Databases: "dump" (the dump tool's SQL) or "tables" (one CSV per
    /// table, all at one instant, with DDL and a manifest)
    #[arg(long, value_name = "MODE", default_value = "dump", value_parser = ["dump", "tables"])]
    pub mode: String,
    /// Tables mode: export only tables matching this pattern (schema.table or
    /// table, * and ? wildcards; repeatable). With --tenant-column: also
    /// export these tables whole (reference data)
    #[arg(long, value_name = "PATTERN")]
    pub include_table: Vec<String>,
    /// Tables mode: leave out tables matching this pattern entirely — no
    /// file, no manifest entry, no DDL (repeatable)
    #[arg(long, value_name = "PATTERN")]
    pub exclude_table: Vec<String>,
    /// Tables mode: keep only the rows of one customer, in every table that
    /// has this column (tables without it are left out unless included)
    #[arg(long, value_name = "COLUMN", requires = "tenant_value")]
    pub tenant_column: Option<String>,
    /// Tables mode: the customer's value of --tenant-column
    #[arg(long, value_name = "VALUE", requires = "tenant_column")]
    pub tenant_value: Option<String>,
    /// Tables mode: add a query's result as its own file, NAME='SELECT …
    /// ORDER BY …' (repeatable)
    #[arg(long, value_name = "NAME=SQL")]
    pub query: Vec<String>,
}

pub fn run(g: &GlobalOpts, ui: &Arc<Ui>, a: &BackupArgs) -> Result<u8> {
    let streamed = a.stdin || a.command.is_some();
    if streamed && !a.paths.is_empty() {
        bail!("--stdin and --command cannot be combined with paths");
    }
    if !streamed && a.paths.is_empty() {
        bail!("nothing to back up: give paths, --stdin or --command");
    }
    let source = match a.paths.as_slice() {
        [one] => address_of(one)?,
        many => {
            for p in many {
                if address_of(p)?.is_some() {
                    bail!(
                        "a database or stream address must be the only thing backed up in one run"
                    );
                }
            }
            None
        }
    };
    let table_flags = !a.include_table.is_empty()
        || !a.exclude_table.is_empty()
        || a.tenant_column.is_some()
        || !a.query.is_empty();
    if table_flags && a.mode != "tables" {
        bail!("--include-table, --exclude-table, --tenant-column and --query need --mode tables");
    }
    if a.mode == "tables" && source.is_none() {
        bail!("--mode tables applies to database addresses (postgres://…, mysql://…, sqlite:///…)");
    }
    if a.rows && !streamed {
        bail!("--rows applies to --stdin and --command (database sources are rows already)");
    }
    // database sources are rows: cut at record ends whatever the sizes
    let rows = source.is_some() || a.rows;
    let chunker = match &a.chunk_size {
        Some(s) => ChunkerParams::parse(s)
            .map_err(anyhow::Error::msg)?
            .with_records(rows),
        None if rows => ChunkerParams::ROWS,
        None => ChunkerParams::FILES,
    };
    let saver = SaverOptions {
        compression: g.compression()?,
        pack_size: g.pack_size()?,
        ..Default::default()
    };
    let mut excludes = a.exclude.clone();
    for f in &a.exclude_file {
        excludes.extend(read_pattern_file(f).map_err(anyhow::Error::msg)?);
    }
    let excludes = PathMatcher::new(&excludes).map_err(anyhow::Error::msg)?;
    let tags: Vec<String> = a
        .tags
        .iter()
        .flat_map(|t| t.split(','))
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect();
    let host = a.host.clone().unwrap_or_else(system::hostname);
    let meta = SnapshotMeta {
        hostname: host.clone(),
        username: system::username(),
        uid: system::uid(),
        gid: system::gid(),
        tags,
        ..Default::default()
    };

    let repo = g.open()?;
    let _lock = g.lock(&repo, false, ui)?;
    let started = Instant::now();
    let ui2 = ui.clone();
    let progress = Arc::new(Progress::new(Box::new(move |e| ui2.item_error(e))));

    // one entry point for every kind of source: build the spec, then run it
    let spec = if let Some(addr) = source {
        SourceSpec::Address {
            credential: super::database::credential_for(
                ui,
                &addr,
                a.source_password_file.as_deref(),
            )?,
            addr,
            options: SourceOptions {
                max_schema_version: a.max_schema_version,
                tables: (a.mode == "tables")
                    .then(|| tables_options(a))
                    .transpose()?,
            },
        }
    } else if let Some(cmd) = &a.command {
        SourceSpec::Command {
            shell: cmd.clone(),
            filename: a.stdin_filename.clone(),
        }
    } else if a.stdin {
        SourceSpec::Stream {
            reader: Box::new(std::io::stdin().lock()),
            filename: a.stdin_filename.clone(),
        }
    } else {
        let mut abs: Vec<String> = Vec::new();
        for p in &a.paths {
            abs.push(
                clean_absolute(p)
                    .context("cannot resolve the current directory")?
                    .to_string_lossy()
                    .into_owned(),
            );
        }
        let parent = if let Some(p) = &a.parent {
            Some(snapshots::find(&repo, p, &SnapshotFilter::default())?)
        } else if a.force {
            None
        } else {
            snapshots::find_parent(&repo, &host, &abs)?
        };
        if let Some((pid, _)) = &parent {
            ui.notice(&format!("using parent snapshot {}", pid.short()));
        }
        SourceSpec::Paths(DirBackupOptions {
            paths: a.paths.clone(),
            excludes,
            one_file_system: a.one_file_system,
            readers: a.read_concurrency,
            parent,
            scan: !ui.quiet && (ui.json || std::io::IsTerminal::is_terminal(&std::io::stderr())),
            confine: None,
        })
    };
    let handle = ui.start_progress(progress.clone(), "");
    let r = holdfast_sources::spec::backup(
        &repo,
        spec,
        BackupSettings {
            chunker,
            saver,
            meta,
            dry_run: a.dry_run,
        },
        &Confinement::default(),
        &progress,
    );
    handle.finish();
    // the engine's error, for the exit code
    let r = r.map_err(|e| e.error)?;
    for w in &r.warnings {
        ui.warn(w);
    }
    let source_summary = r
        .snapshot
        .extra
        .get("holdfast")
        .and_then(|h| h.get("source"))
        .cloned();
    let (id, snap) = (r.snapshot_id, r.snapshot);
    let s = snap.summary.clone().unwrap_or_default();
    print_summary(
        ui,
        &s,
        id.as_ref(),
        a.dry_run,
        started.elapsed(),
        source_summary.as_ref(),
        repo.backend().stats().retries,
    );
    let errors = progress.errors.load(std::sync::atomic::Ordering::Relaxed);
    if errors > 0 {
        ui.warn(&format!(
            "{errors} source file(s) could not be read and were left out of the snapshot"
        ));
        return Ok(crate::exit::PARTIAL);
    }
    Ok(crate::exit::OK)
}

/// The database or stream address a backup argument names, if it is one.
/// The tables-mode options, checked.
fn tables_options(a: &BackupArgs) -> Result<TablesOptions> {
    let mut queries = Vec::new();
    for q in &a.query {
        let Some((name, sql)) = q.split_once('=') else {
            bail!("--query needs NAME=SQL, got {q:?}");
        };
        let name = name.trim();
        if name.is_empty() || sql.trim().is_empty() {
            bail!("--query needs a name and a query: NAME='SELECT … ORDER BY …'");
        }
        queries.push((name.to_string(), sql.to_string()));
    }
    Ok(TablesOptions {
        include: a.include_table.clone(),
        exclude: a.exclude_table.clone(),
        tenant: match (&a.tenant_column, &a.tenant_value) {
            (Some(c), Some(v)) => Some(Tenant {
                column: c.clone(),
                value: v.clone(),
            }),
            _ => None,
        },
        queries,
    })
}

fn address_of(p: &std::path::Path) -> Result<Option<SourceAddress>> {
    let Some(s) = p.to_str() else { return Ok(None) };
    Ok(match SourceAddress::parse(s)? {
        SourceAddress::Path(_) => None,
        addr => Some(addr),
    })
}

fn print_summary(
    ui: &Ui,
    s: &SnapshotSummary,
    id: Option<&holdfast_format::Id>,
    dry_run: bool,
    took: std::time::Duration,
    source: Option<&serde_json::Value>,
    retries: u64,
) {
    let mut v = json!({
        "message_type": "summary",
        "dry_run": dry_run,
        "files_new": s.files_new,
        "files_changed": s.files_changed,
        "files_unmodified": s.files_unmodified,
        "dirs_new": s.dirs_new,
        "dirs_changed": s.dirs_changed,
        "dirs_unmodified": s.dirs_unmodified,
        "data_blobs": s.data_blobs,
        "tree_blobs": s.tree_blobs,
        "data_added": s.data_added,
        "data_added_packed": s.data_added_packed,
        "total_files_processed": s.total_files_processed,
        "total_bytes_processed": s.total_bytes_processed,
        "total_duration": took.as_secs_f64(),
        "backup_start": s.backup_start.to_string(),
        "backup_end": s.backup_end.to_string(),
        // requests to the storage repeated after throttling or a 5xx
        "storage_retries": retries,
    });
    if let Some(id) = id {
        v["snapshot_id"] = json!(id.to_hex());
    }
    if let Some(src) = source {
        v["source"] = src.clone();
    }
    ui.json_line(&v);
    if let Some(src) = source {
        ui.print(&format!("\n{}", super::database::describe_source(src)));
    }
    ui.print(&format!(
        "\nFiles:       {:>6} new, {:>6} changed, {:>6} unmodified\n\
         Dirs:        {:>6} new, {:>6} changed, {:>6} unmodified\n\
         Added to the repository: {} ({} stored)\n\n\
         processed {} files, {} in {}",
        s.files_new,
        s.files_changed,
        s.files_unmodified,
        s.dirs_new,
        s.dirs_changed,
        s.dirs_unmodified,
        fmt_bytes(s.data_added),
        fmt_bytes(s.data_added_packed),
        s.total_files_processed,
        fmt_bytes(s.total_bytes_processed),
        fmt_duration(took)
    ));
    if retries > 0 {
        ui.print(&format!(
            "the storage was slow or failing: {retries} request(s) were repeated"
        ));
    }
    match (id, dry_run) {
        (_, true) => ui.print("dry run: no snapshot written"),
        (Some(id), false) => ui.print(&format!("snapshot {} saved", id.short())),
        (None, false) => {}
    }
}
