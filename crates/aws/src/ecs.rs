//! The `aws-ecs` target's resources on AWS: ECS clusters, task definitions and services (with
//! their Application Auto Scaling target and CPU target-tracking policy), IAM task execution
//! roles, CloudWatch Logs log groups and SSM `SecureString` parameters; and the IAM instance
//! profiles of `aws-asg` instances (with their role, an IAM role like the ECS ones).
//!
//! Every resource carries SpawnIt's ownership tags and is observed by them (the names
//! SpawnIt gives them only narrow the look-up: a cluster, role, log group or service by name,
//! task definitions by family prefix, parameters by path). References between resources are
//! resolved by tag look-up when the resource that needs them is created: the task definition
//! finds its role, log group and parameters, the service its cluster, task definition and
//! security group. Provider ids are `<region>/<arn or name>`.
//!
//! A service is created without waiting for its tasks (their start is ECS's job; `show` gives
//! `running/desired`). Its desired count is set when created and then left to the autoscaler
//! while it stays within the bounds. Deleting a service deregisters its scalable target, scales
//! it to zero, deletes it and waits until it is inactive, so its cluster can go next.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use aws_sdk_applicationautoscaling::types::{
    MetricType, PolicyType, PredefinedMetricSpecification, ScalableDimension, ServiceNamespace,
    TargetTrackingScalingPolicyConfiguration,
};
use aws_sdk_ec2::types::Filter;
use aws_sdk_ecs::types::{
    AssignPublicIp, AwsVpcConfiguration, ClusterField, Compatibility, ContainerCondition, ContainerDefinition,
    ContainerDependency, HealthCheck, KeyValuePair, LaunchType, LogConfiguration, LogDriver, MountPoint,
    NetworkConfiguration, NetworkMode, PortMapping, Secret, ServiceField, TaskDefinitionField, TaskDefinitionStatus,
    TransportProtocol, Volume,
};
use spawnit_engine::{Applied, Scope};
use spawnit_model::Owner;
use spawnit_model::resource::{
    Address, CACHE_HOST, DesiredResource, EcsClusterAttrs, EcsScaling, EcsServiceAttrs, IamRoleAttrs,
    InstanceProfileAttrs, Liveness, LogGroupAttrs, ObservedResource, ResourceAttrs, ResourceKind, TaskDefinitionAttrs,
    facts, labels,
};
use spawnit_model::spec::Protocol;
use tokio_util::sync::CancellationToken;

use crate::{AwsError, AwsProvider, id_split};

/// The name of the inline policy SpawnIt puts on a role.
pub const INLINE_POLICY_NAME: &str = "spawnit";
/// The path of every IAM role SpawnIt creates: `/spawnit/<client>/<service>/`.
fn role_path(scope: &Scope) -> String {
    format!("/spawnit/{}/", scope_path(scope))
}

/// `<client>/<service>` (or `<client>/network-<name>`).
fn scope_path(scope: &Scope) -> String {
    match &scope.owner.owner {
        Owner::Service(s) => format!("{}/{}", scope.owner.client.as_str(), s.as_str()),
        Owner::Network(n) => format!("{}/network-{}", scope.owner.client.as_str(), n.as_str()),
    }
}

/// The SSM path holding a service's parameters and its log group's name.
fn parameter_path(scope: &Scope) -> String {
    format!("/spawnit/{}", scope_path(scope))
}

/// The ownership tags of a resource, as key/value pairs.
fn ownership(scope: &Scope, address: &Address, fingerprint: &str) -> Vec<(String, String)> {
    let mut tags = vec![
        (labels::CLIENT.to_owned(), scope.owner.client.as_str().to_owned()),
        (labels::RESOURCE.to_owned(), address.to_string()),
        (labels::LINEAGE.to_owned(), scope.lineage.clone()),
        (labels::FINGERPRINT.to_owned(), fingerprint.to_owned()),
    ];
    tags.push(match &scope.owner.owner {
        Owner::Service(s) => (labels::SERVICE.to_owned(), s.as_str().to_owned()),
        Owner::Network(n) => (labels::NETWORK.to_owned(), n.as_str().to_owned()),
    });
    tags
}

/// The address and fingerprint that tags name, when they are the scope's and of `kind`.
fn owned<'a>(
    scope: &Scope,
    kind: ResourceKind,
    tags: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Option<(Address, Option<String>)> {
    let tags: HashMap<&str, &str> = tags.into_iter().collect();
    if tags.get(labels::CLIENT) != Some(&scope.owner.client.as_str()) {
        return None;
    }
    let mine = match &scope.owner.owner {
        Owner::Service(s) => tags.get(labels::SERVICE) == Some(&s.as_str()),
        Owner::Network(n) => tags.get(labels::NETWORK) == Some(&n.as_str()),
    };
    let address: Address = tags.get(labels::RESOURCE)?.parse().ok()?;
    (mine && address.kind == kind).then(|| (address, tags.get(labels::FINGERPRINT).map(|f| (*f).to_owned())))
}

/// The ownership tags as IAM tags (roles and instance profiles).
fn iam_tags(tags: &[(String, String)]) -> Result<Vec<aws_sdk_iam::types::Tag>, AwsError> {
    tags.iter().map(|(k, v)| built(aws_sdk_iam::types::Tag::builder().key(k).value(v).build())).collect()
}

fn built<T>(r: Result<T, aws_sdk_ecs::error::BuildError>) -> Result<T, AwsError> {
    r.map_err(|e| AwsError::Missing(format!("an AWS request could not be built: {e}")))
}

fn observed(
    address: Address,
    id: String,
    fingerprint: Option<String>,
    facts: BTreeMap<String, String>,
) -> ObservedResource {
    ObservedResource { address, id, liveness: Liveness::Present, fingerprint, facts }
}

/// The scalable dimension's resource id of a service: `service/<cluster>/<service>`.
fn scaling_resource(cluster: &str, service: &str) -> String {
    format!("service/{cluster}/{service}")
}

/// `(cluster, service)` of a service ARN `arn:…:service/<cluster>/<service>`.
fn service_arn_parts(arn: &str) -> Result<(&str, &str), AwsError> {
    let rest = arn.rsplit_once(":service/").map(|(_, r)| r).unwrap_or(arn);
    rest.split_once('/').ok_or_else(|| AwsError::BadId(arn.to_owned()))
}

/// The name of a cluster from its ARN `arn:…:cluster/<name>`.
fn cluster_name(arn: &str) -> &str {
    arn.rsplit_once(":cluster/").map(|(_, n)| n).unwrap_or(arn)
}

