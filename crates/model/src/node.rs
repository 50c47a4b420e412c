//! Leases of whole cluster nodes: which client rents which Swarm node until when.
//!
//! The [`LeaseBook`] is one object in the store, changed only by read → pure change → write
//! with the version read (compare-and-swap), so two clients never get the same node. The
//! changes here are pure: they take the free nodes and the time as inputs and decide nothing
//! about the cluster; the caller applies the node labels that follow from the book.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Id;

/// The node label naming the client that rents a node (absent on pool nodes).
pub const LABEL_CLIENT: &str = "spawnit.client";
/// The node label of an unrented node that may run pool services (`true`).
pub const LABEL_POOL: &str = "spawnit.pool";
/// The node label of a node SpawnIt keeps out of use until it is clean (value: why).
pub const LABEL_QUARANTINE: &str = "spawnit.quarantine";

/// The most nodes one request may rent, and the longest lease.
pub const MAX_RENT_COUNT: u32 = 100;
pub const MAX_LEASE: Duration = Duration::from_secs(366 * 24 * 3600);

/// One node rented by one client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct NodeLease {
    /// The Swarm node id.
    pub node_id: String,
    /// The node's hostname when it was rented (for people; the id is what counts).
    pub hostname: String,
    #[cfg_attr(feature = "schema", schema(value_type = String))]
    pub client: Id,
    pub started_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// The warnings already published for this lease, as seconds before expiry (so each is
    /// sent once, also across server restarts).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warned: Vec<u64>,
}

/// A node that may be rented: ready, active, not quarantined, not rented.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeCandidate {
    pub node_id: String,
    pub hostname: String,
}

/// Which nodes a lease change applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseTarget {
    /// One node, by id or hostname.
    Node(String),
    /// Every node the client rents.
    All,
}

/// Which node monitor acts on the cluster: several `serve` replicas share one store, and only
/// the one holding this claim observes and acts; the others stand by and take over when it
/// is not renewed in time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorClaim {
    /// The holding monitor's id (random per process).
    pub holder: String,
    pub expires_at: DateTime<Utc>,
}

/// Every lease, by node id, and the node monitor's claim.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseBook {
    #[serde(default)]
    pub leases: BTreeMap<String, NodeLease>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor: Option<MonitorClaim>,
}

/// A lease change that cannot be made; nothing was changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LeaseError {
    #[error("count: must be between 1 and {MAX_RENT_COUNT}, got {0}")]
    Count(u32),
    #[error("ttl: must be positive and at most 366 days")]
    Ttl,
    #[error("count: {asked} node(s) asked, {free} free in the pool")]
    NotEnoughFree { asked: u32, free: usize },
    #[error("node {node:?} is not rented by client {client}")]
    NotRented { node: String, client: Id },
    #[error("client {0} rents no node")]
    NoLease(Id),
}

impl LeaseBook {
    /// The node ids rented by anyone.
    pub fn is_rented(&self, node_id: &str) -> bool {
        self.leases.contains_key(node_id)
    }

    /// The client renting `node_id`, if any.
    pub fn client_of(&self, node_id: &str) -> Option<&Id> {
        self.leases.get(node_id).map(|l| &l.client)
    }

