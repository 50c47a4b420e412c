//! Masking of secret parameter values in everything SpawnIt shows: one [`Redactor`] per
//! service, built from its secret parameters, masks them in free text, in JSON views, and in
//! typed plans and job events.
//!
//! Masking fails closed. A typed plan or event is walked field by field: every string that holds
//! a secret (a value, a map key, an address name, a provider id) has each occurrence replaced by
//! [`MASK`]; the plan's own vocabulary (actions, reason codes, statuses, resource kinds,
//! protocols) is an enum that no secret can reach, so it stays readable even when a secret
//! happens to equal `create` or `tcp`. A value that cannot hold the mask (a port number whose
//! digits contain a secret) is not shown at all: the change keeps its address and action and
//! loses its details.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::event::JobEvent;
use crate::plan::{Change, Plan};
use crate::resource::{
    Address, AlbAttrs, AutoscalingGroupAttrs, CacheAttrs, CacheSubnetGroupAttrs, ContainerAttrs, DesiredResource,
    EcsClusterAttrs, EcsLoadBalancer, EcsScaling, EcsServiceAttrs, GroupRule, IamRoleAttrs, ImageAttrs, IngressRule,
    InstanceAttrs, InstanceProfileAttrs, LaunchTemplateAttrs, ListenerAttrs, LoadBalancerAttrs, LogGroupAttrs,
    NetworkAttrs, PublishedPort, ResourceAttrs, SecurityGroupAttrs, SsmParameterAttrs, SwarmFile, SwarmNetworkAttrs,
    SwarmPort, SwarmSecretAttrs, SwarmServiceAttrs, TargetGroupAttrs, TaskContainer, TaskDefinitionAttrs, TaskPort,
    VolumeAttrs, VolumeMount,
};
use crate::spec::HealthSpec;

/// What replaces a secret value in output.
pub const MASK: &str = "(sensitive)";

/// Replaces every occurrence of any secret value by [`MASK`].
#[derive(Clone, Debug, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Redactor {
        let mut secrets: Vec<String> = secrets.into_iter().filter(|s| !s.is_empty()).collect();
        // Longest first, so a secret that contains another is masked whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor { secrets }
    }

    /// A redactor for the secret parameters of a service spec.
    pub fn for_spec(spec: &crate::ServiceSpec) -> Redactor {
        let values: Vec<String> = spec
            .secret_params
            .iter()
            .filter_map(|name| match spec.params.get(name) {
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Null) | None => None,
                Some(other) => Some(other.to_string()),
            })
            .collect();
        Redactor::with_shell_quoted(values)
    }

    /// A redactor for `values` and their shell-quoted forms: inside a single-quoted shell word
    /// (an instance's user_data) each `'` is written `'"'"'`, and inside a word quoted twice (a
    /// health command there) that form is quoted again.
    pub fn with_shell_quoted(values: Vec<String>) -> Redactor {
        let quote = |v: &str| v.replace('\'', "'\"'\"'");
        let quoted: Vec<String> = values
            .iter()
            .filter(|v| v.contains('\''))
            .flat_map(|v| {
                let once = quote(v);
                let twice = quote(&once);
                [once, twice]
            })
            .collect();
        Redactor::new(values.into_iter().chain(quoted))
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// `text` with every occurrence of every secret masked; if masking one secret made another
    /// appear (the masks joined its parts), nothing of the text.
    pub fn text(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), MASK);
            }
        }
        if self.holds_secret(&out.replace(MASK, "\u{0}")) {
            return MASK.to_owned();
        }
        out
    }

    /// Masks secrets in every string (and object key) of a JSON value.
    pub fn json(&self, value: &Value) -> Value {
        if self.secrets.is_empty() {
            return value.clone();
        }
        match value {
            Value::String(s) => Value::String(self.text(s)),
            Value::Array(items) => Value::Array(items.iter().map(|v| self.json(v)).collect()),
            Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (self.text(k), self.json(v))).collect()),
            // A number cannot hold the mask: one whose digits contain a secret becomes the mask.
            Value::Number(n) if self.holds_secret(&n.to_string()) => Value::String(MASK.into()),
            other => other.clone(),
        }
    }

    /// Whether `text` contains any secret.
    pub fn holds_secret(&self, text: &str) -> bool {
        self.secrets.iter().any(|s| text.contains(s.as_str()))
    }

    /// Serializes `value` to JSON with secrets masked.
    pub fn to_json<T: serde::Serialize>(&self, value: &T) -> Value {
        self.json(&serde_json::to_value(value).unwrap_or(Value::Null))
    }
}

