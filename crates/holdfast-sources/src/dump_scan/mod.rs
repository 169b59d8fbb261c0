//! Reading a dump tool's output as it streams past, without holding it:
//! which tables it holds, how many rows each, and whether it reached the
//! tool's completion marker (a dump without it was cut short). The scanners
//! are pure: they see bytes, never a process or a file.

pub mod csv;
pub mod mysql;
pub mod postgres;

use std::io::{self, Read};

/// Rows of one table found in a dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRows {
    /// The table's name as the dump spells it (quoted where needed), usable
    /// in SQL: `public."Order Lines"`, `` `orders` ``.
    pub sql_name: String,
    /// The name's parts, unquoted: `["public", "Order Lines"]`.
    pub parts: Vec<String>,
    pub rows: u64,
}

impl TableRows {
    /// `schema.table`, unquoted, for people.
    pub fn display_name(&self) -> String {
        self.parts.join(".")
    }
}

/// Something that looks at a stream's bytes in order.
pub trait StreamScanner {
    fn feed(&mut self, data: &[u8]);
}

/// A dump tool's scanner: the tables it saw and whether the dump reached
/// its completion marker.
pub trait DumpScanner: StreamScanner {
    /// Whether the dump is whole: `Err` says why not.
    fn verdict(&self) -> Result<(), String>;
    fn into_tables(self) -> Vec<TableRows>;
}

/// Passes bytes through from `inner` while a scanner looks at them.
pub struct ScanningReader<R, S> {
    inner: R,
    pub scanner: S,
}

impl<R: Read, S: StreamScanner> ScanningReader<R, S> {
    pub fn new(inner: R, scanner: S) -> ScanningReader<R, S> {
        ScanningReader { inner, scanner }
    }
}

impl<R: Read, S: StreamScanner> Read for ScanningReader<R, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.scanner.feed(&buf[..n]);
        Ok(n)
    }
}

/// Splits a stream into lines across `feed` calls. Each complete line is
/// handed over once, without its newline; a line longer than `cap` bytes
/// is handed over truncated to its first `cap` bytes (with its true length).
#[derive(Debug)]
pub(crate) struct LineSplitter {
    carry: Vec<u8>,
    carry_len: u64,
    cap: usize,
}

impl LineSplitter {
    pub(crate) fn new(cap: usize) -> LineSplitter {
        LineSplitter {
            carry: Vec::new(),
            carry_len: 0,
            cap,
        }
    }

    /// Call `on_line(prefix, true_len)` for every line completed by `data`.
    pub(crate) fn feed(&mut self, data: &[u8], mut on_line: impl FnMut(&[u8], u64)) {
        let mut start = 0;
        for nl in memchr::memchr_iter(b'\n', data) {
            let seg = &data[start..nl];
            if self.carry_len == 0 {
                on_line(&seg[..seg.len().min(self.cap)], seg.len() as u64);
            } else {
                self.push(seg);
                on_line(&self.carry, self.carry_len);
                self.carry.clear();
                self.carry_len = 0;
            }
            start = nl + 1;
        }
        self.push(&data[start..]);
    }

    fn push(&mut self, seg: &[u8]) {
        let room = self.cap.saturating_sub(self.carry.len());
        self.carry.extend_from_slice(&seg[..seg.len().min(room)]);
        self.carry_len += seg.len() as u64;
    }

    /// Bytes after the last newline (a final line without one).
    pub(crate) fn pending(&self) -> u64 {
        self.carry_len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_across_feeds_and_caps() {
        let mut s = LineSplitter::new(4);
        let mut got = Vec::new();
        for part in [&b"ab"[..], b"c\nxyz", b"123456\n\nq"] {
            s.feed(part, |l, n| got.push((l.to_vec(), n)));
        }
        assert_eq!(
            got,
            vec![
                (b"abc".to_vec(), 3),
                (b"xyz1".to_vec(), 9),
                (b"".to_vec(), 0)
            ]
        );
        assert_eq!(s.pending(), 1);
    }
}
