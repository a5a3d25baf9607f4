//! One task per sink: takes records in order, delivers them in batches,
//! retries with backoff, and at shutdown writes what it still holds in
//! memory to the spool.

use std::{
    collections::VecDeque,
    future::Future,
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use tokio::{sync::watch, time::Instant};

use super::{encode, queue::Shared, retry::Backoff, spool::Record};
use crate::event::Event;

/// A delivery that stopped part-way: the first `delivered` records of the
/// batch are confirmed, the rest are not.
#[derive(Debug)]
pub struct Failure {
    pub delivered: usize,
    pub error: anyhow::Error,
    /// The receiver refused the rest for good (malformed for it): retrying
    /// cannot help, so they are counted as dropped.
    pub rejected: bool,
}

impl Failure {
    pub fn none(error: impl Into<anyhow::Error>) -> Self {
        Self {
            delivered: 0,
            error: error.into(),
            rejected: false,
        }
    }

    pub fn rejected(self) -> Self {
        Self {
            rejected: true,
            ..self
        }
    }

    /// The receiver took `accepted` records and refused the rest for good.
    pub fn partly_rejected(self, accepted: usize) -> Self {
        Self {
            delivered: accepted,
            rejected: true,
            ..self
        }
    }
}

/// Where a sink's records go.
pub trait Destination: Send + 'static {
    /// Records per delivery.
    fn max_batch(&self) -> usize;
    /// Delivers `batch` in order; `Ok` only once the destination confirmed it.
    fn send(&mut self, batch: &[Record]) -> impl Future<Output = Result<(), Failure>> + Send;
}

/// Where the records in flight came from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    Queue,
    /// A spool segment (by its first seq), still on disk.
    Segment(u64),
}

pub struct Worker<D> {
    shared: Arc<Shared>,
    dest: D,
    backoff: Backoff,
    /// Set at shutdown: the instant after which the worker stops trying.
    stop: watch::Receiver<Option<Instant>>,
    segment: Option<(u64, VecDeque<Record>)>,
    batch: Vec<Record>,
    /// The events taken from the queue to encode, outside its lock; kept
    /// between batches (a vector per batch was an allocation and a free).
    taken: Vec<Arc<Event>>,
    source: Source,
}

impl<D: Destination> Worker<D> {
    pub fn new(
        shared: Arc<Shared>,
        dest: D,
        backoff: Backoff,
        stop: watch::Receiver<Option<Instant>>,
    ) -> Self {
        Self {
            shared,
            dest,
            backoff,
            stop,
            segment: None,
            batch: Vec::new(),
            taken: Vec::new(),
            source: Source::Queue,
        }
    }

    fn deadline(&self) -> Option<Instant> {
        *self.stop.borrow()
    }

