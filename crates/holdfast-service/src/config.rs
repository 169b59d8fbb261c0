//! The server's configuration: defaults, then a TOML file (`--config`),
//! then `HOLDFAST_…` environment variables, then command-line flags. An
//! invalid value fails the start with a message naming its key.

use std::path::{Path, PathBuf};

use holdfast_storage::{Location, S3Settings};
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
#[error("configuration: {key}: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

fn bad(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.to_string(),
        message: message.into(),
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub listen: String,
    /// Holds the SQLite catalog, the server key and the tenants' repositories.
    pub data_dir: PathBuf,
    /// `sqlite://PATH` (default: DATA_DIR/catalog.db) or `postgres://…`.
    pub catalog_url: Option<String>,
    /// Catalog connections this node holds at most (default: 2 × cores + 2,
    /// and at least workers + 2).
    pub catalog_connections: Option<u32>,
    /// Where tenants' repositories are created, each under its own id: a
    /// directory (default: DATA_DIR/repos) or `s3:https://HOST/BUCKET/PREFIX`
    /// (credentials from the AWS environment; see `[s3]`).
    pub storage: Option<String>,
    /// How object storage is reached (the AWS environment fills the rest).
    pub s3: S3Config,
    /// Jobs run at once on this node.
    pub workers: usize,
    pub jobs: JobsConfig,
    pub schedule: ScheduleConfig,
    pub retention: RetentionConfig,
    pub verification: VerificationConfig,
    pub notifications: NotificationsConfig,
    pub drills: DrillsConfig,
    /// Largest request body, in bytes (larger: 413).
    pub max_body_bytes: usize,
    /// Named commands for command sources: `name = "shell text"`. A source
    /// names one; the text never comes from the API.
    pub commands: std::collections::BTreeMap<String, String>,
    /// A client must send its request headers (and finish a TLS handshake)
    /// within this many seconds.
    pub header_timeout_seconds: u64,
    /// Failed authentications one client address may make per minute; more
    /// answer 429 until the minute has passed.
    pub auth_failures_per_minute: u32,
    /// Serve HTTPS with this certificate chain and key (PEM files).
    pub tls: Option<TlsConfig>,
}

