//! End to end on the real Docker engine through the real `spawnit` binary: deploy, answer,
//! drift and repair, destroy without leftovers, bad input, secrets, one writer, `kill -9`.

use crate::common;

use std::time::Duration;

use common::*;
use serde_json::Value;

fn deploy_hello(w: &World, service: &str, port: u16, message: &str) {
    w.ok(&["create", "hello", service, "--set", &format!("port={port}"), "--set", &format!("message={message}")]);
    w.ok(&["network", "apply", "default", "--auto-approve"]);
    let applied = w.ok(&["apply", service, "--auto-approve"]);
    assert!(applied.stdout.contains(&format!("http://127.0.0.1:{port}")), "{applied}");
}

#[test]
fn hello_deploys_answers_http_and_destroys_without_leftovers() {
    let w = World::new();
    let port = free_port();
    w.ok(&["create", "hello", "web", "--set", &format!("port={port}"), "--set", "message=Hi from a test"]);

    // The network layer comes first: the service plan says which network and what to do.
    let plan = w.run(&["plan", "web", "--detailed-exitcode"]);
    assert_eq!(plan.code, 1, "{plan}");
    assert!(plan.all().contains("network default") && plan.all().contains("spawnit network apply default"), "{plan}");
    let net = w.run(&["network", "plan", "default", "--detailed-exitcode"]);
    assert_eq!(net.code, 2, "{net}");
    w.ok(&["network", "apply", "default", "--auto-approve"]);

    let plan = w.run(&["plan", "web", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{plan}");
    assert!(plan.stdout.contains("+ container.echo") && plan.stdout.contains("not yet created"), "{plan}");

    let applied = w.ok(&["apply", "web", "--auto-approve"]);
    assert!(applied.stdout.contains("container.echo: Created after"), "{applied}");
    let body = http_get(port, Duration::from_secs(15)).expect("hello answers on its port");
    assert!(body.contains("Hi from a test"), "{body}");

    let plan = w.run(&["plan", "web", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{plan}");
    assert!(plan.stdout.contains("is compliant"), "{plan}");

    let show: Value = serde_json::from_str(&w.ok(&["show", "web", "--output", "json"]).stdout).unwrap();
    assert_eq!(show["status"], "compliant");
    assert_eq!(show["endpoints"][0]["address"], format!("127.0.0.1:{port}"));
    assert_eq!(show["endpoints"][0]["url"], format!("http://127.0.0.1:{port}"));
    assert!(show["state"]["resources"]["container.echo"]["id"].is_string(), "{show}");
    assert_eq!(show["spec"]["template"]["id"], "hello");

    // Published on loopback only.
    let ports = docker(&["port", &format!("spawnit_{}_web_echo", w.client)]);
    assert!(ports.trim().ends_with(&format!("127.0.0.1:{port}")), "{ports}");

    let graph = w.ok(&["graph", "web"]).stdout;
    assert!(graph.starts_with("digraph") && graph.contains("\"container.echo\" -> \"image.echo\""), "{graph}");
    let status = w.ok(&["status"]).stdout;
    assert!(status.lines().any(|l| l.starts_with("web ") && l.contains("compliant")), "{status}");

    // Deleting a deployed service is refused; destroy removes every labelled resource.
    let refused = w.run(&["delete", "web"]);
    assert_eq!(refused.code, 1);
    assert!(refused.stderr.contains("destroy it first"), "{refused}");
    let network_refused = w.run(&["network", "destroy", "default", "--auto-approve"]);
    assert_eq!(network_refused.code, 1, "{network_refused}");
    assert!(network_refused.stderr.contains("used by deployed service(s) web"), "{network_refused}");

    let destroyed = w.ok(&["destroy", "web", "--auto-approve"]);
    assert!(destroyed.stdout.contains("container.echo: Destroyed"), "{destroyed}");
    assert_eq!(w.labelled(Some("web")), Vec::<String>::new());
    let plan = w.run(&["plan", "web", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "a destroyed service plans its creation again: {plan}");
    w.ok(&["delete", "web"]);
    w.ok(&["network", "destroy", "default", "--auto-approve"]);
    assert_eq!(w.labelled(None), Vec::<String>::new());
}

#[test]
fn bad_input_is_refused_naming_every_field_and_changes_nothing() {
    let w = World::new();
    let bad = w.run(&["create", "hello", "web", "--set", "port=80", "--set", "nope=1", "--set", "message="]);
    assert_eq!(bad.code, 1, "{bad}");
    assert!(bad.stderr.contains("port: must be at least 1024"), "{bad}");
    assert!(bad.stderr.contains("nope: unknown parameter"), "{bad}");
    assert!(bad.stderr.contains("nothing was changed"), "{bad}");
    let bad = w.run(&["create", "hello", "web", "--set", "port=abc"]);
    assert!(bad.stderr.contains("port: must be a whole number (got \"abc\")"), "{bad}");

    let missing = w.run(&["show", "web"]);
    assert_eq!(missing.code, 1);
    assert!(missing.stderr.contains("service") && missing.stderr.contains("not found"), "{missing}");

    let bad_id = w.run(&["create", "hello", "../etc"]);
    assert_ne!(bad_id.code, 0);
    assert!(bad_id.stderr.contains("is not a valid id"), "{bad_id}");
    let unknown = w.run(&["create", "nosuch", "web"]);
    assert_eq!(unknown.code, 1);
    assert!(unknown.stderr.contains("template nosuch not found"), "{unknown}");
    assert!(w.ok(&["status"]).stdout.lines().count() == 1, "no service was stored");
}

#[test]
fn every_builtin_template_is_listed_and_creates_a_spec() {
    let w = World::new();
    let catalog: Value = serde_json::from_str(&w.ok(&["catalog", "--output", "json"]).stdout).unwrap();
    let ids: Vec<&str> = catalog["templates"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect();
    for id in [
        "postgres",
        "mariadb",
        "redis",
        "mongodb",
        "nginx",
        "minecraft",
        "gitea",
        "jenkins",
        "grafana",
        "prometheus",
        "uptime-kuma",
        "minio",
        "hello",
        "spawnit",
    ] {
        assert!(ids.contains(&id), "catalog lacks {id}: {ids:?}");
        let service = format!("s-{id}");
        w.ok(&["create", id, &service]);
        let show: Value = serde_json::from_str(&w.ok(&["show", &service, "--output", "json"]).stdout).unwrap();
        assert!(!show["endpoints"].as_array().unwrap().is_empty(), "{id} publishes nothing");
        let text = w.ok(&["catalog", id]).stdout;
        assert!(text.contains("Parameters:"), "{text}");
    }
}

#[test]
fn a_template_dropped_into_the_store_is_offered_without_restart() {
    let w = World::new();
    w.ok(&["catalog"]); // seeds the store
    let dir = w.data_dir().join("catalog");
    let mut template: Value =
        serde_json::from_str(&read(&dir.join("templates/hello.template.json"))).expect("seeded hello template");
    template["id"] = "greeter".into();
    template["name"] = "Greeter".into();
    std::fs::write(dir.join("templates/greeter.template.json"), template.to_string()).unwrap();
    let mut catalog: Value = serde_json::from_str(&read(&dir.join("catalog.json"))).unwrap();
    let entry = serde_json::json!({"id": "greeter", "name": "Greeter", "category": "demo", "description": "d", "version": "1.0.0"});
    catalog["templates"].as_array_mut().unwrap().push(entry);
    std::fs::write(dir.join("catalog.json"), catalog.to_string()).unwrap();
    assert!(w.ok(&["catalog"]).stdout.contains("greeter"));
    w.ok(&["create", "greeter", "g"]);
}

#[test]
fn drift_is_reported_with_its_reason_and_repaired() {
    let w = World::new();
    let port = free_port();
    deploy_hello(&w, "web", port, "drift");
    let container = format!("spawnit_{}_web_echo", w.client);

    docker(&["rm", "-f", &container]);
    let plan = w.run(&["plan", "web", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{plan}");
    assert!(plan.stdout.contains("removed outside SpawnIt"), "{plan}");
    w.ok(&["apply", "web", "--auto-approve"]);
    assert_eq!(w.run(&["plan", "web", "--detailed-exitcode"]).code, 0);
    assert!(http_get(port, Duration::from_secs(15)).unwrap().contains("drift"));

    docker(&["stop", "-t", "1", &container]);
    let plan = w.run(&["plan", "web", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{plan}");
    assert!(plan.stdout.contains("stopped outside SpawnIt"), "{plan}");
    w.ok(&["apply", "web", "--auto-approve"]);
    assert_eq!(w.run(&["plan", "web", "--detailed-exitcode"]).code, 0);
    assert!(http_get(port, Duration::from_secs(15)).unwrap().contains("drift"));

    // A network removed outside SpawnIt (Docker refuses while a container uses it).
    docker(&["rm", "-f", &container]);
    docker(&["network", "rm", &format!("spawnit_{}_default", w.client)]);
    let net = w.run(&["network", "plan", "default", "--detailed-exitcode"]);
    assert_eq!(net.code, 2, "{net}");
    assert!(net.stdout.contains("removed outside SpawnIt"), "{net}");
    let plan = w.run(&["plan", "web", "--detailed-exitcode"]);
    assert_eq!(plan.code, 1, "{plan}");
    assert!(plan.stdout.contains("network default is not applied yet"), "{plan}");
    w.ok(&["network", "apply", "default", "--auto-approve"]);
    assert_eq!(w.run(&["network", "plan", "default", "--detailed-exitcode"]).code, 0);
    w.ok(&["apply", "web", "--auto-approve"]);
    assert_eq!(w.run(&["plan", "web", "--detailed-exitcode"]).code, 0);
    assert!(http_get(port, Duration::from_secs(15)).unwrap().contains("drift"));

    // A changed parameter: the plan names it, apply replaces the container.
    w.ok(&["update", "web", "--set", "message=changed"]);
    let plan = w.run(&["plan", "web", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{plan}");
    assert!(plan.stdout.contains("-/+ container.echo") && plan.stdout.contains("command changed"), "{plan}");
    w.ok(&["apply", "web", "--auto-approve"]);
    assert!(http_get(port, Duration::from_secs(15)).unwrap().contains("changed"));
    w.ok(&["destroy", "web", "--auto-approve"]);
}

#[test]
fn redis_answers_a_real_client_and_its_password_never_shows() {
    let w = World::new();
    let port = free_port();
    let password = "pw-Zx81-unique";
    w.ok(&["create", "redis", "cache", "--set", &format!("port={port}"), "--set", &format!("password={password}")]);
    w.ok(&["network", "apply", "default", "--auto-approve"]);
    let mut outputs = vec![w.ok(&["plan", "cache"]).all(), w.ok(&["apply", "cache", "--auto-approve"]).all()];

    let cli = |args: &[&str]| {
        let mut full = vec!["-h", "127.0.0.1", "-p"];
        let p = port.to_string();
        full.push(&p);
        full.extend(["--no-auth-warning", "-a", password]);
        full.extend(args);
        let out = std::process::Command::new("redis-cli")
            .args(&full)
            .output()
            .expect("redis-cli (scripts/test.sh installs redis-tools)");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let mut pong = String::new();
    for _ in 0..50 {
        pong = cli(&["PING"]);
        if pong == "PONG" {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(pong, "PONG");
    assert_eq!(cli(&["SET", "greeting", "hello"]), "OK");
    assert_eq!(cli(&["GET", "greeting"]), "hello");

    outputs.push(w.ok(&["show", "cache"]).all());
    outputs.push(w.ok(&["show", "cache", "--output", "json"]).all());
    outputs.push(w.ok(&["plan", "cache", "--output", "json"]).all());
    outputs.push(w.ok(&["status", "--output", "json"]).all());
    w.ok(&["update", "cache", "--set", "password=pw-next-Qq77"]);
    outputs.push(w.ok(&["plan", "cache"]).all());
    outputs.push(w.ok(&["apply", "cache", "--auto-approve"]).all());
    outputs.push(w.ok(&["destroy", "cache", "--auto-approve"]).all());
    for out in &outputs {
        assert!(!out.contains(password) && !out.contains("pw-next-Qq77"), "a secret leaked:\n{out}");
    }
    assert!(outputs[2].contains("(sensitive)"), "{}", outputs[2]);
}

#[test]
fn concurrent_applies_have_one_writer_and_state_stays_intact() {
    let w = World::new();
    let port = free_port();
    w.ok(&["create", "redis", "db", "--set", &format!("port={port}")]);
    w.ok(&["network", "apply", "default", "--auto-approve"]);
    // The first apply holds the lock (stopped mid-operation) while the second runs: they overlap.
    let (first, second) = two_overlapping_applies(|| w.cmd(&["apply", "db", "--auto-approve"]), &["apply"]);
    assert_eq!(second.code, 1, "the second writer must be refused while the first holds the lock:\n{second}");
    assert!(second.stderr.contains("is locked by job"), "the loser must say why: {second}");
    assert_eq!(first.code, 0, "the first writer finishes its apply:\n{first}");
    let containers = docker(&["ps", "-a", "-q", "--filter", &format!("label=spawnit.client={}", w.client)]);
    assert_eq!(containers.lines().count(), 1, "exactly one container");
    assert_eq!(w.run(&["plan", "db", "--detailed-exitcode"]).code, 0);
    let state: Value =
        serde_json::from_str(&read(&w.data_dir().join(format!("clients/{}/services/db/state.json", w.client))))
            .unwrap();
    assert_eq!(state["resources"].as_object().unwrap().len(), 2, "volume and container recorded: {state}");
    w.ok(&["destroy", "db", "--auto-approve"]);
}

#[test]
fn kill_9_during_apply_never_leaves_an_orphan_or_a_duplicate() {
    let w = World::new();
    let port = free_port();
    w.ok(&["create", "redis", "db", "--set", &format!("port={port}")]);
    w.ok(&["network", "apply", "default", "--auto-approve"]);
    // Kill points: before planning ends, at each operation start, and after the first one.
    for trigger in ["Plan:", "volume.data: Creating", "container.redis: Creating", "volume.data: Created"] {
        // Panics unless the trigger line was printed and the apply was still running.
        kill_9_at(w.cmd(&["apply", "db", "--auto-approve"]), trigger);

        let again = w.ok(&["apply", "db", "--auto-approve"]);
        assert_eq!(w.run(&["plan", "db", "--detailed-exitcode"]).code, 0, "after kill at {trigger:?}: {again}");
        let labelled = w.labelled(Some("db"));
        assert_eq!(labelled.iter().filter(|l| l.starts_with("container")).count(), 1, "{trigger}: {labelled:?}");
        assert_eq!(labelled.iter().filter(|l| l.starts_with("volume")).count(), 1, "{trigger}: {labelled:?}");
        w.ok(&["destroy", "db", "--auto-approve"]);
        assert!(w.labelled(Some("db")).is_empty());
    }
}
