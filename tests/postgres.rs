//! PostgreSQL against a real server (a private instance the test starts):
//! dump-mode backup, restore into a new database, verification, and every
//! way a dump can go wrong.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::contract::{self, Database, Dialect, Mode, Server, Tools, db_name};
use common::servers::{Postgres, pg_bin};
use common::*;

/// Everything PostgreSQL makes hard to dump: NULLs next to empty strings,
/// unicode, bytea, JSON, arrays, numerics, zoned timestamps, a 1 MB row,
/// many tables, foreign keys, a trigger, sequences, odd names, a view, an
/// enum, a function, a generated column.
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
  lines json,
  with_tax numeric GENERATED ALWAYS AS (total * 1.19) STORED
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

/// The shared server, for the contract every dialect keeps.
struct Pg<'a>(&'a Postgres);

const POSTGRES: Dialect = Dialect {
    scheme: "postgres",
    whole_mode: "dump",
    clean_creates: true,
};

const PG_TOOLS: Tools = Tools {
    password_env: "PGPASSWORD",
    tools_env: "HOLDFAST_PG_BIN",
    dump_tool: "pg_dump",
};

impl Database for Pg<'_> {
    fn dialect(&self) -> &'static Dialect {
        &POSTGRES
    }
    fn url(&self, db: &str) -> String {
        self.0.url(db)
    }
    fn cmd(&self, repo: &Repo) -> std::process::Command {
        contract::with_password(self, repo)
    }
    fn sql(&self, db: &str, sql: &str) -> String {
        self.0.psql(db, sql)
    }
    fn create_db(&self, db: &str) {
        self.0.create_db(db)
    }
    fn series(&self, count: u64) -> String {
        format!("generate_series(1, {count}) AS s(n)")
    }
    fn auto_key(&self) -> &'static str {
        "bigserial PRIMARY KEY"
    }
    fn qualified(&self, table: &str) -> String {
        format!("public.{table}")
    }
    fn has_table(&self, db: &str, table: &str) -> bool {
        let n = self.0.psql(
            db,
            &format!("SELECT count(*) FROM information_schema.tables WHERE table_name = '{table}'"),
        );
        n.trim() != "0"
    }
    fn concat(&self, parts: &[&str]) -> String {
        parts.join(" || ")
    }
    fn hex_digest(&self, int_expr: &str) -> String {
        format!("md5(({int_expr})::text)")
    }
    fn assert_same(&self, a: &str, b: &str) {
        assert_eq!(fingerprint(self.0, a), fingerprint(self.0, b));
    }
    fn missing_database_says(&self, db: &str) -> String {
        db.to_string()
    }
    fn start_writer(&self, db: &str, script: String) -> Box<dyn FnOnce()> {
        let mut psql = std::process::Command::new(pg_bin().join("psql"));
        psql.args(["-X", "-q", "-h", "127.0.0.1", "-p"])
            .arg(self.0.port.to_string())
            .args(["-U", &self.0.user, "-d", db, "-o", "/dev/null"])
            .env("PGPASSWORD", &self.0.password);
        contract::client_writer(psql, script)
    }
}

impl Server for Pg<'_> {
    fn tools(&self) -> &'static Tools {
        &PG_TOOLS
    }
    fn login(&self) -> (&str, u16) {
        (&self.0.password, self.0.port)
    }
    fn wrong_password_says(&self, _db: &str) -> Vec<String> {
        vec![
            "cannot connect to postgres://holdfast@127.0.0.1".into(),
            "password authentication failed".into(),
        ]
    }
}

#[test]
fn restore_refuses_a_non_empty_database_unless_clean() {
    contract::restore_refuses_a_non_empty_database_unless_clean(&Pg(Postgres::shared()));
}

#[test]
fn nightly_dumps_deduplicate() {
    contract::nightly_backups_deduplicate(&Pg(Postgres::shared()));
}

