//! The behaviour every backend must have, one function per case. Racing cases split their
//! racers between two independent store handles on the same location.

use std::time::Duration;

use bytes::Bytes;
use chrono::{TimeDelta, Utc};
use futures::future::join_all;
use serde_json::json;
use spawnit_model::{Address, Id, LockInfo, NetworkSpec, OwnerKey, ResourceState, ServiceSpec, State, Template};
use spawnit_store::{Key, LockError, PutCondition, StateWriter, Store, StoreError};

use super::Fixture;

fn id(s: &str) -> Id {
    Id::parse(s).expect("a valid id")
}

fn web() -> OwnerKey {
    OwnerKey::service(&id("default"), &id("web"))
}

fn service_spec(client: &str, name: &str) -> ServiceSpec {
    serde_json::from_value(json!({
        "client": client, "name": name,
        "template": { "id": "redis", "version": "1.0.0" },
        "network": "default",
        "params": { "port": 6379 },
        "instance": { "containers": {} },
        "created_at": "2026-11-23T11:00:00Z", "updated_at": "2026-11-23T11:00:00Z"
    }))
    .expect("a service spec")
}

fn network_spec(client: &str, name: &str) -> NetworkSpec {
    NetworkSpec {
        client: id(client),
        name: id(name),
        docker_naming: spawnit_model::DockerNaming::CURRENT,
        created_at: Utc::now(),
    }
}

fn template(id: &str, description: &str) -> Template {
    serde_json::from_value(json!({
        "id": id, "name": id.to_uppercase(), "category": "test", "description": description,
        "version": "1.0.0", "blueprint": { "containers": {} }
    }))
    .expect("a template")
}

fn volume(name: &str) -> (Address, ResourceState) {
    let resource = serde_json::from_value(json!({
        "id": name, "attrs": { "kind": "volume", "name": name }, "fingerprint": "f", "updated_at": Utc::now()
    }))
    .expect("a resource state");
    (format!("volume.{name}").parse().expect("an address"), resource)
}

/// This host's name, read the way the store reads it.
fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}

fn lock_info(job: &str, host: &str, pid: u32, expires_in: TimeDelta) -> LockInfo {
    let now = Utc::now();
    LockInfo {
        job: job.into(),
        operation: "apply".into(),
        host: host.into(),
        pid,
        acquired_at: now - TimeDelta::minutes(5),
        expires_at: now + expires_in,
    }
}

/// Counts results that won (`Ok`) and asserts every loser lost with a conflict.
fn winners<T: std::fmt::Debug>(results: &[Result<T, StoreError>]) -> usize {
    for result in results {
        if let Err(e) = result {
            assert!(
                matches!(e, StoreError::Conflict { .. }),
                "a racer failed with something else than a conflict: {e}"
            );
        }
    }
    results.iter().filter(|r| r.is_ok()).count()
}

// ---- raw objects ----

pub async fn put_get_round_trip(f: &Fixture) {
    let store = &f.store;
    let key = Key::template(&id("redis"));
    assert!(store.get(&key).await.expect("get").is_none());

    let v1 = store.put(&key, Bytes::from_static(b"one"), PutCondition::Overwrite).await.expect("put");
    let (bytes, version) = store.get(&key).await.expect("get").expect("present");
    assert_eq!((&bytes[..], &version), (&b"one"[..], &v1));

    let v2 = store.put(&key, Bytes::from_static(b"two"), PutCondition::Overwrite).await.expect("overwrite");
    assert_ne!(v1, v2, "a new content has a new version");
    assert_eq!(&store.get(&key).await.expect("get").expect("present").0[..], b"two");

    let spec = service_spec("default", "web");
    let v3 = store.service_spec_put(&spec, PutCondition::Absent).await.expect("put spec");
    let read = store.service_spec(&id("default"), &id("web")).await.expect("get spec").expect("present");
    assert_eq!((read.value, read.version), (spec, v3));
    let listed = store.list(&Key::owner(&web())).await.expect("list");
    assert_eq!(listed, vec!["clients/default/services/web/spec.json".to_owned()]);

    store.delete(&key).await.expect("delete");
    assert!(store.get(&key).await.expect("get").is_none());
    store.delete(&key).await.expect("deleting a missing object is fine");
}

