//! The agent at rest and under bookkeeping load: CPU and RSS at idle, with
//! 10k and 100k tracked processes, and attest calls over the API socket.

use std::{
    fmt::Write as _,
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result};

use super::{
    agent::{self, Agent, Watch},
    run_example,
    stats::{meminfo_kib, mib},
    Ctx, Target,
};

/// Idle figures of the 2026-12-04 run, the reference issue 17 names ("no worse than today").
const IDLE_RSS_BEFORE_MIB: f64 = 50.2;
const IDLE_CPU_BEFORE_PCT: f64 = 0.40;

const FORKER_C: &str = include_str!("forker.c");
/// Processes created per second: at 20k/s the agent drops fork records on
/// this machine (the drop figures cover that), the table figure needs them all.
const FORK_RATE: u64 = 5_000;

fn live(agent: &Agent) -> Result<u64> {
    Ok(live_in(&agent.fresh_status()?))
}

fn live_in(status: &serde_json::Value) -> u64 {
    status["status"]["process_table"]["live"]
        .as_u64()
        .unwrap_or(0)
}

/// pid_max raised for the duration of a measurement, restored on drop.
struct PidMax {
    saved: Option<String>,
}

const PID_MAX: &str = "/proc/sys/kernel/pid_max";

impl PidMax {
    fn at_least(n: u64) -> Result<PidMax> {
        let cur = std::fs::read_to_string(PID_MAX)?;
        if cur.trim().parse::<u64>().unwrap_or(0) >= n {
            return Ok(PidMax { saved: None });
        }
        std::fs::write(PID_MAX, n.to_string())
            .with_context(|| format!("raise {PID_MAX} to {n}"))?;
        Ok(PidMax {
            saved: Some(cur.trim().to_string()),
        })
    }
}

impl Drop for PidMax {
    fn drop(&mut self) {
        if let Some(s) = &self.saved {
            if let Err(e) = std::fs::write(PID_MAX, s) {
                eprintln!("bench: restoring {PID_MAX} to {s} failed: {e}");
            }
        }
    }
}

struct Forker {
    child: Child,
    made: u64,
}

