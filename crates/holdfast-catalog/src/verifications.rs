//! Repository verifications: one row per `check` of a tenant's repository
//! — every file's header, and the data of the packs its `read_data` selects
//! (`none`, `all`, a rotating `N/M` part or a `P%` sample) — queued by the
//! scheduler or on demand and taken by the workers like any job.
//!
//! Invariants: a verification that found damage names, in the same
//! transaction that records its outcome, every backup whose snapshot the
//! damage affects (`backups.damaged_at`, set once and kept: a later clean
//! pass over other packs proves nothing about the damaged ones), and audits
//! `verification_failed` with those backups; a clean one audits
//! `verification_succeeded`. A verification that could not run (the
//! repository unreachable, the password wrong) fails without marking any
//! backup.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::audit::NewEvent;
use crate::{Actor, Catalog, CatalogError, Conflict, FromRow, Result, clock};

/// At most this many findings are kept with a verification (the count of
/// all of them is in its summary).
pub const FINDINGS_KEPT: usize = 100;

#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    pub id: String,
    pub tenant_id: String,
    pub repository: String,
    /// `queued`, `running`, `done` (no damage) or `failed`.
    pub status: String,
    /// Which packs' data was read: `none`, `all`, `N/M` or `P%`.
    pub read_data: String,
    pub requested_by: Option<String>,
    pub requested_by_label: String,
    pub queued_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// What was read: packs, packs_read, bytes_read, snapshots, errors, …
    pub summary: Option<serde_json::Value>,
    /// The problems found (the first [`FINDINGS_KEPT`]), each with the
    /// snapshots and paths it affects.
    pub findings: Vec<serde_json::Value>,
    /// The backups marked damaged by this verification.
    pub damaged_backups: Vec<String>,
    pub error: Option<String>,
}

impl FromRow for Verification {
    fn from_row(r: &AnyRow) -> std::result::Result<Verification, sqlx::Error> {
        let json = |col: &str| -> std::result::Result<Option<serde_json::Value>, sqlx::Error> {
            Ok(r.try_get::<Option<String>, _>(col)?
                .and_then(|v| serde_json::from_str(&v).ok()))
        };
        Ok(Verification {
            id: r.try_get("id")?,
            tenant_id: r.try_get("tenant_id")?,
            repository: r.try_get("repository")?,
            status: r.try_get("status")?,
            read_data: r.try_get("read_data")?,
            requested_by: r.try_get("requested_by")?,
            requested_by_label: r.try_get("requested_by_label")?,
            queued_at: r.try_get("queued_at")?,
            started_at: r.try_get("started_at")?,
            finished_at: r.try_get("finished_at")?,
            summary: json("summary")?,
            findings: json("findings")?
                .and_then(|v| serde_json::from_value(v).ok())
                .unwrap_or_default(),
            damaged_backups: json("damaged")?
                .and_then(|v| serde_json::from_value(v).ok())
                .unwrap_or_default(),
            error: r.try_get("error")?,
        })
    }
}

impl crate::queue::Record for Verification {
    const TABLE: &'static str = "verifications";
    const WHAT: &'static str = "verification";
}

/// A tenant's verification as the metrics show it.
#[derive(Debug, Clone)]
pub struct VerificationState {
    /// The tenant's name.
    pub tenant: String,
    /// When its newest clean verification finished.
    pub verified_at: Option<String>,
    /// Its live backups marked damaged.
    pub damaged: i64,
}

impl FromRow for VerificationState {
    fn from_row(r: &AnyRow) -> std::result::Result<VerificationState, sqlx::Error> {
        Ok(VerificationState {
            tenant: r.try_get("tenant")?,
            verified_at: r.try_get("verified_at")?,
            damaged: r.try_get("damaged")?,
        })
    }
}

/// What a finished `check` reported.
#[derive(Debug, Clone, Default)]
pub struct Checked {
    pub summary: serde_json::Value,
    /// Every finding (only the first [`FINDINGS_KEPT`] are stored).
    pub findings: Vec<serde_json::Value>,
    /// How many errors were found (0: the repository is intact as far as
    /// it was read).
    pub errors: u64,
    /// The ids (hex) of the snapshots the errors affect.
    pub damaged_snapshots: Vec<String>,
}

