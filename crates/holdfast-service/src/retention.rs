//! Which of a source's backups retention deletes, as pure logic. A backup
//! is kept when it is younger than `max_age_days` (measured from now) or
//! when restic's `--keep-last/-daily/-weekly/-monthly/-yearly` rules keep
//! it (the engine's implementation of those rules, on the backups' start
//! times); everything else goes.

use holdfast_engine::retention::{Policy, apply};
use holdfast_format::snapshot::Snapshot;
use jiff::Timestamp;
use serde::Deserialize;

/// A source's `retention`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Retention {
    pub max_age_days: Option<u32>,
    pub keep_last: i64,
    pub keep_daily: i64,
    pub keep_weekly: i64,
    pub keep_monthly: i64,
    pub keep_yearly: i64,
}

/// The ids of `backups` (id, start time) to delete at `now`.
pub fn expired(
    backups: &[(String, Timestamp)],
    r: &Retention,
    default_days: u32,
    now: Timestamp,
) -> Vec<String> {
    let days = r.max_age_days.unwrap_or(default_days) as i64;
    let cutoff = now
        .checked_sub(jiff::SignedDuration::from_hours(24 * days))
        .unwrap_or(Timestamp::MIN);
    let policy = Policy {
        last: r.keep_last,
        daily: r.keep_daily,
        weekly: r.keep_weekly,
        monthly: r.keep_monthly,
        yearly: r.keep_yearly,
        ..Default::default()
    };
    let kept_by_rules: Vec<bool> = if policy.is_empty() {
        vec![false; backups.len()]
    } else {
        let snaps: Vec<Snapshot> = backups.iter().map(|(_, t)| snapshot_at(*t)).collect();
        let refs: Vec<&Snapshot> = snaps.iter().collect();
        let d = apply(&refs, &policy);
        let mut keep = vec![false; backups.len()];
        for i in d.keep {
            keep[i] = true;
        }
        keep
    };
    backups
        .iter()
        .zip(kept_by_rules)
        .filter(|((_, t), kept)| !kept && *t < cutoff)
        .map(|((id, _), _)| id.clone())
        .collect()
}

/// A stand-in snapshot carrying only a time, for the engine's rules.
fn snapshot_at(t: Timestamp) -> Snapshot {
    serde_json::from_value(serde_json::json!({
        "time": t.to_string(),
        "tree": "0000000000000000000000000000000000000000000000000000000000000000",
    }))
    .expect("a minimal snapshot document")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn daily(n: i64, now: Timestamp) -> Vec<(String, Timestamp)> {
        (0..n)
            .map(|d| {
                (
                    format!("b{d}"),
                    now.checked_sub(jiff::SignedDuration::from_hours(24 * d + 1))
                        .unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn age_alone_and_age_with_keep_rules() {
        let now: Timestamp = "2026-12-04T05:00:00Z".parse().unwrap();
        let backups = daily(40, now);
        // 30 days: b0..b29 are younger than 30 × 24 h; b30..b39 go
        let gone = expired(&backups, &Retention::default(), 30, now);
        assert_eq!(gone, (30..40).map(|d| format!("b{d}")).collect::<Vec<_>>());
        let r = Retention {
            max_age_days: Some(7),
            ..Default::default()
        };
        assert_eq!(expired(&backups, &r, 30, now).len(), 33);
        // keep the last 10 whatever their age, with max_age 7
        let r = Retention {
            max_age_days: Some(7),
            keep_last: 10,
            ..Default::default()
        };
        let gone = expired(&backups, &r, 30, now);
        assert_eq!(gone.first().map(String::as_str), Some("b10"));
        assert_eq!(gone.len(), 30);
        // weekly for 4 weeks keeps one per ISO week among the old ones
        let r = Retention {
            max_age_days: Some(1),
            keep_weekly: 4,
            ..Default::default()
        };
        let gone = expired(&backups, &r, 30, now);
        assert_eq!(gone.len(), 40 - 4);
    }
}
