//! Helpers shared by the integration tests: running the real `holdfast`
//! binary (and the real `restic`), building trees that exercise every kind
//! of metadata, and comparing two trees field by field.
#![allow(dead_code)]

pub mod browser;
pub mod contract;
pub mod http;
pub mod s3proxy;
pub mod servers;
pub mod service;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const PASSWORD: &str = "correct horse battery staple";

pub fn holdfast_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_holdfast"))
}

/// A command with a clean environment: no inherited repository, password
/// or restic settings.
pub fn clean(cmd: &mut Command) -> &mut Command {
    for (k, _) in std::env::vars() {
        if k.starts_with("HOLDFAST_") || k.starts_with("RESTIC_") {
            cmd.env_remove(k);
        }
    }
    cmd.stdin(Stdio::null())
}

/// A finished command's standard error, as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// SHA-256 of `data` in lower-case hex (as manifests write it).
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Panics with the command's standard error unless it succeeded.
pub fn assert_ok(out: &Output) {
    assert!(out.status.success(), "{}", stderr(out));
}

/// Row counts of a manifest's tables by name.
pub fn manifest_rows(manifest: &serde_json::Value) -> BTreeMap<String, u64> {
    manifest["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                t["rows"].as_u64().unwrap(),
            )
        })
        .collect()
}

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

pub struct Repo {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl Repo {
    /// A new, initialised repository in a temporary directory.
    pub fn new() -> Repo {
        let r = Repo::uninit();
        r.ok(&["init", "--kdf-log-n", "10"]);
        r
    }

    pub fn uninit() -> Repo {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("repo");
        Repo { dir, path }
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(holdfast_bin());
        clean(&mut c);
        c.env("HOLDFAST_REPO", &self.path)
            .env("HOLDFAST_PASSWORD", PASSWORD);
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    /// Run and require success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "holdfast {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `backup --stdin --stdin-filename NAME --json EXTRA…` with standard
    /// input and output piped, ready to spawn.
    pub fn stdin_backup(&self, name: &str, extra: &[&str]) -> Command {
        let mut c = self.cmd();
        c.args(["backup", "--stdin", "--stdin-filename", name, "--json"])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        c
    }

    /// `backup --json PATH…`: the summary line as JSON.
    pub fn backup(&self, paths: &[&Path], extra: &[&str]) -> serde_json::Value {
        let mut args: Vec<&str> = vec!["backup", "--json"];
        args.extend_from_slice(extra);
        let ps: Vec<String> = paths
            .iter()
            .map(|p| p.to_str().unwrap().to_string())
            .collect();
        for p in &ps {
            args.push(p);
        }
        let out = self.ok(&args);
        summary(&out)
    }

    pub fn snapshot_ids(&self) -> Vec<String> {
        let out = self.ok(&["snapshots", "--json"]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect()
    }

    pub fn restic(&self) -> Command {
        restic_cmd(&self.path)
    }

    /// The bytes of `path` in snapshot `id` (`dump`, which must succeed).
    pub fn file(&self, id: &str, path: &str) -> Vec<u8> {
        let out = self.run(&["dump", id, path]);
        assert!(out.status.success(), "dump {path}: {}", stderr(&out));
        out.stdout
    }

    /// The manifest a database or stream snapshot keeps at `/manifest.json`.
    pub fn manifest(&self, id: &str) -> serde_json::Value {
        serde_json::from_slice(&self.file(id, "/manifest.json")).unwrap()
    }
}

/// An executable shell script at `path` that runs `body`.
pub fn write_script(path: &Path, body: &str) {
    fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// The summary line of a command that must have succeeded.
pub fn ok_summary(out: &Output) -> serde_json::Value {
    assert_ok(out);
    summary(&String::from_utf8_lossy(&out.stdout))
}

/// The id of the snapshot a backup's summary reports.
pub fn snapshot_id(summary: &serde_json::Value) -> String {
    summary["snapshot_id"].as_str().unwrap().to_string()
}

/// A manifest's entry for the table (or query) `name`.
pub fn manifest_table<'a>(manifest: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    manifest["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("{name} missing"))
}

/// In the manifest, the columns `generated` of `table` are marked
/// generated and the column `plain` is not.
pub fn assert_generated_columns(
    manifest: &serde_json::Value,
    table: &str,
    generated: &[usize],
    plain: usize,
) {
    let columns = &manifest_table(manifest, table)["columns"];
    for &i in generated {
        assert_eq!(columns[i]["generated"], true, "{table} column {i}");
    }
    assert!(
        columns[plain].get("generated").is_none(),
        "{table} column {plain}"
    );
}

/// `backup` arguments for a tables-mode snapshot of tenant 2 (by its
/// `org_id`) with the shared table `countries`, and then `extra`.
pub fn tenant_two_tables<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "--mode",
        "tables",
        "--tenant-column",
        "org_id",
        "--tenant-value",
        "2",
        "--include-table",
        "countries",
    ];
    args.extend_from_slice(extra);
    args
}

/// No file below `dir` matches `grep -rl` with `grep_args` (the patterns,
/// and options such as `--exclude=`); `what` names a match in the panic.
pub fn assert_no_file_mentions(dir: &Path, grep_args: &[&str], what: &str) {
    let grep = Command::new("grep")
        .arg("-rl")
        .args(grep_args)
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        grep.stdout.is_empty(),
        "{what} in {}",
        String::from_utf8_lossy(&grep.stdout)
    );
}

