//! File-open probes: the exit tracepoints of openat, openat2, open and creat.
//!
//! Every successful open pays for a few kernel reads and map lookups; only
//! opens of watched files (by inode, by their directory's inode, or by
//! basename) produce a record. The record carries the opened file's identity
//! from its `struct file` and its path from a walk of the dentry chain (so
//! `..`, relative paths, dirfds and symlinks are already resolved). Only
//! regular files are reported: a FIFO or device named like a secret costs no
//! record, and gives the agent nothing to open that could block it.

use aya_ebpf::{
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_pid_tgid, bpf_get_current_task,
        bpf_get_current_task_btf, bpf_get_current_uid_gid, bpf_probe_read_kernel_str_bytes,
        bpf_probe_read_user_str_bytes, generated,
    },
    macros::{map, tracepoint},
    maps::{Array, HashMap, LruHashMap},
    programs::TracePointContext,
};
use proctor_common::{
    name_prefilter_bit, read_prefilter_bit, AllowKey, FileOpenEvent, FileOpenHead, InodeKey,
    ReadKey, ReadSeen, COMPONENT_LEN, FMODE_READ, FMODE_WRITE, KIND_FILE_ACCESS, KIND_FILE_OPEN,
    LSM_DENIED_SLOT, MATCH_DIR, MATCH_INODE, MATCH_NAME, NAME_KEY_LEN, NAME_NEEDS_ANCHOR,
    NAME_PREFILTER_WORDS, OPEN_FLAG_DENIED, OPEN_FLAG_KILLED, OPEN_FLAG_PATH_TRUNCATED,
    OPEN_SYSCALL_CREAT, OPEN_SYSCALL_IO_URING, OPEN_SYSCALL_OPEN, OPEN_SYSCALL_OPENAT,
    OPEN_SYSCALL_OPENAT2, READ_PREFILTER_WORDS, S_IFMT, S_IFREG,
};

use crate::{bump, off, read, read_ptr, DROPS, EVENTS, SENT};

/// Watched files by (dev, inode): catalogued secrets found by the agent.
#[map]
pub static WATCHED_INODES: HashMap<InodeKey, u32> = HashMap::with_max_entries(65536, 0);

/// Directories whose new entries are reported (e.g. ~/.aws, ~/.ssh).
#[map]
pub static WATCHED_DIRS: HashMap<InodeKey, u32> = HashMap::with_max_entries(16384, 0);

/// Secret basenames (zero-padded), for files that appear anywhere.
#[map]
pub static WATCHED_NAMES: HashMap<[u8; NAME_KEY_LEN], u32> = HashMap::with_max_entries(1024, 0);

/// Directory names that anchor a generic basename (`config` only counts in
/// `.kube`, `.aws`, ...): a name whose WATCHED_NAMES value is
/// `NAME_NEEDS_ANCHOR` is reported only when its parent or grandparent
/// directory has one of these names.
#[map]
pub static WATCHED_PARENTS: HashMap<[u8; NAME_KEY_LEN], u32> = HashMap::with_max_entries(1024, 0);

/// Secrets whose reads policy forbids (`enforce: kill`), by inode -> rule.
#[map]
pub static DENY_INODES: HashMap<InodeKey, u32> = HashMap::with_max_entries(16384, 0);

/// Executables a kill rule allows, by (rule, executable inode).
#[map]
pub static ALLOWED_READERS: HashMap<AllowKey, u32> = HashMap::with_max_entries(16384, 0);

/// Accesses already reported per (process image, file, mode), with the
/// repeats suppressed since: a process re-reading a secret costs a lookup,
/// not a record. LRU: an evicted entry only means one more record.
#[map]
pub static ACCESS_SEEN: LruHashMap<ReadKey, ReadSeen> = LruHashMap::with_max_entries(65536, 0);

/// Bit n set: some watched basename is n bytes long. Lets the common open
/// skip reading its name at all.
#[map]
pub static NAME_LENGTHS: Array<u64> = Array::with_max_entries(1, 0);

/// Bit `read_prefilter_bit(ino)` set: some watched inode or watched
/// directory may have this number. Set by the agent before the entry it
/// filters; never cleared (a stale bit only costs a hash lookup). The
/// verifier inlines the array lookup: an unwatched read or open pays a load
/// and a bit test, not a hash of its key.
#[map]
pub static READ_PREFILTER: Array<u64> = Array::with_max_entries(READ_PREFILTER_WORDS, 0);

