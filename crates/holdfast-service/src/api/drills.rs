//! Restore drills over the API: an operator queues a drill of a source's
//! newest successful backup (into a scratch target the server picks — the
//! caller names none); a tenant's drills are listed newest first. A drill
//! is a restore row with `drill` set, run by the same workers.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use holdfast_catalog::restores::Restore;
use holdfast_catalog::tokens::Role;

use crate::AppState;
use crate::auth::Caller;
use crate::i18n::Msg;
use crate::problem::ApiError;

/// Drills listed at most.
const LISTED: i64 = 200;

pub async fn create(
    State(s): State<AppState>,
    caller: Caller,
    Path((tenant, id)): Path<(String, String)>,
) -> Result<(StatusCode, Json<Restore>), ApiError> {
    let t = super::tenants::resolve(&s, &caller, &tenant, Role::Operator).await?;
    let source = s.catalog.source(&t.id, &id).await?;
    let backup = s
        .catalog
        .newest_done_backup(&t.id, &source.id)
        .await?
        .ok_or_else(|| {
            ApiError::Conflict(Msg::new("msg.conflict.drill").with("source", &source.name))
        })?;
    let r = s.catalog.enqueue_drill(&backup, &caller.actor()).await?;
    s.wake.notify_one();
    Ok((StatusCode::ACCEPTED, Json(r)))
}

pub async fn list(
    State(s): State<AppState>,
    caller: Caller,
    Path(tenant): Path<String>,
) -> Result<Json<super::Items<Restore>>, ApiError> {
    let t = super::tenants::resolve(&s, &caller, &tenant, Role::Viewer).await?;
    let items = s.catalog.drills(&t.id, LISTED).await?;
    Ok(Json(super::Items { items }))
}
