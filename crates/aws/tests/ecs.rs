//! The `aws-ecs` target end to end against real AWS APIs (`moto_server` on loopback: ECS, IAM,
//! CloudWatch Logs, SSM, Application Auto Scaling, EC2) through the official SDK, driven by the
//! engine over a local store: plan, apply, read every resource back, drift outside SpawnIt and
//! its repair, a new image rolled out as a new task definition revision, destroy leaving
//! nothing tagged, secrets only in SSM, and refusals naming their field.
//!
//! moto runs no task: a service's running count stays 0 and no metric moves the autoscaler, so
//! these tests read the desired count, the scalable target and the policy, never a scaling.

mod common;

use aws_sdk_applicationautoscaling::types::{ScalableDimension, ServiceNamespace};
use aws_sdk_ecs::types::{ClusterField, ServiceField, TaskDefinitionField, TaskDefinitionStatus};
use common::{REGION, World, id};
use spawnit_model::plan::{Action, PlanStatus};
use spawnit_model::{OperationOutcome, ProviderKind};

fn actions(plan: &spawnit_model::Plan) -> Vec<(String, Action)> {
    plan.changes.iter().map(|c| (c.address.to_string(), c.action)).collect()
}

const CLUSTER: &str = "spawnit_acme_shop";
const ROLE: &str = "spawnit_acme_shop_exec";
const LOGS: &str = "/spawnit/acme/shop";

/// What carries the client's tags on the ECS side, by kind: clusters, active task
/// definitions, services, roles, log groups, parameters.
async fn tagged(w: &World) -> Vec<String> {
    let c = w.aws.clients_of(REGION);
    let mut out = Vec::new();
    let tags_mine = |tags: Vec<(String, String)>| tags.iter().any(|(k, v)| k == "spawnit.client" && v == "acme");
    let clusters = c.ecs.list_clusters().send().await.unwrap();
    if !clusters.cluster_arns().is_empty() {
        let found = c
            .ecs
            .describe_clusters()
            .set_clusters(Some(clusters.cluster_arns().to_vec()))
            .include(ClusterField::Tags)
            .send()
            .await
            .unwrap();
        for cl in found.clusters().iter().filter(|cl| cl.status() == Some("ACTIVE")) {
            let tags = cl.tags().iter().map(|t| (t.key().unwrap_or("").to_owned(), t.value().unwrap_or("").to_owned()));
            if tags_mine(tags.collect()) {
                out.push(format!("cluster {}", cl.cluster_name().unwrap_or("")));
            }
            let services = c.ecs.list_services().cluster(cl.cluster_arn().unwrap()).send().await.unwrap();
            for s in services.service_arns() {
                out.push(format!("service {s}"));
            }
        }
    }
    let defs = c.ecs.list_task_definitions().status(TaskDefinitionStatus::Active).send().await.unwrap();
    for arn in defs.task_definition_arns() {
        let d = c.ecs.describe_task_definition().task_definition(arn).include(TaskDefinitionField::Tags).send().await;
        let tags = d
            .unwrap()
            .tags()
            .iter()
            .map(|t| (t.key().unwrap_or("").to_owned(), t.value().unwrap_or("").to_owned()))
            .collect();
        if tags_mine(tags) {
            out.push(format!("task definition {arn}"));
        }
    }
    for role in c.iam.list_roles().send().await.unwrap().roles() {
        let tags = c.iam.list_role_tags().role_name(role.role_name()).send().await.unwrap();
        if tags_mine(tags.tags().iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect()) {
            out.push(format!("role {}", role.role_name()));
        }
    }
    for g in c.logs.describe_log_groups().send().await.unwrap().log_groups() {
        let tags = c.logs.list_tags_for_resource().resource_arn(g.log_group_arn().unwrap()).send().await.unwrap();
        let tags = tags.tags().cloned().unwrap_or_default().into_iter().collect();
        if tags_mine(tags) {
            out.push(format!("log group {}", g.log_group_name().unwrap_or("")));
        }
    }
    for p in c.ssm.describe_parameters().send().await.unwrap().parameters() {
        let tags = c
            .ssm
            .list_tags_for_resource()
            .resource_type(aws_sdk_ssm::types::ResourceTypeForTagging::Parameter)
            .resource_id(p.name().unwrap())
            .send()
            .await
            .unwrap();
        if tags_mine(tags.tag_list().iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect()) {
            out.push(format!("parameter {}", p.name().unwrap_or("")));
        }
    }
    out
}

async fn service(w: &World) -> aws_sdk_ecs::types::Service {
    let c = w.aws.clients_of(REGION);
    let out =
        c.ecs.describe_services().cluster(CLUSTER).services("shop").include(ServiceField::Tags).send().await.unwrap();
    out.services().iter().find(|s| s.status() == Some("ACTIVE")).cloned().expect("an active service shop")
}

