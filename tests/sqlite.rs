//! SQLite: online backup while the application writes, restore to a file
//! that must pass `PRAGMA integrity_check` and the manifest's row counts,
//! and clear failures for missing, foreign and damaged files.
//!
//! What every dialect must do runs through `common::contract` with [`Lite`]
//! as the database; what is SQLite's own (WAL files, foreign and damaged
//! files, relative paths, SQLite's values in CSV) stays here. The contract's
//! server bodies (passwords, refused connections, broken client tools) take
//! a `contract::Server`, which SQLite is not: its database is a file, copied
//! in-process with the online backup API.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::contract::{self, Database, Dialect, Mode};
use common::*;
use rusqlite::Connection;
use rusqlite::fallible_iterator::FallibleIterator;
use rusqlite::types::{Value, ValueRef};

fn url(p: &Path) -> String {
    format!("sqlite://{}", p.display())
}

/// The first column of every row `sql` selects.
fn column(c: &Connection, sql: &str) -> Vec<String> {
    c.prepare(sql)
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// The one integer `sql` selects.
fn int(c: &Connection, sql: &str) -> i64 {
    c.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// SQLite databases for the contract: files in a private directory, the
/// database `DB` being the file `DIR/DB.db`.
struct Lite {
    dir: tempfile::TempDir,
}

const SQLITE: Dialect = Dialect {
    scheme: "sqlite",
    whole_mode: "file",
    clean_creates: false,
};

impl Lite {
    fn new() -> Lite {
        Lite {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, db: &str) -> PathBuf {
        self.dir.path().join(format!("{db}.db"))
    }

    /// A connection to `db` that waits for other connections' locks.
    fn open(&self, db: &str) -> Connection {
        let c = Connection::open(self.path(db)).unwrap();
        c.busy_timeout(Duration::from_secs(10)).unwrap();
        c
    }
}

/// A value as the servers' clients print one: NULL empty, a blob in hex.
fn text(v: ValueRef<'_>) -> String {
    match v {
        ValueRef::Null => String::new(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => f.to_string(),
        ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
        ValueRef::Blob(b) => b.iter().map(|x| format!("{x:02x}")).collect(),
    }
}

impl Database for Lite {
    fn dialect(&self) -> &'static Dialect {
        &SQLITE
    }
    fn url(&self, db: &str) -> String {
        url(&self.path(db))
    }
    /// The copy is the database file, under its own name.
    fn whole_copy_names(&self, db: &str) -> (String, String) {
        (format!("{db}.db"), format!("{db}.db"))
    }
    /// An empty file is an empty SQLite database.
    fn create_db(&self, db: &str) {
        let p = self.path(db);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::File::create_new(p).unwrap();
    }
    /// Every statement in one connection; fields tab-separated.
    fn sql(&self, db: &str, sql: &str) -> String {
        let c = self.open(db);
        let mut batch = rusqlite::Batch::new(&c, sql);
        let mut out = String::new();
        while let Some(mut stmt) = batch.next().unwrap() {
            let n = stmt.column_count();
            let mut rows = stmt.raw_query();
            while let Some(row) = rows.next().unwrap() {
                let fields: Vec<String> = (0..n).map(|i| text(row.get_ref(i).unwrap())).collect();
                out.push_str(&fields.join("\t"));
                out.push('\n');
            }
        }
        out
    }
    fn series(&self, count: u64) -> String {
        format!(
            "(WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {count}) \
             SELECT n FROM s) AS s"
        )
    }
    fn auto_key(&self) -> &'static str {
        "INTEGER PRIMARY KEY"
    }
    fn has_table(&self, db: &str, table: &str) -> bool {
        let sql = "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?";
        let n: i64 = self.open(db).query_row(sql, [table], |r| r.get(0)).unwrap();
        n > 0
    }
    fn concat(&self, parts: &[&str]) -> String {
        parts.join(" || ")
    }
    /// SQLite has no MD5: four multiplicative hashes of the value (modulo
    /// 2^32, far from overflowing 64 bits), 8 hex digits each.
    fn hex_digest(&self, int_expr: &str) -> String {
        let h = |mul: u64, add: u64| format!("(({int_expr}) * {mul} + {add}) % 4294967296");
        format!(
            "printf('%08x%08x%08x%08x', {}, {}, {}, {})",
            h(2654435761, 0),
            h(2246822519, 374761393),
            h(3266489917, 668265263),
            h(668265263, 2654435761)
        )
    }
    fn assert_same(&self, a: &str, b: &str) {
        assert_eq!(fingerprint(&self.path(a)), fingerprint(&self.path(b)));
    }
    fn missing_database_says(&self, db: &str) -> String {
        format!(
            "no SQLite database at {}: the file does not exist",
            self.path(db).display()
        )
    }
    /// A thread writing through its own connection, in WAL mode (as an
    /// application that is read while it writes runs SQLite: readers and
    /// the writer do not wait for each other).
    fn start_writer(&self, db: &str, script: String) -> Box<dyn FnOnce()> {
        let c = self.open(db);
        let mode: String = c
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                for transaction in script.lines() {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    c.execute_batch(transaction).unwrap();
                }
            })
        };
        Box::new(move || {
            stop.store(true, Ordering::Relaxed);
            writer.join().unwrap();
        })
    }
}

