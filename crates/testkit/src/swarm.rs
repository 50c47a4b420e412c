//! A real multi-node Docker Swarm on one machine, for tests.
//!
//! Each node is a container of the host's engine running Debian's `dockerd` (the image
//! `spawnit-test/swarm-node:1`, built by `scripts/test-images.sh swarm-node`) on a bridge
//! network of its own; node 0 is the manager (`docker swarm init --dispatcher-heartbeat 1s`, so a
//! lost node is noticed in 2–4 s), the others join it as workers. Every node's engine API is
//! published on a fixed loopback port (`tcp://127.0.0.1:PORT`, plain: loopback only, tests
//! only), and so is every port in [`ClusterOptions::ports`], so a service published in `host`
//! mode on a node is reached through loopback. Ports stay the same when a node is killed and
//! started again.
//!
//! What this kernel lacks is what real clusters have: there is no IPVS, so the ingress routing
//! mesh and virtual IPs do not work here; publish in `host` mode and use `endpoint_mode: dnsrr`.
//! Nothing can be pulled: [`ClusterOptions::images`] are copied from the host engine into
//! every node (`docker save | docker load`).
//!
//! The API is synchronous (it runs the `docker` CLI); async tests call it directly between
//! awaits or through `spawn_blocking`. Dropping the cluster removes every container, volume and
//! network it made; a cluster left over by a killed test run is removed when a cluster of the
//! same name starts.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The node image, built by `scripts/test-images.sh swarm-node`.
pub const NODE_IMAGE: &str = "spawnit-test/swarm-node:1";

/// The label on every container and network a cluster makes, valued with the cluster's name.
const LABEL: &str = "spawnit-testkit.cluster";

/// How long a node's engine may take to answer, and the cluster to become Ready.
const ENGINE_WAIT: Duration = Duration::from_secs(60);

/// Something the harness could not do.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("`docker {args}` failed: {stderr}")]
    Docker { args: String, stderr: String },
    #[error("running the docker CLI failed")]
    Spawn(#[source] std::io::Error),
    #[error("{what}: not within {secs} s")]
    Timeout { what: String, secs: u64 },
    #[error("the cluster has no node {0}")]
    NoNode(usize),
    #[error("the node image {NODE_IMAGE} is missing: run scripts/test-images.sh swarm-node")]
    NoImage,
    #[error("no free loopback port")]
    Port(#[source] std::io::Error),
}

/// What cluster to start.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// How many nodes in all; node 0 is the manager. At least 1.
    pub nodes: usize,
    /// Images of the host engine copied into every node.
    pub images: Vec<String>,
    /// Ports every node forwards from a loopback port of its own ([`ClusterNode::ports`]).
    pub ports: Vec<u16>,
}

impl Default for ClusterOptions {
    fn default() -> ClusterOptions {
        ClusterOptions { nodes: 3, images: Vec::new(), ports: Vec::new() }
    }
}

/// One node: a container running a Docker engine.
#[derive(Clone, Debug)]
pub struct ClusterNode {
    /// The container's name, also the node's hostname: `spawnit-swarm-<cluster>-<i>`.
    pub container: String,
    pub hostname: String,
    /// The node's own engine API, `tcp://127.0.0.1:PORT`.
    pub engine_host: String,
    /// Its address on the cluster's network (what Swarm advertises).
    pub address: String,
    /// Port inside the node → loopback port on this machine.
    pub ports: BTreeMap<u16, u16>,
}

/// A running cluster; dropped, it is removed.
#[derive(Debug)]
pub struct SwarmCluster {
    name: String,
    network: String,
    options: ClusterOptions,
    nodes: Vec<ClusterNode>,
}

impl SwarmCluster {
    /// Starts `options.nodes` engines, copies the images into them, makes node 0 the manager
    /// and joins the others as workers; returns when every node is Ready.
    pub fn start(name: &str, options: ClusterOptions) -> Result<SwarmCluster, HarnessError> {
        if docker(&["image", "inspect", "--format", "{{.Id}}", NODE_IMAGE]).is_err() {
            return Err(HarnessError::NoImage);
        }
        remove_leftovers(name);
        let network = format!("spawnit-swarm-{name}");
        docker(&["network", "create", "--label", &format!("{LABEL}={name}"), &network])?;
        let mut cluster = SwarmCluster { name: name.to_owned(), network, options: options.clone(), nodes: Vec::new() };
        let mut indexes = Vec::new();
        for _ in 0..options.nodes.max(1) {
            indexes.push(cluster.node_run()?);
        }
        for &i in &indexes {
            cluster.engine_wait(i)?;
        }
        cluster.images_load(&indexes)?;
        let manager = &cluster.nodes[0];
        docker(&[
            "exec",
            &manager.container,
            "docker",
            "swarm",
            "init",
            "--advertise-addr",
            &manager.address,
            "--dispatcher-heartbeat",
            "1s",
        ])?;
        let join = cluster.join_command("worker")?;
        let (cluster_ref, join) = (&cluster, &join);
        std::thread::scope(|s| {
            let handles: Vec<_> =
                indexes[1..].iter().map(|&i| s.spawn(move || cluster_ref.exec(i, join).map(|_| ()))).collect();
            handles.into_iter().try_for_each(|h| h.join().expect("join thread"))
        })?;
        cluster.ready_wait(cluster.nodes.len())?;
        Ok(cluster)
    }

