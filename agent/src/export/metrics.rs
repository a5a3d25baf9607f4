//! Prometheus metrics and the `/healthz` `/readyz` endpoints.
//!
//! Counters that live elsewhere (kernel records sent and dropped per kind,
//! the process table, caches, sinks) are copied in from the daemon's status
//! figures on each refresh; everything else is counted where it happens.
//! The agent's own CPU and memory are the standard unprefixed `process_*`
//! metrics, read from /proc/self on each scrape.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
};

use anyhow::{Context, Result};
use axum::{extract::State, http::StatusCode, response::IntoResponse, routing::get, Router};
use prometheus_client::{
    collector::Collector,
    encoding::{
        text::{encode_eof, encode_registry},
        DescriptorEncoder, EncodeLabelSet, EncodeMetric,
    },
    metrics::{
        counter::{ConstCounter, Counter},
        family::Family,
        gauge::{ConstGauge, Gauge},
    },
    registry::Registry,
};
use serde::Deserialize;

use crate::sync::lock;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// `host:port` for /metrics, /healthz, /readyz; empty disables the server.
    /// Loopback by default: the figures say which rules fired, when a sink
    /// is down and whether the agent is dropping records, which is for the
    /// scraper, not the network (`proctor run --metrics-listen` overrides it).
    pub listen: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9464".into(),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FindingLabels {
    pub rule: String,
    pub severity: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SinkLabels {
    pub sink: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SinkLabel {
    pub sink: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TaskLabel {
    pub task: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub state: String,
}

/// A counter fed from a monotonic total kept elsewhere (a kernel map).
#[derive(Default)]
struct Mirror {
    last: AtomicU64,
}

impl Mirror {
    fn feed(&self, counter: &Counter, total: u64) {
        let prev = self.last.swap(total, Ordering::Relaxed);
        counter.inc_by(total.saturating_sub(prev));
    }
}

pub struct Metrics {
    registry: Mutex<Registry>,
    /// The unprefixed `process_*` metrics.
    process: Registry,
    pub events: Family<KindLabel, Counter>,
    pub findings: Family<FindingLabels, Counter>,
    kernel_sent: Family<KindLabel, Counter>,
    kernel_dropped: Family<KindLabel, Counter>,
    mirrors: Mutex<std::collections::HashMap<String, Arc<Mirror>>>,
    processes: Family<StateLabel, Gauge>,
    processes_evicted: Counter,
    pub hash_hits: Counter,
    pub hash_misses: Counter,
    pub sink: Family<SinkLabels, Counter>,
    pod_fetches: Family<OutcomeLabel, Counter>,
    pod_pods: Gauge,
    sink_queued: Family<SinkLabel, Gauge>,
    sink_in_spool: Family<SinkLabel, Gauge>,
    sink_spool_bytes: Family<SinkLabel, Gauge>,
    sink_up: Family<SinkLabel, Gauge>,
    oldest_pending: Gauge<f64, AtomicU64>,
    ready_gauge: Gauge,
    healthy_gauge: Gauge,
    task_failures: Family<TaskLabel, Counter>,
    config_reloads: Family<ResultLabel, Counter>,
    pub ready: AtomicBool,
    pub health: Health,
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        let mut r = Registry::with_prefix("proctor");
        let m = Self {
            registry: Mutex::new(Registry::default()),
            process: {
                let mut p = Registry::default();
                p.register_collector(Box::new(ProcessCollector));
                p
            },
            events: Family::default(),
            findings: Family::default(),
            kernel_sent: Family::default(),
            kernel_dropped: Family::default(),
            mirrors: Mutex::default(),
            processes: Family::default(),
            processes_evicted: Counter::default(),
            hash_hits: Counter::default(),
            hash_misses: Counter::default(),
            sink: Family::default(),
            pod_fetches: Family::default(),
            pod_pods: Gauge::default(),
            sink_queued: Family::default(),
            sink_in_spool: Family::default(),
            sink_spool_bytes: Family::default(),
            sink_up: Family::default(),
            oldest_pending: Gauge::default(),
            ready_gauge: Gauge::default(),
            healthy_gauge: Gauge::default(),
            task_failures: Family::default(),
            config_reloads: Family::default(),
            ready: AtomicBool::new(false),
            health: Health::default(),
        };
        r.register("events", "Events emitted, by kind", m.events.clone());
        r.register(
            "findings",
            "Findings emitted, by rule and severity",
            m.findings.clone(),
        );
        r.register(
            "kernel_records",
            "Records the kernel probes submitted, by kind",
            m.kernel_sent.clone(),
        );
        r.register(
            "kernel_dropped",
            "Records the kernel could not submit (ring buffer full), by kind",
            m.kernel_dropped.clone(),
        );
        r.register(
            "processes",
            "Processes in the process table",
            m.processes.clone(),
        );
        r.register(
            "processes_evicted_early",
            "Exited-process records forgotten before their grace period (process_table.max_exited reached)",
            m.processes_evicted.clone(),
        );
        r.register(
            "hash_cache_hits",
            "Executable hash cache hits",
            m.hash_hits.clone(),
        );
        r.register(
            "hash_cache_misses",
            "Executable hash cache misses",
            m.hash_misses.clone(),
        );
        r.register(
            "sink_events",
            "Events per sink and outcome: delivered, failed (attempts), spooled \
             (queue full, written to disk), dropped (queue and spool full, or refused), \
             skipped (the format cannot carry the event)",
            m.sink.clone(),
        );
        r.register(
            "pod_metadata_fetches",
            "Fetches of pod metadata (kubelet /pods), by outcome (ok, failed)",
            m.pod_fetches.clone(),
        );
        r.register(
            "pod_metadata_pods",
            "Pods whose metadata the agent holds",
            m.pod_pods.clone(),
        );
        r.register(
            "sink_queued",
            "Events in a sink's memory queue",
            m.sink_queued.clone(),
        );
        r.register(
            "sink_spool_events",
            "Events in a sink's on-disk spool",
            m.sink_in_spool.clone(),
        );
        r.register(
            "sink_spool_bytes",
            "Bytes of a sink's on-disk spool",
            m.sink_spool_bytes.clone(),
        );
        r.register(
            "sink_up",
            "1 when a sink's last delivery attempt succeeded",
            m.sink_up.clone(),
        );
        r.register(
            "pipeline_oldest_pending_seconds",
            "Age of the oldest kernel event taken from the ring buffer and not yet emitted",
            m.oldest_pending.clone(),
        );
        r.register(
            "ready",
            "1 when /readyz answers 200: probes attached and every hook the config needs is in",
            m.ready_gauge.clone(),
        );
        r.register(
            "healthy",
            "1 when /healthz answers 200: no task failed and the pipeline is not stalled",
            m.healthy_gauge.clone(),
        );
        r.register(
            "task_failures",
            "Agent tasks (emitter, pod poller, API server, ...) that panicked or stopped",
            m.task_failures.clone(),
        );
        r.register(
            "config_reloads",
            "Configuration reloads (SIGHUP, config file change), by result: applied or refused",
            m.config_reloads.clone(),
        );
        *lock(&m.registry) = r;
        Arc::new(m)
    }

    fn mirror(&self, name: String) -> Arc<Mirror> {
        lock(&self.mirrors).entry(name).or_default().clone()
    }

    /// Copies the kernel's per-kind totals in.
    pub fn kernel(&self, kind: &str, sent: u64, dropped: u64) {
        let label = KindLabel { kind: kind.into() };
        self.mirror(format!("sent/{kind}"))
            .feed(&self.kernel_sent.get_or_create(&label), sent);
        self.mirror(format!("dropped/{kind}"))
            .feed(&self.kernel_dropped.get_or_create(&label), dropped);
    }

    /// Copies a monotonic total kept elsewhere into a labelled sink counter.
    pub fn sink_total(&self, sink: &str, outcome: &str, total: u64) {
        let label = SinkLabels {
            sink: sink.into(),
            outcome: outcome.into(),
        };
        self.mirror(format!("sink/{sink}/{outcome}"))
            .feed(&self.sink.get_or_create(&label), total);
    }

    /// Copies one sink's counters and levels in.
    pub fn sink_stats(&self, s: &crate::export::sinks::SinkStats) {
        for (outcome, total) in [
            ("delivered", s.delivered),
            ("failed", s.failed),
            ("spooled", s.spooled),
            ("dropped", s.dropped),
            ("skipped", s.skipped),
        ] {
            self.sink_total(&s.name, outcome, total);
        }
        let label = SinkLabel {
            sink: s.name.clone(),
        };
        let level = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.sink_queued.get_or_create(&label).set(level(s.queued));
        self.sink_in_spool
            .get_or_create(&label)
            .set(level(s.in_spool));
        self.sink_spool_bytes
            .get_or_create(&label)
            .set(level(s.spool_bytes));
        self.sink_up.get_or_create(&label).set(i64::from(!s.down));
    }

    /// Sets the process table's live and exited record counts, and its
    /// running total of exited records evicted before their grace.
    pub fn process_table(&self, live: usize, exited: usize, evicted_early: u64) {
        self.mirror("processes/evicted_early".into())
            .feed(&self.processes_evicted, evicted_early);
        for (state, n) in [("live", live), ("exited", exited)] {
            let label = StateLabel {
                state: state.into(),
            };
            self.processes
                .get_or_create(&label)
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    pub fn hash_totals(&self, hits: u64, misses: u64) {
        self.mirror("hash/hits".into()).feed(&self.hash_hits, hits);
        self.mirror("hash/misses".into())
            .feed(&self.hash_misses, misses);
    }

    /// Copies the pod metadata source's totals in.
    pub fn pod_metadata(&self, ok: u64, failed: u64, pods: usize) {
        for (outcome, total) in [("ok", ok), ("failed", failed)] {
            let label = OutcomeLabel {
                outcome: outcome.into(),
            };
            self.mirror(format!("pods/{outcome}"))
                .feed(&self.pod_fetches.get_or_create(&label), total);
        }
        self.pod_pods.set(pods as i64);
    }

    pub fn encode(&self) -> String {
        let age = self.health.oldest_pending_ns(crate::clock::boot_ns());
        self.oldest_pending.set(age as f64 / 1e9);
        self.ready_gauge.set(i64::from(self.readiness().is_ok()));
        self.healthy_gauge.set(i64::from(
            self.health.verdict(crate::clock::boot_ns()).is_ok(),
        ));
        let mut out = String::new();
        let _ = encode_registry(&mut out, &lock(&self.registry))
            .and_then(|()| encode_registry(&mut out, &self.process))
            .and_then(|()| encode_eof(&mut out));
        out
    }

    /// `Ok` when `/readyz` answers 200; else its body.
    fn readiness(&self) -> Result<(), String> {
        if !self.ready.load(Ordering::Relaxed) {
            return Err("probes not attached yet\n".to_string());
        }
        let missing = lock(&self.health.not_ready).clone();
        if missing.is_empty() {
            return Ok(());
        }
        let mut body = String::from("not ready: hooks the config needs are not attached\n");
        for m in missing {
            body.push_str(&format!("- {m}\n"));
        }
        Err(body)
    }

    /// Records that `task` panicked or stopped: counted, and `/healthz` fails.
    pub fn config_reloaded(&self, result: &str) {
        self.config_reloads
            .get_or_create(&ResultLabel {
                result: result.into(),
            })
            .inc();
    }

    pub fn task_failed(&self, task: &str, why: &str) {
        self.task_failures
            .get_or_create(&TaskLabel { task: task.into() })
            .inc();
        lock(&self.health.failed).push(format!("{task}: {why}"));
    }

    /// Hooks the config needs that are not attached: `/readyz` fails naming them.
    pub fn set_not_ready(&self, missing: Vec<String>) {
        *lock(&self.health.not_ready) = missing;
    }
}

async fn metrics(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        m.encode(),
    )
}

async fn readyz(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    match m.readiness() {
        Ok(()) => (StatusCode::OK, "ready\n".to_string()),
        Err(body) => (StatusCode::SERVICE_UNAVAILABLE, body),
    }
}

/// The agent's own CPU time and resident memory, as every Prometheus client
/// library names them, so standard dashboards and alerts apply.
#[derive(Debug)]
struct ProcessCollector;

/// What one `/proc/self/stat` line says about the process.
#[derive(Debug, PartialEq)]
struct ProcStat {
    cpu_seconds: f64,
    resident_bytes: u64,
    /// Seconds after boot.
    started_after_boot: f64,
}

/// CPU seconds (user + system), resident bytes and start time after boot
/// from a `/proc/PID/stat` line.
fn parse_stat(stat: &str) -> Option<ProcStat> {
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state): utime 14, stime 15, starttime 22, rss 24 (proc(5)).
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    let start_ticks: u64 = f.get(19)?.parse().ok()?;
    let rss_pages: u64 = f.get(21)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let (hz, page) = unsafe {
        (
            libc::sysconf(libc::_SC_CLK_TCK),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    if hz <= 0 || page <= 0 {
        return None;
    }
    Some(ProcStat {
        cpu_seconds: ticks as f64 / hz as f64,
        resident_bytes: rss_pages * page as u64,
        started_after_boot: start_ticks as f64 / hz as f64,
    })
}

/// The boot time in Unix seconds (`btime` of /proc/stat), read once: it does not change.
fn boot_time() -> Option<u64> {
    static BTIME: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    *BTIME.get_or_init(|| {
        std::fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("btime "))?
            .trim()
            .parse()
            .ok()
    })
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        // /proc/self/stat is generated by the kernel, never blocks and is one short line.
        let Some(st) = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .as_deref()
            .and_then(parse_stat)
        else {
            return Ok(());
        };
        let c = ConstCounter::new(st.cpu_seconds);
        c.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            None,
            c.metric_type(),
        )?)?;
        let g = ConstGauge::new(i64::try_from(st.resident_bytes).unwrap_or(i64::MAX));
        g.encode(encoder.encode_descriptor(
            "process_resident_memory_bytes",
            "Resident memory size in bytes",
            None,
            g.metric_type(),
        )?)?;
        // The alert rules tell an agent that restarted (all counters from 0)
        // from one Prometheus has just begun to scrape.
        if let Some(btime) = boot_time() {
            let g = ConstGauge::new(btime as f64 + st.started_after_boot);
            g.encode(encoder.encode_descriptor(
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds",
                None,
                g.metric_type(),
            )?)?;
        }
        Ok(())
    }
}

