//! The local-directory backend: one plain file per object under a root directory.
//!
//! Several processes may use the same directory at once (the CLI and a server), so every write
//! and delete holds an exclusive lock on `<root>/.store.lock` (`flock`, which also excludes other
//! writers in the same process) while it checks its condition and replaces the file. A write
//! goes to a temporary file in the target's directory, is fsynced and renamed over the target, so
//! a reader sees the old or the new content, never a mix. Reads take no lock. An object's version
//! is the hex SHA-256 of its content. Names starting with `.` (the lock, temporary files) are
//! never objects. Directories left empty by a delete are removed, as S3 prefixes vanish. An
//! object's stamp (what a [`StoreWatcher`](crate::StoreWatcher) compares) is its file's inode,
//! modification time and size: every write renames a new file over the old one, so it changes
//! without reading the content.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::Backend;
use crate::error::StoreError;
use crate::key::Key;
use crate::store::{PutCondition, Version};
use crate::watch::Stamp;

const LOCK_FILE: &str = ".store.lock";

pub(crate) struct LocalBackend {
    root: PathBuf,
}

impl LocalBackend {
    /// Opens (creating it if needed) the directory `root`.
    pub(crate) fn open(root: &Path) -> Result<LocalBackend, StoreError> {
        fs::create_dir_all(root)
            .map_err(|e| StoreError::Open { location: root.display().to_string(), source: e.into() })?;
        Ok(LocalBackend { root: root.to_path_buf() })
    }

    fn path(&self, key: &Key) -> PathBuf {
        key.as_str().split('/').fold(self.root.clone(), |path, segment| path.join(segment))
    }

    /// Runs blocking file-system work off the async runtime.
    async fn blocking<T, F>(&self, op: &'static str, key: &Key, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Path) -> io::Result<T> + Send + 'static,
    {
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || work(&root))
            .await
            .map_err(|e| StoreError::backend(op, key.as_str(), e))?
            .map_err(|e| StoreError::backend(op, key.as_str(), e))
    }
}

fn version_of(bytes: &[u8]) -> Version {
    let digest = Sha256::digest(bytes);
    Version::new(digest.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

fn read_optional(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// How long a write waits for the store-wide write lock before it gives up. A write holds it for
/// milliseconds; only a process stopped (not killed: `flock` dies with its holder) in the middle
/// of a write keeps it longer. Polling, not a blocking `flock`, so that the blocking thread ends
/// and the process can exit even when the caller's store timeout has already given up on it.
const WRITE_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Holds the store-wide write lock until dropped (closing the file releases it).
fn write_lock(root: &Path) -> io::Result<File> {
    let file = File::options().create(true).truncate(false).read(true).write(true).open(root.join(LOCK_FILE))?;
    let deadline = std::time::Instant::now() + WRITE_LOCK_WAIT;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            Err(fs::TryLockError::WouldBlock) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("another process has held {LOCK_FILE} for more than {WRITE_LOCK_WAIT:?}"),
                ));
            }
            Err(fs::TryLockError::Error(e)) => return Err(e),
        }
    }
}

/// Whether the write may happen; `Ok(false)` when the condition does not hold.
fn condition_holds(path: &Path, condition: &PutCondition) -> io::Result<bool> {
    Ok(match condition {
        PutCondition::Overwrite => true,
        PutCondition::Absent => read_optional(path)?.is_none(),
        PutCondition::Matches(expected) => read_optional(path)?.is_some_and(|bytes| &version_of(&bytes) == expected),
    })
}

/// Writes `bytes` to `path` through a fsynced temporary file and a rename.
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().ok_or_else(|| io::Error::other("an object path has no parent"))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("object");
    fs::create_dir_all(dir)?;
    let temp = dir.join(format!(".{name}.{}.{}.tmp", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed)));
    let written = (|| {
        let mut file = File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temp, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temp);
    }
    written?;
    // Make the rename itself durable (directories can only be opened like this on Unix).
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// Removes `dir` and its parents up to (not including) `root` while they are empty.
fn remove_empty_dirs(root: &Path, mut dir: &Path) {
    while dir != root && dir.starts_with(root) && fs::remove_dir(dir).is_ok() {
        match dir.parent() {
            Some(parent) => dir = parent,
            None => break,
        }
    }
}

fn is_hidden(name: &str) -> bool {
    name.starts_with('.')
}

/// Every file under `dir` (keys relative to the root, `relative` being `dir`'s), with its stamp.
fn list_files(dir: &Path, relative: &str, out: &mut Vec<(String, Stamp)>) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else { continue };
        if is_hidden(&name) {
            continue;
        }
        let key = format!("{relative}/{name}");
        let metadata = match entry.metadata() {
            Ok(metadata) => metadata,
            // Deleted since the directory was read.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if metadata.is_dir() {
            list_files(&entry.path(), &key, out)?;
        } else {
            out.push((key, stamp_of(&metadata)));
        }
    }
    Ok(())
}

/// The inode, modification time (ns) and size of a file.
fn stamp_of(metadata: &fs::Metadata) -> Stamp {
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(metadata);
    #[cfg(not(unix))]
    let inode = 0u64;
    let modified =
        metadata.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
    Stamp::new(format!("{inode:x}-{modified:x}-{:x}", metadata.len()))
}

#[async_trait]
impl Backend for LocalBackend {
    async fn get(&self, key: &Key) -> Result<Option<(Bytes, Version)>, StoreError> {
        let path = self.path(key);
        let bytes = self.blocking("reading", key, move |_| read_optional(&path)).await?;
        Ok(bytes.map(|bytes| {
            let version = version_of(&bytes);
            (Bytes::from(bytes), version)
        }))
    }

    async fn put(&self, key: &Key, bytes: Bytes, condition: PutCondition) -> Result<Version, StoreError> {
        let path = self.path(key);
        let written = self
            .blocking("writing", key, move |root| {
                let _lock = write_lock(root)?;
                if !condition_holds(&path, &condition)? {
                    return Ok(None);
                }
                write_atomically(&path, &bytes)?;
                Ok(Some(version_of(&bytes)))
            })
            .await?;
        written.ok_or_else(|| StoreError::Conflict { key: key.to_string() })
    }

    async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        let path = self.path(key);
        self.blocking("deleting", key, move |root| {
            let _lock = write_lock(root)?;
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e),
            }
            if let Some(dir) = path.parent() {
                remove_empty_dirs(root, dir);
            }
            Ok(())
        })
        .await
    }

    async fn list(&self, prefix: &Key) -> Result<Vec<String>, StoreError> {
        Ok(self.list_stamped(prefix).await?.into_iter().map(|(key, _)| key).collect())
    }

    async fn list_stamped(&self, prefix: &Key) -> Result<Vec<(String, Stamp)>, StoreError> {
        let dir = self.path(prefix);
        let relative = prefix.to_string();
        self.blocking("listing", prefix, move |_| {
            let mut out = Vec::new();
            list_files(&dir, &relative, &mut out)?;
            out.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(out)
        })
        .await
    }

    async fn list_dirs(&self, prefix: &Key) -> Result<Vec<String>, StoreError> {
        let dir = self.path(prefix);
        self.blocking("listing", prefix, move |_| {
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => {
                    return Ok(Vec::new());
                }
                Err(e) => return Err(e),
            };
            let mut names = Vec::new();
            for entry in entries {
                let entry = entry?;
                if !entry.file_type()?.is_dir() {
                    continue;
                }
                if let Ok(name) = entry.file_name().into_string()
                    && !is_hidden(&name)
                {
                    names.push(name);
                }
            }
            names.sort();
            Ok(names)
        })
        .await
    }
}
