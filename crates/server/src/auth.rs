//! API tokens: bearer tokens stored only as SHA-256 hashes (`auth/tokens/<id>.json`), each
//! belonging to a user of one client with a role, with a name, listed and revoked by id. The
//! [`Caller`] extractor authenticates every API request — by bearer token, or by the web
//! session cookie (then a state-changing request must carry the session's CSRF token in the
//! `X-CSRF-Token` header) — and scopes it to the caller's client.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use spawnit_model::Id;
use spawnit_store::{Collection, Key, PutCondition, Store, StoreError};
use subtle::ConstantTimeEq;

use crate::AppState;
use crate::accounts::Role;
use crate::caller::Caller;
use crate::error::ApiError;

/// A stored token: its hash, never the token.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TokenRecord {
    /// The token's id (the first 40 hex digits of its hash): what lists show and revoke takes.
    #[serde(default)]
    pub id: String,
    /// What the user called it.
    #[serde(default)]
    pub name: String,
    /// Hex SHA-256 of the token.
    pub hash: String,
    pub user: String,
    pub client: Id,
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

/// The prefix of every token, so a leaked one is recognizable.
const TOKEN_PREFIX: &str = "spawnit_";

fn hash_hex(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// The record id of a token: the first 40 hex digits of its hash (a valid store id).
fn record_id(hash: &str) -> Option<Id> {
    Id::parse(hash.get(..40)?).ok()
}

/// Creates a token for `user` and returns it; only its hash is stored.
pub async fn token_create(store: &Store, user: &str, client: &Id, role: Role) -> Result<String, StoreError> {
    token_create_named(store, user, client, role, "").await.map(|(token, _)| token)
}

/// Creates a named token for `user`; returns the token (shown once) and its record.
pub async fn token_create_named(
    store: &Store,
    user: &str,
    client: &Id,
    role: Role,
    name: &str,
) -> Result<(String, TokenRecord), StoreError> {
    let token = format!("{TOKEN_PREFIX}{}", crate::accounts::random_token(40));
    let hash = hash_hex(&token);
    let id = record_id(&hash).expect("a SHA-256 hex digest has 64 digits");
    let record = TokenRecord {
        id: id.to_string(),
        name: name.to_owned(),
        hash: hash.clone(),
        user: user.to_owned(),
        client: client.clone(),
        role,
        created_at: Utc::now(),
    };
    store.put_json(&Key::record(Collection::Tokens, &id), &record, PutCondition::Absent).await?;
    Ok((token, record))
}

/// Why a token could not be made for a user.
#[derive(Debug, thiserror::Error)]
pub enum UserTokenError {
    #[error("there is no user {0}: create it first (`spawnit user create {0} --client <client>`)")]
    NoUser(Id),
    #[error("user {user} belongs to client {client}, not {asked}: a user's token acts on the user's own client")]
    OtherClient { user: Id, client: Id, asked: Id },
    #[error("user {0} is a member, not an admin: a token never has more rights than its user")]
    NotAdmin(Id),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Creates a token for the existing user `user`, carrying that user's client and role. The
/// optional `client` and `admin` only check what the caller expects: a `client` other than the
/// user's, or `admin` for a member, is refused and nothing is created.
pub async fn token_create_for_user(
    store: &Store,
    user: &Id,
    client: Option<&Id>,
    admin: bool,
) -> Result<(String, TokenRecord), UserTokenError> {
    let record = crate::accounts::user_get(store, user).await?.ok_or_else(|| UserTokenError::NoUser(user.clone()))?;
    if let Some(asked) = client
        && asked != &record.client
    {
        return Err(UserTokenError::OtherClient { user: user.clone(), client: record.client, asked: asked.clone() });
    }
    if admin && record.role != Role::Admin {
        return Err(UserTokenError::NotAdmin(user.clone()));
    }
    Ok(token_create_named(store, user.as_str(), &record.client, record.role, "").await?)
}

/// The tokens of `user` (every token when `None`), oldest first.
pub async fn token_list(store: &Store, user: Option<&str>) -> Result<Vec<TokenRecord>, StoreError> {
    let mut out = Vec::new();
    for id in store.record_ids(Collection::Tokens).await? {
        let Some(mut r) = store.get_json::<TokenRecord>(&Key::record(Collection::Tokens, &id)).await?.map(|v| v.value)
        else {
            continue;
        };
        r.id = id.to_string();
        if user.is_none_or(|u| u == r.user) {
            out.push(r);
        }
    }
    out.sort_by_key(|t| t.created_at);
    Ok(out)
}

/// Revokes the token `id` of `user` (any user's when `None`); `false` when there is none.
pub async fn token_revoke(store: &Store, id: &str, user: Option<&str>) -> Result<Option<TokenRecord>, StoreError> {
    let Ok(id) = Id::parse(id) else { return Ok(None) };
    let key = Key::record(Collection::Tokens, &id);
    let Some(record) = store.get_json::<TokenRecord>(&key).await?.map(|v| v.value) else { return Ok(None) };
    if user.is_some_and(|u| u != record.user) {
        return Ok(None);
    }
    store.delete(&key).await?;
    Ok(Some(record))
}

/// The record of a presented token, `None` if it is unknown.
pub async fn token_verify(store: &Store, token: &str) -> Result<Option<TokenRecord>, StoreError> {
    if !token.starts_with(TOKEN_PREFIX) || token.len() > 200 {
        return Ok(None);
    }
    let hash = hash_hex(token);
    let Some(id) = record_id(&hash) else { return Ok(None) };
    let record = store.get_json::<TokenRecord>(&Key::record(Collection::Tokens, &id)).await?;
    Ok(record.map(|v| v.value).filter(|r| r.hash == hash))
}

/// How long a replica's claim to create the first admin token keeps the others from making
/// one: a claim older than this on a store still without tokens (every token revoked, or the
/// claimer died before writing its token) is taken over.
const BOOTSTRAP_CLAIM_TTL: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

/// On a store without any token, creates the first admin token and returns it (to print once).
///
/// Several replicas starting at once on an empty store make one token between them: each first
/// claims `settings/first-admin-token` with a conditional write, and only the one whose write
/// succeeds creates the token; the others return `None`.
pub async fn admin_token_bootstrap(store: &Store) -> Result<Option<String>, StoreError> {
    if !store.record_ids(Collection::Tokens).await?.is_empty() {
        return Ok(None);
    }
    let claim_key = Key::record(Collection::Settings, &Id::parse("first-admin-token").expect("valid id"));
    let claim = serde_json::json!({ "claimed_at": Utc::now() });
    let condition = match store.get_json::<serde_json::Value>(&claim_key).await? {
        None => PutCondition::Absent,
        Some(found) => {
            let at =
                found.value.get("claimed_at").and_then(|v| serde_json::from_value::<DateTime<Utc>>(v.clone()).ok());
            if at.is_some_and(|at| Utc::now() - at < BOOTSTRAP_CLAIM_TTL) {
                return Ok(None);
            }
            PutCondition::Matches(found.version)
        }
    };
    match store.put_json(&claim_key, &claim, condition).await {
        Ok(_) => {}
        Err(StoreError::Conflict { .. }) => return Ok(None),
        Err(e) => return Err(e),
    }
    let client = Id::parse("default").expect("valid id");
    token_create(store, "admin", &client, Role::Admin).await.map(Some)
}

/// The value of cookie `name` in the request, if any.
pub fn cookie(parts: &Parts, name: &str) -> Option<String> {
    CookieJar::from_headers(&parts.headers).get(name).map(|c| c.value().to_owned())
}

/// A cookie of SpawnIt: `HttpOnly`, `SameSite=Lax`, sent back on `path` only, kept for
/// `max_age` (zero and an empty `value`: removes it), `Secure` when `secure`. Every cookie
/// SpawnIt sets holds an opaque random value that the store knows only by its hash (a session
/// id, a sign-in's OIDC state), so a plain cookie suffices: a forged or altered value matches
/// no record, and a signed or encrypted jar would add a server key for every replica to share
/// and rotate without protecting anything more.
pub fn cookie_build(name: &str, value: &str, path: &str, max_age: Duration, secure: bool) -> Cookie<'static> {
    let max_age = time::Duration::try_from(max_age).unwrap_or(time::Duration::MAX);
    Cookie::build((name.to_owned(), value.to_owned()))
        .path(path.to_owned())
        .http_only(true)
        .same_site(SameSite::Lax)
        .max_age(max_age)
        .secure(secure)
        .build()
}

/// The address the request came from.
pub fn peer_ip(parts: &Parts) -> Option<IpAddr> {
    parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())
}

