//! Restore drills: proof that a snapshot restores. A drill restores the
//! snapshot into a scratch target nobody names — a fresh directory in the
//! scratch area for files and SQLite, a fresh database on a server the
//! caller gives for PostgreSQL and MySQL, no target at all for an event
//! stream — verifies what arrived against the snapshot, and removes the
//! scratch target again.
//!
//! What a passing drill has proven:
//! - files: every regular file's bytes, blob by blob, hash to the blob ids
//!   (SHA-256 of the plaintext) the snapshot lists; every entry's type,
//!   size, permissions, modification time and symlink target (and owner,
//!   when running as root) are the tree's;
//! - databases: the restore's own checks — every stored file read back
//!   with the manifest's size and SHA-256 before the loader may commit,
//!   every table's row count equal to the manifest's afterwards, and for
//!   SQLite `PRAGMA integrity_check` — and for a tables-mode snapshot
//!   every table read back out of the restored database by the backup's
//!   own export, equal to the stored CSV (byte for byte, or record for
//!   record where the server sorts text by another collation);
//! - event streams: every line is a valid event; the count, the first and
//!   last `eventId` and the file's SHA-256 are the manifest's.
//!
//! Invariants: a drill writes nowhere but its own scratch target (a
//! directory named `holdfast-drill-…` in the scratch area, or a database
//! named `holdfast_drill_…`); the directory is removed on every path that
//! returns or unwinds, the database on every path that returns; [`sweep`]
//! removes the directories a killed process left behind. A drill refuses to
//! start when the scratch area lacks room for what it would restore.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use holdfast_engine::index::MasterIndex;
use holdfast_engine::manifest::ListedFile;
use holdfast_engine::repository::Repository;
use holdfast_engine::{EngineError, Result};
use holdfast_format::Id;
use holdfast_format::blob::BlobType;
use holdfast_format::manifest::{Manifest, snapshot_kind};
use holdfast_format::snapshot::Snapshot;
use holdfast_format::table_csv::RecordDigest;
use holdfast_format::tree::{Node, NodeType};
use sha2::{Digest, Sha256};

use crate::database::{Dialect, Export, Exportable, Stored, for_address};
use crate::dir::restore::{RestoreOptions, restore as restore_tree};
use crate::filter::PathMatcher;
use crate::jsonl::EVENTS_FILE;
use crate::jsonl::events::{EventReader, EventValidator};
use crate::progress::Progress;
use crate::secret::Secret;
use crate::source_url::SourceAddress;
use crate::writer::{FileFacts, FileSink};

/// What names a drill's scratch directories and databases.
pub const SCRATCH_PREFIX: &str = "holdfast-drill-";
const DATABASE_PREFIX: &str = "holdfast_drill_";
/// Mismatches listed in a failed drill's message (the count is always given).
const SHOWN_MISMATCHES: usize = 10;

/// Where a drill may restore.
pub struct DrillOptions {
    /// The scratch area: files and SQLite databases are restored into a
    /// fresh directory here.
    pub scratch: PathBuf,
    /// A database server for database drills (`postgres://…`,
    /// `mysql://…`; the database named in it is not used) and its
    /// password: a scratch database is created there and dropped again.
    pub server: Option<(SourceAddress, Option<Secret>)>,
    /// Threads writing file contents.
    pub workers: usize,
    /// What names the scratch database (see [`scratch_database`]): a
    /// service passes the drill's id, so that the database of a drill
    /// whose node died can be dropped by name; `None`: random.
    pub name: Option<String>,
}

/// What a passing drill restored and proved.
#[derive(Debug, Clone, PartialEq)]
pub struct DrillReport {
    /// `files`, `postgres`, `mysql`, `sqlite` or `jsonl`.
    pub kind: String,
    /// Bytes restored (files' contents; a database's stored files read).
    pub bytes: u64,
    /// Files (or, for an event stream, events) verified.
    pub items: u64,
    /// Every table with the rows found after the restore.
    pub tables: Vec<(String, u64)>,
    /// What was checked, one line each, for people.
    pub checks: Vec<String>,
    /// Restore and verification, start to end: the restore time this
    /// backup can be promised to take.
    pub duration: Duration,
}

