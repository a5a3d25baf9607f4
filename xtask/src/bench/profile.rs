//! What limits the figures: per-program BPF run time (bpftool with
//! kernel.bpf_stats_enabled), the raw cost of an empty tracepoint program,
//! and perf samples of the agent's user space.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use super::{
    agent::{self, Agent, Watch},
    empty_prog::{self, EmptyProg},
    monitors::Bpftrace,
    stats,
    workloads::{exec_storm, Env, Sizes, Workload},
    Ctx,
};

const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";
/// Alternations of no monitor and the empty programs per workload.
const FLOOR_ROUNDS: usize = 5;

/// kernel.bpf_stats_enabled on for the duration, restored on drop.
struct BpfStats {
    saved: String,
}

impl BpfStats {
    fn enable() -> Result<BpfStats> {
        let saved = std::fs::read_to_string(BPF_STATS)
            .with_context(|| format!("read {BPF_STATS}"))?
            .trim()
            .to_string();
        std::fs::write(BPF_STATS, "1").with_context(|| format!("enable {BPF_STATS}"))?;
        Ok(BpfStats { saved })
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        let _ = std::fs::write(BPF_STATS, &self.saved);
    }
}

/// (run_time_ns, run_cnt) of a BPF program.
fn prog_stats(id: u64) -> Result<(u64, u64)> {
    let out = super::output_ok(
        Command::new("bpftool").args(["prog", "show", "id", &id.to_string(), "-j"]),
        &format!("bpftool prog show id {id} (Debian package bpftool)"),
    )?;
    let v: Value = serde_json::from_slice(&out.stdout)?;
    Ok((
        v["run_time_ns"].as_u64().unwrap_or(0),
        v["run_cnt"].as_u64().unwrap_or(0),
    ))
}

fn all_stats(hooks: &[(String, u64)]) -> Result<BTreeMap<String, (u64, u64)>> {
    hooks
        .iter()
        .map(|(h, id)| Ok((h.clone(), prog_stats(*id)?)))
        .collect()
}

/// Per-program (ns per run, runs, ns per workload operation) over `work`,
/// which returns how many operations it made.
fn measure_progs(
    hooks: &[(String, u64)],
    work: impl FnOnce() -> Result<u64>,
) -> Result<Vec<(String, f64, u64, f64)>> {
    let a = all_stats(hooks)?;
    let ops = work()?.max(1);
    let b = all_stats(hooks)?;
    Ok(hooks
        .iter()
        .filter_map(|(h, _)| {
            let (t0, c0) = a[h];
            let (t1, c1) = b[h];
            let (dt, dc) = (t1 - t0, c1 - c0);
            (dc > 0).then(|| (h.clone(), dt as f64 / dc as f64, dc, dt as f64 / ops as f64))
        })
        .collect())
}

/// The side-by-side rows whose cost is all in the kernel (the agent gets
/// no record from them), each with proctor's programs during it: what an
/// operation costs there, next to what the operation costs in all.
fn kernel_rows(
    env: &Env,
    sizes: &Sizes,
    hooks: &[(String, u64)],
) -> Result<(String, BTreeMap<Workload, f64>)> {
    let mut op_ns_of = BTreeMap::new();
    let mut md = String::from(
        "### Unwatched reads, datagrams, io_uring opens, connects\n\n\
         The side-by-side workloads whose cost is all in the kernel (they give the agent no \
         record), each run once more with proctor default and `kernel.bpf_stats_enabled=1`: \
         every program that ran at least once per ten operations, and its cost per operation \
         next to the operation's own time (bpf_stats adds its own clock reads to every \
         run).\n\n\
         | workload | ns per operation (all of it) | program | ns per run | runs per operation | ns per operation |\n\
         | --- | --- | --- | --- | --- | --- |\n",
    );
    for (w, _) in FLOOR_HOOKS {
        let (mut op_ns, mut ops) = (0.0, 1.0);
        let progs = measure_progs(hooks, || {
            let (n, secs) = env.run(w, sizes)?;
            (op_ns, ops) = (1e9 * secs / n.max(1) as f64, n.max(1) as f64);
            Ok(n)
        })?;
        op_ns_of.insert(w, op_ns);
        let mut first = true;
        for (h, per_run, runs, per_op) in progs.iter().filter(|p| p.2 as f64 >= ops / 10.0) {
            let lead = if first {
                format!("{} | {op_ns:.0}", w.name())
            } else {
                " | ".to_string()
            };
            first = false;
            let _ = writeln!(
                md,
                "| {lead} | `{h}` | {per_run:.0} | {:.2} | {per_op:.0} |",
                *runs as f64 / ops
            );
        }
        if first {
            let _ = writeln!(md, "| {} | {op_ns:.0} | (none ran) | | | |", w.name());
        }
    }
    Ok((md, op_ns_of))
}

