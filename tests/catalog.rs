//! The catalog on both databases it supports: every test body runs once on
//! SQLite (a file in a temporary directory) and once on PostgreSQL (a fresh
//! database on the private server `common::servers` starts), through the
//! same code path the service uses.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};

use holdfast_catalog::audit::AuditFilter;
use holdfast_catalog::backups::{BackupFilter, FailureKind, Outcome};
use holdfast_catalog::chain::ChainBreak;
use holdfast_catalog::notifications::{ChannelFields, NewNotification};
use holdfast_catalog::queue::{BACKUPS, DELETIONS, NOTIFICATIONS, RESTORES, VERIFICATIONS};
use holdfast_catalog::sources::{Source, SourceFields};
use holdfast_catalog::tenants::{Tenant, new_id};
use holdfast_catalog::tokens::Role;
use holdfast_catalog::verifications::Checked;
use holdfast_catalog::{Actor, Catalog, CatalogError, Dialect, ServerKey};
use jiff::SignedDuration;
use sqlx::Row;

/// Where one test's catalog lives; `open` may be called more than once
/// (reopening, racing opens).
struct Db {
    url: String,
    key: [u8; 32],
    dialect: Dialect,
    _dir: Option<tempfile::TempDir>,
}

impl Db {
    fn sqlite() -> Db {
        let dir = tempfile::tempdir().unwrap();
        Db {
            url: format!("sqlite://{}", dir.path().join("catalog.db").display()),
            key: random_key(),
            dialect: Dialect::Sqlite,
            _dir: Some(dir),
        }
    }

    /// A new, empty database on the shared private server.
    fn postgres(test: &str) -> Db {
        static N: AtomicUsize = AtomicUsize::new(0);
        let pg = common::servers::Postgres::shared();
        // PostgreSQL cuts identifiers at 63 bytes
        let name = format!(
            "cat_{}_{}",
            &test[..test.len().min(40)],
            N.fetch_add(1, Ordering::Relaxed)
        );
        pg.create_db(&name);
        Db {
            url: format!(
                "postgres://{}:{}@127.0.0.1:{}/{name}",
                pg.user, pg.password, pg.port
            ),
            key: random_key(),
            dialect: Dialect::Postgres,
            _dir: None,
        }
    }

    async fn open(&self) -> Catalog {
        let c = Catalog::open(&self.url, ServerKey::from_bytes(self.key))
            .await
            .unwrap_or_else(|e| panic!("open {}: {e}", holdfast_catalog::redact_url(&self.url)));
        assert_eq!(c.dialect(), self.dialect);
        c
    }
}

fn random_key() -> [u8; 32] {
    let mut k = [0u8; 32];
    holdfast_format::crypto::fill_random(&mut k);
    k
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
}

/// `both!(body)`: `body::sqlite` and `body::postgres`, the same
/// `async fn body(db: Db)` on each database.
macro_rules! both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn sqlite() {
                super::runtime().block_on(super::$name(super::Db::sqlite()));
            }
            #[test]
            fn postgres() {
                let db = super::Db::postgres(stringify!($name));
                super::runtime().block_on(super::$name(db));
            }
        }
    )*};
}

both!(
    migrations_apply_once_and_reopen_idempotently,
    migration_5_keeps_admin_trust_only_where_the_audit_log_shows_it,
    tenants_tokens_and_sources,
    a_scheduled_slot_is_queued_once,
    claim_heartbeat_finish,
    failures_retry_or_fail,
    orphans_are_expired_leases_or_every_running_row,
    only_a_failed_backup_is_retried,
    backups_page_newest_first_with_a_stable_cursor,
    the_audit_chain_verifies_and_catches_an_edit,
    concurrent_audit_appends_leave_one_unbroken_chain,
    concurrent_claims_hand_each_run_out_once,
    concurrent_creates_of_one_source_name_leave_one,
    finish_and_recovery_race_with_one_winner,
    concurrent_updates_of_one_source_keep_every_field,
    restores_queue_lease_and_finish,
    deletions_keep_the_row_and_are_taken_once,
    job_slots_are_claimed_once_across_nodes,
    concurrent_restore_claims_hand_each_out_once,
    recent_runs_are_each_sources_newest,
    sessions_end_with_sign_out_and_with_their_token,
    drills_are_restores_listed_audited_and_measured_apart,
    verifications_one_at_a_time_mark_the_damaged_backups,
    notifications_fan_out_once_to_their_own_tenant_and_retry,
    health_and_the_evidence_report_read_the_runs_and_drills,
);

async fn drills_are_restores_listed_audited_and_measured_apart(db: Db) {
    let c = db.open().await;
    let t = tenant(&c, "acme").await;
    let (a, b) = (source(&c, &t, "a").await, source(&c, &t, "b").await);
    let mut done = Vec::new();
    for s in [&a, &b] {
        let q = c
            .enqueue_backup(s, &t.repository, None, 3, &system())
            .await
            .unwrap()
            .unwrap();
        c.claim(&BACKUPS, "w", minutes(1)).await.unwrap().unwrap();
        c.finish_backup(&q.id, "w", &outcome("s1")).await.unwrap();
        done.push(c.backup(&q.id).await.unwrap());
    }
    // a plain restore is not a drill
    let plain = c
        .enqueue_restore(&done[0], "/restore/here", "admin", false, &system())
        .await
        .unwrap();
    assert!(!plain.drill);
    // a's drill passes twice, b's fails
    let mut last_a = None;
    for (backup, outcome) in [
        (&done[0], Ok(serde_json::json!({"duration_seconds": 4.5}))),
        (&done[1], Err("blob 1234 is damaged".to_string())),
        (&done[0], Ok(serde_json::json!({"duration_seconds": 2.25}))),
    ] {
        let d = c.enqueue_drill(backup, &system()).await.unwrap();
        assert!(d.drill);
        assert_eq!(d.target, holdfast_catalog::restores::DRILL_TARGET);
        assert_eq!(d.defined_by, "server");
        // drills wait in the restore queue, in order
        loop {
            let r = c.claim(&RESTORES, "w", minutes(1)).await.unwrap().unwrap();
            let id = r.id.clone();
            let ok = if r.id == d.id {
                outcome.clone()
            } else {
                Ok(serde_json::json!({}))
            };
            let f = c.finish_restore(&id, Some("w"), ok).await.unwrap();
            if id == d.id {
                if backup.id == done[0].id {
                    last_a = Some(f);
                }
                break;
            }
        }
    }
    let listed = c.drills(&t.id, 10).await.unwrap();
    assert_eq!(listed.len(), 3, "the plain restore is not listed");
    assert!(listed.iter().all(|r| r.drill));
    assert_eq!(listed[0].id, last_a.as_ref().unwrap().id, "newest first");
    assert_eq!(listed[1].status, "failed");
    // each source's newest successful drill, for the metrics
    let last = c.last_drills().await.unwrap();
    assert_eq!(last.len(), 1, "b never passed: {last:?}");
    let (tenant_name, source_id, source_name, drill) = &last[0];
    assert_eq!(
        (
            tenant_name.as_str(),
            source_id.as_str(),
            source_name.as_str()
        ),
        ("acme", a.id.as_str(), "a")
    );
    assert_eq!(
        drill.verification,
        Some(serde_json::json!({"duration_seconds": 2.25}))
    );
    // audited as drills
    let events: Vec<String> = c
        .audit_page(&AuditFilter::default(), 100, None)
        .await
        .unwrap()
        .items
        .iter()
        .map(|e| e.event.clone())
        .collect();
    let n = |e: &str| events.iter().filter(|x| *x == e).count();
    assert_eq!(
        (
            n("drill_started"),
            n("drill_succeeded"),
            n("drill_failed"),
            n("restore_started")
        ),
        (3, 2, 1, 1)
    );
}

