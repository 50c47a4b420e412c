//! From a spec to the resources it asks for: the desired side of every plan.
//!
//! Docker object names are derived from validated ids only, by the spec's [`DockerNaming`]:
//! `spawnit_<client>_<network>` for a network, `spawnit_<client>_<service>_<name>` for volumes
//! and containers (ids never contain `_`, so no two owners share a name). Specs deployed before
//! store format 2 keep the old `-`-joined names, since Docker cannot rename volumes or networks.
//!
//! On AWS a service is a security group (`security_group.main`, one ingress rule per published
//! port and allowed CIDR) and an instance (`instance.main`) whose `user_data` runs the same
//! containers; [`aws_settings_check`] validates the AWS settings purely, field by field.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};
use spawnit_model::resource::{
    Address, ContainerAttrs, DesiredResource, ImageAttrs, LoadBalancerAttrs, NetworkAttrs, PublishedPort,
    ResourceAttrs, ResourceKind, VolumeAttrs, VolumeMount,
};
use spawnit_model::resource::{IngressRule, InstanceAttrs, SecurityGroupAttrs};
use spawnit_model::spec::{AwsSettings, Protocol};
use spawnit_model::{DockerNaming, Exposure, NetworkSpec, ProviderKind, ServiceSpec};

use crate::render::{FieldError, ValidationError};

/// The Docker name of a network spec's network.
pub fn network_name(spec: &NetworkSpec) -> String {
    spec.docker_naming.network(spec.client.as_str(), spec.name.as_str())
}

/// Says, on each Docker object of a plan made with the format-1 naming that stays (no-op or
/// update), that it keeps its old name: such objects are adopted as they are, never renamed
/// (Docker cannot rename volumes or networks, and containers mount volumes by name).
pub fn naming_notes(plan: &mut spawnit_model::plan::Plan, naming: DockerNaming) {
    use spawnit_model::plan::Action;
    if naming != DockerNaming::V1 {
        return;
    }
    for change in &mut plan.changes {
        if !matches!(change.action, Action::NoOp | Action::Update) {
            continue;
        }
        let name = match change.desired.as_ref().map(|d| &d.attrs) {
            Some(ResourceAttrs::Volume(v)) => &v.name,
            Some(ResourceAttrs::Network(n)) => &n.name,
            Some(ResourceAttrs::Container(c)) => &c.name,
            _ => continue,
        };
        change.reasons.push(format!(
            "adopted under its old name {name} (named before store format 2; Docker objects are not renamed)"
        ));
    }
}

/// The resources of a network layer: one Docker network.
pub fn network_resources(spec: &NetworkSpec) -> Vec<DesiredResource> {
    vec![DesiredResource {
        address: Address::new(ResourceKind::Network, spec.name.as_str()),
        attrs: ResourceAttrs::Network(NetworkAttrs { name: network_name(spec), driver: "bridge".into() }),
        depends_on: Vec::new(),
    }]
}

/// The resources of a service: an image and a container per container, and its volumes. The
/// network belongs to the network layer and is a precondition, not a resource of the service;
/// its Docker name is assumed to follow the service's naming (see [`service_resources_on`]).
pub fn service_resources(spec: &ServiceSpec) -> Vec<DesiredResource> {
    let network = spec.docker_naming.network(spec.client.as_str(), spec.network.as_str());
    service_resources_on(spec, &network)
}

/// Like [`service_resources`], the containers joining the Docker network named `network` (the
/// network spec's name, which keeps its own naming: a new service may join an older network).
pub fn service_resources_on(spec: &ServiceSpec, network: &str) -> Vec<DesiredResource> {
    match spec.provider {
        ProviderKind::Docker => docker_resources(spec, network),
        ProviderKind::Aws => aws_resources(spec),
        ProviderKind::Swarm => crate::swarm::swarm_resources(spec, &crate::swarm::Placement::Pool),
        ProviderKind::AwsAsg => crate::aws_scale::aws_asg_resources(spec),
        ProviderKind::AwsEcs => crate::aws_ecs::aws_ecs_resources(spec),
    }
}

