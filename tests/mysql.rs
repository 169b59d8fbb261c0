//! MySQL/MariaDB against a real server (a private MariaDB instance the test
//! starts): dump-mode backup, restore into a new database, verification,
//! and every way a dump or a load can go wrong.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::contract::{self, Database, Dialect, Mode, Server, Tools, db_name};
use common::servers::MariaDb;
use common::*;

/// Every byte value, as an SQL hex literal's digits.
fn all_bytes_hex() -> String {
    (0..=255u8).map(|b| format!("{b:02X}")).collect()
}

/// Everything MySQL makes hard to dump: NULLs next to empty strings,
/// 4-byte unicode, every byte value in a BLOB, JSON, DECIMAL, DATETIME and
/// TIMESTAMP with microseconds, BIT, ENUM, extreme doubles, a 1 MB text and
/// a 1 MB blob in one row, strings holding `(`, `;`, quotes and
/// backslashes, odd table names, foreign keys, a trigger, AUTO_INCREMENT
/// ahead of the data, a MyISAM table, a view, a procedure, a function and
/// an event.
fn tricky_sql() -> String {
    let bytes = all_bytes_hex();
    r#"
CREATE TABLE customers (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  name VARCHAR(200) NOT NULL,
  note LONGTEXT,
  profile JSON,
  balance DECIMAL(20,6),
  seen TIMESTAMP(6) NULL DEFAULT NULL,
  born DATETIME,
  avatar LONGBLOB,
  flags BIT(8),
  kind ENUM('a','b','c'),
  ratio DOUBLE
) ENGINE=InnoDB;
CREATE TABLE orders (
  id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  customer_id BIGINT NOT NULL,
  total DECIMAL(12,2),
  placed DATETIME NOT NULL DEFAULT '2024-01-01 00:00:00',
  with_tax DECIMAL(14,4) AS (total * 1.19) PERSISTENT,
  doubled DECIMAL(14,2) AS (total * 2) VIRTUAL,
  CONSTRAINT fk_customer FOREIGN KEY (customer_id) REFERENCES customers (id)
) ENGINE=InnoDB;
CREATE TABLE audit (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, what TEXT) ENGINE=InnoDB;
CREATE TABLE `Odd ``Name`` (x)` (`weird col` INT, `semi;colon` TEXT) ENGINE=InnoDB;
CREATE TABLE bytes (id INT PRIMARY KEY, b BLOB, vb VARBINARY(300)) ENGINE=InnoDB;
CREATE TABLE legacy (id INT PRIMARY KEY, v VARCHAR(20)) ENGINE=MyISAM;
CREATE TRIGGER orders_audit AFTER INSERT ON orders FOR EACH ROW
  INSERT INTO audit (what) VALUES (CONCAT('order ', NEW.id));
CREATE VIEW big_orders AS
  SELECT o.id, c.name, o.total FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.total > 100;
DELIMITER //
CREATE PROCEDURE order_count(IN cid BIGINT, OUT n INT)
BEGIN
  SELECT COUNT(*) INTO n FROM orders WHERE customer_id = cid;
END//
CREATE FUNCTION double_it(x INT) RETURNS INT DETERMINISTIC RETURN x * 2//
DELIMITER ;
CREATE EVENT nightly_cleanup ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01 00:00:00'
  DO DELETE FROM audit WHERE id < 0;
INSERT INTO customers (name, note, profile, balance, seen, born, avatar, flags, kind, ratio) VALUES
  ('Zoë Ünïcødé 日本語 🎉', NULL, '{"k": [1, 2, {"x": null}], "s": "tab\\tnewline\\n🎉"}',
   12345678901234.123456, '2024-02-29 23:59:59.999999', '1000-01-01 00:00:00',
   X'00FF10DEADBEEF', b'10100101', 'a', 1.5e300),
  ('empty note', '', 'null', -0.000001, '2001-01-01 00:00:00', '9999-12-31 23:59:59',
   '', b'0', NULL, -2.5e-300),
  ('back\\slash and "quotes" and ''single'' and `ticks`', 'line1\nline2\r\n\\N\0end (not a row);',
   NULL, 0, NULL, NULL, NULL, NULL, 'c', NULL),
  ('big', REPEAT('x', 1000000), NULL, NULL, NULL, NULL, REPEAT(X'AB', 1000000), NULL, 'b', 0);
ALTER TABLE customers AUTO_INCREMENT = 1000;
INSERT INTO orders (customer_id, total) SELECT 1 + (seq % 4), seq * 1.5 FROM seq_1_to_3000;
INSERT INTO `Odd ``Name`` (x)` VALUES (1, 'a'), (NULL, NULL), (3, '(x), (y);');
INSERT INTO bytes VALUES (1, X'BYTES', X'BYTES'), (2, '', NULL);
INSERT INTO legacy VALUES (1, 'a'), (2, NULL);
"#
    .replace("BYTES", &bytes)
}

