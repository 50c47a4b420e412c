//! The application layer: everything a caller can do, once. Each function takes the shared
//! [`AppState`], the [`Caller`] and (for client-scoped things) the client it asked for, checks
//! what the caller may do, acts through the engine, the job queue and the store, writes the
//! audit entry, and returns a typed view ([`crate::views`]) or an [`ApiError`]. The API handlers
//! ([`crate::api`]) and the web pages are thin adapters over these functions: they turn a
//! request into arguments and a result into JSON or HTML, and decide nothing.
//!
//! The limits the checks enforce are constants (here, and `Id::PATTERN` for ids), and the
//! OpenAPI document states the same constants, so the document and the server cannot disagree.

pub mod accounts;
pub mod catalog;
pub mod jobs;
pub mod leases;
pub mod networks;
pub mod nodes;
pub mod services;

pub use accounts::*;
pub use catalog::*;
pub use jobs::*;
pub use leases::*;
pub use networks::*;
pub use services::*;

use axum::http::StatusCode;
use serde_json::{Value, json};
use spawnit_model::Id;

use crate::AppState;
use crate::caller::Caller;
use crate::error::ApiError;

/// Writes an audit entry for what `caller` did.
pub async fn audit(s: &AppState, caller: &Caller, client: &Id, action: &str, target: String, detail: &str) {
    crate::audit::record(s.engine.store(), &caller.user, client.as_str(), action, target, caller.ip, detail).await;
}

/// A JSON number that is a whole non-negative number, however JSON writes it (`3` or `3.0`:
/// the two are the same to JSON and its schemas).
pub fn whole_number(n: &serde_json::Number) -> Option<u64> {
    n.as_u64()
        .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= u64::MAX as f64).map(|f| f as u64))
}

/// Refuses a non-admin caller.
pub fn admin_only(caller: &Caller) -> Result<(), ApiError> {
    if caller.is_admin() {
        Ok(())
    } else {
        Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", "this needs an admin"))
    }
}

/// One id, or a 422 naming `field`.
pub fn id_check(field: &str, value: &str) -> Result<Id, ApiError> {
    Id::parse(value).map_err(|e| ApiError::invalid(field, e.to_string()))
}

/// Parses the ids of a request, reporting every bad one at once.
pub fn ids_check(fields: &[(&str, &str)]) -> Result<Vec<Id>, ApiError> {
    let mut ids = Vec::new();
    let mut errors = Vec::new();
    for (field, value) in fields {
        match Id::parse(value) {
            Ok(id) => ids.push(id),
            Err(e) => errors.push((*field, e.to_string())),
        }
    }
    if errors.is_empty() {
        return Ok(ids);
    }
    let message = errors.iter().map(|(field, reason)| format!("{field}: {reason}")).collect::<Vec<_>>().join("; ");
    Err(ApiError {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        code: "invalid_input",
        message: format!("invalid input: {message}"),
        details: Value::Array(errors.iter().map(|(field, reason)| json!({"field": field, "reason": reason})).collect()),
    })
}
