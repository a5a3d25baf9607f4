//! An empty BPF program on one of proctor's hot hooks, loaded with bpf(2)
//! itself: what it costs an operation to run *any* program there, the floor
//! under proctor's own. bpftrace 0.17 attaches neither raw tracepoints nor
//! cgroup hooks, and the bench has no BPF compiler of its own, so the program
//! is the two instructions `r0 = ret; exit`.

use std::{
    ffi::CString,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    path::Path,
};

use anyhow::{Context, Result};

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_RAW_TRACEPOINT_OPEN: libc::c_long = 17;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_PROG_TYPE_RAW_TRACEPOINT: u32 = 17;
const BPF_PROG_TYPE_CGROUP_SOCK_ADDR: u32 = 18;
/// `enum bpf_attach_type`: the cgroup hooks of connect(2) on an IPv4 socket
/// and of sendmsg(2) on an IPv4 UDP socket.
pub const BPF_CGROUP_INET4_CONNECT: u32 = 10;
pub const BPF_CGROUP_UDP4_SENDMSG: u32 = 14;
/// How `bpftool prog show` names it.
const NAME: &str = "bench_empty";

/// The program and its attachment: dropping it detaches and unloads both.
pub struct EmptyProg {
    prog: OwnedFd,
    _link: OwnedFd,
}

impl EmptyProg {
    /// The program's id, for its run-time statistics (`bpftool prog show id`).
    pub fn id(&self) -> Result<u64> {
        // struct bpf_prog_info begins with `__u32 type; __u32 id;`.
        let mut info = [0u8; 8];
        let mut attr = [0u8; 128];
        put_u32(&mut attr, 0, self.prog.as_raw_fd() as u32);
        put_u32(&mut attr, 4, info.len() as u32);
        put_u64(&mut attr, 8, info.as_mut_ptr() as u64);
        sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)
            .context("bpf(BPF_OBJ_GET_INFO_BY_FD) of the empty program")?;
        Ok(u64::from(u32::from_le_bytes(info[4..8].try_into()?)))
    }

    /// On the raw tracepoint `tp` (the kernel's dispatch into a tp_btf
    /// program is the same as into a raw one).
    pub fn on_raw_tracepoint(tp: &str) -> Result<EmptyProg> {
        let prog = load(BPF_PROG_TYPE_RAW_TRACEPOINT, 0, 0)
            .with_context(|| format!("load an empty raw_tracepoint/{tp} program"))?;
        let name = CString::new(tp)?;
        let mut attr = [0u8; 128];
        put_u64(&mut attr, 0, name.as_ptr() as u64);
        put_u32(&mut attr, 8, prog.as_raw_fd() as u32);
        let link = bpf(BPF_RAW_TRACEPOINT_OPEN, &mut attr)
            .with_context(|| format!("attach the empty program to raw_tracepoint/{tp}"))?;
        Ok(EmptyProg { prog, _link: link })
    }

    /// On the cgroup sock_addr hook `attach_type` of `cgroup` (the program
    /// lets everything through, as proctor's do when not blocking).
    pub fn on_cgroup(cgroup: &Path, attach_type: u32) -> Result<EmptyProg> {
        let prog = load(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, attach_type, 1)
            .context("load an empty cgroup sock_addr program")?;
        let cg = std::fs::File::open(cgroup)
            .with_context(|| format!("open the cgroup {}", cgroup.display()))?;
        let mut attr = [0u8; 128];
        put_u32(&mut attr, 0, prog.as_raw_fd() as u32);
        put_u32(&mut attr, 4, cg.as_raw_fd() as u32);
        put_u32(&mut attr, 8, attach_type);
        let link = bpf(BPF_LINK_CREATE, &mut attr).with_context(|| {
            format!(
                "attach the empty program to {} (attach type {attach_type})",
                cgroup.display()
            )
        })?;
        Ok(EmptyProg { prog, _link: link })
    }
}

/// `r0 = ret; exit`, GPL (raw tracepoints require it).
fn load(prog_type: u32, expected_attach_type: u32, ret: i32) -> Result<OwnedFd> {
    // BPF_ALU64 | BPF_MOV | BPF_K to r0, then BPF_JMP | BPF_EXIT.
    let mut insns = [0u8; 16];
    insns[0] = 0xb7;
    insns[4..8].copy_from_slice(&ret.to_le_bytes());
    insns[8] = 0x95;
    let license = c"GPL";
    let mut log = vec![0u8; 4096];
    let mut attr = [0u8; 128];
    put_u32(&mut attr, 0, prog_type);
    put_u32(&mut attr, 4, 2);
    put_u64(&mut attr, 8, insns.as_ptr() as u64);
    put_u64(&mut attr, 16, license.as_ptr() as u64);
    put_u32(&mut attr, 24, 1);
    put_u32(&mut attr, 28, log.len() as u32);
    put_u64(&mut attr, 32, log.as_mut_ptr() as u64);
    attr[48..48 + NAME.len()].copy_from_slice(NAME.as_bytes());
    put_u32(&mut attr, 68, expected_attach_type);
    bpf(BPF_PROG_LOAD, &mut attr).map_err(|e| {
        let end = log.iter().position(|&b| b == 0).unwrap_or(0);
        e.context(format!(
            "verifier log: {}",
            String::from_utf8_lossy(&log[..end]).trim()
        ))
    })
}

/// bpf(2) with `attr`, a zero-padded `union bpf_attr`: its result.
fn sys_bpf(cmd: libc::c_long, attr: &mut [u8; 128]) -> std::io::Result<libc::c_long> {
    // SAFETY: `attr` is as large as the size given, and every pointer in it
    // outlives the call.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len()) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(r)
}

/// A bpf(2) command that returns a new fd.
fn bpf(cmd: libc::c_long, attr: &mut [u8; 128]) -> Result<OwnedFd> {
    let fd = sys_bpf(cmd, attr).with_context(|| format!("bpf({cmd})"))?;
    // SAFETY: a new fd the kernel just gave us, owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn put_u32(attr: &mut [u8], at: usize, v: u32) {
    attr[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_u64(attr: &mut [u8], at: usize, v: u64) {
    attr[at..at + 8].copy_from_slice(&v.to_le_bytes());
}
