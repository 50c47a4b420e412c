//! The `Provider` trait: the only way the engine touches the world. A provider observes what a
//! scope owns (by ownership labels), creates, starts and deletes single resources, and decides
//! nothing: every decision is already in the plan.

use async_trait::async_trait;
use spawnit_model::resource::{Address, DesiredResource, ObservedResource};
use spawnit_store::OwnerKey;

/// Whose resources an operation touches: the labels every created resource carries.
#[derive(Clone, Debug)]
pub struct Scope {
    pub owner: OwnerKey,
    /// The lineage of the owner's state, written as the `spawnit.lineage` label.
    pub lineage: String,
}

/// A provider operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The provider cannot be reached at all (e.g. no Docker engine).
    #[error("{what} is unavailable")]
    Unavailable {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// One operation on one resource failed.
    #[error("{action} {address} failed")]
    Operation {
        action: &'static str,
        address: Address,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Observation failed.
    #[error("observing {what} failed")]
    Observe {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl ProviderError {
    /// The whole chain of causes, for one-line reports.
    pub fn chain(&self) -> String {
        let mut out = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(s) = source {
            out.push_str(": ");
            out.push_str(&s.to_string());
            source = s.source();
        }
        out
    }
}

#[async_trait]
pub trait Provider: Send + Sync {
    /// Every resource carrying the scope's labels, plus the images `desired` uses that are
    /// present. Resources are matched to addresses by their `spawnit.resource` label.
    async fn observe(&self, scope: &Scope, desired: &[DesiredResource])
    -> Result<Vec<ObservedResource>, ProviderError>;

    /// Creates (and for a container, starts) one resource labelled with the scope and
    /// `fingerprint`; returns its provider id. For an image: pulls it.
    async fn create(
        &self,
        scope: &Scope,
        resource: &DesiredResource,
        fingerprint: &str,
    ) -> Result<String, ProviderError>;

    /// Brings an existing, unchanged resource back to running (a stopped container).
    async fn start(&self, scope: &Scope, resource: &DesiredResource, id: &str) -> Result<String, ProviderError>;

    /// Deletes one resource; an already missing one is not an error.
    async fn delete(&self, scope: &Scope, address: &Address, id: &str) -> Result<(), ProviderError>;
}
