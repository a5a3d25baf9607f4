//! Secret reads gathered in memory per (path, reader identity) and written
//! to the inventory in one transaction once the oldest has waited [`READ_FLUSH`].

use std::time::{Duration, Instant};

use crate::{
    event::Process,
    secrets::inventory::{PendingReads, ReaderRecord},
};

/// How long a read may wait in memory before it is written to the inventory.
pub const READ_FLUSH: Duration = Duration::from_millis(250);

/// Reads not yet in the inventory, by path and reader identity: one SQLite
/// transaction per flush instead of one per read. Two levels, so that a
/// read merged into a pending record allocates nothing (at the drop onset,
/// building the key of every read was a fifth of the secret monitor's time).
#[derive(Debug, Default)]
pub struct ReadBatch {
    pending: PendingReads,
    since: Option<Instant>,
}

impl ReadBatch {
    /// Adds `reads` reads of `path` by `reader` (whose `identity_key` is
    /// `identity`) at `at_ns` (epoch ns; more than one when the kernel
    /// folded repeats into this record), merged into the pending record of
    /// the same identity.
    pub fn record(&mut self, path: &str, identity: &str, reader: &Process, at_ns: u64, reads: u64) {
        // One lookup per level for a read merged into a pending record.
        let by_reader = match self.pending.get_mut(path) {
            Some(m) => m,
            None => self.pending.entry(path.to_string()).or_default(),
        };
        let r = match by_reader.get_mut(identity) {
            Some(r) => r,
            None => by_reader
                .entry(identity.to_string())
                .or_insert(ReaderRecord {
                    identity: identity.to_string(),
                    exe_path: String::new(),
                    exe_sha256: None,
                    container_id: None,
                    pod: None,
                    uid: None,
                    count: 0,
                    first_read_ns: at_ns,
                    last_read_ns: at_ns,
                }),
        };
        r.count += reads;
        r.first_read_ns = r.first_read_ns.min(at_ns);
        r.last_read_ns = r.last_read_ns.max(at_ns);
        r.uid = Some(reader.uid);
        if r.exe_path != reader.exe.path {
            r.exe_path.clone_from(&reader.exe.path);
        }
        if reader.exe.sha256.is_some() {
            r.exe_sha256.clone_from(&reader.exe.sha256);
        }
        self.since.get_or_insert_with(Instant::now);
    }

    /// Whether the oldest pending read has waited [`READ_FLUSH`] at `now`.
    pub fn is_due(&self, now: Instant) -> bool {
        self.since
            .is_some_and(|t| now.saturating_duration_since(t) >= READ_FLUSH)
    }

    /// Pending (path, reader identity) records (the writer counts its own).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.pending
            .values()
            .map(std::collections::HashMap::len)
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// The pending record of (`path`, `identity`), if any.
    pub fn get(&self, path: &str, identity: &str) -> Option<&ReaderRecord> {
        self.pending.get(path)?.get(identity)
    }

