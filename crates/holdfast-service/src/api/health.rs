use axum::extract::State;
use axum::http::StatusCode;

use crate::AppState;
use crate::i18n::Msg;
use crate::problem::ApiError;

pub async fn healthz() -> &'static str {
    "ok\n"
}

/// How long `/readyz` waits for the catalog: probes time out after a
/// second or a few, and a pool reconnecting to a catalog that is gone would
/// otherwise wait its whole acquire timeout (10 s).
const READY_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Ready when the catalog answers (within [`READY_WAIT`]) and the storage
/// directory is there.
pub async fn readyz(State(s): State<AppState>) -> Result<(StatusCode, &'static str), ApiError> {
    tokio::time::timeout(READY_WAIT, s.catalog.ping())
        .await
        .map_err(|_| {
            ApiError::Unavailable(Msg::text(format!(
                "the catalog did not answer within {} s",
                READY_WAIT.as_secs()
            )))
        })?
        .map_err(|e| ApiError::Unavailable(Msg::text(e.to_string())))?;
    // local storage must be there; object storage is checked by the
    // first request of a job (a readiness probe must not bill requests)
    if let Some(storage) = s.config.storage_dir()
        && !storage.is_dir()
    {
        return Err(ApiError::Unavailable(Msg::text(format!(
            "storage {} is not reachable",
            storage.display()
        ))));
    }
    Ok((StatusCode::OK, "ready\n"))
}

/// `GET /metrics` (admin token): Prometheus' text format.
pub async fn metrics(
    State(s): State<AppState>,
    caller: crate::auth::Caller,
) -> Result<impl axum::response::IntoResponse, ApiError> {
    caller.admin()?;
    let body = crate::metrics::render(&s).await?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    ))
}
