//! The HTTP routes: `fn app(state) -> Router`, the handlers, and the extractors that turn every
//! malformed request into a clear 4xx in the API's one error shape.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use spawnit_engine::ServiceCreate;
use spawnit_engine::engine::service_key;
use spawnit_model::plan::PlanStatus;
use spawnit_model::{DriftPolicy, Exposure, Id, ProviderKind, Redactor, ServiceSpec};
use spawnit_store::StoreError;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::jobs::{Job, JobKind, JobRecord, JobStatus, Target};
use crate::monitor::ReconcileFailing;

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .route("/openapi.json", get(openapi))
        .route("/catalog", get(catalog_list))
        .route("/catalog/{template}", get(catalog_get))
        .route("/services", get(service_list).post(service_create))
        .route("/services/{id}", get(service_get).patch(service_patch).delete(service_delete))
        .route("/services/{id}/plan", post(service_plan))
        .route("/services/{id}/apply", post(service_apply))
        .route("/services/{id}/destroy", post(service_destroy))
        .route("/services/{id}/lease", put(lease_set).delete(lease_remove))
        .route("/services/{id}/lease/extend", post(lease_extend))
        .route("/networks", get(network_list).post(network_create))
        .route("/networks/{id}", get(network_get))
        .route("/networks/{id}/plan", post(network_plan))
        .route("/networks/{id}/apply", post(network_apply))
        .route("/networks/{id}/destroy", post(network_destroy))
        .route("/jobs", get(job_list))
        .route("/jobs/{id}", get(job_get))
        .route("/jobs/{id}/events", get(job_events))
        .route("/jobs/{id}/cancel", post(job_cancel))
        .route("/events", get(events))
        .route("/me", get(me))
        .route("/tokens", get(token_list).post(token_create))
        .route("/tokens/{id}", axum::routing::delete(token_revoke))
        .route("/users", get(user_list).post(user_create))
        .route("/audit", get(audit_list))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") });
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .nest("/api", api)
        .merge(crate::ui::routes())
        .fallback(crate::ui::not_found)
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "method not allowed on this route")
        })
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::read_only::read_only_guard))
        .layer(axum::middleware::from_fn_with_state(state.https, crate::headers::security_headers))
        .with_state(state)
}

// ---- extractors ----

/// A JSON body whose rejections are API errors.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(JsonRejection::JsonDataError(e)) => Err(ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: "invalid_input",
                message: format!("invalid request body: {}", e.body_text()),
                details: json!([{"field": "body", "reason": e.body_text()}]),
            }),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send Content-Type: application/json",
            )),
            Err(e) => Err(ApiError::bad_request(format!("invalid request body: {}", e.body_text()))),
        }
    }
}

/// Query parameters whose rejections are API errors.
pub struct Params<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| Params(v))
            .map_err(|e: QueryRejection| ApiError::bad_request(format!("invalid query: {}", e.body_text())))
    }
}

/// The `{id}` path segment, checked as an id.
pub struct PathId(pub Id);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request(format!("invalid path: {}", e.body_text())))?;
        Id::parse(&raw).map(PathId).map_err(|e| ApiError::invalid("id", e.to_string()))
    }
}

#[derive(Deserialize, Default)]
pub struct ClientQuery {
    /// Admins: act on this client instead of their own.
    client: Option<String>,
}

// ---- views ----

