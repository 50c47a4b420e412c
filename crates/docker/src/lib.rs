//! The Docker provider: observes, creates, starts and deletes networks, volumes, images and
//! containers on a Docker engine through its API (bollard), labelling everything it creates with
//! SpawnIt's ownership labels so observation finds it again without state.
//!
//! Before it creates, starts or deletes a named object it reads the labels of whatever already
//! has that name or id: an object whose labels name another owner (or none) is refused with
//! [`ProviderError::NotOwned`], never adopted. Docker's volume create returns an existing volume
//! silently, so the labels of what it returns are checked too.

use std::collections::HashMap;

use async_trait::async_trait;
use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::models::{
    ContainerCreateBody, ContainerStateStatusEnum, ContainerSummaryStateEnum, EndpointSettings, HealthConfig,
    HostConfig, Mount, MountTypeEnum, NetworkCreateRequest, NetworkingConfig, PortBinding, RestartPolicy,
    RestartPolicyNameEnum, VolumeCreateOptions,
};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, ListContainersOptions, ListNetworksOptions, ListVolumesOptions,
    LogsOptions, RemoveContainerOptions, RemoveVolumeOptions, StopContainerOptions,
};
use futures::StreamExt;
use spawnit_engine::{Applied, Provider, ProviderError, Scope};
use spawnit_model::resource::{
    Address, ContainerAttrs, DOCKER_SOCKET, DesiredResource, Liveness, ObservedResource, ResourceAttrs, ResourceKind,
    facts, labels,
};
use spawnit_model::{Id, Owner, OwnerKey};
use tokio_util::sync::CancellationToken;

mod balancer;
mod stats;
mod swarm;

pub use balancer::HEALTH_WAIT;
pub use stats::cpu_percent;
pub use swarm::{CONVERGE_WAIT, SwarmConnectError, SwarmProvider, swarm_connect};

/// A plain error message as an error source.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Message(pub String);

/// The Docker provider.
#[derive(Clone)]
pub struct DockerProvider {
    docker: Docker,
}

impl DockerProvider {
    /// Connects to the engine named by `DOCKER_HOST`, or the local socket, and agrees on an API
    /// version with it.
    pub async fn connect() -> Result<DockerProvider, ProviderError> {
        let unavailable = |e: DockerError| ProviderError::Unavailable {
            what: "the Docker engine (is it running? is DOCKER_HOST right?)".into(),
            source: Box::new(e),
        };
        let docker = Docker::connect_with_defaults().map_err(unavailable)?;
        let docker = docker.negotiate_version().await.map_err(unavailable)?;
        docker.ping().await.map_err(unavailable)?;
        Ok(DockerProvider { docker })
    }

    pub fn client(&self) -> &Docker {
        &self.docker
    }
}

/// The label filter selecting everything a scope owns.
fn scope_filter(scope: &Scope) -> HashMap<String, Vec<String>> {
    let mut wanted = vec![format!("{}={}", labels::CLIENT, scope.owner.client)];
    wanted.push(match &scope.owner.owner {
        Owner::Service(s) => format!("{}={s}", labels::SERVICE),
        Owner::Network(n) => format!("{}={n}", labels::NETWORK),
    });
    HashMap::from([("label".to_owned(), wanted)])
}

/// The labels a created resource carries.
fn scope_labels(scope: &Scope, address: &Address, fingerprint: &str) -> HashMap<String, String> {
    let mut out = HashMap::from([
        (labels::CLIENT.to_owned(), scope.owner.client.to_string()),
        (labels::RESOURCE.to_owned(), address.to_string()),
        (labels::LINEAGE.to_owned(), scope.lineage.clone()),
        (labels::FINGERPRINT.to_owned(), fingerprint.to_owned()),
    ]);
    match &scope.owner.owner {
        Owner::Service(s) => out.insert(labels::SERVICE.to_owned(), s.to_string()),
        Owner::Network(n) => out.insert(labels::NETWORK.to_owned(), n.to_string()),
    };
    out
}

/// The owner a resource's labels name.
fn owner_of(l: &HashMap<String, String>) -> Option<OwnerKey> {
    let client = Id::parse(l.get(labels::CLIENT)?).ok()?;
    if let Some(s) = l.get(labels::SERVICE) {
        return Some(OwnerKey::service(&client, &Id::parse(s).ok()?));
    }
    Some(OwnerKey::network(&client, &Id::parse(l.get(labels::NETWORK)?).ok()?))
}

