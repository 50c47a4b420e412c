//! The web session seen from HTTP: signing a person in (a new session, its cookie, the audit
//! entry, the way on to a safe local page) and out, for the sign-in form, the sign-up form and
//! the OIDC callback alike. The session records themselves live in [`crate::accounts`]; the
//! cookie is read and written by [`crate::auth::cookie`] and [`crate::auth::cookie_build`].

use std::net::IpAddr;
use std::time::Duration;

use axum::response::Redirect;
use axum_extra::extract::cookie::CookieJar;
use spawnit_store::StoreError;

use crate::AppState;
use crate::accounts::{self, SESSION_COOKIE, SESSION_TTL, UserRecord};
use crate::auth::cookie_build;

/// Whether `next` is a local path to return to after signing in (never another site, never
/// signing out); the sign-in form and the OIDC sign-in both check with it.
pub fn safe_next(next: &str) -> bool {
    crate::auth::local_path(next) && !next.starts_with("/logout")
}

/// Starts a session for `user` (who signed in `how`, from `ip`): the session cookie, and the
/// way to `next` (the dashboard unless `next` is a [`safe_next`]).
pub async fn sign_in(
    s: &AppState,
    user: &UserRecord,
    ip: Option<IpAddr>,
    how: &str,
    next: &str,
) -> Result<(CookieJar, Redirect), StoreError> {
    let (session_id, _) = accounts::session_create(s.engine.store(), user).await?;
    let store = s.engine.store().clone();
    tokio::spawn(async move {
        if let Err(e) = accounts::sessions_prune(&store).await {
            tracing::warn!("cannot prune expired sessions: {e}");
        }
        if let Err(e) = accounts::RateLimit::prune(&store).await {
            tracing::warn!("cannot prune old sign-in failures: {e}");
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
    let cookie = cookie_build(SESSION_COOKIE, &session_id, "/", SESSION_TTL, s.secure_cookies);
    Ok((CookieJar::new().add(cookie), Redirect::to(next)))
}

/// Ends the session of the browser's cookie (if any) and removes the cookie.
pub async fn sign_out(s: &AppState, jar: CookieJar) -> Result<CookieJar, StoreError> {
    if let Some(session) = jar.get(SESSION_COOKIE) {
        accounts::session_delete(s.engine.store(), session.value()).await?;
    }
    Ok(jar.add(cookie_build(SESSION_COOKIE, "", "/", Duration::ZERO, s.secure_cookies)))
}
