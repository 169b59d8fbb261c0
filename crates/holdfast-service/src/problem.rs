//! Every API error, and the one place it becomes an HTTP response:
//! `application/problem+json` (RFC 9457) with a stable `code`.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use holdfast_catalog::{CatalogError, Conflict, Needs};
use serde::de::DeserializeOwned;

use crate::i18n::{Lang, Msg, Tr};

/// The words of each variant are [`Msg`]s: the API answers them in English
/// (`Display`), the web UI in the page's language ([`ApiError::render`]).
#[derive(Debug)]
pub enum ApiError {
    Unauthorized,
    Forbidden(Msg),
    /// Also what another tenant's resource looks like.
    NotFound(&'static str),
    Conflict(Msg),
    Invalid {
        field: String,
        message: Msg,
    },
    /// A target outside what the caller may reach (the tenant's policy, or
    /// the server's own files).
    Refused {
        field: String,
        message: Msg,
    },
    /// A tenant's quota reached.
    Quota {
        field: String,
        message: Msg,
    },
    TooLarge(usize),
    UnsupportedMediaType,
    TooManyRequests(u64),
    Unavailable(Msg),
    /// Logged, never shown beyond its English words in the API.
    Internal(String),
}

impl std::error::Error for ApiError {}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.render(Tr(Lang::En)))
    }
}

impl ApiError {
    pub fn invalid(field: &str, message: impl Into<Msg>) -> ApiError {
        ApiError::Invalid {
            field: field.to_string(),
            message: message.into(),
        }
    }

    /// The error in `tr`'s language. Field and resource names come from
    /// the catalog's `field.*` and `what.*` (the English ones spell them as
    /// the API does), or stay as they are where it has none.
    pub fn render(&self, tr: Tr) -> String {
        let name = |table: &str, raw: &str| -> String {
            tr.get(&format!("{table}.{raw}")).unwrap_or(raw).to_string()
        };
        let with_field = |key: &str, field: &str, m: &Msg| {
            tr.f(
                key,
                &[("field", &name("field", field)), ("message", &m.render(tr))],
            )
        };
        match self {
            ApiError::Unauthorized => tr.t("problem.unauthorized").to_string(),
            ApiError::Forbidden(m) | ApiError::Conflict(m) | ApiError::Unavailable(m) => {
                m.render(tr)
            }
            ApiError::NotFound(what) => tr.f("problem.not_found", &[("what", &name("what", what))]),
            ApiError::Invalid { field, message } => with_field("problem.invalid", field, message),
            ApiError::Refused { field, message } => with_field("problem.refused", field, message),
            ApiError::Quota { field, message } => with_field("problem.quota", field, message),
            ApiError::TooLarge(n) => tr.f("problem.too_large", &[("bytes", &n.to_string())]),
            ApiError::UnsupportedMediaType => tr.t("problem.media_type").to_string(),
            ApiError::TooManyRequests(secs) => {
                tr.f("problem.too_many", &[("seconds", &secs.to_string())])
            }
            ApiError::Internal(m) if tr.0 == Lang::En => m.clone(),
            ApiError::Internal(_) => tr.t("error.internal").to_string(),
        }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::Invalid { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
            ApiError::Refused { .. } => (StatusCode::FORBIDDEN, "refused_by_policy"),
            ApiError::Quota { .. } => (StatusCode::FORBIDDEN, "quota_exceeded"),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            ApiError::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::TooManyRequests(_) => (StatusCode::TOO_MANY_REQUESTS, "too_many_requests"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl From<crate::policy::Refusal> for ApiError {
    fn from(r: crate::policy::Refusal) -> ApiError {
        ApiError::Refused {
            field: r.field,
            message: r.message,
        }
    }
}

impl From<crate::policy::QuotaExceeded> for ApiError {
    fn from(q: crate::policy::QuotaExceeded) -> ApiError {
        ApiError::Quota {
            field: q.field,
            message: q.message,
        }
    }
}

impl From<CatalogError> for ApiError {
    fn from(e: CatalogError) -> ApiError {
        match e {
            CatalogError::Unavailable(m) => ApiError::Unavailable(Msg::text(m)),
            CatalogError::NotFound { what } => ApiError::NotFound(what),
            CatalogError::Conflict(c) => ApiError::Conflict(conflict(c)),
            CatalogError::Invalid { field, message } => ApiError::Invalid {
                field,
                message: Msg::text(message),
            },
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// A catalog conflict in words of the message catalog.
fn conflict(c: Conflict) -> Msg {
    match c {
        Conflict::NameTaken { what, name } => Msg::new(match what {
            "tenant" => "msg.conflict.tenant_name",
            _ => "msg.conflict.source_name",
        })
        .with("name", format!("{name:?}")),
        Conflict::State { id, status, needs } => Msg::new(match needs {
            Needs::Failed => "msg.conflict.retry",
            Needs::Finished => "msg.conflict.delete",
            Needs::Succeeded => "msg.conflict.restore",
        })
        .with("id", id)
        .with("status", status),
        // verifications are the one kind of job held to one at a time
        Conflict::Pending { id, status, .. } => Msg::new("msg.conflict.pending_verification")
            .with("id", id)
            .with("status", status),
        // a run's lease lost, a copy's destination, a newer schema: words
        // for operators at a console, not for a page
        other => Msg::text(other.to_string()),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let mut body = serde_json::json!({
            "type": format!("https://holdfast.invalid/problems/{code}"),
            "title": status.canonical_reason().unwrap_or(""),
            "status": status.as_u16(),
            "code": code,
            "detail": self.to_string(),
        });
        if let ApiError::Invalid { field, .. }
        | ApiError::Refused { field, .. }
        | ApiError::Quota { field, .. } = &self
        {
            body["field"] = serde_json::Value::String(field.clone());
        }
        let mut resp = (status, body.to_string()).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/problem+json"),
        );
        if let ApiError::TooManyRequests(secs) = &self
            && let Ok(v) = header::HeaderValue::from_str(&secs.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}

/// Every error response is a problem: what axum or hyper answer on their
/// own — 404 of an unknown path, 405, 413 of the body limit, 415, 400 — is
/// rewritten here (headers such as `Allow` kept), so that a client sees one
/// format whatever failed.
pub async fn problems_only(resp: Response) -> Response {
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let is_problem = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if is_problem {
        return resp;
    }
    let (code, detail) = match status.as_u16() {
        400 => ("bad_request", "the request could not be read"),
        404 => ("not_found", "resource not found"),
        405 => (
            "method_not_allowed",
            "this method is not allowed on this resource",
        ),
        408 => ("request_timeout", "the request took too long to arrive"),
        413 => ("body_too_large", "the request body is too large"),
        415 => (
            "unsupported_media_type",
            "send the body as JSON, with Content-Type: application/json",
        ),
        _ if status.is_server_error() => ("internal", "the server failed"),
        _ => ("error", status.canonical_reason().unwrap_or("error")),
    };
    let body = serde_json::json!({
        "type": format!("https://holdfast.invalid/problems/{code}"),
        "title": status.canonical_reason().unwrap_or(""),
        "status": status.as_u16(),
        "code": code,
        "detail": detail,
    });
    let (mut parts, _) = resp.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/problem+json"),
    );
    Response::from_parts(parts, axum::body::Body::from(body.to_string()))
}

/// `Json<T>` whose rejections are problems: 413 for a body over the limit,
/// 422 naming the field for anything that does not parse.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(r) => Err(json_rejection(r)),
        }
    }
}

/// A JSON body that may be left out: empty (or only whitespace) means
/// every default; anything else must parse, or 422 names the field.
pub fn optional_json<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        let text = e.to_string();
        let field = text.split('`').nth(1).unwrap_or("body").to_string();
        ApiError::invalid(&field, text)
    })
}

fn json_rejection(r: JsonRejection) -> ApiError {
    if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::TooLarge(crate::MAX_BODY_DEFAULT);
    }
    if matches!(r, JsonRejection::MissingJsonContentType(_)) {
        return ApiError::UnsupportedMediaType;
    }
    let text = r.body_text();
    ApiError::Invalid {
        field: field_in(&text).unwrap_or_else(|| "body".to_string()),
        message: Msg::text(text),
    }
}

