//! `cargo xtask vm-test [KERNEL[:tracepoint]...]`: the end-to-end scenarios
//! on other kernels. Each Debian kernel boots under QEMU (software emulation:
//! this machine's /dev/kvm cannot run ordinary guests), runs `vm-guest`
//! against the real agent, and reports one line per scenario on its serial
//! console; this side collects them and fails on anything but a PASS for
//! every scenario on every boot. A kernel boots with BPF LSM active (the
//! agent must pick its LSM hooks), or with `:tracepoint` without it (the
//! agent must fall back to the tracepoint path: LSM programs would attach
//! there and never run). Guests of another architecture (`6.12-arm64`) run
//! under that arch's QEMU with a cross-built agent; being slow under
//! emulation, they run the load-and-attest subset unless `--all` is given.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};

use crate::{
    run, target_dir,
    vm_kernels::{self, Arch, Kernel},
    vm_protocol::{Outcome, DONE, LOAD_AND_ATTEST, SCENARIOS},
};

/// Upper bound for one guest, boot to power-off; a hung guest is killed and
/// its scenarios count as failed.
const GUEST_TIMEOUT: Duration = Duration::from_secs(900);
/// The boots `cargo xtask vm-test` (and `cargo xtask test`) runs by default.
pub const DEFAULT_MATRIX: &[&str] = &["5.10", "6.1", "6.12", "6.12:tracepoint"];
/// Added by `--all`: the arm64 guests (a cross build, ~45 min cold, and TCG
/// emulation of another architecture: too slow for the default suite on 2
/// cores). Both boots: only the syscall set reads the syscall's saved
/// registers, whose layout is arm64's own (`orig_x0`, `regs[n]`).
pub const ALL_EXTRA: &[&str] = &["6.12-arm64", "6.12-arm64:tracepoint"];
const CMDLINE: &str = "panic=-1 quiet";
/// `bpf` in the list makes BPF LSM programs run (attached without it, they never fire).
const LSMS: &str = "lockdown,capability,landlock,yama,apparmor";

/// One guest: a kernel and whether BPF LSM is active in it.
struct Boot {
    kernel: Kernel,
    bpf_lsm: bool,
    /// `6.1`, `6.12:tracepoint`
    label: String,
    /// What the guest runs: every scenario, or the load-and-attest subset.
    scenarios: &'static [&'static str],
}

impl Boot {
    fn cmdline(&self) -> String {
        let console = match self.kernel.arch {
            Arch::Amd64 => "ttyS0",
            Arch::Arm64 => "ttyAMA0",
        };
        let mut line = format!("console={console} {CMDLINE}");
        // proctor.hooks tells the guest driver which hook set to expect.
        if self.bpf_lsm {
            line.push_str(&format!(" lsm={LSMS},bpf proctor.hooks=lsm"));
        } else {
            line.push_str(&format!(" lsm={LSMS} proctor.hooks=tracepoint"));
        }
        if self.scenarios.len() < SCENARIOS.len() {
            line.push_str(&format!(" proctor.scenarios={}", self.scenarios.join(",")));
        }
        line
    }

    fn qemu(&self) -> Command {
        let mut c;
        match self.kernel.arch {
            Arch::Amd64 => {
                c = Command::new("qemu-system-x86_64");
                c.args(["-accel", "tcg", "-cpu", "max"]);
            }
            Arch::Arm64 => {
                c = Command::new("qemu-system-aarch64");
                c.args(["-M", "virt", "-accel", "tcg", "-cpu", "max"]);
            }
        }
        c
    }
}

fn boot_of(spec: &str, all: bool) -> Result<Boot> {
    let (which, bpf_lsm) = match spec.rsplit_once(':') {
        Some((k, "tracepoint")) => (k, false),
        Some((_, other)) => bail!(
            "`{spec}`: unknown boot variant `{other}`; `KERNEL:tracepoint` boots without BPF LSM"
        ),
        None => (spec, true),
    };
    let kernel = vm_kernels::fetch(which)?;
    let scenarios = if all || kernel.arch == Arch::native() {
        SCENARIOS
    } else {
        LOAD_AND_ATTEST
    };
    Ok(Boot {
        kernel,
        bpf_lsm,
        label: spec.to_string(),
        scenarios,
    })
}

