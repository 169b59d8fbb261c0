//! The one entry point of the sources: a [`SourceSpec`] (what to back up)
//! or a [`RestoreSpec`] (where to restore to) and the [`Confinement`] it
//! must keep to, in; a report or a [`SourceError`] whose [`ErrorKind`] says
//! what the failure means, out. The CLI's `backup` and `restore` and the
//! service's workers all build a spec and call [`backup`] or [`restore`];
//! none decides on its own how a kind of source is run.
//!
//! Invariant: [`backup`] enforces the confinement before any I/O on the
//! source — a path is opened beneath its root by the kernel
//! ([`holdfast_confine::confine`]), a database or event-stream host is resolved,
//! checked and pinned ([`holdfast_confine::egress`]) — and a refusal is
//! [`ErrorKind::Refused`], never an attempt.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use holdfast_engine::blob_saver::SaverOptions;
use holdfast_engine::chunker::ChunkerParams;
use holdfast_engine::repository::Repository;
use holdfast_engine::{EngineError, Fault};
use holdfast_format::Id;
use holdfast_format::snapshot::Snapshot;

use crate::dir::backup::{DirBackupOptions, backup_dirs};
use crate::dispatch::{SourceOptions, backup_address};
use crate::progress::{ItemError, Progress};
use crate::secret::Secret;
use crate::source_url::SourceAddress;
use crate::writer::SnapshotWriter;
use holdfast_confine::confine::Confined;
use holdfast_confine::egress::{self, HostRule};
use holdfast_engine::snapshot_builder::SnapshotMeta;

/// What to back up. Built once per run: the size of its variants does not
/// matter.
#[allow(clippy::large_enum_variant)]
pub enum SourceSpec<'r> {
    /// Directory trees and files, with full metadata (`confine` is set
    /// from the run's [`Confinement`]).
    Paths(DirBackupOptions),
    /// One stream stored as one file.
    Stream {
        reader: Box<dyn Read + 'r>,
        filename: String,
    },
    /// A command's standard output (run by `/bin/sh -c`), as one file.
    Command { shell: String, filename: String },
    /// A database or an event stream.
    Address {
        addr: SourceAddress,
        /// Its password or bearer token.
        credential: Option<Secret>,
        options: SourceOptions,
    },
}

/// What every backup shares.
pub struct BackupSettings {
    pub chunker: ChunkerParams,
    pub saver: SaverOptions,
    pub meta: SnapshotMeta,
    pub dry_run: bool,
}

impl BackupSettings {
    /// A snapshot built file by file with these settings.
    pub(crate) fn writer<'p>(
        &self,
        repo: &Arc<Repository>,
        progress: &'p Progress,
    ) -> holdfast_engine::Result<SnapshotWriter<'p>> {
        SnapshotWriter::new(repo, self.chunker, &self.saver, self.dry_run, progress)
    }
}

/// What a run must keep to (a tenant's, decided by the service's policy;
/// the CLI's runs are not confined).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Confinement {
    /// Paths (directories, SQLite files) lie beneath this root and are
    /// opened through [`holdfast_confine::confine`].
    pub root: Option<PathBuf>,
    /// Connections go only to hosts these rules allow, checked after DNS
    /// and pinned to the checked address.
    pub hosts: Option<Vec<HostRule>>,
}

/// What a backup produced.
pub struct BackupReport {
    /// None for a dry run.
    pub snapshot_id: Option<Id>,
    pub snapshot: Snapshot,
    /// What the operator should know (tables left out, …).
    pub warnings: Vec<String>,
    /// Files that could not be read and were left out (directory backups).
    pub unreadable: Vec<ItemError>,
    /// Each table's rows, from the manifest (database backups).
    pub table_rows: Vec<(String, u64)>,
}

impl BackupReport {
    /// A report with nothing to warn about, nothing left out and no tables.
    pub(crate) fn new(snapshot_id: Option<Id>, snapshot: Snapshot) -> BackupReport {
        BackupReport {
            snapshot_id,
            snapshot,
            warnings: Vec::new(),
            unreadable: Vec::new(),
            table_rows: Vec::new(),
        }
    }
}

