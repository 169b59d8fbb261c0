//! PostgreSQL through its own tools: `pg_dump` writes the dump, `psql`
//! answers questions and loads dumps back. Connection settings go to the
//! tools through libpq's environment (`PGHOST`, `PGPORT`, `PGUSER`,
//! `PGDATABASE`, `PGPASSWORD`, `PGSSLMODE`, …), never through argv, so a
//! password is never visible in `/proc/*/cmdline`.
//!
//! - [`dialect`]: PostgreSQL as a [`crate::database::Dialect`] (whole
//!   copies, restores);
//! - [`tables`]: tables mode's steps inside one exported snapshot;
//! - [`copy_text`], [`ddl_filter`]: rewriting CSV for `COPY FROM`, and
//!   pg_dump's DDL without what a left-out table needs.

pub mod copy_text;
pub mod ddl_filter;
pub mod dialect;
pub mod tables;

pub use dialect::Postgres;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use holdfast_engine::{EngineError, Result};

use crate::command::{how_it_ended, is_executable, result_rows, run_with_input, tool_fault};
use crate::database::{Syntax, standard_literal};
use crate::dump_scan::postgres::quote_ident;
use crate::secret::Secret;
use crate::source_url::{DbAddress, SourceAddress};

/// How PostgreSQL writes SQL; a table without a primary key is ordered by
/// all its columns as text, so that the order is still deterministic.
pub(crate) const SQL: Syntax = Syntax {
    ident: quote_ident,
    literal: standard_literal,
    unkeyed_order: |t| {
        let columns = t
            .columns
            .iter()
            .map(|c| quote_ident(&c.name) + "::text COLLATE \"C\"");
        columns.collect::<Vec<_>>().join(", ")
    },
};

/// Field separator for psql's unaligned output (ASCII unit separator).
const FIELD_SEP: &str = "\x1f";

/// One installation of the PostgreSQL client tools.
#[derive(Debug, Clone)]
pub struct PgTools {
    pub pg_dump: PathBuf,
    pub psql: PathBuf,
    /// `pg_dump (PostgreSQL) 15.10 (Debian 15.10-0+deb12u1)`
    pub version: String,
    pub major: u32,
}

/// `pg_dump (PostgreSQL) 15.10 …` → 15; `9.6.24` → 9 (before 10, the
/// major version was two numbers, but 9.x < 10 either way).
pub fn parse_tool_major(version: &str) -> Option<u32> {
    let after = version.split(") ").nth(1)?;
    let num: String = after.chars().take_while(|c| c.is_ascii_digit()).collect();
    num.parse().ok()
}

impl PgTools {
    /// The tools in one bin directory, if pg_dump and psql are both there.
    fn in_dir(dir: &Path) -> Option<PgTools> {
        let pg_dump = dir.join("pg_dump");
        let psql = dir.join("psql");
        if !is_executable(&pg_dump) || !is_executable(&psql) {
            return None;
        }
        let out = holdfast_confine::tool_env::command(&pg_dump)
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .ok()?;
        let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let major = parse_tool_major(&version)?;
        Some(PgTools {
            pg_dump,
            psql,
            version,
            major,
        })
    }

    /// Every installation found, newest first: `$HOLDFAST_PG_BIN` alone
    /// when set; otherwise `/usr/lib/postgresql/*/bin` and `$PATH`.
    pub fn find_all() -> Result<Vec<PgTools>> {
        if let Some(dir) = std::env::var_os("HOLDFAST_PG_BIN") {
            let dir = PathBuf::from(dir);
            return match PgTools::in_dir(&dir) {
                Some(t) => Ok(vec![t]),
                None => Err(EngineError::source(format!(
                    "no working pg_dump and psql in HOLDFAST_PG_BIN={}",
                    dir.display()
                ))),
            };
        }
        let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .map(|rd| rd.flatten().map(|e| e.path().join("bin")).collect())
            .unwrap_or_default();
        if let Some(path) = std::env::var_os("PATH") {
            dirs.extend(std::env::split_paths(&path));
        }
        let mut found: Vec<PgTools> = Vec::new();
        for d in dirs {
            if let Some(t) = PgTools::in_dir(&d)
                && !found.iter().any(|f| f.pg_dump == t.pg_dump)
            {
                found.push(t);
            }
        }
        found.sort_by_key(|t| std::cmp::Reverse(t.major));
        if found.is_empty() {
            return Err(EngineError::source(
                "pg_dump and psql not found: install the PostgreSQL client tools \
                 (Debian: apt-get install postgresql-client) or set HOLDFAST_PG_BIN to their directory",
            ));
        }
        Ok(found)
    }
}

