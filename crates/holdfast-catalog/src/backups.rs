//! Backup runs, one row each, and the job queue they form. A row is
//! `queued` → `running` (a worker holds its lease) → `done` | `failed`;
//! a transient failure with attempts left goes back to `queued` with a
//! later `run_after`. Deleting a backup (`deleting` → `deleted`) keeps the
//! row and sets `deleted_at`.

use jiff::SignedDuration;
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::audit::NewEvent;
use crate::sources::Source;
use crate::{
    Actor, Catalog, CatalogError, Conflict, Dialect, FromRow, Needs, Result, WriteTx, clock,
};

#[derive(Debug, Clone, Serialize)]
pub struct Backup {
    pub id: String,
    pub tenant_id: String,
    pub source_id: String,
    pub source_name: String,
    /// `scheduled` or `on_demand`.
    pub kind: String,
    pub status: String,
    pub requested_by: Option<String>,
    pub requested_by_label: String,
    pub snapshot_id: Option<String>,
    pub repository: String,
    pub size: Option<i64>,
    pub bytes_added: Option<i64>,
    pub counts: Option<serde_json::Value>,
    pub warnings: Vec<String>,
    pub error: Option<String>,
    /// `transient`, `permanent` or `interrupted`.
    pub error_kind: Option<String>,
    pub attempts: i64,
    pub max_attempts: i64,
    pub run_after: String,
    #[serde(skip)]
    pub lease_owner: Option<String>,
    #[serde(skip)]
    pub lease_until: Option<String>,
    pub queued_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub deleted_at: Option<String>,
    /// While running: `{"bytes", "files", "total_bytes", "total_files",
    /// "at"}`, written by its worker every few seconds (the last value
    /// stays after the run).
    pub progress: Option<serde_json::Value>,
    /// When a verification found its snapshot damaged (kept: see
    /// `verifications`), and what it found.
    pub damaged_at: Option<String>,
    pub damage: Option<String>,
}

impl crate::FromRow for Backup {
    fn from_row(r: &AnyRow) -> std::result::Result<Backup, sqlx::Error> {
        let counts: Option<String> = r.try_get("counts")?;
        let warnings: String = r.try_get("warnings")?;
        Ok(Backup {
            id: r.try_get("id")?,
            tenant_id: r.try_get("tenant_id")?,
            source_id: r.try_get("source_id")?,
            source_name: r.try_get("source_name")?,
            kind: r.try_get("kind")?,
            status: r.try_get("status")?,
            requested_by: r.try_get("requested_by")?,
            requested_by_label: r.try_get("requested_by_label")?,
            snapshot_id: r.try_get("snapshot_id")?,
            repository: r.try_get("repository")?,
            size: r.try_get("size")?,
            bytes_added: r.try_get("bytes_added")?,
            counts: counts.and_then(|c| serde_json::from_str(&c).ok()),
            warnings: serde_json::from_str(&warnings).unwrap_or_default(),
            error: r.try_get("error")?,
            error_kind: r.try_get("error_kind")?,
            attempts: r.try_get("attempts")?,
            max_attempts: r.try_get("max_attempts")?,
            run_after: r.try_get("run_after")?,
            lease_owner: r.try_get("lease_owner")?,
            lease_until: r.try_get("lease_until")?,
            queued_at: r.try_get("queued_at")?,
            started_at: r.try_get("started_at")?,
            finished_at: r.try_get("finished_at")?,
            deleted_at: r.try_get("deleted_at")?,
            progress: r
                .try_get::<Option<String>, _>("progress")?
                .and_then(|p| serde_json::from_str(&p).ok()),
            damaged_at: r.try_get("damaged_at")?,
            damage: r.try_get("damage")?,
        })
    }
}

/// What a successful run produced.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub snapshot_id: String,
    pub size: u64,
    pub bytes_added: u64,
    pub counts: serde_json::Value,
    pub warnings: Vec<String>,
}