/// Bit `name_prefilter_bit(prefix, len)` set: some watched basename may
/// start with these bytes and have this length. Filled like READ_PREFILTER.
#[map]
pub static NAME_PREFILTER: Array<u64> = Array::with_max_entries(NAME_PREFILTER_WORDS, 0);

/// Whether `bit` is set in `map` (an inlined array lookup).
#[inline(always)]
fn bit_set(map: &Array<u64>, bit: u32) -> bool {
    match map.get(bit >> 6) {
        Some(word) => *word & (1u64 << (bit & 63)) != 0,
        None => false,
    }
}

/// False when no watched file or directory has inode number `ino`.
#[inline(always)]
pub(crate) fn may_be_watched(ino: u64) -> bool {
    bit_set(&READ_PREFILTER, read_prefilter_bit(ino))
}

#[tracepoint(category = "syscalls", name = "sys_exit_openat")]
pub fn sys_exit_openat(ctx: TracePointContext) -> u32 {
    on_open_exit(&ctx, OPEN_SYSCALL_OPENAT);
    0
}

#[tracepoint(category = "syscalls", name = "sys_exit_openat2")]
pub fn sys_exit_openat2(ctx: TracePointContext) -> u32 {
    on_open_exit(&ctx, OPEN_SYSCALL_OPENAT2);
    0
}

#[tracepoint(category = "syscalls", name = "sys_exit_open")]
pub fn sys_exit_open(ctx: TracePointContext) -> u32 {
    on_open_exit(&ctx, OPEN_SYSCALL_OPEN);
    0
}

#[tracepoint(category = "syscalls", name = "sys_exit_creat")]
pub fn sys_exit_creat(ctx: TracePointContext) -> u32 {
    on_open_exit(&ctx, OPEN_SYSCALL_CREAT);
    0
}

/// `struct file *` behind `fd` in the current task's fd table.
#[inline(always)]
pub(crate) unsafe fn file_of_fd(task: *const u8, fd: u64) -> *const u8 {
    unsafe {
        let files = read_ptr(task, off!(task_files));
        let fdt = read_ptr(files, off!(files_fdt));
        let max = read::<u32>(fdt, off!(fdt_max_fds)) as u64;
        if fd >= max {
            return core::ptr::null();
        }
        let fds = read_ptr(fdt, off!(fdt_fd));
        read_ptr(fds, (fd as usize) * 8)
    }
}

#[inline(always)]
pub(crate) fn key(dev: u32, ino: u64) -> InodeKey {
    InodeKey { dev, _pad: 0, ino }
}

#[inline(always)]
fn on_open_exit(ctx: &TracePointContext, syscall: u32) {
    // sys_exit_* layout: 8 bytes of common fields, __syscall_nr (+pad), long ret.
    let ret: i64 = unsafe { ctx.read_at(16) }.unwrap_or(-1);
    if ret < 0 {
        return;
    }
    on_opened(ret, syscall);
}

/// `fd` was just opened by the current process (by `syscall`): reported
/// when the file is watched. Also the io_uring completion path.
#[inline(always)]
pub(crate) fn on_opened(ret: i64, syscall: u32) {
    if current_is_agent() {
        return;
    }
    let task = unsafe { bpf_get_current_task() } as *const u8;
    let file = unsafe { file_of_fd(task, ret as u64) };
    if file.is_null() {
        return;
    }
    let mut opened = unsafe { Opened::of(file) };
    let Some((matched, slot)) = (unsafe { watched(&mut opened) }) else {
        return;
    };
    let (dev, ino) = (opened.dev, opened.ino);
    opened.f_mode = unsafe { read::<u32>(file, off!(file_f_mode)) };
    let killed = opened.f_mode & FMODE_READ != 0 && unsafe { enforce_kill(task, dev, ino) };
    // A kill is reported every time; only harmless repeats are folded.
    let (flags, repeats) = if killed {
        (OPEN_FLAG_KILLED, 0)
    } else {
        match unsafe { first_in_window(task, dev, ino, opened.f_mode) } {
            Some(n) => (0, n),
            None => return,
        }
    };
    let access = Access {
        matched,
        slot,
        flags,
        fd: ret as i32,
        syscall,
        repeats,
    };
    unsafe { emit_open(&opened, &access) };
}

