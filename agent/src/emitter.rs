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
    event::{rfc3339_ns, Event, ExitInfo, Kind, SCHEMA},
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
}

#[derive(Debug, Default)]
pub struct EmitCounters {
    pub process_exec: AtomicU64,
    pub process_exit: AtomicU64,
    pub agent_status: AtomicU64,
}

#[derive(Debug, Serialize)]
pub struct EmitStats {
    pub process_exec: u64,
    pub process_exit: u64,
    pub agent_status: u64,
}

impl EmitCounters {
    fn count(&self, kind: Kind) {
        let c = match kind {
            Kind::ProcessExec => &self.process_exec,
            Kind::ProcessExit => &self.process_exit,
            Kind::AgentStatus => &self.agent_status,
            _ => return,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> EmitStats {
        EmitStats {
            process_exec: self.process_exec.load(Ordering::Relaxed),
            process_exit: self.process_exit.load(Ordering::Relaxed),
            agent_status: self.agent_status.load(Ordering::Relaxed),
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
}

impl Emitter {
    pub async fn run(mut self, mut rx: mpsc::Receiver<Pending>) {
        let mut seq = 0u64;
        while let Some(p) = rx.recv().await {
            let process = p.snapshot.resolve().await;
            seq += 1;
            let ev = Event {
                schema: SCHEMA,
                time: rfc3339_ns(to_epoch_ns(p.boot_ns)),
                node: self.node.clone(),
                kind: p.kind,
                seq,
                process,
                exit: p.exit,
                status: p.status,
            };
            self.stdout.write(&ev).await;
            self.counters.count(ev.kind);
            let _ = self.subscribers.send(Arc::new(ev));
            if rx.is_empty() {
                self.stdout.flush().await;
            }
        }
        self.stdout.flush().await;
    }
}