/// Why a run failed, which decides whether it is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Network, a lock held, a server's 5xx: worth another attempt.
    Transient,
    /// Authentication, a missing source, bad configuration: another attempt
    /// would fail the same way.
    Permanent,
    /// The worker went away (crash, `kill -9`, lease expired).
    Interrupted,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Transient => "transient",
            FailureKind::Permanent => "permanent",
            FailureKind::Interrupted => "interrupted",
        }
    }
}

/// What an overview shows of one run.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub id: String,
    pub status: String,
    pub size: Option<i64>,
    pub bytes_added: Option<i64>,
    pub queued_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

/// What an overview shows of one source's runs.
#[derive(Debug, Clone, Default)]
pub struct SourceRuns {
    pub source_id: String,
    /// Its newest run.
    pub last: Option<RunSummary>,
    /// Its newest successful run (which may be older than the recent ones).
    pub success: Option<RunSummary>,
    /// Size and duration (whole seconds) of each successful run among the
    /// newest ones, oldest first.
    pub chart: Vec<(i64, i64)>,
}

/// The queues whose rows carry a progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobTable {
    Backups,
    Restores,
}

/// Filters of the list endpoint.
#[derive(Debug, Default, Clone)]
pub struct BackupFilter {
    pub status: Option<String>,
    pub source_id: Option<String>,
    /// `scheduled` or `on_demand`.
    pub kind: Option<String>,
}

pub struct BackupPage {
    pub items: Vec<Backup>,
    /// The id to continue below, when there is more.
    pub next_before: Option<String>,
}

fn unreachable_none(id: &str) -> CatalogError {
    CatalogError::Database(format!("backup {id}: a worker's failure was not recorded"))
}

/// The delay before attempt `attempt + 1` after a transient failure:
/// 30 s, 2 min, 8 min, … (×4), at most an hour.
pub fn backoff(base: SignedDuration, attempt: i64) -> SignedDuration {
    let factor = 4i64.saturating_pow(attempt.clamp(1, 8) as u32 - 1);
    let secs = base.as_secs().saturating_mul(factor).min(3600);
    SignedDuration::from_secs(secs)
}

pub(crate) async fn fetch(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    id: &str,
) -> Result<Backup> {
    crate::queue::fetch(&mut **tx, id).await
}

impl crate::queue::Record for Backup {
    const TABLE: &'static str = "backups";
    const WHAT: &'static str = "backup";
}

/// The row, held for the rest of the write transaction, so that what is
/// checked (status, lease) is still true when it is changed. On PostgreSQL
/// `FOR UPDATE`: a concurrent finish, failure, recovery or retry of the
/// same run waits here, then reads the row as the first one left it. On
/// SQLite the write transaction already excludes every other writer.
pub(crate) async fn fetch_for_update(w: &mut WriteTx<'_>, id: &str) -> Result<Backup> {
    let sql = match w.dialect {
        Dialect::Postgres => "SELECT * FROM backups WHERE id = $1 FOR UPDATE",
        Dialect::Sqlite => "SELECT * FROM backups WHERE id = $1",
    };
    let row = sqlx::query(sql)
        .bind(id)
        .fetch_optional(&mut *w.tx)
        .await
        .map_err(CatalogError::db)?
        .ok_or(CatalogError::NotFound { what: "backup" })?;
    Backup::from_row(&row).map_err(CatalogError::db)
}

/// Who fails a run: the worker holding its lease, or recovery.
#[derive(Clone, Copy)]
enum Failer<'a> {
    /// A worker (`None`: recovery that takes over whatever lease there
    /// was, the old meaning of `fail_backup(…, None, …)`).
    Worker(Option<&'a str>),
    /// Recovery of an orphan: only while the run is still `running` and,
    /// unless `all_running`, its lease has run out.
    Orphan { all_running: bool },
}

