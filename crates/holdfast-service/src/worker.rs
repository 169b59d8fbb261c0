//! The workers: each claims the next job ([`Job`]: a backup, a restore, a
//! repository verification or a deletion, from the catalog's queues), runs it on a blocking thread
//! while renewing its lease, and records the outcome. At start, and
//! then every half lease, runs whose worker is gone (a crash, `kill -9`, a
//! lease that expired on another node) are failed with cause
//! `interrupted` and queued again if attempts remain, so no row stays
//! `running` once its worker is gone.
//!
//! Every run is supervised the same way ([`supervise`]): its lease renewed,
//! and the run stopped — its loops and its tools — when it reads nothing
//! for too long or passes its hard limit, or when the server shuts down
//! (the run is then recorded as `interrupted` and queued again).

use crate::repos::RepoAt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use holdfast_catalog::backups::{Backup, FailureKind, JobTable, backoff};
use holdfast_catalog::restores::Restore;
use holdfast_catalog::verifications::Verification;
use holdfast_catalog::{CatalogError, Dialect, queue};
use holdfast_engine::cancel::{self, JobCancel};
use jiff::SignedDuration;

use crate::runner::{RunFailure, RunInput, run_backup};
use crate::{AppState, ServeError};

/// Recover orphaned runs, then start the workers and the reaper.
pub async fn start(state: AppState) -> Result<Workers, ServeError> {
    // SQLite is one node: every `running` row belonged to a process that is
    // gone. On PostgreSQL other nodes may be running jobs: only expired
    // leases are orphans.
    let all_running = state.catalog.dialect() == Dialect::Sqlite;
    recover(&state, all_running).await?;
    // scratch directories of drills this node ran when it was killed (the
    // area is this node's own; no drill runs yet)
    match holdfast_sources::drill::sweep(&state.config.drill_scratch()) {
        Ok(0) => {}
        Ok(n) => log(&format!(
            "removed {n} scratch directories of interrupted drills"
        )),
        Err(e) => log(&format!("cannot clean the drill scratch area: {e}")),
    }
    // and, on a one-node catalog, every scratch database on the admin's
    // drill servers (the servers are the admin's: nothing else is dropped
    // there, and no drill runs yet). Where nodes share the catalog another
    // node's drill may be running there: the recovery above dropped the
    // databases of the drills that were interrupted, by name.
    let sweep_servers = if all_running {
        &["postgres", "mysql"][..]
    } else {
        &[]
    };
    for &kind in sweep_servers {
        let Some(server) = state.config.drills.server(kind) else {
            continue;
        };
        let swept = tokio::task::spawn_blocking(move || {
            let (addr, password) = crate::runner::drill_server(&server)?;
            holdfast_sources::drill::sweep_databases(addr, password).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r);
        match swept {
            Ok(0) => {}
            Ok(n) => log(&format!(
                "dropped {n} scratch databases of interrupted drills on the {kind} drill server"
            )),
            Err(e) => log(&format!("cannot clean the {kind} drill server: {e}")),
        }
    }
    let mut handles = Vec::new();
    for i in 0..state.config.workers {
        let s = state.clone();
        let name = format!("{}/{}", state.node, i);
        handles.push(tokio::spawn(async move { worker_loop(s, name).await }));
    }
    let s = state.clone();
    tokio::spawn(async move {
        let every = Duration::from_secs(s.config.jobs.lease_seconds / 2);
        loop {
            tokio::time::sleep(every).await;
            if let Err(e) = recover(&s, false).await {
                log(&format!("reaper: {e}"));
            }
        }
    });
    Ok(Workers { handles })
}

/// This node's workers, to stop at shutdown.
pub struct Workers {
    handles: Vec<tokio::task::JoinHandle<()>>,
}

impl Workers {
    /// Take no more jobs, stop the running ones (their tools killed) and
    /// wait until each has recorded its outcome: a backup goes back to the
    /// queue as `interrupted` (or fails so when no attempt is left), a
    /// restore fails as interrupted. Gives up waiting after `patience`.
    pub async fn stop(self, state: &AppState, patience: Duration) {
        state.jobs.stop();
        state.wake.notify_waiters();
        let all = futures_util::future::join_all(self.handles);
        if tokio::time::timeout(patience, all).await.is_err() {
            log("workers did not stop in time; their runs are recovered at the next start");
        }
    }
}

/// The runs this node is working on, so that a shutdown can stop them.
#[derive(Debug, Default)]
pub struct RunningJobs {
    stopping: AtomicBool,
    jobs: Mutex<Vec<Arc<JobCancel>>>,
}

/// Why runs stopped by a shutdown stopped.
const SHUTTING_DOWN: &str = "the server shut down while it ran";

impl RunningJobs {
    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        for j in self.jobs.lock().expect("not poisoned").iter() {
            j.cancel(SHUTTING_DOWN);
        }
    }

    /// A new run's cancellation, already cancelled if the server is
    /// stopping.
    fn begin(&self) -> Arc<JobCancel> {
        let job = JobCancel::new();
        self.jobs.lock().expect("not poisoned").push(job.clone());
        if self.stopping() {
            job.cancel(SHUTTING_DOWN);
        }
        job
    }

    fn end(&self, job: &Arc<JobCancel>) {
        self.jobs
            .lock()
            .expect("not poisoned")
            .retain(|j| !Arc::ptr_eq(j, job));
    }
}

