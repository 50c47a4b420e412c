//! What the cluster shows: a node with its tasks, a lease, a join command. Plain data (serde,
//! and JSON Schemas with the `schema` feature), built from the manager's answers by pure code.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use spawnit_model::Id;

pub use spawnit_model::node::{LABEL_CLIENT, LABEL_POOL, LABEL_QUARANTINE, LeaseTarget};

/// A node's role in the Swarm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum NodeRole {
    Manager,
    Worker,
}

/// Whether Swarm may schedule tasks on a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Availability {
    /// New tasks may be scheduled.
    Active,
    /// No new task; running tasks stay.
    Pause,
    /// No task: running ones are stopped and moved.
    Drain,
}

impl Availability {
    pub fn as_str(self) -> &'static str {
        match self {
            Availability::Active => "active",
            Availability::Pause => "pause",
            Availability::Drain => "drain",
        }
    }
}

/// A node's state as the managers see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum NodeStatus {
    Ready,
    Down,
    Disconnected,
    Unknown,
}

impl NodeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeStatus::Ready => "ready",
            NodeStatus::Down => "down",
            NodeStatus::Disconnected => "disconnected",
            NodeStatus::Unknown => "unknown",
        }
    }
}

/// One task Swarm placed on a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct NodeTask {
    /// The Swarm task id.
    pub id: String,
    /// The Swarm service's id and name.
    pub service_id: String,
    pub service: String,
    /// The task's slot (replica number) for a replicated service.
    pub slot: Option<i64>,
    /// The owner labels of the service (`spawnit.client`, `spawnit.service`), when SpawnIt made it.
    pub client: Option<String>,
    pub spawnit_service: Option<String>,
    /// The task's state (`running`, `pending`, `shutdown`, …) and the one Swarm wants.
    pub state: String,
    pub desired_state: String,
    /// Swarm's message, and its error when the task failed or cannot be placed.
    pub message: Option<String>,
    pub error: Option<String>,
}

/// A node of the cluster.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct NodeInfo {
    /// The Swarm node id.
    pub id: String,
    pub hostname: String,
    /// The address the managers see it at.
    pub address: String,
    pub role: NodeRole,
    /// Whether this manager is the Raft leader.
    pub leader: bool,
    pub availability: Availability,
    pub status: NodeStatus,
    /// The engine's version, e.g. `20.10.24+dfsg1`.
    pub engine_version: String,
    /// CPUs (may be fractional when limited).
    pub cpus: f64,
    pub memory_bytes: u64,
    pub labels: BTreeMap<String, String>,
    /// The client renting the node (from the lease book; the label follows it).
    pub client: Option<Id>,
    /// Why the node is quarantined (`returned`, `released`, `lease_expired`), when it is.
    pub quarantine: Option<String>,
    /// The node's lease, when rented.
    pub lease: Option<LeaseView>,
    /// The tasks Swarm wants running on the node and those still running there.
    pub tasks: Vec<NodeTask>,
}

impl NodeInfo {
    /// A node free to rent: a Ready worker, availability active, not quarantined, not rented.
    /// Managers are never rented: they hold the Raft state SpawnIt and every client depend on,
    /// and draining one at a lease's end would drain the control plane; they stay in the pool.
    pub fn is_free(&self) -> bool {
        self.role == NodeRole::Worker
            && self.status == NodeStatus::Ready
            && self.availability == Availability::Active
            && self.quarantine.is_none()
            && self.client.is_none()
            && !self.labels.contains_key(LABEL_CLIENT)
    }
}

/// A whole-node lease as shown to an admin or to the client holding it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct LeaseView {
    pub node_id: String,
    pub hostname: String,
    pub client: Id,
    pub started_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// Seconds left at the time of the answer (0 once over).
    pub remaining_s: i64,
    /// The warnings already given, as seconds before expiry.
    pub warned: Vec<u64>,
}

/// The command a new node runs to join the cluster: it dials out to a manager, so it can sit
/// behind NAT for the control path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct JoinCommand {
    pub role: NodeRole,
    /// `docker swarm join --token <token> <manager address>:2377`.
    pub command: String,
    /// The manager address the node dials (`host:2377`).
    pub manager_addr: String,
}