impl Forker {
    fn start(bin: &Path, n: u64, rate: u64) -> Result<Forker> {
        let mut child = Command::new(bin)
            .args([n.to_string(), rate.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("start the forker")?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line)?;
        let made = line
            .trim()
            .parse()
            .with_context(|| format!("forker printed {line:?}"))?;
        Ok(Forker { child, made })
    }

    /// Why fewer than asked were made (the forker's stderr).
    fn stop(mut self) -> String {
        drop(self.child.stdin.take());
        let out = self.child.wait_with_output();
        out.map(|o| String::from_utf8_lossy(&o.stderr).trim().to_string())
            .unwrap_or_default()
    }
}

fn build_forker(dir: &Path) -> Result<std::path::PathBuf> {
    let src = dir.join("forker.c");
    let bin = dir.join("forker");
    std::fs::write(&src, FORKER_C)?;
    super::output_ok(
        Command::new("gcc")
            .args(["-O2", "-static", "-o"])
            .arg(&bin)
            .arg(&src),
        "gcc forker.c (Debian package gcc)",
    )?;
    Ok(bin)
}

struct Tracked {
    asked: u64,
    made: u64,
    reached: u64,
    rss_kib: u64,
    cpu_s: f64,
    /// Share of one core once the table is full and nothing happens.
    rest_cpu: f64,
    secs: f64,
    fork_drops: u64,
    /// Waits of 30 s in which the agent emitted no status.
    stalls: u32,
    stopped_because: String,
}

/// A fresh agent, then `n` sleeping processes; the agent's RSS once its
/// table holds them.
fn tracked(ctx: &Ctx, forker: &Path, n: u64) -> Result<Tracked> {
    let name = format!("tracked-{n}");
    let agent = Agent::start(
        &ctx.bin,
        &ctx.dir,
        &name,
        &ctx.secrets.proctor_default(&ctx.dir, &name, ""),
        Watch::default(),
    )?;
    let st = agent.fresh_status()?;
    let base = st["status"]["process_table"]["live"].as_u64().unwrap_or(0);
    let drops0 = agent::kernel_count(&st, "dropped", "fork");
    let c0 = agent.cpu_seconds();
    let t = Instant::now();
    let f = Forker::start(forker, n, if ctx.smoke { 0 } else { FORK_RATE })?;
    let deadline = Instant::now() + Duration::from_secs(if ctx.smoke { 30 } else { 180 });
    let mut reached = 0;
    // A busy agent may go quiet for longer than a status interval: that is
    // a figure (stalls), not a failure of the bench.
    let mut stalls = 0;
    while Instant::now() < deadline {
        match agent.fresh_status() {
            Ok(s) => reached = live_in(&s).saturating_sub(base),
            Err(_) => stalls += 1,
        }
        if reached >= f.made {
            break;
        }
    }
    let secs = t.elapsed().as_secs_f64();
    let rss_kib = agent.rss_kib();
    let cpu_s = agent.cpu_seconds() - c0;
    // Then at rest with the full table: what the /proc sweep costs.
    let rest = if ctx.smoke { 1.0 } else { 20.0 };
    let c1 = agent.cpu_seconds();
    std::thread::sleep(Duration::from_secs_f64(rest));
    let rest_cpu = (agent.cpu_seconds() - c1) / rest;
    let st = agent
        .state
        .lock()
        .unwrap()
        .last_status
        .clone()
        .unwrap_or_default();
    let made = f.made;
    let stopped_because = f.stop();
    agent.stop();
    Ok(Tracked {
        asked: n,
        made,
        reached,
        rss_kib,
        cpu_s,
        rest_cpu,
        secs,
        fork_drops: agent::kernel_count(&st, "dropped", "fork").saturating_sub(drops0),
        stalls,
        stopped_because,
    })
}

pub fn section(ctx: &Ctx, targets: &mut Vec<Target>) -> Result<String> {
    let mut md = String::from("## Agent CPU and memory at rest, attest calls\n\n");
    // Idle.
    let agent = Agent::start(
        &ctx.bin,
        &ctx.dir,
        "idle",
        &ctx.secrets.proctor_default(&ctx.dir, "idle", ""),
        Watch::default(),
    )?;
    agent.fresh_status()?;
    let idle_secs = if ctx.smoke { 1.0 } else { 10.0 };
    let c0 = agent.cpu_seconds();
    std::thread::sleep(Duration::from_secs_f64(idle_secs));
    let idle_cpu = (agent.cpu_seconds() - c0) / idle_secs;
    let idle_rss = agent.rss_kib();
    let ring = agent.ring_mapping_kib();
    let idle_live = live(&agent)?;

    // Attest: sleepers exec'd after the agent started (kernel-exec identities).
    let mut sleepers: Vec<Child> = (0..32)
        .map(|_| {
            Command::new("/bin/sleep")
                .arg("600")
                .spawn()
                .context("spawn sleep")
        })
        .collect::<Result<_>>()?;
    agent.fresh_status()?;
    let pids: Vec<String> = sleepers.iter().map(|c| c.id().to_string()).collect();
    let socket = ctx.dir.join("idle.sock");
    let secs = if ctx.smoke { "0.3" } else { "3" };
    let mut attest_rows = String::new();
    let mut attest_err = None;
    for workers in ["1", "8"] {
        match run_example(
            "attest_bench",
            &[&socket.to_string_lossy(), workers, secs, &pids.join(",")],
        ) {
            Ok(v) => {
                let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
                let _ = writeln!(
                    attest_rows,
                    "| {workers} | {:.0} | {:.0} µs | {:.0} µs | {} |",
                    f("calls_per_s"),
                    f("p50_us"),
                    f("p99_us"),
                    v["errors"]
                );
            }
            Err(e) => attest_err = Some(e),
        }
    }
    for c in &mut sleepers {
        let _ = c.kill();
        let _ = c.wait();
    }
    agent.stop();
    if let Some(e) = attest_err {
        return Err(e.context("attest benchmark"));
    }

    // Tracked processes.
    let forker = build_forker(&ctx.dir)?;
    // One size in a smoke run: the same code path, one agent start less.
    let sizes: Vec<u64> = if ctx.smoke {
        vec![500]
    } else {
        vec![10_000, 100_000]
    };
    let mut rows = Vec::new();
    let mut notes = String::new();
    for &n in &sizes {
        // Room for n more pids; ~32 KiB of kernel memory per process.
        let _pid_max = PidMax::at_least(n * 2 + 65_536)?;
        let threads_max: u64 = std::fs::read_to_string("/proc/sys/kernel/threads-max")?
            .trim()
            .parse()
            .unwrap_or(0);
        let avail = meminfo_kib("MemAvailable").unwrap_or(0);
        let fits = (avail / 2 / 32).min(threads_max.saturating_sub(20_000));
        let ask = n.min(fits);
        if ask < n {
            let _ = writeln!(
                notes,
                "Asked for {n} processes; this machine allows {ask} (MemAvailable {:.1} GiB at ~32 KiB per process, half of it used at most; threads-max {threads_max}).\n",
                avail as f64 / 1048576.0
            );
        }
        let t = tracked(ctx, &forker, ask)?;
        if t.made < t.asked {
            let _ = writeln!(
                notes,
                "The forker made {} of {} processes: {}\n",
                t.made, t.asked, t.stopped_because
            );
        }
        rows.push(t);
    }

    let _ = writeln!(
        md,
        "proctor default config. Idle: {idle_secs} s with nothing happening besides the machine's own processes.\n\n\
         | state | processes in the table | agent RSS | agent CPU |\n| --- | --- | --- | --- |\n\
         | idle | {idle_live} | {:.1} MiB (ring-buffer mapping {:.1} MiB of it) | {:.2}% of one core |",
        mib(idle_rss),
        mib(ring),
        100.0 * idle_cpu
    );
    for t in &rows {
        let _ = writeln!(
            md,
            "| {} extra sleeping processes (asked {}), fresh agent | +{} | {:.1} MiB | {:.1} CPU-s to track them ({:.0} µs per process; {:.1} s wall); then at rest {:.2}% of one core; fork records dropped: {}; 30 s waits without a status: {} |",
            t.made,
            t.asked,
            t.reached,
            mib(t.rss_kib),
            t.cpu_s,
            1e6 * t.cpu_s / t.made.max(1) as f64,
            t.secs,
            100.0 * t.rest_cpu,
            t.fork_drops,
            t.stalls
        );
    }
    let _ = writeln!(
        md,
        "\nThe sleeping processes come from a small C program (compiled by the bench) that creates them with `clone(CLONE_VM)` at {FORK_RATE}/s: real processes, each with its own pid and table entry, sharing one address space so that 100k fit in memory here (~32 KiB of kernel memory each). `pid_max` is raised for the run when needed and restored after. The ring buffer (8 MiB by default) is mapped twice by the kernel's design and counts in RSS once touched.\n\n{notes}"
    );
    let _ = writeln!(
        md,
        "### Attest over the API socket\n\n`Attestation.Attest` from an example client linked with the agent's own generated gRPC client (`cargo run --release --example attest_bench`), one channel, N concurrent callers back to back for {secs} s, cycling over 32 `sleep` processes.\n\n\
         | concurrent callers | calls/s | p50 | p99 | errors |\n| --- | --- | --- | --- | --- |\n{attest_rows}"
    );
    if !ctx.smoke {
        // Issue 17: idle cost no worse than the run before it (2026-12-04:
        // 50.2 MiB, 0.40% of a core), with the noise seen between runs
        // (±5% RSS, ±0.2 points CPU) allowed.
        let (rss, cpu) = (mib(idle_rss), 100.0 * idle_cpu);
        targets.push(Target::new(
            "idle RSS and CPU no worse than the 2026-12-04 run (50.2 MiB, 0.40% of a core)",
            format!("{rss:.1} MiB, {cpu:.2}% of a core"),
            rss <= IDLE_RSS_BEFORE_MIB * 1.05 && cpu <= IDLE_CPU_BEFORE_PCT + 0.2,
            "the idle row above",
        ));
        if let Some(t) = rows.first() {
            targets.push(Target::new(
                "RSS under 64 MiB with 10k processes",
                format!("{:.1} MiB with {} processes", mib(t.rss_kib), t.reached),
                mib(t.rss_kib) < 64.0,
                "the memory table above",
            ));
        }
    }
    Ok(md)
}
