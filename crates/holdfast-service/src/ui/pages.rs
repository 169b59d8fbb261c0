//! One function per page. Handlers read the catalog, decide what the
//! signed-in user may see and do, and hand plain values to maud.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use holdfast_catalog::backups::{BackupFilter, SourceRuns};
use holdfast_catalog::sources::Source;
use jiff::{SignedDuration, Timestamp};
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{self, Nav};
use super::session::{
    self, LANG_COOKIE, Posted, SESSION_COOKIE, Signed, Visitor, local_path, secure, set_cookie,
};
use super::{CsrfForm, OrPage, Page, error_page};
use crate::AppState;
use crate::i18n::Tr;
use crate::problem::ApiError;
use crate::schedule::Schedule;

/// How long a sign-in lasts.
const SESSION_HOURS: i64 = 12;

// ----- sign-in, sign-out, language -----

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
    out: Option<String>,
}

pub async fn signin_form(v: Visitor, Query(q): Query<NextQuery>) -> Response {
    signin_page(
        v.tr,
        q.next.as_deref(),
        q.out.is_some().then_some("signin.signed_out"),
        StatusCode::OK,
    )
}

fn signin_page(tr: Tr, next: Option<&str>, notice: Option<&str>, status: StatusCode) -> Response {
    let next = local_path(next);
    let here = format!("/ui/signin?next={}", session::encode(&next));
    let body = html! {
        @if let Some(key) = notice {
            p.notice role="status" { (tr.t(key)) }
        }
        p { (tr.t("signin.intro")) }
        form.stack method="post" action="/ui/signin" {
            input type="hidden" name="next" value=(next);
            label for="token" { (tr.t("signin.token")) }
            input #token type="password" name="token" autocomplete="current-password" required autofocus;
            button type="submit" { (tr.t("signin.submit")) }
        }
    };
    (
        status,
        layout::bare_with(tr, tr.t("signin.title"), &here, body),
    )
        .into_response()
}

#[derive(Deserialize)]
pub struct SignInForm {
    token: String,
    next: Option<String>,
}

pub async fn signin(
    State(s): State<AppState>,
    v: Visitor,
    client: Option<axum::Extension<crate::http::ClientAddr>>,
    headers: HeaderMap,
    Form(f): Form<SignInForm>,
) -> Page {
    let tr = v.tr;
    if !session::same_origin(&headers) {
        return Err(error_page(
            tr,
            &ApiError::Forbidden("cross-site sign-in".into()),
        ));
    }
    let ip = client.map(|c| c.0.0.ip());
    if let Some(ip) = ip
        && let Some(wait) = s.auth_limiter.blocked(ip)
    {
        let msg = tr.f(
            "signin.too_many",
            &[("seconds", &wait.as_secs().max(1).to_string())],
        );
        let body = html! { p.error role="alert" { (msg) } };
        return Err((
            StatusCode::TOO_MANY_REQUESTS,
            layout::bare_with(tr, tr.t("signin.title"), "/ui/signin", body),
        )
            .into_response());
    }
    let Some(token) = s.catalog.authenticate(f.token.trim()).await.or_page(tr)? else {
        if let Some(ip) = ip {
            let n = s.auth_limiter.failed(ip);
            crate::worker::log(&format!(
                "ui sign-in failed from {ip}: unknown or revoked token ({n} in the last minute)"
            ));
        }
        return Err(signin_page(
            tr,
            f.next.as_deref(),
            Some("signin.failed"),
            StatusCode::UNAUTHORIZED,
        ));
    };
    let (_, secret) = s
        .catalog
        .create_session(&token, SignedDuration::from_hours(SESSION_HOURS))
        .await
        .or_page(tr)?;
    Ok((
        StatusCode::SEE_OTHER,
        [
            (
                header::SET_COOKIE,
                set_cookie(
                    SESSION_COOKIE,
                    &secret,
                    SESSION_HOURS * 3600,
                    secure(&s, &headers),
                ),
            ),
            (
                header::LOCATION,
                local_path(f.next.as_deref())
                    .parse()
                    .expect("a local path is a header value"),
            ),
        ],
    )
        .into_response())
}