const TRICKY: &str = r#"
PRAGMA journal_mode = WAL;
PRAGMA foreign_keys = ON;
PRAGMA user_version = 42;
CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, note TEXT, score REAL, avatar BLOB, profile TEXT);
CREATE TABLE orders (id INTEGER PRIMARY KEY AUTOINCREMENT, customer_id INTEGER NOT NULL REFERENCES customers(id), total NUMERIC, placed TEXT DEFAULT CURRENT_TIMESTAMP, with_tax NUMERIC GENERATED ALWAYS AS (total * 2) STORED, half AS (total / 2) VIRTUAL);
CREATE TABLE audit (id INTEGER PRIMARY KEY, what TEXT);
CREATE TABLE "odd ""name""" ("weird col" INTEGER, "tab	col" TEXT);
CREATE INDEX orders_by_customer ON orders(customer_id);
CREATE TRIGGER orders_audit AFTER INSERT ON orders BEGIN INSERT INTO audit(what) VALUES ('order ' || NEW.id); END;
CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 100;
INSERT INTO customers (name, note, score, avatar, profile) VALUES
  ('Zoë Ünïcødé 日本語 🎉', NULL, 1.5e300, x'00ff10deadbeef', '{"k": [1, 2, {"x": null}]}'),
  ('empty note', '', -0.0, x'', 'null'),
  ('big', printf('%.*c', 1000000, 'x'), NULL, randomblob(100000), NULL);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
  INSERT INTO orders (customer_id, total) SELECT 1 + (i % 3), i * 1.5 FROM n;
INSERT INTO "odd ""name""" VALUES (1, 'a'), (NULL, NULL), (3, '');
"#;

