//! One writer per service or network: a `lock.json` object created only if absent.
//!
//! The holder renews the lock's expiry in the background. A lock is stale when it has expired,
//! or when it was taken on this host by a process that no longer exists; a stale lock is taken
//! over with a write conditional on its version, so of several processes racing for it exactly
//! one wins. A job that is cancelled or crashes therefore never leaves a lock behind forever.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use spawnit_model::{LockInfo, OwnerKey};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::error::StoreError;
use crate::key::Key;
use crate::store::{PutCondition, Store, Version};

/// How many times acquiring re-reads the lock after losing a race, before reporting the holder.
const ACQUIRE_ATTEMPTS: usize = 5;
/// How often [`Store::lock_acquire_wait`] tries again.
const WAIT_POLL: Duration = Duration::from_millis(200);
/// How often a release that failed is tried again.
const RELEASE_RETRY: Duration = Duration::from_secs(1);
/// The shortest renewal period, whatever the ttl.
const RENEW_MIN: Duration = Duration::from_millis(20);

/// Why a lock could not be acquired.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Someone else holds it.
    #[error(
        "{owner} is locked by job {} ({}, pid {} on host {}) since {}",
        .holder.job, .holder.operation, .holder.pid, .holder.host,
        .holder.acquired_at.to_rfc3339_opts(SecondsFormat::Secs, true)
    )]
    Held { owner: OwnerKey, holder: LockInfo },

    /// The store failed.
    #[error("locking {owner} failed")]
    Store {
        owner: OwnerKey,
        #[source]
        source: StoreError,
    },
}

/// This host's name, as recorded in the locks it takes.
pub fn hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .map(|name| name.trim().to_owned())
        .find(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Whether process `pid` of this host may still be running. Our own pid is alive (another job
/// of this process holds the lock); without `/proc` every process is assumed alive.
fn pid_alive(pid: u32) -> bool {
    pid == std::process::id() || !Path::new("/proc/self").exists() || Path::new(&format!("/proc/{pid}")).exists()
}

/// Whether `lock` may be taken over at `now` by a process of `host`.
pub(crate) fn lock_is_stale(lock: &LockInfo, now: DateTime<Utc>, host: &str) -> bool {
    lock.expires_at < now || holder_gone(&lock.host, lock.pid, host)
}

/// Whether the holder `pid` on `holder_host` of a lock, claim or lease is known to be gone:
/// only when it ran on this host (`here`) and that process no longer exists. A holder on
/// another host is given until its expiry.
pub fn holder_gone(holder_host: &str, pid: u32, here: &str) -> bool {
    holder_host == here && !pid_alive(pid)
}

/// `now + ttl`, the far future for a ttl too large to add: when a lock, claim or lease taken
/// now for `ttl` ends.
pub fn expires_after(now: DateTime<Utc>, ttl: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(ttl).ok().and_then(|ttl| now.checked_add_signed(ttl)).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

impl Store {
    /// Takes the lock of `owner` for `job` running `operation`, valid for `ttl` and renewed
    /// every `ttl / 3` while the returned guard lives. Fails with [`LockError::Held`] when
    /// another live holder has it.
    pub async fn lock_acquire(
        &self,
        owner: &OwnerKey,
        job: &str,
        operation: &str,
        ttl: Duration,
    ) -> Result<LockGuard, LockError> {
        let store_error = |source| LockError::Store { owner: owner.clone(), source };
        let key = Key::lock(owner);
        let host = hostname();
        for _ in 0..ACQUIRE_ATTEMPTS {
            let now = Utc::now();
            let condition = match self.get_json::<LockInfo>(&key).await.map_err(store_error)? {
                None => PutCondition::Absent,
                Some(current) if lock_is_stale(&current.value, now, &host) => {
                    tracing::info!(
                        "{owner}: taking over the stale lock of job {} (pid {} on host {}, expired at {})",
                        current.value.job,
                        current.value.pid,
                        current.value.host,
                        current.value.expires_at
                    );
                    PutCondition::Matches(current.version)
                }
                Some(current) => return Err(LockError::Held { owner: owner.clone(), holder: current.value }),
            };
            let info = LockInfo {
                job: job.to_owned(),
                operation: operation.to_owned(),
                host: host.clone(),
                pid: std::process::id(),
                acquired_at: now,
                expires_at: expires_after(now, ttl),
            };
            match self.put_json(&key, &info, condition).await {
                Ok(version) => return Ok(LockGuard::start(self.clone(), owner.clone(), info, version, ttl)),
                // Someone else created or took it over meanwhile: look again.
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(store_error(e)),
            }
        }
        match self.get_json::<LockInfo>(&key).await.map_err(store_error)? {
            Some(current) => Err(LockError::Held { owner: owner.clone(), holder: current.value }),
            None => Err(store_error(StoreError::Conflict { key: key.to_string() })),
        }
    }

    /// Like [`lock_acquire`](Store::lock_acquire), but while the lock is held by someone else
    /// tries again every 200 ms for up to `wait`, then reports the holder.
    pub async fn lock_acquire_wait(
        &self,
        owner: &OwnerKey,
        job: &str,
        operation: &str,
        ttl: Duration,
        wait: Duration,
    ) -> Result<LockGuard, LockError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match self.lock_acquire(owner, job, operation, ttl).await {
                Err(LockError::Held { .. }) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + WAIT_POLL)).await;
                }
                result => return result,
            }
        }
    }
}

