//! The server key: 32 random bytes that seal the tenants' repository
//! passwords and stored source credentials, and key the audit chain's MAC.
//! Kept in a 0600 file in the data directory, or given in
//! `HOLDFAST_SERVER_KEY` (base64). Losing it loses every stored repository
//! password (keep them with `holdfast tenant export-key`).

use std::io::Write;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use holdfast_format::crypto::{MasterKey, fill_random};
use sha2::{Digest, Sha256};

use crate::CatalogError;

pub struct ServerKey {
    raw: [u8; 32],
    sealing: MasterKey,
}

impl std::fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerKey(…)")
    }
}

impl Clone for ServerKey {
    fn clone(&self) -> ServerKey {
        ServerKey::from_bytes(self.raw)
    }
}

impl ServerKey {
    pub fn from_bytes(raw: [u8; 32]) -> ServerKey {
        // two independent 32-byte keys (AES-256 and Poly1305-AES) derived
        // from the one secret, apart from the audit MAC key
        let mut kdf = [0u8; 64];
        kdf[..32].copy_from_slice(&Sha256::digest(
            [b"holdfast seal enc\0".as_slice(), &raw].concat(),
        ));
        kdf[32..].copy_from_slice(&Sha256::digest(
            [b"holdfast seal mac\0".as_slice(), &raw].concat(),
        ));
        ServerKey {
            raw,
            sealing: MasterKey::from_kdf_output(&kdf),
        }
    }

    pub fn random() -> ServerKey {
        let mut raw = [0u8; 32];
        fill_random(&mut raw);
        ServerKey::from_bytes(raw)
    }

    /// Parse the base64 form (the file's content, or the environment).
    pub fn parse(text: &str) -> Result<ServerKey, CatalogError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| CatalogError::invalid("server_key", "not base64"))?;
        let raw: [u8; 32] = bytes.try_into().map_err(|_| {
            CatalogError::invalid("server_key", "must be 32 bytes (44 base64 characters)")
        })?;
        Ok(ServerKey::from_bytes(raw))
    }

    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.raw)
    }

    /// Read `path`; `None` if it does not exist.
    pub fn load(path: &Path) -> Result<Option<ServerKey>, CatalogError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(Some(ServerKey::parse(&text)?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(CatalogError::Unavailable(format!(
                "cannot read the server key {}: {e}",
                path.display()
            ))),
        }
    }

    /// Write this key to `path` (mode 0600), which must not exist.
    pub fn store_new(&self, path: &Path) -> Result<(), CatalogError> {
        let io = |e: std::io::Error| {
            CatalogError::Unavailable(format!(
                "cannot write the server key {}: {e}",
                path.display()
            ))
        };
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode_0600()
            .open(path)
            .map_err(io)?;
        f.write_all(self.to_base64().as_bytes()).map_err(io)?;
        f.write_all(b"\n").map_err(io)?;
        f.sync_all().map_err(io)
    }

    /// Read `path`, or create it (mode 0600) with a new random key.
    pub fn load_or_create(path: &Path) -> Result<(ServerKey, bool), CatalogError> {
        if let Some(key) = ServerKey::load(path)? {
            return Ok((key, false));
        }
        let key = ServerKey::random();
        key.store_new(path)?;
        Ok((key, true))
    }

    /// Encrypt and authenticate a secret; base64 of `IV ‖ CT ‖ MAC`.
    pub fn seal(&self, secret: &[u8]) -> String {
        STANDARD.encode(self.sealing.seal(secret))
    }

    pub fn open(&self, sealed: &str) -> Result<Vec<u8>, CatalogError> {
        let bytes = STANDARD
            .decode(sealed)
            .map_err(|_| CatalogError::Sealed("a sealed secret is not base64".into()))?;
        self.sealing.open(&bytes).map_err(|_| {
            CatalogError::Sealed(
                "a stored secret does not open under this server key (was the key replaced?)"
                    .into(),
            )
        })
    }

    /// The seed of the key that signs evidence reports (Ed25519): derived,
    /// so that it needs no file of its own and changes with the server key.
    pub fn report_seed(&self) -> [u8; 32] {
        Sha256::digest([b"holdfast evidence report\0".as_slice(), &self.raw].concat()).into()
    }

    /// The key of the audit chain's MAC.
    pub fn audit_key(&self) -> [u8; 32] {
        Sha256::digest([b"holdfast audit chain\0".as_slice(), &self.raw].concat()).into()
    }
}

trait Mode0600 {
    fn mode_0600(&mut self) -> &mut Self;
}

impl Mode0600 for std::fs::OpenOptions {
    fn mode_0600(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.mode(0o600)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trips_and_a_different_key_cannot_open() {
        let k = ServerKey::random();
        let sealed = k.seal(b"repository password");
        assert!(!sealed.contains("repository"));
        assert_eq!(k.open(&sealed).unwrap(), b"repository password");
        let again = ServerKey::parse(&k.to_base64()).unwrap();
        assert_eq!(again.open(&sealed).unwrap(), b"repository password");
        assert!(ServerKey::random().open(&sealed).is_err());
    }

    #[test]
    fn key_file_is_created_private_and_read_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.key");
        let (a, created) = ServerKey::load_or_create(&path).unwrap();
        assert!(created);
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let (b, created) = ServerKey::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(a.to_base64(), b.to_base64());
    }
}
