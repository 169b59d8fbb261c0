//! Which snapshots a retention policy keeps: restic's `forget` semantics.
//!
//! Snapshots are considered newest first. Each `keep-*` count is a bucket
//! that keeps the newest snapshot of every new period (hour, day, ISO week,
//! month, year) until its count is used up; `keep-last` keeps the newest
//! N. `keep-within` keeps everything newer than the newest snapshot minus a
//! duration; the `keep-within-*` family keeps one snapshot per period
//! within such a duration. `keep-tag` keeps snapshots with a tag set
//! regardless of counts. Periods are computed in the time zone each
//! snapshot was written in, as restic does. As in restic ≥ 0.16, a bucket
//! with counts left also keeps the oldest snapshot (reason "oldest …"), and
//! a count of -1 means "every period".

use holdfast_format::gotime::{GoTime, civil_from_days, days_from_civil};
use holdfast_format::snapshot::Snapshot;
use serde::Serialize;

/// restic's duration: years, months, days, hours (`1y5m7d2h`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Within {
    pub years: i64,
    pub months: i64,
    pub days: i64,
    pub hours: i64,
}

impl Within {
    pub fn is_zero(&self) -> bool {
        *self == Within::default()
    }

    /// Parse `1y5m7d2h` (any subset, in any order).
    pub fn parse(s: &str) -> Result<Within, String> {
        let mut w = Within::default();
        let mut num = String::new();
        if s.is_empty() {
            return Err("empty duration".into());
        }
        for c in s.chars() {
            if c.is_ascii_digit() {
                num.push(c);
                continue;
            }
            let n: i64 = num
                .parse()
                .map_err(|_| format!("invalid duration {s:?}: expected e.g. 1y5m7d2h"))?;
            num.clear();
            match c {
                'y' => w.years += n,
                'm' => w.months += n,
                'd' => w.days += n,
                'h' => w.hours += n,
                _ => {
                    return Err(format!(
                        "invalid unit {c:?} in duration {s:?} (use y, m, d, h)"
                    ));
                }
            }
        }
        if !num.is_empty() {
            return Err(format!(
                "invalid duration {s:?}: a number needs a unit (y, m, d, h)"
            ));
        }
        Ok(w)
    }

    /// `t` minus this duration, with Go's `AddDate` normalisation, in `t`'s
    /// own UTC offset.
    pub fn before(&self, t: GoTime) -> GoTime {
        let local = t.secs + t.offset as i64;
        let days = local.div_euclid(86400);
        let sod = local.rem_euclid(86400);
        let (y, m, d) = civil_from_days(days);
        let total_months = y * 12 + (m as i64 - 1) - self.years * 12 - self.months;
        let ny = total_months.div_euclid(12);
        let nm = total_months.rem_euclid(12) as u32 + 1;
        // Go normalises an out-of-range day (Mar 31 - 1 month = Mar 3).
        let nd = days_from_civil(ny, nm, 1) + d as i64 - 1 - self.days;
        let secs = nd * 86400 + sod - t.offset as i64 - self.hours * 3600;
        GoTime {
            secs,
            nanos: t.nanos,
            offset: t.offset,
        }
    }
}

impl std::fmt::Display for Within {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = String::new();
        for (v, u) in [
            (self.years, 'y'),
            (self.months, 'm'),
            (self.days, 'd'),
            (self.hours, 'h'),
        ] {
            if v != 0 {
                s.push_str(&format!("{v}{u}"));
            }
        }
        f.write_str(&s)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Policy {
    pub last: i64,
    pub hourly: i64,
    pub daily: i64,
    pub weekly: i64,
    pub monthly: i64,
    pub yearly: i64,
    pub within: Within,
    pub within_hourly: Within,
    pub within_daily: Within,
    pub within_weekly: Within,
    pub within_monthly: Within,
    pub within_yearly: Within,
    /// Each entry is a set of tags that must all be present.
    pub tags: Vec<Vec<String>>,
}

impl Policy {
    pub fn is_empty(&self) -> bool {
        *self == Policy::default()
    }
}

/// Why a snapshot is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeepReason {
    pub index: usize,
    pub matches: Vec<String>,
}

/// The outcome for one group: indices into the input, newest first.
#[derive(Debug, Clone, Default)]
pub struct Decision {
    pub keep: Vec<usize>,
    pub remove: Vec<usize>,
    pub reasons: Vec<KeepReason>,
}

