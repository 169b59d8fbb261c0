//! Deleting backups: the row stays (status `deleting`, then `deleted`
//! with `deleted_at`); a worker removes the snapshot and prunes.

use jiff::SignedDuration;
use sqlx::Row;

use crate::audit::NewEvent;
use crate::backups::{Backup, fetch, fetch_for_update};
use crate::{Actor, Catalog, CatalogError, Conflict, Needs, Result, clock};

impl Catalog {
    /// Ask for a backup's deletion. A finished backup becomes `deleting`
    /// (a worker removes its snapshot); one that failed has no snapshot and
    /// becomes `deleted` at once. Asking again changes nothing. The audit
    /// row (`backup_deleted`, with `reason`) is written now, before the work.
    pub async fn request_deletion(&self, id: &str, actor: &Actor, reason: &str) -> Result<Backup> {
        let mut w = self.write().await?;
        // held until the change: two requests at once audit one deletion
        let b = fetch_for_update(&mut w, id).await?;
        let now = clock::now();
        let next = match b.status.as_str() {
            "deleting" | "deleted" => {
                w.rollback().await?;
                return Ok(b);
            }
            "queued" | "running" => {
                return w
                    .abort(CatalogError::Conflict(Conflict::State {
                        id: id.to_string(),
                        status: b.status.clone(),
                        needs: Needs::Finished,
                    }))
                    .await;
            }
            "done" => "deleting",
            _ => "deleted",
        };
        w.run(sqlx::query(
            "UPDATE backups SET status = $1, run_after = $2, lease_owner = NULL, lease_until = NULL, \
             deleted_at = CASE WHEN $1 = 'deleted' THEN $2 ELSE deleted_at END WHERE id = $3",
        )
        .bind(next)
        .bind(&now)
        .bind(id))
        .await?;
        w.audit(NewEvent {
            actor,
            tenant_id: Some(&b.tenant_id),
            event: "backup_deleted",
            subject: Some(id),
            metadata: serde_json::json!({
                "reason": reason, "snapshot_id": b.snapshot_id, "source_id": b.source_id,
                "previous_status": b.status,
            }),
        })
        .await?;
        let b = fetch(&mut w.tx, id).await?;
        w.commit().await?;
        Ok(b)
    }

    /// The snapshot is gone: `deleted`, with `deleted_at`.
    pub async fn finish_deletion(&self, id: &str, worker: &str) -> Result<Backup> {
        let w = self.write().await?;
        let mut w = w
            .run_held(sqlx::query(
            "UPDATE backups SET status = 'deleted', deleted_at = $1, lease_owner = NULL, lease_until = NULL, \
             error = NULL WHERE id = $2 AND status = 'deleting' AND lease_owner = $3",
        )
        .bind(clock::now())
        .bind(id)
        .bind(worker),
                "deletion of",
                id,
            )
            .await?;
        let b = fetch(&mut w.tx, id).await?;
        w.commit().await?;
        Ok(b)
    }

    /// A deletion that failed (the repository locked, storage down): keep
    /// it `deleting` and try again after `delay`.
    pub async fn defer_deletion(
        &self,
        id: &str,
        worker: &str,
        error: &str,
        delay: SignedDuration,
    ) -> Result<()> {
        self.run(sqlx::query(
            "UPDATE backups SET lease_owner = NULL, lease_until = NULL, error = $1, run_after = $2 \
             WHERE id = $3 AND status = 'deleting' AND lease_owner = $4",
        )
        .bind(error)
        .bind(clock::after(delay))
        .bind(id)
        .bind(worker))
        .await?;
        Ok(())
    }

    /// The source's finished backups that still have a snapshot (what
    /// retention decides about), newest first.
    pub async fn live_backups(&self, source_id: &str) -> Result<Vec<Backup>> {
        self.rows(sqlx::query(
            "SELECT * FROM backups WHERE source_id = $1 AND status = 'done' AND deleted_at IS NULL \
             ORDER BY id DESC",
        )
        .bind(source_id)).await
    }

    /// The latest scheduled slot that was queued for a source.
    pub async fn last_slot(&self, source_id: &str) -> Result<Option<String>> {
        sqlx::query("SELECT MAX(slot) AS s FROM backups WHERE source_id = $1")
            .bind(source_id)
            .fetch_one(self.pool())
            .await
            .and_then(|r| r.try_get::<Option<String>, _>("s"))
            .map_err(CatalogError::db)
    }
}