async fn verifications_one_at_a_time_mark_the_damaged_backups(db: Db) {
    let c = db.open().await;
    let t = tenant(&c, "acme").await;
    let other = tenant(&c, "other").await;
    let s = source(&c, &t, "site").await;
    let (b1, b2, b3) = (
        done_backup(&c, &t, &s, "aa11").await,
        done_backup(&c, &t, &s, "bb22").await,
        done_backup(&c, &t, &s, "cc33").await,
    );
    // the other tenant's backup of the same snapshot id is not theirs to mark
    let os = source(&c, &other, "site").await;
    let theirs = done_backup(&c, &other, &os, "bb22").await;
    let v = c
        .enqueue_verification(&t.id, &t.repository, "3/30", &system())
        .await
        .unwrap();
    assert_eq!(
        (v.status.as_str(), v.read_data.as_str()),
        ("queued", "3/30")
    );
    // one at a time per tenant, queued or running; other tenants are free
    for _ in 0..2 {
        match c
            .enqueue_verification(&t.id, &t.repository, "all", &system())
            .await
        {
            Err(CatalogError::Conflict(holdfast_catalog::Conflict::Pending { id, .. })) => {
                assert_eq!(id, v.id)
            }
            other => panic!("a second verification: {other:?}"),
        }
        if c.claim(&VERIFICATIONS, "w", minutes(1))
            .await
            .unwrap()
            .is_none()
        {
            break;
        }
    }
    let o = c
        .enqueue_verification(&other.id, &other.repository, "none", &system())
        .await
        .unwrap();
    assert!(
        c.renew_lease(&VERIFICATIONS, &v.id, "w", minutes(1))
            .await
            .unwrap()
    );
    assert!(
        !c.renew_lease(&VERIFICATIONS, &v.id, "x", minutes(1))
            .await
            .unwrap()
    );
    // damage in two snapshots (one of them deleted meanwhile): the live
    // backup of each is marked, in the same transaction as the outcome
    c.request_deletion(&b3, &system(), "test").await.unwrap();
    let d = c.claim(&DELETIONS, "w", minutes(1)).await.unwrap().unwrap();
    c.finish_deletion(&d.id, "w").await.unwrap();
    let found = Checked {
        summary: serde_json::json!({"packs": 9, "packs_read": 1, "errors": 2}),
        findings: (0..150)
            .map(
                |i| serde_json::json!({"kind": "blob", "message": format!("MAC check failed {i}")}),
            )
            .collect(),
        errors: 2,
        damaged_snapshots: vec!["bb22".into(), "cc33".into()],
    };
    let f = c
        .finish_verification(&v.id, Some("w"), Ok(found))
        .await
        .unwrap();
    assert_eq!(f.status, "failed");
    assert_eq!(f.damaged_backups, vec![b2.clone()]);
    assert_eq!(
        f.findings.len(),
        holdfast_catalog::verifications::FINDINGS_KEPT
    );
    assert!(f.error.as_deref().unwrap().contains("2 error(s)"), "{f:?}");
    let marked = c.backup(&b2).await.unwrap();
    assert!(marked.damaged_at.is_some());
    assert!(marked.damage.as_deref().unwrap().contains(&v.id));
    for id in [&b1, &theirs] {
        assert_eq!(c.backup(id).await.unwrap().damaged_at, None, "{id}");
    }
    // finished once: a late second finish (a recovery) changes nothing
    assert_conflict(
        c.finish_verification(&v.id, None, Err("interrupted".into()))
            .await,
        "finished twice: ",
    );
    // the other tenant's clean pass
    assert_eq!(
        c.claim(&VERIFICATIONS, "w", minutes(1))
            .await
            .unwrap()
            .unwrap()
            .id,
        o.id
    );
    let ok = Checked {
        summary: serde_json::json!({"packs": 3, "packs_read": 0, "errors": 0}),
        ..Checked::default()
    };
    let done = c
        .finish_verification(&o.id, Some("w"), Ok(ok))
        .await
        .unwrap();
    assert_eq!((done.status.as_str(), done.error), ("done", None));
    // listed per tenant; the metrics' view
    let mine = c.verifications(&t.id, 10).await.unwrap();
    assert_eq!(mine.iter().map(|v| &v.id).collect::<Vec<_>>(), [&v.id]);
    assert_conflict_or_not_found(c.verification(&other.id, &v.id).await);
    let states = c.verification_states().await.unwrap();
    let state = |name: &str| states.iter().find(|v| v.tenant == name).unwrap();
    assert_eq!(
        (state("acme").verified_at.is_some(), state("acme").damaged),
        (false, 1)
    );
    assert_eq!(
        (state("other").verified_at.is_some(), state("other").damaged),
        (true, 0)
    );
    // audited
    let mut seen = Vec::new();
    for e in [
        "verification_started",
        "verification_failed",
        "verification_succeeded",
    ] {
        seen.push(events(&c, e, 10).await.items.len());
    }
    assert_eq!(seen, [2, 1, 1]);
    let failed = events(&c, "verification_failed", 1).await.items.remove(0);
    let metadata: serde_json::Value = serde_json::from_str(&failed.metadata_text).unwrap();
    assert_eq!(metadata["damaged_backups"], serde_json::json!([b2]));
}

fn channel(name: &str, url: &str) -> ChannelFields {
    ChannelFields {
        name: name.into(),
        kind: "webhook".into(),
        url: url.into(),
        url_shown: "https://h/…".into(),
        secret: Some("k3y".into()),
        events: Vec::new(),
        settings: serde_json::json!({}),
        defined_by: "operator".into(),
    }
}

