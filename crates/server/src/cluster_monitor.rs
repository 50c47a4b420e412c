//! The cluster monitor: a background task of `spawnit serve`, started only when a Swarm
//! manager is configured, that checks the cluster's nodes every `every` (see
//! [`spawnit_cluster::monitor`] for the rules: node down, services degraded and healed, a
//! returning node quarantined and cleaned, a failed rented node replaced, node leases warned
//! and ended). Its events go out on the event bus (`/api/events`, the pages' live stream), its
//! counts and measured times to `/metrics`, each check's run to the task board.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use spawnit_model::Id;

use spawnit_cluster::{Cluster, ClusterMonitor, MonitorConfig};
use tokio_util::sync::CancellationToken;

use crate::events::{EventBus, ServerEvent};
use crate::metrics::Metrics;
use crate::tasks::{Task, TaskRuns};

/// How many of the monitor's last events the pages show.
pub const EVENTS_KEPT: usize = 50;

/// The cluster monitor's last events in memory, newest first, for the Cluster and Nodes pages
/// (`/api/events` streams them as they come).
#[derive(Clone, Default)]
pub struct ClusterBoard {
    events: Arc<Mutex<VecDeque<spawnit_cluster::ClusterEvent>>>,
}

impl ClusterBoard {
    pub fn record(&self, event: &spawnit_cluster::ClusterEvent) {
        let mut events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        events.push_front(event.clone());
        events.truncate(EVENTS_KEPT);
    }

    /// The last events, newest first: all of them (`None`: an admin's view) or those that
    /// concern `client` (its services and the nodes it rents).
    pub fn recent(&self, client: Option<&Id>) -> Vec<spawnit_cluster::ClusterEvent> {
        let events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        events.iter().filter(|e| client.is_none() || e.client() == client).cloned().collect()
    }
}

/// How the cluster monitor runs.
#[derive(Clone, Debug)]
pub struct ClusterSetup {
    /// The cluster, through one of its managers.
    pub cluster: Cluster,
    /// Time between two checks.
    pub every: Duration,
    pub monitor: MonitorConfig,
}

/// The running monitor's parts.
pub struct ClusterMonitorTask {
    pub monitor: ClusterMonitor,
    pub every: Duration,
    pub bus: EventBus,
    pub metrics: Arc<Metrics>,
    pub tasks: TaskRuns,
    pub board: ClusterBoard,
}

impl ClusterMonitorTask {
    pub fn new(
        setup: ClusterSetup,
        bus: EventBus,
        metrics: Arc<Metrics>,
        tasks: TaskRuns,
        board: ClusterBoard,
    ) -> ClusterMonitorTask {
        ClusterMonitorTask {
            monitor: ClusterMonitor::new(setup.cluster, setup.monitor),
            every: setup.every,
            bus,
            metrics,
            tasks,
            board,
        }
    }

    /// Checks every `every` until `stop` is cancelled (a cleaning in progress is aborted then:
    /// the node stays quarantined and the next server cleans it).
    pub async fn run(mut self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(self.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {
                    let check = self.tasks.run(Task::NodeCheck, async {
                        self.monitor.check().await.map_err(|e| spawnit_cluster::chain(&e))
                    }).await;
                    match check {
                        Ok(check) if check.standby => {}
                        Ok(check) => {
                            for error in &check.errors {
                                tracing::warn!("cluster monitor: {error}");
                            }
                            self.metrics.cluster_check(&check);
                            for event in check.events {
                                tracing::info!(event = event.name(), "cluster: {}", serde_json::to_string(&event).unwrap_or_default());
                                self.board.record(&event);
                                self.bus.publish(ServerEvent::Cluster(event));
                            }
                        }
                        Err(e) => tracing::warn!("cluster check failed: {e}"),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use spawnit_cluster::{ClusterEvent, NodeStatus};

    use crate::events::ServerEvent;

    #[test]
    fn a_cluster_event_goes_out_as_itself_and_only_admins_see_a_pool_node() {
        let at = chrono::Utc::now();
        let e = ServerEvent::Cluster(ClusterEvent::NodeDown {
            node_id: "n1".into(),
            hostname: "w1".into(),
            status: NodeStatus::Down,
            client: None,
            at,
        });
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["type"], "node_down");
        assert_eq!(json["hostname"], "w1");
        assert_eq!(e.name(), "node_down");
        assert!(e.client().is_none());
    }
}
