//! Restore runs: one row each (target, status, verification, error, times),
//! queued like backups and taken by the same workers. A restore is tried
//! once: writing into a target twice is for the operator to decide.
//!
//! A drill is a restore row with `drill` set: into a scratch target the
//! server owns (never one a tenant names), verified, then removed. Its
//! audit events are `drill_started`, `drill_succeeded` and `drill_failed`.

use std::collections::HashMap;

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::audit::NewEvent;
use crate::backups::Backup;
use crate::{Actor, Catalog, CatalogError, Conflict, FromRow, Needs, Result, clock};

#[derive(Debug, Clone, Serialize)]
pub struct Restore {
    pub id: String,
    pub tenant_id: String,
    pub backup_id: String,
    pub source_id: Option<String>,
    /// Where the backup is restored to (addresses shown redacted).
    pub target: String,
    /// `queued`, `running`, `done` or `failed`.
    pub status: String,
    pub requested_by: Option<String>,
    pub requested_by_label: String,
    /// What the restore proved (row counts against the manifest, files).
    pub verification: Option<serde_json::Value>,
    pub error: Option<String>,
    pub queued_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// Who chose the target: `admin`, `operator` or `server` (a default).
    pub defined_by: String,
    /// Over the source itself: a database's contents are replaced (a
    /// directory's files overwritten where the snapshot has them).
    pub in_place: bool,
    /// As a backup's: bytes and files so far, written while it runs.
    pub progress: Option<serde_json::Value>,
    /// A restore drill (a scratch target, removed after it verified).
    pub drill: bool,
}

/// A source's drills as its health sees them.
#[derive(Debug, Clone)]
pub struct DrillState {
    /// The newest drill, whatever its status.
    pub last: Restore,
    /// When the newest successful drill finished.
    pub passed_at: Option<String>,
}

/// The scratch target a drill row names (the server picks the real one).
pub const DRILL_TARGET: &str = "(drill scratch)";

impl crate::FromRow for Restore {
    fn from_row(r: &AnyRow) -> std::result::Result<Restore, sqlx::Error> {
        let verification: Option<String> = r.try_get("verification")?;
        Ok(Restore {
            id: r.try_get("id")?,
            tenant_id: r.try_get("tenant_id")?,
            backup_id: r.try_get("backup_id")?,
            source_id: r.try_get("source_id")?,
            target: r.try_get("target")?,
            status: r.try_get("status")?,
            requested_by: r.try_get("requested_by")?,
            requested_by_label: r.try_get("requested_by_label")?,
            verification: verification.and_then(|v| serde_json::from_str(&v).ok()),
            error: r.try_get("error")?,
            queued_at: r.try_get("queued_at")?,
            started_at: r.try_get("started_at")?,
            finished_at: r.try_get("finished_at")?,
            defined_by: r.try_get("defined_by")?,
            in_place: r.try_get::<i64, _>("in_place")? != 0,
            drill: r.try_get::<i64, _>("drill")? != 0,
            progress: r
                .try_get::<Option<String>, _>("progress")?
                .and_then(|p| serde_json::from_str(&p).ok()),
        })
    }
}

impl crate::queue::Record for Restore {
    const TABLE: &'static str = "restores";
    const WHAT: &'static str = "restore";
}

async fn fetch(tx: &mut sqlx::Transaction<'static, sqlx::Any>, id: &str) -> Result<Restore> {
    crate::queue::fetch(&mut **tx, id).await
}

impl Catalog {
    /// Queue the restore of a finished backup into `target` (`in_place`:
    /// over the source itself); audits `restore_started` before any work.
    pub async fn enqueue_restore(
        &self,
        backup: &Backup,
        target: &str,
        defined_by: &str,
        in_place: bool,
        actor: &Actor,
    ) -> Result<Restore> {
        self.enqueue(backup, target, defined_by, in_place, false, actor)
            .await
    }

    /// Queue a restore drill of a finished backup: into a scratch target
    /// the server picks; audits `drill_started`.
    pub async fn enqueue_drill(&self, backup: &Backup, actor: &Actor) -> Result<Restore> {
        self.enqueue(backup, DRILL_TARGET, "server", false, true, actor)
            .await
    }

