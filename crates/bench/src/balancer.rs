//! `spawnit-bench --balancer`: scalable services (issue 11) against plain Docker, in one run.
//!
//! 1. Throughput and latency through the load balancer: a `web-app` service with three replicas
//!    of `spawnit-test/webapp:1` (sticky sessions off, so Caddy spreads requests round robin)
//!    against one replica of the same image run with `docker run -d -p 127.0.0.1:PORT:80`. Both
//!    get the same closed loop: `--balancer-clients` concurrent clients on loopback, each sending
//!    its next `GET /` when its previous answer is read, until `--balancer-requests` requests are
//!    done; the rounds alternate which side goes first.
//! 2. A rolling update of the three replicas (`spawnit update --set image=…` then `spawnit apply`,
//!    both whole CLI processes, timed together; the image alternates between `:1` and `:2`)
//!    against three plain replacements of three `docker run` containers (`docker rm -f` then
//!    `docker run -d`, one container after the other). While SpawnIt rolls, one client keeps
//!    requesting through the load balancer and every failed request is counted.
//!
//! 3. The time from CPU load to the first scale-out: a `web-app` service of one replica (at most
//!    two, target 10 % CPU) under a `spawnit serve` whose autoscaler samples every 2 s; from the
//!    moment `/burn` requests start through its load balancer, to the `scaled` event on
//!    `/api/events` and to the end of the apply job that decision queued. Baseline: the same
//!    scale-out asked by hand at once, `POST /api/services/{id}/scale` until its job ends.
//!
//! Everything is made for the bench's client and carries its label, so the final cleanup removes
//! it whatever happens.

