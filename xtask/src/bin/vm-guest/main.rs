//! Guest side of `cargo xtask vm-test`: runs inside a QEMU guest booted from
//! a Debian kernel, starts the real `proctor run` there, drives the
//! end-to-end scenarios with real processes, files and sockets, and prints
//! one `PROCTOR-VM-RESULT` line per scenario on the serial console.

// Shared with the host side, which also parses the lines.
#[allow(dead_code)]
#[path = "../../vm_protocol.rs"]
mod vm_protocol;

mod agent;
mod scenarios;

use vm_protocol::{Outcome, DONE};

fn main() {
    let mut outcomes = Vec::new();
    // How long each scenario took under emulation: reported, never asserted.
    let mut since = std::time::Instant::now();
    let mut report = |scenario: &str, r: anyhow::Result<String>| {
        let took = format!("[{:.1}s]", since.elapsed().as_secs_f64());
        since = std::time::Instant::now();
        let o = match r {
            Ok(detail) => Outcome {
                scenario: scenario.into(),
                pass: true,
                detail: format!("{detail} {took}"),
            },
            Err(e) => Outcome {
                scenario: scenario.into(),
                pass: false,
                detail: format!("{e:#} {took}"),
            },
        };
        println!("{}", o.line());
        outcomes.push(o);
    };
    let wanted =
        vm_protocol::selected(&std::fs::read_to_string("/proc/cmdline").unwrap_or_default());
    scenarios::run_all(&wanted, &mut report);
    let passed = outcomes.iter().filter(|o| o.pass).count();
    // Scenarios that never reported count as failed on both sides.
    let failed = wanted.len() - passed;
    println!("{DONE} {passed} {failed}");
    std::process::exit(if failed == 0 { 0 } else { 1 });
}
