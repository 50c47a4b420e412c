//! The server's background tasks and what each did last: when it last ran, how long that took,
//! whether it succeeded (or its error), how often it ran and failed. The drift sweep, the
//! re-check of single services, the reconcile applies, the lease keeper and the refresh of the
//! service index record every run here; `/metrics` and the admin page show the snapshot.

use std::collections::BTreeMap;
use std::fmt::Write as _;
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
}

impl Task {
    pub const ALL: [Task; 5] =
        [Task::DriftSweep, Task::DriftRecheck, Task::Reconcile, Task::LeaseKeeper, Task::IndexRefresh];

    pub fn as_str(self) -> &'static str {
        match self {
            Task::DriftSweep => "drift_sweep",
            Task::DriftRecheck => "drift_recheck",
            Task::Reconcile => "reconcile",
            Task::LeaseKeeper => "lease_keeper",
            Task::IndexRefresh => "index_refresh",
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

    /// The Prometheus text exposition of the snapshot (tasks that never ran are left out).
    pub fn prometheus(&self) -> String {
        let snapshot = self.snapshot();
        let mut out = String::new();
        let families: [(&str, &str, &str, fn(&TaskRun) -> String); 5] = [
            (
                "spawnit_task_last_run_timestamp_seconds",
                "gauge",
                "When the task's last run started (Unix time).",
                |r| format!("{:.3}", r.at.timestamp_millis() as f64 / 1000.0),
            ),
            ("spawnit_task_last_duration_seconds", "gauge", "How long the task's last run took.", |r| {
                r.duration.as_secs_f64().to_string()
            }),
            ("spawnit_task_last_ok", "gauge", "1 when the task's last run succeeded, 0 when it failed.", |r| {
                u8::from(r.error.is_none()).to_string()
            }),
            ("spawnit_task_runs_total", "counter", "Runs of the task.", |r| r.runs.to_string()),
            ("spawnit_task_failures_total", "counter", "Failed runs of the task.", |r| r.failures.to_string()),
        ];
        for (name, kind, help, value) in families {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (task, run) in &snapshot {
                let _ = writeln!(out, "{name}{{task=\"{}\"}} {}", task.as_str(), value(run));
            }
        }
        out
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
        let text = runs.prometheus();
        assert!(text.contains("spawnit_task_last_ok{task=\"lease_keeper\"} 0"), "{text}");
        assert!(text.contains("spawnit_task_failures_total{task=\"lease_keeper\"} 1"), "{text}");
        assert!(text.contains("spawnit_task_runs_total{task=\"lease_keeper\"} 2"), "{text}");
    }
}
