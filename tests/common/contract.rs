//! What every database dialect must do, written once and run against each
//! real server (the way `tests/catalog.rs` runs one body on SQLite and on
//! PostgreSQL): `tests/postgres.rs` and `tests/mysql.rs` call these bodies
//! with their server, and keep only what is their own.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use super::{Repo, ok_summary, sha256_hex, snapshot_id, stderr, summary};

/// What names a dialect: its address scheme and what its tools are called.
pub struct Dialect {
    /// The address's scheme (`postgres`, `mysql`), also the source kind a
    /// snapshot records.
    pub scheme: &'static str,
    /// The environment variable its tools read a password from.
    pub password_env: &'static str,
    /// The environment variable naming the directory holdfast takes the
    /// client tools from.
    pub tools_env: &'static str,
    /// The dump tool's name as it appears in a process list.
    pub dump_tool: &'static str,
}

/// A real database server, as the contract sees it.
pub trait Server: Sync {
    fn dialect(&self) -> &'static Dialect;
    /// The test user's password, and the port the server listens on.
    fn login(&self) -> (&str, u16);
    /// `postgres://…/DB` or `mysql://…/DB`: the test user (`holdfast` on
    /// every server the tests start), without a password.
    fn url(&self, db: &str) -> String {
        let port = self.login().1;
        format!("{}://holdfast@127.0.0.1:{port}/{db}", self.dialect().scheme)
    }
    fn password(&self) -> &str {
        self.login().0
    }
    fn create_db(&self, db: &str);
    /// Run SQL in `db`; what the client printed.
    fn sql(&self, db: &str, sql: &str) -> String;
    /// SQL that creates table `name` (`id` primary key, `v` text) holding
    /// the rows 1..=n, `v` made by `value` from the row number (an SQL
    /// expression over the column `n`).
    fn numbered_table(&self, name: &str, n: u64, value: &str) -> String;
    /// The SQL expressions `parts` concatenated.
    fn concat(&self, parts: &[&str]) -> String;
    /// The MD5 (hex) of an integer expression.
    fn md5(&self, int_expr: &str) -> String;
    /// Panics unless the two databases hold the same tables, rows and
    /// objects.
    fn assert_same(&self, a: &str, b: &str);
    /// What the tool's argv may show besides the password: checked while
    /// it runs; a file it names that must be gone afterwards (MySQL's
    /// option file).
    fn check_tool_argv(&self, _argv: &str) -> Option<PathBuf> {
        None
    }
    /// Words an error for a wrong password must contain.
    fn wrong_password_says(&self, db: &str) -> Vec<String>;
    /// Words an error for a missing database must contain.
    fn missing_database_says(&self, db: &str) -> String;
}

/// A database name unique to this test process.
pub fn db_name(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}_{}", N.fetch_add(1, Ordering::Relaxed))
}

/// A new database (named after `prefix`) that `sql` filled; its name.
pub fn new_db(server: &dyn Server, prefix: &str, sql: &str) -> String {
    let db = db_name(prefix);
    server.create_db(&db);
    server.sql(&db, sql);
    db
}

/// The holdfast command with the server's password in the environment.
pub fn cmd(server: &dyn Server, repo: &Repo) -> Command {
    let mut c = repo.cmd();
    c.env(server.dialect().password_env, server.password());
    c
}

pub fn backup_json(
    server: &dyn Server,
    repo: &Repo,
    db: &str,
    extra: &[&str],
) -> serde_json::Value {
    let out = cmd(server, repo)
        .args(["backup", "--json"])
        .args(extra)
        .arg(server.url(db))
        .output()
        .unwrap();
    ok_summary(&out)
}

pub fn restore(server: &dyn Server, repo: &Repo, id: &str, to: &str, extra: &[&str]) -> Output {
    cmd(server, repo)
        .args(["restore", id, "--json"])
        .args(extra)
        .args(["--to", to])
        .output()
        .unwrap()
}

