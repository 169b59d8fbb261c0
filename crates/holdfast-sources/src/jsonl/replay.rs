//! `restore SNAPSHOT --to jsonl+https://…`: POST the stored events to an
//! ingest endpoint in their original order, in batches of JSON Lines.
//! Delivery is at least once and idempotent by design: every event keeps
//! its `eventId`, the receiver's key, and every batch carries an
//! `Idempotency-Key` (the SHA-256 of its body), so a batch sent twice
//! changes nothing.
//!
//! Progress is saved after every acknowledged batch in a small state file
//! (in holdfast's cache directory), so an interrupted replay — a crash, a
//! receiver that stays down — resumes after the last acknowledged batch
//! when the same command runs again. Transient failures (connection
//! errors, 408, 429, 5xx) are retried with backoff; other 4xx stop the
//! replay at once.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::Duration;

use holdfast_engine::blob_reader::BlobReader;
use holdfast_engine::repository::Repository;
use holdfast_engine::{EngineError, Fault, Result};
use holdfast_format::Id;
use holdfast_format::snapshot::Snapshot;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{EVENTS_FILE, Endpoint, body_excerpt};
use crate::database::restore::RestoreReport;
use crate::progress::Progress;
use holdfast_engine::manifest::{HashingReader, root_file};
use holdfast_format::manifest::Manifest;

pub struct ReplayOptions {
    /// Events per POST.
    pub batch_events: usize,
    /// Bytes per POST (a batch closes at whichever limit comes first).
    pub batch_bytes: usize,
    /// Attempts per batch for transient failures.
    pub attempts: u32,
    /// The first retry's delay; doubled each time.
    pub backoff: Duration,
    /// Where replay progress is kept.
    pub state_dir: PathBuf,
}

impl ReplayOptions {
    pub fn new(state_dir: PathBuf) -> Self {
        ReplayOptions {
            batch_events: 500,
            batch_bytes: 4 << 20,
            attempts: 5,
            backoff: Duration::from_millis(500),
            state_dir,
        }
    }
}

/// What a replay has delivered so far, saved after every batch.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct ReplayState {
    snapshot: String,
    target: String,
    /// Events acknowledged by the receiver, from the start.
    acknowledged: u64,
    last_event_id: Option<String>,
    updated: String,
}

fn state_path(dir: &Path, snapshot: &Id, target_url: &str) -> PathBuf {
    let key = Id(Sha256::digest(target_url.as_bytes()).into()).to_hex();
    dir.join(format!("{}-{}.json", snapshot.to_hex(), &key[..16]))
}

fn load_state(path: &Path) -> Result<Option<ReplayState>> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| EngineError::Corrupt {
                file: path.display().to_string(),
                why: format!("not a replay state file: {e}; delete it to start the replay over"),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(EngineError::io(format!("reading {}", path.display()), e)),
    }
}

fn save_state(path: &Path, s: &ReplayState) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| EngineError::io(format!("creating {}", dir.display()), e))?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(s).unwrap_or_default())
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| EngineError::io(format!("saving replay progress to {}", path.display()), e))
}

enum Sent {
    Ok,
    Retry(String),
    Fatal(String),
}

