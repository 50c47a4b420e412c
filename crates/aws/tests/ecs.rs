//! The `aws-ecs` target end to end against real AWS APIs (`moto_server` on loopback: ECS, IAM,
//! CloudWatch Logs, SSM, Application Auto Scaling, EC2) through the official SDK, driven by the
//! engine over a local store: plan, apply, read every resource back, drift outside SpawnIt and
//! its repair, a new image rolled out as a new task definition revision, destroy leaving
//! nothing tagged, secrets only in SSM, and refusals naming their field.
//!
//! moto runs no task: a service's running count stays 0 and no metric moves the autoscaler, so
//! these tests read the desired count, the scalable target and the policy, never a scaling.
//! With the managed Redis: no task ever connects to the cache (the URL and the AUTH token are
//! only read back; ElastiCache never returns the token, only that one is set); moto keeps no
//! member cluster of a replication group (which security group the node sits in is not
//! readable); a deleted replication group stays `deleting` forever (observation ignores it, a
//! new cache takes the next id); moto has no `DeleteCacheSubnetGroup` (destroy fails on it,
//! naming the call, after everything else went; on AWS the delete retries while a cache being
//! deleted still holds the group).

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

/// What of the scope's is left on the ElastiCache side: replication groups not being deleted
/// and subnet groups tagged with the client.
async fn cache_tagged(w: &World) -> Vec<String> {
    let cache = w.aws.elasticache(REGION);
    let mut out = Vec::new();
    let tags_of = |arn: String| {
        let cache = cache.clone();
        async move {
            let t = cache.list_tags_for_resource().resource_name(arn).send().await.unwrap();
            t.tag_list().iter().any(|t| t.key() == Some("spawnit.client") && t.value() == Some("acme"))
        }
    };
    for g in cache.describe_replication_groups().send().await.unwrap().replication_groups() {
        if g.status() != Some("deleting") && tags_of(g.arn().unwrap().to_owned()).await {
            out.push(format!("replication group {}", g.replication_group_id().unwrap_or("")));
        }
    }
    for g in cache.describe_cache_subnet_groups().send().await.unwrap().cache_subnet_groups() {
        if tags_of(g.arn().unwrap().to_owned()).await {
            out.push(format!("cache subnet group {}", g.cache_subnet_group_name().unwrap_or("")));
        }
    }
    out
}

/// The replication groups not being deleted (moto keeps a deleted one `deleting` forever).
async fn live_caches(w: &World) -> Vec<aws_sdk_elasticache::types::ReplicationGroup> {
    let out = w.aws.elasticache(REGION).describe_replication_groups().send().await.unwrap();
    out.replication_groups().iter().filter(|g| g.status() != Some("deleting")).cloned().collect()
}

fn primary_host(g: &aws_sdk_elasticache::types::ReplicationGroup) -> String {
    g.node_groups().iter().find_map(|n| n.primary_endpoint().and_then(|e| e.address())).expect("an endpoint").to_owned()
}

