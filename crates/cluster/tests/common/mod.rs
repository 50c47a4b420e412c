//! What the cluster tests share: a real multi-node Swarm (spawnit-testkit), a [`Cluster`] on its
//! manager over a local store, the node monitor running in the background with its events
//! timestamped, and services made directly through the manager's API.
#![allow(dead_code)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{
    Mount, MountTypeEnum, MountVolumeOptions, ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated, TaskSpec,
    TaskSpecContainerSpec, TaskSpecPlacement, TaskSpecRestartPolicy, TaskSpecRestartPolicyConditionEnum,
};
use spawnit_cluster::{Cluster, ClusterConfig, ClusterEvent, ClusterMonitor, MonitorConfig};
use spawnit_store::Store;
use spawnit_testkit::swarm::{ClusterOptions, SwarmCluster};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The images every node gets: the service stand-in and the cleaning job's image.
pub const IMAGES: [&str; 2] = ["spawnit-test/webapp:1", "docker:cli"];

/// How often the monitor checks in the tests.
pub const CHECK_EVERY: Duration = Duration::from_millis(500);

/// A cluster, SpawnIt's handle on it and the monitor's events.
pub struct Rig {
    pub swarm: SwarmCluster,
    pub cluster: Cluster,
    pub docker: Docker,
    pub events: mpsc::UnboundedReceiver<(Instant, ClusterEvent)>,
    /// Every event seen so far, for the failure messages.
    pub seen: Vec<(Instant, ClusterEvent)>,
    pub stop: CancellationToken,
    _store_dir: tempfile::TempDir,
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub async fn connect(host: &str) -> Docker {
    let docker = Docker::connect_with_http(host, 30, bollard::API_DEFAULT_VERSION).expect("docker client");
    docker.negotiate_version().await.expect("the manager answers")
}

/// Starts a Swarm of `nodes` nodes (node 0 the manager) and the monitor with `monitor`.
pub async fn rig(name: &str, nodes: usize, monitor: MonitorConfig) -> Rig {
    let started = Instant::now();
    let options = ClusterOptions { nodes, images: IMAGES.iter().map(|s| s.to_string()).collect(), ports: vec![] };
    let name = name.to_owned();
    let swarm = tokio::task::spawn_blocking(move || SwarmCluster::start(&name, options))
        .await
        .expect("start thread")
        .expect("the test Swarm starts (images: scripts/test-images.sh)");
    println!("[time] cluster of {nodes} nodes up in {:.1} s", started.elapsed().as_secs_f64());
    let docker = connect(&swarm.manager_host()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open_local(dir.path()).expect("store");
    let config =
        ClusterConfig { clean_timeout: Duration::from_secs(60), secret_min_age: Duration::ZERO, ..Default::default() };
    let cluster = Cluster::connect(docker.clone(), store).with_config(config);
    let (tx, events) = mpsc::unbounded_channel();
    let stop = CancellationToken::new();
    let mut monitor = ClusterMonitor::new(cluster.clone(), monitor);
    let stopped = stop.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(CHECK_EVERY);
        loop {
            tokio::select! {
                _ = stopped.cancelled() => return,
                _ = tick.tick() => match monitor.check().await {
                    Ok(check) => {
                        for e in check.errors {
                            println!("[monitor] {e}");
                        }
                        for e in check.events {
                            println!("[event] {}", serde_json::to_string(&e).unwrap_or_default());
                            if tx.send((Instant::now(), e)).is_err() {
                                return;
                            }
                        }
                    }
                    Err(e) => println!("[monitor] check failed: {}", spawnit_cluster::chain(&e)),
                },
            }
        }
    });
    Rig { swarm, cluster, docker, events, seen: Vec::new(), stop, _store_dir: dir }
}

