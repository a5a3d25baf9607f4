//! `proctor run`: load the probes, seed the process table from /proc, then
//! turn kernel records into events until SIGINT/SIGTERM.

use std::{
    sync::{Arc, Mutex},
    time::Instant,
};

use anyhow::{Context, Result};
use aya::maps::{MapData, RingBuf};
use proctor_common::{
    ExitEvent, ForkEvent, CONNECT_DEDUP_SLOT, EGRESS_DENIED_SLOT, KIND_CONNECT, KIND_EXEC,
    KIND_EXIT, KIND_FILE_OPEN, KIND_FORK, LSM_DENIED_SLOT,
};
use serde_json::json;
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{signal, SignalKind},
    sync::{broadcast, mpsc},
};

use crate::{
    clock::boot_ns,
    config::Config,
    event::{Event, ExitInfo, Kind},
    export::sinks::{SinkSet, SinkStatsSource},
    identity::cgroups::CgroupResolver,
    identity::exec_id::{exec_id, Origin},
    identity::exec_identity::{self, ParentRef},
    identity::hash_cache::HashCache,
    identity::pods::{self, PodCache},
    identity::process_table::{ProcessTable, Record, Sweep},
    identity::procfs_seed::{self, scan_pid},
    identity::snapshot::Snapshot,
    kernel::decode::{decode, ConnectRecord, ExecRecord, KernelEvent, OpenRecord},
    kernel::preflight,
    kernel::probes::{self, per_cpu_total, Probes},
    pipeline::emitter::{EmitCounters, Emitter, Pending},
    pipeline::rate_limit::RateLimiter,
    pipeline::seq_store::SeqStore,
    secrets::monitor::SecretMonitor,
};

/// Live records checked against /proc per second (~10 µs each).
const SWEEP_BATCH: usize = 1024;

/// Counters of things userspace could not attribute; reported in agent_status.
#[derive(Debug, Default)]
struct Gaps {
    decode_errors: u64,
    exits_without_record: u64,
    forks_without_parent: u64,
    reconciled: u64,
    opens_without_process: u64,
    connects_without_process: u64,
}

/// Everything the reader loop mutates.
struct State {
    table: Arc<Mutex<ProcessTable>>,
    cgroups: CgroupResolver,
    hashes: Arc<HashCache>,
    /// Pod metadata, when a source runs (kubernetes config).
    pods: Option<Arc<PodCache>>,
    secrets: Option<SecretMonitor>,
    tx: mpsc::Sender<Pending>,
    gaps: Gaps,
}

impl State {
    async fn handle(&mut self, ev: KernelEvent) {
        match ev {
            KernelEvent::Exec(rec) => self.exec(*rec).await,
            KernelEvent::Fork(f) => self.fork(f),
            KernelEvent::Exit(e) => self.exit(e).await,
            KernelEvent::FileOpen(o) => self.file_open(*o).await,
            KernelEvent::Connect(c) => self.connect(*c).await,
        }
    }

    async fn connect(&mut self, rec: ConnectRecord) {
        let Some(reader) = self.reader(rec.tgid) else {
            self.gaps.connects_without_process += 1;
            return;
        };
        self.send(Pending {
            net: Some(crate::detect::connect::net_info(&rec)),
            ..Pending::new(Kind::NetConnect, rec.ktime_ns, reader.clone())
        })
        .await;
        let (Some(ip), Some(m)) = (rec.ip, self.secrets.as_mut()) else {
            return;
        };
        let found = m.on_connect(&reader.current(), ip, rec.port);
        for f in found {
            self.send(Pending {
                finding: Some(f),
                refers_to_previous: true,
                ..Pending::new(Kind::Finding, rec.ktime_ns, reader.clone())
            })
            .await;
        }
    }

    /// The process record of `pid`, from the table or, failing that, /proc.
    fn reader(&mut self, pid: u32) -> Option<Snapshot> {
        if let Some(r) = self.table.lock().unwrap().get(pid) {
            return Some(r.snapshot.clone());
        }
        let mut s = scan_pid(pid, &mut self.cgroups, &self.hashes)?;
        s.snapshot = s.snapshot.with_pods(self.pods.as_ref());
        let snapshot = s.snapshot.clone();
        self.table.lock().unwrap().insert(pid, s.into_record(false));
        Some(snapshot)
    }

