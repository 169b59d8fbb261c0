//! Where a tenant's database and event-stream connections may go.
//!
//! An admin allows hosts per tenant: a name (`db.internal`), an address
//! (`10.1.2.3`, `fd00::5`), a network (`10.0.0.0/8`), each optionally with a
//! port (`db.internal:5432`, `[fd00::5]:5432`), or `*`: any host whose
//! addresses are all public. A name is resolved once, every address it
//! resolves to is checked, and the connection is then made to the checked
//! address ([`Pinned`]), so a DNS answer that changes between the check and
//! the connection (rebinding) cannot redirect it.
//!
//! Invariant: loopback, link-local (169.254.0.0/16: cloud metadata),
//! private, unique-local, CGNAT, multicast and unspecified addresses are
//! reached only through a rule that names the host, its address or its
//! network — never through `*`.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

/// One allowed host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostRule {
    /// `*`: any host, public addresses only.
    AnyPublic { port: Option<u16> },
    /// A host name, compared case-insensitively with the address's.
    Name { name: String, port: Option<u16> },
    /// An address or network.
    Net {
        addr: IpAddr,
        prefix: u8,
        port: Option<u16>,
    },
}

impl HostRule {
    /// `*`, `*:5432`, `db.internal`, `db.internal:5432`, `10.0.0.0/8`,
    /// `10.1.2.3:3306`, `[fd00::1]:5432`, `fd00::/8`.
    pub fn parse(text: &str) -> Result<HostRule, String> {
        let t = text.trim();
        let bad = || {
            format!(
                "{t:?}: a host name, an address, a network (10.0.0.0/8) or *, with an optional :PORT"
            )
        };
        if t.is_empty() || t.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(bad());
        }
        let (host, port) = split_port(t).ok_or_else(bad)?;
        if host == "*" {
            return Ok(HostRule::AnyPublic { port });
        }
        if let Some((a, p)) = host.split_once('/') {
            let addr: IpAddr = a.parse().map_err(|_| bad())?;
            let prefix: u8 = p.parse().map_err(|_| bad())?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            if prefix > max {
                return Err(bad());
            }
            return Ok(HostRule::Net { addr, prefix, port });
        }
        if let Ok(addr) = host.parse::<IpAddr>() {
            let prefix = if addr.is_ipv4() { 32 } else { 128 };
            return Ok(HostRule::Net { addr, prefix, port });
        }
        let valid_name = host.len() <= 253
            && host.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if !valid_name {
            return Err(bad());
        }
        Ok(HostRule::Name {
            name: host.to_ascii_lowercase(),
            port,
        })
    }

    fn port(&self) -> Option<u16> {
        match self {
            HostRule::AnyPublic { port }
            | HostRule::Name { port, .. }
            | HostRule::Net { port, .. } => *port,
        }
    }
}

impl std::fmt::Display for HostRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let port = |f: &mut std::fmt::Formatter<'_>, p: &Option<u16>| match p {
            Some(p) => write!(f, ":{p}"),
            None => Ok(()),
        };
        match self {
            HostRule::AnyPublic { port: p } => {
                f.write_str("*")?;
                port(f, p)
            }
            HostRule::Name { name, port: p } => {
                f.write_str(name)?;
                port(f, p)
            }
            HostRule::Net {
                addr,
                prefix,
                port: p,
            } => {
                let full = if addr.is_ipv4() { 32 } else { 128 };
                match (addr, p) {
                    (IpAddr::V6(_), Some(_)) if *prefix == full => write!(f, "[{addr}]")?,
                    _ if *prefix == full => write!(f, "{addr}")?,
                    _ => write!(f, "{addr}/{prefix}")?,
                }
                port(f, p)
            }
        }
    }
}

/// `host[:port]`, `[v6][:port]`, or a bare v6 address / network.
fn split_port(t: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = t.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        return match after.strip_prefix(':') {
            Some(p) => Some((h, Some(p.parse().ok()?))),
            None if after.is_empty() => Some((h, None)),
            None => None,
        };
    }
    if t.matches(':').count() > 1 {
        return Some((t, None)); // a bare IPv6 address or network
    }
    match t.rsplit_once(':') {
        Some((h, p)) => Some((h, Some(p.parse().ok()?))),
        None => Some((t, None)),
    }
}

/// Whether `ip` is an address anyone on the internet could reach: not
/// loopback, link-local, private, unique-local, shared (CGNAT),
/// documentation, benchmarking, multicast, broadcast or unspecified.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64.0.0/10
                || (o[0] == 192 && o[1] == 0 && o[2] == 0) // 192.0.0.0/24
                || (o[0] == 198 && (o[1] & 0xfe) == 18) // 198.18.0.0/15
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link local
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x0064 && s[1] == 0xff9b)) // NAT64 (embeds any v4)
        }
    }
}

fn in_net(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - prefix as u32)
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - prefix as u32)
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// A connection's destination after the check: the name (for TLS and
/// messages) and the one address to connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pinned {
    pub host: String,
    pub addr: SocketAddr,
}

