//! Resources: addressed, typed objects that a provider creates, observes and deletes.
//!
//! A [`DesiredResource`] is what the spec asks for, an [`ObservedResource`] is what a provider
//! found carrying SpawnIt's ownership labels, and a [`ResourceState`](crate::ResourceState) is
//! what the engine last recorded. The planner compares the three.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::spec::{HealthSpec, Protocol, PublishMode};

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

/// Keys of [`ObservedResource::facts`] with a meaning shared by the providers and the planner.
pub mod facts {
    /// Facts whose key starts with this are outputs (e.g. `output.public_ip`): recorded in
    /// state with the resource, shown by `show`.
    pub const OUTPUT_PREFIX: &str = "output.";
    pub const PUBLIC_IP: &str = "output.public_ip";
    pub const PUBLIC_DNS: &str = "output.public_dns";
    pub const PRIVATE_IP: &str = "output.private_ip";
    /// A security group's ingress rules as found, in [`IngressRule::canonical`](super::IngressRule::canonical) form.
    pub const INGRESS: &str = "ingress";
    /// The instance type found.
    pub const INSTANCE_TYPE: &str = "instance_type";
    /// A load balancer's upstreams as found in its configuration, comma-separated in order.
    pub const UPSTREAMS: &str = "upstreams";
    /// A hash of a load balancer's configuration as found (see `spawnit_plan::config_digest`).
    pub const CONFIG_DIGEST: &str = "config_digest";
    /// A container's name as found.
    pub const NAME: &str = "name";
    /// A Swarm service's replica count as found in its spec (changed by `docker service scale`).
    pub const REPLICAS: &str = "replicas";
    /// A Swarm service's image as found in its spec (without a `@sha256:` pin).
    pub const IMAGE: &str = "image";
    /// A digest of a Swarm service's environment as found (see `spawnit_plan::env_digest`).
    pub const ENV_DIGEST: &str = "env_digest";
    /// A Swarm service's tasks: `3/3 running` (running tasks / desired replicas).
    pub const TASKS: &str = "output.tasks";
    /// Why a Swarm service's tasks cannot be placed, as Swarm says it (`no suitable node (…)`).
    pub const UNPLACED: &str = "output.unplaced";
    /// A load balancer's DNS name (an application load balancer's, on AWS).
    pub const DNS_NAME: &str = "output.dns_name";
    /// An auto-scaling group's bounds and desired count as found.
    pub const MIN: &str = "min";
    pub const MAX: &str = "max";
    pub const DESIRED: &str = "desired";
    /// An auto-scaling group's target-tracking CPU target as found (`none` without the policy).
    pub const TARGET_CPU: &str = "target_cpu";
    /// A target group's stickiness (`true`/`false`) and health check path as found.
    pub const STICKY: &str = "sticky";
    pub const HEALTH_PATH: &str = "health_path";
    /// An ECS service's desired count as found (changed by its autoscaler, or by hand).
    pub const DESIRED_COUNT: &str = "desired_count";
    /// An ECS service's Application Auto Scaling as found: `min-max@target%`, or `none`.
    pub const SCALING: &str = "scaling";
    /// The target group ARN an ECS service registers its tasks in, or `none`.
    pub const TARGET_GROUP: &str = "target_group";
    /// A log group's retention in days as found (`none`: kept forever).
    pub const RETENTION: &str = "retention_days";
    /// An IAM role's policies as found: managed policy ARNs and a digest of the inline one.
    pub const POLICIES: &str = "policies";
    /// The roles an instance profile holds, comma-separated.
    pub const ROLES: &str = "roles";
}