    /// The manager's Docker API: what SpawnIt is given as its swarm host.
    pub fn manager_host(&self) -> String {
        self.nodes[0].engine_host.clone()
    }

    pub fn nodes(&self) -> &[ClusterNode] {
        &self.nodes
    }

    pub fn node(&self, i: usize) -> Result<&ClusterNode, HarnessError> {
        self.nodes.get(i).ok_or(HarnessError::NoNode(i))
    }

    /// The exact `docker swarm join …` command for `role` (`worker` or `manager`), as the
    /// manager prints it.
    pub fn join_command(&self, role: &str) -> Result<String, HarnessError> {
        let token = self.docker(0, &["swarm", "join-token", "-q", role])?;
        Ok(format!("docker swarm join --token {} {}:2377", token.trim(), self.nodes[0].address))
    }

    /// Kills node `i`'s container (its engine and every task on it die at once).
    pub fn node_kill(&self, i: usize) -> Result<(), HarnessError> {
        docker(&["kill", &self.node(i)?.container]).map(|_| ())
    }

    /// Starts node `i` again and waits until its engine answers; it rejoins the swarm by itself.
    pub fn node_start(&self, i: usize) -> Result<(), HarnessError> {
        docker(&["start", &self.node(i)?.container])?;
        self.engine_wait(i)
    }

    /// A fresh engine on the cluster's network with the images loaded, not joined to the swarm.
    pub fn node_add(&mut self) -> Result<usize, HarnessError> {
        let i = self.node_run()?;
        self.engine_wait(i)?;
        self.images_load(&[i])?;
        Ok(i)
    }

    /// Runs `sh -c <command>` inside node `i`; returns its standard output.
    pub fn exec(&self, i: usize, command: &str) -> Result<String, HarnessError> {
        docker(&["exec", &self.node(i)?.container, "sh", "-c", command])
    }

    /// Runs the docker CLI against node `i`'s engine; returns its standard output.
    pub fn docker(&self, i: usize, args: &[&str]) -> Result<String, HarnessError> {
        let container = &self.node(i)?.container;
        let mut all = vec!["exec", container.as_str(), "docker"];
        all.extend_from_slice(args);
        docker(&all)
    }

    /// The manager's view of the nodes: `hostname status availability` per line.
    pub fn node_table(&self) -> Result<String, HarnessError> {
        self.docker(0, &["node", "ls", "--format", "{{.Hostname}} {{.Status}} {{.Availability}}"])
    }

    /// Waits until `count` nodes are Ready in the manager's view.
    pub fn ready_wait(&self, count: usize) -> Result<(), HarnessError> {
        wait_until(&format!("{count} nodes Ready"), ENGINE_WAIT, || {
            let table = self.node_table().unwrap_or_default();
            table.lines().filter(|l| l.split_whitespace().nth(1) == Some("Ready")).count() >= count
        })
    }

    fn node_run(&mut self) -> Result<usize, HarnessError> {
        let i = self.nodes.len();
        let container = format!("spawnit-swarm-{}-{i}", self.name);
        let engine_port = free_port()?;
        let mut ports = BTreeMap::new();
        for &p in &self.options.ports {
            ports.insert(p, free_port()?);
        }
        let label = format!("{LABEL}={}", self.name);
        let engine_publish = format!("127.0.0.1:{engine_port}:2375");
        let publishes: Vec<String> = ports.iter().map(|(inner, outer)| format!("127.0.0.1:{outer}:{inner}")).collect();
        let mut args = vec![
            "run",
            "--detach",
            "--name",
            &container,
            "--hostname",
            &container,
            "--label",
            &label,
            "--network",
            &self.network,
            "--cgroupns",
            "private",
            "--cap-add",
            "ALL",
            "--cap-drop",
            "SYS_RESOURCE",
            "--security-opt",
            "seccomp=unconfined",
            "--security-opt",
            "apparmor=unconfined",
            "--security-opt",
            "systempaths=unconfined",
            "--device-cgroup-rule",
            "a *:* rwm",
            "--tmpfs",
            "/run",
            "--tmpfs",
            "/var/run",
            "--publish",
            &engine_publish,
        ];
        for p in &publishes {
            args.extend(["--publish", p.as_str()]);
        }
        args.push(NODE_IMAGE);
        docker(&args)?;
        let address = docker(&[
            "inspect",
            "--format",
            &format!("{{{{(index .NetworkSettings.Networks \"{}\").IPAddress}}}}", self.network),
            &container,
        ])?
        .trim()
        .to_owned();
        self.nodes.push(ClusterNode {
            hostname: container.clone(),
            container,
            engine_host: format!("tcp://127.0.0.1:{engine_port}"),
            address,
            ports,
        });
        Ok(i)
    }

