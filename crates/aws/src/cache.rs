//! ElastiCache: a Redis replication group (one node, transit and at-rest encryption, the
//! template's password as AUTH token, so clients connect with `rediss://`) and its subnet
//! group (the VPC's subnets, one per zone).
//!
//! ElastiCache has no tag filter on its describe calls: observation lists the region's
//! replication groups and subnet groups and reads each one's tags (`ListTagsForResource`). A
//! replication group being deleted is gone for SpawnIt. Deleting a cache does not wait for it
//! to go (minutes on AWS): the subnet group's delete retries while the cache still holds it,
//! and the cache's security group's while its network interfaces remain. Provider ids are
//! `<region>/<replication group id or subnet group name>`.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use aws_sdk_elasticache::types::Tag;
use spawnit_engine::{Applied, Scope};
use spawnit_model::resource::{
    Address, CacheAttrs, CacheSubnetGroupAttrs, Liveness, ObservedResource, ResourceKind, facts,
};
use tokio_util::sync::CancellationToken;

use crate::{AwsError, AwsProvider, owner_tags, scope_owns, tagged_address};

/// The `output.` fact and output of a cache's primary endpoint host.
pub const CACHE_HOST_OUTPUT: &str = "host";

fn tags(scope: &Scope, address: &Address, fingerprint: &str, name: &str) -> Vec<Tag> {
    owner_tags(scope, address, fingerprint, name)
        .into_iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// One of the scope's replication groups: address, fingerprint, id, primary endpoint host.
type CacheFound = (Address, Option<String>, String, Option<String>);

impl AwsProvider {
    async fn cache_tags(&self, region: &str, arn: &str) -> Result<HashMap<String, String>, AwsError> {
        let out = self
            .elasticache(region)
            .list_tags_for_resource()
            .resource_name(arn)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ListTagsForResource", region, e))?;
        Ok(out.tag_list().iter().filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned()))).collect())
    }

    /// The scope's replication groups that are not being deleted.
    async fn caches_owned(&self, scope: &Scope, region: &str) -> Result<Vec<CacheFound>, AwsError> {
        let mut out = Vec::new();
        let mut pages = self.elasticache(region).describe_replication_groups().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsError::from_sdk("DescribeReplicationGroups", region, e))?;
            for g in page.replication_groups() {
                let (Some(arn), Some(id)) = (g.arn(), g.replication_group_id()) else { continue };
                if matches!(g.status(), Some("deleting" | "deleted")) {
                    continue;
                }
                let t = self.cache_tags(region, arn).await?;
                if !scope_owns(scope, &t) {
                    continue;
                }
                let Some((address, fingerprint)) = tagged_address(ResourceKind::Cache, &t) else { continue };
                let host = g
                    .node_groups()
                    .iter()
                    .find_map(|n| n.primary_endpoint().and_then(|e| e.address()))
                    .or_else(|| g.configuration_endpoint().and_then(|e| e.address()))
                    .map(str::to_owned);
                out.push((address, fingerprint, id.to_owned(), host));
            }
        }
        Ok(out)
    }

    /// The scope's cache subnet groups: address, fingerprint, name.
    async fn cache_subnet_groups_owned(
        &self,
        scope: &Scope,
        region: &str,
    ) -> Result<Vec<(Address, Option<String>, String)>, AwsError> {
        let mut out = Vec::new();
        let mut pages = self.elasticache(region).describe_cache_subnet_groups().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsError::from_sdk("DescribeCacheSubnetGroups", region, e))?;
            for g in page.cache_subnet_groups() {
                let (Some(arn), Some(name)) = (g.arn(), g.cache_subnet_group_name()) else { continue };
                let t = self.cache_tags(region, arn).await?;
                if !scope_owns(scope, &t) {
                    continue;
                }
                let Some((address, fingerprint)) = tagged_address(ResourceKind::CacheSubnetGroup, &t) else { continue };
                out.push((address, fingerprint, name.to_owned()));
            }
        }
        Ok(out)
    }

    /// Every cache and cache subnet group of the scope in `region`.
    pub(crate) async fn cache_observe(&self, scope: &Scope, region: &str) -> Result<Vec<ObservedResource>, AwsError> {
        let mut out = Vec::new();
        for (address, fingerprint, name) in self.cache_subnet_groups_owned(scope, region).await? {
            out.push(ObservedResource {
                address,
                id: format!("{region}/{name}"),
                liveness: Liveness::Present,
                fingerprint,
                facts: BTreeMap::new(),
            });
        }
        for (address, fingerprint, id, host) in self.caches_owned(scope, region).await? {
            let mut facts = BTreeMap::new();
            if let Some(host) = host {
                facts.insert(format!("{}{CACHE_HOST_OUTPUT}", facts::OUTPUT_PREFIX), host);
            }
            out.push(ObservedResource {
                address,
                id: format!("{region}/{id}"),
                liveness: Liveness::Present,
                fingerprint,
                facts,
            });
        }
        Ok(out)
    }

    /// The primary endpoint host of the scope's cache at `address`, once it has one.
    pub(crate) async fn cache_host(
        &self,
        scope: &Scope,
        region: &str,
        address: &Address,
    ) -> Result<Option<String>, AwsError> {
        Ok(self.caches_owned(scope, region).await?.into_iter().find(|(a, ..)| a == address).and_then(|(.., host)| host))
    }

    pub(crate) async fn cache_subnet_group_create(
        &self,
        scope: &Scope,
        address: &Address,
        g: &CacheSubnetGroupAttrs,
        fingerprint: &str,
    ) -> Result<Applied, AwsError> {
        let region = g.region.as_str();
        let subnets = self.vpc_subnets(region, g.vpc_id.as_deref()).await?;
        self.elasticache(region)
            .create_cache_subnet_group()
            .cache_subnet_group_name(&g.name)
            .cache_subnet_group_description(format!("SpawnIt service {}", scope.owner))
            .set_subnet_ids(Some(subnets))
            .set_tags(Some(tags(scope, address, fingerprint, &g.name)))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("CreateCacheSubnetGroup", region, e))?;
        Ok(Applied::from(format!("{region}/{}", g.name)))
    }

    /// Deletes a subnet group, retrying while a cache being deleted still holds it.
    pub(crate) async fn cache_subnet_group_delete(
        &self,
        region: &str,
        name: &str,
        cancel: &CancellationToken,
    ) -> Result<(), AwsError> {
        let (timeout, poll) = self.waits();
        let started = Instant::now();
        loop {
            let e =
                match self.elasticache(region).delete_cache_subnet_group().cache_subnet_group_name(name).send().await {
                    Ok(_) => return Ok(()),
                    Err(e) => AwsError::from_sdk("DeleteCacheSubnetGroup", region, e),
                };
            match e.code() {
                Some("CacheSubnetGroupNotFoundFault") => return Ok(()),
                Some("CacheSubnetGroupInUse") if started.elapsed() < timeout => {}
                _ => return Err(e),
            }
            tokio::select! {
                _ = tokio::time::sleep(poll) => {}
                _ = cancel.cancelled() => return Err(e),
            }
        }
    }

    /// Creates the replication group and waits for it to be available (its endpoint is known
    /// then); only its id when cancelled first.
    pub(crate) async fn cache_create(
        &self,
        scope: &Scope,
        address: &Address,
        c: &CacheAttrs,
        fingerprint: &str,
        cancel: &CancellationToken,
    ) -> Result<Applied, AwsError> {
        let region = c.region.as_str();
        let subnet_group = self
            .cache_subnet_groups_owned(scope, region)
            .await?
            .into_iter()
            .find(|(a, ..)| *a == c.subnet_group)
            .map(|(.., name)| name)
            .ok_or_else(|| AwsError::Missing(format!("the {} of this service does not exist", c.subnet_group)))?;
        let group = self.group_find(scope, region, &c.security_group).await?.ok_or_else(|| {
            AwsError::Missing(format!("the security group {} of this service does not exist", c.security_group))
        })?;
        // A replication group deleted a moment ago keeps its id while it is being deleted
        // (minutes on AWS): a new one then takes the next free id (`<id>-2`, …).
        let mut id = c.id.clone();
        for attempt in 2..=9 {
            let mut create = self
                .elasticache(region)
                .create_replication_group()
                .replication_group_id(&id)
                .replication_group_description(format!("SpawnIt service {}", scope.owner))
                .engine("redis")
                .cache_node_type(&c.node_type)
                .num_cache_clusters(1)
                .port(i32::from(c.port))
                .cache_subnet_group_name(&subnet_group)
                .security_group_ids(&group)
                .transit_encryption_enabled(true)
                .at_rest_encryption_enabled(true)
                .set_tags(Some(tags(scope, address, fingerprint, &c.id)));
            if !c.auth_token.is_empty() {
                create = create.auth_token(&c.auth_token);
            }
            match create.send().await {
                Ok(_) => break,
                Err(e) => match AwsError::from_sdk("CreateReplicationGroup", region, e) {
                    e if e.code() == Some("ReplicationGroupAlreadyExists") && attempt < 9 => {
                        id = format!("{}-{attempt}", c.id);
                    }
                    e => return Err(e),
                },
            }
        }
        let mut applied = Applied::from(format!("{region}/{id}"));
        let (timeout, poll) = self.waits();
        let started = Instant::now();
        loop {
            let out = self
                .elasticache(region)
                .describe_replication_groups()
                .replication_group_id(&id)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("DescribeReplicationGroups", region, e))?;
            let g = out.replication_groups().first();
            let status = g.and_then(|g| g.status()).unwrap_or("creating").to_owned();
            let host = g.and_then(|g| {
                g.node_groups()
                    .iter()
                    .find_map(|n| n.primary_endpoint().and_then(|e| e.address()))
                    .or_else(|| g.configuration_endpoint().and_then(|e| e.address()))
            });
            if status == "available"
                && let Some(host) = host
            {
                applied.outputs.insert(CACHE_HOST_OUTPUT.into(), host.to_owned());
                return Ok(applied);
            }
            if started.elapsed() >= timeout {
                return Err(AwsError::StillThere { what: format!("cache {id}"), state: status, waited: timeout });
            }
            tokio::select! {
                _ = tokio::time::sleep(poll) => {}
                _ = cancel.cancelled() => return Ok(applied),
            }
        }
    }

    /// Starts the deletion of a replication group (see the module's note on waiting).
    pub(crate) async fn cache_delete(&self, region: &str, id: &str) -> Result<(), AwsError> {
        match self.elasticache(region).delete_replication_group().replication_group_id(id).send().await {
            Ok(_) => Ok(()),
            Err(e) => match AwsError::from_sdk("DeleteReplicationGroup", region, e) {
                e if e.code() == Some("ReplicationGroupNotFoundFault") => Ok(()),
                e => Err(e),
            },
        }
    }
}
