//! Connection probes: connect(2) enter/exit tracepoints (the `syscall` file
//! hook set only), the cgroup sock_addr hooks' reports, and the TCP state
//! machine (`tp_btf/inet_sock_set_state`) that gives a parked TCP connect its
//! real outcome.
//!
//! Repeated connects by one process to one destination are counted in the
//! kernel and reported once. Where the syscall tracepoints are attached they
//! report connect(2) and the cgroup hooks (see `egress.rs`) report through
//! [`on_socket_hook`] what they cannot see (datagrams, io_uring connects).
//! Where they are not (the `lsm` and `page-cache` sets: no syscall tracing
//! at all), the cgroup hook reports every connect: a TCP one is parked by
//! its `struct sock *` until the handshake ends; one that fails before it
//! starts is found and reported by the agent's sweep of `CONNECT_PENDING`.

use aya_ebpf::{
    helpers::bpf_ktime_get_boot_ns,
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_pid_tgid, bpf_get_current_task,
        bpf_get_current_uid_gid, bpf_probe_read_user, bpf_probe_read_user_buf,
    },
    macros::{btf_tracepoint, map, tracepoint},
    maps::{HashMap, LruHashMap, PerCpuArray},
    programs::{BtfTracePointContext, SockAddrContext, TracePointContext},
};
use proctor_common::{
    ConnectEvent, ConnectKey, PendingConnect, CONNECT_DEDUP_SLOT, CONNECT_ORIGIN_SOCKET_HOOK,
    CONNECT_UNSTARTED_SLOT, DEFERRED_NO_HANDSHAKE, HOOK_FLAG_CONNECT_TRACEPOINTS, KIND_CONNECT,
    PENDING_FROM_HOOK, PENDING_SYN_SENT, UNIX_PATH_LEN,
};

use crate::{bump, off, read, read_ptr, DROPS, EVENTS, SENT};

const AF_UNIX: u16 = 1;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const EINPROGRESS: i64 = 115;
const TCP_ESTABLISHED: i32 = 1;
const TCP_SYN_SENT: i32 = 2;
const TCP_CLOSE: i32 = 7;
const IPPROTO_TCP: u32 = 6;
const ECONNREFUSED: i32 = 111;
const EPERM: i32 = 1;
const EEXIST: i32 = 17;
/// `bpf_map_update_elem` flag: fail if the key is there.
const BPF_NOEXIST: u64 = 1;

/// connect(2) arguments between enter and exit, by thread. The cgroup
/// connect hook also reads it: a thread found here is inside connect(2),
/// which the tracepoints report.
#[map]
static CONNECT_ARGS: HashMap<u64, ConnectEvent> = HashMap::with_max_entries(16384, 0);

/// TCP connects waiting for the handshake, by `struct sock *`: non-blocking
/// ones from connect(2)'s exit, every one from the cgroup hook where the
/// syscall tracepoints are not attached. The agent sweeps those never
/// marked SYN_SENT.
#[map]
static CONNECT_PENDING: LruHashMap<u64, PendingConnect> = LruHashMap::with_max_entries(16384, 0);

/// Destinations each process already reported, with how often it connected since.
#[map]
pub static CONNECT_SEEN: LruHashMap<ConnectKey, u64> = LruHashMap::with_max_entries(65536, 0);

// sys_enter_connect: int fd, struct sockaddr *uservaddr, int addrlen (8 bytes each from 16).
#[tracepoint(category = "syscalls", name = "sys_enter_connect")]
pub fn sys_enter_connect(ctx: TracePointContext) -> u32 {
    let (fd, uaddr, len): (i64, u64, i64) = unsafe {
        (
            ctx.read_at(16).unwrap_or(-1),
            ctx.read_at(24).unwrap_or(0),
            ctx.read_at(32).unwrap_or(0),
        )
    };
    let uaddr = uaddr as *const u8;
    let family: u16 = unsafe { bpf_probe_read_user(uaddr as *const u16) }.unwrap_or(0);
    if family != AF_INET && family != AF_INET6 && family != AF_UNIX {
        return 0;
    }
    // A zeroed template, filled in place in the map value (too big for the stack twice).
    let key = bpf_get_current_pid_tgid();
    let template: ConnectEvent = unsafe { core::mem::zeroed() };
    if CONNECT_ARGS.insert(key, template, 0).is_err() {
        return 0;
    }
    let Some(ev) = CONNECT_ARGS.get_ptr_mut(key) else {
        return 0;
    };
    let ev = unsafe { &mut *ev };
    ev.fd = fd as i32;
    ev.family = family;
    unsafe {
        match family {
            AF_INET => {
                let port: u16 = bpf_probe_read_user(uaddr.add(2) as *const u16).unwrap_or(0);
                ev.port = u16::from_be(port);
                let _ = bpf_probe_read_user_buf(uaddr.add(4), &mut ev.addr[..4]);
            }
            AF_INET6 => {
                let port: u16 = bpf_probe_read_user(uaddr.add(2) as *const u16).unwrap_or(0);
                ev.port = u16::from_be(port);
                let _ = bpf_probe_read_user_buf(uaddr.add(8), &mut ev.addr);
            }
            _ => {
                // sun_path; abstract sockets start with a NUL, kept as such.
                if len > 2 {
                    let _ = bpf_probe_read_user_buf(uaddr.add(2), &mut ev.path[..UNIX_PATH_LEN]);
                }
            }
        }
    }
    0
}

