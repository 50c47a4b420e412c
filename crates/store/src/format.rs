//! The store's format marker, `spawnit-store.json`: which format the store is in, written by
//! which SpawnIt, and when. Every SpawnIt checks it when it opens a store
//! ([`Store::format_open`]):
//!
//! - the same format: nothing to do;
//! - no marker: format 1 (every store written before markers existed), or a new empty store;
//! - an older format: migrated once, under the store-wide lock `spawnit-store.lock.json`, by
//!   the steps of [`crate::migrate`], each idempotent, so a migration interrupted by `kill -9`
//!   resumes where it stopped and ends in the same result; the marker is written last;
//! - a newer format: this SpawnIt is older than the store. It never writes: the handle turns
//!   read-only ([`StoreError::ReadOnly`] on every put and delete, saying which SpawnIt wrote the
//!   store), reads still work. A running SpawnIt re-reads the marker now and then, so an older
//!   server replica stops writing as soon as a newer one has migrated the store.

use std::sync::{Arc, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use spawnit_model::LockInfo;

use crate::error::StoreError;
use crate::key::{Collection, Key};
use crate::lock::{expires_after, hostname, lock_is_stale};
use crate::store::{PutCondition, Store};

/// The format this SpawnIt writes. Format history:
///
/// 1. no marker: every store written before markers existed (Docker objects named
///    `spawnit-<client>-…`);
/// 2. the marker; every service and network spec names its `docker_naming` (specs of format 1
///    keep `v1`, new specs use the injective `v2` names).
pub const FORMAT_CURRENT: u32 = 2;

/// The version of SpawnIt this crate belongs to, as written into the marker.
pub const SPAWNIT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// How long a migration's store-wide lock lasts before another process may take it over (the
/// steps are idempotent compare-and-swap writes, so even two migrations at once are safe).
const MIGRATION_LOCK_TTL: Duration = Duration::from_secs(600);
/// How often a process waiting for another's migration looks again.
const MIGRATION_WAIT_POLL: Duration = Duration::from_millis(500);
/// How often a running SpawnIt re-reads the marker (`SPAWNIT_FORMAT_RECHECK_S` overrides it).
const RECHECK_DEFAULT: Duration = Duration::from_secs(30);

/// The contents of `spawnit-store.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormatMarker {
    pub format: u32,
    /// The SpawnIt version that wrote the marker (e.g. `0.2.0`).
    pub written_by: String,
    pub written_at: DateTime<Utc>,
}

impl FormatMarker {
    /// The marker this SpawnIt writes.
    pub fn current() -> FormatMarker {
        FormatMarker { format: FORMAT_CURRENT, written_by: SPAWNIT_VERSION.to_owned(), written_at: Utc::now() }
    }

    /// Why a SpawnIt that knows formats up to [`FORMAT_CURRENT`] must not write this store.
    pub fn newer_message(&self) -> String {
        format!(
            "this store was written by SpawnIt {} (format {}); this SpawnIt {SPAWNIT_VERSION} knows formats up to \
             {FORMAT_CURRENT}: upgrade this binary. Until then it only reads the store and refuses every change",
            self.written_by, self.format
        )
    }
}

/// What [`Store::format_open`] found and did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FormatOutcome {
    /// The store was already in this SpawnIt's format.
    Current,
    /// An empty store: marked with the current format.
    New,
    /// Migrated from this format (by this process or by another one it waited for).
    Migrated { from: u32 },
    /// A newer format: the handle is read-only.
    Newer(FormatMarker),
}

impl Store {
    /// The store's format marker, `None` when it has none (format 1, or an empty store).
    pub async fn format_marker(&self) -> Result<Option<FormatMarker>, StoreError> {
        Ok(self.get_json::<FormatMarker>(&Key::format_marker()).await?.map(|v| v.value))
    }

    /// The store's format: its marker's, or 1 without a marker.
    pub async fn format(&self) -> Result<u32, StoreError> {
        Ok(self.format_marker().await?.map_or(1, |m| m.format))
    }

    /// Checks the format marker and brings the store to [`FORMAT_CURRENT`] (see the module
    /// documentation). Returns the handle to use from now on (read-only when the store is
    /// newer than this SpawnIt) and what happened. Also starts a background re-check of the
    /// marker, so this handle turns read-only if a newer SpawnIt migrates the store later.
    pub async fn format_open(self) -> Result<(Store, FormatOutcome), StoreError> {
        let outcome = self.format_settle().await?;
        let store = match &outcome {
            FormatOutcome::Newer(marker) => {
                tracing::warn!("store {}: {}", self.location(), marker.newer_message());
                self.read_only(marker.newer_message())
            }
            _ => self,
        };
        store.format_watch();
        Ok((store, outcome))
    }

