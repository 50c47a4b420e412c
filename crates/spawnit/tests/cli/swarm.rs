//! `web-app` on a real three-node Docker Swarm through the real `spawnit` binary (issue 12):
//! `spawnit create web-app shop --provider swarm --set replicas=3` and `spawnit apply` make one
//! Swarm service of 3 tasks spread over the 3 nodes behind a Caddy service publishing the port
//! in host mode (this kernel has no IPVS for the routing mesh); the balancer answers through the
//! forwarded loopback port of the node running it, requests spread over the replicas, the
//! sticky cookie holds; a new image rolls through a service update; `show` and `status` say
//! 3/3 running; `destroy` leaves nothing labelled.
//!
//! The cluster is spawnit-testkit's (each node a Docker engine in a container; removed when the
//! test ends, also on failure). Needs Docker and the test images (`scripts/test-images.sh`):
//! it fails without them, never skips.

use crate::common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::*;
use spawnit_testkit::swarm::{ClusterOptions, SwarmCluster};

const SERVICE: &str = "shop";
/// The published port of the balancer on every node (forwarded from a loopback port each).
const PORT: u16 = 18080;
const IMAGES: [&str; 3] = ["spawnit-test/webapp:1", "spawnit-test/webapp:2", "caddy:2"];

/// One answer: status, the replica's hostname, the sticky cookie set.
#[derive(Debug)]
struct Answer {
    status: u16,
    hostname: Option<String>,
    cookie: Option<String>,
    text: String,
}

