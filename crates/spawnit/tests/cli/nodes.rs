//! `spawnit node …` on a real Swarm (the harness's nodes: containers each running a Docker
//! engine) with the real binary and a real store: list, show, join-token, drain, activate,
//! rent, extend, release, in text and `--output json`; bad input is refused naming the flag or
//! argument, and without `--swarm-host` every verb says how to give one.

use crate::common;

use common::World;
use serde_json::Value;
use spawnit_testkit::swarm::{ClusterOptions, SwarmCluster};

fn json(run: &common::Run) -> Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{run}"))
}

#[test]
fn node_verbs_list_show_join_drain_activate_rent_extend_and_release() {
    let w = World::new();
    // Help names every verb and the rent's flags.
    let help = w.ok(&["node", "--help"]).stdout;
    for verb in ["list", "show", "join-token", "drain", "activate", "remove", "rent", "release", "extend"] {
        assert!(help.contains(verb), "`node --help` lacks {verb}: {help}");
    }
    let help = w.ok(&["node", "rent", "--help"]).stdout;
    for flag in ["--client", "--count", "--ttl", "--swarm-host", "spawnit node rent --client acme --count 2 --ttl 2h"] {
        assert!(help.contains(flag), "`node rent --help` lacks {flag}: {help}");
    }
    // No manager given: says how to give one.
    let run = w.cmd(&["node", "list"]).env_remove("SPAWNIT_SWARM_HOST").output().unwrap();
    let run = common::Run::from(run, &["node", "list"]);
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("--swarm-host") && run.stderr.contains("SPAWNIT_SWARM_HOST"), "{run}");

    let swarm = SwarmCluster::start("cli-nodes", ClusterOptions { nodes: 3, images: Vec::new(), ports: Vec::new() })
        .expect("a 3-node swarm (scripts/test-images.sh builds its image)");
    let host = swarm.manager_host();
    let node = |args: &[&str]| -> Vec<String> {
        ["node"].iter().chain(args).map(|s| s.to_string()).chain(["--swarm-host".to_owned(), host.clone()]).collect()
    };
    let ok = |args: &[&str]| {
        let args = node(args);
        w.ok(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let refused = |args: &[&str]| {
        let args = node(args);
        let run = w.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_ne!(run.code, 0, "{run}");
        run
    };

    // list: a table, and the nodes as JSON.
    let table = ok(&["list"]).stdout;
    assert!(table.starts_with("ID") && table.contains("HOSTNAME") && table.contains("AVAIL"), "{table}");
    for n in swarm.nodes() {
        assert!(table.contains(&n.hostname), "{} is not listed:\n{table}", n.hostname);
    }
    let nodes = json(&ok(&["list", "--output", "json"]));
    let nodes = nodes.as_array().unwrap();
    assert_eq!(nodes.len(), 3, "{nodes:#?}");
    assert_eq!(nodes.iter().filter(|n| n["role"] == "manager").count(), 1);
    let worker = nodes.iter().find(|n| n["role"] == "worker").unwrap();
    let hostname = worker["hostname"].as_str().unwrap().to_owned();

    // show: every field, by hostname; JSON the same node.
    let shown = ok(&["show", &hostname]).stdout;
    for part in
        [format!("Node {hostname}"), "Availability: active".into(), "Status:       ready".into(), "Tasks:".into()]
    {
        assert!(shown.contains(&part), "{part} missing:\n{shown}");
    }
    assert_eq!(json(&ok(&["show", &hostname, "--output", "json"]))["id"], worker["id"]);

    // join-token: the line alone on stdout, the hint on stderr; --manager another token.
    let run = ok(&["join-token"]);
    let line = run.stdout.trim();
    assert_eq!(run.stdout.lines().count(), 1, "{run}");
    assert!(line.starts_with("docker swarm join --token SWMTKN-") && line.ends_with(":2377"), "{run}");
    assert!(run.stderr.contains("2377"), "the hint: {run}");
    let manager = json(&ok(&["join-token", "--manager", "--output", "json"]));
    assert_eq!(manager["role"], "manager");
    assert_ne!(manager["command"].as_str(), Some(line));

    // drain, activate.
    let out = ok(&["drain", &hostname]).stdout;
    assert!(out.contains(&hostname) && out.contains("drained"), "{out}");
    assert_eq!(json(&ok(&["show", &hostname, "--output", "json"]))["availability"], "drain");
    let out = ok(&["activate", &hostname]).stdout;
    assert!(out.contains("is active"), "{out}");
    assert_eq!(json(&ok(&["show", &hostname, "--output", "json"]))["availability"], "active");

    // Bad input: refused naming the flag or argument; unknown node: says so.
    let run = refused(&["show", "bad!node"]);
    assert!(run.stderr.contains("<NODE>") && run.stderr.contains("not a node id or hostname"), "{run}");
    let run = refused(&["rent", "--client", &w.client, "--count", "0", "--ttl", "1h"]);
    assert!(run.stderr.contains("--count"), "{run}");
    let run = refused(&["rent", "--client", &w.client, "--ttl", "soon"]);
    assert!(run.stderr.contains("--ttl") && run.stderr.contains("not a duration"), "{run}");
    let run = refused(&["rent", "--client", "Bad_Client", "--ttl", "1h"]);
    assert!(run.stderr.contains("--client"), "{run}");
    let run = refused(&["release", "--client", &w.client]);
    assert!(run.stderr.contains("<NODE") && run.stderr.contains("--all"), "{run}");
    let run = refused(&["extend", "--client", &w.client, "--all"]);
    assert!(run.stderr.contains("--by"), "{run}");
    let run = refused(&["show", "nosuchnode"]);
    assert!(run.stderr.contains("nosuchnode") && run.stderr.contains("not found"), "{run}");
    assert!(json(&ok(&["list", "--client", &w.client, "--output", "json"])).as_array().unwrap().is_empty());

    // rent, extend, release.
    let out = ok(&["rent", "--client", &w.client, "--count", "1", "--ttl", "2h"]).stdout;
    assert!(out.contains(&format!("Rented 1 node(s) to client {}", w.client)), "{out}");
    let mine = json(&ok(&["list", "--client", &w.client, "--output", "json"]));
    let mine = mine.as_array().unwrap();
    assert_eq!(mine.len(), 1, "{mine:#?}");
    assert_eq!(mine[0]["client"], w.client.as_str());
    let rented = mine[0]["hostname"].as_str().unwrap().to_owned();
    assert!(
        ok(&["list"]).stdout.lines().any(|l| l.contains(&rented) && l.contains(&w.client)),
        "the table shows the client"
    );
    let extended = json(&ok(&["extend", "--client", &w.client, "--all", "--by", "1h", "--output", "json"]));
    let remaining = extended[0]["remaining_s"].as_i64().unwrap();
    assert!((10700..=10800).contains(&remaining), "{extended}");
    let out = ok(&["extend", "--client", &w.client, &rented, "--by", "30m"]).stdout;
    assert!(out.contains(&format!("The lease of {rented}")) && out.contains("now ends at"), "{out}");
    let out = ok(&["release", "--client", &w.client, &rented]).stdout;
    assert!(out.contains("Released 1 node(s)") && out.contains(&rented), "{out}");
    assert!(json(&ok(&["list", "--client", &w.client, "--output", "json"])).as_array().unwrap().is_empty());
    // Nothing left to release: said, naming the client.
    let run = refused(&["release", "--client", &w.client, "--all"]);
    assert!(run.stderr.contains(&w.client) && run.stderr.contains("not found"), "{run}");
}
