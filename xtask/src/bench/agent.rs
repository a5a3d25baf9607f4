//! The agent under test: started from a config text, its stdout (the JSONL
//! event stream) read by a thread that keeps the latest `agent_status` and
//! the few events a benchmark looks for.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use super::stats;

/// What the stdout reader picks out besides status events.
#[derive(Default, Clone)]
pub struct Watch {
    /// `process_exec` events whose line holds this are counted.
    pub exec_marker: Option<String>,
    /// `file_open` events whose line holds this are kept with their arrival time.
    pub open_marker: Option<String>,
    /// `file_open` events whose line holds this are counted.
    pub open_count_marker: Option<String>,
}

/// A `file_open` event picked out by [`Watch::open_marker`].
pub struct MarkedOpen {
    pub path: String,
    /// The event's `time` (the kernel's timestamp of the open), epoch ns.
    pub event_ns: u64,
    /// When the reader got the line from the agent's stdout, epoch ns.
    pub arrival_ns: u64,
}

#[derive(Default)]
pub struct AgentState {
    pub last_status: Option<Value>,
    pub statuses: u64,
    pub execs_with_marker: u64,
    pub opens_with_marker: u64,
    pub marked_opens: Vec<MarkedOpen>,
}

pub struct Agent {
    child: Child,
    pub state: Arc<Mutex<AgentState>>,
    stderr: PathBuf,
}

/// The event kind of a JSONL line without parsing it: `kind` comes fourth
/// in every event, well within the first 200 bytes.
fn kind_of(line: &str) -> Option<&str> {
    let head = &line[..line.len().min(256)];
    let at = head.find("\"kind\":\"")? + 8;
    let end = head[at..].find('"')?;
    Some(&head[at..at + end])
}

fn epoch_ns_of(rfc3339: &str) -> Option<u64> {
    let t = humantime::parse_rfc3339(rfc3339).ok()?;
    t.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_nanos() as u64)
}

impl Agent {
    /// Starts `bin run` on `config` (written to `dir/<name>.yaml`) and waits
    /// for its first status event.
    pub fn start(bin: &Path, dir: &Path, name: &str, config: &str, watch: Watch) -> Result<Agent> {
        Self::start_under(&[], Duration::from_secs(90), bin, dir, name, config, watch)
    }

    /// [`Self::start`] as the argument of `wrapper` (a tool that runs the
    /// agent in its own process, such as valgrind), allowing `startup` for
    /// the first status.
    pub fn start_under(
        wrapper: &[&str],
        startup: Duration,
        bin: &Path,
        dir: &Path,
        name: &str,
        config: &str,
        watch: Watch,
    ) -> Result<Agent> {
        let config_path = dir.join(format!("{name}.yaml"));
        std::fs::write(&config_path, config)?;
        let stderr = dir.join(format!("{name}.stderr"));
        let mut command = match wrapper.split_first() {
            Some((tool, args)) => {
                let mut c = Command::new(tool);
                c.args(args).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let mut child = command
            .args(["run", "--config"])
            .arg(&config_path)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr)?)
            .spawn()
            .context("start proctor")?;
        let state: Arc<Mutex<AgentState>> = Arc::default();
        let out = child.stdout.take().expect("stdout is piped");
        let s2 = state.clone();
        std::thread::spawn(move || {
            // Large reads and no JSON parsing for lines nobody asked for: the
            // reader must not become the agent's bottleneck.
            let mut r = BufReader::with_capacity(1 << 20, out);
            let mut line = String::new();
            loop {
                line.clear();
                match r.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let arrival_ns = stats::now_epoch_ns();
                match kind_of(&line) {
                    Some("agent_status") => {
                        if let Ok(v) = serde_json::from_str::<Value>(&line) {
                            let mut s = s2.lock().unwrap();
                            s.last_status = Some(v);
                            s.statuses += 1;
                        }
                    }
                    Some("process_exec")
                        if watch
                            .exec_marker
                            .as_deref()
                            .is_some_and(|m| line.contains(m)) =>
                    {
                        s2.lock().unwrap().execs_with_marker += 1;
                    }
                    Some("file_open")
                        if watch
                            .open_count_marker
                            .as_deref()
                            .is_some_and(|m| line.contains(m)) =>
                    {
                        s2.lock().unwrap().opens_with_marker += 1;
                    }
                    Some("file_open")
                        if watch
                            .open_marker
                            .as_deref()
                            .is_some_and(|m| line.contains(m)) =>
                    {
                        if let Ok(v) = serde_json::from_str::<Value>(&line) {
                            let path = v["file"]["path"].as_str().unwrap_or("").to_string();
                            if let Some(event_ns) = v["time"].as_str().and_then(epoch_ns_of) {
                                s2.lock().unwrap().marked_opens.push(MarkedOpen {
                                    path,
                                    event_ns,
                                    arrival_ns,
                                });
                            }
                        }
                    }
                    _ => {}
                }
            }
        });
        let mut agent = Agent {
            child,
            state,
            stderr,
        };
        agent.wait_first_status(startup)?;
        Ok(agent)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stderr_tail(&self) -> String {
        let s = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(10)..].join("\n")
    }

