//! The command line: clap definitions only. Terraform's conventions: `plan`, `apply`,
//! `destroy`, `--auto-approve`, `--detailed-exitcode`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use spawnit_model::Id;

mod nodes;
pub use nodes::NodeCommand;

#[derive(Parser, Debug)]
#[command(
    name = "spawnit",
    version,
    about = "One-click self-hosted services: declarative specs in an object store, planned and applied on Docker, \
             Docker Swarm or AWS.",
    long_about = "SpawnIt deploys catalog services (databases, caches, game servers, DevOps tools, web apps) on the \
                  local Docker engine, on a Docker Swarm cluster (--provider swarm; `spawnit node` for its nodes and \
                  leases) or on AWS (--provider aws). Every service is a desired spec kept in an object store; \
                  `plan` compares it with what runs, `apply` makes it so, `destroy` removes it.\n\n\
                  Quick start:\n  spawnit catalog\n  spawnit create hello web --set message='Hi!'\n  \
                  spawnit network apply default --auto-approve\n  spawnit apply web --auto-approve\n  spawnit show web"
)]
pub struct Cli {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub aws: AwsArgs,
    #[command(flatten)]
    pub swarm: crate::swarm_cli::SwarmArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Where specs and state live.
#[derive(Args, Debug, Clone)]
pub struct StoreArgs {
    /// Local directory of the embedded store.
    #[arg(long, global = true, env = "SPAWNIT_DATA", default_value = "./spawnit-data")]
    pub data_dir: PathBuf,
    /// An S3 store instead, as s3://bucket[/prefix] (credentials from the standard AWS variables;
    /// empty: none).
    #[arg(long, global = true, env = "SPAWNIT_STORE")]
    pub store: Option<String>,
    /// Endpoint of an S3-compatible server (e.g. http://127.0.0.1:9000; empty: AWS S3).
    #[arg(long, global = true, env = "SPAWNIT_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// Longest time a store call may take (reads are tried again within it); a store that does
    /// not answer in time gives a clear error (HTTP 503 from the server) instead of a hang.
    #[arg(long, global = true, env = "SPAWNIT_STORE_TIMEOUT", default_value = "10s", value_parser = parse_duration_positive)]
    pub store_timeout: Duration,
}

/// How SpawnIt reaches AWS (credentials: the standard chain — environment, profile, SSO
/// cache excepted, instance role).
#[derive(Args, Debug, Clone)]
pub struct AwsArgs {
    /// Endpoint of every EC2 call, for an emulator or an EC2-compatible cloud.
    #[arg(long, global = true, env = "AWS_ENDPOINT_URL")]
    pub aws_endpoint: Option<String>,
    /// Profile of ~/.aws/config to use.
    #[arg(long, global = true, env = "AWS_PROFILE")]
    pub aws_profile: Option<String>,
}

/// Where a service runs.
#[derive(ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ProviderArg {
    /// The local Docker engine.
    #[default]
    Docker,
    /// An EC2 instance running the containers, behind a security group.
    Aws,
    /// Docker Swarm services on the cluster of --swarm-host.
    Swarm,
    /// An EC2 auto-scaling group behind an application load balancer (sticky sessions), with
    /// an ElastiCache Redis when the template has one (templates with a load balancer).
    AwsAsg,
    /// ECS Fargate tasks behind an application load balancer, with an ElastiCache Redis when
    /// the template has one (templates with a load balancer).
    AwsEcs,
}

