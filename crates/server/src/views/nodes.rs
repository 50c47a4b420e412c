//! What the API answers about the Swarm cluster: nodes as an admin sees them (the cluster's
//! [`NodeInfo`]: status, availability, role, engine, CPU and memory, labels, the client renting
//! it, quarantine, tasks), the join command, and leases of whole nodes as their client sees
//! them. A client's view is built only from its own leases: it never holds another client's
//! node, hostname or address.

use chrono::{DateTime, Utc};
use serde::Serialize;
use spawnit_cluster::{Availability, NodeInfo, NodeRole, NodeStatus};
use spawnit_model::Id;
use utoipa::ToSchema;

/// Every node of the cluster (admins).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct NodeList {
    pub nodes: Vec<NodeInfo>,
}

/// The command a new node runs to join the cluster.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct JoinTokenView {
    pub role: NodeRole,
    /// The exact `docker swarm join --token … HOST:2377` line to run on the new node.
    pub command: String,
    /// The manager address the node dials (`host:2377`).
    pub manager_addr: String,
    /// What the node needs to reach, in one line.
    pub hint: String,
}

/// A client's lease of a whole node, with the node's state.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct NodeLeaseView {
    /// Swarm's node id.
    pub node_id: String,
    pub hostname: String,
    pub client: Id,
    pub started_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// Seconds left (0 once over: the node is then cleaned and returned to the pool).
    pub remaining_s: i64,
    /// The warnings already given, as seconds before expiry.
    pub warned: Vec<u64>,
    /// The node as it is now; absent when the manager did not answer or the node is gone.
    pub node: Option<LeasedNodeView>,
}

/// What a client sees of a node it rents.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct LeasedNodeView {
    pub address: String,
    pub status: NodeStatus,
    pub availability: Availability,
    pub cpus: f64,
    pub memory_bytes: u64,
    /// Why SpawnIt quarantined it (it is being cleaned), when it did.
    pub quarantine: Option<String>,
}

/// A client's leases, soonest expiry first.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct NodeLeaseList {
    pub client: Id,
    pub leases: Vec<NodeLeaseView>,
}