fn many_tables_sql(n: usize) -> String {
    (0..n)
        .map(|i| {
            let mut s = format!("CREATE TABLE t{i:03} (id INT PRIMARY KEY, v VARCHAR(64));\n");
            if i > 0 {
                s.push_str(&format!(
                    "INSERT INTO t{i:03} SELECT seq, MD5(seq) FROM seq_1_to_{};\n",
                    i * 3
                ));
            }
            s
        })
        .collect()
}

fn quote_ident(s: &str) -> String {
    format!("`{}`", s.replace('`', "``"))
}

/// The database as mariadb-dump sees it, without the comments (the only
/// place the dump names the database).
fn canonical_dump(db: &MariaDb, name: &str) -> String {
    canonical_dump_with(db, name, &[])
}

fn canonical_dump_with(db: &MariaDb, name: &str, extra: &[&str]) -> String {
    let out = db
        .client("mariadb-dump")
        .args(extra)
        .args([
            "--skip-comments",
            "--single-transaction",
            "--routines",
            "--triggers",
            "--events",
            "--hex-blob",
            "--order-by-primary",
            "--",
            name,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mariadb-dump {name}: {}",
        stderr(&out)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Row count and the server's own content checksum of every table.
fn checksums(db: &MariaDb, name: &str) -> BTreeMap<String, String> {
    let tables = db.sql(
        name,
        "SELECT TABLE_NAME FROM information_schema.TABLES \
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE' ORDER BY 1",
    );
    let mut out = BTreeMap::new();
    for t in tables.lines() {
        let q = quote_ident(t);
        let count = db.sql(name, &format!("SELECT COUNT(*) FROM {q}"));
        // CHECKSUM TABLE is not stable on tables with generated columns
        // (the same rows gave different sums): those are hashed by SELECT
        let generated = db.sql(
            name,
            &format!(
                "SELECT GROUP_CONCAT(CONCAT('QUOTE(', '`', REPLACE(COLUMN_NAME, '`', '``'), '`', ')') ORDER BY ORDINAL_POSITION) \
                 FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = {} \
                 HAVING SUM(EXTRA LIKE '%GENERATED%') > 0",
                sql_literal(t)
            ),
        );
        let sum = if generated.trim().is_empty() {
            db.sql(name, &format!("CHECKSUM TABLE {q} EXTENDED"))
        } else {
            let row = format!("CONCAT_WS('|', {})", generated.trim());
            db.sql(
                name,
                &format!(
                    "SET SESSION group_concat_max_len = 1073741824; \
                     SELECT MD5(GROUP_CONCAT({row} ORDER BY {row} SEPARATOR '\\n')) FROM {q}"
                ),
            )
        };
        let sum = sum.trim().rsplit('\t').next().unwrap().to_string();
        out.insert(
            t.to_string(),
            format!("{} rows, checksum {sum}", count.trim()),
        );
    }
    out
}

fn sql_literal(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

/// The two databases hold the same tables, rows, views, routines,
/// triggers and events.
fn assert_same_database(db: &MariaDb, a: &str, b: &str) {
    assert_eq!(checksums(db, a), checksums(db, b));
    let (da, dbb) = (canonical_dump(db, a), canonical_dump(db, b));
    if da != dbb {
        let (i, (la, lb)) = da
            .lines()
            .zip(dbb.lines())
            .enumerate()
            .find(|(_, (x, y))| x != y)
            .unwrap_or((0, ("(one dump is a prefix of the other)", "")));
        let cut = |s: &str| s.chars().take(300).collect::<String>();
        panic!(
            "dumps of {a} and {b} differ at line {}:\n{}\n{}",
            i + 1,
            cut(la),
            cut(lb)
        );
    }
}

/// The shared server, for the contract every dialect keeps.
struct My<'a>(&'a MariaDb);

const MARIADB: Dialect = Dialect {
    scheme: "mysql",
    whole_mode: "dump",
    clean_creates: true,
};

const MARIADB_TOOLS: Tools = Tools {
    password_env: "MYSQL_PWD",
    tools_env: "HOLDFAST_MYSQL_BIN",
    dump_tool: "mariadb-dump",
};

impl Database for My<'_> {
    fn dialect(&self) -> &'static Dialect {
        &MARIADB
    }
    fn url(&self, db: &str) -> String {
        self.0.url(db)
    }
    fn cmd(&self, repo: &Repo) -> Command {
        contract::with_password(self, repo)
    }
    fn create_db(&self, db: &str) {
        self.0.create_db(db)
    }
    fn sql(&self, db: &str, sql: &str) -> String {
        self.0.sql(db, sql)
    }
    fn series(&self, count: u64) -> String {
        format!("(SELECT seq AS n FROM seq_1_to_{count}) AS s")
    }
    fn auto_key(&self) -> &'static str {
        "BIGINT AUTO_INCREMENT PRIMARY KEY"
    }
    fn has_table(&self, db: &str, table: &str) -> bool {
        let n = self.0.sql(
            db,
            &format!(
                "SELECT COUNT(*) FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = {}",
                sql_literal(table)
            ),
        );
        n.trim() != "0"
    }
    fn concat(&self, parts: &[&str]) -> String {
        format!("CONCAT({})", parts.join(", "))
    }
    fn hex_digest(&self, int_expr: &str) -> String {
        format!("MD5({int_expr})")
    }
    fn assert_same(&self, a: &str, b: &str) {
        assert_same_database(self.0, a, b)
    }
    fn missing_database_says(&self, db: &str) -> String {
        format!("database \"{db}\" does not exist")
    }
    fn start_writer(&self, db: &str, script: String) -> Box<dyn FnOnce()> {
        let mut client = self.0.client("mariadb");
        client.arg(format!("--database={db}"));
        contract::client_writer(client, script)
    }
}

