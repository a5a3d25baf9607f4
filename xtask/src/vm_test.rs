//! `cargo xtask vm-test [KERNEL...]`: the end-to-end scenarios on other
//! kernels. Each Debian kernel boots under QEMU (software emulation: this
//! machine's /dev/kvm cannot run ordinary guests) with BPF LSM enabled, runs
//! `vm-guest` against the real agent, and reports one line per scenario on
//! its serial console; this side collects them and fails on anything but a
//! PASS for every scenario on every kernel.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};

use crate::{
    cargo, root, run,
    vm_kernels::{self, Kernel},
    vm_protocol::{Outcome, DONE, SCENARIOS},
};

/// Upper bound for one guest, boot to power-off; a hung guest is killed and
/// its scenarios count as failed.
const GUEST_TIMEOUT: Duration = Duration::from_secs(900);
/// `bpf` in the list makes BPF LSM programs run (attached without it, they never fire).
const CMDLINE: &str =
    "console=ttyS0 panic=-1 quiet lsm=lockdown,capability,landlock,yama,apparmor,bpf";

fn work_dir() -> PathBuf {
    root().join("target/vm-test")
}

pub fn run_matrix(which: &[String], proctor: &Path) -> Result<()> {
    let which: Vec<String> = if which.is_empty() {
        vm_kernels::DEFAULT_SERIES
            .iter()
            .map(|s| s.to_string())
            .collect()
    } else {
        which.to_vec()
    };
    let kernels = which
        .iter()
        .map(|w| vm_kernels::fetch(w))
        .collect::<Result<Vec<_>>>()?;
    check_layouts(&kernels)?;

    run(cargo().args(["build", "-p", "xtask", "--bin", "vm-guest"]))?;
    let guest = root().join("target/debug/vm-guest");
    std::fs::create_dir_all(work_dir())?;
    let initrd = work_dir().join("initramfs.cpio");
    crate::vm_initramfs::build(proctor, &guest, &initrd)?;

    let mut results = Vec::new();
    for k in &kernels {
        let started = Instant::now();
        let outcomes = boot(k, &initrd)?;
        results.push((k, outcomes, started.elapsed()));
    }
    print_table(&results);
    let failed: Vec<String> = results
        .iter()
        .filter(|(_, o, _)| !all_passed(o))
        .map(|(k, _, _)| k.package.clone())
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
/// (the guests then prove the resolved offsets give right events).
fn check_layouts(kernels: &[Kernel]) -> Result<()> {
    let spec: Vec<String> = kernels
        .iter()
        .map(|k| format!("{}={}", k.series, k.btf.display()))
        .collect();
    run(cargo()
        .args([
            "test",
            "--release",
            "-p",
            "proctor",
            "--test",
            "kernel_layouts",
            "--",
            "--ignored",
            "--nocapture",
        ])
        .env("PROCTOR_GUEST_BTF", spec.join(",")))
}

fn all_passed(outcomes: &[Option<Outcome>]) -> bool {
    outcomes.iter().all(|o| o.as_ref().is_some_and(|o| o.pass))
}

/// Boots `k` and returns each scenario's outcome (None: never reported).
fn boot(k: &Kernel, initrd: &Path) -> Result<Vec<Option<Outcome>>> {
    eprintln!("xtask: booting {} under QEMU (TCG)", k.package);
    let mut child = Command::new("qemu-system-x86_64")
        .args(["-accel", "tcg", "-cpu", "max", "-m", "512", "-smp", "1"])
        .args(["-nodefaults", "-display", "none", "-serial", "stdio"])
        .args(["-no-reboot", "-nic", "none"])
        .arg("-kernel")
        .arg(&k.vmlinux)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", CMDLINE])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context(
            "cannot start qemu-system-x86_64 (`cargo xtask setup` installs qemu-system-x86)",
        )?;
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
                    eprintln!("[{}] {}", k.series, o.line());
                    if let Some(i) = SCENARIOS.iter().position(|s| *s == o.scenario) {
                        outcomes[i] = Some(o);
                    }
                } else if line.contains(DONE) {
                    eprintln!("[{}] {}", k.series, line.trim());
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
    let log = work_dir().join(format!("console-{}.log", k.series));
    std::fs::write(&log, console.join("\n"))?;
    if timed_out {
        eprintln!(
            "xtask: {} did not power off within {GUEST_TIMEOUT:?}; killed",
            k.package
        );
    } else if !status.success() {
        eprintln!("xtask: qemu exited with {status} for {}", k.package);
    }
    if !all_passed(&outcomes) {
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

fn print_table(results: &[(&Kernel, Vec<Option<Outcome>>, Duration)]) {
    let width = SCENARIOS.iter().map(|s| s.len()).max().unwrap_or(8) + 2;
    let mut head = format!("{:<width$}", "scenario");
    for (k, _, _) in results {
        head.push_str(&format!("{:<12}", k.series));
    }
    eprintln!("\nvm-test: Debian kernels under QEMU (TCG), BPF LSM enabled\n{head}");
    for (i, s) in SCENARIOS.iter().enumerate() {
        let mut row = format!("{s:<width$}");
        for (_, o, _) in results {
            let cell = match &o[i] {
                Some(o) if o.pass => "PASS",
                Some(_) => "FAIL",
                None => "missing",
            };
            row.push_str(&format!("{cell:<12}"));
        }
        eprintln!("{row}");
    }
    for (k, _, took) in results {
        eprintln!("{}: {} in {:.0?}", k.series, k.package, took);
    }
}