/// Why a destination is refused (words for the tenant; no detail about
/// what is listening where).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// Whether `host:port` is allowed by name alone (before resolving): some
/// rule could admit it. Used when a source is defined.
pub fn allowed_by_name(rules: &[HostRule], host: &str, port: u16) -> Result<(), Refused> {
    let host_l = host.trim_matches(['[', ']']).to_ascii_lowercase();
    let literal: Option<IpAddr> = host_l.parse().ok();
    let ok = rules.iter().any(|r| {
        r.port().is_none_or(|p| p == port)
            && match r {
                HostRule::AnyPublic { .. } => literal.is_none_or(is_public),
                HostRule::Name { name, .. } => *name == host_l,
                HostRule::Net { addr, prefix, .. } => {
                    literal.is_some_and(|ip| in_net(ip, *addr, *prefix))
                }
            }
    });
    if ok {
        Ok(())
    } else {
        Err(Refused(format!(
            "{host}:{port} is not among the hosts this tenant may connect to"
        )))
    }
}

/// Check every address `resolved` for `host:port` against `rules` and pick
/// the one to connect to. Pure: the caller resolves.
pub fn check_resolved(
    rules: &[HostRule],
    host: &str,
    port: u16,
    resolved: &[IpAddr],
) -> Result<Pinned, Refused> {
    let host_l = host.trim_matches(['[', ']']).to_ascii_lowercase();
    if resolved.is_empty() {
        return Err(Refused(format!("{host} does not resolve to any address")));
    }
    for ip in resolved {
        let ok = rules.iter().any(|r| {
            r.port().is_none_or(|p| p == port)
                && match r {
                    HostRule::AnyPublic { .. } => is_public(*ip),
                    // a named host: whatever it resolves to (the admin named it)
                    HostRule::Name { name, .. } => *name == host_l,
                    HostRule::Net { addr, prefix, .. } => in_net(*ip, *addr, *prefix),
                }
        });
        if !ok {
            return Err(Refused(if is_public(*ip) {
                format!("{host}:{port} is not among the hosts this tenant may connect to")
            } else {
                format!(
                    "{host} resolves to a loopback, private or link-local address, which this \
                     tenant may not connect to"
                )
            }));
        }
    }
    Ok(Pinned {
        host: host.to_string(),
        addr: SocketAddr::new(resolved[0], port),
    })
}

/// Resolve `host` (blocking) and [`check_resolved`].
pub fn resolve_checked(rules: &[HostRule], host: &str, port: u16) -> Result<Pinned, Refused> {
    let bare = host.trim_matches(['[', ']']);
    let resolved: Vec<IpAddr> = match (bare, port).to_socket_addrs() {
        Ok(it) => {
            let mut v: Vec<IpAddr> = it.map(|a| a.ip()).collect();
            v.dedup();
            v
        }
        Err(_) => return Err(Refused(format!("{host} cannot be resolved"))),
    };
    check_resolved(rules, host, port, &resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(t: &[&str]) -> Vec<HostRule> {
        t.iter().map(|r| HostRule::parse(r).unwrap()).collect()
    }

    #[test]
    fn rules_parse_and_print() {
        for t in [
            "*",
            "*:5432",
            "db.internal",
            "db.internal:5432",
            "10.0.0.0/8",
            "10.1.2.3:3306",
            "[fd00::1]:5432",
            "fd00::/8",
        ] {
            assert_eq!(HostRule::parse(t).unwrap().to_string(), t, "{t}");
        }
        for bad in [
            "",
            "a b",
            "x:y",
            "10.0.0.0/40",
            "db_internal",
            "[::1",
            "a\0b",
        ] {
            assert!(HostRule::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn private_addresses_need_a_rule_that_names_them() {
        let any = rules(&["*"]);
        for ip in [
            "127.0.0.1",
            "10.0.0.5",
            "169.254.169.254",
            "192.168.1.1",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "0.0.0.0",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(!is_public(ip), "{ip}");
            let e = check_resolved(&any, "db.example.com", 5432, &[ip]).unwrap_err();
            assert!(e.0.contains("private"), "{e}");
        }
        let public: IpAddr = "93.184.216.34".parse().unwrap();
        assert!(check_resolved(&any, "db.example.com", 5432, &[public]).is_ok());
        // one bad address among good ones refuses the name
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(check_resolved(&any, "db.example.com", 5432, &[public, lo]).is_err());
        // named, or by network
        let named = rules(&["localhost:5432", "10.0.0.0/8"]);
        assert!(check_resolved(&named, "localhost", 5432, &[lo]).is_ok());
        assert!(check_resolved(&named, "localhost", 5433, &[lo]).is_err());
        let ten: IpAddr = "10.9.8.7".parse().unwrap();
        assert!(check_resolved(&named, "db.x", 1, &[ten]).is_ok());
        assert!(check_resolved(&named, "db.x", 1, &[lo]).is_err());
        // nothing allowed
        assert!(check_resolved(&[], "db.example.com", 5432, &[public]).is_err());
    }

    #[test]
    fn names_are_checked_before_resolving() {
        let r = rules(&["db.internal:5432", "*:443"]);
        assert!(allowed_by_name(&r, "db.internal", 5432).is_ok());
        assert!(allowed_by_name(&r, "DB.internal", 5432).is_ok());
        assert!(allowed_by_name(&r, "db.internal", 5433).is_err());
        assert!(allowed_by_name(&r, "api.example.com", 443).is_ok());
        assert!(allowed_by_name(&r, "127.0.0.1", 443).is_err());
    }
}