/// Whether `o` passes the kernel filter: watched by inode, by basename, or
/// by its directory's inode, and a regular file. `(MATCH_*, slot)`; `o.dev`
/// is loaded when it may be.
#[inline(always)]
unsafe fn watched(o: &mut Opened) -> Option<(u32, u32)> {
    let (ino, dentry) = (o.ino, o.dentry);
    let by_inode = if may_be_watched(ino) {
        unsafe { o.load_dev() };
        unsafe { WATCHED_INODES.get(key(o.dev, ino)) }.copied()
    } else {
        None
    };
    let found = if let Some(s) = by_inode {
        (MATCH_INODE, s)
    } else if let Some(s) = unsafe { name_match(dentry) } {
        unsafe { o.load_dev() };
        (MATCH_NAME, s)
    } else {
        let parent_ino = unsafe {
            let parent = read_ptr(dentry, off!(dentry_parent));
            let pinode = read_ptr(parent, off!(dentry_inode));
            read::<u64>(pinode, off!(inode_ino))
        };
        if !may_be_watched(parent_ino) {
            return None;
        }
        unsafe { o.load_dev() };
        (MATCH_DIR, *unsafe {
            WATCHED_DIRS.get(key(o.dev, parent_ino))
        }?)
    };
    // Checked on a match only: the common unwatched open pays nothing for it.
    if !unsafe { o.is_regular() } {
        return None;
    }
    Some(found)
}

/// Repeat suppression: `Some(repeats folded since the last record)` when
/// this access of (`dev`, `ino`) by the current process image opens a new
/// window and must be reported; `None` when it is a repeat inside the
/// window (counted, not reported).
#[inline(always)]
pub(crate) unsafe fn first_in_window(
    task: *const u8,
    dev: u32,
    ino: u64,
    mode: u32,
) -> Option<u32> {
    let window =
        unsafe { core::ptr::read_volatile(core::ptr::addr_of!(crate::READ_REPEAT_WINDOW_NS)) };
    if window == 0 {
        return Some(0);
    }
    let exe_ino = unsafe {
        let mm = read_ptr(task, off!(task_mm));
        let exe_file = read_ptr(mm, off!(mm_exe_file));
        let inode = read_ptr(exe_file, off!(file_inode));
        read::<u64>(inode, off!(inode_ino))
    };
    let k = ReadKey {
        tgid: (bpf_get_current_pid_tgid() >> 32) as u32,
        dev,
        ino,
        start_ns: unsafe { read::<u64>(task, off!(task_start_boottime)) },
        exe_ino,
        mode: mode & (FMODE_READ | FMODE_WRITE),
        _pad: 0,
    };
    let now = unsafe { aya_ebpf::helpers::generated::bpf_ktime_get_boot_ns() };
    match ACCESS_SEEN.get_ptr_mut(k) {
        Some(seen) => {
            let seen = unsafe { &mut *seen };
            if now.wrapping_sub(seen.window_start_ns) < window {
                // Threads of one process reading at once may lose an
                // increment here (the BPF target has no atomics in core):
                // the count is a lower bound, never a false report.
                seen.suppressed += 1;
                return None;
            }
            seen.window_start_ns = now;
            let n = core::mem::take(&mut seen.suppressed);
            Some(n.min(u32::MAX as u64) as u32)
        }
        None => {
            let seen = ReadSeen {
                window_start_ns: now,
                suppressed: 0,
            };
            let _ = ACCESS_SEEN.insert(k, seen, 0);
            Some(0)
        }
    }
}

/// The file an open produced (or, in the LSM hook, is about to produce).
/// From the page-cache hooks there is an inode but no file: `file` and
/// `dentry` are null.
pub(crate) struct Opened {
    pub(crate) file: *const u8,
    pub(crate) inode: *const u8,
    pub(crate) dentry: *const u8,
    pub(crate) dev: u32,
    pub(crate) ino: u64,
    pub(crate) f_mode: u32,
}

