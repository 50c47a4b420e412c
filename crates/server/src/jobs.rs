//! Jobs: every plan, apply and destroy the server runs. A job has a UUID, a status, and an
//! ordered event log that SSE subscribers replay and then follow live. Jobs on one target queue
//! in order (one writer per service inside the server; the store lock guards against other
//! processes); cancel and the per-job timeout stop a running job between resource operations.
//!
//! Several replicas may share one store. A job's record (`jobs/<id>.json`: record, event log,
//! claim) is written by exactly one replica, the one whose **claim** it carries: the replica
//! that queued it, or one that took it over. The holder writes the record, conditional on the
//! version it wrote last, whenever the log grows (a tenth of a second apart at most) and at
//! least every third of the claim's ttl, which renews the claim. Every replica tails the
//! records of the others (one listing per poll): their jobs show in its lists and their events
//! reach its SSE subscribers in order. A job whose claim has expired, or whose holder's process
//! is gone from this host, is taken over with a write conditional on the version read: of
//! several replicas trying, exactly one wins, raises the claim's epoch and runs the job again
//! from the recorded state (the engine adopts what the first run created). The previous holder,
//! if it was only paused, finds its next write refused and stops without writing anything more
//! (its state writes are refused too: the new holder of the service lock fences the state).
//! A cancel asked through another replica is written into the record; the holder sees it at
//! its next write.
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
use spawnit_store::{Collection, Key, PutCondition, StoreError, Version};
use tokio::sync::{Notify, broadcast, watch};
use tokio_util::sync::CancellationToken;

use crate::events::{EventBus, ServerEvent};
pub use crate::job_types::{JobKind, JobStatus, Target};
use crate::metrics::Metrics;
use crate::replica::Replica;

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
    /// The server replica that runs (or ran) the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
}

/// The claim of the replica that runs a job, kept in the job's stored record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct JobClaim {
    replica: String,
    host: String,
    pid: u32,
    /// Raised by every takeover.
    epoch: u64,
    /// The holder renews it; after it, anyone may take the job over.
    expires_at: DateTime<Utc>,
}

impl JobClaim {
    /// Whether another replica may take the job over.
    fn stale(&self, now: DateTime<Utc>, here: &Replica) -> bool {
        self.expires_at < now || here.sees_gone(&self.host, self.pid)
    }
}

/// A job record with its event log and claim, as stored.
#[derive(Clone, Serialize, Deserialize)]
struct StoredJob {
    record: JobRecord,
    events: Vec<JobEvent>,
    /// `None` only in records of SpawnIt versions before replicas: taken over like an expired claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    claim: Option<JobClaim>,
    /// A cancel asked through a replica that does not run the job.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    cancel_requested: bool,
    /// The job this one waits for (a network's apply before a service's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    after: Option<String>,
}

/// What this replica holds of a job it runs: the claim's epoch and the record's version it
/// wrote last (`None` before the first write).
#[derive(Clone, Debug)]
struct Held {
    epoch: u64,
    version: Option<Version>,
}

/// A job, run by this replica (held) or by another one (tailed from the store).
pub struct Job {
    record: Mutex<JobRecord>,
    log: Mutex<Vec<JobEvent>>,
    live: broadcast::Sender<(usize, JobEvent)>,
    cancel: Mutex<CancellationToken>,
    cancel_requested: AtomicBool,
    /// `true` once the job has finished, for the jobs that wait for it.
    finished: watch::Sender<bool>,
    /// `Some` while this replica holds the job's claim.
    held: Mutex<Option<Held>>,
    /// Another replica's claim, as last read.
    remote_claim: Mutex<Option<JobClaim>>,
    /// The job this one waits for.
    after: Option<String>,
    /// One write of the record at a time.
    writing: tokio::sync::Mutex<()>,
    /// Woken when the log grows, for the task that writes the record.
    dirty: Notify,
}

