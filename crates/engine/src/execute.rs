//! Apply and destroy orchestration: walks a plan's DAG, independent branches in parallel,
//! records state after every resource operation, stops cleanly between operations on cancel.
//!
//! Executing decides nothing new: it performs the plan's changes in dependency order. A failed
//! change skips what depends on it; other branches finish. A state write that fails stops
//! everything at once (what was created is found again by its labels on the next plan).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::stream::{FuturesUnordered, StreamExt};
use spawnit_model::plan::{Action, Change, Plan};
use spawnit_model::resource::{Address, DesiredResource, LoadBalancerAttrs, ResourceAttrs, ResourceKind};
use spawnit_model::{JobEvent, OperationOutcome, Redactor, ResourceState, State};
use spawnit_store::{StateWriter, StoreError};
use tokio_util::sync::CancellationToken;

use crate::provider::{Applied, Provider, ProviderError, Scope};

/// Receives a job's events as they happen.
pub type EventSink = Arc<dyn Fn(JobEvent) + Send + Sync>;

/// An event sink that drops everything.
pub fn events_ignored() -> EventSink {
    Arc::new(|_| {})
}

/// How an execution ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecutionReport {
    pub outcome: OperationOutcome,
    pub done: usize,
    pub failed: usize,
    pub skipped: usize,
    /// One line per failed change (secrets masked).
    pub errors: Vec<String>,
    pub duration: Duration,
}

/// One provider call (or wait) of a change. A replace is a delete step then a create step, or,
/// when it is create-before-destroy, a create step, then the old copy's deletion.
///
/// A container behind a load balancer that exists also goes through the balancer: it is added
/// to the upstreams once created (`SyncAfter`; for a rolling replace `SyncCandidate`, which the
/// provider carries out only once the new copy answers its health check), and it is taken out
/// of them and given [`DRAIN`] to finish its requests before it is deleted (`SyncBefore`,
/// `Drain`). A new copy that never turns healthy is deleted again (`Rollback`): the old one
/// keeps serving and the change fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Create,
    Update,
    Delete,
    SyncAfter,
    SyncCandidate,
    SyncBefore,
    Drain,
    DeleteOld,
    Rollback,
}

/// How long a replica taken out of its load balancer keeps running before it is stopped.
pub const DRAIN: Duration = Duration::from_secs(1);

type StepResult = Result<Option<Applied>, ProviderError>;
type StepFuture<'a> = Pin<Box<dyn Future<Output = (usize, Step, StepResult)> + Send + 'a>>;

fn step_run<'a>(
    provider: &'a dyn Provider,
    scope: &'a Scope,
    index: usize,
    change: &'a Change,
    step: Step,
    cancel: &'a CancellationToken,
) -> StepFuture<'a> {
    Box::pin(async move {
        let fingerprint = change.fingerprint.as_deref().unwrap_or_default();
        let result = match (step, change.desired.as_ref()) {
            (Step::Create, Some(d)) => provider.create(scope, d, fingerprint, cancel).await.map(Some),
            (Step::Update, Some(d)) => {
                let id = change.existing_id.as_deref().unwrap_or_default();
                provider.update(scope, d, id, fingerprint, cancel).await.map(Some)
            }
            (Step::Delete | Step::DeleteOld, _) => match change.existing_id.as_deref() {
                Some(id) => provider.delete(scope, &change.address, id, cancel).await.map(|_| None),
                None => Ok(None),
            },
            (Step::Drain, _) => {
                tokio::time::sleep(DRAIN).await;
                Ok(None)
            }
            _ => Ok(None),
        };
        (index, step, result)
    })
}

/// Sets a load balancer's upstreams (`step` is one of the sync steps of change `index`).
fn sync_run<'a>(
    provider: &'a dyn Provider,
    scope: &'a Scope,
    index: usize,
    step: Step,
    lb: (DesiredResource, String),
    cancel: &'a CancellationToken,
) -> StepFuture<'a> {
    Box::pin(async move {
        let (desired, id) = lb;
        let fingerprint = spawnit_plan::fingerprint(&desired.attrs);
        let result = provider.update(scope, &desired, &id, &fingerprint, cancel).await;
        (index, step, result.map(|applied| Some(applied.with_attrs(desired))))
    })
}

