//! One entry point for every export: pick the writer for the format, check
//! that it fits the snapshot, stream, and describe what was written.

use std::io::{self, Write};
use std::path::PathBuf;

use holdfast_engine::blob_reader::BlobReader;
use holdfast_engine::manifest::root_file;
use holdfast_engine::repository::Repository;
use holdfast_engine::{EngineError, Result};
use holdfast_format::Id;
use holdfast_format::manifest::{Manifest, ManifestFile};
use holdfast_format::snapshot::Snapshot;

use crate::bundle::{BundleOptions, is_bundle_source, write_bundle};
use crate::compression::Compression;
use crate::digest::{HashingReader, HashingWriter};
use crate::export_manifest::{EXPORT_MANIFEST_FORMAT, ExportManifest};
use crate::format::ExportFormat;
use crate::tar_export::write_tar;
use crate::zip_export::write_zip;

/// The format an export of `snapshot` gets when none is named: the SQL of
/// a dump, the events of a stream, the portable bundle (a zip) of a
/// tables-mode database snapshot, a tar of anything else.
pub fn default_format(manifest: Option<&Manifest>) -> ExportFormat {
    match manifest {
        Some(m) if m.mode == "dump" => ExportFormat::Sql(Compression::None),
        m if is_bundle_source(m) => ExportFormat::Zip,
        Some(m) if m.kind == "jsonl" => ExportFormat::Jsonl(Compression::None),
        _ => ExportFormat::Tar(Compression::None),
    }
}

/// Whether `format` fits a snapshot with this manifest (`sql` needs a
/// dump, `jsonl` an event stream; tar and zip fit every snapshot): the
/// error says why not. For callers that answer before they export.
pub fn check_format(format: ExportFormat, manifest: Option<&Manifest>) -> Result<()> {
    single_file(format, manifest).map(drop)
}

/// The snapshot file a single-file format exports, checked against the
/// snapshot's kind.
fn single_file(format: ExportFormat, manifest: Option<&Manifest>) -> Result<Option<&ManifestFile>> {
    let (want_ext, what) = match format {
        ExportFormat::Sql(_) => (".sql", "a database dump"),
        ExportFormat::Jsonl(_) => (".jsonl", "an event stream"),
        _ => return Ok(None),
    };
    let fits = |m: &Manifest| match format {
        ExportFormat::Sql(_) => m.mode == "dump",
        _ => m.kind == "jsonl",
    };
    let Some(m) = manifest.filter(|m| fits(m)) else {
        let is = match manifest {
            None => "files".to_string(),
            Some(m) => format!("a {} {} snapshot", m.kind, m.mode),
        };
        return Err(EngineError::Invalid(format!(
            "--format {format} needs {what} snapshot, and this snapshot holds {is}; \
             use tar, tar.gz, tar.zst or zip"
        )));
    };
    m.files
        .iter()
        .find(|f| f.path.ends_with(want_ext))
        .map(Some)
        .ok_or_else(|| {
            EngineError::Invalid(format!("the snapshot's manifest lists no {want_ext} file"))
        })
}

/// Settings an export rarely needs to change.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// Where a bundle's workbook keeps its temp files (as large as its
    /// sheets' XML): best on the disk the export goes to, since the system
    /// temp dir may be a small RAM disk. Default: the system temp dir.
    pub temp_dir: Option<PathBuf>,
}

/// What to export: one snapshot, or its subtree at `subpath`, in `format`;
/// the export's manifest names the artifact `artifact_name`.
pub struct ExportRequest<'a> {
    pub snapshot_id: &'a Id,
    pub snapshot: &'a Snapshot,
    pub format: ExportFormat,
    pub subpath: Option<&'a str>,
    pub artifact_name: &'a str,
    pub options: &'a ExportOptions,
}

