//! Scalable services end to end (issue 11) on the real Docker engine through the real `spawnit`
//! binary: the `web-app` template's replicas behind the real Caddy load balancer, sticky
//! sessions, a replica removed outside SpawnIt, rolling updates under a request loop (and one
//! that never turns healthy), scaling out and in, and bad scaling input refused with nothing
//! stored. The app is `spawnit-test/webapp` (built by scripts/test-images.sh): it answers
//! `Hostname: <container hostname>` and `Version: <1|2>`.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const SERVICE: &str = "shop";

/// Fails the test (never skips it) when an image of these tests is missing.
fn images_required() {
    for image in ["spawnit-test/webapp:1", "spawnit-test/webapp:2", "spawnit-test/webapp:unhealthy", "caddy:2"] {
        let found = docker(&["image", "ls", "-q", image]);
        assert!(!found.trim().is_empty(), "test image {image} is missing: run scripts/test-images.sh");
    }
}

/// A world with the test images checked.
fn world() -> World {
    let w = World::new();
    images_required();
    w
}

/// Creates `web-app` as `shop` with `replicas` of `image` on `port` and applies it (its network
/// first).
fn deploy(w: &World, image: &str, replicas: u32, port: u16) -> Run {
    w.ok(&[
        "create",
        "web-app",
        SERVICE,
        "--set",
        &format!("image={image}"),
        "--set",
        &format!("replicas={replicas}"),
        "--set",
        &format!("http_port={port}"),
    ]);
    w.ok(&["network", "apply", "default", "--auto-approve"]);
    let applied = w.ok(&["apply", SERVICE, "--auto-approve"]);
    assert!(applied.stdout.contains(&format!("http://127.0.0.1:{port}")), "{applied}");
    wait_answering(port);
    applied
}

/// One HTTP answer.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    /// The `Hostname:` the app printed (its container's hostname: the short container id).
    fn hostname(&self) -> Option<&str> {
        self.body.lines().find_map(|l| l.strip_prefix("Hostname: ")).map(str::trim)
    }
    fn version(&self) -> Option<&str> {
        self.body.lines().find_map(|l| l.strip_prefix("Version: ")).map(str::trim)
    }
    /// The sticky-session cookie the load balancer set, as `name=value`.
    fn sticky_cookie(&self) -> Option<String> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
            .find_map(|(_, v)| v.split(';').next().filter(|c| c.starts_with("spawnit_lb=")).map(str::to_owned))
    }
    /// A success answered by a replica: 200 with a hostname and a version.
    fn served(self) -> Result<Answer, String> {
        if self.status == 200 && self.hostname().is_some() && self.version().is_some() {
            Ok(self)
        } else {
            Err(format!("answer {} {:?}", self.status, self.body))
        }
    }
}

/// One `GET path` through the load balancer (HTTP/1.0, one connection), with a cookie if given.
/// No retry: an error is a failed request.
fn get(port: u16, cookie: Option<&str>) -> Result<Answer, String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(15))).map_err(|e| e.to_string())?;
    let cookie = cookie.map(|c| format!("Cookie: {c}\r\n")).unwrap_or_default();
    write!(s, "GET / HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n{cookie}\r\n").map_err(|e| format!("send: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| format!("no header end in {text:?}"))?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status line in {text:?}"))?;
    let headers =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned())).collect();
    Ok(Answer { status, headers, body: body.to_owned() })
}

/// A replica's answer through the load balancer.
fn served(port: u16, cookie: Option<&str>) -> Result<Answer, String> {
    get(port, cookie).and_then(Answer::served)
}