#[tracepoint(category = "syscalls", name = "sys_exit_connect")]
pub fn sys_exit_connect(ctx: TracePointContext) -> u32 {
    let key = bpf_get_current_pid_tgid();
    let ret: i64 = unsafe { ctx.read_at(16) }.unwrap_or(0);
    let Some(args) = CONNECT_ARGS.get_ptr_mut(key) else {
        return 0;
    };
    let args = unsafe { &mut *args };
    let pid_tgid = key;
    args.pid = pid_tgid as u32;
    args.tgid = (pid_tgid >> 32) as u32;
    args.uid = bpf_get_current_uid_gid() as u32;
    args.cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    args.result = ret as i32;
    let sk = unsafe {
        let task = bpf_get_current_task() as *const u8;
        let file = crate::file_open::file_of_fd(task, args.fd as u64);
        let socket = read_ptr(file, off!(file_private_data));
        args.sock_type = read::<u16>(socket, off!(socket_type));
        let sk = read_ptr(socket, off!(socket_sk));
        args.protocol = read::<u16>(sk, off!(sock_protocol));
        sk
    };

    let seen = ConnectKey {
        tgid: args.tgid,
        family: args.family,
        port: args.port,
        ok: (ret == 0 || ret == -EINPROGRESS) as u32,
        protocol: args.protocol as u32,
        addr: args.addr,
    };
    let new_destination = first_time(&seen);
    // Unix sockets have no useful destination key: report each path once per process too.
    if !new_destination {
        bump(&SENT, CONNECT_DEDUP_SLOT);
    } else if ret == -EINPROGRESS && args.family != AF_UNIX {
        // The handshake decides; inet_sock_set_state reports it. On loopback
        // it may already have decided inside connect(): park the record first,
        // then look; whoever removes it from the map reports it.
        args.deferred = 1;
        let parked = PendingConnect {
            ev: *args,
            parked_ns: unsafe { bpf_ktime_get_boot_ns() },
            flags: PENDING_SYN_SENT,
            _pad: 0,
            start_boottime_ns: 0,
        };
        let _ = CONNECT_PENDING.insert(sk as u64, parked, 0);
        let state = unsafe { read::<u8>(sk, off!(sock_state)) } as i32;
        if state != TCP_SYN_SENT && CONNECT_PENDING.remove(sk as u64).is_ok() {
            args.result = outcome(sk, state);
            emit(args);
        }
    } else {
        emit(args);
    }
    let _ = CONNECT_ARGS.remove(key);
    0
}

/// Counts a use of `seen`; true the first time (the caller reports it).
#[inline(always)]
fn first_time(seen: &ConnectKey) -> bool {
    match CONNECT_SEEN.get_ptr_mut(seen) {
        Some(count) => {
            unsafe { *count += 1 };
            false
        }
        None => {
            let _ = CONNECT_SEEN.insert(seen, 1, 0);
            true
        }
    }
}

