//! API tokens. Only a token's SHA-256 is stored; the secret is shown once,
//! when it is created.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::audit::NewEvent;
use crate::{Actor, Catalog, CatalogError, FromRow, Result, clock};

/// What a token may do. Admin: everything, every tenant. Operator: run,
/// restore, download and delete backups and manage sources of its tenant.
/// Viewer: read its tenant's sources, backups and audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Result<Role> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "operator" => Ok(Role::Operator),
            "admin" => Ok(Role::Admin),
            _ => Err(CatalogError::invalid(
                "role",
                "one of admin, operator, viewer",
            )),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Token {
    pub id: String,
    pub role: Role,
    /// The tenant the token is limited to; `None`: every tenant (admin).
    pub tenant_id: Option<String>,
    pub label: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

impl crate::FromRow for Token {
    fn from_row(r: &AnyRow) -> std::result::Result<Token, sqlx::Error> {
        let role: String = r.try_get("role")?;
        Ok(Token {
            id: r.try_get("id")?,
            role: Role::parse(&role).map_err(|e| sqlx::Error::Decode(e.to_string().into()))?,
            tenant_id: r.try_get("tenant_id")?,
            label: r.try_get("label")?,
            created_at: r.try_get("created_at")?,
            revoked_at: r.try_get("revoked_at")?,
        })
    }
}

impl Token {
    pub fn actor(&self) -> Actor {
        Actor {
            token_id: Some(self.id.clone()),
            label: self.label.clone(),
        }
    }
}

pub(crate) fn secret_hash(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Catalog {
    /// Create a token; the token and its secret (`hf_…`), shown only now.
    pub async fn create_token(
        &self,
        role: Role,
        tenant_id: Option<&str>,
        label: &str,
        actor: &Actor,
    ) -> Result<(Token, String)> {
        if role != Role::Admin && tenant_id.is_none() {
            return Err(CatalogError::invalid(
                "tenant",
                "operator and viewer tokens belong to a tenant",
            ));
        }
        if role == Role::Admin && tenant_id.is_some() {
            return Err(CatalogError::invalid(
                "tenant",
                "admin tokens are not limited to a tenant",
            ));
        }
        if label.len() > 200 {
            return Err(CatalogError::invalid("label", "at most 200 characters"));
        }
        let mut raw = [0u8; 32];
        holdfast_format::crypto::fill_random(&mut raw);
        let secret = format!("hf_{}", URL_SAFE_NO_PAD.encode(raw));
        let token = Token {
            id: crate::tenants::new_id(),
            role,
            tenant_id: tenant_id.map(str::to_string),
            label: if label.is_empty() {
                format!("{} token", role.as_str())
            } else {
                label.to_string()
            },
            created_at: clock::now(),
            revoked_at: None,
        };
        let mut w = self.write().await?;
        w.run(sqlx::query(
            "INSERT INTO tokens (id, secret_hash, role, tenant_id, label, created_at, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&token.id)
        .bind(secret_hash(&secret))
        .bind(role.as_str())
        .bind(&token.tenant_id)
        .bind(&token.label)
        .bind(&token.created_at)
        .bind(&actor.token_id))
        .await?;
        w.audit(NewEvent {
            actor,
            tenant_id,
            event: "token_created",
            subject: Some(&token.id),
            metadata: serde_json::json!({"role": role.as_str(), "label": token.label}),
        })
        .await?;
        w.commit().await?;
        Ok((token, secret))
    }

    /// The live token with this secret.
    pub async fn authenticate(&self, secret: &str) -> Result<Option<Token>> {
        let row = sqlx::query("SELECT * FROM tokens WHERE secret_hash = $1 AND revoked_at IS NULL")
            .bind(secret_hash(secret))
            .fetch_optional(self.pool())
            .await
            .map_err(CatalogError::db)?;
        row.as_ref()
            .map(Token::from_row)
            .transpose()
            .map_err(CatalogError::db)
    }

    pub async fn tokens(&self, tenant_id: Option<&str>) -> Result<Vec<Token>> {
        let rows =
            sqlx::query("SELECT * FROM tokens WHERE ($1 IS NULL OR tenant_id = $1) ORDER BY id")
                .bind(tenant_id)
                .fetch_all(self.pool())
                .await
                .map_err(CatalogError::db)?;
        rows.iter()
            .map(Token::from_row)
            .collect::<std::result::Result<_, _>>()
            .map_err(CatalogError::db)
    }

    pub async fn token(&self, id: &str) -> Result<Token> {
        let row = sqlx::query("SELECT * FROM tokens WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await
            .map_err(CatalogError::db)?
            .ok_or(CatalogError::NotFound { what: "token" })?;
        Token::from_row(&row).map_err(CatalogError::db)
    }

    /// Revoke a token (idempotent: revoking twice changes nothing and
    /// audits once).
    pub async fn revoke_token(&self, id: &str, actor: &Actor) -> Result<Token> {
        let mut w = self.write().await?;
        let now = clock::now();
        let changed = w
            .run(
                sqlx::query(
                    "UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
                )
                .bind(&now)
                .bind(id),
            )
            .await?;
        let row = sqlx::query("SELECT * FROM tokens WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *w.tx)
            .await
            .map_err(CatalogError::db)?
            .ok_or(CatalogError::NotFound { what: "token" })?;
        let token = Token::from_row(&row).map_err(CatalogError::db)?;
        if changed > 0 {
            w.audit(NewEvent {
                actor,
                tenant_id: token.tenant_id.as_deref(),
                event: "token_revoked",
                subject: Some(id),
                metadata: serde_json::json!({"label": token.label}),
            })
            .await?;
        }
        w.commit().await?;
        Ok(token)
    }
}
