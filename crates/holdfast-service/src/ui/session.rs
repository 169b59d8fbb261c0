//! Who is looking at a page: the language (a cookie the switcher sets,
//! else `Accept-Language`) and, for every page but sign-in, the signed-in
//! session (an HttpOnly, SameSite=Strict cookie; see
//! `holdfast_catalog::sessions`).
//!
//! Invariants: a state-changing request (every POST) reaches its handler
//! only as a [`Posted`] form — the session's CSRF secret in the form,
//! compared in constant time, and an `Origin`, when the browser sends one,
//! naming this server — checked before it touches anything. The cookie
//! carries only a random secret; the catalog keeps its hash.

use axum::Form;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use holdfast_catalog::CatalogError;
use holdfast_catalog::backups::Backup;
use holdfast_catalog::restores::Restore;
use holdfast_catalog::sessions::Session;
use holdfast_catalog::sources::Source;
use holdfast_catalog::tokens::{Role, Token};
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;

use super::OrPage;
use crate::AppState;
use crate::i18n::{Lang, Tr};
use crate::problem::ApiError;

pub const SESSION_COOKIE: &str = "hf_session";
pub const LANG_COOKIE: &str = "hf_lang";

/// A cookie's value from the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Was the request made over TLS (here, or at a proxy in front)?
pub fn secure(state: &AppState, headers: &HeaderMap) -> bool {
    state.config.tls.is_some()
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

/// A `Set-Cookie` value; `max_age` 0 deletes the cookie.
pub fn set_cookie(name: &str, value: &str, max_age: i64, secure: bool) -> HeaderValue {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}");
    if secure {
        c.push_str("; Secure");
    }
    HeaderValue::from_str(&c).expect("cookie values are URL-safe base64 or fixed words")
}

/// The visitor's language.
pub fn lang(headers: &HeaderMap) -> Lang {
    cookie(headers, LANG_COOKIE)
        .and_then(Lang::parse)
        .unwrap_or_else(|| {
            Lang::from_accept(
                headers
                    .get(header::ACCEPT_LANGUAGE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or(""),
            )
        })
}

/// Any visitor: the language only.
pub struct Visitor {
    pub tr: Tr,
}

impl FromRequestParts<AppState> for Visitor {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Self::Rejection> {
        Ok(Visitor {
            tr: Tr(lang(&parts.headers)),
        })
    }
}

/// A signed-in user: the session and the token it stands for.
pub struct Signed {
    pub tr: Tr,
    pub token: Token,
    pub session: Session,
    /// The request's path and query, to come back to after sign-in.
    pub here: String,
}

/// No (live) session: to the sign-in page, then back here.
pub struct SignIn(String);

impl IntoResponse for SignIn {
    fn into_response(self) -> Response {
        Redirect::to(&format!("/ui/signin?next={}", encode(&self.0))).into_response()
    }
}

/// Percent-encode a local path for a query value.
pub fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Where to go after sign-in or a language switch: only a path of this
/// site (never `//host` or a scheme: no open redirect).
pub fn local_path(next: Option<&str>) -> String {
    match next {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.contains('\\')
                && !p.chars().any(char::is_control) =>
        {
            p.to_string()
        }
        _ => "/".into(),
    }
}

impl FromRequestParts<AppState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let here = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        let Some(secret) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(SignIn(here).into_response());
        };
        match state.catalog.session(secret).await {
            Ok(Some((session, token))) => {
                parts.extensions.insert(CsrfSecret(session.csrf.clone()));
                Ok(Signed {
                    tr: Tr(lang(&parts.headers)),
                    token,
                    session,
                    here,
                })
            }
            Ok(None) => Err(SignIn(here).into_response()),
            Err(e) => Err(super::error_page(Tr(lang(&parts.headers)), &e.into())),
        }
    }
}

impl Signed {
    pub fn is_admin(&self) -> bool {
        self.token.role == Role::Admin
    }

    /// May act (run, restore, delete) on `tenant_id`: an admin, or an
    /// operator of that tenant. Viewers see, never act.
    pub fn may_act(&self, tenant_id: &str) -> bool {
        self.is_admin()
            || (self.token.role == Role::Operator
                && self.token.tenant_id.as_deref() == Some(tenant_id))
    }

    /// May see `tenant_id` at all.
    pub fn may_see(&self, tenant_id: &str) -> bool {
        self.is_admin() || self.token.tenant_id.as_deref() == Some(tenant_id)
    }

