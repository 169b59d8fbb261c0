//! Object storage on a real S3 server: a private Garage started by the
//! harness on free loopback ports with a bucket and a key. holdfast's whole
//! lifecycle runs on it, restic (the reference peer) checks and restores
//! what holdfast wrote and holdfast reads and extends what restic wrote,
//! and a wrong key, bucket or region each gets a clear error without a
//! secret in it.

mod common;

use std::fs;
use std::path::Path;
use std::process::Output;

use common::servers::Garage;
use common::*;

/// restic 0.14 (Debian 12) stores symlink targets that are not UTF-8
/// lossily and cannot restore holes; everything else must match.
const RESTIC_COMPARE: Compare = Compare {
    sparse: false,
    non_utf8_links: false,
};

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn hf(g: &Garage, prefix: &str, args: &[&str]) -> String {
    ok(
        g.holdfast(prefix).args(args).output().unwrap(),
        &format!("holdfast {args:?}"),
    )
}

fn restored(target: &Path, src: &Path) -> std::path::PathBuf {
    target.join(src.strip_prefix("/").unwrap())
}

#[test]
fn a_private_garage_serves_a_restic_repository() {
    let g = Garage::shared();
    let src = tempfile::tempdir().unwrap();
    fs::write(src.path().join("f.txt"), "on object storage").unwrap();
    let cache = src.path().join("cache");
    let restic = |args: &[&str]| run_ok(g.restic("restic-smoke", &cache).args(args));
    restic(&["init"]);
    restic(&[
        "backup",
        "--quiet",
        src.path().join("f.txt").to_str().unwrap(),
    ]);
    let out = restic(&["check", "--read-data"]);
    assert!(out.contains("no errors were found"), "{out}");
    // the objects are in the bucket, where the key was allowed
    let info = String::from_utf8_lossy(&g.cli(&["bucket", "info", "backups"]).stdout).into_owned();
    assert!(info.contains("Objects"), "{info}");
}

#[test]
fn holdfast_lifecycle_on_garage_and_restic_reads_it() {
    let g = Garage::shared();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    make_rich_tree(&src);
    // a file over several packs
    let big: Vec<u8> = (0..(9u32 << 20))
        .map(|j| (j.wrapping_mul(2654435761) >> 11) as u8)
        .collect();
    fs::write(src.join("big.bin"), &big).unwrap();
    let p = "lifecycle";
    hf(g, p, &["init", "--kdf-log-n", "10"]);
    let first = summary(&hf(
        g,
        p,
        &[
            "backup",
            "--json",
            "--pack-size",
            "4",
            src.to_str().unwrap(),
        ],
    ));
    assert!(first["data_added"].as_u64().unwrap() > 9 << 20, "{first}");
    assert_eq!(first["storage_retries"], 0, "{first}");
    // unchanged: no file is read again, no data stored (a directory's
    // access time moved when the first backup read it, so trees may be)
    let second = summary(&hf(g, p, &["backup", "--json", src.to_str().unwrap()]));
    assert_eq!(second["data_blobs"], 0, "{second}");
    assert_eq!(second["files_new"], 0, "{second}");
    assert_eq!(second["files_changed"], 0, "{second}");
    fs::write(src.join("dir/third.txt"), b"a third run").unwrap();
    let third = summary(&hf(g, p, &["backup", "--json", src.to_str().unwrap()]));
    let third_id = third["snapshot_id"].as_str().unwrap().to_string();

    let check = hf(g, p, &["check", "--read-data"]);
    assert!(check.contains("no errors"), "{check}");

    // restore identical to the source
    let target = dir.path().join("restore");
    hf(
        g,
        p,
        &["restore", &third_id, "--target", target.to_str().unwrap()],
    );
    assert_same_tree(&src, &restored(&target, &src));

    // export reads from the bucket too
    let tar = dir.path().join("export.tar");
    hf(g, p, &["export", &third_id, "-o", tar.to_str().unwrap()]);
    let listing = ok(
        std::process::Command::new("tar")
            .arg("-tf")
            .arg(&tar)
            .output()
            .unwrap(),
        "tar -t",
    );
    assert!(listing.contains("big.bin"), "{listing}");

    // restic, the reference, agrees byte for byte
    let cache = dir.path().join("restic-cache");
    let out = run_ok(g.restic(p, &cache).args(["check", "--read-data"]));
    assert!(out.contains("no errors were found"), "{out}");
    let rtarget = dir.path().join("restic-restore");
    run_ok(
        g.restic(p, &cache)
            .args(["restore", &third_id, "--target"])
            .arg(&rtarget),
    );
    assert_same_tree_with(&src, &restored(&rtarget, &src), RESTIC_COMPARE);

    // forget + prune: the first two snapshots go, their unique data with them
    hf(g, p, &["forget", "--keep-last", "1", "--prune"]);
    let snaps: serde_json::Value =
        serde_json::from_str(&hf(g, p, &["snapshots", "--json"])).unwrap();
    assert_eq!(snaps.as_array().unwrap().len(), 1);
    let check = hf(g, p, &["check", "--read-data"]);
    assert!(check.contains("no errors"), "{check}");
    run_ok(g.restic(p, &cache).args(["check", "--read-data"]));
    // no lock left behind in the bucket
    let locks = run_ok(g.restic(p, &cache).args(["list", "locks", "--no-lock"]));
    assert!(locks.trim().is_empty(), "{locks}");
}