fn docker_resources(spec: &ServiceSpec, network: &str) -> Vec<DesiredResource> {
    let (client, service) = (spec.client.as_str(), spec.name.as_str());
    let naming: DockerNaming = spec.docker_naming;
    let object_name = |name: &str| naming.object(client, service, name);
    // The addresses each container stands for: itself, or its replicas.
    let addresses = |name: &str| -> Vec<Address> {
        match spec.instance.containers.get(name) {
            Some(c) if c.replicated() => (0..c.replica_count()).map(|i| Address::replica(name, i)).collect(),
            _ => vec![Address::new(ResourceKind::Container, name)],
        }
    };
    let mut out = Vec::new();
    for name in spec.instance.volumes.keys() {
        out.push(DesiredResource {
            address: Address::new(ResourceKind::Volume, name.as_str()),
            attrs: ResourceAttrs::Volume(VolumeAttrs { name: object_name(name) }),
            depends_on: Vec::new(),
        });
    }
    let mut names: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, c) in &spec.instance.containers {
        let image = Address::new(ResourceKind::Image, name.as_str());
        out.push(DesiredResource {
            address: image.clone(),
            attrs: ResourceAttrs::Image(ImageAttrs { reference: c.image.clone() }),
            depends_on: Vec::new(),
        });
        let mut depends_on = vec![image];
        depends_on.extend(c.volumes.iter().map(|m| Address::new(ResourceKind::Volume, m.volume.as_str())));
        depends_on.extend(c.depends_on.iter().flat_map(|d| addresses(d)));
        depends_on.sort();
        depends_on.dedup();
        let attrs = ContainerAttrs {
            name: object_name(name),
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
                .map(|m| VolumeMount { volume: object_name(&m.volume), path: m.path.clone(), read_only: m.read_only })
                .collect(),
            network: network.to_owned(),
            aliases: vec![format!("{service}-{name}")],
            health: c.health.clone(),
            user: c.user.clone(),
            docker_socket: c.docker_socket,
        };
        if !c.replicated() {
            names.entry(name.clone()).or_default().push(attrs.name.clone());
            out.push(DesiredResource {
                address: Address::new(ResourceKind::Container, name.as_str()),
                attrs: ResourceAttrs::Container(attrs),
                depends_on,
            });
            continue;
        }
        // Replicas are named after what they run (`spawnit_c_s_web.0.<revision>`), so a new
        // revision can start beside the old one during a rolling update.
        let revision =
            &fingerprint(&ResourceAttrs::Container(ContainerAttrs { name: String::new(), ..attrs.clone() }))[..6];
        for i in 0..c.replica_count() {
            let replica = ContainerAttrs { name: object_name(&format!("{name}.{i}.{revision}")), ..attrs.clone() };
            names.entry(name.clone()).or_default().push(replica.name.clone());
            out.push(DesiredResource {
                address: Address::replica(name, i),
                attrs: ResourceAttrs::Container(replica),
                depends_on: depends_on.clone(),
            });
        }
    }
    if let Some(lb) = &spec.instance.load_balancer {
        let image = Address::new(ResourceKind::Image, BALANCER_IMAGE_NAME);
        out.push(DesiredResource {
            address: image.clone(),
            attrs: ResourceAttrs::Image(ImageAttrs { reference: lb.image.clone() }),
            depends_on: Vec::new(),
        });
        let mut depends_on = vec![image];
        depends_on.extend(addresses(&lb.container));
        out.push(DesiredResource {
            address: balancer_address(),
            attrs: ResourceAttrs::LoadBalancer(LoadBalancerAttrs {
                name: object_name(BALANCER_IMAGE_NAME),
                image: lb.image.clone(),
                network: network.to_owned(),
                port: PublishedPort {
                    container: crate::balancer::BALANCER_LISTEN_PORT,
                    host: lb.host,
                    host_ip: spec.exposure.host_ip().to_owned(),
                    protocol: Protocol::Tcp,
                },
                target: lb.container.clone(),
                upstream_port: lb.port,
                sticky: lb.sticky,
                health_path: lb.health_path.clone(),
                upstreams: names.remove(&lb.container).unwrap_or_default(),
            }),
            depends_on,
        });
    }
    out
}

/// The name of a load balancer's image address and container (`image.load_balancer`,
/// `spawnit_<client>_<service>_load_balancer`): ids never contain `_`, so no container of a
/// template can have it.
const BALANCER_IMAGE_NAME: &str = "load_balancer";

/// The address of a service's load balancer.
pub fn balancer_address() -> Address {
    Address::new(ResourceKind::LoadBalancer, "main")
}