    fn engine_wait(&self, i: usize) -> Result<(), HarnessError> {
        let container = &self.node(i)?.container;
        wait_until(&format!("the engine of {container} answering"), ENGINE_WAIT, || {
            docker(&["exec", container, "docker", "version", "--format", "{{.Server.Version}}"]).is_ok()
        })
    }

    /// Copies the options' images into nodes `indexes`, in parallel.
    fn images_load(&self, indexes: &[usize]) -> Result<(), HarnessError> {
        if self.options.images.is_empty() {
            return Ok(());
        }
        let mut args = vec!["save"];
        args.extend(self.options.images.iter().map(String::as_str));
        let archive = docker_bytes(&args)?;
        std::thread::scope(|s| {
            let handles: Vec<_> = indexes
                .iter()
                .map(|&i| {
                    let archive = &archive;
                    s.spawn(move || -> Result<(), HarnessError> {
                        let container = &self.node(i)?.container;
                        docker_stdin(&["exec", "-i", container, "docker", "load", "-q"], archive).map(|_| ())
                    })
                })
                .collect();
            handles.into_iter().try_for_each(|h| h.join().expect("load thread"))
        })
    }
}

impl Drop for SwarmCluster {
    fn drop(&mut self) {
        remove_leftovers(&self.name);
    }
}

/// Removes every container (with its volumes) and network labelled with cluster `name`.
fn remove_leftovers(name: &str) {
    let filter = format!("label={LABEL}={name}");
    if let Ok(ids) = docker(&["ps", "--all", "--quiet", "--filter", &filter]) {
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "--force", "--volumes"];
            args.extend(ids);
            let _ = docker(&args);
        }
    }
    if let Ok(ids) = docker(&["network", "ls", "--quiet", "--filter", &filter]) {
        for id in ids.split_whitespace() {
            let _ = docker(&["network", "rm", id]);
        }
    }
}

/// A loopback port nobody listens on now.
fn free_port() -> Result<u16, HarnessError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(HarnessError::Port)?;
    Ok(listener.local_addr().map_err(HarnessError::Port)?.port())
}

/// Polls `ready` every 200 ms until it holds or `limit` passes.
pub fn wait_until(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) -> Result<(), HarnessError> {
    let start = Instant::now();
    loop {
        if ready() {
            return Ok(());
        }
        if start.elapsed() > limit {
            return Err(HarnessError::Timeout { what: what.to_owned(), secs: limit.as_secs() });
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Runs the host's docker CLI; its standard output, or its standard error as the error.
pub fn docker(args: &[&str]) -> Result<String, HarnessError> {
    docker_bytes(args).map(|out| String::from_utf8_lossy(&out).into_owned())
}

fn docker_bytes(args: &[&str]) -> Result<Vec<u8>, HarnessError> {
    let out = Command::new("docker").args(args).stdin(Stdio::null()).output().map_err(HarnessError::Spawn)?;
    if !out.status.success() {
        return Err(HarnessError::Docker {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(out.stdout)
}

fn docker_stdin(args: &[&str], input: &[u8]) -> Result<String, HarnessError> {
    let mut child = Command::new("docker")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(HarnessError::Spawn)?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let written = stdin.write_all(input);
    drop(stdin);
    let out = child.wait_with_output().map_err(HarnessError::Spawn)?;
    if !out.status.success() || written.is_err() {
        return Err(HarnessError::Docker {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The harness itself on the real engine: three nodes Ready, a task on a killed node
    /// rescheduled, the node back Ready after a start, everything removed on drop.
    #[test]
    fn three_nodes_a_killed_one_returns_and_nothing_is_left() {
        let started = Instant::now();
        let cluster = SwarmCluster::start(
            "testkit-self",
            ClusterOptions { nodes: 3, images: vec!["spawnit-test/webapp:1".into()], ports: vec![8080] },
        )
        .expect("cluster");
        let up = started.elapsed();
        let table = cluster.node_table().expect("node ls");
        assert_eq!(table.lines().filter(|l| l.contains(" Ready Active")).count(), 3, "{table}");
        assert!(cluster.nodes()[1].ports.contains_key(&8080));
        let version = docker(&["-H", &cluster.manager_host(), "version", "--format", "{{.Server.Version}}"])
            .expect("the manager's API on loopback");
        assert!(version.starts_with("20.10"), "{version}");

        let killed = Instant::now();
        cluster.node_kill(2).expect("kill");
        wait_until("node 2 Down", Duration::from_secs(30), || {
            cluster
                .node_table()
                .unwrap_or_default()
                .lines()
                .any(|l| l.starts_with(&format!("{} Down", cluster.nodes()[2].hostname)))
        })
        .expect("the manager notices");
        let detected = killed.elapsed();
        cluster.node_start(2).expect("start");
        cluster.ready_wait(3).expect("back");
        println!(
            "cluster up in {up:?}; a killed node noticed in {detected:?}; back Ready after {:?}",
            killed.elapsed()
        );

        let name = cluster.nodes()[0].container.clone();
        drop(cluster);
        let left = docker(&["ps", "--all", "--quiet", "--filter", &format!("name={name}")]).expect("ps");
        assert_eq!(left.trim(), "", "the nodes are removed");
    }
}