fn protocol(p: Protocol) -> TransportProtocol {
    match p {
        Protocol::Tcp => TransportProtocol::Tcp,
        Protocol::Udp => TransportProtocol::Udp,
    }
}

impl AwsProvider {
    /// Every ECS-family resource of the scope that `desired` says where to look for.
    pub(crate) async fn ecs_observe(
        &self,
        scope: &Scope,
        desired: &[DesiredResource],
    ) -> Result<Vec<ObservedResource>, AwsError> {
        let mut out = Vec::new();
        let mut clusters: HashMap<Address, String> = HashMap::new();
        let mut regions: Vec<&str> = Vec::new();
        for r in desired {
            match &r.attrs {
                ResourceAttrs::EcsCluster(c) => {
                    if let Some(o) = self.cluster_observe(scope, c).await? {
                        clusters.insert(r.address.clone(), cluster_name(id_split(&o.id)?.1).to_owned());
                        out.push(o);
                    }
                }
                ResourceAttrs::IamRole(role) => out.extend(self.role_observe(scope, role).await?),
                ResourceAttrs::InstanceProfile(p) => out.extend(self.profile_observe(scope, p).await?),
                ResourceAttrs::LogGroup(g) => out.extend(self.log_group_observe(scope, g).await?),
                ResourceAttrs::TaskDefinition(t) => out.extend(self.task_definitions_observe(scope, t).await?),
                _ => {}
            }
            let region = match &r.attrs {
                ResourceAttrs::EcsCluster(c) => Some(c.region.as_str()),
                ResourceAttrs::TaskDefinition(t) => Some(t.region.as_str()),
                ResourceAttrs::SsmParameter(p) => Some(p.region.as_str()),
                ResourceAttrs::LogGroup(g) => Some(g.region.as_str()),
                _ => None,
            };
            if let Some(region) = region
                && !regions.contains(&region)
            {
                regions.push(region);
            }
        }
        for region in regions {
            out.extend(self.parameters_observe(scope, region).await?);
        }
        for r in desired {
            if let ResourceAttrs::EcsService(s) = &r.attrs
                && let Some(cluster) = clusters.get(&s.cluster)
            {
                out.extend(self.service_observe(scope, s, cluster).await?);
            }
        }
        Ok(out)
    }

    async fn cluster_observe(&self, scope: &Scope, c: &EcsClusterAttrs) -> Result<Option<ObservedResource>, AwsError> {
        let out = self
            .clients_of(&c.region)
            .ecs
            .describe_clusters()
            .clusters(&c.name)
            .include(ClusterField::Tags)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ECS DescribeClusters", &c.region, e))?;
        Ok(out.clusters().iter().find_map(|cl| {
            if cl.status() != Some("ACTIVE") {
                return None;
            }
            let tags = cl.tags().iter().filter_map(|t| Some((t.key()?, t.value()?)));
            let (address, fingerprint) = owned(scope, ResourceKind::EcsCluster, tags)?;
            Some(observed(address, format!("{}/{}", c.region, cl.cluster_arn()?), fingerprint, BTreeMap::new()))
        }))
    }

    /// The role named as desired, with its policies as a fact, when it carries the scope's tags.
    async fn role_observe(&self, scope: &Scope, role: &IamRoleAttrs) -> Result<Option<ObservedResource>, AwsError> {
        let iam = self.clients_of(&role.region).iam;
        let found = match iam.get_role().role_name(&role.name).send().await {
            Ok(out) => out.role().cloned(),
            Err(e) => {
                let e = AwsError::from_sdk("IAM GetRole", &role.region, e);
                if e.code() == Some("NoSuchEntity") {
                    return Ok(None);
                }
                return Err(e);
            }
        };
        let Some(found) = found else { return Ok(None) };
        let tags = found.tags().iter().map(|t| (t.key(), t.value()));
        let Some((address, fingerprint)) = owned(scope, ResourceKind::IamRole, tags) else { return Ok(None) };
        let (managed, inline) = self.role_policies(&role.region, &role.name).await?;
        let mut facts = BTreeMap::new();
        facts.insert(facts::POLICIES.to_owned(), IamRoleAttrs::policies_fact(&managed, inline.as_deref()));
        Ok(Some(observed(address, format!("{}/{}", role.region, role.name), fingerprint, facts)))
    }

    /// The instance profile named as desired, with the roles it holds as a fact, when it carries
    /// the scope's tags.
    async fn profile_observe(
        &self,
        scope: &Scope,
        p: &InstanceProfileAttrs,
    ) -> Result<Option<ObservedResource>, AwsError> {
        let Some(found) = self.profile_get(&p.region, &p.name).await? else { return Ok(None) };
        let tags = found.tags().iter().map(|t| (t.key(), t.value()));
        let Some((address, fingerprint)) = owned(scope, ResourceKind::InstanceProfile, tags) else { return Ok(None) };
        let mut facts = BTreeMap::new();
        let roles: Vec<&str> = found.roles().iter().map(|r| r.role_name()).collect();
        facts.insert(facts::ROLES.to_owned(), roles.join(", "));
        Ok(Some(observed(address, format!("{}/{}", p.region, p.name), fingerprint, facts)))
    }

    /// An instance profile by name; `None` when there is none.
    pub(crate) async fn profile_get(
        &self,
        region: &str,
        name: &str,
    ) -> Result<Option<aws_sdk_iam::types::InstanceProfile>, AwsError> {
        match self.clients_of(region).iam.get_instance_profile().instance_profile_name(name).send().await {
            Ok(out) => Ok(out.instance_profile().cloned()),
            Err(e) => {
                let e = AwsError::from_sdk("IAM GetInstanceProfile", region, e);
                if e.code() == Some("NoSuchEntity") { Ok(None) } else { Err(e) }
            }
        }
    }

