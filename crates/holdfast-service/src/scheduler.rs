//! The scheduler: every few seconds, for every source with a schedule, the
//! latest slot at or before now that has not been queued is queued — once,
//! however long the server was down (a slot is unique per source in the
//! catalog, so with several nodes each slot fires once). The retention
//! sweep runs on its own schedule (default 05:00 UTC), claimed once across
//! nodes, and asks for the deletion of what each source's retention lets go.
//! Restore drills run on each source's drill schedule (default weekly, see
//! `runner::default_drill_schedule`): each slot is claimed once across
//! nodes and drills the source's newest successful backup. Verification
//! (`[verification]`, default daily at 04:30) queues a `check` of every
//! tenant's repository that reads the data of that day's part of the packs.

use std::time::Duration;

use holdfast_catalog::{Actor, clock};
use jiff::{SignedDuration, Timestamp};

use crate::AppState;
use crate::retention::{Retention, expired};
use crate::schedule::Schedule;
use crate::worker::log;

/// How far back a slot may be fired (a source idle for longer than this
/// fires its latest slot only within this window).
const LOOKBACK_DAYS: i64 = 400;

pub fn start(state: AppState) {
    tokio::spawn(async move {
        let mut told = std::collections::HashMap::new();
        loop {
            if let Err(e) = tick(&state).await {
                log(&format!("scheduler: {e}"));
            }
            if let Err(e) = overdue_events(&state, Timestamp::now(), &mut told).await {
                log(&format!("scheduler: {e}"));
            }
            tokio::time::sleep(Duration::from_secs(
                state.config.schedule.tick_seconds.max(1),
            ))
            .await;
        }
    });
}

async fn tick(state: &AppState) -> Result<(), holdfast_catalog::CatalogError> {
    let now = Timestamp::now();
    let zone = state.config.time_zone();
    let floor = now
        .checked_sub(SignedDuration::from_hours(24 * LOOKBACK_DAYS))
        .unwrap_or(now);
    let mut queued = false;
    for src in state.catalog.scheduled_sources().await? {
        let Some(text) = &src.schedule else { continue };
        let schedule = match Schedule::parse(text) {
            Ok(s) => s,
            Err(e) => {
                log(&format!(
                    "source {} ({}): schedule {text:?}: {e}",
                    src.name, src.id
                ));
                continue;
            }
        };
        let since = match state.catalog.last_slot(&src.id).await? {
            Some(slot) => clock::parse(&slot),
            None => clock::parse(&src.created_at),
        }
        .unwrap_or(now)
        .max(floor);
        let Some(slot) = schedule.latest_due(since, now, &zone) else {
            continue;
        };
        let tenant = state.catalog.tenant(&src.tenant_id).await?;
        let slot_text = clock::format(slot);
        if let Some(b) = state
            .catalog
            .enqueue_backup(
                &src,
                &tenant.repository,
                Some(&slot_text),
                state.config.jobs.max_attempts,
                &Actor::system(),
            )
            .await?
        {
            log(&format!(
                "scheduled backup {} of {} for {slot_text}",
                b.id, src.name
            ));
            queued = true;
        }
    }
    queued |= drills_if_due(state, now, floor, &zone).await?;
    queued |= verifications_if_due(state, now, &zone).await?;
    if queued {
        state.wake.notify_waiters();
    }
    cleanup_if_due(state, now, &zone).await
}