impl Server for My<'_> {
    fn tools(&self) -> &'static Tools {
        &MARIADB_TOOLS
    }
    fn login(&self) -> (&str, u16) {
        (&self.0.password, self.0.port)
    }
    /// The password reaches the tool through a private option file, named
    /// by its first argument.
    fn check_tool_argv(&self, argv: &str) -> Option<PathBuf> {
        let arg = argv
            .split('\0')
            .nth(1)
            .and_then(|a| a.strip_prefix("--defaults-extra-file="))
            .unwrap_or_else(|| panic!("the option file is not the first argument: {argv}"));
        let path = PathBuf::from(arg);
        if let Ok(meta) = std::fs::metadata(&path) {
            assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        }
        Some(path)
    }
    fn wrong_password_says(&self, db: &str) -> Vec<String> {
        vec![
            format!("authentication failed for {}", self.0.url(db)),
            "Access denied".into(),
        ]
    }
}

#[test]
fn restore_refuses_a_non_empty_database_unless_clean() {
    contract::restore_refuses_a_non_empty_database_unless_clean(&My(MariaDb::shared()));
}

#[test]
fn a_routine_alone_makes_a_database_not_empty() {
    let db = MariaDb::shared();
    let src = new_db(
        "small",
        "CREATE TABLE a (id INT PRIMARY KEY); INSERT INTO a VALUES (1);",
    );
    let repo = Repo::new();
    let id = snapshot_id(&backup_json(&repo, db, &src, &[]));
    let routine_only = db_name("routine");
    db.create_db(&routine_only);
    db.sql(
        &routine_only,
        "CREATE FUNCTION one() RETURNS INT DETERMINISTIC RETURN 1",
    );
    let out = restore(&repo, db, &id, &db.url(&routine_only), &[]);
    assert!(stderr(&out).contains("is not empty"), "{}", stderr(&out));
}

