//! Progress counters shared between a running operation and whoever shows
//! its progress, and the per-item errors that do not stop the operation.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// A problem with one item (a file that vanished, a directory that cannot
/// be read). The operation continues; the item is left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemError {
    pub path: String,
    /// What was being done: "open", "read", "lstat", "readdir", "write", …
    pub during: &'static str,
    pub message: String,
}

impl std::fmt::Display for ItemError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.during, self.path, self.message)
    }
}

type ErrorSink = Box<dyn Fn(&ItemError) + Send + Sync>;

/// Counters updated by the worker threads.
pub struct Progress {
    pub files_done: AtomicU64,
    pub dirs_done: AtomicU64,
    pub bytes_done: AtomicU64,
    /// Totals from the scanner (for percentages and ETA); 0 until known.
    pub total_files: AtomicU64,
    pub total_bytes: AtomicU64,
    pub scan_finished: AtomicBool,
    pub errors: AtomicU64,
    current: Mutex<Option<String>>,
    on_error: ErrorSink,
    collected: Mutex<Vec<ItemError>>,
}

impl Progress {
    pub fn new(on_error: ErrorSink) -> Progress {
        Progress {
            files_done: AtomicU64::new(0),
            dirs_done: AtomicU64::new(0),
            bytes_done: AtomicU64::new(0),
            total_files: AtomicU64::new(0),
            total_bytes: AtomicU64::new(0),
            scan_finished: AtomicBool::new(false),
            errors: AtomicU64::new(0),
            current: Mutex::new(None),
            on_error,
            collected: Mutex::new(Vec::new()),
        }
    }

    /// A progress that only collects errors.
    pub fn silent() -> Progress {
        Progress::new(Box::new(|_| {}))
    }

    pub fn error(&self, e: ItemError) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        (self.on_error)(&e);
        self.collected.lock().unwrap().push(e);
    }

    /// A problem with the item at `path`, `during` what was being done.
    pub fn item_error(&self, path: String, during: &'static str, e: impl std::fmt::Display) {
        self.error(ItemError {
            path,
            during,
            message: e.to_string(),
        });
    }

    pub fn errors(&self) -> Vec<ItemError> {
        self.collected.lock().unwrap().clone()
    }

    pub fn set_current(&self, path: Option<String>) {
        *self.current.lock().unwrap() = path;
    }

    pub fn current(&self) -> Option<String> {
        self.current.lock().unwrap().clone()
    }

    pub fn add_bytes(&self, n: u64) {
        self.bytes_done.fetch_add(n, Ordering::Relaxed);
    }

    pub fn file_done(&self) {
        self.files_done.fetch_add(1, Ordering::Relaxed);
    }
}
