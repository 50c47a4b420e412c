//! SpawnIt's AWS provider, on the official AWS SDK for Rust: a service is a security group
//! (`security_group.main`: one ingress rule per published port and allowed CIDR) and an EC2
//! instance (`instance.main`) whose `user_data` ([`user_data`]) installs Docker when missing and
//! runs the service's containers.
//!
//! The scalable stacks (`aws-asg`, `aws-ecs`) add an application load balancer, its target
//! group and listener ([`elb`]), an ElastiCache Redis and its subnet group ([`cache`]), and on
//! `aws-asg` a launch template and an auto-scaling group ([`asg`]).
//!
//! Everything it creates carries SpawnIt's ownership labels as tags (`spawnit.client`,
//! `spawnit.service`, `spawnit.resource`, `spawnit.lineage`, `spawnit.fingerprint`), so
//! observation finds it by tag filters without state; terminated and shutting-down instances
//! are ignored. Provider ids are `<region>/<aws id>`, so a delete knows where to go.
//!
//! Credentials, profile and endpoint come from the standard AWS chain (`AWS_PROFILE`,
//! `AWS_ACCESS_KEY_ID`…, `AWS_ENDPOINT_URL`), or [`AwsOptions`]. The SDK's HTTPS client is
//! rustls on ring; default features are off, so no OpenSSL and no aws-lc.

pub mod asg;
pub mod cache;
pub mod ecs;
pub mod elb;
pub mod user_data;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_ec2::Client;
use aws_sdk_ec2::config::Region;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types::{
    Filter, HttpTokensState, InstanceMetadataOptionsRequest, InstanceStateName, InstanceType, IpPermission, IpRange,
    Ipv6Range, LocationType, ResourceType, Tag, TagSpecification, UserIdGroupPair,
};
use base64::Engine as _;
use spawnit_engine::{Applied, FieldError, Provider, ProviderError, Scope, ValidationError};
use spawnit_model::Owner;
use spawnit_model::resource::{
    Address, DesiredResource, GroupRule, IngressRule, InstanceAttrs, Liveness, ObservedResource, ResourceAttrs,
    ResourceKind, SecurityGroupAttrs, facts, labels,
};
use spawnit_model::spec::Protocol;
use tokio_util::sync::CancellationToken;

