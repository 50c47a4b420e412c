//! The storage under a [`Store`](crate::Store): a small trait of six operations with
//! conditional puts, its two implementations, a local directory and S3, and the wrapper that
//! bounds every call of either in time.

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::StoreError;
use crate::key::Key;
use crate::store::{PutCondition, Version};
use crate::watch::Stamp;

pub(crate) mod local;
pub(crate) mod s3;
pub(crate) mod timed;

#[async_trait]
pub(crate) trait Backend: Send + Sync + 'static {
    /// The object at `key` and its version, `None` when absent.
    async fn get(&self, key: &Key) -> Result<Option<(Bytes, Version)>, StoreError>;

    /// Writes `bytes` at `key` if `condition` holds, else fails with [`StoreError::Conflict`].
    async fn put(&self, key: &Key, bytes: Bytes, condition: PutCondition) -> Result<Version, StoreError>;

    /// Deletes `key`; deleting a missing object is fine.
    async fn delete(&self, key: &Key) -> Result<(), StoreError>;

    /// Every object key under the directory `prefix`, at any depth, relative to the store root.
    async fn list(&self, prefix: &Key) -> Result<Vec<String>, StoreError>;

    /// The names of the immediate child directories of `prefix`.
    async fn list_dirs(&self, prefix: &Key) -> Result<Vec<String>, StoreError>;

    /// Every object key under the directory `prefix`, like [`Backend::list`], with its stamp.
    async fn list_stamped(&self, prefix: &Key) -> Result<Vec<(String, Stamp)>, StoreError>;
}