impl Catalog {
    /// Queue a run of `source`. `slot` (scheduled runs) makes the insert
    /// idempotent: a second request for the same slot returns `None`.
    pub async fn enqueue_backup(
        &self,
        source: &Source,
        repository: &str,
        scheduled_slot: Option<&str>,
        max_attempts: i64,
        actor: &Actor,
    ) -> Result<Option<Backup>> {
        let id = crate::tenants::new_id();
        let now = clock::now();
        let kind = if scheduled_slot.is_some() {
            "scheduled"
        } else {
            "on_demand"
        };
        let mut w = self.write().await?;
        let inserted = w.run(sqlx::query(
            "INSERT INTO backups (id, tenant_id, source_id, source_name, kind, status, requested_by, \
             requested_by_label, repository, warnings, attempts, max_attempts, run_after, queued_at, slot) \
             VALUES ($1, $2, $3, $4, $5, 'queued', $6, $7, $8, '[]', 0, $9, $10, $10, $11) \
             ON CONFLICT (source_id, slot) DO NOTHING",
        )
        .bind(&id)
        .bind(&source.tenant_id)
        .bind(&source.id)
        .bind(&source.name)
        .bind(kind)
        .bind(&actor.token_id)
        .bind(&actor.label)
        .bind(repository)
        .bind(max_attempts.max(1))
        .bind(&now)
        .bind(scheduled_slot))
        .await?;
        if inserted == 0 {
            w.rollback().await?;
            return Ok(None);
        }
        w.audit(NewEvent {
            actor,
            tenant_id: Some(&source.tenant_id),
            event: "backup_created",
            subject: Some(&id),
            metadata: serde_json::json!({
                "source_id": source.id, "source_name": source.name, "kind": kind, "slot": scheduled_slot,
            }),
        })
        .await?;
        let b = fetch(&mut w.tx, &id).await?;
        w.commit().await?;
        Ok(Some(b))
    }

    pub async fn backup(&self, id: &str) -> Result<Backup> {
        crate::queue::fetch(self.pool(), id).await
    }

    /// The source's newest successful backup, if it has one (what a drill
    /// restores).
    pub async fn newest_done_backup(
        &self,
        tenant_id: &str,
        source_id: &str,
    ) -> Result<Option<Backup>> {
        let done = BackupFilter {
            status: Some("done".into()),
            source_id: Some(source_id.to_string()),
            kind: None,
        };
        let page = self.backups_page(tenant_id, &done, 1, None).await?;
        Ok(page.items.into_iter().next())
    }

    /// A page of a tenant's backups, newest first, below id `before`. Ids
    /// are UUIDv7 (time-ordered), so a page boundary stays put while new
    /// rows arrive.
    pub async fn backups_page(
        &self,
        tenant_id: &str,
        f: &BackupFilter,
        limit: i64,
        before: Option<&str>,
    ) -> Result<BackupPage> {
        // Only the filters given appear in the query, so that the planner
        // walks an index ((tenant, id) or (tenant, status|source, id))
        // from the cursor down instead of testing every row.
        let mut sql = String::from("SELECT * FROM backups WHERE tenant_id = $1");
        let mut binds: Vec<&str> = Vec::new();
        if let Some(st) = &f.status {
            binds.push(st);
            sql.push_str(&format!(" AND status = ${}", binds.len() + 1));
        }
        if let Some(src) = &f.source_id {
            binds.push(src);
            sql.push_str(&format!(" AND source_id = ${}", binds.len() + 1));
        }
        if let Some(kind) = &f.kind {
            binds.push(kind);
            sql.push_str(&format!(" AND kind = ${}", binds.len() + 1));
        }
        if let Some(b) = before {
            binds.push(b);
            sql.push_str(&format!(" AND id < ${}", binds.len() + 1));
        }
        sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", binds.len() + 2));
        // the text is built from fixed fragments only; values are bound
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(tenant_id);
        for b in binds {
            q = q.bind(b);
        }
        let mut items: Vec<Backup> = self.rows(q.bind(limit + 1)).await?;
        let more = items.len() as i64 > limit;
        items.truncate(limit as usize);
        Ok(BackupPage {
            next_before: if more {
                items.last().map(|b| b.id.clone())
            } else {
                None
            },
            items,
        })
    }

