use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Result, bail};
use clap::Args;
use holdfast_engine::retention::{self, Policy, Within};
use holdfast_engine::snapshots;
use holdfast_format::Id;
use holdfast_format::snapshot::Snapshot;
use holdfast_storage::FileType;
use serde_json::{Value, json};

use super::FilterArgs;
use super::prune::PruneArgs;
use super::snapshots::snapshot_json;
use crate::global::GlobalOpts;
use crate::ui::{Ui, fmt_local};

#[derive(Args, Debug)]
pub struct ForgetArgs {
    /// Snapshots to remove (instead of a policy)
    #[arg(value_name = "SNAPSHOT")]
    pub snapshots: Vec<String>,
    /// Keep the last N snapshots (-1: all)
    #[arg(long, short = 'l', value_name = "N", allow_negative_numbers = true)]
    pub keep_last: Option<i64>,
    /// Keep the last N hourly snapshots
    #[arg(long, short = 'H', value_name = "N", allow_negative_numbers = true)]
    pub keep_hourly: Option<i64>,
    /// Keep the last N daily snapshots
    #[arg(long, short = 'd', value_name = "N", allow_negative_numbers = true)]
    pub keep_daily: Option<i64>,
    /// Keep the last N weekly snapshots
    #[arg(long, short = 'w', value_name = "N", allow_negative_numbers = true)]
    pub keep_weekly: Option<i64>,
    /// Keep the last N monthly snapshots
    #[arg(long, short = 'm', value_name = "N", allow_negative_numbers = true)]
    pub keep_monthly: Option<i64>,
    /// Keep the last N yearly snapshots
    #[arg(long, short = 'y', value_name = "N", allow_negative_numbers = true)]
    pub keep_yearly: Option<i64>,
    /// Keep snapshots newer than DURATION (e.g. 1y5m7d2h) before the newest
    #[arg(long, value_name = "DURATION")]
    pub keep_within: Option<String>,
    #[arg(long, value_name = "DURATION")]
    pub keep_within_hourly: Option<String>,
    #[arg(long, value_name = "DURATION")]
    pub keep_within_daily: Option<String>,
    #[arg(long, value_name = "DURATION")]
    pub keep_within_weekly: Option<String>,
    #[arg(long, value_name = "DURATION")]
    pub keep_within_monthly: Option<String>,
    #[arg(long, value_name = "DURATION")]
    pub keep_within_yearly: Option<String>,
    /// Keep snapshots with these tags (comma: all of them; repeat: any)
    #[arg(long, value_name = "TAG[,TAG…]")]
    pub keep_tag: Vec<String>,
    /// Apply the policy per group of host, paths and/or tags ("" for one group)
    #[arg(long, short = 'g', default_value = "host,paths")]
    pub group_by: String,
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Show what would be removed and why; change nothing
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Run prune afterwards when snapshots were removed
    #[arg(long)]
    pub prune: bool,
    /// (with --prune) unused data tolerated
    #[arg(long, default_value = "5%", value_name = "LIMIT")]
    pub max_unused: String,
    /// (with --prune) repack at most this much
    #[arg(long, value_name = "SIZE")]
    pub max_repack_size: Option<String>,
}

fn within(s: &Option<String>) -> Result<Within> {
    match s {
        None => Ok(Within::default()),
        Some(s) => Within::parse(s).map_err(anyhow::Error::msg),
    }
}