    async fn file_open(&mut self, rec: OpenRecord) {
        if self.secrets.is_none() {
            return;
        }
        let Some(reader) = self.reader(rec.tgid) else {
            self.gaps.opens_without_process += 1;
            return;
        };
        // Owner selectors may name the binary's hash: judge the finished identity.
        let resolved = reader.resolve().await;
        let out = match self.secrets.as_mut() {
            Some(m) => m.on_open(&rec, &reader, &resolved),
            None => Vec::new(),
        };
        for p in out {
            self.send(p).await;
        }
    }

    /// Secret checks at exec: environment, and search tools hunting for secrets.
    async fn exec_checks(&mut self, snapshot: &Snapshot, boot_ns: u64) {
        let Some(m) = self.secrets.as_mut() else {
            return;
        };
        let env = m.scan_env(snapshot.process.pid);
        let searching = m.on_exec_search_tool(&snapshot.process);
        if env.is_empty() && searching.is_none() {
            return;
        }
        let resolved = snapshot.resolve().await;
        let mut found = match self.secrets.as_mut() {
            Some(m) => m.env_findings(&resolved, env),
            None => Vec::new(),
        };
        found.extend(searching);
        for f in found {
            self.send(Pending {
                finding: Some(f),
                ..Pending::new(Kind::Finding, boot_ns, snapshot.clone())
            })
            .await;
        }
    }

    async fn exec(&mut self, rec: ExecRecord) {
        let parent = {
            let table = self.table.lock().unwrap();
            table
                .get_started(rec.ppid, rec.parent_start_boottime_ns)
                .map(|r| ParentRef {
                    exec_id: r.exec_id().to_string(),
                })
        };
        let cgroup_path = self.cgroups.path(rec.cgroup_id, rec.tgid);
        let snapshot = exec_identity::from_exec(&rec, parent, cgroup_path, &self.hashes)
            .with_pods(self.pods.as_ref());
        self.table.lock().unwrap().insert(
            rec.tgid,
            Record {
                snapshot: snapshot.clone(),
                start_boottime_ns: rec.start_boottime_ns,
                coarse_start: false,
                since_boottime_ns: rec.ktime_ns,
                announced: true,
            },
        );
        self.send(Pending::new(
            Kind::ProcessExec,
            rec.ktime_ns,
            snapshot.clone(),
        ))
        .await;
        self.exec_checks(&snapshot, rec.ktime_ns).await;
    }

    /// A new process inherits its parent's identity until it execs.
    fn fork(&mut self, f: ForkEvent) {
        let mut table = self.table.lock().unwrap();
        let inherited = table
            .get_started(f.parent_tgid, f.parent_start_boottime_ns)
            .map(|parent| {
                let mut p = (*parent.snapshot.process).clone();
                p.parent_exec_id = Some(p.exec_id.clone());
                p.exec_id = exec_id(Origin::Fork, f.child_tgid, f.child_start_boottime_ns);
                p.pid = f.child_tgid;
                p.ppid = f.parent_tgid;
                p.start_time_ns = crate::clock::to_epoch_ns(f.child_start_boottime_ns);
                p.cgroup.id = f.cgroup_id;
                Snapshot::new(
                    Arc::new(p),
                    parent.snapshot.exe_hash.clone(),
                    parent.snapshot.script_hash.clone(),
                )
                .with_pods(parent.snapshot.pods.as_ref())
            });
        let record = match inherited {
            Some(snapshot) => Record {
                snapshot,
                start_boottime_ns: f.child_start_boottime_ns,
                coarse_start: false,
                since_boottime_ns: f.hdr.ktime_ns,
                announced: false,
            },
            None => {
                self.gaps.forks_without_parent += 1;
                let Some(s) = scan_pid(f.child_tgid, &mut self.cgroups, &self.hashes) else {
                    return;
                };
                let mut r = s.into_record(false);
                r.snapshot = r.snapshot.with_pods(self.pods.as_ref());
                Record {
                    since_boottime_ns: f.hdr.ktime_ns,
                    ..r
                }
            }
        };
        table.insert(f.child_tgid, record);
        drop(table);
        if let Some(m) = self.secrets.as_mut() {
            m.on_fork(f.parent_tgid, f.child_tgid);
        }
    }

