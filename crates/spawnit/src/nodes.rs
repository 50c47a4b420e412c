//! `spawnit node …`: runs one cluster operation against the manager given by `--swarm-host`
//! and prints it as text (tables and sentences) or, with `--output json`, as the shapes of
//! docs/cli-json.md (the API's: a node is the cluster's `NodeInfo`, a lease its `LeaseView`).

use std::fmt::Write as _;

use anyhow::{Context, Result, bail};
use chrono::Utc;
use spawnit_cluster::{Cluster, LeaseTarget, LeaseView, NodeInfo, NodeRole};
use spawnit_store::Store;

use crate::cli::{NodeCommand, Output};
use crate::print_json;
use crate::swarm_cli::SwarmArgs;

/// What to say when no manager is given.
const NO_HOST: &str = "no swarm cluster is configured: pass --swarm-host tcp://MANAGER:PORT (or set SPAWNIT_SWARM_HOST) \
     naming the Docker API of a Swarm manager";

/// The cluster of `--swarm-host`, with the lease book in `store`.
pub async fn cluster_open(swarm: &SwarmArgs, store: Store) -> Result<Option<Cluster>> {
    let Some(host) = swarm.swarm_host.as_deref() else { return Ok(None) };
    let docker = spawnit_docker::swarm_connect(host, swarm.swarm_tls_dir.as_deref())?
        .negotiate_version()
        .await
        .with_context(|| format!("the swarm manager at {host} does not answer"))?;
    Ok(Some(Cluster::connect(docker, store)))
}

/// Runs one `spawnit node` verb.
pub async fn run(swarm: &SwarmArgs, store: Store, cmd: NodeCommand) -> Result<u8> {
    let Some(cluster) = cluster_open(swarm, store).await? else { bail!("{NO_HOST}") };
    match cmd {
        NodeCommand::List { client, output } => {
            let mut nodes = cluster.node_list().await?;
            if let Some(c) = &client {
                nodes.retain(|n| n.client.as_ref() == Some(c));
            }
            match output {
                Output::Json => print_json(&serde_json::to_value(&nodes)?)?,
                Output::Text => print!("{}", node_table(&nodes)),
            }
        }
        NodeCommand::Show { node, output } => {
            let n = cluster.node_show(&node).await?;
            match output {
                Output::Json => print_json(&serde_json::to_value(&n)?)?,
                Output::Text => print!("{}", node_text(&n)),
            }
        }
        NodeCommand::JoinToken { manager, output } => {
            let role = if manager { NodeRole::Manager } else { NodeRole::Worker };
            let view = spawnit_server::ops::nodes::join_view(cluster.join_command(role).await?);
            match output {
                Output::Json => print_json(&serde_json::to_value(&view)?)?,
                Output::Text => {
                    // The command alone on stdout (`$(spawnit node join-token)` runs it), the hint aside.
                    println!("{}", view.command);
                    eprintln!("{}", view.hint);
                }
            }
        }
        NodeCommand::Drain { node } => {
            let n = cluster.node_drain(&node).await?;
            println!(
                "Node {} ({}) is drained: Swarm moves its {} task(s) to other nodes and places nothing new on it.",
                n.hostname,
                short(&n.id),
                n.tasks.iter().filter(|t| t.desired_state == "running").count()
            );
        }
        NodeCommand::Activate { node } => {
            let n = cluster.node_activate(&node).await?;
            println!("Node {} ({}) is active: Swarm may place tasks on it.", n.hostname, short(&n.id));
        }
        NodeCommand::Remove { node, force } => {
            cluster.node_remove(&node, force).await?;
            println!("Node {node} is removed from the cluster.");
        }
        NodeCommand::Rent { client, count, ttl, output } => {
            let leases = cluster.node_rent(&client, count, ttl).await?;
            match output {
                Output::Json => print_json(&serde_json::to_value(&leases)?)?,
                Output::Text => {
                    let until = leases.iter().map(|l| l.expires_at).min().unwrap_or_else(Utc::now);
                    println!(
                        "Rented {} node(s) to client {client} until {}: {}.",
                        leases.len(),
                        until.format("%Y-%m-%d %H:%M:%S UTC"),
                        names(&leases)
                    );
                    println!(
                        "Its swarm services now run on these nodes only. Extend: `spawnit node extend --client {client} --all --by 1h`."
                    );
                }
            }
        }
        NodeCommand::Release { client, target, output } => {
            let target = lease_target(target.node, target.all);
            let leases = cluster.lease_release(&client, target).await?;
            match output {
                Output::Json => print_json(&serde_json::to_value(&leases)?)?,
                Output::Text if leases.is_empty() => println!("Client {client} rents no node: nothing released."),
                Output::Text => println!(
                    "Released {} node(s) of client {client}: {}. Each is drained, cleaned and returned to the pool.",
                    leases.len(),
                    names(&leases)
                ),
            }
        }
        NodeCommand::Extend { client, target, by, output } => {
            let target = lease_target(target.node, target.all);
            let leases = cluster.lease_extend(&client, target, by).await?;
            match output {
                Output::Json => print_json(&serde_json::to_value(&leases)?)?,
                Output::Text if leases.is_empty() => println!("Client {client} rents no node: nothing extended."),
                Output::Text => {
                    for l in &leases {
                        println!(
                            "The lease of {} by client {client} now ends at {}.",
                            l.hostname,
                            l.expires_at.format("%Y-%m-%d %H:%M:%S UTC")
                        );
                    }
                }
            }
        }
    }
    Ok(0)
}

