//! The command line: clap definitions only. Terraform's conventions: `plan`, `apply`,
//! `destroy`, `--auto-approve`, `--detailed-exitcode`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use spawnit_model::Id;

#[derive(Parser, Debug)]
#[command(
    name = "spawnit",
    version,
    about = "One-click self-hosted services: declarative specs in an object store, planned and applied on Docker.",
    long_about = "SpawnIt deploys catalog services (databases, caches, game servers, DevOps tools, web apps) on the \
                  local Docker engine. Every service is a desired spec kept in an object store; `plan` compares it \
                  with what runs, `apply` makes it so, `destroy` removes it.\n\n\
                  Quick start:\n  spawnit catalog\n  spawnit create hello web --set message='Hi!'\n  \
                  spawnit network apply default --auto-approve\n  spawnit apply web --auto-approve\n  spawnit show web"
)]
pub struct Cli {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Where specs and state live.
#[derive(Args, Debug, Clone)]
pub struct StoreArgs {
    /// Local directory of the embedded store.
    #[arg(long, global = true, env = "SPAWNIT_DATA", default_value = "./spawnit-data")]
    pub data_dir: PathBuf,
    /// An S3 store instead, as s3://bucket[/prefix] (credentials from the standard AWS variables).
    #[arg(long, global = true, env = "SPAWNIT_STORE")]
    pub store: Option<String>,
    /// Endpoint of an S3-compatible server (e.g. http://127.0.0.1:9000).
    #[arg(long, global = true, env = "SPAWNIT_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
}

#[derive(ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Output {
    #[default]
    Text,
    Json,
}

/// Which client's objects a command acts on.
#[derive(Args, Debug, Clone)]
pub struct ClientArg {
    /// The client (tenant) owning the service or network.
    #[arg(long, env = "SPAWNIT_CLIENT", default_value = "default", value_parser = parse_id)]
    pub client: Id,
}

/// How a writer waits for another writer.
#[derive(Args, Debug, Clone)]
pub struct LockArgs {
    /// How long to wait for another writer's lock (e.g. 30s, 2m); 0s fails at once.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub lock_timeout: Duration,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// List the catalog's templates.
    Catalog {
        /// Show one template's parameters.
        #[arg(value_parser = parse_id)]
        template: Option<Id>,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Store a service's spec from a template and parameters (deploys nothing).
    Create {
        #[arg(value_parser = parse_id)]
        template: Id,
        #[arg(value_parser = parse_id)]
        service: Id,
        #[command(flatten)]
        client: ClientArg,
        /// The client network the service joins (created as a spec if missing).
        #[arg(long, default_value = "default", value_parser = parse_id)]
        network: Id,
        /// A parameter, as key=value (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        set: Vec<(String, String)>,
        /// Publish ports on every host address instead of 127.0.0.1.
        #[arg(long)]
        public: bool,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Change a service's parameters (re-renders its spec; applies nothing).
    Update {
        #[arg(value_parser = parse_id)]
        service: Id,
        #[command(flatten)]
        client: ClientArg,
        #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        set: Vec<(String, String)>,
        /// Publish ports on every host address (true) or 127.0.0.1 only (false).
        #[arg(long)]
        public: Option<bool>,
    },
    /// Show what apply would change.
    Plan {
        #[arg(value_parser = parse_id)]
        service: Id,
        #[command(flatten)]
        client: ClientArg,
        /// Exit 0 when compliant, 2 when changes are needed, 1 on error.
        #[arg(long)]
        detailed_exitcode: bool,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Plan, ask, and make the service match its spec.
    Apply {
        #[arg(value_parser = parse_id)]
        service: Id,
        #[command(flatten)]
        client: ClientArg,
        /// Do not ask for confirmation.
        #[arg(long)]
        auto_approve: bool,
        #[command(flatten)]
        lock: LockArgs,
    },
    /// Delete every resource of a service (its spec stays).
    Destroy {
        #[arg(value_parser = parse_id)]
        service: Id,
        #[command(flatten)]
        client: ClientArg,
        #[arg(long)]
        auto_approve: bool,
        #[command(flatten)]
        lock: LockArgs,
    },
    /// Remove a destroyed service's spec and state.
    Delete {
        #[arg(value_parser = parse_id)]
        service: Id,
        #[command(flatten)]
        client: ClientArg,
    },
    /// A service's spec (secrets masked), state, status and endpoints.
    Show {
        #[arg(value_parser = parse_id)]
        service: Id,
        #[command(flatten)]
        client: ClientArg,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Every service of the client: compliant, drifted or error.
    Status {
        #[command(flatten)]
        client: ClientArg,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// A service's resource graph as Graphviz DOT.
    Graph {
        #[arg(value_parser = parse_id)]
        service: Id,
        #[command(flatten)]
        client: ClientArg,
    },
    /// A client's networks: create, plan, apply, destroy, list.
    #[command(subcommand)]
    Network(NetworkCommand),
}

#[derive(Subcommand, Debug)]
pub enum NetworkCommand {
    /// Store a network's spec (deploys nothing).
    Create {
        #[arg(value_parser = parse_id)]
        name: Id,
        #[command(flatten)]
        client: ClientArg,
    },
    /// Show what apply would change.
    Plan {
        #[arg(value_parser = parse_id)]
        name: Id,
        #[command(flatten)]
        client: ClientArg,
        #[arg(long)]
        detailed_exitcode: bool,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Create or repair the network.
    Apply {
        #[arg(value_parser = parse_id)]
        name: Id,
        #[command(flatten)]
        client: ClientArg,
        #[arg(long)]
        auto_approve: bool,
        #[command(flatten)]
        lock: LockArgs,
    },
    /// Delete the network (refused while deployed services use it).
    Destroy {
        #[arg(value_parser = parse_id)]
        name: Id,
        #[command(flatten)]
        client: ClientArg,
        #[arg(long)]
        auto_approve: bool,
        #[command(flatten)]
        lock: LockArgs,
    },
    /// The client's networks.
    List {
        #[command(flatten)]
        client: ClientArg,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
}

fn parse_id(s: &str) -> Result<Id, String> {
    Id::parse(s).map_err(|e| e.to_string())
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("{s:?} is not KEY=VALUE"))?;
    if k.is_empty() {
        return Err(format!("{s:?} has an empty KEY"));
    }
    Ok((k.to_owned(), v.to_owned()))
}

/// `30s`, `2m`, `1h`, `500ms`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = number.parse().map_err(|_| format!("{s:?} is not a duration like 30s, 2m or 1h"))?;
    match unit {
        "" | "s" => Ok(Duration::from_secs(n)),
        "ms" => Ok(Duration::from_millis(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!("{s:?} is not a duration like 30s, 2m or 1h")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("soon").is_err());
    }
}
