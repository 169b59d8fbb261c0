//! `holdfast serve` with `storage = "s3:…"` on a private Garage: each
//! tenant's repository under its own prefix; backup, restore, download and
//! deletion work as on local disk; restic opens the tenant's repository
//! with the exported key; and the object store going away mid-backup is a
//! failed run with its cause, after which the next one succeeds.

mod common;

use std::fs;
use std::time::{Duration, Instant};

use common::assert_ok;
use common::s3proxy::S3Proxy;
use common::servers::Garage;
use common::service::{Server, slow_first_run};
use serde_json::{Value, json};

fn garage_env(g: &Garage, storage: &str) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = g
        .env()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    env.push(("HOLDFAST_STORAGE".into(), storage.to_string()));
    env
}

fn start(dir: &std::path::Path, env: &[(String, String)]) -> Server {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Server::start(&dir.join("data"), &env)
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_service_keeps_each_tenant_under_its_own_prefix_in_the_bucket() {
    let g = Garage::shared();
    let dir = tempfile::tempdir().unwrap();
    let storage = g.location("service");
    let s = start(dir.path(), &garage_env(g, &storage));
    let admin = s.admin.clone().unwrap();
    let acme = s.create_tenant(&admin, "acme");
    let other = s.create_tenant(&admin, "other");
    let src = dir.path().join("site");
    fs::create_dir_all(src.join("uploads")).unwrap();
    fs::write(src.join("index.html"), b"<h1>acme</h1>\n").unwrap();
    fs::write(src.join("uploads/logo.bin"), vec![7u8; 300_000]).unwrap();
    let source = s.create_source(
        &admin,
        &acme,
        json!({"name": "site", "kind": "directory", "target": src}),
    );
    let b = s.run_backup(&admin, &acme, &source["id"]);
    assert_eq!(b["status"], "done", "{b}");
    let repo = b["repository"].as_str().unwrap().to_string();
    assert_eq!(repo, format!("{storage}/{acme}"), "the tenant's own prefix");
    let snapshot_id = b["snapshot_id"].as_str().unwrap().to_string();

    // restic opens it with the exported key, from the bucket
    let password = s.tenant_key("acme");
    let checked =
        common::run_ok(restic_on(g, &repo, &password, dir.path()).args(["check", "--read-data"]));
    assert!(checked.contains("no errors were found"), "{checked}");

    // the other tenant's prefix has its own repository, without acme's data
    let theirs = s.get(&format!("/api/v1/tenants/{other}"), &admin);
    assert_eq!(theirs["repository"], format!("{storage}/{other}"));

    // download from the bucket
    let resp = s.download(
        &format!(
            "/api/v1/backups/{}/file?format=tar",
            b["id"].as_str().unwrap()
        ),
        &admin,
    );
    assert_eq!(resp.status().as_u16(), 200);
    let tar = dir.path().join("site.tar");
    fs::write(&tar, resp.bytes().unwrap()).unwrap();
    let untarred = dir.path().join("untarred");
    fs::create_dir_all(&untarred).unwrap();
    common::run_ok(
        std::process::Command::new("tar")
            .arg("-xf")
            .arg(&tar)
            .arg("-C")
            .arg(&untarred),
    );
    let inside = untarred.join(src.strip_prefix("/").unwrap());
    assert_eq!(
        fs::read(inside.join("uploads/logo.bin")).unwrap(),
        vec![7u8; 300_000]
    );

    // restore over the API, verified
    let r = s.queue_restore(&admin, b["id"].as_str().unwrap(), None);
    let rid = r["id"].as_str().unwrap().to_string();
    let done = s.wait_restore(&rid, &admin);
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["verification"]["files"], 2);
    let target = std::path::PathBuf::from(done["target"].as_str().unwrap());
    let inside = target.join(src.strip_prefix("/").unwrap());
    assert_eq!(
        fs::read(inside.join("index.html")).unwrap(),
        b"<h1>acme</h1>\n"
    );

    // deletion: the snapshot leaves the bucket, the row stays
    s.expect(
        202,
        "DELETE",
        &format!("/api/v1/backups/{}", b["id"].as_str().unwrap()),
        Some(&admin),
        None,
    );
    wait_for("the deletion", || {
        s.backup(b["id"].as_str().unwrap(), &admin)["status"] == "deleted"
    });
    let listed: Value = serde_json::from_str(&common::run_ok(
        restic_on(g, &repo, &password, dir.path()).args(["snapshots", "--json"]),
    ))
    .unwrap();
    assert!(
        !listed.to_string().contains(&snapshot_id),
        "the snapshot is gone: {listed}"
    );
}

