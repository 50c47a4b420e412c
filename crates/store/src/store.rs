//! [`Store`]: a cheap-to-clone handle on a local or S3 backend, with raw conditional reads and
//! writes of bytes and their typed JSON form. The catalog, spec, state and lock operations are
//! in their own modules as further `impl Store` blocks.

use std::fmt;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::broadcast;

use crate::backend::Backend;
use crate::backend::local::LocalBackend;
use crate::backend::s3::S3Backend;
use crate::backend::timed::{DEFAULT_TIMEOUT, RequestCounter, StoreRequests, TimedBackend};
use crate::error::StoreError;
use crate::key::Key;
use crate::location::{S3Options, StoreLocation};
use crate::watch::{Stamp, StoreWatcher};

/// Keys a [`Store::changes`] receiver may fall behind before it is told it lagged.
const CHANGES_CAPACITY: usize = 4096;

/// An object's version: changes whenever its content changes (a content hash on a local
/// directory, the ETag on S3). Only ever compared, never interpreted.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Version(String);

impl Version {
    pub(crate) fn new(version: impl Into<String>) -> Version {
        Version(version.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// When a write may happen; a write whose condition does not hold fails with
/// [`StoreError::Conflict`] and changes nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PutCondition {
    /// Always.
    Overwrite,
    /// Only if there is no object at the key yet.
    Absent,
    /// Only if the object is still at this version.
    Matches(Version),
}

/// A value read from the store with the version it was read at.
#[derive(Clone, Debug, PartialEq)]
pub struct Versioned<T> {
    pub value: T,
    pub version: Version,
}

/// A handle on the object store. Cloning is cheap and clones share the backend.
///
/// Every call is bounded by the store timeout ([`Store::DEFAULT_TIMEOUT`] unless changed with
/// [`Store::with_timeout`]): a store that does not answer in time gives
/// [`StoreError::Unavailable`], and reads are tried again within that time.
#[derive(Clone)]
pub struct Store {
    /// The timed wrapper around `raw`.
    backend: Arc<dyn Backend>,
    raw: Arc<dyn Backend>,
    timeout: Duration,
    location: Arc<str>,
    /// Why this handle and its clones may not write (a store of a newer format); unset while
    /// they may. Set at most once, never cleared.
    read_only: Arc<OnceLock<Arc<str>>>,
    /// Announces every key written or deleted through this handle and its clones.
    changes: broadcast::Sender<Key>,
    /// Requests sent through this handle and its clones.
    requests: Arc<RequestCounter>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").field("location", &self.location).finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the store at `location`; `s3_endpoint` is an S3-compatible endpoint used for an
    /// `s3://` location (ignored for a directory). S3 region and credentials come from the
    /// standard AWS environment variables. A local directory is created if missing.
    pub fn open(location: &StoreLocation, s3_endpoint: Option<String>) -> Result<Store, StoreError> {
        match location {
            StoreLocation::Local(path) => Store::open_local(path),
            StoreLocation::S3 { bucket, prefix } => Store::open_s3(S3Options {
                bucket: bucket.clone(),
                prefix: prefix.clone(),
                endpoint: s3_endpoint,
                ..S3Options::default()
            }),
        }
    }

    /// Opens (creating it if needed) a store in the directory `root`.
    pub fn open_local(root: impl AsRef<Path>) -> Result<Store, StoreError> {
        let root = root.as_ref();
        let location = StoreLocation::Local(root.to_path_buf()).to_string();
        Ok(Store::over(Arc::new(LocalBackend::open(root)?), location))
    }

    /// Opens an S3 store; what `options` leaves out comes from the AWS environment variables.
    pub fn open_s3(options: S3Options) -> Result<Store, StoreError> {
        let location = StoreLocation::S3 { bucket: options.bucket.clone(), prefix: options.prefix.clone() }.to_string();
        Ok(Store::over(Arc::new(S3Backend::open(&options)?), location))
    }

    fn over(raw: Arc<dyn Backend>, location: String) -> Store {
        let requests = Arc::new(RequestCounter::default());
        Store {
            backend: Arc::new(TimedBackend::new(raw.clone(), DEFAULT_TIMEOUT, requests.clone())),
            requests,
            raw,
            timeout: DEFAULT_TIMEOUT,
            location: location.into(),
            read_only: Default::default(),
            changes: broadcast::channel(CHANGES_CAPACITY).0,
        }
    }

    /// The longest time a store call may take before it fails with
    /// [`StoreError::Unavailable`], when none is configured.
    pub const DEFAULT_TIMEOUT: Duration = DEFAULT_TIMEOUT;

    /// This store with every call bounded by `timeout` (reads tried again within it).
    pub fn with_timeout(self, timeout: Duration) -> Store {
        Store {
            backend: Arc::new(TimedBackend::new(self.raw.clone(), timeout, self.requests.clone())),
            timeout,
            ..self
        }
    }

    /// The requests sent through this handle and its clones so far, by kind.
    pub fn requests(&self) -> StoreRequests {
        self.requests.snapshot()
    }

    /// The store timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Whether the store answers a read now: one attempt, bounded by `limit` (and by the store
    /// timeout), never tried again. For readiness probes, and for answers served from memory
    /// that must still fail while the store does. Reads the small format marker (present or not).
    pub async fn probe(&self, limit: Duration) -> Result<(), StoreError> {
        let key = Key::format_marker();
        let limit = limit.min(self.timeout);
        match tokio::time::timeout(limit, self.raw.get(&key)).await {
            Ok(result) => result.map(|_| ()),
            Err(_) => Err(StoreError::Unavailable { op: "reading", key: key.to_string(), timeout: limit }),
        }
    }

    /// Where the store is, e.g. `./spawnit-data` or `s3://bucket/prefix`.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// This handle, refusing every write and delete with [`StoreError::ReadOnly`] and `reason`
    /// (reads still work). See [`Store::format_open`](crate::format).
    /// Every clone of the handle turns read-only with it.
    pub fn read_only(self, reason: impl Into<String>) -> Store {
        let _ = self.read_only.set(reason.into().into());
        self
    }

    /// Why this handle refuses writes, `None` when it writes.
    pub fn read_only_reason(&self) -> Option<&str> {
        self.read_only.get().map(|r| &**r)
    }

    /// The flag shared by this handle's clones.
    pub(crate) fn shared_read_only(&self) -> Arc<OnceLock<Arc<str>>> {
        self.read_only.clone()
    }

    /// A handle on the same backend with a flag of its own.
    pub(crate) fn clone_detached(&self) -> Store {
        Store {
            backend: self.backend.clone(),
            raw: self.raw.clone(),
            timeout: self.timeout,
            location: self.location.clone(),
            read_only: Default::default(),
            changes: self.changes.clone(),
            requests: self.requests.clone(),
        }
    }

    fn writable(&self) -> Result<(), StoreError> {
        match self.read_only.get() {
            Some(reason) => Err(StoreError::ReadOnly { reason: reason.to_string() }),
            None => Ok(()),
        }
    }

    // ---- raw objects ----

    /// The bytes at `key` and their version, `None` when absent.
    pub async fn get(&self, key: &Key) -> Result<Option<(Bytes, Version)>, StoreError> {
        self.backend.get(key).await
    }

    /// Writes `bytes` at `key` if `condition` holds, returning the new version.
    pub async fn put(&self, key: &Key, bytes: Bytes, condition: PutCondition) -> Result<Version, StoreError> {
        self.writable()?;
        let written = self.backend.put(key, bytes, condition).await;
        // Also when it failed: a write that timed out may still have happened.
        self.changed(key, &written);
        written
    }

    /// Deletes `key`; a missing object is not an error.
    pub async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        self.writable()?;
        let deleted = self.backend.delete(key).await;
        self.changed(key, &deleted);
        deleted
    }

    fn changed<T>(&self, key: &Key, result: &Result<T, StoreError>) {
        if !matches!(result, Err(StoreError::Conflict { .. })) {
            let _ = self.changes.send(key.clone());
        }
    }

    /// The keys written or deleted through this handle and its clones from now on, as they
    /// happen (each write is announced before it returns). Writes of other processes are not
    /// announced: a [`StoreWatcher`](crate::StoreWatcher) notices them. A receiver that falls
    /// more than a few thousand keys behind is told it lagged.
    pub fn changes(&self) -> broadcast::Receiver<Key> {
        self.changes.subscribe()
    }

    /// Every object key under the directory `prefix`, sorted.
    pub async fn list(&self, prefix: &Key) -> Result<Vec<String>, StoreError> {
        self.backend.list(prefix).await
    }

    /// Every object key under the directory `prefix`, sorted, with its stamp (see [`Stamp`]).
    pub async fn list_stamped(&self, prefix: &Key) -> Result<Vec<(String, Stamp)>, StoreError> {
        self.backend.list_stamped(prefix).await
    }

    /// Notices every change under `prefix`, by anyone (see [`StoreWatcher`]).
    pub fn watch(&self, prefix: Key) -> StoreWatcher {
        StoreWatcher::new(self.clone(), prefix)
    }

    /// The names of the immediate child directories of `prefix`, sorted, as stored (not
    /// validated: see [`Store::ids_under`]).
    pub async fn list_dirs(&self, prefix: &Key) -> Result<Vec<String>, StoreError> {
        self.backend.list_dirs(prefix).await
    }

    // ---- JSON objects ----

    /// The JSON value at `key`, `None` when absent; [`StoreError::Corrupt`] names the key when
    /// the object is not the expected JSON.
    pub async fn get_json<T: DeserializeOwned>(&self, key: &Key) -> Result<Option<Versioned<T>>, StoreError> {
        let Some((bytes, version)) = self.get(key).await? else { return Ok(None) };
        let value =
            serde_json::from_slice(&bytes).map_err(|source| StoreError::Corrupt { key: key.to_string(), source })?;
        Ok(Some(Versioned { value, version }))
    }

    /// Writes `value` as pretty JSON at `key` if `condition` holds.
    pub async fn put_json<T: Serialize + ?Sized>(
        &self,
        key: &Key,
        value: &T,
        condition: PutCondition,
    ) -> Result<Version, StoreError> {
        let mut bytes =
            serde_json::to_vec_pretty(value).map_err(|source| StoreError::Encode { key: key.to_string(), source })?;
        bytes.push(b'\n');
        self.put(key, Bytes::from(bytes), condition).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync + Clone>() {}

    #[test]
    fn store_is_send_sync_and_clone() {
        assert_send_sync::<Store>();
    }
}
