//! Repository integrity and lifecycle: check (and agreement with restic's
//! check on damaged repositories), forget (the same policy decisions as
//! restic), prune, keys, and concurrent writers.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::*;
use holdfast_engine::blob_saver::{BlobSaver, SaverOptions};
use holdfast_engine::repository::Repository;
use holdfast_format::BlobType;
use holdfast_format::gotime::GoTime;
use holdfast_format::snapshot::Snapshot;
use holdfast_format::tree::{Node, NodeType, Tree};
use holdfast_storage::{Backend, LocalBackend};

/// The files of the repository's `dir`, sorted.
fn files(root: &Path, dir: &str) -> Vec<PathBuf> {
    files_below(&root.join(dir))
}

/// A repository with two snapshots and several packs of each kind.
fn small_repo() -> (Repo, PathBuf) {
    let repo = Repo::new();
    let src = repo.dir.path().join("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    for i in 0..6u32 {
        let data: Vec<u8> = (0..(1u32 << 20))
            .map(|j| (j.wrapping_mul(2654435761).wrapping_add(i) >> 11) as u8)
            .collect();
        fs::write(src.join(format!("sub/f{i}")), data).unwrap();
    }
    fs::write(src.join("note.txt"), b"hello").unwrap();
    repo.backup(&[&src], &["--pack-size", "4"]);
    fs::write(src.join("note.txt"), b"hello again").unwrap();
    repo.backup(&[&src], &[]);
    (repo, src)
}

fn holdfast_check(repo: &Repo, read_data: bool) -> std::process::Output {
    let mut args = vec!["check"];
    if read_data {
        args.push("--read-data");
    }
    repo.run(&args)
}

