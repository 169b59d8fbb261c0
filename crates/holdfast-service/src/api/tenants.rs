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
use crate::i18n::Msg;
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
        return Err(ApiError::Conflict(
            Msg::new("msg.conflict.tenant_name").with("name", format!("{:?}", body.name)),
        ));
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
            ApiError::Unavailable(Msg::new("msg.unavailable.tenant_repo").with("error", e))
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

/// What `PUT /api/v1/tenants/{tenant}/storage` takes: a bucket of the
/// tenant's own and the key for it (stored sealed, never shown again).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantStorage {
    location: String,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    session_token: Option<String>,
    region: Option<String>,
}

/// `PUT /api/v1/tenants/{tenant}/storage` (admin): give the tenant its own
/// bucket or prefix, and its own credentials for it. The tenant's
/// repository is created there with the tenant's password (or, if one is
/// there already, must open with it); earlier runs keep their location.
/// Audited as `tenant_storage_set`, without the credentials.
pub async fn put_storage(
    State(s): State<AppState>,
    caller: Caller,
    Path(tenant): Path<String>,
    ApiJson(body): ApiJson<TenantStorage>,
) -> Result<Json<Tenant>, ApiError> {
    caller.admin()?;
    let t = resolve(&s, &caller, &tenant, Role::Viewer).await?;
    let location = holdfast_storage::Location::parse(&body.location)
        .map_err(|e| ApiError::invalid("location", e))?;
    if !matches!(location, holdfast_storage::Location::S3(_)) {
        return Err(ApiError::invalid(
            "location",
            Msg::new("msg.invalid.tenant_location"),
        ));
    }
    let shown = location.to_string();
    let credentials = match (body.access_key_id, body.secret_access_key) {
        (Some(access_key_id), Some(secret_access_key))
            if !access_key_id.is_empty() && !secret_access_key.is_empty() =>
        {
            Some(crate::repos::StoredCredentials {
                location: shown.clone(),
                access_key_id,
                secret_access_key,
                session_token: body.session_token.filter(|t| !t.is_empty()),
                region: body.region.clone().filter(|r| !r.is_empty()),
            })
        }
        (None, None) if body.region.is_none() => None,
        (None, None) => {
            return Err(ApiError::invalid("region", Msg::new("msg.invalid.region")));
        }
        _ => {
            return Err(ApiError::invalid(
                "secret_access_key",
                Msg::new("msg.invalid.key_pair"),
            ));
        }
    };
    let sealed = credentials
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut repo = crate::repos::RepoAt::at(&s.config, location).with_retries(2);
    if let Some(c) = credentials {
        repo = repo.with_credentials(c);
    }
    let password = s.catalog.tenant_password(&t.id).await?;
    tokio::task::spawn_blocking(move || crate::runner::adopt_repository(&repo, &password))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
    let updated = s
        .catalog
        .set_tenant_storage(&t.id, &shown, sealed.as_deref(), &caller.actor())
        .await?;
    Ok(Json(updated))
}
