//! The guests' initramfs: busybox (static), the proctor binary, the
//! `vm-guest` scenario driver, the shared libraries they need (the host's,
//! or the Debian cross libraries for another arch), and an init that mounts
//! what the agent needs and runs the driver.

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{ensure, Context, Result};

use crate::vm_kernels::Arch;

const INIT: &str = r#"#!/bin/sh
/bin/busybox --install -s /bin
export PATH=/bin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -t bpf bpf /sys/fs/bpf
mount -t tracefs tracefs /sys/kernel/tracing
mount -t securityfs securityfs /sys/kernel/security
mount -t debugfs debugfs /sys/kernel/debug
mkdir -p /sys/fs/cgroup && mount -t cgroup2 cgroup2 /sys/fs/cgroup
ip link set lo up
hostname proctor-vm
/bin/vm-guest
echo "PROCTOR-VM-EXIT $?"
poweroff -f
"#;

/// Builds `out` (cpio newc) from a fresh staging tree next to it, for
/// guests of `arch` (the binaries must be built for it).
pub fn build(arch: Arch, proctor: &Path, guest: &Path, busybox: &Path, out: &Path) -> Result<()> {
    let root = out.with_extension("root");
    let _ = std::fs::remove_dir_all(&root);
    for d in [
        "bin", "dev", "proc", "sys", "tmp", "run", "root", "etc", "opt",
    ] {
        std::fs::create_dir_all(root.join(d))?;
    }
    ensure!(
        busybox.exists(),
        "{} is missing: install busybox-static (`cargo xtask setup` does)",
        busybox.display()
    );
    std::fs::copy(busybox, root.join("bin/busybox"))?;
    std::os::unix::fs::symlink("busybox", root.join("bin/sh"))?;
    // Debug info is most of the agent's size; the guest needs none of it.
    // The host's objcopy reads only its own arch: another arch's binaries
    // take the cross binutils (gcc-<arch>-linux-gnu pulls them in).
    let objcopy = if arch == Arch::native() {
        "objcopy".to_string()
    } else {
        format!("{}-objcopy", arch.gnu())
    };
    for (src, name) in [(proctor, "proctor"), (guest, "vm-guest")] {
        let dst = root.join("bin").join(name);
        crate::run(
            Command::new(&objcopy)
                .arg("--strip-debug")
                .arg(src)
                .arg(&dst),
        )?;
        let libs = if arch == Arch::native() {
            shared_libraries(src)?
                .into_iter()
                .map(|l| (l.clone(), l))
                .collect()
        } else {
            cross_libraries(arch, src)?
        };
        for (lib, guest_path) in libs {
            let at = root.join(guest_path.strip_prefix("/").unwrap_or(&guest_path));
            std::fs::create_dir_all(at.parent().unwrap())?;
            if !at.exists() {
                std::fs::copy(&lib, &at).with_context(|| format!("copy {}", lib.display()))?;
            }
        }
    }
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")?;
    std::fs::write(root.join("etc/group"), "root:x:0:\n")?;
    let init = root.join("init");
    std::fs::write(&init, INIT)?;
    std::fs::set_permissions(&init, std::fs::Permissions::from_mode(0o755))?;

    let file = std::fs::File::create(out).with_context(|| format!("create {}", out.display()))?;
    let status = Command::new("sh")
        .args(["-c", "find . -print | cpio -o -H newc -R 0:0 --quiet"])
        .current_dir(&root)
        .stdout(file)
        .status()
        .context("cannot run find | cpio (install cpio: `cargo xtask setup` does)")?;
    ensure!(status.success(), "cpio failed with {status}");
    Ok(())
}

/// The shared libraries (and loader) `bin` needs, from `ldd`.
fn shared_libraries(bin: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd")
        .arg(bin)
        .stderr(Stdio::null())
        .output()
        .context("cannot run ldd")?;
    // A static binary makes ldd fail: nothing to copy.
    Ok(parse_ldd(&String::from_utf8_lossy(&out.stdout)))
}

/// A foreign binary's libraries (host path, path in the guest): ldd cannot
/// run it, so its NEEDED entries and interpreter come from `readelf` and are
/// found among the Debian cross libraries (`/usr/<gnu>/lib`). They go where
/// that arch's own Debian puts them (`/lib/<gnu>/`), the loader at the path
/// the binary names.
fn cross_libraries(arch: Arch, bin: &Path) -> Result<Vec<(PathBuf, PathBuf)>> {
    let out = Command::new("readelf")
        .args(["-d", "-l", "-W"])
        .arg(bin)
        .output()
        .context("cannot run readelf (binutils)")?;
    ensure!(out.status.success(), "readelf {} failed", bin.display());
    let text = String::from_utf8_lossy(&out.stdout);
    let cross = PathBuf::from("/usr").join(arch.gnu()).join("lib");
    let mut libs = Vec::new();
    for (name, interp) in parse_readelf(&text) {
        let file = Path::new(&name).file_name().unwrap_or_default().to_owned();
        let host = cross.join(&file);
        ensure!(
            host.exists(),
            "{} needs {name}, not in {} (install libc6-dev-{}-cross: `cargo xtask setup` does)",
            bin.display(),
            cross.display(),
            arch.debian()
        );
        let guest = if interp {
            PathBuf::from(&name)
        } else {
            Path::new("/lib").join(arch.gnu()).join(&file)
        };
        libs.push((host, guest));
    }
    Ok(libs)
}

/// `(name, is_interpreter)` from `readelf -d -l -W` output.
fn parse_readelf(text: &str) -> Vec<(String, bool)> {
    text.lines()
        .filter_map(|l| {
            if let Some(rest) = l.split("Requesting program interpreter: ").nth(1) {
                return Some((rest.trim_end_matches(']').to_string(), true));
            }
            let rest = l.split("Shared library: [").nth(1)?;
            Some((rest.trim_end_matches(']').to_string(), false))
        })
        .collect()
}

fn parse_ldd(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            let path = match l.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next()?,
                None => l.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readelf_output_gives_needed_libraries_and_interpreter() {
        let text = "      [Requesting program interpreter: /lib/ld-linux-aarch64.so.1]\n\
                    \x20 LOAD 0x000000 0x0000000000000000\n\
                    \x200x0000000000000001 (NEEDED) Shared library: [libgcc_s.so.1]\n\
                    \x200x0000000000000001 (NEEDED) Shared library: [libc.so.6]\n";
        assert_eq!(
            parse_readelf(text),
            vec![
                ("/lib/ld-linux-aarch64.so.1".to_string(), true),
                ("libgcc_s.so.1".to_string(), false),
                ("libc.so.6".to_string(), false),
            ]
        );
    }

    #[test]
    fn ldd_output_gives_libraries_and_loader() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                    \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f72)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f72)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f72)\n";
        assert_eq!(
            parse_ldd(text),
            vec![
                PathBuf::from("/lib/x86_64-linux-gnu/libgcc_s.so.1"),
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            ]
        );
    }
}
