//! schemathesis (PyPI) fuzzes the API from its own OpenAPI document, as a member and as an
//! admin, through every phase (examples, coverage, fuzzing, and the stateful phase that chains
//! calls through the links it infers), with every check: no input may give a 5xx; every answer
//! must match the document (status, content type, schema); data the document allows is
//! accepted, data it forbids is refused; and no operation that needs a token answers without
//! one. The only failures dropped are the few the document cannot know about (a template's
//! parameters, the aws provider, the current time): `schemathesis_hooks.py` says which.

use crate::common;

use std::time::Duration;

use common::*;
use spawnit_server::accounts::Role;

/// Runs schemathesis with `token` and `args`; panics with its report unless it passes.
async fn schemathesis(t: &TestServer, label: &str, token: &str, args: &[&str]) -> String {
    let schema = t.url("/api/openapi.json");
    let auth = format!("Authorization: Bearer {token}");
    let hooks = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis_hooks.py");
    let run = tokio::process::Command::new("schemathesis")
        .args(["run", &schema, "-H", &auth, "--checks", "all"])
        // A never-ending stream: its answer's headers are checked by `api.rs`.
        .args(["--exclude-path", "/api/events", "--exclude-path", "/api/jobs/{id}/events"])
        .args(args)
        .args(["--max-examples", "20", "--workers", "1", "--seed", "1"])
        .args(["--request-timeout", "20", "--suppress-health-check", "all"])
        .env("NO_COLOR", "1")
        .env("SCHEMATHESIS_HOOKS", hooks)
        .current_dir(t.dir.path())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(1200), run)
        .await
        .unwrap_or_else(|_| panic!("schemathesis ({label}) did not finish within 20 minutes"))
        .unwrap_or_else(|e| panic!("cannot run schemathesis ({e}): run scripts/test.sh, which installs it"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    std::fs::write(std::env::temp_dir().join(format!("spawnit-schemathesis-{label}.log")), &text).ok();
    assert!(out.status.success(), "schemathesis ({label}) failed:\n{text}");
    assert!(text.contains("passed"), "{text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_undocumented_answer() {
    let t = TestServer::start(|_| {}).await;
    // Something to find: a service and a finished job.
    t.hello("web", "fuzzed").await;
    // An admin of a client of its own (what it creates is cleaned up below).
    let admin_client = client_unique();
    let store = spawnit_store::Store::open_local(t.dir.path()).unwrap();
    let admin = spawnit_server::auth::token_create(
        &store,
        "fuzz-admin",
        &spawnit_model::Id::parse(&admin_client).unwrap(),
        Role::Admin,
    )
    .await
    .unwrap();

    // Half of the generated ids and template names are real ones (the member's service `web`,
    // the template `hello`), so the fuzzing reaches past "not found" into each handler.
    let mut config =
        String::from("[dictionaries.services]\nvalues = [\"web\"]\n\n[dictionaries.templates]\nvalues = [\"hello\"]\n");
    config.push_str(
        "\n[[operations]]\ninclude-operation-id = \"catalog_get\"\nparameters = { \"path.template\" = { dictionary = \"templates\", probability = 0.5 } }\n\
         \n[[operations]]\ninclude-operation-id = \"service_create\"\nparameters = { \"body.template\" = { dictionary = \"templates\", probability = 0.5 } }\n",
    );
    for op in [
        "service_get",
        "service_update",
        "service_delete",
        "service_plan",
        "service_apply",
        "service_destroy",
        "lease_set",
        "lease_remove",
        "lease_extend",
        "service_scale_get",
        "service_scale",
    ] {
        config.push_str(&format!(
            "\n[[operations]]\ninclude-operation-id = \"{op}\"\nparameters = {{ \"path.id\" = {{ dictionary = \"services\", probability = 0.5 }} }}\n"
        ));
    }
    std::fs::write(t.dir.path().join("schemathesis.toml"), config).unwrap();

    // A run may not revoke the token it uses (the stateful phase links a token listing to
    // `DELETE /api/tokens/{id}`): revocation is fuzzed in a run of its own, without that phase,
    // with a token of its own.
    let every_phase = ["--phases", "examples,coverage,fuzzing,stateful", "--exclude-operation-id", "token_revoke"];
    let member = schemathesis(&t, "member", &t.token, &every_phase).await;
    let admin_run = schemathesis(&t, "admin", &admin, &every_phase).await;
    let revoker = spawnit_server::auth::token_create(
        &store,
        "fuzz-revoker",
        &spawnit_model::Id::parse(&t.client).unwrap(),
        Role::Member,
    )
    .await
    .unwrap();
    let revoke = ["--phases", "examples,coverage,fuzzing", "--include-operation-id", "token_revoke"];
    schemathesis(&t, "revoke", &revoker, &revoke).await;
    for (label, text) in [("member", &member), ("admin", &admin_run)] {
        assert!(text.contains("Stateful"), "the stateful phase did not run ({label}):\n{text}");
    }

    // Dropping `t` stops the server (its jobs and reconciles), then removes what the admin's
    // fuzzing made in any client of this store (`TestServer::cleanup`).
}
