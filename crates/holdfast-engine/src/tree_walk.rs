//! Depth-first traversal of a snapshot's trees.

use holdfast_format::Id;
use holdfast_format::tree::{Node, NodeType};

use crate::error::{EngineError, Result};
use crate::repository::Repository;

/// Deeper nesting than this is treated as a damaged (or hostile) snapshot.
pub const MAX_DEPTH: usize = 4096;

/// What the visitor wants after seeing a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visit {
    Continue,
    /// Do not descend into this directory.
    SkipSubtree,
}

/// Visit every node below `tree`, parents before children, in name order.
/// `path` is `/`-separated, starting with `/`, as raw bytes.
pub fn walk(
    repo: &Repository,
    tree: &Id,
    visit: &mut dyn FnMut(&[u8], &Node) -> Result<Visit>,
) -> Result<()> {
    let mut path = Vec::new();
    walk_inner(repo, tree, &mut path, 0, visit)
}

fn walk_inner(
    repo: &Repository,
    tree: &Id,
    path: &mut Vec<u8>,
    depth: usize,
    visit: &mut dyn FnMut(&[u8], &Node) -> Result<Visit>,
) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(EngineError::corrupt(
            format!("tree {tree}"),
            "directories nested deeper than 4096 levels",
        ));
    }
    let t = repo.load_tree(tree)?;
    for node in &t.nodes {
        crate::cancel::check()?;
        let len = path.len();
        path.push(b'/');
        path.extend_from_slice(&node.name);
        let action = visit(path, node)?;
        if action == Visit::Continue
            && node.node_type == NodeType::Dir
            && let Some(sub) = &node.subtree
        {
            walk_inner(repo, sub, path, depth + 1, visit)?;
        }
        path.truncate(len);
    }
    Ok(())
}

/// Find the node at `path` (`/a/b/c`) below `tree`; `/` gives `None` (the
/// root has no node of its own).
pub fn find_node(repo: &Repository, tree: &Id, path: &[u8]) -> Result<Option<Node>> {
    let mut current = *tree;
    let parts: Vec<&[u8]> = path
        .split(|&c| c == b'/')
        .filter(|p| !p.is_empty())
        .collect();
    if parts.is_empty() {
        return Ok(None);
    }
    for (i, part) in parts.iter().enumerate() {
        let t = repo.load_tree(&current)?;
        let Some(n) = t.nodes.into_iter().find(|n| n.name == *part) else {
            return Err(EngineError::Invalid(format!(
                "{} not found in the snapshot",
                String::from_utf8_lossy(path)
            )));
        };
        if i + 1 == parts.len() {
            return Ok(Some(n));
        }
        match (n.node_type, n.subtree) {
            (NodeType::Dir, Some(sub)) => current = sub,
            _ => {
                return Err(EngineError::Invalid(format!(
                    "{} is not a directory",
                    String::from_utf8_lossy(&path[..path.len()])
                )));
            }
        }
    }
    unreachable!("loop returns on the last part")
}
