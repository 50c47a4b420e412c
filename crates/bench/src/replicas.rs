//! `--replicas`: several `spawnit serve` replicas on one store — an S3 bucket (a `moto_server`
//! on loopback, serving one request at a time as in the tests), then one local directory. On
//! each, the same workload — one no-op apply of each
//! of `services` deployed `hello` services, submitted round robin over the replicas — is run
//! with 1, 2 and 3 replicas: jobs per second (1 replica is the baseline), and the store
//! requests per job read from the replicas' `/metrics` (minus what they send while idle:
//! tails, leader lease, status board). Then the takeover: jobs submitted to one replica of
//! three, that replica killed (`kill -9`), and the time until another has finished them all.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;
use tokio::process::{Child, Command};

use crate::report::{Row, table};

/// The script that serves moto one request at a time (its conditional writes are atomic).
const MOTO_SERIAL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/moto-serial.py");
const BUCKET: &str = "spawnit-bench";
/// The replicas' claim and leader ttl.
const TTL: &str = "3s";

/// What `--replicas` measured.
pub struct ReplicasReport {
    store: &'static str,
    services: usize,
    /// (replicas, seconds for the workload, store requests per job, idle store requests/s).
    rounds: Vec<(usize, f64, f64, f64)>,
    takeover_jobs: usize,
    takeover: Duration,
    taken_over: usize,
}

/// Where the replicas' store is: the S3 bucket on moto (its port), or a local directory.
#[derive(Clone, Copy)]
enum Shared<'a> {
    S3(u16),
    Dir(&'a Path),
}

/// The store's environment for a `spawnit` command.
fn store_env(cmd: &mut Command, store: Shared) {
    match store {
        Shared::S3(moto_port) => {
            cmd.env("SPAWNIT_STORE", format!("s3://{BUCKET}/spawnit"))
                .env("SPAWNIT_S3_ENDPOINT", format!("http://127.0.0.1:{moto_port}"))
                .env("AWS_ACCESS_KEY_ID", "bench")
                .env("AWS_SECRET_ACCESS_KEY", "bench")
                .env("AWS_REGION", "us-east-1");
        }
        Shared::Dir(dir) => {
            cmd.env_remove("SPAWNIT_STORE").env("SPAWNIT_DATA", dir);
        }
    }
}

