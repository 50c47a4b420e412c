//! [`Engine`]: the operations SpawnIt offers on services and networks, over a store and a
//! provider. Each operation loads what it needs from the store, plans purely, and (for apply and
//! destroy) executes under the owner's lock, writing state after every resource operation.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::Value;
use spawnit_model::plan::{Action, Plan, PlanStatus};
use spawnit_model::{
    Exposure, Id, JobEvent, NetworkSpec, OwnerKey, ProviderKind, Redactor, ServiceSpec, State, Template, TemplateRef,
};
use spawnit_plan::{
    TemplateError, ValidationError, network_resources, params_resolve, plan_apply, plan_destroy, render,
    service_resources, service_resources_on,
};
use spawnit_store::{LockError, PutCondition, StateWriter, Store, StoreError};
use tokio_util::sync::CancellationToken;

use crate::execute::{EventSink, ExecutionReport, execute};
use crate::provider::{Provider, ProviderError, Scope};
use crate::world::ObservedWorld;

/// Everything that can go wrong in an engine operation: the one error type that reaches users.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error("{what} not found")]
    NotFound { what: String },
    #[error("template {0} not found (`spawnit catalog` lists the templates)")]
    TemplateNotFound(Id),
    #[error("{what} already exists")]
    AlreadyExists { what: String },
    /// The request conflicts with the current state (e.g. deleting a deployed service).
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Locked(#[from] LockError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{}", .0.chain())]
    Provider(#[from] ProviderError),
    /// The plan could not be made (e.g. the network is missing); says why.
    #[error("{0}")]
    NotReady(String),
    #[error("provider {0} is not configured in this SpawnIt{hint}", hint = match .0 {
        ProviderKind::Docker => "",
        ProviderKind::Swarm => " (give a Swarm manager with --swarm-host or SPAWNIT_SWARM_HOST)",
        // Every other kind is on AWS, which is always configured when it is built in.
        _ => " (this spawnit was built without AWS support: build it with its default feature `aws`)",
    })]
    ProviderMissing(ProviderKind),
    /// Cancelled while waiting for another writer, before anything was done.
    #[error("cancelled before it started (while waiting for the lock)")]
    Cancelled,
}

/// The providers an engine can use, by kind.
#[derive(Clone, Default)]
pub struct Providers {
    by_kind: BTreeMap<ProviderKind, Arc<dyn Provider>>,
    /// The settings of a new `swarm` service that names none (`--swarm-publish-mode`, …).
    swarm_defaults: spawnit_model::spec::SwarmSettings,
}

impl Providers {
    /// Sets the settings a new `swarm` service gets when its request names none.
    pub fn with_swarm_defaults(mut self, defaults: spawnit_model::spec::SwarmSettings) -> Providers {
        self.swarm_defaults = defaults;
        self
    }

    pub fn with(mut self, kind: ProviderKind, provider: Arc<dyn Provider>) -> Providers {
        self.by_kind.insert(kind, provider);
        self
    }

    pub fn get(&self, kind: ProviderKind) -> Result<&Arc<dyn Provider>, EngineError> {
        self.by_kind.get(&kind).ok_or(EngineError::ProviderMissing(kind))
    }
}

/// A plan ready to execute: the plan, what masks its secrets, and who carries it out.
struct Planned {
    plan: Plan,
    redactor: Redactor,
    provider: Arc<dyn Provider>,
}

/// A request to create a service spec.
#[derive(Clone, Debug)]
pub struct ServiceCreate {
    pub client: Id,
    pub name: Id,
    pub template: Id,
    pub network: Id,
    pub exposure: Exposure,
    pub provider: ProviderKind,
    pub params: BTreeMap<String, Value>,
    /// Required for provider `aws`, absent otherwise.
    pub aws: Option<spawnit_model::spec::AwsSettings>,
    /// For provider `swarm` (the defaults when absent); refused for the others.
    pub swarm: Option<spawnit_model::spec::SwarmSettings>,
}

/// How an apply or destroy runs.
#[derive(Clone)]
pub struct RunOptions {
    /// The job's id, written into the lock.
    pub job: String,
    pub cancel: CancellationToken,
    pub events: EventSink,
    /// How long to wait for another writer's lock before failing with "locked by …".
    pub lock_wait: Duration,
    /// The lock's lifetime between renewals.
    pub lock_ttl: Duration,
    /// The plan the user approved: the run stops if the fresh plan's actions differ.
    pub approved: Option<Plan>,
}

impl RunOptions {
    pub fn new(job: impl Into<String>, events: EventSink) -> RunOptions {
        RunOptions {
            job: job.into(),
            cancel: CancellationToken::new(),
            events,
            lock_wait: Duration::ZERO,
            lock_ttl: Duration::from_secs(60),
            approved: None,
        }
    }
}