    /// Each of a tenant's sources' runs as an overview shows them (see
    /// [`SourceRuns`]; the chart over the newest `per_source` runs), in one
    /// query: a row per source, each part read from the (tenant, source, id,
    /// …) index alone — a row crossing the driver costs more than its bytes,
    /// a lookup into the table per run more than the rest.
    pub async fn recent_runs(&self, tenant_id: &str, per_source: i64) -> Result<Vec<SourceRuns>> {
        let sql = match self.dialect {
            crate::Dialect::Postgres => {
                "SELECT s.id AS source_id, \
                 (SELECT json_build_array(b.id, b.status, b.size, b.bytes_added, b.queued_at, \
                   b.started_at, b.finished_at)::text FROM backups b \
                   WHERE b.tenant_id = s.tenant_id AND b.source_id = s.id \
                   ORDER BY b.id DESC LIMIT 1) AS last, \
                 (SELECT json_build_array(b.id, b.status, b.size, b.bytes_added, b.queued_at, \
                   b.started_at, b.finished_at)::text FROM backups b \
                   WHERE b.tenant_id = s.tenant_id AND b.source_id = s.id AND b.status = 'done' \
                   ORDER BY b.id DESC LIMIT 1) AS success, \
                 (SELECT string_agg(coalesce(x.size, 0)::text || ':' || coalesce(CAST(round(extract( \
                   epoch FROM (x.finished_at::timestamptz - x.started_at::timestamptz))) AS BIGINT), \
                   0)::text, ',' ORDER BY x.id) FROM (SELECT b.id, b.status, b.size, b.started_at, \
                   b.finished_at FROM backups b WHERE b.tenant_id = s.tenant_id AND \
                   b.source_id = s.id ORDER BY b.id DESC LIMIT $2) x WHERE x.status = 'done') AS chart \
                 FROM sources s WHERE s.tenant_id = $1 ORDER BY s.id"
            }
            crate::Dialect::Sqlite => {
                "SELECT s.id AS source_id, \
                 (SELECT json_array(b.id, b.status, b.size, b.bytes_added, b.queued_at, \
                   b.started_at, b.finished_at) FROM backups b \
                   WHERE b.tenant_id = s.tenant_id AND b.source_id = s.id \
                   ORDER BY b.id DESC LIMIT 1) AS last, \
                 (SELECT json_array(b.id, b.status, b.size, b.bytes_added, b.queued_at, \
                   b.started_at, b.finished_at) FROM backups b \
                   WHERE b.tenant_id = s.tenant_id AND b.source_id = s.id AND b.status = 'done' \
                   ORDER BY b.id DESC LIMIT 1) AS success, \
                 (SELECT group_concat(ifnull(x.size, 0) || ':' || ifnull(CAST(round(( \
                   julianday(x.finished_at) - julianday(x.started_at)) * 86400) AS INTEGER), 0), \
                   ',' ORDER BY x.id) FROM (SELECT b.id, b.status, b.size, b.started_at, \
                   b.finished_at FROM backups b WHERE b.tenant_id = s.tenant_id AND \
                   b.source_id = s.id ORDER BY b.id DESC LIMIT $2) x WHERE x.status = 'done') AS chart \
                 FROM sources s WHERE s.tenant_id = $1 ORDER BY s.id"
            }
        };
        let rows = sqlx::query(sql)
            .bind(tenant_id)
            .bind(per_source)
            .fetch_all(self.pool())
            .await
            .map_err(CatalogError::db)?;
        type Packed = (
            String,
            String,
            Option<i64>,
            Option<i64>,
            String,
            Option<String>,
            Option<String>,
        );
        let run = |text: Option<String>| -> Result<Option<RunSummary>> {
            let Some(text) = text else { return Ok(None) };
            let (id, status, size, bytes_added, queued_at, started_at, finished_at): Packed =
                serde_json::from_str(&text)
                    .map_err(|e| CatalogError::Database(format!("recent runs: {e}")))?;
            Ok(Some(RunSummary {
                id,
                status,
                size,
                bytes_added,
                queued_at,
                started_at,
                finished_at,
            }))
        };
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let source_id: String = r.try_get("source_id").map_err(CatalogError::db)?;
            let text = |col: &str| {
                r.try_get::<Option<String>, _>(col)
                    .map_err(CatalogError::db)
            };
            let chart = text("chart")?
                .unwrap_or_default()
                .split(',')
                .filter_map(|pair| {
                    let (size, secs) = pair.split_once(':')?;
                    Some((size.parse().ok()?, secs.parse().ok()?))
                })
                .collect();
            out.push(SourceRuns {
                last: run(text("last")?)?,
                success: run(text("success")?)?,
                chart,
                source_id,
            });
        }
        Ok(out)
    }

    /// Record how far a running job (a backup or a restore) has got; not
    /// audited (it changes no state). `false` when the worker no longer
    /// holds it.
    pub async fn record_progress(
        &self,
        job: JobTable,
        id: &str,
        worker: &str,
        progress: &serde_json::Value,
    ) -> Result<bool> {
        let sql = match job {
            JobTable::Backups => {
                "UPDATE backups SET progress = $1 WHERE id = $2 AND lease_owner = $3 AND status = 'running'"
            }
            JobTable::Restores => {
                "UPDATE restores SET progress = $1 WHERE id = $2 AND lease_owner = $3 AND status = 'running'"
            }
        };
        let n = self
            .run(
                sqlx::query(sql)
                    .bind(progress.to_string())
                    .bind(id)
                    .bind(worker),
            )
            .await?;
        Ok(n > 0)
    }

    /// Extend the lease of a running job; `false` when the worker no longer
    /// holds it (another node declared it interrupted).
    pub async fn heartbeat(
        &self,
        id: &str,
        worker: &str,
        lease: SignedDuration,
        progressed: bool,
    ) -> Result<bool> {
        let now = clock::now();
        let n = self.run(sqlx::query(
            "UPDATE backups SET lease_until = $1, progress_at = CASE WHEN $2 = 1 THEN $3 ELSE progress_at END \
             WHERE id = $4 AND lease_owner = $5 AND status = 'running'",
        )
        .bind(clock::after(lease))
        .bind(progressed as i64)
        .bind(&now)
        .bind(id)
        .bind(worker))
        .await?;
        Ok(n > 0)
    }

    /// Record a successful run.
    pub async fn finish_backup(&self, id: &str, worker: &str, o: &Outcome) -> Result<Backup> {
        let mut w = self.write().await?;
        let b = fetch_for_update(&mut w, id).await?;
        if b.status != "running" || b.lease_owner.as_deref() != Some(worker) {
            return w
                .abort(crate::error::not_held("backup", id, Some(&b.status)))
                .await;
        }
        w.run(sqlx::query(
            "UPDATE backups SET status = 'done', snapshot_id = $1, size = $2, bytes_added = $3, counts = $4, \
             warnings = $5, error = NULL, error_kind = NULL, lease_owner = NULL, lease_until = NULL, \
             finished_at = $6 WHERE id = $7",
        )
        .bind(&o.snapshot_id)
        .bind(o.size as i64)
        .bind(o.bytes_added as i64)
        .bind(o.counts.to_string())
        .bind(serde_json::to_string(&o.warnings).unwrap_or_else(|_| "[]".into()))
        .bind(clock::now())
        .bind(id))
        .await?;
        w.audit(NewEvent {
            actor: &Actor::system(),
            tenant_id: Some(&b.tenant_id),
            event: "backup_succeeded",
            subject: Some(id),
            metadata: serde_json::json!({
                "snapshot_id": o.snapshot_id, "size": o.size, "bytes_added": o.bytes_added,
                "attempt": b.attempts, "warnings": o.warnings.len(),
            }),
        })
        .await?;
        let b = fetch(&mut w.tx, id).await?;
        w.commit().await?;
        Ok(b)
    }

    /// Record a failed attempt. A transient or interrupted failure with
    /// attempts left is queued again after `retry_delay`; otherwise the
    /// run ends `failed`. `worker` must hold the lease (`None`: recovery,
    /// which takes over whatever lease there was).
    pub async fn fail_backup(
        &self,
        id: &str,
        worker: Option<&str>,
        error: &str,
        kind: FailureKind,
        retry_delay: SignedDuration,
    ) -> Result<Backup> {
        self.fail(id, Failer::Worker(worker), error, kind, retry_delay)
            .await?
            .ok_or_else(|| unreachable_none(id))
    }

    /// Recovery of a run [`Catalog::orphaned_backups`] listed: fail it as
    /// `interrupted` (queued again if attempts remain), but only if it is
    /// still an orphan once its row is held: still `running` and, unless
    /// `all_running`, with a lease that has run out. `None` when it is not
    /// (its worker renewed the lease or recorded the outcome meanwhile, or
    /// another node recovered it first).
    pub async fn interrupt_backup(
        &self,
        id: &str,
        all_running: bool,
        error: &str,
        retry_delay: SignedDuration,
    ) -> Result<Option<Backup>> {
        self.fail(
            id,
            Failer::Orphan { all_running },
            error,
            FailureKind::Interrupted,
            retry_delay,
        )
        .await
    }

    async fn fail(
        &self,
        id: &str,
        by: Failer<'_>,
        error: &str,
        kind: FailureKind,
        retry_delay: SignedDuration,
    ) -> Result<Option<Backup>> {
        let mut w = self.write().await?;
        let b = fetch_for_update(&mut w, id).await?;
        let now = clock::now();
        match by {
            Failer::Worker(worker) => {
                if b.status != "running" || (worker.is_some() && b.lease_owner.as_deref() != worker)
                {
                    return w
                        .abort(crate::error::not_held("backup", id, Some(&b.status)))
                        .await;
                }
            }
            Failer::Orphan { all_running } => {
                let expired = b.lease_until.as_deref().is_none_or(|l| l < now.as_str());
                if b.status != "running" || !(all_running || expired) {
                    w.rollback().await?;
                    return Ok(None);
                }
            }
        }
        let retry = kind != FailureKind::Permanent && b.attempts < b.max_attempts;
        w.run(
            sqlx::query(
                "UPDATE backups SET status = $1, error = $2, error_kind = $3, lease_owner = NULL, \
             lease_until = NULL, finished_at = $4, run_after = $5 WHERE id = $6",
            )
            .bind(if retry { "queued" } else { "failed" })
            .bind(error)
            .bind(kind.as_str())
            .bind(if retry { None } else { Some(&now) })
            .bind(if retry {
                clock::after(retry_delay)
            } else {
                b.run_after.clone()
            })
            .bind(id),
        )
        .await?;
        let system = Actor::system();
        w.audit(NewEvent {
            actor: &system,
            tenant_id: Some(&b.tenant_id),
            event: "backup_failed",
            subject: Some(id),
            metadata: serde_json::json!({
                "error": error, "error_kind": kind.as_str(), "attempt": b.attempts,
                "will_retry": retry,
            }),
        })
        .await?;
        if retry {
            w.audit(NewEvent {
                actor: &system,
                tenant_id: Some(&b.tenant_id),
                event: "backup_retried",
                subject: Some(id),
                metadata: serde_json::json!({
                    "automatic": true, "attempt": b.attempts + 1, "after_seconds": retry_delay.as_secs(),
                }),
            })
            .await?;
        }
        let b = fetch(&mut w.tx, id).await?;
        w.commit().await?;
        Ok(Some(b))
    }

    /// Runs whose worker is gone: `running` with a lease that expired, or
    /// (`all_running`, at the start of the only node) every running row.
    /// Recovery fails each with [`Catalog::interrupt_backup`], which checks
    /// again under the row's lock.
    pub async fn orphaned_backups(&self, all_running: bool) -> Result<Vec<Backup>> {
        self.rows(
            sqlx::query(
                "SELECT * FROM backups WHERE status = 'running' AND ($1 = 1 OR lease_until < $2)",
            )
            .bind(all_running as i64)
            .bind(clock::now()),
        )
        .await
    }

    /// Queue a failed run again (`POST …/retry`): one more attempt.
    pub async fn retry_backup(&self, id: &str, actor: &Actor) -> Result<Backup> {
        let mut w = self.write().await?;
        let b = fetch_for_update(&mut w, id).await?;
        if b.status != "failed" {
            return w
                .abort(CatalogError::Conflict(Conflict::State {
                    id: id.to_string(),
                    status: b.status.clone(),
                    needs: Needs::Failed,
                }))
                .await;
        }
        w.run(sqlx::query(
            "UPDATE backups SET status = 'queued', run_after = $1, max_attempts = attempts + 1, \
             finished_at = NULL WHERE id = $2",
        )
        .bind(clock::now())
        .bind(id))
        .await?;
        w.audit(NewEvent {
            actor,
            tenant_id: Some(&b.tenant_id),
            event: "backup_retried",
            subject: Some(id),
            metadata: serde_json::json!({"automatic": false, "attempt": b.attempts + 1}),
        })
        .await?;
        let b = fetch(&mut w.tx, id).await?;
        w.commit().await?;
        Ok(b)
    }

    /// Runs waiting (for `/metrics`).
    pub async fn queue_depth(&self) -> Result<i64> {
        sqlx::query("SELECT COUNT(*) AS n FROM backups WHERE status = 'queued'")
            .fetch_one(self.pool())
            .await
            .and_then(|r| r.try_get::<i64, _>("n"))
            .map_err(CatalogError::db)
    }
}

