//! `holdfast serve` over real HTTP: tenants, sources, backups run by the
//! workers into per-tenant repositories that restic checks and restores,
//! paging, retries, tenant-scoped tokens, the audit log and its chain. Each
//! test proves one behaviour, most from the same start ([`Acme`]).

mod common;

use std::fs;
use std::process::Command;

use common::assert_ok;
use common::service::{CatalogClock, Server, restic_with, slow_first_run};
use serde_json::{Value, json};

fn new_token(s: &Server, admin: &str, role: &str, tenant: Option<&str>) -> (String, String) {
    let mut body = json!({"role": role, "label": format!("{role} of {tenant:?}")});
    if let Some(t) = tenant {
        body["tenant"] = json!(t);
    }
    let r = s.expect(201, "POST", "/api/v1/tokens", Some(admin), Some(&body));
    (
        r["token"]["id"].as_str().unwrap().to_string(),
        r["secret"].as_str().unwrap().to_string(),
    )
}

/// A server with two tenants (`acme`, `other`), acme's directory source
/// `site` and one backup of it that finished: where most tests start.
struct Acme {
    dir: tempfile::TempDir,
    data: std::path::PathBuf,
    s: Server,
    admin: String,
    acme_id: String,
    other_id: String,
    src_dir: std::path::PathBuf,
    source: Value,
    source_id: String,
    queued: Value,
    /// The first backup, done.
    b: Value,
}

impl Acme {
    fn start() -> Acme {
        Acme::start_with(&[])
    }

    /// The same on a PostgreSQL catalog: the database `db`, made on the
    /// shared private server.
    fn on_postgres(db: &str) -> Acme {
        let pg = common::servers::Postgres::shared();
        pg.create_db(db);
        let url = format!(
            "postgres://{}:{}@127.0.0.1:{}/{db}",
            pg.user, pg.password, pg.port
        );
        let key = holdfast_catalog::ServerKey::random().to_base64();
        Acme::start_with(&[
            ("HOLDFAST_CATALOG_URL", url.as_str()),
            ("HOLDFAST_SERVER_KEY", key.as_str()),
        ])
    }

    fn start_with(env: &[(&str, &str)]) -> Acme {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let mut env = env.to_vec();
        env.push(("HOLDFAST_RETRY_BASE_SECONDS", "1"));
        let s = Server::start(&data, &env);
        let admin = s.admin.clone().expect("first start prints an admin token");
        let tenant = |name: &str| {
            s.expect(
                201,
                "POST",
                "/api/v1/tenants",
                Some(&admin),
                Some(&json!({ "name": name })),
            )["id"]
                .as_str()
                .unwrap()
                .to_string()
        };
        let acme_id = tenant("acme");
        let other_id = tenant("other");
        let src_dir = dir.path().join("site");
        fs::create_dir_all(src_dir.join("uploads")).unwrap();
        fs::write(src_dir.join("index.html"), b"<h1>acme</h1>\n").unwrap();
        fs::write(src_dir.join("uploads/logo.bin"), vec![7u8; 300_000]).unwrap();
        let source = s.create_source(
            &admin,
            &acme_id,
            json!({"name": "site", "kind": "directory", "target": src_dir}),
        );
        let source_id = source["id"].as_str().unwrap().to_string();
        let queued = s.queue_backup(&admin, &acme_id, &source_id);
        let b = s.wait_backup(queued["id"].as_str().unwrap(), &admin);
        assert_eq!(b["status"], "done", "{b}");
        Acme {
            dir,
            data,
            s,
            admin,
            acme_id,
            other_id,
            src_dir,
            source,
            source_id,
            queued,
            b,
        }
    }

    fn backup_id(&self) -> &str {
        self.b["id"].as_str().unwrap()
    }

    /// Where a restore put the source's own files.
    fn inside(&self, target: &std::path::Path) -> std::path::PathBuf {
        target.join(self.src_dir.strip_prefix("/").unwrap())
    }

    /// A source whose directory does not exist, and its failed backup.
    fn failed_backup(&self) -> String {
        let missing = self.s.create_source(
            &self.admin,
            &self.acme_id,
            json!({"name": "gone", "kind": "directory", "target": self.dir.path().join("nope"), "schedule": null}),
        );
        assert!(missing["schedule"].is_null());
        let q = self
            .s
            .queue_backup(&self.admin, &self.acme_id, &missing["id"]);
        let id = q["id"].as_str().unwrap().to_string();
        assert_eq!(self.s.wait_backup(&id, &self.admin)["status"], "failed");
        id
    }

    /// Retry a failed backup (202) and wait for the attempt's end.
    fn retry(&self, id: &str) -> Value {
        self.s.expect(
            202,
            "POST",
            &format!("/api/v1/backups/{id}/retry"),
            Some(&self.admin),
            None,
        );
        self.s.wait_backup(id, &self.admin)
    }

    /// Restore the first backup (into `body`'s target, or the default);
    /// the restore's id once it is done.
    fn restore(&self, body: Option<Value>) -> (String, Value) {
        let r = self
            .s
            .queue_restore(&self.admin, self.backup_id(), body.as_ref());
        assert_eq!(r["status"], "queued");
        let rid = r["id"].as_str().unwrap().to_string();
        let mut done = Value::Null;
        wait_for("the restore", || {
            done = self.s.restore(&rid, &self.admin);
            done["status"] != "queued" && done["status"] != "running"
        });
        assert_eq!(done["status"], "done", "{done}");
        (rid, done)
    }
}

#[test]
fn a_new_server_keeps_its_key_private_and_answers_health_and_openapi() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let s = Server::start(&data, &[]);
    let admin = s.admin.clone().expect("first start prints an admin token");
    assert!(admin.starts_with("hf_"), "{admin}");
    use std::os::unix::fs::PermissionsExt;
    let key_mode = fs::metadata(data.join("server.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(key_mode & 0o777, 0o600);

    assert_eq!(s.request("GET", "/healthz", None, None).status, 200);
    let openapi = s.request("GET", "/api/v1/openapi.json", None, None);
    assert_eq!(openapi.status, 200);
    assert_eq!(openapi.json()["openapi"], "3.1.0");
    assert!(openapi.json()["paths"]["/api/v1/tenants/{tenant}/backups"]["get"].is_object());
    assert_eq!(s.request("GET", "/readyz", None, None).status, 200);
}

#[test]
fn tenant_names_are_unique_and_checked() {
    let a = Acme::start();
    let (s, admin) = (&a.s, &a.admin);
    s.expect(
        409,
        "POST",
        "/api/v1/tenants",
        Some(admin),
        Some(&json!({"name": "acme"})),
    );
    let bad = s.request(
        "POST",
        "/api/v1/tenants",
        Some(admin),
        Some(&json!({"name": "../x"})),
    );
    assert_eq!(bad.status, 422);
    assert_eq!(bad.content_type, "application/problem+json");
    assert_eq!(bad.json()["field"], "name");
    let listed = s.get("/api/v1/tenants", admin);
    assert_eq!(listed["items"].as_array().unwrap().len(), 2);
}

#[test]
fn a_directory_backup_lands_in_the_tenants_own_repository_which_restic_checks() {
    let a = Acme::start();
    let (s, admin, b) = (&a.s, &a.admin, &a.b);
    assert_eq!(a.source["schedule"], "0 3 * * *", "the default schedule");
    assert_eq!(
        a.source["retention"]["max_age_days"], 30,
        "the default retention"
    );
    let e = s.request(
        "POST",
        &format!("/api/v1/tenants/{}/sources", a.acme_id),
        Some(admin),
        Some(&json!({"name": "x", "kind": "directory", "target": "/x", "retention": {"keep_lots": 1}})),
    );
    assert_eq!(
        (e.status, e.json()["field"].as_str()),
        (422, Some("retention.keep_lots"))
    );
    assert_eq!(a.queued["status"], "queued");
    assert_eq!(a.queued["kind"], "on_demand");
    assert_eq!(a.queued["source_name"], "site");
    assert_eq!(b["attempts"], 1);
    assert_eq!(b["size"], 300_000 + 14);
    assert!(b["bytes_added"].as_i64().unwrap() > 0);
    let snapshot_id = b["snapshot_id"].as_str().unwrap().to_string();
    assert_eq!(snapshot_id.len(), 64);

    // the tenant's repository opens with restic, with the exported password
    let password = s.tenant_key("acme");
    let repo = b["repository"].as_str().unwrap().to_string();
    assert!(
        repo.contains(&a.acme_id),
        "one repository per tenant: {repo}"
    );
    common::run_ok(restic_with(&repo, &password).args(["check", "--read-data"]));
    let restored = a.dir.path().join("restored");
    common::run_ok(restic_with(&repo, &password).args([
        "restore",
        &snapshot_id,
        "--target",
        restored.to_str().unwrap(),
    ]));
    let inside = a.inside(&restored);
    assert_eq!(
        fs::read(inside.join("uploads/logo.bin")).unwrap(),
        vec![7u8; 300_000]
    );
    assert_eq!(
        fs::read(inside.join("index.html")).unwrap(),
        b"<h1>acme</h1>\n"
    );
    // the other tenant's repository is a different one, with another password
    let other_password = s.tenant_key("other");
    assert_ne!(other_password, password);
}

#[test]
fn a_backup_downloads_as_a_tar_that_gnu_tar_extracts() {
    let a = Acme::start();
    let (s, admin) = (&a.s, &a.admin);
    let client = reqwest::blocking::Client::new();
    let resp = client
        .get(format!(
            "{}/api/v1/backups/{}/file?format=tar",
            s.base,
            a.backup_id()
        ))
        .header("Authorization", format!("Bearer {admin}"))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let disposition = resp.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        disposition.starts_with("attachment; filename=\"acme-site-")
            && disposition.ends_with(".tar\""),
        "{disposition}"
    );
    let tar_path = a.dir.path().join("site.tar");
    fs::write(&tar_path, resp.bytes().unwrap()).unwrap();
    let untarred = a.dir.path().join("untarred");
    fs::create_dir_all(&untarred).unwrap();
    common::run_ok(
        Command::new("tar")
            .arg("-xf")
            .arg(&tar_path)
            .arg("-C")
            .arg(&untarred),
    );
    assert_eq!(
        fs::read(a.inside(&untarred).join("uploads/logo.bin")).unwrap(),
        vec![7u8; 300_000]
    );
    let r = s.request(
        "GET",
        &format!("/api/v1/backups/{}/file?format=docx", a.backup_id()),
        Some(admin),
        None,
    );
    assert_eq!(
        (r.status, r.json()["field"].as_str()),
        (422, Some("format"))
    );
}