fn lease_target(node: Option<String>, all: bool) -> LeaseTarget {
    match node {
        Some(n) if !all => LeaseTarget::Node(n),
        _ => LeaseTarget::All,
    }
}

fn names(leases: &[LeaseView]) -> String {
    leases.iter().map(|l| l.hostname.as_str()).collect::<Vec<_>>().join(", ")
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

fn gib(bytes: u64) -> String {
    format!("{:.1}GiB", bytes as f64 / (1024.0 * 1024.0 * 1024.0))
}

/// The nodes as a table, one line each.
pub fn node_table(nodes: &[NodeInfo]) -> String {
    let mut out = String::new();
    let w = nodes.iter().map(|n| n.hostname.len()).max().unwrap_or(8).max(8);
    let _ = writeln!(
        out,
        "{:<12}  {:<w$}  {:<7}  {:<12}  {:<8}  {:<14}  {:>4}  {:>8}  {:<12}  {:<10}  TASKS",
        "ID", "HOSTNAME", "ROLE", "STATUS", "AVAIL", "ENGINE", "CPUS", "MEMORY", "CLIENT", "QUARANTINE"
    );
    for n in nodes {
        let role = match n.role {
            NodeRole::Manager if n.leader => "leader",
            NodeRole::Manager => "manager",
            NodeRole::Worker => "worker",
        };
        let running = n.tasks.iter().filter(|t| t.state == "running").count();
        let _ = writeln!(
            out,
            "{:<12}  {:<w$}  {:<7}  {:<12}  {:<8}  {:<14}  {:>4}  {:>8}  {:<12}  {:<10}  {running} running",
            short(&n.id),
            n.hostname,
            role,
            n.status.as_str(),
            n.availability.as_str(),
            n.engine_version,
            n.cpus,
            gib(n.memory_bytes),
            n.client.as_ref().map_or("-", |c| c.as_str()),
            n.quarantine.as_deref().unwrap_or("-"),
        );
    }
    if nodes.is_empty() {
        let _ = writeln!(out, "(no node)");
    }
    out
}

/// One node, every field, and its tasks.
pub fn node_text(n: &NodeInfo) -> String {
    let mut out = String::new();
    let role = match n.role {
        NodeRole::Manager => "manager",
        NodeRole::Worker => "worker",
    };
    let _ = writeln!(out, "Node {} ({})", n.hostname, n.id);
    let _ = writeln!(out, "Address:      {}", n.address);
    let _ = writeln!(out, "Role:         {role}{}", if n.leader { " (leader)" } else { "" });
    let _ = writeln!(out, "Status:       {}", n.status.as_str());
    let _ = writeln!(out, "Availability: {}", n.availability.as_str());
    let _ = writeln!(out, "Engine:       {}", n.engine_version);
    let _ = writeln!(out, "Resources:    {} CPU, {}", n.cpus, gib(n.memory_bytes));
    match (&n.client, &n.lease) {
        (Some(c), Some(l)) => {
            let _ = writeln!(out, "Rented by:    {c} until {}", l.expires_at.format("%Y-%m-%d %H:%M:%S UTC"));
        }
        (Some(c), None) => {
            let _ = writeln!(out, "Rented by:    {c}");
        }
        _ => {
            let _ = writeln!(out, "Rented by:    - (pool)");
        }
    }
    let _ = writeln!(out, "Quarantine:   {}", n.quarantine.as_deref().unwrap_or("-"));
    if !n.labels.is_empty() {
        let _ = writeln!(out, "Labels:");
        for (k, v) in &n.labels {
            let _ = writeln!(out, "  {k}={v}");
        }
    }
    let _ = writeln!(out, "Tasks:");
    if n.tasks.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    for t in &n.tasks {
        let slot = t.slot.map(|s| format!(".{s}")).unwrap_or_default();
        let error = t.error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default();
        let _ = writeln!(out, "  {}{slot}  {} → {}{error}", t.service, t.state, t.desired_state);
    }
    out
}
