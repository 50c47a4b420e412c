//! The cluster monitor inside a real server, on a real 2-node Swarm: a worker killed → the
//! admin's `/api/events` stream gets `node_down`, `degraded` and `healed` (a member of another
//! client gets none of them), `/metrics` shows the nodes by status and the heal time, and the
//! admin's Cluster page lists them (another client's Nodes page does not).

use crate::common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::models::{
    ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated, TaskSpec, TaskSpecContainerSpec, TaskSpecPlacement,
    TaskSpecRestartPolicy, TaskSpecRestartPolicyConditionEnum,
};
use common::TestServer;
use spawnit_cluster::{Cluster, MonitorConfig};
use spawnit_server::cluster_monitor::ClusterSetup;
use spawnit_store::Store;
use spawnit_testkit::swarm::{ClusterOptions, SwarmCluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_failure_reaches_the_event_stream_and_the_metrics() {
    let options = ClusterOptions { nodes: 2, images: vec!["spawnit-test/webapp:1".into()], ports: vec![] };
    let swarm = tokio::task::spawn_blocking(move || SwarmCluster::start("events", options))
        .await
        .unwrap()
        .expect("the test Swarm starts (images: scripts/test-images.sh)");
    let docker = bollard::Docker::connect_with_http(&swarm.manager_host(), 30, bollard::API_DEFAULT_VERSION).unwrap();
    let leases = tempfile::tempdir().unwrap();
    let cluster = Cluster::connect(docker.clone(), Store::open_local(leases.path()).unwrap());
    let setup =
        ClusterSetup { cluster: cluster.clone(), every: Duration::from_millis(500), monitor: MonitorConfig::default() };
    let t = TestServer::start(move |c| c.cluster = Some(setup)).await;
    let docker = docker.negotiate_version().await.unwrap();

    // The monitor puts both nodes in the pool; a service with a replica on each.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cluster.node_list().await.is_ok_and(|ns| ns.iter().all(|n| n.labels.contains_key("spawnit.pool"))) {
        assert!(Instant::now() < deadline, "nodes not in the pool");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let labels = HashMap::from([("spawnit.client".to_owned(), "acme".to_owned())]);
    let web = docker
        .create_service(
            ServiceSpec {
                name: Some("acme-web".into()),
                labels: Some(labels),
                task_template: Some(TaskSpec {
                    container_spec: Some(TaskSpecContainerSpec {
                        image: Some("spawnit-test/webapp:1".into()),
                        stop_grace_period: Some(1_000_000_000),
                        ..Default::default()
                    }),
                    placement: Some(TaskSpecPlacement {
                        constraints: Some(vec!["node.labels.spawnit.pool==true".into()]),
                        ..Default::default()
                    }),
                    restart_policy: Some(TaskSpecRestartPolicy {
                        condition: Some(TaskSpecRestartPolicyConditionEnum::ANY),
                        delay: Some(0),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                mode: Some(ServiceSpecMode {
                    replicated: Some(ServiceSpecModeReplicated { replicas: Some(2) }),
                    ..Default::default()
                }),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap()
        .id
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let nodes = cluster.node_list().await.unwrap();
        let on: usize =
            nodes.iter().filter(|n| n.tasks.iter().any(|t| t.service_id == web && t.state == "running")).count();
        if on == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "2 replicas on 2 nodes: {nodes:#?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    let mut admin = t.sse_as(&t.admin, "/api/events", None).await;
    let mut member = t.sse("/api/events", None).await;
    let killed = Instant::now();
    swarm.node_kill(1).expect("kill the worker");
    let (down, _) = admin.until(Duration::from_secs(30), "node_down", |e| e.event == "node_down").await;
    assert_eq!(down.data["type"], "node_down");
    assert_eq!(down.data["hostname"], swarm.nodes()[1].hostname.as_str());
    let detected = killed.elapsed();
    admin.until(Duration::from_secs(5), "degraded", |e| e.event == "degraded" && e.data["service"] == "acme-web").await;
    let (healed, _) = admin
        .until(Duration::from_secs(60), "healed", |e| e.event == "healed" && e.data["service"] == "acme-web")
        .await;
    println!(
        "[time] over the server: killed → node_down on /api/events {:.1} s; healed after {} s (killed → healed {:.1} s)",
        detected.as_secs_f64(),
        healed.data["heal_s"],
        killed.elapsed().as_secs_f64()
    );
    // Another client's member sees none of it.
    while let Some(e) = member.next(Duration::from_millis(500)).await {
        assert!(!["node_down", "degraded", "healed"].contains(&e.event.as_str()), "a member saw {e:?}");
    }

    let metrics = t.http.get(t.url("/metrics")).bearer_auth(&t.admin).send().await.unwrap().text().await.unwrap();
    let line = |prefix: &str| metrics.lines().find(|l| l.starts_with(prefix)).map(str::to_owned);
    assert_eq!(
        line("spawnit_cluster_nodes{status=\"down\"}").as_deref(),
        Some("spawnit_cluster_nodes{status=\"down\"} 1"),
        "{metrics}"
    );
    assert_eq!(
        line("spawnit_cluster_nodes{status=\"ready\"}").as_deref(),
        Some("spawnit_cluster_nodes{status=\"ready\"} 1"),
        "{metrics}"
    );
    assert!(line("spawnit_cluster_nodes_by_use{use=\"quarantined\"} 1").is_some(), "the dead node: {metrics}");
    assert!(line("spawnit_cluster_heal_seconds_count").is_some_and(|l| l.ends_with(" 1")), "{metrics}");
    assert!(line("spawnit_cluster_events_total{event=\"node_down\"}").is_some(), "{metrics}");
    assert!(metrics.contains("spawnit_task_runs_total{task=\"node_check\"}"), "{metrics}");

    // The pages: the admin's Cluster page lists the failure and the healing with its time; a
    // member of another client sees its own (empty) recent events, none of acme's.
    const PASSWORD: &str = "correct horse battery staple";
    t.user("root", "ops", spawnit_server::accounts::Role::Admin, PASSWORD).await;
    t.user("bob", &t.client, spawnit_server::accounts::Role::Member, PASSWORD).await;
    let root = t.sign_in("root", PASSWORD).await;
    let (status, page) = t.page(Some(&root), "/admin/nodes").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("data-event=\"node_down\"") && page.contains("data-event=\"healed\""), "{page}");
    assert!(page.contains("all replicas running again") && page.contains("acme-web"), "{page}");
    let bob = t.sign_in("bob", PASSWORD).await;
    let (status, page) = t.page(Some(&bob), "/nodes").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Recent events"), "the member's page has the section: {page}");
    assert!(!page.contains("acme-web") && !page.contains("data-event=\"healed\""), "{page}");

    docker.delete_service(&web).await.unwrap();
}
