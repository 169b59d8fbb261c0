//! Pack files: `SealedBlob1 || … || SealedBlobN || SealedHeader || HeaderLen`.
//!
//! The header plaintext is a sequence of entries, one per blob, in file
//! order: `type(1) || sealed_len(u32 LE) || [plain_len(u32 LE)] || id(32)`,
//! where the `plain_len` field is present only for the compressed types
//! 2 (data) and 3 (tree). `HeaderLen` is the sealed header's length as a
//! u32 LE. A pack's id is the SHA-256 of the whole file.

use sha2::{Digest, Sha256};

use crate::blob::BlobType;
use crate::crypto::{CryptoError, MasterKey, OVERHEAD};
use crate::id::Id;

const ENTRY_PLAIN: usize = 1 + 4 + 32;
const ENTRY_COMPRESSED: usize = 1 + 4 + 4 + 32;
/// Bytes after the last blob that are not the header itself.
pub const TRAILER_LEN: usize = 4;
/// Upper bound restic accepts for a sealed header.
pub const MAX_HEADER_LEN: usize = 16 * 1024 * 1024;
/// Tail bytes worth reading in one request to get the header of a typical
/// pack in one go.
pub const EAGER_TAIL: usize = 64 * 1024;

/// One blob as the pack header (and the index) describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackedBlob {
    pub blob_type: BlobType,
    pub id: Id,
    pub offset: u32,
    /// Length of the sealed blob in the pack.
    pub length: u32,
    /// Length of the plaintext after decompression, when compressed.
    pub uncompressed_length: Option<u32>,
}

impl PackedBlob {
    /// Length of the blob's plaintext (what its id hashes).
    pub fn plain_len(&self) -> u32 {
        self.uncompressed_length
            .unwrap_or(self.length.saturating_sub(OVERHEAD as u32))
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PackError {
    #[error("pack is {0} bytes, too short to hold a header")]
    TooShort(u64),
    #[error("pack header length {header} does not fit in a pack of {size} bytes")]
    BadHeaderLength { header: u64, size: u64 },
    #[error("pack header cannot be decrypted: {0}")]
    Crypto(#[from] CryptoError),
    #[error("pack header is malformed: {0}")]
    Malformed(String),
    #[error(
        "pack blobs ({blobs} bytes) and header ({header} bytes) do not add up to the pack size {size}"
    )]
    SizeMismatch { blobs: u64, header: u64, size: u64 },
}

/// Builds a pack in memory: blobs are appended as they come, the header is
/// sealed on `finish`. Pure: the caller stores the bytes.
pub struct PackBuilder {
    buf: Vec<u8>,
    blobs: Vec<PackedBlob>,
    blob_type: Option<BlobType>,
}

/// A finished pack ready to be stored under `data/`.
pub struct FinishedPack {
    pub id: Id,
    pub bytes: Vec<u8>,
    pub blobs: Vec<PackedBlob>,
}

impl PackBuilder {
    pub fn with_capacity(cap: usize) -> PackBuilder {
        PackBuilder::with_buffer(Vec::with_capacity(cap))
    }

    /// Build into `buf` (cleared first), e.g. a buffer from a pool.
    pub fn with_buffer(mut buf: Vec<u8>) -> PackBuilder {
        buf.clear();
        PackBuilder {
            buf,
            blobs: Vec::new(),
            blob_type: None,
        }
    }

    /// Bytes of blob data so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    pub fn count(&self) -> usize {
        self.blobs.len()
    }

    pub fn blob_type(&self) -> Option<BlobType> {
        self.blob_type
    }

    /// Append one sealed blob. A pack holds blobs of one type only.
    pub fn add(
        &mut self,
        blob_type: BlobType,
        id: Id,
        sealed: &[u8],
        uncompressed_length: Option<u32>,
    ) {
        debug_assert!(self.blob_type.is_none_or(|t| t == blob_type));
        self.blob_type = Some(blob_type);
        let offset = self.buf.len() as u32;
        self.buf.extend_from_slice(sealed);
        self.blobs.push(PackedBlob {
            blob_type,
            id,
            offset,
            length: sealed.len() as u32,
            uncompressed_length,
        });
    }

