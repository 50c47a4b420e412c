//! Whole-node leases: rent, release, extend and list, kept in the store's lease book
//! (`spawnit_model::node::LeaseBook`, changed only by read → pure change → write with the
//! version read, retried when another writer won), and the node labels that follow the book.
//!
//! Order matters where the cluster and the book could disagree after a crash: a rent writes
//! the book first, then labels the nodes (the monitor relabels a rented node whose label is
//! missing); a release or an end quarantines the node first, then drops the lease (a node with
//! a client's label and no lease is quarantined and cleaned by the monitor). Either way a node
//! never serves a client that does not rent it, and never returns to the pool uncleaned.

use std::time::Duration;

use chrono::{DateTime, Utc};
use spawnit_model::Id;
use spawnit_model::node::{LeaseBook, LeaseError, NodeCandidate, NodeLease};
use spawnit_store::LeaseUpdateError;

use crate::cluster::Cluster;
use crate::error::ClusterError;
use crate::monitor::reason;
use crate::view::{LeaseTarget, LeaseView};

pub use spawnit_model::node::{MAX_LEASE, MAX_RENT_COUNT};

/// A lease as shown at `now`.
pub fn lease_view(l: &NodeLease, now: DateTime<Utc>) -> LeaseView {
    LeaseView {
        node_id: l.node_id.clone(),
        hostname: l.hostname.clone(),
        client: l.client.clone(),
        started_at: l.started_at,
        expires_at: l.expires_at,
        remaining_s: (l.expires_at - now).num_seconds().max(0),
        warned: l.warned.clone(),
    }
}

fn lease_error(e: LeaseError) -> ClusterError {
    match e {
        LeaseError::Count(_) => ClusterError::invalid("count", e.to_string().trim_start_matches("count: ").to_owned()),
        LeaseError::Ttl => ClusterError::invalid("ttl", e.to_string().trim_start_matches("ttl: ").to_owned()),
        LeaseError::NotEnoughFree { asked, free } => ClusterError::conflict(format!(
            "only {free} free node{} in the pool, {asked} asked",
            if free == 1 { "" } else { "s" }
        )),
        LeaseError::NotRented { node, client } => {
            ClusterError::NotFound { what: format!("lease of node {node} by client {client}") }
        }
        LeaseError::NoLease(client) => ClusterError::NotFound { what: format!("leases of client {client}") },
    }
}

fn update_error(e: LeaseUpdateError<ClusterError>) -> ClusterError {
    match e {
        LeaseUpdateError::Refused(e) => e,
        LeaseUpdateError::Store(e) => ClusterError::Store(e),
    }
}

impl Cluster {
    /// Every lease in the book now.
    pub(crate) async fn leases_now(&self) -> Result<Vec<LeaseView>, ClusterError> {
        let now = Utc::now();
        let book = self.store.lease_book().await?.map(|v| v.value).unwrap_or_default();
        Ok(book.leases.values().map(|l| lease_view(l, now)).collect())
    }

    /// Changes the book with `change` (compare-and-swap, retried on a race).
    async fn book_update<T>(
        &self,
        change: impl FnMut(&mut LeaseBook) -> Result<T, ClusterError>,
    ) -> Result<T, ClusterError> {
        self.store.lease_book_update(change).await.map_err(update_error)
    }

    /// Takes or renews the node monitor's claim for `holder`; whether it holds it (see
    /// [`LeaseBook::monitor_claim`]: one monitor acts, the other `serve` replicas stand by).
    pub(crate) async fn monitor_claim(&self, holder: &str, ttl: Duration) -> Result<bool, ClusterError> {
        self.book_update(|book| Ok(book.monitor_claim(holder, Utc::now(), ttl))).await
    }

    /// The leases of `client`, or every lease (admins), by expiry.
    pub async fn lease_list(&self, client: Option<&Id>) -> Result<Vec<LeaseView>, ClusterError> {
        let mut all: Vec<LeaseView> =
            self.leases_now().await?.into_iter().filter(|l| client.is_none_or(|c| &l.client == c)).collect();
        all.sort_by(|a, b| (a.expires_at, &a.hostname).cmp(&(b.expires_at, &b.hostname)));
        Ok(all)
    }

    /// The nodes free to rent now, in the order they are taken (by hostname).
    async fn candidates(&self) -> Result<Vec<NodeCandidate>, ClusterError> {
        let mut free: Vec<NodeCandidate> = self
            .node_list()
            .await?
            .into_iter()
            .filter(|n| n.is_free())
            .map(|n| NodeCandidate { node_id: n.id, hostname: n.hostname })
            .collect();
        free.sort_by(|a, b| a.hostname.cmp(&b.hostname));
        Ok(free)
    }

