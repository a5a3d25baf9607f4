//! The multi-arch image: deploy/container/build-multiarch.sh builds one
//! manifest list for linux/amd64 and linux/arm64 with Podman, offline; each
//! entry holds a proctor of its own machine whose loader and libraries are
//! all there (the arm64 one runs under qemu-aarch64 from the image's files).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::Value;

use super::*;
use crate::harness::{exclusive, proctor_bin, run_ok, run_tool, text};

const PODMAN_HINT: &str = "apt-get install podman runc";

/// The cross-built arm64 agent: `PROCTOR_BIN_ARM64`, or beside the binary
/// under test, in the target dir's `cross/` (`cargo xtask build --target
/// aarch64-unknown-linux-gnu` puts it there).
fn arm64_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("PROCTOR_BIN_ARM64").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let release = Path::new(env!("CARGO_BIN_EXE_proctor")).parent().unwrap();
    release.join("../cross/aarch64-unknown-linux-gnu/release/proctor")
}

/// ELF e_machine: 62 x86-64, 183 AArch64.
fn elf_machine(path: &Path) -> u16 {
    let head = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    assert!(
        head.starts_with(b"\x7fELF"),
        "{} is not ELF",
        path.display()
    );
    u16::from_le_bytes([head[18], head[19]])
}

/// Removes the manifest list and the per-arch images it names.
struct ManifestGuard {
    tag: String,
    images: Vec<String>,
}

impl Drop for ManifestGuard {
    fn drop(&mut self) {
        let _ = Command::new("podman")
            .args(["manifest", "rm", &self.tag])
            .output();
        for id in &self.images {
            let _ = Command::new("podman").args(["rmi", "-f", id]).output();
        }
    }
}

/// The root file system of the image `reference`, exported into `dir`.
fn export(reference: &str, dir: &Path) {
    let o = run_ok(
        Command::new("podman").args(["create", reference]),
        PODMAN_HINT,
    );
    let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
    std::fs::create_dir_all(dir).unwrap();
    let tar = dir.with_extension("tar");
    let r = run_tool(
        Command::new("podman")
            .args(["export", "-o"])
            .arg(&tar)
            .arg(&id),
        PODMAN_HINT,
    );
    let _ = Command::new("podman").args(["rm", "-f", &id]).output();
    assert!(r.status.success(), "podman export:\n{}", text(&r));
    run_ok(
        Command::new("tar").arg("-xf").arg(&tar).arg("-C").arg(dir),
        "tar",
    );
}

#[test]
fn multi_arch_image_lists_amd64_and_arm64_each_with_a_proctor_of_its_own_machine() {
    let _machine = exclusive();
    let arm64 = arm64_bin();
    assert!(
        arm64.is_file(),
        "no arm64 agent at {}: build it with `cargo xtask build --target \
         aarch64-unknown-linux-gnu` (or set PROCTOR_BIN_ARM64)",
        arm64.display()
    );
    let tag = format!("localhost/proctor-multiarch:test-{}", std::process::id());
    let mut guard = ManifestGuard {
        tag: tag.clone(),
        images: Vec::new(),
    };
    run_ok(
        Command::new("sh")
            .arg(deploy().join("container/build-multiarch.sh"))
            .arg("--amd64")
            .arg(proctor_bin())
            .arg("--arm64")
            .arg(&arm64)
            .arg(&tag),
        PODMAN_HINT,
    );
    let o = run_ok(
        Command::new("podman").args(["manifest", "inspect", &tag]),
        PODMAN_HINT,
    );
    let list: Value = serde_json::from_slice(&o.stdout).unwrap();
    let entries = list["manifests"].as_array().cloned().unwrap_or_default();
    let mut arches: Vec<(String, String)> = entries
        .iter()
        .map(|m| {
            (
                m["platform"]["architecture"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                m["digest"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    arches.sort();
    let names: Vec<&str> = arches.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(
        names,
        ["amd64", "arm64"],
        "manifest list of {tag}:\n{list:#}"
    );
    for m in &entries {
        assert_eq!(m["platform"]["os"], "linux", "manifest entry: {m}");
    }
    for (_, digest) in &arches {
        let o = run_ok(
            Command::new("podman").args([
                "image",
                "inspect",
                "--format",
                "{{.Id}}",
                &format!("{tag}@{digest}"),
            ]),
            PODMAN_HINT,
        );
        guard
            .images
            .push(String::from_utf8_lossy(&o.stdout).trim().to_string());
    }

    let scratch = tempfile::tempdir().unwrap();
    for ((arch, digest), machine) in arches.iter().zip([62u16, 183]) {
        let root = scratch.path().join(arch);
        export(&format!("{tag}@{digest}"), &root);
        let bin = root.join("usr/bin/proctor");
        assert_eq!(
            elf_machine(&bin),
            machine,
            "{arch} entry's /usr/bin/proctor has the wrong ELF machine"
        );
    }
    // The arm64 entry is complete: its own loader and libraries run it.
    let root = scratch.path().join("arm64");
    let o = run_tool(
        Command::new("qemu-aarch64")
            .arg("-L")
            .arg(&root)
            .arg(root.join("usr/bin/proctor"))
            .arg("--version"),
        "apt-get install qemu-user (cargo xtask setup does)",
    );
    assert!(
        o.status.success() && String::from_utf8_lossy(&o.stdout).starts_with("proctor "),
        "the arm64 image's proctor under qemu-aarch64:\n{}",
        text(&o)
    );
}

#[test]
fn image_recipe_refuses_an_architecture_it_has_no_binary_for() {
    // The negative beside the manifest test: a platform without a rootfs in
    // the context fails the build, naming what is missing, instead of
    // producing an image without the agent. The positive control: the same
    // context builds for the arch it has.
    let scratch = tempfile::tempdir().unwrap();
    let ctx = scratch.path().join("context");
    run_ok(
        Command::new("sh")
            .arg(deploy().join("container/build-rootfs.sh"))
            .arg("--binary")
            .arg(proctor_bin())
            .arg(&ctx),
        "libc-bin (ldd), binutils (objcopy, readelf)",
    );
    assert!(ctx.join("rootfs-amd64/usr/bin/proctor").is_file());
    let build = |platform: &str, tag: &str| {
        run_tool(
            Command::new("podman")
                .args(["build", "--layers=false", "--network", "none"])
                .args(["--platform", platform, "-t", tag, "-f"])
                .arg(deploy().join("container/Containerfile"))
                .arg(&ctx),
            PODMAN_HINT,
        )
    };
    let pid = std::process::id();
    let good = format!("localhost/proctor-arch-ok:test-{pid}");
    let o = build("linux/amd64", &good);
    let _ = Command::new("podman").args(["rmi", "-f", &good]).output();
    assert!(o.status.success(), "linux/amd64 build:\n{}", text(&o));
    let bad = format!("localhost/proctor-arch-missing:test-{pid}");
    let o = build("linux/riscv64", &bad);
    let _ = Command::new("podman").args(["rmi", "-f", &bad]).output();
    assert!(
        !o.status.success() && text(&o).contains("rootfs-riscv64"),
        "a linux/riscv64 build from an amd64-only context must fail naming rootfs-riscv64:\n{}",
        text(&o)
    );
}
