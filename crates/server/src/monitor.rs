//! The drift monitor and the lease keeper: background tasks owned by the server and stopped
//! through its cancellation token.
//!
//! The monitor sweeps every service periodically with one observation of the Docker engine
//! (a few list calls in all, see `DockerProvider::observe_world`) and re-checks a service as soon
//! as Docker reports a change to one of its objects, or one of its jobs finishes. A status change
//! is published on the event bus; a drifted service whose policy is `reconcile` gets an apply job.
//! When such an apply fails, the next one waits: the wait doubles with each failure, from
//! `reconcile_backoff.base` up to its cap, and is forgotten when an apply succeeds, the service
//! becomes compliant, or its spec changes. Meanwhile the API and the UI say "reconcile failing:
//! <reason>, next try at …".
//! The lease keeper warns before a service's lease ends and queues its destroy at the end.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::StreamExt;
use spawnit_docker::{DockerChange, DockerProvider};
use spawnit_engine::{Engine, EngineError, ServiceStatus, SweepScope};
use spawnit_model::plan::PlanStatus;
use spawnit_model::{DriftPolicy, Id, ServiceSpec};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::events::{EventBus, ServerEvent};
use crate::jobs::{Job, JobKind, JobRecord, JobStatus, Jobs, Target};
use crate::metrics::Metrics;
use crate::tasks::{Task, TaskRuns};

/// The services to check again now (sent by the API and the jobs), for the drift monitor of
/// whichever term of leadership runs.
pub type Rechecks = Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<(Id, Id)>>>;

/// The last status seen of each service.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SeenStatus {
    pub status: PlanStatus,
    pub reasons: Vec<String>,
}

/// Statuses by (client, service), shared with the API. The leader's drift monitor writes it;
/// the other replicas read the copy the leader keeps in the store ([`board_share_run`]).
#[derive(Clone, Default)]
pub struct StatusBoard {
    inner: Arc<Mutex<HashMap<(Id, Id), SeenStatus>>>,
    reconciles: Arc<Mutex<HashMap<(Id, Id), Reconcile>>>,
    /// Why reconciles wait, as the leader last shared it (on the other replicas).
    shared_failing: Arc<Mutex<HashMap<(Id, Id), ReconcileFailing>>>,
    /// Raised by every change, so the leader writes the copy only when something changed.
    changes: Arc<std::sync::atomic::AtomicU64>,
}

/// The board as the leader shares it with the other replicas: `servers/statuses.json`.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct SharedBoard {
    statuses: Vec<(Id, Id, SeenStatus)>,
    failing: Vec<(Id, Id, ReconcileFailing)>,
}

/// The waits between failed reconcile applies of one service: `base`, doubling, at most `cap`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { base: Duration::from_secs(10), cap: Duration::from_secs(600) }
    }
}

impl Backoff {
    /// The wait after `failures` failures in a row (at least one).
    pub fn wait(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        self.base.checked_mul(1u32 << doublings).unwrap_or(self.cap).min(self.cap)
    }
}

/// A reconcile apply of one service: the last one queued, and the failures before it.
#[derive(Clone)]
struct Reconcile {
    job: Arc<Job>,
    /// The spec version it applies: another one starts afresh.
    spec_updated_at: chrono::DateTime<Utc>,
    /// Set once `job` has failed.
    failing: Option<ReconcileFailing>,
}

/// Why the reconcile of a service is waiting, as the API and the UI show it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReconcileFailing {
    /// Failed reconcile applies in a row.
    pub failures: u32,
    /// The last failure's error (secrets masked by the engine).
    pub reason: String,
    pub last_job: String,
    pub next_try_at: chrono::DateTime<Utc>,
}

impl ReconcileFailing {
    /// `reconcile failing: <reason>, next try at <time>`.
    pub fn message(&self) -> String {
        format!(
            "reconcile failing: {}, next try at {}",
            self.reason,
            self.next_try_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )
    }
}

impl StatusBoard {
    /// Why the reconcile of a service waits, if it does.
    pub fn reconcile_failing(&self, client: &Id, service: &Id) -> Option<ReconcileFailing> {
        let key = (client.clone(), service.clone());
        let reconciles = self.reconciles.lock().expect("reconciles");
        match reconciles.get(&key) {
            Some(r) => r.failing.clone(),
            None => self.shared_failing.lock().expect("reconciles").get(&key).cloned(),
        }
    }

