//! Several `spawnit serve` replicas on one S3 store (a real `moto_server` on loopback), behind a
//! real load balancer (Caddy, round robin), deploying on the real Docker engine: every job runs
//! exactly once whichever replica takes it; a replica's job stream and server events reach the
//! clients of the others; a replica killed (`kill -9`) or paused past its claim (`kill -STOP`)
//! has its jobs taken over, and a paused one's writes are refused once it continues; the
//! leader's death moves the drift monitor to another replica.

use crate::common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// A claim or the leader's lease lasts this long without renewal in these tests.
const TTL: &str = "3s";

/// One HTTP/1.0 request on loopback: (status, body).
fn http(port: u16, method: &str, path: &str, token: &str, body: Option<&Value>) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("connect to 127.0.0.1:{port}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap_or_else(|e| panic!("read the answer to {method} {path}: {e}"));
    let status = answer.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

fn json(port: u16, method: &str, path: &str, token: &str) -> Value {
    let (status, body) = http(port, method, path, token, None);
    assert!((200..300).contains(&status), "{method} {path} on :{port}: {status} {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {body}"))
}

/// Reads a server-sent event stream until `until` says stop (or `limit` passes): the
/// `(event, id, data)` triples read.
fn sse(
    port: u16,
    path: &str,
    token: &str,
    limit: Duration,
    until: impl Fn(&str, &Value) -> bool,
) -> Vec<(String, String, Value)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    let mut reader = BufReader::new(s);
    let (mut out, mut event, mut id) = (Vec::new(), String::new(), String::new());
    let started = Instant::now();
    let mut line = String::new();
    while started.elapsed() < limit {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => continue,
            Err(e) => panic!("read the stream {path}: {e}"),
        }
        let line = line.trim_end();
        if let Some(v) = line.strip_prefix("event:") {
            event = v.trim().to_owned();
        } else if let Some(v) = line.strip_prefix("id:") {
            id = v.trim().to_owned();
        } else if let Some(v) = line.strip_prefix("data:") {
            let data: Value = serde_json::from_str(v.trim()).unwrap_or(Value::Null);
            let stop = until(&event, &data);
            out.push((std::mem::take(&mut event), std::mem::take(&mut id), data));
            if stop {
                break;
            }
        }
    }
    out
}

/// Three replicas, a load balancer in front, one store.
struct Fleet {
    w: World,
    moto: Moto,
    replicas: Vec<Option<Child>>,
    ports: Vec<u16>,
    logs: Vec<PathBuf>,
    lb: Option<Child>,
    lb_port: u16,
    token: String,
    /// A member of another client.
    outsider: String,
}

impl Fleet {
    fn start(n: usize) -> Fleet {
        let w = World::new();
        let moto = Moto::start();
        moto.bucket_create("spawnit-replicas");
        let fleet_cli = |args: &[&str]| {
            let mut cmd = w.cmd(args);
            moto.configure(&mut cmd, "spawnit-replicas");
            let run = Run::from(cmd.output().expect("run spawnit"), args);
            assert_eq!(run.code, 0, "{run}");
            run
        };
        fleet_cli(&["user", "create", "bob", "--client", &w.client, "--password", "bob-password-1"]);
        let token = fleet_cli(&["token", "create", "--user", "bob"])
            .stdout
            .lines()
            .last()
            .unwrap_or_default()
            .trim()
            .to_owned();
        let other = format!("{}-other", w.client);
        fleet_cli(&["user", "create", "eve", "--client", &other, "--password", "eve-password-1"]);
        let outsider = fleet_cli(&["token", "create", "--user", "eve"])
            .stdout
            .lines()
            .last()
            .unwrap_or_default()
            .trim()
            .to_owned();
        let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let logs: Vec<PathBuf> = (0..n).map(|i| w.dir.path().join(format!("r{i}.log"))).collect();
        let mut fleet = Fleet { replicas: Vec::new(), ports, logs, lb: None, lb_port: free_port(), token, outsider, moto, w };
        for i in 0..n {
            let child = fleet.replica_spawn(i);
            fleet.replicas.push(Some(child));
        }
        for &port in &fleet.ports {
            http_get_path(port, "/healthz", Duration::from_secs(60)).expect("the replica answers");
        }
        fleet.lb = Some(caddy(&fleet.w.dir.path().join("caddy"), fleet.lb_port, &fleet.ports));
        http_get_path(fleet.lb_port, "/healthz", Duration::from_secs(30)).expect("the load balancer answers");
        fleet
    }