#[test]
fn a_backup_restores_over_the_api_into_the_default_or_a_chosen_target() {
    let a = Acme::start();
    // the default target: a new directory under the data directory, verified
    let (_, done) = a.restore(None);
    assert_eq!(done["verification"]["files"], 2);
    let target = std::path::PathBuf::from(done["target"].as_str().unwrap());
    assert!(target.starts_with(&a.data), "{target:?}");
    assert_eq!(
        fs::read(a.inside(&target).join("uploads/logo.bin")).unwrap(),
        vec![7u8; 300_000]
    );
    // a target of the caller's choosing
    let chosen = a.dir.path().join("chosen");
    a.restore(Some(json!({ "target": chosen })));
    assert_eq!(
        fs::read(a.inside(&chosen).join("index.html")).unwrap(),
        b"<h1>acme</h1>\n"
    );
    let r = a.s.request(
        "POST",
        &format!("/api/v1/backups/{}/restore", a.backup_id()),
        Some(&a.admin),
        Some(&json!({"target": "relative/dir"})),
    );
    assert_eq!(
        (r.status, r.json()["field"].as_str()),
        (422, Some("target"))
    );
}

#[test]
fn a_drill_restores_the_newest_backup_into_scratch_verifies_it_and_leaves_nothing() {
    a_drill_restores_the_newest_backup_into_scratch_verifies_it_and_leaves_nothing_on(Acme::start());
}

#[test]
fn a_drill_restores_the_newest_backup_into_scratch_verifies_it_and_leaves_nothing_on_a_postgres_catalog()
 {
    a_drill_restores_the_newest_backup_into_scratch_verifies_it_and_leaves_nothing_on(
        Acme::on_postgres("serve_pg_drill"),
    );
}

fn a_drill_restores_the_newest_backup_into_scratch_verifies_it_and_leaves_nothing_on(a: Acme) {
    let (s, admin) = (&a.s, &a.admin);
    let (_, viewer) = new_token(s, admin, "viewer", Some("acme"));
    let (_, other_op) = new_token(s, admin, "operator", Some("other"));
    let path = format!(
        "/api/v1/tenants/{}/sources/{}/drills",
        a.acme_id, a.source_id
    );
    // a viewer may not start one; another tenant's operator does not see the source
    s.expect(403, "POST", &path, Some(&viewer), None);
    s.expect(404, "POST", &path, Some(&other_op), None);
    let queued = s.expect(202, "POST", &path, Some(admin), None);
    assert_eq!(queued["drill"], true);
    assert_eq!(queued["backup_id"], a.b["id"]);
    let done = s.wait_restore(queued["id"].as_str().unwrap(), admin);
    assert_eq!(done["status"], "done", "{done}");
    let v = &done["verification"];
    assert_eq!(
        (v["kind"].as_str(), v["items"].as_u64()),
        (Some("files"), Some(2)),
        "{v}"
    );
    assert_eq!(v["bytes"], 300_000 + 14);
    assert!(v["duration_seconds"].as_f64().unwrap() > 0.0);
    // the scratch area is empty again, and no restore landed anywhere else
    let scratch = a.data.join("drills");
    assert_eq!(fs::read_dir(&scratch).unwrap().count(), 0);
    // listed for the tenant's viewers, not for another tenant
    let listed = s.get(&format!("/api/v1/tenants/{}/drills", a.acme_id), &viewer);
    assert_eq!(listed["items"][0]["id"], done["id"]);
    s.expect(
        404,
        "GET",
        &format!("/api/v1/tenants/{}/drills", a.acme_id),
        Some(&other_op),
        None,
    );
    // audited as a drill
    let events: Vec<String> = s.get(&format!("/api/v1/audit?tenant={}", a.acme_id), admin)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_string())
        .collect();
    assert!(events.contains(&"drill_started".to_string()), "{events:?}");
    assert!(
        events.contains(&"drill_succeeded".to_string()),
        "{events:?}"
    );

    // damage behind holdfast's back: the next drill fails and says why
    common::damage_biggest_pack(std::path::Path::new(a.b["repository"].as_str().unwrap()));
    let queued = s.expect(202, "POST", &path, Some(admin), None);
    let failed = s.wait_restore(queued["id"].as_str().unwrap(), admin);
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("MAC check failed"),
        "{failed}"
    );
    assert_eq!(fs::read_dir(&scratch).unwrap().count(), 0);

    // a source with no successful backup has nothing to drill
    let empty = s.create_source(
        admin,
        &a.acme_id,
        json!({"name": "empty", "kind": "directory", "target": a.src_dir}),
    );
    let r = s.request(
        "POST",
        &format!(
            "/api/v1/tenants/{}/sources/{}/drills",
            a.acme_id,
            empty["id"].as_str().unwrap()
        ),
        Some(admin),
        None,
    );
    assert_eq!(r.status, 409);
}

#[test]
fn a_verification_reads_its_part_of_the_packs_finds_damage_and_marks_the_backups() {
    a_verification_reads_its_part_of_the_packs_finds_damage_and_marks_the_backups_on(Acme::start());
}

#[test]
fn a_verification_reads_its_part_of_the_packs_finds_damage_and_marks_the_backups_on_a_postgres_catalog()
 {
    a_verification_reads_its_part_of_the_packs_finds_damage_and_marks_the_backups_on(
        Acme::on_postgres("serve_pg_verification"),
    );
}