impl Job {
    fn new(stored: StoredJob, held: Option<Held>, live_capacity: usize) -> Job {
        let finished = stored.record.status.is_finished();
        Job {
            record: Mutex::new(stored.record),
            log: Mutex::new(stored.events),
            live: broadcast::channel(live_capacity.max(1)).0,
            cancel: Mutex::new(CancellationToken::new()),
            cancel_requested: AtomicBool::new(stored.cancel_requested),
            finished: watch::Sender::new(finished),
            remote_claim: Mutex::new(if held.is_some() { None } else { stored.claim }),
            held: Mutex::new(held),
            after: stored.after,
            writing: tokio::sync::Mutex::new(()),
            dirty: Notify::new(),
        }
    }

    /// Returns once the job has finished.
    async fn finished(&self) {
        let _ = self.finished.subscribe().wait_for(|done| *done).await;
    }

    pub fn record(&self) -> JobRecord {
        self.record.lock().expect("job record").clone()
    }

    /// The job's status (without copying its record).
    fn status(&self) -> JobStatus {
        self.record.lock().expect("job record").status
    }

    /// Whether this replica runs the job.
    pub fn is_local(&self) -> bool {
        self.held.lock().expect("job claim").is_some()
    }

    fn held(&self) -> Option<Held> {
        self.held.lock().expect("job claim").clone()
    }

    fn cancel_token(&self) -> CancellationToken {
        self.cancel.lock().expect("job cancel").clone()
    }

    fn remote_claim(&self) -> Option<JobClaim> {
        self.remote_claim.lock().expect("job claim").clone()
    }

    /// The events from index `from` on, and a receiver for those that follow (`None` once the
    /// job has finished: the log is then complete).
    pub fn events_from(&self, from: usize) -> (Vec<(usize, JobEvent)>, Option<broadcast::Receiver<(usize, JobEvent)>>) {
        let log = self.log.lock().expect("job log");
        let past = log.iter().enumerate().skip(from).map(|(i, e)| (i, e.clone())).collect();
        let finished = self.status().is_finished() && log.iter().any(|e| matches!(e, JobEvent::Finished { .. }));
        (past, (!finished).then(|| self.live.subscribe()))
    }

    fn push(&self, event: JobEvent) {
        let mut log = self.log.lock().expect("job log");
        let index = log.len();
        log.push(event.clone());
        let _ = self.live.send((index, event));
    }

    /// An event of this replica's run; dropped once the job was taken over by another replica
    /// (whose events the log now follows).
    fn push_local(&self, event: JobEvent) {
        if self.is_local() {
            self.push(event);
            self.dirty.notify_one();
        }
    }

    fn has_finished_event(&self) -> bool {
        self.log.lock().expect("job log").iter().any(|e| matches!(e, JobEvent::Finished { .. }))
    }

    fn update(&self, f: impl FnOnce(&mut JobRecord)) -> JobRecord {
        let mut record = self.record.lock().expect("job record");
        f(&mut record);
        record.clone()
    }

    fn stored(&self, claim: Option<JobClaim>) -> StoredJob {
        StoredJob {
            record: self.record(),
            events: self.log.lock().expect("job log").clone(),
            claim,
            cancel_requested: self.cancel_requested.load(Ordering::SeqCst),
            after: self.after.clone(),
        }
    }

