//! Exports: a snapshot (or part of one) written as standard files that open
//! without holdfast. Every exporter streams: memory stays constant whatever
//! the size of the files (zip's central directory and the export manifest
//! keep one small record per file).
//!
//! - [`export`]: the entry point — format × snapshot kind → writer;
//! - [`tar_export`], [`zip_export`]: directory trees; single-file formats
//!   (SQL dumps, JSON Lines) are streamed by [`export`] itself;
//! - [`compression`]: gzip and zstd wrappers; [`digest`]: hashing as bytes
//!   pass;
//! - [`bundle`]: a tables-mode database snapshot as one zip for people —
//!   CSV (`holdfast_format::table_csv`), JSON ([`json_table`]), an Excel workbook
//!   ([`xlsx_workbook`]), typed by [`column_kinds`], with a README
//!   ([`bundle_readme`]) and a checksum manifest;
//! - [`export_manifest`]: the `.manifest.json` written beside an export;
//!   [`verify`]: `export --verify`.

pub mod bundle;
pub mod bundle_manifest;
pub mod bundle_readme;
pub mod column_kinds;
pub mod compression;
pub mod digest;
pub mod export;
pub mod export_manifest;
pub mod format;
pub mod json_table;
pub mod tar_export;
pub mod verify;
pub mod xlsx_workbook;
pub mod zip_export;
