//! The autoscaler on the real server and the real Docker engine: a `web-app` of the stand-in
//! app (`spawnit-test/webapp:1`) behind the real Caddy, CPU load made through the load
//! balancer's published port with `/burn`, and the server's own decisions seen on
//! `/api/events` (`scaled`), as jobs, in the audit log and on the service page: scale out to the
//! maximum under load, back in to the minimum once the load is gone and the scale-in cooldown
//! has passed. And the scale API and form: bad input is refused naming the field, and nothing
//! is stored.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use spawnit_server::accounts::Role;
use spawnit_server::autoscaler::AutoscaleConfig;

fn images_required() {
    for image in ["spawnit-test/webapp:1", "caddy:2"] {
        let out = std::process::Command::new("docker").args(["image", "ls", "-q", image]).output().unwrap();
        assert!(!out.stdout.is_empty(), "test image {image} is missing: run scripts/test-images.sh");
    }
}

/// A job's record and its events, for a failure message.
async fn job_report(t: &TestServer, job: &Value) -> String {
    let id = job["id"].as_str().unwrap_or_default();
    let record = t.get(&format!("/api/jobs/{id}")).await.1;
    let mut events = t.sse(&format!("/api/jobs/{id}/events"), None).await;
    let mut lines = Vec::new();
    while let Some(e) = events.next(Duration::from_secs(2)).await {
        lines.push(format!("{} {}", e.event, e.data));
        if e.event == "done" || e.event == "end" {
            break;
        }
    }
    format!("{record:#}\nevents:\n{}", lines.join("\n"))
}

/// Waits for a job and panics with its record and events unless it succeeded.
async fn job_succeeds(t: &TestServer, job: &Value) -> Value {
    let record = t.job_wait(job).await;
    if record["status"] != "succeeded" {
        panic!("job {} did not succeed: {}", record["id"], job_report(t, job).await);
    }
    record
}

/// Loops of `/burn?seconds=3` through the load balancer, until `stop`.
fn burners(port: u16, n: usize, stop: Arc<AtomicBool>) -> Vec<tokio::task::JoinHandle<usize>> {
    (0..n)
        .map(|_| {
            let stop = stop.clone();
            tokio::spawn(async move {
                let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
                let mut done = 0;
                while !stop.load(Ordering::SeqCst) {
                    match http.get(format!("http://127.0.0.1:{port}/burn?seconds=3")).send().await {
                        Ok(r) if r.status().is_success() => done += 1,
                        _ => tokio::time::sleep(Duration::from_millis(200)).await,
                    }
                }
                done
            })
        })
        .collect()
}

