//! Reports the TCP connects the cgroup hook parked that never started a handshake.
//!
//! Where no connect syscall tracepoint is attached, a TCP connect is parked in
//! `CONNECT_PENDING` by its socket and reported when the handshake ends. One
//! that fails before the handshake starts (no route, refused by another
//! cgroup program or LSM) sees no state change: without this sweep it would
//! vanish. Its errno never reaches a hook, so it is reported as
//! `failed_before_handshake`, de-duplicated like the kernel's reports, and counted.

use aya::maps::{HashMap, MapData};
use proctor_common::{ConnectKey, PendingConnect, PENDING_FROM_HOOK, PENDING_SYN_SENT};

use crate::kernel::decode::{connect_record, ConnectRecord};

/// A parked connect this long without reaching SYN_SENT failed before the
/// handshake: SYN_SENT follows the hook within the same connect call.
pub const UNSTARTED_AFTER_NS: u64 = 1_000_000_000;

pub struct ConnectSweeper {
    pending: HashMap<MapData, u64, PendingConnect>,
    seen: HashMap<MapData, ConnectKey, u64>,
    /// Connects reported by the sweep (`agent_status`).
    pub failed_before_handshake: u64,
    /// Swept connects that repeated a destination the process already reported.
    pub deduplicated: u64,
}

impl ConnectSweeper {
    /// Over the kernel's parked connects (`CONNECT_PENDING`) and its
    /// de-duplication map (`CONNECT_SEEN`).
    pub fn new(
        pending: HashMap<MapData, u64, PendingConnect>,
        seen: HashMap<MapData, ConnectKey, u64>,
    ) -> Self {
        ConnectSweeper {
            pending,
            seen,
            failed_before_handshake: 0,
            deduplicated: 0,
        }
    }

    /// Removes the parked connects older than [`UNSTARTED_AFTER_NS`] at
    /// `now_ns` (boot clock) that never reached SYN_SENT, and returns those
    /// that are the first failure of their process to their destination.
    /// Each comes with its process's start time (boot ns), which names it
    /// after it exited.
    pub fn sweep(&mut self, now_ns: u64) -> Vec<(ConnectRecord, u64)> {
        let stale: Vec<(u64, PendingConnect)> = self
            .pending
            .iter()
            .filter_map(|e| e.ok())
            .filter(|(_, p)| unstarted(p, now_ns))
            .collect();
        let mut out = Vec::new();
        for (sk, p) in stale {
            // Gone already: the state machine reported it after all.
            if self.pending.remove(&sk).is_err() {
                continue;
            }
            let ev = &p.ev;
            let key = ConnectKey {
                tgid: ev.tgid,
                family: ev.family,
                port: ev.port,
                ok: 0,
                protocol: ev.protocol as u32,
                addr: ev.addr,
            };
            self.failed_before_handshake += 1;
            let repeats = self.seen.get(&key, 0).ok();
            let _ = self.seen.insert(key, repeats.unwrap_or(0) + 1, 0);
            if repeats.is_some() {
                self.deduplicated += 1;
                continue;
            }
            let mut rec = connect_record(ev);
            rec.before_handshake = true;
            rec.deferred = true;
            out.push((rec, p.start_boottime_ns));
        }
        out
    }
}

/// Whether a parked connect is the cgroup hook's, old enough, and never
/// started its handshake.
fn unstarted(p: &PendingConnect, now_ns: u64) -> bool {
    p.flags & PENDING_FROM_HOOK != 0
        && p.flags & PENDING_SYN_SENT == 0
        && now_ns.saturating_sub(p.parked_ns) >= UNSTARTED_AFTER_NS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_old_hook_records_that_never_reached_syn_sent_are_swept() {
        let mut p: PendingConnect = unsafe { std::mem::zeroed() };
        p.parked_ns = 10;
        p.flags = PENDING_FROM_HOOK;
        assert!(unstarted(&p, 10 + UNSTARTED_AFTER_NS));
        assert!(!unstarted(&p, 10 + UNSTARTED_AFTER_NS - 1), "too young");
        p.flags = PENDING_FROM_HOOK | PENDING_SYN_SENT;
        assert!(!unstarted(&p, u64::MAX), "the handshake reports it");
        p.flags = PENDING_SYN_SENT;
        assert!(!unstarted(&p, u64::MAX), "connect(2)'s own parked record");
    }
}
