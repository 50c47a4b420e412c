//! Desired specs: what a client asked for, as stored at
//! `clients/<client>/services/<service>/spec.json` and `clients/<client>/networks/<name>/spec.json`.
//!
//! A service spec keeps both the user's choices (template, parameters) and the fully rendered
//! [`Instance`] the engine applies, so a later change of the template never changes a deployed
//! service silently. An instance has no field for privileged mode, host paths or devices: a
//! template cannot ask for them, and `deny_unknown_fields` turns such a request into an error.
//! The one exception is [`ContainerSpec::docker_socket`], which rendering accepts only from an
//! admin-only template (SpawnIt deploying itself), and likewise [`ContainerSpec::aws_instance_role`].

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Id;

/// Where a service's resources live.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// The local Docker engine.
    #[default]
    Docker,
    /// An EC2 instance whose `user_data` runs the containers, behind a security group.
    Aws,
    /// Docker Swarm services on a cluster, through a manager's Docker API.
    Swarm,
    /// An EC2 auto-scaling group (from a launch template running the containers) behind an
    /// application load balancer, with an ElastiCache Redis when the template asks for one.
    #[serde(rename = "aws-asg")]
    AwsAsg,
    /// ECS Fargate tasks behind an application load balancer, with an ElastiCache Redis when
    /// the template asks for one.
    #[serde(rename = "aws-ecs")]
    AwsEcs,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Docker => "docker",
            ProviderKind::Aws => "aws",
            ProviderKind::Swarm => "swarm",
            ProviderKind::AwsAsg => "aws-asg",
            ProviderKind::AwsEcs => "aws-ecs",
        }
    }

    /// Whether services of this kind run on AWS (and take [`AwsSettings`]).
    pub fn is_aws(self) -> bool {
        matches!(self, ProviderKind::Aws | ProviderKind::AwsAsg | ProviderKind::AwsEcs)
    }
}

impl std::fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// On which host addresses published ports listen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
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
    /// Where and how the service runs on AWS; `Some` exactly when `provider` is `aws`, `aws-asg`
    /// or `aws-ecs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<AwsSettings>,
    /// How the service runs on a Swarm cluster; `Some` exactly when `provider` is `swarm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swarm: Option<SwarmSettings>,
    /// Every parameter's value after defaults and generation (secrets included: the store is
    /// trusted, outputs are not; see [`Redactor`](crate::Redactor)).
    pub params: BTreeMap<String, serde_json::Value>,
    /// Names of the parameters whose values are secret.
    #[serde(default)]
    pub secret_params: Vec<String>,
    pub instance: Instance,
    /// How the names of its Docker objects are built; a spec without the field was written
    /// before store format 2 and keeps the old names ([`DockerNaming::V1`]).
    #[serde(default = "DockerNaming::v1")]
    pub docker_naming: DockerNaming,
    /// What the drift monitor does when the service drifts.
    #[serde(default)]
    pub drift_policy: DriftPolicy,
    /// The service's lease: at this instant it is destroyed (with warnings before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What the drift monitor does about a drifted service.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum DriftPolicy {
    /// Publish the status change only.
    #[default]
    Notify,
    /// Also queue an apply job that repairs it.
    Reconcile,
}

/// A client's network layer, shared by several of its services.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetworkSpec {
    pub client: Id,
    pub name: Id,
    /// How the name of its Docker network is built (absent: [`DockerNaming::V1`]).
    #[serde(default = "DockerNaming::v1")]
    pub docker_naming: DockerNaming,
    pub created_at: DateTime<Utc>,
}

/// How SpawnIt names the Docker objects (networks, volumes, containers) of a spec.
///
/// Ids may contain `-`, so the first scheme, which joined them with `-`, was not injective:
/// client `acme-db` + service `main` and client `acme` + service `db-main` both gave
/// `spawnit-acme-db-main-data`. The second joins them with `_`, which no id contains. Docker
/// cannot rename volumes or networks, so a spec deployed under the first scheme keeps it (the
/// store migration to format 2 records that on every existing spec); new specs use the second.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DockerNaming {
    /// `spawnit-<client>-<service>-<name>`, `spawnit-<client>-<network>` (before format 2).
    V1,
    /// `spawnit_<client>_<service>_<name>`, `spawnit_<client>_<network>`: injective.
    V2,
}

impl DockerNaming {
    /// The scheme of specs written from now on.
    pub const CURRENT: DockerNaming = DockerNaming::V2;

    /// The scheme of a spec that does not name one (written before store format 2).
    pub fn v1() -> DockerNaming {
        DockerNaming::V1
    }

    /// The name of a client's network.
    pub fn network(self, client: &str, network: &str) -> String {
        match self {
            DockerNaming::V1 => format!("spawnit-{client}-{network}"),
            DockerNaming::V2 => format!("spawnit_{client}_{network}"),
        }
    }

