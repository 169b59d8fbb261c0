//! The trust boundary between tenants and the host, in one place.
//!
//! Every target a source or a restore names — a path, a database address,
//! an event-stream URL, a command — is checked here against who set it:
//!
//! - an **admin** (trusted with the host) may name any path, host, URL or
//!   named command, except the server's own files (data directory, catalog,
//!   server key, storage), which no one may name;
//! - an **operator** only what the tenant's [`TenantPolicy`] allows: paths
//!   beneath its directory roots, database hosts it lists (private and
//!   loopback addresses only when named), URLs under its prefixes, and the
//!   named commands it lists;
//! - the **server** itself (a default restore target it chose) is not
//!   checked.
//!
//! The same check runs when a source or restore is defined (the API answers
//! 403 `refused_by_policy`) and again when its job starts, before any I/O,
//! with the policy as it is then ([`check_source`] → [`Checked`]); the job
//! then enforces what the check decided: paths through
//! `holdfast_confine::confine` (the kernel refuses symlinks and escapes),
//! connections through `holdfast_confine::egress` (resolved, checked,
//! pinned). Free-text commands never come from the API: a command source
//! names a command from the server's configuration file.
//!
//! Everything here is pure: text and configuration in, a decision out.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use crate::i18n::Msg;

use holdfast_confine::confine::Confined;
use holdfast_confine::egress::{self, HostRule};
use holdfast_sources::source_url::{DbAddress, SourceAddress};
use serde::{Deserialize, Serialize};

/// What an admin allows one tenant's operators (stored in the catalog).
/// The default allows nothing that reaches the host.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenantPolicy {
    /// Absolute directories under which the tenant's directory and SQLite
    /// sources and restore targets may lie.
    pub directory_roots: Vec<String>,
    /// Database hosts (`db.internal`, `db.internal:5432`, `10.0.0.0/8`,
    /// `*` for any public address).
    pub database_hosts: Vec<String>,
    /// URL prefixes for event streams (`https://api.example.com/events/`).
    pub url_prefixes: Vec<String>,
    /// Names of commands from the server's `[commands]` the operators may
    /// use as command sources.
    pub commands: Vec<String>,
    /// Hosts the notification channels an operator defines may reach, in
    /// `database_hosts`' form (absent: any host whose addresses are all
    /// public — never a loopback, private or link-local one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notification_hosts: Option<Vec<String>>,
    /// Quotas (absent: none). Live sources at most.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_sources: Option<u32>,
    /// Bytes the tenant's repository may hold before new backups are
    /// refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_repository_bytes: Option<u64>,
    /// The shortest time between two runs a source's schedule may have.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_schedule_minutes: Option<u32>,
}

/// A tenant's quota reached: which field, and the numbers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct QuotaExceeded {
    pub field: String,
    pub message: Msg,
}

fn quota(field: &str, message: impl Into<Msg>) -> QuotaExceeded {
    QuotaExceeded {
        field: field.to_string(),
        message: message.into(),
    }
}

impl TenantPolicy {
    /// Another source may be created when the tenant has `live` now.
    pub fn check_source_count(&self, live: usize) -> Result<(), QuotaExceeded> {
        match self.max_sources {
            Some(max) if live as u64 >= max as u64 => Err(quota(
                "name",
                Msg::new("msg.quota.sources")
                    .with("live", live)
                    .with("max", max),
            )),
            _ => Ok(()),
        }
    }

    /// A schedule whose runs are `shortest` apart at the closest (None: it
    /// never runs twice) fits the quota.
    pub fn check_schedule(
        &self,
        shortest: Option<jiff::SignedDuration>,
    ) -> Result<(), QuotaExceeded> {
        match (self.min_schedule_minutes, shortest) {
            (Some(min), Some(gap)) if gap.as_secs() < min as i64 * 60 => Err(quota(
                "schedule",
                Msg::new("msg.quota.schedule")
                    .with("minutes", gap.as_secs() / 60)
                    .with("min", min),
            )),
            _ => Ok(()),
        }
    }