/// What can go wrong talking to AWS.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    /// AWS answered with an error.
    #[error("AWS {operation} in {region}: {code}: {message}")]
    Api { operation: &'static str, region: String, code: String, message: String },
    /// AWS could not be reached or did not answer (network, credentials, timeout).
    #[error("AWS {operation} in {region} failed")]
    Unreachable {
        operation: &'static str,
        region: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A wait for a resource ran out of time.
    #[error("{what} was still {state} after {waited:?}")]
    StillThere { what: String, state: String, waited: Duration },
    /// A wait for an instance's state ran out of time.
    #[error("instance {id} was still {state} after {waited:?} (waiting for {wanted})")]
    WaitTimeout { id: String, state: String, wanted: &'static str, waited: Duration },
    /// An instance ended while it was expected to run.
    #[error("instance {id} is {state} while starting: {reason}")]
    InstanceEnded { id: String, state: String, reason: String },
    /// Something the resource needs is not there.
    #[error("{0}")]
    Missing(String),
    /// A provider id that is not `<region>/<id>`.
    #[error("{0:?} is not an AWS provider id (region/id)")]
    BadId(String),
}

impl AwsError {
    pub(crate) fn from_sdk<E, R>(operation: &'static str, region: &str, e: SdkError<E, R>) -> AwsError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        match (&e, e.code()) {
            (SdkError::ServiceError(_), Some(code)) => AwsError::Api {
                operation,
                region: region.to_owned(),
                code: code.to_owned(),
                message: e.message().unwrap_or("(no message)").to_owned(),
            },
            _ => AwsError::Unreachable {
                operation,
                region: region.to_owned(),
                source: aws_sdk_ec2::error::DisplayErrorContext(e).to_string().into(),
            },
        }
    }

    /// The EC2 error code, for service errors.
    pub fn code(&self) -> Option<&str> {
        match self {
            AwsError::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// How the provider reaches AWS and how long it waits.
#[derive(Clone, Debug)]
pub struct AwsOptions {
    /// An endpoint for every EC2 call (an emulator); `AWS_ENDPOINT_URL` is read otherwise.
    pub endpoint: Option<String>,
    /// A profile of `~/.aws/config`; `AWS_PROFILE` is read otherwise.
    pub profile: Option<String>,
    /// An access key id and secret to use instead of the credential chain.
    pub static_keys: Option<(String, String)>,
    /// The longest wait for an instance to run or terminate.
    pub wait_timeout: Duration,
    /// Time between two looks at an instance's state.
    pub poll_interval: Duration,
}

impl Default for AwsOptions {
    fn default() -> Self {
        AwsOptions {
            endpoint: None,
            profile: None,
            static_keys: None,
            wait_timeout: Duration::from_secs(600),
            poll_interval: Duration::from_secs(5),
        }
    }
}

/// The AWS provider: one SDK configuration, one client per service and region used.
pub struct AwsProvider {
    config: SdkConfig,
    options: AwsOptions,
    /// The clients of each region used, made on first use (no request is made to make one).
    clients: Mutex<HashMap<String, RegionClients>>,
    /// Settings already checked against EC2 (see [`Provider::validate`]).
    validated: Mutex<HashSet<String>>,
}

/// The clients of the AWS services SpawnIt uses, in one region.
#[derive(Clone)]
pub struct RegionClients {
    pub ec2: Client,
    pub elb: aws_sdk_elasticloadbalancingv2::Client,
    pub autoscaling: aws_sdk_autoscaling::Client,
    pub elasticache: aws_sdk_elasticache::Client,
    pub ecs: aws_sdk_ecs::Client,
    pub iam: aws_sdk_iam::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
    pub scaling: aws_sdk_applicationautoscaling::Client,
    pub ssm: aws_sdk_ssm::Client,
}

impl RegionClients {
    fn new(config: &SdkConfig, region: &str) -> RegionClients {
        let region = Region::new(region.to_owned());
        macro_rules! client {
            ($sdk:ident) => {
                $sdk::Client::from_conf($sdk::config::Builder::from(config).region(region.clone()).build())
            };
        }
        RegionClients {
            ec2: client!(aws_sdk_ec2),
            elb: client!(aws_sdk_elasticloadbalancingv2),
            autoscaling: client!(aws_sdk_autoscaling),
            elasticache: client!(aws_sdk_elasticache),
            ecs: client!(aws_sdk_ecs),
            iam: client!(aws_sdk_iam),
            logs: client!(aws_sdk_cloudwatchlogs),
            scaling: client!(aws_sdk_applicationautoscaling),
            ssm: client!(aws_sdk_ssm),
        }
    }
}

impl AwsProvider {
    /// Loads the standard configuration chain (no request is made until the first call).
    pub async fn new(options: AwsOptions) -> AwsProvider {
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http);
        if let Some(endpoint) = &options.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        if let Some(profile) = &options.profile {
            loader = loader.profile_name(profile);
        }
        if let Some((id, secret)) = &options.static_keys {
            let keys = aws_credential_types::Credentials::new(id.clone(), secret.clone(), None, None, "spawnit");
            loader = loader.credentials_provider(keys);
        }
        let config = loader.load().await;
        AwsProvider { config, options, clients: Mutex::new(HashMap::new()), validated: Mutex::new(HashSet::new()) }
    }

    /// The region of the configuration chain (`AWS_REGION`, the profile's), if any: the
    /// default region of new services.
    pub fn default_region(&self) -> Option<String> {
        self.config.region().map(|r| r.to_string())
    }

    /// The clients of `region`.
    pub fn clients_of(&self, region: &str) -> RegionClients {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        clients.entry(region.to_owned()).or_insert_with(|| RegionClients::new(&self.config, region)).clone()
    }

    /// The EC2 client of `region`.
    pub fn client(&self, region: &str) -> Client {
        self.clients_of(region).ec2
    }

    /// The Elastic Load Balancing (v2) client of `region`.
    pub fn elb(&self, region: &str) -> aws_sdk_elasticloadbalancingv2::Client {
        self.clients_of(region).elb
    }

    /// The EC2 Auto Scaling client of `region`.
    pub fn autoscaling(&self, region: &str) -> aws_sdk_autoscaling::Client {
        self.clients_of(region).autoscaling
    }

    /// The ElastiCache client of `region`.
    pub fn elasticache(&self, region: &str) -> aws_sdk_elasticache::Client {
        self.clients_of(region).elasticache
    }

    /// How long to wait for AWS to finish something, and how often to look.
    pub(crate) fn waits(&self) -> (Duration, Duration) {
        (self.options.wait_timeout, self.options.poll_interval)
    }

    /// The subnets of a VPC (the default one when `vpc` is `None`), one per availability zone
    /// (a zone's default subnet first): where a load balancer, a cache or a group is placed.
    pub(crate) async fn vpc_subnets(&self, region: &str, vpc: Option<&str>) -> Result<Vec<String>, AwsError> {
        let vpc = match vpc {
            Some(v) => v.to_owned(),
            None => self.default_vpc(region).await?.ok_or_else(|| {
                AwsError::Missing(format!("region {region} has no default VPC: set the VPC of the service"))
            })?,
        };
        let out = self
            .client(region)
            .describe_subnets()
            .filters(Filter::builder().name("vpc-id").values(&vpc).build())
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("DescribeSubnets", region, e))?;
        let mut by_zone: BTreeMap<String, (bool, String)> = BTreeMap::new();
        for s in out.subnets() {
            let (Some(zone), Some(id)) = (s.availability_zone(), s.subnet_id()) else { continue };
            let candidate = (!s.default_for_az().unwrap_or(false), id.to_owned());
            match by_zone.get(zone) {
                Some(best) if *best <= candidate => {}
                _ => {
                    by_zone.insert(zone.to_owned(), candidate);
                }
            }
        }
        let subnets: Vec<String> = by_zone.into_values().map(|(_, id)| id).collect();
        if subnets.is_empty() {
            return Err(AwsError::Missing(format!("VPC {vpc} in region {region} has no subnet")));
        }
        Ok(subnets)
    }

    /// Waits for `id` to reach `wanted`; `Ok(None)` when cancelled first. Returns the
    /// instance as last described.
    async fn instance_wait(
        &self,
        region: &str,
        id: &str,
        wanted: InstanceStateName,
        cancel: &CancellationToken,
    ) -> Result<Option<Option<aws_sdk_ec2::types::Instance>>, AwsError> {
        let client = self.client(region);
        let started = Instant::now();
        loop {
            let found = match client.describe_instances().instance_ids(id).send().await {
                Ok(out) => out.reservations().iter().flat_map(|r| r.instances()).next().cloned(),
                Err(e) => {
                    let e = AwsError::from_sdk("DescribeInstances", region, e);
                    if e.code() == Some("InvalidInstanceID.NotFound") {
                        None
                    } else {
                        return Err(e);
                    }
                }
            };
            let state = found.as_ref().and_then(|i| i.state()).and_then(|s| s.name()).cloned();
            match (&state, &wanted) {
                (None, InstanceStateName::Terminated) => return Ok(Some(found)),
                (Some(s), w) if s == w => return Ok(Some(found)),
                (Some(InstanceStateName::Terminated | InstanceStateName::ShuttingDown), InstanceStateName::Running) => {
                    let reason = found
                        .as_ref()
                        .and_then(|i| i.state_reason())
                        .and_then(|r| r.message())
                        .unwrap_or("no reason given")
                        .to_owned();
                    return Err(AwsError::InstanceEnded { id: id.to_owned(), state: state_text(&state), reason });
                }
                _ => {}
            }
            if started.elapsed() >= self.options.wait_timeout {
                return Err(AwsError::WaitTimeout {
                    id: id.to_owned(),
                    state: state_text(&state),
                    wanted: if wanted == InstanceStateName::Running { "running" } else { "terminated" },
                    waited: self.options.wait_timeout,
                });
            }
            tokio::select! {
                _ = tokio::time::sleep(self.options.poll_interval) => {}
                _ = cancel.cancelled() => return Ok(None),
            }
        }
    }

    /// The id of the group carrying the scope's tags and `address`'s resource tag.
    pub(crate) async fn group_find(
        &self,
        scope: &Scope,
        region: &str,
        address: &Address,
    ) -> Result<Option<String>, AwsError> {
        let mut filters = scope_filters(scope);
        filters.push(tag_filter(labels::RESOURCE, &address.to_string()));
        let out = self
            .client(region)
            .describe_security_groups()
            .set_filters(Some(filters))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("DescribeSecurityGroups", region, e))?;
        Ok(out.security_groups().iter().find_map(|g| g.group_id().map(str::to_owned)))
    }

    pub(crate) async fn default_vpc(&self, region: &str) -> Result<Option<String>, AwsError> {
        let out = self
            .client(region)
            .describe_vpcs()
            .filters(Filter::builder().name("is-default").values("true").build())
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("DescribeVpcs", region, e))?;
        Ok(out.vpcs().iter().find_map(|v| v.vpc_id().map(str::to_owned)))
    }

    /// The AMI an instance is launched from: the explicit one, or the newest match.
    pub async fn ami_resolve(&self, i: &InstanceAttrs) -> Result<Option<String>, AwsError> {
        let client = self.client(&i.region);
        if let Some(ami) = &i.ami {
            return match client.describe_images().image_ids(ami).send().await {
                Ok(out) => Ok(out.images().iter().find_map(|im| im.image_id().map(str::to_owned))),
                Err(e) => {
                    let e = AwsError::from_sdk("DescribeImages", &i.region, e);
                    if e.code().is_some_and(|c| c.starts_with("InvalidAMIID")) { Ok(None) } else { Err(e) }
                }
            };
        }
        let out = client
            .describe_images()
            .owners(&i.ami_owner)
            .filters(Filter::builder().name("name").values(&i.ami_name).build())
            .filters(Filter::builder().name("state").values("available").build())
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("DescribeImages", &i.region, e))?;
        let mut images: Vec<(&str, &str, &str)> = out
            .images()
            .iter()
            .filter_map(|im| Some((im.creation_date().unwrap_or(""), im.name().unwrap_or(""), im.image_id()?)))
            .collect();
        // Newest first: by creation date, then by name (names carry a date or version).
        images.sort();
        Ok(images.last().map(|(_, _, id)| (*id).to_owned()))
    }

    async fn group_create(
        &self,
        scope: &Scope,
        address: &Address,
        g: &SecurityGroupAttrs,
        fingerprint: &str,
    ) -> Result<Applied, AwsError> {
        let region = g.region.as_str();
        let vpc = match &g.vpc_id {
            Some(v) => v.clone(),
            None => self.default_vpc(region).await?.ok_or_else(|| {
                AwsError::Missing(format!("region {region} has no default VPC: set the VPC and subnet of the service"))
            })?,
        };
        let out = self
            .client(region)
            .create_security_group()
            .group_name(&g.name)
            .description(&g.description)
            .vpc_id(vpc)
            .tag_specifications(tag_spec(ResourceType::SecurityGroup, scope, address, fingerprint, &g.name))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("CreateSecurityGroup", region, e))?;
        let id = out.group_id().unwrap_or_default().to_owned();
        self.rules_change(region, &id, &g.ingress, &[]).await?;
        let sources = self.sources_resolve(scope, region, g).await?;
        self.pairs_change(region, &id, &sources.into_iter().collect::<Vec<_>>(), &[]).await?;
        Ok(Applied::from(format!("{region}/{id}")))
    }

    /// The rules from other groups of `g` as (protocol, port, source group id), each source
    /// looked up by its tags.
    async fn sources_resolve(
        &self,
        scope: &Scope,
        region: &str,
        g: &SecurityGroupAttrs,
    ) -> Result<BTreeSet<GroupPair>, AwsError> {
        let mut out = BTreeSet::new();
        for rule in &g.ingress_groups {
            let id = self.group_find(scope, region, &rule.group).await?.ok_or_else(|| {
                AwsError::Missing(format!("the security group {} of this service does not exist", rule.group))
            })?;
            out.insert((rule.protocol, rule.port, id));
        }
        Ok(out)
    }

    /// Authorizes `add` and revokes `remove`, rules whose source is another group.
    async fn pairs_change(
        &self,
        region: &str,
        id: &str,
        add: &[GroupPair],
        remove: &[GroupPair],
    ) -> Result<(), AwsError> {
        let client = self.client(region);
        let permissions = |pairs: &[GroupPair]| -> Vec<IpPermission> {
            pairs
                .iter()
                .map(|(protocol, port, group)| {
                    IpPermission::builder()
                        .ip_protocol(protocol.as_str())
                        .from_port(i32::from(*port))
                        .to_port(i32::from(*port))
                        .user_id_group_pairs(UserIdGroupPair::builder().group_id(group).description("spawnit").build())
                        .build()
                })
                .collect()
        };
        if !add.is_empty() {
            client
                .authorize_security_group_ingress()
                .group_id(id)
                .set_ip_permissions(Some(permissions(add)))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("AuthorizeSecurityGroupIngress", region, e))?;
        }
        if !remove.is_empty() {
            client
                .revoke_security_group_ingress()
                .group_id(id)
                .set_ip_permissions(Some(permissions(remove)))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("RevokeSecurityGroupIngress", region, e))?;
        }
        Ok(())
    }

    /// Authorizes `add` and revokes `remove` on group `id`.
    async fn rules_change(
        &self,
        region: &str,
        id: &str,
        add: &[IngressRule],
        remove: &[IngressRule],
    ) -> Result<(), AwsError> {
        let client = self.client(region);
        if !add.is_empty() {
            client
                .authorize_security_group_ingress()
                .group_id(id)
                .set_ip_permissions(Some(permissions(add)))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("AuthorizeSecurityGroupIngress", region, e))?;
        }
        if !remove.is_empty() {
            client
                .revoke_security_group_ingress()
                .group_id(id)
                .set_ip_permissions(Some(permissions(remove)))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("RevokeSecurityGroupIngress", region, e))?;
        }
        Ok(())
    }

    /// Makes group `id`'s ingress rules exactly `g.ingress` and `g.ingress_groups`, then
    /// retags it.
    async fn group_update(
        &self,
        scope: &Scope,
        g: &SecurityGroupAttrs,
        id: &str,
        fingerprint: &str,
    ) -> Result<Applied, AwsError> {
        let region = g.region.as_str();
        let out = self
            .client(region)
            .describe_security_groups()
            .group_ids(id)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("DescribeSecurityGroups", region, e))?;
        let group =
            out.security_groups().first().ok_or_else(|| AwsError::Missing(format!("security group {id} is gone")))?;
        let (found, found_pairs, odd) = rules_of(group.ip_permissions());
        let wanted: BTreeSet<IngressRule> = g.ingress.iter().cloned().collect();
        let add: Vec<IngressRule> = wanted.difference(&found).cloned().collect();
        let remove: Vec<IngressRule> = found.difference(&wanted).cloned().collect();
        self.rules_change(region, id, &add, &remove).await?;
        let wanted_pairs = self.sources_resolve(scope, region, g).await?;
        let add: Vec<GroupPair> = wanted_pairs.difference(&found_pairs).cloned().collect();
        let remove: Vec<GroupPair> = found_pairs.difference(&wanted_pairs).cloned().collect();
        self.pairs_change(region, id, &add, &remove).await?;
        if !odd.is_empty() {
            // Rules SpawnIt never writes (port ranges, other protocols, group sources): revoke as found.
            self.client(region)
                .revoke_security_group_ingress()
                .group_id(id)
                .set_ip_permissions(Some(odd))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("RevokeSecurityGroupIngress", region, e))?;
        }
        self.retag(region, id, fingerprint).await?;
        Ok(Applied::from(format!("{region}/{id}")))
    }

    pub(crate) async fn retag(&self, region: &str, id: &str, fingerprint: &str) -> Result<(), AwsError> {
        self.client(region)
            .create_tags()
            .resources(id)
            .tags(tag(labels::FINGERPRINT, fingerprint))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("CreateTags", region, e))?;
        Ok(())
    }

    async fn instance_create(
        &self,
        scope: &Scope,
        address: &Address,
        i: &InstanceAttrs,
        fingerprint: &str,
        cancel: &CancellationToken,
    ) -> Result<Applied, AwsError> {
        let region = i.region.as_str();
        let group = self.group_find(scope, region, &i.security_group).await?.ok_or_else(|| {
            AwsError::Missing(format!("the security group {} of this service does not exist", i.security_group))
        })?;
        let ami = self.ami_resolve(i).await?.ok_or_else(|| AwsError::Missing(ami_missing(i)))?;
        let script = user_data::render(i);
        let out = self
            .client(region)
            .run_instances()
            .image_id(ami)
            .instance_type(InstanceType::from(i.instance_type.as_str()))
            .min_count(1)
            .max_count(1)
            .user_data(base64::engine::general_purpose::STANDARD.encode(script))
            .security_group_ids(group)
            .set_key_name(i.key_name.clone())
            .set_subnet_id(i.subnet_id.clone())
            .metadata_options(InstanceMetadataOptionsRequest::builder().http_tokens(HttpTokensState::Required).build())
            .tag_specifications(tag_spec(ResourceType::Instance, scope, address, fingerprint, &i.name))
            .tag_specifications(tag_spec(ResourceType::Volume, scope, address, fingerprint, &i.name))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("RunInstances", region, e))?;
        let id = out.instances().first().and_then(|x| x.instance_id()).unwrap_or_default().to_owned();
        self.instance_running(region, &id, cancel).await
    }

    /// Waits for `id` to run; returns it with its addresses as outputs (only its id when
    /// cancelled first: it exists and is recorded, the next plan looks again).
    async fn instance_running(&self, region: &str, id: &str, cancel: &CancellationToken) -> Result<Applied, AwsError> {
        let mut applied = Applied::from(format!("{region}/{id}"));
        if let Some(Some(instance)) = self.instance_wait(region, id, InstanceStateName::Running, cancel).await? {
            applied.outputs = instance_outputs(&instance);
        }
        Ok(applied)
    }

    async fn instance_update(
        &self,
        i: &InstanceAttrs,
        id: &str,
        fingerprint: &str,
        cancel: &CancellationToken,
    ) -> Result<Applied, AwsError> {
        let region = i.region.as_str();
        self.client(region)
            .start_instances()
            .instance_ids(id)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("StartInstances", region, e))?;
        self.retag(region, id, fingerprint).await?;
        self.instance_running(region, id, cancel).await
    }

    async fn instance_delete(&self, region: &str, id: &str, cancel: &CancellationToken) -> Result<(), AwsError> {
        match self.client(region).terminate_instances().instance_ids(id).send().await {
            Ok(_) => {}
            Err(e) => {
                let e = AwsError::from_sdk("TerminateInstances", region, e);
                if e.code() == Some("InvalidInstanceID.NotFound") {
                    return Ok(());
                }
                return Err(e);
            }
        }
        self.instance_wait(region, id, InstanceStateName::Terminated, cancel).await?;
        Ok(())
    }

    /// Deletes a group, retrying while an instance that just terminated still holds it.
    async fn group_delete(&self, region: &str, id: &str, cancel: &CancellationToken) -> Result<(), AwsError> {
        let started = Instant::now();
        loop {
            let e = match self.client(region).delete_security_group().group_id(id).send().await {
                Ok(_) => return Ok(()),
                Err(e) => AwsError::from_sdk("DeleteSecurityGroup", region, e),
            };
            match e.code() {
                Some("InvalidGroup.NotFound") => return Ok(()),
                Some("DependencyViolation") if started.elapsed() < self.options.wait_timeout => {}
                _ => return Err(e),
            }
            tokio::select! {
                _ = tokio::time::sleep(self.options.poll_interval) => {}
                _ = cancel.cancelled() => return Err(e),
            }
        }
    }

    /// The field errors of one instance's settings, checked against EC2.
    async fn instance_check(&self, i: &InstanceAttrs, vpc_id: Option<&str>) -> Result<Vec<FieldError>, ProviderError> {
        let region = i.region.as_str();
        let client = self.client(region);
        let mut errors = Vec::new();
        let mut bad = |field: &str, reason: String| errors.push(FieldError { field: field.to_owned(), reason });
        let unavailable =
            |e: AwsError| ProviderError::Unavailable { what: format!("EC2 in {region}"), source: Box::new(e) };

        // The region: an unknown one is either unreachable (real AWS) or not listed.
        match client.describe_regions().all_regions(true).region_names(region).send().await {
            Ok(out) if out.regions().iter().any(|r| r.region_name() == Some(region)) => {}
            Ok(_) => {
                bad("aws.region", format!("{region} is not an EC2 region"));
                return Ok(errors);
            }
            Err(e) => match AwsError::from_sdk("DescribeRegions", region, e) {
                AwsError::Api { code, .. } if code.starts_with("InvalidParameter") => {
                    bad("aws.region", format!("{region} is not an EC2 region"));
                    return Ok(errors);
                }
                e @ AwsError::Api { .. } => return Err(unavailable(e)),
                e => {
                    // Unreachable: ask a region that exists whether this one does.
                    let reference = self.default_region().filter(|r| r != region).unwrap_or_else(|| "us-east-1".into());
                    let listed = match self.client(&reference).describe_regions().all_regions(true).send().await {
                        Ok(out) => Some(out.regions().iter().any(|r| r.region_name() == Some(region))),
                        Err(_) => None,
                    };
                    let reason = match listed {
                        Some(false) => format!("{region} is not an EC2 region"),
                        _ => format!("EC2 in region {region} cannot be reached ({})", chain(&e)),
                    };
                    bad("aws.region", reason);
                    return Ok(errors);
                }
            },
        }
        let offers = client
            .describe_instance_type_offerings()
            .location_type(LocationType::Region)
            .filters(Filter::builder().name("instance-type").values(&i.instance_type).build())
            .send()
            .await
            .map_err(|e| unavailable(AwsError::from_sdk("DescribeInstanceTypeOfferings", region, e)))?;
        if !offers
            .instance_type_offerings()
            .iter()
            .any(|o| o.instance_type().map(|t| t.as_str()) == Some(&i.instance_type))
        {
            bad("aws.instance_type", format!("instance type {} is not offered in region {region}", i.instance_type));
        }
        match self.ami_resolve(i).await.map_err(unavailable)? {
            Some(_) => {}
            None if i.ami.is_some() => bad("aws.ami", ami_missing(i)),
            None => bad("aws.ami_name", ami_missing(i)),
        }
        if let Some(key) = &i.key_name
            && let Err(e) = client.describe_key_pairs().key_names(key).send().await
        {
            match AwsError::from_sdk("DescribeKeyPairs", region, e) {
                e if e.code().is_some_and(|c| c.starts_with("InvalidKeyPair")) => {
                    bad("aws.key_name", format!("key pair {key:?} does not exist in region {region}"))
                }
                e => return Err(unavailable(e)),
            }
        }
        let mut subnet_vpc = None;
        if let Some(subnet) = &i.subnet_id {
            match client.describe_subnets().subnet_ids(subnet).send().await {
                Ok(out) => subnet_vpc = out.subnets().first().and_then(|s| s.vpc_id()).map(str::to_owned),
                Err(e) => match AwsError::from_sdk("DescribeSubnets", region, e) {
                    e if e.code().is_some_and(|c| c.starts_with("InvalidSubnet")) => {
                        bad("aws.subnet_id", format!("subnet {subnet} does not exist in region {region}"))
                    }
                    e => return Err(unavailable(e)),
                },
            }
        }
        match vpc_id {
            Some(vpc) => {
                if let Err(e) = client.describe_vpcs().vpc_ids(vpc).send().await {
                    match AwsError::from_sdk("DescribeVpcs", region, e) {
                        e if e.code().is_some_and(|c| c.starts_with("InvalidVpc")) => {
                            bad("aws.vpc_id", format!("VPC {vpc} does not exist in region {region}"))
                        }
                        e => return Err(unavailable(e)),
                    }
                }
                if subnet_vpc.as_deref().is_some_and(|s| s != vpc) {
                    bad(
                        "aws.subnet_id",
                        format!("subnet {} is not in VPC {vpc}", i.subnet_id.as_deref().unwrap_or("")),
                    );
                }
            }
            None => {
                let default = self.default_vpc(region).await.map_err(unavailable)?;
                match (default, subnet_vpc) {
                    (None, _) => bad(
                        "aws.vpc_id",
                        format!("region {region} has no default VPC: give the VPC and the subnet to use"),
                    ),
                    (Some(d), Some(s)) if d != s => bad(
                        "aws.vpc_id",
                        format!(
                            "subnet {} is in VPC {s}, not the default VPC {d}: give aws.vpc_id too",
                            i.subnet_id.as_deref().unwrap_or("")
                        ),
                    ),
                    _ => {}
                }
            }
        }
        let size = user_data::render(i).len();
        if size > user_data::USER_DATA_MAX_BYTES {
            bad(
                "instance",
                format!(
                    "the instance's user_data would be {size} bytes; EC2 accepts at most {}",
                    user_data::USER_DATA_MAX_BYTES
                ),
            );
        }
        Ok(errors)
    }
}

