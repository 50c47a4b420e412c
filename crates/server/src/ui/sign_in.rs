//! The pages of signing in and out, and of signing up (when an admin opened it).

use std::net::IpAddr;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use maud::{Markup, html};
use serde::Deserialize;
use spawnit_model::Id;

use super::{NoFields, PageQuery, PeerIp, Posted, UiError, UiForm, UiResult, layout, sentence, url};
use crate::AppState;
use crate::accounts;
use crate::ops::audit;
use crate::session::{safe_next, sign_in, sign_out};

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
                a.button href=(url("/auth/oidc/start", &[("next", next)])) { "Sign in with single sign-on" }
            }
            @if signup {
                p { "No account? " a href="/signup" { "Create one" } "." }
            } @else {
                p.muted { "No account? Sign-up is off: ask an admin of this SpawnIt to create one." }
            }
        }
    }
}

pub(super) async fn login_page(State(s): State<AppState>, q: PageQuery) -> Response {
    let next = q.next.filter(|n| safe_next(n)).unwrap_or_else(|| "/".into());
    let message = q.error.as_deref().map(|e| format!("Single sign-on failed: {e}"));
    let signup = accounts::settings_get(s.engine.store()).await.map(|x| x.signup).unwrap_or(false);
    layout("Sign in", None, login_form(&next, message.as_deref(), "", s.oidc.is_some(), signup)).into_response()
}

/// The sign-in form's fields.
#[derive(Deserialize)]
pub(super) struct LoginForm {
    #[serde(default)]
    user: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
}

pub(super) async fn login_submit(
    State(s): State<AppState>,
    PeerIp(ip): PeerIp,
    UiForm(form): UiForm<LoginForm>,
) -> UiResult {
    let user = form.user.trim().to_owned();
    let password = form.password;
    let next = if safe_next(&form.next) { form.next } else { "/".into() };
    let ip_key = ip.unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let oidc = s.oidc.is_some();
    let signup = accounts::settings_get(s.engine.store()).await?.signup;
    if let Some(wait) = s.rate.blocked(&user, ip_key).await? {
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
            s.rate.succeeded(&user, ip_key).await?;
            Ok(sign_in(&s, &record, ip, "password", &next).await?.into_response())
        }
        None => {
            let tally = s.rate.failed(&user, ip_key).await?;
            crate::audit::sign_in_failed(s.engine.store(), &tally, ip, "password", "wrong user name or password").await;
            let m = "Wrong user name or password.";
            Ok((StatusCode::UNAUTHORIZED, layout("Sign in", None, login_form(&next, Some(m), &user, oidc, signup)))
                .into_response())
        }
    }
}

pub(super) async fn logout(State(s): State<AppState>, jar: CookieJar, posted: Posted<NoFields>) -> UiResult {
    let c = posted.caller;
    let jar = sign_out(&s, jar).await?;
    audit(&s, &c, &c.client, "sign_out", format!("user {}", c.user), "").await;
    Ok((jar, Redirect::to("/login")).into_response())
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

pub(super) async fn signup_page(State(s): State<AppState>) -> UiResult {
    signup_open(&s).await?;
    Ok(layout("Create an account", None, signup_form(None, "")).into_response())
}

/// The sign-up form's fields.
#[derive(Deserialize)]
pub(super) struct SignupForm {
    #[serde(default)]
    user: String,
    #[serde(default)]
    password: String,
}

pub(super) async fn signup_submit(
    State(s): State<AppState>,
    PeerIp(ip): PeerIp,
    UiForm(form): UiForm<SignupForm>,
) -> UiResult {
    signup_open(&s).await?;
    let user = form.user.trim().to_owned();
    let refuse = |m: String| {
        Ok((StatusCode::UNPROCESSABLE_ENTITY, layout("Create an account", None, signup_form(Some(&m), &user)))
            .into_response())
    };
    let name = match Id::parse(&user) {
        Ok(n) => n,
        Err(e) => return refuse(format!("Not a valid user name: {e}.")),
    };
    match accounts::signup(s.engine.store(), &name, &form.password).await {
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
            Ok(sign_in(&s, &record, ip, "sign-up", "/").await?.into_response())
        }
        Err(accounts::AccountError::Exists(_)) => refuse(format!("The name {name} is taken: choose another one.")),
        Err(e @ accounts::AccountError::WeakPassword) => refuse(sentence(&e.to_string())),
        Err(accounts::AccountError::Store(e)) => Err(e.into()),
        Err(e) => Err(UiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
}
