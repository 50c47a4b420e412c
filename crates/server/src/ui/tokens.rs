//! The API tokens page: a person's tokens, creating one (shown once) and revoking one.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::{NoFields, Posted, UiError, UiResult, Viewer, csrf_field, page, time};
use crate::AppState;
use crate::api::audit;
use crate::caller::Caller;

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

pub(super) async fn tokens_page(State(s): State<AppState>, Viewer(c): Viewer) -> UiResult {
    tokens_render(&s, &c, None, None).await
}

/// The new token form's field.
#[derive(Deserialize)]
pub(super) struct TokenForm {
    #[serde(default)]
    name: String,
}

pub(super) async fn token_create(State(s): State<AppState>, Posted { caller: c, form }: Posted<TokenForm>) -> UiResult {
    let name = match crate::api::token_name_check(&form.name) {
        Ok(n) => n,
        Err(e) => return tokens_render(&s, &c, None, Some(e.message)).await,
    };
    let (token, record) = crate::auth::token_create_named(s.engine.store(), &c.user, &c.client, c.role, &name).await?;
    audit(&s, &c, &c.client.clone(), "token_create", format!("token {}", record.id), &name).await;
    tokens_render(&s, &c, Some((if name.is_empty() { "(unnamed)".into() } else { name }, token)), None).await
}

pub(super) async fn token_revoke(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Posted { caller: c, .. }: Posted<NoFields>,
) -> UiResult {
    match crate::auth::token_revoke(s.engine.store(), &id, Some(&c.user)).await? {
        Some(r) => {
            audit(&s, &c, &r.client, "token_revoke", format!("token {}", r.id), &r.name).await;
            Ok(Redirect::to("/tokens").into_response())
        }
        None => Err(UiError::new(StatusCode::NOT_FOUND, "There is no such token.")),
    }
}
