//! The service's catalog: every tenant, token, source, backup run, restore
//! run (drills among them), verification, notification channel and
//! delivery, and audit event, in one SQL database — an embedded SQLite file
//! by default, PostgreSQL when several nodes share the work.
//!
//! One code path serves both: queries go through sqlx's `Any` driver with
//! portable SQL (`$n` parameters, `TEXT`/`BIGINT` columns, times as
//! RFC 3339 text in UTC that sorts as it reads). Where the dialects must
//! differ (taking the queue's next job, serialising writers of the audit
//! chain) [`Dialect`] says which form to use. Each job queue *is* its table
//! (`backups`, `restores`, `verifications`, `notifications`; see [`queue`]):
//! a row's status, lease and attempts are the job's state, so there is no
//! second source of truth to reconcile.
//!
//! Rows are kept forever: deleting a backup sets `deleted_at`.

pub mod audit;
pub mod backups;
pub mod chain;
pub mod clock;
pub mod copy;
pub mod deletions;
mod error;
mod migrations;
pub mod notifications;
pub mod periodic;
pub mod queue;
pub mod restores;
pub mod server_key;
pub mod sessions;
pub mod sources;
pub mod tenants;
pub mod tokens;
pub mod verifications;

use std::sync::Arc;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{Any, AnyPool, Executor, Transaction};
use tokio::sync::{Mutex, MutexGuard};

pub use error::{CatalogError, Conflict, Needs};
pub use server_key::ServerKey;

pub type Result<T, E = CatalogError> = std::result::Result<T, E>;

/// Which SQL database holds the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// Who did something: a token, or the service itself (the scheduler, the
/// retention sweep, recovery after a crash).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Actor {
    /// The token's id; `None` for the service itself.
    pub token_id: Option<String>,
    /// The token's label, or [`Actor::SYSTEM`].
    pub label: String,
}

impl Actor {
    /// The label of everything the service does on its own.
    pub const SYSTEM: &'static str = "system";

    pub fn system() -> Actor {
        Actor {
            token_id: None,
            label: Actor::SYSTEM.to_string(),
        }
    }
}

/// The catalog: a connection pool and the key that seals secrets and keys
/// the audit chain.
#[derive(Clone)]
pub struct Catalog {
    pool: AnyPool,
    dialect: Dialect,
    /// SQLite has one writer at a time; writers in this process queue here
    /// rather than fail with "database is locked".
    write_lock: Arc<Mutex<()>>,
    key: Arc<ServerKey>,
    /// The URL with any password masked, for messages.
    shown_url: String,
    /// Told the chain's new head after every committed append (the
    /// service records it outside the catalog: an anchor).
    head_hook: Option<HeadHook>,
}

/// A row type the catalog reads whole (`SELECT *`).
pub trait FromRow: Sized {
    fn from_row(r: &sqlx::any::AnyRow) -> std::result::Result<Self, sqlx::Error>;
}

impl Catalog {
    /// Run one statement outside a write transaction; how many rows it changed.
    pub(crate) async fn run(
        &self,
        statement: sqlx::query::Query<'_, Any, sqlx::any::AnyArguments>,
    ) -> Result<u64> {
        let done = statement
            .execute(self.pool())
            .await
            .map_err(CatalogError::db)?;
        Ok(done.rows_affected())
    }

    /// Every row `statement` answers, read as `R`.
    pub(crate) async fn rows<R: FromRow>(
        &self,
        statement: sqlx::query::Query<'_, Any, sqlx::any::AnyArguments>,
    ) -> Result<Vec<R>> {
        let rows = statement
            .fetch_all(self.pool())
            .await
            .map_err(CatalogError::db)?;
        rows.iter()
            .map(R::from_row)
            .collect::<std::result::Result<_, _>>()
            .map_err(CatalogError::db)
    }
}

/// See [`Catalog::with_head_hook`].
pub type HeadHook = Arc<dyn Fn(&chain::AuditHead) + Send + Sync>;

/// A write transaction. On SQLite it holds the process's write lock (and
/// `BEGIN IMMEDIATE`), on PostgreSQL it is an ordinary transaction.
pub struct WriteTx<'c> {
    pub(crate) tx: Transaction<'static, Any>,
    pub(crate) dialect: Dialect,
    pub(crate) audit_key: [u8; 32],
    /// The head after this transaction's last append, for the hook.
    pub(crate) appended: Option<chain::AuditHead>,
    pub(crate) head_hook: Option<HeadHook>,
    _guard: Option<MutexGuard<'c, ()>>,
}

impl WriteTx<'_> {
    /// Run one statement in this transaction; how many rows it changed.
    pub(crate) async fn run<'q>(
        &mut self,
        statement: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments>,
    ) -> Result<u64> {
        let done = statement
            .execute(&mut *self.tx)
            .await
            .map_err(CatalogError::db)?;
        Ok(done.rows_affected())
    }

    pub async fn commit(self) -> Result<()> {
        self.tx.commit().await.map_err(CatalogError::db)?;
        // only a committed row may be anchored
        if let (Some(head), Some(hook)) = (&self.appended, &self.head_hook) {
            hook(head);
        }
        Ok(())
    }

    /// End without changes, now. Dropping a transaction rolls it back only
    /// when its connection is next used, after the write lock is released;
    /// until then a row lock it took (`FOR UPDATE`) stays held, and a
    /// claim's `SKIP LOCKED` would pass that row over.
    pub async fn rollback(self) -> Result<()> {
        self.tx.rollback().await.map_err(CatalogError::db)
    }

    /// Run `statement`, which changes row `id` of a job only while the
    /// caller holds it; the transaction to go on with, or — nothing
    /// changed: the job is no longer held — rolled back and `NotHeld`.
    pub(crate) async fn run_held(
        mut self,
        statement: sqlx::query::Query<'_, Any, sqlx::any::AnyArguments>,
        what: &'static str,
        id: &str,
    ) -> Result<Self> {
        if self.run(statement).await? == 0 {
            return self.abort(crate::error::not_held(what, id, None)).await;
        }
        Ok(self)
    }

    /// Roll back, then fail with `e`.
    pub(crate) async fn abort<T>(self, e: CatalogError) -> Result<T> {
        // the error that decided to stop is the one to report
        let _ = self.rollback().await;
        Err(e)
    }
}

