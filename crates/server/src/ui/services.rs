//! The pages of services: the dashboard, the catalog, configuring a template into a service,
//! a service (plan, apply, destroy, lease, its replicas and scaling, its jobs and graph), and
//! cancelling a job.

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use chrono::Utc;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;
use spawnit_model::plan::{Action, PlanStatus};
use spawnit_model::{Exposure, Id, ParamType, ProviderKind, Template};

use super::graph::graph_svg;
use super::{
    PageQuery, Posted, UiError, UiResult, Viewer, badge, client_query, client_url, csrf_field, id_of, job_rows, page,
    sentence, time,
};
use crate::AppState;
use crate::caller::Caller;
use crate::index::ListQuery;
use crate::jobs::{JobKind, Target};
use crate::ops::{self, ServiceCreateRequest};
use crate::session::safe_next;
use crate::views::ServiceListItem;

/// A service as the dashboard and the admin page list it.
pub(super) struct ServiceRow {
    pub name: Id,
    pub template: String,
    pub status: String,
    /// Why the service is in error when its stored spec cannot be read.
    pub error: Option<String>,
    pub endpoints: Vec<spawnit_model::spec::Endpoint>,
}

/// The services of `client`, with the status the drift monitor last saw (from the service
/// index, like the API's list).
pub(super) async fn service_rows(s: &AppState, c: &Caller, client: &Id) -> Result<Vec<ServiceRow>, UiError> {
    let list = ops::service_list(s, c, Some(client.as_str()), &ListQuery::default()).await?;
    Ok(list
        .services
        .into_iter()
        .map(|item| match item {
            // One unreadable spec is that row's error; the other services are still shown.
            ServiceListItem::Unreadable(u) => ServiceRow {
                name: u.name,
                template: "?".into(),
                status: u.status.as_str().into(),
                error: Some(u.reasons.join("; ")),
                endpoints: Vec::new(),
            },
            ServiceListItem::Service(v) => ServiceRow {
                name: v.name,
                template: v.template.id.to_string(),
                status: v.status.as_str().into(),
                error: None,
                endpoints: v.endpoints,
            },
        })
        .collect())
}

