use std::sync::Arc;

use anyhow::Result;
use clap::Args;
use holdfast_engine::blob_saver::SaverOptions;
use holdfast_engine::prune::{MaxUnused, PruneOptions, execute, parse_size, plan};
use holdfast_engine::repository::Repository;
use serde_json::json;

use crate::global::GlobalOpts;
use crate::ui::{Ui, fmt_bytes};

#[derive(Args, Debug, Clone)]
pub struct PruneArgs {
    /// Unused data tolerated in kept packs: a percentage, a size (e.g. 1G) or "unlimited"
    #[arg(long, default_value = "5%", value_name = "LIMIT")]
    pub max_unused: String,
    /// Repack at most this much (e.g. 2G)
    #[arg(long, value_name = "SIZE")]
    pub max_repack_size: Option<String>,
    /// Show what would be deleted and repacked; change nothing
    #[arg(long, short = 'n')]
    pub dry_run: bool,
}

/// Plan and (unless dry run) execute a prune on an exclusively locked repository.
pub fn prune(g: &GlobalOpts, ui: &Arc<Ui>, repo: &Arc<Repository>, a: &PruneArgs) -> Result<()> {
    let opts = PruneOptions {
        max_unused: MaxUnused::parse(&a.max_unused).map_err(anyhow::Error::msg)?,
        max_repack_bytes: a
            .max_repack_size
            .as_deref()
            .map(parse_size)
            .transpose()
            .map_err(anyhow::Error::msg)?,
        dry_run: a.dry_run,
        saver: SaverOptions {
            compression: g.compression()?,
            pack_size: g.pack_size()?,
            ..Default::default()
        },
        threads: 4,
    };
    ui.notice("loading the index and finding the data the snapshots use");
    let p = plan(repo, &opts)?;
    let mut v = serde_json::to_value(&p)?;
    v["message_type"] = json!("prune_plan");
    v["bytes_freed"] = json!(p.bytes_freed());
    ui.json_line(&v);
    ui.print(&format!(
        "used:        {} blobs, {}\n\
         unused:      {} blobs, {}\n\
         to delete:   {} packs, {}\n\
         to repack:   {} packs, {} ({} of it unused)\n\
         unreferenced packs to delete: {}, {}\n\
         keep:        {} packs; unused data left afterwards: {}\n\
         frees:       {} of {}",
        p.blobs_used,
        fmt_bytes(p.bytes_used),
        p.blobs_unused,
        fmt_bytes(p.bytes_unused),
        p.packs_delete.len(),
        fmt_bytes(p.bytes_delete),
        p.packs_repack.len(),
        fmt_bytes(p.bytes_repack),
        fmt_bytes(p.bytes_repack_unused),
        p.packs_unindexed.len(),
        fmt_bytes(p.bytes_unindexed),
        p.packs_keep,
        fmt_bytes(p.bytes_unused_after),
        fmt_bytes(p.bytes_freed()),
        fmt_bytes(p.bytes_total),
    ));
    if a.dry_run {
        if ui.verbose > 0 {
            for id in &p.packs_delete {
                ui.print(&format!("would delete pack {id}"));
            }
            for id in &p.packs_repack {
                ui.print(&format!("would repack pack {id}"));
            }
            for id in &p.packs_unindexed {
                ui.print(&format!("would delete unreferenced pack {id}"));
            }
        }
        ui.print("dry run: nothing changed");
        return Ok(());
    }
    let r = execute(repo, &p, &opts, &mut |m| ui.warn(&m))?;
    if p.is_noop() {
        ui.print("nothing to prune");
        return Ok(());
    }
    ui.summary_line(&r, &[])?;
    ui.print(&format!(
        "wrote {} packs and {} index files; deleted {} index files and {} packs; freed {}",
        r.packs_written,
        r.index_files_written,
        r.index_files_deleted,
        r.packs_deleted,
        fmt_bytes(r.bytes_freed)
    ));
    if r.retained > 0 {
        ui.print(&format!(
            "{} file(s) retained by the storage's object lock stay until the lock expires",
            r.retained
        ));
    }
    Ok(())
}

pub fn run(g: &GlobalOpts, ui: &Arc<Ui>, a: &PruneArgs) -> Result<u8> {
    let repo = g.open()?;
    let _lock = g.lock(&repo, true, ui)?;
    prune(g, ui, &repo, a)?;
    Ok(crate::exit::OK)
}
