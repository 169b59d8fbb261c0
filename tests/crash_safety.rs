//! Crash safety: `kill -9` at many points of a backup and of a prune, and a
//! full disk. Afterwards both holdfast's and restic's check pass, every
//! snapshot that existed restores identically, and the next run succeeds
//! and cleans up what the killed one left.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

const KILL_POINTS: u32 = 20;

fn write_files(dir: &Path, count: u32, size: usize, seed: u32) {
    fs::create_dir_all(dir).unwrap();
    for i in 0..count {
        let data = xorshift(size, (seed as u64) << 32 | i as u64 | 1);
        fs::write(dir.join(format!("f{seed}-{i}")), data).unwrap();
    }
}

fn copy_tree(from: &Path, to: &Path) {
    run_ok(Command::new("cp").arg("-a").arg(from).arg(to));
}

/// Both checks pass (holdfast may warn about unreferenced packs).
fn both_checks_pass(repo: &Repo, when: &str) {
    let out = repo.run(&["check"]);
    assert!(
        out.status.success(),
        "{when}: holdfast check failed:\n{}",
        stderr(&out)
    );
    let out = repo.restic().arg("check").output().unwrap();
    assert!(
        out.status.success(),
        "{when}: restic check failed:\n{}",
        stderr(&out)
    );
}

fn restore_and_compare(repo: &Repo, snapshot: &str, src: &Path, copy: &Path, name: &str) {
    let t = repo.dir.path().join(name);
    let _ = fs::remove_dir_all(&t);
    repo.ok(&["restore", snapshot, "--target", t.to_str().unwrap()]);
    assert_same_tree(copy, &t.join(src.strip_prefix("/").unwrap()));
    fs::remove_dir_all(&t).unwrap();
}

/// A new repository holding a copy of `pristine`.
fn copy_of(pristine: &Path) -> Repo {
    let r = Repo::uninit();
    copy_tree(pristine, &r.path);
    r
}

/// How long `run` takes on a copy of `pristine`, uninterrupted: the
/// shortest of three runs (the first is slowed by a cold page cache, and
/// kill points placed on a slow run's clock fall after the end of the
/// faster ones).
fn shortest_run(pristine: &Path, run: impl Fn(&Repo)) -> Duration {
    (0..3)
        .map(|_| {
            let scratch = copy_of(pristine);
            let t0 = Instant::now();
            run(&scratch);
            t0.elapsed()
        })
        .min()
        .unwrap()
}

/// `holdfast ARGS` on `repo`, killed with SIGKILL after `delay`: whether
/// it was still running then.
fn kill_run_after(repo: &Repo, args: &[&str], delay: Duration) -> bool {
    kill_after(repo.cmd().args(args).spawn().unwrap(), delay)
}

/// The check that reads all data passes without a warning.
fn read_data_check_is_clean(repo: &Repo, when: &str) {
    let out = repo.run(&["check", "--read-data"]);
    assert!(
        out.status.success() && !stderr(&out).contains("warning"),
        "{when}: {}",
        stderr(&out)
    );
}

