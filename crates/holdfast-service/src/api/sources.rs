use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use holdfast_catalog::sources::{Source, SourceFields};
use holdfast_catalog::tokens::Role;

use crate::AppState;
use crate::auth::Caller;
use crate::problem::{ApiError, ApiJson};
use crate::runner::validate_source;

const RETENTION_KEYS: &[&str] = &[
    "max_age_days",
    "keep_last",
    "keep_daily",
    "keep_weekly",
    "keep_monthly",
    "keep_yearly",
];

fn check_retention(r: &serde_json::Value) -> Result<(), ApiError> {
    let obj = r
        .as_object()
        .ok_or_else(|| ApiError::invalid("retention", "must be an object"))?;
    for (k, v) in obj {
        if !RETENTION_KEYS.contains(&k.as_str()) {
            return Err(ApiError::invalid(
                &format!("retention.{k}"),
                format!("unknown; expected one of {}", RETENTION_KEYS.join(", ")),
            ));
        }
        if v.as_u64().is_none_or(|n| n > 100_000) {
            return Err(ApiError::invalid(
                &format!("retention.{k}"),
                "a whole number ≥ 0",
            ));
        }
    }
    Ok(())
}

/// Five cron fields (minute hour day-of-month month day-of-week).
fn check_schedule(s: &Option<String>) -> Result<(), ApiError> {
    if let Some(s) = s {
        let fields = s.split_whitespace().count();
        let ok = fields == 5
            && s.split_whitespace().all(|f| {
                f.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "*/,-?LW#".contains(c))
            });
        if !ok {
            return Err(ApiError::invalid(
                "schedule",
                format!("{s:?} is not a cron expression of five fields, like \"0 3 * * *\""),
            ));
        }
    }
    Ok(())
}

pub async fn create(
    State(s): State<AppState>,
    caller: Caller,
    Path(tenant): Path<String>,
    ApiJson(mut body): ApiJson<SourceFields>,
) -> Result<(StatusCode, Json<Source>), ApiError> {
    let t = super::tenants::resolve(&s, &caller, &tenant, Role::Operator).await?;
    let kind = body
        .kind
        .clone()
        .ok_or_else(|| ApiError::invalid("kind", "required"))?;
    let target = body
        .target
        .clone()
        .ok_or_else(|| ApiError::invalid("target", "required"))?;
    if body.name.is_none() {
        return Err(ApiError::invalid("name", "required"));
    }
    let options = body
        .options
        .clone()
        .unwrap_or_else(|| serde_json::json!({}));
    validate_source(&kind, &target, &options)?;
    if body.schedule.is_none() {
        body.schedule = Some(Some(s.config.schedule.default.clone()));
    }
    check_schedule(body.schedule.as_ref().unwrap_or(&None))?;
    let retention = body
        .retention
        .clone()
        .unwrap_or_else(|| serde_json::json!({"max_age_days": s.config.retention.max_age_days}));
    check_retention(&retention)?;
    body.retention = Some(retention);
    let src = s
        .catalog
        .create_source(&t.id, body, &caller.actor())
        .await?;
    Ok((StatusCode::CREATED, Json(src)))
}

pub async fn list(
    State(s): State<AppState>,
    caller: Caller,
    Path(tenant): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let t = super::tenants::resolve(&s, &caller, &tenant, Role::Viewer).await?;
    let items = s.catalog.sources(&t.id).await?;
    Ok(Json(serde_json::json!({ "items": items })))
}

pub async fn get_one(
    State(s): State<AppState>,
    caller: Caller,
    Path((tenant, id)): Path<(String, String)>,
) -> Result<Json<Source>, ApiError> {
    let t = super::tenants::resolve(&s, &caller, &tenant, Role::Viewer).await?;
    Ok(Json(s.catalog.source(&t.id, &id).await?))
}

pub async fn update(
    State(s): State<AppState>,
    caller: Caller,
    Path((tenant, id)): Path<(String, String)>,
    ApiJson(body): ApiJson<SourceFields>,
) -> Result<Json<Source>, ApiError> {
    let t = super::tenants::resolve(&s, &caller, &tenant, Role::Operator).await?;
    let current = s.catalog.source(&t.id, &id).await?;
    let target = body.target.clone().unwrap_or(current.target.clone());
    let options = body.options.clone().unwrap_or(current.options.clone());
    validate_source(&current.kind, &target, &options)?;
    if let Some(schedule) = &body.schedule {
        check_schedule(schedule)?;
    }
    if let Some(r) = &body.retention {
        check_retention(r)?;
    }
    Ok(Json(
        s.catalog
            .update_source(&t.id, &id, body, &caller.actor())
            .await?,
    ))
}

pub async fn delete(
    State(s): State<AppState>,
    caller: Caller,
    Path((tenant, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let t = super::tenants::resolve(&s, &caller, &tenant, Role::Operator).await?;
    s.catalog.delete_source(&t.id, &id, &caller.actor()).await?;
    Ok(StatusCode::NO_CONTENT)
}
