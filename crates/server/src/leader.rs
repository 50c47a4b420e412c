//! The leader among the replicas sharing a store: the one that runs the background tasks (drift
//! monitor, lease keeper, autoscaler, cluster monitor), so that each runs exactly once however
//! many replicas there are. Leadership is a lease, `servers/leader.json`, created only if absent
//! and renewed every third of its ttl with a write conditional on the version last written; a
//! lease that expired, or whose holder's process is gone from this host, is taken over with a
//! write conditional on the version read, so of several replicas trying exactly one wins. A
//! leader that fails to renew in time stops its tasks before anyone may take over; one that
//! shuts down deletes the lease, so another replica takes over at its next try.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use spawnit_model::Id;
use spawnit_store::{Collection, Key, PutCondition, Store, StoreError, Version};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::replica::Replica;

/// The leader's lease as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderLease {
    pub replica: String,
    pub host: String,
    pub pid: u32,
    pub since: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// `servers/leader.json`
fn lease_key() -> Key {
    Key::record(Collection::Servers, &Id::parse("leader").expect("a valid id"))
}

/// The current leader's lease, if any replica holds one.
pub async fn leader_lease(store: &Store) -> Result<Option<LeaderLease>, StoreError> {
    Ok(store.get_json::<LeaderLease>(&lease_key()).await?.map(|v| v.value))
}

/// Runs the background tasks while this replica leads.
pub struct Leadership {
    pub store: Store,
    pub replica: Replica,
    pub ttl: Duration,
    pub metrics: std::sync::Arc<Metrics>,
    /// `true` while this replica leads.
    pub leading: watch::Sender<bool>,
}

impl Leadership {
    /// Tries to become the leader every third of the ttl; while leading, runs the tasks `start`
    /// makes (anew for each term, stopped through the token it is given) and renews the lease.
    /// Returns once `stop` is cancelled, the tasks stopped and the lease released.
    pub async fn run(self, stop: CancellationToken, start: impl Fn(CancellationToken) -> JoinSet<()>) {
        let period = (self.ttl / 3).max(Duration::from_millis(50));
        loop {
            let mut version = loop {
                match self.acquire().await {
                    Ok(Some(version)) => break version,
                    Ok(None) => {}
                    Err(e) => tracing::debug!("cannot read the leader's lease: {e}"),
                }
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(period) => {}
                }
            };
            let since = Utc::now();
            tracing::info!("replica {} leads: it runs the background tasks", self.replica);
            self.metrics.leader(true);
            self.leading.send_replace(true);
            let term = stop.child_token();
            let mut tasks = start(term.clone());
            let mut valid_until = tokio::time::Instant::now() + self.ttl;
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(period) => {}
                }
                match self.renew(&version, since).await {
                    Ok(v) => {
                        version = v;
                        valid_until = tokio::time::Instant::now() + self.ttl;
                    }
                    Err(StoreError::Conflict { .. }) => {
                        tracing::warn!(
                            "replica {} lost the leader's lease: it stops the background tasks",
                            self.replica
                        );
                        break;
                    }
                    // Until the lease could have expired, the store may answer again.
                    Err(e) if tokio::time::Instant::now() + period < valid_until => {
                        tracing::warn!("cannot renew the leader's lease, trying again: {e}");
                    }
                    Err(e) => {
                        tracing::warn!(
                            "cannot renew the leader's lease before it ends ({e}): the background tasks stop"
                        );
                        break;
                    }
                }
            }
            term.cancel();
            while tasks.join_next().await.is_some() {}
            self.metrics.leader(false);
            self.leading.send_replace(false);
            if stop.is_cancelled() {
                self.release(&version).await;
                return;
            }
        }
    }

    fn lease(&self, since: DateTime<Utc>) -> LeaderLease {
        let now = Utc::now();
        LeaderLease {
            replica: self.replica.id.clone(),
            host: self.replica.host.clone(),
            pid: self.replica.pid,
            since,
            expires_at: spawnit_store::expires_after(now, self.ttl),
        }
    }

    /// Takes the lease when it is free or stale; `None` while another replica holds it.
    async fn acquire(&self) -> Result<Option<Version>, StoreError> {
        let condition = match self.store.get_json::<LeaderLease>(&lease_key()).await? {
            None => PutCondition::Absent,
            Some(current)
                if current.value.expires_at < Utc::now()
                    || self.replica.sees_gone(&current.value.host, current.value.pid) =>
            {
                PutCondition::Matches(current.version)
            }
            Some(_) => return Ok(None),
        };
        match self.store.put_json(&lease_key(), &self.lease(Utc::now()), condition).await {
            Ok(version) => Ok(Some(version)),
            Err(StoreError::Conflict { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// One write, conditional on the version this replica wrote last.
    async fn renew(&self, version: &Version, since: DateTime<Utc>) -> Result<Version, StoreError> {
        self.store.put_json(&lease_key(), &self.lease(since), PutCondition::Matches(version.clone())).await
    }

    /// Deletes the lease if it is still the one this replica wrote last.
    async fn release(&self, version: &Version) {
        match self.store.get_json::<LeaderLease>(&lease_key()).await {
            Ok(Some(current)) if &current.version == version => {
                if let Err(e) = self.store.delete(&lease_key()).await {
                    tracing::warn!("cannot release the leader's lease (it expires by itself): {e}");
                }
            }
            _ => {}
        }
    }
}
