use std::sync::Arc;

use anyhow::Result;
use clap::Args;
use holdfast_engine::repository::Repository;
use holdfast_engine::snapshots;
use holdfast_format::Id;
use holdfast_format::tree::{Node, NodeType};
use serde_json::json;

use crate::global::GlobalOpts;
use crate::ui::Ui;

#[derive(Args, Debug)]
pub struct DiffArgs {
    pub first: String,
    pub second: String,
    /// Also list entries whose metadata (not content) changed
    #[arg(long)]
    pub metadata: bool,
}

#[derive(Default)]
struct Stats {
    added: u64,
    removed: u64,
    changed: u64,
    metadata: u64,
    type_changed: u64,
}

struct Differ<'a> {
    repo: &'a Repository,
    ui: &'a Ui,
    metadata: bool,
    stats: Stats,
}

fn same_meta(a: &Node, b: &Node) -> bool {
    a.mode == b.mode
        && a.uid == b.uid
        && a.gid == b.gid
        && a.mtime == b.mtime
        && a.extended_attributes == b.extended_attributes
        && a.link_target() == b.link_target()
}

impl Differ<'_> {
    fn report(&mut self, mark: char, path: &[u8], node: &Node) {
        let mut p = String::from_utf8_lossy(path).into_owned();
        if node.node_type == NodeType::Dir {
            p.push('/');
        }
        match mark {
            '+' => self.stats.added += 1,
            '-' => self.stats.removed += 1,
            'M' => self.stats.changed += 1,
            'U' => self.stats.metadata += 1,
            'T' => self.stats.type_changed += 1,
            _ => {}
        }
        if mark == 'U' && !self.metadata {
            return;
        }
        let modifier = match mark {
            '+' => "+",
            '-' => "-",
            'M' => "M",
            'U' => "U",
            _ => "T",
        };
        self.ui
            .json_line(&json!({"message_type": "change", "path": p, "modifier": modifier}));
        self.ui.result(&format!("{mark}    {p}"));
    }

    fn all(&mut self, mark: char, path: &mut Vec<u8>, node: &Node) -> Result<()> {
        self.report(mark, path, node);
        if let (NodeType::Dir, Some(sub)) = (node.node_type, node.subtree) {
            let t = self.repo.load_tree(&sub)?;
            for n in &t.nodes {
                let len = path.len();
                path.push(b'/');
                path.extend_from_slice(&n.name);
                self.all(mark, path, n)?;
                path.truncate(len);
            }
        }
        Ok(())
    }

    fn diff(&mut self, a: Option<Id>, b: Option<Id>, path: &mut Vec<u8>) -> Result<()> {
        if a == b {
            return Ok(());
        }
        let ta = match a {
            Some(id) => self.repo.load_tree(&id)?.nodes,
            None => Vec::new(),
        };
        let tb = match b {
            Some(id) => self.repo.load_tree(&id)?.nodes,
            None => Vec::new(),
        };
        let (mut i, mut j) = (0, 0);
        while i < ta.len() || j < tb.len() {
            let ord = match (ta.get(i), tb.get(j)) {
                (Some(x), Some(y)) => x.name.cmp(&y.name),
                (Some(_), None) => std::cmp::Ordering::Less,
                _ => std::cmp::Ordering::Greater,
            };
            let len = path.len();
            path.push(b'/');
            match ord {
                std::cmp::Ordering::Less => {
                    path.extend_from_slice(&ta[i].name);
                    self.all('-', path, &ta[i])?;
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    path.extend_from_slice(&tb[j].name);
                    self.all('+', path, &tb[j])?;
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    let (x, y) = (&ta[i], &tb[j]);
                    path.extend_from_slice(&x.name);
                    if x.node_type != y.node_type {
                        self.report('T', path, y);
                    } else if x.node_type == NodeType::Dir {
                        if !same_meta(x, y) {
                            self.report('U', path, y);
                        }
                        self.diff(x.subtree, y.subtree, path)?;
                    } else if x.content != y.content || x.size != y.size {
                        self.report('M', path, y);
                    } else if !same_meta(x, y) {
                        self.report('U', path, y);
                    }
                    i += 1;
                    j += 1;
                }
            }
            path.truncate(len);
        }
        Ok(())
    }
}

pub fn run(g: &GlobalOpts, ui: &Arc<Ui>, a: &DiffArgs) -> Result<u8> {
    let repo = g.open()?;
    let _lock = g.lock(&repo, false, ui)?;
    let f = Default::default();
    let (id1, s1) = snapshots::find(&repo, &a.first, &f)?;
    let (id2, s2) = snapshots::find(&repo, &a.second, &f)?;
    ui.notice(&format!(
        "comparing snapshot {} to {}:",
        id1.short(),
        id2.short()
    ));
    let mut d = Differ {
        repo: &repo,
        ui,
        metadata: a.metadata,
        stats: Stats::default(),
    };
    let mut path = Vec::new();
    d.diff(Some(s1.tree), Some(s2.tree), &mut path)?;
    let s = d.stats;
    ui.json_line(&json!({
        "message_type": "statistics",
        "source_snapshot": id1.to_hex(),
        "target_snapshot": id2.to_hex(),
        "added": s.added, "removed": s.removed, "changed": s.changed,
        "metadata_changed": s.metadata, "type_changed": s.type_changed,
    }));
    ui.print(&format!(
        "\n{} added, {} removed, {} changed, {} type changed, {} metadata only",
        s.added, s.removed, s.changed, s.type_changed, s.metadata
    ));
    Ok(crate::exit::OK)
}
