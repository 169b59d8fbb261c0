//! Storage and blob identifiers: the SHA-256 of some content.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// A SHA-256 hash naming a file in the repository or a blob inside a pack.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Id(pub [u8; 32]);

/// A string that is not 64 lowercase or uppercase hex digits.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid id {0:?}: expected 64 hexadecimal digits")]
pub struct ParseIdError(pub String);

impl Id {
    /// The id of `data`: its SHA-256.
    pub fn hash(data: &[u8]) -> Id {
        Id(Sha256::digest(data).into())
    }

    /// A random id (used for the repository id and temporary names).
    pub fn random() -> Id {
        let mut b = [0u8; 32];
        crate::crypto::fill_random(&mut b);
        Id(b)
    }

    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(HEX[(b >> 4) as usize] as char);
            s.push(HEX[(b & 15) as usize] as char);
        }
        s
    }

    /// The first eight hex digits, as restic prints ids.
    pub fn short(&self) -> String {
        self.to_hex()[..8].to_string()
    }

    pub fn from_hex(s: &str) -> Result<Id, ParseIdError> {
        let bytes = s.as_bytes();
        if bytes.len() != 64 {
            return Err(ParseIdError(s.to_string()));
        }
        let mut out = [0u8; 32];
        let mut bad = 0u8;
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            let hi = HEX_VALUE[pair[0] as usize];
            let lo = HEX_VALUE[pair[1] as usize];
            bad |= (hi | lo) & 0x80;
            out[i] = (hi << 4) | (lo & 0x0f);
        }
        if bad != 0 {
            return Err(ParseIdError(s.to_string()));
        }
        Ok(Id(out))
    }

    pub fn is_null(&self) -> bool {
        self.0 == [0u8; 32]
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Value of each hex digit; 0x80 marks bytes that are not hex digits.
const HEX_VALUE: [u8; 256] = {
    let mut t = [0x80u8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// True when `s` is a non-empty string of lowercase hex digits no longer than
/// an id: a valid id prefix as the CLI accepts it.
pub fn is_hex_prefix(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|c| c.is_ascii_hexdigit())
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.short())
    }
}

impl FromStr for Id {
    type Err = ParseIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Id::from_hex(s)
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s: std::borrow::Cow<'de, str> = Deserialize::deserialize(d)?;
        Id::from_hex(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let id = Id::hash(b"hello");
        assert_eq!(
            id.to_hex(),
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(Id::from_hex(&id.to_hex()).unwrap(), id);
        assert_eq!(Id::from_hex(&id.to_hex().to_uppercase()).unwrap(), id);
        assert!(Id::from_hex("abc").is_err());
        assert!(Id::from_hex(&"g".repeat(64)).is_err());
    }

    #[test]
    fn serde_as_hex_string() {
        let id = Id::hash(b"x");
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{}\"", id.to_hex()));
        let back: Id = serde_json::from_str(&json).unwrap();
        assert_eq!(back, id);
    }
}
