//! Kernel struct field offsets read from the running kernel's BTF.
//!
//! Rust eBPF has no CO-RE field relocations, so the programs read kernel
//! memory at offsets the agent resolves here and passes in as a read-only
//! global. Nothing is hard-coded per kernel version: where a field moved or
//! was renamed between kernels, every known spelling is tried in order.

use std::path::Path;

use anyhow::{bail, Context, Result};
use btf_rs::{Btf, Type};
use proctor_common::Offsets;

pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// Loads the running kernel's BTF with an error that says what to do.
pub fn load_kernel_btf(path: &Path) -> Result<Btf> {
    if !path.exists() {
        bail!(
            "kernel has no BTF at {}; proctor needs a kernel built with CONFIG_DEBUG_INFO_BTF=y \
             (every mainstream distribution kernel since 5.4 has it)",
            path.display()
        );
    }
    Btf::from_file(path).with_context(|| format!("cannot parse kernel BTF at {}", path.display()))
}

/// Resolves byte offsets of (possibly nested, possibly anonymous) struct members.
pub struct OffsetResolver<'a> {
    btf: &'a Btf,
}

impl<'a> OffsetResolver<'a> {
    pub fn new(btf: &'a Btf) -> Self {
        Self { btf }
    }

    fn struct_named(&self, name: &str) -> Result<btf_rs::Struct> {
        let types = self
            .btf
            .resolve_types_by_name(name)
            .with_context(|| format!("kernel BTF has no type named `{name}`"))?;
        types
            .into_iter()
            .find_map(|t| match t {
                Type::Struct(s) if !s.members.is_empty() => Some(s),
                _ => None,
            })
            .with_context(|| format!("kernel BTF has no struct `{name}` with members"))
    }

    /// Peels typedefs and qualifiers off `t`.
    fn strip(&self, mut t: Type) -> Result<Type> {
        loop {
            t = match &t {
                Type::Typedef(_)
                | Type::Const(_)
                | Type::Volatile(_)
                | Type::Restrict(_)
                | Type::TypeTag(_) => {
                    let bt = t.as_btf_type().expect("qualifier has a btf type");
                    self.btf.resolve_chained_type(bt)?
                }
                _ => return Ok(t),
            };
        }
    }

    /// Finds `name` in `st`, descending into anonymous struct/union members.
    /// Returns (bit offset, member type).
    fn member(&self, st: &btf_rs::Struct, name: &str) -> Result<Option<(u32, Type)>> {
        for m in &st.members {
            let mname = self.btf.resolve_name(m).unwrap_or_default();
            if mname == name {
                let ty = self.strip(self.btf.resolve_chained_type(m)?)?;
                return Ok(Some((m.bit_offset(), ty)));
            }
            if mname.is_empty() {
                if let Type::Struct(inner) | Type::Union(inner) =
                    self.strip(self.btf.resolve_chained_type(m)?)?
                {
                    if let Some((off, ty)) = self.member(&inner, name)? {
                        return Ok(Some((m.bit_offset() + off, ty)));
                    }
                }
            }
        }
        Ok(None)
    }

    /// Byte offset of `path` ("f_path.dentry") inside `struct root`.
    /// Returns `None` when some component does not exist on this kernel.
    pub fn offset(&self, root: &str, path: &str) -> Result<Option<u32>> {
        let mut st = self.struct_named(root)?;
        let mut bits = 0u32;
        let parts: Vec<&str> = path.split('.').collect();
        for (i, part) in parts.iter().enumerate() {
            let Some((off, ty)) = self.member(&st, part)? else {
                return Ok(None);
            };
            bits += off;
            if i + 1 < parts.len() {
                st = match ty {
                    Type::Struct(s) | Type::Union(s) => s,
                    other => bail!(
                        "kernel BTF: `{root}.{}` is a {}, not a struct",
                        parts[..=i].join("."),
                        other.name()
                    ),
                };
            }
        }
        if !bits.is_multiple_of(8) {
            bail!("kernel BTF: `{root}.{path}` is a bitfield; proctor cannot read it");
        }
        Ok(Some(bits / 8))
    }

