//! Sustained event rate: watched-secret accesses at a steady pace, the rate
//! raised until the agent loses records or falls behind, then narrowed down.

use std::{
    fmt::Write as _,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Result;

use super::{
    agent::{self, Agent, Watch},
    profile, stats, svg, Ctx, Target,
};

/// How each kernel record of the drop-onset workload is made.
#[derive(Clone, Copy, PartialEq)]
pub enum Gen {
    /// open, one-byte read, close: the syscall and LSM hook sets report opens.
    Opens,
    /// A one-byte `pread` at offset 0 through fds opened once: the page-cache
    /// set reports reads, and a re-read costs the generator ~1 µs instead of
    /// the ~6 µs of an open, read and close, so the agent gets the cores.
    Rereads,
}

/// What [`paced`] made.
pub struct Paced {
    pub records: u64,
    /// Records per second, over the generator threads' own run.
    pub rate: f64,
}

/// Makes records from `files` round robin at `rate` per second for `secs`,
/// from enough threads to reach the rate.
pub fn paced(gen: Gen, files: &[PathBuf], rate: u64, secs: f64) -> Paced {
    let per_thread = if gen == Gen::Rereads { 150_000 } else { 60_000 };
    let threads = rate.div_ceil(per_thread).max(1);
    let per = rate / threads;
    let n = (per as f64 * secs) as u64;
    // The bench's own files: one it cannot open is a broken bench, not a
    // rate of zero records.
    let held: Arc<Vec<std::fs::File>> = Arc::new(match gen {
        Gen::Rereads => files
            .iter()
            .map(|f| std::fs::File::open(f).unwrap_or_else(|e| panic!("open {}: {e}", f.display())))
            .collect(),
        Gen::Opens => Vec::new(),
    });
    let files = Arc::new(files.to_vec());
    let t = Instant::now();
    let hs: Vec<_> = (0..threads)
        .map(|k| {
            let (files, held) = (files.clone(), held.clone());
            std::thread::spawn(move || {
                let start = Instant::now();
                for i in 0..n {
                    let which = (i + k) as usize % files.len();
                    match gen {
                        Gen::Opens => {
                            if let Ok(mut f) = std::fs::File::open(&files[which]) {
                                let _ = std::io::Read::read(&mut f, &mut [0u8; 1]);
                            }
                        }
                        Gen::Rereads => {
                            let _ =
                                std::os::unix::fs::FileExt::read_at(&held[which], &mut [0u8; 1], 0);
                        }
                    }
                    if i % 16 == 15 {
                        let due = Duration::from_nanos(i * 1_000_000_000 / per);
                        if let Some(ahead) = due.checked_sub(start.elapsed()) {
                            std::thread::sleep(ahead);
                        }
                    }
                }
            })
        })
        .collect();
    for h in hs {
        let _ = h.join();
    }
    Paced {
        records: n * threads,
        rate: (n * threads) as f64 / t.elapsed().as_secs_f64(),
    }
}

struct Step {
    rate: u64,
    achieved: f64,
    /// The bench's own `file_open` events read from the agent, per second.
    delivered_s: f64,
    events_s: f64,
    /// Kernel records the ring buffer had no room for.
    dropped: u64,
    /// Events the agent made but its stdout sink could not take (its queue
    /// full): a loss as much as a kernel drop.
    sink_dropped: u64,
    /// The step's records the bench had not read back from the agent's
    /// stdout when the generator stopped, in seconds of the rate.
    behind_s: f64,
    /// How much `behind_s` grew over the second half of the step. The ring
    /// buffer (some 61k read records) and the sink's queue can hide a
    /// deficit for a step of a few seconds; a backlog that stays put is
    /// latency (queues filled once), one that grows is a rate the agent
    /// does not keep up with, and shows here before it drops.
    growth_s: f64,
    cpu: f64,
    /// The bench process's own CPU: the generator and the reader of the
    /// agent's stdout share the machine with the agent.
    bench_cpu: f64,
}

fn step(agent: &Agent, gen: Gen, files: &[PathBuf], rate: u64, secs: f64) -> Result<Step> {
    // The step before may have left the agent freeing what it held.
    stats::wait_machine_quiet(Duration::from_secs(5));
    let before = agent.fresh_status()?;
    let seen0 = agent.state.lock().unwrap().opens_with_marker;
    let c0 = agent.cpu_seconds();
    let b0 = stats::cpu_seconds(std::process::id());
    let t = Instant::now();
    let owned = files.to_vec();
    let generator = std::thread::spawn(move || paced(gen, &owned, rate, secs));
    // Halfway: how far behind the output is (the generator is paced, so it
    // has made about `rate` per second so far).
    std::thread::sleep(Duration::from_secs_f64(secs / 2.0));
    let mid_s = t.elapsed().as_secs_f64();
    let seen_mid = agent.state.lock().unwrap().opens_with_marker;
    let made = generator
        .join()
        .expect("the generator threads do not panic");
    let wall = t.elapsed().as_secs_f64();
    let seen_at_end = agent.state.lock().unwrap().opens_with_marker;
    let behind_mid = (mid_s * rate as f64 - (seen_mid - seen0) as f64).max(0.0) / rate as f64;
    let c1 = agent.cpu_seconds();
    let b1 = stats::cpu_seconds(std::process::id());
    // The stream has caught up once a status emitted after the last access arrived.
    let after = agent.fresh_status()?;
    let seen1 = agent.state.lock().unwrap().opens_with_marker;
    let behind_s = made.records.saturating_sub(seen_at_end - seen0) as f64 / made.rate.max(1.0);
    Ok(Step {
        rate,
        achieved: made.rate,
        delivered_s: (seen1 - seen0) as f64 / wall,
        events_s: (agent::emitted(&after) - agent::emitted(&before)) as f64 / wall,
        dropped: agent::drops(&after) - agent::drops(&before),
        sink_dropped: agent::sink_drops(&after) - agent::sink_drops(&before),
        behind_s,
        growth_s: behind_s - behind_mid,
        cpu: (c1 - c0) / wall,
        bench_cpu: (b1 - b0) / wall,
    })
}

/// A step whose backlog grew by more than this (in seconds of its rate)
/// over its second half did not keep up, drops or not: over the 2 s half of
/// a full-run step, a deficit of 5% of the rate.
const GROWTH_LIMIT_S: f64 = 0.1;

impl Step {
    /// Lost records, or a growing backlog that a longer step would have lost.
    fn lost(&self) -> bool {
        self.dropped > 0 || self.sink_dropped > 0 || self.growth_s > GROWTH_LIMIT_S
    }
}

pub struct DropsResult {
    pub markdown: String,
    /// The drop-onset curve: offered rate against delivered and lost (SVG).
    pub svg: String,
    /// Agent profile at the drop onset, when perf could take one.
    pub profile: Option<String>,
}

pub fn section(ctx: &Ctx, targets: &mut Vec<Target>) -> Result<DropsResult> {
    let files = ctx.secrets.read_set();
    let agent = Agent::start(
        &ctx.bin,
        &ctx.dir,
        "drops",
        // No repeat suppression: every open is a record, so the curve
        // measures the pipeline, not the kernel's folding of re-reads.
        &ctx.secrets
            .proctor_default(&ctx.dir, "drops", "kernel:\n  repeat_window: 0s\n"),
        Watch {
            open_count_marker: Some(ctx.secrets.homes[0].display().to_string()),
            ..Watch::default()
        },
    )?;
    // Long enough that a deficit of a few percent shows as a growing backlog.
    let secs = if ctx.smoke { 0.4 } else { 4.0 };
    let file_access = agent.fresh_status()?["status"]["hook_set"]["file_access"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let gen = if file_access == "page-cache" {
        Gen::Rereads
    } else {
        Gen::Opens
    };
    let mut steps: Vec<Step> = Vec::new();
    let mut rate = if ctx.smoke { 1_000 } else { 5_000 };
    let max_rate = if ctx.smoke { 2_000 } else { 320_000 };
    // Upward, doubling, until a loss (or a backlog) or the generator cannot keep up.
    let mut good: Option<u64> = None;
    let mut bad: Option<u64> = None;
    while rate <= max_rate {
        let s = step(&agent, gen, files, rate, secs)?;
        let generator_capped = s.achieved < 0.9 * rate as f64;
        let lossy = s.lost();
        steps.push(s);
        if lossy {
            bad = Some(rate);
            break;
        }
        good = Some(rate);
        if generator_capped {
            break;
        }
        rate *= 2;
    }
    // Narrow the onset down between the last clean rate and the first lossy one.
    if let (Some(mut lo), Some(mut hi)) = (good, bad) {
        for _ in 0..if ctx.smoke { 0 } else { 3 } {
            let mid = (lo + hi) / 2;
            let s = step(&agent, gen, files, mid, secs)?;
            if s.lost() {
                hi = mid;
            } else {
                lo = mid;
            }
            steps.push(s);
        }
        bad = Some(hi);
    }
    // This VM's speed comes and goes (the same build has measured an onset
    // of 80k and of 120k within minutes): the highest clean rate is run
    // twice more, and a rate counts as kept up with only if every run at it
    // was clean.
    let best = steps.iter().filter(|s| !s.lost()).map(|s| s.rate).max();
    if let Some(best) = best.filter(|_| !ctx.smoke) {
        for _ in 0..2 {
            steps.push(step(&agent, gen, files, best, secs)?);
        }
    }
    let profile = match bad {
        Some(onset) => match profile::perf_agent(agent.pid(), secs.max(1.0), || {
            paced(gen, files, onset, secs.max(1.0));
        }) {
            Ok(p) => Some(p),
            Err(e) if ctx.must_run_external => {
                return Err(e.context("perf profile at the drop onset (required in CI)"))
            }
            Err(_) => None,
        },
        None => None,
    };
    agent.stop();

    steps.sort_by_key(|s| s.rate);
    let mut md = String::from("## Sustained event rate and the drop onset\n\n");
    let ring_holds = match gen {
        Gen::Rereads => "some 61k read records (136 bytes each)",
        Gen::Opens => "some 4k file-open records (about 2 KiB each, with their paths)",
    };
    let how = match gen {
        Gen::Rereads => "one-byte `pread`s at offset 0 of the 5 watched files, each held open (the hook set is `page-cache`, where each read of a watched file is a record; a re-read costs the generator about 1 µs where an open, read and close cost 6, so the agent, not the generator, meets the limit)",
        Gen::Opens => "watched-secret opens, each with a one-byte read, of the 5 watched files (the hook set sees opens)",
    };
    let _ = writeln!(
        md,
        "proctor default config with `kernel.repeat_window: 0s` (every access a record, no folding of repeats in the kernel); {how}, round robin, at a steady pace for {secs} s per rate, the rate doubled until the agent loses records, then bisected. Each access is one kernel record, and the agent emits a `file_open` event and a `secret-read` finding for it. The event stream is read from the agent's stdout by the bench, as a log shipper would. Delivered: the bench's own `file_open` events read back; emitted: all events the agent made (the machine's other activity included), delivered or not; kernel drops: the agent's kernel drop counters (all record kinds); sink drops: events the agent made but its stdout sink dropped (queue full). Behind: the records the bench had not yet read back when the generator stopped (in the agent's ring buffer and queues, the pipe, the bench's reader), in seconds of the rate; growth: how much that backlog grew over the second half of the step. The ring alone holds {ring_holds}, so a deficit can hide for a few seconds before it drops: a backlog that stays put is latency (queues filled once), one that grows is a rate the agent does not keep up with. A rate counts as lossy if either drop count is non-zero or the backlog grew by more than {GROWTH_LIMIT_S} s (a deficit of 5% over the half-step). Bench CPU: the bench process itself (the generator threads and the reader of the agent's stdout), on the same {} cores.\n\n\
         | target records/s | achieved | delivered `file_open`/s | events emitted/s | kernel drops | sink drops | behind (s) | growth (s) | agent CPU (one core = 100%) | bench CPU |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for s in &steps {
        let _ = writeln!(
            md,
            "| {} | {:.0} | {:.0} | {:.0} | {} | {} | {:.2} | {:+.2} | {:.0}% | {:.0}% |",
            s.rate,
            s.achieved,
            s.delivered_s,
            s.events_s,
            s.dropped,
            s.sink_dropped,
            s.behind_s,
            s.growth_s,
            100.0 * s.cpu,
            100.0 * s.bench_cpu
        );
    }
    // A rate is kept up with when every run at it was clean; its figure is
    // the lowest delivered rate among those runs.
    let runs_at = |rate: u64| steps.iter().filter(move |s| s.rate == rate);
    let clean = || {
        steps
            .iter()
            .filter(|s| runs_at(s.rate).all(|r| !r.lost()))
            .map(|s| s.rate)
    };
    let held = |f: fn(&Step) -> f64| {
        clean()
            .map(|rate| runs_at(rate).map(f).fold(f64::MAX, f64::min))
            .fold(0.0, f64::max)
    };
    let sustained = held(|s| s.delivered_s);
    let sustained_events = held(|s| s.events_s);
    // The target is judged on the offered rate every run kept up with: the
    // delivered rate of a clean step is that rate less the generator's
    // start and stop (199,939 of 200,000 in one run).
    let kept_up = clean().max().unwrap_or(0);
    let rechecked = steps
        .iter()
        .map(|s| s.rate)
        .filter(|&r| runs_at(r).count() > 1)
        .max()
        .map(|r| {
            let n = runs_at(r).count();
            let ok = runs_at(r).filter(|s| !s.lost()).count();
            format!(" The highest clean rate of the search, {r}/s, was run {n} times: clean in {ok} of them.")
        })
        .unwrap_or_default();
    let _ = writeln!(
        md,
        "\nHighest rate with zero drops that the agent kept up with in every run at it: **{kept_up} watched-file records/s** offered ({sustained:.0}/s delivered in the slowest run at it; each one record, two events); losses (or a backlog growing past {GROWTH_LIMIT_S} s) begin at: **{}**.{rechecked}\n",
        match bad {
            Some(b) => format!("{b} records/s"),
            None => format!("not reached up to {:.0} records/s (the highest rate tried, or the generator's ceiling)", steps.last().map_or(0.0, |s| s.achieved)),
        }
    );
    let _ = writeln!(md, "![Drop onset](docs/bench/drop-onset.svg)\n");
    let svg = svg::lines(
        "Watched-file records: offered rate against delivered and lost (per s)",
        "offered records/s",
        "records/s",
        &[
            (
                "delivered file_open/s".into(),
                steps
                    .iter()
                    .map(|s| (s.rate as f64, s.delivered_s))
                    .collect(),
            ),
            (
                "lost (kernel and sink drops)/s".into(),
                steps
                    .iter()
                    .map(|s| (s.rate as f64, (s.dropped + s.sink_dropped) as f64 / secs))
                    .collect(),
            ),
        ],
        Some((200_000.0, "target: no drops up to 200k/s")),
    );
    if !ctx.smoke {
        targets.push(Target::new(
            "drop onset at 200k records/s or above (no drops below it, and kept up with)",
            format!(
                "zero drops and kept up with at {kept_up} kernel records/s offered in every run at it ({sustained:.0} delivered/s, {sustained_events:.0} events emitted/s); losses or backlog from {}",
                bad.map(|b| format!("{b}/s"))
                    .unwrap_or_else(|| "none seen".into())
            ),
            // Judged on kernel records: each access is one, whatever the
            // agent makes of it.
            kept_up >= 200_000,
            "the agent's pipeline thread (ring buffer, table, detections, ordering, JSON) is saturated at the onset (CPU column above) while the bench's generator and stdout reader take some 60% of the other core (75-86% before the harness was built optimised), so a second agent thread has little to run on: JSON encoding moved to the blocking pool, the sinks on a thread of their own woken at most once a millisecond, and the next batch encoded during the write were each measured lower (90-130k/s) than the one thread (2026-12-07); where the agent's time goes: the profile at the drop onset and the instructions per record",
        ));
    }
    Ok(DropsResult {
        markdown: md,
        svg,
        profile,
    })
}
