//! [`OwnerKey`]: whose spec, state and lock an object is (a service or a network of a client).
//! The store keys its objects by it and providers label what they create with it.

use std::fmt;

use crate::Id;

/// What owns a state and a lock inside a client: a service or a network.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Owner {
    Service(Id),
    Network(Id),
}

impl Owner {
    /// `service` or `network`.
    pub fn kind(&self) -> &'static str {
        match self {
            Owner::Service(_) => "service",
            Owner::Network(_) => "network",
        }
    }

    pub fn name(&self) -> &Id {
        match self {
            Owner::Service(name) | Owner::Network(name) => name,
        }
    }
}

/// A service or network of a client: the owner of one spec, one state and one lock.
/// Displays as `service default/web` or `network default/default`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OwnerKey {
    pub client: Id,
    pub owner: Owner,
}

impl OwnerKey {
    pub fn service(client: &Id, name: &Id) -> OwnerKey {
        OwnerKey { client: client.clone(), owner: Owner::Service(name.clone()) }
    }

    pub fn network(client: &Id, name: &Id) -> OwnerKey {
        OwnerKey { client: client.clone(), owner: Owner::Network(name.clone()) }
    }
}

impl fmt::Display for OwnerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.owner.kind(), self.client, self.owner.name())
    }
}
