//! Types shared by the eBPF programs and the userspace agent.
//!
//! Every record that crosses the ring buffer starts with an [`EventHeader`];
//! the `kind` field says which struct follows. Layouts are `repr(C)` and only
//! use fixed-size integers and byte arrays so both sides agree bit for bit.
#![no_std]

pub const COMM_LEN: usize = 16;
/// Bytes kept of a path handed to the kernel (execve filename, shebang interpreter).
pub const PATH_LEN: usize = 256;
/// Bytes kept of the NUL-separated argv block. Power of two: the eBPF side masks with it.
pub const ARGS_LEN: usize = 1024;
/// Bytes kept of the executed file's dentry name (memfd names live here).
pub const DNAME_LEN: usize = 64;

pub const KIND_EXEC: u32 = 1;
pub const KIND_FORK: u32 = 2;
pub const KIND_EXIT: u32 = 3;
pub const KIND_FILE_OPEN: u32 = 4;
pub const KIND_CONNECT: u32 = 5;
/// Slot of the SENT counters that counts connects suppressed as repeats.
pub const CONNECT_DEDUP_SLOT: u32 = 7;
/// An io_uring request of an opcode this process had not submitted before.
pub const KIND_IO_URING: u32 = 8;
/// Number of slots in the per-CPU counter arrays (indexed by kind).
pub const KIND_SLOTS: u32 = 11;

/// Path components kept by the in-kernel dentry walk, and bytes per component.
pub const PATH_COMPONENTS: usize = 24;
pub const COMPONENT_LEN: usize = 64;
/// Bytes of a basename key in `WATCHED_NAMES` (zero-padded).
pub const NAME_KEY_LEN: usize = 64;

/// WATCHED_NAMES value bit: the name counts only under an anchor directory.
pub const NAME_NEEDS_ANCHOR: u32 = 1;

/// Why the kernel emitted a file-open record.
pub const MATCH_INODE: u32 = 1;
pub const MATCH_DIR: u32 = 2;
pub const MATCH_NAME: u32 = 3;

/// The dentry walk hit `PATH_COMPONENTS` before the root.
pub const OPEN_FLAG_PATH_TRUNCATED: u32 = 1 << 0;
/// The opener was sent SIGKILL: policy forbids it this secret.
pub const OPEN_FLAG_KILLED: u32 = 1 << 1;
/// The LSM hook refused the open (EPERM): the opener got no file at all.
/// The record comes from `lsm/file_open`, so `fd` is -1 and `filename` empty.
pub const OPEN_FLAG_DENIED: u32 = 1 << 2;
/// Which syscall opened the file.
pub const OPEN_SYSCALL_OPENAT: u32 = 1;
pub const OPEN_SYSCALL_OPENAT2: u32 = 2;
pub const OPEN_SYSCALL_OPEN: u32 = 3;
pub const OPEN_SYSCALL_CREAT: u32 = 4;
/// `IORING_OP_OPENAT`/`IORING_OP_OPENAT2`, seen at completion: no syscall
/// arguments to read, the path comes from the dentry walk alone.
pub const OPEN_SYSCALL_IO_URING: u32 = 5;

/// `FMODE_READ` in `file->f_mode`: the open can read.
pub const FMODE_READ: u32 = 0x1;
/// The file-type bits of `inode.i_mode`, and their value for a regular file.
pub const S_IFMT: u16 = 0o170000;
pub const S_IFREG: u16 = 0o100000;
pub const FMODE_WRITE: u32 = 0x2;

/// Bytes of a Unix socket path kept (sun_path is 108).
pub const UNIX_PATH_LEN: usize = 108;

/// A connect(2) the process made, with its outcome. For non-blocking TCP
/// connects the record is sent when the handshake resolves.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ConnectEvent {
    pub hdr: EventHeader,
    pub pid: u32,
    pub tgid: u32,
    pub uid: u32,
    pub fd: i32,
    pub cgroup_id: u64,
    /// 0 on success, else -errno.
    pub result: i32,
    pub family: u16,
    /// Destination port, host byte order.
    pub port: u16,
    /// IPPROTO_* of the socket.
    pub protocol: u16,
    /// SOCK_* of the socket.
    pub sock_type: u16,
    /// 1 when the result came from the TCP state machine after EINPROGRESS.
    pub deferred: u32,
    /// IPv4 in the first 4 bytes, or IPv6.
    pub addr: [u8; 16],
    pub path: [u8; UNIX_PATH_LEN],
    /// Which hook saw it: one of the `CONNECT_ORIGIN_*` values.
    pub origin: u32,
}

