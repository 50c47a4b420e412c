//! Leases: when a service is destroyed by itself. Set (a lifetime or an instant), extend,
//! remove.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use spawnit_model::Id;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::{PartialSchema, ToSchema};

use super::audit;
use super::services::service_view;
use crate::AppState;
use crate::caller::Caller;
use crate::error::ApiError;
use crate::views::ServiceView;

/// The longest lease: 10 years.
pub const TTL_MAX_SECONDS: u64 = 10 * 365 * 86400;

/// A lease duration as text, the documented subset of what [`spawnit_model::duration_parse`]
/// reads: a number of seconds (optionally `s`), minutes, hours or days, from 1 second to 10 years.
/// Every string it matches is accepted; the parser also takes forms it does not list (`1h 30m`).
const TTL_PATTERN: &str = concat!(
    "^0*(",
    "([1-9][0-9]{0,7}|[12][0-9]{8}|30[0-9]{7}|31[0-4][0-9]{6}|315[0-2][0-9]{5}|3153[0-5][0-9]{4}|315360000)s?",
    "|([1-9][0-9]{0,5}|[1-4][0-9]{6}|5[01][0-9]{5}|52[0-4][0-9]{4}|525[0-5][0-9]{3}|5256000)m",
    "|([1-9][0-9]{0,3}|[1-7][0-9]{4}|8[0-6][0-9]{3}|87[0-5][0-9]{2}|87600)h",
    "|([1-9][0-9]{0,2}|[12][0-9]{3}|3[0-5][0-9]{2}|36[0-4][0-9]|3650)d",
    ")$"
);

/// A lifetime: seconds, or a duration such as `90s`, `30m`, `2h`, `7d` (read by
/// [`spawnit_model::duration_parse`]).
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum Ttl {
    /// Any JSON number: `650` and `650.0` are the same whole number of seconds.
    Seconds(serde_json::Number),
    Text(String),
}

impl PartialSchema for Ttl {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1)).maximum(Some(TTL_MAX_SECONDS)))
            .item(ObjectBuilder::new().schema_type(Type::String).pattern(Some(TTL_PATTERN)))
            .description(Some("Seconds, or a duration like 90s, 30m, 2h, 7d; from 1 second to 10 years (3650 days)"))
            .into()
    }
}

impl ToSchema for Ttl {}

impl Ttl {
    /// The lifetime, from 1 second to 10 years, or a 422 naming `ttl`.
    pub fn duration(&self) -> Result<Duration, ApiError> {
        let d = match self {
            Ttl::Seconds(n) => {
                let seconds = super::whole_number(n).ok_or_else(|| {
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

/// Exactly one of `ttl` and `expires_at`: the other absent or null.
impl PartialSchema for LeaseSetRequest {
    fn schema() -> RefOr<Schema> {
        let null = || ObjectBuilder::new().schema_type(Type::Null);
        let ttl = ObjectBuilder::new()
            .property("ttl", Ttl::schema())
            .required("ttl")
            .property("expires_at", null())
            .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)));
        let at = ObjectBuilder::new()
            .property("expires_at", ObjectBuilder::new().schema_type(Type::String).format(Some(date_time())))
            .required("expires_at")
            .property("ttl", null())
            .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)));
        OneOfBuilder::new()
            .item(ttl)
            .item(at)
            .description(Some("Exactly one of ttl (from now) and expires_at (a time in the future)"))
            .into()
    }
}

impl ToSchema for LeaseSetRequest {}

fn date_time() -> utoipa::openapi::SchemaFormat {
    utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::DateTime)
}

/// How much longer a lease runs.
#[derive(Clone, Debug, Deserialize, ToSchema)]
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
