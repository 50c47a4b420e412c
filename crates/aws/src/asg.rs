//! Launch templates (EC2) and auto-scaling groups (EC2 Auto Scaling).
//!
//! A launch template's `user_data` is the single instance's ([`crate::user_data`]), with the
//! cache's endpoint written where the containers' environment names [`CACHE_HOST`]: it is
//! looked up by the cache's tags when a version is written, since it is known only once the
//! cache exists. New content is a new version made the default; each version's description
//! (`spawnit <fingerprint>`) names the content it was written from, which observation reads.
//!
//! The group uses the template's default version, registers its instances in the service's
//! target group (found by tags), checks their health through the load balancer, and keeps the
//! average CPU near the target with a target-tracking policy. A group whose launch template
//! content changed (its `spawnit.launch_template` tag differs from the desired digest) starts an
//! instance refresh, which replaces the instances with the new version while keeping 90% of
//! them in service. A template naming an instance profile gives it to the instances (found by
//! name for its ARN), with a metadata hop limit of 2 so the containers get the role's
//! credentials. Provider ids are `<region>/<launch template id>` and `<region>/<group name>`.

use std::collections::BTreeMap;
use std::time::Instant;

use aws_sdk_autoscaling::types::{
    LaunchTemplateSpecification, MetricType, PredefinedMetricSpecification, RefreshPreferences, Tag as AsgTag,
    TargetTrackingConfiguration,
};
use aws_sdk_ec2::types::{
    LaunchTemplateHttpTokensState, LaunchTemplateIamInstanceProfileSpecificationRequest,
    LaunchTemplateInstanceMetadataOptionsRequest, LaunchTemplateTagSpecificationRequest, RequestLaunchTemplateData,
    ResourceType, Tag,
};
use base64::Engine as _;
use spawnit_engine::{Applied, Scope};
use spawnit_model::Owner;
use spawnit_model::resource::{
    Address, AutoscalingGroupAttrs, CACHE_HOST, LaunchTemplateAttrs, Liveness, ObservedResource, ResourceKind, facts,
    labels,
};
use tokio_util::sync::CancellationToken;

use crate::{AwsError, AwsProvider, owner_tags, scope_owns, tag_spec, tagged_address, user_data};

/// The tag on a group naming the digest of the launch template content its instances run.
pub const LAUNCH_TEMPLATE_TAG: &str = "spawnit.launch_template";
/// The name of the group's target-tracking policy.
pub const CPU_POLICY: &str = "spawnit-cpu";
/// Seconds a new instance has before the load balancer's health check counts.
pub const HEALTH_GRACE_SECONDS: i32 = 300;

