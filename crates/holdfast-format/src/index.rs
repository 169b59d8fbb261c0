//! Index files: which blobs live in which pack, at which offset.

use serde::{Deserialize, Serialize};

use crate::blob::BlobType;
use crate::id::Id;
use crate::pack::PackedBlob;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexBlob {
    pub id: Id,
    #[serde(rename = "type")]
    pub blob_type: BlobType,
    pub offset: u32,
    pub length: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uncompressed_length: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexPack {
    pub id: Id,
    pub blobs: Vec<IndexBlob>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexFile {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub supersedes: Vec<Id>,
    #[serde(default)]
    pub packs: Vec<IndexPack>,
}

impl IndexFile {
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("index serializes")
    }

    /// Parse an index file; the legacy format (a bare array of packs) is
    /// accepted too.
    pub fn from_json(b: &[u8]) -> Result<IndexFile, serde_json::Error> {
        if b.first() == Some(&b'[') {
            let packs: Vec<IndexPack> = serde_json::from_slice(b)?;
            return Ok(IndexFile {
                supersedes: Vec::new(),
                packs,
            });
        }
        serde_json::from_slice(b)
    }

    pub fn blob_count(&self) -> usize {
        self.packs.iter().map(|p| p.blobs.len()).sum()
    }
}

impl IndexPack {
    pub fn from_packed(id: Id, blobs: &[PackedBlob]) -> IndexPack {
        IndexPack {
            id,
            blobs: blobs
                .iter()
                .map(|b| IndexBlob {
                    id: b.id,
                    blob_type: b.blob_type,
                    offset: b.offset,
                    length: b.length,
                    uncompressed_length: b.uncompressed_length,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_design_doc_example_and_legacy() {
        let j = br#"{"supersedes":["ed54ae36197f4745ebc4b54d10e0f623eaaaedd03013eb7ae90df881b7781452"],"packs":[{"id":"73d04e6125cf3c28a299cc2f3cca3b78ceac396e4fcf9575e34536b26782413c","blobs":[{"id":"3ec79977ef0cf5de7b08cd12b874cd0f62bbaf7f07f3497a5b1bbcc8cb39b1ce","type":"data","offset":0,"length":38},{"id":"9ccb846e60d90d4eb915848add7aa7ea1e4bbabfc60e573db9f7bfb2789afbae","type":"tree","offset":38,"length":112,"uncompressed_length":511}]}]}"#;
        let idx = IndexFile::from_json(j).unwrap();
        assert_eq!(idx.blob_count(), 2);
        assert_eq!(idx.packs[0].blobs[1].uncompressed_length, Some(511));
        assert_eq!(IndexFile::from_json(&idx.to_json()).unwrap(), idx);
        let legacy = br#"[{"id":"73d04e6125cf3c28a299cc2f3cca3b78ceac396e4fcf9575e34536b26782413c","blobs":[]}]"#;
        assert_eq!(IndexFile::from_json(legacy).unwrap().packs.len(), 1);
    }
}
