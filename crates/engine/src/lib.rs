//! SpawnIt's engine: the I/O half of planning and applying. The [`Provider`] trait is the only
//! way it touches the world; a plan is executed over a provider with state written after every
//! resource operation ([`ExecutionReport`]); and [`Engine`] ties the store, locks, state and
//! providers into the operations the CLI and the server offer, including the sweep of many
//! services against one [`ObservedWorld`]. Every decision is made by the pure `spawnit-plan`
//! crate, whose functions callers need are re-exported here.
//!
//! The modules are private: this root is the engine's whole surface.

mod engine;
mod execute;
mod placement;
mod ports;
mod provider;
mod world;

pub use engine::{
    Engine, EngineError, Providers, RunOptions, ServiceCreate, ServicePlan, ServiceStatus, SweepScope, masked_error,
    network_readiness, redacted_plan,
};
pub use execute::{EventSink, ExecutionReport, events_ignored};
pub use provider::{Applied, Provider, ProviderError, Scope};
pub use spawnit_plan::{
    FieldError, TemplateError, ValidationError, aws_allowed_cidrs, aws_instance_address, dependency_map, fingerprint,
    service_resources, template_check, to_dot, topological_order,
};
pub use world::{ObservedWorld, image_reference_normalized};
