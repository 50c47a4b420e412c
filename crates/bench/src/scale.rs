//! `spawnit-bench --api-scale`: the API with many services, no containers. For 100 and for 1000
//! services it writes the specs (and a recorded state each) straight into a fresh store, as the
//! CLI would, starts `spawnit serve` on it, waits for its first sweep, and times `GET /healthz`
//! (the baseline), the whole list, a page of 50 and one service, interleaved, then reads the
//! server's resident memory. The services' network is applied (one Docker network), so getting
//! one service plans it against the real Docker engine as a user's request would.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use futures::{StreamExt, TryStreamExt};
use serde_json::json;
use spawnit_docker::DockerProvider;
use spawnit_engine::{Engine, Providers, RunOptions, ServiceCreate, events_ignored};
use spawnit_model::{Exposure, Id, OperationOutcome, OwnerKey, ProviderKind};
use spawnit_store::{Key, PutCondition, Store};

use crate::measure::{WARM_UP, get, sweep_wait};
use crate::serve::{Rss, Served};
use crate::stats::{mib, ms, quantile, ratio};

/// The numbers of services measured.
const SCALES: [usize; 2] = [100, 1000];
/// The page size timed.
const PAGE: usize = 50;
/// Specs written at once while a store is filled.
const WRITERS: usize = 16;

/// The timings at one number of services.
pub struct ScalePoint {
    pub services: usize,
    pub healthz: Vec<Duration>,
    pub list: Vec<Duration>,
    pub page: Vec<Duration>,
    pub one: Vec<Duration>,
    pub rss: Rss,
}

/// Every scale's timings, printed as one table.
pub struct ScaleReport {
    pub requests: usize,
    pub points: Vec<ScalePoint>,
    pub duration: Duration,
}

/// Measures each scale in its own store and server.
pub async fn api_scale(spawnit: &Path, client: &str, requests: usize, scratch: &Path) -> Result<ScaleReport> {
    let started = Instant::now();
    let docker = DockerProvider::connect().await.context("connect to the Docker engine")?;
    let client = Id::parse(client)?;
    let mut points = Vec::new();
    for services in SCALES {
        let dir = scratch.join(format!("store-{services}"));
        eprintln!("[api-scale] writing {services} specs and states into {}", dir.display());
        let filled = Instant::now();
        fill(&dir, &docker, &client, services).await?;
        eprintln!("[api-scale] written in {:.1} s; starting the server", filled.elapsed().as_secs_f64());
        points.push(
            measure(spawnit, &dir, &scratch.join(format!("serve-{services}.log")), &client, services, requests).await?,
        );
    }
    Ok(ScaleReport { requests, points, duration: started.elapsed() })
}