    /// Takes the record as another replica wrote it: its new events go out to this replica's
    /// subscribers in order. Returns the status it had before when that changed.
    fn follow(&self, stored: StoredJob) -> Option<JobStatus> {
        let status = stored.record.status;
        let before = std::mem::replace(&mut *self.record.lock().expect("job record"), stored.record).status;
        {
            let mut log = self.log.lock().expect("job log");
            if stored.events.len() < log.len() {
                *log = stored.events;
            } else {
                for event in stored.events.into_iter().skip(log.len()) {
                    let index = log.len();
                    log.push(event.clone());
                    let _ = self.live.send((index, event));
                }
            }
        }
        *self.remote_claim.lock().expect("job claim") = stored.claim;
        self.cancel_requested.store(stored.cancel_requested, Ordering::SeqCst);
        self.finished.send_replace(status.is_finished());
        (before != status).then_some(before)
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
    /// How long a replica's claim on a job lasts without renewal: a replica that stops
    /// renewing (killed, paused, cut off) has its jobs taken over after this.
    pub claim_ttl: Duration,
    /// How often the other replicas' job records are looked at (one listing each time).
    pub tail_every: Duration,
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            timeout: Duration::from_secs(30 * 60),
            lock_wait: Duration::from_secs(10 * 60),
            keep: 500,
            keep_for: Duration::from_secs(7 * 24 * 3600),
            live_capacity: 256,
            claim_ttl: Duration::from_secs(15),
            tail_every: Duration::from_millis(250),
        }
    }
}

/// Why this replica could not write a job's record.
enum SaveError {
    /// Another replica took the job over: this one writes nothing more of it.
    Fenced,
    Store(StoreError),
}

/// Pause between the writes of a job's record while its log grows.
const FLUSH_PAUSE: Duration = Duration::from_millis(100);
/// Writes of one record tried in a row when another replica's cancel request got in between.
const SAVE_ATTEMPTS: usize = 5;

/// Every job this replica runs or sees.
#[derive(Clone)]
pub struct Jobs {
    inner: Arc<JobsInner>,
}

struct JobsInner {
    engine: Engine,
    bus: EventBus,
    metrics: Arc<Metrics>,
    config: JobsConfig,
    replica: Replica,
    jobs: Mutex<BTreeMap<String, Arc<Job>>>,
    queues: Mutex<HashMap<Target, Arc<tokio::sync::Mutex<()>>>>,
    tasks: tokio_util::task::TaskTracker,
    /// Stops the tail of the other replicas' jobs.
    stop: CancellationToken,
}

