//! Reading a file system entry's metadata into a restic tree node.

use std::io;
use std::os::fd::AsFd;
use std::path::Path;

use holdfast_engine::system;
use holdfast_format::gotime::GoTime;
use holdfast_format::tree::{ExtendedAttribute, Node, NodeType, gomode};
use rustix::fs::Stat;
use rustix::io::Errno;

/// The node type of an `st_mode`.
pub fn node_type(mode: u32) -> NodeType {
    match mode & 0o170000 {
        0o100000 => NodeType::File,
        0o040000 => NodeType::Dir,
        0o120000 => NodeType::Symlink,
        0o060000 => NodeType::Dev,
        0o020000 => NodeType::Chardev,
        0o010000 => NodeType::Fifo,
        0o140000 => NodeType::Socket,
        _ => NodeType::Irregular,
    }
}

fn time(secs: i64, nanos: i64) -> GoTime {
    GoTime::utc(secs, nanos.clamp(0, 999_999_999) as u32)
}

/// A node for `st` named `name`. Content, link target and extended
/// attributes are filled in by the caller.
pub fn node_from_stat(name: &[u8], st: &Stat) -> Node {
    let mode = st.st_mode;
    let t = node_type(mode);
    let mut n = Node::new(name.to_vec(), t);
    n.mode = gomode::from_unix(mode);
    n.mtime = time(st.st_mtime, st.st_mtime_nsec as i64);
    n.atime = time(st.st_atime, st.st_atime_nsec as i64);
    n.ctime = time(st.st_ctime, st.st_ctime_nsec as i64);
    n.uid = st.st_uid;
    n.gid = st.st_gid;
    n.user = system::user_name(st.st_uid).unwrap_or_default();
    n.group = system::group_name(st.st_gid).unwrap_or_default();
    n.inode = st.st_ino;
    n.device_id = st.st_dev;
    if t != NodeType::Dir {
        n.links = st.st_nlink;
    }
    match t {
        NodeType::File => n.size = st.st_size as u64,
        NodeType::Dev | NodeType::Chardev => n.device = st.st_rdev,
        _ => {}
    }
    n
}

/// Extended attributes of `path` (not following symlinks), sorted by name.
/// A file system without xattr support yields none.
pub fn read_xattrs(path: &Path) -> io::Result<Vec<ExtendedAttribute>> {
    collect_xattrs(
        |buf| rustix::fs::llistxattr(path, buf),
        || rustix::fs::llistxattr_query(path),
        |name, buf| rustix::fs::lgetxattr(path, name, buf),
        |name| rustix::fs::lgetxattr_query(path, name),
    )
}

/// Extended attributes of an open file, sorted by name.
pub fn read_xattrs_fd(fd: &impl AsFd) -> io::Result<Vec<ExtendedAttribute>> {
    collect_xattrs(
        |buf| rustix::fs::flistxattr(fd, buf),
        || rustix::fs::flistxattr_query(fd),
        |name, buf| rustix::fs::fgetxattr(fd, name, buf),
        |name| rustix::fs::fgetxattr_query(fd, name),
    )
}

fn collect_xattrs(
    list: impl Fn(&mut [u8]) -> rustix::io::Result<usize>,
    list_len: impl Fn() -> rustix::io::Result<usize>,
    get: impl Fn(&[u8], &mut [u8]) -> rustix::io::Result<usize>,
    get_len: impl Fn(&[u8]) -> rustix::io::Result<usize>,
) -> io::Result<Vec<ExtendedAttribute>> {
    let mut names = vec![0u8; 1024];
    let len = loop {
        match list(&mut names[..]) {
            Ok(n) => break n,
            Err(Errno::RANGE) => {
                let need = list_len()?;
                names.resize(need.max(names.len() * 2), 0);
            }
            Err(Errno::NOTSUP) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        }
    };
    let mut out = Vec::new();
    for raw in names[..len].split(|&c| c == 0).filter(|n| !n.is_empty()) {
        let name = String::from_utf8_lossy(raw).into_owned();
        let mut value = vec![0u8; 256];
        let vlen = loop {
            match get(raw, &mut value[..]) {
                Ok(n) => break Some(n),
                Err(Errno::RANGE) => {
                    let need = get_len(raw)?;
                    value.resize(need.max(value.len() * 2), 0);
                }
                // removed between list and get
                Err(Errno::NODATA) => break None,
                Err(e) => return Err(e.into()),
            }
        };
        if let Some(vlen) = vlen {
            value.truncate(vlen);
            out.push(ExtendedAttribute { name, value });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}
