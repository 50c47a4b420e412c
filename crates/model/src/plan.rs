//! Plans: the ordered changes that bring observed resources to the desired spec, each with its
//! reasons, in OpenTofu's vocabulary (create, update, replace, delete, no-op). Each change also
//! carries one machine-readable [`ReasonCode`], as OpenTofu's plans carry an `action_reason`.

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

/// Why a change has its action, for programs: the human `reasons` say the details, the code says
/// which case of the planner it is. Each code starts with its action's name. Serialized in
/// snake_case as the change's `code`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReasonCode {
    /// A change planned before changes carried codes.
    #[default]
    Unspecified,
    /// Neither recorded nor found: created for the first time.
    CreateBecauseNew,
    /// An image not present on the host: pulled.
    CreateBecauseImageAbsent,
    /// Recorded in state but gone (removed, or an instance terminated, outside SpawnIt).
    CreateBecauseRemovedOutside,
    /// The spec changed an attribute its kind can change in place (a security group's rules).
    UpdateBecauseSpecChanged,
    /// Found changed outside SpawnIt in a way it can be put back in place (a rule added or
    /// removed on a security group).
    UpdateBecauseChangedOutside,
    /// Stopped outside SpawnIt: started again.
    UpdateBecauseStopped,
    /// The spec changed an attribute its kind cannot change in place.
    ReplaceBecauseCannotUpdate,
    /// Found changed outside SpawnIt (another fingerprint, another image, no fingerprint).
    ReplaceBecauseChangedOutside,
    /// Unchanged itself, but a resource it depends on is created or replaced.
    ReplaceBecauseDependencyReplaced,
    /// Recorded and no longer in the spec.
    DeleteBecauseNotDesired,
    /// Found by its labels, neither recorded nor in the spec.
    DeleteBecauseFoundByLabels,
    /// Recorded but already gone: only forgotten.
    DeleteBecauseAlreadyGone,
    /// Destroy was asked for.
    DeleteBecauseDestroy,
    /// As the spec wants it.
    NoOpBecauseUnchanged,
    /// As the spec wants it and found by its labels, not yet recorded: adopted into state.
    NoOpBecauseAdopted,
    /// As the spec wants it under another provider id than recorded: the recorded id is updated.
    NoOpBecauseIdChanged,
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
    /// Which case of the planner chose `action`; `unspecified` in plans made before codes.
    #[serde(default)]
    pub code: ReasonCode,
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
    /// For a replace: the new resource is created (and, behind a load balancer, turns healthy
    /// and takes traffic) before the old one is drained and deleted, as in a rolling update.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub create_before_destroy: bool,
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
