//! Catalog templates: typed parameters plus a blueprint of resources with `${param}` placeholders.
//!
//! The blueprint is kept as JSON: rendering substitutes the placeholders and only then reads it
//! as an [`Instance`](crate::Instance), so a template is checked by rendering it (see the
//! engine's `render` module), and numbers such as host ports can come from parameters.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::Id;

/// One catalog entry's full definition (`catalog/templates/<id>.template.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Template {
    pub id: Id,
    pub name: String,
    pub category: String,
    pub description: String,
    pub version: String,
    /// Only admins (and the local CLI) see and use it: the server hides it from members'
    /// catalog listings and pages and refuses a member's service from it as if it did not
    /// exist. Only such a template may give a container the Docker socket (`docker_socket`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub admin_only: bool,
    /// Parameters in the order a form shows them.
    #[serde(default)]
    pub parameters: IndexMap<String, Parameter>,
    /// Resources with `${param}` placeholders; renders to an [`Instance`](crate::Instance).
    pub blueprint: serde_json::Value,
}

/// The type of a parameter's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    String,
    Integer,
    Boolean,
    /// One of [`Parameter::choices`], given as a string.
    Enum,
}

/// How a value is made when the user gives none and there is no default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Generator {
    /// 24 random characters from `[A-Za-z0-9]`.
    Password,
    /// 32 random lowercase hexadecimal digits.
    Hex,
}

/// A typed template parameter (a subset of JSON Schema).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Parameter {
    #[serde(rename = "type")]
    pub kind: Option<ParamType>,
    /// A short label for forms; the parameter's name is used when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<serde_json::Value>,
    #[serde(default, rename = "enum", skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum: Option<i64>,
    /// A regular expression the whole string value must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// Never shown again once set: masked in every output.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub secret: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate: Option<Generator>,
}

impl Parameter {
    /// The declared type, `string` when the template leaves it out.
    pub fn param_type(&self) -> ParamType {
        self.kind.unwrap_or(ParamType::String)
    }
}

/// A published port whose host port is a parameter (`"host": "${param}"` in the blueprint).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPortParam {
    pub container: String,
    /// The port's name, e.g. `http`.
    pub port: String,
    pub protocol: crate::spec::Protocol,
    pub parameter: String,
}

impl Template {
    /// The published ports whose host port is exactly one of the template's parameters, in
    /// container then port order.
    pub fn host_port_params(&self) -> Vec<HostPortParam> {
        let Some(containers) = self.blueprint.get("containers").and_then(|c| c.as_object()) else { return Vec::new() };
        let mut out = Vec::new();
        for (container, spec) in containers {
            for port in spec.get("ports").and_then(|p| p.as_array()).into_iter().flatten() {
                let host = port.get("host").and_then(|h| h.as_str()).unwrap_or_default();
                let Some(parameter) = host.strip_prefix("${").and_then(|h| h.strip_suffix('}')) else { continue };
                if self.parameters.contains_key(parameter) {
                    out.push(HostPortParam {
                        container: container.clone(),
                        port: port.get("name").and_then(|n| n.as_str()).unwrap_or_default().to_owned(),
                        protocol: match port.get("protocol").and_then(|p| p.as_str()) {
                            Some("udp") => crate::spec::Protocol::Udp,
                            _ => crate::spec::Protocol::Tcp,
                        },
                        parameter: parameter.to_owned(),
                    });
                }
            }
        }
        // A load balancer's published port counts as its own endpoint.
        let lb_host = self.blueprint.get("load_balancer").and_then(|lb| lb.get("host")).and_then(|h| h.as_str());
        if let Some(parameter) = lb_host.and_then(|h| h.strip_prefix("${")?.strip_suffix('}'))
            && self.parameters.contains_key(parameter)
        {
            out.push(HostPortParam {
                container: crate::spec::LOAD_BALANCER_ENDPOINT.to_owned(),
                port: "http".to_owned(),
                protocol: crate::spec::Protocol::Tcp,
                parameter: parameter.to_owned(),
            });
        }
        out
    }

    /// The parameter that sets a container's replica count (`"replicas": "${param}"`), if any.
    pub fn replicas_param(&self, container: &str) -> Option<&str> {
        let raw = self.blueprint.get("containers")?.get(container)?.get("replicas")?.as_str()?;
        let name = raw.strip_prefix("${")?.strip_suffix('}')?;
        self.parameters.get_key_value(name).map(|(k, _)| k.as_str())
    }

    /// Whether a parameter sets a published host port.
    pub fn is_host_port(&self, parameter: &str) -> bool {
        self.host_port_params().iter().any(|h| h.parameter == parameter)
    }
}

/// `catalog/catalog.json`: the list of templates the catalog offers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    pub templates: Vec<CatalogEntry>,
}

/// One line of the catalog: enough to list a template without reading it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CatalogEntry {
    pub id: Id,
    pub name: String,
    pub category: String,
    pub description: String,
    pub version: String,
    /// The template is admin-only; members never see this entry.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub admin_only: bool,
}

impl From<&Template> for CatalogEntry {
    fn from(t: &Template) -> Self {
        CatalogEntry {
            id: t.id.clone(),
            name: t.name.clone(),
            category: t.category.clone(),
            description: t.description.clone(),
            version: t.version.clone(),
            admin_only: t.admin_only,
        }
    }
}