impl AwsProvider {
    /// The scope's launch templates: (address, fingerprint, id).
    async fn launch_templates_owned(
        &self,
        scope: &Scope,
        region: &str,
    ) -> Result<Vec<(Address, Option<String>, String)>, AwsError> {
        let mut out = Vec::new();
        let mut pages = self.client(region).describe_launch_templates().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsError::from_sdk("DescribeLaunchTemplates", region, e))?;
            for t in page.launch_templates() {
                let tags = t.tags().iter().filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned()))).collect();
                if !scope_owns(scope, &tags) {
                    continue;
                }
                let (Some((address, fingerprint)), Some(id)) =
                    (tagged_address(ResourceKind::LaunchTemplate, &tags), t.launch_template_id())
                else {
                    continue;
                };
                // The default version's description names the content it was written from (a
                // tag would name the template's first content; moto does not retag templates).
                let versions = self
                    .client(region)
                    .describe_launch_template_versions()
                    .launch_template_id(id)
                    .versions("$Default")
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk("DescribeLaunchTemplateVersions", region, e))?;
                let written = versions
                    .launch_template_versions()
                    .first()
                    .and_then(|v| v.version_description())
                    .and_then(|d| d.strip_prefix("spawnit "))
                    .map(str::to_owned);
                out.push((address, written.or(fingerprint), id.to_owned()));
            }
        }
        Ok(out)
    }

    /// The scope's auto-scaling groups that are not being deleted.
    async fn groups_owned(
        &self,
        scope: &Scope,
        region: &str,
    ) -> Result<Vec<(Address, Option<String>, aws_sdk_autoscaling::types::AutoScalingGroup)>, AwsError> {
        let mut out = Vec::new();
        let mut pages = self.autoscaling(region).describe_auto_scaling_groups().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsError::from_sdk("DescribeAutoScalingGroups", region, e))?;
            for g in page.auto_scaling_groups() {
                if g.status().is_some_and(|s| s.starts_with("Delete")) {
                    continue;
                }
                let tags = g.tags().iter().filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned()))).collect();
                if !scope_owns(scope, &tags) {
                    continue;
                }
                let Some((address, fingerprint)) = tagged_address(ResourceKind::AutoscalingGroup, &tags) else {
                    continue;
                };
                out.push((address, fingerprint, g.clone()));
            }
        }
        Ok(out)
    }

    /// Every launch template and auto-scaling group of the scope in `region`.
    pub(crate) async fn asg_observe(&self, scope: &Scope, region: &str) -> Result<Vec<ObservedResource>, AwsError> {
        let mut out = Vec::new();
        for (address, fingerprint, id) in self.launch_templates_owned(scope, region).await? {
            out.push(ObservedResource {
                address,
                id: format!("{region}/{id}"),
                liveness: Liveness::Present,
                fingerprint,
                facts: BTreeMap::new(),
            });
        }
        for (address, fingerprint, g) in self.groups_owned(scope, region).await? {
            let mut facts = BTreeMap::new();
            for (key, value) in
                [(facts::MIN, g.min_size()), (facts::MAX, g.max_size()), (facts::DESIRED, g.desired_capacity())]
            {
                if let Some(v) = value {
                    facts.insert(key.to_owned(), v.to_string());
                }
            }
            facts.insert(format!("{}instances", facts::OUTPUT_PREFIX), g.instances().len().to_string());
            let name = g.auto_scaling_group_name().unwrap_or_default();
            let policies = self
                .autoscaling(region)
                .describe_policies()
                .auto_scaling_group_name(name)
                .policy_names(CPU_POLICY)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("DescribePolicies", region, e))?;
            let target = policies
                .scaling_policies()
                .iter()
                .find_map(|p| p.target_tracking_configuration().and_then(|t| t.target_value()));
            facts.insert(
                facts::TARGET_CPU.to_owned(),
                target.map(|t| format!("{t}")).unwrap_or_else(|| "none".to_owned()),
            );
            out.push(ObservedResource {
                address,
                id: format!("{region}/{}", g.auto_scaling_group_name().unwrap_or_default()),
                liveness: Liveness::Running,
                fingerprint,
                facts,
            });
        }
        Ok(out)
    }

    /// A launch template version's data: the instance's AMI, type, group and `user_data`, the
    /// cache's endpoint written in.
    async fn template_data(
        &self,
        scope: &Scope,
        t: &LaunchTemplateAttrs,
    ) -> Result<RequestLaunchTemplateData, AwsError> {
        let i = &t.instance;
        let region = i.region.as_str();
        let group = self.group_find(scope, region, &i.security_group).await?.ok_or_else(|| {
            AwsError::Missing(format!("the security group {} of this service does not exist", i.security_group))
        })?;
        let ami = self.ami_resolve(i).await?.ok_or_else(|| AwsError::Missing(crate::ami_missing(i)))?;
        let mut instance = i.clone();
        if let Some(cache) = &t.cache {
            let host = self.cache_host(scope, region, cache).await?.ok_or_else(|| {
                AwsError::Missing(format!("the {cache} of this service does not exist or has no endpoint yet"))
            })?;
            for c in &mut instance.containers {
                for v in c.env.values_mut() {
                    *v = v.replace(CACHE_HOST, &host);
                }
            }
        }
        let profile = match &t.instance_profile {
            Some(name) => {
                let found = self.profile_get(region, name).await?.ok_or_else(|| {
                    AwsError::Missing(format!("the instance profile {name} of this service does not exist"))
                })?;
                Some(found.arn().to_owned())
            }
            None => None,
        };
        let script = user_data::render(&instance);
        let mut instance_tags = vec![Tag::builder().key("Name").value(&t.name).build()];
        instance_tags.push(Tag::builder().key(labels::CLIENT).value(scope.owner.client.as_str()).build());
        instance_tags.push(match &scope.owner.owner {
            Owner::Service(s) => Tag::builder().key(labels::SERVICE).value(s.as_str()).build(),
            Owner::Network(n) => Tag::builder().key(labels::NETWORK).value(n.as_str()).build(),
        });
        Ok(RequestLaunchTemplateData::builder()
            .image_id(ami)
            .instance_type(aws_sdk_ec2::types::InstanceType::from(i.instance_type.as_str()))
            .user_data(base64::engine::general_purpose::STANDARD.encode(script))
            .security_group_ids(group)
            .set_key_name(i.key_name.clone())
            .set_iam_instance_profile(
                profile
                    .as_ref()
                    .map(|arn| LaunchTemplateIamInstanceProfileSpecificationRequest::builder().arn(arn).build()),
            )
            .metadata_options(
                LaunchTemplateInstanceMetadataOptionsRequest::builder()
                    .http_tokens(LaunchTemplateHttpTokensState::Required)
                    // The containers reach the metadata service (the role's credentials) one
                    // hop further, through Docker's bridge.
                    .set_http_put_response_hop_limit(profile.is_some().then_some(2))
                    .build(),
            )
            .tag_specifications(
                LaunchTemplateTagSpecificationRequest::builder()
                    .resource_type(ResourceType::Instance)
                    .set_tags(Some(instance_tags))
                    .build(),
            )
            .build())
    }

    pub(crate) async fn launch_template_create(
        &self,
        scope: &Scope,
        address: &Address,
        t: &LaunchTemplateAttrs,
        fingerprint: &str,
    ) -> Result<Applied, AwsError> {
        let region = t.instance.region.as_str();
        let data = self.template_data(scope, t).await?;
        let out = self
            .client(region)
            .create_launch_template()
            .launch_template_name(&t.name)
            .version_description(format!("spawnit {fingerprint}"))
            .launch_template_data(data)
            .tag_specifications(tag_spec(ResourceType::LaunchTemplate, scope, address, fingerprint, &t.name))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("CreateLaunchTemplate", region, e))?;
        let id = out.launch_template().and_then(|t| t.launch_template_id()).unwrap_or_default();
        Ok(Applied::from(format!("{region}/{id}")))
    }

    /// A new version with the new content, made the default, then the new fingerprint.
    pub(crate) async fn launch_template_update(
        &self,
        scope: &Scope,
        t: &LaunchTemplateAttrs,
        id: &str,
        fingerprint: &str,
    ) -> Result<Applied, AwsError> {
        let region = t.instance.region.as_str();
        let data = self.template_data(scope, t).await?;
        let out = self
            .client(region)
            .create_launch_template_version()
            .launch_template_id(id)
            .version_description(format!("spawnit {fingerprint}"))
            .launch_template_data(data)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("CreateLaunchTemplateVersion", region, e))?;
        let version = out.launch_template_version().and_then(|v| v.version_number()).unwrap_or(1);
        self.client(region)
            .modify_launch_template()
            .launch_template_id(id)
            .default_version(version.to_string())
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ModifyLaunchTemplate", region, e))?;
        self.retag(region, id, fingerprint).await?;
        let mut applied = Applied::from(format!("{region}/{id}"));
        applied.outputs.insert("version".into(), version.to_string());
        Ok(applied)
    }

    pub(crate) async fn launch_template_delete(&self, region: &str, id: &str) -> Result<(), AwsError> {
        match self.client(region).delete_launch_template().launch_template_id(id).send().await {
            Ok(_) => Ok(()),
            Err(e) => match AwsError::from_sdk("DeleteLaunchTemplate", region, e) {
                e if e.code().is_some_and(|c| c.starts_with("InvalidLaunchTemplate")) => Ok(()),
                e => Err(e),
            },
        }
    }

    /// The launch template id and target group ARN a group uses, and the subnets it spans.
    async fn group_refs(&self, scope: &Scope, g: &AutoscalingGroupAttrs) -> Result<(String, String, String), AwsError> {
        let region = g.region.as_str();
        let missing = |a: &Address| AwsError::Missing(format!("the {a} of this service does not exist"));
        let template = self
            .launch_templates_owned(scope, region)
            .await?
            .into_iter()
            .find(|(a, ..)| *a == g.launch_template)
            .map(|(.., id)| id)
            .ok_or_else(|| missing(&g.launch_template))?;
        let target_group =
            self.elb_find(scope, region, &g.target_group).await?.ok_or_else(|| missing(&g.target_group))?;
        let subnets = match &g.subnet_id {
            Some(s) => s.clone(),
            None => self.vpc_subnets(region, g.vpc_id.as_deref()).await?.join(","),
        };
        Ok((template, target_group, subnets))
    }

    async fn cpu_policy_put(&self, g: &AutoscalingGroupAttrs) -> Result<(), AwsError> {
        let region = g.region.as_str();
        self.autoscaling(region)
            .put_scaling_policy()
            .auto_scaling_group_name(&g.name)
            .policy_name(CPU_POLICY)
            .policy_type("TargetTrackingScaling")
            .target_tracking_configuration(
                TargetTrackingConfiguration::builder()
                    .predefined_metric_specification(
                        PredefinedMetricSpecification::builder()
                            .predefined_metric_type(MetricType::AsgAverageCpuUtilization)
                            .build(),
                    )
                    .target_value(f64::from(g.target_cpu_percent))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("PutScalingPolicy", region, e))?;
        Ok(())
    }

    fn group_tags(
        &self,
        scope: &Scope,
        address: &Address,
        g: &AutoscalingGroupAttrs,
        fingerprint: &str,
    ) -> Vec<AsgTag> {
        let mut tags = owner_tags(scope, address, fingerprint, &g.name);
        tags.push((LAUNCH_TEMPLATE_TAG.to_owned(), g.launch_template_digest.clone()));
        tags.into_iter()
            .map(|(k, v)| {
                AsgTag::builder()
                    .resource_id(&g.name)
                    .resource_type("auto-scaling-group")
                    .key(k)
                    .value(v)
                    .propagate_at_launch(false)
                    .build()
            })
            .collect()
    }

    pub(crate) async fn asg_create(
        &self,
        scope: &Scope,
        address: &Address,
        g: &AutoscalingGroupAttrs,
        fingerprint: &str,
    ) -> Result<Applied, AwsError> {
        let region = g.region.as_str();
        let (template, target_group, subnets) = self.group_refs(scope, g).await?;
        self.autoscaling(region)
            .create_auto_scaling_group()
            .auto_scaling_group_name(&g.name)
            .launch_template(
                LaunchTemplateSpecification::builder().launch_template_id(template).version("$Default").build(),
            )
            .min_size(g.min as i32)
            .max_size(g.max as i32)
            .desired_capacity(g.desired as i32)
            .vpc_zone_identifier(subnets)
            .target_group_arns(target_group)
            .health_check_type("ELB")
            .health_check_grace_period(HEALTH_GRACE_SECONDS)
            .set_tags(Some(self.group_tags(scope, address, g, fingerprint)))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("CreateAutoScalingGroup", region, e))?;
        self.cpu_policy_put(g).await?;
        Ok(Applied::from(format!("{region}/{}", g.name)))
    }

    /// Bounds, desired count, subnets, target group and policy in place; an instance refresh
    /// when the launch template content changed; then the new tags.
    pub(crate) async fn asg_update(
        &self,
        scope: &Scope,
        address: &Address,
        g: &AutoscalingGroupAttrs,
        fingerprint: &str,
    ) -> Result<Applied, AwsError> {
        let region = g.region.as_str();
        let client = self.autoscaling(region);
        let (template, target_group, subnets) = self.group_refs(scope, g).await?;
        let found = client
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(&g.name)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("DescribeAutoScalingGroups", region, e))?;
        let current = found
            .auto_scaling_groups()
            .first()
            .ok_or_else(|| AwsError::Missing(format!("auto-scaling group {} is gone", g.name)))?;
        client
            .update_auto_scaling_group()
            .auto_scaling_group_name(&g.name)
            .launch_template(
                LaunchTemplateSpecification::builder().launch_template_id(template).version("$Default").build(),
            )
            .min_size(g.min as i32)
            .max_size(g.max as i32)
            .desired_capacity(g.desired as i32)
            .vpc_zone_identifier(subnets)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("UpdateAutoScalingGroup", region, e))?;
        let attached: Vec<String> = current.target_group_arns().to_vec();
        if !attached.contains(&target_group) {
            client
                .attach_load_balancer_target_groups()
                .auto_scaling_group_name(&g.name)
                .target_group_arns(&target_group)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("AttachLoadBalancerTargetGroups", region, e))?;
        }
        let stale: Vec<String> = attached.into_iter().filter(|a| *a != target_group).collect();
        if !stale.is_empty() {
            client
                .detach_load_balancer_target_groups()
                .auto_scaling_group_name(&g.name)
                .set_target_group_arns(Some(stale))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("DetachLoadBalancerTargetGroups", region, e))?;
        }
        self.cpu_policy_put(g).await?;
        let running = current.tags().iter().find(|t| t.key() == Some(LAUNCH_TEMPLATE_TAG)).and_then(|t| t.value());
        if running.is_some_and(|d| d != g.launch_template_digest) {
            // One already running (InstanceRefreshInProgress) fails this update: the tag still
            // names the old content, so the next apply starts the refresh again.
            client
                .start_instance_refresh()
                .auto_scaling_group_name(&g.name)
                .preferences(RefreshPreferences::builder().min_healthy_percentage(90).build())
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("StartInstanceRefresh", region, e))?;
        }
        // The tags last: a failed refresh leaves the old digest, so the next apply tries again.
        client
            .create_or_update_tags()
            .set_tags(Some(self.group_tags(scope, address, g, fingerprint)))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("CreateOrUpdateTags", region, e))?;
        Ok(Applied::from(format!("{region}/{}", g.name)))
    }

    /// Deletes the group with its instances and waits until it is gone.
    pub(crate) async fn asg_delete(
        &self,
        region: &str,
        name: &str,
        cancel: &CancellationToken,
    ) -> Result<(), AwsError> {
        let client = self.autoscaling(region);
        match client.delete_auto_scaling_group().auto_scaling_group_name(name).force_delete(true).send().await {
            Ok(_) => {}
            Err(e) => match AwsError::from_sdk("DeleteAutoScalingGroup", region, e) {
                e if e.code() == Some("ValidationError") && e.to_string().contains("not found") => return Ok(()),
                e if e.code() == Some("ScalingActivityInProgress") || e.code() == Some("ResourceInUse") => {
                    // Already being deleted.
                }
                e => return Err(e),
            },
        }
        let (timeout, poll) = self.waits();
        let started = Instant::now();
        loop {
            let out = client
                .describe_auto_scaling_groups()
                .auto_scaling_group_names(name)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("DescribeAutoScalingGroups", region, e))?;
            let Some(g) = out.auto_scaling_groups().first() else { return Ok(()) };
            if started.elapsed() >= timeout {
                let state = g.status().unwrap_or("present").to_owned();
                return Err(AwsError::StillThere {
                    what: format!("auto-scaling group {name}"),
                    state,
                    waited: timeout,
                });
            }
            tokio::select! {
                _ = tokio::time::sleep(poll) => {}
                _ = cancel.cancelled() => return Ok(()),
            }
        }
    }
}
