//! Live processes by pid, and recently exited ones by exec_id.
//!
//! A pid is only a name for a while: every record remembers the process's
//! start time, and a lookup that carries a different start time (the pid was
//! reused) finds nothing rather than the wrong process.

use foldhash::{HashMap, HashMapExt};
use std::{
    collections::VecDeque,
    sync::Arc,
    time::{Duration, Instant},
};

use serde::Serialize;

use crate::identity::{liveness::same_start_tick, snapshot::Snapshot};

pub struct Record {
    pub snapshot: Snapshot,
    pub start_boottime_ns: u64,
    /// Start time known only to clock-tick precision (from /proc).
    pub coarse_start: bool,
    /// Kernel boot-time ns of the exec (or start) this record describes.
    pub since_boottime_ns: u64,
    /// Whether consumers were told about this process (exec event or start-up
    /// scan); exits are reported only for those.
    pub announced: bool,
}

impl Record {
    /// Whether this record is the process that started at `start_ns` (kernel ns).
    pub fn started_at(&self, start_ns: u64) -> bool {
        if self.coarse_start {
            same_start_tick(self.start_boottime_ns, start_ns)
        } else {
            self.start_boottime_ns == start_ns
        }
    }

    pub fn exec_id(&self) -> &str {
        &self.snapshot.process.exec_id
    }
}

pub struct ProcessTable {
    live: HashMap<u32, Record>,
    exited: HashMap<Arc<str>, Record>,
    exit_order: VecDeque<(Instant, Arc<str>)>,
    exit_grace: Duration,
    max_exited: usize,
    pub evicted_early: u64,
}

#[derive(Debug, Serialize)]
pub struct TableStats {
    pub live: usize,
    pub exited: usize,
    pub evicted_early: u64,
}

impl ProcessTable {
    pub fn new(exit_grace: Duration, max_exited: usize) -> Self {
        Self {
            live: HashMap::new(),
            exited: HashMap::new(),
            exit_order: VecDeque::new(),
            exit_grace,
            max_exited,
            evicted_early: 0,
        }
    }

    /// Installs `rec` as the current image of `pid` (exec, fork, or scan).
    pub fn insert(&mut self, pid: u32, rec: Record) {
        self.live.insert(pid, rec);
    }

    pub fn get(&self, pid: u32) -> Option<&Record> {
        self.live.get(&pid)
    }

    /// The live record of `pid` if it is the process that started at `start_ns`.
    pub fn get_started(&self, pid: u32, start_ns: u64) -> Option<&Record> {
        self.live.get(&pid).filter(|r| r.started_at(start_ns))
    }

    /// The record of `pid` that started at `start_ns`, live or exited
    /// within its grace period (a report that arrives after the exit).
    pub fn get_started_or_exited(&self, pid: u32, start_ns: u64) -> Option<&Record> {
        self.get_started(pid, start_ns).or_else(|| {
            self.exited
                .values()
                .find(|r| r.snapshot.process.pid == pid && r.started_at(start_ns))
        })
    }

    /// The record of `pid`, live or exited within its grace period, whose
    /// start falls in the same clock tick as `start_ns`: for reports that
    /// know the process only by `/proc/<pid>/stat` (fanotify reads).
    pub fn get_started_tick_or_exited(&self, pid: u32, start_ns: u64) -> Option<&Record> {
        let same = |r: &&Record| same_start_tick(r.start_boottime_ns, start_ns);
        self.live.get(&pid).filter(same).or_else(|| {
            self.exited
                .values()
                .filter(|r| r.snapshot.process.pid == pid)
                .find(same)
        })
    }

    /// The newest record of `pid`, live or exited within its grace period,
    /// that started before `before_ns`: for a report that names only a pid
    /// and arrives after its process is gone (a fanotify read whose reader
    /// exited before the agent read the event).
    pub fn newest_started_before(&self, pid: u32, before_ns: u64) -> Option<&Record> {
        let before = |r: &&Record| r.start_boottime_ns <= before_ns;
        self.live.get(&pid).filter(before).or_else(|| {
            self.exited
                .values()
                .filter(|r| r.snapshot.process.pid == pid)
                .filter(before)
                .max_by_key(|r| r.start_boottime_ns)
        })
    }

