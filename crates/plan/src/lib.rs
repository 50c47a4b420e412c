//! SpawnIt's pure planning: user parameters checked against a template's and rendered into an
//! instance (`render`), the desired resources of a service or network spec (`desired`), their
//! dependency graph (`graph`), the planner that compares desired resources with recorded state
//! and observed resources (`planner`), and the built-in catalog's templates (`catalog`).
//!
//! This crate depends on the model alone: no store, no async runtime, no clock, so the compiler
//! keeps planning free of I/O (the one impurity is the random source that generates secret
//! parameters). The engine crate runs plans over providers.

mod balancer;
mod catalog;
mod desired;
mod graph;
mod planner;
mod render;
mod swarm;

pub use balancer::{
    BALANCER_LISTEN_PORT, CADDYFILE_PATH, STICKY_COOKIE, SWARM_DNS_REFRESH, caddyfile, caddyfile_swarm,
    caddyfile_upstreams, config_digest, health_path_check,
};
pub use catalog::builtin_templates;
pub use desired::{
    aws_allowed_cidrs, aws_instance_address, balancer_address, fingerprint, naming_notes, network_name,
    network_resources, provider_settings_check, service_resources, service_resources_on,
};
pub use graph::{CycleError, dependency_map, to_dot, topological_order};
pub use planner::{plan_apply, plan_destroy};
pub use render::{FieldError, TemplateError, ValidationError, params_resolve, render, scaling_check, template_check};
pub use swarm::{
    Placement, SWARM_CADDYFILE, SWARM_SECRETS_DIR, env_digest, swarm_balancer_address, swarm_caddyfile_address,
    swarm_check, swarm_network_name, swarm_notes, swarm_resources, swarm_settings_check,
};
