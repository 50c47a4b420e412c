//! Where a client's Swarm tasks may run, from the lease book: on the nodes it rents when it
//! holds at least one lease, on the shared pool otherwise. The one input of Swarm planning that
//! comes from outside the service's spec.

use spawnit_model::Id;
use spawnit_plan::Placement;
use spawnit_store::{Store, StoreError};

/// The placement of `client`'s Swarm services.
pub(crate) async fn placement_of(_store: &Store, _client: &Id) -> Result<Placement, StoreError> {
    // The lease book lands with the node leases (Store::lease_book); until then, the pool.
    Ok(Placement::Pool)
}
