//! Whether each source keeps its promises: a successful backup after every
//! slot of its schedule, and a successful restore drill after every slot of
//! its drill schedule, each within one more interval of grace. The rules
//! ([`assess`]) are pure over what the catalog says and a `now`, so they are
//! tested with any clock; the API, the metrics, the overview and the
//! scheduler's overdue events all read them from here.
//!
//! A source is overdue for backups when a slot came due after its newest
//! successful backup (or its creation) and the slot after that has passed
//! too; for drills the same with its newest successful drill, once it has
//! a successful backup to drill.

use std::collections::HashMap;

use holdfast_catalog::backups::{RunSummary, SourceRuns};
use holdfast_catalog::restores::{DrillState, Restore};
use holdfast_catalog::sources::Source;
use holdfast_catalog::{CatalogError, clock};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Serialize;

use crate::AppState;
use crate::runner::SourceSettings;
use crate::schedule::Schedule;

/// A run in brief: what a source's health names of it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Brief {
    pub id: String,
    pub status: String,
    pub finished_at: Option<String>,
    /// A drill's measured restore time (restore and verification).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Brief {
    fn of_run(r: &RunSummary) -> Brief {
        Brief {
            id: r.id.clone(),
            status: r.status.clone(),
            finished_at: r.finished_at.clone(),
            duration_seconds: None,
            error: None,
        }
    }

    fn of_drill(d: &Restore) -> Brief {
        Brief {
            id: d.id.clone(),
            status: d.status.clone(),
            finished_at: d.finished_at.clone(),
            duration_seconds: d
                .verification
                .as_ref()
                .and_then(|v| v["duration_seconds"].as_f64()),
            error: d.error.clone(),
        }
    }
}

/// One source's health.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct SourceHealth {
    /// The newest backup run, whatever its status.
    pub last_backup: Option<Brief>,
    /// When the newest successful backup finished.
    pub last_success_at: Option<String>,
    pub backup_overdue: bool,
    /// The slot with no successful backup after it (when overdue).
    pub backup_missed_slot: Option<String>,
    /// The newest restore drill, whatever its status.
    pub last_drill: Option<Brief>,
    /// When the newest successful drill finished.
    pub last_drill_success_at: Option<String>,
    pub drill_overdue: bool,
    /// The drill slot with no successful drill after it (when overdue).
    pub drill_missed_slot: Option<String>,
}

/// The slot a schedule missed since `since` (a success, or the source's
/// creation), if it is overdue at `now`.
fn missed(
    schedule: Option<&Schedule>,
    since: Option<&str>,
    created_at: &str,
    now: Timestamp,
    tz: &TimeZone,
) -> Option<String> {
    let since = clock::parse(since.unwrap_or(created_at))?;
    schedule?.overdue_since(since, now, tz).map(clock::format)
}

/// The health of `src` at `now`, given its runs and drills.
pub fn assess(
    src: &Source,
    runs: Option<&SourceRuns>,
    drills: Option<&DrillState>,
    now: Timestamp,
    tz: &TimeZone,
) -> SourceHealth {
    let last_success_at = runs
        .and_then(|r| r.success.as_ref())
        .and_then(|b| b.finished_at.clone());
    let schedule = src
        .schedule
        .as_deref()
        .and_then(|s| Schedule::parse(s).ok());
    let backup_missed_slot = missed(
        schedule.as_ref(),
        last_success_at.as_deref(),
        &src.created_at,
        now,
        tz,
    );
    let drill_schedule = SourceSettings::parse(&src.options)
        .ok()
        .and_then(|s| s.drill_schedule(&src.id).ok().flatten());
    let last_drill_success_at = drills.and_then(|d| d.passed_at.clone());
    // nothing to drill before the first successful backup
    let drill_missed_slot = last_success_at.as_ref().and_then(|_| {
        missed(
            drill_schedule.as_ref(),
            last_drill_success_at.as_deref(),
            &src.created_at,
            now,
            tz,
        )
    });
    SourceHealth {
        last_backup: runs.and_then(|r| r.last.as_ref()).map(Brief::of_run),
        last_success_at,
        backup_overdue: backup_missed_slot.is_some(),
        backup_missed_slot,
        last_drill: drills.map(|d| Brief::of_drill(&d.last)),
        last_drill_success_at,
        drill_overdue: drill_missed_slot.is_some(),
        drill_missed_slot,
    }
}

