use std::collections::HashSet;
use std::sync::Arc;

use anyhow::{Result, bail};
use clap::Args;
use holdfast_engine::snapshots;
use holdfast_engine::tree_walk::{self, Visit};
use holdfast_format::tree::NodeType;
use holdfast_format::{BlobType, Id};
use holdfast_storage::FileType;
use serde_json::json;

use super::FilterArgs;
use crate::global::GlobalOpts;
use crate::ui::{Ui, fmt_bytes};

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Snapshots to count (default: all that match the filters)
    pub snapshots: Vec<String>,
    /// restore-size (files and bytes a restore writes) or raw-data (unique
    /// blobs referenced, before and after compression)
    #[arg(long, default_value = "restore-size")]
    pub mode: String,
    #[command(flatten)]
    pub filter: FilterArgs,
}

pub fn run(g: &GlobalOpts, ui: &Arc<Ui>, a: &StatsArgs) -> Result<u8> {
    if a.mode != "restore-size" && a.mode != "raw-data" {
        bail!("unknown --mode {:?}: use restore-size or raw-data", a.mode);
    }
    let repo = g.open()?;
    let _lock = g.lock(&repo, false, ui)?;
    let f = a.filter.filter();
    let snaps = if a.snapshots.is_empty() {
        snapshots::load_all(&repo, &mut |e| ui.warn(&e.to_string()))?
            .into_iter()
            .filter(|(_, s)| f.matches(s))
            .collect::<Vec<_>>()
    } else {
        a.snapshots
            .iter()
            .map(|s| snapshots::find(&repo, s, &f))
            .collect::<Result<Vec<_>, _>>()?
    };
    let idx = repo.load_index()?;
    let mut files = 0u64;
    let mut size = 0u64;
    let mut blobs: HashSet<(Id, BlobType)> = HashSet::new();
    let mut seen_trees: HashSet<Id> = HashSet::new();
    for (_, s) in &snaps {
        if a.mode == "raw-data" {
            blobs.insert((s.tree, BlobType::Tree));
        }
        tree_walk::walk(&repo, &s.tree, &mut |_, n| {
            match n.node_type {
                NodeType::File => {
                    files += 1;
                    size += n.size;
                    if a.mode == "raw-data" {
                        for id in n.content.as_deref().unwrap_or(&[]) {
                            blobs.insert((*id, BlobType::Data));
                        }
                    }
                }
                NodeType::Dir if a.mode == "raw-data" => {
                    if let Some(sub) = n.subtree {
                        blobs.insert((sub, BlobType::Tree));
                        if !seen_trees.insert(sub) {
                            return Ok(Visit::SkipSubtree);
                        }
                    }
                }
                _ => {}
            }
            Ok(Visit::Continue)
        })?;
    }
    let packs = repo.backend().list(FileType::Pack)?;
    let repo_size: u64 = packs.iter().map(|p| p.size).sum();
    let mut v = json!({
        "snapshots_count": snaps.len(),
        "repository_packs": packs.len(),
        "repository_pack_bytes": repo_size,
    });
    if a.mode == "restore-size" {
        v["total_file_count"] = json!(files);
        v["total_size"] = json!(size);
        ui.result(&format!(
            "Stats in restore-size mode:\n     Snapshots processed:  {}\n        Total File Count:  {}\n              Total Size:  {}",
            snaps.len(),
            files,
            fmt_bytes(size)
        ));
    } else {
        let mut plain = 0u64;
        let mut packed = 0u64;
        for (id, t) in &blobs {
            if let Some(loc) = idx.lookup(id, *t) {
                plain += loc.plain_len() as u64;
                packed += loc.length as u64;
            }
        }
        v["total_blob_count"] = json!(blobs.len());
        v["total_uncompressed_size"] = json!(plain);
        v["total_size"] = json!(packed);
        v["compression_ratio"] = json!(if packed > 0 {
            plain as f64 / packed as f64
        } else {
            0.0
        });
        ui.result(&format!(
            "Stats in raw-data mode:\n     Snapshots processed:  {}\n        Total Blob Count:  {}\n Total Uncompressed Size:  {}\n              Total Size:  {}\n       Compression Ratio:  {:.2}x",
            snaps.len(),
            blobs.len(),
            fmt_bytes(plain),
            fmt_bytes(packed),
            if packed > 0 { plain as f64 / packed as f64 } else { 0.0 }
        ));
    }
    ui.result(&format!(
        "      Repository packs:  {} ({})",
        packs.len(),
        fmt_bytes(repo_size)
    ));
    ui.json_line(&v);
    Ok(crate::exit::OK)
}