impl Jobs {
    /// Loads the stored jobs and starts following the store: jobs another replica runs are
    /// tailed; jobs whose claim has expired (their replica stopped) are taken over and run again.
    pub async fn load(
        engine: Engine,
        bus: EventBus,
        metrics: Arc<Metrics>,
        config: JobsConfig,
        replica: Replica,
    ) -> Result<Jobs, EngineError> {
        let store = engine.store().clone();
        let mut watcher = store.watch(Key::collection(Collection::Jobs));
        // Stamps first, so the tail's first poll reports only what changes after this read.
        watcher.poll().await?;
        let mut jobs = BTreeMap::new();
        for id in store.record_ids(Collection::Jobs).await? {
            let key = Key::record(Collection::Jobs, &id);
            let Some(stored) = store.get_json::<StoredJob>(&key).await.ok().flatten() else { continue };
            let id = stored.value.record.id.clone();
            jobs.insert(id, Arc::new(Job::new(stored.value, None, config.live_capacity)));
        }
        let inner = Arc::new(JobsInner {
            engine,
            bus,
            metrics,
            config,
            replica,
            jobs: Mutex::new(jobs),
            queues: Mutex::new(HashMap::new()),
            tasks: tokio_util::task::TaskTracker::new(),
            stop: CancellationToken::new(),
        });
        let jobs = Jobs { inner };
        jobs.prune().await;
        jobs.inner.tasks.spawn(jobs.inner.clone().tail_run(watcher));
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
            replica: Some(self.inner.replica.id.clone()),
        };
        let stored = StoredJob {
            record: record.clone(),
            events: Vec::new(),
            claim: None,
            cancel_requested: false,
            after: after.as_ref().map(|a| a.record().id),
        };
        let job = Arc::new(Job::new(stored, Some(Held { epoch: 1, version: None }), self.inner.config.live_capacity));
        self.inner.jobs.lock().expect("jobs").insert(record.id.clone(), job.clone());
        let _ = self.inner.save(&job).await;
        self.inner.announce(&record);
        self.inner.start(job.clone(), after);
        job
    }

    pub fn get(&self, id: &str) -> Option<Arc<Job>> {
        self.inner.jobs.lock().expect("jobs").get(id).cloned()
    }

    /// A job this replica knows, or else one another replica queued so recently that the tail
    /// has not brought it yet (read from the store): a job queued through one replica is found
    /// through any other at once.
    pub async fn find(&self, id: &str) -> Option<Arc<Job>> {
        if let Some(job) = self.get(id) {
            return Some(job);
        }
        let key = Key::record(Collection::Jobs, &Id::parse(id).ok()?);
        let stored = self.inner.engine.store().get_json::<StoredJob>(&key).await.ok()??;
        let mut jobs = self.inner.jobs.lock().expect("jobs");
        let job = jobs
            .entry(stored.value.record.id.clone())
            .or_insert_with(|| Arc::new(Job::new(stored.value, None, self.inner.config.live_capacity)));
        Some(job.clone())
    }

    /// Every job, newest first.
    pub fn list(&self) -> Vec<JobRecord> {
        let mut out: Vec<JobRecord> = self.inner.jobs.lock().expect("jobs").values().map(|j| j.record()).collect();
        out.sort_by(|a, b| b.created_at.cmp(&a.created_at));
        out
    }

    /// Asks a job to stop; it ends `cancelled` after its running operation. A job another
    /// replica runs gets the request through its record, seen at its holder's next write (a
    /// third of the claim's ttl at most). `false` when the job has finished.
    pub async fn cancel(&self, job: &Job) -> Result<bool, StoreError> {
        if job.status().is_finished() {
            return Ok(false);
        }
        if job.is_local() {
            job.cancel_requested.store(true, Ordering::SeqCst);
            job.cancel_token().cancel();
            job.dirty.notify_one();
            return Ok(true);
        }
        let id = job.record().id;
        let Ok(id) = Id::parse(&id) else { return Ok(false) };
        let (store, key) = (self.inner.engine.store(), Key::record(Collection::Jobs, &id));
        for _ in 0..SAVE_ATTEMPTS {
            let Some(current) = store.get_json::<StoredJob>(&key).await? else { return Ok(false) };
            let mut stored = current.value;
            if stored.record.status.is_finished() {
                job.follow(stored);
                return Ok(false);
            }
            stored.cancel_requested = true;
            match store.put_json(&key, &stored, PutCondition::Matches(current.version)).await {
                Ok(_) => {
                    job.follow(stored);
                    return Ok(true);
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Conflict { key: key.to_string() })
    }

    /// Counts of jobs by status.
    pub fn counts(&self) -> BTreeMap<JobStatus, usize> {
        let mut out: BTreeMap<JobStatus, usize> = JobStatus::ALL.iter().map(|s| (*s, 0)).collect();
        for job in self.inner.jobs.lock().expect("jobs").values() {
            *out.entry(job.status()).or_default() += 1;
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

    /// Stops every job this replica runs (between operations) and the tail, and waits for
    /// their tasks.
    pub async fn shutdown(&self) {
        self.inner.stop.cancel();
        for job in self.inner.jobs.lock().expect("jobs").values().filter(|j| j.is_local()) {
            job.cancel_token().cancel();
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

    /// Starts the tasks of a job this replica holds: the one that keeps its record written
    /// (and its claim renewed), and the one that runs it.
    fn start(self: &Arc<Self>, job: Arc<Job>, after: Option<Arc<Job>>) {
        self.tasks.spawn(self.clone().keep_run(job.clone()));
        self.tasks.spawn(self.clone().run(job, after));
    }

    /// Writes the record of a held job whenever its log grows, and at least every third of
    /// the claim's ttl, until it finishes or is taken over.
    async fn keep_run(self: Arc<Self>, job: Arc<Job>) {
        let renew = self.config.claim_ttl / 3;
        loop {
            tokio::select! {
                () = job.finished() => return,
                () = job.dirty.notified() => tokio::time::sleep(FLUSH_PAUSE).await,
                () = tokio::time::sleep(renew) => {}
            }
            if job.status().is_finished() {
                return;
            }
            match self.save(&job).await {
                Ok(()) => {}
                Err(SaveError::Fenced) => return,
                Err(SaveError::Store(e)) => tracing::warn!(job = %job.record().id, "cannot save job record: {e}"),
            }
        }
    }

    /// Writes a held job's record (renewing its claim), conditional on the version this
    /// replica wrote last. A write refused because another replica asked for a cancel takes
    /// the request and writes again; one refused because another replica took the job over
    /// ends this replica's hold: the job is cancelled here and followed from the store.
    async fn save(&self, job: &Job) -> Result<(), SaveError> {
        let _turn = job.writing.lock().await;
        let Ok(id) = Id::parse(&job.record().id) else { return Ok(()) };
        let (store, key) = (self.engine.store(), Key::record(Collection::Jobs, &id));
        for _ in 0..SAVE_ATTEMPTS {
            let Some(Held { epoch, version }) = job.held() else { return Err(SaveError::Fenced) };
            let claim = JobClaim {
                replica: self.replica.id.clone(),
                host: self.replica.host.clone(),
                pid: self.replica.pid,
                epoch,
                expires_at: spawnit_store::expires_after(Utc::now(), self.config.claim_ttl),
            };
            let condition = version.map_or(PutCondition::Absent, PutCondition::Matches);
            match store.put_json(&key, &job.stored(Some(claim)), condition).await {
                Ok(version) => {
                    *job.held.lock().expect("job claim") = Some(Held { epoch, version: Some(version) });
                    return Ok(());
                }
                Err(StoreError::Conflict { .. }) => {
                    let current = store.get_json::<StoredJob>(&key).await.map_err(SaveError::Store)?;
                    let still_ours = |c: &JobClaim| c.replica == self.replica.id && c.epoch == epoch;
                    match current {
                        Some(current) if current.value.claim.as_ref().is_some_and(still_ours) => {
                            if current.value.cancel_requested {
                                job.cancel_requested.store(true, Ordering::SeqCst);
                                job.cancel_token().cancel();
                            }
                            *job.held.lock().expect("job claim") = Some(Held { epoch, version: Some(current.version) });
                        }
                        current => {
                            let by = current
                                .as_ref()
                                .and_then(|c| c.value.claim.as_ref())
                                .map_or_else(|| "another replica".to_owned(), |c| format!("replica {}", c.replica));
                            tracing::warn!(job = %id, "{by} took this job over: this replica stops it and writes nothing more of it");
                            *job.held.lock().expect("job claim") = None;
                            job.cancel_token().cancel();
                            if let Some(current) = current {
                                job.follow(current.value);
                            }
                            return Err(SaveError::Fenced);
                        }
                    }
                }
                Err(e) => return Err(SaveError::Store(e)),
            }
        }
        Err(SaveError::Store(StoreError::Conflict { key: key.to_string() }))
    }

    /// Follows the other replicas' job records, and takes over the jobs whose claim is stale.
    async fn tail_run(self: Arc<Self>, mut watcher: spawnit_store::StoreWatcher) {
        loop {
            tokio::select! {
                () = self.stop.cancelled() => return,
                () = tokio::time::sleep(self.config.tail_every) => {}
            }
            match watcher.poll().await {
                Ok(keys) => {
                    for key in keys {
                        if !self.tail_one(&key).await {
                            watcher.forget(&key);
                        }
                    }
                }
                Err(e) => tracing::debug!("cannot list the job records: {e}"),
            }
            if self.engine.store().read_only_reason().is_none() {
                self.takeovers().await;
            }
        }
    }

    /// Reads one changed job record (a key of the jobs collection) unless this replica holds
    /// it; `false` when it could not be read.
    async fn tail_one(self: &Arc<Self>, key: &str) -> bool {
        let Some(id) = key.rsplit('/').next().and_then(|name| name.strip_suffix(".json")) else { return true };
        let known = self.jobs.lock().expect("jobs").get(id).cloned();
        if known.as_ref().is_some_and(|j| j.is_local()) {
            return true;
        }
        let Ok(id) = Id::parse(id) else { return true };
        match self.engine.store().get_json::<StoredJob>(&Key::record(Collection::Jobs, &id)).await {
            Ok(None) => {
                self.jobs.lock().expect("jobs").remove(id.as_str());
                true
            }
            Ok(Some(stored)) => {
                match known {
                    Some(job) => {
                        if job.follow(stored.value).is_some() {
                            self.announce(&job.record());
                        }
                    }
                    None => {
                        // `Jobs::find` may have brought it meanwhile: that object, which readers
                        // may already follow, is the one to update.
                        let record = stored.value.record.clone();
                        let existing = self.jobs.lock().expect("jobs").get(&record.id).cloned();
                        match existing {
                            Some(job) => {
                                if job.follow(stored.value).is_some() {
                                    self.announce(&job.record());
                                }
                            }
                            None => {
                                let job = Arc::new(Job::new(stored.value, None, self.config.live_capacity));
                                self.jobs.lock().expect("jobs").entry(record.id.clone()).or_insert(job);
                                self.announce(&record);
                            }
                        }
                    }
                }
                true
            }
            Err(e) => {
                tracing::debug!(job = %id, "cannot read a job record: {e}");
                false
            }
        }
    }

    /// Takes over every unfinished job whose claim is stale.
    async fn takeovers(self: &Arc<Self>) {
        let now = Utc::now();
        let stale: Vec<Arc<Job>> = self
            .jobs
            .lock()
            .expect("jobs")
            .values()
            .filter(|j| {
                !j.is_local()
                    && !j.status().is_finished()
                    && j.remote_claim().is_none_or(|c| c.stale(now, &self.replica))
            })
            .cloned()
            .collect();
        for job in stale {
            if let Err(e) = self.takeover(&job).await {
                tracing::debug!(job = %job.record().id, "cannot take the job over: {e}");
            }
        }
    }

    /// Claims a job whose claim is stale, with a write conditional on the record as read (of
    /// several replicas trying, one wins), and runs it again here.
    async fn takeover(self: &Arc<Self>, job: &Arc<Job>) -> Result<(), StoreError> {
        let Ok(id) = Id::parse(&job.record().id) else { return Ok(()) };
        let (store, key) = (self.engine.store(), Key::record(Collection::Jobs, &id));
        let Some(current) = store.get_json::<StoredJob>(&key).await? else { return Ok(()) };
        let mut stored = current.value;
        let now = Utc::now();
        if stored.record.status.is_finished() || stored.claim.as_ref().is_some_and(|c| !c.stale(now, &self.replica)) {
            job.follow(stored);
            return Ok(());
        }
        let me = &self.replica;
        let (epoch, previous) = match &stored.claim {
            Some(c) => (c.epoch + 1, format!("replica {}", c.replica)),
            None => (1, "the server".to_owned()),
        };
        let text = match stored.record.status {
            JobStatus::Running => format!(
                "{previous} stopped while running this job: replica {me} runs it again from the recorded state (what was already created is adopted)"
            ),
            _ => format!("{previous} stopped before running this job: replica {me} takes it over"),
        };
        tracing::info!(job = %id, "{text}");
        stored.events.push(JobEvent::Message { text });
        stored.record.status = JobStatus::Queued;
        stored.record.replica = Some(me.id.clone());
        stored.claim = Some(JobClaim {
            replica: me.id.clone(),
            host: me.host.clone(),
            pid: me.pid,
            epoch,
            expires_at: spawnit_store::expires_after(now, self.config.claim_ttl),
        });
        let version = match store.put_json(&key, &stored, PutCondition::Matches(current.version)).await {
            Ok(version) => version,
            // Another replica was quicker.
            Err(StoreError::Conflict { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        let cancel_requested = stored.cancel_requested;
        job.follow(stored);
        *job.remote_claim.lock().expect("job claim") = None;
        *job.held.lock().expect("job claim") = Some(Held { epoch, version: Some(version) });
        let token = CancellationToken::new();
        if cancel_requested {
            token.cancel();
        }
        *job.cancel.lock().expect("job cancel") = token;
        self.metrics.job_taken_over();
        self.announce(&job.record());
        let after = job.after.as_ref().and_then(|a| self.jobs.lock().expect("jobs").get(a).cloned());
        self.start(job.clone(), after);
        Ok(())
    }

    async fn run(self: Arc<Self>, job: Arc<Job>, after: Option<Arc<Job>>) {
        let target = job.record().target;
        let cancel = job.cancel_token();
        if let Some(first) = after {
            let first_record = first.record();
            job.push_local(JobEvent::Message {
                text: format!(
                    "waiting for job {} ({} of {}) first",
                    first_record.id,
                    first_record.kind.as_str(),
                    first_record.target
                ),
            });
            tokio::select! {
                () = first.finished() => {}
                _ = cancel.cancelled() => {
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
            job.push_local(JobEvent::Message { text: format!("queued behind another job on {target}") });
        }
        let _turn = tokio::select! {
            turn = queue.lock_owned() => turn,
            _ = cancel.cancelled() => {
                self.finish(&job, JobStatus::Cancelled, Some("cancelled while queued".into()), None).await;
                return;
            }
        };
        let record = job.update(|r| {
            r.status = JobStatus::Running;
            r.started_at = Some(Utc::now());
        });
        if let Err(SaveError::Fenced) = self.save(&job).await {
            return;
        }
        self.announce(&record);

        let timed_out = Arc::new(AtomicBool::new(false));
        let timer = {
            let (cancel, timed_out, timeout) = (cancel.clone(), timed_out.clone(), self.config.timeout);
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
            Arc::new(move |event| job.push_local(event))
        };
        let mut run = RunOptions::new(record.id.clone(), sink);
        run.cancel = job.cancel_token();
        run.lock_wait = self.config.lock_wait;
        // A replica that stops renewing loses its service locks when it loses its claims.
        run.lock_ttl = self.config.claim_ttl;
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
                job.push_local(JobEvent::Planned { plan: plan.clone() });
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

    async fn finish(
        self: &Arc<Self>,
        job: &Arc<Job>,
        status: JobStatus,
        error: Option<String>,
        summary: Option<JobSummary>,
    ) {
        if !job.is_local() {
            // Taken over by another replica meanwhile: its outcome is the job's.
            return;
        }
        if let Some(e) = &error {
            job.push_local(JobEvent::Message { text: format!("error: {e}") });
        }
        if !job.has_finished_event() {
            let outcome = match status {
                JobStatus::Succeeded => OperationOutcome::Succeeded,
                JobStatus::Cancelled => OperationOutcome::Cancelled,
                JobStatus::TimedOut => OperationOutcome::TimedOut,
                _ => OperationOutcome::Failed,
            };
            let s = summary.clone().unwrap_or(JobSummary { done: 0, failed: 0, skipped: 0, duration_ms: 0 });
            job.push_local(JobEvent::Finished {
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
        match self.save(job).await {
            Ok(()) => {}
            Err(SaveError::Fenced) => return,
            Err(SaveError::Store(e)) => {
                tracing::warn!(job = %record.id, "cannot save the finished job's record, trying again: {e}");
                // The store is failing: keep trying in the background, so the stored record
                // ends as the job did once the store is back (it would otherwise stay
                // `running`, and be taken over).
                let (inner, job) = (self.clone(), job.clone());
                tokio::spawn(async move {
                    for _ in 0..FINISH_SAVE_ATTEMPTS {
                        tokio::time::sleep(FINISH_SAVE_PAUSE).await;
                        if !matches!(inner.save(&job).await, Err(SaveError::Store(_))) {
                            return;
                        }
                    }
                });
            }
        }
        job.finished.send_replace(true);
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
