//! Shared helpers of the CLI's end-to-end tests: run the real `spawnit` binary against a
//! temporary store and the real Docker engine, each test as its own client so tests never see
//! each other's objects, and clean up everything the client's labels name.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// One test's world: a store directory and a client id unique to the test.
pub struct World {
    pub dir: tempfile::TempDir,
    pub client: String,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl World {
    pub fn new() -> World {
        docker_required();
        let client = format!("t{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst));
        World { dir: tempfile::tempdir().expect("temp dir"), client }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A `spawnit` command on this world's store and client.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_spawnit"));
        cmd.args(args)
            .env("SPAWNIT_DATA", self.data_dir())
            .env("SPAWNIT_CLIENT", &self.client)
            .env_remove("SPAWNIT_STORE")
            .stdin(Stdio::null());
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Run {
        let out = self.cmd(args).output().expect("run spawnit");
        Run::from(out, args)
    }

    /// Runs and asserts exit code 0.
    pub fn ok(&self, args: &[&str]) -> Run {
        let run = self.run(args);
        assert_eq!(run.code, 0, "spawnit {args:?} failed:\n{run}");
        run
    }

    /// Docker object ids (containers, volumes, networks) carrying this client's label and,
    /// when given, a service's.
    pub fn labelled(&self, service: Option<&str>) -> Vec<String> {
        let mut filters = vec![format!("label=spawnit.client={}", self.client)];
        if let Some(s) = service {
            filters.push(format!("label=spawnit.service={s}"));
        }
        let mut out = Vec::new();
        for (what, extra) in
            [("container", vec!["ls", "-a", "-q"]), ("volume", vec!["ls", "-q"]), ("network", vec!["ls", "-q"])]
        {
            let mut args: Vec<String> =
                std::iter::once(what.to_owned()).chain(extra.iter().map(|s| s.to_string())).collect();
            for f in &filters {
                args.push("--filter".into());
                args.push(f.clone());
            }
            let o = docker(&args.iter().map(String::as_str).collect::<Vec<_>>());
            out.extend(o.lines().filter(|l| !l.trim().is_empty()).map(|l| format!("{what} {l}")));
        }
        out
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let label = format!("label=spawnit.client={}", self.client);
        let ids = docker_try(&["container", "ls", "-a", "-q", "--filter", &label]);
        for id in ids.lines().filter(|l| !l.is_empty()) {
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

/// A finished `spawnit` run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub args: String,
}

impl Run {
    pub fn from(out: Output, args: &[&str]) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            args: args.join(" "),
        }
    }
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "$ spawnit {} (exit {})\n--- stdout\n{}--- stderr\n{}",
            self.args, self.code, self.stdout, self.stderr
        )
    }
}

/// Fails the test (never skips it) when no Docker engine answers.
pub fn docker_required() {
    let ok =
        Command::new("docker").arg("info").stdout(Stdio::null()).stderr(Stdio::null()).status().map(|s| s.success());
    assert!(
        matches!(ok, Ok(true)),
        "these tests need a running Docker engine (`docker info` failed); run them with scripts/test.sh on a machine with Docker"
    );
    let images = docker(&["image", "ls", "-q", "hashicorp/http-echo:1.0"]);
    assert!(
        !images.trim().is_empty(),
        "test image hashicorp/http-echo:1.0 is missing: run scripts/test-images.sh (scripts/test.sh does)"
    );
}

/// Runs the docker CLI and returns stdout; panics on failure.
pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("run docker");
    assert!(out.status.success(), "docker {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs the docker CLI, ignoring failure.
pub fn docker_try(args: &[&str]) -> String {
    Command::new("docker")
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// A TCP port free on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    // Never the same port twice in one test process: a port handed out for a service that is
    // planned but not deployed yet is free to the OS, which may offer it again at once.
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port");
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// GETs `http://127.0.0.1:port/` with a raw HTTP/1.0 request, retrying until `timeout`.
pub fn http_get(port: u16, timeout: Duration) -> Result<String, String> {
    use std::io::{Read, Write};
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    while Instant::now() < deadline {
        match std::net::TcpStream::connect(("127.0.0.1", port)) {
            Ok(mut s) => {
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let _ = s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n");
                let mut body = String::new();
                if s.read_to_string(&mut body).is_ok() && body.starts_with("HTTP/") {
                    return Ok(body);
                }
                last = format!("bad answer: {body:?}");
            }
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(last)
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// A real S3 API for tests: `moto_server` (PyPI `moto[server]`) on a free loopback port, killed
/// on drop. A missing `moto_server` fails the test (never skips it).
/// The script that serves moto one request at a time, so its conditional writes are atomic.
const MOTO_SERIAL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/moto-serial.py");

pub struct Moto {
    child: std::process::Child,
    pub port: u16,
}

impl Moto {
    pub fn start() -> Moto {
        let port = free_port();
        let child = Command::new("python3")
            // moto's own `moto_server`, served without threads: see the script.
            .args([MOTO_SERIAL, "127.0.0.1", &port.to_string()])
            // AWS managed policies (AmazonECSTaskExecutionRolePolicy…) exist only when loaded.
            .env("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start moto_server ({e}): run scripts/test.sh, which installs moto[server]")
            });
        let moto = Moto { child, port };
        http_get(port, Duration::from_secs(60)).expect("moto_server answers");
        moto
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates a bucket with a plain unsigned request (moto does not check signatures).
    pub fn bucket_create(&self, bucket: &str) {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).expect("connect to moto");
        write!(s, "PUT /{bucket} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n").unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200"), "{answer}");
    }

    /// Points a `spawnit` command at `s3://bucket/prefix` on this server.
    pub fn configure(&self, cmd: &mut Command, bucket: &str) {
        cmd.env("SPAWNIT_STORE", format!("s3://{bucket}/spawnit"))
            .env("SPAWNIT_S3_ENDPOINT", self.endpoint())
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1");
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `cmd` with its stdout piped, reads its output until a line contains `trigger`, and
/// kills it there with SIGKILL. Panics unless the trigger line was printed and the process was
/// still running when killed (its end is the kill signal, not an exit of its own). Returns the
/// lines it printed.
pub fn kill_9_at(mut cmd: Command, trigger: &str) -> Vec<String> {
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::ExitStatusExt;

    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("spawn spawnit");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = Vec::new();
    let mut seen = false;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read spawnit's output");
        seen = line.contains(trigger);
        lines.push(line);
        if seen {
            break;
        }
    }
    let alive = child.try_wait().expect("look at the child").is_none();
    child.kill().expect("SIGKILL");
    let status = child.wait().expect("wait for the child");
    assert!(seen, "the trigger {trigger:?} was never printed: {lines:#?}");
    assert!(alive, "the child had already exited when {trigger:?} was seen ({status}): {lines:#?}");
    assert_eq!(status.signal(), Some(9), "the child ended by itself ({status}), not by the kill at {trigger:?}");
    lines
}

/// Sends a signal (`STOP`, `CONT`) to a process.
pub fn signal(pid: u32, name: &str) {
    let out = Command::new("kill").args([&format!("-{name}"), &pid.to_string()]).output().expect("run kill");
    assert!(out.status.success(), "kill -{name} {pid}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Two writers that certainly overlap: the first `spawnit apply` is stopped (SIGSTOP) right
/// after it started its first resource operation, so it holds the service's lock; the second
/// runs to its end meanwhile; then the first continues. Returns both runs (first, second).
/// Whether process `pid` has the local store's write lock file open (it does only while writing).
fn holds_store_write_lock(pid: u32) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return false };
    fds.flatten().any(|fd| std::fs::read_link(fd.path()).is_ok_and(|target| target.ends_with(".store.lock")))
}

/// Waits for `child` to end and collects its output; kills it and fails the test past `limit`
/// (a hang guard, not a speed check).
fn output_within(mut child: std::process::Child, limit: Duration, what: &str) -> std::process::Output {
    use std::io::Read;
    let (mut out, mut err) = (child.stdout.take().expect("piped stdout"), child.stderr.take().expect("piped stderr"));
    let out = std::thread::spawn(move || {
        let mut buf = Vec::new();
        out.read_to_end(&mut buf).map(|_| buf)
    });
    let err = std::thread::spawn(move || {
        let mut buf = Vec::new();
        err.read_to_end(&mut buf).map(|_| buf)
    });
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("look at the child") {
            break status;
        }
        if started.elapsed() > limit {
            child.kill().ok();
            panic!("{what} did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = out.join().expect("stdout reader").expect("read stdout");
    let stderr = err.join().expect("stderr reader").expect("read stderr");
    std::process::Output { status, stdout, stderr }
}

pub fn two_overlapping_applies(make: impl Fn() -> Command, args: &[&str]) -> (Run, Run) {
    use std::io::{BufRead, BufReader, Read};

    let mut first = make().stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn spawnit");
    let mut reader = BufReader::new(first.stdout.take().expect("piped stdout"));
    let mut printed = String::new();
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line).expect("read spawnit's output");
        printed.push_str(&line);
        assert!(n > 0, "the first apply ended before any operation started:\n{printed}");
        if line.contains(": Creating") {
            break;
        }
    }
    // Stopped between two store writes: stopped in the middle of one, it would hold the local
    // store's write lock (`.store.lock`) and every other writer would wait for it instead of
    // meeting the service's lock.
    let mut stops = 0;
    loop {
        signal(first.id(), "STOP");
        stops += 1;
        if !holds_store_write_lock(first.id()) {
            break;
        }
        assert!(stops < 1000, "the first apply always held the store's write lock when stopped");
        signal(first.id(), "CONT");
        std::thread::sleep(Duration::from_millis(1));
    }
    let alive = first.try_wait().expect("look at the first apply").is_none();
    let second = make().stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("run the second apply");
    let second = output_within(second, Duration::from_secs(120), "the second apply");
    signal(first.id(), "CONT");
    assert!(alive, "the first apply was not running while the second ran");
    reader.read_to_string(&mut printed).expect("read the rest of spawnit's output");
    let mut stderr = String::new();
    first.stderr.take().expect("piped stderr").read_to_string(&mut stderr).expect("read spawnit's errors");
    let status = first.wait().expect("wait for the first apply");
    let first = Run { code: status.code().unwrap_or(-1), stdout: printed, stderr, args: args.join(" ") };
    (first, Run::from(second, args))
}