/// A value could not be masked, so it is withheld.
struct Withheld;

/// The typed walk: each type that can carry a secret says how it is masked.
impl Redactor {
    /// The plan with every secret masked; a change whose details cannot be masked keeps only its
    /// address, action and (masked) reasons.
    pub fn plan(&self, plan: &Plan) -> Plan {
        if self.secrets.is_empty() {
            return plan.clone();
        }
        let Plan { subject, status, changes, errors } = plan;
        Plan {
            subject: self.text(subject),
            status: *status,
            changes: changes.iter().map(|c| self.change(c)).collect(),
            errors: self.texts(errors),
        }
    }

    /// A job event with every secret masked.
    pub fn event(&self, event: &JobEvent) -> JobEvent {
        if self.secrets.is_empty() {
            return event.clone();
        }
        match event {
            JobEvent::Planned { plan } => JobEvent::Planned { plan: self.plan(plan) },
            JobEvent::OperationStarted { address, action } => {
                JobEvent::OperationStarted { address: self.address(address), action: *action }
            }
            JobEvent::OperationDone { address, action, id, duration_ms } => JobEvent::OperationDone {
                address: self.address(address),
                action: *action,
                id: self.text(id),
                duration_ms: *duration_ms,
            },
            JobEvent::OperationFailed { address, action, error, duration_ms } => JobEvent::OperationFailed {
                address: self.address(address),
                action: *action,
                error: self.text(error),
                duration_ms: *duration_ms,
            },
            JobEvent::Message { text } => JobEvent::Message { text: self.text(text) },
            JobEvent::Finished { .. } => event.clone(),
        }
    }

    fn texts(&self, texts: &[String]) -> Vec<String> {
        texts.iter().map(|t| self.text(t)).collect()
    }

    fn text_map(&self, map: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        map.iter().map(|(k, v)| (self.text(k), self.text(v))).collect()
    }

    /// An address keeps its kind; its name is masked like any text.
    pub fn address(&self, address: &Address) -> Address {
        Address::new(address.kind, self.text(&address.name))
    }

    fn addresses(&self, addresses: &[Address]) -> Vec<Address> {
        addresses.iter().map(|a| self.address(a)).collect()
    }

    fn number(&self, n: impl std::fmt::Display) -> Result<(), Withheld> {
        if self.holds_secret(&n.to_string()) { Err(Withheld) } else { Ok(()) }
    }

    fn change(&self, change: &Change) -> Change {
        let Change {
            address,
            action,
            code,
            reasons,
            desired,
            fingerprint,
            existing_id,
            depends_on,
            outputs,
            create_before_destroy,
        } = change;
        let mut reasons = self.texts(reasons);
        let desired = match desired.as_ref().map(|d| self.desired(d)).transpose() {
            Ok(desired) => desired,
            Err(Withheld) => {
                reasons.push("details withheld: a value of it contains a secret, which cannot be masked".to_owned());
                None
            }
        };
        Change {
            address: self.address(address),
            action: *action,
            code: *code,
            reasons,
            desired,
            fingerprint: fingerprint.as_ref().map(|f| self.text(f)),
            existing_id: existing_id.as_ref().map(|i| self.text(i)),
            depends_on: self.addresses(depends_on),
            outputs: self.text_map(outputs),
            create_before_destroy: *create_before_destroy,
        }
    }

    fn desired(&self, desired: &DesiredResource) -> Result<DesiredResource, Withheld> {
        let DesiredResource { address, attrs, depends_on } = desired;
        Ok(DesiredResource {
            address: self.address(address),
            attrs: self.attrs(attrs)?,
            depends_on: self.addresses(depends_on),
        })
    }

