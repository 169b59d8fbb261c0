//! Removing data no snapshot needs.
//!
//! Planning reads only the index and the trees. Memory stays small however
//! many blobs the repository holds: only tree blobs are kept in an
//! in-memory index (to walk the snapshots); the data blobs the snapshots use
//! are kept as 8-byte id prefixes; the index files are then streamed, one at
//! a time, to count each pack's used and unused bytes. A prefix collision
//! can only make an unused blob look used — prune then keeps a little more,
//! never less. Packs are sorted into keep (all used), delete (none used) and
//! repack candidates (partly used), repacking the emptiest first until the
//! unused share left is within `max_unused`. Executing follows restic's
//! ordering rules:
//!
//! 1. repack: used blobs of repacked packs are verified and copied (still
//!    sealed) into new packs; their index is written;
//! 2. write new index files for every pack kept;
//! 3. only then delete the old index files, and then the packs — in
//!    parallel — never a pack the prune did not know about when it started.
//!
//! If a snapshot appears while prune runs, nothing is deleted. A crash at
//! any point leaves a repository that passes check (at worst duplicate index
//! entries or unreferenced packs, which the next prune removes).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use holdfast_format::index::{IndexFile, IndexPack};
use holdfast_format::tree::{NodeType, TreeRefs};
use holdfast_format::{BlobType, Id};
use holdfast_storage::FileType;
use serde::Serialize;

use crate::blob_saver::{BlobSaver, SaverOptions};
use crate::error::{EngineError, Result};
use crate::index::{BlobLocation, MasterIndex};
use crate::repository::{Repository, name};

/// How much unused data may stay in kept packs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MaxUnused {
    /// Share of the repository's size, in percent.
    Percent(f64),
    Bytes(u64),
    Unlimited,
}