/// The Docker network the containers of an AWS service join on their instance.
pub const AWS_INSTANCE_NETWORK: &str = "spawnit";

/// The address of an AWS service's security group.
pub fn aws_security_group_address() -> Address {
    Address::new(ResourceKind::SecurityGroup, "main")
}

/// The address of an AWS service's instance.
pub fn aws_instance_address() -> Address {
    Address::new(ResourceKind::Instance, "main")
}

/// The CIDRs a service's ports are open to: the settings' list, or everyone when the service
/// is public and names none.
pub fn aws_allowed_cidrs(spec: &ServiceSpec, aws: &AwsSettings) -> Vec<String> {
    if aws.allowed_cidrs.is_empty() && spec.exposure == Exposure::Public {
        vec!["0.0.0.0/0".to_owned()]
    } else {
        aws.allowed_cidrs.clone()
    }
}

/// A security group and an instance. The instance's containers are the Docker containers of
/// the same spec, publishing on every address of the instance (the group is the firewall),
/// dependencies first.
fn aws_resources(spec: &ServiceSpec) -> Vec<DesiredResource> {
    let fallback = AwsSettings::new("");
    let aws = spec.aws.as_ref().unwrap_or(&fallback);
    let (client, service) = (spec.client.as_str(), spec.name.as_str());
    let name = spec.docker_naming.service(client, service);
    let cidrs = aws_allowed_cidrs(spec, aws);
    let mut ingress: Vec<IngressRule> = Vec::new();
    for c in spec.instance.containers.values() {
        for p in &c.ports {
            ingress.extend(cidrs.iter().map(|cidr| IngressRule {
                protocol: p.protocol,
                port: p.host,
                cidr: cidr.clone(),
            }));
        }
    }
    ingress.extend(aws.ssh_cidrs.iter().map(|cidr| IngressRule {
        protocol: Protocol::Tcp,
        port: 22,
        cidr: cidr.clone(),
    }));
    ingress.sort();
    ingress.dedup();
    let group = aws_security_group_address();
    let security_group = DesiredResource {
        address: group.clone(),
        attrs: ResourceAttrs::SecurityGroup(SecurityGroupAttrs {
            name: name.clone(),
            description: format!("SpawnIt service {client}/{service}"),
            region: aws.region.clone(),
            vpc_id: aws.vpc_id.clone(),
            ingress,
            ingress_groups: Vec::new(),
        }),
        depends_on: Vec::new(),
    };

    // The Docker side, as on a local engine, minus images (pulled by `docker run`).
    let docker: Vec<DesiredResource> = docker_resources(spec, AWS_INSTANCE_NETWORK);
    let containers: Vec<&DesiredResource> =
        docker.iter().filter(|r| r.address.kind == ResourceKind::Container).collect();
    let deps = containers.iter().map(|r| {
        let deps = r.depends_on.iter().filter(|d| d.kind == ResourceKind::Container).cloned().collect();
        (r.address.clone(), deps)
    });
    let order = crate::graph::topological_order(&deps.collect())
        .unwrap_or_else(|_| containers.iter().map(|r| r.address.clone()).collect());
    let mut started = Vec::new();
    for address in &order {
        let Some(ResourceAttrs::Container(c)) = containers.iter().find(|r| &r.address == address).map(|r| &r.attrs)
        else {
            continue;
        };
        let mut c = c.clone();
        c.network = AWS_INSTANCE_NETWORK.to_owned();
        for p in &mut c.ports {
            p.host_ip = "0.0.0.0".to_owned();
        }
        started.push(c);
    }
    let instance = DesiredResource {
        address: aws_instance_address(),
        attrs: ResourceAttrs::Instance(InstanceAttrs {
            name,
            region: aws.region.clone(),
            instance_type: aws.instance_type.clone(),
            ami: aws.ami.clone(),
            ami_owner: aws.ami_owner.clone(),
            ami_name: aws.ami_name.clone(),
            key_name: aws.key_name.clone(),
            subnet_id: aws.subnet_id.clone(),
            security_group: group.clone(),
            volumes: spec.instance.volumes.keys().map(|v| spec.docker_naming.object(client, service, v)).collect(),
            containers: started,
        }),
        depends_on: vec![group],
    };
    vec![security_group, instance]
}

