//! Timestamps as restic writes them: Go's RFC 3339 with nanoseconds
//! (`2006-01-02T15:04:05.999999999Z07:00`: trailing zeros of the fraction
//! dropped, `Z` for UTC, otherwise `±hh:mm`).

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An instant plus the UTC offset it was written with.
#[derive(Clone, Copy, Debug, Default)]
pub struct GoTime {
    /// Seconds since the Unix epoch.
    pub secs: i64,
    pub nanos: u32,
    /// Offset from UTC in seconds, kept only to print the time back as it
    /// was read.
    pub offset: i32,
}

impl PartialEq for GoTime {
    fn eq(&self, o: &Self) -> bool {
        self.secs == o.secs && self.nanos == o.nanos
    }
}
impl Eq for GoTime {}
impl PartialOrd for GoTime {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for GoTime {
    fn cmp(&self, o: &Self) -> Ordering {
        (self.secs, self.nanos).cmp(&(o.secs, o.nanos))
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid RFC 3339 time {0:?}")]
pub struct ParseTimeError(pub String);

/// Seconds between 0001-01-01 and 1970-01-01: Go's zero time.
const GO_ZERO_SECS: i64 = -62_135_596_800;

impl GoTime {
    pub fn utc(secs: i64, nanos: u32) -> GoTime {
        GoTime {
            secs,
            nanos,
            offset: 0,
        }
    }

    /// Go's zero `time.Time` (0001-01-01T00:00:00Z).
    pub fn zero() -> GoTime {
        GoTime::utc(GO_ZERO_SECS, 0)
    }

    pub fn is_zero(&self) -> bool {
        self.secs == GO_ZERO_SECS && self.nanos == 0
    }

    pub fn now() -> GoTime {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        GoTime::utc(d.as_secs() as i64, d.subsec_nanos())
    }

    /// The same instant shown with another UTC offset.
    pub fn with_offset(self, offset: i32) -> GoTime {
        GoTime { offset, ..self }
    }

    /// Nanoseconds since the epoch (saturating).
    pub fn unix_nanos(&self) -> i128 {
        self.secs as i128 * 1_000_000_000 + self.nanos as i128
    }

    pub fn parse(s: &str) -> Result<GoTime, ParseTimeError> {
        parse(s).ok_or_else(|| ParseTimeError(s.to_string()))
    }

    /// Civil date and time (in the time's own offset).
    pub fn civil(&self) -> (i64, u32, u32, u32, u32, u32) {
        let local = self.secs + self.offset as i64;
        let days = local.div_euclid(86400);
        let sod = local.rem_euclid(86400);
        let (y, m, d) = civil_from_days(days);
        (
            y,
            m,
            d,
            (sod / 3600) as u32,
            (sod % 3600 / 60) as u32,
            (sod % 60) as u32,
        )
    }
}

impl fmt::Display for GoTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, mo, d, h, mi, s) = self.civil();
        write!(f, "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}")?;
        if self.nanos != 0 {
            let mut frac = format!("{:09}", self.nanos);
            while frac.ends_with('0') {
                frac.pop();
            }
            write!(f, ".{frac}")?;
        }
        if self.offset == 0 {
            f.write_str("Z")
        } else {
            let sign = if self.offset < 0 { '-' } else { '+' };
            let o = self.offset.unsigned_abs();
            write!(f, "{sign}{:02}:{:02}", o / 3600, o % 3600 / 60)
        }
    }
}

fn digits(b: &[u8]) -> Option<i64> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v = 0i64;
    for &c in b {
        v = v * 10 + (c - b'0') as i64;
    }
    Some(v)
}

fn parse(s: &str) -> Option<GoTime> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !(b[10] == b'T' || b[10] == b't' || b[10] == b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let year = digits(&b[0..4])?;
    let month = digits(&b[5..7])? as u32;
    let day = digits(&b[8..10])? as u32;
    let hour = digits(&b[11..13])?;
    let min = digits(&b[14..16])?;
    let sec = digits(&b[17..19])?;
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || min > 59
        || sec > 60
    {
        return None;
    }
    let mut pos = 19;
    let mut nanos = 0u32;
    if b[pos] == b'.' {
        let start = pos + 1;
        let mut end = start;
        while end < b.len() && b[end].is_ascii_digit() {
            end += 1;
        }
        if end == start {
            return None;
        }
        let frac = &b[start..end.min(start + 9)];
        let mut v = digits(frac)? as u32;
        for _ in frac.len()..9 {
            v *= 10;
        }
        nanos = v;
        pos = end;
    }
    let offset = match b.get(pos)? {
        b'Z' | b'z' if pos + 1 == b.len() => 0,
        c @ (b'+' | b'-') if b.len() == pos + 6 && b[pos + 3] == b':' => {
            let oh = digits(&b[pos + 1..pos + 3])?;
            let om = digits(&b[pos + 4..pos + 6])?;
            if oh > 23 || om > 59 {
                return None;
            }
            let o = (oh * 3600 + om * 60) as i32;
            if *c == b'-' { -o } else { o }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let local = days * 86400 + hour * 3600 + min * 60 + sec.min(59);
    Some(GoTime {
        secs: local - offset as i64,
        nanos,
        offset,
    })
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ => {
            if is_leap(y) {
                29
            } else {
                28
            }
        }
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// Inverse of [`days_from_civil`].
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

impl Serialize for GoTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for GoTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s: std::borrow::Cow<'de, str> = Deserialize::deserialize(d)?;
        GoTime::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn formats_like_go() {
        assert_eq!(GoTime::utc(0, 0).to_string(), "1970-01-01T00:00:00Z");
        assert_eq!(GoTime::zero().to_string(), "0001-01-01T00:00:00Z");
        assert_eq!(
            GoTime::utc(1419259679, 912418701)
                .with_offset(3600)
                .to_string(),
            "2014-12-22T15:47:59.912418701+01:00"
        );
        assert_eq!(
            GoTime::utc(1, 500_000_000).to_string(),
            "1970-01-01T00:00:01.5Z"
        );
        assert_eq!(
            GoTime::utc(0, 0)
                .with_offset(-(5 * 3600 + 30 * 60))
                .to_string(),
            "1969-12-31T18:30:00-05:30"
        );
    }

    #[test]
    fn parses_restic_times() {
        let t = GoTime::parse("2014-12-22T14:47:59.912418701+01:00").unwrap();
        assert_eq!((t.secs, t.nanos, t.offset), (1419256079, 912418701, 3600));
        assert_eq!(t.to_string(), "2014-12-22T14:47:59.912418701+01:00");
        assert!(GoTime::parse("0001-01-01T00:00:00Z").unwrap().is_zero());
        for bad in [
            "",
            "2014-12-22",
            "2014-13-01T00:00:00Z",
            "2014-02-30T00:00:00Z",
            "2014-12-22T14:47:59+0100",
            "2014-12-22T14:47:59.Z",
        ] {
            assert!(GoTime::parse(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn prop_round_trip(secs in GO_ZERO_SECS..253_402_300_799i64, nanos in 0u32..1_000_000_000, off in -50_400i32..50_400) {
            let off = off / 60 * 60;
            let t = GoTime { secs, nanos, offset: off };
            let back = GoTime::parse(&t.to_string()).unwrap();
            prop_assert_eq!((back.secs, back.nanos, back.offset), (secs, nanos, off));
        }

        #[test]
        fn prop_civil(days in -800_000i64..3_000_000) {
            let (y, m, d) = civil_from_days(days);
            prop_assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
