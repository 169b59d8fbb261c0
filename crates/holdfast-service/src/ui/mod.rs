//! The admin web UI, served by `holdfast serve` at `/`: server-rendered
//! HTML (maud) from the catalog, in English and German, with one small
//! script for live progress and no request to any other origin.
//!
//! - `session`: the language and the signed-in session (cookie, CSRF).
//! - `layout`: the page shell (navigation, header, security headers).
//! - `pages`: one function per page.
//!
//! Invariants: every value from the catalog reaches the page through
//! maud's escaping (never `PreEscaped` of catalog text); every POST checks
//! the session's CSRF secret and the request's origin before any change;
//! what a page offers follows the same roles as the API (a viewer gets no
//! action, and the handler refuses it anyway); every response carries a
//! Content-Security-Policy without inline script and `frame-ancestors
//! 'none'`.

// A handler that stops early answers with a whole `Response` (the error
// side of [`Page`]), once per request: boxing it would buy nothing.
#![allow(clippy::result_large_err)]

mod actions;
mod admin;
mod layout;
mod pages;
pub mod session;
mod sources;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::AppState;
use crate::i18n::Tr;
use crate::problem::ApiError;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::overview))
        .route("/ui/signin", get(pages::signin_form).post(pages::signin))
        .route("/ui/signout", post(pages::signout))
        .route("/ui/lang/{code}", get(pages::set_lang))
        .route("/ui/backups", get(pages::backups))
        .route("/ui/backups/{id}", get(pages::backup))
        .route("/ui/backups/{id}/progress", get(pages::progress))
        .route(
            "/ui/sources/{id}/run",
            get(actions::run_form).post(actions::run),
        )
        .route(
            "/ui/backups/{id}/retry",
            actions::on_backup(actions::Verb::Retry),
        )
        .route(
            "/ui/backups/{id}/delete",
            actions::on_backup(actions::Verb::Delete),
        )
        .route(
            "/ui/backups/{id}/restore",
            get(actions::restore_form).post(actions::restore),
        )
        .route("/ui/backups/{id}/file", get(actions::file))
        .route("/ui/restores/{id}", get(actions::restore_status))
        .route("/ui/restores/{id}/progress", get(actions::restore_progress))
        .route("/ui/sources", get(sources::list))
        .route(
            "/ui/sources/new",
            get(sources::new_form).post(sources::create),
        )
        .route(
            "/ui/sources/{id}/edit",
            get(sources::edit_form).post(sources::edit),
        )
        .route(
            "/ui/sources/{id}/delete",
            get(sources::delete_form).post(sources::delete),
        )
        .route("/ui/schedule-preview", get(sources::schedule_preview))
        .route("/ui/audit", get(admin::audit))
        .route(
            "/ui/tokens",
            get(admin::tokens_page).post(admin::token_create),
        )
        .route(
            "/ui/tokens/{id}/revoke",
            get(admin::token_revoke_form).post(admin::token_revoke),
        )
        .route(
            "/ui/tenants",
            get(admin::tenants_page).post(admin::tenant_create),
        )
        .route("/ui/tenants/{id}", get(admin::tenant_page))
        .route("/ui/tenants/{id}/policy", post(admin::tenant_policy))
        .route("/ui/static/{file}", get(asset))
        .layer(axum::middleware::map_response(security_headers))
}

const CSS: &str = include_str!("../../assets/ui/app.css");
const JS: &str = include_str!("../../assets/ui/app.js");

/// The stylesheet and the script, named with a version so a browser may
/// keep them for a year.
pub fn asset_path(file: &str) -> String {
    format!("/ui/static/{file}?v={}", env!("CARGO_PKG_VERSION"))
}

async fn asset(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "app.css" => (CSS, "text/css; charset=utf-8"),
        "app.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        body,
    )
        .into_response()
}

/// The headers every UI response carries.
async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, k: &'static str, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(
        h,
        "content-security-policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    );
    set(h, "x-content-type-options", "nosniff");
    set(h, "referrer-policy", "same-origin");
    set(h, "x-frame-options", "DENY");
    if !h.contains_key(header::CACHE_CONTROL) {
        set(h, "cache-control", "no-store");
    }
    r
}