pub async fn signout(
    State(s): State<AppState>,
    signed: Signed,
    headers: HeaderMap,
    Posted(_): Posted<CsrfForm>,
) -> Page {
    s.catalog
        .end_session(&signed.session, &signed.token)
        .await
        .or_page(signed.tr)?;
    Ok((
        StatusCode::SEE_OTHER,
        [
            (
                header::SET_COOKIE,
                set_cookie(SESSION_COOKIE, "", 0, secure(&s, &headers)),
            ),
            (
                header::LOCATION,
                "/ui/signin?out=1".parse().expect("static"),
            ),
        ],
    )
        .into_response())
}

/// Remember a language (a cookie for a year), then go back.
pub async fn set_lang(
    State(s): State<AppState>,
    Path(code): Path<String>,
    headers: HeaderMap,
    Query(q): Query<NextQuery>,
) -> Response {
    let Some(lang) = crate::i18n::Lang::parse(&code) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    (
        StatusCode::SEE_OTHER,
        [
            (
                header::SET_COOKIE,
                set_cookie(LANG_COOKIE, lang.code(), 365 * 86400, secure(&s, &headers)),
            ),
            (
                header::LOCATION,
                local_path(q.next.as_deref())
                    .parse()
                    .expect("a local path is a header value"),
            ),
        ],
    )
        .into_response()
}

// ----- which tenants a page shows -----

#[derive(Deserialize, Default)]
pub struct TenantQuery {
    tenant: Option<String>,
}

/// The admin's tenant picker (a plain GET form).
fn tenant_picker(
    tr: Tr,
    all: &[holdfast_catalog::tenants::Tenant],
    chosen: Option<&str>,
    action: &str,
) -> Markup {
    html! {
        form.inline method="get" action=(action) {
            label for="tenant" { (tr.t("nav.tenant")) }
            select #tenant name="tenant" {
                option value="all" selected[chosen.is_none()] { (tr.t("nav.all_tenants")) }
                @for t in all {
                    option value=(t.id) selected[chosen == Some(t.id.as_str())] { (t.name) }
                }
            }
            button type="submit" { (tr.t("nav.switch")) }
        }
    }
}

// ----- overview -----

struct Row {
    source: Source,
    tenant: String,
    runs: SourceRuns,
    next: Option<Timestamp>,
    /// Overdue backups or drills, the last drill (`crate::health`).
    health: crate::health::SourceHealth,
    /// When its newest successful restore (or drill) finished.
    restored: Option<String>,
}

impl Row {
    /// Its last backup failed, its last drill failed, or either is overdue.
    fn needs_attention(&self) -> bool {
        let failed = |b: Option<&str>| b == Some("failed");
        self.health.backup_overdue
            || self.health.drill_overdue
            || failed(self.runs.last.as_ref().map(|b| b.status.as_str()))
            || failed(self.health.last_drill.as_ref().map(|d| d.status.as_str()))
    }
}

fn secs_between(a: &str, b: &str) -> Option<i64> {
    let a: Timestamp = a.parse().ok()?;
    let b: Timestamp = b.parse().ok()?;
    Some(b.as_second() - a.as_second())
}

/// How long a run took, once it has finished.
fn run_seconds(started_at: Option<&str>, finished_at: Option<&str>) -> Option<i64> {
    secs_between(started_at?, finished_at?)
}