fn a_verification_reads_its_part_of_the_packs_finds_damage_and_marks_the_backups_on(a: Acme) {
    let (s, admin) = (&a.s, &a.admin);
    let (_, viewer) = new_token(s, admin, "viewer", Some("acme"));
    let (_, other_op) = new_token(s, admin, "operator", Some("other"));
    let path = format!("/api/v1/tenants/{}/verifications", a.acme_id);
    let verify = |read_data: &str| -> Value {
        let q = s.expect(
            202,
            "POST",
            &path,
            Some(admin),
            Some(&json!({ "read_data": read_data })),
        );
        assert_eq!(q["status"], "queued");
        let id = q["id"].as_str().unwrap();
        let mut done = Value::Null;
        wait_for("the verification", || {
            done = s.get(&format!("{path}/{id}"), admin);
            done["status"] != "queued" && done["status"] != "running"
        });
        done
    };
    s.expect(403, "POST", &path, Some(&viewer), None);
    s.expect(404, "POST", &path, Some(&other_op), None);
    for bad in ["0/5", "6/5", "half", "0%"] {
        let r = s.request(
            "POST",
            &path,
            Some(admin),
            Some(&json!({ "read_data": bad })),
        );
        assert_eq!(
            (r.status, r.json()["field"].clone()),
            (422, json!("read_data")),
            "{bad}"
        );
    }
    // intact: every pack read and re-hashed
    let clean = verify("all");
    assert_eq!(clean["status"], "done", "{clean}");
    let packs = clean["summary"]["packs"].as_u64().unwrap();
    assert!(packs > 0);
    assert_eq!(clean["summary"]["packs_read"], packs);
    assert_eq!(clean["summary"]["errors"], 0);

    // a second backup with a file that does not compress (so its pack is
    // the biggest), then a byte flipped inside that pack, behind
    // holdfast's back
    let mut noise = vec![0u8; 200_000];
    holdfast_format::crypto::fill_random(&mut noise);
    fs::write(a.src_dir.join("uploads/noise.bin"), noise).unwrap();
    let second = s.run_backup(admin, &a.acme_id, &a.source_id);
    assert_eq!(second["status"], "done", "{second}");
    let pack =
        common::damage_biggest_pack(std::path::Path::new(a.b["repository"].as_str().unwrap()));
    let name = pack.file_name().unwrap().to_str().unwrap().to_string();
    let part = u8::from_str_radix(&name[..2], 16).unwrap() as u32 % 30 + 1;
    // headers only, or a part of the rotation without the pack: not seen
    // (as a bare `check` does not see it)
    let headers = verify("none");
    assert_eq!(
        (
            headers["status"].as_str(),
            headers["summary"]["packs_read"].as_u64()
        ),
        (Some("done"), Some(0)),
        "{headers}"
    );
    let elsewhere = verify(&format!("{}/30", part % 30 + 1));
    assert_eq!(elsewhere["status"], "done", "{elsewhere}");
    // the day whose part holds the pack: found, named, the backup marked
    let found = verify(&format!("{part}/30"));
    assert_eq!(found["status"], "failed", "{found}");
    assert!(found["summary"]["errors"].as_u64().unwrap() >= 1);
    let findings = found["findings"].as_array().unwrap();
    let in_pack = findings
        .iter()
        .find(|f| f["message"].as_str().unwrap().contains("MAC check failed"))
        .unwrap_or_else(|| panic!("no MAC failure among {findings:?}"));
    assert!(
        in_pack["file"].as_str().unwrap().ends_with(&name),
        "{in_pack}"
    );
    // only the backup whose snapshot holds the file
    assert_eq!(found["damaged_backups"], json!([second["id"]]));
    let b = s.get(
        &format!("/api/v1/backups/{}", second["id"].as_str().unwrap()),
        &viewer,
    );
    assert!(b["damaged_at"].is_string(), "{b}");
    assert!(
        b["damage"]
            .as_str()
            .unwrap()
            .contains(found["id"].as_str().unwrap())
    );
    let first = s.get(&format!("/api/v1/backups/{}", a.backup_id()), &viewer);
    assert!(first["damaged_at"].is_null(), "{first}");
    // listed for the tenant, newest first; not for another tenant
    let listed = s.get(&path, &viewer);
    assert_eq!(listed["items"][0]["id"], found["id"]);
    assert_eq!(listed["items"].as_array().unwrap().len(), 4);
    s.expect(404, "GET", &path, Some(&other_op), None);
    s.expect(
        404,
        "GET",
        &format!(
            "/api/v1/tenants/{}/verifications/{}",
            a.other_id,
            found["id"].as_str().unwrap()
        ),
        Some(admin),
        None,
    );
    // audited with what it marked, and measured
    let events = s.get(
        &format!(
            "/api/v1/audit?tenant={}&event=verification_failed",
            a.acme_id
        ),
        admin,
    );
    assert_eq!(events["items"][0]["subject"], found["id"]);
    assert_eq!(
        events["items"][0]["metadata"]["damaged_backups"],
        json!([second["id"]])
    );
    let metrics = s.request("GET", "/metrics", Some(admin), None).text;
    assert!(
        metrics.contains("holdfast_backups_damaged{tenant=\"acme\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("holdfast_verification_last_success_timestamp_seconds{tenant=\"acme\"}")
    );
    assert!(
        !metrics.contains("holdfast_verification_last_success_timestamp_seconds{tenant=\"other\"}")
    );
}

#[test]
fn an_evidence_report_matches_the_catalog_is_signed_and_a_tampered_copy_is_refused() {
    an_evidence_report_matches_the_catalog_is_signed_and_a_tampered_copy_is_refused_on(
        Acme::start(),
    );
}

#[test]
fn an_evidence_report_matches_the_catalog_is_signed_and_a_tampered_copy_is_refused_on_a_postgres_catalog()
 {
    an_evidence_report_matches_the_catalog_is_signed_and_a_tampered_copy_is_refused_on(
        Acme::on_postgres("serve_pg_report"),
    );
}

fn an_evidence_report_matches_the_catalog_is_signed_and_a_tampered_copy_is_refused_on(a: Acme) {
    let (s, admin) = (&a.s, &a.admin);
    let gone = a.failed_backup();
    let drill = s.expect(
        202,
        "POST",
        &format!(
            "/api/v1/tenants/{}/sources/{}/drills",
            a.acme_id, a.source_id
        ),
        Some(admin),
        None,
    );
    let drill = s.wait_restore(drill["id"].as_str().unwrap(), admin);
    assert_eq!(drill["status"], "done");
    let v = s.expect(
        202,
        "POST",
        &format!("/api/v1/tenants/{}/verifications", a.acme_id),
        Some(admin),
        Some(&json!({"read_data": "all"})),
    );
    let vpath = format!(
        "/api/v1/tenants/{}/verifications/{}",
        a.acme_id,
        v["id"].as_str().unwrap()
    );
    wait_for("the verification", || {
        s.get(&vpath, admin)["status"] == "done"
    });
    let verification = s.get(&vpath, admin);
    let (_, viewer) = new_token(s, admin, "viewer", Some("acme"));
    let (_, other) = new_token(s, admin, "viewer", Some("other"));
    let path = format!("/api/v1/tenants/{}/report", a.acme_id);
    s.expect(404, "GET", &path, Some(&other), None);
    let bad = s.request(
        "GET",
        &format!("{path}?from=yesterday"),
        Some(&viewer),
        None,
    );
    assert_eq!(
        (bad.status, bad.json()["field"].as_str()),
        (422, Some("from"))
    );
    let r = s.get(&path, &viewer);
    // the numbers, against the catalog's rows
    assert_eq!(r["report"], "holdfast evidence report");
    assert_eq!(r["tenant"]["name"], "acme");
    let source = |name: &str| {
        r["sources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {r}"))
            .clone()
    };
    let site = source("site");
    assert_eq!(
        (
            site["backups_succeeded"].as_u64(),
            site["backups_failed"].as_u64(),
            site["success_rate"].as_f64()
        ),
        (Some(1), Some(0), Some(1.0))
    );
    assert_eq!(site["last_success_at"], a.b["finished_at"]);
    assert_eq!(site["drills_succeeded"], 1);
    assert_eq!(
        site["last_drill_seconds"],
        drill["verification"]["duration_seconds"]
    );
    assert_eq!(
        site["slowest_drill_seconds"],
        drill["verification"]["duration_seconds"]
    );
    // the achieved RPO of a source made seconds ago: at most that long
    assert!(
        site["longest_gap_seconds"].as_i64().unwrap() < 600,
        "{site}"
    );
    let failed = source("gone");
    assert_eq!(
        (
            failed["backups_succeeded"].as_u64(),
            failed["backups_failed"].as_u64(),
            failed["success_rate"].as_f64()
        ),
        (Some(0), Some(1), Some(0.0))
    );
    assert!(s.backup(&gone, admin)["status"] == "failed");
    assert_eq!(r["verification"]["succeeded"], 1);
    assert_eq!(
        r["verification"]["packs_read"],
        verification["summary"]["packs_read"]
    );
    assert_eq!(r["verification"]["damaged_backups"], 0);
    let newest = s.get("/api/v1/audit?limit=1", admin)["items"][0].clone();
    assert_eq!(r["audit_head"]["seq"], newest["seq"]);
    assert_eq!(r["audit_head"]["hash"], newest["hash"]);
    assert_eq!(r["signature"]["algorithm"], "ed25519");

    // verified by the server's key, and by the public key alone
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.json");
    fs::write(&file, serde_json::to_string_pretty(&r).unwrap()).unwrap();
    let verify = |f: &std::path::Path, extra: &[&str]| {
        let mut args = vec!["report", "verify", f.to_str().unwrap()];
        args.extend(extra);
        s.cli(&args)
    };
    let ok = verify(&file, &[]);
    assert!(ok.status.success(), "{}", common::stderr(&ok));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("report verified: tenant acme"));
    let pk = r["signature"]["public_key"].as_str().unwrap();
    assert!(verify(&file, &["--public-key", pk]).status.success());
    // a rate improved after the fact: refused
    let mut edited = r.clone();
    edited["sources"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|x| x["name"] == "gone")
        .unwrap()["success_rate"] = json!(1.0);
    let tampered = dir.path().join("tampered.json");
    fs::write(&tampered, edited.to_string()).unwrap();
    let no = verify(&tampered, &[]);
    assert!(!no.status.success());
    assert!(
        common::stderr(&no).contains("changed after it was signed"),
        "{}",
        common::stderr(&no)
    );
    // the printable page verifies too, and an edit of its words is found
    let page = s.request("GET", &format!("{path}?format=html"), Some(&viewer), None);
    assert!(
        page.content_type.starts_with("text/html"),
        "{}",
        page.content_type
    );
    assert!(page.text.contains("Backup evidence: acme"));
    let html = dir.path().join("report.html");
    fs::write(&html, &page.text).unwrap();
    assert!(verify(&html, &[]).status.success());
    let reworded = page.text.replacen("0 / 1", "1 / 0", 1);
    assert_ne!(reworded, page.text);
    fs::write(&html, reworded).unwrap();
    let no = verify(&html, &[]);
    assert!(!no.status.success());
    assert!(common::stderr(&no).contains("page around the signed report was changed"));
    // from the console: the same report, signed by the same key
    let out = dir.path().join("console.json");
    // (over the API's period: the gap since the last success runs to its end)
    let made = s.cli(&[
        "report",
        "acme",
        "--from",
        r["from"].as_str().unwrap(),
        "--to",
        r["to"].as_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(made.status.success(), "{}", common::stderr(&made));
    let console: Value = serde_json::from_str(&fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(console["sources"], r["sources"]);
    assert!(verify(&out, &["--public-key", pk]).status.success());
}

/// A server whose scheduler looks every second, a tenant `acme` and a
/// directory `site` holding one file: where the scheduling tests start.
fn ticking(
    dir: &std::path::Path,
    content: &[u8],
) -> (
    std::path::PathBuf,
    Server,
    String,
    String,
    std::path::PathBuf,
) {
    let data = dir.join("data");
    let s = Server::start(&data, &[("HOLDFAST_SCHEDULER_TICK_SECONDS", "1")]);
    let admin = s.admin.clone().unwrap();
    let tid = s.create_tenant(&admin, "acme");
    let site = dir.join("site");
    fs::create_dir_all(&site).unwrap();
    fs::write(site.join("a.txt"), content).unwrap();
    (data, s, admin, tid, site)
}

#[test]
fn drills_run_on_each_sources_drill_schedule_once_per_slot_unless_off() {
    let dir = tempfile::tempdir().unwrap();
    let (data, s, admin, tid, site) = ticking(dir.path(), b"drill me");
    let bad = s.request(
        "POST",
        &format!("/api/v1/tenants/{tid}/sources"),
        Some(&admin),
        Some(&json!({"name": "bad", "kind": "directory", "target": site,
                     "options": {"drill": "0 25 * * *"}})),
    );
    assert_eq!(
        (bad.status, bad.json()["field"].as_str()),
        (422, Some("options.drill"))
    );
    let daily = s.create_source(
        &admin,
        &tid,
        json!({"name": "daily", "kind": "directory", "target": site, "options": {"drill": "30 4 * * *"}}),
    );
    let off = s.create_source(
        &admin,
        &tid,
        json!({"name": "off", "kind": "directory", "target": site, "options": {"drill": "off"}}),
    );
    let drilled = s.run_backup(&admin, &tid, &daily["id"]);
    s.run_backup(&admin, &tid, &off["id"]);
    let drills = || {
        s.get(&format!("/api/v1/tenants/{tid}/drills"), &admin)["items"]
            .as_array()
            .unwrap()
            .clone()
    };
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert!(
        drills().is_empty(),
        "no drill slot has come since the sources were made"
    );
    // both sources "existed" for years: the daily one's latest slot is due, once
    CatalogClock::of(&data).sources_made("tenant_id", &tid, "2000-01-01T00:00:00.000Z");
    wait_for("the scheduled drill", || {
        drills().first().is_some_and(|d| d["status"] == "done")
    });
    std::thread::sleep(std::time::Duration::from_millis(3000));
    let all = drills();
    assert_eq!(
        all.len(),
        1,
        "one slot, one drill; none for the source with drills off: {all:?}"
    );
    assert_eq!(all[0]["backup_id"], drilled["id"]);
    assert_eq!(all[0]["requested_by_label"], "system");
    assert_eq!(all[0]["verification"]["items"], 1);
}

#[test]
fn verification_runs_on_its_schedule_once_per_slot_reading_the_days_part() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let s = Server::start(&data, &[("HOLDFAST_SCHEDULER_TICK_SECONDS", "1")]);
    let admin = s.admin.clone().unwrap();
    let tenants = [
        s.create_tenant(&admin, "acme"),
        s.create_tenant(&admin, "other"),
    ];
    let listed = |t: &str| {
        s.get(&format!("/api/v1/tenants/{t}/verifications"), &admin)["items"]
            .as_array()
            .unwrap()
            .clone()
    };
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert!(
        listed(&tenants[0]).is_empty(),
        "a first start waits for the next slot"
    );
    // the last slot claimed long ago: the latest one (04:30 UTC) is due, once
    CatalogClock::of(&data).slot_taken("verification", "2000-01-01T04:30:00.000Z");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut slot = now - now % 86_400 + 4 * 3600 + 1800;
    if slot > now {
        slot -= 86_400;
    }
    let part = format!("{}/30", (slot / 86_400) % 30 + 1);
    for t in &tenants {
        wait_for("the scheduled verification", || {
            listed(t).first().is_some_and(|v| v["status"] == "done")
        });
    }
    std::thread::sleep(std::time::Duration::from_millis(3000));
    for t in &tenants {
        let all = listed(t);
        assert_eq!(all.len(), 1, "one slot, one verification: {all:?}");
        assert_eq!(all[0]["read_data"], part.as_str());
        assert_eq!(all[0]["requested_by_label"], "system");
    }
}

#[test]
fn sources_without_a_success_since_a_missed_slot_are_overdue_and_told_once_per_slot() {
    let dir = tempfile::tempdir().unwrap();
    let (data, s, admin, tid, site) = ticking(dir.path(), b"keep me");
    let healthy = s.create_source(
        &admin,
        &tid,
        json!({"name": "healthy", "kind": "directory", "target": site,
               "options": {"drill": "0 4 * * *"}}),
    );
    let gone = s.create_source(
        &admin,
        &tid,
        json!({"name": "gone", "kind": "directory", "target": dir.path().join("nope"),
               "schedule": "0 3 * * *", "options": {"drill": "off"}}),
    );
    let (hid, gid) = (
        healthy["id"].as_str().unwrap().to_string(),
        gone["id"].as_str().unwrap().to_string(),
    );
    let backup = s.run_backup(&admin, &tid, &hid);
    assert_eq!(backup["status"], "done");
    let health =
        |id: &str| s.get(&format!("/api/v1/tenants/{tid}/sources/{id}"), &admin)["health"].clone();
    let overdue_events = || {
        s.get(
            &format!("/api/v1/audit?tenant={tid}&event=source_overdue"),
            &admin,
        )["items"]
            .as_array()
            .unwrap()
            .clone()
    };
    // new sources owe nothing yet
    let h = health(&hid);
    assert_eq!(
        (h["backup_overdue"].as_bool(), h["drill_overdue"].as_bool()),
        (Some(false), Some(false)),
        "{h}"
    );
    assert_eq!(h["last_backup"]["id"], backup["id"]);
    assert_eq!(h["last_backup"]["status"], "done");
    assert!(h["last_drill"].is_null());
    std::thread::sleep(std::time::Duration::from_millis(2000));
    assert!(overdue_events().is_empty());
    // the clock, as the catalog sees it: both sources three days old, and
    // the healthy one's drills held back (its drill slots taken far ahead)
    let clock = CatalogClock::of(&data);
    clock.slot_taken(&format!("drill:{hid}"), "2999-01-01T00:00:00.000Z");
    clock.sources_made("tenant_id", &tid, "-3 days");
    wait_for("two overdue events", || overdue_events().len() >= 2);
    std::thread::sleep(std::time::Duration::from_millis(3000));
    let events = overdue_events();
    assert_eq!(events.len(), 2, "once per missed slot: {events:?}");
    let mut told: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["subject"].as_str().unwrap().to_string(),
                e["metadata"]["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    told.sort();
    let mut want = vec![
        (gid.clone(), "backup".to_string()),
        (hid.clone(), "drill".to_string()),
    ];
    want.sort();
    assert_eq!(told, want);
    assert!(
        events.iter().all(|e| e["actor"]["label"] == "system"),
        "{events:?}"
    );
    let g = health(&gid);
    assert_eq!(g["backup_overdue"], true, "{g}");
    assert!(
        g["backup_missed_slot"]
            .as_str()
            .unwrap()
            .ends_with("T03:00:00.000Z"),
        "{g}"
    );
    assert_eq!(g["drill_overdue"], false, "nothing to drill: {g}");
    let h = health(&hid);
    assert_eq!(
        (h["backup_overdue"].as_bool(), h["drill_overdue"].as_bool()),
        (Some(false), Some(true)),
        "{h}"
    );
    assert!(
        h["drill_missed_slot"]
            .as_str()
            .unwrap()
            .ends_with("T04:00:00.000Z"),
        "{h}"
    );
    // listed with the same health
    let listed = s.get(&format!("/api/v1/tenants/{tid}/sources"), &admin);
    let from_list = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == hid.as_str())
        .unwrap()["health"]
        .clone();
    assert_eq!(from_list, h);
    let metric = |id: &str, kind: &str| {
        let m = s.request("GET", "/metrics", Some(&admin), None).text;
        let want = format!("source_id=\"{id}\",source=");
        m.lines()
            .find(|l| {
                l.starts_with("holdfast_source_overdue{")
                    && l.contains(&want)
                    && l.contains(&format!("kind=\"{kind}\""))
            })
            .map(|l| l.rsplit(' ').next().unwrap().to_string())
            .unwrap_or_else(|| panic!("no overdue metric for {id} {kind}: {m}"))
    };
    assert_eq!(
        (
            metric(&gid, "backup"),
            metric(&hid, "backup"),
            metric(&hid, "drill")
        ),
        ("1".into(), "0".into(), "1".into())
    );
    // a drill that passes ends the drill's overdue
    let d = s.expect(
        202,
        "POST",
        &format!("/api/v1/tenants/{tid}/sources/{hid}/drills"),
        Some(&admin),
        None,
    );
    assert_eq!(
        s.wait_restore(d["id"].as_str().unwrap(), &admin)["status"],
        "done"
    );
    let h = health(&hid);
    assert_eq!(h["drill_overdue"], false, "{h}");
    assert_eq!(h["last_drill"]["id"], d["id"]);
    assert!(
        h["last_drill"]["duration_seconds"].as_f64().unwrap() > 0.0,
        "{h}"
    );
    assert_eq!(metric(&hid, "drill"), "0");
}

#[test]
fn backups_page_newest_first_with_a_cursor_that_new_rows_do_not_move() {
    let a = Acme::start();
    let (s, admin, acme_id, source_id) = (&a.s, &a.admin, &a.acme_id, &a.source_id);
    let mut ids = vec![a.backup_id().to_string()];
    for _ in 0..4 {
        let q = s.queue_backup(admin, acme_id, source_id);
        ids.push(q["id"].as_str().unwrap().to_string());
        assert_eq!(
            s.wait_backup(q["id"].as_str().unwrap(), admin)["status"],
            "done"
        );
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/tenants/{acme_id}/backups?limit=2&cursor={c}"),
            None => format!("/api/v1/tenants/{acme_id}/backups?limit=2"),
        };
        let page = s.get(&path, admin);
        for item in page["items"].as_array().unwrap() {
            seen.push(item["id"].as_str().unwrap().to_string());
        }
        if cursor.is_none() {
            // a row inserted while paging does not move the pages after the first
            let source_b = s.queue_backup(admin, acme_id, source_id);
            s.wait_backup(source_b["id"].as_str().unwrap(), admin);
        }
        if page["has_more"] == false {
            assert!(page["next_cursor"].is_null());
            break;
        }
        cursor = Some(page["next_cursor"].as_str().unwrap().to_string());
    }
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(seen, newest_first);
    let done = s.get(
        &format!("/api/v1/tenants/{acme_id}/backups?status=done&limit=200"),
        admin,
    );
    assert_eq!(done["items"].as_array().unwrap().len(), 6);
    s.expect(
        422,
        "GET",
        &format!("/api/v1/tenants/{acme_id}/backups?cursor=@@@"),
        Some(admin),
        None,
    );
}

