//! `cargo xtask bench`: measures the agent on this machine, side by side
//! with no monitor, auditd and bpftrace, and writes BENCHMARKS.md.
//! `--smoke` runs every workload and configuration once, small, and writes
//! target/bench-smoke.md instead, so the harness is exercised by the test
//! suite without pretending to measure anything.
//!
//! Each section lives in its own module under `bench/` and returns its
//! Markdown; [`run`] lists them in report order.

mod agent;
mod drops;
mod empty_prog;
mod hash;
mod instructions;
mod latency;
mod matrix;
mod memory;
mod monitors;
mod profile;
mod secrets;
mod soak;
mod stats;
mod svg;
mod workloads;

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::root;

/// What every section gets.
pub struct Ctx {
    pub bin: PathBuf,
    pub smoke: bool,
    /// Scratch directory of this run (secret homes, configs, logs), removed at the end.
    pub dir: PathBuf,
    pub secrets: secrets::SecretSet,
    /// Argument of every exec the bench makes, to find its own exec events.
    pub marker: String,
    /// In CI (any non-empty `CI`, as every CI service sets it) auditd and
    /// bpftrace must start and perf profiles must be taken: setup installed
    /// them, so a missing baseline is a broken run, not a note. Elsewhere a
    /// configuration that cannot run is reported as such and skipped.
    pub must_run_external: bool,
}

