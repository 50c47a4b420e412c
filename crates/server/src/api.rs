//! The HTTP routes of the API: `routes()`, the extractors that turn every malformed request
//! into a clear 4xx in the API's one error shape, and the handlers: thin adapters that pass a
//! request's parts to one function of [`crate::ops`] and answer its view as JSON. Each handler
//! carries its `#[utoipa::path]` documentation, and `routes()` registers handlers only through
//! `utoipa_axum::routes!`, which adds them to the router and to the OpenAPI document
//! ([`crate::openapi`]) at once: no `/api` route exists without its documentation.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use spawnit_model::{Catalog, Id, Template};
use utoipa::IntoParams;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;

mod nodes;
use crate::caller::Caller;
use crate::error::ApiError;
use crate::index::ListQuery;
use crate::jobs::{JobKind, JobStatus};
use crate::ops;
use crate::ops::{
    AUDIT_LIMIT_DEFAULT, AUDIT_LIMIT_MAX, LeaseExtendRequest, LeaseSetRequest, NetworkCreateRequest,
    ServiceCreateRequest, ServiceScaleRequest, ServiceUpdateRequest, TokenCreateRequest, UserCreateRequest,
};
use crate::views::{
    AuditList, HealthView, JobList, JobView, MeView, NetworkList, NetworkView, Readiness, ReadinessChecks,
    ReadinessView, ScaleView, ServiceList, ServiceView, Status, TokenList, TokenView, UserList, UserView,
};

/// The API under `/api`, and the server's own `/healthz`, `/readyz` and `/metrics`, each route
/// with its documentation.
pub fn routes() -> OpenApiRouter<AppState> {
    let api = OpenApiRouter::new()
        .routes(routes!(openapi))
        .routes(routes!(catalog_list))
        .routes(routes!(catalog_get))
        .routes(routes!(service_list, service_create))
        .routes(routes!(service_get, service_update, service_delete))
        .routes(routes!(service_plan))
        .routes(routes!(service_apply))
        .routes(routes!(service_destroy))
        .routes(routes!(service_scale_get, service_scale))
        .routes(routes!(lease_set, lease_remove))
        .routes(routes!(lease_extend))
        .routes(routes!(network_list, network_create))
        .routes(routes!(network_get))
        .routes(routes!(network_plan))
        .routes(routes!(network_apply))
        .routes(routes!(network_destroy))
        .routes(routes!(job_list))
        .routes(routes!(job_get))
        .routes(routes!(job_events))
        .routes(routes!(job_cancel))
        .routes(routes!(events))
        .routes(routes!(me))
        .routes(routes!(token_list, token_create))
        .routes(routes!(token_revoke))
        .routes(routes!(user_list, user_create))
        .routes(routes!(audit_list))
        .merge(nodes::routes())
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") });
    OpenApiRouter::new().routes(routes!(health)).routes(routes!(ready)).routes(routes!(metrics)).nest("/api", api)
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

/// `?client=`: admins act on another client than their own.
#[derive(Deserialize, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ClientQuery {
    /// Admins only: act on this client instead of their own.
    #[param(value_type = Option<Id>)]
    client: Option<String>,
}

impl ClientQuery {
    fn client(&self) -> Option<&str> {
        self.client.as_deref()
    }
}

#[derive(Deserialize, Default, IntoParams)]
#[into_params(parameter_in = Query)]
struct JobQuery {
    /// Only the jobs of this status.
    #[serde(default)]
    #[param(inline)]
    status: Option<JobStatus>,
}

#[derive(Deserialize, Default, IntoParams)]
#[into_params(parameter_in = Query)]
struct AuditQuery {
    #[serde(default)]
    #[param(schema_with = audit_limit)]
    limit: Option<usize>,
}

fn audit_limit() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(0))
        .maximum(Some(AUDIT_LIMIT_MAX))
        .description(Some(format!("How many entries, newest first ({AUDIT_LIMIT_DEFAULT} when absent)")))
        .into()
}

