//! Repository locks, compatible with restic's lock files.
//!
//! Shared locks (backup, restore, check) may coexist; an exclusive lock
//! (prune, key changes) excludes every other lock. To take a lock: list the
//! locks, fail (or wait) on a conflict, write ours, list again and back off
//! if a conflicting lock appeared meanwhile — of two racing processes at
//! least one sees the other. Stale locks (older than 30 minutes, or made on
//! this host by a process that no longer exists) are removed. A held lock
//! is refreshed every 5 minutes by writing a new file before removing the
//! old one, so it never looks stale while its holder lives.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use holdfast_format::Id;
use holdfast_format::gotime::GoTime;
use holdfast_format::lock::{Lock, REFRESH_EVERY_SECS};
use holdfast_storage::{FileType, pid_alive};

use crate::error::{EngineError, Result};
use crate::repository::{Repository, name};
use crate::system;

/// A held lock; released when dropped.
pub struct RepoLock {
    repo: Arc<Repository>,
    current: Arc<Mutex<Id>>,
    /// Dropping this wakes and stops the refresher at once.
    stop: Option<std::sync::mpsc::Sender<()>>,
    refresher: Option<JoinHandle<()>>,
}

/// A lock file found in the repository.
#[derive(Debug, Clone)]
pub struct FoundLock {
    pub id: Id,
    pub lock: Option<Lock>,
}

impl FoundLock {
    /// Stale: expired, or made on this host by a dead process. A lock that
    /// cannot be read is treated as not stale (we cannot tell who holds it)
    /// unless its file is older than the staleness threshold.
    pub fn is_stale(&self, now: GoTime, host: &str) -> bool {
        match &self.lock {
            None => false,
            Some(l) => {
                l.is_expired(now) || (l.hostname == host && l.pid > 0 && !pid_alive(l.pid as i32))
            }
        }
    }

    pub fn describe(&self, now: GoTime) -> String {
        match &self.lock {
            None => format!("lock {} (unreadable)", self.id.short()),
            Some(l) => {
                let age = (now.secs - l.time.secs).max(0);
                format!(
                    "{} lock {} held by PID {} on host {:?} (user {:?}), created {} ago",
                    if l.exclusive {
                        "an exclusive"
                    } else {
                        "a shared"
                    },
                    self.id.short(),
                    l.pid,
                    l.hostname,
                    l.username,
                    human_duration(age)
                )
            }
        }
    }
}

fn human_duration(secs: i64) -> String {
    if secs < 120 {
        format!("{secs}s")
    } else if secs < 7200 {
        format!("{}m{}s", secs / 60, secs % 60)
    } else {
        format!("{}h{}m", secs / 3600, secs % 3600 / 60)
    }
}

/// Read every lock file. Unreadable ones are returned with `lock: None`.
pub fn list_locks(repo: &Repository) -> Result<Vec<FoundLock>> {
    let ids = repo.list_ids(FileType::Lock)?;
    let mut out = Vec::new();
    for id in ids {
        let lock = match repo.load_json(FileType::Lock, &id) {
            Ok(j) => Lock::from_json(&j).ok(),
            Err(EngineError::Storage(e)) if e.is_not_found() => continue,
            Err(_) => None,
        };
        out.push(FoundLock { id, lock });
    }
    Ok(out)
}