    /// A new backup may start when the repository holds `used` bytes.
    pub fn check_repository_bytes(&self, used: u64) -> Result<(), QuotaExceeded> {
        match self.max_repository_bytes {
            Some(max) if used >= max => Err(quota(
                "source_id",
                Msg::new("msg.quota.bytes")
                    .with("used", used)
                    .with("max", max),
            )),
            _ => Ok(()),
        }
    }
}

/// Who set a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Definer {
    Admin,
    Operator,
    /// The server chose it (a default restore directory).
    Server,
}

impl Definer {
    pub fn as_str(self) -> &'static str {
        match self {
            Definer::Admin => "admin",
            Definer::Operator => "operator",
            Definer::Server => "server",
        }
    }

    /// Unknown text is the least trusted.
    pub fn parse(s: &str) -> Definer {
        match s {
            "admin" => Definer::Admin,
            "server" => Definer::Server,
            _ => Definer::Operator,
        }
    }
}

/// The server's side of the boundary (from its configuration).
#[derive(Debug, Clone, Default)]
pub struct HostFacts {
    /// No target may be at, inside or above these: the data directory,
    /// the storage, the catalog file, the server key.
    pub protected: Vec<PathBuf>,
    /// Named commands: name → shell text.
    pub commands: BTreeMap<String, String>,
}

/// A target refused: which field, and why (words for the caller; nothing
/// about the host beyond what the caller named).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Refusal {
    pub field: String,
    pub message: Msg,
}

fn refuse(field: &str, message: impl Into<Msg>) -> Refusal {
    Refusal {
        field: field.to_string(),
        message: message.into(),
    }
}

/// What a job must enforce for a checked target.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Checked {
    /// Paths: the root they are confined beneath (operators).
    pub confine: Option<PathBuf>,
    /// Connections: the rules every resolved address must pass
    /// (operators); `None`: unchecked (admins).
    pub hosts: Option<Vec<HostRule>>,
    /// A command source: the shell text of the named command.
    pub command: Option<String>,
}

impl Checked {
    /// What the source layer enforces for this target.
    pub fn confinement(&self) -> holdfast_sources::spec::Confinement {
        holdfast_sources::spec::Confinement {
            root: self.confine.clone(),
            hosts: self.hosts.clone(),
        }
    }
}

impl TenantPolicy {
    /// Check a policy before it is stored: roots absolute, clean and clear
    /// of the server's files; hosts and prefixes well-formed; commands
    /// named in the configuration.
    pub fn validate(&self, host: &HostFacts) -> Result<(), Refusal> {
        for (i, r) in self.directory_roots.iter().enumerate() {
            let field = format!("directory_roots[{i}]");
            let p = clean_path(&field, r)?;
            if p == Path::new("/") {
                return Err(refuse(&field, Msg::new("msg.policy.whole_fs")));
            }
            not_protected(&field, &p, host)?;
        }
        for (i, h) in self.database_hosts.iter().enumerate() {
            HostRule::parse(h).map_err(|m| refuse(&format!("database_hosts[{i}]"), m))?;
        }
        for (i, h) in self.notification_hosts.iter().flatten().enumerate() {
            HostRule::parse(h).map_err(|m| refuse(&format!("notification_hosts[{i}]"), m))?;
        }
        for (i, u) in self.url_prefixes.iter().enumerate() {
            prefix_host(u).ok_or_else(|| {
                refuse(
                    &format!("url_prefixes[{i}]"),
                    Msg::new("msg.policy.prefix_form"),
                )
            })?;
        }
        for (i, c) in self.commands.iter().enumerate() {
            if !host.commands.contains_key(c) {
                return Err(refuse(
                    &format!("commands[{i}]"),
                    Msg::new("msg.policy.unknown_command").with("command", format!("{c:?}")),
                ));
            }
        }
        Ok(())
    }

    /// What an operator's notification channel may reach.
    pub fn notification_rules(&self) -> Vec<HostRule> {
        match &self.notification_hosts {
            Some(hosts) => hosts
                .iter()
                .filter_map(|h| HostRule::parse(h).ok())
                .collect(),
            None => vec![HostRule::AnyPublic { port: None }],
        }
    }

