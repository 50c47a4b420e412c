//! SpawnIt's pure planning: user parameters checked against a template's and rendered into an
//! instance (`render`), the desired resources of a service or network spec (`desired`; the
//! scalable AWS stacks' in `aws_scale`), their
//! dependency graph (`graph`), the planner that compares desired resources with recorded state
//! and observed resources (`planner`), and the built-in catalog's templates (`catalog`).
//!
//! This crate depends on the model alone: no store, no async runtime, no clock, so the compiler
//! keeps planning free of I/O (the one impurity is the random source that generates secret
//! parameters). The engine crate runs plans over providers.

mod aws_ecs;
mod aws_scale;
mod balancer;
mod catalog;
mod desired;
mod graph;
mod planner;
mod render;
mod swarm;

pub use aws_ecs::{
    ECS_LOG_RETENTION_DAYS, ECS_TASKS_PRINCIPAL, aws_ecs_check, aws_ecs_resources, aws_partition, ecs_cluster_address,
    ecs_execution_policy_arn, ecs_log_group_address, ecs_role_address, ecs_service_address,
    ecs_task_definition_address, fargate_memory_ok,
};
pub use aws_scale::{
    CACHE_NODE_TYPE, DEFAULT_TARGET_CPU, REDIS_PORT, TargetType, alb_address, app_containers, app_group_address,
    autoscaling_group_address, aws_asg_resources, aws_cache_resources, aws_front_resources, aws_scale_check,
    aws_short_name, cache_address, cache_env_value, cache_group_address, cache_subnet_group_address,
    launch_template_address, lb_group_address, listener_address, managed_redis, redis_password, scale_bounds,
    target_group_address,
};
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