    pub fn by_exec_id(&self, exec_id: &str) -> Option<&Record> {
        self.exited
            .get(exec_id)
            .or_else(|| self.live.values().find(|r| r.exec_id() == exec_id))
    }

    /// Moves `pid` to the exited set if it is the process that started at `start_ns`.
    pub fn exit(&mut self, pid: u32, start_ns: u64, now: Instant) -> Option<&Record> {
        if !self.live.get(&pid)?.started_at(start_ns) {
            return None;
        }
        let mut rec = self.live.remove(&pid)?;
        if let Some(settled) = rec.snapshot.settled() {
            rec.snapshot = settled;
        }
        let id = rec.snapshot.process.exec_id.clone();
        self.exit_order
            .push_back((now + self.exit_grace, id.clone()));
        self.exited.insert(id.clone(), rec);
        while self.exited.len() > self.max_exited {
            if let Some((_, old)) = self.exit_order.pop_front() {
                if self.exited.remove(&old).is_some() {
                    self.evicted_early += 1;
                }
            } else {
                break;
            }
        }
        self.exited.get(&id)
    }

    /// Forgets exited processes whose grace period is over.
    pub fn expire(&mut self, now: Instant) {
        while let Some((deadline, _)) = self.exit_order.front() {
            if *deadline > now {
                break;
            }
            let (_, id) = self.exit_order.pop_front().unwrap();
            self.exited.remove(&id);
        }
    }

    /// (pid, start time) of every live record: what a [`Sweep`] checks.
    fn live_keys(&self) -> Vec<(u32, u64)> {
        self.live
            .iter()
            .map(|(pid, r)| (*pid, r.start_boottime_ns))
            .collect()
    }

    pub fn stats(&self) -> TableStats {
        TableStats {
            live: self.live.len(),
            exited: self.exited.len(),
            evicted_early: self.evicted_early,
        }
    }
}

/// Finds live records whose process is gone without an exit event (its
/// record was dropped, or it exited before the agent started), a bounded
/// batch at a time.
///
/// Checking a record means reading /proc, ~10 µs: checking a 100k-process
/// table in one go would stall the ring-buffer reader for seconds. A sweep
/// takes a copy of the table's keys, checks `batch` of them per call without
/// holding the table lock, and starts again no sooner than `every` after the
/// previous sweep began.
///
/// A process found gone is retired only once the ring buffer has since been
/// read to its end: the kernel writes a process's exit record before the pid
/// leaves /proc, so by then that record, if there was one, has been handled
/// and its `process_exit` event sent. Retiring it at once would race the
/// reader (the record still queued) and lose the event.
pub struct Sweep {
    pending: Vec<(u32, u64)>,
    /// Found gone: (pid, start) -> how often the ring had been read empty
    /// when first found. A map, so that a reader that never catches up (the
    /// ring never read empty) does not collect the same record sweep after
    /// sweep.
    suspects: HashMap<(u32, u64), u64>,
    started: Option<Instant>,
    every: Duration,
    batch: usize,
}

impl Sweep {
    pub fn new(every: Duration, batch: usize) -> Self {
        Self {
            pending: Vec::new(),
            suspects: HashMap::new(),
            started: None,
            every,
            batch: batch.max(1),
        }
    }

