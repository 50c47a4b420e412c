//! The web UI: server-rendered pages (maud), one embedded stylesheet and a little plain
//! JavaScript for the live parts (EventSource on `/api/events` and `/api/jobs/{id}/events`).
//!
//! Every page needs a signed-in session (the cookie of [`crate::accounts`]) and is scoped like
//! the API: a member sees only their client, and another client's service is "not found". Every
//! form carries the session's CSRF token, checked before anything else. Errors a person can
//! cause are pages with a readable message; secrets are never rendered (secret fields are
//! password inputs that are never filled in).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Html;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use chrono::Utc;
use maud::{DOCTYPE, Markup, html};
use serde_json::Value;
use spawnit_engine::ServiceCreate;
use spawnit_model::plan::{Action, PlanStatus};
use spawnit_model::{Exposure, Id, ParamType, ProviderKind, Template};

use crate::AppState;
use crate::accounts::{self, Role, SESSION_COOKIE};
use crate::api::{admin_only, audit};
use crate::auth::{peer_ip, same_secret, session_caller};
use crate::caller::Caller;
use crate::error::ApiError;
use crate::jobs::{JobKind, Target};
use crate::tasks::{Task, TaskRun};

const STYLE: &str = include_str!("ui/style.css");
const SCRIPT: &str = include_str!("ui/app.js");

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/static/style.css", get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE) }))
        .route("/static/app.js", get(|| async { ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], SCRIPT) }))
        .route("/login", get(login_page).post(login_submit))
        .route("/logout", post(logout))
        .route("/", get(dashboard))
        .route("/catalog", get(catalog_page))
        .route("/catalog/{template}", get(configure_page).post(configure_submit))
        .route("/services/{name}", get(service_page))
        .route("/services/{name}/{action}", post(service_action))
        .route("/jobs/{id}/cancel", post(job_cancel))
        .route("/networks", get(networks_page).post(network_create))
        .route("/networks/{name}/{action}", post(network_action))
        .route("/tokens", get(tokens_page).post(token_create))
        .route("/tokens/{id}/revoke", post(token_revoke))
        .route("/admin", get(admin_page))
        .route("/admin/users", post(admin_user_create))
        .route("/admin/settings", post(admin_settings))
        .route("/signup", get(signup_page).post(signup_submit))
        .merge(crate::oidc::routes())
}

// ---- errors, layout ----

/// An error shown as a page.
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
                            a href="/tokens" { "API tokens" }
                            @if c.is_admin() { a href="/admin" { "Admin" } }
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

/// `?client=X` when an admin looks at another client than their own.
fn client_query(caller: &Caller, client: &Id) -> String {
    if &caller.client == client { String::new() } else { format!("?client={client}") }
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
                    format!("/login?next={}", urlencode(next))
                } else {
                    "/login".to_owned()
                };
                Err(Redirect::to(&target).into_response())
            }
            Err(e) => Err(UiError::from(e).into_response()),
        }
    }
}

/// Form fields (first value of each name); a malformed body is a readable error.
pub struct FormData(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequest<S> for FormData {
    type Rejection = UiError;

    async fn from_request(req: Request, state: &S) -> Result<FormData, UiError> {
        let Form(pairs) = Form::<Vec<(String, String)>>::from_request(req, state).await.map_err(|e| {
            UiError::new(StatusCode::BAD_REQUEST, format!("The form could not be read: {}", e.body_text()))
        })?;
        let mut map = HashMap::new();
        for (k, v) in pairs {
            map.entry(k).or_insert(v);
        }
        Ok(FormData(map))
    }
}

impl FormData {
    fn get(&self, name: &str) -> &str {
        self.0.get(name).map(String::as_str).unwrap_or("")
    }

    /// Refuses a form that does not carry the session's CSRF token.
    fn csrf(&self, caller: &Caller) -> Result<(), UiError> {
        let expected = caller.session.as_ref().map(|s| s.csrf.as_str()).unwrap_or("");
        if expected.is_empty() || !same_secret(self.get("csrf"), expected) {
            return Err(UiError::new(
                StatusCode::FORBIDDEN,
                "This form was not sent from a current SpawnIt page (its security token is missing or old). Reload the page and try again.",
            ));
        }
        Ok(())
    }
}

#[derive(serde::Deserialize, Default)]
struct ClientParam {
    client: Option<String>,
    job: Option<String>,
    next: Option<String>,
    error: Option<String>,
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A local path to return to after signing in (never another site, never signing out); the
/// sign-in form and the OIDC sign-in both check with it.
pub(crate) fn safe_next(next: &str) -> bool {
    crate::auth::local_path(next) && !next.starts_with("/logout")
}

fn query(parts: &str) -> ClientParam {
    serde_urlencoded_lite(parts)
}

/// Parses a query string into [`ClientParam`] (unknown names ignored).
fn serde_urlencoded_lite(q: &str) -> ClientParam {
    let mut out = ClientParam::default();
    for pair in q.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = urldecode(v);
        match k {
            "client" => out.client = Some(v),
            "job" => out.job = Some(v),
            "next" => out.next = Some(v),
            "error" => out.error = Some(v),
            _ => {}
        }
    }
    out
}

fn urldecode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The query of the request.
struct Q(ClientParam);

impl<S: Send + Sync> FromRequestParts<S> for Q {
    type Rejection = UiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Q, UiError> {
        Ok(Q(query(parts.uri.query().unwrap_or(""))))
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

fn id_of(field: &str, raw: &str) -> Result<Id, UiError> {
    Id::parse(raw).map_err(|e| UiError::new(StatusCode::NOT_FOUND, format!("No {field} called {raw:?}: {e}.")))
}

// ---- sign-in ----

fn login_form(next: &str, message: Option<&str>, user: &str, oidc: bool, signup: bool) -> Markup {
    html! {
        section.card.narrow {
            h1 { "Sign in" }
            @if let Some(m) = message { p.error role="alert" #login-error { (m) } }
            form method="post" action="/login" {
                input type="hidden" name="next" value=(next);
                div.field {
                    label for="user" { "User name" }
                    input #user type="text" name="user" value=(user) autocomplete="username" required autofocus;
                }
                div.field {
                    label for="password" { "Password" }
                    input #password type="password" name="password" autocomplete="current-password" required;
                }
                button.primary type="submit" { "Sign in" }
            }
            @if oidc {
                p.or { "or" }
                a.button href=(format!("/auth/oidc/start?next={}", urlencode(next))) { "Sign in with single sign-on" }
            }
            @if signup {
                p { "No account? " a href="/signup" { "Create one" } "." }
            } @else {
                p.muted { "No account? Sign-up is off: ask an admin of this SpawnIt to create one." }
            }
        }
    }
}

async fn login_page(State(s): State<AppState>, Q(q): Q) -> Response {
    let next = q.next.filter(|n| safe_next(n)).unwrap_or_else(|| "/".into());
    let message = q.error.as_deref().map(|e| format!("Single sign-on failed: {e}"));
    let signup = accounts::settings_get(s.engine.store()).await.map(|x| x.signup).unwrap_or(false);
    layout("Sign in", None, login_form(&next, message.as_deref(), "", s.oidc.is_some(), signup)).into_response()
}

/// The `Set-Cookie` value that starts a session.
pub fn session_cookie(s: &AppState, session_id: &str) -> HeaderValue {
    let secure = if s.secure_cookies { "; Secure" } else { "" };
    let max_age = accounts::SESSION_TTL.as_secs();
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={session_id}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"
    ))
    .unwrap_or(HeaderValue::from_static(""))
}

/// Starts a session for `user` and sends the browser to `next`.
pub async fn sign_in(s: &AppState, user: &accounts::UserRecord, ip: Option<IpAddr>, how: &str, next: &str) -> UiResult {
    let (session_id, _) = accounts::session_create(s.engine.store(), user).await?;
    let store = s.engine.store().clone();
    tokio::spawn(async move {
        if let Err(e) = accounts::sessions_prune(&store).await {
            tracing::warn!("cannot prune expired sessions: {e}");
        }
    });
    crate::audit::record(
        s.engine.store(),
        user.name.as_str(),
        user.client.as_str(),
        "sign_in",
        format!("user {}", user.name),
        ip,
        how,
    )
    .await;
    let next = if safe_next(next) { next } else { "/" };
    let mut resp = Redirect::to(next).into_response();
    resp.headers_mut().insert(header::SET_COOKIE, session_cookie(s, &session_id));
    Ok(resp)
}

async fn login_submit(State(s): State<AppState>, PeerIp(ip): PeerIp, FormData(form): FormData) -> UiResult {
    let user = form.get("user").map(|u| u.trim().to_owned()).unwrap_or_default();
    let password = form.get("password").cloned().unwrap_or_default();
    let next = form.get("next").filter(|n| safe_next(n)).cloned().unwrap_or_else(|| "/".into());
    let ip_key = ip.unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let oidc = s.oidc.is_some();
    let signup = accounts::settings_get(s.engine.store()).await?.signup;
    if let Some(wait) = s.rate.blocked(&user, ip_key) {
        let minutes = wait.as_secs().div_ceil(60).max(1);
        let m = format!("Too many failed sign-ins from your address. Wait {minutes} minute(s) and try again.");
        return Ok((
            StatusCode::TOO_MANY_REQUESTS,
            layout("Sign in", None, login_form(&next, Some(&m), &user, oidc, signup)),
        )
            .into_response());
    }
    match accounts::password_check(s.engine.store(), &user, &password).await? {
        Some(record) => {
            s.rate.succeeded(&user, ip_key);
            sign_in(&s, &record, ip, "password", &next).await
        }
        None => {
            let tally = s.rate.failed(&user, ip_key);
            crate::audit::sign_in_failed(s.engine.store(), &tally, ip, "password", "wrong user name or password").await;
            let m = "Wrong user name or password.";
            Ok((StatusCode::UNAUTHORIZED, layout("Sign in", None, login_form(&next, Some(m), &user, oidc, signup)))
                .into_response())
        }
    }
}

async fn logout(
    State(s): State<AppState>,
    Viewer(c): Viewer,
    headers: axum::http::HeaderMap,
    form: FormData,
) -> UiResult {
    form.csrf(&c)?;
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.to_owned());
    if let Some(id) = cookie {
        accounts::session_delete(s.engine.store(), &id).await?;
    }
    audit(&s, &c, &c.client.clone(), "sign_out", format!("user {}", c.user), "").await;
    let mut resp = Redirect::to("/login").into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("spawnit_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"),
    );
    Ok(resp)
}

