//! `backup --command`: a command's standard output becomes a one-file
//! snapshot; a failing command (non-zero exit, signal) writes no snapshot.

mod common;

use common::*;

#[test]
fn command_output_is_stored_and_restorable_by_restic() {
    let repo = Repo::new();
    let out = repo.ok(&[
        "backup",
        "--json",
        "--command",
        "seq 1 200000; echo done",
        "--stdin-filename",
        "numbers.txt",
    ]);
    let s = summary(&out);
    let id = s["snapshot_id"].as_str().unwrap().to_string();
    let expected: String = (1..=200000).map(|i| format!("{i}\n")).collect::<String>() + "done\n";
    let dumped = repo
        .cmd()
        .args(["dump", &id, "/numbers.txt"])
        .output()
        .unwrap();
    assert!(dumped.status.success());
    assert_eq!(dumped.stdout, expected.as_bytes());
    // restic reads it too.
    let r = repo
        .restic()
        .args(["dump", &id, "/numbers.txt"])
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(r.stdout, expected.as_bytes());
    // The snapshot names the program and the exit status, never the arguments.
    let cat = repo.ok(&["cat", "snapshot", &id]);
    let snap: serde_json::Value = serde_json::from_str(&cat).unwrap();
    assert_eq!(snap["holdfast"]["source"]["kind"], "command");
    assert_eq!(snap["holdfast"]["source"]["program"], "seq");
    assert_eq!(snap["holdfast"]["source"]["exit_status"], 0);
    assert_eq!(snap["holdfast"]["source"]["size"], expected.len());
    assert!(!cat.contains("200000"), "arguments leaked: {cat}");
}

#[test]
fn failing_command_writes_no_snapshot() {
    let repo = Repo::new();
    for (cmd, expect) in [
        (
            "echo partial; echo 'boom' >&2; exit 7",
            "exited with status 7",
        ),
        ("echo partial; kill -9 $$", "killed by signal 9"),
        (
            "definitely-not-a-command-holdfast",
            "exited with status 127",
        ),
    ] {
        let out = repo.run(&["backup", "--command", cmd]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{cmd}: succeeded");
        assert!(err.contains(expect), "{cmd}: {err}");
        assert!(err.contains("no snapshot was written"), "{cmd}: {err}");
        if cmd.contains("boom") {
            assert!(err.contains("boom"), "stderr tail missing: {err}");
        }
    }
    assert!(repo.snapshot_ids().is_empty());
    repo.ok(&["check", "--read-data"]);
}
