//! Notifications: telling people when something needs them.
//!
//! The audit log is the one source of what happened. Every node's notifier
//! reads it from the catalog's cursor every second, turns the events that
//! matter into notices ([`message`]) and queues one delivery per channel
//! that wants each notice — a tenant's channels get only their tenant's
//! notices, an admin's channels everyone's — moving the cursor in the same
//! transaction (`Catalog::fan_out`), so each event is told once however
//! many nodes run. Deliveries are then taken from the outbox like jobs and
//! sent ([`send`]); a failed attempt is tried again after 30 s, 2 min,
//! 8 min, … until `[notifications] max_attempts`, and every attempt's
//! outcome is recorded on the delivery and on its channel.
//!
//! Jobs never wait for any of this: they only write their audit rows, as
//! they always did, so a slow or failing receiver cannot delay or fail the
//! job that caused its message.

pub mod message;
pub mod send;

use std::collections::HashMap;
use std::time::Duration;

use holdfast_catalog::audit::AuditFilter;
use holdfast_catalog::backups::{Backup, backoff};
use holdfast_catalog::chain::AuditRow;
use holdfast_catalog::notifications::{NewNotification, Notification};
use holdfast_catalog::{CatalogError, queue};
use jiff::SignedDuration;

use crate::AppState;
use crate::worker::log;
use message::{Named, Notice};

/// Audit rows read per fan-out.
const BATCH: i64 = 200;
/// Deliveries sent at once by one node.
const SENDING: usize = 4;

