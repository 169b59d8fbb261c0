//! `holdfast drill`: a snapshot restored into a scratch target, verified
//! against the snapshot and removed — for a directory, PostgreSQL,
//! MariaDB, SQLite and an event stream, against the real servers; and a
//! drill that fails, for the right reason, on a pack damaged behind
//! holdfast's back that a `check` without `--read-data` does not see.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::http::{HttpServer, Route};
use common::servers::{MariaDb, Postgres, scratch_databases};
use common::*;

/// `holdfast drill ARGS --json --scratch SCRATCH` on `repo`.
fn drill(repo: &Repo, scratch: &Path, args: &[&str]) -> std::process::Output {
    repo.cmd()
        .arg("drill")
        .args(args)
        .arg("--json")
        .arg("--scratch")
        .arg(scratch)
        .output()
        .unwrap()
}

/// The drill's summary, which must have passed.
fn passed(repo: &Repo, scratch: &Path, args: &[&str]) -> serde_json::Value {
    let s = ok_summary(&drill(repo, scratch, args));
    assert!(
        empty(scratch),
        "the drill left its scratch directory behind"
    );
    s
}

/// The drill failed: its message, and the scratch area is empty again.
fn failed(repo: &Repo, scratch: &Path, args: &[&str]) -> String {
    let out = drill(repo, scratch, args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "the drill must fail:\n{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        empty(scratch),
        "a failed drill left its scratch directory behind"
    );
    err
}

/// Nothing of a drill is left in the scratch area (which may not exist, or
/// not be a directory).
fn empty(scratch: &Path) -> bool {
    !scratch.is_dir() || fs::read_dir(scratch).unwrap().next().is_none()
}

fn damage_biggest_pack(repo: &Repo) -> PathBuf {
    common::damage_biggest_pack(&repo.path)
}

/// A `check` without `--read-data` passes: what the drill catches next is
/// what it would have missed.
fn plain_check_passes(repo: &Repo) {
    repo.ok(&["check"]);
}

fn password_file(dir: &Path, password: &str) -> PathBuf {
    let f = dir.join("pw");
    fs::write(&f, format!("{password}\n")).unwrap();
    f
}

#[test]
fn a_directory_drill_restores_and_verifies_every_file_then_catches_a_damaged_pack() {
    let repo = Repo::new();
    let src = repo.dir.path().join("src");
    make_rich_tree(&src);
    fs::write(src.join("big.bin"), noise(3 << 20, 7)).unwrap();
    repo.backup(&[&src], &[]);
    let scratch = repo.dir.path().join("scratch");
    let s = passed(&repo, &scratch, &[]);
    assert_eq!(s["kind"], "files");
    assert!(s["items"].as_u64().unwrap() >= 5, "{s}");
    assert!(s["bytes"].as_u64().unwrap() >= 3 << 20, "{s}");
    assert!(s["duration"].as_f64().unwrap() > 0.0);
    assert!(
        s["checks"][0]
            .as_str()
            .unwrap()
            .contains("hash to the snapshot's blob ids"),
        "{s}"
    );

    let pack = damage_biggest_pack(&repo);
    plain_check_passes(&repo);
    let err = failed(&repo, &scratch, &["latest"]);
    let name = pack.file_name().unwrap().to_str().unwrap();
    let last = err.lines().last().unwrap();
    assert!(
        last.contains(&name[..16])
            && last.contains("MAC check failed")
            && last.contains("could not be restored"),
        "the failure names the damaged pack and what it means:\n{err}"
    );
}

#[test]
fn a_drill_needs_room_and_a_server_and_says_so() {
    let repo = Repo::new();
    let src = repo.dir.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a"), b"hello").unwrap();
    repo.backup(&[&src], &[]);
    // a scratch area that is a file: nothing can be made there
    let not_a_dir = repo.dir.path().join("file");
    fs::write(&not_a_dir, b"x").unwrap();
    let err = failed(&repo, &not_a_dir, &[]);
    assert!(
        err.contains(&format!(
            "the scratch area {} is not a directory",
            not_a_dir.display()
        )),
        "{err}"
    );

    // a database snapshot without a server to drill it on
    let pg = Postgres::shared();
    pg.create_db("drill_noserver");
    pg.psql(
        "drill_noserver",
        "CREATE TABLE t (i int); INSERT INTO t VALUES (1)",
    );
    let pw = password_file(repo.dir.path(), &pg.password);
    repo.ok(&[
        "backup",
        "--source-password-file",
        pw.to_str().unwrap(),
        &pg.url("drill_noserver"),
    ]);
    let err = failed(&repo, &repo.dir.path().join("scratch"), &[]);
    assert!(err.contains("name a postgres server"), "{err}");
}

