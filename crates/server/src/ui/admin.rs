//! The admin page: users (and creating one), the sign-up setting, every client and service,
//! and the audit log. Admins only.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

use super::services::service_rows;
use super::{Posted, UiError, UiResult, Viewer, badge, client_query, csrf_field, page, time};
use crate::AppState;
use crate::accounts;
use crate::accounts::Role;
use crate::caller::Caller;
use crate::ops::{self, UserCreateRequest};
use crate::tasks::{Task, TaskRun};

async fn admin_render(s: &AppState, c: &Caller, message: Option<(bool, String)>) -> Result<Response, UiError> {
    let users = ops::user_list(s, c).await?.users;
    let clients = s.engine.store().client_list().await?;
    let mut services = Vec::new();
    for cl in &clients {
        for r in service_rows(s, c, cl).await? {
            services.push((cl.clone(), r));
        }
    }
    let entries = ops::audit_list(s, c, Some(100)).await?.entries;
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
                            td { @if u.password { "password " } @if u.oidc { "single sign-on" } }
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

pub(super) async fn admin_page(State(s): State<AppState>, Viewer(c): Viewer) -> UiResult {
    // Admins only: the lists it shows refuse anyone else.
    admin_render(&s, &c, None).await
}

/// The new user form's fields.
#[derive(Deserialize)]
pub(super) struct UserForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    client: String,
    #[serde(default = "member")]
    role: Role,
    /// Empty: the user signs in by single sign-on only.
    #[serde(default)]
    password: String,
    /// Empty: none recorded.
    #[serde(default)]
    email: String,
}

fn member() -> Role {
    Role::Member
}

pub(super) async fn admin_user_create(
    State(s): State<AppState>,
    Posted { caller: c, form }: Posted<UserForm>,
) -> UiResult {
    let req = UserCreateRequest {
        name: form.name.trim().to_owned(),
        client: form.client.trim().to_owned(),
        role: Some(form.role),
        password: Some(form.password).filter(|p| !p.is_empty()),
        email: Some(form.email.trim().to_owned()).filter(|e| !e.is_empty()),
    };
    match ops::user_create(&s, &c, req).await {
        Ok(u) => admin_render(&s, &c, Some((true, format!("User {} of client {} created.", u.name, u.client)))).await,
        Err(e) => {
            let mut resp = admin_render(&s, &c, Some((false, e.message))).await?;
            *resp.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            Ok(resp)
        }
    }
}

/// The sign-up setting's field: `true` when the box is ticked.
#[derive(Deserialize)]
pub(super) struct SettingsForm {
    #[serde(default)]
    signup: bool,
}

pub(super) async fn admin_settings(
    State(s): State<AppState>,
    Posted { caller: c, form }: Posted<SettingsForm>,
) -> UiResult {
    ops::signup_set(&s, &c, form.signup).await?;
    let what = if form.signup { "sign-up opened" } else { "sign-up closed" };
    admin_render(&s, &c, Some((true, format!("Saved: {what}.")))).await
}
