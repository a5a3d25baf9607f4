//! Ring-buffer records -> owned Rust values.
//!
//! Records are copied out of the ring buffer before anything slow happens, so
//! the kernel can reuse the space at once.

use proctor_common::{
    ConnectEvent, EventHeader, ExecEnvHeader, ExecEvent, ExitEvent, FileOpenEvent, FileOpenHead,
    ForkEvent, InodeKey, IoUringEvent, ARGS_LEN, COMPONENT_LEN, ENV_FLAG_TRUNCATED,
    ENV_FLAG_UNREADABLE, ENV_LEN, EXEC_FLAG_ARGS_TRUNCATED, EXEC_FLAG_ARGS_UNREADABLE,
    EXEC_FLAG_SCRIPT, FMODE_READ, FMODE_WRITE, KIND_CONNECT, KIND_EXEC, KIND_EXEC_ENV, KIND_EXIT,
    KIND_FILE_ACCESS, KIND_FILE_OPEN, KIND_FORK, KIND_IO_URING, OPEN_FLAG_DENIED, OPEN_FLAG_KILLED,
    OPEN_FLAG_PATH_TRUNCATED, PATH_COMPONENTS, PATH_LEN,
};

#[derive(Debug)]
pub enum KernelEvent {
    Exec(Box<ExecRecord>),
    ExecEnv(Box<EnvRecord>),
    Fork(ForkEvent),
    Exit(ExitEvent),
    FileOpen(Box<OpenRecord>),
    Connect(Box<ConnectRecord>),
    IoUring(IoUringRecord),
}

/// The environment block of a new image, captured by the exec probe.
#[derive(Clone)]
pub struct EnvRecord {
    pub ktime_ns: u64,
    pub tgid: u32,
    pub start_boottime_ns: u64,
    /// The NUL-separated `NAME=value` block, at most `ENV_LEN` bytes. May
    /// hold credentials: never log or emit it.
    pub block: Vec<u8>,
    /// The block in the image was longer than what was captured.
    pub truncated: bool,
    /// The kernel could not read the block at all (`block` is empty).
    pub unreadable: bool,
}

impl std::fmt::Debug for EnvRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvRecord")
            .field("tgid", &self.tgid)
            .field("start_boottime_ns", &self.start_boottime_ns)
            .field("block_bytes", &self.block.len())
            .field("truncated", &self.truncated)
            .field("unreadable", &self.unreadable)
            .finish()
    }
}

/// The first io_uring request of one opcode by one process.
#[derive(Debug, Clone)]
pub struct IoUringRecord {
    pub ktime_ns: u64,
    pub pid: u32,
    pub tgid: u32,
    pub uid: u32,
    pub cgroup_id: u64,
    /// `IORING_OP_*`.
    pub opcode: u32,
    pub ring: u64,
    pub user_data: u64,
}

/// `IORING_OP_*` names (include/uapi/linux/io_uring.h), for events and findings.
pub fn io_uring_op_name(opcode: u32) -> &'static str {
    const NAMES: [&str; 59] = [
        "nop",
        "readv",
        "writev",
        "fsync",
        "read_fixed",
        "write_fixed",
        "poll_add",
        "poll_remove",
        "sync_file_range",
        "sendmsg",
        "recvmsg",
        "timeout",
        "timeout_remove",
        "accept",
        "async_cancel",
        "link_timeout",
        "connect",
        "fallocate",
        "openat",
        "close",
        "files_update",
        "statx",
        "read",
        "write",
        "fadvise",
        "madvise",
        "send",
        "recv",
        "openat2",
        "epoll_ctl",
        "splice",
        "provide_buffers",
        "remove_buffers",
        "tee",
        "shutdown",
        "renameat",
        "unlinkat",
        "mkdirat",
        "symlinkat",
        "linkat",
        "msg_ring",
        "fsetxattr",
        "setxattr",
        "fgetxattr",
        "getxattr",
        "socket",
        "uring_cmd",
        "send_zc",
        "sendmsg_zc",
        "read_multishot",
        "waitid",
        "futex_wait",
        "futex_wake",
        "futex_waitv",
        "fixed_fd_install",
        "ftruncate",
        "bind",
        "listen",
        "recv_zc",
    ];
    NAMES.get(opcode as usize).copied().unwrap_or("other")
}

