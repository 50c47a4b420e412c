//! Plain data shared by every SpawnIt crate: ids, templates and their parameters, service and
//! network specs and their owner keys, resources, plans, state, locks, job events, and the one
//! parser of durations people type. No I/O: the shapes written to the object store and returned
//! by the API live here and nowhere else.

pub mod duration;
pub mod event;
pub mod id;
pub mod lock;
pub mod node;
pub mod owner;
pub mod plan;
pub mod redact;
pub mod resource;
pub mod spec;
pub mod state;
pub mod template;

pub use duration::{DurationError, DurationReason, duration_parse, duration_parse_positive};
pub use event::{JobEvent, OperationOutcome};
pub use id::{Id, IdError};
pub use lock::LockInfo;
pub use owner::{Owner, OwnerKey};
pub use plan::{Action, Change, Plan, PlanStatus, ReasonCode};
pub use redact::Redactor;
pub use resource::{Address, DesiredResource, Liveness, ObservedResource, ResourceAttrs, ResourceKind};
pub use spec::{DockerNaming, DriftPolicy, Exposure, Instance, NetworkSpec, ProviderKind, ServiceSpec, TemplateRef};
pub use state::{ResourceState, State};
pub use template::{Catalog, CatalogEntry, ParamType, Parameter, Template};
