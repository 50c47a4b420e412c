//! State: what the engine last recorded about a service's or network's resources.
//!
//! Written after every resource operation, with compare-and-swap on the store object's version;
//! `generation` counts writes and `lineage` names the chain of states (a state from another
//! lineage is a different history and is never merged into this one).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::resource::{Address, ResourceAttrs};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub lineage: String,
    pub generation: u64,
    #[serde(default)]
    pub resources: BTreeMap<Address, ResourceState>,
    pub updated_at: DateTime<Utc>,
}

impl State {
    pub fn new(lineage: impl Into<String>) -> State {
        State { lineage: lineage.into(), generation: 0, resources: BTreeMap::new(), updated_at: Utc::now() }
    }
}

/// One resource as last recorded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResourceState {
    /// The provider's id.
    pub id: String,
    /// The attributes it was created from.
    pub attrs: ResourceAttrs,
    pub fingerprint: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<Address>,
    /// What the provider reported about it once created, e.g. `public_ip`, `public_dns`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<String, String>,
    pub updated_at: DateTime<Utc>,
}
