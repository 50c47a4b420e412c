//! `spawnit`: the one binary. Parses the command line, opens the store and the Docker provider,
//! and runs one engine operation, printing progress and results. Exit codes follow Terraform:
//! 0 success, 1 error, 2 "changes needed" with `plan --detailed-exitcode`.

mod cli;
mod cluster_args;
mod nodes;
mod output;
mod swarm_cli;

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Parser;
use serde_json::{Value, json};
#[cfg(feature = "aws")]
use spawnit_aws::{AwsOptions, AwsProvider};
use spawnit_docker::DockerProvider;
use spawnit_engine::{
    Engine, EngineError, EventSink, Providers, RunOptions, ServiceCreate, masked_error, redacted_plan,
};
use spawnit_model::plan::{Plan, PlanStatus};
use spawnit_model::spec::AwsSettings;
use spawnit_model::{Exposure, Id, OperationOutcome, OwnerKey, ProviderKind, Redactor};
use spawnit_store::{Store, StoreLocation};

use crate::cli::{
    AwsArgs, AwsCreateArgs, Cli, Command, LockArgs, NetworkCommand, Output, ProviderArg, ServeArgs, StoreArgs,
    TokenCommand, UserCommand,
};
use spawnit_server::accounts::Role;

fn main() -> ExitCode {
    // Whatever SPAWNIT_LOG asks, crates that log request bodies (with secrets) stay quiet.
    let filter = spawnit_server::LOG_QUIET
        .iter()
        .filter_map(|d| d.parse().ok())
        .fold(tracing_subscriber::EnvFilter::from_env("SPAWNIT_LOG"), |f, d| f.add_directive(d));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            error_print(&e);
            ExitCode::from(1)
        }
    }
}

fn error_print(e: &anyhow::Error) {
    if let Some(EngineError::Invalid(v)) = e.downcast_ref::<EngineError>() {
        eprintln!("Error: invalid input, nothing was changed:");
        for f in &v.errors {
            eprintln!("  {}: {}", f.field, f.reason);
        }
        return;
    }
    eprintln!("Error: {e:#}");
}

async fn store_open(args: &StoreArgs) -> Result<Store> {
    // An empty SPAWNIT_STORE or SPAWNIT_S3_ENDPOINT (a container's environment always sets
    // them, e.g. the `spawnit` template's on AWS S3) means none.
    let location = match args.store.as_deref().filter(|s| !s.trim().is_empty()) {
        Some(url) => StoreLocation::parse(url)?,
        None => StoreLocation::parse(&args.data_dir.to_string_lossy())?,
    };
    let endpoint = args.s3_endpoint.clone().filter(|e| !e.trim().is_empty());
    let store = Store::open(&location, endpoint)?.with_timeout(args.store_timeout);
    // Migrates an older store once; a newer one comes back read-only, saying why.
    let (store, _outcome) = store.format_open().await.context("checking the store's format")?;
    Ok(store)
}

async fn engine_open(args: &StoreArgs, aws: &AwsArgs, swarm: &swarm_cli::SwarmArgs) -> Result<Engine> {
    let store = store_open(args).await?;
    let docker = DockerProvider::connect().await?;
    let mut providers =
        Providers::default().with(ProviderKind::Docker, Arc::new(docker)).with_swarm_defaults(swarm.settings());
    #[cfg(feature = "aws")]
    {
        // One AWS provider for the three AWS targets: it knows every AWS resource kind.
        let aws: Arc<AwsProvider> = Arc::new(aws_provider(aws).await);
        providers = providers
            .with(ProviderKind::Aws, aws.clone())
            .with(ProviderKind::AwsAsg, aws.clone())
            .with(ProviderKind::AwsEcs, aws);
    }
    #[cfg(not(feature = "aws"))]
    let _ = aws;
    if let Some(host) = &swarm.swarm_host {
        // Connects on first use: a manager that is down fails only what needs it.
        let provider = spawnit_docker::SwarmProvider::new(host, swarm.swarm_tls_dir.as_deref())?;
        providers = providers.with(ProviderKind::Swarm, Arc::new(provider));
    }
    Ok(Engine::open(store, providers).await?)
}

/// The AWS provider on the standard configuration chain; makes no request until used.
#[cfg(feature = "aws")]
async fn aws_provider(aws: &AwsArgs) -> AwsProvider {
    let options =
        AwsOptions { endpoint: aws.aws_endpoint.clone(), profile: aws.aws_profile.clone(), ..AwsOptions::default() };
    AwsProvider::new(options).await
}

