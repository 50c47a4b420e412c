//! The desired resources of a service on a Docker Swarm cluster (`provider: swarm`).
//!
//! Each blueprint container is one Swarm service: a replicated container is ONE service with
//! N replicas (Swarm spreads and reschedules its tasks), with restart policy `any`, rolling
//! updates `start-first` that roll back by themselves when the new tasks fail, its health check
//! and a stop grace period. The client's network is an attachable overlay network shared by its
//! Swarm services. A secret parameter given to a container as a whole environment value becomes
//! a Swarm secret mounted as `/run/secrets/<param>`, and the container gets `<VAR>_FILE` (the
//! convention of the official images) instead of the value: no secret is ever in a service's
//! plain spec, and a secret written into a longer value or a command line is refused. Volumes
//! stay node-local: a task rescheduled to another node starts with an empty volume there.
//!
//! A load balancer is a Caddy service (one replica) publishing the host port, whose Caddyfile
//! is a Swarm secret mounted at `/run/secrets/caddyfile` (bollard, SpawnIt's Docker client, has
//! no Swarm config API; a secret is stored encrypted and versioned the same way) and whose upstreams are the fronted service's DNS name (`dnsrr`: one
//! address per running task), so scaling and rescheduling need no configuration change.
//!
//! Where tasks may run is an input ([`Placement`]), computed by the engine from the lease book.

use std::collections::BTreeMap;

use serde_json::Value;
use sha2::{Digest, Sha256};
use spawnit_model::plan::{Action, Plan};
use spawnit_model::resource::{
    Address, DesiredResource, EndpointMode, ResourceAttrs, ResourceKind, SwarmFile, SwarmNetworkAttrs, SwarmPort,
    SwarmSecretAttrs, SwarmServiceAttrs, VolumeMount,
};
use spawnit_model::spec::{Protocol, PublishMode, SwarmSettings};
use spawnit_model::{Id, ServiceSpec};

use crate::balancer::{BALANCER_LISTEN_PORT, caddyfile_swarm};
use crate::render::{FieldError, ValidationError};

/// Where a client's Swarm tasks may run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placement {
    /// On the shared pool: nodes labelled `spawnit.pool=true`.
    Pool,
    /// Only on the nodes the client rents (labelled `spawnit.client=<client>`).
    Rented { client: Id },
}

impl Placement {
    /// The Swarm placement constraint.
    pub fn constraint(&self) -> String {
        match self {
            Placement::Pool => "node.labels.spawnit.pool == true".to_owned(),
            Placement::Rented { client } => format!("node.labels.spawnit.client == {client}"),
        }
    }
}

/// Where a Swarm task finds its secrets.
pub const SWARM_SECRETS_DIR: &str = "/run/secrets";

/// The name of a client's overlay network on the cluster.
pub fn swarm_network_name(client: &str, network: &str) -> String {
    format!("spawnit_{client}_{network}_overlay")
}

/// The name of the load balancer's Swarm service.
const BALANCER: &str = "load_balancer";

/// The file name of a load balancer's Caddyfile under `/run/secrets/`.
pub const SWARM_CADDYFILE: &str = "caddyfile";

/// The address of a load balancer's Caddyfile (param names have no `.`: no secret parameter
/// can have it).
pub fn swarm_caddyfile_address() -> Address {
    Address::new(ResourceKind::SwarmSecret, format!("{BALANCER}.{SWARM_CADDYFILE}"))
}

/// The address of a service's load-balancer Swarm service.
pub fn swarm_balancer_address() -> Address {
    Address::new(ResourceKind::SwarmService, BALANCER)
}

/// The secret parameters with a non-empty value, by name.
fn secret_values(spec: &ServiceSpec) -> BTreeMap<&str, String> {
    spec.secret_params
        .iter()
        .filter_map(|name| {
            let value = match spec.params.get(name)? {
                Value::String(s) => s.clone(),
                Value::Null => return None,
                other => other.to_string(),
            };
            (!value.is_empty()).then_some((name.as_str(), value))
        })
        .collect()
}

/// The environment variable that names a secret's file: `<VAR>_FILE` (`GF_…__FILE` for
/// Grafana, whose convention has two underscores).
fn file_var(var: &str) -> String {
    if var.starts_with("GF_") { format!("{var}__FILE") } else { format!("{var}_FILE") }
}

