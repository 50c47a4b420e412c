//! Nodes and leases of whole nodes, over the Swarm cluster ([`spawnit_cluster::Cluster`]).
//!
//! Nodes are the admins': list, show, drain, activate, remove, and the join command. Leases
//! are the clients': a client rents nodes for itself (a member for its own client, an admin
//! for any client with `?client=`, as every other client-scoped operation), sees, extends and
//! releases only its own. Renting is self-service like deploying a service — the issue's
//! "a client rents N nodes" — and the pool stays fair through the cluster's atomic allocation
//! (compare-and-swap on the lease book: two clients never get the same node); an admin renting
//! for a client is the same operation with `?client=`.
//!
//! A client's answers are built from its own leases only, so another client's node, hostname
//! or address never reaches it: a node it does not rent is "not found", as another client's
//! service is. Without a cluster (`serve` without `--swarm-host`) every operation answers 503
//! saying so, after the caller's rights are checked (a member still gets 403 on admin routes).

use std::time::Duration;

use axum::http::StatusCode;
use chrono::Utc;
use serde::Deserialize;
use spawnit_cluster::{Cluster, ClusterError, JoinCommand, LeaseTarget, LeaseView, NodeInfo, NodeRole};
use spawnit_model::Id;
use utoipa::ToSchema;

use super::leases::Ttl;
use super::{admin_only, audit};
use crate::AppState;
use crate::caller::Caller;
use crate::error::ApiError;
use crate::views::nodes::{JoinTokenView, LeasedNodeView, NodeLeaseList, NodeLeaseView, NodeList};

/// The most nodes one rent asks for.
pub const RENT_COUNT_MAX: u32 = spawnit_model::node::MAX_RENT_COUNT;

/// The longest node reference (a Swarm node id, or a hostname).
pub const NODE_REF_MAX: usize = 128;

/// What a node reference may hold: a Swarm node id or a hostname.
pub const NODE_REF_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$";

/// The message of every operation on a server without a cluster.
pub const NO_CLUSTER: &str = "no swarm cluster is configured (serve --swarm-host)";

/// The cluster, or a 503 saying none is configured.
pub fn cluster(s: &AppState) -> Result<&Cluster, ApiError> {
    s.cluster.as_ref().ok_or_else(|| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no_cluster", NO_CLUSTER))
}

/// A node reference (Swarm id or hostname), or a 422 naming `field`.
pub fn node_ref_check(field: &str, value: &str) -> Result<String, ApiError> {
    let ok = !value.is_empty()
        && value.len() <= NODE_REF_MAX
        && value.as_bytes()[0].is_ascii_alphanumeric()
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(value.to_owned())
    } else {
        let shown: String = value.chars().take(40).collect();
        Err(ApiError::invalid(
            field,
            format!(
                "{shown:?} is not a node id or hostname (letters, digits, '.', '_', '-'; at most {NODE_REF_MAX} characters)"
            ),
        ))
    }
}

impl From<ClusterError> for ApiError {
    /// The cluster's error at the API's edge: its kind is the status; the message carries
    /// every cause (Docker's and the store's messages hold no secret).
    fn from(e: ClusterError) -> ApiError {
        use spawnit_cluster::ErrorKind as K;
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            let text = cause.to_string();
            if !message.contains(&text) {
                message = format!("{message}: {text}");
            }
            source = cause.source();
        }
        match (&e, e.kind()) {
            (ClusterError::Invalid { field, reason }, _) => ApiError::invalid(field, reason.clone()),
            (_, K::NotFound) => ApiError::new(StatusCode::NOT_FOUND, "not_found", message),
            (_, K::Conflict) => ApiError::conflict(message),
            (_, K::Invalid) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", message),
            (_, K::Unavailable) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "cluster_unavailable", message),
            (_, K::Internal) => ApiError::new(StatusCode::BAD_GATEWAY, "cluster_error", message),
        }
    }
}

