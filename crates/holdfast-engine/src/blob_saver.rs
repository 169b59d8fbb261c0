//! The write pipeline: deduplicate, compress, encrypt, pack, store, index.
//!
//! ```text
//! caller threads ──save()──▶ [dedup: index + session set]
//!     ──▶ compress+seal workers (N) ──▶ packer (1) ──▶ uploaders (C)
//!                                                   ──▶ indexer (1) ──▶ index files
//! ```
//!
//! Every stage is connected by a bounded channel, so memory is bounded by
//! (queue lengths × batch size) + (two packs per blob type). Blobs travel
//! in batches (up to [`BATCH_BLOBS`] blobs or [`BATCH_BYTES`]): a database
//! dump cut into 8 KiB chunks is ~125,000 blobs per GiB, and one channel
//! hand-off per blob (a wake-up, often a context switch) cost more CPU than
//! cutting the chunks. C uploaders (the backend's
//! [`holdfast_storage::Backend::connections`]: one for a local disk, several
//! for an object store, where a request's latency, not the bandwidth, bounds
//! one connection) store packs concurrently; the indexer
//! records a pack in an index file only after the pack is durably stored,
//! and [`BlobSaver::finish`] returns only after every pack and the index
//! covering it are stored: the caller may then write a snapshot (restic's
//! ordering: packs → index → snapshot).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, bounded};
use holdfast_format::index::{IndexFile, IndexPack};
use holdfast_format::pack::{FinishedPack, PackBuilder};
use holdfast_format::{BlobType, Id, crypto};
use holdfast_storage::FileType;

use crate::buffer_pool::BufferPool;
use crate::error::{EngineError, Result};
use crate::index::MasterIndex;
use crate::repository::{Compression, Repository, name};

#[derive(Debug, Clone)]
pub struct SaverOptions {
    pub compression: Compression,
    /// Target size of a pack file.
    pub pack_size: usize,
    /// Compress/encrypt threads.
    pub workers: usize,
    /// Write an index file once this many blobs are stored but unindexed.
    pub index_every_blobs: usize,
    /// Count what would be written, but write nothing (`--dry-run`).
    pub dry_run: bool,
}

impl Default for SaverOptions {
    fn default() -> Self {
        SaverOptions {
            compression: Compression::Auto,
            pack_size: 16 * 1024 * 1024,
            workers: crate::parallel::cpus(),
            index_every_blobs: 50_000,
            dry_run: false,
        }
    }
}

/// Counters of what this session added to the repository.
#[derive(Debug, Default)]
pub struct SaverStats {
    pub data_blobs: AtomicU64,
    pub tree_blobs: AtomicU64,
    /// Plaintext bytes of new blobs.
    pub added_plain: AtomicU64,
    /// Bytes the new blobs take in packs (compressed and sealed).
    pub added_packed: AtomicU64,
    pub packs: AtomicU64,
    pub index_files: AtomicU64,
}

/// What `finish` returns.
#[derive(Debug, Default, Clone)]
pub struct SaverSummary {
    pub data_blobs: u64,
    pub tree_blobs: u64,
    pub added_plain: u64,
    pub added_packed: u64,
    pub packs: Vec<IndexPack>,
    pub index_files: Vec<Id>,
}

/// A batch is sent on once it holds this many blobs…
pub const BATCH_BLOBS: usize = 32;
/// …or this many bytes.
pub const BATCH_BYTES: usize = 256 * 1024;

/// Blobs waiting to be sent to the seal workers as one batch.
#[derive(Default)]
struct Pending {
    items: Vec<Work>,
    bytes: usize,
}

/// Most blobs one pack holds, whatever their size.
pub const MAX_BLOBS_PER_PACK: usize = 10_000;

struct Work {
    blob_type: BlobType,
    id: Id,
    data: Vec<u8>,
    /// `data` is already sealed (repacking copies blobs without
    /// re-encrypting them): `Some(uncompressed length if compressed)`.
    presealed: Option<Option<u32>>,
}

struct Sealed {
    blob_type: BlobType,
    id: Id,
    sealed: Vec<u8>,
    uncompressed_length: Option<u32>,
}

