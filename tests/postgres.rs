//! PostgreSQL against a real server (a private instance the test starts):
//! dump-mode backup, restore into a new database, verification, and every
//! way a dump can go wrong.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;
use std::sync::atomic::{AtomicU32, Ordering};

use common::servers::{Postgres, pg_bin};
use common::*;

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A database name unique to this test process.
fn db_name(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}_{}", N.fetch_add(1, Ordering::Relaxed))
}

/// Everything PostgreSQL makes hard to dump: NULLs next to empty strings,
/// unicode, bytea, JSON, arrays, numerics, zoned timestamps, a 1 MB row,
/// many tables, foreign keys, a trigger, sequences, odd names, a view, an
/// enum, a function.
const TRICKY: &str = r#"
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE customers (
  id bigserial PRIMARY KEY,
  name text NOT NULL,
  note text,
  mood mood,
  tags text[],
  profile jsonb,
  balance numeric(20,6),
  seen timestamptz,
  avatar bytea
);
CREATE TABLE orders (
  id serial PRIMARY KEY,
  customer_id bigint NOT NULL REFERENCES customers(id),
  total numeric,
  placed timestamptz DEFAULT now(),
  lines json
);
CREATE TABLE "Odd ""Name"" (x)" ("weird col" int, "tab	col" text);
CREATE TABLE audit (id serial PRIMARY KEY, what text);
CREATE FUNCTION log_order() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO audit(what) VALUES ('order ' || NEW.id); RETURN NEW; END $$;
CREATE TRIGGER orders_audit AFTER INSERT ON orders FOR EACH ROW EXECUTE FUNCTION log_order();
CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 100;
INSERT INTO customers (name, note, mood, tags, profile, balance, seen, avatar) VALUES
  ('Zoë Ünïcødé 日本語 🎉', NULL, 'happy', ARRAY['a','b,c','d"e', NULL], '{"k": [1, 2, {"x": null}], "s": "tab\tnewline\n"}', 12345678901234.123456, '2024-02-29 23:59:59.999999+05:30', '\x00ff10deadbeef'),
  ('empty note', '', NULL, '{}', 'null', -0.000001, '1970-01-01 00:00:00+00', ''),
  ('back\slash and "quotes" and ''single''', E'line1\nline2\r\n\\N', 'sad', NULL, NULL, 0, NULL, NULL),
  ('big', repeat('x', 1000000), 'ok', NULL, NULL, NULL, 'infinity', decode(repeat('ab', 50000), 'hex'));
INSERT INTO orders (customer_id, total, lines) SELECT 1 + (i % 4), i * 1.5, json_build_array(i, 'line ' || i) FROM generate_series(1, 3000) i;
INSERT INTO "Odd ""Name"" (x)" VALUES (1, 'a'), (NULL, NULL), (3, E'\\.');
SELECT setval('customers_id_seq', 1000);
"#;

fn many_tables_sql(n: usize) -> String {
    (0..n)
        .map(|i| format!("CREATE TABLE t{i:03} (id int PRIMARY KEY, v text); INSERT INTO t{i:03} SELECT g, md5(g::text) FROM generate_series(1, {}) g;\n", i * 3))
        .collect()
}

/// Per-table row count and content hash, sequence values, triggers and
/// functions: equal fingerprints mean equal databases for this test.
fn fingerprint(pg: &Postgres, db: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let tables = pg.psql(
        db,
        "SELECT format('%I.%I', table_schema, table_name) FROM information_schema.tables \
         WHERE table_schema NOT IN ('pg_catalog', 'information_schema') AND table_type = 'BASE TABLE' ORDER BY 1",
    );
    for t in tables.lines() {
        let v = pg.psql(db, &format!("SELECT count(*) || ' ' || coalesce(md5(string_agg(x::text, E'\\n' ORDER BY x::text)), '-') FROM {t} x"));
        out.insert(format!("table {t}"), v.trim().to_string());
    }
    for s in pg
        .psql(
            db,
            "SELECT format('%I.%I', schemaname, sequencename) FROM pg_sequences ORDER BY 1",
        )
        .lines()
    {
        let v = pg.psql(
            db,
            &format!("SELECT last_value || ' ' || is_called FROM {s}"),
        );
        out.insert(format!("sequence {s}"), v.trim().to_string());
    }
    out.insert(
        "triggers".into(),
        pg.psql(
            db,
            "SELECT string_agg(tgname, ',' ORDER BY tgname) FROM pg_trigger WHERE NOT tgisinternal",
        ),
    );
    out.insert("functions".into(), pg.psql(db, "SELECT string_agg(proname, ',' ORDER BY proname) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'"));
    out.insert("views".into(), pg.psql(db, "SELECT string_agg(viewname || ':' || definition, ',' ORDER BY viewname) FROM pg_views WHERE schemaname = 'public'"));
    out.insert(
        "types".into(),
        pg.psql(
            db,
            "SELECT string_agg(enumlabel, ',' ORDER BY enumsortorder) FROM pg_enum",
        ),
    );
    out
}