fn civil(t: &GoTime) -> (i64, u32, u32, u32) {
    let (y, m, d, h, _, _) = t.civil();
    (y, m, d, h)
}

/// ISO 8601 week-numbering year and week of a date.
pub fn iso_week(y: i64, m: u32, d: u32) -> (i64, u32) {
    let days = days_from_civil(y, m, d);
    // 1970-01-01 was a Thursday; Monday = 0.
    let weekday = (days + 3).rem_euclid(7);
    let thursday = days - weekday + 3;
    let (ty, _, _) = civil_from_days(thursday);
    let week = ((thursday - days_from_civil(ty, 1, 1)) / 7 + 1) as u32;
    (ty, week)
}

type Bucker = fn(&GoTime, usize) -> i64;

fn by_nr(_: &GoTime, nr: usize) -> i64 {
    nr as i64
}
fn by_hour(t: &GoTime, _: usize) -> i64 {
    let (y, m, d, h) = civil(t);
    y * 1_000_000 + m as i64 * 10_000 + d as i64 * 100 + h as i64
}
fn by_day(t: &GoTime, _: usize) -> i64 {
    let (y, m, d, _) = civil(t);
    y * 10_000 + m as i64 * 100 + d as i64
}
fn by_week(t: &GoTime, _: usize) -> i64 {
    let (y, m, d, _) = civil(t);
    let (wy, w) = iso_week(y, m, d);
    wy * 100 + w as i64
}
fn by_month(t: &GoTime, _: usize) -> i64 {
    let (y, m, _, _) = civil(t);
    y * 100 + m as i64
}
fn by_year(t: &GoTime, _: usize) -> i64 {
    civil(t).0
}

/// Apply `p` to one group of snapshots. Returns indices into `snaps`,
/// ordered newest first.
pub fn apply(snaps: &[&Snapshot], p: &Policy) -> Decision {
    let mut order: Vec<usize> = (0..snaps.len()).collect();
    order.sort_by(|&a, &b| snaps[b].time.cmp(&snaps[a].time));
    let mut out = Decision::default();
    if snaps.is_empty() {
        return out;
    }
    if p.is_empty() {
        for &i in &order {
            out.keep.push(i);
            out.reasons.push(KeepReason {
                index: i,
                matches: vec!["policy is empty".into()],
            });
        }
        return out;
    }
    struct Bucket {
        count: i64,
        bucker: Bucker,
        last: Option<i64>,
        reason: &'static str,
    }
    let mut buckets = [
        Bucket {
            count: p.last,
            bucker: by_nr,
            last: None,
            reason: "last snapshot",
        },
        Bucket {
            count: p.hourly,
            bucker: by_hour,
            last: None,
            reason: "hourly snapshot",
        },
        Bucket {
            count: p.daily,
            bucker: by_day,
            last: None,
            reason: "daily snapshot",
        },
        Bucket {
            count: p.weekly,
            bucker: by_week,
            last: None,
            reason: "weekly snapshot",
        },
        Bucket {
            count: p.monthly,
            bucker: by_month,
            last: None,
            reason: "monthly snapshot",
        },
        Bucket {
            count: p.yearly,
            bucker: by_year,
            last: None,
            reason: "yearly snapshot",
        },
    ];
    struct WithinBucket {
        within: Within,
        bucker: Bucker,
        last: Option<i64>,
        reason: &'static str,
    }
    let mut within_buckets = [
        WithinBucket {
            within: p.within_hourly,
            bucker: by_hour,
            last: None,
            reason: "hourly within",
        },
        WithinBucket {
            within: p.within_daily,
            bucker: by_day,
            last: None,
            reason: "daily within",
        },
        WithinBucket {
            within: p.within_weekly,
            bucker: by_week,
            last: None,
            reason: "weekly within",
        },
        WithinBucket {
            within: p.within_monthly,
            bucker: by_month,
            last: None,
            reason: "monthly within",
        },
        WithinBucket {
            within: p.within_yearly,
            bucker: by_year,
            last: None,
            reason: "yearly within",
        },
    ];
    let latest = snaps[order[0]].time;
    let n = order.len();
    for (nr, &i) in order.iter().enumerate() {
        let cur = snaps[i];
        let mut keep = false;
        let mut reasons = Vec::new();
        for set in &p.tags {
            if !set.is_empty() && set.iter().all(|t| cur.has_tag(t)) {
                keep = true;
                reasons.push(format!("has tags [{}]", set.join(" ")));
            }
        }
        if !p.within.is_zero() && cur.time > p.within.before(latest) {
            keep = true;
            reasons.push(format!("within {}", p.within));
        }
        let oldest = nr == n - 1;
        for b in buckets.iter_mut() {
            if b.count > 0 || b.count == -1 {
                let val = (b.bucker)(&cur.time, nr);
                if b.last != Some(val) || oldest {
                    keep = true;
                    let reason = if b.last == Some(val) {
                        format!("oldest {}", b.reason)
                    } else {
                        b.reason.to_string()
                    };
                    b.last = Some(val);
                    if b.count > 0 {
                        b.count -= 1;
                    }
                    reasons.push(reason);
                }
            }
        }
        for b in within_buckets.iter_mut() {
            if !b.within.is_zero() && cur.time > b.within.before(latest) {
                let val = (b.bucker)(&cur.time, nr);
                if b.last != Some(val) || oldest {
                    keep = true;
                    let reason = if b.last == Some(val) {
                        format!("oldest {} {}", b.reason, b.within)
                    } else {
                        format!("{} {}", b.reason, b.within)
                    };
                    b.last = Some(val);
                    reasons.push(reason);
                }
            }
        }
        if keep {
            out.keep.push(i);
            out.reasons.push(KeepReason {
                index: i,
                matches: reasons,
            });
        } else {
            out.remove.push(i);
        }
    }
    out
}

