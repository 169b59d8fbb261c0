//! Content-defined chunking of a byte stream with FastCDC (2020).
//!
//! The gear table is XORed with a per-repository seed (see
//! `Repository::chunker_seed`), so chunk boundaries cannot be predicted
//! without the repository key. The reader keeps one buffer of twice the
//! maximum chunk size and moves bytes only when it refills, so memory is
//! bounded by the parameters, never by the input.
//!
//! Row data (dumps, CSV, JSON Lines) is cut at record ends instead: see
//! [`ChunkerParams::records`] and `cut_records`. A gear hash only sees the
//! last 64 bytes, so on rows padded with a run of one byte (`CHAR(n)`,
//! pgbench's filler) it hardly varies and the chunk sizes end up decided by
//! the repository's seed; a hash over the whole record does not have that
//! weakness, and a chunk that ends where a row ends is not disturbed by a
//! change in the neighbouring row.

use std::io::{self, Read};

use fastcdc::v2020::{Normalization, cut_gear, get_gear_with_seed, select_masks};

/// Chunk size limits (bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkerParams {
    pub min: usize,
    pub avg: usize,
    pub max: usize,
    /// Cut only where a record ends (after a newline, or between the rows
    /// `),(` of an extended `INSERT`), choosing among those ends by a keyed
    /// hash of the record; a record longer than `max` is cut inside by the
    /// gear hash. For line-oriented row data; off for file trees.
    pub records: bool,
}

impl ChunkerParams {
    /// File trees: restic's sizes (512 KiB – 8 MiB, 1 MiB on average).
    pub const FILES: ChunkerParams = ChunkerParams {
        min: 512 * 1024,
        avg: 1024 * 1024,
        max: 8 * 1024 * 1024,
        records: false,
    };

    /// Database dumps and other streams with small scattered changes.
    pub const SMALL: ChunkerParams = ChunkerParams {
        min: 16 * 1024,
        avg: 64 * 1024,
        max: 256 * 1024,
        records: false,
    };

    /// Database dumps and exports: a night of scattered row changes touches
    /// few 8 KiB chunks, where a 1 MiB chunk would almost always change.
    pub const ROWS: ChunkerParams = ChunkerParams {
        min: 2 * 1024,
        avg: 8 * 1024,
        max: 64 * 1024,
        records: true,
    };

    /// The same sizes, cut at record ends or not.
    pub fn with_records(self, records: bool) -> ChunkerParams {
        ChunkerParams { records, ..self }
    }

    pub fn validate(&self) -> Result<(), String> {
        use fastcdc::v2020 as f;
        let ok = (f::MINIMUM_MIN..=f::MINIMUM_MAX).contains(&self.min)
            && (f::AVERAGE_MIN..=f::AVERAGE_MAX).contains(&self.avg)
            && (f::MAXIMUM_MIN..=f::MAXIMUM_MAX).contains(&self.max)
            && self.min <= self.avg
            && self.avg <= self.max
            && self.min.is_multiple_of(2)
            && self.avg.is_multiple_of(2)
            && self.max.is_multiple_of(2);
        if ok {
            Ok(())
        } else {
            Err(format!(
                "invalid chunk sizes min={} avg={} max={}: need 64 B ≤ min ≤ 1 MiB, 256 B ≤ avg ≤ 4 MiB, \
                 1 KiB ≤ max ≤ 16 MiB, min ≤ avg ≤ max, all even",
                self.min, self.avg, self.max
            ))
        }
    }

    /// Parse `MIN:AVG:MAX` with optional K/M suffixes, e.g. `16K:64K:256K`.
    pub fn parse(s: &str) -> Result<ChunkerParams, String> {
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() != 3 {
            return Err(format!("chunk sizes {s:?}: expected MIN:AVG:MAX"));
        }
        let size = |p: &str| -> Result<usize, String> {
            let p = p.trim();
            let (num, mult) = match p.chars().last() {
                Some('K') | Some('k') => (&p[..p.len() - 1], 1024),
                Some('M') | Some('m') => (&p[..p.len() - 1], 1024 * 1024),
                _ => (p, 1),
            };
            num.parse::<usize>()
                .map(|n| n * mult)
                .map_err(|_| format!("chunk size {p:?} is not a number"))
        };
        let c = ChunkerParams {
            min: size(parts[0])?,
            avg: size(parts[1])?,
            max: size(parts[2])?,
            records: false,
        };
        c.validate()?;
        Ok(c)
    }
}

/// Splits a reader into chunks.
pub struct Chunker<R> {
    reader: R,
    params: ChunkerParams,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    mask_s: u64,
    mask_l: u64,
    gear: std::borrow::Cow<'static, [u64]>,
    gear_ls: std::borrow::Cow<'static, [u64]>,
    record_key: u64,
    /// Bytes returned so far.
    pub position: u64,
}

