//! Host ports of Docker services. A host port that another service publishes (of any client;
//! another client's service is named only as "another client") or that another program holds on
//! this host is refused when a service is created, updated or planned, naming the parameter that
//! sets it, instead of Docker's "port is already allocated" halfway through an apply. A port
//! parameter left empty gets a free port chosen here: the template's default when it is free.
//!
//! Nothing is reserved between choosing a port and storing the spec: two creates at the same
//! instant can choose the same port, and the second one's plan then refuses it.

use std::collections::{BTreeMap, BTreeSet};
use std::io::ErrorKind;
use std::net::{TcpListener, UdpSocket};

use serde_json::Value;
use spawnit_model::plan::{Action, Plan};
use spawnit_model::resource::{ResourceAttrs, ResourceKind};
use spawnit_model::spec::Protocol;
use spawnit_model::{Id, ProviderKind, ServiceSpec, State, Template};
use spawnit_store::StoreError;

use crate::engine::{Engine, EngineError};
use spawnit_plan::{FieldError, ValidationError};

/// A published host port: its number and protocol.
type HostPort = (u16, Protocol);

/// How many ports the operating system is asked for before giving up on a free one.
const CHOOSE_ATTEMPTS: usize = 50;

/// Who else publishes a host port.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Holder {
    /// A service of the same client, named.
    Service(Id),
    /// A service of another client, never named.
    OtherClient,
}

impl Holder {
    fn reason(&self, port: u16) -> String {
        match self {
            Holder::Service(name) => format!("{port} is already published by service {name}"),
            Holder::OtherClient => format!("{port} is already published by a service of another client"),
        }
    }
}

/// The host ports a spec publishes, each with the field that sets it: its parameter, or
/// `containers.<container>.ports.<name>` for a port the template fixes.
fn published(spec: &ServiceSpec, template: Option<&Template>) -> Vec<(String, HostPort)> {
    let params = template.map(Template::host_port_params).unwrap_or_default();
    let mut out = Vec::new();
    for (container, c) in &spec.instance.containers {
        for port in &c.ports {
            let field = params
                .iter()
                .find(|p| &p.container == container && p.port == port.name)
                .map(|p| p.parameter.clone())
                .unwrap_or_else(|| format!("containers.{container}.ports.{}", port.name));
            out.push((field, (port.host, port.protocol)));
        }
    }
    if let Some(lb) = &spec.instance.load_balancer {
        let field = params
            .iter()
            .find(|p| p.container == spawnit_model::spec::LOAD_BALANCER_ENDPOINT)
            .map(|p| p.parameter.clone())
            .unwrap_or_else(|| "load_balancer.host".to_owned());
        out.push((field, (lb.host, Protocol::Tcp)));
    }
    out
}

/// The host ports the containers recorded in a state publish.
fn deployed(state: &State) -> BTreeSet<HostPort> {
    state
        .resources
        .values()
        .filter_map(|r| match &r.attrs {
            ResourceAttrs::Container(c) => Some(c.ports.iter().map(|p| (p.host, p.protocol)).collect::<Vec<_>>()),
            ResourceAttrs::LoadBalancer(lb) => Some(vec![(lb.port.host, lb.port.protocol)]),
            _ => None,
        })
        .flatten()
        .collect()
}

/// Whether another program holds a port on this host: binding it fails on 127.0.0.1 or on
/// 0.0.0.0 because the address is in use.
fn held_on_host((port, protocol): HostPort) -> bool {
    ["127.0.0.1", "0.0.0.0"].iter().any(|ip| {
        let bound = match protocol {
            Protocol::Tcp => TcpListener::bind((*ip, port)).map(drop),
            Protocol::Udp => UdpSocket::bind((*ip, port)).map(drop),
        };
        matches!(bound, Err(e) if e.kind() == ErrorKind::AddrInUse)
    })
}

/// A port the operating system has free now.
fn port_from_os(protocol: Protocol) -> Option<u16> {
    let port = match protocol {
        Protocol::Tcp => TcpListener::bind(("0.0.0.0", 0)).and_then(|l| l.local_addr()),
        Protocol::Udp => UdpSocket::bind(("0.0.0.0", 0)).and_then(|s| s.local_addr()),
    };
    port.ok().map(|a| a.port())
}

/// The reason a port held by nobody in the store cannot be used.
fn host_reason(port: u16) -> String {
    format!("{port} is in use by another program on this host")
}