/// Every row of every table, in rowid order, as text: equal fingerprints
/// mean equal contents.
fn fingerprint(path: &Path) -> BTreeMap<String, Vec<String>> {
    let c = Connection::open(path).unwrap();
    let names = column(
        &c,
        "SELECT name FROM sqlite_schema WHERE type IN ('table','view','index','trigger') ORDER BY name",
    );
    let mut out = BTreeMap::new();
    let schema = column(
        &c,
        "SELECT type || ' ' || name || ' ' || coalesce(sql, '') FROM sqlite_schema ORDER BY name",
    );
    out.insert("(schema)".to_string(), schema);
    for name in names {
        let kind: String = c
            .query_row(
                "SELECT type FROM sqlite_schema WHERE name = ?",
                [&name],
                |r| r.get(0),
            )
            .unwrap();
        if kind != "table" || name.starts_with("sqlite_") {
            continue;
        }
        let q = format!(
            "SELECT * FROM \"{}\" ORDER BY rowid",
            name.replace('"', "\"\"")
        );
        let mut stmt = c.prepare(&q).unwrap();
        let n = stmt.column_count();
        let rows: Vec<String> = stmt
            .query_map([], |r| {
                let mut line = String::new();
                for i in 0..n {
                    let v: Value = r.get(i)?;
                    line.push_str(&format!("{v:?}|"));
                }
                Ok(line)
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        out.insert(name, rows);
    }
    out
}

#[test]
fn sqlite_backup_restores_identically_and_restic_agrees() {
    let lite = Lite::new();
    let src = contract::new_db(&lite, "app", TRICKY);
    let repo = Repo::new();
    let whole = contract::whole_backup(&lite, &repo, &src, 4);
    let (id, s, manifest) = (&whole.id, &whole.summary, &whole.manifest);
    assert_eq!(s["source"]["rows"], 3 + 3000 + 3000 + 3);
    assert_eq!(manifest["kind"], "sqlite");
    assert_eq!(manifest["user_version"], 42);
    let orders = manifest_table(manifest, "orders");
    assert_eq!(orders["rows"], 3000);
    assert_eq!(orders["columns"][3]["name"], "placed");
    contract::the_snapshot_names_its_source(&lite, &repo, id, &src);

    // Restore into a new file, in a directory that does not exist yet:
    // same rows, same schema, integrity checked.
    let dst = "restored/app";
    contract::restore_new(&lite, &repo, id, dst, 4);
    lite.assert_same(&src, dst);
    assert_eq!(lite.sql(dst, "PRAGMA user_version").trim(), "42");
    let partial = format!("{}.holdfast-partial", lite.path(dst).display());
    assert!(!Path::new(&partial).exists());

    // restic reads the same snapshot and agrees, and restores a database
    // file that opens and holds the same rows.
    let file = format!("{src}.db");
    contract::restic_agrees(&repo, id, &format!("/{file}"), &whole.copy);
    let rt = repo.dir.path().join("restic-out");
    run_ok(
        repo.restic()
            .args(["restore", id, "--target", rt.to_str().unwrap()]),
    );
    assert_eq!(fingerprint(&lite.path(&src)), fingerprint(&rt.join(file)));
}

/// The online backup API copies one instant while the application keeps
/// writing; the restored copy passes SQLite's own check.
#[test]
fn backup_is_consistent_while_the_application_writes() {
    let lite = Lite::new();
    let dst = contract::writes_during_a_backup_do_not_tear_the_snapshot(&lite, Mode::Whole, 200, 0);
    assert_eq!(lite.sql(&dst, "PRAGMA integrity_check"), "ok\n");
}

#[test]
fn writes_during_a_tables_backup_do_not_tear_the_snapshot() {
    let lite = Lite::new();
    contract::writes_during_a_backup_do_not_tear_the_snapshot(&lite, Mode::Tables, 300, 50);
}

#[test]
fn nightly_backups_deduplicate() {
    contract::nightly_backups_deduplicate(&Lite::new());
}

/// The contract's refusal, and SQLite's own: a database in WAL mode is
/// refused without a byte changed, and a stale WAL of the old database is
/// not replayed into the new one.
#[test]
fn restore_refuses_an_existing_database_unless_clean() {
    let lite = Lite::new();
    contract::restore_refuses_a_non_empty_database_unless_clean(&lite);

    let src = contract::new_db(&lite, "a", TRICKY);
    let repo = Repo::new();
    let id = snapshot_id(&contract::backup_json(&lite, &repo, &src, &[]));
    let target = contract::new_db(
        &lite,
        "live",
        "PRAGMA journal_mode = WAL; CREATE TABLE other (x); INSERT INTO other VALUES (1);",
    );
    let path = lite.path(&target);
    let before = fs::read(&path).unwrap();
    let out = contract::restore(&lite, &repo, &id, &lite.url(&target), &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("already exists and is not empty"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("--clean"), "{}", stderr(&out));
    assert_eq!(fs::read(&path).unwrap(), before, "the target was touched");
    let wal = PathBuf::from(format!("{}-wal", path.display()));
    fs::write(&wal, vec![0x37u8; 4096]).unwrap();
    assert_ok(&contract::restore(
        &lite,
        &repo,
        &id,
        &lite.url(&target),
        &["--clean"],
    ));
    assert!(!wal.exists());
    lite.assert_same(&src, &target);
}

#[test]
fn missing_foreign_and_damaged_databases_fail_clearly() {
    let lite = Lite::new();
    let repo = Repo::new();
    contract::a_missing_database_is_named(&lite, &repo);

    let foreign = lite.dir.path().join("notes.txt");
    fs::write(&foreign, "just some text, not a database\n".repeat(200)).unwrap();
    let out = repo.run(&["backup", &url(&foreign)]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not a readable SQLite database"),
        "{}",
        stderr(&out)
    );

    let out = repo.run(&["backup", "sqlite://relative/app.db"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("absolute path"), "{}", stderr(&out));

    // A database whose table pages are damaged: the copy fails its check.
    let damaged = contract::new_db(
        &lite,
        "damaged",
        "PRAGMA page_size = 4096;
         CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);
         CREATE INDEX t_v ON t(v);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)
           INSERT INTO t SELECT i, 'value ' || i FROM n;",
    );
    let damaged = lite.path(&damaged);
    let mut bytes = fs::read(&damaged).unwrap();
    // Scribble over the middle of the file (b-tree pages, not the header).
    let mid = bytes.len() / 2 / 4096 * 4096;
    for b in &mut bytes[mid + 8..mid + 4000] {
        *b = 0xA5;
    }
    fs::write(&damaged, &bytes).unwrap();
    let out = repo.run(&["backup", &url(&damaged)]);
    assert!(!out.status.success(), "a damaged database was backed up");
    let err = stderr(&out);
    assert!(
        err.contains("damaged") || err.contains("malformed"),
        "{err}"
    );
    assert!(repo.snapshot_ids().is_empty());
    repo.ok(&["check", "--read-data"]);
}

#[test]
fn tables_mode_exports_csv_restores_and_excludes_without_trace() {
    let lite = Lite::new();
    // one connection: TRICKY's foreign_keys = ON checks these rows too
    let db = contract::new_db(
        &lite,
        "shop",
        &(TRICKY.to_string()
            + "CREATE TABLE vault_keys (id INTEGER PRIMARY KEY AUTOINCREMENT, secret TEXT, org_id INTEGER);
             CREATE INDEX vault_keys_secret ON vault_keys(secret);
             INSERT INTO vault_keys (secret, org_id) VALUES ('key-aaa', 1), ('key-bbb', 2);
             -- what names the excluded table goes with it
             CREATE TABLE key_uses (id INTEGER PRIMARY KEY,
               key_id INTEGER REFERENCES vault_keys(id) ON DELETE CASCADE, other INTEGER,
               CONSTRAINT key_uses_other FOREIGN KEY (other) REFERENCES \"vault_keys\" (id));
             INSERT INTO key_uses VALUES (1, 1, 2);
             CREATE VIEW secret_list AS SELECT secret FROM vault_keys;
             CREATE VIEW secret_count AS SELECT count(*) AS n FROM secret_list;
             CREATE TRIGGER key_uses_touch AFTER INSERT ON key_uses
               BEGIN UPDATE vault_keys SET org_id = org_id WHERE id = NEW.key_id; END;"),
    );
    let repo = Repo::new();
    let s = contract::backup_json(
        &lite,
        &repo,
        &db,
        &["--mode", "tables", "--exclude-table", "vault_*"],
    );
    let id = snapshot_id(&s);
    assert_eq!(s["source"]["mode"], "tables");
    assert_eq!(s["source"]["tables"], 5);
    let m = repo.manifest(&id);
    let csv = repo.ok(&["dump", &id, "/tables/customers.csv"]);
    let mut lines = csv.lines();
    assert_eq!(lines.next().unwrap(), "id,name,note,score,avatar,profile");
    // Reals as the shortest text that reads back as the same double.
    let score: f64 = lite
        .open(&db)
        .query_row("SELECT score FROM customers WHERE id = 1", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        lines.next().unwrap(),
        format!(
            "1,Zoë Ünïcødé 日本語 🎉,,{score:?},\\x00ff10deadbeef,\"{{\"\"k\"\": [1, 2, {{\"\"x\"\": null}}]}}\""
        )
    );
    assert_eq!(lines.next().unwrap(), "2,empty note,\"\",0.0,\\x,null");
    // generated columns are exported, marked, and computed again on restore
    let orders = repo.ok(&["dump", &id, "/tables/orders.csv"]);
    let mut lines = orders.lines();
    assert_eq!(
        lines.next().unwrap(),
        "id,customer_id,total,placed,with_tax,half"
    );
    let first = lines.next().unwrap();
    assert!(
        first.starts_with("1,2,1.5,") && first.ends_with(",3,0.75"),
        "{first}"
    );
    assert_generated_columns(&m, "orders", &[4, 5], 2);
    // No trace of the excluded table in any file; what was left out with
    // it is named only by the manifest's warnings.
    contract::assert_left_out(
        &repo,
        &id,
        &[
            "view secret_list",
            "view secret_count",
            "2 foreign key(s) of key_uses",
            "trigger key_uses_touch",
        ],
        &["vault_keys", "key-aaa"],
        &["secret_", "key_uses_touch"],
    );

    // Restore: every kept table identical, the excluded one absent.
    let restored = "from-tables";
    contract::restore_new(&lite, &repo, &id, restored, 5);
    let mut want = fingerprint(&lite.path(&db));
    let mut got = fingerprint(&lite.path(restored));
    for gone in [
        "vault_keys",
        "secret_list",
        "secret_count",
        "key_uses_touch",
    ] {
        want.remove(gone);
    }
    want.remove("(schema)");
    got.remove("(schema)");
    assert_eq!(want, got);
    let c = lite.open(restored);
    let vaults = "SELECT count(*) FROM sqlite_schema WHERE name LIKE 'vault%'";
    assert_eq!(int(&c, vaults), 0);
    let fks = "SELECT count(*) FROM pragma_foreign_key_list('key_uses')";
    assert_eq!(int(&c, fks), 0);
    // AUTOINCREMENT goes on where it stopped.
    c.execute("INSERT INTO orders (customer_id, total) VALUES (1, 1)", [])
        .unwrap();
    assert_eq!(int(&c, "SELECT max(id) FROM orders"), 3001);
}

#[test]
fn tables_mode_tenant_scope_on_sqlite() {
    let query = "n=SELECT count(*) AS users FROM users WHERE org_id = 2 ORDER BY 1";
    let t = contract::tenant_scoped_tables_keep_one_customers_rows(
        &Lite::new(),
        "",
        &["--query", query],
        &[],
        &[("n", 1)],
    );
    assert_eq!(
        t.repo.ok(&["dump", &t.id, "/queries/n.csv"]),
        "users\n100\n"
    );
}