/// Where and how an `aws`, `aws-asg` or `aws-ecs` service runs.
#[derive(Args, Debug, Clone, Default)]
pub struct AwsCreateArgs {
    /// Region (default: AWS_REGION or the profile's).
    #[arg(long)]
    pub aws_region: Option<String>,
    /// Instance type [default: t3.micro].
    #[arg(long)]
    pub aws_instance_type: Option<String>,
    /// AMI id; by default the newest image matching --aws-ami-owner and --aws-ami-name.
    #[arg(long)]
    pub aws_ami: Option<String>,
    /// Owner of the looked-up AMI [default: amazon].
    #[arg(long)]
    pub aws_ami_owner: Option<String>,
    /// Name filter of the looked-up AMI [default: amzn2-ami-ecs-hvm-*-x86_64-ebs].
    #[arg(long)]
    pub aws_ami_name: Option<String>,
    /// EC2 key pair for SSH.
    #[arg(long)]
    pub aws_key_name: Option<String>,
    /// Subnet (default: the default VPC's default subnet).
    #[arg(long)]
    pub aws_subnet: Option<String>,
    /// VPC of the security group (default: the default VPC).
    #[arg(long)]
    pub aws_vpc: Option<String>,
    /// CIDR allowed to reach the service's ports (repeatable; required unless --public,
    /// which opens them to 0.0.0.0/0).
    #[arg(long = "aws-allow", value_name = "CIDR")]
    pub aws_allow: Vec<String>,
    /// CIDR allowed to reach SSH, port 22 (repeatable; SSH stays closed without it).
    #[arg(long = "aws-ssh", value_name = "CIDR")]
    pub aws_ssh: Vec<String>,
    /// aws-ecs: CPU units of each task, 1024 = one vCPU [default: 256].
    #[arg(long)]
    pub aws_task_cpu: Option<u32>,
    /// aws-ecs: memory of each task in MiB, a Fargate size for the CPU [default: 512].
    #[arg(long, value_name = "MIB")]
    pub aws_task_memory: Option<u32>,
}

impl AwsCreateArgs {
    pub fn any(&self) -> bool {
        let Self {
            aws_region,
            aws_instance_type,
            aws_ami,
            aws_ami_owner,
            aws_ami_name,
            aws_key_name,
            aws_subnet,
            aws_vpc,
            aws_allow,
            aws_ssh,
            aws_task_cpu,
            aws_task_memory,
        } = self;
        [aws_region, aws_instance_type, aws_ami, aws_ami_owner, aws_ami_name, aws_key_name, aws_subnet, aws_vpc]
            .iter()
            .any(|o| o.is_some())
            || !aws_allow.is_empty()
            || !aws_ssh.is_empty()
            || aws_task_cpu.is_some()
            || aws_task_memory.is_some()
    }
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
        /// Publish ports on every host address instead of 127.0.0.1 (on AWS: open them to
        /// 0.0.0.0/0 when no --aws-allow is given).
        #[arg(long)]
        public: bool,
        /// Where the service runs.
        #[arg(long, value_enum, default_value_t)]
        provider: ProviderArg,
        #[command(flatten)]
        aws: Box<AwsCreateArgs>,
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
    /// Set how many replicas of a replicated container run (the desired count in the spec;
    /// applies nothing: run `spawnit plan` / `spawnit apply` as after `update`). The count must
    /// lie within the container's scale policy (min..max) when it has one.
    #[command(
        after_help = "Examples:\n  spawnit scale shop 3\n  spawnit scale shop 2 --container worker\n  spawnit apply shop"
    )]
    Scale {
        /// The service.
        #[arg(value_parser = parse_id)]
        service: Id,
        /// The new replica count.
        #[arg(value_name = "N")]
        replicas: u32,
        /// The replicated container; needed only when the service has several.
        #[arg(long)]
        container: Option<String>,
        #[command(flatten)]
        client: ClientArg,
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
    /// Plan, ask, and make the service match its spec (applying its network first when it is not
    /// applied yet).
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
    /// Run the server: JSON API, jobs, drift monitor, leases.
    Serve(ServeArgs),
    /// API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Web UI accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// The Swarm cluster's nodes and whole-node leases (needs --swarm-host).
    #[command(subcommand)]
    Node(NodeCommand),
    /// GET a running server's /healthz: exit 0 when it answers 200, 1 otherwise (the image's
    /// HEALTHCHECK: slim images have no curl). Opens no store and no Docker connection.
    #[command(
        hide = true,
        after_help = "Examples:\n  spawnit healthcheck\n  spawnit healthcheck --url http://10.0.0.5:8080/healthz"
    )]
    Healthcheck {
        /// The URL to GET (plain http). Default: /healthz on 127.0.0.1 at SPAWNIT_LISTEN's port
        /// (8080 when unset).
        #[arg(long)]
        url: Option<String>,
        /// Give up after this long (e.g. 3s).
        #[arg(long, default_value = "3s", value_parser = parse_duration_positive)]
        timeout: Duration,
    },
}