struct Shared {
    repo: Arc<Repository>,
    index: Arc<MasterIndex>,
    session: Mutex<HashSet<(Id, BlobType)>>,
    error: Mutex<Option<EngineError>>,
    stats: SaverStats,
    opts: SaverOptions,
    written: Mutex<Vec<IndexPack>>,
    index_files: Mutex<Vec<Id>>,
    /// Chunk and sealed-blob buffers.
    blobs: BufferPool,
    /// Pack buffers.
    packs: BufferPool,
}

impl Shared {
    fn fail(&self, e: EngineError) {
        let mut slot = self.error.lock().unwrap();
        if slot.is_none() {
            *slot = Some(e);
        }
    }
    fn failed(&self) -> bool {
        self.error.lock().unwrap().is_some()
    }
}

/// Whether `save` stored a new blob or found it already present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaveOutcome {
    pub id: Id,
    pub new: bool,
}

pub struct BlobSaver {
    shared: Arc<Shared>,
    work_tx: Option<Sender<Vec<Work>>>,
    pending: Mutex<Pending>,
    threads: Vec<JoinHandle<()>>,
}

impl BlobSaver {
    pub fn new(repo: Arc<Repository>, index: Arc<MasterIndex>, opts: SaverOptions) -> BlobSaver {
        if !opts.dry_run {
            // What a writer killed on this host left in tmp/ goes now; the
            // packs it stored are removed by the next prune.
            let _ = repo
                .backend()
                .clean_temporary(std::time::Duration::from_secs(3600));
        }
        let workers = opts.workers.max(1);
        let uploaders = repo.backend().connections().max(1);
        let shared = Arc::new(Shared {
            repo,
            index,
            session: Mutex::new(HashSet::new()),
            error: Mutex::new(None),
            stats: SaverStats::default(),
            opts: opts.clone(),
            written: Mutex::new(Vec::new()),
            index_files: Mutex::new(Vec::new()),
            // Enough for the queues between the stages; chunks above
            // 4 MiB are rare and not kept.
            blobs: BufferPool::new(workers * 4 + 4, 4 << 20),
            packs: BufferPool::new(2 + uploaders, opts.pack_size * 2),
        });
        let (work_tx, work_rx) = bounded::<Vec<Work>>(workers * 2);
        let (sealed_tx, sealed_rx) = bounded::<Vec<Sealed>>(workers * 2);
        // Two finished packs may wait while C are being stored, so an fsync
        // or a slow request does not stall compression.
        let (pack_tx, pack_rx) = bounded::<FinishedPack>(2);
        let (stored_tx, stored_rx) = bounded::<IndexPack>(uploaders * 2);
        let mut threads = Vec::new();
        for i in 0..workers {
            let rx = work_rx.clone();
            let tx = sealed_tx.clone();
            let sh = shared.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("hf-seal-{i}"))
                    .spawn(move || seal_worker(sh, rx, tx))
                    .expect("spawn thread"),
            );
        }
        drop(sealed_tx);
        let sh = shared.clone();
        threads.push(
            std::thread::Builder::new()
                .name("hf-packer".into())
                .spawn(move || packer(sh, sealed_rx, pack_tx))
                .expect("spawn thread"),
        );
        for i in 0..uploaders {
            let sh = shared.clone();
            let rx = pack_rx.clone();
            let tx = stored_tx.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("hf-upload-{i}"))
                    .spawn(move || uploader(sh, rx, tx))
                    .expect("spawn thread"),
            );
        }
        drop((pack_rx, stored_tx));
        let sh = shared.clone();
        threads.push(
            std::thread::Builder::new()
                .name("hf-indexer".into())
                .spawn(move || indexer(sh, stored_rx))
                .expect("spawn thread"),
        );
        BlobSaver {
            shared,
            work_tx: Some(work_tx),
            pending: Mutex::new(Pending::default()),
            threads,
        }
    }

    pub fn stats(&self) -> &SaverStats {
        &self.shared.stats
    }

    /// A buffer to copy a chunk into before [`BlobSaver::save_hashed`];
    /// the pipeline hands it back to the pool once the blob is sealed.
    pub fn buffer(&self, len: usize) -> Vec<u8> {
        self.shared.blobs.get(len)
    }

    /// True when the blob is in the repository or was saved in this session.
    pub fn known(&self, id: &Id, t: BlobType) -> bool {
        self.shared.index.has(id, t) || self.shared.session.lock().unwrap().contains(&(*id, t))
    }

    fn check(&self) -> Result<()> {
        if let Some(e) = self.shared.error.lock().unwrap().take() {
            return Err(e);
        }
        Ok(())
    }

    /// Store `data` as a blob unless it already exists. Blocks when the
    /// pipeline is full.
    pub fn save(&self, blob_type: BlobType, data: Vec<u8>) -> Result<SaveOutcome> {
        let id = Id::hash(&data);
        self.save_hashed(blob_type, id, data)
    }

    /// Like [`BlobSaver::save`] with the id already computed by the caller.
    pub fn save_hashed(&self, blob_type: BlobType, id: Id, data: Vec<u8>) -> Result<SaveOutcome> {
        if self.shared.index.has(&id, blob_type)
            || !self.shared.session.lock().unwrap().insert((id, blob_type))
        {
            self.shared.blobs.put(data);
            return Ok(SaveOutcome { id, new: false });
        }
        self.count_new(blob_type, data.len() as u64)?;
        self.send(Work {
            blob_type,
            id,
            data,
            presealed: None,
        })?;
        Ok(SaveOutcome { id, new: true })
    }

    /// Count a blob about to enter the pipeline (failing if it stopped).
    fn count_new(&self, blob_type: BlobType, plain_len: u64) -> Result<()> {
        if self.shared.failed() {
            return Err(self.take_error());
        }
        let st = &self.shared.stats;
        match blob_type {
            BlobType::Data => st.data_blobs.fetch_add(1, Ordering::Relaxed),
            BlobType::Tree => st.tree_blobs.fetch_add(1, Ordering::Relaxed),
        };
        st.added_plain.fetch_add(plain_len, Ordering::Relaxed);
        Ok(())
    }

    /// Add `w` to the pending batch; send the batch when it is full.
    fn send(&self, w: Work) -> Result<()> {
        let full = {
            let mut p = self.pending.lock().unwrap();
            p.bytes += w.data.len();
            p.items.push(w);
            if p.items.len() >= BATCH_BLOBS || p.bytes >= BATCH_BYTES {
                p.bytes = 0;
                std::mem::take(&mut p.items)
            } else {
                return Ok(());
            }
        };
        self.send_batch(full)
    }

    fn send_batch(&self, batch: Vec<Work>) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let tx = self.work_tx.as_ref().expect("saver not finished");
        tx.send(batch).map_err(|_| self.take_error())
    }

    /// Store a blob that is already sealed (and verified by the caller), as
    /// prune does when it repacks: the bytes are copied, not re-encrypted.
    /// No deduplication: the caller copies each blob once.
    pub fn save_sealed(
        &self,
        blob_type: BlobType,
        id: Id,
        sealed: Vec<u8>,
        uncompressed_length: Option<u32>,
    ) -> Result<SaveOutcome> {
        let plain = uncompressed_length
            .map(|u| u as u64)
            .unwrap_or(sealed.len().saturating_sub(crypto::OVERHEAD) as u64);
        self.count_new(blob_type, plain)?;
        self.send(Work {
            blob_type,
            id,
            data: sealed,
            presealed: Some(uncompressed_length),
        })?;
        Ok(SaveOutcome { id, new: true })
    }

    fn take_error(&self) -> EngineError {
        self.shared
            .error
            .lock()
            .unwrap()
            .take()
            .unwrap_or_else(|| EngineError::Invalid("blob pipeline stopped".into()))
    }

    /// Flush partial packs, store them, write the index for everything
    /// stored, and return what was added.
    pub fn finish(mut self) -> Result<SaverSummary> {
        let last = std::mem::take(&mut self.pending.lock().unwrap().items);
        let sent = self.send_batch(last);
        drop(self.work_tx.take());
        for t in self.threads.drain(..) {
            if t.join().is_err() {
                self.shared
                    .fail(EngineError::Invalid("a pipeline thread panicked".into()));
            }
        }
        self.check()?;
        sent?;
        let st = &self.shared.stats;
        Ok(SaverSummary {
            data_blobs: st.data_blobs.load(Ordering::Relaxed),
            tree_blobs: st.tree_blobs.load(Ordering::Relaxed),
            added_plain: st.added_plain.load(Ordering::Relaxed),
            added_packed: st.added_packed.load(Ordering::Relaxed),
            packs: std::mem::take(&mut *self.shared.written.lock().unwrap()),
            index_files: std::mem::take(&mut *self.shared.index_files.lock().unwrap()),
        })
    }
}

