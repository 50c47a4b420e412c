//! The Swarm provider: a service's Swarm services, secrets and overlay network on a Docker Swarm
//! cluster, through a manager's Docker API (bollard), labelled with SpawnIt's ownership labels
//! exactly as the Docker provider labels containers, so observation finds them without state.
//!
//! A service is created and updated in place (`docker service update` with the version index
//! read just before, rolling `start-first`, rolled back by Swarm when the new tasks fail); the
//! provider waits until Swarm says the change converged (or rolled back, which fails the change
//! with Swarm's message). Observation reports, per Swarm service, the replica count, image and a
//! digest of the environment found in its spec (drift made with `docker service scale/update`),
//! and its tasks: running replicas against desired, and why pending tasks cannot be placed
//! (`no suitable node (…)`), as outputs shown by `show` and `status`.
//!
//! Secrets are immutable in Swarm: a new value is a new secret (its name carries a digest), and
//! the old one is removed by the update of the service that stopped using it. The overlay
//! network is the client's, shared by its Swarm services: it is labelled with the client and the
//! network, adopted by every service that needs it, and removed only when no service uses it.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine as _;
use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::models::{
    EndpointPortConfig, EndpointPortConfigProtocolEnum, EndpointPortConfigPublishModeEnum, EndpointSpec,
    EndpointSpecModeEnum, HealthConfig, Mount, MountTypeEnum, MountVolumeOptions, NetworkAttachmentConfig,
    NetworkCreateRequest, SecretSpec, Service, ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated,
    ServiceSpecRollbackConfig, ServiceSpecRollbackConfigFailureActionEnum, ServiceSpecRollbackConfigOrderEnum,
    ServiceSpecUpdateConfig, ServiceSpecUpdateConfigFailureActionEnum, ServiceSpecUpdateConfigOrderEnum,
    ServiceUpdateStatusStateEnum, TaskSpec, TaskSpecContainerSpec, TaskSpecContainerSpecFile,
    TaskSpecContainerSpecSecrets, TaskSpecPlacement, TaskSpecRestartPolicy, TaskSpecRestartPolicyConditionEnum,
    TaskState,
};
use bollard::query_parameters::{
    InspectNetworkOptions, InspectServiceOptions, ListSecretsOptions, ListServicesOptions, ListTasksOptions,
    UpdateServiceOptions,
};
use spawnit_engine::{Applied, Provider, ProviderError, Scope};
use spawnit_model::resource::{
    Address, DesiredResource, EndpointMode, Liveness, ObservedResource, ResourceAttrs, ResourceKind, SwarmNetworkAttrs,
    SwarmSecretAttrs, SwarmServiceAttrs, facts, labels,
};
use spawnit_model::spec::{Protocol, PublishMode};
use tokio_util::sync::CancellationToken;

use crate::{Message, foreign_owner, is_not_found, not_owned, op_error, scope_filter, scope_labels};

/// How long a create or update waits for Swarm to converge (tasks running, update completed).
pub const CONVERGE_WAIT: Duration = Duration::from_secs(90);

/// How long a removal waits for Swarm to let go of a network (tasks shutting down).
const RELEASE_WAIT: Duration = Duration::from_secs(60);

const POLL: Duration = Duration::from_millis(500);

/// Why a connection to a Swarm manager could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SwarmConnectError {
    #[error("swarm host {0:?} is not unix:///path, /path, tcp://host:port or https://host:port")]
    BadHost(String),
    #[error(
        "swarm TLS directory {dir}: {file} is missing (expected ca.pem, cert.pem and key.pem, as DOCKER_CERT_PATH)"
    )]
    TlsFile { dir: String, file: &'static str },
    #[error("connecting to the swarm manager at {host}")]
    Connect {
        host: String,
        #[source]
        source: DockerError,
    },
}

/// A Docker API client for a Swarm manager: `unix:///path` or a socket path, `tcp://host:port`
/// (plain HTTP), or with `tls_dir` (a `DOCKER_CERT_PATH` directory holding `ca.pem`, `cert.pem`
/// and `key.pem`) TLS with a client certificate. Connects lazily: nothing is sent yet.
pub fn swarm_connect(host: &str, tls_dir: Option<&Path>) -> Result<Docker, SwarmConnectError> {
    let connect = |source| SwarmConnectError::Connect { host: host.to_owned(), source };
    let timeout = 120;
    if let Some(path) = host.strip_prefix("unix://").or_else(|| host.starts_with('/').then_some(host)) {
        return Docker::connect_with_unix(path, timeout, bollard::API_DEFAULT_VERSION).map_err(connect);
    }
    let address = host
        .strip_prefix("tcp://")
        .or_else(|| host.strip_prefix("https://"))
        .or_else(|| host.strip_prefix("http://"))
        .filter(|a| !a.is_empty() && a.contains(':'))
        .ok_or_else(|| SwarmConnectError::BadHost(host.to_owned()))?;
    match tls_dir {
        None => Docker::connect_with_http(&format!("tcp://{address}"), timeout, bollard::API_DEFAULT_VERSION)
            .map_err(connect),
        Some(dir) => {
            let file = |name: &'static str| {
                let path = dir.join(name);
                if path.is_file() {
                    Ok(path)
                } else {
                    Err(SwarmConnectError::TlsFile { dir: dir.display().to_string(), file: name })
                }
            };
            let (ca, cert, key) = (file("ca.pem")?, file("cert.pem")?, file("key.pem")?);
            Docker::connect_with_ssl(
                &format!("tcp://{address}"),
                &key,
                &cert,
                &ca,
                timeout,
                bollard::API_DEFAULT_VERSION,
            )
            .map_err(connect)
        }
    }
}