#[test]
fn holdfast_reads_and_extends_what_restic_wrote_on_garage() {
    let g = Garage::shared();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    make_rich_tree(&src);
    let p = "from-restic";
    let cache = dir.path().join("restic-cache");
    run_ok(g.restic(p, &cache).arg("init"));
    run_ok(g.restic(p, &cache).arg("backup").arg(&src));

    let target = dir.path().join("restore");
    hf(
        g,
        p,
        &["restore", "latest", "--target", target.to_str().unwrap()],
    );
    assert_same_tree_with(&src, &restored(&target, &src), RESTIC_COMPARE);

    fs::write(src.join("dir/by-holdfast.txt"), b"added by holdfast").unwrap();
    let s = summary(&hf(g, p, &["backup", "--json", src.to_str().unwrap()]));
    let id = s["snapshot_id"].as_str().unwrap().to_string();
    let out = run_ok(g.restic(p, &cache).args(["check", "--read-data"]));
    assert!(out.contains("no errors were found"), "{out}");
    let dumped = run_ok(g.restic(p, &cache).args([
        "dump",
        &id,
        src.join("dir/by-holdfast.txt").to_str().unwrap(),
    ]));
    assert_eq!(dumped, "added by holdfast");
}

#[test]
fn two_concurrent_backups_into_one_bucket_repository() {
    let g = Garage::shared();
    let dir = tempfile::tempdir().unwrap();
    let p = "concurrent";
    hf(g, p, &["init", "--kdf-log-n", "10"]);
    let mut children = Vec::new();
    for i in 0..2u8 {
        let src = dir.path().join(format!("src{i}"));
        fs::create_dir_all(&src).unwrap();
        let data: Vec<u8> = (0..(3u32 << 20))
            .map(|j| ((j.wrapping_mul(2654435761) >> 9) as u8) ^ i)
            .collect();
        fs::write(src.join("data.bin"), data).unwrap();
        children.push((
            src.clone(),
            g.holdfast(p)
                .args(["backup", "--json"])
                .arg(&src)
                .output_async(),
        ));
    }
    let mut ids = Vec::new();
    for (src, child) in children {
        let out = ok(child.wait_with_output().unwrap(), "concurrent backup");
        ids.push((
            src,
            summary(&out)["snapshot_id"].as_str().unwrap().to_string(),
        ));
    }
    let check = hf(g, p, &["check", "--read-data"]);
    assert!(check.contains("no errors"), "{check}");
    for (src, id) in ids {
        let got = g
            .holdfast(p)
            .args(["dump", &id])
            .arg(src.join("data.bin"))
            .output()
            .unwrap();
        assert!(got.status.success());
        assert!(got.stdout == fs::read(src.join("data.bin")).unwrap());
    }
}

trait Spawn {
    fn output_async(&mut self) -> std::process::Child;
}

impl Spawn for std::process::Command {
    fn output_async(&mut self) -> std::process::Child {
        self.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }
}

/// Run `holdfast snapshots` with some of the connection settings changed
/// and return its failure text.
fn failure(g: &Garage, location: &str, env: &[(&str, &str)]) -> String {
    let mut c = g.holdfast("unused");
    c.env("HOLDFAST_REPO", location).envs(env.iter().copied());
    let out = c
        .args(["snapshots", "--option", "s3.retries=1"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "succeeded with {env:?}");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains(&g.secret), "the secret leaked: {text}");
    assert!(!text.contains("panicked"), "{text}");
    text
}

#[test]
fn wrong_key_missing_bucket_and_wrong_region_are_named_without_secrets() {
    let g = Garage::shared();
    hf(g, "errors", &["init", "--kdf-log-n", "10"]);
    let here = g.location("errors");

    let bad_secret = failure(g, &here, &[("AWS_SECRET_ACCESS_KEY", "not-the-secret")]);
    assert!(bad_secret.contains(&g.endpoint), "{bad_secret}");
    assert!(bad_secret.contains("backups"), "{bad_secret}");
    assert!(bad_secret.contains("refused"), "{bad_secret}");
    assert!(!bad_secret.contains("not-the-secret"), "{bad_secret}");

    let unknown_key = failure(
        g,
        &here,
        &[("AWS_ACCESS_KEY_ID", "GK0000000000000000000000")],
    );
    assert!(unknown_key.contains("refused"), "{unknown_key}");

    let no_bucket = failure(g, &format!("s3:{}/no-such-bucket/x", g.endpoint), &[]);
    assert!(no_bucket.contains("no-such-bucket"), "{no_bucket}");
    assert!(no_bucket.contains("bucket does not exist"), "{no_bucket}");

    let region = failure(g, &here, &[("AWS_DEFAULT_REGION", "eu-west-9")]);
    assert!(region.contains(&g.endpoint), "{region}");
    assert!(region.contains("region"), "{region}");

    // a repository that is not there yet: "does not exist", as on disk
    let missing = failure(g, &g.location("never-initialised"), &[]);
    assert!(missing.contains("does not exist"), "{missing}");
    assert!(missing.contains("holdfast init"), "{missing}");
    for t in [&bad_secret, &unknown_key, &no_bucket, &region, &missing] {
        eprintln!("{t}");
    }
}