/// Every source of a tenant with its health at `now` (three catalog
/// queries, whatever the number of sources).
pub async fn of_tenant(
    state: &AppState,
    tenant_id: &str,
    now: Timestamp,
) -> Result<Vec<(Source, SourceHealth)>, CatalogError> {
    let sources = state.catalog.sources(tenant_id).await?;
    let runs: HashMap<String, SourceRuns> = state
        .catalog
        .recent_runs(tenant_id, 1)
        .await?
        .into_iter()
        .map(|r| (r.source_id.clone(), r))
        .collect();
    let drills = state.catalog.drill_states(tenant_id).await?;
    let tz = state.config.time_zone();
    Ok(sources
        .into_iter()
        .map(|src| {
            let h = assess(&src, runs.get(&src.id), drills.get(&src.id), now, &tz);
            (src, h)
        })
        .collect())
}

/// A source for unit tests: `site`, a directory, made at `created_at`.
#[cfg(test)]
pub(crate) fn test_source(
    schedule: Option<&str>,
    options: serde_json::Value,
    created_at: &str,
) -> Source {
    Source {
        id: "s1".into(),
        tenant_id: "t".into(),
        name: "site".into(),
        kind: "directory".into(),
        target: "/srv".into(),
        options,
        schedule: schedule.map(str::to_string),
        retention: serde_json::json!({}),
        has_credentials: false,
        defined_by: "admin".into(),
        created_at: created_at.into(),
        updated_at: created_at.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(schedule: Option<&str>, options: serde_json::Value) -> Source {
        test_source(schedule, options, "2026-12-01T12:00:00.000Z")
    }

    fn run(status: &str, finished_at: &str) -> RunSummary {
        RunSummary {
            id: format!("b-{finished_at}"),
            status: status.into(),
            size: None,
            bytes_added: None,
            queued_at: finished_at.into(),
            started_at: Some(finished_at.into()),
            finished_at: Some(finished_at.into()),
        }
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn backups_are_overdue_one_interval_after_a_missed_slot() {
        let src = source(Some("0 3 * * *"), serde_json::json!({"drill": "off"}));
        let tz = TimeZone::UTC;
        // created at noon on the 1st: the 2nd 03:00 is the first slot, its
        // grace ends at the 3rd 03:00
        let h = assess(&src, None, None, at("2026-12-03T02:59:00Z"), &tz);
        assert!(!h.backup_overdue);
        let h = assess(&src, None, None, at("2026-12-03T03:01:00Z"), &tz);
        assert_eq!(
            (h.backup_overdue, h.backup_missed_slot.as_deref()),
            (true, Some("2026-12-02T03:00:00.000Z"))
        );
        // a failed run does not help; a success does, from its own time
        let failed = SourceRuns {
            source_id: "s1".into(),
            last: Some(run("failed", "2026-12-04T03:00:10.000Z")),
            success: Some(run("done", "2026-12-02T03:00:10.000Z")),
            chart: Vec::new(),
        };
        let h = assess(&src, Some(&failed), None, at("2026-12-04T03:05:00Z"), &tz);
        assert_eq!(
            h.backup_missed_slot.as_deref(),
            Some("2026-12-03T03:00:00.000Z")
        );
        assert_eq!(h.last_backup.as_ref().unwrap().status, "failed");
        assert_eq!(
            h.last_success_at.as_deref(),
            Some("2026-12-02T03:00:10.000Z")
        );
        let h = assess(&src, Some(&failed), None, at("2026-12-04T02:59:00Z"), &tz);
        assert!(!h.backup_overdue);
        // on demand only: never overdue
        let manual = source(None, serde_json::json!({"drill": "off"}));
        assert!(!assess(&manual, None, None, at("2030-01-01T00:00:00Z"), &tz).backup_overdue);
    }

    #[test]
    fn drills_are_overdue_on_their_own_schedule_once_there_is_a_backup() {
        let src = source(None, serde_json::json!({"drill": "0 4 * * *"}));
        let tz = TimeZone::UTC;
        let now = at("2026-12-10T00:00:00Z");
        // nothing backed up: nothing to drill, not overdue
        assert!(!assess(&src, None, None, now, &tz).drill_overdue);
        let runs = SourceRuns {
            source_id: "s1".into(),
            last: Some(run("done", "2026-12-01T13:00:00.000Z")),
            success: Some(run("done", "2026-12-01T13:00:00.000Z")),
            chart: Vec::new(),
        };
        let h = assess(&src, Some(&runs), None, now, &tz);
        assert_eq!(
            (h.drill_overdue, h.drill_missed_slot.as_deref()),
            (true, Some("2026-12-02T04:00:00.000Z"))
        );
        // drills off: never overdue
        let off = source(None, serde_json::json!({"drill": "off"}));
        assert!(!assess(&off, Some(&runs), None, now, &tz).drill_overdue);
    }
}
