//! The server's event bus: status changes of services, job lifecycle, lease warnings, the
//! autoscaler's scalings and the cluster monitor's node events, broadcast to every
//! `/api/events` subscriber (each sees its own client's events only; an event of no client,
//! such as a pool node going down, is for admins).

use chrono::{DateTime, Utc};
use serde::Serialize;
use spawnit_cluster::ClusterEvent;
use spawnit_model::Id;
use tokio::sync::broadcast;

use crate::job_types::{JobKind, JobStatus, Target};

/// One server event.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerEvent {
    /// A service's status changed (seen by the drift monitor).
    ServiceStatus { client: Id, service: Id, status: String, reasons: Vec<String>, at: DateTime<Utc> },
    /// A job changed status. `target` is shaped as in the job's record.
    Job { client: Id, job: String, kind: JobKind, target: Target, status: JobStatus, at: DateTime<Utc> },
    /// A service's lease ends soon.
    LeaseWarning { client: Id, service: Id, expires_at: DateTime<Utc>, remaining_s: i64, at: DateTime<Utc> },
    /// A service's lease ended: a destroy job was queued.
    LeaseExpired { client: Id, service: Id, job: String, at: DateTime<Utc> },
    /// The autoscaler changed a replicated container's count (an apply job was queued: `job`).
    Scaled {
        client: Id,
        service: Id,
        container: String,
        from: u32,
        to: u32,
        avg_cpu_percent: f64,
        target_cpu_percent: u32,
        reason: String,
        job: Option<String>,
        at: DateTime<Utc>,
    },
    /// The cluster monitor saw or did something: `node_down`, `degraded`, `healed`,
    /// `node_returned`, `node_cleaned`, `lease_replaced`, `node_lease_warning`, … (serialized
    /// as the event itself, its `type` the event's name).
    #[serde(untagged)]
    Cluster(ClusterEvent),
}

impl ServerEvent {
    /// The client the event concerns; `None`: admins only.
    pub fn client(&self) -> Option<&Id> {
        match self {
            ServerEvent::ServiceStatus { client, .. }
            | ServerEvent::Job { client, .. }
            | ServerEvent::LeaseWarning { client, .. }
            | ServerEvent::LeaseExpired { client, .. }
            | ServerEvent::Scaled { client, .. } => Some(client),
            ServerEvent::Cluster(e) => e.client(),
        }
    }

    /// The SSE event name.
    pub fn name(&self) -> &'static str {
        match self {
            ServerEvent::ServiceStatus { .. } => "service_status",
            ServerEvent::Job { .. } => "job",
            ServerEvent::LeaseWarning { .. } => "lease_warning",
            ServerEvent::LeaseExpired { .. } => "lease_expired",
            ServerEvent::Scaled { .. } => "scaled",
            ServerEvent::Cluster(e) => e.name(),
        }
    }
}

/// A broadcast channel of [`ServerEvent`]s; slow subscribers miss old events, never block.
#[derive(Clone)]
pub struct EventBus {
    sender: broadcast::Sender<ServerEvent>,
}

impl EventBus {
    pub fn new() -> EventBus {
        EventBus { sender: broadcast::channel(1024).0 }
    }

    pub fn publish(&self, event: ServerEvent) {
        let _ = self.sender.send(event);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<ServerEvent> {
        self.sender.subscribe()
    }
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus::new()
    }
}
