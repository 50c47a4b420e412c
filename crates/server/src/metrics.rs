//! Prometheus metrics, rendered by hand in the text exposition format: jobs by kind and status,
//! job durations, services by status, drift sweeps and their durations.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// Counters and gauges the server updates as it works.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<MetricsInner>,
}

#[derive(Default)]
struct MetricsInner {
    jobs_finished: BTreeMap<(String, String), u64>,
    job_seconds: BTreeMap<String, (f64, u64)>,
    sweeps: u64,
    sweep_seconds_total: f64,
    sweep_seconds_last: f64,
    sweep_services_last: u64,
    events_seen: u64,
    sse_lagged: u64,
}

impl Metrics {
    pub fn job_finished(&self, kind: &str, status: &str, seconds: f64) {
        let mut m = self.inner.lock().expect("metrics");
        *m.jobs_finished.entry((kind.to_owned(), status.to_owned())).or_default() += 1;
        let d = m.job_seconds.entry(kind.to_owned()).or_default();
        d.0 += seconds;
        d.1 += 1;
    }

    pub fn sweep_done(&self, seconds: f64, services: usize) {
        let mut m = self.inner.lock().expect("metrics");
        m.sweeps += 1;
        m.sweep_seconds_total += seconds;
        m.sweep_seconds_last = seconds;
        m.sweep_services_last = services as u64;
    }

    /// A job's event stream fell behind its live channel and caught up from the job's log.
    pub fn sse_lagged(&self) {
        self.inner.lock().expect("metrics").sse_lagged += 1;
    }

    pub fn docker_event_seen(&self) {
        self.inner.lock().expect("metrics").events_seen += 1;
    }

    /// The text exposition, with the current gauges passed in.
    pub fn render(
        &self,
        jobs_by_status: &BTreeMap<&str, usize>,
        services_by_status: &BTreeMap<String, usize>,
    ) -> String {
        let m = self.inner.lock().expect("metrics");
        let mut out = String::new();
        let _ = writeln!(out, "# HELP spawnit_jobs Jobs known to the server, by status.\n# TYPE spawnit_jobs gauge");
        for (status, n) in jobs_by_status {
            let _ = writeln!(out, "spawnit_jobs{{status=\"{status}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP spawnit_jobs_finished_total Jobs finished, by kind and status.\n# TYPE spawnit_jobs_finished_total counter"
        );
        for ((kind, status), n) in &m.jobs_finished {
            let _ = writeln!(out, "spawnit_jobs_finished_total{{kind=\"{kind}\",status=\"{status}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP spawnit_job_duration_seconds Time jobs ran, by kind.\n# TYPE spawnit_job_duration_seconds summary"
        );
        for (kind, (sum, count)) in &m.job_seconds {
            let _ = writeln!(out, "spawnit_job_duration_seconds_sum{{kind=\"{kind}\"}} {sum}");
            let _ = writeln!(out, "spawnit_job_duration_seconds_count{{kind=\"{kind}\"}} {count}");
        }
        let _ =
            writeln!(out, "# HELP spawnit_services Services by last observed status.\n# TYPE spawnit_services gauge");
        for (status, n) in services_by_status {
            let _ = writeln!(out, "spawnit_services{{status=\"{status}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP spawnit_drift_sweeps_total Drift sweeps done.\n# TYPE spawnit_drift_sweeps_total counter"
        );
        let _ = writeln!(out, "spawnit_drift_sweeps_total {}", m.sweeps);
        let _ = writeln!(
            out,
            "# HELP spawnit_drift_sweep_seconds Time spent sweeping.\n# TYPE spawnit_drift_sweep_seconds summary"
        );
        let _ = writeln!(out, "spawnit_drift_sweep_seconds_sum {}", m.sweep_seconds_total);
        let _ = writeln!(out, "spawnit_drift_sweep_seconds_count {}", m.sweeps);
        let _ = writeln!(
            out,
            "# HELP spawnit_drift_sweep_last_seconds Duration of the last sweep.\n# TYPE spawnit_drift_sweep_last_seconds gauge"
        );
        let _ = writeln!(out, "spawnit_drift_sweep_last_seconds {}", m.sweep_seconds_last);
        let _ = writeln!(
            out,
            "# HELP spawnit_drift_sweep_last_services Services checked by the last sweep.\n# TYPE spawnit_drift_sweep_last_services gauge"
        );
        let _ = writeln!(out, "spawnit_drift_sweep_last_services {}", m.sweep_services_last);
        let _ = writeln!(
            out,
            "# HELP spawnit_docker_events_total Docker events that triggered a check.\n# TYPE spawnit_docker_events_total counter"
        );
        let _ = writeln!(out, "spawnit_docker_events_total {}", m.events_seen);
        let _ = writeln!(
            out,
            "# HELP spawnit_sse_lagged_total Times a job's event stream fell behind and caught up from the job's log.\n# TYPE spawnit_sse_lagged_total counter"
        );
        let _ = writeln!(out, "spawnit_sse_lagged_total {}", m.sse_lagged);
        out
    }
}