/// The AWS settings of a new service from the flags; the region defaults to the chain's.
async fn aws_settings(args: AwsCreateArgs, aws: &AwsArgs) -> AwsSettings {
    let region = match args.aws_region {
        Some(r) => r,
        #[cfg(feature = "aws")]
        None => aws_provider(aws).await.default_region().unwrap_or_default(),
        #[cfg(not(feature = "aws"))]
        None => {
            let _ = aws;
            String::new()
        }
    };
    let mut s = AwsSettings::new(region);
    if let Some(t) = args.aws_instance_type {
        s.instance_type = t;
    }
    s.ami = args.aws_ami;
    if let Some(o) = args.aws_ami_owner {
        s.ami_owner = o;
    }
    if let Some(n) = args.aws_ami_name {
        s.ami_name = n;
    }
    s.key_name = args.aws_key_name;
    s.subnet_id = args.aws_subnet;
    s.vpc_id = args.aws_vpc;
    s.allowed_cidrs = args.aws_allow;
    s.ssh_cidrs = args.aws_ssh;
    if let Some(cpu) = args.aws_task_cpu {
        s.task_cpu = cpu;
    }
    if let Some(memory) = args.aws_task_memory {
        s.task_memory_mb = memory;
    }
    s
}

fn print_json(value: &Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

async fn run(cli: Cli) -> Result<u8> {
    if let Command::Healthcheck { url, timeout } = &cli.command {
        return healthcheck(url.as_deref(), *timeout).await;
    }
    let engine = engine_open(&cli.store, &cli.aws, &cli.swarm).await?;
    if let Some(reason) = engine.store().read_only_reason()
        && cli.command.writes()
    {
        anyhow::bail!("{reason}");
    }
    match cli.command {
        // Answered above, before the store and Docker are opened.
        Command::Healthcheck { url, timeout } => return healthcheck(url.as_deref(), timeout).await,
        Command::Serve(args) => serve(engine, args, &cli.swarm).await?,
        Command::Token(TokenCommand::Create { user, client, admin }) => {
            let (token, record) =
                spawnit_server::auth::token_create_for_user(engine.store(), &user, client.as_ref(), admin).await?;
            eprintln!("Token for user {user} of client {} ({:?}); it is shown only now:", record.client, record.role);
            println!("{token}");
        }
        Command::User(UserCommand::Create { name, client, admin, password, email }) => {
            let role = if admin { Role::Admin } else { Role::Member };
            let generated = password.is_none();
            let password = password.unwrap_or_else(|| spawnit_server::accounts::random_token(20));
            let store = engine.store();
            spawnit_server::accounts::user_create_with_email(
                store,
                &name,
                &client,
                role,
                Some(&password),
                None,
                email.as_deref(),
            )
            .await?;
            eprintln!("User {name} of client {client} ({role:?}) created.");
            if generated {
                eprintln!("Its generated password is shown only now:");
                println!("{password}");
            }
        }
        Command::Catalog { template: Some(id), output } => {
            let t = engine.template(&id).await?;
            match output {
                Output::Json => print_json(&serde_json::to_value(&t)?)?,
                Output::Text => print!("{}", output::template_text(&t)),
            }
        }
        Command::Catalog { template: None, output } => {
            let catalog = engine.store().catalog().await?;
            match output {
                Output::Json => print_json(&serde_json::to_value(&catalog)?)?,
                Output::Text => print!("{}", output::catalog_text(&catalog)),
            }
        }
        Command::Create { template, service, client, network, set, public, provider, aws, output } => {
            let params: BTreeMap<String, Value> = set.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
            let given: Vec<String> =
                params.iter().filter(|(_, v)| v.as_str() != Some("")).map(|(k, _)| k.clone()).collect();
            let exposure = if public { Exposure::Public } else { Exposure::Loopback };
            let (provider, aws) = match provider {
                ProviderArg::Docker | ProviderArg::Swarm if aws.any() => {
                    anyhow::bail!("the --aws-* options need --provider aws, aws-asg or aws-ecs")
                }
                ProviderArg::Docker => (ProviderKind::Docker, None),
                ProviderArg::Swarm => (ProviderKind::Swarm, None),
                ProviderArg::Aws => (ProviderKind::Aws, Some(aws_settings(*aws, &cli.aws).await)),
                ProviderArg::AwsAsg => (ProviderKind::AwsAsg, Some(aws_settings(*aws, &cli.aws).await)),
                ProviderArg::AwsEcs => (ProviderKind::AwsEcs, Some(aws_settings(*aws, &cli.aws).await)),
            };
            let spec = engine
                .service_create(ServiceCreate {
                    client: client.client,
                    name: service,
                    template,
                    network,
                    exposure,
                    provider,
                    params,
                    aws,
                    swarm: (provider == ProviderKind::Swarm).then(|| cli.swarm.settings()),
                })
                .await?;
            let redactor = Redactor::for_spec(&spec);
            match output {
                Output::Json => print_json(&redactor.to_json(&spec))?,
                Output::Text => {
                    println!(
                        "Created service {}/{} from template {} {}.",
                        spec.client, spec.name, spec.template.id, spec.template.version
                    );
                    let mut chosen: Vec<String> = engine
                        .template(&spec.template.id)
                        .await?
                        .host_port_params()
                        .into_iter()
                        .map(|p| p.parameter)
                        .filter(|p| !given.contains(p))
                        .collect();
                    chosen.sort();
                    chosen.dedup();
                    if spec.provider == ProviderKind::Docker {
                        for parameter in &chosen {
                            let port = spec.params.get(parameter).map(Value::to_string).unwrap_or_default();
                            println!("Port {parameter}: {port} (a free port chosen by SpawnIt).");
                        }
                    }
                    println!(
                        "Next: `spawnit plan {}` to see what apply will do, `spawnit apply {}` to deploy it.",
                        spec.name, spec.name
                    );
                }
            }
        }
        Command::Update { service, client, set, public } => {
            let params = set.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
            let exposure = public.map(|p| if p { Exposure::Public } else { Exposure::Loopback });
            engine.service_update(&client.client, &service, &params, exposure).await?;
            println!("Updated service {}/{service}. Run `spawnit plan {service}` to see the changes.", client.client);
        }
        Command::Scale { service, replicas, container, client } => {
            let (spec, from) = engine.service_scale(&client.client, &service, container.as_deref(), replicas).await?;
            let container = container.unwrap_or_else(|| {
                spec.instance
                    .containers
                    .iter()
                    .find(|(_, c)| c.replicated())
                    .map(|(n, _)| n.clone())
                    .unwrap_or_default()
            });
            println!(
                "Scaled {container} of service {}/{service}: {from} → {replicas} replicas. Run `spawnit plan {service}` to see the changes, `spawnit apply {service}` to make them.",
                client.client
            );
        }
        Command::Plan { service, client, detailed_exitcode, output } => {
            let planned = engine.service_plan(&client.client, &service).await?;
            let code = plan_print(&planned.plan, output, detailed_exitcode, &planned.redactor)?;
            if output == Output::Text
                && let Some(network) = engine.service_network_unready(&client.client, &service).await?
            {
                println!(
                    "`spawnit apply {service}` applies network {network} first (or `spawnit network apply {network}` alone)."
                );
            }
            return Ok(code);
        }
        Command::Apply { service, client, auto_approve, lock } => {
            if let Some(code) = network_first(&engine, &client.client, &service, auto_approve, &lock).await? {
                return Ok(code);
            }
            let planned = engine.service_plan(&client.client, &service).await?;
            let redactor = planned.redactor.clone();
            let plan = redacted_plan(&planned.plan, &redactor);
            print!("{}", redactor.text(&output::plan_text(&plan)));
            if plan.status == PlanStatus::Error {
                return Ok(1);
            }
            if plan.status == PlanStatus::Drifted && !confirm(auto_approve, "apply")? {
                println!("Apply cancelled.");
                return Ok(1);
            }
            let report = operation_run(&lock, Some(planned.plan), &redactor, |run| {
                let (engine, client, service) = (engine.clone(), client.client.clone(), service.clone());
                async move { engine.service_apply(&client, &service, &run).await }
            })
            .await?;
            let spec = engine.service_spec(&client.client, &service).await?;
            let state = engine.service_state(&client.client, &service).await?;
            let endpoints = spec.endpoints_deployed(state.as_ref());
            if report == OperationOutcome::Succeeded && !endpoints.is_empty() {
                print!("{}", redactor.text(&format!("\nEndpoints:\n{}", output::endpoints_text(&endpoints))));
            }
            return Ok(outcome_code(report));
        }
        Command::Destroy { service, client, auto_approve, lock } => {
            let redactor = Redactor::for_spec(&engine.service_spec(&client.client, &service).await?);
            let plan = engine.service_destroy_plan(&client.client, &service).await?;
            return destroy_flow(plan, &redactor, auto_approve, &lock, |run| {
                let (engine, client, service) = (engine.clone(), client.client.clone(), service.clone());
                async move { engine.service_destroy(&client, &service, &run).await }
            })
            .await;
        }
        Command::Delete { service, client } => {
            engine.service_delete(&client.client, &service).await?;
            println!("Deleted service {}/{service} (spec and state).", client.client);
        }
        Command::Show { service, client, output } => show(&engine, &client.client, &service, output).await?,
        Command::Status { client, output } => return status(&engine, &client.client, output).await,
        Command::Graph { service, client } => {
            let spec = engine.service_spec(&client.client, &service).await?;
            let resources = spawnit_engine::service_resources(&spec);
            let containers: Vec<_> = resources
                .iter()
                .filter(|r| r.address.kind == spawnit_model::ResourceKind::Container)
                .map(|r| r.address.clone())
                .collect();
            let external = vec![(format!("network.{} (network layer)", spec.network), containers)];
            print!(
                "{}",
                spawnit_engine::to_dot(&OwnerKey::service(&client.client, &service).to_string(), &resources, &external)
            );
        }
        Command::Network(cmd) => return network(&engine, cmd).await,
        Command::Node(cmd) => return nodes::run(&cli.swarm, engine.store().clone(), cmd).await,
    }
    Ok(0)
}

/// Prints a plan with the secrets of `redactor` masked: structurally in JSON, everywhere in text.
fn plan_print(plan: &Plan, output: Output, detailed_exitcode: bool, redactor: &Redactor) -> Result<u8> {
    let shown = redactor.plan(plan);
    match output {
        Output::Json => print_json(&serde_json::to_value(&shown)?)?,
        Output::Text => print!("{}", redactor.text(&output::plan_text(&shown))),
    }
    Ok(match plan.status {
        PlanStatus::Error => 1,
        PlanStatus::Drifted if detailed_exitcode => 2,
        _ => 0,
    })
}

/// Asks on a terminal; refuses when input is not a terminal and `--auto-approve` is absent.
fn confirm(auto_approve: bool, what: &str) -> Result<bool> {
    if auto_approve {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        anyhow::bail!("input is not a terminal: pass --auto-approve to {what} without asking");
    }
    print!("\nDo you want to {what}? Only 'yes' will be accepted: ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(answer.trim() == "yes")
}

/// Shows a destroy plan, asks, and runs it: the flow `destroy` and `network destroy` share.
async fn destroy_flow<F, Fut>(
    plan: Plan,
    redactor: &Redactor,
    auto_approve: bool,
    lock: &LockArgs,
    start: F,
) -> Result<u8>
where
    F: FnOnce(RunOptions) -> Fut,
    Fut: std::future::Future<Output = Result<spawnit_engine::ExecutionReport, EngineError>> + Send + 'static,
{
    print!("{}", redactor.text(&output::plan_text(&redactor.plan(&plan))));
    if plan.changes.is_empty() {
        println!("Nothing to destroy.");
        return Ok(0);
    }
    if !confirm(auto_approve, "destroy")? {
        println!("Destroy cancelled.");
        return Ok(1);
    }
    Ok(outcome_code(operation_run(lock, Some(plan), redactor, start).await?))
}

fn outcome_code(outcome: OperationOutcome) -> u8 {
    if outcome == OperationOutcome::Succeeded { 0 } else { 1 }
}

/// Runs an apply or destroy: prints events as they come, cancels cleanly on Ctrl-C.
async fn operation_run<F, Fut>(
    lock: &LockArgs,
    approved: Option<Plan>,
    redactor: &Redactor,
    start: F,
) -> Result<OperationOutcome>
where
    F: FnOnce(RunOptions) -> Fut,
    Fut: std::future::Future<Output = Result<spawnit_engine::ExecutionReport, EngineError>> + Send + 'static,
{
    let events: EventSink = {
        let redactor = redactor.clone();
        Arc::new(move |event| {
            if let Some(line) = output::event_text(&redactor.event(&event)) {
                println!("{}", redactor.text(&line));
            }
        })
    };
    let mut run = RunOptions::new(uuid::Uuid::new_v4().to_string(), events);
    run.lock_wait = lock.lock_timeout;
    run.approved = approved;
    let cancel = run.cancel.clone();
    println!();
    let mut task = tokio::spawn(start(run));
    let report = tokio::select! {
        r = &mut task => r,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("\nInterrupt received: stopping after the running operations (Ctrl-C again to quit at once)...");
            cancel.cancel();
            tokio::select! {
                r = &mut task => r,
                _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted twice: quit without waiting; the next apply adopts what was created"),
            }
        }
    };
    let report = report.context("the operation's task failed")?.map_err(|e| masked_error(e, redactor))?;
    for e in &report.errors {
        eprintln!("Error: {}", redactor.text(e));
    }
    Ok(report.outcome)
}

/// Shows a service; everything shown passes through its redactor.
async fn show(engine: &Engine, client: &Id, service: &Id, output: Output) -> Result<()> {
    use std::fmt::Write as _;
    let spec = engine.service_spec(client, service).await?;
    let redactor = Redactor::for_spec(&spec);
    let state = engine.service_state(client, service).await?;
    let planned = engine.service_plan(client, service).await;
    let (status, reasons) = match &planned {
        Ok(p) => (p.plan.status.to_string(), plan_reasons(&redacted_plan(&p.plan, &redactor))),
        Err(e) => ("error".to_owned(), vec![redactor.text(&e.to_string())]),
    };
    let endpoints = spec.endpoints_deployed(state.as_ref());
    let tasks = planned.as_ref().map(|p| swarm_tasks(&p.plan)).unwrap_or_default();
    match output {
        Output::Json => print_json(&redactor.json(&json!({
            "spec": spec,
            "state": state,
            "status": status,
            "reasons": reasons,
            "endpoints": endpoints,
            "tasks": tasks,
        })))?,
        Output::Text => {
            let mut out = String::new();
            let _ =
                writeln!(out, "Service {}/{} ({} {})", spec.client, spec.name, spec.template.id, spec.template.version);
            let _ = writeln!(out, "Status:  {status}");
            for r in &reasons {
                let _ = writeln!(out, "  {r}");
            }
            match &spec.aws {
                Some(aws) if spec.provider == ProviderKind::AwsEcs => {
                    let cidrs = spawnit_engine::aws_allowed_cidrs(&spec, aws);
                    let _ = writeln!(
                        out,
                        "Provider: aws-ecs (Fargate tasks of {} CPU units / {} MiB in {}, ports open to {})",
                        aws.task_cpu,
                        aws.task_memory_mb,
                        aws.region,
                        if cidrs.is_empty() { "nobody".to_owned() } else { cidrs.join(", ") }
                    );
                    for (address, t) in &tasks {
                        let _ = writeln!(out, "Tasks:   ecs_service.{address}: {}", t["tasks"].as_str().unwrap_or("-"));
                    }
                }
                Some(aws) => {
                    let _ = writeln!(
                        out,
                        "Provider: {} ({} in {}, ports open to {})",
                        spec.provider,
                        aws.instance_type,
                        aws.region,
                        {
                            let cidrs = spawnit_engine::aws_allowed_cidrs(&spec, aws);
                            if cidrs.is_empty() { "nobody".to_owned() } else { cidrs.join(", ") }
                        }
                    );
                    if let Some(dns) = spec.alb_host(state.as_ref()) {
                        let _ = writeln!(out, "Load balancer: {dns}");
                    }
                    let outputs = state.as_ref().and_then(|s| {
                        s.resources.iter().find(|(a, _)| a.kind == spawnit_model::ResourceKind::Instance)
                    });
                    if let Some((_, instance)) = outputs {
                        let get = |k: &str| instance.outputs.get(k).map(String::as_str).unwrap_or("-");
                        let _ =
                            writeln!(out, "Instance: public IP {}, public DNS {}", get("public_ip"), get("public_dns"));
                    }
                }
                None if spec.provider == ProviderKind::Swarm => {
                    let mode = spec.swarm.as_ref().map(|s| s.publish_mode.as_str()).unwrap_or("ingress");
                    let _ = writeln!(
                        out,
                        "Provider: swarm (overlay network {}, ports published in {mode} mode on the nodes)",
                        spec.network
                    );
                    for (address, t) in &tasks {
                        let _ = write!(out, "Tasks:   {address}: {}", t["tasks"].as_str().unwrap_or("-"));
                        match t["unplaced"].as_str() {
                            Some(why) => {
                                let _ = writeln!(out, " (cannot be placed: {why})");
                            }
                            None => {
                                let _ = writeln!(out);
                            }
                        }
                    }
                }
                None => {
                    let _ = writeln!(out, "Network: {} (ports on {})", spec.network, spec.exposure.host_ip());
                }
            }
            let _ = writeln!(out, "Parameters:");
            let params: BTreeMap<_, _> = spec.params.iter().collect();
            for (k, v) in params {
                let shown =
                    if spec.secret_params.contains(k) { spawnit_model::redact::MASK.to_owned() } else { v.to_string() };
                let _ = writeln!(out, "  {k} = {shown}");
            }
            for (name, c) in spec.instance.containers.iter().filter(|(_, c)| c.replicated()) {
                let policy = c.scale.as_ref().map_or(String::new(), |s| {
                    format!(", autoscaled {}–{} at {}% CPU", s.min, s.max, s.target_cpu_percent)
                });
                let _ = writeln!(out, "Replicas: {name} × {}{policy}", c.replica_count());
            }
            if let Some(lb) = &spec.instance.load_balancer {
                let sticky = if lb.sticky { "sticky sessions" } else { "round robin" };
                let _ = writeln!(
                    out,
                    "Load balancer: {} on port {} → {}:{} ({sticky}, health {})",
                    lb.image, lb.host, lb.container, lb.port, lb.health_path
                );
            }
            let _ = writeln!(out, "Resources:");
            match &state {
                Some(s) if !s.resources.is_empty() => {
                    for (address, r) in &s.resources {
                        let docker_id = r.id.len() == 64 && r.id.bytes().all(|b| b.is_ascii_hexdigit());
                        let id = if docker_id { &r.id[..12] } else { &r.id };
                        let _ = writeln!(out, "  {:<24} {id}", address.to_string());
                    }
                }
                _ => {
                    let _ = writeln!(out, "  (none deployed)");
                }
            }
            if !endpoints.is_empty() {
                let _ = write!(out, "Endpoints:\n{}", output::endpoints_text(&endpoints));
            }
            print!("{}", redactor.text(&out));
        }
    }
    Ok(())
}

/// The tasks of a swarm service's Swarm services as the plan observed them: running against
/// desired replicas, and why pending tasks cannot be placed.
fn swarm_tasks(plan: &Plan) -> serde_json::Map<String, Value> {
    plan.changes
        .iter()
        .filter(|c| {
            matches!(
                c.address.kind,
                spawnit_model::ResourceKind::SwarmService | spawnit_model::ResourceKind::EcsService
            ) && c.action != spawnit_model::plan::Action::Delete
        })
        .filter_map(|c| {
            let tasks = c.outputs.get("tasks")?;
            let mut v = json!({ "tasks": tasks });
            if let Some(why) = c.outputs.get("unplaced") {
                v["unplaced"] = json!(why);
            }
            Some((c.address.name.clone(), v))
        })
        .collect()
}

fn plan_reasons(plan: &Plan) -> Vec<String> {
    if plan.status == PlanStatus::Error {
        return plan.errors.clone();
    }
    plan.actions().map(|c| format!("{} {}: {}", c.action, c.address, c.reasons.join("; "))).collect()
}

async fn status(engine: &Engine, client: &Id, output: Output) -> Result<u8> {
    let mut rows = Vec::new();
    for service in engine.service_list(client).await? {
        let spec = match engine.service_spec(client, &service).await {
            Ok(spec) => spec,
            // One unreadable spec is that row's error; the other services are still listed.
            Err(e @ EngineError::Store(spawnit_store::StoreError::Corrupt { .. })) => {
                rows.push(json!({"service": service, "template": "?", "status": "error", "reasons": [e.to_string()]}));
                continue;
            }
            Err(EngineError::NotFound { .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        let redactor = Redactor::for_spec(&spec);
        let (status, reasons, tasks) = match engine.service_plan(client, &service).await {
            Ok(p) => {
                (p.plan.status.to_string(), plan_reasons(&redacted_plan(&p.plan, &redactor)), swarm_tasks(&p.plan))
            }
            Err(e) => ("error".to_owned(), vec![redactor.text(&e.to_string())], Default::default()),
        };
        let replicas: serde_json::Map<String, Value> = spec
            .instance
            .containers
            .iter()
            .filter(|(_, c)| c.replicated())
            .map(|(name, c)| (name.clone(), json!(c.replica_count())))
            .collect();
        rows.push(json!({
            "service": service, "template": spec.template.id, "status": status, "replicas": replicas, "reasons": reasons,
            "tasks": tasks,
        }));
        if let Some(row) = rows.last_mut() {
            let unplaced: Vec<Value> = tasks
                .iter()
                .filter_map(|(name, t)| {
                    Some(json!(format!("{name}: tasks cannot be placed: {}", t["unplaced"].as_str()?)))
                })
                .collect();
            if let Some(list) = row["reasons"].as_array_mut() {
                list.extend(unplaced);
            }
        }
    }
    match output {
        Output::Json => print_json(&Value::Array(rows))?,
        Output::Text => {
            println!("{:<24} {:<12} {:<10} {:<10} REASONS", "SERVICE", "TEMPLATE", "STATUS", "REPLICAS");
            // (swarm services show their running tasks, e.g. `app 3/3`)
            for r in &rows {
                let reasons: Vec<&str> =
                    r["reasons"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
                // Swarm: the running tasks against the desired replicas, as observed.
                let replicas: Vec<String> = r["replicas"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(name, n)| match r["tasks"][name]["tasks"].as_str() {
                        Some(t) => format!("{name} {}", t.trim_end_matches(" running")),
                        None => format!("{name}×{n}"),
                    })
                    .collect();
                let replicas = if replicas.is_empty() { "-".to_owned() } else { replicas.join(",") };
                println!(
                    "{:<24} {:<12} {:<10} {:<10} {}",
                    r["service"].as_str().unwrap_or_default(),
                    r["template"].as_str().unwrap_or_default(),
                    r["status"].as_str().unwrap_or_default(),
                    replicas,
                    reasons.join("; ")
                );
            }
        }
    }
    Ok(0)
}

/// Plans, asks, and applies a network.
async fn network_apply(engine: &Engine, client: &Id, name: Id, auto_approve: bool, lock: &LockArgs) -> Result<u8> {
    let plan = engine.network_plan(client, &name).await?;
    print!("{}", output::plan_text(&plan));
    if plan.status == PlanStatus::Drifted && !confirm(auto_approve, "apply")? {
        println!("Apply cancelled.");
        return Ok(1);
    }
    let report = operation_run(lock, Some(plan), &Redactor::default(), |run| {
        let (engine, client) = (engine.clone(), client.clone());
        async move { engine.network_apply(&client, &name, &run).await }
    })
    .await?;
    Ok(outcome_code(report))
}

/// Applies a Docker service's network first when it is not applied yet (creating its spec
/// when missing), saying so; `Some(exit code)` when that did not succeed.
async fn network_first(
    engine: &Engine,
    client: &Id,
    service: &Id,
    auto_approve: bool,
    lock: &LockArgs,
) -> Result<Option<u8>> {
    let Some(network) = engine.service_network_unready(client, service).await? else { return Ok(None) };
    println!("Network {network} is not applied yet: applying it first.");
    match engine.network_create(client, &network).await {
        Ok(_) | Err(EngineError::AlreadyExists { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    let code = network_apply(engine, client, network, auto_approve, lock).await?;
    Ok((code != 0).then_some(code))
}

async fn network(engine: &Engine, cmd: NetworkCommand) -> Result<u8> {
    match cmd {
        NetworkCommand::Create { name, client } => {
            engine.network_create(&client.client, &name).await?;
            println!("Created network {}/{name}. Next: `spawnit network apply {name}`.", client.client);
        }
        NetworkCommand::Plan { name, client, detailed_exitcode, output } => {
            let plan = engine.network_plan(&client.client, &name).await?;
            return plan_print(&plan, output, detailed_exitcode, &Redactor::default());
        }
        NetworkCommand::Apply { name, client, auto_approve, lock } => {
            return network_apply(engine, &client.client, name, auto_approve, &lock).await;
        }
        NetworkCommand::Destroy { name, client, auto_approve, lock } => {
            let plan = engine.network_destroy_plan(&client.client, &name).await?;
            return destroy_flow(plan, &Redactor::default(), auto_approve, &lock, |run| {
                let (engine, client) = (engine.clone(), client.client.clone());
                async move { engine.network_destroy(&client, &name, &run).await }
            })
            .await;
        }
        NetworkCommand::List { client, output } => {
            let mut rows = Vec::new();
            for name in engine.network_list(&client.client).await? {
                let status = match engine.network_plan(&client.client, &name).await {
                    Ok(p) => p.status.to_string(),
                    Err(_) => "error".to_owned(),
                };
                rows.push(
                    json!({"network": name, "status": status, "key": OwnerKey::network(&client.client, &name).to_string()}),
                );
            }
            match output {
                Output::Json => print_json(&Value::Array(rows))?,
                Output::Text => {
                    println!("{:<24} STATUS", "NETWORK");
                    for r in &rows {
                        println!(
                            "{:<24} {}",
                            r["network"].as_str().unwrap_or_default(),
                            r["status"].as_str().unwrap_or_default()
                        );
                    }
                }
            }
        }
    }
    Ok(0)
}

/// `spawnit healthcheck`: one plain-HTTP GET, 0 on a 200 and 1 otherwise, saying why.
async fn healthcheck(url: Option<&str>, timeout: std::time::Duration) -> Result<u8> {
    let url = match url {
        Some(u) => u.to_owned(),
        None => {
            let port = std::env::var("SPAWNIT_LISTEN")
                .ok()
                .and_then(|l| l.parse::<std::net::SocketAddr>().ok())
                .map_or(8080, |a| a.port());
            format!("http://127.0.0.1:{port}/healthz")
        }
    };
    let Some(rest) = url.strip_prefix("http://") else { anyhow::bail!("{url}: only http:// URLs are checked") };
    let (authority, path) = rest.split_once('/').map_or((rest, "/".to_owned()), |(a, p)| (a, format!("/{p}")));
    let get = async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let address = if authority.contains(':') { authority.to_owned() } else { format!("{authority}:80") };
        let mut stream = tokio::net::TcpStream::connect(&address).await?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: {authority}\r\nUser-Agent: spawnit-healthcheck\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut head = Vec::new();
        stream.take(4096).read_to_end(&mut head).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&head).lines().next().unwrap_or_default().to_owned())
    };
    match tokio::time::timeout(timeout, get).await {
        Ok(Ok(status)) if status.split_whitespace().nth(1) == Some("200") => {
            println!("{url}: {status}");
            Ok(0)
        }
        Ok(Ok(status)) => {
            eprintln!("{url}: unhealthy: {status:?}");
            Ok(1)
        }
        Ok(Err(e)) => {
            eprintln!("{url}: unhealthy: {e}");
            Ok(1)
        }
        Err(_) => {
            eprintln!("{url}: unhealthy: no answer within {timeout:?}");
            Ok(1)
        }
    }
}

/// `spawnit serve`: prints the first admin token once, then runs until Ctrl-C or SIGTERM.
async fn serve(engine: Engine, args: ServeArgs, swarm: &swarm_cli::SwarmArgs) -> Result<()> {
    // A store of a newer format is served read-only: no first-start accounts.
    let writable = engine.store().read_only_reason().is_none();
    if let Some(reason) = engine.store().read_only_reason() {
        eprintln!("Warning: serving read-only: {reason}");
    }
    if writable && let Some(token) = spawnit_server::auth::admin_token_bootstrap(engine.store()).await? {
        println!("First start: an admin token was created. It is shown only now; keep it:");
        println!("{token}");
    }
    if writable && let Some(password) = spawnit_server::accounts::admin_user_bootstrap(engine.store()).await? {
        println!("First start: web UI user `admin` (client default) was created with this password, shown only now:");
        println!("{password}");
    }
    let config = spawnit_server::ServerConfig {
        listen: args.listen,
        jobs: spawnit_server::jobs::JobsConfig {
            timeout: args.job_timeout,
            keep: args.jobs_keep,
            claim_ttl: args.claim_ttl,
            ..Default::default()
        },
        replica_id: args.replica_id,
        leader_ttl: args.leader_ttl,
        index_every: args.refresh_interval,
        sweep_every: args.sweep_interval,
        lease_every: args.lease_interval,
        reconcile_backoff: spawnit_server::monitor::Backoff {
            base: args.reconcile_backoff,
            cap: args.reconcile_backoff_max.max(args.reconcile_backoff),
        },
        lease_warnings: args.lease_warnings,
        autoscale: spawnit_server::autoscaler::AutoscaleConfig {
            interval: args.autoscale_interval,
            scale_out_cooldown: args.scale_out_cooldown,
            scale_in_cooldown: args.scale_in_cooldown,
        },
        oidc: match (args.oidc_issuer, args.oidc_client_id, args.oidc_client_secret) {
            (Some(issuer), Some(client_id), Some(client_secret)) => Some(spawnit_server::oidc::OidcConfig {
                issuer,
                client_id,
                client_secret,
                client_claim: args.oidc_client_claim,
                public_url: args.public_url.clone(),
            }),
            _ => None,
        },
        public_url: args.public_url,
        // With a Swarm manager: its nodes, leases and the node monitor.
        cluster: match &swarm.swarm_host {
            Some(host) => {
                let docker = spawnit_docker::swarm_connect(host, swarm.swarm_tls_dir.as_deref())?;
                Some(args.nodes.setup(spawnit_cluster::Cluster::connect(docker, engine.store().clone())))
            }
            None => None,
        },
    };
    let docker = DockerProvider::connect().await?;
    let server = spawnit_server::Server::start(engine, docker, config).await?;
    println!("SpawnIt listening on http://{} (web UI at /, API under /api, OpenAPI at /api/openapi.json)", server.addr);
    server
        .run_until(async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
            }
        })
        .await;
    println!("SpawnIt stopped.");
    Ok(())
}