#[test]
fn nightly_dumps_deduplicate() {
    contract::nightly_backups_deduplicate(&My(MariaDb::shared()));
}

#[test]
fn connection_problems_are_clear_and_secret_free() {
    contract::connection_problems_are_clear_and_secret_free(&My(MariaDb::shared()));
}

/// MySQL's own cases besides the contract's: a parameter its tools do not
/// have, and a restore with the wrong password.
#[test]
fn unknown_parameters_and_a_wrong_password_on_restore_are_clear() {
    let db = MariaDb::shared();
    let repo = Repo::new();
    let src = db_name("conn");
    db.create_db(&src);
    let out = my_cmd(&repo, db)
        .args(["backup", &format!("{}?sslmode=require", db.url(&src))])
        .output()
        .unwrap();
    assert!(
        stderr(&out).contains("unknown connection parameter \"sslmode\""),
        "{}",
        stderr(&out)
    );
    assert!(repo.snapshot_ids().is_empty());

    db.sql(&src, "CREATE TABLE a (id INT); INSERT INTO a VALUES (1);");
    let id = snapshot_id(&backup_json(&repo, db, &src, &[]));
    let out = repo
        .cmd()
        .env("MYSQL_PWD", "not-the-password")
        .args(["restore", &id, "--to", &db.url(&db_name("never"))])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(err.contains("authentication failed"), "{err}");
    assert!(!err.contains("not-the-password"), "{err}");
}

#[test]
fn the_password_never_appears_in_any_command_line() {
    contract::the_password_never_appears_in_any_command_line(&My(MariaDb::shared()));
}

fn my_cmd(repo: &Repo, db: &MariaDb) -> Command {
    My(db).cmd(repo)
}

fn backup_json(repo: &Repo, db: &MariaDb, name: &str, extra: &[&str]) -> serde_json::Value {
    contract::backup_json(&My(db), repo, name, extra)
}

fn restore(repo: &Repo, db: &MariaDb, id: &str, to: &str, extra: &[&str]) -> Output {
    contract::restore(&My(db), repo, id, to, extra)
}

/// A new database on the shared server that `sql` filled; its name.
fn new_db(prefix: &str, sql: &str) -> String {
    contract::new_db(&My(MariaDb::shared()), prefix, sql)
}

fn database_exists(db: &MariaDb, name: &str) -> bool {
    db.sql(
        "mysql",
        &format!("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{name}'"),
    )
    .trim()
        == "1"
}

