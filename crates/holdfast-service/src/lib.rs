//! `holdfast serve`: the multi-tenant service — the REST API and web UI over
//! the catalog, and the workers that run its queues of backups, restores
//! (and drills), verifications and deletions.
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
//!   slots once, the retention sweep, drills, verification and overdue
//!   events; [`retention`]: what a source's retention lets go (pure);
//! - [`health`]: whether each source is overdue (pure rule);
//! - [`notify`]: notifications from the audit log to the channels;
//! - [`report`]: the signed evidence report.

pub mod anchor;
pub mod api;
pub mod auth;
pub mod config;
pub mod health;
pub mod http;
pub mod i18n;
pub mod metrics;
pub mod notify;
pub mod policy;
pub mod problem;
pub mod report;
pub mod repos;
pub mod retention;
pub mod runner;
pub mod sandbox;
pub mod schedule;
pub mod scheduler;
pub mod ui;
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
    /// Failed authentications per client address.
    pub auth_limiter: Arc<auth::AuthLimiter>,
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

/// How [`open_catalog`] treats a data directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opening {
    /// `holdfast serve`: create the data directory, the catalog and the
    /// server key when they do not exist yet.
    Serve,
    /// A console command (`token`, `audit verify`, `tenant export-key`):
    /// the data directory and the key must exist; nothing is created.
    Console,
}

/// Open the data directory, the server key and the catalog. A missing
/// server key is created only beside a catalog that holds nothing sealed
/// or chained under one (a first start): beside one that does, a new key
/// would open none of its secrets, so the start stops and says how to
/// restore the key. Everything is created private (umask 077: directory
/// 0700, catalog and key 0600), and an existing data directory or SQLite
/// catalog readable by others is made private.
pub async fn open_catalog(
    config: &Config,
    opening: Opening,
) -> Result<(Catalog, bool), ServeError> {
    let dir = &config.data_dir;
    let sqlite_catalog = config.catalog_url().starts_with("sqlite://");
    match opening {
        Opening::Serve => {
            rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
            std::fs::create_dir_all(dir)
                .map_err(|e| ServeError::Io(format!("cannot create {}: {e}", dir.display())))?;
            make_private(config);
        }
        Opening::Console => {
            if !dir.is_dir() {
                return Err(ServeError::Io(format!(
                    "{} is not a holdfast data directory (it does not exist): pass the \
                     server's --data-dir (or HOLDFAST_DATA_DIR); nothing was created",
                    dir.display()
                )));
            }
            if sqlite_catalog && !std::path::Path::new(&sqlite_path(config)).exists() {
                return Err(ServeError::Io(format!(
                    "{} holds no catalog ({} is missing): pass the server's --data-dir; \
                     nothing was created",
                    dir.display(),
                    sqlite_path(config)
                )));
            }
        }
    }
    let key_path = config.server_key_path();
    let from_env = std::env::var("HOLDFAST_SERVER_KEY")
        .ok()
        .filter(|t| !t.is_empty());
    let (key, missing) = match from_env {
        Some(text) => (ServerKey::parse(&text)?, false),
        None => match ServerKey::load(&key_path)? {
            Some(k) => (k, false),
            None if opening == Opening::Console => {
                return Err(ServeError::Io(format!(
                    "the server key {} is missing: restore it from your backup of the \
                     server (or set HOLDFAST_SERVER_KEY); nothing was created",
                    key_path.display()
                )));
            }
            None => (ServerKey::random(), true),
        },
    };
    let catalog = Catalog::open_with_connections(
        &config.catalog_url(),
        key.clone(),
        config.catalog_connections(),
    )
    .await?;
    if missing {
        if catalog.holds_sealed_state().await? {
            catalog.close().await;
            return Err(ServeError::Io(format!(
                "the server key {} is missing, but the catalog ({}) holds tenants and an audit \
                 log sealed under a key: a new key would open none of them. Restore server.key \
                 from your backup of the server (or set HOLDFAST_SERVER_KEY). To start over \
                 deliberately, move the catalog and the repositories away first.",
                key_path.display(),
                catalog.shown_url()
            )));
        }
        key.store_new(&key_path)?;
    }
    Ok((catalog, missing))
}

fn sqlite_path(config: &Config) -> String {
    let url = config.catalog_url();
    let p = url.strip_prefix("sqlite://").unwrap_or(&url);
    p.split('?').next().unwrap_or(p).to_string()
}

/// Data directory 0700; a SQLite catalog, its WAL and shared-memory files
/// 0600 (an older holdfast left them readable by every local user).
fn make_private(config: &Config) {
    use std::os::unix::fs::PermissionsExt;
    let set = |p: &std::path::Path, mode: u32| {
        if let Ok(m) = std::fs::metadata(p)
            && m.permissions().mode() & 0o777 != mode
            && std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).is_ok()
        {
            worker::log(&format!("made {} private (mode {mode:o})", p.display()));
        }
    };
    set(&config.data_dir, 0o700);
    if config.catalog_url().starts_with("sqlite://") {
        let db = sqlite_path(config);
        for suffix in ["", "-wal", "-shm", "-journal"] {
            set(std::path::Path::new(&format!("{db}{suffix}")), 0o600);
        }
    }
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
/// [`worker::Workers::stop`]). `tls`: from [`http::tls_config`], read by
/// the caller before it says where it listens.
pub async fn serve(
    state: AppState,
    listener: tokio::net::TcpListener,
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    if let Some(dir) = state.config.storage_dir() {
        std::fs::create_dir_all(&dir)
            .map_err(|e| ServeError::Io(format!("cannot create {}: {e}", dir.display())))?;
    }
    let workers = worker::start(state.clone()).await?;
    scheduler::start(state.clone());
    notify::start(state.clone());
    let app = api::router(state.clone());
    let served = http::serve(
        listener,
        app,
        tls,
        std::time::Duration::from_secs(state.config.header_timeout_seconds),
        shutdown,
    )
    .await
    .map_err(|e| ServeError::Io(e.to_string()));
    // the running jobs are stopped and recorded before the process exits,
    // so that another node (or the next start) retries them at once
    workers
        .stop(&state, std::time::Duration::from_secs(30))
        .await;
    served
}
