//! The web UI: server-rendered pages (maud), one embedded stylesheet and a little plain
//! JavaScript for the live parts (EventSource on `/api/events` and `/api/jobs/{id}/events`).
//!
//! Every page needs a signed-in session (the cookie of [`crate::session`]) and is scoped like
//! the API: a member sees only their client, and another client's service is "not found". Every
//! form carries the session's CSRF token, checked before anything else ([`Posted`]). Errors a
//! person can cause are pages with a readable message naming the field; secrets are never
//! rendered (secret fields are password inputs that are never filled in).
//!
//! This module holds what every page shares (layout, errors, extractors, the router); the
//! pages are grouped by family: [`sign_in`] (sign-in, sign-out, sign-up), [`services`]
//! (dashboard, catalog, configure, a service and its jobs), [`networks`], [`tokens`],
//! [`admin`], [`nodes`] (the cluster and a client's rented nodes), and [`graph`] (the dependency graph drawn as SVG).

mod admin;
mod graph;
mod networks;
mod nodes;
mod services;
mod sign_in;
mod tokens;

use std::net::IpAddr;

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, RawForm, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::Utc;
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use spawnit_model::Id;

use crate::AppState;
use crate::auth::{peer_ip, same_secret, session_caller};
use crate::caller::Caller;
use crate::error::ApiError;
use crate::jobs::Target;
use crate::session::safe_next;

const STYLE: &str = include_str!("style.css");
const SCRIPT: &str = include_str!("app.js");

/// The pages, the stylesheet and the script.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/static/style.css", get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE) }))
        .route("/static/app.js", get(|| async { ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], SCRIPT) }))
        .route("/login", get(sign_in::login_page).post(sign_in::login_submit))
        .route("/logout", post(sign_in::logout))
        .route("/signup", get(sign_in::signup_page).post(sign_in::signup_submit))
        .route("/", get(services::dashboard))
        .route("/catalog", get(services::catalog_page))
        .route("/catalog/{template}", get(services::configure_page).post(services::configure_submit))
        .route("/services/{name}", get(services::service_page))
        .route("/services/{name}/{action}", post(services::service_action))
        .route("/jobs/{id}/cancel", post(services::job_cancel))
        .route("/networks", get(networks::networks_page).post(networks::network_create))
        .route("/networks/{name}/{action}", post(networks::network_action))
        .route("/tokens", get(tokens::tokens_page).post(tokens::token_create))
        .route("/tokens/{id}/revoke", post(tokens::token_revoke))
        .route("/admin", get(admin::admin_page))
        .route("/admin/users", post(admin::admin_user_create))
        .route("/admin/settings", post(admin::admin_settings))
        .route("/admin/nodes", get(nodes::cluster_page))
        .route("/admin/nodes/{id}/{action}", post(nodes::node_action))
        .route("/nodes", get(nodes::nodes_page).post(nodes::rent_submit))
        .route("/nodes/{node}/{action}", post(nodes::lease_action))
}

// ---- errors, layout ----

/// An error shown as a page.
#[derive(Debug)]
pub struct UiError {
    status: StatusCode,
    message: String,
}

impl UiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> UiError {
        UiError { status, message: message.into() }
    }
}

impl From<ApiError> for UiError {
    fn from(e: ApiError) -> UiError {
        UiError { status: e.status, message: e.message }
    }
}

impl From<spawnit_store::StoreError> for UiError {
    fn from(e: spawnit_store::StoreError) -> UiError {
        ApiError::from(e).into()
    }
}

impl From<spawnit_engine::EngineError> for UiError {
    fn from(e: spawnit_engine::EngineError) -> UiError {
        ApiError::from(e).into()
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let title = match self.status {
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::FORBIDDEN => "Not allowed",
            StatusCode::TOO_MANY_REQUESTS => "Too many attempts",
            s if s.is_server_error() => "Something went wrong",
            _ => "That did not work",
        };
        let body = html! {
            section.card.error-page {
                h1 { (title) }
                p.error role="alert" { (self.message) }
                p { a href="/" { "Back to the dashboard" } }
            }
        };
        (self.status, layout(title, None, body)).into_response()
    }
}

type UiResult = Result<Response, UiError>;

/// The page answered for unknown paths (JSON under `/api`).
pub async fn not_found(req: Request) -> Response {
    if req.uri().path().starts_with("/api/") || req.uri().path() == "/api" {
        return ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route").into_response();
    }
    UiError::new(StatusCode::NOT_FOUND, format!("There is no page at {}.", req.uri().path())).into_response()
}

fn layout(title: &str, caller: Option<&Caller>, body: Markup) -> Html<String> {
    Html(layout_markup(title, caller, body).into_string())
}