pub async fn absent_twice_conflicts(f: &Fixture) {
    let key = Key::spec(&web());
    f.store.put(&key, Bytes::from_static(b"first"), PutCondition::Absent).await.expect("first create");
    let err = f.store.put(&key, Bytes::from_static(b"second"), PutCondition::Absent).await.expect_err("second create");
    assert!(matches!(&err, StoreError::Conflict { key } if key == "clients/default/services/web/spec.json"), "{err:?}");
    assert_eq!(err.to_string(), "clients/default/services/web/spec.json was created or changed by another writer");
    assert_eq!(&f.store.get(&key).await.expect("get").expect("present").0[..], b"first");
}

pub async fn matches_stale_conflicts(f: &Fixture) {
    let key = Key::spec(&web());
    let missing = f.store.put(&key, Bytes::from_static(b"x"), PutCondition::Absent).await.expect("create");
    f.store.delete(&key).await.expect("delete");
    let err = f.store.put(&key, Bytes::from_static(b"y"), PutCondition::Matches(missing)).await;
    assert!(matches!(err, Err(StoreError::Conflict { .. })), "a version of a deleted object: {err:?}");

    let v1 = f.store.put(&key, Bytes::from_static(b"one"), PutCondition::Absent).await.expect("create");
    let v2 = f.store.put(&key, Bytes::from_static(b"two"), PutCondition::Matches(v1.clone())).await.expect("update");
    let err = f.store.put(&key, Bytes::from_static(b"three"), PutCondition::Matches(v1)).await;
    assert!(matches!(err, Err(StoreError::Conflict { .. })), "a stale version: {err:?}");
    let (bytes, version) = f.store.get(&key).await.expect("get").expect("present");
    assert_eq!((&bytes[..], version), (&b"two"[..], v2));
}

pub async fn racing_creates_have_one_winner(f: &Fixture) {
    let stores = [f.store.clone(), f.reopen()];
    for round in 0..5 {
        let key = Key::spec(&OwnerKey::service(&id("default"), &id(&format!("race-{round}"))));
        let results = join_all((0..16).map(|i| {
            let (store, key) = (stores[i % 2].clone(), key.clone());
            tokio::spawn(async move { store.put(&key, Bytes::from(format!("racer {i}")), PutCondition::Absent).await })
        }))
        .await;
        let results: Vec<_> = results.into_iter().map(|r| r.expect("racer task")).collect();
        assert_eq!(winners(&results), 1, "round {round}: exactly one create wins: {results:?}");
        let winner = results.iter().position(|r| r.is_ok()).expect("a winner");
        let (bytes, version) = f.store.get(&key).await.expect("get").expect("present");
        assert_eq!(bytes, Bytes::from(format!("racer {winner}")), "round {round}: the winner's content is stored");
        assert_eq!(Some(&version), results[winner].as_ref().ok());
    }
}

pub async fn racing_updates_have_one_winner(f: &Fixture) {
    let stores = [f.store.clone(), f.reopen()];
    let key = Key::state(&web());
    let mut version = f.store.put(&key, Bytes::from_static(b"start"), PutCondition::Absent).await.expect("create");
    for round in 0..5 {
        let results = join_all((0..16).map(|i| {
            let (store, key, base) = (stores[i % 2].clone(), key.clone(), version.clone());
            tokio::spawn(async move {
                store.put(&key, Bytes::from(format!("round {round} racer {i}")), PutCondition::Matches(base)).await
            })
        }))
        .await;
        let results: Vec<_> = results.into_iter().map(|r| r.expect("racer task")).collect();
        assert_eq!(winners(&results), 1, "round {round}: exactly one update wins: {results:?}");
        let winner = results.iter().position(|r| r.is_ok()).expect("a winner");
        let (bytes, stored) = f.store.get(&key).await.expect("get").expect("present");
        assert_eq!(bytes, Bytes::from(format!("round {round} racer {winner}")));
        version = stored;
    }
}

