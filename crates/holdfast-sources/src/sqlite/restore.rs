//! `restore SNAPSHOT --to sqlite:///path/new.db`: the stored database file
//! is written beside the target as `NAME.holdfast-partial`, its SHA-256
//! checked against the manifest, `PRAGMA integrity_check` run and the rows
//! counted; only then does it replace the target (an atomic rename, after
//! removing the old database's `-wal`, `-shm` and `-journal` files, which
//! would otherwise be replayed into the new one).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use holdfast_engine::blob_reader::BlobReader;
use holdfast_engine::repository::Repository;
use holdfast_engine::{EngineError, Result};
use holdfast_format::Id;
use holdfast_format::snapshot::Snapshot;
use sha2::{Digest, Sha256};

use super::{check_integrity, list_tables, open_read_only};
use crate::db_restore::{RestoreReport, verify_counts};
use crate::progress::Progress;
use holdfast_engine::manifest::root_file;
use holdfast_format::manifest::Manifest;

pub struct SqliteRestoreOptions {
    /// Replace a target database that exists and is not empty.
    pub clean: bool,
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Restore a `sqlite` snapshot to the database file `target`.
/// Check `target` may be written: Ok(true) when it exists (and `clean`
/// allows replacing it), Ok(false) when it does not.
pub(crate) fn check_target(target: &Path, clean: bool) -> Result<bool> {
    match std::fs::metadata(target) {
        Ok(m) if m.is_dir() => Err(EngineError::Invalid(format!(
            "{} is a directory; give the database file's path",
            target.display()
        ))),
        Ok(m) if m.len() > 0 && !clean => Err(EngineError::Invalid(format!(
            "{} already exists and is not empty; restore to a new path, or add --clean \
             to replace it (stop the application first)",
            target.display()
        ))),
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(EngineError::io(format!("reading {}", target.display()), e)),
    }
}

/// Build the database at `TARGET.holdfast-partial` with `build`, then put
/// it in place of `target`: the old database's `-wal`, `-shm` and
/// `-journal` files go first (they would be replayed into the new one),
/// then an atomic rename. A failed build leaves `target` untouched.
pub(crate) fn replace_with<T>(
    target: &Path,
    existed: bool,
    build: impl FnOnce(&Path) -> Result<T>,
) -> Result<T> {
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| EngineError::io(format!("creating {}", parent.display()), e))?;
    }
    let partial = with_suffix(target, ".holdfast-partial");
    let _ = std::fs::remove_file(&partial);
    let built = match build(&partial) {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    if existed {
        for side in ["-wal", "-shm", "-journal"] {
            match std::fs::remove_file(with_suffix(target, side)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    let _ = std::fs::remove_file(&partial);
                    return Err(EngineError::io(
                        format!("removing the old database's {side} file"),
                        e,
                    ));
                }
            }
        }
    }
    std::fs::rename(&partial, target).map_err(|e| {
        EngineError::io(format!("moving the database into {}", target.display()), e)
    })?;
    if let Some(parent) = target.parent()
        && let Ok(d) = File::open(parent)
    {
        let _ = d.sync_all();
    }
    Ok(built)
}

/// Restore a `sqlite` snapshot to the database file `target`.
pub fn restore_sqlite(
    repo: &Repository,
    snapshot: &Snapshot,
    manifest: &Manifest,
    target: &Path,
    opts: &SqliteRestoreOptions,
    progress: &Progress,
) -> Result<RestoreReport> {
    let existed = check_target(target, opts.clean)?;
    let expected = manifest
        .files
        .first()
        .ok_or_else(|| EngineError::Invalid("the manifest lists no database file".into()))?;
    let node = root_file(repo, snapshot, &expected.path)?.ok_or_else(|| {
        EngineError::Invalid(format!("{} is missing from the snapshot", expected.path))
    })?;
    let content = node.content.unwrap_or_default();
    let (bytes, counted) = replace_with(target, existed, |partial| {
        write_and_check(repo, &content, partial, manifest, progress)
    })?;
    Ok(RestoreReport {
        target: format!("sqlite://{}", target.display()),
        database: expected.path.clone(),
        created: !existed,
        bytes,
        tables: counted,
        resumed_after: 0,
    })
}

/// Write the stored file to `partial`, then prove it: SHA-256, integrity
/// check, row counts. Returns the bytes written and the tables counted.
fn write_and_check(
    repo: &Repository,
    content: &[Id],
    partial: &Path,
    manifest: &Manifest,
    progress: &Progress,
) -> Result<(u64, Vec<(String, u64)>)> {
    let expected = &manifest.files[0];
    let file = File::create(partial)
        .map_err(|e| EngineError::io(format!("creating {}", partial.display()), e))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut reader = BlobReader::new(repo, content);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut written = 0u64;
    loop {
        holdfast_engine::cancel::check()?;
        let n = io::Read::read(&mut reader, &mut buf).map_err(|e| {
            EngineError::io(format!("reading {} from the repository", expected.path), e)
        })?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])
            .map_err(|e| EngineError::io(format!("writing {}", partial.display()), e))?;
        written += n as u64;
        progress.add_bytes(n as u64);
    }
    let file = out
        .into_inner()
        .map_err(|e| EngineError::io(format!("writing {}", partial.display()), e.into_error()))?;
    file.sync_all()
        .map_err(|e| EngineError::io(format!("writing {}", partial.display()), e))?;
    drop(file);
    let digest = Id(hasher.finalize().into());
    if digest.to_hex() != expected.sha256 || written != expected.size {
        return Err(EngineError::source(format!(
            "{} read back from the repository does not match the manifest (SHA-256 {}, expected {}); \
             nothing was replaced",
            expected.path,
            digest.to_hex(),
            expected.sha256
        )));
    }
    let conn = open_read_only(partial)?;
    check_integrity(&conn, false).map_err(|e| {
        EngineError::source(format!(
            "the restored database failed its check: {e}; nothing was replaced"
        ))
    })?;
    let found: Vec<u64> = {
        let now = list_tables(&conn)?;
        let by_name: std::collections::HashMap<_, _> =
            now.iter().map(|t| (t.name.as_str(), t.rows)).collect();
        manifest
            .tables
            .iter()
            .map(|t| by_name.get(t.name.as_str()).copied().unwrap_or(u64::MAX))
            .collect()
    };
    drop(conn);
    let counted = verify_counts(manifest, &found)?;
    progress.file_done();
    Ok((written, counted))
}