    /// First spelling of a field that exists, as (offset, index of the spelling).
    pub fn first_of(&self, root: &str, paths: &[&str]) -> Result<(u32, usize)> {
        for (i, p) in paths.iter().enumerate() {
            if let Some(off) = self.offset(root, p)? {
                return Ok((off, i));
            }
        }
        bail!(
            "kernel BTF: struct {root} has none of the fields {}; this kernel layout is not \
             supported yet, please report it with the output of `uname -r`",
            paths.join(", ")
        )
    }

    fn required(&self, root: &str, path: &str) -> Result<u32> {
        Ok(self.first_of(root, &[path])?.0)
    }
}

/// Every offset the programs need, resolved for the running kernel.
pub fn resolve(btf: &Btf) -> Result<Offsets> {
    let r = OffsetResolver::new(btf);
    let optional = |root: &str, path: &str| {
        r.offset(root, path)
            .ok()
            .flatten()
            .unwrap_or(proctor_common::OFFSET_MISSING)
    };
    let (mtime_sec, time_layout) = r.first_of(
        "inode",
        &["i_mtime_sec", "i_mtime.tv_sec", "__i_mtime.tv_sec"],
    )?;
    // Split fields (6.7+): i_mtime_sec/i_mtime_nsec. Older: struct timespec64.
    let timespec = time_layout != 0;
    let (mtime_nsec, ctime_sec, ctime_nsec) = if timespec {
        (
            r.first_of("inode", &["i_mtime.tv_nsec", "__i_mtime.tv_nsec"])?
                .0,
            r.first_of("inode", &["i_ctime.tv_sec", "__i_ctime.tv_sec"])?
                .0,
            r.first_of("inode", &["i_ctime.tv_nsec", "__i_ctime.tv_nsec"])?
                .0,
        )
    } else {
        (
            r.required("inode", "i_mtime_nsec")?,
            r.required("inode", "i_ctime_sec")?,
            r.required("inode", "i_ctime_nsec")?,
        )
    };
    Ok(Offsets {
        task_pid: r.required("task_struct", "pid")?,
        task_tgid: r.required("task_struct", "tgid")?,
        task_real_parent: r.required("task_struct", "real_parent")?,
        task_start_boottime: r
            .first_of("task_struct", &["start_boottime", "real_start_time"])?
            .0,
        task_mm: r.required("task_struct", "mm")?,
        task_cred: r.required("task_struct", "cred")?,
        task_signal: r.required("task_struct", "signal")?,
        task_exit_code: r.required("task_struct", "exit_code")?,
        task_group_leader: r.required("task_struct", "group_leader")?,
        signal_live: r.required("signal_struct", "live")?,
        cred_uid: r.required("cred", "uid")?,
        cred_gid: r.required("cred", "gid")?,
        cred_euid: r.required("cred", "euid")?,
        cred_egid: r.required("cred", "egid")?,
        mm_arg_start: r.required("mm_struct", "arg_start")?,
        mm_arg_end: r.required("mm_struct", "arg_end")?,
        bprm_file: r.required("linux_binprm", "file")?,
        bprm_filename: r.required("linux_binprm", "filename")?,
        bprm_interp: r.required("linux_binprm", "interp")?,
        file_inode: r.required("file", "f_inode")?,
        file_dentry: r.required("file", "f_path.dentry")?,
        dentry_name: r.required("dentry", "d_name.name")?,
        inode_ino: r.required("inode", "i_ino")?,
        inode_sb: r.required("inode", "i_sb")?,
        inode_size: r.required("inode", "i_size")?,
        inode_mode: r.required("inode", "i_mode")?,
        inode_nlink: r.first_of("inode", &["__i_nlink", "i_nlink"])?.0,
        inode_mtime_sec: mtime_sec,
        inode_mtime_nsec: mtime_nsec,
        inode_ctime_sec: ctime_sec,
        inode_ctime_nsec: ctime_nsec,
        inode_time_is_timespec: timespec as u32,
        sb_dev: r.required("super_block", "s_dev")?,
        sb_magic: r.required("super_block", "s_magic")?,
        task_files: r.required("task_struct", "files")?,
        files_fdt: r.required("files_struct", "fdt")?,
        fdt_fd: r.required("fdtable", "fd")?,
        fdt_max_fds: r.required("fdtable", "max_fds")?,
        file_f_mode: r.required("file", "f_mode")?,
        file_f_flags: r.required("file", "f_flags")?,
        file_vfsmount: r.required("file", "f_path.mnt")?,
        dentry_parent: r.required("dentry", "d_parent")?,
        dentry_inode: r.required("dentry", "d_inode")?,
        dentry_hash_len: r.required("dentry", "d_name.hash_len")?,
        vfsmount_root: r.required("vfsmount", "mnt_root")?,
        mount_mnt: r.required("mount", "mnt")?,
        mount_parent: r.required("mount", "mnt_parent")?,
        mount_mountpoint: r.required("mount", "mnt_mountpoint")?,
        regs_arg0: syscall_arg(&r, 0)?,
        regs_arg1: syscall_arg(&r, 1)?,
        regs_arg2: syscall_arg(&r, 2)?,
        file_private_data: r.required("file", "private_data")?,
        socket_sk: r.required("socket", "sk")?,
        socket_type: r.required("socket", "type")?,
        sock_protocol: r.required("sock", "sk_protocol")?,
        sock_err: r.required("sock", "sk_err")?,
        sock_state: r.required("sock", "__sk_common.skc_state")?,
        mm_exe_file: r.required("mm_struct", "exe_file")?,
        mm_env_start: r.required("mm_struct", "env_start")?,
        mm_env_end: r.required("mm_struct", "env_end")?,
        mapping_host: r.required("address_space", "host")?,
        // Only the unix-socket LSM hooks read these; a kernel without them
        // (CONFIG_UNIX=m) loads everything else.
        unix_sock_addr: optional("unix_sock", "addr"),
        unix_address_len: optional("unix_address", "len"),
        unix_address_name: optional("unix_address", "name"),
        sock_sk_type: optional("sock", "sk_type"),
    })
}

