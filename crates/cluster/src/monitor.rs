//! The node monitor's decisions: pure functions over the previous [`Memory`] and a new
//! [`Snapshot`] of the cluster (plus the time), returning the [`ClusterEvent`]s to publish and
//! the [`Action`]s to take. The runner that observes, acts and cleans is [`crate::runner`].
//!
//! The rules, each one idempotent so a restarted server (empty memory) picks up where the last
//! one stopped, because the node labels carry what must survive:
//! - a node with no SpawnIt label joins the pool (`spawnit.pool=true`);
//! - a node seen not Ready and not yet quarantined: `node_down` (the services whose tasks were
//!   on it are `degraded`), drained and labelled `spawnit.quarantine=down` at once, so nothing is
//!   scheduled on it when it comes back; a rented one is replaced by a free node for the same
//!   client until its lease ends;
//! - a node Ready again with `spawnit.quarantine=down`: `node_returned`, relabelled `returned`;
//!   a Ready node with any quarantine is cleaned (the runner), then returns to the pool;
//! - a degraded service running all its desired replicas again: `healed` with the seconds since
//!   its node went down; a service with a task Swarm cannot place: `unplaced` with Swarm's reason;
//! - a lease within one of `lease_warnings` of its end: `node_lease_warning` (each once,
//!   recorded in the book);
//!   a lease over: `lease_expired`, the node quarantined (`lease_expired`), cleaned, returned;
//! - a node whose labels disagree with the book (a rent whose labelling failed) is relabelled;
//! - a cleaning that failed is tried again after [`CLEAN_RETRY`].
//!
//! Swarm does not move tasks back onto a node that returns, and SpawnIt does not force it
//! either (a forced update restarts every replica of a service): a cleaned node takes new tasks
//! as services are created, scaled, updated or lose another node.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use spawnit_model::Id;

use crate::observe::Snapshot;
use crate::view::{LABEL_CLIENT, LABEL_POOL, LABEL_QUARANTINE, LeaseView, NodeInfo, NodeStatus};

/// Quarantine reasons (the value of the `spawnit.quarantine` label).
pub mod reason {
    /// The node went down; set at once so it is drained when it comes back.
    pub const DOWN: &str = "down";
    /// The node came back after being down.
    pub const RETURNED: &str = "returned";
    /// Its lease was released.
    pub const RELEASED: &str = "released";
    /// Its lease ended.
    pub const LEASE_EXPIRED: &str = "lease_expired";
}

/// How long after a failed cleaning a node is cleaned again.
pub const CLEAN_RETRY: Duration = Duration::from_secs(30);

/// What the monitor publishes. `client` is the client concerned (a rented node's, a service's
/// owner), `None` for what only admins see.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClusterEvent {
    /// A node the monitor had not seen joined the pool.
    NodeJoined { node_id: String, hostname: String, at: DateTime<Utc> },
    /// A node is no longer Ready (Swarm marks it down after missed heartbeats).
    NodeDown { node_id: String, hostname: String, status: NodeStatus, client: Option<Id>, at: DateTime<Utc> },
    /// A node that was down is Ready again: quarantined until cleaned.
    NodeReturned { node_id: String, hostname: String, down_s: Option<f64>, at: DateTime<Utc> },
    /// A quarantined node was cleaned and returned to the pool.
    NodeCleaned { node_id: String, hostname: String, reason: String, clean_s: f64, at: DateTime<Utc> },
    /// Cleaning a node failed (it stays quarantined; tried again later).
    NodeCleanFailed { node_id: String, hostname: String, error: String, at: DateTime<Utc> },
    /// A service lost running tasks with a node.
    #[serde(rename = "degraded")]
    ServiceDegraded {
        service_id: String,
        service: String,
        client: Option<Id>,
        spawnit_service: Option<String>,
        node_id: String,
        running: u64,
        desired: u64,
        at: DateTime<Utc>,
    },
    /// A degraded service runs all its desired replicas again.
    #[serde(rename = "healed")]
    ServiceHealed {
        service_id: String,
        service: String,
        client: Option<Id>,
        spawnit_service: Option<String>,
        /// Seconds from the node's detected failure to all replicas running.
        heal_s: f64,
        at: DateTime<Utc>,
    },
    /// A service has a task Swarm cannot place.
    #[serde(rename = "unplaced")]
    ServiceUnplaced {
        service_id: String,
        service: String,
        client: Option<Id>,
        spawnit_service: Option<String>,
        reason: String,
        at: DateTime<Utc>,
    },
    /// A rented node failed: another node was rented to its client until the same end.
    LeaseReplaced {
        client: Id,
        from_node: String,
        from_hostname: String,
        to_node: String,
        to_hostname: String,
        at: DateTime<Utc>,
    },
    /// A rented node failed and no free node could replace it (tried again every check).
    LeaseReplaceFailed { client: Id, node_id: String, hostname: String, reason: String, at: DateTime<Utc> },
    /// A node lease ends soon.
    NodeLeaseWarning {
        client: Id,
        node_id: String,
        hostname: String,
        expires_at: DateTime<Utc>,
        remaining_s: i64,
        at: DateTime<Utc>,
    },
    /// A node lease ended: the node is quarantined, cleaned and returned.
    NodeLeaseExpired { client: Id, node_id: String, hostname: String, at: DateTime<Utc> },
}