/// A service's plan with the spec it was made from.
#[derive(Clone, Debug)]
pub struct ServicePlan {
    pub spec: ServiceSpec,
    pub plan: Plan,
    pub redactor: Redactor,
}

/// How long the lock taken by [`Engine::service_delete`] lives if the process dies holding it.
const DELETE_LOCK_TTL: Duration = Duration::from_secs(30);

/// The engine: a store and the providers.
#[derive(Clone)]
pub struct Engine {
    store: Store,
    providers: Providers,
}

impl Engine {
    /// An engine over `store`, seeding the built-in catalog into it the first time.
    /// A read-only store (of a newer format) is used as it is.
    pub async fn open(store: Store, providers: Providers) -> Result<Engine, EngineError> {
        if store.read_only_reason().is_none() {
            store.catalog_seed(&spawnit_plan::builtin_templates()?).await?;
        }
        Ok(Engine { store, providers })
    }

    /// Networks are Docker networks: the network layer always uses the Docker provider.
    fn network_provider(&self) -> Result<&Arc<dyn Provider>, EngineError> {
        self.providers.get(ProviderKind::Docker)
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub async fn template(&self, id: &Id) -> Result<Template, EngineError> {
        self.store.template(id).await?.ok_or_else(|| EngineError::TemplateNotFound(id.clone()))
    }

    // ---- services ----

    /// Validates the request and stores the rendered spec. Deploys nothing. A network spec is
    /// created for a network that has none (it still has to be applied).
    pub async fn service_create(&self, req: ServiceCreate) -> Result<ServiceSpec, EngineError> {
        let template = self.template(&req.template).await?;
        let mut input = req.params.clone();
        if req.provider == ProviderKind::Docker {
            self.ports_choose(&req.client, &req.name, &template, &mut input).await?;
        }
        let params = params_resolve(&template, &input, None, &mut rand::rng())?;
        let instance = render(&template, &req.client, &req.name, &params)?;
        spawnit_plan::scaling_check(&template, &instance)?;
        let now = Utc::now();
        let spec = ServiceSpec {
            client: req.client.clone(),
            name: req.name.clone(),
            template: TemplateRef { id: template.id.clone(), version: template.version.clone() },
            provider: req.provider,
            network: req.network.clone(),
            exposure: req.exposure,
            aws: req.aws.clone(),
            swarm: match req.provider {
                ProviderKind::Swarm => Some(req.swarm.clone().unwrap_or_else(|| self.providers.swarm_defaults.clone())),
                _ => req.swarm.clone(),
            },
            secret_params: template.parameters.iter().filter(|(_, p)| p.secret).map(|(n, _)| n.clone()).collect(),
            params,
            instance,
            docker_naming: spawnit_model::DockerNaming::CURRENT,
            drift_policy: Default::default(),
            expires_at: None,
            created_at: now,
            updated_at: now,
        };
        spawnit_plan::provider_settings_check(&spec)?;
        if spec.provider != ProviderKind::Docker {
            // Ask the provider whether the region, instance type, image… exist, before storing.
            let provider = self.providers.get(spec.provider)?;
            provider.validate(&service_resources(&spec)).await.map_err(provider_error)?;
        } else {
            self.ports_check(&spec, &template).await?;
            if self.store.network_spec(&req.client, &req.network).await?.is_none() {
                match self.network_create(&req.client, &req.network).await {
                    Ok(_) | Err(EngineError::AlreadyExists { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        match self.store.service_spec_put(&spec, PutCondition::Absent).await {
            Ok(_) => Ok(spec),
            Err(StoreError::Conflict { .. }) => {
                Err(EngineError::AlreadyExists { what: format!("service {}/{}", req.client, req.name) })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Changes parameters (those not given keep their values) and re-renders the spec against
    /// the template version it was created from, or the catalog's if that changed. Applies nothing.
    pub async fn service_update(
        &self,
        client: &Id,
        name: &Id,
        params: &BTreeMap<String, Value>,
        exposure: Option<Exposure>,
    ) -> Result<ServiceSpec, EngineError> {
        let current = self.service_spec_versioned(client, name).await?;
        let template = self.template(&current.value.template.id).await?;
        let resolved = params_resolve(&template, params, Some(&current.value.params), &mut rand::rng())?;
        let mut spec = current.value.clone();
        spec.instance = render(&template, client, name, &resolved)?;
        spawnit_plan::scaling_check(&template, &spec.instance)?;
        spec.params = resolved;
        spec.template.version = template.version.clone();
        spec.secret_params = template.parameters.iter().filter(|(_, p)| p.secret).map(|(n, _)| n.clone()).collect();
        spec.exposure = exposure.unwrap_or(spec.exposure);
        spec.updated_at = Utc::now();
        self.ports_check(&spec, &template).await?;
        self.store.service_spec_put(&spec, PutCondition::Matches(current.version)).await?;
        Ok(spec)
    }

    /// Sets how many replicas of a container run (the only replicated one when `container` is
    /// `None`) by changing the parameter its template reads the count from, as an update does:
    /// the scale policy's bounds are checked, nothing is applied. Returns the new spec and the
    /// previous count.
    pub async fn service_scale(
        &self,
        client: &Id,
        name: &Id,
        container: Option<&str>,
        replicas: u32,
    ) -> Result<(ServiceSpec, u32), EngineError> {
        let current = self.service_spec(client, name).await?;
        let replicated: Vec<&String> =
            current.instance.containers.iter().filter(|(_, c)| c.replicated()).map(|(n, _)| n).collect();
        let container = match (container, replicated.as_slice()) {
            (Some(c), _) if replicated.iter().any(|r| r.as_str() == c) => c.to_owned(),
            (Some(c), _) => {
                return Err(ValidationError::one(
                    "container",
                    format!("{c:?} is not a replicated container of service {client}/{name}"),
                )
                .into());
            }
            (None, [one]) => one.to_string(),
            (None, []) => {
                return Err(ValidationError::one(
                    "container",
                    format!("service {client}/{name} has no replicated container"),
                )
                .into());
            }
            (None, _) => {
                return Err(ValidationError::one(
                    "container",
                    "the service has several replicated containers: name one",
                )
                .into());
            }
        };
        let previous = current.instance.containers.get(&container).map(|c| c.replica_count()).unwrap_or(0);
        let template = self.template(&current.template.id).await?;
        let Some(param) = template.replicas_param(&container) else {
            return Err(ValidationError::one(
                "replicas",
                format!("container {container} has a fixed replica count in template {}", template.id),
            )
            .into());
        };
        let params = BTreeMap::from([(param.to_owned(), Value::from(replicas))]);
        let spec = self.service_update(client, name, &params, None).await?;
        Ok((spec, previous))
    }

    async fn service_spec_versioned(
        &self,
        client: &Id,
        name: &Id,
    ) -> Result<spawnit_store::Versioned<ServiceSpec>, EngineError> {
        self.store
            .service_spec(client, name)
            .await?
            .ok_or_else(|| EngineError::NotFound { what: format!("service {client}/{name}") })
    }

    pub async fn service_spec(&self, client: &Id, name: &Id) -> Result<ServiceSpec, EngineError> {
        Ok(self.service_spec_versioned(client, name).await?.value)
    }

    pub async fn service_state(&self, client: &Id, name: &Id) -> Result<Option<State>, EngineError> {
        Ok(self.store.state(&OwnerKey::service(client, name)).await?.map(|v| v.value))
    }

    pub async fn service_list(&self, client: &Id) -> Result<Vec<Id>, EngineError> {
        Ok(self.store.service_list(client).await?)
    }

    /// Removes a service's spec and state, under the service's lock: refused while anyone
    /// holds it (an apply or destroy running here or in another process) and while the service
    /// still has resources.
    pub async fn service_delete(&self, client: &Id, name: &Id) -> Result<(), EngineError> {
        self.service_spec_versioned(client, name).await?;
        let key = OwnerKey::service(client, name);
        let job = format!("delete-{}", uuid::Uuid::new_v4());
        let lock = self.store.lock_acquire(&key, &job, "delete", DELETE_LOCK_TTL).await?;
        let result = self.service_delete_locked(client, name, &key).await;
        lock.release().await?;
        result
    }

    async fn service_delete_locked(&self, client: &Id, name: &Id, key: &OwnerKey) -> Result<(), EngineError> {
        // Read again under the lock: a writer may have finished meanwhile.
        self.service_spec_versioned(client, name).await?;
        if let Some(state) = self.service_state(client, name).await? {
            if !state.resources.is_empty() {
                return Err(EngineError::Conflict(format!(
                    "service {client}/{name} still has {} resource(s): destroy it first",
                    state.resources.len()
                )));
            }
        }
        self.store.state_delete(key).await?;
        // The spec last, so a service half deleted is still listed and can be deleted again.
        self.store.delete(&spawnit_store::Key::spec(key)).await?;
        Ok(())
    }

    /// Plans a service against what is recorded and observed. Never changes anything.
    pub async fn service_plan(&self, client: &Id, name: &Id) -> Result<ServicePlan, EngineError> {
        let spec = self.service_spec(client, name).await?;
        let state = self.service_state(client, name).await?.unwrap_or_else(|| State::new(""));
        let redactor = Redactor::for_spec(&spec);
        self.service_plan_with(spec, &state).await.map_err(|e| masked_error(e, &redactor))
    }

    async fn service_plan_with(&self, spec: ServiceSpec, state: &State) -> Result<ServicePlan, EngineError> {
        let redactor = Redactor::for_spec(&spec);
        let subject = format!("service {}/{}", spec.client, spec.name);
        // Docker services need their client network; other providers have their own.
        if spec.provider == ProviderKind::Docker
            && let Err(message) = self.network_ready(&spec.client, &spec.network, None).await?
        {
            return Ok(ServicePlan { plan: Plan::error(subject, message), spec, redactor });
        }
        let desired = self.service_desired(&spec).await?;
        let provider = self.providers.get(spec.provider)?;
        let checked = match spawnit_plan::provider_settings_check(&spec) {
            Ok(()) => provider.validate(&desired).await.map_err(provider_error),
            Err(e) => Err(e.into()),
        };
        if let Err(EngineError::Invalid(e)) = checked {
            return Ok(ServicePlan { plan: Plan::error(subject, redactor.text(&e.to_string())), spec, redactor });
        }
        checked?;
        let scope = Scope { owner: OwnerKey::service(&spec.client, &spec.name), lineage: state.lineage.clone() };
        let observed = provider.observe(&scope, &desired).await?;
        let mut plan = plan_apply(&subject, &desired, state, &observed, &redactor);
        if let Some(port) = self.ports_check_plan(&spec, state, &plan).await {
            return Ok(ServicePlan { plan: Plan::error(subject, port), spec, redactor });
        }
        match spec.provider {
            ProviderKind::Docker => spawnit_plan::naming_notes(&mut plan, spec.docker_naming),
            ProviderKind::Swarm => spawnit_plan::swarm_notes(&mut plan),
            ProviderKind::Aws | ProviderKind::AwsAsg | ProviderKind::AwsEcs => {}
        }
        Ok(ServicePlan { spec, plan, redactor })
    }

    /// A service's desired resources, its containers joining its network under the name the
    /// network spec gives it (an older network keeps its old name).
    async fn service_desired(&self, spec: &ServiceSpec) -> Result<Vec<spawnit_model::DesiredResource>, EngineError> {
        if spec.provider == ProviderKind::Swarm {
            let placement = self.placement(&spec.client).await?;
            return Ok(spawnit_plan::swarm_resources(spec, &placement));
        }
        if spec.provider != ProviderKind::Docker {
            return Ok(service_resources(spec));
        }
        Ok(match self.store.network_spec(&spec.client, &spec.network).await? {
            Some(network) => service_resources_on(spec, &spawnit_plan::network_name(&network.value)),
            None => service_resources(spec),
        })
    }

    /// Where a client's Swarm tasks may run: on the nodes it rents when it holds a lease, on
    /// the shared pool otherwise.
    pub async fn placement(&self, client: &Id) -> Result<spawnit_plan::Placement, EngineError> {
        Ok(crate::placement::placement_of(&self.store, client).await?)
    }

    /// Whether a service's network is ready ([`network_readiness`]), observed through the
    /// Docker provider or, during a sweep, in the sweep's one observation of the world.
    async fn network_ready(
        &self,
        client: &Id,
        network: &Id,
        world: Option<&ObservedWorld>,
    ) -> Result<Result<String, String>, EngineError> {
        let Some(spec) = self.store.network_spec(client, network).await?.map(|v| v.value) else {
            return Ok(network_readiness(network, None));
        };
        let key = OwnerKey::network(client, network);
        let state = self.store.state(&key).await?.map(|v| v.value).unwrap_or_else(|| State::new(""));
        let plan = match world {
            None => self.network_plan_with(&spec, &state).await?,
            Some(world) => {
                let desired = network_resources(&spec);
                plan_apply(
                    &key.to_string(),
                    &desired,
                    &state,
                    &world.observed_for(&key, &desired),
                    &Redactor::default(),
                )
            }
        };
        Ok(network_readiness(network, Some((&spec, &plan))))
    }

    /// The network of a Docker service when it has to be applied before the service can be
    /// planned (missing, never applied, or changed outside SpawnIt); `None` when it is ready or
    /// the service runs elsewhere.
    pub async fn service_network_unready(&self, client: &Id, name: &Id) -> Result<Option<Id>, EngineError> {
        let spec = self.service_spec(client, name).await?;
        if spec.provider != ProviderKind::Docker {
            return Ok(None);
        }
        Ok(self.network_ready(client, &spec.network, None).await?.err().map(|_| spec.network))
    }

    /// Plans under the service's lock and executes the plan.
    pub async fn service_apply(
        &self,
        client: &Id,
        name: &Id,
        run: &RunOptions,
    ) -> Result<ExecutionReport, EngineError> {
        let key = OwnerKey::service(client, name);
        self.locked(&key, "apply", run, |state| async move {
            let spec = self.service_spec(client, name).await?;
            let provider = self.providers.get(spec.provider)?.clone();
            let redactor = Redactor::for_spec(&spec);
            let planned = self.service_plan_with(spec, &state).await.map_err(|e| masked_error(e, &redactor))?;
            Ok(Planned { plan: planned.plan, redactor: planned.redactor, provider })
        })
        .await
    }

    /// Deletes every resource of a service (its spec stays; see [`Engine::service_delete`]).
    pub async fn service_destroy(
        &self,
        client: &Id,
        name: &Id,
        run: &RunOptions,
    ) -> Result<ExecutionReport, EngineError> {
        let spec = self.service_spec(client, name).await?;
        let redactor = Redactor::for_spec(&spec);
        let key = OwnerKey::service(client, name);
        self.locked(&key, "destroy", run, |state| async move {
            let provider = self.providers.get(spec.provider)?.clone();
            let plan = self
                .destroy_plan(&provider, &OwnerKey::service(client, name), &service_resources(&spec), &state)
                .await?;
            Ok(Planned { plan, redactor, provider })
        })
        .await
    }

    /// The destroy plan of a service, without a lock (for showing it before asking).
    pub async fn service_destroy_plan(&self, client: &Id, name: &Id) -> Result<Plan, EngineError> {
        let spec = self.service_spec(client, name).await?;
        let state = self.service_state(client, name).await?.unwrap_or_else(|| State::new(""));
        let provider = self.providers.get(spec.provider)?;
        self.destroy_plan(provider, &OwnerKey::service(client, name), &service_resources(&spec), &state).await
    }

    async fn destroy_plan(
        &self,
        provider: &Arc<dyn Provider>,
        key: &OwnerKey,
        desired: &[spawnit_model::DesiredResource],
        state: &State,
    ) -> Result<Plan, EngineError> {
        let scope = Scope { owner: key.clone(), lineage: state.lineage.clone() };
        // Every desired resource, so a provider knows where to look (an AWS region); the
        // Docker provider only uses the images among them.
        let observed = provider.observe(&scope, desired).await?;
        Ok(plan_destroy(&key.to_string(), state, &observed))
    }

    // ---- networks ----

    pub async fn network_create(&self, client: &Id, name: &Id) -> Result<NetworkSpec, EngineError> {
        let spec = NetworkSpec {
            client: client.clone(),
            name: name.clone(),
            docker_naming: spawnit_model::DockerNaming::CURRENT,
            created_at: Utc::now(),
        };
        match self.store.network_spec_put(&spec, PutCondition::Absent).await {
            Ok(_) => Ok(spec),
            Err(StoreError::Conflict { .. }) => {
                Err(EngineError::AlreadyExists { what: format!("network {client}/{name}") })
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn network_spec(&self, client: &Id, name: &Id) -> Result<NetworkSpec, EngineError> {
        Ok(self
            .store
            .network_spec(client, name)
            .await?
            .ok_or_else(|| EngineError::NotFound { what: format!("network {client}/{name}") })?
            .value)
    }

    pub async fn network_list(&self, client: &Id) -> Result<Vec<Id>, EngineError> {
        Ok(self.store.network_list(client).await?)
    }

    pub async fn network_plan(&self, client: &Id, name: &Id) -> Result<Plan, EngineError> {
        let spec = self.network_spec(client, name).await?;
        let state = self
            .store
            .state(&OwnerKey::network(client, name))
            .await?
            .map(|v| v.value)
            .unwrap_or_else(|| State::new(""));
        self.network_plan_with(&spec, &state).await
    }

    async fn network_plan_with(&self, spec: &NetworkSpec, state: &State) -> Result<Plan, EngineError> {
        let key = OwnerKey::network(&spec.client, &spec.name);
        let desired = network_resources(spec);
        let scope = Scope { owner: key.clone(), lineage: state.lineage.clone() };
        let observed = self.network_provider()?.observe(&scope, &desired).await?;
        let mut plan = plan_apply(&key.to_string(), &desired, state, &observed, &Redactor::default());
        spawnit_plan::naming_notes(&mut plan, spec.docker_naming);
        Ok(plan)
    }

    pub async fn network_apply(
        &self,
        client: &Id,
        name: &Id,
        run: &RunOptions,
    ) -> Result<ExecutionReport, EngineError> {
        let spec = self.network_spec(client, name).await?;
        let key = OwnerKey::network(client, name);
        self.locked(&key, "apply", run, |state| async move {
            let plan = self.network_plan_with(&spec, &state).await?;
            Ok(Planned { plan, redactor: Redactor::default(), provider: self.network_provider()?.clone() })
        })
        .await
    }

    /// Deletes a network's resources; refused while a service of the client on it has resources.
    pub async fn network_destroy(
        &self,
        client: &Id,
        name: &Id,
        run: &RunOptions,
    ) -> Result<ExecutionReport, EngineError> {
        let spec = self.network_spec(client, name).await?;
        let users = self.network_users(client, name).await?;
        if !users.is_empty() {
            return Err(EngineError::Conflict(format!(
                "network {client}/{name} is used by deployed service(s) {}: destroy them first",
                users.join(", ")
            )));
        }
        let key = OwnerKey::network(client, name);
        self.locked(&key, "destroy", run, |state| async move {
            let provider = self.network_provider()?.clone();
            let plan = self
                .destroy_plan(&provider, &OwnerKey::network(client, name), &network_resources(&spec), &state)
                .await?;
            Ok(Planned { plan, redactor: Redactor::default(), provider })
        })
        .await
    }

    pub async fn network_destroy_plan(&self, client: &Id, name: &Id) -> Result<Plan, EngineError> {
        let spec = self.network_spec(client, name).await?;
        let key = OwnerKey::network(client, name);
        let state = self.store.state(&key).await?.map(|v| v.value).unwrap_or_else(|| State::new(""));
        self.destroy_plan(self.network_provider()?, &key, &network_resources(&spec), &state).await
    }

    /// Services of `client` on network `name` that have resources.
    async fn network_users(&self, client: &Id, name: &Id) -> Result<Vec<String>, EngineError> {
        let mut users = Vec::new();
        for service in self.store.service_list(client).await? {
            let Some(spec) = self.store.service_spec(client, &service).await? else { continue };
            if &spec.value.network != name || spec.value.provider != ProviderKind::Docker {
                continue;
            }
            if self.service_state(client, &service).await?.is_some_and(|s| !s.resources.is_empty()) {
                users.push(service.to_string());
            }
        }
        Ok(users)
    }

    /// Runs a plan made by `make_plan` under the owner's lock, writing state as it goes.
    async fn locked<F, Fut>(
        &self,
        key: &OwnerKey,
        operation: &str,
        run: &RunOptions,
        make_plan: F,
    ) -> Result<ExecutionReport, EngineError>
    where
        F: FnOnce(State) -> Fut,
        Fut: std::future::Future<Output = Result<Planned, EngineError>>,
    {
        let lock = match self.store.lock_acquire(key, &run.job, operation, run.lock_ttl).await {
            Err(held @ LockError::Held { .. }) if !run.lock_wait.is_zero() => {
                (run.events)(JobEvent::Message { text: format!("waiting for the lock: {held}") });
                tokio::select! {
                    lock = self.store.lock_acquire_wait(key, &run.job, operation, run.lock_ttl, run.lock_wait) => lock?,
                    _ = run.cancel.cancelled() => return Err(EngineError::Cancelled),
                }
            }
            lock => lock?,
        };
        let result = self.locked_run(key, run, make_plan, &lock).await;
        let expires_at = lock.info().expires_at;
        if let Err(e) = lock.release().await {
            // The work is done (or failed for its own reason) and its state written: the result
            // stands; say what becomes of the lock, released in the background or expired.
            (run.events)(JobEvent::Message {
                text: format!(
                    "the lock could not be released ({e}): it is released as soon as the store answers, \
                     and expires at {} at the latest",
                    expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ),
            });
        }
        result
    }

    async fn locked_run<F, Fut>(
        &self,
        key: &OwnerKey,
        run: &RunOptions,
        make_plan: F,
        lock: &spawnit_store::LockGuard,
    ) -> Result<ExecutionReport, EngineError>
    where
        F: FnOnce(State) -> Fut,
        Fut: std::future::Future<Output = Result<Planned, EngineError>>,
    {
        let mut state = StateWriter::load(&self.store, key.clone()).await?;
        // A holder that lost this lock while paused can no longer write the state.
        state.fence().await?;
        let Planned { plan, redactor, provider } = make_plan(state.state().clone()).await?;
        // Every event of the run goes out through the one fail-closed redactor.
        let events: EventSink = {
            let (sink, redactor) = (run.events.clone(), redactor.clone());
            Arc::new(move |event| sink(redactor.event(&event)))
        };
        events(JobEvent::Planned { plan: plan.clone() });
        if plan.status == PlanStatus::Error {
            return Err(EngineError::NotReady(redactor.text(&plan.errors.join("; "))));
        }
        if let Some(approved) = &run.approved {
            if actions_of(approved) != actions_of(&plan) {
                return Err(EngineError::Conflict(
                    "the plan changed since it was shown (another change happened meanwhile): plan again".into(),
                ));
            }
        }
        let scope = Scope { owner: key.clone(), lineage: state.state().lineage.clone() };
        let cancel = run.cancel.child_token();
        let lost = lock.lost_token();
        let stop = cancel.clone();
        let watcher = tokio::spawn(async move {
            lost.cancelled().await;
            stop.cancel();
        });
        let report = execute(&plan, provider.as_ref(), &scope, &mut state, &cancel, &events, &redactor).await;
        watcher.abort();
        let report = report?;
        events(JobEvent::Finished {
            outcome: report.outcome,
            done: report.done,
            failed: report.failed,
            skipped: report.skipped,
            duration_ms: report.duration.as_millis() as u64,
        });
        Ok(report)
    }
}

/// The plan with secrets masked (fails closed: see [`Redactor::plan`]).
pub fn redacted_plan(plan: &Plan, redactor: &Redactor) -> Plan {
    redactor.plan(plan)
}

/// `e` with the secrets of `redactor` masked in its message. An error whose text holds a secret
/// keeps its kind where the kind carries plain text; a provider error becomes one whose only
/// text is the masked message.
pub fn masked_error(e: EngineError, redactor: &Redactor) -> EngineError {
    let message = match &e {
        EngineError::Provider(p) => p.chain(),
        other => other.to_string(),
    };
    if !redactor.holds_secret(&message) {
        return e;
    }
    let masked = redactor.text(&message);
    match e {
        EngineError::NotFound { .. } => EngineError::NotFound { what: masked },
        EngineError::AlreadyExists { .. } => EngineError::AlreadyExists { what: masked },
        EngineError::NotReady(_) => EngineError::NotReady(masked),
        EngineError::Invalid(v) | EngineError::Provider(ProviderError::Invalid(v)) => {
            EngineError::Invalid(ValidationError {
                errors: v
                    .errors
                    .iter()
                    .map(|f| spawnit_plan::FieldError {
                        field: redactor.text(&f.field),
                        reason: redactor.text(&f.reason),
                    })
                    .collect(),
            })
        }
        EngineError::Provider(_) => EngineError::Provider(ProviderError::Observe {
            what: masked,
            source: "details withheld: they contain a secret".into(),
        }),
        _ => EngineError::Conflict(masked),
    }
}

fn actions_of(plan: &Plan) -> Vec<(String, Action)> {
    plan.actions().map(|c| (c.address.to_string(), c.action)).collect()
}

/// A provider's refusal of a spec's settings is invalid input; anything else a provider error.
fn provider_error(e: ProviderError) -> EngineError {
    match e {
        ProviderError::Invalid(v) => EngineError::Invalid(v),
        other => EngineError::Provider(other),
    }
}

/// A service's status as one sweep saw it.
#[derive(Clone, Debug)]
pub struct ServiceStatus {
    pub spec: ServiceSpec,
    pub status: PlanStatus,
    /// One line per change or error, secrets masked.
    pub reasons: Vec<String>,
}

impl ServiceStatus {
    fn from_plan(spec: ServiceSpec, plan: &Plan, redactor: &Redactor) -> ServiceStatus {
        let reasons = if plan.status == PlanStatus::Error {
            plan.errors.iter().map(|e| redactor.text(e)).collect()
        } else {
            plan.actions()
                .map(|c| redactor.text(&format!("{} {}: {}", c.action, c.address, c.reasons.join("; "))))
                .collect()
        };
        ServiceStatus { status: plan.status, reasons, spec }
    }
}

/// Whether a client's network is ready for its services, from the network's spec and its apply
/// plan (`None`: the network has no spec): its Docker name, or why not. The one rule a service's
/// plan and the drift sweep share. The words name no command: the CLI, the API and the web pages
/// each say what their caller does about it (applying the service applies its network first).
pub fn network_readiness(network: &Id, planned: Option<(&NetworkSpec, &Plan)>) -> Result<String, String> {
    let Some((spec, plan)) = planned else { return Err(format!("network {network} is not applied yet")) };
    let reasons: Vec<String> = match plan.status {
        PlanStatus::Compliant => return Ok(spawnit_plan::network_name(spec)),
        PlanStatus::Error => plan.errors.clone(),
        PlanStatus::Drifted => {
            plan.actions().flat_map(|c| c.reasons.iter().map(move |r| format!("{}: {r}", c.address))).collect()
        }
    };
    Err(format!("network {network} is not applied yet ({})", reasons.join("; ")))
}

/// The services a sweep looks at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SweepScope {
    /// Every service of every client.
    All,
    /// These services, by (client, name); those without a spec are left out of the answer.
    Services(Vec<(Id, Id)>),
}

impl Engine {
    /// The status of the services in `scope`, planned purely against one observation of the
    /// Docker provider (`world`); services on other providers are observed one by one. The
    /// drift check of one service and the sweep of all are this one function.
    pub async fn sweep(&self, world: &ObservedWorld, scope: &SweepScope) -> Result<Vec<ServiceStatus>, EngineError> {
        let services = match scope {
            SweepScope::Services(services) => services.clone(),
            SweepScope::All => {
                let mut all = Vec::new();
                for client in self.store.client_list().await? {
                    all.extend(self.store.service_list(&client).await?.into_iter().map(|name| (client.clone(), name)));
                }
                all
            }
        };
        let mut networks: BTreeMap<(Id, Id), Result<String, String>> = BTreeMap::new();
        let mut out = Vec::new();
        for (client, name) in services {
            let spec = match self.store.service_spec(&client, &name).await {
                Ok(Some(spec)) => spec.value,
                Ok(None) => continue,
                // One unreadable spec must not hide the others: lists show it as an error.
                Err(e @ StoreError::Corrupt { .. }) => {
                    tracing::warn!("sweep: skipping service {client}/{name}: {e}");
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            if spec.provider != ProviderKind::Docker {
                match self.service_plan(&client, &name).await {
                    Ok(p) => out.push(ServiceStatus::from_plan(p.spec, &p.plan, &p.redactor)),
                    Err(e) => out.push(ServiceStatus { status: PlanStatus::Error, reasons: vec![e.to_string()], spec }),
                }
                continue;
            }
            let redactor = Redactor::for_spec(&spec);
            let subject = format!("service {client}/{name}");
            let network_of = (client.clone(), spec.network.clone());
            if !networks.contains_key(&network_of) {
                let ready = match self.network_ready(&client, &spec.network, Some(world)).await {
                    Err(EngineError::Store(e @ StoreError::Corrupt { .. })) => Err(e.to_string()),
                    other => other?,
                };
                networks.insert(network_of.clone(), ready);
            }
            let plan = match &networks[&network_of] {
                Err(message) => Plan::error(subject, message.clone()),
                Ok(network) => {
                    let key = OwnerKey::service(&client, &name);
                    match self.store.state(&key).await {
                        Err(e @ StoreError::Corrupt { .. }) => Plan::error(subject, e.to_string()),
                        Err(e) => return Err(e.into()),
                        Ok(state) => {
                            let state = state.map(|v| v.value).unwrap_or_else(|| State::new(""));
                            let desired = service_resources_on(&spec, network);
                            plan_apply(&subject, &desired, &state, &world.observed_for(&key, &desired), &redactor)
                        }
                    }
                }
            };
            out.push(ServiceStatus::from_plan(spec, &plan, &redactor));
        }
        Ok(out)
    }

    /// Changes a service's drift policy and lease (`Some(None)` removes the lease).
    pub async fn service_settings_set(
        &self,
        client: &Id,
        name: &Id,
        drift_policy: Option<spawnit_model::DriftPolicy>,
        expires_at: Option<Option<chrono::DateTime<Utc>>>,
    ) -> Result<ServiceSpec, EngineError> {
        let current = self.service_spec_versioned(client, name).await?;
        let mut spec = current.value;
        if let Some(policy) = drift_policy {
            spec.drift_policy = policy;
        }
        if let Some(expires_at) = expires_at {
            spec.expires_at = expires_at;
        }
        spec.updated_at = Utc::now();
        self.store.service_spec_put(&spec, PutCondition::Matches(current.version)).await?;
        Ok(spec)
    }
}

#[cfg(test)]
mod tests {
    use spawnit_model::plan::{Plan, PlanStatus};
    use spawnit_model::{DockerNaming, Id, NetworkSpec};

    use super::network_readiness;

    #[test]
    fn network_readiness_names_the_network_and_no_command() {
        let network = Id::parse("default").unwrap();
        assert_eq!(network_readiness(&network, None), Err("network default is not applied yet".to_owned()));
        let spec = NetworkSpec {
            client: Id::parse("acme").unwrap(),
            name: network.clone(),
            docker_naming: DockerNaming::CURRENT,
            created_at: chrono::Utc::now(),
        };
        let failed = Plan::error("network acme/default", "docker is down");
        assert_eq!(
            network_readiness(&network, Some((&spec, &failed))),
            Err("network default is not applied yet (docker is down)".to_owned())
        );
        let compliant = Plan {
            subject: "network acme/default".into(),
            status: PlanStatus::Compliant,
            changes: vec![],
            errors: vec![],
        };
        assert_eq!(network_readiness(&network, Some((&spec, &compliant))), Ok(spawnit_plan::network_name(&spec)));
    }
}
