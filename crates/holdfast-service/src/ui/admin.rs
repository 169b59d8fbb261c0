//! The audit log (every user; operators and viewers see their tenant's
//! rows), and for admins the tokens and tenants pages. Changes go through
//! the API's own handlers with the session's token, as in `actions`.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use holdfast_catalog::audit::AuditFilter;
use maud::html;
use serde::Deserialize;
use serde_json::json;

use super::layout::{self, Nav};
use super::session::{CsrfField, Posted, Signed, encode};
use super::{CsrfForm, OrPage, Page, caller, see_other};
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

pub async fn audit(State(s): State<AppState>, signed: Signed, Query(q): Query<AuditQuery>) -> Page {
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
    let page = s
        .catalog
        .audit_page(&filter, 100, q.before)
        .await
        .or_page(tr)?;
    // the whole chain, for admins (it spans every tenant)
    let chain = if signed.is_admin() {
        let verified = s.catalog.verify_audit().await.or_page(tr)?;
        Some(verified.map_err(|b| b.to_string()))
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
    Ok(layout::page(&signed, Nav::Audit, tr.t("audit.title"), "", content).into_response())
}

// ----- tokens -----

pub async fn tokens_page(State(s): State<AppState>, signed: Signed) -> Page {
    token_list(&s, &signed, None).await
}

async fn token_list(s: &AppState, signed: &Signed, created: Option<(StatusCode, String)>) -> Page {
    let tr = signed.tr;
    signed.admin_only()?;
    let all = s.catalog.tokens(None).await.or_page(tr)?;
    let tenants = s.catalog.tenants().await.or_page(tr)?;
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
    Ok((
        status,
        layout::page(signed, Nav::Tokens, tr.t("tokens.title"), "", content),
    )
        .into_response())
}

#[derive(Deserialize)]
pub struct TokenForm {
    csrf: String,
    label: String,
    role: String,
    #[serde(default)]
    tenant: String,
}

impl CsrfField for TokenForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

pub async fn token_create(
    State(s): State<AppState>,
    signed: Signed,
    Posted(f): Posted<TokenForm>,
) -> Page {
    let mut v = json!({"role": f.role, "label": f.label});
    if !f.tenant.is_empty() {
        v["tenant"] = json!(f.tenant);
    }
    let b = body(v).or_page(signed.tr)?;
    let (_, Json(v)) = tokens::create(State(s.clone()), caller(&signed), ApiJson(b))
        .await
        .or_page(signed.tr)?;
    let secret = v["secret"].as_str().unwrap_or_default().to_string();
    token_list(&s, &signed, Some((StatusCode::CREATED, secret))).await
}

pub async fn token_revoke_form(
    State(s): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
) -> Page {
    let tr = signed.tr;
    signed.admin_only()?;
    let t = s.catalog.token(&id).await.or_page(tr)?;
    Ok(layout::confirm(
        &signed,
        Nav::Tokens,
        tr.t("tokens.revoke_title"),
        &tr.f("tokens.revoke_q", &[("label", &t.label)]),
        &format!("/ui/tokens/{}/revoke", encode(&id)),
        "/ui/tokens",
        html! {},
    )
    .into_response())
}

pub async fn token_revoke(
    State(s): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    Posted(_): Posted<CsrfForm>,
) -> Page {
    let _ = tokens::revoke(State(s), caller(&signed), Path(id))
        .await
        .or_page(signed.tr)?;
    Ok(see_other("/ui/tokens"))
}

// ----- tenants -----

pub async fn tenants_page(State(s): State<AppState>, signed: Signed) -> Page {
    let tr = signed.tr;
    signed.admin_only()?;
    let all = s.catalog.tenants().await.or_page(tr)?;
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
    Ok(layout::page(&signed, Nav::Tenants, tr.t("tenants.title"), "", content).into_response())
}

#[derive(Deserialize)]
pub struct TenantForm {
    csrf: String,
    name: String,
}

impl CsrfField for TenantForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

pub async fn tenant_create(
    State(s): State<AppState>,
    signed: Signed,
    Posted(f): Posted<TenantForm>,
) -> Page {
    let b = body(json!({"name": f.name})).or_page(signed.tr)?;
    let (_, Json(t)) = tenants::create(State(s), caller(&signed), ApiJson(b))
        .await
        .or_page(signed.tr)?;
    Ok(see_other(&format!("/ui/tenants/{}", t.id)))
}

/// One tenant: its policy, editable by admins.
pub async fn tenant_page(
    State(s): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
) -> Page {
    tenant_view(&s, &signed, &id, None).await
}

async fn tenant_view(s: &AppState, signed: &Signed, id: &str, notice: Option<&str>) -> Page {
    let tr = signed.tr;
    signed.admin_only()?;
    let t = s.catalog.tenant(id).await.or_page(tr)?;
    let Json(policy) = tenants::get_policy(State(s.clone()), caller(signed), Path(t.id.clone()))
        .await
        .or_page(tr)?;
    let policy = serde_json::to_string_pretty(&policy).unwrap_or_default();
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
    Ok(layout::page(signed, Nav::Tenants, &t.name, "", content).into_response())
}

#[derive(Deserialize)]
pub struct PolicyForm {
    csrf: String,
    policy: String,
}

impl CsrfField for PolicyForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

pub async fn tenant_policy(
    State(s): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    Posted(f): Posted<PolicyForm>,
) -> Page {
    let text = if f.policy.trim().is_empty() {
        "{}"
    } else {
        f.policy.as_str()
    };
    let b = serde_json::from_str::<serde_json::Value>(text)
        .map_err(|e| ApiError::invalid("policy", e.to_string()))
        .and_then(body)
        .or_page(signed.tr)?;
    let _ = tenants::put_policy(
        State(s.clone()),
        caller(&signed),
        Path(id.clone()),
        ApiJson(b),
    )
    .await
    .or_page(signed.tr)?;
    tenant_view(&s, &signed, &id, Some(signed.tr.t("tenants.saved"))).await
}
