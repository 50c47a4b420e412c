//! The server end to end: real HTTP on 127.0.0.1, real SSE, the real Docker engine.

use crate::common;

use std::time::Duration;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_plan_apply_stream_answer_destroy() {
    let t = TestServer::start(|_| {}).await;
    let port = t.hello("web", "hello over the API").await;

    let (status, plan_job) = t.post("/api/services/web/plan", empty()).await;
    assert_eq!(status, 202, "{plan_job}");
    let plan_job = t.job_wait(&plan_job).await;
    assert_eq!(plan_job["status"], "succeeded", "{plan_job}");
    assert_eq!(plan_job["plan"]["status"], "drifted");

    let (status, job) = t.post("/api/services/web/apply", empty()).await;
    assert_eq!(status, 202);
    assert!(matches!(job["status"].as_str(), Some("queued" | "running")), "{job}");
    let id = job["id"].as_str().unwrap().to_owned();
    let mut events = t.sse(&format!("/api/jobs/{id}/events"), None).await;
    let (finished, before) = events.until(Duration::from_secs(60), "finished", |e| e.event == "finished").await;
    assert_eq!(finished.data["outcome"], "succeeded", "{before:#?}");
    assert!(before.iter().any(|e| e.event == "planned"), "{before:#?}");
    assert!(before.iter().any(|e| e.event == "operation_done" && e.data["address"] == "container.echo"), "{before:#?}");
    assert!(events.next(Duration::from_secs(2)).await.is_none(), "the stream ends with the job");
    assert!(http_text(port).await.contains("hello over the API"));

    // Replay: a late subscriber sees everything; Last-Event-ID resumes after an event.
    let mut replay = t.sse(&format!("/api/jobs/{id}/events"), None).await;
    let first = replay.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(first.id.as_deref(), Some("0"));
    let mut resumed = t.sse(&format!("/api/jobs/{id}/events"), Some("0")).await;
    assert_eq!(resumed.next(Duration::from_secs(5)).await.unwrap().id.as_deref(), Some("1"));

    let (status, service) = t.get("/api/services/web").await;
    assert_eq!(status, 200);
    assert_eq!(service["status"], "compliant", "{service}");
    assert_eq!(service["endpoints"][0]["url"], format!("http://127.0.0.1:{port}"));
    assert!(service["resources"]["container.echo"]["id"].is_string());
    let (_, list) = t.get("/api/services").await;
    assert_eq!(list["services"][0]["name"], "web");

    // Deleting a deployed service is refused; destroy, then delete.
    let (status, err) = t.call(Method::DELETE, "/api/services/web", None).await;
    assert_eq!(status, 409, "{err}");
    assert!(err["error"]["message"].as_str().unwrap().contains("destroy it first"));
    let job = t.post("/api/services/web/destroy", empty()).await.1;
    assert_eq!(t.job_wait(&job).await["status"], "succeeded");
    let (status, _) = t.call(Method::DELETE, "/api/services/web", None).await;
    assert_eq!(status, 204);
    let (status, _) = t.get("/api/services/web").await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_clear_4xx_naming_every_field() {
    let t = TestServer::start(|_| {}).await;
    let (status, body) = t
        .post(
            "/api/services",
            json!({"template": "hello", "name": "web", "params": {"port": 80, "nope": 1, "message": ""}}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let fields: Vec<&str> =
        body["error"]["details"].as_array().unwrap().iter().map(|d| d["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["nope", "port"], "{body}");
    let (status, body) = t.post("/api/services", json!({"template": "Bad!", "name": "../x"})).await;
    assert_eq!(status, 422);
    assert_eq!(body["error"]["details"].as_array().unwrap().len(), 2, "{body}");
    let (status, body) = t.post("/api/services", json!({"template": "nosuch", "name": "x"})).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = t.post("/api/services", json!({"template": 3})).await;
    assert_eq!(status, 422, "{body}");
    let (status, _) = t
        .http
        .post(t.url("/api/services"))
        .bearer_auth(&t.token)
        .body("{")
        .header("content-type", "application/json")
        .send()
        .await
        .map(|r| (r.status().as_u16(), ()))
        .unwrap();
    assert_eq!(status, 400);
    let (status, body) = t.get("/api/services/NOT_AN_ID").await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["details"][0]["field"], "id");
    assert_eq!(body["error"]["code"], "invalid_input");
    let (status, _) = t.get("/api/nowhere").await;
    assert_eq!(status, 404);
    let (status, body) = t.call(Method::PUT, "/api/services", None).await;
    assert_eq!(status, 405, "{body}");
    // Nothing was stored by any of that.
    assert_eq!(t.get("/api/services").await.1["services"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_required_and_other_clients_are_invisible() {
    let t = TestServer::start(|_| {}).await;
    t.hello("web", "mine").await;
    let anonymous = reqwest::get(t.url("/api/services")).await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let wrong = t.http.get(t.url("/api/services")).bearer_auth("spawnit_nope").send().await.unwrap();
    assert_eq!(wrong.status(), 401);

    // A member of another client sees nothing of this one, and gets 404 for its service.
    let store = spawnit_store::Store::open_local(t.dir.path()).unwrap();
    let other = spawnit_server::auth::token_create(
        &store,
        "bob",
        &spawnit_model::Id::parse("other").unwrap(),
        spawnit_server::accounts::Role::Member,
    )
    .await
    .unwrap();
    let as_bob = |path: &str| t.http.get(t.url(path)).bearer_auth(&other).send();
    assert_eq!(as_bob("/api/services").await.unwrap().json::<Value>().await.unwrap()["services"], json!([]));
    assert_eq!(as_bob("/api/services/web").await.unwrap().status(), 404);
    let q = format!("/api/services/web?client={}", t.client);
    assert_eq!(as_bob(&q).await.unwrap().status(), 404);
    // The admin sees it through ?client=.
    let admin = t.http.get(t.url(&q)).bearer_auth(&t.admin).send().await.unwrap();
    assert_eq!(admin.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_applies_on_one_service_run_one_after_the_other() {
    let t = TestServer::start(|_| {}).await;
    t.hello("web", "queued").await;
    let first = t.post("/api/services/web/apply", empty()).await.1;
    let second = t.post("/api/services/web/apply", empty()).await.1;
    let (a, b) = (t.job_wait(&first).await, t.job_wait(&second).await);
    assert_eq!(a["status"], "succeeded", "{a}");
    assert_eq!(b["status"], "succeeded", "{b}");
    assert!(b["started_at"].as_str().unwrap() >= a["finished_at"].as_str().unwrap(), "{a} {b}");
    assert_eq!(a["summary"]["done"], 1);
    assert_eq!(b["summary"]["done"], 0, "the second found nothing left to do");
}

/// A template of eight containers in a chain: applying it takes a few operations in a row.
async fn chain_template(t: &TestServer) {
    let mut containers = serde_json::Map::new();
    for i in 0..8 {
        let mut c =
            json!({"image": "hashicorp/http-echo:1.0", "command": ["-listen=:5678", format!("-text=link {i}")]});
        if i > 0 {
            c["depends_on"] = json!([format!("c{}", i - 1)]);
        }
        if i == 0 {
            c["ports"] = json!([{"name": "http", "container": 5678, "host": "${port}", "scheme": "http"}]);
        }
        containers.insert(format!("c{i}"), c);
    }
    let template = json!({
        "id": "chain", "name": "Chain", "category": "demo", "description": "eight containers in a row", "version": "1.0.0",
        "parameters": {"port": {"type": "integer", "default": 8080, "minimum": 1024, "maximum": 65535}},
        "blueprint": {"containers": containers},
    });
    let store = spawnit_store::Store::open_local(t.dir.path()).unwrap();
    store.template_put(&serde_json::from_value(template).unwrap()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_a_running_apply_and_releases_the_lock() {
    let t = TestServer::start(|_| {}).await;
    chain_template(&t).await;
    let port = free_port();
    assert_eq!(
        t.post("/api/services", json!({"template": "chain", "name": "ch", "params": {"port": port}})).await.0,
        201
    );
    t.job_wait(&t.post("/api/networks/default/apply", empty()).await.1).await;

    let job = t.post("/api/services/ch/apply", empty()).await.1;
    let id = job["id"].as_str().unwrap().to_owned();
    let mut events = t.sse(&format!("/api/jobs/{id}/events"), None).await;
    events.until(Duration::from_secs(60), "first operation done", |e| e.event == "operation_done").await;
    let (status, _) = t.post(&format!("/api/jobs/{id}/cancel"), empty()).await;
    assert_eq!(status, 202);
    // How fast is measured by spawnit-bench; here only that it stops (a generous hang guard).
    let (finished, _) = events.until(Duration::from_secs(120), "finished", |e| e.event == "finished").await;
    assert_eq!(finished.data["outcome"], "cancelled");
    let record = t.job_wait(&job).await;
    assert_eq!(record["status"], "cancelled");
    let done = record["summary"]["done"].as_u64().unwrap();
    assert!(done < 8, "cancel stopped it early: {record}");
    let (status, again) = t.post(&format!("/api/jobs/{id}/cancel"), empty()).await;
    assert_eq!(status, 409, "{again}");

    // What was done is recorded; the lock is gone; the next apply finishes the rest.
    let service = t.get("/api/services/ch").await.1;
    assert_eq!(service["resources"].as_object().unwrap().len() as u64, done, "{service}");
    let lock = t.dir.path().join(format!("clients/{}/services/ch/lock.json", t.client));
    assert!(!lock.exists(), "the lock was released");
    let next = t.job_wait(&t.post("/api/services/ch/apply", empty()).await.1).await;
    assert_eq!(next["status"], "succeeded", "{next}");
    assert_eq!(next["summary"]["done"].as_u64().unwrap(), 8 - done);
    assert!(http_text(port).await.contains("link 0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_job_ends_timed_out() {
    let t = TestServer::start(|c| c.jobs.timeout = Duration::from_millis(300)).await;
    chain_template(&t).await;
    let port = free_port();
    t.post("/api/services", json!({"template": "chain", "name": "ch", "params": {"port": port}})).await;
    t.job_wait(&t.post("/api/networks/default/apply", empty()).await.1).await;
    let record = t.job_wait(&t.post("/api/services/ch/apply", empty()).await.1).await;
    assert_eq!(record["status"], "timed_out", "{record}");
    assert!(record["error"].as_str().unwrap().contains("timed out"));
    assert!(!t.dir.path().join(format!("clients/{}/services/ch/lock.json", t.client)).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_band_removal_is_seen_and_reconcile_repairs_it() {
    // No periodic sweep during the test: the removal can only be seen through Docker's events.
    let t = TestServer::start(|c| c.sweep_every = Duration::from_secs(3600)).await;
    let port = t.hello("web", "watched").await;
    t.job_wait(&t.post("/api/services/web/apply", empty()).await.1).await;
    let mut events = t.sse("/api/events", None).await;
    // Let the monitor see it compliant first (the apply's end triggers a check).
    tokio::time::sleep(Duration::from_millis(500)).await;

    let container = format!("spawnit_{}_web_echo", t.client);
    docker(&["rm", "-f", &container]);
    // Seen through Docker's events (the sweep is an hour away): how fast is measured by
    // spawnit-bench; here only a generous hang guard. `docker rm -f` kills, then removes: a
    // check between the two sees the container stopped, the next one sees it gone.
    let (drifted, _) = events
        .until(Duration::from_secs(60), "drifted event", |e| {
            e.event == "service_status"
                && e.data["status"] == "drifted"
                && e.data["reasons"].to_string().contains("removed outside SpawnIt")
        })
        .await;
    assert_eq!(drifted.data["service"], "web");
    assert!(drifted.data["reasons"][0].as_str().unwrap().contains("removed outside SpawnIt"), "{drifted:?}");

    // With `reconcile`, the monitor repairs it by itself (switching the policy triggers a check).
    let (status, body) = t.call(Method::PATCH, "/api/services/web", Some(json!({"drift_policy": "reconcile"}))).await;
    assert_eq!(status, 200, "{body}");
    events
        .until(Duration::from_secs(20), "reconcile apply", |e| {
            e.event == "job" && e.data["kind"] == "apply" && e.data["status"] == "succeeded"
        })
        .await;
    assert!(http_text(port).await.contains("watched"));
    let jobs = t.get("/api/jobs").await.1;
    assert!(jobs["jobs"].as_array().unwrap().iter().any(|j| j["requested_by"] == "drift-monitor"), "{jobs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiring_lease_warns_then_destroys_the_service() {
    let t = TestServer::start(|c| {
        c.lease_every = Duration::from_millis(200);
        c.lease_warnings = vec![Duration::from_secs(2)];
    })
    .await;
    t.hello("web", "leased").await;
    t.job_wait(&t.post("/api/services/web/apply", empty()).await.1).await;
    let mut events = t.sse("/api/events", None).await;
    let (status, body) = t.call(Method::PUT, "/api/services/web/lease", Some(json!({"ttl": 2}))).await;
    assert_eq!(status, 200, "{body}");
    let first_expiry = body["expires_at"].as_str().unwrap().to_owned();
    let (status, body) = t.post("/api/services/web/lease/extend", json!({"ttl": "1s"})).await;
    assert_eq!(status, 200);
    assert!(body["expires_at"].as_str().unwrap() > first_expiry.as_str(), "{body}");
    events.until(Duration::from_secs(5), "lease warning", |e| e.event == "lease_warning").await;
    let (expired, _) = events.until(Duration::from_secs(10), "lease expired", |e| e.event == "lease_expired").await;
    let job = json!({"id": expired.data["job"]});
    assert_eq!(t.job_wait(&job).await["status"], "succeeded");
    let service = t.get("/api/services/web").await.1;
    assert_eq!(service["resources"], json!({}), "{service}");
    let (status, bad) = t.call(Method::PUT, "/api/services/web/lease", Some(json!({"ttl": "soon"}))).await;
    assert_eq!(status, 422, "{bad}");
    assert_eq!(bad["error"]["details"][0]["field"], "ttl");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_sees_everything_as_before() {
    let mut t = TestServer::start(|_| {}).await;
    let port = t.hello("web", "persistent").await;
    let job = t.job_wait(&t.post("/api/services/web/apply", empty()).await.1).await;
    t.restart().await;
    let service = t.get("/api/services/web").await.1;
    assert_eq!(service["status"], "compliant", "{service}");
    let record = t.get(&format!("/api/jobs/{}", job["id"].as_str().unwrap())).await;
    assert_eq!(record.0, 200);
    assert_eq!(record.1["status"], "succeeded");
    let mut replay = t.sse(&format!("/api/jobs/{}/events", job["id"].as_str().unwrap()), None).await;
    replay.until(Duration::from_secs(5), "finished in the stored log", |e| e.event == "finished").await;
    assert!(http_text(port).await.contains("persistent"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_metrics_and_every_documented_route_exists() {
    let t = TestServer::start(|_| {}).await;
    assert_eq!(reqwest::get(t.url("/healthz")).await.unwrap().json::<Value>().await.unwrap()["status"], "ok");
    let metrics = reqwest::get(t.url("/metrics")).await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains("spawnit_jobs{status=\"running\"}") && metrics.contains("spawnit_drift_sweeps_total"),
        "{metrics}"
    );
    // API latency is a histogram by method, route pattern and status.
    assert!(
        metrics.lines().any(|l| l.starts_with("spawnit_api_request_duration_seconds_bucket{")
            && l.contains("route=\"/healthz\"")
            && l.contains("status=\"200\"")
            && l.contains("le=\"+Inf\"")),
        "{metrics}"
    );
    // Each background task's last run: the drift sweep and the lease keeper run at start.
    let lines = [
        "spawnit_task_last_ok{task=\"drift_sweep\"} 1",
        "spawnit_task_runs_total{task=\"lease_keeper\"} ",
        "spawnit_task_failures_total{task=\"drift_sweep\"} 0",
        "spawnit_task_last_run_timestamp_seconds{task=\"drift_sweep\"} ",
        "spawnit_task_last_duration_seconds{task=\"lease_keeper\"} ",
    ];
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = reqwest::get(t.url("/metrics")).await.unwrap().text().await.unwrap();
        match lines.iter().find(|line| !metrics.contains(*line)) {
            None => break,
            Some(line) => assert!(std::time::Instant::now() < deadline, "no {line} in\n{metrics}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let doc: Value = reqwest::get(t.url("/api/openapi.json")).await.unwrap().json().await.unwrap();
    let mut checked = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            let url = path.replace("{id}", "zz-missing").replace("{template}", "zz-missing");
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let resp = t.http.request(m, t.url(&url)).bearer_auth(&t.token).json(&json!({})).send().await.unwrap();
            let status = resp.status().as_u16();
            let streaming = resp
                .headers()
                .get("content-type")
                .is_some_and(|v| v.to_str().unwrap_or("").starts_with("text/event-stream"));
            let body = if streaming { String::new() } else { resp.text().await.unwrap() };
            assert!(!body.contains("no such route") && status != 405, "{method} {path} is not routed: {status} {body}");
            checked += 1;
        }
    }
    assert!(checked >= 25, "{checked}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_page_filter_and_show_what_other_processes_wrote() {
    let t = TestServer::start(|c| c.sweep_every = Duration::from_millis(300)).await;
    for name in ["alpha", "bravo", "charlie"] {
        t.hello(name, name).await;
    }
    // Another process (as the CLI would) creates a service, and breaks one's state by hand.
    let (other, _) = engine_for(t.dir.path()).await;
    let client = spawnit_model::Id::parse(&t.client).unwrap();
    let id = |s: &str| spawnit_model::Id::parse(s).unwrap();
    other
        .service_create(spawnit_engine::ServiceCreate {
            client: client.clone(),
            name: id("delta"),
            template: id("hello"),
            network: id("default"),
            exposure: Default::default(),
            provider: Default::default(),
            params: [("port".to_owned(), json!(free_port()))].into(),
            aws: None,
            swarm: None,
        })
        .await
        .unwrap();
    let services = t.dir.path().join("clients").join(&t.client).join("services");
    std::fs::write(services.join("bravo").join("state.json"), b"not json").unwrap();

    // Seen within the sweep interval: delta listed, bravo an error, the others drifted (not applied).
    let names = |list: &Value| -> Vec<String> {
        list["services"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap().to_owned()).collect()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, drifted) = t.get("/api/services?status=drifted").await;
        assert_eq!(status, 200, "{drifted}");
        if names(&drifted) == ["alpha", "charlie", "delta"] {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "another process's writes are not listed: {drifted}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, errors) = t.get("/api/services?status=error").await;
    assert_eq!(names(&errors), ["bravo"], "{errors}");
    assert!(errors["services"][0]["reasons"][0].as_str().unwrap().contains("state.json is corrupt"), "{errors}");

    // Pages of two, following the cursor; the last page has no next cursor.
    let (_, first) = t.get("/api/services?limit=2").await;
    assert_eq!(names(&first), ["alpha", "bravo"], "{first}");
    assert_eq!(first["next_cursor"], "bravo", "{first}");
    let (_, second) = t.get("/api/services?limit=2&cursor=bravo").await;
    assert_eq!(names(&second), ["charlie", "delta"], "{second}");
    assert_eq!(second["next_cursor"], Value::Null, "{second}");
    let (_, filtered) = t.get("/api/services?limit=1&status=drifted&cursor=alpha").await;
    assert_eq!((names(&filtered), &filtered["next_cursor"]), (vec!["charlie".to_owned()], &json!("charlie")));
    let (_, all) = t.get("/api/services").await;
    assert_eq!(names(&all), ["alpha", "bravo", "charlie", "delta"], "without a limit, every service");

    // A service deleted by the other process disappears from the list too.
    other.service_delete(&client, &id("delta")).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while names(&t.get("/api/services").await.1).contains(&"delta".to_owned()) {
        assert!(std::time::Instant::now() < deadline, "a deleted service stays listed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Bad parameters: a 422 naming the field.
    for (query, field) in
        [("limit=0", "limit"), ("limit=many", "limit"), ("cursor=Bad!", "cursor"), ("status=broken", "status")]
    {
        let (status, answer) = t.get(&format!("/api/services?{query}")).await;
        assert_eq!(status, 422, "{query}: {answer}");
        assert_eq!(answer["error"]["details"][0]["field"], field, "{query}: {answer}");
    }
}

/// `docs/openapi.json` is the document the code generates (and serves). After a change of the
/// API, `SPAWNIT_BLESS=1 cargo test -p spawnit-server --test server api::openapi_document_is_checked_in`
/// writes it anew.
#[test]
fn openapi_document_is_checked_in() {
    let generated = format!("{}\n", spawnit_server::openapi::document().to_pretty_json().unwrap());
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    if std::env::var_os("SPAWNIT_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "docs/openapi.json is not what the code generates: run \
         `SPAWNIT_BLESS=1 cargo test -p spawnit-server --test server api::openapi_document_is_checked_in`"
    );
}
