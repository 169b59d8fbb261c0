//! Tenants: each has its own repository and its own repository password,
//! stored sealed under the server key.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::audit::NewEvent;
use crate::{Actor, Catalog, CatalogError, Conflict, FromRow, Result};

#[derive(Debug, Clone, Serialize)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    /// Where the tenant's repository lives: a path, or `s3:…`.
    pub repository: String,
    pub created_at: String,
}

impl crate::FromRow for Tenant {
    fn from_row(r: &AnyRow) -> std::result::Result<Tenant, sqlx::Error> {
        Ok(Tenant {
            id: r.try_get("id")?,
            name: r.try_get("name")?,
            repository: r.try_get("repository")?,
            created_at: r.try_get("created_at")?,
        })
    }
}

/// Tenant names: what an operator types and sees in paths and file names.
pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(CatalogError::invalid(
            "name",
            "1–64 characters of letters, digits, '-', '_' and '.', not starting with '.'",
        ))
    }
}

pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

impl Catalog {
    /// Create a tenant whose repository (at `repository`, opened with
    /// `password`) the caller has just initialised.
    pub async fn create_tenant(
        &self,
        id: &str,
        name: &str,
        repository: &str,
        password: &str,
        actor: &Actor,
    ) -> Result<Tenant> {
        validate_name(name)?;
        let t = Tenant {
            id: id.to_string(),
            name: name.to_string(),
            repository: repository.to_string(),
            created_at: crate::clock::now(),
        };
        let mut w = self.write().await?;
        sqlx::query(
            "INSERT INTO tenants (id, name, repository, repository_password, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&t.id)
        .bind(&t.name)
        .bind(&t.repository)
        .bind(self.key().seal(password.as_bytes()))
        .bind(&t.created_at)
        .execute(&mut *w.tx)
        .await
        .map_err(|e| match CatalogError::db(e) {
            CatalogError::Conflict(_) => CatalogError::Conflict(Conflict::NameTaken {
                what: "tenant",
                name: name.to_string(),
            }),
            other => other,
        })?;
        w.audit(NewEvent {
            actor,
            tenant_id: Some(&t.id),
            event: "tenant_created",
            subject: Some(&t.id),
            metadata: serde_json::json!({"name": t.name}),
        })
        .await?;
        w.commit().await?;
        Ok(t)
    }

    pub async fn tenants(&self) -> Result<Vec<Tenant>> {
        self.rows(sqlx::query("SELECT * FROM tenants ORDER BY name"))
            .await
    }

    /// A tenant by id, or by name.
    pub async fn tenant(&self, id_or_name: &str) -> Result<Tenant> {
        let row = sqlx::query("SELECT * FROM tenants WHERE id = $1 OR name = $1")
            .bind(id_or_name)
            .fetch_optional(self.pool())
            .await
            .map_err(CatalogError::db)?
            .ok_or(CatalogError::NotFound { what: "tenant" })?;
        Tenant::from_row(&row).map_err(CatalogError::db)
    }

    /// One column of a tenant's row; `column` is one of this module's
    /// fixed names, never input.
    async fn tenant_column(&self, tenant_id: &str, column: &'static str) -> Result<Option<String>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {column} FROM tenants WHERE id = $1"
        )))
        .bind(tenant_id)
        .fetch_optional(self.pool())
        .await
        .map_err(CatalogError::db)?
        .ok_or(CatalogError::NotFound { what: "tenant" })?
        .try_get(column)
        .map_err(CatalogError::db)
    }

    /// A sealed text opened with the server key.
    fn unseal_text(&self, sealed: &str, what: &str) -> Result<String> {
        String::from_utf8(self.key().open(sealed)?)
            .map_err(|_| CatalogError::Sealed(format!("{what} is not UTF-8")))
    }

    /// The tenant's repository password (for the workers and for
    /// `tenant export-key`).
    pub async fn tenant_password(&self, tenant_id: &str) -> Result<String> {
        let sealed = self
            .tenant_column(tenant_id, "repository_password")
            .await?
            .unwrap_or_default();
        self.unseal_text(&sealed, "a repository password")
    }

    /// The tenant's policy document (JSON; `{}` allows nothing).
    pub async fn tenant_policy(&self, tenant_id: &str) -> Result<serde_json::Value> {
        let text = self
            .tenant_column(tenant_id, "policy")
            .await?
            .unwrap_or_default();
        serde_json::from_str(&text).map_err(|e| CatalogError::db(sqlx::Error::Decode(e.into())))
    }

    /// Replace the tenant's policy (the service has validated it);
    /// audited as `tenant_policy_set` with the old and the new document.
    pub async fn set_tenant_policy(
        &self,
        tenant_id: &str,
        policy: &serde_json::Value,
        actor: &Actor,
    ) -> Result<()> {
        let old = self.tenant_policy(tenant_id).await?;
        let mut w = self.write().await?;
        w.run(
            sqlx::query("UPDATE tenants SET policy = $1 WHERE id = $2")
                .bind(policy.to_string())
                .bind(tenant_id),
        )
        .await?;
        w.audit(NewEvent {
            actor,
            tenant_id: Some(tenant_id),
            event: "tenant_policy_set",
            subject: Some(tenant_id),
            metadata: serde_json::json!({"old": old, "new": policy}),
        })
        .await?;
        w.commit().await
    }

    /// The tenant's own object-storage credentials (the sealed JSON opened),
    /// if an admin gave it some; `None`: the server's own.
    pub async fn tenant_storage_credentials(&self, tenant_id: &str) -> Result<Option<String>> {
        self.tenant_column(tenant_id, "storage_credentials")
            .await?
            .map(|sealed| self.unseal_text(&sealed, "storage credentials"))
            .transpose()
    }

    /// Move the tenant's repository to `repository` (initialised there by
    /// the caller) reached with `credentials` (sealed here; `None`: the
    /// server's). Audited as `tenant_storage_set` with the old and new
    /// location and whether credentials are the tenant's — never them.
    /// Earlier runs keep the location they were written to.
    pub async fn set_tenant_storage(
        &self,
        tenant_id: &str,
        repository: &str,
        credentials: Option<&str>,
        actor: &Actor,
    ) -> Result<Tenant> {
        let old = self.tenant(tenant_id).await?;
        let sealed = credentials.map(|c| self.key().seal(c.as_bytes()));
        let mut w = self.write().await?;
        w.run(
            sqlx::query(
                "UPDATE tenants SET repository = $1, storage_credentials = $2 WHERE id = $3",
            )
            .bind(repository)
            .bind(sealed)
            .bind(tenant_id),
        )
        .await?;
        w.audit(NewEvent {
            actor,
            tenant_id: Some(tenant_id),
            event: "tenant_storage_set",
            subject: Some(tenant_id),
            metadata: serde_json::json!({
                "old": old.repository,
                "new": repository,
                "own_credentials": credentials.is_some(),
            }),
        })
        .await?;
        w.commit().await?;
        self.tenant(tenant_id).await
    }

    /// Whether the catalog holds anything sealed or chained under a server
    /// key: tenants (their repository passwords), or audit rows.
    pub async fn holds_sealed_state(&self) -> Result<bool> {
        let n: i64 = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM tenants) + (SELECT COUNT(*) FROM audit_log) AS n",
        )
        .fetch_one(self.pool())
        .await
        .map_err(CatalogError::db)?
        .try_get("n")
        .map_err(CatalogError::db)?;
        Ok(n > 0)
    }
}