    /// Rents `count` free nodes to `client` for `ttl`, atomically: either all of them or none
    /// ("only 1 free node in the pool, 2 asked" is a conflict). Free: a Ready worker, active,
    /// not quarantined, not rented (managers are never rented: see [`crate::NodeInfo::is_free`]).
    /// The nodes get the client's label and lose the pool's, so the client's services are
    /// placed on them and nobody else's.
    pub async fn node_rent(&self, client: &Id, count: u32, ttl: Duration) -> Result<Vec<LeaseView>, ClusterError> {
        if count == 0 || count > MAX_RENT_COUNT {
            return Err(lease_error(LeaseError::Count(count)));
        }
        if ttl.is_zero() || ttl > MAX_LEASE {
            return Err(lease_error(LeaseError::Ttl));
        }
        let free = self.candidates().await?;
        let now = Utc::now();
        let leases = self.book_update(|book| book.rent(client, count, &free, now, ttl).map_err(lease_error)).await?;
        for l in &leases {
            if let Err(e) = self.node_label(&l.node_id, Some(client.as_str())).await {
                // The lease holds; the monitor puts the label on at its next check.
                tracing::warn!("labelling node {} for client {client} failed: {e}", l.hostname);
            }
        }
        Ok(leases.iter().map(|l| lease_view(l, now)).collect())
    }

    /// Ends leases of `client` now: each node is quarantined first (drained, the client's
    /// label removed), then its lease dropped; the monitor cleans it (the client's tasks,
    /// volumes and, when it has no service left, secrets gone) and returns it to the pool.
    /// Answers the leases ended.
    pub async fn lease_release(&self, client: &Id, target: LeaseTarget) -> Result<Vec<LeaseView>, ClusterError> {
        if let LeaseTarget::Node(node) = &target {
            crate::cluster::node_ref(node)?;
        }
        // What would be released (refusals change nothing).
        let mut book = self.store.lease_book().await?.map(|v| v.value).unwrap_or_default();
        let ending = book.release(client, &target).map_err(lease_error)?;
        for l in &ending {
            self.node_quarantine(&l.node_id, reason::RELEASED).await?;
        }
        let ids: Vec<String> = ending.iter().map(|l| l.node_id.clone()).collect();
        let released = self
            .book_update(|book| {
                let mut mine = Vec::new();
                for id in &ids {
                    if book.client_of(id) == Some(client) {
                        mine.extend(book.leases.remove(id));
                    }
                }
                Ok(mine)
            })
            .await?;
        let now = Utc::now();
        Ok(released.iter().map(|l| lease_view(l, now)).collect())
    }

    /// Extends leases of `client` by `by` (their warnings are given again). Answers the leases
    /// as extended.
    pub async fn lease_extend(
        &self,
        client: &Id,
        target: LeaseTarget,
        by: Duration,
    ) -> Result<Vec<LeaseView>, ClusterError> {
        if let LeaseTarget::Node(node) = &target {
            crate::cluster::node_ref(node)?;
        }
        let extended = self.book_update(|book| book.extend(client, &target, by).map_err(lease_error)).await?;
        let now = Utc::now();
        Ok(extended.iter().map(|l| lease_view(l, now)).collect())
    }

    /// Records that the warnings `before_s` of the lease of `node_id` were given.
    pub(crate) async fn lease_warned(&self, client: &Id, node_id: &str, before_s: &[u64]) -> Result<(), ClusterError> {
        self.book_update(|book| {
            if let Some(l) = book.leases.get_mut(node_id).filter(|l| &l.client == client) {
                for s in before_s {
                    if !l.warned.contains(s) {
                        l.warned.push(*s);
                    }
                }
            }
            Ok(())
        })
        .await
    }

    /// Drops the lease of `node_id` held by `client` (the node was quarantined first).
    pub(crate) async fn lease_drop(&self, client: &Id, node_id: &str) -> Result<(), ClusterError> {
        self.book_update(|book| {
            if book.client_of(node_id) == Some(client) {
                book.leases.remove(node_id);
            }
            Ok(())
        })
        .await
    }

    /// Moves the lease of the failed node `node_id` to a free node: same client, same end.
    /// `None`: the lease is no longer there (already moved or ended). No free node: a conflict,
    /// and the lease stays where it is.
    pub(crate) async fn lease_replace(&self, client: &Id, node_id: &str) -> Result<Option<LeaseView>, ClusterError> {
        let free = self.candidates().await?;
        let now = Utc::now();
        let moved = self
            .book_update(|book| {
                let Some(old) = book.leases.get(node_id).filter(|l| &l.client == client).cloned() else {
                    return Ok(None);
                };
                let Ok(left) = (old.expires_at - now).to_std() else { return Ok(None) };
                if left.is_zero() {
                    return Ok(None);
                }
                book.leases.remove(node_id);
                let mut new = book.rent(client, 1, &free, now, left).map_err(|e| match e {
                    LeaseError::NotEnoughFree { .. } => ClusterError::conflict(format!(
                        "no free node in the pool to replace node {} of client {client}",
                        old.hostname
                    )),
                    e => lease_error(e),
                })?;
                // Exactly the old end (rent computed it from `now + left`).
                let lease = new.remove(0);
                if let Some(l) = book.leases.get_mut(&lease.node_id) {
                    l.expires_at = old.expires_at;
                    l.warned = old.warned.clone();
                }
                Ok(Some(NodeLease { expires_at: old.expires_at, warned: old.warned, ..lease }))
            })
            .await?;
        let Some(lease) = moved else { return Ok(None) };
        self.node_label(&lease.node_id, Some(client.as_str())).await?;
        Ok(Some(lease_view(&lease, now)))
    }
}