    /// The leases of one client, by node id.
    pub fn of_client<'a>(&'a self, client: &'a Id) -> impl Iterator<Item = &'a NodeLease> + 'a {
        self.leases.values().filter(move |l| &l.client == client)
    }

    /// Rents `count` of the `free` nodes (in the order given) to `client` until `now + ttl`.
    /// Candidates already rented in this book are skipped: the book, not the caller's view of
    /// the cluster, is the truth about who rents what.
    pub fn rent(
        &mut self,
        client: &Id,
        count: u32,
        free: &[NodeCandidate],
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<Vec<NodeLease>, LeaseError> {
        if count == 0 || count > MAX_RENT_COUNT {
            return Err(LeaseError::Count(count));
        }
        let expires_at = expiry(now, ttl)?;
        let free: Vec<&NodeCandidate> = free.iter().filter(|c| !self.is_rented(&c.node_id)).collect();
        if free.len() < count as usize {
            return Err(LeaseError::NotEnoughFree { asked: count, free: free.len() });
        }
        let rented: Vec<NodeLease> = free
            .into_iter()
            .take(count as usize)
            .map(|c| NodeLease {
                node_id: c.node_id.clone(),
                hostname: c.hostname.clone(),
                client: client.clone(),
                started_at: now,
                expires_at,
                warned: Vec::new(),
            })
            .collect();
        for lease in &rented {
            self.leases.insert(lease.node_id.clone(), lease.clone());
        }
        Ok(rented)
    }

    /// Ends the client's leases on `target`; returns them.
    pub fn release(&mut self, client: &Id, target: &LeaseTarget) -> Result<Vec<NodeLease>, LeaseError> {
        let ids = self.targets(client, target)?;
        Ok(ids.iter().filter_map(|id| self.leases.remove(id)).collect())
    }

    /// Pushes the expiry of the client's leases on `target` back by `by`; returns them.
    pub fn extend(&mut self, client: &Id, target: &LeaseTarget, by: Duration) -> Result<Vec<NodeLease>, LeaseError> {
        let ids = self.targets(client, target)?;
        let mut out = Vec::new();
        for id in ids {
            let Some(lease) = self.leases.get_mut(&id) else { continue };
            lease.expires_at = expiry(lease.expires_at, by)?;
            lease.warned.clear();
            out.push(lease.clone());
        }
        Ok(out)
    }

    /// Takes or renews the monitor claim for `holder` when it is free, expired or already
    /// `holder`'s (renewed once a third of `ttl` has passed, so a steady holder does not write
    /// at every check). Returns whether `holder` holds it now.
    pub fn monitor_claim(&mut self, holder: &str, now: DateTime<Utc>, ttl: Duration) -> bool {
        let ttl = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
        match &self.monitor {
            Some(claim) if claim.holder != holder && claim.expires_at > now => false,
            Some(claim) if claim.holder == holder && claim.expires_at - now > ttl * 2 / 3 => true,
            _ => {
                let expires_at = now.checked_add_signed(ttl).unwrap_or(DateTime::<Utc>::MAX_UTC);
                self.monitor = Some(MonitorClaim { holder: holder.to_owned(), expires_at });
                true
            }
        }
    }

    /// The leases whose time is up at `now`.
    pub fn expired(&self, now: DateTime<Utc>) -> Vec<NodeLease> {
        self.leases.values().filter(|l| l.expires_at <= now).cloned().collect()
    }

    fn targets(&self, client: &Id, target: &LeaseTarget) -> Result<Vec<String>, LeaseError> {
        match target {
            LeaseTarget::All => {
                let ids: Vec<String> = self.of_client(client).map(|l| l.node_id.clone()).collect();
                if ids.is_empty() {
                    return Err(LeaseError::NoLease(client.clone()));
                }
                Ok(ids)
            }
            LeaseTarget::Node(node) => self
                .leases
                .values()
                .find(|l| &l.client == client && (&l.node_id == node || &l.hostname == node))
                .map(|l| vec![l.node_id.clone()])
                .ok_or_else(|| LeaseError::NotRented { node: node.clone(), client: client.clone() }),
        }
    }
}

