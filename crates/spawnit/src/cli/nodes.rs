//! `spawnit node …`: the Swarm cluster's nodes (list, show, join-token, drain, activate,
//! remove) and whole-node leases (rent, release, extend). Clap definitions only; the verbs act
//! on the manager given by `--swarm-host` and on the store's lease book.

use std::time::Duration;

use clap::{Args, Subcommand};
use spawnit_model::Id;

use super::{Output, parse_duration_positive, parse_id};

/// Which lease(s) of the client a verb acts on: one node, or `--all`.
#[derive(Args, Debug, Clone)]
#[group(required = true, multiple = false)]
pub struct LeaseTargetArgs {
    /// The rented node (id or hostname).
    #[arg(value_parser = parse_node)]
    pub node: Option<String>,
    /// Every node the client rents.
    #[arg(long)]
    pub all: bool,
}

#[derive(Subcommand, Debug)]
pub enum NodeCommand {
    /// Every node: role, status, availability, engine, CPU/memory, the renting client,
    /// quarantine, tasks.
    #[command(
        after_help = "Examples:\n  spawnit node list --swarm-host tcp://10.0.0.1:2376\n  spawnit node list --client acme --output json"
    )]
    List {
        /// Only the nodes this client rents.
        #[arg(long, value_parser = parse_id)]
        client: Option<Id>,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// One node with its tasks.
    Show {
        /// The node (id or hostname).
        #[arg(value_parser = parse_node)]
        node: String,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Print the exact `docker swarm join …` command a new node runs (it dials out to the
    /// manager, so it may sit behind NAT).
    #[command(after_help = "Example, on the new machine:\n  $(spawnit node join-token)")]
    JoinToken {
        /// The command for a new manager instead of a worker.
        #[arg(long)]
        manager: bool,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Drain a node: Swarm moves its tasks to other nodes and places nothing new on it.
    Drain {
        #[arg(value_parser = parse_node)]
        node: String,
    },
    /// Make a drained node active again.
    Activate {
        #[arg(value_parser = parse_node)]
        node: String,
    },
    /// Remove a node from the cluster (drain it and stop its engine first, or --force).
    Remove {
        #[arg(value_parser = parse_node)]
        node: String,
        /// Remove it even when it is not down.
        #[arg(long)]
        force: bool,
    },
    /// Rent whole nodes to a client for a while, all or none: they get the client's label and
    /// the client's swarm services run only there.
    #[command(after_help = "Example:\n  spawnit node rent --client acme --count 2 --ttl 2h")]
    Rent {
        /// The client renting the nodes.
        #[arg(long, value_parser = parse_id)]
        client: Id,
        /// How many nodes.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=spawnit_model::node::MAX_RENT_COUNT as i64))]
        count: u32,
        /// How long the lease runs (e.g. 30m, 2h, 7d).
        #[arg(long, value_parser = parse_duration_positive)]
        ttl: Duration,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// End a client's lease of a node (or all its leases) now: the node is drained, cleaned
    /// and returned to the pool.
    #[command(
        after_help = "Examples:\n  spawnit node release --client acme spawnit-node-2\n  spawnit node release --client acme --all"
    )]
    Release {
        /// The client holding the lease.
        #[arg(long, value_parser = parse_id)]
        client: Id,
        #[command(flatten)]
        target: LeaseTargetArgs,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Extend a client's lease of a node (or all its leases).
    #[command(
        after_help = "Examples:\n  spawnit node extend --client acme spawnit-node-2 --by 1h\n  spawnit node extend --client acme --all --by 1d"
    )]
    Extend {
        /// The client holding the lease.
        #[arg(long, value_parser = parse_id)]
        client: Id,
        #[command(flatten)]
        target: LeaseTargetArgs,
        /// How much longer (e.g. 30m, 1h, 1d).
        #[arg(long, value_parser = parse_duration_positive)]
        by: Duration,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
}

impl NodeCommand {
    /// Whether the verb writes the store (the lease book).
    pub fn writes(&self) -> bool {
        matches!(self, NodeCommand::Rent { .. } | NodeCommand::Release { .. } | NodeCommand::Extend { .. })
    }
}

/// A node reference: a Swarm node id or a hostname.
fn parse_node(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 128
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(s.to_owned())
    } else {
        Err("not a node id or hostname (1 to 128 of a-z, A-Z, 0-9, '.', '_', '-', starting with a letter or digit)"
            .into())
    }
}