/// Parse a size with an optional k/m/g/t suffix (powers of 1024).
pub fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.chars().last().map(|c| c.to_ascii_lowercase()) {
        Some('k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    num.trim()
        .parse::<u64>()
        .map(|n| n * mult)
        .map_err(|_| format!("invalid size {s:?}: use e.g. 500M, 2G"))
}

impl MaxUnused {
    pub fn parse(s: &str) -> std::result::Result<MaxUnused, String> {
        if s == "unlimited" {
            return Ok(MaxUnused::Unlimited);
        }
        if let Some(p) = s.strip_suffix('%') {
            let v: f64 = p
                .trim()
                .parse()
                .map_err(|_| format!("invalid percentage {s:?}"))?;
            if !(0.0..100.0).contains(&v) {
                return Err(format!("--max-unused {s:?} must be in [0%, 100%)"));
            }
            return Ok(MaxUnused::Percent(v));
        }
        parse_size(s).map(MaxUnused::Bytes)
    }

    /// Unused bytes tolerated next to `used` bytes.
    fn allowed(&self, used: u64) -> u64 {
        match *self {
            MaxUnused::Percent(p) => (p / (100.0 - p) * used as f64) as u64,
            MaxUnused::Bytes(b) => b,
            MaxUnused::Unlimited => u64::MAX,
        }
    }
}

pub struct PruneOptions {
    pub max_unused: MaxUnused,
    pub max_repack_bytes: Option<u64>,
    pub dry_run: bool,
    pub saver: SaverOptions,
    pub threads: usize,
}

#[derive(Debug, Default, Clone, Copy)]
struct PackStats {
    used_blobs: u64,
    used_bytes: u64,
    unused_blobs: u64,
    unused_bytes: u64,
    size: u64,
}

/// What prune will do (and, after `execute`, did).
#[derive(Debug, Default, Clone, Serialize)]
pub struct PrunePlan {
    pub snapshots: usize,
    pub packs_total: usize,
    pub bytes_total: u64,
    pub blobs_used: u64,
    pub bytes_used: u64,
    pub blobs_unused: u64,
    pub bytes_unused: u64,
    pub packs_delete: Vec<Id>,
    pub bytes_delete: u64,
    pub packs_repack: Vec<Id>,
    pub bytes_repack: u64,
    pub bytes_repack_unused: u64,
    pub packs_unindexed: Vec<Id>,
    pub bytes_unindexed: u64,
    pub packs_keep: usize,
    /// Listed in the index but not stored, and holding nothing a snapshot
    /// needs: dropped from the new index.
    pub packs_missing: Vec<Id>,
    pub bytes_unused_after: u64,
    #[serde(skip)]
    used: UsedBlobs,
    #[serde(skip)]
    snapshot_ids: HashSet<Id>,
    #[serde(skip)]
    index_files: Vec<Id>,
}

impl PrunePlan {
    pub fn bytes_freed(&self) -> u64 {
        self.bytes_delete + self.bytes_repack_unused + self.bytes_unindexed
    }

    pub fn is_noop(&self) -> bool {
        self.packs_delete.is_empty()
            && self.packs_repack.is_empty()
            && self.packs_unindexed.is_empty()
            && self.packs_missing.is_empty()
    }
}

/// The blobs the snapshots use: trees exactly (they are few), data blobs as
/// sorted 8-byte id prefixes.
#[derive(Debug, Default, Clone)]
struct UsedBlobs {
    trees: HashSet<Id>,
    data: Vec<u64>,
}

fn prefix(id: &Id) -> u64 {
    u64::from_be_bytes(id.0[..8].try_into().expect("ids are 32 bytes"))
}

impl UsedBlobs {
    fn contains(&self, id: &Id, t: BlobType) -> bool {
        match t {
            BlobType::Tree => self.trees.contains(id),
            BlobType::Data => self.data.binary_search(&prefix(id)).is_ok(),
        }
    }
}

/// Apply `f` to every blob of every index file, one file at a time (files
/// are loaded a few at a time in parallel, then handed over in order).
fn for_each_index_entry(
    repo: &Repository,
    files: &[Id],
    threads: usize,
    f: &mut dyn FnMut(Id, &IndexPack),
) -> Result<()> {
    for batch in files.chunks(threads.clamp(1, 2)) {
        let loaded = crate::parallel::map(batch.to_vec(), threads.clamp(1, 2), |id| {
            repo.load_index_file(&id).map(|file| (id, file))
        })?;
        for (id, file) in loaded {
            for p in &file.packs {
                f(id, p);
            }
        }
    }
    Ok(())
}

/// Work out what to delete and repack. Reads the index and trees only.
pub fn plan(repo: &Repository, opts: &PruneOptions) -> Result<PrunePlan> {
    let threads = opts.threads.max(2);
    let listed: HashMap<Id, u64> = repo.list_packs()?;
    let snapshot_ids: HashSet<Id> = repo.list_ids(FileType::Snapshot)?.into_iter().collect();
    let index_files = repo.list_ids(FileType::Index)?;

    // pass 1: where the tree blobs are
    let mut trees = MasterIndex::new();
    for_each_index_entry(repo, &index_files, threads, &mut |_, p| {
        let t: Vec<_> = p
            .blobs
            .iter()
            .filter(|b| b.blob_type == BlobType::Tree)
            .cloned()
            .collect();
        if !t.is_empty() {
            trees.add_pack_unsorted(&IndexPack { id: p.id, blobs: t });
        }
    })?;
    trees.finish();

    // walk every snapshot: trees level by level, each level's trees loaded
    // in parallel and parsed only for the ids they reference
    let missing = |what: &str, id: &Id| {
        EngineError::Invalid(format!(
            "a snapshot needs {what} {id}, which is not in the index: the repository is damaged. \
             Prune deletes nothing; run `holdfast check` to see what is affected."
        ))
    };
    let mut used = UsedBlobs::default();
    let mut frontier: Vec<Id> = Vec::new();
    for sid in &snapshot_ids {
        frontier.push(repo.load_snapshot(sid)?.tree);
    }
    while !frontier.is_empty() {
        crate::cancel::check()?;
        let mut todo = Vec::new();
        for tree in frontier.drain(..) {
            if used.trees.insert(tree) {
                todo.push(tree);
            }
        }
        // in batches of at most 256 trees and 16 MiB of tree data, so memory
        // holds a bounded amount of parsed trees however large they are
        while !todo.is_empty() {
            let mut take = 0;
            let mut bytes = 0u64;
            while take < todo.len() && take < 256 && bytes < 16 << 20 {
                bytes += trees
                    .lookup(&todo[take], BlobType::Tree)
                    .map(|l| l.plain_len() as u64)
                    .unwrap_or(0);
                take += 1;
            }
            let batch: Vec<Id> = todo.drain(..take).collect();
            let loaded = crate::parallel::map(batch, threads, |tree| -> Result<TreeRefs> {
                let loc = trees
                    .lookup(&tree, BlobType::Tree)
                    .ok_or_else(|| missing("tree", &tree))?;
                let data = repo.read_blob_at(&tree, &loc)?;
                TreeRefs::from_blob(&data)
                    .map_err(|e| EngineError::corrupt(format!("tree {tree}"), e))
            })?;
            for t in loaded {
                for n in &t.nodes {
                    match n.node_type {
                        NodeType::Dir => frontier.extend(n.subtree),
                        NodeType::File => used
                            .data
                            .extend(n.content.as_deref().unwrap_or(&[]).iter().map(prefix)),
                        _ => {}
                    }
                }
            }
            if used.data.len() > 1 << 22 {
                used.data.sort_unstable();
                used.data.dedup();
            }
        }
    }
    used.data.sort_unstable();
    used.data.dedup();
    drop(trees);

    // pass 2: count each pack's used and unused bytes
    let mut plan = PrunePlan {
        snapshots: snapshot_ids.len(),
        packs_total: listed.len(),
        bytes_total: listed.values().sum(),
        snapshot_ids,
        index_files: index_files.clone(),
        ..Default::default()
    };
    let mut stats: HashMap<Id, PackStats> = HashMap::new();
    let mut seen_data = vec![0u64; used.data.len().div_ceil(64) + 1];
    for_each_index_entry(repo, &index_files, threads, &mut |_, p| {
        // a pack listed by two index files (after an interrupted prune) is
        // counted once
        if stats.contains_key(&p.id) {
            return;
        }
        let st = stats.entry(p.id).or_default();
        for b in &p.blobs {
            let is_used = used.contains(&b.id, b.blob_type);
            if is_used
                && b.blob_type == BlobType::Data
                && let Ok(i) = used.data.binary_search(&prefix(&b.id))
            {
                seen_data[i / 64] |= 1 << (i % 64);
            }
            if is_used {
                st.used_blobs += 1;
                st.used_bytes += b.length as u64;
                plan.blobs_used += 1;
                plan.bytes_used += b.length as u64;
            } else {
                st.unused_blobs += 1;
                st.unused_bytes += b.length as u64;
                plan.blobs_unused += 1;
                plan.bytes_unused += b.length as u64;
            }
        }
    })?;
    if let Some(i) = (0..used.data.len()).find(|&i| seen_data[i / 64] >> (i % 64) & 1 == 0) {
        return Err(EngineError::Invalid(format!(
            "a snapshot needs a data blob with id prefix {:016x} that is not in the index: the repository \
             is damaged. Prune deletes nothing; run `holdfast check` to see what is affected.",
            used.data[i]
        )));
    }
    for (pack, st) in stats.iter_mut() {
        match listed.get(pack) {
            Some(&size) => st.size = size,
            None if st.used_blobs > 0 => {
                return Err(EngineError::Invalid(format!(
                    "pack {pack} holds blobs snapshots need but is missing: the repository is damaged. \
                     Prune deletes nothing; run `holdfast check`."
                )));
            }
            None => {}
        }
    }
    for (pack, size) in &listed {
        if !stats.contains_key(pack) {
            plan.packs_unindexed.push(*pack);
            plan.bytes_unindexed += size;
        }
    }

    // delete packs nothing uses; repack the emptiest until within limits
    let mut candidates: Vec<(Id, PackStats)> = Vec::new();
    let mut unused_after = 0u64;
    for (pack, st) in &stats {
        if !listed.contains_key(pack) {
            plan.packs_missing.push(*pack);
            continue;
        }
        if st.used_blobs == 0 {
            plan.packs_delete.push(*pack);
            plan.bytes_delete += st.size;
        } else if st.unused_blobs > 0 {
            candidates.push((*pack, *st));
            unused_after += st.unused_bytes;
        } else {
            plan.packs_keep += 1;
        }
    }
    candidates.sort_by(|a, b| {
        let ra = a.1.unused_bytes as f64 / a.1.size.max(1) as f64;
        let rb = b.1.unused_bytes as f64 / b.1.size.max(1) as f64;
        rb.partial_cmp(&ra)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.0.cmp(&b.0))
    });
    let allowed = opts.max_unused.allowed(plan.bytes_used);
    let mut repacked = 0u64;
    for (pack, st) in candidates {
        let over_limit = unused_after > allowed;
        let budget_ok = opts
            .max_repack_bytes
            .is_none_or(|m| repacked + st.size <= m);
        if over_limit && budget_ok {
            plan.packs_repack.push(pack);
            plan.bytes_repack += st.size;
            plan.bytes_repack_unused += st.unused_bytes;
            unused_after -= st.unused_bytes;
            repacked += st.size;
        } else {
            plan.packs_keep += 1;
        }
    }
    plan.bytes_unused_after = unused_after;
    plan.packs_delete.sort();
    plan.packs_repack.sort();
    plan.packs_unindexed.sort();
    plan.packs_missing.sort();
    plan.used = used;
    Ok(plan)
}

