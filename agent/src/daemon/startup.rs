//! Start-up: sinks, kernel preparation, probe loading and attachment, the
//! process table seeded from /proc, and the secret monitor.

use std::{
    sync::{Arc, Mutex},
    time::Instant,
};

use anyhow::Result;
use tokio::sync::mpsc;

use super::{
    hook_check::check_hooks,
    ingest::{Gaps, Ingest},
    pod_source::PodSource,
    Agent,
};
use crate::{
    config::Config,
    export::{metrics::Metrics, sinks::SinkSet},
    identity::{
        cgroups::CgroupResolver, hash_cache::HashCache, packages, process_table::ProcessTable,
        procfs_seed,
    },
    kernel::{preflight, probes},
    pipeline::{feed::Feed, seq_store::SeqStore},
    secrets::{policy::Enforcement, setup},
};

impl Agent {
    /// Checks, loads and attaches everything, and seeds the process table.
    /// Must be called inside a tokio runtime.
    pub(super) fn start(cfg: Config, source: super::reload::ConfigSource) -> Result<Self> {
        // Sinks first: a bad CA file or a spool in use fails before any probe loads.
        let node: Arc<str> = cfg.node().into();
        let seq = SeqStore::open(&cfg.state_dir)?;
        let sinks = Arc::new(SinkSet::start(&cfg.sinks, &cfg.state_dir, &node)?);
        let mounted = preflight::prepare()?;
        // Enforcement hooks only go in when some rule asks for them.
        let wants = |e| cfg.secrets.rules.iter().any(|r| r.enforce.contains(&e));
        let mut probes = probes::load(
            cfg.kernel.ring_buffer_bytes,
            cfg.kernel.wakeup_bytes() as u64,
            probes::EnforcementHooks {
                block_egress: wants(Enforcement::BlockEgress),
                lsm_deny: wants(Enforcement::Kill),
            },
            probes::FileAccess {
                hooks: cfg.kernel.file_hooks,
                repeat_window_ns: cfg.kernel.repeat_window.as_nanos() as u64,
            },
            cfg.kernel.direct_loads,
        )?;
        let not_ready = check_hooks(&cfg, &probes)?;
        let metrics = Metrics::new();
        metrics.health.set_stall_after(cfg.health.stall_after);
        metrics.set_not_ready(not_ready);
        // The fanotify reader runs from here on: the agent's own reads of a
        // secret under a permission mark (fingerprints during the first
        // scan below) are answered, never left waiting on themselves.
        let tmpfs_reads = probes.tmpfs.clone().map(|t| {
            let (tx, rx) = mpsc::channel(super::TMPFS_QUEUE);
            let reader = t.run(tx, cfg.kernel.repeat_window);
            super::tasks::supervise("tmpfs reader", metrics.clone(), reader);
            rx
        });
        let hashes = HashCache::new(
            cfg.hash.cache_entries,
            cfg.hash.workers,
            cfg.hash.max_file_bytes,
        );
        let mut cgroups = CgroupResolver::new();
        let pods = PodSource::new(&cfg.kubernetes, &cfg.node())?;
        let mut table =
            ProcessTable::new(cfg.process_table.exit_grace, cfg.process_table.max_exited);
        // Probes are attached first, so a process started during the scan is
        // seen by one or the other (an exec record replaces a scan record).
        for s in procfs_seed::scan_all(&mut cgroups, &hashes) {
            let mut r = s.into_record(true);
            r.snapshot = r.snapshot.with_pods(pods.cache.as_ref());
            table.insert(r.snapshot.process.pid, r);
        }
        let mut secrets = match (
            cfg.secrets.enabled,
            probes.open_filter.take(),
            probes.enforcement.take(),
        ) {
            (true, Some(filter), Some(enforcement)) => {
                let inputs = setup::Inputs {
                    secrets: &cfg.secrets,
                    catalog: cfg.catalog()?,
                    fingerprinter: cfg.fingerprinter()?,
                    state_dir: &cfg.state_dir,
                };
                Some(setup::build(
                    inputs,
                    filter,
                    enforcement,
                    probes.tmpfs.clone(),
                )?)
            }
            _ => None,
        };
        // The page-cache set sees no file creation: poll the secrets' directories.
        if let Some(m) = secrets
            .as_mut()
            .filter(|_| probes.hook_set().file_access == "page-cache")
        {
            m.poll_new_files();
        }
        // Pods' Secret volumes are named from the pod list: watched only with one.
        if let (Some(m), Some(_)) = (secrets.as_mut(), pods.cache.as_ref()) {
            m.watch_kubelet(cfg.kubernetes.kubelet_root.clone());
        }
        // Parsing the kernel's BTF (twice: offsets and program loading) and
        // the first look for secrets leave tens of MiB of freed heap behind.
        crate::heap::give_back_freed();
        let packages = packages::Packages::start(cfg.packages.clone());
        let (tx, rx) = mpsc::channel(16 * 1024);
        let feed = Feed::new(if cfg.api.enabled {
            cfg.api.recent_events
        } else {
            0
        });
        Ok(Self {
            node,
            sink_stats: sinks.stats_source(),
            sinks,
            seq: Some(seq),
            probes,
            ingest: Ingest {
                table: Arc::new(Mutex::new(table)),
                cgroups,
                hashes,
                pods: pods.cache.clone(),
                secrets,
                hygiene: Arc::new(crate::api::hygiene::Evidence::new(Some(packages.clone()))),
                packages,
                tx,
                gaps: Gaps::default(),
                env_scans: Default::default(),
                metrics: metrics.clone(),
                ring_emptied: 0,
            },
            emit_counters: Arc::default(),
            feed,
            rx: Some(rx),
            tmpfs_reads,
            mounted,
            started: Instant::now(),
            metrics,
            metrics_addr: None,
            pod_source: pods,
            rate_limit: tokio::sync::watch::channel(cfg.rate_limit.clone()).0,
            source,
            cfg,
        })
    }
}
