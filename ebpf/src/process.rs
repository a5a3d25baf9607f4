//! Process lifecycle probes: exec, fork, exit.

use core::ffi::c_void;

use aya_ebpf::{
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid,
        bpf_get_smp_processor_id, bpf_ktime_get_boot_ns, bpf_probe_read_kernel_str_bytes,
        generated,
    },
    macros::map,
    maps::PerCpuArray,
    programs::BtfTracePointContext,
};
use proctor_common::{
    EventHeader, ExecEnvEvent, ExecEnvHeader, ExecEvent, ExitEvent, ForkEvent, QuarantineEntry,
    ARGS_LEN, ENV_FLAG_TRUNCATED, ENV_FLAG_UNREADABLE, ENV_LEN, EXEC_FLAG_ARGS_TRUNCATED,
    EXEC_FLAG_ARGS_UNREADABLE, EXEC_FLAG_FILENAME_TRUNCATED, EXEC_FLAG_SCRIPT, KIND_EXEC,
    KIND_EXEC_ENV, KIND_EXIT, KIND_FORK, PATH_LEN,
};

use crate::{
    bump, load, load_ptr, off,
    quarantine::{any_quarantine, process_start, quarantined, QUARANTINE},
    read, submit_flags, DROPS, EVENTS, SENT,
};

#[inline(always)]
pub(crate) fn header(kind: u32) -> EventHeader {
    EventHeader {
        kind,
        cpu: unsafe { bpf_get_smp_processor_id() },
        ktime_ns: unsafe { bpf_ktime_get_boot_ns() },
    }
}

#[inline(always)]
unsafe fn tgid_of<const D: bool>(task: *const u8) -> u32 {
    unsafe { load::<D, u32>(task, off!(task_tgid)) }
}

// Each program comes twice: with direct BTF loads, and (`_probe`) with
// helper reads for a verifier that refuses those (see `crate::load`).

// sched_process_exec(struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
crate::both_loads!(
    "sched_process_exec",
    sched_process_exec,
    sched_process_exec_probe,
    on_exec
);

#[inline(always)]
fn on_exec<const D: bool>(ctx: &BtfTracePointContext) -> i32 {
    let Some(mut entry) = EVENTS.reserve::<ExecEvent>(0) else {
        bump(&DROPS, KIND_EXEC);
        return 0;
    };
    let ev = unsafe { &mut *entry.as_mut_ptr() };
    unsafe { fill_exec::<D>(ctx, ev) };
    let (tgid, start) = (ev.tgid, ev.start_boottime_ns);
    crate::submit(entry);
    bump(&SENT, KIND_EXEC);
    // After the exec record, so user space has the process when the
    // environment arrives; before the exit record, which the task cannot
    // reach while this program runs.
    let task: *const u8 = ctx.arg(0);
    unsafe { send_env::<D>(load_ptr::<D>(task, off!(task_mm)), tgid, start) };
    0
}

/// Scratch for the environment record: too big for the stack, and a
/// fixed-size reservation would take `ENV_LEN` of ring for every exec.
#[map]
static ENV_SCRATCH: PerCpuArray<ExecEnvEvent> = PerCpuArray::with_max_entries(1, 0);

/// Copies the new image's environment block (at most `ENV_LEN` bytes) to
/// the ring buffer. Read here, while the process certainly exists: a
/// process that lives a millisecond is gone before user space could open
/// `/proc/<pid>/environ`.
#[inline(always)]
unsafe fn send_env<const D: bool>(mm: *const u8, tgid: u32, start_boottime_ns: u64) {
    let Some(slot) = ENV_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    let ev = unsafe { &mut *slot };
    let (start, end) = unsafe {
        (
            load::<D, u64>(mm, off!(mm_env_start)),
            load::<D, u64>(mm, off!(mm_env_end)),
        )
    };
    let total = end.saturating_sub(start);
    let mut flags = 0;
    let mut len = if total >= ENV_LEN as u64 {
        flags |= ENV_FLAG_TRUNCATED;
        ENV_LEN as u32
    } else {
        // The mask proves the bound to the verifier.
        (total as u32) & (ENV_LEN as u32 - 1)
    };
    let rc = unsafe {
        generated::bpf_probe_read_user(
            ev.env.as_mut_ptr() as *mut c_void,
            len,
            start as *const c_void,
        )
    };
    if rc != 0 {
        flags |= ENV_FLAG_UNREADABLE;
        len = 0;
    }
    ev.head = ExecEnvHeader {
        hdr: header(KIND_EXEC_ENV),
        tgid,
        flags,
        start_boottime_ns,
        env_len: total.min(u32::MAX as u64) as u32,
        captured: len,
    };
    let size = core::mem::size_of::<ExecEnvHeader>() + len as usize;
    // SAFETY: `size` is at most the scratch slot's size (len <= ENV_LEN).
    let bytes = unsafe { core::slice::from_raw_parts(slot as *const u8, size) };
    let rc = EVENTS.output::<[u8]>(bytes, submit_flags(size as u64, false));
    if rc.is_err() {
        bump(&DROPS, KIND_EXEC_ENV);
    } else {
        bump(&SENT, KIND_EXEC_ENV);
    }
}

