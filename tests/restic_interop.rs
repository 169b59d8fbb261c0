//! Format interop with the real `restic` binary, both ways: restic checks,
//! lists and restores what holdfast wrote; holdfast lists, restores and
//! extends what restic wrote, and restic reads the result.

mod common;

use std::fs;
use std::path::Path;

use common::*;

/// restic 0.14 (Debian 12) stores symlink targets that are not UTF-8
/// lossily and cannot restore holes; everything else must match.
const RESTIC_COMPARE: Compare = Compare {
    sparse: false,
    non_utf8_links: false,
};

fn restored(target: &Path, src: &Path) -> std::path::PathBuf {
    target.join(src.strip_prefix("/").unwrap())
}

fn restic_ls(repo: &Path, snap: &str) -> Vec<String> {
    let out = run_ok(restic_cmd(repo).args(["ls", "--json", snap]));
    out.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["struct_type"] == "node")
        .map(|v| v["path"].as_str().unwrap().to_string())
        .collect()
}

fn holdfast_ls(repo: &Repo, snap: &str) -> Vec<String> {
    repo.ok(&["ls", "--json", snap])
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["struct_type"] == "node")
        .map(|v| v["path"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn restic_checks_lists_and_restores_what_holdfast_wrote() {
    let repo = Repo::new();
    let src = repo.dir.path().join("src");
    make_rich_tree(&src);
    // small packs so the repository has many of them
    repo.backup(&[&src], &["--pack-size", "4"]);
    fs::write(src.join("dir/second-run.txt"), b"incremental").unwrap();
    let second = repo.backup(&[&src], &[]);
    let id = second["snapshot_id"].as_str().unwrap().to_string();
    // a stream snapshot too
    let mut child = repo
        .cmd()
        .args(["backup", "--stdin", "--stdin-filename", "stream.bin"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &vec![42u8; 3 << 20]).unwrap();
    assert!(child.wait().unwrap().success());

    run_ok(repo.restic().args(["check", "--read-data"]));

    let snaps: serde_json::Value =
        serde_json::from_str(&run_ok(repo.restic().args(["snapshots", "--json"]))).unwrap();
    let ids: Vec<&str> = snaps
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3);
    assert!(ids.contains(&id.as_str()));

    assert_eq!(restic_ls(&repo.path, &id), holdfast_ls(&repo, &id));

    let target = repo.dir.path().join("restic-restore");
    run_ok(
        repo.restic()
            .args(["restore", &id, "--target"])
            .arg(&target),
    );
    assert_same_tree_with(&src, &restored(&target, &src), RESTIC_COMPARE);

    let dumped = repo
        .restic()
        .args(["dump", "latest", "/stream.bin"])
        .output()
        .unwrap();
    assert!(dumped.status.success());
    assert!(dumped.stdout == vec![42u8; 3 << 20]);
}

#[test]
fn holdfast_reads_and_extends_what_restic_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let repo_path = dir.path().join("repo");
    let src = dir.path().join("src");
    make_rich_tree(&src);
    run_ok(restic_cmd(&repo_path).arg("init"));
    run_ok(
        restic_cmd(&repo_path)
            .args(["backup", "--compression", "auto"])
            .arg(&src),
    );
    let repo = Repo {
        dir,
        path: repo_path.clone(),
    };

    // holdfast lists and restores restic's snapshot
    let ids = repo.snapshot_ids();
    assert_eq!(ids.len(), 1);
    assert_eq!(holdfast_ls(&repo, &ids[0]), restic_ls(&repo_path, &ids[0]));
    let target = repo.dir.path().join("hf-restore");
    repo.ok(&["restore", &ids[0], "--target", target.to_str().unwrap()]);
    assert_same_tree_with(
        &src,
        &restored(&target, &src),
        Compare {
            sparse: true,
            non_utf8_links: false,
        },
    );

    // holdfast adds a snapshot, using restic's as the parent
    fs::write(src.join("added-by-holdfast.txt"), b"hello from holdfast").unwrap();
    let s = repo.backup(&[&src], &[]);
    assert_eq!(s["files_new"], 1, "{s}");
    assert_eq!(
        s["files_unmodified"].as_u64().unwrap() + 1,
        s["total_files_processed"].as_u64().unwrap(),
        "files unchanged since restic's snapshot are not read again: {s}"
    );
    let hid = s["snapshot_id"].as_str().unwrap().to_string();

    // restic accepts the result and restores holdfast's snapshot
    run_ok(restic_cmd(&repo_path).args(["check", "--read-data"]));
    let t2 = repo.dir.path().join("restic-restore");
    run_ok(
        restic_cmd(&repo_path)
            .args(["restore", &hid, "--target"])
            .arg(&t2),
    );
    assert_same_tree_with(&src, &restored(&t2, &src), RESTIC_COMPARE);

    // and restic can keep writing into the repository afterwards
    fs::write(src.join("added-by-restic.txt"), b"restic again").unwrap();
    run_ok(restic_cmd(&repo_path).arg("backup").arg(&src));
    run_ok(restic_cmd(&repo_path).args(["check", "--read-data"]));
    let t3 = repo.dir.path().join("hf-restore-2");
    repo.ok(&["restore", "latest", "--target", t3.to_str().unwrap()]);
    assert_same_tree_with(
        &src,
        &restored(&t3, &src),
        Compare {
            sparse: true,
            non_utf8_links: false,
        },
    );
}

#[test]
fn holdfast_opens_a_restic_repository_with_several_keys() {
    let dir = tempfile::tempdir().unwrap();
    let repo_path = dir.path().join("repo");
    run_ok(restic_cmd(&repo_path).arg("init"));
    let pwfile = dir.path().join("second-password");
    fs::write(&pwfile, "another secret\n").unwrap();
    run_ok(
        restic_cmd(&repo_path)
            .args(["key", "add", "--new-password-file"])
            .arg(&pwfile),
    );
    let repo = Repo {
        dir,
        path: repo_path.clone(),
    };
    // the second password opens it too
    let mut c = repo.cmd();
    c.env_remove("HOLDFAST_PASSWORD")
        .env("HOLDFAST_PASSWORD_FILE", &pwfile);
    let out = c.args(["key", "list", "--json"]).output().unwrap();
    assert_ok(&out);
    let keys: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(keys.as_array().unwrap().len(), 2);
    // a key holdfast adds opens the repository in restic
    let third = repo.dir.path().join("third-password");
    fs::write(&third, "holdfast made this").unwrap();
    repo.ok(&["key", "add", "--new-password-file", third.to_str().unwrap()]);
    let mut r = restic_cmd(&repo_path);
    r.env_remove("RESTIC_PASSWORD")
        .env("RESTIC_PASSWORD_FILE", &third);
    run_ok(r.args(["snapshots"]));
}