    async fn format_settle(&self) -> Result<FormatOutcome, StoreError> {
        let mut waiting_logged = false;
        loop {
            let marker = self.format_marker().await?;
            let from = match &marker {
                Some(m) if m.format == FORMAT_CURRENT => return Ok(FormatOutcome::Current),
                Some(m) if m.format > FORMAT_CURRENT => return Ok(FormatOutcome::Newer(m.clone())),
                Some(m) => m.format,
                None => 1,
            };
            if marker.is_none() && self.is_empty().await? {
                match self.put_json(&Key::format_marker(), &FormatMarker::current(), PutCondition::Absent).await {
                    Ok(_) => {
                        tracing::info!("store {}: new store, format {FORMAT_CURRENT}", self.location());
                        return Ok(FormatOutcome::New);
                    }
                    Err(StoreError::Conflict { .. }) => continue,
                    Err(e) => return Err(e),
                }
            }
            match self.store_lock_take().await? {
                Some(lock) => {
                    let result = self.migrate_locked(from).await;
                    if let Err(e) = self.delete(&Key::store_lock()).await {
                        tracing::warn!("store {}: releasing the migration lock {lock} failed: {e}", self.location());
                    }
                    return result.map(|()| FormatOutcome::Migrated { from });
                }
                None => {
                    if !waiting_logged {
                        tracing::info!(
                            "store {}: format {from}, another SpawnIt is migrating it: waiting",
                            self.location()
                        );
                        waiting_logged = true;
                    }
                    tokio::time::sleep(MIGRATION_WAIT_POLL).await;
                    // Loop: the marker tells when the other migration is done.
                }
            }
        }
    }

    /// Whether the store holds nothing SpawnIt wrote (no client, user, token or job).
    async fn is_empty(&self) -> Result<bool, StoreError> {
        if !self.list_dirs(&Key::clients()).await?.is_empty() {
            return Ok(false);
        }
        for collection in [Collection::Users, Collection::Tokens, Collection::Jobs] {
            if !self.list(&Key::collection(collection)).await?.is_empty() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Takes the store-wide lock, or `None` when a live process holds it. A lock left by a
    /// process that died on this host, or expired, is taken over.
    async fn store_lock_take(&self) -> Result<Option<String>, StoreError> {
        let key = Key::store_lock();
        let host = hostname();
        let now = Utc::now();
        let condition = match self.get_json::<LockInfo>(&key).await? {
            None => PutCondition::Absent,
            Some(current) if lock_is_stale(&current.value, now, &host) => {
                tracing::info!(
                    "store {}: taking over the migration lock of pid {} on host {} (gone or expired): resuming \
                     its migration",
                    self.location(),
                    current.value.pid,
                    current.value.host
                );
                PutCondition::Matches(current.version)
            }
            Some(_) => return Ok(None),
        };
        let info = LockInfo {
            job: format!("store-migration-{}", uuid::Uuid::new_v4()),
            operation: "migrate".to_owned(),
            host,
            pid: std::process::id(),
            acquired_at: now,
            expires_at: expires_after(now, MIGRATION_LOCK_TTL),
        };
        match self.put_json(&key, &info, condition).await {
            Ok(_) => Ok(Some(info.job)),
            Err(StoreError::Conflict { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Runs every migration from `from` to [`FORMAT_CURRENT`] under the store lock, writing
    /// the marker after each.
    async fn migrate_locked(&self, from: u32) -> Result<(), StoreError> {
        // Another process may have finished while this one waited for the lock.
        let mut format = self.format().await?;
        if format != from {
            tracing::info!("store {}: already migrated to format {format} by another SpawnIt", self.location());
            return Ok(());
        }
        while format < FORMAT_CURRENT {
            tracing::info!("store {}: migrating from format {format} to {}", self.location(), format + 1);
            crate::migrate::migration_run(self, format).await?;
            format += 1;
            let marker = FormatMarker { format, ..FormatMarker::current() };
            self.put_json(&Key::format_marker(), &marker, PutCondition::Overwrite).await?;
            tracing::info!("store {}: now format {format}", self.location());
        }
        Ok(())
    }

    /// Re-reads the marker every `SPAWNIT_FORMAT_RECHECK_S` seconds (30 by default) while a
    /// clone of this handle lives, and turns every clone read-only once the store is newer.
    fn format_watch(&self) {
        if self.read_only_reason().is_some() || tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let every = std::env::var("SPAWNIT_FORMAT_RECHECK_S")
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|s| *s > 0.0)
            .map_or(RECHECK_DEFAULT, Duration::from_secs_f64);
        let weak: Weak<_> = Arc::downgrade(&self.shared_read_only());
        let reader = self.clone_detached();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(flag) = weak.upgrade() else { return };
                match reader.format_marker().await {
                    Ok(Some(m)) if m.format > FORMAT_CURRENT => {
                        tracing::warn!("store {}: {}", reader.location(), m.newer_message());
                        let _ = flag.set(m.newer_message().into());
                        return;
                    }
                    Ok(_) => {}
                    Err(e) => tracing::debug!("store {}: re-reading the format marker failed: {e}", reader.location()),
                }
            }
        });
    }
}
