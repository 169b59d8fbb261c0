//! Two `holdfast serve` nodes on one PostgreSQL catalog (a private server
//! the test starts), sharing the server key and the storage directory:
//! every queued run is taken by exactly one worker of one node, a node
//! starting does not take over the other's running jobs, and both nodes do
//! work.

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use common::assert_ok;
use common::servers::Postgres;
use common::service::{Server, restic_with};
use serde_json::{Value, json};

const RUNS: usize = 50;

fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The runs a node's log says it finished: `backup <id> of <source>: done`.
fn done_by(s: &Server, source: &str) -> BTreeSet<String> {
    let suffix = format!(" of {source}: done");
    s.log_lines()
        .iter()
        .filter_map(|l| {
            let rest = l.split(" backup ").nth(1)?;
            let id = rest.strip_suffix(&suffix)?;
            Some(id.to_string())
        })
        .collect()
}

#[test]
fn two_nodes_on_one_postgres_catalog_run_each_backup_exactly_once() {
    let pg = Postgres::shared();
    pg.create_db("serve_cluster");
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("repos");
    let url = format!(
        "postgres://{}:{}@127.0.0.1:{}/serve_cluster",
        pg.user, pg.password, pg.port
    );
    let key = holdfast_catalog::ServerKey::random().to_base64();
    let config =
        common::service::commands_config(dir.path(), &[("hello", "sleep 0.4; echo hello")]);
    let env = [
        ("HOLDFAST_CONFIG", config.to_str().unwrap()),
        ("HOLDFAST_CATALOG_URL", url.as_str()),
        ("HOLDFAST_SERVER_KEY", key.as_str()),
        ("HOLDFAST_STORAGE", storage.to_str().unwrap()),
        ("HOLDFAST_WORKERS", "2"),
        // a short lease: heartbeats every 2 s and each node's reaper every
        // 4 s run many times while the runs go on
        ("HOLDFAST_LEASE_SECONDS", "8"),
    ];
    let node_a = dir.path().join("node-a");
    let node_b = dir.path().join("node-b");
    let a = Server::start(&node_a, &env);
    let admin = a
        .admin
        .clone()
        .expect("the first node on an empty catalog prints an admin token");
    let listening = a
        .startup
        .iter()
        .find(|l| l.contains("listening on"))
        .unwrap();
    assert!(
        listening.contains(&format!("catalog postgres://{}:***@", pg.user)),
        "{listening}"
    );
    assert!(
        !node_a.join("catalog.db").exists(),
        "the catalog is PostgreSQL, not a SQLite file"
    );

    let tid = a.create_tenant(&admin, "acme");
    let src = a.create_source(
        &admin,
        &tid,
        json!({"name": "hello", "kind": "command", "target": "hello",
                     "schedule": null, "options": {"filename": "hello.txt"}}),
    );
    let queue = |s: &Server| -> String {
        let q = s.queue_backup(&admin, &tid, &src["id"]);
        assert_eq!(q["status"], "queued");
        q["id"].as_str().unwrap().to_string()
    };

    // node A alone starts working; node B starts while A runs jobs
    let mut ids: Vec<String> = (0..10).map(|_| queue(&a)).collect();
    wait_for("node A to run a job", 30, || {
        let running = a.get(
            &format!("/api/v1/tenants/{tid}/backups?status=running"),
            &admin,
        );
        !running["items"].as_array().unwrap().is_empty()
    });
    let b = Server::start(&node_b, &env);
    assert!(
        b.admin.is_none(),
        "the second node finds tokens in the catalog and prints none"
    );
    for i in 10..RUNS {
        ids.push(queue(if i % 2 == 0 { &a } else { &b }));
    }
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), RUNS);

    // every run done, each on its first attempt
    let mut snapshots = BTreeSet::new();
    let mut repository = None;
    for (i, id) in ids.iter().enumerate() {
        let node = if i % 2 == 0 { &a } else { &b };
        let r = node.wait_backup(id, &admin);
        assert_eq!(r["status"], "done", "{r}");
        assert_eq!(r["attempts"], 1, "{r}");
        assert_eq!(r["size"], "hello\n".len(), "{r}");
        let snap = r["snapshot_id"].as_str().unwrap().to_string();
        assert_eq!(snap.len(), 64, "{r}");
        snapshots.insert(snap);
        repository = Some(r["repository"].as_str().unwrap().to_string());
    }
    assert_eq!(snapshots.len(), RUNS, "one snapshot per run");
    let repository = repository.unwrap();
    assert!(
        repository.starts_with(storage.to_str().unwrap()),
        "{repository}"
    );

    // the catalog agrees, read directly
    let row = pg.psql(
        "serve_cluster",
        "SELECT count(*), count(DISTINCT snapshot_id), min(attempts), max(attempts) \
         FROM backups WHERE status = 'done'",
    );
    assert_eq!(row.trim(), format!("{RUNS}|{RUNS}|1|1"));

    // the audit log: one success per run, no failure, an intact chain
    let audit = b.request("GET", "/api/v1/audit?format=jsonl", Some(&admin), None);
    assert_eq!(audit.status, 200, "{}", audit.text);
    let rows: Vec<Value> = audit
        .text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let succeeded: Vec<&str> = rows
        .iter()
        .filter(|r| r["event"] == "backup_succeeded")
        .map(|r| r["subject"].as_str().unwrap())
        .collect();
    assert_eq!(succeeded.len(), RUNS);
    assert_eq!(
        succeeded
            .iter()
            .map(|s| s.to_string())
            .collect::<BTreeSet<_>>(),
        ids.iter().cloned().collect::<BTreeSet<_>>()
    );
    let failed: Vec<&Value> = rows
        .iter()
        .filter(|r| r["event"] == "backup_failed" || r["event"] == "backup_retried")
        .collect();
    assert!(failed.is_empty(), "{failed:?}");
    let out = b.cli(&["audit", "verify"]);
    assert_ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("intact"));

    // the tenant's repository holds exactly those snapshots, and checks
    let password = a.tenant_key("acme");
    let listed = common::run_ok(restic_with(&repository, &password).args(["snapshots", "--json"]));
    let listed: Value = serde_json::from_str(&listed).unwrap();
    let listed: BTreeSet<String> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, snapshots);
    common::run_ok(restic_with(&repository, &password).arg("check"));

    // both nodes worked, and no run was done by both
    let by_a = done_by(&a, "hello");
    let by_b = done_by(&b, "hello");
    assert!(
        !by_a.is_empty() && !by_b.is_empty(),
        "node A ran {}, node B ran {}",
        by_a.len(),
        by_b.len()
    );
    assert!(by_a.is_disjoint(&by_b), "{:?}", by_a.intersection(&by_b));
    assert_eq!(
        by_a.union(&by_b).cloned().collect::<BTreeSet<_>>(),
        ids.iter().cloned().collect::<BTreeSet<_>>()
    );
    eprintln!("node A ran {}, node B ran {}", by_a.len(), by_b.len());

    // nothing was recovered or lost, and no line shows the catalog password
    let all: Vec<String> = [
        a.startup.clone(),
        a.log_lines(),
        b.startup.clone(),
        b.log_lines(),
    ]
    .concat();
    for l in &all {
        assert!(
            !l.contains("interrupted") && !l.contains("cannot") && !l.contains("lease lost"),
            "{l}"
        );
        assert!(!l.contains(&pg.password), "the password leaked: {l}");
    }
}

