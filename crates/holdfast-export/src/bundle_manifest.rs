//! The bundle's own `manifest.json` ("holdfast-bundle/1"): the snapshot it
//! came from, its tables and every file's SHA-256. Written by `bundle`,
//! described by `bundle_readme`, checked by `verify`.

use holdfast_format::manifest::{ManifestColumn, ManifestFile};
use serde::{Deserialize, Serialize};

/// The value of the bundle manifest's `format`.
pub const BUNDLE_FORMAT: &str = "holdfast-bundle/1";
/// The bundle manifest's name inside the zip.
pub const BUNDLE_MANIFEST: &str = "manifest.json";
/// The README's name inside the zip.
pub const BUNDLE_README: &str = "README.md";

/// `manifest.json` inside a bundle.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BundleManifest {
    pub format: String,
    /// When the bundle was written (RFC 3339).
    pub created: String,
    pub snapshot: BundleSnapshot,
    pub source: BundleSource,
    /// The workbook's file name.
    pub workbook: String,
    pub tables: Vec<BundleTable>,
    /// Every file of the zip except this manifest.
    pub files: Vec<ManifestFile>,
    /// What was changed to fit a format's limits, in words.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BundleSnapshot {
    pub id: String,
    /// When the snapshot was taken (RFC 3339).
    pub time: String,
    pub hostname: String,
    pub paths: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BundleSource {
    /// `postgres`, `mysql`, `sqlite`.
    pub kind: String,
    pub mode: String,
    /// The database's address as the snapshot stores it (redacted).
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_version: Option<String>,
    /// When the backup read the database (RFC 3339).
    pub backed_up: String,
    /// `{"column", "value"}` when the backup kept one tenant's rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BundleTable {
    pub name: String,
    /// `table`, or `query` for a `--query` result.
    pub kind: String,
    pub rows: u64,
    pub columns: Vec<ManifestColumn>,
    pub csv: String,
    pub json: String,
    /// The workbook sheets holding it, in order.
    pub sheets: Vec<String>,
    /// What differs from the CSV in the other views (split, cut cells).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}
