//! Services: create, list, get, update, scale, delete, and the plan, apply and destroy jobs.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;
use spawnit_engine::{ServiceCreate, redacted_plan};
use spawnit_model::plan::PlanStatus;
use spawnit_model::spec::{AwsSettings, SwarmSettings};
use spawnit_model::{DriftPolicy, Exposure, Id, ProviderKind};
use utoipa::ToSchema;
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};

use super::{audit, ids_check};
use crate::AppState;
use crate::caller::Caller;
use crate::error::ApiError;
use crate::index::{ListQuery, Listed};
use crate::jobs::{JobKind, Target};
use crate::views::{
    JobView, ReplicaView, ReplicatedContainerView, ScalePolicyView, ScaleView, ServiceList, ServiceListItem,
    ServiceView, Status, UnreadableServiceView, param_values,
};

/// What a new service is made of.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceCreateRequest {
    /// The catalog template.
    #[schema(value_type = Id)]
    pub template: String,
    #[schema(value_type = Id)]
    pub name: String,
    /// The client network it joins (`default` when absent).
    #[serde(default)]
    #[schema(value_type = Option<Id>)]
    pub network: Option<String>,
    /// The template's parameters (defaults and generated values fill the rest); which names
    /// exist and what values they take is the template's (`GET /api/catalog/{template}`).
    #[serde(default)]
    #[schema(schema_with = param_values)]
    pub params: BTreeMap<String, Value>,
    #[serde(default)]
    pub exposure: Option<Exposure>,
    #[serde(default)]
    pub provider: Option<ProviderKind>,
    #[serde(default)]
    pub drift_policy: Option<DriftPolicy>,
    /// Settings of the `aws` provider (only for `provider: aws`).
    #[serde(default)]
    pub aws: Option<AwsSettings>,
    /// Settings of the `swarm` provider (only for `provider: swarm`; the server's defaults,
    /// `serve --swarm-publish-mode`, when absent).
    #[serde(default)]
    pub swarm: Option<SwarmSettings>,
}

fn param_values_or_null() -> Schema {
    OneOfBuilder::new().item(param_values()).item(ObjectBuilder::new().schema_type(Type::Null)).into()
}

/// Stores a service's spec from a template (deploys nothing).
pub async fn service_create(
    s: &AppState,
    c: &Caller,
    client: Option<&str>,
    req: ServiceCreateRequest,
) -> Result<ServiceView, ApiError> {
    let client = c.client_for(client)?;
    let network = req.network.as_deref().unwrap_or("default");
    let ids = ids_check(&[("template", &req.template), ("name", &req.name), ("network", network)])?;
    // An admin-only template does not exist for a member: refused before anything is stored.
    super::catalog::template_for(s, c, &ids[0]).await?;
    let spec = s
        .engine
        .service_create(ServiceCreate {
            client: client.clone(),
            name: ids[1].clone(),
            template: ids[0].clone(),
            network: ids[2].clone(),
            exposure: req.exposure.unwrap_or_default(),
            provider: req.provider.unwrap_or_default(),
            params: req.params,
            aws: req.aws,
            swarm: req.swarm,
        })
        .await?;
    let spec = match req.drift_policy {
        Some(policy) => s.engine.service_settings_set(&client, &spec.name, Some(policy), None).await?,
        None => spec,
    };
    audit(s, c, &client, "create", format!("service {client}/{}", spec.name), spec.template.id.as_str()).await;
    Ok(ServiceView::new(&spec, None, Status::Drifted, &["not yet applied".to_owned()], None))
}

