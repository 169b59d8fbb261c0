//! Bad input gets a clear error, the right exit code, and loses nothing:
//! wrong passwords, missing repositories and sources, held locks, damaged
//! packs, index and snapshot files.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::*;

/// Every file of the repository with its bytes.
fn snapshot_files(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    files_below(root)
        .into_iter()
        .map(|p| {
            let bytes = fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

fn files_under(root: &Path, dir: &str) -> Vec<PathBuf> {
    files_below(&root.join(dir))
}

fn no_panic(o: &std::process::Output) {
    let e = stderr(o);
    assert!(
        !e.contains("panicked") && !e.contains("RUST_BACKTRACE"),
        "panic: {e}"
    );
}

#[test]
fn wrong_password_exits_12_and_touches_nothing() {
    let repo = Repo::new();
    let src = repo.dir.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), b"data").unwrap();
    repo.backup(&[&src], &[]);
    let before = snapshot_files(&repo.path);
    for args in [
        vec!["snapshots"],
        vec!["backup", src.to_str().unwrap()],
        vec!["restore", "latest", "--target", "/tmp/never"],
    ] {
        let out = repo
            .cmd()
            .env("HOLDFAST_PASSWORD", "not the password")
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(12), "{args:?}: {}", stderr(&out));
        let e = stderr(&out);
        assert!(e.contains("wrong password"), "{e}");
        assert!(
            !e.contains("not the password"),
            "the password must never be printed: {e}"
        );
        no_panic(&out);
    }
    assert!(
        snapshot_files(&repo.path) == before,
        "a failed open changed the repository"
    );
    assert!(!Path::new("/tmp/never").exists());
}