fn layout_markup(title: &str, caller: Option<&Caller>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · SpawnIt" }
                link rel="stylesheet" href="/static/style.css";
                script src="/static/app.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/" { span.logo aria-hidden="true" { "◆" } " SpawnIt" }
                    @if let Some(c) = caller {
                        nav aria-label="Main" {
                            a href="/" { "Dashboard" }
                            a href="/catalog" { "Catalog" }
                            a href="/networks" { "Networks" }
                            a href="/nodes" { "Nodes" }
                            a href="/tokens" { "API tokens" }
                            @if c.is_admin() { a href="/admin" { "Admin" } a href="/admin/nodes" { "Cluster" } }
                        }
                        form.signout method="post" action="/logout" {
                            (csrf_field(c))
                            span.who { (c.user) " · " (c.client) @if c.is_admin() { " · admin" } }
                            button.link type="submit" { "Sign out" }
                        }
                    }
                }
                main #main tabindex="-1" { (body) }
            }
        }
    }
}

fn page(title: &str, caller: &Caller, body: Markup) -> Response {
    layout(title, Some(caller), body).into_response()
}

fn csrf_field(caller: &Caller) -> Markup {
    let token = caller.session.as_ref().map(|s| s.csrf.as_str()).unwrap_or("");
    html! { input type="hidden" name="csrf" value=(token); }
}

fn badge(status: &str, live: Option<String>) -> Markup {
    html! { span class=(format!("badge {status}")) data-service=[live] { (status) } }
}

fn time(t: chrono::DateTime<Utc>) -> Markup {
    html! { time datetime=(t.to_rfc3339()) { (t.format("%Y-%m-%d %H:%M:%S UTC")) } }
}

/// `path` with `pairs` as its form-encoded query (no `?` without pairs).
fn url(path: &str, pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return path.to_owned();
    }
    let query = form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
    format!("{path}?{query}")
}

/// The page `path` of `client`, with `?client=` when an admin looks at another client than
/// their own, and the job to show when there is one.
fn client_url(caller: &Caller, client: &Id, path: &str, job: Option<&str>) -> String {
    let mut pairs = Vec::new();
    if &caller.client != client {
        pairs.push(("client", client.as_str()));
    }
    if let Some(job) = job {
        pairs.push(("job", job));
    }
    url(path, &pairs)
}

/// `?client=X` when an admin looks at another client than their own, else nothing.
fn client_query(caller: &Caller, client: &Id) -> String {
    client_url(caller, client, "", None)
}

// ---- extractors ----

/// A signed-in person; anonymous visitors are sent to the sign-in page.
pub struct Viewer(pub Caller);

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Viewer, Response> {
        match session_caller(parts, state).await {
            Ok(Some(c)) => Ok(Viewer(c)),
            Ok(None) => {
                let next = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
                let target = if parts.method == axum::http::Method::GET && safe_next(next) {
                    url("/login", &[("next", next)])
                } else {
                    "/login".to_owned()
                };
                Err(Redirect::to(&target).into_response())
            }
            Err(e) => Err(UiError::from(e).into_response()),
        }
    }
}

/// Reads form-encoded `bytes` (a form body or a query) as `T`; a value that does not fit is
/// an error naming its field.
fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, UiError> {
    let fields = serde_urlencoded::Deserializer::new(form_urlencoded::parse(bytes));
    serde_path_to_error::deserialize(fields).map_err(|e| {
        let (at, why) = (e.path().to_string(), e.inner().to_string());
        let message = if at == "." { format!("{what}: {why}") } else { format!("{what} field {at}: {why}") };
        UiError::new(StatusCode::UNPROCESSABLE_ENTITY, sentence(&message))
    })
}

/// The body of a form post, before any field is read.
async fn form_bytes(req: Request, state: &AppState) -> Result<axum::body::Bytes, UiError> {
    let RawForm(bytes) = RawForm::from_request(req, state)
        .await
        .map_err(|e| UiError::new(e.status(), format!("The form could not be read: {}", e.body_text())))?;
    Ok(bytes)
}

/// The fields of a form that needs no session (sign-in, sign-up), as `T`.
pub struct UiForm<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for UiForm<T> {
    type Rejection = UiError;

    async fn from_request(req: Request, state: &AppState) -> Result<UiForm<T>, UiError> {
        Ok(UiForm(decode(&form_bytes(req, state).await?, "The form")?))
    }
}

/// A form posted by a signed-in person: the poster (anonymous visitors are sent to the sign-in
/// page), whose session's CSRF token the form's `csrf` field must carry — checked before any
/// other field is read — and the fields as `T`.
pub struct Posted<T> {
    pub caller: Caller,
    pub form: T,
}