/// Stream what `request` names to `out`. Returns the writer and the
/// export's manifest. A tables-mode database snapshot exported whole as
/// `zip` becomes the portable bundle ([`crate::bundle`]); with a subpath, a
/// plain zip of that directory.
pub fn export_snapshot<W: Write>(
    repo: &Repository,
    request: &ExportRequest,
    out: W,
) -> Result<(W, ExportManifest)> {
    let ExportRequest {
        snapshot_id,
        snapshot,
        format,
        subpath,
        artifact_name,
        options,
    } = *request;
    let manifest = holdfast_engine::manifest::load(repo, snapshot)?;
    let single = single_file(format, manifest.as_ref())?;
    if single.is_some() && subpath.is_some() {
        return Err(EngineError::Invalid(format!(
            "--format {format} exports the whole snapshot; --path applies to tar and zip"
        )));
    }
    // The subtree to export, and its snapshot path.
    let (tree, prefix, dir_node) = match subpath.map(|p| p.trim_end_matches('/')) {
        None | Some("") => (snapshot.tree, "/".to_string(), None),
        Some(p) => {
            let node =
                holdfast_engine::tree_walk::find_node(repo, &snapshot.tree, p.as_bytes())?
                    .ok_or_else(|| EngineError::Invalid(format!("{p} is not in the snapshot")))?;
            let sub = node.subtree.ok_or_else(|| {
                EngineError::Invalid(format!(
                    "{p} is not a directory; use `holdfast dump` for one file"
                ))
            })?;
            let prefix = if p.starts_with('/') {
                p.to_string()
            } else {
                format!("/{p}")
            };
            (sub, prefix, Some(node))
        }
    };

    let hashed = HashingWriter::new(out);
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    let mut warnings = Vec::new();
    let bundle_of = match (&manifest, subpath) {
        (Some(m), None) if format == ExportFormat::Zip && is_bundle_source(Some(m)) => Some(m),
        _ => None,
    };
    let hashed = match format {
        ExportFormat::Zip if let Some(m) = bundle_of => {
            let temp_dir = options.temp_dir.clone().unwrap_or_else(std::env::temp_dir);
            let (w, summary) = write_bundle(
                repo,
                snapshot_id,
                snapshot,
                m,
                &BundleOptions::new(&temp_dir),
                hashed,
            )?;
            files = summary.files;
            warnings = summary.warnings;
            w
        }
        ExportFormat::Tar(c) => {
            let w = c.writer(hashed).map_err(io_err)?;
            let w = write_tar(
                repo,
                &tree,
                prefix.as_bytes(),
                dir_node.as_ref(),
                w,
                &mut files,
            )?;
            w.finish().map_err(io_err)?
        }
        ExportFormat::Zip => {
            let (w, summary) = write_zip(repo, &tree, prefix.as_bytes(), hashed)?;
            files = summary.files;
            skipped = summary.skipped;
            w
        }
        ExportFormat::Sql(c) | ExportFormat::Jsonl(c) => {
            let expected = single.expect("checked above");
            let node = root_file(repo, snapshot, &expected.path)?.ok_or_else(|| {
                EngineError::Invalid(format!("{} is missing from the snapshot", expected.path))
            })?;
            let content = node.content.unwrap_or_default();
            let mut reader = HashingReader::new(BlobReader::new(repo, &content));
            let mut w = c.writer(hashed).map_err(io_err)?;
            io::copy(&mut reader, &mut w)
                .map_err(|e| EngineError::io(format!("exporting {}", expected.path), e))?;
            let (size, sha256) = reader.finish();
            if size != expected.size || sha256.to_hex() != expected.sha256 {
                return Err(EngineError::Corrupt {
                    file: expected.path.clone(),
                    why: format!(
                        "the snapshot's copy ({size} bytes, SHA-256 {}) differs from its manifest \
                         ({} bytes, {})",
                        sha256.to_hex(),
                        expected.size,
                        expected.sha256
                    ),
                });
            }
            files.push(expected.clone());
            w.finish().map_err(io_err)?
        }
    };
    let (out, size, sha256) = hashed.finish();
    let manifest = ExportManifest {
        format: EXPORT_MANIFEST_FORMAT.into(),
        export_format: format.extension(),
        snapshot: snapshot_id.to_hex(),
        paths: snapshot.paths.clone(),
        hostname: snapshot.hostname.clone(),
        snapshot_time: snapshot.time.to_string(),
        created: jiff::Timestamp::now().to_string(),
        artifact: ManifestFile {
            path: artifact_name.to_string(),
            size,
            sha256: sha256.to_hex(),
        },
        files,
        skipped,
        warnings,
    };
    Ok((out, manifest))
}

fn io_err(e: io::Error) -> EngineError {
    EngineError::io("writing the export", e)
}
