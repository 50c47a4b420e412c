//! The lease book of cluster nodes in the store: `cluster/leases.json`, one object changed only
//! with compare-and-swap, so two clients racing for the last free node never both get it.

use spawnit_model::node::LeaseBook;

use crate::error::StoreError;
use crate::key::Key;
use crate::store::{PutCondition, Store, Versioned};

/// How many times [`Store::lease_book_update`] reads and tries again when writers race.
const LEASE_ATTEMPTS: usize = 20;

/// A lease book change that failed: the change itself refused (nothing written) or the store.
#[derive(Debug, thiserror::Error)]
pub enum LeaseUpdateError<E> {
    #[error(transparent)]
    Refused(E),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Store {
    /// The lease book as last written, with its version; `None` when no lease was ever made.
    pub async fn lease_book(&self) -> Result<Option<Versioned<LeaseBook>>, StoreError> {
        self.get_json(&Key::node_leases()).await
    }

    /// Writes the lease book if `condition` holds (`Absent` for the first one,
    /// `Matches(version read)` after).
    pub async fn lease_book_put(&self, book: &LeaseBook, condition: PutCondition) -> Result<(), StoreError> {
        self.put_json(&Key::node_leases(), book, condition).await.map(|_| ())
    }

    /// Reads the book, applies the pure `change` and writes the result with the version read,
    /// again from a fresh read when another writer won meanwhile. A refused change, or one that
    /// leaves the book as it was, writes nothing. Returns what the successful change returned.
    pub async fn lease_book_update<T, E>(
        &self,
        mut change: impl FnMut(&mut LeaseBook) -> Result<T, E>,
    ) -> Result<T, LeaseUpdateError<E>> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (read, condition) = match self.lease_book().await? {
                Some(current) => (current.value, PutCondition::Matches(current.version)),
                None => (LeaseBook::default(), PutCondition::Absent),
            };
            let mut book = read.clone();
            let out = change(&mut book).map_err(LeaseUpdateError::Refused)?;
            if book == read {
                return Ok(out);
            }
            match self.lease_book_put(&book, condition).await {
                Ok(()) => return Ok(out),
                Err(e) if e.is_conflict() && attempt < LEASE_ATTEMPTS => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}
