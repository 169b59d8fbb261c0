//! The trust boundary, tried as a hostile tenant would: with only an
//! operator token, against a real `holdfast serve`. Each test is one attack
//! from issue 13 (or a family of them) and fails on a server without the
//! tenant policy: commands, paths outside the tenant's roots and the
//! server's own files, symlinks, restore targets, credentials sent to a new
//! host or the server's own password sent anywhere, event-stream URLs,
//! redirects and error bodies, and the start-up and console cases.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use common::assert_ok;
use common::http::{HttpServer, Route};
use common::service::{Server, commands_config};
use serde_json::{Value, json};

fn operator(s: &Server, admin: &str, tenant: &str) -> String {
    let body = json!({"role": "operator", "tenant": tenant, "label": "hostile operator"});
    let r = s.expect(201, "POST", "/api/v1/tokens", Some(admin), Some(&body));
    r["secret"].as_str().unwrap().to_string()
}

/// POST a source; the reply.
fn try_source(s: &Server, token: &str, tenant: &str, body: Value) -> common::service::Reply {
    s.request(
        "POST",
        &format!("/api/v1/tenants/{tenant}/sources"),
        Some(token),
        Some(&body),
    )
}

fn assert_refused(r: &common::service::Reply, what: &str) {
    assert_eq!(r.status, 403, "{what}: {}", r.text);
    assert_eq!(r.content_type, "application/problem+json", "{what}");
    let j = r.json();
    assert_eq!(j["code"], "refused_by_policy", "{what}: {j}");
    assert_eq!(j["field"], "target", "{what}: {j}");
}

/// A server on `data` in a new temporary directory, started with `env`,
/// holding tenant "a" and an operator token of it: (the directory, the
/// server, the admin token, the tenant id, the operator token).
fn server_with_tenant_a(
    env: &[(&str, &str)],
) -> (tempfile::TempDir, Server, String, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), env);
    let admin = s.admin.clone().unwrap();
    let a = s.create_tenant(&admin, "a");
    let op = operator(&s, &admin, &a);
    (dir, s, admin, a, op)
}

/// Tenant "a" under `policy`, and an operator token of it: (admin
/// token, tenant id, operator token).
fn tenant_a(s: &Server, policy: Value) -> (String, String, String) {
    let admin = s.admin.clone().unwrap();
    let a = s.create_tenant(&admin, "a");
    let op = operator(s, &admin, &a);
    s.set_policy(&admin, &a, policy);
    (admin, a, op)
}

fn dir_source(name: &str, target: &str) -> Value {
    json!({"name": name, "kind": "directory", "target": target, "schedule": null})
}

fn audit_rows(s: &Server, admin: &str, event: &str) -> Vec<Value> {
    let a = s.request(
        "GET",
        &format!("/api/v1/audit?format=jsonl&event={event}"),
        Some(admin),
        None,
    );
    assert_eq!(a.status, 200, "{}", a.text);
    a.text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["event"] == event)
        .collect()
}

#[test]
fn commands_are_named_in_the_config_and_never_free_text_from_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let config = commands_config(dir.path(), &[("hello", "echo hello from the admin")]);
    let s = Server::start(
        &dir.path().join("data"),
        &[("HOLDFAST_CONFIG", config.to_str().unwrap())],
    );
    let admin = s.admin.clone().unwrap();
    let tid = s.create_tenant(&admin, "acme");
    let op = operator(&s, &admin, &tid);
    let shell = json!({"name": "x", "kind": "command", "schedule": null,
        "target": "id; head -2 /etc/shadow"});
    // free text: refused to the operator and to the admin alike
    assert_refused(
        &try_source(&s, &op, &tid, shell.clone()),
        "operator free text",
    );
    assert_refused(&try_source(&s, &admin, &tid, shell), "admin free text");
    // a named command: the operator only once the policy lists it
    let named = json!({"name": "hello", "kind": "command", "schedule": null, "target": "hello"});
    assert_refused(
        &try_source(&s, &op, &tid, named.clone()),
        "operator, not allowed",
    );
    s.set_policy(&admin, &tid, json!({"commands": ["hello"]}));
    let src = s.create_source(&op, &tid, named);
    assert_eq!(src["defined_by"], "operator");
    let b = s.run_backup(&op, &tid, &src["id"]);
    assert_eq!(b["status"], "done", "{b}");
    // an unknown name in a policy is refused
    let r = s.request(
        "PUT",
        &format!("/api/v1/tenants/{tid}/policy"),
        Some(&admin),
        Some(&json!({"commands": ["rm-rf"]})),
    );
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.json()["field"], "commands[0]");
}

#[test]
fn operator_paths_stay_beneath_the_tenants_roots_and_nobody_names_the_servers_files() {
    let (dir, s, admin, a, op) = server_with_tenant_a(&[]);
    let data = dir.path().join("data");
    let b = s.create_tenant(&admin, "b");
    let root_a = dir.path().join("tenants/a");
    let root_b = dir.path().join("tenants/b");
    fs::create_dir_all(root_a.join("www")).unwrap();
    fs::create_dir_all(&root_b).unwrap();
    fs::write(root_a.join("www/index.html"), "hello a").unwrap();
    fs::write(root_b.join("secret.txt"), "b's secret").unwrap();
    let p = |x: &Path| x.to_str().unwrap().to_string();

    // the default policy allows no path at all
    assert_refused(
        &try_source(&s, &op, &a, dir_source("w", &p(&root_a))),
        "no policy",
    );
    s.set_policy(&admin, &a, json!({"directory_roots": [p(&root_a)]}));
    s.set_policy(&admin, &b, json!({"directory_roots": [p(&root_b)]}));
    for bad in [
        "/etc".to_string(),
        "/root".to_string(),
        "/".to_string(),
        p(&root_b),
        format!("{}/../b", p(&root_a)),
        format!("{}/./www", p(&root_a)),
        format!("{}x", p(&root_a)),
        p(&data),
        format!("{}/server.key", p(&data)),
        format!("{}/www/\u{1b}[31mred", p(&root_a)),
    ] {
        assert_refused(&try_source(&s, &op, &a, dir_source("bad", &bad)), &bad);
    }
    // a NUL cannot even be sent as a path
    let r = try_source(
        &s,
        &op,
        &a,
        dir_source("nul", &format!("{}/a\0b", p(&root_a))),
    );
    assert!(r.status == 403 || r.status == 422, "{}", r.text);
    // the live catalog, as a SQLite source: to the operator and the admin
    let catalog = format!("sqlite://{}/catalog.db", p(&data));
    for who in [&op, &admin] {
        assert_refused(
            &try_source(
                &s,
                who,
                &a,
                json!({"name": "cat", "kind": "sqlite", "target": catalog, "schedule": null}),
            ),
            "catalog",
        );
    }
    // the server's data directory is refused to admins too, and so is a
    // parent of it
    assert_refused(
        &try_source(&s, &admin, &a, dir_source("d", &p(&data))),
        "admin data dir",
    );
    assert_refused(
        &try_source(&s, &admin, &a, dir_source("d", &p(dir.path()))),
        "admin parent of the data dir",
    );
    // inside the root: works, and is backed up
    let src = s.create_source(&op, &a, dir_source("www", &p(&root_a.join("www"))));
    let done = s.run_backup(&op, &a, &src["id"]);
    assert_eq!(done["status"], "done", "{done}");
    // unicode is fine inside a root
    fs::create_dir_all(root_a.join("dä 日本")).unwrap();
    s.create_source(&op, &a, dir_source("uni", &p(&root_a.join("dä 日本"))));
    // an operator cannot PATCH a source out of its roots either
    let r = s.patch_source(
        &op,
        &a,
        src["id"].as_str().unwrap(),
        json!({"target": "/etc"}),
    );
    assert_refused(&r, "patch to /etc");
}

