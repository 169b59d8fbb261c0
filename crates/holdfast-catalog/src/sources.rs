//! Sources: what a tenant backs up, how often and for how long. Stored
//! credentials are sealed under the server key and never leave the
//! catalog except to the worker that runs the source.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::audit::NewEvent;
use crate::{Actor, Catalog, CatalogError, Conflict, Dialect, FromRow, Result, WriteTx, clock};

/// The kinds of source the service runs.
pub const KINDS: &[&str] = &[
    "directory",
    "postgres",
    "mysql",
    "sqlite",
    "jsonl",
    "command",
];

#[derive(Debug, Clone, Serialize)]
pub struct Source {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub kind: String,
    pub target: String,
    pub options: serde_json::Value,
    /// Cron expression (`None`: on demand only).
    pub schedule: Option<String>,
    pub retention: serde_json::Value,
    /// Whether credentials are stored (they are never returned).
    pub has_credentials: bool,
    /// Who set the kind, target and options: `admin` (held only to the
    /// server's own limits) or `operator` (held to the tenant's policy).
    pub defined_by: String,
    pub created_at: String,
    pub updated_at: String,
}

impl crate::FromRow for Source {
    fn from_row(r: &AnyRow) -> std::result::Result<Source, sqlx::Error> {
        let json = |col: &str| -> std::result::Result<serde_json::Value, sqlx::Error> {
            let t: String = r.try_get(col)?;
            serde_json::from_str(&t).map_err(|e| sqlx::Error::Decode(e.into()))
        };
        Ok(Source {
            id: r.try_get("id")?,
            tenant_id: r.try_get("tenant_id")?,
            name: r.try_get("name")?,
            kind: r.try_get("kind")?,
            target: r.try_get("target")?,
            options: json("options")?,
            schedule: r.try_get("schedule")?,
            retention: json("retention")?,
            has_credentials: r.try_get::<Option<String>, _>("credentials")?.is_some(),
            defined_by: r.try_get("defined_by")?,
            created_at: r.try_get("created_at")?,
            updated_at: r.try_get("updated_at")?,
        })
    }
}

/// A source to create, or (every field optional) a change to one.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceFields {
    pub name: Option<String>,
    pub kind: Option<String>,
    pub target: Option<String>,
    pub options: Option<serde_json::Value>,
    /// Absent: unchanged (or the default); `null`: no schedule.
    #[serde(default, deserialize_with = "present")]
    pub schedule: Option<Option<String>>,
    pub retention: Option<serde_json::Value>,
    /// A password or token for the source; write-only. `null` removes it.
    #[serde(default, deserialize_with = "present")]
    pub credentials: Option<Option<String>>,
}

/// Tells a field given as `null` (`Some(None)`) from one left out (`None`).
fn present<'de, D, T>(d: D) -> std::result::Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

fn validate(f: &SourceFields) -> Result<()> {
    if let Some(name) = &f.name
        && (name.trim().is_empty() || name.len() > 200)
    {
        return Err(CatalogError::invalid("name", "1–200 characters"));
    }
    if let Some(kind) = &f.kind
        && !KINDS.contains(&kind.as_str())
    {
        return Err(CatalogError::invalid(
            "kind",
            format!("one of {}", KINDS.join(", ")),
        ));
    }
    if let Some(target) = &f.target
        && target.trim().is_empty()
    {
        return Err(CatalogError::invalid("target", "must not be empty"));
    }
    if let Some(o) = &f.options
        && !o.is_object()
    {
        return Err(CatalogError::invalid("options", "must be an object"));
    }
    if let Some(r) = &f.retention
        && !r.is_object()
    {
        return Err(CatalogError::invalid("retention", "must be an object"));
    }
    Ok(())
}

/// A unique violation here is the live-name index (`sources_live_name`):
/// another transaction took the name between the check and the write.
fn name_taken(e: sqlx::Error, name: &str) -> CatalogError {
    match CatalogError::db(e) {
        CatalogError::Conflict(_) => taken(name),
        other => other,
    }
}

fn taken(name: &str) -> CatalogError {
    CatalogError::Conflict(Conflict::NameTaken {
        what: "source",
        name: name.to_string(),
    })
}

/// Refuse `name` when a live source of the tenant other than `id` has it.
async fn name_free(w: &mut WriteTx<'_>, tenant_id: &str, name: &str, id: &str) -> Result<()> {
    let other = sqlx::query(
        "SELECT id FROM sources WHERE tenant_id = $1 AND name = $2 AND deleted_at IS NULL AND id <> $3",
    )
    .bind(tenant_id)
    .bind(name)
    .bind(id)
    .fetch_optional(&mut *w.tx)
    .await
    .map_err(CatalogError::db)?;
    match other {
        Some(_) => Err(taken(name)),
        None => Ok(()),
    }
}

