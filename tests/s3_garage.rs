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

use common::s3proxy::S3Proxy;
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

/// `init` the repository under `p`, then back up `src` in 4 MiB packs:
/// the summary.
fn init_and_backup(g: &Garage, p: &str, src: &Path) -> serde_json::Value {
    hf(g, p, &["init", "--kdf-log-n", "10"]);
    summary(&hf(
        g,
        p,
        &[
            "backup",
            "--json",
            "--pack-size",
            "4",
            src.to_str().unwrap(),
        ],
    ))
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
    let first = init_and_backup(g, p, &src);
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

#[test]
fn throttling_and_dropped_connections_are_retried_and_counted() {
    let g = Garage::shared();
    let proxy = S3Proxy::start(&g.endpoint);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    fs::create_dir_all(&src).unwrap();
    for i in 0..3u8 {
        fs::write(src.join(format!("f{i}")), noise(5 << 20, i.into())).unwrap();
    }
    let run = |args: &[&str]| {
        let mut c = g.holdfast("unused");
        c.env("HOLDFAST_REPO", proxy.location("backups", "throttled"));
        ok(c.args(args).output().unwrap(), &format!("{args:?}"))
    };
    run(&["init", "--kdf-log-n", "10"]);
    // every 5th request answered 503 SlowDown; two uploads cut off midway
    proxy.slow_down_every(5);
    proxy.reset_in(4);
    proxy.reset_in(9);
    let s = summary(&run(&[
        "backup",
        "--json",
        "--pack-size",
        "4",
        src.to_str().unwrap(),
    ]));
    let injected = proxy
        .counts
        .faults
        .load(std::sync::atomic::Ordering::SeqCst);
    assert!(injected >= 4, "only {injected} faults were injected");
    assert_eq!(
        s["storage_retries"].as_u64().unwrap(),
        injected as u64,
        "every injected fault was retried once: {s}"
    );
    proxy.clear_faults();
    let check = run(&["check", "--read-data"]);
    assert!(check.contains("no errors"), "{check}");
    let id = s["snapshot_id"].as_str().unwrap();
    for i in 0..3u8 {
        let f = src.join(format!("f{i}"));
        let mut c = g.holdfast("unused");
        c.env("HOLDFAST_REPO", proxy.location("backups", "throttled"));
        let out = c.args(["dump", id]).arg(&f).output().unwrap();
        assert!(out.stdout == fs::read(&f).unwrap(), "f{i} restores");
    }
}

#[test]
fn the_server_stopping_mid_backup_fails_cleanly_and_the_next_backup_succeeds() {
    let g = Garage::shared();
    let proxy = S3Proxy::start(&g.endpoint);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    fs::create_dir_all(&src).unwrap();
    for i in 0..4u8 {
        fs::write(src.join(format!("f{i}")), noise(5 << 20, i.into())).unwrap();
    }
    let cmd = || {
        let mut c = g.holdfast("unused");
        c.env("HOLDFAST_REPO", proxy.location("backups", "stopped"));
        c
    };
    ok(
        cmd().args(["init", "--kdf-log-n", "10"]).output().unwrap(),
        "init",
    );
    let first = summary(&ok(
        cmd()
            .args(["backup", "--json", "--pack-size", "4"])
            .arg(src.join("f0"))
            .output()
            .unwrap(),
        "first backup",
    ));
    // the server goes away after a few requests of the next backup
    let down = proxy.down_switch();
    proxy.hook_on("PUT", "/data/", 2, move |_| {
        down.store(true, std::sync::atomic::Ordering::SeqCst)
    });
    let out = cmd()
        .args([
            "backup",
            "--json",
            "--pack-size",
            "4",
            "--option",
            "s3.retries=2",
        ])
        .arg(&src)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains(&proxy.endpoint), "names the server: {e}");
    assert!(e.contains("backups"), "names the bucket: {e}");
    assert!(!e.contains("panicked"), "{e}");
    assert!(!e.contains(&g.secret), "{e}");
    proxy.set_down(false);
    // no snapshot refers to an object that is not there
    let check = ok(
        cmd().args(["check", "--read-data"]).output().unwrap(),
        "check",
    );
    assert!(check.contains("no errors"), "{check}");
    let snaps: serde_json::Value = serde_json::from_str(&ok(
        cmd().args(["snapshots", "--json"]).output().unwrap(),
        "snapshots",
    ))
    .unwrap();
    assert_eq!(
        snaps.as_array().unwrap().len(),
        1,
        "only the first snapshot"
    );
    assert_eq!(snaps[0]["id"], first["snapshot_id"]);
    // and the next backup goes through without an unlock
    let next = summary(&ok(
        cmd().args(["backup", "--json"]).arg(&src).output().unwrap(),
        "next backup",
    ));
    assert!(next["snapshot_id"].is_string());
    let check = ok(
        cmd().args(["check", "--read-data"]).output().unwrap(),
        "check",
    );
    assert!(check.contains("no errors"), "{check}");
}