fn pg_cmd(repo: &Repo, pg: &Postgres) -> std::process::Command {
    let mut c = repo.cmd();
    c.env("PGPASSWORD", &pg.password);
    c
}

fn backup_json(repo: &Repo, pg: &Postgres, db: &str, extra: &[&str]) -> serde_json::Value {
    let out = pg_cmd(repo, pg)
        .args(["backup", "--json"])
        .args(extra)
        .arg(pg.url(db))
        .output()
        .unwrap();
    assert!(out.status.success(), "backup failed: {}", stderr(&out));
    summary(&String::from_utf8_lossy(&out.stdout))
}

#[test]
fn dump_restores_into_a_new_database_identically() {
    let pg = Postgres::shared();
    let src = db_name("shop");
    pg.create_db(&src);
    pg.psql(&src, TRICKY);
    pg.psql(&src, &many_tables_sql(40));
    let repo = Repo::new();

    let s = backup_json(&repo, pg, &src, &["--tag", "nightly"]);
    let id = s["snapshot_id"].as_str().unwrap().to_string();
    assert_eq!(s["source"]["kind"], "postgres");
    assert_eq!(s["source"]["mode"], "dump");
    assert_eq!(s["source"]["database"], src.as_str());
    assert_eq!(s["source"]["tables"], 44);

    // The manifest records server version, per-table rows and the dump's hash.
    let manifest: serde_json::Value = serde_json::from_slice(
        &repo
            .cmd()
            .args(["dump", &id, "/manifest.json"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let version = pg.psql("postgres", "SHOW server_version");
    assert_eq!(manifest["server_version"], version.trim());
    let rows: BTreeMap<String, u64> = manifest["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                t["rows"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(rows["public.orders"], 3000);
    assert_eq!(rows["public.audit"], 3000);
    assert_eq!(rows["public.customers"], 4);
    assert_eq!(rows["public.Odd \"Name\" (x)"], 3);
    assert_eq!(rows["public.t039"], 117);
    let dump = repo
        .cmd()
        .args(["dump", &id, &format!("/{src}.sql")])
        .output()
        .unwrap()
        .stdout;
    assert_eq!(manifest["files"][0]["sha256"], sha256_hex(&dump));
    assert!(String::from_utf8_lossy(&dump).contains("PostgreSQL database dump complete"));

    // restic reads the same snapshot and agrees.
    run_ok(repo.restic().args(["check", "--read-data"]));
    let r = repo
        .restic()
        .args(["dump", &id, &format!("/{src}.sql")])
        .output()
        .unwrap();
    assert_eq!(r.stdout, dump);

    // Restore into a database that does not exist yet.
    let dst = db_name("restored");
    let out = pg_cmd(&repo, pg)
        .args(["restore", &id, "--json", "--to", &pg.url(&dst)])
        .output()
        .unwrap();
    assert!(out.status.success(), "restore failed: {}", stderr(&out));
    let r = summary(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(r["created"], true);
    assert_eq!(r["verified"], true);
    assert_eq!(r["tables"], 44);
    assert_eq!(fingerprint(pg, &src), fingerprint(pg, &dst));

    // The secret never lands in the repository's metadata.
    let snap = repo.ok(&["cat", "snapshot", &id]);
    assert!(!snap.contains(&pg.password));
    assert!(snap.contains(&pg.url(&src)), "{snap}");
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn restore_refuses_a_non_empty_database_unless_clean() {
    let pg = Postgres::shared();
    let src = db_name("small");
    pg.create_db(&src);
    pg.psql(&src, "CREATE TABLE a (id int PRIMARY KEY, v text); INSERT INTO a SELECT g, 'v' || g FROM generate_series(1, 500) g;");
    let repo = Repo::new();
    let id = backup_json(&repo, pg, &src, &[])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();

    let dst = db_name("busy");
    pg.create_db(&dst);
    pg.psql(
        &dst,
        "CREATE TABLE precious (x int); INSERT INTO precious VALUES (42);",
    );
    let out = pg_cmd(&repo, pg)
        .args(["restore", &id, "--to", &pg.url(&dst)])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("is not empty"), "{}", stderr(&out));
    assert_eq!(pg.psql(&dst, "SELECT x FROM precious").trim(), "42");

    let out = pg_cmd(&repo, pg)
        .args(["restore", &id, "--clean", "--to", &pg.url(&dst)])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fingerprint(pg, &src), fingerprint(pg, &dst));

    // An existing empty database is used as it is.
    let empty = db_name("empty");
    pg.create_db(&empty);
    let out = pg_cmd(&repo, pg)
        .args(["restore", &id, "--json", "--to", &pg.url(&empty)])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        summary(&String::from_utf8_lossy(&out.stdout))["created"],
        false
    );
    assert_eq!(pg.psql(&empty, "SELECT count(*) FROM a").trim(), "500");
}

#[test]
fn nightly_dumps_deduplicate() {
    let pg = Postgres::shared();
    let src = db_name("nightly");
    pg.create_db(&src);
    pg.psql(&src, "CREATE TABLE events (id int PRIMARY KEY, payload text); \
                   INSERT INTO events SELECT g, md5(g::text) || repeat(' ', 60) || md5((g*7)::text) FROM generate_series(1, 200000) g;");
    let repo = Repo::new();
    let first = backup_json(&repo, pg, &src, &[]);
    pg.psql(&src, "UPDATE events SET payload = 'changed' WHERE id % 5000 = 0; INSERT INTO events VALUES (300000, 'new');");
    let second = backup_json(&repo, pg, &src, &[]);
    let size = first["total_bytes_processed"].as_u64().unwrap();
    let added = second["data_added"].as_u64().unwrap();
    assert!(size > 20_000_000, "{size}");
    // 41 changed rows in a 25 MB dump: a few small chunks, not megabytes.
    assert!(
        added < size / 20,
        "second dump added {added} of {size} bytes"
    );
}

fn fake_bin(dir: &Path, pg: &Postgres, pg_dump_script: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::os::unix::fs::symlink(pg.bin.join("psql"), dir.join("psql")).unwrap();
    let script = dir.join("pg_dump");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nREAL={}\n{pg_dump_script}\n",
            pg.bin.join("pg_dump").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn broken_dumps_write_no_snapshot() {
    let pg = Postgres::shared();
    let src = db_name("broken");
    pg.create_db(&src);
    pg.psql(&src, "CREATE TABLE a (id int PRIMARY KEY, v text); INSERT INTO a SELECT g, repeat('v', 100) FROM generate_series(1, 20000) g;");
    let repo = Repo::new();
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        (
            "truncated",
            "[ \"$1\" = --version ] && exec $REAL --version\n$REAL \"$@\" | head -c 300000",
            "cut short",
        ),
        (
            "empty",
            "[ \"$1\" = --version ] && exec $REAL --version\nexit 0",
            "cut short",
        ),
        (
            "failing",
            "[ \"$1\" = --version ] && exec $REAL --version\n$REAL \"$@\"\necho 'pg_dump: error: disk on fire' >&2\nexit 1",
            "disk on fire",
        ),
        (
            "killed",
            "[ \"$1\" = --version ] && exec $REAL --version\n$REAL \"$@\" | head -c 100000\nkill -9 $$",
            "killed by signal 9",
        ),
    ];
    for (name, script, expect) in cases {
        let dir = tmp.path().join(name);
        fake_bin(&dir, pg, script);
        let out = pg_cmd(&repo, pg)
            .env("HOLDFAST_PG_BIN", &dir)
            .args(["backup", &pg.url(&src)])
            .output()
            .unwrap();
        let err = stderr(&out);
        assert!(!out.status.success(), "{name}: succeeded");
        assert!(err.contains(expect), "{name}: {err}");
        assert!(err.contains("no snapshot was written"), "{name}: {err}");
    }
    assert!(repo.snapshot_ids().is_empty());
    repo.ok(&["check", "--read-data"]);

    // A pg_dump older than the server is refused, naming both versions.
    let dir = tmp.path().join("old");
    fake_bin(
        &dir,
        pg,
        "[ \"$1\" = --version ] && echo 'pg_dump (PostgreSQL) 9.6.24' && exit 0\nexit 1",
    );
    let out = pg_cmd(&repo, pg)
        .env("HOLDFAST_PG_BIN", &dir)
        .args(["backup", &pg.url(&src)])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(!out.status.success());
    let version = pg.psql("postgres", "SHOW server_version");
    assert!(
        err.contains("9.6.24") && err.contains(version.trim()),
        "{err}"
    );

    // No pg_dump at all.
    let empty = tmp.path().join("nothing");
    std::fs::create_dir_all(&empty).unwrap();
    let out = pg_cmd(&repo, pg)
        .env("HOLDFAST_PG_BIN", &empty)
        .args(["backup", &pg.url(&src)])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no working pg_dump"),
        "{}",
        stderr(&out)
    );
    assert!(repo.snapshot_ids().is_empty());
}

#[test]
fn connection_problems_are_clear_and_secret_free() {
    let pg = Postgres::shared();
    let repo = Repo::new();
    // Wrong password.
    let out = repo
        .cmd()
        .env("PGPASSWORD", "not-the-password")
        .args(["backup", &pg.url("postgres")])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("cannot connect to postgres://holdfast@127.0.0.1"),
        "{err}"
    );
    assert!(err.contains("password authentication failed"), "{err}");
    assert!(!err.contains("not-the-password"), "{err}");
    // A password in the address is never shown.
    let url = format!(
        "postgres://holdfast:sekrit-in-url@127.0.0.1:{}/postgres",
        pg.port
    );
    let out = repo.cmd().args(["backup", &url]).output().unwrap();
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        !err.contains("sekrit-in-url") && err.contains("holdfast:***@"),
        "{err}"
    );
    // Nobody listening.
    let port = common::servers::free_port();
    let out = pg_cmd(&repo, pg)
        .args(["backup", &format!("postgres://holdfast@127.0.0.1:{port}/x")])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("cannot connect") && err.contains("refused"),
        "{err}"
    );
    // A database that does not exist.
    let out = pg_cmd(&repo, pg)
        .args(["backup", &pg.url("no_such_db")])
        .output()
        .unwrap();
    assert!(stderr(&out).contains("no_such_db"), "{}", stderr(&out));
    assert!(repo.snapshot_ids().is_empty());
}