    fn attrs(&self, attrs: &ResourceAttrs) -> Result<ResourceAttrs, Withheld> {
        Ok(match attrs {
            ResourceAttrs::Network(NetworkAttrs { name, driver }) => {
                ResourceAttrs::Network(NetworkAttrs { name: self.text(name), driver: self.text(driver) })
            }
            ResourceAttrs::Volume(VolumeAttrs { name }) => ResourceAttrs::Volume(VolumeAttrs { name: self.text(name) }),
            ResourceAttrs::Image(ImageAttrs { reference }) => {
                ResourceAttrs::Image(ImageAttrs { reference: self.text(reference) })
            }
            ResourceAttrs::Container(c) => ResourceAttrs::Container(self.container(c)?),
            ResourceAttrs::SecurityGroup(SecurityGroupAttrs {
                name,
                description,
                region,
                vpc_id,
                ingress,
                ingress_groups,
            }) => {
                let ingress = ingress
                    .iter()
                    .map(|IngressRule { protocol, port, cidr }| {
                        self.number(port)?;
                        Ok(IngressRule { protocol: *protocol, port: *port, cidr: self.text(cidr) })
                    })
                    .collect::<Result<_, Withheld>>()?;
                let ingress_groups = ingress_groups
                    .iter()
                    .map(|GroupRule { protocol, port, group }| {
                        self.number(port)?;
                        Ok(GroupRule { protocol: *protocol, port: *port, group: self.address(group) })
                    })
                    .collect::<Result<_, Withheld>>()?;
                ResourceAttrs::SecurityGroup(SecurityGroupAttrs {
                    name: self.text(name),
                    description: self.text(description),
                    region: self.text(region),
                    vpc_id: vpc_id.as_ref().map(|v| self.text(v)),
                    ingress,
                    ingress_groups,
                })
            }
            ResourceAttrs::Instance(i) => ResourceAttrs::Instance(self.instance(i)?),
            ResourceAttrs::LaunchTemplate(LaunchTemplateAttrs { name, instance, cache, instance_profile }) => {
                ResourceAttrs::LaunchTemplate(LaunchTemplateAttrs {
                    name: self.text(name),
                    instance: self.instance(instance)?,
                    cache: cache.as_ref().map(|c| self.address(c)),
                    instance_profile: instance_profile.as_ref().map(|p| self.text(p)),
                })
            }
            ResourceAttrs::AutoscalingGroup(AutoscalingGroupAttrs {
                name,
                region,
                launch_template,
                target_group,
                subnet_id,
                vpc_id,
                min,
                max,
                desired,
                target_cpu_percent,
                launch_template_digest,
            }) => {
                for n in [min, max, desired, target_cpu_percent] {
                    self.number(n)?;
                }
                ResourceAttrs::AutoscalingGroup(AutoscalingGroupAttrs {
                    name: self.text(name),
                    region: self.text(region),
                    launch_template: self.address(launch_template),
                    target_group: self.address(target_group),
                    subnet_id: subnet_id.as_ref().map(|v| self.text(v)),
                    vpc_id: vpc_id.as_ref().map(|v| self.text(v)),
                    min: *min,
                    max: *max,
                    desired: *desired,
                    target_cpu_percent: *target_cpu_percent,
                    launch_template_digest: self.text(launch_template_digest),
                })
            }
            ResourceAttrs::Alb(AlbAttrs { name, region, vpc_id, security_group }) => ResourceAttrs::Alb(AlbAttrs {
                name: self.text(name),
                region: self.text(region),
                vpc_id: vpc_id.as_ref().map(|v| self.text(v)),
                security_group: self.address(security_group),
            }),
            ResourceAttrs::TargetGroup(TargetGroupAttrs {
                name,
                region,
                vpc_id,
                port,
                target_type,
                health_path,
                sticky,
            }) => {
                self.number(port)?;
                ResourceAttrs::TargetGroup(TargetGroupAttrs {
                    name: self.text(name),
                    region: self.text(region),
                    vpc_id: vpc_id.as_ref().map(|v| self.text(v)),
                    port: *port,
                    target_type: *target_type,
                    health_path: self.text(health_path),
                    sticky: *sticky,
                })
            }
            ResourceAttrs::Listener(ListenerAttrs { region, load_balancer, target_group, port }) => {
                self.number(port)?;
                ResourceAttrs::Listener(ListenerAttrs {
                    region: self.text(region),
                    load_balancer: self.address(load_balancer),
                    target_group: self.address(target_group),
                    port: *port,
                })
            }
            ResourceAttrs::CacheSubnetGroup(CacheSubnetGroupAttrs { name, region, vpc_id }) => {
                ResourceAttrs::CacheSubnetGroup(CacheSubnetGroupAttrs {
                    name: self.text(name),
                    region: self.text(region),
                    vpc_id: vpc_id.as_ref().map(|v| self.text(v)),
                })
            }
            ResourceAttrs::Cache(CacheAttrs {
                id,
                region,
                node_type,
                subnet_group,
                security_group,
                auth_token,
                port,
            }) => {
                self.number(port)?;
                ResourceAttrs::Cache(CacheAttrs {
                    id: self.text(id),
                    region: self.text(region),
                    node_type: self.text(node_type),
                    subnet_group: self.address(subnet_group),
                    security_group: self.address(security_group),
                    auth_token: self.text(auth_token),
                    port: *port,
                })
            }
            ResourceAttrs::LoadBalancer(LoadBalancerAttrs {
                name,
                image,
                network,
                port,
                target,
                upstream_port,
                sticky,
                health_path,
                upstreams,
            }) => {
                self.number(upstream_port)?;
                ResourceAttrs::LoadBalancer(LoadBalancerAttrs {
                    name: self.text(name),
                    image: self.text(image),
                    network: self.text(network),
                    port: self.port(port)?,
                    target: self.text(target),
                    upstream_port: *upstream_port,
                    sticky: *sticky,
                    health_path: self.text(health_path),
                    upstreams: self.texts(upstreams),
                })
            }
            ResourceAttrs::SwarmService(s) => ResourceAttrs::SwarmService(self.swarm_service(s)?),
            ResourceAttrs::SwarmNetwork(SwarmNetworkAttrs { name, attachable }) => {
                ResourceAttrs::SwarmNetwork(SwarmNetworkAttrs { name: self.text(name), attachable: *attachable })
            }
            ResourceAttrs::SwarmSecret(o) => ResourceAttrs::SwarmSecret(self.swarm_secret(o)),
            ResourceAttrs::EcsCluster(EcsClusterAttrs { name, region }) => {
                ResourceAttrs::EcsCluster(EcsClusterAttrs { name: self.text(name), region: self.text(region) })
            }
            ResourceAttrs::IamRole(IamRoleAttrs { name, region, trust_service, managed_policies, inline_policy }) => {
                ResourceAttrs::IamRole(IamRoleAttrs {
                    name: self.text(name),
                    region: self.text(region),
                    trust_service: self.text(trust_service),
                    managed_policies: self.texts(managed_policies),
                    inline_policy: inline_policy.as_ref().map(|p| self.text(p)),
                })
            }
            ResourceAttrs::InstanceProfile(InstanceProfileAttrs { name, region, role }) => {
                ResourceAttrs::InstanceProfile(InstanceProfileAttrs {
                    name: self.text(name),
                    region: self.text(region),
                    role: self.text(role),
                })
            }
            ResourceAttrs::LogGroup(LogGroupAttrs { name, region, retention_days }) => {
                self.number(retention_days)?;
                ResourceAttrs::LogGroup(LogGroupAttrs {
                    name: self.text(name),
                    region: self.text(region),
                    retention_days: *retention_days,
                })
            }
            ResourceAttrs::SsmParameter(SsmParameterAttrs { name, region, value }) => {
                ResourceAttrs::SsmParameter(SsmParameterAttrs {
                    name: self.text(name),
                    region: self.text(region),
                    value: self.text(value),
                })
            }
            ResourceAttrs::TaskDefinition(t) => ResourceAttrs::TaskDefinition(self.task_definition(t)?),
            ResourceAttrs::EcsService(s) => ResourceAttrs::EcsService(self.ecs_service(s)?),
        })
    }