/// Who the labels of an object name, when that is not `scope`'s owner: `None` when the object
/// is the scope's own.
fn foreign_owner(scope: &Scope, l: &HashMap<String, String>) -> Option<String> {
    match owner_of(l) {
        Some(owner) if owner == scope.owner => None,
        Some(owner) => Some(owner.to_string()),
        None if l.contains_key(labels::CLIENT) => Some(format!(
            "client {:?} with unreadable service/network labels",
            l.get(labels::CLIENT).map(String::as_str).unwrap_or_default()
        )),
        None => Some("nobody (it carries no SpawnIt labels)".to_owned()),
    }
}

fn not_owned(
    scope: &Scope,
    action: &'static str,
    address: &Address,
    kind: &'static str,
    name: &str,
    owner: String,
) -> ProviderError {
    ProviderError::NotOwned {
        action,
        address: address.clone(),
        kind,
        name: name.to_owned(),
        owner,
        scope: scope.owner.clone(),
    }
}

fn is_not_found(e: &DockerError) -> bool {
    matches!(e, DockerError::DockerResponseServerError { status_code: 404, .. })
}

fn labelled(
    address_kind: ResourceKind,
    labels_of: Option<&HashMap<String, String>>,
) -> Option<(Address, Option<String>)> {
    let l = labels_of?;
    let address: Address = l.get(labels::RESOURCE)?.parse().ok()?;
    (address.kind == address_kind).then(|| (address, l.get(labels::FINGERPRINT).cloned()))
}

fn op_error(
    action: &'static str,
    address: &Address,
    e: impl std::error::Error + Send + Sync + 'static,
) -> ProviderError {
    ProviderError::Operation { action, address: address.clone(), source: Box::new(e) }
}

/// The group owning the engine's socket as this process sees it (the same host when SpawnIt
/// talks to the local engine, as a deployed SpawnIt does through the bound socket); `None`
/// when there is no such file here.
fn docker_socket_group() -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(DOCKER_SOCKET).ok().map(|m| m.gid())
}

