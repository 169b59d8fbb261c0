//! What every database dialect must do, written once and run against each
//! real database (the way `tests/catalog.rs` runs one body on SQLite and on
//! PostgreSQL): `tests/postgres.rs`, `tests/mysql.rs` and `tests/sqlite.rs`
//! call these bodies with their database, and keep only what is their own.
//!
//! Two traits say what a body may rely on. [`Database`] is what every
//! dialect has, SQLite's file included: an address, SQL, a whole copy
//! (a dump tool's SQL, or SQLite's database file copied with the online
//! backup API) and tables mode. [`Server`] adds what only a database server
//! has: a password, a port that may refuse, client tools that may be
//! missing or broken. A body about those takes a `&dyn Server`: SQLite has
//! none of them, so it cannot be handed such a body (rather than pass it
//! without checking anything).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use super::{
    Repo, assert_no_file_mentions, manifest_rows, ok_summary, sha256_hex, snapshot_id, stderr,
    summary, tenant_two_tables,
};

/// What names a dialect, and what it does where dialects differ.
pub struct Dialect {
    /// The address's scheme (`postgres`, `mysql`, `sqlite`), also the
    /// source kind a snapshot records.
    pub scheme: &'static str,
    /// The mode a whole copy's snapshot records: `dump` (the dump tool's
    /// SQL) or `file` (SQLite's database file itself).
    pub whole_mode: &'static str,
    /// What a restore with `--clean` over a database that holds something
    /// reports as `created`: a server drops the database and creates it
    /// again; SQLite moves the restored file over the one it found.
    pub clean_creates: bool,
}

/// What a server's client tools are called, and where they look.
pub struct Tools {
    /// The environment variable its tools read a password from.
    pub password_env: &'static str,
    /// The environment variable naming the directory holdfast takes the
    /// client tools from.
    pub tools_env: &'static str,
    /// The dump tool's name as it appears in a process list.
    pub dump_tool: &'static str,
}

/// A database, as the contract sees it: a server's, or an SQLite file.
pub trait Database: Sync {
    fn dialect(&self) -> &'static Dialect;
    /// The address of `db`: `postgres://…/DB` or `mysql://…/DB` for the
    /// test user (`holdfast` on every server the tests start), without a
    /// password; `sqlite:///…` for a file.
    fn url(&self, db: &str) -> String;
    /// The holdfast command on `repo` with what the database needs in the
    /// environment (a server's password: [`with_password`]).
    fn cmd(&self, repo: &Repo) -> Command {
        repo.cmd()
    }
    /// What a whole copy of `db` is called: the summary's `database`, and
    /// the file the snapshot stores (a dump: `DB.sql`).
    fn whole_copy_names(&self, db: &str) -> (String, String) {
        (db.to_string(), format!("{db}.sql"))
    }
    /// A new, empty database `db`.
    fn create_db(&self, db: &str);
    /// Run SQL in `db`; what the client printed, a line a row.
    fn sql(&self, db: &str, sql: &str) -> String;
    /// A row source for a FROM clause: the column `n` holding 1..=count.
    fn series(&self, count: u64) -> String;
    /// The type of an integer primary key column the database numbers.
    fn auto_key(&self) -> &'static str;
    /// How tables mode names `table` (in the manifest, and its file
    /// `tables/NAME.csv`): with its schema where the database has schemas.
    fn qualified(&self, table: &str) -> String {
        table.to_string()
    }
    /// Whether `db` holds a table called `table`.
    fn has_table(&self, db: &str, table: &str) -> bool;
    /// SQL that creates table `name` (`id` primary key, `v` text) holding
    /// the rows 1..=n, `v` made by `value` from the row number (an SQL
    /// expression over the column `n`).
    fn numbered_table(&self, name: &str, n: u64, value: &str) -> String {
        format!(
            "CREATE TABLE {name} (id INT PRIMARY KEY, v TEXT); \
             INSERT INTO {name} SELECT n, {value} FROM {};",
            self.series(n)
        )
    }
    /// The SQL expressions `parts` concatenated.
    fn concat(&self, parts: &[&str]) -> String;
    /// 32 hex digits made from an integer expression, different for each
    /// value (its MD5, where the database has MD5).
    fn hex_digest(&self, int_expr: &str) -> String;
    /// Panics unless the two databases hold the same tables, rows and
    /// objects.
    fn assert_same(&self, a: &str, b: &str);
    /// Words an error for a missing database must contain.
    fn missing_database_says(&self, db: &str) -> String;
    /// An application in `db` running `script`, a transaction a line, until
    /// the script ends or the function returned stops it.
    fn start_writer(&self, db: &str, script: String) -> Box<dyn FnOnce()>;
}

