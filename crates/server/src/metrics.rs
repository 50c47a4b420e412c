//! Prometheus metrics through the `metrics` facade, rendered by `metrics-exporter-prometheus`:
//! jobs by kind and status with their durations, services by status, drift sweeps and their
//! durations, Docker events, SSE catch-ups, the API's latency by route, and the Swarm cluster's
//! nodes by status with the measured heal and clean times.
//!
//! Each server holds its own recorder (tests run several servers in one process, so none is
//! installed globally); every update runs under it with [`metrics::with_local_recorder`], and
//! `GET /metrics` renders it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use tokio_util::sync::CancellationToken;

use crate::AppState;
use crate::tasks::{Task, TaskRun};

const JOBS: &str = "spawnit_jobs";
const JOBS_FINISHED: &str = "spawnit_jobs_finished_total";
const JOB_DURATION: &str = "spawnit_job_duration_seconds";
const SERVICES: &str = "spawnit_services";
const SWEEPS: &str = "spawnit_drift_sweeps_total";
const SWEEP_DURATION: &str = "spawnit_drift_sweep_seconds";
const SWEEP_LAST_SECONDS: &str = "spawnit_drift_sweep_last_seconds";
const SWEEP_LAST_SERVICES: &str = "spawnit_drift_sweep_last_services";
const DOCKER_EVENTS: &str = "spawnit_docker_events_total";
const SSE_LAGGED: &str = "spawnit_sse_lagged_total";
const API_DURATION: &str = "spawnit_api_request_duration_seconds";
const TASK_LAST_RUN: &str = "spawnit_task_last_run_timestamp_seconds";
const TASK_LAST_DURATION: &str = "spawnit_task_last_duration_seconds";
const TASK_LAST_OK: &str = "spawnit_task_last_ok";
const TASK_RUNS: &str = "spawnit_task_runs_total";
const TASK_FAILURES: &str = "spawnit_task_failures_total";
const CLUSTER_NODES: &str = "spawnit_cluster_nodes";
const CLUSTER_NODES_USE: &str = "spawnit_cluster_nodes_by_use";
const CLUSTER_EVENTS: &str = "spawnit_cluster_events_total";
const CLUSTER_HEAL: &str = "spawnit_cluster_heal_seconds";
const CLUSTER_CLEAN: &str = "spawnit_cluster_clean_seconds";
const CLUSTER_CHECK: &str = "spawnit_cluster_check_seconds";
const JOBS_TAKEN_OVER: &str = "spawnit_jobs_taken_over_total";
const LEADER: &str = "spawnit_leader";
const STORE_REQUESTS: &str = "spawnit_store_requests_total";

/// Bucket bounds, in seconds: jobs run for seconds to minutes, sweeps for milliseconds to
/// seconds, API answers for microseconds to seconds.
const JOB_BUCKETS: [f64; 10] = [0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 150.0, 300.0, 900.0];
const SWEEP_BUCKETS: [f64; 10] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
const API_BUCKETS: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];
/// A service heals and a node is cleaned in seconds to minutes.
const HEAL_BUCKETS: [f64; 10] = [1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 30.0, 60.0, 300.0];

/// How often samples recorded since the last render are folded into the histograms when
/// nobody scrapes (they are held until then).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The server's recorder and the handle that renders it.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