/// A hook proctor's default set uses on a kernel-only workload: a raw
/// tracepoint, or a cgroup hook by its name and `enum bpf_attach_type`.
#[derive(Clone, Copy)]
enum Hook {
    RawTp(&'static str),
    Cgroup(&'static str, u32),
}

/// The kernel-only side-by-side workloads and the hooks proctor runs a
/// program on in each (the page-cache and lsm sets).
const FLOOR_HOOKS: [(Workload, &[Hook]); 4] = [
    (
        Workload::CachedReads,
        &[Hook::RawTp("mm_filemap_get_pages")],
    ),
    (
        Workload::UdpSends,
        &[Hook::Cgroup(
            "cgroup/sendmsg4",
            empty_prog::BPF_CGROUP_UDP4_SENDMSG,
        )],
    ),
    (
        Workload::IoUringOpens,
        &[
            Hook::RawTp("io_uring_submit_req"),
            Hook::RawTp("io_uring_complete"),
        ],
    ),
    (
        Workload::ConnectStorm,
        &[
            Hook::Cgroup("cgroup/connect4", empty_prog::BPF_CGROUP_INET4_CONNECT),
            Hook::RawTp("inet_sock_set_state"),
        ],
    ),
];

/// What [`floors`] measured of a workload, in ns per operation: no monitor
/// and the empty programs (medians), what they added (the median of each
/// round's difference from the mean of the no-monitor runs either side of
/// it: a slow phase of the machine moves both sides of a round), and the
/// empty programs' own bpf_stats time (all rounds).
struct Floor {
    none: f64,
    empty: f64,
    added: f64,
    stats: f64,
}

/// Each kernel-only workload with no monitor and with an empty program on
/// each of proctor's hooks for it: `rounds` rounds of no monitor, empty
/// programs, no monitor, each run once the machine is quiet.
fn floors(env: &Env, sizes: &Sizes, rounds: usize) -> Result<BTreeMap<Workload, Floor>> {
    let cgroup = cgroup2_root()?;
    let run = |w: Workload| -> Result<(f64, u64)> {
        stats::wait_machine_quiet(Duration::from_secs(8));
        let (n, secs) = env.run(w, sizes)?;
        Ok((1e9 * secs / n.max(1) as f64, n.max(1)))
    };
    let mut out = BTreeMap::new();
    for (w, hooks) in FLOOR_HOOKS {
        let (mut none, mut empty, mut added) = (Vec::new(), Vec::new(), Vec::new());
        let (mut prog_ns, mut ops) = (0u64, 0u64);
        let mut before = run(w)?.0;
        for _ in 0..rounds {
            let progs = hooks
                .iter()
                .map(|h| match *h {
                    Hook::RawTp(tp) => EmptyProg::on_raw_tracepoint(tp),
                    Hook::Cgroup(_, at) => EmptyProg::on_cgroup(&cgroup, at),
                })
                .collect::<Result<Vec<_>>>()?;
            let ids = progs.iter().map(|p| p.id()).collect::<Result<Vec<_>>>()?;
            let (ns, n) = run(w)?;
            prog_ns += ids
                .iter()
                .map(|id| prog_stats(*id).map(|(t, _)| t))
                .sum::<Result<u64>>()?;
            ops += n;
            drop(progs);
            let after = run(w)?.0;
            none.push(before);
            empty.push(ns);
            added.push(ns - (before + after) / 2.0);
            before = after;
        }
        none.push(before);
        out.insert(
            w,
            Floor {
                none: stats::median(&none),
                empty: stats::median(&empty),
                added: stats::median(&added),
                stats: prog_ns as f64 / ops.max(1) as f64,
            },
        );
    }
    Ok(out)
}

/// Where cgroup v2 is mounted (`/sys/fs/cgroup`, or `/sys/fs/cgroup/unified`
/// on a hybrid hierarchy): proctor attaches its sock_addr hooks there.
fn cgroup2_root() -> Result<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").context("read /proc/self/mounts")?;
    mounts
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.get(2) == Some(&"cgroup2"))
        .and_then(|f| f.get(1).map(PathBuf::from))
        .context("no cgroup2 file system is mounted: the floor of proctor's cgroup hooks cannot be measured")
}

