//! The nodes of a real 3-node Swarm (one machine, each node a Docker engine in a container):
//! list with engine version, CPUs and memory; the join command run inside a fresh engine; a node
//! killed → `node_down`, its service `degraded` then `healed` with the measured time; the node
//! started again → quarantined, its stale tasks gone, its volumes removed, back in the pool;
//! drain, activate, and what is refused; a service that cannot be placed says why; a second
//! monitor on the same store stands by. One
//! cluster, the scenarios in order.

mod common;

use std::time::{Duration, Instant};

use spawnit_cluster::{
    Availability, ClusterError, ClusterEvent, LABEL_POOL, LABEL_QUARANTINE, MonitorConfig, NodeRole, NodeStatus,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_list_join_fail_heal_return_clean() {
    let mut rig = common::rig("nodes", 3, MonitorConfig::default()).await;

    // ---- list ----
    let nodes = rig.cluster.node_list().await.expect("node list");
    for n in &nodes {
        println!(
            "{} {} {:?} {:?} {:?} engine {} cpus {} memory {} MiB",
            n.hostname,
            n.address,
            n.role,
            n.status,
            n.availability,
            n.engine_version,
            n.cpus,
            n.memory_bytes >> 20
        );
    }
    assert_eq!(nodes.len(), 3);
    assert!(nodes.iter().all(|n| n.status == NodeStatus::Ready), "{nodes:#?}");
    assert_eq!(nodes.iter().filter(|n| n.role == NodeRole::Manager).count(), 1);
    assert!(nodes[0].leader && nodes[0].role == NodeRole::Manager, "managers first: {nodes:#?}");
    for n in &nodes {
        assert!(!n.engine_version.is_empty() && n.cpus > 0.0 && n.memory_bytes > 0, "{n:#?}");
        assert!(!n.address.is_empty(), "{n:#?}");
    }
    let shown = rig.cluster.node_show(&rig.swarm.nodes()[1].hostname).await.expect("show by hostname");
    assert_eq!(shown.id, nodes.iter().find(|n| n.hostname == shown.hostname).unwrap().id);
    match rig.cluster.node_show("no-such-node").await {
        Err(e @ ClusterError::NotFound { .. }) => assert_eq!(e.to_string(), "node no-such-node not found"),
        other => panic!("{other:?}"),
    }
    match rig.cluster.node_show("../etc").await {
        Err(ClusterError::Invalid { field: "node", .. }) => {}
        other => panic!("{other:?}"),
    }

    // The monitor puts every node in the pool.
    let cluster = rig.cluster.clone();
    common::wait_for("every node in the pool", Duration::from_secs(20), || {
        let cluster = cluster.clone();
        async move {
            let nodes = cluster.node_list().await.unwrap_or_default();
            nodes.len() == 3 && nodes.iter().all(|n| n.labels.get(LABEL_POOL).map(String::as_str) == Some("true"))
        }
    })
    .await;

    // A second monitor on the same store (a second `serve`) stands by while the first acts:
    // the first has just enrolled the nodes, the second observes nothing and acts on nothing.
    let mut second = spawnit_cluster::ClusterMonitor::new(rig.cluster.clone(), MonitorConfig::default());
    let check = second.check().await.expect("second monitor's check");
    assert!(check.standby && check.events.is_empty() && check.nodes_by_status.is_empty(), "{check:?}");
    let claim = rig.cluster.store().lease_book().await.expect("book").expect("written").value.monitor;
    assert!(claim.is_some_and(|c| c.expires_at > chrono::Utc::now()), "the first monitor holds a live claim");

    // ---- a service with 3 replicas spread over the 3 nodes ----
    let web = common::service_create(&rig.docker, "web", "acme", 3, "node.labels.spawnit.pool==true", None).await;
    let cluster = rig.cluster.clone();
    let web_id = web.clone();
    common::wait_for("3 replicas running on 3 nodes", Duration::from_secs(60), || {
        let (cluster, web) = (cluster.clone(), web_id.clone());
        async move {
            let mut on = common::running_on(&cluster, &web).await;
            on.sort();
            on.dedup();
            on.len() == 3
        }
    })
    .await;
    let victim = rig.node_id(2).await;
    let volumes = rig.swarm.docker(2, &["volume", "ls", "-q"]).expect("volumes of node 2");
    assert!(volumes.contains("acme-web-data"), "the replica's volume is on node 2: {volumes}");

    // ---- node 2 killed ----
    rig.events_clear();
    let killed = Instant::now();
    rig.swarm.node_kill(2).expect("kill node 2");
    let (down_at, _) = rig
        .event(
            "node_down of node 2",
            Duration::from_secs(30),
            |e| matches!(e, ClusterEvent::NodeDown { node_id, .. } if *node_id == victim),
        )
        .await;
    let (_, degraded) = rig
        .event(
            "web degraded",
            Duration::from_secs(5),
            |e| matches!(e, ClusterEvent::ServiceDegraded { service_id, .. } if *service_id == web),
        )
        .await;
    assert!(
        matches!(&degraded, ClusterEvent::ServiceDegraded { desired: 3, client: Some(c), node_id, .. } if c.as_str() == "acme" && *node_id == victim),
        "{degraded:?}"
    );
    let (healed_at, healed) = rig
        .event(
            "web healed",
            Duration::from_secs(60),
            |e| matches!(e, ClusterEvent::ServiceHealed { service_id, .. } if *service_id == web),
        )
        .await;
    let ClusterEvent::ServiceHealed { heal_s, .. } = healed else { unreachable!() };
    let on = common::running_on(&rig.cluster, &web).await;
    assert_eq!(on.len(), 3, "3 replicas again");
    assert!(!on.contains(&victim), "none on the dead node: {on:?}");
    println!(
        "[time] node killed → node_down detected: {:.1} s; node_down → healed (reported heal_s): {heal_s:.1} s; killed → healed: {:.1} s",
        (down_at - killed).as_secs_f64(),
        (healed_at - killed).as_secs_f64()
    );
    let shown = rig.cluster.node_show(&victim).await.expect("show the dead node");
    assert_eq!(shown.status, NodeStatus::Down);
    assert_eq!(shown.availability, Availability::Drain, "quarantined at once: {shown:#?}");
    assert_eq!(shown.quarantine.as_deref(), Some("down"));

    // ---- node 2 started again: quarantined, cleaned, back in the pool ----
    let started = Instant::now();
    rig.swarm.node_start(2).expect("start node 2");
    let (returned_at, _) = rig
        .event(
            "node_returned of node 2",
            Duration::from_secs(60),
            |e| matches!(e, ClusterEvent::NodeReturned { node_id, .. } if *node_id == victim),
        )
        .await;
    let shown = rig.cluster.node_show(&victim).await.expect("show the returned node");
    assert_eq!(shown.availability, Availability::Drain, "{shown:#?}");
    assert!(shown.quarantine.is_some(), "{shown:#?}");
    let (cleaned_at, cleaned) = rig
        .event(
            "node_cleaned of node 2",
            Duration::from_secs(90),
            |e| matches!(e, ClusterEvent::NodeCleaned { node_id, .. } if *node_id == victim),
        )
        .await;
    let ClusterEvent::NodeCleaned { clean_s, .. } = cleaned else { unreachable!() };
    println!(
        "[time] node started → node_returned: {:.1} s; returned → cleaned and back in the pool: {:.1} s (cleaning itself {clean_s:.1} s)",
        (returned_at - started).as_secs_f64(),
        (cleaned_at - returned_at).as_secs_f64()
    );
    let shown = rig.cluster.node_show(&victim).await.expect("show the cleaned node");
    assert_eq!(shown.availability, Availability::Active, "{shown:#?}");
    assert_eq!(shown.labels.get(LABEL_POOL).map(String::as_str), Some("true"), "{shown:#?}");
    assert!(!shown.labels.contains_key(LABEL_QUARANTINE), "{shown:#?}");
    assert!(shown.tasks.iter().all(|t| t.state != "running"), "no stale task runs: {:#?}", shown.tasks);
    let containers =
        rig.swarm.docker(2, &["ps", "-aq", "--filter", "label=com.docker.swarm.service.name=acme-web"]).expect("ps");
    assert_eq!(containers.trim(), "", "the stale replica's container is gone");
    let volumes = rig.swarm.docker(2, &["volume", "ls", "-q"]).expect("volumes of node 2");
    assert!(!volumes.contains("acme-web-data"), "the stale volume is removed: {volumes}");
    // Swarm does not move tasks back to a returning node; the service stayed whole meanwhile.
    assert_eq!(common::running_on(&rig.cluster, &web).await.len(), 3);

    // ---- the join command, run inside a fresh engine ----
    let join = rig.cluster.join_command(NodeRole::Worker).await.expect("join command");
    println!("join: {}", join.command);
    assert!(join.command.starts_with("docker swarm join --token SWMTKN-"), "{join:?}");
    assert!(
        join.command.ends_with(&format!(" {}", join.manager_addr)) && join.manager_addr.ends_with(":2377"),
        "{join:?}"
    );
    let fresh = rig.swarm.node_add().expect("a fresh engine");
    let asked = Instant::now();
    rig.swarm.exec(fresh, &join.command).expect("the node runs the join command");
    let hostname = rig.swarm.nodes()[fresh].hostname.clone();
    let (joined_at, _) = rig
        .event(
            "node_joined of the fresh node",
            Duration::from_secs(30),
            |e| matches!(e, ClusterEvent::NodeJoined { hostname: h, .. } if *h == hostname),
        )
        .await;
    println!("[time] join command run → node_joined: {:.1} s", (joined_at - asked).as_secs_f64());
    let cluster = rig.cluster.clone();
    let h = hostname.clone();
    common::wait_for("the fresh node Ready in the pool", Duration::from_secs(20), || {
        let (cluster, h) = (cluster.clone(), h.clone());
        async move {
            cluster.node_show(&h).await.is_ok_and(|n| {
                n.status == NodeStatus::Ready && n.labels.get(LABEL_POOL).map(String::as_str) == Some("true")
            })
        }
    })
    .await;

    // ---- drain, activate; removing a node that is up is refused ----
    let drained = rig.cluster.node_drain(&hostname).await.expect("drain");
    assert_eq!(drained.availability, Availability::Drain);
    let active = rig.cluster.node_activate(&hostname).await.expect("activate");
    assert_eq!(active.availability, Availability::Active);
    match rig.cluster.node_remove(&hostname, false).await {
        Err(e @ ClusterError::Conflict { .. }) => println!("remove refused: {e}"),
        other => panic!("removing a node that is up must be refused: {other:?}"),
    }
    assert_eq!(rig.cluster.node_list().await.expect("list").len(), 4);

    // ---- a service whose task cannot be placed says why ----
    let stuck =
        common::service_create(&rig.docker, "stuck", "acme", 1, "node.labels.spawnit.client==nobody", None).await;
    let (_, unplaced) = rig
        .event(
            "unplaced",
            Duration::from_secs(30),
            |e| matches!(e, ClusterEvent::ServiceUnplaced { service_id, .. } if *service_id == stuck),
        )
        .await;
    let ClusterEvent::ServiceUnplaced { reason, .. } = &unplaced else { unreachable!() };
    println!("unplaced: {reason}");
    assert!(reason.contains("no suitable node"), "Swarm's reason: {reason}");

    rig.docker.delete_service(&stuck).await.expect("service rm");
    rig.docker.delete_service(&web).await.expect("service rm");
}