    fn host_rules(&self) -> Vec<HostRule> {
        self.database_hosts
            .iter()
            .filter_map(|h| HostRule::parse(h).ok())
            .collect()
    }
}

/// An absolute path in plain components: no `.`/`..`, no NUL or control
/// characters, at most 4096 bytes.
fn clean_path(field: &str, text: &str) -> Result<PathBuf, Refusal> {
    if text.len() > 4096 || text.chars().any(|c| c.is_control()) {
        return Err(refuse(field, Msg::new("msg.policy.path_form")));
    }
    let p = Path::new(text);
    if !p.is_absolute() {
        return Err(refuse(field, Msg::new("msg.policy.absolute")));
    }
    // by the text: `Path::components` silently drops `.` in the middle
    if text.split('/').any(|seg| seg == "." || seg == "..")
        || p.components()
            .any(|c| !matches!(c, Component::RootDir | Component::Normal(_)))
    {
        return Err(refuse(field, Msg::new("msg.policy.dots")));
    }
    Ok(p.components().collect())
}

/// Neither inside nor above one of the server's own files.
fn not_protected(field: &str, p: &Path, host: &HostFacts) -> Result<(), Refusal> {
    for prot in &host.protected {
        if p.starts_with(prot) {
            return Err(refuse(field, Msg::new("msg.policy.server_data")));
        }
        if prot.starts_with(p) {
            return Err(refuse(field, Msg::new("msg.policy.contains_server_data")));
        }
    }
    Ok(())
}

/// A path target: clean, clear of the server's files, and for operators
/// beneath one of the tenant's roots (whose root it returns).
fn check_path(
    field: &str,
    text: &str,
    host: &HostFacts,
    policy: &TenantPolicy,
    definer: Definer,
) -> Result<Option<PathBuf>, Refusal> {
    let p = clean_path(field, text)?;
    if definer == Definer::Server {
        return Ok(None);
    }
    not_protected(field, &p, host)?;
    if definer == Definer::Admin {
        return Ok(None);
    }
    for root in &policy.directory_roots {
        let root: PathBuf = Path::new(root).components().collect();
        if Confined::new(&root, &p).is_some() {
            return Ok(Some(root));
        }
    }
    Err(refuse(
        field,
        if policy.directory_roots.is_empty() {
            Msg::new("msg.policy.no_roots").with("path", text)
        } else {
            Msg::new("msg.policy.not_beneath")
                .with("path", text)
                .with("roots", policy.directory_roots.join(", "))
        },
    ))
}

/// Query parameters an operator may set on a database address: none that
/// names a file or another host.
const TENANT_DB_PARAMS: &[&str] = &[
    "sslmode",
    "connect_timeout",
    "application_name",
    "target_session_attrs",
];

fn check_db(
    field: &str,
    db: &DbAddress,
    default_port: u16,
    policy: &TenantPolicy,
) -> Result<Vec<HostRule>, Refusal> {
    for k in db.params.keys() {
        if !TENANT_DB_PARAMS.contains(&k.as_str()) {
            return Err(refuse(
                field,
                Msg::new("msg.policy.db_param")
                    .with("param", format!("{k:?}"))
                    .with("allowed", TENANT_DB_PARAMS.join(", ")),
            ));
        }
    }
    let Some(h) = db.host.as_deref().filter(|h| !h.starts_with('/')) else {
        return Err(refuse(field, Msg::new("msg.policy.db_socket")));
    };
    let rules = policy.host_rules();
    let port = db.port.unwrap_or(default_port);
    egress::allowed_by_name(&rules, h, port).map_err(|_| {
        refuse(
            field,
            Msg::new("msg.policy.host").with("host", format!("{h}:{port}")),
        )
    })?;
    Ok(rules)
}

