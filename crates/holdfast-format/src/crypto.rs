//! restic's authenticated encryption: AES-256-CTR with a Poly1305-AES MAC.
//!
//! A sealed message is `IV(16) || CIPHERTEXT || MAC(16)`. The IV is random,
//! serves as the CTR counter block (128-bit big-endian) and as the Poly1305-AES
//! nonce. The MAC covers the ciphertext only: `Poly1305_r(ct) + AES128_k(IV)`.

use aes::cipher::{BlockCipherEncrypt, KeyInit, KeyIvInit, StreamCipher};
use aes::{Aes128, Aes256};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use poly1305::Poly1305;
use poly1305::universal_hash::UniversalHash;
use serde::{Deserialize, Serialize};

type Aes256Ctr = ctr::Ctr128BE<Aes256>;

pub const IV_LEN: usize = 16;
pub const MAC_LEN: usize = 16;
/// Bytes a sealed message adds to its plaintext.
pub const OVERHEAD: usize = IV_LEN + MAC_LEN;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("ciphertext too short ({0} bytes, at least 32 needed)")]
    TooShort(usize),
    #[error("MAC check failed: the data is corrupt or was sealed with another key")]
    BadMac,
    #[error("invalid master key: {0}")]
    InvalidKey(String),
}

/// Fill `buf` with bytes from the operating system's CSPRNG.
pub fn fill_random(buf: &mut [u8]) {
    // getrandom only fails when the OS has no entropy source at all; there is
    // nothing sensible to do then but stop.
    getrandom::fill(buf).expect("operating system random number generator failed");
}

/// The three secrets that encrypt and authenticate everything in a repository
/// (and, derived by scrypt from a password, a key file's payload).
#[derive(Clone, PartialEq, Eq)]
pub struct MasterKey {
    encrypt: [u8; 32],
    mac_k: [u8; 16],
    mac_r: [u8; 16],
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl Drop for MasterKey {
    fn drop(&mut self) {
        self.encrypt.fill(0);
        self.mac_k.fill(0);
        self.mac_r.fill(0);
    }
}

#[derive(Serialize, Deserialize)]
struct MacJson {
    k: String,
    r: String,
}

#[derive(Serialize, Deserialize)]
struct MasterKeyJson {
    mac: MacJson,
    encrypt: String,
}

impl MasterKey {
    pub fn random() -> MasterKey {
        let mut b = [0u8; 64];
        fill_random(&mut b);
        MasterKey::from_kdf_output(&b)
    }

    /// Split 64 bytes of KDF output the way restic does: encryption key,
    /// then the MAC's AES key `k`, then its Poly1305 key `r`.
    pub fn from_kdf_output(b: &[u8; 64]) -> MasterKey {
        let mut k = MasterKey {
            encrypt: [0; 32],
            mac_k: [0; 16],
            mac_r: [0; 16],
        };
        k.encrypt.copy_from_slice(&b[..32]);
        k.mac_k.copy_from_slice(&b[32..48]);
        k.mac_r.copy_from_slice(&b[48..64]);
        k
    }

    /// The JSON document stored (encrypted) in a key file's `data` field.
    pub fn to_json(&self) -> Vec<u8> {
        let j = MasterKeyJson {
            mac: MacJson {
                k: B64.encode(self.mac_k),
                r: B64.encode(self.mac_r),
            },
            encrypt: B64.encode(self.encrypt),
        };
        serde_json::to_vec(&j).expect("master key serializes")
    }

