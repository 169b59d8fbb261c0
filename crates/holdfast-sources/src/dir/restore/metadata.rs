//! Metadata of restored entries: owner, mode, times, extended attributes.

use std::os::fd::AsFd;

use holdfast_format::tree::Node;
use rustix::fs::{Mode, Timestamps};

use crate::progress::Progress;

use crate::dir::fd::*;

/// The metadata setters, shareable with worker threads.
pub(super) struct MetaSetter<'a> {
    pub(super) progress: &'a Progress,
    pub(super) am_root: bool,
    pub(super) euid: u32,
    pub(super) egid: u32,
    pub(super) umask: u32,
}

/// The process's umask, read without changing it.
pub(super) fn current_umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o777)
}

impl MetaSetter<'_> {
    pub(super) fn error(&self, path: &[u8], during: &'static str, e: impl std::fmt::Display) {
        self.progress.item_error(lossy(path), during, e);
    }

    /// Metadata of a file this restore just created with mode `perm & 0o777`
    /// (so far owned by us): skip the calls that would change nothing.
    pub(super) fn set_meta_created(
        &self,
        fd: &impl AsFd,
        node: &Node,
        spath: &[u8],
        parent_setgid: bool,
    ) {
        let perm = node.unix_perm();
        let owner_ok = node.uid == self.euid && node.gid == self.egid && !parent_setgid;
        let mode_ok = perm & 0o7000 == 0 && perm & self.umask == 0;
        if owner_ok && mode_ok {
            self.set_xattrs_and_times(fd, node, spath);
        } else {
            self.set_meta_fd(fd, node, spath);
        }
    }

    pub(super) fn set_meta_fd(&self, fd: &impl AsFd, node: &Node, spath: &[u8]) {
        if let Err(e) = rustix::fs::fchown(
            fd,
            Some(rustix::fs::Uid::from_raw(node.uid)),
            Some(rustix::fs::Gid::from_raw(node.gid)),
        ) && self.am_root
        {
            self.error(spath, "chown", errno(e));
        }
        if let Err(e) = rustix::fs::fchmod(fd, Mode::from_raw_mode(node.unix_perm())) {
            self.error(spath, "chmod", errno(e));
        }
        self.set_xattrs_and_times(fd, node, spath);
    }

    /// Set each extended attribute with `set`; failures an unprivileged
    /// user expects (trusted.*, security.*) are not reported.
    pub(super) fn set_xattrs(
        &self,
        node: &Node,
        spath: &[u8],
        set: impl Fn(&str, &[u8]) -> rustix::io::Result<()>,
    ) {
        for x in &node.extended_attributes {
            if let Err(e) = set(x.name.as_str(), &x.value)
                && (self.am_root || x.name.starts_with("user."))
            {
                self.error(
                    spath,
                    "set extended attribute",
                    format!("{}: {}", x.name, errno(e)),
                );
            }
        }
    }

    pub(super) fn set_xattrs_and_times(&self, fd: &impl AsFd, node: &Node, spath: &[u8]) {
        self.set_xattrs(node, spath, |name, value| {
            rustix::fs::fsetxattr(fd, name, value, rustix::fs::XattrFlags::empty())
        });
        let times = Timestamps {
            last_access: ts(&node.atime),
            last_modification: ts(&node.mtime),
        };
        if let Err(e) = rustix::fs::futimens(fd, &times) {
            self.error(spath, "set times", errno(e));
        }
    }
}
