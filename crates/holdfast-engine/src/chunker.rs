//! Content-defined chunking of a byte stream with FastCDC (2020).
//!
//! The gear table is XORed with a per-repository seed (see
//! `Repository::chunker_seed`), so chunk boundaries cannot be predicted
//! without the repository key. The reader keeps one buffer of twice the
//! maximum chunk size and moves bytes only when it refills, so memory is
//! bounded by the parameters, never by the input.

use std::io::{self, Read};

use fastcdc::v2020::{Normalization, cut_gear, get_gear_with_seed, select_masks};

/// Chunk size limits (bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkerParams {
    pub min: usize,
    pub avg: usize,
    pub max: usize,
}

impl ChunkerParams {
    /// File trees: restic's sizes (512 KiB – 8 MiB, 1 MiB on average).
    pub const FILES: ChunkerParams = ChunkerParams {
        min: 512 * 1024,
        avg: 1024 * 1024,
        max: 8 * 1024 * 1024,
    };

    /// Database dumps and other streams with small scattered changes.
    pub const SMALL: ChunkerParams = ChunkerParams {
        min: 16 * 1024,
        avg: 64 * 1024,
        max: 256 * 1024,
    };

    /// Database dumps and exports: a night of scattered row changes touches
    /// few 8 KiB chunks, where a 1 MiB chunk would almost always change.
    pub const ROWS: ChunkerParams = ChunkerParams {
        min: 2 * 1024,
        avg: 8 * 1024,
        max: 64 * 1024,
    };

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
    /// Bytes returned so far.
    pub position: u64,
}

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
            position: 0,
        }
    }

    /// The internal buffer, for reuse.
    pub fn into_buffer(self) -> Vec<u8> {
        self.buf
    }

    fn fill(&mut self) -> io::Result<()> {
        if self.end - self.start >= self.params.max || self.eof {
            return Ok(());
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let cap = self.params.max * 2;
        loop {
            if self.end == self.buf.len() {
                if self.buf.len() >= cap {
                    break;
                }
                // Grow with the data actually read: a small file never
                // touches more than a few times its size.
                let new_len = (self.buf.len() * 2).max(64 * 1024).min(cap);
                self.buf.resize(new_len, 0);
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
        let cut = if cut == 0 { avail } else { cut };
        let s = self.start;
        self.start += cut;
        self.position += cut as u64;
        Ok(Some(&self.buf[s..s + cut]))
    }

    pub fn into_inner(self) -> R {
        self.reader
    }
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
