//! The real `proctor run` (real probes, real kernel) as a child process whose
//! JSON lines the tests read, and the binary under test itself.
//!
//! There is deliberately no way around loading the probes: a test machine that
//! cannot load BPF fails these tests loudly, in CI and everywhere else.

use std::{
    io::{BufRead, BufReader, Read},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Condvar, Mutex, OnceLock},
    time::{Duration, Instant},
};

use serde_json::Value;

pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Agents wait up to 5s for hashes (the longest `hash.emit_wait`): on a
/// loaded test machine a hash may miss the default 250ms, and the tests that
/// check `sha256` on `process_exec` would see `pending` (liveness.rs tests that).
pub const TEST_CONFIG: &str = "\
status_interval: 1s
hash:
  emit_wait: 5s
process_table:
  exit_grace: 3s
metrics:
  listen: 127.0.0.1:0
api:
  enabled: false
";

/// Appended to every other test config: agents run side by side, each on its
/// own metrics port, without an API socket (the API tests bring their own).
/// It ends inside the `hash:` section: a test that sets more hash keys writes
/// them, indented, right after it.
pub const TEST_METRICS: &str =
    "metrics:\n  listen: 127.0.0.1:0\napi:\n  enabled: false\nhash:\n  emit_wait: 5s\n";

#[derive(Default)]
struct Lines {
    events: Vec<Value>,
    closed: bool,
}

pub struct AgentProc {
    child: Mutex<Option<Child>>,
    lines: Arc<(Mutex<Lines>, Condvar)>,
    stderr: Arc<Mutex<String>>,
    _config: Option<tempfile::NamedTempFile>,
}

impl AgentProc {
    /// Starts `proctor run` with `config` (YAML) and waits for its "started" status.
    pub fn start(config: &str) -> AgentProc {
        Self::start_with(config, |_| {})
    }

    /// `start`, with the command adjusted first (e.g. a `pre_exec` that
    /// places the agent in a cgroup namespace of its own, as in a pod, or
    /// more flags of `proctor run`).
    pub fn start_with(config: &str, tweak: impl FnOnce(&mut Command)) -> AgentProc {
        let mut cfg = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut cfg, config.as_bytes()).unwrap();
        let path = cfg.path().to_path_buf();
        Self::spawn(&path, Some(cfg), tweak)
    }

    /// Starts `proctor run --config path` on a file the test owns (and may
    /// change while the agent runs).
    pub fn start_at(path: &Path) -> AgentProc {
        Self::spawn(path, None, |_| {})
    }

    fn spawn(
        path: &Path,
        cfg: Option<tempfile::NamedTempFile>,
        tweak: impl FnOnce(&mut Command),
    ) -> AgentProc {
        let mut cmd = Command::new(proctor_bin());
        cmd.args(["run", "--config"]).arg(path);
        // After `run --config`: a tweak may add flags of `run`.
        tweak(&mut cmd);
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn proctor");
        reap_at_exit(child.id());
        let lines: Arc<(Mutex<Lines>, Condvar)> = Arc::default();
        let stdout = child.stdout.take().unwrap();
        let l2 = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let v: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("agent printed a non-JSON line ({e}): {line}"));
                l2.0.lock().unwrap().events.push(v);
                l2.1.notify_all();
            }
            l2.0.lock().unwrap().closed = true;
            l2.1.notify_all();
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err_pipe = child.stderr.take().unwrap();
        let s2 = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                s2.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let agent = AgentProc {
            child: Mutex::new(Some(child)),
            lines,
            stderr,
            _config: cfg,
        };
        agent.wait_for_timeout(STARTUP_TIMEOUT, |e| {
            e["kind"] == "agent_status" && e["status"]["state"] == "started"
        });
        agent
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Whether `needle` shows up in stderr within the event timeout. Stdout
    /// and stderr are read by two threads, so an event seen on stdout does
    /// not mean the log line the agent wrote just before it has been read.
    pub fn stderr_shows(&self, needle: &str) -> bool {
        let deadline = Instant::now() + EVENT_TIMEOUT;
        loop {
            if self.stderr().contains(needle) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.lock().unwrap().as_ref().unwrap().id()
    }

    /// All events so far.
    pub fn events(&self) -> Vec<Value> {
        self.lines.0.lock().unwrap().events.clone()
    }

    pub fn wait_for(&self, pred: impl Fn(&Value) -> bool) -> Value {
        self.wait_for_timeout(EVENT_TIMEOUT, pred)
    }

    /// The first event (from the start) that matches; panics with the agent's
    /// stderr when none arrives in time.
    pub fn wait_for_timeout(&self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        let (lock, cv) = &*self.lines;
        let mut g = lock.lock().unwrap();
        loop {
            if let Some(e) = g.events.iter().find(|e| pred(e)) {
                return e.clone();
            }
            let now = Instant::now();
            if g.closed || now >= deadline {
                let n = g.events.len();
                drop(g);
                panic!(
                    "no matching event after {:?} ({} events seen, agent output {}); agent stderr:\n{}",
                    timeout,
                    n,
                    if self.lines.0.lock().unwrap().closed { "closed" } else { "open" },
                    self.stderr()
                );
            }
            g = cv.wait_timeout(g, deadline - now).unwrap().0;
        }
    }

    /// Waits for the next agent_status whose seq is above `after_seq`.
    pub fn status_after(&self, after_seq: u64) -> Value {
        self.wait_for(|e| e["kind"] == "agent_status" && e["seq"].as_u64().unwrap() > after_seq)
    }

    pub fn last_seq(&self) -> u64 {
        self.lines
            .0
            .lock()
            .unwrap()
            .events
            .last()
            .and_then(|e| e["seq"].as_u64())
            .unwrap_or(0)
    }

    /// Sends SIGTERM and returns the exit status.
    pub fn stop(&self) -> std::process::ExitStatus {
        let mut child = self.child.lock().unwrap().take().expect("agent running");
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                reaped(child.id());
                // Let the reader thread see EOF.
                let (lock, cv) = &*self.lines;
                let g = lock.lock().unwrap();
                let _ = cv.wait_timeout_while(g, Duration::from_secs(5), |l| !l.closed);
                return st;
            }
            if Instant::now() > deadline {
                child.kill().ok();
                panic!(
                    "agent did not stop within 30s of SIGTERM; stderr:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for AgentProc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.lock().unwrap().take() {
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = c.wait();
            reaped(c.id());
        }
    }
}