/// A connect(2) and its outcome.
#[derive(Debug, Clone)]
pub struct ConnectRecord {
    pub ktime_ns: u64,
    pub pid: u32,
    pub tgid: u32,
    pub uid: u32,
    pub cgroup_id: u64,
    /// 0 or -errno.
    pub result: i32,
    pub family: u16,
    pub port: u16,
    pub protocol: u16,
    pub sock_type: u16,
    pub deferred: bool,
    pub ip: Option<std::net::IpAddr>,
    pub unix_path: Option<String>,
    /// Which hook saw it (`CONNECT_ORIGIN_*`).
    pub origin: u32,
    /// A TCP connect the cgroup hook let through that never reached
    /// SYN_SENT (no route, refused by another program): found by the
    /// agent's sweep of the parked connects, its errno unknown.
    pub before_handshake: bool,
}

/// A watched file opened, as the probe saw it.
#[derive(Debug, Clone)]
pub struct OpenRecord {
    pub ktime_ns: u64,
    pub pid: u32,
    pub tgid: u32,
    pub uid: u32,
    pub gid: u32,
    pub cgroup_id: u64,
    pub ino: u64,
    /// st_dev encoding.
    pub dev: u64,
    /// Kernel-internal dev_t, as the watch maps key it.
    pub kdev: u32,
    pub readable: bool,
    pub writable: bool,
    /// `O_*` flags of the open file description.
    pub flags: u32,
    pub fd: i32,
    pub dfd: i32,
    pub syscall: u32,
    pub matched: u32,
    pub slot: u32,
    /// The kernel killed the opener (enforce: kill).
    pub killed: bool,
    /// The LSM hook refused the open (enforce: kill where BPF LSM is active):
    /// no file was opened, `fd` is -1.
    pub denied: bool,
    /// The path argument as passed.
    pub filename: String,
    /// The path the kernel resolved (from the dentry walk), absolute within the
    /// caller's mount namespace; `None` when the walk was truncated.
    pub path: Option<String>,
    /// Accesses folded in the kernel since this process's previous record of the file.
    pub repeats: u32,
    /// The inode's version when the probe ran: size, mtime and ctime as
    /// (seconds, nanoseconds), the same values `stat` reports.
    pub size: u64,
    pub mtime: (i64, u32),
    pub ctime: (i64, u32),
}

impl OpenRecord {
    /// The path the kernel resolved, else the argument as passed (the walk
    /// was truncated).
    pub fn kernel_path(&self) -> &str {
        self.path.as_deref().unwrap_or(&self.filename)
    }
}

/// An exec as the probe saw it, with strings decoded.
#[derive(Debug, Clone)]
pub struct ExecRecord {
    pub ktime_ns: u64,
    pub pid: u32,
    pub tgid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    pub euid: u32,
    pub egid: u32,
    pub cgroup_id: u64,
    pub start_boottime_ns: u64,
    pub parent_start_boottime_ns: u64,
    pub ino: u64,
    /// st_dev encoding.
    pub dev: u64,
    pub size: u64,
    pub nlink: u32,
    pub mtime: (i64, u32),
    pub ctime: (i64, u32),
    pub s_magic: u64,
    pub comm: String,
    pub dname: String,
    pub filename: String,
    /// Shebang interpreter, for scripts.
    pub interp: Option<String>,
    pub args: Vec<String>,
    pub args_truncated: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("record of {got} bytes is shorter than its {want}-byte {what}")]
    Short {
        got: usize,
        want: usize,
        what: &'static str,
    },
    #[error("record of unknown kind {0}")]
    UnknownKind(u32),
}

