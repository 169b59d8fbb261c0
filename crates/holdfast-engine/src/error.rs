//! The engine's errors. Each says what failed and on which repository file.

use holdfast_storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("repository {0} does not exist (create it with `holdfast init`)")]
    RepoNotFound(String),
    #[error("repository {0} already exists")]
    RepoExists(String),
    #[error("wrong password: no key in {location}/keys opens with it")]
    WrongPassword { location: String },
    #[error("repository {0} has no key files")]
    NoKeys(String),
    #[error("repository is locked {0}")]
    Locked(String),
    #[error("{file} is damaged: {why}")]
    Corrupt { file: String, why: String },
    #[error("blob {id} ({blob_type}) is not in the index")]
    BlobNotFound {
        id: holdfast_format::Id,
        blob_type: holdfast_format::BlobType,
    },
    #[error("no snapshot matches {0:?}")]
    SnapshotNotFound(String),
    #[error("{0:?} matches several snapshots; give more of the id")]
    AmbiguousSnapshot(String),
    #[error("invalid argument: {0}")]
    Invalid(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("interrupted")]
    Interrupted,
    /// A source (a dump tool, a database, a stream) failed; the message says
    /// what happened and that no snapshot was written. `fault` is decided
    /// where the failure is understood (the tool's error, the HTTP status):
    /// whether the same run could succeed later.
    #[error("{message}")]
    Source { fault: Fault, message: String },
}

/// Whether a failed source run could succeed if tried again later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The source cannot work as it is: authentication, a missing
    /// database, a damaged or incomplete answer, bad settings.
    Permanent,
    /// The source was unreachable or overloaded for now: a refused or lost
    /// connection, a timeout, HTTP 5xx or 429, a tool killed by a signal.
    Transient,
}

impl EngineError {
    pub fn corrupt(file: impl std::fmt::Display, why: impl std::fmt::Display) -> EngineError {
        EngineError::Corrupt {
            file: file.to_string(),
            why: why.to_string(),
        }
    }

    /// A source failure that trying again will not fix.
    pub fn source(message: impl Into<String>) -> EngineError {
        EngineError::Source {
            fault: Fault::Permanent,
            message: message.into(),
        }
    }

    /// A source failure that may pass (see [`Fault::Transient`]).
    pub fn source_transient(message: impl Into<String>) -> EngineError {
        EngineError::Source {
            fault: Fault::Transient,
            message: message.into(),
        }
    }

    pub fn source_with(fault: Fault, message: impl Into<String>) -> EngineError {
        EngineError::Source {
            fault,
            message: message.into(),
        }
    }

    pub fn io(what: impl Into<String>, source: std::io::Error) -> EngineError {
        EngineError::Io {
            what: what.into(),
            source,
        }
    }
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;
