//! `backup jsonl+https://…`: GET the endpoint and stream its JSON Lines
//! into the snapshot as `events.jsonl`, validating every line on the way.
//! Only a response that is 2xx, arrives whole and ends on a valid line
//! becomes a snapshot; a dropped connection, a stall, an error status or an
//! invalid line fails the backup and nothing is recorded.
//!
//! The stored file holds the event lines as received, each ending in
//! `\n`, without blank keep-alive lines; its SHA-256 is the stream's hash
//! in the manifest, with the event count and first and last eventId.

use std::io::BufReader;
use std::sync::Arc;
use std::time::Duration;

use holdfast_engine::repository::Repository;
use holdfast_engine::{EngineError, Fault, Result};
use serde_json::json;

use super::events::{EventReader, EventValidator};
use super::{EVENTS_FILE, Endpoint, body_excerpt};
use crate::database::backup::commit_source;
use crate::progress::Progress;
use crate::spec::{BackupReport, BackupSettings};
use holdfast_format::manifest::Manifest;

/// How long the stream may stay silent before the backup fails.
const STALL: Duration = Duration::from_secs(300);

pub struct JsonlBackupOptions {
    /// Refuse events with a higher `schemaVersion`.
    pub max_schema_version: Option<u64>,
}

/// Back up the event stream at `endpoint`.
pub fn backup_jsonl(
    repo: &Arc<Repository>,
    endpoint: &Endpoint,
    jopts: &JsonlBackupOptions,
    opts: BackupSettings,
    progress: &Progress,
) -> Result<BackupReport> {
    let shown = endpoint.display();
    let client = endpoint.client(STALL)?;
    let resp = endpoint
        .request(&client, reqwest::Method::GET)
        .header(
            reqwest::header::ACCEPT,
            "application/x-ndjson, application/jsonl, */*",
        )
        .send()
        .map_err(|e| {
            // not reached, timed out, cut off: the endpoint may be back later
            EngineError::source_transient(format!(
                "{}; no snapshot was written",
                endpoint.describe(e)
            ))
        })?;
    let status = resp.status();
    if !status.is_success() {
        let hint = match status.as_u16() {
            401 | 403 => " (check HOLDFAST_SOURCE_TOKEN or --source-password-file)",
            _ => "",
        };
        let fault = if status.is_server_error() || matches!(status.as_u16(), 408 | 429) {
            Fault::Transient
        } else {
            Fault::Permanent
        };
        return Err(EngineError::source_with(
            fault,
            format!(
                "{shown} answered HTTP {status}{hint}{}; no snapshot was written",
                body_excerpt(endpoint, resp)
            ),
        ));
    }
    let mut writer = opts.writer(repo, progress)?;
    let mut events = EventReader::new(
        BufReader::with_capacity(1 << 20, resp),
        EventValidator::new(jopts.max_schema_version),
    );
    let facts = match writer.add_file(EVENTS_FILE, &mut events) {
        Ok(f) => f,
        Err(e) => {
            // an invalid event is the stream's fault; a read that failed
            // (cut, stalled) is the connection's, and may pass
            let (fault, why) = match &events.failure {
                Some(f) => (Fault::Permanent, format!("{shown}: {f}")),
                None => (Fault::Transient, e.to_string()),
            };
            return Err(EngineError::source_with(
                fault,
                format!("the event stream is not usable: {why}; no snapshot was written"),
            ));
        }
    };
    let stats = events.validator.stats;
    if stats.events == 0 {
        return Err(EngineError::source(format!(
            "{shown} sent no events; no snapshot was written"
        )));
    }

    let extra: serde_json::Map<String, serde_json::Value> = [
        ("events", json!(stats.events)),
        ("first_event_id", json!(stats.first_event_id)),
        ("last_event_id", json!(stats.last_event_id)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let mut manifest = Manifest::new("jsonl", "events", shown.clone());
    manifest.add_file(EVENTS_FILE, facts.size, &facts.sha256);
    manifest.extra.extend(extra.clone());
    manifest
        .extra
        .insert("schema_versions".into(), json!(stats.schema_versions));
    if let Some(max) = jopts.max_schema_version {
        manifest
            .extra
            .insert("max_schema_version".into(), json!(max));
    }
    commit_source(
        writer,
        manifest,
        opts.meta,
        Some(EVENTS_FILE),
        extra,
        Vec::new(),
    )
}
