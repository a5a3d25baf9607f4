//! The configurations compared side by side: no monitor, proctor (default
//! and heavy policy), auditd with equivalent rules, bpftrace with an
//! equivalent script. Each starts, reports its CPU, drops and output, and
//! stops leaving the machine as it found it.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};

use super::{
    agent::{self, Agent, Watch},
    stats, Ctx,
};

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Config {
    None,
    Proctor,
    ProctorHeavy,
    /// No monitor a second time, at another place in each repetition's
    /// order: its "overhead" against the first is this machine's noise.
    NoneAgain,
    Auditd,
    Bpftrace,
}

impl Config {
    pub const ALL: [Config; 6] = [
        Config::None,
        Config::Proctor,
        Config::ProctorHeavy,
        Config::NoneAgain,
        Config::Auditd,
        Config::Bpftrace,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Config::None => "no monitor",
            Config::Proctor => "proctor default",
            Config::ProctorHeavy => "proctor heavy policy",
            Config::NoneAgain => "no monitor, again (noise)",
            Config::Auditd => "auditd",
            Config::Bpftrace => "bpftrace",
        }
    }

    /// Configurations that depend on another tool and may be unavailable on
    /// a machine; proctor failing to start is always an error.
    pub fn external(self) -> bool {
        matches!(self, Config::Auditd | Config::Bpftrace)
    }

    /// Whether anything is watching the machine in this configuration.
    pub fn monitors(self) -> bool {
        !matches!(self, Config::None | Config::NoneAgain)
    }
}

/// A running monitor.
pub enum Running {
    None,
    Agent(Agent),
    Auditd(Auditd),
    Bpftrace(Bpftrace),
}

impl Running {
    pub fn start(cfg: Config, ctx: &Ctx) -> Result<Running> {
        let watch = Watch {
            exec_marker: Some(ctx.marker.clone()),
            open_marker: None,
            open_count_marker: None,
        };
        let r = match cfg {
            Config::None | Config::NoneAgain => Running::None,
            Config::Proctor => Running::Agent(Agent::start(
                &ctx.bin,
                &ctx.dir,
                "proctor",
                &ctx.secrets.proctor_default(&ctx.dir, "proctor", ""),
                watch,
            )?),
            Config::ProctorHeavy => Running::Agent(Agent::start(
                &ctx.bin,
                &ctx.dir,
                "proctor-heavy",
                &ctx.secrets.proctor_heavy(&ctx.dir, "proctor-heavy"),
                watch,
            )?),
            Config::Auditd => Running::Auditd(Auditd::start(&ctx.dir, &ctx.secrets.audit_rules())?),
            Config::Bpftrace => {
                Running::Bpftrace(Bpftrace::start(&ctx.dir, &ctx.secrets.bpftrace_script()?)?)
            }
        };
        r.settle(ctx.smoke);
        Ok(r)
    }

    /// The processes doing the monitor's user-space work.
    pub fn pids(&self) -> Vec<u32> {
        match self {
            Running::None => Vec::new(),
            Running::Agent(a) => vec![a.pid()],
            Running::Auditd(a) => {
                let mut p = vec![a.child.id()];
                p.extend(kauditd_pid());
                p
            }
            Running::Bpftrace(b) => vec![b.child.id()],
        }
    }

    pub fn cpu_seconds(&self) -> f64 {
        self.pids().into_iter().map(stats::cpu_seconds).sum()
    }

    pub fn rss_kib(&self) -> u64 {
        self.pids().into_iter().map(stats::rss_kib).sum()
    }

