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
use spawnit_model::resource::{Address, ResourceKind};
use spawnit_model::{JobEvent, OperationOutcome, Redactor, ResourceState};
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

/// One provider call of a change; a replace is a delete step then a create step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Create,
    Update,
    Delete,
}

type StepFuture<'a> = Pin<Box<dyn Future<Output = (usize, Step, Result<Option<Applied>, ProviderError>)> + Send + 'a>>;

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
            (Step::Delete, _) => match change.existing_id.as_deref() {
                Some(id) => provider.delete(scope, &change.address, id, cancel).await.map(|_| None),
                None => Ok(None),
            },
            (_, None) => Ok(None),
        };
        (index, step, result)
    })
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
            let applied = Applied { id: id.clone(), outputs: c.outputs.clone() };
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
                let first = match change.action {
                    Action::Create => Step::Create,
                    Action::Update => Step::Update,
                    Action::Replace | Action::Delete => Step::Delete,
                    Action::NoOp => continue,
                };
                events(JobEvent::OperationStarted { address: change.address.clone(), action: change.action });
                step_started.insert(i, Instant::now());
                in_flight.push(step_run(provider, scope, i, change, first, cancel));
            }
        }
        if in_flight.is_empty() {
            if waiting.is_empty() || stopping {
                break;
            }
            // Everything left waits on something that will never finish: should not happen
            // for a plan made by the planner, but never loop forever.
            skipped += waiting.len();
            break;
        }
        tokio::select! {
            Some((i, step, result)) = in_flight.next() => {
                let change = &plan.changes[i];
                let elapsed = step_started.get(&i).map(|s| s.elapsed()).unwrap_or_default();
                match result {
                    Ok(id) => {
                        step_record(state, change, step, id.clone()).await?;
                        if change.action == Action::Replace && step == Step::Delete {
                            if stopping {
                                skipped += 1;
                                continue;
                            }
                            in_flight.push(step_run(provider, scope, i, change, Step::Create, cancel));
                            continue;
                        }
                        done += 1;
                        finished.insert(&change.address);
                        events(JobEvent::OperationDone {
                            address: change.address.clone(),
                            action: change.action,
                            id: id.map(|a| a.id).unwrap_or_else(|| change.existing_id.clone().unwrap_or_default()),
                            duration_ms: elapsed.as_millis() as u64,
                        });
                    }
                    Err(e) => {
                        failed += 1;
                        broken.insert(&change.address);
                        let error = redactor.text(&e.chain());
                        errors.push(format!("{}: {error}", change.address));
                        events(JobEvent::OperationFailed {
                            address: change.address.clone(),
                            action: change.action,
                            error,
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
    struct FakeProvider {
        calls: Mutex<Vec<String>>,
        fail: Option<&'static str>,
        delay: Duration,
        running: Mutex<(usize, usize)>,
    }

    impl FakeProvider {
        fn new(fail: Option<&'static str>, delay: Duration) -> FakeProvider {
            FakeProvider { calls: Mutex::new(Vec::new()), fail, delay, running: Mutex::new((0, 0)) }
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
            self.call(format!("update {}", r.address)).await?;
            Ok(id.to_owned().into())
        }
        async fn delete(&self, _: &Scope, a: &Address, _: &str, _: &CancellationToken) -> Result<(), ProviderError> {
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
}