#[test]
fn a_source_that_cannot_work_fails_permanently_and_is_retried_only_on_request() {
    let a = Acme::start();
    let (s, admin) = (&a.s, &a.admin);
    let failed_id = a.failed_backup();
    let f = s.wait_backup(&failed_id, admin);
    assert_eq!(f["error_kind"], "permanent");
    assert_eq!(f["attempts"], 1);
    let err = f["error"].as_str().unwrap();
    assert!(
        err.contains("no such file") && err.contains("permanent"),
        "{err}"
    );
    // retry: 202 for a failed backup, then it fails again; 409 for a done one
    let f = a.retry(&failed_id);
    assert_eq!(
        (f["status"].as_str(), f["attempts"].as_i64()),
        (Some("failed"), Some(2))
    );
    let r = s.request(
        "POST",
        &format!("/api/v1/backups/{}/retry", a.backup_id()),
        Some(admin),
        None,
    );
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (409, Some("conflict"))
    );
}

#[test]
fn tokens_reach_only_their_tenant_and_role() {
    let a = Acme::start();
    let (s, admin, acme_id, source_id) = (&a.s, &a.admin, &a.acme_id, &a.source_id);
    let failed_id = a.failed_backup();
    let (rid, _) = a.restore(None);
    let (_, viewer) = new_token(s, admin, "viewer", Some("acme"));
    let (_, operator) = new_token(s, admin, "operator", Some("acme"));
    let (other_op_id, other_op) = new_token(s, admin, "operator", Some("other"));
    let acme_backups = format!("/api/v1/tenants/{acme_id}/backups");
    let one = format!("/api/v1/backups/{}", a.backup_id());
    s.get(&acme_backups, &viewer);
    s.get(&one, &viewer);
    s.expect(403, "GET", &format!("{one}/file"), Some(&viewer), None);
    s.expect(403, "POST", &format!("{one}/restore"), Some(&viewer), None);
    s.restore(&rid, &viewer);
    let r = s.request(
        "POST",
        &acme_backups,
        Some(&viewer),
        Some(&json!({ "source_id": source_id })),
    );
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (403, Some("forbidden"))
    );
    let q = s.expect(
        202,
        "POST",
        &acme_backups,
        Some(&operator),
        Some(&json!({ "source_id": source_id })),
    );
    let by_operator = s.wait_backup(q["id"].as_str().unwrap(), &operator);
    assert_eq!(
        by_operator["requested_by_label"],
        "operator of Some(\"acme\")"
    );
    // another tenant's resources are not found, as if they did not exist
    let not_there = s.request(
        "GET",
        "/api/v1/backups/0190aaaa-0000-7000-8000-000000000000",
        Some(&other_op),
        None,
    );
    for (method, path, body) in [
        ("GET", one.clone(), None),
        ("GET", acme_backups.clone(), None),
        (
            "POST",
            acme_backups.clone(),
            Some(json!({ "source_id": source_id })),
        ),
        (
            "GET",
            format!("/api/v1/tenants/{acme_id}/sources/{source_id}"),
            None,
        ),
        (
            "DELETE",
            format!("/api/v1/tenants/{acme_id}/sources/{source_id}"),
            None,
        ),
        ("POST", format!("/api/v1/backups/{failed_id}/retry"), None),
        ("GET", format!("{one}/file"), None),
        ("POST", format!("{one}/restore"), None),
        ("GET", format!("/api/v1/restores/{rid}"), None),
        ("DELETE", one.clone(), None),
        ("GET", format!("/api/v1/tenants/{acme_id}"), None),
    ] {
        let r = s.request(method, &path, Some(&other_op), body.as_ref());
        assert_eq!(r.status, 404, "{method} {path}: {}", r.text);
        assert_eq!(r.json()["code"], not_there.json()["code"]);
    }
    // the other operator's own source id cannot run against acme either
    let other_src = s.create_source(
        admin,
        &a.other_id,
        json!({"name": "o", "kind": "directory", "target": "/nonexistent"}),
    );
    s.expect(
        404,
        "POST",
        &acme_backups,
        Some(&operator),
        Some(&json!({"source_id": other_src["id"]})),
    );
    // admin-only endpoints
    s.expect(403, "GET", "/api/v1/tokens", Some(&operator), None);
    s.expect(
        403,
        "POST",
        "/api/v1/tenants",
        Some(&operator),
        Some(&json!({"name": "x"})),
    );
    let tenants = s.get("/api/v1/tenants", &viewer);
    assert_eq!(
        tenants["items"].as_array().unwrap().len(),
        1,
        "a tenant token lists its own tenant"
    );
    // no token, a bad token, a revoked token
    let r = s.request("GET", &acme_backups, None, None);
    assert_eq!(
        (r.status, r.content_type.as_str()),
        (401, "application/problem+json")
    );
    s.expect(401, "GET", &acme_backups, Some("hf_not-a-token"), None);
    s.delete(&format!("/api/v1/tokens/{other_op_id}"), admin);
    s.expect(401, "GET", "/api/v1/tenants", Some(&other_op), None);
}

