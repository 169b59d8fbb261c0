//! The in-memory blob index: where every blob of the repository lives.
//!
//! Entries are fixed-size (48 bytes: id, pack number, offset, lengths, type)
//! in one sorted vector, with a 65,536-bucket table over the first two id
//! bytes, so a lookup is a short binary search and the index costs about
//! 48 bytes per blob, no maps of strings. Pack ids are stored once in a
//! side table.

use std::collections::HashMap;

use holdfast_format::index::{IndexFile, IndexPack};
use holdfast_format::{BlobType, Id};

/// Where one blob is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobLocation {
    pub pack: Id,
    pub offset: u32,
    pub length: u32,
    pub uncompressed_length: Option<u32>,
}

impl BlobLocation {
    /// Plaintext length of the blob.
    pub fn plain_len(&self) -> u32 {
        self.uncompressed_length.unwrap_or(
            self.length
                .saturating_sub(holdfast_format::crypto::OVERHEAD as u32),
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    id: Id,
    /// Pack number; the top bit holds the blob type (set: tree).
    pack_and_type: u32,
    offset: u32,
    length: u32,
    /// 0: not compressed.
    uncompressed_length: u32,
}

const TREE_BIT: u32 = 1 << 31;

impl Entry {
    fn blob_type(&self) -> BlobType {
        if self.pack_and_type & TREE_BIT != 0 {
            BlobType::Tree
        } else {
            BlobType::Data
        }
    }
    fn pack_no(&self) -> u32 {
        self.pack_and_type & !TREE_BIT
    }
    fn key(&self) -> (Id, BlobType) {
        (self.id, self.blob_type())
    }
}

/// The repository's index, merged from all index files.
#[derive(Default)]
pub struct MasterIndex {
    packs: Vec<Id>,
    pack_numbers: HashMap<Id, u32>,
    entries: Vec<Entry>,
    buckets: Vec<u32>,
    /// Ids of the index files this was loaded from.
    index_files: Vec<Id>,
}

impl MasterIndex {
    pub fn new() -> MasterIndex {
        let mut m = MasterIndex::default();
        m.rebuild_buckets();
        m
    }

    fn pack_no(&mut self, pack: Id) -> u32 {
        if let Some(&n) = self.pack_numbers.get(&pack) {
            return n;
        }
        let n = self.packs.len() as u32;
        assert!(n < TREE_BIT, "more than 2^31 packs");
        self.packs.push(pack);
        self.pack_numbers.insert(pack, n);
        n
    }

    /// Add the packs of one index file (call [`MasterIndex::finish`] after
    /// the last one).
    pub fn add_index_file(&mut self, file_id: Option<Id>, file: &IndexFile) {
        if let Some(id) = file_id {
            self.index_files.push(id);
        }
        for p in &file.packs {
            self.add_pack_unsorted(p);
        }
    }

    /// Add one pack's entries; call [`MasterIndex::finish`] before lookups.
    pub fn add_pack_unsorted(&mut self, p: &IndexPack) {
        let n = self.pack_no(p.id);
        for b in &p.blobs {
            let t = if b.blob_type == BlobType::Tree {
                TREE_BIT
            } else {
                0
            };
            self.entries.push(Entry {
                id: b.id,
                pack_and_type: n | t,
                offset: b.offset,
                length: b.length,
                uncompressed_length: b.uncompressed_length.unwrap_or(0),
            });
        }
    }

    /// Add packs written in this session and make them visible to lookups.
    pub fn add_packs(&mut self, packs: &[IndexPack]) {
        for p in packs {
            self.add_pack_unsorted(p);
        }
        self.finish();
    }

    /// Sort and build the lookup table after adding entries.
    pub fn finish(&mut self) {
        self.entries.sort_unstable_by(|a, b| {
            (a.id, a.blob_type(), a.pack_no(), a.offset).cmp(&(
                b.id,
                b.blob_type(),
                b.pack_no(),
                b.offset,
            ))
        });
        self.entries.dedup();
        self.entries.shrink_to_fit();
        self.rebuild_buckets();
    }

    fn rebuild_buckets(&mut self) {
        let mut buckets = vec![0u32; 65537];
        for e in &self.entries {
            let b = u16::from_be_bytes([e.id.0[0], e.id.0[1]]) as usize;
            buckets[b + 1] += 1;
        }
        for i in 1..buckets.len() {
            buckets[i] += buckets[i - 1];
        }
        self.buckets = buckets;
    }

    fn range(&self, id: &Id, t: BlobType) -> &[Entry] {
        if self.buckets.len() != 65537 {
            return &[];
        }
        let b = u16::from_be_bytes([id.0[0], id.0[1]]) as usize;
        let slice = &self.entries[self.buckets[b] as usize..self.buckets[b + 1] as usize];
        let key = (*id, t);
        let lo = slice.partition_point(|e| e.key() < key);
        let hi = lo + slice[lo..].partition_point(|e| e.key() == key);
        &slice[lo..hi]
    }

    fn location(&self, e: &Entry) -> BlobLocation {
        BlobLocation {
            pack: self.packs[e.pack_no() as usize],
            offset: e.offset,
            length: e.length,
            uncompressed_length: (e.uncompressed_length != 0).then_some(e.uncompressed_length),
        }
    }

    /// Position of the blob's first copy in [`MasterIndex::iter`] order.
    pub fn position(&self, id: &Id, t: BlobType) -> Option<usize> {
        let r = self.range(id, t);
        if r.is_empty() {
            return None;
        }
        let base = self.entries.as_ptr() as usize;
        Some((r.as_ptr() as usize - base) / std::mem::size_of::<Entry>())
    }

    pub fn has(&self, id: &Id, t: BlobType) -> bool {
        !self.range(id, t).is_empty()
    }

    /// One location of the blob (the first of possibly several copies).
    pub fn lookup(&self, id: &Id, t: BlobType) -> Option<BlobLocation> {
        self.range(id, t).first().map(|e| self.location(e))
    }

    /// Every stored copy of the blob.
    pub fn lookup_all(&self, id: &Id, t: BlobType) -> Vec<BlobLocation> {
        self.range(id, t).iter().map(|e| self.location(e)).collect()
    }

    /// Number of index entries (copies counted separately).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn pack_count(&self) -> usize {
        self.packs.len()
    }

    pub fn index_files(&self) -> &[Id] {
        &self.index_files
    }

    /// The entry at `pos` (a position in [`MasterIndex::iter`] order).
    pub fn entry(&self, pos: usize) -> (Id, BlobType, BlobLocation) {
        let e = &self.entries[pos];
        (e.id, e.blob_type(), self.location(e))
    }

    /// Every entry position, ordered by pack and offset: walking this groups
    /// a pack's blobs together at 4 bytes per entry, without copying the
    /// index.
    pub fn positions_by_pack(&self) -> Vec<u32> {
        let mut v: Vec<u32> = (0..self.entries.len() as u32).collect();
        v.sort_unstable_by_key(|&p| {
            let e = &self.entries[p as usize];
            (e.pack_no(), e.offset)
        });
        v
    }

    /// Every entry: (blob id, type, location).
    pub fn iter(&self) -> impl Iterator<Item = (Id, BlobType, BlobLocation)> + '_ {
        self.entries
            .iter()
            .map(|e| (e.id, e.blob_type(), self.location(e)))
    }

