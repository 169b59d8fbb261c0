//! The service's two languages from one message catalog
//! (`assets/ui/en.toml` and `de.toml`, embedded): the web UI's words, the
//! reasons of API errors ([`Msg`]), and numbers, sizes, times and ages in
//! each language's format. Pure: no I/O.
//!
//! Invariants: both catalogs have the same keys and placeholders (a unit
//! test); a missing key shows as the key itself, never as a panic; an API
//! answer is the English rendering of the same [`Msg`] a German page shows
//! in German.

use std::collections::HashMap;
use std::sync::LazyLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    De,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::De => "de",
        }
    }

    pub fn parse(s: &str) -> Option<Lang> {
        match s.trim().to_ascii_lowercase().as_str() {
            "en" => Some(Lang::En),
            "de" => Some(Lang::De),
            _ => None,
        }
    }

    /// The best of our languages for an `Accept-Language` header: the
    /// first (by weight, then order) whose primary tag we have; English
    /// when none is.
    pub fn from_accept(header: &str) -> Lang {
        let mut best: Option<(f32, usize, Lang)> = None;
        for (i, part) in header.split(',').enumerate() {
            let mut it = part.split(';');
            let tag = it.next().unwrap_or("").trim();
            let q = it
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            let primary = tag.split('-').next().unwrap_or("");
            if let Some(l) = Lang::parse(primary)
                && q > 0.0
                && best.is_none_or(|(bq, bi, _)| q > bq || (q == bq && i < bi))
            {
                best = Some((q, i, l));
            }
        }
        best.map(|b| b.2).unwrap_or(Lang::En)
    }

    pub fn all() -> [Lang; 2] {
        [Lang::En, Lang::De]
    }

    /// The language's own name, for the switcher.
    pub fn name(self) -> &'static str {
        match self {
            Lang::En => "English",
            Lang::De => "Deutsch",
        }
    }
}

fn flatten(prefix: &str, v: &toml::Value, out: &mut HashMap<String, String>) {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        toml::Value::String(s) => {
            out.insert(prefix.to_string(), s.clone());
        }
        other => {
            out.insert(prefix.to_string(), format!("{other:?}"));
        }
    }
}

fn load(text: &str) -> HashMap<String, String> {
    let v: toml::Value = toml::from_str(text).expect("the embedded message catalog parses");
    let mut out = HashMap::new();
    flatten("", &v, &mut out);
    out
}

static EN: LazyLock<HashMap<String, String>> =
    LazyLock::new(|| load(include_str!("../assets/ui/en.toml")));
static DE: LazyLock<HashMap<String, String>> =
    LazyLock::new(|| load(include_str!("../assets/ui/de.toml")));

/// A message for a person: a key of the catalog and the values of its
/// placeholders. The API answers its English rendering (`Display`); a page
/// renders it in the page's language. Text from below the service — a
/// parser's or a database's own words — travels as [`Msg::text`] and shows
/// as it is in both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Msg {
    key: &'static str,
    args: Vec<(&'static str, Arg)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Arg {
    Text(String),
    /// A word of the catalog, rendered in the reader's language.
    Key(&'static str),
}

impl Msg {
    /// The message `key` (under `msg.` in the catalog).
    pub fn new(key: &'static str) -> Msg {
        Msg {
            key,
            args: Vec::new(),
        }
    }

    /// The value of the placeholder `{name}`.
    pub fn with(mut self, name: &'static str, value: impl ToString) -> Msg {
        self.args.push((name, Arg::Text(value.to_string())));
        self
    }

    /// The placeholder `{name}` filled with the catalog's word `key`.
    pub fn with_key(mut self, name: &'static str, key: &'static str) -> Msg {
        self.args.push((name, Arg::Key(key)));
        self
    }

    /// Words that have no key: shown as they are, in every language.
    pub fn text(detail: impl Into<String>) -> Msg {
        Msg::new("msg.text").with("detail", detail.into())
    }

    pub fn key(&self) -> &'static str {
        self.key
    }

    pub fn render(&self, tr: Tr) -> String {
        let args: Vec<(&str, &str)> = self
            .args
            .iter()
            .map(|(k, v)| {
                (
                    *k,
                    match v {
                        Arg::Text(t) => t.as_str(),
                        Arg::Key(key) => tr.t(key),
                    },
                )
            })
            .collect();
        tr.f(self.key, &args)
    }
}

impl std::fmt::Display for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.render(Tr(Lang::En)))
    }
}

impl From<String> for Msg {
    fn from(s: String) -> Msg {
        Msg::text(s)
    }
}

impl From<&str> for Msg {
    fn from(s: &str) -> Msg {
        Msg::text(s)
    }
}

/// Strings and formats in one language.
#[derive(Debug, Clone, Copy)]
pub struct Tr(pub Lang);

