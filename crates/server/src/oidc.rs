//! OIDC sign-in for the web UI with the `openidconnect` crate: the authorization code flow with
//! PKCE (S256), `state` and `nonce`, against any OpenID provider (e.g. Keycloak) found by
//! discovery from its issuer URL.
//!
//! The provider's discovery document and keys (JWKS) are fetched once and kept for an hour; a
//! token that no kept key verifies makes one fetch of the keys (the provider may have rotated
//! them). `/auth/oidc/start` stores the pending sign-in (state hash, nonce, PKCE
//! verifier, where to go next) in the store and binds it to the browser with a short-lived
//! cookie holding the state, then sends the browser to the provider. `/auth/oidc/callback`
//! checks the state against the cookie, exchanges the code (with the verifier and the client
//! secret), and has the crate verify the ID token: signature with an asymmetric algorithm the
//! provider announces, `iss` exactly the configured issuer, `aud`, `exp` and `nonce`; `azp`,
//! when present, must be SpawnIt's client id. Then it maps the person to a SpawnIt user: the
//! user already linked to this `iss`+`sub`; else the user an admin recorded with exactly the
//! token's e-mail address, when the provider marks it `email_verified` (linked on first
//! sign-in); else, when a client claim is configured and present, a new member of that client.
//! Never by a user name, which the person controls at the provider. Anyone else is refused
//! with a message saying to ask an admin.

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreErrorResponseType, CoreGenderClaim, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm, CoreProviderMetadata, CoreRevocableToken,
    CoreRevocationErrorResponse, CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, AuthenticationFlow, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret,
    CsrfToken, EmptyExtraTokenFields, EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl, JsonWebKeySet,
    JwsSigningAlgorithm, Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope,
    SignatureVerificationError, StandardErrorResponse, StandardTokenResponse, TokenResponse as _,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use spawnit_model::Id;
use spawnit_store::{Collection, Key, PutCondition, Store, StoreError};

use crate::AppState;
use crate::accounts::{self, Role};
use crate::auth::{cookie, cookie_build, peer_ip};

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
    Http(String),
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

/// The claims of an ID token beyond the standard ones (the configured client claim is one).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct OtherClaims {
    #[serde(flatten)]
    claims: serde_json::Map<String, Value>,
}

impl AdditionalClaims for OtherClaims {}

type IdTokenFields = openidconnect::IdTokenFields<
    OtherClaims,
    EmptyExtraTokenFields,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
type IdTokenClaims = openidconnect::IdTokenClaims<OtherClaims, CoreGenderClaim>;
type IdToken =
    openidconnect::IdToken<OtherClaims, CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm>;

/// The OpenID client of one sign-in: discovered endpoints, a token endpoint and a redirect URI.
type Client = openidconnect::Client<
    OtherClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    StandardTokenResponse<IdTokenFields, CoreTokenType>,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// How long the discovery document and the keys are kept.
const PROVIDER_KEEP: Duration = Duration::from_secs(3600);

/// The clock skew allowed on an ID token's expiry.
const EXPIRY_LEEWAY: chrono::Duration = chrono::Duration::seconds(30);

/// OIDC sign-in: the settings, an HTTP client that follows no redirects, and the provider's
/// discovery document and keys as last fetched.
pub struct Oidc {
    config: OidcConfig,
    http: reqwest::Client,
    provider: tokio::sync::Mutex<Option<(CoreProviderMetadata, Instant)>>,
}

impl Oidc {
    pub fn new(config: OidcConfig) -> Oidc {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            // A redirect would send SpawnIt's requests (and its client secret) elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Oidc { config, http, provider: tokio::sync::Mutex::new(None) }
    }

    /// The provider's discovery document and keys, fetched when older than an hour.
    async fn provider(&self) -> Result<CoreProviderMetadata, OidcError> {
        let mut kept = self.provider.lock().await;
        if let Some((metadata, at)) = kept.as_ref()
            && at.elapsed() < PROVIDER_KEEP
        {
            return Ok(metadata.clone());
        }
        let issuer = IssuerUrl::new(self.config.issuer.clone())
            .map_err(|e| OidcError::Discovery(format!("the issuer URL {}: {e}", self.config.issuer)))?;
        let metadata = CoreProviderMetadata::discover_async(issuer, &self.http).await.map_err(discovery_error)?;
        *kept = Some((metadata.clone(), Instant::now()));
        Ok(metadata)
    }

