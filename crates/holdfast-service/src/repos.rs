//! Tenant repositories. The catalog names each by its location as text (a
//! directory, or `s3:…` under the configured storage); this module is the
//! one place that text becomes storage, with the server's S3 settings.
//!
//! Invariant: the location text never carries a secret (the parser refuses
//! credentials in it); credentials come from the server's environment.

use std::path::PathBuf;
use std::sync::Arc;

use holdfast_engine::EngineError;
use holdfast_storage::{Backend, FileType, Location, S3Settings};

use crate::config::Config;

/// A tenant's repository: where it is and how to reach it.
#[derive(Debug, Clone)]
pub struct RepoAt {
    pub location: Location,
    s3: S3Settings,
}

/// A tenant's own object-storage credentials, as sealed in the catalog,
/// with the location they were given for (and are used for: runs written
/// before keep the server's key).
#[derive(serde::Serialize, serde::Deserialize)]
pub struct StoredCredentials {
    pub location: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token: Option<String>,
    /// The bucket's region, when not the server's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

impl RepoAt {
    /// The repository the catalog names `repository`, reached with the
    /// server's credentials.
    pub fn new(config: &Config, repository: &str) -> Result<RepoAt, EngineError> {
        let location = Location::parse(repository).map_err(|e| {
            EngineError::Invalid(format!("the repository location in the catalog: {e}"))
        })?;
        Ok(RepoAt::at(config, location))
    }

    /// A location already parsed, with the server's S3 settings.
    pub fn at(config: &Config, location: Location) -> RepoAt {
        RepoAt {
            location,
            s3: config.s3_settings().unwrap_or_default(),
        }
    }

    /// A repository of tenant `tenant_id`: with the tenant's own
    /// credentials when an admin gave it a bucket of its own and this is
    /// that bucket.
    pub async fn of_tenant(
        config: &Config,
        catalog: &holdfast_catalog::Catalog,
        tenant_id: &str,
        repository: &str,
    ) -> Result<RepoAt, crate::problem::ApiError> {
        let mut r = RepoAt::new(config, repository)
            .map_err(|e| crate::problem::ApiError::Internal(e.to_string()))?;
        if let Some(json) = catalog.tenant_storage_credentials(tenant_id).await? {
            let c: StoredCredentials = serde_json::from_str(&json)
                .map_err(|e| crate::problem::ApiError::Internal(e.to_string()))?;
            if c.location == repository {
                r = r.with_credentials(c);
            }
        }
        Ok(r)
    }

    /// The same location reached with `c` instead of the server's key.
    pub fn with_credentials(mut self, c: StoredCredentials) -> RepoAt {
        if c.region.is_some() {
            self.s3.region = c.region;
        }
        self.s3.credentials = Some(holdfast_storage::S3Credentials {
            access_key_id: c.access_key_id,
            secret_access_key: c.secret_access_key,
            session_token: c.session_token,
        });
        self
    }

    /// At most `n` retries per request (an admin's probe of a new location
    /// answers within seconds, not after a minute of backoff).
    pub fn with_retries(mut self, n: usize) -> RepoAt {
        self.s3.retries = n;
        self
    }

    /// On object storage.
    pub fn is_remote(&self) -> bool {
        self.local_path().is_none()
    }

    /// Where a new tenant's repository goes.
    pub fn for_new_tenant(config: &Config, tenant_id: &str) -> Result<RepoAt, EngineError> {
        let location = config
            .storage_location()
            .child(tenant_id)
            .map_err(EngineError::Invalid)?;
        Ok(RepoAt::at(config, location))
    }

    pub fn backend(&self) -> Result<Arc<dyn Backend>, EngineError> {
        Ok(holdfast_storage::open(&self.location, &self.s3)?)
    }

    /// The directory of a repository on local disk (what a job's Landlock
    /// rules let it write); `None` on object storage.
    pub fn local_path(&self) -> Option<PathBuf> {
        self.location.local_path().map(|p| p.to_path_buf())
    }

    /// The bytes the repository holds (blocking; a listing on object
    /// storage). Unreadable parts count as nothing.
    pub fn used_bytes(&self) -> u64 {
        if let Some(path) = self.local_path() {
            return local_bytes(&path);
        }
        let Ok(b) = self.backend() else { return 0 };
        FileType::ALL
            .iter()
            .filter_map(|t| b.list(*t).ok())
            .flatten()
            .map(|o| o.size)
            .sum()
    }

    /// Remove what a failed tenant creation left (local disk only: an
    /// object-store prefix holds nothing until the first write succeeds).
    pub fn remove_leftovers(&self) {
        if let Some(p) = self.local_path() {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

impl std::fmt::Display for RepoAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.location.fmt(f)
    }
}

/// Every file under a directory.
fn local_bytes(path: &std::path::Path) -> u64 {
    let mut total = 0;
    let mut dirs = vec![path.to_path_buf()];
    while let Some(d) = dirs.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => dirs.push(e.path()),
                Ok(t) if t.is_file() => total += e.metadata().map_or(0, |m| m.len()),
                _ => {}
            }
        }
    }
    total
}