/// A real database server: what it has that a file database does not.
pub trait Server: Database {
    fn tools(&self) -> &'static Tools;
    /// The test user's password, and the port the server listens on.
    fn login(&self) -> (&str, u16);
    fn password(&self) -> &str {
        self.login().0
    }
    /// What the tool's argv may show besides the password: checked while
    /// it runs; a file it names that must be gone afterwards (MySQL's
    /// option file).
    fn check_tool_argv(&self, _argv: &str) -> Option<PathBuf> {
        None
    }
    /// Words an error for a wrong password must contain.
    fn wrong_password_says(&self, db: &str) -> Vec<String>;
}

/// The holdfast command on `repo` with the server's password in the
/// environment its tools read: a server's [`Database::cmd`].
pub fn with_password(server: &dyn Server, repo: &Repo) -> Command {
    let mut c = repo.cmd();
    c.env(server.tools().password_env, server.password());
    c
}

/// An application: `client`, a server's SQL client, fed `script` on its
/// standard input; the function that stops it.
pub fn client_writer(mut client: Command, script: String) -> Box<dyn FnOnce()> {
    let mut child = client
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        use std::io::Write;
        let _ = stdin.write_all(script.as_bytes());
    });
    Box::new(move || {
        let _ = child.kill();
        let _ = child.wait();
        let _ = feeder.join();
    })
}

/// A database name unique to this test process.
pub fn db_name(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}_{}", N.fetch_add(1, Ordering::Relaxed))
}

/// A new database (named after `prefix`) that `sql` filled; its name.
pub fn new_db(db: &dyn Database, prefix: &str, sql: &str) -> String {
    let name = db_name(prefix);
    db.create_db(&name);
    db.sql(&name, sql);
    name
}

pub fn backup_json(
    db: &dyn Database,
    repo: &Repo,
    name: &str,
    extra: &[&str],
) -> serde_json::Value {
    let out = db
        .cmd(repo)
        .args(["backup", "--json"])
        .args(extra)
        .arg(db.url(name))
        .output()
        .unwrap();
    ok_summary(&out)
}

pub fn restore(db: &dyn Database, repo: &Repo, id: &str, to: &str, extra: &[&str]) -> Output {
    db.cmd(repo)
        .args(["restore", id, "--json"])
        .args(extra)
        .args(["--to", to])
        .output()
        .unwrap()
}

