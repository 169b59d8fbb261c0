//! Opening, creating and reading a repository.

use std::sync::{Arc, RwLock};

use holdfast_format::config::Config;
use holdfast_format::gotime::GoTime;
use holdfast_format::index::IndexFile;
use holdfast_format::keyfile::{KeyFile, KeyFileError};
use holdfast_format::snapshot::Snapshot;
use holdfast_format::tree::Tree;
use holdfast_format::{BlobType, Id, MasterKey, pack, unpacked};
use holdfast_storage::{Backend, FileType, ObjectName, StorageError};
use sha2::{Digest, Sha256};

use crate::error::{EngineError, Result};
use crate::index::{BlobLocation, MasterIndex};
use crate::system;

/// How blobs are compressed (`--compression`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Off,
    Auto,
    Max,
    Level(i32),
}

impl Compression {
    /// The zstd level, or `None` to store blobs uncompressed.
    pub fn zstd_level(self) -> Option<i32> {
        match self {
            Compression::Off => None,
            Compression::Auto => Some(2),
            Compression::Max => Some(19),
            Compression::Level(l) => Some(l),
        }
    }

    /// A zstd compressor for blobs, or `None` for `off`. `auto` is tuned
    /// for the pipeline's blob sizes (64 KiB–8 MiB): zstd's level-2 search
    /// with a larger hash table and minimum match 5, which on real file
    /// trees compresses to within 1–2 % of level 3 at about 20 % less CPU
    /// (docs/BENCHMARKS.md).
    pub fn compressor(self) -> Option<zstd::bulk::Compressor<'static>> {
        use zstd::stream::raw::CParameter;
        let level = self.zstd_level()?;
        let mut c = zstd::bulk::Compressor::new(level).ok()?;
        if self == Compression::Auto {
            c.set_parameter(CParameter::HashLog(17)).ok()?;
            c.set_parameter(CParameter::MinMatch(5)).ok()?;
        }
        Some(c)
    }

    pub fn parse(s: &str) -> Result<Compression> {
        match s {
            "off" => Ok(Compression::Off),
            "auto" => Ok(Compression::Auto),
            "max" => Ok(Compression::Max),
            n => match n.parse::<i32>() {
                Ok(l) if (1..=22).contains(&l) => Ok(Compression::Level(l)),
                _ => Err(EngineError::Invalid(format!(
                    "compression {s:?}: expected auto, off, max or a zstd level 1-22"
                ))),
            },
        }
    }
}

/// Level used for index, snapshot and lock files.
const METADATA_ZSTD_LEVEL: i32 = 3;

pub struct Repository {
    backend: Arc<dyn Backend>,
    key: MasterKey,
    key_id: Id,
    config: Config,
    index: RwLock<Option<Arc<MasterIndex>>>,
}

/// Options for `Repository::init`.
pub struct InitOptions {
    /// scrypt cost: N = 2^log_n.
    pub kdf_log_n: u8,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            kdf_log_n: holdfast_format::keyfile::DEFAULT_LOG_N,
        }
    }
}

