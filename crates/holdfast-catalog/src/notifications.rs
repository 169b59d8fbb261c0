//! Notification channels and the outbox of their deliveries.
//!
//! A channel belongs to one tenant (its events only) or to no tenant (an
//! admin's, every tenant's events). Its URL and secret may hold credentials
//! (a webhook's token path, an SMTP password, an HMAC key): both are sealed
//! under the server key and never leave the catalog except to the sender;
//! the API shows `url_shown`, a redacted form the service computes.
//!
//! The outbox: the service reads the audit log in sequence order from a
//! cursor and turns the events that matter into one `notifications` row per
//! matching channel. [`Catalog::fan_out`] inserts those rows and moves the
//! cursor in one transaction, and only from the cursor the caller read, so
//! with several nodes each event is fanned out exactly once. Rows are then
//! taken like any job ([`crate::queue::NOTIFICATIONS`]), sent, and either
//! delivered or queued again after a delay, until their attempts run out.
//!
//! Invariant: a tenant's channel only ever gets rows of that tenant's
//! events — [`Catalog::fan_out`] checks every row against its channel.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::audit::NewEvent;
use crate::{Actor, Catalog, CatalogError, FromRow, Result, clock};

#[derive(Debug, Clone, Serialize)]
pub struct Channel {
    pub id: String,
    /// `None`: an admin's channel, for every tenant's events.
    pub tenant_id: Option<String>,
    pub name: String,
    /// `webhook`, `slack`, `discord`, `ntfy`, `gotify`, `email`,
    /// `healthchecks`.
    pub kind: String,
    /// The URL with anything secret left out.
    pub url_shown: String,
    /// Whether a secret (HMAC key, password) is stored.
    pub has_secret: bool,
    /// The events it gets (empty: all).
    pub events: Vec<String>,
    /// Kind-specific settings that are not secret (e-mail recipients, a
    /// healthchecks channel's source).
    pub settings: serde_json::Value,
    /// `admin` or `operator`: whose trust the URL carries.
    pub defined_by: String,
    pub created_at: String,
    pub updated_at: String,
    /// The last delivery attempt: `delivered` or `failed`, when, and why.
    pub last_status: Option<String>,
    pub last_at: Option<String>,
    pub last_error: Option<String>,
}

impl FromRow for Channel {
    fn from_row(r: &AnyRow) -> std::result::Result<Channel, sqlx::Error> {
        let json = |col: &str| -> std::result::Result<serde_json::Value, sqlx::Error> {
            let t: String = r.try_get(col)?;
            serde_json::from_str(&t).map_err(|e| sqlx::Error::Decode(e.into()))
        };
        Ok(Channel {
            id: r.try_get("id")?,
            tenant_id: r.try_get("tenant_id")?,
            name: r.try_get("name")?,
            kind: r.try_get("kind")?,
            url_shown: r.try_get("url_shown")?,
            has_secret: r.try_get::<Option<String>, _>("secret")?.is_some(),
            events: serde_json::from_value(json("events")?).unwrap_or_default(),
            settings: json("settings")?,
            defined_by: r.try_get("defined_by")?,
            created_at: r.try_get("created_at")?,
            updated_at: r.try_get("updated_at")?,
            last_status: r.try_get("last_status")?,
            last_at: r.try_get("last_at")?,
            last_error: r.try_get("last_error")?,
        })
    }
}

/// A channel as it is stored: its fields with the URL and secret in the
/// clear (sealed by the catalog) and the URL's redacted form.
#[derive(Debug, Clone)]
pub struct ChannelFields {
    pub name: String,
    pub kind: String,
    pub url: String,
    pub url_shown: String,
    pub secret: Option<String>,
    pub events: Vec<String>,
    pub settings: serde_json::Value,
    pub defined_by: String,
}

/// What the sender needs of a channel: its row and its opened secrets.
#[derive(Debug, Clone)]
pub struct Opened {
    pub channel: Channel,
    pub url: String,
    pub secret: Option<String>,
}

/// One delivery: an event's message for one channel.
#[derive(Debug, Clone, Serialize)]
pub struct Notification {
    pub id: String,
    pub channel_id: String,
    pub tenant_id: Option<String>,
    /// `backup_failed`, `backup_overdue`, `drill_failed`, … (`test`).
    pub event: String,
    /// The message, as the documented JSON body of a generic webhook.
    pub body: serde_json::Value,
    /// `queued`, `sending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: i64,
    pub run_after: String,
    pub last_error: Option<String>,
    pub created_at: String,
    pub delivered_at: Option<String>,
}

