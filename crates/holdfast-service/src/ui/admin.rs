//! The audit log (every user; operators and viewers see their tenant's
//! rows), and for admins the tokens and tenants pages. Changes go through
//! the API's own handlers with the session's token, as in `actions`.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use holdfast_catalog::audit::AuditFilter;
use maud::html;
use serde::Deserialize;
use serde_json::json;

use super::layout::{self, Nav};
use super::session::{Signed, encode};
use super::{CsrfForm, caller, error_page, forged};
use crate::AppState;
use crate::api::{tenants, tokens};
use crate::problem::{ApiError, ApiJson};

/// A form's fields as the API's JSON body (the API's own type checks it).
fn body<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T, ApiError> {
    serde_json::from_value(v).map_err(|e| ApiError::invalid("form", e.to_string()))
}

// ----- audit -----

#[derive(Deserialize, Default)]
pub struct AuditQuery {
    tenant: Option<String>,
    event: Option<String>,
    actor: Option<String>,
    since: Option<String>,
    until: Option<String>,
    before: Option<i64>,
}

/// `2026-12-05` or `2026-12-05T10:00` (UTC) as the catalog's time text.
fn time_bound(s: Option<&str>) -> Option<String> {
    let s = s?.trim();
    if s.is_empty() {
        return None;
    }
    let full = if s.len() == 10 {
        format!("{s}T00:00:00Z")
    } else if s.len() == 16 {
        format!("{s}:00Z")
    } else {
        s.to_string()
    };
    full.parse::<jiff::Timestamp>()
        .ok()
        .map(holdfast_catalog::clock::format)
}

pub async fn audit(
    State(s): State<AppState>,
    signed: Signed,
    Query(q): Query<AuditQuery>,
) -> Response {
    let tr = signed.tr;
    let some = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .map(str::to_string)
    };
    let tenant = if signed.is_admin() {
        some(&q.tenant)
    } else {
        signed.token.tenant_id.clone()
    };
    let filter = AuditFilter {
        tenant_id: tenant.clone(),
        event: some(&q.event),
        actor: some(&q.actor),
        since: time_bound(q.since.as_deref()),
        until: time_bound(q.until.as_deref()),
    };
    let page = match s.catalog.audit_page(&filter, 100, q.before).await {
        Ok(p) => p,
        Err(e) => return error_page(tr, &e.into()),
    };
    // the whole chain, for admins (it spans every tenant)
    let chain = if signed.is_admin() {
        Some(match s.catalog.verify_audit().await {
            Ok(Ok(n)) => Ok(n),
            Ok(Err(b)) => Err(b.to_string()),
            Err(e) => return error_page(tr, &e.into()),
        })
    } else {
        None
    };
    let tenants = if signed.is_admin() {
        s.catalog.tenants().await.unwrap_or_default()
    } else {
        Vec::new()
    };
    let names: std::collections::HashMap<&str, &str> = tenants
        .iter()
        .map(|t| (t.id.as_str(), t.name.as_str()))
        .collect();
    let mut keep = Vec::new();
    for (k, v) in [
        ("tenant", some(&q.tenant)),
        ("event", some(&q.event)),
        ("actor", some(&q.actor)),
        ("since", some(&q.since)),
        ("until", some(&q.until)),
    ] {
        if let Some(v) = v {
            keep.push(format!("{k}={}", encode(&v)));
        }
    }
    let val = |v: &Option<String>| v.clone().unwrap_or_default();
    let content = html! {
        p.lead { (tr.t("audit.intro")) }
        @match &chain {
            Some(Ok(n)) => { p.ok role="status" { (tr.f("audit.chain_ok", &[("count", &tr.int(*n as i64))])) } }
            Some(Err(why)) => { p.alert role="alert" { (tr.f("audit.chain_broken", &[("reason", why)])) } }
            None => { p.muted { (tr.t("audit.chain_admins")) } }
        }
        form.filters method="get" action="/ui/audit" {
            @if signed.is_admin() {
                label for="a-tenant" { (tr.t("audit.tenant")) }
                select #a-tenant name="tenant" {
                    option value="" { (tr.t("backups.all")) }
                    @for t in &tenants { option value=(t.id) selected[tenant.as_deref() == Some(t.id.as_str())] { (t.name) } }
                }
            }
            label for="a-event" { (tr.t("audit.event")) }
            input #a-event type="text" name="event" value=(val(&q.event)) size="16";
            label for="a-actor" { (tr.t("audit.actor")) }
            input #a-actor type="text" name="actor" value=(val(&q.actor)) size="14";
            label for="a-since" { (tr.t("audit.since")) }
            input #a-since type="date" name="since" value=(val(&q.since));
            label for="a-until" { (tr.t("audit.until")) }
            input #a-until type="date" name="until" value=(val(&q.until));
            button type="submit" { (tr.t("backups.apply")) }
        }
        @if page.items.is_empty() {
            p.empty { (tr.t("audit.none")) }
        } @else {
            div.table-wrap tabindex="0" role="region" aria-label=(tr.t("app.table")) {
                table.list {
                    thead { tr {
                        th scope="col" { "#" }
                        th scope="col" { (tr.t("detail.time")) }
                        th scope="col" { (tr.t("audit.event")) }
                        th scope="col" { (tr.t("audit.actor")) }
                        @if signed.is_admin() { th scope="col" { (tr.t("audit.tenant")) } }
                        th scope="col" { (tr.t("audit.details")) }
                    } }
                    tbody {
                        @for r in &page.items {
                            tr {
                                td.num { (r.seq) }
                                td.when { time datetime=(r.time) { (tr.time(&r.time)) } }
                                td { code { (r.event) } }
                                td { (r.actor.label) }
                                @if signed.is_admin() {
                                    td { (r.tenant_id.as_deref().and_then(|t| names.get(t).copied()).unwrap_or("–")) }
                                }
                                td { code.wrap.small { (r.metadata_text) } }
                            }
                        }
                    }
                }
            }
            @if let Some(next) = page.next_before {
                nav.pager aria-label="pages" {
                    span {}
                    a href={ "/ui/audit?" (keep.join("&")) (if keep.is_empty() { "" } else { "&" }) "before=" (next) } rel="next" { (tr.t("backups.older")) " »" }
                }
            }
        }
    };
    layout::page(&signed, Nav::Audit, tr.t("audit.title"), "", content).into_response()
}

