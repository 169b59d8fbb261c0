//! Application event streams (JSON Lines over HTTP): pulled into a
//! snapshot with every line validated, refused when cut short or invalid,
//! exported as .jsonl, and replayed in order, idempotently, resuming after
//! the last acknowledged batch.

mod common;

use common::http::{HttpServer, Route};
use common::*;

const TOKEN: &str = "tok-3f9a-secret-bearer";

/// `n` events: string and integer ids, schema versions 1 (implicit), 1 and
/// 2, unicode and nested JSON.
fn events(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| match i % 3 {
            0 => format!(r#"{{"eventId":"evt-{i:06}","type":"order.created","total":{i}.5,"who":"Zoë 日本"}}"#),
            1 => format!(r#"{{"eventId":"evt-{i:06}","schemaVersion":1,"tags":["a","b"],"n":null}}"#),
            _ => format!(r#"{{"schemaVersion":2,"eventId":"evt-{i:06}","data":{{"nested":{{"deep":[{i}]}}}}}}"#),
        })
        .collect()
}

/// The events as a body cut into uneven chunks, with keep-alive blank
/// lines and CRLF endings sprinkled in.
fn chunks(lines: &[String]) -> Vec<Vec<u8>> {
    let mut body = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        body.extend_from_slice(l.as_bytes());
        body.extend_from_slice(if i % 7 == 0 { b"\r\n" } else { b"\n" });
        if i % 101 == 0 {
            body.extend_from_slice(b"\n");
        }
    }
    body.chunks(997).map(<[u8]>::to_vec).collect()
}

fn expected_file(lines: &[String]) -> Vec<u8> {
    lines
        .iter()
        .flat_map(|l| format!("{l}\n").into_bytes())
        .collect()
}

fn with_token(repo: &Repo) -> std::process::Command {
    let mut c = repo.cmd();
    c.env("HOLDFAST_SOURCE_TOKEN", TOKEN);
    c.env("HOLDFAST_CACHE_DIR", repo.dir.path().join("cache"));
    c
}

/// `holdfast ARGS` with the token, which must succeed: the summary.
fn ok_with_token(repo: &Repo, args: &[&str]) -> serde_json::Value {
    ok_summary(&with_token(repo).args(args).output().unwrap())
}

/// Replay snapshot `id` into `target`, which must succeed: the summary.
fn replay(repo: &Repo, id: &str, target: &str) -> serde_json::Value {
    ok_with_token(repo, &["restore", id, "--json", "--to", target])
}

#[test]
fn event_stream_backup_export_and_replay() {
    let server = HttpServer::start();
    server.state.lock().unwrap().token = Some(TOKEN.into());
    let lines = events(10_000);
    server.route("/events", Route::whole(chunks(&lines)));
    let repo = Repo::new();
    let url = format!("jsonl+{}?since=0&token=querysecret", server.url("/events"));
    let s = ok_with_token(
        &repo,
        &["backup", "--json", "--max-schema-version", "2", &url],
    );
    let id = snapshot_id(&s);
    assert_eq!(s["source"]["kind"], "jsonl");
    assert_eq!(s["source"]["events"], 10_000);
    assert_eq!(s["source"]["first_event_id"], "evt-000000");
    assert_eq!(s["source"]["last_event_id"], "evt-009999");

    // The stored stream: the event lines, each with \n, no keep-alives.
    assert_eq!(repo.file(&id, "/events.jsonl"), expected_file(&lines));
    let m = repo.manifest(&id);
    assert_eq!(m["events"], 10_000);
    assert_eq!(m["schema_versions"]["1"], 6667);
    assert_eq!(m["schema_versions"]["2"], 3333);
    assert_eq!(m["files"][0]["sha256"], s["source"]["sha256"]);
    // Secrets: the token went only into the header; the query token is masked.
    assert!(
        server
            .state
            .lock()
            .unwrap()
            .auth_headers
            .iter()
            .all(|h| h == &format!("Bearer {TOKEN}"))
    );
    let snap = repo.ok(&["cat", "snapshot", &id]);
    assert!(
        !snap.contains(TOKEN) && !snap.contains("querysecret"),
        "{snap}"
    );
    assert!(snap.contains("token=***"), "{snap}");
    run_ok(repo.restic().args(["check", "--read-data"]));

    // Export as .jsonl.gz: opens with gzip, verifies.
    let file = repo.dir.path().join("events.jsonl.gz");
    repo.ok(&["export", &id, "-o", file.to_str().unwrap()]);
    repo.ok(&["export", "--verify", file.to_str().unwrap()]);
    let gunzip = std::process::Command::new("gzip")
        .arg("-dc")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(gunzip.stdout, expected_file(&lines));

    // Replay into an ingest endpoint: every event, once, in order.
    let target = format!("jsonl+{}", server.url("/ingest"));
    let r = replay(&repo, &id, &target);
    assert_eq!(r["rows"], 10_000);
    let st = server.state.lock().unwrap();
    let want: Vec<String> = (0..10_000).map(|i| format!("evt-{i:06}")).collect();
    assert_eq!(st.order, want);
    assert_eq!(st.received["evt-000002"], lines[2]);
    assert_eq!(st.batch_starts.len(), 20, "batches of 500");
}

#[test]
fn replay_resumes_after_the_last_acknowledged_batch() {
    let server = HttpServer::start();
    let lines = events(3_000);
    server.route("/events", Route::whole(chunks(&lines)));
    let repo = Repo::new();
    let url = format!("jsonl+{}", server.url("/events"));
    let id = snapshot_id(&ok_with_token(&repo, &["backup", "--json", &url]));

    // The receiver takes two batches, then stays down.
    server.state.lock().unwrap().accept_batches = Some(2);
    let target = format!("jsonl+{}", server.url("/ingest"));
    let out = with_token(&repo)
        .args(["restore", &id, "--to", &target])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "replay into a dead receiver succeeded"
    );
    let err = stderr(&out);
    assert!(err.contains("HTTP 503"), "{err}");
    assert!(err.contains("1000 of 3000 events are delivered"), "{err}");
    assert!(err.contains("again to resume"), "{err}");
    assert_eq!(server.state.lock().unwrap().order.len(), 1000);

    // Back up: the same command carries on from event 1001.
    server.state.lock().unwrap().accept_batches = None;
    let r = replay(&repo, &id, &target);
    assert_eq!(r["resumed_after"], 1000);
    let st = server.state.lock().unwrap();
    let want: Vec<String> = (0..3_000).map(|i| format!("evt-{i:06}")).collect();
    assert_eq!(st.order, want);
    assert_eq!(
        st.batch_starts,
        vec![
            "evt-000000",
            "evt-000500",
            "evt-001000",
            "evt-001500",
            "evt-002000",
            "evt-002500"
        ],
        "no batch was sent twice after resuming"
    );
}