impl Engine {
    /// Every host port published by the Docker services in the store other than `client/name`
    /// (their specs and what their states record), with who publishes it. Unreadable specs and
    /// states are skipped (their own pages show the error).
    async fn ports_taken(&self, client: &Id, name: &Id) -> Result<BTreeMap<HostPort, Holder>, EngineError> {
        let mut taken = BTreeMap::new();
        for other_client in self.store().client_list().await? {
            let holder_of = |service: &Id| {
                if &other_client == client { Holder::Service(service.clone()) } else { Holder::OtherClient }
            };
            for service in self.store().service_list(&other_client).await? {
                if &other_client == client && &service == name {
                    continue;
                }
                let spec = match self.store().service_spec(&other_client, &service).await {
                    Ok(Some(spec)) => spec.value,
                    Ok(None) | Err(StoreError::Corrupt { .. }) => continue,
                    Err(e) => return Err(e.into()),
                };
                if spec.provider != ProviderKind::Docker {
                    continue;
                }
                for (_, port) in published(&spec, None) {
                    taken.entry(port).or_insert_with(|| holder_of(&service));
                }
                match self.service_state(&other_client, &service).await {
                    Ok(Some(state)) => {
                        for port in deployed(&state) {
                            taken.entry(port).or_insert_with(|| holder_of(&service));
                        }
                    }
                    Ok(None) | Err(EngineError::Store(StoreError::Corrupt { .. })) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(taken)
    }

    /// Refuses a Docker service's spec (about to be stored) whose host ports another service
    /// publishes, another program holds, or the spec itself publishes twice. Ports the
    /// service's own containers already publish are its own.
    pub(crate) async fn ports_check(&self, spec: &ServiceSpec, template: &Template) -> Result<(), EngineError> {
        if spec.provider != ProviderKind::Docker {
            return Ok(());
        }
        let taken = self.ports_taken(&spec.client, &spec.name).await?;
        let own = self.service_state(&spec.client, &spec.name).await?.map(|s| deployed(&s)).unwrap_or_default();
        let mut errors = Vec::new();
        let mut seen: BTreeMap<HostPort, String> = BTreeMap::new();
        for (field, port) in published(spec, Some(template)) {
            let reason = if let Some(first) = seen.get(&port) {
                Some(format!("{} is also the port of {first}", port.0))
            } else if let Some(holder) = taken.get(&port) {
                Some(holder.reason(port.0))
            } else if !own.contains(&port) && held_on_host(port) {
                Some(host_reason(port.0))
            } else {
                None
            };
            if let Some(reason) = reason {
                errors.push(FieldError { field: field.clone(), reason });
            }
            seen.entry(port).or_insert(field);
        }
        if errors.is_empty() { Ok(()) } else { Err(ValidationError { errors }.into()) }
    }

    /// The first reason a plan cannot be applied because of a host port: a container it
    /// creates or replaces would publish a port another program (or another service's
    /// container) holds on this host. `field: reason`, or `None`.
    pub(crate) async fn ports_check_plan(&self, spec: &ServiceSpec, state: &State, plan: &Plan) -> Option<String> {
        let binds = plan.actions().any(|c| {
            matches!(c.address.kind, ResourceKind::Container | ResourceKind::LoadBalancer)
                && matches!(c.action, Action::Create | Action::Replace)
        });
        if spec.provider != ProviderKind::Docker || !binds {
            return None;
        }
        let template = self.store().template(&spec.template.id).await.ok().flatten();
        let own = deployed(state);
        published(spec, template.as_ref())
            .into_iter()
            .find(|(_, port)| !own.contains(port) && held_on_host(*port))
            .map(|(field, port)| format!("{field}: {}", host_reason(port.0)))
    }

    /// Fills in a free host port for every port parameter of `template` that `input` leaves
    /// empty: the parameter's default when it is free, else one the operating system offers
    /// that no service in the store publishes.
    pub(crate) async fn ports_choose(
        &self,
        client: &Id,
        name: &Id,
        template: &Template,
        input: &mut BTreeMap<String, Value>,
    ) -> Result<(), EngineError> {
        let mut protocols: BTreeMap<String, BTreeSet<Protocol>> = BTreeMap::new();
        for p in template.host_port_params() {
            let empty = input.get(&p.parameter).is_none_or(|v| v.is_null() || v == &Value::String(String::new()));
            if empty {
                protocols.entry(p.parameter).or_default().insert(p.protocol);
            }
        }
        if protocols.is_empty() {
            return Ok(());
        }
        let mut taken: BTreeSet<HostPort> = self.ports_taken(client, name).await?.into_keys().collect();
        let mut errors = Vec::new();
        for (parameter, protocols) in protocols {
            let Some(param) = template.parameters.get(&parameter) else { continue };
            let fits = |port: u16| {
                param.minimum.is_none_or(|min| i64::from(port) >= min)
                    && param.maximum.is_none_or(|max| i64::from(port) <= max)
                    && protocols.iter().all(|p| !taken.contains(&(port, *p)) && !held_on_host((port, *p)))
            };
            let default = param.default.as_ref().and_then(Value::as_u64).and_then(|d| u16::try_from(d).ok());
            let protocol = protocols.first().copied().unwrap_or_default();
            let port = default
                .into_iter()
                .chain((0..CHOOSE_ATTEMPTS).filter_map(|_| port_from_os(protocol)))
                .find(|port| fits(*port));
            match port {
                Some(port) => {
                    taken.extend(protocols.iter().map(|p| (port, *p)));
                    input.insert(parameter, Value::from(port));
                }
                None => errors
                    .push(FieldError { field: parameter, reason: "no free port found on this host: give one".into() }),
            }
        }
        if errors.is_empty() { Ok(()) } else { Err(ValidationError { errors }.into()) }
    }
}