pub async fn overview(
    State(s): State<AppState>,
    signed: Signed,
    Query(q): Query<TenantQuery>,
) -> Page {
    let tr = signed.tr;
    let super::Scope {
        shown: tenants,
        all,
        query: tq,
    } = super::scope(&s, &signed, q.tenant.as_deref())
        .await
        .or_page(tr)?;
    let tz = s.config.time_zone();
    let now = Timestamp::now();
    let mut rows = Vec::new();
    for t in &tenants {
        let sources = s.catalog.sources(&t.id).await.or_page(tr)?;
        // every source's last run, last success and last 30 runs' chart
        // in one query
        let mut recent: std::collections::HashMap<String, SourceRuns> = s
            .catalog
            .recent_runs(&t.id, 30)
            .await
            .or_page(tr)?
            .into_iter()
            .map(|r| (r.source_id.clone(), r))
            .collect();
        let mut restored = s.catalog.last_restores(&t.id).await.or_page(tr)?;
        let drills = s.catalog.drill_states(&t.id).await.or_page(tr)?;
        for src in sources {
            let runs = recent.remove(&src.id).unwrap_or_default();
            let next = src
                .schedule
                .as_deref()
                .and_then(|x| Schedule::parse(x).ok())
                .and_then(|x| x.next_after(now, &tz));
            let health = crate::health::assess(&src, Some(&runs), drills.get(&src.id), now, &tz);
            rows.push(Row {
                restored: restored.remove(&src.id),
                source: src,
                tenant: t.name.clone(),
                runs,
                next,
                health,
            });
        }
    }
    let attention = rows.iter().filter(|r| r.needs_attention()).count();
    let picker = if signed.is_admin() {
        Some(tenant_picker(
            tr,
            &all,
            q.tenant.as_deref().filter(|t| *t != "all"),
            "/",
        ))
    } else {
        None
    };
    let many_tenants = tenants.len() > 1;
    let content = html! {
        p.lead { (tr.t("overview.intro")) }
        @if let Some(p) = picker { (p) }
        @if rows.is_empty() {
            p.empty { (tr.t("overview.none")) }
        } @else {
            @if attention > 0 {
                p.alert role="status" { (tr.plural("overview.attention", attention as i64)) }
            } @else {
                p.ok role="status" { (tr.t("overview.all_good")) }
            }
            div.table-wrap tabindex="0" role="region" aria-label=(tr.t("app.table")) {
                table.overview {
                    thead { tr {
                        th scope="col" { (tr.t("overview.source")) }
                        th scope="col" { (tr.t("overview.last_backup")) }
                        th scope="col" .num { (tr.t("overview.size")) }
                        th scope="col" .num.wide { (tr.t("overview.saved")) }
                        th scope="col" .wide { (tr.t("overview.next_run")) }
                        th scope="col" .wide { (tr.t("overview.last_restore")) }
                        th scope="col" { (tr.t("overview.history")) }
                    } }
                    tbody {
                        @for r in &rows {
                            (overview_row(tr, r, now, many_tenants, &tq, signed.may_act(&r.source.tenant_id)))
                        }
                    }
                }
            }
        }
    };
    Ok(layout::page(&signed, Nav::Overview, tr.t("overview.title"), &tq, content).into_response())
}

fn status_badge(tr: Tr, status: &str) -> Markup {
    html! { span class={ "badge " (status) } { (tr.t(&format!("status.{status}"))) } }
}