/// Polls until the load balancer answers with a replica (a deadline, not a speed check).
fn wait_answering(port: u16) -> Answer {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    while Instant::now() < deadline {
        match served(port, None) {
            Ok(a) => return a,
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("the load balancer on port {port} never answered with a replica: {last}");
}

/// Requests without a cookie until every hostname of `expected` answered; panics past the
/// deadline, or on a failed request or a hostname not expected.
fn wait_all_reached(port: u16, expected: &BTreeSet<String>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = BTreeSet::new();
    while Instant::now() < deadline {
        let answer = served(port, None).unwrap_or_else(|e| panic!("a request failed: {e}"));
        let host = answer.hostname().unwrap_or_default().to_owned();
        assert!(expected.contains(&host), "{host} answered, not one of {expected:?}");
        seen.insert(host);
        if seen == *expected {
            return;
        }
    }
    panic!("only {seen:?} of {expected:?} answered through the load balancer");
}

/// The service's containers: short id (what the app reports as its hostname) → resource
/// address (`container.app[0]`, `load_balancer.main`).
fn containers(w: &World) -> BTreeMap<String, String> {
    let out = docker(&[
        "ps",
        "-a",
        "--filter",
        &format!("label=spawnit.client={}", w.client),
        "--filter",
        &format!("label=spawnit.service={SERVICE}"),
        "--format",
        "{{.ID}} {{.Label \"spawnit.resource\"}}",
    ]);
    out.lines().filter_map(|l| l.split_once(' ')).map(|(id, a)| (id[..12].to_owned(), a.to_owned())).collect()
}

/// The short ids of the app's replicas.
fn replica_ids(w: &World) -> BTreeSet<String> {
    containers(w).into_iter().filter(|(_, a)| a.starts_with("container.app[")).map(|(id, _)| id).collect()
}

/// The plan's line for an address (`+ container.app[0]     create   (…)`).
fn plan_line<'a>(plan: &'a Run, prefix: &str) -> &'a str {
    plan.stdout
        .lines()
        .find(|l| l.trim_start().starts_with(prefix))
        .unwrap_or_else(|| panic!("no plan line starting with {prefix:?}:\n{plan}"))
}

/// The upstreams of the load balancer's Caddyfile, read inside its container.
fn caddy_upstreams(w: &World) -> Vec<String> {
    let name = format!("spawnit_{}_{SERVICE}_load_balancer", w.client);
    let file = docker(&["exec", &name, "cat", "/etc/caddy/Caddyfile"]);
    file.lines()
        .filter_map(|l| l.trim().strip_prefix("to "))
        .flat_map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .collect()
}

fn destroy_leaves_nothing(w: &World) {
    let destroyed = w.ok(&["destroy", SERVICE, "--auto-approve"]);
    assert!(destroyed.stdout.contains("load_balancer.main: Destroyed"), "{destroyed}");
    assert_eq!(w.labelled(Some(SERVICE)), Vec::<String>::new(), "every container of the service is gone");
    w.ok(&["delete", SERVICE]);
    w.ok(&["network", "destroy", "default", "--auto-approve"]);
    assert_eq!(w.labelled(None), Vec::<String>::new());
}

/// One request of a [`Load`]: when it ended, and the replica's hostname and version or why it
/// failed.
type Sample = (Instant, Result<(String, String), String>);

/// A request loop through the load balancer, without a cookie, in a thread of its own until
/// stopped: every answer or failure is kept with its time.
struct Load {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    thread: Option<JoinHandle<()>>,
}

