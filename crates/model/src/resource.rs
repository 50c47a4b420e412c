//! Resources: addressed, typed objects that a provider creates, observes and deletes.
//!
//! A [`DesiredResource`] is what the spec asks for, an [`ObservedResource`] is what a provider
//! found carrying SpawnIt's ownership labels, and a [`ResourceState`](crate::ResourceState) is
//! what the engine last recorded. The planner compares the three.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::spec::{HealthSpec, Protocol};

/// Label keys every resource SpawnIt creates carries.
pub mod labels {
    pub const CLIENT: &str = "spawnit.client";
    /// The owning service; absent on a network, which belongs to the client's network layer.
    pub const SERVICE: &str = "spawnit.service";
    /// The owning network layer (on networks only).
    pub const NETWORK: &str = "spawnit.network";
    /// The resource's address, e.g. `container.web`.
    pub const RESOURCE: &str = "spawnit.resource";
    /// The lineage of the state that created it.
    pub const LINEAGE: &str = "spawnit.lineage";
    /// A hash of the attributes it was created from: a different hash means it changed.
    pub const FINGERPRINT: &str = "spawnit.fingerprint";
}

/// What kind of object a resource is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResourceKind {
    Network,
    Volume,
    Image,
    Container,
}

impl ResourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Network => "network",
            ResourceKind::Volume => "volume",
            ResourceKind::Image => "image",
            ResourceKind::Container => "container",
        }
    }
}

/// A resource's address inside its owner: `kind.name`, e.g. `container.web`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Address {
    pub kind: ResourceKind,
    pub name: String,
}

impl Address {
    pub fn new(kind: ResourceKind, name: impl Into<String>) -> Address {
        Address { kind, name: name.into() }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.kind.as_str(), self.name)
    }
}

/// Why a string is not a resource address.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a resource address (expected kind.name, kind one of network, volume, image, container)")]
pub struct AddressError(String);

impl FromStr for Address {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, name) = s.split_once('.').ok_or_else(|| AddressError(s.to_owned()))?;
        let kind = match kind {
            "network" => ResourceKind::Network,
            "volume" => ResourceKind::Volume,
            "image" => ResourceKind::Image,
            "container" => ResourceKind::Container,
            _ => return Err(AddressError(s.to_owned())),
        };
        if name.is_empty() {
            return Err(AddressError(s.to_owned()));
        }
        Ok(Address::new(kind, name))
    }
}

impl TryFrom<String> for Address {
    type Error = AddressError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Address> for String {
    fn from(a: Address) -> String {
        a.to_string()
    }
}

/// The provider-level attributes of a resource: everything needed to create it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ResourceAttrs {
    Network(NetworkAttrs),
    Volume(VolumeAttrs),
    Image(ImageAttrs),
    Container(ContainerAttrs),
}

/// A Docker network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkAttrs {
    /// The engine-wide name, `spawnit-<client>-<network>`.
    pub name: String,
    pub driver: String,
}

/// A Docker volume.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeAttrs {
    /// The engine-wide name, `spawnit-<client>-<service>-<volume>`.
    pub name: String,
}

/// An image that must be present locally (pulled when it is not). Images are shared between
/// services, so they are never deleted and carry no labels.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageAttrs {
    pub reference: String,
}

/// A Docker container, fully specified.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerAttrs {
    /// The engine-wide name, `spawnit-<client>-<service>-<container>`.
    pub name: String,
    pub image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PublishedPort>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<VolumeMount>,
    /// The Docker network it joins.
    pub network: String,
    /// DNS names on that network.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// A port published on the host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedPort {
    pub container: u16,
    pub host: u16,
    pub host_ip: String,
    pub protocol: Protocol,
}

/// A named volume mounted into a container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeMount {
    /// The volume's engine-wide name.
    pub volume: String,
    pub path: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
}

/// A resource the spec asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredResource {
    pub address: Address,
    pub attrs: ResourceAttrs,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<Address>,
}

/// Whether an observed resource is running.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Liveness {
    /// Exists; running has no meaning for it (network, volume, image).
    Present,
    Running,
    /// A container that exists but is not running.
    Stopped,
}

/// A resource a provider found, by its ownership labels or (for images) by reference.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedResource {
    pub address: Address,
    /// The provider's id (container id, volume name, network id, image id).
    pub id: String,
    pub liveness: Liveness,
    /// The `spawnit.fingerprint` label; `None` for unlabelled resources such as images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// A few observed facts used to explain drift, e.g. `image`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub facts: BTreeMap<String, String>,
}
