//! `holdfast export --verify FILE`: recompute what the export manifest
//! says about an artifact — its own size and SHA-256, and the SHA-256 of
//! every file inside it — reading the artifact with the format's own
//! decoder, so a pass also proves the file opens.
//!
//! A bundle (a zip whose root `manifest.json` has format
//! `holdfast-bundle/1`) carries its own checklist: every file it lists is
//! checked too, and a bundle verifies even without its sidecar manifest
//! (a bundle is often sent on alone).

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use holdfast_engine::{EngineError, Result};
use holdfast_format::Id;
use holdfast_format::manifest::ManifestFile;
use serde::Deserialize;

use crate::bundle_manifest::{BUNDLE_FORMAT, BUNDLE_MANIFEST};
use crate::digest::hash_reader;
use crate::export_manifest::{EXPORT_MANIFEST_FORMAT, ExportManifest, sidecar_path};
use crate::format::ExportFormat;

/// What a verification found. `problems` is empty when the export is intact.
#[derive(Debug)]
pub struct VerifyReport {
    pub artifact: PathBuf,
    /// The export manifest checked against; for a bundle without its
    /// sidecar, the bundle's own `manifest.json` (named inside the zip).
    pub manifest: PathBuf,
    pub format: ExportFormat,
    /// True when the artifact is a bundle whose own manifest was checked.
    pub bundle: bool,
    pub files_checked: usize,
    pub bytes_checked: u64,
    pub problems: Vec<String>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The part of a bundle's `manifest.json` that verification reads; the
/// rest is for people and other software.
#[derive(Deserialize)]
struct BundleChecklist {
    format: String,
    files: Vec<ManifestFile>,
}

/// A bundle manifest is a few records per table; a larger file is not one.
const MAX_BUNDLE_MANIFEST: u64 = 64 << 20;

fn open(path: &Path) -> Result<BufReader<File>> {
    File::open(path)
        .map(|f| BufReader::with_capacity(1 << 20, f))
        .map_err(|e| EngineError::io(format!("opening {}", path.display()), e))
}

/// The bundle checklist at the root of the zip `archive`, if it is a
/// bundle.
fn bundle_checklist<R: io::Read + io::Seek>(
    archive: &mut zip::ZipArchive<R>,
) -> Option<BundleChecklist> {
    let entry = archive.by_name(BUNDLE_MANIFEST).ok()?;
    if entry.size() > MAX_BUNDLE_MANIFEST {
        return None;
    }
    let mut text = Vec::new();
    entry
        .take(MAX_BUNDLE_MANIFEST)
        .read_to_end(&mut text)
        .ok()?;
    serde_json::from_slice::<BundleChecklist>(&text)
        .ok()
        .filter(|c| c.format == BUNDLE_FORMAT)
}

/// Files a manifest lists, checked off as they are found.
struct Expected<'m> {
    /// Who says so, for the messages: "the manifest", "the bundle's manifest.json".
    who: &'static str,
    files: HashMap<&'m str, &'m ManifestFile>,
}

impl<'m> Expected<'m> {
    fn new(who: &'static str, files: &'m [ManifestFile]) -> Self {
        Expected {
            who,
            files: files.iter().map(|f| (f.path.as_str(), f)).collect(),
        }
    }

    fn check(&mut self, problems: &mut Vec<String>, path: &str, size: u64, sha: &Id) -> bool {
        let Some(want) = self.files.remove(path) else {
            problems.push(format!("{path}: in the artifact but not in {}", self.who));
            return false;
        };
        if size != want.size || sha.to_hex() != want.sha256 {
            problems.push(format!(
                "{path}: {size} bytes with SHA-256 {}, {} says {} bytes with {}",
                sha.to_hex(),
                self.who,
                want.size,
                want.sha256
            ));
        }
        true
    }

    /// `path` was found but could not be read (already reported): it is
    /// not also missing.
    fn unreadable(&mut self, path: &str) {
        self.files.remove(path);
    }

    fn missing(self, problems: &mut Vec<String>) {
        let mut missing: Vec<&str> = self.files.into_keys().collect();
        missing.sort_unstable();
        for path in missing {
            problems.push(format!("{path}: in {} but not in the artifact", self.who));
        }
    }
}

