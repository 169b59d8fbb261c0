//! The object-storage test bed: a private Garage server (S3-compatible),
//! started by the harness on free loopback ports with a bucket and a key.
//! restic, the reference peer, writes and checks a repository on it — the
//! ground the S3 backend of issue 14 is tested on.

mod common;

use common::servers::Garage;

#[test]
fn a_private_garage_serves_a_restic_repository() {
    let g = Garage::start();
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("f.txt"), "on object storage").unwrap();
    let restic = |args: &[&str]| {
        let mut c = std::process::Command::new("restic");
        common::clean(&mut c);
        c.env("RESTIC_REPOSITORY", g.location("restic-repo"))
            .env("RESTIC_PASSWORD", "pw")
            .env("RESTIC_CACHE_DIR", src.path().join("cache"))
            .envs(g.env())
            .args(args);
        common::run_ok(&mut c)
    };
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
