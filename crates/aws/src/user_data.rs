//! The instance's `user_data`: a shell script, rendered purely from the instance's attributes,
//! that installs and starts Docker when the image lacks it, then runs the service's containers
//! on a Docker network of the instance, with their environment, published ports, named volumes
//! and health checks, restarting unless stopped.
//!
//! Every value from a template or a user is single-quoted ([`shell_quote`]), so nothing in a
//! parameter is ever interpreted by the shell. The script is idempotent: run again, it replaces
//! the containers and keeps the volumes.

use spawnit_model::resource::{ContainerAttrs, InstanceAttrs};

/// The most EC2 accepts, before base64 encoding.
pub const USER_DATA_MAX_BYTES: usize = 16 * 1024;

/// `value` as one single-quoted shell word; each `'` inside becomes `'"'"'`.
pub fn shell_quote(value: &str) -> String {
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b)) {
        return value.to_owned();
    }
    format!("'{}'", value.replace('\'', "'\"'\"'"))
}

fn words(items: impl IntoIterator<Item = String>) -> String {
    items.into_iter().map(|w| shell_quote(&w)).collect::<Vec<_>>().join(" ")
}

/// The `docker run` command line of one container, as the script runs it.
pub fn run_command(c: &ContainerAttrs) -> String {
    let mut args: Vec<String> = vec![
        "--detach".into(),
        "--name".into(),
        c.name.clone(),
        "--restart".into(),
        "unless-stopped".into(),
        "--network".into(),
        c.network.clone(),
    ];
    for alias in &c.aliases {
        args.extend(["--network-alias".into(), alias.clone()]);
    }
    for p in &c.ports {
        args.extend(["--publish".into(), format!("{}:{}:{}/{}", p.host_ip, p.host, p.container, p.protocol.as_str())]);
    }
    for m in &c.mounts {
        let mut spec = format!("type=volume,source={},target={}", m.volume, m.path);
        if m.read_only {
            spec.push_str(",readonly");
        }
        args.extend(["--mount".into(), spec]);
    }
    for (k, v) in &c.env {
        args.extend(["--env".into(), format!("{k}={v}")]);
    }
    if let Some(user) = &c.user {
        args.extend(["--user".into(), user.clone()]);
    }
    // The instance's own engine, with the socket's group (asked of the instance when the
    // script runs: the one unquoted word, a fixed text) for a non-root user.
    let mut socket_group = String::new();
    if c.docker_socket {
        let socket = spawnit_model::resource::DOCKER_SOCKET;
        args.extend(["--volume".into(), format!("{socket}:{socket}")]);
        socket_group = format!("--group-add \"$(stat -c %g {socket})\" ");
    }
    if let Some(h) = &c.health {
        args.extend(["--health-cmd".into(), words(h.command.iter().cloned())]);
        args.extend(["--health-interval".into(), format!("{}s", h.interval_s)]);
        args.extend(["--health-timeout".into(), format!("{}s", h.timeout_s)]);
        args.extend(["--health-retries".into(), h.retries.to_string()]);
        args.extend(["--health-start-period".into(), format!("{}s", h.start_period_s)]);
    }
    // `docker run` takes the entrypoint's first word as --entrypoint, the rest before CMD.
    let mut tail: Vec<String> = Vec::new();
    if let Some(entrypoint) = &c.entrypoint {
        let mut parts = entrypoint.iter();
        args.extend(["--entrypoint".into(), parts.next().cloned().unwrap_or_default()]);
        tail.extend(parts.cloned());
    }
    args.push(c.image.clone());
    tail.extend(c.command.iter().cloned());
    args.extend(tail);
    format!("docker run {socket_group}{}", words(args))
}

