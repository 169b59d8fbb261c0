use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use holdfast_catalog::tokens::{Role, Token};
use serde::Deserialize;

use crate::AppState;
use crate::auth::Caller;
use crate::i18n::Msg;
use crate::problem::{ApiError, ApiJson};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    role: String,
    tenant: Option<String>,
    #[serde(default)]
    label: String,
}

/// `POST /api/v1/tokens` (admin): 201 with the token and, once only, its
/// secret.
pub async fn create(
    State(s): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewToken>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    caller.admin()?;
    let role = Role::parse(&body.role)?;
    let tenant = match &body.tenant {
        Some(t) => Some(
            s.catalog
                .tenant(t)
                .await
                .map_err(|_| {
                    ApiError::invalid(
                        "tenant",
                        Msg::new("msg.invalid.no_tenant").with("name", format!("{t:?}")),
                    )
                })?
                .id,
        ),
        None => None,
    };
    let (token, secret) = s
        .catalog
        .create_token(role, tenant.as_deref(), &body.label, &caller.actor())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "token": token, "secret": secret })),
    ))
}

pub async fn list(
    State(s): State<AppState>,
    caller: Caller,
) -> Result<Json<super::Items<Token>>, ApiError> {
    caller.admin()?;
    let items: Vec<Token> = s.catalog.tokens(None).await?;
    Ok(Json(super::Items { items }))
}

pub async fn revoke(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Token>, ApiError> {
    caller.admin()?;
    Ok(Json(s.catalog.revoke_token(&id, &caller.actor()).await?))
}
