//! holdfast's engine: everything between the repository format and the
//! sources. It opens and initialises repositories, keeps the compact blob
//! index, chunks streams, runs the parallel compress/encrypt/pack pipeline,
//! writes snapshots in the format's order (`snapshot_builder`), reads blobs
//! and trees back, finds snapshots, checks, prunes, and takes locks.
//!
//! The engine is synchronous and thread-based: callers that live in an async
//! runtime run it on blocking threads.

pub mod blob_reader;
pub mod blob_saver;
pub mod buffer_pool;
pub mod cancel;
pub mod check;
pub mod chunker;
pub mod error;
pub mod index;
pub mod lock;
pub mod manifest;
pub mod parallel;
pub mod prune;
pub mod repository;
pub mod retention;
pub mod snapshot_builder;
pub mod snapshots;
pub mod system;
pub mod tree_walk;

pub use error::{EngineError, Fault, Result};
pub use repository::{Compression, Repository};
