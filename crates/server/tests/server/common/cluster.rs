//! A real Swarm cluster for the server's tests (the lead's harness, `spawnit_testkit::swarm`:
//! each node a container running its own Docker engine) and a [`TestServer`] holding a
//! [`Cluster`] on its manager, with the lease book in the server's store.

use std::time::{Duration, Instant};

use serde_json::Value;
use spawnit_cluster::{Cluster, MonitorConfig};
use spawnit_server::cluster_monitor::ClusterSetup;
use spawnit_testkit::swarm::{ClusterOptions, SwarmCluster};

use super::TestServer;

/// Starts a Swarm of `nodes` nodes (node 0 the manager), all joined and ready.
pub async fn swarm_start(name: &str, nodes: usize) -> SwarmCluster {
    let name = name.to_owned();
    tokio::task::spawn_blocking(move || {
        SwarmCluster::start(&name, ClusterOptions { nodes, images: Vec::new(), ports: Vec::new() }).unwrap_or_else(
            |e| panic!("a {nodes}-node swarm: {e} (does scripts/test-images.sh build spawnit-test/swarm-node:1?)"),
        )
    })
    .await
    .expect("the harness's thread")
}

/// The manager's Docker API, its version negotiated.
pub async fn manager(swarm: &SwarmCluster) -> bollard::Docker {
    let host = swarm.manager_host();
    let docker = bollard::Docker::connect_with_http(&host, 30, bollard::API_DEFAULT_VERSION)
        .unwrap_or_else(|e| panic!("connect to the manager at {host}: {e}"));
    docker.negotiate_version().await.unwrap_or_else(|e| panic!("the manager at {host} does not answer: {e}"))
}

/// A server whose cluster is `swarm`, its monitor checking every second.
pub async fn server_on(swarm: &SwarmCluster) -> TestServer {
    let docker = manager(swarm).await;
    TestServer::start_with(move |cfg, store| {
        cfg.cluster = Some(ClusterSetup {
            cluster: Cluster::connect(docker, store.clone()),
            every: Duration::from_secs(1),
            monitor: MonitorConfig::default(),
        })
    })
    .await
}

impl TestServer {
    /// A call with `token` (the admin's, another member's).
    pub async fn call_as(&self, token: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_else(|e| panic!("read the answer to {path}: {e}"));
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// The admin's view of every node.
    pub async fn nodes(&self) -> Vec<Value> {
        let (status, body) = self.call_as(&self.admin, reqwest::Method::GET, "/api/nodes", None).await;
        assert_eq!(status, 200, "{body}");
        body["nodes"].as_array().unwrap_or_else(|| panic!("no nodes in {body}")).clone()
    }

    /// Waits until the admin's node list satisfies `ok`; returns it.
    pub async fn nodes_until(&self, what: &str, timeout: Duration, ok: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let nodes = self.nodes().await;
            if ok(&nodes) {
                return nodes;
            }
            assert!(Instant::now() < deadline, "{what} did not happen within {timeout:?}: {nodes:#?}");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}