/// Offset in `struct pt_regs` of the register holding syscall argument `n`
/// as the task entered the kernel.
#[cfg(target_arch = "x86_64")]
fn syscall_arg(r: &OffsetResolver, n: usize) -> Result<u32> {
    r.required("pt_regs", ["di", "si", "dx"][n])
}

/// On arm64 x0 is overwritten by the return value; the entry value is kept in orig_x0.
#[cfg(target_arch = "aarch64")]
fn syscall_arg(r: &OffsetResolver, n: usize) -> Result<u32> {
    if n == 0 {
        r.required("pt_regs", "orig_x0")
    } else {
        Ok(r.required("pt_regs", "regs")? + 8 * n as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Reads the real kernel's BTF: these are facts of the machine, not mocks.
    #[test]
    fn resolves_every_offset_on_this_kernel() {
        let btf = load_kernel_btf(Path::new(VMLINUX_BTF)).unwrap();
        let off = resolve(&btf).unwrap();
        // pid and tgid are adjacent pid_t fields in every kernel since 2.6.
        assert_eq!(off.task_tgid, off.task_pid + 4);
        assert!(off.cred_euid > off.cred_uid);
        assert!(off.mm_arg_end > off.mm_arg_start);
        // i_mode is the first field of struct inode in every kernel since 2.6.
        assert_eq!(off.inode_mode, 0);
    }

    #[test]
    fn missing_field_is_a_clear_error() {
        let btf = load_kernel_btf(Path::new(VMLINUX_BTF)).unwrap();
        let r = OffsetResolver::new(&btf);
        assert_eq!(r.offset("task_struct", "no_such_field").unwrap(), None);
        let err = r.first_of("task_struct", &["nope1", "nope2"]).unwrap_err();
        assert!(err.to_string().contains("nope1, nope2"), "{err}");
    }

    #[test]
    fn missing_btf_file_names_the_fix() {
        let Err(err) = load_kernel_btf(Path::new("/nonexistent/vmlinux")) else {
            panic!("a missing BTF file must be an error");
        };
        assert!(err.to_string().contains("CONFIG_DEBUG_INFO_BTF"), "{err}");
    }
}
