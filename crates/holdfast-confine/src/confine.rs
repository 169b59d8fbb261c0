//! Paths confined beneath a root, resolved by the kernel.
//!
//! A tenant's directory, SQLite file or restore target lies beneath one of
//! the roots its policy allows. A lexical check of the text (`..`, prefix)
//! is not enough: a symbolic link inside the root — made before the job, or
//! swapped in while it runs — would lead the path walk outside. Here every
//! open of such a path is one `openat2(root, rel, RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)`: the kernel refuses any
//! component that is a symlink or that leaves `root`, atomically with the
//! open. On a kernel without `openat2` (before 5.6) the same walk is done
//! one component at a time with `O_NOFOLLOW`, which is as strict.
//!
//! Invariant: a descriptor returned by [`open_beneath`] names an object
//! beneath `root` reached through real directories only.

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};

/// A path confined beneath `root`: `root` is trusted (an admin set it),
/// `rel` is what the tenant chose (relative, no `..`, no `.`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confined {
    pub root: PathBuf,
    pub rel: PathBuf,
}

impl Confined {
    /// `path` beneath `root`, both absolute and lexically clean; `None` if
    /// `path` is not at or below `root`.
    pub fn new(root: &Path, path: &Path) -> Option<Confined> {
        let rel = path.strip_prefix(root).ok()?;
        if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            return None;
        }
        Some(Confined {
            root: root.to_path_buf(),
            rel: rel.to_path_buf(),
        })
    }

    /// The whole path.
    pub fn path(&self) -> PathBuf {
        self.root.join(&self.rel)
    }

    /// Open the path (see [`open_beneath`]).
    pub fn open(&self, flags: OFlags) -> io::Result<OwnedFd> {
        open_beneath(&self.root, &self.rel, flags)
    }

    /// Check that the path exists and is reached without a symlink or an
    /// escape; the error says which component is wrong.
    pub fn check_exists(&self) -> io::Result<()> {
        self.open(OFlags::PATH).map(drop)
    }

    /// Create the missing directories of the path beneath the root (mode
    /// 0700 for new ones), never following a symlink, and open the last.
    pub fn create_dirs(&self) -> io::Result<OwnedFd> {
        let mut fd = open_root(&self.root)?;
        for c in self.rel.components() {
            let Component::Normal(name) = c else {
                return Err(not_beneath(&self.path()));
            };
            match rustix::fs::mkdirat(&fd, name, Mode::RWXU) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(e.into()),
            }
            fd = rustix::fs::openat(
                &fd,
                name,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| explain(e, &self.path()))?;
        }
        Ok(fd)
    }
}

fn open_root(root: &Path) -> io::Result<OwnedFd> {
    rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| {
        io::Error::new(
            io::Error::from(e).kind(),
            format!("{}: the allowed root cannot be opened: {e}", root.display()),
        )
    })
}

fn not_beneath(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!(
            "{}: refused: the path leaves its allowed root",
            path.display()
        ),
    )
}

fn explain(e: rustix::io::Errno, path: &Path) -> io::Error {
    match e {
        // RESOLVE_NO_SYMLINKS / O_NOFOLLOW on a symlink (an O_DIRECTORY
        // open of one says ENOTDIR)
        rustix::io::Errno::LOOP => through_symlink(path),
        rustix::io::Errno::NOTDIR if is_symlink_somewhere(path) => through_symlink(path),
        // RESOLVE_BENEATH: the walk would leave the root
        rustix::io::Errno::XDEV => not_beneath(path),
        other => {
            let io = io::Error::from(other);
            io::Error::new(io.kind(), format!("{}: {io}", path.display()))
        }
    }
}

fn through_symlink(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!(
            "{}: refused: the path passes through a symbolic link",
            path.display()
        ),
    )
}

/// Whether some component of `path` is a symlink (for the message only).
fn is_symlink_somewhere(path: &Path) -> bool {
    let mut p = PathBuf::new();
    for c in path.components() {
        p.push(c);
        if std::fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink()) {
            return true;
        }
    }
    false
}