/// The floors next to proctor's own figures of the same workloads (all with
/// `kernel.bpf_stats_enabled=1`, which adds its clock reads to every run).
fn floor_table(
    floors: &BTreeMap<Workload, Floor>,
    proctor: &BTreeMap<Workload, f64>,
    rounds: usize,
) -> String {
    let mut md = format!(
        "\n### The floor: empty programs on the same hooks\n\n\
         Each kernel-only workload with no monitor and with an empty BPF program (`r0 = 0` or `1`; `exit`) on every hook proctor runs a program on for it, loaded with bpf(2) by the bench, in {rounds} rounds of no monitor, empty programs, no monitor (each run once the machine is quiet), before proctor started: medians, and what the empty programs added is the median of each round's difference from the mean of the no-monitor runs either side of it; proctor default's figure is the one of the table above. What the empty programs add is the price of running any program there (the tracepoint's or the cgroup's dispatch into BPF, and bpf_stats' clock reads; this VM's kernel makes its indirect calls through retpolines); what proctor adds beyond them is its own programs' work. A difference within this VM's noise (see the side-by-side noise control) can come out negative.\n\n\
         | workload | hooks | no monitor, ns per operation | empty programs | added | their bpf_stats ns per operation | proctor default | added | of which beyond the empty programs |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n"
    );
    for (w, hooks) in FLOOR_HOOKS {
        let (Some(f), Some(p)) = (floors.get(&w), proctor.get(&w)) else {
            continue;
        };
        let (none, empty, added) = (f.none, f.empty, f.added);
        let names: Vec<String> = hooks
            .iter()
            .map(|h| match h {
                Hook::RawTp(name) | Hook::Cgroup(name, _) => format!("`{name}`"),
            })
            .collect();
        let _ = writeln!(
            md,
            "| {} | {} | {none:.0} | {empty:.0} | {:.0} ns ({:.1}%) | {:.0} | {p:.0} | {:.0} ns ({:.1}%) | {:.0} ns |",
            w.name(),
            names.join(", "),
            added,
            100.0 * added / none,
            f.stats,
            p - none,
            100.0 * (p - none) / none,
            p - empty,
        );
    }
    md.push('\n');
    md
}

fn open_storm_ns(path: &std::path::Path, n: usize) -> f64 {
    let t = Instant::now();
    for _ in 0..n {
        drop(std::fs::File::open(path));
    }
    t.elapsed().as_nanos() as f64 / n as f64
}

