//! The authorization matrix, generated from the OpenAPI document the server
//! serves: every operation × {no token, admin, operator of A, viewer of A,
//! operator of B, revoked} × {A's resource, B's resource}, each cell's
//! status asserted. The rules are a table here, keyed by the operation: an
//! operation in the document without a rule fails the test, so a new
//! endpoint cannot ship without one.

mod common;

use std::collections::BTreeMap;
use std::fs;

use common::service::Server;
use serde_json::json;

/// Who may call an operation.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Least {
    Public,
    Viewer,
    Operator,
    Admin,
}

/// One operation's rule.
struct Rule {
    least: Least,
    /// Addresses one tenant's resource (404 to other tenants).
    scoped: bool,
    /// Changes state so that the next caller needs a fresh resource.
    destructive: bool,
}

fn rules() -> BTreeMap<&'static str, Rule> {
    use Least::*;
    let r = |least, scoped, destructive| Rule {
        least,
        scoped,
        destructive,
    };
    BTreeMap::from([
        ("GET /healthz", r(Public, false, false)),
        ("GET /readyz", r(Public, false, false)),
        ("GET /metrics", r(Admin, false, false)),
        ("POST /api/v1/tenants", r(Admin, false, false)),
        ("GET /api/v1/tenants", r(Viewer, false, false)),
        ("GET /api/v1/tenants/{tenant}", r(Viewer, true, false)),
        (
            "GET /api/v1/tenants/{tenant}/policy",
            r(Viewer, true, false),
        ),
        ("PUT /api/v1/tenants/{tenant}/policy", r(Admin, true, false)),
        (
            "PUT /api/v1/tenants/{tenant}/storage",
            r(Admin, true, false),
        ),
        (
            "POST /api/v1/tenants/{tenant}/sources",
            r(Operator, true, false),
        ),
        (
            "GET /api/v1/tenants/{tenant}/sources",
            r(Viewer, true, false),
        ),
        (
            "GET /api/v1/tenants/{tenant}/sources/{id}",
            r(Viewer, true, false),
        ),
        (
            "PATCH /api/v1/tenants/{tenant}/sources/{id}",
            r(Operator, true, false),
        ),
        (
            "DELETE /api/v1/tenants/{tenant}/sources/{id}",
            r(Operator, true, true),
        ),
        (
            "POST /api/v1/tenants/{tenant}/sources/{id}/drills",
            r(Operator, true, false),
        ),
        (
            "GET /api/v1/tenants/{tenant}/drills",
            r(Viewer, true, false),
        ),
        (
            "GET /api/v1/tenants/{tenant}/report",
            r(Viewer, true, false),
        ),
        (
            "GET /api/v1/tenants/{tenant}/channels",
            r(Viewer, true, false),
        ),
        (
            "POST /api/v1/tenants/{tenant}/channels",
            r(Operator, true, false),
        ),
        (
            "GET /api/v1/tenants/{tenant}/channels/{id}",
            r(Viewer, true, false),
        ),
        (
            "PATCH /api/v1/tenants/{tenant}/channels/{id}",
            r(Operator, true, false),
        ),
        (
            "DELETE /api/v1/tenants/{tenant}/channels/{id}",
            r(Operator, true, true),
        ),
        (
            "POST /api/v1/tenants/{tenant}/channels/{id}/test",
            r(Operator, true, false),
        ),
        (
            "GET /api/v1/tenants/{tenant}/channels/{id}/deliveries",
            r(Viewer, true, false),
        ),
        ("GET /api/v1/channels", r(Admin, false, false)),
        ("POST /api/v1/channels", r(Admin, false, false)),
        ("GET /api/v1/channels/{id}", r(Admin, false, false)),
        ("PATCH /api/v1/channels/{id}", r(Admin, false, false)),
        ("DELETE /api/v1/channels/{id}", r(Admin, false, true)),
        ("POST /api/v1/channels/{id}/test", r(Admin, false, false)),
        (
            "GET /api/v1/channels/{id}/deliveries",
            r(Admin, false, false),
        ),
        (
            "POST /api/v1/tenants/{tenant}/verifications",
            r(Operator, true, false),
        ),
        (
            "GET /api/v1/tenants/{tenant}/verifications",
            r(Viewer, true, false),
        ),
        (
            "GET /api/v1/tenants/{tenant}/verifications/{id}",
            r(Viewer, true, false),
        ),
        (
            "POST /api/v1/tenants/{tenant}/backups",
            r(Operator, true, false),
        ),
        (
            "GET /api/v1/tenants/{tenant}/backups",
            r(Viewer, true, false),
        ),
        ("GET /api/v1/backups/{id}", r(Viewer, true, false)),
        ("DELETE /api/v1/backups/{id}", r(Operator, true, true)),
        ("POST /api/v1/backups/{id}/retry", r(Operator, true, false)),
        (
            "POST /api/v1/backups/{id}/restore",
            r(Operator, true, false),
        ),
        ("GET /api/v1/backups/{id}/file", r(Operator, true, false)),
        ("GET /api/v1/restores/{id}", r(Viewer, true, false)),
        ("GET /api/v1/audit", r(Viewer, false, false)),
        ("POST /api/v1/tokens", r(Admin, false, false)),
        ("GET /api/v1/tokens", r(Admin, false, false)),
        ("DELETE /api/v1/tokens/{id}", r(Admin, false, true)),
    ])
}

