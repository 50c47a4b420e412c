//! Scalable AWS stacks: the resources of the `aws-asg` target, and the load-balancer front and
//! the cache that `aws-asg` and `aws-ecs` share.
//!
//! The front ([`aws_front_resources`]) is a security group for the load balancer (the allowed
//! CIDRs on the published port), a security group for the app (only from the load balancer's
//! group, on the app's port), an application load balancer, a target group (HTTP health check
//! on the template's path, `lb_cookie` stickiness when sticky; `instance` or `ip` targets) and
//! an HTTP listener forwarding to it.
//!
//! The cache ([`aws_cache_resources`]) replaces the template's container marked
//! `"managed": "redis"`: a cache subnet group, a security group open only to the app's group on
//! 6379, and an ElastiCache Redis replication group with transit encryption and the container's
//! password as AUTH token. The app's environment names the cache where it named the container:
//! the container's host name becomes [`CACHE_HOST`], written in by the provider once the cache
//! exists, and `redis://` becomes `rediss://` (TLS).
//!
//! On `aws-asg` ([`aws_asg_resources`]) the app runs from a launch template whose `user_data`
//! runs the template's other containers (the EC2 renderer), in an auto-scaling group with the
//! template's min, max and replica count and a target-tracking policy on average CPU.
//!
//! An app container with `aws_instance_role` (admin-only templates: the `spawnit` template's
//! S3 store) gives the instances an `iam_role.instance` (trusting `ec2.amazonaws.com`, with an
//! inline policy allowing only `s3:GetObject`, `PutObject`, `DeleteObject` on the location's
//! prefix and `s3:ListBucket` of that prefix) wrapped in `instance_profile.main`, which the
//! launch template names; the containers' empty AWS key variables are left out, so the AWS SDK
//! in them takes the instance role's credentials.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};
pub use spawnit_model::resource::TargetType;
use spawnit_model::resource::{
    Address, AlbAttrs, AutoscalingGroupAttrs, CACHE_HOST, CacheAttrs, CacheSubnetGroupAttrs, ContainerAttrs,
    DesiredResource, GroupRule, IamRoleAttrs, IngressRule, InstanceAttrs, InstanceProfileAttrs, LaunchTemplateAttrs,
    ListenerAttrs, PublishedPort, ResourceAttrs, ResourceKind, SecurityGroupAttrs, TargetGroupAttrs, VolumeMount,
};
use spawnit_model::spec::{AwsSettings, ContainerSpec, Managed, Protocol};
use spawnit_model::{ProviderKind, ServiceSpec};

use crate::desired::{AWS_INSTANCE_NETWORK, aws_allowed_cidrs, fingerprint};
use crate::render::{FieldError, ValidationError};

/// The ElastiCache node type of a service's cache.
pub const CACHE_NODE_TYPE: &str = "cache.t3.micro";
/// The port of a Redis cache.
pub const REDIS_PORT: u16 = 6379;
/// The target-tracking CPU target when the template gives none.
pub const DEFAULT_TARGET_CPU: u32 = 70;

/// `security_group.lb`: the load balancer's group.
pub fn lb_group_address() -> Address {
    Address::new(ResourceKind::SecurityGroup, "lb")
}
/// `security_group.app`: the group of the instances or tasks.
pub fn app_group_address() -> Address {
    Address::new(ResourceKind::SecurityGroup, "app")
}
/// `security_group.cache`: the cache's group.
pub fn cache_group_address() -> Address {
    Address::new(ResourceKind::SecurityGroup, "cache")
}
/// `alb.main`.
pub fn alb_address() -> Address {
    Address::new(ResourceKind::Alb, "main")
}
/// `target_group.main`.
pub fn target_group_address() -> Address {
    Address::new(ResourceKind::TargetGroup, "main")
}
/// `listener.main`.
pub fn listener_address() -> Address {
    Address::new(ResourceKind::Listener, "main")
}
/// `cache_subnet_group.main`.
pub fn cache_subnet_group_address() -> Address {
    Address::new(ResourceKind::CacheSubnetGroup, "main")
}
/// `cache.main`.
pub fn cache_address() -> Address {
    Address::new(ResourceKind::Cache, "main")
}
/// `launch_template.main`.
pub fn launch_template_address() -> Address {
    Address::new(ResourceKind::LaunchTemplate, "main")
}
/// `iam_role.instance`: the role of an `aws-asg` service's instances.
pub fn instance_role_address() -> Address {
    Address::new(ResourceKind::IamRole, "instance")
}
/// `instance_profile.main`.
pub fn instance_profile_address() -> Address {
    Address::new(ResourceKind::InstanceProfile, "main")
}
/// The trust principal of an instance role.
pub const EC2_PRINCIPAL: &str = "ec2.amazonaws.com";
/// The AWS key variables left out of the containers' environment when empty and the instances
/// have a role (an empty key is not absent to every SDK).
pub const AWS_KEY_VARIABLES: [&str; 3] = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"];