/// Checks a spec's provider settings without I/O: AWS settings are present exactly for the
/// `aws` provider and every field is well formed. Names each bad field (`aws.region`, …).
pub fn provider_settings_check(spec: &ServiceSpec) -> Result<(), ValidationError> {
    // The Docker socket (admin-only templates) exists on a Docker host: the local engine, or
    // an EC2 instance's or an auto-scaling group's own engine; not on Swarm tasks or Fargate.
    if matches!(spec.provider, ProviderKind::Swarm | ProviderKind::AwsEcs)
        && let Some((name, _)) = spec.instance.containers.iter().find(|(_, c)| c.docker_socket)
    {
        return Err(ValidationError::one(
            "provider",
            format!(
                "container {name} needs the Docker socket, which provider {} does not give: use docker, aws or aws-asg",
                spec.provider
            ),
        ));
    }
    if spec.provider != ProviderKind::Swarm && spec.swarm.is_some() {
        return Err(ValidationError::one("swarm", "Swarm settings are only for services on provider swarm"));
    }
    match (spec.provider, &spec.aws) {
        (ProviderKind::AwsEcs, None) => {
            Err(ValidationError::one("aws.region", "required for provider aws-ecs (e.g. eu-west-3)"))
        }
        (ProviderKind::AwsEcs, Some(aws)) => {
            // The front's and the cache's checks; a template without a load balancer runs too.
            let mut errors: Vec<FieldError> = crate::aws_scale::aws_scale_check(spec)
                .err()
                .map(|e| e.errors)
                .unwrap_or_default()
                .into_iter()
                .filter(|e| !(e.field == "provider" && spec.instance.load_balancer.is_none()))
                .collect();
            errors.extend(aws_settings_check(aws, spec.exposure).err().map(|e| e.errors).unwrap_or_default());
            errors.extend(crate::aws_ecs::aws_ecs_check(spec, aws).err().map(|e| e.errors).unwrap_or_default());
            if errors.is_empty() { Ok(()) } else { Err(ValidationError { errors }) }
        }
        (ProviderKind::Swarm, Some(_)) => {
            Err(ValidationError::one("aws", "AWS settings are only for services on provider aws, aws-asg or aws-ecs"))
        }
        (ProviderKind::Swarm, None) => {
            if let Some(settings) = &spec.swarm {
                crate::swarm::swarm_settings_check(settings)?;
            }
            crate::swarm::swarm_check(spec)
        }
        (ProviderKind::Docker, None) => Ok(()),
        (ProviderKind::Docker, Some(_)) => {
            Err(ValidationError::one("aws", "AWS settings are only for services on provider aws, aws-asg or aws-ecs"))
        }
        (ProviderKind::Aws, None) => {
            Err(ValidationError::one("aws.region", "required for provider aws (e.g. eu-west-3)"))
        }
        (ProviderKind::Aws, Some(_)) if spec.instance.load_balancer.is_some() => Err(ValidationError::one(
            "provider",
            "a template with a load balancer runs on provider docker only for now (aws: one instance per service)",
        )),
        (ProviderKind::Aws, Some(_)) if spec.instance.containers.values().any(|c| c.replicated()) => {
            Err(ValidationError::one("provider", "replicated containers run on provider docker only for now"))
        }
        (ProviderKind::Aws, Some(aws)) => aws_settings_check(aws, spec.exposure),
        (ProviderKind::AwsAsg, None) => {
            Err(ValidationError::one("aws.region", format!("required for provider {} (e.g. eu-west-3)", spec.provider)))
        }
        (ProviderKind::AwsAsg, Some(aws)) => {
            let mut errors = crate::aws_scale::aws_scale_check(spec).err().map(|e| e.errors).unwrap_or_default();
            errors.extend(aws_settings_check(aws, spec.exposure).err().map(|e| e.errors).unwrap_or_default());
            if errors.is_empty() { Ok(()) } else { Err(ValidationError { errors }) }
        }
    }
}