#[inline(always)]
unsafe fn fill_exec<const D: bool>(ctx: &BtfTracePointContext, ev: &mut ExecEvent) {
    let task: *const u8 = ctx.arg(0);
    let old_pid: i32 = ctx.arg(1);
    let bprm: *const u8 = ctx.arg(2);

    ev.hdr = header(KIND_EXEC);
    let pid_tgid = bpf_get_current_pid_tgid();
    ev.pid = pid_tgid as u32;
    ev.tgid = (pid_tgid >> 32) as u32;
    ev.old_pid = old_pid as u32;
    ev.cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    ev.comm = bpf_get_current_comm().unwrap_or_default();
    ev.flags = 0;

    unsafe {
        ev.start_boottime_ns = load::<D, u64>(task, off!(task_start_boottime));
        // real_parent is the thread that forked; the process is its group leader.
        let parent = load_ptr::<D>(task, off!(task_real_parent));
        let parent_leader = load_ptr::<D>(parent, off!(task_group_leader));
        ev.ppid = tgid_of::<D>(parent);
        ev.parent_start_boottime_ns = load::<D, u64>(parent_leader, off!(task_start_boottime));

        let cred = load_ptr::<D>(task, off!(task_cred));
        ev.uid = load::<D, u32>(cred, off!(cred_uid));
        ev.gid = load::<D, u32>(cred, off!(cred_gid));
        ev.euid = load::<D, u32>(cred, off!(cred_euid));
        ev.egid = load::<D, u32>(cred, off!(cred_egid));

        fill_file::<D>(ev, load_ptr::<D>(bprm, off!(bprm_file)));
        if ev.ino == 0 {
            aya_log_ebpf::warn!(
                ctx,
                "exec probe: cannot read the inode of bprm->file (pid {})",
                ev.tgid
            );
        }

        let filename = load_ptr::<D>(bprm, off!(bprm_filename));
        let interp = load_ptr::<D>(bprm, off!(bprm_interp));
        match bpf_probe_read_kernel_str_bytes(filename, &mut ev.filename) {
            Ok(s) if s.len() >= PATH_LEN - 1 => ev.flags |= EXEC_FLAG_FILENAME_TRUNCATED,
            Ok(_) => {}
            Err(_) => ev.filename[0] = 0,
        }
        if interp != filename {
            ev.flags |= EXEC_FLAG_SCRIPT;
            if bpf_probe_read_kernel_str_bytes(interp, &mut ev.interp).is_err() {
                ev.interp[0] = 0;
            }
        } else {
            ev.interp[0] = 0;
        }

        fill_args::<D>(ev, load_ptr::<D>(task, off!(task_mm)));
    }
}

#[inline(always)]
unsafe fn fill_file<const D: bool>(ev: &mut ExecEvent, file: *const u8) {
    unsafe {
        let inode = load_ptr::<D>(file, off!(file_inode));
        ev.ino = load::<D, u64>(inode, off!(inode_ino));
        ev.size = load::<D, i64>(inode, off!(inode_size));
        ev.nlink = load::<D, u32>(inode, off!(inode_nlink));
        ev.mtime_sec = load::<D, i64>(inode, off!(inode_mtime_sec));
        ev.ctime_sec = load::<D, i64>(inode, off!(inode_ctime_sec));
        // timespec64.tv_nsec is a long; the split 6.7+ fields are u32. Either
        // way the low 32 bits hold the value on little-endian.
        ev.mtime_nsec = load::<D, u32>(inode, off!(inode_mtime_nsec));
        ev.ctime_nsec = load::<D, u32>(inode, off!(inode_ctime_nsec));
        let sb = load_ptr::<D>(inode, off!(inode_sb));
        ev.dev = load::<D, u32>(sb, off!(sb_dev));
        ev.s_magic = load::<D, u64>(sb, off!(sb_magic));

        let dentry = load_ptr::<D>(file, off!(file_dentry));
        let name = load_ptr::<D>(dentry, off!(dentry_name));
        if bpf_probe_read_kernel_str_bytes(name, &mut ev.dname).is_err() {
            ev.dname[0] = 0;
        }
    }
}

