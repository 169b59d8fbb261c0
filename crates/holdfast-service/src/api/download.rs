//! `GET /api/v1/backups/{id}/file?format=…`: a backup as a portable file
//! (tar, tar.gz, tar.zst, zip, sql, sql.gz, sql.zst, jsonl — the default
//! fits the source), streamed as it is produced: the export runs on a
//! blocking thread and hands 256 KiB pieces through a bounded channel, so
//! memory stays bounded whatever the backup's size. The download is
//! audited (`backup_downloaded`, with the actor) before the first byte.

use std::io::Write;

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use holdfast_catalog::audit::NewEvent;
use holdfast_catalog::tokens::Role;
use holdfast_engine::repository::Repository;
use holdfast_engine::snapshots::{self, SnapshotFilter};
use holdfast_export::export::{
    ExportOptions, ExportRequest, check_format, default_format, export_snapshot,
};
use holdfast_export::format::ExportFormat;
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::AppState;
use crate::auth::Caller;
use crate::i18n::Msg;
use crate::problem::{ApiError, query_rejection};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileQuery {
    format: Option<String>,
}

/// Sends what the export writes into the response body.
struct ChannelWriter(mpsc::Sender<Result<Bytes, std::io::Error>>);

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away")
            })?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Letters, digits and `-_.` only: safe in a header and as a file name.
fn file_stem(parts: &[&str]) -> String {
    parts
        .iter()
        .map(|p| {
            p.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                        c
                    } else {
                        '_'
                    }
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("-")
}

pub async fn download(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    q: Result<Query<FileQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(query_rejection)?;
    let b = s.catalog.backup(&id).await?;
    caller.tenant(&b.tenant_id, Role::Operator, "backup")?;
    let wanted: Option<ExportFormat> = q
        .format
        .as_deref()
        .map(|f| {
            f.parse()
                .map_err(|e: String| ApiError::invalid("format", e))
        })
        .transpose()?;
    let snapshot_id = match (b.status.as_str(), &b.snapshot_id) {
        ("done", Some(sid)) if !sid.is_empty() => sid.clone(),
        _ => {
            return Err(ApiError::Conflict(
                Msg::new("msg.conflict.download")
                    .with("id", &id)
                    .with("status", &b.status),
            ));
        }
    };
    let tenant = s.catalog.tenant(&b.tenant_id).await?;
    let password = s.catalog.tenant_password(&b.tenant_id).await?;
    // open the repository and choose the format before answering
    let at =
        crate::repos::RepoAt::of_tenant(&s.config, &s.catalog, &b.tenant_id, &b.repository).await?;
    let prepared = tokio::task::spawn_blocking(move || {
        let backend = at.backend()?;
        let repo = Repository::open(backend, password.as_bytes())?;
        let (sid, snap) = snapshots::find(&repo, &snapshot_id, &SnapshotFilter::default())?;
        let manifest = holdfast_engine::manifest::load(&repo, &snap)?;
        let format = wanted.unwrap_or_else(|| default_format(manifest.as_ref()));
        // a format that does not fit answers 422 now, not 200 and a cut stream
        let fits = check_format(format, manifest.as_ref()).map_err(|e| match e {
            holdfast_engine::EngineError::Invalid(m) => m.replace("--format", "format"),
            other => other.to_string(),
        });
        Ok::<_, holdfast_engine::EngineError>(fits.map(|()| (repo, sid, snap, format)))
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?
    .map_err(|e| ApiError::Unavailable(Msg::new("msg.unavailable.read_backup").with("error", e)))?
    .map_err(|m| ApiError::invalid("format", m))?;
    let (repo, sid, snap, format) = prepared;
    let started = b.started_at.as_deref().unwrap_or("").replace(':', "");
    let name = format!(
        "{}.{}",
        file_stem(&[
            &tenant.name,
            &b.source_name,
            started.get(..15).unwrap_or("")
        ]),
        format.extension()
    );
    s.catalog
        .record_event(NewEvent {
            actor: &caller.actor(),
            tenant_id: Some(&b.tenant_id),
            event: "backup_downloaded",
            subject: Some(&id),
            metadata: serde_json::json!({"format": format.to_string(), "file": name, "snapshot_id": sid.to_string()}),
        })
        .await?;
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    let artifact = name.clone();
    tokio::task::spawn_blocking(move || {
        let out = std::io::BufWriter::with_capacity(256 * 1024, ChannelWriter(tx.clone()));
        let request = ExportRequest {
            snapshot_id: &sid,
            snapshot: &snap,
            format,
            subpath: None,
            artifact_name: &artifact,
            options: &ExportOptions::default(),
        };
        let r = export_snapshot(&repo, &request, out).and_then(|(mut out, _)| {
            out.flush()
                .map_err(|e| holdfast_engine::EngineError::io("sending", e))
        });
        if let Err(e) = r {
            // the client sees the connection end early, not a complete file;
            // the operator sees why in the log
            crate::worker::log(&format!("download of {artifact} stopped: {e}"));
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Ok((
        [
            (header::CONTENT_TYPE, content_type(format).to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

fn content_type(f: ExportFormat) -> &'static str {
    let ext = f.extension();
    if ext.ends_with(".gz") {
        "application/gzip"
    } else if ext.ends_with(".zst") {
        "application/zstd"
    } else if ext == "zip" {
        "application/zip"
    } else if ext == "tar" {
        "application/x-tar"
    } else if ext == "sql" {
        "application/sql"
    } else if ext == "jsonl" {
        "application/x-ndjson"
    } else {
        "application/octet-stream"
    }
}
