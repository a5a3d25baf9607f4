//! Ingest: what turns decoded kernel records into process-table updates and
//! detector calls, and counts the records it could not attribute.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::Instant,
};

use aya::maps::{MapData, RingBuf};
use proctor_common::{ExitEvent, ForkEvent};
use serde::Serialize;
use tokio::{
    sync::mpsc::{self, error::TrySendError},
    task::JoinHandle,
};

use crate::{
    clock::boot_ns,
    event::{ExitInfo, Kind},
    export::metrics::Metrics,
    identity::cgroups::CgroupResolver,
    identity::exec_id::{exec_id, Origin},
    identity::exec_identity::{self, ParentRef},
    identity::hash_cache::HashCache,
    identity::packages::Packages,
    identity::per_process::ProcessKey,
    identity::pods::PodCache,
    identity::process_table::{ProcessTable, Record, Sweep},
    identity::snapshot::Snapshot,
    identity::{liveness, procfs_seed::scan_pid},
    kernel::decode::{
        decode, io_uring_op_name, ConnectRecord, EnvRecord, ExecRecord, IoUringRecord, KernelEvent,
        OpenRecord,
    },
    kernel::tmpfs_watch::TmpfsRead,
    pipeline::emitter::Pending,
    secrets::{env, monitor::SecretMonitor},
    sync::lock,
};

/// Records handled per drain call: bounded so status and signals are served
/// during a storm.
const DRAIN_BATCH: usize = 4096;

/// Environment scans in flight on the blocking pool; past this the loop
/// waits for the oldest (backpressure into the ring buffer, where losses
/// are counted) instead of queueing without bound.
const ENV_SCANS_IN_FLIGHT: usize = 256;

/// An environment captured at exec, being scanned off the event loop.
pub(super) struct EnvScan {
    snapshot: Snapshot,
    ktime_ns: u64,
    truncated: bool,
    digest: env::BlockDigest,
    scan: Scanning,
}

enum Scanning {
    /// A copy of a block already scanned clean: judged without a scan.
    KnownClean(env::BlockScan),
    Running(JoinHandle<env::BlockScan>),
}

/// Counters of things userspace could not attribute (`agent_status.userspace`;
/// the field names are the contract).
#[derive(Debug, Default, Clone, Serialize)]
pub(super) struct Gaps {
    pub decode_errors: u64,
    pub exits_without_record: u64,
    pub forks_without_parent: u64,
    pub reconciled_without_exit: u64,
    pub opens_without_process: u64,
    /// Environment records whose exec record was not in the table (lost).
    pub envs_without_process: u64,
    pub connects_without_process: u64,
    pub io_uring_without_process: u64,
    /// secret-stale findings dropped: the agent's own process record, which
    /// they are reported under, could not be read.
    pub findings_without_process: u64,
}

/// Everything the reader loop mutates.
pub(super) struct Ingest {
    pub table: Arc<Mutex<ProcessTable>>,
    pub cgroups: CgroupResolver,
    pub hashes: Arc<HashCache>,
    /// Pod metadata, when a source runs (kubernetes config).
    pub pods: Option<Arc<PodCache>>,
    pub secrets: Option<SecretMonitor>,
    /// Installed packages' programs, for expected secret clients.
    pub packages: Arc<Packages>,
    /// Exec-time evidence the API's attestation answers use.
    pub hygiene: Arc<crate::api::hygiene::Evidence>,
    /// Boxed: a `Pending` is some 760 bytes, copied into the channel and out
    /// again, then moved through the emitter; a box moves as a pointer.
    pub tx: mpsc::Sender<Box<Pending>>,
    pub gaps: Gaps,
    /// Environment scans in flight, oldest first; judged in that order.
    pub env_scans: VecDeque<EnvScan>,
    /// Progress marks for /healthz.
    pub metrics: Arc<Metrics>,
    /// How often a drain found the ring buffer empty: the process-table
    /// sweep retires a process it found gone only after the next time.
    pub ring_emptied: u64,
}

