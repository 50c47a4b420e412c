//! `spawnit-bench`: SpawnIt's benchmarks (issue 3, point 7), against the real Docker engine.
//! It measures plan latency, `spawnit apply` against `docker run -d`, the CPU time of a drift
//! sweep over N real services, the server's resident memory, the API's latency, and how fast the
//! server reacts to a cancel and to drift, and prints
//! one markdown table (`--api-scale`: only the API at scale; `--balancer`: only scalable
//! services, the load balancer and rolling updates, see `balancer`) in which every figure that has a baseline is also given as a ratio to
//! that baseline, measured in the same run. It is a program, not a test: it asserts nothing
//! about time; the goals are printed next to the numbers as information.
//!
//! Everything it creates belongs to a client of its own (`bench-<pid>`) in temporary stores, and
//! every container, volume and network of that client is removed at the end, also on error or
//! Ctrl-C. Build and run it in release, next to the `spawnit` binary it drives:
//! `cargo build --release -p spawnit -p spawnit-bench && target/release/spawnit-bench`.

mod balancer;
mod cleanup;
mod machine;
mod measure;
mod reaction;
mod replicas;
mod report;
mod scale;
mod serve;
mod stats;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail, ensure};
use clap::Parser;
use clap::builder::TypedValueParser as _;
use serde_json::json;
use spawnit_docker::DockerProvider;
use spawnit_engine::{Engine, Providers, RunOptions, ServiceCreate, events_ignored};
use spawnit_model::{Exposure, Id, OperationOutcome, ProviderKind};
use spawnit_store::Store;

use crate::cleanup::Cleanup;
use crate::machine::Machine;
use crate::report::Report;

/// The image of the `hello` template (built locally by `scripts/test-images.sh`).
pub const HELLO_IMAGE: &str = "hashicorp/http-echo:1.0";

