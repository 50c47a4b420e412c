//! SpawnIt deploys SpawnIt (issue 14) on the real Docker engine through the real `spawnit`
//! binary: the admin-only `spawnit` template runs two `spawnit serve` replicas of a locally built
//! image behind the real Caddy load balancer, on one shared named volume holding their store and
//! with the host's Docker socket. The deployed SpawnIt answers `/healthz` through the balancer,
//! exactly one of its replicas creates the first admin token, and with that token it deploys the
//! catalog's `hello` on the host's engine, which answers; then everything is destroyed and no
//! Docker object of either SpawnIt is left. With `s3=true` the replicas share a bucket of a
//! moto_server they reach on the Docker bridge instead; on AWS (moto) the template plans on
//! `aws-asg` only.
//!
//! No base image can be pulled here, so the image is a stand-in for the repository's
//! `Dockerfile`, made like scripts/test-images.sh makes its images: `docker import` of the
//! binary under test, the libraries `ldd` lists, a static busybox, a non-root user 10001 and
//! its `/data`, tagged `spawnit:latest` as the template names it.

use crate::common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

/// The template's default image.
const IMAGE: &str = "spawnit:latest";
const LABEL: &str = "spawnit.test-image";
const SERVICE: &str = "platform";

/// Builds the stand-in image from the binary under test, unless it is already built from it.
fn image_build() {
    let binary = Path::new(env!("CARGO_BIN_EXE_spawnit"));
    let bytes = std::fs::read(binary).expect("read the spawnit binary");
    let hash = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        bytes.hash(&mut h);
        format!("{:016x}-{}", h.finish(), bytes.len())
    };
    let found =
        docker_try(&["image", "inspect", "--format", &format!("{{{{ index .Config.Labels \"{LABEL}\" }}}}"), IMAGE]);
    if found.trim() == hash {
        return;
    }
    let busybox = Path::new("/bin/busybox");
    assert!(busybox.exists(), "a static busybox is needed at /bin/busybox: run scripts/test.sh (busybox-static)");
    let work = tempfile::tempdir().expect("temp dir");
    let root = work.path().join("root");
    let copy = |from: &Path, to: &str| {
        let target = root.join(to.trim_start_matches('/'));
        std::fs::create_dir_all(target.parent().expect("a parent")).expect("mkdir");
        std::fs::copy(from, &target).unwrap_or_else(|e| panic!("copy {} to {}: {e}", from.display(), target.display()));
    };
    copy(binary, "/usr/local/bin/spawnit");
    copy(busybox, "/bin/busybox");
    // Every library ldd lists, and the dynamic loader, under the path ldd names.
    let ldd = Command::new("ldd").arg(binary).output().expect("run ldd");
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let path = match words.as_slice() {
            [_, "=>", path, ..] if path.starts_with('/') => *path,
            [path, ..] if path.starts_with('/') => *path,
            _ => continue,
        };
        copy(&std::fs::canonicalize(path).expect("a library"), path);
    }
    for link in ["sh", "wget", "ls", "cat"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(link)).expect("symlink");
    }
    if Path::new("/etc/ssl/certs/ca-certificates.crt").exists() {
        copy(Path::new("/etc/ssl/certs/ca-certificates.crt"), "/etc/ssl/certs/ca-certificates.crt");
    }
    std::fs::create_dir_all(root.join("etc")).expect("mkdir etc");
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nspawnit:x:10001:10001:SpawnIt:/data:/sbin/nologin\n",
    )
    .expect("passwd");
    std::fs::write(root.join("etc/group"), "root:x:0:\nspawnit:x:10001:\n").expect("group");
    std::fs::create_dir_all(root.join("tmp")).expect("mkdir tmp");
    std::fs::create_dir_all(root.join("data")).expect("mkdir data");
    // Everything root-owned but /data, the user's (a new named volume on it starts so).
    let tar = work.path().join("image.tar");
    let tar_run = |args: &[&str]| {
        let out = Command::new("tar").args(args).output().expect("run tar");
        assert!(out.status.success(), "tar {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let (tar_s, root_s) = (tar.to_string_lossy().into_owned(), root.to_string_lossy().into_owned());
    tar_run(&["--numeric-owner", "--owner=0", "--group=0", "--exclude=./data", "-C", &root_s, "-cf", &tar_s, "."]);
    tar_run(&["--numeric-owner", "--owner=10001", "--group=10001", "-C", &root_s, "-rf", &tar_s, "./data"]);
    let changes = [
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned(),
        "ENV SPAWNIT_LISTEN=0.0.0.0:8080".to_owned(),
        "ENV SPAWNIT_DATA=/data".to_owned(),
        "USER 10001:10001".to_owned(),
        "WORKDIR /data".to_owned(),
        "VOLUME /data".to_owned(),
        "EXPOSE 8080".to_owned(),
        r#"ENTRYPOINT ["/usr/local/bin/spawnit"]"#.to_owned(),
        r#"CMD ["serve"]"#.to_owned(),
        format!("LABEL {LABEL}={hash}"),
    ];
    let mut args = vec!["import".to_owned()];
    for c in changes {
        args.extend(["--change".to_owned(), c]);
    }
    args.extend(["--message".to_owned(), format!("SpawnIt test stand-in for {IMAGE}"), tar_s, IMAGE.to_owned()]);
    docker(&args.iter().map(String::as_str).collect::<Vec<_>>());
}

/// One HTTP/1.0 exchange with 127.0.0.1:`port`: the status, the `spawnit_lb` cookie if one was
/// set, and the body.
fn http(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    cookie: &str,
    body: Option<&Value>,
) -> (u16, String, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("connect to 127.0.0.1:{port}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut request =
        format!("{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\n", body.len());
    if let Some(t) = token {
        request.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if !body.is_empty() {
        request.push_str("Content-Type: application/json\r\n");
    }
    if !cookie.is_empty() {
        request.push_str(&format!("Cookie: {cookie}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(&body);
    s.write_all(request.as_bytes()).expect("send");
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("read the answer");
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((answer.as_str(), ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let cookie = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .filter_map(|(_, v)| v.trim().split(';').next())
        .find(|c| c.starts_with("spawnit_lb="))
        .unwrap_or(cookie)
        .to_owned();
    (status, cookie, body.to_owned())
}

/// Waits until `check` gives `Some`, or panics after `timeout` saying what was last seen.
fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    while Instant::now() < deadline {
        match check() {
            Ok(v) => return v,
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("{what}: not within {timeout:?}; last seen: {last}");
}

/// The logs of the service's replicas (stdout and stderr), one string per container.
fn replica_logs(client: &str) -> Vec<String> {
    let ids = docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=spawnit.client={client}"),
        "--filter",
        &format!("label=spawnit.service={SERVICE}"),
    ]);
    ids.lines()
        .filter(|l| !l.trim().is_empty())
        .filter(|id| docker(&["inspect", "--format", "{{.Config.Image}}", id]).trim() == IMAGE)
        .map(|id| {
            let out = Command::new("docker").args(["logs", id]).output().expect("docker logs");
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
        })
        .collect()
}

/// Removes every Docker object of `client` (the deployed SpawnIt's tenant) when dropped.
struct Tenant(String);

impl Tenant {
    fn objects(&self) -> Vec<String> {
        let label = format!("label=spawnit.client={}", self.0);
        let mut out = Vec::new();
        for (what, args) in [
            ("container", vec!["ps", "-aq"]),
            ("volume", vec!["volume", "ls", "-q"]),
            ("network", vec!["network", "ls", "-q"]),
        ] {
            let mut args = args.clone();
            args.extend(["--filter", label.as_str()]);
            out.extend(docker_try(&args).lines().filter(|l| !l.is_empty()).map(|l| format!("{what} {l}")));
        }
        out
    }
}

impl Drop for Tenant {
    fn drop(&mut self) {
        let label = format!("label=spawnit.client={}", self.0);
        for id in docker_try(&["ps", "-aq", "--filter", &label]).lines().filter(|l| !l.is_empty()) {
            docker_try(&["rm", "-f", "-v", id]);
        }
        for id in docker_try(&["volume", "ls", "-q", "--filter", &label]).lines().filter(|l| !l.is_empty()) {
            docker_try(&["volume", "rm", "-f", id]);
        }
        for id in docker_try(&["network", "ls", "-q", "--filter", &label]).lines().filter(|l| !l.is_empty()) {
            docker_try(&["network", "rm", id]);
        }
    }
}

/// A job's record, asked of the replica that took it (the balancer's sticky cookie), until it
/// is finished.
fn job_wait(port: u16, token: &str, cookie: &str, job: &Value) -> Value {
    let id = job["id"].as_str().unwrap_or_else(|| panic!("not a job: {job}"));
    wait_for(&format!("job {id} finishes"), Duration::from_secs(180), || {
        let (status, _, body) = http(port, "GET", &format!("/api/jobs/{id}"), Some(token), cookie, None);
        let record: Value = serde_json::from_str(&body).map_err(|e| format!("{status} {body}: {e}"))?;
        match record["status"].as_str() {
            Some("queued" | "running") | None => Err(record.to_string()),
            Some(_) => Ok(record),
        }
    })
}

#[test]
fn spawnit_deploys_spawnit_which_deploys_hello() {
    let w = World::new();
    for image in ["caddy:2", "hashicorp/http-echo:1.0"] {
        assert!(
            !docker(&["image", "ls", "-q", image]).trim().is_empty(),
            "test image {image} is missing: run scripts/test-images.sh"
        );
    }
    image_build();
    let tenant = Tenant(format!("{}-inner", w.client));

    // The template is in the local CLI's catalog (the CLI is the host's admin), admin-only.
    let listed: Value = serde_json::from_str(&w.ok(&["catalog", "--output", "json"]).stdout).expect("catalog json");
    let entry = listed["templates"].as_array().unwrap().iter().find(|t| t["id"] == "spawnit").cloned();
    assert_eq!(entry.unwrap_or_default()["admin_only"], true, "{listed}");

    let port = free_port();
    w.ok(&["create", "spawnit", SERVICE, "--set", "replicas=2", "--set", &format!("http_port={port}")]);
    let applied = w.ok(&["apply", SERVICE, "--auto-approve"]);
    for address in ["container.server[0]", "container.server[1]", "load_balancer.main", "volume.data"] {
        assert!(applied.stdout.contains(address), "{address} not applied:\n{applied}");
    }
    let running = docker(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=spawnit.client={}", w.client),
        "--filter",
        &format!("label=spawnit.service={SERVICE}"),
    ]);
    assert_eq!(running.lines().count(), 3, "two replicas and the balancer run:\n{running}");

    // Through the balancer: alive, on both replicas (each replica is the balancer's upstream
    // only while its own /healthz answers).
    wait_for("the deployed SpawnIt answers /healthz", Duration::from_secs(90), || {
        let (status, _, body) = http(port, "GET", "/healthz", None, "", None);
        if status == 200 { Ok(()) } else { Err(format!("{status} {body}")) }
    });
    wait_for("both replicas are healthy", Duration::from_secs(90), || {
        let states = docker(&[
            "ps",
            "--filter",
            &format!("label=spawnit.client={}", w.client),
            "--filter",
            &format!("ancestor={IMAGE}"),
            "--format",
            "{{.Status}}",
        ]);
        if states.lines().filter(|l| l.contains("(healthy)")).count() == 2 { Ok(()) } else { Err(states) }
    });

    // Both replicas started at once on the empty store: exactly one made the first admin token
    // and the web UI's admin user; the other found them made.
    let logs = replica_logs(&w.client);
    assert_eq!(logs.len(), 2, "{logs:#?}");
    let all = logs.join("\n");
    assert_eq!(all.matches("First start: an admin token was created").count(), 1, "{all}");
    assert_eq!(all.matches("First start: web UI user `admin`").count(), 1, "{all}");
    assert!(!all.lines().any(|l| l.starts_with("Error")), "a replica failed:\n{all}");
    let token = all
        .lines()
        .skip_while(|l| !l.starts_with("First start: an admin token was created"))
        .nth(1)
        .map(str::trim)
        .filter(|t| t.starts_with("spawnit_"))
        .unwrap_or_else(|| panic!("no admin token in the replicas' logs:\n{all}"))
        .to_owned();

    // With it, the deployed SpawnIt deploys hello on the host's engine (as another client, so
    // its objects are told apart by their labels) and hello answers on the host's loopback.
    let (status, cookie, body) = http(port, "GET", "/api/catalog", Some(&token), "", None);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"hello\"") && body.contains("\"spawnit\""), "{body}");
    let hello_port = free_port();
    let message = format!("Deployed by the deployed SpawnIt {}", w.client);
    let create = json!({"template": "hello", "name": "hi", "params": {"port": hello_port, "message": message}});
    let inner = &tenant.0;
    let (status, cookie, body) =
        http(port, "POST", &format!("/api/services?client={inner}"), Some(&token), &cookie, Some(&create));
    assert_eq!(status, 201, "{body}");
    let (status, cookie, body) =
        http(port, "POST", &format!("/api/services/hi/apply?client={inner}"), Some(&token), &cookie, None);
    assert_eq!(status, 202, "{body}");
    let job: Value = serde_json::from_str(&body).expect("a job");
    let done = job_wait(port, &token, &cookie, &job);
    assert_eq!(done["status"], "succeeded", "{done}");
    let answer = http_get(hello_port, Duration::from_secs(30)).expect("hello answers");
    assert!(answer.contains(&message), "{answer}");
    let hello = docker(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=spawnit.client={inner}"),
        "--filter",
        "label=spawnit.service=hi",
    ]);
    assert_eq!(hello.lines().count(), 1, "hello runs on the host's engine: {hello}");

    // Destroyed through the deployed SpawnIt: nothing of hello or its network is left.
    let (status, cookie, body) =
        http(port, "POST", &format!("/api/services/hi/destroy?client={inner}"), Some(&token), &cookie, None);
    assert_eq!(status, 202, "{body}");
    let done = job_wait(port, &token, &cookie, &serde_json::from_str(&body).expect("a job"));
    assert_eq!(done["status"], "succeeded", "{done}");
    let (status, cookie, body) =
        http(port, "POST", &format!("/api/networks/default/destroy?client={inner}"), Some(&token), &cookie, None);
    assert_eq!(status, 202, "{body}");
    let done = job_wait(port, &token, &cookie, &serde_json::from_str(&body).expect("a job"));
    assert_eq!(done["status"], "succeeded", "{done}");
    assert!(tenant.objects().is_empty(), "the deployed SpawnIt left {:?}", tenant.objects());
    assert!(http_get(hello_port, Duration::from_millis(500)).is_err(), "hello still answers");

    // The image's health check verb, from the host: 0 while it answers, 1 once it is gone.
    let health_url = format!("http://127.0.0.1:{port}/healthz");
    let healthy = w.ok(&["healthcheck", "--url", &health_url]);
    assert!(healthy.stdout.contains("200"), "{healthy}");

    // Then the deployed SpawnIt itself, and its network: nothing of either SpawnIt is left.
    w.ok(&["destroy", SERVICE, "--auto-approve"]);
    let gone = w.run(&["healthcheck", "--url", &health_url, "--timeout", "2s"]);
    assert_eq!(gone.code, 1, "{gone}");
    assert!(gone.stderr.contains("unhealthy"), "{gone}");
    w.ok(&["network", "destroy", "default", "--auto-approve"]);
    assert!(w.labelled(None).is_empty(), "left behind: {:?}", w.labelled(None));
    assert!(tenant.objects().is_empty(), "left behind: {:?}", tenant.objects());
}

/// A moto_server (one request at a time, as `Moto`) on the Docker bridge's gateway address, so
/// that containers reach it; killed on drop.
struct BridgeMoto {
    child: std::process::Child,
    endpoint: String,
}

impl BridgeMoto {
    fn start() -> BridgeMoto {
        // The gateway, or (when the engine records none) the subnet's first address, which the
        // engine gives its bridge.
        let ipam = docker(&[
            "network",
            "inspect",
            "bridge",
            "--format",
            "{{range .IPAM.Config}}{{.Gateway}}|{{.Subnet}} {{end}}",
        ]);
        let (gateway, subnet) =
            ipam.split_whitespace().next().and_then(|c| c.split_once('|')).expect("the bridge's subnet");
        let gateway = match gateway {
            "" => {
                let base: std::net::Ipv4Addr =
                    subnet.split('/').next().and_then(|a| a.parse().ok()).expect("an IPv4 subnet");
                std::net::Ipv4Addr::from(u32::from(base) + 1).to_string()
            }
            g => g.to_owned(),
        };
        let port = free_port();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/moto-serial.py");
        let child = Command::new("python3")
            .args([script, &gateway, &port.to_string()])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start moto_server ({e}): run scripts/test.sh"));
        let moto = BridgeMoto { child, endpoint: format!("http://{gateway}:{port}") };
        wait_for("moto_server answers", Duration::from_secs(60), || {
            std::net::TcpStream::connect((gateway.as_str(), port)).map(|_| ()).map_err(|e| e.to_string())
        });
        moto
    }

    /// A plain S3 request (moto checks no signature): the status line and body.
    fn s3(&self, method: &str, path: &str) -> String {
        let address = self.endpoint.trim_start_matches("http://");
        let mut s = std::net::TcpStream::connect(address).expect("connect to moto");
        write!(s, "{method} {path} HTTP/1.0\r\nHost: {address}\r\nContent-Length: 0\r\n\r\n").expect("send");
        let mut answer = String::new();
        s.read_to_string(&mut answer).expect("read");
        answer
    }
}

impl Drop for BridgeMoto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn spawnit_replicas_share_an_s3_store_given_by_parameters() {
    let w = World::new();
    assert!(
        !docker(&["image", "ls", "-q", "caddy:2"]).trim().is_empty(),
        "caddy:2 is missing: run scripts/test-images.sh"
    );
    image_build();
    let moto = BridgeMoto::start();
    let created = moto.s3("PUT", "/platform-store");
    assert!(created.starts_with("HTTP/1.0 200") || created.starts_with("HTTP/1.1 200"), "{created}");

    let secret = "s3-secret-4be1c07d9a";
    let port = free_port();
    w.ok(&[
        "create",
        "spawnit",
        SERVICE,
        "--set",
        "replicas=2",
        "--set",
        &format!("http_port={port}"),
        "--set",
        "s3=true",
        "--set",
        "s3_location=s3://platform-store/spawnit",
        "--set",
        &format!("s3_endpoint={}", moto.endpoint),
        "--set",
        "s3_access_key_id=test",
        "--set",
        &format!("s3_secret_access_key={secret}"),
    ]);
    let applied = w.ok(&["apply", SERVICE, "--auto-approve"]);
    assert!(!applied.all().contains(secret), "{applied}");
    assert!(!w.ok(&["show", SERVICE]).all().contains(secret));
    wait_for("the deployed SpawnIt answers /healthz", Duration::from_secs(90), || {
        let (status, _, body) = http(port, "GET", "/healthz", None, "", None);
        if status == 200 { Ok(()) } else { Err(format!("{status} {body}")) }
    });

    // One first admin token between the two replicas, and it works on either of them: the
    // store is the bucket, not the replicas' volume.
    let all = wait_for("a replica prints the first admin token", Duration::from_secs(60), || {
        let all = replica_logs(&w.client).join("\n");
        if all.contains("First start: an admin token was created") { Ok(all) } else { Err(all) }
    });
    assert_eq!(all.matches("First start: an admin token was created").count(), 1, "{all}");
    let token = all
        .lines()
        .skip_while(|l| !l.starts_with("First start: an admin token was created"))
        .nth(1)
        .map(str::trim)
        .unwrap_or_default()
        .to_owned();
    for _ in 0..6 {
        // No cookie: the balancer may pick either replica each time.
        let (status, _, body) = http(port, "GET", "/api/catalog", Some(&token), "", None);
        assert_eq!(status, 200, "{body}");
    }
    let listed = moto.s3("GET", "/platform-store?list-type=2&prefix=spawnit/");
    for key in ["spawnit/auth/tokens/", "spawnit/auth/users/admin", "spawnit/catalog/catalog.json"] {
        assert!(listed.contains(&format!("<Key>{key}")), "{key} is not in the bucket: {listed}");
    }

    w.ok(&["destroy", SERVICE, "--auto-approve"]);
    w.ok(&["network", "destroy", "default", "--auto-approve"]);
    assert!(w.labelled(None).is_empty(), "left behind: {:?}", w.labelled(None));
}

/// The same template on AWS (moto_server): `aws` (one instance per service) refuses its load
/// balancer, `aws-ecs` (Fargate) its Docker socket, naming the field; `aws-asg` plans it as an
/// auto-scaling group whose instances each run a replica with their own engine's socket, the
/// store on S3 by parameters and the secret key never shown.
#[cfg(feature = "aws")]
#[test]
fn on_aws_the_template_plans_on_an_auto_scaling_group_only() {
    let w = World::new();
    let moto = Moto::start();
    let run = |args: &[&str]| {
        let mut cmd = w.cmd(args);
        cmd.env("AWS_ENDPOINT_URL", moto.endpoint())
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env_remove("AWS_PROFILE");
        Run::from(cmd.output().expect("run spawnit"), args)
    };
    let refused = run(&["create", "spawnit", "one", "--provider", "aws", "--aws-allow", "10.0.0.0/8"]);
    assert_eq!(refused.code, 1, "{refused}");
    assert!(
        refused.stderr.contains("provider: a template with a load balancer runs on provider docker only"),
        "{refused}"
    );
    let refused = run(&["create", "spawnit", "fargate", "--provider", "aws-ecs", "--aws-allow", "10.0.0.0/8"]);
    assert_eq!(refused.code, 1, "{refused}");
    assert!(refused.stderr.contains("provider: container server needs the Docker socket"), "{refused}");
    assert_eq!(w.ok(&["status"]).stdout.lines().count(), 1, "a refused create stored something");

    let secret = "s3-secret-7f3a9c1e5b";
    let created = run(&[
        "create",
        "spawnit",
        "platform",
        "--provider",
        "aws-asg",
        "--aws-allow",
        "10.0.0.0/8",
        "--set",
        "replicas=2",
        "--set",
        "http_port=8080",
        "--set",
        "s3=true",
        "--set",
        "s3_location=s3://platform-store/spawnit",
        "--set",
        "s3_access_key_id=AKIAEXAMPLE",
        "--set",
        &format!("s3_secret_access_key={secret}"),
    ]);
    assert_eq!(created.code, 0, "{created}");
    let plan = run(&["plan", "platform", "--output", "json"]);
    assert_eq!(plan.code, 0, "{plan}");
    assert!(!plan.all().contains(secret), "the secret key is shown: {plan}");
    let shown: Value = serde_json::from_str(&plan.stdout).unwrap_or_else(|e| panic!("{e}: {plan}"));
    let text = shown.to_string();
    for address in ["launch_template.main", "autoscaling_group.main", "alb.main", "target_group.main"] {
        assert!(text.contains(address), "{address} not planned: {text}");
    }
    assert!(text.contains(r#""docker_socket":true"#), "the instances' container has no socket: {text}");
    assert!(text.contains("s3://platform-store/spawnit"), "{text}");
}