// ---- handlers: request → ops → JSON ----

type Answer<T> = Result<Json<T>, ApiError>;

fn created<T: serde::Serialize>(view: T) -> Response {
    (StatusCode::CREATED, Json(view)).into_response()
}

fn accepted(job: JobView) -> Response {
    (StatusCode::ACCEPTED, Json(job)).into_response()
}

/// Liveness: the process serves HTTP.
#[utoipa::path(get, path = "/healthz", tag = "server", responses((status = 200, description = "Alive", body = HealthView)))]
async fn health(State(s): State<AppState>) -> Json<HealthView> {
    Json(HealthView { status: "ok", replica: s.replica.id.clone(), leader: *s.leading.borrow() })
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "server",
    responses((status = 200, description = "Text exposition format", content_type = "text/plain", body = String)))]
async fn metrics(State(s): State<AppState>) -> Response {
    let jobs: BTreeMap<&str, usize> = s.jobs.counts().into_iter().map(|(k, v)| (k.as_str(), v)).collect();
    s.metrics.store_requests(s.engine.store().requests());
    let body = s.metrics.render(&jobs, &s.board.counts(), &s.tasks.snapshot());
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "server",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object)))]
async fn openapi() -> Response {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], crate::openapi_json()).into_response()
}

/// The catalog's templates.
#[utoipa::path(get, path = "/catalog", tag = "catalog", responses((status = 200, description = "The catalog", body = Catalog)))]
async fn catalog_list(State(s): State<AppState>, c: Caller) -> Answer<Catalog> {
    ops::catalog_list(&s, &c).await.map(Json)
}

/// One template, with its parameters and blueprint.
#[utoipa::path(get, path = "/catalog/{template}", tag = "catalog",
    params(("template" = Id, Path, description = "Template id")),
    responses((status = 200, description = "The template", body = Template)))]
async fn catalog_get(State(s): State<AppState>, c: Caller, Path(template): Path<String>) -> Answer<Template> {
    ops::catalog_get(&s, &c, &template).await.map(Json)
}

/// The parameters of a service list (checked by [`ListQuery::parse`]).
#[derive(Deserialize, Default, IntoParams)]
#[into_params(parameter_in = Query)]
struct ServiceListQuery {
    /// Admins only: act on this client instead of their own.
    #[param(value_type = Option<Id>)]
    client: Option<String>,
    #[param(schema_with = list_limit)]
    limit: Option<String>,
    /// The next_cursor of the previous page.
    #[param(value_type = Option<Id>)]
    cursor: Option<String>,
    /// Only services of this status.
    #[param(value_type = Option<Status>, inline)]
    status: Option<String>,
}

fn list_limit() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(1))
        .maximum(Some(ListQuery::LIMIT_MAX))
        .description(Some("At most this many services (all when absent)"))
        .into()
}

/// The client's services with their last seen status, in name order, a page at a time.
#[utoipa::path(get, path = "/services", tag = "services", params(ServiceListQuery),
    responses((status = 200, description = "Services (one whose stored spec cannot be read is listed as an error, with the reason); next_cursor is null on the last page", body = ServiceList)))]
async fn service_list(
    State(s): State<AppState>,
    c: Caller,
    Params(q): Params<ServiceListQuery>,
) -> Answer<ServiceList> {
    let query = ListQuery::parse(q.limit.as_deref(), q.cursor.as_deref(), q.status.as_deref())
        .map_err(|e| ApiError::invalid(e.field, e.reason))?;
    ops::service_list(&s, &c, q.client.as_deref(), &query).await.map(Json)
}

/// Store a service's spec from a template (deploys nothing).
#[utoipa::path(post, path = "/services", tag = "services", params(ClientQuery), request_body = ServiceCreateRequest,
    responses((status = 201, description = "The service", body = ServiceView)))]
