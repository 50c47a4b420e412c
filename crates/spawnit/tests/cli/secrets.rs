//! Secrets fail closed, end to end through the real `spawnit` binary on the real Docker engine:
//! a secret equal to a plan word (`create`, `no-op`…), a protocol (`tcp`), an image name, or a
//! part of other fields is masked in every plan, show and apply output, and the plan stays whole.

use crate::common;

use common::*;
use serde_json::Value;

const MASK: &str = "(sensitive)";

/// Keys whose strings are the plan's vocabulary (enums no secret can reach).
const VOCABULARY: [&str; 5] = ["action", "code", "status", "kind", "protocol"];

/// Every data string of a JSON plan (values, keys, address names), with where it sits; the
/// plan's vocabulary and the kind part of addresses are left out.
fn data_strings(value: &Value, key: &str, out: &mut Vec<(String, String)>) {
    match value {
        Value::String(s) if VOCABULARY.contains(&key) => {}
        Value::String(s) if matches!(key, "address" | "depends_on" | "security_group") => {
            out.push((key.into(), s.split_once('.').map_or(s.as_str(), |(_, name)| name).into()))
        }
        Value::String(s) => out.push((key.into(), s.clone())),
        Value::Number(n) => out.push((key.into(), n.to_string())),
        Value::Array(items) => items.iter().for_each(|v| data_strings(v, key, out)),
        Value::Object(map) => map.iter().for_each(|(k, v)| {
            // Keys of data maps are data; other keys are field names.
            if matches!(key, "env" | "outputs" | "params") {
                out.push(("(key)".into(), k.clone()));
            }
            data_strings(v, k, out)
        }),
        Value::Bool(_) | Value::Null => {}
    }
}

/// Asserts a JSON plan shows the secret nowhere but in its vocabulary, and that it was read.
fn plan_json_clean(secret: &str, out: &Run) -> Value {
    let plan: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out}"));
    let mut strings = Vec::new();
    data_strings(&plan, "", &mut strings);
    assert!(strings.iter().any(|(k, v)| k == "address" && v == "redis"), "the plan was read: {out}");
    for (key, s) in &strings {
        assert!(!s.contains(secret), "secret {secret:?} shown under {key:?} in {s:?}:\n{out}");
    }
    assert!(!out.stderr.contains(secret), "{out}");
    plan
}

/// Asserts a text output shows the secret nowhere, and that it holds `expected`.
fn text_clean(secret: &str, out: &Run, expected: &str) {
    assert!(out.all().contains(expected), "expected {expected:?}: {out}");
    assert!(!out.all().contains(secret), "secret {secret:?} shown:\n{out}");
}

/// The `desired` attributes of the plan's `container.redis` change.
fn redis_container(plan: &Value) -> &Value {
    let changes = plan["changes"].as_array().expect("changes");
    let change = changes.iter().find(|c| c["address"] == "container.redis").expect("container.redis planned");
    &change["desired"]["attrs"]
}

#[test]
fn a_secret_equal_to_a_plan_word_a_protocol_or_part_of_a_field_never_shows_in_plan_show_or_apply() {
    let w = World::new();
    let secrets = ["create", "update", "replace", "delete", "no-op", "tcp", "udp", "redis:7", "eviction", "spawnit"];
    // Each secret is its own service: the first one applies the network, the others run side by side.
    let case = |n: usize, secret: &str| {
        let service = format!("s{n}");
        let port = free_port();
        w.ok(&["create", "redis", &service, "--set", &format!("port={port}"), "--set", &format!("password={secret}")]);
        if n == 0 {
            w.ok(&["network", "apply", "default", "--auto-approve"]);
        }

        let plan = w.ok(&["plan", &service, "--output", "json"]);
        let shown = plan_json_clean(secret, &plan);
        let attrs = redis_container(&shown);
        assert_eq!(attrs["env"]["REDISCLI_AUTH"], MASK, "{plan}");
        assert_eq!(attrs["ports"][0]["protocol"], "tcp", "the plan's vocabulary stays: {plan}");
        assert!(shown["changes"].as_array().unwrap().iter().any(|c| c["action"] == "create"), "{plan}");
        text_clean(secret, &w.ok(&["plan", &service]), "Plan:");

        let applied = w.ok(&["apply", &service, "--auto-approve"]);
        text_clean(secret, &applied, "Complete after");
        // Positive control: the secret really is in what runs.
        let env =
            docker(&["inspect", "--format", "{{json .Config.Env}}", &format!("spawnit_{}_{service}_redis", w.client)]);
        assert!(env.contains(&format!("REDISCLI_AUTH={secret}")), "{env}");

        text_clean(secret, &w.ok(&["show", &service]), "Resources:");
        let show = w.ok(&["show", &service, "--output", "json"]);
        let shown: Value = serde_json::from_str(&show.stdout).unwrap_or_else(|e| panic!("{e}: {show}"));
        assert_eq!(shown["spec"]["params"]["password"], MASK, "{show}");
        assert!(!show.all().contains(secret), "secret {secret:?} shown:\n{show}");
        let compliant = w.ok(&["plan", &service, "--output", "json"]);
        assert_eq!(plan_json_clean(secret, &compliant)["status"], "compliant", "{compliant}");
        text_clean(secret, &w.ok(&["status"]), "compliant");

        text_clean(secret, &w.ok(&["destroy", &service, "--auto-approve"]), "Complete after");
        assert_eq!(w.labelled(Some(&service)), Vec::<String>::new());
    };
    case(0, secrets[0]);
    std::thread::scope(|s| {
        for (n, secret) in secrets.iter().enumerate().skip(1) {
            s.spawn(move || case(n, secret));
        }
    });
    w.ok(&["network", "destroy", "default", "--auto-approve"]);
}

