//! SQLite: online backup while the application writes, restore to a file
//! that must pass `PRAGMA integrity_check` and the manifest's row counts,
//! and clear failures for missing, foreign and damaged files.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use common::*;
use rusqlite::Connection;
use rusqlite::types::Value;

fn url(p: &Path) -> String {
    format!("sqlite://{}", p.display())
}

/// Run `sql` on the database file `path` (created if need be).
fn make_db(path: &Path, sql: &str) {
    Connection::open(path).unwrap().execute_batch(sql).unwrap();
}

/// `backup --json` of the database file `db` with `extra` options: the
/// summary.
fn backup(repo: &Repo, db: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["backup", "--json"];
    args.extend_from_slice(extra);
    let u = url(db);
    args.push(&u);
    summary(&repo.ok(&args))
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
    let repo = Repo::new();
    let db = repo.dir.path().join("app.db");
    make_db(&db, TRICKY);
    let s = backup(&repo, &db, &[]);
    let id = snapshot_id(&s);
    assert_eq!(s["source"]["kind"], "sqlite");
    assert_eq!(s["source"]["tables"], 4);
    assert_eq!(s["source"]["rows"], 3 + 3000 + 3000 + 3);

    let manifest = repo.manifest(&id);
    assert_eq!(manifest["kind"], "sqlite");
    assert_eq!(manifest["user_version"], 42);
    let orders = manifest_table(&manifest, "orders");
    assert_eq!(orders["rows"], 3000);
    assert_eq!(orders["columns"][3]["name"], "placed");

    // Restore into a new file: same rows, same schema, integrity checked.
    let restored = repo.dir.path().join("restored/app.db");
    let out = repo.ok(&["restore", &id, "--json", "--to", &url(&restored)]);
    let r = summary(&out);
    assert_eq!(r["verified"], true);
    assert_eq!(r["created"], true);
    assert_eq!(fingerprint(&db), fingerprint(&restored));
    let c = Connection::open(&restored).unwrap();
    assert_eq!(int(&c, "PRAGMA user_version"), 42);
    assert!(
        !repo
            .dir
            .path()
            .join("restored/app.db.holdfast-partial")
            .exists()
    );

    // restic restores a database file that opens and holds the same rows.
    run_ok(repo.restic().args(["check", "--read-data"]));
    let rt = repo.dir.path().join("restic-out");
    run_ok(
        repo.restic()
            .args(["restore", &id, "--target", rt.to_str().unwrap()]),
    );
    assert_eq!(fingerprint(&db), fingerprint(&rt.join("app.db")));
}

