//! Cron schedules, as pure logic: five fields (minute hour day-of-month
//! month day-of-week) with lists, ranges, steps, month and weekday names,
//! 7 for Sunday, and `@hourly`, `@daily`, `@weekly`, `@monthly`,
//! `@yearly`; evaluated in a time zone. As in Vixie cron, when both the
//! day of month and the day of week are restricted, a day matching either
//! one matches.
//!
//! The scheduler needs one question answered: the latest slot at or before
//! now. Slots are walked forward from a known point (the last slot that
//! fired, or the source's creation), so a server that was down over several
//! slots fires the latest one once, not once per missed slot.

use crate::i18n::Msg;
use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    minutes: u64,
    hours: u32,
    days: u32,
    months: u16,
    weekdays: u8,
    /// Both day fields restricted: either matches.
    day_or: bool,
    /// `CRON_TZ=Area/City` in front of the fields: this schedule's zone.
    zone: Option<TimeZone>,
    text: String,
}

/// The catalog's name of a field of the expression.
fn what_key(what: &str) -> &'static str {
    match what {
        "minute" => "msg.schedule.minute",
        "hour" => "msg.schedule.hour",
        "day of month" => "msg.schedule.day_of_month",
        "month" => "msg.schedule.month",
        _ => "msg.schedule.day_of_week",
    }
}

fn parse_field(
    field: &str,
    lo: u32,
    hi: u32,
    names: &[&str],
    what: &str,
) -> Result<(u64, bool), Msg> {
    let name = |key: &'static str| Msg::new(key).with_key("what", what_key(what));
    let value = |s: &str| -> Result<u32, Msg> {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
            return Ok(lo + i as u32);
        }
        s.parse::<u32>().map_err(|_| {
            name(if names.is_empty() {
                "msg.schedule.not_number"
            } else {
                "msg.schedule.not_number_or_name"
            })
            .with("value", format!("{s:?}"))
        })
    };
    let mut bits = 0u64;
    let restricted = field != "*" && field != "?";
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| name("msg.schedule.step").with("value", format!("{s:?}")))?,
            ),
            None => (part, 1),
        };
        let (a, b) = if range == "*" || range == "?" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a)?, value(b)?)
        } else {
            let v = value(range)?;
            (v, if part.contains('/') { hi } else { v })
        };
        // 7 is Sunday too
        let (a, b) = if what == "day of week" && b == 7 && a <= 7 {
            if a == 7 {
                (0, 0)
            } else {
                bits |= 1;
                (a, 6)
            }
        } else {
            (a, b)
        };
        if a < lo || b > hi || a > b {
            return Err(name("msg.schedule.range")
                .with("value", format!("{part:?}"))
                .with("lo", lo)
                .with("hi", hi));
        }
        let mut v = a;
        while v <= b {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok((bits, restricted))
}

