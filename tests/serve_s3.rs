//! `holdfast serve` with `storage = "s3:…"` on a private Garage: each
//! tenant's repository under its own prefix; backup, restore, download and
//! deletion work as on local disk; restic opens the tenant's repository
//! with the exported key; and the object store going away mid-backup is a
//! failed run with its cause, after which the next one succeeds.

mod common;

use std::fs;
use std::time::{Duration, Instant};

use common::s3proxy::S3Proxy;
use common::servers::Garage;
use common::service::Server;
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
    let q = s.queue_backup(&admin, &acme, &source["id"]);
    let b = s.wait_backup(q["id"].as_str().unwrap(), &admin);
    assert_eq!(b["status"], "done", "{b}");
    let repo = b["repository"].as_str().unwrap().to_string();
    assert_eq!(repo, format!("{storage}/{acme}"), "the tenant's own prefix");
    let snapshot_id = b["snapshot_id"].as_str().unwrap().to_string();

    // restic opens it with the exported key, from the bucket
    let out = s.cli(&["tenant", "export-key", "acme"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let password = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let mut restic = std::process::Command::new("restic");
    common::clean(&mut restic);
    restic
        .env("RESTIC_REPOSITORY", &repo)
        .env("RESTIC_PASSWORD", &password)
        .env("RESTIC_CACHE_DIR", dir.path().join("restic-cache"))
        .envs(g.env())
        .args(["check", "--read-data"]);
    let checked = common::run_ok(&mut restic);
    assert!(checked.contains("no errors were found"), "{checked}");

    // the other tenant's prefix has its own repository, without acme's data
    let theirs = s.expect(
        200,
        "GET",
        &format!("/api/v1/tenants/{other}"),
        Some(&admin),
        None,
    );
    assert_eq!(theirs["repository"], format!("{storage}/{other}"));

    // download from the bucket
    let resp = reqwest::blocking::Client::new()
        .get(format!(
            "{}/api/v1/backups/{}/file?format=tar",
            s.base,
            b["id"].as_str().unwrap()
        ))
        .header("Authorization", format!("Bearer {admin}"))
        .send()
        .unwrap();
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
    let r = s.expect(
        202,
        "POST",
        &format!("/api/v1/backups/{}/restore", b["id"].as_str().unwrap()),
        Some(&admin),
        None,
    );
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
        s.expect(
            200,
            "GET",
            &format!("/api/v1/backups/{}", b["id"].as_str().unwrap()),
            Some(&admin),
            None,
        )["status"]
            == "deleted"
    });
    let mut snaps = std::process::Command::new("restic");
    common::clean(&mut snaps);
    snaps
        .env("RESTIC_REPOSITORY", &repo)
        .env("RESTIC_PASSWORD", &password)
        .env("RESTIC_CACHE_DIR", dir.path().join("restic-cache"))
        .envs(g.env())
        .args(["snapshots", "--json"]);
    let listed: Value = serde_json::from_str(&common::run_ok(&mut snaps)).unwrap();
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
    let q = s.queue_backup(&admin, &t, &source["id"]);
    let b = s.wait_backup(q["id"].as_str().unwrap(), &admin);
    assert_eq!(b["status"], "failed", "{b}");
    let error = b["error"].as_str().unwrap();
    eprintln!("the failed run: {error}");
    assert!(error.contains(&proxy.endpoint), "names the store: {error}");
    assert!(!error.contains(&g.secret), "{error}");

    proxy.set_down(false);
    let q = s.queue_backup(&admin, &t, &source["id"]);
    let b = s.wait_backup(q["id"].as_str().unwrap(), &admin);
    assert_eq!(b["status"], "done", "{b}");
    // the server's metrics count the storage's retries
    let m = s.request("GET", "/metrics", Some(&admin), None);
    assert!(
        m.text.contains("holdfast_storage_retries_total"),
        "{}",
        m.text
    );
}
