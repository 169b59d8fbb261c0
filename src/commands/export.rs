//! `holdfast export`: a snapshot as standard files (tar, zip, SQL, JSON
//! Lines) that open without holdfast, with a manifest of checksums beside
//! it; `export --verify FILE` checks such a file later. A tables-mode
//! database snapshot exported as zip becomes the portable bundle (CSV,
//! JSON, an Excel workbook and a README in one zip).

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use holdfast_engine::snapshots;
use holdfast_export::export::{ExportOptions, ExportRequest, default_format, export_snapshot};
use holdfast_export::export_manifest::{ExportManifest, sidecar_path};
use holdfast_export::format::ExportFormat;
use holdfast_export::verify::verify_export;
use serde_json::json;

use super::FilterArgs;
use crate::global::GlobalOpts;
use crate::ui::{Ui, fmt_bytes, fmt_duration};

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Snapshot id, unique id prefix, or "latest"
    #[arg(required_unless_present = "verify")]
    pub snapshot: Option<String>,
    /// tar, tar.gz, tar.zst, zip (any snapshot); sql, sql.gz, sql.zst (database
    /// dumps); jsonl, jsonl.gz, jsonl.zst (event streams). zip of a tables-mode
    /// database snapshot writes the portable bundle: each table as CSV and
    /// JSON, an Excel workbook, a README and a checksum manifest. Default: from
    /// the output file's extension, else sql for dumps, jsonl for event
    /// streams, the zip bundle for tables-mode snapshots, tar for the rest
    #[arg(long, short = 'f')]
    pub format: Option<ExportFormat>,
    /// Write to FILE (atomically, with FILE.manifest.json beside it), or "-"
    /// for standard output
    #[arg(long, short = 'o', value_name = "FILE|-")]
    pub output: Option<PathBuf>,
    /// Export only this directory of the snapshot (tar and zip)
    #[arg(long, value_name = "DIR")]
    pub subtree: Option<String>,
    /// Where to write the export manifest (default: FILE.manifest.json; with
    /// standard output, none unless given). With --verify: where to read it
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// Check an export against its manifest instead of exporting
    #[arg(long, value_name = "FILE", conflicts_with_all = ["snapshot", "format", "output", "subtree"])]
    pub verify: Option<PathBuf>,
    #[command(flatten)]
    pub filter: FilterArgs,
}