impl Schedule {
    pub fn parse(text: &str) -> Result<Schedule, Msg> {
        let mut rest = text.trim();
        let mut zone = None;
        if let Some(z) = rest
            .strip_prefix("CRON_TZ=")
            .or_else(|| rest.strip_prefix("TZ="))
        {
            let (name, after) = z.split_once(char::is_whitespace).unwrap_or((z, ""));
            zone =
                Some(TimeZone::get(name).map_err(|_| {
                    Msg::new("msg.schedule.zone").with("name", format!("{name:?}"))
                })?);
            rest = after.trim();
        }
        let expanded = match rest {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            other => other,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(Msg::new("msg.schedule.fields")
                .with("text", format!("{text:?}"))
                .with("count", fields.len()));
        }
        const MONTHS: &[&str] = &[
            "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
        ];
        const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
        let (minutes, _) = parse_field(fields[0], 0, 59, &[], "minute")?;
        let (hours, _) = parse_field(fields[1], 0, 23, &[], "hour")?;
        let (days, dom_r) = parse_field(fields[2], 1, 31, &[], "day of month")?;
        let (months, _) = parse_field(fields[3], 1, 12, MONTHS, "month")?;
        let (weekdays, dow_r) = parse_field(fields[4], 0, 7, DAYS, "day of week")?;
        Ok(Schedule {
            minutes,
            hours: hours as u32,
            days: days as u32,
            months: months as u16,
            weekdays: weekdays as u8,
            day_or: dom_r && dow_r,
            zone,
            text: text.trim().to_string(),
        })
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    fn day_matches(&self, d: Date) -> bool {
        let dom = self.days & (1 << d.day()) != 0;
        let dow = self.weekdays & (1 << d.weekday().to_sunday_zero_offset()) != 0;
        if self.day_or { dom || dow } else { dom && dow }
    }

    /// The first slot strictly after `after`, in `tz` (`None` if there is
    /// none within five years, e.g. 30 February).
    pub fn next_after(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let tz = self.zone.as_ref().unwrap_or(tz);
        let local = after.to_zoned(tz.clone()).datetime();
        // the next whole minute
        let mut t = local
            .with()
            .second(0)
            .subsec_nanosecond(0)
            .build()
            .ok()?
            .checked_add(1.minute())
            .ok()?;
        let limit = local.checked_add(5.years()).ok()?;
        while t < limit {
            let d = t.date();
            if self.months & (1 << d.month()) == 0 {
                let first = Date::new(d.year(), d.month(), 1)
                    .ok()?
                    .checked_add(1.month())
                    .ok()?;
                t = DateTime::from_parts(first, Time::midnight());
                continue;
            }
            if !self.day_matches(d) {
                t = DateTime::from_parts(d.tomorrow().ok()?, Time::midnight());
                continue;
            }
            if self.hours & (1 << t.hour()) == 0 {
                t = t
                    .with()
                    .minute(0)
                    .build()
                    .ok()?
                    .checked_add(1.hour())
                    .ok()?;
                continue;
            }
            if self.minutes & (1 << t.minute()) == 0 {
                t = t.checked_add(1.minute()).ok()?;
                continue;
            }
            // a local time in a DST gap fires at the corresponding later
            // instant; one that occurs twice fires at its first occurrence
            let ts = tz.to_ambiguous_zoned(t).compatible().ok()?.timestamp();
            if ts > after {
                return Some(ts);
            }
            t = t.checked_add(1.minute()).ok()?;
        }
        None
    }

    /// Whether a source on this schedule whose last success (or creation)
    /// was `since` is overdue at `now`: a slot came due after `since` and
    /// one more interval (the time to the slot after it, the grace) has
    /// passed without a success. The slot that was missed, if so. Three
    /// slot look-ups, whatever the schedule.
    pub fn overdue_since(
        &self,
        since: Timestamp,
        now: Timestamp,
        tz: &TimeZone,
    ) -> Option<Timestamp> {
        let due = self.next_after(since, tz)?;
        let after = self.next_after(due, tz)?;
        let grace = after.duration_since(due);
        due.checked_add(grace)
            .is_ok_and(|late| late < now)
            .then_some(due)
    }

    pub fn overdue(&self, since: Timestamp, now: Timestamp, tz: &TimeZone) -> bool {
        self.overdue_since(since, now, tz).is_some()
    }

    /// The shortest time between two consecutive slots from `from` on,
    /// looking at most 2,000 slots or 400 days ahead (every pattern of
    /// minutes, hours, weekdays and month days repeats within that); `None`
    /// if fewer than two slots fall in that span.
    pub fn shortest_interval(
        &self,
        from: Timestamp,
        tz: &TimeZone,
    ) -> Option<jiff::SignedDuration> {
        let end = from
            .checked_add(jiff::SignedDuration::from_hours(24 * 400))
            .ok()?;
        let mut prev = self.next_after(from, tz)?;
        let mut best: Option<jiff::SignedDuration> = None;
        for _ in 0..2000 {
            let Some(next) = self.next_after(prev, tz) else {
                break;
            };
            if next > end {
                break;
            }
            let gap = next.duration_since(prev);
            best = Some(best.map_or(gap, |b| b.min(gap)));
            if gap <= jiff::SignedDuration::from_mins(1) {
                break;
            }
            prev = next;
        }
        best
    }

    /// The latest slot in (`since`, `now`], if any: what the scheduler
    /// fires (once, however many slots a downtime skipped).
    pub fn latest_due(&self, since: Timestamp, now: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let mut due = None;
        let mut t = since;
        while let Some(next) = self.next_after(t, tz) {
            if next > now {
                break;
            }
            due = Some(next);
            t = next;
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_source_is_overdue_one_interval_after_a_missed_slot() {
        let daily = Schedule::parse("0 3 * * *").unwrap();
        let tz = TimeZone::UTC;
        let t = |s: &str| s.parse::<Timestamp>().unwrap();
        let ok = t("2026-12-05T03:10:00Z");
        // the next slot (12-06 03:00) has not passed its grace day yet
        assert!(!daily.overdue(ok, t("2026-12-06T09:00:00Z"), &tz));
        assert!(!daily.overdue(ok, t("2026-12-07T02:59:00Z"), &tz));
        // a day after the missed slot: overdue
        assert!(daily.overdue(ok, t("2026-12-07T03:01:00Z"), &tz));
        let hourly = Schedule::parse("@hourly").unwrap();
        assert!(!hourly.overdue(t("2026-12-05T10:05:00Z"), t("2026-12-05T11:30:00Z"), &tz));
        assert!(hourly.overdue(t("2026-12-05T10:05:00Z"), t("2026-12-05T12:01:00Z"), &tz));
    }

    #[test]
    fn shortest_intervals() {
        let utc = TimeZone::UTC;
        let from = ts("2026-12-04T10:17:00Z");
        let mins = |text: &str| {
            Schedule::parse(text)
                .unwrap()
                .shortest_interval(from, &utc)
                .map(|d| d.as_secs() / 60)
        };
        assert_eq!(mins("*/5 * * * *"), Some(5));
        assert_eq!(mins("0 3 * * *"), Some(24 * 60));
        assert_eq!(mins("0 3,4 * * *"), Some(60));
        assert_eq!(mins("0 0 1,2 * *"), Some(24 * 60));
        assert_eq!(mins("@weekly"), Some(7 * 24 * 60));
        assert_eq!(mins("* * * * *"), Some(1));
    }

    #[test]
    fn nightly_at_three_and_the_missed_slot_fires_once() {
        let s = Schedule::parse("0 3 * * *").unwrap();
        let utc = TimeZone::UTC;
        assert_eq!(
            s.next_after(ts("2026-12-04T02:59:00Z"), &utc),
            Some(ts("2026-12-04T03:00:00Z"))
        );
        assert_eq!(
            s.next_after(ts("2026-12-04T03:00:00Z"), &utc),
            Some(ts("2026-12-05T03:00:00Z"))
        );
        // down from the 1st to the 4th at noon: only the 4th's slot is due
        assert_eq!(
            s.latest_due(ts("2026-12-01T04:00:00Z"), ts("2026-12-04T12:00:00Z"), &utc),
            Some(ts("2026-12-04T03:00:00Z"))
        );
        assert_eq!(
            s.latest_due(ts("2026-12-04T03:00:00Z"), ts("2026-12-04T12:00:00Z"), &utc),
            None
        );
    }

    #[test]
    fn fields_names_steps_and_either_day_rule() {
        let s = Schedule::parse("*/15 9-17 * * mon-fri").unwrap();
        let utc = TimeZone::UTC;
        // Saturday 2026-12-05 → Monday 09:00
        assert_eq!(
            s.next_after(ts("2026-12-04T17:50:00Z"), &utc),
            Some(ts("2026-12-07T09:00:00Z"))
        );
        assert_eq!(
            s.next_after(ts("2026-12-07T09:00:00Z"), &utc),
            Some(ts("2026-12-07T09:15:00Z"))
        );
        // the 1st of the month or any Sunday
        let s = Schedule::parse("0 0 1 * 7").unwrap();
        assert_eq!(
            s.next_after(ts("2026-12-04T00:00:00Z"), &utc),
            Some(ts("2026-12-06T00:00:00Z"))
        );
        assert_eq!(
            s.next_after(ts("2026-12-27T00:00:00Z"), &utc),
            Some(ts("2027-01-01T00:00:00Z"))
        );
        assert_eq!(
            Schedule::parse("@daily")
                .unwrap()
                .next_after(ts("2026-12-04T00:00:00Z"), &utc),
            Some(ts("2026-12-05T00:00:00Z"))
        );
        assert_eq!(
            Schedule::parse("0 0 30 feb *")
                .unwrap()
                .next_after(ts("2026-01-01T00:00:00Z"), &utc),
            None
        );
    }

    #[test]
    fn time_zones_and_daylight_saving() {
        let s = Schedule::parse("30 2 * * *").unwrap();
        let berlin = TimeZone::get("Europe/Berlin").unwrap();
        // 02:30 in Berlin in winter is 01:30 UTC
        assert_eq!(
            s.next_after(ts("2026-12-04T00:00:00Z"), &berlin),
            Some(ts("2026-12-04T01:30:00Z"))
        );
        // 2026-03-29 02:30 does not exist in Berlin: it fires once, at 03:30 CEST (01:30 UTC)
        assert_eq!(
            s.next_after(ts("2026-03-28T12:00:00Z"), &berlin),
            Some(ts("2026-03-29T01:30:00Z"))
        );
        assert_eq!(
            s.next_after(ts("2026-03-29T01:30:00Z"), &berlin),
            Some(ts("2026-03-30T00:30:00Z"))
        );
        // a zone in the schedule wins over the server's
        let s = Schedule::parse("CRON_TZ=America/New_York 0 3 * * *").unwrap();
        assert_eq!(
            s.next_after(ts("2026-12-04T00:00:00Z"), &berlin),
            Some(ts("2026-12-04T08:00:00Z"))
        );
        assert!(
            Schedule::parse("CRON_TZ=Mars/Olympus 0 3 * * *")
                .unwrap_err()
                .to_string()
                .contains("Mars")
        );
    }

    #[test]
    fn bad_schedules_say_what_is_wrong_in_both_languages() {
        use crate::i18n::{Lang, Tr};
        let err = |t: &str| Schedule::parse(t).unwrap_err().to_string();
        assert_eq!(
            err("0 3 * *"),
            "\"0 3 * *\" has 4 fields; a schedule has five: minute hour day-of-month month day-of-week"
        );
        assert_eq!(err("61 * * * *"), "minute: \"61\" is outside 0–59");
        assert_eq!(
            err("0 3 * * funday"),
            "day of week: \"funday\" is not a number or a name"
        );
        assert!(err("*/0 * * * *").contains("step"));
        let de = |t: &str| Schedule::parse(t).unwrap_err().render(Tr(Lang::De));
        assert_eq!(de("61 * * * *"), "Minute: \"61\" liegt außerhalb von 0–59");
        assert_eq!(
            de("0 3 * * funday"),
            "Wochentag: \"funday\" ist weder Zahl noch Name"
        );
    }
}