/// Checks that a spec can run on Swarm without a secret in plain sight: every secret
/// parameter a container uses is a whole environment value. Names each offending field.
pub fn swarm_check(spec: &ServiceSpec) -> Result<(), ValidationError> {
    let secrets = secret_values(spec);
    let mut errors = Vec::new();
    for (name, c) in &spec.instance.containers {
        for (param, value) in &secrets {
            for (var, v) in &c.env {
                if v != value && v.contains(value.as_str()) {
                    errors.push(FieldError {
                        field: format!("containers.{name}.env.{var}"),
                        reason: format!(
                            "holds secret parameter {param} inside a longer value: on swarm a secret is only \
                             given whole, as a file ({}_FILE); not supported by this template on swarm",
                            var
                        ),
                    });
                }
            }
            let args = c.entrypoint.iter().flatten().chain(&c.command);
            let health = c.health.iter().flat_map(|h| &h.command);
            if args.chain(health).any(|a| a.contains(value.as_str())) {
                errors.push(FieldError {
                    field: format!("containers.{name}.command"),
                    reason: format!(
                        "passes secret parameter {param} on a command line, which anyone who can inspect the \
                         Swarm service reads: not supported by this template on swarm (use the docker provider)"
                    ),
                });
            }
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(ValidationError { errors }) }
}

/// A short digest naming one version of an immutable Swarm object (secret or config).
fn version(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    h.finalize().iter().take(5).map(|b| format!("{b:02x}")).collect()
}

/// A digest of an environment (`KEY=value` lines, sorted): how a Swarm service's env is
/// compared with the one found without showing values.
pub fn env_digest(env: &BTreeMap<String, String>) -> String {
    let lines: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    version(&lines.iter().map(String::as_str).collect::<Vec<_>>())
}

/// The resources of a service on Swarm: its overlay network, its secrets, one Swarm service per
/// container and, with a load balancer, a Caddy service and its Caddyfile config.
pub fn swarm_resources(spec: &ServiceSpec, placement: &Placement) -> Vec<DesiredResource> {
    let settings = spec.swarm.clone().unwrap_or_default();
    let (client, service) = (spec.client.as_str(), spec.name.as_str());
    let object = |name: &str| spec.docker_naming.object(client, service, name);
    let constraints = vec![placement.constraint()];
    let network_address = Address::new(ResourceKind::SwarmNetwork, spec.network.as_str());
    let network = swarm_network_name(client, spec.network.as_str());
    let mut out = vec![DesiredResource {
        address: network_address.clone(),
        attrs: ResourceAttrs::SwarmNetwork(SwarmNetworkAttrs { name: network.clone(), attachable: true }),
        depends_on: Vec::new(),
    }];
    let secrets = secret_values(spec);
    let mut secret_used: BTreeMap<&str, SwarmFile> = BTreeMap::new();
    let balanced = spec.instance.load_balancer.as_ref().map(|lb| lb.container.as_str());
    for (name, c) in &spec.instance.containers {
        let mut env = BTreeMap::new();
        let mut files = Vec::new();
        let mut depends_on = vec![network_address.clone()];
        for (var, value) in &c.env {
            match secrets.iter().find(|(_, s)| *s == value) {
                Some((param, secret)) => {
                    let file = secret_used.entry(param).or_insert_with(|| SwarmFile {
                        name: format!("{}_{}", object(param), version(&[client, service, param, secret])),
                        target: (*param).to_owned(),
                    });
                    if !files.contains(file) {
                        files.push(file.clone());
                    }
                    env.insert(file_var(var), format!("{SWARM_SECRETS_DIR}/{param}"));
                    depends_on.push(Address::new(ResourceKind::SwarmSecret, *param));
                }
                None => {
                    env.insert(var.clone(), value.clone());
                }
            }
        }
        depends_on.extend(c.depends_on.iter().map(|d| Address::new(ResourceKind::SwarmService, d.as_str())));
        depends_on.sort();
        depends_on.dedup();
        let dnsrr = balanced == Some(name.as_str()) || settings.publish_mode == PublishMode::Host;
        out.push(DesiredResource {
            address: Address::new(ResourceKind::SwarmService, name.as_str()),
            attrs: ResourceAttrs::SwarmService(SwarmServiceAttrs {
                name: object(name),
                image: c.image.clone(),
                entrypoint: c.entrypoint.clone(),
                command: c.command.clone(),
                env,
                replicas: c.replica_count(),
                ports: c
                    .ports
                    .iter()
                    .map(|p| SwarmPort {
                        target: p.container,
                        published: p.host,
                        protocol: p.protocol,
                        mode: settings.publish_mode,
                    })
                    .collect(),
                endpoint_mode: if dnsrr { EndpointMode::Dnsrr } else { EndpointMode::Vip },
                network: network.clone(),
                aliases: vec![format!("{service}-{name}")],
                mounts: c
                    .volumes
                    .iter()
                    .map(|m| VolumeMount { volume: object(&m.volume), path: m.path.clone(), read_only: m.read_only })
                    .collect(),
                secrets: files,
                health: c.health.clone(),
                user: c.user.clone(),
                constraints: constraints.clone(),
                restart_delay_s: settings.restart_delay_s,
                stop_grace_s: settings.stop_grace_s,
            }),
            depends_on,
        });
    }
    for (param, file) in secret_used {
        out.push(DesiredResource {
            address: Address::new(ResourceKind::SwarmSecret, param),
            attrs: ResourceAttrs::SwarmSecret(SwarmSecretAttrs {
                name: file.name,
                data: secrets.get(param).cloned().unwrap_or_default(),
            }),
            depends_on: Vec::new(),
        });
    }
    if let Some(lb) = &spec.instance.load_balancer {
        let text = caddyfile_swarm(BALANCER_LISTEN_PORT, &object(&lb.container), lb.port, lb.sticky, &lb.health_path);
        let config = swarm_caddyfile_address();
        let config_name = format!("{}_{SWARM_CADDYFILE}_{}", object(BALANCER), version(&[&text]));
        out.push(DesiredResource {
            address: config.clone(),
            attrs: ResourceAttrs::SwarmSecret(SwarmSecretAttrs { name: config_name.clone(), data: text }),
            depends_on: Vec::new(),
        });
        out.push(DesiredResource {
            address: swarm_balancer_address(),
            attrs: ResourceAttrs::SwarmService(SwarmServiceAttrs {
                name: object(BALANCER),
                image: lb.image.clone(),
                entrypoint: None,
                command: vec![
                    "caddy".into(),
                    "run".into(),
                    "--config".into(),
                    format!("{SWARM_SECRETS_DIR}/{SWARM_CADDYFILE}"),
                    "--adapter".into(),
                    "caddyfile".into(),
                ],
                env: BTreeMap::new(),
                replicas: 1,
                ports: vec![SwarmPort {
                    target: BALANCER_LISTEN_PORT,
                    published: lb.host,
                    protocol: Protocol::Tcp,
                    mode: settings.publish_mode,
                }],
                endpoint_mode: if settings.publish_mode == PublishMode::Host {
                    EndpointMode::Dnsrr
                } else {
                    EndpointMode::Vip
                },
                network: network.clone(),
                aliases: vec![format!("{service}-{BALANCER}")],
                mounts: Vec::new(),
                secrets: vec![SwarmFile { name: config_name, target: SWARM_CADDYFILE.to_owned() }],
                health: None,
                user: None,
                constraints,
                restart_delay_s: settings.restart_delay_s,
                stop_grace_s: settings.stop_grace_s,
            }),
            depends_on: vec![network_address, config, Address::new(ResourceKind::SwarmService, lb.container.as_str())],
        });
    }
    out
}

/// The field checks of [`SwarmSettings`].
pub fn swarm_settings_check(s: &SwarmSettings) -> Result<(), ValidationError> {
    let mut errors = Vec::new();
    if s.restart_delay_s > 3600 {
        errors.push(FieldError {
            field: "swarm.restart_delay_s".into(),
            reason: format!("{} is more than an hour (3600 s)", s.restart_delay_s),
        });
    }
    if s.stop_grace_s > 3600 {
        errors.push(FieldError {
            field: "swarm.stop_grace_s".into(),
            reason: format!("{} is more than an hour (3600 s)", s.stop_grace_s),
        });
    }
    if errors.is_empty() { Ok(()) } else { Err(ValidationError { errors }) }
}

/// Says, on each Swarm service change that mounts volumes, that the volumes are node-local.
pub fn swarm_notes(plan: &mut Plan) {
    for change in &mut plan.changes {
        if !matches!(change.action, Action::Create | Action::Update | Action::Replace) {
            continue;
        }
        let Some(ResourceAttrs::SwarmService(s)) = change.desired.as_ref().map(|d| &d.attrs) else { continue };
        for m in &s.mounts {
            change.reasons.push(format!(
                "volume {} at {} is node-local: its data stays on the node a task ran on and does not follow a task \
                 Swarm reschedules to another node",
                m.volume, m.path
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spawnit_model::spec::{ContainerSpec, Instance, LoadBalancerSpec, MountSpec, TemplateRef, VolumeSpec};
    use spawnit_model::{DockerNaming, Exposure, ProviderKind};

    fn spec() -> ServiceSpec {
        let id = |s: &str| Id::parse(s).unwrap();
        let app = ContainerSpec {
            image: "spawnit-test/webapp:1".into(),
            env: [("PORT".to_owned(), "80".to_owned()), ("REDIS_PASSWORD".to_owned(), "s3cr3t-value".to_owned())]
                .into(),
            replicas: Some(3),
            volumes: vec![MountSpec { volume: "data".into(), path: "/data".into(), read_only: false }],
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
            params: [("redis_password".to_owned(), Value::from("s3cr3t-value"))].into(),
            secret_params: vec!["redis_password".into()],
            instance: Instance {
                volumes: [("data".to_owned(), VolumeSpec {})].into(),
                containers: [("app".to_owned(), app)].into(),
                load_balancer: Some(LoadBalancerSpec {
                    container: "app".into(),
                    port: 80,
                    host: 18080,
                    sticky: true,
                    health_path: "/health".into(),
                    image: "caddy:2".into(),
                    scheme: "http".into(),
                }),
            },
            docker_naming: DockerNaming::V2,
            drift_policy: Default::default(),
            expires_at: None,
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
        }
    }

    fn service<'a>(rs: &'a [DesiredResource], name: &str) -> &'a SwarmServiceAttrs {
        let r = rs.iter().find(|r| r.address == Address::new(ResourceKind::SwarmService, name)).unwrap();
        let ResourceAttrs::SwarmService(s) = &r.attrs else { panic!() };
        s
    }

    #[test]
    fn a_replicated_container_is_one_service_and_secrets_are_files() {
        let rs = swarm_resources(&spec(), &Placement::Pool);
        let addresses: Vec<String> = rs.iter().map(|r| r.address.to_string()).collect();
        assert_eq!(
            addresses,
            [
                "swarm_network.default",
                "swarm_service.app",
                "swarm_secret.redis_password",
                "swarm_secret.load_balancer.caddyfile",
                "swarm_service.load_balancer"
            ]
        );
        let app = service(&rs, "app");
        assert_eq!(app.replicas, 3);
        assert_eq!(app.endpoint_mode, EndpointMode::Dnsrr);
        assert_eq!(app.network, "spawnit_acme_default_overlay");
        assert_eq!(app.constraints, ["node.labels.spawnit.pool == true"]);
        assert_eq!(app.env.get("REDIS_PASSWORD_FILE").map(String::as_str), Some("/run/secrets/redis_password"));
        assert!(!serde_json::to_string(app).unwrap().contains("s3cr3t-value"));
        assert_eq!(app.secrets[0].target, "redis_password");
        assert!(app.secrets[0].name.starts_with("spawnit_acme_shop_redis_password_"));
        let lb = service(&rs, "load_balancer");
        assert_eq!(lb.replicas, 1);
        assert_eq!(
            lb.ports,
            [SwarmPort { target: 8080, published: 18080, protocol: Protocol::Tcp, mode: PublishMode::Host }]
        );
        assert_eq!(lb.secrets[0].target, "caddyfile");
        assert_eq!(lb.command[3], "/run/secrets/caddyfile");
        let ResourceAttrs::SwarmSecret(config) = &rs[3].attrs else { panic!() };
        assert!(config.data.contains("name spawnit_acme_shop_app"), "{}", config.data);
        assert_eq!(lb.secrets[0].name, config.name);
        // Rented nodes: the client's own label.
        let rented = swarm_resources(&spec(), &Placement::Rented { client: Id::parse("acme").unwrap() });
        assert_eq!(service(&rented, "app").constraints, ["node.labels.spawnit.client == acme"]);
    }

    #[test]
    fn a_new_secret_value_is_a_new_swarm_object() {
        let a = swarm_resources(&spec(), &Placement::Pool);
        let mut changed = spec();
        changed.params.insert("redis_password".into(), Value::from("other-value"));
        changed.instance.containers.get_mut("app").unwrap().env.insert("REDIS_PASSWORD".into(), "other-value".into());
        let b = swarm_resources(&changed, &Placement::Pool);
        assert_ne!(service(&a, "app").secrets[0].name, service(&b, "app").secrets[0].name);
    }

    #[test]
    fn secrets_in_commands_or_inside_values_are_refused_naming_the_field() {
        let mut s = spec();
        assert_eq!(swarm_check(&s), Ok(()));
        let app = s.instance.containers.get_mut("app").unwrap();
        app.env.insert("REDIS_URL".into(), "redis://:s3cr3t-value@x:6379".into());
        app.command = vec!["--pass".into(), "s3cr3t-value".into()];
        let errors = swarm_check(&s).unwrap_err().errors;
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["containers.app.env.REDIS_URL", "containers.app.command"]);
        assert!(!format!("{errors:?}").contains("s3cr3t-value"));
    }

    #[test]
    fn a_plan_shown_masks_the_secret_data() {
        let rs = swarm_resources(&spec(), &Placement::Pool);
        let plan = crate::plan_apply("s", &rs, &spawnit_model::State::new("l"), &[], &Default::default());
        let raw = serde_json::to_string(&plan).unwrap();
        assert!(raw.contains("s3cr3t-value"), "the secret's data is what the provider creates");
        let shown = serde_json::to_string(&spawnit_model::Redactor::for_spec(&spec()).plan(&plan)).unwrap();
        assert!(!shown.contains("s3cr3t-value"), "{shown}");
        assert!(shown.contains("swarm_secret.redis_password"), "{shown}");
    }

    #[test]
    fn volumes_are_said_node_local() {
        let rs = swarm_resources(&spec(), &Placement::Pool);
        let mut plan = crate::plan_apply("s", &rs, &spawnit_model::State::new("l"), &[], &Default::default());
        swarm_notes(&mut plan);
        let app = plan.changes.iter().find(|c| c.address.name == "app").unwrap();
        assert!(app.reasons.iter().any(|r| r.contains("node-local")), "{:?}", app.reasons);
    }

    #[test]
    fn scaled_or_updated_outside_is_an_in_place_update_with_reasons() {
        use spawnit_model::plan::{Action, PlanStatus, ReasonCode};
        use spawnit_model::resource::{Liveness, ObservedResource, facts};
        use spawnit_model::{ResourceState, State};
        let rs = swarm_resources(&spec(), &Placement::Pool);
        let mut state = State::new("l");
        let mut observed = Vec::new();
        for r in &rs {
            let fp = crate::fingerprint(&r.attrs);
            state.resources.insert(
                r.address.clone(),
                ResourceState {
                    id: format!("id-{}", r.address.name),
                    attrs: r.attrs.clone(),
                    fingerprint: fp.clone(),
                    depends_on: r.depends_on.clone(),
                    outputs: Default::default(),
                    updated_at: chrono::Utc::now(),
                },
            );
            let mut o = ObservedResource {
                address: r.address.clone(),
                id: format!("id-{}", r.address.name),
                liveness: Liveness::Running,
                fingerprint: Some(fp),
                facts: Default::default(),
            };
            if let ResourceAttrs::SwarmService(s) = &r.attrs {
                o.facts.insert(facts::REPLICAS.into(), s.replicas.to_string());
                o.facts.insert(facts::IMAGE.into(), s.image.clone());
                o.facts.insert(facts::ENV_DIGEST.into(), env_digest(&s.env));
            }
            observed.push(o);
        }
        let redactor = spawnit_model::Redactor::default();
        let plan = crate::plan_apply("s", &rs, &state, &observed, &redactor);
        assert_eq!(plan.status, PlanStatus::Compliant, "{plan:?}");
        let app = observed.iter_mut().find(|o| o.address.name == "app").unwrap();
        app.facts.insert(facts::REPLICAS.into(), "1".into());
        app.facts.insert(facts::IMAGE.into(), "other:9".into());
        app.facts.insert(facts::ENV_DIGEST.into(), "x".into());
        let plan = crate::plan_apply("s", &rs, &state, &observed, &redactor);
        let change = plan.changes.iter().find(|c| c.address.name == "app").unwrap();
        assert_eq!((change.action, change.code), (Action::Update, ReasonCode::UpdateBecauseChangedOutside));
        assert_eq!(
            change.reasons,
            [
                "scaled outside SpawnIt: 1 replicas instead of 3",
                "image changed outside SpawnIt: spawnit-test/webapp:1 → other:9",
                "environment changed outside SpawnIt"
            ]
        );
        // A scale by the spec is an update in place too.
        let mut scaled = spec();
        scaled.instance.containers.get_mut("app").unwrap().replicas = Some(5);
        let rs = swarm_resources(&scaled, &Placement::Pool);
        let plan = crate::plan_apply("s", &rs, &state, &observed, &redactor);
        let change = plan.changes.iter().find(|c| c.address.name == "app").unwrap();
        assert_eq!(change.action, Action::Update);
        assert!(change.reasons.contains(&"replicas changed 3 → 5".to_owned()), "{:?}", change.reasons);
        // Removed outside: created again.
        observed.retain(|o| o.address.name != "app");
        let plan = crate::plan_apply("s", &rs, &state, &observed, &redactor);
        let change = plan.changes.iter().find(|c| c.address.name == "app").unwrap();
        assert_eq!(change.action, Action::Create);
        assert_eq!(change.reasons, ["removed outside SpawnIt (was id-app)"]);
    }
}