/// The Swarm provider, over a manager's Docker API. It connects on first use, so a SpawnIt
/// configured with a manager that is down still serves its other providers.
#[derive(Clone)]
pub struct SwarmProvider {
    base: Docker,
    ready: std::sync::Arc<tokio::sync::OnceCell<Docker>>,
    host: String,
}

impl SwarmProvider {
    /// A provider for the manager at `host` ([`swarm_connect`]); nothing is sent until it is used.
    pub fn new(host: &str, tls_dir: Option<&Path>) -> Result<SwarmProvider, SwarmConnectError> {
        Ok(SwarmProvider { base: swarm_connect(host, tls_dir)?, ready: Default::default(), host: host.to_owned() })
    }

    /// Like [`SwarmProvider::new`], and connects at once: agrees on an API version and checks
    /// that the engine is a Swarm manager.
    pub async fn connect(host: &str, tls_dir: Option<&Path>) -> Result<SwarmProvider, ProviderError> {
        let provider = SwarmProvider::new(host, tls_dir).map_err(|e| ProviderError::Unavailable {
            what: format!("the Swarm manager at {host}"),
            source: Box::new(e),
        })?;
        provider.api().await?;
        Ok(provider)
    }

    /// The client, connected (version agreed, manager checked) the first time.
    async fn api(&self) -> Result<&Docker, ProviderError> {
        let unavailable = |e: Box<dyn std::error::Error + Send + Sync>| ProviderError::Unavailable {
            what: format!("the Swarm manager at {} (--swarm-host)", self.host),
            source: e,
        };
        self.ready
            .get_or_try_init(|| async {
                let docker = self.base.clone().negotiate_version().await.map_err(|e| unavailable(Box::new(e)))?;
                let info = docker.info().await.map_err(|e| unavailable(Box::new(e)))?;
                let control = info.swarm.as_ref().and_then(|s| s.control_available).unwrap_or(false);
                if !control {
                    return Err(unavailable(Box::new(Message(
                        "this Docker engine is not a Swarm manager (run docker swarm init there, or give a \
                         manager's address)"
                            .into(),
                    ))));
                }
                Ok(docker)
            })
            .await
    }

    /// The connected client once [`Self::api`] succeeded (every trait method calls it first).
    fn docker(&self) -> &Docker {
        self.ready.get().unwrap_or(&self.base)
    }

    pub fn host(&self) -> &str {
        &self.host
    }
}

fn nanos(seconds: u32) -> i64 {
    i64::from(seconds) * 1_000_000_000
}

/// An image reference without a `@sha256:…` pin (the Docker CLI pins what it resolves).
fn image_unpinned(image: &str) -> &str {
    image.split('@').next().unwrap_or(image)
}

/// The labels of a Swarm object of `scope`.
fn object_labels(scope: &Scope, address: &Address, fingerprint: &str) -> HashMap<String, String> {
    scope_labels(scope, address, fingerprint)
}

/// The labels of a client's overlay network: the client and the network, never a service (it
/// is shared by the client's services).
fn network_labels(scope: &Scope, address: &Address, fingerprint: &str) -> HashMap<String, String> {
    HashMap::from([
        (labels::CLIENT.to_owned(), scope.owner.client.to_string()),
        (labels::NETWORK.to_owned(), address.name.clone()),
        (labels::RESOURCE.to_owned(), address.to_string()),
        (labels::LINEAGE.to_owned(), scope.lineage.clone()),
        (labels::FINGERPRINT.to_owned(), fingerprint.to_owned()),
    ])
}

/// Whether a network's labels make it `scope`'s client's network `address`.
fn network_ours(scope: &Scope, address: &Address, l: &HashMap<String, String>) -> bool {
    l.get(labels::CLIENT).map(String::as_str) == Some(scope.owner.client.as_str())
        && l.get(labels::NETWORK) == Some(&address.name)
        && !l.contains_key(labels::SERVICE)
}

fn labelled_address(l: &HashMap<String, String>, kind: ResourceKind) -> Option<(Address, Option<String>)> {
    let address: Address = l.get(labels::RESOURCE)?.parse().ok()?;
    (address.kind == kind).then(|| (address, l.get(labels::FINGERPRINT).cloned()))
}

fn protocol(p: Protocol) -> EndpointPortConfigProtocolEnum {
    match p {
        Protocol::Tcp => EndpointPortConfigProtocolEnum::TCP,
        Protocol::Udp => EndpointPortConfigProtocolEnum::UDP,
    }
}

