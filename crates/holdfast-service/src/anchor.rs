//! Anchors of the audit chain outside the catalog.
//!
//! The chain proves that no row in the middle of the log was edited,
//! inserted or deleted — but a log whose newest rows were deleted, or one
//! rewritten from scratch by someone holding the server key, is a valid
//! chain too. So the head (newest row number and hash) is also recorded
//! where a change to the catalog does not reach it:
//!
//! - the anchor file `DATA/audit-anchor.json`, rewritten (atomically, never
//!   backwards) after every committed append;
//! - the server's log: one `audit head` line per append (ship it to a log
//!   store and it holds every head);
//! - every snapshot the service writes (`holdfast.audit_head` in the
//!   snapshot file, in the tenant's repository).
//!
//! `holdfast audit verify` checks the chain, then that the catalog still
//! holds each anchored row with the anchored hash (see
//! `holdfast_catalog::chain::check_anchor`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use holdfast_catalog::chain::AuditHead;
use holdfast_catalog::{Catalog, HeadHook};

/// The anchor file of a data directory.
pub fn anchor_path(data_dir: &Path) -> PathBuf {
    data_dir.join("audit-anchor.json")
}

/// Writes the anchor file (and the log line) after each append.
pub struct AnchorWriter {
    path: PathBuf,
    last: Mutex<i64>,
}

impl AnchorWriter {
    pub fn new(data_dir: &Path) -> Arc<AnchorWriter> {
        let last = read_anchor(&anchor_path(data_dir))
            .and_then(Result::ok)
            .map_or(0, |h| h.seq);
        Arc::new(AnchorWriter {
            path: anchor_path(data_dir),
            last: Mutex::new(last),
        })
    }

    /// Record `head` unless a newer one is recorded already (appends of
    /// several tasks may report out of order).
    pub fn record(&self, head: &AuditHead) {
        let mut last = self.last.lock().unwrap();
        crate::worker::log(&format!("audit head {} {}", head.seq, head.hash));
        if head.seq <= *last {
            return;
        }
        match write_atomically(&self.path, head) {
            Ok(()) => *last = head.seq,
            Err(e) => crate::worker::log(&format!(
                "cannot write the audit anchor {}: {e}",
                self.path.display()
            )),
        }
    }

    pub fn hook(self: &Arc<Self>) -> HeadHook {
        let me = self.clone();
        Arc::new(move |h: &AuditHead| me.record(h))
    }

    /// At start: a catalog with rows but no anchor file (a first start
    /// after an upgrade, or a deleted file) gets one at its current head,
    /// and the log says so.
    pub async fn start(&self, catalog: &Catalog) -> Result<(), holdfast_catalog::CatalogError> {
        if self.path.exists() {
            return Ok(());
        }
        if let Some(head) = catalog.audit_head().await? {
            crate::worker::log(&format!(
                "no audit anchor at {}: starting one at row {}",
                self.path.display(),
                head.seq
            ));
            self.record(&head);
        }
        Ok(())
    }
}

fn write_atomically(path: &Path, head: &AuditHead) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::json!({
        "seq": head.seq,
        "hash": head.hash,
        "time": holdfast_catalog::clock::now(),
    })
    .to_string();
    std::fs::write(&tmp, text + "\n")?;
    std::fs::rename(&tmp, path)
}

/// The anchor in `path`: None if there is no file; an error if it does not
/// parse (reported, not ignored).
pub fn read_anchor(path: &Path) -> Option<Result<AuditHead, String>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => return Some(Err(format!("{}: {e}", path.display()))),
    };
    // the file's `time` is for people: unknown fields are ignored
    Some(
        serde_json::from_str::<AuditHead>(&text)
            .map_err(|e| format!("{}: not an audit anchor: {e}", path.display())),
    )
}

/// The newest anchor in the snapshots of one tenant repository (blocking:
/// opens the repository and reads its snapshot files).
pub fn newest_snapshot_anchor(
    repository: &crate::repos::RepoAt,
    password: &str,
) -> Result<Option<(AuditHead, String)>, String> {
    use holdfast_engine::repository::Repository;
    let backend = repository.backend().map_err(|e| e.to_string())?;
    let repo = Repository::open(backend, password.as_bytes()).map_err(|e| e.to_string())?;
    let all =
        holdfast_engine::snapshots::load_all(&repo, &mut |_| {}).map_err(|e| e.to_string())?;
    let mut best: Option<(AuditHead, String)> = None;
    for (id, snap) in all {
        let Some(h) = snap
            .extra
            .get("holdfast")
            .and_then(|x| x.get("audit_head"))
            .and_then(|h| serde_json::from_value::<AuditHead>(h.clone()).ok())
        else {
            continue;
        };
        if best.as_ref().is_none_or(|(b, _)| h.seq > b.seq) {
            let source = format!("snapshot {} of {}", &id.to_string()[..8], repository);
            best = Some((h, source));
        }
    }
    Ok(best)
}