    pub fn finish(mut self, key: &MasterKey) -> FinishedPack {
        let header = encode_header(&self.blobs);
        let sealed = key.seal(&header);
        self.buf.extend_from_slice(&sealed);
        self.buf
            .extend_from_slice(&(sealed.len() as u32).to_le_bytes());
        let id = Id(Sha256::digest(&self.buf).into());
        FinishedPack {
            id,
            bytes: self.buf,
            blobs: self.blobs,
        }
    }
}

/// The plaintext header for `blobs`.
pub fn encode_header(blobs: &[PackedBlob]) -> Vec<u8> {
    let mut out = Vec::with_capacity(blobs.len() * ENTRY_COMPRESSED);
    for b in blobs {
        let t: u8 = match (b.blob_type, b.uncompressed_length.is_some()) {
            (BlobType::Data, false) => 0,
            (BlobType::Tree, false) => 1,
            (BlobType::Data, true) => 2,
            (BlobType::Tree, true) => 3,
        };
        out.push(t);
        out.extend_from_slice(&b.length.to_le_bytes());
        if let Some(u) = b.uncompressed_length {
            out.extend_from_slice(&u.to_le_bytes());
        }
        out.extend_from_slice(&b.id.0);
    }
    out
}

/// Parse a plaintext header; offsets are computed from the entry order.
pub fn decode_header(plain: &[u8]) -> Result<Vec<PackedBlob>, PackError> {
    let mut blobs = Vec::with_capacity(plain.len() / ENTRY_PLAIN);
    let mut pos = 0usize;
    let mut offset: u64 = 0;
    while pos < plain.len() {
        let t = plain[pos];
        let (blob_type, compressed) = match t {
            0 => (BlobType::Data, false),
            1 => (BlobType::Tree, false),
            2 => (BlobType::Data, true),
            3 => (BlobType::Tree, true),
            other => {
                return Err(PackError::Malformed(format!(
                    "unknown blob type {other} in entry {}",
                    blobs.len()
                )));
            }
        };
        let need = if compressed {
            ENTRY_COMPRESSED
        } else {
            ENTRY_PLAIN
        };
        if plain.len() - pos < need {
            return Err(PackError::Malformed(format!(
                "entry {} truncated",
                blobs.len()
            )));
        }
        let le = |at: usize| u32::from_le_bytes(plain[at..at + 4].try_into().unwrap());
        let length = le(pos + 1);
        let (uncompressed_length, id_at) = if compressed {
            (Some(le(pos + 5)), pos + 9)
        } else {
            (None, pos + 5)
        };
        let mut id = [0u8; 32];
        id.copy_from_slice(&plain[id_at..id_at + 32]);
        if (length as usize) < OVERHEAD {
            return Err(PackError::Malformed(format!(
                "entry {} has length {length}, shorter than the encryption overhead",
                blobs.len()
            )));
        }
        if offset > u32::MAX as u64 {
            return Err(PackError::Malformed("blob offset exceeds 4 GiB".into()));
        }
        blobs.push(PackedBlob {
            blob_type,
            id: Id(id),
            offset: offset as u32,
            length,
            uncompressed_length,
        });
        offset += length as u64;
        pos += need;
    }
    Ok(blobs)
}

/// Read the header length from the last four bytes of a pack of `size`
/// bytes, given at least its last four bytes in `tail`.
pub fn header_length(tail: &[u8], size: u64) -> Result<u64, PackError> {
    if size < (TRAILER_LEN + OVERHEAD) as u64 || tail.len() < TRAILER_LEN {
        return Err(PackError::TooShort(size));
    }
    let n = tail.len();
    let hl = u32::from_le_bytes(tail[n - 4..].try_into().unwrap()) as u64;
    if hl < OVERHEAD as u64 || hl + TRAILER_LEN as u64 > size || hl > MAX_HEADER_LEN as u64 {
        return Err(PackError::BadHeaderLength { header: hl, size });
    }
    Ok(hl)
}