#[test]
fn the_object_store_going_away_mid_backup_fails_the_run_and_the_next_succeeds() {
    let g = Garage::shared();
    let proxy = S3Proxy::start(&g.endpoint);
    let dir = tempfile::tempdir().unwrap();
    let storage = proxy.location("backups", "service-faults");
    let mut env = garage_env(g, &storage);
    env.push(("HOLDFAST_MAX_ATTEMPTS".into(), "1".into()));
    let config = dir.path().join("holdfast.toml");
    fs::write(&config, "[s3]\nretries = 1\n").unwrap();
    env.push((
        "HOLDFAST_CONFIG".into(),
        config.to_string_lossy().into_owned(),
    ));
    let s = start(dir.path(), &env);
    let admin = s.admin.clone().unwrap();
    let t = s.create_tenant(&admin, "acme");
    let src = dir.path().join("big");
    fs::create_dir_all(&src).unwrap();
    let data: Vec<u8> = (0..(12u32 << 20))
        .map(|j| (j.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    fs::write(src.join("data.bin"), &data).unwrap();
    let source = s.create_source(
        &admin,
        &t,
        json!({"name": "big", "kind": "directory", "target": src}),
    );
    let down = proxy.down_switch();
    // the store goes away at the second pack upload
    proxy.hook_on("PUT", "/data/", 2, move |_| {
        down.store(true, std::sync::atomic::Ordering::SeqCst)
    });
    let b = s.run_backup(&admin, &t, &source["id"]);
    assert_eq!(b["status"], "failed", "{b}");
    let error = b["error"].as_str().unwrap();
    eprintln!("the failed run: {error}");
    assert!(error.contains(&proxy.endpoint), "names the store: {error}");
    assert!(!error.contains(&g.secret), "{error}");

    proxy.set_down(false);
    let b = s.run_backup(&admin, &t, &source["id"]);
    assert_eq!(b["status"], "done", "{b}");
    // the server's metrics count the storage's retries
    let m = s.request("GET", "/metrics", Some(&admin), None);
    assert!(
        m.text.contains("holdfast_storage_retries_total"),
        "{}",
        m.text
    );
}

/// restic on a tenant's repository in the bucket.
fn restic_on(
    g: &Garage,
    repo: &str,
    password: &str,
    dir: &std::path::Path,
) -> std::process::Command {
    let mut c = std::process::Command::new("restic");
    common::clean(&mut c);
    c.env("RESTIC_REPOSITORY", repo)
        .env("RESTIC_PASSWORD", password)
        .env("RESTIC_CACHE_DIR", dir.join("restic-cache"))
        .envs(g.env());
    c
}

#[test]
fn two_nodes_on_one_postgres_catalog_and_one_bucket_share_the_work_and_take_over() {
    let pg = common::servers::Postgres::shared();
    pg.create_db("serve_bucket");
    let g = Garage::shared();
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "postgres://{}:{}@127.0.0.1:{}/serve_bucket",
        pg.user, pg.password, pg.port
    );
    let key = holdfast_catalog::ServerKey::random().to_base64();
    // the first run writes 20 MB and hangs until its node is killed; the
    // others are quick
    let marker = dir.path().join("first-run");
    let pidfile = dir.path().join("pid");
    let slow = slow_first_run(&marker, &pidfile, "later run");
    let config = common::service::commands_config(
        dir.path(),
        &[
            ("slow", &slow),
            ("quick", "echo $$; head -c 100000 /dev/urandom"),
        ],
    );
    let mut env = garage_env(g, &g.location("cluster"));
    for (k, v) in [
        ("HOLDFAST_CONFIG", config.to_str().unwrap()),
        ("HOLDFAST_CATALOG_URL", url.as_str()),
        ("HOLDFAST_SERVER_KEY", key.as_str()),
        ("HOLDFAST_WORKERS", "2"),
        ("HOLDFAST_LEASE_SECONDS", "6"),
        ("HOLDFAST_RETRY_BASE_SECONDS", "1"),
    ] {
        env.push((k.into(), v.into()));
    }
    let mut a = start(&dir.path().join("node-a"), &env);
    let admin = a.admin.clone().unwrap();
    let t = a.create_tenant(&admin, "acme");
    let slow_src = a.create_source(
        &admin,
        &t,
        json!({"name": "slow", "kind": "command", "target": "slow", "schedule": null,
               "options": {"filename": "out.bin"}}),
    );
    let q = a.queue_backup(&admin, &t, &slow_src["id"]);
    let taken_over = q["id"].as_str().unwrap().to_string();
    wait_for("node A to run and write", || {
        a.backup(&taken_over, &admin)["status"] == "running" && marker.exists()
    });
    let b = start(&dir.path().join("node-b"), &env);
    std::thread::sleep(Duration::from_millis(1500));
    a.kill9();
    let pid = fs::read_to_string(&pidfile).unwrap().trim().to_string();
    let _ = std::process::Command::new("kill")
        .args(["-9", &pid])
        .status();

    // node B takes the run over once A's lease has run out
    let r = b.wait_backup(&taken_over, &admin);
    assert_eq!(r["status"], "done", "{r}");
    assert_eq!(r["attempts"], 2, "{r}");
    assert_eq!(r["size"], "later run\n".len());

    // a new node A and B: each queued run done once, on its first attempt
    let a = start(&dir.path().join("node-a2"), &env);
    let quick = a.create_source(
        &admin,
        &t,
        json!({"name": "quick", "kind": "command", "target": "quick", "schedule": null,
               "options": {"filename": "q.bin"}}),
    );
    let ids: Vec<String> = (0..8)
        .map(|i| {
            let node = if i % 2 == 0 { &a } else { &b };
            node.queue_backup(&admin, &t, &quick["id"])["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let mut snapshots = std::collections::BTreeSet::new();
    let mut repo = String::new();
    for (i, id) in ids.iter().enumerate() {
        let node = if i % 2 == 0 { &b } else { &a };
        let r = node.wait_backup(id, &admin);
        assert_eq!(r["status"], "done", "{r}");
        assert_eq!(r["attempts"], 1, "{r}");
        snapshots.insert(r["snapshot_id"].as_str().unwrap().to_string());
        repo = r["repository"].as_str().unwrap().to_string();
    }
    assert_eq!(snapshots.len(), 8);
    assert!(repo.starts_with("s3:"), "{repo}");
    let row = pg.psql(
        "serve_bucket",
        "SELECT count(*), count(DISTINCT snapshot_id) FROM backups WHERE status = 'done'",
    );
    assert_eq!(row.trim(), "9|9");

    // either node serves a download of what the other wrote
    for (node, id) in [(&a, &ids[1]), (&b, &ids[0])] {
        let resp = reqwest::blocking::Client::new()
            .get(format!("{}/api/v1/backups/{id}/file?format=tar", node.base))
            .header("Authorization", format!("Bearer {admin}"))
            .send()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        assert!(resp.bytes().unwrap().len() > 100_000);
    }

    // two deletions at once, one per node: the bucket's lock serialises
    // the two prunes, and the repository checks afterwards
    for (node, id) in [(&a, &ids[2]), (&b, &ids[3])] {
        node.expect(
            202,
            "DELETE",
            &format!("/api/v1/backups/{id}"),
            Some(&admin),
            None,
        );
    }
    for id in [&ids[2], &ids[3]] {
        wait_for("the deletions", || {
            a.backup(id, &admin)["status"] == "deleted"
        });
    }
    let password = a.tenant_key("acme");
    let listed: Value = serde_json::from_str(&common::run_ok(
        restic_on(g, &repo, &password, dir.path()).args(["snapshots", "--json"]),
    ))
    .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 7, "{listed}");
    let out =
        common::run_ok(restic_on(g, &repo, &password, dir.path()).args(["check", "--read-data"]));
    assert!(out.contains("no errors were found"), "{out}");
}

/// A key of its own on the Garage, allowed on `bucket` only.
fn own_key(g: &Garage, bucket: &str, name: &str) -> (String, String) {
    assert!(g.cli(&["bucket", "create", bucket]).status.success());
    let out = g.cli(&["key", "create", name]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |f: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(f))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("no {f} in {text}"))
    };
    let (id, secret) = (field("Key ID:"), field("Secret key:"));
    assert!(
        g.cli(&[
            "bucket", "allow", "--read", "--write", "--owner", bucket, "--key", name
        ])
        .status
        .success()
    );
    (id, secret)
}

#[test]
fn an_admin_gives_a_tenant_its_own_bucket_and_key() {
    let g = Garage::shared();
    let (key_id, secret) = own_key(g, "tenant-own", "tenant-own-key");
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &garage_env(g, &g.location("service-default")));
    let admin = s.admin.clone().unwrap();
    let t = s.create_tenant(&admin, "acme");
    let own = format!("s3:{}/tenant-own/acme", g.endpoint);

    // wrong secret: refused, naming the place, never the secret
    let r = s.request(
        "PUT",
        &format!("/api/v1/tenants/{t}/storage"),
        Some(&admin),
        Some(
            &json!({"location": own, "access_key_id": key_id, "secret_access_key": "wrong-secret"}),
        ),
    );
    assert_eq!(r.status, 503, "{}", r.text);
    assert!(r.text.contains("tenant-own"), "{}", r.text);
    assert!(!r.text.contains("wrong-secret"), "{}", r.text);
    // half a key, or a local path: 422
    for body in [
        json!({"location": own, "access_key_id": key_id}),
        json!({"location": "/srv/elsewhere"}),
    ] {
        let r = s.request(
            "PUT",
            &format!("/api/v1/tenants/{t}/storage"),
            Some(&admin),
            Some(&body),
        );
        assert_eq!(r.status, 422, "{body}: {}", r.text);
    }

    let moved = s.expect(
        200,
        "PUT",
        &format!("/api/v1/tenants/{t}/storage"),
        Some(&admin),
        Some(
            &json!({"location": own, "access_key_id": key_id, "secret_access_key": secret,
                     "region": g.region}),
        ),
    );
    assert_eq!(moved["repository"], own);
    assert!(!moved.to_string().contains(&secret));

    let src = dir.path().join("site");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("index.html"), b"<h1>own bucket</h1>\n").unwrap();
    let source = s.create_source(
        &admin,
        &t,
        json!({"name": "site", "kind": "directory", "target": src, "schedule": null}),
    );
    let b = s.run_backup(&admin, &t, &source["id"]);
    assert_eq!(b["status"], "done", "{b}");
    assert_eq!(b["repository"], own);

    // the tenant's key opens it; the server's key has no right on that bucket
    let password = s.tenant_key("acme");
    let restic = |key: &str, secret: &str| {
        let mut c = std::process::Command::new("restic");
        common::clean(&mut c);
        c.env("RESTIC_REPOSITORY", &own)
            .env("RESTIC_PASSWORD", &password)
            .env("RESTIC_CACHE_DIR", dir.path().join("restic-cache"))
            .env("AWS_ACCESS_KEY_ID", key)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .env("AWS_DEFAULT_REGION", &g.region)
            .args(["snapshots", "--json"]);
        c.output().unwrap()
    };
    let mine = restic(&key_id, &secret);
    assert_ok(&mine);
    assert!(String::from_utf8_lossy(&mine.stdout).contains(b["snapshot_id"].as_str().unwrap()));
    assert!(
        !restic(&g.key_id, &g.secret).status.success(),
        "the server's key reached it"
    );

    // restore and download from the tenant's bucket
    let r = s.queue_restore(&admin, b["id"].as_str().unwrap(), None);
    let done = s.wait_restore(r["id"].as_str().unwrap(), &admin);
    assert_eq!(done["status"], "done", "{done}");

    // audited without the secret; the tenant shows no credentials
    let audit = s.request("GET", "/api/v1/audit?format=jsonl", Some(&admin), None);
    assert!(audit.text.contains("tenant_storage_set"));
    assert!(!audit.text.contains(&secret));
    let shown = s.get(&format!("/api/v1/tenants/{t}"), &admin);
    assert!(!shown.to_string().contains(&secret));
    assert!(s.log_lines().iter().all(|l| !l.contains(&secret)));
}

