//! Orders, numbers and writes events.
//!
//! Events leave in the order the kernel produced them. An exec whose binary
//! is still being hashed holds back the events behind it rather than going
//! out without its hash; hashing itself runs elsewhere, so only the output
//! waits, never the ring-buffer reader.

use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc,
};

use serde::Serialize;
use tokio::sync::{broadcast, mpsc};

use crate::{
    clock::to_epoch_ns,
    event::{rfc3339_ns, Event, ExitInfo, FileInfo, Finding, Kind, NetInfo, SCHEMA},
    findings,
    metrics::{FindingLabels, KindLabel, Metrics},
    sinks::stdout::StdoutSink,
    snapshot::Snapshot,
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
}

#[derive(Debug, Serialize)]
pub struct EmitStats {
    pub process_exec: u64,
    pub process_exit: u64,
    pub agent_status: u64,
    pub file_open: u64,
    pub finding: u64,
    pub net_connect: u64,
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
        }
    }
}

pub struct Emitter {
    pub node: Arc<str>,
    pub stdout: StdoutSink,
    pub counters: Arc<EmitCounters>,
    /// In-process subscribers (tests, the future API); lagging ones lose
    /// events on their side only.
    pub subscribers: broadcast::Sender<Arc<Event>>,
    pub metrics: Arc<Metrics>,
}

impl Emitter {
    pub async fn run(mut self, mut rx: mpsc::Receiver<Pending>) {
        let mut seq = 0u64;
        while let Some(mut p) = rx.recv().await {
            let process = p.snapshot.resolve().await;
            if p.refers_to_previous {
                if let Some(f) = p.finding.as_mut() {
                    f.evidence.event_seqs.push(seq);
                }
            }
            // Whether a binary can be trusted is known only once it is hashed.
            let untrusted = (p.kind == Kind::ProcessExec)
                .then(|| findings::untrusted_binary(&process))
                .flatten();
            seq += 1;
            self.emit(Event {
                schema: SCHEMA,
                time: rfc3339_ns(to_epoch_ns(p.boot_ns)),
                node: self.node.clone(),
                kind: p.kind,
                seq,
                process: process.clone(),
                exit: p.exit,
                status: p.status,
                file: p.file,
                finding: p.finding,
                net: p.net,
            })
            .await;
            if let Some(mut finding) = untrusted {
                finding.evidence.event_seqs.push(seq);
                seq += 1;
                self.emit(Event {
                    schema: SCHEMA,
                    time: rfc3339_ns(to_epoch_ns(p.boot_ns)),
                    node: self.node.clone(),
                    kind: Kind::Finding,
                    seq,
                    process,
                    exit: None,
                    status: None,
                    file: None,
                    finding: Some(finding),
                    net: None,
                })
                .await;
            }
            if rx.is_empty() {
                self.stdout.flush().await;
            }
        }
        self.stdout.flush().await;
    }

    async fn emit(&mut self, ev: Event) {
        self.stdout.write(&ev).await;
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
        let _ = self.subscribers.send(Arc::new(ev));
    }
}
