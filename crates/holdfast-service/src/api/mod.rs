//! The REST API under `/api/v1`, plus `/healthz` and `/readyz`.

mod audit;
pub(crate) mod backups;
mod channels;
pub(crate) mod download;
mod drills;
mod health;
mod report;
pub(crate) mod restores;
pub(crate) mod sources;
pub(crate) mod tenants;
pub(crate) mod tokens;
mod verifications;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

pub(crate) use tenants::policy_of;

use crate::AppState;
use crate::i18n::Msg;
use crate::problem::ApiError;

/// The whole HTTP surface: the API, and the web UI beside it.
pub fn router(state: AppState) -> Router {
    let ui = crate::ui::router().with_state(state.clone());
    ui.merge(api_router(state))
}

fn api_router(state: AppState) -> Router {
    let limit = state.config.max_body_bytes;
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/tenants", post(tenants::create).get(tenants::list))
        .route("/api/v1/tenants/{tenant}", get(tenants::get_one))
        .route(
            "/api/v1/tenants/{tenant}/policy",
            get(tenants::get_policy).put(tenants::put_policy),
        )
        .route(
            "/api/v1/tenants/{tenant}/storage",
            put(tenants::put_storage),
        )
        .route(
            "/api/v1/tenants/{tenant}/sources",
            post(sources::create).get(sources::list),
        )
        .route(
            "/api/v1/tenants/{tenant}/sources/{id}",
            get(sources::get_one)
                .patch(sources::update)
                .delete(sources::delete),
        )
        .route(
            "/api/v1/tenants/{tenant}/sources/{id}/drills",
            post(drills::create),
        )
        .route("/api/v1/tenants/{tenant}/drills", get(drills::list))
        .route("/api/v1/tenants/{tenant}/report", get(report::get))
        .route(
            "/api/v1/tenants/{tenant}/verifications",
            post(verifications::create).get(verifications::list),
        )
        .route(
            "/api/v1/tenants/{tenant}/verifications/{id}",
            get(verifications::get_one),
        )
        .route(
            "/api/v1/tenants/{tenant}/channels",
            post(channels::tenant_create).get(channels::tenant_list),
        )
        .route(
            "/api/v1/tenants/{tenant}/channels/{id}",
            get(channels::tenant_get)
                .patch(channels::tenant_update)
                .delete(channels::tenant_delete),
        )
        .route(
            "/api/v1/tenants/{tenant}/channels/{id}/test",
            post(channels::tenant_test),
        )
        .route(
            "/api/v1/tenants/{tenant}/channels/{id}/deliveries",
            get(channels::tenant_deliveries),
        )
        .route(
            "/api/v1/channels",
            post(channels::global_create).get(channels::global_list),
        )
        .route(
            "/api/v1/channels/{id}",
            get(channels::global_get)
                .patch(channels::global_update)
                .delete(channels::global_delete),
        )
        .route("/api/v1/channels/{id}/test", post(channels::global_test))
        .route(
            "/api/v1/channels/{id}/deliveries",
            get(channels::global_deliveries),
        )
        .route(
            "/api/v1/tenants/{tenant}/backups",
            post(backups::create).get(backups::list),
        )
        .route(
            "/api/v1/backups/{id}",
            get(backups::get_one).delete(backups::delete),
        )
        .route("/api/v1/backups/{id}/retry", post(backups::retry))
        .route("/api/v1/backups/{id}/file", get(download::download))
        .route("/api/v1/backups/{id}/restore", post(restores::create))
        .route("/api/v1/restores/{id}", get(restores::get_one))
        .route("/api/v1/audit", get(audit::list))
        .route("/api/v1/tokens", post(tokens::create).get(tokens::list))
        .route("/api/v1/tokens/{id}", axum::routing::delete(tokens::revoke))
        .fallback(|| async { ApiError::NotFound("resource") })
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::map_response(
            crate::problem::problems_only,
        ))
        .with_state(state)
}

/// The API described for clients and tools (OpenAPI 3.1, kept by hand
/// beside the router; a test checks every route is in it).
pub const OPENAPI: &str = include_str!("../../assets/openapi.json");

async fn openapi() -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI,
    )
}

/// Page sizes: 50 unless asked, at most 200.
pub(crate) fn page_limit(limit: Option<i64>) -> Result<i64, ApiError> {
    match limit {
        None => Ok(50),
        Some(n) if (1..=200).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::invalid("limit", Msg::new("msg.invalid.limit"))),
    }
}

/// One page of a list endpoint: `{"items", "has_more", "next_cursor"}`,
/// serialised straight from the rows (no intermediate `serde_json::Value`:
/// on the backup list that tree cost more than a tenth of each request).
#[derive(Serialize)]
pub(crate) struct Page<T> {
    items: Vec<T>,
    has_more: bool,
    next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// `next_position` is where the next page starts (None on the last).
    pub(crate) fn new(items: Vec<T>, next_position: Option<&str>) -> Page<T> {
        Page {
            items,
            has_more: next_position.is_some(),
            next_cursor: next_position.map(encode_cursor),
        }
    }
}

/// A whole (short) list: `{"items"}`.
#[derive(Serialize)]
pub(crate) struct Items<T> {
    pub items: Vec<T>,
}

/// Cursors are opaque to clients: base64 of where the page ended.
pub(crate) fn encode_cursor(position: &str) -> String {
    URL_SAFE_NO_PAD.encode(position)
}

pub(crate) fn decode_cursor(cursor: Option<&str>) -> Result<Option<String>, ApiError> {
    cursor
        .filter(|c| !c.is_empty())
        .map(|c| {
            URL_SAFE_NO_PAD
                .decode(c)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| ApiError::invalid("cursor", Msg::new("msg.invalid.cursor")))
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_route_is_in_the_openapi_document() {
        let doc: serde_json::Value = serde_json::from_str(super::OPENAPI).unwrap();
        let src = include_str!("mod.rs");
        let src = &src[..src.find("#[cfg(test)]").unwrap()];
        let routes: Vec<&str> = src
            .split(".route(")
            .skip(1)
            .filter_map(|r| r.trim_start().strip_prefix('"')?.split('"').next())
            .filter(|p| *p != "/api/v1/openapi.json")
            .collect();
        assert!(routes.len() > 15, "{routes:?}");
        for r in routes {
            assert!(
                doc["paths"].get(r).is_some(),
                "{r} is not in assets/openapi.json"
            );
        }
    }
}
