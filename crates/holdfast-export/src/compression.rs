//! The compressions an export can be wrapped in, as streaming writers (for
//! export) and readers (for `export --verify`).

use std::io::{self, Read, Write};

/// How an artifact's bytes are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    /// gzip (RFC 1952), level 6 — what `gzip` does by default.
    Gzip,
    /// zstd level 3 — what `zstd` does by default.
    Zstd,
}

impl Compression {
    /// The file name suffix, without the dot (`""` for none).
    pub fn suffix(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Gzip => "gz",
            Compression::Zstd => "zst",
        }
    }

    /// Wrap `w` so that bytes written are compressed; call
    /// [`CompressWriter::finish`] to write the trailer.
    pub fn writer<W: Write>(self, w: W) -> io::Result<CompressWriter<W>> {
        Ok(match self {
            Compression::None => CompressWriter::Plain(w),
            Compression::Gzip => CompressWriter::Gzip(flate2::write::GzEncoder::new(
                w,
                flate2::Compression::new(6),
            )),
            Compression::Zstd => CompressWriter::Zstd(zstd::stream::write::Encoder::new(w, 3)?),
        })
    }

    /// Wrap `r` so that reads return the decompressed bytes.
    pub fn reader<'a, R: Read + 'a>(self, r: R) -> io::Result<Box<dyn Read + 'a>> {
        Ok(match self {
            Compression::None => Box::new(r),
            // MultiGzDecoder: `cat a.gz b.gz` is a valid gzip file too.
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(r)),
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(r)?),
        })
    }
}

/// A writer that compresses into `W`.
pub enum CompressWriter<W: Write> {
    Plain(W),
    Gzip(flate2::write::GzEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> CompressWriter<W> {
    /// Write the compression's trailer and hand back the inner writer.
    pub fn finish(self) -> io::Result<W> {
        match self {
            CompressWriter::Plain(w) => Ok(w),
            CompressWriter::Gzip(g) => g.finish(),
            CompressWriter::Zstd(z) => z.finish(),
        }
    }
}

impl<W: Write> Write for CompressWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            CompressWriter::Plain(w) => w.write(buf),
            CompressWriter::Gzip(g) => g.write(buf),
            CompressWriter::Zstd(z) => z.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            CompressWriter::Plain(w) => w.flush(),
            CompressWriter::Gzip(g) => g.flush(),
            CompressWriter::Zstd(z) => z.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let data: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let mut w = c.writer(Vec::new()).unwrap();
            w.write_all(&data).unwrap();
            let packed = w.finish().unwrap();
            if c != Compression::None {
                assert!(packed.len() < data.len() / 2, "{c:?} compresses");
            }
            let mut back = Vec::new();
            c.reader(&packed[..])
                .unwrap()
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, data, "{c:?}");
        }
    }
}