/// An error and its causes on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

pub(crate) fn ami_missing(i: &InstanceAttrs) -> String {
    match &i.ami {
        Some(ami) => format!("image {ami} does not exist in region {}", i.region),
        None => format!("no available image of owner {} matches {:?} in region {}", i.ami_owner, i.ami_name, i.region),
    }
}

fn state_text(state: &Option<InstanceStateName>) -> String {
    state.as_ref().map(|s| s.as_str().to_owned()).unwrap_or_else(|| "gone".into())
}

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

fn tag_filter(key: &str, value: &str) -> Filter {
    Filter::builder().name(format!("tag:{key}")).values(value).build()
}

/// The tag filters selecting everything a scope owns.
fn scope_filters(scope: &Scope) -> Vec<Filter> {
    let mut out = vec![tag_filter(labels::CLIENT, scope.owner.client.as_str())];
    out.push(match &scope.owner.owner {
        Owner::Service(s) => tag_filter(labels::SERVICE, s.as_str()),
        Owner::Network(n) => tag_filter(labels::NETWORK, n.as_str()),
    });
    out
}

/// The ownership tags of a created resource, plus its `Name`, as (key, value) pairs for the
/// other services' tag types.
pub(crate) fn owner_tags(scope: &Scope, address: &Address, fingerprint: &str, name: &str) -> Vec<(String, String)> {
    let mut tags = vec![
        ("Name".to_owned(), name.to_owned()),
        (labels::CLIENT.to_owned(), scope.owner.client.to_string()),
        (labels::RESOURCE.to_owned(), address.to_string()),
        (labels::LINEAGE.to_owned(), scope.lineage.clone()),
        (labels::FINGERPRINT.to_owned(), fingerprint.to_owned()),
    ];
    tags.push(match &scope.owner.owner {
        Owner::Service(s) => (labels::SERVICE.to_owned(), s.to_string()),
        Owner::Network(n) => (labels::NETWORK.to_owned(), n.to_string()),
    });
    tags
}