pub fn run(g: &GlobalOpts, ui: &Arc<Ui>, a: &ExportArgs) -> Result<u8> {
    if let Some(file) = &a.verify {
        return verify(ui, file, a.manifest.as_deref());
    }
    let to_stdout = a.output.as_deref().is_none_or(|p| p == Path::new("-"));
    if to_stdout && std::io::stdout().is_terminal() {
        bail!(
            "refusing to write an export to a terminal: give -o FILE, or redirect standard output"
        );
    }
    let repo = g.open()?;
    let _lock = g.lock(&repo, false, ui)?;
    let wanted = a
        .snapshot
        .as_deref()
        .expect("clap requires it without --verify");
    let (id, snap) = snapshots::find(&repo, wanted, &a.filter.filter())?;
    let format = match (a.format, &a.output) {
        (Some(f), _) => f,
        (None, Some(p)) if !to_stdout => match ExportFormat::from_file_name(&p.to_string_lossy()) {
            Some(f) => f,
            None => default_format(holdfast_engine::manifest::load(&repo, &snap)?.as_ref()),
        },
        _ => default_format(holdfast_engine::manifest::load(&repo, &snap)?.as_ref()),
    };
    let started = Instant::now();
    // A bundle's workbook keeps temp files as large as its sheets: next to
    // the output, on the disk that has room for the export, rather than in
    // a temp dir that may be a small RAM disk.
    let options = ExportOptions {
        temp_dir: a
            .output
            .as_deref()
            .filter(|_| !to_stdout)
            .map(|p| match p.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                _ => PathBuf::from("."),
            }),
    };

    let request = |artifact_name| ExportRequest {
        snapshot_id: &id,
        snapshot: &snap,
        format,
        subpath: a.subtree.as_deref(),
        artifact_name,
        options: &options,
    };
    let (manifest, written_to, manifest_path) = if to_stdout {
        let out = BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
        let name = format!("{}.{}", id.short(), format.extension());
        let (mut out, m) = export_snapshot(&repo, &request(&name), out)?;
        out.flush().context("writing to standard output")?;
        if let Some(mp) = &a.manifest {
            write_manifest(mp, &m)?;
        }
        (m, "standard output".to_string(), a.manifest.clone())
    } else {
        let path = a.output.clone().expect("not stdout");
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| format!("export.{}", format.extension()));
        let partial = partial_path(&path);
        let file =
            File::create(&partial).with_context(|| format!("creating {}", partial.display()))?;
        let out = BufWriter::with_capacity(1 << 20, file);
        let result = export_snapshot(&repo, &request(&name), out)
            .map_err(anyhow::Error::from)
            .and_then(|(out, m)| {
                let file = out.into_inner().map_err(|e| e.into_error())?;
                file.sync_all()?;
                Ok(m)
            });
        let m = match result {
            Ok(m) => m,
            Err(e) => {
                let _ = std::fs::remove_file(&partial);
                return Err(e.context(format!(
                    "exporting to {}; nothing was written",
                    path.display()
                )));
            }
        };
        std::fs::rename(&partial, &path)
            .with_context(|| format!("renaming {} to {}", partial.display(), path.display()))?;
        let mp = a.manifest.clone().unwrap_or_else(|| sidecar_path(&path));
        write_manifest(&mp, &m)?;
        (m, path.display().to_string(), Some(mp))
    };

    for s in &manifest.skipped {
        ui.warn(&format!("left out of the export: {s}"));
    }
    for w in &manifest.warnings {
        ui.warn(w);
    }
    let took = started.elapsed();
    let summary = json!({
        "message_type": "summary",
        "snapshot_id": id.to_hex(),
        "format": format.extension(),
        "output": written_to,
        "bytes": manifest.artifact.size,
        "sha256": manifest.artifact.sha256,
        "files": manifest.files.len(),
        "skipped": manifest.skipped.len(),
        "warnings": manifest.warnings,
        "manifest": manifest_path.as_ref().map(|p| p.display().to_string()),
        "total_duration": took.as_secs_f64(),
    });
    let line = format!(
        "exported snapshot {} as {}: {} files, {} to {} in {}{}",
        id.short(),
        format,
        manifest.files.len(),
        fmt_bytes(manifest.artifact.size),
        written_to,
        fmt_duration(took),
        manifest_path
            .map(|p| format!("; manifest {}", p.display()))
            .unwrap_or_default()
    );
    if to_stdout {
        // Standard output carries the artifact: report on stderr.
        if ui.json {
            ui.stderr_json(&summary);
        } else {
            ui.notice(&line);
        }
    } else {
        ui.json_line(&summary);
        ui.print(&line);
    }
    Ok(crate::exit::OK)
}

/// `shop.sql.gz` → `shop.sql.gz.partial`: where an export is written until
/// it is complete, so a failed export never leaves a file that looks whole.
fn partial_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".partial");
    PathBuf::from(s)
}

fn write_manifest(path: &Path, m: &ExportManifest) -> Result<()> {
    let partial = partial_path(path);
    let mut text = serde_json::to_vec_pretty(m)?;
    text.push(b'\n');
    std::fs::write(&partial, &text).with_context(|| format!("writing {}", partial.display()))?;
    std::fs::rename(&partial, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn verify(ui: &Ui, file: &Path, manifest: Option<&Path>) -> Result<u8> {
    let started = Instant::now();
    let r = verify_export(file, manifest)?;
    ui.json_line(&json!({
        "message_type": "summary",
        "artifact": r.artifact.display().to_string(),
        "manifest": r.manifest.display().to_string(),
        "format": r.format.extension(),
        "bundle": r.bundle,
        "files_checked": r.files_checked,
        "bytes_checked": r.bytes_checked,
        "problems": r.problems,
        "ok": r.ok(),
    }));
    if !r.ok() {
        for p in &r.problems {
            ui.warn(p);
        }
        bail!(
            "{} does not match its manifest {}: {} problem(s)",
            file.display(),
            r.manifest.display(),
            r.problems.len()
        );
    }
    ui.print(&format!(
        "{} is intact: {} files, {} checked against {}{} in {}",
        file.display(),
        r.files_checked,
        fmt_bytes(r.bytes_checked),
        r.manifest.display(),
        if r.bundle && r.manifest != file.join("manifest.json") {
            " and the bundle's own manifest.json"
        } else {
            ""
        },
        fmt_duration(started.elapsed())
    ));
    Ok(crate::exit::OK)
}