#[test]
fn bodies_too_large_or_with_a_wrong_field_are_refused_with_a_problem() {
    let a = Acme::start();
    let (s, admin) = (&a.s, &a.admin);
    let big = json!({"name": "x".repeat(100_000)});
    let r = s.request("POST", "/api/v1/tenants", Some(admin), Some(&big));
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (413, Some("body_too_large"))
    );
    let r = s.request(
        "POST",
        &format!("/api/v1/tenants/{}/backups", a.acme_id),
        Some(admin),
        Some(&json!({"source": 1})),
    );
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["field"], "source");
}

#[test]
fn metrics_show_the_catalogs_state_and_this_nodes_counters_to_admins() {
    let a = Acme::start();
    let (s, admin) = (&a.s, &a.admin);
    a.failed_backup();
    let (_, viewer) = new_token(s, admin, "viewer", Some("acme"));
    let m = s.request("GET", "/metrics", Some(admin), None);
    assert_eq!(m.status, 200);
    assert!(
        m.content_type.starts_with("text/plain"),
        "{}",
        m.content_type
    );
    for line in [
        "holdfast_backups{status=\"done\"} 1",
        "holdfast_backups{status=\"failed\"} 1",
        "holdfast_queue_depth 0",
        "holdfast_backup_duration_seconds_count{outcome=\"done\"} 1",
    ] {
        assert!(m.text.contains(line), "{line} not in {}", m.text);
    }
    assert!(
        m.text.contains(&format!(
            "holdfast_source_last_success_timestamp_seconds{{tenant=\"acme\",source_id=\"{}\",source=\"site\"}}",
            a.source_id
        )),
        "{}",
        m.text
    );
    assert_eq!(
        s.request("GET", "/metrics", Some(&viewer), None).status,
        403
    );
    assert_eq!(s.request("GET", "/metrics", None, None).status, 401);
}

#[test]
fn the_audit_log_lists_every_change_with_its_actor_and_in_order() {
    let a = Acme::start();
    let (s, admin, acme_id) = (&a.s, &a.admin, &a.acme_id);
    a.retry(&a.failed_backup());
    let (_, viewer) = new_token(s, admin, "viewer", Some("acme"));
    let (_, operator) = new_token(s, admin, "operator", Some("acme"));
    let (other_op_id, _) = new_token(s, admin, "operator", Some("other"));
    s.delete(&format!("/api/v1/tokens/{other_op_id}"), admin);
    let q = s.expect(
        202,
        "POST",
        &format!("/api/v1/tenants/{acme_id}/backups"),
        Some(&operator),
        Some(&json!({ "source_id": a.source_id })),
    );
    let by_operator = s.wait_backup(q["id"].as_str().unwrap(), &operator);

    let audit = s.request("GET", "/api/v1/audit?format=jsonl", Some(admin), None);
    assert_eq!(audit.status, 200);
    assert_eq!(audit.content_type, "application/x-ndjson");
    let rows: Vec<Value> = audit
        .text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let count = |ev: &str| rows.iter().filter(|r| r["event"] == ev).count();
    assert_eq!(count("tenant_created"), 2);
    assert_eq!(count("backup_created"), 3);
    assert_eq!(count("backup_succeeded"), 2);
    assert_eq!(count("backup_failed"), 2);
    assert_eq!(count("backup_retried"), 1);
    assert_eq!(
        count("token_created"),
        4,
        "the first admin token and three more"
    );
    assert_eq!(count("token_revoked"), 1);
    assert_eq!(count("source_created"), 2);
    let created_by_operator = rows
        .iter()
        .find(|r| r["event"] == "backup_created" && r["subject"] == by_operator["id"])
        .unwrap();
    assert_eq!(
        created_by_operator["actor"]["label"],
        "operator of Some(\"acme\")"
    );
    assert!(created_by_operator["actor"]["token_id"].is_string());
    let succeeded = rows
        .iter()
        .find(|r| r["event"] == "backup_succeeded")
        .unwrap();
    assert_eq!(succeeded["actor"]["label"], "system");
    // the audit row of a run comes before the run's outcome
    let pos = |ev: &str, subject: &Value| {
        rows.iter()
            .position(|r| r["event"] == ev && &r["subject"] == subject)
    };
    assert!(pos("backup_created", &a.b["id"]) < pos("backup_succeeded", &a.b["id"]));
    // a tenant's viewer sees only its tenant's events; pages work
    let page = s.get("/api/v1/audit?limit=5", &viewer);
    assert_eq!(page["items"].as_array().unwrap().len(), 5);
    assert!(
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["tenant"] == acme_id.as_str())
    );
    assert_eq!(page["has_more"], true);
    s.expect(
        404,
        "GET",
        &format!("/api/v1/audit?tenant={}", a.other_id),
        Some(&viewer),
        None,
    );
}

#[test]
fn the_audit_chain_verifies_and_each_kind_of_tampering_is_named() {
    let a = Acme::start();
    let data = a.data.clone();
    drop(a.s);
    let verify = |expect_ok: bool, needle: &str| {
        let mut cmd = Command::new(common::holdfast_bin());
        common::clean(&mut cmd);
        let out = cmd
            .args(["audit", "verify", "--data-dir"])
            .arg(&data)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.success(), expect_ok, "{text}");
        assert!(text.contains(needle), "{needle:?} not in {text}");
    };
    verify(true, "audit log intact");
    let db = rusqlite::Connection::open(data.join("catalog.db")).unwrap();
    let saved: String = db
        .query_row("SELECT metadata FROM audit_log WHERE seq = 4", [], |r| {
            r.get(0)
        })
        .unwrap();
    db.execute(
        "UPDATE audit_log SET metadata = '{\"name\":\"evil\"}' WHERE seq = 4",
        [],
    )
    .unwrap();
    verify(false, "audit row 4 does not match its hash (it was edited)");
    db.execute("UPDATE audit_log SET metadata = ?1 WHERE seq = 4", [&saved])
        .unwrap();
    verify(true, "audit log intact");
    db.execute(
        "CREATE TABLE saved AS SELECT * FROM audit_log WHERE seq = 5",
        [],
    )
    .unwrap();
    db.execute("DELETE FROM audit_log WHERE seq = 5", [])
        .unwrap();
    verify(false, "audit row 5 is missing");
    db.execute("INSERT INTO audit_log SELECT * FROM saved", [])
        .unwrap();
    verify(true, "audit log intact");
    let last: i64 = db
        .query_row("SELECT MAX(seq) FROM audit_log", [], |r| r.get(0))
        .unwrap();
    db.execute(
        "INSERT INTO audit_log SELECT seq + 1, time, NULL, 'intruder', tenant_id, 'backup_deleted', subject, \
         metadata, hash, prev_hash FROM audit_log WHERE seq = ?1",
        [last],
    )
    .unwrap();
    verify(false, &format!("audit row {}", last + 1));
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn kill_9_mid_backup_then_restart_fails_the_run_as_interrupted_and_retries_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // first run: writes 20 MB, then hangs until killed; second run: quick
    let marker = dir.path().join("first-run");
    let pidfile = dir.path().join("pid");
    let script = slow_first_run(&marker, &pidfile, "second run");
    let config = common::service::commands_config(dir.path(), &[("slow", &script)]);
    let env = [
        ("HOLDFAST_RETRY_BASE_SECONDS", "1"),
        ("HOLDFAST_CONFIG", config.to_str().unwrap()),
    ];
    let mut s = Server::start(&data, &env);
    let admin = s.admin.clone().unwrap();
    let tid = s.create_tenant(&admin, "acme");
    let src = s.create_source(&admin, &tid, json!({"name": "slow", "kind": "command", "target": "slow", "options": {"filename": "out.bin"}}));
    let q = s.queue_backup(&admin, &tid, &src["id"]);
    let id = q["id"].as_str().unwrap().to_string();
    wait_for("the run to start and write", || {
        let b = s.backup(&id, &admin);
        b["status"] == "running" && marker.exists()
    });
    std::thread::sleep(std::time::Duration::from_millis(1500));
    s.kill9();
    // the command the dead server started is an orphan now: stop it too
    let pid = fs::read_to_string(&pidfile).unwrap().trim().to_string();
    let _ = Command::new("kill").args(["-9", &pid]).status();

    let s = Server::start(&data, &env);
    assert!(
        s.admin.is_none(),
        "the admin token is printed on the first start only"
    );
    let b = s.wait_backup(&id, &admin);
    assert_eq!(b["status"], "done", "{b}");
    assert_eq!(b["attempts"], 2);
    assert_eq!(b["size"], "second run\n".len());
    let audit = s.request("GET", "/api/v1/audit?format=jsonl", Some(&admin), None);
    let rows: Vec<Value> = audit
        .text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let events: Vec<&str> = rows
        .iter()
        .filter(|r| r["subject"] == id.as_str())
        .map(|r| r["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        [
            "backup_created",
            "backup_failed",
            "backup_retried",
            "backup_succeeded"
        ]
    );
    let failed = rows.iter().find(|r| r["event"] == "backup_failed").unwrap();
    assert_eq!(failed["metadata"]["error_kind"], "interrupted");
    assert_eq!(failed["actor"]["label"], "system");

    // the repository the killed run was writing to passes restic's check
    let password = s.tenant_key("acme");
    let repo = b["repository"].as_str().unwrap();
    common::run_ok(restic_with(repo, &password).args(["check", "--read-data"]));
    let snaps = common::run_ok(restic_with(repo, &password).args(["snapshots", "--json"]));
    let snaps: Value = serde_json::from_str(&snaps).unwrap();
    assert_eq!(
        snaps.as_array().unwrap().len(),
        1,
        "the killed run left no snapshot"
    );
}

