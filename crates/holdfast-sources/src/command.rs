//! Any command's standard output as a one-file snapshot (`--command`), and
//! the plumbing the dump tools share: a child process whose failure — a
//! non-zero exit status or a signal — fails the backup before any snapshot
//! is written, with the tail of its standard error in the message.

use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use holdfast_engine::repository::Repository;
use holdfast_engine::{EngineError, Fault, Result};
use holdfast_format::Id;
use holdfast_format::snapshot::Snapshot;
use serde_json::json;

use crate::progress::Progress;
use crate::spec::BackupSettings;
use crate::stream::backup_stream_checked;

/// Bytes of a child's standard error kept for error messages.
const STDERR_TAIL: usize = 8 * 1024;

/// A running child whose standard output is read and whose standard error
/// is collected (its last few kilobytes) for error messages.
pub struct Spawned {
    /// The service job that started it (its process group is the job's).
    job: Option<std::sync::Arc<holdfast_engine::cancel::JobCancel>>,
    child: Child,
    stderr: Arc<Mutex<Vec<u8>>>,
    drain: Option<JoinHandle<()>>,
    /// What to call it in messages ("pg_dump", "the command").
    pub what: String,
    /// What its failure means, for messages.
    consequence: String,
}

impl Spawned {
    /// Start `cmd` with stdout and stderr piped and stdin closed: the
    /// caller reads what it writes.
    pub fn start(mut cmd: Command, what: &str) -> Result<(Spawned, ChildStdout)> {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped());
        let mut s = Spawned::spawn(cmd, what)?;
        let stdout = s.child.stdout.take().expect("stdout is piped");
        widen_pipe(&stdout);
        Ok((s, stdout))
    }

    /// Start `cmd` with `script` on its stdin (written from a thread, then
    /// closed) and stdout piped: a psql session that streams a query's
    /// result.
    pub fn start_with_script(
        mut cmd: Command,
        what: &str,
        script: String,
    ) -> Result<(Spawned, ChildStdout)> {
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
        let mut s = Spawned::spawn(cmd, what)?;
        let mut stdin = s.child.stdin.take().expect("stdin is piped");
        std::thread::spawn(move || {
            let _ = stdin.write_all(script.as_bytes());
        });
        let stdout = s.child.stdout.take().expect("stdout is piped");
        widen_pipe(&stdout);
        Ok((s, stdout))
    }

    /// Start `cmd` with stdin piped and stdout discarded: the caller feeds
    /// it (a restore into psql or mariadb).
    pub fn start_feeding(mut cmd: Command, what: &str) -> Result<(Spawned, ChildStdin)> {
        cmd.stdin(Stdio::piped()).stdout(Stdio::null());
        let mut s = Spawned::spawn(cmd, what)?;
        let stdin = s.child.stdin.take().expect("stdin is piped");
        Ok((s, stdin))
    }

    fn spawn(mut cmd: Command, what: &str) -> Result<Spawned> {
        cmd.stderr(Stdio::piped());
        // In a service job the tool gets a process group of its own, which
        // the job's cancellation (a timeout) kills, children and all.
        let job = holdfast_engine::cancel::current_job();
        if job.is_some() {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        let mut child = cmd.spawn().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                EngineError::source(format!(
                    "cannot start {what}: {:?} not found",
                    cmd.get_program()
                ))
            } else {
                EngineError::io(format!("cannot start {what}"), e)
            }
        })?;
        let mut err = child.stderr.take().expect("stderr is piped");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let sink = stderr.clone();
        let drain = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let mut s = sink.lock().unwrap();
                s.extend_from_slice(&buf[..n]);
                if s.len() > STDERR_TAIL * 2 {
                    let cut = s.len() - STDERR_TAIL;
                    s.drain(..cut);
                }
            }
        });
        if let Some(j) = &job {
            j.add_group(child.id() as i32);
        }
        Ok(Spawned {
            job,
            child,
            stderr,
            drain: Some(drain),
            what: what.to_string(),
            consequence: "no snapshot was written".to_string(),
        })
    }

    /// Wait for the child; its status whatever it is, and its standard
    /// error.
    pub fn wait(mut self) -> Result<(ExitStatus, String)> {
        let status = self.reap()?;
        Ok((status, self.stderr_tail()))
    }

    /// Wait for the child and its standard error's reader. Reaped, its
    /// group id is forgotten: a later cancellation must not signal a group
    /// the system may have given to another process since.
    fn reap(&mut self) -> Result<ExitStatus> {
        let status = self
            .child
            .wait()
            .map_err(|e| EngineError::io(format!("waiting for {}", self.what), e))?;
        self.forget_group();
        if let Some(d) = self.drain.take() {
            let _ = d.join();
        }
        Ok(status)
    }

    /// Wait for the child and turn a failure into an error.
    pub fn finish(mut self) -> Result<ExitStatus> {
        let status = self.reap()?;
        if status.success() {
            return Ok(status);
        }
        // killed (by the OOM killer, an operator, a restart) or cut off from
        // its server: another run may succeed; anything else it reported is
        // about the source itself
        let fault = if status.signal().is_some() {
            Fault::Transient
        } else {
            tool_fault(&self.stderr_tail())
        };
        Err(EngineError::source_with(fault, self.failure(status)))
    }

    /// The standard error collected so far, trimmed.
    pub fn stderr_tail(&self) -> String {
        let s = self.stderr.lock().unwrap();
        let text = String::from_utf8_lossy(&s);
        let t = text.trim();
        let start = t.len().saturating_sub(STDERR_TAIL);
        t[t.floor_char_boundary(start)..].to_string()
    }

    fn failure(&self, status: ExitStatus) -> String {
        let how = how_it_ended(status);
        let tail = self.stderr_tail();
        if tail.is_empty() {
            format!("{} {how}; {}", self.what, self.consequence)
        } else {
            format!("{} {how}; {}:\n{tail}", self.what, self.consequence)
        }
    }

    /// Say what a failure means ("the restore was rolled back").
    pub fn set_consequence(&mut self, s: &str) {
        self.consequence = s.to_string();
    }

    /// Do `work` with what the child writes: the child is stopped when the
    /// work fails, waited for (its failure the error) when it succeeds.
    pub fn alongside<T>(self, work: impl FnOnce() -> Result<T>) -> Result<T> {
        match work() {
            Ok(t) => self.finish().map(|_| t),
            Err(e) => {
                self.kill();
                Err(e)
            }
        }
    }

    /// Stop the child (after our side failed).
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.forget_group();
        if let Some(d) = self.drain.take() {
            let _ = d.join();
        }
    }
}

