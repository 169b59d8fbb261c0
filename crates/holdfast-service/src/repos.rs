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

impl RepoAt {
    /// The repository the catalog names `repository`.
    pub fn new(config: &Config, repository: &str) -> Result<RepoAt, EngineError> {
        let location = Location::parse(repository).map_err(|e| {
            EngineError::Invalid(format!("the repository location in the catalog: {e}"))
        })?;
        Ok(RepoAt {
            location,
            s3: config.s3_settings().unwrap_or_default(),
        })
    }

    /// Where a new tenant's repository goes.
    pub fn for_new_tenant(config: &Config, tenant_id: &str) -> Result<RepoAt, EngineError> {
        let location = config
            .storage_location()
            .child(tenant_id)
            .map_err(EngineError::Invalid)?;
        Ok(RepoAt {
            location,
            s3: config.s3_settings().unwrap_or_default(),
        })
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
