//! The real `proctor run` inside the guest, its JSON events collected as
//! they arrive.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    sync::{Arc, Condvar, Mutex},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// Software emulation is slow: generous bounds on how long anything may take,
/// never assertions about how long it did take.
pub const START_TIMEOUT: Duration = Duration::from_secs(300);
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(120);

pub const LOG: &str = "/tmp/proctor.log";

#[derive(Default)]
struct Seen {
    events: Vec<Value>,
    /// Every stdout line as printed, for the secret-leak check.
    raw: Vec<String>,
    closed: bool,
}

pub struct Agent {
    child: Child,
    seen: Arc<(Mutex<Seen>, Condvar)>,
}

impl Agent {
    pub fn start(config: &Path) -> Result<Agent> {
        let log = std::fs::File::create(LOG).with_context(|| format!("create {LOG}"))?;
        let mut child = Command::new("/bin/proctor")
            .args(["run", "--config"])
            .arg(config)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .context("spawn /bin/proctor run")?;
        let stdout = child.stdout.take().context("agent stdout")?;
        let seen: Arc<(Mutex<Seen>, Condvar)> = Arc::default();
        let s2 = seen.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let mut g = s2.0.lock().unwrap();
                match serde_json::from_str::<Value>(&line) {
                    Ok(v) => g.events.push(v),
                    Err(e) => g
                        .events
                        .push(serde_json::json!({"kind": "non-json", "error": e.to_string()})),
                }
                g.raw.push(line);
                s2.1.notify_all();
            }
            s2.0.lock().unwrap().closed = true;
            s2.1.notify_all();
        });
        let agent = Agent { child, seen };
        agent.wait_for("agent_status started", START_TIMEOUT, |e| {
            e["kind"] == "agent_status" && e["status"]["state"] == "started"
        })?;
        Ok(agent)
    }

    /// The first event (from the start) matching `pred`.
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Result<Value> {
        let deadline = Instant::now() + timeout;
        let (lock, cv) = &*self.seen;
        let mut g = lock.lock().unwrap();
        loop {
            if let Some(e) = g.events.iter().find(|e| pred(e)) {
                return Ok(e.clone());
            }
            if let Some(bad) = g.events.iter().find(|e| e["kind"] == "non-json") {
                bail!("the agent printed a line that is not JSON: {bad}");
            }
            let now = Instant::now();
            if g.closed || now >= deadline {
                let n = g.events.len();
                let closed = g.closed;
                drop(g);
                bail!(
                    "no {what} event after {timeout:?} ({n} events seen, agent output {}); agent log tail: {}",
                    if closed { "closed" } else { "open" },
                    log_tail()
                );
            }
            g = cv.wait_timeout(g, deadline - now).unwrap().0;
        }
    }

    pub fn wait(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Result<Value> {
        self.wait_for(what, EVENT_TIMEOUT, pred)
    }

    /// The next agent_status after everything seen so far.
    pub fn next_status(&self) -> Result<Value> {
        let after = {
            let g = self.seen.0.lock().unwrap();
            g.events
                .iter()
                .filter_map(|e| e["seq"].as_u64())
                .max()
                .unwrap_or(0)
        };
        self.wait("agent_status", |e| {
            e["kind"] == "agent_status" && e["seq"].as_u64().is_some_and(|s| s > after)
        })
    }

    pub fn raw_lines(&self) -> Vec<String> {
        self.seen.0.lock().unwrap().raw.clone()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The last lines of the agent's log, on one line.
pub fn log_tail() -> String {
    let log = std::fs::read_to_string(LOG).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(8)..].join(" | ")
}
