//! Object keys, built only from validated ids and fixed names: nothing a user types becomes a
//! path segment unchecked. Objects of a service or network are keyed by its [`OwnerKey`].

use std::fmt;

use spawnit_model::{Id, Owner, OwnerKey};

/// A collection of server records, each `<collection>/<id>.json`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Collection {
    /// API tokens, by the first 40 hex digits of their SHA-256.
    Tokens,
    /// Finished and running jobs, by UUID.
    Jobs,
    /// Local user accounts, by user name.
    Users,
    /// Web sessions, by the first 40 hex digits of the SHA-256 of their id.
    Sessions,
    /// Audit log entries, by a time-ordered id.
    Audit,
    /// OIDC sign-ins in progress, by the first 40 hex digits of the SHA-256 of their state.
    OidcPending,
    /// Server settings an admin changes at run time (e.g. `auth`: whether sign-up is open).
    Settings,
    /// What the server replicas sharing the store tell each other: the leader's lease, the
    /// drift monitor's statuses (`servers/leader.json`, `servers/statuses.json`).
    Servers,
    /// Server events a replica published, for the other replicas' `/api/events`, by a
    /// time-ordered id.
    ServerEvents,
    /// Failed sign-ins per user and address, by the first 40 hex digits of a SHA-256.
    SignInFailures,
}

impl Collection {
    fn path(self) -> &'static str {
        match self {
            Collection::Tokens => "auth/tokens",
            Collection::Jobs => "jobs",
            Collection::Users => "auth/users",
            Collection::Sessions => "auth/sessions",
            Collection::Audit => "audit",
            Collection::OidcPending => "auth/oidc-pending",
            Collection::Settings => "settings",
            Collection::Servers => "servers",
            Collection::ServerEvents => "servers/events",
            Collection::SignInFailures => "auth/sign-in-failures",
        }
    }
}

/// The key of an object, or of a "directory" (a key prefix) to list.
///
/// There is no constructor from a string: every key comes from one of the functions below.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(String);

impl Key {
    /// `catalog/catalog.json`
    pub fn catalog() -> Key {
        Key("catalog/catalog.json".into())
    }

    /// `catalog/templates/<id>.template.json`
    pub fn template(id: &Id) -> Key {
        Key(format!("catalog/templates/{id}.template.json"))
    }

    /// `spawnit-store.json`: the store's format marker.
    pub fn format_marker() -> Key {
        Key("spawnit-store.json".into())
    }

    /// `spawnit-store.lock.json`: the store-wide lock a migration holds.
    pub fn store_lock() -> Key {
        Key("spawnit-store.lock.json".into())
    }

    /// `cluster/leases.json`: who rents which Swarm node.
    pub fn node_leases() -> Key {
        Key("cluster/leases.json".into())
    }

    /// `clients`: the directory holding one directory per client.
    pub fn clients() -> Key {
        Key("clients".into())
    }

    /// `clients/<client>/services`
    pub fn services(client: &Id) -> Key {
        Key(format!("clients/{client}/services"))
    }

    /// `clients/<client>/networks`
    pub fn networks(client: &Id) -> Key {
        Key(format!("clients/{client}/networks"))
    }

    /// `clients/<client>/services/<service>` or `clients/<client>/networks/<network>`
    pub fn owner(owner: &OwnerKey) -> Key {
        let parent = match &owner.owner {
            Owner::Service(_) => Key::services(&owner.client),
            Owner::Network(_) => Key::networks(&owner.client),
        };
        Key(format!("{}/{}", parent.0, owner.owner.name()))
    }

    /// `<owner>/spec.json`
    pub fn spec(owner: &OwnerKey) -> Key {
        Key::owner(owner).child("spec.json")
    }

    /// `<owner>/state.json`
    pub fn state(owner: &OwnerKey) -> Key {
        Key::owner(owner).child("state.json")
    }

    /// `<owner>/lock.json`
    pub fn lock(owner: &OwnerKey) -> Key {
        Key::owner(owner).child("lock.json")
    }

    /// `<collection>/<id>.json`: a server record (API token, job, …).
    pub fn record(collection: Collection, id: &Id) -> Key {
        Key(format!("{}/{id}.json", collection.path()))
    }

    /// The directory of a collection of records.
    pub fn collection(collection: Collection) -> Key {
        Key(collection.path().into())
    }

    fn child(self, name: &'static str) -> Key {
        Key(format!("{}/{name}", self.0))
    }

    /// `/`-separated segments, never empty, never `.` or `..`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> Id {
        Id::parse(s).expect("valid id")
    }

    #[test]
    fn keys_follow_the_layout() {
        let web = OwnerKey::service(&id("default"), &id("web"));
        let net = OwnerKey::network(&id("acme"), &id("default"));
        assert_eq!(Key::catalog().as_str(), "catalog/catalog.json");
        assert_eq!(Key::template(&id("redis")).as_str(), "catalog/templates/redis.template.json");
        assert_eq!(Key::spec(&web).as_str(), "clients/default/services/web/spec.json");
        assert_eq!(Key::state(&web).as_str(), "clients/default/services/web/state.json");
        assert_eq!(Key::lock(&net).as_str(), "clients/acme/networks/default/lock.json");
        assert_eq!(web.to_string(), "service default/web");
        assert_eq!(net.to_string(), "network acme/default");
    }
}
