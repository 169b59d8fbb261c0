//! Storage backends: where a repository's files live.
//!
//! A backend stores immutable, whole files under names the repository layout
//! allows ([`ObjectName`]) and knows nothing about their contents. The
//! contract every backend keeps:
//!
//! - `put` is atomic: a reader sees the whole file or no file, never a part,
//!   and once `put` returns the file is durable.
//! - names are validated against the layout before any I/O: no `..`, no
//!   absolute paths, no separators outside the layout.
//! - `list` may lag behind `put` (object stores); callers must not rely on a
//!   listing being complete right after a write.
//! - errors say which operation failed on which object; "not found" and
//!   "no space left" are distinguishable.

mod local;
pub mod location;
mod memory;
mod name;
mod readahead;
mod s3;

pub use local::{LocalBackend, pid_alive};
pub use location::{BucketLookup, Location, S3Location};
pub use memory::MemoryBackend;
pub use name::{FileType, ObjectName};
pub use readahead::ReadAhead;
pub use s3::{Checksum, S3Backend, S3Credentials, S3Settings, retries_total};

use std::fmt;

/// One file in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub name: String,
    pub size: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{0} does not exist")]
    NotFound(String),
    #[error("no space left on the device while writing {0}")]
    NoSpace(String),
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid object name {name:?} for {ftype}: {why}")]
    InvalidName {
        ftype: FileType,
        name: String,
        why: &'static str,
    },
    /// The storage cannot be used as configured (a bad endpoint, options).
    #[error("{location}: {why}")]
    Config { location: String, why: String },
    /// The storage refused the request: credentials, rights, region.
    #[error("{op} {path}: {why}")]
    Denied {
        op: &'static str,
        path: String,
        why: String,
    },
    /// A delete refused by a retention rule (object lock): the object stays.
    #[error("{path} is retained by the storage ({why})")]
    Retained { path: String, why: String },
    /// Any other failure of a remote store, after the retries.
    #[error("{op} {path}: {why}")]
    Remote {
        op: &'static str,
        path: String,
        why: String,
    },
    #[error("{path} is {actual} bytes; reading {len} bytes at offset {offset} is past its end")]
    ShortRead {
        path: String,
        offset: u64,
        len: u64,
        actual: u64,
    },
}

impl StorageError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, StorageError::NotFound(_))
    }

    pub(crate) fn io(op: &'static str, path: impl fmt::Display, e: std::io::Error) -> StorageError {
        let path = path.to_string();
        match e.kind() {
            std::io::ErrorKind::NotFound => StorageError::NotFound(path),
            std::io::ErrorKind::StorageFull => StorageError::NoSpace(path),
            _ if e.raw_os_error() == Some(28) => StorageError::NoSpace(path),
            _ => StorageError::Io {
                op,
                path,
                source: e,
            },
        }
    }
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// The backend for a location: the one place a location becomes storage.
pub fn open(location: &Location, s3: &S3Settings) -> Result<std::sync::Arc<dyn Backend>> {
    Ok(match location {
        Location::Local(path) => std::sync::Arc::new(LocalBackend::new(path)),
        // a request costs tens of milliseconds: small reads of packs read ahead
        Location::S3(l) => {
            std::sync::Arc::new(ReadAhead::new(std::sync::Arc::new(S3Backend::open(l, s3)?)))
        }
    })
}

/// What a backend counted since it was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackendStats {
    /// Requests repeated after a transient failure (throttling, 5xx, a
    /// dropped connection).
    pub retries: u64,
}

/// The operations a repository needs from its storage.
pub trait Backend: Send + Sync {
    /// Where the repository is, fit for messages (credentials redacted).
    fn location(&self) -> String;

    /// Create the directory layout of a new repository.
    fn create_layout(&self) -> Result<()>;

    /// Store `data` under `name`, atomically and durably.
    fn put(&self, name: &ObjectName, data: &[u8]) -> Result<()>;

    /// [`Backend::put`] of a buffer the caller gives away: a backend that
    /// sends it elsewhere (an HTTP body) takes it without a copy and returns
    /// `None`; one that only reads it hands it back for reuse.
    fn put_owned(&self, name: &ObjectName, data: Vec<u8>) -> Result<Option<Vec<u8>>> {
        self.put(name, &data).map(|()| Some(data))
    }

    /// Read a whole file.
    fn get(&self, name: &ObjectName) -> Result<Vec<u8>>;

    /// Read `len` bytes at `offset`; a file too short is an error.
    fn get_range(&self, name: &ObjectName, offset: u64, len: u64) -> Result<Vec<u8>>;

    /// All files of one type with their sizes, in no particular order.
    /// Names that do not fit the layout (foreign or temporary files) are
    /// left out.
    fn list(&self, ftype: FileType) -> Result<Vec<ObjectInfo>>;

    /// Size of one file.
    fn stat(&self, name: &ObjectName) -> Result<u64>;

    /// Remove one file.
    fn delete(&self, name: &ObjectName) -> Result<()>;

    /// Remove temporary files an interrupted writer left behind, older than
    /// `min_age`. Returns how many were removed.
    fn clean_temporary(&self, _min_age: std::time::Duration) -> Result<usize> {
        Ok(0)
    }

    /// How many uploads may run at once to use this storage well.
    fn connections(&self) -> usize {
        1
    }

    /// Counters since the backend was opened.
    fn stats(&self) -> BackendStats {
        BackendStats::default()
    }
}
