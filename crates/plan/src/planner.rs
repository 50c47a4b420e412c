//! The pure planner: desired resources, recorded state and observed resources in, a [`Plan`] out.
//! No I/O and no clock: every choice apply will carry out is made here, with its reasons.
//!
//! A resource whose attributes changed is replaced, unless its kind can take the change in
//! place ([`in_place_update`]): a security group whose only change is its rules is updated.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use spawnit_model::plan::{Action, Change, Plan, PlanStatus, ReasonCode};
use spawnit_model::resource::{
    Address, DesiredResource, IngressRule, Liveness, ObservedResource, ResourceAttrs, ResourceKind, facts,
};
use spawnit_model::{Redactor, State};

use crate::desired::fingerprint;
use crate::graph::{dependency_map, topological_order};

/// Plans the changes that make the observed world match `desired`.
pub fn plan_apply(
    subject: &str,
    desired: &[DesiredResource],
    state: &State,
    observed: &[ObservedResource],
    redactor: &Redactor,
) -> Plan {
    let order = match topological_order(&dependency_map(desired)) {
        Ok(order) => order,
        Err(e) => return Plan::error(subject, e.to_string()),
    };
    let by_address: BTreeMap<&Address, &DesiredResource> = desired.iter().map(|r| (&r.address, r)).collect();
    let (observed_by, leftovers) = observed_primary(observed, state, &by_address);

    let mut changes: Vec<Change> = Vec::new();
    let mut recreated: BTreeSet<Address> = BTreeSet::new();
    for address in &order {
        let r = by_address[address];
        let fp = fingerprint(&r.attrs);
        let recorded = state.resources.get(address);
        let seen = observed_by.get(address).copied();
        let mut change = Change {
            address: address.clone(),
            action: Action::NoOp,
            code: ReasonCode::NoOpBecauseUnchanged,
            reasons: Vec::new(),
            desired: Some(r.clone()),
            fingerprint: Some(fp.clone()),
            existing_id: seen.map(|o| o.id.clone()),
            depends_on: r.depends_on.clone(),
            outputs: seen.map(observed_outputs).unwrap_or_default(),
            create_before_destroy: false,
        };
        match seen {
            None if address.kind == ResourceKind::Image => {
                change.action = Action::Create;
                change.code = ReasonCode::CreateBecauseImageAbsent;
                change.reasons.push(format!("{} is not present locally: pull it", image_ref(&r.attrs)));
            }
            None => {
                change.action = Action::Create;
                change.code = match recorded {
                    Some(_) => ReasonCode::CreateBecauseRemovedOutside,
                    None => ReasonCode::CreateBecauseNew,
                };
                change.reasons.push(match recorded {
                    Some(rec) if address.kind == ResourceKind::Instance => {
                        format!("terminated or removed outside SpawnIt (was {})", short_id(&rec.id))
                    }
                    Some(rec) => format!("removed outside SpawnIt (was {})", short_id(&rec.id)),
                    None => "not yet created".to_owned(),
                });
            }
            Some(_) if address.kind == ResourceKind::Image => {}
            Some(o) if o.fingerprint.as_deref() != Some(fp.as_str()) => {
                match recorded.filter(|rec| rec.fingerprint != fp) {
                    Some(rec) => {
                        (change.action, change.code) = if in_place_update(&rec.attrs, &r.attrs) {
                            (Action::Update, ReasonCode::UpdateBecauseSpecChanged)
                        } else {
                            (Action::Replace, ReasonCode::ReplaceBecauseCannotUpdate)
                        };
                        change.reasons.extend(attrs_diff(&rec.attrs, &r.attrs));
                        if change.action == Action::Update {
                            change.reasons.extend(update_notes(&rec.attrs, &r.attrs));
                        }
                    }
                    None => {
                        change.action = Action::Replace;
                        change.code = ReasonCode::ReplaceBecauseChangedOutside;
                        change.reasons.push(outside_change(&r.attrs, o));
                    }
                }
                if change.reasons.is_empty() {
                    change.reasons.push("attributes changed".into());
                }
            }
            Some(o) => {
                // A load balancer follows its replicas by updating its upstreams, never by being
                // re-created.
                let dependency = r
                    .depends_on
                    .iter()
                    .filter(|_| address.kind != ResourceKind::LoadBalancer)
                    .find(|d| d.kind != ResourceKind::Image && recreated.contains(*d));
                if let Some(dep) = dependency
                    && matches!(
                        address.kind,
                        ResourceKind::SwarmService
                            | ResourceKind::AutoscalingGroup
                            | ResourceKind::Listener
                            | ResourceKind::LaunchTemplate
                    )
                {
                    // A Swarm service takes any change in place (a rolling service update); an
                    // auto-scaling group or a listener is pointed at the new target group; a
                    // launch template's new version names the new security group or cache.
                    change.action = Action::Update;
                    change.code = ReasonCode::UpdateBecauseSpecChanged;
                    change.reasons.push(format!("depends on {dep}, which is re-created"));
                } else if let Some(dep) = dependency
                    && address.kind == ResourceKind::EcsService
                    && dep.kind != ResourceKind::EcsCluster
                {
                    // An ECS service moves to a new task definition revision or network in place:
                    // a rolling deployment.
                    change.action = Action::Update;
                    change.code = ReasonCode::UpdateBecauseSpecChanged;
                    change.reasons.push(match dep.kind {
                        ResourceKind::TaskDefinition => {
                            format!("{dep} is re-created: a rolling deployment of its new revision")
                        }
                        _ => format!("depends on {dep}, which is re-created: a rolling deployment"),
                    });
                    change.reasons.extend(ecs_drift(&r.attrs, o).unwrap_or_default());
                } else if let Some(dep) = dependency {
                    change.action = Action::Replace;
                    change.code = ReasonCode::ReplaceBecauseDependencyReplaced;
                    change.reasons.push(format!("depends on {dep}, which is re-created"));
                } else if let Some(drift) = ecs_drift(&r.attrs, o) {
                    change.action = Action::Update;
                    change.code = ReasonCode::UpdateBecauseChangedOutside;
                    change.reasons.extend(drift);
                } else if let Some(drift) = swarm_drift(&r.attrs, o) {
                    change.action = Action::Update;
                    change.code = ReasonCode::UpdateBecauseChangedOutside;
                    change.reasons.extend(drift);
                } else if let Some(drift) = upstream_drift(&r.attrs, recorded.map(|rec| &rec.attrs), o) {
                    change.action = Action::Update;
                    (change.code, change.reasons) = drift;
                } else if let Some(drift) = ingress_drift(&r.attrs, o) {
                    change.action = Action::Update;
                    change.code = ReasonCode::UpdateBecauseChangedOutside;
                    change.reasons.extend(drift);
                } else if let Some(drift) = scale_drift(&r.attrs, o) {
                    change.action = Action::Update;
                    change.code = ReasonCode::UpdateBecauseChangedOutside;
                    change.reasons.extend(drift);
                } else if o.liveness == Liveness::Stopped {
                    change.action = Action::Update;
                    change.code = ReasonCode::UpdateBecauseStopped;
                    change.reasons.push("stopped outside SpawnIt: start it".into());
                } else if recorded.is_none() {
                    change.code = ReasonCode::NoOpBecauseAdopted;
                    change.reasons.push(format!("adopted: found {} carrying this service's labels", short_id(&o.id)));
                } else if recorded.is_some_and(|rec| rec.id != o.id) {
                    change.code = ReasonCode::NoOpBecauseIdChanged;
                    change.reasons.push(format!("recorded id updated to {}", short_id(&o.id)));
                }
            }
        }
        if matches!(change.action, Action::Create | Action::Replace) {
            recreated.insert(address.clone());
        }
        if change.action == Action::Replace {
            // A replica whose new copy has another name can start beside the old one.
            let old_name = recorded.and_then(|rec| container_name(&rec.attrs));
            change.create_before_destroy =
                address.replica_index().is_some() && old_name.is_some_and(|old| Some(old) != container_name(&r.attrs));
            if change.create_before_destroy {
                change.reasons.push("rolling: the new copy starts and turns healthy before the old one goes".into());
            }
        }
        change.reasons = change.reasons.iter().map(|r| redactor.text(r)).collect();
        changes.push(change);
    }

    // Whatever is recorded or labelled but no longer desired goes, dependents first.
    let mut doomed: BTreeMap<Address, Doomed> = BTreeMap::new();
    for (address, rec) in &state.resources {
        if !by_address.contains_key(address) {
            let id = observed_by.get(address).map(|o| o.id.clone());
            let reason = if id.is_some() {
                (ReasonCode::DeleteBecauseNotDesired, "no longer in the spec")
            } else {
                (ReasonCode::DeleteBecauseAlreadyGone, "already gone: forget it")
            };
            doomed.insert(address.clone(), (id, rec.depends_on.clone(), reason));
        }
    }
    for o in observed {
        if o.address.kind != ResourceKind::Image
            && !by_address.contains_key(&o.address)
            && !doomed.contains_key(&o.address)
        {
            doomed.insert(
                o.address.clone(),
                (
                    Some(o.id.clone()),
                    Vec::new(),
                    (ReasonCode::DeleteBecauseFoundByLabels, "carries this service's labels but is not in the spec"),
                ),
            );
        }
    }
    for o in leftovers {
        let address =
            Address::new(o.address.kind, format!("{}#{}", o.address.name, &short_id(&o.id)[..8.min(o.id.len())]));
        doomed.insert(
            address,
            (
                Some(o.id.clone()),
                Vec::new(),
                (ReasonCode::DeleteBecauseFoundByLabels, "a second copy (left by an interrupted update)"),
            ),
        );
    }
    changes.extend(deletes_ordered(doomed));
    scale_notes(&mut changes, desired, state);
    rollout_order(&mut changes, desired);
    let status =
        if changes.iter().any(|c| c.action != Action::NoOp) { PlanStatus::Drifted } else { PlanStatus::Compliant };
    Plan { subject: subject.to_owned(), status, changes, errors: Vec::new() }
}

