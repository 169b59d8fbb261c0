//! The catalog's job queues. Backups, restores, deletions and verifications
//! are rows that
//! workers take with a lease: [`Queue`] says which rows of which table are
//! due, in which order, and what taking one sets; [`Catalog::claim`] is the
//! one claim query for all of them, and [`Catalog::renew_lease`] the one
//! heartbeat.
//!
//! Invariants: a due row is taken by exactly one worker (PostgreSQL: `FOR
//! UPDATE SKIP LOCKED` in the claiming transaction; SQLite: its single
//! writer); a lease is renewed only by the worker that holds it and only
//! while the row is in the queue's running state. The SQL text is built
//! from the fixed strings below only; every value is bound.

use std::marker::PhantomData;

use jiff::SignedDuration;

use crate::backups::Backup;
use crate::notifications::Notification;
use crate::restores::Restore;
use crate::verifications::Verification;
use crate::{Catalog, CatalogError, Dialect, Result, clock};

/// A row type read whole by its id: a queue's jobs (backups, restores).
pub trait Record: crate::FromRow {
    const TABLE: &'static str;
    /// What a missing one is called.
    const WHAT: &'static str;
}

/// The row `id` of `R`'s table, read with `executor` (the pool, or a
/// transaction to read it as the transaction sees it).
pub(crate) async fn fetch<'e, R: Record>(
    executor: impl sqlx::Executor<'e, Database = sqlx::Any>,
    id: &str,
) -> Result<R> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT * FROM {} WHERE id = $1",
        R::TABLE
    )))
    .bind(id)
    .fetch_optional(executor)
    .await
    .map_err(CatalogError::db)?
    .ok_or(CatalogError::NotFound { what: R::WHAT })?;
    R::from_row(&row).map_err(CatalogError::db)
}

/// One queue of leased jobs whose rows are `R`s: [`BACKUPS`], [`RESTORES`],
/// [`VERIFICATIONS`], [`NOTIFICATIONS`] and [`DELETIONS`] (no other can be made: its SQL fragments are fixed
/// here).
pub struct Queue<R> {
    table: &'static str,
    /// Which rows are due (`$1` is now).
    due: &'static str,
    order: &'static str,
    /// What taking a row sets besides its lease (`$3` is now).
    take: &'static str,
    /// The status a held row is in (what its heartbeat requires).
    held: &'static str,
    row: PhantomData<fn() -> R>,
}

/// Queued backup runs whose time has come.
pub const BACKUPS: Queue<Backup> = Queue {
    table: "backups",
    due: "status = 'queued' AND run_after <= $1",
    order: "run_after, id",
    take: "status = 'running', progress_at = $3, started_at = $3, finished_at = NULL, \
           attempts = attempts + 1",
    held: "running",
    row: PhantomData,
};

/// Queued restores, oldest first.
pub const RESTORES: Queue<Restore> = Queue {
    table: "restores",
    due: "status = 'queued' AND queued_at <= $1",
    order: "queued_at, id",
    take: "status = 'running', started_at = $3",
    held: "running",
    row: PhantomData,
};

/// Queued repository verifications, oldest first.
pub const VERIFICATIONS: Queue<Verification> = Queue {
    table: "verifications",
    due: "status = 'queued' AND queued_at <= $1",
    order: "queued_at, id",
    take: "status = 'running', started_at = $3",
    held: "running",
    row: PhantomData,
};

/// Notifications to deliver: due ones, and ones whose sender's lease ran
/// out mid-send (sent again: a receiver may see a message twice, never
/// none).
pub const NOTIFICATIONS: Queue<Notification> = Queue {
    table: "notifications",
    due: "((status = 'queued' AND run_after <= $1) OR (status = 'sending' AND lease_until < $1))",
    order: "run_after, id",
    take: "status = 'sending', attempts = attempts + 1",
    held: "sending",
    row: PhantomData,
};

/// A deletion stays `deleting` while held; a lease that ran out makes it
/// due again.
pub const DELETIONS: Queue<Backup> = Queue {
    table: "backups",
    due: "status = 'deleting' AND run_after <= $1 AND (lease_until IS NULL OR lease_until < $1)",
    order: "run_after, id",
    take: "run_after = $3",
    held: "deleting",
    row: PhantomData,
};

impl Catalog {
    /// A tenant's rows of `R`'s table that finished in [`from`, `to`]
    /// (times as the catalog stores them), oldest first: what a report
    /// counts.
    pub async fn finished_between<R: Record>(
        &self,
        tenant_id: &str,
        from: &str,
        to: &str,
    ) -> Result<Vec<R>> {
        self.rows(
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT * FROM {} WHERE tenant_id = $1 AND finished_at >= $2 \
                 AND finished_at <= $3 ORDER BY finished_at, id",
                R::TABLE
            )))
            .bind(tenant_id)
            .bind(from)
            .bind(to),
        )
        .await
    }

    /// Take the first due row of `q` for `worker`, leased until now +
    /// `lease`; the row as taken, or `None` when nothing is due.
    pub async fn claim<R: Record>(
        &self,
        q: &Queue<R>,
        worker: &str,
        lease: SignedDuration,
    ) -> Result<Option<R>> {
        let now = clock::now();
        let mut w = self.write().await?;
        let skip_locked = match w.dialect {
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
            Dialect::Sqlite => "",
        };
        let next = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT id FROM {} WHERE {} ORDER BY {} LIMIT 1{skip_locked}",
            q.table, q.due, q.order
        )))
        .bind(&now)
        .fetch_optional(&mut *w.tx)
        .await
        .map_err(CatalogError::db)?;
        let Some(row) = next else {
            w.rollback().await?;
            return Ok(None);
        };
        let id: String = sqlx::Row::try_get(&row, "id").map_err(CatalogError::db)?;
        w.run(
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE {} SET lease_owner = $1, lease_until = $2, {} WHERE id = $4",
                q.table, q.take
            )))
            .bind(worker)
            .bind(clock::after(lease))
            .bind(&now)
            .bind(&id),
        )
        .await?;
        let taken = fetch(&mut *w.tx, &id).await?;
        w.commit().await?;
        Ok(Some(taken))
    }

    /// Extend the lease `worker` holds on row `id` of `q`; `false` when it
    /// no longer holds it (the job finished, or another node recovered it).
    pub async fn renew_lease<R>(
        &self,
        q: &Queue<R>,
        id: &str,
        worker: &str,
        lease: SignedDuration,
    ) -> Result<bool> {
        let n = self.run(sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE {} SET lease_until = $1 WHERE id = $2 AND lease_owner = $3 AND status = '{}'",
            q.table, q.held
        )))
        .bind(clock::after(lease))
        .bind(id)
        .bind(worker))
        .await?;
        Ok(n > 0)
    }
}
