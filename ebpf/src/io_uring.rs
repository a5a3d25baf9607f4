//! io_uring: requests run without the syscalls the open and connect
//! tracepoints watch, so they are followed through io_uring's own tracepoints.
//!
//! `io_uring_submit_req` reports the first request of each opcode a process
//! submits (a process holding a secret that turns to io_uring is worth a
//! finding); `io_uring_complete` checks the fd an `IORING_OP_OPENAT[2]`
//! produced against the watch maps, exactly as the open tracepoints do.
//! Connects and datagrams issued through io_uring reach the cgroup sock_addr
//! hooks (`egress.rs`) like any other.

use aya_ebpf::{
    helpers::{bpf_get_current_cgroup_id, bpf_get_current_pid_tgid, bpf_get_current_uid_gid},
    macros::{btf_tracepoint, map},
    maps::{LruHashMap, PerCpuArray},
    programs::BtfTracePointContext,
};
use proctor_common::{
    IoUringEvent, IoUringKey, IoUringOffsets, KIND_IO_URING, OPEN_SYSCALL_IO_URING,
};

use crate::{bump, read, DROPS, EVENTS, SENT};

const IORING_OP_OPENAT: u8 = 18;
const IORING_OP_OPENAT2: u8 = 28;
/// `struct io_uring_cqe.res` (UAPI layout: user_data u64, then res s32).
const CQE_RES: usize = 8;

/// Patched by the agent before load, from the kernel's BTF.
#[unsafe(no_mangle)]
pub static IO_URING_OFFSETS: IoUringOffsets = IoUringOffsets::UNSET;

/// Opcodes each process already reported (the value is not read: the key
/// being there is what counts).
#[map]
static IO_URING_SEEN: LruHashMap<IoUringKey, u64> = LruHashMap::with_max_entries(16384, 0);

/// The process that last submitted on this CPU, and the opcodes below 64 it
/// is known to have in IO_URING_SEEN: a process's stream of requests costs
/// an array lookup each instead of a hash lookup. A reused pid is taken for
/// the process that held it here as it is in IO_URING_SEEN, which the exit
/// hook does not clear either.
#[repr(C)]
#[derive(Clone, Copy)]
struct LastSubmitter {
    tgid: u32,
    _pad: u32,
    opcodes: u64,
}

#[map]
static LAST_SUBMITTER: PerCpuArray<LastSubmitter> = PerCpuArray::with_max_entries(1, 0);

/// Notes in this CPU's [`LastSubmitter`] that `tgid` has `opcode` in IO_URING_SEEN.
#[inline(always)]
fn remember(last: Option<*mut LastSubmitter>, tgid: u32, opcode: u32) {
    let Some(last) = last else {
        return;
    };
    let last = unsafe { &mut *last };
    if last.tgid != tgid {
        last.tgid = tgid;
        last.opcodes = 0;
    }
    if opcode < 64 {
        last.opcodes |= 1u64 << opcode;
    }
}

macro_rules! uoff {
    ($field:ident) => {{
        #[allow(unused_unsafe)]
        let v = unsafe { core::ptr::read_volatile(core::ptr::addr_of!(IO_URING_OFFSETS.$field)) };
        v as usize
    }};
}

// io_uring_submit_req(struct io_kiocb *req)
#[btf_tracepoint(function = "io_uring_submit_req")]
pub fn io_uring_submit_req(ctx: BtfTracePointContext) -> i32 {
    let req: *const u8 = ctx.arg(0);
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    if crate::file_open::current_is_agent() {
        return 0;
    }
    let opcode = unsafe { read::<u8>(req, uoff!(req_opcode)) } as u32;
    let last = LAST_SUBMITTER.get_ptr_mut(0);
    if let Some(l) = last {
        let l = unsafe { &*l };
        if l.tgid == tgid && opcode < 64 && l.opcodes & (1u64 << opcode) != 0 {
            return 0;
        }
    }
    let key = IoUringKey { tgid, opcode };
    if unsafe { IO_URING_SEEN.get(key) }.is_some() {
        remember(last, tgid, opcode);
        return 0;
    }
    let _ = IO_URING_SEEN.insert(key, 1, 0);
    remember(last, tgid, opcode);
    let Some(mut entry) = EVENTS.reserve::<IoUringEvent>(0) else {
        bump(&DROPS, KIND_IO_URING);
        return 0;
    };
    let ev = unsafe { &mut *entry.as_mut_ptr() };
    ev.hdr = crate::process::header(KIND_IO_URING);
    ev.pid = pid_tgid as u32;
    ev.tgid = tgid;
    ev.uid = bpf_get_current_uid_gid() as u32;
    ev.opcode = opcode;
    ev.cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    unsafe {
        ev.ctx = read::<u64>(req, uoff!(req_ctx));
        ev.user_data = read::<u64>(req, uoff!(req_user_data));
    }
    crate::submit(entry);
    bump(&SENT, KIND_IO_URING);
    0
}

// io_uring_complete(struct io_ring_ctx *ctx, void *req, struct io_uring_cqe *cqe).
// Completions run in the submitting process or in one of its io-wq/SQPOLL
// threads, which share its fd table: the fd in `res` is looked up there.
#[btf_tracepoint(function = "io_uring_complete")]
pub fn io_uring_complete(ctx: BtfTracePointContext) -> i32 {
    let req: *const u8 = ctx.arg(1);
    // Auxiliary CQEs (multishot, msg_ring) carry no request.
    if req.is_null() {
        return 0;
    }
    let opcode = unsafe { read::<u8>(req, uoff!(req_opcode)) };
    if opcode != IORING_OP_OPENAT && opcode != IORING_OP_OPENAT2 {
        return 0;
    }
    let cqe: *const u8 = ctx.arg(2);
    let res = unsafe { read::<i32>(cqe, CQE_RES) };
    // A fixed-file open returns 0, not an fd: there is no fd to look up.
    let slot = unsafe { read::<u32>(req, uoff!(open_file_slot)) };
    if res < 0 || slot != 0 {
        return 0;
    }
    crate::file_open::on_opened(res as i64, OPEN_SYSCALL_IO_URING);
    0
}