impl Opened {
    /// Inode and dentry of `file`; the device and `f_mode` are left for
    /// the caller ([`Self::load_dev`]): the common, unwatched open needs
    /// neither.
    #[inline(always)]
    unsafe fn of(file: *const u8) -> Opened {
        unsafe {
            let inode = read_ptr(file, off!(file_inode));
            Opened {
                file,
                inode,
                dentry: read_ptr(file, off!(file_dentry)),
                dev: 0,
                ino: read::<u64>(inode, off!(inode_ino)),
                f_mode: 0,
            }
        }
    }

    /// Reads the device of the inode's filesystem into `dev`.
    #[inline(always)]
    unsafe fn load_dev(&mut self) {
        unsafe {
            let sb = read_ptr(self.inode, off!(inode_sb));
            self.dev = read::<u32>(sb, off!(sb_dev));
        }
    }

    /// Whether the inode is a regular file (not a FIFO, socket, device or directory).
    #[inline(always)]
    pub(crate) unsafe fn is_regular(&self) -> bool {
        let mode = unsafe { read::<u16>(self.inode, off!(inode_mode)) };
        mode & S_IFMT == S_IFREG
    }
}

/// The agent's own opens of secrets (fingerprinting, discovery) are neither
/// reported nor refused.
#[inline(always)]
pub(crate) fn current_is_agent() -> bool {
    let agent = unsafe { core::ptr::read_volatile(core::ptr::addr_of!(crate::AGENT_TGID)) };
    (bpf_get_current_pid_tgid() >> 32) as u32 == agent
}

/// One file-open record for userspace. `syscall` 0: no syscall arguments to
/// read (the LSM hook), the path comes from the dentry walk alone. Without
/// a file (the page-cache hooks) there is no path at all: the record is the
/// head alone (`KIND_FILE_ACCESS`), and the agent names the file from its
/// watch table.
#[inline(always)]
pub(crate) unsafe fn emit_open(o: &Opened, access: &Access) {
    // The head alone is about a fifteenth of the ring buffer space of a
    // full record (the page-cache hooks report every read this way).
    if o.file.is_null() {
        let Some(mut entry) = EVENTS.reserve::<FileOpenHead>(0) else {
            bump(&DROPS, KIND_FILE_OPEN);
            return;
        };
        let h = unsafe { &mut *entry.as_mut_ptr() };
        unsafe { fill_head(h, KIND_FILE_ACCESS, o, access) };
        h.f_flags = 0;
        h.dfd = -100;
        h.depth = 0;
        h.flags |= OPEN_FLAG_PATH_TRUNCATED;
        crate::submit(entry);
        bump(&SENT, KIND_FILE_OPEN);
        return;
    }
    let Some(mut entry) = EVENTS.reserve::<FileOpenEvent>(0) else {
        bump(&DROPS, KIND_FILE_OPEN);
        return;
    };
    let ev = unsafe { &mut *entry.as_mut_ptr() };
    unsafe {
        fill_head(&mut ev.head, KIND_FILE_OPEN, o, access);
        ev.head.f_flags = read::<u32>(o.file, off!(file_f_flags));
        if access.syscall != 0 && access.syscall != OPEN_SYSCALL_IO_URING {
            fill_args(ev, access.syscall);
        } else {
            ev.head.dfd = -100;
            ev.filename[0] = 0;
        }
        walk_path(ev, o.file, o.dentry);
    }
    crate::submit(entry);
    bump(&SENT, KIND_FILE_OPEN);
}

/// What [`emit_open`]'s caller says about the access.
pub(crate) struct Access {
    pub matched: u32,
    pub slot: u32,
    pub flags: u32,
    pub fd: i32,
    pub syscall: u32,
    pub repeats: u32,
}