/// The field checks of [`AwsSettings`].
pub fn aws_settings_check(aws: &AwsSettings, exposure: Exposure) -> Result<(), ValidationError> {
    let mut errors = Vec::new();
    let mut bad = |field: &str, reason: String| errors.push(FieldError { field: field.to_owned(), reason });
    let shown = |v: &str| v.chars().take(80).collect::<String>();
    if !is_region(&aws.region) {
        bad("aws.region", format!("{:?} is not an AWS region name (e.g. eu-west-3, us-east-1)", shown(&aws.region)));
    }
    if !is_instance_type(&aws.instance_type) {
        bad(
            "aws.instance_type",
            format!("{:?} is not an EC2 instance type (family.size, e.g. t3.micro)", shown(&aws.instance_type)),
        );
    }
    if let Some(ami) = &aws.ami
        && !is_aws_id(ami, "ami-")
    {
        bad("aws.ami", format!("{:?} is not an AMI id (ami- and 8 or 17 hexadecimal digits)", shown(ami)));
    }
    let owner_ok = matches!(aws.ami_owner.as_str(), "self" | "amazon" | "aws-marketplace")
        || (aws.ami_owner.len() == 12 && aws.ami_owner.bytes().all(|b| b.is_ascii_digit()));
    if !owner_ok {
        bad(
            "aws.ami_owner",
            format!(
                "{:?} is not an image owner (self, amazon, aws-marketplace or a 12-digit account id)",
                shown(&aws.ami_owner)
            ),
        );
    }
    let name_ok = !aws.ami_name.is_empty()
        && aws.ami_name.len() <= 128
        && aws.ami_name.chars().all(|c| c.is_ascii_alphanumeric() || "()[]./-'@_*? ".contains(c));
    if !name_ok {
        bad(
            "aws.ami_name",
            format!("{:?} is not an AMI name filter (1 to 128 characters, * and ? as wildcards)", shown(&aws.ami_name)),
        );
    }
    if let Some(key) = &aws.key_name
        && (key.is_empty() || key.len() > 255 || !key.chars().all(|c| c.is_ascii_graphic() || c == ' '))
    {
        bad("aws.key_name", format!("{:?} is not a key pair name", shown(key)));
    }
    if let Some(subnet) = &aws.subnet_id
        && !is_aws_id(subnet, "subnet-")
    {
        bad("aws.subnet_id", format!("{:?} is not a subnet id (subnet-…)", shown(subnet)));
    }
    if let Some(vpc) = &aws.vpc_id
        && !is_aws_id(vpc, "vpc-")
    {
        bad("aws.vpc_id", format!("{:?} is not a VPC id (vpc-…)", shown(vpc)));
    }
    if aws.allowed_cidrs.is_empty() && exposure != Exposure::Public {
        bad(
            "aws.allowed_cidrs",
            "required: the CIDRs allowed to reach the service's ports (e.g. 203.0.113.7/32); \
             nothing is open to everyone unless the service is public"
                .to_owned(),
        );
    }
    for (field, list) in [("aws.allowed_cidrs", &aws.allowed_cidrs), ("aws.ssh_cidrs", &aws.ssh_cidrs)] {
        for cidr in list {
            if let Err(reason) = cidr_check(cidr) {
                bad(field, format!("{:?} {reason}", shown(cidr)));
            }
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(ValidationError { errors }) }
}

/// `eu-west-3`, `us-gov-west-1`, `ap-southeast-4`.
fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && s.len() <= 32
        && parts[0].len() == 2
        && parts[..parts.len() - 1].iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts.last().is_some_and(|n| !n.is_empty() && n.len() <= 2 && n.bytes().all(|b| b.is_ascii_digit()))
}

