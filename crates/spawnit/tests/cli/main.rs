//! The CLI's integration tests, one test binary (one link, and tests of every module run side
//! by side): each module drives the real `spawnit` binary on one area — Docker, S3 stores, AWS
//! on moto_server, Swarm clusters, secrets, tokens, upgrades, scaling. Run one area with
//! `cargo test -p spawnit --test cli docker::`.

mod common;

#[cfg(feature = "aws")]
mod aws;
#[cfg(feature = "aws")]
mod aws_asg;
#[cfg(feature = "aws")]
mod aws_ecs;
mod docker;
mod names;
mod nodes;
mod oneclick;
mod reliability;
mod replicas;
mod s3;
mod scale;
mod scale_verb;
mod secrets;
mod selfdeploy;
mod swarm;
mod tokens;
mod upgrade;
