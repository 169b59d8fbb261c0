use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use holdfast_catalog::tenants::{Tenant, new_id, validate_name};
use holdfast_catalog::tokens::Role;
use serde::Deserialize;

use crate::AppState;
use crate::auth::Caller;
use crate::policy::TenantPolicy;
use crate::problem::{ApiError, ApiJson};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    name: String,
}

/// `POST /api/v1/tenants` (admin): a tenant and its own repository, with
/// its own random password.
pub async fn create(
    State(s): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewTenant>,
) -> Result<(StatusCode, Json<Tenant>), ApiError> {
    caller.admin()?;
    validate_name(&body.name)?;
    if s.catalog.tenant(&body.name).await.is_ok() {
        return Err(ApiError::Conflict(format!(
            "a tenant named {:?} exists",
            body.name
        )));
    }
    let id = new_id();
    let repo = crate::repos::RepoAt::for_new_tenant(&s.config, &id)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut raw = [0u8; 32];
    holdfast_format::crypto::fill_random(&mut raw);
    let password = URL_SAFE_NO_PAD.encode(raw);
    let (r, pw) = (repo.clone(), password.clone());
    tokio::task::spawn_blocking(move || crate::runner::init_repository(&r, &pw))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| {
            ApiError::Unavailable(format!("cannot create the tenant's repository: {e}"))
        })?;
    let created = s
        .catalog
        .create_tenant(
            &id,
            &body.name,
            &repo.to_string(),
            &password,
            &caller.actor(),
        )
        .await;
    if created.is_err() {
        // nothing refers to it: do not leave an orphan repository behind
        repo.remove_leftovers();
    }
    Ok((StatusCode::CREATED, Json(created?)))
}

/// `GET /api/v1/tenants`: every tenant for an admin, its own for others.
pub async fn list(
    State(s): State<AppState>,
    caller: Caller,
) -> Result<Json<super::Items<Tenant>>, ApiError> {
    let all = s.catalog.tenants().await?;
    let items: Vec<Tenant> = all
        .into_iter()
        .filter(|t| caller.is_admin() || caller.0.tenant_id.as_deref() == Some(&t.id))
        .collect();
    Ok(Json(super::Items { items }))
}

pub async fn get_one(
    State(s): State<AppState>,
    caller: Caller,
    Path(tenant): Path<String>,
) -> Result<Json<Tenant>, ApiError> {
    caller.tenant(&tenant, Role::Viewer, "tenant")?;
    let t = s.catalog.tenant(&tenant).await?;
    if t.id != tenant {
        // addressed by id only
        return Err(ApiError::NotFound("tenant"));
    }
    Ok(Json(t))
}

/// The tenant of a path, when the caller may act on it with `need`.
pub(crate) async fn resolve(
    s: &AppState,
    caller: &Caller,
    tenant: &str,
    need: Role,
) -> Result<Tenant, ApiError> {
    caller.tenant(tenant, need, "tenant")?;
    let t = s.catalog.tenant(tenant).await?;
    if t.id != tenant {
        return Err(ApiError::NotFound("tenant"));
    }
    Ok(t)
}

/// The tenant's policy as stored; a document that no longer parses
/// allows nothing (and says so in the log).
pub(crate) async fn policy_of(s: &AppState, tenant_id: &str) -> Result<TenantPolicy, ApiError> {
    let doc = s.catalog.tenant_policy(tenant_id).await?;
    Ok(serde_json::from_value(doc).unwrap_or_else(|e| {
        crate::worker::log(&format!(
            "tenant {tenant_id}: the stored policy does not parse ({e}); allowing nothing"
        ));
        TenantPolicy::default()
    }))
}

/// `GET /api/v1/tenants/{tenant}/policy` (viewer of the tenant, admin).
pub async fn get_policy(
    State(s): State<AppState>,
    caller: Caller,
    Path(tenant): Path<String>,
) -> Result<Json<TenantPolicy>, ApiError> {
    let t = resolve(&s, &caller, &tenant, Role::Viewer).await?;
    Ok(Json(policy_of(&s, &t.id).await?))
}

/// `PUT /api/v1/tenants/{tenant}/policy` (admin): replace what the
/// tenant's operators may reach on the host; audited.
pub async fn put_policy(
    State(s): State<AppState>,
    caller: Caller,
    Path(tenant): Path<String>,
    ApiJson(body): ApiJson<TenantPolicy>,
) -> Result<Json<TenantPolicy>, ApiError> {
    caller.admin()?;
    let t = resolve(&s, &caller, &tenant, Role::Viewer).await?;
    body.validate(&s.config.host_facts())
        .map_err(|r| ApiError::invalid(&r.field, r.message))?;
    let doc = serde_json::to_value(&body).map_err(|e| ApiError::Internal(e.to_string()))?;
    s.catalog
        .set_tenant_policy(&t.id, &doc, &caller.actor())
        .await?;
    Ok(Json(body))
}