/// Audit each source's missed slot once, across nodes (`source_overdue`,
/// kind `backup` or `drill`, see `crate::health`). `told` remembers, per
/// source and kind, the last missed slot this node has seen written, so
/// that a source that stays overdue costs no write per tick (and the map
/// holds at most two entries a source).
async fn overdue_events(
    state: &AppState,
    now: Timestamp,
    told: &mut std::collections::HashMap<String, String>,
) -> Result<(), holdfast_catalog::CatalogError> {
    for tenant in state.catalog.tenants().await? {
        for (src, h) in crate::health::of_tenant(state, &tenant.id, now).await? {
            let missed = [
                ("backup", &h.backup_missed_slot, &h.last_success_at),
                ("drill", &h.drill_missed_slot, &h.last_drill_success_at),
            ];
            for (kind, slot, last_success) in missed {
                let Some(slot) = slot else { continue };
                let name = format!("overdue:{kind}:{}", src.id);
                let slot_text = slot.to_string();
                if told.get(&name) == Some(&slot_text) {
                    continue;
                }
                let metadata = serde_json::json!({
                    "source": src.name,
                    "kind": kind,
                    "missed_slot": slot,
                    "last_success_at": last_success,
                });
                let written = state
                    .catalog
                    .audit_once(
                        (&name, slot, &state.node),
                        &tenant.id,
                        "source_overdue",
                        &src.id,
                        metadata,
                    )
                    .await?;
                // remembered once written (by this node or another): a
                // failed write is tried again on the next tick
                told.insert(name, slot_text);
                if written {
                    log(&format!(
                        "source {} of {}: {kind} overdue (no success since the slot of {slot})",
                        src.name, tenant.name
                    ));
                }
            }
        }
    }
    Ok(())
}

/// How far back a drill slot may be fired: a source that was never drilled
/// (or whose drills were off) gets at most one drill for the past week.
const DRILL_LOOKBACK_DAYS: i64 = 8;

/// Queue a drill of each source whose drill slot has come (claimed once
/// across nodes); whether any was queued.
async fn drills_if_due(
    state: &AppState,
    now: Timestamp,
    floor: Timestamp,
    zone: &jiff::tz::TimeZone,
) -> Result<bool, holdfast_catalog::CatalogError> {
    let floor = now
        .checked_sub(SignedDuration::from_hours(24 * DRILL_LOOKBACK_DAYS))
        .unwrap_or(floor);
    let mut queued = false;
    for src in state.catalog.live_sources().await? {
        let Ok(settings) = crate::runner::SourceSettings::parse(&src.options) else {
            continue;
        };
        let schedule = match settings.drill_schedule(&src.id) {
            Ok(Some(s)) => s,
            Ok(None) => continue,
            Err(e) => {
                log(&format!(
                    "source {} ({}): drill schedule: {e}",
                    src.name, src.id
                ));
                continue;
            }
        };
        let job = format!("drill:{}", src.id);
        let since = match state.catalog.last_job_slot(&job).await? {
            Some(slot) => clock::parse(&slot),
            None => clock::parse(&src.created_at),
        }
        .unwrap_or(now)
        .max(floor);
        let Some(slot) = schedule.latest_due(since, now, zone) else {
            continue;
        };
        let slot_text = clock::format(slot);
        if !state
            .catalog
            .claim_slot(&job, &slot_text, &state.node)
            .await?
        {
            continue;
        }
        let newest = state
            .catalog
            .newest_done_backup(&src.tenant_id, &src.id)
            .await?;
        match newest {
            Some(b) => {
                let d = state.catalog.enqueue_drill(&b, &Actor::system()).await?;
                log(&format!(
                    "scheduled drill {} of {} (backup {}) for {slot_text}",
                    d.id, src.name, b.id
                ));
                queued = true;
            }
            None => log(&format!(
                "drill of {} for {slot_text}: no successful backup to drill yet",
                src.name
            )),
        }
    }
    Ok(queued)
}

/// The slot of the service-wide periodic job `name` that is due now and
/// that this node claimed, if any (on its first start: the first slot from
/// now on, not one from before the server existed).
async fn claim_due_slot(
    state: &AppState,
    name: &str,
    schedule: &Schedule,
    now: Timestamp,
    zone: &jiff::tz::TimeZone,
) -> Result<Option<Timestamp>, holdfast_catalog::CatalogError> {
    let since = match state.catalog.last_job_slot(name).await? {
        Some(s) => clock::parse(&s).unwrap_or(now),
        None => now
            .checked_sub(SignedDuration::from_secs(60))
            .unwrap_or(now),
    };
    let Some(slot) = schedule.latest_due(since, now, zone) else {
        return Ok(None);
    };
    let claimed = state
        .catalog
        .claim_slot(name, &clock::format(slot), &state.node)
        .await?;
    Ok(claimed.then_some(slot))
}