/// The lock as this holder last wrote it.
#[derive(Clone, Debug)]
struct Held {
    info: LockInfo,
    version: Version,
}

/// A held lock. A background task renews its expiry every `ttl / 3` (with a write conditional
/// on the version it wrote last); if the lock turns out not to be ours any more (taken over
/// after we failed to renew it in time, or deleted), [`lost`](LockGuard::lost) becomes true and
/// [`lost_token`](LockGuard::lost_token) is cancelled: the holder should stop writing.
///
/// Call [`release`](LockGuard::release) when done. Dropping the guard without releasing only
/// stops the renewal: the lock stays until it expires (or, on this host, until this process is
/// gone), then anyone can take it over.
#[derive(Debug)]
pub struct LockGuard {
    store: Store,
    owner: OwnerKey,
    held: Arc<Mutex<Held>>,
    lost: CancellationToken,
    stop: CancellationToken,
    renewal: Option<JoinHandle<()>>,
}

impl LockGuard {
    fn start(store: Store, owner: OwnerKey, info: LockInfo, version: Version, ttl: Duration) -> LockGuard {
        let held = Arc::new(Mutex::new(Held { info, version }));
        let lost = CancellationToken::new();
        let stop = CancellationToken::new();
        let renewal = tokio::spawn(renew(store.clone(), owner.clone(), ttl, held.clone(), lost.clone(), stop.clone()));
        LockGuard { store, owner, held, lost, stop, renewal: Some(renewal) }
    }

    pub fn owner(&self) -> &OwnerKey {
        &self.owner
    }

    /// The lock as last written by this holder.
    pub fn info(&self) -> LockInfo {
        self.held.lock().unwrap_or_else(PoisonError::into_inner).info.clone()
    }

    /// Whether the lock was found to be no longer ours.
    pub fn lost(&self) -> bool {
        self.lost.is_cancelled()
    }

    /// Cancelled when the lock is found to be no longer ours.
    pub fn lost_token(&self) -> CancellationToken {
        self.lost.clone()
    }

    /// Stops renewing and deletes the lock if it is still ours (if it was taken over, the new
    /// holder's lock is left alone).
    ///
    /// When the store fails, the error is returned and a background task keeps trying to
    /// delete the lock until the store answers or the lock expires, whichever comes first: an
    /// outage never leaves the lock beyond its expiry, and usually not that long.
    pub async fn release(mut self) -> Result<(), StoreError> {
        self.stop.cancel();
        if let Some(renewal) = self.renewal.take() {
            // The renewal task only ends between writes once stopped; a panic in it changes nothing here.
            let _ = renewal.await;
        }
        let ours = self.info();
        let result = lock_delete_if_ours(&self.store, &self.owner, &ours).await;
        if let Err(e) = &result {
            tracing::warn!("{}: releasing the lock failed, trying again in the background: {e}", self.owner);
            tokio::spawn(release_retry(self.store.clone(), self.owner.clone(), ours));
        }
        result
    }
}