async fn recover(state: &AppState, all_running: bool) -> Result<(), ServeError> {
    for v in state.catalog.orphaned_verifications(all_running).await? {
        let msg =
            "interrupted: the worker running this verification stopped (crash, kill or lost lease)";
        if let Err(e) = state
            .catalog
            .finish_verification(&v.id, None, Err(msg.to_string()))
            .await
        {
            log(&format!(
                "verification {}: cannot record the interruption: {e}",
                v.id
            ));
        }
    }
    for r in state.catalog.orphaned_restores(all_running).await? {
        let msg = "interrupted: the worker running this restore stopped (crash, kill or lost lease); \
                   the target may hold part of the data";
        match state
            .catalog
            .finish_restore(&r.id, None, Err(msg.to_string()))
            .await
        {
            // recorded by this node: no one runs the drill any more
            Ok(_) if r.drill => drop_scratch_database(state, r),
            Ok(_) => {}
            // a lease renewed meanwhile, or another node recovered it
            Err(e) => log(&format!(
                "restore {}: cannot record the interruption: {e}",
                r.id
            )),
        }
    }
    for b in state.catalog.orphaned_backups(all_running).await? {
        let delay = backoff(retry_base(state), b.attempts);
        // checked again under the row's lock: a lease renewed (or a run
        // finished, or recovered by another node) since the list was read
        // is left alone
        let r = state
            .catalog
            .interrupt_backup(
                &b.id,
                all_running,
                "interrupted: the worker running this backup stopped (crash, kill or lost lease)",
                delay,
            )
            .await;
        match r {
            Ok(Some(b)) => log(&format!(
                "backup {} was interrupted; now {}",
                b.id, b.status
            )),
            Ok(None) => {}
            Err(e) => log(&format!(
                "backup {}: cannot record the interruption: {e}",
                b.id
            )),
        }
    }
    Ok(())
}

/// Drop the scratch database (if any) of a drill whose node died while it
/// ran — on the admin's drill server or on the source's own server — by
/// the name the drill's id gives it; another drill's database is never
/// touched, so this is safe while other nodes run drills. On a task of its
/// own: the server may be a tenant's, and however slowly it answers, the
/// recovery of everything else does not wait for it.
fn drop_scratch_database(state: &AppState, r: Restore) {
    let state = state.clone();
    tokio::spawn(async move { drop_scratch_database_now(&state, &r).await });
}

