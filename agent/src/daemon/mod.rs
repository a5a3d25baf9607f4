//! The daemon (`proctor run`): wires the wings together and runs the reader
//! loop until SIGINT/SIGTERM.
//!
//! - `startup`: sinks, probes, the process table seeded from /proc, the secret monitor.
//! - `ingest`: decoded kernel records into process-table updates and detector calls.
//! - `status`: the agent's figures, read once per tick, for `agent_status` and /metrics.
//! - `pod_source`: the pod metadata source the config asks for.
//! - `tasks`: the emitter, probe log, pod poller and API server beside the loop.
//! - `shutdown`: stop signals, and flushing and detaching in order.
//! - `reload`: SIGHUP and config-file changes applied live, state kept.

mod hook_check;
mod ingest;
mod pod_source;
mod reload;
pub use reload::ConfigSource;
mod shutdown;
mod startup;
mod status;
mod tasks;

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use tokio::{
    sync::{mpsc, watch},
    time::MissedTickBehavior,
};

use crate::{
    api::{ApiHandles, ApiServer},
    config::Config,
    export::{
        metrics::{self, Metrics},
        sinks::{SinkSet, SinkStatsSource},
    },
    identity::process_table::Sweep,
    kernel::{probes::Probes, tmpfs_watch::TmpfsRead},
    pipeline::{
        emitter::{EmitCounters, Pending},
        feed::Feed,
        rate_limit::RateLimitConfig,
        seq_store::SeqStore,
    },
    secrets::inventory,
};

/// Live records checked against /proc per second (~10 µs each).
const SWEEP_BATCH: usize = 1024;

/// How often the figures kept elsewhere (kernel maps, caches, sinks) are
/// copied into the metrics between status events.
const METRICS_REFRESH: Duration = Duration::from_secs(2);
/// How often the parked TCP connects are swept for those that never
/// started a handshake (`kernel::connect_sweep`).
const CONNECT_SWEEP: Duration = Duration::from_secs(2);

/// tmpfs read records waiting for the ingest loop; beyond it they are
/// counted as dropped (`kernel.tmpfs.dropped`).
pub(super) const TMPFS_QUEUE: usize = 4096;

/// Runs the agent on `cfg` (parsed from `source`) until SIGINT or SIGTERM,
/// then detaches everything. SIGHUP and changes of the file reload it.
pub fn run(cfg: Config, source: ConfigSource) -> Result<()> {
    // Owner-only for whatever is created without an explicit mode: the agent's
    // files hold every user's argv, paths and fingerprints. (umask cannot fail.)
    unsafe { libc::umask(0o077) };
    crate::heap::limit_arenas();
    crate::heap::fast_small_allocations();
    // One thread for the whole pipeline: reader, table and emitter hand
    // events to each other without cross-thread wakeups. An output thread
    // (emitter and sinks) was tried twice: it raised the records/s at the
    // drop onset by 10-25% but cost a wakeup per event below it (agent CPU
    // at 40k records/s 62% -> 94%, soak plateau 57.9 -> 64.6 MiB); batched
    // (a message per 256 events) it spent 145% of a core at the onset for
    // what one thread did with 100%. Batching on this one thread read the
    // ring faster but moved the loss from the kernel to the stdout sink's
    // queue (the per-event channel is what holds the reader back when the
    // output falls behind). Hashing runs on the blocking pool.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        // Bind first: a socket in use or a bad api.group fails before the probes load.
        let api = if cfg.api.enabled {
            Some(ApiServer::bind(cfg.api.clone())?)
        } else {
            None
        };
        let inventory_path = inventory::default_path(&cfg.state_dir);
        let agent = Agent::start(cfg, source)?;
        let api = api.map(|server| {
            let handles = ApiHandles {
                table: agent.ingest.table.clone(),
                events: agent.feed.clone(),
                inventory_path,
                hygiene: agent.ingest.hygiene.clone(),
            };
            tasks::ApiTask::spawn(server, handles, agent.metrics.clone())
        });
        let result = match shutdown::stop_signal() {
            Ok(stop) => agent.run_until(stop).await,
            Err(e) => Err(e),
        };
        if let Some(api) = api {
            api.stop().await;
        }
        result
    })
}