/// perf samples of `pid`'s user and kernel stacks while `during` runs; the
/// top symbols as text.
pub fn perf_agent(pid: u32, secs: f64, during: impl FnOnce()) -> Result<String> {
    let data = std::env::temp_dir().join(format!("proctor-bench-perf-{pid}.data"));
    let mut rec = Command::new("perf")
        .args(["record", "-F", "999", "-g", "-p", &pid.to_string(), "-o"])
        .arg(&data)
        .args(["--", "sleep", &format!("{secs}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("run perf (Debian package linux-perf)")?;
    during();
    rec.wait()?;
    let out = Command::new("perf")
        .args([
            "report",
            "--stdio",
            "--no-children",
            "-g",
            "none",
            "--percent-limit",
            "1.5",
            "--sort",
            "dso,symbol",
            "-i",
        ])
        .arg(&data)
        .output()?;
    // BENCH_KEEP_PERF=1 keeps the samples for a closer look (`perf report -i`).
    if std::env::var_os("BENCH_KEEP_PERF").is_some() {
        eprintln!("bench: perf samples kept in {}", data.display());
    } else {
        let _ = std::fs::remove_file(&data);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.trim_start()
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_digit())
        })
        .take(20)
        .map(|l| l.trim_end_matches([' ', '-']))
        .collect();
    if lines.is_empty() {
        bail!(
            "perf report had no samples: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(lines.join("\n"))
}

pub fn section(ctx: &Ctx, onset_profile: Option<String>) -> Result<String> {
    let _stats = BpfStats::enable()?;
    let n_open = if ctx.smoke { 20_000 } else { 1_000_000 };
    let n_exec = if ctx.smoke { 40 } else { 2_000 };
    let plain = ctx.dir.join("plain.txt");
    std::fs::write(&plain, "not a secret\n")?;
    // The 100k-process section before this one leaves its processes exiting
    // for a while: no figure here is taken on a loaded machine.
    let limit = Duration::from_secs(if ctx.smoke { 5 } else { 180 });
    let waited = stats::wait_machine_quiet(limit);
    let mut md = format!(
        "## Profile: where the time goes\n\nThe section began once the machine was quiet (at least 95% idle over 300 ms), {:.0} s after the section before it ended{}.\n\n",
        waited.as_secs_f64(),
        if waited >= limit { ", when the wait's limit was reached: the machine was still busy" } else { "" }
    );

    // The floor: an empty program on the same tracepoint.
    let none_ns = open_storm_ns(&plain, n_open);
    let bt = Bpftrace::start_with(
        &ctx.dir,
        "BEGIN { printf(\"ready\\n\"); }\ntracepoint:syscalls:sys_exit_openat { }\n",
        "none",
    )?;
    let floor_ns = open_storm_ns(&plain, n_open);
    drop(bt);
    // The same for the kernel-only workloads' hooks, while nothing else is loaded.
    let sizes = Sizes::new(ctx.smoke);
    let dir = ctx.dir.join("profile-rows");
    std::fs::create_dir_all(&dir)?;
    let env = Env::new(&dir, ctx.secrets.read_set(), &ctx.marker, 0)?;
    let floors = floors(&env, &sizes, FLOOR_ROUNDS)?;

    let agent = Agent::start(
        &ctx.bin,
        &ctx.dir,
        "profile",
        &ctx.secrets.proctor_default(&ctx.dir, "profile", ""),
        Watch::default(),
    )?;
    let hooks = agent::hook_ids(&agent.fresh_status()?);
    let mut on_ns = 0.0;
    let opens = measure_progs(&hooks, || {
        on_ns = open_storm_ns(&plain, n_open);
        Ok(n_open as u64)
    })?;
    let none2_ns = open_storm_ns(&plain, n_open);
    let base_ns = (none_ns + none2_ns) / 2.0;
    let _ = writeln!(
        md,
        "### Unwatched open\n\n{n_open} open+close of an unwatched file, one thread, `kernel.bpf_stats_enabled=1` (which itself adds a little to every program run).\n\n\
         | configuration | ns per open+close | added |\n| --- | --- | --- |\n\
         | no monitor (mean of a run before and after) | {base_ns:.0} | |\n\
         | empty program on `syscalls/sys_exit_openat` (bpftrace) | {floor_ns:.0} | {:.0} ns: the tracepoint floor |\n\
         | proctor default | {on_ns:.0} | {:.0} ns |\n\n\
         proctor's programs during that storm (`bpftool prog show`: run_time_ns / run_cnt):\n\n\
         | program | ns per run | runs | ns per open |\n| --- | --- | --- | --- |",
        floor_ns - base_ns,
        on_ns - base_ns
    );
    for (h, per_run, runs, per_op) in &opens {
        let _ = writeln!(md, "| `{h}` | {per_run:.0} | {runs} | {per_op:.0} |");
    }

    // Exec: kernel side per program, user side per exec, and the agent's hot spots.
    let c0 = agent.cpu_seconds();
    let t = Instant::now();
    let execs = measure_progs(&hooks, || {
        exec_storm(n_exec, 4, &ctx.marker)?;
        Ok(n_exec as u64)
    })?;
    let wall = t.elapsed().as_secs_f64();
    let cpu = agent.cpu_seconds() - c0;
    let _ = writeln!(
        md,
        "\n### Exec\n\n{n_exec} fork+exec of `/bin/true` from 4 threads ({:.0} execs/s here).\n\n\
         | program | ns per run | runs | ns per exec |\n| --- | --- | --- | --- |",
        n_exec as f64 / wall
    );
    for (h, per_run, runs, per_op) in &execs {
        let _ = writeln!(md, "| `{h}` | {per_run:.0} | {runs} | {per_op:.0} |");
    }
    let _ = writeln!(
        md,
        "\nThe agent's user space spent {:.0} µs of CPU per exec ({:.0}% of one core during the storm): decoding the exec, fork and exit records, the process-table update, the hash-cache lookup, the environment scan and writing two JSON events.\n",
        1e6 * cpu / n_exec as f64,
        100.0 * cpu / wall
    );
    let secs = if ctx.smoke { 0.5 } else { 3.0 };
    match perf_agent(agent.pid(), secs, || {
        let _ = exec_storm(n_exec * 2, 4, &ctx.marker);
    }) {
        Ok(top) => {
            let _ = writeln!(md, "perf samples of the agent during an exec storm (`perf record -F 999 -g -p AGENT`, `perf report --no-children --sort dso,symbol`, entries above 1.5%):\n\n```\n{top}\n```\n");
        }
        Err(e) if ctx.must_run_external => {
            return Err(e.context("perf profile of the exec storm (required in CI)"));
        }
        Err(e) => {
            let _ = writeln!(md, "No perf profile of the agent: {e:#}\n");
        }
    }
    let (rows, proctor_ns) = kernel_rows(&env, &sizes, &hooks)?;
    md.push_str(&rows);
    agent.stop();
    md.push_str(&floor_table(&floors, &proctor_ns, FLOOR_ROUNDS));
    if let Some(p) = onset_profile {
        let _ = writeln!(
            md,
            "### At the drop onset\n\nperf samples of the agent while watched opens arrive at the first rate that drops (same perf options):\n\n```\n{p}\n```\n"
        );
    }
    Ok(md)
}