async fn service_create(
    State(s): State<AppState>,
    c: Caller,
    Params(q): Params<ClientQuery>,
    Body(body): Body<ServiceCreateRequest>,
) -> Result<Response, ApiError> {
    ops::service_create(&s, &c, q.client(), body).await.map(created)
}

/// A service, freshly planned.
#[utoipa::path(get, path = "/services/{id}", tag = "services",
    params(("id" = Id, Path, description = "Service name"), ClientQuery),
    responses((status = 200, description = "The service", body = ServiceView)))]
async fn service_get(
    State(s): State<AppState>,
    c: Caller,
    Params(q): Params<ClientQuery>,
    PathId(name): PathId,
) -> Answer<ServiceView> {
    ops::service_get(&s, &c, q.client(), &name).await.map(Json)
}

/// Change parameters or settings (re-renders the spec; applies nothing).
#[utoipa::path(patch, path = "/services/{id}", tag = "services",
    params(("id" = Id, Path, description = "Service name"), ClientQuery), request_body = ServiceUpdateRequest,
    responses((status = 200, description = "The service", body = ServiceView)))]
async fn service_update(
    State(s): State<AppState>,
    c: Caller,
    Params(q): Params<ClientQuery>,
    PathId(name): PathId,
    Body(body): Body<ServiceUpdateRequest>,
) -> Answer<ServiceView> {
    ops::service_update(&s, &c, q.client(), &name, body).await.map(Json)
}

/// Forget a destroyed service.
#[utoipa::path(delete, path = "/services/{id}", tag = "services",
    params(("id" = Id, Path, description = "Service name"), ClientQuery),
    responses((status = 204, description = "Deleted")))]
async fn service_delete(
    State(s): State<AppState>,
    c: Caller,
    Params(q): Params<ClientQuery>,
    PathId(name): PathId,
) -> Result<StatusCode, ApiError> {
    ops::service_delete(&s, &c, q.client(), &name).await.map(|()| StatusCode::NO_CONTENT)
}

/// Queue a plan job.
#[utoipa::path(post, path = "/services/{id}/plan", tag = "services",
    params(("id" = Id, Path, description = "Service name"), ClientQuery),
    responses((status = 202, description = "The job, queued", body = JobView)))]
async fn service_plan(
    State(s): State<AppState>,
    c: Caller,
    Params(q): Params<ClientQuery>,
    PathId(name): PathId,
) -> Result<Response, ApiError> {
    ops::service_job(&s, &c, q.client(), &name, JobKind::Plan).await.map(accepted)
}

/// Queue an apply job.
#[utoipa::path(post, path = "/services/{id}/apply", tag = "services",
    params(("id" = Id, Path, description = "Service name"), ClientQuery),
    responses((status = 202, description = "The job, queued", body = JobView)))]
async fn service_apply(
    State(s): State<AppState>,
    c: Caller,
    Params(q): Params<ClientQuery>,
    PathId(name): PathId,
) -> Result<Response, ApiError> {
    ops::service_job(&s, &c, q.client(), &name, JobKind::Apply).await.map(accepted)
}

/// Queue a destroy job.
#[utoipa::path(post, path = "/services/{id}/destroy", tag = "services",
    params(("id" = Id, Path, description = "Service name"), ClientQuery),
    responses((status = 202, description = "The job, queued", body = JobView)))]
async fn service_destroy(
    State(s): State<AppState>,
    c: Caller,
    Params(q): Params<ClientQuery>,
    PathId(name): PathId,
) -> Result<Response, ApiError> {
    ops::service_job(&s, &c, q.client(), &name, JobKind::Destroy).await.map(accepted)
}

/// The replicas of the service's replicated containers (status, last CPU sample) and the
/// autoscaler's recent decisions.
#[utoipa::path(get, path = "/services/{id}/scale", tag = "services",
    params(("id" = Id, Path, description = "Service name"), ClientQuery),
    responses((status = 200, description = "Replicas and scaling decisions", body = ScaleView)))]