#[test]
fn symlinks_inside_a_root_cannot_lead_a_backup_outside() {
    let (dir, s, admin, a, op) = server_with_tenant_a(&[("HOLDFAST_MAX_ATTEMPTS", "1")]);
    let root = dir.path().join("root");
    let outside = dir.path().join("outside");
    fs::create_dir_all(outside.join("inner")).unwrap();
    fs::write(outside.join("inner/secret.txt"), "SECRET-OUTSIDE").unwrap();
    fs::create_dir_all(root.join("www")).unwrap();
    fs::write(root.join("www/page.html"), "page").unwrap();
    // made before the job: a symlink as the source itself, and as a
    // component of its path
    std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
    // inside the tree: stored as a symlink, never followed
    std::os::unix::fs::symlink(&outside, root.join("www/escape")).unwrap();
    s.set_policy(
        &admin,
        &a,
        json!({"directory_roots": [root.to_str().unwrap()]}),
    );
    for target in [root.join("link"), root.join("link/inner")] {
        let src = s.create_source(
            &op,
            &a,
            dir_source(
                &format!("l{}", target.components().count()),
                target.to_str().unwrap(),
            ),
        );
        let f = s.run_backup(&op, &a, &src["id"]);
        assert_eq!(f["status"], "failed", "{f}");
        let err = f["error"].as_str().unwrap();
        assert!(err.contains("symbolic link"), "{err}");
        assert_eq!(f["error_kind"], "permanent", "{f}");
    }
    // the tree with a symlink inside: the link is kept as a link
    let www = s.create_source(
        &op,
        &a,
        dir_source("www", root.join("www").to_str().unwrap()),
    );
    let done = s.run_backup(&op, &a, &www["id"]);
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["counts"]["files"], 1, "{done}");
    // a directory swapped for a symlink after it was defined
    fs::create_dir_all(root.join("swap/d")).unwrap();
    let swap = s.create_source(
        &op,
        &a,
        dir_source("swap", root.join("swap/d").to_str().unwrap()),
    );
    fs::remove_dir(root.join("swap/d")).unwrap();
    fs::remove_dir(root.join("swap")).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("swap")).unwrap();
    fs::create_dir_all(outside.join("d")).unwrap();
    fs::write(outside.join("d/stolen.txt"), "SECRET-OUTSIDE").unwrap();
    let f = s.run_backup(&op, &a, &swap["id"]);
    assert_eq!(f["status"], "failed", "{f}");
    assert!(
        f["error"].as_str().unwrap().contains("symbolic link"),
        "{f}"
    );
}

#[test]
fn restore_targets_stay_inside_the_tenants_roots() {
    let (dir, s, admin, a, op) = server_with_tenant_a(&[]);
    let data = dir.path().join("data");
    let b = s.create_tenant(&admin, "b");
    let root_a = dir.path().join("a");
    let root_b = dir.path().join("b");
    fs::create_dir_all(root_a.join("site")).unwrap();
    fs::create_dir_all(&root_b).unwrap();
    fs::write(root_a.join("site/f.txt"), "content of a").unwrap();
    s.set_policy(
        &admin,
        &a,
        json!({"directory_roots": [root_a.to_str().unwrap()]}),
    );
    let src = s.create_source(
        &op,
        &a,
        dir_source("site", root_a.join("site").to_str().unwrap()),
    );
    let backup = s.run_backup(&op, &a, &src["id"]);
    assert_eq!(backup["status"], "done", "{backup}");
    let restore = |target: Option<&str>| {
        let body = match target {
            Some(t) => json!({ "target": t }),
            None => json!({}),
        };
        s.request(
            "POST",
            &format!("/api/v1/backups/{}/restore", backup["id"].as_str().unwrap()),
            Some(&op),
            Some(&body),
        )
    };
    for bad in [
        root_b.to_str().unwrap().to_string(),
        data.to_str().unwrap().to_string(),
        format!("{}/restores/x", data.display()),
        "/x/../y".to_string(),
        format!("{}/../b", root_a.display()),
        "/etc".to_string(),
    ] {
        assert_refused(&restore(Some(&bad)), &bad);
    }
    let _ = b;
    let wait_restore = |id: &str| s.wait_restore(id, &op);
    // into a new directory beneath the root
    let new_target = root_a.join("restored");
    let r = restore(Some(new_target.to_str().unwrap()));
    assert_eq!(r.status, 202, "{}", r.text);
    let done = wait_restore(r.json()["id"].as_str().unwrap());
    assert_eq!(done["status"], "done", "{done}");
    let inside = new_target.join(root_a.join("site/f.txt").strip_prefix("/").unwrap());
    assert_eq!(fs::read_to_string(inside).unwrap(), "content of a");
    // in place ("/"): the operator's right for its own source
    fs::write(root_a.join("site/f.txt"), "damaged").unwrap();
    let r = restore(Some("/"));
    assert_eq!(r.status, 202, "{}", r.text);
    let done = wait_restore(r.json()["id"].as_str().unwrap());
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(
        fs::read_to_string(root_a.join("site/f.txt")).unwrap(),
        "content of a"
    );
    // the server's default target
    let r = restore(None);
    assert_eq!(r.status, 202, "{}", r.text);
    let done = wait_restore(r.json()["id"].as_str().unwrap());
    assert_eq!(done["status"], "done", "{done}");
    assert!(
        done["target"]
            .as_str()
            .unwrap()
            .starts_with(data.to_str().unwrap())
    );
    // a restore into a symlinked parent inside the root: refused when the
    // job starts, nothing written outside
    std::os::unix::fs::symlink(&root_b, root_a.join("to-b")).unwrap();
    let r = restore(Some(root_a.join("to-b/x").to_str().unwrap()));
    assert_eq!(r.status, 202, "{}", r.text);
    let done = wait_restore(r.json()["id"].as_str().unwrap());
    assert_eq!(done["status"], "failed", "{done}");
    assert!(
        done["error"].as_str().unwrap().contains("symbolic link"),
        "{done}"
    );
    assert!(!root_b.join("x").exists());
}

/// A fake PostgreSQL server on loopback that asks every client for a
/// cleartext password and records what it is sent.
struct FakePostgres {
    port: u16,
    passwords: Arc<Mutex<Vec<String>>>,
    connections: Arc<Mutex<u32>>,
}