/// Whether tags name the scope's client and service (or network).
pub(crate) fn scope_owns(scope: &Scope, tags: &HashMap<String, String>) -> bool {
    let owner = match &scope.owner.owner {
        Owner::Service(s) => tags.get(labels::SERVICE).is_some_and(|v| v == s.as_str()),
        Owner::Network(n) => tags.get(labels::NETWORK).is_some_and(|v| v == n.as_str()),
    };
    owner && tags.get(labels::CLIENT).is_some_and(|v| v == scope.owner.client.as_str())
}

/// The address and fingerprint tags name, if the address is of `kind`.
pub(crate) fn tagged_address(kind: ResourceKind, tags: &HashMap<String, String>) -> Option<(Address, Option<String>)> {
    let address: Address = tags.get(labels::RESOURCE)?.parse().ok()?;
    (address.kind == kind).then(|| (address, tags.get(labels::FINGERPRINT).cloned()))
}

/// The ownership tags of a created resource, plus its `Name`.
pub(crate) fn tag_spec(
    kind: ResourceType,
    scope: &Scope,
    address: &Address,
    fingerprint: &str,
    name: &str,
) -> TagSpecification {
    let mut tags = vec![
        tag("Name", name),
        tag(labels::CLIENT, scope.owner.client.as_str()),
        tag(labels::RESOURCE, &address.to_string()),
        tag(labels::LINEAGE, &scope.lineage),
        tag(labels::FINGERPRINT, fingerprint),
    ];
    tags.push(match &scope.owner.owner {
        Owner::Service(s) => tag(labels::SERVICE, s.as_str()),
        Owner::Network(n) => tag(labels::NETWORK, n.as_str()),
    });
    TagSpecification::builder().resource_type(kind).set_tags(Some(tags)).build()
}

