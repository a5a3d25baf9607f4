//! What a sink has yet to deliver: a bounded memory queue, the spool behind
//! it, and the counters of both.
//!
//! Order is kept by one rule: once anything is on disk, new events go to
//! disk too, until the worker has taken it all back. So everything in the
//! memory queue is older than everything in the spool, and the worker takes
//! from the queue first.
//!
//! The emitter only ever appends here; it never waits for the destination.

use std::{
    collections::VecDeque,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
};

use serde::Serialize;
use tokio::sync::Notify;

use super::{
    encode::Encoder,
    spool::{Record, Spool},
};
use crate::event::Event;

/// Totals of one sink, for agent_status and /metrics.
#[derive(Debug, Default)]
pub struct SinkCounters {
    pub delivered: AtomicU64,
    /// Delivery attempts that failed, in events (a retried event counts again).
    pub failed: AtomicU64,
    /// Events written to the spool because the queue was full.
    pub spooled: AtomicU64,
    /// Events lost: queue and spool full (or the spool unwritable).
    pub dropped: AtomicU64,
    /// Events the sink's format cannot carry (agent_status in OCSF).
    pub skipped: AtomicU64,
}

#[derive(Debug, Serialize)]
pub struct SinkStats {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub format: &'static str,
    /// Events in memory now.
    pub queued: u64,
    /// Events on disk now, and the spool's bytes.
    pub in_spool: u64,
    pub spool_bytes: u64,
    pub delivered: u64,
    pub failed: u64,
    pub spooled: u64,
    pub dropped: u64,
    pub skipped: u64,
    /// Whether the last delivery attempt failed.
    pub down: bool,
}

pub struct Buffers {
    pub queue: VecDeque<Arc<Event>>,
    pub spool: Option<Spool>,
    /// Set by the worker at shutdown: later pushes go straight to the spool.
    pub closed: bool,
}

/// The part of a sink the emitter and the worker share.
pub struct Shared {
    pub name: String,
    pub kind: &'static str,
    pub format: &'static str,
    pub capacity: usize,
    pub encoder: Encoder,
    pub buffers: Mutex<Buffers>,
    pub wake: Notify,
    pub counters: SinkCounters,
    pub down: std::sync::atomic::AtomicBool,
}

impl Shared {
    /// Hands an event to the sink: queue, else spool, else a counted drop.
    pub fn push(&self, ev: &Arc<Event>) {
        let mut b = self.buffers.lock().unwrap();
        let spool_busy = b.spool.as_ref().is_some_and(Spool::has_records);
        if !b.closed && !spool_busy && b.queue.len() < self.capacity {
            b.queue.push_back(ev.clone());
            drop(b);
            self.wake.notify_one();
            return;
        }
        let Some(spool) = b.spool.as_mut() else {
            drop(b);
            self.drop_one();
            return;
        };
        let Some(bytes) = self.encoder.encode(ev) else {
            drop(b);
            self.counters.skipped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        match spool.append(&Record { seq: ev.seq, bytes }) {
            Ok(true) => {
                drop(b);
                self.counters.spooled.fetch_add(1, Ordering::Relaxed);
                self.wake.notify_one();
            }
            Ok(false) => {
                drop(b);
                self.drop_one();
            }
            Err(e) => {
                drop(b);
                tracing::error!("sink {}: {e:#}", self.name);
                self.drop_one();
            }
        }
    }

    fn drop_one(&self) {
        let n = self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        if n.is_power_of_two() || n == 0 {
            tracing::warn!(
                "sink {}: queue and spool full, {} events dropped so far (counted in agent_status and /metrics)",
                self.name,
                n + 1
            );
        }
    }

    pub fn stats(&self) -> SinkStats {
        let (queued, in_spool, spool_bytes) = {
            let b = self.buffers.lock().unwrap();
            let (r, by) = b
                .spool
                .as_ref()
                .map(|s| (s.records(), s.bytes()))
                .unwrap_or((0, 0));
            (b.queue.len() as u64, r, by)
        };
        let c = &self.counters;
        SinkStats {
            name: self.name.clone(),
            kind: self.kind,
            format: self.format,
            queued,
            in_spool,
            spool_bytes,
            delivered: c.delivered.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            spooled: c.spooled.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            skipped: c.skipped.load(Ordering::Relaxed),
            down: self.down.load(Ordering::Relaxed),
        }
    }
}
