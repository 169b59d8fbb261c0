//! Read-ahead over pack files for storage where a request costs more than
//! its bytes (object stores: tens of milliseconds before the first byte).
//!
//! A read of a few bytes of a pack — a tree blob, the blob of a small file
//! — fetches the whole pack instead (of a big pack, the aligned window
//! around the read), and keeps it: the next blobs of the same pack
//! (written one after another by the backup that stored them, read in
//! about the same order by a restore's workers or a tree walk) are then
//! served from memory. Reads of a window or more go straight through.
//! (Prefetching the next pack in the background was tried: on loopback
//! the restore is CPU-bound and it gained nothing.)
//!
//! Invariants: only packs are cached (immutable, named by their hash, so a
//! cached range can never go stale; a deleted pack's ranges are dropped);
//! memory is bounded by `capacity` bytes of windows; a range is served from
//! the cache only when one window covers all of it, so a read returns the
//! same bytes as the backend would.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use crate::{Backend, BackendStats, FileType, ObjectInfo, ObjectName, Result, StorageError};

/// What is fetched on a miss: a default pack's worth.
pub const WINDOW: u64 = 16 << 20;
/// Windows kept at most, in bytes.
pub const CAPACITY: usize = 64 << 20;

struct Window {
    name: ObjectName,
    start: u64,
    data: Arc<Vec<u8>>,
}

pub struct ReadAhead {
    inner: Arc<dyn Backend>,
    window: u64,
    capacity: usize,
    /// Least recently used first.
    windows: Mutex<(VecDeque<Window>, usize)>,
    /// Sizes of the packs read (a window must not reach past the end:
    /// object stores fail such a read), at most [`SIZES`] of them.
    sizes: Mutex<HashMap<ObjectName, u64>>,
    /// One fetch per pack at a time: readers of a pack another reader is
    /// fetching wait for that window instead of fetching it again.
    fetching: Mutex<HashMap<ObjectName, Arc<Mutex<()>>>>,
}

const SIZES: usize = 100_000;

impl ReadAhead {
    pub fn new(inner: Arc<dyn Backend>) -> ReadAhead {
        ReadAhead::with_sizes(inner, WINDOW, CAPACITY)
    }

    pub fn with_sizes(inner: Arc<dyn Backend>, window: u64, capacity: usize) -> ReadAhead {
        ReadAhead {
            inner,
            window,
            capacity,
            windows: Mutex::new((VecDeque::new(), 0)),
            sizes: Mutex::new(HashMap::new()),
            fetching: Mutex::new(HashMap::new()),
        }
    }

    fn pack_lock(&self, name: &ObjectName) -> Arc<Mutex<()>> {
        let mut f = self.fetching.lock().expect("not poisoned");
        if f.len() > 1024 {
            // locks nobody holds any more
            f.retain(|_, l| Arc::strong_count(l) > 1);
        }
        f.entry(name.clone()).or_default().clone()
    }

    fn size(&self, name: &ObjectName) -> Result<u64> {
        if let Some(s) = self.sizes.lock().expect("not poisoned").get(name) {
            return Ok(*s);
        }
        let size = self.inner.stat(name)?;
        let mut sizes = self.sizes.lock().expect("not poisoned");
        if sizes.len() >= SIZES {
            sizes.clear();
        }
        sizes.insert(name.clone(), size);
        Ok(size)
    }

    /// The range fetched for a read of `len` bytes at `offset` in a pack
    /// of `size` bytes: the whole pack when it is at most one and a half
    /// windows (a pack of the default size: one request per pack, whichever
    /// of its blobs is asked for first), else the aligned window holding
    /// the read (readers of one pack share windows instead of fetching
    /// overlapping ones), stretched to the read's end if it crosses one.
    fn window_around(&self, size: u64, offset: u64, len: u64) -> (u64, u64) {
        if size <= self.window + self.window / 2 {
            return (0, size);
        }
        let start = offset / self.window * self.window;
        (start, (start + self.window).max(offset + len).min(size))
    }