/// Remove stale locks (or all of them). Returns the removed locks.
pub fn remove_locks(repo: &Repository, all: bool) -> Result<Vec<FoundLock>> {
    let now = GoTime::now();
    let host = system::hostname();
    let mut removed = Vec::new();
    for l in list_locks(repo)? {
        if all || l.is_stale(now, &host) {
            match repo.backend().delete(&name(FileType::Lock, &l.id)) {
                Ok(()) => removed.push(l),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(removed)
}

fn new_lock(exclusive: bool) -> Lock {
    Lock {
        time: GoTime::now(),
        exclusive,
        hostname: system::hostname(),
        username: system::username(),
        pid: system::pid() as i64,
        uid: system::uid(),
        gid: system::gid(),
    }
}

/// Conflicting, non-stale locks other than `ours`. Stale ones are removed
/// on the way and reported through `notice`.
fn conflicts(
    repo: &Repository,
    exclusive: bool,
    ours: Option<Id>,
    notice: &mut dyn FnMut(String),
) -> Result<Vec<FoundLock>> {
    let now = GoTime::now();
    let host = system::hostname();
    let mut out = Vec::new();
    for l in list_locks(repo)? {
        if Some(l.id) == ours {
            continue;
        }
        if l.is_stale(now, &host) {
            if repo.backend().delete(&name(FileType::Lock, &l.id)).is_ok() {
                notice(format!("removed stale {}", l.describe(now)));
            }
            continue;
        }
        let other_exclusive = l.lock.as_ref().map(|l| l.exclusive).unwrap_or(true);
        if exclusive || other_exclusive {
            out.push(l);
        }
    }
    Ok(out)
}

/// Take a lock, waiting up to `retry` for conflicting locks to go away.
pub fn lock(
    repo: &Arc<Repository>,
    exclusive: bool,
    retry: Duration,
    notice: &mut dyn FnMut(String),
) -> Result<RepoLock> {
    let deadline = Instant::now() + retry;
    let mut wait = Duration::from_millis(200);
    loop {
        crate::cancel::check()?;
        let pre = conflicts(repo, exclusive, None, notice)?;
        if pre.is_empty() {
            let id = repo.save_json(FileType::Lock, &new_lock(exclusive).to_json())?;
            let post = conflicts(repo, exclusive, Some(id), notice)?;
            if post.is_empty() {
                return Ok(RepoLock::start(repo.clone(), id, exclusive));
            }
            let _ = repo.backend().delete(&name(FileType::Lock, &id));
            if Instant::now() >= deadline {
                return Err(locked_error(&post));
            }
        } else if Instant::now() >= deadline {
            return Err(locked_error(&pre));
        }
        std::thread::sleep(wait.min(deadline.saturating_duration_since(Instant::now())));
        wait = (wait * 2).min(Duration::from_secs(5));
    }
}

fn locked_error(holders: &[FoundLock]) -> EngineError {
    let now = GoTime::now();
    let list: Vec<String> = holders.iter().map(|h| h.describe(now)).collect();
    EngineError::Locked(format!(
        "by {}; wait with --retry-lock DURATION, or remove a lock left by a dead process with `holdfast unlock`",
        list.join("; ")
    ))
}

impl RepoLock {
    fn start(repo: Arc<Repository>, id: Id, exclusive: bool) -> RepoLock {
        let current = Arc::new(Mutex::new(id));
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let refresher = {
            let repo = repo.clone();
            let current = current.clone();
            std::thread::Builder::new()
                .name("hf-lock-refresh".into())
                .spawn(move || {
                    let every = Duration::from_secs(REFRESH_EVERY_SECS);
                    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                        stopped.recv_timeout(every)
                    {
                        // New lock first, then remove the old one: the lock
                        // is never absent.
                        if let Ok(new_id) =
                            repo.save_json(FileType::Lock, &new_lock(exclusive).to_json())
                        {
                            let old = std::mem::replace(&mut *current.lock().unwrap(), new_id);
                            let _ = repo.backend().delete(&name(FileType::Lock, &old));
                        }
                    }
                })
                .expect("spawn lock refresher")
        };
        RepoLock {
            repo,
            current,
            stop: Some(stop),
            refresher: Some(refresher),
        }
    }

    pub fn id(&self) -> Id {
        *self.current.lock().unwrap()
    }
}

impl Drop for RepoLock {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.refresher.take() {
            let _ = t.join();
        }
        let id = *self.current.lock().unwrap();
        let _ = self.repo.backend().delete(&name(FileType::Lock, &id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repository::InitOptions;
    use holdfast_storage::{Backend, MemoryBackend};

    fn repo() -> Arc<Repository> {
        let be: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
        Arc::new(Repository::init(be, b"pw", &InitOptions { kdf_log_n: 10 }).unwrap())
    }

    #[test]
    fn shared_locks_coexist_exclusive_excludes() {
        let r = repo();
        let mut quiet = |_: String| {};
        let a = lock(&r, false, Duration::ZERO, &mut quiet).unwrap();
        let b = lock(&r, false, Duration::ZERO, &mut quiet).unwrap();
        let e = lock(&r, true, Duration::ZERO, &mut quiet);
        let msg = e.err().expect("exclusive lock must fail").to_string();
        assert!(msg.contains("PID"), "{msg}");
        drop(a);
        drop(b);
        let x = lock(&r, true, Duration::ZERO, &mut quiet).unwrap();
        assert!(lock(&r, false, Duration::ZERO, &mut quiet).is_err());
        drop(x);
        assert!(list_locks(&r).unwrap().is_empty());
    }

    #[test]
    fn stale_locks_are_removed() {
        let r = repo();
        let mut dead = new_lock(true);
        dead.pid = i32::MAX as i64 - 7; // no such process
        r.save_json(FileType::Lock, &dead.to_json()).unwrap();
        let mut old = new_lock(true);
        old.hostname = "elsewhere".into();
        old.time = GoTime::utc(GoTime::now().secs - 3600, 0);
        r.save_json(FileType::Lock, &old.to_json()).unwrap();
        let mut notices = Vec::new();
        let l = lock(&r, true, Duration::ZERO, &mut |m| notices.push(m)).unwrap();
        assert_eq!(notices.len(), 2, "{notices:?}");
        drop(l);
        // a live lock from another host is not stale
        let mut other = new_lock(false);
        other.hostname = "elsewhere".into();
        r.save_json(FileType::Lock, &other.to_json()).unwrap();
        assert!(lock(&r, true, Duration::ZERO, &mut |_| {}).is_err());
        assert!(remove_locks(&r, false).unwrap().is_empty());
        assert_eq!(remove_locks(&r, true).unwrap().len(), 1);
    }
}
