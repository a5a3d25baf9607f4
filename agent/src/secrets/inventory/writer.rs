//! The inventory's writes, off the event path: one thread owns the writing
//! connection and applies writes in the order they were sent.
//!
//! A write waits up to [`super::BUSY_TIMEOUT`] for a lock another
//! connection holds (a backup, an administrator's `sqlite3` shell, a second
//! agent on the same `state_dir`), and a disk can stall. On the event path
//! that wait held the ring-buffer reader: with the inventory locked for 12 s,
//! 142k of 240k kernel records were dropped at 20k secret reads/s. Here only
//! this thread waits; a write refused as busy is retried until it goes
//! through, while the next ones queue behind it. A full queue refuses the
//! write at once and counts it, so the event path never blocks on the file.

use foldhash::HashMap;
use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc::{self, SyncSender, TrySendError},
        Arc,
    },
    thread::JoinHandle,
    time::Duration,
};

use super::{InventoryStore, PendingDestinations, ReaderRecord, SecretRecord, StoreError};

/// Writes waiting for the thread. The read and destination batches come at
/// most every 250 ms, so this outlasts a lock of a few minutes.
const QUEUE: usize = 1024;

/// Pause between attempts at a write the store refused as busy (each attempt
/// itself waits up to the busy timeout).
const BUSY_RETRY: Duration = Duration::from_millis(250);

/// Reads by secret path, then by reader identity (see `ReadBatch`).
pub type PendingReads = HashMap<String, HashMap<String, ReaderRecord>>;

/// One write for the inventory thread.
pub enum Write {
    Secret(SecretRecord),
    Absent(String),
    /// `secret-stale` reported for the secret at the path, at ns.
    StaleReported(String, u64),
    Reads(PendingReads),
    Destinations(PendingDestinations),
    /// Answered once every write sent before it is applied or given up.
    Barrier(mpsc::Sender<()>),
}

impl Write {
    /// How many records the write carries: what a failure counts.
    fn records(&self) -> u64 {
        match self {
            Write::Reads(r) => r.values().map(|by| by.len() as u64).sum(),
            Write::Destinations(d) => d.len() as u64,
            Write::Secret(_) | Write::Absent(_) | Write::StaleReported(..) => 1,
            Write::Barrier(_) => 0,
        }
    }

    /// Applies the write; `Ok(n)`: `n` records the store skipped (a read of
    /// a secret it does not know).
    fn apply(&self, store: &InventoryStore) -> Result<u64, StoreError> {
        match self {
            Write::Secret(rec) => store.upsert_secret(rec).map(|()| 0),
            Write::Absent(path) => store.mark_absent(path).map(|()| 0),
            Write::StaleReported(path, at) => store.mark_stale_reported(path, *at).map(|()| 0),
            Write::Reads(reads) => store
                .record_reads(
                    reads
                        .iter()
                        .flat_map(|(path, by)| by.values().map(move |r| (path.as_str(), r))),
                )
                .map(|skipped| skipped as u64),
            Write::Destinations(d) => store.record_destinations(d).map(|()| 0),
            Write::Barrier(_) => Ok(0),
        }
    }
}

#[derive(Default)]
struct Counters {
    /// Records the store refused or skipped.
    failed: AtomicU64,
    /// Records refused because the queue was full.
    dropped: AtomicU64,
    /// The last write found the queue full (warned once per episode).
    full: AtomicBool,
    closing: AtomicBool,
}

/// The sending side; dropping it writes what was sent and joins the thread.
pub struct InventoryWriter {
    tx: Option<SyncSender<Write>>,
    counters: Arc<Counters>,
    thread: Option<JoinHandle<()>>,
}

