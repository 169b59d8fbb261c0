//! Times as the catalog stores them: RFC 3339 in UTC with milliseconds,
//! fixed width, so that text order is time order on every database.

use jiff::{SignedDuration, Timestamp};

/// `2026-12-04T15:40:00.123Z`.
pub fn format(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

pub fn now() -> String {
    format(Timestamp::now())
}

/// `now` plus a duration (negative for the past).
pub fn after(d: SignedDuration) -> String {
    format(Timestamp::now().checked_add(d).unwrap_or(Timestamp::MAX))
}

pub fn parse(s: &str) -> Option<Timestamp> {
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_order_is_time_order() {
        let a: Timestamp = "2026-01-02T03:04:05.5Z".parse().unwrap();
        let b: Timestamp = "2026-01-02T03:04:05.06Z".parse().unwrap();
        assert_eq!(format(a), "2026-01-02T03:04:05.500Z");
        assert!(format(b) < format(a));
        assert_eq!(parse(&format(a)), Some(a));
    }
}
