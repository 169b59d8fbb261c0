//! The local disk backend: restic's default layout in a directory.
//!
//! Writes go to `tmp/` first, are fsynced, renamed into place, and the
//! target directory is fsynced, so a crash leaves either the whole file or
//! none (plus, at worst, a temporary file that [`Backend::clean_temporary`]
//! removes). The repository directory is 0700 and its files 0600.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::{Backend, FileType, ObjectInfo, ObjectName, Result, StorageError};

pub struct LocalBackend {
    root: PathBuf,
}

const DIR_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;

impl LocalBackend {
    pub fn new(root: impl Into<PathBuf>) -> LocalBackend {
        LocalBackend { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path_of(&self, name: &ObjectName) -> PathBuf {
        self.root.join(name.path())
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    fn make_dir(&self, p: &Path) -> Result<()> {
        match fs::create_dir(p) {
            Ok(()) => fs::set_permissions(p, fs::Permissions::from_mode(DIR_MODE))
                .map_err(|e| StorageError::io("chmod", p.display(), e)),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(StorageError::io("create directory", p.display(), e)),
        }
    }
}

fn sync_dir(p: &Path) -> Result<()> {
    File::open(p)
        .and_then(|d| d.sync_all())
        .map_err(|e| StorageError::io("fsync directory", p.display(), e))
}

/// A short, stable tag for this host, part of temporary file names so that
/// cleanup can tell this host's dead writers from live writers elsewhere.
fn host_tag() -> String {
    let host = fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let mut h: u32 = 0x811c9dc5;
    for b in host.trim().bytes() {
        h = (h ^ b as u32).wrapping_mul(0x01000193);
    }
    format!("{h:08x}")
}

fn random_hex() -> String {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).expect("random number generator");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Whether a process with this id exists on this host.
pub fn pid_alive(pid: i32) -> bool {
    match rustix::process::Pid::from_raw(pid) {
        None => false,
        Some(p) => match rustix::process::test_kill_process(p) {
            Ok(()) => true,
            Err(e) => e != rustix::io::Errno::SRCH,
        },
    }
}

impl Backend for LocalBackend {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn create_layout(&self) -> Result<()> {
        fs::create_dir_all(&self.root)
            .map_err(|e| StorageError::io("create directory", self.root.display(), e))?;
        fs::set_permissions(&self.root, fs::Permissions::from_mode(DIR_MODE))
            .map_err(|e| StorageError::io("chmod", self.root.display(), e))?;
        for t in FileType::ALL {
            if t != FileType::Config {
                self.make_dir(&self.root.join(t.dir()))?;
            }
        }
        for i in 0..=255u8 {
            self.make_dir(&self.root.join(format!("data/{i:02x}")))?;
        }
        self.make_dir(&self.tmp_dir())?;
        sync_dir(&self.root)
    }

    fn put(&self, name: &ObjectName, data: &[u8]) -> Result<()> {
        let target = self.path_of(name);
        let tmp_dir = self.tmp_dir();
        if !tmp_dir.is_dir() {
            self.make_dir(&tmp_dir)?;
        }
        let tmp = tmp_dir.join(format!(
            "{}-{}-{}.tmp",
            host_tag(),
            std::process::id(),
            random_hex()
        ));
        let write = || -> std::io::Result<()> {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(FILE_MODE)
                .open(&tmp)?;
            f.write_all(data)?;
            f.sync_all()
        };
        if let Err(e) = write() {
            let _ = fs::remove_file(&tmp);
            return Err(StorageError::io("write", name, e));
        }
        let parent = target.parent().expect("object paths have a parent");
        let mut renamed = fs::rename(&tmp, &target);
        if matches!(&renamed, Err(e) if e.kind() == ErrorKind::NotFound) {
            // A restic repository always has data/00..ff; recreate a missing
            // directory rather than fail.
            fs::create_dir_all(parent)
                .map_err(|e| StorageError::io("create directory", parent.display(), e))?;
            renamed = fs::rename(&tmp, &target);
        }
        if let Err(e) = renamed {
            let _ = fs::remove_file(&tmp);
            return Err(StorageError::io("rename into place", name, e));
        }
        sync_dir(parent)
    }

    fn get(&self, name: &ObjectName) -> Result<Vec<u8>> {
        fs::read(self.path_of(name)).map_err(|e| StorageError::io("read", name, e))
    }

    fn get_range(&self, name: &ObjectName, offset: u64, len: u64) -> Result<Vec<u8>> {
        let f = File::open(self.path_of(name)).map_err(|e| StorageError::io("open", name, e))?;
        let mut buf = vec![0u8; len as usize];
        match f.read_exact_at(&mut buf, offset) {
            Ok(()) => Ok(buf),
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => {
                let actual = f.metadata().map(|m| m.len()).unwrap_or(0);
                Err(StorageError::ShortRead {
                    path: name.path(),
                    offset,
                    len,
                    actual,
                })
            }
            Err(e) => Err(StorageError::io("read", name, e)),
        }
    }

    fn list(&self, ftype: FileType) -> Result<Vec<ObjectInfo>> {
        let mut out = Vec::new();
        let mut scan = |dir: &Path| -> Result<()> {
            let rd = match fs::read_dir(dir) {
                Ok(rd) => rd,
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(StorageError::io("list", dir.display(), e)),
            };
            for entry in rd {
                let entry = entry.map_err(|e| StorageError::io("list", dir.display(), e))?;
                let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                    continue;
                };
                if ObjectName::new(ftype, &name).is_err() {
                    continue;
                }
                let md = match entry.metadata() {
                    Ok(md) => md,
                    // removed between readdir and stat
                    Err(e) if e.kind() == ErrorKind::NotFound => continue,
                    Err(e) => return Err(StorageError::io("stat", entry.path().display(), e)),
                };
                if md.is_file() {
                    out.push(ObjectInfo {
                        name,
                        size: md.len(),
                    });
                }
            }
            Ok(())
        };
        match ftype {
            FileType::Config => {
                if let Ok(md) = fs::metadata(self.root.join("config")) {
                    out.push(ObjectInfo {
                        name: "config".into(),
                        size: md.len(),
                    });
                }
            }
            FileType::Pack => {
                let data = self.root.join("data");
                let rd = match fs::read_dir(&data) {
                    Ok(rd) => rd,
                    Err(e) if e.kind() == ErrorKind::NotFound => return Ok(out),
                    Err(e) => return Err(StorageError::io("list", data.display(), e)),
                };
                let mut subdirs: Vec<PathBuf> = rd
                    .filter_map(|e| e.ok())
                    .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
                    .map(|e| e.path())
                    .collect();
                subdirs.sort();
                for d in subdirs {
                    scan(&d)?;
                }
            }
            t => scan(&self.root.join(t.dir()))?,
        }
        Ok(out)
    }

    fn stat(&self, name: &ObjectName) -> Result<u64> {
        fs::metadata(self.path_of(name))
            .map(|m| m.len())
            .map_err(|e| StorageError::io("stat", name, e))
    }

    fn delete(&self, name: &ObjectName) -> Result<()> {
        let p = self.path_of(name);
        fs::remove_file(&p).map_err(|e| StorageError::io("delete", name, e))?;
        sync_dir(p.parent().expect("object paths have a parent"))
    }

    fn clean_temporary(&self, min_age: Duration) -> Result<usize> {
        let dir = self.tmp_dir();
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(StorageError::io("list", dir.display(), e)),
        };
        let me = host_tag();
        let now = SystemTime::now();
        let mut removed = 0;
        for entry in rd.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let mut parts = name.splitn(3, '-');
            let (host, pid) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let dead_writer_here = host == me
                && pid
                    .parse::<i32>()
                    .map(|p| p != std::process::id() as i32 && !pid_alive(p))
                    .unwrap_or(false);
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .map(|m| now.duration_since(m).unwrap_or_default() >= min_age)
                .unwrap_or(false);
            if (dead_writer_here || old) && fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(c: char) -> String {
        c.to_string().repeat(64)
    }

    #[test]
    fn put_get_list_delete() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(dir.path().join("repo"));
        b.create_layout().unwrap();
        let mode = fs::metadata(b.root()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let n = ObjectName::new(FileType::Pack, &hex('a')).unwrap();
        b.put(&n, b"hello world").unwrap();
        let fmode = fs::metadata(b.path_of(&n)).unwrap().permissions().mode() & 0o777;
        assert_eq!(fmode, 0o600);
        assert_eq!(b.get(&n).unwrap(), b"hello world");
        assert_eq!(b.get_range(&n, 6, 5).unwrap(), b"world");
        assert!(matches!(
            b.get_range(&n, 6, 50),
            Err(StorageError::ShortRead { .. })
        ));
        assert_eq!(b.stat(&n).unwrap(), 11);
        // a stray file in data/aa is not listed
        fs::write(b.root().join("data/aa/garbage"), b"x").unwrap();
        let l = b.list(FileType::Pack).unwrap();
        assert_eq!(
            l,
            vec![ObjectInfo {
                name: hex('a'),
                size: 11
            }]
        );
        b.delete(&n).unwrap();
        assert!(b.get(&n).unwrap_err().is_not_found());
        assert!(b.list(FileType::Pack).unwrap().is_empty());
        // nothing left in tmp
        assert_eq!(fs::read_dir(b.root().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn temporary_files_of_dead_writers_are_cleaned() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(dir.path());
        b.create_layout().unwrap();
        let dead = b
            .tmp_dir()
            .join(format!("{}-{}-00.tmp", host_tag(), i32::MAX - 1));
        let live = b
            .tmp_dir()
            .join(format!("{}-{}-00.tmp", host_tag(), std::process::id()));
        fs::write(&dead, b"partial").unwrap();
        fs::write(&live, b"in progress").unwrap();
        assert_eq!(b.clean_temporary(Duration::from_secs(3600)).unwrap(), 1);
        assert!(!dead.exists());
        assert!(live.exists());
    }
}
