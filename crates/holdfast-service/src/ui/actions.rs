//! The UI's actions: run now, retry, delete, restore, download. Each is a
//! confirmation page (GET, readable without JavaScript) and its form
//! (POST), carried out by the API's own handler with the session's token
//! as the caller — one code path for roles, tenants, the tenant's policy
//! and the audit log, whether the request came from curl or a browser.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{self, Nav};
use super::session::{Signed, encode};
use super::{CsrfForm, caller, error_page, forged, see_other};
use crate::AppState;
use crate::api::{backups, download, restores};
use crate::i18n::{Msg, Tr};
use crate::problem::{ApiError, ApiJson};

/// A confirmation page of the backups section.
fn confirm(
    s: &Signed,
    title: &str,
    question: &str,
    action: &str,
    back: &str,
    extra: Markup,
) -> Response {
    layout::confirm(s, Nav::Backups, title, question, action, back, extra).into_response()
}

// ----- run now -----

pub async fn run_form(
    State(s): State<AppState>,
    signed: Signed,
    Path(source): Path<String>,
) -> Response {
    let tr = signed.tr;
    let src = match s.catalog.source_any(&source).await {
        Ok(x) if signed.may_act(&x.tenant_id) => x,
        Ok(x) if signed.may_see(&x.tenant_id) => {
            return error_page(tr, &ApiError::Forbidden("viewer".into()));
        }
        Ok(_) => return error_page(tr, &ApiError::NotFound("source")),
        Err(e) => return error_page(tr, &e.into()),
    };
    confirm(
        &signed,
        tr.t("action.run_title"),
        &tr.f("action.run_q", &[("source", &src.name)]),
        &format!("/ui/sources/{}/run", encode(&src.id)),
        "/",
        html! {},
    )
}

pub async fn run(
    State(s): State<AppState>,
    signed: Signed,
    Path(source): Path<String>,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    let tr = signed.tr;
    if !signed.check_form(&headers, &f.csrf) {
        return forged(tr);
    }
    let src = match s.catalog.source_any(&source).await {
        Ok(x) if signed.may_see(&x.tenant_id) => x,
        Ok(_) => return error_page(tr, &ApiError::NotFound("source")),
        Err(e) => return error_page(tr, &e.into()),
    };
    let body = backups::NewBackup::for_source(&src.id);
    match backups::create(
        State(s),
        caller(&signed),
        Path(src.tenant_id.clone()),
        ApiJson(body),
    )
    .await
    {
        Ok((_, Json(b))) => see_other(&format!("/ui/backups/{}", b.id)),
        Err(e) => error_page(tr, &e),
    }
}

// ----- retry, delete -----

/// The confirmation of `verb` (`retry` or `delete`) on a backup.
async fn backup_confirm(s: &AppState, signed: &Signed, id: &str, verb: &str) -> Response {
    let tr = signed.tr;
    match actionable(s, signed, id).await {
        Ok(_) => confirm(
            signed,
            tr.t(&format!("action.{verb}_title")),
            tr.t(&format!("action.{verb}_q")),
            &format!("/ui/backups/{}/{verb}", encode(id)),
            &format!("/ui/backups/{}", encode(id)),
            html! {},
        ),
        Err(e) => error_page(tr, &e),
    }
}

pub async fn retry_form(
    State(s): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    backup_confirm(&s, &signed, &id, "retry").await
}

pub async fn delete_form(
    State(s): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    backup_confirm(&s, &signed, &id, "delete").await
}

/// A confirmed action on backup `id`: the form's CSRF secret checked,
/// then the API's own handler, then back to the backup's page.
async fn on_backup<T, Fut>(
    signed: &Signed,
    headers: &HeaderMap,
    f: &CsrfForm,
    id: &str,
    handler: impl FnOnce(crate::auth::Caller) -> Fut,
) -> Response
where
    Fut: std::future::Future<Output = Result<T, ApiError>>,
{
    if !signed.check_form(headers, &f.csrf) {
        return forged(signed.tr);
    }
    match handler(caller(signed)).await {
        Ok(_) => see_other(&format!("/ui/backups/{}", encode(id))),
        Err(e) => error_page(signed.tr, &e),
    }
}

pub async fn retry(
    State(s): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    on_backup(&signed, &headers, &f, &id, |c| {
        backups::retry(State(s), c, Path(id.clone()))
    })
    .await
}