/// The fields every file-access record has, from the current task and `o`.
#[inline(always)]
unsafe fn fill_head(ev: &mut FileOpenHead, kind: u32, o: &Opened, a: &Access) {
    ev.hdr = crate::process::header(kind);
    let pid_tgid = bpf_get_current_pid_tgid();
    let uid_gid = bpf_get_current_uid_gid();
    ev.pid = pid_tgid as u32;
    ev.tgid = (pid_tgid >> 32) as u32;
    ev.uid = uid_gid as u32;
    ev.gid = (uid_gid >> 32) as u32;
    ev.cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    ev.ino = o.ino;
    ev.dev = o.dev;
    ev.fd = a.fd;
    ev.syscall = a.syscall;
    ev.matched = a.matched;
    ev.slot = a.slot;
    ev.flags = a.flags;
    ev.f_mode = o.f_mode;
    ev.repeats = a.repeats;
    // The version the agent's fingerprint cache keys on: no stat per event.
    unsafe {
        ev.size = read::<i64>(o.inode, off!(inode_size));
        ev.mtime_sec = read::<i64>(o.inode, off!(inode_mtime_sec));
        ev.ctime_sec = read::<i64>(o.inode, off!(inode_ctime_sec));
        // tv_nsec (a long) or the split u32 field: the low half either way.
        ev.mtime_nsec = read::<u32>(o.inode, off!(inode_mtime_nsec));
        ev.ctime_nsec = read::<u32>(o.inode, off!(inode_ctime_nsec));
    }
}

/// SIGKILL for the opener when a kill rule covers this secret and the
/// opener's executable is not one the rule allows. The signal is delivered
/// before the open returns to user space: no read() of the secret happens.
#[inline(always)]
pub(crate) unsafe fn enforce_kill(task: *const u8, dev: u32, ino: u64) -> bool {
    let Some(rule) = (unsafe { DENY_INODES.get(key(dev, ino)) }).copied() else {
        return false;
    };
    if unsafe { reader_allowed(task, rule) } {
        return false;
    }
    unsafe { generated::bpf_send_signal(9) == 0 }
}

/// Whether the current task's executable (by inode) is an owner under `rule`.
#[inline(always)]
unsafe fn reader_allowed(task: *const u8, rule: u32) -> bool {
    let exe = unsafe {
        let mm = read_ptr(task, off!(task_mm));
        let exe_file = read_ptr(mm, off!(mm_exe_file));
        let inode = read_ptr(exe_file, off!(file_inode));
        let sb = read_ptr(inode, off!(inode_sb));
        key(
            read::<u32>(sb, off!(sb_dev)),
            read::<u64>(inode, off!(inode_ino)),
        )
    };
    let allow = AllowKey { rule, _pad: 0, exe };
    unsafe { ALLOWED_READERS.get(allow) }.is_some()
}

/// The basename of `dentry` when it is a watched name.
#[inline(always)]
unsafe fn name_match(dentry: *const u8) -> Option<u32> {
    let hash_len = unsafe { read::<u64>(dentry, off!(dentry_hash_len)) };
    let len = (hash_len >> 32) as u32;
    if len == 0 || len as usize >= NAME_KEY_LEN {
        return None;
    }
    let lengths = NAME_LENGTHS.get(0).copied().unwrap_or(0);
    if lengths & (1u64 << len) == 0 {
        return None;
    }
    let ptr = unsafe { read_ptr(dentry, off!(dentry_name)) };
    // Eight bytes are always there to read: a name shorter than that lives
    // in the dentry's inline array. The bytes past its end are not the name.
    let mut prefix = unsafe { read::<u64>(ptr, 0) };
    if len < 8 {
        prefix &= (1u64 << (len * 8)) - 1;
    }
    if !bit_set(&NAME_PREFILTER, name_prefilter_bit(prefix, len)) {
        return None;
    }
    let mut name = [0u8; NAME_KEY_LEN];
    unsafe { bpf_probe_read_kernel_str_bytes(ptr, &mut name).ok()? };
    // The helper copies up to and including the NUL and leaves the rest of the
    // zeroed buffer alone: the key is exact.
    let value = unsafe { WATCHED_NAMES.get(name) }.copied()?;
    if value & NAME_NEEDS_ANCHOR == 0 {
        return Some(value);
    }
    let parent = unsafe { read_ptr(dentry, off!(dentry_parent)) };
    if unsafe { anchored(parent) } {
        return Some(value);
    }
    let grandparent = unsafe { read_ptr(parent, off!(dentry_parent)) };
    if unsafe { anchored(grandparent) } {
        return Some(value);
    }
    None
}

/// Whether `dir`'s name is in WATCHED_PARENTS.
#[inline(always)]
unsafe fn anchored(dir: *const u8) -> bool {
    let mut name = [0u8; NAME_KEY_LEN];
    unsafe {
        let ptr = read_ptr(dir, off!(dentry_name));
        if bpf_probe_read_kernel_str_bytes(ptr, &mut name).is_err() {
            return false;
        }
        WATCHED_PARENTS.get(name).is_some()
    }
}

