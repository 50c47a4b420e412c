//! Measurement 6: how fast the server reacts, timed from a client of its HTTP API, each against
//! a baseline from the same run (these were timed assertions in the tests; the tests now check
//! the behaviour only):
//!
//! - cancel: from `POST /api/jobs/{id}/cancel` (sent once the apply's first operation is done)
//!   to the job's `finished` event on its SSE stream, against the duration of one resource
//!   operation of the same applies (a cancel stops between operations);
//! - drift: from removing a service's container outside SpawnIt to the `service_status
//!   drifted` event on `/api/events`, against the time Docker's own event stream takes to
//!   report the removal.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use futures::StreamExt;
use serde_json::{Value, json};

use crate::serve::Served;
use crate::{Bench, HELLO_IMAGE, free_port};

/// Containers in a row in the cancel probe's template: enough operations to cancel between.
pub const CHAIN: usize = 6;
/// A hang guard for every wait of this measurement (not a bound on what is measured).
const GUARD: Duration = Duration::from_secs(120);

pub struct Reaction {
    /// `POST cancel` → `finished`.
    pub cancel: Vec<Duration>,
    /// Every container operation of those applies, as the server timed it.
    pub operation: Vec<Duration>,
    /// `docker rm -f` → `service_status drifted` on `/api/events`.
    pub drift: Vec<Duration>,
    /// `docker rm -f` → Docker's `destroy` event.
    pub docker_event: Vec<Duration>,
}

/// One Server-Sent Events stream, read chunk by chunk.
pub struct Sse {
    response: reqwest::Response,
    buffer: String,
}

impl Sse {
    pub async fn open(http: &reqwest::Client, served: &Served, path: &str) -> Result<Sse> {
        let url = format!("{}{path}", served.base);
        let response = http.get(&url).bearer_auth(&served.token).send().await.with_context(|| format!("GET {url}"))?;
        ensure!(response.status().is_success(), "GET {url}: {}", response.status());
        Ok(Sse { response, buffer: String::new() })
    }

    /// The next event's name and data.
    async fn next(&mut self) -> Result<(String, Value)> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let (mut name, mut data) = (String::from("message"), String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if data.is_empty() {
                    continue; // a keep-alive comment
                }
                return Ok((name, serde_json::from_str(&data).unwrap_or(Value::String(data))));
            }
            match tokio::time::timeout(GUARD, self.response.chunk()).await {
                Ok(Ok(Some(chunk))) => self.buffer.push_str(&String::from_utf8_lossy(&chunk)),
                Ok(Ok(None)) => bail!("the event stream ended"),
                Ok(Err(e)) => return Err(e).context("read the event stream"),
                Err(_) => bail!("no event within {} s", GUARD.as_secs()),
            }
        }
    }

    /// Events until one matches; returns it.
    pub async fn until(&mut self, what: &str, matches: impl Fn(&str, &Value) -> bool) -> Result<Value> {
        loop {
            let (name, data) = self.next().await.with_context(|| format!("waiting for {what}"))?;
            if matches(&name, &data) {
                return Ok(data);
            }
        }
    }
}