impl Tr {
    /// The message `key` (English when the language lacks it).
    pub fn t(self, key: &str) -> &'static str {
        self.get(key)
            .or_else(|| Tr(Lang::En).get(key))
            .unwrap_or_else(|| missing(key))
    }

    /// The message `key`, if the catalogs have it.
    pub fn get(self, key: &str) -> Option<&'static str> {
        let map: &'static HashMap<String, String> = match self.0 {
            Lang::En => &EN,
            Lang::De => &DE,
        };
        map.get(key).map(String::as_str)
    }

    /// The message `key` with `{name}` placeholders filled, in one pass:
    /// a value that itself holds `{…}` stays as it is.
    pub fn f(self, key: &str, args: &[(&str, &str)]) -> String {
        let template = self.t(key);
        let mut out = String::with_capacity(template.len());
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            match after
                .find('}')
                .and_then(|close| Some((close, args.iter().find(|a| a.0 == &after[..close])?)))
            {
                Some((close, (_, v))) => {
                    out.push_str(v);
                    rest = &after[close + 1..];
                }
                None => {
                    out.push('{');
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        out
    }

    /// The message `key.one` or `key.other` for `n` (English and German
    /// both have these two forms), with `{count}` filled.
    pub fn plural(self, key: &str, n: i64) -> String {
        let form = if n == 1 { "one" } else { "other" };
        self.f(&format!("{key}.{form}"), &[("count", &self.int(n))])
    }

    /// An integer with thousands separators: `1,234,567` / `1.234.567`.
    pub fn int(self, n: i64) -> String {
        let sep = match self.0 {
            Lang::En => ',',
            Lang::De => '.',
        };
        let digits = n.unsigned_abs().to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(sep);
            }
            out.push(c);
        }
        if n < 0 { format!("-{out}") } else { out }
    }

    /// A decimal with one digit after the point: `1.5` / `1,5`.
    fn dec1(self, x: f64) -> String {
        let s = format!("{x:.1}");
        match self.0 {
            Lang::En => s,
            Lang::De => s.replace('.', ","),
        }
    }

    /// A size in bytes: `512 B`, `1.5 KiB`, `3.2 GiB` (`1,5 KiB` in German).
    pub fn bytes(self, n: i64) -> String {
        const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
        if n.abs() < 1024 {
            return format!("{} B", self.int(n));
        }
        let mut x = n as f64;
        let mut unit = "B";
        for u in UNITS {
            if x.abs() < 1024.0 {
                break;
            }
            x /= 1024.0;
            unit = u;
        }
        format!("{} {unit}", self.dec1(x))
    }

    /// A catalog time (RFC 3339, UTC) as `2026-12-05 20:25 UTC` /
    /// `05.12.2026, 20:25 UTC`; unparsable text as it is.
    pub fn time(self, t: &str) -> String {
        let Ok(ts) = t.parse::<jiff::Timestamp>() else {
            return t.to_string();
        };
        let dt = ts.to_zoned(jiff::tz::TimeZone::UTC).datetime();
        match self.0 {
            Lang::En => format!("{} UTC", dt.strftime("%Y-%m-%d %H:%M")),
            Lang::De => format!("{} UTC", dt.strftime("%d.%m.%Y, %H:%M")),
        }
    }

    /// A length of time in its largest two units: `45 s`, `3 min 5 s`,
    /// `2 h 10 min`, `4 d 2 h`.
    pub fn duration(self, secs: i64) -> String {
        let secs = secs.max(0);
        let unit = |key: &str, n: i64| self.f(key, &[("n", &n.to_string())]);
        let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
        if d > 0 {
            return join(unit("fmt.days", d), (h > 0).then(|| unit("fmt.hours", h)));
        }
        if h > 0 {
            return join(
                unit("fmt.hours", h),
                (m > 0).then(|| unit("fmt.minutes", m)),
            );
        }
        if m > 0 {
            return join(
                unit("fmt.minutes", m),
                (s > 0).then(|| unit("fmt.seconds", s)),
            );
        }
        unit("fmt.seconds", s)
    }

    /// How long ago `t` was, from `now`: `3 h ago` / `vor 3 Std.`; a time
    /// in the future as `in 5 min`.
    pub fn age(self, t: &str, now: jiff::Timestamp) -> String {
        let Ok(ts) = t.parse::<jiff::Timestamp>() else {
            return t.to_string();
        };
        let secs = now.as_second() - ts.as_second();
        // an age needs only its largest unit
        let coarse = |s: i64| {
            let s = s.abs();
            let one = |key: &str, n: i64| self.f(key, &[("n", &n.to_string())]);
            if s >= 86400 {
                one("fmt.days", s / 86400)
            } else if s >= 3600 {
                one("fmt.hours", s / 3600)
            } else if s >= 60 {
                one("fmt.minutes", s / 60)
            } else {
                one("fmt.seconds", s)
            }
        };
        if secs >= 0 {
            self.f("fmt.ago", &[("age", &coarse(secs))])
        } else {
            self.f("fmt.in", &[("age", &coarse(secs))])
        }
    }
}