impl Ingest {
    /// Decodes and handles the records waiting in the ring buffer, at most
    /// [`DRAIN_BATCH`]; whether it emptied the buffer.
    pub async fn drain(&mut self, rb: &mut RingBuf<MapData>) -> bool {
        let mut emptied = false;
        for _ in 0..DRAIN_BATCH {
            let Some(item) = rb.next() else {
                self.ring_emptied += 1;
                emptied = true;
                break;
            };
            let decoded = decode(&item);
            drop(item);
            match decoded {
                Ok(ev) => self.handle(ev).await,
                Err(e) => {
                    self.gaps.decode_errors += 1;
                    tracing::warn!("undecodable ring buffer record: {e}");
                }
            }
        }
        self.judge_env_scans(false).await;
        if let Some(m) = self.secrets.as_mut() {
            m.flush_reads_if_due();
        }
        self.metrics.health.drained(boot_ns());
        emptied
    }

    /// Starts scanning an environment the exec probe captured. The process
    /// may be gone already: the block came from the kernel, not /proc.
    async fn exec_env(&mut self, rec: EnvRecord) {
        let Some(m) = self.secrets.as_mut().filter(|m| m.scans_environment()) else {
            return;
        };
        if rec.unreadable {
            m.env_not_captured();
            return;
        }
        let snapshot = lock(&self.table)
            .get_started(rec.tgid, rec.start_boottime_ns)
            .map(|r| r.snapshot.clone());
        let Some(snapshot) = snapshot else {
            self.gaps.envs_without_process += 1;
            return;
        };
        let truncated = rec.truncated;
        // Against the clean blocks known now: a copy of one still queued
        // below is scanned once more, never judged unscanned.
        let (digest, known) = m.env_known_clean(&rec.block, truncated);
        if self.env_scans.len() >= ENV_SCANS_IN_FLIGHT {
            self.judge_env_scans(true).await;
        }
        let scan = match known {
            Some(scan) => Scanning::KnownClean(scan),
            None => Scanning::Running(tokio::task::spawn_blocking(move || {
                env::scan_block(&rec.block, rec.truncated)
            })),
        };
        self.env_scans.push_back(EnvScan {
            snapshot,
            ktime_ns: rec.ktime_ns,
            truncated,
            digest,
            scan,
        });
    }

    /// Judges finished environment scans in the order their execs came;
    /// with `one`, waits for the oldest even if it is still running.
    async fn judge_env_scans(&mut self, one: bool) {
        let mut wait = one;
        while let Some(front) = self.env_scans.front() {
            let finished = match &front.scan {
                Scanning::KnownClean(_) => true,
                Scanning::Running(h) => h.is_finished(),
            };
            if !wait && !finished {
                return;
            }
            wait = false;
            let Some(job) = self.env_scans.pop_front() else {
                return;
            };
            let scan = match job.scan {
                Scanning::KnownClean(scan) => Ok(scan),
                Scanning::Running(h) => h.await,
            };
            let scan = match scan {
                Ok(scan) => scan,
                Err(e) => {
                    tracing::error!(
                        "environment scan of pid {} failed: {e}",
                        job.snapshot.process.pid
                    );
                    continue;
                }
            };
            let Some(m) = self.secrets.as_mut() else {
                return;
            };
            let found = m.env_captured(scan, job.truncated, job.digest);
            // Hygiene evidence for attestation: clean only when the whole
            // environment was read and held nothing credential-like. Kept
            // for live processes only: a scan judged after its process's
            // exit would never be forgotten.
            let exec_id = &job.snapshot.process.exec_id;
            let live = lock(&self.table)
                .get(job.snapshot.process.pid)
                .is_some_and(|r| r.exec_id() == &**exec_id);
            if live {
                self.hygiene
                    .record_env(exec_id, !job.truncated && found.is_empty());
            }
            if found.is_empty() {
                continue;
            }
            let resolved = job.snapshot.resolve().await;
            let found = match self.secrets.as_mut() {
                Some(m) => m.env_findings(&resolved, found),
                None => Vec::new(),
            };
            for mut f in found {
                if job.truncated {
                    f.evidence.reason = Some(format!(
                        "environment larger than the {} bytes captured at exec: variables past them were not scanned",
                        proctor_common::ENV_LEN
                    ));
                }
                self.send(Pending {
                    finding: Some(Box::new(f)),
                    ..Pending::new(Kind::Finding, job.ktime_ns, job.snapshot.clone())
                })
                .await;
            }
        }
    }

