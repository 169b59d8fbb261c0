use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use holdfast_catalog::restores::Restore;
use holdfast_catalog::tokens::Role;
use holdfast_sources::source_url::SourceAddress;
use serde::Deserialize;

use crate::AppState;
use crate::auth::Caller;
use crate::i18n::Msg;
use crate::policy::Definer;
use crate::problem::ApiError;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NewRestore {
    /// Where to restore to; default: a new directory under the data
    /// directory, or a new database beside the source's.
    target: Option<String>,
    /// Over the source itself: a directory's files are written back where
    /// they were, a database's contents replaced (it is dropped and
    /// created again). Never with `target`.
    #[serde(default)]
    in_place: bool,
}

/// Whether a source of `kind` with `options` can be restored over itself
/// (`in_place`), and if not, why: command output and event streams have no
/// "itself" to write into, and tables mode is a slice (some tables, one
/// tenant's rows) — replacing the whole database with it would lose the rest.
pub fn over_itself(kind: &str, options: &serde_json::Value) -> Result<(), Msg> {
    match kind {
        "directory" => Ok(()),
        "postgres" | "mysql" | "sqlite" => match crate::runner::SourceSettings::parse(options) {
            Ok(s) if !s.is_slice() => Ok(()),
            _ => Err(Msg::new("msg.invalid.in_place_slice")),
        },
        _ => Err(Msg::new("msg.invalid.in_place_kind").with("kind", kind)),
    }
}

/// The default target: never the source itself, so that a restore cannot
/// overwrite live data unasked.
fn default_target(
    s: &AppState,
    tenant_id: &str,
    kind: &str,
    source_target: &str,
    stamp: &str,
) -> Result<String, ApiError> {
    match kind {
        "directory" | "command" => Ok(s
            .config
            .data_dir
            .join("restores")
            .join(tenant_id)
            .join(stamp)
            .to_string_lossy()
            .into_owned()),
        "postgres" | "mysql" => {
            let (base, query) = match source_target.split_once('?') {
                Some((b, q)) => (b, format!("?{q}")),
                None => (source_target, String::new()),
            };
            let (prefix, db) = base
                .rsplit_once('/')
                .ok_or_else(|| ApiError::invalid("target", Msg::new("msg.invalid.required")))?;
            Ok(format!(
                "{prefix}/{db}_restored_{}{query}",
                stamp.replace('-', "_")
            ))
        }
        "sqlite" => Ok(format!("{source_target}.restored-{stamp}")),
        _ => Err(ApiError::invalid(
            "target",
            Msg::new("msg.invalid.stream_target"),
        )),
    }
}

/// `POST /api/v1/backups/{id}/restore`: 202 with the queued restore.
pub async fn create(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Restore>), ApiError> {
    let b = s.catalog.backup(&id).await?;
    caller.tenant(&b.tenant_id, Role::Operator, "backup")?;
    let body: NewRestore = crate::problem::optional_json(&body)?;
    let source = s.catalog.source_any(&b.source_id).await?;
    let stamp = holdfast_catalog::clock::now()
        .replace([':', '.'], "")
        .replace('T', "-")
        .trim_end_matches('Z')
        .to_lowercase();
    let given = body.target.filter(|t| !t.trim().is_empty());
    if body.in_place && given.is_some() {
        return Err(ApiError::invalid(
            "in_place",
            Msg::new("msg.invalid.in_place_target"),
        ));
    }
    let (target, definer) = match given {
        // the source's own target, held to the caller's rights
        None if body.in_place => {
            over_itself(&source.kind, &source.options)
                .map_err(|m| ApiError::invalid("in_place", m))?;
            let target = if source.kind == "directory" {
                "/".to_string()
            } else {
                source.target.clone()
            };
            (target, caller.definer())
        }
        Some(t) => (t, caller.definer()),
        _ => (
            default_target(&s, &b.tenant_id, &source.kind, &source.target, &stamp)?,
            Definer::Server,
        ),
    };
    match source.kind.as_str() {
        "directory" | "command" => {
            if !target.starts_with('/') {
                return Err(ApiError::invalid(
                    "target",
                    Msg::new("msg.invalid.absolute_dir"),
                ));
            }
        }
        kind => {
            let addr = SourceAddress::parse(&target)
                .map_err(|e| ApiError::invalid("target", e.to_string()))?;
            if addr.has_password() {
                return Err(ApiError::invalid(
                    "target",
                    Msg::new("msg.invalid.restore_password"),
                ));
            }
            let ok = matches!(
                (kind, &addr),
                ("postgres", SourceAddress::Postgres(_))
                    | ("mysql", SourceAddress::Mysql(_))
                    | ("sqlite", SourceAddress::Sqlite(_))
                    | ("jsonl", SourceAddress::Jsonl(_))
            );
            if !ok {
                return Err(ApiError::invalid(
                    "target",
                    Msg::new("msg.invalid.restore_kind").with("kind", kind),
                ));
            }
        }
    }
    let policy = super::tenants::policy_of(&s, &b.tenant_id).await?;
    crate::policy::check_restore(
        &s.config.host_facts(),
        &policy,
        definer,
        Definer::parse(&source.defined_by),
        &source.kind,
        &source.target,
        &target,
    )?;
    let shown = match SourceAddress::parse(&target) {
        Ok(SourceAddress::Path(_)) | Err(_) => target.clone(),
        Ok(a) => a.to_string(),
    };
    let r = s
        .catalog
        .enqueue_restore(&b, &shown, definer.as_str(), body.in_place, &caller.actor())
        .await?;
    s.wake.notify_one();
    Ok((StatusCode::ACCEPTED, Json(r)))
}

pub async fn get_one(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Restore>, ApiError> {
    let r = s.catalog.restore_run(&id).await?;
    caller.tenant(&r.tenant_id, Role::Viewer, "restore")?;
    Ok(Json(r))
}