// ----- tokens -----

pub async fn tokens_page(State(s): State<AppState>, signed: Signed) -> Response {
    token_list(&s, &signed, None).await
}

async fn token_list(
    s: &AppState,
    signed: &Signed,
    created: Option<(StatusCode, String)>,
) -> Response {
    let tr = signed.tr;
    if !signed.is_admin() {
        return error_page(tr, &ApiError::Forbidden("admin".into()));
    }
    let (all, tenants) = match (s.catalog.tokens(None).await, s.catalog.tenants().await) {
        (Ok(a), Ok(t)) => (a, t),
        (Err(e), _) | (_, Err(e)) => return error_page(tr, &e.into()),
    };
    let names: std::collections::HashMap<&str, &str> = tenants
        .iter()
        .map(|t| (t.id.as_str(), t.name.as_str()))
        .collect();
    let now = jiff::Timestamp::now();
    let status = created.as_ref().map(|c| c.0).unwrap_or(StatusCode::OK);
    let content = html! {
        p.lead { (tr.t("tokens.intro")) }
        @if let Some((_, secret)) = &created {
            div.notice role="status" {
                p { (tr.t("tokens.created_once")) }
                p { code.wrap #new-secret { (secret) } }
            }
        }
        div.table-wrap tabindex="0" role="region" aria-label=(tr.t("app.table")) {
            table.list {
                thead { tr {
                    th scope="col" { (tr.t("tokens.label")) }
                    th scope="col" { (tr.t("tokens.role")) }
                    th scope="col" { (tr.t("tokens.tenant")) }
                    th scope="col" { (tr.t("tokens.created")) }
                    th scope="col" { (tr.t("tokens.state")) }
                    th scope="col" { span.sr { (tr.t("action.actions")) } }
                } }
                tbody {
                    @for t in &all {
                        tr {
                            td { (t.label) }
                            td { (tr.t(&format!("role.{}", t.role.as_str()))) }
                            td { (t.tenant_id.as_deref().and_then(|x| names.get(x).copied()).unwrap_or(tr.t("tokens.none_tenant"))) }
                            td.when { (tr.time(&t.created_at)) }
                            td {
                                @match &t.revoked_at {
                                    Some(r) => { span.muted { (tr.f("tokens.revoked", &[("when", &tr.age(r, now))])) } }
                                    None => { (tr.t("tokens.active")) }
                                }
                            }
                            td {
                                @if t.revoked_at.is_none() && t.id != signed.token.id {
                                    a href={ "/ui/tokens/" (t.id) "/revoke" } { (tr.t("tokens.revoke")) }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { (tr.t("tokens.create")) }
        form.filters method="post" action="/ui/tokens" {
            input type="hidden" name="csrf" value=(signed.session.csrf);
            label for="t-label" { (tr.t("tokens.label")) }
            input #t-label type="text" name="label" required maxlength="200";
            label for="t-role" { (tr.t("tokens.role")) }
            select #t-role name="role" {
                @for r in ["operator", "viewer", "admin"] { option value=(r) { (tr.t(&format!("role.{r}"))) } }
            }
            label for="t-tenant" { (tr.t("tokens.tenant")) }
            select #t-tenant name="tenant" {
                @for t in &tenants { option value=(t.id) { (t.name) } }
                option value="" { (tr.t("tokens.none_tenant")) }
            }
            button type="submit" { (tr.t("tokens.create")) }
        }
    };
    (
        status,
        layout::page(signed, Nav::Tokens, tr.t("tokens.title"), "", content),
    )
        .into_response()
}

#[derive(Deserialize)]
pub struct TokenForm {
    csrf: String,
    label: String,
    role: String,
    #[serde(default)]
    tenant: String,
}

pub async fn token_create(
    State(s): State<AppState>,
    signed: Signed,
    headers: HeaderMap,
    Form(f): Form<TokenForm>,
) -> Response {
    if !signed.check_form(&headers, &f.csrf) {
        return forged(signed.tr);
    }
    let mut v = json!({"role": f.role, "label": f.label});
    if !f.tenant.is_empty() {
        v["tenant"] = json!(f.tenant);
    }
    let b = match body(v) {
        Ok(b) => b,
        Err(e) => return error_page(signed.tr, &e),
    };
    match tokens::create(State(s.clone()), caller(&signed), ApiJson(b)).await {
        Ok((_, Json(v))) => {
            let secret = v["secret"].as_str().unwrap_or_default().to_string();
            token_list(&s, &signed, Some((StatusCode::CREATED, secret))).await
        }
        Err(e) => error_page(signed.tr, &e),
    }
}

pub async fn token_revoke_form(
    State(s): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    let tr = signed.tr;
    if !signed.is_admin() {
        return error_page(tr, &ApiError::Forbidden("admin".into()));
    }
    let t = match s.catalog.token(&id).await {
        Ok(t) => t,
        Err(e) => return error_page(tr, &e.into()),
    };
    layout::confirm(
        &signed,
        Nav::Tokens,
        tr.t("tokens.revoke_title"),
        &tr.f("tokens.revoke_q", &[("label", &t.label)]),
        &format!("/ui/tokens/{}/revoke", encode(&id)),
        "/ui/tokens",
        html! {},
    )
    .into_response()
}

pub async fn token_revoke(
    State(s): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    if !signed.check_form(&headers, &f.csrf) {
        return forged(signed.tr);
    }
    match tokens::revoke(State(s), caller(&signed), Path(id)).await {
        Ok(_) => (StatusCode::SEE_OTHER, [(header::LOCATION, "/ui/tokens")]).into_response(),
        Err(e) => error_page(signed.tr, &e),
    }
}

// ----- tenants -----

pub async fn tenants_page(State(s): State<AppState>, signed: Signed) -> Response {
    let tr = signed.tr;
    if !signed.is_admin() {
        return error_page(tr, &ApiError::Forbidden("admin".into()));
    }
    let all = match s.catalog.tenants().await {
        Ok(t) => t,
        Err(e) => return error_page(tr, &e.into()),
    };
    let content = html! {
        p.lead { (tr.t("tenants.intro")) }
        div.table-wrap tabindex="0" role="region" aria-label=(tr.t("app.table")) {
            table.list {
                thead { tr {
                    th scope="col" { (tr.t("tenants.name")) }
                    th scope="col" { (tr.t("tenants.repository")) }
                    th scope="col" { (tr.t("tenants.created")) }
                } }
                tbody {
                    @for t in &all {
                        tr {
                            th scope="row" { a href={ "/ui/tenants/" (t.id) } { (t.name) } }
                            td { code.wrap { (t.repository) } }
                            td.when { (tr.time(&t.created_at)) }
                        }
                    }
                }
            }
        }
        h2 { (tr.t("tenants.create")) }
        form.filters method="post" action="/ui/tenants" {
            input type="hidden" name="csrf" value=(signed.session.csrf);
            label for="n-name" { (tr.t("tenants.name")) }
            input #n-name type="text" name="name" required maxlength="64";
            button type="submit" { (tr.t("tenants.create")) }
        }
    };
    layout::page(&signed, Nav::Tenants, tr.t("tenants.title"), "", content).into_response()
}

#[derive(Deserialize)]
pub struct TenantForm {
    csrf: String,
    name: String,
}

pub async fn tenant_create(
    State(s): State<AppState>,
    signed: Signed,
    headers: HeaderMap,
    Form(f): Form<TenantForm>,
) -> Response {
    if !signed.check_form(&headers, &f.csrf) {
        return forged(signed.tr);
    }
    let b = match body(json!({"name": f.name})) {
        Ok(b) => b,
        Err(e) => return error_page(signed.tr, &e),
    };
    match tenants::create(State(s), caller(&signed), ApiJson(b)).await {
        Ok((_, Json(t))) => (
            StatusCode::SEE_OTHER,
            [(header::LOCATION, format!("/ui/tenants/{}", t.id))],
        )
            .into_response(),
        Err(e) => error_page(signed.tr, &e),
    }
}

/// One tenant: its policy, editable by admins.
pub async fn tenant_page(
    State(s): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    tenant_view(&s, &signed, &id, None, StatusCode::OK).await
}

async fn tenant_view(
    s: &AppState,
    signed: &Signed,
    id: &str,
    notice: Option<&str>,
    status: StatusCode,
) -> Response {
    let tr = signed.tr;
    if !signed.is_admin() {
        return error_page(tr, &ApiError::Forbidden("admin".into()));
    }
    let t = match s.catalog.tenant(id).await {
        Ok(t) => t,
        Err(e) => return error_page(tr, &e.into()),
    };
    let policy =
        match tenants::get_policy(State(s.clone()), caller(signed), Path(t.id.clone())).await {
            Ok(Json(p)) => serde_json::to_string_pretty(&p).unwrap_or_default(),
            Err(e) => return error_page(tr, &e),
        };
    let content = html! {
        p.lead { code.wrap { (t.repository) } }
        @if let Some(n) = notice { p.ok role="status" { (n) } }
        h2 { (tr.t("tenants.policy")) }
        form.stack.wide method="post" action={ "/ui/tenants/" (t.id) "/policy" } {
            input type="hidden" name="csrf" value=(signed.session.csrf);
            label for="policy" { (tr.t("tenants.policy")) }
            textarea #policy name="policy" rows="14" aria-describedby="policy-help" spellcheck="false" { (policy) }
            p #policy-help .help { (tr.t("tenants.policy_help")) }
            div.buttons { button type="submit" { (tr.t("tenants.save")) } }
        }
    };
    (
        status,
        layout::page(signed, Nav::Tenants, &t.name, "", content),
    )
        .into_response()
}

#[derive(Deserialize)]
pub struct PolicyForm {
    csrf: String,
    policy: String,
}

pub async fn tenant_policy(
    State(s): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(f): Form<PolicyForm>,
) -> Response {
    if !signed.check_form(&headers, &f.csrf) {
        return forged(signed.tr);
    }
    let text = if f.policy.trim().is_empty() {
        "{}"
    } else {
        f.policy.as_str()
    };
    let parsed = serde_json::from_str::<serde_json::Value>(text)
        .map_err(|e| ApiError::invalid("policy", e.to_string()))
        .and_then(body);
    let b = match parsed {
        Ok(b) => b,
        Err(e) => return error_page(signed.tr, &e),
    };
    match tenants::put_policy(
        State(s.clone()),
        caller(&signed),
        Path(id.clone()),
        ApiJson(b),
    )
    .await
    {
        Ok(_) => {
            tenant_view(
                &s,
                &signed,
                &id,
                Some(signed.tr.t("tenants.saved")),
                StatusCode::OK,
            )
            .await
        }
        Err(e) => error_page(signed.tr, &e),
    }
}
