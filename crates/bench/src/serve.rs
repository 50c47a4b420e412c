//! A `spawnit serve` process for the server measurements: started on a free loopback port over
//! a given store, its first-start admin token read from its output, its resident memory read
//! from `/proc/<pid>/status`, and stopped with SIGTERM (killed if it does not stop, or if the
//! bench is interrupted: the child is killed when dropped).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};

/// A running `spawnit serve`.
pub struct Served {
    child: Child,
    pub pid: u32,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The admin token printed on first start.
    pub token: String,
    /// Where the server's stderr goes.
    log: PathBuf,
    /// Kept open so the server never writes to a closed pipe.
    _stdout: BufReader<ChildStdout>,
}

/// Resident memory of a process, in KiB.
pub struct Rss {
    pub current_kib: u64,
    pub peak_kib: u64,
}

impl Served {
    /// Starts `spawnit serve` over the store in `data_dir` (which must never have served before,
    /// so the admin token is printed), on a free port; retries with another port if that one
    /// was taken in between.
    pub async fn start(spawnit: &Path, data_dir: &Path, log: &Path) -> Result<Served> {
        Served::start_with(spawnit, data_dir, log, &[]).await
    }

    /// Like [`Served::start`], with more arguments for `spawnit serve`.
    pub async fn start_with(spawnit: &Path, data_dir: &Path, log: &Path, extra: &[&str]) -> Result<Served> {
        let mut last_error = None;
        for _ in 0..3 {
            match Served::start_once(spawnit, data_dir, log, extra).await {
                Ok(served) => return Ok(served),
                Err(e) if format!("{e:#}").contains("cannot listen") => last_error = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last_error.expect("three attempts"))
    }

    async fn start_once(spawnit: &Path, data_dir: &Path, log: &Path, extra: &[&str]) -> Result<Served> {
        let port = crate::free_port()?;
        let listen = format!("127.0.0.1:{port}");
        let stderr = std::fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
        let mut child = Command::new(spawnit)
            .arg("--data-dir")
            .arg(data_dir)
            .args(["serve", "--listen", &listen])
            .args(extra)
            .env_remove("SPAWNIT_STORE")
            .env_remove("SPAWNIT_LISTEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("start {} serve", spawnit.display()))?;
        let pid = child.id().context("the server exited at once")?;
        let mut stdout = BufReader::new(child.stdout.take().context("the server's stdout")?);
        let token = match tokio::time::timeout(Duration::from_secs(60), read_token(&mut stdout)).await {
            Ok(Ok(token)) => token,
            Ok(Err(e)) => {
                let _ = child.wait().await;
                let log_text = std::fs::read_to_string(log).unwrap_or_default();
                return Err(e.context(format!("spawnit serve failed to start; its stderr: {}", log_text.trim())));
            }
            Err(_) => bail!("spawnit serve did not say it was listening within 60 s (stderr in {})", log.display()),
        };
        Ok(Served { child, pid, base: format!("http://{listen}"), token, log: log.to_owned(), _stdout: stdout })
    }

    /// The server's resident memory now, and its peak so far.
    pub fn rss(&self) -> Result<Rss> {
        let path = format!("/proc/{}/status", self.pid);
        let status = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
        let field = |name: &str| -> Result<u64> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .with_context(|| format!("no {name} in {path}"))
        };
        Ok(Rss { current_kib: field("VmRSS:")?, peak_kib: field("VmHWM:")? })
    }

    /// Stops the server with SIGTERM, killing it after 15 s.
    pub async fn stop(mut self) -> Result<()> {
        // SAFETY: kill(2) on the pid of a child this process started and has not reaped.
        unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGTERM) };
        match tokio::time::timeout(Duration::from_secs(15), self.child.wait()).await {
            Ok(status) => {
                let status = status?;
                if !status.success() {
                    bail!("spawnit serve ended with {status} (stderr in {})", self.log.display());
                }
                Ok(())
            }
            Err(_) => {
                self.child.kill().await?;
                bail!("spawnit serve did not stop within 15 s of SIGTERM; it was killed")
            }
        }
    }
}

/// Reads the server's output up to its "listening" line; returns the token printed on the line
/// after "First start: an admin token was created…" (other first-start lines, such as a web
/// password, are skipped).
async fn read_token(stdout: &mut BufReader<ChildStdout>) -> Result<String> {
    let mut token = None;
    let mut after_token_line = false;
    let mut line = String::new();
    loop {
        line.clear();
        if stdout.read_line(&mut line).await? == 0 {
            bail!("spawnit serve exited before listening");
        }
        let text = line.trim();
        if after_token_line {
            token = Some(text.to_owned());
            after_token_line = false;
        } else if text.starts_with("First start") && text.contains("token") {
            after_token_line = true;
        } else if text.starts_with("SpawnIt listening on") {
            return token.context("spawnit serve printed no admin token: the store has served before");
        }
    }
}
