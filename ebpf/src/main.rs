//! proctor's kernel programs. Kept to the portable base: `tp_btf` hooks that
//! load on every kernel with BTF. Kernel struct fields are reached through
//! offsets the agent resolves from the running kernel's BTF (see `OFFSETS`).
#![no_std]
#![no_main]

mod connect;
mod egress;
mod feature_probes;
mod file_open;
mod io_uring;
mod page_cache;
mod process;
mod quarantine;
mod unix_connect;

use aya_ebpf::{
    macros::map,
    maps::{Array, PerCpuArray, RingBuf},
};
use proctor_common::{Offsets, HOOK_FLAG_SLOTS, KIND_SLOTS};

/// All records for userspace. The agent resizes it at load time from its config.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(8 << 20, 0);

/// Records that could not be reserved because the ring buffer was full, per kind.
#[map]
pub static DROPS: PerCpuArray<u64> = PerCpuArray::with_max_entries(KIND_SLOTS, 0);

/// Records submitted, per kind (lets userspace compute loss ratios).
#[map]
pub static SENT: PerCpuArray<u64> = PerCpuArray::with_max_entries(KIND_SLOTS, 0);

/// Switches the agent sets at run time (`HOOK_FLAG_*`): an array lookup the
/// verifier inlines, which lets a hot hook skip a hash lookup that cannot
/// find anything (a quarantine before the first one, connect(2)'s arguments
/// where its tracepoints are not attached).
#[map]
pub static HOOK_FLAGS: Array<u32> = Array::with_max_entries(HOOK_FLAG_SLOTS, 0);

/// Whether the agent set `slot` of [`HOOK_FLAGS`].
#[inline(always)]
pub(crate) fn hook_flag(slot: u32) -> bool {
    HOOK_FLAGS.get(slot).is_some_and(|v| *v != 0)
}

/// Patched by the agent before load (`EbpfLoader::set_global`).
#[unsafe(no_mangle)]
pub static OFFSETS: Offsets = Offsets::UNSET;

/// Bytes pending in EVENTS at which a submit wakes the reader; below it the
/// reader finds the records on its next periodic drain. Waking the reader for
/// every record costs it more than handling the record. Patched by the agent.
#[unsafe(no_mangle)]
pub static WAKEUP_BYTES: u64 = 0;

/// The agent's own process: its reads of secret files (fingerprinting,
/// discovery) are not events. Patched by the agent.
#[unsafe(no_mangle)]
pub static AGENT_TGID: u32 = 0;

/// Non-zero where the kernel has `bpf_task_pt_regs` (5.15+), set by the
/// agent at load. Read-only data: the verifier knows the value and never
/// visits the call on older kernels (5.10), which would reject it.
#[unsafe(no_mangle)]
pub static HAS_TASK_PT_REGS: u8 = 0;
/// Non-zero where the kernel has `bpf_get_current_task_btf` (5.11+), set by
/// the agent at load; read-only like `HAS_TASK_PT_REGS`, so a 5.10 verifier
/// never sees the call. The cgroup socket programs, which have no other way
/// to the task there, then go without the process's start time.
#[unsafe(no_mangle)]
pub static HAS_TASK_BTF: u8 = 0;
/// Accesses of one file by one process image within this many ns of the
/// one reported are counted, not reported (0: report every access).
/// Patched by the agent.
#[unsafe(no_mangle)]
pub static READ_REPEAT_WINDOW_NS: u64 = 0;

const BPF_RB_NO_WAKEUP: u64 = 1;
const BPF_RB_FORCE_WAKEUP: u64 = 2;
const BPF_RB_AVAIL_DATA: u64 = 0;

