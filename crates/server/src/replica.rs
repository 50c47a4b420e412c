//! Who this server is among the replicas sharing one store: a name, the host and the process.
//! Every claim on a job and the leader's lease carry it, so that a replica can tell its own
//! records from another's, and a record left by a process that is gone from this host can be
//! taken over at once rather than at its expiry.

use std::fmt;

/// One `spawnit serve` process among those sharing a store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replica {
    /// Unique among the replicas: the name given (`--replica-id`) or the host's name with a
    /// random suffix, new at every start.
    pub id: String,
    pub host: String,
    pub pid: u32,
}

impl Replica {
    /// This process, named `id` or, when none is given, after its host and a random suffix.
    pub fn this_process(id: Option<&str>) -> Replica {
        let host = spawnit_store::hostname();
        let id = match id.map(str::trim).filter(|id| !id.is_empty()) {
            Some(id) => id.to_owned(),
            None => {
                let short: String = host.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').take(40).collect();
                format!("{short}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
            }
        };
        Replica { id, host, pid: std::process::id() }
    }

    /// Whether the process that wrote a record as `(host, pid)` is known to be gone (it ran on
    /// this host and no longer exists); another host's process is given until the record expires.
    pub fn sees_gone(&self, host: &str, pid: u32) -> bool {
        spawnit_store::holder_gone(host, pid, &self.host)
    }
}

impl fmt::Display for Replica {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}
