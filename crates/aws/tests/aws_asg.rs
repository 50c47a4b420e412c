//! The `aws-asg` target end to end against `moto_server` on loopback through the official SDK,
//! driven by the engine over a local store: `web-app` with sticky sessions and a shared Redis
//! becomes two security groups from each other, an application load balancer, a target group, a
//! listener, an ElastiCache Redis, a launch template and an auto-scaling group; every one is
//! read back, changed or removed outside SpawnIt, repaired, and destroyed.
//!
//! What moto cannot show: it runs no instance's `user_data` and scales on no metric (the
//! policy is only read back); it has no `StartInstanceRefresh` (a new launch template version
//! fails the group's update, and the next plan still asks for it); a deleted replication group
//! stays `deleting` forever (observation ignores it, a new cache takes the next id); it has no
//! `DeleteCacheSubnetGroup` (destroy fails on it, naming the call, after everything else went).

mod common;

use std::collections::HashMap;

use common::{REGION, World, id};
use spawnit_model::plan::{Action, PlanStatus};
use spawnit_model::{OperationOutcome, ProviderKind};

fn actions(plan: &spawnit_model::Plan) -> Vec<(String, Action)> {
    plan.changes.iter().map(|c| (c.address.to_string(), c.action)).collect()
}

fn reasons(plan: &spawnit_model::Plan, address: &str) -> String {
    plan.changes
        .iter()
        .filter(|c| c.address.to_string() == address)
        .flat_map(|c| c.reasons.clone())
        .collect::<Vec<_>>()
        .join("; ")
}

const PARAMS: &[(&str, &str)] = &[
    ("image", "traefik/whoami:v1.10"),
    ("port", "80"),
    ("http_port", "8080"),
    ("replicas", "2"),
    ("min_replicas", "1"),
    ("max_replicas", "4"),
    ("target_cpu", "60"),
    ("sticky", "true"),
    ("health_path", "/health"),
    ("redis", "true"),
    ("redis_password", "s3cret-token-0123456789"),
];