    pub fn from_json(data: &[u8]) -> Result<MasterKey, CryptoError> {
        let j: MasterKeyJson =
            serde_json::from_slice(data).map_err(|e| CryptoError::InvalidKey(e.to_string()))?;
        let dec = |s: &str, n: usize, what: &str| -> Result<Vec<u8>, CryptoError> {
            let v = B64
                .decode(s)
                .map_err(|e| CryptoError::InvalidKey(format!("{what}: {e}")))?;
            if v.len() != n {
                return Err(CryptoError::InvalidKey(format!(
                    "{what}: {} bytes, expected {n}",
                    v.len()
                )));
            }
            Ok(v)
        };
        let mut k = MasterKey {
            encrypt: [0; 32],
            mac_k: [0; 16],
            mac_r: [0; 16],
        };
        k.encrypt
            .copy_from_slice(&dec(&j.encrypt, 32, "encryption key")?);
        k.mac_k.copy_from_slice(&dec(&j.mac.k, 16, "mac.k")?);
        k.mac_r.copy_from_slice(&dec(&j.mac.r, 16, "mac.r")?);
        if k.encrypt == [0; 32] || k.mac_k == [0; 16] || k.mac_r == [0; 16] {
            return Err(CryptoError::InvalidKey("all-zero key material".into()));
        }
        Ok(k)
    }

    fn mac(&self, iv: &[u8; IV_LEN], ciphertext: &[u8]) -> [u8; MAC_LEN] {
        // Poly1305-AES: s = AES-128_k(nonce); tag = Poly1305(r, s, msg).
        let aes = Aes128::new(&self.mac_k.into());
        let mut s: aes::Block = (*iv).into();
        aes.encrypt_block(&mut s);
        let mut key = [0u8; 32];
        key[..16].copy_from_slice(&self.mac_r);
        key[16..].copy_from_slice(&s);
        let mut poly = Poly1305::new(&key.into());
        let full = ciphertext.len() / 16 * 16;
        // Whole blocks through the (SIMD) backend, then the padded tail.
        let (blocks, _) = poly1305::Block::slice_as_chunks(&ciphertext[..full]);
        poly.update(blocks);
        let tag = poly.compute_unpadded(&ciphertext[full..]);
        key.fill(0);
        tag.into()
    }

    /// Seal `plaintext`, appending `IV || CT || MAC` to `out`.
    pub fn seal_into(&self, plaintext: &[u8], out: &mut Vec<u8>) {
        let mut iv = [0u8; IV_LEN];
        fill_random(&mut iv);
        self.seal_with_iv_into(&iv, plaintext, out);
    }

    fn seal_with_iv_into(&self, iv: &[u8; IV_LEN], plaintext: &[u8], out: &mut Vec<u8>) {
        out.reserve(plaintext.len() + OVERHEAD);
        out.extend_from_slice(iv);
        let start = out.len();
        out.extend_from_slice(plaintext);
        let mut cipher = Aes256Ctr::new(&self.encrypt.into(), &(*iv).into());
        cipher.apply_keystream(&mut out[start..]);
        let tag = self.mac(iv, &out[start..]);
        out.extend_from_slice(&tag);
    }

    /// Seal `plaintext` into a new buffer.
    pub fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(plaintext.len() + OVERHEAD);
        self.seal_into(plaintext, &mut out);
        out
    }