/// What kind of object a resource is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResourceKind {
    Network,
    Volume,
    Image,
    Container,
    /// An AWS security group.
    #[serde(rename = "security_group")]
    SecurityGroup,
    /// An AWS EC2 instance.
    Instance,
    /// A load balancer (on Docker: a Caddy container) in front of a container's replicas.
    #[serde(rename = "load_balancer")]
    LoadBalancer,
    /// A Docker Swarm service: one per blueprint container, its replicas being Swarm's tasks.
    #[serde(rename = "swarm_service")]
    SwarmService,
    /// A client's attachable Swarm overlay network, shared by its Swarm services.
    #[serde(rename = "swarm_network")]
    SwarmNetwork,
    /// A Swarm secret mounted as a file into the tasks: a secret parameter's value, or a load
    /// balancer's Caddyfile (bollard has no Swarm config API; a secret is stored encrypted).
    #[serde(rename = "swarm_secret")]
    SwarmSecret,
    /// An EC2 launch template: what an auto-scaling group's instances run (their `user_data`).
    #[serde(rename = "launch_template")]
    LaunchTemplate,
    /// An EC2 auto-scaling group with a target-tracking CPU policy.
    #[serde(rename = "autoscaling_group")]
    AutoscalingGroup,
    /// An application load balancer.
    Alb,
    /// An application load balancer's target group (health check, stickiness).
    #[serde(rename = "target_group")]
    TargetGroup,
    /// An application load balancer's listener, forwarding to a target group.
    Listener,
    /// The subnets an ElastiCache cache is placed in.
    #[serde(rename = "cache_subnet_group")]
    CacheSubnetGroup,
    /// An ElastiCache Redis replication group.
    Cache,
    /// An ECS cluster (Fargate capacity only).
    #[serde(rename = "ecs_cluster")]
    EcsCluster,
    /// An IAM role (an ECS task execution role).
    #[serde(rename = "iam_role")]
    IamRole,
    /// An IAM instance profile: the role an auto-scaling group's instances run with.
    #[serde(rename = "instance_profile")]
    InstanceProfile,
    /// A CloudWatch Logs log group.
    #[serde(rename = "log_group")]
    LogGroup,
    /// An SSM Parameter Store `SecureString`: a secret given to ECS tasks by reference.
    #[serde(rename = "ssm_parameter")]
    SsmParameter,
    /// An ECS task definition (one revision of a family).
    #[serde(rename = "task_definition")]
    TaskDefinition,
    /// An ECS service on Fargate, with its Application Auto Scaling target and CPU policy.
    #[serde(rename = "ecs_service")]
    EcsService,
}

impl ResourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Network => "network",
            ResourceKind::Volume => "volume",
            ResourceKind::Image => "image",
            ResourceKind::Container => "container",
            ResourceKind::SecurityGroup => "security_group",
            ResourceKind::Instance => "instance",
            ResourceKind::LoadBalancer => "load_balancer",
            ResourceKind::SwarmService => "swarm_service",
            ResourceKind::SwarmNetwork => "swarm_network",
            ResourceKind::SwarmSecret => "swarm_secret",
            ResourceKind::LaunchTemplate => "launch_template",
            ResourceKind::AutoscalingGroup => "autoscaling_group",
            ResourceKind::Alb => "alb",
            ResourceKind::TargetGroup => "target_group",
            ResourceKind::Listener => "listener",
            ResourceKind::CacheSubnetGroup => "cache_subnet_group",
            ResourceKind::Cache => "cache",
            ResourceKind::EcsCluster => "ecs_cluster",
            ResourceKind::IamRole => "iam_role",
            ResourceKind::InstanceProfile => "instance_profile",
            ResourceKind::LogGroup => "log_group",
            ResourceKind::SsmParameter => "ssm_parameter",
            ResourceKind::TaskDefinition => "task_definition",
            ResourceKind::EcsService => "ecs_service",
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

    /// The address of replica `index` of container `name`: `container.web[0]`.
    pub fn replica(name: &str, index: u32) -> Address {
        Address::new(ResourceKind::Container, format!("{name}[{index}]"))
    }

    /// The container a (replica's) name belongs to: `web` for `web`, `web[2]` and `web[2]#ab12`.
    pub fn replica_group(name: &str) -> &str {
        let name = name.split('#').next().unwrap_or(name);
        name.split('[').next().unwrap_or(name)
    }

    /// The replica index in a name such as `web[2]`.
    pub fn replica_index(&self) -> Option<u32> {
        self.name.split('#').next()?.split_once('[')?.1.strip_suffix(']')?.parse().ok()
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.kind.as_str(), self.name)
    }
}