/// The host and port of an allowed URL prefix (`http://` or `https://`,
/// no user info).
fn prefix_host(prefix: &str) -> Option<(String, u16)> {
    let addr = holdfast_sources::source_url::HttpAddress {
        url: prefix.to_string(),
        has_password: false,
        pinned: None,
    };
    let (host, port) = addr.host_port()?;
    let scheme = prefix.split_once("://")?.0.to_ascii_lowercase();
    if !matches!(scheme.as_str(), "http" | "https") || prefix.contains('@') {
        return None;
    }
    Some((host, port))
}

/// Whether `url` lies under `prefix`, at a boundary (so that `…/events`
/// does not admit `…/events-admin`, nor `https://a.example` admit
/// `https://a.example.evil.com`).
fn under_prefix(url: &str, prefix: &str) -> bool {
    let Some(rest) = url.strip_prefix(prefix) else {
        return false;
    };
    prefix.ends_with('/') || rest.is_empty() || rest.starts_with(['/', '?', '#'])
}

fn check_url(field: &str, url: &str, policy: &TenantPolicy) -> Result<Vec<HostRule>, Refusal> {
    // the HTTP client normalises `.`/`..` segments away: a URL that has
    // any (or their escapes, or a backslash) could leave its prefix
    let lower = url.to_ascii_lowercase();
    let path = lower.split(['?', '#']).next().unwrap_or("");
    if path.contains('\\')
        || path.contains("%2e")
        || path.contains("%2f")
        || path.contains("%5c")
        || path.split('/').skip(3).any(|seg| seg == "." || seg == "..")
    {
        return Err(refuse(field, Msg::new("msg.policy.url_dots")));
    }
    let Some(prefix) = policy.url_prefixes.iter().find(|p| under_prefix(url, p)) else {
        return Err(refuse(
            field,
            if policy.url_prefixes.is_empty() {
                Msg::new("msg.policy.no_prefixes")
            } else {
                Msg::new("msg.policy.not_under_prefix")
                    .with("prefixes", policy.url_prefixes.join(", "))
            },
        ));
    };
    let (host, port) =
        prefix_host(prefix).ok_or_else(|| refuse(field, Msg::new("msg.policy.bad_prefix")))?;
    // the admin named this host: its address may be private
    Ok(vec![HostRule::Name {
        name: host.to_ascii_lowercase(),
        port: Some(port),
    }])
}

/// Check a notification channel's URL before it is stored: its scheme for
/// its kind (`smtp`/`smtps` for e-mail, `http`/`https` otherwise), and, for
/// an operator's channel, its host against the tenant's
/// `notification_hosts` (by name here; every resolved address again at
/// each delivery). What the sender must enforce: the rules, or `None`.
pub fn check_channel(
    policy: &TenantPolicy,
    definer: Definer,
    kind: &str,
    url: &str,
) -> Result<Option<Vec<HostRule>>, Refusal> {
    let field = "url";
    let (host, port) = channel_destination(kind, url).map_err(|schemes| {
        refuse(
            field,
            Msg::new("msg.policy.channel_url").with("schemes", schemes.join(", ")),
        )
    })?;
    if definer == Definer::Admin {
        return Ok(None);
    }
    let rules = policy.notification_rules();
    egress::allowed_by_name(&rules, &host, port).map_err(|r| refuse(field, Msg::text(r.0)))?;
    Ok(Some(rules))
}

/// Where a channel URL leads: its host and port, when it has the form its
/// kind takes — `smtp`/`smtps` for e-mail, `http`/`https` otherwise, a
/// host, at most 2048 characters, no spaces or control characters; the
/// schemes it may have when not.
pub fn channel_destination(
    kind: &str,
    url: &str,
) -> Result<(String, u16), &'static [&'static str]> {
    let schemes: &'static [&'static str] = if kind == "email" {
        &["smtp", "smtps"]
    } else {
        &["http", "https"]
    };
    if url.len() > 2048 || url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(schemes);
    }
    let parsed = reqwest::Url::parse(url).map_err(|_| schemes)?;
    if !schemes.contains(&parsed.scheme()) {
        return Err(schemes);
    }
    let host = parsed
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or(schemes)?
        .to_string();
    let port = parsed
        .port_or_known_default()
        .unwrap_or(if parsed.scheme() == "smtps" { 465 } else { 587 });
    Ok((host, port))
}