/// The caller of a request with the session cookie, `None` without a valid one.
pub async fn session_caller(parts: &Parts, state: &AppState) -> Result<Option<Caller>, ApiError> {
    let Some(session_id) = cookie(parts, crate::accounts::SESSION_COOKIE) else { return Ok(None) };
    let Some(session) = crate::accounts::session_get(state.engine.store(), &session_id).await? else { return Ok(None) };
    Ok(Some(Caller {
        user: session.user.to_string(),
        client: session.client.clone(),
        role: session.role,
        ip: peer_ip(parts),
        session: Some(session),
    }))
}

/// Whether `target` is a local path of this site, safe to send a browser to (after signing in,
/// by the sign-in form and by the OIDC callback alike): printable ASCII starting with one `/`,
/// with no `//`, no backslash, no space or control character (browsers drop tabs and newlines,
/// so `/\t/evil.com` would become `//evil.com`, another site), and a valid path and query.
pub fn local_path(target: &str) -> bool {
    target.starts_with('/')
        && target.len() <= 2048
        && target.bytes().all(|b| b.is_ascii_graphic())
        && !target.contains("//")
        && !target.contains('\\')
        && target.parse::<axum::http::uri::PathAndQuery>().is_ok()
}

/// Whether two secrets are equal, in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Caller, ApiError> {
        let header = parts.headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        if let Some(token) = header.and_then(|h| h.strip_prefix("Bearer ")).map(str::trim) {
            return match token_verify(state.engine.store(), token).await? {
                Some(r) => {
                    Ok(Caller { user: r.user, client: r.client, role: r.role, ip: peer_ip(parts), session: None })
                }
                None => Err(ApiError::unauthorized("unknown or revoked token")),
            };
        }
        let Some(caller) = session_caller(parts, state).await? else {
            return Err(ApiError::unauthorized(
                "missing bearer token: send `Authorization: Bearer <token>` (or sign in to the web UI)",
            ));
        };
        if !parts.method.is_safe() {
            let sent = parts.headers.get("x-csrf-token").and_then(|v| v.to_str().ok()).unwrap_or("");
            let expected = caller.session.as_ref().map(|s| s.csrf.as_str()).unwrap_or("");
            if !same_secret(sent, expected) {
                return Err(ApiError::new(
                    axum::http::StatusCode::FORBIDDEN,
                    "csrf",
                    "a request made with the session cookie must send its CSRF token in X-CSRF-Token",
                ));
            }
        }
        Ok(caller)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::http::Request;

    use super::{cookie, cookie_build, local_path, same_secret};

    #[test]
    fn only_local_paths_are_redirect_targets() {
        for ok in ["/", "/catalog", "/services/web?client=acme", "/jobs/1#log"] {
            assert!(local_path(ok), "{ok:?} refused");
        }
        for bad in [
            "",
            "catalog",
            "//evil.com",
            "/\t/evil.com",
            "/\n/evil.com",
            "/\\evil.com",
            "\\\\evil.com",
            "/a//b",
            "https://evil.com",
            "javascript:alert(1)",
            "/ /evil.com",
            "/\u{0}x",
            "/caf\u{e9}",
            " /x",
        ] {
            assert!(!local_path(bad), "{bad:?} accepted");
        }
    }

    #[test]
    fn cookies_are_built_http_only_lax_and_read_back() {
        let set = cookie_build("spawnit_session", "abc", "/", Duration::from_secs(60), true).to_string();
        for part in ["spawnit_session=abc", "HttpOnly", "SameSite=Lax", "Secure", "Path=/", "Max-Age=60"] {
            assert!(set.contains(part), "{part} missing in {set}");
        }
        let removal = cookie_build("spawnit_session", "", "/", Duration::ZERO, false).to_string();
        assert!(removal.starts_with("spawnit_session=;") && removal.contains("Max-Age=0"), "{removal}");
        assert!(!removal.contains("Secure"), "{removal}");
        let (parts, ()) = Request::builder()
            .header("cookie", "other=1; spawnit_session=abc")
            .header("cookie", "late=2")
            .body(())
            .unwrap()
            .into_parts();
        assert_eq!(cookie(&parts, "spawnit_session").as_deref(), Some("abc"));
        assert_eq!(cookie(&parts, "late").as_deref(), Some("2"));
        assert_eq!(cookie(&parts, "missing"), None);
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("token", "token"));
        for other in ["", "toke", "tokens", "tokeN"] {
            assert!(!same_secret("token", other), "{other}");
        }
    }
}