impl FakePostgres {
    fn start() -> FakePostgres {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let passwords = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(Mutex::new(0));
        let (pw, conns) = (passwords.clone(), connections.clone());
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(mut c) = c else { continue };
                *conns.lock().unwrap() += 1;
                let pw = pw.clone();
                std::thread::spawn(move || -> std::io::Result<()> {
                    loop {
                        let mut head = [0u8; 8];
                        c.read_exact(&mut head)?;
                        let len = u32::from_be_bytes(head[..4].try_into().unwrap()) as usize;
                        let code = u32::from_be_bytes(head[4..].try_into().unwrap());
                        let mut rest = vec![0u8; len.saturating_sub(8)];
                        c.read_exact(&mut rest)?;
                        if code == 80877103 || code == 80877104 {
                            c.write_all(b"N")?; // no SSL, no GSS
                            continue;
                        }
                        break;
                    }
                    // AuthenticationCleartextPassword
                    c.write_all(&[b'R', 0, 0, 0, 8, 0, 0, 0, 3])?;
                    let mut t = [0u8; 5];
                    c.read_exact(&mut t)?;
                    let len = u32::from_be_bytes(t[1..].try_into().unwrap()) as usize;
                    let mut body = vec![0u8; len - 4];
                    c.read_exact(&mut body)?;
                    let text = String::from_utf8_lossy(&body)
                        .trim_end_matches('\0')
                        .to_string();
                    pw.lock().unwrap().push(text);
                    let msg = b"SFATAL\0C28P01\0Mpassword authentication failed\0\0";
                    let mut e = vec![b'E'];
                    e.extend_from_slice(&((msg.len() + 4) as u32).to_be_bytes());
                    e.extend_from_slice(msg);
                    c.write_all(&e)
                });
            }
        });
        FakePostgres {
            port,
            passwords,
            connections,
        }
    }
}

#[test]
fn credentials_follow_their_target_and_the_servers_own_never_leave() {
    let dir = tempfile::tempdir().unwrap();
    // the server's own PostgreSQL password, in its environment and its
    // ~/.pgpass: a tenant's source must never be sent either
    let home = dir.path().join("home");
    fs::create_dir_all(&home).unwrap();
    fs::write(home.join(".pgpass"), "*:*:*:*:SERVER-PGPASS-SECRET\n").unwrap();
    fs::set_permissions(home.join(".pgpass"), fs::Permissions::from_mode(0o600)).unwrap();
    let s = Server::start(
        &dir.path().join("data"),
        &[
            ("HOLDFAST_MAX_ATTEMPTS", "1"),
            ("PGPASSWORD", "SERVER-ENV-SECRET"),
            ("HOME", home.to_str().unwrap()),
        ],
    );
    let admin = s.admin.clone().unwrap();
    let a = s.create_tenant(&admin, "a");
    let op = operator(&s, &admin, &a);
    let real = FakePostgres::start();
    let evil = FakePostgres::start();
    s.set_policy(&admin,
        &a,
        json!({"database_hosts": [format!("127.0.0.1:{}", real.port), format!("127.0.0.1:{}", evil.port), "*"]}),
    );
    // an operator's source without credentials: no password reaches the
    // server it names (neither PGPASSWORD nor ~/.pgpass of the server)
    let src = s.create_source(
        &op,
        &a,
        json!({"name": "db", "kind": "postgres", "schedule": null,
               "target": format!("postgres://app@127.0.0.1:{}/shop", evil.port)}),
    );
    let f = s.run_backup(&op, &a, &src["id"]);
    assert_eq!(f["status"], "failed", "{f}");
    assert!(*evil.connections.lock().unwrap() >= 1, "the tool connected");
    assert!(
        evil.passwords.lock().unwrap().is_empty(),
        "a password was sent: {:?}",
        evil.passwords.lock().unwrap()
    );

    // an admin's source with stored credentials; the operator moves it
    let admin_src = s.create_source(
        &admin,
        &a,
        json!({"name": "shop", "kind": "postgres", "schedule": null,
               "target": format!("postgres://app@127.0.0.1:{}/shop", real.port),
               "credentials": "ADMIN-STORED-SECRET"}),
    );
    assert_eq!(admin_src["defined_by"], "admin");
    assert_eq!(admin_src["has_credentials"], true);
    let id = admin_src["id"].as_str().unwrap();
    let moved = s
        .patch_source(
            &op,
            &a,
            id,
            json!({"target": format!("postgres://app@127.0.0.1:{}/shop", evil.port)}),
        )
        .expect(200);
    assert_eq!(moved["has_credentials"], false, "{moved}");
    assert_eq!(moved["defined_by"], "operator", "{moved}");
    let f = s.run_backup(&op, &a, id);
    assert_eq!(f["status"], "failed", "{f}");
    assert!(
        evil.passwords.lock().unwrap().is_empty(),
        "{:?}",
        evil.passwords.lock().unwrap()
    );
    // the audit row names the old and the new target
    let rows = audit_rows(&s, &admin, "source_updated");
    let last = rows.last().unwrap();
    let m = &last["metadata"];
    assert!(
        m["old_target"]
            .as_str()
            .unwrap()
            .contains(&real.port.to_string()),
        "{m}"
    );
    assert!(
        m["new_target"]
            .as_str()
            .unwrap()
            .contains(&evil.port.to_string()),
        "{m}"
    );
    assert!(
        m["changed"].to_string().contains("credentials_dropped"),
        "{m}"
    );

    // a name that resolves to loopback through `*` only: refused before
    // any connection
    let before = *real.connections.lock().unwrap() + *evil.connections.lock().unwrap();
    let mut p = json!({"database_hosts": ["*"]});
    s.set_policy(&admin, &a, p.take());
    let lo = s.create_source(
        &op,
        &a,
        json!({"name": "lo", "kind": "postgres", "schedule": null,
               "target": format!("postgres://app@localhost:{}/shop", evil.port)}),
    );
    let f = s.run_backup(&op, &a, &lo["id"]);
    assert_eq!(f["status"], "failed", "{f}");
    let err = f["error"].as_str().unwrap();
    assert!(
        err.contains("refused by policy") && err.contains("loopback"),
        "{err}"
    );
    let after = *real.connections.lock().unwrap() + *evil.connections.lock().unwrap();
    assert_eq!(before, after, "a connection was made");
    // a literal loopback address is refused when the source is defined
    assert_refused(
        &try_source(
            &s,
            &op,
            &a,
            json!({"name": "lo2", "kind": "postgres", "schedule": null,
                   "target": format!("postgres://app@127.0.0.1:{}/shop", evil.port)}),
        ),
        "127.0.0.1 through *",
    );
    // and so is the cloud metadata address
    assert_refused(
        &try_source(
            &s,
            &op,
            &a,
            json!({"name": "md", "kind": "jsonl", "schedule": null,
                   "target": "jsonl+http://169.254.169.254/latest/meta-data/"}),
        ),
        "metadata",
    );
    // secrets never in any answer or the log
    let all = s.request(
        "GET",
        &format!("/api/v1/tenants/{a}/sources"),
        Some(&op),
        None,
    );
    for secret in [
        "ADMIN-STORED-SECRET",
        "SERVER-ENV-SECRET",
        "SERVER-PGPASS-SECRET",
    ] {
        assert!(!all.text.contains(secret));
        assert!(
            !s.log_lines().join("\n").contains(secret),
            "{secret} in the log"
        );
    }
}

