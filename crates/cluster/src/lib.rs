//! SpawnIt's Swarm nodes (`spawnit-cluster`): what a Swarm cluster looks like to SpawnIt and what
//! it does to its nodes, through one manager's Docker API (bollard) and the store.
//!
//! - [`Cluster`]: list and show nodes with their tasks, drain, activate, remove, print the
//!   join command a new node runs (it dials out to a manager), rent whole nodes to a client
//!   for a lease (compare-and-swap on the store's lease book; the node gets the client's label),
//!   release and extend leases, and clean a node (its tasks gone, the volumes of clients that
//!   no longer rent it removed through a one-shot Swarm job on that node, the secrets of a
//!   client without services removed) before it returns to the pool.
//! - [`observe`]: from the manager's answers to [`NodeInfo`]s and services, pure.
//! - [`monitor`]: the node monitor of `spawnit serve`: pure decisions on two snapshots (a node
//!   down, services degraded and healed, a node back quarantined, a rented node replaced,
//!   leases warned and expired) and the runner that observes and acts on them.

mod clean;
mod cluster;
mod error;
mod leases;
pub mod monitor;
pub mod observe;
mod runner;
mod view;

pub use clean::{CLEANER_SCRIPT, CleanReport, LABEL_CLEANER, LABEL_QUARANTINE_CLIENT};
pub use cluster::{CLEANER_IMAGE_DEFAULT, Cluster, ClusterConfig};
pub use error::{ClusterError, ErrorKind};
pub use leases::{MAX_LEASE, MAX_RENT_COUNT, lease_view};
pub use monitor::{Action, ClusterEvent, MonitorConfig};
pub use runner::{Check, ClusterMonitor, chain};
pub use view::{
    Availability, JoinCommand, LABEL_CLIENT, LABEL_POOL, LABEL_QUARANTINE, LeaseTarget, LeaseView, NodeInfo, NodeRole,
    NodeStatus, NodeTask,
};
