//! Cooperative cancellation: a signal handler (installed by the binary)
//! sets one flag; long-running loops check it between units of work and
//! stop with [`EngineError::Interrupted`]. Nothing half-written is ever
//! referenced: an interrupted backup writes no snapshot, and held locks are
//! released as the stack unwinds normally.
//!
//! A service runs several jobs in one process and must stop one of them
//! (a timeout) without stopping the others: [`JobCancel`] is that job's own
//! flag, installed for the job's thread with [`run_as_job`]. `check` on
//! that thread sees it too, and the tools a job starts are put in process
//! groups of their own that cancelling kills, so a job blocked reading a
//! dump tool's output is released as well.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::{EngineError, Result};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Ask every running operation to stop (async-signal-safe).
pub fn request() {
    REQUESTED.store(true, Ordering::SeqCst);
}

pub fn requested() -> bool {
    REQUESTED.load(Ordering::Relaxed)
}

/// One job's cancellation.
#[derive(Debug, Default)]
pub struct JobCancel {
    flag: AtomicBool,
    reason: Mutex<Option<String>>,
    /// Process groups of the tools the job started.
    groups: Mutex<Vec<i32>>,
}

impl JobCancel {
    pub fn new() -> Arc<JobCancel> {
        Arc::default()
    }

    /// Stop the job: its loops stop at their next check, and its tools are
    /// killed (their whole process groups, so a shell's children too).
    pub fn cancel(&self, reason: &str) {
        {
            let mut r = self.reason.lock().expect("not poisoned");
            if r.is_none() {
                *r = Some(reason.to_string());
            }
        }
        self.flag.store(true, Ordering::SeqCst);
        for g in self.groups.lock().expect("not poisoned").iter() {
            // SAFETY: kill(2) on a process group this job created.
            unsafe {
                libc::kill(-*g, libc::SIGKILL);
            }
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }

    /// Why it was cancelled.
    pub fn reason(&self) -> Option<String> {
        self.reason.lock().expect("not poisoned").clone()
    }

    /// A tool started in its own process group `pgid`; if the job is
    /// already cancelled it is killed at once.
    pub fn add_group(&self, pgid: i32) {
        self.groups.lock().expect("not poisoned").push(pgid);
        if self.is_cancelled() {
            // SAFETY: as in `cancel`.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }

    /// The tool ended and was reaped: its group id may be reused.
    pub fn remove_group(&self, pgid: i32) {
        self.groups
            .lock()
            .expect("not poisoned")
            .retain(|g| *g != pgid);
    }
}

thread_local! {
    static JOB: RefCell<Option<Arc<JobCancel>>> = const { RefCell::new(None) };
}

/// Run `f` on this thread as `job`.
pub fn run_as_job<T>(job: Arc<JobCancel>, f: impl FnOnce() -> T) -> T {
    let before = JOB.with(|j| j.borrow_mut().replace(job));
    let out = f();
    JOB.with(|j| *j.borrow_mut() = before);
    out
}

/// The job of this thread, carried into the helper threads it starts (a
/// directory backup's readers, a restore's writers, a prune's loaders), so
/// that cancelling the job stops them too: `check` on a new thread sees no
/// job unless it enters this one.
#[derive(Clone, Debug, Default)]
pub struct JobScope(Option<Arc<JobCancel>>);

impl JobScope {
    /// This thread's job (none outside a job).
    pub fn current() -> JobScope {
        JobScope(current_job())
    }

    /// Run `f` on this thread within the same job.
    pub fn enter<T>(&self, f: impl FnOnce() -> T) -> T {
        match &self.0 {
            Some(job) => run_as_job(job.clone(), f),
            None => f(),
        }
    }
}

/// The job this thread runs, if any.
pub fn current_job() -> Option<Arc<JobCancel>> {
    JOB.with(|j| j.borrow().clone())
}

/// `Err(Interrupted)` once cancellation was requested, for the process or
/// for this thread's job.
pub fn check() -> Result<()> {
    if requested() || JOB.with(|j| j.borrow().as_ref().is_some_and(|j| j.is_cancelled())) {
        Err(EngineError::Interrupted)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_is_cancelled_on_its_own_thread_only() {
        let job = JobCancel::new();
        let other = std::thread::spawn(|| check().is_ok());
        let j = job.clone();
        let seen = run_as_job(job.clone(), move || {
            assert!(check().is_ok());
            j.cancel("no progress for 10 minutes");
            check().is_err()
        });
        assert!(seen);
        assert!(check().is_ok(), "outside the job nothing is cancelled");
        assert!(other.join().unwrap());
        assert_eq!(job.reason().as_deref(), Some("no progress for 10 minutes"));
    }

    #[test]
    fn helper_threads_that_enter_the_job_see_it_cancelled() {
        let job = JobCancel::new();
        let (entered, plain) = run_as_job(job.clone(), || {
            let scope = JobScope::current();
            job.cancel("hard limit");
            std::thread::scope(|s| {
                let entered = s.spawn(|| scope.enter(check).is_err());
                let plain = s.spawn(|| check().is_err());
                (entered.join().unwrap(), plain.join().unwrap())
            })
        });
        assert!(entered, "a helper inside the job stops");
        assert!(!plain, "a thread outside it does not");
        assert!(check().is_ok());
    }
}