#[test]
fn event_stream_urls_redirects_and_error_bodies() {
    let (_dir, s, admin, a, op) = server_with_tenant_a(&[("HOLDFAST_MAX_ATTEMPTS", "1")]);
    let http = HttpServer::start();
    let event = |id: u32| {
        format!(
            "{{\"eventId\":\"e{id}\",\"type\":\"t\",\"occurredAt\":\"2026-01-01T00:00:00Z\",\"schemaVersion\":1}}\n"
        )
    };
    http.route(
        "/allowed/events",
        Route::Body {
            chunks: vec![(event(1) + &event(2)).into_bytes()],
            cut_after: None,
        },
    );
    http.route(
        "/allowed/redirect",
        Route::Redirect(http.url("/internal/secret")),
    );
    http.route(
        "/internal/secret",
        Route::Body {
            chunks: vec![event(99).into_bytes()],
            cut_after: None,
        },
    );
    http.route(
        "/allowed/broken",
        Route::Status(500, "MARKER-INTERNAL-TOKEN-7f3a".into()),
    );
    let src = |name: &str, path: &str| {
        json!({"name": name, "kind": "jsonl", "schedule": null,
               "target": format!("jsonl+{}", http.url(path))})
    };
    // nothing allowed by default, then only under the prefix
    assert_refused(
        &try_source(&s, &op, &a, src("e", "/allowed/events")),
        "no policy",
    );
    s.set_policy(&admin, &a, json!({"url_prefixes": [http.url("/allowed/")]}));
    assert_refused(
        &try_source(&s, &op, &a, src("i", "/internal/secret")),
        "outside prefix",
    );
    let ok = s.create_source(&op, &a, src("e", "/allowed/events"));
    let b = s.run_backup(&op, &a, &ok["id"]);
    assert_eq!(b["status"], "done", "{b}");
    // a redirect off the prefix is not followed
    let r = s.create_source(&op, &a, src("r", "/allowed/redirect"));
    let f = s.run_backup(&op, &a, &r["id"]);
    assert_eq!(f["status"], "failed", "{f}");
    assert!(
        f["error"]
            .as_str()
            .unwrap()
            .contains("redirects are not followed"),
        "{f}"
    );
    assert!(
        !http
            .state
            .lock()
            .unwrap()
            .gets
            .iter()
            .any(|g| g == "/internal/secret"),
        "the redirect was followed"
    );
    // what the server answers stays in the server's log
    let e = s.create_source(&op, &a, src("b", "/allowed/broken"));
    let f = s.run_backup(&op, &a, &e["id"]);
    assert_eq!(f["status"], "failed", "{f}");
    let err = f["error"].as_str().unwrap();
    assert!(err.contains("HTTP 500"), "{err}");
    let list = s.request(
        "GET",
        &format!("/api/v1/tenants/{a}/backups"),
        Some(&op),
        None,
    );
    for text in [f.to_string(), list.text] {
        assert!(!text.contains("MARKER-INTERNAL-TOKEN"), "{text}");
    }
    assert!(
        s.log_lines()
            .iter()
            .any(|l| l.contains("MARKER-INTERNAL-TOKEN")),
        "the detail is kept in the server's log"
    );
}

#[test]
fn the_policy_is_set_by_admins_and_audited() {
    let (dir, s, admin, a, op) = server_with_tenant_a(&[]);
    let b = s.create_tenant(&admin, "b");
    let path = format!("/api/v1/tenants/{a}/policy");
    let p = json!({"directory_roots": ["/srv/a"], "database_hosts": ["db.internal:5432"],
                   "url_prefixes": ["https://api.example.com/events/"], "commands": []});
    // the operator reads it, never writes it
    assert_eq!(s.get(&path, &op)["directory_roots"], json!([]));
    let r = s.request("PUT", &path, Some(&op), Some(&p));
    assert_eq!(r.status, 403, "{}", r.text);
    // another tenant's policy is not found
    let r = s.request(
        "GET",
        &format!("/api/v1/tenants/{b}/policy"),
        Some(&op),
        None,
    );
    assert_eq!(r.status, 404, "{}", r.text);
    // bad documents name the field
    for (bad, field) in [
        (
            json!({"directory_roots": ["relative"]}),
            "directory_roots[0]",
        ),
        (json!({"directory_roots": ["/"]}), "directory_roots[0]"),
        (json!({"database_hosts": ["bad host"]}), "database_hosts[0]"),
        (json!({"url_prefixes": ["file:///etc/"]}), "url_prefixes[0]"),
        (
            json!({"directory_roots": [dir.path().join("data").to_str().unwrap()]}),
            "directory_roots[0]",
        ),
    ] {
        let r = s.request("PUT", &path, Some(&admin), Some(&bad));
        assert_eq!(r.status, 422, "{bad}: {}", r.text);
        assert_eq!(r.json()["field"], field, "{bad}");
    }
    let r = s.request("PUT", &path, Some(&admin), Some(&json!({"rootz": []})));
    assert_eq!(r.status, 422, "{}", r.text);
    s.expect(200, "PUT", &path, Some(&admin), Some(&p));
    assert_eq!(s.get(&path, &op), p);
    let rows = audit_rows(&s, &admin, "tenant_policy_set");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["metadata"]["new"], p);
    // a new tenant's stored policy: the empty document, which allows nothing
    assert_eq!(rows[0]["metadata"]["old"], json!({}));
}

#[test]
fn a_missing_server_key_or_data_directory_stops_instead_of_starting_over() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    {
        let s = Server::start(&data, &[]);
        let admin = s.admin.clone().unwrap();
        s.create_tenant(&admin, "a");
        // private from the start: directory 0700, catalog and WAL 0600
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join("catalog.db")), 0o600);
        if data.join("catalog.db-wal").exists() {
            assert_eq!(mode(&data.join("catalog.db-wal")), 0o600);
        }
        assert_eq!(mode(&data.join("server.key")), 0o600);
    }
    // an older holdfast left them readable: the next start makes them private
    fs::set_permissions(&data, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(data.join("catalog.db"), fs::Permissions::from_mode(0o644)).unwrap();
    drop(Server::start(&data, &[]));
    assert_eq!(
        fs::metadata(&data).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert_eq!(
        fs::metadata(data.join("catalog.db"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    fs::remove_file(data.join("server.key")).unwrap();
    let run = |args: &[&str], data: &Path| {
        let mut c = Command::new(common::holdfast_bin());
        common::clean(&mut c);
        c.args(args).arg("--data-dir").arg(data);
        c.output().unwrap()
    };
    let out = run(&["serve", "--listen", "127.0.0.1:0"], &data);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("server key") && err.contains("missing"),
        "{err}"
    );
    assert!(err.contains("Restore server.key"), "{err}");
    assert!(!data.join("server.key").exists(), "a new key was made");
    // console commands on a missing key or a missing data directory
    for args in [
        &["audit", "verify"][..],
        &["token", "list"],
        &["tenant", "export-key", "a"],
    ] {
        let out = run(args, &data);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("server key") && err.contains("missing"),
            "{args:?}: {err}"
        );
        let nowhere = dir.path().join("nowhere");
        let out = run(args, &nowhere);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("does not exist"), "{args:?}: {err}");
        assert!(!nowhere.exists(), "{args:?} created the directory");
    }
}

#[test]
fn half_sent_requests_are_closed_within_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(
        &dir.path().join("data"),
        &[("HOLDFAST_HEADER_TIMEOUT_SECONDS", "1")],
    );
    let addr = s.base.trim_start_matches("http://").to_string();
    let mut held = Vec::new();
    for _ in 0..100 {
        let mut c = std::net::TcpStream::connect(&addr).unwrap();
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        held.push(c);
    }
    // the server still answers others meanwhile
    assert_eq!(s.request("GET", "/healthz", None, None).status, 200);
    let started = std::time::Instant::now();
    for mut c in held {
        c.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let mut buf = Vec::new();
        // closed by the server (an error answer or none, then EOF)
        let r = c.read_to_end(&mut buf);
        assert!(r.is_ok(), "not closed: {r:?}");
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "held open for {:?}",
        started.elapsed()
    );
}