    /// May act on a `what` of `tenant_id`: not found when it may not even
    /// see it, forbidden when it may only look.
    pub fn acting_on(&self, tenant_id: &str, what: &'static str) -> Result<(), ApiError> {
        if !self.may_see(tenant_id) {
            return Err(ApiError::NotFound(what));
        }
        if !self.may_act(tenant_id) {
            return Err(ApiError::Forbidden("viewer".into()));
        }
        Ok(())
    }

    /// Only an admin goes on; anyone else gets a 403 page.
    pub fn admin_only(&self) -> Result<(), Response> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(super::error_page(
                self.tr,
                &ApiError::Forbidden("admin".into()),
            ))
        }
    }

    /// What was `found`, when this user may see it; another tenant's `what`
    /// is not found, as in the API.
    pub fn seeing<T: Owned>(
        &self,
        what: &'static str,
        found: Result<T, CatalogError>,
    ) -> Result<T, Response> {
        let x = found.or_page(self.tr)?;
        if !self.may_see(x.tenant_id()) {
            return Err(super::error_page(self.tr, &ApiError::NotFound(what)));
        }
        Ok(x)
    }

    /// What was `found`, when this user may act on it (see
    /// [`Signed::acting_on`]).
    pub fn acting<T: Owned>(
        &self,
        what: &'static str,
        found: Result<T, CatalogError>,
    ) -> Result<T, Response> {
        let x = found.or_page(self.tr)?;
        self.acting_on(x.tenant_id(), what).or_page(self.tr)?;
        Ok(x)
    }
}

/// A form with the session's CSRF secret in its `csrf` field.
pub trait CsrfField {
    fn csrf(&self) -> &str;
}

/// The signed-in session's CSRF secret, left in the request by [`Signed`]
/// for [`Posted`].
#[derive(Clone)]
struct CsrfSecret(String);

/// A form posted by a signed-in user: its CSRF secret and the request's
/// origin are checked before the handler runs, and a forged form is a 403
/// page. It follows [`Signed`] among a handler's arguments (it checks
/// against the session `Signed` found); without one it is refused.
pub struct Posted<F>(pub F);

impl<F> FromRequest<AppState> for Posted<F>
where
    F: DeserializeOwned + CsrfField,
{
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let headers = req.headers().clone();
        let secret = req.extensions().get::<CsrfSecret>().cloned();
        let Form(f) = Form::<F>::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        match secret {
            Some(CsrfSecret(s))
                if same_origin(&headers) && bool::from(f.csrf().as_bytes().ct_eq(s.as_bytes())) =>
            {
                Ok(Posted(f))
            }
            _ => Err(super::forged(Tr(lang(&headers)))),
        }
    }
}

/// What belongs to one tenant: whose it is decides who sees it.
pub trait Owned {
    fn tenant_id(&self) -> &str;
}

impl Owned for Backup {
    fn tenant_id(&self) -> &str {
        &self.tenant_id
    }
}

impl Owned for Restore {
    fn tenant_id(&self) -> &str {
        &self.tenant_id
    }
}

impl Owned for Source {
    fn tenant_id(&self) -> &str {
        &self.tenant_id
    }
}

/// A browser's `Origin` (sent with every POST) must name the host the
/// request was sent to; a request without one (an old browser, a tool)
/// passes on its CSRF secret alone.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let authority = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .unwrap_or("");
    authority.eq_ignore_ascii_case(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed() {
        assert_eq!(
            local_path(Some("/ui/backups?status=failed")),
            "/ui/backups?status=failed"
        );
        for bad in [
            "//evil.example",
            "https://evil.example",
            "/\\evil",
            "ui",
            "/a\nb",
        ] {
            assert_eq!(local_path(Some(bad)), "/", "{bad}");
        }
        assert_eq!(local_path(None), "/");
    }

    #[test]
    fn cookies_and_origins() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; hf_session=abc; hf_lang=de".parse().unwrap(),
        );
        assert_eq!(cookie(&h, "hf_session"), Some("abc"));
        assert_eq!(lang(&h), Lang::De);
        h.insert(header::HOST, "127.0.0.1:8080".parse().unwrap());
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, "http://127.0.0.1:8080".parse().unwrap());
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, "http://evil.example".parse().unwrap());
        assert!(!same_origin(&h));
        h.insert(header::ORIGIN, "null".parse().unwrap());
        assert!(!same_origin(&h));
        assert_eq!(encode("/ui/b?x=1&y"), "/ui/b%3Fx%3D1%26y");
    }
}
