//! The nodes and leases API over real HTTP against a real server holding a real Swarm cluster
//! (the harness's nodes: containers each running a Docker engine): admins list, show, drain,
//! activate and remove nodes and get the join command, which a fresh engine runs to join;
//! members get 403 there. A client rents whole nodes, extends and releases its own leases;
//! bad input is a 422 naming the field, with nothing changed. A server without a cluster says
//! so on every route. (Another client's view of a rented node: the sweep in security.rs.)

use crate::common;

use std::time::Duration;

use common::cluster::*;
use common::*;
use reqwest::Method as M;
use serde_json::{Value, json};
use spawnit_server::accounts::Role;

fn field(body: &Value) -> &str {
    body["error"]["details"][0]["field"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_list_show_drain_activate_join_and_remove_nodes_members_are_refused() {
    let swarm = swarm_start("api-nodes", 3).await;
    let t = server_on(&swarm).await;

    // Every node: one leader manager and two workers, ready and active, with their engine and size.
    let nodes = t
        .nodes_until("3 ready nodes", Duration::from_secs(30), |n| {
            n.len() == 3 && n.iter().all(|n| n["status"] == "ready")
        })
        .await;
    let hostnames: Vec<&str> = nodes.iter().map(|n| n["hostname"].as_str().unwrap()).collect();
    for node in swarm.nodes() {
        assert!(hostnames.contains(&node.hostname.as_str()), "{} is not listed: {hostnames:?}", node.hostname);
    }
    let managers: Vec<&Value> = nodes.iter().filter(|n| n["role"] == "manager").collect();
    assert_eq!(managers.len(), 1, "{nodes:#?}");
    assert_eq!(managers[0]["leader"], true);
    for n in &nodes {
        assert_eq!(n["availability"], "active", "{n}");
        assert!(n["engine_version"].as_str().is_some_and(|v| !v.is_empty()), "{n}");
        assert!(n["cpus"].as_f64().is_some_and(|c| c > 0.0), "{n}");
        assert!(n["memory_bytes"].as_u64().is_some_and(|m| m > 0), "{n}");
        assert!(n["address"].as_str().is_some_and(|a| !a.is_empty()), "{n}");
        assert!(n["client"].is_null() && n["quarantine"].is_null(), "a fresh node is a pool node: {n}");
        assert!(n["tasks"].is_array(), "{n}");
    }
    let worker = nodes.iter().find(|n| n["role"] == "worker").unwrap();
    let (id, hostname) = (worker["id"].as_str().unwrap(), worker["hostname"].as_str().unwrap());

    // One node, by id or by hostname.
    let (status, by_id) = t.call_as(&t.admin, M::GET, &format!("/api/nodes/{id}"), None).await;
    assert_eq!(status, 200, "{by_id}");
    let (status, by_name) = t.call_as(&t.admin, M::GET, &format!("/api/nodes/{hostname}"), None).await;
    assert_eq!(status, 200, "{by_name}");
    assert_eq!((by_id["id"].as_str(), by_name["id"].as_str()), (Some(id), Some(id)));
    assert_eq!(by_id["hostname"], hostname);

    // Drain, then activate again: the answer is the node as it is after.
    let (status, drained) = t.call_as(&t.admin, M::POST, &format!("/api/nodes/{hostname}/drain"), None).await;
    assert_eq!(status, 200, "{drained}");
    assert_eq!(drained["availability"], "drain", "{drained}");
    assert_eq!(
        swarm.docker(0, &["node", "inspect", hostname, "--format", "{{.Spec.Availability}}"]).unwrap().trim(),
        "drain"
    );
    let (status, active) = t.call_as(&t.admin, M::POST, &format!("/api/nodes/{id}/activate"), None).await;
    assert_eq!(status, 200, "{active}");
    assert_eq!(active["availability"], "active", "{active}");
    let (_, audit) = t.call_as(&t.admin, M::GET, "/api/audit", None).await;
    let actions: Vec<&str> = audit["entries"].as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
    assert!(actions.contains(&"node_drain") && actions.contains(&"node_activate"), "{actions:?}");

    // Bad input: a 422 naming the field; an unknown node: 404.
    for bad in ["bad!node", "-x", "a..b/c"] {
        let path = format!("/api/nodes/{}", bad.replace('/', "%2F"));
        let (status, body) = t.call_as(&t.admin, M::GET, &path, None).await;
        assert_eq!((status, field(&body)), (422, "node"), "{bad}: {body}");
    }
    let (status, body) = t.call_as(&t.admin, M::POST, "/api/nodes/nosuchnode/drain", None).await;
    assert_eq!(status, 404, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("nosuchnode"), "{body}");
    let (status, body) = t.call_as(&t.admin, M::GET, "/api/nodes/join-token?role=boss", None).await;
    assert_eq!((status, field(&body)), (422, "role"), "{body}");

    // The join commands: the exact line, a worker's and a manager's token differ.
    let (status, join) = t.call_as(&t.admin, M::GET, "/api/nodes/join-token", None).await;
    assert_eq!(status, 200, "{join}");
    let command = join["command"].as_str().unwrap().to_owned();
    assert!(command.starts_with("docker swarm join --token SWMTKN-") && command.ends_with(":2377"), "{command}");
    assert_eq!(join["role"], "worker");
    assert!(join["hint"].as_str().unwrap().contains("2377"), "{join}");
    let (status, as_manager) = t.call_as(&t.admin, M::GET, "/api/nodes/join-token?role=manager", None).await;
    assert_eq!(status, 200, "{as_manager}");
    assert_eq!(as_manager["role"], "manager");
    assert_ne!(as_manager["command"], join["command"]);

    // Members: 403 on every node route, whatever they name.
    for (method, path) in [
        (M::GET, "/api/nodes".to_owned()),
        (M::GET, format!("/api/nodes/{id}")),
        (M::GET, "/api/nodes/bad!node".to_owned()),
        (M::GET, "/api/nodes/join-token".to_owned()),
        (M::GET, "/api/nodes/join-token?role=boss".to_owned()),
        (M::POST, format!("/api/nodes/{id}/drain")),
        (M::POST, format!("/api/nodes/{id}/activate")),
        (M::DELETE, format!("/api/nodes/{id}")),
    ] {
        let (status, body) = t.call_as(&t.token, method.clone(), &path, None).await;
        assert_eq!(status, 403, "{method} {path} as a member: {body}");
        let text = body.to_string();
        assert!(!text.contains("SWMTKN") && !text.contains(hostname), "{method} {path} leaks: {text}");
    }
    assert_eq!(t.nodes().await.iter().find(|n| n["id"] == id).unwrap()["availability"], "active");

    // The printed command joins a fresh engine: a fourth node, ready.
    let mut swarm = swarm;
    let fresh = tokio::task::block_in_place(|| swarm.node_add()).expect("a fresh engine");
    tokio::task::block_in_place(|| swarm.exec(fresh, &command)).expect("the join command runs");
    let fresh_host = swarm.nodes()[fresh].hostname.clone();
    let nodes = t
        .nodes_until("the fresh node joined and ready", Duration::from_secs(60), |n| {
            n.iter().any(|n| n["hostname"] == fresh_host.as_str() && n["status"] == "ready")
        })
        .await;
    assert_eq!(nodes.len(), 4, "{nodes:#?}");
    let fresh_id =
        nodes.iter().find(|n| n["hostname"] == fresh_host.as_str()).unwrap()["id"].as_str().unwrap().to_owned();

    // Removed (forced: it is still up); the other nodes stay.
    let (status, body) = t.call_as(&t.admin, M::DELETE, &format!("/api/nodes/{fresh_id}?force=true"), None).await;
    assert_eq!(status, 204, "{body}");
    let nodes = t.nodes().await;
    assert_eq!(nodes.len(), 3, "{nodes:#?}");
    assert!(nodes.iter().all(|n| n["id"] != fresh_id.as_str()));
    let (status, _) = t.call_as(&t.admin, M::GET, &format!("/api/nodes/{fresh_id}"), None).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_rents_extends_and_releases_its_own_nodes() {
    let swarm = swarm_start("api-leases", 3).await;
    let t = server_on(&swarm).await;
    t.nodes_until("3 ready nodes", Duration::from_secs(30), |n| {
        n.len() == 3 && n.iter().all(|n| n["status"] == "ready")
    })
    .await;

    // Bad input: 422 naming the field, nothing rented.
    for (body, bad) in [
        (json!({"count": 0, "ttl": "1h"}), "count"),
        (json!({"count": 1.5, "ttl": "1h"}), "count"),
        (json!({"count": 101, "ttl": "1h"}), "count"),
        (json!({"count": 1, "ttl": "soon"}), "ttl"),
        (json!({"count": 1, "ttl": 0}), "ttl"),
        (json!({"count": 1, "ttl": "20y"}), "ttl"),
    ] {
        let (status, answer) = t.post("/api/leases", body.clone()).await;
        assert_eq!((status, field(&answer)), (422, bad), "{body}: {answer}");
    }
    let (status, answer) = t.post("/api/leases", json!({"count": 1, "ttl": "1h", "nodes": ["x"]})).await;
    assert_eq!(status, 422, "an unknown field: {answer}");
    assert!(answer["error"]["message"].as_str().unwrap().contains("nodes"), "{answer}");
    let (status, list) = t.get("/api/leases").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["leases"], json!([]), "nothing rented: {list}");

    // More than the pool holds (two workers; managers are never rented): all or none.
    let (status, answer) = t.post("/api/leases", json!({"count": 3, "ttl": "1h"})).await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(t.get("/api/leases").await.1["leases"], json!([]));

    // Rent one: the client's label on the node, the lease with the node's state.
    let (status, rented) = t.post("/api/leases", json!({"count": 1, "ttl": "2h"})).await;
    assert_eq!(status, 201, "{rented}");
    let lease = rented["leases"][0].clone();
    assert_eq!(lease["client"], t.client.as_str(), "{rented}");
    let node = lease["node_id"].as_str().unwrap().to_owned();
    let hostname = lease["hostname"].as_str().unwrap().to_owned();
    let remaining = lease["remaining_s"].as_i64().unwrap();
    assert!((7100..=7200).contains(&remaining), "{lease}");
    let (_, list) = t.get("/api/leases").await;
    assert_eq!(list["leases"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["leases"][0]["node"]["status"], "ready", "{list}");
    let nodes = t.nodes().await;
    let admin_view = nodes.iter().find(|n| n["id"] == node.as_str()).unwrap();
    assert_eq!(admin_view["client"], t.client.as_str(), "{admin_view}");
    let label = swarm
        .docker(0, &["node", "inspect", &hostname, "--format", "{{index .Spec.Labels \"spawnit.client\"}}"])
        .unwrap();
    assert_eq!(label.trim(), t.client, "the node carries the client's label");

    // A rented node cannot be removed, even forced: its lease first.
    let (status, answer) = t.call_as(&t.admin, M::DELETE, &format!("/api/nodes/{node}?force=true"), None).await;
    assert_eq!(status, 409, "{answer}");
    assert!(answer["error"]["message"].as_str().unwrap().contains("release its lease first"), "{answer}");
    assert_eq!(t.nodes().await.len(), 3);

    // Extend: by hostname or id; a bad duration names `by`.
    let (status, answer) = t.post(&format!("/api/leases/{hostname}/extend"), json!({"by": "later"})).await;
    assert_eq!((status, field(&answer)), (422, "by"), "{answer}");
    let (status, extended) = t.post(&format!("/api/leases/{hostname}/extend"), json!({"by": "1h"})).await;
    assert_eq!(status, 200, "{extended}");
    let after = extended["remaining_s"].as_i64().unwrap();
    assert!((10700..=10800).contains(&after), "{extended}");

    // A node the client does not rent: 404, as for every other client's object.
    let pool = nodes.iter().find(|n| n["role"] == "worker" && n["id"] != node.as_str()).unwrap();
    let pool_id = pool["id"].as_str().unwrap();
    let (status, _) = t.post(&format!("/api/leases/{pool_id}/extend"), json!({"by": "1h"})).await;
    assert_eq!(status, 404);
    let (status, _) = t.call(M::DELETE, &format!("/api/leases/{pool_id}"), None).await;
    assert_eq!(status, 404);

    // Release: the lease is gone; the node leaves the client (quarantined while it is cleaned).
    let (status, body) = t.call(M::DELETE, &format!("/api/leases/{node}"), None).await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(t.get("/api/leases").await.1["leases"], json!([]));
    let nodes = t.nodes().await;
    let released = nodes.iter().find(|n| n["id"] == node.as_str()).unwrap();
    assert!(released["client"].is_null(), "{released}");
    let (_, audit) = t.call_as(&t.admin, M::GET, "/api/audit", None).await;
    let actions: Vec<&str> = audit["entries"].as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
    for a in ["node_rent", "node_lease_extend", "node_release"] {
        assert!(actions.contains(&a), "{a} is not audited: {actions:?}");
    }
    // An admin rents for a client with ?client=.
    let (status, rented) = t
        .call_as(&t.admin, M::POST, &format!("/api/leases?client={}", t.client), Some(json!({"count": 1, "ttl": 600})))
        .await;
    assert_eq!(status, 201, "{rented}");
    assert_eq!(rented["leases"][0]["client"], t.client.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_cluster_every_node_route_says_so() {
    let t = TestServer::start(|_| {}).await;
    t.user("root", "default", Role::Admin, "root-password-1").await;
    let admin = t.sign_in("root", "root-password-1").await;
    for (method, path, body) in [
        (M::GET, "/api/nodes", None),
        (M::GET, "/api/nodes/any", None),
        (M::GET, "/api/nodes/join-token", None),
        (M::POST, "/api/nodes/any/drain", None),
        (M::DELETE, "/api/nodes/any", None),
    ] {
        let (status, answer) = t.call_as(&t.admin, method.clone(), path, body).await;
        assert_eq!(status, 503, "{method} {path}: {answer}");
        assert_eq!(answer["error"]["code"], "no_cluster", "{answer}");
        assert!(answer["error"]["message"].as_str().unwrap().contains("serve --swarm-host"), "{answer}");
        // Members: refused first.
        assert_eq!(t.call(method.clone(), path, None).await.0, 403, "{method} {path} as a member");
    }
    for (method, path, body) in [
        (M::GET, "/api/leases", None),
        (M::POST, "/api/leases", Some(json!({"count": 1, "ttl": "1h"}))),
        (M::POST, "/api/leases/any/extend", Some(json!({"by": "1h"}))),
        (M::DELETE, "/api/leases/any", None),
    ] {
        let (status, answer) = t.call(method.clone(), path, body).await;
        assert_eq!(status, 503, "{method} {path}: {answer}");
        assert!(answer["error"]["message"].as_str().unwrap().contains("no swarm cluster is configured"), "{answer}");
    }
    // Bad input is still judged first.
    let (status, answer) = t.post("/api/leases", json!({"count": 0, "ttl": "1h"})).await;
    assert_eq!((status, field(&answer)), (422, "count"), "{answer}");
    // The pages say it too.
    for path in ["/admin/nodes", "/nodes"] {
        let (status, page) = t.page(Some(&admin), path).await;
        assert_eq!(status, 200, "{path}: {page}");
        assert!(page.contains("no swarm cluster is configured"), "{path}: {page}");
    }
}