pub async fn delete(
    State(s): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    on_backup(&signed, &headers, &f, &id, |c| {
        backups::delete(State(s), c, Path(id.clone()))
    })
    .await
}

/// A backup this user may act on (a viewer may see it, never act).
async fn actionable(
    s: &AppState,
    signed: &Signed,
    id: &str,
) -> Result<holdfast_catalog::backups::Backup, ApiError> {
    let b = s.catalog.backup(id).await?;
    signed.acting_on(&b.tenant_id, "backup")?;
    Ok(b)
}

// ----- restore -----

pub async fn restore_form(
    State(s): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    let tr = signed.tr;
    let b = match actionable(&s, &signed, &id).await {
        Ok(b) => b,
        Err(e) => return error_page(tr, &e),
    };
    let src = match s.catalog.source_any(&b.source_id).await {
        Ok(src) => src,
        Err(e) => return error_page(tr, &e.into()),
    };
    let over_source = restores::over_itself(&src.kind, &src.options).is_ok();
    let kind = src.kind;
    confirm(
        &signed,
        tr.t("action.restore_title"),
        &tr.f("action.restore_q", &[("source", &b.source_name)]),
        &format!("/ui/backups/{}/restore", encode(&id)),
        &format!("/ui/backups/{}", encode(&id)),
        html! {
            fieldset.choices {
                legend { (tr.t("action.restore_where")) }
                div.choice {
                    input #where-new type="radio" name="mode" value="new" checked;
                    label for="where-new" { (tr.t("action.where_new")) }
                }
                @if over_source {
                    div.choice {
                        input #where-source type="radio" name="mode" value="source" aria-describedby="where-source-help";
                        label for="where-source" { (tr.t("action.where_source")) }
                    }
                    div.sub {
                        p #where-source-help .help.warn { (tr.t(&format!("action.where_source_help.{kind}"))) }
                        label for="confirm_name" { (tr.f("action.type_name", &[("source", &b.source_name)])) }
                        input #confirm_name type="text" name="confirm_name" autocomplete="off" spellcheck="false";
                    }
                }
                div.choice {
                    input #where-other type="radio" name="mode" value="other";
                    label for="where-other" { (tr.t("action.where_other")) }
                }
                div.sub {
                    label for="target" { (tr.t("action.target")) }
                    input #target type="text" name="target" aria-describedby="target-help" autocomplete="off";
                    p #target-help .help { (tr.t("action.target_help")) }
                }
            }
        },
    )
}

#[derive(Deserialize)]
pub struct RestoreForm {
    csrf: String,
    /// `new` (beside the source), `source` (over it) or `other` (the
    /// target given); a form without it (an older page) names a target
    /// or takes the default.
    #[serde(default)]
    mode: String,
    #[serde(default)]
    target: String,
    #[serde(default)]
    confirm_name: String,
}

pub async fn restore(
    State(s): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(f): Form<RestoreForm>,
) -> Response {
    if !signed.check_form(&headers, &f.csrf) {
        return forged(signed.tr);
    }
    let tr = signed.tr;
    let body = match f.mode.as_str() {
        "source" => {
            // a restore over live data: the source's name typed to confirm
            let b = match actionable(&s, &signed, &id).await {
                Ok(b) => b,
                Err(e) => return error_page(tr, &e),
            };
            if f.confirm_name.trim() != b.source_name {
                return error_page(
                    tr,
                    &ApiError::invalid("confirm_name", Msg::new("msg.invalid.confirm_name")),
                );
            }
            serde_json::json!({"in_place": true})
        }
        "other" if f.target.trim().is_empty() => {
            return error_page(
                tr,
                &ApiError::invalid("target", Msg::new("msg.invalid.required")),
            );
        }
        "new" => serde_json::json!({}),
        _ if f.target.trim().is_empty() => serde_json::json!({}),
        _ => serde_json::json!({"target": f.target.trim()}),
    };
    let bytes = axum::body::Bytes::from(body.to_string());
    match restores::create(State(s), caller(&signed), Path(id), bytes).await {
        Ok((_, Json(r))) => see_other(&format!("/ui/restores/{}", r.id)),
        Err(e) => error_page(signed.tr, &e),
    }
}

