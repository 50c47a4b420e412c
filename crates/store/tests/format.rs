//! The store's format marker and migrations (`Store::format_open`) on both backends: a local
//! directory and a real S3 API (`moto_server` on loopback).

mod common;

use common::Fixture;
use serde_json::{Value, json};
use spawnit_model::OwnerKey;
use spawnit_store::{FORMAT_CURRENT, FormatOutcome, Key, PutCondition, StoreError};

fn id(s: &str) -> spawnit_model::Id {
    spawnit_model::Id::parse(s).expect("valid id")
}

/// A format-1 spec as the SpawnIt before format 2 wrote it (no `docker_naming`).
fn spec_v1(client: &str, name: &str) -> Vec<u8> {
    serde_json::to_vec_pretty(&json!({
        "client": client, "name": name,
        "template": { "id": "redis", "version": "1.0.0" },
        "network": "default",
        "params": { "port": 6379 },
        "instance": { "containers": {} },
        "created_at": "2026-11-23T11:00:00Z", "updated_at": "2026-11-23T11:00:00Z"
    }))
    .expect("JSON")
}

async fn format_1_store_is_migrated_once_by_concurrent_openers(f: Fixture) {
    f.raw_put("clients/acme/services/web/spec.json", &spec_v1("acme", "web")).await;
    f.raw_put("clients/acme/services/db-main/spec.json", &spec_v1("acme", "db-main")).await;
    f.raw_put(
        "clients/acme/networks/default/spec.json",
        br#"{"client": "acme", "name": "default", "created_at": "2026-11-23T11:00:00Z"}"#,
    )
    .await;
    f.raw_put("auth/users/alice.json", br#"{"name": "alice"}"#).await;
    assert_eq!(f.store.format().await.expect("format"), 1);

    let openers = (0..4).map(|_| f.reopen().format_open());
    let outcomes: Vec<FormatOutcome> =
        futures::future::join_all(openers).await.into_iter().map(|r| r.expect("format_open").1).collect();
    let migrated = outcomes.iter().filter(|o| **o == FormatOutcome::Migrated { from: 1 }).count();
    assert!(migrated >= 1, "{outcomes:?}");
    assert!(outcomes.iter().all(|o| matches!(o, FormatOutcome::Migrated { from: 1 } | FormatOutcome::Current)));

    let marker = f.store.format_marker().await.expect("read").expect("a marker");
    assert_eq!(marker.format, FORMAT_CURRENT);
    assert!(f.store.get(&Key::store_lock()).await.expect("read").is_none(), "the lock is released");
    for owner in [
        OwnerKey::service(&id("acme"), &id("web")),
        OwnerKey::service(&id("acme"), &id("db-main")),
        OwnerKey::network(&id("acme"), &id("default")),
    ] {
        let spec = f.store.get_json::<Value>(&Key::spec(&owner)).await.expect("read").expect("spec");
        assert_eq!(spec.value["docker_naming"], "v1", "{owner}: {}", spec.value);
    }
    // The typed model reads them with the old naming; a second open changes nothing.
    let web = f.store.service_spec(&id("acme"), &id("web")).await.expect("read").expect("spec");
    assert_eq!(web.value.docker_naming, spawnit_model::DockerNaming::V1);
    let (_, again) = f.reopen().format_open().await.expect("open again");
    assert_eq!(again, FormatOutcome::Current);
    let web_again = f.store.service_spec(&id("acme"), &id("web")).await.expect("read").expect("spec");
    assert_eq!(web_again.version, web.version, "idempotent: nothing rewritten");
}

async fn an_empty_store_is_marked_current(f: Fixture) {
    let (_, outcome) = f.store.clone().format_open().await.expect("format_open");
    assert_eq!(outcome, FormatOutcome::New);
    assert_eq!(f.store.format().await.expect("format"), FORMAT_CURRENT);
}

async fn a_newer_store_is_read_only(f: Fixture) {
    f.raw_put("clients/acme/services/web/spec.json", &spec_v1("acme", "web")).await;
    f.raw_put("spawnit-store.json", br#"{"format": 7, "written_by": "3.1.4", "written_at": "2030-01-01T00:00:00Z"}"#)
        .await;
    let (store, outcome) = f.reopen().format_open().await.expect("format_open");
    assert!(matches!(&outcome, FormatOutcome::Newer(m) if m.format == 7), "{outcome:?}");
    // Reads work.
    let web = store.service_spec(&id("acme"), &id("web")).await.expect("read").expect("spec");
    // Every write and delete is refused with the message, and changes nothing.
    let refused = |e: StoreError| {
        let text = e.to_string();
        assert!(matches!(e, StoreError::ReadOnly { .. }), "{e:?}");
        assert!(
            text.contains("this store was written by SpawnIt 3.1.4 (format 7)") && text.contains("upgrade this binary"),
            "{text}"
        );
    };
    refused(store.service_spec_put(&web.value, PutCondition::Overwrite).await.expect_err("refused"));
    refused(store.service_delete(&id("acme"), &id("web")).await.expect_err("refused"));
    refused(store.put_json(&Key::format_marker(), &json!({"format": 2}), PutCondition::Overwrite).await.unwrap_err());
    let lock = store
        .lock_acquire(&OwnerKey::service(&id("acme"), &id("web")), "job", "apply", std::time::Duration::from_secs(5))
        .await;
    assert!(lock.is_err(), "no lock on a read-only store");
    let after = f.store.service_spec(&id("acme"), &id("web")).await.expect("read").expect("still there");
    assert_eq!(after.version, web.version);
    assert_eq!(f.store.format().await.expect("format"), 7, "the newer marker is left alone");
}

#[tokio::test]
async fn local_format_1_store_is_migrated_once_by_concurrent_openers() {
    format_1_store_is_migrated_once_by_concurrent_openers(Fixture::local().await).await;
}

#[tokio::test]
async fn s3_format_1_store_is_migrated_once_by_concurrent_openers() {
    format_1_store_is_migrated_once_by_concurrent_openers(Fixture::s3().await).await;
}

#[tokio::test]
async fn local_an_empty_store_is_marked_current() {
    an_empty_store_is_marked_current(Fixture::local().await).await;
}

#[tokio::test]
async fn s3_an_empty_store_is_marked_current() {
    an_empty_store_is_marked_current(Fixture::s3().await).await;
}

#[tokio::test]
async fn local_a_newer_store_is_read_only() {
    a_newer_store_is_read_only(Fixture::local().await).await;
}

#[tokio::test]
async fn s3_a_newer_store_is_read_only() {
    a_newer_store_is_read_only(Fixture::s3().await).await;
}
