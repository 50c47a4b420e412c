//! Shared helpers of the AWS provider's tests: a real EC2 API (`moto_server`) on a free
//! loopback port, an engine over a local store in a temporary directory with the AWS provider
//! pointed at it, and SDK look-ups of what really exists there. A missing `moto_server` fails
//! the test: it is never skipped.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::Filter;
use spawnit_aws::{AwsOptions, AwsProvider};
use spawnit_engine::{Engine, EngineError, EventSink, ExecutionReport, Providers, RunOptions, ServiceCreate};
use spawnit_model::spec::AwsSettings;
use spawnit_model::{Exposure, Id, JobEvent, ProviderKind, ServiceSpec};
use spawnit_store::Store;

pub const REGION: &str = "us-east-1";

/// `moto_server` on a free loopback port, killed when dropped.
pub struct Moto {
    child: Child,
    pub port: u16,
}

impl Moto {
    pub fn start() -> Moto {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free loopback port").port();
        let child = Command::new("moto_server")
            // AWS managed policies (AmazonECSTaskExecutionRolePolicy…) exist only when loaded.
            .env("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start moto_server ({e}): the AWS tests need it; run scripts/test.sh, which installs moto[server]")
            });
        let mut moto = Moto { child, port };
        let started = Instant::now();
        loop {
            if let Some(status) = moto.child.try_wait().expect("check moto_server") {
                panic!("moto_server exited at start ({status}); run scripts/test.sh to install moto[server]");
            }
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
                let _ = s.write_all(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
                let mut answer = String::new();
                if s.read_to_string(&mut answer).is_ok() && answer.starts_with("HTTP/") {
                    return moto;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "moto_server did not answer on port {port} within 60 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One test's world: its own EC2 emulator, store and client.
pub struct World {
    pub moto: Moto,
    pub dir: tempfile::TempDir,
    pub aws: Arc<AwsProvider>,
    pub engine: Engine,
    pub client: Id,
}

pub fn options(moto: &Moto) -> AwsOptions {
    AwsOptions {
        endpoint: Some(moto.endpoint()),
        static_keys: Some(("testing".into(), "testing".into())),
        wait_timeout: Duration::from_secs(60),
        poll_interval: Duration::from_millis(100),
        ..AwsOptions::default()
    }
}

impl World {
    pub async fn new() -> World {
        let moto = Moto::start();
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open_local(dir.path()).expect("local store");
        let aws = Arc::new(AwsProvider::new(options(&moto)).await);
        let providers = Providers::default()
            .with(ProviderKind::Aws, aws.clone())
            .with(ProviderKind::AwsAsg, aws.clone())
            .with(ProviderKind::AwsEcs, aws.clone());
        let engine = Engine::open(store, providers).await.expect("engine");
        World { moto, dir, aws, engine, client: id("acme") }
    }

    /// Settings every test starts from: the emulator's region, ports open to 10.0.0.0/8.
    pub fn settings(&self) -> AwsSettings {
        let mut aws = AwsSettings::new(REGION);
        aws.allowed_cidrs = vec!["10.0.0.0/8".into()];
        aws
    }

    pub async fn create(
        &self,
        template: &str,
        service: &str,
        aws: AwsSettings,
        params: &[(&str, &str)],
    ) -> Result<ServiceSpec, EngineError> {
        self.create_on(ProviderKind::Aws, template, service, aws, params).await
    }

    /// Like [`create`](Self::create), on `provider` (`aws`, `aws-asg`, `aws-ecs`).
    pub async fn create_on(
        &self,
        provider: ProviderKind,
        template: &str,
        service: &str,
        aws: AwsSettings,
        params: &[(&str, &str)],
    ) -> Result<ServiceSpec, EngineError> {
        self.engine
            .service_create(ServiceCreate {
                client: self.client.clone(),
                name: id(service),
                template: id(template),
                network: id("default"),
                exposure: Exposure::Loopback,
                provider,
                params: params.iter().map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string()))).collect(),
                aws: Some(aws),
                swarm: None,
            })
            .await
    }

    /// Applies, returning the report and every event.
    pub async fn apply(&self, service: &str) -> (ExecutionReport, Vec<JobEvent>) {
        let (events, sink) = collector();
        let report = self
            .engine
            .service_apply(&self.client, &id(service), &RunOptions::new(uuid::Uuid::new_v4().to_string(), sink))
            .await
            .expect("apply runs");
        let events = events.lock().unwrap().clone();
        (report, events)
    }

    pub async fn destroy(&self, service: &str) -> ExecutionReport {
        let (_, sink) = collector();
        self.engine
            .service_destroy(&self.client, &id(service), &RunOptions::new(uuid::Uuid::new_v4().to_string(), sink))
            .await
            .expect("destroy runs")
    }

    pub fn ec2(&self) -> Client {
        self.aws.client(REGION)
    }

    fn filters(&self, service: Option<&str>) -> Vec<Filter> {
        let mut filters = vec![Filter::builder().name("tag:spawnit.client").values(self.client.as_str()).build()];
        if let Some(s) = service {
            filters.push(Filter::builder().name("tag:spawnit.service").values(s).build());
        }
        filters
    }

    /// Instances carrying the client's (and the service's) tags that are not terminated or
    /// shutting down: (id, state).
    pub async fn instances(&self, service: Option<&str>) -> Vec<aws_sdk_ec2::types::Instance> {
        let out =
            self.ec2().describe_instances().set_filters(Some(self.filters(service))).send().await.expect("describe");
        out.reservations()
            .iter()
            .flat_map(|r| r.instances())
            .filter(|i| {
                !matches!(
                    i.state().and_then(|s| s.name()),
                    Some(
                        aws_sdk_ec2::types::InstanceStateName::Terminated
                            | aws_sdk_ec2::types::InstanceStateName::ShuttingDown
                    )
                )
            })
            .cloned()
            .collect()
    }

    pub async fn groups(&self, service: Option<&str>) -> Vec<aws_sdk_ec2::types::SecurityGroup> {
        let out = self
            .ec2()
            .describe_security_groups()
            .set_filters(Some(self.filters(service)))
            .send()
            .await
            .expect("describe");
        out.security_groups().to_vec()
    }

    /// The ingress of a group as (protocol, port, cidr), sorted.
    pub async fn ingress(&self, service: &str) -> Vec<(String, i32, String)> {
        let groups = self.groups(Some(service)).await;
        assert_eq!(groups.len(), 1, "one security group for {service}");
        let mut out = Vec::new();
        for p in groups[0].ip_permissions() {
            for r in p.ip_ranges() {
                out.push((
                    p.ip_protocol().unwrap_or_default().to_owned(),
                    p.from_port().unwrap_or_default(),
                    r.cidr_ip().unwrap_or_default().to_owned(),
                ));
            }
        }
        out.sort();
        out
    }

    /// The decoded user_data of an instance, read back from EC2.
    pub async fn user_data(&self, instance: &str) -> String {
        use base64::Engine as _;
        let out = self
            .ec2()
            .describe_instance_attribute()
            .instance_id(instance)
            .attribute(aws_sdk_ec2::types::InstanceAttributeName::UserData)
            .send()
            .await
            .expect("describe user data");
        let encoded = out.user_data().and_then(|v| v.value()).unwrap_or_default();
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(encoded).expect("base64")).expect("utf-8")
    }
}

pub fn id(s: &str) -> Id {
    Id::parse(s).expect("valid id")
}

pub fn collector() -> (Arc<Mutex<Vec<JobEvent>>>, EventSink) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink: EventSink = {
        let events = events.clone();
        Arc::new(move |e| events.lock().unwrap().push(e))
    };
    (events, sink)
}