impl ClusterEvent {
    /// The client the event concerns; `None`: admins only.
    pub fn client(&self) -> Option<&Id> {
        match self {
            ClusterEvent::NodeDown { client, .. }
            | ClusterEvent::ServiceDegraded { client, .. }
            | ClusterEvent::ServiceHealed { client, .. }
            | ClusterEvent::ServiceUnplaced { client, .. } => client.as_ref(),
            ClusterEvent::LeaseReplaced { client, .. }
            | ClusterEvent::LeaseReplaceFailed { client, .. }
            | ClusterEvent::NodeLeaseWarning { client, .. }
            | ClusterEvent::NodeLeaseExpired { client, .. } => Some(client),
            ClusterEvent::NodeJoined { .. }
            | ClusterEvent::NodeReturned { .. }
            | ClusterEvent::NodeCleaned { .. }
            | ClusterEvent::NodeCleanFailed { .. } => None,
        }
    }

    /// The event's name on `/api/events`.
    pub fn name(&self) -> &'static str {
        match self {
            ClusterEvent::NodeJoined { .. } => "node_joined",
            ClusterEvent::NodeDown { .. } => "node_down",
            ClusterEvent::NodeReturned { .. } => "node_returned",
            ClusterEvent::NodeCleaned { .. } => "node_cleaned",
            ClusterEvent::NodeCleanFailed { .. } => "node_clean_failed",
            ClusterEvent::ServiceDegraded { .. } => "degraded",
            ClusterEvent::ServiceHealed { .. } => "healed",
            ClusterEvent::ServiceUnplaced { .. } => "unplaced",
            ClusterEvent::LeaseReplaced { .. } => "lease_replaced",
            ClusterEvent::LeaseReplaceFailed { .. } => "lease_replace_failed",
            ClusterEvent::NodeLeaseWarning { .. } => "node_lease_warning",
            ClusterEvent::NodeLeaseExpired { .. } => "node_lease_expired",
        }
    }
}

/// What the runner does for a decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Label the node `spawnit.pool=true`.
    Enroll { node_id: String },
    /// Drain the node and label it `spawnit.quarantine=<reason>` (its client and pool labels
    /// removed; the former client kept as `spawnit.quarantine.client`).
    Quarantine { node_id: String, reason: String },
    /// Clean the quarantined node and return it to the pool.
    Clean { node_id: String },
    /// Move the lease of the failed node to a free node (same client, same end).
    Replace { node_id: String, client: Id },
    /// Record in the book that the lease's warnings `before_s` (seconds before expiry) were given.
    Warned { node_id: String, client: Id, before_s: Vec<u64> },
    /// End the lease: quarantine the node (`lease_expired`), then drop the lease.
    Expire { node_id: String, client: Id },
    /// Make the node's labels follow the book: the client's label (rented) or the pool's.
    Relabel { node_id: String, client: Option<Id> },
}

