//! Running one backup of one source into its tenant's repository: the
//! blocking work a worker hands to a thread. The sources do the work; this
//! maps a catalog source (kind, target, options, credentials) onto them
//! and a result onto the catalog's outcome, classifying failures as
//! transient or permanent.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use holdfast_catalog::backups::{FailureKind, Outcome};
use holdfast_catalog::sources::Source;
use holdfast_engine::EngineError;
use holdfast_engine::blob_saver::SaverOptions;
use holdfast_engine::chunker::ChunkerParams;
use holdfast_engine::repository::{InitOptions, Repository};
use holdfast_engine::{snapshots, system};
use holdfast_format::Id;
use holdfast_format::snapshot::Snapshot;
use holdfast_sources::command::backup_command;
use holdfast_sources::commit::SnapshotMeta;
use holdfast_sources::confine::Confined;
use holdfast_sources::db_backup::{DumpBackupOptions, TablesOptions, Tenant};
use holdfast_sources::dir::backup::{DirBackupOptions, backup_dirs};
use holdfast_sources::dispatch::{SourceOptions, backup_address};
use holdfast_sources::egress;
use holdfast_sources::filter::PathMatcher;
use holdfast_sources::progress::Progress;
use holdfast_sources::secret::Secret;
use holdfast_sources::source_url::SourceAddress;
use holdfast_sources::stream::StreamBackupOptions;
use holdfast_storage::LocalBackend;
use serde::Deserialize;

use crate::policy::Checked;
use crate::problem::ApiError;

/// A source's `options`, by kind. Unknown keys are refused when the
/// source is created, naming the key.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SourceSettings {
    /// Databases: `dump` (default) or `tables`.
    pub mode: Option<String>,
    pub include_tables: Vec<String>,
    pub exclude_tables: Vec<String>,
    pub tenant_column: Option<String>,
    pub tenant_value: Option<String>,
    /// Tables mode: extra result sets, name → `SELECT … ORDER BY …`.
    pub queries: std::collections::BTreeMap<String, String>,
    /// Event streams: refuse events above this schemaVersion.
    pub max_schema_version: Option<u64>,
    /// Directories: exclude patterns.
    pub exclude: Vec<String>,
    pub one_file_system: bool,
    /// Commands: the file name the output is stored under.
    pub filename: Option<String>,
    /// Commands: the output is rows (a dump): small chunks cut at row ends.
    pub rows: bool,
}

impl SourceSettings {
    pub fn parse(options: &serde_json::Value) -> Result<SourceSettings, ApiError> {
        serde_json::from_value(options.clone()).map_err(|e| {
            let text = e.to_string();
            let field = text
                .split('`')
                .nth(1)
                .map(|f| format!("options.{f}"))
                .unwrap_or_else(|| "options".into());
            ApiError::invalid(&field, text)
        })
    }

    fn tables(&self) -> Option<TablesOptions> {
        (self.mode.as_deref() == Some("tables")).then(|| TablesOptions {
            include: self.include_tables.clone(),
            exclude: self.exclude_tables.clone(),
            tenant: match (&self.tenant_column, &self.tenant_value) {
                (Some(c), Some(v)) => Some(Tenant {
                    column: c.clone(),
                    value: v.clone(),
                }),
                _ => None,
            },
            queries: self.queries.clone().into_iter().collect(),
        })
    }
}