/// Deletes the new copy of a rolling replace that never turned healthy.
fn rollback_run<'a>(
    provider: &'a dyn Provider,
    scope: &'a Scope,
    index: usize,
    address: &'a Address,
    id: String,
    cancel: &'a CancellationToken,
) -> StepFuture<'a> {
    Box::pin(async move {
        let result = provider.delete(scope, address, &id, cancel).await.map(|_| None);
        (index, Step::Rollback, result)
    })
}

/// The load balancer in front of `address` as recorded now, if it exists and stays (not being
/// destroyed, nor created again after it was removed outside SpawnIt).
fn balancer_live<'p>(plan: &'p Plan, state: &State, address: &Address) -> Option<(&'p Address, LoadBalancerAttrs)> {
    let lb = plan.changes.iter().find(|c| {
        c.address.kind == ResourceKind::LoadBalancer && !matches!(c.action, Action::Delete | Action::Create)
    })?;
    let recorded = state.resources.get(&lb.address)?;
    let ResourceAttrs::LoadBalancer(attrs) = &recorded.attrs else { return None };
    attrs.fronts(address).then(|| (&lb.address, attrs.clone()))
}

/// The load balancer's recorded attributes with the upstreams the recorded replicas give, after
/// `address` is set to `name` (or taken out, with `None`).
fn balancer_with(
    state: &State,
    lb_address: &Address,
    mut lb: LoadBalancerAttrs,
    address: &Address,
    name: Option<&str>,
) -> Option<(DesiredResource, String)> {
    let recorded = state.resources.get(lb_address)?;
    let mut members: BTreeMap<(u32, String), String> = BTreeMap::new();
    for (a, r) in &state.resources {
        if lb.fronts(a) && !a.name.contains('#') && a != address {
            if let ResourceAttrs::Container(c) = &r.attrs {
                members.insert((a.replica_index().unwrap_or(0), a.name.clone()), c.name.clone());
            }
        }
    }
    if let Some(name) = name {
        members.insert((address.replica_index().unwrap_or(0), address.name.clone()), name.to_owned());
    }
    lb.upstreams = members.into_values().collect();
    let desired = DesiredResource {
        address: lb_address.clone(),
        attrs: ResourceAttrs::LoadBalancer(lb),
        depends_on: recorded.depends_on.clone(),
    };
    Some((desired, recorded.id.clone()))
}

fn container_name_of(change: &Change) -> Option<&str> {
    match change.desired.as_ref().map(|d| &d.attrs) {
        Some(ResourceAttrs::Container(c)) => Some(&c.name),
        _ => None,
    }
}

/// Records the state entry of a finished step (images are shared and never recorded).
async fn step_record(
    state: &mut StateWriter,
    change: &Change,
    step: Step,
    applied: Option<Applied>,
) -> Result<(), StoreError> {
    if change.address.kind == ResourceKind::Image {
        return Ok(());
    }
    let entry = match (step, applied, change.desired.as_ref()) {
        (Step::Delete, _, _) => None,
        (_, Some(applied), Some(desired)) => Some(ResourceState {
            id: applied.id,
            attrs: desired.attrs.clone(),
            fingerprint: change.fingerprint.clone().unwrap_or_default(),
            depends_on: desired.depends_on.clone(),
            outputs: applied.outputs,
            updated_at: Utc::now(),
        }),
        _ => return Ok(()),
    };
    state.record(&change.address, entry).await
}

/// Records a load balancer whose upstreams a sync step set.
async fn balancer_record(state: &mut StateWriter, applied: Option<Applied>) -> Result<(), StoreError> {
    let Some(Applied { id, outputs, attrs: Some(desired) }) = applied else { return Ok(()) };
    let entry = ResourceState {
        id,
        fingerprint: spawnit_plan::fingerprint(&desired.attrs),
        attrs: desired.attrs,
        depends_on: desired.depends_on,
        outputs,
        updated_at: Utc::now(),
    };
    state.record(&desired.address, Some(entry)).await
}

