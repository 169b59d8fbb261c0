//! What every database restore shares: a stored file streamed into a
//! loader's standard input (psql, mariadb) with its SHA-256 checked against
//! the manifest before the loader may commit, and the report of what was
//! restored and verified.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::ChildStdin;

use holdfast_engine::blob_reader::BlobReader;
use holdfast_engine::repository::Repository;
use holdfast_engine::{EngineError, Result};
use holdfast_format::Id;
use holdfast_format::snapshot::Snapshot;
use holdfast_format::tree::{Node, NodeType, Tree};
use sha2::{Digest, Sha256};

use crate::command::Spawned;
use crate::progress::Progress;
use holdfast_format::manifest::Manifest;

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

/// One piece of what a loader is fed.
pub enum FeedPart {
    /// Literal text (SQL between the stored files).
    Text(String),
    /// A file of the snapshot, checked against the manifest's SHA-256.
    File(String),
    /// A file of the snapshot turned into the loader's input by `convert`
    /// (CSV into INSERT statements); the file is checked all the same.
    Converted { file: String, convert: Converter },
}

/// Reads a stored file, writes what the loader should get.
pub type Converter = Box<dyn Fn(&mut dyn BufRead, &mut dyn Write) -> std::io::Result<()>>;

/// Stream `parts` in order into `stdin` of `loader`: text as is, files from
/// the snapshot, each checked against the manifest (size and SHA-256)
/// before the next part. Any mismatch or failure kills the loader before
/// its input ends, so a single-transaction load rolls back.
pub fn feed_parts(
    repo: &Repository,
    snapshot: &Snapshot,
    manifest: &Manifest,
    parts: &[FeedPart],
    loader: Spawned,
    mut stdin: ChildStdin,
    progress: &Progress,
) -> Result<u64> {
    let what = loader.what.clone();
    let root = repo.load_tree(&snapshot.tree)?;
    let mut fed = 0u64;
    // Err(Ok(e)): our failure; Err(Err(e)): the stored data is wrong.
    let outcome: std::result::Result<(), std::result::Result<EngineError, EngineError>> = (|| {
        for part in parts {
            match part {
                FeedPart::Text(t) => {
                    stdin
                        .write_all(t.as_bytes())
                        .map_err(|e| Ok(EngineError::io(format!("writing to {what}"), e)))?;
                    fed += t.len() as u64;
                }
                FeedPart::File(file) | FeedPart::Converted { file, .. } => {
                    let expected = manifest.file(file).ok_or_else(|| {
                        Err(EngineError::Invalid(format!(
                            "the manifest does not list {file}"
                        )))
                    })?;
                    let node = root
                        .nodes
                        .iter()
                        .find(|n| n.name == file.as_bytes() && n.node_type == NodeType::File)
                        .cloned()
                        .or(stored_below(repo, &root, file).map_err(Ok)?)
                        .ok_or_else(|| {
                            Err(EngineError::Invalid(format!(
                                "{file} is missing from the snapshot"
                            )))
                        })?;
                    let content = node.content.unwrap_or_default();
                    let mut reader = CheckedRead {
                        inner: BlobReader::new(repo, &content),
                        hasher: Sha256::new(),
                        size: 0,
                        progress,
                    };
                    let copied = match part {
                        FeedPart::Converted { convert, .. } => {
                            let mut buffered = BufReader::with_capacity(1 << 20, &mut reader);
                            convert(&mut buffered, &mut stdin).and_then(|()| {
                                std::io::copy(&mut buffered, &mut std::io::sink()).map(drop)
                            })
                        }
                        _ => std::io::copy(&mut reader, &mut stdin).map(drop),
                    };
                    copied.map_err(|e| {
                        Ok(EngineError::io(format!("loading {file} into {what}"), e))
                    })?;
                    fed += reader.size;
                    let digest = Id(reader.hasher.finalize().into());
                    if digest.to_hex() != expected.sha256 || reader.size != expected.size {
                        return Err(Err(EngineError::Invalid(format!(
                            "{file} read back from the repository does not match the manifest \
                             (SHA-256 {}, expected {}); the restore was rolled back",
                            digest.to_hex(),
                            expected.sha256
                        ))));
                    }
                    progress.file_done();
                }
            }
        }
        Ok(())
    })();
    match outcome {
        Ok(()) => {
            drop(stdin);
            loader.finish()?;
            Ok(fed)
        }
        Err(Err(mismatch)) => {
            loader.kill();
            Err(mismatch)
        }
        Err(Ok(e)) => {
            drop(stdin);
            // The loader stopping early (a failed statement) shows as a
            // broken pipe on our side: its own error is the one to report.
            match loader.wait()? {
                (status, tail) if !status.success() => Err(EngineError::source(format!(
                    "the restore failed and was rolled back: {what} {}:\n{tail}",
                    crate::command::how_it_ended(status)
                ))),
                _ => Err(e),
            }
        }
    }
}

/// Hashes and counts what is read from a stored file, and reports progress.
struct CheckedRead<'p, R> {
    inner: R,
    hasher: Sha256,
    size: u64,
    progress: &'p Progress,
}

impl<R: Read> Read for CheckedRead<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if holdfast_engine::cancel::check().is_err() {
            return Err(std::io::Error::other("interrupted"));
        }
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        self.progress.add_bytes(n as u64);
        Ok(n)
    }
}

/// A file in a subdirectory of the snapshot root (`tables/x.csv`).
fn stored_below(repo: &Repository, root: &Tree, path: &str) -> Result<Option<Node>> {
    let Some((dir, name)) = path.split_once('/') else {
        return Ok(None);
    };
    let Some(sub) = root
        .nodes
        .iter()
        .find(|n| n.name == dir.as_bytes() && n.node_type == NodeType::Dir)
        .and_then(|n| n.subtree)
    else {
        return Ok(None);
    };
    let tree = repo.load_tree(&sub)?;
    stored_below(repo, &tree, name).map(|found| {
        found.or_else(|| {
            tree.nodes
                .iter()
                .find(|n| n.name == name.as_bytes() && n.node_type == NodeType::File)
                .cloned()
        })
    })
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
        return Err(EngineError::source(format!(
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
