//! The HTTP routes: `fn app(state) -> Router`, the extractors that turn every malformed request
//! into a clear 4xx in the API's one error shape, and the handlers: thin adapters that pass a
//! request's parts to one function of [`crate::ops`] and answer its view as JSON.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use spawnit_model::{Catalog, Id, Template};

use crate::AppState;
use crate::accounts::Role;
use crate::caller::Caller;
use crate::error::ApiError;
use crate::index::ListQuery;
use crate::jobs::{JobKind, JobStatus};
use crate::ops;
use crate::ops::{
    LeaseExtendRequest, LeaseSetRequest, NetworkCreateRequest, ServiceCreateRequest, ServiceUpdateRequest,
    TokenCreateRequest, UserCreateRequest,
};
use crate::views::{
    AuditList, JobList, JobView, MeView, NetworkList, NetworkView, ServiceList, ServiceView, TokenList, UserList,
    UserView,
};

// The web pages still call these here; they move onto `crate::ops` with the pages' split.
pub(crate) use crate::ops::{admin_only, audit, token_name_check};

/// The API under `/api`, and the server's own `/healthz`, `/readyz` and `/metrics`.
pub fn routes() -> Router<AppState> {
    let api = Router::new()
        .route("/openapi.json", get(openapi))
        .route("/catalog", get(catalog_list))
        .route("/catalog/{template}", get(catalog_get))
        .route("/services", get(service_list).post(service_create))
        .route("/services/{id}", get(service_get).patch(service_update).delete(service_delete))
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

impl ClientQuery {
    fn client(&self) -> Option<&str> {
        self.client.as_deref()
    }
}

// ---- handlers: request → ops → JSON ----

type Answer<T> = Result<Json<T>, ApiError>;

fn created<T: serde::Serialize>(view: T) -> Response {
    (StatusCode::CREATED, Json(view)).into_response()
}

fn accepted(job: JobView) -> Response {
    (StatusCode::ACCEPTED, Json(job)).into_response()
}

async fn openapi() -> Json<Value> {
    Json(crate::openapi::document())
}

async fn catalog_list(State(s): State<AppState>, c: Caller) -> Answer<Catalog> {
    ops::catalog_list(&s, &c).await.map(Json)
}

async fn catalog_get(State(s): State<AppState>, c: Caller, Path(template): Path<String>) -> Answer<Template> {
    ops::catalog_get(&s, &c, &template).await.map(Json)
}

/// The parameters of a service list (checked by [`ListQuery::parse`]).
#[derive(Deserialize, Default)]
struct ServiceListQuery {
    client: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
    status: Option<String>,
}

async fn service_list(
    State(s): State<AppState>,
    c: Caller,
    Params(q): Params<ServiceListQuery>,
) -> Answer<ServiceList> {
    let query = ListQuery::parse(q.limit.as_deref(), q.cursor.as_deref(), q.status.as_deref())
        .map_err(|e| ApiError::invalid(e.field, e.reason))?;
    ops::service_list(&s, &c, q.client.as_deref(), &query).await.map(Json)
}

async fn service_create(
    State(s): State<AppState>,
    c: Caller,
    Params(q): Params<ClientQuery>,
    Body(body): Body<ServiceCreateRequest>,
) -> Result<Response, ApiError> {
    ops::service_create(&s, &c, q.client(), body).await.map(created)
}

async fn service_get(
    State(s): State<AppState>,
    c: Caller,
    Params(q): Params<ClientQuery>,
    PathId(name): PathId,
) -> Answer<ServiceView> {
    ops::service_get(&s, &c, q.client(), &name).await.map(Json)
}

async fn service_update(
    State(s): State<AppState>,
    c: Caller,
    Params(q): Params<ClientQuery>,
    PathId(name): PathId,
    Body(body): Body<ServiceUpdateRequest>,
) -> Answer<ServiceView> {
    ops::service_update(&s, &c, q.client(), &name, body).await.map(Json)
}

async fn service_delete(
    State(s): State<AppState>,
    c: Caller,
    Params(q): Params<ClientQuery>,
    PathId(name): PathId,
) -> Result<StatusCode, ApiError> {
    ops::service_delete(&s, &c, q.client(), &name).await.map(|()| StatusCode::NO_CONTENT)
}

async fn service_plan(
    State(s): State<AppState>,
    c: Caller,
    Params(q): Params<ClientQuery>,
    PathId(name): PathId,
) -> Result<Response, ApiError> {
    ops::service_job(&s, &c, q.client(), &name, JobKind::Plan).await.map(accepted)
}

async fn service_apply(
    State(s): State<AppState>,
    c: Caller,
    Params(q): Params<ClientQuery>,
    PathId(name): PathId,
) -> Result<Response, ApiError> {
    ops::service_job(&s, &c, q.client(), &name, JobKind::Apply).await.map(accepted)
}

async fn service_destroy(
    State(s): State<AppState>,
    c: Caller,
    Params(q): Params<ClientQuery>,
    PathId(name): PathId,
) -> Result<Response, ApiError> {
    ops::service_job(&s, &c, q.client(), &name, JobKind::Destroy).await.map(accepted)
}

async fn lease_set(
    State(s): State<AppState>,
    c: Caller,
    Params(q): Params<ClientQuery>,
    PathId(name): PathId,
    Body(body): Body<LeaseSetRequest>,
) -> Answer<ServiceView> {
    ops::lease_set(&s, &c, q.client(), &name, body).await.map(Json)
}

async fn lease_extend(
    State(s): State<AppState>,
    c: Caller,
    Params(q): Params<ClientQuery>,
    PathId(name): PathId,
    Body(body): Body<LeaseExtendRequest>,
) -> Answer<ServiceView> {
    ops::lease_extend(&s, &c, q.client(), &name, body).await.map(Json)
}

async fn lease_remove(
    State(s): State<AppState>,
    c: Caller,
    Params(q): Params<ClientQuery>,
    PathId(name): PathId,
) -> Answer<ServiceView> {
    ops::lease_remove(&s, &c, q.client(), &name).await.map(Json)
}

async fn network_list(State(s): State<AppState>, c: Caller, Params(q): Params<ClientQuery>) -> Answer<NetworkList> {
    ops::network_list(&s, &c, q.client()).await.map(Json)
}

async fn network_create(
    State(s): State<AppState>,
    c: Caller,
    Params(q): Params<ClientQuery>,
    Body(body): Body<NetworkCreateRequest>,
) -> Result<Response, ApiError> {
    ops::network_create(&s, &c, q.client(), body).await.map(created)
}

async fn network_get(
    State(s): State<AppState>,
    c: Caller,
    Params(q): Params<ClientQuery>,
    PathId(name): PathId,
) -> Answer<NetworkView> {
    ops::network_get(&s, &c, q.client(), &name).await.map(Json)
}

async fn network_plan(
    State(s): State<AppState>,
    c: Caller,
    Params(q): Params<ClientQuery>,
    PathId(name): PathId,
) -> Result<Response, ApiError> {
    ops::network_job(&s, &c, q.client(), &name, JobKind::Plan).await.map(accepted)
}

async fn network_apply(
    State(s): State<AppState>,
    c: Caller,
    Params(q): Params<ClientQuery>,
    PathId(name): PathId,
) -> Result<Response, ApiError> {
    ops::network_job(&s, &c, q.client(), &name, JobKind::Apply).await.map(accepted)
}

async fn network_destroy(
    State(s): State<AppState>,
    c: Caller,
    Params(q): Params<ClientQuery>,
    PathId(name): PathId,
) -> Result<Response, ApiError> {
    ops::network_job(&s, &c, q.client(), &name, JobKind::Destroy).await.map(accepted)
}

#[derive(Deserialize, Default)]
struct JobQuery {
    #[serde(default)]
    status: Option<JobStatus>,
}

async fn job_list(State(s): State<AppState>, c: Caller, Params(q): Params<JobQuery>) -> Json<JobList> {
    Json(ops::job_list(&s, &c, q.status))
}

async fn job_get(State(s): State<AppState>, c: Caller, Path(id): Path<String>) -> Answer<JobView> {
    ops::job_get(&s, &c, &id).map(Json)
}

async fn job_events(
    State(s): State<AppState>,
    c: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let job = ops::job_visible(&s, &c, &id)?;
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

async fn job_cancel(State(s): State<AppState>, c: Caller, Path(id): Path<String>) -> Result<Response, ApiError> {
    ops::job_cancel(&s, &c, &id).await.map(accepted)
}

async fn me(c: Caller) -> Json<MeView> {
    Json(ops::me(&c))
}

async fn token_list(State(s): State<AppState>, c: Caller) -> Answer<TokenList> {
    ops::token_list(&s, &c).await.map(Json)
}

async fn token_create(
    State(s): State<AppState>,
    c: Caller,
    Body(body): Body<TokenCreateRequest>,
) -> Result<Response, ApiError> {
    ops::token_create(&s, &c, body).await.map(created)
}

async fn token_revoke(State(s): State<AppState>, c: Caller, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    ops::token_revoke(&s, &c, &id).await.map(|()| StatusCode::NO_CONTENT)
}

async fn user_list(State(s): State<AppState>, c: Caller) -> Answer<UserList> {
    ops::user_list(&s, &c).await.map(Json)
}

async fn user_create(State(s): State<AppState>, c: Caller, req: Request) -> Result<Response, ApiError> {
    // Non-admins are refused before the body is even read.
    admin_only(&c)?;
    let Body(body) = Body::<UserCreateRequest>::from_request(req, &()).await?;
    ops::user_create(&s, &c, body).await.map(created)
}

/// The web pages' admin form (until the pages call [`ops::user_create`] themselves).
pub(crate) async fn user_create_checked(
    s: &AppState,
    c: &Caller,
    name: &str,
    client: &str,
    role: Role,
    password: Option<&str>,
    email: Option<&str>,
) -> Result<UserView, ApiError> {
    let req = UserCreateRequest {
        name: name.to_owned(),
        client: client.to_owned(),
        role: Some(role),
        password: password.map(str::to_owned),
        email: email.map(str::to_owned),
    };
    ops::user_create(s, c, req).await
}

#[derive(Deserialize, Default)]
struct AuditQuery {
    #[serde(default)]
    limit: Option<usize>,
}

async fn audit_list(State(s): State<AppState>, c: Caller, Params(q): Params<AuditQuery>) -> Answer<AuditList> {
    ops::audit_list(&s, &c, q.limit).await.map(Json)
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
    let mut body = s.metrics.render(&jobs, &s.board.counts());
    body.push_str(&s.tasks.prometheus());
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}