    /// The name of a service as a whole, for the cloud objects it owns (an AWS security group,
    /// an instance's `Name` tag).
    pub fn service(self, client: &str, service: &str) -> String {
        match self {
            DockerNaming::V1 => format!("spawnit-{client}-{service}"),
            DockerNaming::V2 => format!("spawnit_{client}_{service}"),
        }
    }

    /// The name of one of a service's volumes or containers.
    pub fn object(self, client: &str, service: &str, name: &str) -> String {
        match self {
            DockerNaming::V1 => format!("spawnit-{client}-{service}-{name}"),
            DockerNaming::V2 => format!("spawnit_{client}_{service}_{name}"),
        }
    }
}

/// A rendered blueprint: every placeholder resolved, every value typed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Instance {
    #[serde(default)]
    pub volumes: BTreeMap<String, VolumeSpec>,
    pub containers: BTreeMap<String, ContainerSpec>,
    /// A load balancer in front of one container's replicas: the only published port of that
    /// container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancerSpec>,
}

/// The most replicas a container may have.
pub const MAX_REPLICAS: u32 = 20;

/// The image of a load balancer when the template names none: Caddy 2.
pub const LOAD_BALANCER_IMAGE: &str = "caddy:2";

/// A load balancer (a Caddy container) in front of one container's replicas.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadBalancerSpec {
    /// The container it fronts (a key of [`Instance::containers`]).
    pub container: String,
    /// The port the fronted container listens on.
    #[serde(deserialize_with = "lenient::number")]
    pub port: u16,
    /// The host port it publishes.
    #[serde(deserialize_with = "lenient::number")]
    pub host: u16,
    /// Sticky sessions: a cookie keeps a browser on the replica that first answered it.
    #[serde(default, deserialize_with = "lenient::boolean")]
    pub sticky: bool,
    /// The path of the active health check; a replica answering it with 2xx or 3xx is healthy.
    #[serde(default = "default_health_path")]
    pub health_path: String,
    #[serde(default = "default_lb_image")]
    pub image: String,
    /// URL scheme shown for its endpoint.
    #[serde(default = "default_lb_scheme")]
    pub scheme: String,
}

fn default_health_path() -> String {
    "/".to_owned()
}
fn default_lb_image() -> String {
    LOAD_BALANCER_IMAGE.to_owned()
}
fn default_lb_scheme() -> String {
    "http".to_owned()
}

/// Target tracking on CPU: the autoscaler keeps the replicas' average CPU near the target.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScalePolicy {
    #[serde(deserialize_with = "lenient::number")]
    pub min: u32,
    #[serde(deserialize_with = "lenient::number")]
    pub max: u32,
    /// Average CPU per replica to aim for, in percent of one core.
    #[serde(deserialize_with = "lenient::number")]
    pub target_cpu_percent: u32,
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
    /// How many copies run, each a resource of its own (`container.web[0]`, …). A container
    /// that declares neither this nor `scale` runs once, as `container.web`.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient::number_opt")]
    pub replicas: Option<u32>,
    /// Bounds and CPU target for the autoscaler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<ScalePolicy>,
    /// A container a cloud provider replaces by its managed service: `redis` is, on `aws-asg`
    /// and `aws-ecs`, an ElastiCache Redis (the container does not run there, and the other
    /// containers reach the cache where they named the container). Docker and Swarm run it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed: Option<Managed>,
    /// The Docker engine's socket at `/var/run/docker.sock` inside the container (with the
    /// socket's group, so a non-root user may use it): control of the host. Rendering refuses it
    /// unless the template is admin-only; only providers docker and aws run it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not", deserialize_with = "lenient::boolean")]
    pub docker_socket: bool,
    /// AWS access the container's instances get from an instance role instead of keys (provider
    /// aws-asg only; rendering refuses it unless the template is admin-only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_instance_role: Option<AwsInstanceRole>,
}

/// What an instance role allows ([`ContainerSpec::aws_instance_role`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsInstanceRole {
    /// Read, write, delete and list objects under this `s3://bucket/prefix` (nothing when
    /// empty).
    #[serde(default)]
    pub s3: String,
}

/// A managed service a container stands for (see [`ContainerSpec::managed`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Managed {
    Redis,
}

impl ContainerSpec {
    /// Whether it runs as numbered replicas (`container.web[0]`, …).
    pub fn replicated(&self) -> bool {
        self.replicas.is_some() || self.scale.is_some()
    }

    /// How many copies run: `replicas`, or the scale policy's minimum, or one.
    pub fn replica_count(&self) -> u32 {
        self.replicas.or(self.scale.as_ref().map(|s| s.min)).unwrap_or(1)
    }
}