/// Executes `plan`. Returns an error only when state could not be written.
pub async fn execute(
    plan: &Plan,
    provider: &dyn Provider,
    scope: &Scope,
    state: &mut StateWriter,
    cancel: &CancellationToken,
    events: &EventSink,
    redactor: &Redactor,
) -> Result<ExecutionReport, StoreError> {
    let started = Instant::now();
    // Adopted resources and changed ids: recorded without touching the provider.
    for c in plan.changes.iter().filter(|c| c.action == Action::NoOp && c.address.kind != ResourceKind::Image) {
        let (Some(id), Some(fp)) = (&c.existing_id, &c.fingerprint) else { continue };
        let current = state.state().resources.get(&c.address);
        if current
            .is_none_or(|r| &r.id != id || &r.fingerprint != fp || (!c.outputs.is_empty() && r.outputs != c.outputs))
        {
            let applied = Applied { id: id.clone(), outputs: c.outputs.clone(), attrs: None };
            step_record(state, c, Step::Create, Some(applied)).await?;
            events(JobEvent::Message {
                text: format!("{}: recorded {}", c.address, redactor.text(&c.reasons.join("; "))),
            });
        }
    }

    let actions: Vec<usize> = (0..plan.changes.len()).filter(|&i| plan.changes[i].action != Action::NoOp).collect();
    let planned: BTreeSet<&Address> = actions.iter().map(|&i| &plan.changes[i].address).collect();
    let mut waiting: BTreeMap<usize, BTreeSet<&Address>> = actions
        .iter()
        .map(|&i| (i, plan.changes[i].depends_on.iter().filter(|d| planned.contains(d)).collect()))
        .collect();
    let mut finished: BTreeSet<&Address> = BTreeSet::new();
    let mut broken: BTreeSet<&Address> = BTreeSet::new();
    let mut step_started: BTreeMap<usize, Instant> = BTreeMap::new();
    // Changes going through a load balancer, and the new copies of rolling replaces.
    let mut balanced: BTreeSet<usize> = BTreeSet::new();
    let mut candidates: BTreeMap<usize, Applied> = BTreeMap::new();
    let mut rollback_errors: BTreeMap<usize, String> = BTreeMap::new();
    let mut in_flight: FuturesUnordered<StepFuture<'_>> = FuturesUnordered::new();
    let (mut done, mut failed, mut skipped) = (0, 0, 0);
    let mut errors = Vec::new();
    let mut stopping = false;

    loop {
        if !stopping {
            let ready: Vec<usize> = waiting
                .iter()
                .filter(|(_, deps)| deps.iter().all(|d| finished.contains(d) || broken.contains(d)))
                .map(|(&i, _)| i)
                .collect();
            for i in ready {
                let deps = waiting.remove(&i).unwrap_or_default();
                let change = &plan.changes[i];
                if let Some(dep) = deps.iter().find(|d| broken.contains(*d)) {
                    skipped += 1;
                    broken.insert(&change.address);
                    events(JobEvent::Message { text: format!("{}: skipped, {dep} failed", change.address) });
                    continue;
                }
                events(JobEvent::OperationStarted { address: change.address.clone(), action: change.action });
                step_started.insert(i, Instant::now());
                let through = balancer_live(plan, state.state(), &change.address);
                if through.is_some() {
                    balanced.insert(i);
                }
                let first = match change.action {
                    Action::Create => Step::Create,
                    Action::Update => Step::Update,
                    Action::Replace if change.create_before_destroy => Step::Create,
                    Action::Replace | Action::Delete if through.is_some() => Step::SyncBefore,
                    Action::Replace | Action::Delete => Step::Delete,
                    Action::NoOp => continue,
                };
                if first == Step::SyncBefore {
                    let (lb_address, lb) = through.expect("checked above");
                    match balancer_with(state.state(), lb_address, lb, &change.address, None) {
                        Some(lb) => in_flight.push(sync_run(provider, scope, i, first, lb, cancel)),
                        None => in_flight.push(step_run(provider, scope, i, change, Step::Delete, cancel)),
                    }
                    continue;
                }
                in_flight.push(step_run(provider, scope, i, change, first, cancel));
            }
        }
        if in_flight.is_empty() {
            if waiting.is_empty() || stopping {
                break;
            }
            // A change skipped above may have made others ready (to be skipped in turn).
            if waiting.values().any(|deps| deps.iter().all(|d| finished.contains(d) || broken.contains(d))) {
                continue;
            }
            // Everything left waits on something that will never finish: should not happen
            // for a plan made by the planner, but never loop forever (counted as skipped below).
            break;
        }
        tokio::select! {
            Some((i, step, result)) = in_flight.next() => {
                let change = &plan.changes[i];
                let elapsed = step_started.get(&i).map(|s| s.elapsed()).unwrap_or_default();
                let next: Result<Option<Step>, String> = match (step, result) {
                    (Step::Rollback, result) => {
                        let why = rollback_errors.remove(&i).unwrap_or_default();
                        Err(match result {
                            Ok(_) => format!("{why}; the new copy was removed, the old one keeps serving"),
                            Err(e) => format!("{why}; removing the new copy failed too: {}", e.chain()),
                        })
                    }
                    (Step::SyncCandidate, Err(e)) => {
                        // The new copy never turned healthy: remove it, keep the old one.
                        rollback_errors.insert(i, redactor.text(&e.chain()));
                        if let Some(new) = candidates.remove(&i) {
                            in_flight.push(rollback_run(provider, scope, i, &change.address, new.id, cancel));
                            continue;
                        }
                        Err(rollback_errors.remove(&i).unwrap_or_default())
                    }
                    (_, Err(e)) => Err(redactor.text(&e.chain())),
                    (Step::Create, Ok(applied)) if change.create_before_destroy => {
                        let applied = applied.unwrap_or_default();
                        let lb = balancer_live(plan, state.state(), &change.address).and_then(|(a, lb)| {
                            balancer_with(state.state(), a, lb, &change.address, container_name_of(change))
                        });
                        match lb {
                            Some(lb) if balanced.contains(&i) => {
                                events(JobEvent::Message {
                                    text: format!("{}: new copy started, waiting for it to turn healthy", change.address),
                                });
                                candidates.insert(i, applied);
                                in_flight.push(sync_run(provider, scope, i, Step::SyncCandidate, lb, cancel));
                                Ok(None)
                            }
                            _ => {
                                step_record(state, change, Step::Create, Some(applied)).await?;
                                Ok(Some(Step::DeleteOld))
                            }
                        }
                    }
                    (Step::Create | Step::Update, Ok(applied)) => {
                        step_record(state, change, step, applied.clone()).await?;
                        let through = balanced.contains(&i).then(|| balancer_live(plan, state.state(), &change.address));
                        let lb = through.flatten().and_then(|(a, lb)| {
                            balancer_with(state.state(), a, lb, &change.address, container_name_of(change))
                        });
                        match lb {
                            Some(lb) => {
                                in_flight.push(sync_run(provider, scope, i, Step::SyncAfter, lb, cancel));
                                Ok(None)
                            }
                            None => Ok(Some(step)),
                        }
                    }
                    (Step::SyncCandidate, Ok(applied)) => {
                        balancer_record(state, applied).await?;
                        let new = candidates.remove(&i).unwrap_or_default();
                        step_record(state, change, Step::Create, Some(new)).await?;
                        events(JobEvent::Message {
                            text: format!("{}: new copy healthy and serving; draining the old one", change.address),
                        });
                        Ok(Some(Step::Drain))
                    }
                    (Step::SyncBefore, Ok(applied)) => {
                        balancer_record(state, applied).await?;
                        events(JobEvent::Message {
                            text: format!("{}: taken out of the load balancer; draining", change.address),
                        });
                        Ok(Some(Step::Drain))
                    }
                    (Step::SyncAfter, Ok(applied)) => {
                        balancer_record(state, applied).await?;
                        Ok(Some(Step::SyncAfter))
                    }
                    (Step::Drain, Ok(_)) => Ok(Some(Step::Drain)),
                    (Step::Delete | Step::DeleteOld, Ok(applied)) => {
                        if step == Step::Delete {
                            step_record(state, change, step, applied).await?;
                        }
                        Ok(Some(step))
                    }
                };
                // What follows a finished step: another step, or the end of the change.
                let follow = match next {
                    Ok(None) => continue,
                    Ok(Some(Step::Drain)) if step != Step::Drain => Some(Step::Drain),
                    Ok(Some(Step::Drain)) if change.create_before_destroy => Some(Step::DeleteOld),
                    Ok(Some(Step::Drain)) => Some(Step::Delete),
                    Ok(Some(Step::Delete)) if change.action == Action::Replace => Some(Step::Create),
                    Ok(Some(Step::DeleteOld)) if step != Step::DeleteOld => Some(Step::DeleteOld),
                    Ok(Some(_)) => None,
                    Err(error) => {
                        failed += 1;
                        broken.insert(&change.address);
                        errors.push(format!("{}: {error}", change.address));
                        events(JobEvent::OperationFailed {
                            address: change.address.clone(),
                            action: change.action,
                            error,
                            duration_ms: elapsed.as_millis() as u64,
                        });
                        continue;
                    }
                };
                match follow {
                    Some(Step::Create) if stopping => skipped += 1,
                    Some(next) => in_flight.push(step_run(provider, scope, i, change, next, cancel)),
                    None => {
                        done += 1;
                        finished.insert(&change.address);
                        let id = state
                            .state()
                            .resources
                            .get(&change.address)
                            .map(|r| r.id.clone())
                            .filter(|_| change.action != Action::Delete)
                            .unwrap_or_else(|| change.existing_id.clone().unwrap_or_default());
                        events(JobEvent::OperationDone {
                            address: change.address.clone(),
                            action: change.action,
                            id,
                            duration_ms: elapsed.as_millis() as u64,
                        });
                    }
                }
            }
            _ = cancel.cancelled(), if !stopping => {
                stopping = true;
                events(JobEvent::Message {
                    text: format!("cancel requested: finishing {} running operation(s), starting no more", in_flight.len()),
                });
            }
        }
    }
    skipped += waiting.len();
    let outcome = if stopping {
        OperationOutcome::Cancelled
    } else if failed > 0 || skipped > 0 {
        OperationOutcome::Failed
    } else {
        OperationOutcome::Succeeded
    };
    Ok(ExecutionReport { outcome, done, failed, skipped, errors, duration: started.elapsed() })
}

