//! A real S3 server for tests: `moto_server` (PyPI `moto[server]`) on a free loopback port,
//! killed when dropped. A missing `moto_server` fails the test: it is never skipped.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The script that serves moto one request at a time, so its conditional writes are atomic.
const MOTO_SERIAL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/moto-serial.py");

pub struct Moto {
    child: Child,
    port: u16,
    http: reqwest::Client,
}

impl Moto {
    pub async fn start() -> Moto {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free loopback port").port();
        let child = match Command::new("python3")
            // moto's own `moto_server`, served without threads: see the script.
            .args([MOTO_SERIAL, "127.0.0.1", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(child) => child,
            Err(e) => panic!(
                "cannot start moto_server ({e}): the S3 tests need it; run scripts/test.sh, which installs moto[server]"
            ),
        };
        let mut moto = Moto { child, port, http: reqwest::Client::new() };
        let started = Instant::now();
        loop {
            if let Some(status) = moto.child.try_wait().expect("check moto_server") {
                panic!("moto_server exited at start ({status}); run scripts/test.sh to install moto[server]");
            }
            if moto.http.get(moto.endpoint()).send().await.is_ok() {
                return moto;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "moto_server did not answer on port {port} within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the server process (SIGSTOP): it keeps its port and accepts connections, but
    /// answers nothing, as a frozen store does, until [`thaw`](Moto::thaw).
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Lets a frozen server run again (SIGCONT).
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill").args([signal, &self.child.id().to_string()]).status().expect("run kill");
        assert!(status.success(), "kill {signal} moto_server failed");
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates a bucket with a plain, unsigned request (moto does not check signatures).
    pub async fn bucket_create(&self, bucket: &str) {
        let response = self.http.put(format!("{}/{bucket}", self.endpoint())).send().await.expect("create bucket");
        assert!(response.status().is_success(), "creating bucket {bucket}: {}", response.status());
    }

    /// Writes a new object with a plain, unsigned request.
    pub async fn object_put(&self, bucket: &str, key: &str, bytes: &[u8]) {
        let response = self
            .http
            .put(format!("{}/{bucket}/{key}", self.endpoint()))
            .header("content-type", "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .await
            .expect("put object");
        assert!(response.status().is_success(), "writing {key}: {}", response.status());
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
