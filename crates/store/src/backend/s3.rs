//! The S3 backend, on the `object_store` crate: conditional puts are S3's `If-None-Match: *`
//! (create only if absent) and `If-Match: <etag>` (replace only if unchanged), and an object's
//! version is its ETag. Works with any S3-compatible server given as an endpoint.
//!
//! The client's own timeouts and retries are kept short (`object_store` by default retries for
//! up to three minutes and waits 30 s per request): the store's timed wrapper decides how long
//! a call may take and which calls are tried again.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::{AmazonS3Builder, S3ConditionalPut};
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, PutMode, PutOptions, PutPayload, RetryConfig, UpdateVersion,
};

use super::Backend;
use crate::error::StoreError;
use crate::key::Key;
use crate::location::S3Options;
use crate::store::{PutCondition, Version};
use crate::watch::Stamp;

/// How long connecting to the S3 server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one request may take, and the client's own retries of it; the store timeout is
/// normally shorter and cuts it first.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

pub(crate) struct S3Backend {
    store: Arc<dyn ObjectStore>,
}

impl S3Backend {
    pub(crate) fn open(options: &S3Options) -> Result<S3Backend, StoreError> {
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&options.bucket)
            .with_conditional_put(S3ConditionalPut::ETagMatch)
            .with_client_options(
                ClientOptions::new().with_connect_timeout(CONNECT_TIMEOUT).with_timeout(REQUEST_TIMEOUT),
            )
            .with_retry(RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: Duration::from_millis(100),
                    max_backoff: Duration::from_secs(1),
                    base: 2.0,
                },
                max_retries: 2,
                retry_timeout: REQUEST_TIMEOUT,
            });
        if let Some(endpoint) = &options.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_virtual_hosted_style_request(false)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        if let Some(region) = &options.region {
            builder = builder.with_region(region);
        }
        if let Some(credentials) = &options.credentials {
            builder = builder
                .with_access_key_id(&credentials.access_key_id)
                .with_secret_access_key(&credentials.secret_access_key);
        }
        let s3 = builder.build().map_err(|e| StoreError::Open { location: location(options), source: e.into() })?;
        let store: Arc<dyn ObjectStore> = if options.prefix.is_empty() {
            Arc::new(s3)
        } else {
            Arc::new(PrefixStore::new(s3, Path::from(options.prefix.as_str())))
        };
        Ok(S3Backend { store })
    }
}

fn location(options: &S3Options) -> String {
    match options.prefix.as_str() {
        "" => format!("s3://{}", options.bucket),
        prefix => format!("s3://{}/{prefix}", options.bucket),
    }
}

fn path(key: &Key) -> Path {
    // Keys are made of ids and fixed names: no segment needs encoding.
    Path::from(key.as_str())
}

fn version(key: &Key, e_tag: Option<String>) -> Result<Version, StoreError> {
    e_tag
        .map(Version::new)
        .ok_or_else(|| StoreError::backend("reading the ETag of", key.as_str(), "the S3 server returned no ETag"))
}

#[async_trait]
impl Backend for S3Backend {
    async fn get(&self, key: &Key) -> Result<Option<(Bytes, Version)>, StoreError> {
        let result = match self.store.get(&path(key)).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(StoreError::backend("reading", key.as_str(), e)),
        };
        let version = version(key, result.meta.e_tag.clone())?;
        let bytes = result.bytes().await.map_err(|e| StoreError::backend("reading", key.as_str(), e))?;
        Ok(Some((bytes, version)))
    }

    async fn put(&self, key: &Key, bytes: Bytes, condition: PutCondition) -> Result<Version, StoreError> {
        let mode = match condition {
            PutCondition::Overwrite => PutMode::Overwrite,
            PutCondition::Absent => PutMode::Create,
            PutCondition::Matches(version) => {
                PutMode::Update(UpdateVersion { e_tag: Some(version.as_str().to_owned()), version: None })
            }
        };
        let options = PutOptions { mode, ..PutOptions::default() };
        match self.store.put_opts(&path(key), PutPayload::from(bytes), options).await {
            Ok(result) => version(key, result.e_tag),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. }
                | object_store::Error::NotFound { .. },
            ) => Err(StoreError::Conflict { key: key.to_string() }),
            Err(e) => Err(StoreError::backend("writing", key.as_str(), e)),
        }
    }

    async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        match self.store.delete(&path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(StoreError::backend("deleting", key.as_str(), e)),
        }
    }

    async fn list(&self, prefix: &Key) -> Result<Vec<String>, StoreError> {
        Ok(self.list_stamped(prefix).await?.into_iter().map(|(key, _)| key).collect())
    }

    async fn list_stamped(&self, prefix: &Key) -> Result<Vec<(String, Stamp)>, StoreError> {
        let objects: Vec<_> = self
            .store
            .list(Some(&path(prefix)))
            .try_collect()
            .await
            .map_err(|e| StoreError::backend("listing", prefix.as_str(), e))?;
        // The ETag changes with the content; a server that lists none still changes the time.
        let mut keys: Vec<(String, Stamp)> = objects
            .into_iter()
            .map(|meta| {
                let stamp = meta.e_tag.unwrap_or_else(|| format!("{}-{}", meta.last_modified.to_rfc3339(), meta.size));
                (meta.location.to_string(), Stamp::new(stamp))
            })
            .collect();
        keys.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(keys)
    }

    async fn list_dirs(&self, prefix: &Key) -> Result<Vec<String>, StoreError> {
        let listing = self
            .store
            .list_with_delimiter(Some(&path(prefix)))
            .await
            .map_err(|e| StoreError::backend("listing", prefix.as_str(), e))?;
        let mut names: Vec<String> =
            listing.common_prefixes.iter().filter_map(|p| p.filename().map(str::to_owned)).collect();
        names.sort();
        Ok(names)
    }
}
