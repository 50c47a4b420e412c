//! Shared test support: a [`Fixture`] (a store on a temporary directory, or on a real
//! `moto_server` S3 started on loopback) and the [`suite`] every backend must pass, instantiated
//! once per backend by [`store_suite!`](crate::store_suite).

#![allow(dead_code)]

pub mod moto;
pub mod suite;

use std::sync::Arc;

use spawnit_store::{S3Credentials, S3Options, Store};
use tempfile::TempDir;

use self::moto::Moto;

/// A store plus what a test needs to reach around it: open a second handle on the same
/// location and write raw objects that the store's API cannot make (bad names, bad JSON).
pub struct Fixture {
    pub store: Store,
    backend: FixtureBackend,
}

enum FixtureBackend {
    Local(TempDir),
    S3 { moto: Arc<Moto>, options: S3Options },
}

impl Fixture {
    pub async fn local() -> Fixture {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = Store::open_local(dir.path().join("data")).expect("open a local store");
        Fixture { store, backend: FixtureBackend::Local(dir) }
    }

    /// A store on a fresh `moto_server` with a fresh bucket, under a two-segment prefix.
    pub async fn s3() -> Fixture {
        let moto = Arc::new(Moto::start().await);
        let bucket = "spawnit-test";
        moto.bucket_create(bucket).await;
        let options = S3Options {
            bucket: bucket.into(),
            prefix: "tenant/store".into(),
            endpoint: Some(moto.endpoint()),
            region: Some("us-east-1".into()),
            credentials: Some(S3Credentials { access_key_id: "test".into(), secret_access_key: "test".into() }),
        };
        let store = Store::open_s3(options.clone()).expect("open an S3 store");
        Fixture { store, backend: FixtureBackend::S3 { moto, options } }
    }

    /// A second, independent handle on the same location (as another process would open it).
    pub fn reopen(&self) -> Store {
        match &self.backend {
            FixtureBackend::Local(dir) => Store::open_local(dir.path().join("data")).expect("reopen the local store"),
            FixtureBackend::S3 { options, .. } => Store::open_s3(options.clone()).expect("reopen the S3 store"),
        }
    }

    /// Writes `bytes` at `path` (relative to the store root) behind the store's back.
    pub async fn raw_put(&self, path: &str, bytes: &[u8]) {
        match &self.backend {
            FixtureBackend::Local(dir) => {
                let file = path.split('/').fold(dir.path().join("data"), |p, s| p.join(s));
                std::fs::create_dir_all(file.parent().expect("a parent")).expect("create directories");
                std::fs::write(&file, bytes).expect("write a raw file");
            }
            FixtureBackend::S3 { moto, options } => {
                moto.object_put(&options.bucket, &format!("{}/{path}", options.prefix), bytes).await;
            }
        }
    }
}

/// Declares one `#[tokio::test]` per suite case, each on a fresh fixture made by `$fixture`.
#[macro_export]
macro_rules! store_suite {
    ($fixture:path) => {
        $crate::store_suite!(@cases $fixture;
            put_get_round_trip,
            absent_twice_conflicts,
            matches_stale_conflicts,
            racing_creates_have_one_winner,
            racing_updates_have_one_winner,
            lease_racers_for_the_last_node_have_one_winner,
            lists_skip_invalid_names,
            deleting_an_owner_removes_it_from_lists,
            corrupt_object_names_its_key,
            state_writer_counts_generations_and_rejects_stale_writers,
            state_writers_racing_on_a_new_state,
            lock_held_then_released,
            lock_wait_gets_it_when_released,
            lock_expired_is_taken_over,
            lock_of_dead_pid_on_this_host_is_taken_over,
            lock_stale_racers_have_one_winner,
            lock_renewal_keeps_it_held,
            lock_taken_from_holder_is_reported_lost,
            lock_dropped_without_release_expires,
            catalog_seed_never_overwrites,
            watchers_see_every_writer,
        );
    };
    (@cases $fixture:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let fixture = $fixture().await;
                common::suite::$case(&fixture).await;
            }
        )*
    };
}