/// Start this node's notifier.
pub fn start(state: AppState) {
    tokio::spawn(async move {
        let worker = format!("{}/notify", state.node);
        loop {
            if let Err(e) = fan_out(&state).await {
                log(&format!("notifications: {e}"));
            }
            deliver_due(&state, &worker).await;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
}

/// `Ok(None)` for a row that is gone (a lookup that found nothing: the
/// event is still told, with less said).
fn found<T>(r: Result<T, CatalogError>) -> Result<Option<T>, CatalogError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(CatalogError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Queue the deliveries of what the audit log gained since the cursor.
async fn fan_out(state: &AppState) -> Result<(), CatalogError> {
    let c = &state.catalog;
    let Some(from) = c.notify_cursor().await? else {
        // the first start: history is not told
        let head = c.audit_head().await?.map(|h| h.seq).unwrap_or(0);
        c.fan_out(None, head, &[]).await?;
        return Ok(());
    };
    let rows = c.audit_after(&AuditFilter::default(), from, BATCH).await?;
    let Some(last) = rows.last().map(|r| r.seq) else {
        return Ok(());
    };
    let channels = c.all_channels().await?;
    let mut out = Vec::new();
    if !channels.is_empty() {
        let mut tenants = HashMap::new();
        for row in &rows {
            for n in notices_of(state, row, &mut tenants).await? {
                let tenant_id = n.tenant.as_ref().map(|t| t.id.clone());
                for ch in &channels {
                    let mine = ch.tenant_id.is_none() || ch.tenant_id == tenant_id;
                    if mine
                        && message::wants(
                            &ch.kind,
                            &ch.events,
                            ch.settings["source_id"].as_str(),
                            &n,
                        )
                    {
                        out.push(NewNotification {
                            channel_id: ch.id.clone(),
                            tenant_id: tenant_id.clone(),
                            event: n.event.clone(),
                            body: serde_json::to_value(&n).unwrap_or_default(),
                        });
                    }
                }
            }
        }
    }
    if c.fan_out(Some(from), last, &out).await? && !out.is_empty() {
        log(&format!(
            "notifications: {} deliveries queued for audit rows {}..={last}",
            out.len(),
            from + 1
        ));
    }
    Ok(())
}

/// The tenant `id` and its name (looked up once per batch).
async fn tenant_named(
    state: &AppState,
    tenants: &mut HashMap<String, String>,
    id: &str,
) -> Result<Named, CatalogError> {
    if !tenants.contains_key(id) {
        let name = found(state.catalog.tenant(id).await)?
            .map(|t| t.name)
            .unwrap_or_else(|| id.to_string());
        tenants.insert(id.to_string(), name);
    }
    Ok(Named {
        id: id.to_string(),
        name: tenants[id].clone(),
    })
}

fn named_backup(b: &Backup) -> Named {
    Named {
        id: b.source_id.clone(),
        name: b.source_name.clone(),
    }
}

/// The notices one audit row makes (most make none).
async fn notices_of(
    state: &AppState,
    row: &AuditRow,
    tenants: &mut HashMap<String, String>,
) -> Result<Vec<Notice>, CatalogError> {
    let Some(tenant_id) = row.tenant_id.clone() else {
        return Ok(Vec::new());
    };
    let meta: serde_json::Value = serde_json::from_str(&row.metadata_text).unwrap_or_default();
    let subject = row.subject.clone().unwrap_or_default();
    let c = &state.catalog;
    let mut told: Vec<(String, Option<Named>)> = Vec::new();
    match row.event.as_str() {
        // after its last attempt only
        "backup_failed" if meta["will_retry"] != serde_json::json!(true) => {
            let b = found(c.backup(&subject).await)?;
            told.push(("backup_failed".into(), b.as_ref().map(named_backup)));
        }
        "backup_succeeded" => {
            if let Some(b) = found(c.backup(&subject).await)? {
                told.push(("backup_succeeded".into(), Some(named_backup(&b))));
                if c.previous_outcome(&b.source_id, &b.id, false)
                    .await?
                    .as_deref()
                    == Some("failed")
                {
                    told.push(("backup_recovered".into(), Some(named_backup(&b))));
                }
            }
        }
        "source_overdue" => {
            let kind = meta["kind"].as_str().unwrap_or("backup");
            let src = found(c.source_any(&subject).await)?.map(|s| Named {
                id: s.id,
                name: s.name,
            });
            told.push((format!("{kind}_overdue"), src));
        }
        "drill_failed" | "drill_succeeded" => {
            if let Some(r) = found(c.restore_run(&subject).await)?
                && let Some(source_id) = r.source_id.clone()
            {
                let src = found(c.source_any(&source_id).await)?.map(|s| Named {
                    id: s.id,
                    name: s.name,
                });
                if row.event == "drill_failed" {
                    told.push(("drill_failed".into(), src));
                } else if c
                    .previous_outcome(&source_id, &r.id, true)
                    .await?
                    .as_deref()
                    == Some("failed")
                {
                    told.push(("drill_recovered".into(), src));
                }
            }
        }
        "verification_failed" | "retention_summary" => told.push((row.event.clone(), None)),
        _ => {}
    }
    let mut out = Vec::new();
    for (event, source) in told {
        let tenant = tenant_named(state, tenants, &tenant_id).await?;
        let origin = (row.subject.clone(), row.time.clone(), row.seq);
        out.push(Notice::new(
            &event,
            Some(tenant),
            source,
            origin,
            meta.clone(),
        ));
    }
    Ok(out)
}

/// Queue a healthchecks `start` ping for the backup a worker just took.
pub async fn backup_started(state: &AppState, b: &Backup) {
    let channels = match state.catalog.all_channels().await {
        Ok(c) => c,
        Err(e) => return log(&format!("notifications: {e}")),
    };
    // only pings are told of a start: no lookup at all without a pinger
    if !channels.iter().any(|c| c.kind == "healthchecks") {
        return;
    }
    let Ok(tenant) = tenant_named(state, &mut HashMap::new(), &b.tenant_id).await else {
        return;
    };
    let origin = (Some(b.id.clone()), holdfast_catalog::clock::now(), 0);
    let n = Notice::new(
        "backup_started",
        Some(tenant),
        Some(named_backup(b)),
        origin,
        serde_json::json!({}),
    );
    for ch in channels {
        let mine = ch.tenant_id.is_none() || ch.tenant_id.as_deref() == Some(b.tenant_id.as_str());
        if mine && message::wants(&ch.kind, &ch.events, ch.settings["source_id"].as_str(), &n) {
            let queued = state
                .catalog
                .queue_notification(&NewNotification {
                    channel_id: ch.id.clone(),
                    tenant_id: Some(b.tenant_id.clone()),
                    event: n.event.clone(),
                    body: serde_json::to_value(&n).unwrap_or_default(),
                })
                .await;
            if let Err(e) = queued {
                log(&format!("notifications: {e}"));
            }
        }
    }
}

/// Queue a test message to one channel (`tenant`: its owner; `None`, an
/// admin's channel).
pub async fn test(
    state: &AppState,
    channel_id: &str,
    tenant: Option<Named>,
) -> Result<Notification, CatalogError> {
    let tenant_id = tenant.as_ref().map(|t| t.id.clone());
    let origin = (None, holdfast_catalog::clock::now(), 0);
    let n = Notice::new("test", tenant, None, origin, serde_json::json!({}));
    state
        .catalog
        .queue_notification(&NewNotification {
            channel_id: channel_id.to_string(),
            tenant_id,
            event: "test".into(),
            body: serde_json::to_value(&n).unwrap_or_default(),
        })
        .await
}

/// Send what is due, a few at once.
async fn deliver_due(state: &AppState, worker: &str) {
    let mut sending = tokio::task::JoinSet::new();
    for _ in 0..SENDING {
        match state
            .catalog
            .claim(
                &queue::NOTIFICATIONS,
                worker,
                SignedDuration::from_secs(120),
            )
            .await
        {
            Ok(Some(n)) => {
                let (s, w) = (state.clone(), worker.to_string());
                sending.spawn(async move { deliver(&s, &w, n).await });
            }
            Ok(None) => break,
            Err(e) => {
                log(&format!("notifications: {e}"));
                break;
            }
        }
    }
    while sending.join_next().await.is_some() {}
}

/// One attempt at one delivery, recorded.
async fn deliver(state: &AppState, worker: &str, n: Notification) {
    let outcome = attempt(state, &n).await;
    let cfg = &state.config.notifications;
    let retry = (outcome.is_err() && n.attempts < cfg.max_attempts).then(|| {
        backoff(
            SignedDuration::from_secs(cfg.retry_base_seconds as i64),
            n.attempts,
        )
    });
    if let Err(e) = &outcome {
        log(&format!(
            "notification {} ({}) to channel {}: attempt {} failed: {e}{}",
            n.id,
            n.event,
            n.channel_id,
            n.attempts,
            if retry.is_some() {
                "; will try again"
            } else {
                "; given up"
            }
        ));
    }
    if let Err(e) = state
        .catalog
        .finish_notification(&n.id, worker, outcome, retry)
        .await
    {
        log(&format!(
            "notification {}: cannot record the outcome: {e}",
            n.id
        ));
    }
}

async fn attempt(state: &AppState, n: &Notification) -> Result<(), String> {
    let opened = state
        .catalog
        .open_channel(&n.channel_id)
        .await
        .map_err(|e| e.to_string())?;
    let ch = &opened.channel;
    let notice: Notice =
        serde_json::from_value(n.body.clone()).map_err(|e| format!("the stored message: {e}"))?;
    // an operator's channel: the tenant's policy as it is now
    let rules = match (ch.defined_by.as_str(), &ch.tenant_id) {
        ("admin", _) | (_, None) => None,
        (_, Some(t)) => Some(
            crate::api::policy_of(state, t)
                .await
                .map_err(|e| e.to_string())?
                .notification_rules(),
        ),
    };
    let ca_pem = match (&state.config.notifications.ca_file, ch.kind.as_str()) {
        (Some(f), "email") => Some(
            tokio::fs::read(f)
                .await
                .map_err(|e| format!("{}: {e}", f.display()))?,
        ),
        _ => None,
    };
    let dest = send::Destination {
        url: &opened.url,
        secret: opened.secret.as_deref(),
        settings: &ch.settings,
        rules,
        timeout: Duration::from_secs(state.config.notifications.timeout_seconds.max(1)),
        ca_pem: ca_pem.as_deref(),
    };
    let out = message::outgoing(
        &ch.kind,
        &opened.url,
        opened.secret.as_deref(),
        &notice,
        &n.id,
        jiff::Timestamp::now().as_second(),
    );
    send::send(&dest, out).await
}
