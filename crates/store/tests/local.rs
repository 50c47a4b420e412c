//! The store suite on a local directory, plus what only a directory has: several handles (as
//! several processes would open it) racing on the same files, and no stray files left behind.

mod common;

use bytes::Bytes;
use futures::future::join_all;
use spawnit_model::Id;
use spawnit_store::{Key, PutCondition, Store, StoreError, StoreLocation};

store_suite!(common::Fixture::local);

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn separate_handles_on_one_directory_race_safely() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    // One handle per racer, as if each were its own process.
    let stores: Vec<Store> = (0..16).map(|_| Store::open_local(dir.path()).expect("open")).collect();
    let key = Key::template(&Id::parse("shared").expect("id"));
    let version = stores[0].put(&key, Bytes::from_static(b"start"), PutCondition::Absent).await.expect("create");
    let results = join_all(stores.iter().enumerate().map(|(i, store)| {
        let (store, key, base) = (store.clone(), key.clone(), version.clone());
        tokio::spawn(async move { store.put(&key, Bytes::from(i.to_string()), PutCondition::Matches(base)).await })
    }))
    .await;
    let results: Vec<Result<_, StoreError>> = results.into_iter().map(|r| r.expect("task")).collect();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");

    let names: Vec<String> = std::fs::read_dir(dir.path().join("catalog/templates"))
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["shared.template.json"], "no temporary file is left behind");
    assert!(dir.path().join(".store.lock").exists());
}

#[tokio::test]
async fn open_follows_the_location() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let root = dir.path().join("nested/data");
    let location = StoreLocation::parse(root.to_str().expect("utf-8 path")).expect("parse");
    let store = Store::open(&location, None).expect("open creates the directory");
    assert!(root.is_dir());
    assert_eq!(store.location(), root.display().to_string());
    let err = StoreLocation::parse("ftp://host/x").expect_err("a bad scheme");
    assert!(err.to_string().contains("s3://bucket/prefix"), "{err}");
}
