//! Whole-node leases on a real 3-node Swarm (a manager and two workers; managers are never
//! rented): refusals naming the field, two clients racing for the last free node (exactly one
//! wins), a release → cleaned and back in the pool, a rented node failing → a replacement
//! rented to the same client and its task moved there, a lease ending → warned, the node
//! drained and cleaned (the client's tasks, volumes and secrets gone) and freed.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::models::SecretSpec;
use spawnit_cluster::{
    Availability, ClusterError, ClusterEvent, LABEL_CLIENT, LABEL_POOL, LeaseTarget, MonitorConfig, NodeStatus,
};
use spawnit_model::Id;

fn id(s: &str) -> Id {
    Id::parse(s).expect("id")
}

const HOUR: Duration = Duration::from_secs(3600);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_race_release_replace_expire() {
    let monitor = MonitorConfig { lease_warnings: vec![Duration::from_secs(5)], ..MonitorConfig::default() };
    let mut rig = common::rig("leases", 3, monitor).await;
    let cluster = rig.cluster.clone();
    common::wait_for("every node in the pool", Duration::from_secs(20), || {
        let cluster = cluster.clone();
        async move {
            let nodes = cluster.node_list().await.unwrap_or_default();
            nodes.len() == 3 && nodes.iter().all(|n| n.labels.get(LABEL_POOL).map(String::as_str) == Some("true"))
        }
    })
    .await;
    let w1 = rig.node_id(1).await;
    let w2 = rig.node_id(2).await;

    // ---- refusals change nothing ----
    match rig.cluster.node_rent(&id("acme"), 0, HOUR).await {
        Err(ClusterError::Invalid { field: "count", .. }) => {}
        other => panic!("{other:?}"),
    }
    match rig.cluster.node_rent(&id("acme"), 1, Duration::ZERO).await {
        Err(ClusterError::Invalid { field: "ttl", .. }) => {}
        other => panic!("{other:?}"),
    }
    match rig.cluster.node_rent(&id("acme"), 3, HOUR).await {
        Err(e @ ClusterError::Conflict { .. }) => assert_eq!(e.to_string(), "only 2 free nodes in the pool, 3 asked"),
        other => panic!("{other:?}"),
    }
    assert!(rig.cluster.lease_list(None).await.expect("leases").is_empty());

    // ---- acme rents one worker ----
    let leases = rig.cluster.node_rent(&id("acme"), 1, HOUR).await.expect("rent");
    assert_eq!(leases.len(), 1);
    assert_eq!(leases[0].node_id, w1, "workers in hostname order");
    let acme_expiry = leases[0].expires_at;
    let n = rig.cluster.node_show(&w1).await.expect("show");
    assert_eq!(n.client.as_ref().map(Id::as_str), Some("acme"));
    assert_eq!(n.labels.get(LABEL_CLIENT).map(String::as_str), Some("acme"));
    assert!(!n.labels.contains_key(LABEL_POOL), "{n:#?}");

    // ---- two clients race for the last free node: exactly one wins ----
    // Four handles (as four servers on one store), each in a task of its own, released together.
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(4));
    let racers: Vec<_> = ["racer-a", "racer-b", "racer-c", "racer-d"]
        .into_iter()
        .map(|client| {
            let (cluster, start) = (rig.cluster.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                (client, cluster.node_rent(&id(client), 1, HOUR).await)
            })
        })
        .collect();
    let mut won = Vec::new();
    for r in racers {
        let (client, outcome) = r.await.expect("racer");
        println!("{client}: {outcome:?}");
        match outcome {
            Ok(leases) => won.push(leases),
            Err(ClusterError::Conflict { reason }) => assert_eq!(reason, "only 0 free nodes in the pool, 1 asked"),
            Err(e) => panic!("{client}: {e}"),
        }
    }
    assert_eq!(won.len(), 1, "exactly one racer wins: {won:?}");
    let winner = won.remove(0);
    let loser = if winner[0].client.as_str() == "racer-a" { "racer-b" } else { "racer-a" };
    assert_eq!(winner[0].node_id, w2);
    let winner_client = winner[0].client.clone();
    assert!(rig.cluster.lease_list(Some(&id(loser))).await.expect("leases").is_empty());
    let n = rig.cluster.node_show(&w2).await.expect("show");
    assert_eq!(n.labels.get(LABEL_CLIENT), Some(&winner_client.to_string()));
    assert_eq!(rig.cluster.lease_list(None).await.expect("leases").len(), 2);

    // Another client cannot release or extend a lease it does not hold.
    match rig.cluster.lease_release(&id(loser), LeaseTarget::Node(w2.clone())).await {
        Err(ClusterError::NotFound { .. }) => {}
        other => panic!("{other:?}"),
    }
    let extended = rig.cluster.lease_extend(&winner_client, LeaseTarget::All, HOUR).await.expect("extend");
    assert!(extended[0].expires_at > winner[0].expires_at);

    // ---- the winner releases: cleaned, back in the pool ----
    rig.events_clear();
    let released_at = Instant::now();
    let released = rig.cluster.lease_release(&winner_client, LeaseTarget::All).await.expect("release");
    assert_eq!(released.len(), 1);
    let n = rig.cluster.node_show(&w2).await.expect("show");
    assert_eq!(n.availability, Availability::Drain, "quarantined at once: {n:#?}");
    assert_eq!(n.quarantine.as_deref(), Some("released"));
    let (cleaned_at, _) = rig
        .event(
            "node_cleaned of the released node",
            Duration::from_secs(60),
            |e| matches!(e, ClusterEvent::NodeCleaned { node_id, .. } if *node_id == w2),
        )
        .await;
    println!("[time] release → cleaned and back in the pool: {:.1} s", (cleaned_at - released_at).as_secs_f64());
    let n = rig.cluster.node_show(&w2).await.expect("show");
    assert!(n.is_free(), "{n:#?}");

    // ---- a rented node fails: a replacement for the same client, the task moves there ----
    let api = common::service_create(&rig.docker, "api", "acme", 1, "node.labels.spawnit.client==acme", None).await;
    let cluster = rig.cluster.clone();
    let (api_id, on_w1) = (api.clone(), w1.clone());
    common::wait_for("acme's task on its rented node", Duration::from_secs(60), || {
        let (cluster, api, w1) = (cluster.clone(), api_id.clone(), on_w1.clone());
        async move { common::running_on(&cluster, &api).await == [w1] }
    })
    .await;
    rig.events_clear();
    let killed = Instant::now();
    rig.swarm.node_kill(1).expect("kill the rented node");
    let (down_at, down) = rig
        .event(
            "node_down of the rented node",
            Duration::from_secs(30),
            |e| matches!(e, ClusterEvent::NodeDown { node_id, .. } if *node_id == w1),
        )
        .await;
    assert!(matches!(&down, ClusterEvent::NodeDown { client: Some(c), .. } if c.as_str() == "acme"), "{down:?}");
    let (replaced_at, replaced) =
        rig.event("lease_replaced", Duration::from_secs(30), |e| matches!(e, ClusterEvent::LeaseReplaced { .. })).await;
    assert!(
        matches!(&replaced, ClusterEvent::LeaseReplaced { client, from_node, to_node, .. }
            if client.as_str() == "acme" && *from_node == w1 && *to_node == w2),
        "{replaced:?}"
    );
    let leases = rig.cluster.lease_list(Some(&id("acme"))).await.expect("leases");
    assert_eq!(leases.len(), 1);
    assert_eq!((leases[0].node_id.as_str(), leases[0].expires_at), (w2.as_str(), acme_expiry), "same client, same end");
    let cluster = rig.cluster.clone();
    let (api_id, on_w2) = (api.clone(), w2.clone());
    common::wait_for("acme's task moved to the replacement", Duration::from_secs(60), || {
        let (cluster, api, w2) = (cluster.clone(), api_id.clone(), on_w2.clone());
        async move { common::running_on(&cluster, &api).await == [w2] }
    })
    .await;
    let moved_at = Instant::now();
    println!(
        "[time] rented node killed → node_down: {:.1} s; → lease_replaced: {:.1} s; → task running on the replacement: {:.1} s",
        (down_at - killed).as_secs_f64(),
        (replaced_at - killed).as_secs_f64(),
        (moved_at - killed).as_secs_f64()
    );

    // The failed node comes back: acme no longer rents it, so its volume goes.
    rig.swarm.node_start(1).expect("start node 1");
    rig.event(
        "node_cleaned of the failed node",
        Duration::from_secs(90),
        |e| matches!(e, ClusterEvent::NodeCleaned { node_id, .. } if *node_id == w1),
    )
    .await;
    let volumes = rig.swarm.docker(1, &["volume", "ls", "-q"]).expect("volumes of node 1");
    assert!(!volumes.contains("acme-api-data"), "acme's volume left the node it no longer rents: {volumes}");
    assert!(rig.cluster.node_show(&w1).await.expect("show").is_free());
    rig.docker.delete_service(&api).await.expect("service rm");

    // ---- a lease ends: warned, drained, cleaned (tasks, volumes, secrets), freed ----
    rig.events_clear();
    let brief = id("brief");
    let lease = rig.cluster.node_rent(&brief, 1, Duration::from_secs(15)).await.expect("rent for 15 s");
    let node = lease[0].node_id.clone();
    let index = if node == w1 { 1 } else { 2 };
    let secret = rig
        .docker
        .create_secret(SecretSpec {
            name: Some("brief-token".into()),
            labels: Some(HashMap::from([("spawnit.client".to_owned(), "brief".to_owned())])),
            data: Some("c2VjcmV0".into()),
            ..Default::default()
        })
        .await
        .expect("secret")
        .id;
    let job = common::service_create(
        &rig.docker,
        "job",
        "brief",
        1,
        "node.labels.spawnit.client==brief",
        Some((&secret, "brief-token")),
    )
    .await;
    let cluster = rig.cluster.clone();
    let (job_id, on) = (job.clone(), node.clone());
    common::wait_for("brief's task on its rented node", Duration::from_secs(60), || {
        let (cluster, job, on) = (cluster.clone(), job_id.clone(), on.clone());
        async move { common::running_on(&cluster, &job).await == [on] }
    })
    .await;
    let volumes = rig.swarm.docker(index, &["volume", "ls", "-q"]).expect("volumes");
    assert!(volumes.contains("brief-job-data"), "{volumes}");
    let (warned_at, _) = rig
        .event("node_lease_warning", Duration::from_secs(20), |e| matches!(e, ClusterEvent::NodeLeaseWarning { .. }))
        .await;
    let (expired_at, _) = rig
        .event(
            "node_lease_expired",
            Duration::from_secs(20),
            |e| matches!(e, ClusterEvent::NodeLeaseExpired { client, .. } if client.as_str() == "brief"),
        )
        .await;
    // The client's service goes with its lease (as a destroy at lease end would do).
    rig.docker.delete_service(&job).await.expect("service rm");
    let (cleaned_at, _) = rig
        .event("node_cleaned after the lease", Duration::from_secs(90), |e| {
            matches!(e, ClusterEvent::NodeCleaned { node_id, reason, .. } if *node_id == node && reason == "lease_expired")
        })
        .await;
    println!(
        "[time] lease warning {:.1} s before its end; lease end → cleaned and freed: {:.1} s",
        (expired_at - warned_at).as_secs_f64(),
        (cleaned_at - expired_at).as_secs_f64()
    );
    let n = rig.cluster.node_show(&node).await.expect("show");
    assert!(n.is_free() && n.status == NodeStatus::Ready, "{n:#?}");
    assert!(rig.cluster.lease_list(Some(&brief)).await.expect("leases").is_empty());
    let volumes = rig.swarm.docker(index, &["volume", "ls", "-q"]).expect("volumes");
    assert!(!volumes.contains("brief-job-data"), "{volumes}");
    let secrets =
        rig.swarm.docker(0, &["secret", "ls", "-q", "--filter", "label=spawnit.client=brief"]).expect("secrets");
    assert_eq!(secrets.trim(), "", "brief's secret is gone");
}
