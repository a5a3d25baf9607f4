//! Whether a pid still belongs to the process that started at a given time:
//! the one check behind the table sweep, attestation and attestation watches.
//!
//! A pid is only a name for a while, so "is pid N alive" always means "is pid
//! N still the process that started at T". /proc gives start times in clock
//! ticks, so records are compared at tick precision. For attestation a
//! zombie counts as exited: it has run its last instruction and its
//! executable and memory are gone, so nothing can be attested about it any
//! more. The table sweep asks [`holds_pid`] instead, which keeps a zombie.

use procfs::process::Process as ProcProcess;

use crate::clock::tick_ns;

/// What /proc says about a pid, against the start time of a recorded process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Still the recorded process, and not a zombie.
    Same,
    /// The pid now belongs to another process, started at tick `ticks`.
    Reused { ticks: u64 },
    /// No such pid, unreadable, or a zombie.
    Exited,
}

/// Whether some process (a zombie included) holds `pid` now, asked without
/// /proc: looking up a pid that is gone there costs a negative dentry,
/// about 5 µs on the bench VM, where `kill(pid, 0)` answers in about 1. A
/// pid that fits no `pid_t` > 0 is never a process (and 0 or a negative
/// one would name a group).
pub fn pid_exists(pid: u32) -> bool {
    let Ok(p) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if p <= 0 {
        return false;
    }
    // Signal 0 only checks; EPERM means the pid is someone's.
    let rc = unsafe { libc::kill(p, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// A kernel boot-time start in the clock ticks of `/proc/<pid>/stat`.
pub fn start_ticks(start_boottime_ns: u64) -> u64 {
    start_boottime_ns / tick_ns()
}

/// Whether two boot-time starts are the same at /proc's precision.
pub fn same_start_tick(a_boottime_ns: u64, b_boottime_ns: u64) -> bool {
    start_ticks(a_boottime_ns) == start_ticks(b_boottime_ns)
}

/// Judges an open `/proc/<pid>` against `start_boottime_ns`. Reading through
/// one open directory lets a caller check again after other reads: the
/// directory stops answering once its process is gone.
pub fn check(proc_: &ProcProcess, start_boottime_ns: u64) -> Liveness {
    let Ok(stat) = proc_.stat() else {
        return Liveness::Exited;
    };
    if matches!(stat.state, 'Z' | 'X' | 'x') {
        Liveness::Exited
    } else if stat.starttime != start_ticks(start_boottime_ns) {
        Liveness::Reused {
            ticks: stat.starttime,
        }
    } else {
        Liveness::Same
    }
}

/// Whether the process that started at `start_boottime_ns` still holds
/// `pid` and has not exited.
pub fn still_running(pid: u32, start_boottime_ns: u64) -> bool {
    ProcProcess::new(pid as i32).is_ok_and(|p| check(&p, start_boottime_ns) == Liveness::Same)
}

/// Whether `pid` is still held by the process that started at
/// `start_boottime_ns`, zombie or not. The table sweep asks this: a zombie's
/// exit record is still on its way through the ring buffer, and retiring its
/// record first would cost the `process_exit` event.
pub fn holds_pid(pid: u32, start_boottime_ns: u64) -> bool {
    ProcProcess::new(pid as i32)
        .and_then(|p| p.stat())
        .is_ok_and(|stat| stat.starttime == start_ticks(start_boottime_ns))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_exists_for_live_processes_only_and_never_names_a_group() {
        assert!(pid_exists(std::process::id()));
        assert!(pid_exists(1), "pid 1 is always there");
        let mut child = std::process::Command::new("/bin/true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        // Reaped: the pid is free until the kernel cycles back to it.
        assert!(!pid_exists(pid));
        for never in [0, u32::MAX, i32::MAX as u32 + 1] {
            assert!(!pid_exists(never), "{never}");
        }
    }

    #[test]
    fn this_process_is_running_and_a_later_start_is_a_reuse() {
        let me = ProcProcess::myself().unwrap();
        let start = me.stat().unwrap().starttime * tick_ns();
        assert_eq!(check(&me, start), Liveness::Same);
        assert!(still_running(std::process::id(), start));
        assert_eq!(
            check(&me, start + 10 * tick_ns()),
            Liveness::Reused {
                ticks: start_ticks(start)
            }
        );
        assert!(!still_running(std::process::id(), start + 10 * tick_ns()));
        assert!(same_start_tick(start, start + tick_ns() - 1));
        assert!(!same_start_tick(start, start + tick_ns()));
    }

    #[test]
    fn a_zombie_has_exited() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let proc_ = ProcProcess::new(pid as i32).unwrap();
        let start = proc_.stat().unwrap().starttime * tick_ns();
        // Not reaped yet: it stays a zombie until `wait`.
        while proc_.stat().is_ok_and(|s| s.state != 'Z') {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(check(&proc_, start), Liveness::Exited);
        assert!(!still_running(pid, start));
        child.wait().unwrap();
        assert!(!still_running(pid, start));
    }
}
