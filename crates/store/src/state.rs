//! State written with compare-and-swap: a [`StateWriter`] loads an owner's `state.json` once and
//! then writes it after every resource operation, each write conditional on the version it
//! wrote last. A writer that finds the state changed by someone else fails and merges nothing.

use chrono::Utc;
use spawnit_model::{Address, OwnerKey, ResourceState, State};

use crate::error::StoreError;
use crate::key::Key;
use crate::store::{PutCondition, Store, Version, Versioned};

impl Store {
    /// The state of `owner` as last written, for readers (writers use [`StateWriter`]).
    pub async fn state(&self, owner: &OwnerKey) -> Result<Option<Versioned<State>>, StoreError> {
        self.get_json(&Key::state(owner)).await
    }

    /// Deletes the state of `owner` (nothing happens when there is none).
    pub async fn state_delete(&self, owner: &OwnerKey) -> Result<(), StoreError> {
        self.delete(&Key::state(owner)).await
    }
}

/// The single writer of one owner's state, normally held under the owner's lock.
#[derive(Debug)]
pub struct StateWriter {
    store: Store,
    owner: OwnerKey,
    state: State,
    /// The version of the stored state this writer last read or wrote; `None` when there was
    /// no stored state yet.
    version: Option<Version>,
}

impl StateWriter {
    /// Reads the owner's state, or starts a new one (new lineage, generation 0) that is written
    /// only by the first [`record`](StateWriter::record).
    pub async fn load(store: &Store, owner: OwnerKey) -> Result<StateWriter, StoreError> {
        let (state, version) = match store.state(&owner).await? {
            Some(stored) => (stored.value, Some(stored.version)),
            None => (State::new(uuid::Uuid::new_v4().to_string()), None),
        };
        Ok(StateWriter { store: store.clone(), owner, state, version })
    }

    /// The state as this writer last read or wrote it.
    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn owner(&self) -> &OwnerKey {
        &self.owner
    }

    /// The version of the stored state this writer is based on; `None` before its first write
    /// when there was no stored state.
    pub fn version(&self) -> Option<&Version> {
        self.version.as_ref()
    }

    /// Sets (`Some`) or removes (`None`) the entry of `address`, then writes the state with the
    /// next generation, only if the stored state is still the one this writer last saw.
    ///
    /// On [`StoreError::StateConflict`] nothing is written and this writer keeps its last
    /// state: every later write fails the same way, since the stored state is someone else's.
    pub async fn record(&mut self, address: &Address, resource: Option<ResourceState>) -> Result<(), StoreError> {
        let mut next = self.state.clone();
        match resource {
            Some(resource) => next.resources.insert(address.clone(), resource),
            None => next.resources.remove(address),
        };
        self.put_next_generation(next).await
    }

    /// Writes the state as it is under the next generation, so that any other writer still
    /// holding an older version is refused from now on: the new holder of an owner's lock calls
    /// it first, which fences off a previous holder that lost the lock while paused (its next
    /// write is conditional on a version that is gone). Nothing is written for an owner with no
    /// state yet (a previous holder's first write is then conditional on absence, and refused
    /// as soon as this writer records anything).
    pub async fn fence(&mut self) -> Result<(), StoreError> {
        if self.version.is_none() {
            return Ok(());
        }
        self.put_next_generation(self.state.clone()).await
    }

    /// Writes `next` as the next generation of the state, conditional on the version this
    /// writer last saw (absent for a state never written).
    async fn put_next_generation(&mut self, mut next: State) -> Result<(), StoreError> {
        next.generation = self.state.generation + 1;
        next.updated_at = Utc::now();
        let condition = match &self.version {
            Some(version) => PutCondition::Matches(version.clone()),
            None => PutCondition::Absent,
        };
        match self.store.put_json(&Key::state(&self.owner), &next, condition).await {
            Ok(version) => {
                self.state = next;
                self.version = Some(version);
                Ok(())
            }
            Err(StoreError::Conflict { .. }) => {
                Err(StoreError::StateConflict { owner: self.owner.clone(), generation: self.state.generation })
            }
            Err(e) => Err(e),
        }
    }
}
