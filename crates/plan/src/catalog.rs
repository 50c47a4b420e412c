//! The built-in catalog, compiled into the binary from the repository's `catalog/` folder and
//! seeded into the store on first use. After that the store's copy is the catalog: adding a
//! service is dropping a template file and a catalog entry into the store.

use spawnit_model::Template;

use crate::render::{TemplateError, template_check};

macro_rules! builtin {
    ($($id:literal),* $(,)?) => {
        &[$(($id, include_str!(concat!("../../../catalog/templates/", $id, ".template.json")))),*]
    };
}

const BUILTIN: &[(&str, &str)] = builtin!(
    "hello",
    "postgres",
    "mariadb",
    "redis",
    "mongodb",
    "nginx",
    "minecraft",
    "gitea",
    "jenkins",
    "grafana",
    "prometheus",
    "uptime-kuma",
    "minio",
    "web-app",
    "spawnit",
);

/// The built-in templates, each parsed and checked.
pub fn builtin_templates() -> Result<Vec<Template>, TemplateError> {
    BUILTIN
        .iter()
        .map(|(id, text)| {
            let template: Template = serde_json::from_str(text).map_err(|e| TemplateError {
                template: (*id).to_owned(),
                reason: format!("not a valid template: {e}"),
            })?;
            template_check(&template)?;
            Ok(template)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::{Value, json};
    use spawnit_model::resource::ResourceAttrs;
    use spawnit_model::spec::{AwsSettings, TemplateRef};
    use spawnit_model::{CatalogEntry, DockerNaming, Exposure, Id, ProviderKind, ServiceSpec};

    use super::*;
    use crate::desired::{provider_settings_check, service_resources};
    use crate::render::{params_resolve, render};

    fn spawnit() -> Template {
        let all = builtin_templates().expect("the built-in templates check");
        all.into_iter().find(|t| t.id.as_str() == "spawnit").expect("a spawnit template")
    }

    fn spec(template: &Template, input: &[(&str, Value)], provider: ProviderKind) -> ServiceSpec {
        let input: BTreeMap<String, Value> = input.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
        let params = params_resolve(template, &input, None, &mut rand::rng()).expect("valid parameters");
        let id = |s: &str| Id::parse(s).expect("an id");
        let instance = render(template, &id("ops"), &id("platform"), &params).expect("renders");
        let now = chrono::Utc::now();
        ServiceSpec {
            client: id("ops"),
            name: id("platform"),
            template: TemplateRef { id: template.id.clone(), version: template.version.clone() },
            provider,
            network: id("default"),
            exposure: Exposure::Loopback,
            aws: provider
                .is_aws()
                .then(|| AwsSettings { allowed_cidrs: vec!["203.0.113.0/24".into()], ..AwsSettings::new("eu-west-3") }),
            swarm: None,
            params,
            secret_params: vec!["s3_secret_access_key".into()],
            instance,
            docker_naming: DockerNaming::CURRENT,
            drift_policy: Default::default(),
            expires_at: None,
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn the_self_deployment_template_is_admin_only_replicas_with_the_socket_and_one_store() {
        let t = spawnit();
        assert!(t.admin_only);
        assert!(CatalogEntry::from(&t).admin_only);

        // By default: N replicas on one shared volume, each with the socket, behind the balancer.
        let s = spec(&t, &[("replicas", json!(3))], ProviderKind::Docker);
        let resources = service_resources(&s);
        let replicas: Vec<_> = resources
            .iter()
            .filter_map(|r| match &r.attrs {
                ResourceAttrs::Container(c) => Some(c),
                _ => None,
            })
            .collect();
        assert_eq!(replicas.len(), 3);
        let volumes: std::collections::BTreeSet<_> =
            replicas.iter().flat_map(|c| c.mounts.iter().map(|m| (m.volume.clone(), m.path.clone()))).collect();
        assert_eq!(volumes.len(), 1, "one shared store volume: {volumes:?}");
        for c in &replicas {
            assert!(c.docker_socket, "{c:?}");
            assert_eq!(c.env["SPAWNIT_LISTEN"], "0.0.0.0:8080");
            assert_eq!(c.env["SPAWNIT_DATA"], "/data");
            assert!(!c.env.contains_key("SPAWNIT_STORE") && !c.env.contains_key("AWS_SECRET_ACCESS_KEY"), "{c:?}");
        }
        let lb = s.instance.load_balancer.as_ref().expect("a load balancer");
        assert_eq!((lb.container.as_str(), lb.port, lb.health_path.as_str()), ("server", 8080, "/healthz"));
        provider_settings_check(&s).expect("runs on docker");

        // On S3: the location, endpoint and credentials by parameters.
        let s3 = spec(
            &t,
            &[
                ("s3", json!(true)),
                ("s3_location", json!("s3://platform-store/spawnit")),
                ("s3_endpoint", json!("http://minio:9000")),
                ("s3_access_key_id", json!("AKIAEXAMPLE")),
                ("s3_secret_access_key", json!("wJalrXUtnFEMI/K7MDENG")),
            ],
            ProviderKind::Docker,
        );
        let env = &s3.instance.containers["server"].env;
        assert_eq!(env["SPAWNIT_STORE"], "s3://platform-store/spawnit");
        assert_eq!(env["SPAWNIT_S3_ENDPOINT"], "http://minio:9000");
        assert_eq!(env["AWS_SECRET_ACCESS_KEY"], "wJalrXUtnFEMI/K7MDENG");
        assert!(t.parameters["s3_secret_access_key"].secret);
        let bad =
            params_resolve(&t, &BTreeMap::from([("s3_location".into(), json!("ftp://x"))]), None, &mut rand::rng());
        assert_eq!(bad.expect_err("not an s3 location").errors[0].field, "s3_location");

        // The socket exists on a Docker host only: Swarm tasks and Fargate are refused by name.
        for provider in [ProviderKind::Swarm, ProviderKind::AwsEcs] {
            let s = spec(&t, &[], provider);
            let err = provider_settings_check(&s).expect_err("no socket there");
            assert_eq!(err.errors[0].field, "provider");
            assert!(err.errors[0].reason.contains("container server needs the Docker socket"), "{err}");
        }
        // aws-asg runs it: each instance's own engine, replicas behind the ALB.
        provider_settings_check(&spec(&t, &[], ProviderKind::AwsAsg)).expect("runs on aws-asg");
    }

    #[test]
    fn on_aws_asg_an_s3_store_gets_an_instance_role_for_its_bucket_and_prefix_and_no_keys() {
        use crate::aws_scale::{aws_asg_resources, aws_scale_check, instance_profile_address, instance_role_address};
        let t = spawnit();
        let s = spec(
            &t,
            &[("s3", json!(true)), ("s3_location", json!("s3://platform-store/spawnit"))],
            ProviderKind::AwsAsg,
        );
        aws_scale_check(&s).expect("valid");
        let resources = aws_asg_resources(&s);
        let find = |a: &spawnit_model::resource::Address| resources.iter().find(|r| &r.address == a);
        let role = find(&instance_role_address()).expect("an instance role");
        let ResourceAttrs::IamRole(role_attrs) = &role.attrs else { panic!("not a role") };
        assert_eq!(role_attrs.trust_service, "ec2.amazonaws.com");
        assert!(role_attrs.managed_policies.is_empty());
        let policy: Value = serde_json::from_str(role_attrs.inline_policy.as_deref().expect("a policy")).unwrap();
        assert_eq!(
            policy["Statement"],
            json!([
                {
                    "Effect": "Allow",
                    "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                    "Resource": ["arn:aws:s3:::platform-store/spawnit/*"],
                },
                {
                    "Effect": "Allow",
                    "Action": ["s3:ListBucket"],
                    "Resource": ["arn:aws:s3:::platform-store"],
                    "Condition": { "StringLike": { "s3:prefix": ["spawnit", "spawnit/*"] } },
                },
            ])
        );
        let profile = find(&instance_profile_address()).expect("an instance profile");
        let ResourceAttrs::InstanceProfile(p) = &profile.attrs else { panic!("not a profile") };
        assert_eq!((p.name.as_str(), p.role.as_str()), ("spawnit_ops_platform_instance", role_attrs.name.as_str()));
        assert_eq!(profile.depends_on, [instance_role_address()]);
        let template = find(&crate::aws_scale::launch_template_address()).expect("a launch template");
        let ResourceAttrs::LaunchTemplate(lt) = &template.attrs else { panic!("not a launch template") };
        assert_eq!(lt.instance_profile.as_deref(), Some(p.name.as_str()));
        assert!(template.depends_on.contains(&instance_profile_address()));
        // The empty keys are left out: the SDK in the container takes the role's credentials.
        let env = &lt.instance.containers[0].env;
        assert_eq!(env["SPAWNIT_STORE"], "s3://platform-store/spawnit");
        assert!(!env.contains_key("AWS_ACCESS_KEY_ID") && !env.contains_key("AWS_SECRET_ACCESS_KEY"), "{env:?}");
        assert_eq!(env["AWS_REGION"], "us-east-1");

        // Without S3, or on a volume, no role.
        let volume = aws_asg_resources(&spec(&t, &[], ProviderKind::AwsAsg));
        assert!(volume.iter().all(|r| r.address != instance_role_address() && r.address != instance_profile_address()));
        // A bucket alone: every object of it.
        let whole =
            spec(&t, &[("s3", json!(true)), ("s3_location", json!("s3://platform-store"))], ProviderKind::AwsAsg);
        let policy = crate::aws_scale::instance_role_policy(&crate::aws_scale::instance_role_locations(&whole), "aws");
        assert!(policy.contains("arn:aws:s3:::platform-store/*") && !policy.contains("Condition"), "{policy}");
    }

    #[test]
    fn only_the_admin_only_templates_may_ask_for_the_socket() {
        for t in builtin_templates().expect("the built-in templates check") {
            let asks = t.blueprint.to_string().contains("docker_socket");
            assert_eq!(asks, t.admin_only, "template {}", t.id);
        }
    }
}