/// Clients racing to rent nodes through two handles: every node goes to exactly one client,
/// the losers get "not enough free" and the book holds exactly the winners' leases.
pub async fn lease_racers_for_the_last_node_have_one_winner(f: &Fixture) {
    use spawnit_model::node::{LeaseError, NodeCandidate};
    let stores = [f.store.clone(), f.reopen()];
    let free: Vec<NodeCandidate> =
        (0..3).map(|i| NodeCandidate { node_id: format!("node{i}"), hostname: format!("w{i}") }).collect();
    let results = join_all((0..12).map(|i| {
        let (store, free) = (stores[i % 2].clone(), free.clone());
        tokio::spawn(async move {
            let client = id(&format!("client-{i}"));
            store.lease_book_update(|book| book.rent(&client, 1, &free, Utc::now(), Duration::from_secs(3600))).await
        })
    }))
    .await;
    let results: Vec<_> = results.into_iter().map(|r| r.expect("racer task")).collect();
    let won: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).flatten().collect();
    assert_eq!(won.len(), 3, "three nodes, three winners: {results:?}");
    for r in results.iter().filter(|r| r.is_err()) {
        match r {
            Err(spawnit_store::LeaseUpdateError::Refused(LeaseError::NotEnoughFree { asked: 1, free: 0 })) => {}
            other => panic!("a loser is told the pool is empty, got {other:?}"),
        }
    }
    let book = f.store.lease_book().await.expect("read").expect("written").value;
    let mut stored: Vec<(String, String)> =
        book.leases.values().map(|l| (l.node_id.clone(), l.client.to_string())).collect();
    let mut winners: Vec<(String, String)> = won.iter().map(|l| (l.node_id.clone(), l.client.to_string())).collect();
    stored.sort();
    winners.sort();
    assert_eq!(stored, winners, "the book holds exactly the winners, one node each");
}

// ---- lists ----

pub async fn lists_skip_invalid_names(f: &Fixture) {
    let store = &f.store;
    for name in ["web", "db"] {
        store.service_spec_put(&service_spec("default", name), PutCondition::Absent).await.expect("put spec");
    }
    store.service_spec_put(&service_spec("acme", "web"), PutCondition::Absent).await.expect("put spec");
    store.network_spec_put(&network_spec("default", "default"), PutCondition::Absent).await.expect("put network");
    f.raw_put("clients/default/services/Bad_Name/spec.json", b"{}").await;
    f.raw_put("clients/default/services/-dash/spec.json", b"{}").await;
    f.raw_put("clients/default/networks/UPPER/spec.json", b"{}").await;
    f.raw_put("clients/No Client/services/x/spec.json", b"{}").await;
    f.raw_put("clients/default/services/stray.json", b"{}").await;

    assert_eq!(store.client_list().await.expect("clients"), vec![id("acme"), id("default")]);
    assert_eq!(store.service_list(&id("default")).await.expect("services"), vec![id("db"), id("web")]);
    assert_eq!(store.service_list(&id("acme")).await.expect("services"), vec![id("web")]);
    assert_eq!(store.network_list(&id("default")).await.expect("networks"), vec![id("default")]);
    assert_eq!(store.service_list(&id("nobody")).await.expect("services"), Vec::<Id>::new());
    let mut keys = store.list(&Key::services(&id("default"))).await.expect("list");
    keys.retain(|k| !k.contains("Bad_Name") && !k.contains("-dash"));
    assert_eq!(
        keys,
        vec![
            "clients/default/services/db/spec.json".to_owned(),
            "clients/default/services/stray.json".to_owned(),
            "clients/default/services/web/spec.json".to_owned(),
        ]
    );
}