impl Catalog {
    /// Queue a verification of the tenant's repository; audits
    /// `verification_started`. One at a time per tenant: while one is
    /// queued or running, another is refused (`Conflict::Pending`), so no
    /// caller can pile up reads of a whole repository.
    pub async fn enqueue_verification(
        &self,
        tenant_id: &str,
        repository: &str,
        read_data: &str,
        actor: &Actor,
    ) -> Result<Verification> {
        let id = crate::tenants::new_id();
        let mut w = self.write().await?;
        let pending = sqlx::query(
            "SELECT id, status FROM verifications WHERE tenant_id = $1 \
             AND status IN ('queued', 'running') ORDER BY id LIMIT 1",
        )
        .bind(tenant_id)
        .fetch_optional(&mut *w.tx)
        .await
        .map_err(CatalogError::db)?;
        if let Some(r) = pending {
            let (id, status) = (r.try_get("id"), r.try_get("status"));
            return w
                .abort(CatalogError::Conflict(Conflict::Pending {
                    what: "verification",
                    id: id.map_err(CatalogError::db)?,
                    status: status.map_err(CatalogError::db)?,
                }))
                .await;
        }
        w.run(
            sqlx::query(
                "INSERT INTO verifications (id, tenant_id, repository, status, read_data, \
                 requested_by, requested_by_label, queued_at) \
                 VALUES ($1, $2, $3, 'queued', $4, $5, $6, $7)",
            )
            .bind(&id)
            .bind(tenant_id)
            .bind(repository)
            .bind(read_data)
            .bind(&actor.token_id)
            .bind(&actor.label)
            .bind(clock::now()),
        )
        .await?;
        w.audit(NewEvent {
            actor,
            tenant_id: Some(tenant_id),
            event: "verification_started",
            subject: Some(&id),
            metadata: serde_json::json!({"repository": repository, "read_data": read_data}),
        })
        .await?;
        let v = crate::queue::fetch(&mut *w.tx, &id).await?;
        w.commit().await?;
        Ok(v)
    }

    pub async fn verification(&self, tenant_id: &str, id: &str) -> Result<Verification> {
        let v: Verification = crate::queue::fetch(self.pool(), id).await?;
        if v.tenant_id != tenant_id {
            return Err(CatalogError::NotFound {
                what: "verification",
            });
        }
        Ok(v)
    }

    /// How many of a tenant's live backups are marked damaged.
    pub async fn damaged_backups(&self, tenant_id: &str) -> Result<i64> {
        sqlx::query(
            "SELECT COUNT(*) AS n FROM backups WHERE tenant_id = $1 AND damaged_at IS NOT NULL \
             AND deleted_at IS NULL",
        )
        .bind(tenant_id)
        .fetch_one(self.pool())
        .await
        .and_then(|r| r.try_get("n"))
        .map_err(CatalogError::db)
    }

    /// A tenant's verifications, newest first, at most `limit`.
    pub async fn verifications(&self, tenant_id: &str, limit: i64) -> Result<Vec<Verification>> {
        self.rows(
            sqlx::query(
                "SELECT * FROM verifications WHERE tenant_id = $1 ORDER BY id DESC LIMIT $2",
            )
            .bind(tenant_id)
            .bind(limit),
        )
        .await
    }

