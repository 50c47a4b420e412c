//! The store suite on S3: a real `moto_server` started on loopback for each test.

mod common;

use spawnit_store::{Store, StoreLocation};

store_suite!(common::Fixture::s3);

#[tokio::test]
async fn open_builds_an_s3_store_from_a_location() {
    let moto = common::moto::Moto::start().await;
    moto.bucket_create("opened").await;
    let location = StoreLocation::parse("s3://opened/some/prefix").expect("parse");
    // Credentials and region come from the environment here; moto accepts any.
    let store = Store::open(&location, Some(moto.endpoint())).expect("open");
    assert_eq!(store.location(), "s3://opened/some/prefix");
}
