//! The cluster's error type: one variant per way an operation fails, each with the HTTP status
//! class it maps to at the API's edge ([`ClusterError::kind`]).

use spawnit_store::StoreError;

/// What kind of failure an error is, for the API's status code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// 404: the node, lease or client asked for does not exist (or is not the caller's).
    NotFound,
    /// 409: the cluster is not in a state that allows it ("only 1 free node, 2 asked").
    Conflict,
    /// 422: an argument is invalid; the error names the field.
    Invalid,
    /// 503: the Swarm manager or the store did not answer, or this engine is not a manager.
    Unavailable,
    /// 500: anything else.
    Internal,
}

/// Why a cluster operation failed. Nothing was changed unless the variant says otherwise.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The node, lease or object named does not exist.
    #[error("{what} not found")]
    NotFound { what: String },

    /// The cluster's state does not allow the operation.
    #[error("{reason}")]
    Conflict { reason: String },

    /// An argument is invalid.
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },

    /// The manager (or the store) cannot be reached or is not a Swarm manager.
    #[error("the Swarm cluster is unavailable: {reason}")]
    Unavailable {
        reason: String,
        #[source]
        source: Option<bollard::errors::Error>,
    },

    /// A Docker API call failed otherwise.
    #[error("{op} failed")]
    Docker {
        /// What was being done, e.g. `updating node abc`.
        op: String,
        #[source]
        source: bollard::errors::Error,
    },

    /// The lease book could not be read or written.
    #[error("the lease book")]
    Store(#[from] StoreError),

    /// A wait ran out of time (cleaning a node whose tasks do not stop, a cleaner job that does not end).
    #[error("{what} did not happen within {seconds} s")]
    Timeout { what: String, seconds: u64 },
}

impl ClusterError {
    /// The HTTP status class of the error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ClusterError::NotFound { .. } => ErrorKind::NotFound,
            ClusterError::Conflict { .. } => ErrorKind::Conflict,
            ClusterError::Invalid { .. } => ErrorKind::Invalid,
            ClusterError::Unavailable { .. } => ErrorKind::Unavailable,
            ClusterError::Store(StoreError::Unavailable { .. }) => ErrorKind::Unavailable,
            ClusterError::Store(StoreError::ReadOnly { .. }) => ErrorKind::Conflict,
            ClusterError::Store(_) | ClusterError::Docker { .. } | ClusterError::Timeout { .. } => ErrorKind::Internal,
        }
    }

    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> ClusterError {
        ClusterError::Invalid { field, reason: reason.into() }
    }

    pub(crate) fn conflict(reason: impl Into<String>) -> ClusterError {
        ClusterError::Conflict { reason: reason.into() }
    }

    /// Maps a Docker API error of `op`: 404 is [`ClusterError::NotFound`] of `what`, 409
    /// a conflict with Docker's message, 503 (not a manager, no quorum) and connection
    /// failures unavailable.
    pub(crate) fn docker(
        op: impl Into<String>,
        what: impl Into<String>,
        source: bollard::errors::Error,
    ) -> ClusterError {
        use bollard::errors::Error as E;
        let op = op.into();
        match &source {
            E::DockerResponseServerError { status_code: 404, .. } => ClusterError::NotFound { what: what.into() },
            E::DockerResponseServerError { status_code: 409 | 400, message } => {
                ClusterError::Conflict { reason: format!("{op}: {}", message.trim()) }
            }
            E::DockerResponseServerError { status_code: 503, message } => {
                ClusterError::Unavailable { reason: format!("{op}: {}", message.trim()), source: Some(source) }
            }
            E::HyperResponseError { .. } | E::IOError { .. } | E::RequestTimeoutError | E::HyperLegacyError { .. } => {
                ClusterError::Unavailable { reason: format!("{op}: the manager did not answer"), source: Some(source) }
            }
            _ => ClusterError::Docker { op, source },
        }
    }
}