#[test]
fn a_database_drill_restores_on_the_admins_drill_server_when_one_is_configured() {
    let _turn = common::servers::scratch_databases();
    let pg = common::servers::Postgres::shared();
    pg.create_db("serve_drilled");
    pg.psql(
        "serve_drilled",
        "CREATE TABLE t (id int PRIMARY KEY, v text); \
         INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 300) g;",
    );
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let pw = dir.path().join("drill.pw");
    fs::write(&pw, format!("{}\n", pg.password)).unwrap();
    // the drill server as the admin configures it: first one that is not
    // listening, so that the failure shows which server the drill used
    let config = |port: u16| {
        let f = dir.path().join(format!("holdfast-{port}.toml"));
        fs::write(
            &f,
            format!(
                "[drills]\npostgres = \"postgres://{}@127.0.0.1:{port}/postgres\"\n\
                 postgres_password_file = \"{}\"\n",
                pg.user,
                pw.display()
            ),
        )
        .unwrap();
        f
    };
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let drill = |s: &Server, admin: &str, tid: &str, sid: &str| {
        let d = s.expect(
            202,
            "POST",
            &format!("/api/v1/tenants/{tid}/sources/{sid}/drills"),
            Some(admin),
            None,
        );
        s.wait_restore(d["id"].as_str().unwrap(), admin)
    };
    let (tid, sid, admin) = {
        let cfg = config(closed);
        let s = Server::start(&data, &[("HOLDFAST_CONFIG", cfg.to_str().unwrap())]);
        let admin = s.admin.clone().unwrap();
        let tid = s.create_tenant(&admin, "acme");
        let src = s.create_source(
            &admin,
            &tid,
            json!({"name": "db", "kind": "postgres", "target": pg.url("serve_drilled"),
                   "credentials": pg.password}),
        );
        let sid = src["id"].as_str().unwrap().to_string();
        assert_eq!(s.run_backup(&admin, &tid, &sid)["status"], "done");
        let failed = drill(&s, &admin, &tid, &sid);
        assert_eq!(failed["status"], "failed", "{failed}");
        let error = failed["error"].as_str().unwrap();
        assert!(error.contains(&format!("127.0.0.1:{closed}")), "{error}");
        assert!(!error.contains(&pg.password), "{error}");
        (tid, sid, admin)
    };
    // the drill server reachable: a scratch database a killed drill left
    // there is dropped at start; the drill restores there, and passes
    pg.psql("postgres", "CREATE DATABASE holdfast_drill_0123abcd");
    pg.psql("postgres", "CREATE DATABASE holdfast_drillx_kept");
    let cfg = config(pg.port);
    let s = Server::start(&data, &[("HOLDFAST_CONFIG", cfg.to_str().unwrap())]);
    let done = drill(&s, &admin, &tid, &sid);
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["verification"]["rows"], 300);
    let left = pg.psql(
        "postgres",
        "SELECT string_agg(datname, ',') FROM pg_database WHERE datname LIKE 'holdfast_drill%'",
    );
    assert_eq!(
        left.trim(),
        "holdfast_drillx_kept",
        "only the scratch ones were dropped"
    );
    pg.psql("postgres", "DROP DATABASE holdfast_drillx_kept");
}

/// A command source's backup is one file, drilled as plain files (its
/// snapshot names its kind `command` and holds no manifest).
#[test]
fn a_command_sources_backup_drills_as_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let config =
        common::service::commands_config(dir.path(), &[("orders", "printf 'id,total\\n1,10\\n'")]);
    let s = Server::start(
        &dir.path().join("data"),
        &[("HOLDFAST_CONFIG", config.to_str().unwrap())],
    );
    let admin = s.admin.clone().unwrap();
    let t = s.create_tenant(&admin, "acme");
    let src = s.create_source(
        &admin,
        &t,
        json!({"name": "orders", "kind": "command", "target": "orders", "schedule": null,
               "options": {"filename": "orders.csv"}}),
    );
    let sid = src["id"].as_str().unwrap().to_string();
    assert_eq!(s.run_backup(&admin, &t, &sid)["status"], "done");
    let d = s.expect(
        202,
        "POST",
        &format!("/api/v1/tenants/{t}/sources/{sid}/drills"),
        Some(&admin),
        None,
    );
    let d = s.wait_restore(d["id"].as_str().unwrap(), &admin);
    assert_eq!(d["status"], "done", "{d}");
    assert_eq!(d["verification"]["kind"], "files", "{d}");
    assert_eq!(d["verification"]["items"], 1, "{d}");
}

/// A drill on the source's own server whose node died mid-run: at the
/// next start the recovery marks it failed and drops its scratch database
/// — found by the name the drill's id gives it, so a database of another
/// drill on the same (the tenant's) server is not touched.
#[test]
fn an_interrupted_drill_on_the_sources_own_server_has_its_scratch_database_dropped() {
    let _turn = common::servers::scratch_databases();
    let pg = common::servers::Postgres::shared();
    pg.create_db("serve_drill_own");
    pg.psql(
        "serve_drill_own",
        "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 10);",
    );
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (tid, drill_id, admin) = {
        let s = Server::start(&data, &[]);
        let admin = s.admin.clone().unwrap();
        let tid = s.create_tenant(&admin, "acme");
        let src = s.create_source(
            &admin,
            &tid,
            json!({"name": "db", "kind": "postgres", "target": pg.url("serve_drill_own"),
                   "credentials": pg.password}),
        );
        let sid = src["id"].as_str().unwrap().to_string();
        assert_eq!(s.run_backup(&admin, &tid, &sid)["status"], "done");
        let d = s.expect(
            202,
            "POST",
            &format!("/api/v1/tenants/{tid}/sources/{sid}/drills"),
            Some(&admin),
            None,
        );
        let id = d["id"].as_str().unwrap().to_string();
        assert_eq!(s.wait_restore(&id, &admin)["status"], "done");
        (tid, id, admin)
    };
    // as a node killed mid-drill leaves it: the row running, the scratch
    // database on the source's server (and another drill's beside it)
    let db = rusqlite::Connection::open(data.join("catalog.db")).unwrap();
    let n = db
        .execute(
            "UPDATE restores SET status = 'running', finished_at = NULL, error = NULL, \
             verification = NULL, lease_owner = 'gone/0', lease_until = started_at WHERE id = ?1",
            [&drill_id],
        )
        .unwrap();
    assert_eq!(n, 1);
    drop(db);
    let mine = format!("holdfast_drill_{}", drill_id.replace('-', ""));
    pg.psql("postgres", &format!("CREATE DATABASE {mine}"));
    pg.psql("postgres", "CREATE DATABASE holdfast_drill_0000another");
    let s = Server::start(&data, &[]);
    let d = s.wait_restore(&drill_id, &admin);
    assert_eq!(d["status"], "failed", "{d}");
    assert!(d["error"].as_str().unwrap().contains("interrupted"), "{d}");
    let left = || {
        pg.psql(
            "postgres",
            "SELECT string_agg(datname, ',') FROM pg_database WHERE datname LIKE 'holdfast_drill%'",
        )
        .trim()
        .to_string()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while left() != "holdfast_drill_0000another" && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(
        left(),
        "holdfast_drill_0000another",
        "the interrupted drill's database was dropped, and only it"
    );
    pg.psql("postgres", "DROP DATABASE holdfast_drill_0000another");
    let _ = tid;
}

#[test]
fn a_postgres_source_backs_up_with_stored_credentials_and_restores() {
    let pg = common::servers::Postgres::shared();
    pg.create_db("serve_app");
    pg.psql(
        "serve_app",
        "CREATE TABLE customers (id int PRIMARY KEY, name text, note text); \
         INSERT INTO customers SELECT g, 'customer ' || g, CASE WHEN g % 3 = 0 THEN NULL ELSE 'n' END \
         FROM generate_series(1, 2500) g; \
         CREATE TABLE orders (id int PRIMARY KEY, customer_id int REFERENCES customers(id), total numeric); \
         INSERT INTO orders SELECT g, 1 + g % 2500, g * 1.5 FROM generate_series(1, 4000) g;",
    );
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let s = Server::start(&data, &[("HOLDFAST_RETRY_BASE_SECONDS", "1")]);
    let admin = s.admin.clone().unwrap();
    let tid = s.create_tenant(&admin, "acme");

    // a password in the address is refused, and not echoed
    let with_pw = format!(
        "postgres://{}:{}@127.0.0.1:{}/serve_app",
        pg.user, pg.password, pg.port
    );
    let r = s.request(
        "POST",
        &format!("/api/v1/tenants/{tid}/sources"),
        Some(&admin),
        Some(&json!({"name": "db", "kind": "postgres", "target": with_pw})),
    );
    assert_eq!(r.status, 422);
    assert!(!r.text.contains(&pg.password), "{}", r.text);

    let src = s.create_source(
        &admin,
        &tid,
        json!({"name": "db", "kind": "postgres", "target": pg.url("serve_app"),
                     "credentials": pg.password, "options": {"mode": "tables"}}),
    );
    assert_eq!(src["has_credentials"], true);
    assert!(
        !src.to_string().contains(&pg.password),
        "credentials are never returned"
    );
    let listed = s.get(&format!("/api/v1/tenants/{tid}/sources"), &admin);
    assert!(!listed.to_string().contains(&pg.password));
    let b = s.run_backup(&admin, &tid, &src["id"]);
    assert_eq!(b["status"], "done", "{b}");
    assert_eq!(b["counts"]["tables"], 2);
    assert_eq!(b["counts"]["rows"], 6500);

    // restored with the CLI from the tenant's repository: the same rows
    let password = s.tenant_key("acme");
    let mut restore = Command::new(common::holdfast_bin());
    common::clean(&mut restore);
    let out = restore
        .args([
            "-r",
            b["repository"].as_str().unwrap(),
            "restore",
            b["snapshot_id"].as_str().unwrap(),
        ])
        .arg("--to")
        .arg(pg.url("serve_restored"))
        .env("HOLDFAST_PASSWORD", &password)
        .env("PGPASSWORD", &pg.password)
        .output()
        .unwrap();
    assert_ok(&out);
    let q = "SELECT md5(string_agg(c::text, ',' ORDER BY id)) FROM customers c";
    assert_eq!(pg.psql("serve_app", q), pg.psql("serve_restored", q));
    let q = "SELECT md5(string_agg(o::text, ',' ORDER BY id)) FROM orders o";
    assert_eq!(pg.psql("serve_app", q), pg.psql("serve_restored", q));

    // restored over the API into a new database beside the source (the default), verified
    let r = s.queue_restore(&admin, b["id"].as_str().unwrap(), None);
    let rid = r["id"].as_str().unwrap().to_string();
    assert!(
        r["target"]
            .as_str()
            .unwrap()
            .contains("/serve_app_restored_"),
        "{r}"
    );
    wait_for("the database restore", || {
        let st = s.restore(&rid, &admin)["status"].clone();
        st == "done" || st == "failed"
    });
    let done = s.restore(&rid, &admin);
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["verification"]["rows"], 6500);
    assert_eq!(done["verification"]["created"], true);
    let new_db = done["verification"]["database"]
        .as_str()
        .unwrap()
        .to_string();
    let q = "SELECT md5(string_agg(o::text, ',' ORDER BY id)) FROM orders o";
    assert_eq!(pg.psql("serve_app", q), pg.psql(&new_db, q));

    // downloaded as the portable bundle (the default for tables mode), which checks itself
    let client = reqwest::blocking::Client::new();
    let resp = client
        .get(format!(
            "{}/api/v1/backups/{}/file",
            s.base,
            b["id"].as_str().unwrap()
        ))
        .header("Authorization", format!("Bearer {admin}"))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["content-type"], "application/zip");
    let zip_path = dir.path().join("bundle.zip");
    fs::write(&zip_path, resp.bytes().unwrap()).unwrap();
    let mut verify = Command::new(common::holdfast_bin());
    common::clean(&mut verify);
    common::run_ok(verify.arg("export").arg("--verify").arg(&zip_path));
    let listing = common::run_ok(Command::new("unzip").arg("-l").arg(&zip_path));
    assert!(
        listing.contains("customers.csv") && listing.contains(".xlsx"),
        "{listing}"
    );

    // wrong stored credentials: a failed run, permanent, the password nowhere
    let patched = s
        .patch_source(
            &admin,
            &tid,
            src["id"].as_str().unwrap(),
            json!({"credentials": "wrong-password-123"}),
        )
        .expect(200);
    assert_eq!(patched["has_credentials"], true);
    let f = s.run_backup(&admin, &tid, &src["id"]);
    assert_eq!(f["status"], "failed", "{f}");
    assert_eq!(f["error_kind"], "permanent", "{f}");
    assert_eq!(f["attempts"], 1);
    let err = f["error"].as_str().unwrap();
    assert!(err.contains("password authentication failed"), "{err}");
    let audit = s
        .request("GET", "/api/v1/audit?format=jsonl", Some(&admin), None)
        .text;
    for secret in [pg.password.as_str(), "wrong-password-123"] {
        assert!(!err.contains(secret) && !audit.contains(secret));
    }
    let source_updated = audit
        .lines()
        .find(|l| l.contains("source_updated"))
        .unwrap();
    assert!(source_updated.contains("credentials"), "{source_updated}");
}