    /// Checks a batch of live records against /proc: those whose exit was
    /// never seen are retired.
    pub fn sweep(&mut self, sweep: &mut Sweep) {
        let gone = sweep.step(
            &self.table,
            liveness::holds_pid,
            Instant::now(),
            self.ring_emptied,
        );
        self.gaps.reconciled_without_exit += gone as u64;
        if let Some(m) = self.secrets.as_mut() {
            // Directory polls, rescans and the kubelet volume walk run on the
            // blocking pool; this applies the last one and starts the next.
            m.survey(self.pods.as_deref());
        }
    }

    /// Once per status interval: expire exited records, let the secret
    /// monitor age its state, report secrets past their max_age (as the
    /// agent's own event: no process did anything).
    pub async fn housekeeping(&mut self) {
        lock(&self.table).expire(Instant::now());
        let stale = match self.secrets.as_mut() {
            Some(m) => {
                m.housekeeping();
                m.stale_findings()
            }
            None => Vec::new(),
        };
        if stale.is_empty() {
            return;
        }
        let Some(own) = self.own_snapshot() else {
            self.gaps.findings_without_process += stale.len() as u64;
            return;
        };
        for f in stale {
            self.send(Pending {
                finding: Some(Box::new(f)),
                ..Pending::new(Kind::Finding, boot_ns(), own.clone())
            })
            .await;
        }
    }

    /// The agent's own process record, for the `process` of `agent_status`
    /// (looked up, not inserted: the agent is no workload to track).
    pub fn own_snapshot(&mut self) -> Option<Snapshot> {
        let own = std::process::id();
        let found = {
            let table = lock(&self.table);
            table.get(own).map(|r| r.snapshot.clone())
        };
        match found {
            Some(s) => Some(s),
            None => scan_pid(own, &mut self.cgroups, &self.hashes)
                .map(|s| s.snapshot.with_pods(self.pods.as_ref())),
        }
    }

    async fn handle(&mut self, ev: KernelEvent) {
        match ev {
            KernelEvent::Exec(rec) => self.exec(*rec).await,
            KernelEvent::ExecEnv(rec) => self.exec_env(*rec).await,
            KernelEvent::Fork(f) => self.fork(f),
            KernelEvent::Exit(e) => self.exit(e).await,
            KernelEvent::FileOpen(o) => self.file_open(&o).await,
            KernelEvent::Connect(c) => self.connect(*c).await,
            KernelEvent::IoUring(u) => self.io_uring(u).await,
        }
    }

    /// io_uring use is no event of its own (too common); it matters when
    /// the process carries a secret.
    async fn io_uring(&mut self, rec: IoUringRecord) {
        let Some(reader) = self.reader(rec.tgid) else {
            self.gaps.io_uring_without_process += 1;
            return;
        };
        let Some(m) = self.secrets.as_mut() else {
            return;
        };
        let found = m.on_io_uring(&reader.current(), io_uring_op_name(rec.opcode));
        for f in found {
            self.send(Pending {
                finding: Some(Box::new(f)),
                ..Pending::new(Kind::Finding, rec.ktime_ns, reader.clone())
            })
            .await;
        }
    }

    async fn connect(&mut self, rec: ConnectRecord) {
        let Some(reader) = self.reader(rec.tgid) else {
            self.gaps.connects_without_process += 1;
            return;
        };
        self.report_connect(rec, reader).await;
    }