    /// A role's attached managed policy ARNs and its `spawnit` inline policy document.
    pub(crate) async fn role_policies(
        &self,
        region: &str,
        name: &str,
    ) -> Result<(Vec<String>, Option<String>), AwsError> {
        let iam = self.clients_of(region).iam;
        let attached = iam
            .list_attached_role_policies()
            .role_name(name)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("IAM ListAttachedRolePolicies", region, e))?;
        let managed = attached.attached_policies().iter().filter_map(|p| p.policy_arn().map(str::to_owned)).collect();
        let inline = match iam.get_role_policy().role_name(name).policy_name(INLINE_POLICY_NAME).send().await {
            // IAM returns documents URL-encoded.
            Ok(out) => Some(url_decode(out.policy_document())),
            Err(e) => {
                let e = AwsError::from_sdk("IAM GetRolePolicy", region, e);
                if e.code() != Some("NoSuchEntity") {
                    return Err(e);
                }
                None
            }
        };
        Ok((managed, inline))
    }

    async fn log_group_observe(&self, scope: &Scope, g: &LogGroupAttrs) -> Result<Option<ObservedResource>, AwsError> {
        let logs = self.clients_of(&g.region).logs;
        let out = logs
            .describe_log_groups()
            .log_group_name_prefix(&g.name)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("CloudWatch Logs DescribeLogGroups", &g.region, e))?;
        let Some(found) = out.log_groups().iter().find(|l| l.log_group_name() == Some(g.name.as_str())) else {
            return Ok(None);
        };
        let arn = found
            .log_group_arn()
            .map(str::to_owned)
            .unwrap_or_else(|| found.arn().unwrap_or_default().trim_end_matches(":*").to_owned());
        let tags = logs
            .list_tags_for_resource()
            .resource_arn(&arn)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("CloudWatch Logs ListTagsForResource", &g.region, e))?;
        let tags = tags.tags().map(|t| t.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect::<Vec<_>>());
        let Some((address, fingerprint)) = owned(scope, ResourceKind::LogGroup, tags.unwrap_or_default()) else {
            return Ok(None);
        };
        let mut facts = BTreeMap::new();
        let retention = found.retention_in_days().map(|d| d.to_string()).unwrap_or_else(|| "none".into());
        facts.insert(facts::RETENTION.to_owned(), retention);
        Ok(Some(observed(address, format!("{}/{}", g.region, g.name), fingerprint, facts)))
    }

    /// The active revisions of the family carrying the scope's tags.
    async fn task_definitions_observe(
        &self,
        scope: &Scope,
        t: &TaskDefinitionAttrs,
    ) -> Result<Vec<ObservedResource>, AwsError> {
        let ecs = self.clients_of(&t.region).ecs;
        let mut arns = Vec::new();
        let mut pages = ecs
            .list_task_definitions()
            .family_prefix(&t.family)
            .status(TaskDefinitionStatus::Active)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsError::from_sdk("ECS ListTaskDefinitions", &t.region, e))?;
            arns.extend(page.task_definition_arns().iter().cloned());
        }
        let mut out = Vec::new();
        for arn in arns {
            let found = ecs
                .describe_task_definition()
                .task_definition(&arn)
                .include(TaskDefinitionField::Tags)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("ECS DescribeTaskDefinition", &t.region, e))?;
            if found.task_definition().and_then(|d| d.family()) != Some(t.family.as_str()) {
                continue;
            }
            let tags = found.tags().iter().filter_map(|t| Some((t.key()?, t.value()?)));
            if let Some((address, fingerprint)) = owned(scope, ResourceKind::TaskDefinition, tags) {
                out.push(observed(address, format!("{}/{arn}", t.region), fingerprint, BTreeMap::new()));
            }
        }
        Ok(out)
    }

    /// The parameters under the scope's path carrying its tags.
    async fn parameters_observe(&self, scope: &Scope, region: &str) -> Result<Vec<ObservedResource>, AwsError> {
        let ssm = self.clients_of(region).ssm;
        let filter = built(
            aws_sdk_ssm::types::ParameterStringFilter::builder()
                .key("Path")
                .option("Recursive")
                .values(parameter_path(scope))
                .build(),
        )?;
        let mut names = Vec::new();
        let mut pages = ssm.describe_parameters().parameter_filters(filter).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsError::from_sdk("SSM DescribeParameters", region, e))?;
            names.extend(page.parameters().iter().filter_map(|p| p.name().map(str::to_owned)));
        }
        let mut out = Vec::new();
        for name in names {
            let tags = ssm
                .list_tags_for_resource()
                .resource_type(aws_sdk_ssm::types::ResourceTypeForTagging::Parameter)
                .resource_id(&name)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("SSM ListTagsForResource", region, e))?;
            let tags = tags.tag_list().iter().map(|t| (t.key(), t.value()));
            if let Some((address, fingerprint)) = owned(scope, ResourceKind::SsmParameter, tags) {
                out.push(observed(address, format!("{region}/{name}"), fingerprint, BTreeMap::new()));
            }
        }
        Ok(out)
    }

    /// The active service named as desired in `cluster`, with its counts, scaling and target
    /// group as facts.
    async fn service_observe(
        &self,
        scope: &Scope,
        s: &EcsServiceAttrs,
        cluster: &str,
    ) -> Result<Option<ObservedResource>, AwsError> {
        let clients = self.clients_of(&s.region);
        let out = clients
            .ecs
            .describe_services()
            .cluster(cluster)
            .services(&s.name)
            .include(ServiceField::Tags)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ECS DescribeServices", &s.region, e))?;
        let Some(found) = out.services().iter().find(|f| f.status() == Some("ACTIVE")) else { return Ok(None) };
        let tags = found.tags().iter().filter_map(|t| Some((t.key()?, t.value()?)));
        let Some((address, fingerprint)) = owned(scope, ResourceKind::EcsService, tags) else { return Ok(None) };
        let mut facts = BTreeMap::new();
        facts.insert(facts::DESIRED_COUNT.to_owned(), found.desired_count().to_string());
        facts.insert(facts::TASKS.to_owned(), format!("{}/{} running", found.running_count(), found.desired_count()));
        facts.insert(facts::SCALING.to_owned(), self.scaling_fact(&s.region, cluster, &s.name).await?);
        let group = found.load_balancers().iter().find_map(|l| l.target_group_arn()).unwrap_or("none");
        facts.insert(facts::TARGET_GROUP.to_owned(), group.to_owned());
        let id = format!("{}/{}", s.region, found.service_arn().unwrap_or_default());
        Ok(Some(ObservedResource { address, id, liveness: Liveness::Running, fingerprint, facts }))
    }

    /// The [`facts::SCALING`] text of a service's scalable target and CPU policy.
    async fn scaling_fact(&self, region: &str, cluster: &str, service: &str) -> Result<String, AwsError> {
        let scaling = self.clients_of(region).scaling;
        let resource = scaling_resource(cluster, service);
        let targets = scaling
            .describe_scalable_targets()
            .service_namespace(ServiceNamespace::Ecs)
            .resource_ids(&resource)
            .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("Application Auto Scaling DescribeScalableTargets", region, e))?;
        let Some(target) = targets.scalable_targets().first() else { return Ok("none".into()) };
        let policies = scaling
            .describe_scaling_policies()
            .service_namespace(ServiceNamespace::Ecs)
            .resource_id(&resource)
            .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("Application Auto Scaling DescribeScalingPolicies", region, e))?;
        let cpu = policies.scaling_policies().iter().find_map(|p| {
            let c = p.target_tracking_scaling_policy_configuration()?;
            let metric = c.predefined_metric_specification()?.predefined_metric_type();
            (*metric == MetricType::EcsServiceAverageCpuUtilization).then(|| c.target_value().round() as u32)
        });
        let (min, max) = (target.min_capacity().max(0) as u32, target.max_capacity().max(0) as u32);
        Ok(EcsScaling::fact(min, max, cpu))
    }

    pub(crate) async fn ecs_create(
        &self,
        scope: &Scope,
        address: &Address,
        attrs: &ResourceAttrs,
        fingerprint: &str,
    ) -> Result<Applied, AwsError> {
        let tags = ownership(scope, address, fingerprint);
        match attrs {
            ResourceAttrs::EcsCluster(c) => {
                let out = self
                    .clients_of(&c.region)
                    .ecs
                    .create_cluster()
                    .cluster_name(&c.name)
                    .set_tags(Some(
                        tags.iter().map(|(k, v)| aws_sdk_ecs::types::Tag::builder().key(k).value(v).build()).collect(),
                    ))
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk("ECS CreateCluster", &c.region, e))?;
                let arn = out.cluster().and_then(|c| c.cluster_arn()).unwrap_or_default();
                Ok(Applied::from(format!("{}/{arn}", c.region)))
            }
            ResourceAttrs::IamRole(role) => {
                let trust = serde_json::json!({
                    "Version": "2012-10-17",
                    "Statement": [{
                        "Effect": "Allow",
                        "Principal": { "Service": role.trust_service },
                        "Action": "sts:AssumeRole",
                    }],
                });
                let iam_tags = iam_tags(&tags)?;
                self.clients_of(&role.region)
                    .iam
                    .create_role()
                    .role_name(&role.name)
                    .path(role_path(scope))
                    .description(format!("SpawnIt {} {address}", scope.owner))
                    .assume_role_policy_document(trust.to_string())
                    .set_tags(Some(iam_tags))
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk("IAM CreateRole", &role.region, e))?;
                self.role_policies_set(role).await?;
                Ok(Applied::from(format!("{}/{}", role.region, role.name)))
            }
            ResourceAttrs::InstanceProfile(p) => {
                let iam_tags = iam_tags(&tags)?;
                let iam = self.clients_of(&p.region).iam;
                iam.create_instance_profile()
                    .instance_profile_name(&p.name)
                    .path(role_path(scope))
                    .set_tags(Some(iam_tags))
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk("IAM CreateInstanceProfile", &p.region, e))?;
                iam.add_role_to_instance_profile()
                    .instance_profile_name(&p.name)
                    .role_name(&p.role)
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk("IAM AddRoleToInstanceProfile", &p.region, e))?;
                Ok(Applied::from(format!("{}/{}", p.region, p.name)))
            }
            ResourceAttrs::LogGroup(g) => {
                let logs = self.clients_of(&g.region).logs;
                logs.create_log_group()
                    .log_group_name(&g.name)
                    .set_tags(Some(tags.into_iter().collect()))
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk("CloudWatch Logs CreateLogGroup", &g.region, e))?;
                self.retention_set(g).await?;
                Ok(Applied::from(format!("{}/{}", g.region, g.name)))
            }
            ResourceAttrs::SsmParameter(p) => {
                let mut ssm_tags = Vec::new();
                for (k, v) in &tags {
                    ssm_tags.push(built(aws_sdk_ssm::types::Tag::builder().key(k).value(v).build())?);
                }
                let value = self.cache_written(scope, &p.region, &p.value).await?;
                self.clients_of(&p.region)
                    .ssm
                    .put_parameter()
                    .name(&p.name)
                    .value(value)
                    .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
                    .description(format!("SpawnIt {} {address}", scope.owner))
                    .set_tags(Some(ssm_tags))
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk("SSM PutParameter", &p.region, e))?;
                Ok(Applied::from(format!("{}/{}", p.region, p.name)))
            }
            ResourceAttrs::TaskDefinition(t) => self.task_definition_register(scope, t, &tags).await,
            ResourceAttrs::EcsService(s) => self.service_create(scope, s, &tags).await,
            _ => Err(AwsError::Missing(format!("{} is not an ECS resource", address.kind.as_str()))),
        }
    }

    /// Makes a role's managed and inline policies exactly the attributes'.
    async fn role_policies_set(&self, role: &IamRoleAttrs) -> Result<(), AwsError> {
        let iam = self.clients_of(&role.region).iam;
        let (managed, inline) = self.role_policies(&role.region, &role.name).await?;
        for arn in role.managed_policies.iter().filter(|a| !managed.contains(a)) {
            iam.attach_role_policy()
                .role_name(&role.name)
                .policy_arn(arn)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("IAM AttachRolePolicy", &role.region, e))?;
        }
        for arn in managed.iter().filter(|a| !role.managed_policies.contains(a)) {
            iam.detach_role_policy()
                .role_name(&role.name)
                .policy_arn(arn)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("IAM DetachRolePolicy", &role.region, e))?;
        }
        match (&role.inline_policy, inline) {
            (Some(doc), _) => {
                iam.put_role_policy()
                    .role_name(&role.name)
                    .policy_name(INLINE_POLICY_NAME)
                    .policy_document(doc)
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk("IAM PutRolePolicy", &role.region, e))?;
            }
            (None, Some(_)) => {
                iam.delete_role_policy()
                    .role_name(&role.name)
                    .policy_name(INLINE_POLICY_NAME)
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk("IAM DeleteRolePolicy", &role.region, e))?;
            }
            (None, None) => {}
        }
        Ok(())
    }

    async fn retention_set(&self, g: &LogGroupAttrs) -> Result<(), AwsError> {
        self.clients_of(&g.region)
            .logs
            .put_retention_policy()
            .log_group_name(&g.name)
            .retention_in_days(i32::try_from(g.retention_days).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("CloudWatch Logs PutRetentionPolicy", &g.region, e))?;
        Ok(())
    }

    /// The ARN of the scope's role at `address` (found by its path and tags).
    async fn role_find(&self, scope: &Scope, region: &str, address: &Address) -> Result<String, AwsError> {
        let iam = self.clients_of(region).iam;
        let mut pages = iam.list_roles().path_prefix(role_path(scope)).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsError::from_sdk("IAM ListRoles", region, e))?;
            for role in page.roles() {
                let tags = iam
                    .list_role_tags()
                    .role_name(role.role_name())
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk("IAM ListRoleTags", region, e))?;
                let tags = tags.tags().iter().map(|t| (t.key(), t.value()));
                if owned(scope, address.kind, tags).is_some_and(|(a, _)| &a == address) {
                    return Ok(role.arn().to_owned());
                }
            }
        }
        Err(AwsError::Missing(format!("{address} of {} is not found: create it first", scope.owner)))
    }

    /// The name of the scope's log group at `address`.
    async fn log_group_find(&self, scope: &Scope, region: &str, address: &Address) -> Result<String, AwsError> {
        let logs = self.clients_of(region).logs;
        let out = logs
            .describe_log_groups()
            .log_group_name_prefix(parameter_path(scope))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("CloudWatch Logs DescribeLogGroups", region, e))?;
        for g in out.log_groups() {
            let Some(arn) = g.log_group_arn() else { continue };
            let tags = logs
                .list_tags_for_resource()
                .resource_arn(arn)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("CloudWatch Logs ListTagsForResource", region, e))?;
            let tags: Vec<(&str, &str)> =
                tags.tags().map(|t| t.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()).unwrap_or_default();
            if owned(scope, address.kind, tags).is_some_and(|(a, _)| &a == address) {
                return Ok(g.log_group_name().unwrap_or_default().to_owned());
            }
        }
        Err(AwsError::Missing(format!("{address} of {} is not found: create it first", scope.owner)))
    }

    /// The ARN of every parameter of the scope, by address.
    async fn parameters_find(&self, scope: &Scope, region: &str) -> Result<HashMap<Address, String>, AwsError> {
        let ssm = self.clients_of(region).ssm;
        let mut out = HashMap::new();
        for o in self.parameters_observe(scope, region).await? {
            let (_, name) = id_split(&o.id)?;
            let found = ssm
                .get_parameter()
                .name(name)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("SSM GetParameter", region, e))?;
            if let Some(arn) = found.parameter().and_then(|p| p.arn()) {
                out.insert(o.address, arn.to_owned());
            }
        }
        Ok(out)
    }

    /// `value` with [`CACHE_HOST`] replaced by the endpoint of the scope's cache.
    async fn cache_written(&self, scope: &Scope, region: &str, value: &str) -> Result<String, AwsError> {
        if !value.contains(CACHE_HOST) {
            return Ok(value.to_owned());
        }
        let cache = Address::new(ResourceKind::Cache, "main");
        let host = self.cache_host(scope, region, &cache).await?.ok_or_else(|| {
            AwsError::Missing(format!("the {cache} of this service does not exist or has no endpoint yet"))
        })?;
        Ok(value.replace(CACHE_HOST, &host))
    }

    async fn task_definition_register(
        &self,
        scope: &Scope,
        t: &TaskDefinitionAttrs,
        tags: &[(String, String)],
    ) -> Result<Applied, AwsError> {
        let region = t.region.as_str();
        let role = self.role_find(scope, region, &t.execution_role).await?;
        let log_group = self.log_group_find(scope, region, &t.log_group).await?;
        let parameters = if t.containers.iter().any(|c| !c.secrets.is_empty()) {
            self.parameters_find(scope, region).await?
        } else {
            HashMap::new()
        };
        let mut definitions = Vec::new();
        for c in &t.containers {
            let mut env = Vec::new();
            for (k, v) in &c.env {
                env.push(KeyValuePair::builder().name(k).value(self.cache_written(scope, region, v).await?).build());
            }
            let mut secrets = Vec::new();
            for (var, address) in &c.secrets {
                let arn = parameters.get(address).ok_or_else(|| {
                    AwsError::Missing(format!("{address} of {} is not found: create it first", scope.owner))
                })?;
                secrets.push(built(Secret::builder().name(var).value_from(arn).build())?);
            }
            let logs = built(
                LogConfiguration::builder()
                    .log_driver(LogDriver::Awslogs)
                    .options("awslogs-group", &log_group)
                    .options("awslogs-region", region)
                    .options("awslogs-stream-prefix", "spawnit")
                    .build(),
            )?;
            let mut d = ContainerDefinition::builder()
                .name(&c.name)
                .image(&c.image)
                .essential(true)
                .set_entry_point(c.entrypoint.clone())
                .set_command((!c.command.is_empty()).then(|| c.command.clone()))
                .set_environment(Some(env))
                .set_secrets(Some(secrets))
                .set_port_mappings(Some(
                    c.ports
                        .iter()
                        .map(|p| {
                            PortMapping::builder()
                                .container_port(i32::from(p.container))
                                .protocol(protocol(p.protocol))
                                .build()
                        })
                        .collect(),
                ))
                .set_mount_points(Some(
                    c.mounts
                        .iter()
                        .map(|m| {
                            MountPoint::builder()
                                .source_volume(&m.volume)
                                .container_path(&m.path)
                                .read_only(m.read_only)
                                .build()
                        })
                        .collect(),
                ))
                .set_user(c.user.clone())
                .log_configuration(logs);
            if let Some(h) = &c.health {
                let mut command = vec!["CMD".to_owned()];
                command.extend(h.command.iter().cloned());
                d = d.health_check(built(
                    HealthCheck::builder()
                        .set_command(Some(command))
                        .interval(i32::try_from(h.interval_s.clamp(5, 300)).unwrap_or(30))
                        .timeout(i32::try_from(h.timeout_s.clamp(2, 60)).unwrap_or(5))
                        .retries(i32::try_from(h.retries.clamp(1, 10)).unwrap_or(3))
                        .start_period(i32::try_from(h.start_period_s.min(300)).unwrap_or(0))
                        .build(),
                )?);
            }
            for dep in &c.depends_on {
                let healthy = t.containers.iter().any(|o| &o.name == dep && o.health.is_some());
                let condition = if healthy { ContainerCondition::Healthy } else { ContainerCondition::Start };
                d = d.depends_on(built(
                    ContainerDependency::builder().container_name(dep).condition(condition).build(),
                )?);
            }
            definitions.push(d.build());
        }
        let out = self
            .clients_of(region)
            .ecs
            .register_task_definition()
            .family(&t.family)
            .cpu(t.cpu.to_string())
            .memory(t.memory_mb.to_string())
            .network_mode(NetworkMode::Awsvpc)
            .requires_compatibilities(Compatibility::Fargate)
            .execution_role_arn(role)
            .set_container_definitions(Some(definitions))
            .set_volumes(Some(t.volumes.iter().map(|v| Volume::builder().name(v).build()).collect()))
            .set_tags(Some(
                tags.iter().map(|(k, v)| aws_sdk_ecs::types::Tag::builder().key(k).value(v).build()).collect(),
            ))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ECS RegisterTaskDefinition", region, e))?;
        let arn = out.task_definition().and_then(|d| d.task_definition_arn()).unwrap_or_default();
        Ok(Applied::from(format!("{region}/{arn}")))
    }

    /// The name of the scope's cluster at `address`.
    async fn cluster_find(&self, scope: &Scope, region: &str, address: &Address) -> Result<String, AwsError> {
        let ecs = self.clients_of(region).ecs;
        let mut arns = Vec::new();
        let mut pages = ecs.list_clusters().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsError::from_sdk("ECS ListClusters", region, e))?;
            arns.extend(page.cluster_arns().iter().cloned());
        }
        for chunk in arns.chunks(100) {
            let out = ecs
                .describe_clusters()
                .set_clusters(Some(chunk.to_vec()))
                .include(ClusterField::Tags)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("ECS DescribeClusters", region, e))?;
            for c in out.clusters().iter().filter(|c| c.status() == Some("ACTIVE")) {
                let tags = c.tags().iter().filter_map(|t| Some((t.key()?, t.value()?)));
                if owned(scope, address.kind, tags).is_some_and(|(a, _)| &a == address) {
                    return Ok(c.cluster_name().unwrap_or_default().to_owned());
                }
            }
        }
        Err(AwsError::Missing(format!("{address} of {} is not found: create it first", scope.owner)))
    }

    /// The ARN of the newest active revision of the scope's task definition at `address`.
    async fn task_definition_find(&self, scope: &Scope, region: &str, address: &Address) -> Result<String, AwsError> {
        let ecs = self.clients_of(region).ecs;
        let prefix = format!("spawnit_{}", scope_path(scope).replace('/', "_"));
        let out = ecs
            .list_task_definitions()
            .family_prefix(&prefix)
            .status(TaskDefinitionStatus::Active)
            .sort(aws_sdk_ecs::types::SortOrder::Desc)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ECS ListTaskDefinitions", region, e))?;
        for arn in out.task_definition_arns() {
            let found = ecs
                .describe_task_definition()
                .task_definition(arn)
                .include(TaskDefinitionField::Tags)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("ECS DescribeTaskDefinition", region, e))?;
            let tags = found.tags().iter().filter_map(|t| Some((t.key()?, t.value()?)));
            if owned(scope, address.kind, tags).is_some_and(|(a, _)| &a == address) {
                return Ok(arn.clone());
            }
        }
        Err(AwsError::Missing(format!("{address} of {} is not found: create it first", scope.owner)))
    }

    /// The `awsvpc` configuration of a service: its subnets (the default VPC's default ones
    /// when none is given) and its security group.
    async fn service_network(&self, scope: &Scope, s: &EcsServiceAttrs) -> Result<NetworkConfiguration, AwsError> {
        let region = s.region.as_str();
        let group = self.group_find(scope, region, &s.security_group).await?.ok_or_else(|| {
            AwsError::Missing(format!("{} of {} is not found: create it first", s.security_group, scope.owner))
        })?;
        let subnets = if s.subnet_ids.is_empty() {
            let vpc = self.default_vpc(region).await?.ok_or_else(|| {
                AwsError::Missing(format!("region {region} has no default VPC: set the subnet of the service"))
            })?;
            let out = self
                .client(region)
                .describe_subnets()
                .filters(Filter::builder().name("vpc-id").values(vpc).build())
                .filters(Filter::builder().name("default-for-az").values("true").build())
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("DescribeSubnets", region, e))?;
            let mut subnets: Vec<String> =
                out.subnets().iter().filter_map(|s| s.subnet_id().map(str::to_owned)).collect();
            subnets.sort();
            if subnets.is_empty() {
                return Err(AwsError::Missing(format!("the default VPC of {region} has no default subnet")));
            }
            subnets
        } else {
            s.subnet_ids.clone()
        };
        let vpc = built(
            AwsVpcConfiguration::builder()
                .set_subnets(Some(subnets))
                .security_groups(group)
                .assign_public_ip(if s.assign_public_ip { AssignPublicIp::Enabled } else { AssignPublicIp::Disabled })
                .build(),
        )?;
        Ok(NetworkConfiguration::builder().awsvpc_configuration(vpc).build())
    }

    async fn service_create(
        &self,
        scope: &Scope,
        s: &EcsServiceAttrs,
        tags: &[(String, String)],
    ) -> Result<Applied, AwsError> {
        let region = s.region.as_str();
        let cluster = self.cluster_find(scope, region, &s.cluster).await?;
        let definition = self.task_definition_find(scope, region, &s.task_definition).await?;
        let network = self.service_network(scope, s).await?;
        let balancer = match &s.load_balancer {
            Some(lb) => {
                let arn = self.elb_find(scope, region, &lb.target_group).await?.ok_or_else(|| {
                    AwsError::Missing(format!("{} of {} is not found: create it first", lb.target_group, scope.owner))
                })?;
                Some(
                    aws_sdk_ecs::types::LoadBalancer::builder()
                        .target_group_arn(arn)
                        .container_name(&lb.container)
                        .container_port(i32::from(lb.port))
                        .build(),
                )
            }
            None => None,
        };
        let out = self
            .clients_of(region)
            .ecs
            .create_service()
            .set_load_balancers(balancer.map(|b| vec![b]))
            .cluster(&cluster)
            .service_name(&s.name)
            .task_definition(definition)
            .desired_count(i32::try_from(s.desired_count).unwrap_or(1))
            .launch_type(LaunchType::Fargate)
            .network_configuration(network)
            .set_tags(Some(
                tags.iter().map(|(k, v)| aws_sdk_ecs::types::Tag::builder().key(k).value(v).build()).collect(),
            ))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ECS CreateService", region, e))?;
        let arn = out.service().and_then(|s| s.service_arn()).unwrap_or_default().to_owned();
        self.scaling_set(region, &cluster, s).await?;
        Ok(Applied::from(format!("{region}/{arn}")))
    }

    /// Registers the service's scalable target and CPU policy, or removes them.
    async fn scaling_set(&self, region: &str, cluster: &str, s: &EcsServiceAttrs) -> Result<(), AwsError> {
        let scaling = self.clients_of(region).scaling;
        let resource = scaling_resource(cluster, &s.name);
        let Some(sc) = &s.scaling else {
            if self.scaling_fact(region, cluster, &s.name).await? == "none" {
                return Ok(());
            }
            let gone = scaling
                .deregister_scalable_target()
                .service_namespace(ServiceNamespace::Ecs)
                .resource_id(&resource)
                .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
                .send()
                .await;
            if let Err(e) = gone {
                let e = AwsError::from_sdk("Application Auto Scaling DeregisterScalableTarget", region, e);
                if e.code() != Some("ObjectNotFoundException") {
                    return Err(e);
                }
            }
            return Ok(());
        };
        scaling
            .register_scalable_target()
            .service_namespace(ServiceNamespace::Ecs)
            .resource_id(&resource)
            .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
            .min_capacity(i32::try_from(sc.min).unwrap_or(1))
            .max_capacity(i32::try_from(sc.max).unwrap_or(1))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("Application Auto Scaling RegisterScalableTarget", region, e))?;
        let metric = built(
            PredefinedMetricSpecification::builder()
                .predefined_metric_type(MetricType::EcsServiceAverageCpuUtilization)
                .build(),
        )?;
        let config = built(
            TargetTrackingScalingPolicyConfiguration::builder()
                .target_value(f64::from(sc.target_cpu_percent))
                .predefined_metric_specification(metric)
                .scale_in_cooldown(300)
                .scale_out_cooldown(60)
                .build(),
        )?;
        scaling
            .put_scaling_policy()
            .policy_name(format!("spawnit-cpu-{}", s.name))
            .service_namespace(ServiceNamespace::Ecs)
            .resource_id(&resource)
            .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
            .policy_type(PolicyType::TargetTrackingScaling)
            .target_tracking_scaling_policy_configuration(config)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("Application Auto Scaling PutScalingPolicy", region, e))?;
        Ok(())
    }

    pub(crate) async fn ecs_update(
        &self,
        scope: &Scope,
        address: &Address,
        attrs: &ResourceAttrs,
        id: &str,
        fingerprint: &str,
    ) -> Result<Applied, AwsError> {
        let (region, aws_id) = id_split(id)?;
        let clients = self.clients_of(region);
        let tags = ownership(scope, address, fingerprint);
        match attrs {
            ResourceAttrs::IamRole(role) => {
                self.role_policies_set(role).await?;
                let iam_tags = iam_tags(&tags)?;
                clients
                    .iam
                    .tag_role()
                    .role_name(&role.name)
                    .set_tags(Some(iam_tags))
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk("IAM TagRole", region, e))?;
            }
            ResourceAttrs::InstanceProfile(p) => {
                // Holds exactly its role again (one removed or swapped outside SpawnIt).
                let found = self
                    .profile_get(region, &p.name)
                    .await?
                    .ok_or_else(|| AwsError::Missing(format!("instance profile {} is gone", p.name)))?;
                let mut has = false;
                for role in found.roles() {
                    if role.role_name() == p.role {
                        has = true;
                        continue;
                    }
                    clients
                        .iam
                        .remove_role_from_instance_profile()
                        .instance_profile_name(&p.name)
                        .role_name(role.role_name())
                        .send()
                        .await
                        .map_err(|e| AwsError::from_sdk("IAM RemoveRoleFromInstanceProfile", region, e))?;
                }
                if !has {
                    clients
                        .iam
                        .add_role_to_instance_profile()
                        .instance_profile_name(&p.name)
                        .role_name(&p.role)
                        .send()
                        .await
                        .map_err(|e| AwsError::from_sdk("IAM AddRoleToInstanceProfile", region, e))?;
                }
                let iam_tags = iam_tags(&tags)?;
                clients
                    .iam
                    .tag_instance_profile()
                    .instance_profile_name(&p.name)
                    .set_tags(Some(iam_tags))
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk("IAM TagInstanceProfile", region, e))?;
            }
            ResourceAttrs::LogGroup(g) => {
                self.retention_set(g).await?;
                let out = clients
                    .logs
                    .describe_log_groups()
                    .log_group_name_prefix(&g.name)
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk("CloudWatch Logs DescribeLogGroups", region, e))?;
                let arn = out
                    .log_groups()
                    .iter()
                    .find(|l| l.log_group_name() == Some(g.name.as_str()))
                    .and_then(|l| l.log_group_arn())
                    .ok_or_else(|| AwsError::Missing(format!("log group {} is gone", g.name)))?;
                clients
                    .logs
                    .tag_resource()
                    .resource_arn(arn)
                    .set_tags(Some(tags.into_iter().collect()))
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk("CloudWatch Logs TagResource", region, e))?;
            }
            ResourceAttrs::EcsService(s) => {
                let (cluster, name) = service_arn_parts(aws_id)?;
                let definition = self.task_definition_find(scope, region, &s.task_definition).await?;
                let network = self.service_network(scope, s).await?;
                let found = clients
                    .ecs
                    .describe_services()
                    .cluster(cluster)
                    .services(name)
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk("ECS DescribeServices", region, e))?;
                let count = found.services().first().map(|f| f.desired_count()).unwrap_or_default();
                let count = u32::try_from(count).unwrap_or(0);
                // The autoscaler owns the count within its bounds.
                let wanted = match &s.scaling {
                    Some(sc) => count.clamp(sc.min, sc.max),
                    None => s.desired_count,
                };
                self.scaling_set(region, cluster, s).await?;
                clients
                    .ecs
                    .update_service()
                    .cluster(cluster)
                    .service(name)
                    .task_definition(definition)
                    .desired_count(i32::try_from(wanted).unwrap_or(1))
                    .network_configuration(network)
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk("ECS UpdateService", region, e))?;
                clients
                    .ecs
                    .tag_resource()
                    .resource_arn(aws_id)
                    .set_tags(Some(
                        tags.iter().map(|(k, v)| aws_sdk_ecs::types::Tag::builder().key(k).value(v).build()).collect(),
                    ))
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk("ECS TagResource", region, e))?;
            }
            _ => {
                return Err(AwsError::Missing(format!("{} cannot change in place", address.kind.as_str())));
            }
        }
        Ok(Applied::from(id.to_owned()))
    }

    pub(crate) async fn ecs_delete(
        &self,
        kind: ResourceKind,
        region: &str,
        aws_id: &str,
        cancel: &CancellationToken,
    ) -> Result<(), AwsError> {
        let clients = self.clients_of(region);
        let gone = |e: AwsError, codes: &[&str]| -> Result<(), AwsError> {
            if e.code().is_some_and(|c| codes.contains(&c)) { Ok(()) } else { Err(e) }
        };
        match kind {
            ResourceKind::EcsService => {
                let (cluster, name) = service_arn_parts(aws_id)?;
                let resource = scaling_resource(cluster, name);
                let scaled = self.scaling_fact(region, cluster, name).await? != "none";
                if scaled
                    && let Err(e) = clients
                        .scaling
                        .deregister_scalable_target()
                        .service_namespace(ServiceNamespace::Ecs)
                        .resource_id(&resource)
                        .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
                        .send()
                        .await
                {
                    gone(
                        AwsError::from_sdk("Application Auto Scaling DeregisterScalableTarget", region, e),
                        &["ObjectNotFoundException"],
                    )?;
                }
                let deleted = clients.ecs.delete_service().cluster(cluster).service(name).force(true).send().await;
                if let Err(e) = deleted {
                    return gone(
                        AwsError::from_sdk("ECS DeleteService", region, e),
                        &["ServiceNotFoundException", "ClusterNotFoundException", "ServiceNotActiveException"],
                    );
                }
                // Wait until it is inactive: its cluster cannot go before.
                let started = Instant::now();
                loop {
                    let out = clients
                        .ecs
                        .describe_services()
                        .cluster(cluster)
                        .services(name)
                        .send()
                        .await
                        .map_err(|e| AwsError::from_sdk("ECS DescribeServices", region, e))?;
                    let status = out.services().first().and_then(|s| s.status()).unwrap_or("INACTIVE").to_owned();
                    if status == "INACTIVE" {
                        return Ok(());
                    }
                    if started.elapsed() >= self.options.wait_timeout {
                        return Err(AwsError::WaitTimeout {
                            id: aws_id.to_owned(),
                            state: status,
                            wanted: "inactive",
                            waited: self.options.wait_timeout,
                        });
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(self.options.poll_interval) => {}
                        _ = cancel.cancelled() => return Ok(()),
                    }
                }
            }
            ResourceKind::TaskDefinition => {
                if let Err(e) = clients.ecs.deregister_task_definition().task_definition(aws_id).send().await {
                    let e = AwsError::from_sdk("ECS DeregisterTaskDefinition", region, e);
                    // An inactive revision answers ClientException.
                    return gone(e, &["ClientException"]);
                }
                Ok(())
            }
            ResourceKind::EcsCluster => {
                let started = Instant::now();
                loop {
                    match clients.ecs.delete_cluster().cluster(aws_id).send().await {
                        Ok(_) => return Ok(()),
                        Err(e) => {
                            let e = AwsError::from_sdk("ECS DeleteCluster", region, e);
                            match e.code() {
                                Some("ClusterNotFoundException") => return Ok(()),
                                Some(
                                    "ClusterContainsServicesException"
                                    | "ClusterContainsTasksException"
                                    | "UpdateInProgressException",
                                ) if started.elapsed() < self.options.wait_timeout => {}
                                _ => return Err(e),
                            }
                        }
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(self.options.poll_interval) => {}
                        _ = cancel.cancelled() => return Ok(()),
                    }
                }
            }
            ResourceKind::IamRole => {
                let (managed, inline) = match self.role_policies(region, aws_id).await {
                    Ok(found) => found,
                    Err(e) => return gone(e, &["NoSuchEntity"]),
                };
                for arn in managed {
                    if let Err(e) = clients.iam.detach_role_policy().role_name(aws_id).policy_arn(arn).send().await {
                        gone(AwsError::from_sdk("IAM DetachRolePolicy", region, e), &["NoSuchEntity"])?;
                    }
                }
                if inline.is_some()
                    && let Err(e) =
                        clients.iam.delete_role_policy().role_name(aws_id).policy_name(INLINE_POLICY_NAME).send().await
                {
                    gone(AwsError::from_sdk("IAM DeleteRolePolicy", region, e), &["NoSuchEntity"])?;
                }
                if let Err(e) = clients.iam.delete_role().role_name(aws_id).send().await {
                    return gone(AwsError::from_sdk("IAM DeleteRole", region, e), &["NoSuchEntity"]);
                }
                Ok(())
            }
            ResourceKind::InstanceProfile => {
                let Some(found) = self.profile_get(region, aws_id).await? else { return Ok(()) };
                for role in found.roles() {
                    let removed = clients
                        .iam
                        .remove_role_from_instance_profile()
                        .instance_profile_name(aws_id)
                        .role_name(role.role_name())
                        .send()
                        .await;
                    if let Err(e) = removed {
                        gone(AwsError::from_sdk("IAM RemoveRoleFromInstanceProfile", region, e), &["NoSuchEntity"])?;
                    }
                }
                if let Err(e) = clients.iam.delete_instance_profile().instance_profile_name(aws_id).send().await {
                    return gone(AwsError::from_sdk("IAM DeleteInstanceProfile", region, e), &["NoSuchEntity"]);
                }
                Ok(())
            }
            ResourceKind::LogGroup => {
                if let Err(e) = clients.logs.delete_log_group().log_group_name(aws_id).send().await {
                    return gone(
                        AwsError::from_sdk("CloudWatch Logs DeleteLogGroup", region, e),
                        &["ResourceNotFoundException"],
                    );
                }
                Ok(())
            }
            ResourceKind::SsmParameter => {
                if let Err(e) = clients.ssm.delete_parameter().name(aws_id).send().await {
                    return gone(AwsError::from_sdk("SSM DeleteParameter", region, e), &["ParameterNotFound"]);
                }
                Ok(())
            }
            _ => Err(AwsError::Missing(format!("{} is not an ECS resource", kind.as_str()))),
        }
    }
}

/// Whether a resource kind belongs to this module.
pub(crate) fn is_ecs_kind(kind: ResourceKind) -> bool {
    matches!(
        kind,
        ResourceKind::EcsCluster
            | ResourceKind::IamRole
            | ResourceKind::InstanceProfile
            | ResourceKind::LogGroup
            | ResourceKind::SsmParameter
            | ResourceKind::TaskDefinition
            | ResourceKind::EcsService
    )
}

/// Decodes `%XX` escapes (IAM's policy documents are URL-encoded; an emulator may not encode).
pub fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_arns_name_their_cluster() {
        let arn = "arn:aws:ecs:us-east-1:123456789012:service/spawnit_acme_shop/shop";
        assert_eq!(service_arn_parts(arn).unwrap(), ("spawnit_acme_shop", "shop"));
        assert_eq!(cluster_name("arn:aws:ecs:us-east-1:1:cluster/spawnit_acme_shop"), "spawnit_acme_shop");
    }

    #[test]
    fn policy_documents_decode() {
        assert_eq!(url_decode("%7B%22a%22%3A1%7D"), r#"{"a":1}"#);
        assert_eq!(url_decode(r#"{"a":1}"#), r#"{"a":1}"#);
    }
}