    /// Waits (up to 10 s, 2 s in a smoke run) for the start-up work (proctor hashes every running
    /// binary, auditd loads rules) to end, so that it is not billed to the
    /// first workload.
    fn settle(&self, smoke: bool) {
        if matches!(self, Running::None) {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(if smoke { 2 } else { 10 });
        while Instant::now() < deadline {
            let c0 = self.cpu_seconds();
            std::thread::sleep(Duration::from_millis(300));
            if self.cpu_seconds() - c0 < 0.03 {
                break;
            }
        }
    }

    /// Records the monitor lost since it started (proctor: kernel + sink
    /// drops; auditd: `lost`; bpftrace: its `Lost N events` lines so far).
    pub fn lost_so_far(&self) -> Result<u64> {
        match self {
            Running::None => Ok(0),
            Running::Agent(a) => Ok(agent::lost(&a.fresh_status()?)),
            Running::Auditd(a) => Ok(audit_lost()?.saturating_sub(a.lost_at_start)),
            Running::Bpftrace(b) => Ok(bpftrace_lost(
                &std::fs::read_to_string(&b.out).unwrap_or_default(),
            )),
        }
    }

    /// (records lost by the monitor since it started, events it wrote).
    pub fn finish(self) -> Result<(u64, u64)> {
        match self {
            Running::None => Ok((0, 0)),
            Running::Agent(a) => {
                let s = a.fresh_status()?;
                let r = (agent::lost(&s), agent::emitted(&s));
                a.stop();
                Ok(r)
            }
            Running::Auditd(a) => a.stop(),
            Running::Bpftrace(b) => b.stop(),
        }
    }
}

fn kauditd_pid() -> Option<u32> {
    let out = Command::new("pgrep")
        .args(["-x", "kauditd"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// `auditctl -s` as key/value pairs.
fn audit_status() -> Result<BTreeMap<String, String>> {
    let out = Command::new("auditctl")
        .arg("-s")
        .output()
        .context("run auditctl (Debian package auditd; `cargo xtask setup` installs it)")?;
    if !out.status.success() {
        bail!(
            "the kernel audit subsystem is unavailable: auditctl -s says {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().to_string()))
        })
        .collect())
}

fn auditctl(args: &[&str]) -> Result<()> {
    super::output_ok(
        Command::new("auditctl").args(args),
        &format!("auditctl {}", args.join(" ")),
    )?;
    Ok(())
}

/// auditd started by the bench with its own config and log, the rules loaded
/// with auditctl; stopping removes the rules and restores the kernel's audit
/// settings (enabled flag, backlog limit) as they were.
pub struct Auditd {
    child: Child,
    log: PathBuf,
    saved_enabled: String,
    saved_backlog: String,
    lost_at_start: u64,
    stopped: bool,
}

impl Auditd {
    pub fn start(dir: &Path, rules: &str) -> Result<Auditd> {
        let before = audit_status()?;
        let pid = before.get("pid").map(String::as_str).unwrap_or("0");
        if pid != "0" {
            bail!("another audit daemon (pid {pid}) is registered with the kernel; the bench does not replace it");
        }
        let listed = Command::new("auditctl").arg("-l").output()?;
        let listed = String::from_utf8_lossy(&listed.stdout);
        if listed.trim() != "No rules" {
            bail!("audit rules are already loaded on this machine (auditctl -l); the bench leaves them alone and does not measure auditd");
        }
        let adir = dir.join("auditd");
        std::fs::create_dir_all(adir.join("plugins.d"))?;
        let log = adir.join("audit.log");
        // Debian's defaults, with the log here and no action that could stop
        // the machine's auditing when the bench disk fills.
        std::fs::write(
            adir.join("auditd.conf"),
            format!(
                "local_events = yes\nwrite_logs = yes\nlog_file = {}\nlog_format = ENRICHED\nflush = INCREMENTAL_ASYNC\nfreq = 50\n\
                 max_log_file = 4096\nnum_logs = 2\nmax_log_file_action = ROTATE\nspace_left = 75\nspace_left_action = IGNORE\n\
                 admin_space_left = 50\nadmin_space_left_action = IGNORE\ndisk_full_action = IGNORE\ndisk_error_action = IGNORE\n\
                 q_depth = 2000\noverflow_action = IGNORE\nplugin_dir = {}\nend_of_event_timeout = 2\n",
                log.display(),
                adir.join("plugins.d").display()
            ),
        )?;
        let child = Command::new("auditd")
            .args(["-n", "-s", "enable", "-c"])
            .arg(&adir)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(adir.join("auditd.stderr"))?)
            .spawn()
            .context("start auditd (Debian package auditd)")?;
        let mut a = Auditd {
            child,
            log,
            saved_enabled: before.get("enabled").cloned().unwrap_or_else(|| "0".into()),
            saved_backlog: before
                .get("backlog_limit")
                .cloned()
                .unwrap_or_else(|| "64".into()),
            lost_at_start: 0,
            stopped: false,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        let me = a.child.id().to_string();
        loop {
            if audit_status()?.get("pid") == Some(&me) {
                break;
            }
            if let Ok(Some(st)) = a.child.try_wait() {
                bail!(
                    "auditd exited ({st}): {}",
                    std::fs::read_to_string(adir.join("auditd.stderr")).unwrap_or_default()
                );
            }
            if Instant::now() > deadline {
                bail!("auditd did not register with the kernel within 15 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // A backlog like a production config's, so bursts queue rather than drop.
        auditctl(&["-b", "8192"])?;
        let rules_file = adir.join("bench.rules");
        std::fs::write(&rules_file, rules)?;
        auditctl(&["-R", &rules_file.to_string_lossy()])?;
        a.lost_at_start = audit_lost()?;
        Ok(a)
    }

    fn restore(&mut self) -> Result<()> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        let r1 = auditctl(&["-D"]);
        agent::send_signal(self.child.id(), "TERM");
        let _ = self.child.wait();
        let r2 = auditctl(&["-b", &self.saved_backlog]);
        let r3 = auditctl(&["-e", &self.saved_enabled]);
        r1.and(r2).and(r3)
    }

    fn stop(mut self) -> Result<(u64, u64)> {
        let lost = audit_lost()?.saturating_sub(self.lost_at_start);
        self.restore()?;
        let events = std::fs::read_to_string(&self.log)
            .map(|s| s.lines().count() as u64)
            .unwrap_or(0);
        Ok((lost, events))
    }
}

impl Drop for Auditd {
    fn drop(&mut self) {
        if let Err(e) = self.restore() {
            eprintln!("bench: restoring the audit settings failed: {e:#}");
        }
    }
}

fn audit_lost() -> Result<u64> {
    Ok(audit_status()?
        .get("lost")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

/// bpftrace running a script, its output in a file.
pub struct Bpftrace {
    child: Child,
    out: PathBuf,
}

impl Bpftrace {
    pub fn start(dir: &Path, script: &str) -> Result<Bpftrace> {
        Self::start_with(dir, script, "full")
    }

    /// `buffering` is bpftrace's `-B`: "full" for the measured monitors (as
    /// an operator would run them), "none" for a program that prints
    /// nothing after BEGIN (a full buffer would never flush "ready").
    pub fn start_with(dir: &Path, script: &str, buffering: &str) -> Result<Bpftrace> {
        let script_path = dir.join("bench.bt");
        std::fs::write(&script_path, script)?;
        let out = dir.join("bpftrace.out");
        let err = dir.join("bpftrace.stderr");
        // Standard output into the file rather than `-o`: bpftrace 0.17
        // applies `-B` to standard output only.
        let mut child = Command::new("bpftrace")
            .args(["-B", buffering])
            .arg(&script_path)
            .stdout(std::fs::File::create(&out)?)
            .stderr(std::fs::File::create(&err)?)
            .spawn()
            .context("start bpftrace (Debian package bpftrace)")?;
        // Compiling a script with hundreds of map entries takes bpftrace a
        // while on a loaded machine.
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let text = std::fs::read_to_string(&out).unwrap_or_default();
            if text.contains("ready\n") {
                break;
            }
            // bpftrace fully buffers `-o` output: BEGIN's "ready" reaches the
            // file only once more lines follow. Short processes make exec,
            // fork and exit lines until the buffer flushes.
            if text.contains("Attaching") {
                let _ = Command::new("/bin/true").status();
            }
            if let Ok(Some(st)) = child.try_wait() {
                bail!(
                    "bpftrace exited ({st}): {}",
                    std::fs::read_to_string(&err).unwrap_or_default()
                );
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("bpftrace did not attach within 180 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Bpftrace { child, out })
    }

    fn stop(mut self) -> Result<(u64, u64)> {
        agent::send_signal(self.child.id(), "INT");
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.wait();
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        let lost = bpftrace_lost(&text);
        let events = text
            .lines()
            .filter(|l| {
                ["exec ", "fork ", "exit ", "open ", "connect "]
                    .iter()
                    .any(|p| l.starts_with(p))
            })
            .count() as u64;
        Ok((lost, events))
    }
}

/// bpftrace reports perf-buffer overflows as "Lost N events".
fn bpftrace_lost(text: &str) -> u64 {
    text.lines()
        .filter_map(|l| l.strip_prefix("Lost "))
        .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

impl Drop for Bpftrace {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