    fn cached(&self, name: &ObjectName, offset: u64, len: u64) -> Option<Vec<u8>> {
        let mut w = self.windows.lock().expect("not poisoned");
        let pos = w.0.iter().rposition(|x| {
            x.name == *name && x.start <= offset && offset + len <= x.start + x.data.len() as u64
        })?;
        let hit = w.0.remove(pos).expect("found");
        let from = (offset - hit.start) as usize;
        let out = hit.data[from..from + len as usize].to_vec();
        w.0.push_back(hit);
        Some(out)
    }

    fn keep(&self, name: &ObjectName, start: u64, data: Arc<Vec<u8>>) {
        let mut w = self.windows.lock().expect("not poisoned");
        w.1 += data.len();
        w.0.push_back(Window {
            name: name.clone(),
            start,
            data,
        });
        while w.1 > self.capacity {
            let Some(old) = w.0.pop_front() else { break };
            w.1 -= old.data.len();
        }
    }

    fn forget(&self, name: &ObjectName) {
        self.sizes.lock().expect("not poisoned").remove(name);
        let mut w = self.windows.lock().expect("not poisoned");
        let before = w.0.len();
        w.0.retain(|x| x.name != *name);
        if w.0.len() != before {
            w.1 = w.0.iter().map(|x| x.data.len()).sum();
        }
    }
}

impl Backend for ReadAhead {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn create_layout(&self) -> Result<()> {
        self.inner.create_layout()
    }

    fn put(&self, name: &ObjectName, data: &[u8]) -> Result<()> {
        self.inner.put(name, data)
    }

    fn put_owned(&self, name: &ObjectName, data: Vec<u8>) -> Result<Option<Vec<u8>>> {
        self.inner.put_owned(name, data)
    }

    fn get(&self, name: &ObjectName) -> Result<Vec<u8>> {
        self.inner.get(name)
    }

    fn get_range(&self, name: &ObjectName, offset: u64, len: u64) -> Result<Vec<u8>> {
        if name.ftype() != FileType::Pack || len >= self.window {
            return self.inner.get_range(name, offset, len);
        }
        if let Some(hit) = self.cached(name, offset, len) {
            return Ok(hit);
        }
        let lock = self.pack_lock(name);
        let _fetching = lock.lock().expect("not poisoned");
        // fetched by another reader while this one waited
        if let Some(hit) = self.cached(name, offset, len) {
            return Ok(hit);
        }
        let size = self.size(name)?;
        if offset + len > size {
            return Err(StorageError::ShortRead {
                path: name.path(),
                offset,
                len,
                actual: size,
            });
        }
        let (start, end) = self.window_around(size, offset, len);
        let data = self.inner.get_range(name, start, end - start)?;
        let from = (offset - start) as usize;
        let out = data[from..from + len as usize].to_vec();
        self.keep(name, start, Arc::new(data));
        Ok(out)
    }

    fn list(&self, ftype: FileType) -> Result<Vec<ObjectInfo>> {
        self.inner.list(ftype)
    }

    fn stat(&self, name: &ObjectName) -> Result<u64> {
        self.inner.stat(name)
    }

    fn delete(&self, name: &ObjectName) -> Result<()> {
        self.forget(name);
        self.inner.delete(name)
    }

    fn clean_temporary(&self, min_age: std::time::Duration) -> Result<usize> {
        self.inner.clean_temporary(min_age)
    }

    fn connections(&self) -> usize {
        self.inner.connections()
    }