impl Drop for BlobSaver {
    fn drop(&mut self) {
        // Abandoned without finish (an error upstream): stop the threads.
        if self.work_tx.is_some() {
            self.shared
                .fail(EngineError::Invalid("backup abandoned".into()));
            drop(self.work_tx.take());
            for t in self.threads.drain(..) {
                let _ = t.join();
            }
        }
    }
}

fn seal_worker(sh: Arc<Shared>, rx: Receiver<Vec<Work>>, tx: Sender<Vec<Sealed>>) {
    let mut compressor = sh.opts.compression.compressor();
    let key = sh.repo.key().clone();
    let mut cbuf: Vec<u8> = Vec::new();
    for batch in rx {
        let mut out = Vec::with_capacity(batch.len());
        for w in batch {
            if sh.failed() {
                sh.blobs.put(w.data);
                continue;
            }
            out.push(seal_one(&sh, &key, compressor.as_mut(), &mut cbuf, w));
        }
        if !out.is_empty() && tx.send(out).is_err() {
            break;
        }
    }
}

/// Compress (when it saves space) and encrypt one blob.
fn seal_one(
    sh: &Shared,
    key: &crypto::MasterKey,
    compressor: Option<&mut zstd::bulk::Compressor<'static>>,
    cbuf: &mut Vec<u8>,
    w: Work,
) -> Sealed {
    if let Some(ulen) = w.presealed {
        sh.stats
            .added_packed
            .fetch_add(w.data.len() as u64, Ordering::Relaxed);
        return Sealed {
            blob_type: w.blob_type,
            id: w.id,
            sealed: w.data,
            uncompressed_length: ulen,
        };
    }
    let mut uncompressed_length = None;
    let mut sealed = sh.blobs.get(w.data.len() + crypto::OVERHEAD);
    match compressor {
        Some(c) => {
            let bound = zstd::zstd_safe::compress_bound(w.data.len());
            cbuf.clear();
            cbuf.reserve(bound);
            match c.compress_to_buffer(&w.data, cbuf) {
                // Store compressed only when it actually saves space.
                Ok(n) if n < w.data.len() => {
                    uncompressed_length = Some(w.data.len() as u32);
                    key.seal_into(&cbuf[..n], &mut sealed);
                }
                _ => key.seal_into(&w.data, &mut sealed),
            }
        }
        None => key.seal_into(&w.data, &mut sealed),
    }
    sh.blobs.put(w.data);
    sh.stats
        .added_packed
        .fetch_add(sealed.len() as u64, Ordering::Relaxed);
    Sealed {
        blob_type: w.blob_type,
        id: w.id,
        sealed,
        uncompressed_length,
    }
}