/// dfd and filename from the syscall's saved user registers.
#[inline(always)]
unsafe fn fill_args(ev: &mut FileOpenEvent, syscall: u32) {
    // Kernels without `bpf_task_pt_regs` (before 5.15) leave dfd and the
    // path as typed unknown (the agent says so at start). The helper wants a
    // BTF task pointer (`bpf_get_current_task_btf`, 5.11+: behind the same
    // read-only flag, which the verifier prunes on).
    if unsafe { core::ptr::read_volatile(core::ptr::addr_of!(crate::HAS_TASK_PT_REGS)) } == 0 {
        ev.head.dfd = -100;
        ev.filename[0] = 0;
        return;
    }
    let task = unsafe { bpf_get_current_task_btf() } as *const u8;
    let regs = unsafe { generated::bpf_task_pt_regs(task as *mut _) } as *const u8;
    let (dfd, name_ptr) = unsafe {
        match syscall {
            OPEN_SYSCALL_OPENAT | OPEN_SYSCALL_OPENAT2 => (
                read::<u64>(regs, off!(regs_arg0)) as i32,
                read::<u64>(regs, off!(regs_arg1)),
            ),
            // open(2) and creat(2) resolve relative paths against the cwd.
            _ => (-100, read::<u64>(regs, off!(regs_arg0))),
        }
    };
    ev.head.dfd = dfd;
    if unsafe { bpf_probe_read_user_str_bytes(name_ptr as *const u8, &mut ev.filename) }.is_err() {
        ev.filename[0] = 0;
    }
}

/// Cursor of the dentry walk: where it stands and whether it reached the root.
struct Walk {
    dentry: *const u8,
    vfsmnt: *const u8,
    mnt: *const u8,
    done: bool,
}

impl Walk {
    /// Climbs out of mount roots to the mount points they cover (stacked
    /// mounts: a few times). Returns the parent of the resulting dentry, or
    /// marks the walk done at the root of the caller's mount tree.
    #[inline(always)]
    unsafe fn settle(&mut self) -> *const u8 {
        for _ in 0..3 {
            let root = unsafe { read_ptr(self.vfsmnt, off!(vfsmount_root)) };
            if self.dentry != root {
                break;
            }
            let parent_mnt = unsafe { read_ptr(self.mnt, off!(mount_parent)) };
            if parent_mnt == self.mnt || parent_mnt.is_null() {
                self.done = true;
                return self.dentry;
            }
            self.dentry = unsafe { read_ptr(self.mnt, off!(mount_mountpoint)) };
            self.mnt = parent_mnt;
            self.vfsmnt = unsafe { parent_mnt.add(off!(mount_mnt)) };
        }
        let parent = unsafe { read_ptr(self.dentry, off!(dentry_parent)) };
        if parent == self.dentry {
            self.done = true;
        }
        parent
    }
}

/// One step of the walk into component slot `$i` (a constant, so the
/// verifier sees fixed offsets and prunes states instead of exploding).
macro_rules! walk_step {
    ($ev:ident, $w:ident, $i:literal) => {
        if !$w.done {
            let parent = unsafe { $w.settle() };
            if !$w.done {
                unsafe {
                    let name = read_ptr($w.dentry, off!(dentry_name));
                    if bpf_probe_read_kernel_str_bytes(
                        name,
                        &mut $ev.components[$i][..COMPONENT_LEN],
                    )
                    .is_err()
                    {
                        $ev.components[$i][0] = 0;
                    }
                }
                $ev.head.depth = $i + 1;
                $w.dentry = parent;
            }
        }
    };
}