// ---- nodes (admins) ----

/// Every node with its tasks (admins).
pub async fn node_list(s: &AppState, c: &Caller) -> Result<NodeList, ApiError> {
    admin_only(c)?;
    Ok(NodeList { nodes: cluster(s)?.node_list().await? })
}

/// One node with its tasks (admins).
pub async fn node_get(s: &AppState, c: &Caller, node: &str) -> Result<NodeInfo, ApiError> {
    admin_only(c)?;
    let node = node_ref_check("node", node)?;
    Ok(cluster(s)?.node_show(&node).await?)
}

/// Drains a node (admins): Swarm moves its tasks elsewhere and schedules nothing new there.
pub async fn node_drain(s: &AppState, c: &Caller, node: &str) -> Result<NodeInfo, ApiError> {
    node_availability(s, c, node, false).await
}

/// Makes a drained node active again (admins).
pub async fn node_activate(s: &AppState, c: &Caller, node: &str) -> Result<NodeInfo, ApiError> {
    node_availability(s, c, node, true).await
}

async fn node_availability(s: &AppState, c: &Caller, node: &str, active: bool) -> Result<NodeInfo, ApiError> {
    admin_only(c)?;
    let node = node_ref_check("node", node)?;
    let cluster = cluster(s)?;
    if active {
        cluster.node_activate(&node).await?;
    } else {
        cluster.node_drain(&node).await?;
    }
    let info = cluster.node_show(&node).await?;
    let action = if active { "node_activate" } else { "node_drain" };
    audit(s, c, &c.client, action, format!("node {}", info.hostname), &info.id).await;
    Ok(info)
}

/// Removes a node from the cluster (admins).
pub async fn node_remove(s: &AppState, c: &Caller, node: &str, force: bool) -> Result<(), ApiError> {
    admin_only(c)?;
    let node = node_ref_check("node", node)?;
    cluster(s)?.node_remove(&node, force).await?;
    audit(s, c, &c.client, "node_remove", format!("node {node}"), if force { "forced" } else { "" }).await;
    Ok(())
}

/// The command a new worker (or, with `manager`, a new manager) runs to join (admins).
pub async fn join_token(s: &AppState, c: &Caller, manager: bool) -> Result<JoinTokenView, ApiError> {
    admin_only(c)?;
    let role = if manager { NodeRole::Manager } else { NodeRole::Worker };
    Ok(join_view(cluster(s)?.join_command(role).await?))
}

/// The join command's view: the command and what the node needs to reach.
pub fn join_view(j: JoinCommand) -> JoinTokenView {
    JoinTokenView { role: j.role, command: j.command, manager_addr: j.manager_addr, hint: JOIN_HINT.to_owned() }
}

/// What a joining node needs, in one line (the README says more).
pub const JOIN_HINT: &str = "Run it on the new node: it dials out to the manager on TCP 2377, so it may sit behind \
     NAT; overlay networks also need TCP/UDP 7946 and UDP 4789 open between the nodes.";

// ---- leases (each client its own) ----

/// A rent of whole nodes.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeRentRequest {
    /// How many nodes (all or none). Any JSON number: `2` and `2.0` are the same.
    #[schema(value_type = u32, minimum = 1, maximum = 100)]
    pub count: serde_json::Number,
    /// How long the lease runs.
    pub ttl: Ttl,
}

/// How much longer a node lease runs.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeLeaseExtendRequest {
    /// Added to the lease's end (from now if it has already passed).
    pub by: Ttl,
}

/// The count of a rent, or a 422 naming `count`.
pub fn rent_count_check(count: &serde_json::Number) -> Result<u32, ApiError> {
    super::whole_number(count)
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| (1..=RENT_COUNT_MAX).contains(n))
        .ok_or_else(|| {
            ApiError::invalid("count", format!("must be a whole number between 1 and {RENT_COUNT_MAX} (got {count})"))
        })
}

