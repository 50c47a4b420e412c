//! A real server for tests: `Server::start` on 127.0.0.1:0 over a store in a temporary
//! directory and the real Docker engine, with a real HTTP client and a real SSE reader.

#![allow(dead_code)]

pub mod browser;
pub mod cluster;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};
use spawnit_docker::DockerProvider;
use spawnit_engine::{Engine, Providers};
use spawnit_model::{Id, ProviderKind};
use spawnit_server::accounts::Role;
use spawnit_server::auth::token_create;
use spawnit_server::{Server, ServerConfig};
use spawnit_store::Store;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A unique client id for one test.
pub fn client_unique() -> String {
    format!("s{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst))
}

pub fn docker_required() {
    let ok =
        Command::new("docker").arg("info").stdout(Stdio::null()).stderr(Stdio::null()).status().map(|s| s.success());
    assert!(matches!(ok, Ok(true)), "these tests need a running Docker engine (`docker info` failed)");
    let out = Command::new("docker").args(["image", "ls", "-q", "hashicorp/http-echo:1.0"]).output().unwrap();
    assert!(
        !out.stdout.is_empty(),
        "test image hashicorp/http-echo:1.0 is missing: run scripts/test-images.sh (scripts/test.sh does)"
    );
}

pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("run docker");
    assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn free_port() -> u16 {
    // Never the same port twice in one test process: a port handed out for a service that is
    // planned but not deployed yet is free to the OS, which may offer it again at once.
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// A server on a temporary store, with a member token for `client`.
pub struct TestServer {
    pub dir: tempfile::TempDir,
    pub server: Option<Server>,
    pub base: String,
    pub client: String,
    pub token: String,
    pub admin: String,
    pub http: reqwest::Client,
    pub config: ServerConfig,
}

pub async fn engine_for(dir: &std::path::Path) -> (Engine, DockerProvider) {
    let store = Store::open_local(dir).unwrap();
    let docker = DockerProvider::connect().await.expect("Docker engine");
    let engine =
        Engine::open(store, Providers::default().with(ProviderKind::Docker, std::sync::Arc::new(docker.clone())))
            .await
            .unwrap();
    (engine, docker)
}

impl TestServer {
    pub async fn start(config: impl FnOnce(&mut ServerConfig)) -> TestServer {
        TestServer::start_with(|cfg, _| config(cfg)).await
    }

    /// [`TestServer::start`], the configuration given the server's store too (e.g. for the
    /// lease book of a cluster).
    pub async fn start_with(config: impl FnOnce(&mut ServerConfig, &Store)) -> TestServer {
        docker_required();
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = ServerConfig { listen: "127.0.0.1:0".parse().unwrap(), ..Default::default() };
        let (engine, docker) = engine_for(dir.path()).await;
        config(&mut cfg, engine.store());
        let admin =
            spawnit_server::auth::admin_token_bootstrap(engine.store()).await.unwrap().expect("first admin token");
        let client = client_unique();
        let token = token_create(engine.store(), "alice", &Id::parse(&client).unwrap(), Role::Member).await.unwrap();
        let server = Server::start(engine, docker, cfg.clone()).await.unwrap();
        let base = format!("http://{}", server.addr);
        TestServer { dir, server: Some(server), base, client, token, admin, http: reqwest::Client::new(), config: cfg }
    }

    /// Stops the server and starts a new one on the same store (and the same port).
    pub async fn restart(&mut self) {
        if let Some(server) = self.server.take() {
            server.run_until(async {}).await;
        }
        let (engine, docker) = engine_for(self.dir.path()).await;
        let mut cfg = self.config.clone();
        cfg.listen = self.base.trim_start_matches("http://").parse().unwrap();
        let server = Server::start(engine, docker, cfg).await.unwrap();
        self.server = Some(server);
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.request(method, self.url(path)).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_else(|e| panic!("read the answer to {path}: {e}"));
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    /// Creates `hello` on a free port with the network applied; returns the port.
    pub async fn hello(&self, name: &str, message: &str) -> u16 {
        let port = free_port();
        let (status, body) = self
            .post(
                "/api/services",
                json!({"template": "hello", "name": name, "params": {"port": port, "message": message}}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let job = self.post("/api/networks/default/apply", json!({})).await.1;
        self.job_wait(&job).await;
        port
    }

    /// Waits until a job finishes; returns its record.
    pub async fn job_wait(&self, job: &Value) -> Value {
        let id = job["id"].as_str().unwrap_or_else(|| panic!("not a job: {job}"));
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (_, record) = self.get(&format!("/api/jobs/{id}")).await;
            if !matches!(record["status"].as_str(), Some("queued" | "running")) {
                return record;
            }
            assert!(Instant::now() < deadline, "job {id} did not finish: {record}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Opens an SSE stream.
    pub async fn sse(&self, path: &str, last_event_id: Option<&str>) -> SseReader {
        self.sse_as(&self.token, path, last_event_id).await
    }

    /// Opens an SSE stream with another bearer token.
    pub async fn sse_as(&self, token: &str, path: &str, last_event_id: Option<&str>) -> SseReader {
        let mut req = self.http.get(self.url(path)).bearer_auth(token);
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id);
        }
        let resp = req.send().await.expect("sse");
        assert_eq!(resp.status(), 200);
        assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
        SseReader { stream: Box::pin(resp.bytes_stream()), buffer: String::new() }
    }

    /// Removes every Docker object of every client of this test's store (the store is this
    /// test's own: its other clients, an isolation test's second one, are its too).
    pub fn cleanup(&self) {
        let mut clients = vec![self.client.clone()];
        for entry in std::fs::read_dir(self.dir.path().join("clients")).into_iter().flatten().flatten() {
            clients.push(entry.file_name().to_string_lossy().into_owned());
        }
        clients.sort();
        clients.dedup();
        for client in clients {
            let label = format!("label=spawnit.client={client}");
            for id in docker(&["ps", "-aq", "--filter", &label]).lines() {
                let _ = Command::new("docker").args(["rm", "-f", id]).output();
            }
            for id in docker(&["volume", "ls", "-q", "--filter", &label]).lines() {
                let _ = Command::new("docker").args(["volume", "rm", "-f", id]).output();
            }
            for id in docker(&["network", "ls", "-q", "--filter", &label]).lines() {
                let _ = Command::new("docker").args(["network", "rm", id]).output();
            }
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // Stop the server first: its drift monitor would otherwise repair what the cleanup
        // removes (a `reconcile` service comes back).
        if let (Some(server), Ok(handle)) = (self.server.take(), tokio::runtime::Handle::try_current()) {
            tokio::task::block_in_place(|| handle.block_on(server.run_until(async {})));
        }
        self.cleanup();
    }
}

/// One SSE event.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: String,
    pub data: Value,
}

pub struct SseReader {
    stream: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buffer: String,
}

impl SseReader {
    /// The next event, or `None` when the stream ends or `timeout` passes.
    pub async fn next(&mut self, timeout: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = SseEvent { id: None, event: "message".into(), data: Value::Null };
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        event.id = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("event:") {
                        event.event = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if data.is_empty() {
                    continue; // keep-alive comment
                }
                event.data = serde_json::from_str(&data).unwrap_or(Value::String(data));
                return Some(event);
            }
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Ok(Some(Ok(chunk))) => self.buffer.push_str(&String::from_utf8_lossy(&chunk)),
                _ => return None,
            }
        }
    }

    /// Events until one matches, or panics after `timeout`.
    pub async fn until(
        &mut self,
        timeout: Duration,
        what: &str,
        matches: impl Fn(&SseEvent) -> bool,
    ) -> (SseEvent, Vec<SseEvent>) {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left).await {
                Some(e) if matches(&e) => return (e, seen),
                Some(e) => seen.push(e),
                None => break,
            }
        }
        panic!("no {what} within {timeout:?}; saw {seen:#?}");
    }
}

/// A signed-in web session: its cookie and CSRF token.
#[derive(Clone, Debug)]
pub struct Session {
    pub cookie: String,
    pub csrf: String,
}

/// An HTTP client that does not follow redirects (to see them).
pub fn http_no_redirect() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

impl TestServer {
    /// Creates a local user on the server's store.
    pub async fn user(&self, name: &str, client: &str, role: Role, password: &str) {
        let store = Store::open_local(self.dir.path()).unwrap();
        spawnit_server::accounts::user_create(
            &store,
            &Id::parse(name).unwrap(),
            &Id::parse(client).unwrap(),
            role,
            Some(password),
            None,
        )
        .await
        .unwrap();
    }

    /// Signs in through the form; panics unless it works.
    pub async fn sign_in(&self, user: &str, password: &str) -> Session {
        let http = http_no_redirect();
        let resp = http
            .post(self.url("/login"))
            .form(&[("user", user), ("password", password), ("next", "/")])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 303, "sign-in of {user} failed: {}", resp.text().await.unwrap_or_default());
        let set = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
        let cookie = set.split(';').next().unwrap().to_owned();
        let me: Value =
            http.get(self.url("/api/me")).header("cookie", &cookie).send().await.unwrap().json().await.unwrap();
        Session { cookie, csrf: me["csrf"].as_str().unwrap().to_owned() }
    }

    /// A page or API answer as a session (`None`: anonymous): status and body.
    pub async fn page(&self, session: Option<&Session>, path: &str) -> (u16, String) {
        let mut req = http_no_redirect().get(self.url(path));
        if let Some(s) = session {
            req = req.header("cookie", &s.cookie);
        }
        let resp = req.send().await.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap_or_else(|e| panic!("read the page {path}: {e}")))
    }

    /// A form post as a session, with `csrf` (or none).
    pub async fn form(
        &self,
        session: Option<&Session>,
        path: &str,
        fields: &[(&str, &str)],
        csrf: Option<&str>,
    ) -> (u16, String) {
        let mut fields: Vec<(&str, &str)> = fields.to_vec();
        if let Some(c) = csrf {
            fields.push(("csrf", c));
        }
        let mut req = http_no_redirect().post(self.url(path)).form(&fields);
        if let Some(s) = session {
            req = req.header("cookie", &s.cookie);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let location = resp.headers().get("location").map(|v| v.to_str().unwrap_or("").to_owned());
        let text = resp.text().await.unwrap_or_else(|e| panic!("read the answer to {path}: {e}"));
        (status, location.map(|l| format!("location: {l}\n{text}")).unwrap_or(text))
    }
}

pub async fn http_text(port: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/")).await {
            if let Ok(t) = r.text().await {
                return t;
            }
        }
        assert!(Instant::now() < deadline, "nothing answers on port {port}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn json_of(v: &Value, path: &[&str]) -> Value {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.clone()
}

pub fn empty() -> Value {
    json!({})
}
