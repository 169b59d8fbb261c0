//! Notification channels over the API: a tenant's (its operators define
//! them, its viewers see them; they get only that tenant's notices) under
//! `/api/v1/tenants/{tenant}/channels`, and the admins' own (every tenant's
//! notices) under `/api/v1/channels`. A channel's URL and secret are
//! written, never read back: answers carry `url_shown` and `has_secret`.
//! Every field is checked before anything is stored or sent: the kind, the
//! events, the settings, and the URL against the tenant's policy
//! (`policy::check_channel`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use holdfast_catalog::notifications::{Channel, ChannelFields, Notification};
use holdfast_catalog::tenants::Tenant;
use holdfast_catalog::tokens::Role;
use serde::Deserialize;

use crate::AppState;
use crate::auth::Caller;
use crate::i18n::Msg;
use crate::notify::message::{EVENTS, KINDS};
use crate::policy::{Definer, TenantPolicy};
use crate::problem::{ApiError, ApiJson};

/// Deliveries listed at most.
const LISTED: i64 = 100;

/// A channel as a request gives it (all optional on PATCH; `secret: null`
/// removes the stored one).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelBody {
    pub name: Option<String>,
    pub kind: Option<String>,
    pub url: Option<String>,
    #[serde(default, with = "double_option")]
    pub secret: Option<Option<String>>,
    pub events: Option<Vec<String>>,
    pub settings: Option<serde_json::Value>,
}

/// `absent` → None, `null` → Some(None), a value → Some(Some(v)).
mod double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<String>>, D::Error> {
        Option::<String>::deserialize(d).map(Some)
    }
}

/// Whose channels: one tenant's, or the admins' own.
enum Owner {
    Tenant(Tenant),
    Global,
}

impl Owner {
    async fn of(
        s: &AppState,
        caller: &Caller,
        tenant: Option<&str>,
        need: Role,
    ) -> Result<Owner, ApiError> {
        match tenant {
            Some(t) => Ok(Owner::Tenant(
                super::tenants::resolve(s, caller, t, need).await?,
            )),
            None => caller.admin().map(|()| Owner::Global),
        }
    }

    fn tenant_id(&self) -> Option<&str> {
        match self {
            Owner::Tenant(t) => Some(&t.id),
            Owner::Global => None,
        }
    }

    /// One of its channels (404 for anyone else's).
    async fn channel(&self, s: &AppState, id: &str) -> Result<Channel, ApiError> {
        let c = s.catalog.channel(id).await?;
        if c.tenant_id.as_deref() != self.tenant_id() {
            return Err(ApiError::NotFound("channel"));
        }
        Ok(c)
    }

    async fn policy(&self, s: &AppState) -> Result<TenantPolicy, ApiError> {
        match self {
            Owner::Tenant(t) => super::tenants::policy_of(s, &t.id).await,
            Owner::Global => Ok(TenantPolicy::default()),
        }
    }
}

fn required<T>(v: Option<T>, field: &str) -> Result<T, ApiError> {
    v.ok_or_else(|| ApiError::invalid(field, Msg::new("msg.invalid.required")))
}

fn invalid(field: &str, text: impl Into<String>) -> ApiError {
    ApiError::invalid(field, Msg::text(text.into()))
}

