//! The node monitor's runner: observes the cluster, asks [`crate::monitor::decide`] what to do,
//! and does it. Cleaning a node takes seconds, so each runs in the background (at most one per
//! node) and its outcome comes back as an event of a later check. Dropping the runner aborts
//! the cleanings in progress (the node stays quarantined and is cleaned again by the next one).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use chrono::Utc;
use tokio::task::JoinSet;

use crate::cluster::Cluster;
use crate::error::ClusterError;
use crate::monitor::{Action, ClusterEvent, Memory, MonitorConfig, decide, reason};
use crate::observe::Snapshot;
use crate::view::NodeStatus;

/// What one check saw and did.
#[derive(Clone, Debug, Default)]
pub struct Check {
    pub events: Vec<ClusterEvent>,
    /// Nodes by status (`ready`, `down`, `disconnected`, `unknown`).
    pub nodes_by_status: BTreeMap<String, usize>,
    /// Nodes by use (`pool`, `rented`, `quarantined`).
    pub nodes_by_use: BTreeMap<String, usize>,
    /// Failed actions, for the logs (each is tried again at the next check).
    pub errors: Vec<String>,
    /// How long the check took.
    pub took: std::time::Duration,
    /// Another monitor (another `serve` on the same store) holds the claim: this one observed
    /// nothing and did nothing.
    pub standby: bool,
}

/// The node monitor (see [`crate::monitor`]).
pub struct ClusterMonitor {
    cluster: Cluster,
    /// This monitor's id in the lease book's claim.
    holder: String,
    config: MonitorConfig,
    memory: Memory,
    cleanings: JoinSet<(String, Result<crate::CleanReport, ClusterError>)>,
}

impl ClusterMonitor {
    pub fn new(cluster: Cluster, config: MonitorConfig) -> ClusterMonitor {
        static COUNT: AtomicU64 = AtomicU64::new(0);
        let holder = format!(
            "{}/{}/{}/{}",
            std::env::var("HOSTNAME").unwrap_or_default(),
            std::process::id(),
            Utc::now().timestamp_nanos_opt().unwrap_or_default(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        );
        ClusterMonitor { cluster, holder, config, memory: Memory::default(), cleanings: JoinSet::new() }
    }

    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// One check: unless another monitor holds the claim, the outcomes of finished cleanings,
    /// then observe, decide, act.
    pub async fn check(&mut self) -> Result<Check, ClusterError> {
        let started = Instant::now();
        let mut out = Check::default();
        if !self.cluster.monitor_claim(&self.holder, self.config.claim_ttl).await? {
            // Standing by; when this one takes over it starts afresh, as after a restart.
            self.memory = Memory::default();
            self.cleanings.abort_all();
            return Ok(Check { standby: true, took: started.elapsed(), ..Check::default() });
        }
        while let Some(done) = self.cleanings.try_join_next() {
            let Ok((node_id, result)) = done else { continue };
            self.memory.cleaning.remove(&node_id);
            let at = Utc::now();
            if result.is_err() {
                let retry = chrono::Duration::from_std(crate::monitor::CLEAN_RETRY).unwrap_or_default();
                self.memory.clean_retry_at.insert(node_id.clone(), at + retry);
            } else {
                self.memory.clean_retry_at.remove(&node_id);
            }
            out.events.push(match result {
                Ok(r) => ClusterEvent::NodeCleaned {
                    node_id: r.node_id,
                    hostname: r.hostname,
                    reason: r.reason,
                    clean_s: r.clean_s,
                    at,
                },
                Err(e) => ClusterEvent::NodeCleanFailed { hostname: node_id.clone(), node_id, error: chain(&e), at },
            });
        }
        let snap = self.cluster.snapshot().await?;
        let leases = self.cluster.lease_list(None).await?;
        let now = Utc::now();
        let (events, actions) = decide(&mut self.memory, &snap, &leases, now, &self.config);
        out.events.extend(events);
        for action in actions {
            if let Err(e) = self.act(&snap, action.clone(), &mut out).await {
                out.errors.push(format!("{action:?}: {}", chain(&e)));
            }
        }
        (out.nodes_by_status, out.nodes_by_use) = counts(&snap);
        out.took = started.elapsed();
        Ok(out)
    }

    async fn act(&mut self, snap: &Snapshot, action: Action, out: &mut Check) -> Result<(), ClusterError> {
        let c = &self.cluster;
        match action {
            Action::Enroll { node_id } => c.node_enroll(&node_id).await,
            Action::Relabel { node_id, client } => c.node_label(&node_id, client.as_ref().map(|c| c.as_str())).await,
            Action::Quarantine { node_id, reason } => c.node_quarantine(&node_id, &reason).await,
            Action::Clean { node_id } => {
                if self.memory.cleaning.insert(node_id.clone()) {
                    let cluster = c.clone();
                    self.cleanings.spawn(async move {
                        let r = cluster.node_clean(&node_id).await;
                        (node_id, r)
                    });
                }
                Ok(())
            }
            Action::Warned { node_id, client, before_s } => c.lease_warned(&client, &node_id, &before_s).await,
            Action::Expire { node_id, client } => {
                c.node_quarantine(&node_id, reason::LEASE_EXPIRED).await?;
                c.lease_drop(&client, &node_id).await
            }
            Action::Replace { node_id, client } => match c.lease_replace(&client, &node_id).await {
                Ok(Some(to)) => {
                    let from_hostname = snap.node(&node_id).map(|n| n.hostname.clone()).unwrap_or_default();
                    out.events.push(ClusterEvent::LeaseReplaced {
                        client,
                        from_node: node_id,
                        from_hostname,
                        to_node: to.node_id,
                        to_hostname: to.hostname,
                        at: Utc::now(),
                    });
                    Ok(())
                }
                Ok(None) => Ok(()),
                Err(e) => {
                    if self.memory.replace_failed_first(&node_id) {
                        let hostname = snap.node(&node_id).map(|n| n.hostname.clone()).unwrap_or_default();
                        out.events.push(ClusterEvent::LeaseReplaceFailed {
                            client,
                            node_id,
                            hostname,
                            reason: e.to_string(),
                            at: Utc::now(),
                        });
                    }
                    Err(e)
                }
            },
        }
    }
}

/// Nodes by status, and by what SpawnIt does with them.
fn counts(snap: &Snapshot) -> (BTreeMap<String, usize>, BTreeMap<String, usize>) {
    let mut by_status = BTreeMap::new();
    for status in [NodeStatus::Ready, NodeStatus::Down, NodeStatus::Disconnected, NodeStatus::Unknown] {
        by_status.insert(status.as_str().to_owned(), 0);
    }
    let mut by_use: BTreeMap<String, usize> =
        ["quarantined", "rented", "pool"].into_iter().map(|k| (k.to_owned(), 0)).collect();
    for n in &snap.nodes {
        *by_status.entry(n.status.as_str().to_owned()).or_default() += 1;
        let group = if n.quarantine.is_some() {
            "quarantined"
        } else if n.client.is_some() {
            "rented"
        } else {
            "pool"
        };
        *by_use.entry(group.to_owned()).or_default() += 1;
    }
    (by_status, by_use)
}

/// An error with its sources, one line.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}
