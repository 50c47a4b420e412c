//! Text rendering for the terminal: plans, job events, catalogs, services. JSON output uses the
//! model's serde shapes directly (documented in docs/cli-json.md); secrets are masked in both.

use std::fmt::Write as _;

use spawnit_model::plan::{Action, Plan, PlanStatus};
use spawnit_model::spec::Endpoint;
use spawnit_model::template::Template;
use spawnit_model::{Catalog, JobEvent, OperationOutcome};

/// A plan as OpenTofu would print it, one line per change with its reasons.
pub fn plan_text(plan: &Plan) -> String {
    let mut out = String::new();
    if plan.status == PlanStatus::Error {
        let _ = writeln!(out, "Error planning {}:", plan.subject);
        for e in &plan.errors {
            let _ = writeln!(out, "  {e}");
        }
        return out;
    }
    let width = plan.changes.iter().map(|c| c.address.to_string().len()).max().unwrap_or(0);
    let _ = writeln!(out, "Plan for {}:", plan.subject);
    for c in &plan.changes {
        let reasons = c.reasons.join("; ");
        let reasons = if reasons.is_empty() { String::new() } else { format!("  ({reasons})") };
        let _ = writeln!(
            out,
            "  {:>3} {:<width$}  {:<7}{reasons}",
            c.action.symbol(),
            c.address.to_string(),
            c.action.as_str()
        );
    }
    let (create, update, replace, delete) = plan.counts();
    if plan.status == PlanStatus::Compliant {
        let _ = writeln!(out, "\nNo changes: {} is compliant.", plan.subject);
    } else {
        let _ = writeln!(
            out,
            "\nPlan: {create} to add, {update} to change, {replace} to replace, {delete} to destroy. Status: {}.",
            plan.status
        );
    }
    out
}

/// One job event as a progress line, or `None` for events not shown.
pub fn event_text(event: &JobEvent) -> Option<String> {
    Some(match event {
        JobEvent::Planned { .. } => return None,
        JobEvent::OperationStarted { address, action } => format!("{address}: {}...", verb(address, *action, false)),
        JobEvent::OperationDone { address, action, id, duration_ms } => {
            let id = if id.len() > 12 && id.bytes().all(|b| b.is_ascii_hexdigit()) { &id[..12] } else { id };
            let id = if id.is_empty() { String::new() } else { format!(" [id={id}]") };
            format!("{address}: {} after {:.1}s{id}", verb(address, *action, true), *duration_ms as f64 / 1000.0)
        }
        JobEvent::OperationFailed { address, action, error, duration_ms } => {
            format!(
                "{address}: {} failed after {:.1}s: {error}",
                verb(address, *action, false),
                *duration_ms as f64 / 1000.0
            )
        }
        JobEvent::Message { text } => text.clone(),
        JobEvent::Finished { outcome, done, failed, skipped, duration_ms } => {
            let secs = *duration_ms as f64 / 1000.0;
            match outcome {
                OperationOutcome::Succeeded => format!("Complete after {secs:.1}s: {done} operation(s) done."),
                OperationOutcome::Failed => {
                    format!("Failed after {secs:.1}s: {done} done, {failed} failed, {skipped} skipped.")
                }
                OperationOutcome::Cancelled => format!(
                    "Cancelled after {secs:.1}s: {done} done, {skipped} not started. State records what was done."
                ),
                OperationOutcome::TimedOut => {
                    format!("Timed out after {secs:.1}s: {done} done, {skipped} not started.")
                }
            }
        }
    })
}

/// What a change does, in words: updating a container starts it again, updating a load
/// balancer changes its upstreams.
fn verb(address: &spawnit_model::Address, action: Action, done: bool) -> &'static str {
    let balancer = address.kind == spawnit_model::ResourceKind::LoadBalancer;
    match (action, done) {
        (Action::Update, false) if balancer => "Updating",
        (Action::Update, true) if balancer => "Updated",
        (Action::Create, false) => "Creating",
        (Action::Create, true) => "Created",
        (Action::Update, false) => "Starting",
        (Action::Update, true) => "Started",
        (Action::Replace, false) => "Replacing",
        (Action::Replace, true) => "Replaced",
        (Action::Delete, false) => "Destroying",
        (Action::Delete, true) => "Destroyed",
        (Action::NoOp, _) => "Unchanged",
    }
}

pub fn catalog_text(catalog: &Catalog) -> String {
    let mut out = String::new();
    let w = catalog.templates.iter().map(|t| t.id.as_str().len()).max().unwrap_or(2).max(2);
    let c = catalog.templates.iter().map(|t| t.category.len()).max().unwrap_or(8).max(8);
    let _ = writeln!(out, "{:<w$}  {:<c$}  {:<8}  DESCRIPTION", "ID", "CATEGORY", "VERSION");
    for t in &catalog.templates {
        let _ = writeln!(out, "{:<w$}  {:<c$}  {:<8}  {}", t.id.as_str(), t.category, t.version, t.description);
    }
    out
}

pub fn template_text(t: &Template) -> String {
    let mut out = format!("{} ({}, {} {})\n{}\n\nParameters:\n", t.name, t.category, t.id, t.version, t.description);
    for (name, p) in &t.parameters {
        let kind = match p.param_type() {
            spawnit_model::ParamType::Enum => format!("one of {}", p.choices.join("|")),
            other => format!("{other:?}").to_lowercase(),
        };
        let mut notes = Vec::new();
        if let Some(d) = &p.default {
            notes.push(if p.secret { "default: (sensitive)".to_owned() } else { format!("default: {d}") });
        } else if p.generate.is_some() {
            notes.push("generated if not given".to_owned());
        } else {
            notes.push("required".to_owned());
        }
        if let Some(min) = p.minimum {
            notes.push(format!("min {min}"));
        }
        if let Some(max) = p.maximum {
            notes.push(format!("max {max}"));
        }
        if let Some(pattern) = &p.pattern {
            notes.push(format!("pattern {pattern}"));
        }
        if p.secret {
            notes.push("secret".to_owned());
        }
        let _ = writeln!(
            out,
            "  {name} ({kind}; {}){}",
            notes.join(", "),
            if p.description.is_empty() { String::new() } else { format!(": {}", p.description) }
        );
    }
    out
}

pub fn endpoints_text(endpoints: &[Endpoint]) -> String {
    let mut out = String::new();
    for e in endpoints {
        let target = e.url.clone().unwrap_or_else(|| format!("{}/{}", e.address, e.protocol.as_str()));
        let _ = writeln!(out, "  {:<10} {target}  (container {})", e.name, e.container);
    }
    out
}