/// `len` incompressible bytes, different for each `seed` (xorshift).
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    xorshift(len, seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
}

/// `len` bytes of the xorshift generator started at `state` (not 0): the
/// low byte of each step.
pub fn xorshift(len: usize, mut state: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Every file (not directory) below `root`, sorted.
/// Flip a byte a third into the biggest data pack of the repository at
/// `repo`, where blobs' bytes are (not the header a plain `check` reads);
/// the pack.
pub fn damage_biggest_pack(repo: &Path) -> PathBuf {
    let pack = files_below(&repo.join("data"))
        .into_iter()
        .max_by_key(|p| fs::metadata(p).unwrap().len())
        .unwrap();
    let mut b = fs::read(&pack).unwrap();
    let i = b.len() / 3;
    b[i] ^= 0x5a;
    fs::write(&pack, b).unwrap();
    pack
}

pub fn files_below(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        for e in fs::read_dir(&p).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// The `summary` object among JSON lines.
pub fn summary(out: &str) -> serde_json::Value {
    out.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["message_type"] == "summary")
        .unwrap_or_else(|| panic!("no summary line in:\n{out}"))
}

pub fn restic_cmd(repo: &Path) -> Command {
    let mut c = Command::new("restic");
    clean(&mut c);
    c.env("RESTIC_REPOSITORY", repo)
        .env("RESTIC_PASSWORD", PASSWORD)
        .env("RESTIC_CACHE_DIR", repo.with_extension("restic-cache"));
    c
}

pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn set_mtime(p: &Path, secs: i64, nanos: i64) {
    let t = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: secs - 100,
            tv_nsec: nanos as _,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: secs,
            tv_nsec: nanos as _,
        },
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        p,
        &t,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// True when the file system under `dir` stores `user.*` extended attributes.
pub fn xattrs_supported(dir: &Path) -> bool {
    let p = dir.join(".xattr-probe");
    fs::write(&p, b"").unwrap();
    let ok = rustix::fs::setxattr(&p, "user.probe", b"1", rustix::fs::XattrFlags::empty()).is_ok();
    fs::remove_file(&p).unwrap();
    ok
}

/// Build a tree under `root` that uses every kind of metadata holdfast
/// records. Ownership and device nodes only when running as root.
pub fn make_rich_tree(root: &Path) {
    fs::create_dir_all(root).unwrap();
    let w = |rel: &str, data: &[u8]| {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, data).unwrap();
        p
    };
    w("empty.txt", b"");
    w("small.txt", b"hello holdfast\n");
    w("dir/block.bin", &pseudo_random(4096, 1));
    w("dir/sub/one-mib.bin", &pseudo_random(1 << 20, 2));
    // several chunks, partly compressible
    let mut big = pseudo_random(5 << 20, 3);
    big.extend(std::iter::repeat_n(b'a', 4 << 20));
    w("dir/sub/big.bin", &big);
    w(
        "text/lines.txt",
        (0..50_000)
            .map(|i| format!("line {i}\n"))
            .collect::<String>()
            .as_bytes(),
    );
    fs::create_dir_all(root.join("empty-dir/nested-empty")).unwrap();

    // names
    let odd = root.join(OsStr::from_bytes(b"latin1-\xe9t\xe9"));
    fs::write(&odd, b"not utf-8 name").unwrap();
    w("quote\"back\\slash", b"q");
    w("new\nline\ttab", b"n");
    w("unicode-日本語-ü", b"u");

    // symlinks
    symlink("small.txt", root.join("link-rel")).unwrap();
    symlink("/etc/hostname", root.join("link-abs")).unwrap();
    symlink("does/not/exist", root.join("link-dangling")).unwrap();
    symlink(OsStr::from_bytes(b"target-\xff"), root.join("link-nonutf8")).unwrap();

    // hard links: a group of three
    let h = w("hard/a", b"shared content\n");
    fs::hard_link(&h, root.join("hard/b")).unwrap();
    fs::hard_link(&h, root.join("dir/hard-c")).unwrap();

    // modes
    let m = |rel: &str, mode: u32| {
        fs::set_permissions(root.join(rel), fs::Permissions::from_mode(mode)).unwrap()
    };
    w("modes/private", b"p");
    m("modes/private", 0o600);
    w("modes/script.sh", b"#!/bin/sh\n");
    m("modes/script.sh", 0o755);
    w("modes/setuid", b"s");
    m("modes/setuid", 0o4755);
    w("modes/setgid", b"g");
    m("modes/setgid", 0o2711);
    fs::create_dir(root.join("modes/sticky")).unwrap();
    m("modes/sticky", 0o1777);
    fs::create_dir(root.join("modes/setgid-dir")).unwrap();
    m("modes/setgid-dir", 0o2775);
    if is_root() {
        w("modes/none", b"0");
        m("modes/none", 0o000);
    }

    // sparse: 16 MiB with 4 KiB of data in the middle
    let sp = root.join("sparse.img");
    {
        let f = fs::File::create(&sp).unwrap();
        f.set_len(16 << 20).unwrap();
        use std::os::unix::fs::FileExt;
        f.write_all_at(b"data in the middle of a hole", 8 << 20)
            .unwrap();
    }

    // special files
    rustix::fs::mknodat(
        rustix::fs::CWD,
        root.join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o640),
        0,
    )
    .unwrap();

    if xattrs_supported(root) {
        let x = root.join("small.txt");
        rustix::fs::setxattr(
            &x,
            "user.comment",
            b"an attribute",
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
        rustix::fs::setxattr(
            &x,
            "user.binary",
            &[0u8, 1, 2, 255],
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
        rustix::fs::setxattr(
            root.join("dir"),
            "user.on-dir",
            b"d",
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
    }

    if is_root() {
        w("owned/by-1234", b"o");
        rustix::fs::chownat(
            rustix::fs::CWD,
            root.join("owned/by-1234"),
            Some(rustix::fs::Uid::from_raw(1234)),
            Some(rustix::fs::Gid::from_raw(5678)),
            rustix::fs::AtFlags::empty(),
        )
        .unwrap();
        rustix::fs::chownat(
            rustix::fs::CWD,
            root.join("owned"),
            Some(rustix::fs::Uid::from_raw(4321)),
            Some(rustix::fs::Gid::from_raw(8765)),
            rustix::fs::AtFlags::empty(),
        )
        .unwrap();
        rustix::fs::chownat(
            rustix::fs::CWD,
            root.join("link-rel"),
            Some(rustix::fs::Uid::from_raw(777)),
            Some(rustix::fs::Gid::from_raw(778)),
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )
        .unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join("null-dev"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::from_raw_mode(0o666),
            rustix::fs::makedev(1, 3),
        )
        .unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join("loop-dev"),
            rustix::fs::FileType::BlockDevice,
            rustix::fs::Mode::from_raw_mode(0o660),
            rustix::fs::makedev(7, 200),
        )
        .unwrap();
    }

    // nanosecond times on everything, children before parents
    let mut all = Vec::new();
    collect(root, &mut all);
    all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for (i, p) in all.iter().enumerate() {
        set_mtime(p, 1_600_000_000 + i as i64 * 1000, 123_456_789 + i as i64);
    }
}

fn collect(p: &Path, out: &mut Vec<PathBuf>) {
    out.push(p.to_path_buf());
    if fs::symlink_metadata(p).unwrap().is_dir() {
        for e in fs::read_dir(p).unwrap() {
            collect(&e.unwrap().path(), out);
        }
    }
}

/// Everything about one entry that a restore must reproduce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: u32,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: (i64, i64),
    pub rdev: u64,
    pub link: Option<Vec<u8>>,
    pub xattrs: BTreeMap<String, Vec<u8>>,
    pub content_hash: Option<[u8; 32]>,
    /// Index of the hard-link group (paths sharing an inode), if nlink > 1.
    pub link_group: Option<Vec<Vec<u8>>>,
    /// Allocated bytes are far below the size: the file has holes.
    pub sparse: bool,
}

