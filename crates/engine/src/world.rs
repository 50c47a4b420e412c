//! One observation of everything a provider holds for SpawnIt, grouped by owner, so a drift
//! sweep over many services costs a few list calls instead of one observation per service.

use std::collections::HashMap;

use spawnit_model::OwnerKey;
use spawnit_model::resource::{DesiredResource, Liveness, ObservedResource, ResourceAttrs};

/// Every labelled resource, by owner, and the images present.
#[derive(Clone, Debug, Default)]
pub struct ObservedWorld {
    pub owners: HashMap<OwnerKey, Vec<ObservedResource>>,
    /// Image id by normalized reference (see [`image_reference_normalized`]).
    pub images: HashMap<String, String>,
}

impl ObservedWorld {
    /// What `observe` would have returned for `owner` with `desired`: its labelled resources
    /// plus the desired images that are present.
    pub fn observed_for(&self, owner: &OwnerKey, desired: &[DesiredResource]) -> Vec<ObservedResource> {
        let mut out = self.owners.get(owner).cloned().unwrap_or_default();
        for r in desired {
            let ResourceAttrs::Image(image) = &r.attrs else { continue };
            if let Some(id) = self.images.get(&image_reference_normalized(&image.reference)) {
                out.push(ObservedResource {
                    address: r.address.clone(),
                    id: id.clone(),
                    liveness: Liveness::Present,
                    fingerprint: None,
                    facts: Default::default(),
                });
            }
        }
        out
    }
}

/// `redis` → `redis:latest`, `docker.io/library/redis:7` → `redis:7`: the form Docker lists
/// image tags in.
pub fn image_reference_normalized(reference: &str) -> String {
    let r = reference.strip_prefix("docker.io/").unwrap_or(reference);
    let r = r.strip_prefix("library/").unwrap_or(r);
    let last = r.rsplit('/').next().unwrap_or(r);
    if last.contains(':') || last.contains('@') { r.to_owned() } else { format!("{r}:latest") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_normalize_as_docker_lists_them() {
        assert_eq!(image_reference_normalized("redis"), "redis:latest");
        assert_eq!(image_reference_normalized("redis:7"), "redis:7");
        assert_eq!(image_reference_normalized("docker.io/library/redis:7"), "redis:7");
        assert_eq!(image_reference_normalized("localhost:5000/app"), "localhost:5000/app:latest");
        assert_eq!(image_reference_normalized("hashicorp/http-echo:1.0"), "hashicorp/http-echo:1.0");
    }
}
