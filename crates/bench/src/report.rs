//! The printed result: the machine, one markdown table (each figure, its baseline from the same
//! run, their ratio, and the goal as information), and notes on how to read it and on
//! anything unexpected the run saw.

use std::fmt::{self, Write as _};
use std::time::Duration;

use crate::Args;
use crate::machine::Machine;
use crate::measure::{ApplyVersusRun, Loaded, PlanLatency, SweepPoint};
use crate::reaction::Reaction;
use crate::serve::Rss;
use crate::stats::{line_fit, median, mib, ms, quantile, ratio};

/// Services the sweep cost is extrapolated to.
const EXTRAPOLATED_SERVICES: f64 = 1000.0;

pub struct Report {
    pub args: Args,
    pub machine: Machine,
    pub plan: PlanLatency,
    pub apply: ApplyVersusRun,
    pub sweep: Vec<SweepPoint>,
    pub idle: Rss,
    pub loaded: Loaded,
    pub reaction: Reaction,
    /// The whole run, set once it is over.
    pub duration: Duration,
    /// What the final cleanup removed.
    pub cleanup: String,
}

/// One table row.
pub struct Row {
    measurement: String,
    spawnit: String,
    baseline: String,
    ratio: String,
    goal: String,
}

impl Row {
    pub fn new(measurement: impl Into<String>, spawnit: impl Into<String>) -> Row {
        Row {
            measurement: measurement.into(),
            spawnit: spawnit.into(),
            baseline: "—".into(),
            ratio: "—".into(),
            goal: String::new(),
        }
    }

    pub fn against(mut self, baseline: String, ratio: String) -> Row {
        self.baseline = baseline;
        self.ratio = ratio;
        self
    }

    pub fn goal(mut self, goal: &str) -> Row {
        self.goal = goal.into();
        self
    }
}