/// Plans the removal of everything recorded or labelled (images, being shared, stay).
pub fn plan_destroy(subject: &str, state: &State, observed: &[ObservedResource]) -> Plan {
    let (observed_by, leftovers) = observed_primary(observed, state, &BTreeMap::new());
    let mut doomed = BTreeMap::new();
    for o in leftovers {
        let address =
            Address::new(o.address.kind, format!("{}#{}", o.address.name, &short_id(&o.id)[..8.min(o.id.len())]));
        doomed.insert(
            address,
            (Some(o.id.clone()), Vec::new(), (ReasonCode::DeleteBecauseDestroy, "destroy (a second copy)")),
        );
    }
    for (address, rec) in &state.resources {
        let id = observed_by.get(address).map(|o| o.id.clone());
        let reason = if id.is_some() {
            (ReasonCode::DeleteBecauseDestroy, "destroy")
        } else {
            (ReasonCode::DeleteBecauseAlreadyGone, "already gone: forget it")
        };
        doomed.insert(address.clone(), (id, rec.depends_on.clone(), reason));
    }
    for o in observed {
        if o.address.kind != ResourceKind::Image && !doomed.contains_key(&o.address) {
            doomed.insert(
                o.address.clone(),
                (
                    Some(o.id.clone()),
                    Vec::new(),
                    (ReasonCode::DeleteBecauseDestroy, "destroy (found by its labels, not in state)"),
                ),
            );
        }
    }
    let changes = deletes_ordered(doomed);
    let status = if changes.is_empty() { PlanStatus::Compliant } else { PlanStatus::Drifted };
    Plan { subject: subject.to_owned(), status, changes, errors: Vec::new() }
}