pub async fn deleting_an_owner_removes_it_from_lists(f: &Fixture) {
    let store = &f.store;
    store.service_spec_put(&service_spec("default", "web"), PutCondition::Absent).await.expect("put spec");
    store.service_spec_put(&service_spec("default", "db"), PutCondition::Absent).await.expect("put spec");
    let mut writer = StateWriter::load(store, web()).await.expect("load state");
    let (address, resource) = volume("data");
    writer.record(&address, Some(resource)).await.expect("record");
    let lock = store.lock_acquire(&web(), "job-1", "apply", Duration::from_secs(30)).await.expect("lock");
    lock.release().await.expect("release");
    store.network_spec_put(&network_spec("default", "default"), PutCondition::Absent).await.expect("put network");

    store.service_delete(&id("default"), &id("web")).await.expect("delete service");
    assert_eq!(store.service_list(&id("default")).await.expect("services"), vec![id("db")]);
    assert!(store.service_spec(&id("default"), &id("web")).await.expect("spec").is_none());
    assert!(store.state(&web()).await.expect("state").is_none());
    assert!(store.list(&Key::owner(&web())).await.expect("list").is_empty());
    store.service_delete(&id("default"), &id("web")).await.expect("deleting again is fine");

    store.network_delete(&id("default"), &id("default")).await.expect("delete network");
    assert!(store.network_list(&id("default")).await.expect("networks").is_empty());
    store.service_delete(&id("default"), &id("db")).await.expect("delete service");
    assert!(store.client_list().await.expect("clients").is_empty(), "a client with nothing left is not listed");
}

pub async fn corrupt_object_names_its_key(f: &Fixture) {
    f.raw_put("clients/default/services/web/spec.json", b"{ not json").await;
    let err = f.store.service_spec(&id("default"), &id("web")).await.expect_err("corrupt");
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert_eq!(err.to_string(), "clients/default/services/web/spec.json is corrupt: it is not the JSON expected there");
}

// ---- state ----

pub async fn state_writer_counts_generations_and_rejects_stale_writers(f: &Fixture) {
    let mut first = StateWriter::load(&f.store, web()).await.expect("load");
    assert_eq!(first.state().generation, 0);
    assert!(first.version().is_none());
    assert!(
        f.store.state(&web()).await.expect("state").is_none(),
        "a new state is not written before its first record"
    );
    let lineage = first.state().lineage.clone();
    assert_eq!(lineage.len(), 36, "a UUID lineage: {lineage}");

    let (data, data_state) = volume("data");
    first.record(&data, Some(data_state.clone())).await.expect("first record");
    let mut second = StateWriter::load(&f.reopen(), web()).await.expect("load again");
    assert_eq!(second.state().generation, 1);

    let (logs, logs_state) = volume("logs");
    first.record(&logs, Some(logs_state.clone())).await.expect("second record");
    first.record(&data, None).await.expect("third record");
    assert_eq!(first.state().generation, 3);

    let (cache, cache_state) = volume("cache");
    let err = second.record(&cache, Some(cache_state)).await.expect_err("a stale writer");
    assert!(matches!(err, StoreError::StateConflict { generation: 1, .. }), "{err:?}");
    assert_eq!(err.to_string(), "state of service default/web was changed by another writer (expected generation 1)");
    assert!(second.record(&data, None).await.is_err(), "a stale writer stays stale");

    let stored = f.store.state(&web()).await.expect("state").expect("present").value;
    assert_eq!(&stored, first.state(), "the stored state is the last good writer's");
    assert_eq!((stored.generation, stored.lineage.as_str()), (3, lineage.as_str()));
    assert_eq!(stored.resources.keys().collect::<Vec<_>>(), vec![&logs]);
    assert_eq!(stored.resources[&logs], logs_state);

    f.store.state_delete(&web()).await.expect("delete state");
    assert!(f.store.state(&web()).await.expect("state").is_none());
}

pub async fn state_writers_racing_on_a_new_state(f: &Fixture) {
    let mut a = StateWriter::load(&f.store, web()).await.expect("load");
    let mut b = StateWriter::load(&f.reopen(), web()).await.expect("load");
    let (data, data_state) = volume("data");
    a.record(&data, Some(data_state)).await.expect("the first writer creates the state");
    let err = b.record(&data, None).await.expect_err("the second finds it created");
    assert_eq!(err.to_string(), "state of service default/web was changed by another writer (expected generation 0)");
    let stored: State = f.store.state(&web()).await.expect("state").expect("present").value;
    assert_eq!(stored.lineage, a.state().lineage);
    assert_eq!(stored.generation, 1);
}

