//! The [`Cluster`] handle: the node operations over a Swarm manager's Docker API (list, show,
//! drain, activate, remove, the join command) and the whole-node leases (rent, release,
//! extend, list) kept in the store's lease book.

use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;
use bollard::models::{Node, NodeSpec, NodeSpecAvailabilityEnum, Service, Task};
use bollard::query_parameters::{
    DeleteNodeOptions, ListNodesOptions, ListServicesOptions, ListTasksOptions, UpdateNodeOptions,
};
use spawnit_store::Store;

use crate::error::ClusterError;
use crate::observe::{self, Snapshot};
use crate::view::{JoinCommand, LABEL_POOL, LABEL_QUARANTINE, NodeInfo, NodeRole};

/// The image of the one-shot job that removes volumes on a node (it needs a `docker` CLI and a
/// shell): tests tag a locally built one with this name.
pub const CLEANER_IMAGE_DEFAULT: &str = "docker:cli";

/// How a [`Cluster`] cleans nodes and prints join commands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterConfig {
    /// The image of the cleaning job (a `docker` CLI and `sh`), present on every node or pullable.
    pub cleaner_image: String,
    /// How long cleaning a node may wait for its tasks to stop and for the cleaning job to end.
    pub clean_timeout: Duration,
    /// The manager address new nodes dial (`host:port`), when the managers' own addresses are
    /// not reachable from them (a public address in front of a NAT); default: the leader's.
    pub join_addr: Option<String>,
    /// A former client's Swarm secret younger than this is kept when its node is cleaned (its
    /// service may be being created right now).
    pub secret_min_age: Duration,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            cleaner_image: CLEANER_IMAGE_DEFAULT.to_owned(),
            clean_timeout: Duration::from_secs(120),
            join_addr: None,
            secret_min_age: Duration::from_secs(60),
        }
    }
}

/// A handle on a Swarm cluster through one of its managers, with the store holding the lease
/// book. Cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    /// The client as given, and once negotiated with the manager (at the first operation).
    pub(crate) docker: Docker,
    negotiated: Arc<tokio::sync::OnceCell<Docker>>,
    pub(crate) store: Store,
    pub(crate) config: Arc<ClusterConfig>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("store", &self.store).field("config", &self.config).finish_non_exhaustive()
    }
}

/// Checks a node reference given by a person: an id or a hostname.
pub(crate) fn node_ref(node: &str) -> Result<&str, ClusterError> {
    let ok = !node.is_empty()
        && node.len() <= 128
        && node.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && node.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(node)
    } else {
        let shown: String = node.chars().take(80).collect();
        Err(ClusterError::invalid(
            "node",
            format!(
                "{shown:?} is not a node id or hostname (1 to 128 of a-z, A-Z, 0-9, '-', '_', '.', starting with a letter or digit)"
            ),
        ))
    }
}

impl Cluster {
    /// A handle on the manager `docker` answers for (e.g. from `spawnit_docker::swarm_connect`)
    /// with the lease book in `store`. No I/O: the API version is negotiated with the manager
    /// at the first operation (and again after a failure); a manager that does not answer makes
    /// each operation fail with [`ClusterError::Unavailable`].
    pub fn connect(docker: Docker, store: Store) -> Cluster {
        Cluster { docker, negotiated: Arc::default(), store, config: Arc::new(ClusterConfig::default()) }
    }

    /// The client, its API version negotiated with the manager.
    pub(crate) async fn api(&self) -> Result<&Docker, ClusterError> {
        self.negotiated
            .get_or_try_init(|| async {
                self.docker.clone().negotiate_version().await.map_err(|e| ClusterError::Unavailable {
                    reason: "the manager did not answer".into(),
                    source: Some(e),
                })
            })
            .await
    }

    /// The same handle with other settings.
    pub fn with_config(mut self, config: ClusterConfig) -> Cluster {
        self.config = Arc::new(config);
        self
    }

    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// The client as given (not negotiated).
    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    // ---- reading ----

    pub(crate) async fn nodes_raw(&self) -> Result<Vec<Node>, ClusterError> {
        self.api()
            .await?
            .list_nodes(None::<ListNodesOptions>)
            .await
            .map_err(|e| ClusterError::docker("listing the nodes", "the nodes", e))
    }

    pub(crate) async fn services_raw(&self) -> Result<Vec<Service>, ClusterError> {
        self.api()
            .await?
            .list_services(None::<ListServicesOptions>)
            .await
            .map_err(|e| ClusterError::docker("listing the services", "the services", e))
    }

    pub(crate) async fn tasks_raw(&self) -> Result<Vec<Task>, ClusterError> {
        self.api()
            .await?
            .list_tasks(None::<ListTasksOptions>)
            .await
            .map_err(|e| ClusterError::docker("listing the tasks", "the tasks", e))
    }

    pub(crate) async fn node_raw(&self, node: &str) -> Result<Node, ClusterError> {
        let node = node_ref(node)?;
        self.api()
            .await?
            .inspect_node(node)
            .await
            .map_err(|e| ClusterError::docker(format!("reading node {node}"), format!("node {node}"), e))
    }

    /// The whole cluster: nodes with their tasks and leases, services with their counts.
    pub async fn snapshot(&self) -> Result<Snapshot, ClusterError> {
        let (nodes, services, tasks) = tokio::try_join!(self.nodes_raw(), self.services_raw(), self.tasks_raw())?;
        let book = self.leases_now().await?;
        Ok(observe::snapshot(&nodes, &services, &tasks, |id| book.iter().find(|l| l.node_id == id).cloned()))
    }

    /// Every node: managers first, then workers, by hostname.
    pub async fn node_list(&self) -> Result<Vec<NodeInfo>, ClusterError> {
        Ok(self.snapshot().await?.nodes)
    }

