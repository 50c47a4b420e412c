//! The API tokens page: a person's tokens, creating one (shown once) and revoking one.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::{NoFields, Posted, UiError, UiResult, Viewer, csrf_field, page, time};
use crate::AppState;
use crate::caller::Caller;
use crate::ops::{self, TokenCreateRequest};

async fn tokens_render(
    s: &AppState,
    c: &Caller,
    created: Option<(String, String)>,
    error: Option<String>,
) -> Result<Response, UiError> {
    let tokens = ops::token_list(s, c).await?.tokens;
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
    match ops::token_create(&s, &c, TokenCreateRequest { name: form.name }).await {
        Ok(created) => {
            let name = if created.name.is_empty() { "(unnamed)".to_owned() } else { created.name };
            tokens_render(&s, &c, Some((name, created.token.unwrap_or_default())), None).await
        }
        Err(e) if e.status == StatusCode::UNPROCESSABLE_ENTITY => tokens_render(&s, &c, None, Some(e.message)).await,
        Err(e) => Err(e.into()),
    }
}

pub(super) async fn token_revoke(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Posted { caller: c, .. }: Posted<NoFields>,
) -> UiResult {
    ops::token_revoke(&s, &c, &id).await?;
    Ok(Redirect::to("/tokens").into_response())
}
