//! A reader that passes a stream on line by line through an edit that may
//! drop or change lines — how a dump tool's DDL is cleaned of what names a
//! left-out table while it streams into the snapshot. Memory is bounded by
//! the longest line.

use std::io::{self, BufRead, Read};

/// What to do with each line (ending in `\n`, except perhaps the last).
pub trait LineEdit {
    /// Append to `out` what to pass on for `line` (possibly nothing, or
    /// lines held back earlier).
    fn line(&mut self, line: &[u8], out: &mut Vec<u8>);
    /// The stream has ended: append whatever is still held back.
    fn end(&mut self, _out: &mut Vec<u8>) {}
    /// Whether every line passes unchanged (the reader then copies).
    fn is_identity(&self) -> bool {
        false
    }
}

pub struct LineFilter<R, E> {
    inner: R,
    pub edit: E,
    line: Vec<u8>,
    out: Vec<u8>,
    at: usize,
    ended: bool,
}

impl<R: BufRead, E: LineEdit> LineFilter<R, E> {
    pub fn new(inner: R, edit: E) -> LineFilter<R, E> {
        LineFilter {
            inner,
            edit,
            line: Vec::new(),
            out: Vec::new(),
            at: 0,
            ended: false,
        }
    }
}

impl<R: BufRead, E: LineEdit> Read for LineFilter<R, E> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.edit.is_identity() {
            return self.inner.read(buf);
        }
        while self.at == self.out.len() && !self.ended {
            self.out.clear();
            self.at = 0;
            self.line.clear();
            if self.inner.read_until(b'\n', &mut self.line)? == 0 {
                self.edit.end(&mut self.out);
                self.ended = true;
            } else {
                self.edit.line(&self.line, &mut self.out);
            }
        }
        let n = buf.len().min(self.out.len() - self.at);
        buf[..n].copy_from_slice(&self.out[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// `text` through `edit`, fed in 7-byte pieces and read `step` bytes at a
/// time (edge cases of line assembly), with the edit afterwards.
#[cfg(test)]
pub(crate) fn filter_in_pieces<E: LineEdit>(text: &str, edit: E, step: usize) -> (String, E) {
    let mut r = LineFilter::new(io::BufReader::with_capacity(7, text.as_bytes()), edit);
    let mut out = Vec::new();
    let mut buf = vec![0; step];
    loop {
        let n = r.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    (String::from_utf8(out).unwrap(), r.edit)
}