    /// All packs the index mentions.
    pub fn packs(&self) -> &[Id] {
        &self.packs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use holdfast_format::index::IndexBlob;
    use proptest::prelude::*;

    fn pack(id: u8, blobs: &[(Id, BlobType)]) -> IndexPack {
        IndexPack {
            id: Id([id; 32]),
            blobs: blobs
                .iter()
                .enumerate()
                .map(|(i, (bid, t))| IndexBlob {
                    id: *bid,
                    blob_type: *t,
                    offset: i as u32 * 100,
                    length: 100,
                    uncompressed_length: if i % 2 == 0 { Some(500) } else { None },
                })
                .collect(),
        }
    }

    #[test]
    fn lookups_by_id_and_type() {
        let a = Id::hash(b"a");
        let b = Id::hash(b"b");
        let mut idx = MasterIndex::new();
        idx.add_index_file(
            Some(Id::hash(b"idx")),
            &IndexFile {
                supersedes: vec![],
                packs: vec![pack(1, &[(a, BlobType::Data), (b, BlobType::Tree)])],
            },
        );
        idx.finish();
        assert!(idx.has(&a, BlobType::Data));
        assert!(!idx.has(&a, BlobType::Tree));
        let l = idx.lookup(&b, BlobType::Tree).unwrap();
        assert_eq!(
            (l.pack, l.offset, l.uncompressed_length),
            (Id([1; 32]), 100, None)
        );
        assert_eq!(idx.lookup(&a, BlobType::Data).unwrap().plain_len(), 500);
        // a second copy in another pack
        idx.add_packs(&[pack(2, &[(a, BlobType::Data)])]);
        assert_eq!(idx.lookup_all(&a, BlobType::Data).len(), 2);
        assert_eq!(idx.pack_count(), 2);
        assert_eq!(idx.index_files().len(), 1);
    }

    proptest! {
        #[test]
        fn prop_every_added_blob_is_found(seeds in proptest::collection::vec(any::<u32>(), 1..300)) {
            let ids: Vec<Id> = seeds.iter().map(|s| Id::hash(&s.to_le_bytes())).collect();
            let blobs: Vec<(Id, BlobType)> = ids.iter().map(|i| (*i, BlobType::Data)).collect();
            let mut idx = MasterIndex::new();
            idx.add_packs(&[pack(9, &blobs)]);
            for i in &ids {
                prop_assert!(idx.has(i, BlobType::Data));
            }
            prop_assert!(!idx.has(&Id::hash(b"absent"), BlobType::Data));
        }
    }
}
