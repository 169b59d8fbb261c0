//! Everything holdfast prints: human text or JSON lines on stdout, notices
//! and errors on stderr, and progress (a bar on a terminal, JSON status
//! lines with `--json`, nothing otherwise).

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use holdfast_format::gotime::GoTime;
use holdfast_sources::progress::{ItemError, Progress};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};

pub struct Ui {
    pub json: bool,
    pub quiet: bool,
    pub verbose: u8,
    bar: Mutex<Option<ProgressBar>>,
}

impl Ui {
    /// Output as `--json`, `--quiet` and `--verbose` ask.
    pub fn new(json: bool, quiet: bool, verbose: u8) -> Ui {
        Ui {
            json,
            quiet,
            verbose,
            bar: Mutex::new(None),
        }
    }

    fn with_bar_suspended(&self, f: impl FnOnce()) {
        match &*self.bar.lock().unwrap() {
            Some(b) => b.suspend(f),
            None => f(),
        }
    }

    /// A line of human output on stdout (suppressed by `--quiet` and `--json`).
    pub fn print(&self, line: &str) {
        if self.quiet || self.json {
            return;
        }
        self.with_bar_suspended(|| {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
        });
    }

    /// Output that is the command's result: printed even with `--quiet`.
    pub fn result(&self, line: &str) {
        if self.json {
            return;
        }
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
    }

    /// One JSON object on a line of stdout (only with `--json`).
    pub fn json_line(&self, v: &Value) {
        if !self.json {
            return;
        }
        self.with_bar_suspended(|| {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{v}");
        });
    }

    /// A command's closing JSON line: `result`'s fields, `message_type`
    /// `summary`, and `extra`.
    pub fn summary_line(
        &self,
        result: &impl serde::Serialize,
        extra: &[(&str, Value)],
    ) -> serde_json::Result<()> {
        let mut v = serde_json::to_value(result)?;
        v["message_type"] = Value::from("summary");
        for (k, x) in extra {
            v[*k] = x.clone();
        }
        self.json_line(&v);
        Ok(())
    }

    /// Information on stderr (not with `--quiet`).
    pub fn notice(&self, msg: &str) {
        if self.quiet {
            return;
        }
        if self.json {
            self.stderr_json(&json!({"message_type": "notice", "message": msg}));
            return;
        }
        self.with_bar_suspended(|| eprintln!("{msg}"));
    }

    /// A warning or non-fatal error on stderr (always shown).
    pub fn warn(&self, msg: &str) {
        if self.json {
            self.stderr_json(&json!({"message_type": "error", "error": {"message": msg}}));
            return;
        }
        self.with_bar_suspended(|| eprintln!("warning: {msg}"));
    }

    /// A per-item error of a running operation.
    pub fn item_error(&self, e: &ItemError) {
        if self.json {
            self.stderr_json(&json!({
                "message_type": "error",
                "error": {"message": e.message},
                "during": e.during,
                "item": e.path,
            }));
            return;
        }
        self.with_bar_suspended(|| eprintln!("error: {e}"));
    }

    pub fn stderr_json(&self, v: &Value) {
        self.with_bar_suspended(|| {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "{v}");
        });
    }

    /// Show `progress` until the returned handle is finished.
    pub fn start_progress(
        self: &Arc<Self>,
        progress: Arc<Progress>,
        what: &'static str,
    ) -> ProgressHandle {
        let stop = Arc::new(AtomicBool::new(false));
        let show_bar = !self.quiet && !self.json && std::io::stderr().is_terminal();
        let show_json = self.json && !self.quiet;
        if !show_bar && !show_json {
            return ProgressHandle { stop, thread: None };
        }
        if show_bar {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(10));
            bar.set_style(
                ProgressStyle::with_template(
                    "[{elapsed_precise}] {wide_bar:.cyan/blue} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            *self.bar.lock().unwrap() = Some(bar);
        }
        let ui = self.clone();
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let start = Instant::now();
            let mut last_json = Instant::now() - Duration::from_secs(10);
            while !stop2.load(Ordering::Relaxed) {
                let files = progress.files_done.load(Ordering::Relaxed);
                let bytes = progress.bytes_done.load(Ordering::Relaxed);
                let tf = progress.total_files.load(Ordering::Relaxed);
                let tb = progress.total_bytes.load(Ordering::Relaxed);
                if let Some(bar) = &*ui.bar.lock().unwrap() {
                    bar.set_length(tb.max(bytes));
                    bar.set_position(bytes);
                    bar.set_message(format!("{files}/{tf} files {what}"));
                }
                if show_json && last_json.elapsed() >= Duration::from_secs(1) {
                    last_json = Instant::now();
                    let elapsed = start.elapsed().as_secs_f64();
                    let pct = if tb > 0 {
                        (bytes as f64 / tb as f64).min(1.0)
                    } else {
                        0.0
                    };
                    let remaining = if pct > 0.0 && progress.scan_finished.load(Ordering::Relaxed) {
                        (elapsed / pct - elapsed).max(0.0) as u64
                    } else {
                        0
                    };
                    let mut v = json!({
                        "message_type": "status",
                        "seconds_elapsed": elapsed as u64,
                        "seconds_remaining": remaining,
                        "percent_done": pct,
                        "total_files": tf,
                        "files_done": files,
                        "total_bytes": tb,
                        "bytes_done": bytes,
                        "error_count": progress.errors.load(Ordering::Relaxed),
                    });
                    if let Some(c) = progress.current() {
                        v["current_files"] = json!([c]);
                    }
                    ui.json_line(&v);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        ProgressHandle {
            stop,
            thread: Some((thread, self.clone())),
        }
    }
}

pub struct ProgressHandle {
    stop: Arc<AtomicBool>,
    thread: Option<(JoinHandle<()>, Arc<Ui>)>,
}

impl ProgressHandle {
    pub fn finish(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some((t, ui)) = self.thread.take() {
            let _ = t.join();
            if let Some(bar) = ui.bar.lock().unwrap().take() {
                bar.finish_and_clear();
            }
        }
    }
}

impl Drop for ProgressHandle {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// Bytes the way restic prints them: `1.234 MiB`.
pub fn fmt_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.3} {}", UNITS[u])
}

/// `m:ss` or `h:mm:ss`.
pub fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// A time in the local time zone, `YYYY-MM-DD HH:MM:SS`.
pub fn fmt_local(t: &GoTime) -> String {
    match jiff::Timestamp::new(t.secs, t.nanos as i32) {
        Ok(ts) => ts
            .to_zoned(jiff::tz::TimeZone::system())
            .strftime("%Y-%m-%d %H:%M:%S")
            .to_string(),
        Err(_) => t.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes() {
        assert_eq!(fmt_bytes(10), "10 B");
        assert_eq!(fmt_bytes(1536), "1.500 KiB");
        assert_eq!(fmt_bytes(5 * 1024 * 1024 * 1024), "5.000 GiB");
        assert_eq!(fmt_duration(Duration::from_secs(3725)), "1:02:05");
    }
}
