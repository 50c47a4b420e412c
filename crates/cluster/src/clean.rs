//! Quarantining and cleaning a node before it returns to the pool.
//!
//! Quarantine: availability `drain` (Swarm stops its tasks and schedules nothing there) and the
//! label `spawnit.quarantine=<reason>`; the pool's and the client's labels go (the former client
//! is kept as `spawnit.quarantine.client` for the cleaning).
//!
//! Cleaning: drained, wait until no task of any service runs on it (a returning node's stale
//! tasks are shut down by Swarm itself), then remove the volumes of every client that does not
//! rent the node, and the containers of finished tasks holding them. A volume lives in the
//! node's own engine, which SpawnIt cannot reach (the node may sit behind NAT): the removal is a
//! one-shot Swarm `replicated-job` constrained to `node.id==<node>` that mounts the node's
//! Docker socket and runs the `docker` CLI. For that job the node is made `active` for a few
//! seconds while still quarantined: every SpawnIt service is constrained to the pool's or a
//! client's label, which a quarantined node has neither of, so none of them lands there. Then
//! the former client's Swarm secrets are removed when it has no service left, and the node
//! returns to the pool (`spawnit.pool=true`, active).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::models::{
    Mount, MountTypeEnum, NodeSpecAvailabilityEnum, ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicatedJob,
    TaskSpec, TaskSpecContainerSpec, TaskSpecPlacement, TaskSpecRestartPolicy, TaskSpecRestartPolicyConditionEnum,
    TaskState,
};
use bollard::query_parameters::{ListSecretsOptions, ListServicesOptions, ListTasksOptions};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::cluster::Cluster;
use crate::error::ClusterError;
use crate::observe;
use crate::view::{LABEL_CLIENT, LABEL_POOL, LABEL_QUARANTINE, NodeStatus};

/// The label keeping the client of a quarantined node that was rented (for its secrets).
pub const LABEL_QUARANTINE_CLIENT: &str = "spawnit.quarantine.client";

/// The label on the cleaning job's service: the node it cleans.
pub const LABEL_CLEANER: &str = "spawnit.cleaner";

/// What cleaning a node did.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CleanReport {
    pub node_id: String,
    pub hostname: String,
    /// The quarantine's reason.
    pub reason: String,
    /// Seconds waiting for the node's tasks to stop.
    pub tasks_wait_s: f64,
    /// Seconds the cleaning job took (created to finished).
    pub job_s: f64,
    /// The whole cleaning, in seconds.
    pub clean_s: f64,
    /// What the cleaning job printed is not readable through the manager; the secrets removed are.
    pub secrets_removed: Vec<String>,
}

/// The script of the cleaning job: removes the containers of finished Swarm tasks, then every
/// volume labelled with a client other than `$KEEP` (and the stopped containers holding it).
/// Exits non-zero when a volume could not be removed.
pub const CLEANER_SCRIPT: &str = r#"set -u
failed=0
for state in exited created dead; do
  for c in $(docker ps -aq --filter label=com.docker.swarm.task.id --filter status=$state); do
    docker rm "$c" >/dev/null || failed=1
  done
done
for v in $(docker volume ls -q --filter label=spawnit.client); do
  owner=$(docker volume inspect -f '{{ index .Labels "spawnit.client" }}' "$v")
  if [ -n "$KEEP" ] && [ "$owner" = "$KEEP" ]; then continue; fi
  for c in $(docker ps -aq --filter volume="$v"); do docker rm "$c" >/dev/null || true; done
  if docker volume rm "$v" >/dev/null; then echo "removed volume $v of $owner"; else failed=1; fi
done
exit $failed
"#;

impl Cluster {
    /// Quarantines a node: drained, labelled `spawnit.quarantine=<reason>`, out of the pool and
    /// without its client's label. Idempotent.
    pub async fn node_quarantine(&self, node: &str, reason: &str) -> Result<(), ClusterError> {
        self.node_update(node, |s| {
            s.availability = Some(NodeSpecAvailabilityEnum::DRAIN);
            let labels = s.labels.get_or_insert_with(Default::default);
            labels.remove(LABEL_POOL);
            if let Some(client) = labels.remove(LABEL_CLIENT) {
                labels.insert(LABEL_QUARANTINE_CLIENT.to_owned(), client);
            }
            labels.insert(LABEL_QUARANTINE.to_owned(), reason.to_owned());
        })
        .await
        .map(|_| ())
    }

    /// Puts a node that carries no SpawnIt label yet in the pool. The check is made on the
    /// node as read just before the update, not on the monitor's older snapshot: a client may
    /// have rented the node in between, and its label must stay.
    pub(crate) async fn node_enroll(&self, node: &str) -> Result<(), ClusterError> {
        self.node_update(node, |s| {
            let labels = s.labels.get_or_insert_with(Default::default);
            if ![LABEL_POOL, LABEL_CLIENT, LABEL_QUARANTINE].iter().any(|l| labels.contains_key(*l)) {
                labels.insert(LABEL_POOL.to_owned(), "true".to_owned());
            }
        })
        .await
        .map(|_| ())
    }