impl Catalog {
    /// Create a source (the service has checked its target, options,
    /// schedule and retention; this checks the fields and the name).
    /// `defined_by`: `admin` or `operator`, the role that set the target.
    pub async fn create_source(
        &self,
        tenant_id: &str,
        f: SourceFields,
        defined_by: &str,
        actor: &Actor,
    ) -> Result<Source> {
        validate(&f)?;
        let name = f
            .name
            .clone()
            .ok_or_else(|| CatalogError::invalid("name", "required"))?;
        let kind = f
            .kind
            .clone()
            .ok_or_else(|| CatalogError::invalid("kind", "required"))?;
        let target = f
            .target
            .clone()
            .ok_or_else(|| CatalogError::invalid("target", "required"))?;
        let now = clock::now();
        let id = crate::tenants::new_id();
        let mut w = self.write().await?;
        if let Err(e) = name_free(&mut w, tenant_id, &name, &id).await {
            return w.abort(e).await;
        }
        sqlx::query(
            "INSERT INTO sources (id, tenant_id, name, kind, target, options, schedule, retention, \
             credentials, created_at, updated_at, defined_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&id)
        .bind(tenant_id)
        .bind(&name)
        .bind(&kind)
        .bind(&target)
        .bind(
            f.options
                .clone()
                .unwrap_or_else(|| serde_json::json!({}))
                .to_string(),
        )
        .bind(f.schedule.clone().flatten())
        .bind(
            f.retention
                .clone()
                .unwrap_or_else(|| serde_json::json!({}))
                .to_string(),
        )
        .bind(
            f.credentials
                .clone()
                .flatten()
                .map(|c| self.key().seal(c.as_bytes())),
        )
        .bind(&now)
        .bind(&now)
        .bind(defined_by)
        .execute(&mut *w.tx)
        .await
        .map_err(|e| name_taken(e, &name))?;
        w.audit(NewEvent {
            actor,
            tenant_id: Some(tenant_id),
            event: "source_created",
            subject: Some(&id),
            metadata: serde_json::json!({"name": name, "kind": kind,
                "target": crate::redact_url(&target), "defined_by": defined_by}),
        })
        .await?;
        let row = sqlx::query("SELECT * FROM sources WHERE id = $1")
            .bind(&id)
            .fetch_one(&mut *w.tx)
            .await
            .map_err(CatalogError::db)?;
        w.commit().await?;
        Source::from_row(&row).map_err(CatalogError::db)
    }

    /// A live source of the tenant; another tenant's source is not found.
    pub async fn source(&self, tenant_id: &str, id: &str) -> Result<Source> {
        let row = sqlx::query(
            "SELECT * FROM sources WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL",
        )
        .bind(id)
        .bind(tenant_id)
        .fetch_optional(self.pool())
        .await
        .map_err(CatalogError::db)?
        .ok_or(CatalogError::NotFound { what: "source" })?;
        Source::from_row(&row).map_err(CatalogError::db)
    }

    /// A source by id even if deleted (a restore of its old backups).
    pub async fn source_any(&self, id: &str) -> Result<Source> {
        let row = sqlx::query("SELECT * FROM sources WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await
            .map_err(CatalogError::db)?
            .ok_or(CatalogError::NotFound { what: "source" })?;
        Source::from_row(&row).map_err(CatalogError::db)
    }

    pub async fn sources(&self, tenant_id: &str) -> Result<Vec<Source>> {
        self.rows(
            sqlx::query(
                "SELECT * FROM sources WHERE tenant_id = $1 AND deleted_at IS NULL ORDER BY name",
            )
            .bind(tenant_id),
        )
        .await
    }

    /// Every live source with a schedule, of every tenant (the scheduler).
    /// Every source not deleted, of every tenant.
    pub async fn live_sources(&self) -> Result<Vec<Source>> {
        self.rows(sqlx::query(
            "SELECT * FROM sources WHERE deleted_at IS NULL ORDER BY id",
        ))
        .await
    }

    pub async fn scheduled_sources(&self) -> Result<Vec<Source>> {
        self.rows(sqlx::query(
            "SELECT * FROM sources WHERE schedule IS NOT NULL AND deleted_at IS NULL ORDER BY id",
        ))
        .await
    }

    /// The source's stored credentials, opened (for the worker only).
    pub async fn source_credentials(&self, source_id: &str) -> Result<Option<String>> {
        let sealed: Option<String> = sqlx::query("SELECT credentials FROM sources WHERE id = $1")
            .bind(source_id)
            .fetch_optional(self.pool())
            .await
            .map_err(CatalogError::db)?
            .ok_or(CatalogError::NotFound { what: "source" })?
            .try_get("credentials")
            .map_err(CatalogError::db)?;
        sealed
            .map(|s| {
                String::from_utf8(self.key().open(&s)?)
                    .map_err(|_| CatalogError::Sealed("stored credentials are not UTF-8".into()))
            })
            .transpose()
    }

    /// A change of target or options records who made it (`defined_by`);
    /// a change of target drops the stored credentials unless new ones
    /// come with it — credentials follow the target they were given for.
    pub async fn update_source(
        &self,
        tenant_id: &str,
        id: &str,
        f: SourceFields,
        defined_by: &str,
        actor: &Actor,
    ) -> Result<Source> {
        validate(&f)?;
        if f.kind.is_some() {
            return Err(CatalogError::invalid(
                "kind",
                "cannot change; create a new source",
            ));
        }
        let mut w = self.write().await?;
        // read under the write transaction (and on PostgreSQL the row's
        // lock): two updates of different fields both stay
        let sql = match w.dialect {
            Dialect::Postgres => {
                "SELECT * FROM sources WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL FOR UPDATE"
            }
            Dialect::Sqlite => {
                "SELECT * FROM sources WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL"
            }
        };
        let row = sqlx::query(sql)
            .bind(id)
            .bind(tenant_id)
            .fetch_optional(&mut *w.tx)
            .await
            .map_err(CatalogError::db)?;
        let Some(row) = row else {
            return w.abort(CatalogError::NotFound { what: "source" }).await;
        };
        let current = Source::from_row(&row).map_err(CatalogError::db)?;
        if let Some(name) = &f.name
            && let Err(e) = name_free(&mut w, tenant_id, name, id).await
        {
            return w.abort(e).await;
        }
        let mut changed: Vec<&str> = Vec::new();
        let retargeted = f.target.as_ref().is_some_and(|t| *t != current.target);
        // who set what the source reaches: changes to it take the
        // changer's trust; schedule, retention and name do not
        let definer = if retargeted || f.options.is_some() {
            defined_by.to_string()
        } else {
            current.defined_by.clone()
        };
        // credentials follow their target, and the trust they were given
        // under: an admin's password does not stay on a source an operator
        // has now shaped (its tables, its tenant scope, its queries)
        let demoted = definer != current.defined_by && definer == "operator";
        let credentials = match &f.credentials {
            Some(c) => {
                changed.push("credentials");
                Some(c.as_ref().map(|c| self.key().seal(c.as_bytes())))
            }
            None if (retargeted || demoted) && current.has_credentials => {
                changed.push("credentials_dropped");
                Some(None)
            }
            None => None,
        };
        for (field, present) in [
            ("name", f.name.is_some()),
            ("target", f.target.is_some()),
            ("options", f.options.is_some()),
            ("schedule", f.schedule.is_some()),
            ("retention", f.retention.is_some()),
        ] {
            if present {
                changed.push(field);
            }
        }
        sqlx::query(
            "UPDATE sources SET name = $1, target = $2, options = $3, schedule = $4, retention = $5, \
             credentials = CASE WHEN $6 = 1 THEN $7 ELSE credentials END, updated_at = $8, \
             defined_by = $11 WHERE id = $9 AND tenant_id = $10",
        )
        .bind(f.name.as_ref().unwrap_or(&current.name))
        .bind(f.target.as_ref().unwrap_or(&current.target))
        .bind(f.options.as_ref().unwrap_or(&current.options).to_string())
        .bind(f.schedule.clone().unwrap_or(current.schedule.clone()))
        .bind(f.retention.as_ref().unwrap_or(&current.retention).to_string())
        .bind(credentials.is_some() as i64)
        .bind(credentials.flatten())
        .bind(clock::now())
        .bind(id)
        .bind(tenant_id)
        .bind(&definer)
        .execute(&mut *w.tx)
        .await
        .map_err(|e| name_taken(e, f.name.as_ref().unwrap_or(&current.name)))?;
        let mut metadata = serde_json::json!({"changed": changed, "defined_by": definer});
        if retargeted {
            metadata["old_target"] = crate::redact_url(&current.target).into();
            metadata["new_target"] = crate::redact_url(f.target.as_deref().unwrap_or("")).into();
        }
        w.audit(NewEvent {
            actor,
            tenant_id: Some(tenant_id),
            event: "source_updated",
            subject: Some(id),
            metadata,
        })
        .await?;
        w.commit().await?;
        self.source(tenant_id, id).await
    }

    /// Delete a source: it stops running; its backups stay.
    pub async fn delete_source(&self, tenant_id: &str, id: &str, actor: &Actor) -> Result<()> {
        let current = self.source(tenant_id, id).await?;
        let mut w = self.write().await?;
        w.run(sqlx::query("UPDATE sources SET deleted_at = $1 WHERE id = $2 AND tenant_id = $3 AND deleted_at IS NULL")
            .bind(clock::now())
            .bind(id)
            .bind(tenant_id))
            .await?;
        w.audit(NewEvent {
            actor,
            tenant_id: Some(tenant_id),
            event: "source_deleted",
            subject: Some(id),
            metadata: serde_json::json!({"name": current.name}),
        })
        .await?;
        w.commit().await
    }
}
