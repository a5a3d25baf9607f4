//! Prometheus metrics and the `/healthz` `/readyz` endpoints.
//!
//! Counters that live elsewhere (kernel records sent and dropped per kind,
//! the process table, caches, sinks) are copied in from the daemon's status
//! figures on each refresh; everything else is counted where it happens.

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
    encoding::{text::encode, EncodeLabelSet},
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};
use serde::Deserialize;

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
    pub events: Family<KindLabel, Counter>,
    pub findings: Family<FindingLabels, Counter>,
    kernel_sent: Family<KindLabel, Counter>,
    kernel_dropped: Family<KindLabel, Counter>,
    mirrors: Mutex<std::collections::HashMap<String, Arc<Mirror>>>,
    processes: Family<StateLabel, Gauge>,
    pub hash_hits: Counter,
    pub hash_misses: Counter,
    pub sink: Family<SinkLabels, Counter>,
    pod_fetches: Family<OutcomeLabel, Counter>,
    pod_pods: Gauge,
    sink_queued: Family<SinkLabel, Gauge>,
    sink_in_spool: Family<SinkLabel, Gauge>,
    sink_spool_bytes: Family<SinkLabel, Gauge>,
    sink_up: Family<SinkLabel, Gauge>,
    pub ready: AtomicBool,
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        let mut r = Registry::with_prefix("proctor");
        let m = Self {
            registry: Mutex::new(Registry::default()),
            events: Family::default(),
            findings: Family::default(),
            kernel_sent: Family::default(),
            kernel_dropped: Family::default(),
            mirrors: Mutex::default(),
            processes: Family::default(),
            hash_hits: Counter::default(),
            hash_misses: Counter::default(),
            sink: Family::default(),
            pod_fetches: Family::default(),
            pod_pods: Gauge::default(),
            sink_queued: Family::default(),
            sink_in_spool: Family::default(),
            sink_spool_bytes: Family::default(),
            sink_up: Family::default(),
            ready: AtomicBool::new(false),
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
        *m.registry.lock().unwrap() = r;
        Arc::new(m)
    }

    fn mirror(&self, name: String) -> Arc<Mirror> {
        self.mirrors
            .lock()
            .unwrap()
            .entry(name)
            .or_default()
            .clone()
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

    /// Sets the process table's live and exited record counts.
    pub fn process_table(&self, live: usize, exited: usize) {
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
        let mut out = String::new();
        let _ = encode(&mut out, &self.registry.lock().unwrap());
        out
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
    if m.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "probes not attached yet\n")
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
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(m);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("metrics server stopped: {e}");
        }
    });
    Ok(Some(addr))
}
