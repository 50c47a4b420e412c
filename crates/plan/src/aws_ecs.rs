//! The `aws-ecs` target: a service as ECS Fargate resources.
//!
//! `ecs_cluster.main`, `iam_role.execution` (trusts `ecs-tasks.amazonaws.com`, carries
//! `AmazonECSTaskExecutionRolePolicy` and an inline policy reading the service's own SSM
//! parameters), `log_group.main` (`/spawnit/<client>/<service>`, 30 days), one
//! `ssm_parameter.<container>.<VAR>` (`SecureString`) per environment value holding a secret
//! parameter, `task_definition.main` (every container of the blueprint in one Fargate task,
//! their secrets as `secrets: valueFrom`, never in the plain environment) and
//! `ecs_service.main` (the desired count, `awsvpc`, the CPU target-tracking autoscaling of the
//! scaled container) with the security group of its tasks.
//!
//! Containers of one task share its network namespace: a container's Docker DNS name
//! (`<service>-<container>`) in another's environment or command becomes `localhost`.
//! [`aws_ecs_check`] refuses what Fargate cannot run as asked (a secret on a command line, a
//! scaled container beside others in the task, an invalid CPU/memory pair), naming the field.

use std::collections::BTreeMap;

use serde_json::Value;
use sha2::{Digest, Sha256};
use spawnit_model::ServiceSpec;
use spawnit_model::resource::{
    Address, DesiredResource, EcsClusterAttrs, EcsLoadBalancer, EcsScaling, EcsServiceAttrs, IamRoleAttrs, IngressRule,
    LogGroupAttrs, ResourceAttrs, ResourceKind, SecurityGroupAttrs, SsmParameterAttrs, TaskContainer,
    TaskDefinitionAttrs, TaskPort, VolumeMount,
};
use spawnit_model::spec::{AwsSettings, Protocol};

use crate::render::{FieldError, ValidationError};

/// The trust principal of an ECS task execution role.
pub const ECS_TASKS_PRINCIPAL: &str = "ecs-tasks.amazonaws.com";
/// Days a service's log group keeps its events.
pub const ECS_LOG_RETENTION_DAYS: u32 = 30;
/// The most characters of an IAM role name.
pub(crate) const ROLE_NAME_MAX: usize = 64;

/// The address of an `aws-ecs` service's cluster.
pub fn ecs_cluster_address() -> Address {
    Address::new(ResourceKind::EcsCluster, "main")
}

/// The address of an `aws-ecs` service's task execution role.
pub fn ecs_role_address() -> Address {
    Address::new(ResourceKind::IamRole, "execution")
}

/// The address of an `aws-ecs` service's log group.
pub fn ecs_log_group_address() -> Address {
    Address::new(ResourceKind::LogGroup, "main")
}

/// The address of an `aws-ecs` service's task definition.
pub fn ecs_task_definition_address() -> Address {
    Address::new(ResourceKind::TaskDefinition, "main")
}

/// The address of an `aws-ecs` service's ECS service.
pub fn ecs_service_address() -> Address {
    Address::new(ResourceKind::EcsService, "main")
}

/// The AWS partition of a region (`aws`, `aws-cn`, `aws-us-gov`), for ARNs.
pub fn aws_partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// The ARN of the managed policy every task execution role carries.
pub fn ecs_execution_policy_arn(region: &str) -> String {
    format!("arn:{}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy", aws_partition(region))
}

/// Fargate's task sizes: CPU units and the memory (MiB) each accepts.
pub fn fargate_memory_ok(cpu: u32, memory_mb: u32) -> Result<(), String> {
    let (low, high, step) = match cpu {
        256 => return if [512, 1024, 2048].contains(&memory_mb) { Ok(()) } else { Err("512, 1024 or 2048".into()) },
        512 => (1024, 4096, 1024),
        1024 => (2048, 8192, 1024),
        2048 => (4096, 16384, 1024),
        4096 => (8192, 30720, 1024),
        8192 => (16384, 61440, 4096),
        16384 => (32768, 122880, 8192),
        _ => return Err(String::new()),
    };
    if (low..=high).contains(&memory_mb) && memory_mb % step == 0 {
        Ok(())
    } else {
        Err(format!("{low} to {high} in steps of {step}"))
    }
}