    async fn exit(&mut self, e: ExitEvent) {
        let pending = {
            let mut table = self.table.lock().unwrap();
            match table.exit(e.tgid, e.start_boottime_ns, Instant::now()) {
                Some(rec) if rec.announced => Some(Pending {
                    exit: Some(exit_info(
                        e.exit_code,
                        e.hdr.ktime_ns,
                        rec.since_boottime_ns,
                    )),
                    ..Pending::new(Kind::ProcessExit, e.hdr.ktime_ns, rec.snapshot.clone())
                }),
                Some(_) => None,
                None => {
                    self.gaps.exits_without_record += 1;
                    None
                }
            }
        };
        if let Some(m) = self.secrets.as_mut() {
            m.forget_process(e.tgid);
        }
        if let Some(p) = pending {
            self.send(p).await;
        }
    }

    async fn send(&self, p: Pending) {
        // Backpressure, not loss: if the output stalls, the ring buffer fills
        // and the kernel counts what it could not reserve.
        if self.tx.send(p).await.is_err() {
            tracing::error!("event output stopped; this is a bug");
        }
    }
}

fn exit_info(status: u32, exit_ns: u64, since_ns: u64) -> ExitInfo {
    let signal = (status & 0x7f) as i32;
    ExitInfo {
        code: (signal == 0).then_some(((status >> 8) & 0xff) as i32),
        signal: (signal != 0).then_some(signal),
        core_dumped: status & 0x80 != 0,
        duration_ns: exit_ns.saturating_sub(since_ns),
    }
}

/// A running agent: the handle tests and the CLI hold.
pub struct Agent {
    cfg: Config,
    probes: Probes,
    state: State,
    node: Arc<str>,
    emit_counters: Arc<EmitCounters>,
    subscribers: broadcast::Sender<Arc<Event>>,
    rx: Option<mpsc::Receiver<Pending>>,
    mounted: Vec<String>,
    started: Instant,
    metrics: Arc<crate::export::metrics::Metrics>,
    metrics_addr: Option<std::net::SocketAddr>,
    pod_source: PodSource,
    sinks: Arc<SinkSet>,
    seq: Option<SeqStore>,
}

/// The pod metadata source the config asks for, or why there is none.
struct PodSource {
    cache: Option<Arc<PodCache>>,
    /// (config, URL) of the pod list to poll.
    poll: Option<(pods::KubernetesConfig, String)>,
    disabled: Option<String>,
}

fn pod_source(cfg: &pods::KubernetesConfig, node: &str) -> Result<PodSource> {
    let off = |why: String| PodSource {
        cache: None,
        poll: None,
        disabled: Some(why),
    };
    if let Err(why) = cfg.active() {
        return Ok(off(why));
    }
    let url = match cfg.url(node) {
        Ok(u) => u,
        Err(e) if cfg.enabled == pods::config::Enabled::On => anyhow::bail!(e),
        Err(e) => {
            tracing::warn!("pod metadata off: {e}");
            return Ok(off(e));
        }
    };
    Ok(PodSource {
        cache: Some(PodCache::new(pods::source::initial_stats(cfg.source, &url))),
        poll: Some((cfg.clone(), url)),
        disabled: None,
    })
}