#[tokio::test]
async fn web_app_on_an_auto_scaling_group_behind_a_load_balancer_with_a_cache() {
    let w = World::new().await;
    let spec = w.create_on(ProviderKind::AwsAsg, "web-app", "chat", w.settings(), PARAMS).await.expect("created");
    let planned = w.engine.service_plan(&w.client, &id("chat")).await.unwrap();
    assert_eq!(planned.plan.status, PlanStatus::Drifted, "{:?}", planned.plan.errors);
    let mut created: Vec<String> = actions(&planned.plan)
        .into_iter()
        .map(|(a, action)| {
            assert_eq!(action, Action::Create, "{a}");
            a
        })
        .collect();
    created.sort();
    assert_eq!(
        created,
        [
            "alb.main",
            "autoscaling_group.main",
            "cache.main",
            "cache_subnet_group.main",
            "launch_template.main",
            "listener.main",
            "security_group.app",
            "security_group.cache",
            "security_group.lb",
            "target_group.main",
        ]
    );
    let (report, _) = w.apply("chat").await;
    assert_eq!(report.outcome, OperationOutcome::Succeeded, "{:?}", report.errors);
    let planned = w.engine.service_plan(&w.client, &id("chat")).await.unwrap();
    assert_eq!(planned.plan.status, PlanStatus::Compliant, "{:?}", actions(&planned.plan));

    // The load balancer, its target group (sticky, health check) and the listener between them.
    let elb = w.aws.elb(REGION);
    let lbs = elb.describe_load_balancers().send().await.unwrap();
    assert_eq!(lbs.load_balancers().len(), 1);
    let lb = &lbs.load_balancers()[0];
    let dns = lb.dns_name().unwrap().to_owned();
    let tgs = elb.describe_target_groups().send().await.unwrap();
    assert_eq!(tgs.target_groups().len(), 1);
    let tg = &tgs.target_groups()[0];
    let tg_arn = tg.target_group_arn().unwrap().to_owned();
    assert_eq!(tg.port(), Some(80));
    assert_eq!(tg.health_check_path(), Some("/health"));
    assert_eq!(tg.target_type().map(|t| t.as_str()), Some("instance"));
    let attrs = elb.describe_target_group_attributes().target_group_arn(&tg_arn).send().await.unwrap();
    let attrs: HashMap<&str, &str> = attrs.attributes().iter().filter_map(|a| Some((a.key()?, a.value()?))).collect();
    assert_eq!(attrs.get("stickiness.enabled"), Some(&"true"));
    assert_eq!(attrs.get("stickiness.type"), Some(&"lb_cookie"));
    let listeners = elb.describe_listeners().load_balancer_arn(lb.load_balancer_arn().unwrap()).send().await.unwrap();
    assert_eq!(listeners.listeners().len(), 1);
    let listener = &listeners.listeners()[0];
    assert_eq!(listener.port(), Some(8080));
    assert_eq!(listener.default_actions()[0].target_group_arn(), Some(tg_arn.as_str()));

    // The groups: the load balancer's open to the allowed CIDR on 8080, the instances' only to
    // the load balancer's group on 80, the cache's only to the instances' on 6379.
    let groups = w.groups(Some("chat")).await;
    assert_eq!(groups.len(), 3);
    let by_resource = |r: &str| {
        groups
            .iter()
            .find(|g| g.tags().iter().any(|t| t.key() == Some("spawnit.resource") && t.value() == Some(r)))
            .unwrap_or_else(|| panic!("no {r}"))
    };
    let (lb_group, app_group, cache_group) =
        (by_resource("security_group.lb"), by_resource("security_group.app"), by_resource("security_group.cache"));
    let lb_rules = lb_group.ip_permissions();
    assert_eq!(lb_rules.len(), 1);
    assert_eq!((lb_rules[0].from_port(), lb_rules[0].ip_ranges()[0].cidr_ip()), (Some(8080), Some("10.0.0.0/8")));
    let app_rules = app_group.ip_permissions();
    assert_eq!(app_rules.len(), 1);
    assert_eq!(app_rules[0].from_port(), Some(80));
    assert!(app_rules[0].ip_ranges().is_empty());
    assert_eq!(app_rules[0].user_id_group_pairs()[0].group_id(), lb_group.group_id());
    let cache_rules = cache_group.ip_permissions();
    assert_eq!(cache_rules[0].from_port(), Some(6379));
    assert_eq!(cache_rules[0].user_id_group_pairs()[0].group_id(), app_group.group_id());
    assert_eq!(lb.security_groups(), [lb_group.group_id().unwrap().to_owned()]);

    // The cache: Redis, encrypted in transit with an AUTH token.
    let cache = w.aws.elasticache(REGION);
    let rgs = cache.describe_replication_groups().send().await.unwrap();
    assert_eq!(rgs.replication_groups().len(), 1);
    let rg = &rgs.replication_groups()[0];
    assert_eq!(rg.transit_encryption_enabled(), Some(true));
    let cache_host = rg.node_groups()[0].primary_endpoint().and_then(|e| e.address()).unwrap().to_owned();

    // The group: 1..4, 2 wanted, in the target group, a CPU target of 60 %.
    let asg = w.aws.autoscaling(REGION);
    let groups = asg.describe_auto_scaling_groups().send().await.unwrap();
    assert_eq!(groups.auto_scaling_groups().len(), 1);
    let g = &groups.auto_scaling_groups()[0];
    assert_eq!((g.min_size(), g.max_size(), g.desired_capacity()), (Some(1), Some(4), Some(2)));
    assert_eq!(g.target_group_arns(), [tg_arn.clone()]);
    let policies =
        asg.describe_policies().auto_scaling_group_name(g.auto_scaling_group_name().unwrap()).send().await.unwrap();
    assert_eq!(policies.scaling_policies().len(), 1);
    let tracking = policies.scaling_policies()[0].target_tracking_configuration().unwrap();
    assert_eq!(tracking.target_value(), Some(60.0));

    // The launch template's user_data runs the app (publishing 80), reaching the cache over TLS
    // with its AUTH token; no Redis container runs on the instances.
    let template_id = g.launch_template().and_then(|t| t.launch_template_id()).unwrap().to_owned();
    let script = launch_template_script(&w, &template_id).await;
    assert!(script.contains("--publish 0.0.0.0:80:80/tcp"), "{script}");
    assert!(script.contains(&format!("REDIS_URL=rediss://:s3cret-token-0123456789@{cache_host}:6379/0")), "{script}");
    assert!(script.contains(&format!("REDIS_HOST={cache_host}")), "{script}");
    assert!(!script.contains("redis-server"), "{script}");

    // `show`: the load balancer's DNS name.
    let state = w.engine.service_state(&w.client, &id("chat")).await.unwrap().unwrap();
    let endpoints = spec.endpoints_deployed(Some(&state));
    assert_eq!(endpoints.len(), 1, "{endpoints:?}");
    assert_eq!(endpoints[0].url.as_deref(), Some(format!("http://{dns}:8080").as_str()));

    // Drift outside SpawnIt: the listener deleted, the minimum size and the desired count
    // changed (a desired count within the bounds alone is the target-tracking policy's), the
    // cache deleted, the stickiness turned off.
    elb.delete_listener().listener_arn(listener.listener_arn().unwrap()).send().await.unwrap();
    asg.update_auto_scaling_group()
        .auto_scaling_group_name(g.auto_scaling_group_name().unwrap())
        .min_size(3)
        .desired_capacity(3)
        .send()
        .await
        .unwrap();
    cache.delete_replication_group().replication_group_id(rg.replication_group_id().unwrap()).send().await.unwrap();
    elb.modify_target_group_attributes()
        .target_group_arn(&tg_arn)
        .attributes(
            aws_sdk_elasticloadbalancingv2::types::TargetGroupAttribute::builder()
                .key("stickiness.enabled")
                .value("false")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let planned = w.engine.service_plan(&w.client, &id("chat")).await.unwrap();
    let changed: Vec<(String, Action)> =
        actions(&planned.plan).into_iter().filter(|(_, a)| *a != Action::NoOp).collect();
    assert_eq!(
        changed,
        [
            ("target_group.main".to_owned(), Action::Update),
            ("listener.main".to_owned(), Action::Create),
            ("cache.main".to_owned(), Action::Create),
            ("launch_template.main".to_owned(), Action::Update),
            ("autoscaling_group.main".to_owned(), Action::Update),
        ],
        "{:?}",
        planned.plan
    );
    let plan = &planned.plan;
    assert!(reasons(plan, "listener.main").contains("removed outside SpawnIt"), "{}", reasons(plan, "listener.main"));
    assert!(reasons(plan, "cache.main").contains("removed outside SpawnIt"), "{}", reasons(plan, "cache.main"));
    assert!(
        reasons(plan, "autoscaling_group.main").contains("minimum size changed outside SpawnIt: 3 instead of 1"),
        "{}",
        reasons(plan, "autoscaling_group.main")
    );
    assert!(
        reasons(plan, "target_group.main")
            .contains("stickiness (lb_cookie) changed outside SpawnIt: false instead of true"),
        "{}",
        reasons(plan, "target_group.main")
    );
    assert!(reasons(plan, "launch_template.main").contains("depends on cache.main, which is re-created"));
    let (report, _) = w.apply("chat").await;
    assert_eq!(report.outcome, OperationOutcome::Succeeded, "{:?}", report.errors);
    let planned = w.engine.service_plan(&w.client, &id("chat")).await.unwrap();
    assert_eq!(planned.plan.status, PlanStatus::Compliant, "{:?}", actions(&planned.plan));
    let g = &asg.describe_auto_scaling_groups().send().await.unwrap().auto_scaling_groups()[0].clone();
    assert_eq!((g.min_size(), g.desired_capacity()), (Some(1), Some(2)));
    let listeners = elb.describe_listeners().load_balancer_arn(lb.load_balancer_arn().unwrap()).send().await.unwrap();
    assert_eq!(listeners.listeners().len(), 1);
    assert_eq!(listeners.listeners()[0].default_actions()[0].target_group_arn(), Some(tg_arn.as_str()));
    // The new cache (moto keeps the deleted one as `deleting`: the new one has the next id), and
    // a new launch template version naming it.
    let live: Vec<_> = cache
        .describe_replication_groups()
        .send()
        .await
        .unwrap()
        .replication_groups()
        .iter()
        .filter(|g| g.status() != Some("deleting"))
        .cloned()
        .collect();
    assert_eq!(live.len(), 1);
    let new_host = live[0].node_groups()[0].primary_endpoint().and_then(|e| e.address()).unwrap().to_owned();
    assert_ne!(new_host, cache_host);
    let script = launch_template_script(&w, &template_id).await;
    assert!(script.contains(&format!("REDIS_HOST={new_host}")), "{script}");

    // A new image is a new launch template version, rolled out by an instance refresh; the
    // policy's target changes in place.
    let params = std::collections::BTreeMap::from([
        ("image".to_owned(), serde_json::json!("traefik/whoami:v1.11")),
        ("target_cpu".to_owned(), serde_json::json!("50")),
    ]);
    w.engine.service_update(&w.client, &id("chat"), &params, None).await.expect("updated");
    let planned = w.engine.service_plan(&w.client, &id("chat")).await.unwrap();
    let changed: Vec<(String, Action)> =
        actions(&planned.plan).into_iter().filter(|(_, a)| *a != Action::NoOp).collect();
    assert_eq!(
        changed,
        [("launch_template.main".to_owned(), Action::Update), ("autoscaling_group.main".to_owned(), Action::Update)],
        "{:?}",
        planned.plan
    );
    let plan = &planned.plan;
    let template_reasons = reasons(plan, "launch_template.main");
    assert!(
        template_reasons.contains("image changed traefik/whoami:v1.10 → traefik/whoami:v1.11"),
        "{template_reasons}"
    );
    assert!(template_reasons.contains("a new launch template version"), "{template_reasons}");
    let group_reasons = reasons(plan, "autoscaling_group.main");
    assert!(group_reasons.contains("target_cpu_percent changed 60 → 50"), "{group_reasons}");
    assert!(group_reasons.contains("an instance refresh replaces the instances"), "{group_reasons}");
    // moto has no StartInstanceRefresh: the group's update fails naming it, after the new
    // version and the new target; the group's tag still names the old content, so the next
    // plan asks for the refresh again.
    let (report, _) = w.apply("chat").await;
    assert_eq!(report.outcome, OperationOutcome::Failed, "{report:?}");
    assert!(report.errors.join("\n").contains("StartInstanceRefresh"), "{:?}", report.errors);
    let script = launch_template_script(&w, &template_id).await;
    assert!(script.contains("traefik/whoami:v1.11"), "{script}");
    let policies =
        asg.describe_policies().auto_scaling_group_name(g.auto_scaling_group_name().unwrap()).send().await.unwrap();
    assert_eq!(policies.scaling_policies()[0].target_tracking_configuration().unwrap().target_value(), Some(50.0));
    let planned = w.engine.service_plan(&w.client, &id("chat")).await.unwrap();
    let changed: Vec<(String, Action)> =
        actions(&planned.plan).into_iter().filter(|(_, a)| *a != Action::NoOp).collect();
    assert_eq!(changed, [("autoscaling_group.main".to_owned(), Action::Update)], "{:?}", planned.plan);

    // Destroy: everything goes but the cache subnet group, which moto cannot delete.
    let report = w.destroy("chat").await;
    let errors = report.errors.join("\n");
    assert!(errors.contains("DeleteCacheSubnetGroup"), "{report:?}");
    assert_eq!(report.failed, 1, "{report:?}");
    assert!(elb.describe_load_balancers().send().await.unwrap().load_balancers().is_empty());
    assert!(elb.describe_target_groups().send().await.unwrap().target_groups().is_empty());
    assert!(asg.describe_auto_scaling_groups().send().await.unwrap().auto_scaling_groups().is_empty());
    assert!(w.groups(Some("chat")).await.is_empty());
    let templates = w.ec2().describe_launch_templates().send().await.unwrap();
    assert!(templates.launch_templates().is_empty());
}

/// The decoded `user_data` of a launch template's default version.
async fn launch_template_script(w: &World, template_id: &str) -> String {
    use base64::Engine as _;
    let out = w
        .ec2()
        .describe_launch_template_versions()
        .launch_template_id(template_id)
        .versions("$Default")
        .send()
        .await
        .expect("describe launch template versions");
    let data = out.launch_template_versions()[0].launch_template_data().and_then(|d| d.user_data()).unwrap_or_default();
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(data).expect("base64")).expect("utf-8")
}
