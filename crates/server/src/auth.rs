//! API tokens: bearer tokens stored only as SHA-256 hashes (`auth/tokens/<id>.json`), each
//! belonging to a user of one client with a role. The [`Caller`] extractor authenticates every
//! API request and scopes it to the caller's client.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use spawnit_model::Id;
use spawnit_store::{Collection, Key, PutCondition, Store, StoreError};

use crate::AppState;
use crate::error::ApiError;

/// What a user may see and do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Sees and acts on every client.
    Admin,
    /// Sees and acts on its own client only.
    Member,
}

/// A stored token: its hash, never the token.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TokenRecord {
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
    let mut rng = rand::rng();
    let secret: String = (0..40).map(|_| rng.sample(rand::distr::Alphanumeric) as char).collect();
    let token = format!("{TOKEN_PREFIX}{secret}");
    let hash = hash_hex(&token);
    let record =
        TokenRecord { hash: hash.clone(), user: user.to_owned(), client: client.clone(), role, created_at: Utc::now() };
    let id = record_id(&hash).expect("a SHA-256 hex digest has 64 digits");
    store.put_json(&Key::record(Collection::Tokens, &id), &record, PutCondition::Absent).await?;
    Ok(token)
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

/// On a store without any token, creates the first admin token and returns it (to print once).
pub async fn admin_token_bootstrap(store: &Store) -> Result<Option<String>, StoreError> {
    if !store.record_ids(Collection::Tokens).await?.is_empty() {
        return Ok(None);
    }
    let client = Id::parse("default").expect("valid id");
    token_create(store, "admin", &client, Role::Admin).await.map(Some)
}

/// The authenticated caller of an API request.
#[derive(Clone, Debug)]
pub struct Caller {
    pub user: String,
    pub client: Id,
    pub role: Role,
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// The client a request acts on: the caller's own, or (admins only) the one asked for.
    pub fn client_for(&self, asked: Option<&str>) -> Result<Id, ApiError> {
        match asked {
            None => Ok(self.client.clone()),
            Some(c) => {
                let id = Id::parse(c).map_err(|e| ApiError::invalid("client", e.to_string()))?;
                if id != self.client && !self.is_admin() {
                    // Another client's objects do not exist for a member.
                    return Err(ApiError::not_found(format!("client {id}")));
                }
                Ok(id)
            }
        }
    }

    /// Whether the caller may see objects of `client`.
    pub fn sees(&self, client: &Id) -> bool {
        self.is_admin() || &self.client == client
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Caller, ApiError> {
        let header = parts.headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let Some(token) = header.and_then(|h| h.strip_prefix("Bearer ")).map(str::trim) else {
            return Err(ApiError::unauthorized("missing bearer token: send `Authorization: Bearer <token>`"));
        };
        match token_verify(&state.engine.store(), token).await? {
            Some(r) => Ok(Caller { user: r.user, client: r.client, role: r.role }),
            None => Err(ApiError::unauthorized("unknown or revoked token")),
        }
    }
}
