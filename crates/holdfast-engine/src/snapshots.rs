//! Listing and selecting snapshots: by id prefix, `latest`, host, tag and
//! path filters, and the parent of a new backup.

use holdfast_format::Id;
use holdfast_format::snapshot::Snapshot;
use holdfast_storage::FileType;

use crate::error::{EngineError, Result};
use crate::repository::Repository;

/// Which snapshots to consider (`--host`, `--tag`, `--path`).
#[derive(Debug, Clone, Default)]
pub struct SnapshotFilter {
    pub hosts: Vec<String>,
    /// Each entry is a comma-separated set that must all be present; a
    /// snapshot matches if any entry matches (restic's semantics).
    pub tags: Vec<String>,
    /// A snapshot matches if it contains all of these paths.
    pub paths: Vec<String>,
}

impl SnapshotFilter {
    pub fn matches(&self, s: &Snapshot) -> bool {
        if !self.hosts.is_empty() && !self.hosts.contains(&s.hostname) {
            return false;
        }
        if !self.tags.is_empty()
            && !self.tags.iter().any(|set| {
                set.split(',')
                    .filter(|t| !t.is_empty())
                    .all(|t| s.has_tag(t))
            })
        {
            return false;
        }
        self.paths.iter().all(|p| s.paths.iter().any(|sp| sp == p))
    }
}

/// Every snapshot, oldest first. Files that cannot be read are reported
/// through `on_error` and skipped, so one damaged snapshot does not hide
/// the others.
pub fn load_all(
    repo: &Repository,
    on_error: &mut dyn FnMut(EngineError),
) -> Result<Vec<(Id, Snapshot)>> {
    let ids = repo.list_ids(FileType::Snapshot)?;
    let loaded = crate::parallel::map(ids, 4, |id| -> Result<_> {
        Ok((id, repo.load_snapshot(&id)))
    })?;
    let mut out = Vec::new();
    for (id, r) in loaded {
        match r {
            Ok(s) => out.push((id, s)),
            Err(e) => on_error(e),
        }
    }
    out.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
    Ok(out)
}

/// Resolve `spec` (an id, a unique id prefix, or `latest`) to a snapshot.
pub fn find(repo: &Repository, spec: &str, filter: &SnapshotFilter) -> Result<(Id, Snapshot)> {
    if spec == "latest" {
        let all = load_all(repo, &mut |_| {})?;
        return all
            .into_iter()
            .rev()
            .find(|(_, s)| filter.matches(s))
            .ok_or_else(|| EngineError::SnapshotNotFound("latest".into()));
    }
    if !holdfast_format::id::is_hex_prefix(spec) {
        return Err(EngineError::SnapshotNotFound(spec.to_string()));
    }
    let id = repo.find_id(FileType::Snapshot, spec)?;
    match repo.load_snapshot(&id) {
        Ok(s) => Ok((id, s)),
        Err(EngineError::Storage(e)) if e.is_not_found() => {
            Err(EngineError::SnapshotNotFound(spec.to_string()))
        }
        Err(e) => Err(e),
    }
}

/// The newest snapshot of `host` with exactly `paths`: the parent of a new
/// backup of the same source.
pub fn find_parent(
    repo: &Repository,
    host: &str,
    paths: &[String],
) -> Result<Option<(Id, Snapshot)>> {
    let mut want = paths.to_vec();
    want.sort();
    let all = load_all(repo, &mut |_| {})?;
    Ok(all.into_iter().rev().find(|(_, s)| {
        let mut p = s.paths.clone();
        p.sort();
        s.hostname == host && p == want
    }))
}
