//! Real-kernel tests of files a local user shapes to stall or fool the agent: FIFOs and devices named like secrets or run as scripts, size-0 procfs files, symlinks named like secrets.

use std::{
    ffi::CString,
    io::{Read, Write},
    net::TcpStream,
    os::unix::{ffi::OsStrExt, process::CommandExt},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use crate::harness::*;
use serde_json::Value;

/// Small enough that /proc/kallsyms (st_size 0, megabytes of text) exceeds it.
const MAX_HASH_BYTES: u64 = 1 << 20;

/// A user made for one test and removed with its home when the test ends,
/// pass or fail.
struct ThrowawayUser {
    name: String,
    home: PathBuf,
}

impl ThrowawayUser {
    fn new(tag: &str) -> ThrowawayUser {
        let name = format!("pctr-{tag}-{}", std::process::id());
        let out = Command::new("useradd")
            .args(["-m", "-s", "/bin/sh", &name])
            .output()
            .expect("useradd");
        assert!(
            out.status.success(),
            "useradd {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let home = PathBuf::from(format!("/home/{name}"));
        assert!(home.is_dir(), "useradd made no home at {}", home.display());
        ThrowawayUser { name, home }
    }

    /// `argv` run as this user (real and effective uid and gid, its
    /// groups); setpriv execs in place, so the child's pid is the command's.
    fn command(&self, argv: &[&str]) -> Command {
        let mut cmd = Command::new("setpriv");
        cmd.args([
            &format!("--reuid={}", self.name),
            &format!("--regid={}", self.name),
            "--init-groups",
            "--",
        ])
        .args(argv)
        .env("HOME", &self.home)
        .current_dir(&self.home);
        cmd
    }

    fn run_ok(&self, argv: &[&str]) {
        let out = self.command(argv).output().unwrap();
        assert!(
            out.status.success(),
            "{argv:?} as {}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for ThrowawayUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel")
            .args(["-r", "-f", &self.name])
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

/// The agent these tests share: hashes capped at [`MAX_HASH_BYTES`].
fn agent() -> &'static AgentProc {
    static AGENT: OnceLock<AgentProc> = OnceLock::new();
    // The syscall file hook set: these tests hand the agent files created
    // after start and named like secrets (FIFOs, symlinks, a throwaway
    // user's new credentials), which only an open hook matches by name at
    // once; the page-cache set finds them at the next rescan and never sees
    // a FIFO read at all (docs/security-model.md).
    AGENT.get_or_init(|| {
        AgentProc::start(&format!(
            "status_interval: 1s\n{TEST_METRICS}  max_file_bytes: {MAX_HASH_BYTES}\n\
             kernel:\n  file_hooks: syscall\n\
             secrets:\n  search_dirs: []\n"
        ))
    })
}

/// `/healthz`'s status code, or None when it does not answer within 5 s.
fn healthz(agent: &AgentProc) -> Option<u16> {
    let started =
        agent.wait_for(|e| e["kind"] == "agent_status" && e["status"]["state"] == "started");
    let addr = started["status"]["metrics_listen"].as_str().unwrap();
    let mut s = TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(5)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(
        format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split_whitespace().nth(1)?.parse().ok()
}

/// The agent still emits promptly: a marker exec shows up within a few seconds.
fn assert_still_emitting(agent: &AgentProc, what: &str) {
    let m = marker(&format!("alive-after-{what}"));
    let t = Instant::now();
    run(Command::new("/bin/true").arg(&m));
    let ev = agent.wait_for_timeout(Duration::from_secs(10), |e| is_exec_with(e, &m));
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "marker exec after {what} took {:?}: {ev}",
        t.elapsed()
    );
    assert_eq!(healthz(agent), Some(200), "/healthz after {what}");
}

fn mkfifo(p: &Path) {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(
        unsafe { libc::mkfifo(c.as_ptr(), 0o644) },
        0,
        "mkfifo {p:?}"
    );
}

fn mentions(e: &Value, path: &Path) -> bool {
    e.to_string().contains(path.to_str().unwrap())
}

#[test]
fn a_fifo_named_like_a_secret_held_open_by_a_silent_writer_does_not_freeze_the_agent() {
    let agent = agent();
    let user = ThrowawayUser::new("fifo");
    let netrc = user.home.join(".netrc");
    let pgpass = user.home.join(".pgpass");
    let mut held = Vec::new();
    for fifo in [&netrc, &pgpass] {
        let f = fifo.to_str().unwrap();
        user.run_ok(&["mkfifo", f]);
        // The writer holds the FIFO open and never writes.
        let writer = Kid(spawn(&mut user.command(&[
            "sh",
            "-c",
            "exec 3<>\"$0\"; exec sleep 600",
            f,
        ])));
        let fd3 = format!("/proc/{}/fd/3", writer.pid());
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::read_link(&fd3).ok().as_deref() != Some(fifo.as_path()) {
            assert!(Instant::now() < deadline, "writer never opened {f}");
            std::thread::sleep(Duration::from_millis(20));
        }
        // The reader's open succeeds (a writer exists); its read never returns.
        let reader = Kid(spawn(
            user.command(&["cat", f])
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        ));
        held.push((writer, reader));
    }
    std::thread::sleep(Duration::from_millis(500));

    // Positive control beside the negatives: the same user reading a real
    // secret file in the same home is seen and reported.
    let creds = user.home.join(".git-credentials");
    user.run_ok(&[
        "sh",
        "-c",
        "echo 'https://u:tok@example.invalid' > \"$0\"",
        creds.to_str().unwrap(),
    ]);
    let m = marker("fifo-control");
    let control_cmd = format!("exec -a {m} cat \"$0\" > /dev/null");
    user.run_ok(&["bash", "-c", &control_cmd, creds.to_str().unwrap()]);
    let control = agent.wait_for_timeout(Duration::from_secs(15), |e| {
        e["kind"] == "finding" && e["finding"]["rule"] == "secret-read" && has_arg(e, &m)
    });
    assert_eq!(
        control["finding"]["secret"]["id"], "git-credentials",
        "{control}"
    );

    assert_still_emitting(agent, "fifo-secrets");
    // The kernel filter dropped the FIFO opens: no open or finding about them.
    for e in agent.events() {
        let about_fifo = mentions(&e, &netrc) || mentions(&e, &pgpass);
        assert!(
            !(about_fifo && (e["kind"] == "file_open" || e["kind"] == "finding")),
            "an event about a FIFO named like a secret: {e}"
        );
    }
    drop(held);
}

/// A directory with a `#!` script, and `path` in it, which in the agent's
/// mount namespace is `kind` (FIFO, /dev/zero node, symlink to a size-0
/// procfs file) but in the namespace of the exec is the script bind-mounted
/// over it. Runs the exec there and returns its event.
fn exec_script_seen_as(agent: &AgentProc, dir: &Path, path: &Path) -> Value {
    let script = dir.join("script.sh");
    if !script.exists() {
        write_exe(&script, "#!/bin/sh\nexit 0\n");
    }
    let m = marker("hostile-script");
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c"])
        .arg("mount --bind \"$1\" \"$2\" && exec \"$2\" \"$3\"")
        .arg("sh")
        .arg(&script)
        .arg(path)
        .arg(&m)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "exec through {path:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    agent.wait_for_timeout(Duration::from_secs(15), |e| is_script_exec_with(e, &m))
}

/// The exec of the script itself, not of the shells that carried the marker there.
fn is_script_exec_with(e: &Value, m: &str) -> bool {
    is_exec_with(e, m) && !e["process"]["interpreter"].is_null()
}

#[test]
fn a_script_path_that_is_a_fifo_or_a_device_for_the_agent_gets_not_regular_and_costs_no_worker() {
    let agent = agent();
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo-script");
    mkfifo(&fifo);
    let zero = dir.path().join("zero-script");
    let c = CString::new(zero.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path; 1:5 is /dev/zero.
    assert_eq!(
        unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o644, libc::makedev(1, 5)) },
        0
    );
    // Several of each: more than the hash workers, which a blocking open or
    // an endless read would pin one by one.
    for round in 0..3 {
        for path in [&fifo, &zero] {
            let ev = exec_script_seen_as(agent, dir.path(), path);
            let script = &ev["process"]["interpreter"]["script"];
            assert_eq!(script["path"], path.to_str().unwrap(), "{ev}");
            assert_eq!(script["hash_status"], "not_regular", "round {round}: {ev}");
            assert!(script["sha256"].is_null(), "{ev}");
        }
    }
    // Positive control: the same script run by its own regular path is hashed.
    let script = dir.path().join("script.sh");
    let m = marker("regular-script");
    run(Command::new(&script).arg(&m));
    let ev = agent.wait_for(|e| is_script_exec_with(e, &m));
    let s = &ev["process"]["interpreter"]["script"];
    assert_eq!(s["hash_status"], "ok", "{ev}");
    assert_eq!(s["sha256"], sha256_file(&script), "{ev}");
    assert_still_emitting(agent, "fifo-and-device-scripts");
}

#[test]
fn a_script_path_leading_to_a_size_zero_procfs_file_is_read_only_up_to_the_cap() {
    let agent = agent();
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("procfs-script");
    std::os::unix::fs::symlink("/proc/kallsyms", &link).unwrap();
    let meta = std::fs::metadata(&link).unwrap();
    assert_eq!(meta.len(), 0, "/proc/kallsyms should stat as size 0");
    let ev = exec_script_seen_as(agent, dir.path(), &link);
    let script = &ev["process"]["interpreter"]["script"];
    assert_eq!(script["size"], 0, "{ev}");
    assert_eq!(script["hash_status"], "too_large", "{ev}");
    assert!(script["sha256"].is_null(), "{ev}");
    assert_still_emitting(agent, "procfs-script");
}

#[test]
fn a_script_run_through_proc_self_fd_is_hashed_as_the_process_sees_it() {
    let agent = agent();
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("fd-script.sh");
    // Lives a moment, so its fd is still there when the agent looks.
    write_exe(&script, "#!/bin/sh\nsleep 1\n");
    let m = marker("fd-script");
    run(Command::new("/bin/sh")
        .arg("-c")
        .arg("exec 5<\"$0\"; exec /proc/self/fd/5 \"$1\"")
        .arg(&script)
        .arg(&m));
    let ev = agent.wait_for(|e| is_script_exec_with(e, &m));
    let s = &ev["process"]["interpreter"]["script"];
    assert_eq!(s["path"], "/proc/self/fd/5", "{ev}");
    assert_eq!(s["hash_status"], "ok", "{ev}");
    assert_eq!(s["sha256"], sha256_file(&script), "{ev}");
    assert_eq!(s["inode"], ino_dev(&script).0, "{ev}");
}

#[test]
fn a_symlink_named_like_a_secret_does_not_make_its_public_target_a_secret() {
    let user = ThrowawayUser::new("link");
    let link = user.home.join(".pgpass");
    user.run_ok(&["ln", "-s", "/etc/hostname", link.to_str().unwrap()]);
    // Positive control: a real .pgpass, a regular file, in a home of its own.
    let control_home = tempfile::tempdir().unwrap();
    let real = control_home.path().join(".pgpass");
    std::fs::write(&real, "localhost:5432:db:u:pw1\n").unwrap();
    // Started after both exist: discovery at start-up judges them.
    let agent = AgentProc::start(&format!(
        "status_interval: 1s\n{TEST_METRICS}\
         secrets:\n  extra_homes: [{}]\n  search_dirs: []\n",
        control_home.path().display()
    ));

    let public = marker("public-hostname");
    run(Command::new("/bin/cat").arg("/etc/hostname").arg0(&public));
    let through_link = marker("through-link");
    run(Command::new("/bin/cat").arg(&link).arg0(&through_link));
    let secret = marker("real-pgpass");
    run(Command::new("/bin/cat").arg(&real).arg0(&secret));
    let control = agent.wait_for(|e| {
        e["kind"] == "finding" && e["finding"]["rule"] == "secret-read" && has_arg(e, &secret)
    });
    assert_eq!(control["finding"]["secret"]["id"], "pgpass", "{control}");
    // The reads of /etc/hostname went before the control; let the agent drain.
    agent.status_after(agent.last_seq());
    for e in agent.events() {
        let about_hostname = has_arg(&e, &public)
            || has_arg(&e, &through_link)
            || e["file"]["path"] == "/etc/hostname";
        assert!(
            !(about_hostname && (e["kind"] == "finding" || e["kind"] == "file_open")),
            "a read of /etc/hostname was reported as a secret: {e}"
        );
    }
    // The readers were seen: the silence is about the file, not the hook.
    agent.wait_for(|e| is_exec_with(e, &public));
    agent.wait_for(|e| is_exec_with(e, &through_link));
}
