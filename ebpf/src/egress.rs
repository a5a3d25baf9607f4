//! cgroup sock_addr hooks on the cgroup2 root: every connect and every
//! datagram sent to an explicit address passes here, whatever the path
//! (connect(2), sendto(2), io_uring). They report what the syscall
//! tracepoints miss (see `connect::on_socket_hook`) and enforce
//! `block-egress`: processes the agent quarantined get EPERM.

use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid, macros::cgroup_sock_addr, programs::SockAddrContext,
};
use proctor_common::{CONNECT_ORIGIN_SENDMSG, CONNECT_ORIGIN_SOCKET_HOOK, EGRESS_DENIED_SLOT};

use crate::{
    bump,
    connect::on_socket_hook,
    quarantine::{current_process_start, quarantined},
    SENT,
};

/// Reports the operation, then 1 (allow) or 0 (EPERM for the caller).
#[inline(always)]
fn verdict<const V6: bool>(ctx: &SockAddrContext, origin: u32) -> i32 {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let refused = quarantined(tgid, current_process_start);
    on_socket_hook::<V6>(ctx, origin, refused);
    if refused {
        bump(&SENT, EGRESS_DENIED_SLOT);
        return 0;
    }
    1
}

#[cgroup_sock_addr(connect4)]
pub fn block_egress4(ctx: SockAddrContext) -> i32 {
    verdict::<false>(&ctx, CONNECT_ORIGIN_SOCKET_HOOK)
}

#[cgroup_sock_addr(connect6)]
pub fn block_egress6(ctx: SockAddrContext) -> i32 {
    verdict::<true>(&ctx, CONNECT_ORIGIN_SOCKET_HOOK)
}

#[cgroup_sock_addr(sendmsg4)]
pub fn egress_sendmsg4(ctx: SockAddrContext) -> i32 {
    verdict::<false>(&ctx, CONNECT_ORIGIN_SENDMSG)
}

#[cgroup_sock_addr(sendmsg6)]
pub fn egress_sendmsg6(ctx: SockAddrContext) -> i32 {
    verdict::<true>(&ctx, CONNECT_ORIGIN_SENDMSG)
}
