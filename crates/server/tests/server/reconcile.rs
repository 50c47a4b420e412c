//! A reconcile that keeps failing backs off instead of looping, on the real server and the real
//! Docker engine: the service's host port is held by a plain TCP listener of the test, so every
//! reconcile apply fails; the applies are few, the API says why and when the next try is, and
//! once the port is free the next try repairs the service and the backoff starts afresh.

use crate::common;

use std::time::Duration;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};
use spawnit_server::accounts::Role;

/// Reconcile applies of the drift monitor, oldest first.
async fn reconcile_jobs(t: &TestServer) -> Vec<Value> {
    let jobs = t.get("/api/jobs").await.1;
    let mut out: Vec<Value> = jobs["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .filter(|j| j["requested_by"] == "drift-monitor" && j["kind"] == "apply")
        .cloned()
        .collect();
    out.sort_by(|a, b| a["created_at"].as_str().cmp(&b["created_at"].as_str()));
    out
}

/// Polls the service until `done` holds for it (at most `within`).
async fn service_until(t: &TestServer, within: Duration, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + within;
    loop {
        let service = t.get("/api/services/web").await.1;
        if done(&service) {
            return service;
        }
        assert!(std::time::Instant::now() < deadline, "no {what} within {within:?}: {service}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn millis_between(from: &Value, to: &Value) -> i64 {
    let parse = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().expect("a time")).expect("rfc3339");
    (parse(to) - parse(from)).num_milliseconds()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_reconcile_backs_off_says_why_and_recovers_once_fixed() {
    let base = Duration::from_secs(4);
    let t = TestServer::start(|c| {
        c.sweep_every = Duration::from_millis(500);
        c.reconcile_backoff = spawnit_server::monitor::Backoff { base, cap: base * 2 };
    })
    .await;
    let port = t.hello("web", "kept").await;
    assert_eq!(t.job_wait(&t.post("/api/services/web/apply", empty()).await.1).await["status"], "succeeded");

    // Break it so that an apply cannot succeed: the container goes, a plain listener takes its port.
    let container = format!("spawnit_{}_web_echo", t.client);
    docker(&["rm", "-f", &container]);
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("hold the service's port");
    let (status, body) = t.call(Method::PATCH, "/api/services/web", Some(json!({"drift_policy": "reconcile"}))).await;
    assert_eq!(status, 200, "{body}");

    // A window of 20 s: with a 4 s base doubling to 8 s, tries at about 0, 4, 12, 20 s.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let jobs = reconcile_jobs(&t).await;
    assert!(jobs.len() >= 2, "the monitor does retry: {jobs:#?}");
    assert!(jobs.len() <= 4, "{} reconcile applies in 20 s: {jobs:#?}", jobs.len());
    assert!(jobs.iter().all(|j| j["status"] == "failed" || j["status"] == "running"), "{jobs:#?}");

    // The API says why it waits and until when; the wait doubles up to the cap.
    let service = service_until(&t, Duration::from_secs(15), "failing reconcile", |s| {
        s["reconcile"]["failures"].as_u64().is_some_and(|n| n >= 2)
    })
    .await;
    let reconcile = &service["reconcile"];
    let message = reconcile["message"].as_str().unwrap();
    assert!(message.starts_with("reconcile failing: ") && message.contains(", next try at "), "{service}");
    let reason = reconcile["reason"].as_str().unwrap();
    assert!(!reason.is_empty() && message.contains(reason), "{service}");
    let failures = reconcile["failures"].as_u64().unwrap() as u32;
    let last = t.get(&format!("/api/jobs/{}", reconcile["last_job"].as_str().unwrap())).await.1;
    assert_eq!(last["status"], "failed", "{last}");
    let expected = (base * 2u32.pow(failures - 1)).min(base * 2);
    assert_eq!(
        millis_between(&last["finished_at"], &reconcile["next_try_at"]),
        expected.as_millis() as i64,
        "{service}"
    );
    // The service page says it too.
    t.user("alice", &t.client, Role::Member, "a long enough password").await;
    let session = t.sign_in("alice", "a long enough password").await;
    let (status, page) = t.page(Some(&session), "/services/web").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Settings") && page.contains("reconcile failing: "), "{page}");

    // Fixed: the next try repairs it and the failures are forgotten.
    drop(listener);
    let repaired = service_until(&t, Duration::from_secs(30), "repair", |s| {
        s["status"] == "compliant" && s["reconcile"].is_null()
    })
    .await;
    assert!(http_text(port).await.contains("kept"), "{repaired}");
    let jobs = reconcile_jobs(&t).await;
    assert_eq!(jobs.last().unwrap()["status"], "succeeded", "{jobs:#?}");

    // Broken again: the backoff starts afresh (one failure, the base wait).
    docker(&["rm", "-f", &container]);
    let _listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("hold the port again");
    let service = service_until(&t, Duration::from_secs(15), "a new failing reconcile", |s| {
        s["reconcile"]["failures"].as_u64().is_some()
    })
    .await;
    assert_eq!(service["reconcile"]["failures"], 1, "{service}");
    let last = t.get(&format!("/api/jobs/{}", service["reconcile"]["last_job"].as_str().unwrap())).await.1;
    assert_eq!(millis_between(&last["finished_at"], &service["reconcile"]["next_try_at"]), base.as_millis() as i64);
}
