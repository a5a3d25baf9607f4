//! The agent's own instructions per watched-read record, counted by
//! callgrind, by stage of the pipeline.
//!
//! Wall-clock and CPU-time figures on this kind of VM move by ±10% from run
//! to run, more than most changes to the pipeline are worth; an instruction
//! count of the same workload moves by 2-4% (how records fall into
//! batches still depends on timing). It is the figure to compare two builds
//! by, and the profile behind the drop onset.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{bail, Context, Result};

use super::{
    agent::{self, Agent, Watch},
    drops::{self, Gen},
    output_ok, Ctx,
};

/// Functions whose inclusive count is a stage, in report order, with what
/// the stage does. Hashing runs on the blocking pool once per binary, not
/// per record: it is counted apart and left out of the per-record total.
const STAGES: &[(&str, &str)] = &[
    (
        "proctor::daemon::ingest::Ingest::drain::{{closure}}",
        "ingest: ring buffer, decode, process table, detections",
    ),
    (
        "proctor::secrets::monitor::open::<impl proctor::secrets::monitor::SecretMonitor<K>>::finish_open",
        "of which the secret monitor's read (finding, inventory batch, usage, search)",
    ),
    (
        "proctor::pipeline::emitter::Emitter::emit",
        "emitter: numbering, metrics, history, sink queues",
    ),
    (
        "proctor::export::sinks::encode::Encoder::encode",
        "stdout sink: JSON encoding",
    ),
];
const HASHING: &str = "proctor::identity::hash_cache::hash_version";
/// SHA-256's block function, wherever it is called from: about one run in
/// ten, the hashing of `callgrind_control`'s perl ran outside
/// [`HASHING`]'s entry and counted as "the rest" (some 20k a record).
const SHA256_BLOCKS: &str = "sha2::sha256::compress256";

fn tool(name: &str) -> Result<()> {
    let ok = Command::new(name)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        bail!("{name} is not installed; `cargo xtask setup` installs valgrind");
    }
    Ok(())
}

fn callgrind_control(args: &[&str], pid: u32) -> Result<()> {
    output_ok(
        Command::new("callgrind_control")
            .args(args)
            .arg(pid.to_string()),
        &format!("callgrind_control {args:?} {pid}"),
    )
    .map(drop)
}

/// Inclusive instruction counts by function from `callgrind_annotate`.
struct Counts {
    total: u64,
    lines: Vec<(u64, String)>,
}

impl Counts {
    fn read(file: &Path) -> Result<Counts> {
        let out = output_ok(
            Command::new("callgrind_annotate")
                .args(["--inclusive=yes", "--threshold=100"])
                .arg(file),
            "callgrind_annotate",
        )?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut total = None;
        let mut lines = Vec::new();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            let Some(n) = words
                .next()
                .and_then(|w| w.replace(',', "").parse::<u64>().ok())
            else {
                continue;
            };
            if line.contains("PROGRAM TOTALS") {
                total = Some(n);
            } else {
                lines.push((n, line.to_string()));
            }
        }
        let Some(total) = total else {
            bail!(
                "no PROGRAM TOTALS in callgrind_annotate's output for {}",
                file.display()
            );
        };
        Ok(Counts { total, lines })
    }

    /// The inclusive count of `function`: its own entry (`file:function
    /// [object]`), not the lines of code inlined into it from elsewhere.
    fn of(&self, function: &str) -> u64 {
        self.lines
            .iter()
            .filter(|(_, l)| l.contains(&format!(":{function} [")))
            .map(|(n, _)| *n)
            .max()
            .unwrap_or(0)
    }
}