/// What the server says about itself.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    /// `server_version_num`: 150010
    pub version_num: u32,
    /// `server_version`: `15.10 (Debian 15.10-0+deb12u1)`
    pub version: String,
    /// The database's encoding (`UTF8`).
    pub encoding: String,
}

impl ServerInfo {
    /// The major version as pg_dump reports it: 17 for 170002, and 9 for
    /// 90624 (before 10 the major was "9.6"; tools only compare the first part).
    pub fn major(&self) -> u32 {
        self.version_num / 10_000
    }
}

/// A PostgreSQL server reached through its tools.
pub struct PgClient {
    pub addr: DbAddress,
    password: Option<Secret>,
    pub tools: PgTools,
    others: Vec<PgTools>,
}

/// libpq environment variables for the address's query parameters.
fn param_env(key: &str) -> Option<&'static str> {
    Some(match key {
        "host" => "PGHOST",
        "hostaddr" => "PGHOSTADDR",
        "port" => "PGPORT",
        "user" => "PGUSER",
        "sslmode" => "PGSSLMODE",
        "sslrootcert" => "PGSSLROOTCERT",
        "sslcert" => "PGSSLCERT",
        "sslkey" => "PGSSLKEY",
        "sslcrl" => "PGSSLCRL",
        "connect_timeout" => "PGCONNECT_TIMEOUT",
        "application_name" => "PGAPPNAME",
        "target_session_attrs" => "PGTARGETSESSIONATTRS",
        "passfile" => "PGPASSFILE",
        "service" => "PGSERVICE",
        "options" => "PGOPTIONS",
        _ => return None,
    })
}

impl PgClient {
    /// Find the tools (the newest installation; [`PgClient::pick_tools`]
    /// then matches them to the server).
    pub fn new(addr: DbAddress, password: Option<Secret>) -> Result<PgClient> {
        for k in addr.params.keys() {
            if param_env(k).is_none() {
                return Err(EngineError::Invalid(format!(
                    "unknown connection parameter {k:?} in {}",
                    SourceAddress::Postgres(addr.clone())
                )));
            }
        }
        let mut all = PgTools::find_all()?;
        let tools = all.remove(0);
        Ok(PgClient {
            addr,
            password,
            tools,
            others: all,
        })
    }

    /// The address, redacted, for messages.
    pub fn display(&self) -> String {
        SourceAddress::Postgres(self.addr.clone()).to_string()
    }

    /// Use the oldest installation whose pg_dump is at least the server's
    /// major version (an older pg_dump refuses newer servers; the newest
    /// is always fine but a matching one writes the most portable dump).
    pub fn pick_tools(&mut self, server: &ServerInfo) -> Result<()> {
        let want = server.major();
        let mut all = vec![self.tools.clone()];
        all.append(&mut self.others);
        let newest = all[0].clone();
        let best = all
            .iter()
            .filter(|t| t.major >= want)
            .min_by_key(|t| t.major)
            .cloned();
        match best {
            Some(t) => {
                self.tools = t;
                Ok(())
            }
            None => Err(EngineError::source(format!(
                "the server runs PostgreSQL {} but the newest pg_dump found is {} ({}): \
                 pg_dump must be at least the server's major version ({want}); install \
                 postgresql-client-{want} or newer, or set HOLDFAST_PG_BIN",
                server.version,
                newest.version,
                newest.pg_dump.display()
            ))),
        }
    }

