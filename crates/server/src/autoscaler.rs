//! The autoscaler: a background task of `spawnit serve`, beside the drift monitor, that keeps
//! the average CPU of a replicated container near its scale policy's target.
//!
//! Every `interval` it looks at each deployed service whose spec has a replicated container
//! with a scale policy (`min`, `max`, `target_cpu_percent`), samples the CPU of that
//! container's replicas from the Docker stats API (the container ids come from the service's
//! state: the resources `container.<name>[i]`) and computes the target-tracking count
//! `ceil(n × avg / target)`, clamped to `[min, max]` ([`decide`], pure). A scale-out waits until
//! the last scaling of the service is older than `scale_out_cooldown`, a scale-in until it is
//! older than the longer `scale_in_cooldown`, so a burst does not make the count flap. A
//! decision goes through the same doors as a person's `spawnit scale`: the engine re-renders
//! the spec with the new count (compare-and-swap), the change is audited as done by
//! `autoscaler`, an apply job is queued through [`crate::ops::job_submit`], and a
//! [`ServerEvent::Scaled`] is published on `/api/events`. A service with a job queued or
//! running is left alone until its job ends. The last samples and the last
//! [`DECISIONS_KEPT`] decisions of each service are kept in memory ([`ScaleBoard`]) for the
//! service page and `GET /api/services/{id}/scale`; they start empty after a restart.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use spawnit_engine::EngineError;
use spawnit_model::resource::Address;
use spawnit_model::spec::ScalePolicy;
use spawnit_model::{Id, ServiceSpec};
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

use crate::AppState;
use crate::accounts::Role;
use crate::caller::Caller;
use crate::events::ServerEvent;
use crate::jobs::{JobKind, Target};
use crate::tasks::Task;

/// The user the autoscaler's changes, audit entries and jobs are recorded as.
pub const AUTOSCALER_USER: &str = "autoscaler";

/// How many decisions are kept per service.
pub const DECISIONS_KEPT: usize = 20;

/// How often the autoscaler looks, and how long it waits after a scaling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AutoscaleConfig {
    /// Time between two samplings of every scalable service.
    pub interval: Duration,
    /// A scale-out needs the last scaling of the service to be at least this old.
    pub scale_out_cooldown: Duration,
    /// A scale-in needs the last scaling of the service to be at least this old.
    pub scale_in_cooldown: Duration,
}

impl Default for AutoscaleConfig {
    fn default() -> Self {
        AutoscaleConfig {
            interval: Duration::from_secs(10),
            scale_out_cooldown: Duration::from_secs(30),
            scale_in_cooldown: Duration::from_secs(120),
        }
    }
}

// ---- the decision (pure) ----

/// What [`decide`] looks at.
#[derive(Clone, Debug)]
pub struct DecideInput<'a> {
    /// The replica count the spec asks for now.
    pub current: u32,
    /// The CPU percent of each replica sampled (one busy core is 100).
    pub samples: &'a [f64],
    pub policy: &'a ScalePolicy,
    /// How long ago the service was last scaled (by the autoscaler or a person); `None`: not
    /// since the server started.
    pub since_last_scaling: Option<Duration>,
    pub scale_out_cooldown: Duration,
    pub scale_in_cooldown: Duration,
}

/// What [`decide`] concluded.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    /// The average CPU of the samples (0 without samples).
    pub avg_cpu_percent: f64,
    /// The count the policy asks for: `ceil(n × avg / target)` clamped to `[min, max]`.
    pub desired: u32,
    /// `Some(desired)` when the count changes now; `None` when it stays (same count, cooldown,
    /// or no samples).
    pub scale_to: Option<u32>,
    /// Why, with the numbers.
    pub reason: String,
}

