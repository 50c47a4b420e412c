//! The service index: every service's spec and state in memory, so a list costs O(page), not
//! a read of every object in the store. It stays coherent with the store two ways: writes made
//! through this server's store handle are announced as they happen ([`Store::changes`]) and
//! applied before the next answer, and writes by anyone else (the CLI, another server, a file
//! edited by hand) are noticed by a [`StoreWatcher`] comparing object stamps at every
//! [`ServiceIndex::refresh`], which the server runs once per sweep interval. Statuses are not
//! kept here: the drift monitor's status board is asked for them when a page is made.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use spawnit_model::{Id, OwnerKey, PlanStatus, ServiceSpec, State};
use spawnit_store::{Key, Store, StoreError, StoreWatcher};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::TryRecvError;
use tokio_util::sync::CancellationToken;

use crate::tasks::{Task, TaskRuns};
use crate::views::Status;

/// Which services a list answers: at most `limit` (all when absent), after the service named
/// `cursor`, of status `status` (the drift monitor's last word, `error` when the spec or state
/// cannot be read, `unknown` before the monitor has seen the service).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListQuery {
    pub limit: Option<usize>,
    pub cursor: Option<Id>,
    pub status: Option<Status>,
}

/// A bad list parameter: which one, and why.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{field}: {reason}")]
pub struct ListQueryError {
    pub field: &'static str,
    pub reason: String,
}

impl ListQuery {
    /// The largest page.
    pub const LIMIT_MAX: usize = 1000;

    /// Checks the raw `limit`, `cursor` and `status` parameters.
    pub fn parse(limit: Option<&str>, cursor: Option<&str>, status: Option<&str>) -> Result<ListQuery, ListQueryError> {
        let limit = match limit {
            None => None,
            Some(raw) => match raw.parse::<usize>() {
                Ok(n) if (1..=Self::LIMIT_MAX).contains(&n) => Some(n),
                _ => {
                    return Err(ListQueryError {
                        field: "limit",
                        reason: format!("must be a whole number from 1 to {}", Self::LIMIT_MAX),
                    });
                }
            },
        };
        let cursor = match cursor {
            None => None,
            Some(raw) => Some(Id::parse(raw).map_err(|e| ListQueryError {
                field: "cursor",
                reason: format!("must be the next_cursor of an earlier page (a service name): {e}"),
            })?),
        };
        let status = match status {
            None => None,
            Some(raw) => Some(Status::ALL.into_iter().find(|s| s.as_str() == raw).ok_or_else(|| {
                let names: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
                ListQueryError { field: "status", reason: format!("must be one of {}", names.join(", ")) }
            })?),
        };
        Ok(ListQuery { limit, cursor, status })
    }
}

/// One service of a page.
#[derive(Clone, Debug)]
pub enum Listed {
    /// A service whose spec was read; `reasons` explain its status.
    Service { spec: Arc<ServiceSpec>, state: Option<Arc<State>>, status: Status, reasons: Vec<String> },
    /// A service whose stored spec cannot be read: why.
    Unreadable { client: Id, name: Id, reason: String },
}

/// A page of a client's services, in name order.
#[derive(Clone, Debug)]
pub struct Page {
    pub services: Vec<Listed>,
    /// The `cursor` of the next page; `None` on the last one.
    pub next_cursor: Option<Id>,
}

/// What the index holds of one service: its spec and its state, or why each cannot be read.
#[derive(Clone, Debug)]
struct Entry {
    /// `None` while the service has no spec (a state left without one is not listed).
    spec: Option<Result<Arc<ServiceSpec>, String>>,
    state: Result<Option<Arc<State>>, String>,
}

impl Default for Entry {
    fn default() -> Self {
        Entry { spec: None, state: Ok(None) }
    }
}

/// The in-memory index of every client's services; cheap to clone.
#[derive(Clone)]
pub struct ServiceIndex {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    entries: RwLock<BTreeMap<Id, BTreeMap<Id, Entry>>>,
    /// This server's own writes, not yet applied. Held while keys are read and applied, so
    /// that reads of one key are applied in the order they were made.
    own: tokio::sync::Mutex<broadcast::Receiver<Key>>,
    /// Everyone's writes, between two refreshes.
    watcher: tokio::sync::Mutex<StoreWatcher>,
}