/// What `execute` did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct PruneResult {
    pub packs_written: usize,
    pub index_files_written: usize,
    pub index_files_deleted: usize,
    pub packs_deleted: usize,
    pub bytes_freed: u64,
    /// Snapshots appeared while pruning: nothing was deleted.
    pub deletion_skipped: bool,
    /// Files the storage refused to delete because a retention rule (object
    /// lock) holds them: they stay, unreferenced, until the rule lets go.
    pub retained: usize,
}

/// Copy the used blobs of one pack into the saver, verifying each.
fn repack_pack(
    repo: &Repository,
    saver: &BlobSaver,
    plan: &PrunePlan,
    p: &IndexPack,
) -> Result<()> {
    crate::cancel::check()?;
    let pname = name(FileType::Pack, &p.id);
    let bytes = repo.backend().get(&pname)?;
    for b in p
        .blobs
        .iter()
        .filter(|b| plan.used.contains(&b.id, b.blob_type))
    {
        let start = b.offset as usize;
        let sealed = bytes
            .get(start..start + b.length as usize)
            .ok_or_else(|| EngineError::corrupt(&pname, "blob extends past the end"))?;
        let loc = BlobLocation {
            pack: p.id,
            offset: b.offset,
            length: b.length,
            uncompressed_length: b.uncompressed_length,
        };
        repo.decode_blob(&b.id, &loc, sealed.to_vec())
            .map_err(|why| {
                EngineError::corrupt(
                    &pname,
                    format!("blob {}: {why}; prune stops before deleting anything", b.id),
                )
            })?;
        saver.save_sealed(b.blob_type, b.id, sealed.to_vec(), b.uncompressed_length)?;
    }
    Ok(())
}