fn tags_of(tags: &[Tag]) -> HashMap<&str, &str> {
    tags.iter().filter_map(|t| Some((t.key()?, t.value()?))).collect()
}

/// The address and fingerprint a resource's tags name, if it is of `kind`.
fn labelled(kind: ResourceKind, tags: &[Tag]) -> Option<(Address, Option<String>)> {
    let tags = tags_of(tags);
    let address: Address = tags.get(labels::RESOURCE)?.parse().ok()?;
    (address.kind == kind).then(|| (address, tags.get(labels::FINGERPRINT).map(|f| (*f).to_owned())))
}

/// One permission per rule (EC2 merges them).
fn permissions(rules: &[IngressRule]) -> Vec<IpPermission> {
    rules
        .iter()
        .map(|r| {
            let b = IpPermission::builder()
                .ip_protocol(r.protocol.as_str())
                .from_port(i32::from(r.port))
                .to_port(i32::from(r.port));
            if r.cidr.contains(':') {
                b.ipv6_ranges(Ipv6Range::builder().cidr_ipv6(&r.cidr).description("spawnit").build()).build()
            } else {
                b.ip_ranges(IpRange::builder().cidr_ip(&r.cidr).description("spawnit").build()).build()
            }
        })
        .collect()
}

/// A rule whose source is another group: protocol, port, source group id.
pub(crate) type GroupPair = (Protocol, u16, String);