impl Agent {
    /// Checks, loads and attaches everything, and seeds the process table.
    /// Must be called inside a tokio runtime.
    pub fn start(cfg: Config) -> Result<Self> {
        // Sinks first: a bad CA file or a spool in use fails before any probe loads.
        let node: Arc<str> = cfg.node().into();
        let seq = SeqStore::open(&cfg.state_dir)?;
        let sinks = Arc::new(SinkSet::start(&cfg.sinks, &cfg.state_dir, &node)?);
        let mounted = preflight::prepare()?;
        // Enforcement hooks only go in when some rule asks for them.
        let wants = |e| cfg.secrets.rules.iter().any(|r| r.enforce.contains(&e));
        let mut probes = probes::load(
            cfg.kernel.ring_buffer_bytes,
            cfg.kernel.wakeup_bytes as u64,
            probes::EnforcementHooks {
                block_egress: wants(crate::secrets::policy::Enforcement::BlockEgress),
                lsm_deny: wants(crate::secrets::policy::Enforcement::Kill),
            },
        )?;
        let hashes = HashCache::new(
            cfg.hash.cache_entries,
            cfg.hash.workers,
            cfg.hash.max_file_bytes,
        );
        let mut cgroups = CgroupResolver::new();
        let pods = pod_source(&cfg.kubernetes, &cfg.node())?;
        let mut table =
            ProcessTable::new(cfg.process_table.exit_grace, cfg.process_table.max_exited);
        // Probes are attached first, so a process started during the scan is
        // seen by one or the other (an exec record replaces a scan record).
        for s in procfs_seed::scan_all(&mut cgroups, &hashes) {
            let mut r = s.into_record(true);
            r.snapshot = r.snapshot.with_pods(pods.cache.as_ref());
            table.insert(r.snapshot.process.pid, r);
        }
        // Parsing the kernel's BTF (twice: offsets and program loading) leaves
        // tens of MiB of freed heap behind; hand it back to the OS.
        // SAFETY: malloc_trim has no preconditions.
        unsafe { libc::malloc_trim(0) };
        let secrets = match (
            cfg.secrets.enabled,
            probes.open_filter.take(),
            probes.enforcement.take(),
        ) {
            (true, Some(filter), Some(enforcement)) => {
                let inputs = crate::secrets::setup::Inputs {
                    secrets: &cfg.secrets,
                    catalog: cfg.catalog()?,
                    fingerprinter: cfg.fingerprinter()?,
                    state_dir: &cfg.state_dir,
                };
                Some(crate::secrets::setup::build(inputs, filter, enforcement)?)
            }
            _ => None,
        };
        let (tx, rx) = mpsc::channel(16 * 1024);
        let (subscribers, _) = broadcast::channel(64 * 1024);
        Ok(Self {
            node,
            sinks,
            seq: Some(seq),
            cfg,
            probes,
            state: State {
                table: Arc::new(Mutex::new(table)),
                cgroups,
                hashes,
                pods: pods.cache.clone(),
                secrets,
                tx,
                gaps: Gaps::default(),
            },
            emit_counters: Arc::default(),
            subscribers,
            rx: Some(rx),
            mounted,
            started: Instant::now(),
            metrics: crate::export::metrics::Metrics::new(),
            metrics_addr: None,
            pod_source: pods,
        })
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.subscribers.subscribe()
    }

    /// The event broadcast, for the API server (it subscribes per client).
    pub fn events(&self) -> broadcast::Sender<Arc<Event>> {
        self.subscribers.clone()
    }

    pub fn table(&self) -> Arc<Mutex<ProcessTable>> {
        self.state.table.clone()
    }

    /// Runs until SIGINT or SIGTERM, then detaches everything.
    pub async fn run(self) -> Result<()> {
        let mut sigterm = signal(SignalKind::terminate()).context("install SIGTERM handler")?;
        let mut sigint = signal(SignalKind::interrupt()).context("install SIGINT handler")?;
        self.run_until(async move {
            tokio::select! {
                _ = sigterm.recv() => "SIGTERM",
                _ = sigint.recv() => "SIGINT",
            }
        })
        .await
    }

