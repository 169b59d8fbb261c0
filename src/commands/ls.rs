use std::sync::Arc;

use anyhow::Result;
use clap::Args;
use holdfast_engine::snapshots;
use holdfast_engine::tree_walk::{self, Visit};
use holdfast_format::tree::{Node, NodeType};
use serde_json::json;

use super::FilterArgs;
use crate::global::GlobalOpts;
use crate::ui::{Ui, fmt_local};

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Snapshot id, unique id prefix, or "latest"
    pub snapshot: String,
    /// Only list below these directories
    #[arg(value_name = "DIR")]
    pub dirs: Vec<String>,
    /// Long listing: type, mode, owner, size, time
    #[arg(long, short = 'l')]
    pub long: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
}

/// `drwxr-xr-x` for a node.
pub fn mode_string(n: &Node) -> String {
    let t = match n.node_type {
        NodeType::Dir => 'd',
        NodeType::Symlink => 'l',
        NodeType::Dev => 'b',
        NodeType::Chardev => 'c',
        NodeType::Fifo => 'p',
        NodeType::Socket => 's',
        _ => '-',
    };
    let p = n.unix_perm();
    let mut s = String::with_capacity(10);
    s.push(t);
    for (i, c) in ['r', 'w', 'x', 'r', 'w', 'x', 'r', 'w', 'x']
        .iter()
        .enumerate()
    {
        let bit = 1 << (8 - i);
        let mut ch = if p & bit != 0 { *c } else { '-' };
        if i == 2 && p & 0o4000 != 0 {
            ch = if ch == 'x' { 's' } else { 'S' };
        }
        if i == 5 && p & 0o2000 != 0 {
            ch = if ch == 'x' { 's' } else { 'S' };
        }
        if i == 8 && p & 0o1000 != 0 {
            ch = if ch == 'x' { 't' } else { 'T' };
        }
        s.push(ch);
    }
    s
}

fn under(path: &[u8], dirs: &[Vec<u8>]) -> (bool, bool) {
    // (list it, descend into it)
    if dirs.is_empty() {
        return (true, true);
    }
    let mut list = false;
    let mut descend = false;
    for d in dirs {
        if path == d.as_slice() || (path.starts_with(d) && path.get(d.len()) == Some(&b'/')) {
            list = true;
            descend = true;
        } else if d.starts_with(path) && d.get(path.len()) == Some(&b'/') {
            descend = true;
        }
    }
    (list, descend)
}

pub fn run(g: &GlobalOpts, ui: &Arc<Ui>, a: &LsArgs) -> Result<u8> {
    let repo = g.open()?;
    let _lock = g.lock(&repo, false, ui)?;
    let (id, snap) = snapshots::find(&repo, &a.snapshot, &a.filter.filter())?;
    let dirs: Vec<Vec<u8>> = a
        .dirs
        .iter()
        .map(|d| {
            let t = d.trim_end_matches('/');
            let t = if t.starts_with('/') {
                t.to_string()
            } else {
                format!("/{t}")
            };
            t.into_bytes()
        })
        .collect();
    if ui.json {
        let mut v = crate::commands::snapshots::snapshot_json(&id, &snap);
        v["struct_type"] = json!("snapshot");
        ui.json_line(&v);
    } else {
        ui.notice(&format!(
            "snapshot {} of {:?} at {}:",
            id.short(),
            snap.paths,
            fmt_local(&snap.time)
        ));
    }
    tree_walk::walk(&repo, &snap.tree, &mut |path, node| {
        let (list, descend) = under(path, &dirs);
        if list {
            let p = String::from_utf8_lossy(path);
            if ui.json {
                ui.json_line(&json!({
                    "struct_type": "node",
                    "name": node.display_name(),
                    "type": node.node_type.as_str(),
                    "path": p,
                    "uid": node.uid,
                    "gid": node.gid,
                    "size": node.size,
                    "mode": node.mode,
                    "permissions": mode_string(node),
                    "mtime": node.mtime.to_string(),
                    "atime": node.atime.to_string(),
                    "ctime": node.ctime.to_string(),
                }));
            } else if a.long {
                let link = if node.node_type == NodeType::Symlink {
                    format!(" -> {}", String::from_utf8_lossy(&node.link_target()))
                } else {
                    String::new()
                };
                ui.result(&format!(
                    "{} {:>8} {:>8} {:>12} {} {}{}",
                    mode_string(node),
                    if node.user.is_empty() {
                        node.uid.to_string()
                    } else {
                        node.user.clone()
                    },
                    if node.group.is_empty() {
                        node.gid.to_string()
                    } else {
                        node.group.clone()
                    },
                    node.size,
                    fmt_local(&node.mtime),
                    p,
                    link
                ));
            } else {
                ui.result(&p);
            }
        }
        Ok(if descend {
            Visit::Continue
        } else {
            Visit::SkipSubtree
        })
    })?;
    Ok(crate::exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        let mut n = Node::new(b"x".to_vec(), NodeType::Dir);
        n.mode = holdfast_format::tree::gomode::from_unix(0o041777);
        assert_eq!(mode_string(&n), "drwxrwxrwt");
        n.node_type = NodeType::File;
        n.mode = holdfast_format::tree::gomode::from_unix(0o104644);
        assert_eq!(mode_string(&n), "-rwSr--r--");
    }

    #[test]
    fn dir_filter() {
        let d = vec![b"/a/b".to_vec()];
        assert_eq!(under(b"/a", &d), (false, true));
        assert_eq!(under(b"/a/b", &d), (true, true));
        assert_eq!(under(b"/a/b/c", &d), (true, true));
        assert_eq!(under(b"/a/bc", &d), (false, false));
    }
}
