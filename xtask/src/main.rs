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

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install the toolchain pieces (rust-src for nightly, bpf-linker, Debian packages).
    Setup,
    /// Build the agent (release) including its eBPF programs.
    Build,
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
    /// default 6.1 and 6.12 with BPF LSM, and 6.12 without it.
    VmTest {
        /// Kernel series (`6.1`, `6.12`) or exact Debian package names;
        /// `KERNEL:tracepoint` boots it without BPF LSM.
        kernels: Vec<String>,
    },
    /// Benchmarks; writes BENCHMARKS.md.
    Bench {
        /// Each workload once and small: proves the harness works (part of the test suite).
        #[arg(long)]
        smoke: bool,
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

pub fn build_release() -> Result<PathBuf> {
    run(cargo().args(["build", "--release", "-p", "proctor"]))?;
    // Where cargo put it: CARGO_TARGET_DIR when set (worktrees share none).
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map_or_else(|| root().join("target"), |d| root().join(d));
    Ok(target.join("release/proctor"))
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
        Cmd::Setup => setup::all(),
        Cmd::Build => {
            setup::all()?;
            build_release().map(|_| ())
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
                    .env("PROCTOR_BIN", &bin))?;
            }
            // The same scenarios on the other supported kernels.
            vm_test::run_matrix(&[], &bin)?;
            run(cargo().args(["run", "--quiet", "-p", "xtask", "--", "bench", "--smoke"]))?;
            Ok(())
        }
        Cmd::VmTest { kernels } => {
            setup::all()?;
            let bin = build_release()?;
            vm_test::run_matrix(&kernels, &bin)
        }
        Cmd::Bench { smoke } => {
            setup::all()?;
            let bin = build_release()?;
            bench::run(&bin, smoke).and_then(|()| bench_sinks::run(&bin, smoke))
        }
    }
}