/// The target-tracking decision for one replicated container.
pub fn decide(input: &DecideInput) -> Verdict {
    let DecideInput { current, samples, policy, since_last_scaling, .. } = *input;
    let (min, max) = (policy.min.max(1), policy.max.max(policy.min.max(1)));
    let target = f64::from(policy.target_cpu_percent.max(1));
    let n = current.max(1);
    let avg = if samples.is_empty() { 0.0 } else { samples.iter().sum::<f64>() / samples.len() as f64 };
    let (desired, formula) = if samples.is_empty() {
        // Nothing measured: only bring a count outside the bounds back into them.
        (current.clamp(min, max), "no CPU sample".to_owned())
    } else {
        // A hair below an integer is that integer (50 % of 2 replicas at a 50 % target is 2).
        let raw = (f64::from(n) * avg / target - 1e-9).ceil().max(0.0);
        let raw = if raw >= f64::from(u32::MAX) { u32::MAX } else { raw as u32 };
        let clamped = raw.clamp(min, max);
        let bound = if raw > max {
            format!(", clamped to the maximum {max}")
        } else if raw < min {
            format!(", clamped to the minimum {min}")
        } else {
            String::new()
        };
        (
            clamped,
            format!(
                "average CPU {avg:.1}% of {n} replica(s), target {target}%: ceil({n} × {avg:.1} / {target}) = {raw}{bound}"
            ),
        )
    };
    let hold = |reason: String| Verdict { avg_cpu_percent: avg, desired, scale_to: None, reason };
    if samples.is_empty() && desired == current {
        return hold("no CPU sample: nothing to decide".to_owned());
    }
    if desired == current {
        return hold(format!("{formula}: stays at {current}"));
    }
    let (direction, cooldown) =
        if desired > current { ("scale out", input.scale_out_cooldown) } else { ("scale in", input.scale_in_cooldown) };
    if let Some(since) = since_last_scaling
        && since < cooldown
    {
        return hold(format!(
            "{formula}: {direction} {current} → {desired} waits for the cooldown (last scaling {}s ago, cooldown {}s)",
            since.as_secs(),
            cooldown.as_secs()
        ));
    }
    Verdict { avg_cpu_percent: avg, desired, scale_to: Some(desired), reason: format!("{formula}: {direction}") }
}

// ---- what is kept in memory ----

/// One scaling decided by the autoscaler.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ScaleDecision {
    pub at: DateTime<Utc>,
    /// The replicated container scaled.
    pub container: String,
    pub from: u32,
    pub to: u32,
    pub avg_cpu_percent: f64,
    pub target_cpu_percent: u32,
    /// Why, with the numbers.
    pub reason: String,
    /// The apply job queued for it (absent when it could not be queued: see `error`).
    pub job: Option<String>,
    pub error: Option<String>,
}

/// The last CPU sample of one replica.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ReplicaSample {
    /// Its address, e.g. `container.web[0]`.
    pub address: String,
    /// The Docker container id.
    pub id: String,
    /// Percent of one core; absent when Docker gave no sample (stopped, just started).
    pub cpu_percent: Option<f64>,
    pub at: DateTime<Utc>,
}

#[derive(Default)]
struct Scaling {
    /// The last scaling (by the autoscaler or through the API, the UI): for the cooldowns.
    last_scaled: Option<DateTime<Utc>>,
    decisions: VecDeque<ScaleDecision>,
    /// The last samples, by replicated container.
    samples: BTreeMap<String, Vec<ReplicaSample>>,
}

/// The autoscaler's memory of each service, shared with the API and the pages.
#[derive(Clone, Default)]
pub struct ScaleBoard {
    inner: Arc<Mutex<HashMap<(Id, Id), Scaling>>>,
}

impl ScaleBoard {
    /// Records a scaling of the service decided at `at` (starts its cooldowns).
    pub fn scaled(&self, client: &Id, service: &Id, at: DateTime<Utc>) {
        let mut inner = self.inner.lock().expect("scale board");
        inner.entry((client.clone(), service.clone())).or_default().last_scaled = Some(at);
    }

    fn since_last_scaling(&self, client: &Id, service: &Id) -> Option<Duration> {
        let inner = self.inner.lock().expect("scale board");
        let at = inner.get(&(client.clone(), service.clone()))?.last_scaled?;
        // A clock set back counts as "just now".
        Some((Utc::now() - at).to_std().unwrap_or_default())
    }

    fn decision_add(&self, client: &Id, service: &Id, decision: ScaleDecision) {
        let mut inner = self.inner.lock().expect("scale board");
        let decisions = &mut inner.entry((client.clone(), service.clone())).or_default().decisions;
        decisions.push_front(decision);
        decisions.truncate(DECISIONS_KEPT);
    }

    fn samples_set(&self, client: &Id, service: &Id, container: &str, samples: Vec<ReplicaSample>) {
        let mut inner = self.inner.lock().expect("scale board");
        inner.entry((client.clone(), service.clone())).or_default().samples.insert(container.to_owned(), samples);
    }

