//! Start-up checks that turn obscure load failures into plain instructions:
//! privileges, kernel BTF, and the pseudo-filesystems the probes rely on.

use std::{ffi::CString, path::Path};

use anyhow::{bail, Context, Result};

pub const CAP_SYS_ADMIN: u32 = 21;
pub const CAP_SYS_RESOURCE: u32 = 24;
pub const CAP_PERFMON: u32 = 38;
pub const CAP_BPF: u32 = 39;

/// Effective capability set of this process, from /proc/self/status.
pub fn effective_caps() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0)
}

pub fn has_cap(caps: u64, cap: u32) -> bool {
    caps & (1u64 << cap) != 0
}

/// Whether this process may load and attach tracing programs.
pub fn check_privileges() -> Result<()> {
    let caps = effective_caps();
    let bpf_ok = has_cap(caps, CAP_BPF) && has_cap(caps, CAP_PERFMON);
    if bpf_ok || has_cap(caps, CAP_SYS_ADMIN) {
        return Ok(());
    }
    bail!(
        "proctor cannot load its eBPF probes: the process lacks CAP_BPF and CAP_PERFMON \
         (or CAP_SYS_ADMIN) (effective set {caps:#x}); run it as root, or grant them \
         (systemd: AmbientCapabilities=CAP_BPF CAP_PERFMON CAP_SYS_RESOURCE CAP_SYS_PTRACE \
         CAP_DAC_READ_SEARCH; Kubernetes: securityContext.capabilities.add)"
    )
}

/// Filesystem type mounted at `target`, from /proc/self/mountinfo.
pub fn mounted_fstype(target: &str) -> Option<String> {
    crate::kernel::mounts::own_mounts()
        .into_iter()
        .rev()
        .find(|m| m.mount_point == target)
        .map(|m| m.fstype)
}

/// Mounts `fstype` at `target` unless it is already there. Returns whether it mounted.
pub fn ensure_mounted(fstype: &str, target: &str) -> Result<bool> {
    if mounted_fstype(target).as_deref() == Some(fstype) {
        return Ok(false);
    }
    if !Path::new(target).is_dir() {
        bail!("cannot mount {fstype} at {target}: the directory does not exist");
    }
    let src = CString::new(fstype).unwrap();
    let tgt = CString::new(target).unwrap();
    // SAFETY: valid NUL-terminated strings; no data argument.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            tgt.as_ptr(),
            src.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        return Err(err).with_context(|| {
            format!(
                "cannot mount {fstype} at {target}; mount it yourself \
                 (`mount -t {fstype} {fstype} {target}`) or give the agent CAP_SYS_ADMIN"
            )
        });
    }
    Ok(true)
}

/// Raises RLIMIT_MEMLOCK for kernels that still charge BPF maps to it (< 5.11).
/// Newer kernels account BPF memory to the cgroup, so failure is harmless there.
pub fn raise_memlock() {
    let lim = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: valid pointer to an rlimit.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) } != 0 {
        tracing::debug!(
            "cannot raise RLIMIT_MEMLOCK: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// Everything `proctor run` needs before loading; the mounts it made are returned.
pub fn prepare() -> Result<Vec<String>> {
    check_privileges()?;
    raise_memlock();
    let mut made = Vec::new();
    // bpffs is not needed: the agent pins nothing, its programs live as long
    // as it holds their fds.
    for (fs, target) in [("tracefs", "/sys/kernel/tracing")] {
        match ensure_mounted(fs, target) {
            Ok(true) => made.push(format!("{fs} at {target}")),
            Ok(false) => {}
            // Not needed by the tp_btf probes themselves: warn, do not fail.
            Err(e) => tracing::warn!("{e:#}"),
        }
    }
    Ok(made)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_mounts() {
        assert_eq!(mounted_fstype("/proc").as_deref(), Some("proc"));
        assert_eq!(mounted_fstype("/definitely/not/mounted"), None);
    }

    #[test]
    fn cap_bits() {
        assert!(has_cap(1 << CAP_BPF, CAP_BPF));
        assert!(!has_cap(1 << CAP_BPF, CAP_PERFMON));
    }
}