/// A page of the client's services with the status the drift monitor last saw, from the
/// in-memory index (O(page), see [`crate::index`]). The store is still asked one small read, so
/// a list fails like every other call while the store is down.
pub async fn service_list(
    s: &AppState,
    c: &Caller,
    client: Option<&str>,
    query: &ListQuery,
) -> Result<ServiceList, ApiError> {
    let client = c.client_for(client)?;
    let store = s.engine.store();
    store.probe(store.timeout()).await?;
    let page =
        s.index.page(&client, query, |name| s.board.get(&client, name).map(|seen| (seen.status, seen.reasons))).await?;
    let services = page
        .services
        .into_iter()
        .map(|listed| match listed {
            Listed::Unreadable { client, name, reason } => ServiceListItem::Unreadable(UnreadableServiceView {
                client,
                name,
                status: Status::Error,
                reasons: vec![reason],
            }),
            Listed::Service { spec, state, status, reasons } => {
                let reconcile = s.board.reconcile_failing(&client, &spec.name);
                ServiceListItem::Service(Box::new(ServiceView::new(
                    &spec,
                    state.as_deref(),
                    status,
                    &reasons,
                    reconcile,
                )))
            }
        })
        .collect();
    Ok(ServiceList { services, next_cursor: page.next_cursor })
}

/// A service, freshly planned.
pub async fn service_get(s: &AppState, c: &Caller, client: Option<&str>, name: &Id) -> Result<ServiceView, ApiError> {
    service_view(s, &c.client_for(client)?, name).await
}

/// The view of a service of `client`, freshly planned (the client already checked).
pub(super) async fn service_view(s: &AppState, client: &Id, name: &Id) -> Result<ServiceView, ApiError> {
    let planned = s.engine.service_plan(client, name).await?;
    let state = s.engine.service_state(client, name).await?;
    let redacted = redacted_plan(&planned.plan, &planned.redactor);
    let reasons: Vec<String> = if redacted.status == PlanStatus::Error {
        redacted.errors.clone()
    } else {
        redacted.actions().map(|c| format!("{} {}: {}", c.action, c.address, c.reasons.join("; "))).collect()
    };
    let reconcile = s.board.reconcile_failing(client, name);
    Ok(ServiceView::new(&planned.spec, state.as_ref(), redacted.status.into(), &reasons, reconcile))
}

/// What a change of a service may set; absent fields stay as they are.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceUpdateRequest {
    /// Parameters to change (the others keep their values).
    #[serde(default)]
    #[schema(schema_with = param_values_or_null)]
    pub params: Option<BTreeMap<String, Value>>,
    #[serde(default)]
    pub exposure: Option<Exposure>,
    #[serde(default)]
    pub drift_policy: Option<DriftPolicy>,
}

/// Changes parameters or settings (re-renders the spec; applies nothing).
pub async fn service_update(
    s: &AppState,
    c: &Caller,
    client: Option<&str>,
    name: &Id,
    req: ServiceUpdateRequest,
) -> Result<ServiceView, ApiError> {
    let client = c.client_for(client)?;
    let spec = s.engine.service_spec(&client, name).await?;
    if !c.is_admin() && spec.instance.containers.values().any(|container| container.docker_socket) {
        // Its parameters (the image it runs) decide what gets the host's Docker socket.
        return Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "service {client}/{name} has the Docker socket (template {}): only an admin changes it",
                spec.template.id
            ),
        ));
    }
    if req.params.is_some() || req.exposure.is_some() {
        s.engine.service_update(&client, name, &req.params.unwrap_or_default(), req.exposure).await?;
    }
    if req.drift_policy.is_some() {
        s.engine.service_settings_set(&client, name, req.drift_policy, None).await?;
    }
    audit(s, c, &client, "change", format!("service {client}/{name}"), "").await;
    let _ = s.recheck.send((client.clone(), name.clone()));
    service_view(s, &client, name).await
}

/// Forgets a destroyed service (refused while one of its jobs is queued or running).
pub async fn service_delete(s: &AppState, c: &Caller, client: Option<&str>, name: &Id) -> Result<(), ApiError> {
    let client = c.client_for(client)?;
    let target = Target::Service { client: client.clone(), name: name.clone() };
    if s.jobs.busy(&target) {
        return Err(ApiError::conflict(format!("{target} has a job queued or running")));
    }
    s.engine.service_delete(&client, name).await?;
    audit(s, c, &client, "delete", target.to_string(), "").await;
    Ok(())
}

/// Queues a plan, apply or destroy job of a service.
pub async fn service_job(
    s: &AppState,
    c: &Caller,
    client: Option<&str>,
    name: &Id,
    kind: JobKind,
) -> Result<JobView, ApiError> {
    let client = c.client_for(client)?;
    s.engine.service_spec(&client, name).await?;
    super::job_submit(s, c, kind, Target::Service { client, name: name.clone() }).await
}

