//! Load balancers on Docker: a Caddy container publishing the service's port, configured by a
//! Caddyfile that SpawnIt renders (`spawnit_plan::caddyfile`), writes into the container through
//! the engine's archive API and applies with `caddy reload` run inside it, a graceful reload
//! that lets in-flight requests finish. Nothing of Caddy's admin API is published: it listens on
//! the container's own loopback only.
//!
//! Before a reload adds an upstream, the upstream must answer the health path with success
//! (`wget` from inside the proxy's container, on the service's network): a new replica takes
//! traffic only once healthy, which is what makes a rolling update lose no request.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::errors::Error as DockerError;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, NetworkingConfig, PortBinding, RestartPolicy,
    RestartPolicyNameEnum,
};
use bollard::query_parameters::{CreateContainerOptions, DownloadFromContainerOptions, UploadToContainerOptions};
use futures::StreamExt;
use spawnit_engine::{ProviderError, Scope};
use spawnit_model::resource::{Address, LoadBalancerAttrs};
use spawnit_plan::{CADDYFILE_PATH, caddyfile, caddyfile_upstreams};

use crate::{DockerProvider, Message, op_error, scope_labels};

/// How long a new upstream has to answer its health path before the update fails.
pub const HEALTH_WAIT: Duration = Duration::from_secs(30);