#[test]
fn connection_problems_are_clear_and_secret_free() {
    contract::connection_problems_are_clear_and_secret_free(&Pg(Postgres::shared()));
}

#[test]
fn the_password_never_appears_in_any_command_line() {
    contract::the_password_never_appears_in_any_command_line(&Pg(Postgres::shared()));
}

fn pg_cmd(repo: &Repo, pg: &Postgres) -> std::process::Command {
    Pg(pg).cmd(repo)
}

fn backup_json(repo: &Repo, pg: &Postgres, db: &str, extra: &[&str]) -> serde_json::Value {
    contract::backup_json(&Pg(pg), repo, db, extra)
}

/// A new database on the shared server that `sql` filled; its name.
fn new_db(prefix: &str, sql: &str) -> String {
    contract::new_db(&Pg(Postgres::shared()), prefix, sql)
}

#[test]
fn dump_restores_into_a_new_database_identically() {
    let pg = Postgres::shared();
    let src = new_db("shop", TRICKY);
    pg.psql(&src, &many_tables_sql(40));
    let repo = Repo::new();

    // The manifest records server version, per-table rows and the dump's hash.
    let whole = contract::whole_backup(&Pg(pg), &repo, &src, 44);
    let (id, manifest, dump) = (whole.id, whole.manifest, whole.copy);
    let version = pg.psql("postgres", "SHOW server_version");
    assert_eq!(manifest["server_version"], version.trim());
    let rows: BTreeMap<String, u64> = manifest_rows(&manifest);
    assert_eq!(rows["public.orders"], 3000);
    assert_eq!(rows["public.audit"], 3000);
    assert_eq!(rows["public.customers"], 4);
    assert_eq!(rows["public.Odd \"Name\" (x)"], 3);
    assert_eq!(rows["public.t039"], 117);
    assert!(String::from_utf8_lossy(&dump).contains("PostgreSQL database dump complete"));

    // restic reads the same snapshot and agrees.
    contract::restic_agrees(&repo, &id, &format!("/{src}.sql"), &dump);

    // Restore into a database that does not exist yet.
    let dst = db_name("restored");
    contract::restore_new(&Pg(pg), &repo, &id, &dst, 44);
    assert_eq!(fingerprint(pg, &src), fingerprint(pg, &dst));

    contract::the_secret_stays_out_of_the_snapshot(&Pg(pg), &repo, &id, &src);
}

fn fake_bin(dir: &Path, pg: &Postgres, pg_dump_script: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::os::unix::fs::symlink(pg.bin.join("psql"), dir.join("psql")).unwrap();
    write_script(
        &dir.join("pg_dump"),
        &format!(
            "REAL={}\n{pg_dump_script}",
            pg.bin.join("pg_dump").display()
        ),
    );
}

#[test]
fn broken_dumps_write_no_snapshot() {
    let pg = Postgres::shared();
    let src = new_db(
        "broken",
        "CREATE TABLE a (id int PRIMARY KEY, v text); INSERT INTO a SELECT g, repeat('v', 100) FROM generate_series(1, 20000) g;",
    );
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
    contract::broken_dumps_write_no_snapshot(
        &Pg(pg),
        &repo,
        &src,
        tmp.path(),
        &cases,
        |dir, script| fake_bin(dir, pg, script),
    );

    // A pg_dump older than the server is refused, naming both versions.
    let dir = tmp.path().join("old");
    fake_bin(
        &dir,
        pg,
        "[ \"$1\" = --version ] && echo 'pg_dump (PostgreSQL) 9.6.24' && exit 0\nexit 1",
    );
    let err = contract::backup_fails_with_tools(&Pg(pg), &repo, &dir, &src, "9.6.24");
    let version = pg.psql("postgres", "SHOW server_version");
    assert!(err.contains(version.trim()), "{err}");

    // No pg_dump at all.
    contract::no_tools_write_no_snapshot(&Pg(pg), &repo, &src, tmp.path(), "no working pg_dump");
}

