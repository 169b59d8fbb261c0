//! Object lock, on a server that has it. Garage has none, so these tests
//! run on moto's S3 server (from PyPI, started by the harness on a free
//! loopback port), which keeps AWS's rules: object lock needs a versioned
//! bucket; with a default retention every upload must carry a body
//! checksum; a delete without a version id leaves a delete marker and the
//! locked version in place; deleting that version is refused.
//!
//! A refused delete itself (a server or bucket policy that answers a
//! plain DELETE with 403) is tested on Garage behind the fault proxy in
//! tests/s3_garage.rs.

mod common;

use std::fs;

use common::servers::Moto;
use common::*;

fn holdfast(m: &Moto, location: &str) -> std::process::Command {
    let mut c = std::process::Command::new(holdfast_bin());
    clean(&mut c);
    c.env("HOLDFAST_REPO", location)
        .env("HOLDFAST_PASSWORD", PASSWORD)
        .envs(m.env());
    c
}

fn ok(c: &mut std::process::Command, what: &str) -> String {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn a_bucket_with_object_lock_takes_backups_and_prune_leaves_the_locked_versions() {
    let m = Moto::start();
    m.locked_bucket("locked");
    let location = format!("s3:{}/locked/repo", m.endpoint);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.bin"), noise(3 << 20, 31)).unwrap();

    // without a body checksum the server refuses every upload: the error
    // says why and where, and names no secret
    let out = holdfast(&m, &location)
        .args(["--option", "s3.checksum=off", "init", "--kdf-log-n", "10"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("MissingUploadObjectWithObjectLockHeaders") && err.contains(&location),
        "{err}"
    );
    assert!(!err.contains("moto-secret"), "{err}");

    // with the default (Content-MD5) the whole lifecycle works
    ok(
        holdfast(&m, &location).args(["init", "--kdf-log-n", "10"]),
        "init",
    );
    ok(
        holdfast(&m, &location).arg("backup").arg(&src),
        "first backup",
    );
    fs::write(src.join("a.bin"), noise(2 << 20, 32)).unwrap();
    let s = summary(&ok(
        holdfast(&m, &location).args(["backup", "--json"]).arg(&src),
        "second backup",
    ));
    let pruned = ok(
        holdfast(&m, &location).args(["forget", "--keep-last", "1", "--prune"]),
        "forget --prune",
    );
    assert!(pruned.contains("removed 1 snapshots"), "{pruned}");
    let check = ok(
        holdfast(&m, &location).args(["check", "--read-data"]),
        "check",
    );
    assert!(check.contains("no errors"), "{check}");
    let out = holdfast(&m, &location)
        .args(["dump", s["snapshot_id"].as_str().unwrap()])
        .arg(src.join("a.bin"))
        .output()
        .unwrap();
    assert!(out.stdout == fs::read(src.join("a.bin")).unwrap());

    // restic agrees
    let mut c = std::process::Command::new("restic");
    clean(&mut c);
    let out = ok(
        c.env("RESTIC_REPOSITORY", &location)
            .env("RESTIC_PASSWORD", PASSWORD)
            .env("RESTIC_CACHE_DIR", dir.path().join("cache"))
            .envs(m.env())
            .args(["check", "--read-data"]),
        "restic check",
    );
    assert!(out.contains("no errors were found"), "{out}");

    // what prune deleted is hidden by a delete marker, and its locked
    // version is still there: the lock did its job and nothing broke
    let report = m.python(
        "v = s3.list_object_versions(Bucket='locked', Prefix='repo/')\n\
         marked = {d['Key'] for d in v.get('DeleteMarkers', [])}\n\
         kept = {x['Key'] for x in v.get('Versions', [])}\n\
         packs = [k for k in marked if '/data/' in k]\n\
         print(len(marked), len(packs), all(k in kept for k in marked))\n\
         d = [x for x in v['Versions'] if x['Key'] in marked and '/data/' in x['Key']][0]\n\
         try:\n\
         \x20   s3.delete_object(Bucket='locked', Key=d['Key'], VersionId=d['VersionId'])\n\
         \x20   print('deleted')\n\
         except Exception as e:\n\
         \x20   print('refused' if 'AccessDenied' in type(e).__name__ + str(e) else e)\n",
    );
    let lines: Vec<&str> = report.lines().collect();
    let nums: Vec<&str> = lines[0].split(' ').collect();
    assert!(nums[0].parse::<usize>().unwrap() >= 3, "{report}");
    assert!(
        nums[1].parse::<usize>().unwrap() >= 1,
        "a pack was pruned: {report}"
    );
    assert_eq!(
        nums[2], "True",
        "every deleted object keeps its version: {report}"
    );
    assert_eq!(lines[1], "refused", "the locked version stays: {report}");
}