use std::collections::BTreeSet;
use std::fmt::{self, Write as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use bollard::query_parameters::ListContainersOptions;
use spawnit_model::resource::labels;
use tokio::process::Command;

use crate::machine::Machine;
use crate::measure::{client_network, process, spawnit_cli};
use crate::reaction::{Sse, call, job_wait};
use crate::report::{Row, table};
use crate::serve::Served;
use crate::stats::{ms, quantile, ratio};
use crate::{Bench, free_port};

/// The stand-in app, in its two versions (built by `scripts/test-images.sh`).
pub const WEBAPP_IMAGES: [&str; 2] = ["spawnit-test/webapp:1", "spawnit-test/webapp:2"];
/// The load balancer's image (built by `scripts/test-images.sh`).
pub const CADDY_IMAGE: &str = "caddy:2";
/// Replicas of the measured service (and plain containers of the baseline).
const REPLICAS: usize = 3;
/// The service's name.
const SERVICE: &str = "shop";
/// Untimed requests on each side before the first round.
const WARM_UP_REQUESTS: usize = 50;
/// Load rounds; each measures both sides, alternating which goes first.
const ROUNDS: usize = 3;
/// A hang guard for every wait (not a bound on what is measured).
const GUARD: Duration = Duration::from_secs(120);

/// The closed loop's result on one side, over all rounds.
pub struct Load {
    /// The latency of every successful request.
    pub latencies: Vec<Duration>,
    /// The wall time of the timed rounds, summed.
    pub wall: Duration,
    /// Requests that failed (no answer, or not 200).
    pub failures: usize,
    /// The distinct `Hostname:` lines the answers named.
    pub hosts: BTreeSet<String>,
}

impl Load {
    fn new() -> Load {
        Load { latencies: Vec::new(), wall: Duration::ZERO, failures: 0, hosts: BTreeSet::new() }
    }

    /// Successful requests per second of wall time.
    fn rate(&self) -> f64 {
        let wall = self.wall.as_secs_f64();
        if wall == 0.0 { 0.0 } else { self.latencies.len() as f64 / wall }
    }

    fn absorb(&mut self, round: Load) {
        self.latencies.extend(round.latencies);
        self.wall += round.wall;
        self.failures += round.failures;
        self.hosts.extend(round.hosts);
    }
}

/// Requests sent through the load balancer while SpawnIt rolled the replicas.
#[derive(Default)]
pub struct DuringRollout {
    pub sent: usize,
    pub failed: usize,
    /// The first few failures, as text.
    pub examples: Vec<String>,
}

/// Measurement 3, per round.
#[derive(Default)]
pub struct Autoscale {
    /// Load started → the autoscaler's `scaled` event.
    pub decided: Vec<Duration>,
    /// Load started → the apply job of that decision finished.
    pub scaled_out: Vec<Duration>,
    /// `POST …/scale` by hand → its apply job finished.
    pub by_hand: Vec<Duration>,
    /// The decisions' average CPU, in percent of one core.
    pub avg_cpu: Vec<f64>,
    /// `/burn` requests the load balancer answered.
    pub burns: usize,
}

/// Everything `--balancer` measured.
pub struct BalancerReport {
    pub machine: Machine,
    pub clients: usize,
    pub requests: usize,
    pub balanced: Load,
    pub direct: Load,
    /// TCP listen-queue overflows during the timed rounds in the service's app containers and
    /// in the direct replica (`None`: their counters could not be read).
    pub overflows: Option<(u64, u64)>,
    /// `spawnit update` + `spawnit apply` of a new image, per timed round.
    pub rollout: Vec<Duration>,
    /// Three `docker rm -f` + `docker run -d`, per timed round.
    pub replace: Vec<Duration>,
    pub during_rollout: DuringRollout,
    pub autoscale: Autoscale,
    /// Failures the run got past, as text.
    pub seen: Vec<String>,
    /// Whether the build this ran from was optimised.
    pub release: bool,
    pub duration: Duration,
    /// What the final cleanup removed (set by `main`).
    pub cleanup: String,
}

/// Runs both measurements on the bench's store and client.
pub async fn balancer(b: &Bench) -> Result<BalancerReport> {
    let started = Instant::now();
    let docker = b.docker.client();
    for image in WEBAPP_IMAGES.iter().chain([&CADDY_IMAGE]) {
        docker.inspect_image(image).await.with_context(|| {
            format!("image {image} is missing: build it with scripts/test-images.sh (nothing is pulled here)")
        })?;
    }
    let machine = Machine::describe(docker).await;
    eprintln!("machine: {machine}");
    eprintln!("client {}, store {}", b.client, b.store_dir.display());
    let (clients, requests) = (b.args.balancer_clients, b.args.balancer_requests);

    eprintln!("[1/3] {requests} requests by {clients} clients, {ROUNDS} rounds: load balancer vs one replica");
    let lb_port = free_port()?;
    spawnit_cli(
        b,
        &[
            "create",
            "web-app",
            SERVICE,
            "--set",
            &format!("image={}", WEBAPP_IMAGES[0]),
            "--set",
            &format!("replicas={REPLICAS}"),
            "--set",
            "sticky=false",
            "--set",
            &format!("http_port={lb_port}"),
        ],
    )
    .await?;
    spawnit_cli(b, &["apply", SERVICE, "--auto-approve"]).await?;
    let balanced_url = format!("http://127.0.0.1:{lb_port}/");
    let direct_port = free_port()?;
    let direct_name = format!("{}-direct", b.client);
    docker_cli(&[
        "run",
        "-d",
        "--name",
        &direct_name,
        "--label",
        &format!("spawnit.client={}", b.client),
        "-p",
        &format!("127.0.0.1:{direct_port}:80"),
        WEBAPP_IMAGES[0],
    ])
    .await?;
    let direct_url = format!("http://127.0.0.1:{direct_port}/");
    let http = reqwest::Client::new();
    answering(&http, &balanced_url).await?;
    answering(&http, &direct_url).await?;
    load(&http, &balanced_url, WARM_UP_REQUESTS, clients).await?;
    load(&http, &direct_url, WARM_UP_REQUESTS, clients).await?;
    let overflows_before = overflows(b, &direct_name).await;
    let (mut balanced, mut direct) = (Load::new(), Load::new());
    for round in 0..ROUNDS {
        if round % 2 == 0 {
            balanced.absorb(load(&http, &balanced_url, requests, clients).await?);
            direct.absorb(load(&http, &direct_url, requests, clients).await?);
        } else {
            direct.absorb(load(&http, &direct_url, requests, clients).await?);
            balanced.absorb(load(&http, &balanced_url, requests, clients).await?);
        }
    }
    let overflows = match (overflows_before, overflows(b, &direct_name).await) {
        (Ok((s0, d0)), Ok((s1, d1))) => Some((s1.saturating_sub(s0), d1.saturating_sub(d0))),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("      cannot read the containers' listen-queue overflows: {e:#}");
            None
        }
    };
    ensure!(!balanced.latencies.is_empty(), "no request through the load balancer succeeded");
    ensure!(!direct.latencies.is_empty(), "no request to the replica succeeded");
    docker_cli(&["rm", "-f", &direct_name]).await?;

    let rollouts = b.args.rollouts;
    eprintln!("[2/3] rolling update of {REPLICAS} replicas vs {REPLICAS} docker rm -f + run ({rollouts} rounds each)");
    let network = client_network(b).await?;
    let plain: Vec<String> = (0..REPLICAS).map(|i| format!("{}-plain-{i}", b.client)).collect();
    for name in &plain {
        docker_cli(&plain_run(b, name, &network, WEBAPP_IMAGES[0])).await?;
    }
    let (mut rollout, mut replace) = (Vec::new(), Vec::new());
    let mut during_rollout = DuringRollout::default();
    // Round 0 is a warm-up of both; the image alternates so every round changes it.
    for round in 0..=rollouts {
        let image = WEBAPP_IMAGES[(round + 1) % 2];
        let (r, p) = if round % 2 == 0 {
            let r = rolling_update(b, &balanced_url, image, &mut during_rollout).await?;
            (r, replace_plain(b, &plain, &network, image).await?)
        } else {
            let p = replace_plain(b, &plain, &network, image).await?;
            (rolling_update(b, &balanced_url, image, &mut during_rollout).await?, p)
        };
        if round > 0 {
            rollout.push(r);
            replace.push(p);
        }
    }
    for name in &plain {
        docker_cli(&["rm", "-f", name]).await?;
    }
    let mut seen = Vec::new();
    destroy(b, SERVICE, &mut seen).await?;

    eprintln!("[3/3] CPU load → first scale-out by the autoscaler vs a scale-out by hand ({rollouts} rounds)");
    let autoscale = autoscale(b, rollouts, &mut seen).await?;

    Ok(BalancerReport {
        machine,
        clients,
        requests,
        balanced,
        direct,
        overflows,
        rollout,
        replace,
        during_rollout,
        autoscale,
        seen,
        release: !cfg!(debug_assertions),
        duration: started.elapsed(),
        cleanup: String::new(),
    })
}