/// Why a string is not a resource address.
#[derive(Debug, thiserror::Error)]
#[error(
    "{0:?} is not a resource address (expected kind.name, kind one of network, volume, image, container, security_group, instance, load_balancer, swarm_service, swarm_network, swarm_secret, launch_template, autoscaling_group, alb, target_group, listener, cache_subnet_group, cache, ecs_cluster, iam_role, instance_profile, log_group, ssm_parameter, task_definition, ecs_service)"
)]
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
            "security_group" => ResourceKind::SecurityGroup,
            "instance" => ResourceKind::Instance,
            "load_balancer" => ResourceKind::LoadBalancer,
            "swarm_service" => ResourceKind::SwarmService,
            "swarm_network" => ResourceKind::SwarmNetwork,
            "swarm_secret" => ResourceKind::SwarmSecret,
            "launch_template" => ResourceKind::LaunchTemplate,
            "autoscaling_group" => ResourceKind::AutoscalingGroup,
            "alb" => ResourceKind::Alb,
            "target_group" => ResourceKind::TargetGroup,
            "listener" => ResourceKind::Listener,
            "cache_subnet_group" => ResourceKind::CacheSubnetGroup,
            "cache" => ResourceKind::Cache,
            "ecs_cluster" => ResourceKind::EcsCluster,
            "iam_role" => ResourceKind::IamRole,
            "instance_profile" => ResourceKind::InstanceProfile,
            "log_group" => ResourceKind::LogGroup,
            "ssm_parameter" => ResourceKind::SsmParameter,
            "task_definition" => ResourceKind::TaskDefinition,
            "ecs_service" => ResourceKind::EcsService,
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
    #[serde(rename = "security_group")]
    SecurityGroup(SecurityGroupAttrs),
    Instance(InstanceAttrs),
    #[serde(rename = "load_balancer")]
    LoadBalancer(LoadBalancerAttrs),
    #[serde(rename = "swarm_service")]
    SwarmService(SwarmServiceAttrs),
    #[serde(rename = "swarm_network")]
    SwarmNetwork(SwarmNetworkAttrs),
    #[serde(rename = "swarm_secret")]
    SwarmSecret(SwarmSecretAttrs),
    #[serde(rename = "launch_template")]
    LaunchTemplate(LaunchTemplateAttrs),
    #[serde(rename = "autoscaling_group")]
    AutoscalingGroup(AutoscalingGroupAttrs),
    Alb(AlbAttrs),
    #[serde(rename = "target_group")]
    TargetGroup(TargetGroupAttrs),
    Listener(ListenerAttrs),
    #[serde(rename = "cache_subnet_group")]
    CacheSubnetGroup(CacheSubnetGroupAttrs),
    Cache(CacheAttrs),
    #[serde(rename = "ecs_cluster")]
    EcsCluster(EcsClusterAttrs),
    #[serde(rename = "iam_role")]
    IamRole(IamRoleAttrs),
    #[serde(rename = "instance_profile")]
    InstanceProfile(InstanceProfileAttrs),
    #[serde(rename = "log_group")]
    LogGroup(LogGroupAttrs),
    #[serde(rename = "ssm_parameter")]
    SsmParameter(SsmParameterAttrs),
    #[serde(rename = "task_definition")]
    TaskDefinition(TaskDefinitionAttrs),
    #[serde(rename = "ecs_service")]
    EcsService(EcsServiceAttrs),
}

/// An EC2 launch template: the instances of an auto-scaling group, their `user_data` running the
/// service's containers as on a single instance. New content is a new version of the same
/// template (an update), after which the group's instances are replaced by an instance refresh.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchTemplateAttrs {
    /// The template's name, `spawnit_<client>_<service>`; also the instances' `Name` tag.
    pub name: String,
    /// Everything an instance runs (its `subnet_id` is unused: the group places instances).
    pub instance: InstanceAttrs,
    /// The cache whose endpoint replaces [`CACHE_HOST`] in the containers' environment, looked
    /// up by its tags when a version is written (it exists only once the cache is created).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<Address>,
    /// The name of the instance profile the instances run with (their AWS credentials), looked
    /// up for its ARN when a version is written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_profile: Option<String>,
}