/// A cgroup sock_addr hook saw a connect or a datagram send. `origin` says
/// which; `refused` that block-egress returned EPERM; `V6` which hook family
/// runs (the verifier lets a v4 hook read only `user_ip4`, a v6 hook only
/// `user_ip6`, even on a branch never taken). A connect made through
/// connect(2) is left to the tracepoints where they are attached, which also
/// know its outcome; any other TCP connect let through is parked for
/// [`inet_sock_set_state`], which knows it too. UDP connects and datagrams
/// have no handshake: reported at once.
#[inline(always)]
pub(crate) fn on_socket_hook<const V6: bool>(ctx: &SockAddrContext, origin: u32, refused: bool) {
    let pid_tgid = bpf_get_current_pid_tgid();
    // Where connect(2)'s tracepoints are attached, they report the connects
    // made through it (the sets without syscall tracing never fill the map).
    if origin == CONNECT_ORIGIN_SOCKET_HOOK
        && crate::hook_flag(HOOK_FLAG_CONNECT_TRACEPOINTS)
        && unsafe { CONNECT_ARGS.get(pid_tgid) }.is_some()
    {
        return;
    }
    let sa = ctx.sock_addr;
    // The verifier accepts only 4-byte loads at constant offsets from the
    // unmodified context pointer: every field is loaded once, volatile, so
    // the compiler cannot merge them into pointer arithmetic.
    let field = |f: *const u32| unsafe { core::ptr::read_volatile(f) };
    let (family, port, protocol, sock_type) = unsafe {
        (
            field(&raw const (*sa).user_family) as u16,
            field(&raw const (*sa).user_port),
            field(&raw const (*sa).protocol),
            field(&raw const (*sa).type_),
        )
    };
    // The words are in network order already.
    let words: [u32; 4] = unsafe {
        if V6 {
            [
                field(&raw const (*sa).user_ip6[0]),
                field(&raw const (*sa).user_ip6[1]),
                field(&raw const (*sa).user_ip6[2]),
                field(&raw const (*sa).user_ip6[3]),
            ]
        } else {
            [field(&raw const (*sa).user_ip4), 0, 0, 0]
        }
    };
    if family != if V6 { AF_INET6 } else { AF_INET } {
        return;
    }
    let addr: [u8; 16] = unsafe { core::mem::transmute(words) };
    // user_port holds the network-order port in its low 16 bits.
    let port = u16::from_be(port as u16);
    if origin == CONNECT_ORIGIN_SOCKET_HOOK && protocol == IPPROTO_TCP && !refused {
        let sk = unsafe { core::ptr::read_volatile(&raw const (*sa).__bindgen_anon_1.sk) };
        if let Some(key) = sock_key(sk as *const u8) {
            park(pid_tgid, family, port, sock_type, addr, key);
            return;
        }
    }
    let seen = ConnectKey {
        tgid: (pid_tgid >> 32) as u32,
        family,
        port,
        ok: !refused as u32,
        protocol,
        addr,
    };
    if !first_time(&seen) {
        bump(&SENT, CONNECT_DEDUP_SLOT);
        return;
    }
    let Some(mut entry) = EVENTS.reserve::<ConnectEvent>(0) else {
        bump(&DROPS, KIND_CONNECT);
        return;
    };
    let out = unsafe { &mut *entry.as_mut_ptr() };
    fill_caller(out, pid_tgid);
    out.result = if refused { -EPERM } else { 0 };
    out.family = family;
    out.port = port;
    out.protocol = protocol as u16;
    out.sock_type = sock_type as u16;
    out.deferred = 0;
    out.addr = addr;
    out.path[0] = 0;
    out.origin = origin;
    crate::submit(entry);
    bump(&SENT, KIND_CONNECT);
}

/// One slot to turn the hook's socket pointer into a number.
#[map]
static SK_SCRATCH: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// The `struct sock *` inet_sock_set_state will be given, as a map key. The
/// verifier types the hook's `ctx->sk` as a socket pointer, which 5.10 does
/// not let a helper read off the stack as a key; written to a map value and
/// read back (privileged programs may), it is a plain number on every kernel.
#[inline(always)]
fn sock_key(sk: *const u8) -> Option<u64> {
    let slot = SK_SCRATCH.get_ptr_mut(0)?;
    unsafe {
        core::ptr::write_volatile(slot as *mut *const u8, sk);
        Some(core::ptr::read_volatile(slot))
    }
}

/// The record [`park`] builds before it goes into the map in one copy
/// (too big for the stack). Only `park` writes it, always the same fields:
/// the others stay zero.
#[map]
static PARK_SCRATCH: PerCpuArray<PendingConnect> = PerCpuArray::with_max_entries(1, 0);

/// Parks a TCP connect the cgroup hook let through, under its socket. A
/// record already there that never started its handshake belongs to a
/// connect that failed before it (the socket retried, or was freed and
/// its memory reused): it is reported now, before the new one replaces it.
/// The common case, no record there, costs one map update.
// The record goes to the map by reference: by value it would be copied
// onto the 512-byte BPF stack first.
#[allow(clippy::needless_borrows_for_generic_args)]
#[inline(always)]
fn park(pid_tgid: u64, family: u16, port: u16, sock_type: u32, addr: [u8; 16], sk: u64) {
    let Some(p) = PARK_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    let p = unsafe { &mut *p };
    fill_parked(p, pid_tgid, family, port, sock_type, addr);
    match CONNECT_PENDING.insert(sk, &*p, BPF_NOEXIST) {
        Ok(()) => return,
        Err(e) if e != -EEXIST => {
            bump(&DROPS, KIND_CONNECT);
            return;
        }
        Err(_) => {}
    }
    if let Some(old) = unsafe { CONNECT_PENDING.get(sk) } {
        if old.flags & PENDING_FROM_HOOK != 0 && old.flags & PENDING_SYN_SENT == 0 {
            let mut ev = old.ev;
            if CONNECT_PENDING.remove(sk).is_ok() {
                ev.deferred = DEFERRED_NO_HANDSHAKE;
                bump(&SENT, CONNECT_UNSTARTED_SLOT);
                report_outcome(&ev);
            }
        }
    }
    if CONNECT_PENDING.insert(sk, &*p, 0).is_err() {
        bump(&DROPS, KIND_CONNECT);
    }
}

