//! restic's repository format, version 2, as pure encoding and decoding.
//!
//! Nothing in this crate performs I/O: every function turns bytes into typed
//! values or typed values into bytes. The storage layer moves the bytes; the
//! engine decides what to write. The format itself is specified in restic's
//! `doc/design.rst`; `docs/FORMAT.md` lists the choices holdfast makes inside
//! it.

pub mod blob;
pub mod config;
pub mod crypto;
pub mod goquote;
pub mod gotime;
pub mod id;
pub mod index;
pub mod keyfile;
pub mod lock;
pub mod manifest;
pub mod pack;
pub mod polynomial;
pub mod snapshot;
pub mod table_csv;
pub mod tree;
pub mod unpacked;

pub use blob::BlobType;
pub use crypto::{CryptoError, MasterKey};
pub use id::Id;

/// The repository format version holdfast writes and reads.
pub const REPO_VERSION: u32 = 2;