    /// The service's decisions, newest first.
    pub fn decisions(&self, client: &Id, service: &Id) -> Vec<ScaleDecision> {
        let inner = self.inner.lock().expect("scale board");
        inner.get(&(client.clone(), service.clone())).map(|s| s.decisions.iter().cloned().collect()).unwrap_or_default()
    }

    /// The last samples of a replicated container of the service.
    pub fn samples(&self, client: &Id, service: &Id, container: &str) -> Vec<ReplicaSample> {
        let inner = self.inner.lock().expect("scale board");
        inner
            .get(&(client.clone(), service.clone()))
            .and_then(|s| s.samples.get(container).cloned())
            .unwrap_or_default()
    }

    /// Forgets the services not in `keep` (deleted ones).
    fn retain(&self, keep: &[(Id, Id)]) {
        let mut inner = self.inner.lock().expect("scale board");
        inner.retain(|key, _| keep.contains(key));
    }
}

/// The replicas of container `name` the state records, in index order: (address, id).
pub fn replica_ids(state: &spawnit_model::State, name: &str) -> Vec<(Address, String)> {
    let mut out: Vec<(u32, Address, String)> = state
        .resources
        .iter()
        .filter_map(|(address, r)| {
            let index = address.replica_index()?;
            (*address == Address::replica(name, index)).then(|| (index, address.clone(), r.id.clone()))
        })
        .collect();
    out.sort_by_key(|(i, _, _)| *i);
    out.into_iter().map(|(_, a, id)| (a, id)).collect()
}

// ---- the task ----

/// Why one round of the autoscaler failed (for one service; the others are still checked).
#[derive(Debug, thiserror::Error)]
pub enum AutoscaleError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("sampling the CPU of {service}: {source}")]
    Sample {
        service: String,
        #[source]
        source: spawnit_engine::ProviderError,
    },
    #[error("reading the service index: {0}")]
    Index(#[from] spawnit_store::StoreError),
    #[error("{0}")]
    Queue(String),
}

/// The autoscaler task: what it acts through is the server's own state.
#[derive(Clone)]
pub struct Autoscaler {
    pub state: AppState,
    pub config: AutoscaleConfig,
}

