//! Where the workloads that read a secret connected while they carried it: gathered in memory on the event path, written in one transaction with the reads.

use std::collections::HashMap;

use rusqlite::params;

use super::{InventoryStore, StoreError};

/// One destination a workload connected to while it carried a secret.
#[derive(Debug, Clone, serde::Serialize, PartialEq)]
pub struct DestinationRecord {
    /// The connecting workload's identity key (as the readers table's).
    pub identity: String,
    /// `ip:port`, IPv6 as `[ip]:port`.
    pub destination: String,
    pub count: u64,
    pub first_ns: u64,
    pub last_ns: u64,
}

/// More distinct (secret, workload, destination) triples than this waiting
/// for a write are dropped, and counted: a process scanning the network
/// must not grow the agent without bound.
pub const MAX_PENDING: usize = 4096;

/// Connections of secret carriers: (path, identity, destination) to
/// (count, first ns, last ns).
pub type PendingDestinations = HashMap<(String, String, String), (u64, u64, u64)>;

/// Connections of secret carriers not yet written to the inventory.
#[derive(Debug, Default)]
pub struct DestinationBatch {
    pending: PendingDestinations,
    /// Triples dropped because [`MAX_PENDING`] were waiting.
    pub dropped: u64,
}

impl DestinationBatch {
    /// Notes that workload `identity`, carrying the secret at `path`,
    /// connected to `destination` at `at_ns`.
    pub fn record(&mut self, path: &str, identity: &str, destination: &str, at_ns: u64) {
        let key = (path.to_owned(), identity.to_owned(), destination.to_owned());
        if self.pending.len() >= MAX_PENDING && !self.pending.contains_key(&key) {
            self.dropped += 1;
            return;
        }
        let e = self.pending.entry(key).or_insert((0, at_ns, at_ns));
        e.0 += 1;
        e.1 = e.1.min(at_ns);
        e.2 = e.2.max(at_ns);
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// What is pending, for one write (see `InventoryWriter`); the batch
    /// starts empty again.
    pub fn take(&mut self) -> Option<PendingDestinations> {
        (!self.pending.is_empty()).then(|| std::mem::take(&mut self.pending))
    }
}

impl InventoryStore {
    /// Merges connections of secret carriers: per (secret path, identity,
    /// destination), count added, first/last widened. A secret the store
    /// does not know (never upserted) is skipped.
    pub fn record_destinations(&self, batch: &PendingDestinations) -> Result<(), StoreError> {
        self.ensure_writable()?;
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(|err| self.sqlite_err("begin record_destinations", err))?;
        {
            let mut stmt = self
                .conn
                .prepare_cached(
                    "INSERT INTO destinations (path, identity, destination, count, first_ns, last_ns)
                     SELECT ?1, ?2, ?3, ?4, ?5, ?6 WHERE EXISTS (SELECT 1 FROM secrets WHERE path = ?1)
                     ON CONFLICT(path, identity, destination) DO UPDATE SET
                         count    = count + excluded.count,
                         first_ns = MIN(first_ns, excluded.first_ns),
                         last_ns  = MAX(last_ns, excluded.last_ns)",
                )
                .map_err(|err| self.sqlite_err("prepare record_destinations", err))?;
            for ((path, identity, dest), (count, first, last)) in batch {
                stmt.execute(params![
                    path,
                    identity,
                    dest,
                    count.cast_signed(),
                    first.cast_signed(),
                    last.cast_signed(),
                ])
                .map_err(|err| self.sqlite_err("record_destinations", err))?;
            }
        }
        tx.commit()
            .map_err(|err| self.sqlite_err("commit record_destinations", err))
    }

    /// Destinations connected to by carriers of the secret at `path`, most
    /// recent first.
    pub fn destinations_of(&self, path: &str) -> Result<Vec<DestinationRecord>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT identity, destination, count, first_ns, last_ns FROM destinations
                 WHERE path = ?1 ORDER BY last_ns DESC, identity, destination",
            )
            .map_err(|err| self.sqlite_err("prepare destinations_of", err))?;
        stmt.query_map([path], |row| {
            Ok(DestinationRecord {
                identity: row.get(0)?,
                destination: row.get(1)?,
                count: row.get::<_, i64>(2)?.cast_unsigned(),
                first_ns: row.get::<_, i64>(3)?.cast_unsigned(),
                last_ns: row.get::<_, i64>(4)?.cast_unsigned(),
            })
        })
        .and_then(|rows| rows.collect())
        .map_err(|err| self.sqlite_err("destinations_of", err))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::inventory::{
        test_records::{secret, NS, T0},
        DB_FILE_NAME,
    };

    #[test]
    fn destinations_merge_per_workload_and_skip_unknown_secrets() {
        let tmp = tempfile::tempdir().unwrap();
        let store = InventoryStore::open(&tmp.path().join(DB_FILE_NAME)).unwrap();
        let p = "/root/.aws/credentials";
        store.upsert_secret(&secret(p, T0)).unwrap();
        let mut b = DestinationBatch::default();
        b.record(p, "id-a", "127.0.0.1:8443", T0 + 2 * NS);
        b.record(p, "id-a", "127.0.0.1:8443", T0 + NS);
        b.record(p, "id-b", "[::1]:443", T0 + 3 * NS);
        b.record("/never/seen", "id-a", "127.0.0.1:1", T0);
        store.record_destinations(&b.take().unwrap()).unwrap();
        assert!(b.is_empty() && b.take().is_none());
        b.record(p, "id-a", "127.0.0.1:8443", T0 + 5 * NS);
        store.record_destinations(&b.take().unwrap()).unwrap();
        let got = store.destinations_of(p).unwrap();
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0].identity, "id-a");
        assert_eq!(
            (got[0].count, got[0].first_ns, got[0].last_ns),
            (3, T0 + NS, T0 + 5 * NS)
        );
        assert_eq!(got[1].destination, "[::1]:443");
        assert!(store.destinations_of("/never/seen").unwrap().is_empty());
    }

    #[test]
    fn a_full_batch_counts_what_it_drops() {
        let mut b = DestinationBatch::default();
        for i in 0..MAX_PENDING + 3 {
            b.record("/s", "id", &format!("10.0.0.1:{i}"), T0);
        }
        assert_eq!(b.dropped, 3);
        b.record("/s", "id", "10.0.0.1:0", T0);
        assert_eq!(b.dropped, 3);
    }
}
