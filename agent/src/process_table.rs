//! Live processes by pid, and recently exited ones by exec_id.
//!
//! A pid is only a name for a while: every record remembers the process's
//! start time, and a lookup that carries a different start time (the pid was
//! reused) finds nothing rather than the wrong process.

use std::{
    collections::{HashMap, VecDeque},
    time::{Duration, Instant},
};

use serde::Serialize;

use crate::{procfs_scan::tick_ns, snapshot::Snapshot};

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
            let t = tick_ns();
            self.start_boottime_ns / t == start_ns / t
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
    exited: HashMap<String, Record>,
    exit_order: VecDeque<(Instant, String)>,
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
        let rec = self.live.remove(&pid)?;
        let id = rec.exec_id().to_string();
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

    /// Drops live records whose process is gone without an exit event (its
    /// record was lost or the process exited before the agent started).
    /// `alive(pid, start_ns)` says whether that process still runs.
    pub fn reconcile(&mut self, alive: impl Fn(u32, &Record) -> bool, now: Instant) -> usize {
        let gone: Vec<(u32, u64)> = self
            .live
            .iter()
            .filter(|(pid, r)| !alive(**pid, r))
            .map(|(pid, r)| (*pid, r.start_boottime_ns))
            .collect();
        for (pid, start) in &gone {
            self.exit(*pid, *start, now);
        }
        gone.len()
    }

    pub fn stats(&self) -> TableStats {
        TableStats {
            live: self.live.len(),
            exited: self.exited.len(),
            evicted_early: self.evicted_early,
        }
    }
}