#[inline(always)]
unsafe fn fill_args<const D: bool>(ev: &mut ExecEvent, mm: *const u8) {
    let (start, end) = unsafe {
        (
            load::<D, u64>(mm, off!(mm_arg_start)),
            load::<D, u64>(mm, off!(mm_arg_end)),
        )
    };
    let total = end.saturating_sub(start);
    ev.args_len = total as u32;
    let len = if total >= ARGS_LEN as u64 {
        ev.flags |= EXEC_FLAG_ARGS_TRUNCATED;
        ARGS_LEN as u32
    } else {
        // The mask proves the bound to the verifier.
        (total as u32) & (ARGS_LEN as u32 - 1)
    };
    let rc = unsafe {
        generated::bpf_probe_read_user(
            ev.args.as_mut_ptr() as *mut c_void,
            len,
            start as *const c_void,
        )
    };
    if rc != 0 {
        ev.flags |= EXEC_FLAG_ARGS_UNREADABLE;
        ev.args_len = 0;
    }
}

// sched_process_fork(struct task_struct *parent, struct task_struct *child)
crate::both_loads!(
    "sched_process_fork",
    sched_process_fork,
    sched_process_fork_probe,
    on_fork
);

#[inline(always)]
fn on_fork<const D: bool>(ctx: &BtfTracePointContext) -> i32 {
    let parent: *const u8 = ctx.arg(0);
    let child: *const u8 = ctx.arg(1);
    let (child_pid, child_tgid) =
        unsafe { (load::<D, u32>(child, off!(task_pid)), tgid_of::<D>(child)) };
    // Threads share their process's identity; only new processes matter.
    if child_pid != child_tgid {
        return 0;
    }
    let parent_tgid = unsafe { tgid_of::<D>(parent) };
    inherit_quarantine(parent, parent_tgid, child, child_tgid);
    let Some(mut entry) = EVENTS.reserve::<ForkEvent>(0) else {
        bump(&DROPS, KIND_FORK);
        return 0;
    };
    let ev = unsafe { &mut *entry.as_mut_ptr() };
    ev.hdr = header(KIND_FORK);
    unsafe {
        ev.parent_tgid = parent_tgid;
        ev.child_tgid = child_tgid;
        let parent_leader = load_ptr::<D>(parent, off!(task_group_leader));
        ev.parent_start_boottime_ns = load::<D, u64>(parent_leader, off!(task_start_boottime));
        ev.child_start_boottime_ns = load::<D, u64>(child, off!(task_start_boottime));
        ev.cgroup_id = bpf_get_current_cgroup_id();
    }
    crate::submit(entry);
    bump(&SENT, KIND_FORK);
    0
}

/// The last thread of a quarantined process exits: its entry goes with it,
/// whether or not the agent later reads the exit record.
#[inline(always)]
fn release_quarantine(tgid: u32) {
    // Whoever the entry was made for, the pid is this process's until it is
    // gone, so any entry under it is over.
    if any_quarantine() && unsafe { QUARANTINE.get(tgid) }.is_some() {
        let _ = QUARANTINE.remove(tgid);
    }
}

/// A child of a quarantined process is quarantined before it first runs (the
/// fork tracepoint fires before the child is woken), so no child forked after
/// the decision escapes it, whatever the agent's lag. Rare: helper reads.
#[inline(always)]
fn inherit_quarantine(parent: *const u8, parent_tgid: u32, child: *const u8, child_tgid: u32) {
    if !quarantined(parent_tgid, || unsafe { process_start(parent) }) {
        return;
    }
    let entry = QuarantineEntry {
        start_boottime_ns: unsafe { read::<u64>(child, off!(task_start_boottime)) },
        granularity_ns: 1,
    };
    let _ = QUARANTINE.insert(child_tgid, entry, 0);
}

// sched_process_exit(struct task_struct *p[, bool group_dead])
crate::both_loads!(
    "sched_process_exit",
    sched_process_exit,
    sched_process_exit_probe,
    on_exit
);

#[inline(always)]
fn on_exit<const D: bool>(ctx: &BtfTracePointContext) -> i32 {
    let task: *const u8 = ctx.arg(0);
    // signal->live reaches zero when the last thread of the group exits.
    let live = unsafe {
        let signal = load_ptr::<D>(task, off!(task_signal));
        load::<D, i32>(signal, off!(signal_live))
    };
    if live != 0 {
        return 0;
    }
    let tgid = unsafe { tgid_of::<D>(task) };
    release_quarantine(tgid);
    let Some(mut entry) = EVENTS.reserve::<ExitEvent>(0) else {
        bump(&DROPS, KIND_EXIT);
        return 0;
    };
    let ev = unsafe { &mut *entry.as_mut_ptr() };
    ev.hdr = header(KIND_EXIT);
    unsafe {
        ev.pid = load::<D, u32>(task, off!(task_pid));
        ev.tgid = tgid;
        let leader = load_ptr::<D>(task, off!(task_group_leader));
        ev.start_boottime_ns = load::<D, u64>(leader, off!(task_start_boottime));
        ev.exit_code = load::<D, u32>(task, off!(task_exit_code));
    }
    ev._pad = 0;
    crate::submit(entry);
    bump(&SENT, KIND_EXIT);
    0
}
