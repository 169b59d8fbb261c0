//! Resource limits and interruption: memory stays bounded whatever the
//! input size, `--one-file-system` stops at mount points, and Ctrl-C stops a
//! backup cleanly (exit 130, no snapshot, no lock left).

mod common;

use std::fs;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Deterministic, poorly compressible bytes, written in 1 MiB pieces.
fn feed(mut w: impl Write, total: u64) {
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let mut buf = vec![0u8; 1 << 20];
    let mut left = total;
    while left > 0 {
        for c in buf.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            c.copy_from_slice(&x.to_le_bytes());
        }
        let n = left.min(buf.len() as u64) as usize;
        if w.write_all(&buf[..n]).is_err() {
            return;
        }
        left -= n as u64;
    }
}

/// Peak RSS in KiB of `holdfast backup --stdin` fed `bytes` bytes.
fn stdin_backup_peak_rss(repo: &Repo, bytes: u64) -> u64 {
    let rss_file = repo.dir.path().join(format!("rss-{bytes}"));
    let mut cmd = Command::new("/usr/bin/time");
    clean(&mut cmd);
    let mut child = cmd
        .arg("-o")
        .arg(&rss_file)
        .args(["-f", "%M"])
        .arg(holdfast_bin())
        .args([
            "backup",
            "--stdin",
            "--stdin-filename",
            "big.bin",
            "--quiet",
        ])
        .env("HOLDFAST_REPO", &repo.path)
        .env("HOLDFAST_PASSWORD", PASSWORD)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || feed(stdin, bytes));
    let status = child.wait().unwrap();
    writer.join().unwrap();
    assert!(status.success());
    fs::read_to_string(&rss_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn memory_does_not_grow_with_the_input() {
    if !std::path::Path::new("/usr/bin/time").exists() {
        panic!("/usr/bin/time is needed (scripts/test.sh installs the `time` package)");
    }
    let repo = Repo::new();
    // Both sizes fill the pipeline's bounded queues (a 256 MiB stream
    // sometimes ended before they were full, and measured 60 MiB lower
    // than its own peak); past that, a stream twice longer must not need
    // more memory.
    // A peak varies by about two packs in flight from run to run: the
    // smaller stream's is the higher of two runs.
    let small = stdin_backup_peak_rss(&repo, 1 << 30).max(stdin_backup_peak_rss(&repo, 1 << 30));
    let large = stdin_backup_peak_rss(&repo, 2 << 30);
    eprintln!("peak RSS: 1 GiB stream {small} KiB, 2 GiB stream {large} KiB");
    assert!(large < 200 * 1024, "2 GiB stream needed {large} KiB");
    assert!(
        large < small + 40 * 1024,
        "memory grew with the input: {small} KiB -> {large} KiB"
    );
    let out = repo.ok(&["ls", "-l", "latest"]);
    assert!(out.contains(&(2u64 << 30).to_string()), "{out}");
}

#[test]
fn one_file_system_stops_at_mount_points() {
    let repo = Repo::new();
    let src = repo.dir.path().join("src");
    let mnt = src.join("mnt");
    fs::create_dir_all(&mnt).unwrap();
    fs::write(src.join("here.txt"), b"same fs").unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(&mnt)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !mounted {
        assert!(
            !is_root(),
            "root must be able to mount a tmpfs for this test"
        );
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(mnt.clone());
    fs::write(mnt.join("other-fs.txt"), b"elsewhere").unwrap();

    repo.backup(&[&src], &["--one-file-system"]);
    let ls = repo.ok(&["ls", "latest"]);
    assert!(ls.contains("/here.txt"));
    assert!(
        ls.lines().any(|l| l.ends_with("/mnt")),
        "the mount point itself is recorded: {ls}"
    );
    assert!(!ls.contains("other-fs.txt"), "{ls}");

    repo.backup(&[&src], &[]);
    assert!(repo.ok(&["ls", "latest"]).contains("other-fs.txt"));
}

#[test]
fn interrupt_stops_cleanly_with_130_and_no_snapshot() {
    let repo = Repo::new();
    let mut child = repo
        .stdin_backup("slow.bin", &[])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // a slow producer: JSON status lines appear while it runs
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(2500) {
        feed(&mut stdin, 1 << 20);
        std::thread::sleep(Duration::from_millis(100));
    }
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(child.id() as i32).unwrap(),
        rustix::process::Signal::INT,
    )
    .unwrap();
    // the read in progress returns once more data (or EOF) arrives
    feed(&mut stdin, 1 << 20);
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("\"message_type\":\"status\"")),
        "status lines while running: {stdout}"
    );
    assert!(
        repo.snapshot_ids().is_empty(),
        "an interrupted backup writes no snapshot"
    );
    assert_eq!(
        fs::read_dir(repo.path.join("locks")).unwrap().count(),
        0,
        "lock released"
    );
    // restic agrees the repository is sound
    run_ok(repo.restic().arg("check"));
}
