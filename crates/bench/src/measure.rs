//! The five measurements. Each times SpawnIt and, where one exists, its baseline in the same
//! run, interleaved so that a slow moment of the machine hits both alike:
//!
//! 1. `Engine::service_plan` of a compliant one-container `hello` service against one bare
//!    `list_containers` call with the service's label filter (the least I/O a plan needs);
//! 2. `spawnit apply` against `docker run -d` of the same container, both whole CLI processes;
//! 3. the CPU and wall time of one drift sweep (`observe_world` + `Engine::sweep`) over N real
//!    services against the naive sweep (one `service_plan` per service);
//! 4. the resident memory of `spawnit serve`, idle and with the N services;
//! 5. `GET /api/services` at N services against `GET /healthz` on the same server.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use bollard::query_parameters::{ListContainersOptions, ListNetworksOptions};
use futures::{StreamExt, TryStreamExt};
use spawnit_model::plan::PlanStatus;
use tokio::process::Command;

use crate::serve::{Rss, Served};
use crate::stats::{cpu_time, mean};
use crate::{Bench, HELLO_IMAGE, free_port, free_ports};

/// Untimed calls before timing starts (connections opened, caches warm).
pub const WARM_UP: usize = 10;

/// Measurement 1.
pub struct PlanLatency {
    pub plan: Vec<Duration>,
    pub list: Vec<Duration>,
    /// Plans that did not find the service compliant (there should be none).
    pub not_compliant: usize,
}

pub async fn plan_latency(b: &Bench) -> Result<PlanLatency> {
    let name = b.hello_create("plan-probe", free_port()?).await?;
    b.apply(&name).await?;
    let filters = HashMap::from([(
        "label".to_owned(),
        vec![format!("spawnit.client={}", b.client), format!("spawnit.service={name}")],
    )]);
    let options = ListContainersOptions { all: true, filters: Some(filters), ..Default::default() };
    let docker = b.docker.client();
    for _ in 0..WARM_UP {
        b.engine.service_plan(&b.client, &name).await?;
        docker.list_containers(Some(options.clone())).await?;
    }
    let mut out = PlanLatency { plan: Vec::new(), list: Vec::new(), not_compliant: 0 };
    for _ in 0..b.args.plan_runs {
        let started = Instant::now();
        let planned = b.engine.service_plan(&b.client, &name).await?;
        out.plan.push(started.elapsed());
        if planned.plan.status != PlanStatus::Compliant {
            out.not_compliant += 1;
        }
        let started = Instant::now();
        let found = docker.list_containers(Some(options.clone())).await?;
        out.list.push(started.elapsed());
        ensure!(found.len() == 1, "the label filter found {} containers of {name}, not 1", found.len());
    }
    b.remove(&name).await?;
    Ok(out)
}

/// Measurement 2.
pub struct ApplyVersusRun {
    pub spawnit: Vec<Duration>,
    pub docker: Vec<Duration>,
}

/// Times `spawnit apply SERVICE --auto-approve` (the service created just before, destroyed
/// and deleted just after, untimed) and `docker run -d` of the same container — the same
/// image, command, client network, loopback port binding and restart policy — (removed just
/// after, untimed), alternating which goes first. Round 0 is a warm-up of both.
pub async fn apply_versus_run(b: &Bench) -> Result<ApplyVersusRun> {
    let network = client_network(b).await?;
    let mut out = ApplyVersusRun { spawnit: Vec::new(), docker: Vec::new() };
    for round in 0..=b.args.runs {
        let (spawnit, docker) = if round % 2 == 0 {
            let s = spawnit_apply_round(b, round).await?;
            (s, docker_run_round(b, round, &network).await?)
        } else {
            let d = docker_run_round(b, round, &network).await?;
            (spawnit_apply_round(b, round).await?, d)
        };
        if round > 0 {
            out.spawnit.push(spawnit);
            out.docker.push(docker);
        }
    }
    Ok(out)
}

/// The Docker name of the bench client's network.
pub async fn client_network(b: &Bench) -> Result<String> {
    let filters = HashMap::from([("label".to_owned(), vec![format!("spawnit.client={}", b.client)])]);
    let networks = b.docker.client().list_networks(Some(ListNetworksOptions { filters: Some(filters) })).await?;
    match networks.as_slice() {
        [one] => one.name.clone().context("the client network has no name"),
        other => bail!("expected one network of client {}, found {}", b.client, other.len()),
    }
}

async fn spawnit_apply_round(b: &Bench, round: usize) -> Result<Duration> {
    let name = format!("cli-{round}");
    let port = format!("port={}", free_port()?);
    spawnit_cli(b, &["create", "hello", &name, "--set", &port, "--set", "message=bench"]).await?;
    let started = Instant::now();
    spawnit_cli(b, &["apply", &name, "--auto-approve"]).await?;
    let took = started.elapsed();
    spawnit_cli(b, &["destroy", &name, "--auto-approve"]).await?;
    spawnit_cli(b, &["delete", &name]).await?;
    Ok(took)
}

