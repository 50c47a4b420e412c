//! Jobs: every plan, apply and destroy the server runs. A job has a UUID, a status, and an
//! ordered event log that SSE subscribers replay and then follow live. Jobs on one target queue
//! in order (one writer per service inside the server; the store lock guards against other
//! processes); cancel and the per-job timeout stop a running job between resource operations.
//! Records are written to the store (`jobs/<id>.json`) when queued, started and finished, so a
//! restarted server still lists them and marks those it interrupted.
//!
//! A job a user asks for on a service whose network is not applied yet comes after the
//! network's apply, queued as its own job ([`Jobs::submit_requested`]): one click deploys.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use spawnit_engine::{Engine, EngineError, EventSink, ExecutionReport, RunOptions, redacted_plan};
use spawnit_model::plan::Plan;
use spawnit_model::{Id, JobEvent, OperationOutcome};
use spawnit_store::{Collection, Key, PutCondition};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use crate::events::{EventBus, ServerEvent};
pub use crate::job_types::{JobKind, JobStatus, Target};
use crate::metrics::Metrics;

/// Counts of a finished execution.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobSummary {
    pub done: usize,
    pub failed: usize,
    pub skipped: usize,
    pub duration_ms: u64,
}

/// A job as the API shows it (its events stream separately).
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobRecord {
    pub id: String,
    pub kind: JobKind,
    pub target: Target,
    pub status: JobStatus,
    pub requested_by: String,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<JobSummary>,
    /// The plan a plan job made (secrets masked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub plan: Option<Plan>,
}

/// A job record with its event log, as stored.
#[derive(Serialize, Deserialize)]
struct StoredJob {
    record: JobRecord,
    events: Vec<JobEvent>,
}

/// A live job.
pub struct Job {
    record: Mutex<JobRecord>,
    log: Mutex<Vec<JobEvent>>,
    live: broadcast::Sender<(usize, JobEvent)>,
    cancel: CancellationToken,
    /// `true` once the job has finished, for the jobs that wait for it.
    finished: watch::Sender<bool>,
}

impl Job {
    fn new(record: JobRecord, events: Vec<JobEvent>, live_capacity: usize) -> Job {
        let finished = record.status.is_finished();
        Job {
            record: Mutex::new(record),
            log: Mutex::new(events),
            live: broadcast::channel(live_capacity.max(1)).0,
            cancel: CancellationToken::new(),
            finished: watch::Sender::new(finished),
        }
    }

    /// Returns once the job has finished.
    async fn finished(&self) {
        let _ = self.finished.subscribe().wait_for(|done| *done).await;
    }

    pub fn record(&self) -> JobRecord {
        self.record.lock().expect("job record").clone()
    }

    /// The events from index `from` on, and a receiver for those that follow (`None` once the
    /// job has finished: the log is then complete).
    pub fn events_from(&self, from: usize) -> (Vec<(usize, JobEvent)>, Option<broadcast::Receiver<(usize, JobEvent)>>) {
        let log = self.log.lock().expect("job log");
        let past = log.iter().enumerate().skip(from).map(|(i, e)| (i, e.clone())).collect();
        let finished = self.record().status.is_finished() && log.iter().any(|e| matches!(e, JobEvent::Finished { .. }));
        (past, (!finished).then(|| self.live.subscribe()))
    }

    fn push(&self, event: JobEvent) {
        let mut log = self.log.lock().expect("job log");
        let index = log.len();
        log.push(event.clone());
        let _ = self.live.send((index, event));
    }

    fn has_finished_event(&self) -> bool {
        self.log.lock().expect("job log").iter().any(|e| matches!(e, JobEvent::Finished { .. }))
    }

    fn update(&self, f: impl FnOnce(&mut JobRecord)) -> JobRecord {
        let mut record = self.record.lock().expect("job record");
        f(&mut record);
        record.clone()
    }

    fn stored(&self) -> StoredJob {
        StoredJob { record: self.record(), events: self.log.lock().expect("job log").clone() }
    }
}

/// What [`Jobs::submit_requested`] queued: the job asked for, and the network apply it waits
/// for when that was queued for it.
pub struct Submitted {
    pub job: Arc<Job>,
    pub network_first: Option<Arc<Job>>,
}