/// Deletes the lock of `owner` if it is still the one `ours` describes.
async fn lock_delete_if_ours(store: &Store, owner: &OwnerKey, ours: &LockInfo) -> Result<(), StoreError> {
    let key = Key::lock(owner);
    // Not atomic on S3 (no conditional delete): the lock could be taken over between the
    // read and the delete only if it had already expired, i.e. was already lost.
    match store.get_json::<LockInfo>(&key).await? {
        Some(current) if current.value.job == ours.job && current.value.pid == ours.pid => store.delete(&key).await,
        _ => Ok(()),
    }
}

/// Tries to release a lock again every [`RELEASE_RETRY`] until it works or the lock expires
/// (from then on anyone may take it over anyway).
async fn release_retry(store: Store, owner: OwnerKey, ours: LockInfo) {
    while Utc::now() < ours.expires_at {
        tokio::time::sleep(RELEASE_RETRY).await;
        match lock_delete_if_ours(&store, &owner, &ours).await {
            Ok(()) => {
                tracing::info!("{owner}: the lock of job {} is released now", ours.job);
                return;
            }
            Err(e) => tracing::debug!("{owner}: releasing the lock still fails: {e}"),
        }
    }
    tracing::info!("{owner}: the lock of job {} has expired without being released", ours.job);
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if let Some(renewal) = self.renewal.take() {
            renewal.abort();
        }
    }
}

/// Renews the lock every `ttl / 3` until stopped or lost.
async fn renew(
    store: Store,
    owner: OwnerKey,
    ttl: Duration,
    held: Arc<Mutex<Held>>,
    lost: CancellationToken,
    stop: CancellationToken,
) {
    let key = Key::lock(&owner);
    let period = (ttl / 3).max(RENEW_MIN);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(period) => {}
        }
        let Held { mut info, version } = held.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let now = Utc::now();
        if info.expires_at < now {
            tracing::warn!("{owner}: the lock expired before it could be renewed; it may have been taken over");
            lost.cancel();
            return;
        }
        info.expires_at = expires_after(now, ttl);
        match store.put_json(&key, &info, PutCondition::Matches(version)).await {
            Ok(version) => *held.lock().unwrap_or_else(PoisonError::into_inner) = Held { info, version },
            Err(StoreError::Conflict { .. }) => {
                tracing::warn!("{owner}: the lock of job {} is no longer ours", info.job);
                lost.cancel();
                return;
            }
            Err(e) => tracing::warn!("{owner}: renewing the lock failed, trying again: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock(host: &str, pid: u32, expires_at: DateTime<Utc>) -> LockInfo {
        LockInfo {
            job: "j".into(),
            operation: "apply".into(),
            host: host.into(),
            pid,
            acquired_at: expires_at - TimeDelta::seconds(60),
            expires_at,
        }
    }

    #[test]
    fn staleness() {
        let now = Utc::now();
        let later = now + TimeDelta::seconds(30);
        let me = std::process::id();
        assert!(lock_is_stale(&lock("h", me, now - TimeDelta::seconds(1)), now, "h"), "expired");
        assert!(!lock_is_stale(&lock("h", me, later), now, "h"), "our own pid is alive");
        assert!(!lock_is_stale(&lock("other", u32::MAX, later), now, "h"), "another host's pid is not checked");
        assert!(lock_is_stale(&lock("h", u32::MAX, later), now, "h"), "a pid that does not exist here");
    }

    #[test]
    fn held_error_names_holder_and_time() {
        let owner = OwnerKey::service(&"default".parse().expect("id"), &"web".parse().expect("id"));
        let mut holder = lock("h", 4242, Utc::now());
        holder.acquired_at = DateTime::parse_from_rfc3339("2026-11-23T11:00:00Z").expect("time").to_utc();
        holder.job = "6f1c".into();
        assert_eq!(
            LockError::Held { owner, holder }.to_string(),
            "service default/web is locked by job 6f1c (apply, pid 4242 on host h) since 2026-11-23T11:00:00Z"
        );
    }
}