/// Agents started by this test binary, stopped when it exits. The shared
/// agent lives in a static, which is never dropped: without this it would
/// outlive the tests.
static STARTED: Mutex<Vec<u32>> = Mutex::new(Vec::new());

extern "C" fn stop_started_agents() {
    if let Ok(pids) = STARTED.lock() {
        for &pid in pids.iter() {
            // SAFETY: kill(2) on our own child; ESRCH when it already exited.
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        }
    }
}

fn reap_at_exit(pid: u32) {
    static REGISTER: std::sync::Once = std::sync::Once::new();
    // SAFETY: registers a plain extern "C" function.
    REGISTER.call_once(|| unsafe {
        libc::atexit(stop_started_agents);
    });
    STARTED.lock().unwrap().push(pid);
}

/// A reaped pid may be reused by anyone: it must not be signalled at exit.
fn reaped(pid: u32) {
    STARTED.lock().unwrap().retain(|&p| p != pid);
}

/// One agent shared by the tests that need no config of their own (each
/// filters by its own markers).
pub fn shared() -> &'static AgentProc {
    static AGENT: OnceLock<AgentProc> = OnceLock::new();
    AGENT.get_or_init(|| AgentProc::start(TEST_CONFIG))
}

/// The binary under test: `PROCTOR_BIN` when set (`cargo xtask test` names
/// the release build it just made), else the one cargo built for this test.
pub fn proctor_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        std::env::var_os("PROCTOR_BIN")
            .filter(|p| !p.is_empty())
            .map_or_else(|| env!("CARGO_BIN_EXE_proctor").into(), PathBuf::from)
    })
}

/// Runs the `proctor` command line with `args`; it must succeed. Its stdout.
pub fn proctor_ok<S: AsRef<std::ffi::OsStr>>(args: impl IntoIterator<Item = S>) -> Vec<u8> {
    let args: Vec<std::ffi::OsString> = args.into_iter().map(|a| a.as_ref().into()).collect();
    let out = Command::new(proctor_bin()).args(&args).output().unwrap();
    assert!(
        out.status.success(),
        "proctor {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The machine to this test alone among those that take it: a storm whose
/// drops are counted must not share the CPUs with another storm or an image
/// build. Hold the guard for the test's length.
pub fn exclusive() -> std::sync::MutexGuard<'static, ()> {
    static MACHINE: Mutex<()> = Mutex::new(());
    // A test that failed while holding it leaves nothing to repair.
    MACHINE.lock().unwrap_or_else(|e| e.into_inner())
}