async fn healthz(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    match m.health.verdict(crate::clock::boot_ns()) {
        Ok(()) => (StatusCode::OK, "ok\n".to_string()),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("unhealthy: {why}\n"),
        ),
    }
}

/// The pipeline's progress marks, in kernel boot-time ns (0: none), read by
/// `/healthz` and the oldest-pending gauge.
#[derive(Default)]
pub struct Health {
    stall_after_ns: AtomicU64,
    /// When the reader loop last finished draining the ring buffer.
    last_drain: AtomicU64,
    /// The kernel time of the event the emitter is working on, and since when.
    emitting_event: AtomicU64,
    emitting_since: AtomicU64,
    /// The kernel time of the event the reader waits to hand to the emitter
    /// (its queue is full), and since when.
    handoff_event: AtomicU64,
    handoff_since: AtomicU64,
    failed: Mutex<Vec<String>>,
    not_ready: Mutex<Vec<String>>,
}

impl Health {
    pub fn set_stall_after(&self, d: std::time::Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.stall_after_ns.store(ns, Ordering::Relaxed);
    }

    pub fn drained(&self, now: u64) {
        self.last_drain.store(now, Ordering::Relaxed);
    }

    /// The emitter took the event of kernel time `event` at `now`.
    pub fn emitting(&self, event: u64, now: u64) {
        self.emitting_event.store(event, Ordering::Relaxed);
        self.emitting_since.store(now, Ordering::Relaxed);
    }