#[test]
fn a_pack_deleted_behind_holdfasts_back_is_named_by_check() {
    use holdfast_storage::{Backend, FileType, ObjectName};
    let g = Garage::shared();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("lost.bin"), noise(5 << 20, 7)).unwrap();
    let p = "deleted-pack";
    let s = init_and_backup(g, p, &src);
    let id = snapshot_id(&s);

    // the S3 backend itself, with the test server's key
    let b = g.backend(p);
    let packs = b.list(FileType::Pack).unwrap();
    let biggest = packs.iter().max_by_key(|p| p.size).unwrap().name.clone();
    b.delete(&ObjectName::new(FileType::Pack, &biggest).unwrap())
        .unwrap();
    assert!(
        b.stat(&ObjectName::new(FileType::Pack, &biggest).unwrap())
            .unwrap_err()
            .is_not_found()
    );

    let out = g.holdfast(p).args(["check"]).output().unwrap();
    assert!(!out.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains(&biggest[..8]), "names the pack: {text}");
    assert!(text.contains(&id[..8]), "names the snapshot: {text}");
    assert!(text.contains("lost.bin"), "names the path: {text}");
}

#[test]
fn rustic_checks_and_restores_what_holdfast_wrote_and_holdfast_extends_what_rustic_wrote() {
    let g = Garage::shared();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    make_rich_tree(&src);
    // restic's format leaves a zero mode out (Go's omitempty), and rustic
    // restores a node without a mode as 0644: not a difference of ours
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(src.join("modes/none"), fs::Permissions::from_mode(0o400)).unwrap();
    fs::write(src.join("big.bin"), noise(6 << 20, 3)).unwrap();

    // holdfast writes, rustic (the second oracle) checks and restores
    let p = "for-rustic";
    let s = init_and_backup(g, p, &src);
    let id = snapshot_id(&s);
    run_ok(g.rustic(p, dir.path()).args(["check", "--read-data"]));
    let target = dir.path().join("rustic-restore");
    run_ok(g.rustic(p, dir.path()).args(["restore", &id]).arg(&target));
    // rustic restores the snapshot's root into the target
    assert_eq!(
        fs::read(target.join(src.strip_prefix("/").unwrap()).join("big.bin")).unwrap(),
        fs::read(src.join("big.bin")).unwrap()
    );
    assert_same_tree_with(&src, &restored(&target, &src), RESTIC_COMPARE);

    // rustic writes, holdfast reads and extends, rustic checks the result
    let p = "from-rustic";
    run_ok(g.rustic(p, dir.path()).args(["init"]));
    run_ok(g.rustic(p, dir.path()).arg("backup").arg(&src));
    let back = dir.path().join("holdfast-restore");
    hf(
        g,
        p,
        &["restore", "latest", "--target", back.to_str().unwrap()],
    );
    assert_same_tree_with(&src, &restored(&back, &src), RESTIC_COMPARE);
    fs::write(src.join("dir/by-holdfast.txt"), b"added by holdfast").unwrap();
    let s = summary(&hf(g, p, &["backup", "--json", src.to_str().unwrap()]));
    assert!(s["snapshot_id"].is_string());
    let check = hf(g, p, &["check", "--read-data"]);
    assert!(check.contains("no errors"), "{check}");
    run_ok(g.rustic(p, dir.path()).args(["check", "--read-data"]));
}

