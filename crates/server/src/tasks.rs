//! The server's background tasks and what each did last: when it last ran, how long that took,
//! whether it succeeded (or its error), how often it ran and failed. The drift sweep, the
//! re-check of single services, the reconcile applies, the lease keeper, the refresh of the
//! service index, the autoscaler and the cluster monitor record every run here; `/metrics` and the admin page show the snapshot.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

/// A background task of the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Task {
    /// The periodic drift check of every service.
    DriftSweep,
    /// The drift check of the services a Docker event, a finished job or a change named.
    DriftRecheck,
    /// An apply queued by the drift monitor for a drifted `reconcile` service (its job's end).
    Reconcile,
    /// The lease keeper's check of every lease.
    LeaseKeeper,
    /// The refresh of the in-memory service index from the store.
    IndexRefresh,
    /// One round of the autoscaler over every scalable service.
    Autoscale,
    /// One check of the Swarm cluster's nodes by the cluster monitor.
    NodeCheck,
}

impl Task {
    pub const ALL: [Task; 7] = [
        Task::DriftSweep,
        Task::DriftRecheck,
        Task::Reconcile,
        Task::LeaseKeeper,
        Task::IndexRefresh,
        Task::Autoscale,
        Task::NodeCheck,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Task::DriftSweep => "drift_sweep",
            Task::DriftRecheck => "drift_recheck",
            Task::Reconcile => "reconcile",
            Task::LeaseKeeper => "lease_keeper",
            Task::IndexRefresh => "index_refresh",
            Task::Autoscale => "autoscale",
            Task::NodeCheck => "node_check",
        }
    }
}

/// What a task did last, and how often it ran.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskRun {
    /// When the last run started.
    pub at: DateTime<Utc>,
    pub duration: Duration,
    /// The last run's error, `None` when it succeeded.
    pub error: Option<String>,
    pub runs: u64,
    pub failures: u64,
}

/// The last run of every task, shared by the tasks and the pages that show them.
#[derive(Clone, Default)]
pub struct TaskRuns {
    inner: Arc<Mutex<BTreeMap<Task, TaskRun>>>,
}

impl TaskRuns {
    /// Records a run of `task` that started at `at` and took `duration`.
    pub fn record(&self, task: Task, at: DateTime<Utc>, duration: Duration, result: Result<(), String>) {
        let mut runs = self.inner.lock().expect("task runs");
        let (count, failures) = runs.get(&task).map_or((0, 0), |r| (r.runs, r.failures));
        let error = result.err();
        let failures = failures + u64::from(error.is_some());
        runs.insert(task, TaskRun { at, duration, error, runs: count + 1, failures });
    }

    /// Runs `work` as one run of `task`, recording when, how long and its result.
    pub async fn run<T, E: std::fmt::Display>(
        &self,
        task: Task,
        work: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let (at, started) = (Utc::now(), Instant::now());
        let result = work.await;
        self.record(task, at, started.elapsed(), result.as_ref().map(|_| ()).map_err(|e| e.to_string()));
        result
    }

    /// Every task that has run, in [`Task::ALL`] order.
    pub fn snapshot(&self) -> Vec<(Task, TaskRun)> {
        self.inner.lock().expect("task runs").iter().map(|(t, r)| (*t, r.clone())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_count_failures_and_keep_the_last_error() {
        let runs = TaskRuns::default();
        let at = Utc::now();
        runs.record(Task::LeaseKeeper, at, Duration::from_millis(3), Ok(()));
        runs.record(Task::LeaseKeeper, at, Duration::from_millis(5), Err("the store did not answer".into()));
        let snapshot = runs.snapshot();
        assert_eq!(snapshot.len(), 1);
        let (task, run) = &snapshot[0];
        assert_eq!(*task, Task::LeaseKeeper);
        assert_eq!((run.runs, run.failures), (2, 1));
        assert_eq!(run.error.as_deref(), Some("the store did not answer"));
        assert_eq!(run.duration, Duration::from_millis(5));
    }
}