async fn docker_run_round(b: &Bench, round: usize, network: &str) -> Result<Duration> {
    let name = format!("{}-run-{round}", b.client);
    let label = format!("spawnit.client={}", b.client);
    let publish = format!("127.0.0.1:{}:5678", free_port()?);
    let run = [
        "run",
        "-d",
        "--name",
        &name,
        "--label",
        &label,
        "--network",
        network,
        "--restart",
        "unless-stopped",
        "-p",
        &publish,
        HELLO_IMAGE,
        "-listen=:5678",
        "-text=bench",
    ];
    let started = Instant::now();
    process("docker", &run, Command::new("docker").args(run)).await?;
    let took = started.elapsed();
    let remove = ["rm", "-f", &name];
    process("docker", &remove, Command::new("docker").args(remove)).await?;
    Ok(took)
}

/// Runs `spawnit --data-dir STORE ARGS…` as the bench's client; fails on a non-zero exit.
pub async fn spawnit_cli(b: &Bench, args: &[&str]) -> Result<()> {
    let mut command = Command::new(&b.spawnit);
    command
        .arg("--data-dir")
        .arg(&b.store_dir)
        .args(args)
        .env("SPAWNIT_CLIENT", b.client.as_str())
        .env_remove("SPAWNIT_STORE")
        .env_remove("SPAWNIT_LOG");
    process("spawnit", args, &mut command).await
}