fn packer(sh: Arc<Shared>, rx: Receiver<Vec<Sealed>>, tx: Sender<FinishedPack>) {
    let target = sh.opts.pack_size;
    let mut data: Option<PackBuilder> = None;
    let mut tree: Option<PackBuilder> = None;
    let key = sh.repo.key().clone();
    for s in rx.into_iter().flatten() {
        if sh.failed() {
            continue;
        }
        let slot = match s.blob_type {
            BlobType::Data => &mut data,
            BlobType::Tree => &mut tree,
        };
        let b = slot
            .get_or_insert_with(|| PackBuilder::with_buffer(sh.packs.get(target + 1024 * 1024)));
        b.add(s.blob_type, s.id, &s.sealed, s.uncompressed_length);
        sh.blobs.put(s.sealed);
        // Many tiny blobs would make a pack's header (and its index entry)
        // huge: a pack also closes at MAX_BLOBS_PER_PACK blobs.
        if b.len() >= target || b.count() >= MAX_BLOBS_PER_PACK {
            let full = slot.take().unwrap().finish(&key);
            if tx.send(full).is_err() {
                return;
            }
        }
    }
    for b in [data, tree].into_iter().flatten() {
        if !b.is_empty() && !sh.failed() && tx.send(b.finish(&key)).is_err() {
            return;
        }
    }
}

