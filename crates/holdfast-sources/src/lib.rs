//! Sources: what holdfast reads backups from and restores them to.
//!
//! - [`dir`]: directory trees with full metadata (backup and restore);
//! - [`stream`]: one byte stream stored as a one-file snapshot (`--stdin`,
//!   and the base of the database sources); [`command`]: a command's output;
//! - [`writer`]: a snapshot built file by file from streams (on the
//!   engine's `SnapshotBuilder`, as directory backups are);
//! - [`database`]: the [`database::Dialect`] interface and the database
//!   backups and restores written once on it; [`postgres`], [`mysql`],
//!   [`sqlite`]: the dialects; [`dump_scan`]: reading dump tools' output
//!   as it streams (the CSV dialect is `holdfast_format::table_csv`);
//!   [`jsonl`]: event streams;
//! - [`source_url`], [`secret`]: addresses (always shown redacted) and
//!   passwords; [`manifest`]: what a database/stream snapshot holds;
//! - [`dispatch`]: an address to its source, for the CLI and the service;
//! - [`drill`]: restore drills — a snapshot restored into a scratch target,
//!   verified against the snapshot, and removed;
//! - [`filter`]: the include/exclude patterns of directory backups.

pub mod command;
pub mod database;
pub mod dir;
pub mod dispatch;
pub mod drill;
pub mod dump_scan;
pub mod filter;
pub mod jsonl;
pub mod line_filter;
pub mod mysql;
pub mod postgres;
pub mod progress;
pub mod secret;
pub mod source_url;
pub mod spec;
pub mod sqlite;
pub mod stream;
pub mod writer;