/// Check a source's target (see the module comment).
pub fn check_source(
    host: &HostFacts,
    policy: &TenantPolicy,
    definer: Definer,
    kind: &str,
    target: &str,
) -> Result<Checked, Refusal> {
    let field = "target";
    if kind == "command" {
        let Some(text) = host.commands.get(target) else {
            return Err(refuse(
                field,
                if host.commands.is_empty() {
                    Msg::new("msg.policy.no_commands")
                } else {
                    Msg::new("msg.policy.command_one_of").with(
                        "names",
                        host.commands.keys().cloned().collect::<Vec<_>>().join(", "),
                    )
                },
            ));
        };
        if definer == Definer::Operator && !policy.commands.iter().any(|c| c == target) {
            return Err(refuse(
                field,
                Msg::new("msg.policy.command_denied").with("command", format!("{target:?}")),
            ));
        }
        return Ok(Checked {
            command: Some(text.clone()),
            ..Checked::default()
        });
    }
    if kind == "directory" {
        let confine = check_path(field, target, host, policy, definer)?;
        return Ok(Checked {
            confine,
            ..Checked::default()
        });
    }
    let addr = SourceAddress::parse(target).map_err(|e| refuse(field, e.to_string()))?;
    check_address(field, &addr, host, policy, definer)
}

fn check_address(
    field: &str,
    addr: &SourceAddress,
    host: &HostFacts,
    policy: &TenantPolicy,
    definer: Definer,
) -> Result<Checked, Refusal> {
    match addr {
        SourceAddress::Sqlite(p) | SourceAddress::Path(p) => {
            let text = p
                .to_str()
                .ok_or_else(|| refuse(field, Msg::new("msg.policy.utf8")))?;
            let confine = check_path(field, text, host, policy, definer)?;
            Ok(Checked {
                confine,
                ..Checked::default()
            })
        }
        _ if definer != Definer::Operator => Ok(Checked::default()),
        SourceAddress::Postgres(db) => Ok(Checked {
            hosts: Some(check_db(field, db, 5432, policy)?),
            ..Checked::default()
        }),
        SourceAddress::Mysql(db) => Ok(Checked {
            hosts: Some(check_db(field, db, 3306, policy)?),
            ..Checked::default()
        }),
        SourceAddress::Jsonl(h) => Ok(Checked {
            hosts: Some(check_url(field, &h.url, policy)?),
            ..Checked::default()
        }),
    }
}

/// Check a restore's target. Operators may restore a directory backup in
/// place (`/`: every path back where the source's snapshot had it) when
/// the source itself is theirs to use, or into a new path beneath their
/// roots; database and event-stream backups only on the source's own
/// server (the source's stored credentials go to the target), under the
/// policy's hosts and prefixes.
#[allow(clippy::too_many_arguments)]
pub fn check_restore(
    host: &HostFacts,
    policy: &TenantPolicy,
    definer: Definer,
    source_definer: Definer,
    source_kind: &str,
    source_target: &str,
    target: &str,
) -> Result<Checked, Refusal> {
    let field = "target";
    // a default target the server chose beside a database or stream source
    // reaches what the source reaches: it is held to the source's own
    // definer (an operator's source to its policy, hosts checked and pinned)
    let definer = match (definer, source_kind) {
        (Definer::Server, "directory" | "command") => Definer::Server,
        (Definer::Server, _) => source_definer,
        (d, _) => d,
    };
    match source_kind {
        "directory" | "command" => {
            if target == "/" && source_kind == "directory" {
                // in place: writes only where the source's snapshot was
                check_source(host, policy, definer, source_kind, source_target)?;
                return Ok(Checked::default());
            }
            let confine = check_path(field, target, host, policy, definer)?;
            Ok(Checked {
                confine,
                ..Checked::default()
            })
        }
        _ => {
            let addr = SourceAddress::parse(target).map_err(|e| refuse(field, e.to_string()))?;
            let checked = check_address(field, &addr, host, policy, definer)?;
            if definer == Definer::Operator {
                let src = SourceAddress::parse(source_target)
                    .map_err(|e| refuse(field, e.to_string()))?;
                if !same_server(&src, &addr) {
                    return Err(refuse(field, Msg::new("msg.policy.same_server")));
                }
            }
            Ok(checked)
        }
    }
}