impl DrillReport {
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|t| t.1).sum()
    }
}

/// What [`drill`] takes `snapshot` for: a database or event stream's kind
/// and mode, or `None` for plain files (a directory's, a command's output).
/// What the snapshot says it is; a snapshot that names no kind with a
/// manifest but holds one is drilled as the manifest says (its content
/// decides: a snapshot forged without the summary must not pass as plain
/// files).
pub fn drilled_as(repo: &Repository, snapshot: &Snapshot) -> Option<(String, String)> {
    let with_manifest = |k: &str| matches!(k, "postgres" | "mysql" | "sqlite" | "jsonl");
    match snapshot_kind(snapshot) {
        Some(k) if with_manifest(&k.0) => Some(k),
        _ => holdfast_engine::manifest::load(repo, snapshot)
            .ok()
            .flatten()
            .filter(|m| with_manifest(&m.kind))
            .map(|m| (m.kind, m.mode)),
    }
}

/// Restore `snapshot` into a scratch target, verify it, remove the target.
/// `Ok` only when everything verified; the error says what did not.
pub fn drill(
    repo: &Repository,
    snapshot: &Snapshot,
    opts: &DrillOptions,
    progress: &Progress,
) -> Result<DrillReport> {
    let started = Instant::now();
    let mut report = match drilled_as(repo, snapshot) {
        None => drill_files(repo, snapshot, opts, progress)?,
        Some((kind, mode)) => {
            let manifest = holdfast_engine::manifest::load(repo, snapshot)?.ok_or_else(|| {
                EngineError::Invalid(format!("this {kind} snapshot has no manifest.json"))
            })?;
            let from = Stored {
                repo,
                snapshot,
                manifest: &manifest,
                progress,
            };
            match (kind.as_str(), mode.as_str()) {
                ("jsonl", _) => drill_events(repo, snapshot, &manifest)?,
                ("sqlite", _) => drill_sqlite(&from, opts)?,
                ("postgres" | "mysql", _) => drill_database(&kind, &from, opts)?,
                _ => {
                    return Err(EngineError::Invalid(format!(
                        "a {kind} {mode} snapshot cannot be drilled"
                    )));
                }
            }
        }
    };
    report.duration = started.elapsed();
    Ok(report)
}

/// Remove the scratch directories of drills a killed process left in
/// `scratch`; how many. Call it before drills start, never while one runs.
pub fn sweep(scratch: &Path) -> Result<usize> {
    let entries = match std::fs::read_dir(scratch) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(EngineError::io(format!("reading {}", scratch.display()), e)),
    };
    let mut removed = 0;
    for e in entries.flatten() {
        if e.file_name()
            .as_bytes()
            .starts_with(SCRATCH_PREFIX.as_bytes())
        {
            remove_all(&e.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Drop the scratch databases (`holdfast_drill_…`) drills that were
/// killed left on `server`; how many. Call it before drills start on that
/// server, never while one runs there.
pub fn sweep_databases(server: SourceAddress, credential: Option<Secret>) -> Result<usize> {
    for_address(server, credential)?.drop_prefixed(DATABASE_PREFIX)
}

/// The scratch database of the drill named `name` (its letters and digits,
/// lowercased, after `holdfast_drill_`; at most 63 bytes, as PostgreSQL
/// allows).
pub fn scratch_database(name: &str) -> String {
    let mut db = DATABASE_PREFIX.to_string();
    db.extend(
        name.chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_lowercase()),
    );
    db.truncate(63);
    db
}

/// Drop the scratch database of the drill named `name` on `server`, if it
/// is there (its run was interrupted); whether it was. Databases of other
/// drills, running or not, stay.
pub fn drop_scratch_database(
    server: SourceAddress,
    credential: Option<Secret>,
    name: &str,
) -> Result<bool> {
    for_address(server, credential)?.drop_named(&scratch_database(name))
}

/// A fresh scratch directory, removed when dropped (also on unwinding).
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new(scratch: &Path, needed: u64) -> Result<ScratchDir> {
        if scratch.exists() && !scratch.is_dir() {
            return Err(EngineError::Invalid(format!(
                "the scratch area {} is not a directory",
                scratch.display()
            )));
        }
        std::fs::create_dir_all(scratch)
            .map_err(|e| EngineError::io(format!("creating {}", scratch.display()), e))?;
        let free = rustix::fs::statvfs(scratch)
            .map(|s| s.f_bavail.saturating_mul(s.f_frsize))
            .map_err(|e| EngineError::io(format!("measuring {}", scratch.display()), e.into()))?;
        if free < needed {
            return Err(EngineError::Invalid(format!(
                "the scratch area {} has {} free; this drill restores {}: give it more room",
                scratch.display(),
                human(free),
                human(needed)
            )));
        }
        let name = format!("{SCRATCH_PREFIX}{}", random_hex());
        let dir = scratch.join(name);
        std::fs::create_dir(&dir)
            .map_err(|e| EngineError::io(format!("creating {}", dir.display()), e))?;
        Ok(ScratchDir(dir))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = remove_all(&self.0);
    }
}

/// Remove a tree, making read-only directories in it writable first.
fn remove_all(path: &Path) -> Result<()> {
    if std::fs::remove_dir_all(path).is_ok() {
        return Ok(());
    }
    fn writable(p: &Path) {
        if let Ok(m) = std::fs::symlink_metadata(p)
            && m.is_dir()
        {
            let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700));
            if let Ok(entries) = std::fs::read_dir(p) {
                for e in entries.flatten() {
                    writable(&e.path());
                }
            }
        }
    }
    writable(path);
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(EngineError::io(format!("removing {}", path.display()), e)),
    }
}