fn read_struct<T: Copy>(buf: &[u8], what: &'static str) -> Result<T, DecodeError> {
    if buf.len() < size_of::<T>() {
        return Err(DecodeError::Short {
            got: buf.len(),
            want: size_of::<T>(),
            what,
        });
    }
    // SAFETY: length checked; T is a repr(C) plain-old-data type from proctor-common
    // for which every bit pattern is valid; read_unaligned copes with any alignment.
    Ok(unsafe { std::ptr::read_unaligned(buf.as_ptr() as *const T) })
}

/// Calls `f` on the record in `buf` in place when it is aligned (ring-buffer
/// records are 8-aligned), else on a copy: exec and file-open records are
/// kilobytes, and copying each one showed in the profile at the drop onset.
fn with_struct<T: Copy, R>(
    buf: &[u8],
    what: &'static str,
    f: impl FnOnce(&T) -> R,
) -> Result<R, DecodeError> {
    if buf.len() < size_of::<T>() {
        return Err(DecodeError::Short {
            got: buf.len(),
            want: size_of::<T>(),
            what,
        });
    }
    let ptr = buf.as_ptr() as *const T;
    if ptr.is_aligned() {
        // SAFETY: length and alignment checked; T is a repr(C) plain-old-data
        // type from proctor-common for which every bit pattern is valid.
        Ok(f(unsafe { &*ptr }))
    } else {
        read_struct::<T>(buf, what).map(|v| f(&v))
    }
}

pub fn decode(buf: &[u8]) -> Result<KernelEvent, DecodeError> {
    let hdr: EventHeader = read_struct(buf, "header")?;
    match hdr.kind {
        KIND_EXEC => {
            let rec = with_struct(buf, "exec record", |ev: &ExecEvent| exec_record(ev))?;
            Ok(KernelEvent::Exec(Box::new(rec)))
        }
        KIND_EXEC_ENV => Ok(KernelEvent::ExecEnv(Box::new(env_record(buf)?))),
        KIND_FORK => Ok(KernelEvent::Fork(read_struct(buf, "fork record")?)),
        KIND_EXIT => Ok(KernelEvent::Exit(read_struct(buf, "exit record")?)),
        KIND_CONNECT => {
            let rec = with_struct(buf, "connect record", |ev: &ConnectEvent| {
                connect_record(ev)
            })?;
            Ok(KernelEvent::Connect(Box::new(rec)))
        }
        KIND_IO_URING => {
            let ev: IoUringEvent = read_struct(buf, "io_uring record")?;
            Ok(KernelEvent::IoUring(IoUringRecord {
                ktime_ns: ev.hdr.ktime_ns,
                pid: ev.pid,
                tgid: ev.tgid,
                uid: ev.uid,
                cgroup_id: ev.cgroup_id,
                opcode: ev.opcode,
                ring: ev.ctx,
                user_data: ev.user_data,
            }))
        }
        KIND_FILE_OPEN => {
            let rec = with_struct(buf, "file-open record", |ev: &FileOpenEvent| {
                open_record(&ev.head, Some((&ev.filename, &ev.components)))
            })?;
            Ok(KernelEvent::FileOpen(Box::new(rec)))
        }
        KIND_FILE_ACCESS => {
            let rec = with_struct(buf, "file-access record", |h: &FileOpenHead| {
                open_record(h, None)
            })?;
            Ok(KernelEvent::FileOpen(Box::new(rec)))
        }
        k => Err(DecodeError::UnknownKind(k)),
    }
}

/// Kernel-internal dev_t (MAJOR << 20 | MINOR) -> the encoding stat(2) uses.
pub fn kernel_dev_to_user(kdev: u32) -> u64 {
    libc::makedev(kdev >> 20, kdev & 0xfffff)
}

/// st_dev (userspace encoding) -> the kernel's internal dev_t the maps use.
pub fn user_dev_to_kernel(dev: u64) -> u32 {
    (libc::major(dev) << 20) | (libc::minor(dev) & 0xfffff)
}