    fn wait_first_status(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while self.state.lock().unwrap().statuses == 0 {
            if let Ok(Some(st)) = self.child.try_wait() {
                bail!(
                    "proctor exited ({st}) before its first status; its stderr ends with:\n{}",
                    self.stderr_tail()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "proctor produced no status within {timeout:?}; its stderr ends with:\n{}",
                    self.stderr_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// A status emitted after this call (so its counters cover everything before it).
    pub fn fresh_status(&self) -> Result<Value> {
        let seen = self.state.lock().unwrap().statuses;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            {
                let s = self.state.lock().unwrap();
                if s.statuses > seen + 1 {
                    return Ok(s.last_status.clone().expect("a status was counted"));
                }
            }
            if Instant::now() > deadline {
                bail!("proctor produced no status within 30s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn rss_kib(&self) -> u64 {
        stats::rss_kib(self.pid())
    }

    pub fn cpu_seconds(&self) -> f64 {
        stats::cpu_seconds(self.pid())
    }

    /// RSS of the process's BPF map mappings (the ring buffer), from smaps.
    pub fn ring_mapping_kib(&self) -> u64 {
        let smaps =
            std::fs::read_to_string(format!("/proc/{}/smaps", self.pid())).unwrap_or_default();
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

    pub fn stop(mut self) {
        send_signal(self.child.id(), "TERM");
        let _ = self.child.wait();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        // An error path dropped a running agent: it must not outlive the bench.
        if let Ok(None) = self.child.try_wait() {
            send_signal(self.child.id(), "TERM");
            let _ = self.child.wait();
        }
    }
}

pub fn send_signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

/// Total kernel drops in a status.
pub fn drops(status: &Value) -> u64 {
    status["status"]["kernel"]["dropped"]["total"]
        .as_u64()
        .unwrap_or(0)
}

/// Events the agent's sinks dropped so far (their queues full).
pub fn sink_drops(status: &Value) -> u64 {
    status["status"]["sinks"]
        .as_array()
        .map(|a| a.iter().filter_map(|s| s["dropped"].as_u64()).sum())
        .unwrap_or(0)
}

/// Records the agent lost so far: kernel drops plus events its sinks dropped.
pub fn lost(status: &Value) -> u64 {
    drops(status) + sink_drops(status)
}

/// Events the agent emitted so far, all kinds.
pub fn emitted(status: &Value) -> u64 {
    status["status"]["emitted"]
        .as_object()
        .map(|m| m.values().filter_map(Value::as_u64).sum())
        .unwrap_or(0)
}

/// A kernel counter of one record kind (`sent` or `dropped`).
pub fn kernel_count(status: &Value, counter: &str, kind: &str) -> u64 {
    status["status"]["kernel"][counter][kind]
        .as_u64()
        .unwrap_or(0)
}

/// The ids of the agent's BPF programs, by hook name, from a status.
pub fn hook_ids(status: &Value) -> Vec<(String, u64)> {
    status["status"]["hooks"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|h| Some((h["hook"].as_str()?.to_string(), h["id"].as_u64()?)))
                .collect()
        })
        .unwrap_or_default()
}