    fn changed(&self) {
        self.changes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    fn change_count(&self) -> u64 {
        self.changes.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn shared(&self) -> SharedBoard {
        let statuses = self.inner.lock().expect("status board");
        let reconciles = self.reconciles.lock().expect("reconciles");
        SharedBoard {
            statuses: statuses.iter().map(|((c, s), seen)| (c.clone(), s.clone(), seen.clone())).collect(),
            failing: reconciles
                .iter()
                .filter_map(|((c, s), r)| r.failing.clone().map(|f| (c.clone(), s.clone(), f)))
                .collect(),
        }
    }

    /// Takes the leader's board (on a replica that does not lead).
    fn restore(&self, shared: SharedBoard) {
        *self.inner.lock().expect("status board") =
            shared.statuses.into_iter().map(|(c, s, seen)| ((c, s), seen)).collect();
        *self.shared_failing.lock().expect("reconciles") =
            shared.failing.into_iter().map(|(c, s, f)| ((c, s), f)).collect();
    }

    pub fn get(&self, client: &Id, service: &Id) -> Option<SeenStatus> {
        self.inner.lock().expect("status board").get(&(client.clone(), service.clone())).cloned()
    }

    /// Records a status; returns whether it changed.
    fn set(&self, client: &Id, service: &Id, seen: SeenStatus) -> bool {
        let changed = self.inner.lock().expect("status board").insert((client.clone(), service.clone()), seen.clone())
            != Some(seen);
        if changed {
            self.changed();
        }
        changed
    }

    fn forget<'a>(&self, gone: impl Iterator<Item = &'a (Id, Id)>) {
        let (mut inner, mut reconciles) =
            (self.inner.lock().expect("status board"), self.reconciles.lock().expect("reconciles"));
        for key in gone {
            inner.remove(key);
            reconciles.remove(key);
        }
        self.changed();
    }

    fn forget_except(&self, alive: &HashSet<(Id, Id)>) {
        self.inner.lock().expect("status board").retain(|k, _| alive.contains(k));
        self.reconciles.lock().expect("reconciles").retain(|k, _| alive.contains(k));
        self.changed();
    }

    /// Whether a reconcile apply of the service may be queued now. Settles the last one: a
    /// success or another spec forgets the failures, a new failure sets the next try.
    fn reconcile_due(&self, key: &(Id, Id), spec: &ServiceSpec, backoff: Backoff) -> bool {
        let mut reconciles = self.reconciles.lock().expect("reconciles");
        let Some(last) = reconciles.get_mut(key) else { return true };
        if last.spec_updated_at != spec.updated_at {
            reconciles.remove(key);
            return true;
        }
        let record = last.job.record();
        match record.status {
            JobStatus::Queued | JobStatus::Running => false,
            JobStatus::Succeeded => {
                reconciles.remove(key);
                true
            }
            _ => {
                if last.failing.as_ref().is_none_or(|f| f.last_job != record.id) {
                    let failures = last.failing.as_ref().map_or(0, |f| f.failures) + 1;
                    let ended = record.finished_at.unwrap_or_else(Utc::now);
                    let wait = chrono::Duration::from_std(backoff.wait(failures)).unwrap_or(chrono::Duration::MAX);
                    last.failing = Some(ReconcileFailing {
                        failures,
                        reason: record
                            .error
                            .clone()
                            .unwrap_or_else(|| format!("job {} {}", record.id, record.status.as_str())),
                        last_job: record.id.clone(),
                        next_try_at: ended + wait,
                    });
                    self.changed();
                }
                last.failing.as_ref().is_none_or(|f| Utc::now() >= f.next_try_at)
            }
        }
    }

    /// Records the reconcile apply just queued.
    fn reconcile_queued(&self, key: (Id, Id), spec: &ServiceSpec, job: Arc<Job>) {
        let mut reconciles = self.reconciles.lock().expect("reconciles");
        let failing = reconciles.get(&key).and_then(|r| r.failing.clone());
        reconciles.insert(key, Reconcile { job, spec_updated_at: spec.updated_at, failing });
    }

    /// The service needs no reconcile (compliant, or no longer `reconcile`): forget its failures.
    fn reconcile_forget(&self, key: &(Id, Id)) {
        self.reconciles.lock().expect("reconciles").remove(key);
    }

    pub fn counts(&self) -> BTreeMap<String, usize> {
        let mut out: BTreeMap<String, usize> =
            ["compliant", "drifted", "error"].iter().map(|s| (s.to_string(), 0)).collect();
        for seen in self.inner.lock().expect("status board").values() {
            *out.entry(seen.status.to_string()).or_default() += 1;
        }
        out
    }
}

/// What the monitor and the lease keeper need.
#[derive(Clone)]
pub struct Monitor {
    pub engine: Engine,
    pub docker: DockerProvider,
    pub jobs: Jobs,
    pub bus: EventBus,
    pub board: StatusBoard,
    pub metrics: Arc<Metrics>,
    /// Where each run of the monitor's tasks is recorded.
    pub tasks: TaskRuns,
    /// Time between full sweeps.
    pub sweep_every: Duration,
    /// Time between lease checks.
    pub lease_every: Duration,
    /// How long before a lease ends warnings are published.
    pub lease_warnings: Vec<Duration>,
    /// The waits between failed reconcile applies.
    pub reconcile_backoff: Backoff,
}

impl Monitor {
    /// Runs the drift monitor until `stop` is cancelled.
    /// `rechecks` are the services to check again now; the receiver outlives one leadership
    /// term and is shared with the next.
    pub async fn drift_run(self, rechecks: Rechecks, stop: CancellationToken) {
        let (dirty_tx, mut dirty_rx) = mpsc::unbounded_channel::<Dirty>();
        let forward = dirty_tx.clone();
        let forwarder = tokio::spawn(async move {
            let mut rechecks = rechecks.lock().await;
            while let Some((client, service)) = rechecks.recv().await {
                let _ = forward.send(Dirty::Service(client, service));
            }
        });
        let watcher = tokio::spawn(self.clone().docker_watch(dirty_tx.clone(), stop.clone()));
        let jobs_watcher = tokio::spawn(self.clone().jobs_watch(dirty_tx, stop.clone()));
        let mut sweep = tokio::time::interval(self.sweep_every);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = sweep.tick() => {
                    let _ = self.tasks.run(Task::DriftSweep, self.observe(SweepScope::All)).await;
                }
                Some(first) = dirty_rx.recv() => {
                    // Let a burst of events (stop, die, destroy…) settle, then check once.
                    let mut dirty = BTreeSet::from([first]);
                    let settle = tokio::time::sleep(Duration::from_millis(150));
                    tokio::pin!(settle);
                    loop {
                        tokio::select! {
                            _ = &mut settle => break,
                            Some(more) = dirty_rx.recv() => { dirty.insert(more); }
                        }
                    }
                    let scope = if dirty.contains(&Dirty::Everything) {
                        SweepScope::All
                    } else {
                        SweepScope::Services(
                            dirty.into_iter().filter_map(|d| match d {
                                Dirty::Service(client, service) => Some((client, service)),
                                Dirty::Everything => None,
                            }).collect(),
                        )
                    };
                    let _ = self.tasks.run(Task::DriftRecheck, self.observe(scope)).await;
                }
            }
        }
        watcher.abort();
        jobs_watcher.abort();
        forwarder.abort();
    }

    /// Follows Docker's event stream, reconnecting when it ends.
    async fn docker_watch(self, dirty: mpsc::UnboundedSender<Dirty>, stop: CancellationToken) {
        while !stop.is_cancelled() {
            let mut changes = Box::pin(self.docker.changes());
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    change = changes.next() => match change {
                        Some(DockerChange::Service { client, service }) => {
                            self.metrics.docker_event_seen();
                            if let (Ok(c), Ok(s)) = (Id::parse(&client), Id::parse(&service)) {
                                let _ = dirty.send(Dirty::Service(c, s));
                            }
                        }
                        Some(DockerChange::Network { .. }) => {
                            self.metrics.docker_event_seen();
                            let _ = dirty.send(Dirty::Everything);
                        }
                        None => break,
                    }
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Re-checks a service when one of its jobs finishes; records the end of a reconcile apply.
    async fn jobs_watch(self, dirty: mpsc::UnboundedSender<Dirty>, stop: CancellationToken) {
        let mut events = self.bus.subscribe();
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                event = events.recv() => match event {
                    Ok(ServerEvent::Job { job, target, status, .. }) if status.is_finished() => {
                        let _ = dirty.send(match target {
                            Target::Service { client, name } => Dirty::Service(client, name),
                            Target::Network { .. } => Dirty::Everything,
                        });
                        if let Some(record) = self.jobs.get(&job).map(|j| j.record())
                            && record.requested_by == RECONCILE_REQUESTER
                        {
                            self.reconcile_ended(&record);
                        }
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => { let _ = dirty.send(Dirty::Everything); }
                    Err(_) => return,
                }
            }
        }
    }

    /// Records a finished reconcile apply as a run of [`Task::Reconcile`].
    fn reconcile_ended(&self, record: &JobRecord) {
        let started = record.started_at.unwrap_or(record.created_at);
        let duration = (record.finished_at.unwrap_or_else(Utc::now) - started).to_std().unwrap_or_default();
        let result = match record.status {
            JobStatus::Succeeded => Ok(()),
            status => Err(format!(
                "{} {}: {}",
                record.target,
                status.as_str(),
                record.error.as_deref().unwrap_or("no error recorded")
            )),
        };
        self.tasks.record(Task::Reconcile, started, duration, result);
    }

    /// Checks the services in `scope` (observe → plan → status, see [`Engine::sweep`]) and
    /// publishes what changed. The periodic sweep and the re-check of single services.
    pub async fn observe(&self, scope: SweepScope) -> Result<usize, EngineError> {
        let started = Instant::now();
        let world = self.docker.observe_world().await.map_err(EngineError::from);
        let statuses = match world {
            Ok(world) => self.engine.sweep(&world, &scope).await,
            Err(e) => Err(e),
        };
        let statuses = match statuses {
            Ok(statuses) => statuses,
            Err(e) => {
                tracing::warn!("drift check failed: {e}");
                return Err(e);
            }
        };
        let seen: HashSet<(Id, Id)> = statuses.iter().map(|s| (s.spec.client.clone(), s.spec.name.clone())).collect();
        match &scope {
            SweepScope::All => self.board.forget_except(&seen),
            // A service asked for and not found was deleted (or its spec is unreadable).
            SweepScope::Services(asked) => {
                self.board.forget(asked.iter().filter(|key| !seen.contains(key)));
            }
        }
        let n = statuses.len();
        for s in statuses {
            self.publish(s).await;
        }
        if scope == SweepScope::All {
            self.metrics.sweep_done(started.elapsed().as_secs_f64(), n);
        }
        Ok(n)
    }

    /// Publishes a status if it changed; queues a repair for `reconcile` services. Services
    /// with a job queued or running are skipped: their job's end triggers a fresh check.
    async fn publish(&self, s: ServiceStatus) {
        let (client, service) = (s.spec.client.clone(), s.spec.name.clone());
        let target = Target::Service { client: client.clone(), name: service.clone() };
        if self.jobs.busy(&target) {
            return;
        }
        let seen = SeenStatus { status: s.status, reasons: s.reasons.clone() };
        if self.board.set(&client, &service, seen) {
            self.bus.publish(ServerEvent::ServiceStatus {
                client: client.clone(),
                service: service.clone(),
                status: s.status.to_string(),
                reasons: s.reasons,
                at: Utc::now(),
            });
        }
        let key = (client.clone(), service.clone());
        if s.status == PlanStatus::Compliant || s.spec.drift_policy != DriftPolicy::Reconcile {
            self.board.reconcile_forget(&key);
        }
        if s.status != PlanStatus::Drifted || s.spec.drift_policy != DriftPolicy::Reconcile || lease_over(&s.spec) {
            return;
        }
        // Only a deployed service is repaired: a never-applied or destroyed one stays as it is.
        let deployed = match self.engine.service_state(&client, &service).await {
            Ok(state) => state.is_some_and(|st| !st.resources.is_empty()),
            Err(_) => false,
        };
        if deployed && self.board.reconcile_due(&key, &s.spec, self.reconcile_backoff) {
            // Through the same door as a person's apply: a network removed outside SpawnIt is
            // applied first, as its own job.
            match self.jobs.submit_requested(JobKind::Apply, target, RECONCILE_REQUESTER).await {
                Ok(submitted) => self.board.reconcile_queued(key, &s.spec, submitted.job),
                Err(e) => tracing::warn!("reconcile of {client}/{service} not queued: {e}"),
            }
        }
    }

    /// Runs the lease keeper until `stop` is cancelled.
    pub async fn lease_run(self, stop: CancellationToken) {
        let mut warned: HashSet<(Id, Id, i64, u64)> = HashSet::new();
        let mut tick = tokio::time::interval(self.lease_every);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {
                    if let Err(e) = self.tasks.run(Task::LeaseKeeper, self.leases_check(&mut warned)).await {
                        tracing::warn!("lease check failed: {e}");
                    }
                }
            }
        }
    }

    async fn leases_check(&self, warned: &mut HashSet<(Id, Id, i64, u64)>) -> Result<(), spawnit_engine::EngineError> {
        let store = self.engine.store();
        let now = Utc::now();
        for client in store.client_list().await? {
            for name in store.service_list(&client).await? {
                let spec = match store.service_spec(&client, &name).await {
                    Ok(Some(spec)) => spec.value,
                    Ok(None) => continue,
                    // One unreadable spec must not stop the leases of the others.
                    Err(e @ spawnit_store::StoreError::Corrupt { .. }) => {
                        tracing::warn!("lease check: skipping service {client}/{name}: {e}");
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                };
                let Some(expires_at) = spec.expires_at else { continue };
                let remaining = expires_at - now;
                if remaining <= chrono::Duration::zero() {
                    let target = Target::Service { client: client.clone(), name: name.clone() };
                    let deployed =
                        self.engine.service_state(&client, &name).await?.is_some_and(|s| !s.resources.is_empty());
                    if deployed && !self.jobs.busy(&target) {
                        let job = self.jobs.submit(JobKind::Destroy, target, "lease").await;
                        self.bus.publish(ServerEvent::LeaseExpired {
                            client: client.clone(),
                            service: name.clone(),
                            job: job.record().id,
                            at: now,
                        });
                    }
                    continue;
                }
                for before in &self.lease_warnings {
                    let key = (client.clone(), name.clone(), expires_at.timestamp(), before.as_secs());
                    let due = chrono::Duration::from_std(*before).unwrap_or_default();
                    if remaining <= due && !warned.contains(&key) {
                        warned.insert(key);
                        self.bus.publish(ServerEvent::LeaseWarning {
                            client: client.clone(),
                            service: name.clone(),
                            expires_at,
                            remaining_s: remaining.num_seconds(),
                            at: now,
                        });
                    }
                }
            }
        }
        Ok(())
    }
}