/// A file's (st_dev, inode) as the kernel maps key it.
pub fn file_key((dev, ino): (u64, u64)) -> InodeKey {
    InodeKey {
        dev: user_dev_to_kernel(dev),
        _pad: 0,
        ino,
    }
}

/// [`file_key`] of a file's metadata.
pub fn inode_key(meta: &std::fs::Metadata) -> InodeKey {
    use std::os::unix::fs::MetadataExt;
    file_key((meta.dev(), meta.ino()))
}

/// Nanoseconds fit in 30 bits; since 6.13 the kernel keeps a flag
/// (I_CTIME_QUERIED, bit 31) in the top bits of `i_ctime_nsec`.
const NSEC_MASK: u32 = (1 << 30) - 1;

/// Bytes up to the first NUL, lossily as UTF-8.
pub fn cstr(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

fn exec_record(ev: &ExecEvent) -> ExecRecord {
    let mut args_truncated = ev.flags & EXEC_FLAG_ARGS_TRUNCATED != 0;
    let args = if ev.flags & EXEC_FLAG_ARGS_UNREADABLE != 0 {
        args_truncated = true;
        Vec::new()
    } else {
        let n = (ev.args_len as usize).min(ARGS_LEN);
        split_args(&ev.args[..n], args_truncated)
    };
    let filename = cstr(&ev.filename);
    let interp = (ev.flags & EXEC_FLAG_SCRIPT != 0).then(|| cstr(&ev.interp));
    ExecRecord {
        ktime_ns: ev.hdr.ktime_ns,
        pid: ev.pid,
        tgid: ev.tgid,
        ppid: ev.ppid,
        uid: ev.uid,
        gid: ev.gid,
        euid: ev.euid,
        egid: ev.egid,
        cgroup_id: ev.cgroup_id,
        start_boottime_ns: ev.start_boottime_ns,
        parent_start_boottime_ns: ev.parent_start_boottime_ns,
        ino: ev.ino,
        dev: kernel_dev_to_user(ev.dev),
        size: ev.size.max(0) as u64,
        nlink: ev.nlink,
        mtime: (ev.mtime_sec, ev.mtime_nsec & NSEC_MASK),
        ctime: (ev.ctime_sec, ev.ctime_nsec & NSEC_MASK),
        s_magic: ev.s_magic,
        comm: cstr(&ev.comm),
        dname: cstr(&ev.dname),
        filename,
        interp,
        args,
        args_truncated,
    }
}

/// A variable-length environment record: its header, then `captured` bytes.
fn env_record(buf: &[u8]) -> Result<EnvRecord, DecodeError> {
    let head: ExecEnvHeader = read_struct(buf, "environment record")?;
    let captured = (head.captured as usize).min(ENV_LEN);
    let body = &buf[size_of::<ExecEnvHeader>()..];
    if body.len() < captured {
        return Err(DecodeError::Short {
            got: buf.len(),
            want: size_of::<ExecEnvHeader>() + captured,
            what: "environment record",
        });
    }
    Ok(EnvRecord {
        ktime_ns: head.hdr.ktime_ns,
        tgid: head.tgid,
        start_boottime_ns: head.start_boottime_ns,
        block: body[..captured].to_vec(),
        truncated: head.flags & ENV_FLAG_TRUNCATED != 0,
        unreadable: head.flags & ENV_FLAG_UNREADABLE != 0,
    })
}

pub(crate) fn connect_record(ev: &ConnectEvent) -> ConnectRecord {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let ip = match ev.family {
        2 => Some(IpAddr::V4(Ipv4Addr::new(
            ev.addr[0], ev.addr[1], ev.addr[2], ev.addr[3],
        ))),
        10 => Some(IpAddr::V6(Ipv6Addr::from(ev.addr))),
        _ => None,
    };
    let unix_path = (ev.family == 1).then(|| {
        if ev.path[0] == 0 {
            // Abstract socket: shown as "@name", as ss(8) does.
            format!("@{}", cstr(&ev.path[1..]))
        } else {
            cstr(&ev.path)
        }
    });
    ConnectRecord {
        ktime_ns: ev.hdr.ktime_ns,
        pid: ev.pid,
        tgid: ev.tgid,
        uid: ev.uid,
        cgroup_id: ev.cgroup_id,
        result: ev.result,
        family: ev.family,
        port: ev.port,
        protocol: ev.protocol,
        sock_type: ev.sock_type,
        deferred: ev.deferred != 0,
        ip,
        unix_path,
        origin: ev.origin,
        before_handshake: ev.deferred == proctor_common::DEFERRED_NO_HANDSHAKE,
    }
}

/// The path parts of a file-open record: the name as passed and the dentry
/// walk's components.
type PathParts<'a> = (
    &'a [u8; PATH_LEN],
    &'a [[u8; COMPONENT_LEN]; PATH_COMPONENTS],
);