impl Default for Metrics {
    fn default() -> Self {
        let builder = [
            (JOB_DURATION, &JOB_BUCKETS[..]),
            (SWEEP_DURATION, &SWEEP_BUCKETS),
            (API_DURATION, &API_BUCKETS),
            (CLUSTER_HEAL, &HEAL_BUCKETS),
            (CLUSTER_CLEAN, &HEAL_BUCKETS),
            (CLUSTER_CHECK, &SWEEP_BUCKETS),
        ]
        .into_iter()
        .fold(PrometheusBuilder::new(), |b, (name, buckets)| {
            b.set_buckets_for_metric(Matcher::Full(name.into()), buckets).expect("bucket lists are not empty")
        });
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        let metrics = Metrics { recorder, handle };
        metrics.record(|| {
            describe_gauge!(JOBS, "Jobs known to the server, by status.");
            describe_counter!(JOBS_FINISHED, "Jobs finished, by kind and status.");
            describe_histogram!(JOB_DURATION, Unit::Seconds, "Time jobs ran, by kind and status.");
            describe_gauge!(SERVICES, "Services by last observed status.");
            describe_counter!(SWEEPS, "Drift sweeps done.");
            describe_histogram!(SWEEP_DURATION, Unit::Seconds, "Time drift sweeps took.");
            describe_gauge!(SWEEP_LAST_SECONDS, Unit::Seconds, "Duration of the last sweep.");
            describe_gauge!(SWEEP_LAST_SERVICES, "Services checked by the last sweep.");
            describe_counter!(DOCKER_EVENTS, "Docker events that triggered a check.");
            describe_counter!(SSE_LAGGED, "Times a job's event stream fell behind and caught up from the job's log.");
            describe_histogram!(
                API_DURATION,
                Unit::Seconds,
                "Time to answer HTTP requests, by method, route and status."
            );
            describe_gauge!(TASK_LAST_RUN, Unit::Seconds, "When the background task's last run started (Unix time).");
            describe_gauge!(TASK_LAST_DURATION, Unit::Seconds, "How long the background task's last run took.");
            describe_gauge!(TASK_LAST_OK, "1 when the background task's last run succeeded, 0 when it failed.");
            describe_counter!(TASK_RUNS, "Runs of the background task.");
            describe_counter!(TASK_FAILURES, "Failed runs of the background task.");
            describe_gauge!(
                CLUSTER_NODES,
                "Swarm nodes at the cluster monitor's last check, by status (ready, down, …)."
            );
            describe_gauge!(
                CLUSTER_NODES_USE,
                "Swarm nodes at the cluster monitor's last check, by use (pool, rented, quarantined)."
            );
            describe_counter!(CLUSTER_EVENTS, "Events of the cluster monitor, by event (node_down, healed, …).");
            describe_histogram!(
                CLUSTER_HEAL,
                Unit::Seconds,
                "Time from a node's detected failure to its services running all their replicas again."
            );
            describe_histogram!(CLUSTER_CLEAN, Unit::Seconds, "Time to clean a quarantined node.");
            describe_histogram!(CLUSTER_CHECK, Unit::Seconds, "Time a check of the cluster's nodes took.");
            describe_counter!(JOBS_TAKEN_OVER, "Jobs this replica took over from a replica that stopped.");
            describe_gauge!(
                LEADER,
                "1 while this replica holds the leader's lease (runs the background tasks), else 0."
            );
            describe_counter!(STORE_REQUESTS, "Requests sent to the store, by kind (read, write, delete, list).");
            // Present from the start, so a scrape sees them at zero.
            counter!(SWEEPS).absolute(0);
            counter!(DOCKER_EVENTS).absolute(0);
            counter!(SSE_LAGGED).absolute(0);
            counter!(JOBS_TAKEN_OVER).absolute(0);
            gauge!(LEADER).set(0.0);
        });
        metrics
    }
}

impl Metrics {
    /// Runs `f`, whose `metrics` macros update this server's recorder.
    fn record<T>(&self, f: impl FnOnce() -> T) -> T {
        metrics::with_local_recorder(&self.recorder, f)
    }

    pub fn job_finished(&self, kind: &str, status: &str, seconds: f64) {
        let labels = [("kind", kind.to_owned()), ("status", status.to_owned())];
        self.record(|| {
            counter!(JOBS_FINISHED, &labels).increment(1);
            histogram!(JOB_DURATION, &labels).record(seconds);
        });
    }

    /// This replica took over a job from a replica that stopped.
    pub fn job_taken_over(&self) {
        self.record(|| counter!(JOBS_TAKEN_OVER).increment(1));
    }

    /// This replica became the leader (`true`) or stopped being it.
    pub fn leader(&self, leads: bool) {
        self.record(|| gauge!(LEADER).set(f64::from(u8::from(leads))));
    }