/// The monitor's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MonitorConfig {
    /// How long before a node lease ends warnings are given (each once).
    pub lease_warnings: Vec<Duration>,
    /// How long the acting monitor's claim lasts without renewal: when its server dies, a
    /// standby `serve` replica takes over after at most this long.
    pub claim_ttl: Duration,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            lease_warnings: vec![Duration::from_secs(3600), Duration::from_secs(300)],
            claim_ttl: Duration::from_secs(15),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
struct Degraded {
    since: DateTime<Utc>,
}

/// What the monitor remembers between two checks (lost on restart: the labels carry the rest).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Memory {
    /// Whether a check ran (the first one only learns: no `node_joined` for existing nodes).
    started: bool,
    /// The nodes' status at the last check.
    status: BTreeMap<String, NodeStatus>,
    /// The nodes seen Ready at least once.
    ready_once: BTreeSet<String>,
    /// When each node was detected down.
    down_at: BTreeMap<String, DateTime<Utc>>,
    /// The nodes each service had wanted tasks on at the last check.
    service_nodes: BTreeMap<String, BTreeSet<String>>,
    degraded: BTreeMap<String, Degraded>,
    /// The last `unplaced` reason published per service.
    unplaced: BTreeMap<String, String>,
    /// Nodes whose failed replacement was already published.
    replace_failed: BTreeSet<String>,
    /// Nodes being cleaned now (the runner sets and clears it).
    pub cleaning: BTreeSet<String>,
    /// When a node whose cleaning failed is tried again (the runner sets it).
    pub clean_retry_at: BTreeMap<String, DateTime<Utc>>,
}

impl Memory {
    /// Publishes at most once that replacing the lease of `node_id` failed.
    pub fn replace_failed_first(&mut self, node_id: &str) -> bool {
        self.replace_failed.insert(node_id.to_owned())
    }

    /// The services currently degraded.
    pub fn degraded(&self) -> impl Iterator<Item = &str> {
        self.degraded.keys().map(String::as_str)
    }
}

fn has_spawnit_label(n: &NodeInfo) -> bool {
    [LABEL_POOL, LABEL_CLIENT, LABEL_QUARANTINE].iter().any(|l| n.labels.contains_key(*l))
}