async fn service_scale_get(
    State(s): State<AppState>,
    c: Caller,
    Params(q): Params<ClientQuery>,
    PathId(name): PathId,
) -> Answer<ScaleView> {
    ops::service_scale_get(&s, &c, q.client(), &name).await.map(Json)
}

/// Set a replicated container's replica count and queue an apply job.
#[utoipa::path(post, path = "/services/{id}/scale", tag = "services",
    params(("id" = Id, Path, description = "Service name"), ClientQuery), request_body = ServiceScaleRequest,
    responses((status = 202, description = "The apply job, queued", body = JobView)))]
async fn service_scale(
    State(s): State<AppState>,
    c: Caller,
    Params(q): Params<ClientQuery>,
    PathId(name): PathId,
    Body(body): Body<ServiceScaleRequest>,
) -> Result<Response, ApiError> {
    ops::service_scale(&s, &c, q.client(), &name, body).await.map(accepted)
}

/// Set the service's lease.
#[utoipa::path(put, path = "/services/{id}/lease", tag = "leases",
    params(("id" = Id, Path, description = "Service name"), ClientQuery), request_body = LeaseSetRequest,
    responses((status = 200, description = "The service", body = ServiceView)))]
async fn lease_set(
    State(s): State<AppState>,
    c: Caller,
    Params(q): Params<ClientQuery>,
    PathId(name): PathId,
    Body(body): Body<LeaseSetRequest>,
) -> Answer<ServiceView> {
    ops::lease_set(&s, &c, q.client(), &name, body).await.map(Json)
}

/// Extend the lease.
#[utoipa::path(post, path = "/services/{id}/lease/extend", tag = "leases",
    params(("id" = Id, Path, description = "Service name"), ClientQuery), request_body = LeaseExtendRequest,
    responses((status = 200, description = "The service", body = ServiceView)))]
async fn lease_extend(
    State(s): State<AppState>,
    c: Caller,
    Params(q): Params<ClientQuery>,
    PathId(name): PathId,
    Body(body): Body<LeaseExtendRequest>,
) -> Answer<ServiceView> {
    ops::lease_extend(&s, &c, q.client(), &name, body).await.map(Json)
}

/// Remove the service's lease.
#[utoipa::path(delete, path = "/services/{id}/lease", tag = "leases",
    params(("id" = Id, Path, description = "Service name"), ClientQuery),
    responses((status = 200, description = "The service", body = ServiceView)))]
async fn lease_remove(
    State(s): State<AppState>,
    c: Caller,
    Params(q): Params<ClientQuery>,
    PathId(name): PathId,
) -> Answer<ServiceView> {
    ops::lease_remove(&s, &c, q.client(), &name).await.map(Json)
}

/// The client's networks.
#[utoipa::path(get, path = "/networks", tag = "networks", params(ClientQuery),
    responses((status = 200, description = "Networks", body = NetworkList)))]
async fn network_list(State(s): State<AppState>, c: Caller, Params(q): Params<ClientQuery>) -> Answer<NetworkList> {
    ops::network_list(&s, &c, q.client()).await.map(Json)
}

/// Store a network's spec.
#[utoipa::path(post, path = "/networks", tag = "networks", params(ClientQuery), request_body = NetworkCreateRequest,
    responses((status = 201, description = "The network", body = NetworkView)))]
async fn network_create(
    State(s): State<AppState>,
    c: Caller,
    Params(q): Params<ClientQuery>,
    Body(body): Body<NetworkCreateRequest>,
) -> Result<Response, ApiError> {
    ops::network_create(&s, &c, q.client(), body).await.map(created)
}

/// A network, freshly planned.
#[utoipa::path(get, path = "/networks/{id}", tag = "networks",
    params(("id" = Id, Path, description = "Network name"), ClientQuery),
    responses((status = 200, description = "The network", body = NetworkView)))]
async fn network_get(
    State(s): State<AppState>,
    c: Caller,
    Params(q): Params<ClientQuery>,
    PathId(name): PathId,
) -> Answer<NetworkView> {
    ops::network_get(&s, &c, q.client(), &name).await.map(Json)
}

