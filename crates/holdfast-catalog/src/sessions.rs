//! Sign-in sessions of the web UI. A session is a random secret in the
//! browser's cookie, stored here only as its SHA-256 (as tokens are), and
//! bound to the API token its user signed in with: it carries exactly that
//! token's role and tenant, and ends when the token is revoked, when it
//! expires, or at sign-out. Each session has its own CSRF secret, which
//! every form of the UI carries back.
//!
//! Invariant: [`Catalog::session`] returns a session only while the
//! session is unexpired and unended and its token unrevoked.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::SignedDuration;
use sqlx::Row;

use crate::audit::NewEvent;
use crate::tokens::{Token, secret_hash};
use crate::{Catalog, CatalogError, FromRow, Result, clock};

#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub token_id: String,
    /// Forms carry it back; compared in constant time by the UI.
    pub csrf: String,
    pub created_at: String,
    pub expires_at: String,
}

fn random_secret() -> String {
    let mut raw = [0u8; 32];
    holdfast_format::crypto::fill_random(&mut raw);
    URL_SAFE_NO_PAD.encode(raw)
}

impl Catalog {
    /// Start a session for `token` (already authenticated), valid for
    /// `ttl`; the session and its secret (for the cookie), shown only now.
    pub async fn create_session(
        &self,
        token: &Token,
        ttl: SignedDuration,
    ) -> Result<(Session, String)> {
        let secret = random_secret();
        let session = Session {
            id: crate::tenants::new_id(),
            token_id: token.id.clone(),
            csrf: random_secret(),
            created_at: clock::now(),
            expires_at: clock::after(ttl),
        };
        let mut w = self.write().await?;
        w.run(
            sqlx::query(
                "INSERT INTO ui_sessions (id, secret_hash, token_id, csrf, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&session.id)
            .bind(secret_hash(&secret))
            .bind(&session.token_id)
            .bind(&session.csrf)
            .bind(&session.created_at)
            .bind(&session.expires_at),
        )
        .await?;
        w.audit(NewEvent {
            actor: &token.actor(),
            tenant_id: token.tenant_id.as_deref(),
            event: "session_started",
            subject: Some(&session.id),
            metadata: serde_json::json!({"expires_at": session.expires_at}),
        })
        .await?;
        w.commit().await?;
        Ok((session, secret))
    }

    /// The live session with this secret, and its live token.
    pub async fn session(&self, secret: &str) -> Result<Option<(Session, Token)>> {
        let row = sqlx::query(
            "SELECT s.id AS session_id, s.csrf, s.created_at AS session_created_at, \
             s.expires_at, t.* FROM ui_sessions s JOIN tokens t ON t.id = s.token_id \
             WHERE s.secret_hash = $1 AND s.ended_at IS NULL AND s.expires_at > $2 \
             AND t.revoked_at IS NULL",
        )
        .bind(secret_hash(secret))
        .bind(clock::now())
        .fetch_optional(self.pool())
        .await
        .map_err(CatalogError::db)?;
        let Some(r) = row else { return Ok(None) };
        let token = Token::from_row(&r).map_err(CatalogError::db)?;
        let session = Session {
            id: r.try_get("session_id").map_err(CatalogError::db)?,
            token_id: token.id.clone(),
            csrf: r.try_get("csrf").map_err(CatalogError::db)?,
            created_at: r.try_get("session_created_at").map_err(CatalogError::db)?,
            expires_at: r.try_get("expires_at").map_err(CatalogError::db)?,
        };
        Ok(Some((session, token)))
    }

    /// End a session (sign-out); ending it again changes nothing.
    pub async fn end_session(&self, session: &Session, token: &Token) -> Result<()> {
        let mut w = self.write().await?;
        let changed = w
            .run(
                sqlx::query(
                    "UPDATE ui_sessions SET ended_at = $1 WHERE id = $2 AND ended_at IS NULL",
                )
                .bind(clock::now())
                .bind(&session.id),
            )
            .await?;
        if changed == 0 {
            return w.rollback().await;
        }
        w.audit(NewEvent {
            actor: &token.actor(),
            tenant_id: token.tenant_id.as_deref(),
            event: "session_ended",
            subject: Some(&session.id),
            metadata: serde_json::json!({}),
        })
        .await?;
        w.commit().await
    }
}