/// connect(2), from the syscall tracepoints.
pub const CONNECT_ORIGIN_SYSCALL: u32 = 0;
/// A connect that did not come through connect(2) (io_uring
/// `IORING_OP_CONNECT`, in-kernel callers), from the cgroup connect4/6 hook.
/// `result` is 0 (attempted) or -EPERM (refused by block-egress).
pub const CONNECT_ORIGIN_SOCKET_HOOK: u32 = 1;
/// A datagram sent to an explicit address (`sendto`/`sendmsg` on an
/// unconnected UDP socket, io_uring included), from the cgroup sendmsg4/6 hook.
pub const CONNECT_ORIGIN_SENDMSG: u32 = 2;
/// A unix-socket stream (or seqpacket) connect, from `lsm/unix_stream_connect`.
pub const CONNECT_ORIGIN_LSM: u32 = 3;
/// A unix datagram connect or send to a bound peer, from `lsm/unix_may_send`.
pub const CONNECT_ORIGIN_LSM_SEND: u32 = 4;

/// Key of the per-process connect de-duplication map.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ConnectKey {
    pub tgid: u32,
    pub family: u16,
    pub port: u16,
    /// 1 when the connect succeeded or is in progress, 0 when it failed.
    pub ok: u32,
    /// IPPROTO_* of the socket: a UDP send and a TCP connect to the same
    /// address are different destinations.
    pub protocol: u32,
    pub addr: [u8; 16],
}

/// Key of the enforcement allow list: a rule and an executable allowed by it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct AllowKey {
    pub rule: u32,
    pub _pad: u32,
    pub exe: InodeKey,
}

/// Value of the block-egress quarantine map (keyed by tgid): which process
/// holding that tgid is quarantined. A pid reused by another process, or an
/// entry left behind by an exit the agent never saw, does not match the new
/// holder's start time and refuses nothing.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct QuarantineEntry {
    /// `task->start_boottime` of the process's group leader.
    pub start_boottime_ns: u64,
    /// Precision of `start_boottime_ns`: 1 when it came from the kernel, the
    /// clock tick when it came from `/proc/<pid>/stat` (processes that
    /// predate the agent). The kernel compares both values divided by it.
    pub granularity_ns: u64,
}

/// Slots of the `HOOK_FLAGS` array the agent sets at run time (never clears),
/// so that the hot hooks skip a hash lookup that cannot find anything.
/// Set before the first quarantine entry: until then no process is quarantined.
pub const HOOK_FLAG_QUARANTINE: u32 = 0;
/// Set before connect(2)'s tracepoints attach: until then no connect is
/// half-way through them, and the cgroup connect hook need not look.
pub const HOOK_FLAG_CONNECT_TRACEPOINTS: u32 = 1;
pub const HOOK_FLAG_SLOTS: u32 = 2;

/// Slot of the SENT counters that counts connects refused by block-egress.
pub const EGRESS_DENIED_SLOT: u32 = 6;
/// Slot of the SENT counters that counts opens refused by the LSM deny path.
pub const LSM_DENIED_SLOT: u32 = 0;

/// Key of the watched-inode and watched-directory maps.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct InodeKey {
    /// Kernel-internal dev_t of the superblock.
    pub dev: u32,
    pub _pad: u32,
    pub ino: u64,
}

/// A record kind: an access of a watched file known by its inode only (the
/// page-cache hooks), a [`FileOpenHead`] without the path parts: 128 bytes
/// where a [`FileOpenEvent`] takes about 2 KiB, so the ring buffer holds
/// about fifteen times as many reads before it drops one. No `comm`: the
/// agent names the process from its process table. Counted in the
/// file-open slots of the counters (it is outside [`KIND_SLOTS`]).
pub const KIND_FILE_ACCESS: u32 = 12;

/// Emitted from the open syscalls' exit tracepoints when the opened file is
/// watched (by inode, by its directory's inode, or by its basename): the
/// head, then the path as passed and as the kernel resolved it.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FileOpenEvent {
    pub head: FileOpenHead,
    /// The path argument as the process passed it.
    pub filename: [u8; PATH_LEN],
    /// Names from the opened dentry up to the root, leaf first.
    pub components: [[u8; COMPONENT_LEN]; PATH_COMPONENTS],
}