    fn task_definition(&self, t: &TaskDefinitionAttrs) -> Result<TaskDefinitionAttrs, Withheld> {
        let TaskDefinitionAttrs { family, region, cpu, memory_mb, execution_role, log_group, volumes, containers } = t;
        self.number(cpu)?;
        self.number(memory_mb)?;
        let containers = containers
            .iter()
            .map(|c| {
                let TaskContainer {
                    name,
                    image,
                    entrypoint,
                    command,
                    env,
                    secrets,
                    ports,
                    mounts,
                    health,
                    user,
                    depends_on,
                } = c;
                let ports = ports
                    .iter()
                    .map(|TaskPort { container, protocol }| {
                        self.number(container)?;
                        Ok(TaskPort { container: *container, protocol: *protocol })
                    })
                    .collect::<Result<_, Withheld>>()?;
                let health = match health {
                    Some(h) => Some(self.health(h)?),
                    None => None,
                };
                Ok(TaskContainer {
                    name: self.text(name),
                    image: self.text(image),
                    entrypoint: entrypoint.as_ref().map(|e| self.texts(e)),
                    command: self.texts(command),
                    env: self.text_map(env),
                    secrets: secrets.iter().map(|(k, a)| (self.text(k), self.address(a))).collect(),
                    ports,
                    mounts: mounts
                        .iter()
                        .map(|VolumeMount { volume, path, read_only }| VolumeMount {
                            volume: self.text(volume),
                            path: self.text(path),
                            read_only: *read_only,
                        })
                        .collect(),
                    health,
                    user: user.as_ref().map(|u| self.text(u)),
                    depends_on: self.texts(depends_on),
                })
            })
            .collect::<Result<_, Withheld>>()?;
        Ok(TaskDefinitionAttrs {
            family: self.text(family),
            region: self.text(region),
            cpu: *cpu,
            memory_mb: *memory_mb,
            execution_role: self.address(execution_role),
            log_group: self.address(log_group),
            volumes: self.texts(volumes),
            containers,
        })
    }