    /// Puts a node in the pool (or keeps it for `client`, when it rents it): its labels follow.
    pub(crate) async fn node_label(&self, node: &str, client: Option<&str>) -> Result<(), ClusterError> {
        self.node_update(node, |s| {
            let labels = s.labels.get_or_insert_with(Default::default);
            match client {
                Some(c) => {
                    labels.remove(LABEL_POOL);
                    labels.insert(LABEL_CLIENT.to_owned(), c.to_owned());
                }
                None => {
                    labels.remove(LABEL_CLIENT);
                    labels.insert(LABEL_POOL.to_owned(), "true".to_owned());
                }
            }
        })
        .await
        .map(|_| ())
    }

    /// Cleans a Ready node (see the module's text) and returns it to the pool, or to its
    /// renter when it is rented. A node that is not Ready is a conflict.
    pub async fn node_clean(&self, node: &str) -> Result<CleanReport, ClusterError> {
        let started = Instant::now();
        let raw = self.node_raw(node).await?;
        let info = observe::node_info(&raw, None, &[], &[]);
        let id = info.id.clone();
        if info.status != NodeStatus::Ready {
            return Err(ClusterError::conflict(format!(
                "node {} is {}: it is cleaned once it is ready again",
                info.hostname,
                info.status.as_str()
            )));
        }
        let reason = info.quarantine.clone().unwrap_or_else(|| "admin".to_owned());
        let former = info.labels.get(LABEL_QUARANTINE_CLIENT).cloned();
        let renter = self.leases_now().await?.into_iter().find(|l| l.node_id == id).map(|l| l.client.to_string());

        self.node_update(&id, |s| s.availability = Some(NodeSpecAvailabilityEnum::DRAIN)).await?;
        let waited = Instant::now();
        self.tasks_stopped(&id).await?;
        let tasks_wait_s = waited.elapsed().as_secs_f64();

        // Active for the job only: still quarantined, so no SpawnIt service is placed here.
        self.node_update(&id, |s| {
            s.availability = Some(NodeSpecAvailabilityEnum::ACTIVE);
            let labels = s.labels.get_or_insert_with(Default::default);
            labels.remove(LABEL_POOL);
            labels.remove(LABEL_CLIENT);
            labels.entry(LABEL_QUARANTINE.to_owned()).or_insert_with(|| reason.clone());
        })
        .await?;
        let job_started = Instant::now();
        let job = self.cleaner_run(&id, renter.as_deref().unwrap_or("")).await;
        let job_s = job_started.elapsed().as_secs_f64();
        if let Err(e) = job {
            // Stays quarantined, drained: tried again later.
            let _ = self.node_update(&id, |s| s.availability = Some(NodeSpecAvailabilityEnum::DRAIN)).await;
            return Err(e);
        }

        let secrets_removed = match &former {
            Some(client) if renter.as_deref() != Some(client.as_str()) => self.secrets_of_gone_client(client).await?,
            _ => Vec::new(),
        };

        self.node_update(&id, |s| {
            s.availability = Some(NodeSpecAvailabilityEnum::ACTIVE);
            let labels = s.labels.get_or_insert_with(Default::default);
            labels.remove(LABEL_QUARANTINE);
            labels.remove(LABEL_QUARANTINE_CLIENT);
            match &renter {
                Some(c) => {
                    labels.remove(LABEL_POOL);
                    labels.insert(LABEL_CLIENT.to_owned(), c.clone());
                }
                None => {
                    labels.remove(LABEL_CLIENT);
                    labels.insert(LABEL_POOL.to_owned(), "true".to_owned());
                }
            }
        })
        .await?;
        Ok(CleanReport {
            node_id: id,
            hostname: info.hostname,
            reason,
            tasks_wait_s,
            job_s,
            clean_s: started.elapsed().as_secs_f64(),
            secrets_removed,
        })
    }

