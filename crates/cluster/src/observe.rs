//! From the manager's answers (nodes, services, tasks) to SpawnIt's view of the cluster: pure
//! functions, no I/O, so the monitor's decisions can be tested on plain data.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bollard::models::{Node, NodeSpecAvailabilityEnum, NodeSpecRoleEnum, NodeState, Service, Task, TaskState};

use crate::view::{Availability, LABEL_CLIENT, LABEL_QUARANTINE, LeaseView, NodeInfo, NodeRole, NodeStatus, NodeTask};

/// A Swarm service as the monitor sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceObs {
    pub id: String,
    pub name: String,
    /// The owner labels SpawnIt puts on the services it makes (a client label that is not an
    /// id is ignored: SpawnIt did not write it).
    pub client: Option<spawnit_model::Id>,
    pub spawnit_service: Option<String>,
    /// The replicas a replicated service asks for; `None` for global services and jobs, which
    /// the monitor does not judge.
    pub desired: Option<u64>,
    /// Its tasks running (and wanted running) on Ready nodes.
    pub running: u64,
    /// The nodes its wanted tasks are on, and those its replaced tasks were last seen running on.
    pub nodes: BTreeSet<String>,
    /// Why a task cannot be placed (Swarm's error of a pending task), when one cannot.
    pub unplaced: Option<String>,
}

/// The cluster at one instant.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    pub nodes: Vec<NodeInfo>,
    pub services: Vec<ServiceObs>,
}

impl Snapshot {
    pub fn node(&self, id: &str) -> Option<&NodeInfo> {
        self.nodes.iter().find(|n| n.id == id)
    }
}

fn role(node: &Node) -> NodeRole {
    match node.spec.as_ref().and_then(|s| s.role) {
        Some(NodeSpecRoleEnum::MANAGER) => NodeRole::Manager,
        _ => NodeRole::Worker,
    }
}

fn availability(node: &Node) -> Availability {
    match node.spec.as_ref().and_then(|s| s.availability) {
        Some(NodeSpecAvailabilityEnum::DRAIN) => Availability::Drain,
        Some(NodeSpecAvailabilityEnum::PAUSE) => Availability::Pause,
        _ => Availability::Active,
    }
}

fn status(node: &Node) -> NodeStatus {
    match node.status.as_ref().and_then(|s| s.state) {
        Some(NodeState::READY) => NodeStatus::Ready,
        Some(NodeState::DOWN) => NodeStatus::Down,
        Some(NodeState::DISCONNECTED) => NodeStatus::Disconnected,
        _ => NodeStatus::Unknown,
    }
}

fn task_state(state: Option<TaskState>) -> String {
    state.map_or_else(|| "unknown".to_owned(), |s| s.to_string())
}

/// Whether Swarm wants the task running or it still runs.
fn task_live(task: &Task) -> bool {
    task.desired_state == Some(TaskState::RUNNING)
        || task.status.as_ref().and_then(|s| s.state) == Some(TaskState::RUNNING)
}

struct ServiceMeta<'a> {
    name: &'a str,
    labels: Option<&'a HashMap<String, String>>,
}

fn service_meta(services: &[Service]) -> HashMap<&str, ServiceMeta<'_>> {
    services
        .iter()
        .filter_map(|s| {
            let id = s.id.as_deref()?;
            let spec = s.spec.as_ref();
            let name = spec.and_then(|s| s.name.as_deref()).unwrap_or(id);
            Some((id, ServiceMeta { name, labels: spec.and_then(|s| s.labels.as_ref()) }))
        })
        .collect()
}

fn node_task(task: &Task, meta: &HashMap<&str, ServiceMeta<'_>>) -> NodeTask {
    let service_id = task.service_id.clone().unwrap_or_default();
    let m = meta.get(service_id.as_str());
    let label = |k: &str| m.and_then(|m| m.labels).and_then(|l| l.get(k)).cloned();
    let status = task.status.as_ref();
    NodeTask {
        id: task.id.clone().unwrap_or_default(),
        service: m.map_or_else(|| service_id.clone(), |m| m.name.to_owned()),
        service_id,
        slot: task.slot,
        client: label(LABEL_CLIENT),
        spawnit_service: label("spawnit.service"),
        state: task_state(status.and_then(|s| s.state)),
        desired_state: task_state(task.desired_state),
        message: status.and_then(|s| s.message.clone()).filter(|m| !m.is_empty()),
        error: status.and_then(|s| s.err.clone()).filter(|m| !m.is_empty()),
    }
}

/// One node as SpawnIt shows it: `lease` is its lease in the book (its client wins over the
/// label), `tasks` every task of the cluster (those of this node that are live are kept).
pub fn node_info(node: &Node, lease: Option<LeaseView>, tasks: &[Task], services: &[Service]) -> NodeInfo {
    let meta = service_meta(services);
    node_info_with(node, lease, tasks, &meta)
}