    /// Fills `batch`: the taken spool segment first, then the queue, then
    /// the next spool segment. False when there is nothing to send.
    fn fill(&mut self) -> bool {
        let max = self.dest.max_batch();
        if let Some((first, recs)) = self.segment.as_mut() {
            if !recs.is_empty() {
                let n = recs.len().min(max);
                self.batch.extend(recs.drain(..n));
                self.source = Source::Segment(*first);
                return true;
            }
        }
        let mut b = self.shared.buffers.lock().unwrap();
        if !b.queue.is_empty() {
            let n = b.queue.len().min(max);
            self.taken.extend(b.queue.drain(..n));
            drop(b);
            for ev in self.taken.drain(..) {
                match self.shared.encoder.encode(&ev) {
                    Some(bytes) => self.batch.push(Record { seq: ev.seq, bytes }),
                    None => {
                        self.shared.counters.skipped.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            self.source = Source::Queue;
            return !self.batch.is_empty() || self.fill();
        }
        let Some(spool) = b.spool.as_mut() else {
            return false;
        };
        match spool.take_oldest() {
            Ok(Some((first, recs))) => {
                drop(b);
                self.segment = Some((first, recs.into()));
                // An all-delivered segment is released by the empty batch.
                let n = self.fill_from_segment(max);
                self.source = Source::Segment(first);
                n > 0 || self.release_segment()
            }
            Ok(None) => false,
            Err(e) => {
                drop(b);
                tracing::error!("sink {}: {e:#}", self.shared.name);
                false
            }
        }
    }

    fn fill_from_segment(&mut self, max: usize) -> usize {
        let Some((_, recs)) = self.segment.as_mut() else {
            return 0;
        };
        let n = recs.len().min(max);
        self.batch.extend(recs.drain(..n));
        n
    }

    /// Deletes the taken segment once it is fully delivered; then looks for more.
    fn release_segment(&mut self) -> bool {
        if let Some((first, recs)) = &self.segment {
            if recs.is_empty() {
                let first = *first;
                self.segment = None;
                if let Some(s) = self.shared.buffers.lock().unwrap().spool.as_mut() {
                    if let Err(e) = s.release(first) {
                        tracing::error!("sink {}: {e:#}", self.shared.name);
                    }
                }
                return self.fill();
            }
        }
        false
    }

    /// Confirms the first `n` records in flight.
    fn confirm(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        let last = self.batch[n - 1].seq;
        for r in self.batch.drain(..n) {
            encode::recycle(r.bytes);
        }
        self.shared
            .counters
            .delivered
            .fetch_add(n as u64, Ordering::Relaxed);
        if let Source::Segment(_) = self.source {
            if let Some(s) = self.shared.buffers.lock().unwrap().spool.as_mut() {
                s.mark_delivered(last);
            }
        }
    }

    pub async fn run(mut self) {
        loop {
            if self.batch.is_empty() {
                if self.source != Source::Queue {
                    self.release_segment();
                }
                if self.batch.is_empty() && !self.fill() {
                    if self.deadline().is_some() {
                        break;
                    }
                    tokio::select! {
                        _ = self.shared.wake.notified() => {}
                        _ = self.stop.changed() => {}
                    }
                    continue;
                }
            }
            if self.deadline().is_some_and(|d| Instant::now() >= d) {
                break;
            }
            let sent = match self.deadline() {
                // A send cut short here is unconfirmed: it is spooled and sent again.
                Some(d) => tokio::time::timeout_at(d, self.dest.send(&self.batch))
                    .await
                    .unwrap_or_else(|_| Err(Failure::none(anyhow::anyhow!("shutdown deadline")))),
                None => self.dest.send(&self.batch).await,
            };
            match sent {
                Ok(()) => {
                    let n = self.batch.len();
                    self.confirm(n);
                    self.backoff.reset();
                    if self.shared.down.swap(false, Ordering::Relaxed) {
                        tracing::info!("sink {}: delivering again", self.shared.name);
                    }
                }
                Err(f) if f.rejected => {
                    self.confirm(f.delivered.min(self.batch.len()));
                    let n = self.batch.len();
                    if let (Some(last), Source::Segment(_)) = (self.batch.last(), self.source) {
                        if let Some(s) = self.shared.buffers.lock().unwrap().spool.as_mut() {
                            s.mark_delivered(last.seq);
                        }
                    }
                    self.batch.clear();
                    self.shared
                        .counters
                        .dropped
                        .fetch_add(n as u64, Ordering::Relaxed);
                    tracing::error!(
                        "sink {}: {n} events refused by the receiver and dropped: {:#}",
                        self.shared.name,
                        f.error
                    );
                }
                Err(f) => {
                    self.confirm(f.delivered.min(self.batch.len()));
                    self.shared
                        .counters
                        .failed
                        .fetch_add(self.batch.len() as u64, Ordering::Relaxed);
                    let delay = self.backoff.next_delay();
                    if !self.shared.down.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            "sink {}: delivery failed: {:#}; retrying with backoff (events queue, then spool)",
                            self.shared.name,
                            f.error
                        );
                    }
                    self.pause(delay).await;
                }
            }
        }
        self.persist();
    }

    /// Sleeps `delay`, or less when shutdown's deadline comes first.
    async fn pause(&mut self, delay: Duration) {
        let until = Instant::now() + delay;
        loop {
            let until = self.deadline().map_or(until, |d| d.min(until));
            tokio::select! {
                _ = tokio::time::sleep_until(until) => return,
                r = self.stop.changed() => if r.is_err() { tokio::time::sleep_until(until).await; return },
            }
        }
    }

    /// Shutdown: what is still in memory goes to the spool (or is counted lost).
    fn persist(&mut self) {
        let mut b = self.shared.buffers.lock().unwrap();
        b.closed = true;
        let mut records = Vec::new();
        if self.source == Source::Queue {
            records.append(&mut self.batch);
        }
        let queued: Vec<_> = b.queue.drain(..).collect();
        for ev in queued {
            match self.shared.encoder.encode(&ev) {
                Some(bytes) => records.push(Record { seq: ev.seq, bytes }),
                None => {
                    self.shared.counters.skipped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        let lost = match b.spool.as_mut() {
            Some(s) => {
                let saved = s.save_delivered().and_then(|()| s.prepend(&records));
                match saved {
                    Ok(()) => {
                        if !records.is_empty() {
                            tracing::info!(
                                "sink {}: {} undelivered events kept in the spool for the next start",
                                self.shared.name,
                                records.len()
                            );
                        }
                        0
                    }
                    Err(e) => {
                        tracing::error!("sink {}: cannot save the spool: {e:#}", self.shared.name);
                        records.len()
                    }
                }
            }
            None => records.len(),
        };
        if lost > 0 {
            self.shared
                .counters
                .dropped
                .fetch_add(lost as u64, Ordering::Relaxed);
            tracing::error!(
                "sink {}: {lost} events undelivered at shutdown and this sink has no spool; they are lost",
                self.shared.name
            );
        }
    }
}