    fn ecs_service(&self, s: &EcsServiceAttrs) -> Result<EcsServiceAttrs, Withheld> {
        let EcsServiceAttrs {
            name,
            region,
            cluster,
            task_definition,
            desired_count,
            security_group,
            subnet_ids,
            assign_public_ip,
            scaling,
            load_balancer,
        } = s;
        self.number(desired_count)?;
        let scaling = match scaling {
            Some(EcsScaling { min, max, target_cpu_percent }) => {
                for n in [min, max, target_cpu_percent] {
                    self.number(n)?;
                }
                Some(EcsScaling { min: *min, max: *max, target_cpu_percent: *target_cpu_percent })
            }
            None => None,
        };
        let load_balancer = match load_balancer {
            Some(EcsLoadBalancer { target_group, container, port }) => {
                self.number(port)?;
                Some(EcsLoadBalancer {
                    target_group: self.address(target_group),
                    container: self.text(container),
                    port: *port,
                })
            }
            None => None,
        };
        Ok(EcsServiceAttrs {
            name: self.text(name),
            region: self.text(region),
            cluster: self.address(cluster),
            task_definition: self.address(task_definition),
            desired_count: *desired_count,
            security_group: self.address(security_group),
            subnet_ids: self.texts(subnet_ids),
            assign_public_ip: *assign_public_ip,
            scaling,
            load_balancer,
        })
    }

    fn instance(&self, i: &InstanceAttrs) -> Result<InstanceAttrs, Withheld> {
        let InstanceAttrs {
            name,
            region,
            instance_type,
            ami,
            ami_owner,
            ami_name,
            key_name,
            subnet_id,
            security_group,
            volumes,
            containers,
        } = i;
        Ok(InstanceAttrs {
            name: self.text(name),
            region: self.text(region),
            instance_type: self.text(instance_type),
            ami: ami.as_ref().map(|a| self.text(a)),
            ami_owner: self.text(ami_owner),
            ami_name: self.text(ami_name),
            key_name: key_name.as_ref().map(|k| self.text(k)),
            subnet_id: subnet_id.as_ref().map(|s| self.text(s)),
            security_group: self.address(security_group),
            volumes: self.texts(volumes),
            containers: containers.iter().map(|c| self.container(c)).collect::<Result<_, Withheld>>()?,
        })
    }

