//! Networks: create, list, get, and the plan, apply and destroy jobs.

use serde::Deserialize;
use spawnit_model::Id;
use spawnit_model::OwnerKey;
use spawnit_model::plan::PlanStatus;
use utoipa::ToSchema;

use super::{audit, id_check};
use crate::AppState;
use crate::caller::Caller;
use crate::error::ApiError;
use crate::jobs::{JobKind, Target};
use crate::views::{JobView, NetworkList, NetworkResourceView, NetworkView};

/// A new network.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NetworkCreateRequest {
    #[schema(value_type = Id)]
    pub name: String,
}

/// The client's networks, freshly planned.
pub async fn network_list(s: &AppState, c: &Caller, client: Option<&str>) -> Result<NetworkList, ApiError> {
    let client = c.client_for(client)?;
    let mut networks = Vec::new();
    for name in s.engine.network_list(&client).await? {
        networks.push(network_view(s, &client, &name).await?);
    }
    Ok(NetworkList { networks })
}

/// Stores a network's spec (deploys nothing).
pub async fn network_create(
    s: &AppState,
    c: &Caller,
    client: Option<&str>,
    req: NetworkCreateRequest,
) -> Result<NetworkView, ApiError> {
    let client = c.client_for(client)?;
    let name = id_check("name", &req.name)?;
    s.engine.network_create(&client, &name).await?;
    audit(s, c, &client, "create", format!("network {client}/{name}"), "").await;
    network_view(s, &client, &name).await
}

/// A network, freshly planned.
pub async fn network_get(s: &AppState, c: &Caller, client: Option<&str>, name: &Id) -> Result<NetworkView, ApiError> {
    network_view(s, &c.client_for(client)?, name).await
}

/// Queues a plan, apply or destroy job of a network.
pub async fn network_job(
    s: &AppState,
    c: &Caller,
    client: Option<&str>,
    name: &Id,
    kind: JobKind,
) -> Result<JobView, ApiError> {
    let client = c.client_for(client)?;
    s.engine.network_spec(&client, name).await?;
    super::job_submit(s, c, kind, Target::Network { client, name: name.clone() }).await
}

async fn network_view(s: &AppState, client: &Id, name: &Id) -> Result<NetworkView, ApiError> {
    let plan = s.engine.network_plan(client, name).await?;
    let state = s.engine.store().state(&OwnerKey::network(client, name)).await?.map(|v| v.value);
    let reasons: Vec<String> = if plan.status == PlanStatus::Error {
        plan.errors.clone()
    } else {
        plan.actions().map(|c| format!("{} {}: {}", c.action, c.address, c.reasons.join("; "))).collect()
    };
    let resources = state
        .map(|s| s.resources.iter().map(|(a, r)| (a.to_string(), NetworkResourceView { id: r.id.clone() })).collect())
        .unwrap_or_default();
    Ok(NetworkView { client: client.clone(), name: name.clone(), status: plan.status.into(), reasons, resources })
}
