//! Backup and restore through the real binary: every kind of metadata,
//! incremental runs, streams, filters, restoring over an existing tree.

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::*;

/// Where a restore puts the tree backed up from `src` (its absolute path
/// below the target).
fn restored(target: &Path, src: &Path) -> PathBuf {
    target.join(src.strip_prefix("/").unwrap())
}

#[test]
fn round_trip_preserves_every_metadata_kind() {
    let repo = Repo::new();
    let src = repo.dir.path().join("src");
    make_rich_tree(&src);
    let s = repo.backup(&[&src], &[]);
    assert_eq!(s["files_changed"], 0);
    assert!(s["files_new"].as_u64().unwrap() >= 20, "{s}");
    assert!(s["snapshot_id"].as_str().unwrap().len() == 64);

    let target = repo.dir.path().join("out");
    repo.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_same_tree(&src, &restored(&target, &src));
    // the hole stayed a hole
    let md = fs::metadata(restored(&target, &src).join("sparse.img")).unwrap();
    assert!(
        md.blocks() * 512 < 1 << 20,
        "sparse file restored with {} blocks",
        md.blocks()
    );
}

#[test]
fn incremental_backup_reads_only_what_changed() {
    let repo = Repo::new();
    let src = repo.dir.path().join("src");
    make_rich_tree(&src);
    let first = repo.backup(&[&src], &[]);
    let total = first["total_files_processed"].as_u64().unwrap();

    let again = repo.backup(&[&src], &[]);
    assert_eq!(
        again["files_unmodified"].as_u64().unwrap(),
        total,
        "{again}"
    );
    assert_eq!(again["files_new"], 0);
    assert_eq!(again["files_changed"], 0);
    assert_eq!(again["data_blobs"], 0, "nothing new was stored: {again}");

    // change one file, add one, remove one
    fs::write(src.join("dir/block.bin"), b"rewritten").unwrap();
    fs::write(src.join("added.txt"), b"brand new").unwrap();
    fs::remove_file(src.join("text/lines.txt")).unwrap();
    let third = repo.backup(&[&src], &[]);
    assert_eq!(third["files_new"], 1, "{third}");
    assert_eq!(third["files_changed"], 1, "{third}");
    assert_eq!(
        third["files_unmodified"].as_u64().unwrap(),
        total - 2,
        "{third}"
    );
    assert!(third["data_added"].as_u64().unwrap() < 64 * 1024, "{third}");

    // the latest snapshot restores the changed tree
    let target = repo.dir.path().join("out");
    repo.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_same_tree(&src, &restored(&target, &src));
    // and the first one still holds the old content
    let ids = repo.snapshot_ids();
    let old = repo.dir.path().join("old");
    repo.ok(&["restore", &ids[0], "--target", old.to_str().unwrap()]);
    let r = restored(&old, &src);
    assert_eq!(fs::read(r.join("dir/block.bin")).unwrap().len(), 4096);
    assert!(r.join("text/lines.txt").exists());
    assert!(!r.join("added.txt").exists());
}

#[test]
fn explicit_parent_and_force() {
    let repo = Repo::new();
    let src = repo.dir.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), b"x").unwrap();
    repo.backup(&[&src], &[]);
    let forced = repo.backup(&[&src], &["--force"]);
    assert_eq!(
        forced["files_new"], 1,
        "--force ignores the parent: {forced}"
    );
    let id = &repo.snapshot_ids()[0];
    let with_parent = repo.backup(&[&src], &["--parent", &id[..8]]);
    assert_eq!(with_parent["files_unmodified"], 1);
}

#[test]
fn stdin_stream_becomes_one_file() {
    let repo = Repo::new();
    let data: Vec<u8> = (0..3_000_000u32)
        .flat_map(|i| (i % 251).to_le_bytes())
        .collect();
    let mut child = repo
        .stdin_backup("dump.sql", &["--tag", "db"])
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&data).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let s = summary(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(
        s["total_bytes_processed"].as_u64().unwrap(),
        data.len() as u64
    );
    let ls = repo.ok(&["ls", "latest"]);
    assert_eq!(ls.trim(), "/dump.sql");
    let dumped = repo
        .cmd()
        .args(["dump", "latest", "/dump.sql"])
        .output()
        .unwrap();
    assert!(dumped.status.success());
    assert!(dumped.stdout == data, "dump differs from what went in");
    let snaps = repo.ok(&["snapshots", "--json", "--tag", "db"]);
    let v: serde_json::Value = serde_json::from_str(&snaps).unwrap();
    assert_eq!(v[0]["paths"][0], "/dump.sql");
}