/// Check a source definition before it is stored: its kind fits its
/// target, and its options parse.
pub fn validate_source(
    kind: &str,
    target: &str,
    options: &serde_json::Value,
) -> Result<(), ApiError> {
    let s = SourceSettings::parse(options)?;
    if let Some(mode) = &s.mode
        && (!matches!(mode.as_str(), "dump" | "tables")
            || !matches!(kind, "postgres" | "mysql" | "sqlite"))
    {
        return Err(ApiError::invalid(
            "options.mode",
            "dump or tables, for postgres, mysql and sqlite sources",
        ));
    }
    if s.tenant_column.is_some() != s.tenant_value.is_some() {
        return Err(ApiError::invalid(
            "options.tenant_value",
            "tenant_column and tenant_value go together",
        ));
    }
    let expect = match kind {
        "directory" => {
            if !target.starts_with('/') {
                return Err(ApiError::invalid(
                    "target",
                    "a directory source needs an absolute path",
                ));
            }
            return Ok(());
        }
        "command" => return Ok(()),
        "postgres" => "postgres",
        "mysql" => "mysql",
        "sqlite" => "sqlite",
        "jsonl" => "jsonl",
        _ => return Err(ApiError::invalid("kind", "unknown kind")),
    };
    let addr =
        SourceAddress::parse(target).map_err(|e| ApiError::invalid("target", e.to_string()))?;
    let got = match addr {
        SourceAddress::Postgres(_) => "postgres",
        SourceAddress::Mysql(_) => "mysql",
        SourceAddress::Sqlite(_) => "sqlite",
        SourceAddress::Jsonl(_) => "jsonl",
        SourceAddress::Path(_) => "path",
    };
    if got != expect {
        return Err(ApiError::invalid(
            "target",
            format!("a {kind} source needs a {expect} address, not {target:?}"),
        ));
    }
    if matches!(kind, "postgres" | "mysql") && addr_has_password(target) {
        return Err(ApiError::invalid(
            "target",
            "keep the password out of the address: send it as \"credentials\" (stored encrypted)",
        ));
    }
    Ok(())
}

fn addr_has_password(target: &str) -> bool {
    matches!(SourceAddress::parse(target), Ok(a) if a.has_password())
}

/// A failed run: its message (safe to show: addresses are redacted by the
/// sources) and whether another attempt could help.
#[derive(Debug)]
pub struct RunFailure {
    pub message: String,
    pub kind: FailureKind,
}

/// Classify an engine error: a repository lock held by someone else,
/// storage I/O and network trouble are transient; everything else
/// (authentication, a missing source, bad options) is permanent.
pub fn classify(e: &EngineError) -> FailureKind {
    match e {
        EngineError::Locked(_) | EngineError::Storage(_) | EngineError::Interrupted => {
            FailureKind::Transient
        }
        EngineError::Source(m) => classify_message(m),
        EngineError::Io { source, .. } => match source.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => {
                FailureKind::Permanent
            }
            _ => FailureKind::Transient,
        },
        _ => FailureKind::Permanent,
    }
}

fn classify_message(m: &str) -> FailureKind {
    let m = m.to_ascii_lowercase();
    let permanent = [
        "password authentication failed",
        "access denied",
        "authentication",
        "does not exist",
        "unknown database",
        "no such file",
        "not found",
        "permission denied",
        "http 401",
        "http 403",
        "http 404",
        "schemaversion",
    ];
    let transient = [
        "connection refused",
        "could not connect",
        "can't connect",
        "timed out",
        "timeout",
        "connection reset",
        "broken pipe",
        "server closed the connection",
        "too many connections",
        "http 5",
        "temporarily",
        "killed by signal",
        "lost connection",
    ];
    if permanent.iter().any(|p| m.contains(p)) {
        FailureKind::Permanent
    } else if transient.iter().any(|p| m.contains(p)) {
        FailureKind::Transient
    } else {
        FailureKind::Permanent
    }
}

fn failure(e: EngineError) -> RunFailure {
    RunFailure {
        kind: classify(&e),
        message: e.to_string(),
    }
}

fn refused(target: &str) -> RunFailure {
    RunFailure {
        message: format!("refused by policy: {target}"),
        kind: FailureKind::Permanent,
    }
}