// ---- locks ----

pub async fn lock_held_then_released(f: &Fixture) {
    let ttl = Duration::from_secs(30);
    let first = f.store.lock_acquire(&web(), "job-a", "apply", ttl).await.expect("acquire");
    assert!(!first.lost());
    let info = first.info();
    assert_eq!((info.job.as_str(), info.pid, info.host.clone()), ("job-a", std::process::id(), this_host()));

    let err = f.reopen().lock_acquire(&web(), "job-b", "destroy", ttl).await.expect_err("held");
    let LockError::Held { holder, .. } = &err else { panic!("expected Held, got {err:?}") };
    assert_eq!(holder.job, "job-a");
    let message = err.to_string();
    let expected = format!(
        "service default/web is locked by job job-a (apply, pid {} on host {}) since ",
        std::process::id(),
        this_host()
    );
    assert!(message.starts_with(&expected), "{message}");
    assert!(message.ends_with('Z'), "{message}");

    let other = OwnerKey::network(&id("default"), &id("default"));
    let unrelated = f.store.lock_acquire(&other, "job-b", "apply", ttl).await.expect("another owner's lock is free");

    first.release().await.expect("release");
    assert!(f.store.get(&Key::lock(&web())).await.expect("get").is_none(), "release deletes the lock");
    let second = f.store.lock_acquire(&web(), "job-b", "destroy", ttl).await.expect("acquire after release");
    second.release().await.expect("release");
    unrelated.release().await.expect("release");
}

pub async fn lock_wait_gets_it_when_released(f: &Fixture) {
    let ttl = Duration::from_secs(30);
    let first = f.store.lock_acquire(&web(), "job-a", "apply", ttl).await.expect("acquire");
    let err = f.store.lock_acquire_wait(&web(), "job-b", "apply", ttl, Duration::from_millis(300)).await;
    assert!(matches!(err, Err(LockError::Held { .. })), "still held after the wait: {err:?}");

    let releaser = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        first.release().await.expect("release");
    });
    let second = f
        .reopen()
        .lock_acquire_wait(&web(), "job-b", "apply", ttl, Duration::from_secs(20))
        .await
        .expect("acquired after waiting");
    releaser.await.expect("releaser");
    assert_eq!(second.info().job, "job-b");
    second.release().await.expect("release");
}

pub async fn lock_expired_is_taken_over(f: &Fixture) {
    let key = Key::lock(&web());
    f.store
        .put_json(&key, &lock_info("old-job", "elsewhere", 1, -TimeDelta::seconds(1)), PutCondition::Absent)
        .await
        .expect("write");
    let guard = f.store.lock_acquire(&web(), "new-job", "apply", Duration::from_secs(30)).await.expect("take over");
    let stored: LockInfo = f.store.get_json(&key).await.expect("get").expect("present").value;
    assert_eq!(stored.job, "new-job");
    guard.release().await.expect("release");
}

pub async fn lock_of_dead_pid_on_this_host_is_taken_over(f: &Fixture) {
    let mut child = std::process::Command::new("true").spawn().expect("spawn true");
    let dead = child.id();
    child.wait().expect("wait");
    let key = Key::lock(&web());
    let far = TimeDelta::hours(1);

    // On another host the pid means nothing here: the lock is held until it expires.
    f.store
        .put_json(&key, &lock_info("remote-job", "some-other-host", dead, far), PutCondition::Overwrite)
        .await
        .expect("write");
    let err = f.store.lock_acquire(&web(), "new-job", "apply", Duration::from_secs(30)).await;
    assert!(matches!(err, Err(LockError::Held { .. })), "{err:?}");

    // On this host a process that is gone holds nothing.
    f.store
        .put_json(&key, &lock_info("crashed-job", &this_host(), dead, far), PutCondition::Overwrite)
        .await
        .expect("write");
    let guard = f.store.lock_acquire(&web(), "new-job", "apply", Duration::from_secs(30)).await.expect("take over");
    assert_eq!(guard.info().pid, std::process::id());
    guard.release().await.expect("release");
}

