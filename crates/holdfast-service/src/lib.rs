//! `holdfast serve`: the REST API over the catalog, and the workers that
//! run the catalog's queue of backups.
//!
//! - [`config`]: defaults, TOML file, environment;
//! - [`problem`]: every API error and its HTTP form (the one place);
//! - [`metrics`]: `/metrics`, from the catalog and this node's counters;
//! - [`auth`]: bearer tokens, roles and tenant scoping;
//! - [`api`]: the handlers, one module per resource;
//! - [`worker`]: claiming, running, heartbeating and finishing jobs, and
//!   recovering the ones a dead worker left;
//! - [`runner`]: one backup of one source (blocking), and the
//!   transient/permanent classification of its failures; deleting snapshots;
//! - [`schedule`]: cron expressions (pure); [`scheduler`]: queueing due
//!   slots once, and the retention sweep; [`retention`]: what a source's
//!   retention lets go (pure).

pub mod api;
pub mod auth;
pub mod config;
pub mod metrics;
pub mod problem;
pub mod retention;
pub mod runner;
pub mod schedule;
pub mod scheduler;
pub mod worker;

use std::sync::Arc;

use holdfast_catalog::tokens::Role;
use holdfast_catalog::{Actor, Catalog, ServerKey};
use tokio::sync::Notify;

pub use config::Config;

/// The request body limit when the configuration does not say.
pub const MAX_BODY_DEFAULT: usize = 64 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub catalog: Catalog,
    pub config: Arc<Config>,
    /// This node's name in leases (`host/pid`).
    pub node: String,
    /// Wakes idle workers when a job is queued.
    pub wake: Arc<Notify>,
    /// This node's counters for `/metrics`.
    pub metrics: Arc<metrics::Metrics>,
    /// The runs this node works on (stopped at shutdown).
    pub jobs: Arc<worker::RunningJobs>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Catalog(#[from] holdfast_catalog::CatalogError),
    #[error("{0}")]
    Io(String),
}

/// Open (creating if needed) the data directory, the server key and the
/// catalog.
pub async fn open_catalog(config: &Config) -> Result<(Catalog, bool), ServeError> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| ServeError::Io(format!("cannot create {}: {e}", config.data_dir.display())))?;
    let (key, created) = match std::env::var("HOLDFAST_SERVER_KEY") {
        Ok(text) if !text.is_empty() => (ServerKey::parse(&text)?, false),
        _ => ServerKey::load_or_create(&config.server_key_path())?,
    };
    let catalog =
        Catalog::open_with_connections(&config.catalog_url(), key, config.catalog_connections())
            .await?;
    Ok((catalog, created))
}

/// On a catalog without tokens, create the first admin token; its secret
/// (to print once), or `None` when tokens exist.
pub async fn bootstrap_admin(catalog: &Catalog) -> Result<Option<String>, ServeError> {
    if !catalog.tokens(None).await?.is_empty() {
        return Ok(None);
    }
    let (_, secret) = catalog
        .create_token(Role::Admin, None, "initial admin", &Actor::system())
        .await?;
    Ok(Some(secret))
}

/// Serve until `shutdown` resolves, then stop the running jobs (see
/// [`worker::Workers::stop`]).
pub async fn serve(
    state: AppState,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    std::fs::create_dir_all(state.config.storage_dir()).map_err(|e| {
        ServeError::Io(format!(
            "cannot create {}: {e}",
            state.config.storage_dir().display()
        ))
    })?;
    let workers = worker::start(state.clone()).await?;
    scheduler::start(state.clone());
    let app = api::router(state.clone());
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| ServeError::Io(e.to_string()));
    // the running jobs are stopped and recorded before the process exits,
    // so that another node (or the next start) retries them at once
    workers
        .stop(&state, std::time::Duration::from_secs(30))
        .await;
    served
}