impl FromRow for Notification {
    fn from_row(r: &AnyRow) -> std::result::Result<Notification, sqlx::Error> {
        let body: String = r.try_get("body")?;
        Ok(Notification {
            id: r.try_get("id")?,
            channel_id: r.try_get("channel_id")?,
            tenant_id: r.try_get("tenant_id")?,
            event: r.try_get("event")?,
            body: serde_json::from_str(&body).map_err(|e| sqlx::Error::Decode(e.into()))?,
            status: r.try_get("status")?,
            attempts: r.try_get("attempts")?,
            run_after: r.try_get("run_after")?,
            last_error: r.try_get("last_error")?,
            created_at: r.try_get("created_at")?,
            delivered_at: r.try_get("delivered_at")?,
        })
    }
}

impl crate::queue::Record for Notification {
    const TABLE: &'static str = "notifications";
    const WHAT: &'static str = "notification";
}

/// A delivery to queue.
#[derive(Debug, Clone)]
pub struct NewNotification {
    pub channel_id: String,
    pub tenant_id: Option<String>,
    pub event: String,
    pub body: serde_json::Value,
}

/// The cursor's name in `notify_cursor`.
const CURSOR: &str = "audit";

impl Catalog {
    /// A new channel of `tenant_id` (`None`: an admin's); audited with its
    /// redacted URL.
    pub async fn create_channel(
        &self,
        tenant_id: Option<&str>,
        f: ChannelFields,
        actor: &Actor,
    ) -> Result<Channel> {
        let id = crate::tenants::new_id();
        let now = clock::now();
        let mut w = self.write().await?;
        w.run(
            sqlx::query(
                "INSERT INTO channels (id, tenant_id, name, kind, url, url_shown, secret, events, \
                 settings, defined_by, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)",
            )
            .bind(&id)
            .bind(tenant_id)
            .bind(&f.name)
            .bind(&f.kind)
            .bind(self.key().seal(f.url.as_bytes()))
            .bind(&f.url_shown)
            .bind(f.secret.as_ref().map(|s| self.key().seal(s.as_bytes())))
            .bind(serde_json::Value::from(f.events.clone()).to_string())
            .bind(f.settings.to_string())
            .bind(&f.defined_by)
            .bind(&now),
        )
        .await?;
        w.audit(NewEvent {
            actor,
            tenant_id,
            event: "channel_created",
            subject: Some(&id),
            metadata: serde_json::json!({"name": f.name, "kind": f.kind, "url": f.url_shown,
                                         "events": f.events}),
        })
        .await?;
        let c = fetch_channel(&mut w, &id).await?;
        w.commit().await?;
        Ok(c)
    }

    /// Replace a channel's fields (the caller merged them with the stored
    /// ones); `keep_url`/`keep_secret`: the stored URL or secret stays, and
    /// `f.url`/`f.secret` are not used.
    pub async fn update_channel(
        &self,
        id: &str,
        f: ChannelFields,
        keep_url: bool,
        keep_secret: bool,
        actor: &Actor,
    ) -> Result<Channel> {
        let mut w = self.write().await?;
        let before = fetch_channel(&mut w, id).await?;
        let sealed_url = (!keep_url).then(|| self.key().seal(f.url.as_bytes()));
        let sealed_secret = f.secret.as_ref().map(|s| self.key().seal(s.as_bytes()));
        w.run(
            sqlx::query(
                "UPDATE channels SET name = $1, url = COALESCE($2, url), url_shown = $3, \
                 secret = CASE WHEN $4 = 1 THEN secret ELSE $5 END, events = $6, settings = $7, \
                 defined_by = $8, updated_at = $9 WHERE id = $10 AND deleted_at IS NULL",
            )
            .bind(&f.name)
            .bind(sealed_url)
            .bind(&f.url_shown)
            .bind(i64::from(keep_secret))
            .bind(sealed_secret)
            .bind(serde_json::Value::from(f.events.clone()).to_string())
            .bind(f.settings.to_string())
            .bind(&f.defined_by)
            .bind(clock::now())
            .bind(id),
        )
        .await?;
        w.audit(NewEvent {
            actor,
            tenant_id: before.tenant_id.as_deref(),
            event: "channel_updated",
            subject: Some(id),
            metadata: serde_json::json!({"name": f.name, "url_before": before.url_shown,
                                         "url": f.url_shown, "events": f.events}),
        })
        .await?;
        let c = fetch_channel(&mut w, id).await?;
        w.commit().await?;
        Ok(c)
    }

    /// A channel by id (deleted ones are gone).
    pub async fn channel(&self, id: &str) -> Result<Channel> {
        self.rows(
            sqlx::query("SELECT * FROM channels WHERE id = $1 AND deleted_at IS NULL").bind(id),
        )
        .await?
        .pop()
        .ok_or(CatalogError::NotFound { what: "channel" })
    }

