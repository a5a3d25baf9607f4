//! Every workload under every configuration, interleaved: each repetition
//! starts each monitor in turn (the order rotating between repetitions),
//! runs all workloads under it and stops it.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    time::{Duration, Instant},
};

use anyhow::Result;

use super::{
    monitors::{Config, Running},
    stats,
    stats::{median, mib, min_max},
    svg,
    workloads::{Env, Sizes, Workload},
    Ctx, Target,
};

#[derive(Default)]
struct PerConfig {
    /// Throughput samples per workload.
    rate: BTreeMap<Workload, Vec<f64>>,
    /// Monitor CPU (share of one core) during each workload.
    cpu: BTreeMap<Workload, Vec<f64>>,
    rss_max_kib: u64,
    /// Records lost during each workload (its run and catch-up), all repetitions.
    lost_by: BTreeMap<Workload, u64>,
    lost: u64,
    events: u64,
    phases: u32,
}

pub struct MatrixResult {
    pub markdown: String,
    /// Median throughput per (config, workload).
    pub medians: BTreeMap<(Config, Workload), f64>,
    /// Records lost per (config, workload), all repetitions.
    pub lost: BTreeMap<(Config, Workload), u64>,
    /// Records both proctor configurations lost over all phases.
    pub proctor_lost: u64,
    /// The overhead chart (SVG).
    pub svg: String,
}

impl MatrixResult {
    /// Throughput under `cfg` as a share of no monitor's.
    pub fn ratio(&self, cfg: Config, w: Workload) -> Option<f64> {
        Some(self.medians.get(&(cfg, w))? / self.medians.get(&(Config::None, w))?)
    }
}