/// `t3.micro`, `c7gn.16xlarge`, `u-6tb1.metal`.
fn is_instance_type(s: &str) -> bool {
    let Some((family, size)) = s.split_once('.') else { return false };
    s.len() <= 32
        && family.starts_with(|c: char| c.is_ascii_lowercase())
        && family.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !size.is_empty()
        && size.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn is_aws_id(s: &str, prefix: &str) -> bool {
    s.strip_prefix(prefix).is_some_and(|hex| {
        (8..=17).contains(&hex.len()) && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// An IPv4 or IPv6 network in CIDR notation, without host bits.
fn cidr_check(cidr: &str) -> Result<(), String> {
    let Some((ip, len)) = cidr.split_once('/') else {
        return Err("is not a CIDR (address/prefix length, e.g. 203.0.113.0/24)".into());
    };
    let len: u32 = len.parse().map_err(|_| "has no valid prefix length".to_owned())?;
    let (bits, max): (u128, u32) = match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(v4)) => (u128::from(u32::from(v4)), 32),
        Ok(std::net::IpAddr::V6(v6)) => (u128::from(v6), 128),
        Err(_) => return Err("is not a CIDR: the address is not an IPv4 or IPv6 address".into()),
    };
    if len > max {
        return Err(format!("has a prefix length above {max}"));
    }
    let host_mask: u128 = if len == max { 0 } else { (1u128 << (max - len)) - 1 };
    if bits & host_mask != 0 {
        return Err("has host bits set: give the network address (e.g. 10.0.0.0/8, or a /32 for one address)".into());
    }
    Ok(())
}

/// A short, stable hash of a resource's attributes; stored as a label on what it creates, so a
/// different label means the object was created from other attributes or changed since.
///
/// A load balancer's upstreams are left out: they change in place and are observed as a fact.
pub fn fingerprint(attrs: &ResourceAttrs) -> String {
    // serde_json maps are sorted (no `preserve_order`), so this serialization is canonical.
    let bytes = match attrs {
        ResourceAttrs::LoadBalancer(lb) => {
            let fixed = ResourceAttrs::LoadBalancer(LoadBalancerAttrs { upstreams: Vec::new(), ..lb.clone() });
            serde_json::to_vec(&fixed).unwrap_or_default()
        }
        _ => serde_json::to_vec(attrs).unwrap_or_default(),
    };
    let digest = Sha256::digest(&bytes);
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> AwsSettings {
        let mut aws = AwsSettings::new("eu-west-3");
        aws.allowed_cidrs = vec!["203.0.113.0/24".into()];
        aws
    }

    #[test]
    fn docker_names_of_two_owners_never_collide() {
        let (a, b) = (("acme-db", "main"), ("acme", "db-main"));
        // The first naming joined ids with `-`, which ids contain: both owners got one name.
        assert_eq!(DockerNaming::V1.object(a.0, a.1, "data"), DockerNaming::V1.object(b.0, b.1, "data"));
        assert_ne!(DockerNaming::V2.object(a.0, a.1, "data"), DockerNaming::V2.object(b.0, b.1, "data"));
        assert_eq!(DockerNaming::V2.object(a.0, a.1, "data"), "spawnit_acme-db_main_data");
        assert_ne!(DockerNaming::V2.network("acme-db", "x"), DockerNaming::V2.network("acme", "db-x"));
        // Old and new names never meet: only the new ones contain `_`.
        assert!(!DockerNaming::V1.object(a.0, a.1, "data").contains('_'));
    }

    #[test]
    fn good_settings_pass() {
        assert_eq!(aws_settings_check(&settings(), Exposure::Loopback), Ok(()));
        let mut aws = settings();
        aws.ami = Some("ami-0123456789abcdef0".into());
        aws.subnet_id = Some("subnet-0abc1234".into());
        aws.ssh_cidrs = vec!["2001:db8::/32".into()];
        aws.region = "us-gov-west-1".into();
        aws.instance_type = "u-6tb1.metal".into();
        assert_eq!(aws_settings_check(&aws, Exposure::Loopback), Ok(()));
        // Public without CIDRs means everyone, asked for explicitly.
        aws.allowed_cidrs.clear();
        assert_eq!(aws_settings_check(&aws, Exposure::Public), Ok(()));
    }

    #[test]
    fn every_bad_field_is_named() {
        let mut aws = settings();
        aws.region = "mars".into();
        aws.instance_type = "huge".into();
        aws.ami = Some("image-1".into());
        aws.ami_owner = "someone".into();
        aws.vpc_id = Some("vpc-XYZ".into());
        aws.allowed_cidrs = vec!["10.0.0.1/8".into(), "1.2.3.4".into()];
        aws.ssh_cidrs = vec!["0.0.0.0/33".into()];
        let errors = aws_settings_check(&aws, Exposure::Loopback).unwrap_err().errors;
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "aws.region",
                "aws.instance_type",
                "aws.ami",
                "aws.ami_owner",
                "aws.vpc_id",
                "aws.allowed_cidrs",
                "aws.allowed_cidrs",
                "aws.ssh_cidrs"
            ]
        );
        assert!(errors[0].reason.contains("\"mars\""), "{errors:?}");
        assert!(errors[5].reason.contains("host bits"), "{errors:?}");
        // No CIDR and not public: refused, never opened to everyone by default.
        let mut aws = settings();
        aws.allowed_cidrs.clear();
        let errors = aws_settings_check(&aws, Exposure::Loopback).unwrap_err().errors;
        assert_eq!(errors[0].field, "aws.allowed_cidrs");
    }
}
