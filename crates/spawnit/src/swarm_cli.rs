//! The Swarm flags of the command line (clap definitions only): which manager SpawnIt drives and
//! the settings a new `swarm` service gets. Global, so `create`, `plan`, `apply`, `destroy`,
//! `status` and `serve` all reach the same cluster.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use spawnit_model::spec::{PublishMode, SwarmSettings};

/// How SpawnIt reaches a Docker Swarm cluster (provider `swarm`).
#[derive(Args, Debug, Clone)]
pub struct SwarmArgs {
    /// A Swarm manager's Docker API: unix:///var/run/docker.sock, or tcp://HOST:2376 (plain
    /// HTTP, or TLS with --swarm-tls-dir). Without it, provider swarm is not available.
    #[arg(long, global = true, env = "SPAWNIT_SWARM_HOST", value_name = "URL")]
    pub swarm_host: Option<String>,
    /// A directory with ca.pem, cert.pem and key.pem (the DOCKER_CERT_PATH layout): TLS with a
    /// client certificate to --swarm-host.
    #[arg(long, global = true, env = "SPAWNIT_SWARM_TLS_DIR", value_name = "DIR")]
    pub swarm_tls_dir: Option<PathBuf>,
    /// How new swarm services publish ports: ingress (Swarm's routing mesh: every node answers;
    /// needs IPVS in the nodes' kernels) or host (only the node running the task answers).
    #[arg(long, global = true, env = "SPAWNIT_SWARM_PUBLISH_MODE", value_enum, default_value_t)]
    pub swarm_publish_mode: PublishModeArg,
    /// Restart policy `any` of new swarm services: a failed task restarts after this delay.
    #[arg(long, global = true, env = "SPAWNIT_SWARM_RESTART_DELAY", default_value = "5s", value_parser = parse_seconds)]
    pub swarm_restart_delay: Duration,
    /// Time a task of a new swarm service has to stop after SIGTERM before it is killed.
    #[arg(long, global = true, env = "SPAWNIT_SWARM_STOP_GRACE", default_value = "10s", value_parser = parse_seconds)]
    pub swarm_stop_grace: Duration,
}

impl SwarmArgs {
    /// The settings of a new swarm service.
    pub fn settings(&self) -> SwarmSettings {
        SwarmSettings {
            publish_mode: match self.swarm_publish_mode {
                PublishModeArg::Ingress => PublishMode::Ingress,
                PublishModeArg::Host => PublishMode::Host,
            },
            restart_delay_s: self.swarm_restart_delay.as_secs() as u32,
            stop_grace_s: self.swarm_stop_grace.as_secs() as u32,
        }
    }
}

/// How a swarm service publishes its ports.
#[derive(ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PublishModeArg {
    #[default]
    Ingress,
    Host,
}

/// A duration in whole seconds, at most an hour.
fn parse_seconds(s: &str) -> Result<Duration, String> {
    let d = spawnit_model::duration_parse("duration", s).map_err(|e| e.reason.to_string())?;
    if d > Duration::from_secs(3600) || d.subsec_nanos() != 0 {
        return Err(format!("{s:?} must be whole seconds, at most 1h"));
    }
    Ok(d)
}
