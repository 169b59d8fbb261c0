//! MySQL and MariaDB through their own tools: `mariadb-dump` (or
//! `mysqldump`) writes the dump, `mariadb` (or `mysql`) answers questions
//! and loads dumps back.
//!
//! The tools take a password only from argv, the environment (`MYSQL_PWD`)
//! or an option file. argv is readable by every user in
//! `/proc/*/cmdline`, so a password given to holdfast goes into a private
//! option file (mode 0600, deleted when the client is dropped) named by
//! `--defaults-extra-file`. Without one, the tools find their own
//! (`MYSQL_PWD`, `~/.my.cnf`). Host, port and user are not secret and go
//! on the command line.
//!
//! The tools read an extra option file after the global ones but before
//! `~/.my.cnf`, so a `password` set there still wins over the one holdfast
//! was given: that is the tools' precedence, and no option file holdfast
//! could name comes later.
//!
//! - [`dialect`]: MySQL/MariaDB as a [`crate::database::Dialect`] (whole
//!   copies, restores);
//! - [`tables`]: tables mode's steps in one consistent-snapshot session;
//! - [`ddl_filter`]: the dump tool's DDL without foreign keys into
//!   left-out tables.

pub mod ddl_filter;
pub mod dialect;
pub mod tables;

pub use dialect::Mysql;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use holdfast_engine::{EngineError, Fault, Result};

use crate::command::{how_it_ended, is_executable, result_rows, run_with_input, tool_name};
use crate::database::Syntax;
use crate::dump_scan::mysql::quote_ident;
use crate::secret::Secret;
use crate::source_url::{DbAddress, SourceAddress};

/// The dump tools, most preferred first.
const DUMP_TOOLS: [&str; 2] = ["mariadb-dump", "mysqldump"];
/// The command-line clients, most preferred first.
const CLIENTS: [&str; 2] = ["mariadb", "mysql"];

/// Seconds the client waits for a connection (a dead host should fail the
/// backup, not hang it). mariadb-dump has no such option; it connects
/// right after the client did.
const CONNECT_TIMEOUT: &str = "--connect-timeout=15";

/// How MySQL writes SQL; a table without a primary key is ordered by all
/// its columns, so that the order is still deterministic.
pub(crate) const SQL: Syntax = Syntax {
    ident: quote_ident,
    literal: sql_string,
    unkeyed_order: |t| {
        let columns = t.columns.iter().map(|c| quote_ident(&c.name));
        columns.collect::<Vec<_>>().join(", ")
    },
};

/// The tools of one installation, as far as they were found. A restore
/// needs only the client, so a missing dump tool is an error only when it
/// is asked for.
#[derive(Debug, Clone)]
pub struct MyTools {
    pub dump: Option<PathBuf>,
    pub client: Option<PathBuf>,
    /// Where they were looked for, for messages.
    searched: String,
}

/// The first of `names` in the first of `dirs` that has one: the earlier
/// directory wins (as in a shell), and within one directory the earlier
/// name (`mariadb-dump` over its `mysqldump` alias).
fn first_in(dirs: &[PathBuf], names: &[&str]) -> Option<PathBuf> {
    dirs.iter()
        .flat_map(|d| names.iter().map(move |n| d.join(n)))
        .find(|p| is_executable(p))
}

impl MyTools {
    /// Look in `$HOLDFAST_MYSQL_BIN` alone when set, otherwise on `$PATH`.
    pub fn find() -> MyTools {
        let (dirs, searched) = match std::env::var_os("HOLDFAST_MYSQL_BIN") {
            Some(d) => {
                let d = PathBuf::from(d);
                let searched = format!("HOLDFAST_MYSQL_BIN={}", d.display());
                (vec![d], searched)
            }
            None => {
                let dirs = std::env::var_os("PATH")
                    .map(|p| std::env::split_paths(&p).collect())
                    .unwrap_or_default();
                (dirs, "PATH".to_string())
            }
        };
        MyTools {
            dump: first_in(&dirs, &DUMP_TOOLS),
            client: first_in(&dirs, &CLIENTS),
            searched,
        }
    }

    fn missing(&self, names: &[&str]) -> EngineError {
        EngineError::source(format!(
            "{} not found in {}: install the MariaDB or MySQL client tools \
             (Debian: apt-get install mariadb-client) or set HOLDFAST_MYSQL_BIN to their directory",
            names.join(" or "),
            self.searched
        ))
    }