    pub async fn run_until(
        mut self,
        stop: impl std::future::Future<Output = &'static str>,
    ) -> Result<()> {
        let stats = self.sinks.stats_source();
        let emitter = Emitter {
            node: self.node.clone(),
            sinks: self.sinks.clone(),
            counters: self.emit_counters.clone(),
            subscribers: self.subscribers.clone(),
            metrics: self.metrics.clone(),
            seq: self.seq.take().expect("run once"),
            limiter: RateLimiter::new(self.cfg.rate_limit.clone()),
            shutdown_grace: self.cfg.shutdown_grace,
        };
        self.metrics_addr =
            crate::export::metrics::serve(&self.cfg.metrics, self.metrics.clone()).await?;
        let emit_task = tokio::spawn(emitter.run(self.rx.take().expect("run once")));
        let log_task = self.probes.logger.take().map(spawn_probe_log);
        let pod_task = match (self.pod_source.poll.take(), &self.pod_source.cache) {
            (Some((cfg, url)), Some(cache)) => {
                Some(tokio::spawn(pods::source::run(cfg, url, cache.clone())))
            }
            _ => None,
        };

        let events = self.probes.events.take().expect("run once");
        let mut events = watch_fd(events).context("watch the ring buffer fd")?;
        let mut status_tick = tokio::time::interval(self.cfg.status_interval);
        status_tick.tick().await;
        // Records below the wakeup threshold are found by this periodic drain.
        let mut drain_tick = tokio::time::interval(self.cfg.kernel.poll_interval);
        drain_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let sinks = &stats;

        self.emit_status("started", sinks).await;
        self.metrics
            .ready
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let mut metrics_tick = tokio::time::interval(std::time::Duration::from_secs(2));
        metrics_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Records whose exit was never seen are found by checking /proc, a
        // batch per second, a new sweep at most every status interval.
        let mut sweep = Sweep::new(self.cfg.status_interval, SWEEP_BATCH);
        let mut sweep_tick = tokio::time::interval(std::time::Duration::from_secs(1));
        sweep_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(stop);
        let reason = loop {
            tokio::select! {
                guard = events.readable_mut() => {
                    let mut guard = guard.context("ring buffer poll")?;
                    self.drain(guard.get_inner_mut()).await;
                    guard.clear_ready();
                }
                _ = drain_tick.tick() => self.drain(events.get_mut()).await,
                _ = metrics_tick.tick() => self.refresh_metrics(sinks),
                _ = sweep_tick.tick() => {
                    let gone = sweep.step(&self.state.table, procfs_seed::still_running, Instant::now());
                    self.state.gaps.reconciled += gone as u64;
                }
                _ = status_tick.tick() => {
                    self.housekeeping();
                    self.emit_status("running", sinks).await;
                }
                reason = &mut stop => break reason,
            }
        };
        tracing::info!("{reason} received: detaching probes and flushing events");
        self.drain(events.get_mut()).await;
        self.emit_status("stopped", sinks).await;
        drop(events);
        let Agent { probes, state, .. } = self;
        drop(state.tx);
        emit_task.await.ok();
        if let Some(t) = log_task {
            t.abort();
        }
        if let Some(t) = pod_task {
            t.abort();
        }
        // Dropping the Ebpf object closes every program and link fd: nothing stays in the kernel.
        drop(probes);
        Ok(())
    }

    async fn drain(&mut self, rb: &mut RingBuf<MapData>) {
        // Bounded per call so status and signals are served during a storm.
        for _ in 0..4096 {
            let Some(item) = rb.next() else { break };
            let decoded = decode(&item);
            drop(item);
            match decoded {
                Ok(ev) => self.state.handle(ev).await,
                Err(e) => {
                    self.state.gaps.decode_errors += 1;
                    tracing::warn!("undecodable ring buffer record: {e}");
                }
            }
        }
        if let Some(m) = self.state.secrets.as_mut() {
            m.flush_reads_if_due();
        }
    }

    /// Copies totals kept elsewhere (kernel maps, cache, table, sinks) into the metrics.
    fn refresh_metrics(&self, sinks: &SinkStatsSource) {
        let m = &self.metrics;
        for (kind, slot) in [
            ("exec", KIND_EXEC),
            ("fork", KIND_FORK),
            ("exit", KIND_EXIT),
            ("file_open", KIND_FILE_OPEN),
            ("connect", KIND_CONNECT),
        ] {
            m.kernel(
                kind,
                per_cpu_total(&self.probes.sent, slot),
                per_cpu_total(&self.probes.drops, slot),
            );
        }
        let t = self.state.table.lock().unwrap().stats();
        for (state, n) in [("live", t.live), ("exited", t.exited)] {
            m.processes
                .get_or_create(&crate::export::metrics::StateLabel {
                    state: state.into(),
                })
                .set(n as i64);
        }
        let h = self.state.hashes.snapshot();
        m.hash_totals(h.hits, h.misses);
        if let Some(c) = &self.pod_source.cache {
            let s = c.stats();
            m.pod_metadata(s.fetches_ok, s.fetches_failed, s.pods);
        }
        for s in sinks.stats() {
            m.sink_stats(&s);
        }
    }

    fn housekeeping(&mut self) {
        self.state.table.lock().unwrap().expire(Instant::now());
        if let Some(m) = self.state.secrets.as_mut() {
            m.housekeeping();
        }
    }

