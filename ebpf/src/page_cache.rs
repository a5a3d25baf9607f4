//! File-access probes without syscall tracing: page-cache reads and mmap faults of watched inodes.
//!
//! `mm_filemap_get_pages` fires for every buffered read that goes through the
//! page cache (read, pread, readv, splice, sendfile, io_uring reads);
//! `mm_filemap_fault` and `mm_filemap_map_pages` for mmap'd pages. None of
//! them puts tasks on the syscall slow path, but the read hook fires on
//! every cached read of every file, so an unwatched read must cost almost
//! nothing: two kernel reads (mapping->host->i_ino) and one bit of an array
//! map the verifier inlines, before any hash lookup. The file is known by
//! inode only; the agent names it from its watch table.

use aya_ebpf::{helpers::bpf_get_current_task_btf, programs::BtfTracePointContext};
use proctor_common::{FMODE_READ, MATCH_INODE, OPEN_FLAG_KILLED, OPEN_SYSCALL_PAGE_CACHE};

use crate::{
    file_open::{
        current_is_agent, emit_open, enforce_kill, first_in_window, key, may_be_watched, Access,
        Opened, WATCHED_INODES,
    },
    load, load_ptr, off,
};

crate::both_loads!(
    "mm_filemap_get_pages",
    mm_filemap_get_pages,
    mm_filemap_get_pages_probe,
    on_page_cache
);
crate::both_loads!(
    "mm_filemap_fault",
    mm_filemap_fault,
    mm_filemap_fault_probe,
    on_page_cache
);
crate::both_loads!(
    "mm_filemap_map_pages",
    mm_filemap_map_pages,
    mm_filemap_map_pages_probe,
    on_page_cache
);

/// `mapping` (argument 0 of all three tracepoints) was read by the current
/// task: reported when its inode is watched, killed when a kill rule forbids it.
#[inline(always)]
fn on_page_cache<const DIRECT: bool>(ctx: &BtfTracePointContext) -> i32 {
    let mapping: *const u8 = ctx.arg(0);
    let inode = unsafe { load::<DIRECT, u64>(mapping, off!(mapping_host)) } as *const u8;
    let ino = unsafe { load::<DIRECT, u64>(inode, off!(inode_ino)) };
    if !may_be_watched(ino) || current_is_agent() {
        return 0;
    }
    let dev = unsafe {
        let sb = load_ptr::<DIRECT>(inode, off!(inode_sb));
        load::<DIRECT, u32>(sb, off!(sb_dev))
    };
    let Some(slot) = (unsafe { WATCHED_INODES.get(key(dev, ino)) }).copied() else {
        return 0;
    };
    let opened = Opened {
        file: core::ptr::null(),
        inode,
        dentry: core::ptr::null(),
        dev,
        ino,
        f_mode: FMODE_READ,
    };
    if !unsafe { opened.is_regular() } {
        return 0;
    }
    let task = unsafe { bpf_get_current_task_btf() } as *const u8;
    // Every forbidden read is killed, repeat or not: the signal is pending
    // before this read returns, so the process never runs again.
    if unsafe { enforce_kill(task, dev, ino) } {
        unsafe { emit_open(&opened, &read_access(slot, OPEN_FLAG_KILLED, 0)) };
        return 0;
    }
    if let Some(repeats) = unsafe { first_in_window(task, dev, ino, FMODE_READ) } {
        unsafe { emit_open(&opened, &read_access(slot, 0, repeats)) };
    }
    0
}

/// A read the page-cache hooks report: matched by inode, no fd, no syscall.
#[inline(always)]
fn read_access(slot: u32, flags: u32, repeats: u32) -> Access {
    Access {
        matched: MATCH_INODE,
        slot,
        flags,
        fd: -1,
        syscall: OPEN_SYSCALL_PAGE_CACHE,
        repeats,
    }
}
