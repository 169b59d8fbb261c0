//! Snapshot files: the root of one backup.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::gotime::GoTime;
use crate::id::Id;

fn is_zero(v: &u32) -> bool {
    *v == 0
}

/// restic's optional per-snapshot statistics (written by restic ≥ 0.17 and
/// by holdfast; older restic versions ignore the field).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotSummary {
    pub backup_start: GoTime,
    pub backup_end: GoTime,
    pub files_new: u64,
    pub files_changed: u64,
    pub files_unmodified: u64,
    pub dirs_new: u64,
    pub dirs_changed: u64,
    pub dirs_unmodified: u64,
    pub data_blobs: u64,
    pub tree_blobs: u64,
    pub data_added: u64,
    pub data_added_packed: u64,
    pub total_files_processed: u64,
    pub total_bytes_processed: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub time: GoTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Id>,
    pub tree: Id,
    #[serde(default)]
    pub paths: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hostname: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub uid: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub gid: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excludes: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<SnapshotSummary>,
    /// Fields holdfast does not know (written by newer restic versions, or
    /// holdfast's own `holdfast` object, see docs/FORMAT.md), kept verbatim.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl Snapshot {
    pub fn new(tree: Id, paths: Vec<String>, time: GoTime) -> Snapshot {
        Snapshot {
            time,
            parent: None,
            tree,
            paths,
            hostname: String::new(),
            username: String::new(),
            uid: 0,
            gid: 0,
            excludes: Vec::new(),
            tags: Vec::new(),
            original: None,
            program_version: None,
            summary: None,
            extra: BTreeMap::new(),
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("snapshot serializes")
    }

    pub fn from_json(b: &[u8]) -> Result<Snapshot, serde_json::Error> {
        serde_json::from_slice(b)
    }

    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restic_snapshot_parses_and_keeps_unknown_fields() {
        let j = br#"{"time":"2015-01-02T18:10:50.895208559+01:00","tree":"2da81727b6585232894cfbb8f8bdab8d1eccd3d8f7c92bc934d62e62e618ffdf","paths":["/tmp/testdata"],"hostname":"kasimir","username":"fd0","uid":1000,"gid":100,"tags":["NL"],"future_field":{"x":1}}"#;
        let s = Snapshot::from_json(j).unwrap();
        assert_eq!(s.hostname, "kasimir");
        assert_eq!(s.tags, vec!["NL"]);
        assert!(s.extra.contains_key("future_field"));
        let back = Snapshot::from_json(&s.to_json()).unwrap();
        assert_eq!(back, s);
    }
}