pub async fn lock_stale_racers_have_one_winner(f: &Fixture) {
    let stores = [f.store.clone(), f.reopen()];
    let key = Key::lock(&web());
    for round in 0..3 {
        f.store
            .put_json(&key, &lock_info("stale", "elsewhere", 1, -TimeDelta::seconds(5)), PutCondition::Overwrite)
            .await
            .expect("write");
        let results = join_all((0..8).map(|i| {
            let store = stores[i % 2].clone();
            tokio::spawn(async move {
                store.lock_acquire(&web(), &format!("racer-{i}"), "apply", Duration::from_secs(30)).await
            })
        }))
        .await;
        let mut won = Vec::new();
        for result in results {
            match result.expect("racer task") {
                Ok(guard) => won.push(guard),
                Err(LockError::Held { holder, .. }) => {
                    assert_ne!(holder.job, "stale", "a loser reports the new holder")
                }
                Err(e) => panic!("a racer failed with something else than Held: {e}"),
            }
        }
        assert_eq!(won.len(), 1, "round {round}: exactly one racer takes the stale lock over");
        let stored: LockInfo = f.store.get_json(&key).await.expect("get").expect("present").value;
        assert_eq!(stored.job, won[0].info().job);
        for guard in won {
            guard.release().await.expect("release");
        }
    }
}

pub async fn lock_renewal_keeps_it_held(f: &Fixture) {
    let ttl = Duration::from_millis(900);
    let guard = f.store.lock_acquire(&web(), "job-a", "apply", ttl).await.expect("acquire");
    let first_expiry = guard.info().expires_at;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(!guard.lost(), "renewed, not lost");
    let stored: LockInfo = f.store.get_json(&Key::lock(&web())).await.expect("get").expect("present").value;
    assert!(stored.expires_at > first_expiry, "renewal moved the expiry");
    assert!(stored.expires_at > Utc::now(), "still valid well after the first ttl");
    let err = f.reopen().lock_acquire(&web(), "job-b", "apply", ttl).await;
    assert!(matches!(err, Err(LockError::Held { .. })), "{err:?}");
    guard.release().await.expect("release");
}

pub async fn lock_taken_from_holder_is_reported_lost(f: &Fixture) {
    let guard = f.store.lock_acquire(&web(), "job-a", "apply", Duration::from_millis(600)).await.expect("acquire");
    let lost = guard.lost_token();
    let key = Key::lock(&web());
    let intruder = lock_info("intruder", "elsewhere", 1, TimeDelta::minutes(10));
    f.store.put_json(&key, &intruder, PutCondition::Overwrite).await.expect("overwrite");
    tokio::time::timeout(Duration::from_secs(10), lost.cancelled()).await.expect("the loss is noticed");
    assert!(guard.lost());
    guard.release().await.expect("release");
    let stored: LockInfo = f.store.get_json(&key).await.expect("get").expect("present").value;
    assert_eq!(stored, intruder, "releasing a lost lock leaves the new holder's lock alone");
}

pub async fn lock_dropped_without_release_expires(f: &Fixture) {
    let guard = f.store.lock_acquire(&web(), "job-a", "apply", Duration::from_millis(600)).await.expect("acquire");
    drop(guard);
    let err = f.store.lock_acquire(&web(), "job-b", "apply", Duration::from_secs(30)).await;
    assert!(
        matches!(err, Err(LockError::Held { .. })),
        "a dropped lock of a live process stays until it expires: {err:?}"
    );
    tokio::time::sleep(Duration::from_millis(900)).await;
    let guard =
        f.store.lock_acquire(&web(), "job-b", "apply", Duration::from_secs(30)).await.expect("expired, taken over");
    guard.release().await.expect("release");
}

// ---- catalog ----