#[test]
fn excludes_leave_no_trace() {
    let repo = Repo::new();
    let src = repo.dir.path().join("src");
    for f in [
        "keep.txt",
        "app.log",
        "cache/big.bin",
        "deep/node_modules/x.js",
        "deep/keep/y.txt",
    ] {
        let p = src.join(f);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, f).unwrap();
    }
    let exfile = repo.dir.path().join("excludes");
    fs::write(&exfile, "# comment\n\nnode_modules\n").unwrap();
    let cache = format!("{}/cache", src.display());
    repo.backup(
        &[&src],
        &[
            "--exclude",
            "*.log",
            "--exclude",
            &cache,
            "--exclude-file",
            exfile.to_str().unwrap(),
        ],
    );
    let ls = repo.ok(&["ls", "latest"]);
    assert!(ls.contains("/keep.txt"));
    assert!(ls.contains("/deep/keep/y.txt"));
    for gone in ["app.log", "cache", "node_modules"] {
        assert!(!ls.contains(gone), "{gone} should be excluded:\n{ls}");
    }
}

#[test]
fn multiple_paths_keep_their_full_paths() {
    let repo = Repo::new();
    let a = repo.dir.path().join("a");
    let b = repo.dir.path().join("b/inner");
    fs::create_dir_all(&a).unwrap();
    fs::create_dir_all(&b).unwrap();
    fs::write(a.join("1"), b"1").unwrap();
    fs::write(b.join("2"), b"2").unwrap();
    repo.backup(&[&a, &b, &a.join("1")], &[]);
    let ls = repo.ok(&["ls", "latest"]);
    assert!(ls.contains(&format!("{}/1", a.display())));
    assert!(ls.contains(&format!("{}/2", b.display())));
    let v: serde_json::Value = serde_json::from_str(&repo.ok(&["snapshots", "--json"])).unwrap();
    assert_eq!(
        v[0]["paths"].as_array().unwrap().len(),
        2,
        "nested path folded into its parent"
    );
}

#[test]
fn restore_over_existing_tree_rewrites_only_what_differs() {
    let repo = Repo::new();
    let src = repo.dir.path().join("site");
    for i in 0..20 {
        let p = src.join(format!("page{i}.html"));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, format!("<p>page {i}</p>").repeat(100)).unwrap();
    }
    repo.backup(&[&src], &[]);
    let target = repo.dir.path().join("www");
    repo.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    let live = restored(&target, &src);

    // the webroot drifts: one page edited (same size, new mtime), one
    // truncated, one extra file dropped in
    let ino_before = fs::metadata(live.join("page3.html")).unwrap().ino();
    let mut edited = fs::read(live.join("page1.html")).unwrap();
    edited[5] = b'X';
    fs::write(live.join("page1.html"), &edited).unwrap();
    fs::write(live.join("page2.html"), b"short").unwrap();
    fs::write(live.join("uploaded.php"), b"<?php evil(); ?>").unwrap();

    let dry = repo.ok(&[
        "restore",
        "latest",
        "--target",
        target.to_str().unwrap(),
        "--delete",
        "--dry-run",
        "--json",
    ]);
    let actions: Vec<serde_json::Value> = dry
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &serde_json::Value| v["message_type"] == "verbose_status")
        .collect();
    let act = |kind: &str, name: &str| {
        actions
            .iter()
            .any(|a| a["action"] == kind && a["item"].as_str().unwrap().ends_with(name))
    };
    assert!(act("updated", "page1.html"), "{dry}");
    assert!(act("updated", "page2.html"), "{dry}");
    assert!(act("deleted", "uploaded.php"), "{dry}");
    assert!(act("unchanged", "page3.html"), "{dry}");
    // a dry run changed nothing
    assert!(live.join("uploaded.php").exists());
    assert_eq!(fs::read(live.join("page2.html")).unwrap(), b"short");

    let out = repo.ok(&[
        "restore",
        "latest",
        "--target",
        target.to_str().unwrap(),
        "--delete",
        "--json",
    ]);
    let s = summary(&out);
    assert_eq!(s["files_restored"], 2, "{s}");
    assert_eq!(s["files_unchanged"], 18, "{s}");
    assert_eq!(s["files_deleted"], 1, "{s}");
    assert!(!live.join("uploaded.php").exists());
    assert_eq!(
        fs::metadata(live.join("page3.html")).unwrap().ino(),
        ino_before,
        "identical file was not rewritten"
    );
    assert_same_tree(&src, &live);
}