pub(super) async fn dashboard(State(s): State<AppState>, Viewer(c): Viewer) -> UiResult {
    let rows = service_rows(&s, &c, &c.client).await?;
    let running: Vec<_> = ops::job_list(&s, &c, None).jobs.into_iter().filter(|j| !j.status.is_finished()).collect();
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
        (super::nodes::dashboard_leases(&s, &c).await)
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

pub(super) async fn catalog_page(State(s): State<AppState>, Viewer(c): Viewer) -> UiResult {
    let catalog = ops::catalog_list(&s, &c).await?;
    let mut by_category: BTreeMap<String, Vec<(spawnit_model::CatalogEntry, Option<Template>)>> = BTreeMap::new();
    for e in catalog.templates {
        let t = ops::catalog_get(&s, &c, e.id.as_str()).await.ok();
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
                            p.small.muted {
                                "Version " (e.version)
                                @if e.admin_only { " · admin only: members do not see it" }
                            }
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
                // A host port is left empty: SpawnIt picks a free one (its default when free).
                @let host_port = t.is_host_port(k);
                @let current = value(k).or_else(|| if p.secret || host_port { None } else { p.default.as_ref().map(|d| match d { Value::String(s) => s.clone(), v => v.to_string() }) });
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
                                min=[p.minimum] max=[p.maximum] placeholder=[host_port.then_some("a free port")]
                                aria-describedby=(help) aria-invalid=[invalid];
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
                        @if host_port {
                            " Leave empty and SpawnIt picks a free port"
                            @if let Some(d) = &p.default { " (" (d) " when it is free)" }
                            "; a port another service or program uses is refused."
                        }
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
                        option value="docker" selected[!matches!(value("provider").as_deref(), Some("aws" | "swarm" | "aws-asg" | "aws-ecs"))] { "Docker on this host" }
                        option value="swarm" selected[value("provider").as_deref() == Some("swarm")] { "Docker Swarm cluster" }
                        option value="aws" selected[value("provider").as_deref() == Some("aws")] { "AWS EC2" }
                        option value="aws-asg" selected[value("provider").as_deref() == Some("aws-asg")] { "AWS auto-scaling group behind a load balancer" }
                        option value="aws-ecs" selected[value("provider").as_deref() == Some("aws-ecs")] { "AWS ECS Fargate behind a load balancer" }
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

pub(super) async fn configure_page(
    State(s): State<AppState>,
    Viewer(c): Viewer,
    q: PageQuery,
    Path(template): Path<String>,
) -> UiResult {
    let client = c.client_for(q.client.as_deref())?;
    let t = ops::catalog_get(&s, &c, id_of("template", &template)?.as_str()).await?;
    let st = FormState { values: HashMap::new(), errors: HashMap::new(), general: None };
    let body = configure_render(&s, &c, &t, &client, &st).await?;
    Ok(page(&format!("Configure {}", t.name), &c, body))
}

/// The configure form's fields: the service's name and placement, what to do after saving,
/// and the template's parameters (`param.<name>`; checked against the template).
#[derive(Deserialize)]
pub(super) struct ConfigureForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    network: String,
    #[serde(default)]
    provider: ProviderKind,
    /// `true` when the "publish on every address" box is ticked.
    #[serde(default)]
    public: String,
    /// `plan` for "Save and plan".
    #[serde(default)]
    action: String,
    #[serde(flatten)]
    params: HashMap<String, String>,
}

pub(super) async fn configure_submit(
    State(s): State<AppState>,
    q: PageQuery,
    Path(template): Path<String>,
    Posted { caller: c, form }: Posted<ConfigureForm>,
) -> UiResult {
    let client = c.client_for(q.client.as_deref())?;
    let t = ops::catalog_get(&s, &c, id_of("template", &template)?.as_str()).await?;
    let mut errors = HashMap::new();
    let mut params = BTreeMap::new();
    let mut values = HashMap::new();
    for (k, p) in &t.parameters {
        let raw = form.params.get(&format!("param.{k}")).cloned().unwrap_or_default();
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
    let public = form.public == "true";
    for (f, v) in [
        ("name", form.name.as_str()),
        ("network", form.network.as_str()),
        ("provider", form.provider.as_str()),
        ("public", if public { "true" } else { "" }),
    ] {
        values.insert(f.to_owned(), v.to_owned());
    }
    let name = form.name.trim().to_owned();
    if name.is_empty() {
        errors.insert("name".into(), "Give the service a name.".to_owned());
    }
    let mut general = None;
    if errors.is_empty() {
        let req = ServiceCreateRequest {
            template: t.id.to_string(),
            name,
            network: Some(form.network.trim()).filter(|n| !n.is_empty()).map(str::to_owned),
            params,
            exposure: Some(if public { Exposure::Public } else { Exposure::default() }),
            provider: Some(form.provider),
            drift_policy: None,
            aws: None,
            swarm: None,
        };
        match ops::service_create(&s, &c, Some(client.as_str()), req).await {
            Ok(service) => {
                let path = format!("/services/{}", service.name);
                if form.action == "plan" {
                    let job = ops::service_job(&s, &c, Some(client.as_str()), &service.name, JobKind::Plan).await?;
                    return Ok(Redirect::to(&client_url(&c, &client, &path, Some(&job.id))).into_response());
                }
                return Ok(Redirect::to(&client_url(&c, &client, &path, None)).into_response());
            }
            Err(e) if e.code == "already_exists" => {
                errors.insert(
                    "name".into(),
                    format!("{}: choose another name.", sentence(&e.message).trim_end_matches('.')),
                );
            }
            Err(e) => match e.details.as_array() {
                // A field the form shows gets its message next to it; others go on top.
                Some(fields) if !fields.is_empty() => {
                    for f in fields {
                        let field = f["field"].as_str().unwrap_or_default();
                        let reason = f["reason"].as_str().unwrap_or_default();
                        if t.parameters.contains_key(field) || ["name", "network", "provider"].contains(&field) {
                            errors.insert(field.to_owned(), sentence(reason));
                        } else {
                            general = Some(format!("{field}: {reason}"));
                        }
                    }
                }
                _ => general = Some(e.message),
            },
        }
    }
    let st = FormState { values, errors, general };
    let body = configure_render(&s, &c, &t, &client, &st).await?;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, page(&format!("Configure {}", t.name), &c, body)).into_response())
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

pub(super) async fn service_page(
    State(s): State<AppState>,
    Viewer(c): Viewer,
    q: PageQuery,
    Path(name): Path<String>,
) -> UiResult {
    let client = c.client_for(q.client.as_deref())?;
    let name = id_of("service", &name)?;
    let planned = s.engine.service_plan(&client, &name).await?;
    let spec = &planned.spec;
    let plan = spawnit_engine::redacted_plan(&planned.plan, &planned.redactor);
    let state = s.engine.service_state(&client, &name).await?;
    let net_status = s.engine.network_plan(&client, &spec.network).await.map(|p| p.status).ok();
    let target = Target::Service { client: client.clone(), name: name.clone() };
    let jobs: Vec<_> = ops::job_list(&s, &c, None).jobs.into_iter().filter(|j| j.target == target).collect();
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
    let scaling = ops::service_scale_get(&s, &c, Some(client.as_str()), &name).await?;
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
                p { "The network " strong { (spec.network) } " is not applied yet: " em { "Apply" } " applies it first, as its own job. Or apply it alone:" }
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
        @if !scaling.containers.is_empty() {
            (replicas_section(&c, &name, &qs, &scaling))
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

/// The Replicas section: each replicated container's replicas (status, last CPU sample), its
/// scale policy, a form to set its count, and the autoscaler's recent decisions.
fn replicas_section(c: &Caller, name: &Id, qs: &str, scaling: &crate::views::ScaleView) -> Markup {
    let cpu = |p: Option<f64>| p.map(|p| format!("{p:.1}%")).unwrap_or_else(|| "—".to_owned());
    html! {
        section.card #replicas {
            h2 { "Replicas" }
            @for g in &scaling.containers {
                h3 { (g.container) ": " (g.replicas) " replica" @if g.replicas != 1 { "s" } }
                @if let Some(p) = &g.policy {
                    p.muted.policy { "Autoscaling between " (p.min) " and " (p.max) " replicas, target " (p.target_cpu_percent) "% CPU per replica." }
                } @else {
                    p.muted.policy { "A fixed count: no autoscaling." }
                }
                @if g.instances.is_empty() {
                    p.muted { "No replica recorded yet: apply the service." }
                } @else {
                    table.list.replicas {
                        thead { tr { th { "Replica" } th { "Container" } th { "Status" } th { "CPU" } th { "Sampled" } } }
                        tbody {
                            @for r in &g.instances {
                                tr {
                                    td { code { (r.address) } }
                                    td { code title=(r.id) { (r.id.chars().take(12).collect::<String>()) } }
                                    td { (r.status.as_deref().unwrap_or("gone")) }
                                    td.cpu { (cpu(r.cpu_percent)) }
                                    td { @if let Some(at) = r.sampled_at { (time(at)) } @else { span.muted { "not yet" } } }
                                }
                            }
                        }
                    }
                }
                form.inline.scale method="post" action=(format!("/services/{name}/scale{qs}")) {
                    (csrf_field(c))
                    input type="hidden" name="container" value=(g.container);
                    label for=(format!("replicas-{}", g.container)) { "Replicas" }
                    input #(format!("replicas-{}", g.container)) type="number" name="replicas" min=(g.policy.as_ref().map_or(1, |p| p.min)) max=(g.policy.as_ref().map_or(spawnit_model::spec::MAX_REPLICAS, |p| p.max)) value=(g.replicas) required;
                    button type="submit" { "Scale and apply" }
                }
            }
            h3 { "Autoscaler decisions" }
            @if scaling.decisions.is_empty() {
                p.muted { "No scaling decided since the server started." }
            } @else {
                table.list #decisions {
                    thead { tr { th { "When" } th { "Container" } th { "Change" } th { "Average CPU" } th { "Reason" } } }
                    tbody {
                        @for d in &scaling.decisions {
                            tr {
                                td { (time(d.at)) }
                                td { (d.container) }
                                td { (d.from) " → " (d.to) }
                                td { (format!("{:.1}%", d.avg_cpu_percent)) " (target " (d.target_cpu_percent) "%)" }
                                td { (d.reason) @if let Some(e) = &d.error { " " span.error { (e) } } }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn format_remaining(at: chrono::DateTime<Utc>) -> String {
    let s = (at - Utc::now()).num_seconds().max(0);
    format!("{}h {:02}m {:02}s", s / 3600, (s % 3600) / 60, s % 60)
}

/// The fields of a service's action forms: the lease length (`lease` only), the replica
/// count and its container (`scale` only).
#[derive(Deserialize)]
pub(super) struct ServiceActionForm {
    #[serde(default)]
    ttl: String,
    #[serde(default)]
    replicas: String,
    #[serde(default)]
    container: String,
}

pub(super) async fn service_action(
    State(s): State<AppState>,
    q: PageQuery,
    Path((name, action)): Path<(String, String)>,
    Posted { caller: c, form }: Posted<ServiceActionForm>,
) -> UiResult {
    let client = c.client_for(q.client.as_deref())?;
    let name = id_of("service", &name)?;
    let path = format!("/services/{name}");
    let asked = Some(client.as_str());
    let kind = match action.as_str() {
        "plan" => JobKind::Plan,
        "apply" => JobKind::Apply,
        "destroy" => JobKind::Destroy,
        "lease" => {
            let ttl = ops::Ttl::Text(form.ttl).duration()?;
            ops::lease_add(&s, &c, asked, &name, ttl).await?;
            return Ok(Redirect::to(&client_url(&c, &client, &path, None)).into_response());
        }
        "scale" => {
            // Another client's service does not exist, whatever the form holds.
            s.engine.service_spec(&client, &name).await?;
            let replicas = form.replicas.trim().parse::<u32>().map_err(|_| {
                UiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!(
                        "Replicas must be a whole number, not {:?}.",
                        form.replicas.chars().take(40).collect::<String>()
                    ),
                )
            })?;
            let container = (!form.container.is_empty()).then_some(form.container);
            let req = ops::ServiceScaleRequest { replicas: replicas.into(), container };
            let job = ops::service_scale(&s, &c, asked, &name, req).await?;
            return Ok(Redirect::to(&client_url(&c, &client, &path, Some(&job.id))).into_response());
        }
        "delete" => {
            ops::service_delete(&s, &c, asked, &name).await?;
            return Ok(Redirect::to("/").into_response());
        }
        other => {
            return Err(UiError::new(StatusCode::NOT_FOUND, format!("There is no action {other:?} on a service.")));
        }
    };
    let job = ops::service_job(&s, &c, asked, &name, kind).await?;
    Ok(Redirect::to(&client_url(&c, &client, &path, Some(&job.id))).into_response())
}

/// The cancel form's field: the page to return to.
#[derive(Deserialize)]
pub(super) struct JobCancelForm {
    #[serde(default)]
    back: String,
}

pub(super) async fn job_cancel(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Posted { caller: c, form }: Posted<JobCancelForm>,
) -> UiResult {
    let record = match ops::job_cancel(&s, &c, &id).await {
        Ok(record) => record,
        // Already finished: the page shows how it ended.
        Err(e) if e.status == StatusCode::CONFLICT => ops::job_get(&s, &c, &id).await?,
        Err(e) => return Err(e.into()),
    };
    let back = if safe_next(&form.back) { form.back } else { "/".to_owned() };
    let sep = if back.contains('?') { '&' } else { '?' };
    let job = form_urlencoded::Serializer::new(String::new()).append_pair("job", &record.id).finish();
    Ok(Redirect::to(&format!("{back}{sep}{job}")).into_response())
}