    /// Record how a verification ended and mark the backups its damage
    /// affects. `worker` `None` is recovery after a crash: it takes effect
    /// only once the lease has expired.
    pub async fn finish_verification(
        &self,
        id: &str,
        worker: Option<&str>,
        outcome: std::result::Result<Checked, String>,
    ) -> Result<Verification> {
        let now = clock::now();
        let mut w = self.write().await?;
        let v: Verification = crate::queue::fetch(&mut *w.tx, id).await?;
        let (status, summary, findings, error) = match &outcome {
            Ok(c) if c.errors == 0 => ("done", Some(c.summary.to_string()), None, None),
            Ok(c) => (
                "failed",
                Some(c.summary.to_string()),
                Some(
                    serde_json::Value::from(
                        c.findings
                            .iter()
                            .take(FINDINGS_KEPT)
                            .cloned()
                            .collect::<Vec<_>>(),
                    )
                    .to_string(),
                ),
                Some(format!(
                    "the repository is damaged: {} error(s), affecting {} snapshot(s)",
                    c.errors,
                    c.damaged_snapshots.len()
                )),
            ),
            Err(e) => ("failed", None, None, Some(e.clone())),
        };
        let mut w = w
            .run_held(
                sqlx::query(
                    "UPDATE verifications SET status = $1, summary = $2, findings = $3, error = $4, \
                     finished_at = $5, lease_owner = NULL, lease_until = NULL \
                     WHERE id = $6 AND status = 'running' \
                     AND (($7 IS NULL AND lease_until < $5) OR lease_owner = $7)",
                )
                .bind(status)
                .bind(summary)
                .bind(findings)
                .bind(error.clone())
                .bind(&now)
                .bind(id)
                .bind(worker),
                "verification",
                id,
            )
            .await?;
        let mut damaged = Vec::new();
        if let Ok(c) = &outcome {
            let damage = format!("verification {id}: {}", error.clone().unwrap_or_default());
            for snapshot in &c.damaged_snapshots {
                let ids: Vec<String> = sqlx::query(
                    "SELECT id FROM backups WHERE tenant_id = $1 AND snapshot_id = $2 \
                     AND deleted_at IS NULL ORDER BY id",
                )
                .bind(&v.tenant_id)
                .bind(snapshot)
                .fetch_all(&mut *w.tx)
                .await
                .and_then(|rows| rows.iter().map(|r| r.try_get("id")).collect())
                .map_err(CatalogError::db)?;
                for b in ids {
                    w.run(
                        sqlx::query(
                            "UPDATE backups SET damaged_at = $1, damage = $2 \
                             WHERE id = $3 AND damaged_at IS NULL",
                        )
                        .bind(&now)
                        .bind(&damage)
                        .bind(&b),
                    )
                    .await?;
                    damaged.push(b);
                }
            }
            w.run(
                sqlx::query("UPDATE verifications SET damaged = $1 WHERE id = $2")
                    .bind(serde_json::Value::from(damaged.clone()).to_string())
                    .bind(id),
            )
            .await?;
        }
        w.audit(NewEvent {
            actor: &Actor::system(),
            tenant_id: Some(&v.tenant_id),
            event: if status == "done" {
                "verification_succeeded"
            } else {
                "verification_failed"
            },
            subject: Some(id),
            metadata: match &outcome {
                Ok(c) => serde_json::json!({
                    "read_data": v.read_data,
                    "summary": c.summary,
                    "errors": c.errors,
                    "damaged_snapshots": c.damaged_snapshots,
                    "damaged_backups": damaged,
                }),
                Err(e) => serde_json::json!({"read_data": v.read_data, "error": e}),
            },
        })
        .await?;
        let v = crate::queue::fetch(&mut *w.tx, id).await?;
        w.commit().await?;
        Ok(v)
    }

    /// Verifications whose worker is gone (as `orphaned_backups`).
    pub async fn orphaned_verifications(&self, all_running: bool) -> Result<Vec<Verification>> {
        self.rows(
            sqlx::query(
                "SELECT * FROM verifications WHERE status = 'running' AND ($1 = 1 OR lease_until < $2)",
            )
            .bind(all_running as i64)
            .bind(clock::now()),
        )
        .await
    }

    /// Per tenant: when its newest clean verification finished, and how
    /// many of its live backups are marked damaged (the metrics).
    pub async fn verification_states(&self) -> Result<Vec<VerificationState>> {
        self.rows(sqlx::query(
            "SELECT t.name AS tenant, \
             (SELECT MAX(v.finished_at) FROM verifications v \
              WHERE v.tenant_id = t.id AND v.status = 'done') AS verified_at, \
             (SELECT COUNT(*) FROM backups b \
              WHERE b.tenant_id = t.id AND b.damaged_at IS NOT NULL AND b.deleted_at IS NULL) AS damaged \
             FROM tenants t ORDER BY t.name",
        ))
        .await
    }
}
