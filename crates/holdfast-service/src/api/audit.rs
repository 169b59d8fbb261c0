use axum::Json;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use holdfast_catalog::audit::AuditFilter;
use holdfast_catalog::tokens::Role;
use serde::Deserialize;

use super::{Page, decode_cursor, page_limit};
use crate::AppState;
use crate::auth::Caller;
use crate::i18n::Msg;
use crate::problem::{ApiError, query_rejection};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    tenant: Option<String>,
    event: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
    format: Option<String>,
}

/// `GET /api/v1/audit`: pages newest first, or with `format=jsonl` the
/// whole (filtered) log oldest first as JSON Lines, streamed in batches.
/// A tenant's token sees its tenant's events only.
pub async fn list(
    State(s): State<AppState>,
    caller: Caller,
    q: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(query_rejection)?;
    let tenant = if caller.is_admin() {
        q.tenant.clone()
    } else {
        let own = caller.0.tenant_id.clone();
        if q.tenant.is_some() && q.tenant != own {
            return Err(ApiError::NotFound("tenant"));
        }
        caller.tenant(own.as_deref().unwrap_or(""), Role::Viewer, "tenant")?;
        own
    };
    let filter = AuditFilter {
        tenant_id: tenant,
        event: q.event.clone(),
        ..Default::default()
    };
    match q.format.as_deref() {
        None | Some("json") => {}
        Some("jsonl") => return Ok(jsonl(s, filter)),
        Some(other) => {
            return Err(ApiError::invalid(
                "format",
                Msg::new("msg.invalid.audit_format").with("value", format!("{other:?}")),
            ));
        }
    }
    let limit = page_limit(q.limit)?;
    let before = decode_cursor(q.cursor.as_deref())?
        .map(|c| {
            c.parse::<i64>()
                .map_err(|_| ApiError::invalid("cursor", Msg::new("msg.invalid.cursor")))
        })
        .transpose()?;
    let page = s.catalog.audit_page(&filter, limit, before).await?;
    let items: Vec<_> = page.items.iter().map(|r| r.view()).collect();
    let next = page.next_before.map(|n| n.to_string());
    Ok(Json(Page::new(items, next.as_deref())).into_response())
}

fn jsonl(s: AppState, filter: AuditFilter) -> Response {
    // (after, finished): batches of 500 rows in sequence order
    let body = stream::unfold((0i64, false), move |(after, done)| {
        let s = s.clone();
        let filter = filter.clone();
        async move {
            if done {
                return None;
            }
            match s.catalog.audit_after(&filter, after, 500).await {
                Ok(rows) if rows.is_empty() => None,
                Ok(rows) => {
                    let last = rows.last().map(|r| r.seq).unwrap_or(after);
                    let mut out = String::new();
                    for r in &rows {
                        out.push_str(&serde_json::to_string(&r.view()).unwrap_or_default());
                        out.push('\n');
                    }
                    Some((Ok::<_, std::io::Error>(out), (last, rows.len() < 500)))
                }
                Err(e) => Some((Err(std::io::Error::other(e.to_string())), (after, true))),
            }
        }
    });
    (
        [
            (header::CONTENT_TYPE, "application/x-ndjson"),
            (header::CACHE_CONTROL, "no-store"),
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        Body::from_stream(body),
    )
        .into_response()
}
