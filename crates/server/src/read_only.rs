//! A server on a store of a newer format than its own (see `spawnit_store::format`) only
//! reads: every request that could change something (any method but GET, HEAD and OPTIONS) is
//! answered `503 {"error":{"code":"store_read_only","message":"this store was written by
//! SpawnIt X (format N); … upgrade this binary"}}` before it reaches a handler, so an older
//! replica in a rolling upgrade never starts a job it could not record.

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::error::ApiError;

/// The middleware: refuses changes while the store handle is read-only.
pub async fn read_only_guard(State(s): State<AppState>, request: Request, next: Next) -> Response {
    let reads = matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    match s.engine.store().read_only_reason() {
        Some(reason) if !reads => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store_read_only", reason).into_response()
        }
        _ => next.run(request).await,
    }
}