#[test]
fn dump_restores_into_a_new_database_identically() {
    let db = MariaDb::shared();
    let src = new_db("shop", &tricky_sql());
    db.sql(&src, &many_tables_sql(40));
    let repo = Repo::new();

    // The manifest records server version, character set, per-table rows
    // and the dump's hash.
    let whole = contract::whole_backup(&My(db), &repo, &src, 46);
    let (id, manifest, dump) = (whole.id, whole.manifest, whole.copy);
    assert_eq!(manifest["kind"], "mysql");
    assert_eq!(
        manifest["server_version"],
        db.sql("mysql", "SELECT VERSION()").trim()
    );
    assert!(
        manifest["tool"].as_str().unwrap().contains("MariaDB"),
        "{manifest}"
    );
    assert_eq!(manifest["character_set"], "utf8mb4");
    let rows: BTreeMap<String, u64> = manifest_rows(&manifest);
    assert_eq!(rows["customers"], 4);
    assert_eq!(rows["orders"], 3000);
    assert_eq!(rows["audit"], 3000);
    assert_eq!(rows["Odd `Name` (x)"], 3);
    assert_eq!(rows["bytes"], 2);
    assert_eq!(rows["legacy"], 2);
    assert_eq!(rows["t000"], 0);
    assert_eq!(rows["t039"], 117);
    assert!(!rows.contains_key("big_orders"), "a view is not a table");
    assert_eq!(manifest["files"][0]["path"], format!("{src}.sql"));
    assert_eq!(manifest["files"][0]["size"], dump.len() as u64);
    let text = String::from_utf8_lossy(&dump);
    assert!(text.contains("-- Dump completed"));
    // Nothing ties the dump to the database it came from.
    assert!(!text.contains("CREATE DATABASE") && !text.contains("\nUSE "));

    // restic reads the same snapshot and agrees.
    contract::restic_agrees(&repo, &id, &format!("/{src}.sql"), &dump);

    // Restore into a database that does not exist yet.
    let dst = db_name("restored");
    let r = contract::restore_new(&My(db), &repo, &id, &dst, 46);
    assert_eq!(r["rows"], rows.values().sum::<u64>());
    assert_same_database(db, &src, &dst);

    // The restored data is the data that was written, not just equal to
    // the source: 4-byte unicode, every byte value, the 1 MB row.
    assert_eq!(
        db.sql(&dst, "SELECT name FROM customers WHERE id = 1")
            .trim_end_matches('\n'),
        "Zoë Ünïcødé 日本語 🎉"
    );
    assert_eq!(
        db.sql(&dst, "SELECT HEX(b), HEX(vb) FROM bytes WHERE id = 1")
            .trim(),
        format!("{0}\t{0}", all_bytes_hex())
    );
    assert_eq!(
        db.sql(
            &dst,
            "SELECT LENGTH(note), LENGTH(avatar), HEX(SUBSTR(avatar, 1, 2)) FROM customers WHERE name = 'big'"
        )
        .trim(),
        "1000000\t1000000\tABAB"
    );
    // The view, the routines and the trigger work in the new database.
    assert_eq!(
        db.sql(&dst, "SELECT COUNT(*) FROM big_orders").trim(),
        db.sql(&src, "SELECT COUNT(*) FROM big_orders").trim()
    );
    assert_eq!(
        db.sql(&dst, "SELECT double_it(21)").trim(),
        "42",
        "function"
    );
    assert_eq!(
        db.sql(&dst, "CALL order_count(2, @n); SELECT @n").trim(),
        "750"
    );
    db.sql(
        &dst,
        "INSERT INTO orders (customer_id, total) VALUES (1, 5)",
    );
    assert_eq!(db.sql(&dst, "SELECT COUNT(*) FROM audit").trim(), "3001");
    // AUTO_INCREMENT continues where the source would.
    db.sql(&dst, "INSERT INTO customers (name) VALUES ('next')");
    assert_eq!(
        db.sql(&dst, "SELECT id FROM customers WHERE name = 'next'")
            .trim(),
        "1000"
    );

    contract::the_secret_stays_out_of_the_snapshot(&My(db), &repo, &id, &src);
}

/// The first executable `name` on PATH.
fn on_path(name: &str) -> PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} is not on PATH"))
}

/// A tool directory with the real client and a scripted mariadb-dump
/// (`$REAL` is the real one).
fn fake_dump_bin(dir: &Path, dump_script: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::os::unix::fs::symlink(on_path("mariadb"), dir.join("mariadb")).unwrap();
    write_script(
        &dir.join("mariadb-dump"),
        &format!(
            "REAL={}\n[ \"$1\" = --version ] && exec $REAL --version\n{dump_script}",
            on_path("mariadb-dump").display()
        ),
    );
}