pub fn query_rejection(r: QueryRejection) -> ApiError {
    let text = r.body_text();
    ApiError::Invalid {
        field: field_in(&text).unwrap_or_else(|| "query".to_string()),
        message: Msg::text(text),
    }
}

/// Where a serde message names the field: a path before the error
/// ("…target type: kind: invalid type…"), or in backquotes ("missing
/// field `name`", "unknown field `nmae`").
fn field_in(message: &str) -> Option<String> {
    let after = message
        .split_once("target type: ")
        .map(|(_, a)| a)
        .unwrap_or(message);
    if let Some((path, _)) = after.split_once(": ")
        && !path.is_empty()
        && !path.contains(' ')
    {
        return Some(path.to_string());
    }
    let start = after.find('`')?;
    let rest = &after[start + 1..];
    let end = rest.find('`')?;
    Some(rest[..end].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_come_out_of_serde_messages() {
        assert_eq!(
            field_in(
                "Failed to deserialize the JSON body into the target type: missing field `name` at line 1"
            ),
            Some("name".into())
        );
        assert_eq!(
            field_in(
                "Failed to deserialize the JSON body into the target type: kind: invalid type: integer"
            ),
            Some("kind".into())
        );
    }

    #[test]
    fn the_api_answers_in_english_and_a_page_shows_the_same_error_in_german() {
        let policy = crate::policy::TenantPolicy {
            directory_roots: vec!["/srv/a".into()],
            ..Default::default()
        };
        let e: ApiError = crate::policy::check_source(
            &crate::policy::HostFacts::default(),
            &policy,
            crate::policy::Definer::Operator,
            "directory",
            "/etc",
        )
        .unwrap_err()
        .into();
        assert_eq!(
            e.to_string(),
            "refused by policy: target: /etc is not beneath a directory this tenant may use (/srv/a)"
        );
        assert_eq!(
            e.render(Tr(Lang::De)),
            "von der Richtlinie abgelehnt: Ziel: /etc liegt unter keinem Verzeichnis, das dieser \
             Mandant nutzen darf (/srv/a)"
        );
        let c: ApiError = CatalogError::Conflict(Conflict::NameTaken {
            what: "source",
            name: "db".into(),
        })
        .into();
        assert_eq!(c.to_string(), "a source named \"db\" exists");
        assert_eq!(
            c.render(Tr(Lang::De)),
            "eine Quelle namens \"db\" gibt es schon"
        );
        let n = ApiError::NotFound("backup");
        assert_eq!(n.to_string(), "backup not found");
        assert_eq!(n.render(Tr(Lang::De)), "Sicherung nicht gefunden");
        // words from below the service show as they are
        let raw = ApiError::invalid("options", "expected `,` at line 1");
        assert_eq!(raw.to_string(), "invalid options: expected `,` at line 1");
        assert_eq!(
            raw.render(Tr(Lang::De)),
            "ungültig: Optionen: expected `,` at line 1"
        );
    }
}