impl Report {
    fn rows(&self) -> Vec<Row> {
        let mut rows = Vec::new();
        let a = &self.args;

        let (plan, list) = (&self.plan.plan, &self.plan.list);
        for (label, q, goal) in [("p50", 0.5, "p50 ≤ 5 ms"), ("p99", 0.99, "")] {
            let (p, l) = (quantile(plan, q), quantile(list, q));
            rows.push(
                Row::new(format!("1. plan latency {label}, `hello` (1 container), {} plans", plan.len()), ms(p))
                    .against(format!("{} (1 `list_containers` by label)", ms(l)), ratio(p, l))
                    .goal(goal),
            );
        }

        let (s, d) = (median(&self.apply.spawnit), median(&self.apply.docker));
        rows.push(
            Row::new(format!("2. `spawnit apply` wall, median of {} (whole process)", self.apply.spawnit.len()), ms(s))
                .against(format!("{} (`docker run -d`)", ms(d)), ratio(s, d))
                .goal("≤ 1.15× `docker run -d`"),
        );

        for p in &self.sweep {
            rows.push(
                Row::new(format!("3. drift sweep CPU, N = {} (mean of {})", p.services, a.sweeps), ms(p.cpu))
                    .against(format!("{} (naive: {} plans)", ms(p.naive_cpu), p.services), ratio(p.cpu, p.naive_cpu)),
            );
        }
        let (cpu, naive_cpu) = self.sweep_extrapolated(|p| p.cpu, |p| p.naive_cpu);
        rows.push(
            Row::new("3. drift sweep CPU, N = 1000 (extrapolated)", ms(cpu))
                .against(format!("{} (naive, extrapolated)", ms(naive_cpu)), ratio(cpu, naive_cpu))
                .goal("≤ 1 CPU-second"),
        );
        for p in &self.sweep {
            rows.push(
                Row::new(format!("3. drift sweep wall, N = {} (mean of {})", p.services, a.sweeps), ms(p.wall))
                    .against(format!("{} (naive)", ms(p.naive_wall)), ratio(p.wall, p.naive_wall)),
            );
        }
        let (wall, naive_wall) = self.sweep_extrapolated(|p| p.wall, |p| p.naive_wall);
        rows.push(
            Row::new("3. drift sweep wall, N = 1000 (extrapolated)", ms(wall))
                .against(format!("{} (naive, extrapolated)", ms(naive_wall)), ratio(wall, naive_wall)),
        );

        let l = &self.loaded;
        rows.push(
            Row::new(
                "4. server RSS, idle (empty store, after its first sweep; peak)",
                format!("{} (peak {})", mib(self.idle.current_kib), mib(self.idle.peak_kib)),
            )
            .goal("≤ 40 MB idle"),
        );
        rows.push(Row::new(
            format!("4. server RSS, {} services (after its first sweep)", l.services),
            mib(l.rss_swept.current_kib),
        ));
        rows.push(Row::new(
            format!("4. server RSS, {} services (after the API requests; peak)", l.services),
            format!("{} (peak {})", mib(l.rss_after_api.current_kib), mib(l.rss_after_api.peak_kib)),
        ));

        for (label, q) in [("p50", 0.5), ("p99", 0.99)] {
            let (s, h) = (quantile(&l.list, q), quantile(&l.healthz, q));
            rows.push(
                Row::new(
                    format!("5. `GET /api/services` {label}, {} services, {} requests", l.services, l.list.len()),
                    ms(s),
                )
                .against(format!("{} (`GET /healthz`)", ms(h)), ratio(s, h)),
            );
        }

        let r = &self.reaction;
        for (label, q) in [("median", 0.5), ("max", 1.0)] {
            let (c, o) = (quantile(&r.cancel, q), quantile(&r.operation, q));
            rows.push(
                Row::new(format!("6. cancel → `finished` {label}, {} cancels", r.cancel.len()), ms(c))
                    .against(format!("{} (one resource operation, {label})", ms(o)), ratio(c, o))
                    .goal("< 5 s"),
            );
        }
        for (label, q) in [("median", 0.5), ("max", 1.0)] {
            let (d, e) = (quantile(&r.drift, q), quantile(&r.docker_event, q));
            rows.push(
                Row::new(format!("6. `docker rm -f` → drifted event {label}, {} removals", r.drift.len()), ms(d))
                    .against(format!("{} (Docker's own destroy event)", ms(e)), ratio(d, e))
                    .goal("< 2 s"),
            );
        }
        rows
    }

    /// SpawnIt's and the baseline's figure at 1000 services, each from the least-squares line
    /// through the measured points.
    fn sweep_extrapolated(
        &self,
        ours: impl Fn(&SweepPoint) -> Duration,
        theirs: impl Fn(&SweepPoint) -> Duration,
    ) -> (Duration, Duration) {
        let at = |f: &dyn Fn(&SweepPoint) -> Duration| {
            let points: Vec<(f64, f64)> = self.sweep.iter().map(|p| (p.services as f64, f(p).as_secs_f64())).collect();
            let (intercept, slope) = line_fit(&points);
            Duration::from_secs_f64((intercept + slope * EXTRAPOLATED_SERVICES).max(0.0))
        };
        (at(&ours), at(&theirs))
    }

