//! The crash-point harness: `kill -9` a backup and a forget + prune at
//! hundreds of exact points, on both backends.
//!
//! - Local disk: strace's fault injection delivers SIGKILL on the k-th
//!   `openat`, `write`, `fsync`, `rename` or `unlink` (counted per thread,
//!   as strace does; k runs up until the command finishes unharmed).
//! - Garage: the fault proxy kills the process when the k-th request
//!   arrives, before the request reaches the server.
//!
//! After every kill, without any `unlock`: `check --read-data` passes
//! (the dead process's lock is recognised as stale), every snapshot that
//! existed before is still there (for prune: every one it was to keep),
//! a file of the newest one restores byte for byte, and the next backup
//! succeeds. The tally is printed; docs/BENCHMARKS.md records it.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use common::s3proxy::S3Proxy;
use common::servers::Garage;
use common::*;

/// Each (operation, syscall) runs k = 1, 2, … until the command survives,
/// at most this far.
const MAX_K: usize = 60;

/// A source of a few packs' worth (`mib` for the big file): big files and
/// small ones.
fn fill(dir: &Path, seed: u64, mib: usize) {
    fs::create_dir_all(dir.join("small")).unwrap();
    fs::write(dir.join(format!("big-{seed}")), noise(mib << 20, seed)).unwrap();
    fs::write(
        dir.join(format!("mid-{seed}")),
        noise(mib << 19, seed + 100),
    )
    .unwrap();
    for i in 0..12u64 {
        fs::write(
            dir.join("small").join(format!("s{seed}-{i}")),
            noise(20_000, seed * 1000 + i),
        )
        .unwrap();
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn killed(o: &Output) -> bool {
    use std::os::unix::process::ExitStatusExt;
    o.status.signal() == Some(9)
}

/// What a scenario needs to judge the repository after a kill.
struct Expect {
    /// Snapshots that must still be there.
    kept: Vec<String>,
    /// A file of the newest kept snapshot and its bytes.
    file: PathBuf,
    bytes: Vec<u8>,
}

/// The repository after a kill: checks, keeps, restores, takes a backup.
fn judge(run: &dyn Fn(&[&str]) -> Output, expect: &Expect, tiny: &Path, what: &str) {
    let out = run(&["check", "--read-data"]);
    assert!(
        out.status.success(),
        "{what}: check failed:\n{}",
        text(&out)
    );
    let out = run(&["snapshots", "--json"]);
    assert!(out.status.success(), "{what}: {}", text(&out));
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    for k in &expect.kept {
        assert!(ids.contains(&k.as_str()), "{what}: snapshot {k} is gone");
    }
    let newest = expect.kept.last().unwrap();
    let out = run(&["dump", newest, expect.file.to_str().unwrap()]);
    assert!(out.status.success(), "{what}: dump failed:\n{}", text(&out));
    assert!(
        out.stdout == expect.bytes,
        "{what}: the restored file differs"
    );
    let out = run(&["backup", "--json", tiny.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{what}: the next backup failed:\n{}",
        text(&out)
    );
}

#[derive(Default)]
struct Tally(Mutex<BTreeMap<String, usize>>);

impl Tally {
    fn add(&self, key: &str) {
        *self.0.lock().unwrap().entry(key.to_string()).or_default() += 1;
    }
    fn total(&self) -> usize {
        self.0.lock().unwrap().values().sum()
    }
    fn print(&self, title: &str) {
        eprintln!("{title}: {} kill points", self.total());
        for (k, n) in self.0.lock().unwrap().iter() {
            eprintln!("  {k}: {n}");
        }
    }
}

/// A local repository with two snapshots (the older with data of its own),
/// the source changed since, and what a kill must not lose.
struct Prepared {
    dir: tempfile::TempDir,
    pristine: PathBuf,
    src: PathBuf,
    tiny: PathBuf,
    snaps: Vec<String>,
    file: PathBuf,
    bytes: Vec<u8>,
}

impl Prepared {
    /// What a killed `op` must leave: every snapshot for a backup, the one
    /// kept for the prune; and the newest one's file.
    fn expect(&self, op: &str) -> Expect {
        Expect {
            kept: if op == "backup" {
                self.snaps.clone()
            } else {
                vec![self.snaps[1].clone()]
            },
            file: self.file.clone(),
            bytes: self.bytes.clone(),
        }
    }
}

fn prepare(run_in: &dyn Fn(&Path, &[&str]) -> Output, repo: &Path, mib: usize) -> Prepared {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    fill(&src, 1, mib);
    let tiny = dir.path().join("tiny");
    fs::create_dir_all(&tiny).unwrap();
    fs::write(tiny.join("t"), b"tiny").unwrap();
    let ok = |args: &[&str]| {
        let o = run_in(repo, args);
        assert!(o.status.success(), "{args:?}: {}", text(&o));
        o
    };
    ok(&["init", "--kdf-log-n", "10"]);
    let mut snaps = Vec::new();
    for round in 0..2 {
        if round == 1 {
            // the first snapshot's big file is its own: prune repacks
            fs::remove_file(src.join("big-1")).unwrap();
            fill(&src, 2, mib);
        }
        let o = ok(&[
            "backup",
            "--json",
            "--pack-size",
            "4",
            src.to_str().unwrap(),
        ]);
        let s = summary(&String::from_utf8_lossy(&o.stdout));
        snaps.push(s["snapshot_id"].as_str().unwrap().to_string());
    }
    // new data for the backup under test
    fill(&src, 3, mib);
    let file = src.join("mid-2");
    let bytes = fs::read(&file).unwrap();
    Prepared {
        pristine: repo.to_path_buf(),
        dir,
        src,
        tiny,
        snaps,
        file,
        bytes,
    }
}

#[test]
fn kill_9_at_the_kth_syscall_on_local_disk() {
    let tally = Tally::default();
    let base = tempfile::tempdir().unwrap();
    let pristine = base.path().join("pristine");
    let run_in = |repo: &Path, args: &[&str]| -> Output {
        let mut c = Command::new(holdfast_bin());
        clean(&mut c);
        c.env("HOLDFAST_REPO", repo)
            .env("HOLDFAST_PASSWORD", PASSWORD)
            .args(args)
            .output()
            .unwrap()
    };
    let p = prepare(&run_in, &pristine, 6);
    let work = p.dir.path().join("work");
    let src = p.src.to_str().unwrap().to_string();
    type Op<'a> = (&'a str, Vec<&'a str>);
    let ops: [Op; 2] = [
        ("backup", vec!["backup", "--pack-size", "4", &src]),
        (
            "forget+prune",
            vec!["forget", "--keep-last", "1", "--prune", "--max-unused", "0"],
        ),
    ];
    for (name, args) in &ops {
        for syscall in ["openat", "write", "fsync", "rename", "unlink"] {
            for k in 1..=MAX_K {
                let _ = fs::remove_dir_all(&work);
                run_ok(Command::new("cp").arg("-a").arg(&p.pristine).arg(&work));
                let mut c = Command::new("strace");
                clean(&mut c);
                c.args(["-f", "-qq", "-o", "/dev/null", "-e"])
                    .arg(format!("trace={syscall}"))
                    .arg(format!("--inject={syscall}:signal=KILL:when={k}"))
                    .arg(holdfast_bin())
                    .args(args)
                    .env("HOLDFAST_REPO", &work)
                    .env("HOLDFAST_PASSWORD", PASSWORD);
                let out = c.output().unwrap();
                if !killed(&out) {
                    assert!(
                        out.status.success(),
                        "{name} without a kill at {syscall} #{k}: {}",
                        text(&out)
                    );
                    break;
                }
                judge(
                    &|a: &[&str]| run_in(&work, a),
                    &p.expect(name),
                    &p.tiny,
                    &format!("{name}, killed at {syscall} #{k}"),
                );
                tally.add(&format!("local {name} at {syscall}"));
            }
        }
    }
    tally.print("local disk");
    assert!(tally.total() >= 120, "only {} kill points", tally.total());
}

#[test]
fn kill_9_at_the_kth_request_on_garage() {
    let g = Garage::shared();
    let proxy = S3Proxy::start(&g.endpoint);
    let tally = Tally::default();
    let run_at = |prefix: &str, args: &[&str]| -> Output {
        let mut c = g.holdfast("unused");
        c.env("HOLDFAST_REPO", proxy.location("backups", prefix));
        c.args(args).output().unwrap()
    };
    let mut round = 0;
    for name in ["backup", "forget+prune"] {
        for k in 1..=200usize {
            round += 1;
            // a fresh repository per point: the same two snapshots
            let prefix = format!("crash-{round}");
            // small: each point prepares its own repository on the server
            let p = prepare(&|_, a| run_at(&prefix, a), Path::new(&prefix), 2);
            let src = p.src.to_str().unwrap().to_string();
            let args: Vec<&str> = if name == "backup" {
                vec!["backup", "--pack-size", "4", &src]
            } else {
                vec!["forget", "--keep-last", "1", "--prune", "--max-unused", "0"]
            };
            let mut c = g.holdfast("unused");
            c.env("HOLDFAST_REPO", proxy.location("backups", &prefix))
                .args(&args)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            let child = Arc::new(Mutex::new(None::<u32>));
            let pid = child.clone();
            proxy.hook_in(k, move |_| {
                if let Some(p) = *pid.lock().unwrap() {
                    let _ = rustix::process::kill_process(
                        rustix::process::Pid::from_raw(p as i32).unwrap(),
                        rustix::process::Signal::KILL,
                    );
                }
            });
            let spawned = c.spawn().unwrap();
            *child.lock().unwrap() = Some(spawned.id());
            let out = spawned.wait_with_output().unwrap();
            proxy.clear_faults();
            if !killed(&out) {
                assert!(
                    out.status.success(),
                    "{name} without a kill at request #{k}: {}",
                    text(&out)
                );
                break;
            }
            judge(
                &|a: &[&str]| run_at(&prefix, a),
                &p.expect(name),
                &p.tiny,
                &format!("{name} on Garage, killed at request #{k}"),
            );
            tally.add(&format!("garage {name} at a request"));
        }
    }
    tally.print("garage");
    assert!(tally.total() >= 40, "only {} kill points", tally.total());
}