/// The secret parameters with a non-empty value, by name.
fn secret_values(spec: &ServiceSpec) -> BTreeMap<&str, String> {
    spec.secret_params
        .iter()
        .filter_map(|name| {
            let value = match spec.params.get(name)? {
                Value::String(s) => s.clone(),
                Value::Null => return None,
                other => other.to_string(),
            };
            (!value.is_empty()).then_some((name.as_str(), value))
        })
        .collect()
}

/// The blueprint containers that run in the task (all but those another resource stands for,
/// such as a managed cache).
fn task_containers(spec: &ServiceSpec) -> Vec<(&String, &spawnit_model::spec::ContainerSpec)> {
    spec.instance.containers.iter().filter(|(name, _)| !managed(spec, name)).collect()
}

/// Whether a container is stood for by a managed AWS resource (the cache for a container
/// marked `"managed": "redis"`).
fn managed(spec: &ServiceSpec, container: &str) -> bool {
    spec.instance.containers.get(container).is_some_and(|c| c.managed.is_some())
}

/// Checks what Fargate can run, purely: the task size, no secret on a command line (a task
/// definition's command is plain text to anyone who can describe it), and a scaled container
/// alone in its task (the whole task is what ECS scales). Names each offending field.
pub fn aws_ecs_check(spec: &ServiceSpec, aws: &AwsSettings) -> Result<(), ValidationError> {
    let mut errors = Vec::new();
    let mut bad = |field: String, reason: String| errors.push(FieldError { field, reason });
    if let Err(sizes) = fargate_memory_ok(aws.task_cpu, aws.task_memory_mb) {
        if sizes.is_empty() {
            bad(
                "aws.task_cpu".into(),
                format!("{} is not a Fargate CPU size (256, 512, 1024, 2048, 4096, 8192 or 16384)", aws.task_cpu),
            );
        } else {
            bad(
                "aws.task_memory_mb".into(),
                format!(
                    "{} MiB does not go with {} CPU units on Fargate ({sizes} MiB)",
                    aws.task_memory_mb, aws.task_cpu
                ),
            );
        }
    }
    let secrets = secret_values(spec);
    let containers = task_containers(spec);
    for (name, c) in &containers {
        let args = c.entrypoint.iter().flatten().chain(&c.command);
        let health = c.health.iter().flat_map(|h| &h.command);
        let args: Vec<&String> = args.chain(health).collect();
        for param in secrets.iter().filter(|(_, v)| args.iter().any(|a| a.contains(v.as_str()))).map(|(p, _)| p) {
            bad(
                format!("containers.{name}.command"),
                format!(
                    "passes secret parameter {param} on a command line, which anyone who can describe the ECS task \
                     definition reads: not supported by this template on aws-ecs (secrets reach a task only as \
                     environment variables read from SSM)"
                ),
            );
        }
        if c.replicated() && containers.len() > 1 {
            bad(
                format!("containers.{name}.replicas"),
                "on aws-ecs the whole task is what scales: a replicated container must be the only container of its \
                 task"
                    .into(),
            );
        }
        for p in &c.ports {
            if spec.instance.load_balancer.is_some() && p.protocol != Protocol::Tcp {
                bad(format!("containers.{name}.ports"), "an application load balancer forwards TCP only".into());
            }
        }
    }
    if containers.is_empty() {
        bad("containers".into(), "no container runs in the task".into());
    }
    if errors.is_empty() { Ok(()) } else { Err(ValidationError { errors }) }
}

/// A name cut to `max` characters, its end replaced by a digest of the whole when cut (so two
/// long names stay distinct).
pub(crate) fn bounded(name: String, max: usize) -> String {
    if name.len() <= max {
        return name;
    }
    let digest = Sha256::digest(name.as_bytes());
    let hex: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    format!("{}-{hex}", &name[..max - hex.len() - 1])
}

/// `text` with every Docker DNS name of a task's container (`<service>-<container>`), as a
/// whole host name, replaced by `localhost`: the containers of one task share its network.
fn localhost(text: &str, hosts: &[String]) -> String {
    let mut out = text.to_owned();
    for host in hosts {
        let mut result = String::new();
        let mut rest = out.as_str();
        while let Some(at) = rest.find(host.as_str()) {
            let before = rest[..at].chars().next_back();
            let after = rest[at + host.len()..].chars().next();
            let part = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
            result.push_str(&rest[..at]);
            result.push_str(if part(before) || part(after) { host } else { "localhost" });
            rest = &rest[at + host.len()..];
        }
        result.push_str(rest);
        out = result;
    }
    out
}