    fn stats(&self) -> BackendStats {
        self.inner.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryBackend;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Counts the ranges read from the backend below.
    struct Counting(MemoryBackend, AtomicUsize);

    impl Backend for Counting {
        fn location(&self) -> String {
            "counting".into()
        }
        fn create_layout(&self) -> Result<()> {
            Ok(())
        }
        fn put(&self, n: &ObjectName, d: &[u8]) -> Result<()> {
            self.0.put(n, d)
        }
        fn get(&self, n: &ObjectName) -> Result<Vec<u8>> {
            self.0.get(n)
        }
        fn get_range(&self, n: &ObjectName, o: u64, l: u64) -> Result<Vec<u8>> {
            self.1.fetch_add(1, Ordering::SeqCst);
            self.0.get_range(n, o, l)
        }
        fn list(&self, t: FileType) -> Result<Vec<ObjectInfo>> {
            self.0.list(t)
        }
        fn stat(&self, n: &ObjectName) -> Result<u64> {
            self.0.stat(n)
        }
        fn delete(&self, n: &ObjectName) -> Result<()> {
            self.0.delete(n)
        }
    }

    /// How many ranges were read from the backend below.
    fn fetches(inner: &Counting) -> usize {
        inner.1.load(Ordering::SeqCst)
    }

    /// Reads of 100 bytes at each offset give the pack's own bytes.
    fn reads_match(
        ra: &ReadAhead,
        pack: &ObjectName,
        bytes: &[u8],
        offsets: impl IntoIterator<Item = u64>,
    ) {
        for off in offsets {
            assert_eq!(
                ra.get_range(pack, off, 100).unwrap(),
                bytes[off as usize..][..100],
                "at {off}"
            );
        }
    }

    #[test]
    fn small_reads_of_one_pack_cost_one_request_and_return_the_same_bytes() {
        let inner = Arc::new(Counting(MemoryBackend::new(), AtomicUsize::new(0)));
        let ra = ReadAhead::with_sizes(inner.clone(), 1000, 2500);
        let pack = ObjectName::new(FileType::Pack, &"a".repeat(64)).unwrap();
        let other = ObjectName::new(FileType::Pack, &"b".repeat(64)).unwrap();
        let bytes: Vec<u8> = (0..2500u32).map(|i| (i % 251) as u8).collect();
        ra.put(&pack, &bytes).unwrap();
        ra.put(&other, &bytes).unwrap();
        reads_match(&ra, &pack, &bytes, (0..900).step_by(100));
        assert_eq!(fetches(&inner), 1, "one window served them all");
        // past the end of the file: the window is short, the read exact
        assert_eq!(ra.get_range(&pack, 2450, 50).unwrap(), bytes[2450..]);
        assert!(matches!(
            ra.get_range(&pack, 2490, 50),
            Err(StorageError::ShortRead { .. })
        ));
        // a big read goes straight through, uncached
        assert_eq!(ra.get_range(&pack, 0, 1500).unwrap(), bytes[..1500]);
        // eviction keeps the memory bound; a deleted pack is forgotten
        ra.get_range(&other, 0, 10).unwrap();
        ra.get_range(&other, 1200, 10).unwrap();
        assert!(ra.windows.lock().unwrap().1 <= 2500);
        ra.delete(&pack).unwrap();
        assert!(ra.get_range(&pack, 0, 10).unwrap_err().is_not_found());
    }

    #[test]
    fn a_pack_of_about_a_window_is_fetched_once_whichever_blob_comes_first() {
        let inner = Arc::new(Counting(MemoryBackend::new(), AtomicUsize::new(0)));
        let ra = ReadAhead::with_sizes(inner.clone(), 1000, 5000);
        let pack = ObjectName::new(FileType::Pack, &"c".repeat(64)).unwrap();
        let bytes: Vec<u8> = (0..1400u32).map(|i| (i % 253) as u8).collect();
        ra.put(&pack, &bytes).unwrap();
        // readers start in the middle, then go back to the beginning
        reads_match(&ra, &pack, &bytes, [700u64, 100, 1300, 0, 900]);
        assert_eq!(fetches(&inner), 1, "one request, the whole pack");
        // a bigger pack: aligned windows, a read across a boundary is whole
        let big = ObjectName::new(FileType::Pack, &"d".repeat(64)).unwrap();
        let bytes: Vec<u8> = (0..3000u32).map(|i| (i % 241) as u8).collect();
        ra.put(&big, &bytes).unwrap();
        assert_eq!(ra.get_range(&big, 1500, 10).unwrap(), bytes[1500..1510]);
        assert_eq!(ra.get_range(&big, 1100, 10).unwrap(), bytes[1100..1110]);
        assert_eq!(fetches(&inner), 2, "one window for both");
        assert_eq!(ra.get_range(&big, 1950, 100).unwrap(), bytes[1950..2050]);
        assert_eq!(ra.get_range(&big, 2040, 10).unwrap(), bytes[2040..2050]);
        assert_eq!(fetches(&inner), 3);
    }
}
