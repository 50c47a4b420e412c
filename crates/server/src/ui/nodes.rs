//! The pages of the Swarm cluster: the admins' cluster page (every node live — status,
//! availability, role, engine, CPU and memory, the client renting it, quarantine, tasks — with
//! drain and activate buttons and the join commands), and a client's nodes page (its leases
//! with a countdown and a warning before expiry, extend and release, and the form to rent
//! more). Both follow `/api/events`: a node or lease event fetches the page again and swaps
//! its live part, and a slow refresh catches what Swarm changes without SpawnIt's events (a
//! node joining).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use maud::{Markup, html};
use serde::Deserialize;
use spawnit_cluster::{Availability, ClusterEvent, NodeInfo, NodeRole, NodeStatus};
use spawnit_model::Id;

use super::{PageQuery, Posted, UiError, UiResult, Viewer, client_query, csrf_field, page, time};
use crate::AppState;
use crate::caller::Caller;
use crate::ops::{self, nodes};
use crate::views::nodes::{JoinTokenView, NodeLeaseView};

/// The server events after which a nodes page fetches itself again.
pub const LIVE_EVENTS: &str = "node_joined node_down node_returned node_cleaned node_clean_failed degraded healed \
    unplaced lease_replaced lease_replace_failed node_lease_warning node_lease_expired";

/// A lease ending within this is shown with a warning.
const WARN_BEFORE_S: i64 = 3600;

/// What a form did, shown above the page: (ok, message).
type Notice = Option<(bool, String)>;

fn notice(n: &Notice) -> Markup {
    html! {
        @if let Some((ok, m)) = n {
            p class=(if *ok { "notice" } else { "error" }) role="alert" { (m) }
        }
    }
}

/// The page of a server without a cluster.
fn no_cluster(c: &Caller, title: &str) -> Response {
    let body = html! {
        h1 { (title) }
        section.card #no-cluster {
            p { "This SpawnIt has no Swarm cluster: " (nodes::NO_CLUSTER) "." }
            @if c.is_admin() {
                p.muted { "Start the server with " code { "spawnit serve --swarm-host tcp://MANAGER:2376" } " (or " code { "SPAWNIT_SWARM_HOST" } ") to manage nodes and rent them to clients." }
            }
        }
    };
    page(title, c, body)
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1024.0 * 1024.0 * 1024.0))
}

fn cpus(n: f64) -> String {
    if n.fract() == 0.0 { format!("{n:.0}") } else { format!("{n:.2}") }
}

fn status_badge(s: NodeStatus) -> Markup {
    let class = match s {
        NodeStatus::Ready => "compliant",
        NodeStatus::Down | NodeStatus::Disconnected => "error",
        NodeStatus::Unknown => "drifted",
    };
    html! { span class=(format!("badge node-status {class}")) { (s.as_str()) } }
}

fn availability_badge(a: Availability) -> Markup {
    let class = match a {
        Availability::Active => "compliant",
        Availability::Pause | Availability::Drain => "drifted",
    };
    html! { span class=(format!("badge node-availability {class}")) { (a.as_str()) } }
}

fn role(r: NodeRole) -> &'static str {
    match r {
        NodeRole::Manager => "manager",
        NodeRole::Worker => "worker",
    }
}

// ---- the admins' cluster page ----

