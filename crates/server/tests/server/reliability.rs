//! What one stuck or broken object must not do: a service locked by a running writer cannot be
//! deleted from under it, and one corrupt `spec.json` or `state.json` shows as that service's
//! error while the others are still listed, in the API and on the dashboard. Real HTTP, a real
//! store in a temporary directory, the real Docker engine.

use crate::common;

use std::time::Duration;

use common::*;
use reqwest::Method;
use serde_json::json;
use spawnit_model::{Id, LockInfo, OwnerKey};
use spawnit_server::accounts::Role;
use spawnit_store::{Key, Store};

fn owner(t: &TestServer, service: &str) -> OwnerKey {
    OwnerKey::service(&Id::parse(&t.client).unwrap(), &Id::parse(service).unwrap())
}

async fn hello_spec(t: &TestServer, name: &str) {
    let body = json!({"template": "hello", "name": name, "params": {"port": free_port(), "message": name}});
    let (status, answer) = t.post("/api/services", body).await;
    assert_eq!(status, 201, "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_service_is_refused_while_another_writer_holds_its_lock() {
    let t = TestServer::start(|_| {}).await;
    hello_spec(&t, "web").await;
    // Another process (a CLI apply) holds the service's lock, as it would through this store.
    let store = Store::open_local(t.dir.path()).unwrap();
    let lock = store.lock_acquire(&owner(&t, "web"), "cli-apply-7", "apply", Duration::from_secs(60)).await.unwrap();

    let (status, answer) = t.call(Method::DELETE, "/api/services/web", None).await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["error"]["code"], "locked", "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.contains("is locked by job cli-apply-7"), "{message}");

    // The writer's lock and the spec are intact.
    let held =
        store.get_json::<LockInfo>(&Key::lock(&owner(&t, "web"))).await.unwrap().expect("the lock is still there");
    assert_eq!(held.value.job, "cli-apply-7");
    assert!(!lock.lost(), "the holder still owns its lock");
    let spec = store.service_spec(&Id::parse(&t.client).unwrap(), &Id::parse("web").unwrap()).await.unwrap();
    assert!(spec.is_some(), "the spec is intact");
    assert_eq!(t.get("/api/services/web").await.0, 200);

    // Once the writer is done, the delete goes through and leaves nothing.
    lock.release().await.unwrap();
    let (status, answer) = t.call(Method::DELETE, "/api/services/web", None).await;
    assert_eq!(status, 204, "{answer}");
    assert_eq!(t.get("/api/services/web").await.0, 404);
    assert!(store.list(&Key::owner(&owner(&t, "web"))).await.unwrap().is_empty(), "no spec, state or lock is left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_corrupt_spec_or_state_is_that_service_s_error_and_the_others_are_listed() {
    // The files are broken behind the server's back: its list sees that within a sweep interval.
    let t = TestServer::start(|c| c.sweep_every = Duration::from_millis(300)).await;
    for name in ["alpha", "broken", "gamma"] {
        hello_spec(&t, name).await;
    }
    // Positive control: all three are listed and readable.
    let (status, list) = t.get("/api/services").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["services"].as_array().unwrap().len(), 3, "{list}");

    let service_dir = |name: &str| t.dir.path().join("clients").join(&t.client).join("services").join(name);
    std::fs::write(service_dir("broken").join("spec.json"), b"{\"template\": garbage").unwrap();
    std::fs::write(service_dir("gamma").join("state.json"), b"\x00\x01 not json").unwrap();

    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let list = loop {
        let (status, list) = t.get("/api/services").await;
        assert_eq!(status, 200, "{list}");
        let corrupt =
            list["services"].as_array().unwrap().iter().filter(|s| s["reasons"].to_string().contains("corrupt"));
        if corrupt.count() == 2 {
            break list;
        }
        assert!(std::time::Instant::now() < deadline, "the list does not show the broken files: {list}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let services = list["services"].as_array().unwrap();
    let names: Vec<&str> = services.iter().filter_map(|s| s["name"].as_str()).collect();
    assert_eq!(names, ["alpha", "broken", "gamma"], "{list}");
    let by_name = |name: &str| services.iter().find(|s| s["name"] == name).unwrap().clone();
    assert_eq!(by_name("alpha")["template"]["id"], "hello", "{list}");
    assert!(!by_name("alpha")["reasons"].to_string().contains("corrupt"), "{list}");
    let broken = by_name("broken");
    assert_eq!(broken["status"], "error", "{broken}");
    let reason = broken["reasons"][0].as_str().unwrap();
    assert!(reason.contains("services/broken/spec.json is corrupt"), "{reason}");
    let gamma = by_name("gamma");
    assert_eq!(gamma["status"], "error", "{gamma}");
    assert_eq!(gamma["template"]["id"], "hello", "the spec of a service with a corrupt state is still shown");
    assert!(gamma["reasons"][0].as_str().unwrap().contains("services/gamma/state.json is corrupt"), "{gamma}");

    // The broken one alone: a 500 that names the object, not a 503 "store unavailable".
    let (status, answer) = t.get("/api/services/broken").await;
    assert_eq!(status, 500, "{answer}");
    assert_eq!(answer["error"]["code"], "store_corrupt", "{answer}");

    // The dashboard lists every service, the broken one as an error with its reason.
    t.user("bob", &t.client, Role::Member, "correct horse battery staple").await;
    let session = t.sign_in("bob", "correct horse battery staple").await;
    let (status, page) = t.page(Some(&session), "/").await;
    assert_eq!(status, 200, "{page}");
    for name in ["/services/alpha", "/services/broken", "/services/gamma"] {
        assert!(page.contains(name), "the dashboard lists {name}:\n{page}");
    }
    assert!(page.contains("services/broken/spec.json is corrupt"), "the dashboard says why:\n{page}");
}