/// Queue a plan job.
#[utoipa::path(post, path = "/networks/{id}/plan", tag = "networks",
    params(("id" = Id, Path, description = "Network name"), ClientQuery),
    responses((status = 202, description = "The job, queued", body = JobView)))]
async fn network_plan(
    State(s): State<AppState>,
    c: Caller,
    Params(q): Params<ClientQuery>,
    PathId(name): PathId,
) -> Result<Response, ApiError> {
    ops::network_job(&s, &c, q.client(), &name, JobKind::Plan).await.map(accepted)
}

/// Queue an apply job.
#[utoipa::path(post, path = "/networks/{id}/apply", tag = "networks",
    params(("id" = Id, Path, description = "Network name"), ClientQuery),
    responses((status = 202, description = "The job, queued", body = JobView)))]
async fn network_apply(
    State(s): State<AppState>,
    c: Caller,
    Params(q): Params<ClientQuery>,
    PathId(name): PathId,
) -> Result<Response, ApiError> {
    ops::network_job(&s, &c, q.client(), &name, JobKind::Apply).await.map(accepted)
}

/// Queue a destroy job.
#[utoipa::path(post, path = "/networks/{id}/destroy", tag = "networks",
    params(("id" = Id, Path, description = "Network name"), ClientQuery),
    responses((status = 202, description = "The job, queued", body = JobView)))]
async fn network_destroy(
    State(s): State<AppState>,
    c: Caller,
    Params(q): Params<ClientQuery>,
    PathId(name): PathId,
) -> Result<Response, ApiError> {
    ops::network_job(&s, &c, q.client(), &name, JobKind::Destroy).await.map(accepted)
}

/// Jobs, newest first.
#[utoipa::path(get, path = "/jobs", tag = "jobs", params(JobQuery), responses((status = 200, description = "Jobs", body = JobList)))]
async fn job_list(State(s): State<AppState>, c: Caller, Params(q): Params<JobQuery>) -> Json<JobList> {
    Json(ops::job_list(&s, &c, q.status))
}

/// One job.
#[utoipa::path(get, path = "/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", description = "Job id")),
    responses((status = 200, description = "The job", body = JobView)))]
async fn job_get(State(s): State<AppState>, c: Caller, Path(id): Path<String>) -> Answer<JobView> {
    ops::job_get(&s, &c, &id).await.map(Json)
}

/// The job's events: replayed from the start (or after Last-Event-ID), then live.
#[utoipa::path(get, path = "/jobs/{id}/events", tag = "jobs",
    params(("id" = String, Path, pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", description = "Job id"),
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event")),
    responses((status = 200, description = "Server-Sent Events; each event's name is its type, its data the JobEvent JSON",
        content_type = "text/event-stream", body = String)))]
async fn job_events(
    State(s): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let job = ops::job_visible(&s, &c, &id).await?;
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

/// Cancel a job (it stops between resource operations).
#[utoipa::path(post, path = "/jobs/{id}/cancel", tag = "jobs",
    params(("id" = String, Path, pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", description = "Job id")),
    responses((status = 202, description = "The job, cancelled", body = JobView)))]
async fn job_cancel(State(s): State<AppState>, c: Caller, Path(id): Path<String>) -> Result<Response, ApiError> {
    ops::job_cancel(&s, &c, &id).await.map(accepted)
}

/// Live server events of the caller's services.
#[utoipa::path(get, path = "/events", tag = "events",
    responses((status = 200, description = "Server-Sent Events: service_status, job, lease_warning, lease_expired, scaled",
        content_type = "text/event-stream", body = String)))]
async fn events(State(s): State<AppState>, caller: Caller) -> Response {
    crate::sse::events_stream(&s.bus, caller).into_response()
}

