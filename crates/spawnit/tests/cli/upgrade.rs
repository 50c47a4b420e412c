//! Upgrading a store (issue 9), through the real `spawnit` binary on the real Docker engine.
//!
//! The fixture `tests/fixtures/store-format-1/` is a store written by the SpawnIt before store
//! format 2 (`make-store-format-1.sh` made it): two deployed services (`web`: hello, `cache`:
//! redis with a volume), one never applied (`idle`), the network `default`, users, a token, jobs
//! and audit entries. Each test copies it under a client id of its own, with free ports.

use crate::common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use spawnit_engine::{Engine, Providers, RunOptions};
use spawnit_model::{Id, ProviderKind};

const FIXTURE_CLIENT: &str = "upgrade-fixture";
/// The host ports the fixture's specs publish on, replaced by free ones in each copy.
const FIXTURE_PORTS: [&str; 3] = ["47811", "47812", "47813"];

fn fixture_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-format-1")
}

fn fixture_token() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-format-1.token");
    std::fs::read_to_string(path).expect("fixture token").trim().to_owned()
}

/// A world whose client id is unique to this run (the fixture's client is renamed to it).
fn world() -> World {
    World::new()
}

/// Copies the fixture to `dest` as client `client`, its services on free ports.
fn fixture_copy(dest: &Path, client: &str) {
    let ports: Vec<(String, String)> = FIXTURE_PORTS.iter().map(|p| (p.to_string(), free_port().to_string())).collect();
    copy_relocated(&fixture_dir(), dest, client, &ports);
}

fn copy_relocated(src: &Path, dest: &Path, client: &str, ports: &[(String, String)]) {
    std::fs::create_dir_all(dest).expect("create the store copy");
    for entry in std::fs::read_dir(src).expect("read the fixture") {
        let entry = entry.expect("fixture entry");
        let name = entry.file_name().to_string_lossy().replace(FIXTURE_CLIENT, client);
        let to = dest.join(&name);
        if entry.file_type().expect("file type").is_dir() {
            copy_relocated(&entry.path(), &to, client, ports);
            continue;
        }
        let bytes = std::fs::read(entry.path()).expect("read a fixture file");
        let out = match String::from_utf8(bytes) {
            Ok(mut text) => {
                text = text.replace(FIXTURE_CLIENT, client);
                // Ports only in specs and states, where they are fields (job records are history).
                if name == "spec.json" || name == "state.json" {
                    for (old, new) in ports {
                        text = text.replace(old, new);
                    }
                }
                text.into_bytes()
            }
            Err(e) => e.into_bytes(),
        };
        std::fs::write(&to, out).expect("write the store copy");
    }
}

/// Every file of a store, by path relative to it.
fn files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).expect("read the store").flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).expect("under the root").to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&path).expect("read a store file"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn id(s: &str) -> Id {
    Id::parse(s).expect("valid id")
}

/// Deploys the fixture's network and its services `web` and `cache` the way format 1 did: with
/// the library on the store as it is (not migrated: no marker, specs without `docker_naming`,
/// so the engine names every object with the format-1 scheme `spawnit-<client>-<service>-…`).
fn deploy_before_upgrade(dir: &Path, client: &str) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let store = spawnit_store::Store::open_local(dir).expect("open the fixture copy");
        assert_eq!(store.format().await.expect("format"), 1, "the fixture is a format-1 store");
        let docker = spawnit_docker::DockerProvider::connect().await.expect("docker");
        let engine = Engine::open(store, Providers::default().with(ProviderKind::Docker, Arc::new(docker)))
            .await
            .expect("engine");
        let client = id(client);
        let run = RunOptions::new("before-the-upgrade", Arc::new(|_| {}));
        let report = engine.network_apply(&client, &id("default"), &run).await.expect("network apply");
        assert_eq!(report.failed, 0, "{:?}", report.errors);
        for service in ["web", "cache"] {
            let report = engine.service_apply(&client, &id(service), &run).await.expect("apply");
            assert_eq!(report.failed, 0, "{service}: {:?}", report.errors);
        }
    });
}

fn inspect(what: &str, name: &str, format: &str) -> String {
    docker(&[what, "inspect", "-f", format, name]).trim().to_owned()
}

/// A raw HTTP/1.1 request to the server on `port`: status and body.
fn http(port: u16, method: &str, path: &str, token: &str, body: Option<&Value>) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to the server");
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nContent-Type: \
         application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).expect("send");
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("read the answer");
    let status = answer.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

/// `spawnit serve` on the world's store, killed on drop.
struct Serve {
    child: std::process::Child,
    port: u16,
}

