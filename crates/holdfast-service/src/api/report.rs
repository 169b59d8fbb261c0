//! The evidence report over the API: `GET /api/v1/tenants/{tenant}/report`
//! (`from`, `to`: RFC 3339, default the last 30 days; `format`: `json` or
//! `html`), signed with the server's key (see `crate::report`).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use holdfast_catalog::tokens::Role;
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;

use crate::AppState;
use crate::auth::Caller;
use crate::i18n::Msg;
use crate::problem::{ApiError, query_rejection};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    from: Option<String>,
    to: Option<String>,
    format: Option<String>,
}

/// A time of the query, or the 422 that names it.
fn time(field: &str, text: Option<&str>, default: Timestamp) -> Result<Timestamp, ApiError> {
    match text {
        None => Ok(default),
        Some(t) => t.parse().map_err(|_| {
            ApiError::invalid(field, Msg::text(format!("{t:?} is not an RFC 3339 time")))
        }),
    }
}

pub async fn get(
    State(s): State<AppState>,
    caller: Caller,
    Path(tenant): Path<String>,
    q: Result<Query<ReportQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(query_rejection)?;
    let t = super::tenants::resolve(&s, &caller, &tenant, Role::Viewer).await?;
    let now = Timestamp::now();
    let to = time("to", q.to.as_deref(), now)?;
    let from = time(
        "from",
        q.from.as_deref(),
        to.checked_sub(SignedDuration::from_hours(24 * 30))
            .unwrap_or(to),
    )?;
    if from >= to {
        return Err(ApiError::invalid(
            "from",
            Msg::text("from must be before to"),
        ));
    }
    let report = crate::report::build(&s.catalog, &t, from, to).await?;
    let signed = crate::report::sign(s.catalog.key(), &report);
    match q.format.as_deref() {
        None | Some("json") => Ok((
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::to_string_pretty(&signed).unwrap_or_default(),
        )
            .into_response()),
        Some("html") => Ok((
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            crate::report::html_page(&report, &signed),
        )
            .into_response()),
        Some(other) => Err(ApiError::invalid(
            "format",
            Msg::text(format!("{other:?}: json or html")),
        )),
    }
}