pub async fn restore_status(
    State(s): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    let tr = signed.tr;
    let r = match s.catalog.restore_run(&id).await {
        Ok(r) if signed.may_see(&r.tenant_id) => r,
        Ok(_) => return error_page(tr, &ApiError::NotFound("restore")),
        Err(e) => return error_page(tr, &e.into()),
    };
    let short: String = r.id.chars().skip(r.id.len().saturating_sub(8)).collect();
    let content = html! {
        p.lead {
            span class={ "badge " (r.status) } { (tr.t(&format!("status.{}", r.status))) } " "
            a href={ "/ui/backups/" (r.backup_id) } { (tr.f("detail.title", &[("id", &r.backup_id.chars().skip(r.backup_id.len().saturating_sub(8)).collect::<String>())])) }
        }
        @if r.status == "running" || r.status == "queued" {
            p.live data-poll={ "/ui/restores/" (r.id) "/progress" } aria-live="polite" {
                (super::pages::live_text(tr, &r.status, r.started_at.as_deref(), r.progress.as_ref()))
            }
        }
        dl {
            dt { (tr.t("action.target")) } dd {
                code.wrap { (r.target) }
                @if r.in_place { " " span.badge.overdue { (tr.t("action.where_source")) } }
            }
            dt { (tr.t("detail.queued")) } dd { (tr.time(&r.queued_at)) }
            @if let Some(t) = &r.finished_at { dt { (tr.t("detail.finished")) } dd { (tr.time(t)) } }
        }
        @if let Some(v) = &r.verification {
            h2 { (tr.t("action.verification")) }
            (verification(tr, v))
        }
        @if let Some(e) = &r.error {
            h2 { (tr.t("detail.error")) }
            pre.error { (e) }
        }
    };
    layout::page(
        &signed,
        Nav::Backups,
        &tr.f("action.restore_status", &[("id", &short)]),
        "",
        content,
    )
    .into_response()
}

/// What a restore proved: its scalar facts as a list, its per-table row
/// counts as a table.
fn verification(tr: Tr, v: &serde_json::Value) -> Markup {
    let Some(obj) = v.as_object() else {
        return html! { pre.verification { (v.to_string()) } };
    };
    let show = |x: &serde_json::Value| match x {
        serde_json::Value::Bool(true) => "✓".to_string(),
        serde_json::Value::Bool(false) => "✗".to_string(),
        serde_json::Value::Number(n) => n
            .as_i64()
            .map(|i| tr.int(i))
            .unwrap_or_else(|| n.to_string()),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let tables: Vec<(String, String)> = obj
        .get("tables")
        .and_then(|t| t.as_array())
        .map(|a| {
            a.iter()
                .map(|t| (show(&t["table"]), show(&t["rows"])))
                .collect()
        })
        .unwrap_or_default();
    html! {
        dl.verification {
            @for (k, x) in obj {
                @if k != "tables" && !x.is_object() && !x.is_array() {
                    dt { (tr.get(&format!("verify.{k}")).map(str::to_string).unwrap_or_else(|| k.replace('_', " "))) }
                    dd.wrap { (show(x)) }
                }
            }
        }
        @if !tables.is_empty() {
            div.table-wrap tabindex="0" role="region" aria-label=(tr.t("app.table")) {
                table.list {
                    thead { tr { th scope="col" { (tr.t("detail.table")) } th scope="col" .num { (tr.t("detail.rows")) } } }
                    tbody { @for (t, n) in &tables { tr { td { (t) } td.num { (n) } } } }
                }
            }
        }
    }
}

pub async fn restore_progress(
    State(s): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    match s.catalog.restore_run(&id).await {
        Ok(r) if signed.may_see(&r.tenant_id) => Json(serde_json::json!({
            "status": r.status,
            "text": super::pages::live_text(signed.tr, &r.status, r.started_at.as_deref(), r.progress.as_ref()),
            "progress": r.progress,
        }))
        .into_response(),
        Ok(_) => StatusCode::NOT_FOUND.into_response(),
        Err(e) => error_page(signed.tr, &e.into()),
    }
}

// ----- download -----

/// The API's download, with the session's token: the same roles, formats
/// and audit row.
pub async fn file(
    State(s): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    q: Result<Query<download::FileQuery>, QueryRejection>,
) -> Response {
    let tr = signed.tr;
    match download::download(State(s), caller(&signed), Path(id), q).await {
        Ok(r) => r,
        Err(e) => error_page(tr, &e),
    }
}