/// A store with the client's network applied and `services` `hello` specs, each with a state
/// recording a volume.
async fn fill(dir: &Path, docker: &DockerProvider, client: &Id, services: usize) -> Result<()> {
    let store = Store::open_local(dir).context("open a store for the scale run")?;
    let engine =
        Engine::open(store.clone(), Providers::default().with(ProviderKind::Docker, Arc::new(docker.clone()))).await?;
    let network = Id::parse("default")?;
    engine.network_create(client, &network).await?;
    let report =
        engine.network_apply(client, &network, &RunOptions::new("bench-scale-network", events_ignored())).await?;
    ensure!(report.outcome == OperationOutcome::Succeeded, "network apply: {}", report.errors.join("; "));
    let ports = crate::free_ports(services)?;
    futures::stream::iter(ports.into_iter().enumerate())
        .map(|(i, port)| {
            let (engine, store, client, network) = (&engine, &store, client, &network);
            async move {
                let name = Id::parse(&format!("svc-{i:04}"))?;
                let params = BTreeMap::from([("port".to_owned(), json!(port)), ("message".to_owned(), json!("scale"))]);
                engine
                    .service_create(ServiceCreate {
                        client: client.clone(),
                        name: name.clone(),
                        template: Id::parse("hello")?,
                        network: network.clone(),
                        exposure: Exposure::Loopback,
                        provider: ProviderKind::Docker,
                        params,
                        aws: None,
                        swarm: None,
                    })
                    .await
                    .with_context(|| format!("create service {name}"))?;
                // A recorded state of some size: a volume the spec no longer has (its plan removes it).
                let now = chrono::Utc::now();
                let state = json!({
                    "lineage": format!("scale-{i}"),
                    "generation": 3,
                    "resources": {"volume.scratch": {"id": format!("spawnit_{client}_{name}_scratch"),
                        "attrs": {"kind": "volume", "name": format!("spawnit_{client}_{name}_scratch")},
                        "fingerprint": format!("{i:064x}"), "updated_at": now}},
                    "updated_at": now,
                });
                store.put_json(&Key::state(&OwnerKey::service(client, &name)), &state, PutCondition::Overwrite).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(WRITERS)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// Starts the server on a filled store and times the four requests, interleaved.
async fn measure(
    spawnit: &Path,
    dir: &Path,
    log: &Path,
    client: &Id,
    services: usize,
    requests: usize,
) -> Result<ScalePoint> {
    let served = Served::start(spawnit, dir, log).await?;
    let http = reqwest::Client::new();
    sweep_wait(&http, &served, services).await?;
    let base = &served.base;
    let urls = [
        format!("{base}/healthz"),
        format!("{base}/api/services?client={client}"),
        format!("{base}/api/services?client={client}&limit={PAGE}&cursor=svc-{:04}", services / 2),
        format!("{base}/api/services/svc-{:04}?client={client}", services / 3),
    ];
    let listed: serde_json::Value = serde_json::from_str(&get(&http, &served, &urls[1]).await?)?;
    let count = listed["services"].as_array().map_or(0, Vec::len);
    ensure!(count == services, "the list has {count} services, not {services}");
    let page: serde_json::Value = serde_json::from_str(&get(&http, &served, &urls[2]).await?)?;
    let count = page["services"].as_array().map_or(0, Vec::len);
    ensure!(count == PAGE.min(services - services / 2 - 1), "the page has {count} services");
    for _ in 0..WARM_UP {
        for url in &urls {
            get(&http, &served, url).await?;
        }
    }
    let mut timings: [Vec<Duration>; 4] = Default::default();
    for _ in 0..requests {
        for (url, samples) in urls.iter().zip(timings.iter_mut()) {
            let started = Instant::now();
            get(&http, &served, url).await?;
            samples.push(started.elapsed());
        }
    }
    let rss = served.rss()?;
    served.stop().await?;
    let [healthz, list, page, one] = timings;
    Ok(ScalePoint { services, healthz, list, page, one, rss })
}

impl fmt::Display for ScaleReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        let _ =
            writeln!(out, "## API at scale ({} requests of each kind, interleaved; no containers)\n", self.requests);
        let _ = writeln!(out, "| services | request | p50 | p99 | p50 / healthz | p99 / healthz | goal |");
        let _ = writeln!(out, "| ---: | --- | ---: | ---: | ---: | ---: | --- |");
        for p in &self.points {
            let (h50, h99) = (quantile(&p.healthz, 0.5), quantile(&p.healthz, 0.99));
            let rows: [(&str, &[Duration], &str); 4] = [
                ("GET /healthz", &p.healthz, ""),
                ("GET /api/services (all)", &p.list, ""),
                ("GET /api/services?limit=50", &p.page, "p99 ≤ 10 ms at 1000"),
                ("GET /api/services/{id}", &p.one, "p99 ≤ 5 ms at 1000"),
            ];
            for (label, samples, goal) in rows {
                let (p50, p99) = (quantile(samples, 0.5), quantile(samples, 0.99));
                let _ = writeln!(
                    out,
                    "| {} | {label} | {} | {} | {} | {} | {goal} |",
                    p.services,
                    ms(p50),
                    ms(p99),
                    ratio(p50, h50),
                    ratio(p99, h99)
                );
            }
            let _ = writeln!(
                out,
                "| {} | server RSS after the requests (peak) | {} ({}) | | | | ≤ 100 MB at 1000 |",
                p.services,
                mib(p.rss.current_kib),
                mib(p.rss.peak_kib)
            );
        }
        let _ = writeln!(out, "\nWhole run: {:.0} s.", self.duration.as_secs_f64());
        f.write_str(&out)
    }
}