/// How jobs run and how long they are kept.
#[derive(Clone, Debug)]
pub struct JobsConfig {
    /// A running job longer than this is stopped and ends `timed_out`.
    pub timeout: Duration,
    /// How long a job waits for another process's lock on its target.
    pub lock_wait: Duration,
    /// Finished jobs kept (newest first).
    pub keep: usize,
    /// Finished jobs older than this are dropped.
    pub keep_for: Duration,
    /// Events a job's live channel holds for its slowest reader; one further behind catches up
    /// from the job's log.
    pub live_capacity: usize,
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            timeout: Duration::from_secs(30 * 60),
            lock_wait: Duration::from_secs(10 * 60),
            keep: 500,
            keep_for: Duration::from_secs(7 * 24 * 3600),
            live_capacity: 256,
        }
    }
}

/// Every job of this server.
#[derive(Clone)]
pub struct Jobs {
    inner: Arc<JobsInner>,
}

struct JobsInner {
    engine: Engine,
    bus: EventBus,
    metrics: Arc<Metrics>,
    config: JobsConfig,
    jobs: Mutex<BTreeMap<String, Arc<Job>>>,
    queues: Mutex<HashMap<Target, Arc<tokio::sync::Mutex<()>>>>,
    tasks: tokio_util::task::TaskTracker,
}

impl Jobs {
    /// Loads stored jobs; those a previous server left queued or running are marked failed.
    pub async fn load(
        engine: Engine,
        bus: EventBus,
        metrics: Arc<Metrics>,
        config: JobsConfig,
    ) -> Result<Jobs, EngineError> {
        let store = engine.store().clone();
        let mut jobs = BTreeMap::new();
        for id in store.record_ids(Collection::Jobs).await? {
            let key = Key::record(Collection::Jobs, &id);
            let Some(stored) = store.get_json::<StoredJob>(&key).await.ok().flatten() else { continue };
            let mut stored = stored.value;
            // A read-only store (of a newer format) belongs to a newer SpawnIt: its running jobs
            // are not ours to end.
            if !stored.record.status.is_finished() && store.read_only_reason().is_none() {
                let was = stored.record.status.as_str();
                let error = format!(
                    "interrupted: the server stopped while the job was {was}; the next apply adopts what it created"
                );
                stored.record.status = JobStatus::Failed;
                stored.record.finished_at = Some(Utc::now());
                stored.events.push(JobEvent::Message { text: error.clone() });
                stored.events.push(JobEvent::Finished {
                    outcome: OperationOutcome::Failed,
                    done: 0,
                    failed: 0,
                    skipped: 0,
                    duration_ms: 0,
                });
                stored.record.error = Some(error);
                store.put_json(&key, &stored, PutCondition::Overwrite).await?;
            }
            jobs.insert(
                stored.record.id.clone(),
                Arc::new(Job::new(stored.record, stored.events, config.live_capacity)),
            );
        }
        let inner = Arc::new(JobsInner {
            engine,
            bus,
            metrics,
            config,
            jobs: Mutex::new(jobs),
            queues: Mutex::new(HashMap::new()),
            tasks: tokio_util::task::TaskTracker::new(),
        });
        let jobs = Jobs { inner };
        jobs.prune().await;
        Ok(jobs)
    }

    /// Queues a job and starts its task; returns at once.
    pub async fn submit(&self, kind: JobKind, target: Target, requested_by: &str) -> Arc<Job> {
        self.submit_after(kind, target, requested_by, None).await
    }

    /// Queues a job a user asked for: a plan or apply of a Docker service whose network is not
    /// applied yet comes after the network's apply, queued as its own job unless one is already
    /// queued or running. The caller audits what was queued ([`Submitted`]).
    pub async fn submit_requested(
        &self,
        kind: JobKind,
        target: Target,
        requested_by: &str,
    ) -> Result<Submitted, EngineError> {
        let network = match (&kind, &target) {
            (JobKind::Plan | JobKind::Apply, Target::Service { client, name }) => {
                self.inner.engine.service_network_unready(client, name).await?.map(|n| (client.clone(), n))
            }
            _ => None,
        };
        let Some((client, network)) = network else {
            return Ok(Submitted { job: self.submit(kind, target, requested_by).await, network_first: None });
        };
        match self.inner.engine.network_create(&client, &network).await {
            Ok(_) | Err(EngineError::AlreadyExists { .. }) => {}
            Err(e) => return Err(e),
        }
        let first = Target::Network { client, name: network };
        let pending = self
            .inner
            .jobs
            .lock()
            .expect("jobs")
            .values()
            .find(|j| {
                let r = j.record();
                r.kind == JobKind::Apply && r.target == first && !r.status.is_finished()
            })
            .cloned();
        let (first_job, network_first) = match pending {
            Some(job) => (job, None),
            None => {
                let job = self.submit(JobKind::Apply, first, requested_by).await;
                (job.clone(), Some(job))
            }
        };
        let job = self.submit_after(kind, target, requested_by, Some(first_job)).await;
        Ok(Submitted { job, network_first })
    }

