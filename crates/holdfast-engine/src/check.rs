//! Verifying a repository: every file readable and consistent, every blob a
//! snapshot needs present, and (with `read_data`) every byte of every pack
//! decrypted and re-hashed.
//!
//! Damage is reported as [`Finding`]s naming the file (pack, index, snapshot,
//! key), the blob, and the snapshots and paths it affects. Nothing here
//! panics on damaged input, and nothing is written.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use holdfast_format::pack::{self, PackedBlob};
use holdfast_format::tree::NodeType;
use holdfast_format::{BlobType, Id, crypto};
use holdfast_storage::FileType;
use serde::Serialize;

use crate::error::{EngineError, Result};
use crate::index::{BlobLocation, MasterIndex};
use crate::repository::{Repository, name};

/// How much pack data to read and verify.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ReadData {
    /// Headers only.
    None,
    All,
    /// Part `n` of `m` (1-based): packs whose first id byte mod `m` is `n-1`,
    /// restic's deterministic subsets.
    Subset {
        n: u32,
        m: u32,
    },
    /// A random share of the packs, in percent.
    Percent(f64),
}

impl ReadData {
    /// Parse `N/M` or `P%`.
    pub fn parse_subset(s: &str) -> std::result::Result<ReadData, String> {
        if let Some(p) = s.strip_suffix('%') {
            let v: f64 = p
                .trim()
                .parse()
                .map_err(|_| format!("invalid percentage {s:?}"))?;
            if !(v > 0.0 && v <= 100.0) {
                return Err(format!("percentage {s:?} must be in (0, 100]"));
            }
            return Ok(ReadData::Percent(v));
        }
        let (n, m) = s
            .split_once('/')
            .ok_or_else(|| format!("invalid subset {s:?}: use N/M or P%"))?;
        let n: u32 = n
            .trim()
            .parse()
            .map_err(|_| format!("invalid subset {s:?}"))?;
        let m: u32 = m
            .trim()
            .parse()
            .map_err(|_| format!("invalid subset {s:?}"))?;
        if m == 0 || n == 0 || n > m {
            return Err(format!("invalid subset {s:?}: need 1 <= N <= M"));
        }
        Ok(ReadData::Subset { n, m })
    }