/// Rents `count` free nodes to the client, all or none; answers the client's leases.
pub async fn lease_rent(
    s: &AppState,
    c: &Caller,
    client: Option<&str>,
    req: NodeRentRequest,
) -> Result<NodeLeaseList, ApiError> {
    let client = c.client_for(client)?;
    let count = rent_count_check(&req.count)?;
    let ttl = req.ttl.duration()?;
    let cluster = cluster(s)?;
    let rented = cluster.node_rent(&client, count, ttl).await?;
    let names: Vec<&str> = rented.iter().map(|l| l.hostname.as_str()).collect();
    let detail = format!("{} for {}", names.join(", "), human(ttl));
    audit(s, c, &client, "node_rent", format!("{count} node(s)"), &detail).await;
    let nodes = cluster.node_list().await.unwrap_or_default();
    Ok(lease_list_view(&client, &rented, &nodes))
}

/// The client's leases, with the state of each of its nodes.
pub async fn lease_list(s: &AppState, c: &Caller, client: Option<&str>) -> Result<NodeLeaseList, ApiError> {
    let client = c.client_for(client)?;
    let cluster = cluster(s)?;
    let leases = cluster.lease_list(Some(&client)).await?;
    // The nodes' state is a bonus: the leases are listed even when the manager does not answer.
    let nodes = if leases.is_empty() { Vec::new() } else { cluster.node_list().await.unwrap_or_default() };
    Ok(lease_list_view(&client, &leases, &nodes))
}

/// The client's lease of `node` (id or hostname), or 404: another client's lease does not
/// exist for it, whether the node exists or not.
async fn own_lease(cluster: &Cluster, client: &Id, node: &str) -> Result<LeaseView, ApiError> {
    let leases = cluster.lease_list(Some(client)).await?;
    leases
        .into_iter()
        .find(|l| &l.client == client && (l.node_id == node || l.hostname == node))
        .ok_or_else(|| ApiError::not_found(format!("a lease of node {node} by client {client}")))
}

/// Extends the client's lease of `node` by `by`.
pub async fn lease_extend(
    s: &AppState,
    c: &Caller,
    client: Option<&str>,
    node: &str,
    req: NodeLeaseExtendRequest,
) -> Result<NodeLeaseView, ApiError> {
    let client = c.client_for(client)?;
    let node = node_ref_check("node", node)?;
    let by = req.by.duration().map_err(|e| rename_field(e, "ttl", "by"))?;
    let cluster = cluster(s)?;
    let lease = own_lease(cluster, &client, &node).await?;
    let extended = cluster.lease_extend(&client, LeaseTarget::Node(lease.node_id.clone()), by).await?;
    let lease = extended.into_iter().find(|l| l.node_id == lease.node_id).unwrap_or(lease);
    let detail = format!("by {}, expires {}", human(by), lease.expires_at);
    audit(s, c, &client, "node_lease_extend", format!("node {}", lease.hostname), &detail).await;
    let nodes = cluster.node_list().await.unwrap_or_default();
    Ok(lease_view(&lease, &nodes))
}

/// Ends the client's lease of `node` now: the node is drained, cleaned and returned to the pool.
pub async fn lease_release(s: &AppState, c: &Caller, client: Option<&str>, node: &str) -> Result<(), ApiError> {
    let client = c.client_for(client)?;
    let node = node_ref_check("node", node)?;
    let cluster = cluster(s)?;
    let lease = own_lease(cluster, &client, &node).await?;
    cluster.lease_release(&client, LeaseTarget::Node(lease.node_id.clone())).await?;
    audit(s, c, &client, "node_release", format!("node {}", lease.hostname), "").await;
    Ok(())
}