impl Autoscaler {
    /// Runs until `stop` is cancelled, one round every `interval`, each recorded as
    /// [`Task::Autoscale`].
    pub async fn run(self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(self.config.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {
                    if let Err(e) = self.state.tasks.run(Task::Autoscale, self.round()).await {
                        tracing::warn!("autoscaler: {e}");
                    }
                }
            }
        }
    }

    /// Looks at every scalable service once; returns how many scalings it decided. One
    /// service's failure does not stop the others: the first one is returned at the end.
    pub async fn round(&self) -> Result<usize, AutoscaleError> {
        // A store served read-only takes no new spec: nothing to decide.
        if self.state.engine.store().read_only_reason().is_some() {
            return Ok(0);
        }
        let services = self.state.index.scalable()?;
        self.state.scaling.retain(&services);
        let mut scaled = 0;
        let mut first_error = None;
        for (client, name) in &services {
            match self.service_check(client, name).await {
                Ok(n) => scaled += n,
                Err(e) => {
                    tracing::warn!("autoscaler: service {client}/{name}: {e}");
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(scaled),
        }
    }

    /// Samples one service's scalable containers and scales the first one that needs it.
    async fn service_check(&self, client: &Id, name: &Id) -> Result<usize, AutoscaleError> {
        let s = &self.state;
        let target = Target::Service { client: client.clone(), name: name.clone() };
        if s.jobs.busy(&target) {
            return Ok(0);
        }
        let spec = match s.engine.service_spec(client, name).await {
            Ok(spec) => spec,
            Err(EngineError::NotFound { .. }) => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        if spec.expires_at.is_some_and(|t| t <= Utc::now()) {
            return Ok(0);
        }
        let Some(state) = s.engine.service_state(client, name).await? else { return Ok(0) };
        if state.resources.is_empty() {
            return Ok(0);
        }
        for (container, c) in &spec.instance.containers {
            let Some(policy) = c.scale.as_ref().filter(|_| c.replicated()) else { continue };
            let current = c.replica_count();
            let replicas = replica_ids(&state, container);
            let ids: Vec<String> = replicas.iter().map(|(_, id)| id.clone()).collect();
            let cpu = s
                .docker
                .cpu_percents(&ids)
                .await
                .map_err(|source| AutoscaleError::Sample { service: format!("{client}/{name}"), source })?;
            let now = Utc::now();
            let samples: Vec<ReplicaSample> = replicas
                .iter()
                .map(|(address, id)| ReplicaSample {
                    address: address.to_string(),
                    id: id.clone(),
                    cpu_percent: cpu.get(id).copied(),
                    at: now,
                })
                .collect();
            s.scaling.samples_set(client, name, container, samples);
            // Until the last apply has made every replica of the count, the numbers describe
            // another count: wait for it (the drift monitor repairs a missing replica).
            let wanted: Vec<Address> = (0..current).map(|i| Address::replica(container, i)).collect();
            if !wanted.iter().all(|a| replicas.iter().any(|(r, _)| r == a)) {
                continue;
            }
            let values: Vec<f64> = replicas.iter().filter_map(|(_, id)| cpu.get(id).copied()).collect();
            let verdict = decide(&DecideInput {
                current,
                samples: &values,
                policy,
                since_last_scaling: s.scaling.since_last_scaling(client, name),
                scale_out_cooldown: self.config.scale_out_cooldown,
                scale_in_cooldown: self.config.scale_in_cooldown,
            });
            let Some(to) = verdict.scale_to else {
                tracing::debug!("autoscaler: {client}/{name} {container}: {}", verdict.reason);
                continue;
            };
            self.scale(&spec, container, current, to, policy, &verdict).await?;
            return Ok(1);
        }
        Ok(0)
    }

    /// Carries out one decision: the spec, the audit entry, the apply job, the event.
    async fn scale(
        &self,
        spec: &ServiceSpec,
        container: &str,
        current: u32,
        to: u32,
        policy: &ScalePolicy,
        verdict: &Verdict,
    ) -> Result<(), AutoscaleError> {
        let s = &self.state;
        let (client, name) = (&spec.client, &spec.name);
        // The decision's time: after the cooldown check, and the start of the next cooldown.
        let at = Utc::now();
        let (_, from) = s.engine.service_scale(client, name, Some(container), to).await?;
        let from = if from == 0 { current } else { from };
        s.scaling.scaled(client, name, at);
        let caller = Caller {
            user: AUTOSCALER_USER.to_owned(),
            client: client.clone(),
            role: Role::Member,
            ip: None,
            session: None,
        };
        let detail = format!("{container}: {from} → {to}; {}", verdict.reason);
        crate::ops::audit(s, &caller, client, "scale", format!("service {client}/{name}"), &detail).await;
        let target = Target::Service { client: client.clone(), name: name.clone() };
        // Sampling took a while: a destroy (or any job) that came meanwhile wins, and a service
        // destroyed meanwhile is not deployed again by an apply queued after it.
        let deployed = s.engine.service_state(client, name).await?.is_some_and(|st| !st.resources.is_empty());
        let queued = if s.jobs.busy(&target) || !deployed {
            Err("not applied: the service was being changed or destroyed meanwhile".to_owned())
        } else {
            crate::ops::job_submit(s, &caller, JobKind::Apply, target).await.map_err(|e| e.message.clone())
        };
        let (job, error) = match &queued {
            Ok(job) => (Some(job.id.clone()), None),
            Err(e) => (None, Some(e.clone())),
        };
        s.scaling.decision_add(
            client,
            name,
            ScaleDecision {
                at,
                container: container.to_owned(),
                from,
                to,
                avg_cpu_percent: verdict.avg_cpu_percent,
                target_cpu_percent: policy.target_cpu_percent,
                reason: verdict.reason.clone(),
                job: job.clone(),
                error: error.clone(),
            },
        );
        s.bus.publish(ServerEvent::Scaled {
            client: client.clone(),
            service: name.clone(),
            container: container.to_owned(),
            from,
            to,
            avg_cpu_percent: verdict.avg_cpu_percent,
            target_cpu_percent: policy.target_cpu_percent,
            reason: verdict.reason.clone(),
            job,
            at,
        });
        let _ = s.recheck.send((client.clone(), name.clone()));
        match error {
            Some(e) => Err(AutoscaleError::Queue(format!("the apply of {client}/{name} was not queued: {e}"))),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(min: u32, max: u32, target: u32) -> ScalePolicy {
        ScalePolicy { min, max, target_cpu_percent: target }
    }

    fn input<'a>(current: u32, samples: &'a [f64], policy: &'a ScalePolicy, since: Option<u64>) -> DecideInput<'a> {
        DecideInput {
            current,
            samples,
            policy,
            since_last_scaling: since.map(Duration::from_secs),
            scale_out_cooldown: Duration::from_secs(30),
            scale_in_cooldown: Duration::from_secs(120),
        }
    }

    #[test]
    fn target_tracking_count_is_ceil_of_total_over_target() {
        let p = policy(1, 10, 50);
        // 2 replicas at 80 %: 160 % in all, 50 % each → ceil(3.2) = 4.
        let v = decide(&input(2, &[70.0, 90.0], &p, None));
        assert_eq!((v.desired, v.scale_to), (4, Some(4)));
        assert!((v.avg_cpu_percent - 80.0).abs() < 1e-9);
        assert!(v.reason.contains("ceil(2 × 80.0 / 50) = 4"), "{}", v.reason);
        assert!(v.reason.contains("scale out"), "{}", v.reason);
    }

    #[test]
    fn exactly_on_target_stays() {
        let p = policy(1, 10, 50);
        let v = decide(&input(2, &[50.0, 50.0], &p, None));
        assert_eq!((v.desired, v.scale_to), (2, None));
        assert!(v.reason.contains("stays at 2"), "{}", v.reason);
    }

    #[test]
    fn the_count_is_clamped_to_the_policy() {
        let p = policy(2, 3, 50);
        let v = decide(&input(2, &[400.0, 400.0], &p, None));
        assert_eq!(v.scale_to, Some(3));
        assert!(v.reason.contains("clamped to the maximum 3"), "{}", v.reason);
        let v = decide(&input(3, &[0.0, 0.0, 0.0], &p, None));
        assert_eq!(v.scale_to, Some(2));
        assert!(v.reason.contains("clamped to the minimum 2"), "{}", v.reason);
        assert!(v.reason.contains("scale in"), "{}", v.reason);
    }

    #[test]
    fn cooldowns_hold_a_scaling_the_shorter_one_for_scale_out() {
        let p = policy(1, 4, 50);
        // 10 s after a scaling: a scale-out waits (30 s), so does a scale-in (120 s).
        let out = decide(&input(1, &[100.0], &p, Some(10)));
        assert_eq!((out.desired, out.scale_to), (2, None));
        assert!(out.reason.contains("waits for the cooldown (last scaling 10s ago, cooldown 30s)"), "{}", out.reason);
        let scale_in = decide(&input(3, &[1.0, 1.0, 1.0], &p, Some(60)));
        assert_eq!((scale_in.desired, scale_in.scale_to), (1, None));
        assert!(scale_in.reason.contains("cooldown 120s"), "{}", scale_in.reason);
        // 60 s after: the scale-out goes, the scale-in still waits; at 121 s it goes too.
        assert_eq!(decide(&input(1, &[100.0], &p, Some(60))).scale_to, Some(2));
        assert_eq!(decide(&input(3, &[1.0, 1.0, 1.0], &p, Some(121))).scale_to, Some(1));
    }

    #[test]
    fn without_samples_only_bounds_are_restored() {
        let p = policy(2, 4, 50);
        let v = decide(&input(3, &[], &p, None));
        assert_eq!(v.scale_to, None);
        let v = decide(&input(1, &[], &p, None));
        assert_eq!(v.scale_to, Some(2));
    }

    #[test]
    fn the_board_keeps_the_last_decisions_newest_first() {
        let board = ScaleBoard::default();
        let (c, s) = (Id::parse("acme").unwrap(), Id::parse("web").unwrap());
        for i in 0..(DECISIONS_KEPT as u32 + 5) {
            board.decision_add(
                &c,
                &s,
                ScaleDecision {
                    at: Utc::now(),
                    container: "app".into(),
                    from: i,
                    to: i + 1,
                    avg_cpu_percent: 0.0,
                    target_cpu_percent: 50,
                    reason: String::new(),
                    job: None,
                    error: None,
                },
            );
        }
        let decisions = board.decisions(&c, &s);
        assert_eq!(decisions.len(), DECISIONS_KEPT);
        assert_eq!(decisions[0].from, DECISIONS_KEPT as u32 + 4);
        assert!(board.since_last_scaling(&c, &s).is_none());
        board.scaled(&c, &s, Utc::now());
        assert!(board.since_last_scaling(&c, &s).is_some());
    }
}