/// What every file-access record carries; alone, a [`KIND_FILE_ACCESS`] record.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FileOpenHead {
    pub hdr: EventHeader,
    pub pid: u32,
    pub tgid: u32,
    pub uid: u32,
    pub gid: u32,
    pub cgroup_id: u64,
    pub ino: u64,
    pub dev: u32,
    pub f_mode: u32,
    pub f_flags: u32,
    pub fd: i32,
    pub dfd: i32,
    pub syscall: u32,
    pub matched: u32,
    /// Value stored in the map that matched (a slot the agent assigned).
    pub slot: u32,
    /// Number of valid entries in `components` (leaf first).
    pub depth: u32,
    pub flags: u32,
    /// Accesses of the same file by the same process suppressed in the kernel
    /// since this process's previous record of it (see [`ReadKey`]).
    pub repeats: u32,
    pub _pad: u32,
    /// The inode's version as the kernel holds it (`i_size`, `i_mtime`,
    /// `i_ctime`): the agent re-reads a secret only when these changed.
    pub size: i64,
    pub mtime_sec: i64,
    pub ctime_sec: i64,
    pub mtime_nsec: u32,
    pub ctime_nsec: u32,
}

const _: () = assert!(core::mem::size_of::<FileOpenHead>() == 128);

/// argv did not fit in [`ARGS_LEN`] bytes.
pub const EXEC_FLAG_ARGS_TRUNCATED: u32 = 1 << 0;
/// The exec went through a `#!` interpreter (`interp` differs from `filename`).
pub const EXEC_FLAG_SCRIPT: u32 = 1 << 1;
/// The filename did not fit in [`PATH_LEN`] bytes.
pub const EXEC_FLAG_FILENAME_TRUNCATED: u32 = 1 << 2;
/// Reading argv from the new process image failed.
pub const EXEC_FLAG_ARGS_UNREADABLE: u32 = 1 << 3;

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct EventHeader {
    pub kind: u32,
    pub cpu: u32,
    /// `bpf_ktime_get_boot_ns()` when the probe ran.
    pub ktime_ns: u64,
}

/// Emitted from `tp_btf/sched_process_exec`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ExecEvent {
    pub hdr: EventHeader,
    pub pid: u32,
    pub tgid: u32,
    /// The pid the task had before exec (differs from `tgid` when a non-leader thread exec'd).
    pub old_pid: u32,
    /// Thread-group id of `real_parent`.
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    pub euid: u32,
    pub egid: u32,
    /// cgroup v2 id (`bpf_get_current_cgroup_id`).
    pub cgroup_id: u64,
    /// `task->start_boottime` of the process and of its parent (ns since boot).
    pub start_boottime_ns: u64,
    pub parent_start_boottime_ns: u64,
    /// Identity of the file the kernel is running (`bprm->file`).
    pub ino: u64,
    pub size: i64,
    pub mtime_sec: i64,
    pub ctime_sec: i64,
    pub s_magic: u64,
    /// Kernel-internal dev_t of the file's superblock (MAJOR << 20 | MINOR).
    pub dev: u32,
    pub nlink: u32,
    pub mtime_nsec: u32,
    pub ctime_nsec: u32,
    pub flags: u32,
    /// Length in bytes of the whole argv block in the new image (may exceed `ARGS_LEN`).
    pub args_len: u32,
    pub comm: [u8; COMM_LEN],
    pub dname: [u8; DNAME_LEN],
    /// `bprm->filename`: the path as passed to execve (the script for `#!` files).
    pub filename: [u8; PATH_LEN],
    /// `bprm->interp`: the interpreter path for scripts, else equal to `filename`.
    pub interp: [u8; PATH_LEN],
    pub args: [u8; ARGS_LEN],
}

/// Emitted from `tp_btf/sched_process_fork` for new processes (not threads).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ForkEvent {
    pub hdr: EventHeader,
    pub parent_tgid: u32,
    pub child_tgid: u32,
    pub parent_start_boottime_ns: u64,
    pub child_start_boottime_ns: u64,
    pub cgroup_id: u64,
}