/// Who the caller is.
#[utoipa::path(get, path = "/me", tag = "accounts", responses((status = 200, description = "The caller", body = MeView)))]
async fn me(c: Caller) -> Json<MeView> {
    Json(ops::me(&c))
}

/// The caller's API tokens (never the tokens themselves).
#[utoipa::path(get, path = "/tokens", tag = "accounts", responses((status = 200, description = "Tokens", body = TokenList)))]
async fn token_list(State(s): State<AppState>, c: Caller) -> Answer<TokenList> {
    ops::token_list(&s, &c).await.map(Json)
}

/// Create an API token for the caller; the answer holds it, once.
#[utoipa::path(post, path = "/tokens", tag = "accounts", request_body = TokenCreateRequest,
    responses((status = 201, description = "The token record with `token`", body = TokenView)))]
async fn token_create(
    State(s): State<AppState>,
    c: Caller,
    Body(body): Body<TokenCreateRequest>,
) -> Result<Response, ApiError> {
    ops::token_create(&s, &c, body).await.map(created)
}

/// Revoke one of the caller's tokens (admins: anyone's).
#[utoipa::path(delete, path = "/tokens/{id}", tag = "accounts",
    params(("id" = String, Path, pattern = "^[0-9a-f]{40}$", description = "Token id")),
    responses((status = 204, description = "Revoked")))]
async fn token_revoke(State(s): State<AppState>, c: Caller, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    ops::token_revoke(&s, &c, &id).await.map(|()| StatusCode::NO_CONTENT)
}

/// Every user (admins).
#[utoipa::path(get, path = "/users", tag = "accounts", responses((status = 200, description = "Users", body = UserList)))]
async fn user_list(State(s): State<AppState>, c: Caller) -> Answer<UserList> {
    ops::user_list(&s, &c).await.map(Json)
}

/// Create a local user (admins).
#[utoipa::path(post, path = "/users", tag = "accounts", request_body = UserCreateRequest,
    responses((status = 201, description = "The user", body = UserView)))]
async fn user_create(State(s): State<AppState>, c: Caller, req: Request) -> Result<Response, ApiError> {
    // Non-admins are refused before the body is even read.
    ops::admin_only(&c)?;
    let Body(body) = Body::<UserCreateRequest>::from_request(req, &()).await?;
    ops::user_create(&s, &c, body).await.map(created)
}

/// The audit log, newest first (admins).
#[utoipa::path(get, path = "/audit", tag = "accounts", params(AuditQuery),
    responses((status = 200, description = "Entries", body = AuditList)))]
async fn audit_list(State(s): State<AppState>, c: Caller, Params(q): Params<AuditQuery>) -> Answer<AuditList> {
    ops::audit_list(&s, &c, q.limit).await.map(Json)
}

// ---- readiness ----

/// How long the readiness probe waits for the store and for the Docker engine.
const READY_PROBE: Duration = Duration::from_secs(3);

/// Readiness: the store and the Docker engine answer.
///
/// 200 when both answer now; 503 while either does not (each check says why). `/healthz` stays
/// the liveness probe (the process serves HTTP).
#[utoipa::path(get, path = "/readyz", tag = "server", responses(
    (status = 200, description = "Ready", body = ReadinessView),
    (status = 503, description = "Not ready: the store or the Docker engine does not answer", body = ReadinessView)))]
async fn ready(State(s): State<AppState>) -> Response {
    let (store, docker) = tokio::join!(s.engine.store().probe(READY_PROBE), async {
        match tokio::time::timeout(READY_PROBE, s.docker.client().ping()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("the Docker engine does not answer: {e}")),
            Err(_) => Err(format!("the Docker engine did not answer within {}s", READY_PROBE.as_secs())),
        }
    });
    let ready = store.is_ok() && docker.is_ok();
    let body = ReadinessView {
        status: if ready { Readiness::Ready } else { Readiness::Unavailable },
        checks: ReadinessChecks { store: store.map_err(|e| e.to_string()).into(), docker: docker.into() },
    };
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}