async fn task_definition(w: &World, arn: &str) -> aws_sdk_ecs::types::TaskDefinition {
    let c = w.aws.clients_of(REGION);
    c.ecs.describe_task_definition().task_definition(arn).send().await.unwrap().task_definition().cloned().unwrap()
}

/// (min, max, CPU target) of the service's scalable target and policy.
async fn scaling(w: &World) -> (i32, i32, Option<f64>) {
    let c = w.aws.clients_of(REGION);
    let resource = format!("service/{CLUSTER}/shop");
    let targets = c
        .scaling
        .describe_scalable_targets()
        .service_namespace(ServiceNamespace::Ecs)
        .resource_ids(&resource)
        .send()
        .await
        .unwrap();
    let target = targets.scalable_targets().first().expect("a scalable target");
    assert_eq!(target.scalable_dimension(), &ScalableDimension::EcsServiceDesiredCount);
    let policies = c
        .scaling
        .describe_scaling_policies()
        .service_namespace(ServiceNamespace::Ecs)
        .resource_id(&resource)
        .send()
        .await
        .unwrap();
    let cpu = policies.scaling_policies().iter().find_map(|p| {
        let c = p.target_tracking_scaling_policy_configuration()?;
        assert_eq!(
            c.predefined_metric_specification().map(|m| m.predefined_metric_type().as_str()),
            Some("ECSServiceAverageCPUUtilization")
        );
        Some(c.target_value())
    });
    (target.min_capacity(), target.max_capacity(), cpu)
}

