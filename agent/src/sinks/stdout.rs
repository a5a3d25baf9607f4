//! JSON Lines on standard output: the default sink.

use std::sync::{atomic::Ordering, Arc};

use tokio::io::{AsyncWriteExt, BufWriter, Stdout};

use super::SinkCounters;
use crate::event::Event;

pub struct StdoutSink {
    out: BufWriter<Stdout>,
    pub counters: Arc<SinkCounters>,
    broken: bool,
}

impl StdoutSink {
    pub fn new() -> Self {
        Self {
            out: BufWriter::with_capacity(256 * 1024, tokio::io::stdout()),
            counters: Arc::default(),
            broken: false,
        }
    }

    pub async fn write(&mut self, ev: &Event) {
        if self.broken {
            self.counters.failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut line = match serde_json::to_vec(ev) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!("cannot serialise a {:?} event: {e}", ev.kind);
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        line.push(b'\n');
        match self.out.write_all(&line).await {
            Ok(()) => {
                self.counters.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => self.fail(e),
        }
    }

    pub async fn flush(&mut self) {
        if !self.broken {
            if let Err(e) = self.out.flush().await {
                self.fail(e);
            }
        }
    }

    fn fail(&mut self, e: std::io::Error) {
        // A closed stdout (EPIPE) will not come back; say so once, then count.
        tracing::error!("stdout sink failed: {e}; further events to stdout are counted as failed");
        self.broken = true;
        self.counters.failed.fetch_add(1, Ordering::Relaxed);
    }
}

impl Default for StdoutSink {
    fn default() -> Self {
        Self::new()
    }
}