    async fn enqueue(
        &self,
        backup: &Backup,
        target: &str,
        defined_by: &str,
        in_place: bool,
        drill: bool,
        actor: &Actor,
    ) -> Result<Restore> {
        if backup.status != "done" {
            return Err(CatalogError::Conflict(Conflict::State {
                id: backup.id.clone(),
                status: backup.status.clone(),
                needs: Needs::Succeeded,
            }));
        }
        let id = crate::tenants::new_id();
        let mut w = self.write().await?;
        w.run(sqlx::query(
            "INSERT INTO restores (id, tenant_id, backup_id, source_id, target, status, requested_by, \
             requested_by_label, queued_at, defined_by, in_place, drill) \
             VALUES ($1, $2, $3, $4, $5, 'queued', $6, $7, $8, $9, $10, $11)",
        )
        .bind(&id)
        .bind(&backup.tenant_id)
        .bind(&backup.id)
        .bind(&backup.source_id)
        .bind(target)
        .bind(&actor.token_id)
        .bind(&actor.label)
        .bind(clock::now())
        .bind(defined_by)
        .bind(i64::from(in_place))
        .bind(i64::from(drill)))
        .await?;
        w.audit(NewEvent {
            actor,
            tenant_id: Some(&backup.tenant_id),
            event: if drill {
                "drill_started"
            } else {
                "restore_started"
            },
            subject: Some(&id),
            metadata: if in_place {
                serde_json::json!({"backup_id": backup.id, "target": target, "in_place": true})
            } else {
                serde_json::json!({"backup_id": backup.id, "target": target})
            },
        })
        .await?;
        let r = fetch(&mut w.tx, &id).await?;
        w.commit().await?;
        Ok(r)
    }

    /// When each of a tenant's sources' newest successful restore finished
    /// (the overview's "last successful restore", drills included).
    pub async fn last_restores(&self, tenant_id: &str) -> Result<HashMap<String, String>> {
        self.newest_done(tenant_id, false).await
    }

    /// When each source's newest successful restore (`drills_only`: drill)
    /// finished.
    async fn newest_done(
        &self,
        tenant_id: &str,
        drills_only: bool,
    ) -> Result<HashMap<String, String>> {
        let rows = sqlx::query(
            "SELECT source_id, MAX(finished_at) AS at FROM restores \
             WHERE tenant_id = $1 AND status = 'done' AND source_id IS NOT NULL \
             AND ($2 = 0 OR drill = 1) GROUP BY source_id",
        )
        .bind(tenant_id)
        .bind(i64::from(drills_only))
        .fetch_all(self.pool())
        .await
        .map_err(CatalogError::db)?;
        let mut out = HashMap::new();
        for r in rows {
            let at: Option<String> = r.try_get("at").map_err(CatalogError::db)?;
            if let Some(at) = at {
                out.insert(r.try_get("source_id").map_err(CatalogError::db)?, at);
            }
        }
        Ok(out)
    }

    /// Each of a tenant's sources' drills as far as its health goes: the
    /// newest drill (whatever its status) and when the newest successful
    /// one finished.
    pub async fn drill_states(&self, tenant_id: &str) -> Result<HashMap<String, DrillState>> {
        let newest: Vec<Restore> = self
            .rows(
                sqlx::query(
                    "SELECT * FROM restores WHERE id IN (SELECT MAX(id) FROM restores \
                     WHERE tenant_id = $1 AND drill = 1 AND source_id IS NOT NULL GROUP BY source_id)",
                )
                .bind(tenant_id),
            )
            .await?;
        let mut passed = self.newest_done(tenant_id, true).await?;
        Ok(newest
            .into_iter()
            .filter_map(|last| {
                let source = last.source_id.clone()?;
                let passed_at = passed.remove(&source);
                Some((source, DrillState { last, passed_at }))
            })
            .collect())
    }

    /// A tenant's drills, newest first, at most `limit`.
    pub async fn drills(&self, tenant_id: &str, limit: i64) -> Result<Vec<Restore>> {
        self.rows(
            sqlx::query(
                "SELECT * FROM restores WHERE tenant_id = $1 AND drill = 1 ORDER BY id DESC LIMIT $2",
            )
            .bind(tenant_id)
            .bind(limit),
        )
        .await
    }