fn xattrs(p: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut names = vec![0u8; 4096];
    let Ok(n) = rustix::fs::llistxattr(p, &mut names[..]) else {
        return out;
    };
    for raw in names[..n].split(|&c| c == 0).filter(|n| !n.is_empty()) {
        let name = String::from_utf8_lossy(raw).into_owned();
        if !name.starts_with("user.") {
            continue; // security.* labels differ between directories
        }
        let mut v = vec![0u8; 65536];
        if let Ok(l) = rustix::fs::lgetxattr(p, raw, &mut v[..]) {
            v.truncate(l);
            out.insert(name, v);
        }
    }
    out
}

/// Describe every entry below `root`, keyed by relative path.
pub fn scan_tree(root: &Path) -> BTreeMap<Vec<u8>, Entry> {
    let mut paths = Vec::new();
    collect(root, &mut paths);
    let mut by_inode: BTreeMap<(u64, u64), Vec<Vec<u8>>> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for p in &paths {
        let rel = p
            .strip_prefix(root)
            .unwrap()
            .as_os_str()
            .as_bytes()
            .to_vec();
        let md = fs::symlink_metadata(p).unwrap();
        let kind = md.mode() & 0o170000;
        if kind != 0o040000 && md.nlink() > 1 {
            by_inode
                .entry((md.dev(), md.ino()))
                .or_default()
                .push(rel.clone());
        }
        let content_hash = (kind == 0o100000).then(|| {
            use sha2::Digest;
            let data = if md.mode() & 0o444 == 0 && !is_root() {
                Vec::new()
            } else {
                fs::read(p).unwrap()
            };
            sha2::Sha256::digest(&data).into()
        });
        let e = Entry {
            kind,
            mode: md.mode() & 0o7777,
            uid: md.uid(),
            gid: md.gid(),
            size: if kind == 0o100000 { md.size() } else { 0 },
            mtime: if rel.is_empty() {
                (0, 0)
            } else {
                (md.mtime(), md.mtime_nsec())
            },
            rdev: md.rdev(),
            link: (kind == 0o120000)
                .then(|| fs::read_link(p).unwrap().as_os_str().as_bytes().to_vec()),
            xattrs: xattrs(p),
            content_hash,
            link_group: None,
            sparse: kind == 0o100000 && md.size() > (1 << 20) && md.blocks() * 512 < md.size() / 4,
        };
        out.insert(rel, e);
    }
    for group in by_inode.values() {
        let mut g = group.clone();
        g.sort();
        for rel in group {
            out.get_mut(rel).unwrap().link_group = Some(g.clone());
        }
    }
    out
}