/// The rules of a group as SpawnIt writes them (from CIDRs, from other groups), and the
/// permissions it never writes (port ranges, other protocols, prefix lists).
fn rules_of(permissions: &[IpPermission]) -> (BTreeSet<IngressRule>, BTreeSet<GroupPair>, Vec<IpPermission>) {
    let mut rules = BTreeSet::new();
    let mut pairs = BTreeSet::new();
    let mut odd = Vec::new();
    for p in permissions {
        let protocol = match p.ip_protocol() {
            Some("tcp" | "6") => Some(Protocol::Tcp),
            Some("udp" | "17") => Some(Protocol::Udp),
            _ => None,
        };
        let single = match (protocol, p.from_port(), p.to_port()) {
            (Some(protocol), Some(from), Some(to)) if from == to => {
                u16::try_from(from).ok().map(|port| (protocol, port))
            }
            _ => None,
        };
        match single {
            Some((protocol, port)) => {
                let cidrs = p.ip_ranges().iter().filter_map(|r| r.cidr_ip());
                let cidrs6 = p.ipv6_ranges().iter().filter_map(|r| r.cidr_ipv6());
                for cidr in cidrs.chain(cidrs6) {
                    rules.insert(IngressRule { protocol, port, cidr: cidr.to_owned() });
                }
                for g in p.user_id_group_pairs().iter().filter_map(|g| g.group_id()) {
                    pairs.insert((protocol, port, g.to_owned()));
                }
                if !p.prefix_list_ids().is_empty() {
                    odd.push(
                        IpPermission::builder()
                            .set_ip_protocol(p.ip_protocol().map(str::to_owned))
                            .set_from_port(p.from_port())
                            .set_to_port(p.to_port())
                            .set_prefix_list_ids(Some(p.prefix_list_ids().to_vec()))
                            .build(),
                    );
                }
            }
            None => odd.push(p.clone()),
        }
    }
    (rules, pairs, odd)
}

/// A group's rules as the planner compares them (see [`SecurityGroupAttrs::ingress_text`]): a
/// source group of the service is named by its address (`names`: group id → address).
fn ingress_fact(permissions: &[IpPermission], names: &HashMap<String, Address>) -> String {
    let (rules, pairs, odd) = rules_of(permissions);
    let pair_texts = pairs.iter().map(|(protocol, port, group)| match names.get(group) {
        Some(address) => GroupRule { protocol: *protocol, port: *port, group: address.clone() }.text(),
        None => format!("{}/{port} from {group}", protocol.as_str()),
    });
    let odd_texts = odd.iter().flat_map(|p| {
        let what = format!(
            "{}/{}-{}",
            p.ip_protocol().unwrap_or("?"),
            p.from_port().map(|n| n.to_string()).unwrap_or_else(|| "*".into()),
            p.to_port().map(|n| n.to_string()).unwrap_or_else(|| "*".into())
        );
        let mut sources: Vec<String> = p.ip_ranges().iter().filter_map(|r| r.cidr_ip().map(str::to_owned)).collect();
        sources.extend(p.ipv6_ranges().iter().filter_map(|r| r.cidr_ipv6().map(str::to_owned)));
        sources.extend(p.user_id_group_pairs().iter().filter_map(|g| g.group_id().map(str::to_owned)));
        sources.extend(p.prefix_list_ids().iter().filter_map(|l| l.prefix_list_id().map(str::to_owned)));
        sources.into_iter().map(move |s| format!("{what} from {s}")).collect::<Vec<_>>()
    });
    IngressRule::canonical_texts(rules.iter().map(IngressRule::text).chain(pair_texts).chain(odd_texts))
}

