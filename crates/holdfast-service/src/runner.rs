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
use holdfast_confine::confine::Confined;
use holdfast_engine::EngineError;
use holdfast_engine::blob_saver::SaverOptions;
use holdfast_engine::chunker::ChunkerParams;
use holdfast_engine::repository::{InitOptions, Repository};
use holdfast_engine::snapshot_builder::SnapshotMeta;
use holdfast_engine::{snapshots, system};
use holdfast_format::Id;
use holdfast_sources::database::select::{TablesOptions, Tenant};
use holdfast_sources::dir::backup::DirBackupOptions;
use holdfast_sources::dispatch::SourceOptions;
use holdfast_sources::filter::PathMatcher;
use holdfast_sources::progress::Progress;
use holdfast_sources::secret::Secret;
use holdfast_sources::source_url::SourceAddress;
use holdfast_sources::spec::{BackupSettings, ErrorKind, RestoreReport, RestoreSpec, SourceSpec};
use serde::Deserialize;

use crate::i18n::Msg;
use crate::policy::Checked;
use crate::problem::ApiError;
use crate::repos::RepoAt;
use crate::schedule::Schedule;

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
    /// When restore drills run: a cron expression, or `off`; default weekly
    /// at a quiet hour of the source's own ([`default_drill_schedule`]).
    pub drill: Option<String>,
}

/// Sunday between 02:00 and 05:59 in the server's time zone, at an hour
/// and minute taken from the source's id, so that drills do not all start
/// at once.
pub fn default_drill_schedule(source_id: &str) -> String {
    let h = source_id
        .bytes()
        .fold(0u32, |a, b| a.wrapping_mul(31).wrapping_add(u32::from(b)));
    format!("{} {} * * 0", h % 60, 2 + (h / 60) % 4)
}

impl SourceSettings {
    /// Tables mode: some tables, perhaps one tenant's rows, none of the
    /// routines — a slice of its database, never a whole copy.
    pub fn is_slice(&self) -> bool {
        self.mode.as_deref() == Some("tables")
    }

