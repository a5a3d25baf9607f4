//! Where an emitted event goes besides the sinks: the recent-events history
//! the API answers from, and the live in-process subscribers (`proctor
//! events --follow`, attestation watchers).
//!
//! The history is filled by the emitter itself, one push under a lock per
//! event. It used to be a subscriber of the broadcast like the others: a
//! task woken and polled for every event on the pipeline's one thread,
//! 7-8% of the agent's CPU per event at 50k records/s for a history nobody
//! may ever read. The broadcast now only costs something while somebody
//! follows the stream.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
};

use tokio::sync::broadcast;

use crate::event::Event;

/// The events a live subscriber may fall behind by before it is told it
/// lost some (the API ends its stream with DATA_LOSS).
const LIVE_CAPACITY: usize = 64 * 1024;

#[derive(Clone)]
pub struct Feed {
    pub recent: Arc<Recent>,
    live: broadcast::Sender<Arc<Event>>,
}

impl Feed {
    /// A feed keeping the last `recent` events (0: none).
    pub fn new(recent: usize) -> Self {
        Self::with_live_capacity(recent, LIVE_CAPACITY)
    }

    pub fn with_live_capacity(recent: usize, live: usize) -> Self {
        Self {
            recent: Recent::new(recent),
            live: broadcast::channel(live).0,
        }
    }

    pub fn publish(&self, ev: Arc<Event>) {
        if self.recent.cap > 0 {
            self.recent.push(ev.clone());
        }
        // No live subscriber is the usual case, not an error.
        let _ = self.live.send(ev);
    }

    /// The events published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.live.subscribe()
    }
}

/// The most recent events, oldest first.
pub struct Recent {
    buf: Mutex<VecDeque<Arc<Event>>>,
    cap: usize,
}

impl Recent {
    fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self {
            buf: Mutex::new(VecDeque::with_capacity(cap.min(4096))),
            cap,
        })
    }

    fn push(&self, ev: Arc<Event>) {
        let mut b = self.buf.lock().unwrap();
        if b.len() == self.cap {
            b.pop_front();
        }
        b.push_back(ev);
    }

    /// The kept events `keep` accepts, at most `limit` (the newest ones),
    /// and the seq of the newest kept event (accepted or not).
    pub fn snapshot(
        &self,
        keep: impl Fn(&Event) -> bool,
        limit: usize,
    ) -> (Vec<Arc<Event>>, Option<u64>) {
        let b = self.buf.lock().unwrap();
        let last = b.back().map(|e| e.seq);
        let mut out: Vec<Arc<Event>> = b
            .iter()
            .rev()
            .filter(|e| keep(e))
            .take(limit)
            .cloned()
            .collect();
        out.reverse();
        (out, last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{event::Kind, testdata};

    fn numbered(seq: u64, kind: Kind) -> Arc<Event> {
        Arc::new(Event {
            seq,
            ..testdata::event(kind)
        })
    }

    #[test]
    fn the_history_keeps_the_newest_events_and_subscribers_get_what_follows() {
        let feed = Feed::with_live_capacity(3, 16);
        feed.publish(numbered(1, Kind::ProcessExec));
        let mut live = feed.subscribe();
        for seq in 2..=5 {
            let kind = if seq % 2 == 0 {
                Kind::Finding
            } else {
                Kind::FileOpen
            };
            feed.publish(numbered(seq, kind));
        }
        let seqs = |evs: Vec<Arc<Event>>| evs.iter().map(|e| e.seq).collect::<Vec<_>>();
        let (all, last) = feed.recent.snapshot(|_| true, usize::MAX);
        assert_eq!((seqs(all), last), (vec![3, 4, 5], Some(5)));
        // The limit keeps the newest; the newest seq is reported even when
        // the filter leaves it out.
        let (findings, last) = feed.recent.snapshot(|e| e.kind == Kind::Finding, 1);
        assert_eq!((seqs(findings), last), (vec![4], Some(5)));
        let got: Vec<u64> = (0..4).map(|_| live.try_recv().unwrap().seq).collect();
        assert_eq!(got, vec![2, 3, 4, 5]);
        assert!(live.try_recv().is_err());
    }

    #[test]
    fn no_history_keeps_nothing() {
        let feed = Feed::new(0);
        feed.publish(numbered(1, Kind::ProcessExec));
        let (kept, last) = feed.recent.snapshot(|_| true, usize::MAX);
        assert!(kept.is_empty());
        assert_eq!(last, None);
    }
}
