//! Service-wide periodic jobs (the retention sweep, verification, drills):
//! each slot is claimed once across every node; what a retention pass
//! decided is recorded; events that must be told once (a source overdue
//! for a missed slot) are audited once per slot.

use sqlx::Row;

use crate::audit::NewEvent;
use crate::{Actor, Catalog, CatalogError, Result, WriteTx, clock};

/// Claim `slot` of `name` in `w`: `false` when it was claimed before.
async fn insert_slot(w: &mut WriteTx<'_>, name: &str, slot: &str, node: &str) -> Result<bool> {
    let n = w
        .run(
            sqlx::query(
                "INSERT INTO job_slots (name, slot, node, claimed_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (name, slot) DO NOTHING",
            )
            .bind(name)
            .bind(slot)
            .bind(node)
            .bind(clock::now()),
        )
        .await?;
    Ok(n > 0)
}

impl Catalog {
    /// Claim the `slot` of the periodic job `name` for `node`: `true` for
    /// exactly one caller across every node.
    pub async fn claim_slot(&self, name: &str, slot: &str, node: &str) -> Result<bool> {
        let mut w = self.write().await?;
        let claimed = insert_slot(&mut w, name, slot, node).await?;
        w.commit().await?;
        Ok(claimed)
    }

    /// Audit `event` once per `slot` of `name` across every node: the slot's
    /// claim and the audit row are one transaction, so a crash between
    /// them cannot lose the event or write it twice. `true` when this call
    /// wrote it.
    pub async fn audit_once(
        &self,
        (name, slot, node): (&str, &str, &str),
        tenant_id: &str,
        event: &str,
        subject: &str,
        metadata: serde_json::Value,
    ) -> Result<bool> {
        let mut w = self.write().await?;
        if !insert_slot(&mut w, name, slot, node).await? {
            w.rollback().await?;
            return Ok(false);
        }
        w.audit(NewEvent {
            actor: &Actor::system(),
            tenant_id: Some(tenant_id),
            event,
            subject: Some(subject),
            metadata,
        })
        .await?;
        w.commit().await?;
        Ok(true)
    }

    /// The latest claimed slot of a periodic job.
    pub async fn last_job_slot(&self, name: &str) -> Result<Option<String>> {
        sqlx::query("SELECT MAX(slot) AS s FROM job_slots WHERE name = $1")
            .bind(name)
            .fetch_one(self.pool())
            .await
            .and_then(|r| r.try_get::<Option<String>, _>("s"))
            .map_err(CatalogError::db)
    }

    /// Record what a retention pass decided for one source.
    pub async fn record_retention(
        &self,
        tenant_id: &str,
        source_id: &str,
        kept: usize,
        deleted: &[String],
        failed: &[String],
    ) -> Result<()> {
        let mut w = self.write().await?;
        w.audit(NewEvent {
            actor: &Actor::system(),
            tenant_id: Some(tenant_id),
            event: "retention_applied",
            subject: Some(source_id),
            metadata: serde_json::json!({"kept": kept, "deleted": deleted, "failed": failed}),
        })
        .await?;
        w.commit().await
    }
}
