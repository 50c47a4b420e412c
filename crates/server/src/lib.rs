//! SpawnIt's server (`spawnit serve`): the JSON API under `/api` (bearer tokens or the web
//! session, one error shape, an OpenAPI document), the server-rendered web UI, local accounts
//! and OIDC sign-in, the audit log, jobs streamed by Server-Sent Events, and the background
//! tasks: the drift monitor, the lease keeper, the autoscaler, the refresh of the service
//! index and, with a Swarm cluster, the cluster monitor (each one's last run in [`tasks`]). It
//! keeps no state of its own: specs, state, locks, users, sessions, tokens, audit entries,
//! job records and node leases live in the store (the index only mirrors specs and states),
//! so it can be restarted at any moment, and the CLI can act on the same store.

pub mod accounts;
pub mod api;
pub mod audit;
pub mod auth;
pub mod autoscaler;
pub mod caller;
pub mod cluster_monitor;
pub mod error;
pub mod events;
pub mod headers;
pub mod index;
pub mod job_types;
pub mod jobs;
pub mod leader;
pub mod metrics;
pub mod monitor;
pub mod oidc;
pub mod openapi;
pub mod ops;
pub mod read_only;
pub mod replica;
pub mod session;
mod sse;
pub mod tasks;
mod ui;
pub mod views;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use spawnit_docker::DockerProvider;
use spawnit_engine::{Engine, EngineError};
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;
use crate::events::EventBus;
use crate::index::ServiceIndex;
use crate::jobs::{Jobs, JobsConfig};
use crate::metrics::Metrics;
use crate::monitor::{Monitor, StatusBoard};
use crate::tasks::TaskRuns;

/// Log directives every log filter of SpawnIt ends with, whatever `SPAWNIT_LOG` asks for: these
/// crates write the raw bodies of Docker and AWS API requests and answers at debug and trace
/// level, and those carry secret parameters (a container's command and environment, an
/// instance's user data). Secrets never appear in logs.
pub const LOG_QUIET: [&str; 8] = [
    "bollard=warn",
    "aws_smithy_runtime=warn",
    "aws_smithy_runtime_api=warn",
    "aws_smithy_http=warn",
    "aws_sdk_ec2=warn",
    "hyper=warn",
    "hyper_util=warn",
    "h2=warn",
];

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    /// The Docker engine, for the readiness probe.
    pub docker: DockerProvider,
    /// Asks the drift monitor to check a service now (after a change of its settings).
    pub recheck: tokio::sync::mpsc::UnboundedSender<(spawnit_model::Id, spawnit_model::Id)>,
    pub jobs: Jobs,
    pub bus: EventBus,
    pub board: StatusBoard,
    pub metrics: Arc<Metrics>,
    /// The last run of each background task.
    pub tasks: TaskRuns,
    /// Every service's spec and state in memory, for lists.
    pub index: ServiceIndex,
    /// The autoscaler's last samples and decisions, and each service's last scaling.
    pub scaling: autoscaler::ScaleBoard,
    /// The cluster monitor's last events (nodes down, services degraded and healed, …).
    pub cluster_events: cluster_monitor::ClusterBoard,
    /// Failed sign-ins, per user and address.
    pub rate: accounts::RateLimit,
    /// Whether cookies get `Secure` (the server listens on a non-loopback address).
    pub secure_cookies: bool,
    /// OIDC sign-in, when configured.
    pub oidc: Option<std::sync::Arc<oidc::Oidc>>,
    /// Whether SpawnIt's public URL is https (answers then carry `Strict-Transport-Security`).
    pub https: bool,
    /// The Swarm cluster's nodes and leases, when a Swarm manager is configured.
    pub cluster: Option<spawnit_cluster::Cluster>,
    /// This server among the replicas sharing its store.
    pub replica: replica::Replica,
    /// `true` while this replica leads (runs the background tasks).
    pub leading: tokio::sync::watch::Receiver<bool>,
}