    /// Queues a job that starts once `after` has finished, and fails if `after` did not succeed.
    async fn submit_after(
        &self,
        kind: JobKind,
        target: Target,
        requested_by: &str,
        after: Option<Arc<Job>>,
    ) -> Arc<Job> {
        let record = JobRecord {
            id: uuid::Uuid::new_v4().to_string(),
            kind,
            target,
            status: JobStatus::Queued,
            requested_by: requested_by.to_owned(),
            created_at: Utc::now(),
            started_at: None,
            finished_at: None,
            error: None,
            summary: None,
            plan: None,
        };
        let job = Arc::new(Job::new(record.clone(), Vec::new(), self.inner.config.live_capacity));
        self.inner.jobs.lock().expect("jobs").insert(record.id.clone(), job.clone());
        self.inner.save(&job).await;
        self.inner.announce(&record);
        let (inner, task_job) = (self.inner.clone(), job.clone());
        self.inner.tasks.spawn(async move { inner.run(task_job, after).await });
        job
    }

    pub fn get(&self, id: &str) -> Option<Arc<Job>> {
        self.inner.jobs.lock().expect("jobs").get(id).cloned()
    }

    /// Every job, newest first.
    pub fn list(&self) -> Vec<JobRecord> {
        let mut out: Vec<JobRecord> = self.inner.jobs.lock().expect("jobs").values().map(|j| j.record()).collect();
        out.sort_by(|a, b| b.created_at.cmp(&a.created_at));
        out
    }

    /// Asks a job to stop; it ends `cancelled` after its running operation.
    pub fn cancel(&self, job: &Job) -> bool {
        if job.record().status.is_finished() {
            return false;
        }
        job.cancel.cancel();
        true
    }

    /// Counts of jobs by status.
    pub fn counts(&self) -> BTreeMap<JobStatus, usize> {
        let mut out: BTreeMap<JobStatus, usize> = JobStatus::ALL.iter().map(|s| (*s, 0)).collect();
        for job in self.inner.jobs.lock().expect("jobs").values() {
            *out.entry(job.record().status).or_default() += 1;
        }
        out
    }

    /// Whether a target has a job queued or running.
    pub fn busy(&self, target: &Target) -> bool {
        self.inner.jobs.lock().expect("jobs").values().any(|j| {
            let r = j.record();
            &r.target == target && !r.status.is_finished()
        })
    }

    /// Stops every job (between operations) and waits for their tasks.
    pub async fn shutdown(&self) {
        for job in self.inner.jobs.lock().expect("jobs").values() {
            job.cancel.cancel();
        }
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
    }

    /// Drops finished jobs beyond the kept number or age, in memory and in the store.
    async fn prune(&self) {
        self.inner.prune().await;
    }
}

/// How often, and how many times, the record of a finished job is written again when the
/// store failed to take it (10 minutes in all).
const FINISH_SAVE_PAUSE: Duration = Duration::from_secs(2);
const FINISH_SAVE_ATTEMPTS: usize = 300;

/// An error, with its causes for a store failure (`locking service a/b failed: the store did
/// not answer …`; store errors name keys and I/O failures, never a secret).
fn error_chain(e: &EngineError) -> String {
    let mut text = e.to_string();
    if !matches!(e, EngineError::Store(_) | EngineError::Locked(_)) {
        return text;
    }
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

/// Writes a job's record and log; `false` (logged) when the store failed.
async fn job_save(store: &spawnit_store::Store, job: &Job) -> bool {
    let stored = job.stored();
    let Ok(id) = Id::parse(&stored.record.id) else { return true };
    match store.put_json(&Key::record(Collection::Jobs, &id), &stored, PutCondition::Overwrite).await {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(job = %stored.record.id, "cannot save job record: {e}");
            false
        }
    }
}

