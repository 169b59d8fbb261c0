//! The append-only audit log. Rows are appended inside the transaction of
//! the change they describe (so the row exists before the work starts), and
//! chained (see `chain`). Appends are serialised: on SQLite by the write
//! lock every write transaction holds, on PostgreSQL by an advisory lock
//! taken for the rest of the transaction.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

pub use crate::chain::AuditRow;
use crate::chain::{AuditHead, ChainBreak, ChainVerifier, GENESIS, check_anchor, row_hash};
use crate::{Actor, Catalog, CatalogError, Dialect, Result, WriteTx, clock};

/// The API's view of a row.
#[derive(Debug, Clone, Serialize)]
pub struct AuditView {
    pub seq: i64,
    pub time: String,
    pub event: String,
    pub actor: Actor,
    pub tenant: Option<String>,
    pub subject: Option<String>,
    pub metadata: serde_json::Value,
    pub hash: String,
}

impl AuditRow {
    pub fn view(&self) -> AuditView {
        AuditView {
            seq: self.seq,
            time: self.time.clone(),
            event: self.event.clone(),
            actor: self.actor.clone(),
            tenant: self.tenant_id.clone(),
            subject: self.subject.clone(),
            metadata: serde_json::from_str(&self.metadata_text).unwrap_or(serde_json::Value::Null),
            hash: self.hash.clone(),
        }
    }
}

impl crate::FromRow for AuditRow {
    fn from_row(r: &AnyRow) -> std::result::Result<AuditRow, sqlx::Error> {
        Ok(AuditRow {
            seq: r.try_get("seq")?,
            time: r.try_get("time")?,
            actor: Actor {
                token_id: r.try_get("actor_token_id")?,
                label: r.try_get("actor_label")?,
            },
            tenant_id: r.try_get("tenant_id")?,
            event: r.try_get("event")?,
            subject: r.try_get("subject")?,
            metadata_text: r.try_get("metadata")?,
            prev_hash: r.try_get("prev_hash")?,
            hash: r.try_get("hash")?,
        })
    }
}

/// An event to append.
pub struct NewEvent<'a> {
    pub actor: &'a Actor,
    pub tenant_id: Option<&'a str>,
    pub event: &'a str,
    pub subject: Option<&'a str>,
    pub metadata: serde_json::Value,
}

impl WriteTx<'_> {
    /// Append an event to the chain; its sequence number.
    pub async fn audit(&mut self, ev: NewEvent<'_>) -> Result<i64> {
        if self.dialect == Dialect::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(7265727)")
                .execute(&mut *self.tx)
                .await
                .map_err(CatalogError::db)?;
        }
        let last = sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(CatalogError::db)?;
        let (seq, prev) = match last {
            Some(r) => (
                r.try_get::<i64, _>("seq").map_err(CatalogError::db)? + 1,
                r.try_get::<String, _>("hash").map_err(CatalogError::db)?,
            ),
            None => (1, GENESIS.to_string()),
        };
        let mut row = AuditRow {
            seq,
            time: clock::now(),
            actor: ev.actor.clone(),
            tenant_id: ev.tenant_id.map(str::to_string),
            event: ev.event.to_string(),
            subject: ev.subject.map(str::to_string),
            metadata_text: ev.metadata.to_string(),
            prev_hash: prev,
            hash: String::new(),
        };
        row.hash = row_hash(&self.audit_key, &row.prev_hash, &row);
        sqlx::query(
            "INSERT INTO audit_log (seq, time, actor_token_id, actor_label, tenant_id, event, subject, \
             metadata, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(row.seq)
        .bind(&row.time)
        .bind(&row.actor.token_id)
        .bind(&row.actor.label)
        .bind(&row.tenant_id)
        .bind(&row.event)
        .bind(&row.subject)
        .bind(&row.metadata_text)
        .bind(&row.prev_hash)
        .bind(&row.hash)
        .execute(&mut *self.tx)
        .await
        .map_err(CatalogError::db)?;
        self.appended = Some(AuditHead {
            seq,
            hash: row.hash.clone(),
        });
        Ok(seq)
    }
}

/// Filters of `GET /api/v1/audit`.
#[derive(Debug, Default, Clone)]
pub struct AuditFilter {
    pub tenant_id: Option<String>,
    pub event: Option<String>,
    /// The actor's label, exactly (a token's label, or `system`).
    pub actor: Option<String>,
    /// Times as the catalog writes them (RFC 3339, UTC): rows at or after
    /// `since` and before `until`.
    pub since: Option<String>,
    pub until: Option<String>,
}

/// One page, newest first.
pub struct AuditPage {
    pub items: Vec<AuditRow>,
    /// The `seq` to continue below, when there is more.
    pub next_before: Option<i64>,
}

