//! The CLI against a stuck or broken object in a real local store: `delete` is refused while
//! another process holds the service's lock, and `status` lists every service when one
//! `spec.json` is corrupt, that one as an error with its reason.

use crate::common;

use std::time::Duration;

use common::*;
use spawnit_model::{Id, LockInfo, OwnerKey};
use spawnit_store::{Key, Store};

fn create(w: &World, name: &str) {
    w.ok(&["create", "hello", name, "--set", &format!("port={}", free_port()), "--set", &format!("message={name}")]);
}

#[test]
fn delete_is_refused_while_another_process_holds_the_lock() {
    let w = World::new();
    create(&w, "web");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let store = Store::open_local(w.data_dir()).unwrap();
    let owner = OwnerKey::service(&Id::parse(&w.client).unwrap(), &Id::parse("web").unwrap());
    // This test process holds the lock, as a running `spawnit apply` would.
    let lock =
        runtime.block_on(store.lock_acquire(&owner, "apply-in-progress", "apply", Duration::from_secs(60))).unwrap();

    let refused = w.run(&["delete", "web"]);
    assert_eq!(refused.code, 1, "{refused}");
    assert!(refused.stderr.contains("is locked by job apply-in-progress"), "{refused}");
    let held = runtime.block_on(store.get_json::<LockInfo>(&Key::lock(&owner))).unwrap().expect("lock intact");
    assert_eq!(held.value.job, "apply-in-progress");
    assert!(w.ok(&["show", "web"]).stdout.contains("Service"), "the spec is intact");

    runtime.block_on(lock.release()).unwrap();
    w.ok(&["delete", "web"]);
    assert_eq!(w.run(&["show", "web"]).code, 1, "deleted once the lock is free");
}

#[test]
fn status_lists_every_service_when_one_spec_is_corrupt() {
    let w = World::new();
    for name in ["alpha", "broken", "gamma"] {
        create(&w, name);
    }
    // Positive control: all three read fine.
    let before = w.ok(&["status"]);
    assert!(["alpha", "broken", "gamma"].iter().all(|n| before.stdout.contains(n)), "{before}");

    let spec = w.data_dir().join("clients").join(&w.client).join("services/broken/spec.json");
    std::fs::write(&spec, b"{ this is not json").unwrap();
    let status = w.ok(&["status"]);
    let line = |name: &str| {
        status.stdout.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name} is listed:\n{status}"))
    };
    assert!(line("alpha").contains("hello"), "{status}");
    assert!(line("gamma").contains("hello"), "{status}");
    let broken = line("broken");
    assert!(broken.contains("error"), "{status}");
    assert!(broken.contains("services/broken/spec.json is corrupt"), "{status}");

    let json = w.ok(&["status", "--output", "json"]);
    let rows: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let broken = rows.as_array().unwrap().iter().find(|r| r["service"] == "broken").expect("listed in JSON").clone();
    assert_eq!(broken["status"], "error", "{broken}");
    assert_eq!(rows.as_array().unwrap().len(), 3, "{rows}");
}