    fn replica_spawn(&self, i: usize) -> Child {
        let log = std::fs::File::create(&self.logs[i]).expect("log file");
        let listen = format!("127.0.0.1:{}", self.ports[i]);
        let id = format!("r{i}");
        let mut cmd = self.w.cmd(&[
            "serve",
            "--listen",
            &listen,
            "--replica-id",
            &id,
            "--claim-ttl",
            TTL,
            "--leader-ttl",
            TTL,
            "--refresh-interval",
            "1s",
            "--sweep-interval",
            "5s",
        ]);
        self.moto.configure(&mut cmd, "spawnit-replicas");
        cmd.env("SPAWNIT_LOG", "info").stdout(log.try_clone().expect("log file")).stderr(log);
        cmd.spawn().expect("start spawnit serve")
    }

    fn cli(&self, args: &[&str]) -> Run {
        let mut cmd = self.w.cmd(args);
        self.moto.configure(&mut cmd, "spawnit-replicas");
        let run = Run::from(cmd.output().expect("run spawnit"), args);
        assert_eq!(run.code, 0, "{run}");
        run
    }

    fn pid(&self, i: usize) -> u32 {
        self.replicas[i].as_ref().expect("a running replica").id()
    }

    fn kill_9(&mut self, i: usize) {
        if let Some(mut child) = self.replicas[i].take() {
            child.kill().expect("SIGKILL");
            let _ = child.wait();
        }
    }

    fn log(&self, i: usize) -> String {
        read(&self.logs[i])
    }

    /// The replica that leads now, asked of the replicas still running.
    fn leader(&self) -> Option<usize> {
        (0..self.ports.len()).filter(|&i| self.replicas[i].is_some()).find(|&i| {
            let (_, body) = http(self.ports[i], "GET", "/healthz", "", None);
            serde_json::from_str::<Value>(&body).is_ok_and(|v| v["leader"] == true)
        })
    }