/// `requests` `GET url` by `clients` concurrent clients in a closed loop.
async fn load(http: &reqwest::Client, url: &str, requests: usize, clients: usize) -> Result<Load> {
    let tickets = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let (http, url, tickets) = (http.clone(), url.to_owned(), tickets.clone());
            tokio::spawn(async move {
                let mut out = Load::new();
                while tickets.fetch_add(1, Ordering::Relaxed) < requests {
                    let sent = Instant::now();
                    match get_text(&http, &url).await {
                        Ok(body) => {
                            out.latencies.push(sent.elapsed());
                            if let Some(host) = body.lines().find_map(|l| l.strip_prefix("Hostname:")) {
                                out.hosts.insert(host.trim().to_owned());
                            }
                        }
                        Err(_) => out.failures += 1,
                    }
                }
                out
            })
        })
        .collect();
    let mut total = Load::new();
    for worker in workers {
        total.absorb(worker.await.context("a load client panicked")?);
    }
    total.wall = started.elapsed();
    Ok(total)
}

/// The `ListenOverflows` counters (SYNs dropped because a listen queue was full) of the service's
/// app replicas, summed, and of the direct replica, read from the network namespace of each
/// container's first process (`/proc/<pid>/net/netstat`).
async fn overflows(b: &Bench, direct: &str) -> Result<(u64, u64)> {
    let docker = b.docker.client();
    let filters = std::collections::HashMap::from([(
        "label".to_owned(),
        vec![format!("{}={}", labels::CLIENT, b.client), format!("{}={SERVICE}", labels::SERVICE)],
    )]);
    let options = ListContainersOptions { filters: Some(filters), ..Default::default() };
    let mut service = 0;
    let mut replicas = 0;
    for container in docker.list_containers(Some(options)).await? {
        if container.image.as_deref().is_some_and(|i| WEBAPP_IMAGES.contains(&i)) {
            service += listen_overflows(b, container.id.as_deref().context("a container without an id")?).await?;
            replicas += 1;
        }
    }
    ensure!(replicas == REPLICAS, "found {replicas} app replicas of {SERVICE}, not {REPLICAS}");
    Ok((service, listen_overflows(b, direct).await?))
}

