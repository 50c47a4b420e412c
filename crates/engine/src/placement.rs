//! Where a client's Swarm tasks may run, from the lease book: on the nodes it rents when it
//! holds at least one lease, on the shared pool otherwise. The one input of Swarm planning that
//! comes from outside the service's spec.

use spawnit_model::Id;
use spawnit_model::node::LeaseBook;
use spawnit_plan::Placement;
use spawnit_store::{Store, StoreError};

/// The placement of `client`'s Swarm services.
pub(crate) async fn placement_of(store: &Store, client: &Id) -> Result<Placement, StoreError> {
    let book = store.lease_book().await?.map(|v| v.value).unwrap_or_default();
    Ok(placement_in(&book, client))
}

/// The placement `book` gives `client`.
pub(crate) fn placement_in(book: &LeaseBook, client: &Id) -> Placement {
    if book.of_client(client).next().is_some() { Placement::Rented { client: client.clone() } } else { Placement::Pool }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_with_a_lease_runs_on_its_nodes_the_others_on_the_pool() {
        let acme = Id::parse("acme").unwrap();
        let mut book = LeaseBook::default();
        assert_eq!(placement_in(&book, &acme), Placement::Pool);
        let now = chrono::Utc::now();
        book.leases.insert(
            "node1".into(),
            serde_json::from_value(serde_json::json!({
                "node_id": "node1", "hostname": "n1", "client": "acme",
                "started_at": now, "expires_at": now + chrono::Duration::hours(1)
            }))
            .unwrap(),
        );
        assert_eq!(placement_in(&book, &acme), Placement::Rented { client: acme.clone() });
        assert_eq!(placement_in(&book, &Id::parse("other").unwrap()), Placement::Pool);
    }
}