/// A 422 about `from` (as the shared parser names it) said about `to`.
fn rename_field(mut e: ApiError, from: &str, to: &str) -> ApiError {
    e.message = e.message.replacen(&format!("invalid input: {from}:"), &format!("invalid input: {to}:"), 1);
    if let Some(d) = e.details.get_mut(0).and_then(|d| d.get_mut("field")) {
        *d = serde_json::Value::String(to.to_owned());
    }
    e
}

/// A duration as people write it: `2h`, `90m`, `45s`.
pub fn human(d: Duration) -> String {
    match d.as_secs() {
        s if s > 0 && s % 86400 == 0 => format!("{}d", s / 86400),
        s if s > 0 && s % 3600 == 0 => format!("{}h", s / 3600),
        s if s > 0 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

// ---- views ----

/// The client's leases, soonest expiry first; each with its own node's state when `nodes` has it.
pub fn lease_list_view(client: &Id, leases: &[LeaseView], nodes: &[NodeInfo]) -> NodeLeaseList {
    let mut leases: Vec<NodeLeaseView> =
        leases.iter().filter(|l| &l.client == client).map(|l| lease_view(l, nodes)).collect();
    leases.sort_by(|a, b| a.expires_at.cmp(&b.expires_at).then_with(|| a.hostname.cmp(&b.hostname)));
    NodeLeaseList { client: client.clone(), leases }
}

/// One lease, with only its own node's state (the node must be rented by the lease's client).
pub fn lease_view(l: &LeaseView, nodes: &[NodeInfo]) -> NodeLeaseView {
    let node = nodes.iter().find(|n| n.id == l.node_id && n.client.as_ref().is_none_or(|c| c == &l.client));
    NodeLeaseView {
        node_id: l.node_id.clone(),
        hostname: l.hostname.clone(),
        client: l.client.clone(),
        started_at: l.started_at,
        expires_at: l.expires_at,
        remaining_s: (l.expires_at - Utc::now()).num_seconds().max(0),
        warned: l.warned.clone(),
        node: node.map(|n| LeasedNodeView {
            address: n.address.clone(),
            status: n.status,
            availability: n.availability,
            cpus: n.cpus,
            memory_bytes: n.memory_bytes,
            quarantine: n.quarantine.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_refs_and_counts_are_checked_naming_the_field() {
        for ok in ["x2f0jv6ld5ecx7k5tcdq2vxcw", "spawnit-swarm-t-1", "node1.example.com", "N_1"] {
            assert_eq!(node_ref_check("node", ok).unwrap(), ok);
        }
        for bad in ["", "-x", "a/b", "a b", "../etc", &"a".repeat(300), "é"] {
            let e = node_ref_check("node", bad).unwrap_err();
            assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
            assert_eq!(e.details[0]["field"], "node", "{bad}");
        }
        let n = |v: serde_json::Value| serde_json::from_value::<serde_json::Number>(v).unwrap();
        assert_eq!(rent_count_check(&n(serde_json::json!(2))).unwrap(), 2);
        assert_eq!(rent_count_check(&n(serde_json::json!(2.0))).unwrap(), 2);
        for bad in [serde_json::json!(0), serde_json::json!(-1), serde_json::json!(1.5), serde_json::json!(101)] {
            let e = rent_count_check(&n(bad.clone())).unwrap_err();
            assert_eq!(e.details[0]["field"], "count", "{bad}");
            assert!(e.message.contains("between 1 and 100"), "{}", e.message);
        }
    }

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(human(Duration::from_secs(7200)), "2h");
        assert_eq!(human(Duration::from_secs(86400 * 2)), "2d");
        assert_eq!(human(Duration::from_secs(90 * 60)), "90m");
        assert_eq!(human(Duration::from_secs(45)), "45s");
        let e = rename_field(ApiError::invalid("ttl", "must be between 1 second and 10 years"), "ttl", "by");
        assert_eq!(e.details[0]["field"], "by");
        assert!(e.message.starts_with("invalid input: by:"), "{}", e.message);
    }
}