fn overview_row(
    tr: Tr,
    r: &Row,
    now: Timestamp,
    many_tenants: bool,
    tq: &str,
    act: bool,
) -> Markup {
    let last = r.runs.last.as_ref();
    let success = r.runs.success.as_ref();
    let saved = success.and_then(|b| {
        let (size, added) = (b.size?, b.bytes_added?);
        (size > 0).then(|| (size - added.min(size)) as f64 / size as f64 * 100.0)
    });
    html! {
        tr class=[r.needs_attention().then_some("attention")] {
            th scope="row" {
                a href={ "/ui/backups" (if tq.is_empty() { "?" } else { "" }) (tq) (if tq.is_empty() { "" } else { "&" }) "source=" (session::encode(&r.source.id)) } { (r.source.name) }
                span.sub { (r.source.kind) @if many_tenants { " · " (r.tenant) } }
                @if act { a.small href={ "/ui/sources/" (session::encode(&r.source.id)) "/run" } { (tr.t("action.run")) } }
            }
            td {
                @match last {
                    Some(b) => {
                        (status_badge(tr, &b.status))
                        @if r.health.backup_overdue { " " span.badge.overdue { (tr.t("overview.overdue")) } }
                        br;
                        a href={ "/ui/backups/" (b.id) } {
                            time datetime=(b.queued_at) { (tr.age(b.finished_at.as_deref().unwrap_or(&b.queued_at), now)) }
                        }
                    }
                    None => {
                        span.muted { (tr.t("overview.never")) }
                        @if r.health.backup_overdue { " " span.badge.overdue { (tr.t("overview.overdue")) } }
                    }
                }
            }
            td.num { @if let Some(sz) = success.and_then(|b| b.size) { (tr.bytes(sz)) } @else { "–" } }
            td.num.wide { @if let Some(p) = saved { (format!("{p:.0} %")) } @else { "–" } }
            td.wide {
                @match r.next {
                    Some(t) => { time datetime=(t.to_string()) { (tr.age(&t.to_string(), now)) } }
                    None => { span.muted { (tr.t("overview.manual")) } }
                }
            }
            td.wide {
                @if let Some(d) = &r.health.last_drill {
                    // a failed drill shows as such; a passed one as its age
                    @if d.status != "done" { (status_badge(tr, &d.status)) " " }
                }
                @match &r.restored {
                    Some(at) => { time datetime=(at) { (tr.age(at, now)) } }
                    None => { span.muted { (tr.t("overview.never_restored")) } }
                }
                @if r.health.drill_overdue { " " span.badge.overdue { (tr.t("overview.drill_overdue")) } }
            }
            td { (chart(tr, &r.source.name, &r.runs.chart)) }
        }
    }
}

/// Size (bars) and duration (line) of the last runs, oldest on the left,
/// as inline SVG with a text alternative.
fn chart(tr: Tr, source: &str, done: &[(i64, i64)]) -> Markup {
    if done.is_empty() {
        return html! { span.muted { "–" } };
    }
    // in tenths of a pixel, as integers (exact float formatting was a
    // tenth of the overview's time)
    let (w, h) = (1200_i64, 280_i64);
    let max_size = done.iter().map(|b| b.0).max().unwrap_or(1).max(1);
    let max_dur = done.iter().map(|b| b.1).max().unwrap_or(1).max(1);
    // bars of a fixed width: a source with few runs shows them at the left
    let step = w / (done.len() as i64).clamp(12, 30);
    let mut bars = String::with_capacity(done.len() * 24);
    let mut line = String::with_capacity(done.len() * 10);
    for (i, &(size, secs)) in done.iter().enumerate() {
        use std::fmt::Write;
        let x = i as i64 * step;
        let bh = ((size.max(0) as i128 * (h - 20) as i128 / max_size as i128) as i64).max(10);
        let _ = write!(bars, "M{x} {h}h{}v-{bh}h-{}z", step - 10, step - 10);
        let dy = h - secs.max(0) * (h - 20) / max_dur - 10;
        if !line.is_empty() {
            line.push(' ');
        }
        let _ = write!(line, "{},{dy}", x + step / 2);
    }
    let label = tr.f(
        "overview.chart",
        &[("count", &done.len().to_string()), ("source", source)],
    );
    html! {
        svg.spark viewBox={ "0 0 " (w) " " (h) } width=(w / 10) height=(h / 10) role="img" aria-label=(label) {
            title { (label) }
            path.size d=(bars) {}
            @if done.len() > 1 { polyline.dur points=(line) {} }
        }
    }
}

// ----- the backup list -----

#[derive(Deserialize, Default)]
pub struct ListQuery {
    tenant: Option<String>,
    source: Option<String>,
    status: Option<String>,
    kind: Option<String>,
    before: Option<String>,
}

const STATUSES: &[&str] = &["queued", "running", "done", "failed", "deleting", "deleted"];
const KINDS: &[&str] = &["scheduled", "on_demand"];

