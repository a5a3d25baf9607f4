//! Developer tasks: toolchain bootstrap, build, run, test, bench, VM tests.
//!
//! Everything a fresh machine needs is installed from here, idempotently, so
//! the README's two commands work on a new machine and in CI alike.

mod bench;
mod bench_sinks;
mod setup;
mod vm_initramfs;
mod vm_kernels;
mod vm_protocol;
mod vm_test;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, ensure, Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install the toolchain pieces (rust-src for nightly, bpf-linker, Debian
    /// packages incl. the arm64 cross toolchain and QEMU, kubectl) and the
    /// VM matrix's kernels.
    Setup,
    /// Build the agent (release) including its eBPF programs.
    Build {
        /// Cross-build for another architecture: `aarch64-unknown-linux-gnu`
        /// (nightly's rust-src and gcc-aarch64-linux-gnu; `cargo xtask setup`
        /// installs both). The eBPF object is the same for every arch.
        #[arg(long)]
        target: Option<String>,
    },
    /// Build and run the agent; arguments after `--` go to `proctor run`.
    Run {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// The whole test suite: formatting and clippy (workspace and eBPF crate),
    /// unit and real-kernel integration tests, the VM matrix, the bench smoke.
    Test {
        /// Extra arguments for `cargo test` (e.g. a test name filter).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// The end-to-end scenarios on other kernels (Debian's, under QEMU): by
    /// default 5.10, 6.1 and 6.12 with BPF LSM and 6.12 without it; `--all`
    /// adds arm64 6.12 and the multi-arch image test (both need the arm64
    /// cross build).
    VmTest {
        /// Kernel series (`5.10`, `6.1`, `6.12`, `6.12-arm64`) or exact Debian
        /// package names; `KERNEL:tracepoint` boots it without BPF LSM.
        kernels: Vec<String>,
        /// Every scenario on every guest, plus the arm64 guest and the
        /// multi-arch image (slow: a cross build and emulation).
        #[arg(long)]
        all: bool,
    },
    /// Benchmarks; writes BENCHMARKS.md.
    Bench {
        /// Each workload once and small: proves the harness works (part of the test suite).
        #[arg(long)]
        smoke: bool,
        /// Only one section, printed (BENCHMARKS.md untouched): `--only
        /// drops` (the drop onset), `--only profile` (unwatched opens and
        /// execs), `--only soak` (5 minutes of mixed load) or `--only
        /// instructions` (callgrind's count per record), to measure a
        /// change without the whole run.
        #[arg(long, value_parser = ["drops", "profile", "soak", "instructions"])]
        only: Option<String>,
    },
}

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: {cmd:?}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {:?}", cmd.get_program()))?;
    if !status.success() {
        bail!("{:?} failed with {status}", cmd.get_program());
    }
    Ok(())
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

/// Where cargo puts its output: `CARGO_TARGET_DIR` when set, as cargo does.
/// Where cargo puts its output: CARGO_TARGET_DIR when set (relative to the
/// workspace, as cargo reads it), else `target`.
/// The integration tests that need the cross-built arm64 agent.
const MULTIARCH_TOPIC: &str = "deploy::multiarch";

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), |d| root().join(d))
}

pub fn build_release() -> Result<PathBuf> {
    run(cargo().args(["build", "--release", "-p", "proctor"]))?;
    Ok(target_dir().join("release/proctor"))
}

/// Release build of `bin` (in `package`) for `arch`. Other arches build
/// their std from nightly's rust-src (rustup cannot download a prebuilt one
/// here) and link with the Debian cross gcc, in `<target>/cross` (a target
/// dir of their own: a native build never waits for a cross build's lock).
pub fn build_for(arch: vm_kernels::Arch, package: &str, bin: &str) -> Result<PathBuf> {
    if arch == vm_kernels::Arch::native() {
        run(cargo().args(["build", "--release", "-p", package, "--bin", bin]))?;
        return Ok(target_dir().join("release").join(bin));
    }
    let triple = arch.triple();
    let env = triple.to_uppercase().replace('-', "_");
    let gcc = format!("{}-gcc", arch.gnu());
    ensure!(
        Command::new(&gcc).arg("--version").output().is_ok(),
        "{gcc} not found: cross-building for {triple} needs the Debian cross toolchain \
         (`cargo xtask setup` installs gcc-{}-linux-gnu and libc6-dev-{}-cross)",
        arch.gnu().split('-').next().unwrap_or_default(),
        arch.debian()
    );
    let mut c = Command::new("rustup");
    c.args(["run", "nightly", "cargo", "build", "--release"])
        .args(["-Zbuild-std=std,panic_abort", "--target", triple])
        .args(["-p", package, "--bin", bin])
        .current_dir(root())
        .env("CARGO_TARGET_DIR", cross_target_dir())
        .env(format!("CARGO_TARGET_{env}_LINKER"), &gcc)
        .env(format!("CC_{}", triple.replace('-', "_")), &gcc)
        .env(
            format!("AR_{}", triple.replace('-', "_")),
            format!("{}-ar", arch.gnu()),
        );
    for var in ["RUSTC", "RUSTC_WRAPPER", "RUSTUP_TOOLCHAIN", "CARGO"] {
        c.env_remove(var);
    }
    run(&mut c)?;
    Ok(cross_target_dir().join(triple).join("release").join(bin))
}

pub fn cross_target_dir() -> PathBuf {
    target_dir().join("cross")
}