    fn pod_metadata_status(&self) -> serde_json::Value {
        match (&self.pod_source.cache, &self.pod_source.disabled) {
            (Some(c), _) => serde_json::to_value(c.stats()).unwrap_or_default(),
            (None, why) => json!({"source": "none", "state": "disabled", "reason": why}),
        }
    }

    async fn emit_status(&mut self, state: &str, sinks: &SinkStatsSource) {
        let drops = |k| per_cpu_total(&self.probes.drops, k);
        let sent = |k| per_cpu_total(&self.probes.sent, k);
        let own = std::process::id();
        let snapshot = {
            let table = self.state.table.lock().unwrap();
            table.get(own).map(|r| r.snapshot.clone())
        };
        let snapshot = match snapshot {
            Some(s) => s,
            None => match scan_pid(own, &mut self.state.cgroups, &self.state.hashes) {
                Some(s) => s.snapshot.with_pods(self.state.pods.as_ref()),
                None => return,
            },
        };
        let g = &self.state.gaps;
        let status = json!({
            "state": state,
            "uptime_seconds": self.started.elapsed().as_secs_f64(),
            "hooks": self.probes.attached,
            "metrics_listen": self.metrics_addr.map(|a| a.to_string()),
            // How `enforce: kill` is carried out on this kernel.
            "kill_enforcement": if self.probes.lsm_deny { "lsm-deny" } else { "tracepoint-sigkill" },
            "hook_set": self.probes.hook_set(),
            "mounted": self.mounted,
            "kernel": {
                "ring_buffer_bytes": self.cfg.kernel.ring_buffer_bytes,
                "dropped": {
                    "exec": drops(KIND_EXEC), "fork": drops(KIND_FORK), "exit": drops(KIND_EXIT),
                    "file_open": drops(KIND_FILE_OPEN),
                    "connect": drops(KIND_CONNECT),
                    "total": drops(KIND_EXEC) + drops(KIND_FORK) + drops(KIND_EXIT)
                        + drops(KIND_FILE_OPEN) + drops(KIND_CONNECT),
                },
                "sent": {
                    "exec": sent(KIND_EXEC), "fork": sent(KIND_FORK), "exit": sent(KIND_EXIT),
                    "file_open": sent(KIND_FILE_OPEN),
                    "connect": sent(KIND_CONNECT),
                    // Repeated connects to a destination a process already reported.
                    "connect_deduplicated": sent(CONNECT_DEDUP_SLOT),
                    // Connects refused by block-egress.
                    "egress_denied": sent(EGRESS_DENIED_SLOT),
                    // Opens refused by the LSM deny path.
                    "opens_denied": sent(LSM_DENIED_SLOT),
                },
            },
            "userspace": {
                "decode_errors": g.decode_errors,
                "exits_without_record": g.exits_without_record,
                "forks_without_parent": g.forks_without_parent,
                "reconciled_without_exit": g.reconciled,
                "opens_without_process": g.opens_without_process,
                "connects_without_process": g.connects_without_process,
            },
            "secrets": self.state.secrets.as_ref().map(|m| m.stats_json()),
            "pod_metadata": self.pod_metadata_status(),
            "emitted": self.emit_counters.snapshot(),
            "process_table": self.state.table.lock().unwrap().stats(),
            "hash_cache": self.state.hashes.snapshot(),
            "sinks": sinks.stats(),
        });
        self.state
            .send(Pending {
                status: Some(status),
                ..Pending::new(Kind::AgentStatus, boot_ns(), snapshot)
            })
            .await;
    }
}

fn spawn_probe_log(
    logger: aya_log::EbpfLogger<&'static dyn log::Log>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let Ok(mut fd) = watch_fd(logger) else {
            return;
        };
        loop {
            let Ok(mut guard) = fd.readable_mut().await else {
                return;
            };
            guard.get_inner_mut().flush();
            guard.clear_ready();
        }
    })
}

/// Registers a map fd with the tokio reactor.
fn watch_fd<T: std::os::fd::AsRawFd>(inner: T) -> std::io::Result<AsyncFd<T>> {
    // SAFETY: `inner` (an aya map) owns its fd and keeps it open, unchanged,
    // for as long as it lives, and the AsyncFd owns `inner`.
    Ok(unsafe { AsyncFd::register(inner) }?)
}