/// A restore into a database that holds anything is refused (and leaves it
/// alone) unless `--clean`, which replaces it; an existing empty database
/// is used as it is.
pub fn restore_refuses_a_non_empty_database_unless_clean(server: &dyn Server) {
    let src = db_name("small");
    server.create_db(&src);
    let v = server.concat(&["'v'", "n"]);
    server.sql(&src, &server.numbered_table("a", 500, &v));
    let repo = Repo::new();
    let id = snapshot_id(&backup_json(server, &repo, &src, &[]));

    let dst = db_name("busy");
    server.create_db(&dst);
    server.sql(
        &dst,
        "CREATE TABLE precious (x INT); INSERT INTO precious VALUES (42);",
    );
    let out = restore(server, &repo, &id, &server.url(&dst), &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("is not empty"), "{}", stderr(&out));
    assert!(stderr(&out).contains("--clean"), "{}", stderr(&out));
    assert_eq!(server.sql(&dst, "SELECT x FROM precious").trim(), "42");

    let out = restore(server, &repo, &id, &server.url(&dst), &["--clean"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        summary(&String::from_utf8_lossy(&out.stdout))["created"],
        true
    );
    server.assert_same(&src, &dst);

    let empty = db_name("empty");
    server.create_db(&empty);
    let out = restore(server, &repo, &id, &server.url(&empty), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        summary(&String::from_utf8_lossy(&out.stdout))["created"],
        false
    );
    assert_eq!(server.sql(&empty, "SELECT COUNT(*) FROM a").trim(), "500");
}

/// A second dump after a few changed rows adds a few small chunks, not
/// megabytes; the manifest counts the rows.
pub fn nightly_dumps_deduplicate(server: &dyn Server) {
    let src = db_name("nightly");
    server.create_db(&src);
    let payload = server.concat(&[&server.md5("n"), "REPEAT(' ', 60)", &server.md5("n * 7")]);
    server.sql(&src, &server.numbered_table("events", 200_000, &payload));
    let repo = Repo::new();
    let first = backup_json(server, &repo, &src, &[]);
    server.sql(
        &src,
        "UPDATE events SET v = 'changed' WHERE id % 5000 = 0; INSERT INTO events VALUES (300000, 'new');",
    );
    let second = backup_json(server, &repo, &src, &[]);
    assert_eq!(second["source"]["rows"], 200001);
    let size = first["total_bytes_processed"].as_u64().unwrap();
    let added = second["data_added"].as_u64().unwrap();
    assert!(size > 20_000_000, "{size}");
    // 41 changed rows in a 25 MB dump: a few small chunks, not megabytes.
    assert!(
        added < size / 20,
        "second dump added {added} of {size} bytes"
    );
}

/// While a backup with a password file runs, no process's argv holds the
/// password (every process on the machine is looked at, the dump tool
/// among them).
pub fn the_password_never_appears_in_any_command_line(server: &dyn Server) {
    let src = db_name("argv");
    server.create_db(&src);
    let v = format!("REPEAT({}, 8)", server.md5("n"));
    server.sql(&src, &server.numbered_table("a", 300_000, &v));
    let repo = Repo::new();
    let tmp = tempfile::tempdir().unwrap();
    let pwfile = tmp.path().join("pw");
    std::fs::write(&pwfile, format!("{}\n", server.password())).unwrap();
    let mut child = repo
        .cmd()
        .args(["backup", "--source-password-file"])
        .arg(&pwfile)
        .arg(server.url(&src))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let tool = server.dialect().dump_tool;
    let mut saw_tool = false;
    let mut left: Option<PathBuf> = None;
    loop {
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
                continue;
            };
            let text = String::from_utf8_lossy(&cmdline);
            assert!(
                !text.contains(server.password()),
                "password in argv of {}: {text}",
                e.path().display()
            );
            // Our backup's own dump tool (other tests run theirs).
            let ours = parent_pid(&e.path()) == Some(child.id());
            let dumping = (text.contains(&format!("{tool}\0"))
                || text.contains(&format!("/{tool}")))
                && !text.contains("\0--version");
            if ours && dumping {
                saw_tool = true;
                if left.is_none() {
                    left = server.check_tool_argv(&text);
                }
            }
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(saw_tool, "the scan never saw {tool} running");
    if let Some(f) = left {
        assert!(!f.exists(), "{} was left behind", f.display());
    }
    assert_eq!(repo.snapshot_ids().len(), 1);
}

/// The parent of a process, from `/proc/PID/stat` (its fourth field,
/// after the parenthesised command name).
pub fn parent_pid(proc_dir: &std::path::Path) -> Option<u32> {
    let stat = std::fs::read_to_string(proc_dir.join("stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// A wrong password, a password in the address, nobody listening and a
/// missing database each fail with a clear message that shows no secret,
/// and write no snapshot.
pub fn connection_problems_are_clear_and_secret_free(server: &dyn Server) {
    let repo = Repo::new();
    let src = db_name("conn");
    server.create_db(&src);
    // Wrong password.
    let out = repo
        .cmd()
        .env(server.dialect().password_env, "not-the-password")
        .args(["backup", &server.url(&src)])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(!out.status.success());
    for words in server.wrong_password_says(&src) {
        assert!(err.contains(&words), "{words:?} not in: {err}");
    }
    assert!(!err.contains("not-the-password"), "{err}");
    // A wrong password in the address is never shown.
    let url = format!(
        "{}://holdfast:sekrit-in-url@127.0.0.1:{}/{src}",
        server.dialect().scheme,
        server.login().1
    );
    let out = repo.cmd().args(["backup", &url]).output().unwrap();
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        !err.contains("sekrit-in-url") && err.contains("holdfast:***@"),
        "{err}"
    );
    // Nobody listening.
    let port = super::servers::free_port();
    let out = cmd(server, &repo)
        .args([
            "backup",
            &format!("{}://holdfast@127.0.0.1:{port}/x", server.dialect().scheme),
        ])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!(
            "cannot connect to {}://holdfast@127.0.0.1",
            server.dialect().scheme
        )) && err.contains("refused"),
        "{err}"
    );
    // A database that does not exist.
    let out = cmd(server, &repo)
        .args(["backup", &server.url("no_such_db")])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains(&server.missing_database_says("no_such_db")),
        "{err}"
    );
    assert!(repo.snapshot_ids().is_empty());
}

