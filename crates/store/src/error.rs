//! The store's error type: what went wrong, on which key, with the backend's error as source.

use spawnit_model::OwnerKey;

/// An error of the underlying storage (an I/O error, an S3 error, a failed blocking task).
pub type BackendError = Box<dyn std::error::Error + Send + Sync>;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store location given by the user cannot be used.
    #[error("{location:?} is not a store location: {reason}")]
    Location { location: String, reason: String },

    /// The store could not be opened.
    #[error("opening the store at {location} failed")]
    Open {
        location: String,
        #[source]
        source: BackendError,
    },

    /// Reading, writing, deleting or listing failed.
    #[error("{op} {key} failed")]
    Backend {
        /// `reading`, `writing`, `deleting` or `listing`.
        op: &'static str,
        key: String,
        #[source]
        source: BackendError,
    },

    /// The store did not answer in time (frozen, overloaded or unreachable). For a write the
    /// outcome is unknown: it may still happen.
    #[error("the store did not answer in time: {op} {key} took longer than {}", secs(*.timeout))]
    Unavailable {
        /// `reading`, `writing`, `deleting` or `listing`.
        op: &'static str,
        key: String,
        timeout: std::time::Duration,
    },

    /// A conditional write found the object created or changed by another writer.
    #[error("{key} was created or changed by another writer")]
    Conflict { key: String },

    /// An object is not the JSON expected at its key.
    #[error("{key} is corrupt: it is not the JSON expected there")]
    Corrupt {
        key: String,
        #[source]
        source: serde_json::Error,
    },

    /// A value could not be encoded as JSON.
    #[error("encoding {key} as JSON failed")]
    Encode {
        key: String,
        #[source]
        source: serde_json::Error,
    },

    /// This handle may not write: the store has a newer format than this SpawnIt knows.
    #[error("{reason}")]
    ReadOnly { reason: String },

    /// The store's format marker or a migration failed.
    #[error("{0}")]
    Format(String),

    /// A state write lost the compare-and-swap: someone else wrote this state meanwhile.
    #[error("state of {owner} was changed by another writer (expected generation {generation})")]
    StateConflict { owner: OwnerKey, generation: u64 },
}

impl StoreError {
    pub(crate) fn backend(op: &'static str, key: impl Into<String>, source: impl Into<BackendError>) -> StoreError {
        StoreError::Backend { op, key: key.into(), source: source.into() }
    }

    /// Whether the store could not be reached or did not answer ([`StoreError::Unavailable`]
    /// or a [`StoreError::Backend`] failure): trying again later may work.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. } | StoreError::Backend { .. })
    }

    /// Whether this is a lost conditional write ([`StoreError::Conflict`] or
    /// [`StoreError::StateConflict`]).
    pub fn is_conflict(&self) -> bool {
        matches!(self, StoreError::Conflict { .. } | StoreError::StateConflict { .. })
    }
}

/// `10s`, `2.5s`.
fn secs(d: std::time::Duration) -> String {
    format!("{}s", d.as_secs_f64())
}
