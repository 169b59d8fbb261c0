//! Who is calling: the bearer token, and what its role and tenant allow.
//! Access to another tenant's resource answers 404, exactly as a resource
//! that does not exist, so that ids of other tenants cannot be probed.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use holdfast_catalog::Actor;
use holdfast_catalog::tokens::{Role, Token};

use crate::AppState;
use crate::problem::ApiError;

pub struct Caller(pub Token);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(ApiError::Unauthorized)?;
        let secret = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or(ApiError::Unauthorized)?;
        match state.catalog.authenticate(secret).await? {
            Some(t) => Ok(Caller(t)),
            None => Err(ApiError::Unauthorized),
        }
    }
}

impl Caller {
    pub fn actor(&self) -> Actor {
        self.0.actor()
    }

    pub fn is_admin(&self) -> bool {
        self.0.role == Role::Admin
    }

    /// Admin only.
    pub fn admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::Forbidden("this needs an admin token".into()))
        }
    }

    /// Access to `tenant_id`'s resources with at least `need`.
    pub fn tenant(&self, tenant_id: &str, need: Role, what: &'static str) -> Result<(), ApiError> {
        if self.is_admin() {
            return Ok(());
        }
        if self.0.tenant_id.as_deref() != Some(tenant_id) {
            return Err(ApiError::NotFound(what));
        }
        if self.0.role < need {
            return Err(ApiError::Forbidden(format!(
                "a {} token cannot do this; it needs {}",
                self.0.role.as_str(),
                need.as_str()
            )));
        }
        Ok(())
    }
}