/// Verify the export at `artifact` against its manifest (by default the
/// sidecar `ARTIFACT.manifest.json`; a bundle without one is checked
/// against its own `manifest.json`).
pub fn verify_export(artifact: &Path, manifest_path: Option<&Path>) -> Result<VerifyReport> {
    let explicit = manifest_path.is_some();
    let manifest_path = manifest_path
        .map(Path::to_path_buf)
        .unwrap_or_else(|| sidecar_path(artifact));
    let text = match std::fs::read(&manifest_path) {
        Ok(t) => Some(t),
        Err(e) if !explicit && e.kind() == io::ErrorKind::NotFound && is_bundle(artifact) => None,
        Err(e) => {
            return Err(EngineError::io(
                format!(
                    "reading the export manifest {} (written beside every export made with -o FILE)",
                    manifest_path.display()
                ),
                e,
            ));
        }
    };
    let Some(text) = text else {
        return verify_bundle_alone(artifact);
    };
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
        bundle: false,
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
    let mut expected = Expected::new("the manifest", &m.files);
    let mut check = |report: &mut VerifyReport, path: String, got: io::Result<(u64, Id)>| match got
    {
        Err(e) => {
            expected.unreadable(&path);
            report.problems.push(format!("{path}: cannot be read: {e}"));
        }
        Ok((size, sha)) => {
            if expected.check(&mut report.problems, &path, size, &sha) {
                report.files_checked += 1;
                report.bytes_checked += size;
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
            let checklist = bundle_checklist(&mut archive);
            let mut in_bundle = checklist
                .as_ref()
                .map(|c| Expected::new("the bundle's manifest.json", &c.files));
            report.bundle = in_bundle.is_some();
            for_each_zip_file(
                &mut archive,
                &mut report.problems,
                &unreadable,
                |problems, path, got| {
                    if let Some(b) = &mut in_bundle
                        && path != BUNDLE_MANIFEST
                    {
                        match &got {
                            Ok((size, sha)) => {
                                b.check(problems, &path, *size, sha);
                            }
                            // Reported once, by the sidecar's check below.
                            Err(_) => b.unreadable(&path),
                        }
                    }
                    (path, got)
                },
            )
            .into_iter()
            .for_each(|(path, got)| check(&mut report, path, got));
            if let Some(b) = in_bundle {
                b.missing(&mut report.problems);
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
    expected.missing(&mut report.problems);
    Ok(report)
}

/// Hash every regular file of a zip, in order, handing each result to
/// `each`; returns what `each` returns, for the caller's own checks.
fn for_each_zip_file<R: io::Read + io::Seek, T>(
    archive: &mut zip::ZipArchive<R>,
    problems: &mut Vec<String>,
    unreadable: &dyn Fn(io::Error) -> String,
    mut each: impl FnMut(&mut Vec<String>, String, io::Result<(u64, Id)>) -> T,
) -> Vec<T> {
    let mut out = Vec::new();
    for i in 0..archive.len() {
        let mut entry = match archive.by_index(i) {
            Ok(e) => e,
            Err(e) => {
                problems.push(unreadable(io::Error::other(e)));
                continue;
            }
        };
        if !entry.is_file() {
            continue;
        }
        let path = match entry.name() {
            Ok(n) => n.into_owned(),
            Err(e) => {
                problems.push(unreadable(io::Error::other(e)));
                continue;
            }
        };
        let got = hash_reader(&mut entry);
        out.push(each(problems, path, got));
    }
    out
}

/// True when `artifact` is a zip with a bundle manifest at its root.
fn is_bundle(artifact: &Path) -> bool {
    open(artifact)
        .ok()
        .and_then(|f| zip::ZipArchive::new(f).ok())
        .and_then(|mut a| bundle_checklist(&mut a))
        .is_some()
}

/// A bundle checked against its own `manifest.json` only (no sidecar).
fn verify_bundle_alone(artifact: &Path) -> Result<VerifyReport> {
    let unreadable = |e: io::Error| format!("{}: not a valid zip file: {e}", artifact.display());
    let mut archive = zip::ZipArchive::new(open(artifact)?)
        .map_err(|e| EngineError::Invalid(unreadable(io::Error::other(e))))?;
    let checklist = bundle_checklist(&mut archive).ok_or_else(|| {
        EngineError::Invalid(format!(
            "{} holds no {BUNDLE_FORMAT} {BUNDLE_MANIFEST}",
            artifact.display()
        ))
    })?;
    let mut report = VerifyReport {
        artifact: artifact.to_path_buf(),
        manifest: PathBuf::from(format!("{}/{BUNDLE_MANIFEST}", artifact.display())),
        format: ExportFormat::Zip,
        bundle: true,
        files_checked: 0,
        bytes_checked: 0,
        problems: Vec::new(),
    };
    let mut expected = Expected::new("the bundle's manifest.json", &checklist.files);
    let mut checked = (0usize, 0u64);
    for_each_zip_file(
        &mut archive,
        &mut report.problems,
        &unreadable,
        |problems, path, got| match got {
            _ if path == BUNDLE_MANIFEST => {}
            Err(e) => {
                expected.unreadable(&path);
                problems.push(format!("{path}: cannot be read: {e}"));
            }
            Ok((size, sha)) => {
                if expected.check(problems, &path, size, &sha) {
                    checked.0 += 1;
                    checked.1 += size;
                }
            }
        },
    );
    (report.files_checked, report.bytes_checked) = checked;
    expected.missing(&mut report.problems);
    Ok(report)
}
