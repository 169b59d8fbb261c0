use std::io::Write;
use std::sync::Arc;

use anyhow::{Result, bail};
use clap::Args;
use holdfast_engine::blob_reader::BlobReader;
use holdfast_engine::snapshots;
use holdfast_engine::tree_walk;
use holdfast_export::tar_export::write_tar;
use holdfast_format::tree::NodeType;

use super::FilterArgs;
use crate::global::GlobalOpts;
use crate::ui::Ui;

#[derive(Args, Debug)]
pub struct DumpArgs {
    /// Snapshot id, unique id prefix, or "latest"
    pub snapshot: String,
    /// Path inside the snapshot: a file is written as is, a directory as tar
    pub path: String,
    #[command(flatten)]
    pub filter: FilterArgs,
}

pub fn run(g: &GlobalOpts, ui: &Arc<Ui>, a: &DumpArgs) -> Result<u8> {
    let repo = g.open()?;
    let _lock = g.lock(&repo, false, ui)?;
    let (_, snap) = snapshots::find(&repo, &a.snapshot, &a.filter.filter())?;
    let path = a.path.trim_end_matches('/');
    let stdout = std::io::stdout();
    let out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    let node = tree_walk::find_node(&repo, &snap.tree, path.as_bytes())?;
    let mut out = match node {
        None => write_tar(&repo, &snap.tree, b"/", None, out, &mut Vec::new())?,
        Some(n) => match (n.node_type, n.subtree) {
            (NodeType::Dir, Some(sub)) => {
                write_tar(&repo, &sub, path.as_bytes(), Some(&n), out, &mut Vec::new())?
            }
            (NodeType::File, _) => {
                let content = n.content.clone().unwrap_or_default();
                let mut r = BlobReader::new(&repo, &content);
                let mut out = out;
                std::io::copy(&mut r, &mut out)?;
                out
            }
            (t, _) => bail!("{path} is a {}, not a file or directory", t.as_str()),
        },
    };
    out.flush()?;
    Ok(crate::exit::OK)
}