#[test]
fn broken_dumps_write_no_snapshot() {
    let db = MariaDb::shared();
    let src = new_db(
        "broken",
        "CREATE TABLE a (id INT PRIMARY KEY, v TEXT); INSERT INTO a SELECT seq, REPEAT('v', 100) FROM seq_1_to_20000;",
    );
    let repo = Repo::new();
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        (
            "truncated",
            "$REAL \"$@\" | head -c 300000",
            "inside the rows of table a",
        ),
        ("empty", "exit 0", "the dump is empty"),
        (
            "no marker",
            "$REAL \"$@\" | grep -v 'Dump completed'",
            "\"-- Dump completed\" marker",
        ),
        (
            "failing",
            "$REAL \"$@\"\necho 'mariadb-dump: Got error: 1030: \"disk on fire\" when dumping' >&2\nexit 2",
            "disk on fire",
        ),
        (
            "killed",
            "$REAL \"$@\" | head -c 100000\nkill -9 $$",
            "killed by signal 9",
        ),
    ];
    contract::broken_dumps_write_no_snapshot(
        &My(db),
        &repo,
        &src,
        tmp.path(),
        &cases,
        fake_dump_bin,
    );
    run_ok(repo.restic().args(["check"]));

    // No tools at all, or a client without a dump tool: named.
    contract::no_tools_write_no_snapshot(
        &My(db),
        &repo,
        &src,
        tmp.path(),
        "mariadb or mysql not found in HOLDFAST_MYSQL_BIN=",
    );
    let client_only = tmp.path().join("client-only");
    std::fs::create_dir_all(&client_only).unwrap();
    std::os::unix::fs::symlink(on_path("mariadb"), client_only.join("mysql")).unwrap();
    let says = "mariadb-dump or mysqldump not found";
    contract::backup_fails_with_tools(&My(db), &repo, &client_only, &src, says);
    assert!(repo.snapshot_ids().is_empty());
}

#[test]
fn a_failed_load_is_undone() {
    let db = MariaDb::shared();
    let src = new_db(
        "loadfail",
        "CREATE TABLE a (id INT PRIMARY KEY, v TEXT); INSERT INTO a SELECT seq, REPEAT('v', 100) FROM seq_1_to_5000;",
    );
    let repo = Repo::new();
    let id = snapshot_id(&backup_json(&repo, db, &src, &[]));

    // A client that loads only the first 50 kB of the dump (cut inside the
    // INSERT) and answers every other question truthfully.
    let tmp = tempfile::tempdir().unwrap();
    let bin = tmp.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    write_script(
        &bin.join("mariadb"),
        &format!(
            "REAL={}\ncase \"$*\" in *--max-allowed-packet=1G*) head -c 50000 | $REAL \"$@\"; exit $?;; esac\nexec $REAL \"$@\"",
            on_path("mariadb").display()
        ),
    );
    let load = |to: &str| {
        my_cmd(&repo, db)
            .env("HOLDFAST_MYSQL_BIN", &bin)
            .args(["restore", &id, "--to", to])
            .output()
            .unwrap()
    };

    // Into a new database: it is gone again.
    let fresh = db_name("fresh");
    let out = load(&db.url(&fresh));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("rolled back"), "{}", stderr(&out));
    assert!(!database_exists(db, &fresh));

    // Into an existing empty database: it is empty again, character set
    // and all.
    let empty = db_name("keepme");
    db.sql(
        "mysql",
        &format!("CREATE DATABASE `{empty}` CHARACTER SET latin1 COLLATE latin1_general_ci"),
    );
    let out = load(&db.url(&empty));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("rolled back"), "{}", stderr(&out));
    assert!(database_exists(db, &empty));
    assert_eq!(
        db.sql(
            "mysql",
            &format!(
                "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{empty}'"
            )
        )
        .trim(),
        "0"
    );
    assert_eq!(
        db.sql(
            "mysql",
            &format!(
                "SELECT DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{empty}'"
            )
        )
        .trim(),
        "latin1_general_ci"
    );

    // The same restore with the real client works.
    let out = restore(&repo, db, &id, &db.url(&fresh), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same_database(db, &src, &fresh);
}