impl Repository {
    /// Create a new repository with one key for `password`.
    pub fn init(
        backend: Arc<dyn Backend>,
        password: &[u8],
        opts: &InitOptions,
    ) -> Result<Repository> {
        match backend.stat(&ObjectName::config()) {
            Ok(_) => return Err(EngineError::RepoExists(backend.location())),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
        backend.create_layout()?;
        let master = MasterKey::random();
        let kf = KeyFile::create(
            &master,
            password,
            &system::username(),
            &system::hostname(),
            GoTime::now().to_string(),
            opts.kdf_log_n,
        );
        let kbytes = kf.to_bytes();
        let key_id = Id::hash(&kbytes);
        backend.put(&name(FileType::Key, &key_id), &kbytes)?;
        let config = Config::new();
        // The config goes last: its presence is what makes a repository.
        backend.put(&ObjectName::config(), &config.seal(&master))?;
        Ok(Repository {
            backend,
            key: master,
            key_id,
            config,
            index: RwLock::new(None),
        })
    }

    /// Open an existing repository with `password`.
    pub fn open(backend: Arc<dyn Backend>, password: &[u8]) -> Result<Repository> {
        let config_sealed = match backend.get(&ObjectName::config()) {
            Ok(b) => b,
            Err(e) if e.is_not_found() => {
                return Err(EngineError::RepoNotFound(backend.location()));
            }
            Err(e) => return Err(e.into()),
        };
        let mut keys = backend.list(FileType::Key)?;
        if keys.is_empty() {
            return Err(EngineError::NoKeys(backend.location()));
        }
        keys.sort_by(|a, b| a.name.cmp(&b.name));
        let mut opened = None;
        // key files that could not be read or used, and why: when no key
        // opens, the password is wrong only if some key could be tried
        let mut unusable: Vec<String> = Vec::new();
        let mut tried = 0;
        for k in &keys {
            let oname = ObjectName::new(FileType::Key, &k.name)?;
            let bytes = match backend.get(&oname) {
                Ok(b) => b,
                Err(e) => {
                    unusable.push(format!("keys/{}: {e}", k.name));
                    continue;
                }
            };
            let kf = match KeyFile::parse(&bytes) {
                Ok(kf) => kf,
                Err(e) => {
                    unusable.push(format!("keys/{}: {e}", k.name));
                    continue;
                }
            };
            match kf.open(password) {
                Ok(master) => {
                    opened = Some((master, Id::hash(&bytes)));
                    break;
                }
                Err(KeyFileError::WrongPassword) => tried += 1,
                Err(e) => unusable.push(format!("keys/{}: {e}", k.name)),
            }
        }
        let Some((key, key_id)) = opened else {
            if tried == 0 {
                return Err(EngineError::corrupt(
                    format!("{} (every key file)", backend.location()),
                    format!(
                        "no key file can be used, so the password was never checked: {}",
                        unusable.join("; ")
                    ),
                ));
            }
            return Err(EngineError::WrongPassword {
                location: backend.location(),
            });
        };
        let config =
            Config::open(&key, config_sealed).map_err(|e| EngineError::corrupt("config", e))?;
        Ok(Repository {
            backend,
            key,
            key_id,
            config,
            index: RwLock::new(None),
        })
    }

    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    pub fn key(&self) -> &MasterKey {
        &self.key
    }

    pub fn key_id(&self) -> Id {
        self.key_id
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn location(&self) -> String {
        self.backend.location()
    }

    /// The seed for the content-defined chunker, derived from the (secret,
    /// encrypted) chunker polynomial so that boundaries are per-repository.
    pub fn chunker_seed(&self) -> u64 {
        let mut h = Sha256::new();
        h.update(b"holdfast fastcdc gear seed v1\0");
        h.update(self.config.chunker_polynomial.as_bytes());
        h.update(self.config.id.as_bytes());
        let d = h.finalize();
        u64::from_le_bytes(d[..8].try_into().unwrap())
    }

    // ----- unpacked files (index, snapshots, locks) -----

    /// Seal, store and return the id of a JSON document.
    pub fn save_json(&self, ftype: FileType, json: &[u8]) -> Result<Id> {
        let sealed = unpacked::seal_json(&self.key, json, METADATA_ZSTD_LEVEL);
        let id = Id::hash(&sealed);
        self.backend.put(&name(ftype, &id), &sealed)?;
        Ok(id)
    }

    /// Load, verify and decrypt an unpacked file.
    pub fn load_json(&self, ftype: FileType, id: &Id) -> Result<Vec<u8>> {
        let oname = name(ftype, id);
        let bytes = self.backend.get(&oname)?;
        if Id::hash(&bytes) != *id {
            return Err(EngineError::corrupt(
                &oname,
                "content does not match its name (SHA-256 mismatch)",
            ));
        }
        unpacked::open_json(&self.key, bytes).map_err(|e| EngineError::corrupt(&oname, e))
    }

    pub fn list_ids(&self, ftype: FileType) -> Result<Vec<Id>> {
        let mut ids: Vec<Id> = self
            .backend
            .list(ftype)?
            .into_iter()
            .filter_map(|o| Id::from_hex(&o.name).ok())
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Every pack file with its size.
    pub fn list_packs(&self) -> Result<std::collections::HashMap<Id, u64>> {
        Ok(self
            .backend
            .list(FileType::Pack)?
            .into_iter()
            .filter_map(|o| Id::from_hex(&o.name).ok().map(|id| (id, o.size)))
            .collect())
    }

    /// Resolve an id prefix among the files of one type.
    pub fn find_id(&self, ftype: FileType, prefix: &str) -> Result<Id> {
        if let Ok(id) = Id::from_hex(prefix) {
            return Ok(id);
        }
        let prefix = prefix.to_ascii_lowercase();
        let matches: Vec<Id> = self
            .list_ids(ftype)?
            .into_iter()
            .filter(|id| id.to_hex().starts_with(&prefix))
            .collect();
        match matches.len() {
            0 => Err(EngineError::SnapshotNotFound(prefix)),
            1 => Ok(matches[0]),
            _ => Err(EngineError::AmbiguousSnapshot(prefix)),
        }
    }

    pub fn load_snapshot(&self, id: &Id) -> Result<Snapshot> {
        let json = self.load_json(FileType::Snapshot, id)?;
        Snapshot::from_json(&json)
            .map_err(|e| EngineError::corrupt(name(FileType::Snapshot, id), e))
    }

    pub fn save_snapshot(&self, snap: &Snapshot) -> Result<Id> {
        self.save_json(FileType::Snapshot, &snap.to_json())
    }

    pub fn load_index_file(&self, id: &Id) -> Result<IndexFile> {
        let json = self.load_json(FileType::Index, id)?;
        IndexFile::from_json(&json).map_err(|e| EngineError::corrupt(name(FileType::Index, id), e))
    }

    // ----- index -----

    /// Load every index file (in parallel) into the in-memory index.
    pub fn load_index(&self) -> Result<Arc<MasterIndex>> {
        if let Some(idx) = self.index.read().unwrap().as_ref() {
            return Ok(idx.clone());
        }
        let ids = self.list_ids(FileType::Index)?;
        let files = crate::parallel::map(ids, 4, |id| self.load_index_file(&id).map(|f| (id, f)))?;
        let mut idx = MasterIndex::new();
        for (id, f) in &files {
            idx.add_index_file(Some(*id), f);
        }
        idx.finish();
        let idx = Arc::new(idx);
        *self.index.write().unwrap() = Some(idx.clone());
        Ok(idx)
    }

    /// The loaded index (loading it on first use).
    pub fn index(&self) -> Result<Arc<MasterIndex>> {
        self.load_index()
    }

    /// Replace the in-memory index (after this process wrote new packs).
    pub fn set_index(&self, idx: MasterIndex) {
        *self.index.write().unwrap() = Some(Arc::new(idx));
    }

    // ----- blobs -----

    /// Read, decrypt, decompress and verify one blob stored at `loc`.
    pub fn read_blob_at(&self, id: &Id, loc: &BlobLocation) -> Result<Vec<u8>> {
        let pack = name(FileType::Pack, &loc.pack);
        let sealed = self
            .backend
            .get_range(&pack, loc.offset as u64, loc.length as u64)?;
        self.decode_blob(id, loc, sealed)
            .map_err(|why| EngineError::corrupt(&pack, format!("blob {id}: {why}")))
    }

    /// Decrypt, decompress and verify a sealed blob already read.
    pub fn decode_blob(
        &self,
        id: &Id,
        loc: &BlobLocation,
        sealed: Vec<u8>,
    ) -> std::result::Result<Vec<u8>, String> {
        let plain = self.key.open_owned(sealed).map_err(|e| e.to_string())?;
        let data = match loc.uncompressed_length {
            None => plain,
            Some(n) => decompress(&plain, n as usize).map_err(|e| format!("zstd: {e}"))?,
        };
        if let Some(n) = loc.uncompressed_length
            && data.len() != n as usize
        {
            return Err(format!(
                "decompressed to {} bytes, index says {n}",
                data.len()
            ));
        }
        if Id::hash(&data) != *id {
            return Err("content does not match its id (SHA-256 mismatch)".into());
        }
        Ok(data)
    }

    /// Load a blob by id, trying every stored copy before giving up.
    pub fn load_blob(&self, id: &Id, t: BlobType) -> Result<Vec<u8>> {
        let idx = self.index()?;
        let locs = idx.lookup_all(id, t);
        if locs.is_empty() {
            return Err(EngineError::BlobNotFound {
                id: *id,
                blob_type: t,
            });
        }
        let mut last = None;
        for loc in &locs {
            match self.read_blob_at(id, loc) {
                Ok(d) => return Ok(d),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("at least one location"))
    }

    pub fn load_tree(&self, id: &Id) -> Result<Tree> {
        let data = self.load_blob(id, BlobType::Tree)?;
        Tree::from_blob(&data).map_err(|e| EngineError::corrupt(format!("tree {id}"), e))
    }

    /// Read and parse a pack's header.
    pub fn read_pack_header(&self, pack_id: &Id, size: u64) -> Result<Vec<pack::PackedBlob>> {
        let pname = name(FileType::Pack, pack_id);
        let tail_len = size.min(pack::EAGER_TAIL as u64);
        let mut tail = self.backend.get_range(&pname, size - tail_len, tail_len)?;
        let hl = pack::header_length(&tail, size).map_err(|e| EngineError::corrupt(&pname, e))?;
        let need = hl + pack::TRAILER_LEN as u64;
        if need > tail_len {
            tail = self.backend.get_range(&pname, size - need, need)?;
        }
        pack::parse_tail(&self.key, &tail, size).map_err(|e| EngineError::corrupt(&pname, e))
    }

    // ----- keys -----

    pub fn list_keys(&self) -> Result<Vec<(Id, Option<KeyFile>)>> {
        let ids = self.list_ids(FileType::Key)?;
        Ok(ids
            .into_iter()
            .map(|id| {
                let kf = self
                    .backend
                    .get(&name(FileType::Key, &id))
                    .ok()
                    .and_then(|b| KeyFile::parse(&b).ok());
                (id, kf)
            })
            .collect())
    }

    /// Add a key for `password`; the new key file is durable on return.
    pub fn add_key(&self, password: &[u8], log_n: u8) -> Result<Id> {
        let kf = KeyFile::create(
            &self.key,
            password,
            &system::username(),
            &system::hostname(),
            GoTime::now().to_string(),
            log_n,
        );
        let bytes = kf.to_bytes();
        let id = Id::hash(&bytes);
        self.backend.put(&name(FileType::Key, &id), &bytes)?;
        Ok(id)
    }

    pub fn remove_key(&self, id: &Id) -> Result<()> {
        if *id == self.key_id {
            return Err(EngineError::Invalid(
                "refusing to remove the key this session is using".into(),
            ));
        }
        self.backend.delete(&name(FileType::Key, id))?;
        Ok(())
    }
}

thread_local! {
    /// One decompression context per thread, reused for every blob.
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

fn decompress(data: &[u8], capacity: usize) -> std::io::Result<Vec<u8>> {
    DECOMPRESSOR.with(|d| {
        let mut d = d.borrow_mut();
        if d.is_none() {
            *d = Some(zstd::bulk::Decompressor::new()?);
        }
        d.as_mut().expect("just set").decompress(data, capacity)
    })
}

/// The object name of a file given its type and id.
pub fn name(ftype: FileType, id: &Id) -> ObjectName {
    ObjectName::new(ftype, &id.to_hex()).expect("ids are valid object names")
}

/// Map a storage error on a named object to "not found" or pass it on.
pub fn not_found_is_none<T>(r: std::result::Result<T, StorageError>) -> Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use holdfast_storage::MemoryBackend;

    fn fast() -> InitOptions {
        InitOptions { kdf_log_n: 10 }
    }

    #[test]
    fn init_open_wrong_password() {
        let be: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
        let r = Repository::init(be.clone(), b"pw", &fast()).unwrap();
        assert!(matches!(
            Repository::init(be.clone(), b"pw", &fast()),
            Err(EngineError::RepoExists(_))
        ));
        let r2 = Repository::open(be.clone(), b"pw").unwrap();
        assert_eq!(r2.config(), r.config());
        assert!(matches!(
            Repository::open(be.clone(), b"nope"),
            Err(EngineError::WrongPassword { .. })
        ));
        let empty: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
        assert!(matches!(
            Repository::open(empty, b"pw"),
            Err(EngineError::RepoNotFound(_))
        ));
    }

    #[test]
    fn a_key_file_that_does_not_parse_is_not_a_wrong_password() {
        let mb = Arc::new(MemoryBackend::new());
        let be: Arc<dyn Backend> = mb.clone();
        let r = Repository::init(be.clone(), b"pw", &fast()).unwrap();
        // the only key file replaced by one this version cannot read
        let key = name(FileType::Key, &r.key_id());
        mb.delete(&key).unwrap();
        let odd = br#"{"kdf":"scrypt","N":"not a number"}"#.to_vec();
        let odd_name = name(FileType::Key, &Id::hash(&odd));
        mb.put(&odd_name, &odd).unwrap();
        match Repository::open(be, b"pw") {
            Err(EngineError::Corrupt { file, why }) => {
                assert!(why.contains("password was never checked"), "{why}");
                assert!(why.contains("keys/"), "{why}");
                assert!(file.contains("every key file"), "{file}");
            }
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("opened"),
        }
    }

    #[test]
    fn keys_add_remove() {
        let be: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
        let r = Repository::init(be.clone(), b"one", &fast()).unwrap();
        let k2 = r.add_key(b"two", 10).unwrap();
        let r2 = Repository::open(be.clone(), b"two").unwrap();
        assert_eq!(r2.key_id(), k2);
        assert!(r2.remove_key(&k2).is_err());
        r2.remove_key(&r.key_id()).unwrap();
        assert!(Repository::open(be.clone(), b"one").is_err());
        assert_eq!(r2.list_keys().unwrap().len(), 1);
    }

    #[test]
    fn unpacked_files_are_verified() {
        let mb = Arc::new(MemoryBackend::new());
        let be: Arc<dyn Backend> = mb.clone();
        let r = Repository::init(be, b"pw", &fast()).unwrap();
        let id = r.save_json(FileType::Snapshot, b"{\"x\":1}").unwrap();
        assert_eq!(r.load_json(FileType::Snapshot, &id).unwrap(), b"{\"x\":1}");
        let n = name(FileType::Snapshot, &id);
        let mut bytes = mb.get(&n).unwrap();
        bytes[20] ^= 1;
        mb.overwrite(&n, bytes);
        let err = r
            .load_json(FileType::Snapshot, &id)
            .unwrap_err()
            .to_string();
        assert!(err.contains(&id.to_hex()), "{err}");
    }
}