/// One tenant's resources, for filling in a path.
struct Owned {
    tenant: String,
    name: String,
    root: std::path::PathBuf,
    source: String,
    backup: String,
    restore: String,
    verification: String,
    channel: String,
}

const OK: &[u16] = &[200, 201, 202, 204, 409];

#[test]
fn every_operation_in_the_openapi_document_against_every_caller_and_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(
        &dir.path().join("data"),
        // the revoked and absent tokens are tried on every operation
        &[("HOLDFAST_AUTH_FAILURES_PER_MINUTE", "100000")],
    );
    let admin = s.admin.clone().unwrap();
    let token = |role: &str, tenant: &str| -> (String, String) {
        let r = s.expect(
            201,
            "POST",
            "/api/v1/tokens",
            Some(&admin),
            Some(&json!({"role": role, "tenant": tenant, "label": format!("{role} {tenant}")})),
        );
        (
            r["token"]["id"].as_str().unwrap().to_string(),
            r["secret"].as_str().unwrap().to_string(),
        )
    };
    let mut owned = Vec::new();
    for name in ["a", "b"] {
        let tenant = s.create_tenant(&admin, name);
        let root = dir.path().join("roots").join(name);
        fs::create_dir_all(root.join("site")).unwrap();
        fs::write(root.join("site/f"), name).unwrap();
        s.set_policy(&admin, &tenant, json!({"directory_roots": [root]}));
        let src = s.create_source(
            &admin,
            &tenant,
            json!({"name": "site", "kind": "directory", "target": root.join("site"), "schedule": null}),
        );
        let source = src["id"].as_str().unwrap().to_string();
        let q = s.queue_backup(&admin, &tenant, &source);
        let backup = q["id"].as_str().unwrap().to_string();
        assert_eq!(s.wait_backup(&backup, &admin)["status"], "done");
        let r = s.queue_restore(&admin, &backup, None);
        let v = s.expect(
            202,
            "POST",
            &format!("/api/v1/tenants/{tenant}/verifications"),
            Some(&admin),
            Some(&json!({"read_data": "none"})),
        );
        let ch = s.expect(
            201,
            "POST",
            &format!("/api/v1/tenants/{tenant}/channels"),
            Some(&admin),
            Some(&json!({"name": "hook", "kind": "webhook", "url": "https://hooks.example.invalid/h"})),
        );
        owned.push(Owned {
            channel: ch["id"].as_str().unwrap().to_string(),
            verification: v["id"].as_str().unwrap().to_string(),
            tenant,
            name: name.to_string(),
            root,
            source,
            backup,
            restore: r["id"].as_str().unwrap().to_string(),
        });
    }
    let global_channel = s.expect(
        201,
        "POST",
        "/api/v1/channels",
        Some(&admin),
        Some(
            &json!({"name": "ops", "kind": "webhook", "url": "https://hooks.example.invalid/ops"}),
        ),
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, op_a) = token("operator", "a");
    let (_, view_a) = token("viewer", "a");
    let (_, op_b) = token("operator", "b");
    let (revoked_id, revoked) = token("operator", "a");
    s.delete(&format!("/api/v1/tokens/{revoked_id}"), &admin);
    // (name, token, tenant index or None for admin, role)
    let callers: Vec<(&str, Option<&str>, Option<usize>, Least)> = vec![
        ("no token", None, None, Least::Public),
        ("revoked", Some(&revoked), None, Least::Public),
        ("viewer of a", Some(&view_a), Some(0), Least::Viewer),
        ("operator of a", Some(&op_a), Some(0), Least::Operator),
        ("operator of b", Some(&op_b), Some(1), Least::Operator),
        // admin last: its deletes must not take resources from the others
        ("admin", Some(&admin), None, Least::Admin),
    ];

    let doc = s.expect(200, "GET", "/api/v1/openapi.json", None, None);
    let rules = rules();
    let mut operations = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, _) in item.as_object().unwrap() {
            if method == "parameters" {
                continue;
            }
            let key = format!("{} {path}", method.to_uppercase());
            assert!(
                rules.contains_key(key.as_str()),
                "{key} is in the OpenAPI document but has no authorization rule in this test"
            );
            operations.push((method.to_uppercase(), path.clone(), key));
        }
    }
    assert_eq!(
        operations.len(),
        rules.len(),
        "rules for operations that are gone"
    );

    let mut counter = 0;
    let mut cells = 0;
    for (method, template, key) in &operations {
        let rule = &rules[key.as_str()];
        for (name, secret, caller_tenant, role) in &callers {
            for (owner_index, o) in owned.iter().enumerate() {
                counter += 1;
                let expected: &[u16] = match (rule.least, secret, *name) {
                    (Least::Public, _, _) => &[200],
                    (_, None, _) | (_, _, "revoked") => &[401],
                    (_, _, "admin") => OK,
                    (Least::Admin, _, _) => &[403],
                    _ if rule.scoped && *caller_tenant != Some(owner_index) => &[404],
                    _ if *role as u8 >= rule.least as u8 => OK,
                    _ => &[403],
                };
                // a destructive success takes a fresh resource
                let fresh = rule.destructive && expected == OK;
                let mut source = o.source.clone();
                let mut backup = o.backup.clone();
                let mut token_id = String::new();
                let mut channel = if key.contains("/tenants/") {
                    o.channel.clone()
                } else {
                    global_channel.clone()
                };
                if fresh || key.contains("/tokens/{id}") {
                    match key.as_str() {
                        "DELETE /api/v1/tenants/{tenant}/sources/{id}" => {
                            let src = s.create_source(
                                &admin,
                                &o.tenant,
                                json!({"name": format!("fresh{counter}"), "kind": "directory",
                                       "target": o.root.join("site"), "schedule": null}),
                            );
                            source = src["id"].as_str().unwrap().to_string();
                        }
                        "DELETE /api/v1/backups/{id}" => {
                            let q = s.queue_backup(&admin, &o.tenant, &o.source);
                            backup = q["id"].as_str().unwrap().to_string();
                            assert_eq!(s.wait_backup(&backup, &admin)["status"], "done");
                        }
                        "DELETE /api/v1/tokens/{id}" => {
                            token_id = token("viewer", &o.name).0;
                        }
                        "DELETE /api/v1/tenants/{tenant}/channels/{id}"
                        | "DELETE /api/v1/channels/{id}" => {
                            let path = if key.contains("/tenants/") {
                                format!("/api/v1/tenants/{}/channels", o.tenant)
                            } else {
                                "/api/v1/channels".to_string()
                            };
                            channel = s.expect(
                                201,
                                "POST",
                                &path,
                                Some(&admin),
                                Some(&json!({"name": format!("fresh{counter}"), "kind": "slack",
                                             "url": "https://hooks.example.invalid/x"})),
                            )["id"]
                                .as_str()
                                .unwrap()
                                .to_string();
                        }
                        _ => {}
                    }
                }
                let path = template.replace("{tenant}", &o.tenant).replace(
                    "{id}",
                    if template.contains("/sources/") {
                        &source
                    } else if template.contains("/restores/") {
                        &o.restore
                    } else if template.contains("/verifications/") {
                        &o.verification
                    } else if template.contains("/channels/") {
                        &channel
                    } else if template.contains("/tokens/") {
                        &token_id
                    } else {
                        &backup
                    },
                );
                let body = match key.as_str() {
                    "POST /api/v1/tenants" => Some(json!({"name": format!("t{counter}")})),
                    "PUT /api/v1/tenants/{tenant}/policy" => {
                        Some(json!({"directory_roots": [o.root]}))
                    }
                    // a bucket of its own on the private Garage: only an
                    // admin gets as far as reaching it
                    "PUT /api/v1/tenants/{tenant}/storage" => {
                        let g = common::servers::Garage::shared();
                        Some(json!({
                            "location": g.location(&format!("authz-{}-{counter}", o.name)),
                            "access_key_id": g.key_id,
                            "secret_access_key": g.secret,
                            "region": g.region,
                        }))
                    }
                    "POST /api/v1/tenants/{tenant}/sources" => Some(json!({
                        "name": format!("n{counter}"), "kind": "directory",
                        "target": o.root.join("site"), "schedule": null})),
                    "PATCH /api/v1/tenants/{tenant}/sources/{id}" => {
                        Some(json!({"retention": {"keep_last": 3}}))
                    }
                    "POST /api/v1/tenants/{tenant}/backups" => Some(json!({"source_id": o.source})),
                    "POST /api/v1/backups/{id}/restore" => {
                        Some(json!({"target": o.root.join(format!("r{counter}"))}))
                    }
                    "POST /api/v1/tenants/{tenant}/channels" | "POST /api/v1/channels" => {
                        Some(json!({"name": format!("c{counter}"), "kind": "ntfy",
                                    "url": "https://ntfy.example.invalid/topic"}))
                    }
                    "PATCH /api/v1/tenants/{tenant}/channels/{id}"
                    | "PATCH /api/v1/channels/{id}" => {
                        Some(json!({"name": format!("renamed{counter}")}))
                    }
                    "POST /api/v1/tokens" => {
                        Some(json!({"role": "viewer", "tenant": o.name, "label": "x"}))
                    }
                    _ => None,
                };
                let r = s.request(method, &path, *secret, body.as_ref());
                cells += 1;
                assert!(
                    expected.contains(&r.status),
                    "{name} → {method} {path} ({}'s): {} (expected {expected:?}): {}",
                    o.name,
                    r.status,
                    r.text
                );
                if r.status >= 400 {
                    assert_eq!(
                        r.content_type, "application/problem+json",
                        "{name} {method} {path}"
                    );
                }
                // another tenant's id never appears in an answer
                if let Some(t) = caller_tenant {
                    let other = &owned[1 - t];
                    assert!(
                        !r.text.contains(&other.tenant),
                        "{name} → {method} {path} shows tenant {}",
                        other.name
                    );
                }
            }
        }
    }
    assert!(cells >= operations.len() * callers.len() * 2);
}
