//! Desired specs: what a client asked for, as stored at
//! `clients/<client>/services/<service>/spec.json` and `clients/<client>/networks/<name>/spec.json`.
//!
//! A service spec keeps both the user's choices (template, parameters) and the fully rendered
//! [`Instance`] the engine applies, so a later change of the template never changes a deployed
//! service silently. An instance has no field for privileged mode, host paths or devices: a
//! template cannot ask for them, and `deny_unknown_fields` turns such a request into an error.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Id;

/// Where a service's resources live.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// The local Docker engine.
    #[default]
    Docker,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Docker => "docker",
        }
    }
}

impl std::fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// On which host addresses published ports listen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Exposure {
    /// 127.0.0.1 only (the default).
    #[default]
    Loopback,
    /// Every address of the host (0.0.0.0).
    Public,
}

impl Exposure {
    pub fn host_ip(self) -> &'static str {
        match self {
            Exposure::Loopback => "127.0.0.1",
            Exposure::Public => "0.0.0.0",
        }
    }
}

/// Which template (and which version of it) a service was rendered from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateRef {
    pub id: Id,
    pub version: String,
}

/// A service's desired spec.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServiceSpec {
    pub client: Id,
    pub name: Id,
    pub template: TemplateRef,
    #[serde(default)]
    pub provider: ProviderKind,
    pub network: Id,
    #[serde(default)]
    pub exposure: Exposure,
    /// Every parameter's value after defaults and generation (secrets included: the store is
    /// trusted, outputs are not; see [`Redactor`](crate::Redactor)).
    pub params: BTreeMap<String, serde_json::Value>,
    /// Names of the parameters whose values are secret.
    #[serde(default)]
    pub secret_params: Vec<String>,
    pub instance: Instance,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A client's network layer, shared by several of its services.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetworkSpec {
    pub client: Id,
    pub name: Id,
    pub created_at: DateTime<Utc>,
}

/// A rendered blueprint: every placeholder resolved, every value typed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Instance {
    #[serde(default)]
    pub volumes: BTreeMap<String, VolumeSpec>,
    pub containers: BTreeMap<String, ContainerSpec>,
}

/// A named Docker volume owned by the service.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeSpec {}

/// One container of a service.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerSpec {
    pub image: String,
    /// Replaces the image's entrypoint when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// Arguments (the image's `CMD`); the image's own when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<MountSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthSpec>,
    /// Other containers of the same service that must exist first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// `uid[:gid]` or a user name, as `docker run --user`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// Transport protocol of a published port.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// A container port published on the host.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortSpec {
    /// What the endpoint is, e.g. `http`, `postgres`, `console`.
    pub name: String,
    #[serde(deserialize_with = "lenient::number")]
    pub container: u16,
    #[serde(deserialize_with = "lenient::number")]
    pub host: u16,
    #[serde(default, skip_serializing_if = "is_default")]
    pub protocol: Protocol,
    /// URL scheme for endpoints a browser or client opens (`http`, `postgres`…), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
}

/// A named volume of the service mounted into a container.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MountSpec {
    /// A key of [`Instance::volumes`]; never a host path.
    pub volume: String,
    pub path: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not", deserialize_with = "lenient::boolean")]
    pub read_only: bool,
}

/// Numbers and booleans that may be written as strings: a rendered blueprint's placeholders
/// (`"host": "${port}"`) always render to strings.
mod lenient {
    use serde::de::{Deserialize, Deserializer, Error};

    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Raw<T> {
        Value(T),
        Text(String),
    }

    pub fn number<'de, D: Deserializer<'de>, T>(d: D) -> Result<T, D::Error>
    where
        T: Deserialize<'de> + std::str::FromStr,
    {
        match Raw::<T>::deserialize(d)? {
            Raw::Value(v) => Ok(v),
            Raw::Text(s) => s.trim().parse().map_err(|_| D::Error::custom(format!("{s:?} is not a valid number here"))),
        }
    }

    pub fn boolean<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        match Raw::<bool>::deserialize(d)? {
            Raw::Value(v) => Ok(v),
            Raw::Text(s) => s.parse().map_err(|_| D::Error::custom(format!("{s:?} is not true or false"))),
        }
    }
}

/// A health check run inside the container (Docker `HEALTHCHECK CMD`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthSpec {
    pub command: Vec<String>,
    #[serde(default = "default_interval", deserialize_with = "lenient::number")]
    pub interval_s: u32,
    #[serde(default = "default_timeout", deserialize_with = "lenient::number")]
    pub timeout_s: u32,
    #[serde(default = "default_retries", deserialize_with = "lenient::number")]
    pub retries: u32,
    #[serde(default, deserialize_with = "lenient::number")]
    pub start_period_s: u32,
}

fn default_interval() -> u32 {
    10
}
fn default_timeout() -> u32 {
    5
}
fn default_retries() -> u32 {
    3
}
fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// A published endpoint of a service, for `show` and the API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub container: String,
    pub name: String,
    /// `127.0.0.1:PORT` (or `0.0.0.0:PORT` when public).
    pub address: String,
    pub protocol: Protocol,
    /// `scheme://127.0.0.1:PORT` when the port has a scheme.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl ServiceSpec {
    /// The endpoints this service publishes, in container then port order.
    pub fn endpoints(&self) -> Vec<Endpoint> {
        let ip = self.exposure.host_ip();
        let mut out = Vec::new();
        for (container, spec) in &self.instance.containers {
            for port in &spec.ports {
                let address = format!("{ip}:{}", port.host);
                out.push(Endpoint {
                    container: container.clone(),
                    name: port.name.clone(),
                    url: port.scheme.as_ref().map(|s| format!("{s}://{address}")),
                    address,
                    protocol: port.protocol,
                });
            }
        }
        out
    }
}
