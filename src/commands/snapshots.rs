use std::sync::Arc;

use anyhow::Result;
use clap::Args;
use holdfast_engine::snapshots;
use holdfast_format::Id;
use holdfast_format::snapshot::Snapshot;
use serde_json::{Value, json};

use super::FilterArgs;
use crate::global::GlobalOpts;
use crate::ui::{Ui, fmt_local};

#[derive(Args, Debug)]
pub struct SnapshotsArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Only the newest N snapshots
    #[arg(long, value_name = "N")]
    pub latest: Option<usize>,
}

/// A snapshot as `--json` prints it: restic's fields plus `id` and `short_id`.
pub fn snapshot_json(id: &Id, s: &Snapshot) -> Value {
    let mut v = serde_json::to_value(s).unwrap_or(Value::Null);
    v["id"] = json!(id.to_hex());
    v["short_id"] = json!(id.short());
    v
}

pub fn run(g: &GlobalOpts, ui: &Arc<Ui>, a: &SnapshotsArgs) -> Result<u8> {
    let repo = g.open()?;
    let _lock = g.lock(&repo, false, ui)?;
    let f = a.filter.filter();
    let mut all: Vec<(Id, Snapshot)> =
        snapshots::load_all(&repo, &mut |e| ui.warn(&e.to_string()))?
            .into_iter()
            .filter(|(_, s)| f.matches(s))
            .collect();
    if let Some(n) = a.latest {
        let skip = all.len().saturating_sub(n);
        all.drain(..skip);
    }
    if ui.json {
        let arr: Vec<Value> = all.iter().map(|(id, s)| snapshot_json(id, s)).collect();
        println!("{}", Value::Array(arr));
        return Ok(crate::exit::OK);
    }
    let rows: Vec<[String; 5]> = all
        .iter()
        .map(|(id, s)| {
            [
                id.short(),
                fmt_local(&s.time),
                s.hostname.clone(),
                s.tags.join(","),
                s.paths.join(", "),
            ]
        })
        .collect();
    let header = ["ID", "Time", "Host", "Tags", "Paths"];
    let mut w = header.map(str::len);
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |r: &[String]| {
        format!(
            "{:<w0$}  {:<w1$}  {:<w2$}  {:<w3$}  {}",
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            w0 = w[0],
            w1 = w[1],
            w2 = w[2],
            w3 = w[3]
        )
    };
    let hdr: Vec<String> = header.iter().map(|s| s.to_string()).collect();
    ui.result(&line(&hdr));
    ui.result(&"-".repeat(w.iter().sum::<usize>() + 8));
    for r in &rows {
        ui.result(&line(r));
    }
    ui.result(&"-".repeat(w.iter().sum::<usize>() + 8));
    ui.result(&format!("{} snapshots", rows.len()));
    Ok(crate::exit::OK)
}
