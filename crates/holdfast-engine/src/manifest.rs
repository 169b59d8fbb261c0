//! The manifest of a snapshot (`holdfast_format::manifest`), read out of
//! the snapshot's root tree, and the files it lists read back with their
//! size and SHA-256 checked ([`ListedFile`]).

use std::io::{self, Read};

use holdfast_format::Id;
use holdfast_format::manifest::{MANIFEST_FILE, MAX_MANIFEST, Manifest, ManifestFile};
use holdfast_format::snapshot::Snapshot;
use holdfast_format::tree::{Node, NodeType};
use sha2::{Digest, Sha256};

use crate::blob_reader::BlobReader;
use crate::repository::Repository;
use crate::{EngineError, Result};

/// The regular file `name` at the root of a snapshot.
pub fn root_file(repo: &Repository, snapshot: &Snapshot, name: &str) -> Result<Option<Node>> {
    let root = repo.load_tree(&snapshot.tree)?;
    Ok(root
        .nodes
        .into_iter()
        .find(|n| n.name == name.as_bytes() && n.node_type == NodeType::File))
}

/// The regular file at `path` (`/`-separated, relative to the root).
pub fn stored_file(repo: &Repository, snapshot: &Snapshot, path: &str) -> Result<Option<Node>> {
    let mut tree = repo.load_tree(&snapshot.tree)?;
    let mut parts = path.split('/').peekable();
    while let Some(name) = parts.next() {
        let want = if parts.peek().is_some() {
            NodeType::Dir
        } else {
            NodeType::File
        };
        let Some(node) = tree
            .nodes
            .into_iter()
            .find(|n| n.name == name.as_bytes() && n.node_type == want)
        else {
            return Ok(None);
        };
        match node.subtree {
            Some(sub) if want == NodeType::Dir => tree = repo.load_tree(&sub)?,
            _ if want == NodeType::File => return Ok(Some(node)),
            _ => return Ok(None),
        }
    }
    Ok(None)
}

/// Hashes (SHA-256) and counts what is read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// (bytes read, SHA-256).
    pub fn finish(self) -> (u64, Id) {
        (self.count, Id(self.hasher.finalize().into()))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// A file the manifest lists, read from the snapshot; [`ListedFile::check`]
/// then compares what was read with the manifest's size and SHA-256.
pub struct ListedFile<'r> {
    reader: HashingReader<BlobReader<'r>>,
    expected: ManifestFile,
}

/// What a listed file read back as, when that is not what the manifest says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub path: String,
    pub size: u64,
    pub sha256: Id,
    pub expected: ManifestFile,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} read back from the repository does not match the manifest \
             (SHA-256 {}, expected {})",
            self.path,
            self.sha256.to_hex(),
            self.expected.sha256
        )
    }
}

impl<'r> ListedFile<'r> {
    /// Open `path`, which the manifest must list and the snapshot hold.
    pub fn open(
        repo: &'r Repository,
        snapshot: &Snapshot,
        manifest: &Manifest,
        path: &str,
    ) -> Result<ListedFile<'r>> {
        let expected = manifest
            .file(path)
            .ok_or_else(|| EngineError::Invalid(format!("the manifest does not list {path}")))?
            .clone();
        let node = stored_file(repo, snapshot, path)?
            .ok_or_else(|| EngineError::Invalid(format!("{path} is missing from the snapshot")))?;
        Ok(ListedFile {
            reader: HashingReader::new(BlobReader::owned(repo, node.content.unwrap_or_default())),
            expected,
        })
    }

    /// The bytes read when they are the manifest's.
    pub fn check(self) -> std::result::Result<u64, Mismatch> {
        let (size, sha256) = self.reader.finish();
        if size == self.expected.size && sha256.to_hex() == self.expected.sha256 {
            return Ok(size);
        }
        Err(Mismatch {
            path: self.expected.path.clone(),
            size,
            sha256,
            expected: self.expected,
        })
    }
}

impl Read for ListedFile<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reader.read(buf)
    }
}

/// The manifest stored in a snapshot, if it has one.
pub fn load(repo: &Repository, snapshot: &Snapshot) -> Result<Option<Manifest>> {
    let Some(node) = root_file(repo, snapshot, MANIFEST_FILE)? else {
        return Ok(None);
    };
    if node.size > MAX_MANIFEST {
        return Err(EngineError::Invalid(format!(
            "manifest.json is {} bytes: not a holdfast manifest",
            node.size
        )));
    }
    let content = node.content.unwrap_or_default();
    let mut data = Vec::new();
    BlobReader::new(repo, &content)
        .read_to_end(&mut data)
        .map_err(|e| EngineError::io("reading manifest.json", e))?;
    Manifest::parse(&data)
        .map(Some)
        .map_err(|e| EngineError::Invalid(e.0))
}