#[test]
fn a_secret_equal_to_an_image_name_of_the_catalog_never_shows_in_plan_or_show() {
    let w = World::new();
    // Templates with a secret parameter get their own image as that secret; every other image
    // name of the catalog is tried as a Redis password.
    let own: [(&str, &str, &str); 7] = [
        ("grafana", "admin_password", "grafana/grafana:11.6.1"),
        ("mariadb", "password", "mariadb:11"),
        ("minio", "root_password", "minio/minio:RELEASE.2024-12-18T13-15-44Z"),
        ("mongodb", "password", "mongo:7"),
        ("postgres", "password", "postgres:16"),
        ("redis", "password", "redis:7"),
        ("spawnit", "s3_secret_access_key", "spawnit:latest"),
    ];
    let others = [
        "gitea/gitea:1.22",
        "hashicorp/http-echo:1.0",
        "jenkins/jenkins:lts-jdk17",
        "itzg/minecraft-server:java21",
        "nginx:1.27",
        "prom/prometheus:v2.54.1",
        "louislam/uptime-kuma:1",
    ];
    let cases = own.into_iter().chain(others.into_iter().map(|image| ("redis", "password", image)));
    let case = |n: usize, (template, param, secret): (&str, &str, &str)| {
        let service = format!("i{n}");
        let port = free_port();
        let mut args = vec!["create".to_owned(), template.to_owned(), service.clone()];
        args.extend(["--set".to_owned(), format!("{param}={secret}")]);
        if template == "redis" {
            args.extend(["--set".to_owned(), format!("port={port}")]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        w.ok(&args);
        if n == 0 {
            w.ok(&["network", "apply", "default", "--auto-approve"]);
        }
        let plan = w.ok(&["plan", &service, "--output", "json"]);
        let shown: Value = serde_json::from_str(&plan.stdout).unwrap_or_else(|e| panic!("{e}: {plan}"));
        let mut strings = Vec::new();
        data_strings(&shown, "", &mut strings);
        assert!(
            strings.iter().any(|(k, _)| k == "address") && shown["status"] == "drifted",
            "the plan was read: {plan}"
        );
        for (key, s) in &strings {
            assert!(!s.contains(secret), "secret {secret:?} shown under {key:?} in {s:?}:\n{plan}");
        }
        assert!(plan.stdout.contains(MASK), "the secret is masked where it is used: {plan}");
        text_clean(secret, &w.ok(&["plan", &service]), "Plan:");
        let show = w.ok(&["show", &service, "--output", "json"]);
        let view: Value = serde_json::from_str(&show.stdout).unwrap_or_else(|e| panic!("{e}: {show}"));
        assert_eq!(view["spec"]["params"][param], MASK, "{show}");
        assert!(!show.all().contains(secret), "secret {secret:?} shown:\n{show}");
        text_clean(secret, &w.ok(&["show", &service]), "Parameters:");
        w.ok(&["delete", &service]);
    };
    // The first case applies the network; the others run side by side.
    let mut cases = cases.enumerate();
    if let Some((n, first)) = cases.next() {
        case(n, first);
    }
    std::thread::scope(|s| {
        for (n, c) in cases {
            s.spawn(move || case(n, c));
        }
    });
    w.ok(&["network", "destroy", "default", "--auto-approve"]);
}