#[cfg(test)]
mod tests {
    //! Execution over a fake provider (the one place a fake is allowed: pure engine unit
    //! tests); state goes to a real local store in a temporary directory.

    use std::sync::Mutex;

    use async_trait::async_trait;
    use spawnit_model::plan::PlanStatus;
    use spawnit_model::resource::{DesiredResource, ImageAttrs, ObservedResource, ResourceAttrs, VolumeAttrs};
    use spawnit_model::{Id, OwnerKey, State};
    use spawnit_plan::plan_apply;
    use spawnit_store::Store;

    use super::*;

    /// Records calls; fails creating `fail`; each call takes `delay`.
    /// Also keeps the upstreams of each load balancer update and the id of each deletion.
    struct FakeProvider {
        calls: Mutex<Vec<String>>,
        fail: Option<&'static str>,
        delay: Duration,
        running: Mutex<(usize, usize)>,
        upstreams: Mutex<Vec<Vec<String>>>,
        deleted: Mutex<Vec<String>>,
    }

    impl FakeProvider {
        fn new(fail: Option<&'static str>, delay: Duration) -> FakeProvider {
            FakeProvider {
                calls: Mutex::new(Vec::new()),
                fail,
                delay,
                running: Mutex::new((0, 0)),
                upstreams: Mutex::new(Vec::new()),
                deleted: Mutex::new(Vec::new()),
            }
        }
        async fn call(&self, what: String) -> Result<(), ProviderError> {
            {
                let mut r = self.running.lock().unwrap();
                r.0 += 1;
                r.1 = r.1.max(r.0);
            }
            tokio::time::sleep(self.delay).await;
            self.running.lock().unwrap().0 -= 1;
            self.calls.lock().unwrap().push(what.clone());
            match self.fail {
                Some(f) if what.ends_with(f) => Err(ProviderError::Operation {
                    action: "create",
                    address: Address::new(ResourceKind::Volume, f),
                    source: "boom".into(),
                }),
                _ => Ok(()),
            }
        }
    }