impl DockerProvider {
    /// Creates and starts the proxy container with its configuration in place.
    pub(crate) async fn balancer_create(
        &self,
        scope: &Scope,
        address: &Address,
        lb: &LoadBalancerAttrs,
        fingerprint: &str,
    ) -> Result<String, ProviderError> {
        let port = format!("{}/tcp", lb.port.container);
        let body = ContainerCreateBody {
            image: Some(lb.image.clone()),
            cmd: Some(["caddy", "run", "--config", CADDYFILE_PATH, "--adapter", "caddyfile"].map(String::from).into()),
            labels: Some(scope_labels(scope, address, fingerprint)),
            exposed_ports: Some(HashMap::from([(port.clone(), HashMap::new())])),
            host_config: Some(HostConfig {
                port_bindings: Some(HashMap::from([(
                    port,
                    Some(vec![PortBinding {
                        host_ip: Some(lb.port.host_ip.clone()),
                        host_port: Some(lb.port.host.to_string()),
                    }]),
                )])),
                network_mode: Some(lb.network.clone()),
                restart_policy: Some(RestartPolicy {
                    name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                    maximum_retry_count: None,
                }),
                ..Default::default()
            }),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(lb.network.clone(), EndpointSettings::default())])),
            }),
            ..Default::default()
        };
        let options = CreateContainerOptions { name: Some(lb.name.clone()), ..Default::default() };
        let created =
            self.docker.create_container(Some(options), body).await.map_err(|e| op_error("create", address, e))?;
        self.file_put(&created.id, CADDYFILE_PATH, caddyfile(lb).as_bytes())
            .await
            .map_err(|e| op_error("create", address, e))?;
        self.container_start(address, &created.id).await?;
        self.balancer_wait_serving(address, &created.id).await?;
        Ok(created.id)
    }

    /// Waits until the proxy's admin endpoint answers (its configuration is loaded); a proxy
    /// that keeps restarting fails with its last log lines.
    async fn balancer_wait_serving(&self, address: &Address, id: &str) -> Result<(), ProviderError> {
        let started = Instant::now();
        let probe = ["timeout", "2", "wget", "-q", "-O", "/dev/null", "http://localhost:2019/config/"];
        while started.elapsed() < Duration::from_secs(10) {
            if let Ok((0, _)) = self.exec(id, &probe).await {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let logs = self.logs_tail(id, 5).await;
        Err(op_error(
            "start",
            address,
            Message(format!("the load balancer never started serving; its last output: {logs}")),
        ))
    }

    /// Sets the upstreams (and starts the proxy if it was stopped): waits for each new upstream
    /// to answer its health path, then writes the configuration and reloads it.
    pub(crate) async fn balancer_update(
        &self,
        address: &Address,
        lb: &LoadBalancerAttrs,
        id: &str,
    ) -> Result<(), ProviderError> {
        let fail = |e: DockerError| op_error("update", address, e);
        let running = self
            .docker
            .inspect_container(id, None::<bollard::query_parameters::InspectContainerOptions>)
            .await
            .map_err(fail)?
            .state
            .and_then(|s| s.running)
            .unwrap_or(false);
        if !running {
            self.container_start(address, id).await?;
        }
        let current = self.balancer_upstreams(id).await.unwrap_or_default();
        for upstream in lb.upstreams.iter().filter(|u| !current.contains(u)) {
            self.upstream_wait_healthy(address, lb, id, upstream).await?;
        }
        self.file_put(id, CADDYFILE_PATH, caddyfile(lb).as_bytes()).await.map_err(fail)?;
        let reload = ["caddy", "reload", "--config", CADDYFILE_PATH, "--adapter", "caddyfile"];
        let (code, output) = self.exec(id, &reload).await.map_err(fail)?;
        if code != 0 {
            return Err(op_error("update", address, Message(format!("caddy reload exited with {code}: {output}"))));
        }
        Ok(())
    }

    /// The upstreams of the configuration found in a proxy container; `None` when it has none.
    pub(crate) async fn balancer_upstreams(&self, id: &str) -> Option<Vec<String>> {
        self.balancer_config(id).await.map(|text| caddyfile_upstreams(&text))
    }

    /// The configuration found in a proxy container.
    pub(crate) async fn balancer_config(&self, id: &str) -> Option<String> {
        let bytes = self.file_get(id, CADDYFILE_PATH).await.ok()??;
        Some(String::from_utf8_lossy(&bytes).into_owned())
    }

    async fn upstream_wait_healthy(
        &self,
        address: &Address,
        lb: &LoadBalancerAttrs,
        id: &str,
        upstream: &str,
    ) -> Result<(), ProviderError> {
        let url = format!("http://{upstream}:{}{}", lb.upstream_port, lb.health_path);
        // `timeout`, not wget's own -T: both are busybox applets in Caddy's image.
        let probe = ["timeout", "3", "wget", "-q", "-O", "/dev/null", url.as_str()];
        let started = Instant::now();
        let mut last = String::new();
        while started.elapsed() < HEALTH_WAIT {
            match self.exec(id, &probe).await {
                Ok((0, _)) => return Ok(()),
                Ok((code, output)) => last = format!("wget exited with {code}: {}", output.trim()),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Err(op_error(
            "update",
            address,
            Message(format!(
                "{upstream} never answered GET {} with success within {}s ({last})",
                lb.health_path,
                HEALTH_WAIT.as_secs()
            )),
        ))
    }

    /// Runs a command in a container; its exit code and output.
    async fn exec(&self, id: &str, cmd: &[&str]) -> Result<(i64, String), DockerError> {
        let options = CreateExecOptions {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            cmd: Some(cmd.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
            ..Default::default()
        };
        let exec = self.docker.create_exec(id, options).await?;
        let mut output = String::new();
        if let StartExecResults::Attached { output: mut stream, .. } = self.docker.start_exec(&exec.id, None).await? {
            while let Some(chunk) = stream.next().await {
                output.push_str(&chunk?.to_string());
            }
        }
        let code = self.docker.inspect_exec(&exec.id).await?.exit_code.unwrap_or(-1);
        Ok((code, output))
    }

    /// Writes one file into a container (created or running) through the archive API.
    async fn file_put(&self, id: &str, path: &str, content: &[u8]) -> Result<(), DockerError> {
        let (dir, name) = path.rsplit_once('/').unwrap_or(("/", path));
        let options =
            UploadToContainerOptions { path: if dir.is_empty() { "/" } else { dir }.to_owned(), ..Default::default() };
        self.docker.upload_to_container(id, Some(options), bollard::body_full(tar_one(name, content).into())).await
    }

    /// Reads one file from a container; `None` when it does not exist.
    async fn file_get(&self, id: &str, path: &str) -> Result<Option<Vec<u8>>, DockerError> {
        let options = DownloadFromContainerOptions { path: path.to_owned() };
        let mut stream = self.docker.download_from_container(id, Some(options));
        let mut archive = Vec::new();
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) => archive.extend_from_slice(&bytes),
                Err(e) if crate::is_not_found(&e) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        Ok(tar_first_file(&archive))
    }
}

/// A tar archive holding one regular file (ustar, mode 0644, owned by root).
fn tar_one(name: &str, content: &[u8]) -> Vec<u8> {
    let mut header = [0u8; 512];
    header[..name.len().min(100)].copy_from_slice(&name.as_bytes()[..name.len().min(100)]);
    let octal = |field: &mut [u8], value: u64| {
        let text = format!("{value:0width$o}\0", width = field.len() - 1);
        field.copy_from_slice(text.as_bytes());
    };
    octal(&mut header[100..108], 0o644);
    octal(&mut header[108..116], 0);
    octal(&mut header[116..124], 0);
    octal(&mut header[124..136], content.len() as u64);
    octal(&mut header[136..148], 0);
    header[156] = b'0';
    header[257..263].copy_from_slice(b"ustar\0");
    header[263..265].copy_from_slice(b"00");
    header[148..156].copy_from_slice(b"        ");
    let sum: u32 = header.iter().map(|b| u32::from(*b)).sum();
    header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let mut out = header.to_vec();
    out.extend_from_slice(content);
    out.resize(out.len().div_ceil(512) * 512 + 1024, 0);
    out
}

/// The content of the first regular file of a tar archive.
fn tar_first_file(archive: &[u8]) -> Option<Vec<u8>> {
    let mut at = 0;
    while at + 512 <= archive.len() {
        let header = &archive[at..at + 512];
        if header.iter().all(|b| *b == 0) {
            return None;
        }
        let size_text = std::str::from_utf8(&header[124..136]).ok()?;
        let size = usize::from_str_radix(size_text.trim_matches(|c: char| c == '\0' || c == ' '), 8).ok()?;
        let body = at + 512;
        if matches!(header[156], b'0' | 0) {
            return archive.get(body..body + size).map(<[u8]>::to_vec);
        }
        at = body + size.div_ceil(512) * 512;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_written_as_tar_reads_back() {
        let archive = tar_one("Caddyfile", b"hello\n");
        assert_eq!(archive.len() % 512, 0);
        assert_eq!(tar_first_file(&archive).as_deref(), Some(&b"hello\n"[..]));
    }
}
