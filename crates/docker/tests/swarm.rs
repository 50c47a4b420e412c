//! The Swarm provider on a real three-node Docker Swarm (spawnit-testkit: each node a Docker
//! engine in a container of this machine's engine): a service of 3 replicas becomes one Swarm
//! service whose tasks spread over the 3 nodes; its secret is a Swarm secret, read by the task
//! from a file and absent from the service's spec; a service scaled or removed outside SpawnIt
//! is observed with a reason and repaired; an update whose tasks never turn healthy is rolled
//! back by Swarm and fails with its message; the client's overlay network is shared by its
//! services and removed with the last one; tasks that no node may run report Swarm's reason;
//! destroy leaves nothing carrying SpawnIt's labels.
//!
//! The plan is made by the pure planner and carried out change by change here, as the engine's
//! executor does, so the provider is exercised alone. Needs Docker and the test images
//! (`scripts/test-images.sh`): it fails without them, never skips. The cluster is removed when
//! the test ends, also on failure (the harness's Drop).

use std::collections::BTreeMap;

use serde_json::Value;
use spawnit_docker::SwarmProvider;
use spawnit_engine::{Provider, Scope};
use spawnit_model::plan::{Action, Plan, PlanStatus};
use spawnit_model::resource::{ObservedResource, ResourceKind, facts};
use spawnit_model::spec::{ContainerSpec, HealthSpec, Instance, PublishMode, SwarmSettings, TemplateRef};
use spawnit_model::{DockerNaming, Exposure, Id, OwnerKey, ProviderKind, Redactor, ResourceState, ServiceSpec, State};
use spawnit_plan::{Placement, fingerprint, plan_apply, plan_destroy, swarm_resources};
use spawnit_testkit::swarm::{ClusterOptions, SwarmCluster};
use tokio_util::sync::CancellationToken;

const IMAGE: &str = "spawnit-test/webapp:1";
const SECRET: &str = "s3cr3t-Swarm-value-42";

fn id(s: &str) -> Id {
    Id::parse(s).unwrap()
}

fn spec() -> ServiceSpec {
    let app = ContainerSpec {
        image: IMAGE.into(),
        env: BTreeMap::from([("PORT".to_owned(), "80".to_owned()), ("APP_PASSWORD".to_owned(), SECRET.to_owned())]),
        replicas: Some(3),
        health: Some(HealthSpec {
            command: vec!["wget".into(), "-q".into(), "-O-".into(), "http://127.0.0.1/health".into()],
            interval_s: 1,
            timeout_s: 2,
            retries: 3,
            start_period_s: 0,
        }),
        ..Default::default()
    };
    ServiceSpec {
        client: id("acme"),
        name: id("shop"),
        template: TemplateRef { id: id("web-app"), version: "1.0.0".into() },
        provider: ProviderKind::Swarm,
        network: id("default"),
        exposure: Exposure::Loopback,
        aws: None,
        swarm: Some(SwarmSettings { publish_mode: PublishMode::Host, restart_delay_s: 0, stop_grace_s: 2 }),
        params: BTreeMap::from([("app_password".to_owned(), Value::from(SECRET))]),
        secret_params: vec!["app_password".into()],
        instance: Instance { containers: BTreeMap::from([("app".to_owned(), app)]), ..Default::default() },
        docker_naming: DockerNaming::V2,
        drift_policy: Default::default(),
        expires_at: None,
        created_at: chrono::Utc::now(),
        updated_at: chrono::Utc::now(),
    }
}

