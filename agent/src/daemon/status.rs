//! The agent's figures, read once per tick into one snapshot: the
//! `agent_status` event's `status` object and the Prometheus metrics are both
//! written from it.

use proctor_common::{
    CONNECT_DEDUP_SLOT, CONNECT_UNSTARTED_SLOT, EGRESS_DENIED_SLOT, KIND_CONNECT, KIND_EXEC,
    KIND_EXEC_ENV, KIND_EXIT, KIND_FILE_OPEN, KIND_FORK, KIND_IO_URING, LSM_DENIED_SLOT,
};
use serde::Serialize;

use super::{ingest::Gaps, pod_source::PodMetadataStatus, reload::Reload, Agent};
use crate::{
    clock::boot_ns,
    event::Kind,
    export::{metrics::Metrics, sinks::SinkStats},
    identity::{hash_cache::HashStatsSnapshot, process_table::TableStats},
    kernel::{
        probes::{per_cpu_total, AttachedProgram, HookSet, Probes},
        tmpfs_watch::TmpfsFigures,
    },
    pipeline::emitter::{EmitStats, Pending},
    sync::lock,
};

/// Everything `agent_status.status` reports besides `state`. Field names,
/// nesting and value types are the event contract (DESIGN.md, docs).
#[derive(Debug, Serialize)]
pub(super) struct Figures {
    uptime_seconds: f64,
    hooks: Vec<AttachedProgram>,
    metrics_listen: Option<String>,
    /// How `enforce: kill` is carried out on this kernel (`none`: it is not).
    kill_enforcement: &'static str,
    hook_set: HookSet,
    mounted: Vec<String>,
    kernel: KernelFigures,
    userspace: Gaps,
    secrets: Option<serde_json::Value>,
    pod_metadata: PodMetadataStatus,
    emitted: EmitStats,
    process_table: TableStats,
    hash_cache: HashStatsSnapshot,
    sinks: Vec<SinkStats>,
}

/// `agent_status.status`: the agent's state (started, running, stopped) and
/// its figures, in one object.
#[derive(Serialize)]
struct Status<'a> {
    state: &'a str,
    /// Only on the event a configuration reload emits (state `reload`).
    #[serde(skip_serializing_if = "Option::is_none")]
    reload: Option<&'a Reload>,
    #[serde(flatten)]
    figures: &'a Figures,
}

#[derive(Debug, Serialize)]
struct KernelFigures {
    ring_buffer_bytes: u32,
    dropped: Dropped,
    sent: Sent,
    /// Reads of secrets on tmpfs (fanotify marks of the page-cache set);
    /// the records it lost are in `dropped.file_open` too.
    #[serde(skip_serializing_if = "Option::is_none")]
    tmpfs: Option<TmpfsFigures>,
}

/// Records the kernel could not reserve in the ring buffer.
#[derive(Debug, Serialize)]
struct Dropped {
    #[serde(flatten)]
    kinds: PerKind,
    total: u64,
}

/// Records the kernel submitted, and what the probes decided not to submit.
#[derive(Debug, Serialize)]
struct Sent {
    #[serde(flatten)]
    kinds: PerKind,
    /// Repeated connects to a destination a process already reported.
    connect_deduplicated: u64,
    /// TCP connects the cgroup hook let through that never started a
    /// handshake, reported by the agent's sweep (`failed_before_handshake`).
    connect_failed_before_handshake: u64,
    /// Connects refused by block-egress.
    egress_denied: u64,
    /// Opens refused by the LSM deny path.
    opens_denied: u64,
}

/// A kernel per-CPU counter map, summed, per kind of record.
#[derive(Debug, Serialize)]
struct PerKind {
    exec: u64,
    fork: u64,
    exit: u64,
    file_open: u64,
    connect: u64,
    /// First io_uring request of an opcode by a process.
    io_uring: u64,
    /// Environment blocks captured at exec.
    exec_env: u64,
}

impl PerKind {
    fn read(map: &aya::maps::PerCpuArray<aya::maps::MapData, u64>) -> Self {
        let n = |slot| per_cpu_total(map, slot);
        PerKind {
            exec: n(KIND_EXEC),
            fork: n(KIND_FORK),
            exit: n(KIND_EXIT),
            file_open: n(KIND_FILE_OPEN),
            connect: n(KIND_CONNECT),
            io_uring: n(KIND_IO_URING),
            exec_env: n(KIND_EXEC_ENV),
        }
    }