#[test]
fn a_catalog_that_goes_away_answers_503_and_readyz_says_so_quickly() {
    let mut pg = Postgres::private();
    pg.create_db("gone");
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "postgres://{}:{}@127.0.0.1:{}/gone",
        pg.user, pg.password, pg.port
    );
    let key = holdfast_catalog::ServerKey::random().to_base64();
    let s = Server::start(
        &dir.path().join("node"),
        &[
            ("HOLDFAST_CATALOG_URL", url.as_str()),
            ("HOLDFAST_SERVER_KEY", key.as_str()),
        ],
    );
    let admin = s.admin.clone().unwrap();
    assert_eq!(s.request("GET", "/readyz", None, None).status, 200);
    s.create_tenant(&admin, "acme");

    pg.stop();
    let started = Instant::now();
    let r = s.request("GET", "/readyz", None, None);
    assert_eq!(r.status, 503, "{}", r.text);
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "/readyz took {:?}",
        started.elapsed()
    );
    assert_eq!(r.content_type, "application/problem+json");
    assert_eq!(r.json()["code"], "unavailable", "{}", r.text);
    // the API too, with no secret in the answer
    for (method, path) in [
        ("GET", "/api/v1/tenants".to_string()),
        ("POST", "/api/v1/tenants".to_string()),
        ("GET", "/api/v1/audit".to_string()),
    ] {
        let body = (method == "POST").then(|| json!({"name": "other"}));
        let r = s.request(method, &path, Some(&admin), body.as_ref());
        assert_eq!(r.status, 503, "{method} {path}: {}", r.text);
        assert_eq!(r.json()["code"], "unavailable", "{}", r.text);
        assert!(!r.text.contains(&pg.password), "{}", r.text);
    }
    assert!(
        s.log_lines().iter().all(|l| !l.contains(&pg.password)),
        "the catalog password was logged"
    );
}