/// Flags for submitting a record of `size` bytes to EVENTS (`reserved`: the
/// ring already counts it, as for an entry from `reserve`; not for an
/// `output` call). The reader is woken each time the pending data crosses a
/// multiple of the threshold, and not in between. Below the threshold, the
/// periodic drain picks the records up. The wakeup must be forced: the
/// kernel's default (adaptive) one fires only for a record the reader has
/// not fallen behind, which a backlog never is, so the reader slept until
/// its periodic drain while the buffer filled (one batch per poll interval
/// was the agent's ceiling). Forcing it for every record past the threshold
/// cost a self-IPI per record (100k interrupts a second at the drop onset,
/// measured in a VM). Without a threshold, adaptive is what is wanted: a
/// wakeup whenever the reader has caught up.
#[inline(always)]
pub fn submit_flags(size: u64, reserved: bool) -> u64 {
    let threshold = unsafe { core::ptr::read_volatile(core::ptr::addr_of!(WAKEUP_BYTES)) };
    if threshold == 0 {
        return 0;
    }
    let avail = EVENTS.query(BPF_RB_AVAIL_DATA);
    let (before, after) = if reserved {
        (avail.saturating_sub(size), avail)
    } else {
        (avail, avail + size)
    };
    // Below the first multiple both quotients are 0: no wakeup.
    if before / threshold != after / threshold {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    }
}

/// Submits a reserved record, waking the reader as [`submit_flags`] says.
#[inline(always)]
pub fn submit<T>(entry: aya_ebpf::maps::ring_buf::RingBufEntry<T>) {
    entry.submit(submit_flags(core::mem::size_of::<T>() as u64, true));
}

/// Reads one offset through a volatile load so the compiler cannot fold the
/// unpatched default into the code.
#[macro_export]
macro_rules! off {
    ($field:ident) => {{
        #[allow(unused_unsafe)]
        let v = unsafe { core::ptr::read_volatile(core::ptr::addr_of!($crate::OFFSETS.$field)) };
        v as usize
    }};
}

/// Defines the two kinds of a tp_btf program (see [`load`]): `$direct`
/// running `$body::<true>` (direct loads) and `$probe` running
/// `$body::<false>` (helper reads), both on the tracepoint `$tp`.
#[macro_export]
macro_rules! both_loads {
    ($tp:literal, $direct:ident, $probe:ident, $body:ident) => {
        #[aya_ebpf::macros::btf_tracepoint(function = $tp)]
        pub fn $direct(ctx: aya_ebpf::programs::BtfTracePointContext) -> i32 {
            $body::<true>(&ctx)
        }

        #[aya_ebpf::macros::btf_tracepoint(function = $tp)]
        pub fn $probe(ctx: aya_ebpf::programs::BtfTracePointContext) -> i32 {
            $body::<false>(&ctx)
        }
    };
}

/// Reads a `T` at `base + offset` in kernel memory; zero when unreadable.
#[inline(always)]
pub(crate) unsafe fn read<T: Copy + Default>(base: *const u8, offset: usize) -> T {
    unsafe { aya_ebpf::helpers::bpf_probe_read_kernel(base.add(offset) as *const T) }
        .unwrap_or_default()
}

/// Reads a kernel pointer at `base + offset`.
#[inline(always)]
pub(crate) unsafe fn read_ptr(base: *const u8, offset: usize) -> *const u8 {
    unsafe { read::<u64>(base, offset) as *const u8 }
}

/// `base + offset` as a `T`. With `DIRECT`, a plain load: on a typed pointer
/// (a tp_btf argument, or a pointer loaded from one) the verifier checks it
/// against the kernel's BTF, the offsets being constants to it (they live in
/// the frozen read-only globals), and a faulting load reads zero, as the
/// helper does; it costs a load instead of a helper call. Without, the helper
/// read, for a verifier that refuses the load (older kernels): every program
/// that uses this comes in both kinds, and the agent loads the direct one
/// where the kernel takes it.
#[inline(always)]
pub(crate) unsafe fn load<const DIRECT: bool, T: Copy + Default>(
    base: *const u8,
    offset: usize,
) -> T {
    if DIRECT {
        unsafe { core::ptr::read_volatile(base.add(offset) as *const T) }
    } else {
        unsafe { read::<T>(base, offset) }
    }
}

/// A kernel pointer at `base + offset`, loaded as [`load`] says.
#[inline(always)]
pub(crate) unsafe fn load_ptr<const DIRECT: bool>(base: *const u8, offset: usize) -> *const u8 {
    unsafe { load::<DIRECT, u64>(base, offset) as *const u8 }
}

#[inline(always)]
pub fn bump(map: &PerCpuArray<u64>, kind: u32) {
    if let Some(slot) = map.get_ptr_mut(kind) {
        unsafe { *slot += 1 };
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
