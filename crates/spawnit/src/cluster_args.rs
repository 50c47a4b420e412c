//! The flags of `spawnit serve` for the Swarm cluster's node monitor (used when a Swarm
//! manager is configured with `--swarm-host`).

use std::time::Duration;

use clap::Args;

fn duration_positive(s: &str) -> Result<Duration, String> {
    spawnit_model::duration_parse_positive("duration", s).map_err(|e| e.reason.to_string())
}

/// How the node monitor checks the cluster and cleans nodes.
#[derive(Args, Debug, Clone)]
pub struct NodeMonitorArgs {
    /// Time between two checks of the Swarm cluster's nodes (node down, healed, returned, leases).
    #[arg(long, env = "SPAWNIT_NODE_CHECK_INTERVAL", default_value = "2s", value_parser = duration_positive)]
    pub node_check_interval: Duration,
    /// How long before a node lease ends a warning is published (repeatable).
    #[arg(long = "node-lease-warning", default_values = ["1h", "5m"], value_parser = duration_positive)]
    pub node_lease_warnings: Vec<Duration>,
    /// The image of the one-shot job that removes a cleaned node's volumes (a `docker` CLI and `sh`).
    #[arg(long, env = "SPAWNIT_NODE_CLEANER_IMAGE", default_value = spawnit_cluster::CLEANER_IMAGE_DEFAULT)]
    pub node_cleaner_image: String,
    /// How long cleaning a node may wait for its tasks to stop and its cleaning job to end.
    #[arg(long, env = "SPAWNIT_NODE_CLEAN_TIMEOUT", default_value = "2m", value_parser = duration_positive)]
    pub node_clean_timeout: Duration,
    /// The manager address new nodes dial (`host:2377`) when the managers' own addresses are
    /// not reachable from them (e.g. a public address in front of NAT); default: the leader's.
    #[arg(long, env = "SPAWNIT_SWARM_JOIN_ADDR")]
    pub swarm_join_addr: Option<String>,
}

impl NodeMonitorArgs {
    /// The cluster's settings from these flags.
    pub fn cluster_config(&self) -> spawnit_cluster::ClusterConfig {
        spawnit_cluster::ClusterConfig {
            cleaner_image: self.node_cleaner_image.clone(),
            clean_timeout: self.node_clean_timeout,
            join_addr: self.swarm_join_addr.clone(),
            ..Default::default()
        }
    }

    /// What the server needs to run the monitor on `cluster`.
    pub fn setup(&self, cluster: spawnit_cluster::Cluster) -> spawnit_server::cluster_monitor::ClusterSetup {
        spawnit_server::cluster_monitor::ClusterSetup {
            cluster: cluster.with_config(self.cluster_config()),
            every: self.node_check_interval,
            monitor: spawnit_cluster::MonitorConfig {
                lease_warnings: self.node_lease_warnings.clone(),
                ..Default::default()
            },
        }
    }
}