/// Queue a verification of every tenant's repository when the
/// verification slot has come and this node claims it: the day's part of
/// the packs is read (see `VerificationConfig::read_data_at`).
async fn verifications_if_due(
    state: &AppState,
    now: Timestamp,
    zone: &jiff::tz::TimeZone,
) -> Result<bool, holdfast_catalog::CatalogError> {
    let Ok(Some(schedule)) = state.config.verification.schedule() else {
        return Ok(false);
    };
    let Some(slot) = claim_due_slot(state, "verification", &schedule, now, zone).await? else {
        return Ok(false);
    };
    let read_data = state.config.verification.read_data_at(slot);
    for tenant in state.catalog.tenants().await? {
        let v = state
            .catalog
            .enqueue_verification(&tenant.id, &tenant.repository, &read_data, &Actor::system())
            .await?;
        log(&format!(
            "scheduled verification {} of {} ({read_data})",
            v.id, tenant.name
        ));
    }
    Ok(true)
}

/// The retention sweep, when its slot is due and this node claims it.
async fn cleanup_if_due(
    state: &AppState,
    now: Timestamp,
    zone: &jiff::tz::TimeZone,
) -> Result<(), holdfast_catalog::CatalogError> {
    let Ok(schedule) = Schedule::parse(&state.config.retention.cleanup) else {
        return Ok(());
    };
    match claim_due_slot(state, "retention", &schedule, now, zone).await? {
        Some(_) => apply_retention(state, now).await,
        None => Ok(()),
    }
}

/// Ask for the deletion of every backup its source's retention lets go;
/// one failure does not stop the others. Returns when the requests are
/// recorded; workers do the deleting.
pub async fn apply_retention(
    state: &AppState,
    now: Timestamp,
) -> Result<(), holdfast_catalog::CatalogError> {
    let system = Actor::system();
    for tenant in state.catalog.tenants().await? {
        let mut summary = Vec::new();
        for src in state.catalog.sources(&tenant.id).await? {
            let r: Retention = serde_json::from_value(src.retention.clone()).unwrap_or_default();
            let live = state.catalog.live_backups(&src.id).await?;
            let dated: Vec<(String, Timestamp)> = live
                .iter()
                .filter_map(|b| Some((b.id.clone(), clock::parse(b.started_at.as_deref()?)?)))
                .collect();
            let gone = expired(&dated, &r, state.config.retention.max_age_days, now);
            let (mut deleted, mut failed) = (Vec::new(), Vec::new());
            for id in &gone {
                match state
                    .catalog
                    .request_deletion(id, &system, "retention")
                    .await
                {
                    Ok(_) => deleted.push(id.clone()),
                    Err(e) => {
                        log(&format!("retention: backup {id}: {e}"));
                        failed.push(id.clone());
                    }
                }
            }
            state
                .catalog
                .record_retention(
                    &tenant.id,
                    &src.id,
                    live.len() - deleted.len(),
                    &deleted,
                    &failed,
                )
                .await?;
            if !deleted.is_empty() || !failed.is_empty() {
                summary.push((src.name.clone(), deleted.len(), failed.len()));
            }
        }
        // one line per tenant and sweep for the notifications
        if !summary.is_empty() {
            state
                .catalog
                .record_event(holdfast_catalog::audit::NewEvent {
                    actor: &system,
                    tenant_id: Some(&tenant.id),
                    event: "retention_summary",
                    subject: Some(&tenant.id),
                    metadata: serde_json::json!({
                        "deleted": summary.iter().map(|s| s.1).sum::<usize>(),
                        "failed": summary.iter().map(|s| s.2).sum::<usize>(),
                        "sources": summary.iter().map(|(name, d, f)| serde_json::json!(
                            {"source": name, "deleted": d, "failed": f})).collect::<Vec<_>>(),
                    }),
                })
                .await?;
        }
    }
    state.wake.notify_waiters();
    Ok(())
}