    /// Fetches the provider's keys again (it signed with a key SpawnIt does not have).
    async fn keys_refetch(&self, metadata: CoreProviderMetadata) -> Result<CoreProviderMetadata, OidcError> {
        let keys = JsonWebKeySet::fetch_async(metadata.jwks_uri(), &self.http).await.map_err(discovery_error)?;
        let metadata = metadata.set_jwks(keys);
        *self.provider.lock().await = Some((metadata.clone(), Instant::now()));
        Ok(metadata)
    }

    /// The client for `metadata`, sending the browser back to `redirect_uri`.
    fn client(&self, metadata: CoreProviderMetadata, redirect_uri: &str) -> Result<Client, OidcError> {
        let redirect = RedirectUrl::new(redirect_uri.to_owned())
            .map_err(|e| OidcError::Discovery(format!("the redirect URI {redirect_uri}: {e}")))?;
        Ok(Client::from_provider_metadata(
            metadata,
            ClientId::new(self.config.client_id.clone()),
            Some(ClientSecret::new(self.config.client_secret.clone())),
        )
        .set_redirect_uri(redirect))
    }

    /// The ID token's claims once verified against the provider's keys (fetched again once if
    /// none of the kept keys verifies the token).
    async fn id_token_verify(
        &self,
        metadata: CoreProviderMetadata,
        redirect_uri: &str,
        id_token: &IdToken,
        nonce: &Nonce,
    ) -> Result<IdTokenClaims, OidcError> {
        let verify =
            |metadata: CoreProviderMetadata| -> Result<Result<IdTokenClaims, ClaimsVerificationError>, OidcError> {
                // Only the asymmetric algorithms the provider announces: never `none`, never an HMAC
                // keyed with something an attacker may know.
                let allowed: Vec<CoreJwsSigningAlgorithm> = metadata
                    .id_token_signing_alg_values_supported()
                    .iter()
                    .filter(|a| !a.uses_shared_secret() && **a != CoreJwsSigningAlgorithm::None)
                    .cloned()
                    .collect();
                let client = self.client(metadata, redirect_uri)?;
                let verifier =
                    client.id_token_verifier().set_allowed_algs(allowed).set_time_fn(|| Utc::now() - EXPIRY_LEEWAY);
                Ok(id_token.claims(&verifier, nonce).cloned())
            };
        let claims = match verify(metadata.clone())? {
            // A key SpawnIt does not have, or a signature its key of that id (or its only key, when
            // the token names none) does not verify: the provider may have rotated its keys.
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey | SignatureVerificationError::CryptoError(_),
            )) => verify(self.keys_refetch(metadata).await?)?,
            verified => verified,
        }
        .map_err(|e| OidcError::Token(error_chain(&e)))?;
        if let Some(azp) = claims.authorized_party()
            && **azp != self.config.client_id
        {
            return Err(OidcError::Token(format!(
                "the token was issued to the party {}, not to SpawnIt's client {}",
                **azp, self.config.client_id
            )));
        }
        Ok(claims)
    }
}

/// An error and its sources, as one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

fn discovery_error<E: std::error::Error + 'static>(e: openidconnect::DiscoveryError<E>) -> OidcError {
    match e {
        openidconnect::DiscoveryError::Request(e) => OidcError::Http(error_chain(&e)),
        e => OidcError::Discovery(error_chain(&e)),
    }
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
const STATE_COOKIE_PATH: &str = "/auth/oidc";
const PENDING_TTL: Duration = Duration::from_secs(600);

pub fn routes() -> Router<AppState> {
    Router::new().route("/auth/oidc/start", get(start)).route("/auth/oidc/callback", get(callback))
}

