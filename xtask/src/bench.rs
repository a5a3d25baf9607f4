//! `cargo xtask bench`: measures the agent on this machine and writes
//! BENCHMARKS.md. `--smoke` runs every workload once, small, and writes to
//! target/bench-smoke.md instead, so the harness is exercised by the test
//! suite without pretending to measure anything.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::root;

const AGENT_CONFIG: &str = "status_interval: 500ms\nmetrics:\n  listen: 127.0.0.1:0\n";

/// A home with one watched secret, for the open benchmarks.
struct SecretHome {
    dir: PathBuf,
}

impl SecretHome {
    fn new() -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("proctor-bench-home-{}", std::process::id()));
        std::fs::create_dir_all(dir.join(".aws"))?;
        std::fs::write(
            dir.join(".aws/credentials"),
            "[default]\naws_secret_access_key = bench-not-a-real-key\n",
        )?;
        std::fs::write(dir.join("plain.txt"), "not a secret\n")?;
        Ok(Self { dir })
    }

    fn config(&self) -> String {
        format!(
            "{AGENT_CONFIG}state_dir: {}/state\nsecrets:\n  extra_homes: [{}]\n  search_dirs: []\n",
            self.dir.display(),
            self.dir.display()
        )
    }
}

impl Drop for SecretHome {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `n` open+close of `path` in this thread; returns opens per second.
fn open_storm(path: &Path, n: usize) -> f64 {
    let t = Instant::now();
    for _ in 0..n {
        drop(std::fs::File::open(path));
    }
    n as f64 / t.elapsed().as_secs_f64()
}

struct Agent {
    child: Child,
    state: Arc<Mutex<AgentState>>,
    _config: PathBuf,
}

#[derive(Default)]
struct AgentState {
    last_status: Option<Value>,
    statuses: u64,
    execs_with_marker: u64,
}

impl Agent {
    fn start(bin: &Path, marker: &str, config_text: &str) -> Result<Agent> {
        let config =
            std::env::temp_dir().join(format!("proctor-bench-{}.yaml", std::process::id()));
        std::fs::write(&config, config_text)?;
        let mut child = Command::new(bin)
            .args(["run", "--config"])
            .arg(&config)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("start proctor")?;
        let state: Arc<Mutex<AgentState>> = Arc::default();
        let out = child.stdout.take().unwrap();
        let s2 = state.clone();
        let marker = marker.to_string();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                // Cheap pre-filter: parsing every line would make the harness the bottleneck.
                if line.contains("\"agent_status\"") {
                    if let Ok(v) = serde_json::from_str::<Value>(&line) {
                        let mut s = s2.lock().unwrap();
                        s.last_status = Some(v);
                        s.statuses += 1;
                    }
                } else if line.contains("\"process_exec\"") && line.contains(&marker) {
                    s2.lock().unwrap().execs_with_marker += 1;
                }
            }
        });
        let agent = Agent {
            child,
            state,
            _config: config,
        };
        agent.wait_first_status(Duration::from_secs(60))?;
        Ok(agent)
    }

    fn wait_first_status(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while self.state.lock().unwrap().statuses == 0 {
            if Instant::now() > deadline {
                bail!("agent produced no status within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// A status emitted after now.
    fn fresh_status(&self) -> Result<Value> {
        let seen = self.state.lock().unwrap().statuses;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            {
                let s = self.state.lock().unwrap();
                if s.statuses > seen + 1 {
                    return Ok(s.last_status.clone().unwrap());
                }
            }
            if Instant::now() > deadline {
                bail!("agent produced no status within 30s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn rss_kib(&self) -> u64 {
        rss_kib(self.child.id())
    }

    /// RSS of the process's BPF map mappings (the ring buffer), from smaps.
    fn ring_mapping_kib(&self) -> u64 {
        let smaps =
            std::fs::read_to_string(format!("/proc/{}/smaps", self.child.id())).unwrap_or_default();
        let mut total = 0;
        let mut in_map = false;
        for line in smaps.lines() {
            if line.contains(" anon_inode:bpf-map") {
                in_map = true;
            } else if line
                .split_whitespace()
                .next()
                .is_some_and(|w| w.contains('-'))
            {
                in_map = false;
            } else if in_map {
                if let Some(v) = line.strip_prefix("Rss:") {
                    total += v
                        .trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .unwrap_or(0);
                }
            }
        }
        total
    }

    fn stop(mut self) {
        send_signal(self.child.id(), "TERM");
        let _ = self.child.wait();
    }
}

fn send_signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn drops(status: &Value) -> u64 {
    status["status"]["kernel"]["dropped"]["total"]
        .as_u64()
        .unwrap_or(0)
}

/// Runs `n` execs of /bin/true from `threads` threads; returns execs per second.
fn exec_storm(n: usize, threads: usize, marker: &str) -> f64 {
    let t = Instant::now();
    let hs: Vec<_> = (0..threads)
        .map(|k| {
            let marker = marker.to_string();
            std::thread::spawn(move || {
                for _ in (k..n).step_by(threads) {
                    let _ = Command::new("/bin/true").arg(&marker).status();
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    n as f64 / t.elapsed().as_secs_f64()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn spread(v: &[f64]) -> (f64, f64) {
    let min = v.iter().cloned().fold(f64::INFINITY, f64::min);
    let max = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    (min, max)
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_string())
        })
        .and_then(|k| k.parse::<u64>().ok())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{cores} cores ({cpu}), {:.1} GiB RAM, Linux {}",
        mem as f64 / 1048576.0,
        kernel.trim()
    )
}

pub fn run(bin: &Path, smoke: bool) -> Result<()> {
    let started = Instant::now();
    let mut md = String::new();
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    md.push_str(&format!(
        "# Benchmarks\n\nCommand: `cargo xtask bench{}`  \nMachine: {}  \nDate: {date}\n\n",
        if smoke { " --smoke" } else { "" },
        machine()
    ));
    if smoke {
        md.push_str("**Smoke run: tiny sizes, one repetition. These figures mean nothing.**\n\n");
    }

    // 1. Hash cache.
    let mut hash_cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    hash_cmd.current_dir(root()).args([
        "run",
        "--quiet",
        "--release",
        "-p",
        "proctor",
        "--example",
        "hash_bench",
        "--",
    ]);
    if smoke {
        hash_cmd.arg("--smoke");
    }
    let out = hash_cmd.output().context("run hash_bench")?;
    if !out.status.success() {
        bail!(
            "hash_bench failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let h: Value = serde_json::from_slice(&out.stdout).context("hash_bench output")?;
    md.push_str("## Hash cache\n\n| figure | value |\n| --- | --- |\n");
    md.push_str(&format!(
        "| machine SHA-256, same implementation (sha2 crate), in memory | {:.0} MiB/s |\n",
        h["raw_sha256_mib_s"].as_f64().unwrap_or(0.0)
    ));
    if let Some(c) = h["coreutils_sha256sum_mib_s"].as_f64() {
        md.push_str(&format!(
            "| `sha256sum` (coreutils) on the same cached files | {c:.0} MiB/s |\n"
        ));
    }
    md.push_str(&format!(
        "| cold hash through the agent's verified path ({} files × {} MiB, page-cached) | {:.0} MiB/s ({:.0}% of in-memory SHA-256) |\n",
        h["files"], h["file_mib"],
        h["cold_hash_mib_s"].as_f64().unwrap_or(0.0),
        100.0 * h["cold_vs_raw"].as_f64().unwrap_or(0.0)
    ));
    md.push_str(&format!(
        "| cache hit (`HashCache::request` of a hashed version, awaited) | {:.0} ns |\n\n",
        h["cache_hit_ns"].as_f64().unwrap_or(0.0)
    ));

    let home = SecretHome::new()?;
    let config = home.config();
    let marker = format!("proctor-bench-{}", std::process::id());

    // 2. Opens: unwatched (the common case) and watched, agent off / on interleaved.
    let (n_open, reps_open) = if smoke { (20_000, 1) } else { (1_000_000, 5) };
    let plain = home.dir.join("plain.txt");
    let secret = home.dir.join(".aws/credentials");
    let (mut u_off, mut u_on, mut w_off, mut w_on) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut open_drops, mut open_events) = (0u64, 0u64);
    for _ in 0..reps_open {
        u_off.push(open_storm(&plain, n_open));
        w_off.push(open_storm(&secret, n_open / 10));
        let agent = Agent::start(bin, &marker, &config)?;
        let before = agent.fresh_status()?;
        u_on.push(open_storm(&plain, n_open));
        w_on.push(open_storm(&secret, n_open / 10));
        let after = agent.fresh_status()?;
        let k = |s: &Value, f: &str| s["status"]["kernel"][f]["file_open"].as_u64().unwrap_or(0);
        open_drops += k(&after, "dropped") - k(&before, "dropped");
        open_events += k(&after, "sent") - k(&before, "sent");
        agent.stop();
    }
    let med = |v: &mut Vec<f64>| median(v);
    let (uo, un, wo, wn) = (
        med(&mut u_off),
        med(&mut u_on),
        med(&mut w_off),
        med(&mut w_on),
    );
    md.push_str(&format!(
        "## File opens\n\n{reps_open} repetitions, agent off and on interleaved; each repetition opens and closes an unwatched file {n_open} times and a watched secret ({} `~/.aws/credentials`) {} times from one thread.\n\n\
         | workload | no monitor (opens/s) | proctor (opens/s) | overhead |\n| --- | --- | --- | --- |\n\
         | unwatched file | {uo:.0} | {un:.0} | {:.1}% |\n\
         | watched secret (every open is an event + finding) | {wo:.0} | {wn:.0} | {:.1}% |\n\n\
         Per unwatched open the agent adds {:.0} ns. Watched-open records sent by the kernel: {open_events}; dropped: {open_drops}.\n\n",
        "a",
        n_open / 10,
        100.0 * (1.0 - un / uo),
        100.0 * (1.0 - wn / wo),
        (1e9 / un - 1e9 / uo).max(0.0),
    ));

    // Watched opens at a steady pace: the highest rate with no kernel drops.
    let rates: &[u64] = if smoke {
        &[500]
    } else {
        &[1_000, 2_000, 5_000, 10_000, 20_000, 50_000]
    };
    let agent = Agent::start(bin, &marker, &config)?;
    let mut paced = String::new();
    let mut sustained = 0;
    for &rate in rates {
        let before = agent.fresh_status()?;
        let secs = if smoke { 1 } else { 3 };
        let n = rate * secs;
        let t = Instant::now();
        for i in 0..n {
            drop(std::fs::File::open(&secret));
            let due = Duration::from_nanos(i * 1_000_000_000 / rate);
            if let Some(wait) = due.checked_sub(t.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        let achieved = n as f64 / t.elapsed().as_secs_f64();
        let after = agent.fresh_status()?;
        let k = |s: &Value, f: &str| s["status"]["kernel"][f]["file_open"].as_u64().unwrap_or(0);
        let dropped = k(&after, "dropped") - k(&before, "dropped");
        if dropped == 0 {
            sustained = sustained.max(rate);
        }
        paced.push_str(&format!("| {rate} | {achieved:.0} | {dropped} |\n"));
    }
    agent.stop();
    md.push_str(&format!(
        "Watched opens at a steady pace (each one a `file_open` event, a `secret-read` finding, a fingerprint-cache lookup and an inventory write), {} s per rate:\n\n\
         | target opens/s | achieved | kernel drops |\n| --- | --- | --- |\n{paced}\n\
         Highest rate with zero drops: **{sustained} watched opens/s**.\n\n",
        if smoke { 1 } else { 3 }
    ));

    // Connects to a loopback listener, agent off / on interleaved.
    let n_conn = if smoke { 2_000 } else { 10_000 };
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        for c in listener.incoming() {
            drop(c);
        }
    });
    // Counts failures too: a run that exhausts ephemeral ports would look fast.
    let failed = std::sync::atomic::AtomicU64::new(0);
    let connect_storm = |n: usize| {
        let t = Instant::now();
        for _ in 0..n {
            if std::net::TcpStream::connect(addr).is_err() {
                failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        n as f64 / t.elapsed().as_secs_f64()
    };
    let (mut c_off, mut c_on) = (Vec::new(), Vec::new());
    for rep in 0..reps_open {
        // Alternate which configuration goes first, so TIME_WAIT build-up
        // cannot favour one side.
        let agent_first = rep % 2 == 1;
        if !agent_first {
            c_off.push(connect_storm(n_conn));
        }
        let agent = Agent::start(bin, &marker, &config)?;
        agent.fresh_status()?;
        c_on.push(connect_storm(n_conn));
        agent.stop();
        if agent_first {
            c_off.push(connect_storm(n_conn));
        }
        // Let TIME_WAIT drain between repetitions.
        std::thread::sleep(Duration::from_secs(if smoke { 0 } else { 2 }));
    }
    let conn_failed = failed.load(std::sync::atomic::Ordering::Relaxed);
    let (co, cn) = (median(&mut c_off), median(&mut c_on));
    md.push_str(&format!(
        "## Connects\n\n{reps_open} repetitions of {n_conn} TCP connects to a loopback listener from one thread, agent off and on interleaved (repeats of one destination are counted in the kernel and reported once).\n\n\
         | no monitor (connects/s) | proctor (connects/s) | overhead |\n| --- | --- | --- |\n| {co:.0} | {cn:.0} | {:.1}% |\n\nFailed connects over the whole run (both configurations): {conn_failed}.\n\n",
        100.0 * (1.0 - cn / co)
    ));

    // 3. Exec storm, agent off / on interleaved.
    let (n, reps, threads) = if smoke { (200, 1, 2) } else { (4000, 5, 4) };
    let mut off = Vec::new();
    let mut on = Vec::new();
    let mut total_drops = 0;
    let mut reported = 0;
    for _ in 0..reps {
        off.push(exec_storm(n, threads, &marker));
        let agent = Agent::start(bin, &marker, &config)?;
        let before = agent.fresh_status()?;
        on.push(exec_storm(n, threads, &marker));
        let after = agent.fresh_status()?;
        total_drops += drops(&after) - drops(&before);
        reported += agent.state.lock().unwrap().execs_with_marker;
        agent.stop();
    }
    let (off_min, off_max) = spread(&off);
    let (on_min, on_max) = spread(&on);
    let off_med = median(&mut off);
    let on_med = median(&mut on);
    md.push_str(&format!(
        "## Exec storm\n\n{reps} repetitions of {n} `fork+exec` of `/bin/true` from {threads} threads, agent off and on interleaved (A B A B …); the agent runs the default config with hashing on.\n\n\
         | configuration | execs/s median | min–max |\n| --- | --- | --- |\n\
         | no monitor | {off_med:.0} | {off_min:.0}–{off_max:.0} |\n\
         | proctor | {on_med:.0} | {on_min:.0}–{on_max:.0} |\n\n\
         Overhead (1 − on/off, medians): **{:.1}%**. Exec events reported: {reported} of {} execs; kernel drops counted: {total_drops}.\n\n",
        100.0 * (1.0 - on_med / off_med),
        n * reps,
    ));

    // 4. Memory: idle and with many tracked processes.
    let tracked = if smoke { 200 } else { 10_000 };
    let agent = Agent::start(bin, &marker, &config)?;
    std::thread::sleep(Duration::from_secs(if smoke { 1 } else { 3 }));
    let idle = agent.rss_kib();
    let ring_kib = agent.ring_mapping_kib();
    let base_live = agent.fresh_status()?["status"]["process_table"]["live"]
        .as_u64()
        .unwrap_or(0);
    let mut sleepers = Vec::with_capacity(tracked);
    for _ in 0..tracked {
        match Command::new("/bin/sleep")
            .arg("600")
            .stdout(Stdio::null())
            .spawn()
        {
            Ok(c) => sleepers.push(c),
            Err(e) => {
                eprintln!(
                    "bench: stopped spawning sleepers at {}: {e}",
                    sleepers.len()
                );
                break;
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut live = 0;
    while Instant::now() < deadline {
        live = agent.fresh_status()?["status"]["process_table"]["live"]
            .as_u64()
            .unwrap_or(0);
        if live >= base_live + sleepers.len() as u64 {
            break;
        }
    }
    let loaded = agent.rss_kib();
    for c in &mut sleepers {
        let _ = c.kill();
    }
    for mut c in sleepers {
        let _ = c.wait();
    }
    agent.stop();
    md.push_str(&format!(
        "## Memory\n\n| state | agent RSS | of which the ring-buffer mapping |\n| --- | --- | --- |\n| idle, {base_live} processes in the table | {:.1} MiB | {:.1} MiB |\n| {live} processes in the table ({tracked} extra `sleep`) | {:.1} MiB | {:.1} MiB |\n\n\
         The ring buffer (8 MiB by default) is mapped twice by the kernel's design and counts in RSS once touched; it is kernel memory sized by `kernel.ring_buffer_bytes`, not agent heap.\n\n",
        idle as f64 / 1024.0,
        ring_kib as f64 / 1024.0,
        loaded as f64 / 1024.0,
        ring_kib as f64 / 1024.0,
    ));
    md.push_str(&format!(
        "Targets from the issues, where measured here: RSS under 64 MiB with 10k processes: {}; cold hashing within 80% of the machine's SHA-256 speed: {}.\n\n",
        if smoke { "n/a (smoke)".to_string() } else if (loaded as f64 / 1024.0) < 64.0 { "met".into() } else { "NOT met".into() },
        if smoke { "n/a (smoke)".to_string() } else if h["cold_vs_raw"].as_f64().unwrap_or(0.0) >= 0.8 { "met".into() } else { "NOT met".into() },
    ));
    md.push_str(&format!(
        "Whole run took {:.0} s.\n",
        started.elapsed().as_secs_f64()
    ));

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