pub async fn backups(
    State(s): State<AppState>,
    signed: Signed,
    Query(q): Query<ListQuery>,
) -> Page {
    let tr = signed.tr;
    let empty = |v: &Option<String>| v.as_deref().filter(|x| !x.is_empty()).map(str::to_string);
    let super::Scope {
        shown: tenants,
        all: all_tenants,
        query: tq,
    } = super::scope(&s, &signed, q.tenant.as_deref())
        .await
        .or_page(tr)?;
    let status = empty(&q.status).filter(|x| STATUSES.contains(&x.as_str()));
    let kind = empty(&q.kind).filter(|x| KINDS.contains(&x.as_str()));
    let source = empty(&q.source);
    // one tenant at a time here: an admin without a choice sees the first
    let Some(t) = tenants.first() else {
        let content = html! { p.empty { (tr.t("backups.none")) } };
        return Ok(
            layout::page(&signed, Nav::Backups, tr.t("backups.title"), &tq, content)
                .into_response(),
        );
    };
    let sources = s.catalog.sources(&t.id).await.or_page(tr)?;
    let filter = BackupFilter {
        status: status.clone(),
        source_id: source.clone(),
        kind: kind.clone(),
    };
    let page = s
        .catalog
        .backups_page(&t.id, &filter, 50, empty(&q.before).as_deref())
        .await
        .or_page(tr)?;
    let names: std::collections::HashMap<&str, &str> = sources
        .iter()
        .map(|x| (x.id.as_str(), x.name.as_str()))
        .collect();
    let now = Timestamp::now();
    // the filters as a query string, for the paging links
    let mut keep = vec![format!("tenant={}", session::encode(&t.id))];
    for (k, v) in [("source", &source), ("status", &status), ("kind", &kind)] {
        if let Some(v) = v {
            keep.push(format!("{k}={}", session::encode(v)));
        }
    }
    let keep = keep.join("&");
    let content = html! {
        form.filters method="get" action="/ui/backups" aria-label=(tr.t("backups.filter")) {
            @if signed.is_admin() {
                label for="f-tenant" { (tr.t("nav.tenant")) }
                select #f-tenant name="tenant" {
                    @for x in &all_tenants {
                        option value=(x.id) selected[x.id == t.id] { (x.name) }
                    }
                }
            }
            label for="f-source" { (tr.t("backups.source")) }
            select #f-source name="source" {
                option value="" { (tr.t("backups.all")) }
                @for x in &sources {
                    option value=(x.id) selected[source.as_deref() == Some(x.id.as_str())] { (x.name) }
                }
            }
            label for="f-status" { (tr.t("backups.status")) }
            select #f-status name="status" {
                option value="" { (tr.t("backups.all")) }
                @for x in STATUSES {
                    option value=(x) selected[status.as_deref() == Some(*x)] { (tr.t(&format!("status.{x}"))) }
                }
            }
            label for="f-kind" { (tr.t("backups.kind")) }
            select #f-kind name="kind" {
                option value="" { (tr.t("backups.all")) }
                @for x in KINDS {
                    option value=(x) selected[kind.as_deref() == Some(*x)] { (tr.t(&format!("kind.{x}"))) }
                }
            }
            button type="submit" { (tr.t("backups.apply")) }
        }
        @if page.items.is_empty() {
            p.empty { (tr.t("backups.none")) }
        } @else {
            div.table-wrap tabindex="0" role="region" aria-label=(tr.t("app.table")) {
                table.list aria-label=(tr.t("backups.list")) {
                    thead { tr {
                        th scope="col" { (tr.t("backups.started")) }
                        th scope="col" { (tr.t("backups.source")) }
                        th scope="col" { (tr.t("backups.status")) }
                        th scope="col" { (tr.t("backups.kind")) }
                        th scope="col" .num { (tr.t("backups.duration")) }
                        th scope="col" .num { (tr.t("backups.size")) }
                        th scope="col" .num { (tr.t("backups.added")) }
                        th scope="col" { (tr.t("backups.requested_by")) }
                    } }
                    tbody {
                        @for b in &page.items {
                            tr class=[(b.status == "failed" || b.damaged_at.is_some()).then_some("attention")] {
                                td.when { a href={ "/ui/backups/" (b.id) } { time datetime=(b.queued_at) title=(tr.time(&b.queued_at)) { (tr.time(b.started_at.as_deref().unwrap_or(&b.queued_at))) } } br; span.sub { (tr.age(&b.queued_at, now)) } }
                                td { (names.get(b.source_id.as_str()).copied().unwrap_or(&b.source_name)) }
                                td { (status_badge(tr, &b.status)) @if b.damaged_at.is_some() { " " (status_badge(tr, "damaged")) } }
                                td { (tr.t(&format!("kind.{}", b.kind))) }
                                td.num { @if let Some(d) = run_seconds(b.started_at.as_deref(), b.finished_at.as_deref()) { (tr.duration(d)) } @else { "–" } }
                                td.num { @if let Some(x) = b.size { (tr.bytes(x)) } @else { "–" } }
                                td.num { @if let Some(x) = b.bytes_added { (tr.bytes(x)) } @else { "–" } }
                                td { @if b.requested_by.is_none() { span.muted { (tr.t("backups.system")) } } @else { (b.requested_by_label) } }
                            }
                        }
                    }
                }
            }
            nav.pager aria-label="pages" {
                @if q.before.as_deref().is_some_and(|x| !x.is_empty()) {
                    a href={ "/ui/backups?" (keep) } { "« " (tr.t("backups.newest")) }
                }
                @if let Some(next) = &page.next_before {
                    a href={ "/ui/backups?" (keep) "&before=" (session::encode(next)) } rel="next" { (tr.t("backups.older")) " »" }
                }
            }
        }
    };
    Ok(layout::page(&signed, Nav::Backups, tr.t("backups.title"), &tq, content).into_response())
}