/// A restore into a database that holds anything is refused (and leaves it
/// alone) unless `--clean`, which replaces it; an existing empty database
/// is used as it is.
pub fn restore_refuses_a_non_empty_database_unless_clean(db: &dyn Database) {
    let src = db_name("small");
    db.create_db(&src);
    let v = db.concat(&["'v'", "n"]);
    db.sql(&src, &db.numbered_table("a", 500, &v));
    let repo = Repo::new();
    let id = snapshot_id(&backup_json(db, &repo, &src, &[]));

    let dst = db_name("busy");
    db.create_db(&dst);
    db.sql(
        &dst,
        "CREATE TABLE precious (x INT); INSERT INTO precious VALUES (42);",
    );
    let out = restore(db, &repo, &id, &db.url(&dst), &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("is not empty"), "{}", stderr(&out));
    assert!(stderr(&out).contains("--clean"), "{}", stderr(&out));
    assert_eq!(db.sql(&dst, "SELECT x FROM precious").trim(), "42");

    let out = restore(db, &repo, &id, &db.url(&dst), &["--clean"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        summary(&String::from_utf8_lossy(&out.stdout))["created"],
        db.dialect().clean_creates
    );
    db.assert_same(&src, &dst);

    let empty = db_name("empty");
    db.create_db(&empty);
    let out = restore(db, &repo, &id, &db.url(&empty), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        summary(&String::from_utf8_lossy(&out.stdout))["created"],
        false
    );
    assert_eq!(db.sql(&empty, "SELECT COUNT(*) FROM a").trim(), "500");
}

/// A second whole copy after a few changed rows adds a few small chunks,
/// not megabytes; the manifest counts the rows.
pub fn nightly_backups_deduplicate(db: &dyn Database) {
    let src = db_name("nightly");
    db.create_db(&src);
    let spaces = format!("'{}'", " ".repeat(60));
    let payload = db.concat(&[&db.hex_digest("n"), &spaces, &db.hex_digest("n * 7")]);
    db.sql(&src, &db.numbered_table("events", 200_000, &payload));
    let repo = Repo::new();
    let first = backup_json(db, &repo, &src, &[]);
    db.sql(
        &src,
        "UPDATE events SET v = 'changed' WHERE id % 5000 = 0; INSERT INTO events VALUES (300000, 'new');",
    );
    let second = backup_json(db, &repo, &src, &[]);
    assert_eq!(second["source"]["rows"], 200001);
    let size = first["total_bytes_processed"].as_u64().unwrap();
    let added = second["data_added"].as_u64().unwrap();
    assert!(size > 20_000_000, "{size}");
    // 41 changed rows in a 25 MB copy: a few small chunks, not megabytes.
    assert!(
        added < size / 20,
        "second backup added {added} of {size} bytes"
    );
}

/// While a backup with a password file runs, no process's argv holds the
/// password (every process on the machine is looked at, the dump tool
/// among them).
pub fn the_password_never_appears_in_any_command_line(server: &dyn Server) {
    let src = db_name("argv");
    server.create_db(&src);
    let v = format!("REPEAT({}, 8)", server.hex_digest("n"));
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
    let tool = server.tools().dump_tool;
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
        .env(server.tools().password_env, "not-the-password")
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
    let out = server
        .cmd(&repo)
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
    a_missing_database_is_named(server, &repo);
    assert!(repo.snapshot_ids().is_empty());
}

/// A backup of a database that does not exist fails, naming it.
pub fn a_missing_database_is_named(db: &dyn Database, repo: &Repo) {
    let out = db
        .cmd(repo)
        .args(["backup", &db.url("no_such_db")])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains(&db.missing_database_says("no_such_db")),
        "{err}"
    );
}

/// A whole copy's backup: its snapshot's id, summary and manifest, and
/// the copy as stored.
pub struct Whole {
    pub id: String,
    pub summary: serde_json::Value,
    pub manifest: serde_json::Value,
    pub copy: Vec<u8>,
}

/// A whole-copy backup of `src` (tagged `nightly`) whose summary names the
/// dialect, its whole-copy mode, the database and its `tables`; the copy
/// is the manifest's first file (by its SHA-256).
pub fn whole_backup(db: &dyn Database, repo: &Repo, src: &str, tables: u64) -> Whole {
    let s = backup_json(db, repo, src, &["--tag", "nightly"]);
    let id = snapshot_id(&s);
    let (database, file) = db.whole_copy_names(src);
    assert_eq!(s["source"]["kind"], db.dialect().scheme);
    assert_eq!(s["source"]["mode"], db.dialect().whole_mode);
    assert_eq!(s["source"]["database"], database);
    assert_eq!(s["source"]["tables"], tables);
    let manifest = repo.manifest(&id);
    let copy = repo.file(&id, &format!("/{file}"));
    assert_eq!(manifest["files"][0]["sha256"], sha256_hex(&copy));
    Whole {
        id,
        summary: s,
        manifest,
        copy,
    }
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
    db: &dyn Database,
    repo: &Repo,
    id: &str,
    dst: &str,
    tables: u64,
) -> serde_json::Value {
    let out = restore(db, repo, id, &db.url(dst), &[]);
    assert!(out.status.success(), "restore failed: {}", stderr(&out));
    let r = summary(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(r["created"], true);
    assert_eq!(r["verified"], true);
    assert_eq!(r["tables"], tables);
    r
}

/// The snapshot's metadata names the source by its address; that
/// metadata.
pub fn the_snapshot_names_its_source(
    db: &dyn Database,
    repo: &Repo,
    id: &str,
    src: &str,
) -> String {
    let snap = repo.ok(&["cat", "snapshot", id]);
    assert!(snap.contains(&db.url(src)), "{snap}");
    snap
}

/// The server's password never lands in the snapshot's metadata, which
/// names the source by its address.
pub fn the_secret_stays_out_of_the_snapshot(server: &dyn Server, repo: &Repo, id: &str, src: &str) {
    let snap = the_snapshot_names_its_source(server, repo, id, src);
    assert!(!snap.contains(server.password()));
}

/// Which copy a backup takes: the whole database, or tables mode.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Whole,
    Tables,
}

