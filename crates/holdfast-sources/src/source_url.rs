//! Source addresses: what `holdfast backup ADDRESS` and `restore --to
//! ADDRESS` name. `postgres://USER@HOST:PORT/DB`, `mysql://…` (MariaDB
//! too), `sqlite:///path/app.db`, `jsonl+https://…`, and plain paths.
//!
//! A password written into an address is accepted but never passed on in
//! any process's argv, and every address is displayed redacted.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use holdfast_engine::{EngineError, Result};

/// What a backup argument or a restore target names.
#[derive(Clone, PartialEq, Eq)]
pub enum SourceAddress {
    Postgres(DbAddress),
    Mysql(DbAddress),
    Sqlite(PathBuf),
    /// `jsonl+http(s)://…`: the URL without the `jsonl+` prefix.
    Jsonl(HttpAddress),
    Path(PathBuf),
}

/// A database server address.
#[derive(Clone, PartialEq, Eq)]
pub struct DbAddress {
    pub user: Option<String>,
    pub password: Option<String>,
    /// Host name, IP address, or (from `?host=/dir`) a socket directory.
    pub host: Option<String>,
    pub port: Option<u16>,
    pub database: String,
    /// Query parameters (`sslmode=require`, `host=/run/postgresql`, …).
    pub params: BTreeMap<String, String>,
}

/// An HTTP(S) endpoint.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpAddress {
    /// The full URL (with any password in it).
    pub url: String,
    pub has_password: bool,
    /// A tenant's endpoint (the service): the one checked address to
    /// connect to (see [`holdfast_confine::egress`]). Redirects are then not followed
    /// and what the server answers on an error stays out of the message.
    pub pinned: Option<std::net::SocketAddr>,
}

impl HttpAddress {
    /// The host and port the URL connects to.
    pub fn host_port(&self) -> Option<(String, u16)> {
        let u = reqwest::Url::parse(&self.url).ok()?;
        let host = u.host_str()?.trim_matches(['[', ']']).to_string();
        Some((host, u.port_or_known_default()?))
    }
}

fn invalid(what: &str) -> EngineError {
    EngineError::Invalid(what.to_string())
}

fn percent_decode(s: &str) -> Result<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| invalid("bad percent-escape in address"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| invalid("address is not valid UTF-8 after percent-decoding"))
}

fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl SourceAddress {
    /// Parse a backup argument or restore target. Anything without a known
    /// scheme is a path.
    pub fn parse(s: &str) -> Result<SourceAddress> {
        let Some((scheme, rest)) = s.split_once("://") else {
            return Ok(SourceAddress::Path(PathBuf::from(s)));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "postgres" | "postgresql" => Ok(SourceAddress::Postgres(DbAddress::parse(rest, s)?)),
            "mysql" | "mariadb" => Ok(SourceAddress::Mysql(DbAddress::parse(rest, s)?)),
            "sqlite" => {
                let path = percent_decode(rest.split('?').next().unwrap_or(""))?;
                if !path.starts_with('/') {
                    return Err(invalid(
                        "sqlite address needs an absolute path: sqlite:///path/to/app.db",
                    ));
                }
                Ok(SourceAddress::Sqlite(PathBuf::from(path)))
            }
            "jsonl+http" | "jsonl+https" => {
                let url = s["jsonl+".len()..].to_string();
                let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
                Ok(SourceAddress::Jsonl(HttpAddress {
                    has_password: authority.contains('@'),
                    url,
                    pinned: None,
                }))
            }
            other => Err(invalid(&format!(
                "unknown source scheme {other:?}: use postgres://, mysql://, sqlite:///, \
                 jsonl+https:// or a plain path"
            ))),
        }
    }

    /// Whether the address carries a secret (a password in the URL).
    pub fn has_password(&self) -> bool {
        match self {
            SourceAddress::Postgres(d) | SourceAddress::Mysql(d) => d.password.is_some(),
            SourceAddress::Jsonl(h) => h.has_password,
            _ => false,
        }
    }
}

impl DbAddress {
    fn parse(rest: &str, whole: &str) -> Result<DbAddress> {
        let (main, query) = match rest.split_once('?') {
            Some((m, q)) => (m, Some(q)),
            None => (rest, None),
        };
        let (authority, path) = match main.split_once('/') {
            Some((a, p)) => (a, p),
            None => (main, ""),
        };
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(u) => match u.split_once(':') {
                Some((n, p)) => (Some(percent_decode(n)?), Some(percent_decode(p)?)),
                None => (Some(percent_decode(u)?), None),
            },
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| invalid("unterminated [IPv6] host in address"))?;
            (Some(h.to_string()), after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (Some(percent_decode(h)?), Some(p)),
                None => (Some(percent_decode(hostport)?), None),
            }
        };
        let port = match port {
            None | Some("") => None,
            Some(p) => Some(
                p.parse::<u16>()
                    .map_err(|_| invalid(&format!("bad port {p:?} in {}", redact_raw(whole))))?,
            ),
        };
        let host = host.filter(|h| !h.is_empty());
        let database = percent_decode(path.trim_end_matches('/'))?;
        if database.is_empty() {
            return Err(invalid(&format!(
                "{} names no database: add /DBNAME",
                redact_raw(whole)
            )));
        }
        let mut params = BTreeMap::new();
        for kv in query.unwrap_or("").split('&').filter(|s| !s.is_empty()) {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            params.insert(percent_decode(k)?, percent_decode(v)?);
        }
        Ok(DbAddress {
            user: user.filter(|u| !u.is_empty()),
            password,
            host,
            port,
            database,
            params,
        })
    }

    /// The address with another database name (restore targets, the
    /// maintenance database).
    pub fn with_database(&self, db: &str) -> DbAddress {
        DbAddress {
            database: db.to_string(),
            ..self.clone()
        }
    }

    fn display(&self, scheme: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{scheme}://")?;
        if let Some(u) = &self.user {
            write!(f, "{}", percent_encode(u))?;
            if self.password.is_some() {
                write!(f, ":***")?;
            }
            write!(f, "@")?;
        }
        if let Some(h) = &self.host {
            if h.contains(':') {
                write!(f, "[{h}]")?;
            } else {
                write!(f, "{}", percent_encode(h))?;
            }
        }
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        write!(f, "/{}", percent_encode(&self.database))?;
        let mut sep = '?';
        for (k, v) in &self.params {
            let v = if is_secret_param(k) {
                "***".to_string()
            } else {
                percent_encode(v)
            };
            write!(f, "{sep}{}={v}", percent_encode(k))?;
            sep = '&';
        }
        Ok(())
    }
}