    /// Waits until no task runs on the node (nor is about to).
    async fn tasks_stopped(&self, node_id: &str) -> Result<(), ClusterError> {
        let deadline = Instant::now() + self.config.clean_timeout;
        let filters = HashMap::from([("node".to_owned(), vec![node_id.to_owned()])]);
        loop {
            let tasks = self
                .api()
                .await?
                .list_tasks(Some(ListTasksOptions { filters: Some(filters.clone()) }))
                .await
                .map_err(|e| ClusterError::docker("listing the node's tasks", format!("node {node_id}"), e))?;
            let live = tasks.iter().filter(|t| task_active(t.status.as_ref().and_then(|s| s.state))).count();
            if live == 0 {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(ClusterError::Timeout {
                    what: format!("the {live} task(s) of node {node_id} stopping"),
                    seconds: self.config.clean_timeout.as_secs(),
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Runs the cleaning job on the node and waits for it to finish; its service is removed.
    async fn cleaner_run(&self, node_id: &str, keep: &str) -> Result<(), ClusterError> {
        let short: String = node_id.chars().take(12).collect();
        let name = format!("spawnit-clean-{short}-{}", Utc::now().timestamp_millis());
        let spec = ServiceSpec {
            name: Some(name.clone()),
            labels: Some(HashMap::from([(LABEL_CLEANER.to_owned(), node_id.to_owned())])),
            task_template: Some(TaskSpec {
                container_spec: Some(TaskSpecContainerSpec {
                    image: Some(self.config.cleaner_image.clone()),
                    command: Some(vec!["sh".into(), "-c".into(), CLEANER_SCRIPT.into()]),
                    env: Some(vec![format!("KEEP={keep}")]),
                    mounts: Some(vec![Mount {
                        target: Some("/var/run/docker.sock".into()),
                        source: Some("/var/run/docker.sock".into()),
                        typ: Some(MountTypeEnum::BIND),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }),
                placement: Some(TaskSpecPlacement {
                    constraints: Some(vec![format!("node.id=={node_id}")]),
                    ..Default::default()
                }),
                restart_policy: Some(TaskSpecRestartPolicy {
                    condition: Some(TaskSpecRestartPolicyConditionEnum::NONE),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            mode: Some(ServiceSpecMode {
                replicated_job: Some(ServiceSpecModeReplicatedJob {
                    max_concurrent: Some(1),
                    total_completions: Some(1),
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let created = self.api().await?.create_service(spec, None).await.map_err(|e| {
            ClusterError::docker(format!("creating the cleaning job of node {node_id}"), "the cleaning job", e)
        })?;
        let service_id = created.id.unwrap_or(name);
        let outcome = self.job_wait(&service_id, node_id).await;
        if let Err(e) = self.api().await?.delete_service(&service_id).await {
            tracing::warn!("removing the cleaning job {service_id} failed: {e}");
        }
        outcome
    }

    async fn job_wait(&self, service_id: &str, node_id: &str) -> Result<(), ClusterError> {
        let deadline = Instant::now() + self.config.clean_timeout;
        let filters = HashMap::from([("service".to_owned(), vec![service_id.to_owned()])]);
        loop {
            let tasks = self
                .api()
                .await?
                .list_tasks(Some(ListTasksOptions { filters: Some(filters.clone()) }))
                .await
                .map_err(|e| ClusterError::docker("reading the cleaning job", "the cleaning job", e))?;
            for t in &tasks {
                let status = t.status.as_ref();
                match status.and_then(|s| s.state) {
                    Some(TaskState::COMPLETE) => return Ok(()),
                    Some(TaskState::FAILED | TaskState::REJECTED) => {
                        let why = status
                            .and_then(|s| s.err.clone().or_else(|| s.message.clone()))
                            .unwrap_or_else(|| "no reason given".into());
                        let code = status
                            .and_then(|s| s.container_status.as_ref())
                            .and_then(|c| c.exit_code)
                            .map(|c| format!(" (exit code {c})"))
                            .unwrap_or_default();
                        return Err(ClusterError::conflict(format!(
                            "the cleaning job on node {node_id} failed: {why}{code}"
                        )));
                    }
                    _ => {}
                }
            }
            if Instant::now() >= deadline {
                return Err(ClusterError::Timeout {
                    what: format!("the cleaning job on node {node_id} finishing"),
                    seconds: self.config.clean_timeout.as_secs(),
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Removes the Swarm secrets of `client` when it has no Swarm service left (secrets younger
    /// than `secret_min_age` are kept: their service may be being created).
    async fn secrets_of_gone_client(&self, client: &str) -> Result<Vec<String>, ClusterError> {
        let by_client = HashMap::from([("label".to_owned(), vec![format!("{LABEL_CLIENT}={client}")])]);
        let services = self
            .api()
            .await?
            .list_services(Some(ListServicesOptions { filters: Some(by_client.clone()), ..Default::default() }))
            .await
            .map_err(|e| ClusterError::docker("listing the client's services", "the services", e))?;
        if !services.is_empty() {
            return Ok(Vec::new());
        }
        let secrets = self
            .api()
            .await?
            .list_secrets(Some(ListSecretsOptions { filters: Some(by_client) }))
            .await
            .map_err(|e| ClusterError::docker("listing the client's secrets", "the secrets", e))?;
        let mut removed = Vec::new();
        for s in secrets {
            let Some(id) = s.id.clone() else { continue };
            let old = s
                .created_at
                .as_ref()
                .and_then(date)
                .is_none_or(|at| (Utc::now() - at).to_std().unwrap_or_default() >= self.config.secret_min_age);
            if !old {
                continue;
            }
            match self.api().await?.delete_secret(&id).await {
                Ok(()) => removed.push(s.spec.and_then(|sp| sp.name).unwrap_or(id)),
                Err(e) => tracing::warn!("removing secret {id} of client {client} failed: {e}"),
            }
        }
        Ok(removed)
    }
}

/// A task that runs or is about to (not finished one way or another).
fn task_active(state: Option<TaskState>) -> bool {
    !matches!(
        state,
        Some(
            TaskState::COMPLETE
                | TaskState::SHUTDOWN
                | TaskState::FAILED
                | TaskState::REJECTED
                | TaskState::REMOVE
                | TaskState::ORPHANED
        )
    )
}

/// A Docker timestamp as bollard gives it.
fn date(d: &impl ToString) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(&d.to_string()).ok().map(|d| d.with_timezone(&Utc))
}
