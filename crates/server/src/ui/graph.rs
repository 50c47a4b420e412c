//! The dependency graph of a service's resources, drawn as SVG on the service's page.

use std::collections::BTreeMap;

use maud::{Markup, html};

/// The dependency graph as an SVG: columns by depth, one box per resource, arrows to dependencies.
pub(super) fn graph_svg(resources: &[spawnit_model::resource::DesiredResource]) -> Markup {
    let deps = spawnit_engine::dependency_map(resources);
    let mut depth: BTreeMap<String, usize> = BTreeMap::new();
    let order = spawnit_engine::topological_order(&deps).unwrap_or_else(|_| deps.keys().cloned().collect());
    for a in &order {
        let d = deps
            .get(a)
            .map(|ds| ds.iter().filter_map(|x| depth.get(&x.to_string())).map(|d| d + 1).max().unwrap_or(0))
            .unwrap_or(0);
        depth.insert(a.to_string(), d);
    }
    let mut columns: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for a in &order {
        columns.entry(depth[&a.to_string()]).or_default().push(a.to_string());
    }
    let (w, h, gap_x, gap_y) = (180.0_f64, 40.0_f64, 70.0_f64, 20.0_f64);
    let mut pos: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for (col, items) in &columns {
        for (row, a) in items.iter().enumerate() {
            pos.insert(a.clone(), (10.0 + *col as f64 * (w + gap_x), 10.0 + row as f64 * (h + gap_y)));
        }
    }
    let width = 20.0 + columns.len().max(1) as f64 * (w + gap_x) - gap_x;
    let height = 20.0 + columns.values().map(Vec::len).max().unwrap_or(1) as f64 * (h + gap_y) - gap_y;
    html! {
        svg.graph role="img" aria-label="Dependency graph of the service's resources" viewBox=(format!("0 0 {width} {height}"))
            width=(width) height=(height) xmlns="http://www.w3.org/2000/svg" {
            defs {
                marker #arrow viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse" {
                    path d="M 0 0 L 10 5 L 0 10 z" {}
                }
            }
            @for (a, ds) in &deps {
                @for d in ds {
                    @if let (Some((x1, y1)), Some((x2, y2))) = (pos.get(&d.to_string()), pos.get(&a.to_string())) {
                        line.edge x1=(x1 + w) y1=(y1 + h / 2.0) x2=(x2) y2=(y2 + h / 2.0) marker-end="url(#arrow)" {}
                    }
                }
            }
            @for (a, (x, y)) in &pos {
                g.node {
                    rect x=(x) y=(y) width=(w) height=(h) rx="8" {}
                    text x=(x + w / 2.0) y=(y + h / 2.0 + 5.0) text-anchor="middle" { (a) }
                }
            }
        }
    }
}