#[test]
fn every_error_is_a_problem_and_failed_logins_are_limited_and_logged() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(
        &dir.path().join("data"),
        &[("HOLDFAST_AUTH_FAILURES_PER_MINUTE", "3")],
    );
    let admin = s.admin.clone().unwrap();
    // 404 of an unknown path, 405, 415, 413: all application/problem+json
    let client = reqwest::blocking::Client::new();
    let cases = [
        (
            client.get(format!("{}/no/such/path", s.base)),
            404,
            "not_found",
        ),
        (
            client.delete(format!("{}/api/v1/tenants", s.base)),
            405,
            "method_not_allowed",
        ),
        (
            client
                .post(format!("{}/api/v1/tenants", s.base))
                .body(r#"{"name":"x"}"#),
            415,
            "unsupported_media_type",
        ),
        (
            client
                .post(format!("{}/api/v1/tenants", s.base))
                .header("Content-Type", "application/json")
                .body(format!(r#"{{"name":"{}"}}"#, "x".repeat(200_000))),
            413,
            "body_too_large",
        ),
    ];
    for (req, status, code) in cases {
        let r = req
            .header("Authorization", format!("Bearer {admin}"))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{code}");
        let ct = r.headers()["content-type"].to_str().unwrap().to_string();
        assert_eq!(ct, "application/problem+json", "{code}");
        let j: Value = serde_json::from_str(&r.text().unwrap()).unwrap();
        assert_eq!(j["code"], code, "{j}");
        assert_eq!(j["status"], status, "{j}");
    }

    // failed authentications: logged without the token, then 429
    let bad = "hf_this-is-not-a-valid-token-9d8e7f";
    for _ in 0..3 {
        let r = s.request("GET", "/api/v1/tenants", Some(bad), None);
        assert_eq!(r.status, 401, "{}", r.text);
    }
    let r = s.request("GET", "/api/v1/tenants", Some(bad), None);
    assert_eq!(r.status, 429, "{}", r.text);
    assert_eq!(r.json()["code"], "too_many_requests");
    // from that address, even a valid token waits
    let r = reqwest::blocking::Client::new()
        .get(format!("{}/api/v1/tenants", s.base))
        .header("Authorization", format!("Bearer {admin}"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    let log = s.log_lines().join("\n");
    assert!(
        log.contains("authentication failed from 127.0.0.1"),
        "{log}"
    );
    assert!(!log.contains(bad), "the token is in the log");
}

#[test]
fn names_cannot_forge_log_lines_and_a_download_that_does_not_fit_answers_422() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &[]);
    let admin = s.admin.clone().unwrap();
    let a = s.create_tenant(&admin, "a");
    let site = dir.path().join("site");
    fs::create_dir_all(&site).unwrap();
    fs::write(site.join("f"), "x").unwrap();
    let src = s.create_source(
        &admin,
        &a,
        json!({"name": "evil\n2026-01-01T00:00:00Z FORGED LINE\u{1b}[2K", "kind": "directory",
               "target": site, "schedule": null}),
    );
    let q = s.queue_backup(&admin, &a, &src["id"]);
    let id = q["id"].as_str().unwrap().to_string();
    let b = s.wait_backup(&id, &admin);
    assert_eq!(b["status"], "done", "{b}");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let lines = s.log_lines();
    assert!(
        lines
            .iter()
            .all(|l| !l.starts_with("2026-01-01T00:00:00Z FORGED")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("evil\\n2026-01-01T00:00:00Z FORGED LINE\\u{1b}[2K")),
        "{lines:?}"
    );
    // a directory backup has no SQL: 422 naming `format`, no download audited
    let r = s.request(
        "GET",
        &format!("/api/v1/backups/{id}/file?format=sql"),
        Some(&admin),
        None,
    );
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.json()["field"], "format");
    assert!(audit_rows(&s, &admin, "backup_downloaded").is_empty());
    let r = s.request(
        "GET",
        &format!("/api/v1/backups/{id}/file?format=tar"),
        Some(&admin),
        None,
    );
    assert_eq!(r.status, 200);
    assert_eq!(audit_rows(&s, &admin, "backup_downloaded").len(), 1);
}

#[test]
fn tls_serves_https_with_the_configured_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .args(["-days", "2", "-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert_ok(&out);
    let s = Server::start(
        &dir.path().join("data"),
        &[
            ("HOLDFAST_TLS_CERT", cert.to_str().unwrap()),
            ("HOLDFAST_TLS_KEY", key.to_str().unwrap()),
        ],
    );
    assert!(s.base.starts_with("https://"), "{}", s.base);
    assert_eq!(s.request("GET", "/healthz", None, None).status, 200);
    let admin = s.admin.clone().unwrap();
    s.create_tenant(&admin, "over-tls");
    // plain HTTP to the TLS port gets no answer
    let plain = s.base.replace("https://", "http://");
    assert!(reqwest::blocking::get(format!("{plain}/healthz")).is_err());
    // a key that does not fit its certificate stops the start, naming it
    let other = dir.path().join("other.pem");
    let out = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
        ])
        .arg(&other)
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut c = Command::new(common::holdfast_bin());
    common::clean(&mut c);
    let out = c
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data2"))
        .env("HOLDFAST_TLS_CERT", &cert)
        .env("HOLDFAST_TLS_KEY", &other)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tls"), "{err}");
}