/// A resource to delete: its provider id if it is still there, its recorded dependencies, and
/// why (code and text).
type Doomed = (Option<String>, Vec<Address>, (ReasonCode, &'static str));

/// Delete changes where each waits for the deletion of whatever depends on it. Resources known
/// only by their labels have no recorded dependencies: containers then go before the rest.
fn deletes_ordered(doomed: BTreeMap<Address, Doomed>) -> Vec<Change> {
    let mut dependents: BTreeMap<Address, Vec<Address>> = doomed.keys().map(|a| (a.clone(), Vec::new())).collect();
    for (address, (_, deps, _)) in &doomed {
        for d in deps {
            if let Some(list) = dependents.get_mut(d) {
                list.push(address.clone());
            }
        }
    }
    // Containers, instances, groups and caches use the rest (load balancers, templates, then
    // volumes, networks, security groups): each tier waits for the tiers before it.
    for (address, list) in dependents.iter_mut() {
        for other in doomed.keys().filter(|a| delete_tier(a.kind) < delete_tier(address.kind)) {
            if !list.contains(other) {
                list.push(other.clone());
            }
        }
        list.sort();
    }
    let order = topological_order(&dependents).unwrap_or_else(|_| dependents.keys().cloned().collect());
    order
        .into_iter()
        .filter_map(|address| {
            let (id, _, (code, reason)) = doomed.get(&address)?.clone();
            Some(Change {
                depends_on: dependents.get(&address).cloned().unwrap_or_default(),
                address,
                action: Action::Delete,
                code,
                reasons: vec![reason.to_owned()],
                desired: None,
                fingerprint: None,
                existing_id: id,
                outputs: Default::default(),
                create_before_destroy: false,
            })
        })
        .collect()
}

/// When a resource may be deleted among resources known only by their labels: a tier waits for
/// every lower one. Consumers first, then what they use (a load balancer before its security
/// group, a target group after the group and listener using it, a cache before its subnet
/// group), then the rest. A kind never waits for a kind of a higher tier it may depend on (a
/// launch template, or an ECS task's SSM parameter holding the cache's URL, names the cache:
/// all are tier 1, their recorded dependency orders them; a tier-2 parameter would wait for the
/// cache that waits for it, and nothing after the consumers would go).
pub fn delete_tier(kind: ResourceKind) -> u8 {
    match kind {
        ResourceKind::Container
        | ResourceKind::Instance
        | ResourceKind::LoadBalancer
        | ResourceKind::SwarmService
        | ResourceKind::AutoscalingGroup
        | ResourceKind::Listener => 0,
        ResourceKind::EcsService => 0,
        ResourceKind::Alb
        | ResourceKind::TargetGroup
        | ResourceKind::LaunchTemplate
        | ResourceKind::Cache
        | ResourceKind::SsmParameter
        | ResourceKind::TaskDefinition => 1,
        _ => 2,
    }
}

/// The observed resource of each address, and the others found under an address that already
/// has one (a replica's old copy left by an interrupted rolling update): the one recorded in
/// state wins, then the one matching the desired fingerprint, then the first found.
fn observed_primary<'a>(
    observed: &'a [ObservedResource],
    state: &State,
    desired: &BTreeMap<&Address, &DesiredResource>,
) -> (BTreeMap<&'a Address, &'a ObservedResource>, Vec<&'a ObservedResource>) {
    let mut groups: BTreeMap<&Address, Vec<&ObservedResource>> = BTreeMap::new();
    for o in observed {
        groups.entry(&o.address).or_default().push(o);
    }
    let mut primary = BTreeMap::new();
    let mut leftovers = Vec::new();
    for (address, mut found) in groups {
        let rank = |o: &ObservedResource| {
            let recorded = state.resources.get(address).is_some_and(|r| r.id == o.id);
            let wanted = desired.get(address).is_some_and(|d| o.fingerprint.as_deref() == Some(&fingerprint(&d.attrs)));
            (!recorded, !wanted)
        };
        found.sort_by_key(|o| rank(o));
        let mut found = found.into_iter();
        if let Some(first) = found.next() {
            primary.insert(address, first);
        }
        if address.kind != ResourceKind::Image {
            leftovers.extend(found);
        }
    }
    (primary, leftovers)
}

fn container_name(attrs: &ResourceAttrs) -> Option<&str> {
    match attrs {
        ResourceAttrs::Container(c) => Some(&c.name),
        _ => None,
    }
}

/// For a load balancer: how its upstreams (as found on the proxy) differ from the spec's, and
/// whether the spec changed them (a scale) or someone else did; with the same upstreams, whether
/// its configuration differs from the one SpawnIt renders.
fn upstream_drift(
    desired: &ResourceAttrs,
    recorded: Option<&ResourceAttrs>,
    observed: &ObservedResource,
) -> Option<(ReasonCode, Vec<String>)> {
    let ResourceAttrs::LoadBalancer(lb) = desired else { return None };
    let found: Vec<&str> = observed.facts.get(facts::UPSTREAMS)?.split(',').filter(|u| !u.is_empty()).collect();
    let wanted: Vec<&str> = lb.upstreams.iter().map(String::as_str).collect();
    if found == wanted {
        // Same upstreams: is the rest of the configuration the one SpawnIt renders?
        let digest = observed.facts.get(facts::CONFIG_DIGEST)?;
        return (*digest != crate::balancer::config_digest(&crate::balancer::caddyfile(lb))).then(|| {
            let reason = "its configuration was edited outside SpawnIt: write it again and reload";
            (ReasonCode::UpdateBecauseChangedOutside, vec![reason.to_owned()])
        });
    }
    let mut reasons: Vec<String> =
        wanted.iter().filter(|u| !found.contains(u)).map(|u| format!("upstream {u} added")).collect();
    reasons.extend(found.iter().filter(|u| !wanted.contains(u)).map(|u| format!("upstream {u} removed")));
    if reasons.is_empty() {
        reasons.push("upstreams reordered".into());
    }
    let by_spec = matches!(recorded, Some(ResourceAttrs::LoadBalancer(rec)) if rec.upstreams != lb.upstreams);
    let code = if by_spec { ReasonCode::UpdateBecauseSpecChanged } else { ReasonCode::UpdateBecauseChangedOutside };
    if !by_spec {
        reasons = reasons.into_iter().map(|r| format!("{r} outside SpawnIt")).collect();
    }
    Some((code, reasons))
}

/// Says "scale web 2 → 3" on the replicas a change of replica count creates or deletes.
fn scale_notes(changes: &mut [Change], desired: &[DesiredResource], state: &State) {
    let count = |addresses: &mut dyn Iterator<Item = &Address>| {
        let mut n: BTreeMap<String, u32> = BTreeMap::new();
        for a in addresses.filter(|a| a.kind == ResourceKind::Container && a.replica_index().is_some()) {
            *n.entry(Address::replica_group(&a.name).to_owned()).or_default() += 1;
        }
        n
    };
    let before = count(&mut state.resources.keys());
    let after = count(&mut desired.iter().map(|r| &r.address));
    for change in changes.iter_mut() {
        if !matches!(change.action, Action::Create | Action::Delete) || change.address.name.contains('#') {
            continue;
        }
        let Some(index) = change.address.replica_index() else { continue };
        let group = Address::replica_group(&change.address.name);
        let (b, a) = (before.get(group).copied().unwrap_or(0), after.get(group).copied().unwrap_or(0));
        let scaled = match change.action {
            Action::Create => b > 0 && index >= b,
            _ => index >= a,
        };
        if scaled && a != b {
            change.reasons.push(format!("scale {group} {b} → {a}"));
        }
    }
}

/// Behind a load balancer, the changes of the replicas it fronts happen one at a time, in
/// replica order (`max_unavailable = 0`: each new copy serves before an old one goes), and the
/// balancer's own change comes after them.
fn rollout_order(changes: &mut [Change], desired: &[DesiredResource]) {
    for lb in desired.iter().filter_map(|r| match &r.attrs {
        ResourceAttrs::LoadBalancer(lb) => Some((&r.address, lb)),
        _ => None,
    }) {
        let (lb_address, lb) = lb;
        let members: Vec<usize> = (0..changes.len())
            .filter(|&i| changes[i].action != Action::NoOp && lb.fronts(&changes[i].address))
            .collect();
        let mut previous: Option<Address> = None;
        for &i in &members {
            if let Some(p) = previous.take() {
                if !changes[i].depends_on.contains(&p) {
                    changes[i].depends_on.push(p);
                }
            }
            previous = Some(changes[i].address.clone());
        }
        if let (Some(last), Some(c)) = (previous, changes.iter_mut().find(|c| &c.address == lb_address)) {
            if c.action != Action::Delete && !c.depends_on.contains(&last) {
                c.depends_on.push(last);
            }
        }
    }
}

/// Whether a resource created from `before` can be changed in place into `after`, by kind:
/// a security group when only its ingress rules differ. Everything else (a container, an
/// instance type, an instance's containers…) is replaced.
pub fn in_place_update(before: &ResourceAttrs, after: &ResourceAttrs) -> bool {
    match (before, after) {
        (ResourceAttrs::SecurityGroup(b), ResourceAttrs::SecurityGroup(a)) => {
            b.name == a.name && b.description == a.description && b.region == a.region && b.vpc_id == a.vpc_id
        }
        // Swarm updates a service in place, rolling its tasks (start-first, rolled back on failure).
        (ResourceAttrs::SwarmService(b), ResourceAttrs::SwarmService(a)) => b.name == a.name,
        // New content is a new version of the same launch template.
        (ResourceAttrs::LaunchTemplate(b), ResourceAttrs::LaunchTemplate(a)) => {
            b.name == a.name && b.instance.region == a.instance.region
        }
        // Bounds, desired count, policy, subnets, target group: UpdateAutoScalingGroup; a new
        // launch template version: an instance refresh.
        (ResourceAttrs::AutoscalingGroup(b), ResourceAttrs::AutoscalingGroup(a)) => {
            b.name == a.name && b.region == a.region && b.vpc_id == a.vpc_id
        }
        // Health check and stickiness change in place; port, target type or VPC need a new group.
        (ResourceAttrs::TargetGroup(b), ResourceAttrs::TargetGroup(a)) => {
            b.name == a.name
                && b.region == a.region
                && b.vpc_id == a.vpc_id
                && b.port == a.port
                && b.target_type == a.target_type
        }
        (ResourceAttrs::Listener(b), ResourceAttrs::Listener(a)) => {
            b.region == a.region && b.load_balancer == a.load_balancer
        }
        // ECS: a service's desired count, scaling, task definition and network (a rolling
        // deployment); a role's policies; a log group's retention.
        (ResourceAttrs::EcsService(b), ResourceAttrs::EcsService(a)) => {
            b.name == a.name && b.region == a.region && b.cluster == a.cluster && b.load_balancer == a.load_balancer
        }
        (ResourceAttrs::IamRole(b), ResourceAttrs::IamRole(a)) => {
            b.name == a.name && b.region == a.region && b.trust_service == a.trust_service
        }
        (ResourceAttrs::LogGroup(b), ResourceAttrs::LogGroup(a)) => b.name == a.name && b.region == a.region,
        // An instance profile's role is put back in place; a new name is a new profile.
        (ResourceAttrs::InstanceProfile(b), ResourceAttrs::InstanceProfile(a)) => {
            b.name == a.name && b.region == a.region
        }
        _ => false,
    }
}

/// The observed outputs (facts under `output.`), without the prefix.
fn observed_outputs(o: &ObservedResource) -> BTreeMap<String, String> {
    o.facts.iter().filter_map(|(k, v)| Some((k.strip_prefix(facts::OUTPUT_PREFIX)?.to_owned(), v.clone()))).collect()
}

/// For a Swarm service whose provider reported its replica count, image and environment: how
/// they differ from the spec (scaled, or updated with `docker service update`, outside SpawnIt).
/// Environment values are never shown, only that they differ.
fn swarm_drift(desired: &ResourceAttrs, observed: &ObservedResource) -> Option<Vec<String>> {
    let ResourceAttrs::SwarmService(s) = desired else { return None };
    let mut reasons = Vec::new();
    if let Some(found) = observed.facts.get(facts::REPLICAS)
        && *found != s.replicas.to_string()
    {
        reasons.push(format!("scaled outside SpawnIt: {found} replicas instead of {}", s.replicas));
    }
    // Providers report the image without a `@sha256:` pin; compare it the same way.
    if let Some(found) = observed.facts.get(facts::IMAGE)
        && found.as_str() != s.image.split('@').next().unwrap_or(&s.image)
    {
        reasons.push(format!("image changed outside SpawnIt: {} → {found}", s.image));
    }
    if let Some(found) = observed.facts.get(facts::ENV_DIGEST)
        && *found != crate::swarm::env_digest(&s.env)
    {
        reasons.push("environment changed outside SpawnIt".to_owned());
    }
    (!reasons.is_empty()).then_some(reasons)
}

/// For an auto-scaling group or a target group whose provider reported them: bounds, CPU
/// target, a desired count outside the bounds, stickiness or health check changed outside
/// SpawnIt.
fn scale_drift(desired: &ResourceAttrs, observed: &ObservedResource) -> Option<Vec<String>> {
    let mut reasons = Vec::new();
    let mut compare = |key: &str, what: &str, wanted: String| {
        if let Some(found) = observed.facts.get(key)
            && *found != wanted
        {
            reasons.push(format!("{what} changed outside SpawnIt: {found} instead of {wanted}"));
        }
    };
    match desired {
        ResourceAttrs::AutoscalingGroup(g) => {
            compare(facts::MIN, "minimum size", g.min.to_string());
            compare(facts::MAX, "maximum size", g.max.to_string());
            compare(facts::TARGET_CPU, "target-tracking CPU target", g.target_cpu_percent.to_string());
            // The target-tracking policy moves the desired count between the bounds (as the
            // ECS autoscaler does a service's): only a count outside them is drift.
            if let Some(found) = observed.facts.get(facts::DESIRED)
                && !found.parse::<u32>().is_ok_and(|n| (g.min..=g.max).contains(&n))
            {
                reasons.push(format!(
                    "desired count changed outside SpawnIt: {found}, outside the bounds {}–{}",
                    g.min, g.max
                ));
            }
        }
        ResourceAttrs::TargetGroup(t) => {
            compare(facts::STICKY, "stickiness (lb_cookie)", t.sticky.to_string());
            compare(facts::HEALTH_PATH, "health check path", t.health_path.clone());
        }
        _ => return None,
    }
    (!reasons.is_empty()).then_some(reasons)
}

/// For ECS resources whose provider reported them: a desired count outside the autoscaler's
/// bounds (or, without autoscaling, another count), autoscaling or the load balancer removed or
/// changed, a log group's retention, a role's policies, each changed outside SpawnIt. A count
/// within the bounds is the autoscaler's doing, not drift.
fn ecs_drift(desired: &ResourceAttrs, observed: &ObservedResource) -> Option<Vec<String>> {
    let mut reasons = Vec::new();
    match desired {
        ResourceAttrs::EcsService(s) => {
            if let Some(found) = observed.facts.get(facts::DESIRED_COUNT) {
                let n: Option<u32> = found.parse().ok();
                match &s.scaling {
                    Some(sc) if !n.is_some_and(|n| (sc.min..=sc.max).contains(&n)) => reasons.push(format!(
                        "desired count changed outside SpawnIt: {found} tasks, outside the autoscaling bounds {}–{}",
                        sc.min, sc.max
                    )),
                    None if n != Some(s.desired_count) => reasons.push(format!(
                        "desired count changed outside SpawnIt: {found} tasks instead of {}",
                        s.desired_count
                    )),
                    _ => {}
                }
            }
            if let Some(found) = observed.facts.get(facts::SCALING) {
                let wanted = s.scaling.as_ref().map(|sc| sc.text()).unwrap_or_else(|| "none".into());
                if *found != wanted {
                    reasons.push(format!("autoscaling changed outside SpawnIt: {found} instead of {wanted}"));
                }
            }
            if let Some(found) = observed.facts.get(facts::TARGET_GROUP)
                && (found == "none") != s.load_balancer.is_none()
            {
                reasons.push(if found == "none" {
                    "its load balancer was removed outside SpawnIt".to_owned()
                } else {
                    format!("registers in target group {found}, added outside SpawnIt")
                });
            }
        }
        ResourceAttrs::LogGroup(g) => {
            if let Some(found) = observed.facts.get(facts::RETENTION)
                && *found != g.retention_days.to_string()
            {
                reasons
                    .push(format!("retention changed outside SpawnIt: {found} instead of {} days", g.retention_days));
            }
        }
        ResourceAttrs::InstanceProfile(p) => {
            if let Some(found) = observed.facts.get(facts::ROLES)
                && *found != p.role
            {
                let found = if found.is_empty() { "no role" } else { found.as_str() };
                reasons.push(format!("role changed outside SpawnIt: {found} instead of {}", p.role));
            }
        }
        ResourceAttrs::IamRole(r) => {
            if let Some(found) = observed.facts.get(facts::POLICIES)
                && *found != r.policies_text()
            {
                reasons.push(format!("policies changed outside SpawnIt: {found}"));
            }
        }
        _ => return None,
    }
    (!reasons.is_empty()).then_some(reasons)
}

/// What an update in place of a launch template or an auto-scaling group does on AWS.
fn update_notes(before: &ResourceAttrs, after: &ResourceAttrs) -> Vec<String> {
    match (before, after) {
        (ResourceAttrs::LaunchTemplate(_), ResourceAttrs::LaunchTemplate(_)) => {
            vec!["a new launch template version, made the default".to_owned()]
        }
        (ResourceAttrs::AutoscalingGroup(b), ResourceAttrs::AutoscalingGroup(a))
            if b.launch_template_digest != a.launch_template_digest =>
        {
            vec!["an instance refresh replaces the instances with the new launch template version".to_owned()]
        }
        _ => Vec::new(),
    }
}

/// For a security group whose provider reported its rules: how they differ from the spec.
fn ingress_drift(desired: &ResourceAttrs, observed: &ObservedResource) -> Option<Vec<String>> {
    let ResourceAttrs::SecurityGroup(g) = desired else { return None };
    let found = observed.facts.get(facts::INGRESS)?;
    let wanted = g.ingress_text();
    if *found == wanted {
        return None;
    }
    let set = |s: &str| -> BTreeSet<String> { s.split(", ").filter(|r| !r.is_empty()).map(str::to_owned).collect() };
    let (found, wanted) = (set(found), set(&wanted));
    let mut reasons: Vec<String> =
        wanted.difference(&found).map(|r| format!("rule {r} removed outside SpawnIt")).collect();
    reasons.extend(found.difference(&wanted).map(|r| format!("rule {r} added outside SpawnIt")));
    Some(reasons)
}

fn image_ref(attrs: &ResourceAttrs) -> &str {
    match attrs {
        ResourceAttrs::Image(i) => &i.reference,
        _ => "image",
    }
}

fn short_id(id: &str) -> &str {
    if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) { &id[..12] } else { id }
}

