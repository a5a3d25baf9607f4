//! Small measurement helpers: medians and percentiles, per-process CPU and
//! RSS from /proc, the machine's description.

use std::{
    process::Command,
    sync::OnceLock,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

pub fn median(v: &[f64]) -> f64 {
    percentile(v, 50.0)
}

/// Nearest-rank percentile; NaN for an empty sample.
pub fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    s[rank.clamp(1, s.len()) - 1]
}

pub fn min_max(v: &[f64]) -> (f64, f64) {
    let min = v.iter().cloned().fold(f64::INFINITY, f64::min);
    let max = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    (min, max)
}

/// Wall-clock nanoseconds since the epoch (CLOCK_REALTIME, the clock the
/// agent stamps events with).
pub fn now_epoch_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

pub fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}

/// A `kB` figure of `/proc/<pid>/status` (`VmRSS:`, `RssAnon:`, ...).
fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Anonymous memory (heap and thread stacks) of `pid`, in KiB.
pub fn rss_anon_kib(pid: u32) -> u64 {
    status_kib(pid, "RssAnon:")
}

fn clock_ticks_per_s() -> f64 {
    static TCK: OnceLock<f64> = OnceLock::new();
    *TCK.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// utime + stime of a process (all its threads), in seconds; 0 when it is gone.
pub fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name, which may itself hold spaces or ')'.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after ')'.
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| f.get(i).and_then(|v| v.parse::<f64>().ok()))
        .sum();
    ticks / clock_ticks_per_s()
}

pub fn machine() -> String {
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
    let mem_kib = meminfo_kib("MemTotal").unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{cores} cores ({cpu}), {:.1} GiB RAM, Linux {}",
        mem_kib as f64 / 1048576.0,
        kernel.trim()
    )
}

pub fn meminfo_kib(key: &str) -> Option<u64> {
    std::fs::read_to_string("/proc/meminfo").ok().and_then(|s| {
        s.lines().find_map(|l| {
            l.strip_prefix(key)
                .and_then(|v| v.strip_prefix(':'))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
    })
}

/// The 1-minute load average, as the kernel prints it.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

/// Idle (idle + iowait) and total CPU ticks of the whole machine so far.
fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let v: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    Some((v.get(3)? + v.get(4)?, v.iter().sum()))
}

/// Share of the machine's CPU time that was idle over the next `window`,
/// or `None` when /proc/stat cannot be read or no tick passed.
fn idle_over(window: Duration) -> Option<f64> {
    let (i0, t0) = machine_ticks()?;
    std::thread::sleep(window);
    let (i1, t1) = machine_ticks()?;
    (t1 > t0).then(|| (i1 - i0) as f64 / (t1 - t0) as f64)
}

/// Share of the machine's CPU time that was idle over the next 3 s: what
/// else is running right now (the load average also remembers minutes ago).
pub fn idle_share() -> String {
    match idle_over(Duration::from_secs(3)) {
        Some(idle) => format!("{:.0}%", 100.0 * idle),
        None => "unknown".into(),
    }
}

/// Waits (up to `limit`) until the whole machine is idle for one 300 ms
/// window (at least 95% of all its cores' time). A monitor that has just
/// stopped leaves the kernel work of tearing it down (programs, maps, the
/// ring buffer's mappings) to run in kernel threads, and one that has just
/// started may still be hashing: neither belongs to the next measurement,
/// whichever configuration it is. Returns how long it waited.
pub fn wait_machine_quiet(limit: Duration) -> Duration {
    let start = Instant::now();
    while start.elapsed() < limit {
        match idle_over(Duration::from_millis(300)) {
            Some(idle) if idle < 0.95 => continue,
            _ => break,
        }
    }
    start.elapsed()
}

pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}
