use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use clap::Args;
use holdfast_engine::check::{CheckOptions, Finding, ReadData, Severity, check};
use serde_json::json;

use crate::global::GlobalOpts;
use crate::ui::{Ui, fmt_bytes, fmt_duration};

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Also read, decrypt and verify every blob of every pack
    #[arg(long)]
    pub read_data: bool,
    /// Read only part of the packs: N/M (deterministic) or P% (random)
    #[arg(long, value_name = "N/M|P%", conflicts_with = "read_data")]
    pub read_data_subset: Option<String>,
    /// Packs checked in parallel
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub threads: usize,
}

fn describe(f: &Finding) -> String {
    let mut s = String::new();
    s.push_str(match f.severity {
        Severity::Error => "error: ",
        Severity::Warning => "warning: ",
    });
    if let Some(file) = &f.file {
        s.push_str(file);
        s.push_str(": ");
    }
    if let Some(b) = &f.blob {
        s.push_str(&format!("{} {}: ", f.kind, &b[..8.min(b.len())]));
    }
    s.push_str(&f.message);
    for a in f.affects.iter().take(20) {
        s.push_str(&format!(
            "\n    affects snapshot {} path {}",
            &a.snapshot[..8],
            a.path
        ));
    }
    if f.affects.len() > 20 {
        s.push_str(&format!("\n    … and {} more", f.affects.len() - 20));
    }
    s
}

pub fn run(g: &GlobalOpts, ui: &Arc<Ui>, a: &CheckArgs) -> Result<u8> {
    let read_data = match (&a.read_data_subset, a.read_data) {
        (Some(s), _) => ReadData::parse_subset(s).map_err(anyhow::Error::msg)?,
        (None, true) => ReadData::All,
        (None, false) => ReadData::None,
    };
    let repo = g.open()?;
    let _lock = g.lock(&repo, false, ui)?;
    let started = Instant::now();
    ui.notice(&format!("checking repository {}", repo.location()));
    let ui2 = ui.clone();
    let mut sink = move |f: Finding| {
        if ui2.json {
            let mut v = serde_json::to_value(&f).unwrap_or_default();
            v["message_type"] = json!("finding");
            ui2.json_line(&v);
        } else {
            eprintln!("{}", describe(&f));
        }
    };
    let s = check(
        &repo,
        &CheckOptions {
            read_data,
            threads: a.threads,
        },
        &mut sink,
    )?;
    let took = started.elapsed();
    ui.summary_line(&s, &[("seconds", json!(took.as_secs_f64()))])?;
    ui.print(&format!(
        "checked {} snapshots, {} trees, {} packs ({} read, {}) in {}",
        s.snapshots,
        s.trees,
        s.packs,
        s.packs_read,
        fmt_bytes(s.bytes_read),
        fmt_duration(took)
    ));
    if s.errors > 0 {
        anyhow::bail!(
            "the repository is damaged: {} error(s), {} warning(s) (see above)",
            s.errors,
            s.warnings
        );
    }
    if s.warnings > 0 {
        ui.print(&format!("no errors were found ({} warning(s))", s.warnings));
    } else {
        ui.print("no errors were found");
    }
    Ok(crate::exit::OK)
}
