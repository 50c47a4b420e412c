//! Leases: when a service is destroyed by itself. Set (a lifetime or an instant), extend,
//! remove.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use spawnit_model::Id;

use super::audit;
use super::services::service_view;
use crate::AppState;
use crate::caller::Caller;
use crate::error::ApiError;
use crate::views::ServiceView;

/// The longest lease: 10 years.
pub const TTL_MAX_SECONDS: u64 = 10 * 365 * 86400;

/// A lifetime: seconds, or a duration such as `90s`, `30m`, `2h`, `7d` (read by
/// [`spawnit_model::duration_parse`]).
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum Ttl {
    /// Any JSON number: `650` and `650.0` are the same whole number of seconds.
    Seconds(serde_json::Number),
    Text(String),
}

impl Ttl {
    /// The lifetime, from 1 second to 10 years, or a 422 naming `ttl`.
    pub fn duration(&self) -> Result<Duration, ApiError> {
        let d = match self {
            Ttl::Seconds(n) => {
                let whole = n.as_u64().or_else(|| {
                    n.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= u64::MAX as f64).map(|f| f as u64)
                });
                let seconds = whole.ok_or_else(|| {
                    ApiError::invalid("ttl", "must be a whole number of seconds or a duration like 30m, 2h, 7d")
                })?;
                Duration::from_secs(seconds)
            }
            Ttl::Text(t) => spawnit_model::duration_parse("ttl", t)
                .map_err(|e| ApiError::invalid(&e.field, e.reason.to_string()))?,
        };
        if d < Duration::from_secs(1) || d > Duration::from_secs(TTL_MAX_SECONDS) {
            return Err(ApiError::invalid("ttl", "must be between 1 second and 10 years (3650 days)"));
        }
        Ok(d)
    }
}

/// A new lease: exactly one of `ttl` (from now) and `expires_at` (in the future).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseSetRequest {
    #[serde(default)]
    pub ttl: Option<Ttl>,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

/// How much longer a lease runs.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseExtendRequest {
    pub ttl: Ttl,
}

/// Sets the service's lease.
pub async fn lease_set(
    s: &AppState,
    c: &Caller,
    client: Option<&str>,
    name: &Id,
    req: LeaseSetRequest,
) -> Result<ServiceView, ApiError> {
    let client = c.client_for(client)?;
    let expires_at = match (&req.ttl, req.expires_at) {
        (Some(ttl), None) => after(Utc::now(), ttl.duration()?),
        (None, Some(at)) if at > Utc::now() => at,
        (None, Some(_)) => return Err(ApiError::invalid("expires_at", "must be in the future")),
        _ => return Err(ApiError::invalid("ttl", "give exactly one of ttl and expires_at")),
    };
    lease_write(s, c, &client, name, Some(expires_at), format!("expires {expires_at}")).await
}

/// Extends the service's lease by `ttl` (from now if it has already passed); refused when
/// the service has no lease.
pub async fn lease_extend(
    s: &AppState,
    c: &Caller,
    client: Option<&str>,
    name: &Id,
    req: LeaseExtendRequest,
) -> Result<ServiceView, ApiError> {
    let client = c.client_for(client)?;
    let ttl = req.ttl.duration()?;
    let spec = s.engine.service_spec(&client, name).await?;
    let Some(current) = spec.expires_at else {
        return Err(ApiError::conflict(format!("service {client}/{name} has no lease to extend: set one with PUT")));
    };
    let expires_at = after(current.max(Utc::now()), ttl);
    lease_write(s, c, &client, name, Some(expires_at), format!("extended to {expires_at}")).await
}

/// Adds `ttl` to the service's lease, or gives it one from now when it has none (the web
/// page's one-click lease).
pub async fn lease_add(
    s: &AppState,
    c: &Caller,
    client: Option<&str>,
    name: &Id,
    ttl: Duration,
) -> Result<ServiceView, ApiError> {
    let client = c.client_for(client)?;
    let spec = s.engine.service_spec(&client, name).await?;
    let expires_at = after(spec.expires_at.unwrap_or_default().max(Utc::now()), ttl);
    lease_write(s, c, &client, name, Some(expires_at), format!("expires {expires_at}")).await
}

/// Removes the service's lease.
pub async fn lease_remove(s: &AppState, c: &Caller, client: Option<&str>, name: &Id) -> Result<ServiceView, ApiError> {
    let client = c.client_for(client)?;
    lease_write(s, c, &client, name, None, "removed".to_owned()).await
}

/// `at` plus `ttl` (both bounded, so this cannot overflow).
fn after(at: DateTime<Utc>, ttl: Duration) -> DateTime<Utc> {
    at + chrono::Duration::from_std(ttl).unwrap_or_default()
}

/// Stores the lease, audits it, answers the service.
async fn lease_write(
    s: &AppState,
    c: &Caller,
    client: &Id,
    name: &Id,
    expires_at: Option<DateTime<Utc>>,
    detail: String,
) -> Result<ServiceView, ApiError> {
    s.engine.service_settings_set(client, name, None, Some(expires_at)).await?;
    audit(s, c, client, "lease", format!("service {client}/{name}"), &detail).await;
    service_view(s, client, name).await
}