fn at(event: &Value) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(event["at"].as_str().expect("at")).expect("rfc3339")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cpu_load_scales_out_to_the_maximum_and_back_in_after_the_cooldown() {
    images_required();
    let t = TestServer::start(|c| {
        c.autoscale = AutoscaleConfig {
            interval: Duration::from_secs(2),
            scale_out_cooldown: Duration::from_secs(5),
            scale_in_cooldown: Duration::from_secs(10),
        };
    })
    .await;
    let mut events = t.sse("/api/events", None).await;
    // The target is low because the CPU the containers get depends on the host: on a cgroup v1
    // host, every process of the root cgroup (a parallel build…) weighs as much as all of
    // Docker's containers together, so four burning requests may add up to half a core only.
    // Idle replicas use next to nothing, so the scale-in is the same.
    let params = json!({"image": "spawnit-test/webapp:1", "replicas": 1, "min_replicas": 1, "max_replicas": 3, "target_cpu": 10});
    let (status, created) =
        t.post("/api/services", json!({"template": "web-app", "name": "shop", "params": params})).await;
    assert_eq!(status, 201, "{created}");
    let port = u16::try_from(created["params"]["http_port"].as_u64().expect("the chosen port is shown")).unwrap();
    let (status, job) = t.post("/api/services/shop/apply", empty()).await;
    assert_eq!(status, 202, "{job}");
    job_succeeds(&t, &job).await;
    assert!(http_text(port).await.contains("Hostname: "), "the app answers through the load balancer");

    // Load: more busy cores than one replica has, spread by the load balancer.
    let stop = Arc::new(AtomicBool::new(false));
    let load = burners(port, 4, stop.clone());
    let mut scaled_out = Vec::new();
    while scaled_out.last().is_none_or(|e: &Value| e["to"] != 3) {
        let (event, _) = events.until(Duration::from_secs(180), "scaled event", |e| e.event == "scaled").await;
        let e = event.data;
        assert_eq!(
            (e["client"].as_str(), e["service"].as_str(), e["container"].as_str()),
            (Some(t.client.as_str()), Some("shop"), Some("app")),
            "{e}"
        );
        let (from, to) = (e["from"].as_u64().unwrap(), e["to"].as_u64().unwrap());
        assert!(from < to && to <= 3, "a scale-out under load: {e}");
        assert!(e["avg_cpu_percent"].as_f64().unwrap() > 10.0, "{e}");
        assert_eq!(e["target_cpu_percent"], 10, "{e}");
        assert!(e["reason"].as_str().unwrap().contains("scale out"), "{e}");
        // Each decision is an apply job, requested by the autoscaler.
        let job = t.get(&format!("/api/jobs/{}", e["job"].as_str().expect("a job per decision"))).await.1;
        assert_eq!((job["kind"].as_str(), job["requested_by"].as_str()), (Some("apply"), Some("autoscaler")), "{job}");
        job_succeeds(&t, &job).await;
        scaled_out.push(e);
    }
    let service = t.get("/api/services/shop").await.1;
    assert_eq!(service["params"]["replicas"], 3, "{service}");
    let scale = t.get("/api/services/shop/scale").await.1;
    let app = &scale["containers"][0];
    assert_eq!((app["container"].as_str(), app["replicas"].as_u64()), (Some("app"), Some(3)), "{scale}");
    assert_eq!(app["policy"], json!({"min": 1, "max": 3, "target_cpu_percent": 10}), "{scale}");
    let addresses: Vec<&str> =
        app["instances"].as_array().unwrap().iter().map(|r| r["address"].as_str().unwrap()).collect();
    assert_eq!(addresses, ["container.app[0]", "container.app[1]", "container.app[2]"], "{scale}");
    assert!(
        app["instances"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"].as_str().is_some_and(|s| s.starts_with("running"))),
        "{scale}"
    );
    assert_eq!(scale["decisions"].as_array().unwrap().len(), scaled_out.len(), "{scale}");
    assert_eq!(scale["decisions"][0]["to"], 3, "newest first: {scale}");

    // The service page shows the replicas, their CPU and the decisions.
    t.user("bob", &t.client, Role::Member, "correct horse battery").await;
    let session = t.sign_in("bob", "correct horse battery").await;
    let (status, page) = t.page(Some(&session), "/services/shop").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("id=\"replicas\"") && page.contains("container.app[2]"), "{page}");
    assert!(page.contains("Autoscaling between 1 and 3 replicas, target 10% CPU"), "{page}");
    assert!(page.contains("id=\"decisions\"") && page.contains("→ 3"), "{page}");

    // The load stops: after the scale-in cooldown, back to the minimum in one decision.
    stop.store(true, Ordering::SeqCst);
    let mut burned = 0;
    for l in load {
        burned += l.await.unwrap();
    }
    assert!(burned > 0, "the load balancer answered the burns");
    // (The load winds down over a few seconds: the count may go down in more than one step.)
    let mut scaled_in: Vec<Value> = Vec::new();
    while scaled_in.last().is_none_or(|e| e["to"] != 1) {
        let (event, _) = events.until(Duration::from_secs(120), "scale-in", |e| e.event == "scaled").await;
        let e = event.data;
        let (from, to) = (e["from"].as_u64().unwrap(), e["to"].as_u64().unwrap());
        assert!(to < from && to >= 1, "a scale-in once the load is gone: {e}");
        assert!(e["reason"].as_str().unwrap().contains("scale in"), "{e}");
        let previous = scaled_in.last().unwrap_or_else(|| scaled_out.last().unwrap());
        let since = at(&e) - at(previous);
        assert!(since >= chrono::Duration::seconds(10), "the scale-in waited for its cooldown: {since}: {e}");
        let job = t.get(&format!("/api/jobs/{}", e["job"].as_str().unwrap())).await.1;
        job_succeeds(&t, &job).await;
        scaled_in.push(e);
    }
    let scale = t.get("/api/services/shop/scale").await.1;
    assert_eq!(scale["containers"][0]["instances"].as_array().unwrap().len(), 1, "{scale}");
    assert!(http_text(port).await.contains("Hostname: "), "the app still answers");

    // Every scaling is in the audit log, done by the autoscaler.
    let audit: Value =
        t.http.get(t.url("/api/audit")).bearer_auth(&t.admin).send().await.unwrap().json().await.unwrap();
    let scalings = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"] == "scale" && a["user"] == "autoscaler" && a["client"] == t.client.as_str())
        .count();
    assert_eq!(scalings, scaled_out.len() + scaled_in.len(), "{audit:#}");

    let (status, job) = t.post("/api/services/shop/destroy", empty()).await;
    assert_eq!(status, 202, "{job}");
    job_succeeds(&t, &job).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_beyond_the_policy_is_refused_naming_the_field_and_changes_nothing() {
    images_required();
    let t = TestServer::start(|_| {}).await;
    // A port of its own: a scale re-renders the spec, whose port is checked again.
    let params = json!({"image": "spawnit-test/webapp:1", "replicas": 2, "min_replicas": 1, "max_replicas": 3,
        "http_port": free_port()});
    let (status, created) =
        t.post("/api/services", json!({"template": "web-app", "name": "shop", "params": params})).await;
    assert_eq!(status, 201, "{created}");
    let before = t.get("/api/services/shop").await.1;

    let refused = [
        (json!({"replicas": 4}), "replicas"),
        (json!({"replicas": 2, "container": "nope"}), "container"),
        (json!({"replicas": 2, "container": "Not An Id"}), "container"),
        (json!({"replicas": -1}), "replicas"),
        (json!({"replicas": 0}), "replicas"),
        (json!({"replicas": 2.5}), "replicas"),
        (json!({"replicas": 21}), "replicas"),
        (json!({}), "replicas"),
    ];
    for (body, field) in refused {
        let (status, answer) = t.post("/api/services/shop/scale", body.clone()).await;
        assert_eq!(status, 422, "{body} → {answer}");
        assert_eq!(answer["error"]["code"], "invalid_input", "{answer}");
        assert!(answer["error"]["message"].as_str().unwrap().contains(field), "{body} → {answer}");
    }
    let (status, answer) = t.post("/api/services/shop/scale", json!({"replicas": 4})).await;
    assert_eq!(status, 422);
    let fields: Vec<&str> =
        answer["error"]["details"].as_array().unwrap().iter().filter_map(|d| d["field"].as_str()).collect();
    assert!(fields.iter().any(|f| f.contains("replicas")), "the details name the field: {answer}");
    assert!(answer["error"]["message"].as_str().unwrap().contains('3'), "the maximum is said: {answer}");

    // Nothing stored, nothing queued.
    let after = t.get("/api/services/shop").await.1;
    assert_eq!(after["params"]["replicas"], 2, "{after}");
    assert_eq!(after["updated_at"], before["updated_at"], "{after}");
    let jobs = t.get("/api/jobs").await.1;
    assert_eq!(jobs["jobs"].as_array().unwrap().len(), 0, "{jobs}");

    // A service of another client does not exist for this member.
    let (status, _) = t.post("/api/services/shop/scale?client=someone-else", json!({"replicas": 2})).await;
    assert_eq!(status, 404);

    // The page's form: its CSRF token is checked, a bad count is refused naming it.
    t.user("bob", &t.client, Role::Member, "correct horse battery").await;
    let session = t.sign_in("bob", "correct horse battery").await;
    let (status, page) = t.page(Some(&session), "/services/shop").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("action=\"/services/shop/scale\""), "{page}");
    let form = [("replicas", "2"), ("container", "app")];
    let (status, _) = t.form(Some(&session), "/services/shop/scale", &form, None).await;
    assert_eq!(status, 403);
    let (status, answer) = t
        .form(Some(&session), "/services/shop/scale", &[("replicas", "9"), ("container", "app")], Some(&session.csrf))
        .await;
    assert_eq!(status, 422, "{answer}");
    assert!(answer.contains("replicas"), "{answer}");
    let (status, answer) =
        t.form(Some(&session), "/services/shop/scale", &[("replicas", "two")], Some(&session.csrf)).await;
    assert_eq!(status, 422, "{answer}");
    assert!(answer.contains("Replicas must be a whole number"), "{answer}");
    let after = t.get("/api/services/shop").await.1;
    assert_eq!(after["updated_at"], before["updated_at"], "{after}");

    // A good count through the API is stored and queues an apply (of the network first).
    let (status, job) = t.post("/api/services/shop/scale", json!({"replicas": 3})).await;
    assert_eq!(status, 202, "{job}");
    assert_eq!((job["kind"].as_str(), job["requested_by"].as_str()), (Some("apply"), Some("alice")), "{job}");
    let (status, cancelled) = t.post(&format!("/api/jobs/{}/cancel", job["id"].as_str().unwrap()), empty()).await;
    assert!(status == 202 || status == 409, "{cancelled}");
    t.job_wait(&job).await;
    let after = t.get("/api/services/shop").await.1;
    assert_eq!(after["params"]["replicas"], 3, "{after}");
    // Clean up whatever the apply made before it was cancelled.
    let (status, job) = t.post("/api/services/shop/destroy", empty()).await;
    assert_eq!(status, 202, "{job}");
    assert_eq!(t.job_wait(&job).await["status"], "succeeded");
}
