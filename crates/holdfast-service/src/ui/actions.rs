//! The UI's actions: run now, retry, delete, restore, download. Each is a
//! confirmation page (GET, readable without JavaScript) and its form
//! (POST), carried out by the API's own handler with the session's token
//! as the caller — one code path for roles, tenants, the tenant's policy
//! and the audit log, whether the request came from curl or a browser.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{self, Nav};
use super::session::{CsrfField, Posted, Signed, encode};
use super::{CsrfForm, OrPage, Page, caller, error_page, see_other};
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
) -> Page {
    let tr = signed.tr;
    let src = signed.acting("source", s.catalog.source_any(&source).await)?;
    Ok(confirm(
        &signed,
        tr.t("action.run_title"),
        &tr.f("action.run_q", &[("source", &src.name)]),
        &format!("/ui/sources/{}/run", encode(&src.id)),
        "/",
        html! {},
    ))
}

pub async fn run(
    State(s): State<AppState>,
    signed: Signed,
    Path(source): Path<String>,
    Posted(_): Posted<CsrfForm>,
) -> Page {
    // a viewer's run is refused by the API, as from curl
    let src = signed.seeing("source", s.catalog.source_any(&source).await)?;
    let body = backups::NewBackup::for_source(&src.id);
    let (_, Json(b)) = backups::create(
        State(s),
        caller(&signed),
        Path(src.tenant_id.clone()),
        ApiJson(body),
    )
    .await
    .or_page(signed.tr)?;
    Ok(see_other(&format!("/ui/backups/{}", b.id)))
}

// ----- retry, delete -----

/// What a confirmed form does to a backup.
#[derive(Clone, Copy)]
pub enum Verb {
    Retry,
    Delete,
}

impl Verb {
    fn name(self) -> &'static str {
        match self {
            Verb::Retry => "retry",
            Verb::Delete => "delete",
        }
    }
}

/// `/ui/backups/{id}/retry` and `…/delete`: the confirmation (GET) and
/// its form (POST: the API's own handler, then back to the backup's
/// page).
pub fn on_backup(verb: Verb) -> MethodRouter<AppState> {
    get(
        move |State(s): State<AppState>, signed: Signed, Path(id): Path<String>| async move {
            backup_confirm(&s, &signed, &id, verb.name()).await
        },
    )
    .post(
        move |State(s): State<AppState>,
              signed: Signed,
              Path(id): Path<String>,
              Posted(_): Posted<CsrfForm>| async move {
            let (state, c, path) = (State(s), caller(&signed), Path(id.clone()));
            let _ = match verb {
                Verb::Retry => backups::retry(state, c, path).await,
                Verb::Delete => backups::delete(state, c, path).await,
            }
            .or_page(signed.tr)?;
            Page::Ok(see_other(&format!("/ui/backups/{}", encode(&id))))
        },
    )
}

/// The confirmation of `verb` on a backup.
async fn backup_confirm(s: &AppState, signed: &Signed, id: &str, verb: &str) -> Page {
    let tr = signed.tr;
    signed.acting("backup", s.catalog.backup(id).await)?;
    Ok(confirm(
        signed,
        tr.t(&format!("action.{verb}_title")),
        tr.t(&format!("action.{verb}_q")),
        &format!("/ui/backups/{}/{verb}", encode(id)),
        &format!("/ui/backups/{}", encode(id)),
        html! {},
    ))
}

// ----- restore -----

pub async fn restore_form(
    State(s): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
) -> Page {
    let tr = signed.tr;
    let b = signed.acting("backup", s.catalog.backup(&id).await)?;
    let src = s.catalog.source_any(&b.source_id).await.or_page(tr)?;
    let over_source = restores::over_itself(&src.kind, &src.options).is_ok();
    let kind = src.kind;
    Ok(confirm(
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
    ))
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

impl CsrfField for RestoreForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

pub async fn restore(
    State(s): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    Posted(f): Posted<RestoreForm>,
) -> Page {
    let tr = signed.tr;
    let body = match f.mode.as_str() {
        "source" => {
            // a restore over live data: the source's name typed to confirm
            let b = signed.acting("backup", s.catalog.backup(&id).await)?;
            if f.confirm_name.trim() != b.source_name {
                return Err(error_page(
                    tr,
                    &ApiError::invalid("confirm_name", Msg::new("msg.invalid.confirm_name")),
                ));
            }
            serde_json::json!({"in_place": true})
        }
        "other" if f.target.trim().is_empty() => {
            return Err(error_page(
                tr,
                &ApiError::invalid("target", Msg::new("msg.invalid.required")),
            ));
        }
        "new" => serde_json::json!({}),
        _ if f.target.trim().is_empty() => serde_json::json!({}),
        _ => serde_json::json!({"target": f.target.trim()}),
    };
    let bytes = axum::body::Bytes::from(body.to_string());
    let (_, Json(r)) = restores::create(State(s), caller(&signed), Path(id), bytes)
        .await
        .or_page(tr)?;
    Ok(see_other(&format!("/ui/restores/{}", r.id)))
}

pub async fn restore_status(
    State(s): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
) -> Page {
    let tr = signed.tr;
    let r = signed.seeing("restore", s.catalog.restore_run(&id).await)?;
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
    Ok(layout::page(
        &signed,
        Nav::Backups,
        &tr.f("action.restore_status", &[("id", &short)]),
        "",
        content,
    )
    .into_response())
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
) -> Page {
    let r = s.catalog.restore_run(&id).await.or_page(signed.tr)?;
    Ok(super::pages::live_state(
        &signed,
        &r.tenant_id,
        &r.status,
        r.started_at.as_deref(),
        r.progress.as_ref(),
    ))
}

// ----- download -----

/// The API's download, with the session's token: the same roles, formats
/// and audit row.
pub async fn file(
    State(s): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    q: Result<Query<download::FileQuery>, QueryRejection>,
) -> Page {
    download::download(State(s), caller(&signed), Path(id), q)
        .await
        .or_page(signed.tr)
}