/// `holdfast audit verify` on `data`: (success, its output).
fn audit_verify(data: &Path) -> (bool, String) {
    let mut cmd = Command::new(common::holdfast_bin());
    common::clean(&mut cmd);
    let out = cmd
        .args(["audit", "verify", "--data-dir"])
        .arg(data)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn the_audit_log_cannot_lose_its_tail_or_be_rechained_unseen() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let site = dir.path().join("site");
    fs::create_dir_all(&site).unwrap();
    fs::write(site.join("f"), "x").unwrap();
    {
        let s = Server::start(&data, &[]);
        let admin = s.admin.clone().unwrap();
        let a = s.create_tenant(&admin, "a");
        let src = s.create_source(&admin, &a, dir_source("site", site.to_str().unwrap()));
        let q = s.queue_backup(&admin, &a, &src["id"]);
        assert_eq!(
            s.wait_backup(q["id"].as_str().unwrap(), &admin)["status"],
            "done"
        );
        // more events after the backup (its snapshot anchors an earlier head)
        for i in 0..3 {
            s.create_source(
                &admin,
                &a,
                dir_source(&format!("more{i}"), site.to_str().unwrap()),
            );
        }
        // every append is in the server's log too
        assert!(s.log_lines().iter().any(|l| l.contains("audit head ")));
    }
    let (ok, text) = audit_verify(&data);
    assert!(ok, "{text}");
    assert!(text.contains("anchors outside the catalog agree"), "{text}");
    let anchor: Value =
        serde_json::from_str(&fs::read_to_string(data.join("audit-anchor.json")).unwrap()).unwrap();
    let db = rusqlite::Connection::open(data.join("catalog.db")).unwrap();
    let last: i64 = db
        .query_row("SELECT MAX(seq) FROM audit_log", [], |r| r.get(0))
        .unwrap();
    assert_eq!(anchor["seq"], last, "{anchor}");

    // the newest two rows deleted: every link still holds, the anchor not
    db.execute_batch(&format!(
        "CREATE TABLE saved AS SELECT * FROM audit_log WHERE seq > {};
         DELETE FROM audit_log WHERE seq > {};",
        last - 2,
        last - 2
    ))
    .unwrap();
    let (ok, text) = audit_verify(&data);
    assert!(!ok, "{text}");
    assert!(
        text.contains(&format!("ends at row {}", last - 2))
            && text.contains("deleted from the end"),
        "{text}"
    );
    db.execute_batch("INSERT INTO audit_log SELECT * FROM saved; DROP TABLE saved;")
        .unwrap();
    assert!(audit_verify(&data).0);

    // re-chained with the server key: row 1's actor changed and every hash
    // recomputed — a valid chain, which the anchors refuse
    let key =
        holdfast_catalog::ServerKey::parse(&fs::read_to_string(data.join("server.key")).unwrap())
            .unwrap()
            .audit_key();
    let mut rows: Vec<holdfast_catalog::audit::AuditRow> = Vec::new();
    {
        let mut st = db
            .prepare("SELECT seq, time, actor_token_id, actor_label, tenant_id, event, subject, metadata, prev_hash, hash FROM audit_log ORDER BY seq")
            .unwrap();
        let it = st
            .query_map([], |r| {
                Ok(holdfast_catalog::audit::AuditRow {
                    seq: r.get(0)?,
                    time: r.get(1)?,
                    actor: holdfast_catalog::Actor {
                        token_id: r.get(2)?,
                        label: r.get(3)?,
                    },
                    tenant_id: r.get(4)?,
                    event: r.get(5)?,
                    subject: r.get(6)?,
                    metadata_text: r.get(7)?,
                    prev_hash: r.get(8)?,
                    hash: r.get(9)?,
                })
            })
            .unwrap();
        for r in it {
            rows.push(r.unwrap());
        }
    }
    rows[0].actor.label = "someone else".into();
    let mut prev = holdfast_catalog::chain::GENESIS.to_string();
    for r in &mut rows {
        r.prev_hash = prev.clone();
        r.hash = holdfast_catalog::chain::row_hash(&key, &prev, r);
        prev = r.hash.clone();
        db.execute(
            "UPDATE audit_log SET actor_label = ?1, prev_hash = ?2, hash = ?3 WHERE seq = ?4",
            rusqlite::params![r.actor.label, r.prev_hash, r.hash, r.seq],
        )
        .unwrap();
    }
    let (ok, text) = audit_verify(&data);
    assert!(!ok, "{text}");
    assert!(
        text.contains("anchor file") && text.contains("rewritten"),
        "{text}"
    );
    // without the anchor file, the tenant's snapshot still holds a head
    fs::remove_file(data.join("audit-anchor.json")).unwrap();
    let (ok, text) = audit_verify(&data);
    assert!(!ok, "{text}");
    assert!(
        text.contains("snapshot") && text.contains("rewritten"),
        "{text}"
    );
}

#[test]
fn quotas_answer_403_naming_what_is_over() {
    let (dir, s, admin, a, op) = server_with_tenant_a(&[]);
    let root = dir.path().join("root");
    fs::create_dir_all(root.join("site")).unwrap();
    fs::write(root.join("site/f"), "x").unwrap();
    let policy = |bytes: u64| {
        json!({"directory_roots": [root], "max_sources": 1, "min_schedule_minutes": 60,
               "max_repository_bytes": bytes})
    };
    s.set_policy(&admin, &a, policy(1));
    let body = |name: &str, schedule: &str| json!({"name": name, "kind": "directory", "target": root.join("site"), "schedule": schedule});
    let quota = |r: common::service::Reply, field: &str| {
        assert_eq!(r.status, 403, "{}", r.text);
        let j = r.json();
        assert_eq!(j["code"], "quota_exceeded", "{j}");
        assert_eq!(j["field"], field, "{j}");
        j["detail"].as_str().unwrap().to_string()
    };
    let d = quota(
        try_source(&s, &op, &a, body("often", "*/5 * * * *")),
        "schedule",
    );
    assert!(d.contains("5 minutes apart"), "{d}");
    let src = s.create_source(&op, &a, body("nightly", "0 3 * * *"));
    let d = quota(try_source(&s, &op, &a, body("second", "0 4 * * *")), "name");
    assert!(d.contains("quota is 1"), "{d}");
    // the repository (its config and key) already holds more than 1 byte
    let r = s.request(
        "POST",
        &format!("/api/v1/tenants/{a}/backups"),
        Some(&op),
        Some(&json!({"source_id": src["id"]})),
    );
    let d = quota(r, "source_id");
    assert!(d.contains("at or over its quota of 1"), "{d}");
    // an update to a too frequent schedule is refused as well
    let r = s.patch_source(
        &op,
        &a,
        src["id"].as_str().unwrap(),
        json!({"schedule": "*/10 * * * *"}),
    );
    quota(r, "schedule");
    s.set_policy(&admin, &a, policy(1 << 40));
    let q = s.queue_backup(&op, &a, &src["id"]);
    assert_eq!(
        s.wait_backup(q["id"].as_str().unwrap(), &op)["status"],
        "done"
    );
}

#[test]
fn as_a_dedicated_user_the_host_protects_what_the_policy_does_not_cover() {
    if !common::is_root() {
        eprintln!("not root: cannot switch to an unprivileged user; skipped");
        return;
    }
    const NOBODY: u32 = 65534;
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let data = dir.path().join("data");
    fs::create_dir(&data).unwrap();
    std::os::unix::fs::chown(&data, Some(NOBODY), Some(NOBODY)).unwrap();
    // a directory only root may read, and one the service's user may read
    let private = dir.path().join("root-only");
    fs::create_dir(&private).unwrap();
    fs::write(private.join("secret"), "root's").unwrap();
    fs::set_permissions(&private, fs::Permissions::from_mode(0o700)).unwrap();
    let public = dir.path().join("public");
    fs::create_dir(&public).unwrap();
    fs::write(public.join("page.html"), "hello").unwrap();
    let s = Server::start_as(&data, &[("HOLDFAST_MAX_ATTEMPTS", "1")], Some(NOBODY));
    let admin = s.admin.clone().unwrap();
    let a = s.create_tenant(&admin, "a");
    // the data directory the service made is its own and private
    use std::os::unix::fs::MetadataExt;
    let key = fs::metadata(data.join("server.key")).unwrap();
    assert_eq!((key.uid(), key.mode() & 0o777), (NOBODY, 0o600));
    let ok = s.create_source(&admin, &a, dir_source("public", public.to_str().unwrap()));
    let b = s.run_backup(&admin, &a, &ok["id"]);
    assert_eq!(b["status"], "done", "{b}");
    assert_eq!(b["counts"]["files"], 1, "{b}");
    // even an admin's source of a root-only tree reads nothing of it
    let no = s.create_source(&admin, &a, dir_source("private", private.to_str().unwrap()));
    let b = s.run_backup(&admin, &a, &no["id"]);
    assert_eq!(b["counts"]["files"], 0, "{b}");
    assert!(b.to_string().contains("Permission denied"), "{b}");
}

