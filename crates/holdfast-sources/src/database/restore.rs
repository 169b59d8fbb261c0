//! Database restores, written once for every [`Dialect`]: prepare the
//! target, load the whole copy or the tables, count every table's rows
//! against the manifest, commit — or undo. Also the loader plumbing the
//! client-tool dialects share: stored files streamed into a loader's
//! standard input, each checked against the manifest before the loader may
//! commit.

use std::io::{BufRead, BufReader, BufWriter, Read, Write};

use holdfast_engine::manifest::ListedFile;
use holdfast_engine::{EngineError, Result};
use holdfast_format::manifest::{ManifestColumn, ManifestTable};

use super::{Dialect, Stored};
use crate::command::Spawned;
use crate::progress::Progress;

/// Restore the snapshot `from` into the dialect's target: a whole copy
/// (dump or file mode) or a tables-mode snapshot's restorable tables.
pub fn restore(d: &mut dyn Dialect, from: &Stored<'_>, clean: bool) -> Result<RestoreReport> {
    let manifest = from.manifest;
    let (tables, whole): (Vec<ManifestTable>, _) = if manifest.mode == "tables" {
        let tables = manifest.restorable_tables().into_iter().cloned().collect();
        (tables, None)
    } else {
        let file = manifest
            .files
            .first()
            .map(|f| f.path.clone())
            .ok_or_else(|| EngineError::Invalid("the manifest lists no dump file".into()))?;
        (manifest.tables.clone(), Some(file))
    };
    let target = d.prepare(manifest, clean)?;
    let loaded = (|| {
        let bytes = match &whole {
            Some(file) => d.load_whole(from, file)?,
            None => d.load_tables(from, &tables)?,
        };
        let found = d.count_rows(&tables)?;
        let counted = verify_counts(&tables, &found)?;
        d.commit()?;
        Ok((bytes, counted))
    })();
    let (bytes, tables) = loaded.map_err(|e| d.undo(e))?;
    Ok(RestoreReport {
        target: d.display(),
        database: target.database,
        created: target.created,
        bytes,
        tables,
        resumed_after: 0,
    })
}

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

/// Start the loader `cmd` (called `what` in messages) and stream `parts`
/// in order into its standard input: text as is, files from the snapshot,
/// each checked against the manifest (size and SHA-256) before the next
/// part. Any mismatch or failure kills the loader before its input ends,
/// so a single-transaction load rolls back.
pub fn feed_parts(
    cmd: std::process::Command,
    what: &str,
    from: &Stored<'_>,
    parts: &[FeedPart],
) -> Result<u64> {
    let (mut loader, mut stdin) = Spawned::start_feeding(cmd, what)?;
    loader.set_consequence("the restore was rolled back");
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
                    let mut reader = from.open(file).map_err(Err)?;
                    let copied = match part {
                        FeedPart::Converted { convert, .. } => {
                            let mut buffered = BufReader::with_capacity(1 << 20, &mut reader);
                            // a converter writes a row at a time: one pipe
                            // write each cost more than the conversion
                            let mut out = BufWriter::with_capacity(1 << 16, &mut stdin);
                            convert(&mut buffered, &mut out)
                                .and_then(|()| out.flush())
                                .and_then(|()| {
                                    std::io::copy(&mut buffered, &mut std::io::sink()).map(drop)
                                })
                        }
                        _ => std::io::copy(&mut reader, &mut stdin).map(drop),
                    };
                    copied.map_err(|e| match reader.read_failure(e) {
                        Ok(unreadable) => Err(unreadable),
                        Err(e) => Ok(EngineError::io(format!("loading {file} into {what}"), e)),
                    })?;
                    fed += reader.check().map_err(Err)?;
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
        // the stored data is wrong or unreadable: the loader must not
        // commit what it has
        Err(Err(stored)) => {
            loader.kill();
            Err(stored)
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

impl<'a> Stored<'a> {
    /// A file the manifest lists, read with progress and cancellation;
    /// [`Checked::check`] after the last byte.
    pub fn open(&self, path: &str) -> Result<Checked<'a>> {
        Ok(Checked {
            inner: ListedFile::open(self.repo, self.snapshot, self.manifest, path)?,
            progress: self.progress,
            path: path.to_string(),
            unreadable: false,
        })
    }
}

/// A stored file being read back (see [`Stored::open`]).
pub struct Checked<'a> {
    inner: ListedFile<'a>,
    progress: &'a Progress,
    path: String,
    /// A read from the repository failed (a damaged pack, storage down):
    /// the copy's error is about the stored data, not the loader.
    unreadable: bool,
}