    /// One node (by id or hostname) with its live tasks.
    pub async fn node_show(&self, node: &str) -> Result<NodeInfo, ClusterError> {
        let raw = self.node_raw(node).await?;
        let (services, tasks) = tokio::try_join!(self.services_raw(), self.tasks_raw())?;
        let id = raw.id.clone().unwrap_or_default();
        let lease = self.leases_now().await?.into_iter().find(|l| l.node_id == id);
        Ok(observe::node_info(&raw, lease, &tasks, &services))
    }

    // ---- changing a node ----

    /// Reads the node, changes its spec with `change`, writes it with the version read; a
    /// concurrent update ("update out of sequence") is retried on the new version.
    pub(crate) async fn node_update(&self, node: &str, change: impl Fn(&mut NodeSpec)) -> Result<Node, ClusterError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let raw = self.node_raw(node).await?;
            let id = raw.id.clone().unwrap_or_default();
            let mut spec = raw.spec.clone().unwrap_or_default();
            change(&mut spec);
            if raw.spec.as_ref() == Some(&spec) {
                return Ok(raw);
            }
            let version = raw.version.as_ref().and_then(|v| v.index).unwrap_or(0);
            let options = UpdateNodeOptions { version: i64::try_from(version).unwrap_or(i64::MAX) };
            match self.api().await?.update_node(&id, spec, options).await {
                Ok(()) => return self.node_raw(&id).await,
                Err(bollard::errors::Error::DockerResponseServerError { message, .. })
                    if message.contains("out of sequence") && attempt < 10 =>
                {
                    tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
                }
                Err(e) => return Err(ClusterError::docker(format!("updating node {node}"), format!("node {node}"), e)),
            }
        }
    }

    /// Sets a node's availability to `drain`: Swarm stops its tasks and places them elsewhere.
    pub async fn node_drain(&self, node: &str) -> Result<NodeInfo, ClusterError> {
        self.node_update(node, |s| s.availability = Some(NodeSpecAvailabilityEnum::DRAIN)).await?;
        self.node_show(node).await
    }

    /// Sets a node's availability to `active`. A quarantined node leaves its quarantine (the
    /// admin says it may be used as it is) and returns to the pool unless it is rented.
    pub async fn node_activate(&self, node: &str) -> Result<NodeInfo, ClusterError> {
        let raw = self.node_raw(node).await?;
        let id = raw.id.clone().unwrap_or_default();
        let rented = self.leases_now().await?.iter().any(|l| l.node_id == id);
        self.node_update(&id, |s| {
            s.availability = Some(NodeSpecAvailabilityEnum::ACTIVE);
            let labels = s.labels.get_or_insert_with(Default::default);
            labels.remove(LABEL_QUARANTINE);
            if !rented {
                labels.insert(LABEL_POOL.to_owned(), "true".to_owned());
            }
        })
        .await?;
        self.node_show(&id).await
    }

    /// Removes a node from the cluster. A rented node is refused (release its lease first); a
    /// node that is still up is refused by Swarm unless `force` (its tasks are then lost, not moved).
    pub async fn node_remove(&self, node: &str, force: bool) -> Result<(), ClusterError> {
        let raw = self.node_raw(node).await?;
        let id = raw.id.clone().unwrap_or_default();
        if let Some(lease) = self.leases_now().await?.into_iter().find(|l| l.node_id == id) {
            return Err(ClusterError::conflict(format!(
                "node {node} is rented by client {} until {}: release its lease first",
                lease.client,
                lease.expires_at.to_rfc3339()
            )));
        }
        if observe::node_info(&raw, None, &[], &[]).role == NodeRole::Manager && !force {
            return Err(ClusterError::conflict(format!(
                "node {node} is a manager: demote it first (docker node demote), or force"
            )));
        }
        self.api()
            .await?
            .delete_node(&id, Some(DeleteNodeOptions { force }))
            .await
            .map_err(|e| ClusterError::docker(format!("removing node {node}"), format!("node {node}"), e))
    }

    /// The exact command a new node runs to join as `role`: `docker swarm join --token …
    /// <manager>:2377`. The node dials out to the manager; nothing dials the node for control.
    pub async fn join_command(&self, role: NodeRole) -> Result<JoinCommand, ClusterError> {
        let swarm = self
            .api()
            .await?
            .inspect_swarm()
            .await
            .map_err(|e| ClusterError::docker("reading the swarm", "the swarm", e))?;
        let tokens = swarm.join_tokens.unwrap_or_default();
        let token = match role {
            NodeRole::Worker => tokens.worker,
            NodeRole::Manager => tokens.manager,
        }
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ClusterError::Unavailable { reason: "the manager gave no join token".into(), source: None })?;
        let manager_addr = match &self.config.join_addr {
            Some(addr) => addr.clone(),
            None => self.manager_addr().await?,
        };
        Ok(JoinCommand { role, command: format!("docker swarm join --token {token} {manager_addr}"), manager_addr })
    }

    /// The address of a reachable manager (the leader first).
    async fn manager_addr(&self) -> Result<String, ClusterError> {
        let nodes = self.nodes_raw().await?;
        let mut managers: Vec<(bool, String)> = nodes
            .iter()
            .filter_map(|n| {
                let m = n.manager_status.as_ref()?;
                let addr = m.addr.clone().filter(|a| !a.is_empty())?;
                Some((!m.leader.unwrap_or(false), addr))
            })
            .collect();
        managers.sort();
        managers
            .into_iter()
            .next()
            .map(|(_, a)| a)
            .ok_or_else(|| ClusterError::Unavailable { reason: "no manager has an address".into(), source: None })
    }
}
