//! Test support for SpawnIt's tests, never linked into the binary: [`swarm::SwarmCluster`]
//! starts a real multi-node Docker Swarm on one machine, each node a Docker engine running in a
//! container of the host's engine, so tests can kill a node, start it again, and watch Swarm and
//! SpawnIt react.

pub mod swarm;
