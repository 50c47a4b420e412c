//! Removing every Docker object the benchmarks made. Everything the bench creates — SpawnIt's
//! own containers, volumes and networks, and the plain `docker run` containers of the baseline —
//! carries the label `spawnit.client=<the bench's client id>`, so one label filter finds it all.
//! The guard cleans up when dropped, which covers errors and panics as well as the normal end.

use std::process::{Command, Stdio};

/// Removes the bench client's Docker objects when dropped (or when [`Cleanup::run`] is called).
pub struct Cleanup {
    client: String,
    done: bool,
}

impl Cleanup {
    pub fn new(client: &str) -> Cleanup {
        Cleanup { client: client.to_owned(), done: false }
    }

    /// Removes the containers, then the volumes, then the networks of the client; returns how
    /// many of each were removed and what could not be.
    pub fn run(&mut self) -> Removed {
        self.done = true;
        let label = format!("label=spawnit.client={}", self.client);
        let mut removed = Removed::default();
        removed.containers = remove(&["ps", "-aq", "--filter", &label], &["rm", "-f"], &mut removed.failures);
        removed.volumes =
            remove(&["volume", "ls", "-q", "--filter", &label], &["volume", "rm", "-f"], &mut removed.failures);
        removed.networks =
            remove(&["network", "ls", "-q", "--filter", &label], &["network", "rm"], &mut removed.failures);
        removed
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if !self.done {
            let removed = self.run();
            eprintln!("cleanup: {removed}");
        }
    }
}

/// What a cleanup removed.
#[derive(Debug, Default)]
pub struct Removed {
    pub containers: usize,
    pub volumes: usize,
    pub networks: usize,
    pub failures: Vec<String>,
}

impl std::fmt::Display for Removed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "removed {} container(s), {} volume(s), {} network(s)",
            self.containers, self.volumes, self.networks
        )?;
        if !self.failures.is_empty() {
            write!(f, "; FAILED: {}", self.failures.join("; "))?;
        }
        Ok(())
    }
}

/// Lists ids with `docker <list>`, removes them with `docker <remove> <ids…>`; returns the count.
fn remove(list: &[&str], remove: &[&str], failures: &mut Vec<String>) -> usize {
    let ids = match Command::new("docker").args(list).stderr(Stdio::piped()).output() {
        Ok(out) if out.status.success() => {
            String::from_utf8_lossy(&out.stdout).split_whitespace().map(str::to_owned).collect::<Vec<_>>()
        }
        Ok(out) => {
            failures.push(format!("docker {}: {}", list.join(" "), String::from_utf8_lossy(&out.stderr).trim()));
            return 0;
        }
        Err(e) => {
            failures.push(format!("docker {}: {e}", list.join(" ")));
            return 0;
        }
    };
    if ids.is_empty() {
        return 0;
    }
    let run = || Command::new("docker").args(remove).args(&ids).stdout(Stdio::null()).stderr(Stdio::piped()).output();
    // Docker sometimes fails to remove a container's files at the first try (fuse-overlayfs:
    // "directory not empty") and succeeds at the next.
    let first = run();
    let outcome = match first {
        Ok(out) if !out.status.success() => {
            std::thread::sleep(std::time::Duration::from_secs(2));
            run()
        }
        other => other,
    };
    match outcome {
        Ok(out) if out.status.success() => ids.len(),
        Ok(out) => {
            failures.push(format!("docker {}: {}", remove.join(" "), String::from_utf8_lossy(&out.stderr).trim()));
            0
        }
        Err(e) => {
            failures.push(format!("docker {}: {e}", remove.join(" ")));
            0
        }
    }
}