/// A key missing from the catalogs shows as itself: visible, not fatal.
/// Each such key is kept once (keys come from the code and the catalog's
/// fixed words), so a page that asks again allocates nothing.
fn missing(key: &str) -> &'static str {
    static SEEN: LazyLock<std::sync::Mutex<std::collections::HashSet<&'static str>>> =
        LazyLock::new(Default::default);
    let mut seen = SEEN.lock().expect("not poisoned");
    if let Some(k) = seen.get(key) {
        return k;
    }
    let k: &'static str = Box::leak(key.to_string().into_boxed_str());
    seen.insert(k);
    k
}

fn join(a: String, b: Option<String>) -> String {
    match b {
        Some(b) => format!("{a} {b}"),
        None => a,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_catalogs_have_the_same_keys_and_no_empty_string() {
        let mut en: Vec<&String> = EN.keys().collect();
        let mut de: Vec<&String> = DE.keys().collect();
        en.sort();
        de.sort();
        assert_eq!(en, de);
        assert!(en.len() > 50);
        for (k, v) in EN.iter().chain(DE.iter()) {
            assert!(!v.trim().is_empty(), "{k} is empty");
        }
        // placeholders match: a translation names the same values
        for k in EN.keys() {
            let names = |s: &str| {
                let mut v: Vec<String> = s
                    .split('{')
                    .skip(1)
                    .filter_map(|p| p.split_once('}').map(|x| x.0.to_string()))
                    .collect();
                v.sort();
                v
            };
            assert_eq!(names(&EN[k]), names(&DE[k]), "{k}");
        }
    }

    #[test]
    fn placeholders_are_filled_once_and_unknown_ones_stay() {
        let m = Msg::text("a {detail} and a { brace");
        assert_eq!(m.to_string(), "a {detail} and a { brace");
        let q = Msg::new("msg.quota.sources")
            .with("live", 3)
            .with("max", "{live}");
        assert_eq!(
            q.to_string(),
            "the tenant has 3 sources, its quota is {live}"
        );
    }

    #[test]
    fn accept_language_picks_by_weight_then_order() {
        assert_eq!(Lang::from_accept("de-DE,de;q=0.9,en;q=0.8"), Lang::De);
        assert_eq!(Lang::from_accept("en-US,en;q=0.9,de;q=0.8"), Lang::En);
        assert_eq!(Lang::from_accept("fr-FR, de;q=0.5, en;q=0.7"), Lang::En);
        assert_eq!(Lang::from_accept("fr"), Lang::En);
        assert_eq!(Lang::from_accept("de;q=0, en;q=0.1"), Lang::En);
        assert_eq!(Lang::from_accept(""), Lang::En);
    }

    #[test]
    fn numbers_sizes_times_and_ages_follow_the_language() {
        let (en, de) = (Tr(Lang::En), Tr(Lang::De));
        assert_eq!(en.int(1234567), "1,234,567");
        assert_eq!(de.int(1234567), "1.234.567");
        assert_eq!(en.int(-1000), "-1,000");
        assert_eq!(en.int(999), "999");
        assert_eq!(en.bytes(1023), "1,023 B");
        assert_eq!(en.bytes(1536), "1.5 KiB");
        assert_eq!(de.bytes(1536), "1,5 KiB");
        assert_eq!(en.bytes(3 << 30), "3.0 GiB");
        let t = "2026-12-05T20:25:07.123Z";
        assert_eq!(en.time(t), "2026-12-05 20:25 UTC");
        assert_eq!(de.time(t), "05.12.2026, 20:25 UTC");
        assert_eq!(en.duration(185), "3 min 5 s");
        assert_eq!(de.duration(7800), "2 Std. 10 Min.");
        assert_eq!(en.duration(45), "45 s");
        let now: jiff::Timestamp = "2026-12-05T23:30:00Z".parse().unwrap();
        assert_eq!(en.age(t, now), "3 h ago");
        assert_eq!(de.age(t, now), "vor 3 Std.");
        assert_eq!(en.age("2026-12-05T23:35:00Z", now), "in 5 min");
        assert_eq!(en.t("no.such.key"), "no.such.key");
        assert_eq!(
            en.plural("overview.attention", 1),
            "1 source needs attention"
        );
        assert_eq!(
            de.plural("overview.attention", 1200),
            "1.200 Quellen brauchen Aufmerksamkeit"
        );
    }
}