    #[async_trait]
    impl Provider for FakeProvider {
        async fn observe(&self, _: &Scope, _: &[DesiredResource]) -> Result<Vec<ObservedResource>, ProviderError> {
            Ok(Vec::new())
        }
        async fn create(
            &self,
            _: &Scope,
            r: &DesiredResource,
            _: &str,
            _: &CancellationToken,
        ) -> Result<Applied, ProviderError> {
            self.call(format!("create {}", r.address)).await?;
            Ok(format!("id-{}", r.address.name).into())
        }
        async fn update(
            &self,
            _: &Scope,
            r: &DesiredResource,
            id: &str,
            _: &str,
            _: &CancellationToken,
        ) -> Result<Applied, ProviderError> {
            if let ResourceAttrs::LoadBalancer(lb) = &r.attrs {
                self.upstreams.lock().unwrap().push(lb.upstreams.clone());
            }
            self.call(format!("update {}", r.address)).await?;
            Ok(id.to_owned().into())
        }
        async fn delete(&self, _: &Scope, a: &Address, id: &str, _: &CancellationToken) -> Result<(), ProviderError> {
            self.deleted.lock().unwrap().push(id.to_owned());
            self.call(format!("delete {a}")).await
        }
    }

    fn volume(name: &str) -> DesiredResource {
        DesiredResource {
            address: Address::new(ResourceKind::Volume, name),
            attrs: ResourceAttrs::Volume(VolumeAttrs { name: name.into() }),
            depends_on: vec![],
        }
    }