/// `[s3]`: restic's `-o s3.*` options, for every S3 location the server
/// opens. Credentials are never here: `AWS_ACCESS_KEY_ID` and
/// `AWS_SECRET_ACCESS_KEY` (a systemd `EnvironmentFile`), or `AWS_PROFILE`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    /// The endpoint of `s3://BUCKET/PREFIX` locations.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// auto, dns or path.
    pub bucket_lookup: Option<String>,
    /// md5 (default), crc32c or off.
    pub checksum: Option<String>,
    /// Uploads in flight at once per job.
    pub connections: Option<usize>,
    /// Retries of one request.
    pub retries: Option<usize>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobsConfig {
    /// Attempts per run for transient failures (network, lock held, 5xx).
    pub max_attempts: i64,
    /// Delay before the second attempt; ×4 for each further one.
    pub retry_base_seconds: u64,
    /// A worker holds a job for this long and renews it every quarter.
    pub lease_seconds: u64,
    /// A run that reads nothing for this long is stopped (and retried as
    /// a transient failure).
    pub no_progress_minutes: f64,
    /// A run that takes longer than this is stopped (none by default).
    pub hard_limit_minutes: Option<f64>,
    /// The same two limits for one kind of source: `[jobs.kinds.postgres]`.
    pub kinds: std::collections::BTreeMap<String, KindLimits>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KindLimits {
    pub no_progress_minutes: Option<f64>,
    pub hard_limit_minutes: Option<f64>,
}

impl JobsConfig {
    /// (no progress, hard limit) for a kind of source.
    pub fn limits(&self, kind: &str) -> (std::time::Duration, Option<std::time::Duration>) {
        let k = self.kinds.get(kind);
        let minutes = |m: f64| std::time::Duration::from_secs_f64(m * 60.0);
        let no_progress = k
            .and_then(|k| k.no_progress_minutes)
            .unwrap_or(self.no_progress_minutes);
        let hard = k
            .and_then(|k| k.hard_limit_minutes)
            .or(self.hard_limit_minutes);
        (minutes(no_progress), hard.map(minutes))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleConfig {
    /// The default cron schedule of a new source.
    pub default: String,
    /// Time zone of schedules.
    pub timezone: String,
    /// How often the scheduler looks for due slots, in seconds.
    pub tick_seconds: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Default maximum age of a backup, in days.
    pub max_age_days: u32,
    /// When the retention sweep runs (cron, in the schedule time zone).
    pub cleanup: String,
}

/// `[drills]`: servers that database drills restore into, instead of the
/// source's own (a drill creates and drops a scratch database there). The
/// addresses and password files are the admin's; tenants never name them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DrillsConfig {
    /// `postgres://USER@HOST:PORT/DATABASE` (the database to connect to
    /// for CREATE/DROP DATABASE).
    pub postgres: Option<String>,
    pub postgres_password_file: Option<PathBuf>,
    /// `mysql://USER@HOST:PORT/`.
    pub mysql: Option<String>,
    pub mysql_password_file: Option<PathBuf>,
}

impl DrillsConfig {
    /// The drill server of a kind of source, with its password file.
    pub fn server(&self, kind: &str) -> Option<(String, Option<PathBuf>)> {
        match kind {
            "postgres" => self
                .postgres
                .clone()
                .map(|a| (a, self.postgres_password_file.clone())),
            "mysql" => self
                .mysql
                .clone()
                .map(|a| (a, self.mysql_password_file.clone())),
            _ => None,
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        for (key, kind, addr) in [
            ("drills.postgres", "postgres", &self.postgres),
            ("drills.mysql", "mysql", &self.mysql),
        ] {
            let Some(a) = addr else { continue };
            match holdfast_sources::source_url::SourceAddress::parse(a) {
                Ok(holdfast_sources::source_url::SourceAddress::Postgres(d))
                    if kind == "postgres" =>
                {
                    if d.password.is_some() {
                        return Err(bad(
                            key,
                            "no password in the address: use drills.postgres_password_file",
                        ));
                    }
                }
                Ok(holdfast_sources::source_url::SourceAddress::Mysql(d)) if kind == "mysql" => {
                    if d.password.is_some() {
                        return Err(bad(
                            key,
                            "no password in the address: use drills.mysql_password_file",
                        ));
                    }
                }
                _ => return Err(bad(key, format!("a {kind}:// address"))),
            }
        }
        for (key, f) in [
            (
                "drills.postgres_password_file",
                &self.postgres_password_file,
            ),
            ("drills.mysql_password_file", &self.mysql_password_file),
        ] {
            if let Some(f) = f
                && !f.is_file()
            {
                return Err(bad(key, format!("{} is not a file", f.display())));
            }
        }
        Ok(())
    }
}

/// `[notifications]`: how deliveries are tried.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotificationsConfig {
    /// The delay before the second attempt; each later one waits four
    /// times longer (at most an hour).
    pub retry_base_seconds: u64,
    /// Attempts per delivery before it is given up (and recorded failed).
    pub max_attempts: i64,
    /// Seconds one attempt may take (connecting, sending, the answer).
    pub timeout_seconds: u64,
    /// A PEM file of extra CA certificates that SMTP servers' certificates
    /// may chain to (a private mail relay).
    pub ca_file: Option<PathBuf>,
}

impl Default for NotificationsConfig {
    fn default() -> NotificationsConfig {
        NotificationsConfig {
            retry_base_seconds: 30,
            max_attempts: 6,
            timeout_seconds: 10,
            ca_file: None,
        }
    }
}

/// `[verification]`: the scheduled `check` of every tenant's repository.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VerificationConfig {
    /// When it runs (cron, in the schedule time zone); `off` for never.
    pub schedule: String,
    /// Every pack's data is read once in this many runs: each run reads
    /// part `d mod N + 1` of `N` (`d` counts days), so with a daily
    /// schedule every pack is read once every N days. 0 reads headers only.
    pub read_data_days: u32,
}

impl Default for VerificationConfig {
    fn default() -> VerificationConfig {
        VerificationConfig {
            schedule: "30 4 * * *".into(),
            read_data_days: 30,
        }
    }
}

impl VerificationConfig {
    /// The schedule, `None` when off.
    pub fn schedule(&self) -> Result<Option<crate::schedule::Schedule>, ConfigError> {
        if self.schedule.trim() == "off" {
            return Ok(None);
        }
        crate::schedule::Schedule::parse(&self.schedule)
            .map(Some)
            .map_err(|e| bad("verification.schedule", e.to_string()))
    }

    /// Which packs' data the run at `at` reads: `none`, `all`, or the
    /// rotating part `N/M` of its day (`d` counts days since 1970-01-01,
    /// UTC).
    pub fn read_data_at(&self, at: jiff::Timestamp) -> String {
        let day = at.as_second().div_euclid(86_400);
        match self.read_data_days {
            0 => "none".into(),
            1 => "all".into(),
            m => format!("{}/{m}", day.rem_euclid(i64::from(m)) + 1),
        }
    }
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("holdfast-data"),
            catalog_url: None,
            catalog_connections: None,
            storage: None,
            s3: S3Config::default(),
            workers: 2,
            jobs: JobsConfig::default(),
            schedule: ScheduleConfig::default(),
            retention: RetentionConfig::default(),
            verification: VerificationConfig::default(),
            notifications: NotificationsConfig::default(),
            drills: DrillsConfig::default(),
            max_body_bytes: 64 * 1024,
            commands: Default::default(),
            header_timeout_seconds: 10,
            auth_failures_per_minute: 20,
            tls: None,
        }
    }
}