/// One `GET /` (HTTP/1.0, one connection), with a cookie if given.
fn get(port: u16, cookie: Option<&str>) -> Result<Answer, String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(15))).map_err(|e| e.to_string())?;
    let cookie = cookie.map(|c| format!("Cookie: {c}\r\n")).unwrap_or_default();
    write!(s, "GET / HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n{cookie}\r\n").map_err(|e| format!("send: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).ok_or_else(|| format!("{text:?}"))?;
    let hostname = text.lines().find_map(|l| l.strip_prefix("Hostname: ")).map(|h| h.trim().to_owned());
    let cookie = text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .find_map(|(_, v)| v.trim().split(';').next().filter(|c| c.starts_with("spawnit_lb=")).map(str::to_owned));
    Ok(Answer { status, hostname, cookie, text })
}

/// A replica's answer (200 with a hostname).
fn served(port: u16, cookie: Option<&str>) -> Result<Answer, String> {
    let a = get(port, cookie)?;
    if a.status == 200 && a.hostname.is_some() { Ok(a) } else { Err(format!("answer {}: {:?}", a.status, a.text)) }
}

/// The loopback port of the node that runs the balancer's task (host mode: only it answers).
fn balancer_port(cluster: &SwarmCluster, client: &str) -> u16 {
    let service = format!("spawnit_{client}_{SERVICE}_load_balancer");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = cluster
            .docker(
                0,
                &[
                    "service",
                    "ps",
                    "--filter",
                    "desired-state=running",
                    "--format",
                    "{{.Node}} {{.CurrentState}}",
                    &service,
                ],
            )
            .expect("service ps");
        let node = out.lines().find(|l| l.contains("Running")).and_then(|l| l.split_whitespace().next());
        if let Some(node) = node {
            let n = cluster.nodes().iter().find(|n| n.hostname == node).expect("a node of the cluster");
            return n.ports[&PORT];
        }
        assert!(Instant::now() < deadline, "the balancer's task never ran: {out}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn web_app_with_three_replicas_on_a_three_node_swarm() {
    let w = World::new();
    for image in IMAGES {
        let found = docker(&["image", "ls", "-q", image]);
        assert!(!found.trim().is_empty(), "test image {image} is missing: run scripts/test-images.sh");
    }
    let options = ClusterOptions { nodes: 3, images: IMAGES.map(str::to_owned).to_vec(), ports: vec![PORT] };
    let cluster =
        SwarmCluster::start("cli", options).expect("a 3-node Swarm (scripts/test-images.sh builds its image)");
    // Pool nodes carry spawnit.pool=true: a client without a lease runs there.
    for node in cluster.nodes() {
        cluster.docker(0, &["node", "update", "--label-add", "spawnit.pool=true", &node.hostname]).expect("label");
    }
    let host = cluster.manager_host();
    let spawnit = |args: &[&str]| -> Run {
        let mut cmd = w.cmd(args);
        cmd.env("SPAWNIT_SWARM_HOST", &host);
        Run::from(cmd.output().expect("run spawnit"), args)
    };
    let ok = |args: &[&str]| -> Run {
        let run = spawnit(args);
        assert_eq!(run.code, 0, "spawnit {args:?} failed:\n{run}");
        run
    };

    // --help names the provider and its flags.
    let help = ok(&["create", "--help"]).stdout;
    for flag in ["swarm", "--swarm-host", "--swarm-tls-dir", "--swarm-publish-mode"] {
        assert!(help.contains(flag), "create --help lacks {flag}:\n{help}");
    }

    // Without a manager, provider swarm is refused naming the flag, and nothing is stored.
    let args = ["create", "web-app", SERVICE, "--provider", "swarm"];
    let mut cmd = w.cmd(&args);
    cmd.env_remove("SPAWNIT_SWARM_HOST");
    let refused = Run::from(cmd.output().expect("run spawnit"), &args);
    assert_ne!(refused.code, 0, "{refused}");
    assert!(
        refused.stderr.contains("provider swarm is not configured") && refused.stderr.contains("--swarm-host"),
        "{refused}"
    );
    assert_ne!(spawnit(&["show", SERVICE]).code, 0, "a refused create stored the service");

    let port = PORT.to_string();
    let created = ok(&[
        "create",
        "web-app",
        SERVICE,
        "--provider",
        "swarm",
        "--swarm-publish-mode",
        "host",
        "--swarm-restart-delay",
        "0s",
        "--swarm-stop-grace",
        "2s",
        "--set",
        "replicas=3",
        "--set",
        "image=spawnit-test/webapp:1",
        "--set",
        &format!("http_port={port}"),
    ]);
    assert!(created.stdout.contains("Created service"), "{created}");
    let plan = ok(&["plan", SERVICE]);
    for line in [
        "swarm_network.default",
        "swarm_service.app",
        "swarm_secret.load_balancer.caddyfile",
        "swarm_service.load_balancer",
    ] {
        assert!(plan.stdout.contains(line), "the plan lacks {line}:\n{plan}");
    }
    let applied = ok(&["apply", SERVICE, "--auto-approve"]);
    assert!(!applied.all().contains("failed"), "{applied}");

    // One Swarm service of 3 tasks, one on each node.
    let app = format!("spawnit_{}_{SERVICE}_app", w.client);
    let nodes = cluster
        .docker(0, &["service", "ps", "--filter", "desired-state=running", "--format", "{{.Node}}", &app])
        .expect("service ps");
    let nodes: BTreeSet<&str> = nodes.lines().collect();
    assert_eq!(nodes.len(), 3, "the 3 replicas run on 3 nodes: {nodes:?}");

    // The balancer answers through its node's forwarded port; requests spread over replicas.
    let lb = balancer_port(&cluster, &w.client);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = BTreeSet::new();
    let mut last = String::new();
    while seen.len() < 3 && Instant::now() < deadline {
        match served(lb, None) {
            Ok(a) => {
                seen.insert(a.hostname.clone().unwrap_or_default());
            }
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(seen.len(), 3, "requests without a cookie reached {seen:?} (last error: {last})");
    // The sticky cookie holds.
    let first = served(lb, None).expect("an answer");
    let cookie = first.cookie.clone().unwrap_or_else(|| panic!("no spawnit_lb cookie: {first:?}"));
    let sticky: BTreeSet<String> =
        (0..20).map(|_| served(lb, Some(&cookie)).expect("an answer with the cookie").hostname.unwrap()).collect();
    assert_eq!(sticky.len(), 1, "20 requests with one cookie reached {sticky:?}");

    // A new image rolls through a Swarm service update (start-first): every replica answers
    // version 2 afterwards, and the balancer kept its place.
    ok(&["update", SERVICE, "--set", "image=spawnit-test/webapp:2"]);
    let plan = ok(&["plan", SERVICE]);
    assert!(plan.stdout.contains("image changed spawnit-test/webapp:1 → spawnit-test/webapp:2"), "{plan}");
    let applied = ok(&["apply", SERVICE, "--auto-approve"]);
    assert!(!applied.all().contains("failed"), "{applied}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut versions = BTreeSet::new();
    for _ in 0..30 {
        match served(lb, None) {
            Ok(a) => {
                versions.insert(a.text.lines().find_map(|l| l.strip_prefix("Version: ")).unwrap_or("?").to_owned());
            }
            Err(e) => assert!(Instant::now() < deadline, "the balancer stopped answering after the update: {e}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(versions, BTreeSet::from(["2".to_owned()]), "answers after the rolling update");

    // show and status say the tasks run.
    let show = ok(&["show", SERVICE]);
    assert!(show.stdout.contains("Provider: swarm"), "{show}");
    assert!(show.stdout.contains("app: 3/3 running"), "{show}");
    assert!(show.stdout.contains("load_balancer: 1/1 running"), "{show}");
    let status = ok(&["status"]);
    let row = status.stdout.lines().find(|l| l.starts_with(SERVICE)).unwrap_or_default().to_owned();
    assert!(row.contains("compliant") && row.contains("app 3/3"), "{status}");

    // destroy leaves nothing with the client's labels on the cluster.
    let destroyed = ok(&["destroy", SERVICE, "--auto-approve"]);
    assert!(!destroyed.all().contains("failed"), "{destroyed}");
    let label = format!("label=spawnit.client={}", w.client);
    for kind in ["service", "secret", "network"] {
        let left = cluster.docker(0, &[kind, "ls", "-q", "--filter", &label]).expect("ls");
        assert!(left.trim().is_empty(), "{kind}s left after destroy: {left}");
    }
    assert!(ok(&["show", SERVICE]).stdout.contains("(none deployed)"));
}
