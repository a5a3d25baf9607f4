//! Minimal programs `proctor doctor` loads to learn whether this kernel
//! accepts LSM and trampoline (fentry) programs. They do nothing.

use aya_ebpf::{
    macros::{fentry, lsm},
    programs::{FEntryContext, LsmContext},
};

#[lsm(hook = "file_open")]
pub fn probe_lsm_file_open(_ctx: LsmContext) -> i32 {
    0
}

#[fentry(function = "security_file_open")]
pub fn probe_fentry_file_open(_ctx: FEntryContext) -> u32 {
    0
}