/// Writes while a backup runs do not tear its snapshot. The application's
/// every transaction bumps a counter, moves money between two of a
/// thousand accounts and writes a ledger line; tables mode reads counter
/// and ledger at different moments (`a_…` first, `z_…` last, a large table
/// between), and only one instant for the whole backup keeps them in step.
/// The backup starts once the counter reached `warm_up`, and the
/// application commits more than `during` transactions while it runs (it
/// is not blocked). The restored database (verified, four tables), for
/// the caller's own checks.
pub fn writes_during_a_backup_do_not_tear_the_snapshot(
    db: &dyn Database,
    mode: Mode,
    warm_up: u64,
    during: u64,
) -> String {
    let digest = db.hex_digest("n");
    let pad = db.concat(&[digest.as_str(); 20]);
    let src = new_db(
        db,
        "busy",
        &format!(
            "CREATE TABLE a_counter (id INT PRIMARY KEY, n BIGINT NOT NULL);
             INSERT INTO a_counter VALUES (1, 0);
             CREATE TABLE b_accounts (id INT PRIMARY KEY, balance BIGINT NOT NULL);
             INSERT INTO b_accounts SELECT n, 1000 FROM {accounts};
             {padding}
             CREATE TABLE z_ledger (id {key}, account INT, delta INT);",
            accounts = db.series(1000),
            padding = db.numbered_table("c_padding", 20_000, &pad),
            key = db.auto_key(),
        ),
    );
    let script: String = (0..200_000u64)
        .map(|i| {
            let (a, b) = (1 + i % 1000, 1 + (i * 7) % 1000);
            format!(
                "BEGIN; UPDATE a_counter SET n = n + 1; \
                 UPDATE b_accounts SET balance = balance - 5 WHERE id = {a}; \
                 UPDATE b_accounts SET balance = balance + 5 WHERE id = {b}; \
                 INSERT INTO z_ledger (account, delta) VALUES ({a}, 5); COMMIT;\n"
            )
        })
        .collect();
    let number = |name: &str, sql: &str| -> u64 { db.sql(name, sql).trim().parse().unwrap() };
    let count = || number(&src, "SELECT n FROM a_counter");
    let stop = db.start_writer(&src, script);
    while count() < warm_up {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let repo = Repo::new();
    let before = count();
    let tables: &[&str] = match mode {
        Mode::Tables => &["--mode", "tables"],
        Mode::Whole => &[],
    };
    let s = backup_json(db, &repo, &src, tables);
    let after = count();
    stop();
    assert!(
        after > before + during,
        "the application kept writing ({before} → {after})"
    );
    let id = snapshot_id(&s);
    if mode == Mode::Tables {
        // The stored CSVs: the counter's one row, the ledger's lines.
        let csv = |t: &str| repo.ok(&["dump", &id, &format!("/tables/{}.csv", db.qualified(t))]);
        let n: u64 = csv("a_counter")
            .lines()
            .nth(1)
            .unwrap()
            .split(',')
            .nth(1)
            .unwrap()
            .trim_matches('"')
            .parse()
            .unwrap();
        assert_eq!(
            csv("z_ledger").lines().count() as u64 - 1,
            n,
            "counter and ledger torn apart"
        );
        assert!(
            n >= before && n <= after,
            "{n} not within {before}..={after}"
        );
    }

    let dst = db_name("busy_restored");
    restore_new(db, &repo, &id, &dst, 4);
    let n = number(&dst, "SELECT n FROM a_counter");
    let lines = number(&dst, "SELECT COUNT(*) FROM z_ledger");
    let money = number(&dst, "SELECT SUM(balance) FROM b_accounts");
    assert_eq!(n, lines, "counter and ledger torn apart");
    assert_eq!(money, 1_000_000, "money appeared or vanished");
    assert!(
        n >= before && n <= after,
        "{n} not within {before}..={after}"
    );
    dst
}

/// A tenant-scoped backup, as [`tenant_scoped_tables_keep_one_customers_rows`]
/// left it.
pub struct TenantBackup {
    pub repo: Repo,
    pub src: String,
    pub id: String,
    pub manifest: serde_json::Value,
    /// What the backup printed.
    pub out: Output,
    /// The restored database.
    pub dst: String,
}

/// A tables-mode backup of tenant 2 (by `org_id`, with `countries` whole,
/// and `extra`) of `countries`, `plans` (no `org_id`, not included),
/// `users` (300, of three tenants) and what `more` (SQL) adds: the manifest
/// counts `countries`, the tenant's 100 `users` and `tables` and `queries`
/// (by name) with their rows; the restore holds the tables alone, only the
/// tenant's users and no `plans`.
pub fn tenant_scoped_tables_keep_one_customers_rows(
    db: &dyn Database,
    more: &str,
    extra: &[&str],
    tables: &[(&str, u64)],
    queries: &[(&str, u64)],
) -> TenantBackup {
    let email = db.concat(&["'u'", "n", "'@example.com'"]);
    let src = new_db(
        db,
        "saas",
        &format!(
            "CREATE TABLE countries (code VARCHAR(2) PRIMARY KEY, name TEXT);
             INSERT INTO countries VALUES ('DE', 'Germany'), ('FR', 'France');
             CREATE TABLE plans (id INT PRIMARY KEY, name TEXT);
             INSERT INTO plans VALUES (1, 'free');
             CREATE TABLE users (id INT PRIMARY KEY, org_id INT, email TEXT);
             CREATE INDEX users_org ON users (org_id);
             INSERT INTO users SELECT n, 1 + n % 3, {email} FROM {users};
             {more}",
            users = db.series(300),
        ),
    );
    let repo = Repo::new();
    let out = db
        .cmd(&repo)
        .args(["backup", "--json"])
        .args(tenant_two_tables(extra))
        .arg(db.url(&src))
        .output()
        .unwrap();
    let id = snapshot_id(&ok_summary(&out));
    let manifest = repo.manifest(&id);
    let mut want = BTreeMap::from([(db.qualified("countries"), 2), (db.qualified("users"), 100)]);
    want.extend(tables.iter().map(|&(t, n)| (db.qualified(t), n)));
    want.extend(queries.iter().map(|&(q, n)| (q.to_string(), n)));
    assert_eq!(
        manifest_rows(&manifest),
        want,
        "plans (no org_id, not included) is left out"
    );

    // The customer's data restores on its own, constraints and all.
    // (query results are not tables)
    let dst = db_name("saas_one");
    restore_new(db, &repo, &id, &dst, 2 + tables.len() as u64);
    assert_eq!(
        db.sql(&dst, "SELECT DISTINCT org_id FROM users").trim(),
        "2"
    );
    assert!(!db.has_table(&dst, "plans"));
    TenantBackup {
        repo,
        src,
        id,
        manifest,
        out,
        dst,
    }
}

/// What `--exclude-table` left out of the tables-mode snapshot `id` is
/// gone: its manifest's warnings name each of `warned`; no stored file
/// mentions any of `traces`, and none but the manifest any of
/// `named_in_warnings` (what went with the table). The snapshot's files,
/// restored to a directory.
pub fn assert_left_out(
    repo: &Repo,
    id: &str,
    warned: &[&str],
    traces: &[&str],
    named_in_warnings: &[&str],
) -> PathBuf {
    let warnings = repo.manifest(id)["warnings"].to_string();
    for w in warned {
        assert!(warnings.contains(w), "{w} not in {warnings}");
    }
    let files = repo.dir.path().join("files");
    repo.ok(&["restore", id, "--target", files.to_str().unwrap()]);
    let patterns = |words: &[&str]| -> Vec<String> {
        words
            .iter()
            .flat_map(|w| ["-e".to_string(), w.to_string()])
            .collect()
    };
    let args = patterns(traces);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_no_file_mentions(&files, &args, "traces");
    let mut args = vec!["--exclude=manifest.json".to_string()];
    args.extend(patterns(named_in_warnings));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_no_file_mentions(&files, &args, "what went with the excluded table");
    files
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
    let out = server
        .cmd(repo)
        .env(server.tools().tools_env, tools)
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