/// Walks from the opened dentry to the root of the caller's mount tree,
/// crossing mount points, recording names leaf first.
#[inline(always)]
unsafe fn walk_path(ev: &mut FileOpenEvent, file: *const u8, dentry: *const u8) {
    let vfsmnt = unsafe { read_ptr(file, off!(file_vfsmount)) };
    let mut w = Walk {
        dentry,
        vfsmnt,
        mnt: unsafe { vfsmnt.sub(off!(mount_mnt)) },
        done: false,
    };
    ev.head.depth = 0;
    walk_step!(ev, w, 0);
    walk_step!(ev, w, 1);
    walk_step!(ev, w, 2);
    walk_step!(ev, w, 3);
    walk_step!(ev, w, 4);
    walk_step!(ev, w, 5);
    walk_step!(ev, w, 6);
    walk_step!(ev, w, 7);
    walk_step!(ev, w, 8);
    walk_step!(ev, w, 9);
    walk_step!(ev, w, 10);
    walk_step!(ev, w, 11);
    walk_step!(ev, w, 12);
    walk_step!(ev, w, 13);
    walk_step!(ev, w, 14);
    walk_step!(ev, w, 15);
    walk_step!(ev, w, 16);
    walk_step!(ev, w, 17);
    walk_step!(ev, w, 18);
    walk_step!(ev, w, 19);
    walk_step!(ev, w, 20);
    walk_step!(ev, w, 21);
    walk_step!(ev, w, 22);
    walk_step!(ev, w, 23);
    if !w.done {
        // Is there anything left above? Only then is the path truncated.
        unsafe { w.settle() };
        if !w.done {
            ev.head.flags |= OPEN_FLAG_PATH_TRUNCATED;
        }
    }
}

/// Where the kernel allows BPF LSM programs and kill rules exist, but
/// another hook set reports opens: refuse the open itself (EPERM) for a
/// forbidden reader, instead of killing it after the fact. Probed and
/// attached at start-up only when the kernel accepts it; the kill from the
/// other set's hooks stays as the fallback (and sees no successful open or
/// read when this one denied, so the denial is reported from here).
#[aya_ebpf::macros::lsm(hook = "file_open")]
pub fn deny_file_open(ctx: aya_ebpf::programs::LsmContext) -> i32 {
    on_lsm_file_open::<false>(&ctx)
}

/// The LSM hook set: every open of a watched file reported from
/// `security_file_open` (no syscall tracing at all), forbidden ones refused.
#[aya_ebpf::macros::lsm(hook = "file_open")]
pub fn file_open_lsm(ctx: aya_ebpf::programs::LsmContext) -> i32 {
    on_lsm_file_open::<true>(&ctx)
}

/// `REPORT`: also report the watched opens that are allowed.
#[inline(always)]
fn on_lsm_file_open<const REPORT: bool>(ctx: &aya_ebpf::programs::LsmContext) -> i32 {
    if current_is_agent() {
        return 0;
    }
    let file: *const u8 = ctx.arg(0);
    let f_mode = unsafe { read::<u32>(file, off!(file_f_mode)) };
    if !REPORT && f_mode & FMODE_READ == 0 {
        return 0;
    }
    let mut opened = unsafe { Opened::of(file) };
    opened.f_mode = f_mode;
    unsafe { opened.load_dev() };
    let (dev, ino) = (opened.dev, opened.ino);
    let task = unsafe { bpf_get_current_task() } as *const u8;
    if f_mode & FMODE_READ != 0 {
        if let Some(rule) = (unsafe { DENY_INODES.get(key(dev, ino)) }).copied() {
            // As in the tracepoint: only regular files are secrets; a denied
            // inode number reused by a FIFO is not refused.
            if unsafe { opened.is_regular() } && !unsafe { reader_allowed(task, rule) } {
                bump(&SENT, LSM_DENIED_SLOT);
                // Denied secrets are watched ones: the agent knows them by slot.
                if let Some(slot) = unsafe { WATCHED_INODES.get(key(dev, ino)) }.copied() {
                    unsafe {
                        emit_open(
                            &opened,
                            &Access {
                                matched: MATCH_INODE,
                                slot,
                                flags: OPEN_FLAG_DENIED,
                                fd: -1,
                                syscall: 0,
                                repeats: 0,
                            },
                        )
                    };
                }
                return -1; // -EPERM
            }
        }
    }
    if REPORT {
        if let Some((matched, slot)) = unsafe { watched(&mut opened) } {
            if let Some(repeats) = unsafe { first_in_window(task, dev, ino, f_mode) } {
                unsafe {
                    emit_open(
                        &opened,
                        &Access {
                            matched,
                            slot,
                            flags: 0,
                            fd: -1,
                            syscall: 0,
                            repeats,
                        },
                    )
                };
            }
        }
    }
    0
}