impl Default for JobsConfig {
    fn default() -> JobsConfig {
        JobsConfig {
            max_attempts: 3,
            retry_base_seconds: 30,
            lease_seconds: 60,
            no_progress_minutes: 10.0,
            hard_limit_minutes: None,
            kinds: Default::default(),
        }
    }
}

impl Default for ScheduleConfig {
    fn default() -> ScheduleConfig {
        ScheduleConfig {
            default: "0 3 * * *".into(),
            timezone: "UTC".into(),
            tick_seconds: 10,
        }
    }
}

impl Default for RetentionConfig {
    fn default() -> RetentionConfig {
        RetentionConfig {
            max_age_days: 30,
            cleanup: "0 5 * * *".into(),
        }
    }
}

impl Config {
    /// Defaults, the file (if any), then the environment.
    pub fn load(
        file: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut c = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| bad("--config", format!("cannot read {}: {e}", path.display())))?;
                toml::from_str::<Config>(&text).map_err(|e| {
                    // toml names the key and the line; keep its words
                    bad(
                        &path.display().to_string(),
                        e.message().to_string() + &span_line(&text, e.span()),
                    )
                })?
            }
            None => Config::default(),
        };
        c.apply_env(env)?;
        c.make_absolute()?;
        c.validate()?;
        Ok(c)
    }

    /// Resolve a relative `data_dir` and `storage` against the current
    /// directory (without touching the file system): repository paths are
    /// stored in the catalog, and must mean the same for every process that
    /// reads them, wherever it was started. Call again after changing
    /// `data_dir` (the `--data-dir` flag).
    pub fn make_absolute(&mut self) -> Result<(), ConfigError> {
        fn absolute(key: &str, p: &Path) -> Result<PathBuf, ConfigError> {
            std::path::absolute(p).map_err(|e| bad(key, format!("{}: {e}", p.display())))
        }
        self.data_dir = absolute("data_dir", &self.data_dir)?;
        if let Some(s) = &self.storage
            && let Ok(Location::Local(p)) = Location::parse(s)
        {
            self.storage = Some(absolute("storage", &p)?.to_string_lossy().into_owned());
        }
        Ok(())
    }

    fn apply_env(&mut self, env: &dyn Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn num<T: std::str::FromStr>(key: &str, v: &str) -> Result<T, ConfigError> {
            v.trim()
                .parse()
                .map_err(|_| bad(key, format!("{v:?} is not a valid number")))
        }
        if let Some(v) = env("HOLDFAST_LISTEN") {
            self.listen = v;
        }
        if let Some(v) = env("HOLDFAST_DATA_DIR") {
            self.data_dir = PathBuf::from(v);
        }
        if let Some(v) = env("HOLDFAST_CATALOG_URL") {
            self.catalog_url = Some(v);
        }
        if let Some(v) = env("HOLDFAST_CATALOG_CONNECTIONS") {
            self.catalog_connections = Some(num("HOLDFAST_CATALOG_CONNECTIONS", &v)?);
        }
        if let Some(v) = env("HOLDFAST_STORAGE") {
            self.storage = Some(v);
        }
        if let Some(v) = env("HOLDFAST_WORKERS") {
            self.workers = num("HOLDFAST_WORKERS", &v)?;
        }
        if let Some(v) = env("HOLDFAST_MAX_ATTEMPTS") {
            self.jobs.max_attempts = num("HOLDFAST_MAX_ATTEMPTS", &v)?;
        }
        if let Some(v) = env("HOLDFAST_RETRY_BASE_SECONDS") {
            self.jobs.retry_base_seconds = num("HOLDFAST_RETRY_BASE_SECONDS", &v)?;
        }
        if let Some(v) = env("HOLDFAST_LEASE_SECONDS") {
            self.jobs.lease_seconds = num("HOLDFAST_LEASE_SECONDS", &v)?;
        }
        if let Some(v) = env("HOLDFAST_NO_PROGRESS_MINUTES") {
            self.jobs.no_progress_minutes = num("HOLDFAST_NO_PROGRESS_MINUTES", &v)?;
        }
        if let Some(v) = env("HOLDFAST_HARD_LIMIT_MINUTES") {
            self.jobs.hard_limit_minutes = Some(num("HOLDFAST_HARD_LIMIT_MINUTES", &v)?);
        }
        if let Some(v) = env("HOLDFAST_SCHEDULE") {
            self.schedule.default = v;
        }
        if let Some(v) = env("HOLDFAST_TIMEZONE") {
            self.schedule.timezone = v;
        }
        if let Some(v) = env("HOLDFAST_CLEANUP_SCHEDULE") {
            self.retention.cleanup = v;
        }
        if let Some(v) = env("HOLDFAST_NOTIFY_RETRY_BASE_SECONDS") {
            self.notifications.retry_base_seconds = num("HOLDFAST_NOTIFY_RETRY_BASE_SECONDS", &v)?;
        }
        if let Some(v) = env("HOLDFAST_NOTIFY_CA_FILE") {
            self.notifications.ca_file = Some(PathBuf::from(v));
        }
        if let Some(v) = env("HOLDFAST_VERIFICATION_SCHEDULE") {
            self.verification.schedule = v;
        }
        if let Some(v) = env("HOLDFAST_SCHEDULER_TICK_SECONDS") {
            self.schedule.tick_seconds = num("HOLDFAST_SCHEDULER_TICK_SECONDS", &v)?;
        }
        if let Some(v) = env("HOLDFAST_HEADER_TIMEOUT_SECONDS") {
            self.header_timeout_seconds = num("HOLDFAST_HEADER_TIMEOUT_SECONDS", &v)?;
        }
        if let Some(v) = env("HOLDFAST_AUTH_FAILURES_PER_MINUTE") {
            self.auth_failures_per_minute = num("HOLDFAST_AUTH_FAILURES_PER_MINUTE", &v)?;
        }
        match (env("HOLDFAST_TLS_CERT"), env("HOLDFAST_TLS_KEY")) {
            (Some(cert), Some(key)) => {
                self.tls = Some(TlsConfig {
                    cert: PathBuf::from(cert),
                    key: PathBuf::from(key),
                })
            }
            (None, None) => {}
            _ => {
                return Err(bad(
                    "HOLDFAST_TLS_CERT",
                    "HOLDFAST_TLS_CERT and HOLDFAST_TLS_KEY go together",
                ));
            }
        }
        if let Some(v) = env("HOLDFAST_RETENTION_DAYS") {
            self.retention.max_age_days = num("HOLDFAST_RETENTION_DAYS", &v)?;
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(s) = &self.storage {
            Location::parse(s).map_err(|e| bad("storage", e))?;
        }
        self.s3_settings()?;
        self.listen.parse::<std::net::SocketAddr>().map_err(|_| {
            bad(
                "listen",
                format!("{:?} is not an address like 127.0.0.1:8080", self.listen),
            )
        })?;
        if self.workers == 0 || self.workers > 64 {
            return Err(bad("workers", "between 1 and 64"));
        }
        if let Some(n) = self.catalog_connections
            && !(2..=1000).contains(&n)
        {
            return Err(bad("catalog_connections", "between 2 and 1000"));
        }
        if !(1..=10).contains(&self.jobs.max_attempts) {
            return Err(bad("jobs.max_attempts", "between 1 and 10"));
        }
        let positive = |m: f64| m.is_finite() && m > 0.0;
        if !positive(self.jobs.no_progress_minutes) {
            return Err(bad(
                "jobs.no_progress_minutes",
                "a number of minutes above 0",
            ));
        }
        if self.jobs.hard_limit_minutes.is_some_and(|m| !positive(m)) {
            return Err(bad(
                "jobs.hard_limit_minutes",
                "a number of minutes above 0",
            ));
        }
        for (kind, k) in &self.jobs.kinds {
            if !holdfast_catalog::sources::KINDS.contains(&kind.as_str()) {
                return Err(bad(&format!("jobs.kinds.{kind}"), "not a kind of source"));
            }
            if k.no_progress_minutes.is_some_and(|m| !positive(m))
                || k.hard_limit_minutes.is_some_and(|m| !positive(m))
            {
                return Err(bad(
                    &format!("jobs.kinds.{kind}"),
                    "limits are minutes above 0",
                ));
            }
        }
        if self.jobs.lease_seconds < 4 {
            return Err(bad("jobs.lease_seconds", "at least 4"));
        }
        if !(1..=600).contains(&self.header_timeout_seconds) {
            return Err(bad("header_timeout_seconds", "between 1 and 600"));
        }
        if self.auth_failures_per_minute == 0 {
            return Err(bad("auth_failures_per_minute", "at least 1"));
        }
        for (name, text) in &self.commands {
            let ok_name = !name.is_empty()
                && name.len() <= 64
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !ok_name {
                return Err(bad(
                    &format!("commands.{name}"),
                    "names are 1–64 letters, digits, '-', '_' or '.'",
                ));
            }
            if text.trim().is_empty() {
                return Err(bad(&format!("commands.{name}"), "an empty command"));
            }
        }
        if let Some(url) = &self.catalog_url {
            let ok = url.starts_with("sqlite://")
                || url.starts_with("postgres://")
                || url.starts_with("postgresql://");
            if !ok {
                return Err(bad(
                    "catalog_url",
                    format!(
                        "{} is neither sqlite://PATH nor postgres://…",
                        holdfast_catalog::redact_url(url)
                    ),
                ));
            }
        }
        if jiff::tz::TimeZone::get(&self.schedule.timezone).is_err() {
            return Err(bad(
                "schedule.timezone",
                format!("unknown time zone {:?}", self.schedule.timezone),
            ));
        }
        crate::schedule::Schedule::parse(&self.schedule.default)
            .map_err(|e| bad("schedule.default", e.to_string()))?;
        crate::schedule::Schedule::parse(&self.retention.cleanup)
            .map_err(|e| bad("retention.cleanup", e.to_string()))?;
        if self.retention.max_age_days == 0 {
            return Err(bad("retention.max_age_days", "at least 1"));
        }
        self.verification.schedule()?;
        self.drills.validate()?;
        if self.notifications.max_attempts < 1 {
            return Err(bad("notifications.max_attempts", "at least 1"));
        }
        if let Some(f) = &self.notifications.ca_file
            && !f.is_file()
        {
            return Err(bad(
                "notifications.ca_file",
                format!("{} is not a file", f.display()),
            ));
        }
        if self.verification.read_data_days > 256 {
            // a pack's part is its first id byte mod N: more parts than
            // byte values leave some empty
            return Err(bad("verification.read_data_days", "at most 256"));
        }
        Ok(())
    }

    pub fn catalog_url(&self) -> String {
        self.catalog_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("catalog.db").display()))
    }

    /// The catalog pool's size: as configured, else the catalog's default
    /// but room for every worker and two more (API, scheduler).
    pub fn catalog_connections(&self) -> u32 {
        self.catalog_connections.unwrap_or_else(|| {
            holdfast_catalog::Catalog::default_connections().max(self.workers as u32 + 2)
        })
    }

    /// Where tenants' repositories go (checked when the file was read).
    pub fn storage_location(&self) -> Location {
        match &self.storage {
            Some(s) => Location::parse(s).expect("checked by validate"),
            None => Location::Local(self.data_dir.join("repos")),
        }
    }

    /// The storage directory, when the storage is a local one.
    pub fn storage_dir(&self) -> Option<PathBuf> {
        self.storage_location().local_path().map(Path::to_path_buf)
    }

    /// The AWS environment, then `[s3]`.
    pub fn s3_settings(&self) -> Result<S3Settings, ConfigError> {
        let mut s = S3Settings::from_env();
        let c = &self.s3;
        let mut set = |key: &str, v: Option<String>| -> Result<(), ConfigError> {
            match v {
                Some(v) => s
                    .set_option(&format!("s3.{key}"), &v)
                    .map_err(|e| bad(&format!("s3.{}", key.replace('-', "_")), e)),
                None => Ok(()),
            }
        };
        set("endpoint", c.endpoint.clone())?;
        set("region", c.region.clone())?;
        set("bucket-lookup", c.bucket_lookup.clone())?;
        set("checksum", c.checksum.clone())?;
        set("connections", c.connections.map(|n| n.to_string()))?;
        set("retries", c.retries.map(|n| n.to_string()))?;
        Ok(s)
    }

    pub fn server_key_path(&self) -> PathBuf {
        self.data_dir.join("server.key")
    }

    /// The zone schedules are read in (`[schedule] timezone`, checked at
    /// start; UTC if it went missing since).
    pub fn time_zone(&self) -> jiff::tz::TimeZone {
        jiff::tz::TimeZone::get(&self.schedule.timezone).unwrap_or(jiff::tz::TimeZone::UTC)
    }

    /// Where drills restore files and SQLite databases: beneath the data
    /// directory, which no tenant may name.
    pub fn drill_scratch(&self) -> PathBuf {
        self.data_dir.join("drills")
    }

    /// The server's side of the tenant boundary: its own files, which no
    /// source or restore may name, and the named commands.
    pub fn host_facts(&self) -> crate::policy::HostFacts {
        let mut protected = vec![self.data_dir.clone()];
        protected.extend(self.storage_dir());
        if let Some(path) = self
            .catalog_url()
            .strip_prefix("sqlite://")
            .map(|p| p.split('?').next().unwrap_or(p))
        {
            protected.push(PathBuf::from(path));
        }
        protected.push(self.server_key_path());
        let clean = |p: &PathBuf| -> PathBuf { p.components().collect() };
        crate::policy::HostFacts {
            protected: protected.iter().map(clean).collect(),
            commands: self.commands.clone(),
        }
    }
}

