//! The dependency graph of a set of resources: a deterministic topological order (apply walks
//! it forwards, destroy backwards) and its Graphviz DOT rendering.

use std::collections::{BTreeMap, BTreeSet};

use spawnit_model::resource::{Address, DesiredResource};

/// A dependency cycle, naming a resource on it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("dependency cycle through {0}")]
pub struct CycleError(pub Address);

/// Orders `nodes` so that every node comes after the nodes it depends on (Kahn's algorithm,
/// ties broken by address). Dependencies outside `nodes` are ignored.
pub fn topological_order(nodes: &BTreeMap<Address, Vec<Address>>) -> Result<Vec<Address>, CycleError> {
    let mut remaining: BTreeMap<&Address, BTreeSet<&Address>> = nodes
        .iter()
        .map(|(a, deps)| (a, deps.iter().filter(|d| nodes.contains_key(*d) && *d != a).collect()))
        .collect();
    let mut order: Vec<Address> = Vec::with_capacity(nodes.len());
    while !remaining.is_empty() {
        let ready: Vec<&Address> = remaining.iter().filter(|(_, d)| d.is_empty()).map(|(a, _)| *a).collect();
        if ready.is_empty() {
            let stuck = remaining.keys().next().map(|a| (*a).clone());
            return Err(CycleError(stuck.unwrap_or_else(|| order[0].clone())));
        }
        for a in ready {
            remaining.remove(a);
            for deps in remaining.values_mut() {
                deps.remove(a);
            }
            order.push(a.clone());
        }
    }
    Ok(order)
}

/// The desired resources as a dependency map.
pub fn dependency_map(resources: &[DesiredResource]) -> BTreeMap<Address, Vec<Address>> {
    resources.iter().map(|r| (r.address.clone(), r.depends_on.clone())).collect()
}

/// Graphviz DOT for a service's resources; `external` names nodes owned elsewhere (the
/// network), drawn dashed, with the containers depending on them.
pub fn to_dot(title: &str, resources: &[DesiredResource], external: &[(String, Vec<Address>)]) -> String {
    let mut out =
        format!("digraph \"{}\" {{\n  rankdir=LR;\n  node [shape=box, fontname=\"Helvetica\"];\n", escape(title));
    for r in resources {
        out.push_str(&format!("  \"{}\";\n", escape(&r.address.to_string())));
    }
    for (name, _) in external {
        out.push_str(&format!("  \"{}\" [style=dashed];\n", escape(name)));
    }
    for r in resources {
        for d in &r.depends_on {
            out.push_str(&format!("  \"{}\" -> \"{}\";\n", escape(&r.address.to_string()), escape(&d.to_string())));
        }
    }
    for (name, dependents) in external {
        for d in dependents {
            out.push_str(&format!("  \"{}\" -> \"{}\";\n", escape(&d.to_string()), escape(name)));
        }
    }
    out.push_str("}\n");
    out
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use spawnit_model::resource::ResourceKind;

    fn a(kind: ResourceKind, n: &str) -> Address {
        Address::new(kind, n)
    }

    #[test]
    fn orders_dependencies_first_and_finds_cycles() {
        let c = a(ResourceKind::Container, "web");
        let i = a(ResourceKind::Image, "web");
        let v = a(ResourceKind::Volume, "data");
        let nodes = BTreeMap::from([(c.clone(), vec![i.clone(), v.clone()]), (i.clone(), vec![]), (v.clone(), vec![])]);
        let order = topological_order(&nodes).unwrap();
        assert_eq!(order.last(), Some(&c));
        let cyc = BTreeMap::from([(c.clone(), vec![i.clone()]), (i.clone(), vec![c.clone()])]);
        assert!(topological_order(&cyc).is_err());
    }
}
