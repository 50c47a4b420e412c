//! The one error shape of the API, `{"error": {"code", "message", "details"}}`, and the mapping
//! from engine and store errors to HTTP statuses. Bad input is a 4xx; a 5xx means SpawnIt or
//! something it depends on (Docker, the store) failed.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};
use spawnit_engine::EngineError;
use spawnit_store::{LockError, StoreError};
use utoipa::ToSchema;

/// An error answered to an API caller.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Value,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), details: Value::Null }
    }

    pub fn not_found(what: impl std::fmt::Display) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("{what} not found"))
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// One invalid field, as a 422 with the field named in `details`.
    pub fn invalid(field: &str, reason: impl Into<String>) -> ApiError {
        let reason = reason.into();
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid_input",
            message: format!("invalid input: {field}: {reason}"),
            details: json!([{"field": field, "reason": reason}]),
        }
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "conflict", message)
    }
}

/// The body of every error answer.
#[derive(Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// What went wrong, for programs: `invalid_input`, `not_found`, `conflict`, `forbidden`…
    pub code: &'static str,
    /// What went wrong, for people.
    pub message: String,
    /// For `invalid_input`: every bad field, `[{"field", "reason"}]`; otherwise null.
    pub details: Value,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: ErrorDetail { code: self.code, message: self.message, details: self.details } };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert("www-authenticate", axum::http::HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> ApiError {
        use StatusCode as S;
        let message = e.to_string();
        match e {
            EngineError::Invalid(v) => ApiError {
                status: S::UNPROCESSABLE_ENTITY,
                code: "invalid_input",
                message,
                details: serde_json::to_value(&v.errors).unwrap_or(Value::Null),
            },
            EngineError::NotFound { .. } | EngineError::TemplateNotFound(_) => {
                ApiError::new(S::NOT_FOUND, "not_found", message)
            }
            EngineError::AlreadyExists { .. } => ApiError::new(S::CONFLICT, "already_exists", message),
            EngineError::Conflict(_) => ApiError::new(S::CONFLICT, "conflict", message),
            EngineError::Locked(LockError::Held { .. }) => ApiError::new(S::CONFLICT, "locked", message),
            EngineError::NotReady(_) => ApiError::new(S::CONFLICT, "not_ready", message),
            EngineError::Cancelled => ApiError::new(S::CONFLICT, "cancelled", message),
            EngineError::ProviderMissing(_) => ApiError::new(S::UNPROCESSABLE_ENTITY, "provider_missing", message),
            EngineError::Store(StoreError::Conflict { .. } | StoreError::StateConflict { .. }) => {
                ApiError::new(S::CONFLICT, "conflict", format!("{message}: retry"))
            }
            EngineError::Store(StoreError::ReadOnly { reason })
            | EngineError::Locked(LockError::Store { source: StoreError::ReadOnly { reason }, .. }) => {
                ApiError::new(S::SERVICE_UNAVAILABLE, "store_read_only", reason)
            }
            EngineError::Locked(LockError::Store { .. }) | EngineError::Store(_) => store_error(e),
            EngineError::Provider(_) => ApiError::new(S::BAD_GATEWAY, "provider_error", message),
            EngineError::Template(_) => ApiError::new(S::INTERNAL_SERVER_ERROR, "template_broken", message),
            #[allow(unreachable_patterns)]
            _ => ApiError::new(S::INTERNAL_SERVER_ERROR, "internal", message),
        }
    }
}

/// A store failure: 500 for a corrupt object, 503 when the store cannot be used now; the
/// message carries every cause (keys and I/O errors, never a secret).
fn store_error(e: EngineError) -> ApiError {
    use StatusCode as S;
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message = format!("{message}: {text}");
        }
        source = cause.source();
    }
    match e {
        EngineError::Store(StoreError::Corrupt { .. })
        | EngineError::Locked(LockError::Store { source: StoreError::Corrupt { .. }, .. }) => {
            ApiError::new(S::INTERNAL_SERVER_ERROR, "store_corrupt", message)
        }
        _ => ApiError::new(S::SERVICE_UNAVAILABLE, "store_unavailable", message),
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        ApiError::from(EngineError::Store(e))
    }
}