#[test]
fn broken_streams_write_no_snapshot() {
    let server = HttpServer::start();
    let lines = events(2_000);
    let all = chunks(&lines);
    let mut cut_line = expected_file(&lines[..10]);
    cut_line.extend_from_slice(br#"{"eventId":"evt-000010","type":"ord"#);
    let cases: Vec<(&str, Route, &str)> = vec![
        (
            "/dropped",
            Route::Body {
                chunks: all.clone(),
                cut_after: Some(all.len() / 2),
            },
            "broke off",
        ),
        (
            "/error",
            Route::Status(500, "database is on fire".into()),
            "HTTP 500",
        ),
        (
            "/cut-line",
            Route::whole(vec![cut_line]),
            "line 11: the line ends in the middle of a JSON object",
        ),
        (
            "/not-json",
            Route::whole(vec![b"{\"eventId\":1}\n<html>oops</html>\n".to_vec()]),
            "line 2: not a JSON object",
        ),
        (
            "/no-id",
            Route::whole(vec![b"{\"eventId\":1}\n{\"type\":\"x\"}\n".to_vec()]),
            "line 2: the event has no eventId",
        ),
        (
            "/future",
            Route::whole(vec![
                b"{\"eventId\":1}\n{\"eventId\":2,\"schemaVersion\":3}\n".to_vec(),
            ]),
            "schemaVersion 3, above --max-schema-version 2",
        ),
        (
            "/empty",
            Route::whole(vec![b"\n\n".to_vec()]),
            "sent no events",
        ),
        ("/missing", Route::Status(404, "nope".into()), "HTTP 404"),
    ];
    let repo = Repo::new();
    for (path, route, want) in cases {
        server.route(path, route);
        let out = with_token(&repo)
            .args([
                "backup",
                "--max-schema-version",
                "2",
                &format!("jsonl+{}", server.url(path)),
            ])
            .output()
            .unwrap();
        let err = stderr(&out);
        assert!(!out.status.success(), "{path}: succeeded");
        assert!(err.contains(want), "{path}: {err}");
        assert!(err.contains("no snapshot was written"), "{path}: {err}");
    }
    // A token the server does not accept, and a server that is not there.
    server.state.lock().unwrap().token = Some("the-right-one".into());
    server.route("/events", Route::whole(all));
    let out = with_token(&repo)
        .args(["backup", &format!("jsonl+{}", server.url("/events"))])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("HTTP 401"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("HOLDFAST_SOURCE_TOKEN"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains(TOKEN));
    let port = servers::free_port();
    let out = with_token(&repo)
        .args([
            "backup",
            &format!("jsonl+http://127.0.0.1:{port}/events?key=s3cr3t"),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("cannot connect"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("s3cr3t"), "{}", stderr(&out));

    assert!(repo.snapshot_ids().is_empty());
    repo.ok(&["check", "--read-data"]);
}