impl Rig {
    /// Waits up to `limit` for an event matching `want`; returns it with when it came.
    pub async fn event(
        &mut self,
        what: &str,
        limit: Duration,
        want: impl Fn(&ClusterEvent) -> bool,
    ) -> (Instant, ClusterEvent) {
        if let Some(hit) = self.seen.iter().find(|(_, e)| want(e)) {
            return hit.clone();
        }
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some((at, e))) => {
                    self.seen.push((at, e.clone()));
                    if want(&e) {
                        return (at, e);
                    }
                }
                _ => panic!(
                    "no {what} within {} s; events: {:#?}\nnodes:\n{}",
                    limit.as_secs(),
                    self.seen.iter().map(|(_, e)| e).collect::<Vec<_>>(),
                    self.swarm.node_table().unwrap_or_default()
                ),
            }
        }
    }

    /// Forgets the events seen so far (a new scenario starts).
    pub fn events_clear(&mut self) {
        while let Ok(e) = self.events.try_recv() {
            self.seen.push(e);
        }
        self.seen.clear();
    }

    /// The Swarm node id of harness node `i`.
    pub async fn node_id(&self, i: usize) -> String {
        let hostname = self.swarm.nodes()[i].hostname.clone();
        let nodes = self.cluster.node_list().await.expect("node list");
        nodes.into_iter().find(|n| n.hostname == hostname).map(|n| n.id).expect("the node is in the list")
    }
}

/// A replicated service made directly through the manager, as the swarm provider would: owner
/// labels, a named volume labelled with the client, restart at once, a short stop grace.
pub async fn service_create(
    docker: &Docker,
    name: &str,
    client: &str,
    replicas: i64,
    constraint: &str,
    secret: Option<(&str, &str)>,
) -> String {
    let labels = HashMap::from([
        ("spawnit.client".to_owned(), client.to_owned()),
        ("spawnit.service".to_owned(), name.to_owned()),
    ]);
    let secrets = secret.map(|(id, secret_name)| {
        vec![bollard::models::TaskSpecContainerSpecSecrets {
            file: Some(bollard::models::TaskSpecContainerSpecFile {
                name: Some(secret_name.to_owned()),
                uid: Some("0".into()),
                gid: Some("0".into()),
                mode: Some(0o400),
            }),
            secret_id: Some(id.to_owned()),
            secret_name: Some(secret_name.to_owned()),
        }]
    });
    let spec = ServiceSpec {
        name: Some(format!("{client}-{name}")),
        labels: Some(labels.clone()),
        task_template: Some(TaskSpec {
            container_spec: Some(TaskSpecContainerSpec {
                image: Some("spawnit-test/webapp:1".into()),
                labels: Some(labels.clone()),
                stop_grace_period: Some(1_000_000_000),
                mounts: Some(vec![Mount {
                    target: Some("/data".into()),
                    source: Some(format!("{client}-{name}-data")),
                    typ: Some(MountTypeEnum::VOLUME),
                    volume_options: Some(MountVolumeOptions { labels: Some(labels), ..Default::default() }),
                    ..Default::default()
                }]),
                secrets,
                ..Default::default()
            }),
            placement: Some(TaskSpecPlacement { constraints: Some(vec![constraint.to_owned()]), ..Default::default() }),
            restart_policy: Some(TaskSpecRestartPolicy {
                condition: Some(TaskSpecRestartPolicyConditionEnum::ANY),
                delay: Some(0),
                ..Default::default()
            }),
            ..Default::default()
        }),
        mode: Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated { replicas: Some(replicas) }),
            ..Default::default()
        }),
        ..Default::default()
    };
    docker.create_service(spec, None).await.expect("service create").id.expect("service id")
}

/// The nodes (by id) running a task of `service` now.
pub async fn running_on(cluster: &Cluster, service_id: &str) -> Vec<String> {
    let mut on = Vec::new();
    for n in cluster.node_list().await.expect("node list") {
        for t in &n.tasks {
            if t.service_id == service_id && t.state == "running" && t.desired_state == "running" {
                on.push(n.id.clone());
            }
        }
    }
    on
}

/// Polls `ready` every 250 ms until it holds or `limit` passes.
pub async fn wait_for<F: std::future::Future<Output = bool>>(
    what: &str,
    limit: Duration,
    mut ready: impl FnMut() -> F,
) {
    let deadline = Instant::now() + limit;
    while !ready().await {
        assert!(Instant::now() < deadline, "{what}: not within {} s", limit.as_secs());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