/// In a container's environment, stands for the host name of the service's cache
/// ([`LaunchTemplateAttrs::cache`]), written in when the cache exists.
pub const CACHE_HOST: &str = "${spawnit.cache.host}";

/// An EC2 auto-scaling group of instances from a launch template, registered in a target group,
/// with a target-tracking policy on average CPU. Every change is an update in place: bounds,
/// desired count and policy directly; a new launch template content (`launch_template_digest`)
/// through an instance refresh.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutoscalingGroupAttrs {
    /// `spawnit_<client>_<service>`.
    pub name: String,
    pub region: String,
    pub launch_template: Address,
    pub target_group: Address,
    /// The one subnet to launch in; otherwise the VPC's subnets, one per availability zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_id: Option<String>,
    pub min: u32,
    pub max: u32,
    pub desired: u32,
    /// Average CPU of the group's instances the target-tracking policy aims for, in percent.
    pub target_cpu_percent: u32,
    /// A digest of the launch template's attributes: a change means a new version to roll out.
    pub launch_template_digest: String,
}

/// An application load balancer (internet-facing, in the VPC's subnets, one per zone).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlbAttrs {
    /// At most 32 letters, digits and hyphens, unique per region: `spawnit-<hash>`.
    pub name: String,
    pub region: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_id: Option<String>,
    /// Its security group, a resource of the same service.
    pub security_group: Address,
}

/// How a target group's targets are registered: instances (an auto-scaling group) or IP
/// addresses (Fargate tasks in `awsvpc` networking).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetType {
    Instance,
    Ip,
}

impl TargetType {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetType::Instance => "instance",
            TargetType::Ip => "ip",
        }
    }
}

/// An application load balancer's target group: HTTP on the app's port, a health check, and
/// `lb_cookie` stickiness when sticky. Its health check and stickiness change in place.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetGroupAttrs {
    /// At most 32 letters, digits and hyphens, unique per region: `spawnit-<hash>`.
    pub name: String,
    pub region: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_id: Option<String>,
    /// The port the targets listen on.
    pub port: u16,
    pub target_type: TargetType,
    pub health_path: String,
    pub sticky: bool,
}

/// An HTTP listener of a load balancer forwarding to a target group; its port and target group
/// change in place.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerAttrs {
    pub region: String,
    pub load_balancer: Address,
    pub target_group: Address,
    /// The published port.
    pub port: u16,
}

/// The subnets of an ElastiCache cache: the VPC's, one per availability zone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheSubnetGroupAttrs {
    /// Lowercase letters, digits and hyphens: `spawnit-<hash>`.
    pub name: String,
    pub region: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_id: Option<String>,
}

/// An ElastiCache Redis replication group with transit encryption and an AUTH token (reached
/// with `rediss://`), in its own security group. Any change means a new cache.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheAttrs {
    /// The replication group id: at most 40 lowercase letters, digits and hyphens, `spawnit-<hash>`.
    pub id: String,
    pub region: String,
    pub node_type: String,
    pub subnet_group: Address,
    pub security_group: Address,
    /// The AUTH token (a secret parameter's value: masked wherever it is shown).
    pub auth_token: String,
    pub port: u16,
}

/// An ECS cluster holding a service's Fargate tasks. Nothing of it changes in place.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EcsClusterAttrs {
    /// `spawnit-<client>-<service>`.
    pub name: String,
    pub region: String,
}

/// An IAM role that a service (e.g. `ecs-tasks.amazonaws.com`) assumes. Its policies change in
/// place; a new name or trust means a new role.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IamRoleAttrs {
    /// At most 64 characters.
    pub name: String,
    /// IAM is global; the region only says which endpoint SpawnIt talks to.
    pub region: String,
    /// The service principal trusted to assume it.
    pub trust_service: String,
    /// ARNs of the managed policies attached to it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub managed_policies: Vec<String>,
    /// One inline policy (a JSON document), named `spawnit`, when some access is needed beyond
    /// the managed policies (reading the service's SSM parameters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline_policy: Option<String>,
}