/// A started agent: probes attached, table seeded, nothing running yet.
struct Agent {
    cfg: Config,
    probes: Probes,
    ingest: ingest::Ingest,
    node: Arc<str>,
    emit_counters: Arc<EmitCounters>,
    /// The recent events and live subscriptions the API serves.
    feed: Feed,
    rx: Option<mpsc::Receiver<Box<Pending>>>,
    /// Reads of secrets on tmpfs (page-cache set), taken by the reader loop.
    tmpfs_reads: Option<mpsc::Receiver<TmpfsRead>>,
    mounted: Vec<String>,
    started: Instant,
    metrics: Arc<Metrics>,
    metrics_addr: Option<SocketAddr>,
    pod_source: pod_source::PodSource,
    sinks: Arc<SinkSet>,
    sink_stats: SinkStatsSource,
    seq: Option<SeqStore>,
    /// The config file and the texts reloads are judged against.
    source: reload::ConfigSource,
    /// The rate limiter's settings; the emitter takes a reload's at its next event.
    rate_limit: watch::Sender<RateLimitConfig>,
}

impl Agent {
    /// The reader loop: kernel records in, status and metrics on their ticks.
    async fn run_until(
        mut self,
        stop: impl std::future::Future<Output = &'static str>,
    ) -> Result<()> {
        self.metrics_addr = metrics::serve(&self.cfg.metrics, self.metrics.clone()).await?;
        let tasks = self.spawn_tasks();
        let events = self.probes.events.take().expect("run once");
        let mut events = crate::kernel::watch_fd(events).context("watch the ring buffer fd")?;
        let mut status_tick = tokio::time::interval(self.cfg.status_interval);
        status_tick.tick().await;
        // Records below the wakeup threshold are found by this periodic drain.
        let mut drain_tick = tokio::time::interval(self.cfg.kernel.poll_interval);
        drain_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);

        self.emit_status("started").await;
        self.metrics
            .ready
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let mut reloads = reload::Triggers::new(self.source.path.as_deref())?;
        let mut metrics_tick = tokio::time::interval(METRICS_REFRESH);
        metrics_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // Records whose exit was never seen are found by checking /proc, a
        // batch per second, a new sweep at most every status interval.
        let mut sweep = Sweep::new(self.cfg.status_interval, SWEEP_BATCH);
        let mut sweep_tick = tokio::time::interval(Duration::from_secs(1));
        sweep_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // TCP connects parked in the kernel that never started a handshake.
        let mut connect_sweep_tick = tokio::time::interval(CONNECT_SWEEP);
        connect_sweep_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // Reads of secrets on tmpfs, from the page-cache set's fanotify marks.
        let mut tmpfs_reads = self.tmpfs_reads.take();
        tokio::pin!(stop);
        let reason = loop {
            tokio::select! {
                guard = events.readable_mut() => {
                    let mut guard = guard.context("ring buffer poll")?;
                    // A batch that left records behind keeps the fd ready: the
                    // kernel wakes the reader once per threshold crossing, not
                    // again for a backlog it already announced.
                    if self.ingest.drain(guard.get_inner_mut()).await {
                        guard.clear_ready();
                    }
                }
                _ = drain_tick.tick() => {
                    self.ingest.drain(events.get_mut()).await;
                }
                Some(read) = async {
                    match tmpfs_reads.as_mut() {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                } => {
                    // The reader's exec (and maybe exit) record came through the
                    // ring buffer before its read: take it in first.
                    self.ingest.drain(events.get_mut()).await;
                    self.ingest.tmpfs_read(read).await;
                }
                _ = metrics_tick.tick() => self.refresh_metrics(),
                _ = sweep_tick.tick() => self.ingest.sweep(&mut sweep),
                _ = connect_sweep_tick.tick() => {
                    for (rec, start_ns) in self.probes.connect_sweeper.sweep(crate::clock::boot_ns()) {
                        self.ingest.swept_connect(rec, start_ns).await;
                    }
                }
                _ = status_tick.tick() => {
                    self.ingest.housekeeping().await;
                    self.emit_status("running").await;
                }
                trigger = reloads.next() => {
                    let before = self.cfg.status_interval;
                    if let Some(report) = self.reload(trigger).await {
                        if self.cfg.status_interval != before {
                            status_tick = tokio::time::interval(self.cfg.status_interval);
                            status_tick.tick().await;
                        }
                        self.emit_reload(report).await;
                    }
                }
                reason = &mut stop => break reason,
            }
        };
        tracing::info!("{reason} received: detaching probes and flushing events");
        self.shutdown(events, tasks).await;
        Ok(())
    }
}
