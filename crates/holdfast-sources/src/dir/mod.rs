//! Directory trees: backup with full metadata, and restore.

pub mod backup;
pub(crate) mod fd;
pub mod metadata;
pub mod restore;
