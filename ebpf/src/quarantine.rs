//! The block-egress quarantine as the kernel keeps it: by process instance
//! (tgid and the group leader's start time), shared by the fork and exit
//! hooks (inheritance, removal) and the cgroup socket hooks (refusal).

use aya_ebpf::{macros::map, maps::HashMap};
use proctor_common::{QuarantineEntry, HOOK_FLAG_QUARANTINE};

use crate::{hook_flag, off, read, read_ptr};

/// Quarantined processes by tgid, with the start time of the process that
/// held the tgid when it was quarantined (a reused pid matches nothing).
/// Children forked later inherit the entry in the fork hook, before they run;
/// the exit hook removes it.
#[map]
pub static QUARANTINE: HashMap<u32, QuarantineEntry> = HashMap::with_max_entries(16384, 0);

/// Whether the agent ever quarantined a process (the common node never
/// does): every connect, datagram, fork and exit asks this before it pays a
/// hash lookup in [`QUARANTINE`].
#[inline(always)]
pub(crate) fn any_quarantine() -> bool {
    hook_flag(HOOK_FLAG_QUARANTINE)
}

/// Start time of `task`'s process (its group leader), ns since boot.
#[inline(always)]
pub(crate) unsafe fn process_start(task: *const u8) -> u64 {
    unsafe {
        let leader = read_ptr(task, off!(task_group_leader));
        read::<u64>(leader, off!(task_start_boottime))
    }
}

/// Start time of the current process where the kernel lets a cgroup socket
/// program reach the task (`HAS_TASK_BTF`), else 0: unknown.
#[inline(always)]
pub(crate) fn current_process_start() -> u64 {
    if unsafe { core::ptr::read_volatile(core::ptr::addr_of!(crate::HAS_TASK_BTF)) } == 0 {
        return 0;
    }
    unsafe { process_start(aya_ebpf::helpers::bpf_get_current_task_btf() as *const u8) }
}

/// Whether `entry` was made for the process that started at `start`.
#[inline(always)]
fn same_process(entry: &QuarantineEntry, start: u64) -> bool {
    let g = if entry.granularity_ns == 0 {
        1
    } else {
        entry.granularity_ns
    };
    start / g == entry.start_boottime_ns / g
}

/// Whether the process `tgid`, started at `start()`, is quarantined. An
/// entry left by an earlier holder of the pid is removed on sight. `start`
/// runs only when there is an entry: on a node that never quarantined, the
/// caller pays one inlined array lookup ([`any_quarantine`]) and nothing else.
#[inline(always)]
pub(crate) fn quarantined(tgid: u32, start: impl FnOnce() -> u64) -> bool {
    if !any_quarantine() {
        return false;
    }
    let Some(entry) = (unsafe { QUARANTINE.get(tgid) }) else {
        return false;
    };
    let start = start();
    // Without the start time (5.10) the tgid decides; the exit hook still
    // removes the entry when the process ends.
    if start == 0 || same_process(entry, start) {
        return true;
    }
    let _ = QUARANTINE.remove(tgid);
    false
}
