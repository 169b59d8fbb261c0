//! Make a repository with very many small blobs, to measure how prune's and
//! check's memory grows with the number of blobs (used by scripts/bench.sh).
//!
//!   cargo run --release -p holdfast-engine --example many_blobs -- REPO BLOBS
//!
//! Writes two snapshots: one referencing every blob, one referencing the
//! first half, so that forgetting the first and pruning drops half of them.
//! The password is taken from HOLDFAST_PASSWORD.

use std::sync::Arc;

use holdfast_engine::blob_saver::{BlobSaver, SaverOptions};
use holdfast_engine::repository::{InitOptions, Repository};
use holdfast_format::gotime::GoTime;
use holdfast_format::snapshot::Snapshot;
use holdfast_format::tree::{Node, NodeType, Tree, gomode};
use holdfast_format::{BlobType, Id};
use holdfast_storage::{Backend, LocalBackend};

const BLOBS_PER_FILE: usize = 16;
const FILES_PER_DIR: usize = 1000;

fn main() {
    let mut args = std::env::args().skip(1);
    let repo_path = args.next().expect("usage: many_blobs REPO BLOBS");
    let n: usize = args
        .next()
        .expect("usage: many_blobs REPO BLOBS")
        .parse()
        .expect("BLOBS is a number");
    let password = std::env::var("HOLDFAST_PASSWORD").expect("HOLDFAST_PASSWORD");
    let be: Arc<dyn Backend> = Arc::new(LocalBackend::new(&repo_path));
    let repo = Arc::new(
        Repository::init(be, password.as_bytes(), &InitOptions { kdf_log_n: 10 }).expect("init"),
    );
    let saver = BlobSaver::new(
        repo.clone(),
        repo.load_index().expect("index"),
        SaverOptions::default(),
    );
    let mut files: Vec<Node> = Vec::new();
    let mut dirs_all: Vec<Node> = Vec::new();
    let mut dirs_half: Vec<Node> = Vec::new();
    let mut content = Vec::new();
    let flush_dir = |files: &mut Vec<Node>, dirs: &mut Vec<Node>, saver: &BlobSaver| {
        let mut t = Tree {
            nodes: std::mem::take(files),
        };
        t.sort();
        let id = saver
            .save(BlobType::Tree, t.to_blob())
            .expect("save tree")
            .id;
        let mut d = Node::new(format!("d{:08}", dirs.len()).into_bytes(), NodeType::Dir);
        d.mode = gomode::DIR | 0o755;
        d.subtree = Some(id);
        dirs.push(d);
    };
    for i in 0..n {
        let data = (i as u64).to_le_bytes().repeat(4);
        content.push(saver.save(BlobType::Data, data).expect("save blob").id);
        if content.len() == BLOBS_PER_FILE || i + 1 == n {
            let mut f = Node::new(format!("f{:08}", files.len()).into_bytes(), NodeType::File);
            f.mode = 0o644;
            f.size = (content.len() * 32) as u64;
            f.content = Some(std::mem::take(&mut content));
            files.push(f);
            if files.len() == FILES_PER_DIR {
                flush_dir(&mut files, &mut dirs_all, &saver);
                if i < n / 2 {
                    dirs_half.push(dirs_all.last().expect("just pushed").clone());
                }
            }
        }
    }
    if !files.is_empty() {
        flush_dir(&mut files, &mut dirs_all, &saver);
    }
    let mut roots = Vec::new();
    for dirs in [dirs_all, dirs_half] {
        let id = saver
            .save(BlobType::Tree, Tree { nodes: dirs }.to_blob())
            .expect("save root")
            .id;
        roots.push(id);
    }
    saver.finish().expect("finish");
    for (i, root) in roots.iter().enumerate() {
        let t = GoTime::utc(GoTime::now().secs - 100 + i as i64, 0);
        let s = Snapshot::new(*root, vec!["/many".into()], t);
        let id: Id = repo.save_snapshot(&s).expect("snapshot");
        println!("{id}");
    }
}