/// A dump-mode backup of `src` (tagged `nightly`) whose summary names the
/// dialect, the database and its `tables`: the snapshot's id, its manifest
/// and the dump, which the manifest's first file is (by its SHA-256).
pub fn dump_backup(
    server: &dyn Server,
    repo: &Repo,
    src: &str,
    tables: u64,
) -> (String, serde_json::Value, Vec<u8>) {
    let s = backup_json(server, repo, src, &["--tag", "nightly"]);
    let id = snapshot_id(&s);
    assert_eq!(s["source"]["kind"], server.dialect().scheme);
    assert_eq!(s["source"]["mode"], "dump");
    assert_eq!(s["source"]["database"], src);
    assert_eq!(s["source"]["tables"], tables);
    let manifest = repo.manifest(&id);
    let dump = repo.file(&id, &format!("/{src}.sql"));
    assert_eq!(manifest["files"][0]["sha256"], sha256_hex(&dump));
    (id, manifest, dump)
}

/// restic checks the repository, reading all data, and dumps `path` of
/// snapshot `id` as `want`.
pub fn restic_agrees(repo: &Repo, id: &str, path: &str, want: &[u8]) {
    super::run_ok(repo.restic().args(["check", "--read-data"]));
    let r = repo.restic().args(["dump", id, path]).output().unwrap();
    assert_eq!(r.stdout, want);
}

/// Restore snapshot `id` into `dst`, a database that does not exist yet:
/// it is created and verified, with `tables` tables; the summary.
pub fn restore_new(
    server: &dyn Server,
    repo: &Repo,
    id: &str,
    dst: &str,
    tables: u64,
) -> serde_json::Value {
    let out = restore(server, repo, id, &server.url(dst), &[]);
    assert!(out.status.success(), "restore failed: {}", stderr(&out));
    let r = summary(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(r["created"], true);
    assert_eq!(r["verified"], true);
    assert_eq!(r["tables"], tables);
    r
}

/// The server's password never lands in the snapshot's metadata, which
/// names the source by its address.
pub fn the_secret_stays_out_of_the_snapshot(server: &dyn Server, repo: &Repo, id: &str, src: &str) {
    let snap = repo.ok(&["cat", "snapshot", id]);
    assert!(!snap.contains(server.password()));
    assert!(snap.contains(&server.url(src)), "{snap}");
}

/// A backup of `src` with the client tools taken from `tools`: it fails,
/// saying `says`; all it said.
pub fn backup_fails_with_tools(
    server: &dyn Server,
    repo: &Repo,
    tools: &Path,
    src: &str,
    says: &str,
) -> String {
    let out = cmd(server, repo)
        .env(server.dialect().tools_env, tools)
        .args(["backup", &server.url(src)])
        .output()
        .unwrap();
    let err = stderr(&out);
    let name = tools.file_name().unwrap().to_string_lossy();
    assert!(!out.status.success(), "{name}: succeeded");
    assert!(err.contains(says), "{name}: {err}");
    err
}

/// Each `(name, script, says)`: with the tools `make_tools` puts into
/// `tmp/name` for `script`, a backup of `src` fails saying `says` and that
/// no snapshot was written. The repository holds no snapshot after and
/// passes its check.
pub fn broken_dumps_write_no_snapshot(
    server: &dyn Server,
    repo: &Repo,
    src: &str,
    tmp: &Path,
    cases: &[(&str, &str, &str)],
    make_tools: impl Fn(&Path, &str),
) {
    for &(name, script, says) in cases {
        let dir = tmp.join(name);
        make_tools(&dir, script);
        let err = backup_fails_with_tools(server, repo, &dir, src, says);
        assert!(err.contains("no snapshot was written"), "{name}: {err}");
    }
    assert!(repo.snapshot_ids().is_empty());
    repo.ok(&["check", "--read-data"]);
}

/// A backup with an empty tool directory fails saying `says`, and writes
/// no snapshot.
pub fn no_tools_write_no_snapshot(
    server: &dyn Server,
    repo: &Repo,
    src: &str,
    tmp: &Path,
    says: &str,
) {
    let empty = tmp.join("nothing");
    std::fs::create_dir_all(&empty).unwrap();
    backup_fails_with_tools(server, repo, &empty, src, says);
    assert!(repo.snapshot_ids().is_empty());
}