/// Carry out `plan`.
pub fn execute(
    repo: &Arc<Repository>,
    plan: &PrunePlan,
    opts: &PruneOptions,
    notice: &mut dyn FnMut(String),
) -> Result<PruneResult> {
    let mut result = PruneResult::default();
    if opts.dry_run {
        return Ok(result);
    }
    // temporary files of writers that died on this host (and old ones)
    repo.backend()
        .clean_temporary(std::time::Duration::from_secs(3600))?;
    if plan.is_noop() {
        return Ok(result);
    }
    let threads = opts.threads.max(2);
    let repack: HashSet<Id> = plan.packs_repack.iter().copied().collect();
    let dropped: HashSet<Id> = plan
        .packs_delete
        .iter()
        .chain(&plan.packs_repack)
        .chain(&plan.packs_missing)
        .copied()
        .collect();

    // 1. repack used blobs of repacked packs (verified, copied sealed), one
    //    pack at a time as the index files list them
    if !repack.is_empty() {
        let saver = BlobSaver::new(
            repo.clone(),
            Arc::new(MasterIndex::new()),
            opts.saver.clone(),
        );
        let mut done: HashSet<Id> = HashSet::new();
        let mut failure = None;
        for_each_index_entry(repo, &plan.index_files, threads, &mut |_, p| {
            // a pack listed by two index files is taken once
            if failure.is_some() || !repack.contains(&p.id) || !done.insert(p.id) {
                return;
            }
            if let Err(e) = repack_pack(repo, &saver, plan, p) {
                failure = Some(e);
            }
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
        let sum = saver.finish()?;
        result.packs_written = sum.packs.len();
        result.index_files_written += sum.index_files.len();
    }

    // 2. new index files for every pack kept, streamed file by file
    let mut batch = IndexFile {
        supersedes: plan.index_files.clone(),
        packs: Vec::new(),
    };
    let mut count = 0usize;
    let mut written = Vec::new();
    let mut emitted: HashSet<Id> = HashSet::new();
    let mut err = None;
    for_each_index_entry(repo, &plan.index_files, threads, &mut |_, p| {
        if err.is_some() || dropped.contains(&p.id) || !emitted.insert(p.id) {
            return;
        }
        count += p.blobs.len();
        batch.packs.push(p.clone());
        if count >= 50_000 {
            match repo.save_json(FileType::Index, &batch.to_json()) {
                Ok(id) => written.push(id),
                Err(e) => err = Some(e),
            }
            batch.packs.clear();
            count = 0;
        }
    })?;
    if let Some(e) = err {
        return Err(e);
    }
    if !batch.packs.is_empty() {
        written.push(repo.save_json(FileType::Index, &batch.to_json())?);
    }
    result.index_files_written += written.len();

    // a snapshot written meanwhile could need what we would delete
    let now: HashSet<Id> = repo.list_ids(FileType::Snapshot)?.into_iter().collect();
    if !now.is_subset(&plan.snapshot_ids) {
        notice("new snapshots appeared while pruning: nothing deleted (run prune again)".into());
        result.deletion_skipped = true;
        return Ok(result);
    }

    // 3. old index files, then packs; a file the storage retains (object
    // lock) stays and is counted: it is garbage nobody refers to, not damage
    let retained = std::sync::atomic::AtomicUsize::new(0);
    let delete = |ftype: FileType, id: &Id| -> Result<()> {
        match repo.backend().delete(&name(ftype, id)) {
            Ok(()) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(holdfast_storage::StorageError::Retained { .. }) => {
                retained.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    };
    crate::parallel::map(plan.index_files.clone(), threads, |id| {
        delete(FileType::Index, &id)
    })?;
    result.index_files_deleted = plan.index_files.len();
    let doomed: Vec<Id> = plan
        .packs_delete
        .iter()
        .chain(&plan.packs_repack)
        .chain(&plan.packs_unindexed)
        .copied()
        .collect();
    result.packs_deleted = doomed.len();
    crate::parallel::map(doomed, threads.max(4), |id| delete(FileType::Pack, &id))?;
    result.retained = retained.into_inner();
    if result.retained > 0 {
        notice(format!(
            "{} file(s) are retained by the storage (object lock) and were not deleted; they \
             hold no data any snapshot needs",
            result.retained
        ));
    }
    result.bytes_freed = plan.bytes_freed();
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob_saver::BlobSaver;
    use crate::repository::InitOptions;
    use holdfast_format::BlobType;
    use holdfast_storage::{Backend, MemoryBackend};

    #[test]
    fn deletes_an_object_lock_refuses_are_counted_as_retained_not_failures() {
        let mb = Arc::new(MemoryBackend::new());
        let be: Arc<dyn Backend> = mb.clone();
        let repo = Arc::new(Repository::init(be, b"pw", &InitOptions { kdf_log_n: 10 }).unwrap());
        // blobs in packs, and no snapshot: every pack is garbage
        let saver = BlobSaver::new(
            repo.clone(),
            repo.index().unwrap(),
            SaverOptions {
                pack_size: 4096,
                ..Default::default()
            },
        );
        for i in 0..30u32 {
            // incompressible, so the packs fill
            let mut x = u64::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            let data: Vec<u8> = (0..3000)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            saver.save(BlobType::Data, data).unwrap();
        }
        let packs = saver.finish().unwrap().packs.len();
        assert!(packs > 1);
        mb.retain(FileType::Pack);
        let opts = PruneOptions {
            max_unused: MaxUnused::Percent(0.0),
            max_repack_bytes: None,
            dry_run: false,
            saver: SaverOptions::default(),
            threads: 2,
        };
        let p = plan(&repo, &opts).unwrap();
        let mut notices = Vec::new();
        let r = execute(&repo, &p, &opts, &mut |m| notices.push(m)).unwrap();
        assert_eq!(r.retained, packs, "{r:?}");
        assert_eq!(repo.list_packs().unwrap().len(), packs, "the packs stay");
        assert!(
            notices.iter().any(|n| n.contains("retained")),
            "{notices:?}"
        );
    }

    #[test]
    fn limits() {
        assert_eq!(MaxUnused::parse("5%").unwrap(), MaxUnused::Percent(5.0));
        assert_eq!(MaxUnused::parse("10M").unwrap(), MaxUnused::Bytes(10 << 20));
        assert_eq!(MaxUnused::parse("unlimited").unwrap(), MaxUnused::Unlimited);
        assert!(MaxUnused::parse("100%").is_err());
        assert_eq!(MaxUnused::Percent(50.0).allowed(100), 100);
        assert_eq!(MaxUnused::Percent(0.0).allowed(100), 0);
        assert_eq!(parse_size("2g").unwrap(), 2 << 30);
    }
}