fn work_dir() -> PathBuf {
    target_dir().join("vm-test")
}

/// The initramfs for guests of `arch`: the agent and driver built for it.
fn initramfs(arch: Arch, native_proctor: &Path) -> Result<PathBuf> {
    let (proctor, busybox) = if arch == Arch::native() {
        (native_proctor.to_path_buf(), PathBuf::from("/bin/busybox"))
    } else {
        (
            crate::build_for(arch, "proctor", "proctor")?,
            vm_kernels::fetch_busybox(arch)?,
        )
    };
    let guest = crate::build_for(arch, "xtask", "vm-guest")?;
    let initrd = work_dir().join(format!("initramfs-{}.cpio", arch.debian()));
    crate::vm_initramfs::build(arch, &proctor, &guest, &busybox, &initrd)?;
    Ok(initrd)
}

pub fn run_matrix(which: &[String], proctor: &Path, all: bool) -> Result<()> {
    let which: Vec<String> = if which.is_empty() {
        let extra = if all { ALL_EXTRA } else { &[] };
        DEFAULT_MATRIX
            .iter()
            .chain(extra)
            .map(|s| s.to_string())
            .collect()
    } else {
        which.to_vec()
    };
    let boots = which
        .iter()
        .map(|w| boot_of(w, all))
        .collect::<Result<Vec<_>>>()?;
    check_layouts(&boots)?;

    std::fs::create_dir_all(work_dir())?;
    let mut initrds: Vec<(Arch, PathBuf)> = Vec::new();
    for b in &boots {
        if !initrds.iter().any(|(a, _)| *a == b.kernel.arch) {
            initrds.push((b.kernel.arch, initramfs(b.kernel.arch, proctor)?));
        }
    }

    let mut results = Vec::new();
    for b in &boots {
        let started = Instant::now();
        let initrd = &initrds.iter().find(|(a, _)| *a == b.kernel.arch).unwrap().1;
        let outcomes = boot(b, initrd)?;
        results.push((b, outcomes, started.elapsed()));
    }
    print_table(&results);
    let failed: Vec<String> = results
        .iter()
        .filter(|(b, o, _)| !all_passed(b, o))
        .map(|(b, _, _)| format!("{} ({})", b.label, b.kernel.package))
        .collect();
    if !failed.is_empty() {
        bail!(
            "vm-test failed on {} (console logs in {})",
            failed.join(", "),
            work_dir().display()
        );
    }
    Ok(())
}

/// The struct-offset test against each guest kernel's BTF, run on this host
/// (the guests then prove the resolved offsets give right events). Kernels
/// of another arch are left to their guests: the resolver is built for this
/// host's arch (its `pt_regs` registers).
fn check_layouts(boots: &[Boot]) -> Result<()> {
    let mut spec: Vec<String> = boots
        .iter()
        .filter(|b| b.kernel.arch == Arch::native())
        .map(|b| format!("{}={}", b.kernel.series, b.kernel.btf.display()))
        .collect();
    spec.sort_unstable();
    spec.dedup();
    if spec.is_empty() {
        return Ok(());
    }
    run(crate::cargo()
        .args([
            "test",
            "--release",
            "-p",
            "proctor",
            "--test",
            "integration",
            "kernel_layouts::",
            "--",
            "--ignored",
            "--nocapture",
        ])
        .env("PROCTOR_GUEST_BTF", spec.join(",")))
}

/// Whether every scenario the guest was asked to run passed (the others
/// are `None`, not asked for: `b.scenarios` says which).
fn all_passed(b: &Boot, outcomes: &[Option<Outcome>]) -> bool {
    SCENARIOS
        .iter()
        .zip(outcomes)
        .filter(|(s, _)| b.scenarios.contains(s))
        .all(|(_, o)| o.as_ref().is_some_and(|o| o.pass))
}

