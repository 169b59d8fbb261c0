//! The "unpacked" file encoding used for index, snapshot and lock files:
//! `seal(0x02 || zstd(json))`. A plaintext starting with `[` or `{` is legacy
//! (version 1) uncompressed JSON and is accepted when reading. The config
//! file is the exception: it is always sealed plain JSON.

use crate::crypto::{CryptoError, MasterKey};

/// Version byte for "zstd-compressed JSON follows".
pub const ENCODING_ZSTD: u8 = 2;

#[derive(Debug, thiserror::Error)]
pub enum UnpackedError {
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error("unknown encoding version {0:#04x}")]
    UnknownEncoding(u8),
    #[error("empty file")]
    Empty,
    #[error("zstd decompression failed: {0}")]
    Decompress(std::io::Error),
}

/// Compress and seal a JSON document for storage.
pub fn seal_json(key: &MasterKey, json: &[u8], zstd_level: i32) -> Vec<u8> {
    let mut plain = Vec::with_capacity(json.len() / 3 + 16);
    plain.push(ENCODING_ZSTD);
    let compressed = zstd::bulk::compress(json, zstd_level).expect("zstd compression of memory");
    plain.extend_from_slice(&compressed);
    key.seal(&plain)
}

/// Open a sealed unpacked file and return its JSON bytes.
pub fn open_json(key: &MasterKey, sealed: Vec<u8>) -> Result<Vec<u8>, UnpackedError> {
    let plain = key.open_owned(sealed)?;
    decode_plaintext(plain)
}

/// Interpret the plaintext of an unpacked file (after decryption).
pub fn decode_plaintext(plain: Vec<u8>) -> Result<Vec<u8>, UnpackedError> {
    match plain.first() {
        None => Err(UnpackedError::Empty),
        Some(b'[') | Some(b'{') => Ok(plain),
        Some(&ENCODING_ZSTD) => {
            zstd::stream::decode_all(&plain[1..]).map_err(UnpackedError::Decompress)
        }
        Some(&v) => Err(UnpackedError::UnknownEncoding(v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_legacy() {
        let k = MasterKey::random();
        let json = br#"{"a":[1,2,3],"b":"hello hello hello hello"}"#;
        let sealed = seal_json(&k, json, 3);
        assert_eq!(open_json(&k, sealed).unwrap(), json);
        let legacy = k.seal(json);
        assert_eq!(open_json(&k, legacy).unwrap(), json);
        let bad = k.seal(&[7, 1, 2]);
        assert!(matches!(
            open_json(&k, bad),
            Err(UnpackedError::UnknownEncoding(7))
        ));
        assert!(matches!(
            open_json(&k, k.seal(&[])),
            Err(UnpackedError::Empty)
        ));
    }
}