fn kill_after(mut child: std::process::Child, delay: Duration) -> bool {
    let start = Instant::now();
    loop {
        if let Some(_status) = child.try_wait().unwrap() {
            return false; // finished before the kill point
        }
        if start.elapsed() >= delay {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn tmp_is_empty(repo: &Repo) -> bool {
    fs::read_dir(repo.path.join("tmp"))
        .map(|d| d.count() == 0)
        .unwrap_or(true)
}

#[test]
fn kill_9_during_backup_at_many_points() {
    let base = Repo::new();
    let src = base.dir.path().join("src");
    write_files(&src, 10, 200_000, 1);
    let s0 = snapshot_id(&base.backup(&[&src], &[]));
    let copy0: PathBuf = base.dir.path().join("copy0");
    copy_tree(&src, &copy0);
    let pristine = base.dir.path().join("pristine");
    copy_tree(&base.path, &pristine);
    // a lot of new data for the runs that get killed
    write_files(&src.join("new"), 120, 1 << 20, 2);
    let copy1: PathBuf = base.dir.path().join("copy1");
    copy_tree(&src, &copy1);

    // Every kill starts from the same repository, so the kill points spread
    // over a whole run: how long is one, uninterrupted?
    let full = shortest_run(&pristine, |scratch| {
        scratch.backup(&[&src], &[]);
    });

    let mut killed = 0;
    for i in 1..=KILL_POINTS {
        let repo = copy_of(&pristine);
        // spread over the first 80 % of a run: a run may be quicker still
        let delay = full.mul_f64(0.8 * i as f64 / (KILL_POINTS + 1) as f64);
        if kill_run_after(&repo, &["backup", "--quiet", src.to_str().unwrap()], delay) {
            killed += 1;
        }
        let when = format!("after kill {i} at {delay:?}");
        both_checks_pass(&repo, &when);
        // the snapshot from before is intact
        restore_and_compare(&repo, &s0, &src, &copy0, "r0");
        // the next backup completes; prune removes what the killed one left
        let s = snapshot_id(&repo.backup(&[&src], &[]));
        restore_and_compare(&repo, &s, &src, &copy1, "r1");
        repo.ok(&["prune"]);
        assert!(
            tmp_is_empty(&repo),
            "{when}: temporary files of the killed writer were removed"
        );
        read_data_check_is_clean(&repo, &when);
        if i % 5 == 0 {
            run_ok(repo.restic().args(["check", "--read-data"]));
        }
    }
    eprintln!("{killed} of {KILL_POINTS} runs killed mid-way");
    assert!(
        killed >= KILL_POINTS / 2,
        "only {killed} runs were killed mid-way"
    );
}

#[test]
fn kill_9_during_prune_at_many_points() {
    let base = Repo::new();
    let src = base.dir.path().join("src");
    let mut copies = Vec::new();
    for generation in 0..4u32 {
        write_files(&src, 12, 150_000, generation + 10);
        if generation > 0 {
            // drop the previous generation's files
            for i in 0..12 {
                let _ = fs::remove_file(src.join(format!("f{}-{i}", generation + 9)));
            }
        }
        base.backup(&[&src], &["--pack-size", "4"]);
        let c = base.dir.path().join(format!("copy{generation}"));
        copy_tree(&src, &c);
        copies.push(c);
    }
    base.ok(&["forget", "--keep-last", "2"]);
    let kept = base.snapshot_ids();
    let pristine = base.dir.path().join("pristine");
    copy_tree(&base.path, &pristine);

    let full = shortest_run(&pristine, |scratch| {
        scratch.ok(&["prune", "--max-unused", "0%"]);
    });

    let mut killed = 0;
    for i in 1..=KILL_POINTS {
        let repo = copy_of(&pristine);
        let delay = full.mul_f64(i as f64 / (KILL_POINTS + 1) as f64);
        if kill_run_after(&repo, &["prune", "--quiet", "--max-unused", "0%"], delay) {
            killed += 1;
        }
        both_checks_pass(&repo, &format!("after prune kill {i} at {delay:?}"));
        // every snapshot still restores identically
        for (id, c) in kept.iter().zip(&copies[2..]) {
            restore_and_compare(&repo, id, &src, c, "r");
        }
        // the next prune finishes the job and leaves nothing behind
        repo.ok(&["prune", "--max-unused", "0%"]);
        read_data_check_is_clean(&repo, &format!("kill {i}"));
        assert!(tmp_is_empty(&repo));
    }
    assert!(
        killed >= KILL_POINTS / 2,
        "only {killed} prunes were killed mid-way"
    );
}

/// A small file system of our own, mounted on a loop device.
struct SmallFs {
    mnt: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallFs {
    fn new(mib: u32) -> Option<SmallFs> {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("fs.img");
        let mnt = dir.path().join("mnt");
        fs::create_dir(&mnt).unwrap();
        let f = fs::File::create(&img).unwrap();
        f.set_len(mib as u64 * 1024 * 1024).unwrap();
        drop(f);
        let ok = Command::new("mkfs.ext4")
            .args(["-q", "-F"])
            .arg(&img)
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
            && Command::new("mount")
                .args(["-o", "loop"])
                .arg(&img)
                .arg(&mnt)
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
        ok.then_some(SmallFs { mnt, _dir: dir })
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mnt).status();
    }
}

#[test]
fn full_disk_fails_cleanly_and_the_repository_survives() {
    let Some(small) = SmallFs::new(48) else {
        assert!(
            !is_root(),
            "root must be able to mount a loop file system for this test"
        );
        eprintln!("skipped: mounting a loop file system needs root");
        return;
    };
    let repo = Repo {
        dir: tempfile::tempdir().unwrap(),
        path: small.mnt.join("repo"),
    };
    repo.ok(&["init", "--kdf-log-n", "10"]);
    let src = repo.dir.path().join("src");
    write_files(&src, 4, 500_000, 7);
    let first = snapshot_id(&repo.backup(&[&src], &[]));
    let copy = repo.dir.path().join("copy");
    copy_tree(&src, &copy);

    // leave about 10 MiB free, then try to store 40 MiB that does not compress
    let filler = small.mnt.join("filler");
    let st = rustix::fs::statvfs(&small.mnt).unwrap();
    let free = st.f_bavail * st.f_frsize;
    fs::write(&filler, vec![0u8; (free - (10 << 20)) as usize]).unwrap();
    write_files(&src.join("big"), 40, 1 << 20, 8);
    let out = repo.run(&["backup", src.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("no space left"), "{}", stderr(&out));
    assert_eq!(
        repo.snapshot_ids(),
        vec![first.clone()],
        "no snapshot was written"
    );

    // once space is freed the repository checks clean and works
    fs::remove_file(&filler).unwrap();
    both_checks_pass(&repo, "after the full disk");
    restore_and_compare(&repo, &first, &src, &copy, "r0");
    fs::remove_dir_all(src.join("big")).unwrap();
    repo.backup(&[&src], &[]);
    repo.ok(&["prune"]);
    assert!(tmp_is_empty(&repo));
    let out = repo.run(&["check", "--read-data"]);
    assert!(
        out.status.success() && !stderr(&out).contains("warning"),
        "{}",
        stderr(&out)
    );
}