#[test]
fn restore_include_and_exclude() {
    let repo = Repo::new();
    let src = repo.dir.path().join("src");
    for f in [
        "a/keep.txt",
        "a/skip.log",
        "b/other.txt",
        "c/deep/wanted.txt",
    ] {
        let p = src.join(f);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, f).unwrap();
    }
    repo.backup(&[&src], &[]);
    let t = repo.dir.path().join("t");
    repo.ok(&[
        "restore",
        "latest",
        "--target",
        t.to_str().unwrap(),
        "--include",
        "wanted.txt",
        "--include",
        &format!("{}/a", src.display()),
        "--exclude",
        "*.log",
    ]);
    let r = restored(&t, &src);
    assert!(r.join("a/keep.txt").exists());
    assert!(r.join("c/deep/wanted.txt").exists());
    assert!(!r.join("a/skip.log").exists());
    assert!(
        !r.join("b").exists(),
        "directories with nothing selected are not created"
    );
}

#[test]
fn dump_directory_as_tar_that_gnu_tar_extracts() {
    let repo = Repo::new();
    let src = repo.dir.path().join("src");
    make_rich_tree(&src);
    repo.backup(&[&src], &[]);
    let tarfile = repo.dir.path().join("out.tar");
    let out = repo
        .cmd()
        .args(["dump", "latest", src.to_str().unwrap()])
        .output()
        .unwrap();
    assert_ok(&out);
    fs::write(&tarfile, &out.stdout).unwrap();
    let x = repo.dir.path().join("x");
    fs::create_dir(&x).unwrap();
    run_ok(
        std::process::Command::new("tar")
            .args(["--xattrs", "--xattrs-include=user.*", "-xpf"])
            .arg(&tarfile)
            .arg("-C")
            .arg(&x),
    );
    // tar stores the sparse file's holes as zeros: all else must match
    assert_same_tree_with(
        &src,
        &restored(&x, &src),
        Compare {
            sparse: false,
            ..Compare::ALL
        },
    );
}

#[test]
fn snapshot_selection_by_prefix_latest_and_filters() {
    let repo = Repo::new();
    let src = repo.dir.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), b"1").unwrap();
    repo.backup(&[&src], &["--host", "web1", "--tag", "nightly"]);
    fs::write(src.join("f"), b"2").unwrap();
    repo.backup(&[&src], &["--host", "web2", "--tag", "manual,important"]);
    let ids = repo.snapshot_ids();
    assert_eq!(ids.len(), 2);
    let f = src.join("f");
    let cat = |args: &[&str]| {
        let mut a = vec!["dump"];
        a.extend_from_slice(args);
        a.push(f.to_str().unwrap());
        let o = repo.cmd().args(&a).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        o.stdout
    };
    assert_eq!(cat(&["latest"]), b"2");
    assert_eq!(cat(&["latest", "--host", "web1"]), b"1");
    assert_eq!(cat(&["latest", "--tag", "important,manual"]), b"2");
    assert_eq!(cat(&[&ids[0][..6]]), b"1");
    let missing = repo.run(&["ls", "latest", "--host", "nope"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no snapshot matches"));
    let text = repo.ok(&["snapshots", "--tag", "nightly"]);
    assert!(text.contains("web1") && !text.contains("web2"), "{text}");
}

#[test]
fn diff_stats_and_cat() {
    let repo = Repo::new();
    let src = repo.dir.path().join("src");
    fs::create_dir_all(src.join("d")).unwrap();
    fs::write(src.join("same"), b"same").unwrap();
    fs::write(src.join("changes"), b"v1").unwrap();
    fs::write(src.join("goes"), b"bye").unwrap();
    repo.backup(&[&src], &[]);
    fs::write(src.join("changes"), b"v2 longer").unwrap();
    fs::remove_file(src.join("goes")).unwrap();
    fs::write(src.join("d/new"), b"hi").unwrap();
    repo.backup(&[&src], &[]);
    let ids = repo.snapshot_ids();
    let d = repo.ok(&["diff", &ids[0], &ids[1]]);
    let has = |mark: &str, name: &str| d.lines().any(|l| l.starts_with(mark) && l.ends_with(name));
    assert!(has("M", "/changes"), "{d}");
    assert!(has("-", "/goes"), "{d}");
    assert!(has("+", "/d/new"), "{d}");
    assert!(!d.contains("/same"), "{d}");

    let st: serde_json::Value =
        serde_json::from_str(repo.ok(&["stats", "--json", &ids[1]]).trim()).unwrap();
    assert_eq!(st["total_file_count"], 3);
    assert_eq!(st["total_size"], 4 + 9 + 2);
    let raw: serde_json::Value =
        serde_json::from_str(repo.ok(&["stats", "--json", "--mode", "raw-data"]).trim()).unwrap();
    assert!(raw["total_blob_count"].as_u64().unwrap() >= 5);

    let cfg: serde_json::Value = serde_json::from_str(&repo.ok(&["cat", "config"])).unwrap();
    assert_eq!(cfg["version"], 2);
    let snap: serde_json::Value =
        serde_json::from_str(&repo.ok(&["cat", "snapshot", &ids[0][..10]])).unwrap();
    assert_eq!(snap["paths"][0], src.to_str().unwrap());
    assert!(
        snap["program_version"]
            .as_str()
            .unwrap()
            .starts_with("holdfast ")
    );
}

#[test]
fn completion_scripts() {
    for sh in ["bash", "zsh", "fish"] {
        let out = std::process::Command::new(holdfast_bin())
            .args(["completion", sh])
            .output()
            .unwrap();
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).contains("holdfast"));
    }
}