/// Transport protocol of a published port.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
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

    pub fn number_opt<'de, D: Deserializer<'de>, T>(d: D) -> Result<Option<T>, D::Error>
    where
        T: Deserialize<'de> + std::str::FromStr,
    {
        number(d).map(Some)
    }

    /// A whole number (seconds, CPU units, MiB…), also written as a JSON float with no fraction
    /// (`5.0`): JSON and its schemas do not tell the two apart.
    pub fn whole_u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Whole {
            Int(u32),
            Float(f64),
        }
        match Whole::deserialize(d)? {
            Whole::Int(v) => Ok(v),
            Whole::Float(f) if f.fract() == 0.0 && (0.0..=u32::MAX as f64).contains(&f) => Ok(f as u32),
            Whole::Float(f) => Err(D::Error::custom(format!("{f} is not a whole number"))),
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
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
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
        self.endpoints_at(self.exposure.host_ip())
    }

    /// The endpoints where the service runs: on Docker the host's published ports; on AWS the
    /// ports of its instance's public IP (its private IP when it has none), none until the
    /// instance exists.
    pub fn endpoints_deployed(&self, state: Option<&crate::State>) -> Vec<Endpoint> {
        match self.provider {
            ProviderKind::Docker => self.endpoints(),
            // Published on the cluster's nodes: any node with the routing mesh, the nodes running
            // a task in host mode.
            ProviderKind::Swarm => self.endpoints_at("<node>"),
            ProviderKind::Aws => match self.aws_host(state) {
                Some(host) => self.endpoints_at(&host),
                None => Vec::new(),
            },
            // Only the load balancer is reachable: the instances or tasks take traffic from it.
            ProviderKind::AwsAsg | ProviderKind::AwsEcs => match self.alb_host(state) {
                Some(host) => {
                    self.endpoints_at(&host).into_iter().filter(|e| e.container == LOAD_BALANCER_ENDPOINT).collect()
                }
                None => Vec::new(),
            },
        }
    }

    /// The DNS name of an `aws-asg` or `aws-ecs` service's application load balancer, as last
    /// recorded.
    pub fn alb_host(&self, state: Option<&crate::State>) -> Option<String> {
        let alb = state?.resources.iter().find(|(a, _)| a.kind == crate::ResourceKind::Alb)?.1;
        alb.outputs.get("dns_name").cloned()
    }

    /// The address an AWS service's instance is reached at, as last recorded.
    pub fn aws_host(&self, state: Option<&crate::State>) -> Option<String> {
        let instance = state?.resources.iter().find(|(a, _)| a.kind == crate::ResourceKind::Instance)?.1;
        ["public_ip", "public_dns", "private_ip"].iter().find_map(|k| instance.outputs.get(*k).cloned())
    }

    /// The endpoints as reached on `host` (an address or DNS name), e.g. an instance's public IP.
    pub fn endpoints_at(&self, host: &str) -> Vec<Endpoint> {
        let ip = host;
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
        if let Some(lb) = &self.instance.load_balancer {
            let address = format!("{ip}:{}", lb.host);
            out.push(Endpoint {
                container: LOAD_BALANCER_ENDPOINT.to_owned(),
                name: lb.scheme.clone(),
                url: Some(format!("{}://{address}", lb.scheme)),
                address,
                protocol: Protocol::Tcp,
            });
        }
        out
    }
}

/// The `container` of a load balancer's [`Endpoint`].
pub const LOAD_BALANCER_ENDPOINT: &str = "load_balancer";

/// How a Swarm service publishes its ports on the nodes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum PublishMode {
    /// Swarm's routing mesh: every node answers on the port (needs IPVS in the nodes' kernels).
    #[default]
    Ingress,
    /// Only the nodes running a task answer, each on its own port (no IPVS needed).
    Host,
}

impl PublishMode {
    pub fn as_str(self) -> &'static str {
        match self {
            PublishMode::Ingress => "ingress",
            PublishMode::Host => "host",
        }
    }
}

/// How a service runs on a Swarm cluster (`provider: swarm`), chosen when it is created.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SwarmSettings {
    #[serde(default)]
    pub publish_mode: PublishMode,
    /// Restart policy `any`: a failed task is restarted after this many seconds (at most an hour).
    #[serde(default = "swarm_default_restart_delay", deserialize_with = "lenient::whole_u32")]
    #[cfg_attr(feature = "schema", schema(maximum = 3600))]
    pub restart_delay_s: u32,
    /// Seconds a task has to stop after SIGTERM before it is killed (at most an hour).
    #[serde(default = "swarm_default_stop_grace", deserialize_with = "lenient::whole_u32")]
    #[cfg_attr(feature = "schema", schema(maximum = 3600))]
    pub stop_grace_s: u32,
}