/// The eBPF crate is built apart from the workspace (nightly, BPF target), so
/// the workspace's fmt and clippy never see it: check it with its own
/// toolchain, in the target dir agent/build.rs uses, so nothing builds twice.
fn lint_ebpf() -> Result<()> {
    let ebpf = root().join("ebpf");
    let path = format!(
        "{}:{}",
        setup::tools_dir().join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let nightly = |args: &[&str]| {
        let mut c = Command::new("rustup");
        c.args(["run", "nightly", "cargo"])
            .args(args)
            .current_dir(&ebpf)
            .env("CARGO_TARGET_DIR", root().join("target/ebpf"))
            .env("PATH", &path);
        for var in ["RUSTC", "RUSTC_WRAPPER", "RUSTUP_TOOLCHAIN", "CARGO"] {
            c.env_remove(var);
        }
        c
    };
    run(&mut nightly(&["fmt", "--check"]))?;
    run(&mut nightly(&[
        "clippy",
        "--release",
        "--",
        "-D",
        "warnings",
    ]))
}

/// The topic modules of the integration test binary, from its `main.rs`.
fn integration_topics() -> Result<Vec<String>> {
    let main = root().join("agent/tests/integration/main.rs");
    let text = std::fs::read_to_string(&main)
        .with_context(|| format!("cannot read {}", main.display()))?;
    let topics: Vec<String> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("mod ")?.strip_suffix(';'))
        .filter(|m| *m != "harness")
        .map(str::to_string)
        .collect();
    if topics.is_empty() {
        bail!("{} declares no topic modules", main.display());
    }
    Ok(topics)
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Setup => setup::all().and_then(|()| setup::kernels()),
        Cmd::Build { target } => {
            setup::all()?;
            let arch = match target.as_deref() {
                None => vm_kernels::Arch::native(),
                Some(t) => vm_kernels::Arch::of_triple(t)?,
            };
            let bin = build_for(arch, "proctor", "proctor")?;
            eprintln!("xtask: built {}", bin.display());
            Ok(())
        }
        Cmd::Run { args } => {
            setup::all()?;
            let bin = build_release()?;
            let mut cmd = Command::new(bin);
            cmd.arg("run").args(args);
            use std::os::unix::process::CommandExt;
            Err(cmd.exec()).context("cannot exec proctor")
        }
        Cmd::Test { args } => {
            setup::all()?;
            run(cargo().args(["fmt", "--all", "--check"]))?;
            run(cargo().args([
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]))?;
            lint_ebpf()?;
            // The integration tests drive the release binary, as users run it
            // (the harness runs PROCTOR_BIN when it is set).
            let bin = build_release()?;
            // The arm64 agent (a cross build of its own, ~45 min cold on 2
            // cores) and what needs it, the multi-arch image test and the
            // arm64 guest, run in `cargo xtask vm-test --all`.
            let skip_arm64 = ["--skip".to_string(), format!("{MULTIARCH_TOPIC}::")];
            if args.is_empty() {
                // Unit tests of every crate, then the integration binary one
                // topic per process: a topic's agents, cgroups and statics
                // end with its process, as they did when topics were
                // separate binaries (sharing one process, later topics saw
                // earlier topics' state and timed out).
                run(cargo()
                    .args(["test", "--workspace", "--release", "--lib", "--bins"])
                    .env("PROCTOR_BIN", &bin))?;
                // Every topic runs even after one fails, so that one run shows
                // every failure; the command still fails at the end.
                let mut failed = Vec::new();
                let topics = integration_topics()?;
                for topic in &topics {
                    // libtest filters by substring: `secrets::` also selects
                    // `kube_secrets::`, which must run in its own process.
                    let filter = format!("{topic}::");
                    let skips: Vec<String> = topics
                        .iter()
                        .filter(|o| *o != topic && format!("{o}::").contains(&filter))
                        .flat_map(|o| ["--skip".to_string(), format!("{o}::")])
                        .collect();
                    let r = run(cargo()
                        .args(["test", "--workspace", "--release", "--test", "integration"])
                        .arg(&filter)
                        .arg("--")
                        .args(&skips)
                        .args(&skip_arm64)
                        .env("PROCTOR_BIN", &bin));
                    if let Err(e) = r {
                        eprintln!("xtask: integration topic {topic} failed: {e:#}");
                        failed.push(topic.clone());
                    }
                }
                if !failed.is_empty() {
                    bail!("integration topics failed: {}", failed.join(", "));
                }
            } else {
                run(cargo()
                    .args(["test", "--workspace", "--release"])
                    .args(&args)
                    .arg("--")
                    .args(&skip_arm64)
                    .env("PROCTOR_BIN", &bin))?;
            }
            // The same scenarios on the other supported kernels.
            vm_test::run_matrix(&[], &bin, false)?;
            run(cargo().args(["run", "--quiet", "-p", "xtask", "--", "bench", "--smoke"]))?;
            Ok(())
        }
        Cmd::VmTest { kernels, all } => {
            setup::all()?;
            let bin = build_release()?;
            if all {
                let arm64 = build_for(vm_kernels::Arch::Arm64, "proctor", "proctor")?;
                run(cargo()
                    .args(["test", "--workspace", "--release", "--test", "integration"])
                    .arg(format!("{MULTIARCH_TOPIC}::"))
                    .env("PROCTOR_BIN", &bin)
                    .env("PROCTOR_BIN_ARM64", &arm64))?;
            }
            vm_test::run_matrix(&kernels, &bin, all)
        }
        Cmd::Bench {
            only: Some(only),
            smoke,
        } => {
            // PROCTOR_BIN: measure a saved build (a baseline) without rebuilding.
            let bin =
                std::env::var_os("PROCTOR_BIN").map_or_else(build_release, |b| Ok(b.into()))?;
            bench::run_only(&only, &bin, smoke)
        }
        Cmd::Bench { smoke, only: None } => {
            setup::all()?;
            let bin = build_release()?;
            bench::run(&bin, smoke).and_then(|()| bench_sinks::run(&bin, smoke))
        }
    }
}