    /// (metrics `kind` label, count).
    fn labelled(&self) -> [(&'static str, u64); 7] {
        [
            ("exec", self.exec),
            ("fork", self.fork),
            ("exit", self.exit),
            ("file_open", self.file_open),
            ("connect", self.connect),
            ("io_uring", self.io_uring),
            ("exec_env", self.exec_env),
        ]
    }

    fn total(&self) -> u64 {
        self.labelled().iter().map(|(_, n)| n).sum()
    }
}

impl KernelFigures {
    fn read(probes: &Probes, ring_buffer_bytes: u32) -> Self {
        let mut dropped = PerKind::read(&probes.drops);
        let tmpfs = probes.tmpfs.as_ref().map(|t| t.figures());
        dropped.file_open += tmpfs.as_ref().map_or(0, |t| t.dropped);
        let sent = |slot| per_cpu_total(&probes.sent, slot);
        KernelFigures {
            tmpfs,
            ring_buffer_bytes,
            dropped: Dropped {
                total: dropped.total(),
                kinds: dropped,
            },
            sent: Sent {
                kinds: PerKind::read(&probes.sent),
                connect_deduplicated: sent(CONNECT_DEDUP_SLOT)
                    + probes.connect_sweeper.deduplicated,
                connect_failed_before_handshake: sent(CONNECT_UNSTARTED_SLOT)
                    + probes.connect_sweeper.failed_before_handshake,
                egress_denied: sent(EGRESS_DENIED_SLOT),
                opens_denied: sent(LSM_DENIED_SLOT),
            },
        }
    }
}

impl Figures {
    /// Copies the figures /metrics carries into the metrics.
    pub fn publish(&self, m: &Metrics) {
        let sent = self.kernel.sent.kinds.labelled();
        let dropped = self.kernel.dropped.kinds.labelled();
        for ((kind, sent), (_, dropped)) in sent.into_iter().zip(dropped) {
            m.kernel(kind, sent, dropped);
        }
        m.process_table(
            self.process_table.live,
            self.process_table.exited,
            self.process_table.evicted_early,
        );
        m.hash_totals(self.hash_cache.hits, self.hash_cache.misses);
        if let PodMetadataStatus::Source(s) = &self.pod_metadata {
            m.pod_metadata(s.fetches_ok, s.fetches_failed, s.pods);
        }
        for s in &self.sinks {
            m.sink_stats(s);
        }
    }
}

impl Agent {
    /// Reads every figure once: kernel maps, process table, caches, sinks.
    pub(super) fn figures(&self) -> Figures {
        let ingest = &self.ingest;
        Figures {
            uptime_seconds: self.started.elapsed().as_secs_f64(),
            hooks: self.probes.attached.clone(),
            metrics_listen: self.metrics_addr.map(|a| a.to_string()),
            kill_enforcement: self.probes.kill_enforcement(),
            hook_set: self.probes.hook_set(),
            mounted: self.mounted.clone(),
            kernel: KernelFigures::read(&self.probes, self.cfg.kernel.ring_buffer_bytes),
            userspace: ingest.gaps.clone(),
            secrets: ingest.secrets.as_ref().map(|m| m.stats_json()),
            pod_metadata: self.pod_source.status(),
            emitted: self.emit_counters.snapshot(),
            process_table: lock(&ingest.table).stats(),
            hash_cache: ingest.hashes.snapshot(),
            sinks: self.sink_stats.stats(),
        }
    }

    /// Refreshes the metrics between status events.
    pub(super) fn refresh_metrics(&self) {
        self.figures().publish(&self.metrics);
    }

    /// Emits `agent_status` in `state`, and refreshes the metrics from the
    /// same figures.
    pub(super) async fn emit_status(&mut self, state: &str) {
        self.emit_status_with(state, None).await
    }

    /// The `agent_status` event of a reload: state `reload`, its `reload` object.
    pub(super) async fn emit_reload(&mut self, reload: Reload) {
        self.emit_status_with("reload", Some(&reload)).await
    }