/// Emitted from `tp_btf/sched_process_exit` when the last thread of a process exits.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExitEvent {
    pub hdr: EventHeader,
    pub pid: u32,
    pub tgid: u32,
    pub start_boottime_ns: u64,
    /// `task->exit_code` (wait status encoding).
    pub exit_code: u32,
    pub _pad: u32,
}

/// Kernel struct field offsets, resolved from the running kernel's BTF by the
/// agent and handed to the programs as a read-only global. A value of
/// [`OFFSET_MISSING`] means the field does not exist on this kernel.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Offsets {
    pub task_pid: u32,
    pub task_tgid: u32,
    pub task_real_parent: u32,
    pub task_start_boottime: u32,
    pub task_mm: u32,
    pub task_cred: u32,
    pub task_signal: u32,
    pub task_exit_code: u32,
    pub task_group_leader: u32,
    pub signal_live: u32,
    pub cred_uid: u32,
    pub cred_gid: u32,
    pub cred_euid: u32,
    pub cred_egid: u32,
    pub mm_arg_start: u32,
    pub mm_arg_end: u32,
    pub bprm_file: u32,
    pub bprm_filename: u32,
    pub bprm_interp: u32,
    pub file_inode: u32,
    pub file_dentry: u32,
    pub dentry_name: u32,
    pub inode_ino: u32,
    pub inode_sb: u32,
    pub inode_size: u32,
    /// `inode.i_mode` (u16: file type and permission bits).
    pub inode_mode: u32,
    pub inode_nlink: u32,
    pub inode_mtime_sec: u32,
    pub inode_mtime_nsec: u32,
    pub inode_ctime_sec: u32,
    pub inode_ctime_nsec: u32,
    /// 1 when the timestamps are `struct timespec64` (tv_sec s64, tv_nsec long),
    /// 0 when they are split `time64_t` / `u32` fields (6.7+).
    pub inode_time_is_timespec: u32,
    pub sb_dev: u32,
    pub sb_magic: u32,
    pub task_files: u32,
    pub files_fdt: u32,
    pub fdt_fd: u32,
    pub fdt_max_fds: u32,
    pub file_f_mode: u32,
    pub file_f_flags: u32,
    pub file_vfsmount: u32,
    pub dentry_parent: u32,
    pub dentry_inode: u32,
    /// `dentry.d_name.hash_len` (len in the high 32 bits).
    pub dentry_hash_len: u32,
    pub vfsmount_root: u32,
    /// Offset of the embedded `struct vfsmount mnt` inside `struct mount`.
    pub mount_mnt: u32,
    pub mount_parent: u32,
    pub mount_mountpoint: u32,
    /// Syscall argument registers in `struct pt_regs` (x86_64: di, si, dx).
    pub regs_arg0: u32,
    pub regs_arg1: u32,
    pub regs_arg2: u32,
    pub file_private_data: u32,
    pub socket_sk: u32,
    pub socket_type: u32,
    pub sock_protocol: u32,
    pub sock_err: u32,
    pub sock_state: u32,
    pub mm_exe_file: u32,
    /// `mm_struct.env_start` / `env_end`: the new image's environment block.
    pub mm_env_start: u32,
    pub mm_env_end: u32,
    /// `address_space.host`: the inode whose pages the page-cache hooks see.
    pub mapping_host: u32,
    /// `unix_sock.addr` (the bound `struct unix_address *`), and in it `len`
    /// (bytes of `name`, the `sockaddr_un`) and `name`: the peer path the
    /// unix-socket LSM hooks report.
    pub unix_sock_addr: u32,
    pub unix_address_len: u32,
    pub unix_address_name: u32,
    /// `sock.sk_type` (u16): `lsm/unix_stream_connect` gets socks, not sockets.
    pub sock_sk_type: u32,
}

pub const OFFSET_MISSING: u32 = u32::MAX;