fn hash_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn pending_key(state: &str) -> (String, Key) {
    let hash = hash_hex(state);
    let id = Id::parse(&hash[..40]).expect("hex digits are a valid id");
    (hash, Key::record(Collection::OidcPending, &id))
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

/// Back to the sign-in page, which shows `message`.
fn failed(message: impl std::fmt::Display) -> Response {
    let query: String =
        form_urlencoded::Serializer::new(String::new()).append_pair("error", &message.to_string()).finish();
    Redirect::to(&format!("/login?{query}")).into_response()
}

/// Binds a sign-in to the browser that started it: the state, sent back under `/auth/oidc` only.
fn state_cookie_set(s: &AppState, resp: &mut Response, state: &str) {
    cookie_append(resp, &cookie_build(STATE_COOKIE, state, STATE_COOKIE_PATH, PENDING_TTL, s.secure_cookies));
}

/// The state of the sign-in this browser started, if any.
fn state_cookie_get(parts: &axum::http::request::Parts) -> Option<String> {
    cookie(parts, STATE_COOKIE)
}

/// Forgets the state once the sign-in is done.
fn state_cookie_clear(s: &AppState, resp: &mut Response) {
    cookie_append(resp, &cookie_build(STATE_COOKIE, "", STATE_COOKIE_PATH, Duration::ZERO, s.secure_cookies));
}

fn cookie_append(resp: &mut Response, cookie: &axum_extra::extract::cookie::Cookie<'_>) {
    if let Ok(v) = HeaderValue::from_str(&cookie.to_string()) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

struct RawParts(axum::http::request::Parts);

impl<S: Send + Sync> FromRequestParts<S> for RawParts {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<RawParts, Self::Rejection> {
        Ok(RawParts(parts.clone()))
    }
}

fn not_configured() -> Response {
    crate::ui::UiError::new(StatusCode::NOT_FOUND, "Single sign-on is not configured on this SpawnIt.").into_response()
}

#[derive(Deserialize)]
struct StartQuery {
    next: Option<String>,
}

async fn start(State(s): State<AppState>, Query(q): Query<StartQuery>, RawParts(parts): RawParts) -> Response {
    let Some(oidc) = s.oidc.clone() else { return not_configured() };
    match start_inner(&s, &oidc, q.next, &parts).await {
        Ok(r) => r,
        Err(e) => failed(e),
    }
}

async fn start_inner(
    s: &AppState,
    oidc: &Oidc,
    next: Option<String>,
    parts: &axum::http::request::Parts,
) -> Result<Response, OidcError> {
    let redirect_uri = redirect_uri(&oidc.config, parts, s.secure_cookies);
    let client = oidc.client(oidc.provider().await?, &redirect_uri)?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = client
        .authorize_url(
            AuthenticationFlow::<openidconnect::core::CoreResponseType>::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("email".into()))
        .set_pkce_challenge(challenge)
        .url();
    let next = next.filter(|n| crate::session::safe_next(n)).unwrap_or_else(|| "/".into());
    let (state_hash, key) = pending_key(state.secret());
    let pending = Pending {
        state_hash,
        nonce: nonce.secret().clone(),
        verifier: verifier.secret().clone(),
        next,
        redirect_uri,
        expires_at: Utc::now() + chrono::Duration::from_std(PENDING_TTL).unwrap_or(chrono::Duration::minutes(10)),
    };
    s.engine.store().put_json(&key, &pending, PutCondition::Absent).await?;
    let store = s.engine.store().clone();
    tokio::spawn(async move { pending_prune(&store).await });
    let mut resp = Redirect::to(url.as_str()).into_response();
    state_cookie_set(s, &mut resp, state.secret());
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

/// What the provider sends the browser back with.
#[derive(Deserialize)]
struct CallbackQuery {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

async fn callback(State(s): State<AppState>, Query(q): Query<CallbackQuery>, RawParts(parts): RawParts) -> Response {
    let Some(oidc) = s.oidc.clone() else { return not_configured() };
    let ip = peer_ip(&parts);
    match callback_inner(&s, &oidc, q, &parts).await {
        Ok((user, next)) => {
            let mut resp = match crate::session::sign_in(&s, &user, ip, "oidc", &next).await {
                Ok(r) => r.into_response(),
                Err(e) => return crate::ui::UiError::from(e).into_response(),
            };
            state_cookie_clear(&s, &mut resp);
            resp
        }
        Err(e) => {
            match s.rate.tally("-", ip.unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]))).await {
                Ok(tally) => crate::audit::sign_in_failed(s.engine.store(), &tally, ip, "oidc", &e.to_string()).await,
                Err(store) => tracing::warn!("cannot count a failed OIDC sign-in: {store}"),
            }
            failed(e)
        }
    }
}

async fn callback_inner(
    s: &AppState,
    oidc: &Oidc,
    q: CallbackQuery,
    parts: &axum::http::request::Parts,
) -> Result<(accounts::UserRecord, String), OidcError> {
    if let Some(err) = q.error {
        let description = q.error_description.unwrap_or_default();
        return Err(OidcError::Provider(format!("{err} {description}").trim().to_owned()));
    }
    let state = q.state.ok_or(OidcError::State)?;
    let code = q.code.ok_or(OidcError::Provider("no authorization code".into()))?;
    // The state must be the one this browser started with.
    if !crate::auth::same_secret(&state_cookie_get(parts).unwrap_or_default(), &state) {
        return Err(OidcError::State);
    }
    let store = s.engine.store();
    let (state_hash, key) = pending_key(&state);
    let pending = store.get_json::<Pending>(&key).await?.map(|v| v.value).ok_or(OidcError::State)?;
    store.delete(&key).await?;
    if pending.state_hash != state_hash || pending.expires_at < Utc::now() {
        return Err(OidcError::State);
    }

    let metadata = oidc.provider().await?;
    let client = oidc.client(metadata.clone(), &pending.redirect_uri)?;
    let answer = client
        .exchange_code(AuthorizationCode::new(code))
        .map_err(|e| OidcError::Discovery(e.to_string()))?
        .set_pkce_verifier(PkceCodeVerifier::new(pending.verifier))
        .request_async(&oidc.http)
        .await;
    let id_token: IdToken = match answer {
        Ok(answer) => answer.id_token().cloned().ok_or(OidcError::Token("the token answer has no id_token".into()))?,
        // SpawnIt uses only the answer's ID token: a field it does not need that the crate cannot
        // read (e.g. a negative `expires_in`) does not stop the ID token's own checks.
        Err(RequestTokenError::Parse(e, body)) => serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v.get("id_token")?.as_str()?.parse().ok())
            .ok_or_else(|| OidcError::Token(format!("the token answer cannot be read: {e}")))?,
        Err(RequestTokenError::ServerResponse(r)) => return Err(OidcError::Provider(format!("token exchange: {r}"))),
        Err(RequestTokenError::Request(e)) => return Err(OidcError::Http(error_chain(&e))),
        Err(RequestTokenError::Other(e)) => return Err(OidcError::Provider(e)),
    };
    let claims = oidc.id_token_verify(metadata, &pending.redirect_uri, &id_token, &Nonce::new(pending.nonce)).await?;
    let user = user_for(store, &oidc.config, &claims).await?;
    Ok((user, pending.next))
}

