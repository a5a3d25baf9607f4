//! `block-egress` enforcement: cgroup connect hooks that refuse connections
//! from processes the agent quarantined (e.g. after secret-exfil).

use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid,
    macros::{cgroup_sock_addr, map},
    maps::HashMap,
    programs::SockAddrContext,
};
use proctor_common::EGRESS_DENIED_SLOT;

use crate::{bump, SENT};

/// Quarantined processes by tgid.
#[map]
pub static QUARANTINE: HashMap<u32, u32> = HashMap::with_max_entries(16384, 0);

#[inline(always)]
fn verdict() -> i32 {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if unsafe { QUARANTINE.get(tgid) }.is_some() {
        bump(&SENT, EGRESS_DENIED_SLOT);
        return 0;
    }
    1
}

#[cgroup_sock_addr(connect4)]
pub fn block_egress4(_ctx: SockAddrContext) -> i32 {
    verdict()
}

#[cgroup_sock_addr(connect6)]
pub fn block_egress6(_ctx: SockAddrContext) -> i32 {
    verdict()
}
