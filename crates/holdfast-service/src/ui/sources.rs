//! Sources: the list, and create / edit / delete forms, within what the
//! tenant's policy allows — the API's own handlers decide (policy, quota,
//! schedule interval, who set the target), with the session's token.
//! Credentials are write-only: the form never shows them.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use holdfast_catalog::sources::{KINDS, Source, SourceFields};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::json;

use super::layout::{self, Nav};
use super::session::{CsrfField, Posted, Signed, encode};
use super::{CsrfForm, OrPage, Page, caller, error_page, see_other};
use crate::AppState;
use crate::api::sources as api;
use crate::i18n::Msg;
use crate::i18n::Tr;
use crate::problem::{ApiError, ApiJson};
use crate::schedule::Schedule;

const KEEP: &[&str] = &["keep_last", "keep_daily", "keep_weekly", "keep_monthly"];

/// The next `n` runs of a cron text, in the page's format; an error names
/// what is wrong.
pub fn preview(s: &AppState, tr: Tr, text: &str) -> String {
    let text = text.trim();
    if text.is_empty() {
        return tr.t("sources.no_runs").to_string();
    }
    match Schedule::parse(text) {
        Ok(sched) => {
            let tz = s.config.time_zone();
            let mut at = jiff::Timestamp::now();
            let mut runs = Vec::new();
            for _ in 0..3 {
                match sched.next_after(at, &tz) {
                    Some(t) => {
                        runs.push(tr.time(&t.to_string()));
                        at = t;
                    }
                    None => break,
                }
            }
            tr.f("sources.next_runs", &[("list", &runs.join("; "))])
        }
        Err(e) => tr.f("sources.bad_schedule", &[("reason", &e.render(tr))]),
    }
}

/// A retention as words: `Daily 7 · Max age (days) 30`.
fn retention_text(tr: Tr, r: &serde_json::Value) -> String {
    let parts: Vec<String> = [
        "keep_last",
        "keep_daily",
        "keep_weekly",
        "keep_monthly",
        "max_age_days",
    ]
    .iter()
    .filter_map(|k| {
        let n = r.get(*k)?.as_i64().filter(|n| *n > 0)?;
        Some(format!("{} {}", tr.t(&format!("sources.{k}")), tr.int(n)))
    })
    .collect();
    if parts.is_empty() {
        "–".into()
    } else {
        parts.join(" · ")
    }
}

#[derive(Deserialize)]
pub struct PreviewQuery {
    cron: Option<String>,
}

/// `{"text"}`: the preview for the form's script, as text.
pub async fn schedule_preview(
    State(s): State<AppState>,
    signed: Signed,
    Query(q): Query<PreviewQuery>,
) -> Response {
    Json(json!({"text": preview(&s, signed.tr, q.cron.as_deref().unwrap_or(""))})).into_response()
}

/// The tenant a sources page is about (an admin's choice, else the
/// first), and every tenant for an admin's picker.
async fn tenant_of(
    s: &AppState,
    signed: &Signed,
    asked: Option<&str>,
) -> Result<
    (
        holdfast_catalog::tenants::Tenant,
        Vec<holdfast_catalog::tenants::Tenant>,
    ),
    Response,
> {
    let scope = super::scope(s, signed, asked).await.or_page(signed.tr)?;
    let t = scope
        .shown
        .into_iter()
        .next()
        .ok_or(ApiError::NotFound("tenant"))
        .or_page(signed.tr)?;
    Ok((t, scope.all))
}

#[derive(Deserialize, Default)]
pub struct TenantQuery {
    tenant: Option<String>,
}

