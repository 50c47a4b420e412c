//! CPU usage of containers, as `docker stats` shows it: one stats sample per container from the
//! Docker API (`stream=false`, so Docker waits one cycle and fills the previous reading), the
//! CPU percent computed as `docker stats` does: the container's CPU time delta over the host's
//! CPU time delta, times the online CPUs, times 100 (so one busy core is 100 %). The samples
//! of several containers are taken concurrently. The autoscaler of `spawnit serve` reads them.

use std::collections::BTreeMap;

use bollard::errors::Error as DockerError;
use bollard::models::ContainerStatsResponse;
use bollard::query_parameters::StatsOptions;
use futures::StreamExt;
use spawnit_engine::ProviderError;

use crate::{DockerProvider, Message, is_not_found};

impl DockerProvider {
    /// The CPU percent of each container of `ids` (ids or names) that exists and runs, sampled
    /// concurrently. A container that no longer exists, or that gave no usable sample (stopped,
    /// just started), is left out; any other failure of the Docker API is an error.
    pub async fn cpu_percents(&self, ids: &[String]) -> Result<BTreeMap<String, f64>, ProviderError> {
        let samples = futures::future::join_all(ids.iter().map(|id| self.cpu_sample(id))).await;
        let mut out = BTreeMap::new();
        for (id, sample) in ids.iter().zip(samples) {
            match sample {
                Ok(Some(percent)) => {
                    out.insert(id.clone(), percent);
                }
                Ok(None) => {}
                Err(e) => {
                    return Err(ProviderError::Observe {
                        what: format!("the CPU usage of container {id}"),
                        source: Box::new(e),
                    });
                }
            }
        }
        Ok(out)
    }

    /// The status of each container of `ids` that exists, as Docker says it (`running`,
    /// `exited`, …) with its health when it has a health check (`running (healthy)`),
    /// inspected concurrently. A container that no longer exists is left out.
    pub async fn container_statuses(&self, ids: &[String]) -> Result<BTreeMap<String, String>, ProviderError> {
        let answers =
            futures::future::join_all(ids.iter().map(|id| {
                self.docker.inspect_container(id, None::<bollard::query_parameters::InspectContainerOptions>)
            }))
            .await;
        let mut out = BTreeMap::new();
        for (id, answer) in ids.iter().zip(answers) {
            match answer {
                Ok(inspect) => {
                    let state = inspect.state.unwrap_or_default();
                    let status = state.status.map(|s| s.to_string()).unwrap_or_else(|| "unknown".to_owned());
                    let health = state.health.and_then(|h| h.status).map(|h| h.to_string());
                    let text = match health.filter(|h| !h.is_empty() && h != "none") {
                        Some(h) => format!("{status} ({h})"),
                        None => status,
                    };
                    out.insert(id.clone(), text);
                }
                Err(e) if is_not_found(&e) => {}
                Err(e) => {
                    return Err(ProviderError::Observe {
                        what: format!("the status of container {id}"),
                        source: Box::new(e),
                    });
                }
            }
        }
        Ok(out)
    }

    async fn cpu_sample(&self, id: &str) -> Result<Option<f64>, DockerError> {
        let options = StatsOptions { stream: false, one_shot: false };
        let mut stream = Box::pin(self.docker.stats(id, Some(options)));
        match stream.next().await {
            Some(Ok(stats)) => Ok(cpu_percent(&stats)),
            Some(Err(e)) if is_not_found(&e) => Ok(None),
            // A container removed while sampled answers 409 (not running) or 404.
            Some(Err(DockerError::DockerResponseServerError { status_code: 409, .. })) => Ok(None),
            Some(Err(e)) => Err(e),
            None => Err(DockerError::IOError {
                err: std::io::Error::other(Message(format!("the Docker engine sent no stats for container {id}"))),
            }),
        }
    }
}

/// The CPU percent of one stats sample, as `docker stats` computes it; `None` when the sample
/// holds no two readings to compare (a stopped container, or one started a moment ago).
pub fn cpu_percent(stats: &ContainerStatsResponse) -> Option<f64> {
    let now = stats.cpu_stats.as_ref()?;
    let before = stats.precpu_stats.as_ref()?;
    let total = |s: &bollard::models::ContainerCpuStats| s.cpu_usage.as_ref().and_then(|u| u.total_usage);
    let cpu_delta = total(now)?.checked_sub(total(before).unwrap_or(0))?;
    let system_delta = now.system_cpu_usage?.checked_sub(before.system_cpu_usage.unwrap_or(0))?;
    if system_delta == 0 {
        return None;
    }
    let cpus = now
        .online_cpus
        .filter(|n| *n > 0)
        .or_else(|| {
            now.cpu_usage.as_ref().and_then(|u| u.percpu_usage.as_ref()).map(|p| p.len() as u32).filter(|n| *n > 0)
        })
        .unwrap_or(1);
    Some(cpu_delta as f64 / system_delta as f64 * f64::from(cpus) * 100.0)
}

#[cfg(test)]
mod tests {
    use bollard::models::{ContainerCpuStats, ContainerCpuUsage};

    use super::*;

    fn reading(total: u64, system: u64, cpus: Option<u32>) -> ContainerCpuStats {
        ContainerCpuStats {
            cpu_usage: Some(ContainerCpuUsage { total_usage: Some(total), ..Default::default() }),
            system_cpu_usage: Some(system),
            online_cpus: cpus,
            ..Default::default()
        }
    }

    fn sample(now: ContainerCpuStats, before: ContainerCpuStats) -> ContainerStatsResponse {
        ContainerStatsResponse { cpu_stats: Some(now), precpu_stats: Some(before), ..Default::default() }
    }

    #[test]
    fn one_busy_core_of_four_is_100_percent() {
        // The host's 4 CPUs ran 4 s in all; the container used 1 s of them.
        let s =
            sample(reading(3_000_000_000, 14_000_000_000, Some(4)), reading(2_000_000_000, 10_000_000_000, Some(4)));
        assert!((cpu_percent(&s).unwrap() - 100.0).abs() < 1e-9);
    }

    #[test]
    fn no_previous_reading_or_no_system_delta_gives_nothing() {
        let s = sample(reading(5, 100, Some(2)), reading(5, 100, Some(2)));
        assert_eq!(cpu_percent(&s), None);
        let s = ContainerStatsResponse { cpu_stats: Some(reading(5, 100, Some(2))), ..Default::default() };
        assert_eq!(cpu_percent(&s), None);
    }

    #[test]
    fn online_cpus_missing_falls_back_to_the_per_cpu_list() {
        let mut now = reading(1_500, 2_000, None);
        now.cpu_usage.as_mut().unwrap().percpu_usage = Some(vec![0, 0]);
        let s = sample(now, reading(1_000, 1_000, None));
        assert!((cpu_percent(&s).unwrap() - 100.0).abs() < 1e-9);
    }
}