#[test]
fn backup_is_consistent_while_the_application_writes() {
    let repo = Repo::new();
    let db = repo.dir.path().join("busy.db");
    make_db(
        &db,
        "PRAGMA journal_mode = WAL;
         CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL);
         CREATE TABLE ledger (id INTEGER PRIMARY KEY, account INTEGER, delta INTEGER, pad BLOB);
         CREATE TABLE ledger_copy (id INTEGER PRIMARY KEY, pad BLOB);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)
           INSERT INTO accounts SELECT i, 1000 FROM n;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
           INSERT INTO ledger_copy SELECT i, randomblob(1000) FROM n;",
    );
    // The application: each transaction moves money between two accounts
    // and writes one ledger line; the total and the ledger's line count
    // tie together at every commit.
    let stop = Arc::new(AtomicBool::new(false));
    let commits = Arc::new(AtomicU64::new(0));
    let writer = {
        let (db, stop, commits) = (db.clone(), stop.clone(), commits.clone());
        std::thread::spawn(move || {
            let mut c = Connection::open(&db).unwrap();
            c.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
            let mut i: i64 = 0;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let (a, b) = (1 + i % 1000, 1 + (i * 7) % 1000);
                let t = c.transaction().unwrap();
                t.execute(
                    "UPDATE accounts SET balance = balance - 5 WHERE id = ?",
                    [a],
                )
                .unwrap();
                t.execute(
                    "UPDATE accounts SET balance = balance + 5 WHERE id = ?",
                    [b],
                )
                .unwrap();
                t.execute(
                    "INSERT INTO ledger (account, delta, pad) VALUES (?, 5, randomblob(200))",
                    [a],
                )
                .unwrap();
                t.commit().unwrap();
                commits.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    while commits.load(Ordering::Relaxed) < 200 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let before = commits.load(Ordering::Relaxed);
    let id = snapshot_id(&backup(&repo, &db, &[]));
    let after = commits.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(
        after > before,
        "the application was not blocked during the backup"
    );

    let restored = repo.dir.path().join("busy-restored.db");
    repo.ok(&["restore", &id, "--to", &url(&restored)]);
    let c = Connection::open(&restored).unwrap();
    let (total, lines): (i64, i64) = c
        .query_row(
            "SELECT (SELECT sum(balance) FROM accounts), (SELECT count(*) FROM ledger)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(total, 1000 * 1000, "a torn transaction in the snapshot");
    assert!(
        lines >= before as i64 && lines <= after as i64,
        "{lines} not in {before}..={after}"
    );
    assert_eq!(column(&c, "PRAGMA integrity_check"), ["ok"]);
}

#[test]
fn restore_refuses_an_existing_database_unless_clean() {
    let repo = Repo::new();
    let db = repo.dir.path().join("a.db");
    make_db(&db, TRICKY);
    let id = snapshot_id(&backup(&repo, &db, &[]));
    let target = repo.dir.path().join("live.db");
    make_db(
        &target,
        "PRAGMA journal_mode = WAL; CREATE TABLE other (x); INSERT INTO other VALUES (1);",
    );
    let before = fs::read(&target).unwrap();
    let out = repo.run(&["restore", &id, "--to", &url(&target)]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("already exists and is not empty"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("--clean"), "{}", stderr(&out));
    assert_eq!(fs::read(&target).unwrap(), before, "the target was touched");
    // A stale WAL of the old database must not be replayed into the new one.
    fs::write(format!("{}-wal", target.display()), vec![0x37u8; 4096]).unwrap();
    repo.ok(&["restore", &id, "--to", &url(&target), "--clean"]);
    assert!(!Path::new(&format!("{}-wal", target.display())).exists());
    assert_eq!(fingerprint(&db), fingerprint(&target));
}

#[test]
fn missing_foreign_and_damaged_databases_fail_clearly() {
    let repo = Repo::new();
    let missing = repo.dir.path().join("missing.db");
    let out = repo.run(&["backup", &url(&missing)]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));

    let foreign = repo.dir.path().join("notes.txt");
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
    let damaged = repo.dir.path().join("damaged.db");
    make_db(
        &damaged,
        "PRAGMA page_size = 4096;
         CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);
         CREATE INDEX t_v ON t(v);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)
           INSERT INTO t SELECT i, 'value ' || i FROM n;",
    );
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
    let repo = Repo::new();
    let db = repo.dir.path().join("shop.db");
    // one connection: TRICKY's foreign_keys = ON checks these rows too
    make_db(
        &db,
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
    let s = backup(
        &repo,
        &db,
        &["--mode", "tables", "--exclude-table", "vault_*"],
    );
    let id = snapshot_id(&s);
    assert_eq!(s["source"]["mode"], "tables");
    assert_eq!(s["source"]["tables"], 5);
    let m = repo.manifest(&id);
    let warnings = m["warnings"].to_string();
    for w in [
        "view secret_list",
        "view secret_count",
        "2 foreign key(s) of key_uses",
        "trigger key_uses_touch",
    ] {
        assert!(warnings.contains(w), "{w} not in {warnings}");
    }
    let csv = repo.ok(&["dump", &id, "/tables/customers.csv"]);
    let mut lines = csv.lines();
    assert_eq!(lines.next().unwrap(), "id,name,note,score,avatar,profile");
    // Reals as the shortest text that reads back as the same double.
    let score: f64 = Connection::open(&db)
        .unwrap()
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
    // No trace of the excluded table in any file.
    let files = repo.dir.path().join("files");
    repo.ok(&["restore", &id, "--target", files.to_str().unwrap()]);
    assert_no_file_mentions(&files, &["-e", "vault_keys", "-e", "key-aaa"], "traces");
    // what was left out with it is named only by the manifest's warnings
    let left_out = [
        "--exclude=manifest.json",
        "-e",
        "secret_",
        "-e",
        "key_uses_touch",
    ];
    assert_no_file_mentions(&files, &left_out, "left-out objects");

    // Restore: every kept table identical, the excluded one absent.
    let restored = repo.dir.path().join("from-tables.db");
    let r = summary(&repo.ok(&["restore", &id, "--json", "--to", &url(&restored)]));
    assert_eq!(r["tables"], 5);
    let mut want = fingerprint(&db);
    let mut got = fingerprint(&restored);
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
    let c = Connection::open(&restored).unwrap();
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
    let repo = Repo::new();
    let db = repo.dir.path().join("saas.db");
    make_db(
        &db,
        "CREATE TABLE countries (code TEXT PRIMARY KEY, name TEXT);
         INSERT INTO countries VALUES ('DE', 'Germany'), ('FR', 'France');
         CREATE TABLE plans (id INTEGER PRIMARY KEY, name TEXT);
         CREATE TABLE users (id INTEGER PRIMARY KEY, org_id INTEGER, email TEXT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300)
           INSERT INTO users SELECT i, 1 + i % 3, 'u' || i || '@example.com' FROM n;",
    );
    let query = "n=SELECT count(*) AS users FROM users WHERE org_id = 2 ORDER BY 1";
    let id = snapshot_id(&backup(&repo, &db, &tenant_two_tables(&["--query", query])));
    let rows: BTreeMap<String, u64> = manifest_rows(&repo.manifest(&id));
    assert_eq!(
        rows,
        BTreeMap::from([
            ("countries".into(), 2),
            ("users".into(), 100),
            ("n".into(), 1)
        ])
    );
    assert_eq!(repo.ok(&["dump", &id, "/queries/n.csv"]), "users\n100\n");
}
