//! The routes of the Swarm cluster: `/api/nodes…` (admins: list, show, drain, activate,
//! remove, the join command) and `/api/leases…` (each client its own leases of whole nodes:
//! rent, list, extend, release; admins for any client with `?client=`). Thin adapters over
//! [`crate::ops::nodes`], registered with their documentation like every other route.

use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use spawnit_cluster::NodeInfo;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Body, ClientQuery, Params};
use crate::AppState;
use crate::caller::Caller;
use crate::error::ApiError;
use crate::ops::nodes::{self, NodeLeaseExtendRequest, NodeRentRequest};
use crate::views::nodes::{JoinTokenView, NodeLeaseList, NodeLeaseView, NodeList};

/// The routes, each with its documentation.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(node_list))
        .routes(routes!(join_token))
        .routes(routes!(node_get, node_remove))
        .routes(routes!(node_drain))
        .routes(routes!(node_activate))
        .routes(routes!(lease_list, lease_rent))
        .routes(routes!(lease_release))
        .routes(routes!(lease_extend))
}

/// A `{id}` or `{node}` path segment: a Swarm node id or a hostname, checked by the operation
/// after the caller's rights (a member asking an admin route gets 403 whatever the segment).
pub struct NodeRef(pub String);

impl<S: Send + Sync> FromRequestParts<S> for NodeRef {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request(format!("invalid path: {}", e.body_text())))?;
        Ok(NodeRef(raw))
    }
}

#[derive(Deserialize, Default, IntoParams)]
#[into_params(parameter_in = Query)]
struct JoinQuery {
    /// `worker` (the default) or `manager`.
    #[param(pattern = "^(worker|manager)$")]
    role: Option<String>,
}

#[derive(Deserialize, Default, IntoParams)]
#[into_params(parameter_in = Query)]
struct RemoveQuery {
    /// Remove the node even when it is not down (Docker's `--force`); a rented node is still refused.
    force: Option<bool>,
}

type Answer<T> = Result<Json<T>, ApiError>;

/// Every node of the Swarm cluster with its tasks (admins).
#[utoipa::path(get, path = "/nodes", tag = "nodes",
    responses((status = 200, description = "Nodes: status, availability, role, engine, CPU and memory, labels, the renting client, quarantine, tasks", body = NodeList)))]
async fn node_list(State(s): State<AppState>, c: Caller) -> Answer<NodeList> {
    nodes::node_list(&s, &c).await.map(Json)
}

/// The exact `docker swarm join` command a new node runs (admins).
#[utoipa::path(get, path = "/nodes/join-token", tag = "nodes", params(JoinQuery),
    responses((status = 200, description = "The join command", body = JoinTokenView)))]
async fn join_token(State(s): State<AppState>, c: Caller, Params(q): Params<JoinQuery>) -> Answer<JoinTokenView> {
    let manager = match q.role.as_deref() {
        None | Some("worker") => false,
        Some("manager") => true,
        Some(other) => {
            let shown: String = other.chars().take(40).collect();
            // Admins only, before the value is judged.
            crate::ops::admin_only(&c)?;
            return Err(ApiError::invalid("role", format!("must be worker or manager, not {shown:?}")));
        }
    };
    nodes::join_token(&s, &c, manager).await.map(Json)
}

/// One node with its tasks (admins).
#[utoipa::path(get, path = "/nodes/{id}", tag = "nodes",
    params(("id" = String, Path, pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$", description = "Node id or hostname")),
    responses((status = 200, description = "The node", body = NodeInfo)))]
async fn node_get(State(s): State<AppState>, c: Caller, NodeRef(node): NodeRef) -> Answer<NodeInfo> {
    nodes::node_get(&s, &c, &node).await.map(Json)
}

/// Drain a node (admins): Swarm moves its tasks to other nodes and places nothing new on it.
#[utoipa::path(post, path = "/nodes/{id}/drain", tag = "nodes",
    params(("id" = String, Path, pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$", description = "Node id or hostname")),
    responses((status = 200, description = "The node, drained", body = NodeInfo)))]