impl InventoryWriter {
    /// Starts the thread that owns `store` (its own connection to the file).
    pub fn start(store: InventoryStore) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let counters = Arc::new(Counters::default());
        let c = counters.clone();
        let thread = std::thread::Builder::new()
            .name("proctor-inventory".into())
            .spawn(move || run(&store, &rx, &c))?;
        Ok(Self {
            tx: Some(tx),
            counters,
            thread: Some(thread),
        })
    }

    /// Queues `w` without waiting; counted as dropped when the queue is full.
    pub fn send(&self, w: Write) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(w) {
            Ok(()) => self.counters.full.store(false, Ordering::Relaxed),
            Err(TrySendError::Full(w)) => {
                self.counters
                    .dropped
                    .fetch_add(w.records(), Ordering::Relaxed);
                // Once per episode: a lock that lasts sends a batch every 250 ms.
                if !self.counters.full.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "inventory: records not written: {QUEUE} writes are already waiting for the database (is it locked, or its disk stalled?); counted in store_errors"
                    );
                }
            }
            Err(TrySendError::Disconnected(w)) => {
                self.counters
                    .failed
                    .fetch_add(w.records(), Ordering::Relaxed);
            }
        }
    }

    /// Waits until every write sent before this call is applied or given
    /// up (tests, and readers of the file that want what was sent).
    pub fn sync(&self) {
        let Some(tx) = &self.tx else { return };
        let (done, wait) = mpsc::channel();
        if tx.send(Write::Barrier(done)).is_ok() {
            let _ = wait.recv();
        }
    }

    /// Records that did not reach the inventory so far: refused by the
    /// store, skipped, or dropped at a full queue.
    pub fn lost(&self) -> u64 {
        self.counters.failed.load(Ordering::Relaxed) + self.counters.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for InventoryWriter {
    fn drop(&mut self) {
        // Stopping: a write still refused as busy is given up, not retried.
        self.counters.closing.store(true, Ordering::Relaxed);
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(store: &InventoryStore, rx: &mpsc::Receiver<Write>, c: &Counters) {
    let mut busy_since_logged = false;
    // Stopping with the file still locked: each write would wait out the
    // busy timeout again, so the rest are counted, not tried.
    let mut locked_at_stop = false;
    while let Ok(w) = rx.recv() {
        if let Write::Barrier(done) = &w {
            let _ = done.send(());
            continue;
        }
        if locked_at_stop {
            c.failed.fetch_add(w.records(), Ordering::Relaxed);
            continue;
        }
        loop {
            match w.apply(store) {
                Ok(skipped) => {
                    c.failed.fetch_add(skipped, Ordering::Relaxed);
                    if busy_since_logged {
                        tracing::info!("inventory: writing again, the database lock is gone");
                        busy_since_logged = false;
                    }
                    break;
                }
                Err(e) if e.is_busy() && !c.closing.load(Ordering::Relaxed) => {
                    if !busy_since_logged {
                        tracing::warn!("{e}; the write is retried, events are not held up");
                        busy_since_logged = true;
                    }
                    std::thread::sleep(BUSY_RETRY);
                }
                Err(e) => {
                    tracing::warn!("{} records not written: {e}", w.records());
                    c.failed.fetch_add(w.records(), Ordering::Relaxed);
                    locked_at_stop = e.is_busy();
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::inventory::{
        test_records::{reader, secret},
        DB_FILE_NAME,
    };

    const PATH: &str = "/root/.aws/credentials";

    fn reads(n: u64) -> PendingReads {
        let mut r = reader("id-1");
        r.count = n;
        let by_reader = [(r.identity.clone(), r)].into_iter().collect();
        [(PATH.to_string(), by_reader)].into_iter().collect()
    }

    #[test]
    fn writes_apply_in_order_and_a_read_of_an_unknown_secret_is_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DB_FILE_NAME);
        let w = InventoryWriter::start(InventoryStore::open(&path).unwrap()).unwrap();
        w.send(Write::Reads(reads(1)));
        w.sync();
        assert_eq!(w.lost(), 1, "no secret row yet: skipped and counted");
        w.send(Write::Secret(secret(PATH, 5)));
        w.send(Write::Reads(reads(3)));
        w.sync();
        assert_eq!(w.lost(), 1);
        let items = InventoryStore::open(&path).unwrap().items(0).unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].readers[0].count, 3);
    }

    #[test]
    fn a_write_refused_as_busy_waits_for_the_lock_and_nothing_is_lost() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DB_FILE_NAME);
        let w = InventoryWriter::start(InventoryStore::open(&path).unwrap()).unwrap();
        w.send(Write::Secret(secret(PATH, 5)));
        w.sync();
        // Another connection takes the write lock for longer than the busy timeout.
        let holder = rusqlite::Connection::open(&path).unwrap();
        holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
        w.send(Write::Reads(reads(2)));
        std::thread::sleep(super::super::BUSY_TIMEOUT + Duration::from_secs(1));
        holder.execute_batch("COMMIT").unwrap();
        w.sync();
        assert_eq!(w.lost(), 0);
        let items = InventoryStore::open(&path).unwrap().items(0).unwrap();
        assert_eq!(items[0].readers[0].count, 2);
    }
}