/// The whole script for an instance.
pub fn render(instance: &InstanceAttrs) -> String {
    let mut s = String::new();
    s.push_str("#!/bin/bash\n");
    s.push_str(&format!("# Written by SpawnIt for {}: runs its containers with Docker.\n", instance.name));
    s.push_str("set -uo pipefail\n");
    s.push_str("exec >>/var/log/spawnit-user-data.log 2>&1\n");
    s.push_str(
        r#"echo "spawnit: starting $(date -u +%FT%TZ)"
if ! command -v docker >/dev/null 2>&1; then
  if command -v dnf >/dev/null 2>&1; then dnf install -y docker
  elif command -v amazon-linux-extras >/dev/null 2>&1; then amazon-linux-extras install -y docker
  elif command -v yum >/dev/null 2>&1; then yum install -y docker
  elif command -v apt-get >/dev/null 2>&1; then apt-get update -y && DEBIAN_FRONTEND=noninteractive apt-get install -y docker.io
  elif command -v apk >/dev/null 2>&1; then apk add docker
  else echo "spawnit: no package manager to install Docker with" >&2; exit 1
  fi
fi
systemctl enable --now docker 2>/dev/null || service docker start || rc-service docker start
for _ in $(seq 1 90); do docker info >/dev/null 2>&1 && break; sleep 2; done
docker info >/dev/null 2>&1 || { echo "spawnit: Docker does not answer" >&2; exit 1; }
set -e
"#,
    );
    let network = instance.containers.first().map(|c| c.network.as_str()).unwrap_or("spawnit");
    let net = shell_quote(network);
    s.push_str(&format!("docker network inspect {net} >/dev/null 2>&1 || docker network create {net}\n"));
    for v in &instance.volumes {
        s.push_str(&format!("docker volume create {} >/dev/null\n", shell_quote(v)));
    }
    for c in &instance.containers {
        s.push_str(&format!("docker rm --force {} >/dev/null 2>&1 || true\n", shell_quote(&c.name)));
        s.push_str(&run_command(c));
        s.push('\n');
    }
    s.push_str("echo \"spawnit: containers started $(date -u +%FT%TZ)\"\n");
    s
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use spawnit_model::resource::{Address, PublishedPort, ResourceKind, VolumeMount};
    use spawnit_model::spec::{HealthSpec, Protocol};

    use super::*;

    fn redis() -> ContainerAttrs {
        ContainerAttrs {
            name: "spawnit-c-cache-redis".into(),
            image: "redis:7".into(),
            entrypoint: None,
            command: vec!["redis-server".into(), "--requirepass".into(), "it's $secret".into()],
            env: BTreeMap::from([("TZ".to_owned(), "UTC".to_owned())]),
            ports: vec![PublishedPort {
                container: 6379,
                host: 6380,
                host_ip: "0.0.0.0".into(),
                protocol: Protocol::Tcp,
            }],
            mounts: vec![VolumeMount { volume: "spawnit-c-cache-data".into(), path: "/data".into(), read_only: false }],
            network: "spawnit".into(),
            aliases: vec!["cache-redis".into()],
            health: Some(HealthSpec {
                command: vec!["redis-cli".into(), "ping".into()],
                interval_s: 10,
                timeout_s: 5,
                retries: 3,
                start_period_s: 0,
            }),
            user: None,
            docker_socket: false,
        }
    }

    #[test]
    fn quoting_keeps_every_value_one_literal_word() {
        assert_eq!(shell_quote("redis:7"), "redis:7");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("$(rm -rf /)"), "'$(rm -rf /)'");
        assert_eq!(shell_quote("it's"), "'it'\"'\"'s'");
    }

    #[test]
    fn run_command_has_ports_volumes_env_restart_and_health() {
        let cmd = run_command(&redis());
        assert_eq!(
            cmd,
            "docker run --detach --name spawnit-c-cache-redis --restart unless-stopped --network spawnit \
             --network-alias cache-redis --publish 0.0.0.0:6380:6379/tcp \
             --mount type=volume,source=spawnit-c-cache-data,target=/data --env TZ=UTC \
             --health-cmd 'redis-cli ping' --health-interval 10s --health-timeout 5s --health-retries 3 \
             --health-start-period 0s redis:7 redis-server --requirepass 'it'\"'\"'s $secret'"
        );
    }

    #[test]
    fn the_docker_socket_is_bound_with_its_group_read_on_the_instance() {
        let mut c = redis();
        assert!(!run_command(&c).contains("docker.sock"));
        c.docker_socket = true;
        let cmd = run_command(&c);
        assert!(
            cmd.starts_with(
                "docker run --group-add \"$(stat -c %g /var/run/docker.sock)\" --detach --name spawnit-c-cache-redis"
            ),
            "{cmd}"
        );
        assert!(cmd.contains(" --volume /var/run/docker.sock:/var/run/docker.sock "), "{cmd}");
        // Everything else stays quoted: a value cannot add a command substitution.
        c.env.insert("X".into(), "$(stat -c %g /etc/shadow)".into());
        assert!(run_command(&c).contains("--env 'X=$(stat -c %g /etc/shadow)'"), "{}", run_command(&c));
    }

    #[test]
    fn entrypoint_is_split_between_the_flag_and_the_arguments() {
        let mut c = redis();
        c.entrypoint = Some(vec!["/bin/sh".into(), "-c".into()]);
        c.command = vec!["echo hi".into()];
        c.health = None;
        assert!(run_command(&c).ends_with("--entrypoint /bin/sh redis:7 -c 'echo hi'"), "{}", run_command(&c));
    }

    #[test]
    fn script_installs_docker_if_missing_then_creates_volumes_and_runs_containers_in_order() {
        let mut second = redis();
        second.name = "spawnit-c-cache-exporter".into();
        let instance = InstanceAttrs {
            name: "spawnit-c-cache".into(),
            region: "eu-west-3".into(),
            instance_type: "t3.micro".into(),
            ami: None,
            ami_owner: "amazon".into(),
            ami_name: "amzn2-ami-ecs-hvm-*".into(),
            key_name: None,
            subnet_id: None,
            security_group: Address::new(ResourceKind::SecurityGroup, "main"),
            volumes: vec!["spawnit-c-cache-data".into()],
            containers: vec![redis(), second],
        };
        let script = render(&instance);
        assert!(script.starts_with("#!/bin/bash\n"));
        let at = |needle: &str| script.find(needle).unwrap_or_else(|| panic!("{needle:?} missing from:\n{script}"));
        assert!(at("if ! command -v docker") < at("systemctl enable --now docker"));
        assert!(at("docker network create spawnit") < at("docker volume create spawnit-c-cache-data"));
        assert!(at("docker volume create") < at(&run_command(&redis())));
        assert!(at("docker rm --force spawnit-c-cache-redis") < at(&run_command(&redis())));
        assert!(at(&run_command(&redis())) < at("--name spawnit-c-cache-exporter"));
        assert!(script.len() < USER_DATA_MAX_BYTES);
    }
}