#[test]
fn queries_cannot_run_client_commands_or_attach_files() {
    let (dir, s, admin, a, op) = server_with_tenant_a(&[]);
    let root = dir.path().join("root");
    fs::create_dir_all(&root).unwrap();
    let db = root.join("app.db");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("CREATE TABLE t (x int); INSERT INTO t VALUES (1);")
        .unwrap();
    s.set_policy(
        &admin,
        &a,
        json!({"directory_roots": [root], "database_hosts": ["*"]}),
    );
    let catalog = dir.path().join("data/catalog.db");
    for (kind, target, query) in [
        // psql runs backslash commands from its script input: `\!` is a shell
        (
            "postgres",
            "postgres://app@db.example.com/shop".to_string(),
            "SELECT 1 \\! cat /etc/shadow".to_string(),
        ),
        (
            "mysql",
            "mysql://app@db.example.com/shop".to_string(),
            "SELECT 1\nsystem id".to_string(),
        ),
        // SQLite: the snapshot's transaction ended, another file attached
        (
            "sqlite",
            format!("sqlite://{}", db.display()),
            "COMMIT".to_string(),
        ),
        (
            "sqlite",
            format!("sqlite://{}", db.display()),
            format!("ATTACH '{}' AS c", catalog.display()),
        ),
        (
            "sqlite",
            format!("sqlite://{}", db.display()),
            "SELECT 1; ATTACH 'x' AS y".to_string(),
        ),
    ] {
        for who in [&op, &admin] {
            let r = try_source(
                &s,
                who,
                &a,
                json!({"name": "q", "kind": kind, "target": target, "schedule": null,
                       "options": {"mode": "tables", "queries": {"q": query}}}),
            );
            assert_eq!(r.status, 422, "{kind} {query:?}: {}", r.text);
            assert_eq!(r.json()["field"], "options.queries.q", "{}", r.text);
        }
    }
    // a plain SELECT is fine
    s.create_source(
        &op,
        &a,
        json!({"name": "ok", "kind": "sqlite", "target": format!("sqlite://{}", db.display()),
               "schedule": null, "options": {"mode": "tables", "queries": {"n": "SELECT count(*) FROM t ORDER BY 1"}}}),
    );
}

#[test]
fn an_operator_reshaping_an_admin_source_loses_its_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), &[]);
    let (admin, a, op) = tenant_a(&s, json!({"database_hosts": ["db.internal:5432"]}));
    let src = s.create_source(
        &admin,
        &a,
        json!({"name": "shop", "kind": "postgres", "schedule": null,
               "target": "postgres://app@db.internal:5432/shop",
               "options": {"mode": "tables", "tenant_column": "org", "tenant_value": "7"},
               "credentials": "ADMIN-SECRET"}),
    );
    let id = src["id"].as_str().unwrap();
    // a schedule change keeps the admin's trust and password
    let kept = s
        .patch_source(&op, &a, id, json!({"schedule": "0 4 * * *"}))
        .expect(200);
    assert_eq!(
        (
            kept["defined_by"].as_str(),
            kept["has_credentials"].as_bool()
        ),
        (Some("admin"), Some(true))
    );
    // another tenant's rows under the admin's password: not with it
    let moved = s
        .patch_source(
            &op,
            &a,
            id,
            json!({"options": {"mode": "tables", "tenant_column": "org", "tenant_value": "8"}}),
        )
        .expect(200);
    assert_eq!(moved["defined_by"], "operator", "{moved}");
    assert_eq!(moved["has_credentials"], false, "{moved}");
}

#[test]
fn default_and_in_place_restores_keep_to_the_policy() {
    let pg = common::servers::Postgres::shared();
    pg.create_db("sec_restore");
    pg.psql(
        "sec_restore",
        "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 10);",
    );
    let (dir, s, admin, a, op) = server_with_tenant_a(&[("HOLDFAST_MAX_ATTEMPTS", "1")]);
    let root = dir.path().join("root");
    fs::create_dir_all(root.join("site")).unwrap();
    fs::create_dir_all(root.join("other")).unwrap();
    fs::write(root.join("site/f"), "site").unwrap();
    s.set_policy(
        &admin,
        &a,
        json!({"directory_roots": [root], "database_hosts": [format!("127.0.0.1:{}", pg.port)]}),
    );
    // an operator's database source on an allowed (named) loopback host
    let db = s.create_source(
        &op,
        &a,
        json!({"name": "db", "kind": "postgres", "schedule": null,
               "target": pg.url("sec_restore"), "credentials": pg.password}),
    );
    let done = s.run_backup(&op, &a, &db["id"]);
    assert_eq!(done["status"], "done", "{done}");
    // the admin narrows the policy to public hosts: the server's default
    // target beside the source (a new database on loopback) is refused too
    s.set_policy(
        &admin,
        &a,
        json!({"directory_roots": [root], "database_hosts": ["*"]}),
    );
    let r = s.request(
        "POST",
        &format!("/api/v1/backups/{}/restore", done["id"].as_str().unwrap()),
        Some(&op),
        None,
    );
    assert_refused(&r, "default database target on loopback");

    // in place, a snapshot taken under an earlier target is refused
    let site = s.create_source(
        &admin,
        &a,
        dir_source("site", root.join("site").to_str().unwrap()),
    );
    let old = s.run_backup(&admin, &a, &site["id"]);
    assert_eq!(old["status"], "done", "{old}");
    s.patch_source(
        &op,
        &a,
        site["id"].as_str().unwrap(),
        json!({"target": root.join("other")}),
    )
    .expect(200);
    let r = s.request(
        "POST",
        &format!("/api/v1/backups/{}/restore", old["id"].as_str().unwrap()),
        Some(&op),
        Some(&json!({"target": "/"})),
    );
    assert_eq!(r.status, 202, "{}", r.text);
    let rid = r.json()["id"].as_str().unwrap().to_string();
    let done = s.wait_restore(&rid, &op);
    assert_eq!(done["status"], "failed", "{done}");
    assert!(
        done["error"]
            .as_str()
            .unwrap()
            .contains("outside the source's current target"),
        "{done}"
    );
}

#[test]
fn sqlite_jobs_run_sandboxed_and_a_swapped_parent_is_refused() {
    let (dir, s, admin, a, op) = server_with_tenant_a(&[("HOLDFAST_MAX_ATTEMPTS", "1")]);
    let data = dir.path().join("data");
    let root = dir.path().join("root");
    fs::create_dir_all(root.join("db")).unwrap();
    let db = root.join("db/app.db");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("CREATE TABLE t (x int); INSERT INTO t SELECT 1; INSERT INTO t SELECT 2;")
        .unwrap();
    s.set_policy(&admin, &a, json!({"directory_roots": [root]}));
    let src = s.create_source(
        &op,
        &a,
        json!({"name": "app", "kind": "sqlite", "schedule": null,
               "target": format!("sqlite://{}", db.display())}),
    );
    let b = s.run_backup(&op, &a, &src["id"]);
    assert_eq!(b["status"], "done", "{b}");
    let restore = |target: &Path| {
        let r = s.request(
            "POST",
            &format!("/api/v1/backups/{}/restore", b["id"].as_str().unwrap()),
            Some(&op),
            Some(&json!({"target": format!("sqlite://{}", target.display())})),
        );
        assert_eq!(r.status, 202, "{}", r.text);
        let rid = r.json()["id"].as_str().unwrap().to_string();
        s.wait_restore(&rid, &op)
    };
    let d = restore(&root.join("db/restored.db"));
    assert_eq!(d["status"], "done", "{d}");
    let n: i64 = rusqlite::Connection::open(root.join("db/restored.db"))
        .unwrap()
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 2);
    // a parent swapped for a symlink to the data directory: refused, and
    // the catalog untouched
    let before = fs::read(data.join("catalog.db")).unwrap().len();
    std::os::unix::fs::symlink(&data, root.join("evil")).unwrap();
    let d = restore(&root.join("evil/catalog.db"));
    assert_eq!(d["status"], "failed", "{d}");
    assert!(
        d["error"].as_str().unwrap().contains("symbolic link"),
        "{d}"
    );
    assert!(fs::read(data.join("catalog.db")).unwrap().len() >= before);
    assert!(!data.join("catalog.db.holdfast-partial").exists());
}