/// A file-open record from its head and, unless it was a file-access record
/// (no path in the kernel), its path parts.
fn open_record(ev: &FileOpenHead, parts: Option<PathParts>) -> OpenRecord {
    let depth = (ev.depth as usize).min(PATH_COMPONENTS);
    let path = parts
        .filter(|_| ev.flags & OPEN_FLAG_PATH_TRUNCATED == 0)
        .map(|(_, components)| {
            let mut p = String::with_capacity(depth * 16 + 1);
            for c in components[..depth].iter().rev() {
                let end = c.iter().position(|&b| b == 0).unwrap_or(c.len());
                p.push('/');
                p.push_str(&String::from_utf8_lossy(&c[..end]));
            }
            if p.is_empty() {
                p.push('/');
            }
            p
        });
    OpenRecord {
        ktime_ns: ev.hdr.ktime_ns,
        pid: ev.pid,
        tgid: ev.tgid,
        uid: ev.uid,
        gid: ev.gid,
        cgroup_id: ev.cgroup_id,
        ino: ev.ino,
        dev: kernel_dev_to_user(ev.dev),
        kdev: ev.dev,
        readable: ev.f_mode & FMODE_READ != 0,
        writable: ev.f_mode & FMODE_WRITE != 0,
        flags: ev.f_flags,
        fd: ev.fd,
        dfd: ev.dfd,
        syscall: ev.syscall,
        matched: ev.matched,
        slot: ev.slot,
        killed: ev.flags & OPEN_FLAG_KILLED != 0,
        denied: ev.flags & OPEN_FLAG_DENIED != 0,
        filename: parts.map(|(name, _)| cstr(name)).unwrap_or_default(),
        path,
        repeats: ev.repeats,
        size: ev.size.max(0) as u64,
        mtime: (ev.mtime_sec, ev.mtime_nsec & NSEC_MASK),
        ctime: (ev.ctime_sec, ev.ctime_nsec & NSEC_MASK),
    }
}

