//! An in-memory backend for tests of the layers above storage.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::{Backend, FileType, ObjectInfo, ObjectName, Result, StorageError};

#[derive(Default)]
pub struct MemoryBackend {
    files: Mutex<BTreeMap<ObjectName, Vec<u8>>>,
    /// Types whose deletes are refused as retained (an object-lock bucket).
    retained: Mutex<Vec<FileType>>,
}

impl MemoryBackend {
    pub fn new() -> MemoryBackend {
        MemoryBackend::default()
    }

    /// Refuse deletes of `ftype` as an object-lock bucket does.
    pub fn retain(&self, ftype: FileType) {
        self.retained.lock().unwrap().push(ftype);
    }

    /// Replace a stored file's bytes (tests use this to corrupt data).
    pub fn overwrite(&self, name: &ObjectName, data: Vec<u8>) {
        self.files.lock().unwrap().insert(name.clone(), data);
    }
}

impl Backend for MemoryBackend {
    fn location(&self) -> String {
        "memory".into()
    }

    fn create_layout(&self) -> Result<()> {
        Ok(())
    }

    fn put(&self, name: &ObjectName, data: &[u8]) -> Result<()> {
        self.files
            .lock()
            .unwrap()
            .insert(name.clone(), data.to_vec());
        Ok(())
    }

    fn get(&self, name: &ObjectName) -> Result<Vec<u8>> {
        self.files
            .lock()
            .unwrap()
            .get(name)
            .cloned()
            .ok_or_else(|| StorageError::NotFound(name.path()))
    }

    fn get_range(&self, name: &ObjectName, offset: u64, len: u64) -> Result<Vec<u8>> {
        let files = self.files.lock().unwrap();
        let f = files
            .get(name)
            .ok_or_else(|| StorageError::NotFound(name.path()))?;
        let end = offset.checked_add(len).filter(|&e| e <= f.len() as u64);
        match end {
            Some(end) => Ok(f[offset as usize..end as usize].to_vec()),
            None => Err(StorageError::ShortRead {
                path: name.path(),
                offset,
                len,
                actual: f.len() as u64,
            }),
        }
    }

    fn list(&self, ftype: FileType) -> Result<Vec<ObjectInfo>> {
        Ok(self
            .files
            .lock()
            .unwrap()
            .iter()
            .filter(|(n, _)| n.ftype() == ftype)
            .map(|(n, d)| ObjectInfo {
                name: n.name().to_string(),
                size: d.len() as u64,
            })
            .collect())
    }

    fn stat(&self, name: &ObjectName) -> Result<u64> {
        self.files
            .lock()
            .unwrap()
            .get(name)
            .map(|d| d.len() as u64)
            .ok_or_else(|| StorageError::NotFound(name.path()))
    }

    fn delete(&self, name: &ObjectName) -> Result<()> {
        if self.retained.lock().unwrap().contains(&name.ftype()) {
            return Err(StorageError::Retained {
                path: name.path(),
                why: "AccessDenied: object protected by object lock".into(),
            });
        }
        self.files
            .lock()
            .unwrap()
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| StorageError::NotFound(name.path()))
    }
}