    /// Four independent volumes and an image that depends on all of them.
    fn desired() -> Vec<DesiredResource> {
        let mut out: Vec<_> = ["a", "b", "c", "d"].into_iter().map(volume).collect();
        out.push(DesiredResource {
            address: Address::new(ResourceKind::Image, "last"),
            attrs: ResourceAttrs::Image(ImageAttrs { reference: "x".into() }),
            depends_on: out.iter().map(|r| r.address.clone()).collect(),
        });
        out
    }

    async fn writer(dir: &tempfile::TempDir) -> StateWriter {
        let store = Store::open_local(dir.path()).unwrap();
        let key = OwnerKey::service(&Id::parse("c").unwrap(), &Id::parse("s").unwrap());
        StateWriter::load(&store, key.clone()).await.unwrap()
    }

    async fn run(provider: &FakeProvider, cancel: &CancellationToken) -> (ExecutionReport, StateWriter, Vec<JobEvent>) {
        let dir = tempfile::tempdir().unwrap();
        let mut state = writer(&dir).await;
        let plan = plan_apply("s", &desired(), &State::new("l"), &[], &Redactor::default());
        assert_eq!(plan.status, PlanStatus::Drifted);
        let scope = Scope { owner: state.owner().clone(), lineage: "l".into() };
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink: EventSink = {
            let events = events.clone();
            Arc::new(move |e| events.lock().unwrap().push(e))
        };
        let report = execute(&plan, provider, &scope, &mut state, cancel, &sink, &Redactor::default()).await.unwrap();
        let events = events.lock().unwrap().clone();
        (report, state, events)
    }

    #[tokio::test]
    async fn independent_branches_run_in_parallel_and_state_follows_each_operation() {
        let provider = FakeProvider::new(None, Duration::from_millis(50));
        let (report, state, events) = run(&provider, &CancellationToken::new()).await;
        assert_eq!(report.outcome, OperationOutcome::Succeeded);
        assert_eq!(report.done, 5);
        assert_eq!(provider.running.lock().unwrap().1, 4, "the four volumes ran at once");
        assert_eq!(provider.calls.lock().unwrap().last().unwrap(), "create image.last");
        // Four volumes recorded (images are not), one state write each.
        assert_eq!(state.state().resources.len(), 4);
        assert_eq!(state.state().generation, 4);
        let done = events.iter().filter(|e| matches!(e, JobEvent::OperationDone { .. })).count();
        assert_eq!(done, 5);
    }

    #[tokio::test]
    async fn a_failure_skips_dependents_and_keeps_the_rest() {
        let provider = FakeProvider::new(Some("volume.b"), Duration::from_millis(5));
        let (report, state, events) = run(&provider, &CancellationToken::new()).await;
        assert_eq!(report.outcome, OperationOutcome::Failed);
        assert_eq!((report.done, report.failed, report.skipped), (3, 1, 1));
        assert_eq!(state.state().resources.len(), 3);
        assert!(events.iter().any(|e| matches!(e, JobEvent::Message { text } if text.contains("image.last: skipped"))));
        assert!(report.errors[0].contains("boom"), "{:?}", report.errors);
    }