impl Spawned {
    /// The child was reaped: its group id must not be killed any more.
    fn forget_group(&mut self) {
        if let Some(j) = &self.job {
            j.remove_group(self.child.id() as i32);
        }
    }
}

/// What a database tool's error output says about trying again: the
/// connection-level failures libpq and the MySQL/MariaDB clients report
/// (refused, lost, timed out, too many connections, a server starting up
/// or shutting down) are transient; authentication, missing objects and
/// everything else are permanent. Authentication is checked first: a
/// refused password is never worth a retry.
pub fn tool_fault(stderr: &str) -> Fault {
    let m = stderr.to_ascii_lowercase();
    let permanent = [
        "password authentication failed",
        "authentication failed",
        "access denied",
        "no pg_hba.conf entry",
        "does not exist",
        "unknown database",
    ];
    let transient = [
        "connection refused",
        "could not connect",
        "can't connect",
        "timeout expired",
        "timed out",
        "connection reset",
        "server closed the connection unexpectedly",
        "lost connection",
        "too many connections",
        "the database system is starting up",
        "the database system is shutting down",
        "server has gone away",
        "could not translate host name",
        "temporary failure in name resolution",
    ];
    if permanent.iter().any(|p| m.contains(p)) {
        Fault::Permanent
    } else if transient.iter().any(|p| m.contains(p)) {
        Fault::Transient
    } else {
        Fault::Permanent
    }
}

/// Whether `p` is a file someone may execute.
pub(crate) fn is_executable(p: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// What a tool is called in messages: its file name.
pub(crate) fn tool_name(program: &std::path::Path) -> String {
    let name = program.file_name().unwrap_or(program.as_os_str());
    name.to_string_lossy().into_owned()
}

/// Run a client with `input` on its standard input (written from a
/// thread), collecting its output; `what` names it if waiting fails.
pub(crate) fn run_with_input(mut cmd: Command, input: &str, what: &str) -> Result<Output> {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let program = std::path::Path::new(cmd.get_program())
        .display()
        .to_string();
    let mut child = cmd
        .spawn()
        .map_err(|e| EngineError::io(format!("cannot start {program}"), e))?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    std::thread::scope(|s| {
        s.spawn(move || {
            let _ = stdin.write_all(input.as_bytes());
        });
        child.wait_with_output()
    })
    .map_err(|e| EngineError::io(format!("waiting for {what}"), e))
}

/// A client's result rows: one per non-empty line of `out`, its fields
/// split at `sep` and read by `field`.
pub(crate) fn result_rows(out: &[u8], sep: &str, field: fn(&str) -> String) -> Vec<Vec<String>> {
    let text = String::from_utf8_lossy(out);
    let lines = text.lines().filter(|l| !l.is_empty());
    lines.map(|l| l.split(sep).map(field).collect()).collect()
}

/// "exited with status 3", "was killed by signal 9".
pub fn how_it_ended(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        _ => "failed".to_string(),
    }
}

/// Back up the standard output of `command` (run by `/bin/sh -c`).
pub fn backup_command(
    repo: &Arc<Repository>,
    command: &str,
    filename: &str,
    opts: BackupSettings,
    progress: &Progress,
) -> Result<(Option<Id>, Snapshot)> {
    let mut cmd = holdfast_confine::tool_env::command("/bin/sh");
    cmd.arg("-c").arg(command);
    // Only the program's name is recorded: the rest of a command line can
    // hold secrets.
    let program = command.split_whitespace().next().unwrap_or("").to_string();
    let (child, stdout) = Spawned::start(cmd, "the command")?;
    let child = Mutex::new(Some(child));
    let r = backup_stream_checked(repo, stdout, filename, opts, progress, |facts| {
        let c = child.lock().unwrap().take().expect("child present");
        let status = c.finish()?;
        Ok(Some(json!({
            "source": {
                "kind": "command",
                "program": program,
                "exit_status": status.code(),
                "size": facts.size,
                "sha256": facts.sha256.to_hex(),
            }
        })))
    });
    if let Some(c) = child.lock().unwrap().take() {
        c.kill();
    }
    r
}

/// Grow a pipe we read a tool's output from to 1 MiB (Linux's default
/// limit for unprivileged processes; the kernel's default is 64 KiB): the
/// tool blocks less often on a full pipe and each read returns more, which
/// on a dump of a gigabyte saves about a second of system time in context
/// switches. Best effort: a smaller pipe works, only slower.
fn widen_pipe(pipe: &impl std::os::fd::AsRawFd) {
    #[cfg(target_os = "linux")]
    // SAFETY: F_SETPIPE_SZ on a descriptor we own; failure is harmless.
    unsafe {
        libc::fcntl(pipe.as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20);
    }
}