async fn listen_overflows(b: &Bench, container: &str) -> Result<u64> {
    let inspected = b
        .docker
        .client()
        .inspect_container(container, None::<bollard::query_parameters::InspectContainerOptions>)
        .await?;
    let pid = inspected.state.and_then(|s| s.pid).filter(|p| *p > 0).context("the container is not running")?;
    let path = format!("/proc/{pid}/net/netstat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("TcpExt:")).collect();
    let [names, values] = lines.as_slice() else { bail!("{path} has no TcpExt lines") };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(name, _)| *name == "ListenOverflows")
        .and_then(|(_, v)| v.parse().ok())
        .with_context(|| format!("no ListenOverflows in {path}"))
}

/// A GET whose whole body is read; fails unless 200.
async fn get_text(http: &reqwest::Client, url: &str) -> Result<String> {
    let response = http.get(url).send().await?;
    let status = response.status();
    let body = response.text().await?;
    ensure!(status.is_success(), "{status}: {body:.200}");
    Ok(body)
}

/// Waits until `url` answers 200.
async fn answering(http: &reqwest::Client, url: &str) -> Result<String> {
    let deadline = Instant::now() + GUARD;
    loop {
        match get_text(http, url).await {
            Ok(body) => return Ok(body),
            Err(e) if Instant::now() > deadline => bail!("{url} does not answer: {e:#}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// `spawnit update --set image=IMAGE` + `spawnit apply`, timed together, with one client
/// requesting through the load balancer all along; then checks that every answer is the new
/// version.
async fn rolling_update(b: &Bench, url: &str, image: &str, during: &mut DuringRollout) -> Result<Duration> {
    let stop = Arc::new(AtomicBool::new(false));
    let prober = {
        let (stop, url) = (stop.clone(), url.to_owned());
        tokio::spawn(async move {
            // Its own client: a fresh connection pool, no cookies.
            let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
            let mut seen = DuringRollout::default();
            while !stop.load(Ordering::Relaxed) {
                seen.sent += 1;
                if let Err(e) = get_text(&http, &url).await {
                    seen.failed += 1;
                    if seen.examples.len() < 3 {
                        seen.examples.push(format!("{e:#}"));
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            anyhow::Ok(seen)
        })
    };
    let set = format!("image={image}");
    let started = Instant::now();
    let outcome = async {
        spawnit_cli(b, &["update", SERVICE, "--set", &set]).await?;
        spawnit_cli(b, &["apply", SERVICE, "--auto-approve"]).await
    }
    .await;
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let seen = prober.await.context("the rollout's prober panicked")??;
    outcome?;
    during.sent += seen.sent;
    during.failed += seen.failed;
    during.examples.extend(seen.examples.into_iter().take(3usize.saturating_sub(during.examples.len())));
    let version = format!("Version: {}", image.rsplit(':').next().unwrap_or(image));
    let http = reqwest::Client::new();
    for _ in 0..2 * REPLICAS {
        let body = get_text(&http, url).await?;
        ensure!(body.contains(&version), "after the rollout to {image} a replica answered: {body:.200}");
    }
    Ok(took)
}

/// The service the autoscaler scales.
const BURST: &str = "burst";
/// `spawnit serve --autoscale-interval`.
const AUTOSCALE_INTERVAL: Duration = Duration::from_secs(2);
/// Clients looping on `/burn` during a round.
const BURNERS: usize = 4;
/// Seconds each `/burn` request burns a core.
const BURN_SECONDS: u64 = 2;

/// Measurement 3: `rounds` times, the autoscaler's scale-out 1 → 2 under load, and the same
/// scale-out by hand; back to one replica by hand (untimed) after each.
async fn autoscale(b: &Bench, rounds: usize, seen: &mut Vec<String>) -> Result<Autoscale> {
    let port = free_port()?;
    let port_set = format!("http_port={port}");
    let image_set = format!("image={}", WEBAPP_IMAGES[0]);
    let sets = [&image_set, "replicas=1", "min_replicas=1", "max_replicas=2", "target_cpu=10", &port_set];
    let mut args = vec!["create", "web-app", BURST];
    for set in sets {
        args.extend(["--set", set]);
    }
    spawnit_cli(b, &args).await?;
    spawnit_cli(b, &["apply", BURST, "--auto-approve"]).await?;
    let interval = format!("{}s", AUTOSCALE_INTERVAL.as_secs());
    // No cooldown before a scale-out; none of the autoscaler's scale-ins during the run.
    let extra = ["--autoscale-interval", &interval, "--scale-out-cooldown", "0s", "--scale-in-cooldown", "1h"];
    let served = Served::start_with(&b.spawnit, &b.store_dir, &b.scratch.join("serve-autoscale.log"), &extra).await?;
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/");
    answering(&http, &url).await?;
    let mut events = Sse::open(&http, &served, "/api/events").await?;
    let scale_path = format!("/api/services/{BURST}/scale?client={}", b.client);
    let scale = |replicas: u32| {
        let (http, served, path) = (&http, &served, &scale_path);
        async move {
            let body = serde_json::json!({ "replicas": replicas });
            let job = call(http, served, reqwest::Method::POST, path, Some(body), 202).await?;
            let status = job_wait(http, served, &job).await?;
            ensure!(status == "succeeded", "scaling {BURST} to {replicas} by hand ended {status}");
            anyhow::Ok(())
        }
    };
    let mut out = Autoscale::default();
    for round in 0..rounds {
        eprintln!("      round {}: load", round + 1);
        let since = chrono::Utc::now();
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let burners: Vec<_> = (0..BURNERS)
            .map(|_| {
                let (stop, url) = (stop.clone(), format!("{url}burn?seconds={BURN_SECONDS}"));
                tokio::spawn(async move {
                    let http = reqwest::Client::new();
                    let mut burns = 0;
                    while !stop.load(Ordering::Relaxed) {
                        match get_text(&http, &url).await {
                            Ok(_) => burns += 1,
                            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                        }
                    }
                    burns
                })
            })
            .collect();
        let decision = events
            .until("the autoscaler's scale-out", |name, data| {
                name == "scaled"
                    && data["service"] == BURST
                    && data["at"]
                        .as_str()
                        .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
                        .is_some_and(|at| at >= since)
            })
            .await;
        let decided = started.elapsed();
        let job = decision.as_ref().ok().map(|d| serde_json::json!({ "id": d["job"] }));
        let finished = match &job {
            Some(job) => Some(job_wait(&http, &served, job).await),
            None => None,
        };
        let scaled_out = started.elapsed();
        stop.store(true, Ordering::Relaxed);
        for burner in burners {
            out.burns += burner.await.context("a burner panicked")?;
        }
        let decision = decision?;
        ensure!(
            decision["from"] == 1 && decision["to"] == 2,
            "the autoscaler's first decision was not 1 → 2: {decision}"
        );
        let status = finished.context("no job")??;
        ensure!(status == "succeeded", "the autoscaler's scale-out job ended {status}: {decision}");
        out.decided.push(decided);
        out.scaled_out.push(scaled_out);
        out.avg_cpu.push(decision["avg_cpu_percent"].as_f64().unwrap_or(f64::NAN));
        // The last burns are over; let the autoscaler sample idle replicas before going back.
        tokio::time::sleep(AUTOSCALE_INTERVAL * 2).await;
        scale(1).await?;
        eprintln!("      round {}: by hand", round + 1);
        let started = Instant::now();
        scale(2).await?;
        out.by_hand.push(started.elapsed());
        scale(1).await?;
    }
    // An open event stream would hold the server's graceful shutdown.
    drop(events);
    served.stop().await?;
    destroy(b, BURST, seen).await?;
    Ok(out)
}

/// `spawnit destroy` + `spawnit delete`. A failed destroy is tried once more (Docker on
/// fuse-overlayfs sometimes fails to remove a container's files at the first try) and its
/// error kept in `seen`.
async fn destroy(b: &Bench, service: &str, seen: &mut Vec<String>) -> Result<()> {
    if let Err(e) = spawnit_cli(b, &["destroy", service, "--auto-approve"]).await {
        let text = format!("{e:#}");
        let reason = text.lines().rev().find(|l| l.contains("Error:")).unwrap_or(&text).trim().to_owned();
        seen.push(format!("`spawnit destroy {service}` failed once, then passed when run again: {reason}"));
        tokio::time::sleep(Duration::from_secs(2)).await;
        spawnit_cli(b, &["destroy", service, "--auto-approve"]).await?;
    }
    spawnit_cli(b, &["delete", service]).await
}

/// The baseline's `docker run -d` arguments for one plain replica.
fn plain_run(b: &Bench, name: &str, network: &str, image: &str) -> Vec<String> {
    [
        "run",
        "-d",
        "--name",
        name,
        "--label",
        &format!("spawnit.client={}", b.client),
        "--network",
        network,
        "--restart",
        "unless-stopped",
        image,
    ]
    .map(str::to_owned)
    .to_vec()
}

/// `docker rm -f` + `docker run -d` of every plain replica, one after the other, timed.
async fn replace_plain(b: &Bench, plain: &[String], network: &str, image: &str) -> Result<Duration> {
    let started = Instant::now();
    for name in plain {
        docker_cli(&["rm", "-f", name]).await?;
        docker_cli(&plain_run(b, name, network, image)).await?;
    }
    Ok(started.elapsed())
}

/// Runs `docker ARGS…` to its end; fails on a non-zero exit.
async fn docker_cli<S: AsRef<str>>(args: &[S]) -> Result<()> {
    let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
    process("docker", &args, Command::new("docker").args(&args)).await
}

impl BalancerReport {
    fn rows(&self) -> Vec<Row> {
        let (lb, one) = (&self.balanced, &self.direct);
        let mut rows = vec![
            Row::new(
                format!(
                    "1. requests/s, {} × {} requests, {} clients, through the load balancer ({REPLICAS} replicas)",
                    ROUNDS, self.requests, self.clients
                ),
                format!("{:.0}/s", lb.rate()),
            )
            .against(format!("{:.0}/s (one replica, direct)", one.rate()), rate_ratio(lb.rate(), one.rate())),
        ];
        for (label, q) in [("p50", 0.5), ("p99", 0.99)] {
            let (l, d) = (quantile(&lb.latencies, q), quantile(&one.latencies, q));
            rows.push(
                Row::new(format!("1. latency {label}, through the load balancer"), ms(l))
                    .against(format!("{} (one replica, direct)", ms(d)), ratio(l, d)),
            );
        }
        let slow = |l: &Load| l.latencies.iter().filter(|d| **d >= Duration::from_secs(1)).count();
        rows.push(
            Row::new("1. requests that took ≥ 1 s, through the load balancer", slow(lb).to_string())
                .against(format!("{} (one replica, direct)", slow(one)), "—".to_owned()),
        );
        if let Some((service, direct)) = self.overflows {
            rows.push(
                Row::new(format!("1. TCP listen-queue overflows in the {REPLICAS} replicas"), service.to_string())
                    .against(format!("{direct} (in the one replica)"), "—".to_owned()),
            );
        }
        if !self.rollout.is_empty() {
            for (label, q) in [("median", 0.5), ("max", 1.0)] {
                let (r, p) = (quantile(&self.rollout, q), quantile(&self.replace, q));
                rows.push(
                    Row::new(
                        format!("2. rolling update of {REPLICAS} replicas, {label} of {}", self.rollout.len()),
                        ms(r),
                    )
                    .against(format!("{} ({REPLICAS} × `docker rm -f` + `docker run -d`)", ms(p)), ratio(r, p)),
                );
            }
            let d = &self.during_rollout;
            rows.push(
                Row::new("2. requests failed during the rollouts", format!("{} of {}", d.failed, d.sent))
                    .goal("0 (zero downtime)"),
            );
        }
        let a = &self.autoscale;
        if !a.scaled_out.is_empty() {
            for (label, q) in [("median", 0.5), ("max", 1.0)] {
                let (d, i) = (quantile(&a.decided, q), AUTOSCALE_INTERVAL);
                rows.push(
                    Row::new(format!("3. CPU load → `scaled` event (1 → 2), {label} of {}", a.decided.len()), ms(d))
                        .against(format!("{} (the sampling interval)", ms(i)), ratio(d, i)),
                );
            }
            for (label, q) in [("median", 0.5), ("max", 1.0)] {
                let (s, h) = (quantile(&a.scaled_out, q), quantile(&a.by_hand, q));
                rows.push(
                    Row::new(
                        format!("3. CPU load → scale-out applied (1 → 2), {label} of {}", a.scaled_out.len()),
                        ms(s),
                    )
                    .against(format!("{} (`POST …/scale` by hand → applied)", ms(h)), ratio(s, h)),
                );
            }
        }
        rows
    }
}

/// `a ÷ b` for rates.
fn rate_ratio(a: f64, b: f64) -> String {
    if b == 0.0 { "—".to_owned() } else { format!("{:.2}×", a / b) }
}

impl fmt::Display for BalancerReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        let _ = writeln!(out, "## SpawnIt benchmarks: scalable services\n");
        let _ = writeln!(out, "Machine: {}.", self.machine);
        let _ = writeln!(
            out,
            "Run: `--balancer --balancer-requests {} --balancer-clients {} --rollouts {}`, {} build, {:.0} s in all.\n",
            self.requests,
            self.clients,
            self.rollout.len(),
            if self.release { "release" } else { "debug" },
            self.duration.as_secs_f64()
        );
        out.push_str(&table(&self.rows()));
        let _ = writeln!(out);
        let mut notes = vec![
            "Ratio = SpawnIt ÷ baseline, both measured in this run (for requests/s, above 1×: SpawnIt serves \
             more; for times, below 1×: SpawnIt is faster). Goals are printed as information: nothing here \
             passes or fails."
                .to_owned(),
            format!(
                "1: `GET /` of `{}` (busybox httpd; a CGI script answers with the container's host name) on \
                 127.0.0.1, a closed loop: each of the {} clients sends its next request when the previous answer \
                 is read, until {} requests are done; {ROUNDS} rounds alternating which side goes first, after {} \
                 untimed requests on each. Load balancer: the `web-app` template's Caddy (`caddy:2`, round robin, \
                 sticky off) in front of {REPLICAS} replicas on the client network; it answered from {} distinct \
                 replica(s). Baseline: one replica, `docker run -d -p 127.0.0.1:PORT:80`. The load generator, \
                 Caddy and the replicas share this machine's CPUs. busybox httpd closes every connection and \
                 listens with a queue of 9: when more connections wait, the kernel drops the SYN \
                 (ListenOverflows, read from /proc/<pid>/net/netstat of each app container) and the client's \
                 TCP sends it again 1 s later: the requests of ≥ 1 s (they make the p99 when they are over 1 % \
                 of all); Caddy keeps the \
                 clients' connections and retries a failed dial on another replica (`lb_try_duration`).",
                WEBAPP_IMAGES[0],
                self.clients,
                self.requests,
                WARM_UP_REQUESTS,
                self.balanced.hosts.len()
            ),
            format!(
                "2: SpawnIt: `spawnit update {SERVICE} --set image=…` + `spawnit apply {SERVICE} --auto-approve` \
                 (whole CLI processes), alternating `{}` and `{}`; each replica in turn is started, waited for \
                 until healthy, added to Caddy, and the old one drained and removed; every answer is the new \
                 version afterwards. Baseline: {REPLICAS} containers of the same image on the same network, each \
                 `docker rm -f` then `docker run -d` in turn, which waits for no health and leaves each one down \
                 meanwhile. Rounds alternate which goes first, after one untimed round of each. During SpawnIt's \
                 rollouts one client (no cookie) requested through the load balancer every 20 ms.",
                WEBAPP_IMAGES[0], WEBAPP_IMAGES[1]
            ),
            format!(
                "3: `spawnit serve --autoscale-interval {}s --scale-out-cooldown 0s --scale-in-cooldown 1h` on the \
                 bench's store; `web-app` `{BURST}` with 1 replica (min 1, max 2, target 10 % CPU: the CPU a \
                 container gets depends on the host's cgroups). Load: {BURNERS} clients looping on \
                 `/burn?seconds={BURN_SECONDS}` through its load balancer ({} burns answered in all); timed from \
                 the first burn sent to the `scaled` event on `/api/events` (the decision; average CPU it saw: {}) \
                 and to the end of the apply job it queued (job polled every 50 ms). Baseline: the same scale-out \
                 asked at once by hand, `POST /api/services/{BURST}/scale` with 2 replicas until its job ends: \
                 what the autoscaler adds to it is detection. Back to 1 replica by hand after each, untimed.",
                AUTOSCALE_INTERVAL.as_secs(),
                self.autoscale.burns,
                self.autoscale.avg_cpu.iter().map(|c| format!("{c:.0} %")).collect::<Vec<_>>().join(", ")
            ),
        ];
        if !self.release {
            notes.push(
                "Built in debug (`cargo build -p spawnit -p spawnit-bench`): the load generator and the `spawnit` \
                 CLI are unoptimised; Caddy, busybox and Docker are not affected."
                    .to_owned(),
            );
        }
        for note in notes {
            let _ = writeln!(out, "- {note}");
        }
        if self.balanced.failures + self.direct.failures > 0 {
            let _ = writeln!(
                out,
                "- Seen: {} request(s) through the load balancer and {} to the replica failed (not in the latencies).",
                self.balanced.failures, self.direct.failures
            );
        }
        for e in &self.during_rollout.examples {
            let _ = writeln!(out, "- Seen during a rollout: {e}.");
        }
        if self.during_rollout.examples.iter().any(|e| e.contains("connection closed before message completed")) {
            let _ = writeln!(
                out,
                "- \"connection closed before message completed\": the prober reused a keep-alive connection \
                 that Caddy closed as idle at that moment (a `caddy reload` ends the old configuration's idle \
                 connections); reqwest does not retry such a request, browsers retry an idempotent one."
            );
        }
        for e in &self.seen {
            let _ = writeln!(out, "- Seen: {e}.");
        }
        let _ = writeln!(out, "- Cleanup: {}.", self.cleanup);
        f.write_str(&out)
    }
}