#[test]
fn two_nodes_fire_each_scheduled_slot_once() {
    let pg = common::servers::Postgres::shared();
    pg.create_db("serve_schedule");
    let g = Garage::shared();
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "postgres://{}:{}@127.0.0.1:{}/serve_schedule",
        pg.user, pg.password, pg.port
    );
    let key = holdfast_catalog::ServerKey::random().to_base64();
    let config = common::service::commands_config(
        dir.path(),
        &[("tick", "date +%s%N; head -c 50000 /dev/urandom")],
    );
    let mut env = garage_env(g, &g.location("scheduled"));
    for (k, v) in [
        ("HOLDFAST_CONFIG", config.to_str().unwrap()),
        ("HOLDFAST_CATALOG_URL", url.as_str()),
        ("HOLDFAST_SERVER_KEY", key.as_str()),
        ("HOLDFAST_WORKERS", "2"),
        // both schedulers look every second: they meet at every slot
        ("HOLDFAST_SCHEDULER_TICK_SECONDS", "1"),
    ] {
        env.push((k.into(), v.into()));
    }
    let a = start(&dir.path().join("node-a"), &env);
    let b = start(&dir.path().join("node-b"), &env);
    let admin = a.admin.clone().unwrap();
    let t = a.create_tenant(&admin, "acme");
    // every minute: the first slot is at most a minute away
    let src = a.create_source(
        &admin,
        &t,
        json!({"name": "every-minute", "kind": "command", "target": "tick",
               "schedule": "* * * * *", "options": {"filename": "t.bin"}}),
    );
    let sid = src["id"].as_str().unwrap().to_string();
    let runs = |node: &Server| -> Vec<Value> {
        let page = node.get(
            &format!("/api/v1/tenants/{t}/backups?source_id={sid}&limit=100"),
            &admin,
        );
        page["items"].as_array().cloned().unwrap_or_default()
    };
    wait_for("a scheduled run to finish", || {
        runs(&b).iter().any(|r| r["status"] == "done")
    });
    // several more ticks of both nodes on the same slot
    std::thread::sleep(Duration::from_secs(4));
    let row = pg.psql(
        "serve_schedule",
        &format!(
            "SELECT count(*), count(DISTINCT slot), min(attempts), max(attempts) \
             FROM backups WHERE source_id = '{sid}' AND kind = 'scheduled'"
        ),
    );
    let f: Vec<i64> = row.trim().split('|').map(|x| x.parse().unwrap()).collect();
    assert!(f[0] >= 1, "{row}");
    assert_eq!(
        f[0], f[1],
        "one run per slot, whichever node saw it first: {row}"
    );
    assert_eq!((f[2], f[3]), (1, 1), "each run ran once: {row}");
    let queued = pg.psql(
        "serve_schedule",
        &format!(
            "SELECT count(*) FROM audit_log WHERE event = 'backup_created' \
             AND metadata LIKE '%{sid}%'"
        ),
    );
    assert_eq!(queued.trim(), f[0].to_string(), "one audit row per slot");
    // both nodes' APIs show the same runs, each by the system sentinel
    let (ra, rb) = (runs(&a), runs(&b));
    assert_eq!(ra.len() as i64, f[0]);
    assert_eq!(
        ra.iter().map(|r| r["id"].clone()).collect::<Vec<_>>(),
        rb.iter().map(|r| r["id"].clone()).collect::<Vec<_>>()
    );
    for r in &ra {
        assert_eq!(r["kind"], "scheduled", "{r}");
        assert!(r["repository"].as_str().unwrap().starts_with("s3:"), "{r}");
    }
}
