//! The built-in catalog, compiled into the binary from the repository's `catalog/` folder and
//! seeded into the store on first use. After that the store's copy is the catalog: adding a
//! service is dropping a template file and a catalog entry into the store.

use spawnit_model::Template;

use crate::render::{TemplateError, template_check};

macro_rules! builtin {
    ($($id:literal),* $(,)?) => {
        &[$(($id, include_str!(concat!("../../../catalog/templates/", $id, ".template.json")))),*]
    };
}

const BUILTIN: &[(&str, &str)] = builtin!(
    "hello",
    "postgres",
    "mariadb",
    "redis",
    "mongodb",
    "nginx",
    "minecraft",
    "gitea",
    "jenkins",
    "grafana",
    "prometheus",
    "uptime-kuma",
    "minio",
    "web-app",
);

/// The built-in templates, each parsed and checked.
pub fn builtin_templates() -> Result<Vec<Template>, TemplateError> {
    BUILTIN
        .iter()
        .map(|(id, text)| {
            let template: Template = serde_json::from_str(text).map_err(|e| TemplateError {
                template: (*id).to_owned(),
                reason: format!("not a valid template: {e}"),
            })?;
            template_check(&template)?;
            Ok(template)
        })
        .collect()
}