impl Offsets {
    /// Every field unset; the value compiled into the eBPF object before the agent patches it.
    pub const UNSET: Self = Self {
        task_pid: OFFSET_MISSING,
        task_tgid: OFFSET_MISSING,
        task_real_parent: OFFSET_MISSING,
        task_start_boottime: OFFSET_MISSING,
        task_mm: OFFSET_MISSING,
        task_cred: OFFSET_MISSING,
        task_signal: OFFSET_MISSING,
        task_exit_code: OFFSET_MISSING,
        task_group_leader: OFFSET_MISSING,
        signal_live: OFFSET_MISSING,
        cred_uid: OFFSET_MISSING,
        cred_gid: OFFSET_MISSING,
        cred_euid: OFFSET_MISSING,
        cred_egid: OFFSET_MISSING,
        mm_arg_start: OFFSET_MISSING,
        mm_arg_end: OFFSET_MISSING,
        bprm_file: OFFSET_MISSING,
        bprm_filename: OFFSET_MISSING,
        bprm_interp: OFFSET_MISSING,
        file_inode: OFFSET_MISSING,
        file_dentry: OFFSET_MISSING,
        dentry_name: OFFSET_MISSING,
        inode_ino: OFFSET_MISSING,
        inode_sb: OFFSET_MISSING,
        inode_size: OFFSET_MISSING,
        inode_mode: OFFSET_MISSING,
        inode_nlink: OFFSET_MISSING,
        inode_mtime_sec: OFFSET_MISSING,
        inode_mtime_nsec: OFFSET_MISSING,
        inode_ctime_sec: OFFSET_MISSING,
        inode_ctime_nsec: OFFSET_MISSING,
        inode_time_is_timespec: OFFSET_MISSING,
        sb_dev: OFFSET_MISSING,
        sb_magic: OFFSET_MISSING,
        task_files: OFFSET_MISSING,
        files_fdt: OFFSET_MISSING,
        fdt_fd: OFFSET_MISSING,
        fdt_max_fds: OFFSET_MISSING,
        file_f_mode: OFFSET_MISSING,
        file_f_flags: OFFSET_MISSING,
        file_vfsmount: OFFSET_MISSING,
        dentry_parent: OFFSET_MISSING,
        dentry_inode: OFFSET_MISSING,
        dentry_hash_len: OFFSET_MISSING,
        vfsmount_root: OFFSET_MISSING,
        mount_mnt: OFFSET_MISSING,
        mount_parent: OFFSET_MISSING,
        mount_mountpoint: OFFSET_MISSING,
        regs_arg0: OFFSET_MISSING,
        regs_arg1: OFFSET_MISSING,
        regs_arg2: OFFSET_MISSING,
        file_private_data: OFFSET_MISSING,
        socket_sk: OFFSET_MISSING,
        socket_type: OFFSET_MISSING,
        sock_protocol: OFFSET_MISSING,
        sock_err: OFFSET_MISSING,
        sock_state: OFFSET_MISSING,
        mm_exe_file: OFFSET_MISSING,
        mm_env_start: OFFSET_MISSING,
        mm_env_end: OFFSET_MISSING,
        mapping_host: OFFSET_MISSING,
        unix_sock_addr: OFFSET_MISSING,
        unix_address_len: OFFSET_MISSING,
        unix_address_name: OFFSET_MISSING,
        sock_sk_type: OFFSET_MISSING,
    };
}

/// Emitted from `tp_btf/io_uring_submit_req` the first time a process
/// submits a request of a given opcode (de-duplicated in the kernel).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct IoUringEvent {
    pub hdr: EventHeader,
    pub pid: u32,
    pub tgid: u32,
    pub uid: u32,
    /// `IORING_OP_*`.
    pub opcode: u32,
    pub cgroup_id: u64,
    /// `struct io_ring_ctx *`: tells one ring from another.
    pub ctx: u64,
    pub user_data: u64,
}

/// Key of the per-process io_uring opcode de-duplication map.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct IoUringKey {
    pub tgid: u32,
    pub opcode: u32,
}

/// Offsets of io_uring's request struct, resolved from BTF like [`Offsets`];
/// separate so that a kernel without io_uring loads everything else.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct IoUringOffsets {
    /// `io_kiocb.opcode` (u8).
    pub req_opcode: u32,
    /// `io_kiocb.ctx`.
    pub req_ctx: u32,
    /// `io_kiocb.cqe.user_data`.
    pub req_user_data: u32,
    /// `io_open.file_slot` within the request (`io_kiocb.cmd` + its offset):
    /// non-zero when the open went to a fixed-file slot, not an fd.
    pub open_file_slot: u32,
}

impl IoUringOffsets {
    pub const UNSET: Self = Self {
        req_opcode: OFFSET_MISSING,
        req_ctx: OFFSET_MISSING,
        req_user_data: OFFSET_MISSING,
        open_file_slot: OFFSET_MISSING,
    };
}

#[cfg(feature = "user")]
// SAFETY: plain-old-data, repr(C), every bit pattern valid.
unsafe impl aya::Pod for IoUringOffsets {}

