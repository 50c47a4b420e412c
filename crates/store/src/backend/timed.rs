//! Every store call bounded in time, so a frozen or unreachable store gives a clear error
//! instead of a hang: a wrapper around any [`Backend`] (local directory or S3).
//!
//! A call that does not finish within the store timeout fails with
//! [`StoreError::Unavailable`]. Reads (get, list) are idempotent, so they are tried again with
//! a growing pause after a failed or overlong attempt, all within that same timeout: each
//! attempt gets a third of it, so a store that hangs once still gets two more chances. Writes
//! and deletes are tried once: a conditional write that timed out may have happened, and
//! repeating it would report a conflict with itself.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::time::Instant;

use super::Backend;
use crate::error::StoreError;
use crate::key::Key;
use crate::store::{PutCondition, Version};
use crate::watch::Stamp;

/// The store timeout when none is configured.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The first pause between two read attempts; it doubles up to [`RETRY_PAUSE_MAX`].
const RETRY_PAUSE: Duration = Duration::from_millis(100);
const RETRY_PAUSE_MAX: Duration = Duration::from_secs(1);
/// How many attempts share a read's time budget.
const READ_ATTEMPTS: u32 = 3;

/// Requests sent to the store, by kind: every attempt counts (a read tried again counts twice).
#[derive(Debug, Default)]
pub(crate) struct RequestCounter {
    reads: AtomicU64,
    writes: AtomicU64,
    deletes: AtomicU64,
    lists: AtomicU64,
}

/// How many requests a [`Store`](crate::Store) handle and its clones sent, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreRequests {
    pub reads: u64,
    pub writes: u64,
    pub deletes: u64,
    pub lists: u64,
}

impl StoreRequests {
    pub fn total(&self) -> u64 {
        self.reads + self.writes + self.deletes + self.lists
    }
}

impl RequestCounter {
    pub(crate) fn snapshot(&self) -> StoreRequests {
        StoreRequests {
            reads: self.reads.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
            deletes: self.deletes.load(Ordering::Relaxed),
            lists: self.lists.load(Ordering::Relaxed),
        }
    }

    fn count(&self, op: &'static str) {
        let counter = match op {
            "reading" => &self.reads,
            "writing" => &self.writes,
            "deleting" => &self.deletes,
            _ => &self.lists,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

pub(crate) struct TimedBackend {
    inner: Arc<dyn Backend>,
    timeout: Duration,
    counter: Arc<RequestCounter>,
}

impl TimedBackend {
    pub(crate) fn new(inner: Arc<dyn Backend>, timeout: Duration, counter: Arc<RequestCounter>) -> TimedBackend {
        TimedBackend { inner, timeout, counter }
    }

    /// One attempt of a write or delete, bounded by the timeout.
    async fn once<T>(
        &self,
        op: &'static str,
        key: &Key,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        self.counter.count(op);
        tokio::time::timeout(self.timeout, call)
            .await
            .unwrap_or_else(|_| Err(StoreError::Unavailable { op, key: key.to_string(), timeout: self.timeout }))
    }

    /// A read, tried again after a backend failure or an overlong attempt while the timeout
    /// allows; a conflict or corrupt object is an answer and is returned at once.
    async fn read<T, F, Fut>(&self, op: &'static str, key: &Key, call: F) -> Result<T, StoreError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let deadline = Instant::now() + self.timeout;
        let per_attempt = (self.timeout / READ_ATTEMPTS).max(Duration::from_millis(100));
        let mut pause = RETRY_PAUSE;
        loop {
            let now = Instant::now();
            let limit = per_attempt.min(deadline.saturating_duration_since(now));
            self.counter.count(op);
            let failure = match tokio::time::timeout(limit, call()).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(e)) if !e.is_unavailable() => return Err(e),
                Ok(Err(e)) => e,
                Err(_) => StoreError::Unavailable { op, key: key.to_string(), timeout: self.timeout },
            };
            if Instant::now() + pause >= deadline {
                return Err(match failure {
                    // An attempt cut short is reported with the whole budget that was spent.
                    StoreError::Unavailable { .. } => {
                        StoreError::Unavailable { op, key: key.to_string(), timeout: self.timeout }
                    }
                    other => other,
                });
            }
            tracing::debug!("{op} {key} failed, trying again in {pause:?}: {failure}");
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(RETRY_PAUSE_MAX);
        }
    }
}

#[async_trait]
impl Backend for TimedBackend {
    async fn get(&self, key: &Key) -> Result<Option<(Bytes, Version)>, StoreError> {
        self.read("reading", key, || self.inner.get(key)).await
    }

    async fn put(&self, key: &Key, bytes: Bytes, condition: PutCondition) -> Result<Version, StoreError> {
        self.once("writing", key, self.inner.put(key, bytes, condition)).await
    }

    async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        self.once("deleting", key, self.inner.delete(key)).await
    }

    async fn list(&self, prefix: &Key) -> Result<Vec<String>, StoreError> {
        self.read("listing", prefix, || self.inner.list(prefix)).await
    }

    async fn list_dirs(&self, prefix: &Key) -> Result<Vec<String>, StoreError> {
        self.read("listing", prefix, || self.inner.list_dirs(prefix)).await
    }

    async fn list_stamped(&self, prefix: &Key) -> Result<Vec<(String, Stamp)>, StoreError> {
        self.read("listing", prefix, || self.inner.list_stamped(prefix)).await
    }
}
