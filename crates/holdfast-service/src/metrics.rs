//! `/metrics` in Prometheus' text format. What describes the catalog's
//! state (runs by status, queue depth, the oldest running job, the last
//! success per source) is read from the catalog at scrape time, so it is
//! right after a restart and the same on every node; what counts this
//! node's work (run durations, bytes read and added) is kept in process,
//! as counters that start again at zero when the process does.

use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use holdfast_catalog::clock;

/// Upper bounds of the duration histogram, in seconds.
const BUCKETS: &[f64] = &[1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 14400.0];

#[derive(Default)]
pub struct Metrics {
    durations: Mutex<Histogram>,
    bytes_read: AtomicU64,
    bytes_added: AtomicU64,
}

#[derive(Default)]
struct Histogram {
    /// (kind=done|failed) → per-bucket counts, sum, count
    by_outcome: std::collections::BTreeMap<String, (Vec<u64>, f64, u64)>,
}

impl Metrics {
    /// A run ended after `seconds`.
    pub fn run_finished(&self, outcome: &str, seconds: f64, read: u64, added: u64) {
        let mut h = self.durations.lock().expect("not poisoned");
        let e = h
            .by_outcome
            .entry(outcome.to_string())
            .or_insert_with(|| (vec![0; BUCKETS.len()], 0.0, 0));
        for (i, le) in BUCKETS.iter().enumerate() {
            if seconds <= *le {
                e.0[i] += 1;
            }
        }
        e.1 += seconds;
        e.2 += 1;
        self.bytes_read.fetch_add(read, Ordering::Relaxed);
        self.bytes_added.fetch_add(added, Ordering::Relaxed);
    }