    /// The emitter is idle again (no clock read: it ran twice per event).
    pub fn emitted(&self) {
        self.emitting_event.store(0, Ordering::Relaxed);
        self.emitting_since.store(0, Ordering::Relaxed);
    }

    /// The reader waits to hand over the event of kernel time `event` (0: done).
    pub fn handing_off(&self, event: u64, now: u64) {
        self.handoff_event.store(event, Ordering::Relaxed);
        self.handoff_since
            .store(if event == 0 { 0 } else { now }, Ordering::Relaxed);
    }

    /// Age of the oldest event taken from the kernel and not yet emitted.
    pub fn oldest_pending_ns(&self, now: u64) -> u64 {
        [&self.emitting_event, &self.handoff_event]
            .iter()
            .map(|e| e.load(Ordering::Relaxed))
            .filter(|&e| e != 0)
            .map(|e| now.saturating_sub(e))
            .max()
            .unwrap_or(0)
    }

    /// `Ok` when the pipeline moves; else why not.
    pub fn verdict(&self, now: u64) -> Result<(), String> {
        let failed = lock(&self.failed);
        if !failed.is_empty() {
            return Err(format!("task failed: {}", failed.join("; ")));
        }
        drop(failed);
        let bound = self.stall_after_ns.load(Ordering::Relaxed);
        let stalled = |since: u64| since != 0 && bound != 0 && now.saturating_sub(since) > bound;
        let secs = |since: u64| now.saturating_sub(since) as f64 / 1e9;
        let handoff = self.handoff_since.load(Ordering::Relaxed);
        if stalled(handoff) {
            return Err(format!(
                "the ring buffer has not been drained for {:.1}s: the reader waits for the \
                 emitter's queue",
                secs(handoff)
            ));
        }
        let drain = self.last_drain.load(Ordering::Relaxed);
        if stalled(drain) {
            return Err(format!(
                "the ring buffer has not been drained for {:.1}s",
                secs(drain)
            ));
        }
        let emitting = self.emitting_since.load(Ordering::Relaxed);
        if stalled(emitting) {
            return Err(format!(
                "the emitter has not advanced for {:.1}s ({:.1}s behind the kernel)",
                secs(emitting),
                self.oldest_pending_ns(now) as f64 / 1e9
            ));
        }
        Ok(())
    }
}