    /// A command for one of the tools, connected to `database`.
    pub fn command(&self, program: &Path, database: &str) -> Command {
        let mut c = holdfast_confine::tool_env::command(program);
        // Settings from the address replace any inherited ones.
        for k in [
            "PGHOST",
            "PGHOSTADDR",
            "PGPORT",
            "PGUSER",
            "PGDATABASE",
            "PGSERVICE",
        ] {
            c.env_remove(k);
        }
        if let Some(h) = &self.addr.host {
            c.env("PGHOST", h);
        }
        if let Some(p) = self.addr.port {
            c.env("PGPORT", p.to_string());
        }
        if let Some(u) = &self.addr.user {
            c.env("PGUSER", u);
        }
        c.env("PGDATABASE", database);
        for (k, v) in &self.addr.params {
            if let Some(var) = param_env(k) {
                c.env(var, v);
            }
        }
        if !self.addr.params.contains_key("connect_timeout")
            && std::env::var_os("PGCONNECT_TIMEOUT").is_none()
        {
            c.env("PGCONNECT_TIMEOUT", "15");
        }
        if !self.addr.params.contains_key("application_name") {
            c.env("PGAPPNAME", "holdfast");
        }
        if let Some(pw) = &self.password {
            c.env("PGPASSWORD", pw.expose());
        }
        c
    }

    /// psql connected to `database`, stopping at a script's first error,
    /// with `args`.
    pub fn psql(&self, database: &str, args: &[&str]) -> Command {
        let mut c = self.command(&self.tools.psql, database);
        c.args(["-X", "-q", "-w", "-v", "ON_ERROR_STOP=1"])
            .args(args);
        c
    }

    /// Run `sql` (psql script text, with `:'var'` / `:"var"` interpolation
    /// of `vars`) against `database`; the result rows of every statement,
    /// fields split.
    pub fn query(
        &self,
        database: &str,
        sql: &str,
        vars: &[(&str, &str)],
    ) -> Result<Vec<Vec<String>>> {
        let mut cmd = self.psql(database, &["-A", "-t", "-F", FIELD_SEP]);
        for (k, v) in vars {
            cmd.arg("-v").arg(format!("{k}={v}"));
        }
        let out = run_with_input(cmd, sql, "psql")?;
        if !out.status.success() {
            let how = how_it_ended(out.status);
            let otherwise = format!("psql {how} against {}", self.addr_for(database));
            return Err(self.failure(out.status, &out.stderr, database, &otherwise));
        }
        Ok(result_rows(&out.stdout, FIELD_SEP, str::to_string))
    }

    /// psql's failure as an error: it exits 2 when the connection failed
    /// (refused, lost, or refused by the server: the tool's words tell
    /// which); other failures are `otherwise`, with its words.
    pub(crate) fn failure(
        &self,
        status: ExitStatus,
        stderr: &[u8],
        database: &str,
        otherwise: &str,
    ) -> EngineError {
        let err = String::from_utf8_lossy(stderr);
        let err = err.trim().trim_start_matches("psql: error: ").trim();
        if status.code() == Some(2) {
            let addr = self.addr_for(database);
            EngineError::source_with(tool_fault(err), format!("cannot connect to {addr}: {err}"))
        } else {
            EngineError::source(format!("{otherwise}: {err}"))
        }
    }

    fn addr_for(&self, database: &str) -> String {
        SourceAddress::Postgres(self.addr.with_database(database)).to_string()
    }

    /// Version and encoding of the server (and proof we can log in).
    pub fn server_info(&self, database: &str) -> Result<ServerInfo> {
        let rows = self.query(
            database,
            "SELECT current_setting('server_version_num'), current_setting('server_version'), \
             pg_encoding_to_char(encoding) FROM pg_database WHERE datname = current_database();",
            &[],
        )?;
        let [num, version, encoding] =
            crate::database::one_row(rows, "the server did not report its version")?;
        Ok(ServerInfo {
            version_num: num.parse().map_err(|_| {
                EngineError::source(format!("unexpected server_version_num {num:?}"))
            })?,
            version,
            encoding,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_versions() {
        assert_eq!(
            parse_tool_major("pg_dump (PostgreSQL) 15.10 (Debian 15.10-0+deb12u1)"),
            Some(15)
        );
        assert_eq!(parse_tool_major("pg_dump (PostgreSQL) 9.6.24"), Some(9));
        assert_eq!(parse_tool_major("garbage"), None);
        let s = ServerInfo {
            version_num: 90624,
            version: "9.6.24".into(),
            encoding: "UTF8".into(),
        };
        assert_eq!(s.major(), 9);
        let s = ServerInfo {
            version_num: 170002,
            ..s
        };
        assert_eq!(s.major(), 17);
    }
}