fn random_hex() -> String {
    Id::random().to_hex()[..16].to_string()
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

// ----- files -----

fn drill_files(
    repo: &Repository,
    snapshot: &Snapshot,
    opts: &DrillOptions,
    progress: &Progress,
) -> Result<DrillReport> {
    let needed = match &snapshot.summary {
        Some(s) => s.total_bytes_processed,
        None => tree_size(repo, &snapshot.tree)?,
    };
    let scratch = ScratchDir::new(&opts.scratch, needed)?;
    let target = scratch.0.join("restored");
    let restore = RestoreOptions {
        target: target.clone(),
        includes: PathMatcher::new(&[]).map_err(EngineError::Invalid)?,
        excludes: PathMatcher::new(&[]).map_err(EngineError::Invalid)?,
        delete: false,
        dry_run: false,
        workers: opts.workers.max(1),
        sparse: true,
        confine: None,
    };
    let summary = restore_tree(repo, &snapshot.tree, &restore, progress, &|_| {})?;
    if summary.errors > 0 {
        let errors = progress.errors();
        let shown: Vec<String> = errors
            .iter()
            .take(SHOWN_MISMATCHES)
            .map(ToString::to_string)
            .collect();
        return Err(EngineError::Corrupt {
            file: "the snapshot".into(),
            why: format!(
                "{} entries could not be restored: {}",
                summary.errors,
                shown.join("; ")
            ),
        });
    }
    let index = repo.index()?;
    let mut v = Verifier {
        repo,
        index: &index,
        as_root: rustix::process::geteuid().is_root(),
        skipped_devices: summary.skipped_devices > 0,
        buf: Vec::new(),
        files: 0,
        bytes: 0,
        mismatches: Vec::new(),
        found: 0,
    };
    v.tree(&snapshot.tree, &target, "")?;
    if v.found > 0 {
        let more = v.found.saturating_sub(v.mismatches.len());
        let mut msg = format!(
            "{} restored entries do not match the snapshot: {}",
            v.found,
            v.mismatches.join("; ")
        );
        if more > 0 {
            msg.push_str(&format!("; and {more} more"));
        }
        return Err(EngineError::Corrupt {
            file: "the restored files".into(),
            why: msg,
        });
    }
    Ok(DrillReport {
        kind: "files".into(),
        bytes: v.bytes,
        items: v.files,
        tables: Vec::new(),
        checks: vec![
            format!(
                "{} files ({}) hash to the snapshot's blob ids",
                v.files,
                human(v.bytes)
            ),
            "every entry's type, size, permissions, modification time and link target match the snapshot"
                .into(),
        ],
        duration: Duration::ZERO,
    })
}

/// The bytes of every file below `tree`.
fn tree_size(repo: &Repository, tree: &Id) -> Result<u64> {
    let mut total = 0;
    for n in repo.load_tree(tree)?.nodes {
        total += match (&n.node_type, &n.subtree) {
            (NodeType::Dir, Some(sub)) => tree_size(repo, sub)?,
            (NodeType::File, _) => n.size,
            _ => 0,
        };
    }
    Ok(total)
}

/// Walks a snapshot tree beside its restored copy.
struct Verifier<'a> {
    repo: &'a Repository,
    index: &'a MasterIndex,
    as_root: bool,
    /// The restore left device nodes out (not root): do not miss them.
    skipped_devices: bool,
    buf: Vec<u8>,
    files: u64,
    bytes: u64,
    /// The first mismatches, described; `found` counts them all.
    mismatches: Vec<String>,
    found: usize,
}

