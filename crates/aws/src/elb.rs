//! Application load balancers, their target groups and listeners (Elastic Load Balancing v2).
//!
//! Each carries SpawnIt's ownership tags; ELB has no tag filter on its describe calls, so
//! observation lists the region's load balancers and target groups and reads their tags in
//! batches of 20 (`DescribeTags`), and the listeners of the service's load balancers. A
//! listener or a group finds the load balancer or target group it references by tags at create
//! time. Provider ids are `<region>/<arn>`.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, LoadBalancerSchemeEnum, LoadBalancerTypeEnum, Matcher, ProtocolEnum, Tag,
    TargetGroupAttribute, TargetTypeEnum,
};
use spawnit_engine::{Applied, Scope};
use spawnit_model::resource::{
    Address, AlbAttrs, ListenerAttrs, Liveness, ObservedResource, ResourceKind, TargetGroupAttrs, TargetType, facts,
};
use tokio_util::sync::CancellationToken;

use crate::{AwsError, AwsProvider, owner_tags, scope_owns, tagged_address};

/// How long a browser keeps to its target with `lb_cookie` stickiness: one day.
pub const STICKY_SECONDS: u32 = 86_400;

fn tags(scope: &Scope, address: &Address, fingerprint: &str, name: &str) -> Vec<Tag> {
    owner_tags(scope, address, fingerprint, name)
        .into_iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

impl AwsProvider {
    /// The tags of ELB resources, by ARN.
    async fn elb_tags(
        &self,
        region: &str,
        arns: &[String],
    ) -> Result<HashMap<String, HashMap<String, String>>, AwsError> {
        let mut out = HashMap::new();
        for chunk in arns.chunks(20) {
            let found = self
                .elb(region)
                .describe_tags()
                .set_resource_arns(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("DescribeTags", region, e))?;
            for d in found.tag_descriptions() {
                let Some(arn) = d.resource_arn() else { continue };
                let tags = d.tags().iter().filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned()))).collect();
                out.insert(arn.to_owned(), tags);
            }
        }
        Ok(out)
    }

    /// The scope's load balancers: (address, fingerprint, arn, DNS name).
    async fn albs_owned(
        &self,
        scope: &Scope,
        region: &str,
    ) -> Result<Vec<(Address, Option<String>, String, String)>, AwsError> {
        let mut all = Vec::new();
        let mut pages = self.elb(region).describe_load_balancers().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsError::from_sdk("DescribeLoadBalancers", region, e))?;
            for lb in page.load_balancers() {
                if let Some(arn) = lb.load_balancer_arn() {
                    all.push((arn.to_owned(), lb.dns_name().unwrap_or_default().to_owned()));
                }
            }
        }
        let arns: Vec<String> = all.iter().map(|(a, _)| a.clone()).collect();
        let tags = self.elb_tags(region, &arns).await?;
        Ok(all
            .into_iter()
            .filter_map(|(arn, dns)| {
                let t = tags.get(&arn)?;
                if !scope_owns(scope, t) {
                    return None;
                }
                let (address, fingerprint) = tagged_address(ResourceKind::Alb, t)?;
                Some((address, fingerprint, arn, dns))
            })
            .collect())
    }

    /// The scope's target groups: (address, fingerprint, arn, health check path).
    async fn target_groups_owned(
        &self,
        scope: &Scope,
        region: &str,
    ) -> Result<Vec<(Address, Option<String>, String, String)>, AwsError> {
        let mut all = Vec::new();
        let mut pages = self.elb(region).describe_target_groups().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsError::from_sdk("DescribeTargetGroups", region, e))?;
            for g in page.target_groups() {
                if let Some(arn) = g.target_group_arn() {
                    all.push((arn.to_owned(), g.health_check_path().unwrap_or_default().to_owned()));
                }
            }
        }
        let arns: Vec<String> = all.iter().map(|(a, _)| a.clone()).collect();
        let tags = self.elb_tags(region, &arns).await?;
        Ok(all
            .into_iter()
            .filter_map(|(arn, path)| {
                let t = tags.get(&arn)?;
                if !scope_owns(scope, t) {
                    return None;
                }
                let (address, fingerprint) = tagged_address(ResourceKind::TargetGroup, t)?;
                Some((address, fingerprint, arn, path))
            })
            .collect())
    }

    /// The ARN of the scope's load balancer or target group at `address`.
    pub(crate) async fn elb_find(
        &self,
        scope: &Scope,
        region: &str,
        address: &Address,
    ) -> Result<Option<String>, AwsError> {
        let found = match address.kind {
            ResourceKind::Alb => self.albs_owned(scope, region).await?,
            ResourceKind::TargetGroup => self.target_groups_owned(scope, region).await?,
            _ => return Ok(None),
        };
        Ok(found.into_iter().find(|(a, ..)| a == address).map(|(_, _, arn, _)| arn))
    }

    /// Whether a target group has `lb_cookie` stickiness on.
    async fn sticky_of(&self, region: &str, arn: &str) -> Result<bool, AwsError> {
        let out = self
            .elb(region)
            .describe_target_group_attributes()
            .target_group_arn(arn)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("DescribeTargetGroupAttributes", region, e))?;
        let attrs: HashMap<&str, &str> = out.attributes().iter().filter_map(|a| Some((a.key()?, a.value()?))).collect();
        Ok(attrs.get("stickiness.enabled") == Some(&"true")
            && attrs.get("stickiness.type").is_none_or(|t| *t == "lb_cookie"))
    }

    /// Every load balancer, target group and listener of the scope in `region`.
    pub(crate) async fn elb_observe(&self, scope: &Scope, region: &str) -> Result<Vec<ObservedResource>, AwsError> {
        let mut out = Vec::new();
        let albs = self.albs_owned(scope, region).await?;
        for (address, fingerprint, arn, dns) in &albs {
            let mut facts = BTreeMap::new();
            if !dns.is_empty() {
                facts.insert(facts::DNS_NAME.to_owned(), dns.clone());
            }
            out.push(ObservedResource {
                address: address.clone(),
                id: format!("{region}/{arn}"),
                liveness: Liveness::Present,
                fingerprint: fingerprint.clone(),
                facts,
            });
        }
        for (address, fingerprint, arn, path) in self.target_groups_owned(scope, region).await? {
            let mut facts = BTreeMap::new();
            facts.insert(facts::STICKY.to_owned(), self.sticky_of(region, &arn).await?.to_string());
            facts.insert(facts::HEALTH_PATH.to_owned(), path);
            out.push(ObservedResource {
                address,
                id: format!("{region}/{arn}"),
                liveness: Liveness::Present,
                fingerprint,
                facts,
            });
        }
        let mut listeners = Vec::new();
        for (_, _, lb, _) in &albs {
            let found = match self.elb(region).describe_listeners().load_balancer_arn(lb).send().await {
                Ok(found) => found,
                Err(e) => match AwsError::from_sdk("DescribeListeners", region, e) {
                    e if e.code() == Some("LoadBalancerNotFound") => continue,
                    e => return Err(e),
                },
            };
            listeners.extend(found.listeners().iter().filter_map(|l| l.listener_arn().map(str::to_owned)));
        }
        let tags = self.elb_tags(region, &listeners).await?;
        for arn in listeners {
            let Some(t) = tags.get(&arn).filter(|t| scope_owns(scope, t)) else { continue };
            let Some((address, fingerprint)) = tagged_address(ResourceKind::Listener, t) else { continue };
            out.push(ObservedResource {
                address,
                id: format!("{region}/{arn}"),
                liveness: Liveness::Present,
                fingerprint,
                facts: BTreeMap::new(),
            });
        }
        Ok(out)
    }

    pub(crate) async fn alb_create(
        &self,
        scope: &Scope,
        address: &Address,
        a: &AlbAttrs,
        fingerprint: &str,
    ) -> Result<Applied, AwsError> {
        let region = a.region.as_str();
        let group = self.group_find(scope, region, &a.security_group).await?.ok_or_else(|| {
            AwsError::Missing(format!("the security group {} of this service does not exist", a.security_group))
        })?;
        let subnets = self.vpc_subnets(region, a.vpc_id.as_deref()).await?;
        let out = self
            .elb(region)
            .create_load_balancer()
            .name(&a.name)
            .set_subnets(Some(subnets))
            .security_groups(group)
            .scheme(LoadBalancerSchemeEnum::InternetFacing)
            .r#type(LoadBalancerTypeEnum::Application)
            .set_tags(Some(tags(scope, address, fingerprint, &a.name)))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("CreateLoadBalancer", region, e))?;
        let lb = out
            .load_balancers()
            .first()
            .ok_or_else(|| AwsError::Missing("CreateLoadBalancer returned nothing".into()))?;
        let mut applied = Applied::from(format!("{region}/{}", lb.load_balancer_arn().unwrap_or_default()));
        if let Some(dns) = lb.dns_name() {
            applied.outputs.insert("dns_name".into(), dns.to_owned());
        }
        Ok(applied)
    }

    pub(crate) async fn alb_delete(&self, region: &str, arn: &str) -> Result<(), AwsError> {
        match self.elb(region).delete_load_balancer().load_balancer_arn(arn).send().await {
            Ok(_) => Ok(()),
            Err(e) => match AwsError::from_sdk("DeleteLoadBalancer", region, e) {
                e if e.code() == Some("LoadBalancerNotFound") => Ok(()),
                e => Err(e),
            },
        }
    }

    pub(crate) async fn target_group_create(
        &self,
        scope: &Scope,
        address: &Address,
        t: &TargetGroupAttrs,
        fingerprint: &str,
    ) -> Result<Applied, AwsError> {
        let region = t.region.as_str();
        let vpc = match &t.vpc_id {
            Some(v) => v.clone(),
            None => self.default_vpc(region).await?.ok_or_else(|| {
                AwsError::Missing(format!("region {region} has no default VPC: set the VPC of the service"))
            })?,
        };
        let out = self
            .elb(region)
            .create_target_group()
            .name(&t.name)
            .protocol(ProtocolEnum::Http)
            .port(i32::from(t.port))
            .vpc_id(vpc)
            .target_type(match t.target_type {
                TargetType::Instance => TargetTypeEnum::Instance,
                TargetType::Ip => TargetTypeEnum::Ip,
            })
            .health_check_enabled(true)
            .health_check_protocol(ProtocolEnum::Http)
            .health_check_path(&t.health_path)
            .matcher(Matcher::builder().http_code("200-399").build())
            .set_tags(Some(tags(scope, address, fingerprint, &t.name)))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("CreateTargetGroup", region, e))?;
        let arn = out.target_groups().first().and_then(|g| g.target_group_arn()).unwrap_or_default().to_owned();
        self.stickiness_set(region, &arn, t.sticky).await?;
        Ok(Applied::from(format!("{region}/{arn}")))
    }

    async fn stickiness_set(&self, region: &str, arn: &str, sticky: bool) -> Result<(), AwsError> {
        let attribute = |k: &str, v: String| TargetGroupAttribute::builder().key(k).value(v).build();
        let mut attributes = vec![attribute("stickiness.enabled", sticky.to_string())];
        if sticky {
            attributes.push(attribute("stickiness.type", "lb_cookie".into()));
            attributes.push(attribute("stickiness.lb_cookie.duration_seconds", STICKY_SECONDS.to_string()));
        }
        self.elb(region)
            .modify_target_group_attributes()
            .target_group_arn(arn)
            .set_attributes(Some(attributes))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ModifyTargetGroupAttributes", region, e))?;
        Ok(())
    }

    /// Health check and stickiness in place, then the new fingerprint.
    pub(crate) async fn target_group_update(
        &self,
        t: &TargetGroupAttrs,
        arn: &str,
        fingerprint: &str,
    ) -> Result<Applied, AwsError> {
        let region = t.region.as_str();
        self.elb(region)
            .modify_target_group()
            .target_group_arn(arn)
            .health_check_path(&t.health_path)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ModifyTargetGroup", region, e))?;
        self.stickiness_set(region, arn, t.sticky).await?;
        self.elb_retag(region, arn, fingerprint).await?;
        Ok(Applied::from(format!("{region}/{arn}")))
    }

    async fn elb_retag(&self, region: &str, arn: &str, fingerprint: &str) -> Result<(), AwsError> {
        self.elb(region)
            .add_tags()
            .resource_arns(arn)
            .tags(Tag::builder().key(spawnit_model::resource::labels::FINGERPRINT).value(fingerprint).build())
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("AddTags", region, e))?;
        Ok(())
    }

    /// Deletes a target group, retrying while a listener or group that just went still holds it.
    pub(crate) async fn target_group_delete(
        &self,
        region: &str,
        arn: &str,
        cancel: &CancellationToken,
    ) -> Result<(), AwsError> {
        let (timeout, poll) = self.waits();
        let started = Instant::now();
        loop {
            let e = match self.elb(region).delete_target_group().target_group_arn(arn).send().await {
                Ok(_) => return Ok(()),
                Err(e) => AwsError::from_sdk("DeleteTargetGroup", region, e),
            };
            match e.code() {
                Some("TargetGroupNotFound") => return Ok(()),
                Some("ResourceInUse") if started.elapsed() < timeout => {}
                _ => return Err(e),
            }
            tokio::select! {
                _ = tokio::time::sleep(poll) => {}
                _ = cancel.cancelled() => return Err(e),
            }
        }
    }

    async fn listener_refs(&self, scope: &Scope, l: &ListenerAttrs) -> Result<(String, String), AwsError> {
        let region = l.region.as_str();
        let missing = |a: &Address| AwsError::Missing(format!("the {a} of this service does not exist"));
        let lb = self.elb_find(scope, region, &l.load_balancer).await?.ok_or_else(|| missing(&l.load_balancer))?;
        let tg = self.elb_find(scope, region, &l.target_group).await?.ok_or_else(|| missing(&l.target_group))?;
        Ok((lb, tg))
    }

    pub(crate) async fn listener_create(
        &self,
        scope: &Scope,
        address: &Address,
        l: &ListenerAttrs,
        fingerprint: &str,
    ) -> Result<Applied, AwsError> {
        let region = l.region.as_str();
        let (lb, tg) = self.listener_refs(scope, l).await?;
        let out = self
            .elb(region)
            .create_listener()
            .load_balancer_arn(lb)
            .protocol(ProtocolEnum::Http)
            .port(i32::from(l.port))
            .default_actions(Action::builder().r#type(ActionTypeEnum::Forward).target_group_arn(tg).build())
            .set_tags(Some(tags(scope, address, fingerprint, &address.to_string())))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("CreateListener", region, e))?;
        let arn = out.listeners().first().and_then(|l| l.listener_arn()).unwrap_or_default();
        Ok(Applied::from(format!("{region}/{arn}")))
    }

    /// Port and target group in place, then the new fingerprint.
    pub(crate) async fn listener_update(
        &self,
        scope: &Scope,
        l: &ListenerAttrs,
        arn: &str,
        fingerprint: &str,
    ) -> Result<Applied, AwsError> {
        let region = l.region.as_str();
        let (_, tg) = self.listener_refs(scope, l).await?;
        self.elb(region)
            .modify_listener()
            .listener_arn(arn)
            .port(i32::from(l.port))
            .protocol(ProtocolEnum::Http)
            .default_actions(Action::builder().r#type(ActionTypeEnum::Forward).target_group_arn(tg).build())
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ModifyListener", region, e))?;
        self.elb_retag(region, arn, fingerprint).await?;
        Ok(Applied::from(format!("{region}/{arn}")))
    }

    pub(crate) async fn listener_delete(&self, region: &str, arn: &str) -> Result<(), AwsError> {
        match self.elb(region).delete_listener().listener_arn(arn).send().await {
            Ok(_) => Ok(()),
            Err(e) => match AwsError::from_sdk("DeleteListener", region, e) {
                e if e.code() == Some("ListenerNotFound") => Ok(()),
                e => Err(e),
            },
        }
    }
}