#[tokio::test]
async fn web_app_on_fargate_applies_reads_back_repairs_drift_rolls_out_and_destroys() {
    let w = World::new().await;
    w.create_on(ProviderKind::AwsEcs, "web-app", "shop", w.settings(), &[("replicas", "2"), ("target_cpu", "60")])
        .await
        .unwrap();
    let planned = w.engine.service_plan(&w.client, &id("shop")).await.unwrap();
    assert_eq!(planned.plan.status, PlanStatus::Drifted);
    let mut created = actions(&planned.plan);
    created.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        created,
        [
            ("alb.main".to_owned(), Action::Create),
            ("ecs_cluster.main".to_owned(), Action::Create),
            ("ecs_service.main".to_owned(), Action::Create),
            ("iam_role.execution".to_owned(), Action::Create),
            ("listener.main".to_owned(), Action::Create),
            ("log_group.main".to_owned(), Action::Create),
            ("security_group.app".to_owned(), Action::Create),
            ("security_group.lb".to_owned(), Action::Create),
            ("target_group.main".to_owned(), Action::Create),
            ("task_definition.main".to_owned(), Action::Create),
        ]
    );
    let (report, _) = w.apply("shop").await;
    assert_eq!(report.outcome, OperationOutcome::Succeeded, "{:?}", report.errors);
    let planned = w.engine.service_plan(&w.client, &id("shop")).await.unwrap();
    assert_eq!(planned.plan.status, PlanStatus::Compliant, "{:?}", planned.plan);

    // The role: trusted by ECS tasks, with the execution policy.
    let c = w.aws.clients_of(REGION);
    let role = c.iam.get_role().role_name(ROLE).send().await.unwrap().role().cloned().unwrap();
    let trust = role.assume_role_policy_document().unwrap_or_default();
    assert!(trust.contains("ecs-tasks.amazonaws.com"), "{trust}");
    let attached = c.iam.list_attached_role_policies().role_name(ROLE).send().await.unwrap();
    let attached: Vec<&str> = attached.attached_policies().iter().filter_map(|p| p.policy_arn()).collect();
    assert_eq!(attached, ["arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"]);

    // The log group keeps 30 days.
    let groups = c.logs.describe_log_groups().log_group_name_prefix(LOGS).send().await.unwrap();
    assert_eq!(groups.log_groups().len(), 1);
    assert_eq!(groups.log_groups()[0].retention_in_days(), Some(30));

    // The service: two Fargate tasks wanted, in awsvpc with the app's group (open to the load
    // balancer's only), registered in the target group, scaling 1–4 on 60 % CPU.
    let s = service(&w).await;
    assert_eq!(s.desired_count(), 2);
    assert_eq!(s.launch_type().map(|l| l.as_str()), Some("FARGATE"));
    let vpc = s.network_configuration().and_then(|n| n.awsvpc_configuration()).expect("awsvpc");
    assert!(!vpc.subnets().is_empty());
    let groups = w.groups(Some("shop")).await;
    let app = groups
        .iter()
        .find(|g| {
            g.tags().iter().any(|t| t.key() == Some("spawnit.resource") && t.value() == Some("security_group.app"))
        })
        .expect("the app's group");
    assert_eq!(vpc.security_groups(), [app.group_id().unwrap().to_owned()]);
    let balancer = s.load_balancers().first().expect("registered in a target group");
    assert_eq!((balancer.container_name(), balancer.container_port()), (Some("app"), Some(80)));
    assert!(balancer.target_group_arn().is_some_and(|a| a.contains(":targetgroup/")), "{balancer:?}");
    assert_eq!(scaling(&w).await, (1, 4, Some(60.0)));

    // The task definition: Fargate, 256/512, the role, the app logging to the group.
    let first = s.task_definition().unwrap().to_owned();
    let d = task_definition(&w, &first).await;
    assert_eq!((d.cpu(), d.memory()), (Some("256"), Some("512")));
    assert_eq!(d.network_mode().map(|m| m.as_str()), Some("awsvpc"));
    assert_eq!(d.execution_role_arn(), Some(role.arn()));
    assert_eq!(d.container_definitions().len(), 1);
    let app = &d.container_definitions()[0];
    assert_eq!((app.name(), app.image()), (Some("app"), Some("traefik/whoami:v1.10")));
    let env: Vec<(&str, &str)> = app.environment().iter().map(|e| (e.name().unwrap(), e.value().unwrap())).collect();
    assert_eq!(env, [("PORT", "80")]);
    let logs = app.log_configuration().expect("log configuration");
    assert_eq!(logs.log_driver().as_str(), "awslogs");
    let options = logs.options().unwrap();
    assert_eq!(options.get("awslogs-group").map(String::as_str), Some(LOGS));
    assert_eq!(options.get("awslogs-region").map(String::as_str), Some(REGION));

    // Drift outside SpawnIt: the count pushed beyond the autoscaler's bounds, the policy and
    // the log group deleted.
    c.ecs.update_service().cluster(CLUSTER).service("shop").desired_count(9).send().await.unwrap();
    c.scaling
        .delete_scaling_policy()
        .policy_name("spawnit-cpu-shop")
        .service_namespace(ServiceNamespace::Ecs)
        .resource_id(format!("service/{CLUSTER}/shop"))
        .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
        .send()
        .await
        .unwrap();
    c.logs.delete_log_group().log_group_name(LOGS).send().await.unwrap();
    let planned = w.engine.service_plan(&w.client, &id("shop")).await.unwrap();
    assert_eq!(planned.plan.status, PlanStatus::Drifted);
    let change = |a: &str| planned.plan.changes.iter().find(|c| c.address.to_string() == a).unwrap().clone();
    assert_eq!(change("log_group.main").action, Action::Create);
    assert_eq!(change("log_group.main").reasons, ["removed outside SpawnIt (was us-east-1//spawnit/acme/shop)"]);
    let svc = change("ecs_service.main");
    assert_eq!(svc.action, Action::Update);
    assert_eq!(
        svc.reasons,
        [
            // The task definition names the log group: a new revision follows the new group.
            "task_definition.main is re-created: a rolling deployment of its new revision",
            "desired count changed outside SpawnIt: 9 tasks, outside the autoscaling bounds 1–4",
            "autoscaling changed outside SpawnIt: 1-4@none instead of 1-4@60%"
        ]
    );
    let (report, _) = w.apply("shop").await;
    assert_eq!(report.outcome, OperationOutcome::Succeeded, "{:?}", report.errors);
    let planned = w.engine.service_plan(&w.client, &id("shop")).await.unwrap();
    assert_eq!(planned.plan.status, PlanStatus::Compliant, "{:?}", planned.plan);
    assert_eq!(service(&w).await.desired_count(), 4, "brought back within the bounds");
    assert_eq!(scaling(&w).await, (1, 4, Some(60.0)));

    // A new image: a new task definition revision, which the service rolls out in place.
    w.engine
        .service_update(&w.client, &id("shop"), &[("image".to_owned(), "traefik/whoami:v1.11".into())].into(), None)
        .await
        .unwrap();
    let planned = w.engine.service_plan(&w.client, &id("shop")).await.unwrap();
    let changed: Vec<(String, Action)> =
        actions(&planned.plan).into_iter().filter(|(_, a)| *a != Action::NoOp).collect();
    assert_eq!(
        changed,
        [("task_definition.main".to_owned(), Action::Replace), ("ecs_service.main".to_owned(), Action::Update)]
    );
    let svc = planned.plan.changes.iter().find(|c| c.address.to_string() == "ecs_service.main").unwrap();
    assert_eq!(svc.reasons, ["task_definition.main is re-created: a rolling deployment of its new revision"]);
    let (report, _) = w.apply("shop").await;
    assert_eq!(report.outcome, OperationOutcome::Succeeded, "{:?}", report.errors);
    let now = service(&w).await.task_definition().unwrap().to_owned();
    assert_ne!(now, first);
    assert_eq!(task_definition(&w, &now).await.container_definitions()[0].image(), Some("traefik/whoami:v1.11"));
    assert_eq!(task_definition(&w, &first).await.status().map(|s| s.as_str()), Some("INACTIVE"));
    let planned = w.engine.service_plan(&w.client, &id("shop")).await.unwrap();
    assert_eq!(planned.plan.status, PlanStatus::Compliant, "{:?}", planned.plan);

    let report = w.destroy("shop").await;
    assert_eq!(report.outcome, OperationOutcome::Succeeded, "{:?}", report.errors);
    assert_eq!(tagged(&w).await, Vec::<String>::new());
    assert!(w.groups(None).await.is_empty(), "no tagged security group left");
}