    fn swarm_secret(&self, o: &SwarmSecretAttrs) -> SwarmSecretAttrs {
        SwarmSecretAttrs { name: self.text(&o.name), data: self.text(&o.data) }
    }

    fn swarm_service(&self, s: &SwarmServiceAttrs) -> Result<SwarmServiceAttrs, Withheld> {
        let SwarmServiceAttrs {
            name,
            image,
            entrypoint,
            command,
            env,
            replicas,
            ports,
            endpoint_mode,
            network,
            aliases,
            mounts,
            secrets,
            health,
            user,
            constraints,
            restart_delay_s,
            stop_grace_s,
        } = s;
        for n in [replicas, restart_delay_s, stop_grace_s] {
            self.number(n)?;
        }
        let ports = ports
            .iter()
            .map(|SwarmPort { target, published, protocol, mode }| {
                self.number(target)?;
                self.number(published)?;
                Ok(SwarmPort { target: *target, published: *published, protocol: *protocol, mode: *mode })
            })
            .collect::<Result<_, Withheld>>()?;
        let files = |files: &[SwarmFile]| -> Vec<SwarmFile> {
            files.iter().map(|f| SwarmFile { name: self.text(&f.name), target: self.text(&f.target) }).collect()
        };
        let health = match health {
            Some(h) => Some(self.health(h)?),
            None => None,
        };
        Ok(SwarmServiceAttrs {
            name: self.text(name),
            image: self.text(image),
            entrypoint: entrypoint.as_ref().map(|e| self.texts(e)),
            command: self.texts(command),
            env: self.text_map(env),
            replicas: *replicas,
            ports,
            endpoint_mode: *endpoint_mode,
            network: self.text(network),
            aliases: self.texts(aliases),
            mounts: mounts
                .iter()
                .map(|VolumeMount { volume, path, read_only }| VolumeMount {
                    volume: self.text(volume),
                    path: self.text(path),
                    read_only: *read_only,
                })
                .collect(),
            secrets: files(secrets),
            health,
            user: user.as_ref().map(|u| self.text(u)),
            constraints: self.texts(constraints),
            restart_delay_s: *restart_delay_s,
            stop_grace_s: *stop_grace_s,
        })
    }

    fn health(&self, h: &HealthSpec) -> Result<HealthSpec, Withheld> {
        let HealthSpec { command, interval_s, timeout_s, retries, start_period_s } = h;
        for n in [interval_s, timeout_s, retries, start_period_s] {
            self.number(n)?;
        }
        Ok(HealthSpec {
            command: self.texts(command),
            interval_s: *interval_s,
            timeout_s: *timeout_s,
            retries: *retries,
            start_period_s: *start_period_s,
        })
    }

    fn port(&self, port: &PublishedPort) -> Result<PublishedPort, Withheld> {
        let PublishedPort { container, host, host_ip, protocol } = port;
        self.number(container)?;
        self.number(host)?;
        Ok(PublishedPort { container: *container, host: *host, host_ip: self.text(host_ip), protocol: *protocol })
    }