// ---- dashboard ----

struct ServiceRow {
    name: Id,
    template: String,
    status: String,
    /// Why the service is in error when its stored spec cannot be read.
    error: Option<String>,
    endpoints: Vec<spawnit_model::spec::Endpoint>,
}

async fn service_rows(s: &AppState, client: &Id) -> Result<Vec<ServiceRow>, UiError> {
    let mut rows = Vec::new();
    for name in s.engine.service_list(client).await? {
        let spec = match s.engine.store().service_spec(client, &name).await {
            Ok(Some(spec)) => spec.value,
            Ok(None) => continue,
            // One unreadable spec is that row's error; the other services are still shown.
            Err(e @ spawnit_store::StoreError::Corrupt { .. }) => {
                rows.push(ServiceRow {
                    name,
                    template: "?".into(),
                    status: "error".into(),
                    error: Some(e.to_string()),
                    endpoints: Vec::new(),
                });
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let status = match s.board.get(client, &name) {
            Some(seen) => seen.status.to_string(),
            None => match s.engine.service_plan(client, &name).await {
                Ok(p) => p.plan.status.to_string(),
                Err(_) => "error".into(),
            },
        };
        rows.push(ServiceRow {
            name,
            template: spec.template.id.to_string(),
            status,
            error: None,
            endpoints: spec.endpoints(),
        });
    }
    Ok(rows)
}

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
                                        a href=(format!("/services/{name}{}{}job={}", client_query(caller, client), if client_query(caller, client).is_empty() { "?" } else { "&" }, j.id)) { "service " (name) }
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

async fn dashboard(State(s): State<AppState>, Viewer(c): Viewer) -> UiResult {
    let rows = service_rows(&s, &c.client).await?;
    let running: Vec<_> =
        s.jobs.list().into_iter().filter(|j| c.sees(j.target.client()) && !j.status.is_finished()).collect();
    let body = html! {
        div.heading {
            h1 { "My services" }
            a.button.primary href="/catalog" { "Deploy a service" }
        }
        @if rows.is_empty() {
            section.card { p { "No services yet. Pick one in the " a href="/catalog" { "catalog" } "." } }
        } @else {
            table.list #services {
                thead { tr { th { "Service" } th { "Template" } th { "Status" } th { "Endpoints" } } }
                tbody {
                    @for r in &rows {
                        tr {
                            td { a href=(format!("/services/{}", r.name)) { (r.name) } }
                            td { (r.template) }
                            td {
                                (badge(&r.status, Some(format!("{}/{}", c.client, r.name))))
                                @if let Some(error) = &r.error { " " span.error.unreadable { (error) } }
                            }
                            td {
                                @for e in &r.endpoints {
                                    @if let Some(u) = &e.url { a href=(u) { (u) } " " } @else { code { (e.address) } " " }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Running jobs" }
        div #running-jobs data-live="1" { (job_rows(&running, &c)) }
    };
    Ok(page("Dashboard", &c, body))
}

// ---- catalog ----

fn needs(t: &Template) -> Vec<String> {
    let mut out = Vec::new();
    let containers = t.blueprint.get("containers").and_then(Value::as_object);
    if let Some(cs) = containers {
        for c in cs.values() {
            if let Some(img) = c.get("image").and_then(Value::as_str) {
                out.push(format!("image {img}"));
            }
            let ports = c.get("ports").and_then(Value::as_array).map(Vec::len).unwrap_or(0);
            if ports > 0 {
                out.push(format!("{ports} published port{}", if ports == 1 { "" } else { "s" }));
            }
        }
    }
    let volumes = t.blueprint.get("volumes").and_then(Value::as_object).map(|v| v.len()).unwrap_or(0);
    if volumes > 0 {
        out.push(format!("{volumes} volume{}", if volumes == 1 { "" } else { "s" }));
    }
    out
}

async fn catalog_page(State(s): State<AppState>, Viewer(c): Viewer) -> UiResult {
    let catalog = s.engine.store().catalog().await?;
    let mut by_category: BTreeMap<String, Vec<(spawnit_model::CatalogEntry, Option<Template>)>> = BTreeMap::new();
    for e in catalog.templates {
        let t = s.engine.template(&e.id).await.ok();
        by_category.entry(e.category.clone()).or_default().push((e, t));
    }
    let body = html! {
        div.heading {
            h1 { "Catalog" }
            div.search {
                label for="search" { "Search" }
                input #search type="search" placeholder="Name, category, description…" autocomplete="off";
            }
        }
        @for (category, entries) in &by_category {
            section.category data-category=(category) {
                h2 { (category) }
                div.cards {
                    @for (e, t) in entries {
                        article.card.template data-text=(format!("{} {} {} {}", e.id, e.name, e.category, e.description).to_lowercase()) {
                            h3 { (e.name) }
                            p { (e.description) }
                            @if let Some(t) = t {
                                p.muted.small {
                                    "Needs: " (needs(t).join(", "))
                                    @if !t.parameters.is_empty() {
                                        " · settings: "
                                        (t.parameters.iter().map(|(k, p)| p.title.clone().unwrap_or_else(|| k.clone())).collect::<Vec<_>>().join(", "))
                                    }
                                }
                            }
                            p.small.muted { "Version " (e.version) }
                            a.button href=(format!("/catalog/{}", e.id)) aria-label=(format!("Configure {}", e.name)) { "Configure" }
                        }
                    }
                }
            }
        }
        p #no-match.muted hidden { "Nothing in the catalog matches your search." }
    };
    Ok(page("Catalog", &c, body))
}

// ---- configure ----

struct FormState {
    values: HashMap<String, String>,
    errors: HashMap<String, String>,
    general: Option<String>,
}

async fn configure_render(
    s: &AppState,
    c: &Caller,
    t: &Template,
    client: &Id,
    st: &FormState,
) -> Result<Markup, UiError> {
    let mut networks = s.engine.network_list(client).await?;
    let default = Id::parse("default").expect("valid id");
    if !networks.contains(&default) {
        networks.insert(0, default);
    }
    let value = |k: &str| st.values.get(k).cloned();
    let error = |k: &str| st.errors.get(k).cloned();
    let field_error = |k: &str| {
        html! { @if let Some(e) = error(k) { p.field-error id=(format!("{k}-error")) role="alert" { (e) } } }
    };
    let q = client_query(c, client);
    Ok(html! {
        p.crumbs { a href="/catalog" { "Catalog" } " / " (t.name) }
        h1 { "Configure " (t.name) }
        p.muted { (t.description) }
        @if let Some(g) = &st.general { p.error role="alert" #form-error { (g) } }
        @if !st.errors.is_empty() { p.error role="alert" #form-error-summary { "Some settings need a fix: see the messages next to the fields." } }
        form.card.configure method="post" action=(format!("/catalog/{}{q}", t.id)) novalidate {
            (csrf_field(c))
            div.field {
                label for="f-name" { "Service name" }
                input #f-name type="text" name="name" value=(value("name").unwrap_or_default()) required
                    pattern="[a-z0-9][a-z0-9-]{0,62}" aria-describedby="f-name-help name-error" aria-invalid=[error("name").map(|_| "true")];
                p.help #f-name-help { "Lowercase letters, digits and dashes, e.g. " code { "my-" (t.id) } "." }
                (field_error("name"))
            }
            @for (k, p) in &t.parameters {
                @let id = format!("p-{k}");
                @let help = format!("{id}-help {k}-error");
                @let label = p.title.clone().unwrap_or_else(|| k.clone());
                @let current = value(k).or_else(|| if p.secret { None } else { p.default.as_ref().map(|d| match d { Value::String(s) => s.clone(), v => v.to_string() }) });
                @let invalid = error(k).map(|_| "true");
                div.field {
                    @match p.param_type() {
                        ParamType::Boolean => {
                            div.check {
                                input id=(id) type="checkbox" name=(format!("param.{k}")) value="true"
                                    checked[current.as_deref() == Some("true")] aria-describedby=(help) aria-invalid=[invalid];
                                label for=(id) { (label) }
                            }
                        }
                        ParamType::Enum => {
                            label for=(id) { (label) }
                            select id=(id) name=(format!("param.{k}")) aria-describedby=(help) aria-invalid=[invalid] {
                                @for choice in &p.choices {
                                    option value=(choice) selected[current.as_deref() == Some(choice.as_str())] { (choice) }
                                }
                            }
                        }
                        ParamType::Integer => {
                            label for=(id) { (label) }
                            input id=(id) type="number" name=(format!("param.{k}")) value=[current] step="1"
                                min=[p.minimum] max=[p.maximum] aria-describedby=(help) aria-invalid=[invalid];
                        }
                        ParamType::String if p.secret => {
                            label for=(id) { (label) }
                            div.secret {
                                input id=(id) type="password" name=(format!("param.{k}")) autocomplete="new-password"
                                    aria-describedby=(help) aria-invalid=[invalid];
                                button.small type="button" data-generate=(id) { "Generate" }
                                button.small type="button" data-reveal=(id) aria-pressed="false" { "Show" }
                            }
                        }
                        ParamType::String => {
                            label for=(id) { (label) }
                            input id=(id) type="text" name=(format!("param.{k}")) value=[current] aria-describedby=(help) aria-invalid=[invalid];
                        }
                    }
                    p.help id=(format!("{id}-help")) {
                        (p.description)
                        @if p.secret { " Secret: never shown again." @if p.generate.is_some() { " Leave empty to generate one." } }
                        @if let (Some(min), Some(max)) = (p.minimum, p.maximum) { " Between " (min) " and " (max) "." }
                    }
                    (field_error(k))
                }
            }
            fieldset {
                legend { "Where" }
                div.field {
                    label for="f-network" { "Network" }
                    select #f-network name="network" aria-describedby="network-error" {
                        @for n in &networks {
                            option value=(n) selected[value("network").as_deref() == Some(n.as_str())] { (n) }
                        }
                    }
                    (field_error("network"))
                }
                div.field {
                    label for="f-provider" { "Provider" }
                    select #f-provider name="provider" aria-describedby="provider-error" {
                        option value="docker" selected[value("provider").as_deref() != Some("aws")] { "Docker on this host" }
                        option value="aws" selected[value("provider").as_deref() == Some("aws")] { "AWS EC2" }
                    }
                    (field_error("provider"))
                }
                div.check {
                    input #f-public type="checkbox" name="public" value="true" checked[value("public").as_deref() == Some("true")];
                    label for="f-public" { "Publish ports on every address (not only 127.0.0.1)" }
                }
            }
            div.actions {
                button type="submit" name="action" value="save" { "Save" }
                button.primary type="submit" name="action" value="plan" { "Save and plan" }
            }
        }
    })
}

async fn configure_page(
    State(s): State<AppState>,
    Viewer(c): Viewer,
    Q(q): Q,
    Path(template): Path<String>,
) -> UiResult {
    let client = c.client_for(q.client.as_deref())?;
    let id = id_of("template", &template)?;
    let t = s.engine.template(&id).await?;
    let st = FormState { values: HashMap::new(), errors: HashMap::new(), general: None };
    let body = configure_render(&s, &c, &t, &client, &st).await?;
    Ok(page(&format!("Configure {}", t.name), &c, body))
}

async fn configure_submit(
    State(s): State<AppState>,
    Viewer(c): Viewer,
    Q(q): Q,
    Path(template): Path<String>,
    form: FormData,
) -> UiResult {
    form.csrf(&c)?;
    let client = c.client_for(q.client.as_deref())?;
    let t = s.engine.template(&id_of("template", &template)?).await?;
    let mut errors = HashMap::new();
    let mut params = BTreeMap::new();
    let mut values = HashMap::new();
    for (k, p) in &t.parameters {
        let raw = form.get(&format!("param.{k}")).to_owned();
        if !p.secret {
            values.insert(k.clone(), raw.clone());
        }
        match p.param_type() {
            ParamType::Boolean => {
                params.insert(k.clone(), Value::Bool(raw == "true"));
                values.insert(k.clone(), if raw == "true" { "true".into() } else { "false".into() });
            }
            _ if raw.trim().is_empty() => {}
            ParamType::Integer => match raw.trim().parse::<i64>() {
                Ok(n) => {
                    params.insert(k.clone(), Value::from(n));
                }
                Err(_) => {
                    errors.insert(k.clone(), "Must be a whole number.".to_owned());
                }
            },
            _ => {
                params.insert(k.clone(), Value::String(raw));
            }
        }
    }
    for f in ["name", "network", "provider", "public"] {
        values.insert(f.to_owned(), form.get(f).to_owned());
    }
    let name = form.get("name").trim().to_owned();
    let name_id = match Id::parse(&name) {
        Ok(id) => Some(id),
        Err(e) => {
            let why =
                if name.is_empty() { "Give the service a name.".to_owned() } else { format!("Not a valid name: {e}.") };
            errors.insert("name".into(), why);
            None
        }
    };
    let network_raw = match form.get("network").trim() {
        "" => "default",
        n => n,
    };
    let network = Id::parse(network_raw).map_err(|e| errors.insert("network".into(), sentence(&e.to_string()))).ok();
    let provider = match form.get("provider") {
        "aws" => ProviderKind::Aws,
        _ => ProviderKind::Docker,
    };
    let mut general = None;
    if let (Some(name_id), Some(network), true) = (name_id.clone(), network, errors.is_empty()) {
        let req = ServiceCreate {
            client: client.clone(),
            name: name_id.clone(),
            template: t.id.clone(),
            network,
            exposure: if form.get("public") == "true" { Exposure::Public } else { Exposure::default() },
            provider,
            params,
            aws: None,
        };
        match s.engine.service_create(req).await {
            Ok(spec) => {
                audit(&s, &c, &client, "create", format!("service {client}/{}", spec.name), t.id.as_str()).await;
                let q = client_query(&c, &client);
                if form.get("action") == "plan" {
                    let target = Target::Service { client: client.clone(), name: spec.name.clone() };
                    let job = s.jobs.submit(JobKind::Plan, target.clone(), &c.user).await;
                    let id = job.record().id;
                    audit(&s, &c, &client, "plan", target.to_string(), &format!("job {id}")).await;
                    let sep = if q.is_empty() { "?" } else { "&" };
                    return Ok(Redirect::to(&format!("/services/{}{q}{sep}job={id}", spec.name)).into_response());
                }
                return Ok(Redirect::to(&format!("/services/{}{q}", spec.name)).into_response());
            }
            Err(spawnit_engine::EngineError::Invalid(v)) => {
                for e in v.errors {
                    let field = if t.parameters.contains_key(&e.field)
                        || ["name", "network", "provider"].contains(&e.field.as_str())
                    {
                        e.field.clone()
                    } else {
                        general = Some(format!("{}: {}", e.field, e.reason));
                        continue;
                    };
                    errors.insert(field, sentence(&e.reason));
                }
            }
            Err(e @ spawnit_engine::EngineError::AlreadyExists { .. }) => {
                errors.insert(
                    "name".into(),
                    format!("{}: choose another name.", sentence(&e.to_string()).trim_end_matches('.')),
                );
            }
            Err(e) => general = Some(ApiError::from(e).message),
        }
    }
    let st = FormState { values, errors, general };
    let body = configure_render(&s, &c, &t, &client, &st).await?;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, page(&format!("Configure {}", t.name), &c, body)).into_response())
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

// ---- service page ----

/// The dependency graph as an SVG: columns by depth, one box per resource, arrows to dependencies.
fn graph_svg(resources: &[spawnit_model::resource::DesiredResource]) -> Markup {
    let deps = spawnit_engine::dependency_map(resources);
    let mut depth: BTreeMap<String, usize> = BTreeMap::new();
    let order = spawnit_engine::topological_order(&deps).unwrap_or_else(|_| deps.keys().cloned().collect());
    for a in &order {
        let d = deps
            .get(a)
            .map(|ds| ds.iter().filter_map(|x| depth.get(&x.to_string())).map(|d| d + 1).max().unwrap_or(0))
            .unwrap_or(0);
        depth.insert(a.to_string(), d);
    }
    let mut columns: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for a in &order {
        columns.entry(depth[&a.to_string()]).or_default().push(a.to_string());
    }
    let (w, h, gap_x, gap_y) = (180.0_f64, 40.0_f64, 70.0_f64, 20.0_f64);
    let mut pos: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for (col, items) in &columns {
        for (row, a) in items.iter().enumerate() {
            pos.insert(a.clone(), (10.0 + *col as f64 * (w + gap_x), 10.0 + row as f64 * (h + gap_y)));
        }
    }
    let width = 20.0 + columns.len().max(1) as f64 * (w + gap_x) - gap_x;
    let height = 20.0 + columns.values().map(Vec::len).max().unwrap_or(1) as f64 * (h + gap_y) - gap_y;
    html! {
        svg.graph role="img" aria-label="Dependency graph of the service's resources" viewBox=(format!("0 0 {width} {height}"))
            width=(width) height=(height) xmlns="http://www.w3.org/2000/svg" {
            defs {
                marker #arrow viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse" {
                    path d="M 0 0 L 10 5 L 0 10 z" {}
                }
            }
            @for (a, ds) in &deps {
                @for d in ds {
                    @if let (Some((x1, y1)), Some((x2, y2))) = (pos.get(&d.to_string()), pos.get(&a.to_string())) {
                        line.edge x1=(x1 + w) y1=(y1 + h / 2.0) x2=(x2) y2=(y2 + h / 2.0) marker-end="url(#arrow)" {}
                    }
                }
            }
            @for (a, (x, y)) in &pos {
                g.node {
                    rect x=(x) y=(y) width=(w) height=(h) rx="8" {}
                    text x=(x + w / 2.0) y=(y + h / 2.0 + 5.0) text-anchor="middle" { (a) }
                }
            }
        }
    }
}

fn action_class(a: Action) -> &'static str {
    match a {
        Action::Create => "create",
        Action::Update => "update",
        Action::Replace => "replace",
        Action::Delete => "delete",
        _ => "noop",
    }
}

async fn service_page(State(s): State<AppState>, Viewer(c): Viewer, Q(q): Q, Path(name): Path<String>) -> UiResult {
    let client = c.client_for(q.client.as_deref())?;
    let name = id_of("service", &name)?;
    let planned = s.engine.service_plan(&client, &name).await?;
    let spec = &planned.spec;
    let plan = spawnit_engine::redacted_plan(&planned.plan, &planned.redactor);
    let state = s.engine.service_state(&client, &name).await?;
    let net_status = s.engine.network_plan(&client, &spec.network).await.map(|p| p.status).ok();
    let target = Target::Service { client: client.clone(), name: name.clone() };
    let jobs: Vec<_> = s.jobs.list().into_iter().filter(|j| j.target == target).collect();
    let shown_job = q
        .job
        .as_deref()
        .and_then(|id| jobs.iter().find(|j| j.id == id))
        .or_else(|| jobs.iter().find(|j| !j.status.is_finished()))
        .or_else(|| jobs.first())
        .cloned();
    let qs = client_query(&c, &client);
    let status = plan.status.to_string();
    let resources = spawnit_engine::service_resources(spec);
    let has_state = state.as_ref().is_some_and(|st| !st.resources.is_empty());
    let reconcile = s.board.reconcile_failing(&client, &name);
    let body = html! {
        p.crumbs { a href="/" { "Dashboard" } " / " (name) }
        div.heading {
            h1 { (name) " " (badge(&status, Some(format!("{client}/{name}")))) }
            p.muted { (spec.template.id) " " (spec.template.version) " · provider " (spec.provider) " · network " (spec.network) " · client " (client) }
        }
        @if let Some(r) = &reconcile {
            section.card.notice #reconcile role="alert" { p { (planned.redactor.text(&r.message())) } }
        }
        @if net_status.is_some_and(|st| st != PlanStatus::Compliant) {
            section.card.notice {
                p { "The network " strong { (spec.network) } " is not ready yet: apply it first." }
                form method="post" action=(format!("/networks/{}/apply{qs}", spec.network)) {
                    (csrf_field(&c))
                    input type="hidden" name="back" value=(name);
                    button.primary type="submit" { "Apply network " (spec.network) }
                }
            }
        }
        div.grid {
            section.card {
                h2 { "Endpoints" }
                @let eps = spec.endpoints();
                @if eps.is_empty() { p.muted { "This service publishes no port." } }
                ul.endpoints {
                    @for e in &eps {
                        li { (e.container) "/" (e.name) ": "
                            @if let Some(u) = &e.url { a href=(u) target="_blank" rel="noopener" { (u) } } @else { code { (e.address) } " (" (format!("{:?}", e.protocol).to_lowercase()) ")" }
                        }
                    }
                }
                h2 { "Lease" }
                @if let Some(at) = spec.expires_at {
                    p { "Destroyed at " (time(at)) " — in " span.countdown data-expires=(at.to_rfc3339()) { (format_remaining(at)) } }
                } @else {
                    p.muted { "No lease: the service runs until you destroy it." }
                }
                form.inline method="post" action=(format!("/services/{name}/lease{qs}")) {
                    (csrf_field(&c))
                    label for="ttl" { @if spec.expires_at.is_some() { "Extend by" } @else { "Destroy after" } }
                    select #ttl name="ttl" {
                        option value="30m" { "30 minutes" }
                        option value="1h" selected { "1 hour" }
                        option value="2h" { "2 hours" }
                        option value="1d" { "1 day" }
                        option value="7d" { "7 days" }
                    }
                    button type="submit" { @if spec.expires_at.is_some() { "Extend" } @else { "Set lease" } }
                }
            }
            section.card {
                h2 { "Settings" }
                dl.params {
                    @for (k, v) in &spec.params {
                        dt { (k) }
                        dd { @if spec.secret_params.contains(k) { span.muted { "(secret)" } } @else { (planned.redactor.text(&match v { Value::String(s) => s.clone(), v => v.to_string() })) } }
                    }
                }
            }
        }
        section.card #plan {
            h2 { "Plan" }
            @if plan.status == PlanStatus::Error {
                @for e in &plan.errors { p.error role="alert" { (e) } }
            } @else if plan.actions().next().is_none() {
                p { "Nothing to do: what runs matches the spec." }
            } @else {
                ol.changes {
                    @for ch in plan.actions() {
                        li class=(action_class(ch.action)) {
                            span.action { (ch.action) } " " code { (ch.address) }
                            @if !ch.reasons.is_empty() { span.reason { " — " (ch.reasons.join("; ")) } }
                        }
                    }
                }
            }
            div.actions {
                form method="post" action=(format!("/services/{name}/plan{qs}")) {
                    (csrf_field(&c)) button type="submit" { "Plan again" }
                }
                details.confirm {
                    summary.button.primary { "Apply…" }
                    form method="post" action=(format!("/services/{name}/apply{qs}")) {
                        (csrf_field(&c))
                        p { "Apply the changes above to " strong { (name) } "?" }
                        button.primary #confirm-apply type="submit" { "Yes, apply" }
                    }
                }
                details.confirm {
                    summary.button.danger { "Destroy…" }
                    form method="post" action=(format!("/services/{name}/destroy{qs}")) {
                        (csrf_field(&c))
                        p { "Delete every container and volume of " strong { (name) } "? Its data is lost." }
                        button.danger #confirm-destroy type="submit" { "Yes, destroy" }
                    }
                }
                @if !has_state {
                    form method="post" action=(format!("/services/{name}/delete{qs}")) {
                        (csrf_field(&c)) button.link type="submit" { "Forget this service" }
                    }
                }
            }
        }
        @if let Some(j) = &shown_job {
            section.card #job {
                div.heading {
                    h2 { "Job: " (j.kind.as_str()) " " span class=(format!("badge job-{}", j.status.as_str())) data-job-status=(j.id) #job-status { (j.status.as_str()) } }
                    @if !j.status.is_finished() {
                        form method="post" action=(format!("/jobs/{}/cancel", j.id)) {
                            (csrf_field(&c))
                            input type="hidden" name="back" value=(format!("/services/{name}{qs}"));
                            button.danger #cancel type="submit" { "Cancel" }
                        }
                    }
                }
                pre.console #log data-job=(j.id) data-live=(if j.status.is_finished() { "0" } else { "1" }) aria-live="polite" {}
                @if let Some(e) = &j.error { p.error { (e) } }
            }
        }
        section.card {
            h2 { "Dependency graph" }
            (graph_svg(&resources))
        }
        section.card {
            h2 { "Job history" }
            (job_rows(&jobs, &c))
        }
    };
    Ok(page(name.as_str(), &c, body))
}

fn format_remaining(at: chrono::DateTime<Utc>) -> String {
    let s = (at - Utc::now()).num_seconds().max(0);
    format!("{}h {:02}m {:02}s", s / 3600, (s % 3600) / 60, s % 60)
}

async fn service_action(
    State(s): State<AppState>,
    Viewer(c): Viewer,
    Q(q): Q,
    Path((name, action)): Path<(String, String)>,
    form: FormData,
) -> UiResult {
    form.csrf(&c)?;
    let client = c.client_for(q.client.as_deref())?;
    let name = id_of("service", &name)?;
    let spec = s.engine.service_spec(&client, &name).await?;
    let qs = client_query(&c, &client);
    let sep = if qs.is_empty() { "?" } else { "&" };
    let target = Target::Service { client: client.clone(), name: name.clone() };
    let kind = match action.as_str() {
        "plan" => JobKind::Plan,
        "apply" => JobKind::Apply,
        "destroy" => JobKind::Destroy,
        "lease" => {
            let ttl = match form.get("ttl") {
                "30m" => 1800,
                "1h" => 3600,
                "2h" => 7200,
                "1d" => 86400,
                "7d" => 7 * 86400,
                _ => {
                    return Err(UiError::new(StatusCode::UNPROCESSABLE_ENTITY, "Choose a lease length from the list."));
                }
            };
            let base = spec.expires_at.filter(|at| *at > Utc::now()).unwrap_or_else(Utc::now);
            let at = base + chrono::Duration::seconds(ttl);
            s.engine.service_settings_set(&client, &name, None, Some(Some(at))).await?;
            audit(&s, &c, &client, "lease", target.to_string(), &format!("expires {at}")).await;
            return Ok(Redirect::to(&format!("/services/{name}{qs}")).into_response());
        }
        "delete" => {
            if s.jobs.busy(&target) {
                return Err(UiError::new(
                    StatusCode::CONFLICT,
                    format!("{target} has a job queued or running: wait for it."),
                ));
            }
            s.engine.service_delete(&client, &name).await?;
            audit(&s, &c, &client, "delete", target.to_string(), "").await;
            return Ok(Redirect::to("/").into_response());
        }
        other => {
            return Err(UiError::new(StatusCode::NOT_FOUND, format!("There is no action {other:?} on a service.")));
        }
    };
    let job = s.jobs.submit(kind, target.clone(), &c.user).await;
    let id = job.record().id;
    audit(&s, &c, &client, kind.as_str(), target.to_string(), &format!("job {id}")).await;
    Ok(Redirect::to(&format!("/services/{name}{qs}{sep}job={id}")).into_response())
}

async fn job_cancel(State(s): State<AppState>, Viewer(c): Viewer, Path(id): Path<String>, form: FormData) -> UiResult {
    form.csrf(&c)?;
    let job = s
        .jobs
        .get(&id)
        .filter(|j| c.sees(j.record().target.client()))
        .ok_or_else(|| UiError::new(StatusCode::NOT_FOUND, "There is no such job."))?;
    let record = job.record();
    if s.jobs.cancel(&job) {
        audit(&s, &c, record.target.client(), "cancel", record.target.to_string(), &format!("job {}", record.id)).await;
    }
    let back = form.get("back");
    let back = if safe_next(back) { back.to_owned() } else { "/".to_owned() };
    let sep = if back.contains('?') { "&" } else { "?" };
    Ok(Redirect::to(&format!("{back}{sep}job={}", record.id)).into_response())
}

// ---- networks ----

async fn networks_page(State(s): State<AppState>, Viewer(c): Viewer, Q(q): Q) -> UiResult {
    let client = c.client_for(q.client.as_deref())?;
    let qs = client_query(&c, &client);
    let mut rows = Vec::new();
    for n in s.engine.network_list(&client).await? {
        let status =
            s.engine.network_plan(&client, &n).await.map(|p| p.status.to_string()).unwrap_or_else(|_| "error".into());
        rows.push((n, status));
    }
    let jobs: Vec<_> = s
        .jobs
        .list()
        .into_iter()
        .filter(|j| matches!(&j.target, Target::Network { client: cl, .. } if cl == &client))
        .take(20)
        .collect();
    let body = html! {
        h1 { "Networks of " (client) }
        p.muted { "Services join one of their client's networks. Apply a network before the services on it." }
        @if rows.is_empty() { p { "No networks yet." } }
        table.list {
            thead { tr { th { "Network" } th { "Status" } th { "Actions" } } }
            tbody {
                @for (n, st) in &rows {
                    tr {
                        td { (n) }
                        td { (badge(st, None)) }
                        td {
                            div.row-actions {
                                form method="post" action=(format!("/networks/{n}/apply{qs}")) { (csrf_field(&c)) button type="submit" { "Apply" } }
                                form method="post" action=(format!("/networks/{n}/destroy{qs}")) data-confirm="Destroy this network?" {
                                    (csrf_field(&c)) button.danger type="submit" { "Destroy" }
                                }
                            }
                        }
                    }
                }
            }
        }
        form.card.inline method="post" action=(format!("/networks{qs}")) {
            (csrf_field(&c))
            label for="net-name" { "New network" }
            input #net-name type="text" name="name" required pattern="[a-z0-9][a-z0-9-]{0,62}";
            button type="submit" { "Create" }
        }
        h2 { "Network jobs" }
        (job_rows(&jobs, &c))
    };
    Ok(page("Networks", &c, body))
}

async fn network_create(State(s): State<AppState>, Viewer(c): Viewer, Q(q): Q, form: FormData) -> UiResult {
    form.csrf(&c)?;
    let client = c.client_for(q.client.as_deref())?;
    let name = Id::parse(form.get("name").trim())
        .map_err(|e| UiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("Not a valid network name: {e}.")))?;
    s.engine.network_create(&client, &name).await?;
    audit(&s, &c, &client, "create", format!("network {client}/{name}"), "").await;
    Ok(Redirect::to(&format!("/networks{}", client_query(&c, &client))).into_response())
}

async fn network_action(
    State(s): State<AppState>,
    Viewer(c): Viewer,
    Q(q): Q,
    Path((name, action)): Path<(String, String)>,
    form: FormData,
) -> UiResult {
    form.csrf(&c)?;
    let client = c.client_for(q.client.as_deref())?;
    let name = id_of("network", &name)?;
    let kind = match action.as_str() {
        "apply" => JobKind::Apply,
        "destroy" => JobKind::Destroy,
        "plan" => JobKind::Plan,
        other => {
            return Err(UiError::new(StatusCode::NOT_FOUND, format!("There is no action {other:?} on a network.")));
        }
    };
    s.engine.network_spec(&client, &name).await?;
    let target = Target::Network { client: client.clone(), name };
    let job = s.jobs.submit(kind, target.clone(), &c.user).await;
    let id = job.record().id;
    audit(&s, &c, &client, kind.as_str(), target.to_string(), &format!("job {id}")).await;
    let qs = client_query(&c, &client);
    match Id::parse(form.get("back")) {
        Ok(service) => Ok(Redirect::to(&format!("/services/{service}{qs}")).into_response()),
        Err(_) => Ok(Redirect::to(&format!("/networks{qs}")).into_response()),
    }
}

// ---- tokens ----

async fn tokens_render(
    s: &AppState,
    c: &Caller,
    created: Option<(String, String)>,
    error: Option<String>,
) -> Result<Response, UiError> {
    let tokens = crate::auth::token_list(s.engine.store(), Some(&c.user)).await?;
    let body = html! {
        h1 { "API tokens" }
        p.muted { "Tokens let the CLI and scripts call the API as you: " code { "Authorization: Bearer <token>" } "." }
        @if let Some((name, token)) = &created {
            section.card.notice role="status" {
                p { "Token " strong { (name) } " was created. Copy it now: it is shown only once." }
                p { code #new-token { (token) } }
            }
        }
        @if let Some(e) = &error { p.error role="alert" { (e) } }
        form.card.inline method="post" action="/tokens" {
            (csrf_field(c))
            label for="token-name" { "Name" }
            input #token-name type="text" name="name" maxlength="100" placeholder="e.g. laptop CLI";
            button.primary type="submit" { "Create token" }
        }
        @if tokens.is_empty() { p.muted { "You have no tokens." } } @else {
            table.list {
                thead { tr { th { "Name" } th { "Id" } th { "Created" } th {} } }
                tbody {
                    @for t in &tokens {
                        tr {
                            td { (if t.name.is_empty() { "(unnamed)" } else { &t.name }) }
                            td { code { (t.id.get(..12).unwrap_or(&t.id)) "…" } }
                            td { (time(t.created_at)) }
                            td {
                                form method="post" action=(format!("/tokens/{}/revoke", t.id)) {
                                    (csrf_field(c)) button.danger.small type="submit" { "Revoke" }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page("API tokens", c, body))
}

async fn tokens_page(State(s): State<AppState>, Viewer(c): Viewer) -> UiResult {
    tokens_render(&s, &c, None, None).await
}

async fn token_create(State(s): State<AppState>, Viewer(c): Viewer, form: FormData) -> UiResult {
    form.csrf(&c)?;
    let name = match crate::api::token_name_check(form.get("name")) {
        Ok(n) => n,
        Err(e) => return tokens_render(&s, &c, None, Some(e.message)).await,
    };
    let (token, record) = crate::auth::token_create_named(s.engine.store(), &c.user, &c.client, c.role, &name).await?;
    audit(&s, &c, &c.client.clone(), "token_create", format!("token {}", record.id), &name).await;
    tokens_render(&s, &c, Some((if name.is_empty() { "(unnamed)".into() } else { name }, token)), None).await
}

async fn token_revoke(
    State(s): State<AppState>,
    Viewer(c): Viewer,
    Path(id): Path<String>,
    form: FormData,
) -> UiResult {
    form.csrf(&c)?;
    match crate::auth::token_revoke(s.engine.store(), &id, Some(&c.user)).await? {
        Some(r) => {
            audit(&s, &c, &r.client, "token_revoke", format!("token {}", r.id), &r.name).await;
            Ok(Redirect::to("/tokens").into_response())
        }
        None => Err(UiError::new(StatusCode::NOT_FOUND, "There is no such token.")),
    }
}

// ---- admin ----

async fn admin_render(s: &AppState, c: &Caller, message: Option<(bool, String)>) -> Result<Response, UiError> {
    let users = accounts::user_list(s.engine.store()).await?;
    let clients = s.engine.store().client_list().await?;
    let mut services = Vec::new();
    for cl in &clients {
        for r in service_rows(s, cl).await? {
            services.push((cl.clone(), r));
        }
    }
    let entries = crate::audit::list(s.engine.store(), 100).await?;
    let settings = accounts::settings_get(s.engine.store()).await?;
    let body = html! {
        h1 { "Admin" }
        @if let Some((ok, m)) = &message {
            p class=(if *ok { "notice" } else { "error" }) role="alert" { (m) }
        }
        section.card #users {
            h2 { "Users" }
            table.list {
                thead { tr { th { "User" } th { "Client" } th { "Role" } th { "Sign-in" } th { "Created" } } }
                tbody {
                    @for u in &users {
                        tr {
                            td { (u.name) } td { (u.client) } td { (format!("{:?}", u.role).to_lowercase()) }
                            td { @if u.password_hash.is_some() { "password " } @if u.oidc_subject.is_some() { "single sign-on" } }
                            td { (time(u.created_at)) }
                        }
                    }
                }
            }
            h3 { "Create a user" }
            form.grid-form method="post" action="/admin/users" {
                (csrf_field(c))
                div.field { label for="u-name" { "User name" } input #u-name type="text" name="name" required; }
                div.field { label for="u-client" { "Client" } input #u-client type="text" name="client" required; }
                div.field {
                    label for="u-role" { "Role" }
                    select #u-role name="role" { option value="member" { "member" } option value="admin" { "admin" } }
                }
                div.field { label for="u-password" { "Password (8+ characters; empty: single sign-on only)" } input #u-password type="password" name="password" autocomplete="new-password"; }
                div.field { label for="u-email" { "E-mail for single sign-on (linked when the provider has verified it)" } input #u-email type="email" name="email" autocomplete="off"; }
                div.actions { button.primary type="submit" { "Create user" } }
            }
        }
        section.card #settings {
            h2 { "Sign-up" }
            form.inline method="post" action="/admin/settings" {
                (csrf_field(c))
                div.check {
                    input #signup type="checkbox" name="signup" value="true" checked[settings.signup];
                    label for="signup" { "Let people create their own account (each gets a client of their own)" }
                }
                button type="submit" { "Save" }
            }
        }
        section.card #clients {
            h2 { "Clients" }
            ul {
                @for cl in &clients {
                    li { (cl) " — " (services.iter().filter(|(x, _)| x == cl).count()) " service(s) · "
                        a href=(format!("/networks?client={cl}")) { "networks" } }
                }
            }
        }
        section.card #all-services {
            h2 { "All services" }
            table.list {
                thead { tr { th { "Client" } th { "Service" } th { "Template" } th { "Status" } } }
                tbody {
                    @for (cl, r) in &services {
                        tr {
                            td { (cl) }
                            td { a href=(format!("/services/{}{}", r.name, client_query(c, cl))) { (r.name) } }
                            td { (r.template) }
                            td { (badge(&r.status, Some(format!("{cl}/{}", r.name)))) }
                        }
                    }
                }
            }
        }
        section.card #tasks {
            h2 { "Background tasks" }
            (task_table(&s.tasks.snapshot()))
        }
        section.card #audit {
            h2 { "Audit log" }
            table.list.small {
                thead { tr { th { "When" } th { "Who" } th { "What" } th { "Target" } th { "From" } th { "Detail" } } }
                tbody {
                    @for e in &entries {
                        tr {
                            td { (time(e.at)) } td { (e.user) } td { (e.action) } td { (e.target) }
                            td { (e.ip.map(|i| i.to_string()).unwrap_or_default()) } td { (e.detail) }
                        }
                    }
                }
            }
        }
    };
    Ok(page("Admin", c, body))
}

/// Each background task's last run: when, how long, its result, and how often it ran and failed.
fn task_table(runs: &[(Task, TaskRun)]) -> Markup {
    html! {
        table.list {
            thead { tr { th { "Task" } th { "Last run" } th { "Took" } th { "Result" } th { "Runs" } th { "Failures" } } }
            tbody {
                @for task in Task::ALL {
                    tr {
                        td { (task.as_str()) }
                        @match runs.iter().find(|(t, _)| *t == task).map(|(_, r)| r) {
                            Some(r) => {
                                td { (time(r.at)) }
                                td { (format!("{} ms", r.duration.as_millis())) }
                                td {
                                    @match &r.error {
                                        None => span.badge.compliant { "ok" },
                                        Some(e) => { span.badge.error { "failed" } " " (e) }
                                    }
                                }
                                td { (r.runs) } td { (r.failures) }
                            }
                            None => { td.muted colspan="5" { "not run yet" } }
                        }
                    }
                }
            }
        }
    }
}

async fn admin_page(State(s): State<AppState>, Viewer(c): Viewer) -> UiResult {
    admin_only(&c)?;
    admin_render(&s, &c, None).await
}

async fn admin_user_create(State(s): State<AppState>, Viewer(c): Viewer, form: FormData) -> UiResult {
    form.csrf(&c)?;
    admin_only(&c)?;
    let role = if form.get("role") == "admin" { Role::Admin } else { Role::Member };
    match crate::api::user_create_checked(
        &s,
        &c,
        form.get("name").trim(),
        form.get("client").trim(),
        role,
        Some(form.get("password")).filter(|p| !p.is_empty()),
        Some(form.get("email").trim()).filter(|e| !e.is_empty()),
    )
    .await
    {
        Ok(u) => admin_render(&s, &c, Some((true, format!("User {} of client {} created.", u.name, u.client)))).await,
        Err(e) => {
            let mut resp = admin_render(&s, &c, Some((false, e.message))).await?;
            *resp.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            Ok(resp)
        }
    }
}

async fn admin_settings(State(s): State<AppState>, Viewer(c): Viewer, form: FormData) -> UiResult {
    form.csrf(&c)?;
    admin_only(&c)?;
    let settings = accounts::AuthSettings { signup: form.get("signup") == "true" };
    accounts::settings_put(s.engine.store(), &settings).await?;
    let what = if settings.signup { "sign-up opened" } else { "sign-up closed" };
    audit(&s, &c, &c.client.clone(), "change", "settings auth".into(), what).await;
    admin_render(&s, &c, Some((true, format!("Saved: {what}.")))).await
}

// ---- sign-up ----

fn signup_form(message: Option<&str>, user: &str) -> Markup {
    html! {
        section.card.narrow {
            h1 { "Create an account" }
            @if let Some(m) = message { p.error role="alert" #signup-error { (m) } }
            form method="post" action="/signup" {
                div.field {
                    label for="user" { "User name" }
                    input #user type="text" name="user" value=(user) autocomplete="username" required
                        pattern="[a-z0-9][a-z0-9-]{0,62}" aria-describedby="user-help";
                    p.help #user-help { "Lowercase letters, digits and dashes. It also names your own client." }
                }
                div.field {
                    label for="password" { "Password (8+ characters)" }
                    input #password type="password" name="password" autocomplete="new-password" required minlength="8";
                }
                button.primary type="submit" { "Create account" }
            }
            p { a href="/login" { "Back to sign-in" } }
        }
    }
}

async fn signup_open(s: &AppState) -> Result<(), UiError> {
    if accounts::settings_get(s.engine.store()).await?.signup {
        Ok(())
    } else {
        Err(UiError::new(StatusCode::NOT_FOUND, "Sign-up is off on this SpawnIt: ask an admin to create your account."))
    }
}

async fn signup_page(State(s): State<AppState>) -> UiResult {
    signup_open(&s).await?;
    Ok(layout("Create an account", None, signup_form(None, "")).into_response())
}

async fn signup_submit(State(s): State<AppState>, PeerIp(ip): PeerIp, form: FormData) -> UiResult {
    signup_open(&s).await?;
    let user = form.get("user").trim().to_owned();
    let refuse = |m: String| {
        Ok((StatusCode::UNPROCESSABLE_ENTITY, layout("Create an account", None, signup_form(Some(&m), &user)))
            .into_response())
    };
    let name = match Id::parse(&user) {
        Ok(n) => n,
        Err(e) => return refuse(format!("Not a valid user name: {e}.")),
    };
    match accounts::signup(s.engine.store(), &name, form.get("password")).await {
        Ok(record) => {
            crate::audit::record(
                s.engine.store(),
                name.as_str(),
                name.as_str(),
                "user_create",
                format!("user {name}"),
                ip,
                "sign-up",
            )
            .await;
            sign_in(&s, &record, ip, "sign-up", "/").await
        }
        Err(accounts::AccountError::Exists(_)) => refuse(format!("The name {name} is taken: choose another one.")),
        Err(e @ accounts::AccountError::WeakPassword) => refuse(sentence(&e.to_string())),
        Err(accounts::AccountError::Store(e)) => Err(e.into()),
        Err(e) => Err(UiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
}