/// SpawnIt's benchmarks: prints a markdown table of measurements and ratios to baselines.
#[derive(Parser, Debug, Clone)]
#[command(version)]
pub struct Args {
    /// Services (each a real container) for the sweep, server memory and API measurements;
    /// the sweep is also measured at a quarter and a half of it.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..=2000).map(usize::from))]
    pub services: usize,
    /// Runs of `spawnit apply` and of `docker run -d` (each), after one warm-up run of both.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..).map(usize::from))]
    pub runs: usize,
    /// Plans timed (and as many baseline list calls).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u16).range(2..).map(usize::from))]
    pub plan_runs: usize,
    /// Requests timed per API endpoint.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u16).range(2..).map(usize::from))]
    pub requests: usize,
    /// Sweeps (and naive sweeps) averaged at each number of services.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..).map(usize::from))]
    pub sweeps: usize,
    /// Applies run at once while the N services are set up.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64).map(usize::from))]
    pub concurrency: usize,
    /// Only the API at scale, without containers: 100 and 1000 specs and states written straight
    /// into stores, the server started on each, `/healthz`, the list, a page of 50 and one
    /// service timed (`--requests` of each) and the server's memory read.
    #[arg(long)]
    pub api_scale: bool,
    /// Only scalable services: requests/s and p99 through a `web-app` load balancer with 3
    /// replicas against one replica reached directly, and a rolling update of the 3 replicas
    /// against 3 plain `docker rm -f` + `docker run -d` replacements.
    #[arg(long, conflicts_with = "api_scale")]
    pub balancer: bool,
    /// Only server replicas on one S3 store (moto_server): jobs per second with 1, 2 and 3
    /// replicas (`--services` no-op applies each), store requests per job, and the takeover
    /// time after `kill -9` of the replica running jobs.
    #[arg(long, conflicts_with_all = ["api_scale", "balancer"])]
    pub replicas: bool,
    /// `--balancer`: requests per round on each side.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(10..=1_000_000).map(|v| v as usize))]
    pub balancer_requests: usize,
    /// `--balancer`: concurrent clients of the closed loop.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=512).map(usize::from))]
    pub balancer_clients: usize,
    /// `--balancer`: timed rolling updates (and as many plain replacements, after one warm-up of
    /// each), and rounds of scale-out by the autoscaler and by hand.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=100).map(usize::from))]
    pub rollouts: usize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let client = format!("bench-{}", std::process::id());
    let mut cleanup = Cleanup::new(&client);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let started = Instant::now();
    let outcome = runtime.block_on(async {
        tokio::select! {
            report = run(&args, &client) => report,
            _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
        }
    });
    // Dropping the runtime kills any `spawnit serve` still running (kill_on_drop) before the
    // Docker objects go.
    drop(runtime);
    eprintln!("cleaning up the Docker objects of client {client}");
    let removed = cleanup.run();
    match outcome {
        Ok(mut printed) => {
            match &mut printed {
                Printed::All(report) => {
                    report.duration = started.elapsed();
                    report.cleanup = removed.to_string();
                }
                Printed::Balancer(report) => report.cleanup = removed.to_string(),
                Printed::ApiScale(_) | Printed::Replicas(_) => {}
            }
            print!("{printed}");
            if removed.failures.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
        Err(e) => {
            eprintln!("cleanup: {removed}");
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// What a run prints: every measurement, only the API at scale, or only scalable services.
enum Printed {
    All(Box<Report>),
    ApiScale(scale::ScaleReport),
    Balancer(Box<balancer::BalancerReport>),
    Replicas(Vec<replicas::ReplicasReport>),
}

impl std::fmt::Display for Printed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Printed::All(report) => report.fmt(f),
            Printed::ApiScale(report) => report.fmt(f),
            Printed::Balancer(report) => report.fmt(f),
            Printed::Replicas(reports) => {
                for report in reports {
                    writeln!(f, "{report}")?;
                }
                Ok(())
            }
        }
    }
}

/// Sets up and runs every measurement, in an order where each leaves the store as the next
/// expects: the plan probe and the CLI services are gone before the N services are made.
async fn run(args: &Args, client: &str) -> Result<Printed> {
    let spawnit = spawnit_binary()?;
    let scratch =
        tempfile::Builder::new().prefix("spawnit-bench-").tempdir().context("create a temporary directory")?;
    if args.api_scale {
        return Ok(Printed::ApiScale(scale::api_scale(&spawnit, client, args.requests, scratch.path()).await?));
    }
    if args.replicas {
        return Ok(Printed::Replicas(replicas::replicas(&spawnit, client, scratch.path(), args.services).await?));
    }
    let bench = Bench::open(args.clone(), client, scratch.path().to_owned(), spawnit).await?;
    if args.balancer {
        return Ok(Printed::Balancer(Box::new(balancer::balancer(&bench).await?)));
    }
    let machine = Machine::describe(bench.docker.client()).await;
    eprintln!("machine: {machine}");
    eprintln!("client {client}, store {}", bench.store_dir.display());

    eprintln!("[1/6] plan latency ({} plans, {} list calls)", args.plan_runs, args.plan_runs);
    let plan = measure::plan_latency(&bench).await?;
    eprintln!("[2/6] spawnit apply vs docker run -d ({} runs each)", args.runs);
    let apply = measure::apply_versus_run(&bench).await?;
    eprintln!("[3/6] drift sweep CPU over up to {} services", args.services);
    let sweep = measure::sweep_cost(&bench).await?;
    eprintln!("[4/6] server RSS (idle, then with {} services)", args.services);
    let idle = measure::server_idle(&bench).await?;
    eprintln!("[5/6] server with {} services: RSS and API latency", args.services);
    let loaded = measure::server_loaded(&bench).await?;
    eprintln!("[6/6] reaction: cancel and drift detection ({} runs each)", args.runs);
    let reaction = reaction::reaction(&bench).await?;

    Ok(Printed::All(Box::new(Report {
        args: args.clone(),
        machine,
        plan,
        apply,
        sweep,
        idle,
        loaded,
        reaction,
        duration: Default::default(),
        cleanup: String::new(),
    })))
}

/// The `spawnit` binary next to this one.
fn spawnit_binary() -> Result<PathBuf> {
    let me = std::env::current_exe().context("where is spawnit-bench?")?;
    let path = me.parent().context("spawnit-bench has no directory")?.join("spawnit");
    if !path.is_file() {
        bail!(
            "{} is missing: spawnit-bench drives the spawnit binary next to it; build both with \
             `cargo build --release -p spawnit -p spawnit-bench`",
            path.display()
        );
    }
    Ok(path)
}

/// A free TCP port on loopback (free when asked; nothing holds it).
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0").context("find a free port")?.local_addr()?.port())
}

