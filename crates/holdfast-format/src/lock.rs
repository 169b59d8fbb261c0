//! Lock files under `locks/`, compatible with restic's.

use serde::{Deserialize, Serialize};

use crate::gotime::GoTime;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    pub time: GoTime,
    pub exclusive: bool,
    #[serde(default)]
    pub hostname: String,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub pid: i64,
    #[serde(default)]
    pub uid: u32,
    #[serde(default)]
    pub gid: u32,
}

/// restic considers a lock older than this stale.
pub const STALE_AFTER_SECS: i64 = 30 * 60;
/// How often a holder refreshes its lock (restic: 5 minutes).
pub const REFRESH_EVERY_SECS: u64 = 5 * 60;

impl Lock {
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("lock serializes")
    }

    pub fn from_json(b: &[u8]) -> Result<Lock, serde_json::Error> {
        serde_json::from_slice(b)
    }

    /// Older than restic's staleness threshold at `now`.
    pub fn is_expired(&self, now: GoTime) -> bool {
        now.secs - self.time.secs > STALE_AFTER_SECS
    }
}
