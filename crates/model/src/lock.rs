//! The lock object that gives a service or network one writer at a time.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Contents of a `lock.json` object, created conditionally (only if absent).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    /// The job holding it (a UUID).
    pub job: String,
    /// `apply`, `destroy`, …
    pub operation: String,
    /// The host the holder runs on.
    pub host: String,
    /// The holder's process id on that host: a lock whose process is gone is stale.
    pub pid: u32,
    pub acquired_at: DateTime<Utc>,
    /// After this instant the lock is stale and may be taken over; the holder renews it.
    pub expires_at: DateTime<Utc>,
}
