//! A frozen store: the server's S3 store (a real `moto_server` on loopback) is stopped with
//! SIGSTOP for over 30 s while clients call the API and an apply runs on the real Docker
//! engine. Every call answers (a 503 `store_unavailable`, not a hang), `/readyz` says the store
//! is down while `/healthz` stays the liveness probe, the apply ends with a reason, its lock
//! does not outlive its expiry, and once the store is back everything recovers by itself with
//! nothing written before the outage lost.
//!
//! The HTTP client gives up after 20 s: that is a correctness bound (a call that hangs fails
//! the test; the server's store timeout is 10 s), not a speed measurement.

use crate::common;
#[allow(dead_code)]
#[path = "../../../store/tests/common/moto.rs"]
mod moto;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use moto::Moto;
use reqwest::Method;
use serde_json::{Value, json};
use spawnit_docker::DockerProvider;
use spawnit_engine::{Engine, Providers};
use spawnit_model::{Id, LockInfo, OwnerKey, ProviderKind};
use spawnit_server::accounts::Role;
use spawnit_server::auth::token_create;
use spawnit_server::{Server, ServerConfig};
use spawnit_store::{Collection, Key, S3Credentials, S3Options, Store};

/// A call that takes longer than this has hung.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the store stays frozen.
const OUTAGE: Duration = Duration::from_secs(32);

fn s3_store(moto: &Moto) -> Store {
    Store::open_s3(S3Options {
        bucket: "spawnit-outage".into(),
        prefix: "server".into(),
        endpoint: Some(moto.endpoint()),
        region: Some("us-east-1".into()),
        credentials: Some(S3Credentials { access_key_id: "test".into(), secret_access_key: "test".into() }),
    })
    .expect("open the S3 store")
}

/// A server on an S3 store with the default store timeout, as `spawnit serve --store s3://…` runs.
async fn server_on(store: Store) -> TestServer {
    docker_required();
    let docker = DockerProvider::connect().await.expect("Docker engine");
    let engine = Engine::open(store, Providers::default().with(ProviderKind::Docker, Arc::new(docker.clone())))
        .await
        .expect("open the engine");
    let admin = spawnit_server::auth::admin_token_bootstrap(engine.store()).await.unwrap().expect("admin token");
    let client = client_unique();
    let token = token_create(engine.store(), "alice", &Id::parse(&client).unwrap(), Role::Member).await.unwrap();
    let config = ServerConfig { listen: "127.0.0.1:0".parse().unwrap(), ..Default::default() };
    let server = Server::start(engine, docker, config.clone()).await.expect("start the server");
    TestServer {
        dir: tempfile::tempdir().unwrap(),
        base: format!("http://{}", server.addr),
        server: Some(server),
        client,
        token,
        admin,
        http: reqwest::Client::builder().timeout(CLIENT_TIMEOUT).build().unwrap(),
        config,
    }
}

/// A call that must answer 503 `store_unavailable` (and not hang: the client gives up after 20 s).
async fn unavailable(t: &TestServer, method: Method, path: &str, body: Option<Value>) {
    let (status, answer) = t.call(method.clone(), path, body).await;
    assert_eq!(status, 503, "{method} {path} during the outage: {answer}");
    assert_eq!(answer["error"]["code"], "store_unavailable", "{method} {path}: {answer}");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("the store did not answer in time"), "{method} {path}: {message}");
}