fn instance_outputs(i: &aws_sdk_ec2::types::Instance) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let strip = |k: &str| k.strip_prefix(facts::OUTPUT_PREFIX).unwrap_or(k).to_owned();
    for (key, value) in [
        (facts::PUBLIC_IP, i.public_ip_address()),
        (facts::PUBLIC_DNS, i.public_dns_name()),
        (facts::PRIVATE_IP, i.private_ip_address()),
    ] {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            out.insert(strip(key), v.to_owned());
        }
    }
    out
}

/// `region/id` → (region, id).
fn id_split(id: &str) -> Result<(&str, &str), AwsError> {
    id.split_once('/').filter(|(r, i)| !r.is_empty() && !i.is_empty()).ok_or_else(|| AwsError::BadId(id.to_owned()))
}

fn regions_of(desired: &[DesiredResource]) -> BTreeSet<&str> {
    desired.iter().filter_map(|r| region_of(&r.attrs)).collect()
}

/// The region of an AWS resource.
fn region_of(attrs: &ResourceAttrs) -> Option<&str> {
    Some(match attrs {
        ResourceAttrs::SecurityGroup(g) => &g.region,
        ResourceAttrs::Instance(i) => &i.region,
        ResourceAttrs::LaunchTemplate(t) => &t.instance.region,
        ResourceAttrs::AutoscalingGroup(g) => &g.region,
        ResourceAttrs::Alb(a) => &a.region,
        ResourceAttrs::TargetGroup(t) => &t.region,
        ResourceAttrs::Listener(l) => &l.region,
        ResourceAttrs::CacheSubnetGroup(g) => &g.region,
        ResourceAttrs::Cache(c) => &c.region,
        ResourceAttrs::EcsService(s) => &s.region,
        _ => return None,
    })
}

/// Whether a service's resources are a scalable stack (a load balancer in front), whose
/// load-balancer, auto-scaling and cache resources observation looks for.
fn scalable(desired: &[DesiredResource]) -> bool {
    desired.iter().any(|r| {
        matches!(
            r.address.kind,
            ResourceKind::Alb | ResourceKind::TargetGroup | ResourceKind::Listener | ResourceKind::AutoscalingGroup
        )
    })
}

fn op_error(action: &'static str, address: &Address, e: AwsError) -> ProviderError {
    ProviderError::Operation { action, address: address.clone(), source: Box::new(e) }
}

fn not_aws(action: &'static str, address: &Address) -> ProviderError {
    op_error(action, address, AwsError::Missing(format!("{} is not an AWS resource", address.kind.as_str())))
}

#[async_trait]
impl Provider for AwsProvider {
    async fn validate(&self, desired: &[DesiredResource]) -> Result<(), ProviderError> {
        let group_vpc = desired.iter().find_map(|r| match &r.attrs {
            ResourceAttrs::SecurityGroup(g) => Some(g.vpc_id.clone()),
            _ => None,
        });
        let mut errors = Vec::new();
        for r in desired {
            let i = match &r.attrs {
                ResourceAttrs::Instance(i) => i,
                ResourceAttrs::LaunchTemplate(t) => &t.instance,
                _ => continue,
            };
            let vpc = group_vpc.clone().flatten();
            let mut key = i.clone();
            key.containers.clear();
            let key = format!("{key:?}{vpc:?}{}", user_data::render(i).len() > user_data::USER_DATA_MAX_BYTES);
            if self.validated.lock().unwrap_or_else(|e| e.into_inner()).contains(&key) {
                continue;
            }
            let found = self.instance_check(i, vpc.as_deref()).await?;
            if found.is_empty() {
                self.validated.lock().unwrap_or_else(|e| e.into_inner()).insert(key);
            }
            errors.extend(found);
        }
        if errors.is_empty() { Ok(()) } else { Err(ProviderError::Invalid(ValidationError { errors })) }
    }