/// What a failure means for whoever runs the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Trying again later may succeed (a lock, the network, a server down).
    Transient,
    /// It will fail the same way until something is changed.
    Permanent,
    /// The spec itself is wrong (bad options, a bad address).
    InvalidInput,
    /// Cancelled (Ctrl-C, a job's timeout, shutdown).
    Interrupted,
    /// Outside the confinement: nothing was attempted.
    Refused,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Transient => "transient",
            ErrorKind::Permanent => "permanent",
            ErrorKind::InvalidInput => "invalid input",
            ErrorKind::Interrupted => "interrupted",
            ErrorKind::Refused => "refused by policy",
        }
    }

    /// The kind of an engine error: set where the failure was understood
    /// (a source's [`Fault`], a lock, storage, a cancellation), never read
    /// from its words.
    pub fn of(e: &EngineError) -> ErrorKind {
        match e {
            EngineError::Interrupted => ErrorKind::Interrupted,
            EngineError::Locked(_) | EngineError::Storage(_) => ErrorKind::Transient,
            EngineError::Source { fault, .. } => match fault {
                Fault::Transient => ErrorKind::Transient,
                Fault::Permanent => ErrorKind::Permanent,
            },
            EngineError::Invalid(_) => ErrorKind::InvalidInput,
            EngineError::Io { source, .. } => match source.kind() {
                std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => {
                    ErrorKind::Permanent
                }
                _ => ErrorKind::Transient,
            },
            _ => ErrorKind::Permanent,
        }
    }
}

/// A failed source run: its kind, and the engine's error (which the CLI
/// maps to its exit codes).
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct SourceError {
    pub kind: ErrorKind,
    pub error: EngineError,
}

impl From<EngineError> for SourceError {
    fn from(error: EngineError) -> SourceError {
        SourceError {
            kind: ErrorKind::of(&error),
            error,
        }
    }
}

impl SourceError {
    /// Refused by the confinement (the message says what and why).
    pub fn refused(message: impl Into<String>) -> SourceError {
        SourceError {
            kind: ErrorKind::Refused,
            error: EngineError::source(format!("refused by policy: {}", message.into())),
        }
    }
}

/// Back up what `spec` names into `repo`, within `confinement`.
pub fn backup(
    repo: &Arc<Repository>,
    spec: SourceSpec<'_>,
    settings: BackupSettings,
    confinement: &Confinement,
    progress: &Progress,
) -> Result<BackupReport, SourceError> {
    match spec {
        SourceSpec::Paths(mut opts) => {
            if let Some(root) = &confinement.root {
                for p in &opts.paths {
                    reachable_beneath(root, p)?;
                }
            }
            opts.confine = confinement.root.clone();
            Ok(backup_dirs(repo, opts, settings, progress)?)
        }
        SourceSpec::Stream { reader, filename } => {
            let (id, snapshot) =
                crate::stream::backup_stream(repo, reader, &filename, settings, progress)?;
            Ok(BackupReport::new(id, snapshot))
        }
        SourceSpec::Command { shell, filename } => {
            let (id, snapshot) =
                crate::command::backup_command(repo, &shell, &filename, settings, progress)?;
            Ok(BackupReport::new(id, snapshot))
        }
        SourceSpec::Address {
            mut addr,
            credential,
            options,
        } => {
            enforce(&mut addr, confinement)?;
            Ok(backup_address(
                repo, addr, credential, &options, settings, progress,
            )?)
        }
    }
}

/// Where to restore a snapshot.
pub enum RestoreSpec {
    /// Files and directories, with their metadata, into a directory (its
    /// `confine` is set from the restore's [`Confinement`]).
    Tree(crate::dir::restore::RestoreOptions),
    /// A database or event-stream snapshot into a database or an ingest
    /// endpoint.
    Address {
        addr: SourceAddress,
        credential: Option<Secret>,
        /// Replace a non-empty target.
        clean: bool,
        /// Where replays keep their progress (resumable).
        replay_state: PathBuf,
    },
}

/// What a restore did and proved.
pub enum RestoreReport {
    Tree(crate::dir::restore::RestoreSummary),
    Address(crate::database::restore::RestoreReport),
}

/// Restore `snapshot` as `spec` says, within `confinement`: a tree's target
/// is created and opened beneath the root by the kernel, an address is
/// checked and pinned ([`enforce`]) before anything is written.
pub fn restore(
    repo: &Repository,
    snapshot_id: &Id,
    snapshot: &Snapshot,
    spec: RestoreSpec,
    confinement: &Confinement,
    progress: &Progress,
    on_action: crate::dir::restore::ActionSink,
) -> Result<RestoreReport, SourceError> {
    match spec {
        RestoreSpec::Tree(mut opts) => {
            if let Some(root) = &confinement.root
                && Confined::new(root, &opts.target).is_none()
            {
                return Err(SourceError::refused(format!(
                    "{} is not beneath {}",
                    opts.target.display(),
                    root.display()
                )));
            }
            opts.confine = confinement.root.clone();
            let s = crate::dir::restore::restore(repo, &snapshot.tree, &opts, progress, on_action)
                .map_err(|e| {
                    // the kernel refused a symlink or an escape on the way
                    let refused = matches!(&e, EngineError::Io { source, .. }
                        if source.kind() == std::io::ErrorKind::PermissionDenied
                            && confinement.root.is_some());
                    let mut err = SourceError::from(e);
                    if refused {
                        err.kind = ErrorKind::Refused;
                    }
                    err
                })?;
            Ok(RestoreReport::Tree(s))
        }
        RestoreSpec::Address {
            mut addr,
            credential,
            clean,
            replay_state,
        } => {
            enforce(&mut addr, confinement)?;
            let r = crate::dispatch::restore_address(
                repo,
                snapshot_id,
                snapshot,
                addr,
                credential,
                clean,
                &replay_state,
                progress,
            )?;
            Ok(RestoreReport::Address(r))
        }
    }
}

