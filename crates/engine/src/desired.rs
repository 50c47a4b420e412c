//! From a spec to the resources it asks for: the desired side of every plan.
//!
//! Docker object names are derived from validated ids only: `spawnit-<client>-<network>` for a
//! network, `spawnit-<client>-<service>-<name>` for volumes and containers.

use sha2::{Digest, Sha256};
use spawnit_model::resource::{
    Address, ContainerAttrs, DesiredResource, ImageAttrs, NetworkAttrs, PublishedPort, ResourceAttrs, ResourceKind,
    VolumeAttrs, VolumeMount,
};
use spawnit_model::{NetworkSpec, ServiceSpec};

/// The Docker name of a client's network.
pub fn network_name(client: &str, network: &str) -> String {
    format!("spawnit-{client}-{network}")
}

/// The Docker name of one of a service's volumes or containers.
pub fn object_name(client: &str, service: &str, name: &str) -> String {
    format!("spawnit-{client}-{service}-{name}")
}

/// The resources of a network layer: one Docker network.
pub fn network_resources(spec: &NetworkSpec) -> Vec<DesiredResource> {
    vec![DesiredResource {
        address: Address::new(ResourceKind::Network, spec.name.as_str()),
        attrs: ResourceAttrs::Network(NetworkAttrs {
            name: network_name(spec.client.as_str(), spec.name.as_str()),
            driver: "bridge".into(),
        }),
        depends_on: Vec::new(),
    }]
}

/// The resources of a service: an image and a container per container, and its volumes. The
/// network belongs to the network layer and is a precondition, not a resource of the service.
pub fn service_resources(spec: &ServiceSpec) -> Vec<DesiredResource> {
    let (client, service) = (spec.client.as_str(), spec.name.as_str());
    let network = network_name(client, spec.network.as_str());
    let mut out = Vec::new();
    for name in spec.instance.volumes.keys() {
        out.push(DesiredResource {
            address: Address::new(ResourceKind::Volume, name.as_str()),
            attrs: ResourceAttrs::Volume(VolumeAttrs { name: object_name(client, service, name) }),
            depends_on: Vec::new(),
        });
    }
    for (name, c) in &spec.instance.containers {
        let image = Address::new(ResourceKind::Image, name.as_str());
        out.push(DesiredResource {
            address: image.clone(),
            attrs: ResourceAttrs::Image(ImageAttrs { reference: c.image.clone() }),
            depends_on: Vec::new(),
        });
        let mut depends_on = vec![image];
        depends_on.extend(c.volumes.iter().map(|m| Address::new(ResourceKind::Volume, m.volume.as_str())));
        depends_on.extend(c.depends_on.iter().map(|d| Address::new(ResourceKind::Container, d.as_str())));
        depends_on.sort();
        depends_on.dedup();
        out.push(DesiredResource {
            address: Address::new(ResourceKind::Container, name.as_str()),
            attrs: ResourceAttrs::Container(ContainerAttrs {
                name: object_name(client, service, name),
                image: c.image.clone(),
                entrypoint: c.entrypoint.clone(),
                command: c.command.clone(),
                env: c.env.clone(),
                ports: c
                    .ports
                    .iter()
                    .map(|p| PublishedPort {
                        container: p.container,
                        host: p.host,
                        host_ip: spec.exposure.host_ip().to_owned(),
                        protocol: p.protocol,
                    })
                    .collect(),
                mounts: c
                    .volumes
                    .iter()
                    .map(|m| VolumeMount {
                        volume: object_name(client, service, &m.volume),
                        path: m.path.clone(),
                        read_only: m.read_only,
                    })
                    .collect(),
                network: network.clone(),
                aliases: vec![format!("{service}-{name}")],
                health: c.health.clone(),
                user: c.user.clone(),
            }),
            depends_on,
        });
    }
    out
}

/// A short, stable hash of a resource's attributes; stored as a label on what it creates, so a
/// different label means the object was created from other attributes or changed since.
pub fn fingerprint(attrs: &ResourceAttrs) -> String {
    // serde_json maps are sorted (no `preserve_order`), so this serialization is canonical.
    let bytes = serde_json::to_vec(attrs).unwrap_or_default();
    let digest = Sha256::digest(&bytes);
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}