/// The smallest read buffer a chunker grows to (see `fill`).
const READ_BUFFER: usize = 1 << 20;

impl<R: Read> Chunker<R> {
    pub fn new(reader: R, params: ChunkerParams, seed: u64) -> Chunker<R> {
        Chunker::with_buffer(reader, params, seed, Vec::new())
    }

    /// Like `new`, reusing a buffer from an earlier chunker (see
    /// [`Chunker::into_buffer`]) so that chunking many small files does not
    /// allocate and zero a large buffer for each.
    pub fn with_buffer(reader: R, params: ChunkerParams, seed: u64, buf: Vec<u8>) -> Chunker<R> {
        let (mask_s, mask_l) = select_masks(params.avg, Normalization::Level1);
        let (gear, gear_ls) = get_gear_with_seed(seed);
        Chunker {
            reader,
            params,
            buf,
            start: 0,
            end: 0,
            eof: false,
            mask_s,
            mask_l,
            gear,
            gear_ls,
            record_key: mix64(seed ^ 0x7265_636f_7264_7321),
            position: 0,
        }
    }

    /// The internal buffer, for reuse.
    pub fn into_buffer(self) -> Vec<u8> {
        self.buf
    }

    /// Make at least `max` bytes available (fewer only at the end of the
    /// stream). Data moves to the front of the buffer only when the buffer
    /// is full, so with small chunks (database rows) a few percent of the
    /// bytes are copied rather than most of them.
    fn fill(&mut self) -> io::Result<()> {
        if self.end - self.start >= self.params.max || self.eof {
            return Ok(());
        }
        // twice the largest chunk, and at least READ_BUFFER so that small
        // chunks are cut from large reads
        let cap = (self.params.max * 2).max(READ_BUFFER);
        loop {
            if self.end == self.buf.len() {
                if self.buf.len() < cap {
                    // Grow with the data actually read: a small file never
                    // touches more than a few times its size.
                    let new_len = (self.buf.len() * 2).max(64 * 1024).min(cap);
                    self.buf.resize(new_len, 0);
                } else {
                    // full: fewer than `max` bytes wait at the end, and
                    // `cap` ≥ 2 × `max` leaves room for at least `max` more
                    self.buf.copy_within(self.start..self.end, 0);
                    self.end -= self.start;
                    self.start = 0;
                }
            }
            match self.reader.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => {
                    self.end += n;
                    if self.end - self.start >= self.params.max {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The next chunk, borrowed from the internal buffer; `None` at the end.
    pub fn next_chunk(&mut self) -> io::Result<Option<&[u8]>> {
        self.fill()?;
        let avail = self.end - self.start;
        if avail == 0 {
            return Ok(None);
        }
        let data = &self.buf[self.start..self.end];
        let cut = if self.params.records {
            cut_records(data, &self.params, self.record_key, self.eof)
        } else {
            None
        };
        let cut = cut.unwrap_or_else(|| self.cut_gear(data));
        let cut = if cut == 0 { avail } else { cut };
        let s = self.start;
        self.start += cut;
        self.position += cut as u64;
        Ok(Some(&self.buf[s..s + cut]))
    }

    fn cut_gear(&self, data: &[u8]) -> usize {
        let (_, cut) = cut_gear(
            data,
            self.params.min,
            self.params.avg,
            self.params.max,
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
            &self.gear,
            &self.gear_ls,
        );
        cut
    }

    pub fn into_inner(self) -> R {
        self.reader
    }
}

/// Where to cut `data` (which starts a chunk) at a record end, or `None`
/// when no record ends within `max` bytes (the caller cuts with the gear
/// hash). The record ending at `end` ends the chunk when the chunk is at
/// least `min` long and `hash(record) mod span < record length`, so the
/// chance of a cut grows with the bytes covered, whatever the row width;
/// `span` is larger before `avg` and smaller after it (FastCDC's
/// normalisation), which keeps sizes near `avg`. Only bytes before `max`
/// are looked at, so the result does not depend on how the reader
/// delivered them.
fn cut_records(data: &[u8], p: &ChunkerParams, key: u64, eof: bool) -> Option<usize> {
    let limit = data.len().min(p.max);
    // expected bytes past `min` before a cut, before and after `avg`
    let beyond = (p.avg - p.min).max(1) as u64;
    let (span_small, span_large) = (beyond * 2, (beyond / 2).max(1));
    let mut record_start = 0;
    let mut search = 0;
    while search < limit {
        let Some(i) = memchr::memchr2(b'\n', b'(', &data[search..limit]) else {
            break;
        };
        let at = search + i;
        search = at + 1;
        let end = if data[at] == b'\n' {
            at + 1
        } else if at >= 2 && &data[at - 2..at] == b"),".as_slice() {
            at
        } else {
            continue;
        };
        let record = &data[record_start..end];
        record_start = end;
        if end < p.min {
            continue;
        }
        let span = if end < p.avg { span_small } else { span_large };
        if keyed_hash(key, record) % span < record.len() as u64 {
            return Some(end);
        }
    }
    if limit == data.len() && eof {
        // the last chunk of the stream
        return Some(data.len());
    }
    if record_start >= p.min && limit == p.max {
        // rows continue past `max` without a chosen end: cut at the last
        // record end rather than inside a row
        return Some(record_start);
    }
    None
}

/// A keyed 64-bit hash of a record, eight bytes per step. Chunk boundaries
/// must not change between releases (they decide what deduplicates), so
/// this is written out here rather than taken from a hasher whose output
/// may change.
fn keyed_hash(key: u64, data: &[u8]) -> u64 {
    const M: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h = key ^ (data.len() as u64).wrapping_mul(M);
    let mut words = data.chunks_exact(8);
    for w in &mut words {
        let w = u64::from_le_bytes(w.try_into().expect("8 bytes"));
        h = (h ^ w).wrapping_mul(M).rotate_left(29);
    }
    let mut tail = 0u64;
    for (i, &b) in words.remainder().iter().enumerate() {
        tail |= (b as u64) << (8 * i);
    }
    mix64(h ^ tail)
}

/// splitmix64's finaliser.
fn mix64(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn chunks(data: &[u8], p: ChunkerParams, seed: u64) -> Vec<Vec<u8>> {
        let mut c = Chunker::new(data, p, seed);
        let mut out = Vec::new();
        while let Some(ch) = c.next_chunk().unwrap() {
            out.push(ch.to_vec());
        }
        out
    }

    const P: ChunkerParams = ChunkerParams {
        min: 1024,
        avg: 4096,
        max: 16384,
        records: false,
    };

    /// A reader that returns at most `n` bytes per read.
    struct Trickle<'a>(&'a [u8], usize);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(buf.len()).min(self.1);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn boundaries_shift_with_the_content_not_the_offset() {
        let data = pseudo_random(400_000, 7);
        let a = chunks(&data, P, 1);
        let mut shifted = b"inserted prefix".to_vec();
        shifted.extend_from_slice(&data);
        let b = chunks(&shifted, P, 1);
        // all but the first couple of chunks are identical
        let common = a.iter().filter(|c| b.contains(c)).count();
        assert!(common >= a.len() - 2, "{common} of {}", a.len());
        // a different seed gives different boundaries
        assert_ne!(chunks(&data, P, 2), a);
    }

    #[test]
    fn params_parse() {
        assert_eq!(
            ChunkerParams::parse("16K:64K:256K").unwrap(),
            ChunkerParams::SMALL
        );
        assert!(ChunkerParams::parse("1:2").is_err());
        assert!(ChunkerParams::parse("64K:16K:256K").is_err());
    }

    /// pgbench-like rows: a counter, two small numbers and 84 spaces.
    fn padded_rows(n: usize, from: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for i in from..from + n {
            out.extend_from_slice(
                format!("{i}\t{}\t{}\t{:84}\n", 1 + i / 100_000, i % 7, "").as_bytes(),
            );
        }
        out
    }

    #[test]
    fn records_size_does_not_depend_on_the_seed_on_padded_rows() {
        let data = padded_rows(200_000, 1);
        for seed in [1, 2, 3, 0xdead_beef, u64::MAX] {
            let c = chunks(&data, ChunkerParams::ROWS, seed);
            let mean = data.len() / c.len();
            let weighted = c.iter().map(|x| x.len() * x.len()).sum::<usize>() / data.len();
            // what a scattered change pays for: the size-weighted mean
            assert!(
                weighted <= 14 * 1024,
                "seed {seed}: size-weighted mean {weighted} B"
            );
            assert!(
                (6 * 1024..=11 * 1024).contains(&mean),
                "seed {seed}: mean chunk {mean} B over {} chunks",
                c.len()
            );
            for (i, ch) in c.iter().enumerate() {
                assert!(ch.len() <= ChunkerParams::ROWS.max);
                assert_eq!(ch.last(), Some(&b'\n'), "chunk {i} ends inside a row");
                if i + 1 < c.len() {
                    assert!(ch.len() >= ChunkerParams::ROWS.min);
                }
            }
        }
    }

    #[test]
    fn a_changed_row_changes_at_most_two_record_chunks() {
        let data = padded_rows(100_000, 1);
        let a = chunks(&data, ChunkerParams::ROWS, 9);
        // change row 54,321 without changing its length, and move another
        let text = String::from_utf8(data.clone()).unwrap();
        let edited = text.replacen("54321\t1\t", "54321\t9\t", 1);
        assert_ne!(edited, text);
        let b = chunks(edited.as_bytes(), ChunkerParams::ROWS, 9);
        let new = b.iter().filter(|c| !a.contains(c)).count();
        assert!((1..=2).contains(&new), "{new} new chunks");
        // a row removed in one place and appended at the end
        let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
        let moved = lines.remove(30_000);
        lines.push(moved);
        let c = chunks(lines.concat().as_bytes(), ChunkerParams::ROWS, 9);
        let new = c.iter().filter(|ch| !a.contains(ch)).count();
        assert!((1..=4).contains(&new), "{new} new chunks");
    }

    #[test]
    fn records_split_extended_inserts_between_rows_and_long_rows_by_gear() {
        let mut sql = b"INSERT INTO `t` VALUES ".to_vec();
        for i in 0..20_000 {
            if i > 0 {
                sql.extend_from_slice(b",");
            }
            sql.extend_from_slice(format!("({i},'{:040}')", i * 7919).as_bytes());
        }
        sql.extend_from_slice(b";\n");
        let c = chunks(&sql, ChunkerParams::ROWS, 5);
        assert!(c.len() > 20, "{} chunks", c.len());
        for ch in &c[1..] {
            assert_eq!(ch[0], b'(', "a chunk starts inside a row");
        }
        // one row of 1 MiB with no record end: cut by the gear hash, within limits
        let blob = pseudo_random(1 << 20, 3);
        let c = chunks(&blob, ChunkerParams::ROWS, 5);
        assert_eq!(c.concat(), blob);
        assert!(c.iter().all(|ch| ch.len() <= ChunkerParams::ROWS.max));
        assert!(c.len() > 8);
    }

    /// Streams longer than the read buffer: data moves to the front of a
    /// full buffer, whatever the reads deliver, and the buffer stays at
    /// its bound.
    #[test]
    fn long_streams_chunk_the_same_through_a_full_buffer() {
        let mut data = padded_rows(40_000, 3);
        data.extend_from_slice(&pseudo_random(3 * READ_BUFFER + 12_345, 9));
        data.extend_from_slice(&padded_rows(20_000, 77));
        assert!(data.len() > 4 * READ_BUFFER);
        for p in [P, ChunkerParams { records: true, ..P }] {
            let whole = chunks(&data, p, 5);
            assert_eq!(whole.concat(), data);
            for step in [1_000, 65_537, READ_BUFFER - 1, READ_BUFFER + 3] {
                let mut c = Chunker::new(Trickle(&data, step), p, 5);
                let mut trickled = Vec::new();
                while let Some(ch) = c.next_chunk().unwrap() {
                    trickled.push(ch.to_vec());
                }
                assert!(trickled == whole, "step {step}, records {}", p.records);
                assert!(c.into_buffer().len() <= READ_BUFFER);
            }
        }
    }

    proptest! {
        #[test]
        fn prop_record_chunks_cover_input_within_limits(rows in 0usize..3000, seed in any::<u64>(), step in 1usize..5000) {
            let p = ChunkerParams { records: true, ..P };
            let mut data = padded_rows(rows, seed as usize % 1000);
            data.extend_from_slice(&pseudo_random((seed % 40_000) as usize, seed));
            let whole = chunks(&data, p, seed);
            prop_assert_eq!(whole.concat(), data.clone());
            for (i, c) in whole.iter().enumerate() {
                prop_assert!(c.len() <= p.max);
                if i + 1 < whole.len() { prop_assert!(c.len() >= p.min); }
            }
            let mut c = Chunker::new(Trickle(&data, step), p, seed);
            let mut trickled = Vec::new();
            while let Some(ch) = c.next_chunk().unwrap() { trickled.push(ch.to_vec()); }
            prop_assert_eq!(trickled, whole);
        }
    }

    proptest! {
        #[test]
        fn prop_chunks_cover_input_within_limits(len in 0usize..100_000, seed in any::<u64>(), step in 1usize..5000) {
            let data = pseudo_random(len, seed);
            let whole = chunks(&data, P, seed);
            let joined: Vec<u8> = whole.concat();
            prop_assert_eq!(&joined, &data);
            for (i, c) in whole.iter().enumerate() {
                prop_assert!(c.len() <= P.max);
                if i + 1 < whole.len() { prop_assert!(c.len() >= P.min); }
            }
            // the boundaries do not depend on how the reader delivers bytes
            let mut c = Chunker::new(Trickle(&data, step), P, seed);
            let mut trickled = Vec::new();
            while let Some(ch) = c.next_chunk().unwrap() { trickled.push(ch.to_vec()); }
            prop_assert_eq!(trickled, whole);
        }
    }
}