/// The env of a Swarm spec as a map.
fn env_map(env: &[String]) -> BTreeMap<String, String> {
    env.iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (kv.clone(), String::new()),
        })
        .collect()
}

/// The secret names a Swarm service spec mounts.
fn secret_names(spec: Option<&ServiceSpec>) -> Vec<String> {
    spec.and_then(|s| s.task_template.as_ref())
        .and_then(|t| t.container_spec.as_ref())
        .and_then(|c| c.secrets.as_ref())
        .map(|secrets| secrets.iter().filter_map(|s| s.secret_name.clone()).collect())
        .unwrap_or_default()
}

/// The label on a task's container spec: a digest of the task template SpawnIt wrote (the
/// service's attributes without the replica count, so a scale restarts nothing), telling the
/// tasks of the current spec from those of the previous one during a rolling update.
pub const TASK_LABEL: &str = "spawnit.task";

/// The task-template digest of a Swarm service's attributes.
fn task_digest(s: &SwarmServiceAttrs) -> String {
    spawnit_plan::fingerprint(&ResourceAttrs::SwarmService(SwarmServiceAttrs { replicas: 0, ..s.clone() }))
}

/// A service's tasks as counted by [`SwarmProvider::tasks_of`].
#[derive(Debug, Default)]
struct Tasks {
    running: u64,
    current: u64,
    stale: u64,
    unplaced: Option<String>,
}

/// How a change of a Swarm service ended, as Swarm reports it.
enum Converged {
    Done,
    /// Tasks cannot be placed: Swarm's reason.
    Unplaced(String),
    /// Still not converged when the wait ended: what is running.
    Waiting(String),
}