fn snapshot_count(repo: &str, password: &str) -> usize {
    let out = common::run_ok(restic_with(repo, password).args(["snapshots", "--json"]));
    serde_json::from_str::<Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .len()
}

#[test]
fn schedules_fire_missed_slots_once_and_retention_and_deletes_remove_snapshots_but_keep_rows() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let env = [
        ("HOLDFAST_SCHEDULER_TICK_SECONDS", "1"),
        ("HOLDFAST_RETRY_BASE_SECONDS", "1"),
    ];
    let s = Server::start(&data, &env);
    let admin = s.admin.clone().unwrap();
    let tid = s.create_tenant(&admin, "acme");
    let site = dir.path().join("site");
    fs::create_dir_all(&site).unwrap();
    fs::write(site.join("a.txt"), b"a").unwrap();
    let bad = s.request(
        "POST",
        &format!("/api/v1/tenants/{tid}/sources"),
        Some(&admin),
        Some(&json!({"name": "x", "kind": "directory", "target": site, "schedule": "0 25 * * *"})),
    );
    assert_eq!(
        (bad.status, bad.json()["field"].as_str()),
        (422, Some("schedule"))
    );
    let src = s.create_source(
        &admin,
        &tid,
        json!({"name": "site", "kind": "directory", "target": site, "schedule": "0 3 * * *",
                     "retention": {"max_age_days": 2, "keep_last": 1}}),
    );
    let sid = src["id"].as_str().unwrap().to_string();
    let list = |q: &str| {
        s.get(
            &format!("/api/v1/tenants/{tid}/backups?limit=200{q}"),
            &admin,
        )["items"]
            .as_array()
            .unwrap()
            .clone()
    };
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert!(
        list("").is_empty(),
        "no slot has come since the source was created"
    );

    // the server was "down" for months: the source is older than any slot it queued
    let db = rusqlite::Connection::open(data.join("catalog.db")).unwrap();
    db.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
    let three_days_ago = "2000-01-01T00:00:00.000Z".to_string(); // far back: bounded by the look-back window
    db.execute(
        "UPDATE sources SET created_at = ?1 WHERE id = ?2",
        [&three_days_ago, &sid],
    )
    .unwrap();
    wait_for("the scheduled run", || {
        list("").iter().any(|b| b["status"] == "done")
    });
    std::thread::sleep(std::time::Duration::from_millis(3000));
    let runs = list("");
    assert_eq!(
        runs.len(),
        1,
        "one missed slot fired, not one per missed day: {runs:?}"
    );
    assert_eq!(runs[0]["kind"], "scheduled");
    assert!(runs[0]["requested_by"].is_null());
    assert_eq!(runs[0]["requested_by_label"], "system");
    let slot: String = db
        .query_row(
            "SELECT slot FROM backups WHERE id = ?1",
            [runs[0]["id"].as_str().unwrap()],
            |r| r.get(0),
        )
        .unwrap();
    assert!(slot.ends_with("T03:00:00.000Z"), "{slot}");

    // two more runs on demand; then the first two are made old
    let mut ids = vec![runs[0]["id"].as_str().unwrap().to_string()];
    for _ in 0..2 {
        fs::write(site.join("a.txt"), ids.len().to_string()).unwrap();
        let q = s.queue_backup(&admin, &tid, &sid);
        ids.push(q["id"].as_str().unwrap().to_string());
        assert_eq!(s.wait_backup(ids.last().unwrap(), &admin)["status"], "done");
    }
    let repo = runs[0]["repository"].as_str().unwrap().to_string();
    let password = s.tenant_key("acme");
    assert_eq!(snapshot_count(&repo, &password), 3);

    // DELETE: 202, the row stays with deleted_at, the snapshot goes
    let d = s.expect(
        202,
        "DELETE",
        &format!("/api/v1/backups/{}", ids[2]),
        Some(&admin),
        None,
    );
    assert_eq!(d["status"], "deleting");
    wait_for("the deletion", || {
        s.backup(&ids[2], &admin)["status"] == "deleted"
    });
    let gone = s.backup(&ids[2], &admin);
    assert!(gone["deleted_at"].is_string());
    assert_eq!(
        gone["snapshot_id"].as_str().unwrap().len(),
        64,
        "the row keeps what it was"
    );
    assert_eq!(snapshot_count(&repo, &password), 2);
    common::run_ok(restic_with(&repo, &password).args(["check"]));
    drop(s);

    // retention: the two remaining are months old; max_age 2 days, keep_last 1
    for (id, day) in ids[..2].iter().zip(["01", "02"]) {
        let at = format!("2026-01-{day}T00:00:00.000Z");
        db.execute(
            "UPDATE backups SET started_at = ?1 WHERE id = ?2",
            [&at, id],
        )
        .unwrap();
    }
    let env = [
        ("HOLDFAST_SCHEDULER_TICK_SECONDS", "1"),
        ("HOLDFAST_CLEANUP_SCHEDULE", "* * * * *"),
        ("HOLDFAST_SCHEDULE", "0 3 * * *"),
    ];
    let s = Server::start(&data, &env);
    wait_for("retention", || {
        s.backup(&ids[0], &admin)["status"] == "deleted"
    });
    // both are older than 2 days; keep_last 1 keeps the newer, ids[1]
    let statuses: Vec<String> = ids
        .iter()
        .map(|id| s.backup(id, &admin)["status"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| *s == "deleted").count(),
        2,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| *s == "done").count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(snapshot_count(&repo, &password), 1);
    common::run_ok(restic_with(&repo, &password).args(["check", "--read-data"]));
    let audit = s
        .request("GET", "/api/v1/audit?format=jsonl", Some(&admin), None)
        .text;
    let rows: Vec<Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let applied: Vec<&Value> = rows
        .iter()
        .filter(|r| r["event"] == "retention_applied")
        .collect();
    assert!(!applied.is_empty());
    assert_eq!(
        applied[0]["metadata"]["deleted"].as_array().unwrap().len(),
        1
    );
    let by_retention = rows
        .iter()
        .filter(|r| r["event"] == "backup_deleted" && r["metadata"]["reason"] == "retention")
        .count();
    assert_eq!(by_retention, 1);
    let by_api = rows
        .iter()
        .find(|r| r["event"] == "backup_deleted" && r["metadata"]["reason"] == "requested")
        .unwrap();
    assert_eq!(by_api["actor"]["label"], "initial admin");
}

