//! Processes the tests start and then look for in the agent's events: unique
//! markers, spawning a binary just written, short runs, children that die
//! with their handle, and containers.

use std::{
    os::unix::fs::PermissionsExt,
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::Value;

/// A string no other process on the machine will have in its argv.
pub fn marker(name: &str) -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!(
        "proctor-test-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

pub fn has_arg(e: &Value, arg: &str) -> bool {
    e["process"]["args"]
        .as_array()
        .is_some_and(|a| a.iter().any(|x| x == arg))
}

pub fn is_exec_with(e: &Value, arg: &str) -> bool {
    e["kind"] == "process_exec" && has_arg(e, arg)
}

/// Puts a copy of the executable `src` at `dst` (mode 0755). `cp` writes it,
/// never this process: a write fd of ours would be inherited by whatever child
/// another test thread forks meanwhile, and every exec of `dst` fails with
/// ETXTBSY until that child execs.
pub fn copy_exe(src: impl AsRef<Path>, dst: impl AsRef<Path>) {
    let (src, dst) = (src.as_ref(), dst.as_ref());
    let out = Command::new("cp")
        .arg("--")
        .arg(src)
        .arg(dst)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cp {} {}: {}",
        src.display(),
        dst.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::set_permissions(dst, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Writes an executable (a script, or a binary with bytes of its own) at
/// `dst`: the bytes go to a staging file beside it, `copy_exe` puts them in
/// place, for the reason it gives.
pub fn write_exe(dst: impl AsRef<Path>, bytes: impl AsRef<[u8]>) {
    let dst = dst.as_ref();
    let mut staging = dst.as_os_str().to_owned();
    staging.push(".staging");
    std::fs::write(&staging, bytes).unwrap();
    copy_exe(&staging, dst);
    std::fs::remove_file(&staging).unwrap();
}

/// Starts a command whose executable the test may have just written.
pub fn spawn(cmd: &mut Command) -> Child {
    // A file just written may still be open for writing in a child another
    // test thread is forking at that moment (ETXTBSY until that child execs).
    let mut tries = 0;
    loop {
        match cmd.spawn() {
            Ok(c) => return c,
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 50 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("spawn {cmd:?}: {e}"),
        }
    }
}

/// Runs a command to completion and returns its pid.
pub fn run(cmd: &mut Command) -> u32 {
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = spawn(cmd);
    let pid = child.id();
    child.wait().unwrap();
    pid
}

/// A process that lives until dropped: a failing test leaves no sleeper behind.
pub struct Kid(pub Child);

impl Kid {
    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `podman run` with the flags every container here needs: Debian's runc
/// (crun refuses the hybrid cgroup layout), no network, and ulimits within
/// this machine's hard limits.
pub fn podman_run_base() -> Command {
    let mut c = Command::new("podman");
    c.args([
        "run",
        "--runtime",
        "runc",
        "--network",
        "none",
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1024:1024",
    ]);
    c
}

/// `over`, run as `argv0` with `args`, in a private mount namespace where
/// `impostor` is bind-mounted over it: from inside, the path reads the same
/// and the file is another. `argv0` sits inside the script, not in
/// unshare's own argv, so a test's marker matches the impostor's exec only.
pub fn exec_bind_mounted(impostor: &Path, over: &Path, argv0: &str, args: &[&str]) -> Command {
    let script = format!(
        "mount --bind {imp} {over} && exec -a {argv0} {over} {args}",
        imp = impostor.display(),
        over = over.display(),
        args = args.join(" "),
    );
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "bash", "-c", &script]);
    cmd
}

/// The `secret-read` finding of the process whose argv holds `m`.
pub fn read_finding(agent: &crate::harness::AgentProc, m: &str) -> Value {
    agent.wait_for(|e| {
        e["kind"] == "finding" && e["finding"]["rule"] == "secret-read" && has_arg(e, m)
    })
}

/// Runs a python3 snippet with `sys.argv[1]` the file and `sys.argv[2]` the
/// marker `m` (python3 may be a shim that execs again: argv[0] is not kept).
pub fn python_on(m: &str, file: &Path, code: &str) -> std::process::Output {
    Command::new("python3")
        .arg("-c")
        .arg(code)
        .arg(file)
        .arg(m)
        .output()
        .unwrap()
}

/// The `file_open` events so far of processes whose argv holds `m`.
pub fn opens_of(agent: &super::AgentProc, m: &str) -> Vec<Value> {
    agent
        .events()
        .into_iter()
        .filter(|e| e["kind"] == "file_open" && has_arg(e, m))
        .collect()
}

/// Runs `cat` of `file` (argv[0] a fresh marker made from `what`), asserts
/// that SIGKILL ended it before any byte reached it, and returns the
/// `secret-read` finding the agent reported for it.
pub fn cat_killed(agent: &super::AgentProc, file: &Path, what: &str) -> Value {
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    let m = marker(what);
    let out = Command::new("/bin/cat")
        .arg0(&m)
        .arg(file)
        .output()
        .unwrap();
    assert_eq!(out.status.signal(), Some(9), "{what}: {out:?}");
    assert!(out.stdout.is_empty(), "{what}: a byte reached user space");
    agent.wait_for_timeout(Duration::from_secs(20), |e| {
        e["kind"] == "finding" && e["finding"]["rule"] == "secret-read" && has_arg(e, &m)
    })
}
