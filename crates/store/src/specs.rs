//! Clients, and the desired specs of their services and networks
//! (`clients/<client>/{services,networks}/<name>/spec.json`).

use spawnit_model::{Id, NetworkSpec, OwnerKey, ServiceSpec};

use crate::error::StoreError;
use crate::key::{Collection, Key};
use crate::store::{PutCondition, Store, Version, Versioned};

impl Store {
    /// The clients that have anything stored, sorted.
    pub async fn client_list(&self) -> Result<Vec<Id>, StoreError> {
        self.ids_under(&Key::clients()).await
    }

    /// The child directories of `prefix` whose names are valid ids, sorted; other names
    /// (left there by hand) are skipped.
    pub async fn ids_under(&self, prefix: &Key) -> Result<Vec<Id>, StoreError> {
        let mut ids: Vec<Id> = self.list_dirs(prefix).await?.iter().filter_map(|name| Id::parse(name).ok()).collect();
        ids.sort();
        Ok(ids)
    }

    /// The ids of a collection's records, sorted (names that are not `<id>.json` are skipped).
    pub async fn record_ids(&self, collection: Collection) -> Result<Vec<Id>, StoreError> {
        let dir = Key::collection(collection);
        let prefix = format!("{dir}/");
        let mut ids: Vec<Id> = self
            .list(&dir)
            .await?
            .iter()
            .filter_map(|key| key.strip_prefix(&prefix)?.strip_suffix(".json").and_then(|name| Id::parse(name).ok()))
            .collect();
        ids.sort();
        Ok(ids)
    }

    // ---- services ----

    pub async fn service_spec(&self, client: &Id, service: &Id) -> Result<Option<Versioned<ServiceSpec>>, StoreError> {
        self.get_json(&Key::spec(&OwnerKey::service(client, service))).await
    }

    /// Writes a service's spec at the place its `client` and `name` say.
    pub async fn service_spec_put(&self, spec: &ServiceSpec, condition: PutCondition) -> Result<Version, StoreError> {
        self.put_json(&Key::spec(&OwnerKey::service(&spec.client, &spec.name)), spec, condition).await
    }

    /// The client's services, sorted.
    pub async fn service_list(&self, client: &Id) -> Result<Vec<Id>, StoreError> {
        self.ids_under(&Key::services(client)).await
    }

    /// Deletes a service's state, lock and spec (the spec last, so a service half deleted is
    /// still listed and can be deleted again).
    pub async fn service_delete(&self, client: &Id, service: &Id) -> Result<(), StoreError> {
        self.owner_delete(&OwnerKey::service(client, service)).await
    }

    // ---- networks ----

    pub async fn network_spec(&self, client: &Id, network: &Id) -> Result<Option<Versioned<NetworkSpec>>, StoreError> {
        self.get_json(&Key::spec(&OwnerKey::network(client, network))).await
    }

    /// Writes a network's spec at the place its `client` and `name` say.
    pub async fn network_spec_put(&self, spec: &NetworkSpec, condition: PutCondition) -> Result<Version, StoreError> {
        self.put_json(&Key::spec(&OwnerKey::network(&spec.client, &spec.name)), spec, condition).await
    }

    /// The client's networks, sorted.
    pub async fn network_list(&self, client: &Id) -> Result<Vec<Id>, StoreError> {
        self.ids_under(&Key::networks(client)).await
    }

    /// Deletes a network's state, lock and spec (the spec last).
    pub async fn network_delete(&self, client: &Id, network: &Id) -> Result<(), StoreError> {
        self.owner_delete(&OwnerKey::network(client, network)).await
    }

    async fn owner_delete(&self, owner: &OwnerKey) -> Result<(), StoreError> {
        self.delete(&Key::state(owner)).await?;
        self.delete(&Key::lock(owner)).await?;
        self.delete(&Key::spec(owner)).await
    }
}