/// An IAM instance profile holding one role: what EC2 instances assume. Nothing of it changes
/// in place; a new name or role means a new profile.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceProfileAttrs {
    /// At most 128 characters.
    pub name: String,
    /// IAM is global; the region only says which endpoint SpawnIt talks to.
    pub region: String,
    /// The name of the role it holds.
    pub role: String,
}

/// A CloudWatch Logs log group; its retention changes in place.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogGroupAttrs {
    /// `/spawnit/<client>/<service>`.
    pub name: String,
    pub region: String,
    pub retention_days: u32,
}

/// An SSM Parameter Store `SecureString` holding one secret value (encrypted with the
/// account's `aws/ssm` key). A new value is a new parameter, so whatever reads it at start
/// (an ECS task definition) is re-created with it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SsmParameterAttrs {
    /// `/spawnit/<client>/<service>/<container>/<VAR>`.
    pub name: String,
    pub region: String,
    /// The secret value (masked wherever it is shown).
    pub value: String,
}

/// An ECS task definition for Fargate (`awsvpc`), every container logging to one log group.
/// Revisions are immutable: any change registers a new one (a replacement), which the ECS
/// service then rolls out in place.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskDefinitionAttrs {
    /// `spawnit-<client>-<service>`.
    pub family: String,
    pub region: String,
    /// CPU units (1024 = one vCPU) and memory in MiB of the task, a pair Fargate accepts.
    pub cpu: u32,
    pub memory_mb: u32,
    /// The task execution role (pulls images, writes logs, reads the secrets).
    pub execution_role: Address,
    /// The log group every container writes to (`awslogs`, stream prefix `spawnit`).
    pub log_group: Address,
    /// Task-local volumes (Fargate ephemeral storage: gone when the task stops).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<String>,
    pub containers: Vec<TaskContainer>,
}

/// One container of a task definition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskContainer {
    /// The blueprint's container name.
    pub name: String,
    pub image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Plain environment: never holds a secret value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Environment variables read from an SSM parameter at task start (`secrets: valueFrom`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, Address>,
    /// Container ports (in `awsvpc` the task's own ports).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<TaskPort>,
    /// Task volumes mounted into it (`volume` is the task volume's name).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<VolumeMount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Containers of the same task that must have started first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
}

/// A port of a task's container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskPort {
    pub container: u16,
    pub protocol: Protocol,
}

/// An ECS service running a task definition on Fargate in `awsvpc` networking, and, when
/// `scaling` is set, its Application Auto Scaling target and CPU target-tracking policy.
/// Its task definition, desired count, scaling and network change in place (a rolling
/// deployment); a new name or cluster means a new service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EcsServiceAttrs {
    /// The service's name in its cluster.
    pub name: String,
    pub region: String,
    pub cluster: Address,
    pub task_definition: Address,
    /// Tasks to run when created; afterwards the autoscaler's, within `scaling`'s bounds.
    pub desired_count: u32,
    /// The security group of its tasks' network interfaces.
    pub security_group: Address,
    /// Its subnets; empty: the default VPC's default subnets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subnet_ids: Vec<String>,
    /// Gives each task a public IP (needed to pull public images without a NAT gateway).
    pub assign_public_ip: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaling: Option<EcsScaling>,
    /// The target group (type `ip`) its tasks register in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<EcsLoadBalancer>,
}

/// Application Auto Scaling of an ECS service: target tracking on average CPU.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EcsScaling {
    pub min: u32,
    pub max: u32,
    pub target_cpu_percent: u32,
}

impl EcsScaling {
    /// The [`facts::SCALING`] text of a scalable target and its CPU policy: `1-4@70%`
    /// (`1-4@none` without a policy; `none` for no scalable target).
    pub fn fact(min: u32, max: u32, target_cpu_percent: Option<u32>) -> String {
        match target_cpu_percent {
            Some(t) => format!("{min}-{max}@{t}%"),
            None => format!("{min}-{max}@none"),
        }
    }

    /// This scaling's [`facts::SCALING`] text.
    pub fn text(&self) -> String {
        Self::fact(self.min, self.max, Some(self.target_cpu_percent))
    }
}