/// Open `root/rel` with `flags`, refusing symlinks in any component of
/// `rel` and any escape from `root` (see the module comment).
pub fn open_beneath(root: &Path, rel: &Path, flags: OFlags) -> io::Result<OwnedFd> {
    let whole = root.join(rel);
    let rootfd = open_root(root)?;
    let rel_text: &Path = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    let fd = match rustix::fs::openat2(
        &rootfd,
        rel_text,
        flags | OFlags::CLOEXEC,
        Mode::empty(),
        resolve,
    ) {
        Ok(fd) => Ok(fd),
        Err(rustix::io::Errno::NOSYS) | Err(rustix::io::Errno::PERM) if !openat2_available() => {
            walk_nofollow(rootfd, rel, flags).map_err(|e| explain(e, &whole))
        }
        Err(e) => Err(explain(e, &whole)),
    }?;
    // O_PATH | O_NOFOLLOW opens a trailing symlink itself: not an object
    // beneath the root either
    let st = rustix::fs::fstat(&fd)?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Symlink {
        return Err(explain(rustix::io::Errno::LOOP, &whole));
    }
    Ok(fd)
}

/// Whether the kernel has `openat2` (Linux 5.6); asked once.
fn openat2_available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        let ok = !matches!(
            rustix::fs::openat2(
                rustix::fs::CWD,
                "/",
                OFlags::PATH | OFlags::CLOEXEC,
                Mode::empty(),
                ResolveFlags::empty(),
            ),
            Err(rustix::io::Errno::NOSYS)
        );
        if !ok {
            eprintln!(
                "holdfast: this kernel has no openat2 (Linux < 5.6): confined paths are walked \
                 one component at a time with O_NOFOLLOW"
            );
        }
        ok
    })
}

/// The fallback: one `openat(…, O_NOFOLLOW)` per component.
fn walk_nofollow(root: OwnedFd, rel: &Path, flags: OFlags) -> rustix::io::Result<OwnedFd> {
    let parts: Vec<_> = rel.components().collect();
    let mut fd = root;
    for (i, c) in parts.iter().enumerate() {
        let Component::Normal(name) = c else {
            return Err(rustix::io::Errno::XDEV);
        };
        let last = i + 1 == parts.len();
        let f = if last {
            flags | OFlags::NOFOLLOW | OFlags::CLOEXEC
        } else {
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
        };
        fd = rustix::fs::openat(&fd, *name, f, Mode::empty())?;
    }
    if parts.is_empty() {
        return rustix::fs::openat(&fd, ".", flags | OFlags::CLOEXEC, Mode::empty());
    }
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexical_confinement() {
        let root = Path::new("/srv/t");
        assert!(Confined::new(root, Path::new("/srv/t/www")).is_some());
        assert_eq!(
            Confined::new(root, Path::new("/srv/t")).unwrap().rel,
            PathBuf::new()
        );
        assert!(Confined::new(root, Path::new("/srv/tx")).is_none());
        assert!(Confined::new(root, Path::new("/srv/t/../u")).is_none());
        assert!(Confined::new(root, Path::new("/etc")).is_none());
    }

    #[test]
    fn symlinks_and_escapes_are_refused_by_the_kernel() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        std::fs::create_dir_all(root.join("www/inner")).unwrap();
        std::fs::write(root.join("www/inner/f"), b"x").unwrap();
        std::os::unix::fs::symlink("/etc", root.join("link")).unwrap();
        std::os::unix::fs::symlink("www", root.join("rel-link")).unwrap();
        let c = |p: &str| Confined::new(&root, &root.join(p)).unwrap();
        c("www/inner/f").check_exists().unwrap();
        c("").check_exists().unwrap();
        for bad in ["link", "link/passwd", "rel-link/inner"] {
            let e = c(bad).check_exists().unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{bad}: {e}");
            assert!(e.to_string().contains("symbolic link"), "{bad}: {e}");
        }
        // `..` cannot even be expressed; the raw call refuses it too
        let e = open_beneath(&root, Path::new("../root/www"), OFlags::PATH).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{e}");
        // the fallback walk refuses the same
        let fd = open_root(&root).unwrap();
        assert!(walk_nofollow(fd, Path::new("link/passwd"), OFlags::PATH).is_err());
        let fd = open_root(&root).unwrap();
        assert!(walk_nofollow(fd, Path::new("www/inner/f"), OFlags::PATH).is_ok());
    }

    #[test]
    fn create_dirs_stays_beneath() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        let outside = d.path().join("outside");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        Confined::new(&root, &root.join("a/b/c"))
            .unwrap()
            .create_dirs()
            .unwrap();
        assert!(root.join("a/b/c").is_dir());
        std::os::unix::fs::symlink(&outside, root.join("evil")).unwrap();
        let e = Confined::new(&root, &root.join("evil/x"))
            .unwrap()
            .create_dirs()
            .unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert!(!outside.join("x").exists());
    }
}
