//! Descriptor-relative file system operations shared by directory
//! backups and restores: every name is one validated component, resolved
//! from an open directory descriptor, never following a symlink.

use std::io;
use std::os::fd::OwnedFd;

use holdfast_format::gotime::GoTime;
use rustix::fs::{AtFlags, Mode, OFlags, Timespec};
use rustix::io::Errno;

/// A name is safe to create in a directory: one component, nothing that
/// resolves elsewhere.
pub fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.contains(&b'/') && !name.contains(&0)
}

pub(crate) fn lossy(p: &[u8]) -> String {
    String::from_utf8_lossy(p).into_owned()
}

pub(crate) fn errno(e: Errno) -> io::Error {
    io::Error::from(e)
}

pub(crate) fn ts(t: &GoTime) -> Timespec {
    Timespec {
        tv_sec: t.secs,
        tv_nsec: t.nanos as _,
    }
}

pub(crate) fn stat_at(dir: &OwnedFd, name: &[u8]) -> io::Result<Option<rustix::fs::Stat>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(s) => Ok(Some(s)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(errno(e)),
    }
}

pub(crate) fn file_type_bits(st: &rustix::fs::Stat) -> u32 {
    st.st_mode & 0o170000
}

pub(crate) fn open_dir_at(dir: &OwnedFd, name: &[u8]) -> io::Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno)
}

/// Remove `name` from `dir`, recursively if it is a directory, never
/// following symlinks.
pub fn remove_at(dir: &OwnedFd, name: &[u8], depth: usize) -> io::Result<()> {
    let Some(st) = stat_at(dir, name)? else {
        return Ok(());
    };
    if file_type_bits(&st) == 0o040000 {
        if depth > holdfast_engine::tree_walk::MAX_DEPTH {
            return Err(io::Error::other("directory tree too deep to remove"));
        }
        let sub = open_dir_at(dir, name)?;
        for child in list_dir(&sub)? {
            remove_at(&sub, &child, depth + 1)?;
        }
        rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR).map_err(errno)
    } else {
        rustix::fs::unlinkat(dir, name, AtFlags::empty()).map_err(errno)
    }
}

pub(crate) fn list_dir(dir: &OwnedFd) -> io::Result<Vec<Vec<u8>>> {
    let dup = rustix::io::dup(dir).map_err(errno)?;
    let mut d = rustix::fs::Dir::read_from(&dup).map_err(errno)?;
    let mut out = Vec::new();
    while let Some(e) = d.read() {
        let e = e.map_err(errno)?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            out.push(n.to_vec());
        }
    }
    Ok(out)
}

/// Open `rel` (components below `root`) as a directory without following
/// any symlink and without leaving `root`.
pub(crate) fn open_beneath(root: &OwnedFd, rel: &[Vec<u8>]) -> io::Result<OwnedFd> {
    let mut cur = rustix::io::dup(root).map_err(errno)?;
    for c in rel {
        cur = open_dir_at(&cur, c)?;
    }
    Ok(cur)
}

/// Open `name` in `dir` for reading: no symlink followed, no path walk, and
/// without updating its access time where allowed.
/// Open a file the walker saw as regular. `O_NONBLOCK`: if a FIFO was
/// swapped in since (a tenant's own files can change under the walk), the
/// open returns at once instead of waiting for a writer that never comes;
/// the caller's `fstat` then finds it is no longer a regular file. The flag
/// is cleared again for reading.
pub(crate) fn open_for_reading(dir: &OwnedFd, name: &[u8]) -> io::Result<std::fs::File> {
    let base = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
    let fd = match rustix::fs::openat(dir, name, base | OFlags::NOATIME, Mode::empty()) {
        Ok(fd) => fd,
        // O_NOATIME needs ownership or CAP_FOWNER.
        Err(rustix::io::Errno::PERM) => rustix::fs::openat(dir, name, base, Mode::empty())?,
        Err(e) => return Err(e.into()),
    };
    let flags = rustix::fs::fcntl_getfl(&fd)?;
    rustix::fs::fcntl_setfl(&fd, flags - OFlags::NONBLOCK)?;
    Ok(std::fs::File::from(fd))
}