/// Which fields [`assert_same_tree_with`] compares besides paths, types,
/// content and times.
#[derive(Clone, Copy)]
pub struct Compare {
    pub sparse: bool,
    /// Symlink targets that are not valid UTF-8 (restic 0.14 stores them lossily).
    pub non_utf8_links: bool,
}

impl Compare {
    pub const ALL: Compare = Compare {
        sparse: true,
        non_utf8_links: true,
    };
}

/// Assert that two trees are identical in every recorded field.
pub fn assert_same_tree(a: &Path, b: &Path) {
    assert_same_tree_with(a, b, Compare::ALL)
}

pub fn assert_same_tree_with(a: &Path, b: &Path, c: Compare) {
    let ta = scan_tree(a);
    let tb = scan_tree(b);
    let ka: Vec<_> = ta
        .keys()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect();
    let kb: Vec<_> = tb
        .keys()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect();
    assert_eq!(ka, kb, "the two trees hold different paths");
    for (k, ea) in &ta {
        let mut eb = tb[k].clone();
        if !c.sparse {
            eb.sparse = ea.sparse;
        }
        if !c.non_utf8_links
            && ea
                .link
                .as_ref()
                .is_some_and(|l| std::str::from_utf8(l).is_err())
        {
            eb.link = ea.link.clone();
        }
        assert_eq!(ea, &eb, "entry {:?} differs", String::from_utf8_lossy(k));
    }
}
