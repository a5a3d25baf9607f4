//! Converts kernel boot-time nanoseconds to wall-clock time, and names this boot.

use std::sync::OnceLock;

fn clock_ns(id: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec; clock ids are constants the kernel knows.
    unsafe { libc::clock_gettime(id, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Nanoseconds since boot (the clock `bpf_ktime_get_boot_ns` reads).
pub fn boot_ns() -> u64 {
    clock_ns(libc::CLOCK_BOOTTIME)
}

/// Nanoseconds since the Unix epoch.
pub fn now_ns() -> u64 {
    clock_ns(libc::CLOCK_REALTIME)
}

/// Wall-clock time of boot, measured once: realtime - boottime.
pub fn boot_epoch_ns() -> u64 {
    static BOOT: OnceLock<u64> = OnceLock::new();
    *BOOT.get_or_init(|| now_ns().saturating_sub(boot_ns()))
}

/// Kernel boot-time ns to epoch ns.
pub fn to_epoch_ns(boot_time_ns: u64) -> u64 {
    boot_epoch_ns() + boot_time_ns
}

/// Epoch ns (as [`to_epoch_ns`] made them) back to kernel boot-time ns.
pub fn to_boot_ns(epoch_ns: u64) -> u64 {
    epoch_ns.saturating_sub(boot_epoch_ns())
}

/// The kernel's random id of this boot; with the pid and a kernel timestamp it
/// makes exec ids unique across reboots and nodes.
pub fn boot_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| format!("no-boot-id-{}", now_ns()))
    })
}

/// Clock ticks per second for /proc/<pid>/stat start times.
pub fn ticks_per_sec() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// Nanoseconds per clock tick, the unit of start times in `/proc/<pid>/stat`.
pub fn tick_ns() -> u64 {
    1_000_000_000 / ticks_per_sec()
}