#[test]
fn credentials_from_a_profile_and_each_checksum_setting_work() {
    let g = Garage::shared();
    let dir = tempfile::tempdir().unwrap();
    // the key only in a shared credentials file, chosen by AWS_PROFILE
    let home = dir.path().join("home");
    fs::create_dir_all(home.join(".aws")).unwrap();
    fs::write(
        home.join(".aws/credentials"),
        format!(
            "[backup]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            g.key_id, g.secret
        ),
    )
    .unwrap();
    let src = dir.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.bin"), noise(1 << 20, 9)).unwrap();
    let p = "profile";
    let with_profile = || {
        let mut c = g.holdfast(p);
        c.env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env("HOME", &home)
            .env("AWS_PROFILE", "backup");
        c
    };
    ok(
        with_profile()
            .args(["init", "--kdf-log-n", "10"])
            .output()
            .unwrap(),
        "init with a profile",
    );
    for checksum in ["md5", "crc32c", "off"] {
        fs::write(src.join(format!("{checksum}.bin")), noise(1 << 20, 11)).unwrap();
        let out = ok(
            with_profile()
                .args(["backup", "--json", "--option"])
                .arg(format!("s3.checksum={checksum}"))
                .arg(&src)
                .output()
                .unwrap(),
            &format!("backup with s3.checksum={checksum}"),
        );
        assert!(summary(&out)["snapshot_id"].is_string());
    }
    let check = ok(
        with_profile()
            .args(["check", "--read-data"])
            .output()
            .unwrap(),
        "check",
    );
    assert!(check.contains("no errors"), "{check}");
    // an unknown option is refused by name
    let out = with_profile()
        .args(["snapshots", "--option", "s3.sideways=1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("s3.sideways"));
}

#[test]
fn listings_longer_than_one_page_are_complete() {
    use holdfast_storage::{Backend, FileType, ObjectName};
    let b = Garage::shared().backend("many-objects");
    // S3 answers at most 1,000 keys a page: 1,234 need two pages, and
    // data/ needs its subdirectories walked
    let names: Vec<String> = (0..1234u32)
        .map(|i| {
            format!(
                "{:064x}",
                u128::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)
            )
        })
        .collect();
    std::thread::scope(|s| {
        for chunk in names.chunks(155) {
            let b = &b;
            s.spawn(move || {
                for n in chunk {
                    b.put(&ObjectName::new(FileType::Pack, n).unwrap(), n.as_bytes())
                        .unwrap();
                }
            });
        }
    });
    let mut listed: Vec<String> = b
        .list(FileType::Pack)
        .unwrap()
        .into_iter()
        .map(|o| {
            assert_eq!(o.size, 64);
            o.name
        })
        .collect();
    listed.sort();
    let mut want = names.clone();
    want.sort();
    assert_eq!(listed.len(), 1234);
    assert_eq!(listed, want);
}

/// A command run in a private mount namespace whose /etc/hosts also maps
/// `names` to 127.0.0.1: virtual-hosted addressing needs the bucket's own
/// host name (`backups.s3.garage.localhost`) to resolve, and the machine's
/// resolver must not be changed for it.
fn with_hosts(dir: &Path, names: &[&str], program: &Path) -> std::process::Command {
    let hosts = dir.join("hosts");
    let mut text = fs::read_to_string("/etc/hosts").unwrap_or_default();
    text.push_str(&format!("\n127.0.0.1 {}\n", names.join(" ")));
    fs::write(&hosts, text).unwrap();
    let mut c = std::process::Command::new("unshare");
    // as root a mount namespace is enough; otherwise map ourselves to root
    // in a user namespace first
    if rustix::process::geteuid().is_root() {
        c.arg("-m");
    } else {
        c.args(["-r", "-m"]);
    }
    c.args(["sh", "-c", r#"mount --bind "$0" /etc/hosts && exec "$@""#])
        .arg(&hosts)
        .arg(program);
    c
}

#[test]
fn virtual_hosted_addressing_puts_the_bucket_in_the_host_name() {
    let g = Garage::shared();
    let proxy = S3Proxy::start(&g.endpoint);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.bin"), noise(3 << 20, 21)).unwrap();
    let port = proxy.endpoint.rsplit(':').next().unwrap().to_string();
    // Garage serves `BUCKET.s3.garage.localhost` (its root_domain)
    let location = format!("s3:http://s3.garage.localhost:{port}/backups/dns-style");
    let names = ["s3.garage.localhost", "backups.s3.garage.localhost"];
    let holdfast = |args: &[&str]| {
        let mut c = with_hosts(dir.path(), &names, &holdfast_bin());
        clean(&mut c);
        c.env("HOLDFAST_REPO", &location)
            .env("HOLDFAST_PASSWORD", PASSWORD)
            .envs(g.env())
            .args(["--option", "s3.bucket-lookup=dns"])
            .args(args);
        ok(c.output().unwrap(), &format!("holdfast {args:?} (dns)"))
    };
    holdfast(&["init", "--kdf-log-n", "10"]);
    let s = summary(&holdfast(&["backup", "--json", src.to_str().unwrap()]));
    let check = holdfast(&["check", "--read-data"]);
    assert!(check.contains("no errors"), "{check}");
    let seen = proxy.requests.lock().unwrap().clone();
    assert!(seen.len() > 5, "{seen:?}");
    for r in &seen {
        assert!(
            r.host.starts_with("backups.s3.garage.localhost"),
            "the bucket is in the host name: {r:?}"
        );
        assert!(
            !r.target.starts_with("/backups/"),
            "and not in the path: {r:?}"
        );
    }
    // the same repository read path-style, and by restic in dns style
    let mut c = g.holdfast("unused");
    c.env("HOLDFAST_REPO", proxy.location("backups", "dns-style"));
    let id = s["snapshot_id"].as_str().unwrap();
    let out = c
        .args(["dump", id])
        .arg(src.join("a.bin"))
        .output()
        .unwrap();
    assert_ok(&out);
    assert!(out.stdout == fs::read(src.join("a.bin")).unwrap());
    assert!(
        proxy.requests.lock().unwrap()[seen.len()..]
            .iter()
            .all(|r| r.target.starts_with("/backups") && r.host.starts_with("127.0.0.1")),
        "path-style requests name the bucket in the path: {:?}",
        &proxy.requests.lock().unwrap()[seen.len()..]
    );
    let mut c = with_hosts(dir.path(), &names, Path::new("restic"));
    clean(&mut c);
    c.env("RESTIC_REPOSITORY", &location)
        .env("RESTIC_PASSWORD", PASSWORD)
        .env("RESTIC_CACHE_DIR", dir.path().join("cache"))
        .envs(g.env())
        .args(["-o", "s3.bucket-lookup=dns", "check", "--read-data"]);
    let out = ok(c.output().unwrap(), "restic check (dns)");
    assert!(out.contains("no errors were found"), "{out}");
}

#[test]
fn deletes_the_server_refuses_are_reported_as_retained_and_the_repository_stays_whole() {
    let g = Garage::shared();
    let proxy = S3Proxy::start(&g.endpoint);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    fs::create_dir_all(&src).unwrap();
    let run = |args: &[&str]| {
        let mut c = g.holdfast("unused");
        c.env("HOLDFAST_REPO", proxy.location("backups", "retained"));
        ok(c.args(args).output().unwrap(), &format!("{args:?}"))
    };
    run(&["init", "--kdf-log-n", "10"]);
    for i in 0..2u8 {
        fs::write(src.join("a.bin"), noise(2 << 20, 40 + u64::from(i))).unwrap();
        run(&["backup", "--quiet", src.to_str().unwrap()]);
    }
    // what AWS answers a delete of a version under retention, and what a
    // bucket policy without s3:DeleteObject gets
    for prefix in ["/data/", "/index/"] {
        proxy.answer_on(
            "DELETE",
            prefix,
            "403 Forbidden",
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code>\
             <Message>Access Denied because object protected by object lock.</Message></Error>",
        );
    }
    let mut c = g.holdfast("unused");
    c.env("HOLDFAST_REPO", proxy.location("backups", "retained"));
    let out = c
        .args(["forget", "--keep-last", "1", "--prune", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "prune does not fail on retained files: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let s = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["message_type"] == "summary")
        .unwrap_or_else(|| panic!("a summary: {stdout}"));
    let retained = s["retained"].as_u64().unwrap();
    assert!(retained >= 2, "an index and a pack at least: {s}");
    assert_eq!(
        retained,
        proxy
            .counts
            .faults
            .load(std::sync::atomic::Ordering::SeqCst) as u64,
        "every refused delete counted once: {s}"
    );
    proxy.clear_faults();
    let check = run(&["check", "--read-data"]);
    assert!(check.contains("no errors"), "{check}");
    let out = run(&["snapshots", "--json"]);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1
    );
}