impl IamRoleAttrs {
    /// The [`facts::POLICIES`] text of a role: its managed policy ARNs, sorted, then its
    /// inline policy as canonical JSON (keys sorted), if any.
    pub fn policies_fact(managed: &[String], inline: Option<&str>) -> String {
        let mut managed: Vec<&str> = managed.iter().map(String::as_str).collect();
        managed.sort();
        let mut out = managed.join(", ");
        if let Some(doc) = inline {
            let canonical = serde_json::from_str::<serde_json::Value>(doc).map(|v| v.to_string());
            out.push_str(" + inline ");
            out.push_str(&canonical.unwrap_or_else(|_| doc.to_owned()));
        }
        out
    }

    /// This role's [`facts::POLICIES`] text.
    pub fn policies_text(&self) -> String {
        Self::policies_fact(&self.managed_policies, self.inline_policy.as_deref())
    }
}

/// Where an ECS service's tasks register: a target group, the container and its port.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EcsLoadBalancer {
    pub target_group: Address,
    pub container: String,
    pub port: u16,
}

/// A Docker Swarm service, fully specified: one per blueprint container. A replicated
/// container is one Swarm service with `replicas` tasks, spread and rescheduled by Swarm.
/// Every change is a Swarm service update in place (rolling, `start-first`, rolled back
/// automatically when the new tasks fail).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwarmServiceAttrs {
    /// The cluster-wide name, `spawnit_<client>_<service>_<container>`; also its DNS name on
    /// its network.
    pub name: String,
    pub image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Never holds a secret value: secrets are files (see `secrets`), named by `<VAR>_FILE`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    pub replicas: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<SwarmPort>,
    /// `dnsrr` puts every task's address in DNS (what a load balancer in front of the replicas
    /// needs, and the only mode without IPVS); `vip` gives the service one virtual address.
    pub endpoint_mode: EndpointMode,
    /// The overlay network it joins.
    pub network: String,
    /// Extra DNS names on that network.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// Node-local named volumes: a task rescheduled to another node does not find its data.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<VolumeMount>,
    /// Swarm secrets mounted as files under `/run/secrets/`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<SwarmFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Placement constraints, e.g. `node.labels.spawnit.client == acme`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<String>,
    /// Restart policy `any`, after this delay.
    pub restart_delay_s: u32,
    /// How long a task has to stop after SIGTERM before it is killed.
    pub stop_grace_s: u32,
}

/// A port a Swarm service publishes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwarmPort {
    /// The port inside the task.
    pub target: u16,
    /// The port on the nodes.
    pub published: u16,
    pub protocol: Protocol,
    pub mode: PublishMode,
}

/// How a Swarm service is reached on its network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndpointMode {
    Vip,
    Dnsrr,
}

impl EndpointMode {
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointMode::Vip => "vip",
            EndpointMode::Dnsrr => "dnsrr",
        }
    }
}

/// A Swarm secret mounted into a service's tasks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwarmFile {
    /// The Swarm secret's name.
    pub name: String,
    /// The file name it has under `/run/secrets/` in the task.
    pub target: String,
}

/// A client's attachable overlay network on the Swarm cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwarmNetworkAttrs {
    /// `spawnit_<client>_<network>_overlay`.
    pub name: String,
    pub attachable: bool,
}

/// A Swarm secret: immutable in Swarm, so its name carries a digest of its content
/// (`…_<digest>`) and new content is a new secret, the old one removed once no service uses it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwarmSecretAttrs {
    pub name: String,
    /// The content (a secret's value: masked wherever it is shown).
    pub data: String,
}

/// A load balancer: a proxy container publishing one host port and spreading requests over
/// `upstreams`, with active health checks and, when `sticky`, a session cookie. Its upstream
/// list changes in place (a configuration reload); anything else changed means a new one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadBalancerAttrs {
    /// The engine-wide name of its container.
    pub name: String,
    pub image: String,
    /// The Docker network it shares with its upstreams.
    pub network: String,
    /// The published port; `container` is the port the proxy listens on inside.
    pub port: PublishedPort,
    /// The container (of the same service) whose replicas it fronts, e.g. `web`.
    pub target: String,
    /// The port the upstreams listen on.
    pub upstream_port: u16,
    pub sticky: bool,
    pub health_path: String,
    /// The upstreams' host names (their container names), in replica order. Not part of the
    /// fingerprint: a change of upstreams is an update, observed as the fact
    /// [`facts::UPSTREAMS`].
    #[serde(default)]
    pub upstreams: Vec<String>,
}