// ----- one backup -----

pub async fn backup(State(s): State<AppState>, signed: Signed, Path(id): Path<String>) -> Page {
    let tr = signed.tr;
    let b = signed.seeing("backup", s.catalog.backup(&id).await)?;
    let source_kind = s
        .catalog
        .source_any(&b.source_id)
        .await
        .ok()
        .map(|x| x.kind);
    let audit = s.catalog.backup_audit(&b.id, 100).await.or_page(tr)?;
    let tq = if signed.is_admin() {
        format!("?tenant={}", session::encode(&b.tenant_id))
    } else {
        String::new()
    };
    let now = Timestamp::now();
    let short =
        b.id.chars()
            .rev()
            .take(8)
            .collect::<String>()
            .chars()
            .rev()
            .collect::<String>();
    let title = tr.f("detail.title", &[("id", &short)]);
    let content = html! {
        p.lead {
            (status_badge(tr, &b.status)) " "
            @if b.damaged_at.is_some() { (status_badge(tr, "damaged")) " " }
            a href={ "/ui/backups?tenant=" (session::encode(&b.tenant_id)) "&source=" (session::encode(&b.source_id)) } { (b.source_name) }
            " · " (tr.t(&format!("kind.{}", b.kind)))
        }
        @if signed.may_act(&b.tenant_id) && (b.status == "done" || b.status == "failed") {
            nav.actions aria-label=(tr.t("action.actions")) {
                @if b.status == "done" {
                    form.inline method="get" action={ "/ui/backups/" (b.id) "/file" } {
                        label for="format" { (tr.t("action.format")) }
                        select #format name="format" {
                            @for f in formats(source_kind.as_deref()) { option value=(f) { (f) } }
                        }
                        button type="submit" { (tr.t("action.download")) }
                    }
                    a.button href={ "/ui/backups/" (b.id) "/restore" } { (tr.t("action.restore")) }
                }
                @if b.status == "failed" {
                    a.button href={ "/ui/backups/" (b.id) "/retry" } { (tr.t("action.retry")) }
                }
                @if b.status == "done" || b.status == "failed" {
                    a.button.danger href={ "/ui/backups/" (b.id) "/delete" } { (tr.t("action.delete")) }
                }
            }
        }
        @if let Some(when) = &b.damaged_at {
            p.alert role="alert" {
                (tr.f("detail.damaged", &[("time", &tr.time(when))]))
                @if let Some(d) = &b.damage { br; (d) }
            }
        }
        @if b.status == "running" || b.status == "queued" {
            p.live data-poll={ "/ui/backups/" (b.id) "/progress" } aria-live="polite" {
                (live_text(tr, &b.status, b.started_at.as_deref(), b.progress.as_ref()))
            }
        }
        div.grid {
            section aria-labelledby="h-timeline" {
                h2 #h-timeline { (tr.t("detail.timeline")) }
                ol.timeline {
                    li { strong { (tr.t("detail.queued")) } " " time datetime=(b.queued_at) { (tr.time(&b.queued_at)) } }
                    @if let Some(t) = &b.started_at { li { strong { (tr.t("detail.started")) } " " time datetime=(t) { (tr.time(t)) } } }
                    @if let Some(t) = &b.finished_at {
                        li {
                            strong { (tr.t("detail.finished")) } " " time datetime=(t) { (tr.time(t)) }
                            @if let Some(d) = run_seconds(b.started_at.as_deref(), b.finished_at.as_deref()) { " (" (tr.duration(d)) ")" }
                            " · " (tr.age(t, now))
                        }
                    }
                    li { strong { (tr.t("detail.attempts")) } " " (tr.f("detail.attempts_of", &[("n", &b.attempts.to_string()), ("max", &b.max_attempts.to_string())])) }
                }
            }
            section aria-labelledby="h-sizes" {
                h2 #h-sizes { (tr.t("detail.sizes")) }
                dl {
                    dt { (tr.t("detail.size")) } dd { @if let Some(x) = b.size { (tr.bytes(x)) " (" (tr.int(x)) " B)" } @else { "–" } }
                    dt { (tr.t("detail.added")) } dd { @if let Some(x) = b.bytes_added { (tr.bytes(x)) } @else { "–" } }
                    dt { (tr.t("detail.snapshot")) } dd { code.wrap { (b.snapshot_id.as_deref().unwrap_or("–")) } }
                    dt { (tr.t("detail.repository")) } dd { code.wrap { (b.repository) } }
                }
            }
        }
        @if let Some(counts) = &b.counts { (counts_table(tr, counts)) }
        @if !b.warnings.is_empty() {
            section aria-labelledby="h-warn" {
                h2 #h-warn { (tr.t("detail.warnings")) }
                ul.warnings { @for w in &b.warnings { li { (w) } } }
            }
        }
        @if let Some(e) = &b.error {
            section aria-labelledby="h-error" {
                h2 #h-error { (tr.t("detail.error")) }
                pre.error { (e) }
            }
        }
        section aria-labelledby="h-audit" {
            h2 #h-audit { (tr.t("detail.audit")) }
            div.table-wrap tabindex="0" role="region" aria-label=(tr.t("app.table")) {
                table.list {
                    thead { tr {
                        th scope="col" { (tr.t("detail.time")) }
                        th scope="col" { (tr.t("detail.event")) }
                        th scope="col" { (tr.t("detail.actor")) }
                    } }
                    tbody {
                        @for a in &audit {
                            tr {
                                td { time datetime=(a.time) { (tr.time(&a.time)) } }
                                td { code { (a.event) } }
                                td { (a.actor.label) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::page(&signed, Nav::Backups, &title, &tq, content).into_response())
}

/// A running job's progress as one line: bytes, files, throughput and
/// time so far (or that it waits for a worker).
pub fn live_text(
    tr: Tr,
    status: &str,
    started_at: Option<&str>,
    progress: Option<&serde_json::Value>,
) -> String {
    let Some(started) = started_at.filter(|_| status == "running") else {
        return tr.t("detail.waiting").to_string();
    };
    let p = progress.cloned().unwrap_or_default();
    let bytes = p["bytes"].as_i64().unwrap_or(0);
    let files = p["files"].as_i64().unwrap_or(0);
    let at = p["at"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| Timestamp::now().to_string());
    let elapsed = secs_between(started, &at).unwrap_or(0).max(0);
    let rate = if elapsed > 0 { bytes / elapsed } else { bytes };
    tr.f(
        if files > 0 {
            "detail.live"
        } else {
            "detail.live_stream"
        },
        &[
            ("bytes", &tr.bytes(bytes)),
            ("files", &tr.int(files)),
            ("rate", &tr.bytes(rate)),
            ("elapsed", &tr.duration(elapsed)),
        ],
    )
}

pub async fn progress(State(s): State<AppState>, signed: Signed, Path(id): Path<String>) -> Page {
    let b = s.catalog.backup(&id).await.or_page(signed.tr)?;
    Ok(live_state(
        &signed,
        &b.tenant_id,
        &b.status,
        b.started_at.as_deref(),
        b.progress.as_ref(),
    ))
}

/// A run's state for the page's script: `{"status", "text", "progress"}`
/// (the text already in the page's language; the script sets it as text);
/// a bare 404 for a run of a tenant this user may not see.
pub(super) fn live_state(
    signed: &Signed,
    tenant_id: &str,
    status: &str,
    started_at: Option<&str>,
    progress: Option<&serde_json::Value>,
) -> Response {
    if !signed.may_see(tenant_id) {
        return StatusCode::NOT_FOUND.into_response();
    }
    axum::Json(serde_json::json!({
        "status": status,
        "text": live_text(signed.tr, status, started_at, progress),
        "progress": progress,
    }))
    .into_response()
}

/// The download formats offered for a backup of a source of `kind`
/// (the server still refuses one that does not fit the snapshot).
fn formats(kind: Option<&str>) -> Vec<&'static str> {
    match kind {
        Some("postgres") | Some("mysql") => vec!["zip", "sql.gz", "tar.zst"],
        Some("jsonl") => vec!["jsonl.gz", "zip", "tar.zst"],
        Some("sqlite") => vec!["zip", "tar.zst"],
        _ => vec!["tar.zst", "zip"],
    }
}

/// The manifest's counts: per-table rows, or any flat set of counters.
fn counts_table(tr: Tr, counts: &serde_json::Value) -> Markup {
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut walk = |prefix: &str, v: &serde_json::Value| match v {
        serde_json::Value::Number(n) => {
            let text = n
                .as_i64()
                .map(|i| tr.int(i))
                .unwrap_or_else(|| n.to_string());
            rows.push((prefix.to_string(), text));
        }
        serde_json::Value::String(s) => rows.push((prefix.to_string(), s.clone())),
        other => rows.push((prefix.to_string(), other.to_string())),
    };
    let per_table: Vec<(String, String)> = counts
        .get("per_table")
        .and_then(|t| t.as_array())
        .map(|a| {
            a.iter()
                .map(|t| {
                    let rows = t["rows"].as_i64().map(|n| tr.int(n)).unwrap_or_default();
                    (t["table"].as_str().unwrap_or("").to_string(), rows)
                })
                .collect()
        })
        .unwrap_or_default();
    if let Some(obj) = counts.as_object() {
        for (k, v) in obj.iter().filter(|(k, _)| *k != "per_table") {
            match v.as_object() {
                Some(inner) => {
                    for (k2, v2) in inner {
                        walk(&format!("{k} · {k2}"), v2);
                    }
                }
                None => walk(k, v),
            }
        }
    }
    if rows.is_empty() {
        return html! {};
    }
    html! {
        section aria-labelledby="h-counts" {
            h2 #h-counts { (tr.t("detail.counts")) }
            div.table-wrap tabindex="0" role="region" aria-label=(tr.t("app.table")) {
                table.list {
                    thead { tr { th scope="col" { (tr.t("detail.item")) } th scope="col" .num { (tr.t("detail.count")) } } }
                    tbody { @for (k, v) in &rows { tr { td { (k) } td.num { (v) } } } }
                }
            }
            @if !per_table.is_empty() {
                h3 { (tr.t("detail.tables")) }
                div.table-wrap tabindex="0" role="region" aria-label=(tr.t("app.table")) {
                    table.list #per-table {
                        thead { tr { th scope="col" { (tr.t("detail.table")) } th scope="col" .num { (tr.t("detail.rows")) } } }
                        tbody { @for (t, n) in &per_table { tr { td { (t) } td.num { (n) } } } }
                    }
                }
            }
        }
    }
}
