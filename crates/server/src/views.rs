//! What the API answers: one typed view per thing a caller sees (a service, a network, a job, a
//! token, a user, an audit entry, the caller), built by [`crate::ops`] and serialized as is by
//! the API handlers. Secrets never reach a view: a service's view masks its secret parameters
//! field by field as it is built.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use spawnit_model::plan::PlanStatus;
use spawnit_model::spec::{Endpoint, TemplateRef};
use spawnit_model::{DriftPolicy, Exposure, Id, ProviderKind, Redactor, ServiceSpec, State};
use utoipa::ToSchema;
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};

use crate::accounts::{Role, UserRecord};
use crate::audit::AuditRecord;
use crate::auth::TokenRecord;
use crate::caller::Caller;
use crate::jobs::JobRecord;
use crate::monitor::ReconcileFailing;

pub mod nodes;

/// Where a service or network stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Nothing to do: what runs is what the spec says.
    Compliant,
    /// Changes are needed (or it was never applied).
    Drifted,
    /// It could not be planned or read; `reasons` say why.
    Error,
    /// Not checked yet by the drift monitor.
    Unknown,
}

impl Status {
    pub const ALL: [Status; 4] = [Status::Compliant, Status::Drifted, Status::Error, Status::Unknown];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Compliant => "compliant",
            Status::Drifted => "drifted",
            Status::Error => "error",
            Status::Unknown => "unknown",
        }
    }
}

impl From<PlanStatus> for Status {
    fn from(status: PlanStatus) -> Status {
        match status {
            PlanStatus::Compliant => Status::Compliant,
            PlanStatus::Drifted => Status::Drifted,
            PlanStatus::Error => Status::Error,
        }
    }
}

/// Parameter values by name: strings, integers, booleans; `null` (or `""`) asks for the
/// default.
pub(crate) fn param_values() -> Schema {
    let value = ObjectBuilder::new().schema_type(SchemaType::from_iter([
        Type::String,
        Type::Integer,
        Type::Boolean,
        Type::Null,
    ]));
    ObjectBuilder::new().schema_type(Type::Object).additional_properties(Some(value)).into()
}

/// A service as the API shows it (secrets masked), with why its reconcile waits, if it does.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ServiceView {
    pub client: Id,
    pub name: Id,
    pub template: TemplateRef,
    pub provider: ProviderKind,
    pub network: Id,
    pub exposure: Exposure,
    /// Every parameter's value; secret ones are `(sensitive)`.
    #[schema(schema_with = param_values)]
    pub params: BTreeMap<String, Value>,
    pub secret_params: Vec<String>,
    pub drift_policy: DriftPolicy,
    pub expires_at: Option<DateTime<Utc>>,
    pub status: Status,
    pub reasons: Vec<String>,
    /// Set while reconcile applies of the service fail.
    pub reconcile: Option<ReconcileView>,
    pub endpoints: Vec<Endpoint>,
    /// The recorded resources by address.
    pub resources: BTreeMap<String, ResourceView>,
    pub generation: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Why the reconcile of a service waits (the next waits are 10 s doubling up to 10 min by default).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ReconcileView {
    pub failing: bool,
    /// `reconcile failing: <reason>, next try at <time>`.
    pub message: String,
    pub reason: String,
    pub failures: u32,
    pub last_job: String,
    pub next_try_at: DateTime<Utc>,
}

/// A recorded resource of a service.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ResourceView {
    /// The provider's id.
    pub id: String,
    pub updated_at: DateTime<Utc>,
}

impl ServiceView {
    /// The view of `spec` with its recorded `state`: every text that could hold a secret
    /// (parameters, reasons, endpoints, resource ids) is masked.
    pub fn new(
        spec: &ServiceSpec,
        state: Option<&State>,
        status: Status,
        reasons: &[String],
        reconcile: Option<ReconcileFailing>,
    ) -> ServiceView {
        let redactor = Redactor::for_spec(spec);
        let text = |t: &str| redactor.text(t);
        let params = spec
            .params
            .iter()
            .map(|(k, v)| {
                let v = if spec.secret_params.contains(k) {
                    Value::String(spawnit_model::redact::MASK.into())
                } else {
                    redactor.json(v)
                };
                (text(k), v)
            })
            .collect();
        let endpoints = spec
            .endpoints()
            .into_iter()
            .map(|e| Endpoint {
                container: text(&e.container),
                name: text(&e.name),
                address: text(&e.address),
                protocol: e.protocol,
                url: e.url.as_deref().map(text),
            })
            .collect();
        let resources = state
            .map(|s| {
                s.resources
                    .iter()
                    .map(|(a, r)| (text(&a.to_string()), ResourceView { id: text(&r.id), updated_at: r.updated_at }))
                    .collect()
            })
            .unwrap_or_default();
        ServiceView {
            client: spec.client.clone(),
            name: spec.name.clone(),
            template: spec.template.clone(),
            provider: spec.provider,
            network: spec.network.clone(),
            exposure: spec.exposure,
            params,
            secret_params: spec.secret_params.clone(),
            drift_policy: spec.drift_policy,
            expires_at: spec.expires_at,
            status,
            reasons: reasons.iter().map(|r| text(r)).collect(),
            reconcile: reconcile.map(|r| ReconcileView {
                failing: true,
                message: text(&r.message()),
                reason: text(&r.reason),
                failures: r.failures,
                last_job: r.last_job,
                next_try_at: r.next_try_at,
            }),
            endpoints,
            resources,
            generation: state.map(|s| s.generation).unwrap_or(0),
            created_at: spec.created_at,
            updated_at: spec.updated_at,
        }
    }
}