    async fn emit_status_with(&mut self, state: &str, reload: Option<&Reload>) {
        let figures = self.figures();
        figures.publish(&self.metrics);
        let Some(process) = self.ingest.own_snapshot() else {
            return;
        };
        let status = match serde_json::to_value(Status {
            state,
            reload,
            figures: &figures,
        }) {
            Ok(v) => v,
            Err(e) => {
                tracing::error!("agent_status not serialisable; this is a bug: {e}");
                return;
            }
        };
        self.ingest
            .send(Pending {
                status: Some(status),
                ..Pending::new(Kind::AgentStatus, boot_ns(), process)
            })
            .await;
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::identity::pods::SourceStats;

    fn per_kind(base: u64) -> PerKind {
        PerKind {
            exec: base + 1,
            fork: base + 2,
            exit: base + 3,
            file_open: base + 4,
            connect: base + 5,
            io_uring: base + 6,
            exec_env: base + 7,
        }
    }

    fn figures(pod_metadata: PodMetadataStatus) -> Figures {
        Figures {
            uptime_seconds: 1.5,
            hooks: vec![AttachedProgram {
                hook: "tp_btf/sched_process_exec".into(),
                id: 7,
            }],
            metrics_listen: Some("127.0.0.1:9464".into()),
            kill_enforcement: "tracepoint-sigkill",
            hook_set: HookSet::of(&[]),
            mounted: vec!["/sys/fs/bpf".into()],
            kernel: KernelFigures {
                ring_buffer_bytes: 1 << 20,
                dropped: Dropped {
                    total: per_kind(0).total(),
                    kinds: per_kind(0),
                },
                sent: Sent {
                    kinds: per_kind(10),
                    connect_deduplicated: 21,
                    connect_failed_before_handshake: 24,
                    egress_denied: 22,
                    opens_denied: 23,
                },
                tmpfs: None,
            },
            userspace: Gaps {
                decode_errors: 31,
                exits_without_record: 32,
                forks_without_parent: 33,
                reconciled_without_exit: 34,
                opens_without_process: 35,
                connects_without_process: 36,
                io_uring_without_process: 37,
                findings_without_process: 38,
                envs_without_process: 39,
            },
            secrets: Some(json!({"bound_secrets": 2})),
            pod_metadata,
            emitted: EmitStats {
                process_exec: 41,
                process_exit: 42,
                agent_status: 43,
                file_open: 44,
                finding: 45,
                net_connect: 46,
                process_hash: 48,
                suppressed: 47,
                hash_pending: 49,
            },
            process_table: TableStats {
                live: 51,
                exited: 52,
                evicted_early: 53,
            },
            hash_cache: HashStatsSnapshot {
                entries: 61,
                hits: 62,
                misses: 63,
                bytes_hashed: 64,
                hash_seconds: 0.25,
                too_large: 65,
                unverified: 66,
                not_regular: 67,
            },
            sinks: Vec::new(),
        }
    }

    /// The object as it was written by hand before the snapshot existed:
    /// field names, nesting and value types are the contract.
    fn contract(f: &Figures, pod_metadata: serde_json::Value) -> serde_json::Value {
        json!({
            "state": "running",
            "uptime_seconds": 1.5,
            "hooks": [{"hook": "tp_btf/sched_process_exec", "id": 7}],
            "metrics_listen": "127.0.0.1:9464",
            "kill_enforcement": "tracepoint-sigkill",
            "hook_set": f.hook_set,
            "mounted": ["/sys/fs/bpf"],
            "kernel": {
                "ring_buffer_bytes": 1u32 << 20,
                "dropped": {"exec": 1, "fork": 2, "exit": 3, "file_open": 4, "connect": 5, "io_uring": 6, "exec_env": 7, "total": 28},
                "sent": {
                    "exec": 11, "fork": 12, "exit": 13, "file_open": 14, "connect": 15, "io_uring": 16, "exec_env": 17,
                    "connect_deduplicated": 21, "connect_failed_before_handshake": 24,
                    "egress_denied": 22, "opens_denied": 23,
                },
            },
            "userspace": {
                "decode_errors": 31,
                "exits_without_record": 32,
                "forks_without_parent": 33,
                "reconciled_without_exit": 34,
                "opens_without_process": 35,
                "envs_without_process": 39,
                "connects_without_process": 36,
                "io_uring_without_process": 37,
                "findings_without_process": 38,
            },
            "secrets": {"bound_secrets": 2},
            "pod_metadata": pod_metadata,
            "emitted": f.emitted,
            "process_table": {"live": 51, "exited": 52, "evicted_early": 53},
            "hash_cache": f.hash_cache,
            "sinks": [],
        })
    }

    #[test]
    fn agent_status_keeps_its_field_names_and_types() {
        let off = figures(PodMetadataStatus::Disabled {
            source: "none",
            state: "disabled",
            reason: Some("kubernetes.enabled is off".into()),
        });
        let got = serde_json::to_value(Status {
            reload: None,
            state: "running",
            figures: &off,
        })
        .unwrap();
        let want = contract(
            &off,
            json!({"source": "none", "state": "disabled", "reason": "kubernetes.enabled is off"}),
        );
        assert_eq!(got, want);

        let stats = SourceStats {
            source: "kubelet",
            state: "ok",
            pods: 3,
            ..SourceStats::default()
        };
        let on = figures(PodMetadataStatus::Source(stats.clone()));
        let got = serde_json::to_value(Status {
            reload: None,
            state: "running",
            figures: &on,
        })
        .unwrap();
        assert_eq!(got, contract(&on, serde_json::to_value(stats).unwrap()));
    }
}
