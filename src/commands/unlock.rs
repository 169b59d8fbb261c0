use std::sync::Arc;

use anyhow::Result;
use clap::Args;
use holdfast_engine::lock::remove_locks;
use holdfast_format::gotime::GoTime;

use crate::global::GlobalOpts;
use crate::ui::Ui;

#[derive(Args, Debug)]
pub struct UnlockArgs {
    /// Remove every lock, also those of live processes
    #[arg(long)]
    pub remove_all: bool,
}

pub fn run(g: &GlobalOpts, ui: &Arc<Ui>, a: &UnlockArgs) -> Result<u8> {
    let repo = g.open()?;
    let removed = remove_locks(&repo, a.remove_all)?;
    let now = GoTime::now();
    for l in &removed {
        ui.print(&format!("removed {}", l.describe(now)));
    }
    ui.json_line(&serde_json::json!({"message_type": "summary", "removed": removed.len()}));
    if removed.is_empty() {
        ui.print("no locks to remove");
    }
    Ok(crate::exit::OK)
}