fn expiry(from: DateTime<Utc>, ttl: Duration) -> Result<DateTime<Utc>, LeaseError> {
    if ttl.is_zero() || ttl > MAX_LEASE {
        return Err(LeaseError::Ttl);
    }
    let ttl = chrono::Duration::from_std(ttl).map_err(|_| LeaseError::Ttl)?;
    from.checked_add_signed(ttl).ok_or(LeaseError::Ttl)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> Id {
        s.parse().expect("id")
    }

    fn nodes(n: usize) -> Vec<NodeCandidate> {
        (0..n).map(|i| NodeCandidate { node_id: format!("n{i}"), hostname: format!("host{i}") }).collect()
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn rent_takes_free_nodes_and_never_a_rented_one() {
        let mut book = LeaseBook::default();
        let now = Utc::now();
        let a = book.rent(&id("acme"), 2, &nodes(3), now, HOUR).expect("rent");
        assert_eq!(a.iter().map(|l| l.node_id.as_str()).collect::<Vec<_>>(), ["n0", "n1"]);
        assert_eq!(a[0].expires_at, now + chrono::Duration::hours(1));
        // The caller's stale view still offers n0 and n1: the book skips them.
        let b = book.rent(&id("beta"), 1, &nodes(3), now, HOUR).expect("rent");
        assert_eq!(b[0].node_id, "n2");
        let err = book.rent(&id("beta"), 1, &nodes(3), now, HOUR).expect_err("none left");
        assert_eq!(err, LeaseError::NotEnoughFree { asked: 1, free: 0 });
        assert_eq!(err.to_string(), "count: 1 node(s) asked, 0 free in the pool");
        assert_eq!(book.of_client(&id("acme")).count(), 2);
        assert_eq!(book.client_of("n2"), Some(&id("beta")));
    }

    #[test]
    fn bad_counts_and_ttls_name_the_field_and_change_nothing() {
        let mut book = LeaseBook::default();
        let now = Utc::now();
        assert_eq!(book.rent(&id("acme"), 0, &nodes(1), now, HOUR), Err(LeaseError::Count(0)));
        assert!(book.rent(&id("acme"), 1, &nodes(1), now, Duration::ZERO).unwrap_err().to_string().starts_with("ttl:"));
        assert_eq!(book, LeaseBook::default());
    }

    #[test]
    fn one_monitor_holds_the_claim_until_it_lapses() {
        let mut book = LeaseBook::default();
        let now = Utc::now();
        let ttl = Duration::from_secs(15);
        assert!(book.monitor_claim("a", now, ttl));
        assert!(!book.monitor_claim("b", now, ttl), "a holds it");
        let taken = book.clone();
        assert!(book.monitor_claim("a", now + chrono::Duration::seconds(2), ttl));
        assert_eq!(book, taken, "a fresh claim is not rewritten");
        assert!(book.monitor_claim("a", now + chrono::Duration::seconds(6), ttl));
        assert_eq!(book.monitor.as_ref().map(|c| c.expires_at), Some(now + chrono::Duration::seconds(21)), "renewed");
        assert!(!book.monitor_claim("b", now + chrono::Duration::seconds(20), ttl));
        assert!(book.monitor_claim("b", now + chrono::Duration::seconds(22), ttl), "lapsed: b takes over");
        assert!(!book.monitor_claim("a", now + chrono::Duration::seconds(22), ttl));
    }

    #[test]
    fn release_and_extend_only_touch_the_clients_own_leases() {
        let mut book = LeaseBook::default();
        let now = Utc::now();
        book.rent(&id("acme"), 2, &nodes(2), now, HOUR).expect("rent");
        let err = book.release(&id("beta"), &LeaseTarget::Node("n0".into())).expect_err("not beta's");
        assert_eq!(err, LeaseError::NotRented { node: "n0".into(), client: id("beta") });
        assert_eq!(book.release(&id("beta"), &LeaseTarget::All), Err(LeaseError::NoLease(id("beta"))));
        let extended = book.extend(&id("acme"), &LeaseTarget::Node("host1".into()), HOUR).expect("extend");
        assert_eq!(extended[0].expires_at, now + chrono::Duration::hours(2));
        assert_eq!(book.expired(now + chrono::Duration::minutes(90)).len(), 1);
        let released = book.release(&id("acme"), &LeaseTarget::All).expect("release");
        assert_eq!(released.len(), 2);
        assert!(book.leases.is_empty());
    }
}