impl JobsInner {
    fn queue(&self, target: &Target) -> Arc<tokio::sync::Mutex<()>> {
        self.queues.lock().expect("queues").entry(target.clone()).or_default().clone()
    }

    fn announce(&self, record: &JobRecord) {
        self.bus.publish(ServerEvent::Job {
            client: record.target.client().clone(),
            job: record.id.clone(),
            kind: record.kind,
            target: record.target.clone(),
            status: record.status,
            at: Utc::now(),
        });
    }

    async fn save(&self, job: &Job) -> bool {
        job_save(self.engine.store(), job).await
    }

    async fn run(self: Arc<Self>, job: Arc<Job>, after: Option<Arc<Job>>) {
        let target = job.record().target;
        if let Some(first) = after {
            let first_record = first.record();
            job.push(JobEvent::Message {
                text: format!(
                    "waiting for job {} ({} of {}) first",
                    first_record.id,
                    first_record.kind.as_str(),
                    first_record.target
                ),
            });
            tokio::select! {
                () = first.finished() => {}
                _ = job.cancel.cancelled() => {
                    self.finish(&job, JobStatus::Cancelled, Some("cancelled while queued".into()), None).await;
                    return;
                }
            }
            let first_record = first.record();
            if first_record.status != JobStatus::Succeeded {
                let why = first_record.error.unwrap_or_else(|| first_record.status.as_str().to_owned());
                let error = format!(
                    "{} {} did not succeed (job {}): {why}",
                    first_record.kind.as_str(),
                    first_record.target,
                    first_record.id
                );
                self.finish(&job, JobStatus::Failed, Some(error), None).await;
                return;
            }
        }
        let queue = self.queue(&target);
        if queue.try_lock().is_err() {
            job.push(JobEvent::Message { text: format!("queued behind another job on {target}") });
        }
        let _turn = tokio::select! {
            turn = queue.lock_owned() => turn,
            _ = job.cancel.cancelled() => {
                self.finish(&job, JobStatus::Cancelled, Some("cancelled while queued".into()), None).await;
                return;
            }
        };
        let record = job.update(|r| {
            r.status = JobStatus::Running;
            r.started_at = Some(Utc::now());
        });
        self.save(&job).await;
        self.announce(&record);

        let timed_out = Arc::new(AtomicBool::new(false));
        let timer = {
            let (cancel, timed_out, timeout) = (job.cancel.clone(), timed_out.clone(), self.config.timeout);
            tokio::spawn(async move {
                tokio::time::sleep(timeout).await;
                timed_out.store(true, Ordering::SeqCst);
                cancel.cancel();
            })
        };
        let result = self.execute(&job, &record).await;
        timer.abort();
        let stopped = if timed_out.load(Ordering::SeqCst) { JobStatus::TimedOut } else { JobStatus::Cancelled };
        match result {
            Ok(report) => {
                let status = match report.outcome {
                    OperationOutcome::Succeeded => JobStatus::Succeeded,
                    OperationOutcome::Failed => JobStatus::Failed,
                    OperationOutcome::Cancelled | OperationOutcome::TimedOut => stopped,
                };
                let error = match status {
                    JobStatus::Failed => Some(report.errors.join("; ")).filter(|e| !e.is_empty()),
                    JobStatus::TimedOut => Some(format!("timed out after {}s", self.config.timeout.as_secs())),
                    _ => None,
                };
                let summary = JobSummary {
                    done: report.done,
                    failed: report.failed,
                    skipped: report.skipped,
                    duration_ms: report.duration.as_millis() as u64,
                };
                self.finish(&job, status, error, Some(summary)).await;
            }
            Err(e) => {
                let status = if matches!(e, EngineError::Cancelled) { stopped } else { JobStatus::Failed };
                self.finish(&job, status, Some(error_chain(&e)), None).await;
            }
        }
    }