impl DockerProvider {
    async fn container_create(
        &self,
        scope: &Scope,
        address: &Address,
        c: &ContainerAttrs,
        fingerprint: &str,
    ) -> Result<String, ProviderError> {
        let mut port_bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
        let mut exposed: HashMap<String, HashMap<(), ()>> = HashMap::new();
        for p in &c.ports {
            let key = format!("{}/{}", p.container, p.protocol.as_str());
            exposed.insert(key.clone(), HashMap::new());
            port_bindings
                .entry(key)
                .or_insert_with(|| Some(Vec::new()))
                .get_or_insert_with(Vec::new)
                .push(PortBinding { host_ip: Some(p.host_ip.clone()), host_port: Some(p.host.to_string()) });
        }
        let mut mounts: Vec<Mount> = c
            .mounts
            .iter()
            .map(|m| Mount {
                target: Some(m.path.clone()),
                source: Some(m.volume.clone()),
                typ: Some(MountTypeEnum::VOLUME),
                read_only: Some(m.read_only),
                ..Default::default()
            })
            .collect();
        // Only an admin-only template renders this (SpawnIt deploying itself): the engine's
        // socket, and its group so that the image's non-root user may use it.
        let mut group_add = None;
        if c.docker_socket {
            mounts.push(Mount {
                target: Some(DOCKER_SOCKET.to_owned()),
                source: Some(DOCKER_SOCKET.to_owned()),
                typ: Some(MountTypeEnum::BIND),
                ..Default::default()
            });
            group_add = docker_socket_group().map(|gid| vec![gid.to_string()]);
        }
        let seconds = |s: u32| i64::from(s) * 1_000_000_000;
        let body = ContainerCreateBody {
            image: Some(c.image.clone()),
            entrypoint: c.entrypoint.clone(),
            cmd: (!c.command.is_empty()).then(|| c.command.clone()),
            env: Some(c.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            user: c.user.clone(),
            labels: Some(scope_labels(scope, address, fingerprint)),
            exposed_ports: Some(exposed),
            healthcheck: c.health.as_ref().map(|h| HealthConfig {
                test: Some(std::iter::once("CMD".to_owned()).chain(h.command.iter().cloned()).collect()),
                interval: Some(seconds(h.interval_s)),
                timeout: Some(seconds(h.timeout_s)),
                retries: Some(i64::from(h.retries)),
                start_period: Some(seconds(h.start_period_s)),
                ..Default::default()
            }),
            host_config: Some(HostConfig {
                port_bindings: Some(port_bindings),
                mounts: Some(mounts),
                group_add,
                network_mode: Some(c.network.clone()),
                restart_policy: Some(RestartPolicy {
                    name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                    maximum_retry_count: None,
                }),
                ..Default::default()
            }),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    c.network.clone(),
                    EndpointSettings { aliases: Some(c.aliases.clone()), ..Default::default() },
                )])),
            }),
            ..Default::default()
        };
        let options = CreateContainerOptions { name: Some(c.name.clone()), ..Default::default() };
        let created =
            self.docker.create_container(Some(options), body).await.map_err(|e| op_error("create", address, e))?;
        self.container_start(address, &created.id).await?;
        Ok(created.id)
    }

    /// Starts a container and checks it did not exit at once (reporting its last log lines).
    async fn container_start(&self, address: &Address, id: &str) -> Result<(), ProviderError> {
        self.docker
            .start_container(id, None::<bollard::query_parameters::StartContainerOptions>)
            .await
            .map_err(|e| op_error("start", address, e))?;
        let inspect = self
            .docker
            .inspect_container(id, None::<bollard::query_parameters::InspectContainerOptions>)
            .await
            .map_err(|e| op_error("start", address, e))?;
        let state = inspect.state.unwrap_or_default();
        if state.status == Some(ContainerStateStatusEnum::EXITED)
            || state.status == Some(ContainerStateStatusEnum::DEAD)
        {
            let logs = self.logs_tail(id, 5).await;
            return Err(op_error(
                "start",
                address,
                Message(format!(
                    "the container exited at once with code {}; its last output: {logs}",
                    state.exit_code.unwrap_or_default()
                )),
            ));
        }
        Ok(())
    }

    async fn logs_tail(&self, id: &str, lines: usize) -> String {
        let options = LogsOptions { stdout: true, stderr: true, tail: lines.to_string(), ..Default::default() };
        let mut stream = self.docker.logs(id, Some(options));
        let mut out = String::new();
        while let Some(Ok(chunk)) = stream.next().await {
            out.push_str(&chunk.to_string());
        }
        let out = out.trim().replace('\n', " | ");
        if out.is_empty() { "(nothing)".into() } else { out }
    }

    async fn image_pull(&self, address: &Address, reference: &str) -> Result<String, ProviderError> {
        let options = CreateImageOptions { from_image: Some(reference.to_owned()), ..Default::default() };
        let mut stream = self.docker.create_image(Some(options), None, None);
        while let Some(item) = stream.next().await {
            item.map_err(|e| op_error("pull", address, e))?;
        }
        let image = self.docker.inspect_image(reference).await.map_err(|e| op_error("pull", address, e))?;
        Ok(image.id.unwrap_or_default())
    }
}

