//! One click really is one click: a new user's first deploy through the API, on the real
//! Docker engine. A service whose network is not applied yet gets the network's apply queued
//! first, as its own job (listed and audited), then its own job. A host port another service
//! publishes or another program holds is refused at create, update and plan, naming the
//! parameter; a port left empty gets a free one, shown in the answer.

use crate::common;

use common::{TestServer, empty, free_port, http_text};
use serde_json::{Value, json};

/// A call with the admin's token (which can act on any client with `?client=`).
async fn as_admin(t: &TestServer, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
    let resp = t.http.request(method, t.url(path)).bearer_auth(&t.admin).json(&body).send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
}

/// The fields and reasons of a refusal, as one text, after checking it is a 422.
fn refusal(status: u16, body: &Value) -> String {
    assert_eq!(status, 422, "{body}");
    body["error"]["details"].to_string()
}

/// The jobs of the test's client, oldest first.
async fn jobs_oldest_first(t: &TestServer) -> Vec<Value> {
    let (status, body) = t.get("/api/jobs").await;
    assert_eq!(status, 200, "{body}");
    let mut jobs = body["jobs"].as_array().cloned().unwrap_or_default();
    jobs.reverse();
    jobs
}

fn is_network_apply(job: &Value) -> bool {
    job["kind"] == "apply" && job["target"]["kind"] == "network" && job["target"]["name"] == "default"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_users_first_deploy_queues_the_network_first() {
    let t = TestServer::start(|_| {}).await;
    // The port left empty, as a new user does: SpawnIt chooses a free one and shows it.
    let create = json!({"template": "hello", "name": "web", "params": {"message": "first deploy"}});
    let (status, body) = t.post("/api/services", create).await;
    assert_eq!(status, 201, "{body}");
    let port = u16::try_from(body["params"]["port"].as_u64().expect("the chosen port is shown")).unwrap();
    assert_eq!(body["endpoints"][0]["url"], format!("http://127.0.0.1:{port}"), "{body}");
    // Another one left empty gets another port.
    let (status, other) = t.post("/api/services", json!({"template": "hello", "name": "other"})).await;
    assert_eq!(status, 201, "{other}");
    assert_ne!(other["params"]["port"], body["params"]["port"], "{other}");
    assert!(other["params"]["port"].is_u64(), "{other}");

    // Plan at once, as the web form's "Save and plan" does: the network comes first.
    let (status, plan) = t.post("/api/services/web/plan", empty()).await;
    assert_eq!(status, 202, "{plan}");
    let plan = t.job_wait(&plan).await;
    assert_eq!(plan["status"], "succeeded", "{plan}");
    let changes = plan["plan"]["changes"].to_string();
    assert!(changes.contains("container.echo") && changes.contains("create"), "{plan}");

    let jobs = jobs_oldest_first(&t).await;
    assert_eq!(jobs.len(), 2, "the network's apply, then the plan: {jobs:?}");
    assert!(is_network_apply(&jobs[0]), "{jobs:?}");
    assert_eq!(jobs[0]["status"], "succeeded", "{jobs:?}");
    assert_eq!(jobs[0]["requested_by"], "alice", "{jobs:?}");
    assert_eq!(jobs[1]["id"], plan["id"]);

    // The network's job is in the audit log, as asked by the user who planned.
    let audit: Value =
        t.http.get(t.url("/api/audit")).bearer_auth(&t.admin).send().await.unwrap().json().await.unwrap();
    let network_id = jobs[0]["id"].as_str().unwrap();
    let entries = audit["entries"].as_array().unwrap();
    assert!(
        entries.iter().any(|e| e["action"] == "apply"
            && e["user"] == "alice"
            && e["target"] == format!("network {}/default", t.client)
            && e["detail"].as_str().is_some_and(|d| d.contains(network_id))),
        "{audit}"
    );

    // Apply: the network is ready now, so no other network job; the service answers.
    let (status, apply) = t.post("/api/services/web/apply", empty()).await;
    assert_eq!(status, 202, "{apply}");
    let apply = t.job_wait(&apply).await;
    assert_eq!(apply["status"], "succeeded", "{apply}");
    assert_eq!(jobs_oldest_first(&t).await.iter().filter(|j| is_network_apply(j)).count(), 1);
    assert!(http_text(port).await.contains("first deploy"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_with_no_network_applies_it_first_and_says_which_job_did() {
    let t = TestServer::start(|_| {}).await;
    let port = free_port();
    let create = json!({"template": "hello", "name": "web", "params": {"port": port, "message": "one click"}});
    assert_eq!(t.post("/api/services", create).await.0, 201);

    // Straight to apply, no plan, no network: two jobs, the network's first.
    let (status, apply) = t.post("/api/services/web/apply", empty()).await;
    assert_eq!(status, 202, "{apply}");
    let apply = t.job_wait(&apply).await;
    assert_eq!(apply["status"], "succeeded", "{apply}");
    let jobs = jobs_oldest_first(&t).await;
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    assert!(is_network_apply(&jobs[0]) && jobs[0]["status"] == "succeeded", "{jobs:?}");

    // The service's log says what it waited for.
    let mut events = t.sse(&format!("/api/jobs/{}/events", apply["id"].as_str().unwrap()), None).await;
    let first = events.next(std::time::Duration::from_secs(10)).await.expect("an event");
    assert!(
        first.data.to_string().contains("waiting for job")
            && first.data.to_string().contains(jobs[0]["id"].as_str().unwrap()),
        "{first:?}"
    );
    assert!(http_text(port).await.contains("one click"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_another_service_publishes_is_refused_at_create_naming_the_field() {
    let t = TestServer::start(|_| {}).await;
    let port = free_port();
    let create = |name: &str| json!({"template": "hello", "name": name, "params": {"port": port}});
    assert_eq!(t.post("/api/services", create("first")).await.0, 201);

    // The same client: the other service is named.
    let (status, body) = t.post("/api/services", create("second")).await;
    let why = refusal(status, &body);
    assert!(
        why.contains("\"field\":\"port\"") && why.contains(&format!("{port} is already published by service first")),
        "{why}"
    );
    assert_eq!(t.get("/api/services/second").await.0, 404, "nothing is created");

    // Another client: the service is named only as another client's.
    let (status, body) = as_admin(&t, reqwest::Method::POST, "/api/services?client=neighbour", create("theirs")).await;
    let why = refusal(status, &body);
    assert!(why.contains("\"field\":\"port\"") && why.contains("a service of another client"), "{why}");
    assert!(!why.contains("first") && !why.contains(&t.client), "another client's names leak: {why}");

    // An update onto a published port is refused too, and changes nothing.
    let (status, body) =
        t.post("/api/services", json!({"template": "hello", "name": "third", "params": {"port": free_port()}})).await;
    assert_eq!(status, 201, "{body}");
    let before = body["params"]["port"].clone();
    let (status, body) =
        t.call(reqwest::Method::PATCH, "/api/services/third", Some(json!({"params": {"port": port}}))).await;
    assert!(refusal(status, &body).contains("service first"), "{body}");
    assert_eq!(t.get("/api/services/third").await.1["params"]["port"], before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_another_program_holds_is_refused_at_create_update_and_plan() {
    let t = TestServer::start(|_| {}).await;
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let reason = format!("{port} is in use by another program on this host");

    let create = json!({"template": "hello", "name": "web", "params": {"port": port}});
    let (status, body) = t.post("/api/services", create).await;
    let why = refusal(status, &body);
    assert!(why.contains("\"field\":\"port\"") && why.contains(&reason), "{why}");

    let free = free_port();
    let create = json!({"template": "hello", "name": "web", "params": {"port": free}});
    assert_eq!(t.post("/api/services", create).await.0, 201);
    let (status, body) =
        t.call(reqwest::Method::PATCH, "/api/services/web", Some(json!({"params": {"port": port}}))).await;
    assert!(refusal(status, &body).contains(&reason), "{body}");

    // Taken after the service was stored: the plan refuses it, naming the field, and apply
    // stops before Docker's own error.
    let late = std::net::TcpListener::bind(("127.0.0.1", free)).unwrap();
    let (status, plan) = t.post("/api/services/web/plan", empty()).await;
    assert_eq!(status, 202, "{plan}");
    let plan = t.job_wait(&plan).await;
    assert_eq!(plan["status"], "failed", "{plan}");
    let errors = plan["plan"]["errors"].to_string();
    assert!(errors.contains(&format!("port: {free} is in use by another program on this host")), "{plan}");
    let apply = t.job_wait(&t.post("/api/services/web/apply", empty()).await.1).await;
    assert_eq!(apply["status"], "failed", "{apply}");
    let error = apply["error"].as_str().unwrap_or_default();
    assert!(error.contains("port: ") && !error.contains("already allocated"), "{apply}");
    drop((held, late));
}
