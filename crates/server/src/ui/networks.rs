//! The networks page: a client's networks, creating one, and planning, applying or
//! destroying it.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use maud::html;
use serde::Deserialize;
use spawnit_model::Id;

use super::{PageQuery, Posted, UiError, UiResult, Viewer, badge, client_query, csrf_field, id_of, job_rows, page};
use crate::AppState;
use crate::jobs::{JobKind, Target};
use crate::ops::{self, NetworkCreateRequest};

pub(super) async fn networks_page(State(s): State<AppState>, Viewer(c): Viewer, q: PageQuery) -> UiResult {
    let client = c.client_for(q.client.as_deref())?;
    let qs = client_query(&c, &client);
    let rows = ops::network_list(&s, &c, Some(client.as_str())).await?.networks;
    let jobs: Vec<_> = ops::job_list(&s, &c, None)
        .jobs
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
                @for network in &rows {
                    @let n = &network.name;
                    tr {
                        td { (n) }
                        td { (badge(network.status.as_str(), None)) }
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

/// The new network form's field.
#[derive(Deserialize)]
pub(super) struct NetworkForm {
    #[serde(default)]
    name: String,
}

pub(super) async fn network_create(
    State(s): State<AppState>,
    q: PageQuery,
    Posted { caller: c, form }: Posted<NetworkForm>,
) -> UiResult {
    let client = c.client_for(q.client.as_deref())?;
    let req = NetworkCreateRequest { name: form.name.trim().to_owned() };
    ops::network_create(&s, &c, Some(client.as_str()), req).await?;
    Ok(Redirect::to(&format!("/networks{}", client_query(&c, &client))).into_response())
}

/// The network action forms' field: the service page to return to, when sent from one.
#[derive(Deserialize)]
pub(super) struct NetworkActionForm {
    #[serde(default)]
    back: String,
}

pub(super) async fn network_action(
    State(s): State<AppState>,
    q: PageQuery,
    Path((name, action)): Path<(String, String)>,
    Posted { caller: c, form }: Posted<NetworkActionForm>,
) -> UiResult {
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
    ops::network_job(&s, &c, Some(client.as_str()), &name, kind).await?;
    let qs = client_query(&c, &client);
    match Id::parse(&form.back) {
        Ok(service) => Ok(Redirect::to(&format!("/services/{service}{qs}")).into_response()),
        Err(_) => Ok(Redirect::to(&format!("/networks{qs}")).into_response()),
    }
}