async fn node_drain(State(s): State<AppState>, c: Caller, NodeRef(node): NodeRef) -> Answer<NodeInfo> {
    nodes::node_drain(&s, &c, &node).await.map(Json)
}

/// Make a node active again (admins): Swarm may place tasks on it.
#[utoipa::path(post, path = "/nodes/{id}/activate", tag = "nodes",
    params(("id" = String, Path, pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$", description = "Node id or hostname")),
    responses((status = 200, description = "The node, active", body = NodeInfo)))]
async fn node_activate(State(s): State<AppState>, c: Caller, NodeRef(node): NodeRef) -> Answer<NodeInfo> {
    nodes::node_activate(&s, &c, &node).await.map(Json)
}

/// Remove a node from the cluster (admins).
#[utoipa::path(delete, path = "/nodes/{id}", tag = "nodes",
    params(("id" = String, Path, pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$", description = "Node id or hostname"), RemoveQuery),
    responses((status = 204, description = "Removed")))]
async fn node_remove(
    State(s): State<AppState>,
    c: Caller,
    Params(q): Params<RemoveQuery>,
    NodeRef(node): NodeRef,
) -> Result<StatusCode, ApiError> {
    nodes::node_remove(&s, &c, &node, q.force.unwrap_or(false)).await.map(|()| StatusCode::NO_CONTENT)
}

/// The client's leases of whole nodes, each with its node's state.
#[utoipa::path(get, path = "/leases", tag = "nodes", params(ClientQuery),
    responses((status = 200, description = "Leases, soonest expiry first", body = NodeLeaseList)))]
async fn lease_list(State(s): State<AppState>, c: Caller, Params(q): Params<ClientQuery>) -> Answer<NodeLeaseList> {
    nodes::lease_list(&s, &c, q.client()).await.map(Json)
}

/// Rent whole nodes for the client, all or none: they get the client's label and its swarm
/// services are placed on them only.
#[utoipa::path(post, path = "/leases", tag = "nodes", params(ClientQuery), request_body = NodeRentRequest,
    responses((status = 201, description = "The new leases", body = NodeLeaseList)))]
async fn lease_rent(
    State(s): State<AppState>,
    c: Caller,
    Params(q): Params<ClientQuery>,
    Body(body): Body<NodeRentRequest>,
) -> Result<Response, ApiError> {
    nodes::lease_rent(&s, &c, q.client(), body).await.map(|v| (StatusCode::CREATED, Json(v)).into_response())
}

/// Extend the client's lease of a node.
#[utoipa::path(post, path = "/leases/{node}/extend", tag = "nodes",
    params(("node" = String, Path, pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$", description = "Node id or hostname"), ClientQuery),
    request_body = NodeLeaseExtendRequest,
    responses((status = 200, description = "The lease", body = NodeLeaseView)))]
async fn lease_extend(
    State(s): State<AppState>,
    c: Caller,
    Params(q): Params<ClientQuery>,
    NodeRef(node): NodeRef,
    Body(body): Body<NodeLeaseExtendRequest>,
) -> Answer<NodeLeaseView> {
    nodes::lease_extend(&s, &c, q.client(), &node, body).await.map(Json)
}

/// Release the client's lease of a node now: it is drained, cleaned (the client's tasks,
/// volumes and secrets removed) and returned to the pool.
#[utoipa::path(delete, path = "/leases/{node}", tag = "nodes",
    params(("node" = String, Path, pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$", description = "Node id or hostname"), ClientQuery),
    responses((status = 204, description = "Released")))]
async fn lease_release(
    State(s): State<AppState>,
    c: Caller,
    Params(q): Params<ClientQuery>,
    NodeRef(node): NodeRef,
) -> Result<StatusCode, ApiError> {
    nodes::lease_release(&s, &c, q.client(), &node).await.map(|()| StatusCode::NO_CONTENT)
}
