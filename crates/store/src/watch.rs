//! Noticing changes made by anyone: another process (the CLI, another server) writes the same
//! store, and a reader that keeps objects in memory must see that. A [`StoreWatcher`] lists a
//! prefix with each object's [`Stamp`] and reports the keys added, changed or removed since its
//! last poll; one listing call per poll, whatever the number of objects (on S3; a local
//! directory costs one `stat` per file), and no object is read. Writes through the same
//! [`Store`] handle are announced at once by [`Store::changes`].

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use crate::error::StoreError;
use crate::key::Key;
use crate::store::Store;

/// What changes whenever an object is written: its ETag on S3, its file's inode, modification
/// time and size in a local directory. Cheaper than a [`Version`](crate::Version) (no content
/// is read) and only ever compared with an earlier stamp of the same key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Stamp(String);

impl Stamp {
    pub(crate) fn new(stamp: impl Into<String>) -> Stamp {
        Stamp(stamp.into())
    }
}

impl fmt::Display for Stamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The stamps of every object under a prefix at the last poll.
pub struct StoreWatcher {
    store: Store,
    prefix: Key,
    stamps: HashMap<String, Stamp>,
    /// Keys to report again at the next poll (see [`StoreWatcher::forget`]).
    again: BTreeSet<String>,
}

impl StoreWatcher {
    /// A watcher that has seen nothing yet: its first poll reports every object.
    pub(crate) fn new(store: Store, prefix: Key) -> StoreWatcher {
        StoreWatcher { store, prefix, stamps: HashMap::new(), again: BTreeSet::new() }
    }

    /// The keys added, changed or removed since the last poll, sorted. On an error nothing is
    /// forgotten: the next poll reports the same changes.
    pub async fn poll(&mut self) -> Result<Vec<String>, StoreError> {
        let listed: HashMap<String, Stamp> = self.store.list_stamped(&self.prefix).await?.into_iter().collect();
        let mut changed: BTreeSet<String> = std::mem::take(&mut self.again);
        changed.extend(
            listed.iter().filter(|(key, stamp)| self.stamps.get(*key) != Some(stamp)).map(|(key, _)| key.clone()),
        );
        changed.extend(self.stamps.keys().filter(|key| !listed.contains_key(*key)).cloned());
        self.stamps = listed;
        Ok(changed.into_iter().collect())
    }

    /// Forgets what was seen of `key`, so the next poll reports it again (present or not): for
    /// a reader that failed to read it after a poll named it.
    pub fn forget(&mut self, key: &str) {
        self.stamps.remove(key);
        self.again.insert(key.to_owned());
    }
}