/// The ECS resources of a service (see the module's documentation).
pub fn aws_ecs_resources(spec: &ServiceSpec) -> Vec<DesiredResource> {
    let fallback = AwsSettings::new("");
    let aws = spec.aws.as_ref().unwrap_or(&fallback);
    let region = aws.region.clone();
    let (client, service) = (spec.client.as_str(), spec.name.as_str());
    // `_` joins ids, which never contain it: no two services share a name.
    let name = format!("spawnit_{client}_{service}");
    let path = format!("/spawnit/{client}/{service}");
    let secrets = secret_values(spec);
    let containers = task_containers(spec);
    let hosts: Vec<String> = containers.iter().map(|(n, _)| format!("{service}-{n}")).collect();
    // The managed Redis container's host name names the cache (written in by the provider).
    let redis_host = crate::aws_scale::managed_redis(spec).map(|(name, _)| format!("{service}-{name}"));
    let cache = crate::aws_scale::aws_cache_resources(spec, aws);
    let cache_deps: Vec<Address> =
        cache.iter().filter(|r| r.address.kind == ResourceKind::Cache).map(|r| r.address.clone()).collect();
    let mut out = Vec::new();

    let cluster = ecs_cluster_address();
    out.push(DesiredResource {
        address: cluster.clone(),
        attrs: ResourceAttrs::EcsCluster(EcsClusterAttrs { name: name.clone(), region: region.clone() }),
        depends_on: Vec::new(),
    });
    let logs = ecs_log_group_address();
    out.push(DesiredResource {
        address: logs.clone(),
        attrs: ResourceAttrs::LogGroup(LogGroupAttrs {
            name: path.clone(),
            region: region.clone(),
            retention_days: ECS_LOG_RETENTION_DAYS,
        }),
        depends_on: Vec::new(),
    });

    let mut parameters = Vec::new();
    let mut task = Vec::new();
    for (cname, c) in &containers {
        let mut env = BTreeMap::new();
        let mut from_ssm = BTreeMap::new();
        for (var, value) in &c.env {
            let value = match &redis_host {
                Some(host) => crate::aws_scale::cache_env_value(value, host),
                None => value.clone(),
            };
            let value = localhost(&value, &hosts);
            if secrets.values().any(|s| value.contains(s.as_str())) {
                let address = Address::new(ResourceKind::SsmParameter, format!("{cname}.{var}"));
                parameters.push(DesiredResource {
                    address: address.clone(),
                    attrs: ResourceAttrs::SsmParameter(SsmParameterAttrs {
                        name: format!("{path}/{cname}/{var}"),
                        region: region.clone(),
                        value,
                    }),
                    depends_on: cache_deps.clone(),
                });
                from_ssm.insert(var.clone(), address);
            } else {
                env.insert(var.clone(), value);
            }
        }
        task.push(TaskContainer {
            name: (*cname).clone(),
            image: c.image.clone(),
            entrypoint: c.entrypoint.as_ref().map(|e| e.iter().map(|a| localhost(a, &hosts)).collect()),
            command: c.command.iter().map(|a| localhost(a, &hosts)).collect(),
            env,
            secrets: from_ssm,
            ports: c.ports.iter().map(|p| TaskPort { container: p.container, protocol: p.protocol }).collect(),
            mounts: c
                .volumes
                .iter()
                .map(|m| VolumeMount { volume: m.volume.clone(), path: m.path.clone(), read_only: m.read_only })
                .collect(),
            health: c.health.clone(),
            user: c.user.clone(),
            depends_on: c.depends_on.iter().filter(|d| containers.iter().any(|(n, _)| n == d)).cloned().collect(),
        });
    }

    let role = ecs_role_address();
    let partition = aws_partition(&region);
    let inline_policy = (!parameters.is_empty()).then(|| {
        serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Action": ["ssm:GetParameters"],
                "Resource": [format!("arn:{partition}:ssm:{region}:*:parameter{path}/*")],
            }],
        })
        .to_string()
    });
    out.push(DesiredResource {
        address: role.clone(),
        attrs: ResourceAttrs::IamRole(IamRoleAttrs {
            name: bounded(format!("{name}_exec"), ROLE_NAME_MAX),
            region: region.clone(),
            trust_service: ECS_TASKS_PRINCIPAL.to_owned(),
            managed_policies: vec![ecs_execution_policy_arn(&region)],
            inline_policy,
        }),
        depends_on: Vec::new(),
    });
    let mut task_deps = vec![role.clone(), logs.clone()];
    task_deps.extend(cache_deps.iter().cloned());
    task_deps.extend(parameters.iter().map(|p| p.address.clone()));
    out.extend(parameters);

    let mut volumes: Vec<String> =
        task.iter().flat_map(|c| c.mounts.iter().map(|m| m.volume.clone())).collect::<Vec<_>>();
    volumes.sort();
    volumes.dedup();
    let definition = ecs_task_definition_address();
    out.push(DesiredResource {
        address: definition.clone(),
        attrs: ResourceAttrs::TaskDefinition(TaskDefinitionAttrs {
            family: name.clone(),
            region: region.clone(),
            cpu: aws.task_cpu,
            memory_mb: aws.task_memory_mb,
            execution_role: role,
            log_group: logs,
            volumes,
            containers: task,
        }),
        depends_on: task_deps,
    });

    // Behind a load balancer: the shared front (target type `ip`), the tasks in its app group.
    // Otherwise the tasks' own group, their ports open to the allowed CIDRs.
    let cidrs = crate::desired::aws_allowed_cidrs(spec, aws);
    let ports: Vec<(Protocol, u16)> =
        containers.iter().flat_map(|(_, c)| c.ports.iter().map(|p| (p.protocol, p.container))).collect();
    let front = crate::aws_scale::aws_front_resources(spec, aws, crate::aws_scale::TargetType::Ip);
    let mut ingress: Vec<IngressRule> = ports
        .iter()
        .flat_map(|(protocol, port)| {
            cidrs.iter().map(|cidr| IngressRule { protocol: *protocol, port: *port, cidr: cidr.clone() })
        })
        .collect();
    ingress.sort();
    ingress.dedup();
    let mut service_deps = vec![cluster.clone(), definition.clone()];
    let (group, load_balancer) = match &spec.instance.load_balancer {
        Some(lb) if !front.is_empty() => {
            service_deps.push(crate::aws_scale::listener_address());
            let balancer = EcsLoadBalancer {
                target_group: crate::aws_scale::target_group_address(),
                container: lb.container.clone(),
                port: lb.port,
            };
            (crate::aws_scale::app_group_address(), Some(balancer))
        }
        _ => {
            let group = crate::desired::aws_security_group_address();
            out.push(DesiredResource {
                address: group.clone(),
                attrs: ResourceAttrs::SecurityGroup(SecurityGroupAttrs {
                    name: name.clone(),
                    description: format!("SpawnIt ECS service {client}/{service}"),
                    region: region.clone(),
                    vpc_id: aws.vpc_id.clone(),
                    ingress,
                    ingress_groups: Vec::new(),
                }),
                depends_on: Vec::new(),
            });
            (group, None)
        }
    };
    service_deps.push(group.clone());
    out.extend(front);
    out.extend(cache);

    let scaled = containers.iter().find(|(_, c)| c.replicated()).map(|(_, c)| *c);
    out.push(DesiredResource {
        address: ecs_service_address(),
        attrs: ResourceAttrs::EcsService(EcsServiceAttrs {
            name: service.to_owned(),
            region,
            cluster: cluster.clone(),
            task_definition: definition.clone(),
            desired_count: scaled.map(|c| c.replica_count()).unwrap_or(1),
            security_group: group.clone(),
            subnet_ids: aws.subnet_id.iter().cloned().collect(),
            assign_public_ip: true,
            scaling: scaled.and_then(|c| c.scale.as_ref()).map(|s| EcsScaling {
                min: s.min,
                max: s.max,
                target_cpu_percent: s.target_cpu_percent,
            }),
            load_balancer,
        }),
        depends_on: service_deps,
    });
    out
}