/// The whole HTTP application: the API, the web pages, and what every answer carries.
pub fn app(state: AppState) -> axum::Router {
    axum::Router::from(api::routes())
        .merge(ui::routes())
        .merge(oidc::routes())
        .fallback(ui::not_found)
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "method not allowed on this route")
        })
        .layer(axum::middleware::from_fn_with_state(state.clone(), read_only::read_only_guard))
        .layer(axum::middleware::from_fn_with_state(state.https, headers::security_headers))
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::api_latency))
        .with_state(state)
}

/// The OpenAPI document as served, made once.
fn openapi_json() -> &'static str {
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DOCUMENT.get_or_init(|| openapi::document().to_pretty_json().unwrap_or_default())
}

/// How the server runs.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub jobs: JobsConfig,
    pub sweep_every: Duration,
    pub lease_every: Duration,
    pub lease_warnings: Vec<Duration>,
    /// The waits between failed reconcile applies of a service (10 s doubling up to 10 min).
    pub reconcile_backoff: monitor::Backoff,
    /// The autoscaler's interval and cooldowns.
    pub autoscale: autoscaler::AutoscaleConfig,
    /// OIDC sign-in for the web UI.
    pub oidc: Option<oidc::OidcConfig>,
    /// SpawnIt's public URL, e.g. `https://spawnit.example.com` (https: answers carry
    /// `Strict-Transport-Security` and cookies are `Secure`).
    pub public_url: Option<String>,
    /// The Swarm cluster and its monitor's settings, when a Swarm manager is configured.
    pub cluster: Option<cluster_monitor::ClusterSetup>,
    /// This replica's name among those sharing the store (default: the host's name and a
    /// random suffix).
    pub replica_id: Option<String>,
    /// How long the leader's lease lasts without renewal: a leader that stops has its
    /// background tasks resumed by another replica within this.
    pub leader_ttl: Duration,
    /// How often the service index and the status board are brought up to date with what
    /// other processes (replicas, the CLI) wrote to the store (one listing each time).
    pub index_every: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            jobs: JobsConfig::default(),
            sweep_every: Duration::from_secs(30),
            lease_every: Duration::from_secs(5),
            lease_warnings: vec![Duration::from_secs(3600), Duration::from_secs(300)],
            reconcile_backoff: monitor::Backoff::default(),
            autoscale: autoscaler::AutoscaleConfig::default(),
            oidc: None,
            public_url: None,
            cluster: None,
            replica_id: None,
            leader_ttl: Duration::from_secs(15),
            index_every: Duration::from_secs(2),
        }
    }
}

/// A running server: its address, and what stops it.
pub struct Server {
    pub addr: SocketAddr,
    stop: CancellationToken,
    tasks: tokio::task::JoinSet<()>,
    jobs: Jobs,
}