pub async fn list(State(s): State<AppState>, signed: Signed, Query(q): Query<TenantQuery>) -> Page {
    let tr = signed.tr;
    let (t, all) = tenant_of(&s, &signed, q.tenant.as_deref()).await?;
    let sources = s.catalog.sources(&t.id).await.or_page(tr)?;
    let act = signed.may_act(&t.id);
    let tq = format!("?tenant={}", encode(&t.id));
    let content = html! {
        p.lead { (tr.t("sources.intro")) }
        @if signed.is_admin() {
            form.inline method="get" action="/ui/sources" {
                label for="s-tenant" { (tr.t("nav.tenant")) }
                select #s-tenant name="tenant" {
                    @for x in &all { option value=(x.id) selected[x.id == t.id] { (x.name) } }
                }
                button type="submit" { (tr.t("nav.switch")) }
            }
        }
        @if act { p { a.button href={ "/ui/sources/new" (tq) } { (tr.t("sources.new")) } } }
        @if sources.is_empty() {
            p.empty { (tr.t("sources.none")) }
        } @else {
            div.table-wrap tabindex="0" role="region" aria-label=(tr.t("app.table")) {
                table.list {
                    thead { tr {
                        th scope="col" { (tr.t("sources.name")) }
                        th scope="col" { (tr.t("sources.kind")) }
                        th scope="col" { (tr.t("sources.target")) }
                        th scope="col" { (tr.t("sources.schedule")) }
                        th scope="col" { (tr.t("sources.retention")) }
                        th scope="col" { (tr.t("sources.defined_by")) }
                        @if act { th scope="col" { span.sr { (tr.t("action.actions")) } } }
                    } }
                    tbody {
                        @for x in &sources {
                            tr {
                                th scope="row" { (x.name) }
                                td { (x.kind) }
                                td { code.wrap { (x.target) } }
                                td {
                                    @match &x.schedule {
                                        Some(c) => { code { (c) } br; span.sub { (preview(&s, tr, c)) } }
                                        None => { span.muted { (tr.t("sources.on_demand")) } }
                                    }
                                }
                                td { (retention_text(tr, &x.retention)) }
                                td { (tr.t(&format!("role.{}", x.defined_by))) }
                                @if act {
                                    td.links {
                                        a href={ "/ui/sources/" (x.id) "/edit" } { (tr.t("sources.edit")) }
                                        " · " a href={ "/ui/sources/" (x.id) "/run" } { (tr.t("action.run")) }
                                        " · " a href={ "/ui/sources/" (x.id) "/delete" } { (tr.t("sources.delete")) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::page(&signed, Nav::Sources, tr.t("sources.title"), &tq, content).into_response())
}

/// The form, for a new source (`None`) or an existing one.
fn form(s: &AppState, signed: &Signed, tenant_id: &str, src: Option<&Source>) -> Markup {
    let tr = signed.tr;
    let action = match src {
        Some(x) => format!("/ui/sources/{}/edit", encode(&x.id)),
        None => format!("/ui/sources/new?tenant={}", encode(tenant_id)),
    };
    let schedule = src.and_then(|x| x.schedule.clone()).unwrap_or_default();
    let retention = src
        .map(|x| x.retention.clone())
        .unwrap_or_else(|| json!({}));
    let options = src
        .map(|x| serde_json::to_string(&x.options).unwrap_or_default())
        .unwrap_or_else(|| "{}".into());
    html! {
        form.stack.wide.source method="post" action=(action) {
            input type="hidden" name="csrf" value=(signed.session.csrf);
            label for="f-name" { (tr.t("sources.name")) }
            input #f-name type="text" name="name" required maxlength="200" value=(src.map(|x| x.name.as_str()).unwrap_or(""));
            label for="f-kind" { (tr.t("sources.kind")) }
            @match src {
                Some(x) => { input #f-kind type="text" name="kind" value=(x.kind) readonly; }
                None => {
                    select #f-kind name="kind" {
                        @for k in KINDS { option value=(k) { (k) } }
                    }
                }
            }
            label for="f-target" { (tr.t("sources.target")) }
            input #f-target type="text" name="target" required aria-describedby="f-target-help" value=(src.map(|x| x.target.as_str()).unwrap_or(""));
            p #f-target-help .help { (tr.t("sources.target_help")) }
            label for="f-credentials" { (tr.t("sources.credentials")) }
            input #f-credentials type="password" name="credentials" autocomplete="new-password" aria-describedby="f-credentials-help";
            p #f-credentials-help .help { (tr.t("sources.credentials_help")) }
            label for="f-schedule" { (tr.t("sources.schedule")) }
            input #f-schedule type="text" name="schedule" value=(schedule) aria-describedby="f-schedule-help f-schedule-preview" data-preview="/ui/schedule-preview";
            p #f-schedule-help .help { (tr.t("sources.schedule_help")) }
            p #f-schedule-preview .preview aria-live="polite" { (preview(s, tr, &schedule)) }
            fieldset {
                legend { (tr.t("sources.retention")) }
                div.row {
                    @for k in KEEP {
                        div {
                            label for={ "f-" (k) } { (tr.t(&format!("sources.{k}"))) }
                            input id={ "f-" (k) } type="number" min="0" name=(k) value=(retention.get(*k).and_then(|v| v.as_i64()).map(|v| v.to_string()).unwrap_or_default());
                        }
                    }
                    div {
                        label for="f-max_age_days" { (tr.t("sources.max_age_days")) }
                        input #f-max_age_days type="number" min="1" name="max_age_days" value=(retention.get("max_age_days").and_then(|v| v.as_i64()).map(|v| v.to_string()).unwrap_or_default());
                    }
                }
            }
            label for="f-options" { (tr.t("sources.options")) }
            textarea #f-options name="options" rows="3" spellcheck="false" aria-describedby="f-options-help" { (options) }
            p #f-options-help .help { (tr.t("sources.options_help")) }
            div.buttons {
                button type="submit" { (if src.is_some() { tr.t("sources.save") } else { tr.t("sources.create") }) }
                a.button.secondary href={ "/ui/sources?tenant=" (encode(tenant_id)) } { (tr.t("action.cancel")) }
            }
        }
    }
}

pub async fn new_form(
    State(s): State<AppState>,
    signed: Signed,
    Query(q): Query<TenantQuery>,
) -> Page {
    let tr = signed.tr;
    let (t, _) = tenant_of(&s, &signed, q.tenant.as_deref()).await?;
    if !signed.may_act(&t.id) {
        return Err(error_page(tr, &ApiError::Forbidden("viewer".into())));
    }
    let content = form(&s, &signed, &t.id, None);
    Ok(layout::page(&signed, Nav::Sources, tr.t("sources.new"), "", content).into_response())
}

#[derive(Deserialize)]
pub struct SourceForm {
    csrf: String,
    name: String,
    #[serde(default)]
    kind: String,
    target: String,
    #[serde(default)]
    credentials: String,
    #[serde(default)]
    schedule: String,
    #[serde(default)]
    options: String,
    #[serde(default)]
    keep_last: String,
    #[serde(default)]
    keep_daily: String,
    #[serde(default)]
    keep_weekly: String,
    #[serde(default)]
    keep_monthly: String,
    #[serde(default)]
    max_age_days: String,
}

impl CsrfField for SourceForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

impl SourceForm {
    fn retention(&self) -> Result<serde_json::Value, ApiError> {
        let mut r = serde_json::Map::new();
        for (k, v) in [
            ("keep_last", &self.keep_last),
            ("keep_daily", &self.keep_daily),
            ("keep_weekly", &self.keep_weekly),
            ("keep_monthly", &self.keep_monthly),
            ("max_age_days", &self.max_age_days),
        ] {
            if !v.trim().is_empty() {
                let n: i64 = v.trim().parse().map_err(|_| {
                    ApiError::invalid(
                        &format!("retention.{k}"),
                        Msg::new("msg.invalid.whole_number"),
                    )
                })?;
                r.insert(k.into(), n.into());
            }
        }
        Ok(serde_json::Value::Object(r))
    }

    fn options(&self) -> Result<serde_json::Value, ApiError> {
        let text = if self.options.trim().is_empty() {
            "{}"
        } else {
            self.options.trim()
        };
        serde_json::from_str(text).map_err(|e| ApiError::invalid("options", e.to_string()))
    }

    fn schedule(&self) -> Option<String> {
        Some(self.schedule.trim().to_string()).filter(|x| !x.is_empty())
    }

    /// The options and the retention, or the page naming the first that
    /// does not parse.
    fn parsed(&self, tr: Tr) -> Result<(serde_json::Value, serde_json::Value), Response> {
        Ok((self.options().or_page(tr)?, self.retention().or_page(tr)?))
    }
}

pub async fn create(
    State(s): State<AppState>,
    signed: Signed,
    Query(q): Query<TenantQuery>,
    Posted(f): Posted<SourceForm>,
) -> Page {
    let tr = signed.tr;
    let (t, _) = tenant_of(&s, &signed, q.tenant.as_deref()).await?;
    let (options, retention) = f.parsed(tr)?;
    let fields = SourceFields {
        name: Some(f.name.clone()),
        kind: Some(f.kind.clone()),
        target: Some(f.target.trim().to_string()),
        options: Some(options),
        schedule: Some(f.schedule()),
        retention: Some(retention),
        credentials: Some(Some(f.credentials.clone()).filter(|c| !c.is_empty())),
    };
    let _ = api::create(
        State(s),
        caller(&signed),
        Path(t.id.clone()),
        ApiJson(fields),
    )
    .await
    .or_page(tr)?;
    Ok(listed(&t.id))
}

/// After a change: the tenant's sources.
fn listed(tenant_id: &str) -> Response {
    see_other(&format!("/ui/sources?tenant={}", encode(tenant_id)))
}

pub async fn edit_form(State(s): State<AppState>, signed: Signed, Path(id): Path<String>) -> Page {
    let src = signed.acting("source", s.catalog.source_any(&id).await)?;
    let content = form(&s, &signed, &src.tenant_id, Some(&src));
    Ok(layout::page(&signed, Nav::Sources, &src.name, "", content).into_response())
}

pub async fn edit(
    State(s): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    Posted(f): Posted<SourceForm>,
) -> Page {
    let tr = signed.tr;
    let cur = signed.acting("source", s.catalog.source_any(&id).await)?;
    let (options, retention) = f.parsed(tr)?;
    // only what changed: an unchanged target or options keeps who set them
    let target = f.target.trim().to_string();
    let fields = SourceFields {
        name: (f.name != cur.name).then(|| f.name.clone()),
        kind: None,
        target: (target != cur.target).then_some(target),
        options: (options != cur.options).then_some(options),
        schedule: (f.schedule() != cur.schedule).then(|| f.schedule()),
        retention: (retention != cur.retention).then_some(retention),
        credentials: (!f.credentials.is_empty()).then(|| Some(f.credentials.clone())),
    };
    let _ = api::update(
        State(s),
        caller(&signed),
        Path((cur.tenant_id.clone(), id)),
        ApiJson(fields),
    )
    .await
    .or_page(tr)?;
    Ok(listed(&cur.tenant_id))
}

pub async fn delete_form(
    State(s): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
) -> Page {
    let tr = signed.tr;
    let src = signed.acting("source", s.catalog.source_any(&id).await)?;
    Ok(layout::confirm(
        &signed,
        Nav::Sources,
        tr.t("sources.delete_title"),
        &tr.f("sources.delete_q", &[("name", &src.name)]),
        &format!("/ui/sources/{}/delete", encode(&id)),
        &format!("/ui/sources?tenant={}", encode(&src.tenant_id)),
        html! {},
    )
    .into_response())
}

pub async fn delete(
    State(s): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    Posted(_): Posted<CsrfForm>,
) -> Page {
    let src = signed.acting("source", s.catalog.source_any(&id).await)?;
    api::delete(State(s), caller(&signed), Path((src.tenant_id.clone(), id)))
        .await
        .or_page(signed.tr)?;
    Ok(listed(&src.tenant_id))
}