#[inline(always)]
fn fill_parked(
    p: &mut PendingConnect,
    pid_tgid: u64,
    family: u16,
    port: u16,
    sock_type: u32,
    addr: [u8; 16],
) {
    p.parked_ns = unsafe { bpf_ktime_get_boot_ns() };
    p.flags = PENDING_FROM_HOOK;
    // 0 where the program cannot reach the task (5.10): the sweep then finds
    // the process by pid alone.
    p.start_boottime_ns = crate::quarantine::current_process_start();
    let ev = &mut p.ev;
    fill_caller(ev, pid_tgid);
    ev.family = family;
    ev.port = port;
    ev.protocol = IPPROTO_TCP as u16;
    ev.sock_type = sock_type as u16;
    ev.deferred = 1;
    ev.addr = addr;
    ev.origin = CONNECT_ORIGIN_SOCKET_HOOK;
}

/// Who reports a connect from its own context (no fd: the hooks see an
/// address, not a descriptor).
#[inline(always)]
pub(crate) fn fill_caller(ev: &mut ConnectEvent, pid_tgid: u64) {
    ev.hdr = crate::process::header(KIND_CONNECT);
    ev.pid = pid_tgid as u32;
    ev.tgid = (pid_tgid >> 32) as u32;
    ev.uid = bpf_get_current_uid_gid() as u32;
    ev.fd = -1;
    ev.cgroup_id = unsafe { bpf_get_current_cgroup_id() };
}

#[inline(always)]
fn emit(ev: &ConnectEvent) {
    let Some(mut entry) = EVENTS.reserve::<ConnectEvent>(0) else {
        bump(&DROPS, KIND_CONNECT);
        return;
    };
    let out = unsafe { &mut *entry.as_mut_ptr() };
    *out = *ev;
    out.hdr = crate::process::header(KIND_CONNECT);
    crate::submit(entry);
    bump(&SENT, KIND_CONNECT);
}

// inet_sock_set_state(const struct sock *sk, const int oldstate, const int newstate)
#[btf_tracepoint(function = "inet_sock_set_state")]
pub fn inet_sock_set_state(ctx: BtfTracePointContext) -> i32 {
    let sk: *const u8 = ctx.arg(0);
    let old: i32 = ctx.arg(1);
    let new: i32 = ctx.arg(2);
    let key = sk as u64;
    if old == TCP_CLOSE && new == TCP_SYN_SENT {
        // The handshake started: its end reports the record, not the sweep.
        if let Some(pending) = CONNECT_PENDING.get_ptr_mut(key) {
            unsafe { (*pending).flags |= PENDING_SYN_SENT };
        }
        return 0;
    }
    if old != TCP_SYN_SENT {
        return 0;
    }
    let Some(pending) = CONNECT_PENDING.get_ptr_mut(key) else {
        return 0;
    };
    let pending = unsafe { &mut *pending };
    pending.ev.result = outcome(sk, new);
    // Only the one who removes the record reports it (see sys_exit_connect);
    // copy first, then remove: the map value dies with the removal.
    let ev = pending.ev;
    let from_hook = pending.flags & PENDING_FROM_HOOK != 0;
    if CONNECT_PENDING.remove(key).is_err() {
        return 0;
    }
    // connect(2)'s exit counted it already; the hook's record is counted
    // now that the outcome (part of the key) is known.
    if from_hook {
        report_outcome(&ev);
    } else {
        emit(&ev);
    }
    0
}

/// Reports a hook-parked connect whose outcome is known, unless its process
/// already reported that destination with that outcome.
#[inline(always)]
fn report_outcome(ev: &ConnectEvent) {
    let seen = ConnectKey {
        tgid: ev.tgid,
        family: ev.family,
        port: ev.port,
        ok: (ev.result == 0 && ev.deferred != DEFERRED_NO_HANDSHAKE) as u32,
        protocol: ev.protocol as u32,
        addr: ev.addr,
    };
    if first_time(&seen) {
        emit(ev);
    } else {
        bump(&SENT, CONNECT_DEDUP_SLOT);
    }
}

/// 0 when the handshake completed, else -errno from the socket.
#[inline(always)]
fn outcome(sk: *const u8, state: i32) -> i32 {
    if state == TCP_ESTABLISHED {
        return 0;
    }
    let err = unsafe { read::<i32>(sk, off!(sock_err)) };
    -(if err != 0 { err } else { ECONNREFUSED })
}
