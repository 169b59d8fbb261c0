//! The export manifest: a JSON file written beside an export
//! (`shop.sql.gz` → `shop.sql.gz.manifest.json`) that names the snapshot it
//! came from and lists the SHA-256 of the artifact itself and of every file
//! inside it. `holdfast export --verify` recomputes them; so can anyone
//! with `sha256sum` and the format's own tool.

use std::path::{Path, PathBuf};

use holdfast_format::manifest::ManifestFile;
use serde::{Deserialize, Serialize};

/// The value of `format`.
pub const EXPORT_MANIFEST_FORMAT: &str = "holdfast-export/1";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExportManifest {
    pub format: String,
    /// The export format (`tar.gz`, `sql.zst`, …).
    pub export_format: String,
    /// The snapshot's full id.
    pub snapshot: String,
    /// The snapshot's paths (sources' addresses are stored redacted).
    pub paths: Vec<String>,
    pub hostname: String,
    /// When the snapshot was taken (RFC 3339).
    pub snapshot_time: String,
    /// When the export was written (RFC 3339).
    pub created: String,
    /// The artifact as written: its file name, size and SHA-256.
    pub artifact: ManifestFile,
    /// Every regular file inside the artifact, uncompressed.
    pub files: Vec<ManifestFile>,
    /// What the format could not hold, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
    /// What the export changed to fit a format's limits (a table split
    /// across spreadsheet sheets, a cell cut short), and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Where the manifest of the export at `artifact` lives.
pub fn sidecar_path(artifact: &Path) -> PathBuf {
    let mut s = artifact.as_os_str().to_owned();
    s.push(".manifest.json");
    PathBuf::from(s)
}