/// Check a channel's fields (its URL against the policy last: nothing is
/// resolved or reached here).
async fn check(
    s: &AppState,
    owner: &Owner,
    definer: Definer,
    f: &ChannelFields,
) -> Result<(), ApiError> {
    if f.name.trim().is_empty() || f.name.len() > 100 || f.name.chars().any(char::is_control) {
        return Err(invalid(
            "name",
            "1 to 100 characters, no control characters",
        ));
    }
    if !KINDS.contains(&f.kind.as_str()) {
        return Err(invalid("kind", format!("one of {}", KINDS.join(", "))));
    }
    if let Some(e) = f.events.iter().find(|e| !EVENTS.contains(&e.as_str())) {
        return Err(invalid(
            "events",
            format!("{e:?} is not one of {}", EVENTS.join(", ")),
        ));
    }
    if f.secret
        .as_ref()
        .is_some_and(|x| x.len() > 1024 || x.is_empty())
    {
        return Err(invalid("secret", "1 to 1024 characters"));
    }
    let settings = f
        .settings
        .as_object()
        .ok_or_else(|| invalid("settings", "an object"))?;
    let allowed: &[&str] = match f.kind.as_str() {
        "email" => &["from", "to"],
        "healthchecks" => &["source_id"],
        _ => &[],
    };
    if let Some(k) = settings.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(invalid(
            &format!("settings.{k}"),
            format!("not a setting of a {} channel", f.kind),
        ));
    }
    match f.kind.as_str() {
        "email" => {
            let to = settings
                .get("to")
                .and_then(|v| v.as_array())
                .filter(|a| (1..=20).contains(&a.len()))
                .ok_or_else(|| invalid("settings.to", "a list of 1 to 20 addresses"))?;
            for a in to.iter().chain(settings.get("from")) {
                let ok = a
                    .as_str()
                    .is_some_and(|a| a.parse::<lettre::Address>().is_ok());
                if !ok {
                    return Err(invalid("settings", format!("{a} is not an e-mail address")));
                }
            }
        }
        "healthchecks" => {
            let id = settings
                .get("source_id")
                .and_then(|v| v.as_str())
                .ok_or_else(|| invalid("settings.source_id", "the source it pings for"))?;
            match owner {
                Owner::Tenant(t) => {
                    s.catalog.source(&t.id, id).await.map_err(|_| {
                        invalid("settings.source_id", "not a source of this tenant")
                    })?;
                }
                Owner::Global => {
                    s.catalog
                        .source_any(id)
                        .await
                        .map_err(|_| invalid("settings.source_id", "no such source"))?;
                }
            }
        }
        _ => {}
    }
    // the URL's form (422) before the policy's word on its host (403)
    crate::policy::channel_destination(&f.kind, &f.url)
        .map_err(|schemes| invalid("url", format!("a {} URL with a host", schemes.join(" or "))))?;
    let policy = owner.policy(s).await?;
    crate::policy::check_channel(&policy, definer, &f.kind, &f.url)?;
    Ok(())
}

async fn create(
    s: AppState,
    caller: Caller,
    tenant: Option<String>,
    body: ChannelBody,
) -> Result<(StatusCode, Json<Channel>), ApiError> {
    let owner = Owner::of(&s, &caller, tenant.as_deref(), Role::Operator).await?;
    let definer = caller.definer();
    let url = required(body.url, "url")?;
    let f = ChannelFields {
        name: required(body.name, "name")?,
        kind: required(body.kind, "kind")?,
        url_shown: crate::notify::message::shown(&url),
        url,
        secret: body.secret.flatten(),
        events: body.events.unwrap_or_default(),
        settings: body.settings.unwrap_or_else(|| serde_json::json!({})),
        defined_by: definer.as_str().to_string(),
    };
    check(&s, &owner, definer, &f).await?;
    let c = s
        .catalog
        .create_channel(owner.tenant_id(), f, &caller.actor())
        .await?;
    Ok((StatusCode::CREATED, Json(c)))
}

async fn update(
    s: AppState,
    caller: Caller,
    tenant: Option<String>,
    id: String,
    body: ChannelBody,
) -> Result<Json<Channel>, ApiError> {
    let owner = Owner::of(&s, &caller, tenant.as_deref(), Role::Operator).await?;
    let current = owner.channel(&s, &id).await?;
    let definer = caller.definer();
    if body.kind.as_ref().is_some_and(|k| *k != current.kind) {
        return Err(invalid(
            "kind",
            "a channel's kind does not change: make a new one",
        ));
    }
    let opened = s.catalog.open_channel(&id).await?;
    let new_url = body.url.clone();
    let f = ChannelFields {
        name: body.name.unwrap_or(current.name),
        kind: current.kind,
        url_shown: crate::notify::message::shown(new_url.as_deref().unwrap_or(&opened.url)),
        url: new_url.clone().unwrap_or(opened.url),
        secret: match &body.secret {
            Some(s) => s.clone(),
            None => opened.secret,
        },
        events: body.events.unwrap_or(current.events),
        settings: body.settings.unwrap_or(current.settings),
        // a changed URL carries the changer's trust
        defined_by: if new_url.is_some() {
            definer.as_str().to_string()
        } else {
            current.defined_by.clone()
        },
    };
    check(&s, &owner, Definer::parse(&f.defined_by), &f).await?;
    let keep_url = new_url.is_none();
    let keep_secret = body.secret.is_none();
    Ok(Json(
        s.catalog
            .update_channel(&id, f, keep_url, keep_secret, &caller.actor())
            .await?,
    ))
}