/// The tenants a page covers, and for an admin every tenant (its picker).
pub(crate) struct Scope {
    /// A non-admin's own tenant; for an admin the one asked for, or all.
    pub shown: Vec<holdfast_catalog::tenants::Tenant>,
    /// Every tenant, for an admin's picker; empty for everyone else.
    pub all: Vec<holdfast_catalog::tenants::Tenant>,
    /// `?tenant=ID` when one was chosen, to keep the choice in links.
    pub query: String,
}

/// Which tenants a page shows, read once per request.
pub(crate) async fn scope(
    s: &AppState,
    signed: &session::Signed,
    asked: Option<&str>,
) -> Result<Scope, ApiError> {
    if !signed.is_admin() {
        let id = signed.token.tenant_id.clone().unwrap_or_default();
        return Ok(Scope {
            shown: vec![s.catalog.tenant(&id).await?],
            all: Vec::new(),
            query: String::new(),
        });
    }
    let all = s.catalog.tenants().await?;
    match asked.filter(|t| !t.is_empty() && *t != "all") {
        Some(id) => {
            let t = all
                .iter()
                .find(|t| t.id == id)
                .cloned()
                .ok_or(ApiError::NotFound("tenant"))?;
            let query = format!("?tenant={}", session::encode(&t.id));
            Ok(Scope {
                shown: vec![t],
                all,
                query,
            })
        }
        None => Ok(Scope {
            shown: all.clone(),
            all,
            query: String::new(),
        }),
    }
}

/// The API's caller for a signed-in user: the session's token, so that a
/// form's action is the API's own (roles, tenants, policy, audit).
pub(crate) fn caller(s: &session::Signed) -> crate::auth::Caller {
    crate::auth::Caller(s.token.clone())
}

/// A handler's answer: the page, or the page it stopped at (an error, a
/// refused form) — both responses, so that `?` ends a handler early.
pub(crate) type Page = Result<Response, Response>;

/// An error as its page, in the visitor's language, for `?`.
pub(crate) trait OrPage<T> {
    fn or_page(self, tr: Tr) -> Result<T, Response>;
}

impl<T, E: Into<ApiError>> OrPage<T> for Result<T, E> {
    fn or_page(self, tr: Tr) -> Result<T, Response> {
        self.map_err(|e| error_page(tr, &e.into()))
    }
}

/// A form that carries only the session's CSRF secret.
#[derive(serde::Deserialize)]
pub(crate) struct CsrfForm {
    csrf: String,
}

impl session::CsrfField for CsrfForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// A refused form: 403 before anything was touched.
pub(crate) fn forged(tr: Tr) -> Response {
    error_page(tr, &ApiError::Forbidden("csrf".into()))
}

/// After a form: on to `to` (303, so a reload does not post again).
pub(crate) fn see_other(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_string())]).into_response()
}

/// An error as a page, in the visitor's language; the details of a server
/// error go to the log only.
/// A reason as a sentence of its own: its first letter in upper case.
fn sentence(s: String) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => s,
    }
}

pub fn error_page(tr: Tr, e: &ApiError) -> Response {
    let (status, text) = match e {
        ApiError::NotFound(_) => (StatusCode::NOT_FOUND, tr.t("error.not_found").to_string()),
        ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, tr.t("error.forbidden").to_string()),
        // what the API would answer: the reason, which names no secret
        ApiError::Conflict(_)
        | ApiError::Invalid { .. }
        | ApiError::Refused { .. }
        | ApiError::Quota { .. }
        | ApiError::Unavailable(_) => {
            let status = match e {
                ApiError::Conflict(_) => StatusCode::CONFLICT,
                ApiError::Refused { .. } => StatusCode::FORBIDDEN,
                ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            };
            (status, sentence(e.render(tr)))
        }
        _ => {
            crate::worker::log(&format!("ui: {e}"));
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                tr.t("error.internal").to_string(),
            )
        }
    };
    (status, layout::bare(tr, tr.t("error.title"), &text)).into_response()
}