async fn drop_scratch_database_now(state: &AppState, r: &Restore) {
    let dropped = match drill_input(state, r).await {
        Ok((_, input)) => {
            tokio::task::spawn_blocking(move || crate::runner::drop_drill_database(&input))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r)
        }
        Err(e) => Err(e),
    };
    match dropped {
        Ok(false) => {}
        Ok(true) => log(&format!(
            "drill {}: dropped the scratch database it left",
            r.id
        )),
        Err(e) => log(&format!(
            "drill {}: cannot drop the scratch database it may have left: {e}",
            r.id
        )),
    }
}

fn retry_base(state: &AppState) -> SignedDuration {
    SignedDuration::from_secs(state.config.jobs.retry_base_seconds as i64)
}

fn lease(state: &AppState) -> SignedDuration {
    SignedDuration::from_secs(state.config.jobs.lease_seconds as i64)
}

/// A job a worker took from one of the catalog's queues.
enum Job {
    Backup(Backup),
    Restore(Restore),
    Verification(Verification),
    Deletion(Backup),
}

impl Job {
    /// The next due job: backups first, then restores, verifications,
    /// deletions.
    async fn claim(state: &AppState, worker: &str) -> Result<Option<Job>, CatalogError> {
        let (c, l) = (&state.catalog, lease(state));
        if let Some(b) = c.claim(&queue::BACKUPS, worker, l).await? {
            return Ok(Some(Job::Backup(b)));
        }
        if let Some(r) = c.claim(&queue::RESTORES, worker, l).await? {
            return Ok(Some(Job::Restore(r)));
        }
        if let Some(v) = c.claim(&queue::VERIFICATIONS, worker, l).await? {
            return Ok(Some(Job::Verification(v)));
        }
        Ok(c.claim(&queue::DELETIONS, worker, l)
            .await?
            .map(Job::Deletion))
    }

    fn id(&self) -> &str {
        match self {
            Job::Backup(b) | Job::Deletion(b) => &b.id,
            Job::Restore(r) => &r.id,
            Job::Verification(v) => &v.id,
        }
    }

    /// What it is called in messages.
    fn what(&self) -> &'static str {
        match self {
            Job::Backup(_) => "backup",
            Job::Restore(_) => "restore",
            Job::Verification(_) => "verification",
            Job::Deletion(_) => "deletion",
        }
    }

    /// What a stopped job leaves behind, for its failure message.
    fn stopped_leaves(&self) -> &'static str {
        match self {
            Job::Restore(_) => "; the target may hold part of the data",
            _ => "",
        }
    }

    /// Where its progress is shown (a deletion's is not).
    fn progress_table(&self) -> Option<JobTable> {
        match self {
            Job::Backup(_) => Some(JobTable::Backups),
            Job::Restore(_) => Some(JobTable::Restores),
            Job::Verification(_) | Job::Deletion(_) => None,
        }
    }

    /// Extend the job's lease; `false` when the worker no longer holds it.
    async fn renew(
        &self,
        state: &AppState,
        worker: &str,
        progressed: bool,
    ) -> Result<bool, CatalogError> {
        let (c, l, id) = (&state.catalog, lease(state), self.id());
        match self {
            Job::Backup(_) => c.heartbeat(id, worker, l, progressed).await,
            Job::Restore(_) => c.renew_lease(&queue::RESTORES, id, worker, l).await,
            Job::Verification(_) => c.renew_lease(&queue::VERIFICATIONS, id, worker, l).await,
            Job::Deletion(_) => c.renew_lease(&queue::DELETIONS, id, worker, l).await,
        }
    }

    async fn run(&self, state: &AppState, worker: &str) {
        match self {
            Job::Backup(b) => run_one(state, worker, self, b).await,
            Job::Restore(r) => restore_one(state, worker, self, r).await,
            Job::Verification(v) => verify_one(state, worker, self, v).await,
            Job::Deletion(b) => delete_one(state, worker, self, b).await,
        }
    }
}

