//! The workers: each claims the next queued run, runs it on a blocking
//! thread while renewing its lease, and records the outcome. At start, and
//! then every half lease, runs whose worker is gone (a crash, `kill -9`, a
//! lease that expired on another node) are failed with cause
//! `interrupted` and queued again if attempts remain, so no row stays
//! `running` once its worker is gone.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use std::time::Instant;

use holdfast_catalog::Dialect;
use holdfast_catalog::backups::{Backup, FailureKind, backoff};
use holdfast_engine::cancel::{self, JobCancel};
use jiff::SignedDuration;

use crate::runner::{RunFailure, RunInput, run_backup};
use crate::{AppState, ServeError};

/// Recover orphaned runs, then start the workers and the reaper.
pub async fn start(state: AppState) -> Result<(), ServeError> {
    // SQLite is one node: every `running` row belonged to a process that is
    // gone. On PostgreSQL other nodes may be running jobs: only expired
    // leases are orphans.
    let all_running = state.catalog.dialect() == Dialect::Sqlite;
    recover(&state, all_running).await?;
    for i in 0..state.config.workers {
        let s = state.clone();
        let name = format!("{}/{}", state.node, i);
        tokio::spawn(async move { worker_loop(s, name).await });
    }
    let s = state.clone();
    tokio::spawn(async move {
        let every = Duration::from_secs(s.config.jobs.lease_seconds / 2);
        loop {
            tokio::time::sleep(every).await;
            if let Err(e) = recover(&s, false).await {
                log(&format!("reaper: {e}"));
            }
        }
    });
    Ok(())
}

async fn recover(state: &AppState, all_running: bool) -> Result<(), ServeError> {
    for r in state.catalog.orphaned_restores(all_running).await? {
        let msg = "interrupted: the worker running this restore stopped (crash, kill or lost lease); \
                   the target may hold part of the data";
        if let Err(e) = state
            .catalog
            .finish_restore(&r.id, None, Err(msg.to_string()))
            .await
        {
            log(&format!(
                "restore {}: cannot record the interruption: {e}",
                r.id
            ));
        }
    }
    for b in state.catalog.orphaned_backups(all_running).await? {
        let delay = backoff(retry_base(state), b.attempts);
        // checked again under the row's lock: a lease renewed (or a run
        // finished, or recovered by another node) since the list was read
        // is left alone
        let r = state
            .catalog
            .interrupt_backup(
                &b.id,
                all_running,
                "interrupted: the worker running this backup stopped (crash, kill or lost lease)",
                delay,
            )
            .await;
        match r {
            Ok(Some(b)) => log(&format!(
                "backup {} was interrupted; now {}",
                b.id, b.status
            )),
            Ok(None) => {}
            Err(e) => log(&format!(
                "backup {}: cannot record the interruption: {e}",
                b.id
            )),
        }
    }
    Ok(())
}

fn retry_base(state: &AppState) -> SignedDuration {
    SignedDuration::from_secs(state.config.jobs.retry_base_seconds as i64)
}

fn lease(state: &AppState) -> SignedDuration {
    SignedDuration::from_secs(state.config.jobs.lease_seconds as i64)
}