    fn selects(&self, id: &Id, coin: &mut impl FnMut() -> f64) -> bool {
        match *self {
            ReadData::None => false,
            ReadData::All => true,
            ReadData::Subset { n, m } => (id.0[0] as u32) % m == n - 1,
            ReadData::Percent(p) => coin() * 100.0 < p,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// A snapshot and a path in it that a finding affects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, PartialOrd, Ord)]
pub struct Affected {
    pub snapshot: String,
    pub path: String,
}

/// One problem found.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub severity: Severity,
    /// What kind of object: key, index, pack, snapshot, tree, blob.
    pub kind: &'static str,
    /// The repository file, e.g. `data/ab/ab12…` or `index/…`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blob: Option<String>,
    pub message: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub affects: Vec<Affected>,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct CheckSummary {
    pub errors: u64,
    pub warnings: u64,
    pub keys: usize,
    pub index_files: usize,
    pub packs: usize,
    pub packs_read: usize,
    pub bytes_read: u64,
    pub snapshots: usize,
    pub trees: usize,
    pub data_blobs_referenced: usize,
}

pub struct CheckOptions {
    pub read_data: ReadData,
    pub threads: usize,
}

struct Reporter<'a> {
    sink: Mutex<&'a mut (dyn FnMut(Finding) + Send)>,
    summary: Mutex<CheckSummary>,
}

impl Reporter<'_> {
    fn report(&self, f: Finding) {
        {
            let mut s = self.summary.lock().unwrap();
            match f.severity {
                Severity::Error => s.errors += 1,
                Severity::Warning => s.warnings += 1,
            }
        }
        (self.sink.lock().unwrap())(f);
    }

    fn error(&self, kind: &'static str, file: Option<String>, blob: Option<Id>, message: String) {
        self.report(Finding {
            severity: Severity::Error,
            kind,
            file,
            blob: blob.map(|b| b.to_hex()),
            message,
            affects: Vec::new(),
        });
    }
}

/// Header overhead of a pack with these blobs: sealed header plus length.
fn header_size(blobs: &[(Id, BlobType, BlobLocation)]) -> u64 {
    let entries: u64 = blobs
        .iter()
        .map(|(_, _, l)| {
            if l.uncompressed_length.is_some() {
                41
            } else {
                37
            }
        })
        .sum();
    entries + crypto::OVERHEAD as u64 + pack::TRAILER_LEN as u64
}

fn same_blobs(index: &[(Id, BlobType, BlobLocation)], header: &[PackedBlob]) -> bool {
    let mut a: Vec<(Id, BlobType, u32, u32, Option<u32>)> = index
        .iter()
        .map(|(id, t, l)| (*id, *t, l.offset, l.length, l.uncompressed_length))
        .collect();
    let mut b: Vec<(Id, BlobType, u32, u32, Option<u32>)> = header
        .iter()
        .map(|h| (h.id, h.blob_type, h.offset, h.length, h.uncompressed_length))
        .collect();
    a.sort();
    a.dedup();
    b.sort();
    a == b
}

/// Check `repo`, reporting each finding to `sink` as it is made: keys,
/// index files, packs, then every snapshot's trees.
pub fn check(
    repo: &Repository,
    opts: &CheckOptions,
    sink: &mut (dyn FnMut(Finding) + Send),
) -> Result<CheckSummary> {
    let rep = Reporter {
        sink: Mutex::new(sink),
        summary: Mutex::new(CheckSummary::default()),
    };
    let threads = opts.threads.max(1);
    let keys = check_keys(repo, &rep)?;
    let indexes = load_indexes(repo, &rep, threads)?;
    let packs = PackBlobs::of(&indexes.idx);
    let damaged = check_packs(repo, &rep, &indexes, &packs, &opts.read_data, threads)?;
    let (snapshots, walker) = check_snapshots(repo, &rep, &indexes.idx, &damaged)?;
    let mut s = rep.summary.into_inner().unwrap();
    s.keys = keys;
    s.index_files = indexes.files;
    s.snapshots = snapshots;
    s.trees = walker.memo.len();
    s.data_blobs_referenced = walker.data_blobs.len();
    Ok(s)
}

/// Keys: each file's name is the SHA-256 of its bytes, and it parses.
fn check_keys(repo: &Repository, rep: &Reporter) -> Result<usize> {
    let key_ids = repo.list_ids(FileType::Key)?;
    for id in &key_ids {
        let n = name(FileType::Key, id);
        match repo.backend().get(&n) {
            Ok(b) if Id::hash(&b) != *id => rep.error(
                "key",
                Some(n.path()),
                None,
                "content does not match its name (SHA-256 mismatch)".into(),
            ),
            Ok(b) => {
                if let Err(e) = holdfast_format::keyfile::KeyFile::parse(&b) {
                    rep.error("key", Some(n.path()), None, e.to_string());
                }
            }
            Err(e) => rep.error("key", Some(n.path()), None, e.to_string()),
        }
    }
    Ok(key_ids.len())
}

/// The index files that could be read, merged.
struct Indexes {
    idx: MasterIndex,
    /// Which index files list each pack.
    pack_in_index: HashMap<Id, Vec<Id>>,
    files: usize,
}

/// Index files, one by one, so a damaged one is named and the others used.
fn load_indexes(repo: &Repository, rep: &Reporter, threads: usize) -> Result<Indexes> {
    let index_ids = repo.list_ids(FileType::Index)?;
    let files = index_ids.len();
    let loaded = crate::parallel::map(index_ids, threads, |id| -> Result<_> {
        Ok((id, repo.load_index_file(&id)))
    })?;
    let mut idx = MasterIndex::new();
    let mut pack_in_index: HashMap<Id, Vec<Id>> = HashMap::new();
    for (id, r) in loaded {
        match r {
            Ok(file) => {
                for p in &file.packs {
                    pack_in_index.entry(p.id).or_default().push(id);
                }
                idx.add_index_file(Some(id), &file);
            }
            Err(e) => rep.error(
                "index",
                Some(name(FileType::Index, &id).path()),
                None,
                e.to_string(),
            ),
        }
    }
    idx.finish();
    Ok(Indexes {
        idx,
        pack_in_index,
        files,
    })
}

/// The index's entries grouped by pack: positions in pack order (4 bytes
/// per blob, no copy of the index) and each pack's range of them.
struct PackBlobs<'i> {
    idx: &'i MasterIndex,
    order: Vec<u32>,
    ranges: BTreeMap<Id, (usize, usize)>,
}