#[test]
fn the_password_never_appears_in_any_command_line() {
    let pg = Postgres::shared();
    let src = db_name("argv");
    pg.create_db(&src);
    pg.psql(&src, "CREATE TABLE a (id int PRIMARY KEY, v text); INSERT INTO a SELECT g, repeat(md5(g::text), 8) FROM generate_series(1, 300000) g;");
    let repo = Repo::new();
    let tmp = tempfile::tempdir().unwrap();
    let pwfile = tmp.path().join("pw");
    std::fs::write(&pwfile, format!("{}\n", pg.password)).unwrap();
    let mut child = repo
        .cmd()
        .args(["backup", "--source-password-file"])
        .arg(&pwfile)
        .arg(pg.url(&src))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut saw_pg_dump = false;
    loop {
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
                continue;
            };
            let text = String::from_utf8_lossy(&cmdline);
            assert!(
                !text.contains(&pg.password),
                "password in argv of {}: {text}",
                e.path().display()
            );
            if text.contains("pg_dump\0") || text.contains("/pg_dump") {
                saw_pg_dump = true;
            }
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(saw_pg_dump, "the scan never saw pg_dump running");
    assert_eq!(repo.snapshot_ids().len(), 1);
}

#[test]
fn sql_exports_load_with_psql_and_verify() {
    let pg = Postgres::shared();
    let src = db_name("exported");
    pg.create_db(&src);
    pg.psql(&src, TRICKY);
    let repo = Repo::new();
    let s = backup_json(&repo, pg, &src, &[]);
    let id = s["snapshot_id"].as_str().unwrap().to_string();
    let dump_sha = s["source"]["sha256"].as_str().unwrap().to_string();
    for (format, decompress) in [
        ("sql", "cat"),
        ("sql.gz", "gzip -dc"),
        ("sql.zst", "zstd -dcq"),
    ] {
        let file = repo.dir.path().join(format!("{src}.{format}"));
        let out = repo
            .cmd()
            .args(["export", "--json", &id, "-o", file.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{format}: {}", stderr(&out));
        let e = summary(&String::from_utf8_lossy(&out.stdout));
        assert_eq!(e["format"], format);
        repo.ok(&["export", "--verify", file.to_str().unwrap()]);
        // The SQL inside is byte for byte what pg_dump wrote.
        let m: serde_json::Value = serde_json::from_slice(
            &std::fs::read(format!("{}.manifest.json", file.display())).unwrap(),
        )
        .unwrap();
        assert_eq!(m["files"][0]["sha256"], dump_sha.as_str());
        // It loads with the everyday tools, without holdfast.
        let dst = db_name("from_export");
        pg.create_db(&dst);
        let load = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "{decompress} \"$1\" | \"$2\" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p {} -U {} -d {dst} -o /dev/null",
                pg.port, pg.user
            ))
            .arg("sh")
            .arg(&file)
            .arg(pg_bin().join("psql"))
            .env("PGPASSWORD", &pg.password)
            .output()
            .unwrap();
        assert!(load.status.success(), "{format}: {}", stderr(&load));
        assert_eq!(fingerprint(pg, &src), fingerprint(pg, &dst), "{format}");
    }
}