/// Store finished packs; each stored pack goes on to the indexer.
fn uploader(sh: Arc<Shared>, rx: Receiver<FinishedPack>, tx: Sender<IndexPack>) {
    for p in rx {
        if sh.failed() {
            sh.packs.put(p.bytes);
            continue;
        }
        let ip = IndexPack::from_packed(p.id, &p.blobs);
        if sh.opts.dry_run {
            sh.packs.put(p.bytes);
        } else {
            match sh
                .repo
                .backend()
                .put_owned(&name(FileType::Pack, &p.id), p.bytes)
            {
                // a backend that only read it hands the buffer back
                Ok(back) => {
                    if let Some(b) = back {
                        sh.packs.put(b);
                    }
                }
                Err(e) => {
                    sh.fail(e.into());
                    continue;
                }
            }
        }
        sh.stats.packs.fetch_add(1, Ordering::Relaxed);
        if tx.send(ip).is_err() {
            return;
        }
    }
}

/// Record stored packs in index files, one every `index_every_blobs`
/// blobs and one at the end.
fn indexer(sh: Arc<Shared>, rx: Receiver<IndexPack>) {
    let mut pending: Vec<IndexPack> = Vec::new();
    let mut pending_blobs = 0usize;
    let write_index = |pending: &mut Vec<IndexPack>| -> Result<()> {
        if pending.is_empty() || sh.opts.dry_run {
            pending.clear();
            return Ok(());
        }
        let file = IndexFile {
            supersedes: Vec::new(),
            packs: std::mem::take(pending),
        };
        let id = sh.repo.save_json(FileType::Index, &file.to_json())?;
        sh.index_files.lock().unwrap().push(id);
        sh.stats.index_files.fetch_add(1, Ordering::Relaxed);
        Ok(())
    };
    for ip in rx {
        pending_blobs += ip.blobs.len();
        sh.written.lock().unwrap().push(ip.clone());
        pending.push(ip);
        if pending_blobs >= sh.opts.index_every_blobs && !sh.failed() {
            if let Err(e) = write_index(&mut pending) {
                sh.fail(e);
            }
            pending_blobs = 0;
        }
    }
    if !sh.failed()
        && let Err(e) = write_index(&mut pending)
    {
        sh.fail(e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repository::InitOptions;
    use holdfast_storage::{Backend, MemoryBackend};

    #[test]
    fn saves_dedups_and_indexes() {
        let be: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
        let repo =
            Arc::new(Repository::init(be.clone(), b"pw", &InitOptions { kdf_log_n: 10 }).unwrap());
        let idx = repo.index().unwrap();
        let opts = SaverOptions {
            pack_size: 4096,
            index_every_blobs: 5,
            ..Default::default()
        };
        let saver = BlobSaver::new(repo.clone(), idx, opts);
        let mut ids = Vec::new();
        for i in 0..20u32 {
            let data = format!("blob number {i} ")
                .repeat(100 + i as usize)
                .into_bytes();
            let o = saver.save(BlobType::Data, data.clone()).unwrap();
            assert!(o.new);
            assert!(!saver.save(BlobType::Data, data).unwrap().new);
            ids.push(o.id);
        }
        let t = saver
            .save(BlobType::Tree, b"{\"nodes\":[]}\n".to_vec())
            .unwrap();
        let sum = saver.finish().unwrap();
        assert_eq!(sum.data_blobs, 20);
        assert_eq!(sum.tree_blobs, 1);
        assert!(sum.added_packed < sum.added_plain, "compressed");
        assert!(sum.index_files.len() >= 2);
        // packs hold one blob type only
        for p in &sum.packs {
            let t0 = p.blobs[0].blob_type;
            assert!(p.blobs.iter().all(|b| b.blob_type == t0));
        }
        // a fresh open sees every blob through the stored index
        let repo2 = Repository::open(be, b"pw").unwrap();
        for id in ids {
            let d = repo2.load_blob(&id, BlobType::Data).unwrap();
            assert_eq!(Id::hash(&d), id);
        }
        assert_eq!(
            repo2.load_blob(&t.id, BlobType::Tree).unwrap(),
            b"{\"nodes\":[]}\n"
        );
    }
}
