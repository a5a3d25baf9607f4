//! Unix-socket connects and datagrams from the BPF LSM hooks
//! (`unix_stream_connect`, `unix_may_send`), for the file hook sets that
//! attach no syscall tracepoint: the peer's bound path comes from the peer
//! socket itself, and each (process, socket type, path) is reported once.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, generated},
    macros::{lsm, map},
    maps::LruHashMap,
    programs::LsmContext,
};
use proctor_common::{
    ConnectEvent, UnixSeenKey, CONNECT_DEDUP_SLOT, CONNECT_ORIGIN_LSM, CONNECT_ORIGIN_LSM_SEND,
    KIND_CONNECT, UNIX_PATH_LEN,
};

use crate::{bump, off, read, read_ptr, DROPS, EVENTS, SENT};

const AF_UNIX: u16 = 1;
/// `offsetof(struct sockaddr_un, sun_path)`.
const SUN_PATH: usize = 2;

/// Peer paths each process already reported, with how often it used them since.
#[map]
static UNIX_SEEN: LruHashMap<UnixSeenKey, u64> = LruHashMap::with_max_entries(16384, 0);

// unix_stream_connect(struct sock *sock, struct sock *other, struct sock *newsk)
#[lsm(hook = "unix_stream_connect")]
pub fn unix_stream_connect(ctx: LsmContext) -> i32 {
    let sock: *const u8 = ctx.arg(0);
    let other: *const u8 = ctx.arg(1);
    let sock_type = unsafe { read::<u16>(sock, off!(sock_sk_type)) };
    on_unix(sock_type, other, CONNECT_ORIGIN_LSM);
    0
}

// unix_may_send(struct socket *sock, struct socket *other): datagram
// connect(2) and every datagram sent to a peer.
#[lsm(hook = "unix_may_send")]
pub fn unix_may_send(ctx: LsmContext) -> i32 {
    let sock: *const u8 = ctx.arg(0);
    let other: *const u8 = ctx.arg(1);
    let (sock_type, peer) = unsafe {
        (
            read::<u16>(sock, off!(socket_type)),
            read_ptr(other, off!(socket_sk)),
        )
    };
    on_unix(sock_type, peer, CONNECT_ORIGIN_LSM_SEND);
    0
}

/// Reports the first use of `peer`'s (a `struct sock *`) bound path by this
/// process. An unbound peer (a socketpair, an autobound socket before its
/// name) has no path to report and costs nothing.
#[inline(always)]
fn on_unix(sock_type: u16, peer: *const u8, origin: u32) {
    let pid_tgid = bpf_get_current_pid_tgid();
    let mut key = UnixSeenKey {
        tgid: (pid_tgid >> 32) as u32,
        sock_type: sock_type as u32,
        path: [0; UNIX_PATH_LEN],
    };
    unsafe {
        let addr = read_ptr(peer, off!(unix_sock_addr));
        if addr.is_null() {
            return;
        }
        // `len` counts the family too; an abstract name keeps its leading
        // NUL and is exactly this long, so nothing past it is read.
        let len = read::<i32>(addr, off!(unix_address_len)) - SUN_PATH as i32;
        if len <= 0 {
            return;
        }
        let n = if len as usize > UNIX_PATH_LEN {
            UNIX_PATH_LEN
        } else {
            len as usize
        };
        let src = addr.add(off!(unix_address_name) + SUN_PATH);
        generated::bpf_probe_read_kernel(
            key.path.as_mut_ptr() as *mut _,
            n as u32,
            src as *const _,
        );
    }
    if let Some(count) = UNIX_SEEN.get_ptr_mut(key) {
        unsafe { *count += 1 };
        bump(&SENT, CONNECT_DEDUP_SLOT);
        return;
    }
    let _ = UNIX_SEEN.insert(key, 1, 0);
    let Some(mut entry) = EVENTS.reserve::<ConnectEvent>(0) else {
        bump(&DROPS, KIND_CONNECT);
        return;
    };
    let out = unsafe { &mut *entry.as_mut_ptr() };
    crate::connect::fill_caller(out, pid_tgid);
    out.result = 0;
    out.family = AF_UNIX;
    out.port = 0;
    out.protocol = 0;
    out.sock_type = key.sock_type as u16;
    out.deferred = 0;
    out.addr = [0; 16];
    out.path = key.path;
    out.origin = origin;
    crate::submit(entry);
    bump(&SENT, KIND_CONNECT);
}