async fn notifications_fan_out_once_to_their_own_tenant_and_retry(db: Db) {
    let c = db.open().await;
    let (acme, other) = (tenant(&c, "acme").await, tenant(&c, "other").await);
    let mine = c
        .create_channel(
            Some(&acme.id),
            channel("hook", "https://h/T0KEN"),
            &system(),
        )
        .await
        .unwrap();
    let theirs = c
        .create_channel(Some(&other.id), channel("hook", "https://o/x"), &system())
        .await
        .unwrap();
    let global = c
        .create_channel(None, channel("ops", "https://ops/y"), &system())
        .await
        .unwrap();
    // sealed at rest, opened for the sender only
    let stored: String = sqlx::query("SELECT url FROM channels WHERE id = $1")
        .bind(&mine.id)
        .fetch_one(&sqlx::AnyPool::connect(&db.url).await.unwrap())
        .await
        .unwrap()
        .get("url");
    assert!(!stored.contains("T0KEN"));
    let opened = c.open_channel(&mine.id).await.unwrap();
    assert_eq!(
        (opened.url.as_str(), opened.secret.as_deref()),
        ("https://h/T0KEN", Some("k3y"))
    );
    assert!(mine.has_secret);
    assert_eq!(c.channels(Some(&acme.id)).await.unwrap().len(), 1);
    assert_eq!(c.channels(None).await.unwrap()[0].id, global.id);
    // the cursor starts once; a second node starting from "no cursor" moves nothing
    assert_eq!(c.notify_cursor().await.unwrap(), None);
    assert!(c.fan_out(None, 10, &[]).await.unwrap());
    assert!(!c.fan_out(None, 99, &[]).await.unwrap());
    assert_eq!(c.notify_cursor().await.unwrap(), Some(10));
    let row = |ch: &str, tenant: &str| NewNotification {
        channel_id: ch.into(),
        tenant_id: Some(tenant.into()),
        event: "backup_failed".into(),
        body: serde_json::json!({"event": "backup_failed"}),
    };
    // a tenant's channel takes only its own tenant's events
    assert!(
        c.fan_out(Some(10), 12, &[row(&theirs.id, &acme.id)])
            .await
            .is_err()
    );
    assert_eq!(c.notify_cursor().await.unwrap(), Some(10), "nothing moved");
    // two nodes fanning out the same rows: one wins
    let batch = [row(&mine.id, &acme.id), row(&global.id, &acme.id)];
    let (a, b) = tokio::join!(
        c.fan_out(Some(10), 12, &batch),
        c.fan_out(Some(10), 12, &batch)
    );
    assert_eq!(
        [a.unwrap(), b.unwrap()].iter().filter(|x| **x).count(),
        1,
        "exactly one fan-out"
    );
    assert_eq!(c.notify_cursor().await.unwrap(), Some(12));
    assert_eq!(count(&c, "SELECT COUNT(*) FROM notifications").await, 2);
    // taken, failed, queued again; then delivered
    let n = c
        .claim(&NOTIFICATIONS, "w", minutes(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((n.status.as_str(), n.attempts), ("sending", 1));
    let again = c
        .finish_notification(
            &n.id,
            "w",
            Err("500".into()),
            Some(SignedDuration::from_secs(0)),
        )
        .await
        .unwrap();
    assert_eq!(
        (again.status.as_str(), again.last_error.as_deref()),
        ("queued", Some("500"))
    );
    assert_eq!(
        c.channel(&n.channel_id)
            .await
            .unwrap()
            .last_status
            .as_deref(),
        Some("failed")
    );
    // not held by another worker
    let mut taken = Vec::new();
    while let Some(t) = c.claim(&NOTIFICATIONS, "w2", minutes(1)).await.unwrap() {
        taken.push(t);
    }
    assert_eq!(taken.len(), 2);
    assert!(
        c.finish_notification(&taken[0].id, "w", Ok(()), None)
            .await
            .is_err()
    );
    for t in &taken {
        let done = c
            .finish_notification(&t.id, "w2", Ok(()), None)
            .await
            .unwrap();
        assert_eq!(done.status, "delivered");
        assert!(done.delivered_at.is_some());
    }
    let twice = taken.iter().find(|t| t.id == n.id).unwrap();
    assert_eq!(twice.attempts, 2);
    // a deleted channel: its queued deliveries dropped, gone from lists
    c.queue_notification(&row(&mine.id, &acme.id))
        .await
        .unwrap();
    c.delete_channel(&mine.id, &system()).await.unwrap();
    assert!(
        c.claim(&NOTIFICATIONS, "w", minutes(1))
            .await
            .unwrap()
            .is_none()
    );
    assert!(c.channels(Some(&acme.id)).await.unwrap().is_empty());
    assert!(c.open_channel(&mine.id).await.is_err());
    let listed = c.notifications(&mine.id, 10).await.unwrap();
    assert_eq!(listed[0].status, "failed");
}

async fn health_and_the_evidence_report_read_the_runs_and_drills(db: Db) {
    let c = db.open().await;
    let t = tenant(&c, "acme").await;
    let s = source(&c, &t, "site").await;
    let first = done_backup(&c, &t, &s, "aa11").await;
    // a failed run, then a success: a recovery
    let q = c
        .enqueue_backup(&s, &t.repository, None, 1, &system())
        .await
        .unwrap()
        .unwrap();
    c.claim(&BACKUPS, "w", minutes(1)).await.unwrap().unwrap();
    c.fail_backup(
        &q.id,
        Some("w"),
        "disk full",
        FailureKind::Permanent,
        minutes(1),
    )
    .await
    .unwrap();
    let last = done_backup(&c, &t, &s, "bb22").await;
    assert_eq!(
        c.previous_outcome(&s.id, &last, false)
            .await
            .unwrap()
            .as_deref(),
        Some("failed")
    );
    assert_eq!(
        c.previous_outcome(&s.id, &first, false).await.unwrap(),
        None
    );
    // two drills: one passes (2.5 s), the next fails
    let mut drills = Vec::new();
    for outcome in [
        Ok(serde_json::json!({"duration_seconds": 2.5})),
        Err("MAC check failed".to_string()),
    ] {
        let d = c
            .enqueue_drill(&c.backup(&last).await.unwrap(), &system())
            .await
            .unwrap();
        c.claim(&RESTORES, "w", minutes(1)).await.unwrap().unwrap();
        drills.push(c.finish_restore(&d.id, Some("w"), outcome).await.unwrap());
    }
    let states = c.drill_states(&t.id).await.unwrap();
    let state = &states[&s.id];
    assert_eq!(
        state.last.id, drills[1].id,
        "the newest, whatever its status"
    );
    assert_eq!(state.passed_at, drills[0].finished_at);
    assert_eq!(
        c.previous_outcome(&s.id, &drills[1].id, true)
            .await
            .unwrap()
            .as_deref(),
        Some("done")
    );
    // the source's health from the same rows
    let runs = c.recent_runs(&t.id, 1).await.unwrap();
    let h = holdfast_service::health::assess(
        &s,
        runs.iter().find(|r| r.source_id == s.id),
        Some(state),
        jiff::Timestamp::now(),
        &jiff::tz::TimeZone::UTC,
    );
    assert_eq!(h.last_backup.as_ref().unwrap().id, last);
    assert_eq!(h.last_drill.as_ref().unwrap().status, "failed");
    assert!(!h.backup_overdue && !h.drill_overdue);
    // an event told once per slot, however many nodes try
    let once = |node: &'static str| {
        let c = c.clone();
        let (tid, sid) = (t.id.clone(), s.id.clone());
        async move {
            c.audit_once(
                ("overdue:backup:x", "2026-12-01T03:00:00.000Z", node),
                &tid,
                "source_overdue",
                &sid,
                serde_json::json!({"kind": "backup"}),
            )
            .await
            .unwrap()
        }
    };
    let (a, b) = tokio::join!(once("n1"), once("n2"));
    assert!(a ^ b, "exactly one node tells it");
    assert_eq!(events(&c, "source_overdue", 10).await.items.len(), 1);
    // the evidence report counts the same rows
    let now = jiff::Timestamp::now();
    let report = holdfast_service::report::build(
        &c,
        &t,
        now - jiff::SignedDuration::from_hours(1),
        now + jiff::SignedDuration::from_hours(1),
    )
    .await
    .unwrap();
    let e = &report.sources[0];
    assert_eq!(
        (
            e.backups_succeeded,
            e.backups_failed,
            e.drills_succeeded,
            e.drills_failed
        ),
        (2, 1, 1, 1)
    );
    assert_eq!(
        (e.last_drill_seconds, e.slowest_drill_seconds),
        (Some(2.5), Some(2.5))
    );
    let head = c.audit_head().await.unwrap().unwrap();
    assert_eq!(report.audit_head.as_ref().unwrap().seq, head.seq);
    let signed = holdfast_service::report::sign(c.key(), &report);
    let public = holdfast_service::report::public_key(c.key());
    assert_eq!(
        holdfast_service::report::verify(&signed.to_string(), &public).unwrap(),
        report
    );
}

fn assert_conflict_or_not_found<T: std::fmt::Debug>(r: Result<T, CatalogError>) {
    assert!(
        matches!(r, Err(CatalogError::NotFound { .. })),
        "another tenant's verification: {r:?}"
    );
}

async fn recent_runs_are_each_sources_newest(db: Db) {
    let c = db.open().await;
    let t = tenant(&c, "acme").await;
    let (a, b) = (source(&c, &t, "a").await, source(&c, &t, "b").await);
    let idle = source(&c, &t, "idle").await;
    let mut ids = std::collections::HashMap::<String, Vec<String>>::new();
    // a: five runs, the first three finished (sizes 1234), two queued;
    // b: two failed
    for i in 0..5 {
        for s in [&a, &b] {
            if s.id == b.id && i >= 2 {
                continue;
            }
            let q = c
                .enqueue_backup(s, &t.repository, None, 1, &system())
                .await
                .unwrap()
                .unwrap();
            ids.entry(s.id.clone()).or_default().push(q.id.clone());
            if s.id == b.id || i < 3 {
                let run = c.claim(&BACKUPS, "w", minutes(1)).await.unwrap().unwrap();
                assert_eq!(run.id, q.id);
                if s.id == a.id {
                    c.finish_backup(&run.id, "w", &outcome("s")).await.unwrap();
                } else {
                    c.fail_backup(
                        &run.id,
                        Some("w"),
                        "broken",
                        FailureKind::Permanent,
                        minutes(1),
                    )
                    .await
                    .unwrap();
                }
            }
        }
    }
    // the chart covers the newest 4 runs of a: two of them finished
    let runs = c.recent_runs(&t.id, 4).await.unwrap();
    let of = |s: &str| runs.iter().find(|r| r.source_id == s).unwrap().clone();
    let ra = of(&a.id);
    assert_eq!(ra.last.as_ref().unwrap().id, ids[&a.id][4], "a's newest");
    assert_eq!(ra.last.as_ref().unwrap().status, "queued");
    let success = ra.success.as_ref().unwrap();
    assert_eq!(success.id, ids[&a.id][2], "a's newest success");
    assert_eq!((success.size, success.bytes_added), (Some(1234), Some(56)));
    assert!(success.finished_at.is_some());
    assert_eq!(ra.chart.len(), 2, "{:?}", ra.chart);
    assert!(
        ra.chart
            .iter()
            .all(|&(size, secs)| size == 1234 && secs >= 0)
    );
    let rb = of(&b.id);
    assert_eq!(rb.last.as_ref().unwrap().id, ids[&b.id][1]);
    assert_eq!(rb.last.as_ref().unwrap().status, "failed");
    assert!(rb.success.is_none() && rb.chart.is_empty(), "{rb:?}");
    let ri = of(&idle.id);
    assert!(ri.last.is_none() && ri.success.is_none() && ri.chart.is_empty());
    assert_eq!(runs.len(), 3, "one summary per source");
    // another tenant's runs never appear
    let other = tenant(&c, "globex").await;
    assert!(c.recent_runs(&other.id, 3).await.unwrap().is_empty());
}

async fn sessions_end_with_sign_out_and_with_their_token(db: Db) {
    let c = db.open().await;
    let t = tenant(&c, "acme").await;
    let (tok, _) = c
        .create_token(Role::Viewer, Some(&t.id), "auditor", &system())
        .await
        .unwrap();
    let (s1, secret1) = c
        .create_session(&tok, jiff::SignedDuration::from_hours(1))
        .await
        .unwrap();
    let (_, secret2) = c
        .create_session(&tok, jiff::SignedDuration::from_hours(1))
        .await
        .unwrap();
    let (live, who) = c.session(&secret1).await.unwrap().unwrap();
    assert_eq!(
        (live.id.as_str(), who.id.as_str()),
        (s1.id.as_str(), tok.id.as_str())
    );
    assert!(c.session("not-a-secret").await.unwrap().is_none());
    // an expired session is gone
    let (_, old) = c
        .create_session(&tok, jiff::SignedDuration::from_secs(-1))
        .await
        .unwrap();
    assert!(c.session(&old).await.unwrap().is_none());
    // sign-out ends one, once (one audit row)
    c.end_session(&s1, &tok).await.unwrap();
    c.end_session(&s1, &tok).await.unwrap();
    assert!(c.session(&secret1).await.unwrap().is_none());
    assert!(c.session(&secret2).await.unwrap().is_some());
    assert_eq!(
        count(
            &c,
            "SELECT count(*) FROM audit_log WHERE event = 'session_ended'"
        )
        .await,
        1
    );
    // revoking the token ends the rest
    c.revoke_token(&tok.id, &system()).await.unwrap();
    assert!(c.session(&secret2).await.unwrap().is_none());
    // only hashes are stored
    assert_eq!(
        count(
            &c,
            &format!("SELECT count(*) FROM ui_sessions WHERE secret_hash = '{secret2}'")
        )
        .await,
        0
    );
}

fn system() -> Actor {
    Actor::system()
}

async fn schema_versions(c: &Catalog) -> Vec<i64> {
    sqlx::query("SELECT version FROM holdfast_schema ORDER BY version")
        .fetch_all(c.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get::<i64, _>("version").unwrap())
        .collect()
}

async fn count(c: &Catalog, sql: &str) -> i64 {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(c.pool())
        .await
        .unwrap()
        .try_get::<i64, _>(0)
        .unwrap()
}

async fn tenant(c: &Catalog, name: &str) -> Tenant {
    c.create_tenant(
        &new_id(),
        name,
        &format!("/srv/repos/{name}"),
        "repo-pw",
        &system(),
    )
    .await
    .unwrap()
}

async fn source(c: &Catalog, t: &Tenant, name: &str) -> Source {
    c.create_source(
        &t.id,
        SourceFields {
            name: Some(name.into()),
            kind: Some("command".into()),
            target: Some("echo hello".into()),
            ..Default::default()
        },
        "admin",
        &system(),
    )
    .await
    .unwrap()
}

/// Update source `s` of tenant `t` as the admin.
async fn update(
    c: &Catalog,
    t: &Tenant,
    s: &Source,
    f: SourceFields,
) -> Result<Source, CatalogError> {
    c.update_source(&t.id, &s.id, f, "admin", &system()).await
}

/// The call failed with a conflict (`what` starts the panic's message).
fn assert_conflict<T>(r: Result<T, CatalogError>, what: &str) {
    match r {
        Err(CatalogError::Conflict(_)) => {}
        Err(e) => panic!("{what}{e}"),
        Ok(_) => panic!("{what}no conflict"),
    }
}

/// Four workers (`worker-0` to `worker-3`) race: each calls `claim` with
/// its name until it gets nothing, yielding after every claim; the ids
/// each worker got.
async fn four_workers_claim<F, Fut>(c: &Catalog, claim: F) -> Vec<Vec<String>>
where
    F: Fn(Catalog, String) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Option<String>> + Send + 'static,
{
    let mut tasks = Vec::new();
    for w in 0..4 {
        let (c, claim) = (c.clone(), claim.clone());
        tasks.push(tokio::spawn(async move {
            let name = format!("worker-{w}");
            let mut got = Vec::new();
            while let Some(id) = claim(c.clone(), name.clone()).await {
                got.push(id);
                tokio::task::yield_now().await;
            }
            got
        }));
    }
    let mut per_worker = Vec::new();
    for t in tasks {
        per_worker.push(t.await.unwrap());
    }
    per_worker
}

fn minutes(n: i64) -> SignedDuration {
    SignedDuration::from_secs(60 * n)
}

fn outcome(snapshot: &str) -> Outcome {
    Outcome {
        snapshot_id: snapshot.into(),
        size: 1234,
        bytes_added: 56,
        counts: serde_json::json!({"files": 3}),
        warnings: vec!["one".into()],
    }
}

/// Sources from before the trust boundary get `defined_by = admin` only
/// when an admin token created them and no other token changed them since.
async fn migration_5_keeps_admin_trust_only_where_the_audit_log_shows_it(db: Db) {
    let c = db.open().await;
    let t = tenant(&c, "acme").await;
    let (admin, _) = c
        .create_token(Role::Admin, None, "admin", &system())
        .await
        .unwrap();
    let (op, _) = c
        .create_token(Role::Operator, Some(&t.id), "op", &system())
        .await
        .unwrap();
    let new = |name: &str| SourceFields {
        name: Some(name.into()),
        kind: Some("directory".into()),
        target: Some(format!("/srv/{name}")),
        ..Default::default()
    };
    let by_admin = c
        .create_source(&t.id, new("a"), "admin", &admin.actor())
        .await
        .unwrap();
    let by_op = c
        .create_source(&t.id, new("o"), "operator", &op.actor())
        .await
        .unwrap();
    let changed = c
        .create_source(&t.id, new("c"), "admin", &admin.actor())
        .await
        .unwrap();
    c.update_source(
        &t.id,
        &changed.id,
        SourceFields {
            schedule: Some(None),
            ..Default::default()
        },
        "operator",
        &op.actor(),
    )
    .await
    .unwrap();
    // back to the schema before step 5
    for sql in [
        "DROP TABLE notify_cursor",
        "DROP TABLE notifications",
        "DROP TABLE channels",
        "DELETE FROM holdfast_schema WHERE version = 11",
        "DROP TABLE verifications",
        "ALTER TABLE backups DROP COLUMN damaged_at",
        "ALTER TABLE backups DROP COLUMN damage",
        "DELETE FROM holdfast_schema WHERE version = 10",
        "DROP INDEX restores_tenant_drills",
        "ALTER TABLE restores DROP COLUMN drill",
        "DELETE FROM holdfast_schema WHERE version = 9",
        "DROP INDEX restores_tenant_done",
        "DROP INDEX backups_tenant_source_runs",
        "CREATE INDEX backups_tenant_source ON backups (tenant_id, source_id, id)",
        "ALTER TABLE restores DROP COLUMN in_place",
        "DELETE FROM holdfast_schema WHERE version = 8",
        "DROP TABLE ui_sessions",
        "DROP INDEX audit_subject",
        "DROP INDEX backups_tenant_kind",
        "DROP INDEX restores_backup",
        "ALTER TABLE backups DROP COLUMN progress",
        "ALTER TABLE restores DROP COLUMN progress",
        "DELETE FROM holdfast_schema WHERE version = 7",
        "ALTER TABLE tenants DROP COLUMN storage_credentials",
        "DELETE FROM holdfast_schema WHERE version = 6",
        "ALTER TABLE tenants DROP COLUMN policy",
        "ALTER TABLE sources DROP COLUMN defined_by",
        "ALTER TABLE restores DROP COLUMN defined_by",
        "DELETE FROM holdfast_schema WHERE version = 5",
    ] {
        sqlx::query(sql).execute(c.pool()).await.unwrap();
    }
    c.close().await;
    let c = db.open().await;
    assert_eq!(
        schema_versions(&c).await,
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    );
    let of = |s: &Source| {
        let c = c.clone();
        let id = s.id.clone();
        let tid = t.id.clone();
        async move { c.source(&tid, &id).await.unwrap().defined_by }
    };
    assert_eq!(of(&by_admin).await, "admin");
    assert_eq!(of(&by_op).await, "operator");
    // changed by an operator since: held to the policy
    assert_eq!(of(&changed).await, "operator");
    assert_eq!(c.tenant_policy(&t.id).await.unwrap(), serde_json::json!({}));
}

async fn migrations_apply_once_and_reopen_idempotently(db: Db) {
    // two nodes starting at once on an empty catalog: one migrates, the
    // other waits and finds it done
    let (a, b) = tokio::join!(db.open(), db.open());
    assert_eq!(
        schema_versions(&a).await,
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    );
    tenant(&a, "acme").await;
    a.close().await;
    b.close().await;
    let c = db.open().await;
    assert_eq!(
        schema_versions(&c).await,
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
        "reopening migrates nothing"
    );
    assert_eq!(c.tenants().await.unwrap().len(), 1, "and keeps the rows");
    c.ping().await.unwrap();
    assert!(!c.shown_url().contains("pg-secret"), "{}", c.shown_url());

    // a catalog newer than this binary is refused
    sqlx::query("INSERT INTO holdfast_schema (version, applied_at) VALUES (99, 'x')")
        .execute(c.pool())
        .await
        .unwrap();
    c.close().await;
    let e = Catalog::open(&db.url, ServerKey::from_bytes(db.key))
        .await
        .err()
        .expect("a newer schema is refused");
    assert!(
        matches!(
            e,
            CatalogError::Conflict(holdfast_catalog::Conflict::SchemaNewer { current: 99, .. })
        ),
        "{e}"
    );
}

async fn tenants_tokens_and_sources(db: Db) {
    let c = db.open().await;
    let t = tenant(&c, "acme").await;
    let other = tenant(&c, "other").await;
    assert_eq!(c.tenant("acme").await.unwrap().id, t.id);
    assert_eq!(c.tenant(&t.id).await.unwrap().name, "acme");
    assert!(matches!(
        c.tenant("nobody").await,
        Err(CatalogError::NotFound { .. })
    ));
    assert_conflict(
        c.create_tenant(&new_id(), "acme", "/x", "pw", &system())
            .await,
        "",
    );
    assert!(matches!(
        c.create_tenant(&new_id(), "../x", "/x", "pw", &system())
            .await,
        Err(CatalogError::Invalid { .. })
    ));
    let names: Vec<String> = c
        .tenants()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["acme", "other"]);
    assert_eq!(c.tenant_password(&t.id).await.unwrap(), "repo-pw");

    // tokens: only the hash is stored; tenant-scoped listing; revoke once
    let (admin, admin_secret) = c
        .create_token(Role::Admin, None, "", &system())
        .await
        .unwrap();
    assert_eq!(admin.label, "admin token");
    let (op, op_secret) = c
        .create_token(Role::Operator, Some(&t.id), "ci", &admin.actor())
        .await
        .unwrap();
    c.create_token(Role::Viewer, Some(&other.id), "", &admin.actor())
        .await
        .unwrap();
    assert!(matches!(
        c.create_token(Role::Viewer, None, "", &system()).await,
        Err(CatalogError::Invalid { .. })
    ));
    let stored = count(
        &c,
        &format!("SELECT COUNT(*) FROM tokens WHERE secret_hash = '{op_secret}'"),
    )
    .await;
    assert_eq!(stored, 0, "the secret itself is not stored");
    let who = c.authenticate(&op_secret).await.unwrap().unwrap();
    assert_eq!(
        (who.id.as_str(), who.role, who.tenant_id.as_deref()),
        (op.id.as_str(), Role::Operator, Some(t.id.as_str()))
    );
    assert_eq!(
        c.authenticate(&admin_secret).await.unwrap().unwrap().role,
        Role::Admin
    );
    assert!(c.authenticate("hf_nope").await.unwrap().is_none());
    assert_eq!(c.tokens(None).await.unwrap().len(), 3);
    let mine: Vec<String> = c
        .tokens(Some(&t.id))
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(mine, std::slice::from_ref(&op.id));
    let revoked = c.revoke_token(&op.id, &admin.actor()).await.unwrap();
    assert!(revoked.revoked_at.is_some());
    let again = c.revoke_token(&op.id, &admin.actor()).await.unwrap();
    assert_eq!(again.revoked_at, revoked.revoked_at);
    assert!(c.authenticate(&op_secret).await.unwrap().is_none());
    assert_eq!(c.token(&op.id).await.unwrap().label, "ci");
    let revokes = events(&c, "token_revoked", 10).await;
    assert_eq!(revokes.items.len(), 1, "revoking twice audits once");
    assert_eq!(revokes.items[0].actor, admin.actor());

    // sources: credentials write-only, names unique per tenant among live ones
    let s = c
        .create_source(
            &t.id,
            SourceFields {
                name: Some("db".into()),
                kind: Some("postgres".into()),
                target: Some("postgres://app@db/app".into()),
                options: Some(serde_json::json!({"mode": "dump"})),
                schedule: Some(Some("0 3 * * *".into())),
                retention: Some(serde_json::json!({"max_age_days": 7})),
                credentials: Some(Some("db-secret".into())),
            },
            "admin",
            &system(),
        )
        .await
        .unwrap();
    assert!(s.has_credentials);
    assert_eq!(s.options["mode"], "dump");
    assert_eq!(s.retention["max_age_days"], 7);
    assert_eq!(
        c.source_credentials(&s.id).await.unwrap().as_deref(),
        Some("db-secret")
    );
    let stored = count(
        &c,
        "SELECT COUNT(*) FROM sources WHERE credentials LIKE '%db-secret%'",
    )
    .await;
    assert_eq!(stored, 0, "credentials are sealed");
    let plain = source(&c, &t, "files").await;
    assert!(!plain.has_credentials && plain.schedule.is_none());
    assert_conflict(
        c.create_source(
            &t.id,
            SourceFields {
                name: Some("db".into()),
                kind: Some("command".into()),
                target: Some("true".into()),
                ..Default::default()
            },
            "admin",
            &system(),
        )
        .await,
        "",
    );
    source(&c, &other, "db").await; // another tenant may use the name
    assert!(matches!(
        c.source(&other.id, &s.id).await,
        Err(CatalogError::NotFound { .. })
    ));
    let names: Vec<String> = c
        .sources(&t.id)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["db", "files"]);
    let scheduled: Vec<String> = c
        .scheduled_sources()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(scheduled, std::slice::from_ref(&s.id));

    // update: unchanged fields stay, credentials only when given
    let u = update(
        &c,
        &t,
        &s,
        SourceFields {
            target: Some("postgres://app@db2/app".into()),
            schedule: Some(None),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        (u.name.as_str(), u.target.as_str(), u.schedule.as_deref()),
        ("db", "postgres://app@db2/app", None)
    );
    assert_eq!(u.options["mode"], "dump");
    // credentials follow their target: a new target without new ones
    // drops them (they were given for the old host)
    assert!(!u.has_credentials, "a new target drops the credentials");
    assert_eq!(c.source_credentials(&s.id).await.unwrap(), None);
    assert!(u.updated_at >= s.updated_at);
    assert!(c.scheduled_sources().await.unwrap().is_empty());
    let rename_to_files = SourceFields {
        name: Some("files".into()),
        ..Default::default()
    };
    assert_conflict(update(&c, &t, &s, rename_to_files).await, "");
    let u = update(
        &c,
        &t,
        &s,
        SourceFields {
            credentials: Some(None),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(!u.has_credentials);
    assert_eq!(c.source_credentials(&s.id).await.unwrap(), None);
    let u = update(
        &c,
        &t,
        &s,
        SourceFields {
            credentials: Some(Some("new-secret".into())),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(u.has_credentials);
    assert_eq!(
        c.source_credentials(&s.id).await.unwrap().as_deref(),
        Some("new-secret")
    );

    // delete: gone from the tenant's view, its name free again
    c.delete_source(&t.id, &plain.id, &system()).await.unwrap();
    assert!(matches!(
        c.source(&t.id, &plain.id).await,
        Err(CatalogError::NotFound { .. })
    ));
    assert_eq!(c.sources(&t.id).await.unwrap().len(), 1);
    source(&c, &t, "files").await;

    assert!(c.verify_audit().await.unwrap().is_ok());
}

async fn a_scheduled_slot_is_queued_once(db: Db) {
    let c = db.open().await;
    let t = tenant(&c, "acme").await;
    let s = source(&c, &t, "files").await;
    let slot = "2026-01-02T03:00:00Z";
    let first = c
        .enqueue_backup(&s, &t.repository, Some(slot), 3, &system())
        .await
        .unwrap()
        .expect("the first request for a slot queues a run");
    assert_eq!(
        (first.kind.as_str(), first.status.as_str(), first.attempts),
        ("scheduled", "queued", 0)
    );
    assert_eq!(first.max_attempts, 3);
    assert!(
        c.enqueue_backup(&s, &t.repository, Some(slot), 3, &system())
            .await
            .unwrap()
            .is_none(),
        "the second request for the same slot queues nothing"
    );
    // nodes' schedulers racing for one slot: one run
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (c, s, repo) = (c.clone(), s.clone(), t.repository.clone());
        tasks.push(tokio::spawn(async move {
            c.enqueue_backup(&s, &repo, Some("2026-01-02T04:00:00Z"), 3, &system())
                .await
                .unwrap()
                .is_some()
        }));
    }
    let mut queued = 0;
    for task in tasks {
        queued += task.await.unwrap() as usize;
    }
    assert_eq!(queued, 1, "one run for the raced slot");
    // another slot, and on-demand runs (no slot), queue as often as asked
    assert!(
        c.enqueue_backup(
            &s,
            &t.repository,
            Some("2026-01-03T03:00:00Z"),
            3,
            &system()
        )
        .await
        .unwrap()
        .is_some()
    );
    for _ in 0..2 {
        let b = c
            .enqueue_backup(&s, &t.repository, None, 0, &system())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((b.kind.as_str(), b.max_attempts), ("on_demand", 1));
    }
    assert_eq!(c.queue_depth().await.unwrap(), 5);
    let created = events(&c, "backup_created", 100).await;
    assert_eq!(created.items.len(), 5, "one backup_created per queued run");
}

async fn claim_heartbeat_finish(db: Db) {
    let c = db.open().await;
    let t = tenant(&c, "acme").await;
    let s = source(&c, &t, "files").await;
    assert!(c.claim(&BACKUPS, "w1", minutes(1)).await.unwrap().is_none());
    let q = c
        .enqueue_backup(&s, &t.repository, None, 3, &system())
        .await
        .unwrap()
        .unwrap();
    let b = c.claim(&BACKUPS, "w1", minutes(1)).await.unwrap().unwrap();
    assert_eq!(b.id, q.id);
    assert_eq!(
        (b.status.as_str(), b.attempts, b.lease_owner.as_deref()),
        ("running", 1, Some("w1"))
    );
    assert!(b.started_at.is_some());
    assert!(c.claim(&BACKUPS, "w2", minutes(1)).await.unwrap().is_none());
    assert_eq!(c.queue_depth().await.unwrap(), 0);

    let lease_before: String = lease_until(&c, &b.id).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert!(c.heartbeat(&b.id, "w1", minutes(1), true).await.unwrap());
    assert!(lease_until(&c, &b.id).await.unwrap() > lease_before);
    assert!(c.heartbeat(&b.id, "w1", minutes(1), false).await.unwrap());
    assert!(
        !c.heartbeat(&b.id, "w2", minutes(1), true).await.unwrap(),
        "another worker does not hold the lease"
    );
    assert_conflict(c.finish_backup(&b.id, "w2", &outcome("s1")).await, "");

    let done = c.finish_backup(&b.id, "w1", &outcome("s1")).await.unwrap();
    assert_eq!(done.status, "done");
    assert_eq!(done.snapshot_id.as_deref(), Some("s1"));
    assert_eq!((done.size, done.bytes_added), (Some(1234), Some(56)));
    assert_eq!(done.counts, Some(serde_json::json!({"files": 3})));
    assert_eq!(done.warnings, ["one"]);
    assert_eq!((done.lease_owner, done.error), (None, None));
    assert!(done.finished_at.is_some());
    assert_eq!(lease_until(&c, &b.id).await, None);
    assert!(!c.heartbeat(&b.id, "w1", minutes(1), true).await.unwrap());
    assert_conflict(
        c.finish_backup(&b.id, "w1", &outcome("s2")).await,
        "finished once: ",
    );
    assert_eq!(
        c.backup(&b.id).await.unwrap().snapshot_id.as_deref(),
        Some("s1")
    );
    assert!(c.claim(&BACKUPS, "w1", minutes(1)).await.unwrap().is_none());
    let ok = events(&c, "backup_succeeded", 10).await;
    assert_eq!(ok.items.len(), 1);
    assert_eq!(ok.items[0].subject.as_deref(), Some(b.id.as_str()));
}

/// The first `limit` audit rows of `event`.
async fn events(c: &Catalog, event: &str, limit: i64) -> holdfast_catalog::audit::AuditPage {
    c.audit_page(
        &AuditFilter {
            event: Some(event.into()),
            ..Default::default()
        },
        limit,
        None,
    )
    .await
    .unwrap()
}

async fn lease_until(c: &Catalog, id: &str) -> Option<String> {
    sqlx::query("SELECT lease_until FROM backups WHERE id = $1")
        .bind(id)
        .fetch_one(c.pool())
        .await
        .unwrap()
        .try_get("lease_until")
        .unwrap()
}

async fn failures_retry_or_fail(db: Db) {
    let c = db.open().await;
    let t = tenant(&c, "acme").await;
    let s = source(&c, &t, "files").await;

    // transient with attempts left: queued again, later
    let q = c
        .enqueue_backup(&s, &t.repository, None, 2, &system())
        .await
        .unwrap()
        .unwrap();
    let b = c.claim(&BACKUPS, "w1", minutes(1)).await.unwrap().unwrap();
    assert_conflict(
        c.fail_backup(&b.id, Some("w2"), "x", FailureKind::Transient, minutes(1))
            .await,
        "not w2's: ",
    );
    let f = c
        .fail_backup(
            &b.id,
            Some("w1"),
            "connection reset",
            FailureKind::Transient,
            minutes(10),
        )
        .await
        .unwrap();
    assert_eq!(f.status, "queued");
    assert_eq!(f.error_kind.as_deref(), Some("transient"));
    assert_eq!(f.error.as_deref(), Some("connection reset"));
    assert_eq!((f.attempts, f.lease_owner.as_deref()), (1, None));
    assert!(f.finished_at.is_none());
    assert!(
        f.run_after > q.run_after && f.run_after >= holdfast_catalog::clock::after(minutes(9)),
        "{} after {}",
        f.run_after,
        q.run_after
    );
    assert!(
        c.claim(&BACKUPS, "w1", minutes(1)).await.unwrap().is_none(),
        "not before its run_after"
    );
    assert_eq!(c.queue_depth().await.unwrap(), 1);
    let events: Vec<String> = subject_events(&c, &b.id).await;
    assert_eq!(
        events,
        ["backup_created", "backup_failed", "backup_retried"]
    );

    // the retry comes due; the last attempt fails transiently: failed
    sqlx::query("UPDATE backups SET run_after = $1 WHERE id = $2")
        .bind(holdfast_catalog::clock::now())
        .bind(&b.id)
        .execute(c.pool())
        .await
        .unwrap();
    let b2 = c.claim(&BACKUPS, "w1", minutes(1)).await.unwrap().unwrap();
    assert_eq!((b2.id.as_str(), b2.attempts), (b.id.as_str(), 2));
    let f = c
        .fail_backup(
            &b.id,
            Some("w1"),
            "again",
            FailureKind::Transient,
            minutes(1),
        )
        .await
        .unwrap();
    assert_eq!((f.status.as_str(), f.attempts), ("failed", 2));
    assert!(f.finished_at.is_some());

    // permanent: failed at once, attempts left or not
    c.enqueue_backup(&s, &t.repository, None, 5, &system())
        .await
        .unwrap()
        .unwrap();
    let p = c.claim(&BACKUPS, "w1", minutes(1)).await.unwrap().unwrap();
    let f = c
        .fail_backup(
            &p.id,
            Some("w1"),
            "authentication failed",
            FailureKind::Permanent,
            minutes(1),
        )
        .await
        .unwrap();
    assert_eq!(
        (f.status.as_str(), f.error_kind.as_deref(), f.attempts),
        ("failed", Some("permanent"), 1)
    );
    assert!(f.finished_at.is_some());
    assert_eq!(
        subject_events(&c, &p.id).await,
        ["backup_created", "backup_failed"]
    );
    let failed = c
        .backups_page(
            &t.id,
            &BackupFilter {
                status: Some("failed".into()),
                source_id: None,
                kind: None,
            },
            10,
            None,
        )
        .await
        .unwrap();
    assert_eq!(failed.items.len(), 2);
    assert!(c.verify_audit().await.unwrap().is_ok());
}

async fn subject_events(c: &Catalog, subject: &str) -> Vec<String> {
    c.audit_after(&AuditFilter::default(), 0, 10_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.subject.as_deref() == Some(subject))
        .map(|r| r.event)
        .collect()
}

async fn orphans_are_expired_leases_or_every_running_row(db: Db) {
    let c = db.open().await;
    let t = tenant(&c, "acme").await;
    let s = source(&c, &t, "files").await;
    for _ in 0..4 {
        c.enqueue_backup(&s, &t.repository, None, 3, &system())
            .await
            .unwrap()
            .unwrap();
    }
    // a lease that has already run out, one that has not, one that ran out
    // but is renewed before recovery gets to it, one run still queued
    let expired = c
        .claim(&BACKUPS, "gone", SignedDuration::from_secs(-5))
        .await
        .unwrap()
        .unwrap();
    let live = c
        .claim(&BACKUPS, "alive", minutes(5))
        .await
        .unwrap()
        .unwrap();
    let late = c
        .claim(&BACKUPS, "slowpoke", SignedDuration::from_secs(-5))
        .await
        .unwrap()
        .unwrap();
    let ids = |v: Vec<holdfast_catalog::backups::Backup>| -> BTreeSet<String> {
        v.into_iter().map(|b| b.id).collect()
    };
    assert_eq!(
        ids(c.orphaned_backups(false).await.unwrap()),
        BTreeSet::from([expired.id.clone(), late.id.clone()])
    );
    assert_eq!(
        ids(c.orphaned_backups(true).await.unwrap()),
        BTreeSet::from([expired.id.clone(), live.id.clone(), late.id.clone()])
    );
    // the slow worker renews its lease after the list was read: recovery,
    // checking again under the row's lock, leaves it alone
    assert!(
        c.heartbeat(&late.id, "slowpoke", minutes(5), false)
            .await
            .unwrap()
    );
    assert!(
        c.interrupt_backup(&late.id, false, "x", SignedDuration::ZERO)
            .await
            .unwrap()
            .is_none()
    );
    let still = c.backup(&late.id).await.unwrap();
    assert_eq!(
        (still.status.as_str(), still.lease_owner.as_deref()),
        ("running", Some("slowpoke"))
    );
    assert_eq!(
        ids(c.orphaned_backups(false).await.unwrap()),
        BTreeSet::from([expired.id.clone()])
    );

    // recovery on a shared catalog leaves a live lease alone; at the start
    // of the only node (`all_running`) it takes every running row
    assert!(
        c.interrupt_backup(&live.id, false, "x", SignedDuration::ZERO)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(c.backup(&live.id).await.unwrap().status, "running");
    let r = c
        .interrupt_backup(&live.id, true, "interrupted", minutes(5))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((r.status.as_str(), r.attempts), ("queued", 1));

    // recovery fails the expired one as interrupted and queues it again
    let r = c
        .interrupt_backup(&expired.id, false, "interrupted", SignedDuration::ZERO)
        .await
        .unwrap()
        .expect("an expired lease is recovered");
    assert_eq!(
        (r.status.as_str(), r.error_kind.as_deref(), r.attempts),
        ("queued", Some("interrupted"), 1)
    );
    assert!(c.orphaned_backups(false).await.unwrap().is_empty());
    assert!(
        c.interrupt_backup(&expired.id, true, "again", SignedDuration::ZERO)
            .await
            .unwrap()
            .is_none(),
        "recovered once"
    );
    // the old worker cannot record anything for it any more
    assert!(
        !c.heartbeat(&expired.id, "gone", minutes(1), true)
            .await
            .unwrap()
    );
    assert!(matches!(
        c.finish_backup(&expired.id, "gone", &outcome("late")).await,
        Err(CatalogError::Conflict(_))
    ));
    // both queued runs are taken again, the interrupted one among them
    let mut next = BTreeSet::new();
    while let Some(b) = c.claim(&BACKUPS, "w", minutes(1)).await.unwrap() {
        next.insert((b.id, b.attempts));
    }
    assert_eq!(next.len(), 2, "{next:?}");
    assert!(next.contains(&(expired.id.clone(), 2)), "{next:?}");
}

async fn only_a_failed_backup_is_retried(db: Db) {
    let c = db.open().await;
    let t = tenant(&c, "acme").await;
    let s = source(&c, &t, "files").await;
    let (op, _) = c
        .create_token(Role::Operator, Some(&t.id), "ops", &system())
        .await
        .unwrap();
    let q = c
        .enqueue_backup(&s, &t.repository, None, 1, &system())
        .await
        .unwrap()
        .unwrap();
    let conflict = |r: Result<_, CatalogError>| matches!(r, Err(CatalogError::Conflict(_)));
    assert!(conflict(c.retry_backup(&q.id, &op.actor()).await), "queued");
    c.claim(&BACKUPS, "w", minutes(1)).await.unwrap().unwrap();
    assert!(
        conflict(c.retry_backup(&q.id, &op.actor()).await),
        "running"
    );
    let f = c
        .fail_backup(&q.id, Some("w"), "boom", FailureKind::Transient, minutes(1))
        .await
        .unwrap();
    assert_eq!(f.status, "failed", "no attempts left");
    let r = c.retry_backup(&q.id, &op.actor()).await.unwrap();
    assert_eq!(
        (r.status.as_str(), r.attempts, r.max_attempts),
        ("queued", 1, 2)
    );
    assert!(r.finished_at.is_none());
    assert!(
        conflict(c.retry_backup(&q.id, &op.actor()).await),
        "queued again"
    );
    let b = c.claim(&BACKUPS, "w", minutes(1)).await.unwrap().unwrap();
    assert_eq!((b.id.as_str(), b.attempts), (q.id.as_str(), 2));
    c.finish_backup(&b.id, "w", &outcome("s")).await.unwrap();
    assert!(conflict(c.retry_backup(&q.id, &op.actor()).await), "done");
    assert!(matches!(
        c.retry_backup("no-such-id", &op.actor()).await,
        Err(CatalogError::NotFound { .. })
    ));
    let retried = events(&c, "backup_retried", 10).await;
    assert_eq!(retried.items.len(), 1);
    assert_eq!(retried.items[0].actor, op.actor());
    assert_eq!(retried.items[0].view().metadata["automatic"], false);
}

async fn backups_page_newest_first_with_a_stable_cursor(db: Db) {
    let c = db.open().await;
    let t = tenant(&c, "acme").await;
    let other = tenant(&c, "other").await;
    let a = source(&c, &t, "a").await;
    let b = source(&c, &t, "b").await;
    let x = source(&c, &other, "x").await;
    let mut queued = Vec::new();
    for i in 0..7 {
        let s = if i % 2 == 0 { &a } else { &b };
        let q = c
            .enqueue_backup(s, &t.repository, None, 3, &system())
            .await
            .unwrap()
            .unwrap();
        queued.push(q.id);
        c.enqueue_backup(&x, &other.repository, None, 3, &system())
            .await
            .unwrap()
            .unwrap();
    }
    let newest_first: Vec<String> = queued.iter().rev().cloned().collect();
    let all = BackupFilter::default();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = c
            .backups_page(&t.id, &all, 3, cursor.as_deref())
            .await
            .unwrap();
        pages += 1;
        seen.extend(page.items.iter().map(|b| b.id.clone()));
        if pages == 1 {
            // a run queued while paging does not move the later pages
            c.enqueue_backup(&a, &t.repository, None, 3, &system())
                .await
                .unwrap()
                .unwrap();
        }
        match page.next_before {
            Some(n) => {
                assert_eq!(Some(&n), seen.last());
                cursor = Some(n);
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, newest_first);
    // an exact multiple of the limit: the last full page says there is no more
    let page = c.backups_page(&t.id, &all, 8, None).await.unwrap();
    assert_eq!((page.items.len(), page.next_before), (8, None));

    let only_b = c
        .backups_page(
            &t.id,
            &BackupFilter {
                status: None,
                source_id: Some(b.id.clone()),
                kind: None,
            },
            100,
            None,
        )
        .await
        .unwrap();
    let want: Vec<String> = newest_first
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, id)| id.clone())
        .collect();
    assert_eq!(
        only_b
            .items
            .iter()
            .map(|b| b.id.clone())
            .collect::<Vec<_>>(),
        want
    );
    let running = c
        .backups_page(
            &t.id,
            &BackupFilter {
                status: Some("running".into()),
                source_id: Some(a.id.clone()),
                kind: None,
            },
            100,
            None,
        )
        .await
        .unwrap();
    assert!(running.items.is_empty());
    let theirs = c.backups_page(&other.id, &all, 100, None).await.unwrap();
    assert_eq!(theirs.items.len(), 7);
    assert!(theirs.items.iter().all(|b| b.tenant_id == other.id));
}

async fn the_audit_chain_verifies_and_catches_an_edit(db: Db) {
    let c = db.open().await;
    let t = tenant(&c, "acme").await;
    let s = source(&c, &t, "files").await;
    let (admin, _) = c
        .create_token(Role::Admin, None, "root", &system())
        .await
        .unwrap();
    c.enqueue_backup(&s, &t.repository, None, 3, &admin.actor())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.verify_audit().await.unwrap(), Ok(4));
    let page = c
        .audit_page(&AuditFilter::default(), 2, None)
        .await
        .unwrap();
    let seqs: Vec<i64> = page.items.iter().map(|r| r.seq).collect();
    assert_eq!((seqs, page.next_before), (vec![4, 3], Some(3)));
    let rest = c
        .audit_page(&AuditFilter::default(), 10, Some(3))
        .await
        .unwrap();
    assert_eq!(rest.items.iter().map(|r| r.seq).collect::<Vec<_>>(), [2, 1]);
    let first = &rest.items[1];
    assert_eq!(first.prev_hash, holdfast_catalog::chain::GENESIS);
    assert_eq!(first.event, "tenant_created");
    let mine = c
        .audit_page(
            &AuditFilter {
                tenant_id: Some(t.id.clone()),
                event: None,
                ..Default::default()
            },
            10,
            None,
        )
        .await
        .unwrap();
    assert_eq!(mine.items.len(), 3, "the admin token belongs to no tenant");
    let created = &mine.items[0];
    assert_eq!(created.event, "backup_created");
    assert_eq!(created.actor, admin.actor());
    assert_eq!(created.view().metadata["source_name"], "files");

    // a second catalog on the same database with the same key agrees
    let again = db.open().await;
    assert_eq!(again.verify_audit().await.unwrap(), Ok(4));
    // editing a row is caught, and named
    sqlx::query("UPDATE audit_log SET metadata = $1 WHERE seq = 2")
        .bind(r#"{"name":"evil","kind":"command"}"#)
        .execute(c.pool())
        .await
        .unwrap();
    assert_eq!(
        c.verify_audit().await.unwrap(),
        Err(ChainBreak::Edited { seq: 2 })
    );
}

async fn concurrent_audit_appends_leave_one_unbroken_chain(db: Db) {
    let c = db.open().await;
    let t = tenant(&c, "acme").await;
    let s = source(&c, &t, "files").await;
    let mut tasks = Vec::new();
    for task in 0..8 {
        let (c, t, s) = (c.clone(), t.clone(), s.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..20 {
                if (task + i) % 2 == 0 {
                    c.create_token(
                        Role::Viewer,
                        Some(&t.id),
                        &format!("t{task}-{i}"),
                        &system(),
                    )
                    .await
                    .unwrap();
                } else {
                    c.enqueue_backup(&s, &t.repository, None, 3, &system())
                        .await
                        .unwrap()
                        .unwrap();
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let rows = c
        .audit_after(&AuditFilter::default(), 0, 10_000)
        .await
        .unwrap();
    let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
    assert_eq!(
        seqs,
        (1..=162).collect::<Vec<i64>>(),
        "no gaps, no duplicates"
    );
    for w in rows.windows(2) {
        assert_eq!(
            w[1].prev_hash, w[0].hash,
            "row {} links to {}",
            w[1].seq, w[0].seq
        );
    }
    let mut by_event = BTreeMap::new();
    for r in &rows {
        *by_event.entry(r.event.as_str()).or_insert(0) += 1;
    }
    assert_eq!(
        by_event,
        BTreeMap::from([
            ("backup_created", 80),
            ("source_created", 1),
            ("tenant_created", 1),
            ("token_created", 80)
        ])
    );
    assert_eq!(c.verify_audit().await.unwrap(), Ok(162));
    assert_eq!(c.queue_depth().await.unwrap(), 80);
}

async fn concurrent_claims_hand_each_run_out_once(db: Db) {
    let c = db.open().await;
    let t = tenant(&c, "acme").await;
    let s = source(&c, &t, "files").await;
    let mut queued = BTreeSet::new();
    for _ in 0..40 {
        let q = c
            .enqueue_backup(&s, &t.repository, None, 3, &system())
            .await
            .unwrap()
            .unwrap();
        queued.insert(q.id);
    }
    let got = four_workers_claim(&c, |c, name| async move {
        let b = c.claim(&BACKUPS, &name, minutes(1)).await.unwrap()?;
        assert_eq!(b.lease_owner.as_deref(), Some(name.as_str()));
        assert_eq!(b.attempts, 1, "{} claimed twice", b.id);
        Some(b.id)
    })
    .await;
    let per_worker: Vec<usize> = got.iter().map(Vec::len).collect();
    let claimed = got.concat();
    assert_eq!(claimed.len(), 40, "per worker: {per_worker:?}");
    let unique: BTreeSet<String> = claimed.into_iter().collect();
    assert_eq!(unique, queued, "each run handed out exactly once");
    assert_eq!(c.queue_depth().await.unwrap(), 0);
    let attempts = count(
        &c,
        "SELECT COUNT(*) FROM backups WHERE status = 'running' AND attempts = 1",
    )
    .await;
    assert_eq!(attempts, 40);
}

async fn concurrent_creates_of_one_source_name_leave_one(db: Db) {
    let c = db.open().await;
    let t = tenant(&c, "acme").await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (c, t) = (c.clone(), t.clone());
        tasks.push(tokio::spawn(async move {
            c.create_source(
                &t.id,
                SourceFields {
                    name: Some("db".into()),
                    kind: Some("command".into()),
                    target: Some(format!("echo {i}")),
                    ..Default::default()
                },
                "admin",
                &system(),
            )
            .await
        }));
    }
    let mut created = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => created += 1,
            Err(CatalogError::Conflict(holdfast_catalog::Conflict::NameTaken { what, name })) => {
                assert_eq!((what, name.as_str()), ("source", "db"))
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(created, 1);
    assert_eq!(c.sources(&t.id).await.unwrap().len(), 1);
    assert!(c.verify_audit().await.unwrap().is_ok());
}

/// A worker finishing a run whose lease ran out races recovery failing it:
/// exactly one of them wins, and the row says which.
async fn finish_and_recovery_race_with_one_winner(db: Db) {
    let c = db.open().await;
    let t = tenant(&c, "acme").await;
    let s = source(&c, &t, "files").await;
    for _ in 0..40 {
        c.enqueue_backup(&s, &t.repository, None, 3, &system())
            .await
            .unwrap()
            .unwrap();
    }
    let mut runs = Vec::new();
    while let Some(b) = c
        .claim(&BACKUPS, "slow", SignedDuration::from_secs(-1))
        .await
        .unwrap()
    {
        runs.push(b.id);
    }
    assert_eq!(runs.len(), 40);
    let mut tasks = Vec::new();
    for id in runs {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let o = outcome("snap");
            let (finished, recovered) = tokio::join!(
                c.finish_backup(&id, "slow", &o),
                c.interrupt_backup(&id, false, "interrupted", SignedDuration::ZERO),
            );
            let recovered = match recovered {
                Ok(r) => r.is_some(),
                Err(e) => panic!("{e}"),
            };
            (id, finished.is_ok(), recovered)
        }));
    }
    for task in tasks {
        let (id, finished, recovered) = task.await.unwrap();
        let b = c.backup(&id).await.unwrap();
        assert!(
            finished != recovered,
            "{id}: finished {finished}, recovered {recovered}, now {}",
            b.status
        );
        let want = if finished { "done" } else { "queued" };
        assert_eq!(b.status, want, "{id}");
        let events = subject_events(&c, &id).await;
        let want: &[&str] = if finished {
            &["backup_created", "backup_succeeded"]
        } else {
            &["backup_created", "backup_failed", "backup_retried"]
        };
        assert_eq!(events, want, "{id}");
    }
    assert!(c.verify_audit().await.unwrap().is_ok());
}

/// Updates of different fields of one source at the same time: each one
/// stays (none writes back a value it read before another's change).
async fn concurrent_updates_of_one_source_keep_every_field(db: Db) {
    let c = db.open().await;
    let t = tenant(&c, "acme").await;
    let s = source(&c, &t, "files").await;
    let changes = [
        SourceFields {
            name: Some("renamed".into()),
            ..Default::default()
        },
        SourceFields {
            // a new target drops stored credentials unless new ones come
            // with it: these come with it, whichever update lands last
            target: Some("echo changed".into()),
            credentials: Some(Some("pw".into())),
            ..Default::default()
        },
        SourceFields {
            options: Some(serde_json::json!({"filename": "out.txt"})),
            ..Default::default()
        },
        SourceFields {
            schedule: Some(Some("0 4 * * *".into())),
            ..Default::default()
        },
        SourceFields {
            retention: Some(serde_json::json!({"max_age_days": 9})),
            ..Default::default()
        },
        SourceFields {
            credentials: Some(Some("pw".into())),
            ..Default::default()
        },
    ];
    for round in 0..3 {
        let mut tasks = Vec::new();
        for f in changes.clone() {
            let (c, tid, id) = (c.clone(), t.id.clone(), s.id.clone());
            tasks.push(tokio::spawn(async move {
                c.update_source(&tid, &id, f, "admin", &system())
                    .await
                    .unwrap();
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let u = c.source(&t.id, &s.id).await.unwrap();
        assert_eq!(
            (u.name.as_str(), u.target.as_str(), u.schedule.as_deref()),
            ("renamed", "echo changed", Some("0 4 * * *")),
            "round {round}"
        );
        assert_eq!(u.options["filename"], "out.txt", "round {round}");
        assert_eq!(u.retention["max_age_days"], 9, "round {round}");
        assert!(u.has_credentials, "round {round}");
        // back to the start for the next round
        update(
            &c,
            &t,
            &s,
            SourceFields {
                name: Some("files".into()),
                target: Some("echo hello".into()),
                options: Some(serde_json::json!({})),
                schedule: Some(None),
                retention: Some(serde_json::json!({})),
                credentials: Some(None),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    }
}

/// A finished backup of a new tenant's source.
async fn done_backup(c: &Catalog, t: &Tenant, s: &Source, snapshot: &str) -> String {
    let q = c
        .enqueue_backup(s, &t.repository, None, 3, &system())
        .await
        .unwrap()
        .unwrap();
    let b = c.claim(&BACKUPS, "w", minutes(1)).await.unwrap().unwrap();
    assert_eq!(b.id, q.id);
    c.finish_backup(&b.id, "w", &outcome(snapshot))
        .await
        .unwrap();
    b.id
}

async fn restores_queue_lease_and_finish(db: Db) {
    let c = db.open().await;
    let t = tenant(&c, "acme").await;
    let s = source(&c, &t, "files").await;
    let q = c
        .enqueue_backup(&s, &t.repository, None, 3, &system())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(
        c.enqueue_restore(&q, "/restore/here", "admin", false, &system())
            .await,
        Err(CatalogError::Conflict(_))
    ));
    c.claim(&BACKUPS, "w", minutes(1)).await.unwrap().unwrap();
    c.finish_backup(&q.id, "w", &outcome("s1")).await.unwrap();
    let done = c.backup(&q.id).await.unwrap();

    assert!(c.claim(&RESTORES, "w", minutes(1)).await.unwrap().is_none());
    let r = c
        .enqueue_restore(&done, "/restore/here", "admin", false, &system())
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_str(), r.source_id.as_deref()),
        ("queued", Some(s.id.as_str()))
    );
    let taken = c.claim(&RESTORES, "w1", minutes(1)).await.unwrap().unwrap();
    assert_eq!(
        (taken.id.as_str(), taken.status.as_str()),
        (r.id.as_str(), "running")
    );
    assert!(
        c.claim(&RESTORES, "w2", minutes(1))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        c.renew_lease(&RESTORES, &r.id, "w1", minutes(1))
            .await
            .unwrap()
    );
    assert!(
        !c.renew_lease(&RESTORES, &r.id, "w2", minutes(1))
            .await
            .unwrap()
    );
    assert!(matches!(
        c.finish_restore(&r.id, Some("w2"), Ok(serde_json::json!({})))
            .await,
        Err(CatalogError::Conflict(_))
    ));
    let f = c
        .finish_restore(&r.id, Some("w1"), Ok(serde_json::json!({"files": 3})))
        .await
        .unwrap();
    assert_eq!(f.status, "done");
    assert_eq!(f.verification, Some(serde_json::json!({"files": 3})));
    assert!(f.finished_at.is_some());
    assert!(matches!(
        c.finish_restore(&r.id, Some("w1"), Ok(serde_json::json!({})))
            .await,
        Err(CatalogError::Conflict(_))
    ));

    // a restore whose worker is gone: recovery fails it (tried once)
    let r2 = c
        .enqueue_restore(&done, "/elsewhere", "admin", false, &system())
        .await
        .unwrap();
    let r3 = c
        .enqueue_restore(&done, "/third", "admin", false, &system())
        .await
        .unwrap();
    c.claim(&RESTORES, "gone", SignedDuration::from_secs(-1))
        .await
        .unwrap()
        .unwrap();
    c.claim(&RESTORES, "alive", minutes(5))
        .await
        .unwrap()
        .unwrap();
    let orphans: Vec<String> = c
        .orphaned_restores(false)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(orphans, std::slice::from_ref(&r2.id));
    assert_eq!(c.orphaned_restores(true).await.unwrap().len(), 2);
    let failed = c
        .finish_restore(&r2.id, None, Err("interrupted".into()))
        .await
        .unwrap();
    assert_eq!(
        (failed.status.as_str(), failed.error.as_deref()),
        ("failed", Some("interrupted"))
    );
    assert!(c.orphaned_restores(false).await.unwrap().is_empty());
    assert_eq!(c.restore_run(&r3.id).await.unwrap().status, "running");
    assert!(
        c.finish_restore(&r3.id, None, Err("interrupted".into()))
            .await
            .is_err(),
        "recovery leaves a live lease alone"
    );
    let events: Vec<String> = c
        .audit_after(&AuditFilter::default(), 0, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event.starts_with("restore_"))
        .map(|e| e.event)
        .collect();
    assert_eq!(
        events,
        [
            "restore_started",
            "restore_succeeded",
            "restore_started",
            "restore_started",
            "restore_failed"
        ]
    );
    assert!(c.verify_audit().await.unwrap().is_ok());
}

async fn deletions_keep_the_row_and_are_taken_once(db: Db) {
    let c = db.open().await;
    let t = tenant(&c, "acme").await;
    let s = source(&c, &t, "files").await;
    let first = done_backup(&c, &t, &s, "s1").await;
    let second = done_backup(&c, &t, &s, "s2").await;
    let live: Vec<String> = c
        .live_backups(&s.id)
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.id)
        .collect();
    assert_eq!(live, [second.clone(), first.clone()], "newest first");

    // a queued run cannot be deleted; a failed one is deleted at once
    let q = c
        .enqueue_backup(&s, &t.repository, None, 1, &system())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(
        c.request_deletion(&q.id, &system(), "asked").await,
        Err(CatalogError::Conflict(_))
    ));
    c.claim(&BACKUPS, "w", minutes(1)).await.unwrap().unwrap();
    c.fail_backup(&q.id, Some("w"), "boom", FailureKind::Permanent, minutes(1))
        .await
        .unwrap();
    let gone = c.request_deletion(&q.id, &system(), "asked").await.unwrap();
    assert_eq!(gone.status, "deleted");
    assert!(gone.deleted_at.is_some());

    // asked for by several callers at once (the sweep, the API): one
    // deletion, audited once
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let (c, id) = (c.clone(), first.clone());
        tasks.push(tokio::spawn(async move {
            c.request_deletion(&id, &system(), "retention")
                .await
                .unwrap()
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap().status, "deleting");
    }
    assert_eq!(
        subject_events(&c, &first).await,
        ["backup_created", "backup_succeeded", "backup_deleted"]
    );
    c.request_deletion(&second, &system(), "asked")
        .await
        .unwrap();
    assert!(c.live_backups(&s.id).await.unwrap().is_empty());

    let a = c
        .claim(&DELETIONS, "w1", minutes(1))
        .await
        .unwrap()
        .unwrap();
    let b = c
        .claim(&DELETIONS, "w2", minutes(1))
        .await
        .unwrap()
        .unwrap();
    assert_ne!(a.id, b.id);
    assert!(
        c.claim(&DELETIONS, "w3", minutes(1))
            .await
            .unwrap()
            .is_none(),
        "both are leased"
    );
    // a long prune renews its lease; only its holder can
    assert!(
        c.renew_lease(&DELETIONS, &a.id, "w1", minutes(5))
            .await
            .unwrap()
    );
    assert!(
        !c.renew_lease(&DELETIONS, &a.id, "w2", minutes(5))
            .await
            .unwrap()
    );
    let renewed = c.backup(&a.id).await.unwrap();
    assert!(
        renewed.lease_until.as_deref().unwrap() > a.lease_until.as_deref().unwrap(),
        "{renewed:?}"
    );
    assert!(matches!(
        c.finish_deletion(&a.id, "w2").await,
        Err(CatalogError::Conflict(_))
    ));
    let del = c.finish_deletion(&a.id, "w1").await.unwrap();
    assert_eq!(del.status, "deleted");
    assert!(del.deleted_at.is_some());
    assert!(
        !c.renew_lease(&DELETIONS, &a.id, "w1", minutes(5))
            .await
            .unwrap(),
        "a finished deletion has no lease"
    );
    // the other fails for now and waits
    c.defer_deletion(&b.id, "w2", "repository locked", minutes(10))
        .await
        .unwrap();
    let waiting = c.backup(&b.id).await.unwrap();
    assert_eq!(
        (
            waiting.status.as_str(),
            waiting.error.as_deref(),
            waiting.lease_owner
        ),
        ("deleting", Some("repository locked"), None)
    );
    assert!(
        c.claim(&DELETIONS, "w3", minutes(1))
            .await
            .unwrap()
            .is_none()
    );
    let deleted_events = events(&c, "backup_deleted", 100).await;
    assert_eq!(deleted_events.items.len(), 3);
    c.record_retention(&t.id, &s.id, 0, std::slice::from_ref(&first), &[])
        .await
        .unwrap();
    assert!(c.verify_audit().await.unwrap().is_ok());
}

/// Each node's scheduler claims the same periodic slot: one wins.
async fn job_slots_are_claimed_once_across_nodes(db: Db) {
    let c = db.open().await;
    let other_node = db.open().await;
    assert_eq!(c.last_job_slot("retention").await.unwrap(), None);
    let mut tasks = Vec::new();
    for i in 0..8 {
        let c = if i % 2 == 0 {
            c.clone()
        } else {
            other_node.clone()
        };
        tasks.push(tokio::spawn(async move {
            c.claim_slot("retention", "2026-01-02T05:00:00Z", &format!("node-{i}"))
                .await
                .unwrap()
        }));
    }
    let mut won = 0;
    for task in tasks {
        won += task.await.unwrap() as usize;
    }
    assert_eq!(won, 1);
    assert!(
        c.claim_slot("retention", "2026-01-03T05:00:00Z", "node-0")
            .await
            .unwrap()
    );
    assert!(
        c.claim_slot("other-job", "2026-01-02T05:00:00Z", "node-0")
            .await
            .unwrap()
    );
    assert_eq!(
        other_node
            .last_job_slot("retention")
            .await
            .unwrap()
            .as_deref(),
        Some("2026-01-03T05:00:00Z")
    );
}

async fn concurrent_restore_claims_hand_each_out_once(db: Db) {
    let c = db.open().await;
    let t = tenant(&c, "acme").await;
    let s = source(&c, &t, "files").await;
    let id = done_backup(&c, &t, &s, "s").await;
    let done = c.backup(&id).await.unwrap();
    let mut queued = BTreeSet::new();
    for i in 0..20 {
        let r = c
            .enqueue_restore(&done, &format!("/target/{i}"), "admin", false, &system())
            .await
            .unwrap();
        queued.insert(r.id);
    }
    let claimed = four_workers_claim(&c, |c, name| async move {
        let r = c.claim(&RESTORES, &name, minutes(1)).await.unwrap()?;
        Some(r.id)
    })
    .await
    .concat();
    assert_eq!(claimed.len(), 20);
    assert_eq!(claimed.into_iter().collect::<BTreeSet<_>>(), queued);
}

/// A catalog that cannot be opened says where, without the password.
#[test]
fn postgres_errors_do_not_show_the_password() {
    let pg = common::servers::Postgres::shared();
    let secret = format!("wrong-{}", pg.port);
    let url = format!(
        "postgres://{}:{secret}@127.0.0.1:{}/postgres",
        pg.user, pg.port
    );
    let e = runtime()
        .block_on(Catalog::open(&url, ServerKey::random()))
        .err()
        .expect("a wrong password is refused")
        .to_string();
    assert!(!e.contains(&secret), "{e}");
    assert!(e.contains(&format!("postgres://{}:***@", pg.user)), "{e}");
    assert!(e.contains("password authentication failed"), "{e}");
    // nobody listening there
    let port = common::servers::free_port();
    let url = format!("postgres://{}:{secret}@127.0.0.1:{port}/postgres", pg.user);
    let e = runtime()
        .block_on(Catalog::open(&url, ServerKey::random()))
        .err()
        .expect("nothing listens there");
    assert!(matches!(e, CatalogError::Unavailable(_)), "{e}");
    assert!(!e.to_string().contains(&secret), "{e}");
}