    /// `mariadb` or `mysql`.
    pub fn client(&self) -> Result<&Path> {
        self.client.as_deref().ok_or_else(|| self.missing(&CLIENTS))
    }

    /// `mariadb-dump` or `mysqldump`, with its version.
    pub fn dump_tool(&self) -> Result<DumpTool> {
        let path = self.dump.clone().ok_or_else(|| self.missing(&DUMP_TOOLS))?;
        let out = holdfast_confine::tool_env::command(&path)
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| EngineError::io(format!("cannot run {}", path.display()), e))?;
        let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !out.status.success() || version.is_empty() {
            return Err(EngineError::source(format!(
                "{} --version {}: not a working dump tool",
                path.display(),
                how_it_ended(out.status)
            )));
        }
        Ok(DumpTool::new(path, version))
    }
}

/// Whose dump tool it is: their options differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    MariaDb,
    Mysql,
}

/// The dump tool and what its `--version` says.
#[derive(Debug, Clone)]
pub struct DumpTool {
    pub path: PathBuf,
    /// `mariadb-dump  Ver 10.19 Distrib 10.11.14-MariaDB, for debian-linux-gnu (x86_64)`
    pub version: String,
    pub flavor: Flavor,
    /// The release (`(8, 0)`, `(5, 7)`), where the text says it.
    pub release: Option<(u32, u32)>,
}

/// `8.0.36…` → (8, 0).
fn major_minor(s: &str) -> Option<(u32, u32)> {
    let mut it = s.split(|c: char| !c.is_ascii_digit());
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    Some((major, minor))
}

impl DumpTool {
    pub fn new(path: PathBuf, version: String) -> DumpTool {
        let flavor = if version.contains("MariaDB") {
            Flavor::MariaDb
        } else {
            Flavor::Mysql
        };
        // "Ver 10.13 Distrib 5.7.44, …" (the release is after Distrib),
        // "Ver 8.0.36 for Linux …" (MySQL 8), "from 11.4.2-MariaDB, client 10.19".
        let release = ["Distrib ", "from ", "Ver "]
            .iter()
            .find_map(|k| version.split_once(k).map(|(_, rest)| rest))
            .and_then(major_minor);
        DumpTool {
            path,
            version,
            flavor,
            release,
        }
    }

    /// What it is called in messages (`mariadb-dump`).
    pub fn name(&self) -> String {
        tool_name(&self.path)
    }
}

/// What the server says about itself and the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// `VERSION()`: `10.11.14-MariaDB-0+deb12u2`, `8.0.36`.
    pub version: String,
    /// The database's default character set and collation (the server's,
    /// when no database was named).
    pub character_set: String,
    pub collation: String,
}

/// The option-file text that hands `password` to the tools.
///
/// The value is double-quoted, so that leading and trailing spaces and `#`
/// (a comment elsewhere) are kept; inside, the tools' option parser reads
/// `\\`, `\"`, `\n`, `\r` and `\t` as escapes. The parser reads lines into a
/// 4 KiB buffer, so a longer line would be cut: such passwords (and NUL,
/// which cannot be written at all) are refused.
pub fn option_file_text(password: &str) -> Result<String> {
    if password.contains('\0') {
        return Err(EngineError::Invalid(
            "the database password contains a NUL character, which MySQL option files cannot hold"
                .into(),
        ));
    }
    let mut v = String::with_capacity(password.len() + 2);
    for c in password.chars() {
        match c {
            '\\' => v.push_str("\\\\"),
            '"' => v.push_str("\\\""),
            '\n' => v.push_str("\\n"),
            '\r' => v.push_str("\\r"),
            '\t' => v.push_str("\\t"),
            c => v.push(c),
        }
    }
    if v.len() > 4000 {
        return Err(EngineError::Invalid(
            "the database password is too long for a MySQL option file (over 4000 bytes)".into(),
        ));
    }
    Ok(format!("[client]\npassword=\"{v}\"\n"))
}

/// A private option file holding the password, removed when dropped.
struct OptionFile(tempfile::NamedTempFile);