/// The audit query with only the filters given (so indexes are used),
/// followed by `AND <position>$n <order> LIMIT $n+1`; the filter values
/// to bind first.
fn audit_query<'f>(f: &'f AuditFilter, position: &str, order: &str) -> (String, Vec<&'f str>) {
    let mut sql = String::from("SELECT * FROM audit_log WHERE 1 = 1");
    let mut binds: Vec<&str> = Vec::new();
    for (condition, value) in [
        ("tenant_id =", &f.tenant_id),
        ("event =", &f.event),
        ("actor_label =", &f.actor),
        ("time >=", &f.since),
        ("time <", &f.until),
    ] {
        if let Some(v) = value {
            binds.push(v);
            sql.push_str(&format!(" AND {condition} ${}", binds.len()));
        }
    }
    sql.push_str(&format!(
        " AND {position}${} {order} LIMIT ${}",
        binds.len() + 1,
        binds.len() + 2
    ));
    (sql, binds)
}

impl Catalog {
    /// Append one event on its own (an action with no row change of its
    /// own, such as a download), before the action is carried out.
    pub async fn record_event(&self, ev: NewEvent<'_>) -> Result<i64> {
        let mut w = self.write().await?;
        let seq = w.audit(ev).await?;
        w.commit().await?;
        Ok(seq)
    }

    /// The newest `limit` events about a backup and the restores of it,
    /// newest first.
    pub async fn backup_audit(&self, backup_id: &str, limit: i64) -> Result<Vec<AuditRow>> {
        self.rows(
            sqlx::query(
                "SELECT * FROM audit_log WHERE subject = $1 \
             OR subject IN (SELECT id FROM restores WHERE backup_id = $1) \
             ORDER BY seq DESC LIMIT $2",
            )
            .bind(backup_id)
            .bind(limit),
        )
        .await
    }

    /// A page of events, newest first, below sequence `before`.
    pub async fn audit_page(
        &self,
        f: &AuditFilter,
        limit: i64,
        before: Option<i64>,
    ) -> Result<AuditPage> {
        let before = before.unwrap_or(i64::MAX);
        let mut items = self
            .audit_rows(f, "seq < ", "ORDER BY seq DESC", before, limit + 1)
            .await?;
        let more = items.len() as i64 > limit;
        items.truncate(limit as usize);
        Ok(AuditPage {
            next_before: if more {
                items.last().map(|r| r.seq)
            } else {
                None
            },
            items,
        })
    }

    /// Events in sequence order after `after`, at most `limit`.
    pub async fn audit_after(
        &self,
        f: &AuditFilter,
        after: i64,
        limit: i64,
    ) -> Result<Vec<AuditRow>> {
        self.audit_rows(f, "seq > ", "ORDER BY seq", after, limit)
            .await
    }

    /// The rows `f` selects beyond `cursor` (`position` `order`), at most `limit`.
    async fn audit_rows(
        &self,
        f: &AuditFilter,
        position: &str,
        order: &str,
        cursor: i64,
        limit: i64,
    ) -> Result<Vec<AuditRow>> {
        let (sql, binds) = audit_query(f, position, order);
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for b in binds {
            q = q.bind(b);
        }
        self.rows(q.bind(cursor).bind(limit)).await
    }

    /// Walk the whole chain. `Ok(n)`: n rows, all intact; `Err` names the
    /// first row that was edited, inserted or deleted.
    pub async fn verify_audit(&self) -> Result<std::result::Result<u64, ChainBreak>> {
        let mut v = ChainVerifier::new(self.key().audit_key());
        let all = AuditFilter::default();
        let mut after = 0;
        loop {
            let rows = self.audit_after(&all, after, 1000).await?;
            let Some(last) = rows.last() else { break };
            after = last.seq;
            for r in &rows {
                if let Err(b) = v.check(r) {
                    return Ok(Err(b));
                }
            }
        }
        Ok(Ok(v.rows))
    }

    /// The chain's head now (None: an empty log).
    pub async fn audit_head(&self) -> Result<Option<AuditHead>> {
        let row = sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&self.pool)
            .await
            .map_err(CatalogError::db)?;
        row.map(|r| {
            Ok(AuditHead {
                seq: r.try_get("seq").map_err(CatalogError::db)?,
                hash: r.try_get("hash").map_err(CatalogError::db)?,
            })
        })
        .transpose()
    }

    /// [`Catalog::verify_audit`], then each anchor recorded outside the
    /// catalog (`(anchor, where it was found)`): the log must still hold
    /// each anchored row with the anchored hash.
    pub async fn verify_audit_with(
        &self,
        anchors: &[(AuditHead, String)],
    ) -> Result<std::result::Result<u64, ChainBreak>> {
        let n = match self.verify_audit().await? {
            Ok(n) => n,
            Err(b) => return Ok(Err(b)),
        };
        let last = self.audit_head().await?.map_or(0, |h| h.seq);
        for (anchor, source) in anchors {
            let hash: Option<String> = sqlx::query("SELECT hash FROM audit_log WHERE seq = $1")
                .bind(anchor.seq)
                .fetch_optional(&self.pool)
                .await
                .map_err(CatalogError::db)?
                .map(|r| r.try_get("hash"))
                .transpose()
                .map_err(CatalogError::db)?;
            if let Err(b) = check_anchor(anchor, hash.as_deref(), last, source) {
                return Ok(Err(b));
            }
        }
        Ok(Ok(n))
    }
}