/// One check: the events and actions for `snap` after `memory`, at `now`; updates `memory`.
pub fn decide(
    memory: &mut Memory,
    snap: &Snapshot,
    leases: &[LeaseView],
    now: DateTime<Utc>,
    config: &MonitorConfig,
) -> (Vec<ClusterEvent>, Vec<Action>) {
    let mut events = Vec::new();
    let mut actions = Vec::new();
    let lease_of = |id: &str| leases.iter().find(|l| l.node_id == id);

    for n in &snap.nodes {
        // A node that was Ready once (since this monitor started) and is now down or
        // disconnected failed; a joining node (unknown, or down before it was ever Ready) did
        // not, and neither does every node after a manager restart (unknown for a moment).
        let lost = matches!(n.status, NodeStatus::Down | NodeStatus::Disconnected)
            && (memory.ready_once.contains(&n.id) || !memory.started || n.quarantine.is_some());
        let lease = lease_of(&n.id);
        let quarantine = n.quarantine.as_deref();
        if n.status == NodeStatus::Ready {
            let returned = quarantine == Some(reason::DOWN) || memory.down_at.contains_key(&n.id);
            if returned {
                let down_s = memory.down_at.remove(&n.id).map(|at| (now - at).num_milliseconds() as f64 / 1000.0);
                events.push(ClusterEvent::NodeReturned {
                    node_id: n.id.clone(),
                    hostname: n.hostname.clone(),
                    down_s,
                    at: now,
                });
                actions.push(Action::Quarantine { node_id: n.id.clone(), reason: reason::RETURNED.to_owned() });
            }
            if quarantine.is_some() || returned {
                let waiting = memory.clean_retry_at.get(&n.id).is_some_and(|at| now < *at);
                if !memory.cleaning.contains(&n.id) && !waiting {
                    actions.push(Action::Clean { node_id: n.id.clone() });
                }
            } else if !has_spawnit_label(n) && lease.is_none() {
                if memory.started && !memory.ready_once.contains(&n.id) {
                    events.push(ClusterEvent::NodeJoined {
                        node_id: n.id.clone(),
                        hostname: n.hostname.clone(),
                        at: now,
                    });
                }
                actions.push(Action::Enroll { node_id: n.id.clone() });
            } else {
                let label = n.labels.get(LABEL_CLIENT).map(String::as_str);
                let pool = n.labels.get(LABEL_POOL).map(String::as_str) == Some("true");
                match lease {
                    Some(l) if label != Some(l.client.as_str()) || pool => {
                        actions.push(Action::Relabel { node_id: n.id.clone(), client: Some(l.client.clone()) })
                    }
                    // A client label without a lease: the lease ended elsewhere; clean first.
                    None if label.is_some() => {
                        actions.push(Action::Quarantine { node_id: n.id.clone(), reason: reason::RELEASED.to_owned() })
                    }
                    _ => {}
                }
            }
        } else if lost && quarantine.is_none_or(|q| q != reason::DOWN) {
            // Lost and not yet quarantined as down: detected now.
            if !memory.down_at.contains_key(&n.id) {
                memory.down_at.insert(n.id.clone(), now);
                events.push(ClusterEvent::NodeDown {
                    node_id: n.id.clone(),
                    hostname: n.hostname.clone(),
                    status: n.status,
                    client: lease.map(|l| l.client.clone()),
                    at: now,
                });
                for s in &snap.services {
                    let was_here =
                        memory.service_nodes.get(&s.id).is_some_and(|ns| ns.contains(&n.id)) || s.nodes.contains(&n.id);
                    if let (true, Some(desired)) = (was_here, s.desired) {
                        memory.degraded.entry(s.id.clone()).or_insert(Degraded { since: now });
                        events.push(ClusterEvent::ServiceDegraded {
                            service_id: s.id.clone(),
                            service: s.name.clone(),
                            client: s.client.clone(),
                            spawnit_service: s.spawnit_service.clone(),
                            node_id: n.id.clone(),
                            running: s.running,
                            desired,
                            at: now,
                        });
                    }
                }
            }
            actions.push(Action::Quarantine { node_id: n.id.clone(), reason: reason::DOWN.to_owned() });
        }
        if n.status == NodeStatus::Ready {
            memory.ready_once.insert(n.id.clone());
        }
        // A rented node lost: its client gets another node.
        if lost && let Some(l) = lease {
            actions.push(Action::Replace { node_id: n.id.clone(), client: l.client.clone() });
        }
    }

    // Services: healed, unplaced.
    let present: BTreeSet<&str> = snap.services.iter().map(|s| s.id.as_str()).collect();
    memory.degraded.retain(|id, _| present.contains(id.as_str()));
    memory.unplaced.retain(|id, _| present.contains(id.as_str()));
    for s in &snap.services {
        if let (Some(d), Some(desired)) = (memory.degraded.get(&s.id), s.desired)
            && s.running >= desired
        {
            let heal_s = (now - d.since).num_milliseconds() as f64 / 1000.0;
            events.push(ClusterEvent::ServiceHealed {
                service_id: s.id.clone(),
                service: s.name.clone(),
                client: s.client.clone(),
                spawnit_service: s.spawnit_service.clone(),
                heal_s,
                at: now,
            });
            memory.degraded.remove(&s.id);
        }
        match &s.unplaced {
            Some(why) if memory.unplaced.get(&s.id) != Some(why) => {
                memory.unplaced.insert(s.id.clone(), why.clone());
                events.push(ClusterEvent::ServiceUnplaced {
                    service_id: s.id.clone(),
                    service: s.name.clone(),
                    client: s.client.clone(),
                    spawnit_service: s.spawnit_service.clone(),
                    reason: why.clone(),
                    at: now,
                });
            }
            Some(_) => {}
            None => {
                memory.unplaced.remove(&s.id);
            }
        }
    }

    // Leases: warnings and ends (a lease of a failed node is being replaced, not ended).
    for l in leases {
        let node = snap.node(&l.node_id);
        let hostname = node.map_or_else(|| l.hostname.clone(), |n| n.hostname.clone());
        if node.is_some_and(|n| n.status != NodeStatus::Ready) {
            continue;
        }
        if now >= l.expires_at {
            events.push(ClusterEvent::NodeLeaseExpired {
                client: l.client.clone(),
                node_id: l.node_id.clone(),
                hostname,
                at: now,
            });
            actions.push(Action::Expire { node_id: l.node_id.clone(), client: l.client.clone() });
        } else {
            // Every threshold crossed and not yet warned: one warning, all of them recorded.
            let remaining = (l.expires_at - now).to_std().unwrap_or_default();
            let due: Vec<u64> = config
                .lease_warnings
                .iter()
                .filter(|w| remaining <= **w && !l.warned.contains(&w.as_secs()))
                .map(Duration::as_secs)
                .collect();
            if !due.is_empty() {
                events.push(ClusterEvent::NodeLeaseWarning {
                    client: l.client.clone(),
                    node_id: l.node_id.clone(),
                    hostname,
                    expires_at: l.expires_at,
                    remaining_s: (l.expires_at - now).num_seconds(),
                    at: now,
                });
                actions.push(Action::Warned { node_id: l.node_id.clone(), client: l.client.clone(), before_s: due });
            }
        }
    }

    memory.status = snap.nodes.iter().map(|n| (n.id.clone(), n.status)).collect();
    memory.ready_once.retain(|id| memory.status.contains_key(id));
    memory.service_nodes = snap.services.iter().map(|s| (s.id.clone(), s.nodes.clone())).collect();
    memory.replace_failed.retain(|id| leases.iter().any(|l| &l.node_id == id));
    memory.started = true;
    (events, actions)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::observe::ServiceObs;
    use crate::view::{Availability, NodeRole};

    fn node(id: &str, status: NodeStatus, labels: &[(&str, &str)]) -> NodeInfo {
        let labels: BTreeMap<String, String> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        NodeInfo {
            id: id.into(),
            hostname: format!("host-{id}"),
            address: "10.0.0.1".into(),
            role: NodeRole::Worker,
            leader: false,
            availability: Availability::Active,
            status,
            engine_version: "20.10".into(),
            cpus: 1.0,
            memory_bytes: 1 << 30,
            quarantine: labels.get(LABEL_QUARANTINE).cloned(),
            client: labels.get(LABEL_CLIENT).map(|c| Id::parse(c).unwrap()),
            labels,
            lease: None,
            tasks: vec![],
        }
    }

    fn web(running: u64, nodes: &[&str]) -> ServiceObs {
        ServiceObs {
            id: "svc1".into(),
            name: "acme-web".into(),
            client: Some(Id::parse("acme").unwrap()),
            spawnit_service: Some("web".into()),
            desired: Some(3),
            running,
            nodes: nodes.iter().map(|n| n.to_string()).collect(),
            unplaced: None,
        }
    }

    const POOL: (&str, &str) = (LABEL_POOL, "true");

    #[test]
    fn a_node_down_degrades_its_services_then_they_heal_and_the_node_returns_quarantined() {
        let config = MonitorConfig::default();
        let mut memory = Memory::default();
        let t0 = Utc::now();
        let up = Snapshot {
            nodes: vec![node("a", NodeStatus::Ready, &[POOL]), node("b", NodeStatus::Ready, &[POOL])],
            services: vec![web(3, &["a", "b"])],
        };
        let (events, actions) = decide(&mut memory, &up, &[], t0, &config);
        assert!(events.is_empty() && actions.is_empty(), "{events:?} {actions:?}");

        // b goes down; Swarm already moved b's task's desired state away.
        let down = Snapshot {
            nodes: vec![node("a", NodeStatus::Ready, &[POOL]), node("b", NodeStatus::Down, &[POOL])],
            services: vec![web(2, &["a"])],
        };
        let t1 = t0 + chrono::Duration::seconds(3);
        let (events, actions) = decide(&mut memory, &down, &[], t1, &config);
        let names: Vec<&str> = events.iter().map(ClusterEvent::name).collect();
        assert_eq!(names, ["node_down", "degraded"]);
        assert_eq!(actions, [Action::Quarantine { node_id: "b".into(), reason: reason::DOWN.into() }]);

        // Labelled down: nothing new while it stays down; the service heals on a.
        let down_q = Snapshot {
            nodes: vec![
                node("a", NodeStatus::Ready, &[POOL]),
                node("b", NodeStatus::Down, &[(LABEL_QUARANTINE, reason::DOWN)]),
            ],
            services: vec![web(3, &["a"])],
        };
        let t2 = t1 + chrono::Duration::milliseconds(4500);
        let (events, actions) = decide(&mut memory, &down_q, &[], t2, &config);
        assert!(actions.is_empty(), "{actions:?}");
        match events.as_slice() {
            [ClusterEvent::ServiceHealed { heal_s, client, .. }] => {
                assert_eq!(*heal_s, 4.5);
                assert_eq!(client.as_ref().map(Id::as_str), Some("acme"));
            }
            other => panic!("{other:?}"),
        }

        // b is back: returned, relabelled, cleaned.
        let back = Snapshot {
            nodes: vec![
                node("a", NodeStatus::Ready, &[POOL]),
                node("b", NodeStatus::Ready, &[(LABEL_QUARANTINE, reason::DOWN)]),
            ],
            services: vec![web(3, &["a"])],
        };
        let (events, actions) = decide(&mut memory, &back, &[], t2 + chrono::Duration::seconds(5), &config);
        match events.as_slice() {
            [ClusterEvent::NodeReturned { node_id, down_s, .. }] => {
                assert_eq!(node_id, "b");
                assert_eq!(*down_s, Some(9.5));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            actions,
            [
                Action::Quarantine { node_id: "b".into(), reason: reason::RETURNED.into() },
                Action::Clean { node_id: "b".into() }
            ]
        );
    }

    #[test]
    fn a_joining_node_is_not_down_and_a_manager_restart_is_not_a_failure() {
        let config = MonitorConfig::default();
        let mut memory = Memory::default();
        let now = Utc::now();
        let first = Snapshot { nodes: vec![node("a", NodeStatus::Ready, &[POOL])], services: vec![] };
        decide(&mut memory, &first, &[], now, &config);
        // A node joining shows unknown, even down, before it is Ready: no node_down.
        for status in [NodeStatus::Unknown, NodeStatus::Down] {
            let joining = Snapshot {
                nodes: vec![node("a", NodeStatus::Ready, &[POOL]), node("new", status, &[])],
                services: vec![],
            };
            let (events, actions) = decide(&mut memory, &joining, &[], now, &config);
            assert!(events.is_empty() && actions.is_empty(), "{status:?}: {events:?} {actions:?}");
        }
        let joined = Snapshot {
            nodes: vec![node("a", NodeStatus::Ready, &[POOL]), node("new", NodeStatus::Ready, &[])],
            services: vec![],
        };
        let (events, actions) = decide(&mut memory, &joined, &[], now, &config);
        assert_eq!(events.iter().map(ClusterEvent::name).collect::<Vec<_>>(), ["node_joined"]);
        assert_eq!(actions, [Action::Enroll { node_id: "new".into() }]);
        // After a manager restart every node is unknown for a moment: nothing happens.
        let restarted = Snapshot {
            nodes: vec![node("a", NodeStatus::Unknown, &[POOL]), node("new", NodeStatus::Unknown, &[POOL])],
            services: vec![],
        };
        let (events, actions) = decide(&mut memory, &restarted, &[], now, &config);
        assert!(events.is_empty() && actions.is_empty(), "{events:?} {actions:?}");
    }

    #[test]
    fn every_event_is_serialized_with_its_name_as_type() {
        let at = Utc::now();
        let events = [
            ClusterEvent::ServiceHealed {
                service_id: "s".into(),
                service: "acme-web".into(),
                client: None,
                spawnit_service: None,
                heal_s: 1.0,
                at,
            },
            ClusterEvent::NodeCleaned {
                node_id: "n".into(),
                hostname: "h".into(),
                reason: "returned".into(),
                clean_s: 1.0,
                at,
            },
        ];
        for e in events {
            assert_eq!(serde_json::to_value(&e).unwrap()["type"], e.name());
        }
    }

    #[test]
    fn new_nodes_join_the_pool_and_labels_follow_the_book() {
        let config = MonitorConfig::default();
        let mut memory = Memory::default();
        let now = Utc::now();
        let acme = Id::parse("acme").unwrap();
        let lease = LeaseView {
            node_id: "b".into(),
            hostname: "host-b".into(),
            client: acme.clone(),
            started_at: now,
            expires_at: now + chrono::Duration::seconds(200),
            remaining_s: 200,
            warned: vec![],
        };
        let snap = Snapshot {
            nodes: vec![
                node("a", NodeStatus::Ready, &[]),
                node("b", NodeStatus::Ready, &[POOL]),
                node("c", NodeStatus::Ready, &[(LABEL_CLIENT, "acme")]),
            ],
            services: vec![],
        };
        let (events, actions) = decide(&mut memory, &snap, std::slice::from_ref(&lease), now, &config);
        // The first check learns: no node_joined for nodes already there; the lease is within
        // both warnings (1 h, 5 min): one event, both recorded.
        assert_eq!(events.iter().map(ClusterEvent::name).collect::<Vec<_>>(), ["node_lease_warning"]);
        assert_eq!(
            actions,
            [
                Action::Enroll { node_id: "a".into() },
                Action::Relabel { node_id: "b".into(), client: Some(acme.clone()) },
                Action::Quarantine { node_id: "c".into(), reason: reason::RELEASED.into() },
                Action::Warned { node_id: "b".into(), client: acme.clone(), before_s: vec![3600, 300] },
            ]
        );
        // Over: expired.
        let warned = LeaseView { warned: vec![3600, 300], ..lease.clone() };
        let (events, _) = decide(&mut memory, &snap, std::slice::from_ref(&warned), now, &config);
        assert!(events.is_empty(), "warned once: {events:?}");
        let over = LeaseView { warned: vec![3600, 300], ..lease };
        let later = now + chrono::Duration::seconds(201);
        let (events, actions) = decide(&mut memory, &snap, &[over], later, &config);
        assert!(events.iter().any(|e| e.name() == "node_lease_expired"), "{events:?}");
        assert!(actions.contains(&Action::Expire { node_id: "b".into(), client: acme }), "{actions:?}");
    }

    #[test]
    fn a_rented_node_down_is_replaced_and_a_service_that_cannot_be_placed_says_why_once() {
        let config = MonitorConfig::default();
        let mut memory = Memory::default();
        let now = Utc::now();
        let acme = Id::parse("acme").unwrap();
        let lease = LeaseView {
            node_id: "b".into(),
            hostname: "host-b".into(),
            client: acme.clone(),
            started_at: now,
            expires_at: now + chrono::Duration::hours(1),
            remaining_s: 3600,
            warned: vec![3600],
        };
        let mut svc = web(0, &[]);
        svc.unplaced = Some("no suitable node (scheduling constraints not satisfied on 3 nodes)".into());
        let snap =
            Snapshot { nodes: vec![node("b", NodeStatus::Down, &[(LABEL_CLIENT, "acme")])], services: vec![svc] };
        let (events, actions) = decide(&mut memory, &snap, std::slice::from_ref(&lease), now, &config);
        assert_eq!(events.iter().map(ClusterEvent::name).collect::<Vec<_>>(), ["node_down", "unplaced"]);
        assert!(actions.contains(&Action::Replace { node_id: "b".into(), client: acme }), "{actions:?}");
        let (events, _) = decide(&mut memory, &snap, &[lease], now, &config);
        assert!(events.is_empty(), "the same reason is said once: {events:?}");
    }
}