/// A service as the API shows it (secrets masked), with why its reconcile waits, if it does.
fn service_view(
    spec: &ServiceSpec,
    state: Option<&spawnit_model::State>,
    status: &str,
    reasons: &[String],
    reconcile: Option<ReconcileFailing>,
) -> Value {
    let redactor = Redactor::for_spec(spec);
    let params: BTreeMap<&String, Value> = spec
        .params
        .iter()
        .map(|(k, v)| {
            (
                k,
                if spec.secret_params.contains(k) {
                    Value::String(spawnit_model::redact::MASK.into())
                } else {
                    v.clone()
                },
            )
        })
        .collect();
    let resources: BTreeMap<String, Value> = state
        .map(|s| {
            s.resources.iter().map(|(a, r)| (a.to_string(), json!({"id": r.id, "updated_at": r.updated_at}))).collect()
        })
        .unwrap_or_default();
    redactor.json(&json!({
        "client": spec.client,
        "name": spec.name,
        "template": spec.template,
        "provider": spec.provider,
        "network": spec.network,
        "exposure": spec.exposure,
        "params": params,
        "secret_params": spec.secret_params,
        "drift_policy": spec.drift_policy,
        "expires_at": spec.expires_at,
        "status": status,
        "reasons": reasons,
        "reconcile": reconcile.map(|r| json!({
            "failing": true,
            "message": r.message(),
            "reason": r.reason,
            "failures": r.failures,
            "last_job": r.last_job,
            "next_try_at": r.next_try_at,
        })),
        "endpoints": spec.endpoints(),
        "resources": resources,
        "generation": state.map(|s| s.generation).unwrap_or(0),
        "created_at": spec.created_at,
        "updated_at": spec.updated_at,
    }))
}

fn job_view(record: &JobRecord) -> Value {
    serde_json::to_value(record).unwrap_or(Value::Null)
}

fn accepted(job: &Job) -> Response {
    (StatusCode::ACCEPTED, Json(job_view(&job.record()))).into_response()
}

// ---- catalog ----

async fn openapi() -> Json<Value> {
    Json(crate::openapi::document())
}

async fn catalog_list(State(s): State<AppState>, _caller: Caller) -> Result<Json<Value>, ApiError> {
    Ok(Json(serde_json::to_value(s.engine.store().catalog().await?).unwrap_or(Value::Null)))
}

async fn catalog_get(
    State(s): State<AppState>,
    _caller: Caller,
    Path(template): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = Id::parse(&template).map_err(|e| ApiError::invalid("template", e.to_string()))?;
    Ok(Json(serde_json::to_value(s.engine.template(&id).await?).unwrap_or(Value::Null)))
}

// ---- services ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceCreateBody {
    template: String,
    name: String,
    #[serde(default)]
    network: Option<String>,
    #[serde(default)]
    params: BTreeMap<String, Value>,
    #[serde(default)]
    exposure: Option<Exposure>,
    #[serde(default)]
    provider: Option<ProviderKind>,
    #[serde(default)]
    drift_policy: Option<DriftPolicy>,
    /// Settings of the `aws` provider.
    #[serde(default)]
    aws: Option<spawnit_model::spec::AwsSettings>,
}

/// Parses the ids of a create request, reporting every bad one.
fn ids_check(fields: &[(&str, &str)]) -> Result<Vec<Id>, ApiError> {
    let mut ids = Vec::new();
    let mut errors = Vec::new();
    for (field, value) in fields {
        match Id::parse(value) {
            Ok(id) => ids.push(id),
            Err(e) => errors.push(json!({"field": field, "reason": e.to_string()})),
        }
    }
    if errors.is_empty() {
        return Ok(ids);
    }
    let message = errors
        .iter()
        .map(|e| format!("{}: {}", e["field"].as_str().unwrap_or(""), e["reason"].as_str().unwrap_or("")))
        .collect::<Vec<_>>()
        .join("; ");
    Err(ApiError {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        code: "invalid_input",
        message: format!("invalid input: {message}"),
        details: Value::Array(errors),
    })
}