/// The service a key belongs to, and whether it is the spec (else the state).
fn service_object(key: &str) -> Option<(Id, Id, bool)> {
    let rest = key.strip_prefix("clients/")?;
    let mut parts = rest.split('/');
    let (client, kind, name, file) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if kind != "services" || parts.next().is_some() {
        return None;
    }
    let spec = match file {
        "spec.json" => true,
        "state.json" => false,
        _ => return None,
    };
    Some((Id::parse(client).ok()?, Id::parse(name).ok()?, spec))
}

impl ServiceIndex {
    /// Reads every service's spec and state once.
    pub async fn load(store: Store) -> Result<ServiceIndex, StoreError> {
        let index = ServiceIndex {
            inner: Arc::new(Inner {
                own: tokio::sync::Mutex::new(store.changes()),
                watcher: tokio::sync::Mutex::new(store.watch(Key::clients())),
                entries: RwLock::new(BTreeMap::new()),
                store,
            }),
        };
        index.refresh().await?;
        Ok(index)
    }

    /// Applies every change anyone made since the last refresh (one listing of the store with
    /// stamps, then a read of each changed spec or state); returns how many objects changed.
    /// A change that could not be read is tried again at the next refresh.
    pub async fn refresh(&self) -> Result<usize, StoreError> {
        let mut watcher = self.inner.watcher.lock().await;
        let changed = watcher.poll().await?;
        let _applying = self.inner.own.lock().await;
        for (i, key) in changed.iter().enumerate() {
            if let Err(e) = self.reload(key).await {
                for unread in &changed[i..] {
                    watcher.forget(unread);
                }
                return Err(e);
            }
        }
        Ok(changed.len())
    }

    /// Refreshes the index every `every` until `stop` is cancelled, recording each run as
    /// [`Task::IndexRefresh`].
    pub async fn run(self, every: Duration, tasks: TaskRuns, stop: CancellationToken) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {
                    if let Err(e) = tasks.run(Task::IndexRefresh, self.refresh()).await {
                        tracing::warn!("refreshing the service index failed: {e}");
                    }
                }
            }
        }
    }

    /// Applies the writes this server made since the last answer (none: no store access).
    async fn catch_up(&self) -> Result<(), StoreError> {
        let mut own = self.inner.own.lock().await;
        let mut keys = BTreeSet::new();
        let mut lagged = false;
        loop {
            match own.try_recv() {
                Ok(key) => {
                    keys.insert(key.to_string());
                }
                Err(TryRecvError::Lagged(_)) => lagged = true,
                Err(TryRecvError::Empty | TryRecvError::Closed) => break,
            }
        }
        let keys: Vec<String> = keys.into_iter().collect();
        for (i, key) in keys.iter().enumerate() {
            if let Err(e) = self.reload(key).await {
                // Read again at the next refresh (the watcher is locked before `own`, never after).
                drop(own);
                let mut watcher = self.inner.watcher.lock().await;
                for unread in &keys[i..] {
                    watcher.forget(unread);
                }
                return Err(e);
            }
        }
        drop(own);
        if lagged {
            // Too many writes to have kept their keys: compare every stamp instead.
            self.refresh().await?;
        }
        Ok(())
    }

    /// Reads one object again and records what it holds now.
    async fn reload(&self, key: &str) -> Result<(), StoreError> {
        let Some((client, name, is_spec)) = service_object(key) else { return Ok(()) };
        let store = &self.inner.store;
        if is_spec {
            let spec = match store.service_spec(&client, &name).await {
                Ok(spec) => spec.map(|v| Ok(Arc::new(v.value))),
                Err(e @ StoreError::Corrupt { .. }) => Some(Err(e.to_string())),
                Err(e) => return Err(e),
            };
            self.update(client, name, |entry| entry.spec = spec);
        } else {
            let state = match store.state(&OwnerKey::service(&client, &name)).await {
                Ok(state) => Ok(state.map(|v| Arc::new(v.value))),
                Err(e @ StoreError::Corrupt { .. }) => Err(e.to_string()),
                Err(e) => return Err(e),
            };
            self.update(client, name, |entry| entry.state = state);
        }
        Ok(())
    }

    fn update(&self, client: Id, name: Id, change: impl FnOnce(&mut Entry)) {
        let mut entries = self.inner.entries.write().expect("service index");
        let services = entries.entry(client.clone()).or_default();
        let entry = services.entry(name.clone()).or_default();
        change(entry);
        if entry.spec.is_none() && matches!(entry.state, Ok(None)) {
            services.remove(&name);
            if services.is_empty() {
                entries.remove(&client);
            }
        }
    }

    /// A page of `client`'s services as of now: this server's own writes are applied first.
    /// `status` gives the drift monitor's last status and reasons of a service, if it has one.
    pub async fn page(
        &self,
        client: &Id,
        query: &ListQuery,
        status: impl Fn(&Id) -> Option<(PlanStatus, Vec<String>)>,
    ) -> Result<Page, StoreError> {
        self.catch_up().await?;
        let entries = self.inner.entries.read().expect("service index");
        let Some(services) = entries.get(client) else { return Ok(Page { services: Vec::new(), next_cursor: None }) };
        let range = match &query.cursor {
            Some(after) => services.range::<Id, _>((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded)),
            None => services.range::<Id, _>(..),
        };
        let limit = query.limit.unwrap_or(usize::MAX);
        let mut out = Vec::new();
        let mut next_cursor = None;
        for (name, entry) in range {
            let listed = match &entry.spec {
                None => continue,
                Some(Err(reason)) => {
                    Listed::Unreadable { client: client.clone(), name: name.clone(), reason: reason.clone() }
                }
                Some(Ok(spec)) => {
                    let (state, status, reasons) = match &entry.state {
                        Err(reason) => (None, Status::Error, vec![reason.clone()]),
                        Ok(state) => match status(name) {
                            Some((seen, reasons)) => (state.clone(), Status::from(seen), reasons),
                            None => (state.clone(), Status::Unknown, Vec::new()),
                        },
                    };
                    Listed::Service { spec: spec.clone(), state, status, reasons }
                }
            };
            let listed_status = match &listed {
                Listed::Service { status, .. } => *status,
                Listed::Unreadable { .. } => Status::Error,
            };
            if query.status.is_some_and(|wanted| wanted != listed_status) {
                continue;
            }
            if out.len() == limit {
                next_cursor = out.last().map(|l: &Listed| l.name().clone());
                break;
            }
            out.push(listed);
        }
        Ok(Page { services: out, next_cursor })
    }
}

