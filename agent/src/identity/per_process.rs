//! State kept per process: found by pid, but only for the process that held the pid when the state was made.
//!
//! Exit records can be lost (a full ring buffer) and pids are reused, so a
//! map keyed by pid alone can hand one process's taint or quarantine to an
//! unrelated successor. Each entry remembers its process's start time
//! (`Process::start_time_ns`, stable for the life of the process and across
//! exec); an entry whose start differs belongs to a process that is gone.

use foldhash::{HashMap, HashMapExt};

use crate::event::Process;

/// A process instance: its pid and when it started (ns since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProcessKey {
    pub pid: u32,
    pub start_time_ns: u64,
}

impl ProcessKey {
    pub fn of(p: &Process) -> Self {
        Self {
            pid: p.pid,
            start_time_ns: p.start_time_ns,
        }
    }
}

#[derive(Debug)]
pub struct PerProcess<T> {
    map: HashMap<u32, (u64, T)>,
}

impl<T> Default for PerProcess<T> {
    fn default() -> Self {
        Self {
            map: HashMap::new(),
        }
    }
}

impl<T> PerProcess<T> {
    /// The state of `k`; an entry left by an earlier holder of the pid is dropped.
    pub fn get_mut(&mut self, k: ProcessKey) -> Option<&mut T> {
        if self
            .map
            .get(&k.pid)
            .is_some_and(|(start, _)| *start != k.start_time_ns)
        {
            self.map.remove(&k.pid);
        }
        self.map.get_mut(&k.pid).map(|(_, v)| v)
    }

    pub fn get(&self, k: ProcessKey) -> Option<&T> {
        self.map
            .get(&k.pid)
            .filter(|(start, _)| *start == k.start_time_ns)
            .map(|(_, v)| v)
    }

    pub fn contains(&self, k: ProcessKey) -> bool {
        self.get(k).is_some()
    }

    /// Replaces whatever the pid held.
    pub fn insert(&mut self, k: ProcessKey, v: T) {
        self.map.insert(k.pid, (k.start_time_ns, v));
    }

    /// The pid's entry, whichever process made it (exits carry a pid).
    pub fn remove(&mut self, pid: u32) -> Option<T> {
        self.map.remove(&pid).map(|(_, v)| v)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

impl<T: Default> PerProcess<T> {
    /// The state of `k`, made empty if the pid held another process's.
    pub fn entry(&mut self, k: ProcessKey) -> &mut T {
        let slot = self
            .map
            .entry(k.pid)
            .or_insert_with(|| (k.start_time_ns, T::default()));
        if slot.0 != k.start_time_ns {
            *slot = (k.start_time_ns, T::default());
        }
        &mut slot.1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(pid: u32, start_time_ns: u64) -> ProcessKey {
        ProcessKey { pid, start_time_ns }
    }

    #[test]
    fn a_reused_pid_finds_nothing_of_the_process_before_it() {
        let mut m: PerProcess<Vec<&str>> = PerProcess::default();
        m.entry(key(42, 1_000)).push("read ~/.aws/credentials");
        assert_eq!(
            m.get(key(42, 1_000)),
            Some(&vec!["read ~/.aws/credentials"])
        );
        // The exit was lost; pid 42 now belongs to a process started later.
        assert_eq!(m.get(key(42, 2_000)), None);
        assert!(!m.contains(key(42, 2_000)));
        assert!(m.get_mut(key(42, 2_000)).is_none());
        assert_eq!(m.len(), 0, "the stale entry is dropped on sight");
        m.entry(key(42, 2_000)).push("its own");
        assert_eq!(m.get(key(42, 2_000)), Some(&vec!["its own"]));
        assert_eq!(m.remove(42), Some(vec!["its own"]));
        assert!(m.is_empty());
    }

    #[test]
    fn entry_resets_state_made_for_an_earlier_holder() {
        let mut m: PerProcess<u32> = PerProcess::default();
        *m.entry(key(7, 1)) += 5;
        *m.entry(key(7, 9)) += 1;
        assert_eq!(m.get(key(7, 9)), Some(&1));
        assert_eq!(m.get(key(7, 1)), None);
    }
}