/// Why an observed resource whose fingerprint differs (while the spec did not change) drifted.
fn outside_change(desired: &ResourceAttrs, observed: &ObservedResource) -> String {
    if let (ResourceAttrs::Container(c), Some(image)) = (desired, observed.facts.get("image")) {
        if *image != c.image {
            return format!("image changed outside SpawnIt: {} → {image}", c.image);
        }
    }
    match &observed.fingerprint {
        Some(_) => "changed outside SpawnIt (its recorded fingerprint differs)".to_owned(),
        None => "replaced outside SpawnIt (it carries no fingerprint)".to_owned(),
    }
}

/// Human reasons for a change of attributes between the recorded and the desired resource.
/// Values are shown only for fields that never hold secrets; env and command changes name the
/// variable or field only, since old secret values are not known to the redactor.
pub fn attrs_diff(before: &ResourceAttrs, after: &ResourceAttrs) -> Vec<String> {
    let (Ok(Value::Object(b)), Ok(Value::Object(a))) = (serde_json::to_value(before), serde_json::to_value(after))
    else {
        return vec!["attributes changed".into()];
    };
    fields_diff(&b, &a)
}

/// [`attrs_diff`] of two serialized attribute objects (a resource's, or one container's).
fn fields_diff(b: &serde_json::Map<String, Value>, a: &serde_json::Map<String, Value>) -> Vec<String> {
    let keys: BTreeSet<&String> = b.keys().chain(a.keys()).collect();
    let mut out = Vec::new();
    for key in keys {
        let (old, new) = (b.get(key.as_str()), a.get(key.as_str()));
        if old == new {
            continue;
        }
        match key.as_str() {
            "image" | "network" | "name" | "reference" | "driver" | "region" | "instance_type" | "ami"
            | "ami_owner" | "ami_name" | "key_name" | "subnet_id" | "vpc_id" | "description" | "replicas"
            | "endpoint_mode" | "restart_delay_s" | "stop_grace_s" | "constraints" | "min" | "max" | "desired"
            | "target_cpu_percent" | "sticky" | "health_path" | "port" | "target_type" | "node_type"
            | "desired_count" | "scaling" | "retention_days" | "cpu" | "memory_mb" | "family" | "trust_service"
            | "managed_policies" | "subnet_ids" | "assign_public_ip" => {
                out.push(format!("{key} changed {} → {}", plain(old), plain(new)));
            }
            "ingress" => {
                let rules = |v: Option<&Value>| -> String {
                    let rules: Vec<IngressRule> =
                        v.and_then(|v| serde_json::from_value(v.clone()).ok()).unwrap_or_default();
                    if rules.is_empty() { "(none)".to_owned() } else { IngressRule::canonical(&rules) }
                };
                out.push(format!("ingress rules changed {} → {}", rules(old), rules(new)));
            }
            "containers" => out.extend(containers_diff(old, new)),
            "ports" => out.push(format!("ports changed {} → {}", ports_text(old), ports_text(new))),
            "env" => {
                let empty = serde_json::Map::new();
                let ob = old.and_then(Value::as_object).unwrap_or(&empty);
                let nb = new.and_then(Value::as_object).unwrap_or(&empty);
                for k in ob.keys().chain(nb.keys()).collect::<BTreeSet<_>>() {
                    match (ob.get(k), nb.get(k)) {
                        (None, Some(_)) => out.push(format!("env {k} added")),
                        (Some(_), None) => out.push(format!("env {k} removed")),
                        (Some(x), Some(y)) if x != y => out.push(format!("env {k} changed")),
                        _ => {}
                    }
                }
            }
            "mounts" => out.push("volumes changed".into()),
            "launch_template_digest" => out.push("launch template content changed".into()),
            "instance" => {
                let instance = |v: Option<&Value>| -> Option<ResourceAttrs> {
                    serde_json::from_value(v?.clone()).ok().map(ResourceAttrs::Instance)
                };
                match (instance(old), instance(new)) {
                    (Some(b), Some(a)) => out.extend(attrs_diff(&b, &a)),
                    _ => out.push("instance changed".into()),
                }
            }
            "ingress_groups" => out.push("ingress rules from other groups changed".into()),
            "auth_token" => out.push("AUTH token changed".into()),
            "health" => out.push("health check changed".into()),
            other => out.push(format!("{other} changed")),
        }
    }
    out
}