/// The key a snapshot is grouped under (`--group-by host,paths,tags`).
pub fn group_key(s: &Snapshot, by_host: bool, by_paths: bool, by_tags: bool) -> String {
    let mut k = String::new();
    if by_host {
        k.push_str(&s.hostname);
    }
    k.push('\0');
    if by_paths {
        let mut p = s.paths.clone();
        p.sort();
        k.push_str(&p.join("\u{1}"));
    }
    k.push('\0');
    if by_tags {
        let mut t = s.tags.clone();
        t.sort();
        k.push_str(&t.join("\u{1}"));
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;
    use holdfast_format::Id;

    fn snap(t: &str) -> Snapshot {
        Snapshot::new(Id::default(), vec!["/x".into()], GoTime::parse(t).unwrap())
    }

    #[test]
    fn iso_weeks() {
        assert_eq!(iso_week(2021, 1, 3), (2020, 53));
        assert_eq!(iso_week(2021, 1, 4), (2021, 1));
        assert_eq!(iso_week(2024, 12, 30), (2025, 1));
        assert_eq!(iso_week(2026, 11, 23), (2026, 48));
    }

    #[test]
    fn within_uses_go_add_date() {
        let t = GoTime::parse("2024-03-31T12:00:00+02:00").unwrap();
        let w = Within::parse("1m").unwrap();
        // Feb 31 normalises to Mar 2 (leap year)
        assert_eq!(w.before(t).to_string(), "2024-03-02T12:00:00+02:00");
        assert_eq!(Within::parse("1y2m3d4h").unwrap().to_string(), "1y2m3d4h");
        assert!(Within::parse("5x").is_err());
    }

    #[test]
    fn daily_keeps_the_newest_per_day_and_the_oldest() {
        let s = [
            snap("2024-01-03T10:00:00Z"),
            snap("2024-01-03T08:00:00Z"),
            snap("2024-01-02T10:00:00Z"),
            snap("2024-01-01T10:00:00Z"),
        ];
        let refs: Vec<&Snapshot> = s.iter().collect();
        let d = apply(
            &refs,
            &Policy {
                daily: 2,
                ..Default::default()
            },
        );
        assert_eq!(d.keep, vec![0, 2]);
        assert_eq!(d.remove, vec![1, 3]);
        let d = apply(
            &refs,
            &Policy {
                daily: 5,
                ..Default::default()
            },
        );
        assert_eq!(d.keep, vec![0, 2, 3]);
        let d = apply(
            &refs,
            &Policy {
                last: 1,
                ..Default::default()
            },
        );
        assert_eq!(d.keep, vec![0]);
        let d = apply(
            &refs,
            &Policy {
                daily: -1,
                ..Default::default()
            },
        );
        assert_eq!(d.keep, vec![0, 2, 3]);
    }
}