    /// A connect the sweep of parked connects found, seconds after it was
    /// made: its process (started at `start_ns`) may have exited since.
    pub(super) async fn swept_connect(&mut self, rec: ConnectRecord, start_ns: u64) {
        let found = lock(&self.table)
            .get_started_or_exited(rec.tgid, start_ns)
            .map(|r| r.snapshot.clone());
        match found {
            Some(reader) => self.report_connect(rec, reader).await,
            None => self.connect(rec).await,
        }
    }

    async fn report_connect(&mut self, rec: ConnectRecord, reader: Snapshot) {
        self.send(Pending {
            net: Some(Box::new(crate::detect::connect::net_info(&rec))),
            ..Pending::new(Kind::NetConnect, rec.ktime_ns, reader.clone())
        })
        .await;
        let (Some(ip), Some(m)) = (rec.ip, self.secrets.as_mut()) else {
            return;
        };
        let found = m.on_connect(&reader.current(), ip, rec.port);
        for f in found {
            self.send(Pending {
                finding: Some(Box::new(f)),
                refers_to_previous: true,
                ..Pending::new(Kind::Finding, rec.ktime_ns, reader.clone())
            })
            .await;
        }
    }

    /// The process record of `pid`, from the table or, failing that, /proc.
    fn reader(&mut self, pid: u32) -> Option<Snapshot> {
        if let Some(r) = lock(&self.table).get(pid) {
            return Some(r.snapshot.clone());
        }
        let mut s = scan_pid(pid, &mut self.cgroups, &self.hashes)?;
        s.snapshot = s.snapshot.with_pods(self.pods.as_ref());
        let snapshot = s.snapshot.clone();
        lock(&self.table).insert(pid, s.into_record(false));
        Some(snapshot)
    }

    /// By reference, as [`Self::open_by`]: a record moved into each
    /// future on the way was a copy of it per call.
    async fn file_open(&mut self, rec: &OpenRecord) {
        if self.secrets.is_none() {
            return;
        }
        let Some(reader) = self.reader(rec.tgid) else {
            self.gaps.opens_without_process += 1;
            return;
        };
        self.open_by(rec, reader).await;
    }

    /// A read the tmpfs fanotify marks saw: its reader may have exited
    /// since, so it is looked up by its start, live or exited.
    pub(super) async fn tmpfs_read(&mut self, read: TmpfsRead) {
        if self.secrets.is_none() {
            return;
        }
        let found = {
            let table = lock(&self.table);
            match read.start_ns {
                Some(start) => table.get_started_tick_or_exited(read.rec.tgid, start),
                // Gone before its event was read: the newest record of the
                // pid that started before the read.
                None => table.newest_started_before(read.rec.tgid, read.rec.ktime_ns),
            }
            .map(|r| r.snapshot.clone())
        };
        match found {
            Some(reader) => self.open_by(&read.rec, reader).await,
            None if read.start_ns.is_some() => self.file_open(&read.rec).await,
            None => self.gaps.opens_without_process += 1,
        }
    }

    async fn open_by(&mut self, rec: &OpenRecord, reader: Snapshot) {
        // Owner selectors may name the binary's hash: judge the finished identity.
        let resolved = reader.resolve().await;
        // Verified on the blocking pool, once per file version.
        let client = self.packages.verdict(&resolved).await;
        let Some((matched, job)) = self.secrets.as_mut().and_then(|m| m.prepare_open(rec)) else {
            return;
        };
        // File I/O (a new version's stat and fingerprint read) waits on the
        // blocking pool, not on this task.
        let facts = match job {
            Some(job) => match tokio::task::spawn_blocking(move || job.run()).await {
                Ok(facts) => Some(facts),
                Err(e) => {
                    tracing::error!("secret file check of pid {} failed: {e}", rec.tgid);
                    None
                }
            },
            None => None,
        };
        let out = match self.secrets.as_mut() {
            Some(m) => m.finish_open(rec, matched, facts, &resolved, client.as_ref()),
            None => Default::default(),
        };
        for p in out {
            self.send_boxed(p).await;
        }
    }

