//! SpawnIt's engine. Pure parts: parameter validation and rendering ([`render`]), the desired
//! resources of a spec ([`desired`]), the dependency graph ([`graph`]) and the planner
//! ([`planner`]). I/O parts, all behind small interfaces: the [`Provider`] trait, execution of a
//! plan over it ([`execute`]), and [`Engine`], which ties the store, locks, state and a provider
//! into the operations the CLI and the server offer.

pub mod catalog;
pub mod desired;
pub mod engine;
pub mod execute;
pub mod graph;
pub mod planner;
pub mod provider;
pub mod render;
pub mod world;

pub use engine::{Engine, EngineError, Providers, RunOptions, ServiceCreate, SweepScope, network_readiness};
pub use execute::{EventSink, ExecutionReport};
pub use provider::{Provider, ProviderError, Scope};
pub use render::{FieldError, TemplateError, ValidationError};
pub use world::ObservedWorld;