    /// Checks the next batch; `alive(pid, start_ns)` says whether that
    /// process still runs; `emptied` counts the times the reader found the
    /// ring buffer empty. Returns how many records were moved to the exited
    /// set (those found gone in an earlier step, the ring read empty since).
    pub fn step(
        &mut self,
        table: &std::sync::Mutex<ProcessTable>,
        alive: impl Fn(u32, u64) -> bool,
        now: Instant,
        emptied: u64,
    ) -> usize {
        let (ripe, waiting): (HashMap<_, _>, HashMap<_, _>) = std::mem::take(&mut self.suspects)
            .into_iter()
            .partition(|&(_, seen)| seen < emptied);
        self.suspects = waiting;
        // `exit` checks the start time: a pid reused since keeps its new
        // record, and one whose exit event came meanwhile is not live.
        let retired = if ripe.is_empty() {
            0
        } else {
            let mut table = table.lock().unwrap();
            ripe.keys()
                .filter(|(pid, start)| table.exit(*pid, *start, now).is_some())
                .count()
        };
        if self.pending.is_empty() {
            if self.started.is_some_and(|t| now < t + self.every) {
                return retired;
            }
            self.pending = table.lock().unwrap().live_keys();
            self.started = Some(now);
        }
        let at = self.pending.len().saturating_sub(self.batch);
        let mut batch: Vec<(u32, u64)> = self.pending.drain(at..).collect();
        // Records whose exit arrived since the copy need no /proc read.
        {
            let table = table.lock().unwrap();
            batch.retain(|(pid, start)| table.get_started(*pid, *start).is_some());
        }
        for key in batch
            .into_iter()
            .filter(|(pid, start)| !alive(*pid, *start))
        {
            self.suspects.entry(key).or_insert(emptied);
        }
        retired
    }
}

#[cfg(test)]
mod tests {
    use std::{
        process::{Child, Command},
        sync::Mutex,
    };

    use super::*;
    use crate::{
        identity::cgroups::CgroupResolver,
        identity::hash_cache::HashCache,
        identity::{liveness::holds_pid, procfs_seed::scan_pid},
    };

    fn sleeper() -> Child {
        Command::new("sleep").arg("60").spawn().unwrap()
    }

    // The hash cache hashes on the runtime's blocking pool.
    #[tokio::test]
    async fn a_sweep_retires_exited_processes_a_batch_at_a_time() {
        let mut cgroups = CgroupResolver::new();
        let hashes = HashCache::new(16, 1, 1 << 20);
        let table = Mutex::new(ProcessTable::new(Duration::from_secs(60), 1000));
        let mut kids: Vec<Child> = (0..3).map(|_| sleeper()).collect();
        for k in &kids {
            let s = scan_pid(k.id(), &mut cgroups, &hashes).unwrap();
            table.lock().unwrap().insert(k.id(), s.into_record(true));
        }
        for k in &mut kids[..2] {
            k.kill().unwrap();
            k.wait().unwrap();
        }
        let t0 = Instant::now();
        let mut sweep = Sweep::new(Duration::from_secs(600), 2);
        // Three records, two per step: the sweep needs two steps to find
        // the two gone, and retires them only once the ring buffer has been
        // read empty since (epoch 0 -> 1).
        assert_eq!(sweep.step(&table, holds_pid, t0, 0), 0);
        assert_eq!(sweep.step(&table, holds_pid, t0, 0), 0);
        assert_eq!(
            table.lock().unwrap().stats().live,
            3,
            "nothing before the ring is read"
        );
        assert_eq!(sweep.step(&table, holds_pid, t0, 1), 2);
        assert_eq!(table.lock().unwrap().stats().live, 1);
        assert_eq!(table.lock().unwrap().stats().exited, 2);

        kids[2].kill().unwrap();
        kids[2].wait().unwrap();
        // The last sweep began less than `every` ago: nothing is checked.
        assert_eq!(sweep.step(&table, holds_pid, t0, 1), 0);
        assert_eq!(table.lock().unwrap().stats().live, 1);
        let later = t0 + Duration::from_secs(601);
        assert_eq!(sweep.step(&table, holds_pid, later, 1), 0);
        // A reader that has not caught up: the next sweep finds it again,
        // and it is held once, not once per sweep.
        let much_later = later + Duration::from_secs(601);
        assert_eq!(sweep.step(&table, holds_pid, much_later, 1), 0);
        assert_eq!(sweep.suspects.len(), 1);
        assert_eq!(sweep.step(&table, holds_pid, much_later, 2), 1);
        assert_eq!(table.lock().unwrap().stats().live, 0);
    }

