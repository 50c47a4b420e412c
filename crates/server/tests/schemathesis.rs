//! schemathesis (PyPI) fuzzes the API from its own OpenAPI document: no input it generates may
//! give a 5xx, and every answer must match the document (status, content type, schema).

mod common;

use std::time::Duration;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_undocumented_answer() {
    let t = TestServer::start(|_| {}).await;
    // Something to find: a service and a finished job.
    t.hello("web", "fuzzed").await;
    let schema = t.url("/api/openapi.json");
    let auth = format!("Authorization: Bearer {}", t.token);
    let run = tokio::process::Command::new("schemathesis")
        .args(["run", &schema, "-H", &auth, "--checks"])
        .arg("not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance")
        .args(["--exclude-path", "/api/events"])
        .args(["--phases", "examples,coverage,fuzzing", "--max-examples", "25", "--workers", "1"])
        .args(["--request-timeout", "20", "--suppress-health-check", "all"])
        .env("NO_COLOR", "1")
        .current_dir(t.dir.path())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(900), run)
        .await
        .expect("schemathesis finished within 15 minutes")
        .unwrap_or_else(|e| panic!("cannot run schemathesis ({e}): run scripts/test.sh, which installs it"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    std::fs::write(std::env::temp_dir().join("spawnit-schemathesis.log"), &text).ok();
    assert!(out.status.success(), "schemathesis failed:\n{text}");
    assert!(text.contains("passed"), "{text}");
}