fn span_line(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    match span {
        Some(s) => format!(
            " (line {})",
            text[..s.start.min(text.len())].lines().count().max(1)
        ),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn the_catalog_pool_has_room_for_every_worker() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("holdfast.toml");
        std::fs::write(&f, "workers = 40\n").unwrap();
        let c = Config::load(Some(&f), &no_env).unwrap();
        assert!(c.catalog_connections() >= 42, "{}", c.catalog_connections());
        let env = |k: &str| (k == "HOLDFAST_CATALOG_CONNECTIONS").then(|| "3".to_string());
        assert_eq!(Config::load(None, &env).unwrap().catalog_connections(), 3);
        std::fs::write(&f, "catalog_connections = 1\n").unwrap();
        let e = Config::load(Some(&f), &no_env).unwrap_err();
        assert_eq!(e.key, "catalog_connections");
    }

    #[test]
    fn file_then_environment_and_bad_keys_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("holdfast.toml");
        std::fs::write(
            &f,
            "listen = \"127.0.0.1:9999\"\nworkers = 4\n[retention]\nmax_age_days = 7\n",
        )
        .unwrap();
        let c = Config::load(Some(&f), &no_env).unwrap();
        assert_eq!(
            (c.listen.as_str(), c.workers, c.retention.max_age_days),
            ("127.0.0.1:9999", 4, 7)
        );
        let env = |k: &str| (k == "HOLDFAST_RETENTION_DAYS").then(|| "90".to_string());
        assert_eq!(
            Config::load(Some(&f), &env).unwrap().retention.max_age_days,
            90
        );

        std::fs::write(
            &f,
            "[jobs]\nno_progress_minutes = 30\n[jobs.kinds.postgres]\nhard_limit_minutes = 120\n",
        )
        .unwrap();
        let c = Config::load(Some(&f), &no_env).unwrap();
        let (np, hard) = c.jobs.limits("postgres");
        assert_eq!(
            (np.as_secs(), hard.map(|h| h.as_secs())),
            (1800, Some(7200))
        );
        assert_eq!(c.jobs.limits("directory").1, None);
        std::fs::write(&f, "[jobs.kinds.postgre]\nhard_limit_minutes = 1\n").unwrap();
        assert_eq!(
            Config::load(Some(&f), &no_env).unwrap_err().key,
            "jobs.kinds.postgre"
        );

        std::fs::write(&f, "workers = 0\n").unwrap();
        let e = Config::load(Some(&f), &no_env).unwrap_err();
        assert_eq!(e.key, "workers");
        std::fs::write(&f, "wrokers = 2\n").unwrap();
        let e = Config::load(Some(&f), &no_env).unwrap_err().to_string();
        assert!(e.contains("wrokers"), "{e}");
        let env = |k: &str| (k == "HOLDFAST_WORKERS").then(|| "many".to_string());
        let e = Config::load(None, &env).unwrap_err();
        assert_eq!(e.key, "HOLDFAST_WORKERS");
        let env = |k: &str| (k == "HOLDFAST_CATALOG_URL").then(|| "mysql://u:pw@h/db".to_string());
        let e = Config::load(None, &env).unwrap_err().to_string();
        assert!(e.contains("catalog_url") && !e.contains("pw@"), "{e}");
    }

    #[test]
    fn relative_directories_become_absolute() {
        let cwd = std::env::current_dir().unwrap();
        let c = Config::load(None, &no_env).unwrap();
        assert_eq!(c.data_dir, cwd.join("holdfast-data"), "the default too");
        assert_eq!(
            c.storage_dir(),
            Some(cwd.join("holdfast-data").join("repos"))
        );
        assert_eq!(
            c.catalog_url(),
            format!(
                "sqlite://{}",
                cwd.join("holdfast-data/catalog.db").display()
            )
        );

        let env = |k: &str| match k {
            "HOLDFAST_DATA_DIR" => Some("state/../data".to_string()),
            "HOLDFAST_STORAGE" => Some("repos".to_string()),
            _ => None,
        };
        let c = Config::load(None, &env).unwrap();
        // made absolute, not resolved: no symlink is followed, nothing created
        assert_eq!(c.data_dir, cwd.join("state/../data"));
        assert_eq!(c.storage_dir(), Some(cwd.join("repos")));
        assert!(c.data_dir.is_absolute());

        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("holdfast.toml");
        std::fs::write(&f, "data_dir = \"/srv/holdfast\"\nstorage = \"rel\"\n").unwrap();
        let c = Config::load(Some(&f), &no_env).unwrap();
        assert_eq!(c.data_dir, Path::new("/srv/holdfast"), "absolute stays");
        assert_eq!(c.storage_dir(), Some(cwd.join("rel")));

        // object storage: no directory, a prefix per tenant
        let env = |k: &str| {
            (k == "HOLDFAST_STORAGE").then(|| "s3:http://127.0.0.1:3900/backups/hf".to_string())
        };
        let c = Config::load(None, &env).unwrap();
        assert_eq!(c.storage_dir(), None);
        assert_eq!(
            c.storage_location().child("t1").unwrap().to_string(),
            "s3:http://127.0.0.1:3900/backups/hf/t1"
        );
        let env = |k: &str| (k == "HOLDFAST_STORAGE").then(|| "s3:http://h/Bad_Bucket".to_string());
        assert_eq!(Config::load(None, &env).unwrap_err().key, "storage");
        std::fs::write(&f, "[s3]\nbucket_lookup = \"sideways\"\n").unwrap();
        assert_eq!(
            Config::load(Some(&f), &no_env).unwrap_err().key,
            "s3.bucket_lookup"
        );

        // what the --data-dir flag sets is made absolute the same way
        let mut c = Config::load(None, &no_env).unwrap();
        c.data_dir = PathBuf::from("elsewhere");
        c.make_absolute().unwrap();
        assert_eq!(c.data_dir, cwd.join("elsewhere"));

        let env = |k: &str| (k == "HOLDFAST_DATA_DIR").then(String::new);
        let e = Config::load(None, &env).unwrap_err();
        assert_eq!(e.key, "data_dir");
    }
}