pub fn section(ctx: &Ctx, targets: &mut Vec<Target>) -> Result<MatrixResult> {
    let sizes = Sizes::new(ctx.smoke);
    let env = Env::new(&ctx.dir, ctx.secrets.read_set(), &ctx.marker, sizes.c_files)?;
    let reps = if ctx.smoke { 1 } else { 5 };
    let mut results: BTreeMap<Config, PerConfig> = BTreeMap::new();
    let mut unavailable: BTreeMap<Config, String> = BTreeMap::new();
    // A build before measuring: gcc and headers in the page cache for everyone.
    env.run(Workload::CBuild, &sizes)?;
    // Seconds waited for a quiet machine before each workload, and how
    // often the limit came first.
    let mut quiet_waits: Vec<f64> = Vec::new();
    let mut never_quiet = 0;
    let quiet_limit = Duration::from_secs(if ctx.smoke { 1 } else { 8 });
    for rep in 0..reps {
        let mut order = Config::ALL.to_vec();
        order.rotate_left(rep % Config::ALL.len());
        for cfg in order {
            if unavailable.contains_key(&cfg) {
                continue;
            }
            eprintln!("bench: repetition {}/{reps}: {}", rep + 1, cfg.name());
            let mon = match Running::start(cfg, ctx) {
                Ok(m) => m,
                Err(e) if cfg.external() && !ctx.must_run_external => {
                    eprintln!("bench: {} unavailable: {e:#}", cfg.name());
                    unavailable.insert(cfg, format!("{e:#}"));
                    continue;
                }
                Err(e) => return Err(e.context(format!("start {}", cfg.name()))),
            };
            let r = results.entry(cfg).or_default();
            let mut lost0 = mon.lost_so_far()?;
            for w in Workload::ALL {
                let waited = stats::wait_machine_quiet(quiet_limit);
                if waited >= quiet_limit {
                    never_quiet += 1;
                }
                quiet_waits.push(waited.as_secs_f64());
                let c0 = mon.cpu_seconds();
                let (ops, secs) = env.run(w, &sizes)?;
                settle(&mon);
                // The catch-up is work this workload caused: it counts in
                // the monitor's CPU, not in the workload's time.
                let c1 = mon.cpu_seconds();
                r.rate.entry(w).or_default().push(ops as f64 / secs);
                r.cpu.entry(w).or_default().push((c1 - c0) / secs);
                r.rss_max_kib = r.rss_max_kib.max(mon.rss_kib());
                let lost1 = mon.lost_so_far()?;
                *r.lost_by.entry(w).or_default() += lost1.saturating_sub(lost0);
                lost0 = lost1;
            }
            let (lost, events) = mon.finish()?;
            r.lost += lost;
            r.events += events;
            r.phases += 1;
        }
    }

    let configs: Vec<Config> = Config::ALL
        .into_iter()
        .filter(|c| results.contains_key(c))
        .collect();
    let mut medians = BTreeMap::new();
    for (cfg, r) in &results {
        for (w, v) in &r.rate {
            medians.insert((*cfg, *w), median(v));
        }
    }
    let lost: BTreeMap<(Config, Workload), u64> = results
        .iter()
        .flat_map(|(c, r)| r.lost_by.iter().map(move |(w, n)| ((*c, *w), *n)))
        .collect();
    let proctor_lost = [Config::Proctor, Config::ProctorHeavy]
        .iter()
        .filter_map(|c| results.get(c))
        .map(|r| r.lost)
        .sum();
    let res = MatrixResult {
        markdown: String::new(),
        medians,
        lost,
        proctor_lost,
        svg: String::new(),
    };
    let lost_in = |c: Config, w: Workload| res.lost.get(&(c, w)).copied().unwrap_or(0);

    let mut md = String::from("## Side by side: overhead of each monitor on each workload\n\n");
    let n = Workload::ALL.len();
    let _ = writeln!(
        md,
        "{reps} repetitions; in each, every configuration is started in turn (the order rotates between repetitions), runs all {n} workloads and is stopped. Before each workload the bench waits until the whole machine is quiet (at least 95% idle over 300 ms, for at most {limit} s: the kernel's teardown of the monitor stopped before, a monitor's start-up work), whatever the configuration: a median wait of {wait:.1} s, the limit reached {never_quiet} times of {waits}. Medians, with min–max over the repetitions. Next to every figure: the records that monitor lost during that workload (its run and the catch-up after it), summed over the repetitions; a figure bought by losing records is not a like-for-like comparison.\n",
        limit = quiet_limit.as_secs(),
        wait = median(&quiet_waits),
        waits = quiet_waits.len(),
    );
    md.push_str("Workloads:\n\n");
    for w in Workload::ALL {
        let _ = writeln!(md, "- **{}**: {}", w.name(), sizes.describe(w));
    }
    let _ = write!(
        md,
        "\nConfigurations:\n\n\
         - **no monitor**.\n\
         - **no monitor, again (noise)**: no monitor a second time, at another place in each repetition's order. Its overhead against the first is not a cost but this machine's noise on that workload: an overhead of the same size elsewhere in its row cannot be told from noise.\n\
         - **proctor default**: the embedded default config (exec hashing on, secret catalog, exfil/replay/search detectors, stdout JSONL read by the bench), with one bench home of 5 secret files added to the homes.\n\
         - **proctor heavy policy**: {homes} homes, {files} watched secret files, a rule per file (owner, severity) and per catalog id (owners, allowed destinations), exceptions.\n\
         - **auditd**: auditd {audit_v} started by the bench with its own log, rules loaded with auditctl: every execve/execveat, every connect, and `-w FILE -p r` on the same {files} secret files (backlog 8192). Removed after each phase and the kernel's audit settings restored.\n\
         - **bpftrace**: bpftrace {bt_v} on the tracepoints proctor uses (sched exec/fork/exit, sys_exit_openat with the same {files} secret inodes in a map, sys_enter_connect), printf to a file. It does no hashing, no path resolution, no detection.\n\n",
        homes = ctx.secrets.homes.len(),
        files = ctx.secrets.files.len(),
        audit_v = tool_version("auditctl", &["-v"]),
        bt_v = tool_version("bpftrace", &["--version"]),
    );
    for (cfg, why) in &unavailable {
        let _ = writeln!(md, "**{} could not run here**: {why}\n", cfg.name());
    }

    md.push_str("### Throughput\n\n");
    table_header(&mut md, &["workload", "unit"], &configs);
    for w in Workload::ALL {
        let _ = write!(md, "| {} | {} |", w.name(), w.unit());
        for c in &configs {
            let v = &results[c].rate[&w];
            let (lo, hi) = min_max(v);
            let _ = write!(
                md,
                " {} ({}–{}); lost {} |",
                fmt_rate(median(v)),
                fmt_rate(lo),
                fmt_rate(hi),
                lost_in(*c, w)
            );
        }
        md.push('\n');
    }

    md.push_str("\n### Overhead versus no monitor (1 − median/median of no monitor), records lost beside it\n\n![Overhead per workload and monitor](docs/bench/overhead.svg)\n\n");
    // The overhead columns, the noise control among them.
    let monitored: Vec<Config> = configs
        .iter()
        .copied()
        .filter(|c| *c != Config::None)
        .collect();
    // The columns of what only a monitor has: CPU, memory, records.
    let monitors: Vec<Config> = configs.iter().copied().filter(|c| c.monitors()).collect();
    table_header(&mut md, &["workload"], &monitored);
    for w in Workload::ALL {
        let _ = write!(md, "| {} |", w.name());
        for c in &monitored {
            match (res.ratio(*c, w), lost_in(*c, w)) {
                (Some(r), 0) => {
                    let _ = write!(md, " {:.1}%, lost 0 |", 100.0 * (1.0 - r));
                }
                (Some(r), n) => {
                    let _ = write!(md, " {:.1}%, **lost {n}** |", 100.0 * (1.0 - r));
                }
                (None, _) => md.push_str(" – |"),
            }
        }
        md.push('\n');
    }

    md.push_str("\n### Monitor's own CPU during each workload (share of one core: utime+stime of the agent / auditd + kauditd / bpftrace, over the workload's wall time)\n\n");
    table_header(&mut md, &["workload"], &monitors);
    for w in Workload::ALL {
        let _ = write!(md, "| {} |", w.name());
        for c in &monitors {
            let _ = write!(md, " {:.0}% |", 100.0 * median(&results[c].cpu[&w]));
        }
        md.push('\n');
    }
    md.push_str("| **max RSS** |");
    for c in &monitors {
        let _ = write!(md, " {:.1} MiB |", mib(results[c].rss_max_kib));
    }
    md.push_str("\n| **records lost (all phases)** |");
    for c in &monitors {
        let _ = write!(md, " {} |", results[c].lost);
    }
    md.push_str("\n| **events written (all phases)** |");
    for c in &monitors {
        let _ = write!(md, " {} |", results[c].events);
    }
    let _ = writeln!(
        md,
        "\n\nLost records: proctor's kernel drop counters and its sinks' dropped events (`agent_status`), auditd's `lost` (`auditctl -s`), bpftrace's `Lost N events`. Events written: proctor's emitted events, auditd log lines, bpftrace output lines. Failed connects over all phases: {}.\n",
        env.connect_failures.load(std::sync::atomic::Ordering::Relaxed)
    );

    // Verdicts: a throughput lead counts only where neither side lost a record.
    let proctors: Vec<Config> = [Config::Proctor, Config::ProctorHeavy]
        .into_iter()
        .filter(|c| results.contains_key(c))
        .collect();
    let others: Vec<Config> = [Config::Auditd, Config::Bpftrace]
        .into_iter()
        .filter(|c| results.contains_key(c))
        .collect();
    if !proctors.is_empty() && !others.is_empty() {
        md.push_str(
            "### proctor against each alternative, judged only where neither lost a record\n\n",
        );
        let pairs: Vec<(Config, Config)> = proctors
            .iter()
            .flat_map(|p| others.iter().map(move |o| (*p, *o)))
            .collect();
        let heads: Vec<String> = pairs
            .iter()
            .map(|(p, o)| format!("{} vs {}", p.name(), o.name()))
            .collect();
        let _ = writeln!(md, "| workload | {} |", heads.join(" | "));
        let _ = writeln!(md, "|{}", " --- |".repeat(heads.len() + 1));
        for w in Workload::ALL {
            let _ = write!(md, "| {} |", w.name());
            for (p, o) in &pairs {
                let _ = write!(md, " {} |", verdict(&res, *p, *o, w).text());
            }
            md.push('\n');
        }
        md.push('\n');
    }
    let svg_out = res.overhead_svg(&monitored);

    // Targets judged on these figures, each beside the noise control's
    // figure for its workload (the target is judged on the figure alone).
    let noise = |w: Workload| match res.ratio(Config::NoneAgain, w) {
        Some(r) => format!(" (noise control {:.1}%)", 100.0 * (1.0 - r)),
        None => String::new(),
    };
    if let Some(r) = res.ratio(Config::Proctor, Workload::UnwatchedOpens) {
        targets.push(Target::new(
            "unwatched-open overhead under 3% (proctor default)",
            format!(
                "{:.1}%{}",
                100.0 * (1.0 - r),
                noise(Workload::UnwatchedOpens)
            ),
            1.0 - r < 0.03,
            "on the page-cache set (the hook-set line at the top) no proctor program runs on an open: what is left is this VM's noise (the profile section finds no program run per open; compare the noise control); on the syscall set, the open program and the syscall-tracepoint slow path every syscall takes while one is attached",
        ));
    }
    if let Some(r) = res.ratio(Config::Proctor, Workload::ExecStorm) {
        targets.push(Target::new(
            "exec-storm overhead under 5% with hashing on (proctor default)",
            format!("{:.1}%{}", 100.0 * (1.0 - r), noise(Workload::ExecStorm)),
            1.0 - r < 0.05,
            "see the profile section: exec/fork/exit program cost and the agent's CPU per exec",
        ));
    }
    let overhead_target =
        |targets: &mut Vec<Target>, w: Workload, what: &str, max: f64, limit: &str| {
            if let Some(r) = res.ratio(Config::Proctor, w) {
                let n = lost_in(Config::Proctor, w);
                targets.push(Target::new(
                    what,
                    format!("{:.1}%, lost {n}{}", 100.0 * (1.0 - r), noise(w)),
                    1.0 - r < max && n == 0,
                    limit,
                ));
            }
        };
    overhead_target(
        targets,
        Workload::CachedReads,
        "unwatched cached 4 KiB read overhead under 3% (proctor default)",
        0.03,
        "on the page-cache set, `mm_filemap_get_pages` on every cached read: an empty program on that tracepoint costs most of what proctor's does on this VM (proctor's inlined bitmap test before any map lookup adds the rest), so the target is below the floor of running any BPF program there (the profile section's floor table); on the syscall set, the syscall-tracepoint slow path every syscall takes while one is attached (an empty program on sys_exit_openat costs 19–20%)",
    );
    overhead_target(
        targets,
        Workload::ConnectStorm,
        "connect overhead under 3% (proctor default)",
        0.03,
        "the cgroup sock_addr program and `inet_sock_set_state` on every connect (page-cache and lsm sets), or the connect tracepoints (syscall set); ns per connect of each in the profile section's kernel rows, and the floor of running any program on those two hooks in its floor table",
    );
    overhead_target(
        targets,
        Workload::CBuild,
        "C build overhead under 2% (proctor default)",
        0.02,
        "the exec, fork and exit programs and the agent's exec handling (hash, environment scan) on every compiler exec, and on the syscall set the open program on every open (profile section)",
    );
    if let (Some(p), Some(b)) = (
        res.ratio(Config::Proctor, Workload::SecretReads),
        res.ratio(Config::Bpftrace, Workload::SecretReads),
    ) {
        let (np, nb) = (
            lost_in(Config::Proctor, Workload::SecretReads),
            lost_in(Config::Bpftrace, Workload::SecretReads),
        );
        targets.push(Target::new(
            "watched secret reads overhead below bpftrace's bare inode lookup, nothing lost (proctor default)",
            format!(
                "{:.1}% (lost {np}) against bpftrace's {:.1}% (lost {nb})",
                100.0 * (1.0 - p),
                100.0 * (1.0 - b)
            ),
            p > b && np == 0 && nb == 0,
            "every first read of a watched file in a repeat window is a record the agent turns into two events: where the agent cannot keep up, the ring buffer overflows (drop-onset section)",
        ));
    }
    if results.contains_key(&Config::Auditd) && results.contains_key(&Config::ProctorHeavy) {
        let mut ahead = 0;
        let mut other = Vec::new();
        for w in Workload::ALL {
            match verdict(&res, Config::ProctorHeavy, Config::Auditd, w) {
                Verdict::Ahead(_) => ahead += 1,
                v => other.push(format!("{}: {}", w.name(), v.text())),
            }
        }
        targets.push(Target::new(
            "proctor (heavy policy, the same secrets as auditd's watches) ahead of auditd on every workload, neither losing a record",
            if other.is_empty() {
                format!("ahead on all {}", Workload::ALL.len())
            } else {
                format!("ahead on {ahead}; {}", other.join("; "))
            },
            other.is_empty(),
            "the per-workload verdict table above; auditd's rules name no read, datagram or io_uring operation: on those workloads it pays only its filter on each syscall (an io_uring operation is no syscall of its own), where proctor's hooks run a program on every operation (the floor of running any program there is in the profile section's floor table)",
        ));
    }
    Ok(MatrixResult {
        markdown: md,
        svg: svg_out,
        ..res
    })
}