/// What `/metrics` reads from the catalog.
impl Catalog {
    /// Runs by status.
    pub async fn backup_counts(&self) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM backups GROUP BY status")
            .fetch_all(self.pool())
            .await
            .map_err(CatalogError::db)?;
        rows.iter()
            .map(|r| Ok((r.try_get("status")?, r.try_get("n")?)))
            .collect::<std::result::Result<_, sqlx::Error>>()
            .map_err(CatalogError::db)
    }

    /// When the longest-running job started.
    pub async fn oldest_running_start(&self) -> Result<Option<String>> {
        sqlx::query("SELECT MIN(started_at) AS s FROM backups WHERE status = 'running'")
            .fetch_one(self.pool())
            .await
            .and_then(|r| r.try_get::<Option<String>, _>("s"))
            .map_err(CatalogError::db)
    }

    /// (tenant name, source id, source name, last finished_at) of every
    /// source with a successful run.
    pub async fn last_successes(&self) -> Result<Vec<(String, String, String, String)>> {
        let rows = sqlx::query(
            "SELECT t.name AS tenant, s.id AS source_id, s.name AS source, MAX(b.finished_at) AS finished \
             FROM backups b JOIN sources s ON s.id = b.source_id JOIN tenants t ON t.id = b.tenant_id \
             WHERE b.status IN ('done', 'deleting', 'deleted') AND b.finished_at IS NOT NULL \
             GROUP BY t.name, s.id, s.name ORDER BY t.name, s.name",
        )
        .fetch_all(self.pool())
        .await
        .map_err(CatalogError::db)?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("tenant")?,
                    r.try_get("source_id")?,
                    r.try_get("source")?,
                    r.try_get("finished")?,
                ))
            })
            .collect::<std::result::Result<_, sqlx::Error>>()
            .map_err(CatalogError::db)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_fourfold_to_an_hour() {
        let base = SignedDuration::from_secs(30);
        assert_eq!(backoff(base, 1).as_secs(), 30);
        assert_eq!(backoff(base, 2).as_secs(), 120);
        assert_eq!(backoff(base, 3).as_secs(), 480);
        assert_eq!(backoff(base, 9).as_secs(), 3600);
    }
}
