//! Repository verification over the API: an operator queues a `check` of
//! the tenant's repository (reading the data of the packs it names: `none`,
//! `all`, a part `N/M` or a sample `P%`; by default the day's part of the
//! scheduled rotation), one at a time per tenant; a tenant's verifications
//! are listed newest first, each with what it read and found and the
//! backups it marked damaged.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use holdfast_catalog::tokens::Role;
use holdfast_catalog::verifications::Verification;
use serde::Deserialize;

use crate::AppState;
use crate::auth::Caller;
use crate::problem::{ApiError, optional_json};

/// Verifications listed at most.
const LISTED: i64 = 200;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerificationFields {
    pub read_data: Option<String>,
}

/// `read_data` as the engine reads it, or the 422 that says why not.
fn check_read_data(text: &str) -> Result<(), ApiError> {
    match text {
        "none" | "all" => Ok(()),
        subset => holdfast_engine::check::ReadData::parse_subset(subset)
            .map(drop)
            .map_err(|e| ApiError::invalid("read_data", e)),
    }
}

pub async fn create(
    State(s): State<AppState>,
    caller: Caller,
    Path(tenant): Path<String>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Verification>), ApiError> {
    let t = super::tenants::resolve(&s, &caller, &tenant, Role::Operator).await?;
    let body: VerificationFields = optional_json(&body)?;
    let read_data = match body.read_data {
        Some(r) => {
            check_read_data(&r)?;
            r
        }
        None => s.config.verification.read_data_at(jiff::Timestamp::now()),
    };
    let v = s
        .catalog
        .enqueue_verification(&t.id, &t.repository, &read_data, &caller.actor())
        .await?;
    s.wake.notify_one();
    Ok((StatusCode::ACCEPTED, Json(v)))
}

pub async fn list(
    State(s): State<AppState>,
    caller: Caller,
    Path(tenant): Path<String>,
) -> Result<Json<super::Items<Verification>>, ApiError> {
    let t = super::tenants::resolve(&s, &caller, &tenant, Role::Viewer).await?;
    let items = s.catalog.verifications(&t.id, LISTED).await?;
    Ok(Json(super::Items { items }))
}

pub async fn get_one(
    State(s): State<AppState>,
    caller: Caller,
    Path((tenant, id)): Path<(String, String)>,
) -> Result<Json<Verification>, ApiError> {
    let t = super::tenants::resolve(&s, &caller, &tenant, Role::Viewer).await?;
    Ok(Json(s.catalog.verification(&t.id, &id).await?))
}