/// Decrypt and parse a header given the pack's tail (which must include the
/// whole sealed header and the length field) and the pack's total size.
/// Also checks that the blobs and the header account for every byte.
pub fn parse_tail(key: &MasterKey, tail: &[u8], size: u64) -> Result<Vec<PackedBlob>, PackError> {
    let hl = header_length(tail, size)? as usize;
    if tail.len() < hl + TRAILER_LEN {
        return Err(PackError::Malformed("tail too short for header".into()));
    }
    let start = tail.len() - TRAILER_LEN - hl;
    let sealed = tail[start..tail.len() - TRAILER_LEN].to_vec();
    let plain = key.open_owned(sealed)?;
    let blobs = decode_header(&plain)?;
    let sum: u64 = blobs.iter().map(|b| b.length as u64).sum();
    if sum + hl as u64 + TRAILER_LEN as u64 != size {
        return Err(PackError::SizeMismatch {
            blobs: sum,
            header: hl as u64,
            size,
        });
    }
    Ok(blobs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn build(k: &MasterKey, blobs: &[(Vec<u8>, bool)]) -> FinishedPack {
        let mut b = PackBuilder::with_capacity(1024);
        for (data, compressed) in blobs {
            let sealed = k.seal(data);
            b.add(
                BlobType::Data,
                Id::hash(data),
                &sealed,
                compressed.then_some(data.len() as u32 + 5),
            );
        }
        b.finish(k)
    }

    #[test]
    fn pack_round_trip() {
        let k = MasterKey::random();
        let blobs = vec![(b"one".to_vec(), false), (vec![7u8; 1000], true)];
        let p = build(&k, &blobs);
        assert_eq!(p.id, Id::hash(&p.bytes));
        let parsed = parse_tail(&k, &p.bytes, p.bytes.len() as u64).unwrap();
        assert_eq!(parsed, p.blobs);
        for (pb, (data, _)) in parsed.iter().zip(&blobs) {
            let s = &p.bytes[pb.offset as usize..(pb.offset + pb.length) as usize];
            assert_eq!(&k.open(s).unwrap(), data);
        }
    }

    #[test]
    fn damaged_packs_give_errors_not_panics() {
        let k = MasterKey::random();
        let p = build(&k, &[(b"x".to_vec(), false)]);
        let n = p.bytes.len();
        // truncated
        for cut in 0..n {
            let t = &p.bytes[..cut];
            assert!(parse_tail(&k, t, cut as u64).is_err(), "cut {cut}");
        }
        // every single-byte flip in the header region is caught
        for i in n - 4 - 37 - 32..n {
            let mut bad = p.bytes.clone();
            bad[i] ^= 0x40;
            assert!(parse_tail(&k, &bad, n as u64).is_err(), "flip {i}");
        }
    }

    proptest! {
        #[test]
        fn prop_header_round_trip(entries in proptest::collection::vec(
            (any::<bool>(), any::<bool>(), 32u32..1_000_000, any::<u32>(), any::<[u8; 32]>()), 0..50)) {
            let mut off = 0u32;
            let blobs: Vec<PackedBlob> = entries.iter().map(|(tree, comp, len, ulen, id)| {
                let b = PackedBlob {
                    blob_type: if *tree { BlobType::Tree } else { BlobType::Data },
                    id: Id(*id),
                    offset: off,
                    length: *len,
                    uncompressed_length: comp.then_some(*ulen),
                };
                off += len;
                b
            }).collect();
            prop_assert_eq!(decode_header(&encode_header(&blobs)).unwrap(), blobs);
        }

        #[test]
        fn prop_decode_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_header(&data);
        }
    }
}
