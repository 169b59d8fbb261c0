//! schemathesis against a running `holdfast serve`: every operation of the
//! served OpenAPI document fuzzed (its coverage, fuzzing and stateful
//! phases), with no 5xx answer and every answer matching the documented
//! schema. Two passes: one free (paths, ids and bodies all generated), one
//! with real ids of a tenant, a source, a backup and a restore, so that the
//! generated bodies and queries reach the handlers' logic.
//!
//! scripts/test.sh installs schemathesis into a virtual environment and
//! names it in HOLDFAST_SCHEMATHESIS.

mod common;

use std::fs;
use std::process::Command;

use common::assert_ok;
use common::service::Server;
use serde_json::json;

fn schemathesis() -> String {
    if let Ok(p) = std::env::var("HOLDFAST_SCHEMATHESIS") {
        return p;
    }
    let home = std::env::var("HOME").unwrap_or_default();
    let p = format!("{home}/.cache/holdfast-test-venv/bin/schemathesis");
    assert!(
        std::path::Path::new(&p).exists(),
        "schemathesis is not installed: run ./scripts/test.sh (it installs it) or set HOLDFAST_SCHEMATHESIS"
    );
    p
}

fn run(s: &Server, token: &str, config: Option<&std::path::Path>, max_examples: &str) {
    let mut c = Command::new(schemathesis());
    if let Some(cfg) = config {
        c.arg("--config-file").arg(cfg);
    }
    let out = c
        .args(["--no-color", "run"])
        .arg(format!("{}/api/v1/openapi.json", s.base))
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args(["-c", "not_a_server_error,response_schema_conformance"])
        .args([
            "--max-examples",
            max_examples,
            "--workers",
            "2",
            "--seed",
            "20261205",
        ])
        // revoking the fuzzer's own token would end the run early
        .args(["--exclude-path", "/api/v1/tokens/{id}"])
        .output()
        .expect("run schemathesis");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "schemathesis found failures:\n{text}");
    assert!(text.contains("passed"), "{text}");
    // the server itself logged no panic
    let log = s.log_lines().join("\n");
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn the_openapi_document_holds_under_schemathesis() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(
        &dir.path().join("data"),
        // the fuzzer sends bad tokens on purpose
        &[("HOLDFAST_AUTH_FAILURES_PER_MINUTE", "10000000")],
    );
    let admin = s.admin.clone().unwrap();
    let tenant = s.create_tenant(&admin, "acme");
    let root = dir.path().join("root");
    fs::create_dir_all(root.join("site")).unwrap();
    fs::write(root.join("site/f"), "x").unwrap();
    s.set_policy(&admin, &tenant, json!({"directory_roots": [root]}));
    let src = s.create_source(
        &admin,
        &tenant,
        json!({"name": "site", "kind": "directory", "target": root.join("site"), "schedule": null}),
    );
    let q = s.queue_backup(&admin, &tenant, &src["id"]);
    let backup = q["id"].as_str().unwrap().to_string();
    assert_eq!(s.wait_backup(&backup, &admin)["status"], "done");
    let r = s.queue_restore(&admin, &backup, None);
    let restore = r["id"].as_str().unwrap().to_string();

    // free: every path, id and body generated
    run(&s, &admin, None, "25");

    // with real ids
    let config = dir.path().join("schemathesis.toml");
    fs::write(
        &config,
        format!(
            r#"
[parameters]
tenant = "{tenant}"

[[operations]]
include-path = "/api/v1/tenants/{{tenant}}/sources/{{id}}"
parameters = {{ id = "{source}" }}

[[operations]]
include-path-regex = "^/api/v1/backups/"
parameters = {{ id = "{backup}" }}

[[operations]]
include-path = "/api/v1/restores/{{id}}"
parameters = {{ id = "{restore}" }}
"#,
            source = src["id"].as_str().unwrap(),
        ),
    )
    .unwrap();
    run(&s, &admin, Some(&config), "25");
    // and the server still answers, its audit chain intact
    assert_eq!(s.request("GET", "/readyz", None, None).status, 200);
    let out = s.cli(&["audit", "verify"]);
    assert_ok(&out);
}