impl Server {
    /// Binds the listener and starts the API, the drift monitor, the lease keeper and the autoscaler.
    pub async fn start(engine: Engine, docker: DockerProvider, config: ServerConfig) -> Result<Server, ServerError> {
        let replica = replica::Replica::this_process(config.replica_id.as_deref());
        let (bus, outbox) = EventBus::relayed();
        let metrics = Arc::new(Metrics::default());
        let jobs =
            Jobs::load(engine.clone(), bus.clone(), metrics.clone(), config.jobs.clone(), replica.clone()).await?;
        let board = StatusBoard::default();
        let task_runs = TaskRuns::default();
        let index = ServiceIndex::load(engine.store().clone()).await.map_err(EngineError::from)?;
        let (recheck, rechecks) = tokio::sync::mpsc::unbounded_channel();
        let rechecks: monitor::Rechecks = Arc::new(tokio::sync::Mutex::new(rechecks));
        let (leading_tx, leading) = tokio::sync::watch::channel(false);
        let state = AppState {
            engine: engine.clone(),
            docker: docker.clone(),
            recheck,
            jobs: jobs.clone(),
            bus: bus.clone(),
            board: board.clone(),
            metrics: metrics.clone(),
            tasks: task_runs.clone(),
            index: index.clone(),
            scaling: autoscaler::ScaleBoard::default(),
            cluster_events: cluster_monitor::ClusterBoard::default(),
            rate: accounts::RateLimit::new(engine.store().clone()),
            secure_cookies: !config.listen.ip().is_loopback() || headers::is_https(config.public_url.as_deref()),
            oidc: config.oidc.clone().map(|c| std::sync::Arc::new(oidc::Oidc::new(c))),
            https: headers::is_https(config.public_url.as_deref()),
            cluster: config.cluster.as_ref().map(|c| c.cluster.clone()),
            replica: replica.clone(),
            leading: leading.clone(),
        };
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| ServerError::Bind { addr: config.listen, source })?;
        let addr = listener.local_addr().map_err(|source| ServerError::Bind { addr: config.listen, source })?;
        let stop = CancellationToken::new();
        let autoscaler = autoscaler::Autoscaler { state: state.clone(), config: config.autoscale };
        let metrics_upkeep = metrics.clone().upkeep_run(stop.clone());
        let monitor = Monitor {
            engine: engine.clone(),
            docker,
            jobs: jobs.clone(),
            bus: bus.clone(),
            board: board.clone(),
            metrics: metrics.clone(),
            tasks: task_runs.clone(),
            sweep_every: config.sweep_every,
            lease_every: config.lease_every,
            lease_warnings: config.lease_warnings,
            reconcile_backoff: config.reconcile_backoff,
        };
        // The background tasks run on the leader only, started anew for each term.
        let background = {
            let (bus, metrics, task_runs, cluster_events) =
                (bus.clone(), metrics.clone(), task_runs.clone(), state.cluster_events.clone());
            let cluster = config.cluster.clone();
            move |term: CancellationToken| {
                let mut set = tokio::task::JoinSet::new();
                set.spawn(monitor.clone().drift_run(rechecks.clone(), term.clone()));
                set.spawn(monitor.clone().lease_run(term.clone()));
                set.spawn(autoscaler.clone().run(term.clone()));
                if let Some(setup) = cluster.clone() {
                    let task = cluster_monitor::ClusterMonitorTask::new(
                        setup,
                        bus.clone(),
                        metrics.clone(),
                        task_runs.clone(),
                        cluster_events.clone(),
                    );
                    set.spawn(task.run(term));
                }
                set
            }
        };
        let leadership = leader::Leadership {
            store: engine.store().clone(),
            replica: replica.clone(),
            ttl: config.leader_ttl,
            metrics: metrics.clone(),
            leading: leading_tx,
        };
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(leadership.run(stop.clone(), background));
        tasks.spawn(monitor::board_share_run(
            board,
            engine.store().clone(),
            leading,
            config.index_every.min(Duration::from_secs(1)),
            stop.clone(),
        ));
        tasks.spawn(events::relay_run(engine.store().clone(), replica, bus, outbox, stop.clone()));
        tasks.spawn(metrics_upkeep);
        tasks.spawn(index.run(config.index_every, task_runs, stop.clone()));
        let shutdown = stop.clone();
        tasks.spawn(async move {
            let serve = axum::serve(listener, app(state).into_make_service_with_connect_info::<SocketAddr>())
                .with_graceful_shutdown(async move { shutdown.cancelled().await });
            if let Err(e) = serve.await {
                tracing::error!("the HTTP server stopped: {e}");
            }
        });
        Ok(Server { addr, stop, tasks, jobs })
    }

    /// Runs until `signal` completes, then stops cleanly: running jobs stop between operations.
    pub async fn run_until(mut self, signal: impl std::future::Future<Output = ()>) {
        tokio::select! {
            _ = signal => {}
            _ = self.tasks.join_next() => {}
        }
        self.stop.cancel();
        self.jobs.shutdown().await;
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Engine(#[from] EngineError),
}