/// The name of a new user created from a client claim: `preferred_username`, else the part of
/// `email` before `@`, else `sub`, lowercased and reduced to an id. It only ever names a user
/// that does not exist yet: an existing user is never found by it.
fn name_from(claims: &IdTokenClaims) -> Option<Id> {
    let raw = claims
        .preferred_username()
        .map(|u| u.as_str())
        .or(claims.email().map(|e| e.as_str()))
        .unwrap_or(claims.subject().as_str());
    let raw = raw.split('@').next().unwrap_or(raw).to_lowercase();
    let cleaned: String = raw.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).take(63).collect();
    Id::parse(cleaned.trim_matches('-')).ok()
}

/// The e-mail address of the token when the provider says it verified it (`email_verified`
/// is `true`), exactly as given.
fn verified_email(claims: &IdTokenClaims) -> Option<&str> {
    claims.email().map(|e| e.as_str()).filter(|_| claims.email_verified() == Some(true))
}

/// The SpawnIt user of a verified ID token: the user linked to this `iss`+`sub`; else the user
/// an admin recorded with exactly this verified e-mail address and not linked yet (linked now);
/// else, with a client claim, a new member of that client (refused if the name is taken).
/// Nobody is ever found by a name the person chose at the provider.
async fn user_for(store: &Store, cfg: &OidcConfig, claims: &IdTokenClaims) -> Result<accounts::UserRecord, OidcError> {
    let subject = format!("{}#{}", claims.issuer().as_str(), claims.subject().as_str());
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
    let other = &claims.additional_claims().claims;
    let client = cfg.client_claim.as_deref().and_then(|c| other.get(c)).and_then(Value::as_str);
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