    /// A tenant's channels (`None`: the admins' own), by name.
    pub async fn channels(&self, tenant_id: Option<&str>) -> Result<Vec<Channel>> {
        self.rows(
            sqlx::query(
                "SELECT * FROM channels WHERE deleted_at IS NULL \
                 AND (tenant_id = $1 OR ($1 IS NULL AND tenant_id IS NULL)) ORDER BY name, id",
            )
            .bind(tenant_id),
        )
        .await
    }

    /// Every live channel, for fanning out.
    pub async fn all_channels(&self) -> Result<Vec<Channel>> {
        self.rows(sqlx::query(
            "SELECT * FROM channels WHERE deleted_at IS NULL ORDER BY id",
        ))
        .await
    }

    /// The channel with its URL and secret opened (for the sender only).
    pub async fn open_channel(&self, id: &str) -> Result<Opened> {
        let row =
            sqlx::query("SELECT url, secret FROM channels WHERE id = $1 AND deleted_at IS NULL")
                .bind(id)
                .fetch_optional(self.pool())
                .await
                .map_err(CatalogError::db)?
                .ok_or(CatalogError::NotFound { what: "channel" })?;
        let open = |sealed: &str| {
            String::from_utf8(self.key().open(sealed)?)
                .map_err(|_| CatalogError::Sealed("a channel's URL or secret is not UTF-8".into()))
        };
        let url: String = row.try_get("url").map_err(CatalogError::db)?;
        let secret: Option<String> = row.try_get("secret").map_err(CatalogError::db)?;
        let channel: Channel = crate::queue::fetch(self.pool(), id).await?;
        Ok(Opened {
            channel,
            url: open(&url)?,
            secret: secret.as_deref().map(open).transpose()?,
        })
    }

    /// Delete a channel (the row stays, with `deleted_at`; its queued
    /// deliveries are dropped).
    pub async fn delete_channel(&self, id: &str, actor: &Actor) -> Result<()> {
        let mut w = self.write().await?;
        let c = fetch_channel(&mut w, id).await?;
        let now = clock::now();
        w.run(
            sqlx::query("UPDATE channels SET deleted_at = $1 WHERE id = $2")
                .bind(&now)
                .bind(id),
        )
        .await?;
        w.run(
            sqlx::query(
                "UPDATE notifications SET status = 'failed', last_error = 'the channel was deleted' \
                 WHERE channel_id = $1 AND status = 'queued'",
            )
            .bind(id),
        )
        .await?;
        w.audit(NewEvent {
            actor,
            tenant_id: c.tenant_id.as_deref(),
            event: "channel_deleted",
            subject: Some(id),
            metadata: serde_json::json!({"name": c.name, "kind": c.kind}),
        })
        .await?;
        w.commit().await
    }

    /// Where fanning out stands: the last audit sequence number done.
    /// `None` before the first fan-out (which then starts at the log's
    /// end: history is not notified).
    pub async fn notify_cursor(&self) -> Result<Option<i64>> {
        sqlx::query("SELECT seq FROM notify_cursor WHERE name = $1")
            .bind(CURSOR)
            .fetch_optional(self.pool())
            .await
            .map_err(CatalogError::db)?
            .map(|r| r.try_get::<i64, _>("seq"))
            .transpose()
            .map_err(CatalogError::db)
    }

    /// Queue `rows` and move the cursor from `from` to `to`, in one
    /// transaction; `false` (nothing written) when the cursor is no longer
    /// at `from` (another node fanned these events out). A tenant's
    /// channel is given only its own tenant's rows.
    pub async fn fan_out(
        &self,
        from: Option<i64>,
        to: i64,
        rows: &[NewNotification],
    ) -> Result<bool> {
        let mut w = self.write().await?;
        let moved = match from {
            Some(f) => {
                w.run(
                    sqlx::query("UPDATE notify_cursor SET seq = $1 WHERE name = $2 AND seq = $3")
                        .bind(to)
                        .bind(CURSOR)
                        .bind(f),
                )
                .await?
            }
            None => {
                w.run(
                    sqlx::query(
                        "INSERT INTO notify_cursor (name, seq) VALUES ($1, $2) \
                         ON CONFLICT (name) DO NOTHING",
                    )
                    .bind(CURSOR)
                    .bind(to),
                )
                .await?
            }
        };
        if moved == 0 {
            w.rollback().await?;
            return Ok(false);
        }
        let now = clock::now();
        // each channel's owner, read once in this transaction
        let mut owners: std::collections::HashMap<String, Option<Option<String>>> =
            std::collections::HashMap::new();
        for n in rows {
            if !owners.contains_key(&n.channel_id) {
                let owner = sqlx::query(
                    "SELECT tenant_id FROM channels WHERE id = $1 AND deleted_at IS NULL",
                )
                .bind(&n.channel_id)
                .fetch_optional(&mut *w.tx)
                .await
                .and_then(|r| r.map(|r| r.try_get("tenant_id")).transpose())
                .map_err(CatalogError::db)?;
                owners.insert(n.channel_id.clone(), owner);
            }
            match &owners[&n.channel_id] {
                None => continue, // deleted meanwhile
                Some(Some(t)) if n.tenant_id.as_deref() != Some(t.as_str()) => {
                    return w
                        .abort(CatalogError::invalid(
                            "channel_id",
                            "a tenant's channel may only get its own tenant's events",
                        ))
                        .await;
                }
                Some(_) => {}
            }
            insert(&mut w, n, &crate::tenants::new_id(), &now).await?;
        }
        w.commit().await?;
        Ok(true)
    }