/// Make a checked address safe to connect to, before any I/O on it: a
/// SQLite file must be reachable beneath its root without a symlink; a
/// tenant's database or event-stream host is resolved, every address
/// checked against the policy's rules, and the connection pinned to the
/// checked one (no DNS rebinding between the check and the connect).
pub fn enforce(addr: &mut SourceAddress, checked: &Checked) -> Result<(), RunFailure> {
    let refuse = |message: String| RunFailure {
        message: format!("refused by policy: {message}"),
        kind: FailureKind::Permanent,
    };
    if let (SourceAddress::Sqlite(path), Some(root)) = (&*addr, &checked.confine) {
        // the file may not exist yet (a restore): its directory must
        let dir = path.parent().unwrap_or(path);
        let c = Confined::new(root, dir).ok_or_else(|| refuse(path.display().to_string()))?;
        c.check_exists().map_err(|e| RunFailure {
            message: e.to_string(),
            kind: FailureKind::Permanent,
        })?;
        if let Ok(m) = std::fs::symlink_metadata(path)
            && m.file_type().is_symlink()
        {
            return Err(refuse(format!(
                "{}: the path is a symbolic link",
                path.display()
            )));
        }
    }
    let Some(rules) = &checked.hosts else {
        return Ok(());
    };
    match addr {
        SourceAddress::Postgres(db) => {
            let host = db.host.clone().unwrap_or_default();
            let p = egress::resolve_checked(rules, &host, db.port.unwrap_or(5432))
                .map_err(|e| refuse(e.0))?;
            // libpq connects to hostaddr and keeps host for TLS
            db.params.insert("hostaddr".into(), p.addr.ip().to_string());
        }
        SourceAddress::Mysql(db) => {
            let host = db.host.clone().unwrap_or_default();
            let p = egress::resolve_checked(rules, &host, db.port.unwrap_or(3306))
                .map_err(|e| refuse(e.0))?;
            db.host = Some(p.addr.ip().to_string());
        }
        SourceAddress::Jsonl(h) => {
            let (host, port) = h
                .host_port()
                .ok_or_else(|| refuse("not an HTTP URL".into()))?;
            let p = egress::resolve_checked(rules, &host, port).map_err(|e| refuse(e.0))?;
            h.pinned = Some(p.addr);
        }
        SourceAddress::Sqlite(_) | SourceAddress::Path(_) => {}
    }
    Ok(())
}

/// The bytes a local repository holds (every file under it; blocking).
pub fn repository_bytes(path: &std::path::Path) -> u64 {
    let mut total = 0;
    let mut dirs = vec![path.to_path_buf()];
    while let Some(d) = dirs.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => dirs.push(e.path()),
                Ok(t) if t.is_file() => total += e.metadata().map_or(0, |m| m.len()),
                _ => {}
            }
        }
    }
    total
}

/// Create a tenant's repository (scrypt: a blocking call).
pub fn init_repository(path: &std::path::Path, password: &str) -> Result<(), EngineError> {
    let backend = Arc::new(LocalBackend::new(path));
    Repository::init(backend, password.as_bytes(), &InitOptions::default()).map(|_| ())
}

/// Remove snapshots from a repository and prune what no snapshot needs any
/// more (an exclusive lock, waiting up to a minute for running backups).
pub fn delete_snapshots(
    repository: &std::path::Path,
    password: &str,
    snapshot_ids: &[String],
) -> Result<(), RunFailure> {
    use holdfast_engine::prune::{PruneOptions, execute, plan};
    use holdfast_storage::FileType;
    let backend = Arc::new(LocalBackend::new(repository));
    let repo = Arc::new(Repository::open(backend, password.as_bytes()).map_err(failure)?);
    let _lock = holdfast_engine::lock::lock(&repo, true, Duration::from_secs(60), &mut |_| {})
        .map_err(failure)?;
    for id in snapshot_ids {
        let id: Id = id.parse().map_err(|_| RunFailure {
            message: format!("{id:?} is not a snapshot id"),
            kind: FailureKind::Permanent,
        })?;
        match repo
            .backend()
            .delete(&holdfast_engine::repository::name(FileType::Snapshot, &id))
        {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(failure(e.into())),
        }
    }
    let opts = PruneOptions {
        max_unused: holdfast_engine::prune::MaxUnused::Percent(5.0),
        max_repack_bytes: None,
        dry_run: false,
        saver: SaverOptions::default(),
        threads: 2,
    };
    let p = plan(&repo, &opts).map_err(failure)?;
    execute(&repo, &p, &opts, &mut |_| {}).map_err(failure)?;
    Ok(())
}