/// `path` exists beneath `root`, reached without a symlink or an escape
/// (the kernel's word, see [`holdfast_confine::confine`]): refused when it is not,
/// a permanent failure when it is missing.
fn reachable_beneath(root: &std::path::Path, path: &std::path::Path) -> Result<(), SourceError> {
    let c = Confined::new(root, path).ok_or_else(|| {
        SourceError::refused(format!(
            "{} is not beneath {}",
            path.display(),
            root.display()
        ))
    })?;
    c.check_exists().map_err(|e| SourceError {
        kind: if e.kind() == std::io::ErrorKind::PermissionDenied {
            ErrorKind::Refused
        } else {
            ErrorKind::Permanent
        },
        error: EngineError::source(e.to_string()),
    })
}

/// Make an address safe to use within `confinement`, before any I/O on
/// it: a SQLite file's directory must be reachable beneath the root
/// without a symlink (and the file not be one); a database or event-stream
/// host is resolved, every address checked against the rules, and the
/// connection pinned to the checked one (no DNS rebinding between the
/// check and the connection). Restores into an address use it too.
pub fn enforce(addr: &mut SourceAddress, confinement: &Confinement) -> Result<(), SourceError> {
    if let (SourceAddress::Sqlite(path), Some(root)) = (&*addr, &confinement.root) {
        // the file may not exist yet (a restore): its directory must
        reachable_beneath(root, path.parent().unwrap_or(path))?;
        if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(SourceError::refused(format!(
                "{}: the path is a symbolic link",
                path.display()
            )));
        }
    }
    let Some(rules) = &confinement.hosts else {
        return Ok(());
    };
    let pin = |host: &str, port: u16| {
        egress::resolve_checked(rules, host, port).map_err(|e| SourceError::refused(e.0))
    };
    match addr {
        SourceAddress::Postgres(db) => {
            let p = pin(db.host.as_deref().unwrap_or(""), db.port.unwrap_or(5432))?;
            // libpq connects to hostaddr and keeps host for TLS
            db.params.insert("hostaddr".into(), p.addr.ip().to_string());
        }
        SourceAddress::Mysql(db) => {
            let p = pin(db.host.as_deref().unwrap_or(""), db.port.unwrap_or(3306))?;
            db.host = Some(p.addr.ip().to_string());
        }
        SourceAddress::Jsonl(h) => {
            let (host, port) = h
                .host_port()
                .ok_or_else(|| SourceError::refused("not an HTTP URL"))?;
            h.pinned = Some(pin(&host, port)?.addr);
        }
        SourceAddress::Sqlite(_) | SourceAddress::Path(_) => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_come_from_where_the_failure_was_understood() {
        let k = |e: EngineError| SourceError::from(e).kind;
        assert_eq!(k(EngineError::source_transient("x")), ErrorKind::Transient);
        assert_eq!(
            k(EngineError::source("connection refused")),
            ErrorKind::Permanent
        );
        assert_eq!(k(EngineError::Interrupted), ErrorKind::Interrupted);
        assert_eq!(
            k(EngineError::Invalid("bad".into())),
            ErrorKind::InvalidInput
        );
        assert_eq!(
            k(EngineError::Locked("by pid 1".into())),
            ErrorKind::Transient
        );
    }

    #[test]
    fn confined_addresses_are_checked_before_any_connection() {
        let rules = vec![HostRule::parse("*").unwrap()];
        let c = Confinement {
            root: None,
            hosts: Some(rules),
        };
        let mut a = SourceAddress::parse("postgres://app@127.0.0.1:5432/shop").unwrap();
        let e = enforce(&mut a, &c).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Refused);
        assert!(e.to_string().contains("refused by policy"), "{e}");
        // a named host is pinned to its checked address
        let c = Confinement {
            root: None,
            hosts: Some(vec![HostRule::parse("localhost:5432").unwrap()]),
        };
        let mut a = SourceAddress::parse("postgres://app@localhost:5432/shop").unwrap();
        enforce(&mut a, &c).unwrap();
        let SourceAddress::Postgres(db) = a else {
            panic!()
        };
        let ip: std::net::IpAddr = db.params["hostaddr"].parse().unwrap();
        assert!(ip.is_loopback());
        // unconfined: untouched
        let mut a = SourceAddress::parse("postgres://app@localhost:5432/shop").unwrap();
        enforce(&mut a, &Confinement::default()).unwrap();
        let SourceAddress::Postgres(db) = a else {
            panic!()
        };
        assert!(!db.params.contains_key("hostaddr"));
    }
}