/// A new replica count for a replicated container.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceScaleRequest {
    /// How many replicas run (within the container's scale policy, when it has one). Any JSON
    /// number: `3` and `3.0` are the same whole number.
    #[schema(value_type = u32, minimum = 1, maximum = 20)]
    pub replicas: serde_json::Number,
    /// The replicated container; needed only when the service has several.
    #[serde(default)]
    #[schema(value_type = Option<Id>)]
    pub container: Option<String>,
}

/// Sets a replicated container's count (re-renders the spec, compare-and-swap) and queues an
/// apply job; bad input changes nothing. The autoscaler's cooldowns start again.
pub async fn service_scale(
    s: &AppState,
    c: &Caller,
    client: Option<&str>,
    name: &Id,
    req: ServiceScaleRequest,
) -> Result<JobView, ApiError> {
    let client = c.client_for(client)?;
    let max = spawnit_model::spec::MAX_REPLICAS;
    let replicas = super::whole_number(&req.replicas)
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| {
            ApiError::invalid("replicas", format!("must be a whole number between 1 and {max} (got {})", req.replicas))
        })?;
    if let Some(container) = &req.container {
        super::id_check("container", container)?;
    }
    let at = chrono::Utc::now();
    let (spec, from) = s.engine.service_scale(&client, name, req.container.as_deref(), replicas).await?;
    let container = req.container.clone().unwrap_or_else(|| {
        spec.instance.containers.iter().find(|(_, c)| c.replicated()).map(|(n, _)| n.clone()).unwrap_or_default()
    });
    s.scaling.scaled(&client, name, at);
    let target = Target::Service { client: client.clone(), name: name.clone() };
    audit(s, c, &client, "scale", target.to_string(), &format!("{container}: {from} → {replicas}")).await;
    let _ = s.recheck.send((client.clone(), name.clone()));
    super::job_submit(s, c, JobKind::Apply, target).await
}

/// The replicas of a service's replicated containers (with their status and last CPU sample)
/// and the autoscaler's recent decisions.
pub async fn service_scale_get(
    s: &AppState,
    c: &Caller,
    client: Option<&str>,
    name: &Id,
) -> Result<ScaleView, ApiError> {
    let client = c.client_for(client)?;
    let spec = s.engine.service_spec(&client, name).await?;
    let state = s.engine.service_state(&client, name).await?;
    let redactor = spawnit_model::Redactor::for_spec(&spec);
    let mut containers = Vec::new();
    for (container, cs) in spec.instance.containers.iter().filter(|(_, c)| c.replicated()) {
        let replicas = state.as_ref().map(|st| crate::autoscaler::replica_ids(st, container)).unwrap_or_default();
        let ids: Vec<String> = replicas.iter().map(|(_, id)| id.clone()).collect();
        // The page still shows the replicas while Docker does not answer, without a status.
        let statuses = s.docker.container_statuses(&ids).await.unwrap_or_default();
        let samples = s.scaling.samples(&client, name, container);
        let instances = replicas
            .into_iter()
            .map(|(address, id)| {
                let sample = samples.iter().find(|x| x.id == id);
                ReplicaView {
                    address: redactor.text(&address.to_string()),
                    status: statuses.get(&id).cloned(),
                    cpu_percent: sample.and_then(|x| x.cpu_percent),
                    sampled_at: sample.map(|x| x.at),
                    id,
                }
            })
            .collect();
        containers.push(ReplicatedContainerView {
            container: redactor.text(container),
            replicas: cs.replica_count(),
            policy: cs.scale.as_ref().map(|p| ScalePolicyView {
                min: p.min,
                max: p.max,
                target_cpu_percent: p.target_cpu_percent,
            }),
            instances,
        });
    }
    let decisions = s
        .scaling
        .decisions(&client, name)
        .into_iter()
        .map(|d| crate::autoscaler::ScaleDecision { reason: redactor.text(&d.reason), ..d })
        .collect();
    Ok(ScaleView { client, name: name.clone(), containers, decisions })
}