/// The changes of an instance's containers, container by container, as [`attrs_diff`] tells
/// them for a Docker container (so secret values never show).
fn containers_diff(old: Option<&Value>, new: Option<&Value>) -> Vec<String> {
    let list = |v: Option<&Value>| -> BTreeMap<String, serde_json::Map<String, Value>> {
        let items = v.and_then(Value::as_array).cloned().unwrap_or_default();
        items
            .into_iter()
            .filter_map(|c| match c {
                Value::Object(o) => Some((plain(o.get("name")), o)),
                _ => None,
            })
            .collect()
    };
    let (old, new) = (list(old), list(new));
    let mut out = Vec::new();
    for name in old.keys().chain(new.keys()).collect::<BTreeSet<_>>() {
        match (old.get(name), new.get(name)) {
            (Some(_), None) => out.push(format!("container {name} removed")),
            (None, Some(_)) => out.push(format!("container {name} added")),
            (Some(b), Some(a)) if b != a => {
                let diff = fields_diff(b, a);
                out.extend(diff.into_iter().map(|d| format!("container {name}: {d}")));
            }
            _ => {}
        }
    }
    if out.is_empty() {
        out.push("containers changed".into());
    }
    out
}

fn plain(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "(none)".into(),
    }
}

fn ports_text(v: Option<&Value>) -> String {
    let Some(Value::Array(ports)) = v else { return "(none)".into() };
    if ports.is_empty() {
        return "(none)".into();
    }
    ports
        .iter()
        .map(|p| match p.get("host") {
            Some(_) => format!("{}:{}→{}", plain(p.get("host_ip")), plain(p.get("host")), plain(p.get("container"))),
            None => format!("{}/{}", plain(p.get("container")), plain(p.get("protocol"))),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use spawnit_model::ResourceState;
    use spawnit_model::resource::{ContainerAttrs, ImageAttrs, VolumeAttrs};

    fn container(image: &str) -> DesiredResource {
        DesiredResource {
            address: Address::new(ResourceKind::Container, "web"),
            attrs: ResourceAttrs::Container(ContainerAttrs {
                name: "spawnit-c-s-web".into(),
                image: image.into(),
                entrypoint: None,
                command: vec![],
                env: [("PASSWORD".to_owned(), "hunter2".to_owned())].into(),
                ports: vec![],
                mounts: vec![],
                network: "spawnit-c-default".into(),
                aliases: vec![],
                health: None,
                user: None,
                docker_socket: false,
            }),
            depends_on: vec![Address::new(ResourceKind::Image, "web"), Address::new(ResourceKind::Volume, "data")],
        }
    }

    fn desired(image: &str) -> Vec<DesiredResource> {
        vec![
            DesiredResource {
                address: Address::new(ResourceKind::Image, "web"),
                attrs: ResourceAttrs::Image(ImageAttrs { reference: image.into() }),
                depends_on: vec![],
            },
            DesiredResource {
                address: Address::new(ResourceKind::Volume, "data"),
                attrs: ResourceAttrs::Volume(VolumeAttrs { name: "spawnit-c-s-data".into() }),
                depends_on: vec![],
            },
            container(image),
        ]
    }

    fn observed(r: &DesiredResource, id: &str, liveness: Liveness) -> ObservedResource {
        ObservedResource {
            address: r.address.clone(),
            id: id.into(),
            liveness,
            fingerprint: (r.address.kind != ResourceKind::Image).then(|| fingerprint(&r.attrs)),
            facts: Default::default(),
        }
    }

    fn recorded(state: &mut State, r: &DesiredResource, id: &str) {
        state.resources.insert(
            r.address.clone(),
            ResourceState {
                id: id.into(),
                attrs: r.attrs.clone(),
                fingerprint: fingerprint(&r.attrs),
                depends_on: r.depends_on.clone(),
                outputs: Default::default(),
                updated_at: Utc::now(),
            },
        );
    }

    fn actions(plan: &Plan) -> Vec<(String, Action)> {
        plan.changes.iter().map(|c| (c.address.to_string(), c.action)).collect()
    }

    fn secret() -> Redactor {
        Redactor::new(["hunter2".to_owned()])
    }

    #[test]
    fn empty_world_creates_everything_in_dependency_order() {
        let d = desired("redis:7");
        let plan = plan_apply("s", &d, &State::new("l"), &[], &secret());
        assert_eq!(plan.status, PlanStatus::Drifted);
        assert_eq!(
            actions(&plan),
            [
                ("volume.data".into(), Action::Create),
                ("image.web".into(), Action::Create),
                ("container.web".into(), Action::Create)
            ]
        );
        assert_eq!(plan.changes[1].reasons, ["redis:7 is not present locally: pull it"]);
        assert_eq!(plan.changes[2].reasons, ["not yet created"]);
    }

    #[test]
    fn matching_world_is_compliant_and_adoption_is_a_recorded_no_op() {
        let d = desired("redis:7");
        let obs: Vec<_> = d.iter().map(|r| observed(r, "id1", Liveness::Running)).collect();
        let mut state = State::new("l");
        for r in &d[1..] {
            recorded(&mut state, r, "id1");
        }
        let plan = plan_apply("s", &d, &state, &obs, &secret());
        assert_eq!(plan.status, PlanStatus::Compliant, "{plan:?}");

        // Crash between create and state write: nothing recorded, everything labelled.
        let plan = plan_apply("s", &d, &State::new("l"), &obs, &secret());
        assert_eq!(plan.status, PlanStatus::Compliant);
        let c = plan.changes.iter().find(|c| c.address.kind == ResourceKind::Container).unwrap();
        assert_eq!(c.existing_id.as_deref(), Some("id1"));
        assert!(c.reasons[0].starts_with("adopted"), "{:?}", c.reasons);
    }

    #[test]
    fn drift_is_explained() {
        let d = desired("redis:7");
        let mut state = State::new("l");
        for r in &d[1..] {
            recorded(&mut state, r, "id1");
        }
        // Removed outside.
        let obs = vec![observed(&d[0], "img", Liveness::Present), observed(&d[1], "vol", Liveness::Present)];
        let plan = plan_apply("s", &d, &state, &obs, &secret());
        assert_eq!(plan.changes[2].action, Action::Create);
        assert_eq!(plan.changes[2].reasons, ["removed outside SpawnIt (was id1)"]);
        // Stopped outside.
        let mut obs = obs;
        obs.push(observed(&d[2], "id1", Liveness::Stopped));
        let plan = plan_apply("s", &d, &state, &obs, &secret());
        assert_eq!(plan.changes[2].action, Action::Update);
        // Replaced outside by a container of another image.
        obs[2].fingerprint = Some("other".into());
        obs[2].facts.insert("image".into(), "busybox".into());
        let plan = plan_apply("s", &d, &state, &obs, &secret());
        assert_eq!(plan.changes[2].action, Action::Replace);
        assert_eq!(plan.changes[2].reasons, ["image changed outside SpawnIt: redis:7 → busybox"]);
    }

    #[test]
    fn spec_change_replaces_with_reasons_and_never_shows_secrets() {
        let old = desired("redis:7");
        let mut state = State::new("l");
        for r in &old[1..] {
            recorded(&mut state, r, "id1");
        }
        let obs: Vec<_> = old.iter().map(|r| observed(r, "id1", Liveness::Running)).collect();
        let mut new = desired("redis:7.2");
        if let ResourceAttrs::Container(c) = &mut new[2].attrs {
            c.env.insert("PASSWORD".into(), "s3cret-new".into());
        }
        let plan = plan_apply("s", &new, &state, &obs, &Redactor::new(["s3cret-new".to_owned()]));
        let c = &plan.changes[2];
        assert_eq!(c.action, Action::Replace);
        assert_eq!(c.reasons, ["env PASSWORD changed", "image changed redis:7 → redis:7.2"]);
        let text = serde_json::to_string(&plan.changes.iter().map(|c| &c.reasons).collect::<Vec<_>>()).unwrap();
        assert!(!text.contains("hunter2") && !text.contains("s3cret-new"));
    }

    fn aws(ports: &[u16], instance_type: &str) -> Vec<DesiredResource> {
        use spawnit_model::resource::{InstanceAttrs, SecurityGroupAttrs};
        use spawnit_model::spec::Protocol;
        let group = Address::new(ResourceKind::SecurityGroup, "main");
        vec![
            DesiredResource {
                address: group.clone(),
                attrs: ResourceAttrs::SecurityGroup(SecurityGroupAttrs {
                    name: "spawnit-c-s".into(),
                    description: "d".into(),
                    region: "eu-west-3".into(),
                    vpc_id: None,
                    ingress: ports
                        .iter()
                        .map(|&port| IngressRule { protocol: Protocol::Tcp, port, cidr: "10.0.0.0/8".into() })
                        .collect(),
                    ingress_groups: Vec::new(),
                }),
                depends_on: vec![],
            },
            DesiredResource {
                address: Address::new(ResourceKind::Instance, "main"),
                attrs: ResourceAttrs::Instance(InstanceAttrs {
                    name: "spawnit-c-s".into(),
                    region: "eu-west-3".into(),
                    instance_type: instance_type.into(),
                    ami: None,
                    ami_owner: "amazon".into(),
                    ami_name: "amzn2-ami-ecs-hvm-*".into(),
                    key_name: None,
                    subnet_id: None,
                    security_group: group.clone(),
                    volumes: vec![],
                    containers: vec![],
                }),
                depends_on: vec![group],
            },
        ]
    }

    fn aws_world(d: &[DesiredResource]) -> (State, Vec<ObservedResource>) {
        let mut state = State::new("l");
        let mut obs = Vec::new();
        for r in d {
            recorded(&mut state, r, &format!("eu-west-3/{}", r.address.name));
            let mut o = observed(r, &format!("eu-west-3/{}", r.address.name), Liveness::Running);
            if let ResourceAttrs::SecurityGroup(g) = &r.attrs {
                o.facts.insert(facts::INGRESS.into(), IngressRule::canonical(&g.ingress));
            }
            obs.push(o);
        }
        (state, obs)
    }

    #[test]
    fn a_port_change_updates_the_security_group_and_an_instance_type_change_replaces_the_instance() {
        let (state, obs) = aws_world(&aws(&[6379], "t3.micro"));
        assert_eq!(plan_apply("s", &aws(&[6379], "t3.micro"), &state, &obs, &secret()).status, PlanStatus::Compliant);

        let plan = plan_apply("s", &aws(&[6380], "t3.micro"), &state, &obs, &secret());
        assert_eq!(
            actions(&plan),
            [("security_group.main".into(), Action::Update), ("instance.main".into(), Action::NoOp)]
        );
        assert_eq!(
            plan.changes[0].reasons,
            ["ingress rules changed tcp/6379 from 10.0.0.0/8 → tcp/6380 from 10.0.0.0/8"]
        );

        let plan = plan_apply("s", &aws(&[6379], "t3.small"), &state, &obs, &secret());
        assert_eq!(
            actions(&plan),
            [("security_group.main".into(), Action::NoOp), ("instance.main".into(), Action::Replace)]
        );
        assert_eq!(plan.changes[1].reasons, ["instance_type changed t3.micro → t3.small"]);

        // Anything but the rules changed on a group: a new group, and a new instance in it.
        let mut moved = aws(&[6379], "t3.micro");
        if let ResourceAttrs::SecurityGroup(g) = &mut moved[0].attrs {
            g.vpc_id = Some("vpc-0123abcd".into());
        }
        let plan = plan_apply("s", &moved, &state, &obs, &secret());
        assert_eq!(
            actions(&plan),
            [("security_group.main".into(), Action::Replace), ("instance.main".into(), Action::Replace)]
        );
    }

    #[test]
    fn rules_and_instances_changed_outside_are_drift_with_reasons() {
        let d = aws(&[6379], "t3.micro");
        let (state, mut obs) = aws_world(&d);
        obs[0].facts.insert(facts::INGRESS.into(), "tcp/22 from 0.0.0.0/0".into());
        let plan = plan_apply("s", &d, &state, &obs, &secret());
        assert_eq!(plan.changes[0].action, Action::Update);
        assert_eq!(
            plan.changes[0].reasons,
            [
                "rule tcp/6379 from 10.0.0.0/8 removed outside SpawnIt",
                "rule tcp/22 from 0.0.0.0/0 added outside SpawnIt"
            ]
        );
        // Terminated outside: observation ignores terminated instances.
        let (state, mut obs) = aws_world(&d);
        obs.pop();
        let plan = plan_apply("s", &d, &state, &obs, &secret());
        assert_eq!(plan.changes[1].action, Action::Create);
        assert_eq!(plan.changes[1].reasons, ["terminated or removed outside SpawnIt (was eu-west-3/main)"]);
        // Stopped outside: started again in place.
        let (state, mut obs) = aws_world(&d);
        obs[1].liveness = Liveness::Stopped;
        assert_eq!(plan_apply("s", &d, &state, &obs, &secret()).changes[1].action, Action::Update);
        // Destroy: the instance goes before its group, even when known only by its tags.
        let plan = plan_destroy("s", &State::new("l"), &obs);
        assert_eq!(
            actions(&plan),
            [("instance.main".into(), Action::Delete), ("security_group.main".into(), Action::Delete)]
        );
    }

    #[test]
    fn observed_outputs_travel_with_unchanged_resources() {
        let d = aws(&[6379], "t3.micro");
        let (state, mut obs) = aws_world(&d);
        obs[1].facts.insert(facts::PUBLIC_IP.into(), "198.51.100.7".into());
        let plan = plan_apply("s", &d, &state, &obs, &secret());
        assert_eq!(plan.changes[1].outputs.get("public_ip").map(String::as_str), Some("198.51.100.7"));
    }

    #[test]
    fn in_place_is_decided_by_kind() {
        let a = aws(&[1], "t3.micro");
        let b = aws(&[2], "t3.small");
        assert!(in_place_update(&a[0].attrs, &b[0].attrs));
        assert!(!in_place_update(&a[1].attrs, &b[1].attrs));
        assert!(!in_place_update(&container("a").attrs, &container("b").attrs));
    }

    /// Each change's address and code, checking that every code names its change's action.
    fn codes(plan: &Plan) -> Vec<(String, ReasonCode)> {
        for c in &plan.changes {
            let code = serde_json::to_value(c.code).unwrap();
            let action = c.action.as_str().replace('-', "_");
            assert!(code.as_str().unwrap().starts_with(&format!("{action}_because_")), "{c:?}");
        }
        plan.changes.iter().map(|c| (c.address.to_string(), c.code)).collect()
    }

    #[test]
    fn every_case_of_the_planner_has_its_reason_code() {
        use ReasonCode::*;
        let d = desired("redis:7");
        let all_recorded = |id: &str| {
            let mut state = State::new("l");
            for r in &d[1..] {
                recorded(&mut state, r, id);
            }
            state
        };
        let running =
            |d: &[DesiredResource]| -> Vec<_> { d.iter().map(|r| observed(r, "id1", Liveness::Running)).collect() };
        let plan =
            |d: &[DesiredResource], state: &State, obs: &[ObservedResource]| plan_apply("s", d, state, obs, &secret());

        assert_eq!(
            codes(&plan(&d, &State::new("l"), &[])),
            [
                ("volume.data".into(), CreateBecauseNew),
                ("image.web".into(), CreateBecauseImageAbsent),
                ("container.web".into(), CreateBecauseNew)
            ]
        );
        assert_eq!(
            codes(&plan(&d, &all_recorded("id1"), &running(&d))),
            [
                ("volume.data".into(), NoOpBecauseUnchanged),
                ("image.web".into(), NoOpBecauseUnchanged),
                ("container.web".into(), NoOpBecauseUnchanged)
            ]
        );
        assert_eq!(codes(&plan(&d, &State::new("l"), &running(&d)))[2].1, NoOpBecauseAdopted);
        assert_eq!(codes(&plan(&d, &all_recorded("id0"), &running(&d)))[2].1, NoOpBecauseIdChanged);
        assert_eq!(codes(&plan(&d, &all_recorded("id1"), &running(&d)[..2]))[2].1, CreateBecauseRemovedOutside);

        let mut obs = running(&d);
        obs[2].liveness = Liveness::Stopped;
        assert_eq!(codes(&plan(&d, &all_recorded("id1"), &obs))[2].1, UpdateBecauseStopped);
        obs[2].fingerprint = Some("other".into());
        assert_eq!(codes(&plan(&d, &all_recorded("id1"), &obs))[2].1, ReplaceBecauseChangedOutside);
        let mut obs = running(&d);
        obs[1].fingerprint = Some("other".into());
        assert_eq!(
            codes(&plan(&d, &all_recorded("id1"), &obs))[1..],
            [("image.web".into(), NoOpBecauseUnchanged), ("container.web".into(), ReplaceBecauseDependencyReplaced)]
        );
        assert_eq!(
            codes(&plan(&desired("redis:7.2"), &all_recorded("id1"), &running(&d)))[2].1,
            ReplaceBecauseCannotUpdate
        );

        let (state, mut obs) = aws_world(&aws(&[6379], "t3.micro"));
        assert_eq!(codes(&plan(&aws(&[6380], "t3.micro"), &state, &obs))[0].1, UpdateBecauseSpecChanged);
        obs[0].facts.insert(facts::INGRESS.into(), "tcp/22 from 0.0.0.0/0".into());
        assert_eq!(codes(&plan(&aws(&[6379], "t3.micro"), &state, &obs))[0].1, UpdateBecauseChangedOutside);

        // Without its container in the spec: recorded and there, recorded and gone, labelled only.
        let kept = &d[..2];
        let no_container = |codes: Vec<(String, ReasonCode)>| codes.into_iter().find(|(a, _)| a == "container.web");
        let code = |state: &State, obs: &[ObservedResource]| no_container(codes(&plan(kept, state, obs))).map(|c| c.1);
        assert_eq!(code(&all_recorded("id1"), &running(&d)), Some(DeleteBecauseNotDesired));
        assert_eq!(code(&all_recorded("id1"), &running(&d)[..2]), Some(DeleteBecauseAlreadyGone));
        assert_eq!(code(&State::new("l"), &running(&d)), Some(DeleteBecauseFoundByLabels));

        let destroy = plan_destroy("s", &all_recorded("id1"), &running(&d)[..2]);
        assert_eq!(
            codes(&destroy),
            [("container.web".into(), DeleteBecauseAlreadyGone), ("volume.data".into(), DeleteBecauseDestroy)]
        );
        let destroy = plan_destroy("s", &State::new("l"), &running(&d));
        assert_eq!(codes(&destroy).into_iter().map(|c| c.1).collect::<Vec<_>>(), [DeleteBecauseDestroy; 2]);
    }

    /// Replica `i` of container `app` running `image`, named after its revision as
    /// `desired.rs` names it.
    fn replica(i: u32, image: &str) -> DesiredResource {
        let revision = &fingerprint(&ResourceAttrs::Image(ImageAttrs { reference: image.into() }))[..6];
        DesiredResource {
            address: Address::replica("app", i),
            attrs: ResourceAttrs::Container(ContainerAttrs {
                name: format!("spawnit_c_s_app.{i}.{revision}"),
                image: image.into(),
                entrypoint: None,
                command: vec![],
                env: Default::default(),
                ports: vec![],
                mounts: vec![],
                network: "spawnit_c_default".into(),
                aliases: vec!["s-app".into()],
                health: None,
                user: None,
                docker_socket: false,
            }),
            depends_on: vec![Address::new(ResourceKind::Image, "app")],
        }
    }

    /// `n` replicas of `image` behind a load balancer whose upstreams are their names.
    fn balanced(n: u32, image: &str) -> Vec<DesiredResource> {
        use spawnit_model::resource::{LoadBalancerAttrs, PublishedPort};
        use spawnit_model::spec::Protocol;
        let lb_image = Address::new(ResourceKind::Image, "load_balancer");
        let mut out = vec![
            DesiredResource {
                address: Address::new(ResourceKind::Image, "app"),
                attrs: ResourceAttrs::Image(ImageAttrs { reference: image.into() }),
                depends_on: vec![],
            },
            DesiredResource {
                address: lb_image.clone(),
                attrs: ResourceAttrs::Image(ImageAttrs { reference: "caddy:2".into() }),
                depends_on: vec![],
            },
        ];
        out.extend((0..n).map(|i| replica(i, image)));
        let upstreams = out.iter().filter_map(|r| container_name(&r.attrs).map(str::to_owned)).collect();
        let mut depends_on = vec![lb_image];
        depends_on.extend((0..n).map(|i| Address::replica("app", i)));
        out.push(DesiredResource {
            address: Address::new(ResourceKind::LoadBalancer, "main"),
            attrs: ResourceAttrs::LoadBalancer(LoadBalancerAttrs {
                name: "spawnit_c_s_load_balancer".into(),
                image: "caddy:2".into(),
                network: "spawnit_c_default".into(),
                port: PublishedPort {
                    container: 8080,
                    host: 18000,
                    host_ip: "127.0.0.1".into(),
                    protocol: Protocol::Tcp,
                },
                target: "app".into(),
                upstream_port: 80,
                sticky: true,
                health_path: "/health".into(),
                upstreams,
            }),
            depends_on,
        });
        out
    }

    /// The world once `d` was applied: all recorded and running, the proxy serving the
    /// recorded upstreams.
    fn balanced_world(d: &[DesiredResource]) -> (State, Vec<ObservedResource>) {
        let mut state = State::new("l");
        let mut obs = Vec::new();
        for r in d {
            let id = format!("id-{}", r.address.name);
            if r.address.kind != ResourceKind::Image {
                recorded(&mut state, r, &id);
            }
            let mut o = observed(r, &id, Liveness::Running);
            if let ResourceAttrs::LoadBalancer(lb) = &r.attrs {
                o.facts.insert(facts::UPSTREAMS.into(), lb.upstreams.join(","));
            }
            obs.push(o);
        }
        (state, obs)
    }

    fn change<'p>(plan: &'p Plan, address: &str) -> &'p Change {
        plan.changes
            .iter()
            .find(|c| c.address.to_string() == address)
            .unwrap_or_else(|| panic!("no change for {address}: {:?}", actions(plan)))
    }

    fn name_of(r: &DesiredResource) -> String {
        container_name(&r.attrs).unwrap_or_default().to_owned()
    }

    #[test]
    fn replicas_behind_a_load_balancer_roll_one_at_a_time_and_the_balancer_changes_last() {
        let (state, obs) = balanced_world(&balanced(3, "app:1"));
        assert_eq!(plan_apply("s", &balanced(3, "app:1"), &state, &obs, &secret()).status, PlanStatus::Compliant);

        let plan = plan_apply("s", &balanced(3, "app:2"), &state, &obs, &secret());
        assert_eq!(
            actions(&plan),
            [
                ("image.app".into(), Action::NoOp),
                ("image.load_balancer".into(), Action::NoOp),
                ("container.app[0]".into(), Action::Replace),
                ("container.app[1]".into(), Action::Replace),
                ("container.app[2]".into(), Action::Replace),
                ("load_balancer.main".into(), Action::Update),
            ]
        );
        // Each replica waits for the one before it; the first for no other replica.
        let replicas: Vec<Address> = (0..3).map(|i| Address::replica("app", i)).collect();
        assert!(!change(&plan, "container.app[0]").depends_on.iter().any(|d| replicas.contains(d)));
        assert!(change(&plan, "container.app[1]").depends_on.contains(&replicas[0]));
        assert!(change(&plan, "container.app[2]").depends_on.contains(&replicas[1]));
        assert!(!change(&plan, "container.app[2]").depends_on.contains(&replicas[0]), "a chain, not a fan-in");
        assert!(change(&plan, "load_balancer.main").depends_on.contains(&replicas[2]));
        let order =
            topological_order(&plan.changes.iter().map(|c| (c.address.clone(), c.depends_on.clone())).collect())
                .unwrap();
        let at = |a: &str| order.iter().position(|o| o.to_string() == a).unwrap();
        assert!(at("container.app[0]") < at("container.app[1]") && at("container.app[1]") < at("container.app[2]"));
        assert!(at("container.app[2]") < at("load_balancer.main"));

        // Scaling out: the new replica, then the balancer.
        let plan = plan_apply("s", &balanced(4, "app:1"), &state, &obs, &secret());
        assert!(change(&plan, "load_balancer.main").depends_on.contains(&Address::replica("app", 3)));
        // Scaling in: replicas leave one at a time, the balancer's own change after the last.
        let plan = plan_apply("s", &balanced(1, "app:1"), &state, &obs, &secret());
        assert_eq!(change(&plan, "container.app[1]").action, Action::Delete);
        assert!(change(&plan, "container.app[2]").depends_on.contains(&replicas[1]));
        assert!(change(&plan, "load_balancer.main").depends_on.contains(&replicas[2]));
    }

    #[test]
    fn a_replica_whose_name_changes_is_created_before_its_old_copy_goes() {
        let old = balanced(3, "app:1");
        let (state, obs) = balanced_world(&old);
        let new = balanced(3, "app:2");
        let plan = plan_apply("s", &new, &state, &obs, &secret());
        for i in 0..3 {
            let c = change(&plan, &format!("container.app[{i}]"));
            assert!(c.create_before_destroy, "{c:?}");
            assert_eq!(c.code, ReasonCode::ReplaceBecauseCannotUpdate);
            assert_eq!(
                c.reasons,
                [
                    "image changed app:1 → app:2".to_owned(),
                    format!("name changed {} → {}", name_of(&old[2 + i]), name_of(&new[2 + i])),
                    "rolling: the new copy starts and turns healthy before the old one goes".to_owned(),
                ]
            );
        }

        // A replica changed under the same name cannot start beside its old copy.
        let mut same_name = balanced(3, "app:1");
        if let ResourceAttrs::Container(c) = &mut same_name[2].attrs {
            c.env.insert("MODE".into(), "b".into());
        }
        let plan = plan_apply("s", &same_name, &state, &obs, &secret());
        let c = change(&plan, "container.app[0]");
        assert_eq!((c.action, c.create_before_destroy), (Action::Replace, false), "{c:?}");
        assert!(!c.reasons.iter().any(|r| r.starts_with("rolling")), "{c:?}");

        // Nor is a container that is not a replica, even renamed.
        let d = desired("redis:7");
        let mut state = State::new("l");
        for r in &d[1..] {
            recorded(&mut state, r, "id1");
        }
        let obs: Vec<_> = d.iter().map(|r| observed(r, "id1", Liveness::Running)).collect();
        let mut renamed = desired("redis:7");
        if let ResourceAttrs::Container(c) = &mut renamed[2].attrs {
            c.name = "spawnit-c-s-web2".into();
        }
        let c = &plan_apply("s", &renamed, &state, &obs, &secret()).changes[2];
        assert_eq!((c.action, c.create_before_destroy), (Action::Replace, false), "{c:?}");
    }

    #[test]
    fn a_second_copy_of_a_replica_is_deleted_under_its_own_address() {
        let d = balanced(3, "app:2");
        let (state, mut obs) = balanced_world(&d);
        // Left by an interrupted rolling update: the old copy, still labelled container.app[0].
        let stray = "0123456789abcdef".repeat(4);
        let mut second = observed(&balanced(3, "app:1")[2], &stray, Liveness::Running);
        assert_eq!(second.address, Address::replica("app", 0));
        second.facts.insert("image".into(), "app:1".into());
        obs.push(second);

        let plan = plan_apply("s", &d, &state, &obs, &secret());
        assert_eq!(plan.status, PlanStatus::Drifted);
        // The recorded copy stays the replica; the other goes under an address of its own.
        let kept = change(&plan, "container.app[0]");
        assert_eq!((kept.action, kept.existing_id.as_deref()), (Action::NoOp, Some("id-app[0]")));
        let c = change(&plan, "container.app[0]#01234567");
        assert_eq!(c.action, Action::Delete);
        assert_eq!(c.code, ReasonCode::DeleteBecauseFoundByLabels);
        assert_eq!(c.existing_id.as_deref(), Some(stray.as_str()));
        assert_eq!(c.reasons, ["a second copy (left by an interrupted update)"]);
        assert_eq!(plan.changes.iter().filter(|c| c.action != Action::NoOp).count(), 1, "{:?}", actions(&plan));
        assert_eq!(Address::replica_group("app[0]#01234567"), "app");

        // Destroy removes both copies.
        let destroy = plan_destroy("s", &state, &obs);
        let c = change(&destroy, "container.app[0]#01234567");
        assert_eq!((c.action, c.existing_id.as_deref()), (Action::Delete, Some(stray.as_str())));
        assert_eq!(change(&destroy, "container.app[0]").existing_id.as_deref(), Some("id-app[0]"));
    }

    #[test]
    fn upstream_drift_is_an_update_with_reasons_and_never_a_replace() {
        let d = balanced(3, "app:1");
        let names: Vec<String> = d[2..5].iter().map(name_of).collect();

        // Edited outside SpawnIt: one upstream missing, one unknown.
        let (state, mut obs) = balanced_world(&d);
        let lb = obs.iter_mut().find(|o| o.address.kind == ResourceKind::LoadBalancer).unwrap();
        lb.facts.insert(facts::UPSTREAMS.into(), format!("{},{},intruder", names[0], names[1]));
        let plan = plan_apply("s", &d, &state, &obs, &secret());
        let c = change(&plan, "load_balancer.main");
        assert_eq!((c.action, c.code), (Action::Update, ReasonCode::UpdateBecauseChangedOutside));
        assert_eq!(
            c.reasons,
            [
                format!("upstream {} added outside SpawnIt", names[2]),
                "upstream intruder removed outside SpawnIt".into()
            ]
        );
        assert_eq!(plan.changes.iter().filter(|c| c.action != Action::NoOp).count(), 1);

        // Scaled by the spec: an update with the spec's reasons, and the replicas say why.
        let (state, obs) = balanced_world(&d);
        let out = balanced(4, "app:1");
        let plan = plan_apply("s", &out, &state, &obs, &secret());
        let c = change(&plan, "load_balancer.main");
        assert_eq!((c.action, c.code), (Action::Update, ReasonCode::UpdateBecauseSpecChanged));
        assert_eq!(c.reasons, [format!("upstream {} added", name_of(&out[5]))]);
        assert_eq!(change(&plan, "container.app[3]").reasons, ["not yet created", "scale app 3 → 4"]);
        let plan = plan_apply("s", &balanced(2, "app:1"), &state, &obs, &secret());
        assert_eq!(change(&plan, "load_balancer.main").reasons, [format!("upstream {} removed", names[2])]);
        assert_eq!(change(&plan, "container.app[2]").reasons, ["no longer in the spec", "scale app 3 → 2"]);

        // Every replica replaced: the balancer is updated, never re-created.
        let plan = plan_apply("s", &balanced(3, "app:2"), &state, &obs, &secret());
        let c = change(&plan, "load_balancer.main");
        assert_eq!((c.action, c.code), (Action::Update, ReasonCode::UpdateBecauseSpecChanged));
        assert!(c.reasons.iter().all(|r| r.starts_with("upstream ")), "{c:?}");
        // A replica removed outside SpawnIt is created again; the proxy, unchanged, stays.
        let (state, mut obs) = balanced_world(&d);
        obs.retain(|o| o.address != Address::replica("app", 1));
        let plan = plan_apply("s", &d, &state, &obs, &secret());
        assert_eq!(change(&plan, "container.app[1]").reasons, ["removed outside SpawnIt (was id-app[1])"]);
        assert_eq!(change(&plan, "load_balancer.main").action, Action::NoOp);
    }

    #[test]
    fn removed_resources_are_deleted_dependents_first() {
        let d = desired("redis:7");
        let mut state = State::new("l");
        for r in &d[1..] {
            recorded(&mut state, r, "id1");
        }
        let obs: Vec<_> = d.iter().map(|r| observed(r, "id1", Liveness::Running)).collect();
        let plan = plan_destroy("s", &state, &obs);
        assert_eq!(actions(&plan), [("container.web".into(), Action::Delete), ("volume.data".into(), Action::Delete)]);
        assert_eq!(plan.changes[1].depends_on, [Address::new(ResourceKind::Container, "web")]);
        // An orphan found by labels only is deleted too.
        let plan = plan_destroy("s", &State::new("l"), &obs);
        assert_eq!(actions(&plan), [("container.web".into(), Action::Delete), ("volume.data".into(), Action::Delete)]);
    }
}
