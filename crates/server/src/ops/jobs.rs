//! Jobs: submit (with its audit entry), list, get, cancel.

use std::sync::Arc;

use super::audit;
use crate::AppState;
use crate::caller::Caller;
use crate::error::ApiError;
use crate::jobs::{Job, JobKind, JobStatus, Target};
use crate::views::{JobList, JobView};

/// Queues a job on `target` for the caller and audits it; a service's plan or apply comes after
/// its network's apply when the network is not applied yet (see [`crate::jobs::Jobs::submit_requested`]).
/// The caller must already have been checked to see the target.
pub async fn job_submit(s: &AppState, c: &Caller, kind: JobKind, target: Target) -> Result<JobView, ApiError> {
    let submitted = s.jobs.submit_requested(kind, target.clone(), &c.user).await?;
    let record = submitted.job.record();
    if let Some(first) = submitted.network_first {
        let first = first.record();
        let detail = format!("job {}, before {} of {target}", first.id, kind.as_str());
        audit(s, c, first.target.client(), "apply", first.target.to_string(), &detail).await;
    }
    audit(s, c, target.client(), kind.as_str(), target.to_string(), &format!("job {}", record.id)).await;
    Ok(record)
}

/// The jobs the caller may see, newest first, optionally of one status.
pub fn job_list(s: &AppState, c: &Caller, status: Option<JobStatus>) -> JobList {
    let jobs = s
        .jobs
        .list()
        .into_iter()
        .filter(|r| c.sees(r.target.client()) && status.is_none_or(|st| st == r.status))
        .collect();
    JobList { jobs }
}

/// A job the caller may see (another client's does not exist for it).
pub async fn job_visible(s: &AppState, c: &Caller, id: &str) -> Result<Arc<Job>, ApiError> {
    s.jobs
        .find(id)
        .await
        .filter(|j| c.sees(j.record().target.client()))
        .ok_or_else(|| ApiError::not_found(format!("job {}", id.chars().take(80).collect::<String>())))
}

/// One job.
pub async fn job_get(s: &AppState, c: &Caller, id: &str) -> Result<JobView, ApiError> {
    Ok(job_visible(s, c, id).await?.record())
}

/// Cancels a job (it stops between resource operations); refused once it has finished.
pub async fn job_cancel(s: &AppState, c: &Caller, id: &str) -> Result<JobView, ApiError> {
    let job = job_visible(s, c, id).await?;
    if !s.jobs.cancel(&job).await.map_err(spawnit_engine::EngineError::from)? {
        return Err(ApiError::conflict(format!("job {id} already finished ({})", job.record().status.as_str())));
    }
    let record = job.record();
    audit(s, c, record.target.client(), "cancel", record.target.to_string(), &format!("job {}", record.id)).await;
    Ok(record)
}