impl OptionFile {
    fn new(password: &Secret) -> Result<OptionFile> {
        let text = option_file_text(password.expose())?;
        let mut f = tempfile::Builder::new()
            .prefix("holdfast-mysql-")
            .suffix(".cnf")
            .permissions(std::fs::Permissions::from_mode(0o600))
            .tempfile()
            .map_err(|e| EngineError::io("creating a private option file for the password", e))?;
        f.write_all(text.as_bytes())
            .and_then(|()| f.flush())
            .map_err(|e| EngineError::io("writing the private option file", e))?;
        Ok(OptionFile(f))
    }

    fn path(&self) -> &Path {
        self.0.path()
    }
}

/// The options a connection parameter of the address (`?socket=…`)
/// becomes; `None` for parameters the tools do not have. `ssl`,
/// `ssl-verify-server-cert` and `compress` are switches (`=0` or `=false`
/// turns them off); the rest take their value. `_` and `-` are alike.
fn param_arg(key: &str, value: &str) -> Option<String> {
    let key = key.replace('_', "-");
    match key.as_str() {
        "ssl" | "ssl-verify-server-cert" | "compress" => {
            Some(if matches!(value, "0" | "false" | "off" | "no") {
                format!("--skip-{key}")
            } else {
                format!("--{key}")
            })
        }
        "socket" | "ssl-ca" | "ssl-capath" | "ssl-cert" | "ssl-key" | "ssl-cipher" | "ssl-crl"
        | "ssl-crlpath" | "ssl-mode" | "tls-version" => Some(format!("--{key}={value}")),
        _ => None,
    }
}

/// The connection options for an address (after the option file).
///
/// A host means TCP (`--protocol=TCP`), except `localhost` without a
/// port, which the tools take to mean their local socket — as everyone
/// who writes `-h localhost` expects. `?socket=` names that socket.
pub fn connection_args(addr: &DbAddress) -> Vec<String> {
    let mut args = Vec::new();
    if let Some(h) = &addr.host {
        args.push(format!("--host={h}"));
        let local_socket = h == "localhost" && addr.port.is_none();
        if !local_socket && !addr.params.contains_key("socket") {
            args.push("--protocol=TCP".into());
        }
    }
    if let Some(p) = addr.port {
        args.push(format!("--port={p}"));
    }
    if let Some(u) = &addr.user {
        args.push(format!("--user={u}"));
    }
    for (k, v) in &addr.params {
        args.extend(param_arg(k, v));
    }
    args
}

/// A MySQL string literal for `s`, written in hex so that no escaping —
/// which depends on the server's `sql_mode` — is involved.
pub fn sql_string(s: &str) -> String {
    let hex: String = s.bytes().map(|b| format!("{b:02X}")).collect();
    if hex.is_empty() {
        "''".into()
    } else {
        format!("_utf8mb4 X'{hex}'")
    }
}

