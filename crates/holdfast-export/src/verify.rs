//! `holdfast export --verify FILE`: recompute what the export manifest
//! says about an artifact — its own size and SHA-256, and the SHA-256 of
//! every file inside it — reading the artifact with the format's own
//! decoder, so a pass also proves the file opens.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader};
use std::path::{Path, PathBuf};

use holdfast_engine::{EngineError, Result};
use holdfast_sources::manifest::ManifestFile;

use crate::digest::hash_reader;
use crate::export_manifest::{EXPORT_MANIFEST_FORMAT, ExportManifest, sidecar_path};
use crate::format::ExportFormat;

/// What a verification found. `problems` is empty when the export is intact.
#[derive(Debug)]
pub struct VerifyReport {
    pub artifact: PathBuf,
    pub manifest: PathBuf,
    pub format: ExportFormat,
    pub files_checked: usize,
    pub bytes_checked: u64,
    pub problems: Vec<String>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

fn open(path: &Path) -> Result<BufReader<File>> {
    File::open(path)
        .map(|f| BufReader::with_capacity(1 << 20, f))
        .map_err(|e| EngineError::io(format!("opening {}", path.display()), e))
}

/// Verify the export at `artifact` against its manifest (by default the
/// sidecar `ARTIFACT.manifest.json`).
pub fn verify_export(artifact: &Path, manifest_path: Option<&Path>) -> Result<VerifyReport> {
    let manifest_path = manifest_path
        .map(Path::to_path_buf)
        .unwrap_or_else(|| sidecar_path(artifact));
    let text = std::fs::read(&manifest_path).map_err(|e| {
        EngineError::io(
            format!(
                "reading the export manifest {} (written beside every export made with -o FILE)",
                manifest_path.display()
            ),
            e,
        )
    })?;
    let m: ExportManifest = serde_json::from_slice(&text).map_err(|e| EngineError::Corrupt {
        file: manifest_path.display().to_string(),
        why: format!("not an export manifest: {e}"),
    })?;
    if m.format != EXPORT_MANIFEST_FORMAT {
        return Err(EngineError::Invalid(format!(
            "{} has format {:?}; this holdfast reads {EXPORT_MANIFEST_FORMAT}",
            manifest_path.display(),
            m.format
        )));
    }
    let format: ExportFormat = m.export_format.parse().map_err(EngineError::Invalid)?;
    let mut report = VerifyReport {
        artifact: artifact.to_path_buf(),
        manifest: manifest_path,
        format,
        files_checked: 0,
        bytes_checked: 0,
        problems: Vec::new(),
    };

    // The artifact as a whole.
    let (size, sha256) = hash_reader(open(artifact)?)
        .map_err(|e| EngineError::io(format!("reading {}", artifact.display()), e))?;
    if size != m.artifact.size || sha256.to_hex() != m.artifact.sha256 {
        report.problems.push(format!(
            "{}: {size} bytes with SHA-256 {}, the manifest says {} bytes with {}",
            artifact.display(),
            sha256.to_hex(),
            m.artifact.size,
            m.artifact.sha256
        ));
    }

    // The files inside, through the format's own reader.
    let mut expected: HashMap<&str, &ManifestFile> =
        m.files.iter().map(|f| (f.path.as_str(), f)).collect();
    let mut check =
        |report: &mut VerifyReport, path: String, got: io::Result<(u64, holdfast_format::Id)>| {
            match (got, expected.remove(path.as_str())) {
                (Err(e), _) => report.problems.push(format!("{path}: cannot be read: {e}")),
                (Ok(_), None) => report
                    .problems
                    .push(format!("{path}: in the artifact but not in the manifest")),
                (Ok((size, sha)), Some(want)) => {
                    report.files_checked += 1;
                    report.bytes_checked += size;
                    if size != want.size || sha.to_hex() != want.sha256 {
                        report.problems.push(format!(
                        "{path}: {size} bytes with SHA-256 {}, the manifest says {} bytes with {}",
                        sha.to_hex(),
                        want.size,
                        want.sha256
                    ));
                    }
                }
            }
        };
    let unreadable =
        |e: io::Error| format!("{}: not a valid {format} file: {e}", artifact.display());
    match format {
        ExportFormat::Tar(c) => {
            let reader = c
                .reader(open(artifact)?)
                .map_err(|e| EngineError::Invalid(unreadable(e)))?;
            let mut archive = tar::Archive::new(reader);
            let entries = archive
                .entries()
                .map_err(|e| EngineError::Invalid(unreadable(e)))?;
            for entry in entries {
                let mut entry = match entry {
                    Ok(e) => e,
                    Err(e) => {
                        report.problems.push(unreadable(e));
                        break;
                    }
                };
                if !entry.header().entry_type().is_file() {
                    continue;
                }
                let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
                let got = hash_reader(&mut entry);
                check(&mut report, path, got);
            }
        }
        ExportFormat::Zip => {
            let mut archive = zip::ZipArchive::new(open(artifact)?)
                .map_err(|e| EngineError::Invalid(unreadable(io::Error::other(e))))?;
            for i in 0..archive.len() {
                let mut entry = match archive.by_index(i) {
                    Ok(e) => e,
                    Err(e) => {
                        report.problems.push(unreadable(io::Error::other(e)));
                        continue;
                    }
                };
                if !entry.is_file() {
                    continue;
                }
                let path = match entry.name() {
                    Ok(n) => n.into_owned(),
                    Err(e) => {
                        report.problems.push(unreadable(io::Error::other(e)));
                        continue;
                    }
                };
                let got = hash_reader(&mut entry);
                check(&mut report, path, got);
            }
        }
        ExportFormat::Sql(c) | ExportFormat::Jsonl(c) => {
            let Some(file) = m.files.first() else {
                return Err(EngineError::Invalid(format!(
                    "{} lists no file for a {format} export",
                    report.manifest.display()
                )));
            };
            let got = c.reader(open(artifact)?).and_then(hash_reader);
            check(&mut report, file.path.clone(), got);
        }
    }
    let mut missing: Vec<&str> = expected.into_keys().collect();
    missing.sort_unstable();
    for path in missing {
        report
            .problems
            .push(format!("{path}: in the manifest but not in the artifact"));
    }
    Ok(report)
}
