//! Directory trees: backup with full metadata, and restore.

pub mod backup;
pub mod metadata;
pub mod restore;