    fn write_process(&self, out: &mut String) {
        let h = self.durations.lock().expect("not poisoned");
        out.push_str(
            "# HELP holdfast_backup_duration_seconds How long backup runs on this node took.\n",
        );
        out.push_str("# TYPE holdfast_backup_duration_seconds histogram\n");
        for (outcome, (counts, sum, count)) in &h.by_outcome {
            for (le, n) in BUCKETS.iter().zip(counts) {
                let _ = writeln!(
                    out,
                    "holdfast_backup_duration_seconds_bucket{{outcome=\"{outcome}\",le=\"{le}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "holdfast_backup_duration_seconds_bucket{{outcome=\"{outcome}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                out,
                "holdfast_backup_duration_seconds_sum{{outcome=\"{outcome}\"}} {sum}"
            );
            let _ = writeln!(
                out,
                "holdfast_backup_duration_seconds_count{{outcome=\"{outcome}\"}} {count}"
            );
        }
        out.push_str(
            "# HELP holdfast_backup_bytes_read_total Bytes read from sources by this node.\n",
        );
        out.push_str("# TYPE holdfast_backup_bytes_read_total counter\n");
        let _ = writeln!(
            out,
            "holdfast_backup_bytes_read_total {}",
            self.bytes_read.load(Ordering::Relaxed)
        );
        out.push_str("# HELP holdfast_backup_bytes_added_total Bytes added to repositories after deduplication by this node.\n");
        out.push_str("# TYPE holdfast_backup_bytes_added_total counter\n");
        let _ = writeln!(
            out,
            "holdfast_backup_bytes_added_total {}",
            self.bytes_added.load(Ordering::Relaxed)
        );
        out.push_str(
            "# HELP holdfast_storage_retries_total Requests to object storage this node repeated \
             after throttling, a 5xx or a dropped connection.\n",
        );
        out.push_str("# TYPE holdfast_storage_retries_total counter\n");
        let _ = writeln!(
            out,
            "holdfast_storage_retries_total {}",
            holdfast_storage::retries_total()
        );
    }
}

/// Label values escaped as the text format wants.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The whole exposition.
pub async fn render(state: &crate::AppState) -> Result<String, holdfast_catalog::CatalogError> {
    let c = &state.catalog;
    let mut out = String::new();
    out.push_str("# HELP holdfast_backups Backup runs in the catalog by status.\n");
    out.push_str("# TYPE holdfast_backups gauge\n");
    let by_status = c.backup_counts().await?;
    for status in ["queued", "running", "done", "failed", "deleting", "deleted"] {
        let n = by_status
            .iter()
            .find(|(s, _)| s == status)
            .map(|(_, n)| *n)
            .unwrap_or(0);
        let _ = writeln!(out, "holdfast_backups{{status=\"{status}\"}} {n}");
    }
    out.push_str("# HELP holdfast_queue_depth Backup runs waiting for a worker.\n");
    out.push_str("# TYPE holdfast_queue_depth gauge\n");
    let _ = writeln!(out, "holdfast_queue_depth {}", c.queue_depth().await?);
    out.push_str(
        "# HELP holdfast_oldest_running_job_seconds Age of the longest-running backup (0: none).\n",
    );
    out.push_str("# TYPE holdfast_oldest_running_job_seconds gauge\n");
    let now = jiff::Timestamp::now();
    let oldest = c
        .oldest_running_start()
        .await?
        .and_then(|s| clock::parse(&s))
        .map(|t| (now - t).get_seconds().max(0))
        .unwrap_or(0);
    let _ = writeln!(out, "holdfast_oldest_running_job_seconds {oldest}");
    out.push_str("# HELP holdfast_source_last_success_timestamp_seconds When each source last backed up successfully.\n");
    out.push_str("# TYPE holdfast_source_last_success_timestamp_seconds gauge\n");
    for (tenant, source_id, source, finished) in c.last_successes().await? {
        if let Some(t) = clock::parse(&finished) {
            let _ = writeln!(
                out,
                "holdfast_source_last_success_timestamp_seconds{{tenant=\"{}\",source_id=\"{}\",source=\"{}\"}} {}",
                label(&tenant),
                label(&source_id),
                label(&source),
                t.as_second()
            );
        }
    }
    let drills = c.last_drills().await?;
    out.push_str("# HELP holdfast_drill_last_success_timestamp_seconds When each source's newest backup last restored and verified in a drill.\n");
    out.push_str("# TYPE holdfast_drill_last_success_timestamp_seconds gauge\n");
    for (tenant, source_id, source, d) in &drills {
        if let Some(t) = d.finished_at.as_deref().and_then(clock::parse) {
            let _ = writeln!(
                out,
                "holdfast_drill_last_success_timestamp_seconds{{tenant=\"{}\",source_id=\"{}\",source=\"{}\"}} {}",
                label(tenant),
                label(source_id),
                label(source),
                t.as_second()
            );
        }
    }
    out.push_str("# HELP holdfast_drill_duration_seconds How long each source's last successful drill took to restore and verify: the restore time it can promise.\n");
    out.push_str("# TYPE holdfast_drill_duration_seconds gauge\n");
    for (tenant, source_id, source, d) in &drills {
        let seconds = d
            .verification
            .as_ref()
            .and_then(|v| v["duration_seconds"].as_f64());
        if let Some(seconds) = seconds {
            let _ = writeln!(
                out,
                "holdfast_drill_duration_seconds{{tenant=\"{}\",source_id=\"{}\",source=\"{}\"}} {seconds}",
                label(tenant),
                label(source_id),
                label(source),
            );
        }
    }
    out.push_str("# HELP holdfast_source_overdue 1 when a source has no successful backup (kind=backup) or drill (kind=drill) since a slot of its schedule and one more interval.\n");
    out.push_str("# TYPE holdfast_source_overdue gauge\n");
    let now = jiff::Timestamp::now();
    for t in c.tenants().await? {
        for (src, h) in crate::health::of_tenant(state, &t.id, now).await? {
            for (kind, overdue) in [("backup", h.backup_overdue), ("drill", h.drill_overdue)] {
                let _ = writeln!(
                    out,
                    "holdfast_source_overdue{{tenant=\"{}\",source_id=\"{}\",source=\"{}\",kind=\"{kind}\"}} {}",
                    label(&t.name),
                    label(&src.id),
                    label(&src.name),
                    u8::from(overdue)
                );
            }
        }
    }
    let verified = c.verification_states().await?;
    out.push_str("# HELP holdfast_verification_last_success_timestamp_seconds When each tenant's repository last passed a verification.\n");
    out.push_str("# TYPE holdfast_verification_last_success_timestamp_seconds gauge\n");
    for v in &verified {
        if let Some(t) = v.verified_at.as_deref().and_then(clock::parse) {
            let _ = writeln!(
                out,
                "holdfast_verification_last_success_timestamp_seconds{{tenant=\"{}\"}} {}",
                label(&v.tenant),
                t.as_second()
            );
        }
    }
    out.push_str("# HELP holdfast_backups_damaged Live backups a verification found damaged.\n");
    out.push_str("# TYPE holdfast_backups_damaged gauge\n");
    for v in &verified {
        let _ = writeln!(
            out,
            "holdfast_backups_damaged{{tenant=\"{}\"}} {}",
            label(&v.tenant),
            v.damaged
        );
    }
    state.metrics.write_process(&mut out);
    Ok(out)
}