/// Boots `b` and returns each scenario's outcome (None: never reported).
fn boot(b: &Boot, initrd: &Path) -> Result<Vec<Option<Outcome>>> {
    let k = &b.kernel;
    eprintln!(
        "xtask: booting {} under QEMU (TCG), BPF LSM {}, {} of {} scenarios",
        k.package,
        if b.bpf_lsm { "active" } else { "inactive" },
        b.scenarios.len(),
        SCENARIOS.len()
    );
    let qemu = format!("{:?}", b.qemu().get_program());
    let mut child = b
        .qemu()
        .args(["-m", "512", "-smp", "1"])
        .args(["-nodefaults", "-display", "none", "-serial", "stdio"])
        .args(["-no-reboot", "-nic", "none"])
        .arg("-kernel")
        .arg(&k.vmlinux)
        .arg("-initrd")
        .arg(initrd)
        .arg("-append")
        .arg(b.cmdline())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| {
            format!(
                "cannot start {qemu} (`cargo xtask setup` installs qemu-system-x86 and \
                 qemu-system-arm)"
            )
        })?;
    let (tx, rx) = mpsc::channel::<String>();
    for pipe in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    }
    drop(tx);
    let deadline = Instant::now() + GUEST_TIMEOUT;
    let mut console = Vec::new();
    let mut outcomes: Vec<Option<Outcome>> = vec![None; SCENARIOS.len()];
    let mut timed_out = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let line = line.trim_end_matches('\r').to_string();
                if let Some(o) = Outcome::parse(&line) {
                    eprintln!("[{}] {}", b.label, o.line());
                    if let Some(i) = SCENARIOS.iter().position(|s| *s == o.scenario) {
                        outcomes[i] = Some(o);
                    }
                } else if line.contains(DONE) {
                    eprintln!("[{}] {}", b.label, line.trim());
                }
                console.push(line);
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                timed_out = true;
                let _ = child.kill();
                break;
            }
        }
    }
    let status = child.wait()?;
    let log = work_dir().join(format!("console-{}.log", b.label.replace(':', "-")));
    std::fs::write(&log, console.join("\n"))?;
    if timed_out {
        eprintln!(
            "xtask: {} did not power off within {GUEST_TIMEOUT:?}; killed",
            k.package
        );
    } else if !status.success() {
        eprintln!("xtask: qemu exited with {status} for {}", k.package);
    }
    if !all_passed(b, &outcomes) {
        eprintln!(
            "xtask: console of {} (also in {}):",
            k.package,
            log.display()
        );
        for l in console.iter().rev().take(60).rev() {
            eprintln!("  | {l}");
        }
    }
    Ok(outcomes)
}

fn print_table(results: &[(&Boot, Vec<Option<Outcome>>, Duration)]) {
    let width = SCENARIOS.iter().map(|s| s.len()).max().unwrap_or(8) + 2;
    // Wide enough for the longest label (`6.12-arm64:tracepoint`).
    let col = results
        .iter()
        .map(|(b, _, _)| b.label.len() + 2)
        .max()
        .unwrap_or(0)
        .max(10);
    let mut head = format!("{:<width$}", "scenario");
    for (b, _, _) in results {
        head.push_str(&format!("{:<col$}", b.label));
    }
    eprintln!("\nvm-test: Debian kernels under QEMU (TCG)\n{head}");
    for (i, s) in SCENARIOS.iter().enumerate() {
        let mut row = format!("{s:<width$}");
        for (b, o, _) in results {
            let cell = match &o[i] {
                Some(o) if o.pass => "PASS",
                Some(_) => "FAIL",
                None if !b.scenarios.contains(s) => "-",
                None => "missing",
            };
            row.push_str(&format!("{cell:<col$}"));
        }
        eprintln!("{row}");
    }
    for (b, _, took) in results {
        eprintln!("{}: {} in {:.0?}", b.label, b.kernel.package, took);
    }
}
