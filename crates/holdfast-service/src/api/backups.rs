use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use holdfast_catalog::backups::{Backup, BackupFilter};
use holdfast_catalog::tokens::Role;
use serde::Deserialize;

use super::{Page, decode_cursor, page_limit};
use crate::AppState;
use crate::auth::Caller;
use crate::i18n::Msg;
use crate::problem::{ApiError, ApiJson, query_rejection};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewBackup {
    source_id: String,
}

impl NewBackup {
    /// The body the web UI's "run now" sends.
    pub(crate) fn for_source(source_id: &str) -> NewBackup {
        NewBackup {
            source_id: source_id.to_string(),
        }
    }
}

/// `POST /api/v1/tenants/{tenant}/backups`: queue an on-demand run; 202
/// with the queued row.
pub async fn create(
    State(s): State<AppState>,
    caller: Caller,
    Path(tenant): Path<String>,
    ApiJson(body): ApiJson<NewBackup>,
) -> Result<(StatusCode, Json<Backup>), ApiError> {
    let t = super::tenants::resolve(&s, &caller, &tenant, Role::Operator).await?;
    let source = s.catalog.source(&t.id, &body.source_id).await?;
    let policy = super::tenants::policy_of(&s, &t.id).await?;
    if policy.max_repository_bytes.is_some() {
        let repo =
            crate::repos::RepoAt::of_tenant(&s.config, &s.catalog, &t.id, &t.repository).await?;
        let used = tokio::task::spawn_blocking(move || repo.used_bytes())
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        policy.check_repository_bytes(used)?;
    }
    let b = s
        .catalog
        .enqueue_backup(
            &source,
            &t.repository,
            None,
            s.config.jobs.max_attempts,
            &caller.actor(),
        )
        .await?
        .ok_or_else(|| ApiError::Internal("the run was not queued".into()))?;
    s.wake.notify_one();
    Ok((StatusCode::ACCEPTED, Json(b)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    limit: Option<i64>,
    cursor: Option<String>,
    status: Option<String>,
    source_id: Option<String>,
    kind: Option<String>,
}

const STATUSES: &[&str] = &["queued", "running", "done", "failed", "deleting", "deleted"];

/// `GET /api/v1/tenants/{tenant}/backups`: newest first, by pages.
pub async fn list(
    State(s): State<AppState>,
    caller: Caller,
    Path(tenant): Path<String>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Page<Backup>>, ApiError> {
    let Query(q) = q.map_err(query_rejection)?;
    let t = super::tenants::resolve(&s, &caller, &tenant, Role::Viewer).await?;
    let limit = page_limit(q.limit)?;
    if let Some(st) = &q.status
        && !STATUSES.contains(&st.as_str())
    {
        return Err(ApiError::invalid(
            "status",
            Msg::new("msg.invalid.one_of").with("values", STATUSES.join(", ")),
        ));
    }
    if let Some(k) = &q.kind
        && k != "scheduled"
        && k != "on_demand"
    {
        return Err(ApiError::invalid(
            "kind",
            Msg::new("msg.invalid.one_of").with("values", "scheduled, on_demand"),
        ));
    }
    let before = decode_cursor(q.cursor.as_deref())?;
    let page = s
        .catalog
        .backups_page(
            &t.id,
            &BackupFilter {
                status: q.status,
                source_id: q.source_id,
                kind: q.kind,
            },
            limit,
            before.as_deref(),
        )
        .await?;
    Ok(Json(Page::new(page.items, page.next_before.as_deref())))
}

/// A backup the caller may see with `need`; another tenant's is not found.
async fn visible(s: &AppState, caller: &Caller, id: &str, need: Role) -> Result<Backup, ApiError> {
    let b = s.catalog.backup(id).await?;
    caller.tenant(&b.tenant_id, need, "backup")?;
    Ok(b)
}

pub async fn get_one(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Backup>, ApiError> {
    Ok(Json(visible(&s, &caller, &id, Role::Viewer).await?))
}

/// `DELETE /api/v1/backups/{id}`: 202; the row stays, `deleting` until a
/// worker has removed the snapshot and pruned, then `deleted`.
pub async fn delete(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Backup>), ApiError> {
    visible(&s, &caller, &id, Role::Operator).await?;
    let b = s
        .catalog
        .request_deletion(&id, &caller.actor(), "requested")
        .await?;
    s.wake.notify_one();
    Ok((StatusCode::ACCEPTED, Json(b)))
}

/// `POST /api/v1/backups/{id}/retry`: 202 when the backup failed, 409
/// otherwise.
pub async fn retry(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Backup>), ApiError> {
    visible(&s, &caller, &id, Role::Operator).await?;
    let b = s.catalog.retry_backup(&id, &caller.actor()).await?;
    s.wake.notify_one();
    Ok((StatusCode::ACCEPTED, Json(b)))
}
