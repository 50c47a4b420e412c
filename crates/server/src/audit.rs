//! The audit log: who did what, when and from where — sign-ins, creations and changes, plans,
//! applies, destroys, cancels, tokens and users created or revoked. One record per entry in the
//! store (`audit/<time-ordered id>.json`), so it survives restarts and lists in time order.
//! Entries never hold secrets: only names, actions and targets. Failed sign-ins, which anyone
//! can cause without an account, are aggregated: one entry per address and minute, rewritten
//! with the count, so a flood of attempts cannot fill the store.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use spawnit_model::Id;
use spawnit_store::{Collection, Key, PutCondition, Store, StoreError};

/// One audit entry.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = AuditEntry)]
pub struct AuditRecord {
    pub id: String,
    pub at: DateTime<Utc>,
    /// The user who acted (`-` when unknown, e.g. a failed sign-in of no such user).
    pub user: String,
    /// The client the action concerned.
    pub client: String,
    /// `sign_in`, `sign_in_failed`, `sign_out`, `create`, `change`, `delete`, `plan`, `apply`,
    /// `destroy`, `cancel`, `token_create`, `token_revoke`, `user_create`, `lease`.
    pub action: String,
    /// What was acted on, e.g. `service acme/web`.
    pub target: String,
    /// The caller's address.
    #[schema(value_type = Option<String>)]
    pub ip: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// Writes one entry; a failure to write is logged, never fails the action itself.
pub async fn record(
    store: &Store,
    user: &str,
    client: &str,
    action: &str,
    target: impl Into<String>,
    ip: Option<IpAddr>,
    detail: impl Into<String>,
) {
    let at = Utc::now();
    let suffix = crate::accounts::random_token(8).to_ascii_lowercase();
    let id = format!("{}-{suffix}", at.format("%Y%m%d-%H%M%S-%6f"));
    let entry = AuditRecord {
        id: id.clone(),
        at,
        user: user.to_owned(),
        client: client.to_owned(),
        action: action.to_owned(),
        target: target.into(),
        ip,
        detail: detail.into(),
    };
    let Ok(key_id) = Id::parse(&id) else { return };
    if let Err(e) = store.put_json(&Key::record(Collection::Audit, &key_id), &entry, PutCondition::Absent).await {
        tracing::warn!("cannot write audit entry {id}: {e}");
    }
}

/// Records a failed sign-in from `ip` in that address's one entry of the minute (`tally`, from
/// [`crate::accounts::RateLimit::failed`]): action `sign_in_failed`, the count, the user names
/// tried, and the last reason.
pub async fn sign_in_failed(
    store: &Store,
    tally: &crate::accounts::FailureTally,
    ip: Option<IpAddr>,
    how: &str,
    reason: &str,
) {
    let users = tally.users.join(", ");
    let entry = AuditRecord {
        id: tally.entry_id.clone(),
        at: tally.minute,
        user: tally.users.first().cloned().unwrap_or_else(|| "-".into()),
        client: "-".into(),
        action: "sign_in_failed".into(),
        target: how.to_owned(),
        ip,
        detail: format!(
            "{} failed sign-in(s) from this address in the minute from {}; users tried: {users}; last reason: {}",
            tally.count,
            tally.minute.format("%H:%M UTC"),
            reason.chars().take(300).collect::<String>()
        ),
    };
    let Ok(key_id) = Id::parse(&tally.entry_id) else { return };
    if let Err(e) = store.put_json(&Key::record(Collection::Audit, &key_id), &entry, PutCondition::Overwrite).await {
        tracing::warn!("cannot write audit entry {}: {e}", tally.entry_id);
    }
}

/// The newest `limit` entries, newest first.
pub async fn list(store: &Store, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
    let ids = store.record_ids(Collection::Audit).await?;
    let mut out = Vec::new();
    for id in ids.iter().rev().take(limit) {
        if let Some(v) = store.get_json::<AuditRecord>(&Key::record(Collection::Audit, id)).await? {
            out.push(v.value);
        }
    }
    Ok(out)
}