    /// Search tools hunting for secrets, judged at exec (the environment
    /// is judged when its own record comes, see [`Self::exec_env`]).
    async fn exec_checks(&mut self, snapshot: &Snapshot, boot_ns: u64) {
        let Some(m) = self.secrets.as_mut() else {
            return;
        };
        let Some(f) = m.on_exec_search_tool(&snapshot.process) else {
            return;
        };
        self.send(Pending {
            finding: Some(Box::new(f)),
            ..Pending::new(Kind::Finding, boot_ns, snapshot.clone())
        })
        .await;
    }

    async fn exec(&mut self, rec: ExecRecord) {
        let parent = {
            let table = lock(&self.table);
            table
                .get_started(rec.ppid, rec.parent_start_boottime_ns)
                .map(|r| ParentRef {
                    exec_id: r.snapshot.process.exec_id.clone(),
                })
        };
        let cgroup_path = self.cgroups.path(rec.cgroup_id, rec.tgid);
        let workload = self.cgroups.workload(rec.cgroup_id, cgroup_path.as_deref());
        let snapshot = exec_identity::from_exec(&rec, parent, cgroup_path, &self.hashes)
            .with_workload(workload)
            .with_pods(self.pods.as_ref());
        lock(&self.table).insert(
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
        if let Some(r) = snapshot.forgery().await {
            let f = crate::detect::findings::identity_forgery(&snapshot.process, &r);
            let ev = Pending::new(Kind::Finding, rec.ktime_ns, snapshot.clone());
            self.send(Pending {
                finding: Some(Box::new(f)),
                refers_to_previous: true,
                ..ev
            })
            .await;
        }
        self.exec_checks(&snapshot, rec.ktime_ns).await;
    }

    /// A new process inherits its parent's identity until it execs.
    fn fork(&mut self, f: ForkEvent) {
        let mut table = lock(&self.table);
        let parent = table.get_started(f.parent_tgid, f.parent_start_boottime_ns);
        let parent_key = parent.map(|parent| ProcessKey::of(&parent.snapshot.process));
        let inherited = parent.map(|parent| {
            let mut p = (*parent.snapshot.process).clone();
            p.parent_exec_id = Some(p.exec_id.clone());
            p.exec_id = exec_id(Origin::Fork, f.child_tgid, f.child_start_boottime_ns);
            p.pid = f.child_tgid;
            p.ppid = f.parent_tgid;
            p.start_time_ns = crate::clock::to_epoch_ns(f.child_start_boottime_ns);
            p.cgroup.id = f.cgroup_id;
            parent.snapshot.forked(p)
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
        let child_key = ProcessKey::of(&record.snapshot.process);
        table.insert(f.child_tgid, record);
        drop(table);
        if let Some(m) = self.secrets.as_mut() {
            m.on_fork(parent_key, child_key);
        }
    }

    async fn exit(&mut self, e: ExitEvent) {
        let pending = {
            let mut table = lock(&self.table);
            let rec = table.exit(e.tgid, e.start_boottime_ns, Instant::now());
            if let Some(r) = rec {
                self.hygiene.forget_env(r.exec_id());
            }
            match rec {
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

    pub async fn send(&self, p: Pending) {
        self.send_boxed(Box::new(p)).await;
    }

    pub async fn send_boxed(&self, p: Box<Pending>) {
        // Backpressure, not loss: if the output stalls, the ring buffer fills
        // and the kernel counts what it could not reserve; /healthz says so.
        let p = match self.tx.try_send(p) {
            Ok(()) => return,
            Err(TrySendError::Closed(_)) => {
                tracing::error!("event output stopped (see the emitter's error above)");
                return;
            }
            Err(TrySendError::Full(p)) => p,
        };
        let health = &self.metrics.health;
        health.handing_off(p.boot_ns.max(1), boot_ns());
        if self.tx.send(p).await.is_err() {
            tracing::error!("event output stopped (see the emitter's error above)");
        }
        health.handing_off(0, boot_ns());
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
