//! Service-wide periodic jobs (the retention sweep): each slot is claimed
//! once across every node, and what a retention pass decided is recorded.

use sqlx::Row;

use crate::audit::NewEvent;
use crate::{Actor, Catalog, CatalogError, Result, clock};

impl Catalog {
    /// Claim the `slot` of the periodic job `name` for `node`: `true` for
    /// exactly one caller across every node.
    pub async fn claim_slot(&self, name: &str, slot: &str, node: &str) -> Result<bool> {
        let mut w = self.write().await?;
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
        w.commit().await?;
        Ok(n > 0)
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