/// Replay an event-stream snapshot into `endpoint`.
pub fn replay_events(
    repo: &Repository,
    snapshot_id: &Id,
    snapshot: &Snapshot,
    manifest: &Manifest,
    endpoint: &Endpoint,
    opts: &ReplayOptions,
    progress: &Progress,
) -> Result<RestoreReport> {
    let shown = endpoint.display();
    let expected = manifest
        .file(EVENTS_FILE)
        .ok_or_else(|| EngineError::Invalid(format!("the manifest does not list {EVENTS_FILE}")))?;
    let total = manifest
        .extra
        .get("events")
        .and_then(|v| v.as_u64())
        .unwrap_or(0);
    let node = root_file(repo, snapshot, EVENTS_FILE)?.ok_or_else(|| {
        EngineError::Invalid(format!("{EVENTS_FILE} is missing from the snapshot"))
    })?;
    let content = node.content.unwrap_or_default();

    let state_file = state_path(&opts.state_dir, snapshot_id, &endpoint.address.url);
    let mut state = match load_state(&state_file)? {
        Some(s) => s,
        None => ReplayState {
            snapshot: snapshot_id.to_hex(),
            target: shown.clone(),
            acknowledged: 0,
            last_event_id: None,
            updated: jiff::Timestamp::now().to_string(),
        },
    };
    let resumed_at = state.acknowledged;

    let client = endpoint.client(Duration::from_secs(120))?;
    let mut reader =
        BufReader::with_capacity(1 << 20, HashingReader::new(BlobReader::new(repo, &content)));
    let mut line = Vec::new();
    let mut index = 0u64; // events read so far
    let mut batch: Vec<u8> = Vec::new();
    let mut batch_events = 0usize;
    let mut batch_last_id: Option<String> = None;
    let mut bytes_sent = 0u64;
    loop {
        holdfast_engine::cancel::check()?;
        line.clear();
        let n = reader.read_until(b'\n', &mut line).map_err(|e| {
            EngineError::io(format!("reading {EVENTS_FILE} from the repository"), e)
        })?;
        let at_end = n == 0;
        if !at_end {
            index += 1;
            if index <= state.acknowledged {
                // Delivered by an earlier run; check we are where it stopped.
                if index == state.acknowledged {
                    let id = event_id_of(&line);
                    if state.last_event_id.is_some() && id != state.last_event_id {
                        return Err(EngineError::Invalid(format!(
                            "the replay state {} does not match this snapshot (event {index} is {:?}, \
                             the state says {:?}); delete it to start over",
                            state_file.display(),
                            id,
                            state.last_event_id
                        )));
                    }
                }
                continue;
            }
            batch.extend_from_slice(&line);
            batch_events += 1;
            batch_last_id = event_id_of(&line);
        }
        let full = batch_events >= opts.batch_events || batch.len() >= opts.batch_bytes;
        if batch_events > 0 && (full || at_end) {
            post_batch(&client, endpoint, &batch, opts).map_err(|(fault, why)| {
                EngineError::source_with(fault, format!(
                    "{why}; {} of {total} events are delivered to {shown}. Run the same command \
                     again to resume after the last acknowledged batch",
                    state.acknowledged
                ))
            })?;
            state.acknowledged += batch_events as u64;
            state.last_event_id = batch_last_id.take();
            state.updated = jiff::Timestamp::now().to_string();
            save_state(&state_file, &state)?;
            bytes_sent += batch.len() as u64;
            progress.add_bytes(batch.len() as u64);
            batch.clear();
            batch_events = 0;
        }
        if at_end {
            break;
        }
    }
    let (size, sha) = reader.into_inner().finish();
    if size != expected.size || sha.to_hex() != expected.sha256 {
        return Err(EngineError::Corrupt {
            file: EVENTS_FILE.into(),
            why: format!(
                "read back as {size} bytes with SHA-256 {}, the manifest says {} bytes with {}",
                sha.to_hex(),
                expected.size,
                expected.sha256
            ),
        });
    }
    if index != total || state.acknowledged != total {
        return Err(EngineError::source(format!(
            "replay verification failed: {} events acknowledged, {index} stored, {total} in the manifest",
            state.acknowledged
        )));
    }
    let _ = std::fs::remove_file(&state_file);
    progress.file_done();
    Ok(RestoreReport {
        target: shown,
        database: EVENTS_FILE.into(),
        created: false,
        bytes: bytes_sent,
        tables: vec![("events".to_string(), total)],
        resumed_after: resumed_at,
    })
}

fn event_id_of(line: &[u8]) -> Option<String> {
    let v: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(line).ok()?;
    super::events::event_id(&v).ok()
}

/// POST one batch, retrying transient failures with doubling delays.
fn post_batch(
    client: &reqwest::blocking::Client,
    endpoint: &Endpoint,
    body: &[u8],
    opts: &ReplayOptions,
) -> std::result::Result<(), (Fault, String)> {
    let key = Id(Sha256::digest(body).into()).to_hex();
    let mut delay = opts.backoff;
    let mut last = String::new();
    for attempt in 1..=opts.attempts.max(1) {
        let sent = match endpoint
            .request(client, reqwest::Method::POST)
            .header(reqwest::header::CONTENT_TYPE, "application/x-ndjson")
            .header("Idempotency-Key", &key)
            .body(body.to_vec())
            .send()
        {
            Err(e) => Sent::Retry(endpoint.describe(e)),
            Ok(resp) => {
                let status = resp.status();
                if status.is_success() {
                    Sent::Ok
                } else if status.is_server_error() || matches!(status.as_u16(), 408 | 429) {
                    Sent::Retry(format!(
                        "{} answered HTTP {status}{}",
                        endpoint.display(),
                        body_excerpt(endpoint, resp)
                    ))
                } else {
                    Sent::Fatal(format!(
                        "{} refused a batch with HTTP {status}{}",
                        endpoint.display(),
                        body_excerpt(endpoint, resp)
                    ))
                }
            }
        };
        match sent {
            Sent::Ok => return Ok(()),
            Sent::Fatal(why) => return Err((Fault::Permanent, why)),
            Sent::Retry(why) => {
                last = format!("{why} (attempt {attempt} of {})", opts.attempts.max(1));
                if attempt < opts.attempts {
                    std::thread::sleep(delay);
                    delay *= 2;
                }
            }
        }
    }
    // every attempt met a server error or a connection failure
    Err((Fault::Transient, last))
}
