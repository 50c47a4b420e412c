//! SpawnIt's object store: where every spec, state, lock and catalog template lives.
//!
//! The server keeps nothing of its own; this crate is the only way to read and write what it
//! knows. A [`Store`] sits on a local directory (the default, `./spawnit-data`) or on S3
//! (`s3://bucket/prefix`), both with the same conditional writes ([`PutCondition`]): create only
//! if absent, or replace only if unchanged since it was read. On top of them it offers a typed
//! API for the catalog, service and network specs, state written with compare-and-swap
//! ([`StateWriter`]) and one-writer-at-a-time locks ([`LockGuard`]).
//!
//! Layout (every segment other than the fixed names is a validated [`Id`](spawnit_model::Id)):
//!
//! ```text
//! catalog/catalog.json
//! catalog/templates/<template>.template.json
//! clients/<client>/services/<service>/{spec,state,lock}.json
//! clients/<client>/networks/<network>/{spec,state,lock}.json
//! cluster/leases.json        who rents which Swarm node (see [`Store::lease_book_update`])
//! jobs/<job>.json             a job's record, event log and the claim of the replica running it
//! servers/leader.json         the lease of the replica running the background tasks
//! servers/statuses.json       the drift monitor's last word on every service
//! servers/events/<id>.json    server events, relayed between replicas
//! auth/…                      users, tokens, sessions, sign-in failures
//! spawnit-store.json          the format marker (see [`format`])
//! spawnit-store.lock.json     held while a migration runs
//! ```

mod backend;
mod catalog;
mod error;
pub mod format;
mod key;
mod leases;
mod location;
mod lock;
pub mod migrate;
mod specs;
mod state;
mod store;
mod watch;

pub use backend::timed::StoreRequests;
pub use error::StoreError;
pub use format::{FORMAT_CURRENT, FormatMarker, FormatOutcome};
pub use key::{Collection, Key};
pub use leases::LeaseUpdateError;
pub use location::{S3Credentials, S3Options, StoreLocation};
pub use lock::{LockError, LockGuard, expires_after, holder_gone, hostname};
pub use state::StateWriter;
pub use store::{PutCondition, Store, Version, Versioned};
pub use watch::{Stamp, StoreWatcher};