/// `count` distinct free ports: all listeners are held until every port is known.
pub fn free_ports(count: usize) -> Result<Vec<u16>> {
    let listeners = (0..count)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").context("find a free port"))
        .collect::<Result<Vec<_>>>()?;
    listeners.iter().map(|l| Ok(l.local_addr()?.port())).collect()
}

/// What the measurements share: an engine over a temporary store, the Docker provider, the
/// bench's client, and the `spawnit` binary.
pub struct Bench {
    pub args: Args,
    pub engine: Engine,
    pub docker: DockerProvider,
    pub client: Id,
    /// The client network every service joins (applied once, at the start).
    pub network: Id,
    /// The store the engine, the CLI runs and the loaded server share.
    pub store_dir: PathBuf,
    /// Where idle stores and server logs go.
    pub scratch: PathBuf,
    pub spawnit: PathBuf,
}

impl Bench {
    async fn open(args: Args, client: &str, scratch: PathBuf, spawnit: PathBuf) -> Result<Bench> {
        let docker = DockerProvider::connect().await.context("connect to the Docker engine")?;
        docker.client().inspect_image(HELLO_IMAGE).await.with_context(|| {
            format!("image {HELLO_IMAGE} is missing: build it with scripts/test-images.sh (nothing is pulled here)")
        })?;
        let store_dir = scratch.join("store");
        let store = Store::open_local(&store_dir).context("open the bench's store")?;
        let providers = Providers::default().with(ProviderKind::Docker, Arc::new(docker.clone()));
        let engine = Engine::open(store, providers).await?;
        let bench = Bench {
            args,
            engine,
            docker,
            client: Id::parse(client)?,
            network: Id::parse("default")?,
            store_dir,
            scratch,
            spawnit,
        };
        bench.engine.network_create(&bench.client, &bench.network).await?;
        let run = RunOptions::new("bench-network", events_ignored());
        let report = bench.engine.network_apply(&bench.client, &bench.network, &run).await?;
        ensure!(report.outcome == OperationOutcome::Succeeded, "network apply: {}", report.errors.join("; "));
        Ok(bench)
    }

    /// Stores the spec of a `hello` service on `port` (applies nothing).
    pub async fn hello_create(&self, name: &str, port: u16) -> Result<Id> {
        let name = Id::parse(name)?;
        let params = BTreeMap::from([("port".to_owned(), json!(port)), ("message".to_owned(), json!("bench"))]);
        self.engine
            .service_create(ServiceCreate {
                client: self.client.clone(),
                name: name.clone(),
                template: Id::parse("hello")?,
                network: self.network.clone(),
                exposure: Exposure::Loopback,
                provider: ProviderKind::Docker,
                params,
                aws: None,
                swarm: None,
            })
            .await
            .with_context(|| format!("create service {name}"))?;
        Ok(name)
    }

    pub async fn apply(&self, name: &Id) -> Result<()> {
        let run = RunOptions::new(format!("bench-apply-{name}"), events_ignored());
        let report =
            self.engine.service_apply(&self.client, name, &run).await.with_context(|| format!("apply {name}"))?;
        ensure!(
            report.outcome == OperationOutcome::Succeeded,
            "apply of {name} ended {:?}: {}",
            report.outcome,
            report.errors.join("; ")
        );
        Ok(())
    }

    /// Destroys a service's resources and forgets it.
    pub async fn remove(&self, name: &Id) -> Result<()> {
        let run = RunOptions::new(format!("bench-destroy-{name}"), events_ignored());
        let report = self.engine.service_destroy(&self.client, name, &run).await?;
        ensure!(report.outcome == OperationOutcome::Succeeded, "destroy of {name}: {}", report.errors.join("; "));
        self.engine.service_delete(&self.client, name).await?;
        Ok(())
    }
}
