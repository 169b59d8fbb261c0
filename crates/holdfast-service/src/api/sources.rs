use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use holdfast_catalog::sources::{Source, SourceFields};
use holdfast_catalog::tokens::Role;

use crate::AppState;
use crate::auth::Caller;
use crate::i18n::Msg;
use crate::problem::{ApiError, ApiJson};
use crate::runner::validate_source;

fn check_retention(r: &serde_json::Value) -> Result<(), ApiError> {
    let r: crate::retention::Retention = serde_json::from_value(r.clone()).map_err(|e| {
        let text = e.to_string();
        let field = text
            .split('`')
            .nth(1)
            .map(|f| format!("retention.{f}"))
            .unwrap_or_else(|| "retention".into());
        ApiError::invalid(&field, text)
    })?;
    for (k, v) in [
        ("keep_last", r.keep_last),
        ("keep_daily", r.keep_daily),
        ("keep_weekly", r.keep_weekly),
        ("keep_monthly", r.keep_monthly),
        ("keep_yearly", r.keep_yearly),
    ] {
        if !(0..=100_000).contains(&v) {
            return Err(ApiError::invalid(
                &format!("retention.{k}"),
                Msg::new("msg.invalid.whole_number"),
            ));
        }
    }
    if r.max_age_days == Some(0) {
        return Err(ApiError::invalid(
            "retention.max_age_days",
            Msg::new("msg.invalid.at_least_1"),
        ));
    }
    Ok(())
}

/// A cron expression the scheduler can run (`null`: on demand only), no
/// more often than the tenant's quota allows.
fn check_schedule(
    s: &AppState,
    policy: &crate::policy::TenantPolicy,
    schedule: &Option<String>,
) -> Result<(), ApiError> {
    if let Some(text) = schedule {
        let parsed =
            crate::schedule::Schedule::parse(text).map_err(|e| ApiError::invalid("schedule", e))?;
        if policy.min_schedule_minutes.is_some() {
            let tz = s.config.time_zone();
            policy.check_schedule(parsed.shortest_interval(jiff::Timestamp::now(), &tz))?;
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
        .ok_or_else(|| ApiError::invalid("kind", Msg::new("msg.invalid.required")))?;
    let target = body
        .target
        .clone()
        .ok_or_else(|| ApiError::invalid("target", Msg::new("msg.invalid.required")))?;
    if body.name.is_none() {
        return Err(ApiError::invalid("name", Msg::new("msg.invalid.required")));
    }
    let options = body
        .options
        .clone()
        .unwrap_or_else(|| serde_json::json!({}));
    validate_source(&kind, &target, &options)?;
    let definer = caller.definer();
    let policy = super::tenants::policy_of(&s, &t.id).await?;
    crate::policy::check_source(&s.config.host_facts(), &policy, definer, &kind, &target)?;
    policy.check_source_count(s.catalog.sources(&t.id).await?.len())?;
    if body.schedule.is_none() {
        body.schedule = Some(Some(s.config.schedule.default.clone()));
    }
    check_schedule(&s, &policy, body.schedule.as_ref().unwrap_or(&None))?;
    let retention = body
        .retention
        .clone()
        .unwrap_or_else(|| serde_json::json!({"max_age_days": s.config.retention.max_age_days}));
    check_retention(&retention)?;
    body.retention = Some(retention);
    let src = s
        .catalog
        .create_source(&t.id, body, definer.as_str(), &caller.actor())
        .await?;
    Ok((StatusCode::CREATED, Json(src)))
}

/// A source as the API lists it: its fields, and its health (last backup
/// and drill, whether either is overdue; see `crate::health`).
#[derive(serde::Serialize)]
pub struct SourceView {
    #[serde(flatten)]
    pub source: Source,
    pub health: crate::health::SourceHealth,
}

pub async fn list(
    State(s): State<AppState>,
    caller: Caller,
    Path(tenant): Path<String>,
) -> Result<Json<super::Items<SourceView>>, ApiError> {
    let t = super::tenants::resolve(&s, &caller, &tenant, Role::Viewer).await?;
    let items = crate::health::of_tenant(&s, &t.id, jiff::Timestamp::now())
        .await?
        .into_iter()
        .map(|(source, health)| SourceView { source, health })
        .collect();
    Ok(Json(super::Items { items }))
}

pub async fn get_one(
    State(s): State<AppState>,
    caller: Caller,
    Path((tenant, id)): Path<(String, String)>,
) -> Result<Json<SourceView>, ApiError> {
    let t = super::tenants::resolve(&s, &caller, &tenant, Role::Viewer).await?;
    // the tenant's live sources with their health: one read of each
    let (source, health) = crate::health::of_tenant(&s, &t.id, jiff::Timestamp::now())
        .await?
        .into_iter()
        .find(|(x, _)| x.id == id)
        .ok_or(ApiError::NotFound("source"))?;
    Ok(Json(SourceView { source, health }))
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
    let definer = caller.definer();
    let policy = super::tenants::policy_of(&s, &t.id).await?;
    if body.target.is_some() || body.options.is_some() {
        // the changed source is held to the changer's trust
        crate::policy::check_source(
            &s.config.host_facts(),
            &policy,
            definer,
            &current.kind,
            &target,
        )?;
    }
    if let Some(schedule) = &body.schedule {
        check_schedule(&s, &policy, schedule)?;
    }
    if let Some(r) = &body.retention {
        check_retention(r)?;
    }
    Ok(Json(
        s.catalog
            .update_source(&t.id, &id, body, definer.as_str(), &caller.actor())
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
