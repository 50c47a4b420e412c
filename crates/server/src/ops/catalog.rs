//! The catalog: its templates, and one template. An admin-only template (SpawnIt deploying
//! itself, with the Docker socket) does not exist for a member: not listed, not shown, and no
//! service is made from it ([`template_for`]).

use spawnit_engine::EngineError;
use spawnit_model::{Catalog, Id, Template};

use super::id_check;
use crate::AppState;
use crate::caller::Caller;
use crate::error::ApiError;

/// The catalog's templates (any signed-in caller; admin-only ones for admins only).
pub async fn catalog_list(s: &AppState, c: &Caller) -> Result<Catalog, ApiError> {
    let mut catalog = s.engine.store().catalog().await?;
    if !c.is_admin() {
        catalog.templates.retain(|e| !e.admin_only);
    }
    Ok(catalog)
}

/// One template with its parameters and blueprint.
pub async fn catalog_get(s: &AppState, c: &Caller, template: &str) -> Result<Template, ApiError> {
    let id = id_check("template", template)?;
    template_for(s, c, &id).await
}

/// The template `id` as the caller may use it: an admin-only one is, for a member, the same
/// 404 as a template that does not exist.
pub async fn template_for(s: &AppState, c: &Caller, id: &Id) -> Result<Template, ApiError> {
    let template = s.engine.template(id).await?;
    if template.admin_only && !c.is_admin() {
        return Err(EngineError::TemplateNotFound(id.clone()).into());
    }
    Ok(template)
}
