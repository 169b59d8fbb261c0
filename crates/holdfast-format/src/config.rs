//! The repository config: format version, repository id, chunker polynomial.

use serde::{Deserialize, Serialize};

use crate::crypto::{CryptoError, MasterKey};
use crate::id::Id;
use crate::polynomial::Polynomial;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    pub version: u32,
    pub id: String,
    pub chunker_polynomial: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config cannot be decrypted: {0}")]
    Crypto(#[from] CryptoError),
    #[error("config is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("repository format version {0} is not supported (holdfast reads versions 1 and 2)")]
    UnsupportedVersion(u32),
    #[error("config holds an invalid chunker polynomial {0:?}")]
    BadPolynomial(String),
}

impl Config {
    /// A fresh version-2 config with a random id and polynomial.
    pub fn new() -> Config {
        Config {
            version: crate::REPO_VERSION,
            id: Id::random().to_hex(),
            chunker_polynomial: Polynomial::random().to_hex(),
        }
    }

    /// The config is sealed plain JSON (never compressed: the version it
    /// holds decides whether other files are).
    pub fn seal(&self, key: &MasterKey) -> Vec<u8> {
        key.seal(&serde_json::to_vec(self).expect("config serializes"))
    }

    pub fn open(key: &MasterKey, sealed: Vec<u8>) -> Result<Config, ConfigError> {
        let plain = key.open_owned(sealed)?;
        let cfg: Config = serde_json::from_slice(&plain)?;
        if cfg.version != 1 && cfg.version != 2 {
            return Err(ConfigError::UnsupportedVersion(cfg.version));
        }
        match Polynomial::from_hex(&cfg.chunker_polynomial) {
            Some(p) if p.is_irreducible() => {}
            _ => return Err(ConfigError::BadPolynomial(cfg.chunker_polynomial)),
        }
        Ok(cfg)
    }

    pub fn polynomial(&self) -> Polynomial {
        Polynomial::from_hex(&self.chunker_polynomial).unwrap_or(Polynomial(0))
    }
}

impl Default for Config {
    fn default() -> Self {
        Config::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    #[test]
    fn seal_open() {
        let k = MasterKey::random();
        let c = Config::new();
        assert_eq!(Config::open(&k, c.seal(&k)).unwrap(), c);
    }

    /// The config file of the repository whose key file is tested in
    /// `keyfile.rs`, decrypted with the master key restic printed for it.
    #[test]
    fn opens_restic_config() {
        let master = MasterKey::from_json(br#"{"mac":{"k":"c/xGFbFTbhI9Ggb7SIi0TQ==","r":"uBpxCMzfygW4zooPkE9VCA=="},"encrypt":"1/2IAR+VW1C8gBRh3NTcssrU1q8dRm1ZiuWQV0SZOVk="}"#).unwrap();
        let sealed = base64::engine::general_purpose::STANDARD.decode("wi9SydxZt75wx8StMrrBE2oKEpRYsKifytdYzn2kcghauLvAxynUqjAh/67wzPFXnBoglct2hV0WXoL9tEzCzL/MrJxiHHmUMGneBLYkQPDzCLL12mC50/OldK4/X3mLgBHzqjs1iK8tbqDbsiwV6H9iG1b3HV2VDs1sfgef274LSw9/RPsxk777TevXJpHOapVY2ylx7kJjfy0=").unwrap();
        let c = Config::open(&master, sealed).unwrap();
        assert_eq!(c.version, 2);
        assert_eq!(c.chunker_polynomial, "21d3fa4a6549eb");
        assert_eq!(
            c.id,
            "9bd11677160e2e87b2e44a296ab5d675f1d99229e2debd7d39505783a1a1fc43"
        );
    }
}