#[test]
fn a_sqlite_drill_restores_into_a_scratch_file() {
    let repo = Repo::new();
    let db = repo.dir.path().join("app.db");
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute_batch(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2500)
         INSERT INTO users SELECT i, 'user ' || i FROM n;",
    )
    .unwrap();
    drop(c);
    repo.ok(&["backup", &format!("sqlite://{}", db.display())]);
    let scratch = repo.dir.path().join("scratch");
    let s = passed(&repo, &scratch, &[]);
    assert_eq!(s["kind"], "sqlite");
    assert_eq!(s["rows"], 2500);
    assert_eq!(s["tables"][0]["name"], "users");
    assert!(s["checks"].to_string().contains("integrity_check"), "{s}");
    assert!(!s["checks"].to_string().contains("tables read back"), "{s}");

    // tables mode: the table is also read back out of the scratch file
    let before = repo.snapshot_ids();
    repo.ok(&[
        "backup",
        "--mode",
        "tables",
        &format!("sqlite://{}", db.display()),
    ]);
    let tables = repo
        .snapshot_ids()
        .into_iter()
        .find(|id| !before.contains(id))
        .unwrap();
    let s = passed(&repo, &scratch, &[&tables]);
    assert_eq!(s["rows"], 2500);
    assert!(
        s["checks"]
            .to_string()
            .contains("1 tables read back from the restored database equal to the stored files"),
        "{s}"
    );
    assert!(empty(&scratch), "the scratch file is gone");
}

/// Back up `db` of a server, drill it on the same server, damage it, drill
/// again; no scratch database outlives either drill.
fn database_drill(
    url: &str,
    server_url: &str,
    password: &str,
    kind: &str,
    leftover_databases: &dyn Fn() -> String,
) {
    for mode in ["dump", "tables"] {
        database_drill_in(url, server_url, password, kind, mode, leftover_databases);
    }
}

fn database_drill_in(
    url: &str,
    server_url: &str,
    password: &str,
    kind: &str,
    mode: &str,
    leftover_databases: &dyn Fn() -> String,
) {
    let _turn = scratch_databases();
    let repo = Repo::new();
    let pw = password_file(repo.dir.path(), password);
    let pw = pw.to_str().unwrap();
    repo.ok(&["backup", "--mode", mode, "--source-password-file", pw, url]);
    let scratch = repo.dir.path().join("scratch");
    let args = ["--server", server_url, "--server-password-file", pw];
    let s = passed(&repo, &scratch, &args);
    assert_eq!(s["kind"], kind);
    assert_eq!(s["rows"], 3000, "{s}");
    assert_eq!(s["tables"].as_array().unwrap().len(), 2, "{s}");
    assert_eq!(
        s["checks"]
            .to_string()
            .contains("2 tables read back from the restored database equal to the stored files"),
        mode == "tables",
        "{s}"
    );
    assert_eq!(
        leftover_databases(),
        "0",
        "the scratch database was dropped"
    );

    damage_biggest_pack(&repo);
    plain_check_passes(&repo);
    let err = failed(&repo, &scratch, &args);
    let last = err.lines().last().unwrap();
    assert!(
        last.contains("is damaged") && last.contains("MAC check failed"),
        "the failure is the damaged pack, not the loader's complaint:\n{err}"
    );
    assert_eq!(
        leftover_databases(),
        "0",
        "a failed drill drops its database"
    );
}

#[test]
fn a_postgres_drill_restores_into_a_scratch_database_and_drops_it() {
    let pg = Postgres::shared();
    pg.create_db("drill_pg");
    pg.psql(
        "drill_pg",
        "CREATE TABLE a (id int PRIMARY KEY, v text);
         INSERT INTO a SELECT i, md5(i::text) FROM generate_series(1, 2000) i;
         CREATE TABLE b (id int, note text);
         INSERT INTO b SELECT i, repeat('x', i % 50) FROM generate_series(1, 1000) i;",
    );
    database_drill(
        &pg.url("drill_pg"),
        &pg.url("postgres"),
        &pg.password,
        "postgres",
        &|| {
            pg.psql(
                "postgres",
                "SELECT count(*) FROM pg_database WHERE datname LIKE 'holdfast_drill_%'",
            )
            .trim()
            .to_string()
        },
    );
}

