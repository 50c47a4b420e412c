//! Where a store lives: a local directory or `s3://bucket[/prefix]`, parsed from the user's
//! `--store` value, plus the options of an S3 store.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::error::StoreError;

/// A store's location, as given by `--store`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreLocation {
    /// A directory on this machine.
    Local(PathBuf),
    /// A bucket and a key prefix inside it (without leading or trailing `/`; may be empty).
    S3 { bucket: String, prefix: String },
}

impl StoreLocation {
    /// The default store: `./spawnit-data`.
    pub const DEFAULT_LOCAL: &'static str = "./spawnit-data";

    /// Parses a path or `s3://bucket[/prefix]`.
    pub fn parse(value: &str) -> Result<StoreLocation, StoreError> {
        let invalid =
            |reason: &str| StoreError::Location { location: value.chars().take(200).collect(), reason: reason.into() };
        if let Some(rest) = value.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if !bucket_is_valid(bucket) {
                return Err(invalid(
                    "the bucket name must be 3 to 63 characters of a-z, 0-9, '.' and '-', starting and ending with a letter or digit",
                ));
            }
            let prefix = prefix.trim_matches('/');
            if !prefix.is_empty() && prefix.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
                return Err(invalid("the prefix must not have empty, '.' or '..' segments"));
            }
            return Ok(StoreLocation::S3 { bucket: bucket.into(), prefix: prefix.into() });
        }
        if value.contains("://") {
            return Err(invalid("expected a directory path or s3://bucket/prefix (no other scheme is supported)"));
        }
        if value.trim().is_empty() {
            return Err(invalid("it is empty: expected a directory path or s3://bucket/prefix"));
        }
        Ok(StoreLocation::Local(PathBuf::from(value)))
    }
}

impl Default for StoreLocation {
    fn default() -> Self {
        StoreLocation::Local(PathBuf::from(StoreLocation::DEFAULT_LOCAL))
    }
}

impl FromStr for StoreLocation {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StoreLocation::parse(s)
    }
}

impl fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreLocation::Local(path) => write!(f, "{}", path.display()),
            StoreLocation::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            StoreLocation::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

fn bucket_is_valid(bucket: &str) -> bool {
    let edge_ok = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    (3..=63).contains(&bucket.len())
        && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && edge_ok(bucket.bytes().next())
        && edge_ok(bucket.bytes().last())
}

/// Static credentials for S3, instead of the standard AWS environment variables.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Credentials").field("access_key_id", &self.access_key_id).finish_non_exhaustive()
    }
}

/// How to reach an S3 store. Whatever is `None` comes from the standard AWS environment
/// variables (`AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, …).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct S3Options {
    pub bucket: String,
    /// Key prefix inside the bucket, without leading or trailing `/`; may be empty.
    pub prefix: String,
    /// An S3-compatible endpoint such as `http://127.0.0.1:9000` (path-style requests are used).
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub credentials: Option<S3Credentials>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_paths_and_s3_urls() {
        assert_eq!(StoreLocation::parse("./data").ok(), Some(StoreLocation::Local("./data".into())));
        assert_eq!(
            StoreLocation::parse("s3://my-bucket").ok(),
            Some(StoreLocation::S3 { bucket: "my-bucket".into(), prefix: String::new() })
        );
        assert_eq!(
            StoreLocation::parse("s3://my-bucket/a/b/").ok(),
            Some(StoreLocation::S3 { bucket: "my-bucket".into(), prefix: "a/b".into() })
        );
        assert_eq!(
            StoreLocation::parse("s3://my-bucket/a/b").map(|l| l.to_string()).ok(),
            Some("s3://my-bucket/a/b".into())
        );
    }

    #[test]
    fn refuses_bad_locations_with_a_reason() {
        for bad in
            ["", "s3://", "s3://Bad_Bucket/x", "s3://ab", "s3://bucket/a//b", "s3://bucket/../x", "gs://bucket/x"]
        {
            let err = StoreLocation::parse(bad).expect_err(bad).to_string();
            assert!(err.contains("is not a store location"), "{bad}: {err}");
        }
    }
}