    /// Check the MAC and decrypt.
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.open_owned(sealed.to_vec())
    }

    /// Check the MAC and decrypt in place, reusing the buffer.
    pub fn open_owned(&self, mut sealed: Vec<u8>) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < OVERHEAD {
            return Err(CryptoError::TooShort(sealed.len()));
        }
        let n = sealed.len();
        let mut iv = [0u8; IV_LEN];
        iv.copy_from_slice(&sealed[..IV_LEN]);
        let mut tag = [0u8; MAC_LEN];
        tag.copy_from_slice(&sealed[n - MAC_LEN..]);
        let expect = self.mac(&iv, &sealed[IV_LEN..n - MAC_LEN]);
        if !constant_time_eq(&expect, &tag) {
            return Err(CryptoError::BadMac);
        }
        let mut cipher = Aes256Ctr::new(&self.encrypt.into(), &iv.into());
        cipher.apply_keystream(&mut sealed[IV_LEN..n - MAC_LEN]);
        sealed.truncate(n - MAC_LEN);
        sealed.drain(..IV_LEN);
        Ok(sealed)
    }

    /// Check only the MAC (used by check to verify a blob without keeping it).
    pub fn verify(&self, sealed: &[u8]) -> Result<(), CryptoError> {
        if sealed.len() < OVERHEAD {
            return Err(CryptoError::TooShort(sealed.len()));
        }
        let n = sealed.len();
        let mut iv = [0u8; IV_LEN];
        iv.copy_from_slice(&sealed[..IV_LEN]);
        let expect = self.mac(&iv, &sealed[IV_LEN..n - MAC_LEN]);
        if constant_time_eq(&expect, &sealed[n - MAC_LEN..]) {
            Ok(())
        } else {
            Err(CryptoError::BadMac)
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn seal_open_round_trip() {
        let k = MasterKey::random();
        for n in [0usize, 1, 15, 16, 17, 31, 32, 33, 1000, 65536 + 3] {
            let pt: Vec<u8> = (0..n).map(|i| (i * 7) as u8).collect();
            let sealed = k.seal(&pt);
            assert_eq!(sealed.len(), n + OVERHEAD);
            assert_eq!(k.open(&sealed).unwrap(), pt);
            k.verify(&sealed).unwrap();
        }
    }

    #[test]
    fn tamper_is_detected() {
        let k = MasterKey::random();
        let sealed = k.seal(b"attack at dawn");
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert_eq!(k.open(&bad), Err(CryptoError::BadMac), "byte {i}");
        }
        let other = MasterKey::random();
        assert_eq!(other.open(&sealed), Err(CryptoError::BadMac));
        assert_eq!(k.open(&sealed[..10]), Err(CryptoError::TooShort(10)));
    }

    #[test]
    fn master_key_json_round_trip() {
        let k = MasterKey::random();
        let j = k.to_json();
        let back = MasterKey::from_json(&j).unwrap();
        assert!(back == k);
        assert!(MasterKey::from_json(b"{}").is_err());
    }

    /// Poly1305-AES test vectors from Bernstein's paper (appendix B),
    /// checking the MAC construction restic uses: (k, r, nonce, msg, tag).
    #[test]
    fn poly1305_aes_paper_vectors() {
        fn h(s: &str) -> Vec<u8> {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect()
        }
        let vectors = [
            (
                "ec074c835580741701425b623235add6",
                "851fc40c3467ac0be05cc20404f3f700",
                "fb447350c4e868c52ac3275cf9d4327e",
                "f3f6",
                "f4c633c3044fc145f84f335cb81953de",
            ),
            (
                "75deaa25c09f208e1dc4ce6b5cad3fbf",
                "a0f3080000f46400d0c7e9076c834403",
                "61ee09218d29b0aaed7e154a2c5509cc",
                "",
                "dd3fab2251f11ac759f0887129cc2ee7",
            ),
            (
                "6acb5f61a7176dd320c5c1eb2edcdc74",
                "48443d0bb0d21109c89a100b5ce2c208",
                "ae212a55399729595dea458bc621ff0e",
                "663cea190ffb83d89593f3f476b6bc24d7e679107ea26adb8caf6652d0656136",
                "0ee1c16bb73f0f4fd19881753c01cdbe",
            ),
            (
                "e1a5668a4d5b66a5f68cc5424ed5982d",
                "12976a08c4426d0ce8a82407c4f48207",
                "9ae831e743978d3a23527c7128149e3a",
                "ab0812724a7f1e342742cbed374d94d136c6b8795d45b3819830f2c04491faf0\
                 990c62e48b8018b2c3e4a0fa3134cb67fa83e158c994d961c4cb21095c1bf9",
                "5154ad0d2cb26e01274fc51148491f1b",
            ),
        ];
        for (k, r, n, m, want) in vectors {
            let mut b = [1u8; 64];
            b[32..48].copy_from_slice(&h(k));
            b[48..64].copy_from_slice(&h(r));
            let key = MasterKey::from_kdf_output(&b);
            let mut iv = [0u8; 16];
            iv.copy_from_slice(&h(n));
            assert_eq!(key.mac(&iv, &h(m)).to_vec(), h(want), "vector {want}");
        }
    }

    proptest! {
        #[test]
        fn prop_round_trip(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let k = MasterKey::random();
            prop_assert_eq!(k.open(&k.seal(&data)).unwrap(), data);
        }
    }
}