async fn service_create(
    State(s): State<AppState>,
    caller: Caller,
    Params(q): Params<ClientQuery>,
    Body(body): Body<ServiceCreateBody>,
) -> Result<Response, ApiError> {
    let client = caller.client_for(q.client.as_deref())?;
    let network = body.network.as_deref().unwrap_or("default");
    let ids = ids_check(&[("template", &body.template), ("name", &body.name), ("network", network)])?;
    let spec = s
        .engine
        .service_create(ServiceCreate {
            client: client.clone(),
            name: ids[1].clone(),
            template: ids[0].clone(),
            network: ids[2].clone(),
            exposure: body.exposure.unwrap_or_default(),
            provider: body.provider.unwrap_or_default(),
            params: body.params,
            aws: body.aws,
        })
        .await?;
    let spec = match body.drift_policy {
        Some(policy) => s.engine.service_settings_set(&client, &spec.name, Some(policy), None).await?,
        None => spec,
    };
    audit(&s, &caller, &client, "create", format!("service {client}/{}", spec.name), spec.template.id.as_str()).await;
    Ok((StatusCode::CREATED, Json(service_view(&spec, None, "drifted", &["not yet applied".to_owned()], None)))
        .into_response())
}

async fn service_list(
    State(s): State<AppState>,
    caller: Caller,
    Params(q): Params<ClientQuery>,
) -> Result<Json<Value>, ApiError> {
    let client = caller.client_for(q.client.as_deref())?;
    let mut out = Vec::new();
    for name in s.engine.service_list(&client).await? {
        // A corrupt spec or state is that one service's error; the others are still listed.
        let spec = match s.engine.store().service_spec(&client, &name).await {
            Ok(Some(spec)) => spec.value,
            Ok(None) => continue,
            Err(e @ StoreError::Corrupt { .. }) => {
                out.push(unreadable_view(&client, &name, &e));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let (state, (status, reasons)) = match s.engine.store().state(&service_key(&client, &name)).await {
            Ok(state) => (
                state.map(|v| v.value),
                match s.board.get(&client, &name) {
                    Some(seen) => (seen.status.to_string(), seen.reasons),
                    None => ("unknown".to_owned(), Vec::new()),
                },
            ),
            Err(e @ StoreError::Corrupt { .. }) => (None, ("error".to_owned(), vec![e.to_string()])),
            Err(e) => return Err(e.into()),
        };
        out.push(service_view(&spec, state.as_ref(), &status, &reasons, s.board.reconcile_failing(&client, &name)));
    }
    Ok(Json(json!({"services": out})))
}

/// A service whose stored spec cannot be read: its name, `error`, and why.
fn unreadable_view(client: &Id, name: &Id, error: &StoreError) -> Value {
    json!({"client": client, "name": name, "status": "error", "reasons": [error.to_string()]})
}

async fn service_get(
    State(s): State<AppState>,
    caller: Caller,
    Params(q): Params<ClientQuery>,
    PathId(name): PathId,
) -> Result<Json<Value>, ApiError> {
    let client = caller.client_for(q.client.as_deref())?;
    let planned = s.engine.service_plan(&client, &name).await?;
    let state = s.engine.service_state(&client, &name).await?;
    let redacted = spawnit_engine::engine::redacted_plan(&planned.plan, &planned.redactor);
    let reasons: Vec<String> = if redacted.status == PlanStatus::Error {
        redacted.errors.clone()
    } else {
        redacted.actions().map(|c| format!("{} {}: {}", c.action, c.address, c.reasons.join("; "))).collect()
    };
    let reconcile = s.board.reconcile_failing(&client, &name);
    Ok(Json(service_view(&planned.spec, state.as_ref(), &redacted.status.to_string(), &reasons, reconcile)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServicePatchBody {
    #[serde(default)]
    params: Option<BTreeMap<String, Value>>,
    #[serde(default)]
    exposure: Option<Exposure>,
    #[serde(default)]
    drift_policy: Option<DriftPolicy>,
}

async fn service_patch(
    State(s): State<AppState>,
    caller: Caller,
    Params(q): Params<ClientQuery>,
    PathId(name): PathId,
    Body(body): Body<ServicePatchBody>,
) -> Result<Json<Value>, ApiError> {
    let client = caller.client_for(q.client.as_deref())?;
    s.engine.service_spec(&client, &name).await?;
    if body.params.is_some() || body.exposure.is_some() {
        s.engine.service_update(&client, &name, &body.params.unwrap_or_default(), body.exposure).await?;
    }
    if body.drift_policy.is_some() {
        s.engine.service_settings_set(&client, &name, body.drift_policy, None).await?;
    }
    audit(&s, &caller, &client, "change", format!("service {client}/{name}"), "").await;
    let _ = s.recheck.send((client.clone(), name.clone()));
    service_get(State(s), caller, Params(q), PathId(name)).await
}

async fn service_delete(
    State(s): State<AppState>,
    caller: Caller,
    Params(q): Params<ClientQuery>,
    PathId(name): PathId,
) -> Result<StatusCode, ApiError> {
    let client = caller.client_for(q.client.as_deref())?;
    let target = Target::Service { client: client.clone(), name: name.clone() };
    if s.jobs.busy(&target) {
        return Err(ApiError::conflict(format!("{target} has a job queued or running")));
    }
    s.engine.service_delete(&client, &name).await?;
    audit(&s, &caller, &client, "delete", format!("service {client}/{name}"), "").await;
    Ok(StatusCode::NO_CONTENT)
}

async fn service_job(
    s: &AppState,
    caller: &Caller,
    q: &ClientQuery,
    name: Id,
    kind: JobKind,
) -> Result<Response, ApiError> {
    let client = caller.client_for(q.client.as_deref())?;
    s.engine.service_spec(&client, &name).await?;
    let target = Target::Service { client: client.clone(), name };
    let job = s.jobs.submit(kind, target.clone(), &caller.user).await;
    audit(s, caller, &client, kind.as_str(), target.to_string(), &format!("job {}", job.record().id)).await;
    Ok(accepted(&job))
}

async fn service_plan(
    State(s): State<AppState>,
    caller: Caller,
    Params(q): Params<ClientQuery>,
    PathId(name): PathId,
) -> Result<Response, ApiError> {
    service_job(&s, &caller, &q, name, JobKind::Plan).await
}

async fn service_apply(
    State(s): State<AppState>,
    caller: Caller,
    Params(q): Params<ClientQuery>,
    PathId(name): PathId,
) -> Result<Response, ApiError> {
    service_job(&s, &caller, &q, name, JobKind::Apply).await
}

async fn service_destroy(
    State(s): State<AppState>,
    caller: Caller,
    Params(q): Params<ClientQuery>,
    PathId(name): PathId,
) -> Result<Response, ApiError> {
    service_job(&s, &caller, &q, name, JobKind::Destroy).await
}

// ---- leases ----

/// A lifetime: seconds, or a duration such as `90s`, `30m`, `2h`, `7d`.
#[derive(Deserialize)]
#[serde(untagged)]
enum Ttl {
    /// Any JSON number: `650` and `650.0` are the same whole number of seconds.
    Seconds(serde_json::Number),
    Text(String),
}

impl Ttl {
    fn duration(&self) -> Result<Duration, ApiError> {
        let d = match self {
            Ttl::Seconds(n) => {
                let whole = n.as_u64().or_else(|| {
                    n.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= u64::MAX as f64).map(|f| f as u64)
                });
                let seconds = whole.ok_or_else(|| {
                    ApiError::invalid("ttl", "must be a whole number of seconds or a duration like 30m, 2h, 7d")
                })?;
                Duration::from_secs(seconds)
            }
            Ttl::Text(t) => {
                let t = t.trim();
                let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
                let n: u64 = t[..split]
                    .parse()
                    .map_err(|_| ApiError::invalid("ttl", "must be seconds or a duration like 30m, 2h, 7d"))?;
                let unit = match &t[split..] {
                    "" | "s" => 1,
                    "m" => 60,
                    "h" => 3600,
                    "d" => 86400,
                    _ => return Err(ApiError::invalid("ttl", "must be seconds or a duration like 30m, 2h, 7d")),
                };
                Duration::from_secs(n.saturating_mul(unit))
            }
        };
        if d.is_zero() || d > Duration::from_secs(crate::openapi::TTL_MAX_SECONDS) {
            return Err(ApiError::invalid("ttl", "must be between 1 second and 10 years"));
        }
        Ok(d)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LeaseBody {
    #[serde(default)]
    ttl: Option<Ttl>,
    #[serde(default)]
    expires_at: Option<DateTime<Utc>>,
}

async fn lease_set(
    State(s): State<AppState>,
    caller: Caller,
    Params(q): Params<ClientQuery>,
    PathId(name): PathId,
    Body(body): Body<LeaseBody>,
) -> Result<Json<Value>, ApiError> {
    let client = caller.client_for(q.client.as_deref())?;
    let expires_at = match (&body.ttl, body.expires_at) {
        (Some(ttl), None) => Utc::now() + chrono::Duration::from_std(ttl.duration()?).unwrap_or_default(),
        (None, Some(at)) if at > Utc::now() => at,
        (None, Some(_)) => return Err(ApiError::invalid("expires_at", "must be in the future")),
        _ => return Err(ApiError::invalid("ttl", "give exactly one of ttl and expires_at")),
    };
    s.engine.service_settings_set(&client, &name, None, Some(Some(expires_at))).await?;
    audit(&s, &caller, &client, "lease", format!("service {client}/{name}"), &format!("expires {expires_at}")).await;
    service_get(State(s), caller, Params(q), PathId(name)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LeaseExtendBody {
    ttl: Ttl,
}

async fn lease_extend(
    State(s): State<AppState>,
    caller: Caller,
    Params(q): Params<ClientQuery>,
    PathId(name): PathId,
    Body(body): Body<LeaseExtendBody>,
) -> Result<Json<Value>, ApiError> {
    let client = caller.client_for(q.client.as_deref())?;
    let spec = s.engine.service_spec(&client, &name).await?;
    let Some(current) = spec.expires_at else {
        return Err(ApiError::conflict(format!("service {client}/{name} has no lease to extend: set one with PUT")));
    };
    let base = current.max(Utc::now());
    let expires_at = base + chrono::Duration::from_std(body.ttl.duration()?).unwrap_or_default();
    s.engine.service_settings_set(&client, &name, None, Some(Some(expires_at))).await?;
    audit(&s, &caller, &client, "lease", format!("service {client}/{name}"), &format!("extended to {expires_at}"))
        .await;
    service_get(State(s), caller, Params(q), PathId(name)).await
}

async fn lease_remove(
    State(s): State<AppState>,
    caller: Caller,
    Params(q): Params<ClientQuery>,
    PathId(name): PathId,
) -> Result<Json<Value>, ApiError> {
    let client = caller.client_for(q.client.as_deref())?;
    s.engine.service_settings_set(&client, &name, None, Some(None)).await?;
    audit(&s, &caller, &client, "lease", format!("service {client}/{name}"), "removed").await;
    service_get(State(s), caller, Params(q), PathId(name)).await
}

// ---- networks ----

async fn network_view(s: &AppState, client: &Id, name: &Id) -> Result<Value, ApiError> {
    let plan = s.engine.network_plan(client, name).await?;
    let state = s.engine.store().state(&spawnit_engine::engine::network_key(client, name)).await?.map(|v| v.value);
    let reasons: Vec<String> = if plan.status == PlanStatus::Error {
        plan.errors.clone()
    } else {
        plan.actions().map(|c| format!("{} {}: {}", c.action, c.address, c.reasons.join("; "))).collect()
    };
    let resources: BTreeMap<String, Value> = state
        .map(|s| s.resources.iter().map(|(a, r)| (a.to_string(), json!({"id": r.id}))).collect())
        .unwrap_or_default();
    Ok(json!({"client": client, "name": name, "status": plan.status, "reasons": reasons, "resources": resources}))
}

async fn network_list(
    State(s): State<AppState>,
    caller: Caller,
    Params(q): Params<ClientQuery>,
) -> Result<Json<Value>, ApiError> {
    let client = caller.client_for(q.client.as_deref())?;
    let mut out = Vec::new();
    for name in s.engine.network_list(&client).await? {
        out.push(network_view(&s, &client, &name).await?);
    }
    Ok(Json(json!({"networks": out})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NetworkCreateBody {
    name: String,
}

async fn network_create(
    State(s): State<AppState>,
    caller: Caller,
    Params(q): Params<ClientQuery>,
    Body(body): Body<NetworkCreateBody>,
) -> Result<Response, ApiError> {
    let client = caller.client_for(q.client.as_deref())?;
    let name = Id::parse(&body.name).map_err(|e| ApiError::invalid("name", e.to_string()))?;
    s.engine.network_create(&client, &name).await?;
    audit(&s, &caller, &client, "create", format!("network {client}/{name}"), "").await;
    Ok((StatusCode::CREATED, Json(network_view(&s, &client, &name).await?)).into_response())
}

async fn network_get(
    State(s): State<AppState>,
    caller: Caller,
    Params(q): Params<ClientQuery>,
    PathId(name): PathId,
) -> Result<Json<Value>, ApiError> {
    let client = caller.client_for(q.client.as_deref())?;
    Ok(Json(network_view(&s, &client, &name).await?))
}

async fn network_job(
    s: &AppState,
    caller: &Caller,
    q: &ClientQuery,
    name: Id,
    kind: JobKind,
) -> Result<Response, ApiError> {
    let client = caller.client_for(q.client.as_deref())?;
    s.engine.network_spec(&client, &name).await?;
    let target = Target::Network { client: client.clone(), name };
    let job = s.jobs.submit(kind, target.clone(), &caller.user).await;
    audit(s, caller, &client, kind.as_str(), target.to_string(), &format!("job {}", job.record().id)).await;
    Ok(accepted(&job))
}

async fn network_plan(
    State(s): State<AppState>,
    caller: Caller,
    Params(q): Params<ClientQuery>,
    PathId(name): PathId,
) -> Result<Response, ApiError> {
    network_job(&s, &caller, &q, name, JobKind::Plan).await
}

async fn network_apply(
    State(s): State<AppState>,
    caller: Caller,
    Params(q): Params<ClientQuery>,
    PathId(name): PathId,
) -> Result<Response, ApiError> {
    network_job(&s, &caller, &q, name, JobKind::Apply).await
}

async fn network_destroy(
    State(s): State<AppState>,
    caller: Caller,
    Params(q): Params<ClientQuery>,
    PathId(name): PathId,
) -> Result<Response, ApiError> {
    network_job(&s, &caller, &q, name, JobKind::Destroy).await
}

// ---- jobs ----

#[derive(Deserialize, Default)]
struct JobQuery {
    #[serde(default)]
    status: Option<JobStatus>,
}

async fn job_list(State(s): State<AppState>, caller: Caller, Params(q): Params<JobQuery>) -> Json<Value> {
    let jobs: Vec<Value> = s
        .jobs
        .list()
        .iter()
        .filter(|r| caller.sees(r.target.client()) && q.status.is_none_or(|st| st == r.status))
        .map(job_view)
        .collect();
    Json(json!({"jobs": jobs}))
}

fn job_visible(s: &AppState, caller: &Caller, id: &str) -> Result<std::sync::Arc<Job>, ApiError> {
    s.jobs
        .get(id)
        .filter(|j| caller.sees(j.record().target.client()))
        .ok_or_else(|| ApiError::not_found(format!("job {}", id.chars().take(80).collect::<String>())))
}

async fn job_get(State(s): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    Ok(Json(job_view(&job_visible(&s, &caller, &id)?.record())))
}

async fn job_events(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let job = job_visible(&s, &caller, &id)?;
    let from = match headers.get("last-event-id").and_then(|v| v.to_str().ok()) {
        None => 0,
        Some(v) => v
            .trim()
            .parse::<usize>()
            .map(|i| i + 1)
            .map_err(|_| ApiError::bad_request("Last-Event-ID must be an event id"))?,
    };
    Ok(crate::sse::job_stream(job, from, s.metrics.clone()).into_response())
}

async fn job_cancel(State(s): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<Response, ApiError> {
    let job = job_visible(&s, &caller, &id)?;
    if !s.jobs.cancel(&job) {
        return Err(ApiError::conflict(format!("job {id} already finished ({})", job.record().status.as_str())));
    }
    let record = job.record();
    audit(&s, &caller, record.target.client(), "cancel", record.target.to_string(), &format!("job {}", record.id))
        .await;
    Ok(accepted(&job))
}

// ---- readiness ----

/// How long the readiness probe waits for the store and for the Docker engine.
const READY_PROBE: Duration = Duration::from_secs(3);

/// Readiness: 200 when the store and the Docker engine both answer now, else 503 saying which
/// does not and why. `/healthz` stays the liveness probe (the process serves HTTP).
async fn readyz(State(s): State<AppState>) -> Response {
    let (store, docker) = tokio::join!(s.engine.store().probe(READY_PROBE), async {
        match tokio::time::timeout(READY_PROBE, s.docker.client().ping()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("the Docker engine does not answer: {e}")),
            Err(_) => Err(format!("the Docker engine did not answer within {}s", READY_PROBE.as_secs())),
        }
    });
    let check = |result: Result<(), String>| match result {
        Ok(()) => json!({"ok": true}),
        Err(error) => json!({"ok": false, "error": error}),
    };
    let ready = store.is_ok() && docker.is_ok();
    let body = json!({
        "status": if ready { "ready" } else { "unavailable" },
        "checks": {"store": check(store.map_err(|e| e.to_string())), "docker": check(docker)},
    });
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}

// ---- events, metrics ----

async fn events(State(s): State<AppState>, caller: Caller) -> Response {
    crate::sse::events_stream(&s.bus, caller).into_response()
}

async fn metrics(State(s): State<AppState>) -> Response {
    let jobs: BTreeMap<&str, usize> = s.jobs.counts().into_iter().map(|(k, v)| (k.as_str(), v)).collect();
    let body = s.metrics.render(&jobs, &s.board.counts());
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

// ---- audit helper ----

/// Writes an audit entry for what `caller` did.
pub(crate) async fn audit(s: &AppState, caller: &Caller, client: &Id, action: &str, target: String, detail: &str) {
    crate::audit::record(s.engine.store(), &caller.user, client.as_str(), action, target, caller.ip, detail).await;
}

// ---- accounts, tokens, audit ----

/// Refuses a non-admin caller.
pub(crate) fn admin_only(caller: &Caller) -> Result<(), ApiError> {
    if caller.is_admin() {
        Ok(())
    } else {
        Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", "this needs an admin"))
    }
}

async fn me(caller: Caller) -> Json<Value> {
    Json(json!({
        "user": caller.user,
        "client": caller.client,
        "role": caller.role,
        "csrf": caller.session.as_ref().map(|s| s.csrf.clone()),
    }))
}

fn token_view(r: &crate::auth::TokenRecord) -> Value {
    json!({"id": r.id, "name": r.name, "user": r.user, "client": r.client, "role": r.role, "created_at": r.created_at})
}

async fn token_list(State(s): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    let tokens = crate::auth::token_list(s.engine.store(), Some(&caller.user)).await?;
    Ok(Json(json!({"tokens": tokens.iter().map(token_view).collect::<Vec<_>>()})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenCreateBody {
    #[serde(default)]
    name: String,
}

/// A token name: printable, at most 100 characters.
pub(crate) fn token_name_check(name: &str) -> Result<String, ApiError> {
    if name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(ApiError::invalid("name", "must be at most 100 printable characters"));
    }
    Ok(name.trim().to_owned())
}

async fn token_create(
    State(s): State<AppState>,
    caller: Caller,
    Body(body): Body<TokenCreateBody>,
) -> Result<Response, ApiError> {
    let name = token_name_check(&body.name)?;
    let (token, record) =
        crate::auth::token_create_named(s.engine.store(), &caller.user, &caller.client, caller.role, &name).await?;
    audit(&s, &caller, &caller.client, "token_create", format!("token {}", record.id), &name).await;
    let mut view = token_view(&record);
    view["token"] = Value::String(token);
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

async fn token_revoke(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let owner = if caller.is_admin() { None } else { Some(caller.user.as_str()) };
    match crate::auth::token_revoke(s.engine.store(), &id, owner).await? {
        Some(r) => {
            audit(&s, &caller, &r.client, "token_revoke", format!("token {}", r.id), &r.name).await;
            Ok(StatusCode::NO_CONTENT)
        }
        None => Err(ApiError::not_found(format!("token {}", id.chars().take(80).collect::<String>()))),
    }
}

fn user_view(u: &crate::accounts::UserRecord) -> Value {
    json!({"name": u.name, "client": u.client, "role": u.role, "password": u.password_hash.is_some(),
           "oidc": u.oidc_subject.is_some(), "email": u.email, "created_at": u.created_at})
}

async fn user_list(State(s): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    admin_only(&caller)?;
    let users = crate::accounts::user_list(s.engine.store()).await?;
    Ok(Json(json!({"users": users.iter().map(user_view).collect::<Vec<_>>()})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserCreateBody {
    name: String,
    client: String,
    #[serde(default)]
    role: Option<crate::auth::Role>,
    /// Absent: the user signs in only through OIDC.
    #[serde(default)]
    password: Option<String>,
    /// The e-mail address that links the user's first OIDC sign-in (exact, `email_verified`).
    #[serde(default)]
    email: Option<String>,
}

/// Creates a user for an admin (API and admin page).
pub(crate) async fn user_create_checked(
    s: &AppState,
    caller: &Caller,
    name: &str,
    client: &str,
    role: crate::auth::Role,
    password: Option<&str>,
    email: Option<&str>,
) -> Result<crate::accounts::UserRecord, ApiError> {
    admin_only(caller)?;
    let ids = ids_check(&[("name", name), ("client", client)])?;
    let store = s.engine.store();
    let user = crate::accounts::user_create_with_email(store, &ids[0], &ids[1], role, password, None, email)
        .await
        .map_err(|e| match e {
            crate::accounts::AccountError::Exists(_) => ApiError::conflict(e.to_string()),
            crate::accounts::AccountError::WeakPassword => ApiError::invalid("password", e.to_string()),
            crate::accounts::AccountError::BadEmail => ApiError::invalid("email", e.to_string()),
            crate::accounts::AccountError::Store(e) => ApiError::from(e),
            crate::accounts::AccountError::Hash(m) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", m),
        })?;
    audit(s, caller, &user.client, "user_create", format!("user {}", user.name), "").await;
    Ok(user)
}

async fn user_create(State(s): State<AppState>, caller: Caller, req: Request) -> Result<Response, ApiError> {
    // Non-admins are refused before the body is even read.
    admin_only(&caller)?;
    let Body(body) = Body::<UserCreateBody>::from_request(req, &()).await?;
    let role = body.role.unwrap_or(crate::auth::Role::Member);
    let (password, email) = (body.password.as_deref(), body.email.as_deref());
    let user = user_create_checked(&s, &caller, &body.name, &body.client, role, password, email).await?;
    Ok((StatusCode::CREATED, Json(user_view(&user))).into_response())
}

/// The most audit entries one call returns (the OpenAPI document's `maximum`).
const AUDIT_LIMIT_MAX: usize = 5000;

#[derive(Deserialize, Default)]
struct AuditQuery {
    #[serde(default)]
    limit: Option<usize>,
}

async fn audit_list(
    State(s): State<AppState>,
    caller: Caller,
    Params(q): Params<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    admin_only(&caller)?;
    let limit = q.limit.unwrap_or(200);
    if limit > AUDIT_LIMIT_MAX {
        return Err(ApiError::invalid("limit", format!("must be at most {AUDIT_LIMIT_MAX}")));
    }
    let entries = crate::audit::list(s.engine.store(), limit).await?;
    Ok(Json(json!({"entries": entries})))
}