impl Ctx {
    /// A fresh scratch directory with the run's secret set in it.
    fn new(bin: &Path, smoke: bool, must_run_external: bool) -> Result<Ctx> {
        let dir = std::env::temp_dir().join(format!("proctor-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(Ctx {
            bin: bin.to_path_buf(),
            smoke,
            secrets: secrets::SecretSet::create(&dir, if smoke { 10 } else { 100 })?,
            dir,
            marker: format!("proctor-bench-{}", std::process::id()),
            must_run_external,
        })
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Targets a complete run judges: side by side 7 (open, cached read, exec,
/// connect, C build, watched reads against bpftrace, ahead of auditd),
/// records lost 1, drop onset 1, soak 1, hashing 1, memory 2 (idle, 10k).
const TARGETS: usize = 13;

/// A target from the issues and whether this run met it.
pub struct Target {
    what: String,
    measured: String,
    met: bool,
    limiting: String,
}

impl Target {
    pub fn new(what: &str, measured: String, met: bool, limiting: &str) -> Target {
        Target {
            what: what.into(),
            measured,
            met,
            limiting: limiting.into(),
        }
    }
}

/// Runs `cmd` with its output captured (`what` names it in errors); a
/// failure carries the command's stderr.
pub fn output_ok(cmd: &mut Command, what: &str) -> Result<std::process::Output> {
    let out = cmd.output().with_context(|| format!("run {what}"))?;
    if !out.status.success() {
        bail!("{what} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(out)
}

/// Runs an example of the agent crate (release build) and parses the JSON it prints.
pub fn run_example(name: &str, args: &[&str]) -> Result<Value> {
    let out = output_ok(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(root())
            .args([
                "run",
                "--quiet",
                "--release",
                "-p",
                "proctor",
                "--example",
                name,
                "--",
            ])
            .args(args),
        &format!("example {name}"),
    )?;
    serde_json::from_slice(&out.stdout).with_context(|| format!("{name} output"))
}

/// Appends a section's Markdown. In a full run a failed section is reported
/// in its place and the others still run, so one failure does not throw
/// away a 20-minute run; a smoke run (the test suite) fails.
/// A failed section is written into the report, except where the run must be
/// whole (`strict`: smoke runs, and CI), where it fails the bench.
fn add_section(md: &mut String, strict: bool, name: &str, section: Result<String>) -> Result<()> {
    match section {
        Ok(s) => md.push_str(&s),
        Err(e) if !strict => {
            eprintln!("bench: section {name} failed: {e:#}");
            let _ = writeln!(md, "## {name}\n\n**This section failed:** {e:#}\n");
        }
        Err(e) => return Err(e.context(format!("bench section {name}"))),
    }
    Ok(())
}

/// One section alone, printed (`bench --only
/// drops|profile|soak|instructions`): the drop onset with its profile, the
/// profile of unwatched opens and execs, the RSS soak, or the instructions
/// per record.
pub fn run_only(section: &str, bin: &Path, smoke: bool) -> Result<()> {
    let ctx = Ctx::new(bin, smoke, false)?;
    match section {
        "profile" => println!("{}", profile::section(&ctx, None)?),
        "soak" => println!("{}", soak::section(&ctx, &mut Vec::new())?.markdown),
        "instructions" => println!("{}", instructions::section(&ctx)?),
        _ => {
            let d = drops::section(&ctx, &mut Vec::new())?;
            println!("{}\n{}", d.markdown, d.profile.unwrap_or_default());
        }
    }
    Ok(())
}

/// The hook-set summary line of `proctor doctor` (without its blind spots).
fn hook_set(bin: &Path) -> String {
    let out = Command::new(bin).args(["doctor", "--json"]).output();
    let checks: Vec<serde_json::Value> = out
        .ok()
        .and_then(|o| serde_json::from_slice(&o.stdout).ok())
        .unwrap_or_default();
    checks
        .iter()
        .find(|c| c["item"] == "hook_set")
        .and_then(|c| c["detail"].as_str())
        .map(|d| d.split(';').next().unwrap_or(d).to_string())
        .unwrap_or_else(|| "unknown (proctor doctor gave no hook_set)".into())
}

pub fn run(bin: &Path, smoke: bool) -> Result<()> {
    let started = Instant::now();
    let ctx = Ctx::new(
        bin,
        smoke,
        std::env::var_os("CI").is_some_and(|v| !v.is_empty()),
    )?;
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let load_before = stats::loadavg();
    let idle_before = stats::idle_share();
    let mut md = format!(
        "# Benchmarks\n\nCommand: `cargo xtask bench{}`  \nMachine: {}  \nDate: {date}  \n",
        if smoke { " --smoke" } else { "" },
        stats::machine()
    );
    // Other work on the machine shows here: figures taken under load are noise.
    let _ = writeln!(
        md,
        "CPU idle in the 3 s before the start: {idle_before}. Load average (1 min) at the start: {load_before}, after the side-by-side runs: @LOAD_END@ (the 100k-process section that follows them sends it into the hundreds while those processes exit)\n"
    );
    // `auto` picks the hook set per kernel: say which one was measured.
    let _ = writeln!(
        md,
        "Hook set proctor chose here (`kernel.file_hooks: auto`, from `proctor doctor`): {}\n",
        hook_set(bin)
    );
    if smoke {
        md.push_str("**Smoke run: tiny sizes, one repetition. These figures mean nothing.**\n\n");
    }
    let mut targets = Vec::new();
    let strict = smoke || ctx.must_run_external;

    // Sections, in report order. A new section is one more line here: a
    // function returning its Markdown (and pushing the targets it judges).
    // Charts go next to BENCHMARKS.md (a smoke run's next to its report).
    let charts = if smoke {
        root().join("target/bench-smoke")
    } else {
        root().join("docs/bench")
    };
    std::fs::create_dir_all(&charts).with_context(|| format!("create {}", charts.display()))?;
    let chart = |name: &str, svg: &str| -> Result<()> {
        let p = charts.join(name);
        std::fs::write(&p, svg).with_context(|| format!("write {}", p.display()))
    };
    let matrix = matrix::section(&ctx, &mut targets);
    md = md.replace("@LOAD_END@", &stats::loadavg());
    // Records proctor lost in the phases that are not meant to overload it
    // (side by side, soak); None when one of them did not run.
    let mut lost_phases: Option<u64> = None;
    let matrix = matrix.and_then(|m| {
        chart("overhead.svg", &m.svg)?;
        lost_phases = Some(m.proctor_lost);
        Ok(m.markdown)
    });
    add_section(&mut md, strict, "Side by side", matrix)?;
    let drops = drops::section(&ctx, &mut targets);
    let onset_profile = drops.as_ref().ok().and_then(|d| d.profile.clone());
    let drops = drops.and_then(|d| {
        chart("drop-onset.svg", &d.svg)?;
        Ok(d.markdown)
    });
    add_section(&mut md, strict, "Sustained event rate", drops)?;
    add_section(
        &mut md,
        strict,
        "Instructions per record",
        instructions::section(&ctx),
    )?;
    let soak = soak::section(&ctx, &mut targets).and_then(|s| {
        chart("soak-rss.svg", &s.svg)?;
        lost_phases = lost_phases.map(|l| l + s.lost);
        Ok(s.markdown)
    });
    if soak.is_err() {
        lost_phases = None;
    }
    add_section(&mut md, strict, "RSS soak", soak)?;
    if let (Some(lost), false) = (lost_phases, smoke) {
        targets.push(Target::new(
            "0 records lost in every phase (side by side, both proctor configurations, and the soak; the drop-onset section overloads on purpose)",
            format!("{lost} lost"),
            lost == 0,
            "the watched-reads rows of the side-by-side tables: one record per read, no repeat suppression in the kernel yet, and the one pipeline thread saturates (drop-onset profile)",
        ));
    }
    add_section(&mut md, strict, "Latency", latency::section(&ctx))?;
    add_section(
        &mut md,
        strict,
        "Hash cache",
        hash::section(&ctx, &mut targets),
    )?;
    add_section(
        &mut md,
        strict,
        "Memory",
        memory::section(&ctx, &mut targets),
    )?;
    add_section(
        &mut md,
        strict,
        "Profile",
        profile::section(&ctx, onset_profile),
    )?;

    md.push_str("## Targets\n\n");
    if smoke {
        md.push_str("Not judged in a smoke run.\n\n");
    } else {
        md.push_str(
            "| target | measured | verdict | what limits it |\n| --- | --- | --- | --- |\n",
        );
        for t in &targets {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} |",
                t.what,
                t.measured,
                if t.met { "met" } else { "**NOT met**" },
                if t.met { "" } else { &t.limiting }
            );
        }
        // A failed section leaves its own targets out.
        if targets.len() < TARGETS {
            let _ = writeln!(
                md,
                "\n{} of the {TARGETS} targets have no figure in this run (their section failed, see above).",
                TARGETS - targets.len()
            );
        }
        md.push('\n');
    }
    let _ = writeln!(
        md,
        "Whole run took {:.0} s.",
        started.elapsed().as_secs_f64()
    );

    let out = if smoke {
        root().join("target/bench-smoke.md")
    } else {
        root().join("BENCHMARKS.md")
    };
    std::fs::write(&out, &md).with_context(|| format!("write {}", out.display()))?;
    println!("{md}");
    eprintln!("xtask: wrote {}", out.display());
    Ok(())
}