    /// Runs the engine operation of a job.
    async fn execute(&self, job: &Arc<Job>, record: &JobRecord) -> Result<ExecutionReport, EngineError> {
        let sink: EventSink = {
            let job = job.clone();
            Arc::new(move |event| job.push(event))
        };
        let mut run = RunOptions::new(record.id.clone(), sink);
        run.cancel = job.cancel.clone();
        run.lock_wait = self.config.lock_wait;
        let engine = &self.engine;
        match (&record.kind, &record.target) {
            (JobKind::Plan, target) => {
                let started = std::time::Instant::now();
                let plan = match target {
                    Target::Service { client, name } => {
                        let planned = engine.service_plan(client, name).await?;
                        redacted_plan(&planned.plan, &planned.redactor)
                    }
                    Target::Network { client, name } => engine.network_plan(client, name).await?,
                };
                job.push(JobEvent::Planned { plan: plan.clone() });
                let failed = plan.status == spawnit_model::PlanStatus::Error;
                let errors = plan.errors.clone();
                job.update(|r| r.plan = Some(plan));
                Ok(ExecutionReport {
                    outcome: if failed { OperationOutcome::Failed } else { OperationOutcome::Succeeded },
                    done: 0,
                    failed: usize::from(failed),
                    skipped: 0,
                    errors,
                    duration: started.elapsed(),
                })
            }
            (JobKind::Apply, Target::Service { client, name }) => engine.service_apply(client, name, &run).await,
            (JobKind::Destroy, Target::Service { client, name }) => engine.service_destroy(client, name, &run).await,
            (JobKind::Apply, Target::Network { client, name }) => engine.network_apply(client, name, &run).await,
            (JobKind::Destroy, Target::Network { client, name }) => engine.network_destroy(client, name, &run).await,
        }
    }

    async fn finish(&self, job: &Arc<Job>, status: JobStatus, error: Option<String>, summary: Option<JobSummary>) {
        if let Some(e) = &error {
            job.push(JobEvent::Message { text: format!("error: {e}") });
        }
        if !job.has_finished_event() {
            let outcome = match status {
                JobStatus::Succeeded => OperationOutcome::Succeeded,
                JobStatus::Cancelled => OperationOutcome::Cancelled,
                JobStatus::TimedOut => OperationOutcome::TimedOut,
                _ => OperationOutcome::Failed,
            };
            let s = summary.clone().unwrap_or(JobSummary { done: 0, failed: 0, skipped: 0, duration_ms: 0 });
            job.push(JobEvent::Finished {
                outcome,
                done: s.done,
                failed: s.failed,
                skipped: s.skipped,
                duration_ms: s.duration_ms,
            });
        }
        let record = job.update(|r| {
            r.status = status;
            r.finished_at = Some(Utc::now());
            r.error = error;
            r.summary = summary;
        });
        job.finished.send_replace(true);
        if !self.save(job).await {
            // The store is failing: keep trying in the background, so the stored record ends
            // as the job did once the store is back (it would otherwise stay `running`).
            let (store, job) = (self.engine.store().clone(), job.clone());
            tokio::spawn(async move {
                for _ in 0..FINISH_SAVE_ATTEMPTS {
                    tokio::time::sleep(FINISH_SAVE_PAUSE).await;
                    if job_save(&store, &job).await {
                        return;
                    }
                }
            });
        }
        let seconds = match (record.started_at, record.finished_at) {
            (Some(s), Some(f)) => (f - s).num_milliseconds() as f64 / 1000.0,
            _ => 0.0,
        };
        self.metrics.job_finished(record.kind.as_str(), status.as_str(), seconds);
        self.announce(&record);
        self.prune().await;
    }

    async fn prune(&self) {
        let horizon =
            Utc::now() - chrono::Duration::from_std(self.config.keep_for).unwrap_or(chrono::Duration::days(7));
        let dropped: Vec<String> = {
            let mut jobs = self.jobs.lock().expect("jobs");
            let mut finished: Vec<(DateTime<Utc>, String)> = jobs
                .values()
                .map(|j| j.record())
                .filter(|r| r.status.is_finished())
                .map(|r| (r.created_at, r.id))
                .collect();
            finished.sort_by(|a, b| b.0.cmp(&a.0));
            let dropped: Vec<String> = finished
                .iter()
                .enumerate()
                .filter(|(i, (at, _))| *i >= self.config.keep || *at < horizon)
                .map(|(_, (_, id))| id.clone())
                .collect();
            for id in &dropped {
                jobs.remove(id);
            }
            dropped
        };
        for id in dropped {
            if let Ok(id) = Id::parse(&id) {
                let _ = self.engine.store().delete(&Key::record(Collection::Jobs, &id)).await;
            }
        }
    }
}