/// Carries out a plan change by change (its order is a valid one), recording state.
async fn execute(provider: &SwarmProvider, scope: &Scope, plan: &Plan, state: &mut State) {
    let cancel = CancellationToken::new();
    for c in &plan.changes {
        let record = |state: &mut State, applied: spawnit_engine::Applied| {
            let d = c.desired.clone().expect("desired");
            state.resources.insert(
                c.address.clone(),
                ResourceState {
                    id: applied.id,
                    fingerprint: fingerprint(&d.attrs),
                    attrs: d.attrs,
                    depends_on: d.depends_on,
                    outputs: applied.outputs,
                    updated_at: chrono::Utc::now(),
                },
            );
        };
        match c.action {
            Action::NoOp => {}
            Action::Create => {
                let d = c.desired.as_ref().expect("desired");
                let applied = provider.create(scope, d, &fingerprint(&d.attrs), &cancel).await.expect("create");
                record(state, applied);
            }
            Action::Update => {
                let d = c.desired.as_ref().expect("desired");
                let id = c.existing_id.as_deref().expect("id");
                let applied = provider.update(scope, d, id, &fingerprint(&d.attrs), &cancel).await.expect("update");
                record(state, applied);
            }
            Action::Replace => {
                let d = c.desired.as_ref().expect("desired");
                if let Some(id) = &c.existing_id {
                    provider.delete(scope, &c.address, id, &cancel).await.expect("delete");
                }
                let applied = provider.create(scope, d, &fingerprint(&d.attrs), &cancel).await.expect("create");
                record(state, applied);
            }
            Action::Delete => {
                if let Some(id) = &c.existing_id {
                    provider.delete(scope, &c.address, id, &cancel).await.expect("delete");
                }
                state.resources.remove(&c.address);
            }
        }
    }
}

async fn plan(
    provider: &SwarmProvider,
    scope: &Scope,
    state: &State,
    spec: &ServiceSpec,
) -> (Plan, Vec<ObservedResource>) {
    let desired = swarm_resources(spec, &Placement::Pool);
    let observed = provider.observe(scope, &desired).await.expect("observe");
    (plan_apply("service acme/shop", &desired, state, &observed, &Redactor::for_spec(spec)), observed)
}