impl Verifier<'_> {
    fn mismatch(&mut self, path: &str, what: String) {
        self.found += 1;
        if self.mismatches.len() < SHOWN_MISMATCHES {
            self.mismatches.push(format!("{path}: {what}"));
        }
    }

    fn tree(&mut self, tree: &Id, dir: &Path, rel: &str) -> Result<()> {
        for node in self.repo.load_tree(tree)?.nodes {
            let path = dir.join(std::ffi::OsStr::from_bytes(&node.name));
            let rel = format!("{rel}/{}", node.display_name());
            let meta = match std::fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    let device = matches!(node.node_type, NodeType::Dev | NodeType::Chardev);
                    if !(device && self.skipped_devices) {
                        self.mismatch(&rel, "missing after the restore".into());
                    }
                    continue;
                }
                Err(e) => return Err(EngineError::io(format!("reading {}", path.display()), e)),
            };
            let ft = meta.file_type();
            let type_ok = match node.node_type {
                NodeType::Dir => ft.is_dir(),
                NodeType::File => ft.is_file(),
                NodeType::Symlink => ft.is_symlink(),
                _ => !(ft.is_dir() || ft.is_file() || ft.is_symlink()),
            };
            if !type_ok {
                self.mismatch(
                    &rel,
                    format!("restored as a {ft:?}, not a {:?}", node.node_type),
                );
                continue;
            }
            self.metadata(&node, &meta, &rel);
            match node.node_type {
                NodeType::Dir => {
                    if let Some(sub) = &node.subtree {
                        self.tree(sub, &path, &rel)?;
                    }
                }
                NodeType::File => self.content(&node, &path, &rel)?,
                NodeType::Symlink => {
                    let target = std::fs::read_link(&path)
                        .map_err(|e| EngineError::io(format!("reading {}", path.display()), e))?;
                    if target.as_os_str().as_bytes() != node.link_target().as_slice() {
                        self.mismatch(&rel, "a different link target".into());
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn metadata(&mut self, node: &Node, meta: &std::fs::Metadata, rel: &str) {
        if node.node_type == NodeType::Symlink {
            return;
        }
        let perm = meta.permissions().mode() & 0o7777;
        if perm != node.unix_perm() {
            self.mismatch(rel, format!("mode {perm:o}, not {:o}", node.unix_perm()));
        }
        if (meta.mtime(), meta.mtime_nsec()) != (node.mtime.secs, i64::from(node.mtime.nanos)) {
            self.mismatch(rel, "a different modification time".into());
        }
        if node.node_type == NodeType::File && meta.len() != node.size {
            self.mismatch(rel, format!("{} bytes, not {}", meta.len(), node.size));
        }
        if self.as_root && (meta.uid(), meta.gid()) != (node.uid, node.gid) {
            self.mismatch(rel, "a different owner".into());
        }
    }

    /// Read the restored file blob by blob: each must hash to its id.
    fn content(&mut self, node: &Node, path: &Path, rel: &str) -> Result<()> {
        let file = File::open(path)
            .map_err(|e| EngineError::io(format!("opening {}", path.display()), e))?;
        let mut r = BufReader::with_capacity(1 << 20, file);
        for (i, id) in node.content.iter().flatten().enumerate() {
            let loc =
                self.index
                    .lookup(id, BlobType::Data)
                    .ok_or_else(|| EngineError::Corrupt {
                        file: rel.to_string(),
                        why: format!("blob {} is in no index", id.short()),
                    })?;
            self.buf.resize(loc.plain_len() as usize, 0);
            if let Err(e) = r.read_exact(&mut self.buf) {
                self.mismatch(rel, format!("ends inside blob {i}: {e}"));
                return Ok(());
            }
            if Sha256::digest(&self.buf).as_slice() != id.0.as_slice() {
                self.mismatch(
                    rel,
                    format!("blob {i} ({}) reads back different bytes", id.short()),
                );
                return Ok(());
            }
            self.bytes += self.buf.len() as u64;
        }
        if r.read(&mut [0u8; 1])
            .map_err(|e| EngineError::io(format!("reading {}", path.display()), e))?
            > 0
        {
            self.mismatch(rel, "longer than the snapshot's blobs".into());
        }
        self.files += 1;
        Ok(())
    }
}

// ----- databases -----

/// A SQLite snapshot into a scratch file (`integrity_check` and row
/// counts are the restore's own).
fn drill_sqlite(from: &Stored<'_>, opts: &DrillOptions) -> Result<DrillReport> {
    let needed = from.manifest.files.iter().map(|f| f.size).sum();
    let scratch = ScratchDir::new(&opts.scratch, needed)?;
    let file = scratch.0.join("drill.db");
    let mut d = for_address(SourceAddress::Sqlite(file), None)?;
    let r = crate::database::restore::restore(d.as_mut(), from, false)?;
    let mut checks = vec!["PRAGMA integrity_check: ok".to_string()];
    checks.extend(read_back(d.as_mut(), from)?);
    d.discard()?;
    Ok(database_report("sqlite", r, checks))
}

/// A PostgreSQL or MySQL snapshot into a scratch database on the given
/// server, dropped afterwards.
fn drill_database(kind: &str, from: &Stored<'_>, opts: &DrillOptions) -> Result<DrillReport> {
    let (server, credential) = opts.server.clone().ok_or_else(|| {
        EngineError::Invalid(format!(
            "a {kind} drill restores into a scratch database: name a {kind} server to create it on"
        ))
    })?;
    let name = scratch_database(opts.name.as_deref().unwrap_or(&random_hex()));
    let addr = match (kind, server) {
        ("postgres", SourceAddress::Postgres(mut a)) => {
            a.database = name;
            SourceAddress::Postgres(a)
        }
        ("mysql", SourceAddress::Mysql(mut a)) => {
            a.database = name;
            SourceAddress::Mysql(a)
        }
        (_, other) => {
            return Err(EngineError::Invalid(format!(
                "a {kind} snapshot cannot be drilled on {other}"
            )));
        }
    };
    let mut d = for_address(addr, credential)?;
    if from.manifest.mode != "tables" && from.manifest.mode != d.whole_mode() {
        return Err(EngineError::Invalid(format!(
            "a {kind} {} snapshot cannot be drilled",
            from.manifest.mode
        )));
    }
    let r = crate::database::restore::restore(d.as_mut(), from, false)?;
    // the scratch database goes on every path that returns; the read-back's
    // failure is the one to report
    let read = read_back(d.as_mut(), from);
    let discarded = d.discard();
    let read = read?;
    discarded?;
    Ok(database_report(kind, r, read.into_iter().collect()))
}

fn database_report(
    kind: &str,
    r: crate::database::restore::RestoreReport,
    extra: Vec<String>,
) -> DrillReport {
    let mut checks = vec![
        "every stored file read back with the manifest's size and SHA-256".to_string(),
        format!(
            "{} tables restored with the manifest's row counts ({} rows)",
            r.tables.len(),
            r.rows()
        ),
    ];
    checks.extend(extra);
    DrillReport {
        kind: kind.into(),
        bytes: r.bytes,
        items: r.tables.len() as u64,
        tables: r.tables,
        checks,
        duration: Duration::ZERO,
    }
}

/// A tables-mode snapshot's tables, read back out of the restored
/// database with the export a backup uses and compared with the stored
/// files: the same bytes (SHA-256), or — where the restoring server sorts
/// text by another collation — the same records in another order
/// ([`RecordDigest`]). This proves the load (holdfast's own CSV → SQL
/// conversion, the server's parsing of every value) kept every value; row
/// counts alone would not see a value changed on the way. A whole copy
/// (dump) has nothing to compare with but its row counts: its stored bytes
/// are proven by their SHA-256 as they stream into the vendor's loader.
fn read_back(d: &mut dyn Dialect, from: &Stored<'_>) -> Result<Option<String>> {
    let manifest = from.manifest;
    if manifest.mode != "tables" {
        return Ok(None);
    }
    d.begin_snapshot()?;
    // the snapshot's session is closed on every path: an open one keeps
    // the scratch database from being dropped
    let compared = compare_tables(d, from);
    let ended = d.end_snapshot();
    let line = compared?;
    ended?;
    Ok(Some(line))
}

/// [`read_back`] inside the snapshot: the check's line.
fn compare_tables(d: &mut dyn Dialect, from: &Stored<'_>) -> Result<String> {
    let manifest = from.manifest;
    let wanted = manifest.restorable_tables();
    let found = d.list_tables()?;
    let mut items = Vec::new();
    for t in &wanted {
        let file = t.file.clone().unwrap_or_default();
        let table =
            found
                .iter()
                .find(|f| f.parts == t.parts)
                .ok_or_else(|| EngineError::Corrupt {
                    file: file.clone(),
                    why: format!("the restored database has no table {}", t.name),
                })?;
        items.push(Export {
            file,
            what: Exportable::Table {
                table,
                tenant: None,
            },
        });
    }
    // the bytes first (SHA-256 only: the common case, and the cheap one);
    // a table whose bytes differ is read again, record by record
    let exported = d.export(&items, &mut Digests::default())?;
    let differ: Vec<&Export<'_>> = items
        .iter()
        .zip(&exported)
        .filter(|(item, e)| {
            let stored = manifest.files.iter().find(|f| f.path == item.file);
            stored.is_none_or(|f| f.sha256 != e.facts.sha256.to_hex())
        })
        .map(|(item, _)| item)
        .collect();
    let mut records = Digests {
        records: Some(Default::default()),
    };
    let again: Vec<Export<'_>> = differ.iter().map(|item| (*item).clone()).collect();
    d.export(&again, &mut records)?;
    let mut read_back = records.records.unwrap_or_default();
    for item in &differ {
        let read = read_back.remove(&item.file).unwrap_or_default();
        let kept = stored_records(from, &item.file)?;
        if read != kept {
            return Err(EngineError::Corrupt {
                file: item.file.clone(),
                why: format!(
                    "the restored table does not hold the stored rows: {} rows read back \
                     from the scratch database, {} stored, and their values differ{}",
                    read.0.saturating_sub(1),
                    kept.0.saturating_sub(1),
                    manifest
                        .server_version
                        .as_ref()
                        .map(|v| format!(
                            " (the backup was made on server version {v}: a drill server of \
                             another major version may print some values, such as \
                             floating-point numbers, differently)"
                        ))
                        .unwrap_or_default()
                ),
            });
        }
    }
    let order = match differ.len() {
        0 => String::new(),
        n => format!(" ({n} in another order: the server sorts text by another collation)"),
    };
    Ok(format!(
        "{} tables read back from the restored database equal to the stored files{order}",
        items.len()
    ))
}

/// A drill's sink for exports: each file's size and SHA-256, and with
/// `records`, each file's [`RecordDigest`].
#[derive(Default)]
struct Digests {
    records: Option<std::collections::HashMap<String, (u64, u128)>>,
}

impl FileSink for Digests {
    fn add_file(&mut self, path: &str, reader: &mut dyn Read) -> Result<FileFacts> {
        let mut seen = Seen {
            sha: Sha256::new(),
            records: self.records.as_ref().map(|_| RecordDigest::default()),
        };
        // the sink never fails: an error is the reading's
        let size = io::copy(reader, &mut seen)
            .map_err(|e| EngineError::io(format!("reading {path} back"), e))?;
        if let (Some(all), Some(r)) = (&mut self.records, seen.records) {
            all.insert(path.to_string(), r.finish());
        }
        Ok(FileFacts {
            size,
            sha256: Id(seen.sha.finalize().into()),
        })
    }
}

/// What [`Digests`] keeps of one file as it passes.
struct Seen {
    sha: Sha256,
    records: Option<RecordDigest>,
}

impl io::Write for Seen {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.sha.update(buf);
        if let Some(r) = &mut self.records {
            r.feed(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The records of a stored file, read back from the repository (and
/// checked against the manifest once more).
fn stored_records(from: &Stored<'_>, file: &str) -> Result<(u64, u128)> {
    let mut reader = from.open(file)?;
    let mut records = RecordDigest::default();
    // the digest never fails: an error is the reading's
    if let Err(e) = io::copy(&mut reader, &mut records) {
        return Err(reader
            .read_failure(e)
            .unwrap_or_else(|e| EngineError::io(format!("reading {file}"), e)));
    }
    reader.check()?;
    Ok(records.finish())
}

// ----- event streams -----

/// Every stored event through the validator, into nowhere.
fn drill_events(
    repo: &Repository,
    snapshot: &Snapshot,
    manifest: &Manifest,
) -> Result<DrillReport> {
    let listed = ListedFile::open(repo, snapshot, manifest, EVENTS_FILE)?;
    let mut events = EventReader::new(BufReader::new(listed), EventValidator::new(None));
    let copied = io::copy(&mut events, &mut io::sink());
    if let Some(f) = &events.failure {
        return Err(EngineError::Corrupt {
            file: EVENTS_FILE.into(),
            why: f.to_string(),
        });
    }
    copied.map_err(|e| EngineError::io(format!("reading {EVENTS_FILE}"), e))?;
    let stats = std::mem::take(&mut events.validator.stats);
    let listed = events.into_inner().into_inner();
    let bytes = listed.check().map_err(|m| EngineError::Corrupt {
        file: EVENTS_FILE.into(),
        why: m.to_string(),
    })?;
    let extra = |k: &str| manifest.extra.get(k).cloned().unwrap_or_default();
    let found = [
        ("events", serde_json::json!(stats.events)),
        ("first_event_id", serde_json::json!(stats.first_event_id)),
        ("last_event_id", serde_json::json!(stats.last_event_id)),
    ];
    for (k, v) in &found {
        if extra(k) != *v {
            return Err(EngineError::Corrupt {
                file: EVENTS_FILE.into(),
                why: format!("{k} is {v}, the manifest says {}", extra(k)),
            });
        }
    }
    Ok(DrillReport {
        kind: "jsonl".into(),
        bytes,
        items: stats.events,
        tables: Vec::new(),
        checks: vec![
            format!("{} events valid, in order", stats.events),
            "count, first and last eventId and SHA-256 match the manifest".into(),
        ],
        duration: Duration::ZERO,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_removes_only_drill_leftovers_even_read_only_ones() {
        let d = tempfile::tempdir().unwrap();
        let left = d.path().join(format!("{SCRATCH_PREFIX}dead"));
        std::fs::create_dir_all(left.join("ro/inner")).unwrap();
        std::fs::write(left.join("ro/inner/f"), b"x").unwrap();
        std::fs::set_permissions(left.join("ro"), std::fs::Permissions::from_mode(0o555)).unwrap();
        std::fs::create_dir(d.path().join("other")).unwrap();
        assert_eq!(sweep(d.path()).unwrap(), 1);
        assert!(!left.exists());
        assert!(d.path().join("other").exists());
        assert_eq!(sweep(&d.path().join("absent")).unwrap(), 0);
    }

    #[test]
    fn a_scratch_area_without_room_is_refused_before_anything_is_written() {
        let d = tempfile::tempdir().unwrap();
        let e = ScratchDir::new(d.path(), u64::MAX)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("give it more room"), "{e}");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
        let s = ScratchDir::new(d.path(), 1).unwrap();
        let made = s.0.clone();
        assert!(made.is_dir());
        drop(s);
        assert!(!made.exists());
    }

    #[test]
    fn sizes_for_people() {
        assert_eq!(human(512), "512.0 B");
        assert_eq!(human(3 << 30), "3.0 GiB");
    }
}