    fn container(&self, container: &ContainerAttrs) -> Result<ContainerAttrs, Withheld> {
        let ContainerAttrs {
            name,
            image,
            entrypoint,
            command,
            env,
            ports,
            mounts,
            network,
            aliases,
            health,
            user,
            docker_socket,
        } = container;
        let ports = ports.iter().map(|p| self.port(p)).collect::<Result<_, Withheld>>()?;
        let health = match health {
            Some(HealthSpec { command, interval_s, timeout_s, retries, start_period_s }) => {
                for n in [interval_s, timeout_s, retries, start_period_s] {
                    self.number(n)?;
                }
                Some(HealthSpec {
                    command: self.texts(command),
                    interval_s: *interval_s,
                    timeout_s: *timeout_s,
                    retries: *retries,
                    start_period_s: *start_period_s,
                })
            }
            None => None,
        };
        Ok(ContainerAttrs {
            name: self.text(name),
            image: self.text(image),
            entrypoint: entrypoint.as_ref().map(|e| self.texts(e)),
            command: self.texts(command),
            env: self.text_map(env),
            ports,
            mounts: mounts
                .iter()
                .map(|VolumeMount { volume, path, read_only }| VolumeMount {
                    volume: self.text(volume),
                    path: self.text(path),
                    read_only: *read_only,
                })
                .collect(),
            network: self.text(network),
            aliases: self.texts(aliases),
            health,
            user: user.as_ref().map(|u| self.text(u)),
            docker_socket: *docker_socket,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_every_occurrence_longest_first() {
        let r = Redactor::new(["abc".to_owned(), "abcdef".to_owned(), String::new()]);
        assert_eq!(r.text("x abcdef y abc"), "x (sensitive) y (sensitive)");
        let v = serde_json::json!({"env": {"PW": "abcdef"}, "cmd": ["--pw", "abc"]});
        assert_eq!(r.json(&v), serde_json::json!({"env": {"PW": MASK}, "cmd": ["--pw", MASK]}));
    }

    use crate::plan::{Action, PlanStatus, ReasonCode};
    use crate::resource::ResourceKind;
    use crate::spec::Protocol;

    fn plan_with(secret: &str) -> Plan {
        let container = ContainerAttrs {
            name: "spawnit-acme-cache-redis".into(),
            image: "redis:7".into(),
            entrypoint: None,
            command: vec!["redis-server".into(), "--requirepass".into(), secret.into()],
            env: BTreeMap::from([("REDISCLI_AUTH".to_owned(), secret.to_owned())]),
            ports: vec![PublishedPort {
                container: 6379,
                host: 16379,
                host_ip: "127.0.0.1".into(),
                protocol: Protocol::Tcp,
            }],
            mounts: vec![VolumeMount {
                volume: "spawnit-acme-cache-data".into(),
                path: "/data".into(),
                read_only: false,
            }],
            network: "spawnit-acme-default".into(),
            aliases: vec!["redis".into()],
            health: Some(HealthSpec {
                command: vec!["redis-cli".into(), "-a".into(), secret.into(), "ping".into()],
                interval_s: 10,
                timeout_s: 5,
                retries: 3,
                start_period_s: 0,
            }),
            user: None,
            docker_socket: false,
        };
        let address = Address::new(ResourceKind::Container, "redis");
        let image = Address::new(ResourceKind::Image, "redis");
        Plan {
            subject: "service acme/cache".into(),
            status: PlanStatus::Drifted,
            changes: vec![
                Change {
                    address: image.clone(),
                    action: Action::NoOp,
                    code: ReasonCode::NoOpBecauseUnchanged,
                    reasons: vec!["present".into()],
                    desired: Some(DesiredResource {
                        address: image.clone(),
                        attrs: ResourceAttrs::Image(ImageAttrs { reference: "redis:7".into() }),
                        depends_on: vec![],
                    }),
                    fingerprint: None,
                    existing_id: Some("sha256:0123abcd".into()),
                    depends_on: vec![],
                    outputs: BTreeMap::new(),
                    create_before_destroy: false,
                },
                Change {
                    address: address.clone(),
                    action: Action::Create,
                    code: ReasonCode::CreateBecauseNew,
                    reasons: vec![format!("not yet created; command changed to {secret}")],
                    desired: Some(DesiredResource {
                        address,
                        attrs: ResourceAttrs::Container(container),
                        depends_on: vec![image.clone()],
                    }),
                    fingerprint: Some("f00d".into()),
                    existing_id: None,
                    depends_on: vec![image],
                    outputs: BTreeMap::new(),
                    create_before_destroy: false,
                },
            ],
            errors: vec![],
        }
    }

    /// Every string of `value` that is no vocabulary word (action, code, status, kind, protocol,
    /// the kind part of an address), with the key it sits under.
    fn data_strings(value: &Value, key: &str, out: &mut Vec<(String, String)>) {
        match value {
            Value::String(s) => match key {
                "action" | "code" | "status" | "kind" | "protocol" => {}
                "address" | "depends_on" | "security_group" => {
                    out.push((key.into(), s.split_once('.').map_or(s.as_str(), |(_, name)| name).into()))
                }
                _ => out.push((key.into(), s.clone())),
            },
            Value::Array(items) => items.iter().for_each(|v| data_strings(v, key, out)),
            Value::Object(map) => map.iter().for_each(|(k, v)| {
                // Keys of data maps are data; other keys are field names.
                if matches!(key, "env" | "outputs" | "params") {
                    out.push(("(key)".into(), k.clone()));
                }
                data_strings(v, k, out)
            }),
            Value::Number(n) => out.push((key.into(), n.to_string())),
            Value::Bool(_) | Value::Null => {}
        }
    }

    #[test]
    fn a_secret_equal_to_a_plan_word_an_image_or_part_of_a_field_is_masked_and_the_plan_stays_whole() {
        let secrets = [
            "create",
            "update",
            "replace",
            "delete",
            "no-op",
            "create_because_new",
            "tcp",
            "udp",
            "redis:7",
            "redis",
            "acme",
            "container",
            "0123",
            "it's 'quoted'",
        ];
        for secret in secrets {
            let redactor = Redactor::new([secret.to_owned()]);
            let plan = plan_with(secret);
            let shown = redactor.plan(&plan);
            // The plan's shape and vocabulary survive.
            assert_eq!(shown.status, PlanStatus::Drifted, "{secret}");
            assert_eq!(shown.changes.iter().map(|c| c.action).collect::<Vec<_>>(), [Action::NoOp, Action::Create]);
            assert_eq!(
                shown.changes.iter().map(|c| c.code).collect::<Vec<_>>(),
                [ReasonCode::NoOpBecauseUnchanged, ReasonCode::CreateBecauseNew]
            );
            let Some(ResourceAttrs::Container(c)) = shown.changes[1].desired.as_ref().map(|d| &d.attrs) else {
                panic!("{secret}: the container's details are shown: {shown:?}")
            };
            assert_eq!(c.env["REDISCLI_AUTH"], MASK, "{secret}");
            assert_eq!(c.ports[0].protocol, Protocol::Tcp, "{secret}");
            // The secret is in no data string, key or address name.
            let mut strings = Vec::new();
            data_strings(&serde_json::to_value(&shown).unwrap(), "", &mut strings);
            assert!(strings.len() > 20, "{secret}: the walk read the plan: {strings:?}");
            for (key, s) in &strings {
                assert!(!s.contains(secret), "{secret:?} shown under {key:?}: {s:?}");
            }
            // Events carry the same masking.
            let event = redactor.event(&JobEvent::OperationFailed {
                address: shown.changes[1].address.clone(),
                action: Action::Create,
                error: format!("docker said {secret}"),
                duration_ms: 1,
            });
            let text = serde_json::to_string(&event).unwrap();
            assert!(text.contains(MASK), "{text}");
        }
    }

    #[test]
    fn a_number_holding_a_secret_withholds_the_details_of_its_change() {
        let redactor = Redactor::new(["6379".to_owned()]);
        let shown = redactor.plan(&plan_with("6379"));
        let change = &shown.changes[1];
        assert_eq!(change.action, Action::Create);
        assert!(change.desired.is_none(), "{change:?}");
        assert!(change.reasons.iter().any(|r| r.contains("withheld")), "{change:?}");
        let text = serde_json::to_string(&shown).unwrap();
        assert!(text.contains("container.redis") && !text.contains("6379"), "{text}");
        // JSON views mask such a number too.
        assert_eq!(redactor.json(&serde_json::json!({"port": 6379})), serde_json::json!({"port": MASK}));
    }

    #[test]
    fn shell_quoted_forms_of_a_secret_are_masked() {
        let r = Redactor::with_shell_quoted(vec!["it's".to_owned()]);
        // `docker run --env 'PW=it'"'"'s'` as the user_data renders it.
        assert_eq!(r.text("--env 'PW=it'\"'\"'s'"), "--env 'PW=(sensitive)'");
        // Quoted again inside a quoted health command.
        let twice = "it'\"'\"'".replace('\'', "'\"'\"'") + "s";
        assert_eq!(r.text(&format!("--health-cmd '{twice}'")), "--health-cmd '(sensitive)'");
    }
}
