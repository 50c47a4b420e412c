//! The server's event bus: status changes of services, job lifecycle, lease warnings, the
//! autoscaler's scalings and the cluster monitor's node events, broadcast to every
//! `/api/events` subscriber (each sees its own client's events only; an event of no client,
//! such as a pool node going down, is for admins).
//!
//! With several replicas on one store, each one's `/api/events` shows every replica's events:
//! job events come from each replica's tail of the job records ([`crate::jobs`]); the others
//! (statuses, leases, scalings, nodes: the leader's background tasks) are relayed through the
//! store by [`relay_run`], as `servers/events/<time>-<seq>-<replica>.json` objects that every
//! replica lists twice a second and that their writer deletes after two minutes.

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use spawnit_cluster::ClusterEvent;
use spawnit_model::Id;
use spawnit_store::{Collection, Key, PutCondition, Store};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::replica::Replica;

use crate::job_types::{JobKind, JobStatus, Target};

/// One server event.
#[derive(Clone, Debug, Serialize, Deserialize)]
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
/// A bus made by [`EventBus::relayed`] also hands this replica's own events (other than job
/// events) to the relay that writes them for the other replicas.
#[derive(Clone)]
pub struct EventBus {
    sender: broadcast::Sender<ServerEvent>,
    outbox: Option<mpsc::UnboundedSender<ServerEvent>>,
}

impl EventBus {
    pub fn new() -> EventBus {
        EventBus { sender: broadcast::channel(1024).0, outbox: None }
    }

    /// A bus whose own events also go to the returned receiver, for [`relay_run`].
    pub fn relayed() -> (EventBus, mpsc::UnboundedReceiver<ServerEvent>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (EventBus { sender: broadcast::channel(1024).0, outbox: Some(tx) }, rx)
    }

    pub fn publish(&self, event: ServerEvent) {
        if let Some(outbox) = &self.outbox
            && !matches!(event, ServerEvent::Job { .. })
        {
            let _ = outbox.send(event.clone());
        }
        let _ = self.sender.send(event);
    }

    /// An event another replica published: for this replica's subscribers only.
    fn publish_relayed(&self, event: ServerEvent) {
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

/// A relayed event as stored.
#[derive(Serialize, Deserialize)]
struct RelayedEvent {
    replica: String,
    event: ServerEvent,
}

/// How long a relayed event stays in the store.
const RELAY_KEEP: Duration = Duration::from_secs(120);
/// How often the other replicas' events are looked for.
const RELAY_POLL: Duration = Duration::from_millis(500);

/// Writes this replica's events (`outbox`) for the others and publishes theirs on `bus`, until
/// `stop`. Events from before this replica started are not replayed.
pub async fn relay_run(
    store: Store,
    replica: Replica,
    bus: EventBus,
    mut outbox: mpsc::UnboundedReceiver<ServerEvent>,
    stop: CancellationToken,
) {
    let mut watcher = store.watch(Key::collection(Collection::ServerEvents));
    if let Err(e) = watcher.poll().await {
        tracing::debug!("cannot list the relayed events: {e}");
    }
    let tag: String = replica
        .id
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(36)
        .collect();
    let mut seq: u64 = 0;
    let mut written: VecDeque<(tokio::time::Instant, Id)> = VecDeque::new();
    let mut seen: HashSet<String> = HashSet::new();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            Some(event) = outbox.recv() => {
                seq += 1;
                let name = format!("{:013}-{seq:06}-{tag}", Utc::now().timestamp_millis().max(0));
                let Ok(id) = Id::parse(name.trim_end_matches('-')) else { continue };
                let relayed = RelayedEvent { replica: replica.id.clone(), event };
                let key = Key::record(Collection::ServerEvents, &id);
                match store.put_json(&key, &relayed, PutCondition::Overwrite).await {
                    Ok(_) => {
                        seen.insert(key.to_string());
                        written.push_back((tokio::time::Instant::now(), id));
                    }
                    Err(e) => tracing::debug!("cannot relay an event: {e}"),
                }
            }
            () = tokio::time::sleep(RELAY_POLL) => {
                let keys = match watcher.poll().await {
                    Ok(keys) => keys,
                    Err(e) => { tracing::debug!("cannot list the relayed events: {e}"); continue; }
                };
                for key in keys {
                    if !seen.insert(key.clone()) {
                        // Ours, or already published (or its deletion).
                        continue;
                    }
                    let Some(id) = key.rsplit('/').next().and_then(|n| n.strip_suffix(".json")).and_then(|n| Id::parse(n).ok()) else { continue };
                    match store.get_json::<RelayedEvent>(&Key::record(Collection::ServerEvents, &id)).await {
                        Ok(Some(relayed)) if relayed.value.replica != replica.id => bus.publish_relayed(relayed.value.event),
                        Ok(_) => {}
                        Err(e) => tracing::debug!("cannot read a relayed event: {e}"),
                    }
                }
                while written.front().is_some_and(|(at, _)| at.elapsed() > RELAY_KEEP) {
                    if let Some((_, id)) = written.pop_front() {
                        let key = Key::record(Collection::ServerEvents, &id);
                        let _ = store.delete(&key).await;
                    }
                }
                if seen.len() > 100_000 {
                    seen.clear();
                }
            }
        }
    }
}