#[test]
fn tokens_from_the_console_and_configuration_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let s = Server::start(&data, &[]);
    let admin = s.admin.clone().unwrap();
    s.create_tenant(&admin, "acme");
    let out = s.cli(&[
        "token", "create", "--role", "viewer", "--tenant", "acme", "--label", "grafana",
    ]);
    assert_ok(&out);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let secret = stdout.lines().last().unwrap().trim().to_string();
    assert!(secret.starts_with("hf_"), "{stdout}");
    let tenants = s.get("/api/v1/tenants", &secret);
    assert_eq!(tenants["items"][0]["name"], "acme");
    let list = String::from_utf8(s.cli(&["token", "list"]).stdout).unwrap();
    let line = list
        .lines()
        .find(|l| l.contains("grafana"))
        .unwrap()
        .to_string();
    assert!(!list.contains(&secret), "secrets are never listed");
    let id = line.split_whitespace().next().unwrap();
    assert!(s.cli(&["token", "revoke", id]).status.success());
    s.expect(401, "GET", "/api/v1/tenants", Some(&secret), None);
    let audit = s
        .request("GET", "/api/v1/audit?format=jsonl", Some(&admin), None)
        .text;
    let created = audit
        .lines()
        .find(|l| l.contains("token_created") && l.contains("grafana"))
        .unwrap();
    assert!(created.contains("console:"), "{created}");
    assert!(audit.lines().any(|l| l.contains("token_revoked")));
    drop(s);

    // a bad configuration stops the start and names the key
    let conf = dir.path().join("holdfast.toml");
    fs::write(&conf, "workers = 0\n").unwrap();
    let mut cmd = Command::new(common::holdfast_bin());
    common::clean(&mut cmd);
    let out = cmd
        .args(["serve", "--config"])
        .arg(&conf)
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("workers"), "{err}");
    let mut cmd = Command::new(common::holdfast_bin());
    common::clean(&mut cmd);
    let out = cmd
        .args(["serve", "--data-dir"])
        .arg(&data)
        .env("HOLDFAST_CATALOG_URL", "mysql://u:hunter2@h/db")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("catalog_url") && !err.contains("hunter2"),
        "{err}"
    );
}

#[test]
fn a_stalled_run_and_a_run_over_its_hard_limit_are_stopped_with_their_tools() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let pidfile = dir.path().join("sleep.pid");
    let stall = format!("sleep 600 & echo $! > {}; wait", pidfile.display());
    let config = common::service::commands_config(
        dir.path(),
        &[
            ("stall", &stall),
            ("tick", "while true; do echo tick; sleep 0.2; done"),
        ],
    );
    let config = config.to_str().unwrap();
    let s = Server::start(
        &data,
        &[
            ("HOLDFAST_MAX_ATTEMPTS", "1"),
            ("HOLDFAST_NO_PROGRESS_MINUTES", "0.05"),
            ("HOLDFAST_LEASE_SECONDS", "4"),
            ("HOLDFAST_CONFIG", config),
        ],
    );
    let admin = s.admin.clone().unwrap();
    let tid = s.create_tenant(&admin, "acme");
    // stalls: a child of the shell that never writes
    let stalled = s.create_source(
        &admin,
        &tid,
        json!({"name": "stalled", "kind": "command", "schedule": null, "target": "stall"}),
    );
    let q = s.queue_backup(&admin, &tid, &stalled["id"]);
    let started = std::time::Instant::now();
    let f = s.wait_backup(q["id"].as_str().unwrap(), &admin);
    assert_eq!(f["status"], "failed", "{f}");
    assert_eq!(f["error_kind"], "transient");
    let err = f["error"].as_str().unwrap();
    assert!(
        err.contains("timed out: no progress for 3 seconds"),
        "{err}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    // the shell's child was killed with its process group
    let pid = fs::read_to_string(&pidfile).unwrap().trim().to_string();
    wait_for("the stalled tool to be gone", || {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        stat.is_empty() || stat.contains(") Z ")
    });
    drop(s);

    // writes slowly but steadily: only the hard limit stops it
    let s = Server::start(
        &data,
        &[
            ("HOLDFAST_MAX_ATTEMPTS", "1"),
            ("HOLDFAST_HARD_LIMIT_MINUTES", "0.05"),
            ("HOLDFAST_NO_PROGRESS_MINUTES", "0.05"),
            ("HOLDFAST_CONFIG", config),
        ],
    );
    let steady = s.create_source(
        &admin,
        &tid,
        json!({"name": "steady", "kind": "command", "schedule": null, "target": "tick"}),
    );
    let f = s.run_backup(&admin, &tid, &steady["id"]);
    assert_eq!(f["status"], "failed", "{f}");
    let err = f["error"].as_str().unwrap();
    assert!(
        err.contains("timed out: the hard limit of 3 seconds was reached"),
        "{err}"
    );
    // nothing was recorded as a snapshot, and the repository is sound
    let password = s.tenant_key("acme");
    let repo = f["repository"].as_str().unwrap();
    assert_eq!(snapshot_count(repo, &password), 0);
    common::run_ok(restic_with(repo, &password).args(["check"]));
    drop(s);

    // a directory backup is stopped too, with all its reader threads: a
    // sparse file of 1 TiB reads as zeros for many minutes
    let tree = dir.path().join("tree");
    fs::create_dir(&tree).unwrap();
    fs::write(tree.join("small.txt"), "small").unwrap();
    fs::File::create(tree.join("huge.img"))
        .unwrap()
        .set_len(1 << 40)
        .unwrap();
    let s = Server::start(
        &data,
        &[
            ("HOLDFAST_MAX_ATTEMPTS", "1"),
            ("HOLDFAST_HARD_LIMIT_MINUTES", "0.05"),
        ],
    );
    let big = s.create_source(
        &admin,
        &tid,
        json!({"name": "tree", "kind": "directory", "schedule": null,
                     "target": tree.to_str().unwrap()}),
    );
    let q = s.queue_backup(&admin, &tid, &big["id"]);
    let started = std::time::Instant::now();
    let f = s.wait_backup(q["id"].as_str().unwrap(), &admin);
    assert_eq!(f["status"], "failed", "{f}");
    let err = f["error"].as_str().unwrap();
    assert!(
        err.contains("timed out: the hard limit of 3 seconds was reached"),
        "{err}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "the directory backup ran on for {:?}",
        started.elapsed()
    );
    assert_eq!(snapshot_count(repo, &password), 0);
    common::run_ok(restic_with(repo, &password).args(["check"]));
}

#[test]
fn sigterm_stops_running_jobs_and_their_tools_and_records_them_as_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let pidfile = dir.path().join("sleep.pid");
    let long = format!(
        "echo start; sleep 600 & echo $! > {}; wait",
        pidfile.display()
    );
    let config = common::service::commands_config(dir.path(), &[("long", &long)]);
    let mut s = Server::start(
        &data,
        &[
            ("HOLDFAST_MAX_ATTEMPTS", "1"),
            ("HOLDFAST_CONFIG", config.to_str().unwrap()),
        ],
    );
    let admin = s.admin.clone().unwrap();
    let tid = s.create_tenant(&admin, "acme");
    let src = s.create_source(
        &admin,
        &tid,
        json!({"name": "long", "kind": "command", "schedule": null, "target": "long"}),
    );
    let q = s.queue_backup(&admin, &tid, &src["id"]);
    let id = q["id"].as_str().unwrap().to_string();
    wait_for("the run to start its tool", || {
        fs::read_to_string(&pidfile).is_ok_and(|p| !p.trim().is_empty())
    });
    let status = s.terminate(std::time::Duration::from_secs(20));
    assert!(status.success(), "serve exited with {status}");
    // the tool went with the job
    let pid = fs::read_to_string(&pidfile).unwrap().trim().to_string();
    wait_for("the tool to be gone", || {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        stat.is_empty() || stat.contains(") Z ")
    });
    // recorded before the exit: failed as interrupted (no attempt left), not
    // left `running` for the next start to find
    let db = data.join("catalog.db");
    let row = Command::new("python3")
        .args([
            "-c",
            "import sqlite3,sys; r=sqlite3.connect(sys.argv[1]).execute(\
             'SELECT status, error_kind, error FROM backups WHERE id=?', (sys.argv[2],)).fetchone(); \
             print('|'.join(map(str, r)))",
        ])
        .arg(&db)
        .arg(&id)
        .output()
        .unwrap();
    let row = String::from_utf8(row.stdout).unwrap();
    assert!(
        row.starts_with("failed|interrupted|interrupted: the server shut down while it ran"),
        "{row}"
    );
    // and a restarted server keeps it so (nothing to recover), audit intact
    let s = Server::start(&data, &[]);
    let b = s.backup(&id, &admin);
    assert_eq!(b["status"], "failed", "{b}");
    assert_eq!(b["error_kind"], "interrupted", "{b}");
    let v = s.cli(&["audit", "verify"]);
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
}

#[test]
fn a_restore_over_its_hard_limit_is_stopped_and_fails_as_timed_out() {
    use common::http::{HttpServer, Route};
    let http = HttpServer::start();
    let events: Vec<u8> = (0..3000)
        .flat_map(|i| {
            format!("{{\"eventId\":\"e{i:05}\",\"schemaVersion\":1,\"n\":{i}}}\n").into_bytes()
        })
        .collect();
    http.route(
        "/events",
        Route::Body {
            chunks: events.chunks(16 * 1024).map(<[u8]>::to_vec).collect(),
            cut_after: None,
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(
        &dir.path().join("data"),
        &[
            ("HOLDFAST_MAX_ATTEMPTS", "1"),
            ("HOLDFAST_HARD_LIMIT_MINUTES", "0.05"),
        ],
    );
    let admin = s.admin.clone().unwrap();
    let tid = s.create_tenant(&admin, "acme");
    let src = s.create_source(
        &admin,
        &tid,
        json!({"name": "events", "kind": "jsonl", "schedule": null,
                     "target": format!("jsonl+{}", http.url("/events"))}),
    );
    let b = s.run_backup(&admin, &tid, &src["id"]);
    assert_eq!(b["status"], "done", "{b}");

    // a receiver that takes 1.5 s per batch of 500: six batches are 9 s, the
    // hard limit is 3 s
    http.state.lock().unwrap().ack_delay = Some(std::time::Duration::from_millis(1500));
    let r = s.expect(
        202,
        "POST",
        &format!("/api/v1/backups/{}/restore", b["id"].as_str().unwrap()),
        Some(&admin),
        Some(&json!({"target": format!("jsonl+{}", http.url("/ingest"))})),
    );
    let rid = r["id"].as_str().unwrap().to_string();
    let started = std::time::Instant::now();
    let mut done = Value::Null;
    wait_for("the restore", || {
        done = s.restore(&rid, &admin);
        done["status"] != "queued" && done["status"] != "running"
    });
    assert_eq!(done["status"], "failed", "{done}");
    let err = done["error"].as_str().unwrap();
    assert!(
        err.contains("timed out: the hard limit of 3 seconds was reached"),
        "{err}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(8),
        "the restore ran on for {:?}",
        started.elapsed()
    );
    let received = http.state.lock().unwrap().received.len();
    assert!(
        (1..3000).contains(&received),
        "{received} events arrived: the replay was not stopped partway"
    );
}