    #[tokio::test]
    async fn an_exit_still_in_the_ring_buffer_is_not_swept_before_its_event() {
        let mut cgroups = CgroupResolver::new();
        let hashes = HashCache::new(16, 1, 1 << 20);
        let table = Mutex::new(ProcessTable::new(Duration::from_secs(60), 1000));
        let mut kid = sleeper();
        let (pid, s) = (kid.id(), scan_pid(kid.id(), &mut cgroups, &hashes).unwrap());
        let start = s.start_boottime_ns;
        table.lock().unwrap().insert(pid, s.into_record(true));
        kid.kill().unwrap();
        kid.wait().unwrap();
        let mut sweep = Sweep::new(Duration::from_secs(600), 16);
        assert_eq!(sweep.step(&table, holds_pid, Instant::now(), 0), 0);
        // The reader then handles the exit record that was queued: the exit
        // finds its live record, so its `process_exit` event goes out.
        assert!(table
            .lock()
            .unwrap()
            .exit(pid, start, Instant::now())
            .is_some());
        // And the sweep, once the ring was read empty, has nothing to retire.
        assert_eq!(sweep.step(&table, holds_pid, Instant::now(), 1), 0);
        assert_eq!(table.lock().unwrap().stats().exited, 1);
    }

    #[tokio::test]
    async fn a_reader_known_only_by_pid_and_proc_start_is_found_after_its_exit() {
        let mut cgroups = CgroupResolver::new();
        let hashes = HashCache::new(16, 1, 1 << 20);
        let mut table = ProcessTable::new(Duration::from_secs(60), 1000);
        let mut kid = sleeper();
        let (pid, s) = (kid.id(), scan_pid(kid.id(), &mut cgroups, &hashes).unwrap());
        let start = s.start_boottime_ns;
        let exec_id = s.snapshot.process.exec_id.clone();
        table.insert(pid, s.into_record(true));
        kid.kill().unwrap();
        kid.wait().unwrap();
        table.exit(pid, start, Instant::now()).unwrap();
        // By its /proc start tick, and by pid alone for a read made after it started.
        let found = table.get_started_tick_or_exited(pid, start).unwrap();
        assert_eq!(found.exec_id(), &*exec_id);
        let found = table.newest_started_before(pid, start + 1).unwrap();
        assert_eq!(found.exec_id(), &*exec_id);
        // Not for another start, nor for a read before the process began.
        let tick = crate::clock::tick_ns();
        assert!(table
            .get_started_tick_or_exited(pid, start + 2 * tick)
            .is_none());
        assert!(table.newest_started_before(pid, start - 1).is_none());
    }

    // The hash cache hashes on the runtime's blocking pool.
    #[tokio::test]
    async fn a_reused_pid_keeps_its_new_record() {
        let mut cgroups = CgroupResolver::new();
        let hashes = HashCache::new(16, 1, 1 << 20);
        let table = Mutex::new(ProcessTable::new(Duration::from_secs(60), 1000));
        let mut kid = sleeper();
        let s = scan_pid(kid.id(), &mut cgroups, &hashes).unwrap();
        table.lock().unwrap().insert(kid.id(), s.into_record(true));
        let mut sweep = Sweep::new(Duration::from_secs(600), 16);
        // The check says "gone" for the start time copied at the sweep's
        // start, but meanwhile the pid's record was replaced by a process
        // with another start time: it must stay.
        let pid = kid.id();
        let gone = sweep.step(
            &table,
            |p, _| {
                let mut t = table.try_lock().unwrap();
                let mut rec = scan_pid(p, &mut CgroupResolver::new(), &hashes)
                    .unwrap()
                    .into_record(true);
                rec.start_boottime_ns += 1_000_000_000;
                t.insert(p, rec);
                false
            },
            Instant::now(),
            0,
        );
        assert_eq!(gone, 0);
        assert_eq!(sweep.step(&table, holds_pid, Instant::now(), 1), 0);
        assert!(table.lock().unwrap().get(pid).is_some());
        kid.kill().unwrap();
        kid.wait().unwrap();
    }
}
