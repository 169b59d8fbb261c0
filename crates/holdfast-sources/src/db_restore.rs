//! What every database restore shares: a stored file streamed into a
//! loader's standard input (psql, mariadb) with its SHA-256 checked against
//! the manifest before the loader may commit, and the report of what was
//! restored and verified.

use std::io::{Read, Write};
use std::process::ChildStdin;

use holdfast_engine::blob_reader::BlobReader;
use holdfast_engine::repository::Repository;
use holdfast_engine::{EngineError, Result};
use holdfast_format::Id;
use holdfast_format::snapshot::Snapshot;
use sha2::{Digest, Sha256};

use crate::command::Spawned;
use crate::manifest::{Manifest, root_file};
use crate::progress::Progress;

/// What a database restore did.
#[derive(Debug, Clone)]
pub struct RestoreReport {
    /// The target, redacted.
    pub target: String,
    pub database: String,
    /// The database did not exist (or was dropped with `--clean`) and was
    /// created.
    pub created: bool,
    pub bytes: u64,
    /// Every table with the row count found in the restored database, equal
    /// to the manifest's.
    pub tables: Vec<(String, u64)>,
    /// Items an earlier, interrupted run had already delivered (replays).
    pub resumed_after: u64,
}

impl RestoreReport {
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|t| t.1).sum()
    }
}

/// Stream `file` of the snapshot into `stdin` of `loader`. The loader is
/// told the input ended only if every byte arrived and the SHA-256 equals
/// the manifest's; otherwise it is killed, so a single-transaction load
/// rolls back. Returns the bytes fed.
pub fn feed_file(
    repo: &Repository,
    snapshot: &Snapshot,
    manifest: &Manifest,
    file: &str,
    loader: Spawned,
    mut stdin: ChildStdin,
    progress: &Progress,
) -> Result<u64> {
    let expected = manifest
        .file(file)
        .ok_or_else(|| EngineError::Invalid(format!("the manifest does not list {file}")))?;
    let node = root_file(repo, snapshot, file)?
        .ok_or_else(|| EngineError::Invalid(format!("{file} is missing from the snapshot")))?;
    let content = node.content.unwrap_or_default();
    let what = loader.what.clone();
    let mut reader = BlobReader::new(repo, &content);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut fed = 0u64;
    let outcome: Result<()> = (|| {
        loop {
            holdfast_engine::cancel::check()?;
            let n = reader
                .read(&mut buf)
                .map_err(|e| EngineError::io(format!("reading {file} from the repository"), e))?;
            if n == 0 {
                return Ok(());
            }
            hasher.update(&buf[..n]);
            if let Err(e) = stdin.write_all(&buf[..n]) {
                return Err(EngineError::io(format!("writing to {what}"), e));
            }
            fed += n as u64;
            progress.add_bytes(n as u64);
        }
    })();
    let digest = Id(hasher.finalize().into());
    match outcome {
        Ok(()) if digest.to_hex() == expected.sha256 && fed == expected.size => {
            drop(stdin);
            loader.finish()?;
            progress.file_done();
            Ok(fed)
        }
        Ok(()) => {
            loader.kill();
            Err(EngineError::Invalid(format!(
                "{file} read back from the repository does not match the manifest \
                 (SHA-256 {}, expected {}); the restore was rolled back",
                digest.to_hex(),
                expected.sha256
            )))
        }
        Err(e) => {
            drop(stdin);
            // The loader stopping early (a failed statement) shows as a
            // broken pipe on our side: its own error is the one to report.
            match loader.wait()? {
                (status, tail) if !status.success() => Err(EngineError::Source(format!(
                    "the restore failed and was rolled back: {what} {}:\n{tail}",
                    crate::command::how_it_ended(status)
                ))),
                _ => Err(e),
            }
        }
    }
}

/// Compare row counts found after a restore with the manifest's.
pub fn verify_counts(manifest: &Manifest, found: &[u64]) -> Result<Vec<(String, u64)>> {
    let mut bad = Vec::new();
    for (t, &n) in manifest.tables.iter().zip(found) {
        if t.rows != n {
            bad.push(format!(
                "{}: {n} rows restored, {} in the snapshot",
                t.name, t.rows
            ));
        }
    }
    if found.len() != manifest.tables.len() {
        bad.push(format!(
            "{} tables counted, {} in the snapshot",
            found.len(),
            manifest.tables.len()
        ));
    }
    if !bad.is_empty() {
        return Err(EngineError::Source(format!(
            "restore verification failed:\n  {}",
            bad.join("\n  ")
        )));
    }
    Ok(manifest
        .tables
        .iter()
        .map(|t| t.name.clone())
        .zip(found.iter().copied())
        .collect())
}