#[test]
fn missing_repository_exits_10() {
    let repo = Repo::uninit();
    let out = repo.run(&["snapshots"]);
    assert_eq!(out.status.code(), Some(10), "{}", stderr(&out));
    assert!(stderr(&out).contains("does not exist"));
    assert!(
        stderr(&out).contains("holdfast init"),
        "says what to do next"
    );
    // init twice is refused
    repo.ok(&["init", "--kdf-log-n", "10"]);
    let again = repo.run(&["init", "--kdf-log-n", "10"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("already exists"));
}

#[test]
fn no_password_anywhere_is_a_clear_error() {
    let repo = Repo::new();
    let out = repo
        .cmd()
        .env_remove("HOLDFAST_PASSWORD")
        .args(["snapshots"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("HOLDFAST_PASSWORD_FILE"),
        "{}",
        stderr(&out)
    );
    // restic's variables work as fallbacks
    let out = repo
        .cmd()
        .env_remove("HOLDFAST_PASSWORD")
        .env_remove("HOLDFAST_REPO")
        .env("RESTIC_PASSWORD", PASSWORD)
        .env("RESTIC_REPOSITORY", &repo.path)
        .args(["snapshots"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // a password command
    let out = repo
        .cmd()
        .env_remove("HOLDFAST_PASSWORD")
        .env("HOLDFAST_PASSWORD_COMMAND", format!("echo '{PASSWORD}'"))
        .args(["snapshots"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn held_lock_exits_11_naming_the_holder_and_stale_locks_are_cleared() {
    let repo = Repo::new();
    let src = repo.dir.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), b"x").unwrap();
    let be: Arc<dyn holdfast_storage::Backend> =
        Arc::new(holdfast_storage::LocalBackend::new(&repo.path));
    let r =
        Arc::new(holdfast_engine::repository::Repository::open(be, PASSWORD.as_bytes()).unwrap());
    let held = holdfast_engine::lock::lock(&r, true, Duration::ZERO, &mut |_| {}).unwrap();
    let out = repo.run(&["backup", src.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(11), "{}", stderr(&out));
    let e = stderr(&out);
    assert!(e.contains(&format!("PID {}", std::process::id())), "{e}");
    assert!(e.contains("exclusive"), "{e}");
    let t = std::time::Instant::now();
    let out = repo.run(&["--retry-lock", "2s", "backup", src.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(11));
    assert!(t.elapsed() >= Duration::from_secs(2), "--retry-lock waited");
    drop(held);
    repo.ok(&["backup", src.to_str().unwrap()]);

    // a lock left by a process that no longer exists is removed with a message
    let mut dead = holdfast_format::lock::Lock {
        time: holdfast_format::gotime::GoTime::now(),
        exclusive: true,
        hostname: holdfast_engine::system::hostname(),
        username: "ghost".into(),
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut child = std::process::Command::new("true").spawn().unwrap();
    dead.pid = child.id() as i64;
    child.wait().unwrap();
    r.save_json(holdfast_storage::FileType::Lock, &dead.to_json())
        .unwrap();
    let out = repo.run(&["backup", src.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("removed stale"), "{}", stderr(&out));
    assert!(
        files_under(&repo.path, "locks").is_empty(),
        "no lock left behind"
    );
}

#[test]
fn missing_sources() {
    let repo = Repo::new();
    let there = repo.dir.path().join("there");
    fs::create_dir_all(&there).unwrap();
    let gone = repo.dir.path().join("gone");
    let out = repo.run(&["backup", gone.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("none of the source paths exist"),
        "{}",
        stderr(&out)
    );
    assert!(repo.snapshot_ids().is_empty());
    let out = repo.run(&["backup", gone.to_str().unwrap(), there.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains(gone.to_str().unwrap()));
    assert_eq!(repo.snapshot_ids().len(), 1);
}

/// A repository with several packs, each file in its own pack.
fn multi_pack_repo() -> (Repo, PathBuf) {
    let repo = Repo::new();
    let src = repo.dir.path().join("src");
    fs::create_dir_all(&src).unwrap();
    for i in 0..4u8 {
        // random-ish, incompressible, > 4 MiB each so every file fills a pack
        let data: Vec<u8> = (0..(5 << 20))
            .map(|j: u32| ((j.wrapping_mul(2654435761) >> 13) as u8) ^ i)
            .collect();
        fs::write(src.join(format!("file{i}")), data).unwrap();
    }
    repo.backup(&[&src], &["--pack-size", "4", "--compression", "off"]);
    (repo, src)
}

/// The pack holding the first data blob of `file` (from `cat pack`), and
/// the offset of a byte in the middle of that blob. Packs mix blobs of
/// several files (the pipeline is parallel), so a corruption must aim at
/// this blob, not at a fixed offset.
fn pack_of(repo: &Repo, src: &Path, file: &str) -> (PathBuf, usize) {
    let tree_json = repo.ok(&["ls", "--json", "latest"]);
    let _ = tree_json;
    // find the file's first blob through the snapshot tree
    let snap: serde_json::Value =
        serde_json::from_str(&repo.ok(&["cat", "snapshot", &repo.snapshot_ids()[0]])).unwrap();
    let mut tree = snap["tree"].as_str().unwrap().to_string();
    let parts: Vec<String> = src
        .join(file)
        .components()
        .skip(1)
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let mut blob = String::new();
    for (i, part) in parts.iter().enumerate() {
        let t: serde_json::Value = serde_json::from_str(&repo.ok(&["cat", "tree", &tree])).unwrap();
        let n = t["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == part.as_str())
            .unwrap()
            .clone();
        if i + 1 == parts.len() {
            blob = n["content"][0].as_str().unwrap().to_string();
        } else {
            tree = n["subtree"].as_str().unwrap().to_string();
        }
    }
    for p in files_under(&repo.path, "data") {
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        let h: serde_json::Value = serde_json::from_str(&repo.ok(&["cat", "pack", &name])).unwrap();
        if let Some(b) = h
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["id"] == blob.as_str())
        {
            let middle = b["offset"].as_u64().unwrap() + b["length"].as_u64().unwrap() / 2;
            return (p, middle as usize);
        }
    }
    panic!("no pack holds blob {blob}");
}

#[test]
fn corrupt_pack_fails_the_affected_file_loudly_and_restores_the_rest() {
    let (repo, src) = multi_pack_repo();
    let (pack, middle) = pack_of(&repo, &src, "file2");
    let mut bytes = fs::read(&pack).unwrap();
    bytes[middle] ^= 0xff;
    fs::write(&pack, bytes).unwrap();
    let target = repo.dir.path().join("out");
    let out = repo.run(&["restore", "latest", "--target", target.to_str().unwrap()]);
    no_panic(&out);
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert!(e.contains("file2"), "names the affected file: {e}");
    let pack_name = pack.file_name().unwrap().to_str().unwrap();
    assert!(e.contains(pack_name), "names the damaged pack: {e}");
    let r = target.join(src.strip_prefix("/").unwrap());
    for ok in ["file0", "file1", "file3"] {
        assert_eq!(
            fs::read(r.join(ok)).unwrap(),
            fs::read(src.join(ok)).unwrap(),
            "{ok} restored intact"
        );
    }
}

#[test]
fn truncated_pack_and_index_give_errors_naming_the_file() {
    let (repo, src) = multi_pack_repo();
    // truncated pack
    // cut inside file1's first blob, so the file's first read fails
    let (pack, middle) = pack_of(&repo, &src, "file1");
    let bytes = fs::read(&pack).unwrap();
    fs::write(&pack, &bytes[..middle]).unwrap();
    let out = repo
        .cmd()
        .args(["dump", "latest"])
        .arg(src.join("file1"))
        .output()
        .unwrap();
    no_panic(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(pack.file_name().unwrap().to_str().unwrap()),
        "{}",
        stderr(&out)
    );

    // truncated index
    let idx = files_under(&repo.path, "index").remove(0);
    let bytes = fs::read(&idx).unwrap();
    fs::write(&idx, &bytes[..bytes.len() - 7]).unwrap();
    let out = repo.run(&["ls", "latest"]);
    no_panic(&out);
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert!(
        e.contains(idx.file_name().unwrap().to_str().unwrap()),
        "{e}"
    );
    assert!(e.contains("damaged"), "{e}");
}

#[test]
fn garbled_snapshot_is_reported_and_others_still_list() {
    let repo = Repo::new();
    let src = repo.dir.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), b"1").unwrap();
    repo.backup(&[&src], &[]);
    repo.backup(&[&src], &["--force"]);
    let snaps = files_under(&repo.path, "snapshots");
    let mut b = fs::read(&snaps[0]).unwrap();
    b[20] ^= 1;
    fs::write(&snaps[0], b).unwrap();
    let out = repo.run(&["snapshots"]);
    no_panic(&out);
    assert!(out.status.success());
    assert!(
        stderr(&out).contains(snaps[0].file_name().unwrap().to_str().unwrap()),
        "{}",
        stderr(&out)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 snapshots"));
}

#[test]
fn damaged_config_is_named() {
    let repo = Repo::new();
    let cfg = repo.path.join("config");
    let mut b = fs::read(&cfg).unwrap();
    b[40] ^= 1;
    fs::write(&cfg, b).unwrap();
    let out = repo.run(&["snapshots"]);
    no_panic(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("config is damaged"),
        "{}",
        stderr(&out)
    );
}