pub async fn catalog_seed_never_overwrites(f: &Fixture) {
    let store: &Store = &f.store;
    assert!(store.catalog().await.expect("catalog").templates.is_empty(), "no catalog yet reads as empty");
    store.catalog_seed(&[template("redis", "built-in"), template("postgres", "built-in")]).await.expect("seed");
    let ids = |c: spawnit_model::Catalog| c.templates.into_iter().map(|e| e.id.to_string()).collect::<Vec<_>>();
    assert_eq!(ids(store.catalog().await.expect("catalog")), ["redis", "postgres"]);

    // A user drops a new template in and changes a built-in one.
    store.template_put(&template("minecraft", "added by a user")).await.expect("add");
    store.template_put(&template("redis", "changed by a user")).await.expect("replace");
    let after_user = store.catalog().await.expect("catalog");
    assert_eq!(ids(after_user.clone()), ["redis", "postgres", "minecraft"]);
    assert_eq!(after_user.templates[0].description, "changed by a user");

    // Seeding again (a restart with newer built-ins) keeps what is there; a built-in new to
    // this store joins its catalog.
    store
        .catalog_seed(&[template("redis", "built-in v2"), template("mysql", "built-in v2")])
        .await
        .expect("seed again");
    let after_seed = store.catalog().await.expect("catalog");
    assert_eq!(ids(after_seed.clone()), ["redis", "postgres", "minecraft", "mysql"]);
    assert_eq!(after_seed.templates[..3], after_user.templates[..]);
    store.catalog_seed(&[template("mysql", "built-in v3")]).await.expect("seed a third time");
    assert_eq!(store.catalog().await.expect("catalog"), after_seed, "a built-in already there is never re-added");
    let redis = store.template(&id("redis")).await.expect("template").expect("present");
    assert_eq!(redis.description, "changed by a user");
    let minecraft = store.template(&id("minecraft")).await.expect("template").expect("present");
    assert_eq!(minecraft.description, "added by a user");
    assert!(store.template(&id("nothing")).await.expect("template").is_none());
}

/// A watcher reports what another handle (another process) wrote, changed and deleted, and
/// only that; the handle's own writes are announced at once by `changes`.
pub async fn watchers_see_every_writer(f: &Fixture) {
    let store = &f.store;
    let other = f.reopen();
    let mut own = store.changes();
    let mut watcher = store.watch(Key::clients());
    assert_eq!(watcher.poll().await.unwrap(), Vec::<String>::new(), "an empty store has nothing to report");

    let web_spec = Key::spec(&web());
    store.service_spec_put(&service_spec("default", "web"), PutCondition::Absent).await.unwrap();
    assert_eq!(own.try_recv().unwrap(), web_spec, "the handle's own write is announced before it returns");
    assert_eq!(watcher.poll().await.unwrap(), vec![web_spec.to_string()]);
    assert_eq!(watcher.poll().await.unwrap(), Vec::<String>::new(), "nothing changed since");

    // Another process: a new service, a changed spec, a raw write; then a delete.
    other.service_spec_put(&service_spec("default", "api"), PutCondition::Absent).await.unwrap();
    let mut changed = service_spec("default", "web");
    changed.updated_at = Utc::now();
    other.service_spec_put(&changed, PutCondition::Overwrite).await.unwrap();
    f.raw_put("clients/acme/services/db/state.json", b"{}").await;
    assert!(own.try_recv().is_err(), "another handle's writes are not announced to this one");
    assert_eq!(
        watcher.poll().await.unwrap(),
        vec![
            "clients/acme/services/db/state.json".to_owned(),
            "clients/default/services/api/spec.json".to_owned(),
            web_spec.to_string(),
        ]
    );
    other.delete(&web_spec).await.unwrap();
    assert_eq!(watcher.poll().await.unwrap(), vec![web_spec.to_string()], "a deleted object is reported");

    // A key forgotten by a reader that could not read it is reported again.
    watcher.forget("clients/acme/services/db/state.json");
    assert_eq!(watcher.poll().await.unwrap(), vec!["clients/acme/services/db/state.json".to_owned()]);
    let stamped = store.list_stamped(&Key::clients()).await.unwrap();
    let keys: Vec<&str> = stamped.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, store.list(&Key::clients()).await.unwrap(), "list_stamped lists what list does");
}