fn is_secret_param(k: &str) -> bool {
    let k = k.to_ascii_lowercase();
    // Over-masking costs a less useful log line; under-masking leaks.
    [
        "pass",
        "secret",
        "token",
        "key",
        "sig",
        "auth",
        "credential",
    ]
    .iter()
    .any(|s| k.contains(s))
}

/// Redact whatever looks like a password in a raw address string (for
/// messages about addresses that did not parse).
pub fn redact_raw(s: &str) -> String {
    if let Some((scheme, rest)) = s.split_once("://") {
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..end];
        if let Some((userinfo, host)) = authority.rsplit_once('@') {
            let user = userinfo.split(':').next().unwrap_or("");
            let masked = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                user.to_string()
            };
            return format!("{scheme}://{masked}@{host}{}", &rest[end..]);
        }
    }
    s.to_string()
}

impl fmt::Display for SourceAddress {
    /// Always redacted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceAddress::Postgres(d) => d.display("postgres", f),
            SourceAddress::Mysql(d) => d.display("mysql", f),
            SourceAddress::Sqlite(p) => write!(f, "sqlite://{}", p.display()),
            SourceAddress::Jsonl(h) => {
                let raw = redact_raw(&h.url);
                // Query strings often carry tokens: keep only their keys.
                match raw.split_once('?') {
                    Some((base, q)) => {
                        let keys: Vec<String> = q
                            .split('&')
                            .map(|kv| {
                                let k = kv.split('=').next().unwrap_or("");
                                if is_secret_param(k) {
                                    format!("{k}=***")
                                } else {
                                    kv.to_string()
                                }
                            })
                            .collect();
                        write!(f, "jsonl+{base}?{}", keys.join("&"))
                    }
                    None => write!(f, "jsonl+{raw}"),
                }
            }
            SourceAddress::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

impl fmt::Debug for SourceAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Debug for DbAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.display("db", f)
    }
}

impl fmt::Debug for HttpAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", redact_raw(&self.url))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_database_addresses() {
        let a =
            SourceAddress::parse("postgres://app@db.example:6543/shop?sslmode=require").unwrap();
        let SourceAddress::Postgres(d) = &a else {
            panic!()
        };
        assert_eq!(d.user.as_deref(), Some("app"));
        assert_eq!(d.host.as_deref(), Some("db.example"));
        assert_eq!(d.port, Some(6543));
        assert_eq!(d.database, "shop");
        assert_eq!(d.params["sslmode"], "require");
        assert_eq!(
            a.to_string(),
            "postgres://app@db.example:6543/shop?sslmode=require"
        );

        let a = SourceAddress::parse("mysql://root:s3cr%40t@[::1]:3307/my%20db").unwrap();
        let SourceAddress::Mysql(d) = &a else {
            panic!()
        };
        assert_eq!(d.password.as_deref(), Some("s3cr@t"));
        assert_eq!(d.host.as_deref(), Some("::1"));
        assert_eq!(d.database, "my db");
        assert!(a.has_password());
        let shown = a.to_string();
        assert!(!shown.contains("s3cr"), "{shown}");
        assert_eq!(shown, "mysql://root:***@[::1]:3307/my%20db");

        let a = SourceAddress::parse("postgresql:///app?host=/run/postgresql").unwrap();
        let SourceAddress::Postgres(d) = &a else {
            panic!()
        };
        assert_eq!(d.host, None);
        assert_eq!(d.params["host"], "/run/postgresql");
    }

    #[test]
    fn other_addresses() {
        assert_eq!(
            SourceAddress::parse("sqlite:///var/lib/app.db").unwrap(),
            SourceAddress::Sqlite("/var/lib/app.db".into())
        );
        assert!(SourceAddress::parse("sqlite://relative.db").is_err());
        assert_eq!(
            SourceAddress::parse("/home/u").unwrap(),
            SourceAddress::Path("/home/u".into())
        );
        let a = SourceAddress::parse("jsonl+https://u:pw@events.example/feed?token=abc&since=3")
            .unwrap();
        let SourceAddress::Jsonl(h) = &a else {
            panic!()
        };
        assert_eq!(h.url, "https://u:pw@events.example/feed?token=abc&since=3");
        assert_eq!(
            a.to_string(),
            "jsonl+https://u:***@events.example/feed?token=***&since=3"
        );
        assert!(SourceAddress::parse("ftp://x/y").is_err());
    }

    #[test]
    fn errors_never_show_the_password() {
        let e = SourceAddress::parse("postgres://u:hunter2@h:notaport/db")
            .unwrap_err()
            .to_string();
        assert!(e.contains("notaport") && !e.contains("hunter2"), "{e}");
        let e = SourceAddress::parse("postgres://u:hunter2@h:5432")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no database") && !e.contains("hunter2"), "{e}");
    }
}
