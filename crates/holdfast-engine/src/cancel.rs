//! Cooperative cancellation: a signal handler (installed by the binary)
//! sets one flag; long-running loops check it between units of work and
//! stop with [`EngineError::Interrupted`]. Nothing half-written is ever
//! referenced: an interrupted backup writes no snapshot, and held locks are
//! released as the stack unwinds normally.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{EngineError, Result};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Ask every running operation to stop (async-signal-safe).
pub fn request() {
    REQUESTED.store(true, Ordering::SeqCst);
}

pub fn requested() -> bool {
    REQUESTED.load(Ordering::Relaxed)
}

/// `Err(Interrupted)` once cancellation was requested.
pub fn check() -> Result<()> {
    if requested() {
        Err(EngineError::Interrupted)
    } else {
        Ok(())
    }
}