    /// Waits until job `id` has finished, asked of replica `port`: its record.
    fn job_wait(&self, port: u16, id: &str, limit: Duration) -> Value {
        let started = Instant::now();
        loop {
            let job = json(port, "GET", &format!("/api/jobs/{id}"), &self.token);
            if !matches!(job["status"].as_str(), Some("queued" | "running")) {
                return job;
            }
            assert!(started.elapsed() < limit, "job {id} did not finish within {limit:?}: {job}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The job's events as the store's record holds them, read through replica `port`'s stream.
    fn job_events(&self, port: u16, id: &str) -> Vec<(String, String, Value)> {
        sse(port, &format!("/api/jobs/{id}/events"), &self.token, Duration::from_secs(30), |e, _| e == "finished")
    }

    /// Docker containers of service `name` of this fleet's client.
    fn containers(&self, name: &str) -> Vec<String> {
        self.w.labelled(Some(name)).into_iter().filter(|l| l.starts_with("container ")).collect()
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for child in self.replicas.iter_mut().flatten() {
            let _ = Command::new("kill").args(["-CONT", &child.id().to_string()]).status();
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(lb) = &mut self.lb {
            let _ = lb.kill();
            let _ = lb.wait();
        }
    }
}

/// `GET path` on loopback until it answers 200 (or `limit` passes).
fn http_get_path(port: u16, path: &str, limit: Duration) -> Result<String, String> {
    let started = Instant::now();
    loop {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
            let mut answer = String::new();
            if s.read_to_string(&mut answer).is_ok() && answer.starts_with("HTTP/1.") && answer.contains(" 200 ") {
                return Ok(answer);
            }
        }
        if started.elapsed() > limit {
            return Err(format!("127.0.0.1:{port}{path} did not answer 200 within {limit:?}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Caddy on loopback (its files in `dir`): a round-robin reverse proxy on `port` to
/// `upstreams`, trying another upstream when one does not answer (a killed replica).
fn caddy(dir: &std::path::Path, port: u16, upstreams: &[u16]) -> Child {
    std::fs::create_dir_all(dir).expect("caddy's directory");
    let upstreams: Vec<String> = upstreams.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let config = format!(
        "{{\n\tadmin off\n\tauto_https off\n}}\nhttp://127.0.0.1:{port} {{\n\treverse_proxy {} {{\n\t\tlb_policy round_robin\n\t\tlb_try_duration 5s\n\t\tfail_duration 10s\n\t\tflush_interval -1\n\t}}\n}}\n",
        upstreams.join(" ")
    );
    let file = dir.join("Caddyfile");
    std::fs::write(&file, config).expect("write the Caddyfile");
    Command::new("caddy")
        .args(["run", "--adapter", "caddyfile", "--config"])
        .arg(&file)
        .env("HOME", dir)
        .env("XDG_DATA_HOME", dir)
        .env("XDG_CONFIG_HOME", dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start caddy ({e}): run scripts/test.sh, which installs it"))
}

/// Names and counts of the containers Docker created for `client` since `since` (Unix seconds).
fn containers_created(client: &str, since: u64) -> Vec<String> {
    let until = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 1;
    let out = docker(&[
        "events",
        "--since",
        &since.to_string(),
        "--until",
        &until.to_string(),
        "--filter",
        "type=container",
        "--filter",
        "event=create",
        "--filter",
        &format!("label=spawnit.client={client}"),
        "--format",
        "{{.Actor.Attributes.name}}",
    ]);
    out.lines().filter(|l| !l.trim().is_empty()).map(str::to_owned).collect()
}

fn now_s() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

#[test]
fn three_replicas_behind_a_load_balancer_run_every_job_once_and_share_their_streams() {
    let fleet = Fleet::start(3);
    let names: Vec<String> = (0..30).map(|i| format!("s{i:02}")).collect();
    for name in &names {
        fleet.cli(&["create", "hello", name, "--set", &format!("message=hello from {name}")]);
    }
    fleet.cli(&["network", "apply", "default", "--auto-approve"]);
    let since = now_s();

    // 60 applies through the load balancer, round robin over the replicas: each service twice.
    let mut ids = Vec::new();
    for round in 0..2 {
        for name in &names {
            let (status, body) =
                http(fleet.lb_port, "POST", &format!("/api/services/{name}/apply"), &fleet.token, None);
            assert_eq!(status, 202, "apply {name} (round {round}): {body}");
            let job: Value = serde_json::from_str(&body).expect("a job");
            ids.push(job["id"].as_str().expect("job id").to_owned());
        }
    }
    assert_eq!(ids.len(), 60);
    let mut by_replica = std::collections::BTreeMap::<String, usize>::new();
    for id in &ids {
        // Asked through the load balancer: whichever replica answers knows every job.
        let job = fleet.job_wait(fleet.lb_port, id, Duration::from_secs(240));
        assert_eq!(job["status"], "succeeded", "{job}");
        *by_replica.entry(job["replica"].as_str().unwrap_or_default().to_owned()).or_default() += 1;
    }
    assert!(by_replica.len() >= 2, "round robin spread the jobs over the replicas: {by_replica:?}");
    assert_eq!(by_replica.values().sum::<usize>(), 60);

    // Each job ran once: one `finished` event, no takeover; the jobs of the store are exactly these.
    for id in ids.iter().step_by(7) {
        let events = fleet.job_events(fleet.ports[0], id);
        let finished = events.iter().filter(|(e, _, _)| e == "finished").count();
        assert_eq!(finished, 1, "job {id}: {events:?}");
        assert!(
            !events.iter().any(|(_, _, d)| d.to_string().contains("runs it again")),
            "job {id} was taken over: {events:?}"
        );
    }
    let listed = json(fleet.ports[1], "GET", "/api/jobs", &fleet.token);
    let listed: Vec<&str> = listed["jobs"].as_array().expect("jobs").iter().filter_map(|j| j["id"].as_str()).collect();
    for id in &ids {
        assert!(listed.contains(&id.as_str()), "replica r1 lists job {id}");
    }
    // One container per service, created once: the second apply of each found nothing to do.
    let created = containers_created(&fleet.w.client, since);
    assert_eq!(created.len(), 30, "Docker create calls for the client: {created:?}");
    let unique: std::collections::BTreeSet<&String> = created.iter().collect();
    assert_eq!(unique.len(), 30, "no container was created twice: {created:?}");
    for name in &names {
        assert_eq!(fleet.containers(name).len(), 1, "{name}");
    }

    // A job run by one replica, followed live on another from start to finish, in order.
    fleet.cli(&["update", "s00", "--set", "message=changed"]);
    std::thread::sleep(Duration::from_millis(1500)); // the replicas' index catches up
    let job = json(fleet.ports[0], "POST", "/api/services/s00/apply", &fleet.token);
    let id = job["id"].as_str().expect("job id").to_owned();
    // Another client's member asks replica r2 for it (read from the store when r2 has not
    // tailed it yet): it does not exist for them, as it does for its owner.
    let (status, body) = http(fleet.ports[2], "GET", &format!("/api/jobs/{id}"), &fleet.outsider, None);
    assert_eq!(status, 404, "another client sees the job: {body}");
    let (status, body) = http(fleet.ports[2], "GET", &format!("/api/jobs/{id}/events"), &fleet.outsider, None);
    assert_eq!(status, 404, "another client follows the job: {body}");
    let (status, body) = http(fleet.ports[2], "GET", &format!("/api/jobs/{id}"), &fleet.token, None);
    assert_eq!(status, 200, "{body}");
    let events = fleet.job_events(fleet.ports[2], &id);
    let ids_seen: Vec<usize> = events.iter().map(|(_, i, _)| i.parse().expect("numeric event id")).collect();
    assert_eq!(ids_seen, (0..ids_seen.len()).collect::<Vec<_>>(), "every event, in order: {events:?}");
    assert_eq!(events.first().map(|(e, _, _)| e.as_str()), Some("planned"), "{events:?}");
    assert_eq!(events.last().map(|(e, _, _)| e.as_str()), Some("finished"), "{events:?}");
    let record = fleet.job_wait(fleet.ports[2], &id, Duration::from_secs(60));
    assert_eq!((record["status"].as_str(), record["replica"].as_str()), (Some("succeeded"), Some("r0")), "{record}");

    // The leader's drift monitor sees a container removed outside SpawnIt; a replica that does
    // not lead shows it in its status and on its /api/events.
    let leader = fleet.leader().expect("a leader");
    let other = (0..3).find(|&i| i != leader).expect("another replica");
    let port = fleet.ports[other];
    let token = fleet.token.clone();
    let watcher = std::thread::spawn(move || {
        sse(port, "/api/events", &token, Duration::from_secs(40), |e, d| e == "service_status" && d["service"] == "s01")
    });
    std::thread::sleep(Duration::from_millis(1000));
    let container = fleet.containers("s01")[0].trim_start_matches("container ").to_owned();
    docker(&["rm", "-f", &container]);
    let events = watcher.join().expect("the events reader");
    let drifted = events.iter().find(|(e, _, d)| e == "service_status" && d["service"] == "s01");
    assert!(
        drifted.is_some_and(|(_, _, d)| d["status"] == "drifted"),
        "replica r{other} relayed the leader's event: {events:?}"
    );
    let service = json(port, "GET", "/api/services/s01", &fleet.token);
    assert_eq!(service["status"], "drifted", "replica r{other} shows the leader's status: {service}");

    for name in &names {
        fleet.cli(&["destroy", name, "--auto-approve"]);
    }
}

#[test]
fn a_killed_or_paused_replica_hands_its_jobs_over_and_a_paused_one_is_fenced() {
    let mut fleet = Fleet::start(3);

    // kill -9 of the replica running jobs: another one finishes them, once each.
    let names: Vec<String> = (0..6).map(|i| format!("k{i}")).collect();
    for name in &names {
        fleet.cli(&["create", "hello", name]);
    }
    fleet.cli(&["network", "apply", "default", "--auto-approve"]);
    std::thread::sleep(Duration::from_millis(1500));
    let since = now_s();
    let victim = 1;
    let ids: Vec<String> = names
        .iter()
        .map(|name| {
            let job = json(fleet.ports[victim], "POST", &format!("/api/services/{name}/apply"), &fleet.token);
            job["id"].as_str().expect("job id").to_owned()
        })
        .collect();
    fleet.kill_9(victim);
    let killed_at = Instant::now();
    let survivor = fleet.ports[0];
    let mut taken_over = 0;
    for id in &ids {
        let job = fleet.job_wait(survivor, id, Duration::from_secs(120));
        assert_eq!(job["status"], "succeeded", "{job}");
        if job["replica"] != "r1" {
            taken_over += 1;
        }
    }
    let handover = killed_at.elapsed();
    assert!(taken_over >= 1, "the killed replica's unfinished jobs were taken over");
    let created = containers_created(&fleet.w.client, since);
    let unique: std::collections::BTreeSet<&String> = created.iter().collect();
    assert_eq!(unique.len(), created.len(), "no container created twice: {created:?}");
    for name in &names {
        assert_eq!(fleet.containers(name).len(), 1, "{name}: exactly one container");
        // No lock stays: an apply of the CLI takes the lock at once and finds nothing to do.
        let plan = fleet.cli(&["apply", name, "--auto-approve"]);
        assert!(!plan.all().contains("locked"), "{plan}");
    }
    eprintln!("kill -9: {taken_over} of 6 jobs taken over, all finished {handover:?} after the kill");

    // kill -STOP past the claim's ttl, then -CONT: the paused replica's writes are refused.
    fleet.cli(&["create", "hello", "paused"]);
    std::thread::sleep(Duration::from_millis(1500));
    let paused = 2;
    let job = json(fleet.ports[paused], "POST", "/api/services/paused/apply", &fleet.token);
    signal(fleet.pid(paused), "STOP");
    let id = job["id"].as_str().expect("job id").to_owned();
    let done = fleet.job_wait(fleet.ports[0], &id, Duration::from_secs(60));
    assert_eq!((done["status"].as_str(), done["replica"].as_str()), (Some("succeeded"), Some("r0")), "{done}");
    signal(fleet.pid(paused), "CONT");
    // Give it time to try: it renews its claim (a third of the ttl) and finds it gone.
    let started = Instant::now();
    while !fleet.log(paused).contains("took this job over") && started.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        fleet.log(paused).contains("took this job over"),
        "the paused replica saw it was fenced:\n{}",
        fleet.log(paused)
    );
    std::thread::sleep(Duration::from_secs(2));
    let after = json(fleet.ports[paused], "GET", &format!("/api/jobs/{id}"), &fleet.token);
    assert_eq!(
        (after["status"].as_str(), after["replica"].as_str()),
        (Some("succeeded"), Some("r0")),
        "the outcome is r0's: {after}"
    );
    assert_eq!(after["finished_at"], done["finished_at"], "nothing was written after r0 finished: {after}");
    assert_eq!(fleet.containers("paused").len(), 1);

    // The leader killed: the drift monitor resumes on another replica.
    let leader = fleet.leader().expect("a leader");
    fleet.kill_9(leader);
    let alive = (0..3).find(|&i| fleet.replicas[i].is_some()).expect("a replica still runs");
    let container = fleet.containers("k0")[0].trim_start_matches("container ").to_owned();
    docker(&["rm", "-f", &container]);
    let removed_at = Instant::now();
    let status = loop {
        let service = json(fleet.ports[alive], "GET", "/api/services/k0", &fleet.token);
        if service["status"] == "drifted" || removed_at.elapsed() > Duration::from_secs(30) {
            break service;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(status["status"], "drifted", "the new leader's monitor saw the removal: {status}");
    eprintln!("leader killed: drift seen {:?} after the removal", removed_at.elapsed());
    for name in names.iter().chain(std::iter::once(&"paused".to_owned())) {
        fleet.cli(&["destroy", name, "--auto-approve"]);
    }
}
