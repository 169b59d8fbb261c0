//! `manifest.json`: what a database or stream snapshot holds, stored as a
//! file inside the snapshot (so `restic restore` brings it back too) and
//! copied into every export. It lists every other file with its size and
//! SHA-256, and every table with its row count — the numbers a restore is
//! verified against. Part of holdfast's format (docs/FORMAT.md): pure
//! types and their JSON; `holdfast_engine::manifest` reads one out of a
//! snapshot.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Id;
use crate::gotime::GoTime;
use crate::snapshot::Snapshot;

/// A manifest that is not one this holdfast reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ManifestError(pub String);

/// The file name of the manifest at the root of a snapshot.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The value of `format`.
pub const MANIFEST_FORMAT: &str = "holdfast-manifest/1";
/// Manifests are small; a larger one is not ours.
pub const MAX_MANIFEST: u64 = 64 << 20;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: String,
    /// `postgres`, `mysql`, `sqlite`, `jsonl`.
    pub kind: String,
    /// `dump`, `tables`, `file`, `events`.
    pub mode: String,
    /// The source's address, redacted.
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_version: Option<String>,
    /// The tool that produced the data (`pg_dump (PostgreSQL) 15.10`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// RFC 3339.
    pub created: String,
    /// Every file of the snapshot except the manifest.
    pub files: Vec<ManifestFile>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<ManifestTable>,
    /// Kind-specific facts (encoding, event ids, …).
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ManifestFile {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ManifestTable {
    /// `schema.table` (PostgreSQL) or `table`, unquoted.
    pub name: String,
    /// The name's parts, unquoted (schema, table).
    pub parts: Vec<String>,
    pub rows: u64,
    /// The table's own file (tables mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<ManifestColumn>,
}

impl ManifestTable {
    /// The columns a restore loads: all but the generated ones, which the
    /// database computes again.
    pub fn loaded_columns(&self) -> impl Iterator<Item = &ManifestColumn> {
        self.columns.iter().filter(|c| !c.generated)
    }

    /// Positions of the generated columns in the table's files.
    pub fn generated_positions(&self) -> Vec<usize> {
        (0..self.columns.len())
            .filter(|&i| self.columns[i].generated)
            .collect()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ManifestColumn {
    pub name: String,
    #[serde(rename = "type")]
    pub sql_type: String,
    /// The database computes this column (a generated column): its values
    /// are exported, and a restore leaves them to the database.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub generated: bool,
}

impl ManifestColumn {
    /// A column the table stores (not generated).
    pub fn stored(name: &str, sql_type: &str) -> ManifestColumn {
        ManifestColumn {
            name: name.to_string(),
            sql_type: sql_type.to_string(),
            generated: false,
        }
    }
}

impl Manifest {
    /// A manifest of a snapshot taken now.
    pub fn new(kind: &str, mode: &str, source: String) -> Manifest {
        Manifest {
            format: MANIFEST_FORMAT.into(),
            kind: kind.into(),
            mode: mode.into(),
            source,
            database: None,
            server_version: None,
            tool: None,
            created: GoTime::now().to_string(),
            files: Vec::new(),
            tables: Vec::new(),
            extra: BTreeMap::new(),
        }
    }

    pub fn add_file(&mut self, path: &str, size: u64, sha256: &Id) {
        self.files.push(ManifestFile {
            path: path.into(),
            size,
            sha256: sha256.to_hex(),
        });
    }

    pub fn file(&self, path: &str) -> Option<&ManifestFile> {
        self.files.iter().find(|f| f.path == path)
    }

    /// The tables a restore loads: every table entry except `--query`
    /// results (whose files live under `queries/`).
    pub fn restorable_tables(&self) -> Vec<&ManifestTable> {
        self.tables
            .iter()
            .filter(|t| !t.file.as_deref().is_some_and(|f| f.starts_with("queries/")))
            .collect()
    }

    pub fn total_rows(&self) -> u64 {
        self.tables.iter().map(|t| t.rows).sum()
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("manifest serialises");
        v.push(b'\n');
        v
    }

    pub fn parse(data: &[u8]) -> Result<Manifest, ManifestError> {
        let m: Manifest = serde_json::from_slice(data)
            .map_err(|e| ManifestError(format!("manifest.json cannot be read: {e}")))?;
        if m.format != MANIFEST_FORMAT {
            return Err(ManifestError(format!(
                "manifest.json has format {:?}; this holdfast reads {MANIFEST_FORMAT}",
                m.format
            )));
        }
        Ok(m)
    }
}

/// holdfast's own summary of a source, stored in the snapshot's `holdfast`
/// object (`holdfast.source`), so listings need not read the tree.
pub fn source_summary(m: &Manifest, main_file: Option<&str>) -> serde_json::Value {
    let mut v = serde_json::json!({
        "kind": m.kind,
        "mode": m.mode,
        "address": m.source,
    });
    let o = v.as_object_mut().unwrap();
    if let Some(d) = &m.database {
        o.insert("database".into(), d.clone().into());
    }
    if let Some(s) = &m.server_version {
        o.insert("server_version".into(), s.clone().into());
    }
    if !m.tables.is_empty() {
        o.insert("tables".into(), m.tables.len().into());
        o.insert("rows".into(), m.total_rows().into());
    }
    if let Some(f) = main_file.and_then(|p| m.file(p)) {
        o.insert("file".into(), f.path.clone().into());
        o.insert("size".into(), f.size.into());
        o.insert("sha256".into(), f.sha256.clone().into());
    }
    serde_json::json!({ "source": v })
}

/// The `holdfast.source.kind` of a snapshot, if holdfast recorded one.
pub fn snapshot_kind(s: &Snapshot) -> Option<(String, String)> {
    let src = s.extra.get("holdfast")?.get("source")?;
    Some((
        src.get("kind")?.as_str()?.to_string(),
        src.get("mode")
            .and_then(|m| m.as_str())
            .unwrap_or("")
            .to_string(),
    ))
}