#[cfg(feature = "user")]
// SAFETY: plain-old-data, repr(C), every bit pattern valid.
unsafe impl aya::Pod for Offsets {}
#[cfg(feature = "user")]
// SAFETY: plain-old-data, repr(C), every bit pattern valid.
unsafe impl aya::Pod for InodeKey {}
#[cfg(feature = "user")]
// SAFETY: plain-old-data, repr(C), every bit pattern valid.
unsafe impl aya::Pod for ConnectKey {}
#[cfg(feature = "user")]
// SAFETY: plain-old-data, repr(C), every bit pattern valid.
unsafe impl aya::Pod for AllowKey {}
#[cfg(feature = "user")]
// SAFETY: plain-old-data, repr(C), every bit pattern valid.
unsafe impl aya::Pod for QuarantineEntry {}

/// The environment block of a new image, sent by `tp_btf/sched_process_exec`
/// right after its exec record (variable length: the header, then
/// `captured` bytes of the NUL-separated `NAME=value` block).
pub const KIND_EXEC_ENV: u32 = 9;
/// Bytes of the environment block kept. Power of two: the eBPF side masks with it.
pub const ENV_LEN: usize = 16384;
/// The block was longer than [`ENV_LEN`]: variables past the cut were not sent.
pub const ENV_FLAG_TRUNCATED: u32 = 1 << 0;
/// Reading the block from the new image failed: nothing was captured.
pub const ENV_FLAG_UNREADABLE: u32 = 1 << 1;

/// Fixed part of a [`KIND_EXEC_ENV`] record.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExecEnvHeader {
    pub hdr: EventHeader,
    pub tgid: u32,
    pub flags: u32,
    /// `task->start_boottime`: with `tgid`, names the exec record it follows.
    pub start_boottime_ns: u64,
    /// Length of the whole block in the image (may exceed [`ENV_LEN`]).
    pub env_len: u32,
    /// Bytes that follow this header.
    pub captured: u32,
}

/// A [`KIND_EXEC_ENV`] record at its largest: the eBPF side builds it in a
/// per-CPU scratch slot and sends only `header + captured` bytes.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ExecEnvEvent {
    pub head: ExecEnvHeader,
    pub env: [u8; ENV_LEN],
}

/// `syscall` of a file-access record from the page-cache hooks
/// (`mm_filemap_get_pages`, `mm_filemap_fault`, `mm_filemap_map_pages`): a
/// read or mmap fault of a watched inode. No fd, no path argument: the agent
/// names the file by its watch-table path.
pub const OPEN_SYSCALL_PAGE_CACHE: u32 = 6;

/// `syscall` of a file-access record the agent makes itself from a fanotify
/// read event on a watched tmpfs inode (shmem reads bypass the page-cache
/// hooks). Never sent by a kernel program; numbered here with the others.
pub const OPEN_SYSCALL_FANOTIFY: u32 = 7;

/// Words (u64) in the read prefilter bitmap: 2^18 bits, 32 KiB.
pub const READ_PREFILTER_WORDS: u32 = 4096;

/// Bit of the read prefilter for inode number `ino` (a watched file's, or on
/// the open hooks a watched directory's). The dev is left out on purpose: it
/// costs the hot path one more kernel read per cached read, and a collision
/// only costs one hash lookup.
#[inline(always)]
pub fn read_prefilter_bit(ino: u64) -> u32 {
    (ino.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 46) as u32
}

/// Words (u64) in the basename prefilter bitmap: 2^14 bits, 2 KiB.
pub const NAME_PREFILTER_WORDS: u32 = 256;

/// The first bytes of a basename as the open hooks load them: one u64 read
/// little-endian from the name, the bytes past its end zeroed.
#[inline(always)]
pub fn name_prefix(name: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = if name.len() < 8 { name.len() } else { 8 };
    b[..n].copy_from_slice(&name[..n]);
    u64::from_le_bytes(b)
}