/// Binds the metrics server; returns the bound address (port 0 picks one).
pub async fn serve(cfg: &MetricsConfig, m: Arc<Metrics>) -> Result<Option<SocketAddr>> {
    if cfg.listen.is_empty() {
        return Ok(None);
    }
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} for /metrics: is another agent running? set metrics.listen \
                 (\"\" disables it)",
                cfg.listen
            )
        })?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(m);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("metrics server stopped: {e}");
        }
    });
    Ok(Some(addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn health() -> Health {
        let h = Health::default();
        h.set_stall_after(std::time::Duration::from_secs(2));
        h
    }

    #[test]
    fn a_stalled_emitter_fails_healthz_and_recovers_when_it_advances() {
        let h = health();
        h.drained(100 * S);
        h.emitting(99 * S, 100 * S);
        assert_eq!(h.verdict(101 * S), Ok(()));
        assert_eq!(h.oldest_pending_ns(101 * S), 2 * S);
        // The reader keeps draining (into the emitter's queue).
        h.drained(102 * S);
        let err = h.verdict(103 * S).unwrap_err();
        assert!(err.contains("emitter has not advanced for 3.0s"), "{err}");
        assert!(err.contains("4.0s behind"), "{err}");
        h.emitted();
        h.drained(103 * S);
        assert_eq!(h.verdict(104 * S), Ok(()));
        assert_eq!(h.oldest_pending_ns(104 * S), 0);
    }

    #[test]
    fn a_reader_blocked_on_a_full_queue_fails_healthz() {
        let h = health();
        h.drained(10 * S);
        h.handing_off(9 * S, 10 * S);
        assert_eq!(h.verdict(11 * S), Ok(()));
        let err = h.verdict(13 * S).unwrap_err();
        assert!(err.contains("waits for the emitter's queue"), "{err}");
        assert_eq!(h.oldest_pending_ns(13 * S), 4 * S);
        h.handing_off(0, 13 * S);
        h.drained(13 * S);
        assert_eq!(h.verdict(14 * S), Ok(()));
    }

    #[test]
    fn a_reader_loop_that_stops_draining_fails_healthz() {
        let h = health();
        assert_eq!(h.verdict(50 * S), Ok(()), "not started yet is not a stall");
        h.drained(50 * S);
        let err = h.verdict(53 * S).unwrap_err();
        assert!(err.contains("not been drained for 3.0s"), "{err}");
    }

    fn sample_of(text: &str, name: &str) -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    }

    #[test]
    fn process_figures_come_from_proc_stat_even_with_odd_command_names() {
        let line = "4242 (we ird) (x)) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
                    250 150 0 0 20 0 4 0 12345 123456789 300 18446744073709551615";
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
        assert_eq!(
            parse_stat(line),
            Some(ProcStat {
                cpu_seconds: 400.0 / hz,
                resident_bytes: 300 * page,
                started_after_boot: 12345.0 / hz,
            })
        );
        assert_eq!(parse_stat("4242 (x) S 1 2"), None);
        let m = Metrics::new();
        let out = m.encode();
        assert!(out.contains("\nprocess_cpu_seconds_total "), "{out}");
        assert!(out.contains("\nprocess_resident_memory_bytes "), "{out}");
        let started = sample_of(&out, "process_start_time_seconds");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        // This test process started within the last hour, not in the future.
        assert!(started <= now + 1.0 && started > now - 3600.0, "{out}");
        assert!(out.contains("\nproctor_ready 0\n"), "{out}");
        assert!(out.trim_end().ends_with("# EOF"), "{out}");
        assert_eq!(out.matches("# EOF").count(), 1, "{out}");
        m.ready.store(true, Ordering::Relaxed);
        assert!(m.encode().contains("\nproctor_ready 1\n"));
        m.set_not_ready(vec!["lsm/file_open".into()]);
        assert!(m.encode().contains("\nproctor_ready 0\n"));
    }

    #[test]
    fn a_failed_task_fails_healthz_for_good() {
        let m = Metrics::new();
        m.health.set_stall_after(std::time::Duration::from_secs(2));
        assert_eq!(m.health.verdict(S), Ok(()));
        m.task_failed("pod poller", "panicked: boom");
        let err = m.health.verdict(S).unwrap_err();
        assert!(err.contains("pod poller: panicked: boom"), "{err}");
        let out = m.encode();
        assert!(out.contains("proctor_task_failures_total{task=\"pod poller\"} 1"));
        assert!(out.contains("\nproctor_healthy 0\n"), "{out}");
    }
}
