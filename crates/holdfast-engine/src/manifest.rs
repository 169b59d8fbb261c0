//! The manifest of a snapshot (`holdfast_format::manifest`), read out of
//! the snapshot's root tree.

use std::io::Read;

use holdfast_format::manifest::{MANIFEST_FILE, MAX_MANIFEST, Manifest};
use holdfast_format::snapshot::Snapshot;
use holdfast_format::tree::{Node, NodeType};

use crate::blob_reader::BlobReader;
use crate::repository::Repository;
use crate::{EngineError, Result};

/// The regular file `name` at the root of a snapshot.
pub fn root_file(repo: &Repository, snapshot: &Snapshot, name: &str) -> Result<Option<Node>> {
    let root = repo.load_tree(&snapshot.tree)?;
    Ok(root
        .nodes
        .into_iter()
        .find(|n| n.name == name.as_bytes() && n.node_type == NodeType::File))
}

/// The manifest stored in a snapshot, if it has one.
pub fn load(repo: &Repository, snapshot: &Snapshot) -> Result<Option<Manifest>> {
    let Some(node) = root_file(repo, snapshot, MANIFEST_FILE)? else {
        return Ok(None);
    };
    if node.size > MAX_MANIFEST {
        return Err(EngineError::Invalid(format!(
            "manifest.json is {} bytes: not a holdfast manifest",
            node.size
        )));
    }
    let content = node.content.unwrap_or_default();
    let mut data = Vec::new();
    BlobReader::new(repo, &content)
        .read_to_end(&mut data)
        .map_err(|e| EngineError::io("reading manifest.json", e))?;
    Manifest::parse(&data)
        .map(Some)
        .map_err(|e| EngineError::Invalid(e.0))
}