/// SQLite counts every allocation under one process-wide mutex unless told
/// not to (`SQLITE_CONFIG_MEMSTATUS`; SQLite's docs recommend turning it
/// off). With eight catalog connections copying rows out on two cores,
/// that mutex and its bookkeeping were a tenth of a list request's CPU. The
/// setting only takes before SQLite initialises; if something in this
/// process used SQLite first, it stays on, which is merely slower.
fn sqlite_without_memory_statistics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: sqlite3_config with SQLITE_CONFIG_MEMSTATUS takes one int;
        // before sqlite3_initialize it only sets a flag, afterwards it
        // returns SQLITE_MISUSE and changes nothing.
        unsafe {
            libsqlite3_sys::sqlite3_config(
                libsqlite3_sys::SQLITE_CONFIG_MEMSTATUS,
                0 as std::ffi::c_int,
            );
        }
    });
}

impl Catalog {
    /// Open (creating the SQLite file if needed) and bring the schema up to
    /// date. `url` is `sqlite://PATH` or `postgres://…`. At most
    /// [`Catalog::default_connections`] connections.
    pub async fn open(url: &str, key: ServerKey) -> Result<Catalog> {
        Catalog::open_with_connections(url, key, Catalog::default_connections()).await
    }

    /// Connections a pool holds at most unless told: 2 × cores + 2, at least
    /// 4. More connections than that queue on the CPU instead of in the
    /// pool: with 16 on two cores, the PostgreSQL list benchmark's p99 at 16
    /// clients was 22–100 ms, with 6 it was 15–16 ms (docs/BENCHMARKS.md).
    pub fn default_connections() -> u32 {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get()) as u32;
        (2 * cores + 2).clamp(4, 64)
    }

    /// [`Catalog::open`] with a pool of at most `max_connections`.
    pub async fn open_with_connections(
        url: &str,
        key: ServerKey,
        max_connections: u32,
    ) -> Result<Catalog> {
        install_default_drivers();
        let shown_url = redact_url(url);
        let (dialect, connect_url) = if let Some(path) = url.strip_prefix("sqlite://") {
            sqlite_without_memory_statistics();
            (Dialect::Sqlite, format!("sqlite://{path}?mode=rwc"))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Dialect::Postgres, url.to_string())
        } else {
            return Err(CatalogError::Invalid {
                field: "catalog_url".into(),
                message: format!("{shown_url}: expected sqlite://PATH or postgres://…"),
            });
        };
        let mut opts = AnyPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(std::time::Duration::from_secs(10));
        if dialect == Dialect::Sqlite {
            opts = opts.after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute(
                        "PRAGMA journal_mode=WAL; PRAGMA busy_timeout=10000; \
                         PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON",
                    )
                    .await?;
                    Ok(())
                })
            });
        }
        let pool = opts
            .connect(&connect_url)
            .await
            .map_err(|e| CatalogError::Unavailable(format!("{shown_url}: {}", redact_error(&e))))?;
        let catalog = Catalog {
            pool,
            dialect,
            write_lock: Arc::new(Mutex::new(())),
            key: Arc::new(key),
            shown_url,
            head_hook: None,
        };
        migrations::apply(&catalog).await?;
        Ok(catalog)
    }

    /// Call `hook` with the chain's new head after every committed append
    /// (the service writes it to an anchor file and its log).
    pub fn with_head_hook(mut self, hook: HeadHook) -> Catalog {
        self.head_hook = Some(hook);
        self
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn key(&self) -> &ServerKey {
        &self.key
    }

    /// The catalog's URL with any password masked.
    pub fn shown_url(&self) -> &str {
        &self.shown_url
    }

    /// Start a write transaction (see [`WriteTx`]).
    pub async fn write(&self) -> Result<WriteTx<'_>> {
        let guard = match self.dialect {
            Dialect::Sqlite => Some(self.write_lock.lock().await),
            Dialect::Postgres => None,
        };
        let tx = match self.dialect {
            Dialect::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Dialect::Postgres => self.pool.begin().await,
        }
        .map_err(CatalogError::db)?;
        Ok(WriteTx {
            tx,
            dialect: self.dialect,
            audit_key: self.key.audit_key(),
            appended: None,
            head_hook: self.head_hook.clone(),
            _guard: guard,
        })
    }

    /// Is the catalog reachable? (`/readyz`)
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(CatalogError::db)
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// `scheme://user:secret@host/…` → `scheme://user:***@host/…`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            let user = userinfo.split(':').next().unwrap_or("");
            if userinfo.contains(':') {
                format!("{scheme}://{user}:***{}", &rest[at..])
            } else {
                url.to_string()
            }
        }
        None => url.to_string(),
    }
}

/// sqlx errors can quote the connection string; keep only the message kind.
fn redact_error(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Configuration(_) => "invalid catalog URL".to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_password() {
        assert_eq!(
            redact_url("postgres://hf:s3cret@db:5432/catalog"),
            "postgres://hf:***@db:5432/catalog"
        );
        assert_eq!(
            redact_url("sqlite:///var/lib/x.db"),
            "sqlite:///var/lib/x.db"
        );
        assert_eq!(redact_url("postgres://hf@db/c"), "postgres://hf@db/c");
    }
}
