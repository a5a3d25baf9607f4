//! Orders, numbers and writes events.
//!
//! Events leave in the order the kernel produced them. An event whose
//! process is still being hashed waits for the hash until `hash.emit_wait`
//! after the kernel saw it, no longer: then it goes out with
//! `hash_status: "pending"`, and for an exec a `process_hash` event carries
//! the result once it is known. A slow hash (a huge binary, a stalled
//! filesystem) thus delays the stream by at most that bound, and a backlog
//! behind it goes out at once, its deadlines already past.

use foldhash::HashMap;
use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use futures::{future::BoxFuture, stream::FuturesUnordered, FutureExt, StreamExt};
use prometheus_client::metrics::counter::Counter;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::{
    clock::{boot_ns, to_epoch_ns},
    detect::findings,
    event::{Event, EventTime, ExitInfo, FileInfo, Finding, Kind, NetInfo, Process, SCHEMA},
    export::metrics::{FindingLabels, KindLabel, Metrics},
    export::sinks::SinkSet,
    identity::snapshot::Snapshot,
    pipeline::seq_store::SeqStore,
    pipeline::{feed::Feed, rate_limit::RateLimiter},
};

/// An event waiting for its place in the output.
pub struct Pending {
    pub kind: Kind,
    /// Kernel boot-time ns of the event.
    pub boot_ns: u64,
    pub subject: Subject,
    pub exit: Option<ExitInfo>,
    pub status: Option<serde_json::Value>,
    pub file: Option<Arc<FileInfo>>,
    pub finding: Option<Box<Finding>>,
    pub net: Option<Box<NetInfo>>,
    /// The finding rests on the pending event just before it: that event's
    /// seq is its evidence (none when the rate limiter suppressed it).
    pub refers_to_previous: bool,
    /// A finding about this very access (a secret read's), emitted right
    /// after this event as an event of its own, with the same process, time
    /// and file, and this event's seq as its evidence. Carried here rather
    /// than as a second pending event: that was a box, a trip through the
    /// channel and a look-up of the same view again, per read.
    pub then: Option<Box<Finding>>,
}

/// The events one kernel record yields, boxed where they are made (the
/// emitter's channel takes them so: a `Pending` by value was copied some
/// ten times on its way, costlier than the box). An access and its finding
/// fit inline, without a vector of their own.
pub type Yielded = smallvec::SmallVec<[Box<Pending>; 2]>;

/// Whose event it is.
pub enum Subject {
    /// The process's snapshot: its view is taken when the event goes out,
    /// waiting up to `hash.emit_wait` for hashes still computing.
    Snapshot(Snapshot),
    /// A view already finished: a secret read judges its reader's whole
    /// identity first, and taking the view again from the snapshot (its
    /// futures cloned, looked at and dropped, the pod source asked) was a
    /// twentieth of the agent's work per read.
    Resolved(Arc<Process>),
}

impl Pending {
    pub fn new(kind: Kind, boot_ns: u64, snapshot: Snapshot) -> Self {
        Self::about(kind, boot_ns, Subject::Snapshot(snapshot))
    }

    /// An event of `view`, a finished view of its process.
    pub fn resolved(kind: Kind, boot_ns: u64, view: Arc<Process>) -> Self {
        Self::about(kind, boot_ns, Subject::Resolved(view))
    }

    fn about(kind: Kind, boot_ns: u64, subject: Subject) -> Self {
        Self {
            kind,
            boot_ns,
            subject,
            exit: None,
            status: None,
            file: None,
            finding: None,
            net: None,
            refers_to_previous: false,
            then: None,
        }
    }
}

#[derive(Debug, Default)]
pub struct EmitCounters {
    pub process_exec: AtomicU64,
    pub process_exit: AtomicU64,
    pub agent_status: AtomicU64,
    pub file_open: AtomicU64,
    pub finding: AtomicU64,
    pub net_connect: AtomicU64,
    pub process_hash: AtomicU64,
    /// Events the rate limiter held back (reported in summaries).
    pub suppressed: AtomicU64,
    /// Events that went out before their hashes (`hash_status: "pending"`).
    pub hash_pending: AtomicU64,
}

#[derive(Debug, Serialize)]
pub struct EmitStats {
    pub process_exec: u64,
    pub process_exit: u64,
    pub agent_status: u64,
    pub file_open: u64,
    pub finding: u64,
    pub net_connect: u64,
    pub process_hash: u64,
    pub suppressed: u64,
    pub hash_pending: u64,
}