    async fn observe(
        &self,
        scope: &Scope,
        desired: &[DesiredResource],
    ) -> Result<Vec<ObservedResource>, ProviderError> {
        let mut out = Vec::new();
        for region in regions_of(desired) {
            let observe_error = |e: AwsError| ProviderError::Observe {
                what: format!("{} on AWS in {region}", scope.owner),
                source: Box::new(e),
            };
            let client = self.client(region);
            let groups = client
                .describe_security_groups()
                .set_filters(Some(scope_filters(scope)))
                .send()
                .await
                .map_err(|e| observe_error(AwsError::from_sdk("DescribeSecurityGroups", region, e)))?;
            // A rule from another group of the service is shown with that group's address.
            let names: HashMap<String, Address> = groups
                .security_groups()
                .iter()
                .filter_map(|g| Some((g.group_id()?.to_owned(), labelled(ResourceKind::SecurityGroup, g.tags())?.0)))
                .collect();
            for g in groups.security_groups() {
                let Some((address, fingerprint)) = labelled(ResourceKind::SecurityGroup, g.tags()) else { continue };
                let mut facts = BTreeMap::new();
                facts.insert(facts::INGRESS.to_owned(), ingress_fact(g.ip_permissions(), &names));
                out.push(ObservedResource {
                    address,
                    id: format!("{region}/{}", g.group_id().unwrap_or_default()),
                    liveness: Liveness::Present,
                    fingerprint,
                    facts,
                });
            }
            let mut filters = scope_filters(scope);
            filters.push(
                Filter::builder()
                    .name("instance-state-name")
                    .set_values(Some(["pending", "running", "stopping", "stopped"].map(String::from).to_vec()))
                    .build(),
            );
            let mut pages = client.describe_instances().set_filters(Some(filters)).into_paginator().send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| observe_error(AwsError::from_sdk("DescribeInstances", region, e)))?;
                for i in page.reservations().iter().flat_map(|r| r.instances()) {
                    let Some((address, fingerprint)) = labelled(ResourceKind::Instance, i.tags()) else { continue };
                    let state = i.state().and_then(|s| s.name());
                    let liveness = match state {
                        Some(InstanceStateName::Stopping | InstanceStateName::Stopped) => Liveness::Stopped,
                        _ => Liveness::Running,
                    };
                    let mut facts: BTreeMap<String, String> = instance_outputs(i)
                        .into_iter()
                        .map(|(k, v)| (format!("{}{k}", facts::OUTPUT_PREFIX), v))
                        .collect();
                    facts.insert("state".into(), state_text(&state.cloned()));
                    if let Some(t) = i.instance_type() {
                        facts.insert(facts::INSTANCE_TYPE.into(), t.as_str().to_owned());
                    }
                    out.push(ObservedResource {
                        address,
                        id: format!("{region}/{}", i.instance_id().unwrap_or_default()),
                        liveness,
                        fingerprint,
                        facts,
                    });
                }
            }
            if scalable(desired) {
                out.extend(self.elb_observe(scope, region).await.map_err(observe_error)?);
                out.extend(self.asg_observe(scope, region).await.map_err(observe_error)?);
                out.extend(self.cache_observe(scope, region).await.map_err(observe_error)?);
            }
        }
        let ecs = self
            .ecs_observe(scope, desired)
            .await
            .map_err(|e| ProviderError::Observe { what: format!("{} on AWS ECS", scope.owner), source: Box::new(e) })?;
        out.extend(ecs);
        Ok(out)
    }

    async fn create(
        &self,
        scope: &Scope,
        resource: &DesiredResource,
        fingerprint: &str,
        cancel: &CancellationToken,
    ) -> Result<Applied, ProviderError> {
        let address = &resource.address;
        let result = match &resource.attrs {
            ResourceAttrs::SecurityGroup(g) => self.group_create(scope, address, g, fingerprint).await,
            ResourceAttrs::Instance(i) => self.instance_create(scope, address, i, fingerprint, cancel).await,
            ResourceAttrs::Alb(a) => self.alb_create(scope, address, a, fingerprint).await,
            ResourceAttrs::TargetGroup(t) => self.target_group_create(scope, address, t, fingerprint).await,
            ResourceAttrs::Listener(l) => self.listener_create(scope, address, l, fingerprint).await,
            ResourceAttrs::CacheSubnetGroup(g) => self.cache_subnet_group_create(scope, address, g, fingerprint).await,
            ResourceAttrs::Cache(c) => self.cache_create(scope, address, c, fingerprint, cancel).await,
            ResourceAttrs::LaunchTemplate(t) => self.launch_template_create(scope, address, t, fingerprint).await,
            ResourceAttrs::AutoscalingGroup(g) => self.asg_create(scope, address, g, fingerprint).await,
            attrs if ecs::is_ecs_kind(address.kind) => self.ecs_create(scope, address, attrs, fingerprint).await,
            _ => return Err(not_aws("create", address)),
        };
        result.map_err(|e| op_error("create", address, e))
    }

    async fn update(
        &self,
        scope: &Scope,
        resource: &DesiredResource,
        id: &str,
        fingerprint: &str,
        cancel: &CancellationToken,
    ) -> Result<Applied, ProviderError> {
        let address = &resource.address;
        let (_, aws_id) = id_split(id).map_err(|e| op_error("update", address, e))?;
        let result = match &resource.attrs {
            ResourceAttrs::SecurityGroup(g) => self.group_update(scope, g, aws_id, fingerprint).await,
            ResourceAttrs::Instance(i) => self.instance_update(i, aws_id, fingerprint, cancel).await,
            ResourceAttrs::TargetGroup(t) => self.target_group_update(t, aws_id, fingerprint).await,
            ResourceAttrs::Listener(l) => self.listener_update(scope, l, aws_id, fingerprint).await,
            ResourceAttrs::LaunchTemplate(t) => self.launch_template_update(scope, t, aws_id, fingerprint).await,
            ResourceAttrs::AutoscalingGroup(g) => self.asg_update(scope, address, g, fingerprint).await,
            attrs if ecs::is_ecs_kind(address.kind) => self.ecs_update(scope, address, attrs, id, fingerprint).await,
            _ => return Err(not_aws("update", address)),
        };
        result.map_err(|e| op_error("update", address, e))
    }

    async fn delete(
        &self,
        _scope: &Scope,
        address: &Address,
        id: &str,
        cancel: &CancellationToken,
    ) -> Result<(), ProviderError> {
        let (region, aws_id) = id_split(id).map_err(|e| op_error("delete", address, e))?;
        let result = match address.kind {
            ResourceKind::Instance => self.instance_delete(region, aws_id, cancel).await,
            ResourceKind::SecurityGroup => self.group_delete(region, aws_id, cancel).await,
            ResourceKind::Alb => self.alb_delete(region, aws_id).await,
            ResourceKind::TargetGroup => self.target_group_delete(region, aws_id, cancel).await,
            ResourceKind::Listener => self.listener_delete(region, aws_id).await,
            ResourceKind::CacheSubnetGroup => self.cache_subnet_group_delete(region, aws_id, cancel).await,
            ResourceKind::Cache => self.cache_delete(region, aws_id).await,
            ResourceKind::LaunchTemplate => self.launch_template_delete(region, aws_id).await,
            ResourceKind::AutoscalingGroup => self.asg_delete(region, aws_id, cancel).await,
            kind if ecs::is_ecs_kind(kind) => self.ecs_delete(kind, region, aws_id, cancel).await,
            _ => return Err(not_aws("delete", address)),
        };
        result.map_err(|e| op_error("delete", address, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_read_back_as_written_and_odd_ones_are_shown() {
        let rules = vec![
            IngressRule { protocol: Protocol::Tcp, port: 6379, cidr: "10.0.0.0/8".into() },
            IngressRule { protocol: Protocol::Udp, port: 25565, cidr: "2001:db8::/32".into() },
        ];
        let mut written = permissions(&rules);
        let names = HashMap::new();
        assert_eq!(ingress_fact(&written, &names), IngressRule::canonical(&rules));
        written.push(
            IpPermission::builder()
                .ip_protocol("-1")
                .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
                .build(),
        );
        let (found, pairs, odd) = rules_of(&written);
        assert_eq!(found.len(), 2);
        assert!(pairs.is_empty());
        assert_eq!(odd.len(), 1);
        let fact = ingress_fact(&written, &names);
        assert!(fact.contains("-1/*-* from 0.0.0.0/0"), "{fact}");
        written.push(
            IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(80)
                .to_port(80)
                .user_id_group_pairs(UserIdGroupPair::builder().group_id("sg-0lb").build())
                .build(),
        );
        let names = HashMap::from([("sg-0lb".to_owned(), Address::new(ResourceKind::SecurityGroup, "lb"))]);
        assert!(ingress_fact(&written, &names).contains("tcp/80 from security_group.lb"));
    }

    #[test]
    fn ids_carry_their_region() {
        assert_eq!(id_split("eu-west-3/i-0abc").unwrap(), ("eu-west-3", "i-0abc"));
        assert!(id_split("i-0abc").is_err());
    }
}