impl<'i> PackBlobs<'i> {
    fn of(idx: &'i MasterIndex) -> PackBlobs<'i> {
        let order = idx.positions_by_pack();
        let mut ranges = BTreeMap::new();
        let mut i = 0;
        while i < order.len() {
            let pack = idx.entry(order[i] as usize).2.pack;
            let mut j = i + 1;
            while j < order.len() && idx.entry(order[j] as usize).2.pack == pack {
                j += 1;
            }
            ranges.insert(pack, (i, j));
            i = j;
        }
        PackBlobs { idx, order, ranges }
    }

    fn blobs(&self, range: (usize, usize)) -> Vec<(Id, BlobType, BlobLocation)> {
        self.order[range.0..range.1]
            .iter()
            .map(|&p| self.idx.entry(p as usize))
            .collect()
    }
}

/// Blobs that cannot be read back (their pack missing or damaged).
type Damaged = HashSet<(Id, BlobType)>;

/// Packs: listed vs indexed, sizes, headers, and the data of those
/// `read_data` selects. The blobs found damaged.
fn check_packs(
    repo: &Repository,
    rep: &Reporter,
    indexes: &Indexes,
    packs: &PackBlobs,
    read_data: &ReadData,
    threads: usize,
) -> Result<Damaged> {
    let listed: HashMap<Id, u64> = repo.list_packs()?;
    for (id, size) in &listed {
        if !packs.ranges.contains_key(id) {
            rep.report(Finding {
                severity: Severity::Warning,
                kind: "pack",
                file: Some(name(FileType::Pack, id).path()),
                blob: None,
                message: format!(
                    "not referenced by any index ({size} bytes; left by an interrupted backup or prune — `holdfast prune` removes it)"
                ),
                affects: Vec::new(),
            });
        }
    }
    let mut seed = Id::random().0[0] as u64 | 1;
    let mut coin = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % 1_000_000) as f64 / 1_000_000.0
    };
    let damaged: Mutex<Damaged> = Mutex::new(HashSet::new());
    let mark = |blobs: &[(Id, BlobType, BlobLocation)]| {
        let mut d = damaged.lock().unwrap();
        for (id, t, _) in blobs {
            d.insert((*id, *t));
        }
    };
    let mut work = Vec::new();
    for (pack_id, range) in &packs.ranges {
        let blobs = packs.blobs(*range);
        let pname = name(FileType::Pack, pack_id);
        let Some(&actual) = listed.get(pack_id) else {
            rep.error(
                "pack",
                Some(pname.path()),
                None,
                format!(
                    "missing, but index file(s) {} list it",
                    indexes.pack_in_index[pack_id]
                        .iter()
                        .map(|i| i.short())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
            mark(&blobs);
            continue;
        };
        let expected: u64 =
            blobs.iter().map(|(_, _, l)| l.length as u64).sum::<u64>() + header_size(&blobs);
        if expected != actual {
            rep.error(
                "pack",
                Some(pname.path()),
                None,
                format!("is {actual} bytes, the index implies {expected}"),
            );
        }
        let read = read_data.selects(pack_id, &mut coin);
        work.push((*pack_id, actual, *range, read));
    }
    rep.summary.lock().unwrap().packs = listed.len();
    crate::parallel::map(
        work,
        threads,
        |(pack_id, size, range, read)| -> Result<()> {
            let blobs = packs.blobs(range);
            let fully = match read {
                true => check_pack_data(repo, rep, &pack_id, &blobs),
                false => check_pack_header(repo, rep, &pack_id, size, &blobs),
            };
            match fully {
                Ok(bad) => damaged.lock().unwrap().extend(bad),
                Err(()) => mark(&blobs),
            }
            Ok(())
        },
    )?;
    Ok(damaged.into_inner().unwrap())
}

/// A pack's header against the index; `Err` when it cannot be read.
fn check_pack_header(
    repo: &Repository,
    rep: &Reporter,
    pack_id: &Id,
    size: u64,
    blobs: &[(Id, BlobType, BlobLocation)],
) -> std::result::Result<Vec<(Id, BlobType)>, ()> {
    let pname = name(FileType::Pack, pack_id);
    match repo.read_pack_header(pack_id, size) {
        Ok(h) if same_blobs(blobs, &h) => {}
        Ok(_) => rep.error(
            "pack",
            Some(pname.path()),
            None,
            "header does not agree with the index".into(),
        ),
        Err(e) => {
            rep.error("pack", Some(pname.path()), None, e.to_string());
            return Err(());
        }
    }
    Ok(Vec::new())
}

/// A whole pack read: its hash, its header against the index, and every
/// blob decrypted and re-hashed. The blobs found damaged; `Err` when the
/// pack cannot be read at all.
fn check_pack_data(
    repo: &Repository,
    rep: &Reporter,
    pack_id: &Id,
    blobs: &[(Id, BlobType, BlobLocation)],
) -> std::result::Result<Vec<(Id, BlobType)>, ()> {
    let pname = name(FileType::Pack, pack_id);
    let bytes = match repo.backend().get(&pname) {
        Ok(b) => b,
        Err(e) => {
            rep.error("pack", Some(pname.path()), None, e.to_string());
            return Err(());
        }
    };
    {
        let mut s = rep.summary.lock().unwrap();
        s.bytes_read += bytes.len() as u64;
        s.packs_read += 1;
    }
    if Id::hash(&bytes) != *pack_id {
        rep.error(
            "pack",
            Some(pname.path()),
            None,
            "content does not match its name (SHA-256 mismatch)".into(),
        );
    }
    match pack::parse_tail(repo.key(), &bytes, bytes.len() as u64) {
        Ok(h) if !same_blobs(blobs, &h) => rep.error(
            "pack",
            Some(pname.path()),
            None,
            "header does not agree with the index".into(),
        ),
        Ok(_) => {}
        Err(e) => rep.error("pack", Some(pname.path()), None, format!("header: {e}")),
    }
    let mut bad = Vec::new();
    for (id, t, loc) in blobs {
        let start = loc.offset as usize;
        let end = start + loc.length as usize;
        let r = match bytes.get(start..end) {
            None => Err("extends past the end of the pack".to_string()),
            Some(sealed) => repo.decode_blob(id, loc, sealed.to_vec()).map(|_| ()),
        };
        if let Err(why) = r {
            rep.error(
                "blob",
                Some(pname.path()),
                Some(*id),
                format!("{t} blob: {why}"),
            );
            bad.push((*id, *t));
        }
    }
    Ok(bad)
}

/// Every snapshot and the trees below it; a problem found in a tree is
/// reported once, with every (snapshot, path) it affects. The number of
/// snapshots read, and the walker (its memo of trees and data blobs).
fn check_snapshots<'a>(
    repo: &'a Repository,
    rep: &Reporter,
    idx: &'a MasterIndex,
    damaged: &'a Damaged,
) -> Result<(usize, TreeChecker<'a>)> {
    let snap_ids = repo.list_ids(FileType::Snapshot)?;
    let mut walker = TreeChecker {
        repo,
        idx,
        damaged,
        memo: HashMap::new(),
        data_blobs: HashSet::new(),
    };
    // problem description -> affected (snapshot, path)
    let mut problems: BTreeMap<(String, Option<Id>, String), Vec<Affected>> = BTreeMap::new();
    let mut snapshots = 0;
    for sid in &snap_ids {
        let snap = match repo.load_snapshot(sid) {
            Ok(s) => s,
            Err(e) => {
                rep.error(
                    "snapshot",
                    Some(name(FileType::Snapshot, sid).path()),
                    None,
                    e.to_string(),
                );
                continue;
            }
        };
        snapshots += 1;
        let r = walker.tree(&snap.tree, 0);
        for p in r.iter() {
            problems
                .entry((p.kind.to_string(), p.blob, p.message.clone()))
                .or_default()
                .push(Affected {
                    snapshot: sid.to_hex(),
                    path: if p.path.is_empty() {
                        "/".into()
                    } else {
                        String::from_utf8_lossy(&p.path).into_owned()
                    },
                });
        }
    }
    for ((kind, blob, message), mut affects) in problems {
        affects.sort();
        affects.dedup();
        let kind: &'static str = if kind == "tree" { "tree" } else { "blob" };
        let file = blob.and_then(|b| {
            let t = if kind == "tree" {
                BlobType::Tree
            } else {
                BlobType::Data
            };
            idx.lookup(&b, t)
                .map(|l| name(FileType::Pack, &l.pack).path())
        });
        rep.report(Finding {
            severity: Severity::Error,
            kind,
            file,
            blob: blob.map(|b| b.to_hex()),
            message,
            affects,
        });
    }
    Ok((snapshots, walker))
}

