//! Who is calling: the bearer token, and what its role and tenant allow.
//! Access to another tenant's resource answers 404, exactly as a resource
//! that does not exist, so that ids of other tenants cannot be probed.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use holdfast_catalog::Actor;
use holdfast_catalog::tokens::{Role, Token};

use crate::AppState;
use crate::i18n::Msg;
use crate::problem::ApiError;

pub struct Caller(pub Token);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let client = parts
            .extensions
            .get::<crate::http::ClientAddr>()
            .map(|c| c.0.ip());
        if let Some(ip) = client
            && let Some(wait) = state.auth_limiter.blocked(ip)
        {
            return Err(ApiError::TooManyRequests(wait.as_secs().max(1)));
        }
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
            None => {
                // a token was presented and is wrong: counted and logged
                // (never the token itself)
                if let Some(ip) = client {
                    let n = state.auth_limiter.failed(ip);
                    crate::worker::log(&format!(
                        "authentication failed from {ip}: unknown or revoked token \
                         ({n} in the last minute) on {} {}",
                        parts.method,
                        parts.uri.path()
                    ));
                }
                Err(ApiError::Unauthorized)
            }
        }
    }
}

/// Failed authentications per client address in a sliding minute. At the
/// limit, every request that needs a token answers 429 until the oldest
/// failure is a minute old. Bounded: at most 10,000 addresses are tracked
/// (the oldest entries are dropped first).
pub struct AuthLimiter {
    per_minute: u32,
    failures:
        std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, Vec<std::time::Instant>>>,
}

const WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

impl AuthLimiter {
    pub fn new(per_minute: u32) -> AuthLimiter {
        AuthLimiter {
            per_minute,
            failures: Default::default(),
        }
    }

    /// How long `ip` must wait, if it is at the limit.
    pub fn blocked(&self, ip: std::net::IpAddr) -> Option<std::time::Duration> {
        let now = std::time::Instant::now();
        let mut f = self.failures.lock().unwrap();
        let list = f.get_mut(&ip)?;
        list.retain(|t| now.duration_since(*t) < WINDOW);
        if list.len() as u32 >= self.per_minute {
            Some(WINDOW - now.duration_since(list[0]))
        } else {
            None
        }
    }

    /// Record a failure of `ip`; the failures in the last minute.
    pub fn failed(&self, ip: std::net::IpAddr) -> u32 {
        let now = std::time::Instant::now();
        let mut f = self.failures.lock().unwrap();
        if f.len() >= 10_000 && !f.contains_key(&ip) {
            f.retain(|_, l| l.last().is_some_and(|t| now.duration_since(*t) < WINDOW));
            if f.len() >= 10_000
                && let Some(k) = f.keys().next().copied()
            {
                f.remove(&k);
            }
        }
        let list = f.entry(ip).or_default();
        list.retain(|t| now.duration_since(*t) < WINDOW);
        list.push(now);
        list.len() as u32
    }
}

impl Caller {
    pub fn actor(&self) -> Actor {
        self.0.actor()
    }

    pub fn is_admin(&self) -> bool {
        self.0.role == Role::Admin
    }

    /// Whose trust a target this caller sets carries (see `policy`).
    pub fn definer(&self) -> crate::policy::Definer {
        if self.is_admin() {
            crate::policy::Definer::Admin
        } else {
            crate::policy::Definer::Operator
        }
    }

    /// Admin only.
    pub fn admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::Forbidden(Msg::new("msg.auth.admin_only")))
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
            return Err(ApiError::Forbidden(
                Msg::new("msg.auth.role")
                    .with("role", self.0.role.as_str())
                    .with("need", need.as_str()),
            ));
        }
        Ok(())
    }
}