    /// Queue one delivery now, outside the audit log's fan-out (a channel
    /// test, a healthchecks start ping).
    pub async fn queue_notification(&self, n: &NewNotification) -> Result<Notification> {
        let id = crate::tenants::new_id();
        let mut w = self.write().await?;
        insert(&mut w, n, &id, &clock::now()).await?;
        let row = crate::queue::fetch(&mut *w.tx, &id).await?;
        w.commit().await?;
        Ok(row)
    }

    /// Record how an attempt to deliver went, on the row and on its
    /// channel: delivered; or failed, and queued again after `retry` (or
    /// failed for good when `None`). Only by the worker that holds it.
    pub async fn finish_notification(
        &self,
        id: &str,
        worker: &str,
        outcome: std::result::Result<(), String>,
        retry: Option<jiff::SignedDuration>,
    ) -> Result<Notification> {
        let now = clock::now();
        let w = self.write().await?;
        let (status, run_after, error) = match (&outcome, retry) {
            (Ok(()), _) => ("delivered", None, None),
            (Err(e), Some(after)) => ("queued", Some(clock::after(after)), Some(e.clone())),
            (Err(e), None) => ("failed", None, Some(e.clone())),
        };
        let mut w = w
            .run_held(
                sqlx::query(
                    "UPDATE notifications SET status = $1, run_after = COALESCE($2, run_after), \
                     last_error = $3, delivered_at = CASE WHEN $1 = 'delivered' THEN $4 ELSE NULL END, \
                     lease_owner = NULL, lease_until = NULL \
                     WHERE id = $5 AND status = 'sending' AND lease_owner = $6",
                )
                .bind(status)
                .bind(run_after)
                .bind(&error)
                .bind(&now)
                .bind(id)
                .bind(worker),
                "notification",
                id,
            )
            .await?;
        let row: Notification = crate::queue::fetch(&mut *w.tx, id).await?;
        w.run(
            sqlx::query(
                "UPDATE channels SET last_status = $1, last_at = $2, last_error = $3 WHERE id = $4",
            )
            .bind(if outcome.is_ok() {
                "delivered"
            } else {
                "failed"
            })
            .bind(&now)
            .bind(&error)
            .bind(&row.channel_id),
        )
        .await?;
        w.commit().await?;
        Ok(row)
    }

    /// A channel's deliveries, newest first, at most `limit`.
    pub async fn notifications(&self, channel_id: &str, limit: i64) -> Result<Vec<Notification>> {
        self.rows(
            sqlx::query(
                "SELECT * FROM notifications WHERE channel_id = $1 ORDER BY id DESC LIMIT $2",
            )
            .bind(channel_id)
            .bind(limit),
        )
        .await
    }
}

impl crate::queue::Record for Channel {
    const TABLE: &'static str = "channels";
    const WHAT: &'static str = "channel";
}

/// Queue delivery `id` of `n`, due now.
async fn insert(
    w: &mut crate::WriteTx<'_>,
    n: &NewNotification,
    id: &str,
    now: &str,
) -> Result<()> {
    w.run(
        sqlx::query(
            "INSERT INTO notifications (id, channel_id, tenant_id, event, body, status, \
             attempts, run_after, created_at) VALUES ($1, $2, $3, $4, $5, 'queued', 0, $6, $6)",
        )
        .bind(id)
        .bind(&n.channel_id)
        .bind(&n.tenant_id)
        .bind(&n.event)
        .bind(n.body.to_string())
        .bind(now),
    )
    .await
    .map(drop)
}

async fn fetch_channel(w: &mut crate::WriteTx<'_>, id: &str) -> Result<Channel> {
    let c: Channel = crate::queue::fetch(&mut *w.tx, id).await?;
    Ok(c)
}