    /// When the source's drills run; `None` when they are off.
    pub fn drill_schedule(&self, source_id: &str) -> Result<Option<Schedule>, Msg> {
        match self.drill.as_deref().map(str::trim) {
            Some("off") => Ok(None),
            Some(text) => Schedule::parse(text).map(Some),
            None => Schedule::parse(&default_drill_schedule(source_id)).map(Some),
        }
    }

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
    s.drill_schedule("")
        .map_err(|m| ApiError::invalid("options.drill", m))?;
    for (name, sql) in &s.queries {
        holdfast_sources::database::select::check_query(sql)
            .map_err(|why| ApiError::invalid(&format!("options.queries.{name}"), why))?;
    }
    if let Some(mode) = &s.mode
        && (!matches!(mode.as_str(), "dump" | "tables")
            || !matches!(kind, "postgres" | "mysql" | "sqlite"))
    {
        return Err(ApiError::invalid(
            "options.mode",
            Msg::new("msg.invalid.mode"),
        ));
    }
    if s.tenant_column.is_some() != s.tenant_value.is_some() {
        return Err(ApiError::invalid(
            "options.tenant_value",
            Msg::new("msg.invalid.tenant_pair"),
        ));
    }
    let expect = match kind {
        "directory" => {
            if !target.starts_with('/') {
                return Err(ApiError::invalid(
                    "target",
                    Msg::new("msg.invalid.directory_absolute"),
                ));
            }
            return Ok(());
        }
        "command" => return Ok(()),
        "postgres" => "postgres",
        "mysql" => "mysql",
        "sqlite" => "sqlite",
        "jsonl" => "jsonl",
        _ => {
            return Err(ApiError::invalid(
                "kind",
                Msg::new("msg.invalid.one_of").with(
                    "values",
                    "directory, command, postgres, mysql, sqlite, jsonl",
                ),
            ));
        }
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
            Msg::new("msg.invalid.source_kind")
                .with("kind", kind)
                .with("expect", expect)
                .with("target", format!("{target:?}")),
        ));
    }
    if matches!(kind, "postgres" | "mysql") && addr_has_password(target) {
        return Err(ApiError::invalid(
            "target",
            Msg::new("msg.invalid.source_password"),
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

/// Whether another attempt could help, from what the failure is (see
/// `holdfast_sources::spec::ErrorKind`: decided where it was understood,
/// never read from its words).
pub fn classify(e: &EngineError) -> FailureKind {
    failure_kind(ErrorKind::of(e))
}

/// The queue's view of a source error's kind: transient ones (and
/// interruptions) are tried again.
pub fn failure_kind(k: ErrorKind) -> FailureKind {
    match k {
        ErrorKind::Transient | ErrorKind::Interrupted => FailureKind::Transient,
        ErrorKind::Permanent | ErrorKind::InvalidInput | ErrorKind::Refused => {
            FailureKind::Permanent
        }
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

/// Landlock for a SQLite job: read beneath the file's root (or, for an
/// admin's source, its directory), write there too when restoring, or the
/// repository when backing up; the temp directory for SQLite's and the
/// copy's temp files.
fn sandbox_sqlite(
    checked: &Checked,
    path: &std::path::Path,
    repository: Option<&RepoAt>,
) -> Result<(), String> {
    let area = checked
        .confine
        .clone()
        .unwrap_or_else(|| path.parent().unwrap_or(path).to_path_buf());
    let temp = std::env::temp_dir();
    let allowed = match repository {
        Some(repo) => {
            let mut a = crate::sandbox::Allowed::backup(area, repo);
            a.read.get_or_insert_with(Vec::new).push(temp.clone());
            a.write.push(temp);
            a
        }
        None => crate::sandbox::Allowed {
            read: None,
            write: vec![area, temp],
        },
    };
    crate::sandbox::restrict_thread(&allowed)
        .map(drop)
        .map_err(|e| format!("cannot restrict the job (Landlock): {e}"))
}

/// Create a tenant's repository (scrypt: a blocking call).
pub fn init_repository(repo: &RepoAt, password: &str) -> Result<(), EngineError> {
    Repository::init(
        repo.backend()?,
        password.as_bytes(),
        &InitOptions::default(),
    )
    .map(|_| ())
}

/// Make `repo` the tenant's repository: create it with `password`, or, if
/// one is there, check that it opens with it.
pub fn adopt_repository(repo: &RepoAt, password: &str) -> Result<(), ApiError> {
    let unavailable = |e: EngineError| {
        ApiError::Unavailable(
            Msg::new("msg.unavailable.storage")
                .with("repo", repo)
                .with("error", e),
        )
    };
    let backend = repo.backend().map_err(unavailable)?;
    let exists = match backend.stat(&holdfast_storage::ObjectName::config()) {
        Ok(_) => true,
        Err(e) if e.is_not_found() => false,
        Err(e) => return Err(unavailable(e.into())),
    };
    if exists {
        return Repository::open(backend, password.as_bytes())
            .map(drop)
            .map_err(|e| match e {
                EngineError::WrongPassword { .. } => {
                    ApiError::Conflict(Msg::new("msg.conflict.repo_password").with("repo", repo))
                }
                other => unavailable(other),
            });
    }
    Repository::init(backend, password.as_bytes(), &InitOptions::default())
        .map(drop)
        .map_err(unavailable)
}

/// Remove snapshots from a repository and prune what no snapshot needs any
/// more (an exclusive lock, waiting up to a minute for running backups).
pub fn delete_snapshots(
    repository: &RepoAt,
    password: &str,
    snapshot_ids: &[String],
) -> Result<(), RunFailure> {
    use holdfast_engine::prune::{PruneOptions, execute, plan};
    use holdfast_storage::FileType;
    let backend = repository.backend().map_err(failure)?;
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
    pub repository: RepoAt,
    pub password: String,
    pub snapshot_id: String,
    pub kind: String,
    pub target: String,
    /// The source's own target (an in-place restore writes only there).
    pub source_target: PathBuf,
    /// Over the source itself: a database target is dropped and created
    /// again (it is never empty).
    pub in_place: bool,
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
    let (repo, id, snap) = open_snapshot(&input.repository, &input.password, &input.snapshot_id)?;
    let spec = match input.kind.as_str() {
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
            // in place ("/"): only beneath the source's own path, and only
            // a snapshot whose paths all lie there (an older one may hold
            // the paths of an earlier target)
            let in_place = input.target == "/" && input.kind == "directory";
            if in_place
                && let Some(p) = snap
                    .paths
                    .iter()
                    .find(|p| !std::path::Path::new(p).starts_with(&input.source_target))
            {
                return Err(format!(
                    "refused by policy: the snapshot holds {p}, outside the source's current \
                     target {}; restore it into a new directory instead",
                    input.source_target.display()
                ));
            }
            let writes = if in_place {
                input.source_target.clone()
            } else {
                target.clone()
            };
            crate::sandbox::restrict_thread(&crate::sandbox::Allowed {
                read: None,
                write: vec![writes],
            })
            .map_err(|e| format!("cannot restrict the job (Landlock): {e}"))?;
            RestoreSpec::Tree(holdfast_sources::dir::restore::RestoreOptions {
                target,
                includes: none.clone(),
                excludes: none,
                delete: false,
                dry_run: false,
                workers: 2,
                sparse: true,
                confine: None,
            })
        }
        _ => RestoreSpec::Address {
            addr: {
                let addr = SourceAddress::parse(&input.target).map_err(|e| e.to_string())?;
                if input.in_place {
                    whole_copy_of(&repo, &snap, &addr)?;
                }
                if let SourceAddress::Sqlite(path) = &addr {
                    sandbox_sqlite(&input.checked, path, None)?;
                }
                addr
            },
            credential: input.credentials.clone().map(Secret::new),
            clean: input.in_place,
            replay_state: input.replay_state.clone(),
        },
    };
    let report = holdfast_sources::spec::restore(
        &repo,
        &id,
        &snap,
        spec,
        &input.checked.confinement(),
        progress,
        &|_| {},
    )
    .map_err(|e| e.to_string())?;
    match report {
        RestoreReport::Tree(s) => {
            if s.errors > 0 {
                return Err(format!("{} entries could not be restored", s.errors));
            }
            Ok(serde_json::json!({
                "files": s.files_restored + s.files_unchanged, "dirs": s.dirs, "bytes": s.bytes_written,
                "blobs_verified": true,
            }))
        }
        RestoreReport::Address(r) => Ok(serde_json::json!({
            "target": r.target, "database": r.database, "created": r.created, "bytes": r.bytes,
            "tables": r.tables.iter().map(|(t, n)| serde_json::json!({"table": t, "rows": n})).collect::<Vec<_>>(),
            "rows": r.tables.iter().map(|(_, n)| n).sum::<u64>(),
            "row_counts_match_manifest": true,
        })),
    }
}

/// The repository at `repository` and its snapshot `snapshot_id`.
fn open_snapshot(
    repository: &RepoAt,
    password: &str,
    snapshot_id: &str,
) -> Result<(Repository, Id, holdfast_format::snapshot::Snapshot), String> {
    let backend = repository.backend().map_err(|e| e.to_string())?;
    let repo = Repository::open(backend, password.as_bytes()).map_err(|e| e.to_string())?;
    let (id, snap) = snapshots::find(&repo, snapshot_id, &snapshots::SnapshotFilter::default())
        .map_err(|e| e.to_string())?;
    Ok((repo, id, snap))
}

/// What a drill needs.
pub struct DrillInput {
    pub repository: RepoAt,
    pub password: String,
    pub snapshot_id: String,
    pub kind: String,
    /// The source's own target: a database drill's scratch database is
    /// made on its server, as its user.
    pub source_target: String,
    pub credentials: Option<String>,
    /// What the policy check decided for the source's target.
    pub checked: Checked,
    /// The server's scratch area for drills.
    pub scratch: PathBuf,
    /// The admin's drill server for this kind (`[drills]`): its address
    /// and password file; `None`: the source's own server.
    pub drill_server: Option<(String, Option<PathBuf>)>,
    /// The drill's id: it names the scratch database.
    pub name: String,
}

impl DrillInput {
    /// The server a database drill makes its scratch database on: the
    /// admin's drill server as configured, or the source's own server
    /// reached as the source is; `None` for the kinds without one.
    fn database_server(&self) -> Result<Option<(SourceAddress, Option<Secret>)>, String> {
        match (self.kind.as_str(), &self.drill_server) {
            ("postgres" | "mysql", Some(server)) => Ok(Some(drill_server(server)?)),
            ("postgres" | "mysql", None) => {
                let mut addr =
                    SourceAddress::parse(&self.source_target).map_err(|e| e.to_string())?;
                holdfast_sources::spec::enforce(&mut addr, &self.checked.confinement())
                    .map_err(|e| e.to_string())?;
                Ok(Some((addr, self.credentials.clone().map(Secret::new))))
            }
            _ => Ok(None),
        }
    }
}

/// Drop the scratch database an interrupted drill left (its node died
/// while it ran); whether there was one.
pub fn drop_drill_database(input: &DrillInput) -> Result<bool, String> {
    match input.database_server()? {
        Some((addr, password)) => {
            holdfast_sources::drill::drop_scratch_database(addr, password, &input.name)
                .map_err(|e| e.to_string())
        }
        None => Ok(false),
    }
}

/// Restore a backup into a scratch target, verify it against the
/// snapshot and remove the target (`holdfast_sources::drill`); what was
/// proven. A drill of files, SQLite or events may write only beneath the
/// scratch area (Landlock).
pub fn run_drill(input: &DrillInput, progress: &Progress) -> Result<serde_json::Value, String> {
    let (repo, id, snap) = open_snapshot(&input.repository, &input.password, &input.snapshot_id)?;
    // the snapshot is drilled as what it holds: it must be what the source
    // makes, or a database source's drill (not confined to the scratch
    // area) could restore files or a SQLite database
    let held = holdfast_sources::drill::drilled_as(&repo, &snap)
        .map(|(kind, _)| kind)
        .unwrap_or_else(|| "directory".into());
    let made = match input.kind.as_str() {
        k @ ("postgres" | "mysql" | "sqlite" | "jsonl") => k,
        _ => "directory",
    };
    if held != made {
        return Err(format!(
            "the backup's snapshot holds a {held} copy, but the source is a {} source; not drilled",
            input.kind
        ));
    }
    let server = input.database_server()?;
    if server.is_none() {
        std::fs::create_dir_all(&input.scratch)
            .map_err(|e| format!("create {}: {e}", input.scratch.display()))?;
        crate::sandbox::restrict_thread(&crate::sandbox::Allowed {
            read: None,
            write: vec![input.scratch.clone()],
        })
        .map_err(|e| format!("cannot restrict the job (Landlock): {e}"))?;
    }
    let opts = holdfast_sources::drill::DrillOptions {
        scratch: input.scratch.clone(),
        server,
        workers: 2,
        name: Some(input.name.clone()),
    };
    let r =
        holdfast_sources::drill::drill(&repo, &snap, &opts, progress).map_err(|e| e.to_string())?;
    Ok(serde_json::json!({
        "snapshot_id": id.to_hex(),
        "kind": r.kind,
        "bytes": r.bytes,
        "items": r.items,
        "rows": r.rows(),
        "tables": r.tables.iter().map(|(t, n)| serde_json::json!({"table": t, "rows": n})).collect::<Vec<_>>(),
        "checks": r.checks,
        "duration_seconds": r.duration.as_secs_f64(),
    }))
}

/// What a verification needs.
pub struct VerifyInput {
    pub repository: RepoAt,
    pub password: String,
    /// `none`, `all`, `N/M` or `P%`.
    pub read_data: String,
}

/// `check` the repository (under a shared lock, so no prune runs
/// meanwhile and a finding is never a pack a prune just removed): what it
/// read and found, and which snapshots the errors affect. The thread may
/// read only the repository and write only its lock (Landlock).
pub fn run_verification(
    input: &VerifyInput,
) -> Result<holdfast_catalog::verifications::Checked, String> {
    use holdfast_engine::check::{CheckOptions, ReadData, Severity, check};
    let read_data = match input.read_data.as_str() {
        "none" => ReadData::None,
        "all" => ReadData::All,
        subset => ReadData::parse_subset(subset)?,
    };
    crate::sandbox::restrict_thread(&crate::sandbox::Allowed::repository(&input.repository))
        .map_err(|e| format!("cannot restrict the job (Landlock): {e}"))?;
    let backend = input.repository.backend().map_err(|e| e.to_string())?;
    let repo =
        Arc::new(Repository::open(backend, input.password.as_bytes()).map_err(|e| e.to_string())?);
    let _lock = holdfast_engine::lock::lock(&repo, false, Duration::from_secs(60), &mut |_| {})
        .map_err(|e| e.to_string())?;
    let mut findings = Vec::new();
    let mut damaged = std::collections::BTreeSet::new();
    let summary = check(
        &repo,
        &CheckOptions {
            read_data,
            threads: 2,
        },
        &mut |f| {
            if f.severity == Severity::Error {
                damaged.extend(f.affects.iter().map(|a| a.snapshot.clone()));
            }
            findings.push(serde_json::to_value(&f).unwrap_or_default());
        },
    )
    .map_err(|e| e.to_string())?;
    let mut summary_json = serde_json::to_value(&summary).unwrap_or_default();
    summary_json["read_data"] = input.read_data.clone().into();
    Ok(holdfast_catalog::verifications::Checked {
        summary: summary_json,
        findings,
        errors: summary.errors,
        damaged_snapshots: damaged.into_iter().collect(),
    })
}

/// The admin's drill server (`[drills]`): its address, and its password
/// read from its file.
pub fn drill_server(
    (address, password_file): &(String, Option<PathBuf>),
) -> Result<(SourceAddress, Option<Secret>), String> {
    let addr = SourceAddress::parse(address).map_err(|e| e.to_string())?;
    let password = password_file
        .as_ref()
        .map(|f| {
            std::fs::read_to_string(f)
                .map(|p| Secret::new(p.trim_end_matches(['\r', '\n'])))
                .map_err(|e| format!("the drill server's password file {}: {e}", f.display()))
        })
        .transpose()?;
    Ok((addr, password))
}

/// An in-place restore replaces the whole database: only a snapshot that
/// is a whole copy of that same database may do it — a dump (or SQLite's
/// file), never tables mode (a slice: some tables, some tenant's rows, none
/// of the routines), and of the database the target names (the source may
/// have pointed elsewhere when it was taken).
fn whole_copy_of(
    repo: &Repository,
    snap: &holdfast_format::snapshot::Snapshot,
    target: &SourceAddress,
) -> Result<(), String> {
    let refused = |why: &str| format!("refused: {why}; restore it into a new database instead");
    let m = holdfast_engine::manifest::load(repo, snap)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| refused("the snapshot has no manifest"))?;
    if !matches!(m.mode.as_str(), "dump" | "file") {
        return Err(refused(&format!(
            "the snapshot holds a {} backup, not the whole database",
            m.mode
        )));
    }
    let same = match target {
        SourceAddress::Postgres(a) | SourceAddress::Mysql(a) => {
            m.database.as_deref() == Some(a.database.as_str())
        }
        SourceAddress::Sqlite(p) => {
            matches!(SourceAddress::parse(&m.source), Ok(SourceAddress::Sqlite(q)) if &q == p)
        }
        _ => false,
    };
    if !same {
        return Err(refused(&format!(
            "the snapshot is of {}, not of the source's current target",
            m.database.as_deref().unwrap_or(&m.source)
        )));
    }
    Ok(())
}

/// What one run needs.
pub struct RunInput {
    pub repository: RepoAt,
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
    let backend = input.repository.backend().map_err(failure)?;
    let repo = Arc::new(Repository::open(backend, input.password.as_bytes()).map_err(failure)?);
    let _lock = holdfast_engine::lock::lock(&repo, false, Duration::from_secs(60), &mut |_| {})
        .map_err(failure)?;
    let host = system::hostname();
    let mut meta = SnapshotMeta {
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
    if let Some(h) = &input.audit_head {
        meta.add_extra(serde_json::json!({"audit_head": h}));
    }
    let kind = input.source.kind.as_str();
    let spec = match kind {
        "directory" => {
            let target = PathBuf::from(&input.source.target);
            // a source names one path, which must be there (the CLI backs up
            // what exists of several)
            if input.checked.confine.is_none() && !target.exists() {
                return Err(RunFailure {
                    message: format!("{}: no such file or directory", target.display()),
                    kind: FailureKind::Permanent,
                });
            }
            let abs = vec![input.source.target.clone()];
            let parent = snapshots::find_parent(&repo, &host, &abs).map_err(failure)?;
            let excludes = PathMatcher::new(&settings.exclude).map_err(|m| RunFailure {
                message: m,
                kind: FailureKind::Permanent,
            })?;
            // from here this thread reads only the source and writes only
            // the repository
            crate::sandbox::restrict_thread(&crate::sandbox::Allowed::backup(
                input
                    .checked
                    .confine
                    .clone()
                    .unwrap_or_else(|| target.clone()),
                &input.repository,
            ))
            .map_err(|e| RunFailure {
                message: format!("cannot restrict the job (Landlock): {e}"),
                kind: FailureKind::Transient,
            })?;
            SourceSpec::Paths(DirBackupOptions {
                paths: vec![target],
                excludes,
                one_file_system: settings.one_file_system,
                readers: 2,
                parent,
                scan: false,
                confine: None,
            })
        }
        // the configured text of the named command, never the target
        "command" => SourceSpec::Command {
            shell: input
                .checked
                .command
                .clone()
                .ok_or_else(|| refused(&input.source.target))?,
            filename: settings.filename.clone().unwrap_or_else(|| "stdout".into()),
        },
        _ => SourceSpec::Address {
            addr: {
                let addr = SourceAddress::parse(&input.source.target).map_err(failure)?;
                if let SourceAddress::Sqlite(path) = &addr {
                    // SQLite runs no tool: its thread reads only beneath
                    // the file's root and writes the repository and temp
                    sandbox_sqlite(&input.checked, path, Some(&input.repository)).map_err(
                        |message| RunFailure {
                            message,
                            kind: FailureKind::Transient,
                        },
                    )?;
                }
                addr
            },
            credential: input.credentials.clone().map(Secret::new),
            options: SourceOptions {
                max_schema_version: settings.max_schema_version,
                tables: settings.tables(),
            },
        },
    };
    let chunker = match kind {
        "directory" => ChunkerParams::FILES,
        "command" if !settings.rows => ChunkerParams::FILES,
        _ => ChunkerParams::ROWS,
    };
    let report = holdfast_sources::spec::backup(
        &repo,
        spec,
        BackupSettings {
            chunker,
            saver: SaverOptions::default(),
            meta,
            dry_run: false,
        },
        &input.checked.confinement(),
        progress,
    )
    .map_err(|e| RunFailure {
        kind: failure_kind(e.kind),
        message: e.to_string(),
    })?;
    let mut warnings = report.warnings;
    warnings.extend(report.unreadable.iter().map(|e| e.to_string()));
    let (snapshot_id, snapshot) = (report.snapshot_id, report.snapshot);
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
    if !report.table_rows.is_empty() {
        counts["per_table"] = report
            .table_rows
            .iter()
            .map(|(t, n)| serde_json::json!({"table": t, "rows": n}))
            .collect();
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
    fn drills_run_weekly_at_a_quiet_hour_of_each_sources_own_unless_told() {
        let none = SourceSettings::default();
        let mut hours = std::collections::BTreeSet::new();
        for id in [
            "0190aaaa-0000-7000-8000-000000000001",
            "0190aaaa-0000-7000-8000-000000000002",
            "x",
        ] {
            let text = default_drill_schedule(id);
            let fields: Vec<&str> = text.split(' ').collect();
            assert_eq!(fields[2..], ["*", "*", "0"], "{text}");
            let hour: u32 = fields[1].parse().unwrap();
            assert!((2..6).contains(&hour), "{text}");
            hours.insert(text);
            assert!(none.drill_schedule(id).unwrap().is_some());
        }
        assert!(
            hours.len() > 1,
            "sources spread over the quiet hours: {hours:?}"
        );
        let with = |d: &str| SourceSettings {
            drill: Some(d.into()),
            ..Default::default()
        };
        assert!(with("off").drill_schedule("x").unwrap().is_none());
        assert!(with("@daily").drill_schedule("x").unwrap().is_some());
        assert!(with("0 25 * * *").drill_schedule("x").is_err());
        let e = validate_source(
            "directory",
            "/srv/x",
            &serde_json::json!({"drill": "often"}),
        )
        .unwrap_err();
        assert!(format!("{e:?}").contains("options.drill"), "{e:?}");
    }

    #[test]
    fn failures_are_sorted_by_their_kind_not_their_words() {
        // the words would say "transient", the source decided permanent
        let e = EngineError::source("connection refused by policy");
        assert_eq!(classify(&e), FailureKind::Permanent);
        let e = EngineError::source_transient("HTTP 503 from https://x/events");
        assert_eq!(classify(&e), FailureKind::Transient);
        assert_eq!(
            classify(&EngineError::Locked("by pid 1".into())),
            FailureKind::Transient
        );
        assert_eq!(
            classify(&EngineError::Invalid("bad".into())),
            FailureKind::Permanent
        );
        // where the tool's words are understood: the source's classifier
        use holdfast_sources::command::tool_fault;
        assert_eq!(
            tool_fault(
                "pg_dump: error: connection to server at \"127.0.0.1\", port 1 failed: Connection refused"
            ),
            holdfast_engine::Fault::Transient
        );
        assert_eq!(
            tool_fault("FATAL: password authentication failed for user \"app\""),
            holdfast_engine::Fault::Permanent
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
