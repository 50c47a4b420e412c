//! The catalog: its templates, and one template.

use spawnit_model::{Catalog, Template};

use super::id_check;
use crate::AppState;
use crate::caller::Caller;
use crate::error::ApiError;

/// The catalog's templates (any signed-in caller).
pub async fn catalog_list(s: &AppState, _c: &Caller) -> Result<Catalog, ApiError> {
    Ok(s.engine.store().catalog().await?)
}

/// One template with its parameters and blueprint.
pub async fn catalog_get(s: &AppState, _c: &Caller, template: &str) -> Result<Template, ApiError> {
    let id = id_check("template", template)?;
    Ok(s.engine.template(&id).await?)
}