impl Serve {
    fn start(w: &World, env: &[(&str, &str)]) -> Serve {
        let port = free_port();
        let mut cmd = w.cmd(&["serve", "--listen", &format!("127.0.0.1:{port}")]);
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start spawnit serve");
        let serve = Serve { child, port };
        http_get(port, Duration::from_secs(30)).expect("the server answers");
        serve
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn upgrade_from_format_1_adopts_running_objects_and_keeps_every_record() {
    let w = world();
    let data = w.data_dir();
    fixture_copy(&data, &w.client);
    let c = &w.client;
    deploy_before_upgrade(&data, c);

    // Format 1 names, running.
    let (web, cache, volume, network) = (
        format!("spawnit-{c}-web-echo"),
        format!("spawnit-{c}-cache-redis"),
        format!("spawnit-{c}-cache-data"),
        format!("spawnit-{c}-default"),
    );
    let ids_of = || {
        [
            inspect("container", &web, "{{.Id}} {{.State.Running}}"),
            inspect("container", &cache, "{{.Id}} {{.State.Running}}"),
            // A volume has no id, and its CreatedAt is its directory's mtime, which moves: it is
            // the same one because the running cache container (same id) still mounts it.
            inspect("volume", &volume, "{{.Name}}"),
            inspect("network", &network, "{{.Id}}"),
        ]
    };
    let ids_before = ids_of();
    assert!(ids_before[0].ends_with("true") && ids_before[1].ends_with("true"), "{ids_before:?}");
    let before = files(&data);
    assert!(!before.contains_key("spawnit-store.json"), "a format-1 store has no marker");

    // The upgrade: the first command of the new binary migrates the store, step by step.
    let upgrade = w.cmd(&["catalog"]).env("SPAWNIT_LOG", "info").output().expect("run spawnit");
    let upgrade = Run::from(upgrade, &["catalog"]);
    assert_eq!(upgrade.code, 0, "{upgrade}");
    assert!(upgrade.stderr.contains("migrating from format 1 to 2"), "{upgrade}");
    for step in ["step 1/4", "step 2/4", "step 3/4", "step 4/4"] {
        assert!(upgrade.stderr.contains(step), "{step} not logged:\n{upgrade}");
    }
    assert!(upgrade.stderr.contains("now format 2"), "{upgrade}");

    // Every object as before: specs gain only `docker_naming: v1`; the rest is byte for byte.
    let after = files(&data);
    let marker: Value = serde_json::from_slice(&after["spawnit-store.json"]).expect("marker JSON");
    assert_eq!(marker["format"], 2, "{marker}");
    assert_eq!(marker["written_by"], env!("CARGO_PKG_VERSION"), "{marker}");
    assert!(!after.contains_key("spawnit-store.lock.json"), "the migration lock is released");
    let mut specs = 0;
    for (path, old) in &before {
        let new = after.get(path).unwrap_or_else(|| panic!("{path} lost in the upgrade"));
        if path.ends_with("spec.json") && path.starts_with("clients/") {
            let mut expected: Value = serde_json::from_slice(old).expect("old spec");
            expected["docker_naming"] = json!("v1");
            assert_eq!(serde_json::from_slice::<Value>(new).expect("new spec"), expected, "{path}");
            specs += 1;
        } else {
            assert!(old == new, "{path} changed in the upgrade");
        }
    }
    assert_eq!(specs, 4, "3 service specs and 1 network spec");
    assert_eq!(after.len(), before.len() + 1, "only the marker is new");
    for kind in ["auth/users/alice.json", "auth/users/bob.json", "jobs/", "audit/", "auth/tokens/"] {
        assert!(before.keys().any(|k| k.starts_with(kind)), "the fixture has {kind}");
    }

    // The running objects are adopted under their old names: compliant, nothing created.
    for service in ["web", "cache"] {
        let plan = w.run(&["plan", service, "--detailed-exitcode"]);
        assert_eq!(plan.code, 0, "{plan}");
        let json: Value = serde_json::from_str(&w.ok(&["plan", service, "--output", "json"]).stdout).unwrap();
        assert_eq!(json["status"], "compliant", "{json}");
        let reasons = json["changes"].to_string();
        assert!(reasons.contains("adopted under its old name spawnit-"), "{json}");
        for change in json["changes"].as_array().expect("changes") {
            assert_eq!(change["action"], "no-op", "{change}");
        }
    }
    let net = w.run(&["network", "plan", "default", "--detailed-exitcode"]);
    assert_eq!(net.code, 0, "{net}");
    // The never-applied service still wants to be created, as before the upgrade.
    let idle = w.run(&["plan", "idle", "--detailed-exitcode"]);
    assert_eq!(idle.code, 2, "{idle}");
    assert!(idle.stdout.contains("+ container.echo") && idle.stdout.contains("not yet created"), "{idle}");
    for service in ["web", "cache"] {
        let applied = w.ok(&["apply", service, "--auto-approve"]);
        assert!(!applied.stdout.contains("Created") && !applied.stdout.contains("Deleted"), "{applied}");
    }
    assert_eq!(ids_of(), ids_before, "the same objects, still running");

    // The fixture's token, users and jobs still work through the server.
    {
        let serve = Serve::start(&w, &[]);
        let token = fixture_token();
        let (status, body) = http(serve.port, "GET", "/api/services", &token, None);
        assert_eq!(status, 200, "{body}");
        for service in ["\"web\"", "\"cache\"", "\"idle\""] {
            assert!(body.contains(service), "{service} missing: {body}");
        }
        let (status, body) = http(serve.port, "GET", "/api/jobs", &token, None);
        assert_eq!(status, 200, "{body}");
        let jobs: Value = serde_json::from_str(&body).expect("jobs JSON");
        let listed = jobs.as_array().or_else(|| jobs["jobs"].as_array()).map_or(0, Vec::len);
        assert!(listed >= 2, "the fixture's jobs: {body}");
    }

    // A new service in the old network: the new names, on the network's old name.
    let port = free_port();
    w.ok(&["create", "hello", "extra", "--set", &format!("port={port}")]);
    w.ok(&["apply", "extra", "--auto-approve"]);
    let extra = format!("spawnit_{c}_extra_echo");
    let joined = inspect("container", &extra, "{{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}}");
    assert_eq!(joined, network);
    let plan = w.run(&["plan", "extra", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{plan}");
}

/// The files of a store that a migration may write, as the test compares them.
fn migrated_view(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = files(root);
    let marker: Value = serde_json::from_slice(&out.remove("spawnit-store.json").expect("a marker")).unwrap();
    assert_eq!(marker["format"], 2, "{marker}");
    out
}

#[test]
fn a_migration_killed_between_steps_resumes_to_the_same_end_state() {
    let w = world();
    let data = w.data_dir();
    let ports: Vec<(String, String)> = FIXTURE_PORTS.iter().map(|p| (p.to_string(), p.to_string())).collect();
    copy_relocated(&fixture_dir(), &data, &w.client, &ports);
    let reference = tempfile::tempdir().expect("temp dir");
    copy_relocated(&fixture_dir(), reference.path(), &w.client, &ports);

    // The reference: migrated in one go.
    let mut cmd = w.cmd(&["catalog"]);
    cmd.env("SPAWNIT_DATA", reference.path());
    let out = Run::from(cmd.output().expect("run spawnit"), &["catalog"]);
    assert_eq!(out.code, 0, "{out}");

    // Killed after the first step, while it waits before the second.
    let mut child = w
        .cmd(&["catalog"])
        .env("SPAWNIT_LOG", "info")
        .env("SPAWNIT_MIGRATION_STEP_DELAY_MS", "600000")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start spawnit");
    let stderr = child.stderr.take().expect("stderr");
    let mut seen = Vec::new();
    for line in BufReader::new(stderr).lines() {
        let line = line.expect("read stderr");
        seen.push(line.clone());
        if line.contains("step 1/4") {
            break;
        }
    }
    assert!(seen.last().is_some_and(|l| l.contains("step 1/4")), "step 1 never logged: {seen:#?}");
    assert!(child.try_wait().expect("try_wait").is_none(), "the migration must still be running when killed");
    child.kill().expect("kill -9");
    let status = child.wait().expect("wait");
    assert!(!status.success(), "killed, not finished: {status:?}");

    // Half migrated: one spec pinned, the others not, no marker, the lock left behind.
    let half = files(&data);
    assert!(!half.contains_key("spawnit-store.json"), "no marker before the last step");
    assert!(half.contains_key("spawnit-store.lock.json"), "the killed migration's lock stays");
    let pinned: Vec<&String> = half
        .iter()
        .filter(|(k, v)| k.ends_with("spec.json") && String::from_utf8_lossy(v).contains("docker_naming"))
        .map(|(k, _)| k)
        .collect();
    assert_eq!(pinned.len(), 1, "exactly the first step was done: {pinned:?}");

    // Started again: it takes the dead process's lock over and finishes.
    let again = w.cmd(&["catalog"]).env("SPAWNIT_LOG", "info").output().expect("run spawnit");
    let again = Run::from(again, &["catalog"]);
    assert_eq!(again.code, 0, "{again}");
    assert!(again.stderr.contains("taking over the migration lock"), "{again}");
    assert!(again.stderr.contains("already migrated"), "{again}");
    assert_eq!(migrated_view(&data), migrated_view(reference.path()), "the same end state");
}

/// Marks the world's store with a format from the future, as a newer SpawnIt would.
fn mark_newer(data: &Path, format: u32) {
    let marker = json!({"format": format, "written_by": "9.0.0", "written_at": "2030-01-01T00:00:00Z"});
    std::fs::write(data.join("spawnit-store.json"), serde_json::to_vec_pretty(&marker).unwrap()).unwrap();
}

#[test]
fn a_store_of_a_newer_format_refuses_every_write_and_still_reads() {
    let w = world();
    let data = w.data_dir();
    fixture_copy(&data, &w.client);
    mark_newer(&data, 99);
    let before = files(&data);
    let message = "this store was written by SpawnIt 9.0.0 (format 99)";

    // Reads work.
    let catalog = w.ok(&["catalog"]);
    assert!(catalog.stdout.contains("redis"), "{catalog}");
    let show: Value = serde_json::from_str(&w.ok(&["show", "web", "--output", "json"]).stdout).expect("show JSON");
    assert_eq!(show["spec"]["template"]["id"], "hello", "{show}");
    let status = w.run(&["status"]);
    assert!(status.stdout.contains("web") && status.stdout.contains("cache"), "{status}");

    // Every write is refused with the message, and nothing changes.
    let port = format!("port={}", free_port());
    let writes: Vec<Vec<&str>> = vec![
        vec!["create", "hello", "other", "--set", &port],
        vec!["apply", "web", "--auto-approve"],
        vec!["destroy", "web", "--auto-approve"],
        vec!["delete", "idle"],
        vec!["network", "create", "second"],
        vec!["network", "apply", "default", "--auto-approve"],
        vec!["user", "create", "carol", "--client", &w.client, "--password", "a-password-1"],
        vec!["token", "create", "--user", "alice", "--client", &w.client],
    ];
    for args in &writes {
        let run = w.run(args);
        assert_eq!(run.code, 1, "{run}");
        assert!(run.stderr.contains(message) && run.stderr.contains("upgrade this binary"), "{run}");
    }
    assert_eq!(files(&data), before, "a refused write changes nothing");
    assert!(w.labelled(None).is_empty(), "nothing was deployed: {:?}", w.labelled(None));

    // The server: GET works, every change is a 503 saying why.
    let serve = Serve::start(&w, &[]);
    let token = fixture_token();
    let (status, body) = http(serve.port, "GET", "/api/services", &token, None);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"web\""), "{body}");
    let create = json!({"template": "hello", "name": "other", "params": {"port": free_port()}});
    for (method, path, body) in [
        ("POST", "/api/services", Some(&create)),
        ("POST", "/api/services/web/apply", None),
        ("DELETE", "/api/services/idle", None),
        ("POST", "/api/networks", Some(&json!({"name": "second"}))),
    ] {
        let (status, answer) = http(serve.port, method, path, &token, body);
        assert_eq!(status, 503, "{method} {path}: {answer}");
        let answer: Value = serde_json::from_str(&answer).expect("error JSON");
        assert_eq!(answer["error"]["code"], "store_read_only", "{answer}");
        assert!(answer["error"]["message"].as_str().is_some_and(|m| m.contains(message)), "{answer}");
    }
    drop(serve);
    assert_eq!(files(&data), before, "the server changed nothing");
}

#[test]
fn an_older_replica_stops_writing_once_a_newer_one_migrated_the_store() {
    let w = world();
    let data = w.data_dir();
    fixture_copy(&data, &w.client);
    // This binary migrates the fixture to its format and serves it, re-reading the marker often.
    let serve = Serve::start(&w, &[("SPAWNIT_FORMAT_RECHECK_S", "0.2")]);
    let token = fixture_token();
    let (status, body) = http(serve.port, "POST", "/api/networks", &token, Some(&json!({"name": "first"})));
    assert_eq!(status, 201, "writes work on its own format: {body}");

    // A newer replica migrates the store to format 3.
    mark_newer(&data, 3);
    let deadline = Instant::now() + Duration::from_secs(60);
    let answer = loop {
        let (status, body) = http(serve.port, "POST", "/api/networks", &token, Some(&json!({"name": "late"})));
        if status != 201 && status != 409 {
            break (status, body);
        }
        assert!(Instant::now() < deadline, "the older replica kept writing: {status} {body}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(answer.0, 503, "{}", answer.1);
    assert!(answer.1.contains("store_read_only") && answer.1.contains("format 3"), "{}", answer.1);

    // Reads still work, and what the newer replica wrote is left alone.
    let (status, body) = http(serve.port, "GET", "/api/networks", &token, None);
    assert_eq!(status, 200, "{body}");
    let before = files(&data);
    let (status, _) = http(serve.port, "POST", "/api/networks", &token, Some(&json!({"name": "later"})));
    assert_eq!(status, 503);
    drop(serve);
    let marker: Value = serde_json::from_slice(&files(&data)["spawnit-store.json"]).unwrap();
    assert_eq!(marker["format"], 3, "the newer marker is never overwritten: {marker}");
    let after = files(&data);
    let changed: Vec<&String> = after.keys().filter(|k| before.get(*k) != after.get(*k)).collect();
    assert!(changed.is_empty(), "the older replica wrote {changed:?}");
}
