//! Reusable byte buffers for the write pipeline. Chunks, sealed blobs and
//! packs are multi-megabyte buffers made and dropped at hundreds per second;
//! reusing them avoids the page faults and zeroing of fresh allocations and
//! keeps the resident set at what the bounded queues hold.

use std::sync::Mutex;

pub struct BufferPool {
    bufs: Mutex<Vec<Vec<u8>>>,
    max_items: usize,
    /// Buffers larger than this are freed, not kept.
    max_capacity: usize,
}

impl BufferPool {
    pub fn new(max_items: usize, max_capacity: usize) -> BufferPool {
        BufferPool {
            bufs: Mutex::new(Vec::new()),
            max_items,
            max_capacity,
        }
    }

    /// An empty buffer with at least `capacity` bytes of room.
    pub fn get(&self, capacity: usize) -> Vec<u8> {
        let mut b = self.bufs.lock().unwrap().pop().unwrap_or_default();
        b.clear();
        b.reserve(capacity);
        b
    }

    /// Give a buffer back for reuse.
    pub fn put(&self, buf: Vec<u8>) {
        if buf.capacity() == 0 || buf.capacity() > self.max_capacity {
            return;
        }
        let mut bufs = self.bufs.lock().unwrap();
        if bufs.len() < self.max_items {
            bufs.push(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reuses_and_bounds() {
        let p = super::BufferPool::new(1, 1 << 20);
        p.put(vec![0; 2 << 20]); // too big to keep
        assert!(p.get(1).capacity() < 1 << 20);
        let mut a = p.get(1000);
        a.extend_from_slice(b"x");
        let ptr = a.as_ptr();
        p.put(a);
        p.put(vec![1; 10]); // over the limit: dropped
        let b = p.get(10);
        assert!(b.is_empty());
        assert_eq!(b.as_ptr(), ptr);
    }
}
