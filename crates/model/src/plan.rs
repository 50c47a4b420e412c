//! Plans: the ordered changes that bring observed resources to the desired spec, each with its
//! reasons, in OpenTofu's vocabulary (create, update, replace, delete, no-op).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::resource::{Address, DesiredResource};

/// What happens to one resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Create,
    /// Changed in place (for a container: started again).
    Update,
    /// Deleted, then created again.
    Replace,
    Delete,
    NoOp,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Replace => "replace",
            Action::Delete => "delete",
            Action::NoOp => "no-op",
        }
    }

    /// The sign OpenTofu prints before a change.
    pub fn symbol(self) -> &'static str {
        match self {
            Action::Create => "+",
            Action::Update => "~",
            Action::Replace => "-/+",
            Action::Delete => "-",
            Action::NoOp => " ",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The plan's summary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlanStatus {
    /// Nothing to do.
    Compliant,
    /// Changes are needed.
    Drifted,
    /// The plan could not be made (e.g. its network is missing).
    Error,
}

impl fmt::Display for PlanStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PlanStatus::Compliant => "compliant",
            PlanStatus::Drifted => "drifted",
            PlanStatus::Error => "error",
        })
    }
}

/// One planned change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub address: Address,
    pub action: Action,
    /// Why, e.g. "image changed redis:7 → redis:7.2", "removed outside SpawnIt".
    pub reasons: Vec<String>,
    /// What to create (create, replace, update); `None` for delete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired: Option<DesiredResource>,
    /// The fingerprint of `desired`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// The existing resource's provider id (update, replace, delete, and adopted no-ops).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub existing_id: Option<String>,
    /// Addresses this change waits for (for delete: the addresses that must go first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<Address>,
    /// Outputs of the existing resource as observed (e.g. `public_ip`), recorded with an
    /// adopted or unchanged resource.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub outputs: std::collections::BTreeMap<String, String>,
}

/// An ordered set of changes for one service or network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// What is planned, e.g. `service default/web`.
    pub subject: String,
    pub status: PlanStatus,
    /// In the order apply starts them (a topological order of the dependencies).
    pub changes: Vec<Change>,
    /// Why the plan could not be made, when status is `error`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

impl Plan {
    pub fn error(subject: impl Into<String>, message: impl Into<String>) -> Plan {
        Plan { subject: subject.into(), status: PlanStatus::Error, changes: Vec::new(), errors: vec![message.into()] }
    }

    /// Changes that do something.
    pub fn actions(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(|c| c.action != Action::NoOp)
    }

    /// Counts per action: (create, update, replace, delete).
    pub fn counts(&self) -> (usize, usize, usize, usize) {
        let n = |a| self.changes.iter().filter(|c| c.action == a).count();
        (n(Action::Create), n(Action::Update), n(Action::Replace), n(Action::Delete))
    }
}