/// A field of the client's `--batch` output: tabs, newlines, NULs and
/// backslashes come escaped.
fn unescape_batch(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('0') => out.push('\0'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// `ERROR 1045 (28000): Access denied …` or `mariadb-dump: Got error: 1045:
/// "Access denied …" when trying to connect`: the error number and text.
fn parse_client_error(stderr: &str) -> Option<(u32, String)> {
    for line in stderr.lines() {
        if let Some(rest) = line.strip_prefix("ERROR ") {
            let code: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
            let msg = rest.split_once(": ").map(|(_, m)| m).unwrap_or(rest);
            if let Ok(code) = code.parse() {
                return Some((code, msg.trim().to_string()));
            }
        }
        if let Some((_, rest)) = line.split_once("Got error: ") {
            let (code, msg) = rest.split_once(": ")?;
            let msg = msg.trim();
            let msg = msg
                .strip_prefix('"')
                .and_then(|m| m.rsplit_once('"'))
                .map(|(m, _)| m)
                .unwrap_or(msg);
            if let Ok(code) = code.trim().parse() {
                return Some((code, msg.to_string()));
            }
        }
    }
    None
}

/// The system error a connection failure ends with — `(111)` — in words.
/// MariaDB's client reports a refused connection as 115 (the non-blocking
/// connect's EINPROGRESS), so both read as refused.
fn connect_errno_hint(msg: &str) -> Option<&'static str> {
    let inner = msg.trim_end().strip_suffix(')')?;
    let errno = inner.rsplit_once('(')?.1;
    Some(match errno {
        "111" | "115" => "connection refused",
        "110" => "connection timed out",
        "113" => "no route to host",
        "2" => "no such socket",
        "13" => "permission denied",
        _ => return None,
    })
}

/// Turn what a tool printed on failure into a message that says what went
/// wrong, naming the (redacted) address. The tools never print passwords.
/// Whether a client error is worth another try: the client's connection
/// errors (2002 socket, 2003 TCP, 2005 unknown host, 2013 lost, 2026 TLS)
/// and 1040 (too many connections) are transient; the rest — wrong
/// password, missing database, SQL errors — permanent.
pub fn client_error_fault(stderr: &str) -> Fault {
    match parse_client_error(stderr) {
        Some((2002 | 2003 | 2005 | 2013 | 2026 | 1040, _)) => Fault::Transient,
        Some(_) => Fault::Permanent,
        None => crate::command::tool_fault(stderr),
    }
}

pub fn describe_client_error(
    stderr: &str,
    target: &str,
    database: Option<&str>,
    tool: &str,
    status: &str,
) -> String {
    let Some((code, msg)) = parse_client_error(stderr) else {
        let tail = stderr.trim();
        return if tail.is_empty() {
            format!("{tool} {status} against {target}")
        } else {
            format!("{tool} {status} against {target}: {tail}")
        };
    };
    match code {
        // Wrong password or user; a user that must log in over the socket.
        1045 | 1698 => format!("authentication failed for {target}: {msg}"),
        1044 => format!("access denied to {target}: {msg}"),
        1049 => match database {
            Some(db) => format!("database {db:?} does not exist on {target} ({msg})"),
            None => format!("{target}: {msg}"),
        },
        // Can't connect (socket, TCP), unknown host, lost during the
        // handshake, TLS failure.
        2002 | 2003 | 2005 | 2013 | 2026 => match connect_errno_hint(&msg) {
            Some(hint) => format!("cannot connect to {target}: {msg} ({hint})"),
            None => format!("cannot connect to {target}: {msg}"),
        },
        _ => format!("{tool} against {target}: {msg}"),
    }
}

/// A MySQL or MariaDB server reached through its tools.
pub struct MyClient {
    pub addr: DbAddress,
    pub tools: MyTools,
    /// The password, if holdfast was given one; kept only in this file.
    option_file: Option<OptionFile>,
}

impl MyClient {
    /// Check the address and find the tools; write the option file.
    pub fn new(addr: DbAddress, password: Option<Secret>) -> Result<MyClient> {
        for (k, v) in &addr.params {
            if param_arg(k, v).is_none() {
                return Err(EngineError::Invalid(format!(
                    "unknown connection parameter {k:?} in {}: use socket, ssl, ssl-ca, ssl-capath, \
                     ssl-cert, ssl-key, ssl-cipher, ssl-crl, ssl-crlpath, ssl-mode, \
                     ssl-verify-server-cert, tls-version or compress",
                    SourceAddress::Mysql(addr.clone())
                )));
            }
        }
        let tools = MyTools::find();
        let option_file = password.as_ref().map(OptionFile::new).transpose()?;
        Ok(MyClient {
            addr,
            tools,
            option_file,
        })
    }

    /// The address, redacted, for messages.
    pub fn display(&self) -> String {
        SourceAddress::Mysql(self.addr.clone()).to_string()
    }

    fn addr_for(&self, database: Option<&str>) -> String {
        match database {
            Some(db) => SourceAddress::Mysql(self.addr.with_database(db)).to_string(),
            None => self.display(),
        }
    }

    /// A command for one of the tools, connected (not yet to a database).
    /// The option file must be the first argument: the tools read
    /// `--defaults-extra-file` only there.
    pub fn command(&self, program: &Path) -> Command {
        let mut c = holdfast_confine::tool_env::command(program);
        // Confined (the service): our option file only, or none at all —
        // never the host's option files and the passwords they may hold.
        match (&self.option_file, holdfast_confine::tool_env::confined()) {
            (Some(f), true) => c.arg(format!("--defaults-file={}", f.path().display())),
            (Some(f), false) => c.arg(format!("--defaults-extra-file={}", f.path().display())),
            (None, true) => c.arg("--no-defaults"),
            (None, false) => &mut c,
        };
        if self.option_file.is_some() {
            // Ours, not one someone left in the environment.
            c.env_remove("MYSQL_PWD");
        }
        c.args(connection_args(&self.addr));
        c
    }

    /// The client in batch mode, connected to `database` (or none), with
    /// `args`; and what it is called.
    pub fn client_command(
        &self,
        database: Option<&str>,
        args: &[&str],
    ) -> Result<(Command, String)> {
        let program = self.tools.client()?;
        let mut cmd = self.command(program);
        cmd.args([
            "--batch",
            "--default-character-set=utf8mb4",
            CONNECT_TIMEOUT,
        ]);
        cmd.args(args)
            .args(database.map(|db| format!("--database={db}")));
        Ok((cmd, tool_name(program)))
    }

    /// Run `sql` (statements separated by `;`) in `database` (or none);
    /// the result rows of every statement, fields split and unescaped.
    pub fn query(&self, database: Option<&str>, sql: &str) -> Result<Vec<Vec<String>>> {
        let (cmd, name) = self.client_command(database, &["--skip-column-names"])?;
        let program = Path::new(cmd.get_program()).display().to_string();
        let out = run_with_input(cmd, sql, &program)?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let (target, how) = (self.addr_for(database), how_it_ended(out.status));
            let message = describe_client_error(&stderr, &target, database, &name, &how);
            return Err(EngineError::source_with(
                client_error_fault(&stderr),
                message,
            ));
        }
        Ok(result_rows(&out.stdout, "\t", unescape_batch))
    }

    /// Version of the server and character set of `database` (and proof
    /// that we can log in and the database exists).
    pub fn server_info(&self, database: Option<&str>) -> Result<ServerInfo> {
        let rows = self.query(
            database,
            "SELECT VERSION(), @@character_set_database, @@collation_database;",
        )?;
        let [version, character_set, collation] =
            crate::database::one_row(rows, "the server did not report its version")?;
        Ok(ServerInfo {
            version,
            character_set,
            collation,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> DbAddress {
        match SourceAddress::parse(s).unwrap() {
            SourceAddress::Mysql(d) => d,
            _ => panic!("not mysql"),
        }
    }

    #[test]
    fn option_file_escapes_the_password() {
        assert_eq!(
            option_file_text("plain").unwrap(),
            "[client]\npassword=\"plain\"\n"
        );
        assert_eq!(
            option_file_text(" a\"b\\c#d 'e\\ ").unwrap(),
            "[client]\npassword=\" a\\\"b\\\\c#d 'e\\\\ \"\n"
        );
        assert_eq!(
            option_file_text("line1\nline2\r\tx").unwrap(),
            "[client]\npassword=\"line1\\nline2\\r\\tx\"\n"
        );
        // Nothing unescaped can end the value or start a new line.
        let nasty = option_file_text("\"\n[mysqld]\nx=\"").unwrap();
        assert_eq!(nasty.lines().count(), 2, "{nasty}");
        assert!(option_file_text("a\0b").is_err());
        assert!(option_file_text(&"x".repeat(5000)).is_err());
    }

    #[test]
    fn the_option_file_is_private_and_removed() {
        let f = OptionFile::new(&Secret::new("hunter2")).unwrap();
        let path = f.path().to_path_buf();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(std::fs::read_to_string(&path).unwrap().contains("hunter2"));
        drop(f);
        assert!(!path.exists());
    }

    #[test]
    fn connection_options() {
        assert_eq!(
            connection_args(&addr("mysql://app@db.example:3307/shop")),
            [
                "--host=db.example",
                "--protocol=TCP",
                "--port=3307",
                "--user=app"
            ]
        );
        // localhost alone is the local socket, as for the tools.
        assert_eq!(
            connection_args(&addr("mysql://root@localhost/shop")),
            ["--host=localhost", "--user=root"]
        );
        assert_eq!(
            connection_args(&addr("mysql://root@localhost:3306/shop")),
            [
                "--host=localhost",
                "--protocol=TCP",
                "--port=3306",
                "--user=root"
            ]
        );
        assert_eq!(
            connection_args(&addr(
                "mariadb:///shop?socket=/run/mysqld/mysqld.sock&ssl=0&ssl_ca=/ca.pem"
            )),
            [
                "--socket=/run/mysqld/mysqld.sock",
                "--skip-ssl",
                "--ssl-ca=/ca.pem"
            ]
        );
        // The password is never an argument.
        let a = addr("mysql://u:hunter2@h/db");
        assert!(!connection_args(&a).concat().contains("hunter2"));
        let e = MyClient::new(addr("mysql://u@h/db?sslmode=require"), None)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("unknown connection parameter \"sslmode\""),
            "{e}"
        );
    }

    #[test]
    fn tool_versions() {
        let t = DumpTool::new(
            "/usr/bin/mariadb-dump".into(),
            "mariadb-dump  Ver 10.19 Distrib 10.11.14-MariaDB, for debian-linux-gnu (x86_64)"
                .into(),
        );
        assert_eq!((t.flavor, t.release), (Flavor::MariaDb, Some((10, 11))));
        assert_eq!(t.name(), "mariadb-dump");
        let t = DumpTool::new(
            "/usr/bin/mariadb-dump".into(),
            "mariadb-dump from 11.4.2-MariaDB, client 10.19 for Linux (x86_64)".into(),
        );
        assert_eq!((t.flavor, t.release), (Flavor::MariaDb, Some((11, 4))));
        let t = DumpTool::new(
            "/usr/bin/mysqldump".into(),
            "mysqldump  Ver 8.0.36 for Linux on x86_64 (MySQL Community Server - GPL)".into(),
        );
        assert_eq!((t.flavor, t.release), (Flavor::Mysql, Some((8, 0))));
        let t = DumpTool::new(
            "/usr/bin/mysqldump".into(),
            "mysqldump  Ver 10.13 Distrib 5.7.44, for Linux (x86_64)".into(),
        );
        assert_eq!((t.flavor, t.release), (Flavor::Mysql, Some((5, 7))));
        let t = DumpTool::new("/x/mysqldump".into(), "garbage".into());
        assert_eq!((t.flavor, t.release), (Flavor::Mysql, None));
    }

    #[test]
    fn client_errors_say_what_went_wrong() {
        let target = "mysql://holdfast@127.0.0.1:3306/shop";
        let d = |stderr: &str| {
            describe_client_error(
                stderr,
                target,
                Some("shop"),
                "mariadb",
                "exited with status 1",
            )
        };
        assert_eq!(
            d(
                "ERROR 1045 (28000): Access denied for user 'holdfast'@'127.0.0.1' (using password: YES)\n"
            ),
            "authentication failed for mysql://holdfast@127.0.0.1:3306/shop: \
             Access denied for user 'holdfast'@'127.0.0.1' (using password: YES)"
        );
        assert_eq!(
            d("ERROR 2002 (HY000): Can't connect to server on '127.0.0.1' (115)"),
            "cannot connect to mysql://holdfast@127.0.0.1:3306/shop: \
             Can't connect to server on '127.0.0.1' (115) (connection refused)"
        );
        assert_eq!(
            d("ERROR 2005 (HY000): Unknown server host 'nope.invalid' (-2)"),
            "cannot connect to mysql://holdfast@127.0.0.1:3306/shop: \
             Unknown server host 'nope.invalid' (-2)"
        );
        assert_eq!(
            d("ERROR 1049 (42000): Unknown database 'shop'"),
            "database \"shop\" does not exist on mysql://holdfast@127.0.0.1:3306/shop \
             (Unknown database 'shop')"
        );
        // mariadb-dump's own format.
        assert!(
            d("mariadb-dump: Got error: 1045: \"Access denied for user 'x'@'h' (using password: YES)\" when trying to connect")
                .starts_with("authentication failed for mysql://holdfast@127.0.0.1:3306/shop: Access denied for user 'x'@'h'")
        );
        assert_eq!(
            d("ERROR 1064 (42000) at line 3: You have an error in your SQL syntax"),
            "mariadb against mysql://holdfast@127.0.0.1:3306/shop: You have an error in your SQL syntax"
        );
        assert_eq!(
            d(""),
            "mariadb exited with status 1 against mysql://holdfast@127.0.0.1:3306/shop"
        );
        assert_eq!(
            d("mariadb: unknown variable 'ssl-mode=REQUIRED'"),
            "mariadb exited with status 1 against mysql://holdfast@127.0.0.1:3306/shop: \
             mariadb: unknown variable 'ssl-mode=REQUIRED'"
        );
    }

    #[test]
    fn literals_and_batch_output() {
        assert_eq!(sql_string("ab"), "_utf8mb4 X'6162'");
        assert_eq!(sql_string(""), "''");
        assert_eq!(unescape_batch("a\\tb\\\\c\\nd\\0"), "a\tb\\c\nd\0");
        assert_eq!(unescape_batch("plain"), "plain");
    }
}