/// What a restore needs.
pub struct RestoreInput {
    pub repository: PathBuf,
    pub password: String,
    pub snapshot_id: String,
    pub kind: String,
    pub target: String,
    /// The source's own target (an in-place restore writes only there).
    pub source_target: PathBuf,
    pub credentials: Option<String>,
    /// Where event replays keep their progress.
    pub replay_state: PathBuf,
    /// What the policy check decided for the target.
    pub checked: Checked,
}

/// Restore a backup into `target` and say what was verified: row counts
/// against the manifest for databases and event streams, every blob
/// re-hashed as it was written for directories.
pub fn run_restore(input: &RestoreInput, progress: &Progress) -> Result<serde_json::Value, String> {
    let backend = Arc::new(LocalBackend::new(&input.repository));
    let repo = Repository::open(backend, input.password.as_bytes()).map_err(|e| e.to_string())?;
    let (id, snap) = snapshots::find(
        &repo,
        &input.snapshot_id,
        &snapshots::SnapshotFilter::default(),
    )
    .map_err(|e| e.to_string())?;
    match input.kind.as_str() {
        "directory" | "command" => {
            let none = PathMatcher::new(&[]).map_err(|e| e.to_string())?;
            // the target exists before the thread restricts itself to it
            let target = PathBuf::from(&input.target);
            match &input.checked.confine {
                Some(root) => Confined::new(root, &target)
                    .ok_or_else(|| format!("refused by policy: {}", input.target))?
                    .create_dirs()
                    .map(drop),
                None => std::fs::create_dir_all(&target),
            }
            .map_err(|e| format!("create target {}: {e}", input.target))?;
            // in place ("/"): only beneath the source's own path
            let writes = if input.target == "/" && input.kind == "directory" {
                input.source_target.clone()
            } else {
                target
            };
            crate::sandbox::restrict_thread(&crate::sandbox::Allowed {
                read: None,
                write: vec![writes],
            })
            .map_err(|e| format!("cannot restrict the job (Landlock): {e}"))?;
            let opts = holdfast_sources::dir::restore::RestoreOptions {
                target: PathBuf::from(&input.target),
                includes: none.clone(),
                excludes: none,
                delete: false,
                dry_run: false,
                workers: 2,
                sparse: true,
                confine: input.checked.confine.clone(),
            };
            let s = holdfast_sources::dir::restore::restore(
                &repo,
                &snap.tree,
                &opts,
                progress,
                &|_| {},
            )
            .map_err(|e| e.to_string())?;
            if s.errors > 0 {
                return Err(format!("{} entries could not be restored", s.errors));
            }
            Ok(serde_json::json!({
                "files": s.files_restored + s.files_unchanged, "dirs": s.dirs, "bytes": s.bytes_written,
                "blobs_verified": true,
            }))
        }
        _ => {
            let mut addr = SourceAddress::parse(&input.target).map_err(|e| e.to_string())?;
            enforce(&mut addr, &input.checked).map_err(|f| f.message)?;
            let r = holdfast_sources::dispatch::restore_address(
                &repo,
                &id,
                &snap,
                addr,
                input.credentials.clone().map(Secret::new),
                false,
                &input.replay_state,
                progress,
            )
            .map_err(|e| e.to_string())?;
            Ok(serde_json::json!({
                "target": r.target, "database": r.database, "created": r.created, "bytes": r.bytes,
                "tables": r.tables.iter().map(|(t, n)| serde_json::json!({"table": t, "rows": n})).collect::<Vec<_>>(),
                "rows": r.tables.iter().map(|(_, n)| n).sum::<u64>(),
                "row_counts_match_manifest": true,
            }))
        }
    }
}

