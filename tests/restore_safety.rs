//! A snapshot is only JSON: anyone with the password can write one by hand.
//! These snapshots try to make a restore write outside its target; the
//! restore must refuse the entries and leave everything outside untouched.

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::sync::Arc;

use common::*;
use holdfast_engine::blob_saver::{BlobSaver, SaverOptions};
use holdfast_engine::repository::Repository;
use holdfast_format::gotime::GoTime;
use holdfast_format::snapshot::Snapshot;
use holdfast_format::tree::{Node, NodeType, Tree, gomode};
use holdfast_format::{BlobType, Id};
use holdfast_storage::{Backend, LocalBackend};

struct Crafter {
    repo: Arc<Repository>,
    saver: Option<BlobSaver>,
}

impl Crafter {
    fn new(path: &Path) -> Crafter {
        let be: Arc<dyn Backend> = Arc::new(LocalBackend::new(path));
        let repo = Arc::new(Repository::open(be, PASSWORD.as_bytes()).unwrap());
        let idx = repo.load_index().unwrap();
        let saver = BlobSaver::new(repo.clone(), idx, SaverOptions::default());
        Crafter {
            repo,
            saver: Some(saver),
        }
    }

    fn file(&self, name: &[u8], data: &[u8]) -> Node {
        let id = self
            .saver
            .as_ref()
            .unwrap()
            .save(BlobType::Data, data.to_vec())
            .unwrap()
            .id;
        let mut n = Node::new(name.to_vec(), NodeType::File);
        n.mode = 0o644;
        n.size = data.len() as u64;
        n.content = Some(vec![id]);
        n.mtime = GoTime::utc(1_700_000_000, 0);
        n
    }

    fn symlink(&self, name: &[u8], target: &[u8]) -> Node {
        let mut n = Node::new(name.to_vec(), NodeType::Symlink);
        n.mode = gomode::SYMLINK | 0o777;
        n.set_link_target(target);
        n
    }

    fn dir(&self, name: &[u8], children: Vec<Node>) -> Node {
        let mut n = Node::new(name.to_vec(), NodeType::Dir);
        n.mode = gomode::DIR | 0o755;
        n.subtree = Some(self.tree(children));
        n
    }

    /// Children are kept in the given order (a hostile tree need not be sorted).
    fn tree(&self, nodes: Vec<Node>) -> Id {
        let blob = Tree { nodes }.to_blob();
        self.saver
            .as_ref()
            .unwrap()
            .save(BlobType::Tree, blob)
            .unwrap()
            .id
    }

    fn snapshot(mut self, root: Vec<Node>) -> String {
        let tree = self.tree(root);
        self.saver.take().unwrap().finish().unwrap();
        let snap = Snapshot::new(tree, vec!["/hostile".into()], GoTime::now());
        self.repo.save_snapshot(&snap).unwrap().to_hex()
    }
}

/// Everything below `dir`, as relative paths.
fn listing(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        for e in fs::read_dir(&p).unwrap() {
            let e = e.unwrap();
            out.push(
                e.path()
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            );
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn names_that_escape_are_refused() {
    let repo = Repo::new();
    let c = Crafter::new(&repo.path);
    let root = vec![
        c.file(b"..", b"dotdot"),
        c.file(b".", b"dot"),
        c.file(b"", b"empty"),
        c.file(b"../escaped-file", b"pwned"),
        c.file(b"/tmp/holdfast-absolute-escape", b"pwned"),
        c.file(b"a\0b", b"nul"),
        c.dir(
            b"sub",
            vec![
                c.file(b"../../escaped-from-sub", b"pwned"),
                c.file(b"fine.txt", b"ok"),
            ],
        ),
        c.file(b"legit.txt", b"legit"),
    ];
    let id = c.snapshot(root);
    let base = repo.dir.path().join("base");
    let target = base.join("target");
    fs::create_dir_all(&target).unwrap();
    let out = repo.run(&["restore", &id, "--target", target.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "refused entries make the restore fail: {err}"
    );
    assert!(err.contains("refusing"), "{err}");
    assert_eq!(fs::read(target.join("legit.txt")).unwrap(), b"legit");
    assert_eq!(fs::read(target.join("sub/fine.txt")).unwrap(), b"ok");
    assert_eq!(
        listing(&base),
        vec![
            "target",
            "target/legit.txt",
            "target/sub",
            "target/sub/fine.txt"
        ]
    );
    assert!(!Path::new("/tmp/holdfast-absolute-escape").exists());
}

#[test]
fn a_symlink_cannot_redirect_a_later_entry() {
    let repo = Repo::new();
    let outside = repo.dir.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    let c = Crafter::new(&repo.path);
    let out_s = outside.to_str().unwrap().as_bytes();
    let root = vec![
        // "x" is first a symlink to the outside, then a directory with a
        // file in it, then a file: only the first may be restored
        c.symlink(b"x", out_s),
        c.dir(b"x", vec![c.file(b"through-link", b"pwned")]),
        c.file(b"x", b"pwned"),
        // a relative symlink climbing out, then a directory of the same
        // name in a subdirectory tree
        c.dir(
            b"d",
            vec![
                c.symlink(b"up", b"../../outside"),
                c.dir(b"up", vec![c.file(b"f", b"pwned")]),
            ],
        ),
    ];
    let id = c.snapshot(root);
    let target = repo.dir.path().join("target");
    let out = repo.run(&["restore", &id, "--target", target.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("same name"));
    assert!(
        listing(&outside).is_empty(),
        "wrote outside the target: {:?}",
        listing(&outside)
    );
    // the symlinks themselves are restored as symlinks
    assert_eq!(fs::read_link(target.join("x")).unwrap(), outside);
    assert!(
        fs::symlink_metadata(target.join("d/up"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

#[test]
fn symlinks_already_in_the_target_are_replaced_not_followed() {
    let repo = Repo::new();
    let outside = repo.dir.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    let victim = outside.join("victim");
    fs::write(&victim, b"precious").unwrap();
    let c = Crafter::new(&repo.path);
    let root = vec![
        c.dir(b"dir", vec![c.file(b"f", b"new content")]),
        c.file(b"file", b"new content"),
    ];
    let id = c.snapshot(root);
    let target = repo.dir.path().join("target");
    fs::create_dir_all(&target).unwrap();
    // planted by an attacker who can write to the target
    symlink(&outside, target.join("dir")).unwrap();
    symlink(&victim, target.join("file")).unwrap();
    repo.ok(&["restore", &id, "--target", target.to_str().unwrap()]);
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
    assert_eq!(listing(&outside), vec!["victim"]);
    assert!(fs::symlink_metadata(target.join("dir")).unwrap().is_dir());
    assert!(fs::symlink_metadata(target.join("file")).unwrap().is_file());
    assert_eq!(fs::read(target.join("dir/f")).unwrap(), b"new content");
    assert_eq!(fs::read(target.join("file")).unwrap(), b"new content");
}

#[test]
fn hostile_snapshot_dump_and_ls_do_not_crash() {
    let repo = Repo::new();
    let c = Crafter::new(&repo.path);
    let mut bad = c.file(b"\xff\xfe\"\\\n", b"x");
    bad.size = 999; // lies about its size
    let d = c.dir(b"d", vec![]);
    let id = c.snapshot(vec![bad, d]);
    let out = repo.run(&["ls", "-l", &id]);
    assert!(out.status.success());
    let tar = repo.cmd().args(["dump", &id, "/"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&tar.stderr).contains("panicked"));
}