/// The table of every node (the live part of the cluster page).
fn node_table(c: &Caller, list: &[NodeInfo]) -> Markup {
    html! {
        @if list.is_empty() {
            p.muted { "The manager lists no node." }
        } @else {
            table.list #node-table {
                thead { tr {
                    th { "Node" } th { "Role" } th { "Status" } th { "Availability" } th { "Engine" }
                    th { "CPU / memory" } th { "Client" } th { "Quarantine" } th { "Tasks" } th { "Actions" }
                } }
                tbody {
                    @for n in list {
                        tr data-node=(n.id) {
                            td {
                                strong.hostname { (n.hostname) } br;
                                code.small title="Swarm node id" { (n.id.get(..12).unwrap_or(&n.id)) }
                                " " span.muted.small { (n.address) }
                            }
                            td { (role(n.role)) @if n.leader { " (leader)" } }
                            td { (status_badge(n.status)) }
                            td { (availability_badge(n.availability)) }
                            td { (n.engine_version) }
                            td { (cpus(n.cpus)) " CPU · " (gib(n.memory_bytes)) }
                            td.client {
                                @match &n.client {
                                    Some(cl) => {
                                        a href=(format!("/nodes?client={cl}")) { (cl) }
                                        @if let Some(l) = &n.lease { br; span.small.muted { "until " (time(l.expires_at)) } }
                                    }
                                    None => span.muted { "pool" },
                                }
                            }
                            td.quarantine { @if let Some(q) = &n.quarantine { span.badge.error { (q) } } @else { span.muted { "—" } } }
                            td.tasks {
                                @let running = n.tasks.iter().filter(|t| t.state == "running").count();
                                (running) " running"
                                @if n.tasks.len() > running { ", " (n.tasks.len() - running) " other" }
                                @if !n.tasks.is_empty() {
                                    ul.small.tasks {
                                        @for t in n.tasks.iter().take(8) {
                                            li { (t.service) @if let Some(s) = t.slot { "." (s) } " " span.muted { (t.state) }
                                                @if let Some(e) = &t.error { " " span.error.small { (e) } } }
                                        }
                                        @if n.tasks.len() > 8 { li.muted { "…" } }
                                    }
                                }
                            }
                            td {
                                div.row-actions {
                                    @if n.availability == Availability::Active {
                                        form method="post" action=(format!("/admin/nodes/{}/drain", n.id))
                                            data-confirm=(format!("Drain {}? Swarm moves its tasks to other nodes.", n.hostname)) {
                                            (csrf_field(c)) button.small type="submit" aria-label=(format!("Drain {}", n.hostname)) { "Drain" }
                                        }
                                    } @else {
                                        form method="post" action=(format!("/admin/nodes/{}/activate", n.id)) {
                                            (csrf_field(c)) button.small type="submit" aria-label=(format!("Activate {}", n.hostname)) { "Activate" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn join_block(id: &str, j: &Result<JoinTokenView, crate::error::ApiError>) -> Markup {
    html! {
        @match j {
            Ok(j) => { pre.console.join id=(id) { code { (j.command) } } }
            Err(e) => { p.error { (e.message) } }
        }
    }
}

/// When, what and about what one monitor event says, for the recent-events tables.
fn event_line(e: &ClusterEvent) -> (chrono::DateTime<Utc>, String, String) {
    let secs = |s: f64| format!("{s:.1} s");
    match e {
        ClusterEvent::NodeJoined { hostname, at, .. } => (*at, hostname.clone(), "joined the pool".into()),
        ClusterEvent::NodeDown { hostname, status, at, .. } => {
            (*at, hostname.clone(), format!("{}: quarantined, its tasks rescheduled by Swarm", status.as_str()))
        }
        ClusterEvent::NodeReturned { hostname, down_s, at, .. } => (
            *at,
            hostname.clone(),
            match down_s {
                Some(d) => format!("back after {}: quarantined until clean", secs(*d)),
                None => "back: quarantined until clean".into(),
            },
        ),
        ClusterEvent::NodeCleaned { hostname, reason, clean_s, at, .. } => {
            (*at, hostname.clone(), format!("cleaned in {} ({reason}), back in the pool", secs(*clean_s)))
        }
        ClusterEvent::NodeCleanFailed { hostname, error, at, .. } => (*at, hostname.clone(), error.clone()),
        ClusterEvent::ServiceDegraded { service, spawnit_service, running, desired, at, .. } => (
            *at,
            spawnit_service.clone().unwrap_or_else(|| service.clone()),
            format!("{running}/{desired} running: a node was lost"),
        ),
        ClusterEvent::ServiceHealed { service, spawnit_service, heal_s, at, .. } => (
            *at,
            spawnit_service.clone().unwrap_or_else(|| service.clone()),
            format!("all replicas running again {} after the node went down", secs(*heal_s)),
        ),
        ClusterEvent::ServiceUnplaced { service, spawnit_service, reason, at, .. } => {
            (*at, spawnit_service.clone().unwrap_or_else(|| service.clone()), reason.clone())
        }
        ClusterEvent::LeaseReplaced { from_hostname, to_hostname, client, at, .. } => {
            (*at, from_hostname.clone(), format!("replaced by {to_hostname} for {client}"))
        }
        ClusterEvent::LeaseReplaceFailed { hostname, reason, at, .. } => (*at, hostname.clone(), reason.clone()),
        ClusterEvent::NodeLeaseWarning { hostname, remaining_s, at, .. } => {
            (*at, hostname.clone(), format!("lease ends in {}", remaining(*remaining_s)))
        }
        ClusterEvent::NodeLeaseExpired { hostname, at, .. } => {
            (*at, hostname.clone(), "lease over: cleaned and returned".into())
        }
    }
}

/// The cluster monitor's last events (all of them for admins, the client's own otherwise).
fn events_section(s: &AppState, client: Option<&Id>) -> Markup {
    let events = s.cluster_events.recent(client);
    html! {
        section.card #cluster-events data-refresh-on=(LIVE_EVENTS) {
            h2 { "Recent events" }
            @if events.is_empty() {
                p.muted { "No node failure, healing or cleaning since this server started." }
            } @else {
                table.list {
                    thead { tr { th { "When" } th { "Event" } th { "Node or service" } th { "What happened" } } }
                    tbody {
                        @for e in &events {
                            @let (at, subject, detail) = event_line(e);
                            tr data-event=(e.name()) { td { (time(at)) } td { code { (e.name()) } } td { (subject) } td { (detail) } }
                        }
                    }
                }
            }
        }
    }
}

async fn cluster_render(s: &AppState, c: &Caller, message: Notice) -> UiResult {
    ops::admin_only(c)?;
    if s.cluster.is_none() {
        return Ok(no_cluster(c, "Cluster"));
    }
    let list = nodes::node_list(s, c).await;
    let worker = nodes::join_token(s, c, false).await;
    let manager = nodes::join_token(s, c, true).await;
    let body = html! {
        h1 { "Cluster" }
        (notice(&message))
        section.card #nodes data-refresh-on=(LIVE_EVENTS) {
            h2 { "Nodes" }
            @match &list {
                Ok(l) => {
                    @let ready = l.nodes.iter().filter(|n| n.status == NodeStatus::Ready).count();
                    @let rented = l.nodes.iter().filter(|n| n.client.is_some()).count();
                    p.muted #node-summary { (l.nodes.len()) " node(s): " (ready) " ready, " (rented) " rented, "
                        (l.nodes.iter().filter(|n| n.quarantine.is_some()).count()) " quarantined. Updated " (time(Utc::now())) "." }
                    (node_table(c, &l.nodes))
                }
                Err(e) => { p.error role="alert" { (e.message) } }
            }
        }
        (events_section(s, None))
        section.card #join {
            h2 { "Add a node" }
            p { "Run this on a machine with Docker to join it as a worker:" }
            (join_block("join-worker", &worker))
            @if let Ok(j) = &worker { p.muted.small { (j.hint) } }
            details {
                summary { "Join as a manager instead" }
                (join_block("join-manager", &manager))
            }
            p.muted.small { "Same in a terminal: " code { "spawnit node join-token" } " (" code { "--manager" } ")." }
        }
    };
    Ok(page("Cluster", c, body))
}

pub(super) async fn cluster_page(State(s): State<AppState>, Viewer(c): Viewer) -> UiResult {
    cluster_render(&s, &c, None).await
}

pub(super) async fn node_action(
    State(s): State<AppState>,
    Path((node, action)): Path<(String, String)>,
    Posted { caller: c, form: super::NoFields {} }: Posted<super::NoFields>,
) -> UiResult {
    ops::admin_only(&c)?;
    let done = match action.as_str() {
        "drain" => nodes::node_drain(&s, &c, &node).await,
        "activate" => nodes::node_activate(&s, &c, &node).await,
        other => return Err(UiError::new(StatusCode::NOT_FOUND, format!("There is no action {other:?} on a node."))),
    };
    let message = match done {
        Ok(n) => (true, format!("Node {} is now {}.", n.hostname, n.availability.as_str())),
        Err(e) => (false, super::sentence(&e.message)),
    };
    let failed = !message.0;
    let mut resp = cluster_render(&s, &c, Some(message)).await?;
    if failed {
        *resp.status_mut() = StatusCode::CONFLICT;
    }
    Ok(resp)
}

// ---- a client's nodes page ----

fn lease_rows(c: &Caller, client: &Id, leases: &[NodeLeaseView]) -> Markup {
    let qs = client_query(c, client);
    html! {
        @if leases.is_empty() {
            p.muted #no-leases { "No rented nodes: services on the swarm run on the shared pool." }
        } @else {
            table.list #lease-table {
                thead { tr { th { "Node" } th { "Status" } th { "CPU / memory" } th { "Lease ends" } th { "Actions" } } }
                tbody {
                    @for l in leases {
                        @let soon = l.remaining_s < WARN_BEFORE_S;
                        tr data-lease=(l.node_id) class=[soon.then_some("ending")] {
                            td { strong { (l.hostname) } @if let Some(n) = &l.node { br; span.muted.small { (n.address) } } }
                            td {
                                @match &l.node {
                                    Some(n) => { (status_badge(n.status)) " " (availability_badge(n.availability))
                                        @if let Some(q) = &n.quarantine { " " span.badge.error { "quarantined: " (q) } } }
                                    None => span.muted { "unknown" },
                                }
                            }
                            td { @if let Some(n) = &l.node { (cpus(n.cpus)) " CPU · " (gib(n.memory_bytes)) } }
                            td {
                                (time(l.expires_at)) br;
                                span.small { "in " span.countdown data-expires=(l.expires_at.to_rfc3339()) { (remaining(l.remaining_s)) } }
                                @if soon { br; span.badge.drifted.expiry-warning role="status" { "ends soon: extend it or it is cleaned and returned" } }
                            }
                            td {
                                div.row-actions {
                                    form.inline method="post" action=(format!("/nodes/{}/extend{qs}", l.node_id)) {
                                        (csrf_field(c))
                                        label.sr-only for=(format!("by-{}", l.node_id)) { "Extend the lease of " (l.hostname) " by" }
                                        select id=(format!("by-{}", l.node_id)) name="by" {
                                            option value="1h" selected { "+1 hour" }
                                            option value="2h" { "+2 hours" }
                                            option value="1d" { "+1 day" }
                                        }
                                        button.small type="submit" { "Extend" }
                                    }
                                    form method="post" action=(format!("/nodes/{}/release{qs}", l.node_id))
                                        data-confirm=(format!("Release {}? Your tasks, volumes and secrets on it are removed.", l.hostname)) {
                                        (csrf_field(c)) button.small.danger type="submit" { "Release" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn remaining(s: i64) -> String {
    let s = s.max(0);
    format!("{}h {:02}m {:02}s", s / 3600, (s % 3600) / 60, s % 60)
}

async fn leases_render(s: &AppState, c: &Caller, client: &Id, message: Notice) -> UiResult {
    if s.cluster.is_none() {
        return Ok(no_cluster(c, "Nodes"));
    }
    let qs = client_query(c, client);
    let leases = nodes::lease_list(s, c, Some(client.as_str())).await;
    let body = html! {
        h1 { "Nodes of " (client) }
        p.muted { "Rent whole swarm nodes: no other client's task runs on them, and this client's swarm services run only there while it holds a lease. A node that fails is replaced from the pool; at the lease's end the nodes are cleaned and returned." }
        (notice(&message))
        section.card #leases data-refresh-on=(LIVE_EVENTS) {
            h2 { "Rented nodes" }
            @match &leases {
                Ok(l) => (lease_rows(c, client, &l.leases)),
                Err(e) => p.error role="alert" { (e.message) },
            }
        }
        (events_section(s, Some(client)))
        section.card #rent {
            h2 { "Rent nodes" }
            form.inline method="post" action=(format!("/nodes{qs}")) {
                (csrf_field(c))
                label for="rent-count" { "Nodes" }
                input #rent-count type="number" name="count" min="1" max=(nodes::RENT_COUNT_MAX) value="1" required;
                label for="rent-ttl" { "for" }
                select #rent-ttl name="ttl" {
                    option value="1h" { "1 hour" }
                    option value="2h" selected { "2 hours" }
                    option value="1d" { "1 day" }
                    option value="7d" { "7 days" }
                }
                button.primary type="submit" { "Rent" }
            }
            p.muted.small { "All or none: when fewer nodes are free, nothing is rented." }
        }
    };
    Ok(page("Nodes", c, body))
}

/// The dashboard's note of the client's rented nodes: how many, and a warning for each lease
/// ending within the hour. Nothing without a cluster or a lease (or when the lease book
/// cannot be read: the Nodes page says why).
pub(super) async fn dashboard_leases(s: &AppState, c: &Caller) -> Markup {
    if s.cluster.is_none() {
        return html! {};
    }
    let Ok(list) = nodes::lease_list(s, c, None).await else { return html! {} };
    if list.leases.is_empty() {
        return html! {};
    }
    let ending: Vec<&NodeLeaseView> = list.leases.iter().filter(|l| l.remaining_s < WARN_BEFORE_S).collect();
    html! {
        section.card #my-nodes {
            p { "This client rents " (list.leases.len()) " node(s): its swarm services run there only. " a href="/nodes" { "Nodes" } }
            @for l in &ending {
                p.notice.expiry-warning role="alert" {
                    "The lease of node " strong { (l.hostname) } " ends in "
                    span.countdown data-expires=(l.expires_at.to_rfc3339()) { (remaining(l.remaining_s)) }
                    ": then the node is cleaned and returned to the pool. "
                    a href="/nodes" { "Extend it" }
                }
            }
        }
    }
}

pub(super) async fn nodes_page(State(s): State<AppState>, Viewer(c): Viewer, q: PageQuery) -> UiResult {
    let client = c.client_for(q.client.as_deref())?;
    leases_render(&s, &c, &client, None).await
}

/// The rent form's fields.
#[derive(Deserialize)]
pub(super) struct RentForm {
    #[serde(default)]
    count: String,
    #[serde(default)]
    ttl: String,
}

/// Renders the nodes page with what a form did; a refusal keeps its status (409, 422…).
async fn after(s: &AppState, c: &Caller, client: &Id, done: Result<String, crate::error::ApiError>) -> UiResult {
    let (status, message) = match done {
        Ok(m) => (StatusCode::OK, (true, m)),
        Err(e) => (e.status, (false, super::sentence(&e.message))),
    };
    let mut resp = leases_render(s, c, client, Some(message)).await?;
    *resp.status_mut() = status;
    Ok(resp)
}

pub(super) async fn rent_submit(
    State(s): State<AppState>,
    q: PageQuery,
    Posted { caller: c, form }: Posted<RentForm>,
) -> UiResult {
    let client = c.client_for(q.client.as_deref())?;
    let done = async {
        let count = form.count.trim().parse::<u64>().map_err(|_| {
            crate::error::ApiError::invalid(
                "count",
                format!("must be a whole number, not {:?}", form.count.chars().take(40).collect::<String>()),
            )
        })?;
        let req = nodes::NodeRentRequest { count: count.into(), ttl: ops::Ttl::Text(form.ttl.clone()) };
        let rented = nodes::lease_rent(&s, &c, Some(client.as_str()), req).await?;
        let names: Vec<&str> = rented.leases.iter().map(|l| l.hostname.as_str()).collect();
        Ok(format!("Rented {} node(s) for {}: {}.", names.len(), form.ttl, names.join(", ")))
    }
    .await;
    after(&s, &c, &client, done).await
}

/// The extend form's field.
#[derive(Deserialize)]
pub(super) struct LeaseActionForm {
    #[serde(default)]
    by: String,
}

pub(super) async fn lease_action(
    State(s): State<AppState>,
    q: PageQuery,
    Path((node, action)): Path<(String, String)>,
    Posted { caller: c, form }: Posted<LeaseActionForm>,
) -> UiResult {
    let client = c.client_for(q.client.as_deref())?;
    let asked = Some(client.as_str());
    let done = match action.as_str() {
        "extend" => {
            let req = nodes::NodeLeaseExtendRequest { by: ops::Ttl::Text(form.by) };
            nodes::lease_extend(&s, &c, asked, &node, req).await.map(|l| {
                format!("The lease of {} now ends at {}.", l.hostname, l.expires_at.format("%Y-%m-%d %H:%M:%S UTC"))
            })
        }
        "release" => nodes::lease_release(&s, &c, asked, &node)
            .await
            .map(|()| format!("Released {node}: it is cleaned and returned to the pool.")),
        other => return Err(UiError::new(StatusCode::NOT_FOUND, format!("There is no action {other:?} on a lease."))),
    };
    after(&s, &c, &client, done).await
}