/// The `chat` service's task definition, the `REDIS_URL` its app reads from SSM (decrypted)
/// and the parameter's type; asserts the variable is no plain environment value and the
/// password nowhere in the definition.
async fn chat_redis_url(w: &World, password: &str) -> (aws_sdk_ecs::types::TaskDefinition, String) {
    let c = w.aws.clients_of(REGION);
    let s = c.ecs.describe_services().cluster("spawnit_acme_chat").services("chat").send().await.unwrap();
    let s = s.services().iter().find(|s| s.status() == Some("ACTIVE")).expect("an active service chat").clone();
    let d = task_definition(w, s.task_definition().unwrap()).await;
    let json = format!("{d:?}");
    assert!(!json.contains(password), "the Redis password is in the task definition: {json}");
    assert_eq!(d.container_definitions().len(), 1, "no Redis container in the task: {json}");
    let app = &d.container_definitions()[0];
    assert!(app.environment().iter().all(|e| !matches!(e.name(), Some("REDIS_URL" | "REDIS_PASSWORD"))), "{json}");
    let secret = app.secrets().iter().find(|s| s.name() == "REDIS_URL").expect("REDIS_URL as a secret");
    assert!(secret.value_from().starts_with("arn:aws:ssm:"), "{}", secret.value_from());
    let param = c.ssm.get_parameter().name(secret.value_from()).with_decryption(true).send().await.unwrap();
    let param = param.parameter().cloned().unwrap();
    assert_eq!(param.r#type().map(|t| t.as_str()), Some("SecureString"));
    assert_eq!(param.name(), Some("/spawnit/acme/chat/app/REDIS_URL"));
    (d, param.value().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn web_app_on_fargate_with_a_managed_redis_reads_its_url_from_ssm_repairs_and_destroys() {
    use spawnit_model::resource::{GroupRule, ResourceAttrs};
    use spawnit_model::spec::Protocol;

    let w = World::new().await;
    let spec = w
        .create_on(ProviderKind::AwsEcs, "web-app", "chat", w.settings(), &[("redis", "true"), ("target_cpu", "60")])
        .await
        .unwrap();
    let password = spec.params["redis_password"].as_str().unwrap().to_owned();
    assert!(password.len() >= 16, "a generated password: {password}");
    let planned = w.engine.service_plan(&w.client, &id("chat")).await.unwrap();
    assert_eq!(planned.plan.status, PlanStatus::Drifted);
    let mut created = actions(&planned.plan);
    created.sort_by(|a, b| a.0.cmp(&b.0));
    let created: Vec<&str> = created
        .iter()
        .map(|(a, action)| {
            assert_eq!(*action, Action::Create, "{a}");
            a.as_str()
        })
        .collect();
    assert_eq!(
        created,
        [
            "alb.main",
            "cache.main",
            "cache_subnet_group.main",
            "ecs_cluster.main",
            "ecs_service.main",
            "iam_role.execution",
            "listener.main",
            "log_group.main",
            "security_group.app",
            "security_group.cache",
            "security_group.lb",
            "ssm_parameter.app.REDIS_PASSWORD",
            "ssm_parameter.app.REDIS_URL",
            "target_group.main",
            "task_definition.main",
        ]
    );
    // The cache's group admits the tasks' group on 6379, nothing else.
    let cache_group = planned.plan.changes.iter().find(|c| c.address.to_string() == "security_group.cache").unwrap();
    let Some(ResourceAttrs::SecurityGroup(g)) = cache_group.desired.as_ref().map(|d| &d.attrs) else {
        panic!("{cache_group:?}")
    };
    assert!(g.ingress.is_empty(), "{g:?}");
    let from_app = GroupRule { protocol: Protocol::Tcp, port: 6379, group: "security_group.app".parse().unwrap() };
    assert_eq!(g.ingress_groups, [from_app]);
    let shown = serde_json::to_string(&planned.redactor.to_json(&planned.plan)).unwrap();
    assert!(!shown.contains(&password), "the plan shows the password");

    let (report, _) = w.apply("chat").await;
    assert_eq!(report.outcome, OperationOutcome::Succeeded, "{:?}", report.errors);
    let planned = w.engine.service_plan(&w.client, &id("chat")).await.unwrap();
    assert_eq!(planned.plan.status, PlanStatus::Compliant, "{:?}", actions(&planned.plan));

    // The replication group: the ownership labels, encrypted in transit, an AUTH token set.
    let caches = live_caches(&w).await;
    assert_eq!(caches.len(), 1);
    let rg = &caches[0];
    assert_eq!(rg.transit_encryption_enabled(), Some(true));
    assert_eq!(rg.at_rest_encryption_enabled(), Some(true));
    assert_eq!(rg.auth_token_enabled(), Some(true));
    let cache = w.aws.elasticache(REGION);
    let tags = cache.list_tags_for_resource().resource_name(rg.arn().unwrap()).send().await.unwrap();
    let tags: std::collections::HashMap<&str, &str> =
        tags.tag_list().iter().filter_map(|t| Some((t.key()?, t.value()?))).collect();
    assert_eq!(tags.get("spawnit.client"), Some(&"acme"));
    assert_eq!(tags.get("spawnit.service"), Some(&"chat"));
    assert_eq!(tags.get("spawnit.resource"), Some(&"cache.main"));
    assert!(tags.get("spawnit.fingerprint").is_some_and(|f| !f.is_empty()), "{tags:?}");
    assert!(tags.get("spawnit.lineage").is_some_and(|f| !f.is_empty()), "{tags:?}");
    let host = primary_host(rg);
    // The cache's group, open to the tasks' group on 6379 only.
    let groups = w.groups(Some("chat")).await;
    let by_resource = |r: &str| {
        groups
            .iter()
            .find(|g| g.tags().iter().any(|t| t.key() == Some("spawnit.resource") && t.value() == Some(r)))
            .unwrap_or_else(|| panic!("no {r}"))
            .clone()
    };
    let (app_group, cache_group) = (by_resource("security_group.app"), by_resource("security_group.cache"));
    let rules = cache_group.ip_permissions();
    assert_eq!(rules.len(), 1);
    assert_eq!((rules[0].from_port(), rules[0].to_port()), (Some(6379), Some(6379)));
    assert!(rules[0].ip_ranges().is_empty());
    assert_eq!(rules[0].user_id_group_pairs()[0].group_id(), app_group.group_id());
    // (moto keeps no member cluster of a replication group, so which group the cache node
    // sits in cannot be read back: `cache_create` passes the cache group's id.)

    // The app's REDIS_URL: only from SSM, TLS to the endpoint with the password; the host in
    // the plain environment; the service's tasks in the app's group.
    let (d, url) = chat_redis_url(&w, &password).await;
    assert_eq!(url, format!("rediss://:{password}@{host}:6379/0"));
    let app = &d.container_definitions()[0];
    let secrets: Vec<&str> = app.secrets().iter().map(|s| s.name()).collect();
    assert_eq!(secrets, ["REDIS_PASSWORD", "REDIS_URL"]);
    let env: Vec<(&str, &str)> = app.environment().iter().map(|e| (e.name().unwrap(), e.value().unwrap())).collect();
    assert_eq!(env, [("PORT", "80"), ("REDIS_HOST", host.as_str()), ("REDIS_PORT", "6379")]);
    let c = w.aws.clients_of(REGION);
    let s = c.ecs.describe_services().cluster("spawnit_acme_chat").services("chat").send().await.unwrap();
    let vpc = s.services()[0].network_configuration().and_then(|n| n.awsvpc_configuration()).expect("awsvpc");
    assert_eq!(vpc.security_groups(), [app_group.group_id().unwrap().to_owned()]);

    // Drift: the cache deleted outside SpawnIt. moto keeps a deleted replication group
    // `deleting` forever (AWS takes minutes): observation ignores it, so the plan re-creates
    // the cache, and with it the URL's parameter and a new task definition revision.
    cache.delete_replication_group().replication_group_id(rg.replication_group_id().unwrap()).send().await.unwrap();
    let planned = w.engine.service_plan(&w.client, &id("chat")).await.unwrap();
    assert_eq!(planned.plan.status, PlanStatus::Drifted);
    let changed: Vec<(String, Action)> =
        actions(&planned.plan).into_iter().filter(|(_, a)| *a != Action::NoOp).collect();
    assert_eq!(
        changed,
        [
            ("cache.main".to_owned(), Action::Create),
            // Both parameters name the cache's resource (one its password, one its URL).
            ("ssm_parameter.app.REDIS_PASSWORD".to_owned(), Action::Replace),
            ("ssm_parameter.app.REDIS_URL".to_owned(), Action::Replace),
            ("task_definition.main".to_owned(), Action::Replace),
            ("ecs_service.main".to_owned(), Action::Update),
        ]
    );
    let change = |a: &str| planned.plan.changes.iter().find(|c| c.address.to_string() == a).unwrap().clone();
    assert_eq!(change("cache.main").action, Action::Create);
    let why = change("cache.main").reasons.join("; ");
    assert!(why.contains("removed outside SpawnIt"), "{why}");
    let url_param = change("ssm_parameter.app.REDIS_URL");
    assert_eq!(url_param.action, Action::Replace, "{url_param:?}");
    assert_eq!(url_param.reasons, ["depends on cache.main, which is re-created"]);
    assert_eq!(change("task_definition.main").action, Action::Replace);
    let svc = change("ecs_service.main");
    assert_eq!(svc.action, Action::Update);
    assert_eq!(svc.reasons, ["task_definition.main is re-created: a rolling deployment of its new revision"]);
    let (report, _) = w.apply("chat").await;
    assert_eq!(report.outcome, OperationOutcome::Succeeded, "{:?}", report.errors);
    let planned = w.engine.service_plan(&w.client, &id("chat")).await.unwrap();
    assert_eq!(planned.plan.status, PlanStatus::Compliant, "{:?}", actions(&planned.plan));
    // The new cache takes the next id (the old one still holds its id in moto); the service's
    // new revision reads a URL naming it.
    let caches = live_caches(&w).await;
    assert_eq!(caches.len(), 1);
    assert_ne!(caches[0].replication_group_id(), rg.replication_group_id());
    assert_eq!(caches[0].auth_token_enabled(), Some(true));
    let new_host = primary_host(&caches[0]);
    assert_ne!(new_host, host);
    let (d2, url) = chat_redis_url(&w, &password).await;
    assert_ne!(d2.task_definition_arn(), d.task_definition_arn());
    assert_eq!(url, format!("rediss://:{password}@{new_host}:6379/0"));

    // Destroy: everything goes but the cache subnet group, which moto cannot delete (it has no
    // DeleteCacheSubnetGroup: the call fails, named; on AWS the delete retries while a cache
    // being deleted still holds the group, see `cache_subnet_group_delete`).
    let report = w.destroy("chat").await;
    assert!(report.errors.join("\n").contains("DeleteCacheSubnetGroup"), "{report:?}");
    assert_eq!(report.failed, 1, "{report:?}");
    assert_eq!(tagged(&w).await, Vec::<String>::new());
    assert!(w.groups(None).await.is_empty(), "no tagged security group left");
    let elb = w.aws.elb(REGION);
    assert!(elb.describe_load_balancers().send().await.unwrap().load_balancers().is_empty());
    assert!(elb.describe_target_groups().send().await.unwrap().target_groups().is_empty());
    let left = cache_tagged(&w).await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].starts_with("cache subnet group spawnit-"), "{left:?}");
}