    /// Every source's newest successful drill: (tenant name, source id,
    /// source name, the drill), for the metrics.
    pub async fn last_drills(&self) -> Result<Vec<(String, String, String, Restore)>> {
        let rows = sqlx::query(
            "SELECT t.name AS tenant_name, s.name AS source_name, r.* \
             FROM restores r JOIN sources s ON s.id = r.source_id JOIN tenants t ON t.id = r.tenant_id \
             WHERE r.drill = 1 AND r.status = 'done' AND r.finished_at = \
             (SELECT MAX(d.finished_at) FROM restores d \
              WHERE d.source_id = r.source_id AND d.drill = 1 AND d.status = 'done') \
             ORDER BY t.name, s.name",
        )
        .fetch_all(self.pool())
        .await
        .map_err(CatalogError::db)?;
        rows.iter()
            .map(|r| {
                let drill = Restore::from_row(r)?;
                Ok((
                    r.try_get("tenant_name")?,
                    drill.source_id.clone().unwrap_or_default(),
                    r.try_get("source_name")?,
                    drill,
                ))
            })
            .collect::<std::result::Result<_, sqlx::Error>>()
            .map_err(CatalogError::db)
    }

    /// How the run before `before_id` of the same source ended, among its
    /// finished backups (`drills`: its finished drills): `done`, `failed`,
    /// or `None` when there was none. What tells a recovery.
    pub async fn previous_outcome(
        &self,
        source_id: &str,
        before_id: &str,
        drills: bool,
    ) -> Result<Option<String>> {
        let sql = if drills {
            "SELECT status FROM restores WHERE source_id = $1 AND id < $2 AND drill = 1 \
             AND status IN ('done', 'failed') ORDER BY id DESC LIMIT 1"
        } else {
            "SELECT status FROM backups WHERE source_id = $1 AND id < $2 \
             AND status IN ('done', 'failed') ORDER BY id DESC LIMIT 1"
        };
        sqlx::query(sql)
            .bind(source_id)
            .bind(before_id)
            .fetch_optional(self.pool())
            .await
            .map_err(CatalogError::db)?
            .map(|r| r.try_get::<String, _>("status"))
            .transpose()
            .map_err(CatalogError::db)
    }

    pub async fn restore_run(&self, id: &str) -> Result<Restore> {
        crate::queue::fetch(self.pool(), id).await
    }

    /// Record how a restore ended. `worker` `None` is recovery after a
    /// crash: it takes effect only once the lease has expired, checked in
    /// the same statement, so a lease renewed meanwhile is left alone.
    pub async fn finish_restore(
        &self,
        id: &str,
        worker: Option<&str>,
        outcome: std::result::Result<serde_json::Value, String>,
    ) -> Result<Restore> {
        let mut w = self.write().await?;
        let r = fetch(&mut w.tx, id).await?;
        let (status, verification, error, event) = match (&outcome, r.drill) {
            (Ok(v), false) => ("done", Some(v.to_string()), None, "restore_succeeded"),
            (Ok(v), true) => ("done", Some(v.to_string()), None, "drill_succeeded"),
            (Err(e), false) => ("failed", None, Some(e.clone()), "restore_failed"),
            (Err(e), true) => ("failed", None, Some(e.clone()), "drill_failed"),
        };
        let mut w = w
            .run_held(sqlx::query(
            "UPDATE restores SET status = $1, verification = $2, error = $3, finished_at = $4, \
             lease_owner = NULL, lease_until = NULL \
             WHERE id = $5 AND status = 'running' AND (($6 IS NULL AND lease_until < $4) OR lease_owner = $6)",
        )
        .bind(status)
        .bind(verification)
        .bind(error)
        .bind(clock::now())
        .bind(id)
        .bind(worker),
                "restore",
                id,
            )
            .await?;
        w.audit(NewEvent {
            actor: &Actor::system(),
            tenant_id: Some(&r.tenant_id),
            event,
            subject: Some(id),
            metadata: match outcome {
                Ok(v) => serde_json::json!({"backup_id": r.backup_id, "verification": v}),
                Err(e) => serde_json::json!({"backup_id": r.backup_id, "error": e}),
            },
        })
        .await?;
        let r = fetch(&mut w.tx, id).await?;
        w.commit().await?;
        Ok(r)
    }

    /// Restores whose worker is gone (as `orphaned_backups`).
    pub async fn orphaned_restores(&self, all_running: bool) -> Result<Vec<Restore>> {
        self.rows(
            sqlx::query(
                "SELECT * FROM restores WHERE status = 'running' AND ($1 = 1 OR lease_until < $2)",
            )
            .bind(all_running as i64)
            .bind(clock::now()),
        )
        .await
    }
}