#[test]
fn a_mariadb_drill_restores_into_a_scratch_database_and_drops_it() {
    let my = MariaDb::shared();
    my.create_db("drill_my");
    my.sql(
        "drill_my",
        "CREATE TABLE a (id int PRIMARY KEY, v text);
         INSERT INTO a SELECT seq, md5(seq) FROM seq_1_to_2000;
         CREATE TABLE b (id int, note text);
         INSERT INTO b SELECT seq, repeat('x', seq % 50) FROM seq_1_to_1000;",
    );
    database_drill(
        &my.url("drill_my"),
        &my.url("mysql"),
        &my.password,
        "mysql",
        &|| {
            my.sql(
                "mysql",
                "SELECT count(*) FROM information_schema.SCHEMATA \
                 WHERE SCHEMA_NAME LIKE 'holdfast\\_drill\\_%'",
            )
            .trim()
            .to_string()
        },
    );
}

#[test]
fn an_event_stream_drill_validates_every_event_against_the_manifest() {
    let server = HttpServer::start();
    let lines: Vec<String> = (0..4000)
        .map(|i| format!(r#"{{"eventId":"e-{i:05}","schemaVersion":1,"n":{i}}}"#))
        .collect();
    let body: Vec<u8> = lines
        .iter()
        .flat_map(|l| format!("{l}\n").into_bytes())
        .collect();
    server.route(
        "/events",
        Route::whole(body.chunks(1000).map(<[u8]>::to_vec).collect()),
    );
    let repo = Repo::new();
    repo.ok(&["backup", &format!("jsonl+{}", server.url("/events"))]);
    let scratch = repo.dir.path().join("scratch");
    let s = passed(&repo, &scratch, &[]);
    assert_eq!(s["kind"], "jsonl");
    assert_eq!(s["items"], 4000);
    assert_eq!(s["bytes"], body.len() as u64);
}

/// A snapshot written with the repository's key, holding `files` (a
/// forger's, or damage no `check` can see), with `extra` as its
/// `holdfast` summary; its id.
fn forge(repo: &Repo, files: &[(&str, &[u8])], extra: Option<serde_json::Value>) -> String {
    let be: std::sync::Arc<dyn holdfast_storage::Backend> =
        std::sync::Arc::new(holdfast_storage::LocalBackend::new(&repo.path));
    let r = std::sync::Arc::new(
        holdfast_engine::repository::Repository::open(be, PASSWORD.as_bytes()).unwrap(),
    );
    let progress = holdfast_sources::progress::Progress::silent();
    let mut w = holdfast_sources::writer::SnapshotWriter::new(
        &r,
        holdfast_engine::chunker::ChunkerParams::ROWS,
        &holdfast_engine::blob_saver::SaverOptions::default(),
        false,
        &progress,
    )
    .unwrap();
    for (path, data) in files {
        w.add_bytes(path, data).unwrap();
    }
    let (id, _) = w
        .commit(holdfast_engine::snapshot_builder::SnapshotMeta {
            hostname: "forger".into(),
            extra,
            ..Default::default()
        })
        .unwrap();
    id.unwrap().to_hex()
}

/// A database `db` on `pg` with a table `a` of `rows` rows (`id`, the md5
/// of it), backed up in `mode`: the repository, the password file and the
/// snapshot's id.
fn backed_up(pg: &Postgres, db: &str, rows: u32, mode: &str) -> (Repo, PathBuf, String) {
    pg.create_db(db);
    pg.psql(
        db,
        &format!(
            "CREATE TABLE a (id int PRIMARY KEY, v text);
             INSERT INTO a SELECT i, md5(i::text) FROM generate_series(1, {rows}) i;"
        ),
    );
    let repo = Repo::new();
    let pw = password_file(repo.dir.path(), &pg.password);
    repo.ok(&[
        "backup",
        "--mode",
        mode,
        "--source-password-file",
        pw.to_str().unwrap(),
        &pg.url(db),
    ]);
    let id = repo.snapshot_ids().pop().unwrap();
    (repo, pw, id)
}

/// A snapshot forged with the repository's key: the stored dump's rows
/// altered (the same number of them), the original manifest beside it. The
/// repository is whole — `check --read-data` reads every byte and passes —
/// but what it holds is not what was backed up: the drill catches it,
/// before the load commits, by the manifest's SHA-256.
#[test]
fn a_drill_catches_rows_altered_in_a_stored_dump_that_check_passes() {
    let _turn = scratch_databases();
    let pg = Postgres::shared();
    let (repo, pw, original) = backed_up(pg, "drill_forged", 500, "dump");
    let pw = pw.to_str().unwrap();
    let manifest_bytes = repo.file(&original, "/manifest.json");
    let manifest: serde_json::Value = serde_json::from_slice(&manifest_bytes).unwrap();
    let dump_path = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .find(|p| p.ends_with(".sql"))
        .unwrap();
    let dump = String::from_utf8(repo.file(&original, &format!("/{dump_path}"))).unwrap();
    // row 1's value (md5 of "1") becomes another of the same length
    let row = "1\tc4ca4238a0b923820dcc509a6f75849b\n";
    assert!(dump.contains(row), "the dump holds row 1");
    let altered = dump.replacen(row, &format!("1\t{}\n", "0".repeat(32)), 1);
    assert_eq!(altered.len(), dump.len());

    // forged twice: with the original's summary (as a careful forger
    // would), and bare (a snapshot that says nothing of its kind)
    let snapshot: serde_json::Value =
        serde_json::from_str(&repo.ok(&["cat", "snapshot", &original])).unwrap();
    let forged = |extra: Option<serde_json::Value>| {
        forge(
            &repo,
            &[
                (&dump_path, altered.as_bytes()),
                ("manifest.json", &manifest_bytes),
            ],
            extra,
        )
    };
    assert_eq!(
        snapshot["holdfast"]["source"]["kind"], "postgres",
        "{snapshot}"
    );
    let forgeries = [forged(Some(snapshot["holdfast"].clone())), forged(None)];

    // every byte of the repository reads back and re-hashes
    repo.ok(&["check", "--read-data"]);
    let scratch = repo.dir.path().join("scratch");
    let args = [
        "--server",
        &pg.url("postgres"),
        "--server-password-file",
        pw,
    ];
    for forged in &forgeries {
        let mut with = vec![forged.as_str()];
        with.extend(args);
        let err = failed(&repo, &scratch, &with);
        assert!(
            err.contains(&dump_path) && err.contains("SHA-256"),
            "the drill names the altered file:\n{err}"
        );
        let left = pg.psql(
            "postgres",
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'holdfast_drill_%'",
        );
        assert_eq!(left.trim(), "0", "the failed drill dropped its database");
    }
    // the original still drills clean
    let mut with = vec![original.as_str()];
    with.extend(args);
    passed(&repo, &scratch, &with);
}

/// A tables-mode drill reads every table back out of the restored
/// database and compares it with the stored CSV. Two snapshots forged with
/// consistent manifests (every SHA-256 right, so the load accepts them):
/// one whose rows are only in another order passes — a server sorting by
/// another collation would do that — and one whose value `7` is stored as
/// `007` fails: the integer column loads it as 7, the row counts agree,
/// and only reading the table back shows the restored data is not the
/// stored data.
#[test]
fn a_tables_drill_reads_every_table_back_and_catches_a_value_the_load_changed() {
    let _turn = scratch_databases();
    let pg = Postgres::shared();
    let (repo, pw, original) = backed_up(pg, "drill_read_back", 50, "tables");
    let pw = pw.to_str().unwrap();
    let snapshot: serde_json::Value =
        serde_json::from_str(&repo.ok(&["cat", "snapshot", &original])).unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&repo.file(&original, "/manifest.json")).unwrap();
    let file = manifest["tables"][0]["file"].as_str().unwrap().to_string();
    let csv = String::from_utf8(repo.file(&original, &format!("/{file}"))).unwrap();
    let mut lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 51, "{csv}");
    assert!(lines[7].starts_with("7,"), "{}", lines[7]);
    // every file of the original, `file` replaced and the manifest told
    let with = |data: String| -> String {
        let mut m = manifest.clone();
        for f in m["files"].as_array_mut().unwrap() {
            if f["path"] == file.as_str() {
                f["sha256"] = sha256_hex(data.as_bytes()).into();
                f["size"] = data.len().into();
            }
        }
        let mut files: Vec<(String, Vec<u8>)> = manifest["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["path"].as_str().unwrap().to_string())
            .filter(|p| *p != file)
            .map(|p| {
                let bytes = repo.file(&original, &format!("/{p}"));
                (p, bytes)
            })
            .collect();
        files.push((file.clone(), data.into_bytes()));
        files.push(("manifest.json".into(), serde_json::to_vec(&m).unwrap()));
        let refs: Vec<(&str, &[u8])> = files
            .iter()
            .map(|(p, d)| (p.as_str(), d.as_slice()))
            .collect();
        forge(&repo, &refs, Some(snapshot["holdfast"].clone()))
    };
    lines.swap(1, 2);
    let reordered = with(lines.join("\n") + "\n");
    lines.swap(1, 2);
    let seven = lines[7].to_string();
    let altered_row = format!("007{}", &seven[1..]);
    lines[7] = &altered_row;
    let altered = with(lines.join("\n") + "\n");

    let scratch = repo.dir.path().join("scratch");
    let server = pg.url("postgres");
    let args = |id: &'static str| -> Vec<&str> {
        vec![id, "--server", &server, "--server-password-file", pw]
    };
    let (original, reordered, altered) = (
        original.leak() as &str,
        reordered.leak() as &str,
        altered.leak() as &str,
    );
    let s = passed(&repo, &scratch, &args(original));
    assert!(
        s["checks"]
            .to_string()
            .contains("1 tables read back from the restored database equal to the stored files\""),
        "{s}"
    );
    let s = passed(&repo, &scratch, &args(reordered));
    assert!(
        s["checks"].to_string().contains("(1 in another order"),
        "{s}"
    );
    let err = failed(&repo, &scratch, &args(altered));
    assert!(
        err.contains(&file) && err.contains("does not hold the stored rows"),
        "the drill names the table whose values changed:\n{err}"
    );
    let left = pg.psql(
        "postgres",
        "SELECT count(*) FROM pg_database WHERE datname LIKE 'holdfast_drill_%'",
    );
    assert_eq!(left.trim(), "0", "the failed drill dropped its database");
}

