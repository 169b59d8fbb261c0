//! Landlock for the jobs that read or write a tenant's files: defence in
//! depth below the policy checks and the kernel-confined opens.
//!
//! A directory backup's thread may then read only beneath the source's
//! root (and the few system files user names come from) and write only the
//! tenant's repository (on object storage: the resolver's files, as the
//! requests run on the job's threads); a directory restore's thread may write only beneath
//! its target's root and read only the repository. Whatever a bug in the
//! walker or the restorer did, the kernel refuses any other path. The
//! restriction holds for the calling thread and every thread it starts
//! afterwards (the readers, the blob pipeline) and cannot be lifted: the
//! worker runs each job on a thread of its own, which ends with the job.
//!
//! On a kernel without Landlock (before 5.13, or not enabled) the job runs
//! with the other defences only, and the log says so once.

use std::path::PathBuf;
use std::sync::Once;

use landlock::{
    ABI, Access, AccessFs, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus,
    path_beneath_rules,
};

/// System files a job may read whatever it does: user and group names.
const SYSTEM_READ: &[&str] = &[
    "/etc/passwd",
    "/etc/group",
    "/etc/nsswitch.conf",
    "/etc/localtime",
    // SQLite seeds its randomness from it
    "/dev/urandom",
];

/// What a job's thread may reach.
#[derive(Debug, Clone, Default)]
pub struct Allowed {
    /// Paths it may read beneath; `None`: reading is not restricted (a
    /// restore reads only the repository, and what it writes is the
    /// danger).
    pub read: Option<Vec<PathBuf>>,
    pub write: Vec<PathBuf>,
}

/// What resolving a host name reads: for a job whose repository is on
/// object storage (its requests run on the job's threads).
const RESOLVER_READ: &[&str] = &[
    "/etc/hosts",
    "/etc/resolv.conf",
    "/etc/host.conf",
    "/etc/gai.conf",
    "/etc/ssl/certs",
    "/usr/share/ca-certificates",
];

impl Allowed {
    /// A backup: read `source`, read and write the repository (on local
    /// disk), or reach it (the resolver's files, on object storage).
    pub fn backup(source: PathBuf, repository: &crate::repos::RepoAt) -> Allowed {
        let mut allowed = Allowed::repository(repository);
        allowed.read.get_or_insert_with(Vec::new).insert(0, source);
        allowed
    }

    /// A verification: read the repository, and write only its lock (on
    /// local disk); on object storage, the resolver's files.
    pub fn repository(repository: &crate::repos::RepoAt) -> Allowed {
        match repository.local_path() {
            Some(p) => Allowed {
                read: Some(vec![p.clone()]),
                write: vec![p],
            },
            None => Allowed {
                read: Some(RESOLVER_READ.iter().map(PathBuf::from).collect()),
                write: Vec::new(),
            },
        }
    }
}

/// How far the restriction took hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enforced {
    Fully,
    Partially,
    /// No Landlock in this kernel.
    Not,
}

static NOT_AVAILABLE: Once = Once::new();

/// Restrict the calling thread (and the threads it starts from now on) to
/// `allowed`. Paths that do not exist are left out (nothing beneath them
/// can be reached).
pub fn restrict_thread(allowed: &Allowed) -> Result<Enforced, String> {
    let abi = ABI::V5;
    let read = AccessFs::from_read(abi);
    let all = AccessFs::from_all(abi);
    // with reads unrestricted, only the rights that change the file system
    // are handled (and so denied outside the rules)
    let handled = if allowed.read.is_some() {
        all
    } else {
        all & !read
    };
    let reads: Vec<PathBuf> = allowed
        .read
        .iter()
        .flatten()
        .cloned()
        .chain(SYSTEM_READ.iter().map(PathBuf::from))
        .filter(|p| p.exists())
        .collect();
    let writes = allowed.write.iter().filter(|p| p.exists());
    let mut ruleset = Ruleset::default()
        .handle_access(handled)
        .map_err(|e| e.to_string())?
        .create()
        .map_err(|e| e.to_string())?;
    if allowed.read.is_some() {
        ruleset = ruleset
            .add_rules(path_beneath_rules(reads, read))
            .map_err(|e| e.to_string())?;
    }
    let status = ruleset
        .add_rules(path_beneath_rules(writes, handled))
        .map_err(|e| e.to_string())?
        .restrict_self()
        .map_err(|e| e.to_string())?;
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced => Enforced::Fully,
        RulesetStatus::PartiallyEnforced => Enforced::Partially,
        RulesetStatus::NotEnforced => {
            NOT_AVAILABLE.call_once(|| {
                crate::worker::log(
                    "this kernel has no Landlock: tenant jobs run with the policy checks and \
                     kernel-confined opens only",
                )
            });
            Enforced::Not
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restricted_thread_reaches_only_what_it_was_allowed() {
        let d = tempfile::tempdir().unwrap();
        let (inside, outside, out) = (
            d.path().join("in"),
            d.path().join("out"),
            d.path().join("w"),
        );
        for p in [&inside, &outside, &out] {
            std::fs::create_dir(p).unwrap();
        }
        std::fs::write(inside.join("f"), "readable").unwrap();
        std::fs::write(outside.join("secret"), "not for this job").unwrap();
        let allowed = Allowed {
            read: Some(vec![inside.clone()]),
            write: vec![out.clone()],
        };
        let (i, o, w) = (inside.clone(), outside.clone(), out.clone());
        let r = std::thread::spawn(move || {
            let enforced = restrict_thread(&allowed).unwrap();
            let read_in = std::fs::read_to_string(i.join("f")).is_ok();
            let read_out = std::fs::read_to_string(o.join("secret")).is_ok();
            let write_w = std::fs::write(w.join("x"), "y").is_ok();
            let write_in = std::fs::write(i.join("x"), "y").is_ok();
            // threads started afterwards inherit the restriction
            let o2 = o.clone();
            let child =
                std::thread::spawn(move || std::fs::read_to_string(o2.join("secret")).is_ok())
                    .join()
                    .unwrap();
            (enforced, read_in, read_out, write_w, write_in, child)
        })
        .join()
        .unwrap();
        // the test's own thread is not restricted
        assert!(std::fs::read_to_string(outside.join("secret")).is_ok());
        let (enforced, read_in, read_out, write_w, write_in, child) = r;
        if enforced == Enforced::Not {
            eprintln!("no Landlock in this kernel: nothing to check");
            return;
        }
        assert!(read_in && write_w, "allowed access refused");
        assert!(!read_out, "read outside the allowed paths");
        assert!(!write_in, "wrote into a read-only path");
        assert!(!child, "a later thread escaped the restriction");

        // writes only: reading stays open, writing outside does not
        let (o, i) = (outside.clone(), inside.clone());
        let w = out.clone();
        let (read_out, write_out, write_w) = std::thread::spawn(move || {
            restrict_thread(&Allowed {
                read: None,
                write: vec![w.clone()],
            })
            .unwrap();
            (
                std::fs::read_to_string(o.join("secret")).is_ok(),
                std::fs::write(i.join("new"), "y").is_ok(),
                std::fs::write(w.join("z"), "y").is_ok(),
            )
        })
        .join()
        .unwrap();
        assert!(read_out && write_w);
        assert!(!write_out, "wrote outside the allowed paths");
    }
}
