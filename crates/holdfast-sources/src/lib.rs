//! Sources: what holdfast reads backups from and restores them to.
//!
//! - [`dir`]: directory trees with full metadata (backup and restore);
//! - [`stream`]: one byte stream stored as a one-file snapshot (`--stdin`,
//!   and the base of the database sources); [`command`]: a command's output;
//! - [`writer`]: a snapshot built file by file from streams;
//! - [`filter`]: the include/exclude patterns both use.

pub mod command;
pub mod commit;
pub mod dir;
pub mod filter;
pub mod progress;
pub mod stream;
pub mod writer;