/// What a killed drill leaves on a server — a `holdfast_drill_…` database
/// — is dropped by the sweep a server runs at start; other databases,
/// however alike their names, stay.
#[test]
fn the_sweep_drops_only_scratch_databases_on_postgres_and_mariadb() {
    use holdfast_sources::secret::Secret;
    use holdfast_sources::source_url::SourceAddress;
    let _turn = scratch_databases();
    let pg = Postgres::shared();
    let my = MariaDb::shared();
    for name in ["holdfast_drill_00aa11bb", "holdfast_drillkept"] {
        pg.psql("postgres", &format!("CREATE DATABASE {name}"));
        my.sql("mysql", &format!("CREATE DATABASE {name}"));
    }
    let swept = holdfast_sources::drill::sweep_databases(
        SourceAddress::parse(&pg.url("postgres")).unwrap(),
        Some(Secret::new(&pg.password)),
    )
    .unwrap();
    assert_eq!(swept, 1);
    let left = pg.psql(
        "postgres",
        "SELECT string_agg(datname, ',') FROM pg_database WHERE datname LIKE 'holdfast_drill%'",
    );
    assert_eq!(left.trim(), "holdfast_drillkept");
    pg.psql("postgres", "DROP DATABASE holdfast_drillkept");
    let swept = holdfast_sources::drill::sweep_databases(
        SourceAddress::parse(&my.url("mysql")).unwrap(),
        Some(Secret::new(&my.password)),
    )
    .unwrap();
    assert_eq!(swept, 1);
    let left = my.sql(
        "mysql",
        "SELECT GROUP_CONCAT(SCHEMA_NAME) FROM information_schema.SCHEMATA \
         WHERE SCHEMA_NAME LIKE 'holdfast%'",
    );
    assert_eq!(left.trim(), "holdfast_drillkept");
    my.sql("mysql", "DROP DATABASE holdfast_drillkept");
}