/// What one run needs.
pub struct RunInput {
    pub repository: PathBuf,
    pub password: String,
    pub source: Source,
    pub credentials: Option<String>,
    pub backup_id: String,
    /// What the policy check decided for the source's target.
    pub checked: Checked,
    /// The audit chain's head when the run started, recorded in the
    /// snapshot: an anchor outside the catalog.
    pub audit_head: Option<holdfast_catalog::chain::AuditHead>,
}

/// Back up `input.source` into its repository.
pub fn run_backup(input: &RunInput, progress: &Progress) -> Result<Outcome, RunFailure> {
    let settings = SourceSettings::parse(&input.source.options).map_err(|e| RunFailure {
        message: e.to_string(),
        kind: FailureKind::Permanent,
    })?;
    let backend = Arc::new(LocalBackend::new(&input.repository));
    let repo = Arc::new(Repository::open(backend, input.password.as_bytes()).map_err(failure)?);
    let _lock = holdfast_engine::lock::lock(&repo, false, Duration::from_secs(60), &mut |_| {})
        .map_err(failure)?;
    let host = system::hostname();
    let meta = SnapshotMeta {
        hostname: host.clone(),
        username: system::username(),
        uid: system::uid(),
        gid: system::gid(),
        tags: vec![
            "holdfast-serve".to_string(),
            format!("source:{}", input.source.id),
            format!("backup:{}", input.backup_id),
        ],
        ..Default::default()
    };
    let mut meta = meta;
    if let Some(h) = &input.audit_head {
        meta.add_extra(serde_json::json!({"audit_head": h}));
    }
    let saver = SaverOptions::default();
    let credential = input.credentials.clone().map(Secret::new);
    let (snapshot_id, snapshot, warnings): (Option<Id>, Snapshot, Vec<String>) =
        match input.source.kind.as_str() {
            "directory" => {
                let paths = vec![PathBuf::from(&input.source.target)];
                let abs = vec![input.source.target.clone()];
                let parent = snapshots::find_parent(&repo, &host, &abs).map_err(failure)?;
                let excludes = PathMatcher::new(&settings.exclude).map_err(|m| RunFailure {
                    message: m,
                    kind: FailureKind::Permanent,
                })?;
                match &input.checked.confine {
                    Some(root) => {
                        let c = Confined::new(root, std::path::Path::new(&input.source.target))
                            .ok_or_else(|| refused(&input.source.target))?;
                        c.check_exists().map_err(|e| RunFailure {
                            message: e.to_string(),
                            kind: FailureKind::Permanent,
                        })?;
                    }
                    None if !std::path::Path::new(&input.source.target).exists() => {
                        return Err(RunFailure {
                            message: format!("{}: no such file or directory", input.source.target),
                            kind: FailureKind::Permanent,
                        });
                    }
                    None => {}
                }
                // from here this thread reads only the source and writes only
                // the repository
                crate::sandbox::restrict_thread(&crate::sandbox::Allowed {
                    read: Some(vec![
                        input
                            .checked
                            .confine
                            .clone()
                            .unwrap_or_else(|| PathBuf::from(&input.source.target)),
                        input.repository.clone(),
                    ]),
                    write: vec![input.repository.clone()],
                })
                .map_err(|e| RunFailure {
                    message: format!("cannot restrict the job (Landlock): {e}"),
                    kind: FailureKind::Transient,
                })?;
                let r = backup_dirs(
                    &repo,
                    DirBackupOptions {
                        paths,
                        excludes,
                        one_file_system: settings.one_file_system,
                        chunker: ChunkerParams::FILES,
                        saver,
                        readers: 2,
                        parent,
                        meta,
                        dry_run: false,
                        scan: false,
                        confine: input.checked.confine.clone(),
                    },
                    progress,
                )
                .map_err(failure)?;
                let warnings = r.errors.iter().map(|e| e.to_string()).collect();
                (r.snapshot_id, r.snapshot, warnings)
            }
            "command" => {
                // the configured text of the named command, never the target
                let text = input
                    .checked
                    .command
                    .as_deref()
                    .ok_or_else(|| refused(&input.source.target))?;
                let r = backup_command(
                    &repo,
                    text,
                    StreamBackupOptions {
                        filename: settings.filename.clone().unwrap_or_else(|| "stdout".into()),
                        chunker: if settings.rows {
                            ChunkerParams::ROWS
                        } else {
                            ChunkerParams::FILES
                        },
                        saver,
                        meta,
                        dry_run: false,
                    },
                    progress,
                )
                .map_err(failure)?;
                (r.snapshot_id, r.snapshot, Vec::new())
            }
            _ => {
                let mut addr = SourceAddress::parse(&input.source.target).map_err(failure)?;
                enforce(&mut addr, &input.checked)?;
                let r = backup_address(
                    &repo,
                    addr,
                    credential,
                    &SourceOptions {
                        max_schema_version: settings.max_schema_version,
                        tables: settings.tables(),
                    },
                    DumpBackupOptions {
                        chunker: ChunkerParams::ROWS,
                        saver,
                        meta,
                        dry_run: false,
                    },
                    progress,
                )
                .map_err(failure)?;
                (r.snapshot_id, r.snapshot, r.warnings)
            }
        };
    let snapshot_id = snapshot_id.map(|id| id.to_string()).unwrap_or_default();
    let summary = snapshot.summary.clone().unwrap_or_default();
    let source = snapshot
        .extra
        .get("holdfast")
        .and_then(|h| h.get("source"))
        .cloned()
        .unwrap_or(serde_json::Value::Null);
    let mut counts = serde_json::json!({"files": summary.total_files_processed});
    for key in ["tables", "rows", "events"] {
        if let Some(v) = source.get(key) {
            counts[key] = v.clone();
        }
    }
    Ok(Outcome {
        snapshot_id,
        size: summary.total_bytes_processed,
        bytes_added: summary.data_added_packed,
        counts,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_sorted_into_transient_and_permanent() {
        let t = |m: &str| classify(&EngineError::Source(m.to_string()));
        assert_eq!(
            t(
                "pg_dump: error: connection to server at \"127.0.0.1\", port 1 failed: Connection refused"
            ),
            FailureKind::Transient
        );
        assert_eq!(
            t("FATAL: password authentication failed for user \"app\""),
            FailureKind::Permanent
        );
        assert_eq!(t("HTTP 503 from https://x/events"), FailureKind::Transient);
        assert_eq!(
            classify(&EngineError::Locked("by pid 1".into())),
            FailureKind::Transient
        );
        assert_eq!(
            classify(&EngineError::Invalid("bad".into())),
            FailureKind::Permanent
        );
    }

    #[test]
    fn source_definitions_are_checked_before_they_are_stored() {
        let none = serde_json::json!({});
        assert!(validate_source("directory", "/srv/app", &none).is_ok());
        assert!(validate_source("directory", "srv/app", &none).is_err());
        assert!(validate_source("postgres", "postgres://app@db:5432/app", &none).is_ok());
        let e = validate_source("postgres", "mysql://app@db/app", &none).unwrap_err();
        assert!(
            matches!(e, ApiError::Invalid { ref field, .. } if field == "target"),
            "{e:?}"
        );
        let e = validate_source("postgres", "postgres://app:pw@db/app", &none).unwrap_err();
        assert!(!e.to_string().contains("pw@"), "{e}");
        let e = validate_source(
            "postgres",
            "postgres://app@db/app",
            &serde_json::json!({"mdoe": "tables"}),
        )
        .unwrap_err();
        assert!(
            matches!(e, ApiError::Invalid { ref field, .. } if field == "options.mdoe"),
            "{e:?}"
        );
        assert!(
            validate_source(
                "postgres",
                "postgres://app@db/app",
                &serde_json::json!({"mode": "tables"})
            )
            .is_ok()
        );
    }
}