async fn cli(spawnit: &Path, store: Shared<'_>, client: &str, args: &[&str]) -> Result<String> {
    let mut cmd = Command::new(spawnit);
    cmd.args(args).env("SPAWNIT_CLIENT", client).stdin(Stdio::null());
    store_env(&mut cmd, store);
    let out = cmd.output().await.with_context(|| format!("run spawnit {args:?}"))?;
    ensure!(
        out.status.success(),
        "spawnit {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A running replica.
struct Replica {
    child: Child,
    base: String,
}

async fn replica_start(spawnit: &Path, store: Shared<'_>, i: usize, log_dir: &Path) -> Result<Replica> {
    let port = crate::free_port()?;
    let log = std::fs::File::create(log_dir.join(format!("replica-{i}.log")))?;
    let mut cmd = Command::new(spawnit);
    cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--replica-id", &format!("r{i}")])
        .args(["--claim-ttl", TTL, "--leader-ttl", TTL, "--refresh-interval", "1s"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true);
    store_env(&mut cmd, store);
    let child = cmd.spawn().context("start spawnit serve")?;
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let started = Instant::now();
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        ensure!(started.elapsed() < Duration::from_secs(60), "replica r{i} did not answer within 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(Replica { child, base })
}

/// The store requests a replica has sent so far (`spawnit_store_requests_total`, all kinds).
async fn store_requests(http: &reqwest::Client, base: &str) -> Result<f64> {
    let text = http.get(format!("{base}/metrics")).send().await?.text().await?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with("spawnit_store_requests_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

async fn requests_sum(http: &reqwest::Client, replicas: &[Replica]) -> Result<f64> {
    let mut sum = 0.0;
    for r in replicas {
        sum += store_requests(http, &r.base).await?;
    }
    Ok(sum)
}

/// Submits an apply of each service, round robin over `replicas`; returns the job ids.
async fn applies(http: &reqwest::Client, replicas: &[&str], token: &str, services: &[String]) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    for (i, name) in services.iter().enumerate() {
        let base = replicas[i % replicas.len()];
        let resp = http.post(format!("{base}/api/services/{name}/apply")).bearer_auth(token).send().await?;
        ensure!(resp.status().as_u16() == 202, "apply {name}: {}", resp.text().await?);
        let job: Value = serde_json::from_str(&resp.text().await?)?;
        ids.push(job["id"].as_str().context("job id")?.to_owned());
    }
    Ok(ids)
}

/// Waits until every job has finished (asked of `base`); fails if one did not succeed.
async fn finished(http: &reqwest::Client, base: &str, token: &str, ids: &[String]) -> Result<Vec<Value>> {
    let started = Instant::now();
    let mut records = Vec::new();
    for id in ids {
        loop {
            let resp = http.get(format!("{base}/api/jobs/{id}")).bearer_auth(token).send().await?;
            let job: Value =
                if resp.status().is_success() { serde_json::from_str(&resp.text().await?)? } else { Value::Null };
            match job["status"].as_str() {
                Some("succeeded") => {
                    records.push(job);
                    break;
                }
                Some("queued" | "running") | None => {}
                Some(other) => bail!("job {id} ended {other}: {job}"),
            }
            ensure!(started.elapsed() < Duration::from_secs(600), "job {id} did not finish within 10 minutes");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(records)
}

pub async fn replicas(spawnit: &Path, client: &str, scratch: &Path, services: usize) -> Result<Vec<ReplicasReport>> {
    let moto_port = crate::free_port()?;
    let _moto = Command::new("python3")
        .args([MOTO_SERIAL, "127.0.0.1", &moto_port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("start moto_server (scripts/test.sh installs moto[server])")?;
    let http = reqwest::Client::new();
    let started = Instant::now();
    loop {
        match http.put(format!("http://127.0.0.1:{moto_port}/{BUCKET}")).send().await {
            Ok(r) if r.status().is_success() => break,
            _ if started.elapsed() > Duration::from_secs(60) => bail!("moto_server did not answer within 60 s"),
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    let dir = scratch.join("shared-store");
    let s3 =
        run_on(spawnit, Shared::S3(moto_port), "S3 (moto_server, one request at a time)", client, scratch, services)
            .await?;
    let local = run_on(spawnit, Shared::Dir(&dir), "one local directory", client, scratch, services).await?;
    Ok(vec![s3, local])
}

async fn run_on(
    spawnit: &Path,
    store: Shared<'_>,
    store_name: &'static str,
    client: &str,
    scratch: &Path,
    services: usize,
) -> Result<ReplicasReport> {
    let http = reqwest::Client::new();
    eprintln!("[replicas] {store_name}: setting up {services} hello services");
    cli(spawnit, store, client, &["user", "create", "bench", "--client", client, "--password", "bench-password-1"])
        .await?;
    let out = cli(spawnit, store, client, &["token", "create", "--user", "bench"]).await?;
    let token = out.lines().last().unwrap_or_default().trim().to_owned();
    let names: Vec<String> = (0..services).map(|i| format!("h{i:03}")).collect();
    for name in &names {
        cli(spawnit, store, client, &["create", "hello", name]).await?;
    }
    cli(spawnit, store, client, &["network", "apply", "default", "--auto-approve"]).await?;
    for name in &names {
        cli(spawnit, store, client, &["apply", name, "--auto-approve"]).await?;
    }

    let mut rounds = Vec::new();
    for n in 1..=3 {
        let mut fleet = Vec::new();
        for i in 0..n {
            fleet.push(replica_start(spawnit, store, i, scratch).await?);
        }
        // Let the replicas settle (leader elected, index loaded), then measure their idle traffic.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let idle_from = (Instant::now(), requests_sum(&http, &fleet).await?);
        tokio::time::sleep(Duration::from_secs(5)).await;
        let before = requests_sum(&http, &fleet).await?;
        let idle_rate = (before - idle_from.1) / idle_from.0.elapsed().as_secs_f64();
        let bases: Vec<&str> = fleet.iter().map(|r| r.base.as_str()).collect();
        let t0 = Instant::now();
        let ids = applies(&http, &bases, &token, &names).await?;
        finished(&http, bases[0], &token, &ids).await?;
        let took = t0.elapsed().as_secs_f64();
        let after = requests_sum(&http, &fleet).await?;
        let per_job = ((after - before) - idle_rate * took).max(0.0) / ids.len() as f64;
        eprintln!("[replicas] {store_name}, {n} replica(s): {} jobs in {took:.2} s", ids.len());
        rounds.push((n, took, per_job, idle_rate));
        for mut r in fleet {
            let _ = r.child.kill().await;
        }
        // The next round's replicas take over the leader's lease at once (same host, process gone).
    }

    // Takeover: jobs on one replica of three, that replica killed.
    let mut fleet = Vec::new();
    for i in 0..3 {
        fleet.push(replica_start(spawnit, store, i, scratch).await?);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let victim_base = fleet[1].base.clone();
    let batch: Vec<String> = names.iter().take(10.min(names.len())).cloned().collect();
    let ids = applies(&http, &[victim_base.as_str()], &token, &batch).await?;
    fleet[1].child.kill().await.context("kill -9 the replica")?;
    let killed = Instant::now();
    let records = finished(&http, &fleet[0].base, &token, &ids).await?;
    let takeover = killed.elapsed();
    let taken_over = records.iter().filter(|r| r["replica"] != "r1").count();
    for mut r in fleet {
        let _ = r.child.kill().await;
    }
    for name in &names {
        cli(spawnit, store, client, &["destroy", name, "--auto-approve"]).await?;
    }
    Ok(ReplicasReport { store: store_name, services, rounds, takeover_jobs: ids.len(), takeover, taken_over })
}

impl std::fmt::Display for ReplicasReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let jobs = self.services as f64;
        let (_, base_took, _, _) = self.rounds.first().copied().unwrap_or((1, 1.0, 0.0, 0.0));
        let base_rate = jobs / base_took;
        let mut rows = Vec::new();
        for &(n, took, per_job, idle) in &self.rounds {
            let rate = jobs / took;
            let row =
                Row::new(format!("jobs/s, {n} replica(s), {} no-op applies", self.services), format!("{rate:.2}"));
            rows.push(if n == 1 {
                row.goal("baseline")
            } else {
                row.against(format!("{base_rate:.2} (1 replica)"), format!("{:.2}×", rate / base_rate))
                    .goal("more replicas: more API capacity, not faster Docker")
            });
            rows.push(Row::new(format!("store requests per job, {n} replica(s)"), format!("{per_job:.1}")));
            rows.push(Row::new(format!("idle store requests/s, {n} replica(s)"), format!("{idle:.1}")));
        }
        rows.push(
            Row::new(
                format!("takeover after kill -9: {} jobs finished by others", self.takeover_jobs),
                format!("{:.2} s ({} taken over)", self.takeover.as_secs_f64(), self.taken_over),
            )
            .against(format!("claim ttl {TTL}"), "same host: the dead pid is seen at once".into())
            .goal("within the claim's ttl"),
        );
        writeln!(f, "## SpawnIt replicas on one store: {}\n", self.store)?;
        write!(f, "{}", table(&rows))
    }
}