    /// The store's request counts so far (absolute).
    pub fn store_requests(&self, requests: spawnit_store::StoreRequests) {
        self.record(|| {
            for (kind, n) in [
                ("read", requests.reads),
                ("write", requests.writes),
                ("delete", requests.deletes),
                ("list", requests.lists),
            ] {
                counter!(STORE_REQUESTS, "kind" => kind).absolute(n);
            }
        });
    }

    pub fn sweep_done(&self, seconds: f64, services: usize) {
        self.record(|| {
            counter!(SWEEPS).increment(1);
            histogram!(SWEEP_DURATION).record(seconds);
            gauge!(SWEEP_LAST_SECONDS).set(seconds);
            gauge!(SWEEP_LAST_SERVICES).set(services as f64);
        });
    }

    /// A job's event stream fell behind its live channel and caught up from the job's log.
    pub fn sse_lagged(&self) {
        self.record(|| counter!(SSE_LAGGED).increment(1));
    }

    pub fn docker_event_seen(&self) {
        self.record(|| counter!(DOCKER_EVENTS).increment(1));
    }

    /// One check of the cluster monitor: node counts, its events, heal and clean times.
    pub fn cluster_check(&self, check: &spawnit_cluster::Check) {
        use spawnit_cluster::ClusterEvent;
        self.record(|| {
            for (status, n) in &check.nodes_by_status {
                gauge!(CLUSTER_NODES, "status" => status.clone()).set(*n as f64);
            }
            for (usage, n) in &check.nodes_by_use {
                gauge!(CLUSTER_NODES_USE, "use" => usage.clone()).set(*n as f64);
            }
            histogram!(CLUSTER_CHECK).record(check.took.as_secs_f64());
            for e in &check.events {
                counter!(CLUSTER_EVENTS, "event" => e.name()).increment(1);
                match e {
                    ClusterEvent::ServiceHealed { heal_s, .. } => histogram!(CLUSTER_HEAL).record(*heal_s),
                    ClusterEvent::NodeCleaned { clean_s, .. } => histogram!(CLUSTER_CLEAN).record(*clean_s),
                    _ => {}
                }
            }
        });
    }

    /// One HTTP request answered; `route` is the route's pattern (`/api/services/{id}`).
    pub fn api_request(&self, method: &str, route: &str, status: u16, took: Duration) {
        let labels = [("method", method.to_owned()), ("route", route.to_owned()), ("status", status.to_string())];
        self.record(|| histogram!(API_DURATION, &labels).record(took.as_secs_f64()));
    }

    /// The text exposition, with the current gauges and the background tasks' last runs passed in.
    pub fn render(
        &self,
        jobs_by_status: &BTreeMap<&str, usize>,
        services_by_status: &BTreeMap<String, usize>,
        task_runs: &[(Task, TaskRun)],
    ) -> String {
        self.record(|| {
            for (status, n) in jobs_by_status {
                gauge!(JOBS, "status" => status.to_string()).set(*n as f64);
            }
            for (status, n) in services_by_status {
                gauge!(SERVICES, "status" => status.clone()).set(*n as f64);
            }
            for (task, run) in task_runs {
                let task = task.as_str();
                gauge!(TASK_LAST_RUN, "task" => task).set(run.at.timestamp_millis() as f64 / 1000.0);
                gauge!(TASK_LAST_DURATION, "task" => task).set(run.duration.as_secs_f64());
                gauge!(TASK_LAST_OK, "task" => task).set(f64::from(u8::from(run.error.is_none())));
                counter!(TASK_RUNS, "task" => task).absolute(run.runs);
                counter!(TASK_FAILURES, "task" => task).absolute(run.failures);
            }
        });
        self.handle.render()
    }

    /// Folds recorded samples into the histograms every few seconds until `stop`.
    pub async fn upkeep_run(self: std::sync::Arc<Self>, stop: CancellationToken) {
        let mut tick = tokio::time::interval(UPKEEP_EVERY);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => self.handle.run_upkeep(),
            }
        }
    }
}

/// Middleware: records how long each request took, by method, matched route and status
/// (requests no route matched count under the route `unmatched`).
pub async fn api_latency(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let resp = next.run(req).await;
    s.metrics.api_request(method.as_str(), &route, resp.status().as_u16(), started.elapsed());
    resp
}