#[test]
fn sql_exports_load_with_psql_and_verify() {
    let pg = Postgres::shared();
    let src = new_db("exported", TRICKY);
    let repo = Repo::new();
    let s = backup_json(&repo, pg, &src, &[]);
    let id = snapshot_id(&s);
    let dump_sha = s["source"]["sha256"].as_str().unwrap().to_string();
    for (format, decompress) in [
        ("sql", "cat"),
        ("sql.gz", "gzip -dc"),
        ("sql.zst", "zstd -dcq"),
    ] {
        let file = repo.dir.path().join(format!("{src}.{format}"));
        let e = summary(&repo.ok(&["export", "--json", &id, "-o", file.to_str().unwrap()]));
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

fn tables_backup(repo: &Repo, pg: &Postgres, db: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["--mode", "tables"];
    args.extend_from_slice(extra);
    backup_json(repo, pg, db, &args)
}

fn restore_to(repo: &Repo, pg: &Postgres, id: &str, db: &str) -> serde_json::Value {
    ok_summary(&contract::restore(&Pg(pg), repo, id, &pg.url(db), &[]))
}

#[test]
fn tables_mode_exports_csv_and_restores_identically() {
    let pg = Postgres::shared();
    let src = new_db("tables_src", TRICKY);
    // psql ends inline COPY data at a line holding only `\.`: a value with
    // such a line inside must still load.
    pg.psql(
        &src,
        "CREATE TABLE edge (id int PRIMARY KEY, v text); \
         INSERT INTO edge VALUES (1, E'x\\n\\\\.\\ny'), (2, E'\\\\.'), (3, E'\\\\.\\n');",
    );
    pg.psql(&src, &many_tables_sql(12));
    let repo = Repo::new();
    let s = tables_backup(&repo, pg, &src, &[]);
    let id = snapshot_id(&s);
    assert_eq!(s["source"]["mode"], "tables");
    assert_eq!(s["source"]["tables"], 17);

    let m = repo.manifest(&id);
    let t = |name: &str| manifest_table(&m, name);
    assert_eq!(t("public.orders")["rows"], 3000);
    assert_eq!(t("public.customers")["rows"], 4);
    assert_eq!(t("public.customers")["columns"][8]["type"], "bytea");
    assert_eq!(t("public.Odd \"Name\" (x)")["rows"], 3);
    // Every file's SHA-256 is right.
    for f in m["files"].as_array().unwrap() {
        let data = repo.file(&id, &format!("/{}", f["path"].as_str().unwrap()));
        assert_eq!(f["sha256"], sha256_hex(&data), "{}", f["path"]);
        assert_eq!(f["size"], data.len());
    }
    // The CSV: header, primary-key order, NULL unquoted-empty, '' quoted, bytea hex.
    let csv = String::from_utf8(repo.file(&id, "/tables/public.customers.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "id,name,note,mood,tags,profile,balance,seen,avatar"
    );
    assert!(
        csv.contains("\n2,empty note,\"\",,{},null,-0.000001,1970-01-01 00:00:00+00,\\x\n"),
        "{}",
        &csv[..400.min(csv.len())]
    );
    assert!(csv.contains(",\\x00ff10deadbeef\n"));
    assert!(
        csv.contains("1,Zoë Ünïcødé 日本語 🎉,,happy,"),
        "NULL note is an empty unquoted field"
    );
    // A generated column is exported (marked in the manifest) and computed
    // again by the database on restore.
    let orders = String::from_utf8(repo.file(&id, "/tables/public.orders.csv")).unwrap();
    let mut lines = orders.lines();
    assert_eq!(
        lines.next().unwrap(),
        "id,customer_id,total,placed,lines,with_tax"
    );
    let first = lines.next().unwrap();
    assert!(
        first.starts_with("1,2,1.5,") && first.ends_with(r#","[1, ""line 1""]",1.785"#),
        "{first}"
    );
    assert_generated_columns(&m, "public.orders", &[5], 4);

    // Restore into a fresh database: same contents, sequences, triggers.
    let dst = db_name("tables_dst");
    let r = restore_to(&repo, pg, &id, &dst);
    assert_eq!(r["tables"], 17);
    assert_eq!(r["created"], true);
    assert_eq!(fingerprint(pg, &src), fingerprint(pg, &dst));
    run_ok(repo.restic().args(["check", "--read-data"]));
}

#[test]
fn writes_during_a_tables_backup_do_not_tear_the_snapshot() {
    let pg = Pg(Postgres::shared());
    contract::writes_during_a_backup_do_not_tear_the_snapshot(&pg, Mode::Tables, 500, 100);
}

#[test]
fn an_excluded_table_leaves_no_trace() {
    let pg = Postgres::shared();
    let db = new_db(
        "excl",
        "CREATE TABLE keep_me (id serial PRIMARY KEY, v text);
         INSERT INTO keep_me (v) VALUES ('a'), ('b');
         CREATE TABLE vault_tokens (id serial PRIMARY KEY, token text UNIQUE, owner int);
         CREATE INDEX vault_tokens_owner ON vault_tokens(owner);
         COMMENT ON TABLE vault_tokens IS 'very private';
         INSERT INTO vault_tokens (token, owner) VALUES ('tok-aaa', 1), ('tok-bbb', 2);
         -- what kept objects say about the excluded table goes too
         CREATE TABLE keep_refs (id int PRIMARY KEY,
           token_id int CONSTRAINT keep_refs_token_fk REFERENCES vault_tokens(id));
         INSERT INTO keep_refs VALUES (1, 1), (2, NULL);
         COMMENT ON CONSTRAINT keep_refs_token_fk ON keep_refs IS 'points into the safe';
         CREATE VIEW token_list AS SELECT token FROM vault_tokens;
         CREATE VIEW token_count AS SELECT count(*) AS n FROM token_list;
         CREATE VIEW keep_view AS SELECT v FROM keep_me;",
    );
    let repo = Repo::new();
    let s = tables_backup(&repo, pg, &db, &["--exclude-table", "vault_*"]);
    let id = snapshot_id(&s);
    assert_eq!(s["source"]["tables"], 2);
    // Not in any file of the snapshot, in any form; the views over it are
    // named only by the manifest's warnings.
    let out = contract::assert_left_out(
        &repo,
        &id,
        &[
            "view public.token_list",
            "view public.token_count",
            "foreign key keep_refs_token_fk of public.keep_refs",
        ],
        &[
            "vault_tokens",
            "tok-aaa",
            "very private",
            "points into the safe",
        ],
        &["token_list", "token_count"],
    );
    assert!(out.join("tables/public.keep_me.csv").exists());
    let dst = db_name("excl_dst");
    restore_to(&repo, pg, &id, &dst);
    assert_eq!(
        pg.psql(&dst, "SELECT string_agg(v, ',' ORDER BY id) FROM keep_me")
            .trim(),
        "a,b"
    );
    assert_eq!(
        pg.psql(&dst, "SELECT nextval('keep_me_id_seq')").trim(),
        "3"
    );
    assert_eq!(
        pg.psql(
            &dst,
            "SELECT count(*) FROM pg_class WHERE relname LIKE 'vault%' OR relname LIKE 'token%'"
        )
        .trim(),
        "0"
    );
    assert_eq!(
        pg.psql(
            &dst,
            "SELECT (SELECT count(*) FROM keep_refs) || ' ' || (SELECT string_agg(v, ',') FROM keep_view) \
             || ' ' || (SELECT count(*) FROM pg_constraint WHERE contype = 'f')"
        )
        .trim(),
        "2 a,b 0"
    );
}

#[test]
fn tenant_scoped_tables_keep_one_customers_rows() {
    let pg = Postgres::shared();
    let t = contract::tenant_scoped_tables_keep_one_customers_rows(
        &Pg(pg),
        "CREATE TABLE orgs (id int PRIMARY KEY, org_id int UNIQUE, name text, country text REFERENCES countries);
         INSERT INTO orgs VALUES (1, 1, 'Acme', 'DE'), (2, 2, 'Globex', 'FR'), (3, 3, 'Initech', 'DE');
         ALTER TABLE users ADD FOREIGN KEY (org_id) REFERENCES orgs(org_id);
         CREATE TABLE invoices (id int PRIMARY KEY, org_id int REFERENCES orgs(org_id), amount numeric);
         INSERT INTO invoices SELECT g, 1 + g % 3, g * 10 FROM generate_series(1, 90) g;",
        &[
            "--query",
            "totals=SELECT org_id, sum(amount) AS total FROM invoices WHERE org_id = 2 GROUP BY org_id ORDER BY org_id",
            "--query",
            "unordered=SELECT email FROM users WHERE org_id = 2",
        ],
        &[("invoices", 30), ("orgs", 1)],
        &[("totals", 1), ("unordered", 100)],
    );
    let (repo, id) = (&t.repo, &t.id);
    assert!(
        stderr(&t.out).contains("query unordered has no ORDER BY"),
        "{}",
        stderr(&t.out)
    );
    assert_eq!(t.manifest["tenant"]["column"], "org_id");
    let totals = String::from_utf8(repo.file(id, "/queries/totals.csv")).unwrap();
    assert_eq!(totals, "org_id,total\n2,13350\n");
    let users = String::from_utf8(repo.file(id, "/tables/public.users.csv")).unwrap();
    assert!(
        users
            .lines()
            .skip(1)
            .all(|l| l.split(',').nth(1) == Some("2")),
        "another tenant's row"
    );

    // A tenant column no table has is an error, not an empty snapshot.
    let out = pg_cmd(repo, pg)
        .args([
            "backup",
            "--mode",
            "tables",
            "--tenant-column",
            "customer",
            "--tenant-value",
            "1",
            &pg.url(&t.src),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("tenant column \"customer\""),
        "{}",
        stderr(&out)
    );
    assert_eq!(repo.snapshot_ids().len(), 1);
}

#[test]
fn a_tables_snapshot_exports_as_a_bundle_that_verifies() {
    let pg = Postgres::shared();
    let src = new_db("bundle_src", TRICKY);
    let repo = Repo::new();
    let id = snapshot_id(&tables_backup(&repo, pg, &src, &[]));
    let file = repo.dir.path().join("shop.zip");
    let out = repo
        .cmd()
        .args(["export", &id, "-o", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    repo.ok(&["export", "--verify", file.to_str().unwrap()]);
    let x = repo.dir.path().join("bundle");
    run_ok(
        std::process::Command::new("unzip")
            .arg("-q")
            .arg(&file)
            .arg("-d")
            .arg(&x),
    );
    // The CSVs are the snapshot's, byte for byte.
    let stored = repo.file(&id, "/tables/public.customers.csv");
    assert_eq!(
        std::fs::read(x.join("csv/public.customers.csv")).unwrap(),
        stored
    );
    // JSON keeps NULL and "" apart.
    let rows: serde_json::Value =
        serde_json::from_slice(&std::fs::read(x.join("json/public.customers.json")).unwrap())
            .unwrap();
    assert_eq!(rows[0]["note"], serde_json::Value::Null);
    assert_eq!(rows[1]["note"], "");
    assert_eq!(rows[1]["name"], "empty note");
    // A workbook and a README that names every table with its rows.
    assert!(x.join(format!("{src}.xlsx")).exists());
    let readme = std::fs::read_to_string(x.join("README.md")).unwrap();
    assert!(
        readme.contains("public.orders") && (readme.contains("3000") || readme.contains("3,000")),
        "{readme}"
    );
}
