//! One click really is one click, on the command line: `apply` of a service whose network is
//! not applied yet applies the network first, saying so; `plan` changes nothing and says how.

use crate::common;

use std::time::Duration;

use common::*;

#[test]
fn apply_with_no_network_applies_it_first() {
    let w = World::new();
    let port = free_port();
    w.ok(&["create", "hello", "web", "--set", &format!("port={port}"), "--set", "message=one command"]);

    // Plan changes nothing: it names the network and the command that applies it first.
    let plan = w.run(&["plan", "web"]);
    assert_eq!(plan.code, 1, "{plan}");
    assert!(plan.stdout.contains("network default is not applied yet"), "{plan}");
    assert!(plan.stdout.contains("`spawnit apply web` applies network default first"), "{plan}");
    assert!(w.labelled(None).is_empty(), "plan created something: {:?}", w.labelled(None));

    let applied = w.ok(&["apply", "web", "--auto-approve"]);
    let said = applied.stdout.find("Network default is not applied yet: applying it first.");
    let network_done = applied.stdout.find("network.default");
    let service_done = applied.stdout.find("container.echo: Created after");
    assert!(said.is_some() && network_done.is_some() && service_done.is_some(), "{applied}");
    assert!(said < network_done && network_done < service_done, "the network first: {applied}");
    assert!(http_get(port, Duration::from_secs(15)).expect("hello answers").contains("one command"));
    assert_eq!(w.run(&["network", "plan", "default", "--detailed-exitcode"]).code, 0);

    // Once the network is there, apply says nothing about it.
    let again = w.ok(&["apply", "web", "--auto-approve"]);
    assert!(!again.stdout.contains("applying it first"), "{again}");
}

#[test]
fn create_with_no_port_chooses_a_free_one_and_shows_it() {
    let w = World::new();
    let created = w.ok(&["create", "hello", "web", "--set", "message=chosen"]);
    let line = created.stdout.lines().find(|l| l.starts_with("Port port: ")).unwrap_or_else(|| panic!("{created}"));
    assert!(line.ends_with("(a free port chosen by SpawnIt)."), "{created}");
    let port: u16 = line["Port port: ".len()..].split(' ').next().unwrap().parse().expect("a port number");
    let show = w.ok(&["show", "web", "--output", "json"]).stdout;
    assert!(show.contains(&format!("127.0.0.1:{port}")), "{show}");

    // A port given is not announced as chosen.
    let given = w.ok(&["create", "hello", "other", "--set", &format!("port={}", free_port())]);
    assert!(!given.stdout.contains("chosen by SpawnIt"), "{given}");
}