impl Load {
    fn start(port: u16) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, samples) = (stop.clone(), samples.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let outcome = served(port, None).map(|a| {
                        (a.hostname().unwrap_or_default().to_owned(), a.version().unwrap_or_default().to_owned())
                    });
                    samples.lock().unwrap().push((Instant::now(), outcome));
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        };
        Load { stop, samples, thread: Some(thread) }
    }

    /// The samples taken since `from`.
    fn since(&self, from: Instant) -> Vec<Result<(String, String), String>> {
        self.samples.lock().unwrap().iter().filter(|(at, _)| *at >= from).map(|(_, o)| o.clone()).collect()
    }

    /// Failures since `from`, and how many answers each version gave.
    fn tally(&self, from: Instant) -> (Vec<String>, BTreeMap<String, usize>) {
        let mut failures = Vec::new();
        let mut versions = BTreeMap::new();
        for outcome in self.since(from) {
            match outcome {
                Ok((_, version)) => *versions.entry(version).or_default() += 1,
                Err(e) => failures.push(e),
            }
        }
        (failures, versions)
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn web_app_three_replicas_sticky_sessions_and_drift_repair() {
    let w = world();
    let port = free_port();
    w.ok(&[
        "create",
        "web-app",
        SERVICE,
        "--set",
        "image=spawnit-test/webapp:1",
        "--set",
        "replicas=3",
        "--set",
        &format!("http_port={port}"),
    ]);
    w.ok(&["network", "apply", "default", "--auto-approve"]);
    let plan = w.run(&["plan", SERVICE, "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{plan}");
    for address in ["container.app[0]", "container.app[1]", "container.app[2]", "load_balancer.main"] {
        assert!(plan_line(&plan, &format!("+ {address} ")).contains("create"), "{plan}");
    }
    assert!(!plan.stdout.contains("container.app[3]"), "{plan}");
    let applied = w.ok(&["apply", SERVICE, "--auto-approve"]);
    assert!(applied.stdout.contains("load_balancer.main: Created"), "{applied}");
    wait_answering(port);
    let replicas = replica_ids(&w);
    assert_eq!(replicas.len(), 3, "{:?}", containers(&w));
    // Only the load balancer publishes a host port.
    for (id, address) in containers(&w) {
        let ports = docker(&["port", &id]);
        assert_eq!(ports.trim().is_empty(), address != "load_balancer.main", "{address}: {ports}");
    }

    // Without a cookie, requests spread; with the cookie they stay on one replica.
    let mut spread = BTreeSet::new();
    for _ in 0..40 {
        let answer = served(port, None).expect("a request without a cookie");
        spread.insert(answer.hostname().unwrap().to_owned());
    }
    assert!(spread.len() >= 2, "40 requests without a cookie all reached {spread:?}");
    assert!(spread.is_subset(&replicas), "{spread:?} are not the replicas {replicas:?}");
    let first = served(port, None).expect("a first request");
    let cookie = first.sticky_cookie().unwrap_or_else(|| panic!("no spawnit_lb cookie set: {first:?}"));
    let sticky_host = first.hostname().unwrap().to_owned();
    let mut sticky = BTreeSet::new();
    for _ in 0..40 {
        sticky.insert(served(port, Some(&cookie)).expect("a request with the cookie").hostname().unwrap().to_owned());
    }
    assert_eq!(sticky, BTreeSet::from([sticky_host.clone()]), "40 requests with one cookie");

    let show = w.ok(&["show", SERVICE]);
    assert!(show.stdout.contains(&format!("http://127.0.0.1:{port}")), "{show}");
    for i in 0..3 {
        assert!(show.stdout.contains(&format!("container.app[{i}]")), "{show}");
    }

    // The sticky replica removed outside SpawnIt: the same cookie keeps being served elsewhere.
    let address = containers(&w).remove(&sticky_host).expect("the sticky replica is a container of the service");
    assert!(address.starts_with("container.app["), "{address}");
    docker(&["rm", "-f", &sticky_host]);
    for n in 0..40 {
        let answer = served(port, Some(&cookie))
            .unwrap_or_else(|e| panic!("request {n} with the cookie of the removed replica failed: {e}"));
        assert_ne!(answer.hostname(), Some(sticky_host.as_str()), "the removed replica answered");
    }

    let plan = w.run(&["plan", SERVICE, "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{plan}");
    let line = plan_line(&plan, &format!("+ {address} "));
    assert!(line.contains("create") && line.contains("removed outside SpawnIt"), "{plan}");
    assert!(plan.stdout.contains("Plan: 1 to add, 0 to change, 0 to replace, 0 to destroy"), "{plan}");
    let repaired = w.ok(&["apply", SERVICE, "--auto-approve"]);
    assert!(repaired.stdout.contains(&format!("{address}: Created")), "{repaired}");
    let plan = w.run(&["plan", SERVICE, "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{plan}");
    assert!(plan.stdout.contains("is compliant"), "{plan}");
    let replicas = replica_ids(&w);
    assert_eq!(replicas.len(), 3, "{:?}", containers(&w));
    assert!(!replicas.contains(&sticky_host));
    // The new copy takes traffic again.
    wait_all_reached(port, &replicas);

    destroy_leaves_nothing(&w);
}

#[test]
fn rolling_update_loses_no_request_and_an_unhealthy_copy_is_rolled_back() {
    let w = world();
    let port = free_port();
    deploy(&w, "spawnit-test/webapp:1", 3, port);
    let load = Load::start(port);

    // Rolling update to version 2 under the request loop.
    w.ok(&["update", SERVICE, "--set", "image=spawnit-test/webapp:2"]);
    let plan = w.run(&["plan", SERVICE, "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{plan}");
    for i in 0..3 {
        let line = plan_line(&plan, &format!("-/+ container.app[{i}] "));
        assert!(line.contains("image changed spawnit-test/webapp:1 → spawnit-test/webapp:2"), "{plan}");
        assert!(line.contains("rolling"), "{plan}");
    }
    assert!(plan_line(&plan, "~ load_balancer.main ").contains("update"), "never replaced: {plan}");
    let started = Instant::now();
    let rolled = w.ok(&["apply", SERVICE, "--auto-approve"]);
    let (failures, versions) = load.tally(started);
    assert_eq!(failures, Vec::<String>::new(), "requests failed during the rolling update:\n{rolled}");
    assert!(versions.values().sum::<usize>() >= 10, "the request loop hardly ran: {versions:?}");

    // One replace at a time: each new copy serves before the next replica starts; the load
    // balancer's own change comes last.
    let lines: Vec<&str> = rolled.stdout.lines().collect();
    let at = |needle: &str| {
        lines.iter().position(|l| l.contains(needle)).unwrap_or_else(|| panic!("no line with {needle:?}:\n{rolled}"))
    };
    let mut previous_done = 0;
    for i in 0..3 {
        let start = at(&format!("container.app[{i}]: Replacing..."));
        let healthy = at(&format!("container.app[{i}]: new copy healthy and serving"));
        let done = at(&format!("container.app[{i}]: Replaced after"));
        assert!(previous_done <= start && start < healthy && healthy < done, "replica {i} out of order:\n{rolled}");
        previous_done = done;
    }
    assert!(at("load_balancer.main:") > previous_done, "the balancer changed before the last replica:\n{rolled}");
    assert!(!rolled.stdout.contains("load_balancer.main: Destroying"), "{rolled}");

    // Afterwards every answer is version 2, and the plan is compliant.
    for _ in 0..20 {
        assert_eq!(served(port, None).expect("a request after the update").version(), Some("2"));
    }
    assert_eq!(w.run(&["plan", SERVICE, "--detailed-exitcode"]).code, 0);
    let serving = replica_ids(&w);
    assert_eq!(serving.len(), 3);

    // A version that never turns healthy: the first new copy is removed again, the job fails
    // and the old replicas keep serving.
    w.ok(&["update", SERVICE, "--set", "image=spawnit-test/webapp:unhealthy"]);
    let started = Instant::now();
    let failed = w.run(&["apply", SERVICE, "--auto-approve"]);
    assert_ne!(failed.code, 0, "{failed}");
    let all = failed.all();
    assert!(all.contains("container.app[0]") && all.contains("keeps serving"), "{failed}");
    assert!(all.contains("never answered GET /health"), "{failed}");
    for skipped in ["container.app[1]", "container.app[2]", "load_balancer.main"] {
        assert!(all.contains(&format!("{skipped}: skipped, ")), "{failed}");
    }
    assert!(all.contains("0 done, 1 failed, 3 skipped"), "{failed}");
    let (failures, versions) = load.tally(started);
    assert_eq!(failures, Vec::<String>::new(), "requests failed during the failed rollout:\n{failed}");
    assert_eq!(versions.keys().collect::<Vec<_>>(), ["2"], "only version 2 answered: {versions:?}");
    assert_eq!(replica_ids(&w), serving, "the old replicas are the ones running, nothing left over");
    for _ in 0..20 {
        assert_eq!(served(port, None).expect("a request after the failed rollout").version(), Some("2"));
    }
    let plan = w.run(&["plan", SERVICE, "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{plan}");
    for i in 0..3 {
        assert!(plan_line(&plan, &format!("-/+ container.app[{i}] ")).contains("spawnit-test/webapp:unhealthy"));
    }
    assert!(plan.stdout.contains("0 to add, 1 to change, 3 to replace, 0 to destroy"), "{plan}");
    drop(load);

    destroy_leaves_nothing(&w);
}

#[test]
fn scale_changes_replica_count_with_reasons() {
    let w = world();
    let port = free_port();
    deploy(&w, "spawnit-test/webapp:1", 3, port);

    w.ok(&["update", SERVICE, "--set", "replicas=4"]);
    let plan = w.run(&["plan", SERVICE, "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{plan}");
    let line = plan_line(&plan, "+ container.app[3] ");
    assert!(line.contains("create") && line.contains("scale app 3 → 4"), "{plan}");
    let line = plan_line(&plan, "~ load_balancer.main ");
    assert!(line.contains("update") && line.contains("upstream") && line.contains("added"), "{plan}");
    assert!(plan.stdout.contains("Plan: 1 to add, 1 to change, 0 to replace, 0 to destroy"), "{plan}");
    w.ok(&["apply", SERVICE, "--auto-approve"]);
    let four = replica_ids(&w);
    assert_eq!(four.len(), 4, "{:?}", containers(&w));
    wait_all_reached(port, &four);
    assert_eq!(caddy_upstreams(&w).len(), 4);

    // Scale in under a request loop: each replica leaves the balancer before it goes.
    w.ok(&["update", SERVICE, "--set", "replicas=2"]);
    let plan = w.run(&["plan", SERVICE, "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{plan}");
    for i in [2, 3] {
        let line = plan_line(&plan, &format!("- container.app[{i}] "));
        assert!(line.contains("delete") && line.contains("scale app 4 → 2"), "{plan}");
    }
    let line = plan_line(&plan, "~ load_balancer.main ");
    assert!(line.contains("update") && line.contains("removed"), "{plan}");
    assert!(plan.stdout.contains("Plan: 0 to add, 1 to change, 0 to replace, 2 to destroy"), "{plan}");
    let load = Load::start(port);
    let started = Instant::now();
    let applied = w.ok(&["apply", SERVICE, "--auto-approve"]);
    assert!(applied.stdout.contains("container.app[3]: taken out of the load balancer"), "{applied}");
    let (failures, _) = load.tally(started);
    assert_eq!(failures, Vec::<String>::new(), "requests failed while scaling in:\n{applied}");
    drop(load);

    let two = replica_ids(&w);
    assert_eq!(two.len(), 2, "{:?}", containers(&w));
    assert!(two.is_subset(&four));
    let show: Value = serde_json::from_str(&w.ok(&["show", SERVICE, "--output", "json"]).stdout).unwrap();
    let upstreams = show["state"]["resources"]["load_balancer.main"]["attrs"]["upstreams"].as_array().cloned();
    assert_eq!(upstreams.map(|u| u.len()), Some(2), "{show}");
    assert_eq!(show["spec"]["params"]["replicas"], 2);
    assert_eq!(caddy_upstreams(&w).len(), 2, "the running proxy has two upstreams");
    wait_all_reached(port, &two);
    assert_eq!(w.run(&["plan", SERVICE, "--detailed-exitcode"]).code, 0);

    destroy_leaves_nothing(&w);
}

#[test]
fn bad_scaling_input_is_refused_naming_the_field_and_nothing_is_stored() {
    let w = World::new();
    let port = free_port().to_string();
    let http_port = format!("http_port={port}");

    let bad = w.run(&[
        "create",
        "web-app",
        SERVICE,
        "--set",
        "min_replicas=3",
        "--set",
        "max_replicas=2",
        "--set",
        &http_port,
    ]);
    assert_ne!(bad.code, 0, "{bad}");
    assert!(bad.stderr.contains("max_replicas: must be at least the minimum replicas 3 (got 2)"), "{bad}");

    let bad =
        w.run(&["create", "web-app", SERVICE, "--set", "replicas=9", "--set", "max_replicas=4", "--set", &http_port]);
    assert_ne!(bad.code, 0, "{bad}");
    assert!(
        bad.stderr.contains("replicas: must be between the scale policy's minimum 1 and maximum 4 (got 9)"),
        "{bad}"
    );

    // A template dropped into the store whose load balancer fronts a container it does not have.
    w.ok(&["catalog"]); // seeds the store
    let dir = w.data_dir().join("catalog");
    let mut template: Value =
        serde_json::from_str(&read(&dir.join("templates/web-app.template.json"))).expect("seeded web-app template");
    template["id"] = "broken-lb".into();
    template["blueprint"]["load_balancer"]["container"] = "nope".into();
    std::fs::write(dir.join("templates/broken-lb.template.json"), template.to_string()).unwrap();
    let bad = w.run(&["create", "broken-lb", SERVICE, "--set", &http_port]);
    assert_ne!(bad.code, 0, "{bad}");
    assert!(bad.stderr.contains("load_balancer.container: \"nope\" is not a container of this service"), "{bad}");

    // Nothing was stored, nothing was created.
    let status = w.ok(&["status"]);
    assert!(!status.stdout.contains(SERVICE), "{status}");
    let missing = w.run(&["show", SERVICE]);
    assert_eq!(missing.code, 1, "{missing}");
    assert!(missing.stderr.contains("not found"), "{missing}");
    assert!(!w.data_dir().join(format!("clients/{}/services/{SERVICE}", w.client)).exists());
    assert_eq!(w.labelled(None), Vec::<String>::new());
}