impl ForgetArgs {
    fn policy(&self) -> Result<Policy> {
        Ok(Policy {
            last: self.keep_last.unwrap_or(0),
            hourly: self.keep_hourly.unwrap_or(0),
            daily: self.keep_daily.unwrap_or(0),
            weekly: self.keep_weekly.unwrap_or(0),
            monthly: self.keep_monthly.unwrap_or(0),
            yearly: self.keep_yearly.unwrap_or(0),
            within: within(&self.keep_within)?,
            within_hourly: within(&self.keep_within_hourly)?,
            within_daily: within(&self.keep_within_daily)?,
            within_weekly: within(&self.keep_within_weekly)?,
            within_monthly: within(&self.keep_within_monthly)?,
            within_yearly: within(&self.keep_within_yearly)?,
            tags: self
                .keep_tag
                .iter()
                .map(|t| {
                    t.split(',')
                        .filter(|x| !x.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .collect(),
        })
    }
}

fn table(ui: &Ui, title: &str, rows: &[(&Id, &Snapshot, String)]) {
    ui.print(title);
    ui.print(&format!(
        "{:<8}  {:<19}  {:<12}  {:<12}  {:<28}  Paths",
        "ID", "Time", "Host", "Tags", "Reasons"
    ));
    for (id, s, why) in rows {
        ui.print(&format!(
            "{:<8}  {:<19}  {:<12}  {:<12}  {:<28}  {}",
            id.short(),
            fmt_local(&s.time),
            s.hostname,
            s.tags.join(","),
            why,
            s.paths.join(", ")
        ));
    }
    ui.print("");
}

pub fn run(g: &GlobalOpts, ui: &Arc<Ui>, a: &ForgetArgs) -> Result<u8> {
    let policy = a.policy()?;
    let mut by_host = false;
    let mut by_paths = false;
    let mut by_tags = false;
    for part in a.group_by.split(',').filter(|p| !p.is_empty()) {
        match part {
            "host" => by_host = true,
            "paths" => by_paths = true,
            "tags" => by_tags = true,
            other => bail!("unknown --group-by field {other:?}: use host, paths and/or tags"),
        }
    }
    let repo = g.open()?;
    let _lock = g.lock(&repo, true, ui)?;
    let mut remove: Vec<Id> = Vec::new();
    let mut groups_json: Vec<Value> = Vec::new();
    if !a.snapshots.is_empty() {
        for s in &a.snapshots {
            let (id, _) = snapshots::find(&repo, s, &Default::default())?;
            remove.push(id);
        }
    } else {
        if policy.is_empty() {
            bail!("no policy given: use --keep-last, --keep-daily, … or name snapshots to forget");
        }
        let f = a.filter.filter();
        let all: Vec<(Id, Snapshot)> =
            snapshots::load_all(&repo, &mut |e| ui.warn(&e.to_string()))?
                .into_iter()
                .filter(|(_, s)| f.matches(s))
                .collect();
        let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, (_, s)) in all.iter().enumerate() {
            groups
                .entry(retention::group_key(s, by_host, by_paths, by_tags))
                .or_default()
                .push(i);
        }
        for members in groups.values() {
            let snaps: Vec<&Snapshot> = members.iter().map(|&i| &all[i].1).collect();
            let d = retention::apply(&snaps, &policy);
            let first = snaps[0];
            let label = format!(
                "snapshots for (host [{}], paths [{}]{}):",
                if by_host { first.hostname.as_str() } else { "" },
                if by_paths {
                    first.paths.join(", ")
                } else {
                    String::new()
                },
                if by_tags {
                    format!(", tags [{}]", first.tags.join(","))
                } else {
                    String::new()
                }
            );
            let keep_rows: Vec<(&Id, &Snapshot, String)> = d
                .reasons
                .iter()
                .map(|r| {
                    let (id, s) = &all[members[r.index]];
                    (id, s, r.matches.join(", "))
                })
                .collect();
            let remove_rows: Vec<(&Id, &Snapshot, String)> = d
                .remove
                .iter()
                .map(|&i| {
                    let (id, s) = &all[members[i]];
                    (id, s, String::new())
                })
                .collect();
            ui.print(&label);
            table(
                ui,
                &format!("keep {} snapshots:", keep_rows.len()),
                &keep_rows,
            );
            if !remove_rows.is_empty() {
                table(
                    ui,
                    &format!("remove {} snapshots:", remove_rows.len()),
                    &remove_rows,
                );
            }
            groups_json.push(json!({
                "host": if by_host { json!(first.hostname) } else { Value::Null },
                "paths": if by_paths { json!(first.paths) } else { Value::Null },
                "tags": if by_tags { json!(first.tags) } else { Value::Null },
                "keep": keep_rows.iter().map(|(id, s, _)| snapshot_json(id, s)).collect::<Vec<_>>(),
                "remove": remove_rows.iter().map(|(id, s, _)| snapshot_json(id, s)).collect::<Vec<_>>(),
                "reasons": d.reasons.iter().map(|r| {
                    let (id, s) = &all[members[r.index]];
                    json!({"snapshot": snapshot_json(id, s), "matches": r.matches})
                }).collect::<Vec<_>>(),
            }));
            remove.extend(remove_rows.iter().map(|(id, _, _)| **id));
        }
    }
    if ui.json {
        println!("{}", Value::Array(groups_json));
    }
    if a.dry_run {
        ui.print(&format!("dry run: would remove {} snapshots", remove.len()));
        return Ok(crate::exit::OK);
    }
    let mut failed = 0;
    for id in &remove {
        match repo
            .backend()
            .delete(&holdfast_engine::repository::name(FileType::Snapshot, id))
        {
            Ok(()) => {}
            Err(e) => {
                failed += 1;
                ui.warn(&format!("cannot remove snapshot {}: {e}", id.short()));
            }
        }
    }
    ui.print(&format!("removed {} snapshots", remove.len() - failed));
    if a.prune && !remove.is_empty() {
        let p = PruneArgs {
            max_unused: a.max_unused.clone(),
            max_repack_size: a.max_repack_size.clone(),
            dry_run: false,
        };
        super::prune::prune(g, ui, &repo, &p)?;
    }
    Ok(if failed > 0 {
        crate::exit::PARTIAL
    } else {
        crate::exit::OK
    })
}