fn running_nodes(cluster: &SwarmCluster, service: &str) -> Vec<String> {
    let out = cluster
        .docker(
            0,
            &["service", "ps", "--filter", "desired-state=running", "--format", "{{.Node}} {{.CurrentState}}", service],
        )
        .expect("service ps");
    let mut nodes: Vec<String> = out
        .lines()
        .filter(|l| l.contains("Running"))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect();
    nodes.sort();
    nodes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swarm_services_secrets_drift_and_destroy_on_a_real_cluster() {
    let images = vec![IMAGE.into(), "spawnit-test/webapp:2".into(), "spawnit-test/webapp:unhealthy".into()];
    let options = ClusterOptions { nodes: 3, images, ports: vec![] };
    let cluster = tokio::task::spawn_blocking(move || SwarmCluster::start("provider", options))
        .await
        .expect("harness thread")
        .expect("a 3-node Swarm (scripts/test-images.sh builds its image)");
    // Pool nodes carry spawnit.pool=true (the cluster helper's node rules); tasks go there.
    for node in cluster.nodes() {
        cluster.docker(0, &["node", "update", "--label-add", "spawnit.pool=true", &node.hostname]).expect("label");
    }
    let provider = SwarmProvider::connect(&cluster.manager_host(), None).await.expect("the manager answers");
    let spec = spec();
    let scope = Scope { owner: OwnerKey::service(&spec.client, &spec.name), lineage: "lineage-1".into() };
    let service = "spawnit_acme_shop_app";

    // First apply: network, secret, one service of 3 replicas spread over the 3 nodes.
    let mut state = State::new("lineage-1");
    let (first, _) = plan(&provider, &scope, &state, &spec).await;
    let created: Vec<String> = first.actions().map(|c| format!("{} {}", c.action, c.address)).collect();
    assert_eq!(
        created,
        ["create swarm_network.default", "create swarm_secret.app_password", "create swarm_service.app"],
        "{first:?}"
    );
    execute(&provider, &scope, &first, &mut state).await;
    let recorded = &state.resources[&"swarm_service.app".parse().unwrap()];
    assert_eq!(recorded.outputs.get("tasks").map(String::as_str), Some("3/3 running"), "{recorded:?}");
    let nodes = running_nodes(&cluster, service);
    let mut all: Vec<String> = cluster.nodes().iter().map(|n| n.hostname.clone()).collect();
    all.sort();
    assert_eq!(nodes, all, "one task on each node");
    let (again, observed) = plan(&provider, &scope, &state, &spec).await;
    assert_eq!(again.status, PlanStatus::Compliant, "{again:?}");
    let app = observed.iter().find(|o| o.address.kind == ResourceKind::SwarmService).expect("observed");
    assert_eq!(app.facts.get(facts::TASKS).map(String::as_str), Some("3/3 running"));

    // A second service of the client shares its overlay network (adopted, not created again).
    let mut blog = spec.clone();
    blog.name = id("blog");
    blog.params.clear();
    blog.secret_params.clear();
    let web = blog.instance.containers.get_mut("app").expect("app");
    web.env.remove("APP_PASSWORD");
    web.replicas = None;
    let blog_scope = Scope { owner: OwnerKey::service(&blog.client, &blog.name), lineage: "lineage-2".into() };
    let mut blog_state = State::new("lineage-2");
    let (blog_plan, _) = plan(&provider, &blog_scope, &blog_state, &blog).await;
    let network = blog_plan.changes.iter().find(|c| c.address.kind == ResourceKind::SwarmNetwork).expect("network");
    assert_eq!(network.action, Action::NoOp, "{blog_plan:?}");
    assert!(network.reasons[0].starts_with("adopted"), "{:?}", network.reasons);
    execute(&provider, &blog_scope, &blog_plan, &mut blog_state).await;

    // The secret is a Swarm secret: not in the service's spec, a file in its tasks.
    let inspect = cluster.docker(0, &["service", "inspect", service]).expect("inspect");
    assert!(!inspect.contains(SECRET), "the secret value is in `docker service inspect`");
    assert!(inspect.contains("APP_PASSWORD_FILE=/run/secrets/app_password"), "{inspect}");
    let secrets =
        cluster.docker(0, &["secret", "ls", "--filter", "label=spawnit.service=shop", "--format", "{{.Name}}"]);
    assert!(secrets.expect("secret ls").starts_with("spawnit_acme_shop_app_password_"));
    let task = cluster.docker(1, &["ps", "-q", "--filter", "label=spawnit.service=shop"]).expect("ps");
    let task = task.lines().next().expect("a task on node 1");
    let read = cluster.docker(1, &["exec", task, "cat", "/run/secrets/app_password"]).expect("exec");
    assert_eq!(read.trim(), SECRET);

    // Scaled outside SpawnIt: observed with the reason, repaired by an update.
    cluster.docker(0, &["service", "scale", "--detach", &format!("{service}=1")]).expect("scale");
    let (drift, _) = plan(&provider, &scope, &state, &spec).await;
    let change = drift.changes.iter().find(|c| c.address.name == "app").expect("app change");
    assert_eq!(change.action, Action::Update, "{drift:?}");
    assert_eq!(change.reasons, ["scaled outside SpawnIt: 1 replicas instead of 3"]);
    execute(&provider, &scope, &drift, &mut state).await;
    let (repaired, _) = plan(&provider, &scope, &state, &spec).await;
    assert_eq!(repaired.status, PlanStatus::Compliant, "{repaired:?}");
    assert_eq!(running_nodes(&cluster, service).len(), 3);

    // Image changed outside: observed and put back.
    cluster
        .docker(
            0,
            &["service", "update", "--detach", "--no-resolve-image", "--image", "spawnit-test/webapp:2", service],
        )
        .expect("update");
    let (drift, _) = plan(&provider, &scope, &state, &spec).await;
    let change = drift.changes.iter().find(|c| c.address.name == "app").expect("app change");
    assert_eq!(change.reasons, [format!("image changed outside SpawnIt: {IMAGE} → spawnit-test/webapp:2")]);
    execute(&provider, &scope, &drift, &mut state).await;

    // A new image whose tasks never turn healthy: Swarm rolls the update back by itself, the
    // change fails with Swarm's message, and the service is back on the image it had.
    let mut unhealthy = spec.clone();
    unhealthy.instance.containers.get_mut("app").expect("app").image = "spawnit-test/webapp:unhealthy".into();
    let (bad, _) = plan(&provider, &scope, &state, &unhealthy).await;
    let change = bad.changes.iter().find(|c| c.address.name == "app").expect("app change");
    assert_eq!(change.action, Action::Update, "{bad:?}");
    let d = change.desired.as_ref().expect("desired");
    let existing = change.existing_id.as_deref().expect("id");
    let e = provider
        .update(&scope, d, existing, &fingerprint(&d.attrs), &CancellationToken::new())
        .await
        .expect_err("an update to tasks that never turn healthy");
    assert!(e.chain().contains("Swarm rolled the update back"), "{}", e.chain());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (back, _) = plan(&provider, &scope, &state, &spec).await;
        let running = running_nodes(&cluster, service).len();
        if back.status == PlanStatus::Compliant && running == 3 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not back on {IMAGE} with 3 tasks: {back:?}");
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }

    // Removed outside SpawnIt: created again.
    cluster.docker(0, &["service", "rm", service]).expect("rm");
    let (drift, _) = plan(&provider, &scope, &state, &spec).await;
    let change = drift.changes.iter().find(|c| c.address.name == "app").expect("app change");
    assert_eq!(change.action, Action::Create, "{drift:?}");
    assert!(change.reasons[0].starts_with("removed outside SpawnIt"), "{:?}", change.reasons);
    execute(&provider, &scope, &drift, &mut state).await;
    let (repaired, _) = plan(&provider, &scope, &state, &spec).await;
    assert_eq!(repaired.status, PlanStatus::Compliant, "{repaired:?}");

    // Adoption: with no state, everything is found by its labels and adopted.
    let (adopted, _) = plan(&provider, &scope, &State::new("lineage-1"), &spec).await;
    assert_eq!(adopted.status, PlanStatus::Compliant, "{adopted:?}");
    assert!(adopted.changes.iter().all(|c| c.reasons.iter().any(|r| r.starts_with("adopted"))), "{adopted:?}");

    // Destroy: nothing with our labels is left.
    let desired = swarm_resources(&spec, &Placement::Pool);
    let observed = provider.observe(&scope, &desired).await.expect("observe");
    let destroy = plan_destroy("service acme/shop", &state, &observed);
    execute(&provider, &scope, &destroy, &mut state).await;
    assert!(state.resources.is_empty(), "{state:?}");
    // The network stays while the client's other service is on it, and goes with the last one.
    let networks = |c: &SwarmCluster| c.docker(0, &["network", "ls", "-q", "--filter", "label=spawnit.client=acme"]);
    assert!(!networks(&cluster).expect("network ls").trim().is_empty(), "the shared network went with shop");
    let blog_desired = swarm_resources(&blog, &Placement::Pool);
    let observed = provider.observe(&blog_scope, &blog_desired).await.expect("observe");
    execute(&provider, &blog_scope, &plan_destroy("service acme/blog", &blog_state, &observed), &mut blog_state).await;
    assert!(networks(&cluster).expect("network ls").trim().is_empty(), "the network outlived its last service");

    // A client renting no node of this cluster: its tasks cannot be placed, and Swarm's reason
    // is what apply records and observation reports.
    let rented = swarm_resources(&spec, &Placement::Rented { client: id("acme") });
    let observed = provider.observe(&scope, &rented).await.expect("observe");
    let unplaced = plan_apply("service acme/shop", &rented, &state, &observed, &Redactor::for_spec(&spec));
    execute(&provider, &scope, &unplaced, &mut state).await;
    let recorded = &state.resources[&"swarm_service.app".parse().unwrap()];
    let why = recorded.outputs.get("unplaced").cloned().unwrap_or_default();
    assert!(why.contains("no suitable node"), "{recorded:?}");
    let observed = provider.observe(&scope, &rented).await.expect("observe");
    let app = observed.iter().find(|o| o.address.kind == ResourceKind::SwarmService).expect("observed");
    assert_eq!(app.facts.get(facts::TASKS).map(String::as_str), Some("0/3 running"), "{app:?}");
    assert!(app.facts.get(facts::UNPLACED).is_some_and(|w| w.contains("no suitable node")), "{app:?}");
    let destroy = plan_destroy("service acme/shop", &state, &observed);
    execute(&provider, &scope, &destroy, &mut state).await;
    assert!(state.resources.is_empty(), "{state:?}");
    for kind in ["service", "secret", "network"] {
        let left = cluster
            .docker(0, &[kind, "ls", "-q", "--filter", "label=spawnit.client=acme"])
            .unwrap_or_else(|e| panic!("{kind} ls: {e}"));
        let shown = if left.trim().is_empty() {
            String::new()
        } else {
            cluster.docker(0, &[kind, "inspect", left.trim()]).unwrap_or_default()
        };
        assert!(left.trim().is_empty(), "{kind}s left: {left} {shown} after {destroy:?}");
    }
}
