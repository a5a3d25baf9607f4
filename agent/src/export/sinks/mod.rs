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
    path::{Path, PathBuf},
    sync::{atomic::AtomicBool, Arc, Mutex, RwLock},
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
    cfg: SinkConfig,
    filter: Filter,
    shared: Arc<Shared>,
    /// Set at shutdown or when a reload removes the sink: the instant after
    /// which its worker stops trying and spools the rest.
    stop: watch::Sender<Option<Instant>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

/// The sinks in use; replaced whole by a reload, so `push` sees the old set
/// or the new one, never half of each.
type Active = Arc<RwLock<Arc<Vec<Arc<Sink>>>>>;

pub struct SinkSet {
    active: Active,
    /// What sinks started with (`start`) and reloads need again.
    state_dir: PathBuf,
    node: String,
}

/// The counters of every sink in use, for agent_status and /metrics.
#[derive(Clone)]
pub struct SinkStatsSource(Active);

impl SinkStatsSource {
    pub fn stats(&self) -> Vec<SinkStats> {
        current(&self.0).iter().map(|s| s.shared.stats()).collect()
    }
}

fn current(active: &Active) -> Arc<Vec<Arc<Sink>>> {
    active.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// What a reload did to the sinks, by name.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SinkChanges {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Same name, new settings: stopped (the rest spooled) and started again.
    pub replaced: Vec<String>,
}

impl SinkChanges {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.replaced.is_empty()
    }
}

/// How long a sink a reload removes or replaces may keep delivering before
/// the rest goes to its spool: the reader loop waits for it.
const RELOAD_GRACE: Duration = Duration::from_secs(1);

impl SinkSet {
    /// Opens every configured sink (spools, certificates, tokens) and starts
    /// its worker. Must run inside a tokio runtime.
    pub fn start(sinks: &[SinkConfig], state_dir: &Path, node: &str) -> Result<Self> {
        let names = config::resolve_names(sinks).map_err(anyhow::Error::msg)?;
        let mut list = Vec::new();
        for (cfg, name) in sinks.iter().zip(names) {
            list.push(open_sink(cfg, name, state_dir, node)?);
        }
        Ok(Self {
            active: Arc::new(RwLock::new(Arc::new(list))),
            state_dir: state_dir.to_path_buf(),
            node: node.to_string(),
        })
    }

    /// Offers an event to every sink whose filter takes it. Never waits.
    pub fn push(&self, ev: &Arc<Event>) {
        for s in current(&self.active).iter() {
            if s.filter.accepts(ev) {
                s.shared.push(ev);
            }
        }
    }

    pub fn stats_source(&self) -> SinkStatsSource {
        SinkStatsSource(self.active.clone())
    }

    /// Makes `sinks` the sinks in use (config reload): unchanged sinks keep
    /// running untouched; removed and changed ones get [`RELOAD_GRACE`] to
    /// deliver, the rest goes to their spools, and a changed one starts
    /// again on its spool. If a sink cannot be opened, the previous set is
    /// put back and the error returned.
    pub async fn reconfigure(&self, sinks: &[SinkConfig]) -> Result<SinkChanges> {
        let names = config::resolve_names(sinks).map_err(anyhow::Error::msg)?;
        let old = current(&self.active);
        let mut changes = SinkChanges::default();
        let mut keep = Vec::new();
        let mut stopping = Vec::new();
        for s in old.iter() {
            match names.iter().position(|n| *n == s.shared.name) {
                Some(i) if sinks[i] == s.cfg => keep.push(s.clone()),
                Some(_) => {
                    changes.replaced.push(s.shared.name.clone());
                    stopping.push(s.clone());
                }
                None => {
                    changes.removed.push(s.shared.name.clone());
                    stopping.push(s.clone());
                }
            }
        }
        for n in &names {
            if !old.iter().any(|s| s.shared.name == *n) {
                changes.added.push(n.clone());
            }
        }
        if changes.is_empty() {
            return Ok(changes);
        }
        // Out of `push` first, then stopped: a spool has one writer.
        self.set_active(keep.clone());
        stop_all(&stopping, RELOAD_GRACE).await;
        let mut list = Vec::new();
        let mut failed = None;
        for (cfg, name) in sinks.iter().zip(&names) {
            if let Some(s) = keep.iter().find(|s| s.shared.name == *name) {
                list.push(s.clone());
                continue;
            }
            match open_sink(cfg, name.clone(), &self.state_dir, &self.node) {
                Ok(s) => list.push(s),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        let Some(err) = failed else {
            self.set_active(list);
            return Ok(changes);
        };
        // Back to the previous set: the new sinks opened so far stop, the
        // stopped ones start again on their spools.
        let fresh: Vec<_> = list
            .into_iter()
            .filter(|s| !keep.iter().any(|k| Arc::ptr_eq(k, s)))
            .collect();
        stop_all(&fresh, Duration::ZERO).await;
        let mut back = keep;
        for s in &stopping {
            match open_sink(&s.cfg, s.shared.name.clone(), &self.state_dir, &self.node) {
                Ok(s) => back.push(s),
                Err(e) => tracing::error!(
                    "sink {:?} could not be restarted after a refused reload: {e:#}; its \
                     events are not delivered until the agent restarts",
                    s.shared.name
                ),
            }
        }
        self.set_active(back);
        Err(err)
    }

    fn set_active(&self, list: Vec<Arc<Sink>>) {
        *self.active.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(list);
    }

    /// Gives the workers up to `grace` to deliver what they hold, then has
    /// them write the rest to their spools, and waits for them.
    pub async fn shutdown(&self, grace: Duration) {
        stop_all(&current(&self.active), grace).await;
    }
}

/// Tells the sinks' workers to finish within `grace`, and waits for them.
async fn stop_all(sinks: &[Arc<Sink>], grace: Duration) {
    let until = Instant::now() + grace;
    for s in sinks {
        let _ = s.stop.send(Some(until));
    }
    for s in sinks {
        let task = s.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = task {
            let _ = t.await;
        }
    }
}

/// Opens one sink (its spool, certificates, token) and starts its worker.
fn open_sink(cfg: &SinkConfig, name: String, state_dir: &Path, node: &str) -> Result<Arc<Sink>> {
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
    let (stop, stop_rx) = watch::channel(None);
    let backoff = Backoff::new(cfg.retry_initial(), cfg.retry_max());
    let task = start_worker(cfg, node, shared.clone(), backoff, stop_rx)
        .with_context(|| format!("sink {:?}", shared.name))?;
    Ok(Arc::new(Sink {
        cfg: cfg.clone(),
        filter: Filter::new(cfg),
        shared,
        stop,
        task: Mutex::new(Some(task)),
    }))
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
