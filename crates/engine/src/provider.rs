//! The `Provider` trait: the only way the engine touches the world. A provider observes what a
//! scope owns (by ownership labels), creates, updates in place and deletes single resources,
//! and decides nothing: every decision is already in the plan.

use std::collections::BTreeMap;

use async_trait::async_trait;
use spawnit_model::OwnerKey;
use spawnit_model::resource::{Address, DesiredResource, ObservedResource};
use spawnit_plan::ValidationError;
use tokio_util::sync::CancellationToken;

/// What a create or an update produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// The provider's id of the resource.
    pub id: String,
    /// Facts worth recording with it (e.g. `public_ip`), shown by `show`.
    pub outputs: BTreeMap<String, String>,
    /// What was applied, when it is not the change's own desired resource (the executor's
    /// load-balancer syncs); never set by a provider.
    pub(crate) attrs: Option<DesiredResource>,
}

impl Applied {
    pub fn new(id: String, outputs: BTreeMap<String, String>) -> Applied {
        Applied { id, outputs, attrs: None }
    }

    pub(crate) fn with_attrs(self, desired: DesiredResource) -> Applied {
        Applied { attrs: Some(desired), ..self }
    }
}

impl From<String> for Applied {
    fn from(id: String) -> Applied {
        Applied { id, outputs: BTreeMap::new(), attrs: None }
    }
}

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
    /// An object with the name a resource needs exists but belongs to someone else (its
    /// ownership labels name another client, service or network, or none): it is never
    /// adopted, changed or deleted.
    #[error(
        "{action} {address} refused: the {kind} {name:?} belongs to {owner}, not to {scope}; \
         SpawnIt never adopts, changes or deletes another owner's object"
    )]
    NotOwned {
        action: &'static str,
        address: Address,
        /// `volume`, `network`, `container`.
        kind: &'static str,
        name: String,
        /// Who its labels name (e.g. `service acme-db/main`), or `nobody (it carries no SpawnIt labels)`.
        owner: String,
        scope: OwnerKey,
    },
    /// The provider refuses settings of the spec (a region or instance type that does not
    /// exist, …), naming each field: nothing was created.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
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
    /// Checks desired resources against what the provider really offers (does the region,
    /// the instance type, the image exist?) before anything is created. Changes nothing.
    /// `ProviderError::Invalid` names the bad fields. The default accepts everything.
    async fn validate(&self, _desired: &[DesiredResource]) -> Result<(), ProviderError> {
        Ok(())
    }

    /// Every resource carrying the scope's labels, plus the images `desired` uses that are
    /// present. Resources are matched to addresses by their `spawnit.resource` label.
    async fn observe(&self, scope: &Scope, desired: &[DesiredResource])
    -> Result<Vec<ObservedResource>, ProviderError>;

    /// Creates (and for a container or an instance, starts) one resource labelled with the
    /// scope and `fingerprint`; returns its provider id. For an image: pulls it. A provider that
    /// waits (for an instance to run) stops waiting when `cancel` fires and returns what exists.
    async fn create(
        &self,
        scope: &Scope,
        resource: &DesiredResource,
        fingerprint: &str,
        cancel: &CancellationToken,
    ) -> Result<Applied, ProviderError>;

    /// Changes an existing resource in place to match `resource` and relabels it with
    /// `fingerprint`: starts a stopped container or instance, reconciles a security group's
    /// rules. The planner asks for it only where the kind allows it.
    async fn update(
        &self,
        scope: &Scope,
        resource: &DesiredResource,
        id: &str,
        fingerprint: &str,
        cancel: &CancellationToken,
    ) -> Result<Applied, ProviderError>;

    /// Deletes one resource; an already missing one is not an error.
    async fn delete(
        &self,
        scope: &Scope,
        address: &Address,
        id: &str,
        cancel: &CancellationToken,
    ) -> Result<(), ProviderError>;
}