/// A JSON request with the admin token; fails unless it answers `expected`.
pub async fn call(
    http: &reqwest::Client,
    served: &Served,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
    expected: u16,
) -> Result<Value> {
    let url = format!("{}{path}", served.base);
    let mut request = http.request(method.clone(), &url).bearer_auth(&served.token);
    if let Some(body) = body {
        request = request.header("content-type", "application/json").body(body.to_string());
    }
    let response = request.send().await.with_context(|| format!("{method} {url}"))?;
    let status = response.status().as_u16();
    let text = response.text().await.with_context(|| format!("read the answer to {method} {url}"))?;
    ensure!(status == expected, "{method} {url}: {status} (expected {expected}): {text:.300}");
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Waits until a job has finished; returns its status.
pub async fn job_wait(http: &reqwest::Client, served: &Served, job: &Value) -> Result<String> {
    let id = job["id"].as_str().context("not a job")?;
    let deadline = Instant::now() + GUARD;
    loop {
        let record = call(http, served, reqwest::Method::GET, &format!("/api/jobs/{id}"), None, 200).await?;
        match record["status"].as_str() {
            Some("queued" | "running") => {}
            Some(status) => return Ok(status.to_owned()),
            None => bail!("job {id} has no status: {record}"),
        }
        ensure!(Instant::now() < deadline, "job {id} did not finish within {} s", GUARD.as_secs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The cancel probe's template: `CHAIN` echo containers, each depending on the one before.
fn chain_template() -> Result<spawnit_model::Template> {
    let mut containers = serde_json::Map::new();
    for i in 0..CHAIN {
        let mut c = json!({"image": HELLO_IMAGE, "command": ["-listen=:5678", format!("-text=link {i}")]});
        if i > 0 {
            c["depends_on"] = json!([format!("c{}", i - 1)]);
        } else {
            c["ports"] = json!([{"name": "http", "container": 5678, "host": "${port}", "scheme": "http"}]);
        }
        containers.insert(format!("c{i}"), c);
    }
    let template = json!({
        "id": "bench-chain", "name": "Chain", "category": "demo", "version": "1.0.0",
        "description": "containers in a row (the cancel probe of spawnit-bench)",
        "parameters": {"port": {"type": "integer", "default": 8080, "minimum": 1024, "maximum": 65535}},
        "blueprint": {"containers": containers},
    });
    serde_json::from_value(template).context("the chain template")
}

/// Measurement 6 on a `spawnit serve` of its own store.
pub async fn reaction(b: &Bench) -> Result<Reaction> {
    let dir = b.scratch.join("reaction-store");
    std::fs::create_dir_all(&dir)?;
    let served = Served::start(&b.spawnit, &dir, &b.scratch.join("serve-reaction.log")).await?;
    let result = reaction_on(b, &served, &dir).await;
    let stopped = served.stop().await;
    let out = result?;
    stopped?;
    Ok(out)
}

async fn reaction_on(b: &Bench, served: &Served, dir: &std::path::Path) -> Result<Reaction> {
    use reqwest::Method;

    let http = reqwest::Client::new();
    let client = &b.client;
    let q = |path: &str| format!("{path}?client={client}");
    spawnit_store::Store::open_local(dir)?.template_put(&chain_template()?).await.context("store the template")?;
    call(&http, served, Method::POST, &q("/api/networks"), Some(json!({"name": "reaction"})), 201).await?;
    let job = call(&http, served, Method::POST, &q("/api/networks/reaction/apply"), None, 202).await?;
    ensure!(job_wait(&http, served, &job).await? == "succeeded", "the network apply failed");
    let mut out = Reaction { cancel: Vec::new(), operation: Vec::new(), drift: Vec::new(), docker_event: Vec::new() };

    for round in 0..b.args.runs {
        let name = format!("cancel-{round}");
        let body =
            json!({"template": "bench-chain", "name": name, "network": "reaction", "params": {"port": free_port()?}});
        call(&http, served, Method::POST, &q("/api/services"), Some(body), 201).await?;
        let job = call(&http, served, Method::POST, &q(&format!("/api/services/{name}/apply")), None, 202).await?;
        let id = job["id"].as_str().context("not a job")?.to_owned();
        let mut events = Sse::open(&http, served, &format!("/api/jobs/{id}/events")).await?;
        let first = events.until("the first operation", |name, _| name == "operation_done").await?;
        out.operation.push(Duration::from_millis(first["duration_ms"].as_u64().unwrap_or(0)));
        let started = Instant::now();
        call(&http, served, Method::POST, &format!("/api/jobs/{id}/cancel"), None, 202).await?;
        loop {
            let (event, data) = events.next().await.context("waiting for the cancelled job to finish")?;
            if event == "operation_done" {
                out.operation.push(Duration::from_millis(data["duration_ms"].as_u64().unwrap_or(0)));
            } else if event == "finished" {
                out.cancel.push(started.elapsed());
                ensure!(data["outcome"] == "cancelled", "the apply was not cancelled: {data}");
                break;
            }
        }
        let job = call(&http, served, Method::POST, &q(&format!("/api/services/{name}/destroy")), None, 202).await?;
        ensure!(job_wait(&http, served, &job).await? == "succeeded", "the destroy of {name} failed");
        call(&http, served, Method::DELETE, &q(&format!("/api/services/{name}")), None, 204).await?;
    }

    let body = json!({"template": "hello", "name": "drift", "network": "reaction", "params": {"port": free_port()?}});
    call(&http, served, Method::POST, &q("/api/services"), Some(body), 201).await?;
    let mut server_events = Sse::open(&http, served, "/api/events").await?;
    let is_drift = |status: &'static str| {
        let client = client.to_string();
        move |name: &str, data: &Value| {
            name == "service_status"
                && data["client"] == client.as_str()
                && data["service"] == "drift"
                && data["status"] == status
        }
    };
    for _ in 0..b.args.runs {
        let job = call(&http, served, Method::POST, &q("/api/services/drift/apply"), None, 202).await?;
        ensure!(job_wait(&http, served, &job).await? == "succeeded", "the apply of drift failed");
        server_events.until("the service compliant", is_drift("compliant")).await?;
        let service = call(&http, served, Method::GET, &q("/api/services/drift"), None, 200).await?;
        let container = service["resources"]["container.echo"]["id"].as_str().context("no container.echo")?.to_owned();
        let filters = HashMap::from([
            ("type".to_owned(), vec!["container".to_owned()]),
            ("event".to_owned(), vec!["destroy".to_owned()]),
            ("container".to_owned(), vec![container.clone()]),
        ]);
        let options = bollard::query_parameters::EventsOptions { filters: Some(filters), ..Default::default() };
        let mut docker_events = b.docker.client().events(Some(options));
        // The events request is sent on the first poll: let it reach the engine first.
        let _ = tokio::time::timeout(Duration::from_millis(200), docker_events.next()).await;
        let started = Instant::now();
        let remove = bollard::query_parameters::RemoveContainerOptions { force: true, ..Default::default() };
        let removed = b.docker.client().remove_container(&container, Some(remove));
        let docker_seen = async {
            match tokio::time::timeout(GUARD, docker_events.next()).await {
                Ok(Some(Ok(_))) => Ok(started.elapsed()),
                other => bail!("Docker reported no destroy event: {other:?}"),
            }
        };
        let spawnit_seen = async {
            server_events.until("the service drifted", is_drift("drifted")).await?;
            Ok::<_, anyhow::Error>(started.elapsed())
        };
        let (removed, docker_seen, spawnit_seen) = tokio::join!(removed, docker_seen, spawnit_seen);
        removed.context("remove the container")?;
        out.docker_event.push(docker_seen?);
        out.drift.push(spawnit_seen?);
    }
    let job = call(&http, served, Method::POST, &q("/api/services/drift/destroy"), None, 202).await?;
    ensure!(job_wait(&http, served, &job).await? == "succeeded", "the destroy of drift failed");
    Ok(out)
}
