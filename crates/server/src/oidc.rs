//! OIDC sign-in for the web UI: the authorization code flow with PKCE (S256), `state` and
//! `nonce`, against any OpenID provider (e.g. Keycloak) found by discovery from its issuer URL.
//!
//! `/auth/oidc/start` stores the pending sign-in (state hash, nonce, PKCE verifier, where to go
//! next) in the store and binds it to the browser with a short-lived cookie holding the state,
//! then sends the browser to the provider. `/auth/oidc/callback` checks the state against the
//! cookie, exchanges the code (with the verifier and the client secret), verifies the ID
//! token's signature against the provider's JWKS and its `iss`, `aud`, `exp` and `nonce`, then
//! maps the person to a SpawnIt user: the user already linked to this `iss`+`sub`; else the
//! user an admin recorded with exactly the token's e-mail address, when the provider marks it
//! `email_verified` (linked on first sign-in); else, when a client claim is configured and
//! present, a new member of that client. Never by a user name, which the person controls at the
//! provider. Anyone else is refused with a message saying to ask an admin.

use std::time::Duration;

use axum::Router;
use axum::extract::{FromRequestParts, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use spawnit_model::Id;
use spawnit_store::{Collection, Key, PutCondition, Store, StoreError};

use crate::AppState;
use crate::accounts::{self, Role, random_token};
use crate::auth::{cookie, peer_ip};

/// The OIDC settings.
#[derive(Clone, Debug)]
pub struct OidcConfig {
    /// The issuer URL, e.g. `https://keycloak.example.com/realms/spawnit`.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    /// The ID token claim naming the user's client, e.g. `spawnit_client`; `None`: users are
    /// mapped by an admin only.
    pub client_claim: Option<String>,
    /// SpawnIt's public URL, for the redirect URI; `None`: from the request's Host header.
    pub public_url: Option<String>,
}

/// Why an OIDC sign-in failed.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("the identity provider cannot be reached: {0}")]
    Http(#[from] reqwest::Error),
    #[error("the identity provider's discovery document is wrong: {0}")]
    Discovery(String),
    #[error("the sign-in request is unknown or expired: start again")]
    State,
    #[error("the identity provider refused: {0}")]
    Provider(String),
    #[error("the ID token is not valid: {0}")]
    Token(String),
    #[error("{0}")]
    NotMapped(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    /// The algorithms the provider signs ID tokens with (OpenID Connect Discovery: RS256 when
    /// absent).
    #[serde(default)]
    id_token_signing_alg_values_supported: Vec<String>,
}

/// The asymmetric algorithms SpawnIt verifies (never `none`, never an HMAC whose secret
/// would be the provider's public key).
const ALGORITHMS: [Algorithm; 6] =
    [Algorithm::RS256, Algorithm::RS384, Algorithm::RS512, Algorithm::ES256, Algorithm::ES384, Algorithm::PS256];

/// The algorithms an ID token of this provider may be signed with: those it announces that
/// SpawnIt verifies.
fn provider_algorithms(d: &Discovery) -> Vec<Algorithm> {
    let announced: Vec<Algorithm> = if d.id_token_signing_alg_values_supported.is_empty() {
        vec![Algorithm::RS256]
    } else {
        d.id_token_signing_alg_values_supported.iter().filter_map(|a| a.parse().ok()).collect()
    };
    announced.into_iter().filter(|a| ALGORITHMS.contains(a)).collect()
}

/// A sign-in in progress, as stored.
#[derive(Serialize, Deserialize)]
struct Pending {
    state_hash: String,
    nonce: String,
    verifier: String,
    next: String,
    redirect_uri: String,
    expires_at: DateTime<Utc>,
}

const STATE_COOKIE: &str = "spawnit_oidc_state";
const PENDING_TTL: Duration = Duration::from_secs(600);

pub fn routes() -> Router<AppState> {
    Router::new().route("/auth/oidc/start", get(start)).route("/auth/oidc/callback", get(callback))
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(15)).build().unwrap_or_default()
}

fn hash_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn pending_key(state: &str) -> (String, Key) {
    let hash = hash_hex(state);
    let id = Id::parse(&hash[..40]).expect("hex digits are a valid id");
    (hash, Key::record(Collection::OidcPending, &id))
}

async fn discover(cfg: &OidcConfig) -> Result<Discovery, OidcError> {
    let url = format!("{}/.well-known/openid-configuration", cfg.issuer.trim_end_matches('/'));
    let d: Discovery = http().get(&url).send().await?.error_for_status()?.json().await?;
    if d.issuer.trim_end_matches('/') != cfg.issuer.trim_end_matches('/') {
        return Err(OidcError::Discovery(format!("issuer {} is not the configured {}", d.issuer, cfg.issuer)));
    }
    Ok(d)
}

fn redirect_uri(cfg: &OidcConfig, parts: &axum::http::request::Parts, secure: bool) -> String {
    let base = match &cfg.public_url {
        Some(u) => u.trim_end_matches('/').to_owned(),
        None => {
            let host = parts.headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
            format!("{}://{host}", if secure { "https" } else { "http" })
        }
    };
    format!("{base}/auth/oidc/callback")
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn query_param(parts: &axum::http::request::Parts, name: &str) -> Option<String> {
    let q = parts.uri.query()?;
    q.split('&').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        (k == name).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn failed(message: impl std::fmt::Display) -> Response {
    Redirect::to(&format!("/login?error={}", encode(&message.to_string()))).into_response()
}

struct RawParts(axum::http::request::Parts);

impl<S: Send + Sync> FromRequestParts<S> for RawParts {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<RawParts, Self::Rejection> {
        Ok(RawParts(parts.clone()))
    }
}

async fn start(State(s): State<AppState>, RawParts(parts): RawParts) -> Response {
    let Some(cfg) = s.oidc.clone() else {
        return crate::ui::UiError::new(StatusCode::NOT_FOUND, "Single sign-on is not configured on this SpawnIt.")
            .into_response();
    };
    match start_inner(&s, &cfg, &parts).await {
        Ok(r) => r,
        Err(e) => failed(e),
    }
}

async fn start_inner(
    s: &AppState,
    cfg: &OidcConfig,
    parts: &axum::http::request::Parts,
) -> Result<Response, OidcError> {
    let d = discover(cfg).await?;
    let state = random_token(32);
    let nonce = random_token(32);
    let verifier = random_token(64);
    let challenge = b64(&Sha256::digest(verifier.as_bytes()));
    let next = query_param(parts, "next").filter(|n| crate::session::safe_next(n)).unwrap_or_else(|| "/".into());
    let redirect_uri = redirect_uri(cfg, parts, s.secure_cookies);
    let (state_hash, key) = pending_key(&state);
    let pending = Pending {
        state_hash,
        nonce: nonce.clone(),
        verifier,
        next,
        redirect_uri: redirect_uri.clone(),
        expires_at: Utc::now() + chrono::Duration::from_std(PENDING_TTL).unwrap_or(chrono::Duration::minutes(10)),
    };
    s.engine.store().put_json(&key, &pending, PutCondition::Absent).await?;
    let store = s.engine.store().clone();
    tokio::spawn(async move { pending_prune(&store).await });
    let sep = if d.authorization_endpoint.contains('?') { '&' } else { '?' };
    let url = format!(
        "{}{sep}response_type=code&client_id={}&redirect_uri={}&scope={}&state={}&nonce={}&code_challenge={}&code_challenge_method=S256",
        d.authorization_endpoint,
        encode(&cfg.client_id),
        encode(&redirect_uri),
        encode("openid profile email"),
        encode(&state),
        encode(&nonce),
        encode(&challenge),
    );
    let secure = if s.secure_cookies { "; Secure" } else { "" };
    let mut resp = Redirect::to(&url).into_response();
    let cookie = format!("{STATE_COOKIE}={state}; Path=/auth/oidc; HttpOnly; SameSite=Lax; Max-Age=600{secure}");
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(resp)
}

/// Removes abandoned sign-ins (best effort).
async fn pending_prune(store: &Store) {
    let Ok(ids) = store.record_ids(Collection::OidcPending).await else { return };
    for id in ids {
        let key = Key::record(Collection::OidcPending, &id);
        if let Ok(Some(p)) = store.get_json::<Pending>(&key).await
            && p.value.expires_at < Utc::now()
        {
            let _ = store.delete(&key).await;
        }
    }
}

async fn callback(State(s): State<AppState>, RawParts(parts): RawParts) -> Response {
    let Some(cfg) = s.oidc.clone() else {
        return crate::ui::UiError::new(StatusCode::NOT_FOUND, "Single sign-on is not configured on this SpawnIt.")
            .into_response();
    };
    let ip = peer_ip(&parts);
    match callback_inner(&s, &cfg, &parts).await {
        Ok((user, next)) => {
            let mut resp = match crate::session::sign_in(&s, &user, ip, "oidc", &next).await {
                Ok(r) => r.into_response(),
                Err(e) => return crate::ui::UiError::from(e).into_response(),
            };
            resp.headers_mut().append(
                header::SET_COOKIE,
                HeaderValue::from_static("spawnit_oidc_state=; Path=/auth/oidc; HttpOnly; SameSite=Lax; Max-Age=0"),
            );
            resp
        }
        Err(e) => {
            let tally = s.rate.tally("-", ip.unwrap_or(std::net::IpAddr::from([0, 0, 0, 0])));
            crate::audit::sign_in_failed(s.engine.store(), &tally, ip, "oidc", &e.to_string()).await;
            failed(e)
        }
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    id_token: Option<String>,
}

async fn callback_inner(
    s: &AppState,
    cfg: &OidcConfig,
    parts: &axum::http::request::Parts,
) -> Result<(accounts::UserRecord, String), OidcError> {
    if let Some(err) = query_param(parts, "error") {
        let description = query_param(parts, "error_description").unwrap_or_default();
        return Err(OidcError::Provider(format!("{err} {description}").trim().to_owned()));
    }
    let state = query_param(parts, "state").ok_or(OidcError::State)?;
    let code = query_param(parts, "code").ok_or(OidcError::Provider("no authorization code".into()))?;
    // The state must be the one this browser started with.
    let bound = cookie(parts, STATE_COOKIE).unwrap_or_default();
    if !crate::auth::same_secret(&bound, &state) {
        return Err(OidcError::State);
    }
    let store = s.engine.store();
    let (state_hash, key) = pending_key(&state);
    let pending = store.get_json::<Pending>(&key).await?.map(|v| v.value).ok_or(OidcError::State)?;
    store.delete(&key).await?;
    if pending.state_hash != state_hash || pending.expires_at < Utc::now() {
        return Err(OidcError::State);
    }

    let d = discover(cfg).await?;
    let resp = http()
        .post(&d.token_endpoint)
        .basic_auth(&cfg.client_id, Some(&cfg.client_secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", pending.redirect_uri.as_str()),
            ("code_verifier", pending.verifier.as_str()),
            ("client_id", cfg.client_id.as_str()),
        ])
        .send()
        .await?;
    if !resp.status().is_success() {
        let status = resp.status();
        let body: String = resp.text().await.unwrap_or_default().chars().take(300).collect();
        return Err(OidcError::Provider(format!("token exchange answered {status}: {body}")));
    }
    let answer: TokenAnswer = resp.json().await?;
    let id_token = answer.id_token.ok_or(OidcError::Token("the token answer has no id_token".into()))?;
    let claims = id_token_verify(cfg, &d, &id_token, &pending.nonce).await?;
    let user = user_for(store, cfg, &d.issuer, &claims).await?;
    Ok((user, pending.next))
}

/// Checks the ID token's signature against the provider's keys, and its issuer, audience,
/// expiry and nonce; returns its claims.
async fn id_token_verify(cfg: &OidcConfig, d: &Discovery, token: &str, nonce: &str) -> Result<Value, OidcError> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| OidcError::Token(e.to_string()))?;
    let allowed = provider_algorithms(d);
    if !allowed.contains(&header.alg) {
        return Err(OidcError::Token(format!(
            "the token is signed with {:?}, not with an algorithm of the provider ({allowed:?})",
            header.alg
        )));
    }
    let jwks: JwkSet = http().get(&d.jwks_uri).send().await?.error_for_status()?.json().await?;
    let jwk = match &header.kid {
        Some(kid) => jwks.find(kid),
        None => jwks.keys.first(),
    }
    .ok_or(OidcError::Token("no key of the provider matches the token".into()))?;
    if let Some(key_alg) = jwk.common.key_algorithm
        && format!("{key_alg:?}") != format!("{:?}", header.alg)
    {
        return Err(OidcError::Token(format!("the token is signed with {:?}, its key is for {key_alg:?}", header.alg)));
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|e| OidcError::Token(e.to_string()))?;
    let mut validation = Validation::new(header.alg);
    validation.set_audience(&[&cfg.client_id]);
    validation.set_issuer(&[&d.issuer]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.leeway = 30;
    let data = jsonwebtoken::decode::<Value>(token, &key, &validation).map_err(|e| OidcError::Token(e.to_string()))?;
    let claims = data.claims;
    if claims.get("nonce").and_then(Value::as_str) != Some(nonce) {
        return Err(OidcError::Token("the nonce does not match this sign-in".into()));
    }
    Ok(claims)
}

/// The name of a new user created from a client claim: `preferred_username`, else the part of
/// `email` before `@`, else `sub`, lowercased and reduced to an id. It only ever names a user
/// that does not exist yet: an existing user is never found by it.
fn name_from(claims: &Value) -> Option<Id> {
    let raw = ["preferred_username", "email", "sub"].iter().find_map(|c| claims.get(*c).and_then(Value::as_str))?;
    let raw = raw.split('@').next().unwrap_or(raw).to_lowercase();
    let cleaned: String = raw.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).take(63).collect();
    Id::parse(cleaned.trim_matches('-')).ok()
}

/// The e-mail address of the token when the provider says it verified it (`email_verified`
/// is JSON `true`), exactly as given.
fn verified_email(claims: &Value) -> Option<&str> {
    let verified = claims.get("email_verified").and_then(Value::as_bool) == Some(true);
    claims.get("email").and_then(Value::as_str).filter(|_| verified)
}

/// The SpawnIt user of a verified ID token: the user linked to this `iss`+`sub`; else the user
/// an admin recorded with exactly this verified e-mail address and not linked yet (linked now);
/// else, with a client claim, a new member of that client (refused if the name is taken).
/// Nobody is ever found by a name the person chose at the provider.
async fn user_for(
    store: &Store,
    cfg: &OidcConfig,
    issuer: &str,
    claims: &Value,
) -> Result<accounts::UserRecord, OidcError> {
    let sub = claims.get("sub").and_then(Value::as_str).ok_or(OidcError::Token("no sub".into()))?;
    let subject = format!("{issuer}#{sub}");
    let users = accounts::user_list(store).await?;
    if let Some(u) = users.iter().find(|u| u.oidc_subject.as_deref() == Some(subject.as_str())) {
        return Ok(u.clone());
    }
    if let Some(email) = verified_email(claims)
        && let Some(u) = users.iter().find(|u| u.email.as_deref() == Some(email))
    {
        if u.oidc_subject.is_some() {
            return Err(OidcError::NotMapped(format!(
                "the SpawnIt user with the e-mail address {email} is linked to another single sign-on account: ask an admin"
            )));
        }
        let mut u = u.clone();
        u.oidc_subject = Some(subject);
        store.put_json(&Key::record(Collection::Users, &u.name), &u, PutCondition::Overwrite).await?;
        return Ok(u);
    }
    let client = cfg.client_claim.as_deref().and_then(|c| claims.get(c)).and_then(Value::as_str);
    let Some(client) = client.and_then(|c| Id::parse(c).ok()) else {
        return Err(OidcError::NotMapped(
            "your single sign-on account is not mapped to a SpawnIt client: ask an admin to create your user with your verified e-mail address"
                .into(),
        ));
    };
    let name =
        name_from(claims).ok_or(OidcError::NotMapped("the identity provider gave no usable user name".into()))?;
    match accounts::user_create(store, &name, &client, Role::Member, None, Some(subject)).await {
        Ok(u) => Ok(u),
        Err(accounts::AccountError::Exists(_)) => Err(OidcError::NotMapped(format!(
            "the SpawnIt user {name} already exists and is not linked to this single sign-on account: ask an admin"
        ))),
        Err(accounts::AccountError::Store(e)) => Err(e.into()),
        Err(e) => Err(OidcError::NotMapped(e.to_string())),
    }
}