#[tokio::test]
async fn secrets_reach_tasks_from_ssm_only_and_bad_settings_are_refused() {
    let w = World::new().await;
    let spec = w.create_on(ProviderKind::AwsEcs, "postgres", "db", w.settings(), &[]).await.unwrap();
    let password = spec.params["password"].as_str().unwrap().to_owned();
    let (report, _) = w.apply("db").await;
    assert_eq!(report.outcome, OperationOutcome::Succeeded, "{:?}", report.errors);
    let c = w.aws.clients_of(REGION);
    let s = c.ecs.describe_services().cluster("spawnit_acme_db").services("db").send().await.unwrap();
    let d = task_definition(&w, s.services()[0].task_definition().unwrap()).await;
    let pg = &d.container_definitions()[0];
    // Nowhere in the task definition in plain text.
    assert!(!format!("{d:?}").contains(&password), "the password is in the task definition");
    assert!(pg.environment().iter().all(|e| e.name() != Some("POSTGRES_PASSWORD")));
    let secret = pg.secrets().iter().find(|s| s.name() == "POSTGRES_PASSWORD").expect("a secret");
    let param = c.ssm.get_parameter().name(secret.value_from()).with_decryption(true).send().await;
    let param = param.unwrap().parameter().cloned().unwrap();
    assert_eq!(param.r#type().map(|t| t.as_str()), Some("SecureString"));
    assert_eq!(param.name(), Some("/spawnit/acme/db/postgres/POSTGRES_PASSWORD"));
    assert_eq!(param.value(), Some(password.as_str()));
    // The role may read the service's parameters, no others.
    let policy = c
        .iam
        .get_role_policy()
        .role_name("spawnit_acme_db_exec")
        .policy_name("spawnit")
        .send()
        .await
        .unwrap()
        .policy_document()
        .to_owned();
    let policy = spawnit_aws::ecs::url_decode(&policy);
    assert!(policy.contains("ssm:GetParameters") && policy.contains("parameter/spawnit/acme/db/*"), "{policy}");
    // The volume is the task's own, mounted where the template says.
    assert_eq!(d.volumes().iter().filter_map(|v| v.name()).collect::<Vec<_>>(), ["data"]);
    assert_eq!(pg.mount_points()[0].container_path(), Some("/var/lib/postgresql/data"));
    // Plans never show the secret.
    let planned = w.engine.service_plan(&w.client, &id("db")).await.unwrap();
    assert_eq!(planned.plan.status, PlanStatus::Compliant, "{:?}", planned.plan);
    let shown = serde_json::to_string(&planned.redactor.to_json(&planned.plan)).unwrap();
    assert!(!shown.contains(&password));

    // A secret on a command line, a memory Fargate has no size for: refused, field by field.
    let refused = w.create_on(ProviderKind::AwsEcs, "redis", "cache", w.settings(), &[]).await.unwrap_err().to_string();
    assert!(refused.contains("containers.redis.command"), "{refused}");
    let mut bad = w.settings();
    bad.task_cpu = 512;
    bad.task_memory_mb = 512;
    let refused = w.create_on(ProviderKind::AwsEcs, "hello", "hi", bad, &[]).await.unwrap_err().to_string();
    assert!(refused.contains("aws.task_memory_mb") && refused.contains("1024 to 4096"), "{refused}");
    assert!(w.engine.service_spec(&w.client, &id("cache")).await.is_err(), "nothing stored");

    let report = w.destroy("db").await;
    assert_eq!(report.outcome, OperationOutcome::Succeeded, "{:?}", report.errors);
    assert_eq!(tagged(&w).await, Vec::<String>::new());
}