impl LoadBalancerAttrs {
    /// Whether `address` is one of the containers this load balancer fronts (`container.web`,
    /// `container.web[2]`, or a leftover copy `container.web[2]#…`).
    pub fn fronts(&self, address: &Address) -> bool {
        address.kind == ResourceKind::Container && Address::replica_group(&address.name) == self.target
    }
}

/// An AWS security group: one ingress rule per published port and allowed CIDR (plus SSH
/// when asked for), and rules opening a port to another group of the same service. Its rules
/// are updated in place; anything else changed means a new group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityGroupAttrs {
    /// `spawnit-<client>-<service>`, unique per VPC.
    pub name: String,
    pub description: String,
    pub region: String,
    /// `None`: the region's default VPC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_id: Option<String>,
    /// In [`IngressRule::canonical`] order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<IngressRule>,
    /// Ports open to the members of another group of the same service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress_groups: Vec<GroupRule>,
}

impl SecurityGroupAttrs {
    /// Every rule as one comparable line (the [`facts::INGRESS`] form).
    pub fn ingress_text(&self) -> String {
        IngressRule::canonical_texts(
            self.ingress.iter().map(IngressRule::text).chain(self.ingress_groups.iter().map(GroupRule::text)),
        )
    }
}

/// An ingress rule whose source is another security group of the same service.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct GroupRule {
    pub protocol: Protocol,
    pub port: u16,
    /// The source group, e.g. `security_group.lb`.
    pub group: Address,
}

impl GroupRule {
    /// `tcp/80 from security_group.lb`.
    pub fn text(&self) -> String {
        format!("{}/{} from {}", self.protocol.as_str(), self.port, self.group)
    }
}

/// One ingress rule: a port and protocol open to a CIDR (IPv4 or IPv6).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct IngressRule {
    pub protocol: Protocol,
    pub port: u16,
    pub cidr: String,
}

impl IngressRule {
    /// `tcp/6379 from 10.0.0.0/8`.
    pub fn text(&self) -> String {
        format!("{}/{} from {}", self.protocol.as_str(), self.port, self.cidr)
    }

    /// Rules as one comparable line: their texts sorted, deduplicated, comma-separated.
    pub fn canonical(rules: &[IngressRule]) -> String {
        Self::canonical_texts(rules.iter().map(IngressRule::text))
    }

    /// [`canonical`](Self::canonical) of rule texts (a provider may find rules that are no
    /// [`IngressRule`], such as port ranges, and still has to show them).
    pub fn canonical_texts(texts: impl IntoIterator<Item = String>) -> String {
        let mut texts: Vec<String> = texts.into_iter().collect();
        texts.sort();
        texts.dedup();
        texts.join(", ")
    }
}

/// An AWS EC2 instance running the service's containers from its `user_data`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceAttrs {
    /// Its `Name` tag, `spawnit-<client>-<service>`.
    pub name: String,
    pub region: String,
    pub instance_type: String,
    /// An explicit AMI id; when absent the newest image of `ami_owner` matching `ami_name`,
    /// resolved when the instance is created (a newer AMI alone never replaces an instance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ami: Option<String>,
    pub ami_owner: String,
    pub ami_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet_id: Option<String>,
    /// The security group it joins, a resource of the same service.
    pub security_group: Address,
    /// Docker named volumes created on the instance.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<String>,
    /// The containers its `user_data` runs, in start order (dependencies first). Their
    /// `network` is the Docker network created on the instance.
    pub containers: Vec<ContainerAttrs>,
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
    /// The engine's socket bound at `/var/run/docker.sock` (see `ContainerSpec::docker_socket`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub docker_socket: bool,
}

/// Where a container with [`ContainerAttrs::docker_socket`] finds the engine's socket (and where
/// the host's is bound from).
pub const DOCKER_SOCKET: &str = "/var/run/docker.sock";

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