    /// Every pending read, for one write (see `InventoryWriter`); the batch
    /// starts empty again.
    pub fn take(&mut self) -> Option<PendingReads> {
        self.since = None;
        (!self.pending.is_empty()).then(|| std::mem::take(&mut self.pending))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::{
        inventory::{InventoryStore, InventoryWriter, SecretRecord, Write, DB_FILE_NAME},
        usage::identity_key,
    };

    const PATH: &str = "/root/.aws/credentials";

    fn secret(path: &str) -> SecretRecord {
        SecretRecord {
            path: path.to_string(),
            catalog_id: "aws-cli-credentials".into(),
            kind: "cloud_credentials".into(),
            fingerprint: None,
            dev: 1,
            inode: 2,
            size: 3,
            mtime_ns: 4,
            first_seen_ns: 5,
            present: true,
        }
    }

    #[test]
    fn reads_by_one_identity_merge_into_one_record() {
        let p = crate::testdata::process();
        let mut batch = ReadBatch::default();
        batch.record(PATH, &identity_key(&p), &p, 300, 1);
        batch.record(PATH, &identity_key(&p), &p, 100, 1);
        batch.record(PATH, &identity_key(&p), &p, 200, 1);
        batch.record(PATH, &identity_key(&p), &p, 150, 41);
        assert_eq!(batch.len(), 1);
        let r = batch.get(PATH, &identity_key(&p)).expect("pending record");
        assert_eq!(r.count, 44, "kernel-folded repeats count as reads: {r:?}");
        assert_eq!((r.first_read_ns, r.last_read_ns), (100, 300), "{r:?}");
        assert_eq!(r.exe_path, "/usr/bin/curl");
        assert_eq!(r.exe_sha256.as_deref(), Some(crate::testdata::SHA256));
    }

    #[test]
    fn other_identities_and_paths_get_their_own_records() {
        let p = crate::testdata::process();
        let mut other = p.clone();
        other.exe.path = "/usr/bin/aws".into();
        other.exe.sha256 = Some("ab".repeat(32));
        let mut batch = ReadBatch::default();
        batch.record(PATH, &identity_key(&p), &p, 1, 1);
        batch.record(PATH, &identity_key(&other), &other, 2, 1);
        batch.record("/root/.netrc", &identity_key(&p), &p, 3, 1);
        assert_eq!(batch.len(), 3);
        assert_eq!(batch.get(PATH, &identity_key(&other)).unwrap().count, 1);
    }

    #[test]
    fn the_same_binary_under_a_new_path_refreshes_the_exe_path() {
        let p = crate::testdata::process();
        let mut moved = p.clone();
        moved.exe.path = "/opt/curl/bin/curl".into();
        assert_eq!(identity_key(&moved), identity_key(&p), "the hash names it");
        let mut batch = ReadBatch::default();
        batch.record(PATH, &identity_key(&p), &p, 1, 1);
        batch.record(PATH, &identity_key(&moved), &moved, 2, 1);
        let r = batch.get(PATH, &identity_key(&p)).unwrap();
        assert_eq!((r.count, r.exe_path.as_str()), (2, "/opt/curl/bin/curl"));
    }

    #[test]
    fn a_batch_is_due_only_after_the_flush_delay() {
        let mut batch = ReadBatch::default();
        assert!(!batch.is_due(Instant::now() + READ_FLUSH * 4), "empty");
        let p = crate::testdata::process();
        batch.record(PATH, &identity_key(&p), &p, 1, 1);
        let now = Instant::now();
        assert!(!batch.is_due(now));
        assert!(batch.is_due(now + READ_FLUSH));
    }

    #[test]
    fn a_taken_batch_writes_counts_and_skips_unknown_secrets() {
        let tmp = tempfile::tempdir().unwrap();
        let store = InventoryStore::open(&tmp.path().join(DB_FILE_NAME)).unwrap();
        store.upsert_secret(&secret(PATH)).unwrap();
        let writer = InventoryWriter::start(store.open_another().unwrap()).unwrap();
        let p = crate::testdata::process();
        let mut batch = ReadBatch::default();
        batch.record(PATH, &identity_key(&p), &p, 10, 1);
        batch.record(PATH, &identity_key(&p), &p, 20, 1);
        batch.record("/never/upserted", &identity_key(&p), &p, 30, 1);
        writer.send(Write::Reads(batch.take().unwrap()));
        writer.sync();
        assert_eq!(writer.lost(), 1, "the unknown secret is skipped");
        assert!(batch.is_empty());
        assert!(!batch.is_due(Instant::now() + READ_FLUSH * 4));
        let items = store.items(0).unwrap();
        let readers = &items[0].readers;
        assert_eq!(readers.len(), 1, "{items:?}");
        assert_eq!(readers[0].count, 2);
        assert_eq!(
            (readers[0].first_read_ns, readers[0].last_read_ns),
            (10, 20)
        );
        assert!(batch.take().is_none(), "nothing left to write");
    }
}