async fn readyz(t: &TestServer) -> (u16, Value) {
    let resp = t.http.get(t.url("/readyz")).send().await.expect("/readyz answers");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("/readyz is JSON"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_frozen_store_answers_503_and_everything_recovers_when_it_returns() {
    let moto = Moto::start().await;
    moto.bucket_create("spawnit-outage").await;
    let store = s3_store(&moto);
    let t = server_on(store.clone()).await;
    let client = Id::parse(&t.client).unwrap();

    // Before the outage: a deployed service, and a second one about to be applied.
    let kept_port = t.hello("kept", "written before the outage").await;
    let job = t.post("/api/services/kept/apply", empty()).await.1;
    assert_eq!(t.job_wait(&job).await["status"], "succeeded");
    assert!(http_text(kept_port).await.contains("written before the outage"));
    let (status, kept_before) = t.get("/api/services/kept").await;
    assert_eq!(status, 200, "{kept_before}");
    let web_port = free_port();
    let (status, body) = t
        .post(
            "/api/services",
            json!({"template": "hello", "name": "web", "params": {"port": web_port, "message": "after"}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, ready) = readyz(&t).await;
    assert_eq!((status, &ready["status"]), (200, &json!("ready")), "{ready}");

    // An apply runs; the store freezes as soon as it starts changing things, so its state
    // write and its lock release meet the frozen store.
    let (status, job) = t.post("/api/services/web/apply", empty()).await;
    assert_eq!(status, 202, "{job}");
    let job_id = job["id"].as_str().unwrap().to_owned();
    let mut events = t.sse(&format!("/api/jobs/{job_id}/events"), None).await;
    events.until(Duration::from_secs(60), "operation_started", |e| e.event == "operation_started").await;
    moto.freeze();
    let frozen_at = Instant::now();

    // During the outage: clients get clear answers at once, several at a time.
    let service_create = json!({"template": "hello", "name": "during", "params": {"port": free_port()}});
    let job_path = format!("/api/jobs/{job_id}");
    tokio::join!(
        unavailable(&t, Method::GET, "/api/services", None),
        unavailable(&t, Method::GET, "/api/services/kept", None),
        unavailable(&t, Method::POST, "/api/services", Some(service_create)),
        unavailable(&t, Method::POST, "/api/services/kept/apply", Some(empty())),
        unavailable(&t, Method::GET, &job_path, None),
    );
    let (status, health) = t.get("/healthz").await;
    assert_eq!((status, &health["status"]), (200, &json!("ok")), "liveness does not depend on the store");
    let (status, ready) = readyz(&t).await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["checks"]["store"]["ok"], false, "{ready}");
    assert!(ready["checks"]["store"]["error"].as_str().unwrap().contains("did not answer"), "{ready}");
    assert_eq!(ready["checks"]["docker"]["ok"], true, "{ready}");

    // Still down after more than 30 s.
    tokio::time::sleep(OUTAGE.saturating_sub(frozen_at.elapsed())).await;
    unavailable(&t, Method::GET, "/api/services", None).await;
    assert_eq!(readyz(&t).await.0, 503);
    moto.thaw();

    // The store is back: ready again, by itself.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, ready) = readyz(&t).await;
        if status == 200 {
            assert_eq!(ready["status"], "ready");
            break;
        }
        assert!(Instant::now() < deadline, "/readyz still answers {status} a minute after the store returned: {ready}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The apply ended with a reason (or, had it met the store only once it was back, succeeded).
    let record = t.job_wait(&job).await;
    eprintln!("the apply that met the outage ended {}: {}", record["status"], record["error"]);
    match record["status"].as_str() {
        Some("failed") => {
            let error = record["error"].as_str().unwrap_or_default();
            assert!(error.contains("store"), "the failed job says the store failed: {record}");
        }
        Some("succeeded") => {}
        other => panic!("the apply ended {other:?}: {record}"),
    }

    // Its lock is released once the store answers, or at worst has expired.
    let lock_key = Key::lock(&OwnerKey::service(&client, &Id::parse("web").unwrap()));
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        match store.get_json::<LockInfo>(&lock_key).await.expect("read the lock") {
            None => break,
            Some(lock) if lock.value.expires_at < chrono::Utc::now() => break,
            Some(lock) => {
                assert!(Instant::now() < deadline, "the lock outlived its expiry: {:?}", lock.value);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    // The job's stored record ends as the job did (it was written again once the store was back).
    let record_key = Key::record(Collection::Jobs, &Id::parse(&job_id).unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stored: Value = store.get_json(&record_key).await.expect("read the job record").expect("stored").value;
        if stored["record"]["status"] == record["status"] {
            break;
        }
        assert!(Instant::now() < deadline, "the stored job record stays {}", stored["record"]["status"]);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Nothing written before the outage is lost, nothing from the outage was half written.
    let (status, kept_after) = t.get("/api/services/kept").await;
    assert_eq!(status, 200, "{kept_after}");
    for field in ["template", "params", "generation", "created_at", "updated_at", "resources"] {
        assert_eq!(kept_after[field], kept_before[field], "{field} of the service written before the outage");
    }
    assert!(http_text(kept_port).await.contains("written before the outage"));
    assert_eq!(t.get("/api/services/during").await.0, 404, "the create refused during the outage left nothing");
    let (_, list) = t.get("/api/services").await;
    let names: Vec<&str> = list["services"].as_array().unwrap().iter().filter_map(|s| s["name"].as_str()).collect();
    assert_eq!(names, ["kept", "web"], "{list}");

    // A later apply converges (taking over the lock if it had only expired).
    let job = t.post("/api/services/web/apply", empty()).await.1;
    let record = t.job_wait(&job).await;
    assert_eq!(record["status"], "succeeded", "{record}");
    assert!(http_text(web_port).await.contains("after"));
    let (_, web) = t.get("/api/services/web").await;
    assert_eq!(web["status"], "compliant", "{web}");
}
