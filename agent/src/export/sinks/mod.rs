//! Where events go: several sinks at once, each with its own format, filter,
//! memory queue, on-disk spool, retries and counters.
//!
//! The emitter hands every event to [`SinkSet::push`], which never waits:
//! each sink queues it in memory, spills it to its spool when the queue is
//! full, and counts it as dropped when the spool is full too. One worker
//! task per sink delivers in seq order and retries with backoff. At
//! shutdown, whatever a worker could not deliver goes to its spool, and the
//! spool's delivered high-water mark makes the next start send each spooled
//! event once.

pub mod config;
pub mod encode;
pub mod file;
pub mod filter;
pub mod http;
pub mod queue;
pub mod retry;
pub mod spool;
pub mod stdout;
pub mod stream;
pub mod syslog;
pub mod worker;

use std::{
    path::Path,
    sync::{atomic::AtomicBool, Arc, Mutex},
    time::Duration,
};

use anyhow::{Context, Result};
use tokio::{sync::watch, task::JoinHandle, time::Instant};

pub use queue::SinkStats;

use self::{
    config::{SinkConfig, SinkType, Transport},
    encode::Encoder,
    filter::Filter,
    queue::{Buffers, Shared},
    retry::Backoff,
    spool::Spool,
    worker::{Destination, Worker},
};
use crate::event::Event;

struct Sink {
    filter: Filter,
    shared: Arc<Shared>,
}

pub struct SinkSet {
    sinks: Vec<Sink>,
    stop: watch::Sender<Option<Instant>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// The counters of every sink, for agent_status and /metrics.
#[derive(Clone)]
pub struct SinkStatsSource(Vec<Arc<Shared>>);

impl SinkStatsSource {
    pub fn stats(&self) -> Vec<SinkStats> {
        self.0.iter().map(|s| s.stats()).collect()
    }
}

impl SinkSet {
    /// Opens every configured sink (spools, certificates, tokens) and starts
    /// its worker. Must run inside a tokio runtime.
    pub fn start(sinks: &[SinkConfig], state_dir: &Path, node: &str) -> Result<Self> {
        let names = config::resolve_names(sinks).map_err(anyhow::Error::msg)?;
        let (stop, stop_rx) = watch::channel(None);
        let mut set = Self {
            sinks: Vec::new(),
            stop,
            tasks: Mutex::new(Vec::new()),
        };
        for (cfg, name) in sinks.iter().zip(names) {
            let spool = match cfg.spool_bytes() {
                0 => None,
                cap => Some(
                    Spool::open(&state_dir.join("spool").join(&name), cap)
                        .with_context(|| format!("sink {name:?}"))?,
                ),
            };
            let shared = Arc::new(Shared {
                kind: cfg.kind.as_str(),
                format: cfg.format().as_str(),
                capacity: cfg.queue_events(),
                encoder: Encoder::new(cfg),
                buffers: Mutex::new(Buffers {
                    queue: Default::default(),
                    spool,
                    closed: false,
                }),
                wake: Default::default(),
                counters: Default::default(),
                down: AtomicBool::new(false),
                name,
            });
            let backoff = Backoff::new(cfg.retry_initial(), cfg.retry_max());
            let task = start_worker(cfg, node, shared.clone(), backoff, stop_rx.clone())
                .with_context(|| format!("sink {:?}", shared.name))?;
            set.tasks.lock().unwrap().push(task);
            set.sinks.push(Sink {
                filter: Filter::new(cfg),
                shared,
            });
        }
        Ok(set)
    }

    /// Offers an event to every sink whose filter takes it. Never waits.
    pub fn push(&self, ev: &Arc<Event>) {
        for s in &self.sinks {
            if s.filter.accepts(ev) {
                s.shared.push(ev);
            }
        }
    }

    pub fn stats_source(&self) -> SinkStatsSource {
        SinkStatsSource(self.sinks.iter().map(|s| s.shared.clone()).collect())
    }

    /// Gives the workers up to `grace` to deliver what they hold, then has
    /// them write the rest to their spools, and waits for them.
    pub async fn shutdown(&self, grace: Duration) {
        let _ = self.stop.send(Some(Instant::now() + grace));
        let tasks: Vec<_> = std::mem::take(&mut *self.tasks.lock().unwrap());
        for t in tasks {
            let _ = t.await;
        }
    }
}

fn spawn<D: Destination>(
    shared: Arc<Shared>,
    dest: D,
    backoff: Backoff,
    stop: watch::Receiver<Option<Instant>>,
) -> JoinHandle<()> {
    tokio::spawn(Worker::new(shared, dest, backoff, stop).run())
}

fn start_worker(
    cfg: &SinkConfig,
    node: &str,
    shared: Arc<Shared>,
    backoff: Backoff,
    stop: watch::Receiver<Option<Instant>>,
) -> Result<JoinHandle<()>> {
    Ok(match cfg.kind {
        SinkType::Stdout => spawn(shared, stdout::Stdout::new(), backoff, stop),
        SinkType::File => spawn(shared, file::FileDest::new(cfg)?, backoff, stop),
        SinkType::Syslog => match cfg.transport {
            Some(Transport::Udp) => spawn(shared, syslog::Udp::new(cfg)?, backoff, stop),
            _ => spawn(shared, stream::Stream::new(cfg)?, backoff, stop),
        },
        SinkType::Hec => spawn(shared, http::Hec::new(cfg)?, backoff, stop),
        SinkType::Otlp => spawn(shared, http::Otlp::new(cfg, node)?, backoff, stop),
    })
}
