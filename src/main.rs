//! `holdfast`: the command-line interface.

mod commands;
mod global;
mod ui;

use std::process::ExitCode;
use std::sync::Arc;

use clap::{CommandFactory, Parser, Subcommand};
use holdfast_engine::EngineError;

use crate::global::GlobalOpts;
use crate::ui::Ui;

/// holdfast: backups in restic's repository format, faster.
#[derive(Parser, Debug)]
#[command(name = "holdfast", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    global: GlobalOpts,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Create a new repository
    Init(commands::init::InitArgs),
    /// Back up files, directories or a stream
    Backup(commands::backup::BackupArgs),
    /// Restore a snapshot into a directory
    Restore(commands::restore::RestoreArgs),
    /// List snapshots
    Snapshots(commands::snapshots::SnapshotsArgs),
    /// List the files in a snapshot
    Ls(commands::ls::LsArgs),
    /// Write a file (or a directory as tar) from a snapshot to stdout
    Dump(commands::dump::DumpArgs),
    /// Write a snapshot as standard files (tar, zip, SQL, JSON Lines) with a
    /// checksum manifest; or check such a file with --verify
    Export(commands::export::ExportArgs),
    /// Print a repository object
    Cat(commands::cat::CatArgs),
    /// Show sizes of snapshots and of the repository
    Stats(commands::stats::StatsArgs),
    /// Show the differences between two snapshots
    Diff(commands::diff::DiffArgs),
    /// Verify the repository's integrity
    Check(commands::check::CheckArgs),
    /// Prove a snapshot restores: restore it into a scratch target, verify
    /// it against the snapshot, remove the target
    Drill(commands::drill::DrillArgs),
    /// Remove snapshots by policy (restic's --keep-* rules) or by id
    Forget(Box<commands::forget::ForgetArgs>),
    /// Remove data no snapshot needs
    Prune(commands::prune::PruneArgs),
    /// Manage the repository's keys (passwords)
    #[command(subcommand)]
    Key(commands::key::KeyCmd),
    /// Remove stale locks
    Unlock(commands::unlock::UnlockArgs),
    /// Print a shell completion script
    Completion(commands::completion::CompletionArgs),
    /// Run the backup service: REST API, job workers, catalog
    Serve(commands::serve::ServeArgs),
    /// Manage the service's API tokens
    #[command(subcommand)]
    Token(commands::serve::TokenCmd),
    /// Service tenants: export a tenant's repository password
    #[command(subcommand)]
    Tenant(commands::serve::TenantCmd),
    /// The service's audit log
    #[command(subcommand)]
    Audit(commands::serve::AuditCmd),
    /// The service's catalog: copy it into PostgreSQL
    #[command(subcommand)]
    Catalog(commands::serve::CatalogCmd),
    /// A tenant's signed evidence report (success rates, achieved RPO,
    /// drills, verification, the audit head), or `report verify FILE`
    Report(commands::serve::ReportArgs),
}

/// restic's exit codes.
pub mod exit {
    pub const OK: u8 = 0;
    pub const FAILURE: u8 = 1;
    pub const PARTIAL: u8 = 3;
    pub const NO_REPO: u8 = 10;
    pub const LOCKED: u8 = 11;
    pub const WRONG_PASSWORD: u8 = 12;
    pub const INTERRUPTED: u8 = 130;
}

fn exit_code_of(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if let Some(ee) = cause.downcast_ref::<EngineError>() {
            return match ee {
                EngineError::RepoNotFound(_) => exit::NO_REPO,
                EngineError::Locked(_) => exit::LOCKED,
                EngineError::WrongPassword { .. } => exit::WRONG_PASSWORD,
                EngineError::Interrupted => exit::INTERRUPTED,
                _ => exit::FAILURE,
            };
        }
    }
    exit::FAILURE
}

/// Serve large buffers (chunks, packs) with mmap and give them back on
/// free: glibc's adaptive threshold otherwise keeps freed multi-megabyte
/// buffers in per-thread arenas and the resident size grows far past what
/// is live. Below that, keep up to 64 MiB free at the top of each heap
/// instead of 128 KiB: a restore frees and allocates a blob's buffers for
/// every file, and handing them back each time made the kernel fault in
/// 450,000 fresh pages per restore of the benchmark's tree (270,000 now;
/// −0.3 to −0.4 s of system time, +25 MB peak RSS, still below restic's).
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only adjusts allocator parameters; called before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
    }
}

extern "C" fn on_signal(_: libc::c_int) {
    if holdfast_engine::cancel::requested() {
        // second Ctrl-C: stop now
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(130) };
    }
    holdfast_engine::cancel::request();
}

/// SIGINT/SIGTERM ask running operations to stop cleanly (locks released,
/// no snapshot written); a second signal exits at once.
fn install_signal_handlers() {
    let handler: extern "C" fn(libc::c_int) = on_signal;
    // SAFETY: the handler only touches an atomic flag or calls _exit.
    unsafe {
        libc::signal(libc::SIGINT, handler as libc::sighandler_t);
        libc::signal(libc::SIGTERM, handler as libc::sighandler_t);
    }
}

fn main() -> ExitCode {
    tune_allocator();
    install_signal_handlers();
    let cli = Cli::parse();
    let ui = Arc::new(Ui::new(
        cli.global.json,
        cli.global.quiet,
        cli.global.verbose,
    ));
    let g = &cli.global;
    let r = match &cli.command {
        Cmd::Init(a) => commands::init::run(g, &ui, a),
        Cmd::Backup(a) => commands::backup::run(g, &ui, a),
        Cmd::Restore(a) => commands::restore::run(g, &ui, a),
        Cmd::Snapshots(a) => commands::snapshots::run(g, &ui, a),
        Cmd::Ls(a) => commands::ls::run(g, &ui, a),
        Cmd::Dump(a) => commands::dump::run(g, &ui, a),
        Cmd::Export(a) => commands::export::run(g, &ui, a),
        Cmd::Cat(a) => commands::cat::run(g, &ui, a),
        Cmd::Stats(a) => commands::stats::run(g, &ui, a),
        Cmd::Diff(a) => commands::diff::run(g, &ui, a),
        Cmd::Check(a) => commands::check::run(g, &ui, a),
        Cmd::Drill(a) => commands::drill::run(g, &ui, a),
        Cmd::Forget(a) => commands::forget::run(g, &ui, a),
        Cmd::Prune(a) => commands::prune::run(g, &ui, a),
        Cmd::Key(a) => commands::key::run(g, &ui, a),
        Cmd::Unlock(a) => commands::unlock::run(g, &ui, a),
        Cmd::Serve(a) => commands::serve::serve(&ui, a),
        Cmd::Token(a) => commands::serve::token(&ui, a),
        Cmd::Tenant(a) => commands::serve::tenant(&ui, a),
        Cmd::Audit(a) => commands::serve::audit(&ui, a),
        Cmd::Catalog(a) => commands::serve::catalog(&ui, a),
        Cmd::Report(a) => commands::serve::report(&ui, a),
        Cmd::Completion(a) => {
            commands::completion::run(a, &mut Cli::command());
            Ok(exit::OK)
        }
    };
    match r {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let code = exit_code_of(&e);
            let msg = format!("{e:#}");
            if ui.json {
                ui.stderr_json(&serde_json::json!({
                    "message_type": "exit_error",
                    "code": code,
                    "message": msg,
                }));
            } else {
                eprintln!("holdfast: {msg}");
            }
            ExitCode::from(code)
        }
    }
}