impl EmitCounters {
    fn count(&self, kind: Kind) {
        let c = match kind {
            Kind::ProcessExec => &self.process_exec,
            Kind::ProcessExit => &self.process_exit,
            Kind::AgentStatus => &self.agent_status,
            Kind::FileOpen => &self.file_open,
            Kind::Finding => &self.finding,
            Kind::NetConnect => &self.net_connect,
            Kind::ProcessHash => &self.process_hash,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> EmitStats {
        EmitStats {
            process_exec: self.process_exec.load(Ordering::Relaxed),
            process_exit: self.process_exit.load(Ordering::Relaxed),
            agent_status: self.agent_status.load(Ordering::Relaxed),
            file_open: self.file_open.load(Ordering::Relaxed),
            finding: self.finding.load(Ordering::Relaxed),
            net_connect: self.net_connect.load(Ordering::Relaxed),
            process_hash: self.process_hash.load(Ordering::Relaxed),
            suppressed: self.suppressed.load(Ordering::Relaxed),
            hash_pending: self.hash_pending.load(Ordering::Relaxed),
        }
    }
}

/// The time of the last event: a secret read is a `file_open` and a
/// finding of the same instant, which share it.
#[derive(Default)]
pub struct LastTime {
    at: u64,
    time: Option<EventTime>,
}

pub struct Emitter {
    pub node: Arc<str>,
    pub sinks: Arc<SinkSet>,
    pub counters: Arc<EmitCounters>,
    /// The recent history and in-process subscribers (the API); lagging
    /// subscribers lose events on their side only.
    pub feed: Feed,
    pub metrics: Arc<Metrics>,
    pub seq: SeqStore,
    pub limiter: RateLimiter,
    /// How long sinks may keep delivering after the stop signal before
    /// what they hold goes to their spools.
    pub shutdown_grace: Duration,
    /// How long after the kernel saw it an event may wait for its hashes.
    pub hash_wait: Duration,
    pub series: Series,
    pub last_time: LastTime,
    /// The seq of the last pending event sent out that a later one may rest
    /// on (`refers_to_previous`); `None` when the limiter suppressed it. Not
    /// the last seq taken: a `process_hash` may go out in between.
    pub previous: Option<u64>,
}

/// The metric counters events feed, by label values, once looked up.
#[derive(Default)]
pub struct Series {
    kinds: HashMap<Kind, Counter>,
    findings: HashMap<(&'static str, &'static str), Counter>,
}

/// Past this, a hash that never finishes is reported `unavailable` in its
/// `process_hash` event, so that a stuck read cannot pin memory for ever.
const HASH_FOLLOW_UP_LIMIT: Duration = Duration::from_secs(600);

/// Events handled in one turn of the emitter's task without a select between
/// them: tokio's per-task budget, which `recv` spends one unit an event of.
const EVENTS_PER_TURN: usize = 128;

/// The finished identity of an exec that went out pending.
type FollowUp = BoxFuture<'static, Arc<Process>>;

impl Emitter {
    pub async fn run(mut self, mut rx: mpsc::Receiver<Box<Pending>>) {
        let mut summary_tick = tokio::time::interval(self.limiter.summary_interval());
        summary_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut follow_ups: FuturesUnordered<FollowUp> = FuturesUnordered::new();
        loop {
            let p = tokio::select! {
                p = rx.recv() => match p {
                    Some(p) => p,
                    None => break,
                },
                Some(process) = follow_ups.next(), if !follow_ups.is_empty() => {
                    self.hashed(process);
                    continue;
                }
                _ = summary_tick.tick(), if self.limiter.enabled() => {
                    self.summarise();
                    continue;
                }
            };
            // What else is waiting goes out before the next select: a round
            // of it (its futures, the timer's registration) per event was a
            // tenth of the emitter's cost at a high rate. Then the emitter
            // yields, as the channel's budget had it do after as many events:
            // a longer turn kept the sinks' workers from theirs and their
            // queues overflowed.
            let mut next = Some(p);
            let mut taken = 0;
            while let Some(p) = next.take() {
                let now = boot_ns();
                self.metrics.health.emitting(p.boot_ns.max(1), now);
                if let Some(f) = self.handle(p, now).await {
                    follow_ups.push(f);
                }
                self.metrics.health.emitted();
                taken += 1;
                if taken < EVENTS_PER_TURN {
                    next = rx.try_recv().ok();
                }
            }
            if taken == EVENTS_PER_TURN {
                tokio::task::yield_now().await;
            }
        }
        // The input is closed: what is still hashing gets its bound's worth
        // of time, then goes out as it stands.
        let last = tokio::time::sleep(self.hash_wait);
        tokio::pin!(last);
        while !follow_ups.is_empty() {
            tokio::select! {
                Some(process) = follow_ups.next() => self.hashed(process),
                _ = &mut last => break,
            }
        }
        self.summarise();
        self.sinks.shutdown(self.shutdown_grace).await;
        self.seq.close();
    }

    /// Emits `p`, taken at `now` (boot ns); for an exec that went out before
    /// its hash, the future of its finished identity.
    async fn handle(&mut self, mut p: Box<Pending>, now: u64) -> Option<FollowUp> {
        let deadline = p.boot_ns.saturating_add(duration_ns(self.hash_wait));
        let wait = Duration::from_nanos(deadline.saturating_sub(now));
        let (process, complete) = match &p.subject {
            Subject::Resolved(view) => (view.clone(), true),
            Subject::Snapshot(s) => s.resolve_within(wait).await,
        };
        if !complete {
            self.counters.hash_pending.fetch_add(1, Ordering::Relaxed);
        }
        if p.refers_to_previous {
            if let Some(f) = p.finding.as_mut() {
                f.evidence.event_seqs.extend(self.previous);
            }
        }
        // Whether a binary can be trusted is known only once it is hashed.
        let untrusted = (p.kind == Kind::ProcessExec && complete)
            .then(|| findings::untrusted_binary(&process))
            .flatten();
        let unfinished = match &p.subject {
            Subject::Snapshot(s) if p.kind == Kind::ProcessExec && !complete => Some(s.clone()),
            _ => None,
        };
        let follow_up = unfinished.map(|snapshot| {
            async move {
                match tokio::time::timeout(HASH_FOLLOW_UP_LIMIT, snapshot.resolve()).await {
                    Ok(view) => view,
                    Err(_) => {
                        let mut p = (*snapshot.current()).clone();
                        for status in [&mut p.exe.hash_status]
                            .into_iter()
                            .chain(p.interpreter.as_mut().map(|i| &mut i.script.hash_status))
                        {
                            if *status == "pending" {
                                *status = "unavailable";
                            }
                        }
                        Arc::new(p)
                    }
                }
            }
            .boxed()
        });
        let time = self.time_of(p.boot_ns);
        let untrusted = untrusted.map(|f| (f, time));
        let then = p.then.take().map(|f| (f, p.file.clone()));
        let refers_to_previous = p.refers_to_previous;
        let seq = self.emit(Event {
            schema: SCHEMA,
            time,
            node: self.node.clone(),
            kind: p.kind,
            seq: 0,
            process: process.clone(),
            exit: p.exit,
            status: p.status,
            file: p.file,
            finding: p.finding,
            net: p.net,
            suppressed: None,
        });
        if !refers_to_previous {
            self.previous = seq;
        }
        if let Some((mut finding, file)) = then {
            // The access it is about, if that went out.
            finding.evidence.event_seqs.extend(seq);
            self.emit(Event {
                file,
                finding: Some(finding),
                ..self.about(Kind::Finding, time, process.clone())
            });
        }
        if let Some((finding, time)) = untrusted {
            self.untrusted(finding, seq, time, process);
        }
        follow_up
    }

    fn time_of(&mut self, boot_ns: u64) -> EventTime {
        let t = &mut self.last_time;
        let time = match t.time {
            Some(time) if t.at == boot_ns => return time,
            Some(last) => EventTime::after(&last, to_epoch_ns(boot_ns)),
            None => EventTime::at(to_epoch_ns(boot_ns)),
        };
        t.at = boot_ns;
        t.time = Some(time);
        time
    }

    /// The `process_hash` event of an exec that went out pending, and the
    /// untrusted-binary finding its hash may call for.
    fn hashed(&mut self, process: Arc<Process>) {
        let time = self.time_of(boot_ns());
        let seq = self.emit(self.about(Kind::ProcessHash, time, process.clone()));
        if let Some(finding) = findings::untrusted_binary(&process) {
            self.untrusted(finding, seq, time, process);
        }
    }

    fn untrusted(
        &mut self,
        mut finding: Finding,
        evidence: Option<u64>,
        time: EventTime,
        process: Arc<Process>,
    ) {
        finding.evidence.event_seqs.extend(evidence);
        self.emit(Event {
            finding: Some(Box::new(finding)),
            ..self.about(Kind::Finding, time, process)
        });
    }

    /// An event of `kind` about `process` and nothing else, not numbered yet.
    fn about(&self, kind: Kind, time: EventTime, process: Arc<Process>) -> Event {
        Event {
            schema: SCHEMA,
            time,
            node: self.node.clone(),
            kind,
            seq: 0,
            process,
            exit: None,
            status: None,
            file: None,
            finding: None,
            net: None,
            suppressed: None,
        }
    }

    fn summarise(&mut self) {
        for ev in self.limiter.summaries() {
            self.emit(ev);
        }
    }

    /// Numbers the event and hands it to every sink and subscriber; `None`
    /// when the rate limiter suppressed it (counted there).
    fn emit(&mut self, ev: Event) -> Option<u64> {
        let mut ev = Arc::new(ev);
        if ev.suppressed.is_none() && !self.limiter.admit(&ev, tokio::time::Instant::now()) {
            self.counters.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let seq = self.seq.take();
        Arc::make_mut(&mut ev).seq = seq;
        self.counters.count(ev.kind);
        // A label set costs allocations and a locked lookup: each series'
        // counter is looked up once and kept.
        let metrics = &self.metrics;
        self.series
            .kinds
            .entry(ev.kind)
            .or_insert_with(|| {
                metrics
                    .events
                    .get_or_create(&KindLabel {
                        kind: ev.kind.as_str().into(),
                    })
                    .clone()
            })
            .inc();
        if let Some(f) = &ev.finding {
            self.series
                .findings
                .entry((f.rule, f.severity.as_str()))
                .or_insert_with(|| {
                    metrics
                        .findings
                        .get_or_create(&FindingLabels {
                            rule: f.rule.into(),
                            severity: f.severity.as_str().into(),
                        })
                        .clone()
                })
                .inc();
        }
        self.sinks.push(&ev);
        self.feed.publish(ev);
        Some(seq)
    }
}

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