/// `servers/statuses.json`
fn shared_board_key() -> spawnit_store::Key {
    spawnit_store::Key::record(spawnit_store::Collection::Servers, &Id::parse("statuses").expect("a valid id"))
}

/// Keeps the status board the same on every replica, every `every` until `stop`: the leader
/// writes its board to the store when it changed; the others read it when it changed.
pub async fn board_share_run(
    board: StatusBoard,
    store: spawnit_store::Store,
    leading: tokio::sync::watch::Receiver<bool>,
    every: Duration,
    stop: CancellationToken,
) {
    let key = shared_board_key();
    let mut written: Option<u64> = None;
    let mut read: Option<spawnit_store::Version> = None;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        if *leading.borrow() {
            read = None;
            let count = board.change_count();
            if written == Some(count) {
                continue;
            }
            match store.put_json(&key, &board.shared(), spawnit_store::PutCondition::Overwrite).await {
                Ok(_) => written = Some(count),
                Err(e) => tracing::debug!("cannot share the status board: {e}"),
            }
        } else {
            written = None;
            match store.get_json::<SharedBoard>(&key).await {
                Ok(Some(shared)) if read.as_ref() != Some(&shared.version) => {
                    read = Some(shared.version);
                    board.restore(shared.value);
                }
                Ok(_) => {}
                Err(e) => tracing::debug!("cannot read the leader's status board: {e}"),
            }
        }
    }
}

/// Something to check again.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Dirty {
    Service(Id, Id),
    Everything,
}

/// Who the jobs the monitor queues are requested by.
const RECONCILE_REQUESTER: &str = "drift-monitor";

fn lease_over(spec: &spawnit_model::ServiceSpec) -> bool {
    spec.expires_at.is_some_and(|t| t <= Utc::now())
}
