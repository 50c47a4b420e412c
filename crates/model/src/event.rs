//! Job events: the ordered log of a plan, apply or destroy run.

use serde::{Deserialize, Serialize};

use crate::plan::{Action, Plan};
use crate::resource::Address;

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationOutcome {
    Succeeded,
    Failed,
    Cancelled,
    TimedOut,
}

/// One entry of a job's event log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum JobEvent {
    /// The plan the run executes.
    Planned {
        plan: Plan,
    },
    OperationStarted {
        address: Address,
        action: Action,
    },
    OperationDone {
        address: Address,
        action: Action,
        id: String,
        duration_ms: u64,
    },
    OperationFailed {
        address: Address,
        action: Action,
        error: String,
        duration_ms: u64,
    },
    /// Free text (waiting for a lock, adopting a resource, …).
    Message {
        text: String,
    },
    Finished {
        outcome: OperationOutcome,
        done: usize,
        failed: usize,
        skipped: usize,
        duration_ms: u64,
    },
}