/// Bit of the basename prefilter for a name of `len` bytes starting with
/// `prefix` ([`name_prefix`]): an open whose name's bit is clear is no
/// watched name, without reading the whole name or hashing a 64-byte key.
#[inline(always)]
pub fn name_prefilter_bit(prefix: u64, len: u32) -> u32 {
    (prefix
        .wrapping_add(len as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        >> 50) as u32
}

/// Key of the in-kernel repeat suppression of file accesses: one process
/// image (tgid, start time, executable inode) and one file (dev, ino).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ReadKey {
    pub tgid: u32,
    pub dev: u32,
    pub ino: u64,
    pub start_ns: u64,
    pub exe_ino: u64,
    /// `FMODE_READ | FMODE_WRITE` bits of the access: a write is not a repeat of a read.
    pub mode: u32,
    pub _pad: u32,
}

/// Value of the repeat-suppression map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ReadSeen {
    /// When the current window began (boot ns).
    pub window_start_ns: u64,
    /// Accesses suppressed in the current window.
    pub suppressed: u64,
}

#[cfg(feature = "user")]
// SAFETY: plain-old-data, repr(C), every bit pattern valid.
unsafe impl aya::Pod for ReadKey {}
#[cfg(feature = "user")]
// SAFETY: plain-old-data, repr(C), every bit pattern valid.
unsafe impl aya::Pod for ReadSeen {}

/// A TCP connect the cgroup connect4/6 hook (or connect(2)'s exit, on
/// EINPROGRESS) parked until the TCP state machine decides it, keyed by
/// its `struct sock *`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct PendingConnect {
    pub ev: ConnectEvent,
    /// `bpf_ktime_get_boot_ns()` when it was parked.
    pub parked_ns: u64,
    /// `PENDING_*` bits.
    pub flags: u32,
    pub _pad: u32,
    /// `task->start_boottime` of the connecting process's group leader: the
    /// sweep names the process after it may have exited.
    pub start_boottime_ns: u64,
}

/// Parked by the cgroup hook: not yet counted in the de-duplication map
/// (the outcome is part of the key, so it is counted when known).
pub const PENDING_FROM_HOOK: u32 = 1 << 0;
/// The socket went CLOSE -> SYN_SENT: the handshake started and its end
/// reports the record. A hook-parked record never marked failed before the
/// handshake (no route, refused by another program): user space reports it.
pub const PENDING_SYN_SENT: u32 = 1 << 1;
/// `ConnectEvent.deferred` of a TCP connect that never started its
/// handshake: found when its socket (or a new one at the same address)
/// was parked again, or by the agent's sweep.
pub const DEFERRED_NO_HANDSHAKE: u32 = 2;
/// Slot of the SENT counters that counts the connects the kernel reported
/// as never having started their handshake (the sweep counts its own).
pub const CONNECT_UNSTARTED_SLOT: u32 = 10;

#[cfg(feature = "user")]
// SAFETY: plain-old-data, repr(C), every bit pattern valid.
unsafe impl aya::Pod for PendingConnect {}

/// Key of the per-process de-duplication of unix-socket connects and
/// datagrams seen by the LSM hooks: one peer path per process and socket type.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct UnixSeenKey {
    pub tgid: u32,
    pub sock_type: u32,
    pub path: [u8; UNIX_PATH_LEN],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_prefix_is_the_eight_bytes_the_kernel_loads_with_the_tail_zeroed() {
        assert_eq!(name_prefix(b"id_rsa"), u64::from_le_bytes(*b"id_rsa\0\0"));
        assert_eq!(
            name_prefix(b"credentials"),
            u64::from_le_bytes(*b"credenti")
        );
        assert_eq!(name_prefix(b".netrc"), u64::from_le_bytes(*b".netrc\0\0"));
        assert_eq!(name_prefix(b"12345678"), u64::from_le_bytes(*b"12345678"));
        assert_eq!(name_prefix(b""), 0);
    }

    #[test]
    fn names_sharing_a_prefix_differ_by_length_and_every_bit_fits_its_bitmap() {
        let a = name_prefilter_bit(name_prefix(b"credentials"), 11);
        let b = name_prefilter_bit(name_prefix(b"credentials.json"), 16);
        assert_ne!(a, b, "the length is part of the bit");
        for len in 0..NAME_KEY_LEN as u32 {
            for prefix in [0, 1, u64::MAX, 0x9E37_79B9_7F4A_7C15] {
                assert!(name_prefilter_bit(prefix, len) < NAME_PREFILTER_WORDS * 64);
            }
        }
        for ino in [0, 1, 611, u64::MAX, 1 << 40] {
            assert!(read_prefilter_bit(ino) < READ_PREFILTER_WORDS * 64);
        }
    }
}
