//! Orders, numbers and writes events.
//!
//! Events leave in the order the kernel produced them. An exec whose binary
//! is still being hashed holds back the events behind it rather than going
//! out without its hash; hashing itself runs elsewhere, so only the output
//! waits, never the ring-buffer reader.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use serde::Serialize;
use tokio::sync::{broadcast, mpsc};

use crate::{
    clock::to_epoch_ns,
    detect::findings,
    event::{rfc3339_ns, Event, ExitInfo, FileInfo, Finding, Kind, NetInfo, SCHEMA},
    export::metrics::{FindingLabels, KindLabel, Metrics},
    export::sinks::SinkSet,
    identity::snapshot::Snapshot,
    pipeline::rate_limit::RateLimiter,
    pipeline::seq_store::SeqStore,
};

/// An event waiting for its place in the output.
pub struct Pending {
    pub kind: Kind,
    /// Kernel boot-time ns of the event.
    pub boot_ns: u64,
    pub snapshot: Snapshot,
    pub exit: Option<ExitInfo>,
    pub status: Option<serde_json::Value>,
    pub file: Option<FileInfo>,
    pub finding: Option<Finding>,
    pub net: Option<NetInfo>,
    /// The finding rests on the event just before it (its seq is filled in).
    pub refers_to_previous: bool,
}

impl Pending {
    pub fn new(kind: Kind, boot_ns: u64, snapshot: Snapshot) -> Self {
        Self {
            kind,
            boot_ns,
            snapshot,
            exit: None,
            status: None,
            file: None,
            finding: None,
            net: None,
            refers_to_previous: false,
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
    /// Events the rate limiter held back (reported in summaries).
    pub suppressed: AtomicU64,
}

#[derive(Debug, Serialize)]
pub struct EmitStats {
    pub process_exec: u64,
    pub process_exit: u64,
    pub agent_status: u64,
    pub file_open: u64,
    pub finding: u64,
    pub net_connect: u64,
    pub suppressed: u64,
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
            suppressed: self.suppressed.load(Ordering::Relaxed),
        }
    }
}

pub struct Emitter {
    pub node: Arc<str>,
    pub sinks: Arc<SinkSet>,
    pub counters: Arc<EmitCounters>,
    /// In-process subscribers (tests, the API); lagging ones lose
    /// events on their side only.
    pub subscribers: broadcast::Sender<Arc<Event>>,
    pub metrics: Arc<Metrics>,
    pub seq: SeqStore,
    pub limiter: RateLimiter,
    /// How long sinks may keep delivering after the stop signal before
    /// what they hold goes to their spools.
    pub shutdown_grace: Duration,
}

impl Emitter {
    pub async fn run(mut self, mut rx: mpsc::Receiver<Pending>) {
        let mut summary_tick = tokio::time::interval(self.limiter.summary_interval());
        summary_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let p = tokio::select! {
                p = rx.recv() => match p {
                    Some(p) => p,
                    None => break,
                },
                _ = summary_tick.tick(), if self.limiter.enabled() => {
                    self.summarise();
                    continue;
                }
            };
            self.handle(p).await;
        }
        self.summarise();
        self.sinks.shutdown(self.shutdown_grace).await;
        self.seq.close();
    }

    async fn handle(&mut self, mut p: Pending) {
        let process = p.snapshot.resolve().await;
        if p.refers_to_previous {
            if let Some(f) = p.finding.as_mut() {
                f.evidence.event_seqs.push(self.seq.last());
            }
        }
        // Whether a binary can be trusted is known only once it is hashed.
        let untrusted = (p.kind == Kind::ProcessExec)
            .then(|| findings::untrusted_binary(&process))
            .flatten();
        let time = rfc3339_ns(to_epoch_ns(p.boot_ns));
        let exec_seq = self.emit(Event {
            schema: SCHEMA,
            time: time.clone(),
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
        if let Some(mut finding) = untrusted {
            finding.evidence.event_seqs.extend(exec_seq);
            self.emit(Event {
                schema: SCHEMA,
                time,
                node: self.node.clone(),
                kind: Kind::Finding,
                seq: 0,
                process,
                exit: None,
                status: None,
                file: None,
                finding: Some(finding),
                net: None,
                suppressed: None,
            });
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
        self.metrics
            .events
            .get_or_create(&KindLabel {
                kind: ev.kind.as_str().into(),
            })
            .inc();
        if let Some(f) = &ev.finding {
            self.metrics
                .findings
                .get_or_create(&FindingLabels {
                    rule: f.rule.into(),
                    severity: f.severity.as_str().into(),
                })
                .inc();
        }
        self.sinks.push(&ev);
        let _ = self.subscribers.send(ev);
        Some(seq)
    }
}