async fn worker_loop(state: AppState, name: String) {
    while !state.jobs.stopping() {
        match Job::claim(&state, &name).await {
            Ok(Some(job)) => job.run(&state, &name).await,
            Ok(None) => {
                tokio::select! {
                    _ = state.wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
            Err(e) => {
                log(&format!("{name}: cannot take a job: {e}"));
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
}

enum Stop {
    Timeout(String),
    Shutdown,
}

/// How often a running job's progress is written to the catalog.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// Run `work` on a blocking thread as `job` of this node, renewing its
/// lease every quarter lease; stop it when it reads nothing for
/// `no_progress` (`None`: never) or runs past `hard_limit`, or when the
/// server shuts down. Stopping cancels the job: its loops stop at their
/// next check and its tools are killed with their process groups. A job
/// that was stopped fails as such, whatever error it ended with.
async fn supervise<T: Send + 'static>(
    state: &AppState,
    worker: &str,
    job_of: &Job,
    (no_progress, hard_limit): (Option<Duration>, Option<Duration>),
    work: impl FnOnce(&holdfast_sources::progress::Progress) -> Result<T, RunFailure> + Send + 'static,
) -> Result<T, RunFailure> {
    let progress = Arc::new(holdfast_sources::progress::Progress::silent());
    let p = progress.clone();
    let cancel = state.jobs.begin();
    let c = cancel.clone();
    // a thread of the job's own, which ends with it: a job may restrict its
    // thread (Landlock, see `sandbox`), and a pool thread would carry that
    // restriction on to the next job
    let mut job = tokio::task::spawn_blocking(move || {
        std::thread::scope(|scope| {
            scope
                .spawn(|| cancel::run_as_job(c, || work(&p)))
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    });
    let mut tick_every = Duration::from_secs((state.config.jobs.lease_seconds / 4).max(1));
    // often enough to see each limit within a quarter of it
    for limit in [no_progress, hard_limit].into_iter().flatten() {
        tick_every = tick_every.min(limit / 4);
    }
    let mut tick = tokio::time::interval(tick_every.max(Duration::from_millis(200)));
    tick.tick().await;
    // how far the job has got, for the API and the UI's live view
    let mut report = tokio::time::interval(PROGRESS_EVERY);
    report.tick().await;
    let progress_of = |p: &holdfast_sources::progress::Progress| {
        serde_json::json!({
            "bytes": p.bytes_done.load(Ordering::Relaxed),
            "files": p.files_done.load(Ordering::Relaxed),
            "total_bytes": p.total_bytes.load(Ordering::Relaxed),
            "total_files": p.total_files.load(Ordering::Relaxed),
            "at": holdfast_catalog::clock::now(),
        })
    };
    let table = job_of.progress_table().map(|t| (t, job_of.id()));
    let started = Instant::now();
    let mut last_bytes = 0;
    let mut last_progress = Instant::now();
    let result = loop {
        tokio::select! {
            r = &mut job => break r.ok(),
            _ = report.tick() => {
                if let Some((t, id)) = table
                    && let Err(e) = state.catalog.record_progress(t, id, worker, &progress_of(&progress)).await
                {
                    log(&format!("{worker}: recording progress failed: {e}"));
                }
            }
            _ = tick.tick() => {
                let bytes = progress.bytes_done.load(Ordering::Relaxed);
                let progressed = bytes != last_bytes;
                if progressed {
                    last_progress = Instant::now();
                }
                last_bytes = bytes;
                if let Some(n) = no_progress.filter(|n| last_progress.elapsed() >= *n) {
                    cancel.cancel(&format!("no progress for {}", minutes(n)));
                } else if let Some(h) = hard_limit.filter(|h| started.elapsed() >= *h) {
                    cancel.cancel(&format!("the hard limit of {} was reached", minutes(h)));
                }
                match job_of.renew(state, worker, progressed).await {
                    Ok(true) => {}
                    Ok(false) => log(&format!("{worker}: lease lost; the run's result will not be recorded")),
                    Err(e) => log(&format!("{worker}: heartbeat failed: {e}")),
                }
            }
        }
    };
    // the final figures, for the record
    if let Some((t, id)) = table {
        let _ = state
            .catalog
            .record_progress(t, id, worker, &progress_of(&progress))
            .await;
    }
    state.jobs.end(&cancel);
    // SIGTERM also stops every loop of the process at once (the binary's
    // handler), possibly before the workers cancel their jobs
    let stopped = match cancel.reason() {
        Some(r) if r != SHUTTING_DOWN => Some(Stop::Timeout(r)),
        Some(_) => Some(Stop::Shutdown),
        None => cancel::requested().then_some(Stop::Shutdown),
    };
    let leaves = job_of.stopped_leaves();
    match (result, stopped) {
        (None, _) => Err(RunFailure {
            message: format!("the {} thread panicked", job_of.what()),
            kind: FailureKind::Transient,
        }),
        (Some(Err(_)), Some(Stop::Timeout(reason))) => Err(RunFailure {
            message: format!("timed out: {reason}{leaves}"),
            kind: FailureKind::Transient,
        }),
        (Some(Err(_)), Some(Stop::Shutdown)) => Err(RunFailure {
            message: format!("interrupted: {SHUTTING_DOWN}{leaves}"),
            kind: FailureKind::Interrupted,
        }),
        (Some(r), _) => r,
    }
}

async fn run_one(state: &AppState, worker: &str, job: &Job, b: &Backup) {
    // healthchecks-style channels hear that it started (queued, never awaited)
    crate::notify::backup_started(state, b).await;
    let input = match prepare(state, b).await {
        Ok(i) => i,
        Err(f) => return record(state, worker, b, Err(f)).await,
    };
    let (no_progress, hard_limit) = state.config.jobs.limits(&input.source.kind);
    let result = supervise(
        state,
        worker,
        job,
        (Some(no_progress), hard_limit),
        move |p| run_backup(&input, p),
    )
    .await;
    record(state, worker, b, result).await;
}

/// What a restore or a drill reads before it runs: its backup, the
/// tenant's repository and password, and the source with its credentials
/// and the tenant's policy.
struct Restoring {
    backup: Backup,
    repository: RepoAt,
    password: String,
    source: holdfast_catalog::sources::Source,
    credentials: Option<String>,
    policy: crate::policy::TenantPolicy,
}

async fn restoring(state: &AppState, r: &Restore) -> Result<Restoring, String> {
    let s = |e: holdfast_catalog::CatalogError| e.to_string();
    let backup = state.catalog.backup(&r.backup_id).await.map_err(s)?;
    let source = state
        .catalog
        .source_any(&backup.source_id)
        .await
        .map_err(s)?;
    Ok(Restoring {
        repository: RepoAt::of_tenant(
            &state.config,
            &state.catalog,
            &backup.tenant_id,
            &backup.repository,
        )
        .await
        .map_err(|e| e.to_string())?,
        password: state
            .catalog
            .tenant_password(&r.tenant_id)
            .await
            .map_err(s)?,
        credentials: state
            .catalog
            .source_credentials(&backup.source_id)
            .await
            .map_err(s)?,
        policy: crate::api::policy_of(state, &r.tenant_id)
            .await
            .map_err(|e| e.to_string())?,
        backup,
        source,
    })
}

/// Run a restore (or drill) as `prepared` says — within the hard limit of
/// its source's kind but no no-progress limit: a database builds its
/// indexes after the last byte arrives, and may read nothing from us for a
/// long time while it does — and record how it ended.
async fn run_restore_row<F>(
    state: &AppState,
    worker: &str,
    job: &Job,
    r: &Restore,
    prepared: Result<(String, F), String>,
) where
    F: FnOnce(&holdfast_sources::progress::Progress) -> Result<serde_json::Value, String>
        + Send
        + 'static,
{
    let outcome = match prepared {
        Err(e) => Err(e),
        Ok((kind, run)) => {
            let (_, hard_limit) = state.config.jobs.limits(&kind);
            supervise(state, worker, job, (None, hard_limit), move |p| {
                run(p).map_err(|message| RunFailure {
                    message,
                    kind: FailureKind::Permanent,
                })
            })
            .await
            .map_err(|f| f.message)
        }
    };
    let what = if r.drill { "drill" } else { "restore" };
    match state
        .catalog
        .finish_restore(&r.id, Some(worker), outcome)
        .await
    {
        Ok(done) => log(&format!(
            "{what} {} of backup {} into {}: {}",
            done.id, done.backup_id, done.target, done.status
        )),
        Err(e) => log(&format!("{what} {}: cannot record the outcome: {e}", r.id)),
    }
}

/// Restore a backup into the restore's target, renewing the lease.
async fn restore_one(state: &AppState, worker: &str, job: &Job, r: &Restore) {
    if r.drill {
        return drill_one(state, worker, job, r).await;
    }
    let prepared = async {
        let c = restoring(state, r).await?;
        let checked = crate::policy::check_restore(
            &state.config.host_facts(),
            &c.policy,
            crate::policy::Definer::parse(&r.defined_by),
            crate::policy::Definer::parse(&c.source.defined_by),
            &c.source.kind,
            &c.source.target,
            &r.target,
        )
        .map_err(|e| format!("refused by policy: {e}"))?;
        // over the source: still the source's own target (it may have been
        // changed while the restore waited)
        if r.in_place && c.source.kind != "directory" {
            let now = holdfast_sources::source_url::SourceAddress::parse(&c.source.target)
                .map(|a| a.to_string())
                .unwrap_or_default();
            if now != r.target {
                return Err(format!(
                    "refused: the source's target changed since this restore was queued \
                     ({} then, {now} now); queue it again",
                    r.target
                ));
            }
        }
        let input = crate::runner::RestoreInput {
            repository: c.repository,
            password: c.password,
            snapshot_id: c.backup.snapshot_id.clone().unwrap_or_default(),
            source_target: c.source.target.clone().into(),
            in_place: r.in_place,
            kind: c.source.kind.clone(),
            target: r.target.clone(),
            credentials: c.credentials,
            replay_state: state.config.data_dir.join("replay"),
            checked,
        };
        Ok((
            c.source.kind,
            move |p: &holdfast_sources::progress::Progress| crate::runner::run_restore(&input, p),
        ))
    }
    .await;
    run_restore_row(state, worker, job, r, prepared).await;
}

/// Restore a backup into a scratch target, verify it and remove the
/// target (a drill). The scratch target is the server's; a database
/// drill's is a scratch database on the source's own server, reached as
/// the source is (policy checked again, the address pinned).
async fn drill_one(state: &AppState, worker: &str, job: &Job, r: &Restore) {
    let prepared = drill_input(state, r).await.map(|(kind, input)| {
        (kind, move |p: &holdfast_sources::progress::Progress| {
            crate::runner::run_drill(&input, p)
        })
    });
    run_restore_row(state, worker, job, r, prepared).await;
}

/// What the drill `r` runs with: its source's kind, and the input.
async fn drill_input(
    state: &AppState,
    r: &Restore,
) -> Result<(String, crate::runner::DrillInput), String> {
    {
        let c = restoring(state, r).await?;
        let checked = crate::policy::check_source(
            &state.config.host_facts(),
            &c.policy,
            crate::policy::Definer::parse(&c.source.defined_by),
            &c.source.kind,
            &c.source.target,
        )
        .map_err(|e| format!("refused by policy: {e}"))?;
        let input = crate::runner::DrillInput {
            repository: c.repository,
            password: c.password,
            snapshot_id: c.backup.snapshot_id.clone().unwrap_or_default(),
            kind: c.source.kind.clone(),
            source_target: c.source.target,
            credentials: c.credentials,
            checked,
            scratch: state.config.drill_scratch(),
            drill_server: state.config.drills.server(&c.source.kind),
            name: r.id.clone(),
        };
        Ok((c.source.kind, input))
    }
}

/// `check` a tenant's repository, reading the data of the packs the row
/// names; record what it found (and mark the damaged backups). Bound by
/// the hard limit of the `verification` kind (`[jobs.kinds.verification]`)
/// but no no-progress limit: reading headers reports no bytes.
async fn verify_one(state: &AppState, worker: &str, job: &Job, v: &Verification) {
    let prepared = async {
        let s = |e: CatalogError| e.to_string();
        Ok::<_, String>(crate::runner::VerifyInput {
            repository: RepoAt::of_tenant(
                &state.config,
                &state.catalog,
                &v.tenant_id,
                &v.repository,
            )
            .await
            .map_err(|e| e.to_string())?,
            password: state
                .catalog
                .tenant_password(&v.tenant_id)
                .await
                .map_err(s)?,
            read_data: v.read_data.clone(),
        })
    }
    .await;
    let outcome = match prepared {
        Err(e) => Err(e),
        Ok(input) => {
            let (_, hard_limit) = state.config.jobs.limits("verification");
            supervise(state, worker, job, (None, hard_limit), move |_| {
                crate::runner::run_verification(&input).map_err(|message| RunFailure {
                    message,
                    kind: FailureKind::Permanent,
                })
            })
            .await
            .map_err(|f| f.message)
        }
    };
    match state
        .catalog
        .finish_verification(&v.id, Some(worker), outcome)
        .await
    {
        Ok(done) => log(&format!(
            "verification {} of {} ({}): {}{}",
            done.id,
            done.repository,
            done.read_data,
            done.status,
            done.error.map(|e| format!(": {e}")).unwrap_or_default()
        )),
        Err(e) => log(&format!(
            "verification {}: cannot record the outcome: {e}",
            v.id
        )),
    }
}

/// Remove a backup's snapshot and prune; a failure leaves the row
/// `deleting` and tries again later.
async fn delete_one(state: &AppState, worker: &str, job: &Job, b: &Backup) {
    let password = match state.catalog.tenant_password(&b.tenant_id).await {
        Ok(p) => p,
        Err(e) => return log(&format!("deletion of {}: {e}", b.id)),
    };
    let repo =
        match RepoAt::of_tenant(&state.config, &state.catalog, &b.tenant_id, &b.repository).await {
            Ok(r) => r,
            Err(e) => return log(&format!("deletion of {}: {e}", b.id)),
        };
    let ids: Vec<String> = b
        .snapshot_id
        .iter()
        .filter(|s| !s.is_empty())
        .cloned()
        .collect();
    // supervised like a run: its lease renewed while prune works (it can
    // outlast one lease), stopped at shutdown (and tried again later)
    let result = supervise(state, worker, job, (None, None), move |_| {
        crate::runner::delete_snapshots(&repo, &password, &ids)
    })
    .await;
    let outcome = match result {
        Ok(()) => state
            .catalog
            .finish_deletion(&b.id, worker)
            .await
            .map(|_| ()),
        Err(f) => {
            log(&format!(
                "deletion of {} failed, will try again: {}",
                b.id, f.message
            ));
            state
                .catalog
                .defer_deletion(&b.id, worker, &f.message, backoff(retry_base(state), 2))
                .await
        }
    };
    match outcome {
        Ok(()) => log(&format!("backup {} of {}: deleted", b.id, b.source_name)),
        Err(e) => log(&format!(
            "deletion of {}: cannot record the outcome: {e}",
            b.id
        )),
    }
}

async fn prepare(state: &AppState, b: &Backup) -> Result<RunInput, RunFailure> {
    let permanent = |message: String| RunFailure {
        message,
        kind: FailureKind::Permanent,
    };
    let transient = |message: String| RunFailure {
        message,
        kind: FailureKind::Transient,
    };
    let source = state
        .catalog
        .source(&b.tenant_id, &b.source_id)
        .await
        .map_err(|e| match e {
            holdfast_catalog::CatalogError::NotFound { .. } => permanent(format!(
                "source {} ({}) was deleted",
                b.source_name, b.source_id
            )),
            other => transient(other.to_string()),
        })?;
    let password = state
        .catalog
        .tenant_password(&b.tenant_id)
        .await
        .map_err(|e| permanent(e.to_string()))?;
    let credentials = state
        .catalog
        .source_credentials(&b.source_id)
        .await
        .map_err(|e| permanent(e.to_string()))?;
    // the policy as it is now, for whoever set the target: checked again
    // before the job touches anything
    let policy = crate::api::policy_of(state, &b.tenant_id)
        .await
        .map_err(|e| transient(e.to_string()))?;
    let checked = crate::policy::check_source(
        &state.config.host_facts(),
        &policy,
        crate::policy::Definer::parse(&source.defined_by),
        &source.kind,
        &source.target,
    )
    .map_err(|r| permanent(format!("refused by policy: {r}")))?;
    let repository = RepoAt::of_tenant(&state.config, &state.catalog, &b.tenant_id, &b.repository)
        .await
        .map_err(|e| permanent(e.to_string()))?;
    if policy.max_repository_bytes.is_some() {
        let repo = repository.clone();
        let used = tokio::task::spawn_blocking(move || repo.used_bytes())
            .await
            .unwrap_or(0);
        policy
            .check_repository_bytes(used)
            .map_err(|q| permanent(format!("quota exceeded: {}", q.message)))?;
    }
    let audit_head = state
        .catalog
        .audit_head()
        .await
        .map_err(|e| transient(e.to_string()))?;
    Ok(RunInput {
        repository,
        password,
        source,
        credentials,
        backup_id: b.id.clone(),
        checked,
        audit_head,
    })
}

async fn record(
    state: &AppState,
    worker: &str,
    b: &Backup,
    result: Result<holdfast_catalog::backups::Outcome, RunFailure>,
) {
    let r = match result {
        Ok(outcome) => state.catalog.finish_backup(&b.id, worker, &outcome).await,
        Err(f) => {
            let delay = backoff(retry_base(state), b.attempts);
            let message = format!("{} ({} failure)", f.message, f.kind.as_str());
            state
                .catalog
                .fail_backup(&b.id, Some(worker), &message, f.kind, delay)
                .await
        }
    };
    if let Ok(done) = &r {
        // this attempt's duration: from its claim (`b` is the claimed row) to
        // now; a run queued again for another attempt has no finished_at
        let seconds = b
            .started_at
            .as_deref()
            .and_then(holdfast_catalog::clock::parse)
            .map_or(0.0, |a| {
                (jiff::Timestamp::now() - a)
                    .total(jiff::Unit::Second)
                    .unwrap_or(0.0)
            });
        let outcome = if done.status == "done" {
            "done"
        } else {
            "failed"
        };
        state.metrics.run_finished(
            outcome,
            seconds,
            done.size.unwrap_or(0) as u64,
            done.bytes_added.unwrap_or(0) as u64,
        );
    }
    match r {
        Ok(done) => log(&format!(
            "backup {} of {}: {}",
            done.id, done.source_name, done.status
        )),
        Err(e) => log(&format!("backup {}: cannot record the outcome: {e}", b.id)),
    }
}

/// "10 minutes", "3 seconds".
fn minutes(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 120.0 {
        format!("{:.0} minutes", s / 60.0)
    } else {
        format!("{s:.0} seconds")
    }
}

/// One line on standard error, with the time.
/// Control characters (from names, paths, remote answers) are escaped, so
/// that no text can forge or hide a log line.
pub fn log(line: &str) {
    eprintln!(
        "{} {}",
        holdfast_catalog::clock::now(),
        escape_controls(line)
    );
}

/// `line` with every control character as an escape (`\n`, `\u{1b}`).
pub fn escape_controls(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    for c in line.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}