#[derive(Clone)]
struct Problem {
    kind: &'static str,
    blob: Option<Id>,
    message: String,
    /// Path below the tree where it was found (`/a/b`).
    path: Vec<u8>,
}

/// Problems found in a tree and everything below it (at most this many per
/// tree are kept, so a badly damaged repository cannot exhaust memory).
const MAX_PROBLEMS_PER_TREE: usize = 1000;

struct TreeChecker<'a> {
    repo: &'a Repository,
    idx: &'a MasterIndex,
    damaged: &'a HashSet<(Id, BlobType)>,
    memo: HashMap<Id, std::rc::Rc<Vec<Problem>>>,
    data_blobs: HashSet<Id>,
}

impl TreeChecker<'_> {
    fn blob_problem(&self, id: &Id, t: BlobType) -> Option<String> {
        if !self.idx.has(id, t) {
            Some(format!("{t} blob is not in any index"))
        } else if self.damaged.contains(&(*id, t)) {
            Some(format!("{t} blob is damaged or its pack is missing"))
        } else {
            None
        }
    }

    fn tree(&mut self, id: &Id, depth: usize) -> std::rc::Rc<Vec<Problem>> {
        if let Some(r) = self.memo.get(id) {
            return r.clone();
        }
        let mut out = Vec::new();
        let push = |out: &mut Vec<Problem>, p: Problem| {
            if out.len() < MAX_PROBLEMS_PER_TREE {
                out.push(p);
            }
        };
        if depth > crate::tree_walk::MAX_DEPTH {
            push(
                &mut out,
                Problem {
                    kind: "tree",
                    blob: Some(*id),
                    message: "nested too deep".into(),
                    path: Vec::new(),
                },
            );
        } else if let Some(why) = self.blob_problem(id, BlobType::Tree) {
            push(
                &mut out,
                Problem {
                    kind: "tree",
                    blob: Some(*id),
                    message: why,
                    path: Vec::new(),
                },
            );
        } else {
            match self.repo.load_tree(id) {
                Err(e) => push(
                    &mut out,
                    Problem {
                        kind: "tree",
                        blob: Some(*id),
                        message: e.to_string(),
                        path: Vec::new(),
                    },
                ),
                Ok(t) => {
                    for node in &t.nodes {
                        let mut p = b"/".to_vec();
                        p.extend_from_slice(&node.name);
                        if node.name.is_empty() || node.name.contains(&b'/') {
                            push(
                                &mut out,
                                Problem {
                                    kind: "tree",
                                    blob: Some(*id),
                                    message: "node with an invalid name".into(),
                                    path: p.clone(),
                                },
                            );
                        }
                        match node.node_type {
                            NodeType::File => match &node.content {
                                None => push(
                                    &mut out,
                                    Problem {
                                        kind: "tree",
                                        blob: Some(*id),
                                        message: "file without a content list".into(),
                                        path: p.clone(),
                                    },
                                ),
                                Some(c) => {
                                    for b in c {
                                        self.data_blobs.insert(*b);
                                        if let Some(why) = self.blob_problem(b, BlobType::Data) {
                                            push(
                                                &mut out,
                                                Problem {
                                                    kind: "blob",
                                                    blob: Some(*b),
                                                    message: why,
                                                    path: p.clone(),
                                                },
                                            );
                                        }
                                    }
                                }
                            },
                            NodeType::Dir => match node.subtree {
                                None => push(
                                    &mut out,
                                    Problem {
                                        kind: "tree",
                                        blob: Some(*id),
                                        message: "directory without a subtree".into(),
                                        path: p.clone(),
                                    },
                                ),
                                Some(sub) => {
                                    let below = self.tree(&sub, depth + 1);
                                    for q in below.iter() {
                                        let mut qp = p.clone();
                                        qp.extend_from_slice(&q.path);
                                        push(
                                            &mut out,
                                            Problem {
                                                path: qp,
                                                ..q.clone()
                                            },
                                        );
                                    }
                                }
                            },
                            NodeType::Unknown => push(
                                &mut out,
                                Problem {
                                    kind: "tree",
                                    blob: Some(*id),
                                    message: "node of an unknown type".into(),
                                    path: p.clone(),
                                },
                            ),
                            _ => {}
                        }
                    }
                }
            }
        }
        let r = std::rc::Rc::new(out);
        self.memo.insert(*id, r.clone());
        r
    }
}

/// An `EngineError` for "check found problems".
pub fn failed(summary: &CheckSummary) -> EngineError {
    EngineError::Invalid(format!(
        "check found {} error(s) and {} warning(s)",
        summary.errors, summary.warnings
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subsets() {
        assert_eq!(
            ReadData::parse_subset("2/5").unwrap(),
            ReadData::Subset { n: 2, m: 5 }
        );
        assert_eq!(
            ReadData::parse_subset("10%").unwrap(),
            ReadData::Percent(10.0)
        );
        for bad in ["0/5", "6/5", "x", "0%", "101%", "1/0"] {
            assert!(ReadData::parse_subset(bad).is_err(), "{bad}");
        }
        // every pack is in exactly one of the M parts
        let mut coin = || 0.5;
        for b in 0..=255u8 {
            let id = Id([b; 32]);
            let hits = (1..=4)
                .filter(|n| ReadData::Subset { n: *n, m: 4 }.selects(&id, &mut coin))
                .count();
            assert_eq!(hits, 1);
        }
    }
}