async fn test(
    s: AppState,
    caller: Caller,
    tenant: Option<String>,
    id: String,
) -> Result<(StatusCode, Json<Notification>), ApiError> {
    let owner = Owner::of(&s, &caller, tenant.as_deref(), Role::Operator).await?;
    let c = owner.channel(&s, &id).await?;
    let tenant = match &owner {
        Owner::Tenant(t) => Some(crate::notify::message::Named {
            id: t.id.clone(),
            name: t.name.clone(),
        }),
        Owner::Global => None,
    };
    let n = crate::notify::test(&s, &c.id, tenant).await?;
    Ok((StatusCode::ACCEPTED, Json(n)))
}

// ----- the routes: a tenant's channels, and the admins' own -----

pub async fn tenant_list(
    State(s): State<AppState>,
    caller: Caller,
    Path(tenant): Path<String>,
) -> Result<Json<super::Items<Channel>>, ApiError> {
    let owner = Owner::of(&s, &caller, Some(&tenant), Role::Viewer).await?;
    let items = s.catalog.channels(owner.tenant_id()).await?;
    Ok(Json(super::Items { items }))
}

pub async fn tenant_create(
    State(s): State<AppState>,
    caller: Caller,
    Path(tenant): Path<String>,
    ApiJson(body): ApiJson<ChannelBody>,
) -> Result<(StatusCode, Json<Channel>), ApiError> {
    create(s, caller, Some(tenant), body).await
}

pub async fn tenant_get(
    State(s): State<AppState>,
    caller: Caller,
    Path((tenant, id)): Path<(String, String)>,
) -> Result<Json<Channel>, ApiError> {
    let owner = Owner::of(&s, &caller, Some(&tenant), Role::Viewer).await?;
    Ok(Json(owner.channel(&s, &id).await?))
}

pub async fn tenant_update(
    State(s): State<AppState>,
    caller: Caller,
    Path((tenant, id)): Path<(String, String)>,
    ApiJson(body): ApiJson<ChannelBody>,
) -> Result<Json<Channel>, ApiError> {
    update(s, caller, Some(tenant), id, body).await
}

pub async fn tenant_delete(
    State(s): State<AppState>,
    caller: Caller,
    Path((tenant, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let owner = Owner::of(&s, &caller, Some(&tenant), Role::Operator).await?;
    owner.channel(&s, &id).await?;
    s.catalog.delete_channel(&id, &caller.actor()).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn tenant_test(
    State(s): State<AppState>,
    caller: Caller,
    Path((tenant, id)): Path<(String, String)>,
) -> Result<(StatusCode, Json<Notification>), ApiError> {
    test(s, caller, Some(tenant), id).await
}

pub async fn tenant_deliveries(
    State(s): State<AppState>,
    caller: Caller,
    Path((tenant, id)): Path<(String, String)>,
) -> Result<Json<super::Items<Notification>>, ApiError> {
    let owner = Owner::of(&s, &caller, Some(&tenant), Role::Viewer).await?;
    owner.channel(&s, &id).await?;
    let items = s.catalog.notifications(&id, LISTED).await?;
    Ok(Json(super::Items { items }))
}

pub async fn global_list(
    State(s): State<AppState>,
    caller: Caller,
) -> Result<Json<super::Items<Channel>>, ApiError> {
    caller.admin()?;
    let items = s.catalog.channels(None).await?;
    Ok(Json(super::Items { items }))
}

pub async fn global_create(
    State(s): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<ChannelBody>,
) -> Result<(StatusCode, Json<Channel>), ApiError> {
    create(s, caller, None, body).await
}

pub async fn global_get(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Channel>, ApiError> {
    let owner = Owner::of(&s, &caller, None, Role::Admin).await?;
    Ok(Json(owner.channel(&s, &id).await?))
}

pub async fn global_update(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ChannelBody>,
) -> Result<Json<Channel>, ApiError> {
    update(s, caller, None, id, body).await
}

pub async fn global_delete(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let owner = Owner::of(&s, &caller, None, Role::Admin).await?;
    owner.channel(&s, &id).await?;
    s.catalog.delete_channel(&id, &caller.actor()).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn global_test(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Notification>), ApiError> {
    test(s, caller, None, id).await
}

pub async fn global_deliveries(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<super::Items<Notification>>, ApiError> {
    let owner = Owner::of(&s, &caller, None, Role::Admin).await?;
    owner.channel(&s, &id).await?;
    let items = s.catalog.notifications(&id, LISTED).await?;
    Ok(Json(super::Items { items }))
}