async fn worker_loop(state: AppState, name: String) {
    loop {
        match state.catalog.claim_backup(&name, lease(&state)).await {
            Ok(Some(b)) => run_one(&state, &name, b).await,
            Ok(None) => {
                match state.catalog.claim_restore(&name, lease(&state)).await {
                    Ok(Some(r)) => {
                        restore_one(&state, &name, r).await;
                        continue;
                    }
                    Ok(None) => {}
                    Err(e) => log(&format!("{name}: cannot take a restore: {e}")),
                }
                match state.catalog.claim_deletion(&name, lease(&state)).await {
                    Ok(Some(b)) => {
                        delete_one(&state, &name, b).await;
                        continue;
                    }
                    Ok(None) => {}
                    Err(e) => log(&format!("{name}: cannot take a deletion: {e}")),
                }
                tokio::select! {
                    _ = state.wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
            Err(e) => {
                log(&format!("{name}: cannot take a job: {e}"));
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
}

async fn run_one(state: &AppState, worker: &str, b: Backup) {
    let input = match prepare(state, &b).await {
        Ok(i) => i,
        Err(f) => return record(state, worker, &b, Err(f)).await,
    };
    let progress = Arc::new(holdfast_sources::progress::Progress::silent());
    let p = progress.clone();
    let cancel = JobCancel::new();
    let c = cancel.clone();
    let (no_progress, hard_limit) = state.config.jobs.limits(&input.source.kind);
    let mut job =
        tokio::task::spawn_blocking(move || cancel::run_as_job(c, || run_backup(&input, &p)));
    let tick_every = Duration::from_secs((state.config.jobs.lease_seconds / 4).max(1))
        .min(no_progress / 4)
        .max(Duration::from_millis(200));
    let mut tick = tokio::time::interval(tick_every);
    tick.tick().await;
    let started = Instant::now();
    let mut last_bytes = 0;
    let mut last_progress = Instant::now();
    let result = loop {
        tokio::select! {
            r = &mut job => break r.unwrap_or_else(|e| Err(RunFailure {
                message: format!("the backup thread failed: {e}"),
                kind: FailureKind::Transient,
            })),
            _ = tick.tick() => {
                let bytes = progress.bytes_done.load(Ordering::Relaxed);
                let progressed = bytes != last_bytes;
                if progressed {
                    last_progress = Instant::now();
                }
                last_bytes = bytes;
                if last_progress.elapsed() >= no_progress {
                    cancel.cancel(&format!("no progress for {}", minutes(no_progress)));
                } else if let Some(h) = hard_limit.filter(|h| started.elapsed() >= *h) {
                    cancel.cancel(&format!("the hard limit of {} was reached", minutes(h)));
                }
                match state.catalog.heartbeat(&b.id, worker, lease(state), progressed).await {
                    Ok(true) => {}
                    Ok(false) => log(&format!("backup {}: lease lost; its result will not be recorded", b.id)),
                    Err(e) => log(&format!("backup {}: heartbeat failed: {e}", b.id)),
                }
            }
        }
    };
    // a run stopped by a timeout fails as such, whatever error it ended with
    let result = match (result, cancel.reason()) {
        (Err(_), Some(reason)) => Err(RunFailure {
            message: format!("timed out: {reason}"),
            kind: FailureKind::Transient,
        }),
        (r, _) => r,
    };
    record(state, worker, &b, result).await;
}

/// Restore a backup into the restore's target, renewing the lease.
async fn restore_one(state: &AppState, worker: &str, r: holdfast_catalog::restores::Restore) {
    let prepared = async {
        let b = state.catalog.backup(&r.backup_id).await?;
        let password = state.catalog.tenant_password(&r.tenant_id).await?;
        let source = state.catalog.source_any(&b.source_id).await?;
        let credentials = state.catalog.source_credentials(&b.source_id).await?;
        Ok::<_, holdfast_catalog::CatalogError>(crate::runner::RestoreInput {
            repository: b.repository.clone().into(),
            password,
            snapshot_id: b.snapshot_id.clone().unwrap_or_default(),
            kind: source.kind,
            target: r.target.clone(),
            credentials,
            replay_state: state.config.data_dir.join("replay"),
        })
    }
    .await;
    let outcome = match prepared {
        Err(e) => Err(e.to_string()),
        Ok(input) => {
            let progress = Arc::new(holdfast_sources::progress::Progress::silent());
            let mut job =
                tokio::task::spawn_blocking(move || crate::runner::run_restore(&input, &progress));
            let mut tick = tokio::time::interval(Duration::from_secs(
                (state.config.jobs.lease_seconds / 4).max(1),
            ));
            tick.tick().await;
            loop {
                tokio::select! {
                    out = &mut job => break out.unwrap_or_else(|e| Err(format!("the restore thread failed: {e}"))),
                    _ = tick.tick() => {
                        let _ = state.catalog.heartbeat_restore(&r.id, worker, lease(state)).await;
                    }
                }
            }
        }
    };
    match state
        .catalog
        .finish_restore(&r.id, Some(worker), outcome)
        .await
    {
        Ok(done) => log(&format!(
            "restore {} into {}: {}",
            done.id, done.target, done.status
        )),
        Err(e) => log(&format!("restore {}: cannot record the outcome: {e}", r.id)),
    }
}

/// Remove a backup's snapshot and prune; a failure leaves the row
/// `deleting` and tries again later.
async fn delete_one(state: &AppState, worker: &str, b: Backup) {
    let password = match state.catalog.tenant_password(&b.tenant_id).await {
        Ok(p) => p,
        Err(e) => return log(&format!("deletion of {}: {e}", b.id)),
    };
    let repo: std::path::PathBuf = b.repository.clone().into();
    let ids: Vec<String> = b
        .snapshot_id
        .iter()
        .filter(|s| !s.is_empty())
        .cloned()
        .collect();
    let r = tokio::task::spawn_blocking(move || {
        crate::runner::delete_snapshots(&repo, &password, &ids)
    })
    .await;
    let outcome = match r {
        Ok(Ok(())) => state
            .catalog
            .finish_deletion(&b.id, worker)
            .await
            .map(|_| ()),
        Ok(Err(f)) => {
            log(&format!(
                "deletion of {} failed, will try again: {}",
                b.id, f.message
            ));
            state
                .catalog
                .defer_deletion(&b.id, worker, &f.message, backoff(retry_base(state), 2))
                .await
        }
        Err(e) => {
            state
                .catalog
                .defer_deletion(&b.id, worker, &e.to_string(), backoff(retry_base(state), 2))
                .await
        }
    };
    match outcome {
        Ok(()) => log(&format!("backup {} of {}: deleted", b.id, b.source_name)),
        Err(e) => log(&format!(
            "deletion of {}: cannot record the outcome: {e}",
            b.id
        )),
    }
}

async fn prepare(state: &AppState, b: &Backup) -> Result<RunInput, RunFailure> {
    let permanent = |message: String| RunFailure {
        message,
        kind: FailureKind::Permanent,
    };
    let transient = |message: String| RunFailure {
        message,
        kind: FailureKind::Transient,
    };
    let source = state
        .catalog
        .source(&b.tenant_id, &b.source_id)
        .await
        .map_err(|e| match e {
            holdfast_catalog::CatalogError::NotFound { .. } => permanent(format!(
                "source {} ({}) was deleted",
                b.source_name, b.source_id
            )),
            other => transient(other.to_string()),
        })?;
    let password = state
        .catalog
        .tenant_password(&b.tenant_id)
        .await
        .map_err(|e| permanent(e.to_string()))?;
    let credentials = state
        .catalog
        .source_credentials(&b.source_id)
        .await
        .map_err(|e| permanent(e.to_string()))?;
    Ok(RunInput {
        repository: b.repository.clone().into(),
        password,
        source,
        credentials,
        backup_id: b.id.clone(),
    })
}

async fn record(
    state: &AppState,
    worker: &str,
    b: &Backup,
    result: Result<holdfast_catalog::backups::Outcome, RunFailure>,
) {
    let r = match result {
        Ok(outcome) => state.catalog.finish_backup(&b.id, worker, &outcome).await,
        Err(f) => {
            let delay = backoff(retry_base(state), b.attempts);
            let message = format!("{} ({} failure)", f.message, f.kind.as_str());
            state
                .catalog
                .fail_backup(&b.id, Some(worker), &message, f.kind, delay)
                .await
        }
    };
    if let Ok(done) = &r {
        let seconds = match (
            done.started_at
                .as_deref()
                .and_then(holdfast_catalog::clock::parse),
            done.finished_at
                .as_deref()
                .and_then(holdfast_catalog::clock::parse),
        ) {
            (Some(a), Some(b)) => (b - a).total(jiff::Unit::Second).unwrap_or(0.0),
            _ => 0.0,
        };
        let outcome = if done.status == "done" {
            "done"
        } else {
            "failed"
        };
        state.metrics.run_finished(
            outcome,
            seconds,
            done.size.unwrap_or(0) as u64,
            done.bytes_added.unwrap_or(0) as u64,
        );
    }
    match r {
        Ok(done) => log(&format!(
            "backup {} of {}: {}",
            done.id, done.source_name, done.status
        )),
        Err(e) => log(&format!("backup {}: cannot record the outcome: {e}", b.id)),
    }
}

/// "10 minutes", "3 seconds".
fn minutes(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 120.0 {
        format!("{:.0} minutes", s / 60.0)
    } else {
        format!("{s:.0} seconds")
    }
}

/// One line on standard error, with the time.
pub fn log(line: &str) {
    eprintln!("{} {line}", holdfast_catalog::clock::now());
}