    #[tokio::test]
    async fn cancel_stops_between_operations_and_records_what_was_done() {
        let provider = FakeProvider::new(None, Duration::from_millis(300));
        let cancel = CancellationToken::new();
        let trigger = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            trigger.cancel();
        });
        let (report, state, _) = run(&provider, &cancel).await;
        assert_eq!(report.outcome, OperationOutcome::Cancelled);
        // The four running volume creations finish and are recorded; the image never starts.
        assert_eq!((report.done, report.skipped), (4, 1));
        assert_eq!(state.state().resources.len(), 4);
        assert!(!provider.calls.lock().unwrap().iter().any(|c| c.contains("image")));
    }

    /// `n` replicas of `image` (each named after its revision) behind `load_balancer.main`.
    fn balanced(n: u32, image: &str) -> Vec<DesiredResource> {
        use spawnit_model::resource::{ContainerAttrs, PublishedPort};
        use spawnit_model::spec::Protocol;
        let revision = &spawnit_plan::fingerprint(&ResourceAttrs::Image(ImageAttrs { reference: image.into() }))[..6];
        let app_image = Address::new(ResourceKind::Image, "app");
        let mut out: Vec<DesiredResource> = (0..n)
            .map(|i| DesiredResource {
                address: Address::replica("app", i),
                attrs: ResourceAttrs::Container(ContainerAttrs {
                    name: format!("spawnit_c_s_app.{i}.{revision}"),
                    image: image.into(),
                    entrypoint: None,
                    command: vec![],
                    env: Default::default(),
                    ports: vec![],
                    mounts: vec![],
                    network: "spawnit_c_default".into(),
                    aliases: vec![],
                    health: None,
                    user: None,
                    docker_socket: false,
                }),
                depends_on: vec![app_image.clone()],
            })
            .collect();
        let upstreams = out.iter().filter_map(|r| container_name_of_attrs(&r.attrs)).collect();
        out.push(DesiredResource {
            address: Address::new(ResourceKind::LoadBalancer, "main"),
            attrs: ResourceAttrs::LoadBalancer(LoadBalancerAttrs {
                name: "spawnit_c_s_load_balancer".into(),
                image: "caddy:2".into(),
                network: "spawnit_c_default".into(),
                port: PublishedPort {
                    container: 8080,
                    host: 18000,
                    host_ip: "127.0.0.1".into(),
                    protocol: Protocol::Tcp,
                },
                target: "app".into(),
                upstream_port: 80,
                sticky: true,
                health_path: "/health".into(),
                upstreams,
            }),
            depends_on: (0..n).map(|i| Address::replica("app", i)).collect(),
        });
        out.push(DesiredResource {
            address: app_image,
            attrs: ResourceAttrs::Image(ImageAttrs { reference: image.into() }),
            depends_on: vec![],
        });
        out
    }

    fn container_name_of_attrs(attrs: &ResourceAttrs) -> Option<String> {
        match attrs {
            ResourceAttrs::Container(c) => Some(c.name.clone()),
            _ => None,
        }
    }

    fn upstreams_of(state: &State) -> Vec<String> {
        match &state.resources[&Address::new(ResourceKind::LoadBalancer, "main")].attrs {
            ResourceAttrs::LoadBalancer(lb) => lb.upstreams.clone(),
            other => panic!("not a load balancer: {other:?}"),
        }
    }

    /// Three replicas of `app:1` applied (ids `old-…`), then the plan and execution of the
    /// rolling update to `app:2`.
    async fn rolling_update(provider: &FakeProvider) -> (ExecutionReport, State, Vec<JobEvent>) {
        let dir = tempfile::tempdir().unwrap();
        let mut state = writer(&dir).await;
        // Both images are present locally.
        let mut observed = vec![ObservedResource {
            address: Address::new(ResourceKind::Image, "app"),
            id: "sha256:app".into(),
            liveness: spawnit_model::resource::Liveness::Present,
            fingerprint: None,
            facts: Default::default(),
        }];
        for r in balanced(3, "app:1").into_iter().filter(|r| r.address.kind != ResourceKind::Image) {
            let id = format!("old-{}", r.address.name);
            let fingerprint = spawnit_plan::fingerprint(&r.attrs);
            let mut facts = std::collections::BTreeMap::new();
            if let ResourceAttrs::LoadBalancer(lb) = &r.attrs {
                facts.insert(spawnit_model::resource::facts::UPSTREAMS.to_owned(), lb.upstreams.join(","));
            }
            observed.push(ObservedResource {
                address: r.address.clone(),
                id: id.clone(),
                liveness: spawnit_model::resource::Liveness::Running,
                fingerprint: Some(fingerprint.clone()),
                facts,
            });
            let entry = ResourceState {
                id,
                attrs: r.attrs,
                fingerprint,
                depends_on: r.depends_on,
                outputs: Default::default(),
                updated_at: Utc::now(),
            };
            state.record(&r.address, Some(entry)).await.unwrap();
        }
        let plan = plan_apply("s", &balanced(3, "app:2"), state.state(), &observed, &Redactor::default());
        let replaces = plan.changes.iter().filter(|c| c.action == Action::Replace && c.create_before_destroy);
        assert_eq!(replaces.count(), 3, "{plan:?}");
        let scope = Scope { owner: state.owner().clone(), lineage: "l".into() };
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink: EventSink = {
            let events = events.clone();
            Arc::new(move |e| events.lock().unwrap().push(e))
        };
        let report =
            execute(&plan, provider, &scope, &mut state, &CancellationToken::new(), &sink, &Redactor::default())
                .await
                .unwrap();
        let events = events.lock().unwrap().clone();
        (report, state.state().clone(), events)
    }

    #[tokio::test]
    async fn a_rolling_replace_creates_then_adds_to_the_balancer_then_deletes_the_old_copy() {
        let provider = FakeProvider::new(None, Duration::from_millis(1));
        let (report, state, events) = rolling_update(&provider).await;
        assert_eq!(report.outcome, OperationOutcome::Succeeded, "{report:?}");
        assert_eq!((report.done, report.failed, report.skipped), (4, 0, 0));
        let mut expected = Vec::new();
        for i in 0..3 {
            expected.extend([
                format!("create container.app[{i}]"),
                "update load_balancer.main".to_owned(),
                format!("delete container.app[{i}]"),
            ]);
        }
        expected.push("update load_balancer.main".to_owned());
        assert_eq!(*provider.calls.lock().unwrap(), expected);
        // The old copies were deleted, each after its new copy joined the balancer.
        assert_eq!(*provider.deleted.lock().unwrap(), ["old-app[0]", "old-app[1]", "old-app[2]"]);
        let (old, new): (Vec<String>, Vec<String>) = (
            balanced(3, "app:1").iter().filter_map(|r| container_name_of_attrs(&r.attrs)).collect(),
            balanced(3, "app:2").iter().filter_map(|r| container_name_of_attrs(&r.attrs)).collect(),
        );
        assert_eq!(
            *provider.upstreams.lock().unwrap(),
            [
                vec![new[0].clone(), old[1].clone(), old[2].clone()],
                vec![new[0].clone(), new[1].clone(), old[2].clone()],
                new.clone(),
                new.clone(),
            ]
        );
        assert_eq!(upstreams_of(&state), new);
        for i in 0..3 {
            assert_eq!(state.resources[&Address::replica("app", i)].id, format!("id-app[{i}]"));
        }
        // One replica at a time: each is done before the next starts.
        let order: Vec<String> = events
            .iter()
            .filter_map(|e| match e {
                JobEvent::OperationStarted { address, .. } => Some(format!("start {address}")),
                JobEvent::OperationDone { address, .. } => Some(format!("done {address}")),
                _ => None,
            })
            .collect();
        assert_eq!(
            order,
            [
                "start container.app[0]",
                "done container.app[0]",
                "start container.app[1]",
                "done container.app[1]",
                "start container.app[2]",
                "done container.app[2]",
                "start load_balancer.main",
                "done load_balancer.main"
            ]
        );
    }

    #[tokio::test]
    async fn a_failing_balancer_update_removes_the_new_copy_and_the_old_keeps_serving() {
        let provider = FakeProvider::new(Some("load_balancer.main"), Duration::from_millis(1));
        let (report, state, events) = rolling_update(&provider).await;
        assert_eq!(report.outcome, OperationOutcome::Failed);
        assert_eq!((report.done, report.failed, report.skipped), (0, 1, 3), "{report:?}");
        assert_eq!(
            *provider.calls.lock().unwrap(),
            ["create container.app[0]", "update load_balancer.main", "delete container.app[0]"]
        );
        // The new copy went, not the old one; state still has the old replicas and upstreams.
        assert_eq!(*provider.deleted.lock().unwrap(), ["id-app[0]"]);
        for i in 0..3 {
            assert_eq!(state.resources[&Address::replica("app", i)].id, format!("old-app[{i}]"));
        }
        let old: Vec<String> = balanced(3, "app:1").iter().filter_map(|r| container_name_of_attrs(&r.attrs)).collect();
        assert_eq!(upstreams_of(&state), old);
        assert_eq!(report.errors.len(), 1);
        assert!(report.errors[0].starts_with("container.app[0]: "), "{:?}", report.errors);
        assert!(
            report.errors[0].ends_with("the new copy was removed, the old one keeps serving"),
            "{:?}",
            report.errors
        );
        assert!(events.iter().any(|e| matches!(e,
            JobEvent::OperationFailed { address, error, .. }
                if *address == Address::replica("app", 0) && error.contains("keeps serving"))));
        for skipped in ["container.app[1]", "container.app[2]", "load_balancer.main"] {
            assert!(
                events.iter().any(
                    |e| matches!(e, JobEvent::Message { text } if text.starts_with(&format!("{skipped}: skipped")))
                ),
                "{skipped} is not reported skipped: {events:?}"
            );
        }
    }
}