/// The `(bucket, prefix)` of an `s3://bucket/prefix` location (prefix without its slashes,
/// possibly empty); `None` unless it is one.
pub fn s3_location(location: &str) -> Option<(&str, &str)> {
    let rest = location.strip_prefix("s3://")?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let valid = (3..=63).contains(&bucket.len())
        && bucket.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-');
    valid.then_some((bucket, prefix.trim_matches('/')))
}

/// The S3 locations the app containers ask an instance role for, sorted, without repeats.
pub fn instance_role_locations(spec: &ServiceSpec) -> Vec<String> {
    let mut out: Vec<String> = spec
        .instance
        .containers
        .values()
        .filter(|c| c.managed.is_none())
        .filter_map(|c| c.aws_instance_role.as_ref())
        .filter(|r| !r.s3.is_empty())
        .map(|r| r.s3.clone())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The inline policy of an instance role: objects under each location's prefix, and listing
/// that prefix.
pub fn instance_role_policy(locations: &[String], partition: &str) -> String {
    let mut statements = Vec::new();
    for (bucket, prefix) in locations.iter().filter_map(|l| s3_location(l)) {
        let objects = if prefix.is_empty() { "*".to_owned() } else { format!("{prefix}/*") };
        statements.push(serde_json::json!({
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
            "Resource": [format!("arn:{partition}:s3:::{bucket}/{objects}")],
        }));
        let mut list = serde_json::json!({
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": [format!("arn:{partition}:s3:::{bucket}")],
        });
        if !prefix.is_empty() {
            list["Condition"] = serde_json::json!({ "StringLike": { "s3:prefix": [prefix, objects] } });
        }
        statements.push(list);
    }
    serde_json::json!({ "Version": "2012-10-17", "Statement": statements }).to_string()
}

/// `autoscaling_group.main`.
pub fn autoscaling_group_address() -> Address {
    Address::new(ResourceKind::AutoscalingGroup, "main")
}

/// A name for AWS objects whose names are short and plain (load balancers, target groups:
/// at most 32 letters, digits and hyphens; ElastiCache ids: lowercase, at most 40), unique per
/// client and service: `spawnit-<12 hex digits of a hash of client/service>`. The readable name
/// is their `Name` tag.
pub fn aws_short_name(spec: &ServiceSpec) -> String {
    let digest = Sha256::digest(format!("{}/{}", spec.client, spec.name).as_bytes());
    let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("spawnit-{hex}")
}

/// The container the template marks `"managed": "redis"`, if any.
pub fn managed_redis(spec: &ServiceSpec) -> Option<(&str, &ContainerSpec)> {
    spec.instance.containers.iter().find(|(_, c)| c.managed == Some(Managed::Redis)).map(|(n, c)| (n.as_str(), c))
}

/// The password a managed Redis container asks for: its `--requirepass` argument, else its
/// `REDIS_PASSWORD` or `REDISCLI_AUTH` variable; empty when it has none.
pub fn redis_password(c: &ContainerSpec) -> String {
    let from_command = c.command.windows(2).find(|w| w[0] == "--requirepass").map(|w| w[1].clone());
    from_command
        .or_else(|| c.env.get("REDIS_PASSWORD").cloned())
        .or_else(|| c.env.get("REDISCLI_AUTH").cloned())
        .unwrap_or_default()
}

fn group(
    spec: &ServiceSpec,
    aws: &AwsSettings,
    which: &str,
    ingress: Vec<IngressRule>,
    ingress_groups: Vec<GroupRule>,
) -> SecurityGroupAttrs {
    let (client, service) = (spec.client.as_str(), spec.name.as_str());
    let mut ingress = ingress;
    ingress.sort();
    ingress.dedup();
    SecurityGroupAttrs {
        name: spec.docker_naming.object(client, service, which),
        description: format!("SpawnIt service {client}/{service}: {which}"),
        region: aws.region.clone(),
        vpc_id: aws.vpc_id.clone(),
        ingress,
        ingress_groups,
    }
}

/// The load-balancer front of a service whose template has a load balancer (none otherwise):
/// `security_group.lb`, `security_group.app`, `alb.main`, `target_group.main` (targets of
/// `target` type) and `listener.main`.
pub fn aws_front_resources(spec: &ServiceSpec, aws: &AwsSettings, target: TargetType) -> Vec<DesiredResource> {
    let Some(lb) = &spec.instance.load_balancer else { return Vec::new() };
    let short = aws_short_name(spec);
    let cidrs = aws_allowed_cidrs(spec, aws);
    let lb_rules = cidrs.iter().map(|cidr| IngressRule { protocol: Protocol::Tcp, port: lb.host, cidr: cidr.clone() });
    let mut app_rules = Vec::new();
    if target == TargetType::Instance {
        app_rules.extend(aws.ssh_cidrs.iter().map(|cidr| IngressRule {
            protocol: Protocol::Tcp,
            port: 22,
            cidr: cidr.clone(),
        }));
    }
    let from_lb = vec![GroupRule { protocol: Protocol::Tcp, port: lb.port, group: lb_group_address() }];
    vec![
        DesiredResource {
            address: lb_group_address(),
            attrs: ResourceAttrs::SecurityGroup(group(spec, aws, "lb", lb_rules.collect(), Vec::new())),
            depends_on: Vec::new(),
        },
        DesiredResource {
            address: app_group_address(),
            attrs: ResourceAttrs::SecurityGroup(group(spec, aws, "app", app_rules, from_lb)),
            depends_on: vec![lb_group_address()],
        },
        DesiredResource {
            address: alb_address(),
            attrs: ResourceAttrs::Alb(AlbAttrs {
                name: short.clone(),
                region: aws.region.clone(),
                vpc_id: aws.vpc_id.clone(),
                security_group: lb_group_address(),
            }),
            depends_on: vec![lb_group_address()],
        },
        DesiredResource {
            address: target_group_address(),
            attrs: ResourceAttrs::TargetGroup(TargetGroupAttrs {
                name: short,
                region: aws.region.clone(),
                vpc_id: aws.vpc_id.clone(),
                port: lb.port,
                target_type: target,
                health_path: lb.health_path.clone(),
                sticky: lb.sticky,
            }),
            depends_on: Vec::new(),
        },
        DesiredResource {
            address: listener_address(),
            attrs: ResourceAttrs::Listener(ListenerAttrs {
                region: aws.region.clone(),
                load_balancer: alb_address(),
                target_group: target_group_address(),
                port: lb.host,
            }),
            depends_on: vec![alb_address(), target_group_address()],
        },
    ]
}

/// The cache of a service whose template marks a container `"managed": "redis"` (none
/// otherwise): `cache_subnet_group.main`, `security_group.cache` (open to `security_group.app`
/// on 6379) and `cache.main`.
pub fn aws_cache_resources(spec: &ServiceSpec, aws: &AwsSettings) -> Vec<DesiredResource> {
    let Some((_, redis)) = managed_redis(spec) else { return Vec::new() };
    let short = aws_short_name(spec);
    let from_app = vec![GroupRule { protocol: Protocol::Tcp, port: REDIS_PORT, group: app_group_address() }];
    vec![
        DesiredResource {
            address: cache_subnet_group_address(),
            attrs: ResourceAttrs::CacheSubnetGroup(CacheSubnetGroupAttrs {
                name: short.clone(),
                region: aws.region.clone(),
                vpc_id: aws.vpc_id.clone(),
            }),
            depends_on: Vec::new(),
        },
        DesiredResource {
            address: cache_group_address(),
            attrs: ResourceAttrs::SecurityGroup(group(spec, aws, "cache", Vec::new(), from_app)),
            depends_on: vec![app_group_address()],
        },
        DesiredResource {
            address: cache_address(),
            attrs: ResourceAttrs::Cache(CacheAttrs {
                id: short,
                region: aws.region.clone(),
                node_type: CACHE_NODE_TYPE.to_owned(),
                subnet_group: cache_subnet_group_address(),
                security_group: cache_group_address(),
                auth_token: redis_password(redis),
                port: REDIS_PORT,
            }),
            depends_on: vec![cache_subnet_group_address(), cache_group_address()],
        },
    ]
}

/// `value` with the managed Redis container's host name (`<service>-<container>`) replaced by
/// [`CACHE_HOST`], and `redis://` by `rediss://` where it then names the cache.
pub fn cache_env_value(value: &str, redis_host: &str) -> String {
    if !value.contains(redis_host) {
        return value.to_owned();
    }
    // `rediss://` does not contain `redis://`: a value already on TLS stays as it is.
    value.replace(redis_host, CACHE_HOST).replace("redis://", "rediss://")
}

/// The containers an instance or a task of the service runs, dependencies first, without the
/// managed ones; the load balancer's container publishes its port on the instance.
pub fn app_containers(spec: &ServiceSpec, network: &str) -> Vec<ContainerAttrs> {
    let (client, service) = (spec.client.as_str(), spec.name.as_str());
    let naming = spec.docker_naming;
    let redis_host = managed_redis(spec).map(|(name, _)| format!("{service}-{name}"));
    let managed = |name: &str| spec.instance.containers.get(name).is_some_and(|c| c.managed.is_some());
    let deps: BTreeMap<Address, Vec<Address>> = spec
        .instance
        .containers
        .iter()
        .filter(|(name, _)| !managed(name))
        .map(|(name, c)| {
            let deps = c
                .depends_on
                .iter()
                .filter(|d| !managed(d))
                .map(|d| Address::new(ResourceKind::Container, d.as_str()))
                .collect();
            (Address::new(ResourceKind::Container, name.as_str()), deps)
        })
        .collect();
    let order = crate::graph::topological_order(&deps).unwrap_or_else(|_| deps.keys().cloned().collect());
    let lb = spec.instance.load_balancer.as_ref();
    let role = !instance_role_locations(spec).is_empty();
    let mut out = Vec::new();
    for address in order {
        let Some(c) = spec.instance.containers.get(&address.name) else { continue };
        let mut ports: Vec<PublishedPort> = c
            .ports
            .iter()
            .map(|p| PublishedPort {
                container: p.container,
                host: p.host,
                host_ip: "0.0.0.0".to_owned(),
                protocol: p.protocol,
            })
            .collect();
        if let Some(lb) = lb.filter(|lb| lb.container == address.name) {
            ports.push(PublishedPort {
                container: lb.port,
                host: lb.port,
                host_ip: "0.0.0.0".to_owned(),
                protocol: Protocol::Tcp,
            });
        }
        let env = c
            .env
            .iter()
            .filter(|(k, v)| !(role && v.is_empty() && AWS_KEY_VARIABLES.contains(&k.as_str())))
            .map(|(k, v)| {
                let v = match &redis_host {
                    Some(host) => cache_env_value(v, host),
                    None => v.clone(),
                };
                (k.clone(), v)
            })
            .collect();
        out.push(ContainerAttrs {
            name: naming.object(client, service, &address.name),
            image: c.image.clone(),
            entrypoint: c.entrypoint.clone(),
            command: c.command.clone(),
            env,
            ports,
            mounts: c
                .volumes
                .iter()
                .map(|m| VolumeMount {
                    volume: naming.object(client, service, &m.volume),
                    path: m.path.clone(),
                    read_only: m.read_only,
                })
                .collect(),
            network: network.to_owned(),
            aliases: vec![format!("{service}-{}", address.name)],
            health: c.health.clone(),
            user: c.user.clone(),
            docker_socket: c.docker_socket,
        });
    }
    out
}

/// The group's bounds, desired count and CPU target: the load balancer's container's scale
/// policy and replica count (one instance per replica).
pub fn scale_bounds(spec: &ServiceSpec) -> (u32, u32, u32, u32) {
    let c = spec.instance.load_balancer.as_ref().and_then(|lb| spec.instance.containers.get(&lb.container));
    let Some(c) = c else { return (1, 1, 1, DEFAULT_TARGET_CPU) };
    let count = c.replica_count();
    match &c.scale {
        Some(s) => (s.min, s.max.max(s.min), count.clamp(s.min, s.max.max(s.min)), s.target_cpu_percent),
        None => (count, count, count, DEFAULT_TARGET_CPU),
    }
}

/// The resources of an `aws-asg` service: the front (instance targets), the cache, a launch
/// template and an auto-scaling group.
pub fn aws_asg_resources(spec: &ServiceSpec) -> Vec<DesiredResource> {
    let fallback = AwsSettings::new("");
    let aws = spec.aws.as_ref().unwrap_or(&fallback);
    let mut out = aws_front_resources(spec, aws, TargetType::Instance);
    let cache = aws_cache_resources(spec, aws);
    let has_cache = !cache.is_empty();
    out.extend(cache);
    let (client, service) = (spec.client.as_str(), spec.name.as_str());
    let name = spec.docker_naming.service(client, service);
    let locations = instance_role_locations(spec);
    let mut profile = None;
    if !locations.is_empty() {
        let role_name =
            crate::aws_ecs::bounded(format!("spawnit_{client}_{service}_instance"), crate::aws_ecs::ROLE_NAME_MAX);
        let partition = crate::aws_ecs::aws_partition(&aws.region);
        out.push(DesiredResource {
            address: instance_role_address(),
            attrs: ResourceAttrs::IamRole(IamRoleAttrs {
                name: role_name.clone(),
                region: aws.region.clone(),
                trust_service: EC2_PRINCIPAL.to_owned(),
                managed_policies: Vec::new(),
                inline_policy: Some(instance_role_policy(&locations, partition)),
            }),
            depends_on: Vec::new(),
        });
        out.push(DesiredResource {
            address: instance_profile_address(),
            attrs: ResourceAttrs::InstanceProfile(InstanceProfileAttrs {
                name: role_name.clone(),
                region: aws.region.clone(),
                role: role_name.clone(),
            }),
            depends_on: vec![instance_role_address()],
        });
        profile = Some(role_name);
    }
    let template = LaunchTemplateAttrs {
        name: name.clone(),
        instance: InstanceAttrs {
            name: name.clone(),
            region: aws.region.clone(),
            instance_type: aws.instance_type.clone(),
            ami: aws.ami.clone(),
            ami_owner: aws.ami_owner.clone(),
            ami_name: aws.ami_name.clone(),
            key_name: aws.key_name.clone(),
            subnet_id: None,
            security_group: app_group_address(),
            volumes: spec
                .instance
                .volumes
                .keys()
                .filter(|v| {
                    // Volumes only the managed containers mount stay unused.
                    spec.instance
                        .containers
                        .values()
                        .any(|c| c.managed.is_none() && c.volumes.iter().any(|m| &m.volume == *v))
                })
                .map(|v| spec.docker_naming.object(client, service, v))
                .collect(),
            containers: app_containers(spec, AWS_INSTANCE_NETWORK),
        },
        cache: has_cache.then(cache_address),
        instance_profile: profile.clone(),
    };
    let digest = fingerprint(&ResourceAttrs::LaunchTemplate(template.clone()));
    let mut template_deps = vec![app_group_address()];
    if has_cache {
        template_deps.push(cache_address());
    }
    if profile.is_some() {
        template_deps.push(instance_profile_address());
    }
    out.push(DesiredResource {
        address: launch_template_address(),
        attrs: ResourceAttrs::LaunchTemplate(template),
        depends_on: template_deps,
    });
    let (min, max, desired, target_cpu_percent) = scale_bounds(spec);
    out.push(DesiredResource {
        address: autoscaling_group_address(),
        attrs: ResourceAttrs::AutoscalingGroup(AutoscalingGroupAttrs {
            name,
            region: aws.region.clone(),
            launch_template: launch_template_address(),
            target_group: target_group_address(),
            subnet_id: aws.subnet_id.clone(),
            vpc_id: aws.vpc_id.clone(),
            min,
            max,
            desired,
            target_cpu_percent,
            launch_template_digest: digest,
        }),
        depends_on: vec![launch_template_address(), target_group_address()],
    });
    out
}

/// The checks of a scalable AWS stack's spec, beyond [`AwsSettings`]' own: a load balancer to
/// put in front, and a managed Redis password ElastiCache takes as AUTH token.
pub fn aws_scale_check(spec: &ServiceSpec) -> Result<(), ValidationError> {
    let provider = spec.provider;
    let mut errors = Vec::new();
    if spec.instance.load_balancer.is_none() {
        errors.push(FieldError {
            field: "provider".to_owned(),
            reason: format!(
                "provider {provider} runs a template with a load balancer (e.g. web-app); use provider aws for one instance"
            ),
        });
    }
    if let Some((name, redis)) = managed_redis(spec) {
        let token = redis_password(redis);
        let ok = token.is_empty()
            || ((16..=128).contains(&token.len())
                && token.chars().all(|c| c.is_ascii_graphic() && !matches!(c, '@' | '"' | '/')));
        if !ok {
            errors.push(FieldError {
                field: format!("instance.containers.{name}"),
                reason: "the Redis password becomes ElastiCache's AUTH token: 16 to 128 printable characters \
                         without @, \" or /"
                    .to_owned(),
            });
        }
    }
    for (name, c) in &spec.instance.containers {
        if let Some(role) = &c.aws_instance_role
            && !role.s3.is_empty()
            && s3_location(&role.s3).is_none()
        {
            errors.push(FieldError {
                field: format!("instance.containers.{name}.aws_instance_role.s3"),
                reason: format!("{:?} is not an S3 location (s3://bucket/prefix)", role.s3),
            });
        }
    }
    if provider == ProviderKind::AwsAsg
        && let Some((name, _)) = spec.instance.containers.iter().find(|(n, c)| {
            c.replicated()
                && c.managed.is_none()
                && spec.instance.load_balancer.as_ref().is_some_and(|lb| &lb.container != *n)
        })
    {
        errors.push(FieldError {
            field: format!("instance.containers.{name}"),
            reason: "on provider aws-asg only the load balancer's container is replicated (one per instance)"
                .to_owned(),
        });
    }
    if errors.is_empty() { Ok(()) } else { Err(ValidationError { errors }) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spawnit_model::plan::Action;
    use spawnit_model::resource::{Liveness, ObservedResource, facts};
    use spawnit_model::spec::{Instance, LoadBalancerSpec, ScalePolicy, TemplateRef};
    use spawnit_model::{DockerNaming, Exposure, Id, Redactor, ResourceState, State};

    fn spec(sticky: bool, replicas: u32) -> ServiceSpec {
        let id = |s: &str| Id::parse(s).unwrap();
        let app = ContainerSpec {
            image: "acme/chat:1".into(),
            env: [("REDIS_URL".to_owned(), "redis://:pw-0123456789abcdef@chat-redis:6379/0".to_owned())].into(),
            replicas: Some(replicas),
            scale: Some(ScalePolicy { min: 1, max: 4, target_cpu_percent: 60 }),
            depends_on: vec!["redis".into()],
            ..Default::default()
        };
        let redis = ContainerSpec {
            image: "redis:7".into(),
            command: vec!["redis-server".into(), "--requirepass".into(), "pw-0123456789abcdef".into()],
            managed: Some(Managed::Redis),
            ..Default::default()
        };
        let mut aws = AwsSettings::new("eu-west-3");
        aws.allowed_cidrs = vec!["203.0.113.0/24".into()];
        ServiceSpec {
            client: id("acme"),
            name: id("chat"),
            template: TemplateRef { id: id("web-app"), version: "1.0.0".into() },
            provider: ProviderKind::AwsAsg,
            network: id("default"),
            exposure: Exposure::Loopback,
            aws: Some(aws),
            swarm: None,
            params: Default::default(),
            secret_params: Vec::new(),
            instance: Instance {
                volumes: Default::default(),
                containers: [("app".to_owned(), app), ("redis".to_owned(), redis)].into(),
                load_balancer: Some(LoadBalancerSpec {
                    container: "app".into(),
                    port: 3000,
                    host: 80,
                    sticky,
                    health_path: "/health".into(),
                    image: "caddy:2".into(),
                    scheme: "http".into(),
                }),
            },
            docker_naming: DockerNaming::V2,
            drift_policy: Default::default(),
            expires_at: None,
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
        }
    }

    /// State and observation as after an apply of `desired`.
    fn applied(desired: &[DesiredResource]) -> (State, Vec<ObservedResource>) {
        let mut state = State::new("l");
        let mut observed = Vec::new();
        for r in desired {
            let fp = fingerprint(&r.attrs);
            state.resources.insert(
                r.address.clone(),
                ResourceState {
                    id: format!("eu-west-3/{}", r.address),
                    attrs: r.attrs.clone(),
                    fingerprint: fp.clone(),
                    depends_on: r.depends_on.clone(),
                    outputs: Default::default(),
                    updated_at: chrono::Utc::now(),
                },
            );
            observed.push(ObservedResource {
                address: r.address.clone(),
                id: format!("eu-west-3/{}", r.address),
                liveness: Liveness::Present,
                fingerprint: Some(fp),
                facts: Default::default(),
            });
        }
        (state, observed)
    }

    fn changes(plan: &spawnit_model::Plan) -> Vec<(String, Action)> {
        plan.changes.iter().filter(|c| c.action != Action::NoOp).map(|c| (c.address.to_string(), c.action)).collect()
    }

    #[test]
    fn stickiness_and_replicas_change_in_place_an_image_is_a_new_version_and_a_refresh() {
        let before = aws_asg_resources(&spec(true, 2));
        let (state, observed) = applied(&before);
        let plan = crate::plan_apply("s", &aws_asg_resources(&spec(true, 2)), &state, &observed, &Redactor::default());
        assert!(changes(&plan).is_empty(), "{plan:?}");

        let plan = crate::plan_apply("s", &aws_asg_resources(&spec(false, 3)), &state, &observed, &Redactor::default());
        assert_eq!(
            changes(&plan),
            [("target_group.main".to_owned(), Action::Update), ("autoscaling_group.main".to_owned(), Action::Update)]
        );

        let mut newer = spec(true, 2);
        newer.instance.containers.get_mut("app").unwrap().image = "acme/chat:2".into();
        let plan = crate::plan_apply("s", &aws_asg_resources(&newer), &state, &observed, &Redactor::default());
        assert_eq!(
            changes(&plan),
            [
                ("launch_template.main".to_owned(), Action::Update),
                ("autoscaling_group.main".to_owned(), Action::Update)
            ]
        );
        let text = format!("{:?}", plan.changes.iter().flat_map(|c| c.reasons.clone()).collect::<Vec<_>>());
        assert!(text.contains("a new launch template version"), "{text}");
        assert!(text.contains("an instance refresh replaces the instances"), "{text}");
    }

    #[test]
    fn a_desired_count_the_policy_may_set_is_not_drift_changed_bounds_are() {
        let desired = aws_asg_resources(&spec(true, 2));
        let (state, mut observed) = applied(&desired);
        let group = observed.iter_mut().find(|o| o.address == autoscaling_group_address()).unwrap();
        group.facts.insert(facts::DESIRED.into(), "3".into());
        let plan = crate::plan_apply("s", &desired, &state, &observed, &Redactor::default());
        assert_eq!(changes(&plan), [], "3 of 1–4 is the target-tracking policy's choice");
        let group = observed.iter_mut().find(|o| o.address == autoscaling_group_address()).unwrap();
        group.facts.insert(facts::MIN.into(), "3".into());
        let plan = crate::plan_apply("s", &desired, &state, &observed, &Redactor::default());
        assert_eq!(changes(&plan), [("autoscaling_group.main".to_owned(), Action::Update)]);
        let reasons: Vec<&String> = plan.changes.iter().flat_map(|c| &c.reasons).collect();
        assert!(reasons.iter().any(|r| *r == "minimum size changed outside SpawnIt: 3 instead of 1"), "{reasons:?}");
    }

    #[test]
    fn destroy_goes_consumers_first_without_a_cycle() {
        let desired = aws_asg_resources(&spec(true, 2));
        let (state, observed) = applied(&desired);
        let plan = crate::plan_destroy("s", &state, &observed);
        let order: Vec<String> = plan.changes.iter().map(|c| c.address.to_string()).collect();
        assert_eq!(order.len(), desired.len());
        let at = |a: &str| order.iter().position(|o| o == a).unwrap();
        assert!(at("autoscaling_group.main") < at("launch_template.main"));
        assert!(at("launch_template.main") < at("cache.main"));
        assert!(at("cache.main") < at("cache_subnet_group.main"));
        assert!(at("listener.main") < at("target_group.main") && at("listener.main") < at("alb.main"));
        assert!(at("alb.main") < at("security_group.lb"));
        assert!(
            at("security_group.cache") < at("security_group.app") && at("security_group.app") < at("security_group.lb")
        );
        // Each change waits for those deleted before it.
        let cache = plan.changes.iter().find(|c| c.address == cache_address()).unwrap();
        assert!(cache.depends_on.contains(&launch_template_address()));
    }

    #[test]
    fn ecs_destroy_deletes_the_parameters_naming_the_cache_before_it_without_a_cycle() {
        let mut s = spec(true, 2);
        s.provider = ProviderKind::AwsEcs;
        s.params.insert("redis_password".into(), "pw-0123456789abcdef".into());
        s.secret_params = vec!["redis_password".into()];
        let desired = crate::aws_ecs_resources(&s);
        let url = Address::new(ResourceKind::SsmParameter, "app.REDIS_URL");
        let param = desired.iter().find(|r| r.address == url).expect("REDIS_URL in SSM");
        assert_eq!(param.depends_on, [cache_address()]);
        let (state, observed) = applied(&desired);
        let plan = crate::plan_destroy("s", &state, &observed);
        let order: Vec<String> = plan.changes.iter().map(|c| c.address.to_string()).collect();
        assert_eq!(order.len(), desired.len());
        let at = |a: &str| order.iter().position(|o| o == a).unwrap();
        assert!(at("task_definition.main") < at("ssm_parameter.app.REDIS_URL"), "{order:?}");
        assert!(at("ssm_parameter.app.REDIS_URL") < at("cache.main"), "{order:?}");
        assert!(at("cache.main") < at("cache_subnet_group.main"), "{order:?}");
        // Each change waits only for changes before it: a cycle would leave all but the
        // consumers skipped.
        for (i, c) in plan.changes.iter().enumerate() {
            for d in &c.depends_on {
                assert!(at(&d.to_string()) < i, "{} waits for {d}, deleted after it: {order:?}", c.address);
            }
        }
    }

    #[test]
    fn the_managed_redis_is_a_cache_and_the_app_reaches_it_over_tls() {
        let desired = aws_asg_resources(&spec(true, 2));
        let template = desired.iter().find(|r| r.address == launch_template_address()).unwrap();
        let ResourceAttrs::LaunchTemplate(t) = &template.attrs else { panic!("not a launch template") };
        assert_eq!(t.instance.containers.len(), 1, "no Redis container on the instances");
        let app = &t.instance.containers[0];
        assert_eq!(app.env["REDIS_URL"], format!("rediss://:pw-0123456789abcdef@{CACHE_HOST}:6379/0"));
        assert_eq!(app.ports[0].host, 3000);
        let cache = desired.iter().find(|r| r.address == cache_address()).unwrap();
        let ResourceAttrs::Cache(c) = &cache.attrs else { panic!("not a cache") };
        assert_eq!(c.auth_token, "pw-0123456789abcdef");
        assert!(template.depends_on.contains(&cache_address()));
        let mut short = spec(true, 2);
        short.instance.containers.get_mut("redis").unwrap().command[2] = "short".into();
        let errors = aws_scale_check(&short).unwrap_err().errors;
        assert_eq!(errors[0].field, "instance.containers.redis");
    }

    fn with_role() -> ServiceSpec {
        let mut s = spec(true, 2);
        let app = s.instance.containers.get_mut("app").unwrap();
        app.aws_instance_role = Some(spawnit_model::spec::AwsInstanceRole { s3: "s3://store-1/spawnit".into() });
        app.env.insert("AWS_ACCESS_KEY_ID".into(), String::new());
        s
    }

    #[test]
    fn a_role_or_profile_deleted_outside_is_made_again_and_destroy_goes_template_profile_role() {
        let desired = aws_asg_resources(&with_role());
        let (state, observed) = applied(&desired);
        let plan = crate::plan_apply("s", &desired, &state, &observed, &Redactor::default());
        assert!(changes(&plan).is_empty(), "{plan:?}");

        for gone in [instance_profile_address(), instance_role_address()] {
            let left: Vec<ObservedResource> = observed.iter().filter(|o| o.address != gone).cloned().collect();
            let plan = crate::plan_apply("s", &desired, &state, &left, &Redactor::default());
            let change = plan.changes.iter().find(|c| c.address == gone).unwrap();
            assert_eq!(change.action, Action::Create, "{plan:?}");
            assert_eq!(change.reasons, [format!("removed outside SpawnIt (was eu-west-3/{gone})")]);
        }
        // The profile's role removed outside SpawnIt: put back in place.
        let mut emptied = observed.clone();
        let profile = emptied.iter_mut().find(|o| o.address == instance_profile_address()).unwrap();
        profile.facts.insert(facts::ROLES.into(), String::new());
        let plan = crate::plan_apply("s", &desired, &state, &emptied, &Redactor::default());
        let change = plan.changes.iter().find(|c| c.address == instance_profile_address()).unwrap();
        assert_eq!(change.action, Action::Update, "{plan:?}");
        assert_eq!(change.reasons, ["role changed outside SpawnIt: no role instead of spawnit_acme_chat_instance"]);

        let plan = crate::plan_destroy("s", &state, &observed);
        let order: Vec<String> = plan.changes.iter().map(|c| c.address.to_string()).collect();
        let at = |a: &str| order.iter().position(|o| o == a).unwrap();
        assert!(at("autoscaling_group.main") < at("launch_template.main"));
        assert!(at("launch_template.main") < at("instance_profile.main"));
        assert!(at("instance_profile.main") < at("iam_role.instance"));
        // The non-empty variables stay; without the role the empty key stays as the template says.
        let plain = {
            let mut s = with_role();
            s.instance.containers.get_mut("app").unwrap().aws_instance_role = None;
            s
        };
        let template = |s: &ServiceSpec| {
            let r = aws_asg_resources(s).into_iter().find(|r| r.address == launch_template_address()).unwrap();
            let ResourceAttrs::LaunchTemplate(t) = r.attrs else { panic!("not a launch template") };
            t
        };
        assert!(!template(&with_role()).instance.containers[0].env.contains_key("AWS_ACCESS_KEY_ID"));
        assert!(template(&plain).instance.containers[0].env.contains_key("AWS_ACCESS_KEY_ID"));
        assert_eq!(template(&plain).instance_profile, None);
        let mut bad = with_role();
        bad.instance.containers.get_mut("app").unwrap().aws_instance_role =
            Some(spawnit_model::spec::AwsInstanceRole { s3: "s3://UPPER/x".into() });
        let errors = aws_scale_check(&bad).unwrap_err().errors;
        assert_eq!(errors[0].field, "instance.containers.app.aws_instance_role.s3");
    }

    #[test]
    fn cache_host_replaces_the_container_and_turns_on_tls() {
        assert_eq!(
            cache_env_value("redis://:pw@shop-redis:6379/0", "shop-redis"),
            format!("rediss://:pw@{CACHE_HOST}:6379/0")
        );
        assert_eq!(cache_env_value("shop-redis", "shop-redis"), CACHE_HOST);
        assert_eq!(cache_env_value("6379", "shop-redis"), "6379");
    }
}
