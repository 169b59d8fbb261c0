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

/// A notice about `source` of `tenant` (names looked up once per batch).
async fn notice(
    state: &AppState,
    tenants: &mut HashMap<String, String>,
    row: &AuditRow,
    event: &str,
    tenant_id: &str,
    source: Option<Named>,
    details: serde_json::Value,
) -> Result<Notice, CatalogError> {
    if !tenants.contains_key(tenant_id) {
        let name = found(state.catalog.tenant(tenant_id).await)?
            .map(|t| t.name)
            .unwrap_or_else(|| tenant_id.to_string());
        tenants.insert(tenant_id.to_string(), name);
    }
    let tenant = tenants[tenant_id].clone();
    let (title, text) = message::words(
        event,
        &tenant,
        source.as_ref().map(|s| s.name.as_str()),
        &details,
    );
    Ok(Notice {
        event: event.to_string(),
        severity: message::severity(event).to_string(),
        tenant: Some(Named {
            id: tenant_id.to_string(),
            name: tenant,
        }),
        source,
        subject: row.subject.clone(),
        time: row.time.clone(),
        title,
        text,
        details,
        audit_seq: row.seq,
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
        out.push(
            notice(
                state,
                tenants,
                row,
                &event,
                &tenant_id,
                source,
                meta.clone(),
            )
            .await?,
        );
    }
    Ok(out)
}

/// Queue a healthchecks `start` ping for the backup a worker just took.
pub async fn backup_started(state: &AppState, b: &Backup) {
    let channels = match state.catalog.all_channels().await {
        Ok(c) => c,
        Err(e) => return log(&format!("notifications: {e}")),
    };
    let row = AuditRow {
        seq: 0,
        time: holdfast_catalog::clock::now(),
        actor: holdfast_catalog::Actor::system(),
        tenant_id: Some(b.tenant_id.clone()),
        event: "backup_started".into(),
        subject: Some(b.id.clone()),
        metadata_text: "{}".into(),
        prev_hash: String::new(),
        hash: String::new(),
    };
    let mut tenants = HashMap::new();
    let Ok(n) = notice(
        state,
        &mut tenants,
        &row,
        "backup_started",
        &b.tenant_id,
        Some(named_backup(b)),
        serde_json::json!({}),
    )
    .await
    else {
        return;
    };
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

/// Queue a test message to one channel.
pub async fn test(
    state: &AppState,
    channel_id: &str,
    tenant_id: Option<&str>,
    tenant_name: &str,
) -> Result<Notification, CatalogError> {
    let (title, text) = message::words("test", tenant_name, None, &serde_json::json!({}));
    let n = Notice {
        event: "test".into(),
        severity: "info".into(),
        tenant: tenant_id.map(|id| Named {
            id: id.to_string(),
            name: tenant_name.to_string(),
        }),
        source: None,
        subject: None,
        time: holdfast_catalog::clock::now(),
        title,
        text,
        details: serde_json::json!({}),
        audit_seq: 0,
    };
    state
        .catalog
        .queue_notification(&NewNotification {
            channel_id: channel_id.to_string(),
            tenant_id: tenant_id.map(str::to_string),
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