/// A service whose stored spec cannot be read: its name, `error`, and why.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnreadableServiceView {
    pub client: Id,
    pub name: Id,
    /// Always `error`.
    pub status: Status,
    pub reasons: Vec<String>,
}

/// One entry of a service list.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum ServiceListItem {
    Service(Box<ServiceView>),
    Unreadable(UnreadableServiceView),
}

/// The services of a client (one whose stored spec cannot be read is listed as an error).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ServiceList {
    pub services: Vec<ServiceListItem>,
    /// The `cursor` of the next page; `null` on the last one.
    pub next_cursor: Option<Id>,
}

/// A network, freshly planned.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct NetworkView {
    pub client: Id,
    pub name: Id,
    pub status: Status,
    pub reasons: Vec<String>,
    /// The recorded resources by address.
    pub resources: BTreeMap<String, NetworkResourceView>,
}

/// A recorded resource of a network.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct NetworkResourceView {
    /// The provider's id.
    pub id: String,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct NetworkList {
    pub networks: Vec<NetworkView>,
}

/// A job as the API shows it: its record (its events stream separately).
pub type JobView = JobRecord;

/// Jobs, newest first.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct JobList {
    pub jobs: Vec<JobView>,
}

/// Who the caller is.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct MeView {
    pub user: String,
    pub client: Id,
    pub role: Role,
    /// The session's CSRF token (session callers only).
    pub csrf: Option<String>,
}

impl From<&Caller> for MeView {
    fn from(c: &Caller) -> MeView {
        MeView {
            user: c.user.clone(),
            client: c.client.clone(),
            role: c.role,
            csrf: c.session.as_ref().map(|s| s.csrf.clone()),
        }
    }
}

/// An API token's record (never the token, but in the answer to its creation).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct TokenView {
    pub id: String,
    pub name: String,
    pub user: String,
    pub client: Id,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    /// The token itself: only in the answer to its creation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl From<&TokenRecord> for TokenView {
    fn from(r: &TokenRecord) -> TokenView {
        TokenView {
            id: r.id.clone(),
            name: r.name.clone(),
            user: r.user.clone(),
            client: r.client.clone(),
            role: r.role,
            created_at: r.created_at,
            token: None,
        }
    }
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct TokenList {
    pub tokens: Vec<TokenView>,
}

/// A user (never its password hash).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct UserView {
    pub name: Id,
    pub client: Id,
    pub role: Role,
    /// Whether the user has a password (else it signs in through OIDC only).
    pub password: bool,
    /// Whether the user is linked to an OIDC subject.
    pub oidc: bool,
    pub email: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<&UserRecord> for UserView {
    fn from(u: &UserRecord) -> UserView {
        UserView {
            name: u.name.clone(),
            client: u.client.clone(),
            role: u.role,
            password: u.password_hash.is_some(),
            oidc: u.oidc_subject.is_some(),
            email: u.email.clone(),
            created_at: u.created_at,
        }
    }
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct UserList {
    pub users: Vec<UserView>,
}

/// One audit entry as the API shows it: the record itself (it holds no secret).
pub type AuditEntryView = AuditRecord;

/// Audit entries, newest first.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct AuditList {
    pub entries: Vec<AuditEntryView>,
}

/// The liveness answer: the process serves HTTP.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct HealthView {
    /// Always `ok`.
    pub status: &'static str,
    /// The replica that answered (several may share one store behind a load balancer).
    pub replica: String,
    /// Whether that replica leads: runs the drift monitor, lease keeper, autoscaler and
    /// cluster monitor for all of them.
    pub leader: bool,
}

/// Whether the server can work now: the store and the Docker engine answer.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ReadinessView {
    pub status: Readiness,
    pub checks: ReadinessChecks,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Readiness {
    Ready,
    Unavailable,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ReadinessChecks {
    pub store: CheckView,
    pub docker: CheckView,
}

/// One dependency's answer.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct CheckView {
    pub ok: bool,
    /// Why it does not answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl From<Result<(), String>> for CheckView {
    fn from(result: Result<(), String>) -> CheckView {
        CheckView { ok: result.is_ok(), error: result.err() }
    }
}

/// The replicas of a service's replicated containers, their last CPU samples, and the
/// autoscaler's recent decisions (`GET /api/services/{id}/scale`).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ScaleView {
    pub client: Id,
    pub name: Id,
    pub containers: Vec<ReplicatedContainerView>,
    /// The autoscaler's last decisions, newest first (kept in memory: empty after a restart).
    pub decisions: Vec<crate::autoscaler::ScaleDecision>,
}

/// A replicated container: its count, its scale policy, its replicas.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ReplicatedContainerView {
    /// Its name in the service, e.g. `app`.
    pub container: String,
    /// The replica count the spec asks for.
    pub replicas: u32,
    /// The autoscaler's bounds and target, when it has one.
    pub policy: Option<ScalePolicyView>,
    /// The replicas recorded in the service's state.
    pub instances: Vec<ReplicaView>,
}

/// A scale policy: the autoscaler keeps the average CPU near `target_cpu_percent`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ScalePolicyView {
    pub min: u32,
    pub max: u32,
    /// Percent of one core per replica.
    pub target_cpu_percent: u32,
}

/// One replica.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ReplicaView {
    /// E.g. `container.app[0]`.
    pub address: String,
    /// The Docker container id.
    pub id: String,
    /// As Docker reports it now (`running (healthy)`, `exited`…); absent when it is gone or
    /// Docker did not answer.
    pub status: Option<String>,
    /// The autoscaler's last sample, percent of one core.
    pub cpu_percent: Option<f64>,
    pub sampled_at: Option<DateTime<Utc>>,
}
