//! The catalog in the store: `catalog/catalog.json` lists the templates and
//! `catalog/templates/<id>.template.json` holds each one. The built-in templates are seeded
//! once; after that the store's copy is the catalog, so adding a service is dropping a file.

use spawnit_model::{Catalog, CatalogEntry, Id, Template};

use crate::error::StoreError;
use crate::key::Key;
use crate::store::{PutCondition, Store};

/// How many times [`Store::template_put`] retries the catalog update when writers race.
const CATALOG_ATTEMPTS: usize = 10;

impl Store {
    /// The catalog; empty when none was written yet.
    pub async fn catalog(&self) -> Result<Catalog, StoreError> {
        Ok(self.get_json(&Key::catalog()).await?.map(|v| v.value).unwrap_or_default())
    }

    /// The template `id`, `None` when the store has none by that id.
    pub async fn template(&self, id: &Id) -> Result<Option<Template>, StoreError> {
        Ok(self.get_json(&Key::template(id)).await?.map(|v| v.value))
    }

    /// Writes every template that is absent, then `catalog.json` listing them only if there is
    /// none yet: a store seeded once is never overwritten (users may have changed it).
    pub async fn catalog_seed(&self, templates: &[Template]) -> Result<(), StoreError> {
        // Templates new to this store (a newer SpawnIt's built-ins) join an existing catalog;
        // those already there are left as the operator keeps them.
        let mut added = Vec::new();
        for template in templates {
            match self.put_json(&Key::template(&template.id), template, PutCondition::Absent).await {
                Ok(_) => added.push(template),
                Err(StoreError::Conflict { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let catalog = Catalog { templates: templates.iter().map(CatalogEntry::from).collect() };
        match self.put_json(&Key::catalog(), &catalog, PutCondition::Absent).await {
            Err(StoreError::Conflict { .. }) => {
                for template in added {
                    self.template_put(template).await?;
                }
                Ok(())
            }
            result => result.map(|_| ()),
        }
    }

    /// Adds or replaces a template: its file, then its entry in `catalog.json`.
    pub async fn template_put(&self, template: &Template) -> Result<(), StoreError> {
        self.put_json(&Key::template(&template.id), template, PutCondition::Overwrite).await?;
        let entry = CatalogEntry::from(template);
        let key = Key::catalog();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (mut catalog, condition) = match self.get_json::<Catalog>(&key).await? {
                Some(current) => (current.value, PutCondition::Matches(current.version)),
                None => (Catalog::default(), PutCondition::Absent),
            };
            match catalog.templates.iter_mut().find(|e| e.id == entry.id) {
                Some(existing) => *existing = entry.clone(),
                None => catalog.templates.push(entry.clone()),
            }
            match self.put_json(&key, &catalog, condition).await {
                Err(StoreError::Conflict { .. }) if attempt < CATALOG_ATTEMPTS => continue,
                result => return result.map(|_| ()),
            }
        }
    }
}
