//! Whole-node leases: rent, release, extend and list, kept in the store's lease book with
//! compare-and-swap, and the node labels that follow the book.

use std::time::Duration;

use spawnit_model::Id;

use crate::cluster::Cluster;
use crate::error::ClusterError;
use crate::view::{LeaseTarget, LeaseView};

/// The most nodes one rent asks for.
pub const RENT_COUNT_MAX: u32 = 1000;

/// The longest lease or extension: 10 years.
pub const TTL_MAX: Duration = Duration::from_secs(10 * 365 * 86400);

fn not_yet() -> ClusterError {
    ClusterError::Unavailable { reason: "the lease book is not wired yet".into(), source: None }
}

impl Cluster {
    /// Every lease in the book now.
    pub(crate) async fn leases_now(&self) -> Result<Vec<LeaseView>, ClusterError> {
        Ok(Vec::new())
    }

    /// The leases of `client`, or every lease (admins).
    pub async fn lease_list(&self, client: Option<&Id>) -> Result<Vec<LeaseView>, ClusterError> {
        let all = self.leases_now().await?;
        Ok(all.into_iter().filter(|l| client.is_none_or(|c| &l.client == c)).collect())
    }

    /// Rents `count` free nodes to `client` for `ttl`, atomically: either all of them or none
    /// ("only 1 free node, 2 asked" is a conflict). The nodes get the client's label and lose
    /// the pool's, so the client's services are placed on them and nobody else's.
    pub async fn node_rent(&self, client: &Id, count: u32, ttl: Duration) -> Result<Vec<LeaseView>, ClusterError> {
        let _ = (client, count, ttl);
        Err(not_yet())
    }

    /// Ends leases of `client` now: the nodes are quarantined (drained, the client's label
    /// removed) and cleaned by the monitor, then returned to the pool. Answers the leases ended.
    pub async fn lease_release(&self, client: &Id, target: LeaseTarget) -> Result<Vec<LeaseView>, ClusterError> {
        let _ = (client, target);
        Err(not_yet())
    }

    /// Extends leases of `client` by `by`. Answers the leases as extended.
    pub async fn lease_extend(
        &self,
        client: &Id,
        target: LeaseTarget,
        by: Duration,
    ) -> Result<Vec<LeaseView>, ClusterError> {
        let _ = (client, target, by);
        Err(not_yet())
    }
}

impl Cluster {
    /// Records that the warning of the lease of `node_id` was given.
    pub(crate) async fn lease_warned(&self, client: &Id, node_id: &str) -> Result<(), ClusterError> {
        let _ = (client, node_id);
        Err(not_yet())
    }

    /// Drops the lease of `node_id` held by `client` (the node was quarantined first).
    pub(crate) async fn lease_drop(&self, client: &Id, node_id: &str) -> Result<(), ClusterError> {
        let _ = (client, node_id);
        Err(not_yet())
    }

    /// Moves the lease of the failed node `node_id` to a free node, same client, same end.
    /// `None`: the lease is no longer there (already moved or ended).
    pub(crate) async fn lease_replace(&self, client: &Id, node_id: &str) -> Result<Option<LeaseView>, ClusterError> {
        let _ = (client, node_id);
        Err(not_yet())
    }
}