    /// Things a reader should know that the table does not show.
    fn oddities(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.plan.not_compliant > 0 {
            out.push(format!(
                "{} of the timed plans did not find the probe service compliant",
                self.plan.not_compliant
            ));
        }
        for p in &self.sweep {
            if p.not_compliant > 0 {
                out.push(format!("the sweep at N = {} found {} service(s) not compliant", p.services, p.not_compliant));
            }
        }
        if let Some(p) = self.sweep.iter().find(|p| p.foreign_objects > 0) {
            out.push(format!(
                "`observe_world` also listed {} Docker object(s) of other SpawnIt clients on this engine (other \
                 stores' services): a sweep lists everything SpawnIt labelled, and plans only the store's services",
                p.foreign_objects
            ));
        }
        out
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "## SpawnIt benchmarks\n")?;
        writeln!(f, "Machine: {}.", self.machine)?;
        writeln!(
            f,
            "Run: `--services {} --runs {} --plan-runs {} --requests {} --sweeps {}`, {:.0} s in all.\n",
            self.args.services,
            self.args.runs,
            self.args.plan_runs,
            self.args.requests,
            self.args.sweeps,
            self.duration.as_secs_f64()
        )?;
        f.write_str(&table(&self.rows()))?;
        writeln!(f)?;
        let (intercept, slope) =
            line_fit(&self.sweep.iter().map(|p| (p.services as f64, p.cpu.as_secs_f64())).collect::<Vec<_>>());
        let notes = [
            "Ratio = SpawnIt ÷ baseline, both measured in this run (below 1×: SpawnIt is faster). Goals are the \
             issue's, printed as information: nothing here passes or fails."
                .to_owned(),
            "1: `Engine::service_plan` of a running, compliant service: store reads (spec, state, network), the \
             network's observation and the service's (containers, volumes, image) and the pure planner. Baseline: \
             one bollard `list_containers` with the service's label filter, alternated with the plans."
                .to_owned(),
            "2: both whole CLI processes, fresh free port each run: `spawnit apply S --auto-approve` (the spec \
             created before, destroyed after, untimed) and `docker run -d` of the same image, command, client \
             network, loopback port and restart policy (`docker rm -f` after, untimed), alternating which goes \
             first, after one warm-up of each."
                .to_owned(),
            format!(
                "3: CPU = this process's user + system time (getrusage) for `observe_world()` + `Engine::sweep`; the \
                 Docker daemon's CPU is not counted. Baseline: the naive sweep, one `service_plan` per service, as \
                 the original design re-planned every service. N = 1000 is extrapolated linearly (least squares \
                 through the measured N: CPU ≈ {} + {} × N), not measured.",
                ms(Duration::from_secs_f64(intercept.max(0.0))),
                ms(Duration::from_secs_f64(slope.max(0.0)))
            ),
            format!(
                "4: VmRSS of `spawnit serve` from /proc/<pid>/status (MiB), no baseline; peak = VmHWM, the most it \
                 was resident since it started. The server's own first sweep of {} services took {}.",
                self.loaded.services,
                self.loaded.server_sweep_seconds.map(|s| ms(Duration::from_secs_f64(s))).unwrap_or_else(|| "?".into())
            ),
            "5: keep-alive HTTP on 127.0.0.1 with the admin token; the whole body is read. `/api/services` reads \
             every spec and state from the store and the monitor's statuses."
                .to_owned(),
            format!(
                "6: on a `spawnit serve` of its own store, from an HTTP client. Cancel: `POST /api/jobs/{{id}}/cancel` \
                 sent once the first operation of an apply of {} containers in a row is done, until the job's \
                 `finished` event on its SSE stream; baseline: one container operation of those applies (a cancel \
                 stops between operations). Drift: a service's container removed through the Docker API until the \
                 `service_status drifted` event on `/api/events`; baseline: Docker's own `destroy` event for it.",
                crate::reaction::CHAIN
            ),
        ];
        for note in notes {
            writeln!(f, "- {note}")?;
        }
        for odd in self.oddities() {
            writeln!(f, "- Seen: {odd}.")?;
        }
        writeln!(f, "- Cleanup: {}.", self.cleanup)
    }
}

/// A markdown table with padded columns.
pub fn table(rows: &[Row]) -> String {
    let header = ["measurement", "SpawnIt", "baseline (same run)", "ratio", "goal (information)"];
    let cells: Vec<[&str; 5]> =
        rows.iter().map(|r| [r.measurement.as_str(), &r.spawnit, &r.baseline, &r.ratio, &r.goal]).collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: [&str; 5]| {
        let mut s = String::from("|");
        for (c, w) in cells.iter().zip(widths) {
            let _ = write!(s, " {c}{} |", " ".repeat(w - c.chars().count()));
        }
        s.push('\n');
        s
    };
    let mut out = line(header);
    out.push('|');
    for w in widths {
        let _ = write!(out, "{}|", "-".repeat(w + 2));
    }
    out.push('\n');
    for row in cells {
        out.push_str(&line(row));
    }
    out
}