fn node_info_with(
    node: &Node,
    lease: Option<LeaseView>,
    tasks: &[Task],
    meta: &HashMap<&str, ServiceMeta<'_>>,
) -> NodeInfo {
    let id = node.id.clone().unwrap_or_default();
    let labels: BTreeMap<String, String> =
        node.spec.as_ref().and_then(|s| s.labels.clone()).unwrap_or_default().into_iter().collect();
    let description = node.description.as_ref();
    let resources = description.and_then(|d| d.resources.as_ref());
    let manager = node.manager_status.as_ref();
    let address = node
        .status
        .as_ref()
        .and_then(|s| s.addr.clone())
        .filter(|a| !a.is_empty() && a != "0.0.0.0")
        .or_else(|| manager.and_then(|m| m.addr.as_deref()).map(|a| a.split(':').next().unwrap_or(a).to_owned()))
        .unwrap_or_default();
    let client = lease
        .as_ref()
        .map(|l| l.client.clone())
        .or_else(|| labels.get(LABEL_CLIENT).and_then(|c| spawnit_model::Id::parse(c).ok()));
    let mut node_tasks: Vec<NodeTask> = tasks
        .iter()
        .filter(|t| t.node_id.as_deref() == Some(id.as_str()) && task_live(t))
        .map(|t| node_task(t, meta))
        .collect();
    node_tasks.sort_by(|a, b| (&a.service, a.slot, &a.id).cmp(&(&b.service, b.slot, &b.id)));
    NodeInfo {
        hostname: description.and_then(|d| d.hostname.clone()).unwrap_or_default(),
        address,
        role: role(node),
        leader: manager.and_then(|m| m.leader).unwrap_or(false),
        availability: availability(node),
        status: status(node),
        engine_version: description
            .and_then(|d| d.engine.as_ref())
            .and_then(|e| e.engine_version.clone())
            .unwrap_or_default(),
        cpus: resources.and_then(|r| r.nano_cpus).map_or(0.0, |n| n as f64 / 1e9),
        memory_bytes: resources.and_then(|r| r.memory_bytes).and_then(|m| u64::try_from(m).ok()).unwrap_or(0),
        quarantine: labels.get(LABEL_QUARANTINE).cloned(),
        labels,
        client,
        lease,
        tasks: node_tasks,
        id,
    }
}

/// The whole cluster: every node (sorted: managers first, then by hostname) and every
/// service with its running count and placement trouble.
pub fn snapshot(
    nodes: &[Node],
    services: &[Service],
    tasks: &[Task],
    lease_of: impl Fn(&str) -> Option<LeaseView>,
) -> Snapshot {
    let meta = service_meta(services);
    let mut infos: Vec<NodeInfo> =
        nodes.iter().map(|n| node_info_with(n, lease_of(n.id.as_deref().unwrap_or_default()), tasks, &meta)).collect();
    infos.sort_by(|a, b| (a.role, &a.hostname, &a.id).cmp(&(b.role, &b.hostname, &b.id)));
    let ready: BTreeSet<&str> = infos.iter().filter(|n| n.status == NodeStatus::Ready).map(|n| n.id.as_str()).collect();
    let services = services
        .iter()
        .filter_map(|s| {
            let id = s.id.clone()?;
            let spec = s.spec.as_ref();
            let labels = spec.and_then(|s| s.labels.as_ref());
            let label = |k: &str| labels.and_then(|l| l.get(k)).cloned();
            let desired = spec
                .and_then(|s| s.mode.as_ref())
                .and_then(|m| m.replicated.as_ref())
                .map(|r| r.replicas.and_then(|n| u64::try_from(n).ok()).unwrap_or(1));
            let own: Vec<&Task> = tasks.iter().filter(|t| t.service_id.as_deref() == Some(id.as_str())).collect();
            let wanted = |t: &&&Task| t.desired_state == Some(TaskState::RUNNING);
            let running = own
                .iter()
                .filter(wanted)
                .filter(|t| t.status.as_ref().and_then(|s| s.state) == Some(TaskState::RUNNING))
                .filter(|t| t.node_id.as_deref().is_some_and(|n| ready.contains(n)))
                .count() as u64;
            // Where its tasks are or were last seen running: when Swarm replaces the tasks of a
            // lost node before the monitor looks, the old ones still say `running` there.
            let seen_running = |t: &&&Task| t.status.as_ref().and_then(|s| s.state) == Some(TaskState::RUNNING);
            let nodes = own.iter().filter(|t| wanted(t) || seen_running(t)).filter_map(|t| t.node_id.clone()).collect();
            let unplaced = own
                .iter()
                .filter(wanted)
                .filter(|t| t.status.as_ref().and_then(|s| s.state) == Some(TaskState::PENDING))
                .find_map(|t| t.status.as_ref()?.err.clone().filter(|e| !e.is_empty()));
            Some(ServiceObs {
                name: spec.and_then(|s| s.name.clone()).unwrap_or_else(|| id.clone()),
                id,
                client: label(LABEL_CLIENT).and_then(|c| spawnit_model::Id::parse(&c).ok()),
                spawnit_service: label("spawnit.service"),
                desired,
                running,
                nodes,
                unplaced,
            })
        })
        .collect();
    Snapshot { nodes: infos, services }
}