#[test]
fn one_node_on_sqlite_grows_into_postgres_by_copying_its_catalog() {
    let pg = Postgres::shared();
    pg.create_db("grown");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = common::service::commands_config(dir.path(), &[("hello", "echo hello")]);
    let env = [("HOLDFAST_CONFIG", config.to_str().unwrap())];
    let mut s = Server::start(&data, &env);
    let admin = s.admin.clone().unwrap();
    let tid = s.create_tenant(&admin, "acme");
    let src = s.create_source(
        &admin,
        &tid,
        json!({"name": "hello", "kind": "command", "target": "hello", "schedule": null}),
    );
    let first = s.run_backup(&admin, &tid, &src["id"]);
    assert_eq!(first["status"], "done", "{first}");
    assert!(s.terminate(Duration::from_secs(20)).success());

    // the copy: the password only in the environment
    let to = format!("postgres://{}@127.0.0.1:{}/grown", pg.user, pg.port);
    let copy = |to: &str| {
        let mut c = Command::new(common::holdfast_bin());
        common::clean(&mut c);
        c.args(["catalog", "copy", "--data-dir"])
            .arg(&data)
            .args(["--to", to])
            .env("HOLDFAST_CONFIG", &config)
            .env("PGPASSWORD", &pg.password)
            .output()
            .unwrap()
    };
    let with_password = format!(
        "postgres://{}:{}@127.0.0.1:{}/grown",
        pg.user, pg.password, pg.port
    );
    let out = copy(&with_password);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("PGPASSWORD"));
    let out = copy(&to);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("audit chain verifies"), "{text}");
    assert!(!text.contains(&pg.password), "{text}");
    // a second copy into the now full catalog is refused, changing nothing
    let again = copy(&to);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));

    // the node on PostgreSQL: the same tokens, tenants, runs and chain
    let url = format!(
        "postgres://{}:{}@127.0.0.1:{}/grown",
        pg.user, pg.password, pg.port
    );
    let env = [
        ("HOLDFAST_CONFIG", config.to_str().unwrap()),
        ("HOLDFAST_CATALOG_URL", url.as_str()),
    ];
    let s = Server::start(&data, &env);
    assert!(s.admin.is_none(), "the copied tokens are there");
    let got = s.backup(first["id"].as_str().unwrap(), &admin);
    assert_eq!(got["snapshot_id"], first["snapshot_id"]);
    let second = s.run_backup(&admin, &tid, &src["id"]);
    assert_eq!(second["status"], "done", "{second}");
    let out = s.cli(&["audit", "verify"]);
    assert_ok(&out);
    let row = pg.psql(
        "grown",
        "SELECT count(*) FROM backups WHERE status = 'done'",
    );
    assert_eq!(row.trim(), "2");
}