#[test]
fn unreadable_file_is_skipped_with_exit_code_3() {
    let repo = Repo::new();
    let src = repo.dir.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("ok.txt"), b"fine").unwrap();
    fs::write(src.join("secret.txt"), b"no access").unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(src.join("secret.txt"), fs::Permissions::from_mode(0o000)).unwrap();
    // root reads everything: run the backup as an unprivileged user
    let mut cmd = if is_root() {
        run_ok(
            std::process::Command::new("chown")
                .args(["-R", "65534:65534"])
                .arg(repo.dir.path()),
        );
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(holdfast_bin());
        c
    } else {
        std::process::Command::new(holdfast_bin())
    };
    clean(&mut cmd);
    let out = cmd
        .env("HOLDFAST_REPO", &repo.path)
        .env("HOLDFAST_PASSWORD", PASSWORD)
        .args(["backup", "--json"])
        .arg(&src)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "stderr: {stderr}");
    assert!(
        stderr.contains("secret.txt") && stderr.contains("ermission denied"),
        "{stderr}"
    );
    let ls = repo.ok(&["ls", "latest"]);
    assert!(ls.contains("ok.txt") && !ls.contains("secret.txt"), "{ls}");
}

#[test]
fn dry_run_writes_nothing() {
    let repo = Repo::new();
    let src = repo.dir.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), vec![7u8; 100_000]).unwrap();
    let s = repo.backup(&[&src], &["--dry-run"]);
    assert_eq!(s["dry_run"], true);
    assert_eq!(s["files_new"], 1);
    assert!(s.get("snapshot_id").is_none());
    assert!(repo.snapshot_ids().is_empty());
    for dir in ["index", "snapshots"] {
        assert_eq!(
            fs::read_dir(repo.path.join(dir)).unwrap().count(),
            0,
            "{dir} is empty"
        );
    }
    let packs: usize = fs::read_dir(repo.path.join("data"))
        .unwrap()
        .map(|d| fs::read_dir(d.unwrap().path()).unwrap().count())
        .sum();
    assert_eq!(packs, 0);
}

#[test]
fn chunk_size_is_chosen_per_backup() {
    let repo = Repo::new();
    let src = repo.dir.path().join("src");
    fs::create_dir_all(&src).unwrap();
    let data = xorshift(4_000_000, 88172645463325252);
    fs::write(src.join("f"), &data).unwrap();
    let big = repo.backup(&[&src], &[]);
    let small = repo.backup(&[&src], &["--force", "--chunk-size", "16K:64K:256K"]);
    assert!(big["data_blobs"].as_u64().unwrap() <= 8, "{big}");
    assert!(small["data_blobs"].as_u64().unwrap() >= 16, "{small}");
    let bad = repo.run(&[
        "backup",
        "--chunk-size",
        "64K:16K:256K",
        src.to_str().unwrap(),
    ]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid chunk sizes"));
}