/// The dump with the counts (callgrind also writes an empty one at exit).
fn largest_dump(dir: &Path, prefix: &str) -> Result<PathBuf> {
    std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .max_by_key(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
        .map(|e| e.path())
        .with_context(|| format!("callgrind wrote no {prefix}* in {}", dir.display()))
}

pub fn section(ctx: &Ctx) -> Result<String> {
    tool("valgrind")?;
    let files = ctx.secrets.read_set();
    let out_dir = ctx.dir.join("callgrind");
    std::fs::create_dir_all(&out_dir)?;
    let out_file = format!(
        "--callgrind-out-file={}/callgrind.out.%p",
        out_dir.display()
    );
    let agent = Agent::start_under(
        &[
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            &out_file,
        ],
        // Parsing the kernel's BTF is slow on the simulated CPU.
        Duration::from_secs(600),
        &ctx.bin,
        &ctx.dir,
        "instructions",
        &ctx.secrets
            .proctor_default(&ctx.dir, "instructions", "kernel:\n  repeat_window: 0s\n"),
        Watch::default(),
    )?;
    let gen = match agent.fresh_status()?["status"]["hook_set"]["file_access"].as_str() {
        Some("page-cache") => Gen::Rereads,
        _ => Gen::Opens,
    };
    // Slow enough for the agent to keep up on the simulated CPU (some 50
    // times slower than the real one).
    let (rate, secs) = if ctx.smoke { (200, 1.0) } else { (2_000, 5.0) };
    let before = agent.fresh_status()?;
    callgrind_control(&["-i", "on"], agent.pid())?;
    let made = drops::paced(gen, files, rate, secs);
    // Caught up: a status emitted after the last access went out.
    let after = agent.fresh_status()?;
    callgrind_control(&["-i", "off"], agent.pid())?;
    callgrind_control(&["-d"], agent.pid())?;
    let lost = agent::lost(&after) - agent::lost(&before);
    let emitted = agent::emitted(&after) - agent::emitted(&before);
    agent.stop();
    let counts = Counts::read(&largest_dump(&out_dir, "callgrind.out.")?)?;
    let hashing = counts.of(HASHING).max(counts.of(SHA256_BLOCKS));
    let records = made.records.max(1);
    let per = |n: u64| n as f64 / records as f64;
    let agent_total = counts.total.saturating_sub(hashing);
    let mut md = format!(
        "## Instructions per record\n\nproctor default config with `kernel.repeat_window: 0s`, run under `valgrind --tool=callgrind` (instrumentation switched on for the workload only); {} one-byte reads of the 5 watched files ({} per second for {secs} s, each one kernel record, a `file_open` event and a `secret-read` finding), the agent's stdout read by the bench. Instructions the agent executed from the first read until a status emitted after the last one, per record; a stage is a function's inclusive count (what it and everything it calls executed). Binary hashing ({:.0} instructions per record here: the binaries executed meanwhile, such as the perl of `callgrind_control`, once each; the hashing function's count or, where larger, all of SHA-256's block function's) is left out of the total: it runs on the blocking pool once per binary, not per record. Events emitted meanwhile: {emitted}; records lost: {lost}.\n\n",
        made.records,
        rate,
        per(hashing),
    );
    md.push_str("| stage | instructions per record | share |\n| --- | --- | --- |\n");
    md.push_str(&format!(
        "| **all of the agent** (every thread, hashing left out) | **{:.0}** | 100% |\n",
        per(agent_total)
    ));
    let mut staged = 0;
    for (i, (function, what)) in STAGES.iter().enumerate() {
        let n = counts.of(function);
        // The secret monitor's row is part of the ingest row above it.
        if i != 1 {
            staged += n;
        }
        md.push_str(&format!(
            "| {what} | {:.0} | {:.0}% |\n",
            per(n),
            100.0 * n as f64 / agent_total.max(1) as f64
        ));
    }
    let rest = agent_total.saturating_sub(staged);
    md.push_str(&format!(
        "| the rest: the runtime's scheduling, the stdout write, timers, status | {:.0} | {:.0}% |\n",
        per(rest),
        100.0 * rest as f64 / agent_total.max(1) as f64
    ));
    if lost > 0 {
        md.push_str(&format!(
            "\n**The agent lost {lost} records under callgrind: the counts above cover fewer records than made.**\n"
        ));
    }
    Ok(md)
}
