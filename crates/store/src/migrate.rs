//! Migrations of the store's format, one per format change, run by
//! [`Store::format_open`](crate::Store::format_open) under the store-wide lock.
//!
//! Each migration is a list of per-object steps that work on the stored JSON (not on today's
//! model types, which may have moved on), each idempotent: a step that finds its object
//! already migrated does nothing, and every write is conditional on the version read, so a
//! migration interrupted at any point (even by `kill -9`) resumes and ends in the same result.
//! Each step is logged at `info`.
//!
//! | from | to | change |
//! | --- | --- | --- |
//! | 1 | 2 | every service and network spec names its Docker naming: specs written before format 2 keep the old `spawnit-<client>-…` names (`"docker_naming": "v1"`), since Docker cannot rename volumes or networks and a service's containers mount its volumes by name |
//!
//! Test hook: `SPAWNIT_MIGRATION_STEP_DELAY_MS` makes every step wait that long after its
//! write, so a test can kill the process between two steps.

use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use spawnit_model::OwnerKey;

use crate::error::StoreError;
use crate::key::Key;
use crate::store::{PutCondition, Store};

/// Runs the migration from format `from` to `from + 1`.
pub(crate) async fn migration_run(store: &Store, from: u32) -> Result<(), StoreError> {
    match from {
        1 => to_2_docker_naming(store).await,
        other => Err(StoreError::Format(format!("no migration from store format {other} (this SpawnIt knows 1 to 2)"))),
    }
}

fn step_delay() -> Option<Duration> {
    let ms: u64 = std::env::var("SPAWNIT_MIGRATION_STEP_DELAY_MS").ok()?.parse().ok()?;
    Some(Duration::from_millis(ms))
}

/// Format 1 → 2: every spec without `docker_naming` gets `"v1"`.
async fn to_2_docker_naming(store: &Store) -> Result<(), StoreError> {
    let mut owners = Vec::new();
    for client in store.client_list().await? {
        for service in store.ids_under(&Key::services(&client)).await? {
            owners.push(OwnerKey::service(&client, &service));
        }
        for network in store.ids_under(&Key::networks(&client)).await? {
            owners.push(OwnerKey::network(&client, &network));
        }
    }
    let total = owners.len();
    for (n, owner) in owners.iter().enumerate() {
        let changed = spec_naming_pin(store, owner).await?;
        let what = match changed {
            Some(true) => "keeps its Docker names of format 1 (docker_naming v1)",
            Some(false) => "already migrated",
            None => "has no spec: nothing to do",
        };
        tracing::info!(
            step = n + 1,
            total,
            "migration 1→2, step {}/{total}: {owner} {what} (objects named {})",
            n + 1,
            v1_names(owner)
        );
        if changed == Some(true)
            && let Some(delay) = step_delay()
        {
            tokio::time::sleep(delay).await;
        }
    }
    Ok(())
}

/// The old names of an owner's objects, for the log.
fn v1_names(owner: &OwnerKey) -> String {
    match &owner.owner {
        spawnit_model::Owner::Service(s) => format!("spawnit-{}-{s}-…", owner.client),
        spawnit_model::Owner::Network(n) => format!("spawnit-{}-{n}", owner.client),
    }
}

/// Writes `"docker_naming": "v1"` into the owner's spec when it has none: `Some(true)` when it
/// did, `Some(false)` when the spec already names one, `None` without a spec.
async fn spec_naming_pin(store: &Store, owner: &OwnerKey) -> Result<Option<bool>, StoreError> {
    let key = Key::spec(owner);
    loop {
        let Some((bytes, version)) = store.get(&key).await? else { return Ok(None) };
        let mut spec: Value =
            serde_json::from_slice(&bytes).map_err(|source| StoreError::Corrupt { key: key.to_string(), source })?;
        let Some(fields) = spec.as_object_mut() else {
            return Err(StoreError::Format(format!("{key} is not a JSON object: cannot migrate it")));
        };
        if fields.contains_key("docker_naming") {
            return Ok(Some(false));
        }
        fields.insert("docker_naming".to_owned(), Value::String("v1".to_owned()));
        let mut out =
            serde_json::to_vec_pretty(&spec).map_err(|source| StoreError::Encode { key: key.to_string(), source })?;
        out.push(b'\n');
        match store.put(&key, Bytes::from(out), PutCondition::Matches(version)).await {
            Ok(_) => return Ok(Some(true)),
            // Changed meanwhile (by another migration or a writer): read it again.
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
}