impl SwarmProvider {
    /// The Swarm spec of a service resource, with its secrets resolved to ids.
    async fn service_spec(
        &self,
        scope: &Scope,
        address: &Address,
        s: &SwarmServiceAttrs,
        fingerprint: &str,
        action: &'static str,
    ) -> Result<ServiceSpec, ProviderError> {
        let mut secrets = Vec::new();
        for f in &s.secrets {
            let found = self.docker().inspect_secret(&f.name).await.map_err(|e| op_error(action, address, e))?;
            secrets.push(TaskSpecContainerSpecSecrets {
                file: Some(TaskSpecContainerSpecFile {
                    name: Some(f.target.clone()),
                    uid: Some("0".into()),
                    gid: Some("0".into()),
                    mode: Some(0o444),
                }),
                secret_id: found.id,
                secret_name: Some(f.name.clone()),
            });
        }
        let labels = object_labels(scope, address, fingerprint);
        let mut task_labels: HashMap<String, String> =
            labels.iter().filter(|(k, _)| *k != labels::FINGERPRINT).map(|(k, v)| (k.clone(), v.clone())).collect();
        let mounts = s
            .mounts
            .iter()
            .map(|m| Mount {
                target: Some(m.path.clone()),
                source: Some(m.volume.clone()),
                typ: Some(MountTypeEnum::VOLUME),
                read_only: Some(m.read_only),
                volume_options: Some(MountVolumeOptions { labels: Some(task_labels.clone()), ..Default::default() }),
                ..Default::default()
            })
            .collect();
        task_labels.insert(TASK_LABEL.to_owned(), task_digest(s));
        let container = TaskSpecContainerSpec {
            image: Some(s.image.clone()),
            labels: Some(task_labels.clone()),
            command: s.entrypoint.clone(),
            args: (!s.command.is_empty()).then(|| s.command.clone()),
            env: Some(s.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            user: s.user.clone(),
            mounts: Some(mounts),
            stop_grace_period: Some(nanos(s.stop_grace_s)),
            health_check: s.health.as_ref().map(|h| HealthConfig {
                test: Some(std::iter::once("CMD".to_owned()).chain(h.command.iter().cloned()).collect()),
                interval: Some(nanos(h.interval_s)),
                timeout: Some(nanos(h.timeout_s)),
                retries: Some(i64::from(h.retries)),
                start_period: Some(nanos(h.start_period_s)),
                ..Default::default()
            }),
            secrets: Some(secrets),
            ..Default::default()
        };
        let ports = s
            .ports
            .iter()
            .map(|p| EndpointPortConfig {
                protocol: Some(protocol(p.protocol)),
                target_port: Some(i64::from(p.target)),
                published_port: Some(i64::from(p.published)),
                publish_mode: Some(match p.mode {
                    PublishMode::Ingress => EndpointPortConfigPublishModeEnum::INGRESS,
                    PublishMode::Host => EndpointPortConfigPublishModeEnum::HOST,
                }),
                ..Default::default()
            })
            .collect();
        Ok(ServiceSpec {
            name: Some(s.name.clone()),
            labels: Some(labels),
            task_template: Some(TaskSpec {
                container_spec: Some(container),
                restart_policy: Some(TaskSpecRestartPolicy {
                    condition: Some(TaskSpecRestartPolicyConditionEnum::ANY),
                    delay: Some(nanos(s.restart_delay_s)),
                    max_attempts: Some(0),
                    window: None,
                }),
                placement: Some(TaskSpecPlacement { constraints: Some(s.constraints.clone()), ..Default::default() }),
                networks: Some(vec![NetworkAttachmentConfig {
                    target: Some(s.network.clone()),
                    aliases: Some(s.aliases.clone()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            mode: Some(ServiceSpecMode {
                replicated: Some(ServiceSpecModeReplicated { replicas: Some(i64::from(s.replicas)) }),
                ..Default::default()
            }),
            update_config: Some(ServiceSpecUpdateConfig {
                parallelism: Some(1),
                delay: Some(0),
                failure_action: Some(ServiceSpecUpdateConfigFailureActionEnum::ROLLBACK),
                monitor: Some(nanos(5)),
                max_failure_ratio: Some(0.0),
                order: Some(ServiceSpecUpdateConfigOrderEnum::START_FIRST),
            }),
            rollback_config: Some(ServiceSpecRollbackConfig {
                parallelism: Some(1),
                delay: Some(0),
                failure_action: Some(ServiceSpecRollbackConfigFailureActionEnum::PAUSE),
                monitor: Some(nanos(5)),
                max_failure_ratio: Some(0.0),
                order: Some(ServiceSpecRollbackConfigOrderEnum::START_FIRST),
            }),
            endpoint_spec: Some(EndpointSpec {
                mode: Some(match s.endpoint_mode {
                    EndpointMode::Vip => EndpointSpecModeEnum::VIP,
                    EndpointMode::Dnsrr => EndpointSpecModeEnum::DNSRR,
                }),
                ports: Some(ports),
            }),
            ..Default::default()
        })
    }

    async fn service_inspect(&self, name_or_id: &str) -> Result<Option<Service>, DockerError> {
        match self.docker().inspect_service(name_or_id, None::<InspectServiceOptions>).await {
            Ok(s) => Ok(Some(s)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The tasks of a service: how many run (as Swarm wants them to), how many of those run the
    /// task spec `want` (task label and image), how many containers of other task specs still
    /// run (shutting down), and the reason Swarm gives for pending ones.
    async fn tasks_of(&self, service_id: &str, want: Option<(&str, &str)>) -> Result<Tasks, DockerError> {
        let filters = HashMap::from([("service".to_owned(), vec![service_id.to_owned()])]);
        let tasks = self.docker().list_tasks(Some(ListTasksOptions { filters: Some(filters) })).await?;
        let mut out = Tasks::default();
        for t in tasks {
            let wanted = t.desired_state == Some(TaskState::RUNNING);
            let container = t.spec.as_ref().and_then(|s| s.container_spec.as_ref());
            let current = want.is_none_or(|(label, image)| {
                container.is_some_and(|c| {
                    c.labels.as_ref().and_then(|l| l.get(TASK_LABEL)).map(String::as_str) == Some(label)
                        && c.image.as_deref().map(image_unpinned) == Some(image)
                })
            });
            let status = t.status.unwrap_or_default();
            match status.state {
                Some(TaskState::RUNNING) if wanted && current => {
                    out.running += 1;
                    out.current += 1;
                }
                Some(TaskState::RUNNING) if wanted => out.running += 1,
                Some(TaskState::RUNNING) => out.stale += 1,
                Some(TaskState::PENDING) if wanted => {
                    if let Some(err) = status.err.filter(|e| !e.is_empty()) {
                        out.unplaced = Some(err);
                    }
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// The error of the service's most recent failed or rejected task, as Swarm reports it.
    async fn task_error(&self, service_id: &str) -> Option<String> {
        let filters = HashMap::from([("service".to_owned(), vec![service_id.to_owned()])]);
        let tasks = self.docker().list_tasks(Some(ListTasksOptions { filters: Some(filters) })).await.ok()?;
        tasks
            .into_iter()
            .filter_map(|t| {
                let status = t.status?;
                let err = status.err.filter(|e| !e.is_empty())?;
                Some((status.timestamp.map(|t| t.to_string()).unwrap_or_default(), err))
            })
            .max()
            .map(|(_, err)| err)
    }

    /// Waits until the service's tasks all run its current spec (`s`) and no task of an older
    /// spec still runs; a rollback Swarm started since `prior` (the update status's start before
    /// the change) is an error.
    async fn converge(
        &self,
        address: &Address,
        id: &str,
        s: &SwarmServiceAttrs,
        prior: Option<String>,
        action: &'static str,
        cancel: &CancellationToken,
    ) -> Result<Converged, ProviderError> {
        let started = Instant::now();
        let replicas = s.replicas;
        let digest = task_digest(s);
        loop {
            let service = self
                .service_inspect(id)
                .await
                .map_err(|e| op_error(action, address, e))?
                .ok_or_else(|| op_error(action, address, Message(format!("service {id} disappeared"))))?;
            // Only an update started by this change counts (the last one's status stays).
            let update =
                service.update_status.as_ref().filter(|u| u.started_at.clone().map(|t| t.to_string()) != prior);
            let state = update.and_then(|u| u.state);
            let message = update.and_then(|u| u.message.clone()).unwrap_or_default();
            match state {
                Some(ServiceUpdateStatusStateEnum::ROLLBACK_COMPLETED)
                | Some(ServiceUpdateStatusStateEnum::ROLLBACK_PAUSED)
                | Some(ServiceUpdateStatusStateEnum::ROLLBACK_STARTED) => {
                    return Err(op_error(action, address, Message(format!("Swarm rolled the update back: {message}"))));
                }
                Some(ServiceUpdateStatusStateEnum::PAUSED) => {
                    return Err(op_error(action, address, Message(format!("Swarm paused the update: {message}"))));
                }
                _ => {}
            }
            let tasks = self.tasks_of(id, Some((&digest, &s.image))).await.map_err(|e| op_error(action, address, e))?;
            let (running, unplaced) = (tasks.current, tasks.unplaced);
            if tasks.current == u64::from(replicas) && tasks.running == tasks.current && tasks.stale == 0 {
                return Ok(Converged::Done);
            }
            if let Some(reason) = unplaced.filter(|r| r.contains("no suitable node")) {
                return Ok(Converged::Unplaced(reason));
            }
            if cancel.is_cancelled() {
                return Ok(Converged::Waiting(format!("{running}/{replicas} running")));
            }
            if started.elapsed() > CONVERGE_WAIT {
                let why = match self.task_error(id).await {
                    Some(error) => format!("the last task failed: {error}"),
                    None => "its tasks are still starting".to_owned(),
                };
                return Err(op_error(
                    action,
                    address,
                    Message(format!(
                        "{running}/{replicas} tasks running after {} s ({why}); Swarm keeps trying",
                        CONVERGE_WAIT.as_secs()
                    )),
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    fn converged_outputs(converged: Converged, replicas: u32) -> BTreeMap<String, String> {
        let strip = |k: &str| k.strip_prefix(facts::OUTPUT_PREFIX).unwrap_or(k).to_owned();
        match converged {
            Converged::Done => BTreeMap::from([(strip(facts::TASKS), format!("{replicas}/{replicas} running"))]),
            Converged::Unplaced(reason) => BTreeMap::from([
                (strip(facts::TASKS), format!("0/{replicas} running")),
                (strip(facts::UNPLACED), reason),
            ]),
            Converged::Waiting(tasks) => BTreeMap::from([(strip(facts::TASKS), tasks)]),
        }
    }

    /// Fails with [`ProviderError::NotOwned`] when a Swarm object's labels name another owner.
    fn owned(
        scope: &Scope,
        action: &'static str,
        address: &Address,
        kind: &'static str,
        name: &str,
        l: &HashMap<String, String>,
    ) -> Result<(), ProviderError> {
        match foreign_owner(scope, l) {
            Some(owner) => Err(not_owned(scope, action, address, kind, name, owner)),
            None => Ok(()),
        }
    }

    async fn service_create(
        &self,
        scope: &Scope,
        address: &Address,
        s: &SwarmServiceAttrs,
        fingerprint: &str,
        cancel: &CancellationToken,
    ) -> Result<Applied, ProviderError> {
        if let Some(found) = self.service_inspect(&s.name).await.map_err(|e| op_error("create", address, e))? {
            let l = found.spec.as_ref().and_then(|s| s.labels.clone()).unwrap_or_default();
            Self::owned(scope, "create", address, "swarm service", &s.name, &l)?;
            // Ours (a create interrupted before its state was written): bring it to the spec.
            let id = found.id.unwrap_or_default();
            return self.service_update(scope, address, s, &id, fingerprint, cancel).await;
        }
        let spec = self.service_spec(scope, address, s, fingerprint, "create").await?;
        let created = self.docker().create_service(spec, None).await.map_err(|e| op_error("create", address, e))?;
        let id = created.id.unwrap_or_default();
        let converged = self.converge(address, &id, s, None, "create", cancel).await?;
        Ok(Applied::new(id, Self::converged_outputs(converged, s.replicas)))
    }

    async fn service_update(
        &self,
        scope: &Scope,
        address: &Address,
        s: &SwarmServiceAttrs,
        id: &str,
        fingerprint: &str,
        cancel: &CancellationToken,
    ) -> Result<Applied, ProviderError> {
        let found = self
            .service_inspect(id)
            .await
            .map_err(|e| op_error("update", address, e))?
            .ok_or_else(|| op_error("update", address, Message(format!("swarm service {id} no longer exists"))))?;
        let l = found.spec.as_ref().and_then(|s| s.labels.clone()).unwrap_or_default();
        Self::owned(scope, "update", address, "swarm service", &s.name, &l)?;
        let before = secret_names(found.spec.as_ref());
        let prior = found.update_status.as_ref().and_then(|u| u.started_at.clone()).map(|t| t.to_string());
        let version = found.version.as_ref().and_then(|v| v.index).unwrap_or_default();
        let mut spec = self.service_spec(scope, address, s, fingerprint, "update").await?;
        // Keep Swarm's force counter: the update rolls tasks only where the task spec changed.
        if let Some(task) = spec.task_template.as_mut() {
            let previous = found.spec.as_ref().and_then(|s| s.task_template.as_ref()).and_then(|t| t.force_update);
            task.force_update = previous;
        }
        let options = UpdateServiceOptions { version: version as i32, ..Default::default() };
        self.docker().update_service(id, spec, options, None).await.map_err(|e| op_error("update", address, e))?;
        let converged = self.converge(address, id, s, prior, "update", cancel).await?;
        // The secrets this service stopped using go, unless another service uses them.
        let now: Vec<&String> = s.secrets.iter().map(|f| &f.name).collect();
        for old in before.iter().filter(|old| !now.contains(old)) {
            self.secret_release(scope, old).await;
        }
        Ok(Applied::new(id.to_owned(), Self::converged_outputs(converged, s.replicas)))
    }

    /// Removes a secret of `scope` that a service stopped using, if no service uses it any more
    /// (best effort: one left behind is found by its labels and removed by the next apply).
    async fn secret_release(&self, scope: &Scope, name: &str) {
        let Ok(secret) = self.docker().inspect_secret(name).await else { return };
        let l = secret.spec.as_ref().and_then(|s| s.labels.clone()).unwrap_or_default();
        if foreign_owner(scope, &l).is_some() {
            return;
        }
        if let Err(e) = self.docker().delete_secret(name).await {
            tracing::debug!("swarm: secret {name} kept for now: {e}");
        }
    }

    async fn network_create(
        &self,
        scope: &Scope,
        address: &Address,
        n: &SwarmNetworkAttrs,
        fingerprint: &str,
    ) -> Result<String, ProviderError> {
        match self.docker().inspect_network(&n.name, None::<InspectNetworkOptions>).await {
            Ok(found) => {
                let l = found.labels.unwrap_or_default();
                if !network_ours(scope, address, &l) {
                    let owner = foreign_owner(scope, &l).unwrap_or_else(|| "another owner".into());
                    return Err(not_owned(scope, "create", address, "network", &n.name, owner));
                }
                // The client's network, created for another of its services: shared.
                return Ok(found.id.unwrap_or_default());
            }
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(op_error("create", address, e)),
        }
        let request = NetworkCreateRequest {
            name: n.name.clone(),
            driver: Some("overlay".into()),
            attachable: Some(n.attachable),
            labels: Some(network_labels(scope, address, fingerprint)),
            ..Default::default()
        };
        let created = self.docker().create_network(request).await.map_err(|e| op_error("create", address, e))?;
        Ok(created.id)
    }

    async fn secret_create(
        &self,
        scope: &Scope,
        address: &Address,
        s: &SwarmSecretAttrs,
        fingerprint: &str,
    ) -> Result<String, ProviderError> {
        match self.docker().inspect_secret(&s.name).await {
            Ok(found) => {
                let l = found.spec.as_ref().and_then(|s| s.labels.clone()).unwrap_or_default();
                Self::owned(scope, "create", address, "swarm secret", &s.name, &l)?;
                return Ok(found.id.unwrap_or_default());
            }
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(op_error("create", address, e)),
        }
        let spec = SecretSpec {
            name: Some(s.name.clone()),
            labels: Some(object_labels(scope, address, fingerprint)),
            data: Some(base64::engine::general_purpose::STANDARD.encode(s.data.as_bytes())),
            ..Default::default()
        };
        let created = self.docker().create_secret(spec).await.map_err(|e| op_error("create", address, e))?;
        Ok(created.id)
    }

    /// Whether any Swarm service (of anyone) is attached to the network `id`.
    async fn network_used(&self, id: &str, name: &str) -> Result<bool, DockerError> {
        let services = self.docker().list_services(None::<ListServicesOptions>).await?;
        Ok(services.iter().any(|s| {
            let spec = s.spec.as_ref();
            let attached = spec
                .and_then(|s| s.task_template.as_ref())
                .and_then(|t| t.networks.as_ref())
                .into_iter()
                .chain(spec.and_then(|s| s.networks.as_ref()))
                .flatten();
            attached.into_iter().any(|n| n.target.as_deref().is_some_and(|t| t == id || t == name))
        }))
    }

    async fn network_delete(&self, scope: &Scope, address: &Address, id: &str) -> Result<(), ProviderError> {
        let found = match self.docker().inspect_network(id, None::<InspectNetworkOptions>).await {
            Ok(found) => found,
            Err(e) if is_not_found(&e) => return Ok(()),
            Err(e) => return Err(op_error("delete", address, e)),
        };
        let name = found.name.clone().unwrap_or_default();
        let l = found.labels.unwrap_or_default();
        if !network_ours(scope, address, &l) {
            let owner = foreign_owner(scope, &l).unwrap_or_else(|| "another owner".into());
            return Err(not_owned(scope, "delete", address, "network", &name, owner));
        }
        let started = Instant::now();
        loop {
            // Another service of the client still on it: it stays, theirs.
            if self.network_used(id, &name).await.map_err(|e| op_error("delete", address, e))? {
                return Ok(());
            }
            match self.docker().remove_network(id).await {
                Ok(()) => break,
                Err(e) if is_not_found(&e) => return Ok(()),
                // Tasks of a removed service still shutting down hold it for a moment.
                Err(e) if started.elapsed() < RELEASE_WAIT => {
                    tracing::debug!("swarm: network {name} not removable yet: {e}");
                    tokio::time::sleep(POLL).await;
                }
                Err(e) => return Err(op_error("delete", address, e)),
            }
        }
        // Removed from the cluster; the manager's own copy goes once the tasks of removed
        // services have left it (their stop grace period).
        while started.elapsed() < RELEASE_WAIT {
            match self.docker().inspect_network(id, None::<InspectNetworkOptions>).await {
                Err(e) if is_not_found(&e) => break,
                _ => tokio::time::sleep(POLL).await,
            }
        }
        Ok(())
    }

    /// Waits until no task of a removed service is left running (its containers gone).
    async fn service_gone(&self, id: &str) {
        let started = Instant::now();
        while started.elapsed() < RELEASE_WAIT {
            let filters = HashMap::from([("service".to_owned(), vec![id.to_owned()])]);
            match self.docker().list_tasks(Some(ListTasksOptions { filters: Some(filters) })).await {
                Ok(tasks)
                    if tasks.iter().all(|t| {
                        !matches!(
                            t.status.as_ref().and_then(|s| s.state),
                            Some(
                                TaskState::RUNNING
                                    | TaskState::STARTING
                                    | TaskState::PREPARING
                                    | TaskState::ASSIGNED
                                    | TaskState::ACCEPTED
                                    | TaskState::READY
                            )
                        )
                    }) =>
                {
                    return;
                }
                Err(_) => return,
                Ok(_) => tokio::time::sleep(POLL).await,
            }
        }
    }
}

#[async_trait]
impl Provider for SwarmProvider {
    async fn observe(
        &self,
        scope: &Scope,
        desired: &[DesiredResource],
    ) -> Result<Vec<ObservedResource>, ProviderError> {
        self.api().await?;
        let observe_error = |e: DockerError| ProviderError::Observe {
            what: format!("{} on the Swarm manager {}", scope.owner, self.host),
            source: Box::new(e),
        };
        let mut out = Vec::new();
        let filters = scope_filter(scope);
        let options = ListServicesOptions { filters: Some(filters.clone()), status: Some(true) };
        for service in self.docker().list_services(Some(options)).await.map_err(observe_error)? {
            let Some(spec) = service.spec.as_ref() else { continue };
            let l = spec.labels.clone().unwrap_or_default();
            let Some((address, fingerprint)) = labelled_address(&l, ResourceKind::SwarmService) else { continue };
            let id = service.id.clone().unwrap_or_default();
            let container = spec.task_template.as_ref().and_then(|t| t.container_spec.as_ref());
            let replicas = spec.mode.as_ref().and_then(|m| m.replicated.as_ref()).and_then(|r| r.replicas);
            let mut facts = BTreeMap::new();
            if let Some(name) = &spec.name {
                facts.insert(facts::NAME.to_owned(), name.clone());
            }
            if let Some(replicas) = replicas {
                facts.insert(facts::REPLICAS.to_owned(), replicas.to_string());
            }
            if let Some(image) = container.and_then(|c| c.image.as_deref()) {
                facts.insert(facts::IMAGE.to_owned(), image_unpinned(image).to_owned());
            }
            let env = env_map(container.and_then(|c| c.env.as_deref()).unwrap_or_default());
            facts.insert(facts::ENV_DIGEST.to_owned(), spawnit_plan::env_digest(&env));
            let tasks = self.tasks_of(&id, None).await.map_err(observe_error)?;
            let desired_count = replicas.unwrap_or_default();
            facts.insert(facts::TASKS.to_owned(), format!("{}/{desired_count} running", tasks.running));
            if let Some(reason) = tasks.unplaced {
                facts.insert(facts::UNPLACED.to_owned(), reason);
            }
            out.push(ObservedResource { address, id, liveness: Liveness::Running, fingerprint, facts });
        }
        let options = ListSecretsOptions { filters: Some(filters) };
        for secret in self.docker().list_secrets(Some(options)).await.map_err(observe_error)? {
            let l = secret.spec.as_ref().and_then(|s| s.labels.clone()).unwrap_or_default();
            let Some((address, fingerprint)) = labelled_address(&l, ResourceKind::SwarmSecret) else { continue };
            let mut facts = BTreeMap::new();
            if let Some(name) = secret.spec.as_ref().and_then(|s| s.name.clone()) {
                facts.insert(facts::NAME.to_owned(), name);
            }
            out.push(ObservedResource {
                address,
                id: secret.id.unwrap_or_default(),
                liveness: Liveness::Present,
                fingerprint,
                facts,
            });
        }
        // The client's network is shared: found by its name, not by the service's labels.
        for r in desired {
            let ResourceAttrs::SwarmNetwork(n) = &r.attrs else { continue };
            match self.docker().inspect_network(&n.name, None::<InspectNetworkOptions>).await {
                Ok(found) => {
                    let l = found.labels.clone().unwrap_or_default();
                    if !network_ours(scope, &r.address, &l) {
                        continue;
                    }
                    out.push(ObservedResource {
                        address: r.address.clone(),
                        id: found.id.unwrap_or_default(),
                        liveness: Liveness::Present,
                        fingerprint: l.get(labels::FINGERPRINT).cloned(),
                        facts: BTreeMap::from([(facts::NAME.to_owned(), n.name.clone())]),
                    });
                }
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(observe_error(e)),
            }
        }
        Ok(out)
    }

    async fn create(
        &self,
        scope: &Scope,
        resource: &DesiredResource,
        fingerprint: &str,
        cancel: &CancellationToken,
    ) -> Result<Applied, ProviderError> {
        self.api().await?;
        let address = &resource.address;
        match &resource.attrs {
            ResourceAttrs::SwarmService(s) => self.service_create(scope, address, s, fingerprint, cancel).await,
            ResourceAttrs::SwarmNetwork(n) => Ok(self.network_create(scope, address, n, fingerprint).await?.into()),
            ResourceAttrs::SwarmSecret(s) => Ok(self.secret_create(scope, address, s, fingerprint).await?.into()),
            _ => Err(op_error("create", address, Message("not a Swarm resource".into()))),
        }
    }

    /// A Swarm service's update: a rolling service update to the new spec.
    async fn update(
        &self,
        scope: &Scope,
        resource: &DesiredResource,
        id: &str,
        fingerprint: &str,
        cancel: &CancellationToken,
    ) -> Result<Applied, ProviderError> {
        self.api().await?;
        let address = &resource.address;
        match &resource.attrs {
            ResourceAttrs::SwarmService(s) => self.service_update(scope, address, s, id, fingerprint, cancel).await,
            _ => Err(op_error("update", address, Message("only Swarm services are updated in place".into()))),
        }
    }

    async fn delete(
        &self,
        scope: &Scope,
        address: &Address,
        id: &str,
        _cancel: &CancellationToken,
    ) -> Result<(), ProviderError> {
        self.api().await?;
        match address.kind {
            ResourceKind::SwarmService => {
                let Some(found) = self.service_inspect(id).await.map_err(|e| op_error("delete", address, e))? else {
                    return Ok(());
                };
                let spec = found.spec.as_ref();
                let l = spec.and_then(|s| s.labels.clone()).unwrap_or_default();
                let name = spec.and_then(|s| s.name.clone()).unwrap_or_default();
                Self::owned(scope, "delete", address, "swarm service", &name, &l)?;
                match self.docker().delete_service(id).await {
                    Err(e) if !is_not_found(&e) => return Err(op_error("delete", address, e)),
                    _ => {}
                }
                self.service_gone(id).await;
                Ok(())
            }
            ResourceKind::SwarmSecret => {
                let found = match self.docker().inspect_secret(id).await {
                    Ok(found) => found,
                    Err(e) if is_not_found(&e) => return Ok(()),
                    Err(e) => return Err(op_error("delete", address, e)),
                };
                let l = found.spec.as_ref().and_then(|s| s.labels.clone()).unwrap_or_default();
                let name = found.spec.as_ref().and_then(|s| s.name.clone()).unwrap_or_default();
                Self::owned(scope, "delete", address, "swarm secret", &name, &l)?;
                match self.docker().delete_secret(id).await {
                    Ok(()) => Ok(()),
                    Err(e) if is_not_found(&e) => Ok(()),
                    // Still mounted by a service about to be updated: that update removes it.
                    Err(e) if e.to_string().contains("in use") => Ok(()),
                    Err(e) => Err(op_error("delete", address, e)),
                }
            }
            ResourceKind::SwarmNetwork => self.network_delete(scope, address, id).await,
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_parsed_and_tls_files_named() {
        assert!(matches!(swarm_connect("ftp://x", None), Err(SwarmConnectError::BadHost(_))));
        assert!(matches!(swarm_connect("tcp://", None), Err(SwarmConnectError::BadHost(_))));
        assert!(swarm_connect("tcp://127.0.0.1:2375", None).is_ok());
        assert!(swarm_connect("unix:///var/run/docker.sock", None).is_ok());
        let dir = std::env::temp_dir().join(format!("spawnit-swarm-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let e = swarm_connect("tcp://127.0.0.1:2376", Some(&dir)).unwrap_err();
        assert!(e.to_string().contains("ca.pem is missing"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn env_and_images_are_read_back() {
        let env = env_map(&["A=1".into(), "B=x=y".into()]);
        assert_eq!(env, BTreeMap::from([("A".into(), "1".into()), ("B".into(), "x=y".into())]));
        assert_eq!(image_unpinned("redis:7@sha256:abc"), "redis:7");
    }
}