fn restic_check_ok(repo: &Repo) -> bool {
    repo.restic()
        .args(["check", "--read-data"])
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
fn check_passes_on_a_healthy_repository() {
    let (repo, _) = small_repo();
    for args in [
        vec!["check"],
        vec!["check", "--read-data"],
        vec!["check", "--read-data-subset", "1/3"],
        vec!["check", "--read-data-subset", "50%"],
    ] {
        let out = repo.run(&args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }
    let out = repo.ok(&["check", "--read-data", "--json"]);
    let s = summary(&out);
    assert_eq!(s["errors"], 0);
    assert!(s["packs_read"].as_u64().unwrap() >= 3, "{s}");
    assert!(restic_check_ok(&repo));
}

/// Damage one file of a fresh repository, then require both checks to
/// call it damaged and holdfast to name the file.
fn damaged(what: &str, damage: impl Fn(&Repo) -> PathBuf) {
    let (repo, _) = small_repo();
    let file = damage(&repo);
    let out = holdfast_check(&repo, true);
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{what}: {err}");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{what}: holdfast check must fail:\n{err}"
    );
    let name = file.file_name().unwrap().to_str().unwrap();
    assert!(
        err.contains(&name[..16.min(name.len())]),
        "{what}: holdfast names {name}:\n{err}"
    );
    assert!(
        !restic_check_ok(&repo),
        "{what}: restic check must agree the repository is damaged"
    );
}

fn flip(path: &Path, at: impl Fn(usize) -> usize) {
    let mut b = fs::read(path).unwrap();
    let i = at(b.len());
    b[i] ^= 0x5a;
    fs::write(path, b).unwrap();
}

fn truncate(path: &Path) {
    let b = fs::read(path).unwrap();
    fs::write(path, &b[..b.len() * 2 / 3]).unwrap();
}

fn biggest_pack(repo: &Repo) -> PathBuf {
    files(&repo.path, "data")
        .into_iter()
        .max_by_key(|p| fs::metadata(p).unwrap().len())
        .unwrap()
}

#[test]
fn damage_in_packs_is_found_by_both_checks() {
    damaged("flipped blob byte", |r| {
        let p = biggest_pack(r);
        flip(&p, |n| n / 3);
        p
    });
    damaged("flipped header byte", |r| {
        let p = biggest_pack(r);
        flip(&p, |n| n - 10);
        p
    });
    damaged("truncated pack", |r| {
        let p = biggest_pack(r);
        truncate(&p);
        p
    });
    damaged("deleted pack", |r| {
        let p = biggest_pack(r);
        fs::remove_file(&p).unwrap();
        p
    });
}

#[test]
fn damage_in_index_and_snapshots_is_found_by_both_checks() {
    damaged("flipped index byte", |r| {
        let p = files(&r.path, "index").remove(0);
        flip(&p, |n| n / 2);
        p
    });
    damaged("truncated index", |r| {
        let p = files(&r.path, "index").remove(0);
        truncate(&p);
        p
    });
    damaged("flipped snapshot byte", |r| {
        let p = files(&r.path, "snapshots").remove(0);
        flip(&p, |n| n / 2);
        p
    });
}

#[test]
fn damaged_blob_names_the_snapshots_and_paths_it_affects() {
    let (repo, src) = small_repo();
    let snaps = repo.snapshot_ids();
    // damage the middle of a big data pack: a blob of some sub/f* file
    flip(&biggest_pack(&repo), |n| n / 2);
    let out = repo.run(&["check", "--read-data", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let findings: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &serde_json::Value| v["message_type"] == "finding")
        .collect();
    let affected: Vec<&serde_json::Value> = findings
        .iter()
        .filter(|f| {
            !f["affects"]
                .as_array()
                .map(|a| a.is_empty())
                .unwrap_or(true)
        })
        .collect();
    assert!(!affected.is_empty(), "{findings:?}");
    let a = &affected[0]["affects"];
    let snaps_hit: BTreeSet<&str> = a
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["snapshot"].as_str().unwrap())
        .collect();
    assert_eq!(
        snaps_hit.len(),
        2,
        "both snapshots share the damaged file: {a}"
    );
    assert!(snaps.iter().all(|s| snaps_hit.contains(s.as_str())));
    let path = a[0]["path"].as_str().unwrap();
    assert!(
        path.starts_with(&format!("{}/sub/f", src.display())),
        "{path}"
    );
}

#[test]
fn unreferenced_packs_are_reported_not_ignored_and_prune_removes_them() {
    let (repo, _) = small_repo();
    // a pack no index lists, as a crash between storing a pack and writing
    // its index leaves behind
    let orphan_dir = repo.path.join("data/00");
    fs::create_dir_all(&orphan_dir).unwrap();
    let orphan = orphan_dir.join("00".repeat(32));
    fs::write(&orphan, b"left behind by a crashed writer").unwrap();
    let out = repo.run(&["check"]);
    assert!(
        out.status.success(),
        "an unreferenced pack is a warning: {}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("not referenced by any index"),
        "{}",
        stderr(&out)
    );
    repo.ok(&["prune"]);
    assert!(!orphan.exists());
    let out = repo.run(&["check", "--read-data"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
}

/// Snapshot times spread over two years in several time zones, written
/// directly (they all share one tree).
fn make_history(repo: &Repo, n: usize, seed: u64) {
    let be: Arc<dyn Backend> = Arc::new(LocalBackend::new(&repo.path));
    let r = Arc::new(Repository::open(be, PASSWORD.as_bytes()).unwrap());
    let saver = BlobSaver::new(r.clone(), r.load_index().unwrap(), SaverOptions::default());
    let mut dir = Node::new(b"data".to_vec(), NodeType::Dir);
    dir.mode = holdfast_format::tree::gomode::DIR | 0o755;
    dir.subtree = Some(
        saver
            .save(BlobType::Tree, Tree::default().to_blob())
            .unwrap()
            .id,
    );
    let root = saver
        .save(BlobType::Tree, Tree { nodes: vec![dir] }.to_blob())
        .unwrap()
        .id;
    saver.finish().unwrap();
    let mut x = seed | 1;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let start = 1_700_000_000i64;
    for i in 0..n {
        let secs = start + (rnd() % (2 * 365 * 86400)) as i64;
        let offset = [0, 3600, 7200, -5 * 3600, 19800][(rnd() % 5) as usize];
        let mut s = Snapshot::new(
            root,
            vec![if i % 3 == 0 {
                "/srv".into()
            } else {
                "/data".into()
            }],
            GoTime::utc(secs, (rnd() % 1_000_000_000) as u32).with_offset(offset),
        );
        s.hostname = if rnd() % 4 == 0 {
            "web2".into()
        } else {
            "web1".into()
        };
        if rnd() % 10 == 0 {
            s.tags = vec!["keep".into()];
        }
        r.save_snapshot(&s).unwrap();
    }
}

fn removed_ids(out: &str) -> BTreeSet<String> {
    let v: serde_json::Value =
        serde_json::from_str(out.lines().find(|l| l.starts_with('[')).unwrap_or("[]")).unwrap();
    let mut set = BTreeSet::new();
    for g in v.as_array().unwrap() {
        for s in g["remove"].as_array().map(|a| a.as_slice()).unwrap_or(&[]) {
            set.insert(s["id"].as_str().unwrap().to_string());
        }
    }
    set
}

/// Snapshots holdfast keeps only because restic ≥ 0.16 keeps the oldest
/// snapshot while a bucket has counts left (restic 0.14 does not).
fn kept_only_as_oldest(out: &str) -> BTreeSet<String> {
    let v: serde_json::Value =
        serde_json::from_str(out.lines().find(|l| l.starts_with('[')).unwrap()).unwrap();
    let mut set = BTreeSet::new();
    for g in v.as_array().unwrap() {
        for r in g["reasons"].as_array().unwrap() {
            let m = r["matches"].as_array().unwrap();
            if !m.is_empty() && m.iter().all(|x| x.as_str().unwrap().starts_with("oldest ")) {
                set.insert(r["snapshot"]["id"].as_str().unwrap().to_string());
            }
        }
    }
    set
}

fn restic_is_old() -> bool {
    let v = run_ok(std::process::Command::new("restic").arg("version"));
    // "restic 0.14.0 compiled with …"
    let ver = v.split_whitespace().nth(1).unwrap_or("0.0.0");
    let mut it = ver.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (maj, min) = (it.next().unwrap_or(0), it.next().unwrap_or(0));
    maj == 0 && min < 16
}

#[test]
fn forget_keeps_the_same_snapshots_as_restic() {
    let repo = Repo::new();
    make_history(&repo, 400, 0x5eed);
    let old_restic = restic_is_old();
    let policies: Vec<Vec<&str>> = vec![
        vec!["--keep-last", "10"],
        vec!["--keep-daily", "7"],
        vec!["--keep-hourly", "48"],
        vec!["--keep-weekly", "5", "--keep-monthly", "6"],
        vec![
            "--keep-daily",
            "7",
            "--keep-weekly",
            "4",
            "--keep-monthly",
            "12",
            "--keep-yearly",
            "3",
        ],
        vec!["--keep-within", "1m15d"],
        vec![
            "--keep-within-daily",
            "20d",
            "--keep-within-weekly",
            "3m",
            "--keep-within-monthly",
            "1y",
        ],
        vec!["--keep-last", "3", "--keep-tag", "keep"],
        vec!["--keep-monthly", "100"],
        vec!["--keep-daily", "30", "--group-by", "host"],
        vec!["--keep-weekly", "8", "--group-by", ""],
        vec!["--keep-yearly", "1", "--host", "web2"],
    ];
    for p in policies {
        let mut args = vec!["forget", "--dry-run", "--json"];
        args.extend_from_slice(&p);
        let ours = repo.ok(&args);
        let theirs = run_ok(repo.restic().args(&args));
        let mut ours_removed = removed_ids(&ours);
        let theirs_removed = removed_ids(&theirs);
        if old_restic {
            ours_removed.extend(kept_only_as_oldest(&ours));
        }
        assert_eq!(
            ours_removed, theirs_removed,
            "policy {p:?}: holdfast and restic disagree"
        );
        assert!(
            !theirs_removed.is_empty() || p.contains(&"--keep-monthly"),
            "policy {p:?} removes something"
        );
    }
    // a real forget removes exactly what the dry run announced
    let dry = removed_ids(&repo.ok(&["forget", "--dry-run", "--json", "--keep-daily", "7"]));
    repo.ok(&["forget", "--keep-daily", "7"]);
    let left: BTreeSet<String> = repo.snapshot_ids().into_iter().collect();
    assert!(dry.is_disjoint(&left));
    assert_eq!(left.len() + dry.len(), 400);
}

#[test]
fn prune_after_forget_keeps_every_needed_blob() {
    let repo = Repo::new();
    let src = repo.dir.path().join("src");
    fs::create_dir_all(&src).unwrap();
    let mut copies = Vec::new();
    for generation in 0..5u32 {
        // each generation rewrites some files and removes one
        for i in 0..8u32 {
            if (i + generation) % 3 == 0 {
                let data: Vec<u8> = (0..(300_000 + i * 1000))
                    .map(|j| (j ^ (generation * 977 + i)) as u8)
                    .collect();
                fs::write(src.join(format!("f{i}")), data).unwrap();
            }
        }
        let _ = fs::remove_file(src.join(format!("f{}", generation + 3)));
        repo.backup(&[&src], &["--pack-size", "4"]);
        let copy = repo.dir.path().join(format!("gen{generation}"));
        run_ok(
            std::process::Command::new("cp")
                .arg("-a")
                .arg(&src)
                .arg(&copy),
        );
        copies.push(copy);
    }
    let before: u64 = files(&repo.path, "data")
        .iter()
        .map(|p| fs::metadata(p).unwrap().len())
        .sum();
    let dry = repo.ok(&["prune", "--dry-run"]);
    assert!(dry.contains("dry run"), "{dry}");
    repo.ok(&[
        "forget",
        "--keep-last",
        "2",
        "--prune",
        "--max-unused",
        "0%",
    ]);
    let after: u64 = files(&repo.path, "data")
        .iter()
        .map(|p| fs::metadata(p).unwrap().len())
        .sum();
    assert!(after < before, "prune freed space: {before} -> {after}");
    let out = repo.run(&["check", "--read-data"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("warning"),
        "no leftovers: {}",
        stderr(&out)
    );
    assert!(restic_check_ok(&repo));
    // the two kept snapshots restore exactly
    let ids = repo.snapshot_ids();
    assert_eq!(ids.len(), 2);
    for (id, generation) in ids.iter().zip([3usize, 4]) {
        let t = repo.dir.path().join(format!("restore-{generation}"));
        repo.ok(&["restore", id, "--target", t.to_str().unwrap()]);
        assert_same_tree(&copies[generation], &t.join(src.strip_prefix("/").unwrap()));
    }
    // nothing left to do
    let again = repo.ok(&["prune"]);
    assert!(again.contains("nothing to prune"), "{again}");
}

#[test]
fn two_backups_at_once_both_succeed() {
    let repo = Repo::new();
    let a = repo.dir.path().join("a");
    let b = repo.dir.path().join("b");
    for (d, seed) in [(&a, 1u8), (&b, 2u8)] {
        fs::create_dir_all(d).unwrap();
        for i in 0..20 {
            fs::write(
                d.join(format!("f{i}")),
                vec![seed.wrapping_mul(i + 1); 200_000],
            )
            .unwrap();
        }
    }
    let ca = repo
        .cmd()
        .args(["backup", a.to_str().unwrap()])
        .spawn()
        .unwrap();
    let cb = repo
        .cmd()
        .args(["backup", b.to_str().unwrap()])
        .spawn()
        .unwrap();
    let (ra, rb) = (
        ca.wait_with_output().unwrap(),
        cb.wait_with_output().unwrap(),
    );
    assert!(ra.status.success() && rb.status.success());
    assert_eq!(repo.snapshot_ids().len(), 2);
    repo.ok(&["check", "--read-data"]);
    assert!(restic_check_ok(&repo));
}

/// Add a key (or, with `passwd`, change the current one) to the password
/// `password`, given in the file `name` beside the repository.
fn key_from_file(repo: &Repo, command: &str, name: &str, password: &str) -> PathBuf {
    let file = repo.dir.path().join(name);
    fs::write(&file, password).unwrap();
    repo.ok(&[
        "key",
        command,
        "--new-password-file",
        file.to_str().unwrap(),
        "--kdf-log-n",
        "10",
    ]);
    file
}

/// The id of the key `key list` marks as current (or, with `false`, one it
/// does not), and how many keys it lists.
fn key_id(repo: &Repo, current: bool) -> (String, usize) {
    let keys: serde_json::Value =
        serde_json::from_str(&repo.ok(&["key", "list", "--json"])).unwrap();
    let keys = keys.as_array().unwrap();
    let id = keys.iter().find(|k| k["current"] == current).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    (id, keys.len())
}

#[test]
fn key_management() {
    let repo = Repo::new();
    key_from_file(&repo, "add", "pw2", "second password\n");
    let (current, keys) = key_id(&repo, true);
    assert_eq!(keys, 2);
    let out = repo.run(&["key", "remove", &current]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("in use") || stderr(&out).contains("this session is using"),
        "{}",
        stderr(&out)
    );
    // change the password: the old one stops working, the new one works
    let pw3 = key_from_file(&repo, "passwd", "pw3", "third password");
    assert_eq!(repo.run(&["snapshots"]).status.code(), Some(12));
    let mut c = repo.cmd();
    c.env_remove("HOLDFAST_PASSWORD")
        .env("HOLDFAST_PASSWORD_FILE", &pw3);
    assert!(c.arg("snapshots").output().unwrap().status.success());
    let mut r = repo.restic();
    r.env_remove("RESTIC_PASSWORD")
        .env("RESTIC_PASSWORD_FILE", &pw3);
    run_ok(r.arg("snapshots"));
}

#[test]
fn damaged_key_file_is_named_by_check() {
    let repo = Repo::new();
    key_from_file(&repo, "add", "pw2", "second");
    let (other, _) = key_id(&repo, false);
    let path = files(&repo.path, "keys")
        .into_iter()
        .find(|p| p.file_name().unwrap().to_str().unwrap().starts_with(&other))
        .unwrap();
    flip(&path, |n| n / 2);
    let out = repo.run(&["check"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("keys/{other}")),
        "{}",
        stderr(&out)
    );
}