/// Runs a whole process to its end, its output captured; fails on a non-zero exit.
pub async fn process(program: &str, args: &[&str], command: &mut Command) -> Result<()> {
    let out = command
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("run {program}"))?;
    if !out.status.success() {
        bail!(
            "`{program} {}` failed ({}): {}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Measurement 3, at one number of services.
pub struct SweepPoint {
    pub services: usize,
    /// Means over the timed sweeps.
    pub cpu: Duration,
    pub wall: Duration,
    pub naive_cpu: Duration,
    pub naive_wall: Duration,
    /// Services the sweep did not find compliant (there should be none).
    pub not_compliant: usize,
    /// Objects of other SpawnIt clients on the engine that `observe_world` also listed.
    pub foreign_objects: usize,
}

/// Creates the services in steps (a quarter, a half, all of `--services`), applying each step
/// with some concurrency, and measures both sweeps after each step.
pub async fn sweep_cost(b: &Bench) -> Result<Vec<SweepPoint>> {
    let target = b.args.services;
    let mut steps = vec![target / 4, target / 2, target];
    steps.retain(|n| *n > 0);
    steps.dedup();
    let ports = free_ports(target)?;
    let mut created = 0;
    let mut points = Vec::new();
    for step in steps {
        eprintln!("      creating and applying services {}..={step}", created + 1);
        let mut names = Vec::new();
        for (i, port) in ports.iter().enumerate().take(step).skip(created) {
            names.push(b.hello_create(&format!("s{i:04}"), *port).await?);
        }
        futures::stream::iter(names.iter())
            .map(|name| b.apply(name))
            .buffer_unordered(b.args.concurrency)
            .try_collect::<Vec<()>>()
            .await?;
        created = step;
        eprintln!("      sweeping {step} services");
        points.push(sweep_point(b, step).await?);
    }
    Ok(points)
}

async fn sweep_point(b: &Bench, services: usize) -> Result<SweepPoint> {
    // One untimed round of each, which also checks what the sweep sees.
    let world = b.docker.observe_world().await?;
    let statuses = b.engine.sweep(&world, &spawnit_engine::SweepScope::All).await?;
    ensure!(statuses.len() == services, "the sweep saw {} services, not {services}", statuses.len());
    let not_compliant = statuses.iter().filter(|s| s.status != PlanStatus::Compliant).count();
    let foreign_objects = world.owners.iter().filter(|(owner, _)| owner.client != b.client).map(|(_, r)| r.len()).sum();
    ensure!(naive_sweep(b).await? == services, "the naive sweep did not plan {services} services");

    let (mut cpu, mut wall, mut naive_cpu, mut naive_wall) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..b.args.sweeps {
        let (cpu_before, started) = (cpu_time(), Instant::now());
        let world = b.docker.observe_world().await?;
        let statuses = b.engine.sweep(&world, &spawnit_engine::SweepScope::All).await?;
        wall.push(started.elapsed());
        cpu.push(cpu_time() - cpu_before);
        std::hint::black_box(statuses);

        let (cpu_before, started) = (cpu_time(), Instant::now());
        naive_sweep(b).await?;
        naive_wall.push(started.elapsed());
        naive_cpu.push(cpu_time() - cpu_before);
    }
    Ok(SweepPoint {
        services,
        cpu: mean(&cpu),
        wall: mean(&wall),
        naive_cpu: mean(&naive_cpu),
        naive_wall: mean(&naive_wall),
        not_compliant,
        foreign_objects,
    })
}

/// The original design's sweep: one full plan per service of every client; returns how many.
async fn naive_sweep(b: &Bench) -> Result<usize> {
    let mut planned = 0;
    for client in b.engine.store().client_list().await? {
        for name in b.engine.service_list(&client).await? {
            std::hint::black_box(b.engine.service_plan(&client, &name).await?);
            planned += 1;
        }
    }
    Ok(planned)
}

/// Measurement 4, idle: `spawnit serve` on an empty store, after its first sweep.
pub async fn server_idle(b: &Bench) -> Result<Rss> {
    let dir = b.scratch.join("idle-store");
    std::fs::create_dir_all(&dir)?;
    let served = Served::start(&b.spawnit, &dir, &b.scratch.join("serve-idle.log")).await?;
    let http = reqwest::Client::new();
    sweep_wait(&http, &served, 0).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss = served.rss()?;
    served.stop().await?;
    Ok(rss)
}

/// Measurements 4 (with N services) and 5.
pub struct Loaded {
    pub services: usize,
    /// After the server's first sweep of the N services.
    pub rss_swept: Rss,
    /// After the API requests.
    pub rss_after_api: Rss,
    /// How long the server's own first sweep took (from its metrics), in seconds.
    pub server_sweep_seconds: Option<f64>,
    pub list: Vec<Duration>,
    pub healthz: Vec<Duration>,
}

/// `spawnit serve` on the bench's store with the N services: its memory after its first sweep,
/// then `GET /api/services` against `GET /healthz`, interleaved, with keep-alive connections.
pub async fn server_loaded(b: &Bench) -> Result<Loaded> {
    let services = b.args.services;
    let served = Served::start(&b.spawnit, &b.store_dir, &b.scratch.join("serve-loaded.log")).await?;
    let http = reqwest::Client::new();
    let server_sweep_seconds = sweep_wait(&http, &served, services).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_swept = served.rss()?;

    let list_url = format!("{}/api/services?client={}", served.base, b.client);
    let health_url = format!("{}/healthz", served.base);
    let body = get(&http, &served, &list_url).await?;
    let listed: serde_json::Value = serde_json::from_str(&body).context("GET /api/services: not JSON")?;
    let count = listed["services"].as_array().map(Vec::len).unwrap_or(0);
    ensure!(count == services, "GET /api/services listed {count} services, not {services}: {body:.300}");
    for _ in 0..WARM_UP {
        get(&http, &served, &list_url).await?;
        get(&http, &served, &health_url).await?;
    }
    let (mut list, mut healthz) = (Vec::new(), Vec::new());
    for _ in 0..b.args.requests {
        let started = Instant::now();
        get(&http, &served, &list_url).await?;
        list.push(started.elapsed());
        let started = Instant::now();
        get(&http, &served, &health_url).await?;
        healthz.push(started.elapsed());
    }
    let rss_after_api = served.rss()?;
    served.stop().await?;
    Ok(Loaded { services, rss_swept, rss_after_api, server_sweep_seconds, list, healthz })
}

/// A GET with the server's admin token; the whole body is read. Fails unless 200.
pub async fn get(http: &reqwest::Client, served: &Served, url: &str) -> Result<String> {
    let response = http.get(url).bearer_auth(&served.token).send().await.with_context(|| format!("GET {url}"))?;
    let status = response.status();
    let body = response.text().await?;
    ensure!(status.is_success(), "GET {url}: {status}: {body:.300}");
    Ok(body)
}

/// Waits (at most 2 minutes) until the server's metrics show a finished sweep over
/// `services` services; returns that sweep's duration.
pub async fn sweep_wait(http: &reqwest::Client, served: &Served, services: usize) -> Result<Option<f64>> {
    let url = format!("{}/metrics", served.base);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(text) = get(http, served, &url).await {
            let metric = |name: &str| -> Option<f64> {
                text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            };
            let sweeps = metric("spawnit_drift_sweeps_total").unwrap_or(0.0);
            let last = metric("spawnit_drift_sweep_last_services").unwrap_or(-1.0);
            if sweeps >= 1.0 && last == services as f64 {
                return Ok(metric("spawnit_drift_sweep_last_seconds"));
            }
        }
        if Instant::now() > deadline {
            bail!("spawnit serve did not finish a sweep over {services} services within 2 minutes");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