impl Checked<'_> {
    /// The error of a copy that stopped with `e`: when reading the stored
    /// file failed, the repository's own error (a damaged pack says which);
    /// `Err(e)` back when it was the writing side.
    pub fn read_failure(
        &self,
        e: std::io::Error,
    ) -> std::result::Result<EngineError, std::io::Error> {
        if !self.unreadable {
            return Err(e);
        }
        if e.get_ref().is_some_and(|inner| inner.is::<EngineError>()) {
            let inner = e.into_inner().expect("checked above");
            return Ok(*inner.downcast::<EngineError>().expect("checked above"));
        }
        Ok(EngineError::io(
            format!("reading {} from the repository", self.path),
            e,
        ))
    }

    /// The bytes read, when they are what the manifest lists; counts the
    /// file as done.
    pub fn check(self) -> Result<u64> {
        let n = self
            .inner
            .check()
            .map_err(|m| EngineError::Invalid(format!("{m}; the restore was rolled back")))?;
        self.progress.file_done();
        Ok(n)
    }
}

impl Read for Checked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if holdfast_engine::cancel::check().is_err() {
            return Err(std::io::Error::other("interrupted"));
        }
        let n = self
            .inner
            .read(buf)
            .inspect_err(|_| self.unreadable = true)?;
        self.progress.add_bytes(n as u64);
        Ok(n)
    }
}

/// Compare row counts found after a restore with the manifest's.
pub fn verify_counts(tables: &[ManifestTable], found: &[u64]) -> Result<Vec<(String, u64)>> {
    let mut bad = Vec::new();
    for (t, &n) in tables.iter().zip(found) {
        if n == u64::MAX {
            bad.push(format!("{}: missing from the restored database", t.name));
        } else if t.rows != n {
            bad.push(format!(
                "{}: {n} rows restored, {} in the snapshot",
                t.name, t.rows
            ));
        }
    }
    if found.len() != tables.len() {
        bad.push(format!(
            "{} tables counted, {} in the snapshot",
            found.len(),
            tables.len()
        ));
    }
    if !bad.is_empty() {
        return Err(EngineError::source(format!(
            "restore verification failed:\n  {}",
            bad.join("\n  ")
        )));
    }
    Ok(tables
        .iter()
        .map(|t| t.name.clone())
        .zip(found.iter().copied())
        .collect())
}

/// The columns a database describes as (name, type) rows.
pub(crate) fn columns_from_rows(rows: Vec<Vec<String>>) -> Vec<ManifestColumn> {
    rows.into_iter()
        .filter_map(|r| {
            let mut it = r.into_iter();
            Some(ManifestColumn {
                name: it.next()?,
                sql_type: it.next()?,
                generated: false,
            })
        })
        .collect()
}

/// Tables counted per statement: a statement opens all of its tables at
/// once, and servers limit open tables.
const COUNT_BATCH: usize = 100;

/// The rows of the tables `names` (quoted for SQL), in order, counted by
/// `query` (`SELECT i, count(*) FROM t UNION ALL …`); `u64::MAX` where a
/// table gave no row.
pub(crate) fn count_rows(
    names: impl ExactSizeIterator<Item = String>,
    query: impl FnOnce(&str) -> Result<Vec<Vec<String>>>,
) -> Result<Vec<u64>> {
    let mut counts = vec![u64::MAX; names.len()];
    if counts.is_empty() {
        return Ok(counts);
    }
    let selects: Vec<String> = names
        .enumerate()
        .map(|(i, name)| format!("SELECT {i}, COUNT(*) FROM {name}"))
        .collect();
    let sql: String = selects
        .chunks(COUNT_BATCH)
        .map(|c| format!("{};\n", c.join(" UNION ALL ")))
        .collect();
    for r in query(&sql)? {
        let (Some(i), Some(c)) = (
            r.first().and_then(|v| v.parse::<usize>().ok()),
            r.get(1).and_then(|v| v.parse::<u64>().ok()),
        ) else {
            return Err(EngineError::source(format!(
                "unexpected row count output {r:?}"
            )));
        };
        if let Some(slot) = counts.get_mut(i) {
            *slot = c;
        }
    }
    Ok(counts)
}
