//! An inventory connection the ingest task lends to the blocking pool, one
//! read at a time: SQLite reads are file I/O that a stalled disk (or a
//! checkpoint on a slow one) holds for as long as it likes, and while the
//! ingest task waits nothing drains the kernel's ring buffer.

use anyhow::{anyhow, Result};
use futures::FutureExt;
use tokio::task::{JoinError, JoinHandle};

use crate::secrets::inventory::{InventoryStore, StoreError};

/// A read of the inventory, run on the blocking pool.
pub(super) type Read<R> = fn(&InventoryStore) -> Result<R, StoreError>;

/// The outcome of the blocking job in `slot` once it has ended (the slot
/// is then empty); never waits. None: no job, or one still running.
pub(super) fn take_finished<T>(slot: &mut Option<JoinHandle<T>>) -> Option<Result<T, JoinError>> {
    let job = slot.as_mut()?;
    if !job.is_finished() {
        return None;
    }
    let done = job.now_or_never()?;
    *slot = None;
    Some(done)
}

pub(super) struct LentStore<R> {
    /// The connection, while no read has it.
    idle: Option<InventoryStore>,
    /// The read in flight; it hands the connection back with its result.
    busy: Option<JoinHandle<(InventoryStore, Result<R, StoreError>)>>,
}

impl<R: Send + 'static> LentStore<R> {
    pub(super) fn new(store: InventoryStore) -> Self {
        LentStore {
            idle: Some(store),
            busy: None,
        }
    }

    /// The result of the read that finished since the last call, if one
    /// did; never waits.
    pub(super) fn finished(&mut self) -> Option<Result<R>> {
        Some(match take_finished(&mut self.busy)? {
            Ok((store, result)) => {
                self.idle = Some(store);
                result.map_err(Into::into)
            }
            // The connection went down with the task: no more reads.
            Err(e) => Err(anyhow!(
                "the inventory read on the blocking pool failed ({e}); its connection is gone, later reads are skipped until the agent restarts"
            )),
        })
    }

    /// Starts `read` on the blocking pool; false while one is in flight or
    /// after a failed one took the connection with it.
    pub(super) fn start(&mut self, read: Read<R>) -> bool {
        let Some(store) = self.idle.take() else {
            return false;
        };
        self.busy = Some(tokio::task::spawn_blocking(move || {
            let result = read(&store);
            (store, result)
        }));
        true
    }

    /// The connection, when no read has it (tests look at the inventory).
    #[cfg(test)]
    pub(super) fn idle(&self) -> Option<&InventoryStore> {
        self.idle.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::inventory::test_records::secret;

    #[tokio::test]
    async fn a_read_runs_on_the_blocking_pool_and_gives_the_connection_back() {
        let tmp = tempfile::tempdir().unwrap();
        let store = InventoryStore::open(&tmp.path().join("inventory.db")).unwrap();
        store.upsert_secret(&secret("/etc/app.key", 1)).unwrap();
        let mut lent = LentStore::new(store);
        assert!(lent.finished().is_none(), "nothing started");
        assert!(lent.start(InventoryStore::secrets));
        assert!(lent.idle().is_none(), "lent out while the read runs");
        assert!(!lent.start(InventoryStore::secrets), "one read at a time");
        let rows = loop {
            match lent.finished() {
                Some(r) => break r.unwrap(),
                None => tokio::time::sleep(std::time::Duration::from_millis(5)).await,
            }
        };
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].path, "/etc/app.key");
        assert!(lent.idle().is_some(), "the connection came back");
        assert!(lent.finished().is_none(), "a result is handed out once");
        assert!(
            lent.start(InventoryStore::secrets),
            "and it can be lent again"
        );
    }
}
