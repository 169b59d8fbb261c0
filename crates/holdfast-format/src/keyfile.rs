//! Key files: a password, stretched by scrypt, unwraps the master key.
//!
//! A key file is plain JSON (not encrypted as a whole) stored under `keys/`
//! and named by the SHA-256 of its bytes. Its `data` field holds the master
//! key JSON sealed with the key derived from the password.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

use crate::crypto::{CryptoError, MasterKey, fill_random};

/// scrypt cost parameters holdfast uses for new keys (N = 2^15, r = 8, p = 1:
/// 32 MiB of memory and about 0.1 s on current hardware).
pub const DEFAULT_LOG_N: u8 = 15;
pub const DEFAULT_R: u32 = 8;
pub const DEFAULT_P: u32 = 1;

/// `created`, `username` and `hostname` are informational: restic writes
/// them, rustic leaves out the ones it does not know (its key files may
/// hold none of them), so a missing one reads as empty.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyFile {
    #[serde(default)]
    pub created: String,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub hostname: String,
    pub kdf: String,
    #[serde(rename = "N")]
    pub n: u64,
    pub r: u32,
    pub p: u32,
    pub salt: String,
    pub data: String,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("not a valid key file: {0}")]
    Json(#[from] serde_json::Error),
    #[error("unsupported key derivation function {0:?}")]
    UnsupportedKdf(String),
    #[error("invalid scrypt parameters N={n} r={r} p={p}")]
    BadParams { n: u64, r: u32, p: u32 },
    #[error("invalid base64 in key file field {0}")]
    Base64(&'static str),
    /// The password does not open this key (or the key file was altered).
    #[error("wrong password for this key")]
    WrongPassword,
    #[error("key file holds an invalid master key: {0}")]
    BadMasterKey(CryptoError),
}

impl KeyFile {
    pub fn parse(bytes: &[u8]) -> Result<KeyFile, KeyFileError> {
        Ok(serde_json::from_slice(bytes)?)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("key file serializes")
    }

    /// Wrap `master` under `password` with fresh salt.
    pub fn create(
        master: &MasterKey,
        password: &[u8],
        username: &str,
        hostname: &str,
        created: String,
        log_n: u8,
    ) -> KeyFile {
        let mut salt = [0u8; 64];
        fill_random(&mut salt);
        let user_key = derive(password, &salt, log_n, DEFAULT_R, DEFAULT_P)
            .expect("default scrypt parameters are valid");
        let sealed = user_key.seal(&master.to_json());
        KeyFile {
            created,
            username: username.to_string(),
            hostname: hostname.to_string(),
            kdf: "scrypt".into(),
            n: 1u64 << log_n,
            r: DEFAULT_R,
            p: DEFAULT_P,
            salt: B64.encode(salt),
            data: B64.encode(sealed),
        }
    }

    /// Derive the user key from `password` and unwrap the master key.
    pub fn open(&self, password: &[u8]) -> Result<MasterKey, KeyFileError> {
        if self.kdf != "scrypt" {
            return Err(KeyFileError::UnsupportedKdf(self.kdf.clone()));
        }
        let bad = || KeyFileError::BadParams {
            n: self.n,
            r: self.r,
            p: self.p,
        };
        if !self.n.is_power_of_two() || self.n < 2 || self.n > (1 << 30) {
            return Err(bad());
        }
        let log_n = self.n.trailing_zeros() as u8;
        let salt = B64
            .decode(&self.salt)
            .map_err(|_| KeyFileError::Base64("salt"))?;
        let data = B64
            .decode(&self.data)
            .map_err(|_| KeyFileError::Base64("data"))?;
        let user_key = derive(password, &salt, log_n, self.r, self.p).ok_or_else(bad)?;
        let plain = user_key.open_owned(data).map_err(|e| match e {
            CryptoError::BadMac => KeyFileError::WrongPassword,
            other => KeyFileError::BadMasterKey(other),
        })?;
        MasterKey::from_json(&plain).map_err(KeyFileError::BadMasterKey)
    }
}

fn derive(password: &[u8], salt: &[u8], log_n: u8, r: u32, p: u32) -> Option<MasterKey> {
    let params = scrypt::Params::new(log_n, r, p).ok()?;
    let mut out = [0u8; 64];
    scrypt::scrypt(password, salt, &params, &mut out).ok()?;
    let k = MasterKey::from_kdf_output(&out);
    out.fill(0);
    Some(k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_and_unwrap() {
        let master = MasterKey::random();
        let kf = KeyFile::create(
            &master,
            b"secret",
            "u",
            "h",
            "2024-01-01T00:00:00Z".into(),
            10,
        );
        let parsed = KeyFile::parse(&kf.to_bytes()).unwrap();
        assert!(parsed.open(b"secret").unwrap() == master);
        assert!(matches!(
            parsed.open(b"wrong"),
            Err(KeyFileError::WrongPassword)
        ));
    }

    /// rustic's key files leave out `created`, `username` and `hostname`
    /// when it has none: they parse and open all the same.
    #[test]
    fn opens_a_key_file_without_the_informational_fields() {
        let master = MasterKey::random();
        let kf = KeyFile::create(&master, b"pw", "u", "h", "2026-01-01T00:00:00Z".into(), 10);
        let mut v: serde_json::Value = serde_json::from_slice(&kf.to_bytes()).unwrap();
        for field in ["created", "username", "hostname"] {
            v.as_object_mut().unwrap().remove(field);
        }
        let parsed = KeyFile::parse(&serde_json::to_vec(&v).unwrap()).unwrap();
        assert!(parsed.open(b"pw").unwrap() == master);
        assert!(parsed.created.is_empty());
    }

    /// A key file written by restic 0.14 (password "geheim") and the master
    /// key `restic cat masterkey` printed for it: proves the KDF split and the
    /// MAC construction against restic's own output.
    #[test]
    fn opens_restic_key_file() {
        let json = br#"{"created":"2026-11-23T15:59:06.334377671Z","username":"root","hostname":"vm","kdf":"scrypt","N":32768,"r":8,"p":6,"salt":"EJPr4gxBF//3gqNLTuFrf6a6Qsn7HewDBonpUdoU59r/hHkUe5VbLm0eFEHcJU8TwiWHvvQ88ivovUvy6CzNVg==","data":"61FIfJp+I3+HCuUeD5a09M2r4JpAaKhECw6+cXhfp+NiUbA6fp07sWRzqtyNSdHLdjJ4JoLyst0rtHAw48VLl/hSx7bBg19pgogZvEY7U14TNJTumYRq8CHh3nqeyDP5BN5PnusMb54LkNlanHbrY6qDUPl4DydjfiagszEfE9HDBLIynfY+8SiWF4shPXPuYKyNHXOAZi8c3oY3ZF2KoA=="}"#;
        let want = br#"{"mac":{"k":"c/xGFbFTbhI9Ggb7SIi0TQ==","r":"uBpxCMzfygW4zooPkE9VCA=="},"encrypt":"1/2IAR+VW1C8gBRh3NTcssrU1q8dRm1ZiuWQV0SZOVk="}"#;
        let kf = KeyFile::parse(json).unwrap();
        let master = kf.open(b"geheim").unwrap();
        assert!(master == MasterKey::from_json(want).unwrap());
        assert!(matches!(
            kf.open(b"Geheim"),
            Err(KeyFileError::WrongPassword)
        ));
    }
}