#[async_trait]
impl Provider for DockerProvider {
    async fn observe(
        &self,
        scope: &Scope,
        desired: &[DesiredResource],
    ) -> Result<Vec<ObservedResource>, ProviderError> {
        let observe_error =
            |e: DockerError| ProviderError::Observe { what: format!("{} on Docker", scope.owner), source: Box::new(e) };
        let networks_only = matches!(scope.owner.owner, Owner::Network(_));
        let mut out: Vec<ObservedResource> = self
            .labelled_objects(scope_filter(scope), networks_only)
            .await
            .map_err(observe_error)?
            .into_iter()
            .map(|(_, o)| o)
            .collect();
        for r in desired {
            let ResourceAttrs::Image(image) = &r.attrs else { continue };
            match self.docker.inspect_image(&image.reference).await {
                Ok(found) => out.push(ObservedResource {
                    address: r.address.clone(),
                    id: found.id.unwrap_or_default(),
                    liveness: Liveness::Present,
                    fingerprint: None,
                    facts: Default::default(),
                }),
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
        _cancel: &CancellationToken,
    ) -> Result<Applied, ProviderError> {
        let address = &resource.address;
        let id = match &resource.attrs {
            ResourceAttrs::Image(image) => self.image_pull(address, &image.reference).await,
            ResourceAttrs::Volume(v) => {
                self.owned_or_absent(scope, "create", address, &v.name).await?;
                let options = VolumeCreateOptions {
                    name: Some(v.name.clone()),
                    labels: Some(scope_labels(scope, address, fingerprint)),
                    ..Default::default()
                };
                let volume = self.docker.create_volume(options).await.map_err(|e| op_error("create", address, e))?;
                // An existing volume comes back as if created: its labels tell whose it is.
                if let Some(owner) = foreign_owner(scope, &volume.labels) {
                    return Err(not_owned(scope, "create", address, "volume", &volume.name, owner));
                }
                Ok(volume.name)
            }
            ResourceAttrs::Network(n) => {
                self.owned_or_absent(scope, "create", address, &n.name).await?;
                let request = NetworkCreateRequest {
                    name: n.name.clone(),
                    driver: Some(n.driver.clone()),
                    labels: Some(scope_labels(scope, address, fingerprint)),
                    ..Default::default()
                };
                let created = self.docker.create_network(request).await.map_err(|e| op_error("create", address, e))?;
                Ok(created.id)
            }
            ResourceAttrs::Container(c) => {
                self.owned_or_absent(scope, "create", address, &c.name).await?;
                self.container_create(scope, address, c, fingerprint).await
            }
            ResourceAttrs::LoadBalancer(lb) => {
                self.owned_or_absent(scope, "create", address, &lb.name).await?;
                self.balancer_create(scope, address, lb, fingerprint).await
            }
            // AWS and Swarm resources.
            _ => Err(op_error("create", address, Message("not a Docker resource".into()))),
        }?;
        Ok(id.into())
    }

    /// A container's only in-place update: starting it again (the planner asks for it when the
    /// container is unchanged but stopped). A load balancer's: its upstreams (see
    /// [`balancer`]).
    async fn update(
        &self,
        scope: &Scope,
        resource: &DesiredResource,
        id: &str,
        _fingerprint: &str,
        _cancel: &CancellationToken,
    ) -> Result<Applied, ProviderError> {
        let address = &resource.address;
        if !self.owned_or_absent(scope, "update", address, id).await? {
            return Err(op_error("update", address, Message(format!("container {id} no longer exists"))));
        }
        if let ResourceAttrs::LoadBalancer(lb) = &resource.attrs {
            self.balancer_update(address, lb, id).await?;
            return Ok(id.to_owned().into());
        }
        self.container_start(address, id).await?;
        Ok(id.to_owned().into())
    }

    async fn delete(
        &self,
        scope: &Scope,
        address: &Address,
        id: &str,
        _cancel: &CancellationToken,
    ) -> Result<(), ProviderError> {
        if matches!(
            address.kind,
            ResourceKind::Container | ResourceKind::LoadBalancer | ResourceKind::Volume | ResourceKind::Network
        ) && !self.owned_or_absent(scope, "delete", address, id).await?
        {
            return Ok(());
        }
        let result = match address.kind {
            ResourceKind::Image
            | ResourceKind::SecurityGroup
            | ResourceKind::Instance
            | ResourceKind::SwarmService
            | ResourceKind::SwarmNetwork
            | ResourceKind::SwarmSecret
            | ResourceKind::EcsCluster
            | ResourceKind::IamRole
            | ResourceKind::InstanceProfile
            | ResourceKind::LogGroup
            | ResourceKind::SsmParameter
            | ResourceKind::TaskDefinition
            | ResourceKind::EcsService => Ok(()),
            ResourceKind::Container | ResourceKind::LoadBalancer => {
                let stop = StopContainerOptions { t: Some(10), ..Default::default() };
                match self.docker.stop_container(id, Some(stop)).await {
                    Ok(()) => {}
                    Err(e) if is_not_found(&e) => return Ok(()),
                    // 304: already stopped; anything else: removal below forces it.
                    Err(_) => {}
                }
                let options = RemoveContainerOptions { force: true, ..Default::default() };
                match self.docker.remove_container(id, Some(options.clone())).await {
                    // Some storage drivers (fuse-overlayfs) fail a removal once with "directory
                    // not empty" while the stopped container's files settle: try once more.
                    Err(e) if !is_not_found(&e) => {
                        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                        self.docker.remove_container(id, Some(options)).await
                    }
                    result => result,
                }
            }
            ResourceKind::Volume => self.docker.remove_volume(id, Some(RemoveVolumeOptions { force: false })).await,
            ResourceKind::Network => self.docker.remove_network(id).await,
            // Not Docker objects (AWS): nothing to delete here.
            _ => Ok(()),
        };
        match result {
            Err(e) if !is_not_found(&e) => Err(op_error("delete", address, e)),
            _ => Ok(()),
        }
    }
}

fn kind_name(kind: ResourceKind) -> &'static str {
    match kind {
        ResourceKind::Container | ResourceKind::LoadBalancer => "container",
        ResourceKind::Volume => "volume",
        ResourceKind::Network => "network",
        _ => "object",
    }
}

impl DockerProvider {
    /// The name and labels of the container, volume or network with this name or id, `None`
    /// when there is none.
    async fn labels_of(
        &self,
        kind: ResourceKind,
        name_or_id: &str,
    ) -> Result<Option<(String, HashMap<String, String>)>, DockerError> {
        let found = match kind {
            ResourceKind::Container | ResourceKind::LoadBalancer => self
                .docker
                .inspect_container(name_or_id, None::<bollard::query_parameters::InspectContainerOptions>)
                .await
                .map(|c| {
                    let name = c.name.unwrap_or_default().trim_start_matches('/').to_owned();
                    (name, c.config.and_then(|c| c.labels).unwrap_or_default())
                }),
            ResourceKind::Volume => self.docker.inspect_volume(name_or_id).await.map(|v| (v.name, v.labels)),
            ResourceKind::Network => self
                .docker
                .inspect_network(name_or_id, None::<bollard::query_parameters::InspectNetworkOptions>)
                .await
                .map(|n| (n.name.unwrap_or_default(), n.labels.unwrap_or_default())),
            _ => return Ok(None),
        };
        match found {
            Ok(found) => Ok(Some(found)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether an object of `address`'s kind with this name or id exists; fails with
    /// [`ProviderError::NotOwned`] when it does and belongs to someone other than `scope`.
    async fn owned_or_absent(
        &self,
        scope: &Scope,
        action: &'static str,
        address: &Address,
        name_or_id: &str,
    ) -> Result<bool, ProviderError> {
        match self.labels_of(address.kind, name_or_id).await.map_err(|e| op_error(action, address, e))? {
            None => Ok(false),
            Some((name, l)) => match foreign_owner(scope, &l) {
                Some(owner) => Err(not_owned(scope, action, address, kind_name(address.kind), &name, owner)),
                None => Ok(true),
            },
        }
    }
}

/// A change the Docker engine reported on an object carrying SpawnIt's labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DockerChange {
    /// A container or volume of a service changed.
    Service { client: String, service: String },
    /// A network changed (network events carry no labels: the services of every client on it
    /// may be affected).
    Network { name: String },
}

impl DockerProvider {
    /// One observation of everything SpawnIt labelled on this engine, grouped by owner, plus
    /// the local images: four list calls, whatever the number of services.
    pub async fn observe_world(&self) -> Result<spawnit_engine::ObservedWorld, ProviderError> {
        let observe_error =
            |e: DockerError| ProviderError::Observe { what: "the Docker engine".into(), source: Box::new(e) };
        let filters = HashMap::from([("label".to_owned(), vec![labels::CLIENT.to_owned()])]);
        let mut world = spawnit_engine::ObservedWorld::default();
        for (owner, observed) in self.labelled_objects(filters, false).await.map_err(observe_error)? {
            if let Some(owner) = owner {
                world.owners.entry(owner).or_default().push(observed);
            }
        }
        let images = self
            .docker
            .list_images(None::<bollard::query_parameters::ListImagesOptions>)
            .await
            .map_err(observe_error)?;
        for image in images {
            for tag in &image.repo_tags {
                world.images.insert(spawnit_engine::image_reference_normalized(tag), image.id.clone());
            }
        }
        Ok(world)
    }

    /// The labelled containers, volumes and networks matching `filters` (networks only when
    /// `networks_only`), each with the owner its labels name.
    async fn labelled_objects(
        &self,
        filters: HashMap<String, Vec<String>>,
        networks_only: bool,
    ) -> Result<Vec<(Option<OwnerKey>, ObservedResource)>, DockerError> {
        let mut out = Vec::new();
        let filters = Some(filters);
        if !networks_only {
            let options = ListContainersOptions { all: true, filters: filters.clone(), ..Default::default() };
            for c in self.docker.list_containers(Some(options)).await? {
                let Some(l) = c.labels.as_ref() else { continue };
                let Some((address, fingerprint)) = labelled(ResourceKind::Container, Some(l))
                    .or_else(|| labelled(ResourceKind::LoadBalancer, Some(l)))
                else {
                    continue;
                };
                let running =
                    matches!(c.state, Some(ContainerSummaryStateEnum::RUNNING | ContainerSummaryStateEnum::RESTARTING));
                let owner = owner_of(l);
                let name = c.names.as_ref().and_then(|n| n.first()).map(|n| n.trim_start_matches('/').to_owned());
                let mut facts: std::collections::BTreeMap<String, String> =
                    [("image", c.image), ("status", c.status), (facts::NAME, name)]
                        .into_iter()
                        .filter_map(|(k, v)| Some((k.to_owned(), v?)))
                        .collect();
                if address.kind == ResourceKind::LoadBalancer
                    && let Some(id) = c.id.as_deref()
                    && let Some(config) = self.balancer_config(id).await
                {
                    let upstreams = spawnit_plan::caddyfile_upstreams(&config);
                    facts.insert(facts::UPSTREAMS.to_owned(), upstreams.join(","));
                    facts.insert(facts::CONFIG_DIGEST.to_owned(), spawnit_plan::config_digest(&config));
                }
                let liveness = if running { Liveness::Running } else { Liveness::Stopped };
                out.push((
                    owner,
                    ObservedResource { address, id: c.id.unwrap_or_default(), liveness, fingerprint, facts },
                ));
            }
            let volumes = self.docker.list_volumes(Some(ListVolumesOptions { filters: filters.clone() })).await?;
            for v in volumes.volumes.unwrap_or_default() {
                let Some((address, fingerprint)) = labelled(ResourceKind::Volume, Some(&v.labels)) else { continue };
                let observed = ObservedResource {
                    address,
                    id: v.name,
                    liveness: Liveness::Present,
                    fingerprint,
                    facts: Default::default(),
                };
                out.push((owner_of(&v.labels), observed));
            }
        }
        for n in self.docker.list_networks(Some(ListNetworksOptions { filters })).await? {
            let Some(l) = n.labels.as_ref() else { continue };
            let Some((address, fingerprint)) = labelled(ResourceKind::Network, Some(l)) else { continue };
            let facts = n.name.map(|name| ("name".to_owned(), name)).into_iter().collect();
            let observed = ObservedResource {
                address,
                id: n.id.unwrap_or_default(),
                liveness: Liveness::Present,
                fingerprint,
                facts,
            };
            out.push((owner_of(l), observed));
        }
        Ok(out)
    }

    /// Changes to SpawnIt's containers, volumes and networks, as the engine reports them. The
    /// stream ends when the connection to the engine does.
    pub fn changes(&self) -> impl futures::Stream<Item = DockerChange> + Send + 'static {
        let filters = HashMap::from([(
            "type".to_owned(),
            vec!["container".to_owned(), "volume".to_owned(), "network".to_owned()],
        )]);
        let options = bollard::query_parameters::EventsOptions { filters: Some(filters), ..Default::default() };
        self.docker.events(Some(options)).filter_map(|event| async move {
            let event = event.ok()?;
            let attributes = event.actor?.attributes.unwrap_or_default();
            match (attributes.get(labels::CLIENT), attributes.get(labels::SERVICE)) {
                (Some(client), Some(service)) => {
                    Some(DockerChange::Service { client: client.clone(), service: service.clone() })
                }
                _ if matches!(event.typ, Some(bollard::models::EventMessageTypeEnum::NETWORK)) => {
                    let name = attributes.get("name")?;
                    (name.starts_with("spawnit-") || name.starts_with("spawnit_"))
                        .then(|| DockerChange::Network { name: name.clone() })
                }
                _ => None,
            }
        })
    }
}