/// Whether two addresses reach the same server as the same user.
fn same_server(a: &SourceAddress, b: &SourceAddress) -> bool {
    match (a, b) {
        (SourceAddress::Postgres(x), SourceAddress::Postgres(y))
        | (SourceAddress::Mysql(x), SourceAddress::Mysql(y)) => {
            x.host.as_deref().map(str::to_ascii_lowercase)
                == y.host.as_deref().map(str::to_ascii_lowercase)
                && x.port == y.port
                && x.user == y.user
                // the credentials travel as the source's settings say
                && x.params.get("sslmode") == y.params.get("sslmode")
        }
        (SourceAddress::Sqlite(_), SourceAddress::Sqlite(_)) => true,
        (SourceAddress::Jsonl(x), SourceAddress::Jsonl(y)) => {
            let origin = |h: &holdfast_sources::source_url::HttpAddress| {
                let scheme = h.url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
                (
                    scheme,
                    h.host_port().map(|(h, p)| (h.to_ascii_lowercase(), p)),
                )
            };
            origin(x) == origin(y)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> HostFacts {
        HostFacts {
            protected: vec![PathBuf::from("/var/lib/holdfast")],
            commands: [("redis".to_string(), "redis-cli --rdb -".to_string())].into(),
        }
    }

    fn policy() -> TenantPolicy {
        TenantPolicy {
            directory_roots: vec!["/srv/tenants/a".into()],
            database_hosts: vec!["db.internal:5432".into(), "*".into()],
            url_prefixes: vec!["https://api.example.com/events/".into()],
            commands: vec!["redis".into()],
            ..Default::default()
        }
    }

    #[test]
    fn operators_stay_inside_their_roots() {
        let (h, p, op) = (host(), policy(), Definer::Operator);
        let ok = check_source(&h, &p, op, "directory", "/srv/tenants/a/www").unwrap();
        assert_eq!(ok.confine, Some(PathBuf::from("/srv/tenants/a")));
        for bad in [
            "/etc",
            "/",
            "/srv/tenants/b",
            "/srv/tenants/ab",
            "/srv/tenants/a/../b",
            "/srv/tenants/a/./x",
            "srv/tenants/a",
            "/srv/tenants/a/x\0y",
            "/srv/tenants/a/\u{1b}[31m",
            "/var/lib/holdfast",
        ] {
            let e = check_source(&h, &p, op, "directory", bad).unwrap_err();
            assert_eq!(e.field, "target", "{bad:?}");
        }
        // sqlite files the same way
        assert!(check_source(&h, &p, op, "sqlite", "sqlite:///srv/tenants/a/app.db").is_ok());
        assert!(
            check_source(
                &h,
                &p,
                op,
                "sqlite",
                "sqlite:///var/lib/holdfast/catalog.db"
            )
            .is_err()
        );
        // nothing allowed by default
        let none = TenantPolicy::default();
        assert!(check_source(&h, &none, op, "directory", "/srv/tenants/a").is_err());
    }

    #[test]
    fn the_servers_own_files_are_refused_to_everyone() {
        let (h, p) = (host(), policy());
        for who in [Definer::Admin, Definer::Operator] {
            for bad in [
                "/var/lib/holdfast",
                "/var/lib/holdfast/repos/x",
                "/var/lib",
                "/",
            ] {
                let e = check_source(&h, &p, who, "directory", bad).unwrap_err();
                assert!(
                    e.message.to_string().contains("server's own data"),
                    "{bad}: {e}"
                );
            }
            let e = check_source(
                &h,
                &p,
                who,
                "sqlite",
                "sqlite:///var/lib/holdfast/catalog.db",
            )
            .unwrap_err();
            assert!(e.message.to_string().contains("server's own data"), "{e}");
        }
        // an admin may name any other path
        assert!(check_source(&h, &p, Definer::Admin, "directory", "/etc").is_ok());
    }

    #[test]
    fn commands_are_named_never_free_text() {
        let (h, p) = (host(), policy());
        let c = check_source(&h, &p, Definer::Admin, "command", "redis").unwrap();
        assert_eq!(c.command.as_deref(), Some("redis-cli --rdb -"));
        for who in [Definer::Admin, Definer::Operator] {
            assert!(check_source(&h, &p, who, "command", "id; head -2 /etc/shadow").is_err());
        }
        let mut q = policy();
        q.commands.clear();
        assert!(check_source(&h, &q, Definer::Operator, "command", "redis").is_err());
        assert!(check_source(&h, &q, Definer::Admin, "command", "redis").is_ok());
    }

    #[test]
    fn database_hosts_and_urls() {
        let (h, p, op) = (host(), policy(), Definer::Operator);
        assert!(check_source(&h, &p, op, "postgres", "postgres://app@db.internal/shop").is_ok());
        // * admits public names; a literal private address is refused
        assert!(check_source(&h, &p, op, "postgres", "postgres://app@db.example.com/shop").is_ok());
        assert!(check_source(&h, &p, op, "postgres", "postgres://app@127.0.0.1/shop").is_err());
        assert!(check_source(&h, &p, op, "postgres", "postgres://app@169.254.169.254/x").is_err());
        // file-naming and socket parameters
        for bad in [
            "postgres://app@db.internal/shop?passfile=/root/.pgpass",
            "postgres://app@db.internal/shop?host=/var/run/postgresql",
            "postgres://app@db.internal/shop?sslrootcert=/etc/shadow",
            "postgres:///shop",
        ] {
            assert!(check_source(&h, &p, op, "postgres", bad).is_err(), "{bad}");
        }
        assert!(
            check_source(
                &h,
                &p,
                op,
                "postgres",
                "postgres://app@db.internal/shop?sslmode=require"
            )
            .is_ok()
        );
        // URLs
        assert!(
            check_source(
                &h,
                &p,
                op,
                "jsonl",
                "jsonl+https://api.example.com/events/all"
            )
            .is_ok()
        );
        for bad in [
            "jsonl+https://api.example.com/events/../admin/x",
            "jsonl+https://api.example.com/events/%2e%2e/admin",
            "jsonl+https://api.example.com/events/..\\admin",
            "jsonl+https://api.example.com/other",
            "jsonl+https://api.example.com.evil.net/events/",
            "jsonl+http://127.0.0.1/events/",
            "jsonl+https://api.example.com@evil.net/events/",
        ] {
            assert!(check_source(&h, &p, op, "jsonl", bad).is_err(), "{bad}");
        }
        assert!(under_prefix("https://a.example/x", "https://a.example"));
        assert!(!under_prefix(
            "https://a.example.evil/x",
            "https://a.example"
        ));
        assert!(!under_prefix(
            "https://a.example/events-admin",
            "https://a.example/events"
        ));
    }

    #[test]
    fn restores() {
        use Definer::{Admin, Operator, Server};
        let (h, p) = (host(), policy());
        let www = "/srv/tenants/a/www";
        let shop = "postgres://app@db.internal/shop";
        let local = "postgres://app@localhost/shop";
        let ev = "jsonl+https://api.example.com/events/all";
        // (who names the target, who defined the source, kind, source, target, allowed)
        for (by, source_by, kind, source, target, ok) in [
            // in place, or a new path beneath a root
            (Operator, Operator, "directory", www, "/", true),
            (Operator, Operator, "directory", "/etc", "/", false),
            (
                Operator,
                Operator,
                "directory",
                www,
                "/srv/tenants/a/r",
                true,
            ),
            (
                Operator,
                Operator,
                "directory",
                www,
                "/srv/tenants/b",
                false,
            ),
            (Operator, Operator, "directory", www, "/x/../y", false),
            // the server's default restore directory
            (
                Server,
                Operator,
                "directory",
                www,
                "/var/lib/holdfast/restores/t/1",
                true,
            ),
            (
                Operator,
                Operator,
                "directory",
                www,
                "/var/lib/holdfast/restores/t/1",
                false,
            ),
            // databases: the source's own server only
            (
                Operator,
                Operator,
                "postgres",
                shop,
                "postgres://app@db.internal/shop_copy",
                true,
            ),
            (
                Operator,
                Operator,
                "postgres",
                shop,
                "postgres://app@db.example.com/shop",
                false,
            ),
            (
                Admin,
                Operator,
                "postgres",
                shop,
                "postgres://app@other/shop",
                true,
            ),
            // a server-chosen database target is held to the source's definer
            (
                Server,
                Operator,
                "postgres",
                local,
                "postgres://app@127.0.0.1/shop_restored",
                false,
            ),
            (
                Server,
                Admin,
                "postgres",
                local,
                "postgres://app@127.0.0.1/shop_restored",
                true,
            ),
            // no downgrade of the connection's security on the source's server
            (
                Operator,
                Operator,
                "postgres",
                "postgres://app@db.internal/shop?sslmode=require",
                "postgres://app@db.internal/x?sslmode=disable",
                false,
            ),
            (
                Operator,
                Operator,
                "jsonl",
                ev,
                "jsonl+https://api.example.com/events/in",
                true,
            ),
            (
                Operator,
                Operator,
                "jsonl",
                ev,
                "jsonl+http://127.0.0.1:9/events/in",
                false,
            ),
        ] {
            let got = check_restore(&h, &p, by, source_by, kind, source, target);
            assert_eq!(got.is_ok(), ok, "{by:?} {source_by:?} {source} -> {target}");
        }
    }

    #[test]
    fn quotas() {
        let q = TenantPolicy {
            max_sources: Some(2),
            max_repository_bytes: Some(1000),
            min_schedule_minutes: Some(60),
            ..Default::default()
        };
        assert!(q.check_source_count(1).is_ok());
        assert_eq!(q.check_source_count(2).unwrap_err().field, "name");
        assert!(q.check_repository_bytes(999).is_ok());
        assert!(q.check_repository_bytes(1000).is_err());
        let mins = |m| Some(jiff::SignedDuration::from_mins(m));
        assert!(q.check_schedule(mins(60)).is_ok());
        assert!(q.check_schedule(None).is_ok());
        let e = q.check_schedule(mins(5)).unwrap_err();
        assert_eq!(e.message.key(), "msg.quota.schedule");
        assert!(e.message.to_string().contains("5 minutes apart"), "{e}");
        // no quota: anything goes
        let none = TenantPolicy::default();
        assert!(none.check_source_count(10_000).is_ok());
        assert!(none.check_schedule(mins(1)).is_ok());
        assert!(none.check_repository_bytes(u64::MAX).is_ok());
    }

    #[test]
    fn policies_are_checked_before_they_are_stored() {
        let h = host();
        assert!(policy().validate(&h).is_ok());
        let roots = |r: &str| TenantPolicy {
            directory_roots: vec![r.into()],
            ..Default::default()
        };
        for (bad, field) in [
            (roots("/"), "directory_roots[0]"),
            (roots("/var"), "directory_roots[0]"),
            (roots("rel"), "directory_roots[0]"),
            (
                TenantPolicy {
                    database_hosts: vec!["a b".into()],
                    ..Default::default()
                },
                "database_hosts[0]",
            ),
            (
                TenantPolicy {
                    url_prefixes: vec!["ftp://x/".into()],
                    ..Default::default()
                },
                "url_prefixes[0]",
            ),
            (
                TenantPolicy {
                    commands: vec!["rm".into()],
                    ..Default::default()
                },
                "commands[0]",
            ),
        ] {
            assert_eq!(bad.validate(&h).unwrap_err().field, field);
        }
    }
}
