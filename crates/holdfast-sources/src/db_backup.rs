//! What every database dump backup shares: its options and result, the
//! name of the dump file inside the snapshot, and the manifest's table
//! list built from what a dump scanner counted.

use holdfast_engine::blob_saver::SaverOptions;
use holdfast_engine::chunker::ChunkerParams;
use holdfast_format::Id;
use holdfast_format::snapshot::Snapshot;

use crate::commit::SnapshotMeta;
use crate::dump_scan::TableRows;
use crate::manifest::{Manifest, ManifestTable};

pub struct DumpBackupOptions {
    pub chunker: ChunkerParams,
    pub saver: SaverOptions,
    pub meta: SnapshotMeta,
    pub dry_run: bool,
}

pub struct DumpBackupResult {
    pub snapshot_id: Option<Id>,
    pub snapshot: Snapshot,
    pub manifest: Manifest,
}

/// A file name for a database's dump: its name, made safe.
pub fn dump_file_name(database: &str, ext: &str) -> String {
    let clean: String = database
        .chars()
        .map(|c| {
            if c == '/' || c == '\0' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    let base = if clean.is_empty() || clean == "." || clean == ".." || clean == "manifest" {
        format!("database-{clean}")
    } else {
        clean
    };
    format!("{base}.{ext}")
}

/// The manifest's tables, in the order the dump holds them.
pub(crate) fn manifest_tables(tables: Vec<TableRows>) -> Vec<ManifestTable> {
    tables
        .into_iter()
        .map(|t| ManifestTable {
            name: t.display_name(),
            parts: t.parts,
            rows: t.rows,
            file: None,
            columns: Vec::new(),
        })
        .collect()
}