#[test]
fn the_database_character_set_is_kept() {
    let db = MariaDb::shared();
    let src = db_name("latin");
    db.sql(
        "mysql",
        &format!("CREATE DATABASE `{src}` CHARACTER SET latin1 COLLATE latin1_swedish_ci"),
    );
    db.sql(
        &src,
        "CREATE TABLE words (w VARCHAR(20)); INSERT INTO words VALUES ('café'), ('naïve'), ('Ærø');",
    );
    let repo = Repo::new();

    // A dry run dumps and counts, but writes nothing.
    let dry = backup_json(&repo, db, &src, &["--dry-run"]);
    assert_eq!(dry["source"]["rows"], 3);
    assert!(repo.snapshot_ids().is_empty());

    let id = snapshot_id(&backup_json(&repo, db, &src, &[]));
    let dst = db_name("latin_restored");
    let out = restore(&repo, db, &id, &db.url(&dst), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let charset = |name: &str| {
        db.sql(
            "mysql",
            &format!(
                "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME \
                 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{name}'"
            ),
        )
    };
    assert_eq!(charset(&dst).trim(), "latin1\tlatin1_swedish_ci");
    assert_same_database(db, &src, &dst);
    assert_eq!(
        db.sql(
            &dst,
            "SELECT GROUP_CONCAT(w ORDER BY w SEPARATOR ',') FROM words"
        )
        .trim(),
        "café,naïve,Ærø"
    );
}

/// Percent-encode everything but unreserved characters.
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[test]
fn passwords_with_quotes_backslashes_and_spaces_work() {
    let db = MariaDb::shared();
    let src = new_db(
        "nasty",
        "CREATE TABLE a (id INT); INSERT INTO a VALUES (1), (2);",
    );
    let user = db_name("nasty_user");
    let password = " a\"b\\c#d 'e;f\\ ";
    let sql_literal = password.replace('\\', "\\\\").replace('\'', "\\'");
    db.sql(
        "mysql",
        &format!(
            "CREATE USER '{user}'@'%' IDENTIFIED BY '{sql_literal}'; GRANT ALL ON *.* TO '{user}'@'%';"
        ),
    );
    let repo = Repo::new();
    let url = |pw: Option<&str>, name: &str| match pw {
        Some(pw) => format!(
            "mysql://{user}:{}@127.0.0.1:{}/{name}",
            url_encode(pw),
            db.port
        ),
        None => format!("mysql://{user}@127.0.0.1:{}/{name}", db.port),
    };

    // From a password file.
    let tmp = tempfile::tempdir().unwrap();
    let pwfile = tmp.path().join("pw");
    std::fs::write(&pwfile, format!("{password}\n")).unwrap();
    let out = repo
        .cmd()
        .args(["backup", "--json", "--source-password-file"])
        .arg(&pwfile)
        .arg(url(None, &src))
        .output()
        .unwrap();
    let id = snapshot_id(&ok_summary(&out));

    // From the address (with a warning), for a restore.
    let dst = db_name("nasty_restored");
    let out = repo
        .cmd()
        .args(["restore", &id, "--to", &url(Some(password), &dst)])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("holds a password"),
        "{}",
        stderr(&out)
    );
    assert_eq!(db.sql(&dst, "SELECT COUNT(*) FROM a").trim(), "2");
}

