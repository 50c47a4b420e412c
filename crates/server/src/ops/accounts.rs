//! Accounts: who the caller is, API tokens, users, and the audit log.

use axum::http::StatusCode;
use serde::Deserialize;
use spawnit_model::Id;
use utoipa::ToSchema;
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};

use super::{admin_only, audit, ids_check};
use crate::AppState;
use crate::accounts::{AccountError, EMAIL_MAX, MIN_PASSWORD, Role};
use crate::caller::Caller;
use crate::error::ApiError;
use crate::views::{AuditList, MeView, TokenList, TokenView, UserList, UserView};

/// The longest token name, in characters.
pub const TOKEN_NAME_MAX: usize = 100;

/// The most audit entries one call returns.
pub const AUDIT_LIMIT_MAX: usize = 5000;

/// How many audit entries a call returns when it does not say.
pub const AUDIT_LIMIT_DEFAULT: usize = 200;

/// Who the caller is.
pub fn me(c: &Caller) -> MeView {
    MeView::from(c)
}

/// The caller's API tokens (never the tokens themselves).
pub async fn token_list(s: &AppState, c: &Caller) -> Result<TokenList, ApiError> {
    let tokens = crate::auth::token_list(s.engine.store(), Some(&c.user)).await?;
    Ok(TokenList { tokens: tokens.iter().map(TokenView::from).collect() })
}

/// A new API token of the caller.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenCreateRequest {
    #[serde(default)]
    #[schema(schema_with = token_name)]
    pub name: String,
}

/// A control character (Unicode category Cc), which no token name may hold.
const CONTROL_CHARACTERS: &str = "\\u0000-\\u001f\\u007f-\\u009f";

fn token_name() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .max_length(Some(TOKEN_NAME_MAX))
        .pattern(Some(format!("^[^{CONTROL_CHARACTERS}]*$")))
        .description(Some(format!("What the caller calls it: printable, at most {TOKEN_NAME_MAX} characters")))
        .into()
}

/// A token name: printable, at most [`TOKEN_NAME_MAX`] characters; trimmed.
pub fn token_name_check(name: &str) -> Result<String, ApiError> {
    if name.chars().count() > TOKEN_NAME_MAX || name.chars().any(char::is_control) {
        return Err(ApiError::invalid("name", format!("must be at most {TOKEN_NAME_MAX} printable characters")));
    }
    Ok(name.trim().to_owned())
}

/// Creates an API token for the caller, with the caller's client and role; the answer holds the
/// token, once.
pub async fn token_create(s: &AppState, c: &Caller, req: TokenCreateRequest) -> Result<TokenView, ApiError> {
    let name = token_name_check(&req.name)?;
    let (token, record) = crate::auth::token_create_named(s.engine.store(), &c.user, &c.client, c.role, &name).await?;
    audit(s, c, &c.client, "token_create", format!("token {}", record.id), &name).await;
    Ok(TokenView { token: Some(token), ..TokenView::from(&record) })
}

/// Revokes one of the caller's tokens (an admin's: anyone's).
pub async fn token_revoke(s: &AppState, c: &Caller, id: &str) -> Result<(), ApiError> {
    let owner = if c.is_admin() { None } else { Some(c.user.as_str()) };
    match crate::auth::token_revoke(s.engine.store(), id, owner).await? {
        Some(r) => {
            audit(s, c, &r.client, "token_revoke", format!("token {}", r.id), &r.name).await;
            Ok(())
        }
        None => Err(ApiError::not_found(format!("token {}", id.chars().take(80).collect::<String>()))),
    }
}

/// Every user (admins).
pub async fn user_list(s: &AppState, c: &Caller) -> Result<UserList, ApiError> {
    admin_only(c)?;
    let users = crate::accounts::user_list(s.engine.store()).await?;
    Ok(UserList { users: users.iter().map(UserView::from).collect() })
}

/// A new local user.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserCreateRequest {
    #[schema(value_type = Id)]
    pub name: String,
    #[schema(value_type = Id)]
    pub client: String,
    /// `member` when absent.
    #[serde(default)]
    pub role: Option<Role>,
    /// Absent: the user signs in only through OIDC.
    #[serde(default)]
    #[schema(schema_with = password)]
    pub password: Option<String>,
    #[serde(default)]
    #[schema(schema_with = email)]
    pub email: Option<String>,
}

fn password() -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .min_length(Some(MIN_PASSWORD))
        .description(Some("Absent or null: the user signs in through OIDC only"))
        .into()
}

/// A user's e-mail address, as [`crate::accounts::email_check`] accepts it.
fn email() -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .max_length(Some(EMAIL_MAX))
        .pattern(Some(format!("^[^\\s{CONTROL_CHARACTERS}@]+@[^\\s{CONTROL_CHARACTERS}@]+$")))
        .description(Some(
            "Links the user's first OIDC sign-in whose ID token has exactly this address, email_verified",
        ))
        .into()
}

/// Creates a local user (admins).
pub async fn user_create(s: &AppState, c: &Caller, req: UserCreateRequest) -> Result<UserView, ApiError> {
    admin_only(c)?;
    let ids = ids_check(&[("name", &req.name), ("client", &req.client)])?;
    let role = req.role.unwrap_or(Role::Member);
    let store = s.engine.store();
    let user = crate::accounts::user_create_with_email(
        store,
        &ids[0],
        &ids[1],
        role,
        req.password.as_deref(),
        None,
        req.email.as_deref(),
    )
    .await
    .map_err(|e| match e {
        AccountError::Exists(_) => ApiError::conflict(e.to_string()),
        AccountError::WeakPassword => ApiError::invalid("password", e.to_string()),
        AccountError::BadEmail => ApiError::invalid("email", e.to_string()),
        AccountError::Store(e) => ApiError::from(e),
        AccountError::Hash(m) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", m),
    })?;
    audit(s, c, &user.client, "user_create", format!("user {}", user.name), "").await;
    Ok(UserView::from(&user))
}

/// Opens or closes sign-up: whether people may create their own account, each with a client
/// of their own (admins).
pub async fn signup_set(s: &AppState, c: &Caller, open: bool) -> Result<(), ApiError> {
    admin_only(c)?;
    crate::accounts::settings_put(s.engine.store(), &crate::accounts::AuthSettings { signup: open }).await?;
    let what = if open { "sign-up opened" } else { "sign-up closed" };
    audit(s, c, &c.client, "change", "settings auth".into(), what).await;
    Ok(())
}

/// The audit log, newest first (admins): `limit` entries, [`AUDIT_LIMIT_DEFAULT`] when absent.
pub async fn audit_list(s: &AppState, c: &Caller, limit: Option<usize>) -> Result<AuditList, ApiError> {
    admin_only(c)?;
    let limit = limit.unwrap_or(AUDIT_LIMIT_DEFAULT);
    if limit > AUDIT_LIMIT_MAX {
        return Err(ApiError::invalid("limit", format!("must be at most {AUDIT_LIMIT_MAX}")));
    }
    Ok(AuditList { entries: crate::audit::list(s.engine.store(), limit).await? })
}