/// How proctor configuration `p` compares with monitor `o` on workload `w`.
enum Verdict {
    Ahead(f64),
    Behind(f64),
    ProctorLost(u64),
    OtherLost(&'static str, u64),
    Unmeasured,
}

impl Verdict {
    fn text(&self) -> String {
        match self {
            Verdict::Ahead(by) => format!("ahead ({:+.1}% throughput)", 100.0 * by),
            Verdict::Behind(by) => format!("**behind** ({:+.1}% throughput)", 100.0 * by),
            Verdict::ProctorLost(n) => format!("not comparable: proctor lost {n}"),
            Verdict::OtherLost(name, n) => format!("not comparable: {name} lost {n}"),
            Verdict::Unmeasured => "–".into(),
        }
    }
}

fn verdict(res: &MatrixResult, p: Config, o: Config, w: Workload) -> Verdict {
    let lost = |c: Config| res.lost.get(&(c, w)).copied().unwrap_or(0);
    let (Some(rp), Some(ro)) = (res.medians.get(&(p, w)), res.medians.get(&(o, w))) else {
        return Verdict::Unmeasured;
    };
    match (lost(p), lost(o)) {
        (0, 0) if rp >= ro => Verdict::Ahead(rp / ro - 1.0),
        (0, 0) => Verdict::Behind(rp / ro - 1.0),
        (0, n) => Verdict::OtherLost(o.name(), n),
        (n, _) => Verdict::ProctorLost(n),
    }
}

impl MatrixResult {
    /// The overhead chart: a group per workload, a bar per monitor, ✕ where it lost records.
    fn overhead_svg(&self, monitored: &[Config]) -> String {
        let groups: Vec<String> = Workload::ALL.iter().map(|w| w.name().to_string()).collect();
        let series: Vec<String> = monitored.iter().map(|c| c.name().to_string()).collect();
        let values: Vec<Vec<Option<f64>>> = monitored
            .iter()
            .map(|c| {
                Workload::ALL
                    .iter()
                    .map(|w| self.ratio(*c, *w).map(|r| 100.0 * (1.0 - r)))
                    .collect()
            })
            .collect();
        let lost: Vec<Vec<u64>> = monitored
            .iter()
            .map(|c| {
                Workload::ALL
                    .iter()
                    .map(|w| self.lost.get(&(*c, *w)).copied().unwrap_or(0))
                    .collect()
            })
            .collect();
        svg::bars(
            "Overhead versus no monitor, median (lower is better)",
            "throughput lost (%)",
            &groups,
            &series,
            &values,
            &lost,
        )
    }
}

/// Waits (up to 10 s) until the monitor has worked off what the last
/// workload left queued (a ring buffer or audit backlog), so that the next
/// workload is not measured against the last one's catch-up.
fn settle(mon: &Running) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = mon.cpu_seconds();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        let now = mon.cpu_seconds();
        // Under 5% of one core: idle but for its own timers.
        if now - last < 0.01 {
            return;
        }
        last = now;
    }
}

/// A Markdown table header: the `first` columns, then one per configuration.
fn table_header(md: &mut String, first: &[&str], configs: &[Config]) {
    let names = first
        .iter()
        .copied()
        .chain(configs.iter().map(|c| c.name()));
    let names: Vec<&str> = names.collect();
    let _ = writeln!(md, "| {} |", names.join(" | "));
    let _ = writeln!(md, "|{}", " --- |".repeat(names.len()));
}

fn fmt_rate(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn tool_version(tool: &str, args: &[&str]) -> String {
    std::process::Command::new(tool)
        .args(args)
        .output()
        .ok()
        .map(|o| {
            let s = String::from_utf8_lossy(&o.stdout).to_string()
                + &String::from_utf8_lossy(&o.stderr);
            s.split_whitespace()
                .find(|w| w.chars().any(|c| c.is_ascii_digit()) && w.contains('.'))
                .unwrap_or("")
                .trim_start_matches('v')
                .to_string()
        })
        .unwrap_or_default()
}