impl Default for SwarmSettings {
    fn default() -> SwarmSettings {
        SwarmSettings {
            publish_mode: PublishMode::default(),
            restart_delay_s: swarm_default_restart_delay(),
            stop_grace_s: swarm_default_stop_grace(),
        }
    }
}

fn swarm_default_restart_delay() -> u32 {
    5
}
fn swarm_default_stop_grace() -> u32 {
    10
}

/// The default EC2 instance type: small, general purpose, burstable, in every region.
pub const AWS_DEFAULT_INSTANCE_TYPE: &str = "t3.micro";
/// The default owner of the AMI looked up when none is given.
pub const AWS_DEFAULT_AMI_OWNER: &str = "amazon";
/// The default AMI name filter: Amazon's ECS-optimized Amazon Linux 2, which ships Docker.
pub const AWS_DEFAULT_AMI_NAME: &str = "amzn2-ami-ecs-hvm-*-x86_64-ebs";

/// The default CPU units of an `aws-ecs` task (a quarter vCPU, Fargate's smallest).
pub const AWS_DEFAULT_TASK_CPU: u32 = 256;
/// The default memory of an `aws-ecs` task, in MiB.
pub const AWS_DEFAULT_TASK_MEMORY_MB: u32 = 512;

/// Where and how a service runs on AWS (`provider: aws`), chosen when the service is created.
///
/// Nothing here is wide open by default: the service's ports accept only `allowed_cidrs`
/// (required; `0.0.0.0/0` only when asked for), and SSH (port 22) is opened only to
/// `ssh_cidrs` when some are given.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AwsSettings {
    /// e.g. `eu-west-3`.
    pub region: String,
    #[serde(default = "aws_default_instance_type")]
    pub instance_type: String,
    /// An explicit AMI id; when absent the newest image matching `ami_owner` and `ami_name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ami: Option<String>,
    #[serde(default = "aws_default_ami_owner")]
    pub ami_owner: String,
    #[serde(default = "aws_default_ami_name")]
    pub ami_name: String,
    /// An EC2 key pair for SSH.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_name: Option<String>,
    /// The subnet the instance is launched in (the default VPC's default subnet otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet_id: Option<String>,
    /// The VPC of the security group (the default VPC otherwise); must hold `subnet_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_id: Option<String>,
    /// The CIDRs allowed to reach the service's published ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_cidrs: Vec<String>,
    /// The CIDRs allowed to reach SSH (port 22); none by default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ssh_cidrs: Vec<String>,
    /// `aws-ecs`: CPU units of each task (1024 = one vCPU), a Fargate size with `task_memory_mb`.
    #[serde(default = "aws_default_task_cpu", deserialize_with = "lenient::whole_u32")]
    pub task_cpu: u32,
    /// `aws-ecs`: memory of each task in MiB.
    #[serde(default = "aws_default_task_memory", deserialize_with = "lenient::whole_u32")]
    pub task_memory_mb: u32,
}

impl AwsSettings {
    /// Settings with every default, in `region`.
    pub fn new(region: impl Into<String>) -> AwsSettings {
        AwsSettings {
            region: region.into(),
            instance_type: aws_default_instance_type(),
            ami: None,
            ami_owner: aws_default_ami_owner(),
            ami_name: aws_default_ami_name(),
            key_name: None,
            subnet_id: None,
            vpc_id: None,
            allowed_cidrs: Vec::new(),
            ssh_cidrs: Vec::new(),
            task_cpu: aws_default_task_cpu(),
            task_memory_mb: aws_default_task_memory(),
        }
    }
}

fn aws_default_instance_type() -> String {
    AWS_DEFAULT_INSTANCE_TYPE.to_owned()
}
fn aws_default_ami_owner() -> String {
    AWS_DEFAULT_AMI_OWNER.to_owned()
}
fn aws_default_task_cpu() -> u32 {
    AWS_DEFAULT_TASK_CPU
}
fn aws_default_task_memory() -> u32 {
    AWS_DEFAULT_TASK_MEMORY_MB
}
fn aws_default_ami_name() -> String {
    AWS_DEFAULT_AMI_NAME.to_owned()
}

#[cfg(test)]
mod tests {
    use super::SwarmSettings;

    #[test]
    fn swarm_seconds_are_whole_numbers_however_json_writes_them() {
        let s: SwarmSettings = serde_json::from_str(r#"{"restart_delay_s": 7.0, "stop_grace_s": 3}"#).expect("whole");
        assert_eq!((s.restart_delay_s, s.stop_grace_s), (7, 3));
        let err = serde_json::from_str::<SwarmSettings>(r#"{"stop_grace_s": 2.5}"#).expect_err("a fraction");
        assert!(err.to_string().contains("2.5 is not a whole number"), "{err}");
        assert!(serde_json::from_str::<SwarmSettings>(r#"{"stop_grace_s": -1}"#).is_err());
    }
}