#[test]
fn tables_mode_exports_csv_and_restores_identically() {
    let db = MariaDb::shared();
    let src = new_db("tables_src", &tricky_sql());
    db.sql(&src, &many_tables_sql(8));
    let repo = Repo::new();
    let s = backup_json(&repo, db, &src, &["--mode", "tables"]);
    let id = snapshot_id(&s);
    assert_eq!(s["source"]["mode"], "tables");
    let m = repo.manifest(&id);
    let rows = |name: &str| manifest_table(&m, name)["rows"].as_u64().unwrap();
    assert_eq!(rows("orders"), 3000);
    assert_eq!(rows("customers"), 4);
    assert_eq!(rows("Odd `Name` (x)"), 3);
    let csv = repo.ok(&["dump", &id, "/tables/bytes.csv"]);
    assert_eq!(
        csv,
        format!(
            "id,b,vb\n\"1\",\\x{0},\\x{0}\n\"2\",\\x,\n",
            all_bytes_hex().to_lowercase()
        )
    );
    // generated columns are exported, marked, and computed again on restore
    let orders = repo.ok(&["dump", &id, "/tables/orders.csv"]);
    let mut lines = orders.lines();
    assert_eq!(
        lines.next().unwrap(),
        "id,customer_id,total,placed,with_tax,doubled"
    );
    assert_eq!(
        lines.next().unwrap(),
        "\"1\",\"2\",\"1.50\",\"2024-01-01 00:00:00\",\"1.7850\",\"3.00\""
    );
    assert_generated_columns(&m, "orders", &[4, 5], 3);
    let customers = repo.ok(&["dump", &id, "/tables/customers.csv"]);
    assert!(
        customers.contains("\"empty note\",\"\","),
        "'' is quoted, NULL is not: {}",
        &customers[..300]
    );

    let dst = db_name("tables_dst");
    let out = restore(&repo, db, &id, &db.url(&dst), &[]);
    assert!(out.status.success(), "restore: {}", stderr(&out));
    let r = summary(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(r["created"], true);
    // Same rows (CHECKSUM TABLE does not depend on row order: a table
    // without a primary key comes back in key-less CSV order), and the same
    // tables, views, routines, triggers and events.
    assert_eq!(checksums(db, &src), checksums(db, &dst));
    assert_eq!(
        canonical_dump_with(db, &src, &["--no-data"]),
        canonical_dump_with(db, &dst, &["--no-data"])
    );
    run_ok(repo.restic().args(["check", "--read-data"]));
}

#[test]
fn tables_mode_tenant_scope_and_exclusion_on_mariadb() {
    let db = MariaDb::shared();
    let t = contract::tenant_scoped_tables_keep_one_customers_rows(
        &My(db),
        "CREATE TABLE vault_keys (id INT PRIMARY KEY, org_id INT, secret TEXT);
         INSERT INTO vault_keys VALUES (1, 2, 'key-aaa');
         CREATE TRIGGER vault_keys_guard BEFORE INSERT ON vault_keys FOR EACH ROW SET NEW.secret = UPPER(NEW.secret);
         CREATE TABLE key_uses (id INT PRIMARY KEY, org_id INT, key_id INT,
           CONSTRAINT key_uses_key_fk FOREIGN KEY (key_id) REFERENCES vault_keys (id));
         INSERT INTO key_uses VALUES (1, 2, 1), (2, 1, NULL);
         CREATE VIEW secret_list AS SELECT secret FROM vault_keys;
         CREATE VIEW secret_count AS SELECT COUNT(*) AS n FROM secret_list;",
        &[
            "--exclude-table",
            "vault_*",
            "--query",
            "per_org=SELECT org_id, COUNT(*) AS n FROM users GROUP BY org_id ORDER BY org_id DESC",
        ],
        &[("key_uses", 1)],
        &[("per_org", 3)],
    );
    let (repo, id, dst) = (&t.repo, &t.id, &t.dst);
    // The query's own order is kept.
    assert_eq!(
        repo.ok(&["dump", id, "/queries/per_org.csv"]),
        "org_id,n\n\"3\",\"100\"\n\"2\",\"100\"\n\"1\",\"100\"\n"
    );
    // No trace of the excluded table; the views over it and the foreign
    // key into it are named only by the manifest's warnings.
    contract::assert_left_out(
        repo,
        id,
        &[
            "view secret_list",
            "view secret_count",
            "foreign key key_uses_key_fk of key_uses",
        ],
        &["vault_keys", "key-aaa"],
        &["secret_"],
    );
    assert_eq!(
        db.sql(
            dst,
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()"
        )
        .trim(),
        "3",
        "countries, users and key_uses; plans has no org_id and was not included"
    );
    // the foreign key into the excluded table was left out, with a warning
    assert_eq!(
        db.sql(
            dst,
            "SELECT COUNT(*) FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = DATABASE()"
        )
        .trim(),
        "0"
    );
}

#[test]
fn writes_during_a_tables_backup_do_not_tear_the_snapshot() {
    let db = My(MariaDb::shared());
    contract::writes_during_a_backup_do_not_tear_the_snapshot(&db, Mode::Tables, 300, 50);
}