#[test]
fn a_mariadb_source_uses_its_own_password_and_never_the_servers() {
    let maria = common::servers::MariaDb::shared();
    maria.create_db("sec_maria");
    maria.sql(
        "sec_maria",
        "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20)); \
         INSERT INTO t VALUES (1, 'one'), (2, 'two'), (3, 'three');",
    );
    let dir = tempfile::tempdir().unwrap();
    // the server's own environment and ~/.my.cnf hold the right password:
    // a tenant's source without credentials must still not get it
    let home = dir.path().join("home");
    fs::create_dir_all(&home).unwrap();
    fs::write(
        home.join(".my.cnf"),
        format!("[client]\npassword={}\n", maria.password),
    )
    .unwrap();
    let s = Server::start(
        &dir.path().join("data"),
        &[
            ("HOLDFAST_MAX_ATTEMPTS", "1"),
            ("MYSQL_PWD", maria.password.as_str()),
            ("HOME", home.to_str().unwrap()),
        ],
    );
    let (_admin, a, op) = tenant_a(
        &s,
        json!({"database_hosts": [format!("127.0.0.1:{}", maria.port)]}),
    );
    let without = s.create_source(
        &op,
        &a,
        json!({"name": "no-pw", "kind": "mysql", "schedule": null,
               "target": maria.url("sec_maria")}),
    );
    let f = s.run_backup(&op, &a, &without["id"]);
    assert_eq!(f["status"], "failed", "the server's password was used: {f}");
    assert_eq!(f["error_kind"], "permanent", "{f}");
    // with its own credentials: backed up through holdfast's option file
    // only, and restored beside it on the same server
    let with = s.create_source(
        &op,
        &a,
        json!({"name": "shop", "kind": "mysql", "schedule": null,
               "target": maria.url("sec_maria"), "credentials": maria.password}),
    );
    let b = s.run_backup(&op, &a, &with["id"]);
    assert_eq!(b["status"], "done", "{b}");
    let r = s.queue_restore(&op, b["id"].as_str().unwrap(), None);
    let done = s.wait_restore(r["id"].as_str().unwrap(), &op);
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["verification"]["rows"], 3, "{done}");
    let log = s.log_lines().join("\n");
    assert!(!log.contains(&maria.password), "the password is in the log");
}

/// A restore drops and recreates a database only when asked for
/// `in_place`, and then only the source's own database: naming the source's
/// address as a target leaves it alone, `in_place` with a target or on a
/// kind that has no "over itself" is refused, and the audit row says so.
#[test]
fn only_an_in_place_restore_replaces_the_sources_database() {
    let pg = common::servers::Postgres::shared();
    pg.create_db("sec_in_place");
    pg.psql(
        "sec_in_place",
        "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 10);",
    );
    let dir = tempfile::tempdir().unwrap();
    let config = common::service::commands_config(dir.path(), &[("hello", "echo hello")]);
    let s = Server::start(
        &dir.path().join("data"),
        &[
            ("HOLDFAST_MAX_ATTEMPTS", "1"),
            ("HOLDFAST_CONFIG", config.to_str().unwrap()),
        ],
    );
    let (admin, a, op) = tenant_a(
        &s,
        json!({"database_hosts": [format!("127.0.0.1:{}", pg.port)], "commands": ["hello"]}),
    );
    let db = s.create_source(
        &op,
        &a,
        json!({"name": "db", "kind": "postgres", "schedule": null,
               "target": pg.url("sec_in_place"), "credentials": pg.password}),
    );
    let backup = s.run_backup(&op, &a, &db["id"]);
    assert_eq!(backup["status"], "done", "{backup}");
    let bid = backup["id"].as_str().unwrap().to_string();
    pg.psql(
        "sec_in_place",
        "DELETE FROM t WHERE id > 5; INSERT INTO t VALUES (99);",
    );
    let rows = || pg.psql("sec_in_place", "SELECT count(*), max(id) FROM t");
    assert_eq!(rows(), "6|99\n");
    let restore = |body: Value| {
        s.request(
            "POST",
            &format!("/api/v1/backups/{bid}/restore"),
            Some(&op),
            Some(&body),
        )
    };

    // the source's own address as a plain target: not empty, left alone
    let r = restore(json!({"target": pg.url("sec_in_place")}));
    assert_eq!(r.status, 202, "{}", r.text);
    let failed = s.wait_restore(r.json()["id"].as_str().unwrap(), &op);
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(
        failed["error"].as_str().unwrap().contains("is not empty"),
        "{failed}"
    );
    assert_eq!(rows(), "6|99\n", "a plain target never drops a database");

    // in_place with a target of its own, or on a command source: refused
    let r = restore(json!({"in_place": true, "target": pg.url("elsewhere")}));
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.json()["field"], "in_place", "{}", r.text);
    let cmd = s.create_source(
        &op,
        &a,
        json!({"name": "cmd", "kind": "command", "target": "hello", "schedule": null}),
    );
    let cmd_backup = s.run_backup(&op, &a, &cmd["id"]);
    let r = s.request(
        "POST",
        &format!(
            "/api/v1/backups/{}/restore",
            cmd_backup["id"].as_str().unwrap()
        ),
        Some(&op),
        Some(&json!({"in_place": true})),
    );
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(
        r.text.contains("cannot be restored over itself"),
        "{}",
        r.text
    );

    // in place: the database is as it was at the backup, row counts proven
    let r = restore(json!({"in_place": true}));
    assert_eq!(r.status, 202, "{}", r.text);
    let rid = r.json()["id"].as_str().unwrap().to_string();
    let done = s.wait_restore(&rid, &op);
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["in_place"], true, "{done}");
    assert_eq!(
        done["verification"]["row_counts_match_manifest"], true,
        "{done}"
    );
    assert_eq!(rows(), "10|10\n");
    let audit = s.get(
        &format!("/api/v1/audit?tenant={a}&event=restore_started"),
        &admin,
    );
    let ours = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["subject"] == rid.as_str())
        .unwrap_or_else(|| panic!("no audit row of {rid}: {audit}"));
    assert_eq!(ours["metadata"]["in_place"], true, "{ours}");

    // a tables-mode backup is a slice of the database: never over it, not
    // even once the source has been switched to dumps (the snapshot is
    // still a slice)
    let slice = s.create_source(
        &op,
        &a,
        json!({"name": "slice", "kind": "postgres", "schedule": null,
               "target": pg.url("sec_in_place"), "credentials": pg.password,
               "options": {"mode": "tables", "include_tables": ["t"]}}),
    );
    let sliced = s.run_backup(&op, &a, &slice["id"]);
    assert_eq!(sliced["status"], "done", "{sliced}");
    let over_slice = || {
        s.request(
            "POST",
            &format!("/api/v1/backups/{}/restore", sliced["id"].as_str().unwrap()),
            Some(&op),
            Some(&json!({"in_place": true})),
        )
    };
    let r = over_slice();
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.json()["field"], "in_place", "{}", r.text);
    s.patch_source(
        &op,
        &a,
        slice["id"].as_str().unwrap(),
        json!({"options": {}}),
    )
    .expect(200);
    let r = over_slice();
    assert_eq!(r.status, 202, "{}", r.text);
    let refused = s.wait_restore(r.json()["id"].as_str().unwrap(), &op);
    assert_eq!(refused["status"], "failed", "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("not the whole database"),
        "{refused}"
    );
    assert_eq!(rows(), "10|10\n", "the database was left alone");
}