/// Splits the NUL-separated argv block. A truncated block's last piece is a
/// partial argument and is kept as such (the event says `args_truncated`).
pub fn split_args(block: &[u8], truncated: bool) -> Vec<String> {
    let block = if !truncated {
        block.strip_suffix(&[0]).unwrap_or(block)
    } else {
        block
    };
    if block.is_empty() {
        return Vec::new();
    }
    block
        .split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_split_and_non_utf8() {
        assert_eq!(split_args(b"ls\0-l\0/tmp\0", false), ["ls", "-l", "/tmp"]);
        assert_eq!(split_args(b"a\0\0b\0", false), ["a", "", "b"]);
        assert_eq!(
            split_args(b"x\0\xff\xfe\0", false),
            ["x", "\u{fffd}\u{fffd}"]
        );
        assert_eq!(split_args(b"long\0partia", true), ["long", "partia"]);
        assert!(split_args(b"", false).is_empty());
    }

    #[test]
    fn short_and_unknown_records_are_errors() {
        assert!(matches!(decode(&[0u8; 4]), Err(DecodeError::Short { .. })));
        let mut buf = [0u8; 16];
        buf[0] = 99;
        assert!(matches!(decode(&buf), Err(DecodeError::UnknownKind(99))));
        let mut exec = vec![0u8; 64];
        exec[0] = KIND_EXEC as u8;
        assert!(matches!(decode(&exec), Err(DecodeError::Short { .. })));
    }

    fn env_bytes(flags: u32, captured: u32, body: &[u8]) -> Vec<u8> {
        let head = ExecEnvHeader {
            hdr: EventHeader {
                kind: KIND_EXEC_ENV,
                cpu: 0,
                ktime_ns: 7,
            },
            tgid: 42,
            flags,
            start_boottime_ns: 9,
            env_len: body.len() as u32,
            captured,
        };
        // SAFETY: ExecEnvHeader is repr(C) plain old data.
        let mut buf = unsafe {
            std::slice::from_raw_parts(
                &head as *const ExecEnvHeader as *const u8,
                size_of::<ExecEnvHeader>(),
            )
        }
        .to_vec();
        buf.extend_from_slice(body);
        buf
    }

    #[test]
    fn env_records_carry_their_block_and_flags() {
        let buf = env_bytes(ENV_FLAG_TRUNCATED, 8, b"A=1\0B=22\0");
        let KernelEvent::ExecEnv(rec) = decode(&buf).unwrap() else {
            panic!("not an environment record");
        };
        assert_eq!((rec.tgid, rec.start_boottime_ns), (42, 9));
        assert_eq!(rec.block, b"A=1\0B=22");
        assert!(rec.truncated && !rec.unreadable);
        // The block's bytes never show in a debug print.
        assert!(!format!("{rec:?}").contains("B=22"));
        // A record shorter than its own `captured` is an error, not a short block.
        assert!(matches!(
            decode(&env_bytes(0, 64, b"A=1\0")),
            Err(DecodeError::Short { .. })
        ));
    }

    #[test]
    fn a_file_access_record_is_the_head_alone_and_has_no_path() {
        // SAFETY: FileOpenHead is repr(C) plain old data; all zeroes is valid.
        let mut head: FileOpenHead = unsafe { std::mem::zeroed() };
        head.hdr.kind = KIND_FILE_ACCESS;
        head.hdr.ktime_ns = 5;
        (head.tgid, head.ino, head.dev) = (42, 611, (8 << 20) | 1);
        head.f_mode = FMODE_READ;
        head.repeats = 3;
        // No truncation flag: the kind alone says there is no path.
        head.flags = 0;
        // SAFETY: as above.
        let buf = unsafe {
            std::slice::from_raw_parts(
                &head as *const FileOpenHead as *const u8,
                size_of::<FileOpenHead>(),
            )
        }
        .to_vec();
        let KernelEvent::FileOpen(rec) = decode(&buf).unwrap() else {
            panic!("not a file record");
        };
        assert_eq!(
            (rec.tgid, rec.ino, rec.dev, rec.repeats),
            (42, 611, 0x801, 3)
        );
        assert!(rec.readable && !rec.writable);
        assert_eq!((rec.filename.as_str(), rec.path.as_deref()), ("", None));
        // The same bytes under the file-open kind are a record cut short.
        let mut open = buf.clone();
        open[..4].copy_from_slice(&KIND_FILE_OPEN.to_ne_bytes());
        assert!(matches!(decode(&open), Err(DecodeError::Short { .. })));
        assert!(matches!(
            decode(&buf[..buf.len() - 8]),
            Err(DecodeError::Short { .. })
        ));
    }

    #[test]
    fn io_uring_opcodes_are_named() {
        assert_eq!(io_uring_op_name(18), "openat");
        assert_eq!(io_uring_op_name(16), "connect");
        assert_eq!(io_uring_op_name(22), "read");
        assert_eq!(io_uring_op_name(28), "openat2");
        assert_eq!(io_uring_op_name(9999), "other");
    }

    #[test]
    fn dev_encoding_matches_stat() {
        // 8:1 (sda1) in kernel encoding is 8<<20|1; stat says 0x801.
        assert_eq!(kernel_dev_to_user((8 << 20) | 1), 0x801);
    }
}