impl<T: DeserializeOwned> FromRequest<AppState> for Posted<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Posted<T>, Response> {
        let (mut parts, body) = req.into_parts();
        let Viewer(caller) = Viewer::from_request_parts(&mut parts, state).await?;
        let bytes = form_bytes(Request::from_parts(parts, body), state).await.map_err(IntoResponse::into_response)?;
        let sent = form_urlencoded::parse(&bytes).find(|(k, _)| k == "csrf").map(|(_, v)| v).unwrap_or_default();
        let expected = caller.session.as_ref().map(|s| s.csrf.as_str()).unwrap_or("");
        if expected.is_empty() || !same_secret(&sent, expected) {
            return Err(UiError::new(
                StatusCode::FORBIDDEN,
                "This form was not sent from a current SpawnIt page (its security token is missing or old). Reload the page and try again.",
            )
            .into_response());
        }
        let form = decode(&bytes, "The form").map_err(IntoResponse::into_response)?;
        Ok(Posted { caller, form })
    }
}

/// A form with no field but its CSRF token (plan, apply, destroy, sign out…).
#[derive(Deserialize)]
pub struct NoFields {}

/// The query of a page: the client an admin looks at, the job to show, where to go after
/// signing in, why a single sign-on failed. Other names are ignored.
#[derive(Deserialize, Default)]
pub struct PageQuery {
    client: Option<String>,
    job: Option<String>,
    next: Option<String>,
    error: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for PageQuery {
    type Rejection = UiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<PageQuery, UiError> {
        decode(parts.uri.query().unwrap_or("").as_bytes(), "The address's query")
    }
}

/// The client's address.
struct PeerIp(Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for PeerIp {
    type Rejection = UiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<PeerIp, UiError> {
        Ok(PeerIp(peer_ip(parts)))
    }
}

/// The id in a page's path; a bad one is "not found".
fn id_of(field: &str, raw: &str) -> Result<Id, UiError> {
    Id::parse(raw).map_err(|e| UiError::new(StatusCode::NOT_FOUND, format!("No {field} called {raw:?}: {e}.")))
}

/// The table of `jobs`.
fn job_rows(jobs: &[crate::jobs::JobRecord], caller: &Caller) -> Markup {
    html! {
        @if jobs.is_empty() {
            p.muted { "No jobs." }
        } @else {
            table.list {
                thead { tr { th { "Job" } th { "Target" } th { "Status" } th { "By" } th { "Started" } } }
                tbody {
                    @for j in jobs {
                        tr {
                            td { (j.kind.as_str()) }
                            td {
                                @match &j.target {
                                    Target::Service { client, name } => {
                                        a href=(client_url(caller, client, &format!("/services/{name}"), Some(&j.id))) { "service " (name) }
                                    }
                                    Target::Network { name, .. } => { "network " (name) }
                                }
                            }
                            td { span class=(format!("badge job-{}", j.status.as_str())) data-job-status=(j.id) { (j.status.as_str()) } }
                            td { (j.requested_by) }
                            td { (time(j.started_at.unwrap_or(j.created_at))) }
                        }
                    }
                }
            }
        }
    }
}

/// A reason as a sentence: capital first letter, final period.
fn sentence(reason: &str) -> String {
    let mut chars = reason.trim().chars();
    let mut out = match chars.next() {
        Some(f) => f.to_uppercase().collect::<String>() + chars.as_str(),
        None => return String::new(),
    };
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{PageQuery, decode, url};

    #[derive(serde::Deserialize, Debug)]
    struct Choice {
        #[serde(default)]
        name: String,
        role: crate::accounts::Role,
    }

    #[test]
    fn forms_and_queries_decode_with_the_bad_field_named() {
        let ok: Choice = decode(b"name=caf%C3%A9+au+lait&role=admin&csrf=x", "The form").unwrap();
        assert_eq!((ok.name.as_str(), ok.role), ("café au lait", crate::accounts::Role::Admin));
        let bad = decode::<Choice>(b"name=x&role=superuser", "The form").err().unwrap();
        assert!(bad.message.starts_with("The form field role: unknown variant `superuser`"), "{}", bad.message);
        let missing = decode::<Choice>(b"name=x", "The form").err().unwrap();
        assert!(missing.message.contains("missing field `role`"), "{}", missing.message);
        let q: PageQuery = decode(b"client=acme&next=%2Fcatalog%3Fq%3Da%26b&other=1", "The address's query").unwrap();
        assert_eq!((q.client.as_deref(), q.next.as_deref()), (Some("acme"), Some("/catalog?q=a&b")));
    }

    #[test]
    fn links_encode_their_query() {
        assert_eq!(url("/login", &[]), "/login");
        assert_eq!(url("/login", &[("next", "/catalog?q=a&b c")]), "/login?next=%2Fcatalog%3Fq%3Da%26b+c");
    }
}