impl ServiceIndex {
    /// Every service, of every client, whose spec has a replicated container with a scale
    /// policy (the autoscaler's candidates), as the index holds them: no store access (the
    /// autoscaler reads each candidate's spec again before it decides).
    pub fn scalable(&self) -> Result<Vec<(Id, Id)>, StoreError> {
        let entries = self.inner.entries.read().expect("service index");
        let mut out = Vec::new();
        for (client, services) in entries.iter() {
            for (name, entry) in services {
                if let Some(Ok(spec)) = &entry.spec
                    && spec.instance.containers.values().any(|c| c.replicated() && c.scale.is_some())
                {
                    out.push((client.clone(), name.clone()));
                }
            }
        }
        Ok(out)
    }
}

impl Listed {
    pub fn name(&self) -> &Id {
        match self {
            Listed::Service { spec, .. } => &spec.name,
            Listed::Unreadable { name, .. } => name,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_parameters_are_checked_naming_the_field() {
        assert_eq!(ListQuery::parse(None, None, None), Ok(ListQuery::default()));
        let q = ListQuery::parse(Some("50"), Some("web"), Some("drifted")).unwrap();
        assert_eq!(q.limit, Some(50));
        assert_eq!(q.cursor.as_ref().map(|c| c.as_str()), Some("web"));
        assert_eq!(q.status, Some(Status::Drifted));
        for (limit, cursor, status, field) in [
            (Some("0"), None, None, "limit"),
            (Some("1001"), None, None, "limit"),
            (Some("ten"), None, None, "limit"),
            (None, Some("../x"), None, "cursor"),
            (None, None, Some("broken"), "status"),
        ] {
            let e = ListQuery::parse(limit, cursor, status).unwrap_err();
            assert_eq!(e.field, field, "{e}");
        }
        let e = ListQuery::parse(None, None, Some("broken")).unwrap_err();
        assert_eq!(e.reason, "must be one of compliant, drifted, error, unknown");
    }

    #[test]
    fn only_specs_and_states_of_services_are_indexed() {
        let parsed = service_object("clients/acme/services/web/spec.json").unwrap();
        assert_eq!((parsed.0.as_str(), parsed.1.as_str(), parsed.2), ("acme", "web", true));
        assert!(!service_object("clients/acme/services/web/state.json").unwrap().2);
        assert!(service_object("clients/acme/services/web/lock.json").is_none());
        assert!(service_object("clients/acme/networks/default/spec.json").is_none());
        assert!(service_object("clients/acme/services/Bad!/spec.json").is_none());
    }
}