impl Command {
    /// Whether the command changes the store (refused up front on a read-only store).
    pub fn writes(&self) -> bool {
        match self {
            Command::Catalog { .. }
            | Command::Plan { .. }
            | Command::Show { .. }
            | Command::Status { .. }
            | Command::Graph { .. }
            | Command::Serve(_)
            | Command::Healthcheck { .. } => false,
            Command::Network(n) => !matches!(n, NetworkCommand::Plan { .. } | NetworkCommand::List { .. }),
            Command::Node(n) => n.writes(),
            _ => true,
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a local user; prints the password when one is generated.
    Create {
        /// The user's name (an id: lowercase letters, digits, dashes).
        #[arg(value_parser = parse_id)]
        name: Id,
        /// The client the user belongs to.
        #[arg(long, value_parser = parse_id)]
        client: Id,
        /// Give the user the admin role (sees every client).
        #[arg(long)]
        admin: bool,
        /// The password (at least 8 characters); generated and printed when absent.
        #[arg(long, env = "SPAWNIT_USER_PASSWORD")]
        password: Option<String>,
        /// The e-mail address that links the user's first single sign-on (the ID token must
        /// carry exactly this address, with `email_verified`).
        #[arg(long)]
        email: Option<String>,
    },
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on (loopback by default).
    #[arg(long, env = "SPAWNIT_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// A job running longer than this is stopped and ends timed_out.
    #[arg(long, env = "SPAWNIT_JOB_TIMEOUT", default_value = "30m", value_parser = parse_duration_positive)]
    pub job_timeout: Duration,
    /// Time between full drift sweeps (Docker events trigger checks in between).
    #[arg(long, env = "SPAWNIT_SWEEP_INTERVAL", default_value = "30s", value_parser = parse_duration_positive)]
    pub sweep_interval: Duration,
    /// Time between lease checks.
    #[arg(long, env = "SPAWNIT_LEASE_INTERVAL", default_value = "5s", value_parser = parse_duration_positive)]
    pub lease_interval: Duration,
    /// Wait after a failed reconcile apply before the next; doubles with each failure in a row.
    #[arg(long, env = "SPAWNIT_RECONCILE_BACKOFF", default_value = "10s", value_parser = parse_duration)]
    pub reconcile_backoff: Duration,
    /// The longest wait between failed reconcile applies.
    #[arg(long, env = "SPAWNIT_RECONCILE_BACKOFF_MAX", default_value = "10m", value_parser = parse_duration)]
    pub reconcile_backoff_max: Duration,
    /// Time between two CPU samplings of the scalable services by the autoscaler.
    #[arg(long, env = "SPAWNIT_AUTOSCALE_INTERVAL", default_value = "10s", value_parser = parse_duration_positive)]
    pub autoscale_interval: Duration,
    /// The autoscaler scales a service out only when its last scaling is older than this.
    #[arg(long, env = "SPAWNIT_SCALE_OUT_COOLDOWN", default_value = "30s", value_parser = parse_duration)]
    pub scale_out_cooldown: Duration,
    /// The autoscaler scales a service in only when its last scaling is older than this.
    #[arg(long, env = "SPAWNIT_SCALE_IN_COOLDOWN", default_value = "2m", value_parser = parse_duration)]
    pub scale_in_cooldown: Duration,
    /// How long before a lease ends a warning is published (repeatable).
    #[arg(long = "lease-warning", default_values = ["1h", "5m"], value_parser = parse_duration)]
    pub lease_warnings: Vec<Duration>,
    /// Finished jobs kept.
    #[arg(long, default_value_t = 500)]
    pub jobs_keep: usize,
    /// This server's name among the replicas sharing its store (shown in /healthz and in the
    /// jobs it runs); default: the host's name and a random suffix.
    #[arg(long, env = "SPAWNIT_REPLICA_ID")]
    pub replica_id: Option<String>,
    /// A replica that stops renewing its claim on a job for this long (killed, paused, cut
    /// off) has the job taken over by another replica.
    #[arg(long, env = "SPAWNIT_CLAIM_TTL", default_value = "15s", value_parser = parse_duration_positive)]
    pub claim_ttl: Duration,
    /// A leader that stops renewing its lease for this long has the background tasks (drift
    /// monitor, lease keeper, autoscaler, node monitor) resumed by another replica.
    #[arg(long, env = "SPAWNIT_LEADER_TTL", default_value = "15s", value_parser = parse_duration_positive)]
    pub leader_ttl: Duration,
    /// How often service lists and statuses catch up with what other replicas and the CLI
    /// wrote to the store (one listing each time).
    #[arg(long, env = "SPAWNIT_REFRESH_INTERVAL", default_value = "2s", value_parser = parse_duration_positive)]
    pub refresh_interval: Duration,
    /// OIDC issuer URL for web sign-in, e.g. https://keycloak.example.com/realms/spawnit.
    #[arg(long, env = "SPAWNIT_OIDC_ISSUER", requires_all = ["oidc_client_id", "oidc_client_secret"])]
    pub oidc_issuer: Option<String>,
    /// The OIDC client id SpawnIt is registered with.
    #[arg(long, env = "SPAWNIT_OIDC_CLIENT_ID")]
    pub oidc_client_id: Option<String>,
    /// The OIDC client secret.
    #[arg(long, env = "SPAWNIT_OIDC_CLIENT_SECRET", hide_env_values = true)]
    pub oidc_client_secret: Option<String>,
    /// The ID token claim naming a new user's client (without it, an admin maps users).
    #[arg(long, env = "SPAWNIT_OIDC_CLIENT_CLAIM")]
    pub oidc_client_claim: Option<String>,
    /// SpawnIt's public URL (for the OIDC redirect URI; https also turns on
    /// Strict-Transport-Security and Secure cookies); default: from the request's Host.
    #[arg(long, env = "SPAWNIT_PUBLIC_URL")]
    pub public_url: Option<String>,
    #[command(flatten)]
    pub nodes: crate::cluster_args::NodeMonitorArgs,
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create an API token for a user; prints it alone on the last line (it is stored only as a
    /// hash). The token acts as that user: on the user's client, with the user's role.
    Create {
        /// The user the token belongs to (it must exist); the token gets that user's client and
        /// role, always.
        #[arg(long, default_value = "admin", value_parser = parse_id)]
        user: Id,
        /// The client you expect the user to belong to: refused when it is another.
        #[arg(long, value_parser = parse_id)]
        client: Option<Id>,
        /// Expect the user to be an admin: refused when it is a member.
        #[arg(long)]
        admin: bool,
    },
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

/// A duration (`30s`, `2m`, `1h 30m`, or seconds); clap's error names the flag.
fn parse_duration(s: &str) -> Result<Duration, String> {
    spawnit_model::duration_parse("duration", s).map_err(|e| e.reason.to_string())
}

/// A duration that is not zero.
fn parse_duration_positive(s: &str) -> Result<Duration, String> {
    spawnit_model::duration_parse_positive("duration", s).map_err(|e| e.reason.to_string())
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
    fn duration_flags_name_the_flag_and_refuse_overflow_and_zero() {
        let args = |extra: &[&str]| Cli::try_parse_from([&["spawnit", "serve"], extra].concat());
        let e = args(&["--job-timeout", "99999999999999999999d"]).unwrap_err().to_string();
        assert!(e.contains("--job-timeout") && e.contains("too long"), "{e}");
        let e = args(&["--sweep-interval", "0s"]).unwrap_err().to_string();
        assert!(e.contains("--sweep-interval") && e.contains("longer than 0s"), "{e}");
        let e = args(&["--lease-interval", "soon"]).unwrap_err().to_string();
        assert!(e.contains("--lease-interval") && e.contains("not a duration"), "{e}");
        assert!(args(&["--job-timeout", "1h 30m", "--sweep-interval", "45"]).is_ok());
    }
}
