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
    /// Print a repository object
    Cat(commands::cat::CatArgs),
    /// Show sizes of snapshots and of the repository
    Stats(commands::stats::StatsArgs),
    /// Show the differences between two snapshots
    Diff(commands::diff::DiffArgs),
    /// Manage the repository's keys (passwords)
    #[command(subcommand)]
    Key(commands::key::KeyCmd),
    /// Remove stale locks
    Unlock(commands::unlock::UnlockArgs),
    /// Print a shell completion script
    Completion(commands::completion::CompletionArgs),
}

/// restic's exit codes.
pub mod exit {
    pub const OK: u8 = 0;
    pub const FAILURE: u8 = 1;
    pub const PARTIAL: u8 = 3;
    pub const NO_REPO: u8 = 10;
    pub const LOCKED: u8 = 11;
    pub const WRONG_PASSWORD: u8 = 12;
}

fn exit_code_of(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if let Some(ee) = cause.downcast_ref::<EngineError>() {
            return match ee {
                EngineError::RepoNotFound(_) => exit::NO_REPO,
                EngineError::Locked(_) => exit::LOCKED,
                EngineError::WrongPassword { .. } => exit::WRONG_PASSWORD,
                _ => exit::FAILURE,
            };
        }
    }
    exit::FAILURE
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let ui = Arc::new(Ui::new(&cli.global));
    let g = &cli.global;
    let r = match &cli.command {
        Cmd::Init(a) => commands::init::run(g, &ui, a),
        Cmd::Backup(a) => commands::backup::run(g, &ui, a),
        Cmd::Restore(a) => commands::restore::run(g, &ui, a),
        Cmd::Snapshots(a) => commands::snapshots::run(g, &ui, a),
        Cmd::Ls(a) => commands::ls::run(g, &ui, a),
        Cmd::Dump(a) => commands::dump::run(g, &ui, a),
        Cmd::Cat(a) => commands::cat::run(g, &ui, a),
        Cmd::Stats(a) => commands::stats::run(g, &ui, a),
        Cmd::Diff(a) => commands::diff::run(g, &ui, a),
        Cmd::Key(a) => commands::key::run(g, &ui, a),
        Cmd::Unlock(a) => commands::unlock::run(g, &ui, a),
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
