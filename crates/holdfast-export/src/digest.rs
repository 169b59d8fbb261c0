//! SHA-256 and byte counts taken while bytes stream past, so an export
//! never reads anything twice to describe it.

use std::io::{self, Read, Write};

use holdfast_format::Id;
use sha2::{Digest, Sha256};

/// A reader that hashes and counts what passes through it (the engine's,
/// which reads manifest-listed files back the same way).
pub use holdfast_engine::manifest::HashingReader;

/// A writer that hashes and counts what passes through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// (the inner writer, bytes written, SHA-256).
    pub fn finish(self) -> (W, u64, Id) {
        (self.inner, self.count, Id(self.hasher.finalize().into()))
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Hash everything `r` yields.
pub fn hash_reader<R: Read>(r: R) -> io::Result<(u64, Id)> {
    let mut h = HashingReader::new(r);
    io::copy(&mut h, &mut io::sink())?;
    Ok(h.finish())
}
