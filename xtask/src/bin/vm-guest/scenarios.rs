//! The end-to-end scenarios, each checking the agent's events against facts
//! the guest establishes independently (busybox `sha256sum`, `stat`, the
//! processes' own pids and exit statuses).

use std::{
    io::Write,
    net::{TcpListener, TcpStream},
    os::unix::{
        fs::{MetadataExt, PermissionsExt},
        process::{CommandExt, ExitStatusExt},
    },
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;

use crate::agent::Agent;
use crate::vm_protocol::SCENARIOS;

const CONFIG: &str = "/tmp/proctor-vm.yaml";
const AWS: &str = "/root/.aws/credentials";
const PGPASS: &str = "/root/.pgpass";
/// busybox copies with distinct content: distinct binaries, distinct identities.
const READER_A: &str = "/opt/a/cat";
const READER_B: &str = "/opt/b/cat";
const OWNER: &str = "/opt/owner/cat";
const EXEC_TRUE: &str = "/opt/exec/true";
const SLEEPER: &str = "/opt/attest/sleep";
const SCRIPT: &str = "/opt/script/hello.sh";

/// The hook set the host booted this guest for (`proctor.hooks=` on the
/// kernel command line): `lsm` with `bpf` among the active LSMs, `tracepoint`
/// without it (LSM programs would attach there and never run).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Hooks {
    Lsm,
    Tracepoint,
}

impl Hooks {
    fn from_cmdline() -> Result<Hooks> {
        let cmdline = std::fs::read_to_string("/proc/cmdline")?;
        match cmdline
            .split_whitespace()
            .find_map(|w| w.strip_prefix("proctor.hooks="))
        {
            Some("lsm") => Ok(Hooks::Lsm),
            Some("tracepoint") => Ok(Hooks::Tracepoint),
            other => {
                bail!("kernel command line has proctor.hooks={other:?}: want lsm or tracepoint")
            }
        }
    }

    /// `kernel.file_hooks`: `auto` on the LSM boot; the boot without BPF
    /// LSM forces the last fallback, the open syscalls' tracepoints, so that
    /// the matrix runs it (`auto` there is the page-cache set, which the
    /// host's integration suite runs).
    fn file_hooks(self) -> &'static str {
        match self {
            Hooks::Lsm => "auto",
            Hooks::Tracepoint => "syscall",
        }
    }

    /// `hook_set.file_open` of that set.
    fn file_open(self) -> &'static str {
        match self {
            Hooks::Lsm => "lsm",
            Hooks::Tracepoint => "tracepoint",
        }
    }

    fn kill_enforcement(self) -> &'static str {
        match self {
            Hooks::Lsm => "lsm-deny",
            Hooks::Tracepoint => "tracepoint-sigkill",
        }
    }
}

/// Values that must never appear in anything the agent prints.
struct Secrets {
    aws_key: String,
    pg_password: String,
}

pub fn run_all(wanted: &[String], report: &mut impl FnMut(&str, Result<String>)) {
    // Only the scenarios the host asked for run (and report).
    let mut report = |s: &str, f: &mut dyn FnMut() -> Result<String>| {
        if wanted.iter().any(|w| w == s) {
            report(s, f());
        }
    };
    let setup = Hooks::from_cmdline().and_then(|h| Ok((h, setup(h)?)));
    let (hooks, secrets) = match setup {
        Ok(s) => s,
        Err(e) => {
            for s in SCENARIOS {
                report(s, &mut || {
                    Err(anyhow::anyhow!("guest set-up failed: {e:#}"))
                });
            }
            return;
        }
    };
    report("doctor", &mut || doctor(hooks));
    let agent = match Agent::start(Path::new(CONFIG)) {
        Ok(a) => a,
        Err(e) => {
            for s in &SCENARIOS[1..] {
                report(s, &mut || {
                    Err(anyhow::anyhow!("agent did not start: {e:#}"))
                });
            }
            return;
        }
    };
    report("agent-start", &mut || {
        Ok(format!("{}, {}", kernel_release(), process_program_kind()))
    });
    report("hook-selection", &mut || hook_selection(&agent, hooks));
    report("exec-sha256", &mut || exec_sha256(&agent));
    report("script", &mut || script(&agent));
    report("memfd", &mut || memfd(&agent));
    report("secret-read", &mut || secret_read(&agent, hooks));
    report("secret-replay", &mut || secret_replay(&agent));
    report("net-connect", &mut || net_connect(&agent, hooks));
    report("attest", &mut attest);
    report("enforce-kill", &mut || match hooks {
        Hooks::Lsm => lsm_deny(&agent, &secrets),
        Hooks::Tracepoint => tracepoint_kill(&agent, &secrets),
    });
    report("no-secret-leak", &mut || no_secret_leak(&agent, &secrets));
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| format!("kernel {}", s.trim()))
        .unwrap_or_default()
}

/// Which kind of the exec, fork and exit programs the verifier took (the
/// agent logs a refusal of the direct-load kind before it loads the other).
fn process_program_kind() -> &'static str {
    let log = std::fs::read_to_string(crate::agent::LOG).unwrap_or_default();
    if log.contains("process hooks with direct loads refused") {
        "process programs: helper reads (direct loads refused)"
    } else {
        "process programs: direct loads"
    }
}

/// Whether the kernel has `bpf_task_pt_regs` (5.15).
fn has_task_pt_regs() -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut v = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse::<u32>().unwrap_or(0));
    (v.next().unwrap_or(0), v.next().unwrap_or(0)) >= (5, 15)
}

/// Fixture files and binaries, and the agent's config.
fn setup(hooks: Hooks) -> Result<Secrets> {
    // Unique per boot, so a leak check cannot pass by accident.
    let tag = std::fs::read_to_string("/proc/sys/kernel/random/uuid")?
        .trim()
        .replace('-', "")
        .to_uppercase();
    let secrets = Secrets {
        aws_key: format!("vmtest{tag}"),
        pg_password: format!("pw{tag}"),
    };
    std::fs::create_dir_all("/root/.aws")?;
    std::fs::write(
        AWS,
        format!(
            "[default]\naws_access_key_id = AKIA{}\naws_secret_access_key = {}\n",
            &tag[..16],
            secrets.aws_key
        ),
    )?;
    std::fs::write(
        PGPASS,
        format!("localhost:5432:db:u:{}\n", secrets.pg_password),
    )?;
    std::fs::set_permissions(PGPASS, std::fs::Permissions::from_mode(0o600))?;
    let busybox = std::fs::read("/bin/busybox").context("read /bin/busybox")?;
    for bin in [READER_A, READER_B, OWNER, EXEC_TRUE, SLEEPER] {
        let path = Path::new(bin);
        std::fs::create_dir_all(path.parent().unwrap())?;
        // A trailing tag makes each copy a different file version (its own
        // sha256) that still runs: the ELF loader ignores it.
        let mut content = busybox.clone();
        content.extend_from_slice(format!("\0proctor-vm {bin}\n").as_bytes());
        std::fs::write(path, content).with_context(|| format!("write {bin}"))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    }
    std::fs::create_dir_all(Path::new(SCRIPT).parent().unwrap())?;
    std::fs::write(SCRIPT, "#!/bin/sh\nexit 3\n")?;
    std::fs::set_permissions(SCRIPT, std::fs::Permissions::from_mode(0o755))?;
    std::fs::write(
        CONFIG,
        format!(
            "status_interval: 2s\n\
             state_dir: /tmp/proctor-state\n\
             process_table:\n  exit_grace: 60s\n\
             metrics:\n  listen: 127.0.0.1:0\n\
             kernel:\n  file_hooks: {}\n\
             secrets:\n  search_dirs: []\n  rules:\n\
             \x20   - secret: {{id: pgpass}}\n\
             \x20     owners: [{{exe_path: {OWNER}}}]\n\
             \x20     enforce: [kill]\n",
            hooks.file_hooks()
        ),
    )?;
    Ok(secrets)
}

/// busybox's sha256sum: an independent implementation from the agent's.
fn sha256sum(path: &str) -> Result<String> {
    let out = Command::new("/bin/busybox")
        .args(["sha256sum", path])
        .output()
        .context("busybox sha256sum")?;
    ensure!(out.status.success(), "sha256sum {path} failed");
    let s = String::from_utf8_lossy(&out.stdout);
    Ok(s.split_whitespace().next().unwrap_or_default().to_string())
}

/// Runs `cmd` to completion; returns its pid and exit status.
fn run(cmd: &mut Command) -> Result<(u32, std::process::ExitStatus)> {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("spawn {:?}", cmd.get_program()))?;
    let pid = child.id();
    Ok((pid, child.wait()?))
}

fn is_exec_of(e: &Value, pid: u32) -> bool {
    e["kind"] == "process_exec" && e["process"]["pid"] == pid
}

/// The exec's `process` with its hashes: hashing a binary can outlast
/// `hash.emit_wait` under emulation, and the exec then goes out with
/// `hash_status: "pending"`, its hashes in a `process_hash` event of the
/// same `exec_id` (the event contract's late-hash path).
fn settled(agent: &Agent, exec: &Value) -> Result<Value> {
    let p = &exec["process"];
    let pending = |p: &Value| {
        p["exe"]["hash_status"] == "pending"
            || p["interpreter"]["script"]["hash_status"] == "pending"
    };
    if !pending(p) {
        return Ok(p.clone());
    }
    let h = agent.wait("process_hash of a pending exec", |e| {
        e["kind"] == "process_hash" && e["process"]["exec_id"] == p["exec_id"]
    })?;
    ensure!(!pending(&h["process"]), "process_hash still pending: {h}");
    Ok(h["process"].clone())
}

fn is_finding(e: &Value, rule: &str, pid: u32) -> bool {
    e["kind"] == "finding" && e["finding"]["rule"] == rule && e["process"]["pid"] == pid
}

fn same(what: &str, got: &Value, want: impl Into<Value>) -> Result<()> {
    let want = want.into();
    ensure!(*got == want, "{what}: got {got}, want {want}");
    Ok(())
}

fn doctor(hooks: Hooks) -> Result<String> {
    let out = Command::new("/bin/proctor")
        .args(["doctor", "--json"])
        .output()
        .context("run proctor doctor --json")?;
    let checks: Vec<Value> = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("doctor output: {}", String::from_utf8_lossy(&out.stdout)))?;
    let verdict = |item: &str| -> Value {
        checks
            .iter()
            .find(|c| c["item"] == item)
            .map(|c| c["verdict"].clone())
            .unwrap_or(Value::Null)
    };
    for item in ["btf", "ring_buffer+tp_btf", "fentry", "hook_set"] {
        same(&format!("doctor {item}"), &verdict(item), "ok")?;
    }
    // Without `bpf` among the active LSMs the program attaches but would
    // never run: doctor must not call that usable.
    let lsm = match hooks {
        Hooks::Lsm => "ok",
        Hooks::Tracepoint => "unavailable",
    };
    same("doctor lsm", &verdict("lsm"), lsm)?;
    let detail = checks
        .iter()
        .find(|c| c["item"] == "hook_set")
        .map(|c| c["detail"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default();
    // doctor reports what `auto` picks on this kernel, whatever the agent's
    // config forces: without BPF LSM, the page-cache set and its fanotify group.
    let want = match hooks {
        Hooks::Lsm => "file_open: lsm,",
        Hooks::Tracepoint => "file_open: tp_btf,",
    };
    ensure!(
        detail.contains(want),
        "doctor hook_set: {detail}, want {want}"
    );
    if hooks == Hooks::Tracepoint {
        ensure!(
            detail.contains("file_access: page-cache,") && detail.contains("tmpfs_reads: fanotify"),
            "doctor hook_set: {detail}, want the page-cache set with fanotify"
        );
    }
    ensure!(out.status.success(), "proctor doctor exited {}", out.status);
    Ok(detail)
}

fn hook_selection(agent: &Agent, hooks: Hooks) -> Result<String> {
    let st = agent.wait("agent_status started", |e| {
        e["kind"] == "agent_status" && e["status"]["state"] == "started"
    })?;
    let s = &st["status"];
    same(
        "kill_enforcement",
        &s["kill_enforcement"],
        hooks.kill_enforcement(),
    )?;
    same(
        "hook_set.file_open",
        &s["hook_set"]["file_open"],
        hooks.file_open(),
    )?;
    same("hook_set.exec", &s["hook_set"]["exec"], "tp_btf")?;
    let attached: Vec<&str> = s["hooks"]
        .as_array()
        .context("status.hooks")?
        .iter()
        .filter_map(|h| h["hook"].as_str())
        .collect();
    ensure!(
        attached.contains(&"lsm/file_open") == (hooks == Hooks::Lsm),
        "lsm/file_open attached: {attached:?}"
    );
    Ok(format!("hook_set {}", s["hook_set"]))
}

fn exec_sha256(agent: &Agent) -> Result<String> {
    let want = sha256sum(EXEC_TRUE)?;
    let meta = std::fs::metadata(EXEC_TRUE)?;
    let (pid, status) = run(&mut Command::new(EXEC_TRUE))?;
    ensure!(status.success(), "{EXEC_TRUE} exited {status}");
    let ev = agent.wait("process_exec", |e| is_exec_of(e, pid))?;
    let p = settled(agent, &ev)?;
    let exe = &p["exe"];
    same("exe.path", &exe["path"], EXEC_TRUE)?;
    same("exe.hash_status", &exe["hash_status"], "ok")?;
    same("exe.sha256", &exe["sha256"], want.as_str())?;
    same("exe.inode", &exe["inode"], meta.ino())?;
    same("exe.size", &exe["size"], meta.len())?;
    same("attestation", &p["attestation"], "kernel-exec")?;
    Ok(format!(
        "pid {pid} inode {} size {} sha256 {}",
        meta.ino(),
        meta.len(),
        &want[..16]
    ))
}

fn script(agent: &Agent) -> Result<String> {
    let (pid, status) = run(&mut Command::new(SCRIPT))?;
    same("script exit code", &status.code().into(), 3)?;
    let ev = agent.wait("process_exec of the script", |e| is_exec_of(e, pid))?;
    let p = &settled(agent, &ev)?;
    let sh = std::fs::canonicalize("/bin/sh")?;
    same("exe.path", &p["exe"]["path"], sh.to_str().unwrap())?;
    same("exe.sha256", &p["exe"]["sha256"], sha256sum("/bin/sh")?)?;
    let interp = &p["interpreter"];
    same("interpreter.path", &interp["path"], "/bin/sh")?;
    same("script.path", &interp["script"]["path"], SCRIPT)?;
    same(
        "script.sha256",
        &interp["script"]["sha256"],
        sha256sum(SCRIPT)?,
    )?;
    same(
        "script.inode",
        &interp["script"]["inode"],
        std::fs::metadata(SCRIPT)?.ino(),
    )?;
    let exit = agent.wait("process_exit of the script", |e| {
        e["kind"] == "process_exit" && e["process"]["exec_id"] == p["exec_id"]
    })?;
    same("exit.code", &exit["exit"]["code"], 3)?;
    Ok(format!("pid {pid}: /bin/sh running {SCRIPT}, exit 3"))
}

fn memfd(agent: &Agent) -> Result<String> {
    let content = std::fs::read("/bin/busybox")?;
    let want = sha256sum("/bin/busybox")?;
    let name = c"proctor-vm-memfd";
    // SAFETY: a valid NUL-terminated name; the fd is owned by `file` below.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), 0) };
    ensure!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
    // SAFETY: fd was just returned by memfd_create and nothing else owns it.
    let mut file = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    file.write_all(&content)?;
    // Not close-on-exec: the child executes it through /proc/self/fd.
    let (pid, status) = run(Command::new(format!("/proc/self/fd/{fd}"))
        .arg0("sleep")
        .arg("2"))?;
    drop(file);
    ensure!(status.success(), "memfd program exited {status}");
    let ev = agent.wait("process_exec from the memfd", |e| is_exec_of(e, pid))?;
    let p = settled(agent, &ev)?;
    let exe = &p["exe"];
    same("exe.fileless", &exe["fileless"], true)?;
    ensure!(
        exe["path"]
            .as_str()
            .is_some_and(|p| p.starts_with("memfd:proctor-vm-memfd")),
        "exe.path {}",
        exe["path"]
    );
    same("exe.sha256", &exe["sha256"], want.as_str())?;
    let f = agent.wait("untrusted-binary finding", |e| {
        is_finding(e, "untrusted-binary", pid)
    })?;
    Ok(format!(
        "pid {pid} fileless, finding severity {}",
        f["finding"]["severity"]
    ))
}

fn read_secret(agent: &Agent, reader: &str, rule: &str) -> Result<Value> {
    let (pid, status) = run(Command::new(reader).arg(AWS))?;
    ensure!(status.success(), "{reader} {AWS} exited {status}");
    agent.wait(&format!("{rule} finding"), |e| is_finding(e, rule, pid))
}

fn secret_read(agent: &Agent, hooks: Hooks) -> Result<String> {
    let f = read_secret(agent, READER_A, "secret-read")?;
    same("file.path", &f["file"]["path"], AWS)?;
    // The open tracepoints read the path as typed from the syscall's saved
    // registers, whose layout is per arch (arm64: orig_x0, regs[1]); the
    // LSM hook has no syscall, and before 5.15 no bpf_task_pt_regs.
    if hooks == Hooks::Tracepoint && has_task_pt_regs() {
        same("file.requested_path", &f["file"]["requested_path"], AWS)?;
    }
    same(
        "file.inode",
        &f["file"]["inode"],
        std::fs::metadata(AWS)?.ino(),
    )?;
    let s = &f["finding"]["secret"];
    same("secret.id", &s["id"], "aws-cli-credentials")?;
    ensure!(
        s["fingerprint"]
            .as_str()
            .is_some_and(|p| p.starts_with("hmac-sha256:")),
        "fingerprint {}",
        s["fingerprint"]
    );
    same(
        "reader sha256",
        &f["process"]["exe"]["sha256"],
        sha256sum(READER_A)?,
    )?;
    Ok(format!(
        "{AWS} read by {READER_A}: severity {}",
        f["finding"]["severity"]
    ))
}

fn secret_replay(agent: &Agent) -> Result<String> {
    let f = read_secret(agent, READER_B, "secret-replay")?;
    let ids: Vec<&str> = f["finding"]["evidence"]["identities"]
        .as_array()
        .context("evidence.identities")?
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    for reader in [READER_A, READER_B] {
        let h = sha256sum(reader)?;
        ensure!(
            ids.iter().any(|i| i.contains(&h)),
            "identities {ids:?} lack {reader} ({h})"
        );
    }
    same(
        "secret.id",
        &f["finding"]["secret"]["id"],
        "aws-cli-credentials",
    )?;
    Ok(format!("{} identities", ids.len()))
}

fn net_connect(agent: &Agent, hooks: Hooks) -> Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let stream = TcpStream::connect(("127.0.0.1", port))?;
    let _accepted = listener.accept()?;
    drop(stream);
    let me = std::process::id();
    let ev = agent.wait("net_connect", |e| {
        e["kind"] == "net_connect" && e["process"]["pid"] == me && e["net"]["dst_port"] == port
    })?;
    let n = &ev["net"];
    same("net.family", &n["family"], "inet")?;
    same("net.dst_ip", &n["dst_ip"], "127.0.0.1")?;
    same("net.result", &n["result"], "success")?;
    // The lsm set attaches no syscall tracepoint: the TCP outcome above came
    // from inet_sock_set_state, and Unix sockets from the unix LSM hooks.
    let (path, observed_by) = match hooks {
        Hooks::Lsm => ("cgroup+tp_btf+lsm", "lsm"),
        Hooks::Tracepoint => ("tracepoint+cgroup", "syscall"),
    };
    same(
        "net.observed_by (tcp)",
        &n["observed_by"],
        match hooks {
            Hooks::Lsm => "socket_hook",
            Hooks::Tracepoint => "syscall",
        },
    )?;
    let dir = std::env::temp_dir().join(format!("proctor-vm-unix-{me}"));
    std::fs::create_dir_all(&dir)?;
    let stream_path = dir.join("stream.sock");
    let unix_listener = std::os::unix::net::UnixListener::bind(&stream_path)?;
    let _unix = std::os::unix::net::UnixStream::connect(&stream_path)?;
    let unix = agent.wait("unix net_connect", |e| {
        e["kind"] == "net_connect"
            && e["process"]["pid"] == me
            && e["net"]["dst_path"] == stream_path.to_str().unwrap_or_default()
    })?;
    same("unix family", &unix["net"]["family"], "unix")?;
    same("unix protocol", &unix["net"]["protocol"], "stream")?;
    same("unix result", &unix["net"]["result"], "success")?;
    same("unix observed_by", &unix["net"]["observed_by"], observed_by)?;
    drop(unix_listener);
    let mut detail = format!(
        "127.0.0.1:{port} and {} from pid {me}",
        stream_path.display()
    );
    if hooks == Hooks::Lsm {
        // A datagram to a bound path: lsm/unix_may_send, once per path.
        let dgram_path = dir.join("dgram.sock");
        let sink = std::os::unix::net::UnixDatagram::bind(&dgram_path)?;
        let sender = std::os::unix::net::UnixDatagram::unbound()?;
        for _ in 0..3 {
            sender.send_to(b"x", &dgram_path)?;
        }
        let mut buf = [0u8; 4];
        sink.recv(&mut buf)?;
        let sent = agent.wait("unix datagram net_connect", |e| {
            e["kind"] == "net_connect"
                && e["process"]["pid"] == me
                && e["net"]["dst_path"] == dgram_path.to_str().unwrap_or_default()
        })?;
        same("unix dgram protocol", &sent["net"]["protocol"], "dgram")?;
        same("unix dgram operation", &sent["net"]["operation"], "sendmsg")?;
        detail.push_str(&format!(", {} (dgram)", dgram_path.display()));
    }
    let st = agent.wait("agent_status", |e| e["kind"] == "agent_status")?;
    same(
        "hook_set.connect",
        &st["status"]["hook_set"]["connect"],
        path,
    )?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(format!("{detail}; connect {path}"))
}

fn attest() -> Result<String> {
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let want = sha256sum(SLEEPER)?;
    let child = Kill(Command::new(SLEEPER).arg("600").spawn()?);
    let pid = child.0.id();
    // The agent answers once it has the exec record: ask until it does.
    let mut last = String::new();
    for _ in 0..60 {
        let out = Command::new("/bin/proctor")
            .args(["attest", &pid.to_string(), "--json"])
            .output()?;
        if out.status.success() {
            let id: Value = serde_json::from_slice(&out.stdout)?;
            if id["exe_sha256"] == want.as_str() {
                same("attestation", &id["attestation"], "kernel-exec")?;
                same("exe_path", &id["exe_path"], SLEEPER)?;
                let selectors: Vec<String> = id["selectors"]
                    .as_array()
                    .context("selectors")?
                    .iter()
                    .map(|s| {
                        format!(
                            "{}:{}",
                            s["type"].as_str().unwrap_or("?"),
                            s["value"].as_str().unwrap_or("?")
                        )
                    })
                    .collect();
                let sel = format!("unix:sha256:{want}");
                ensure!(selectors.contains(&sel), "no {sel} in {selectors:?}");
                return Ok(format!("pid {pid}: {} selectors", selectors.len()));
            }
            last = String::from_utf8_lossy(&out.stdout).into_owned();
        } else {
            last = String::from_utf8_lossy(&out.stderr).into_owned();
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    bail!("no kernel-attested answer for pid {pid}; last: {last}")
}

/// The owner of the kill-enforced secret reads it; its finding is `info`
/// with no enforcement action.
fn owner_reads(agent: &Agent, secrets: &Secrets) -> Result<()> {
    let mut owner = Command::new(OWNER)
        .arg(PGPASS)
        .stdout(Stdio::piped())
        .spawn()?;
    let owner_pid = owner.id();
    let mut got = String::new();
    std::io::Read::read_to_string(owner.stdout.as_mut().unwrap(), &mut got)?;
    ensure!(owner.wait()?.success(), "owner read failed");
    ensure!(
        got.contains(&secrets.pg_password),
        "the owner did not get the secret's content"
    );
    let f = agent.wait("owner's secret-read", |e| {
        is_finding(e, "secret-read", owner_pid)
    })?;
    same("owner read severity", &f["finding"]["severity"], "info")?;
    same("owner read action", &f["finding"]["action"], Value::Null)
}

/// The finding for `pid`'s forbidden open, with its enforcement action.
fn enforced(agent: &Agent, pid: u32, action: &str) -> Result<()> {
    let d = agent.wait(&format!("secret-read with action {action}"), |e| {
        is_finding(e, "secret-read", pid) && e["finding"]["action"] == action
    })?;
    same("file.path", &d["file"]["path"], PGPASS)?;
    same("secret.id", &d["finding"]["secret"]["id"], "pgpass")
}

fn opens_denied(agent: &Agent) -> Result<u64> {
    let st = agent.next_status()?;
    Ok(st["status"]["kernel"]["sent"]["opens_denied"]
        .as_u64()
        .unwrap_or(0))
}

/// A non-owner `cat` of the kill-enforced secret: its pid and how it ended.
fn forbidden_cat() -> Result<(u32, std::process::Output)> {
    let reader = Command::new(READER_A)
        .arg(PGPASS)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let pid = reader.id();
    Ok((pid, reader.wait_with_output()?))
}

/// Without BPF LSM the open tracepoint kills a forbidden reader before it
/// reads a byte.
fn tracepoint_kill(agent: &Agent, secrets: &Secrets) -> Result<String> {
    let (reader_pid, out) = forbidden_cat()?;
    ensure!(
        out.status.signal() == Some(libc::SIGKILL) && out.stdout.is_empty(),
        "forbidden reader: {} with {} bytes of output",
        out.status,
        out.stdout.len()
    );
    enforced(agent, reader_pid, "killed")?;
    owner_reads(agent, secrets)?;
    let denied = opens_denied(agent)?;
    ensure!(denied == 0, "opens_denied {denied} without BPF LSM");
    Ok("tracepoint-sigkill: non-owner killed before any byte, owner read ok".into())
}

fn lsm_deny(agent: &Agent, secrets: &Secrets) -> Result<String> {
    // Without the LSM path the tracepoint would SIGKILL this driver.
    let st = agent.next_status()?;
    same(
        "kill_enforcement",
        &st["status"]["kill_enforcement"],
        "lsm-deny",
    )?;
    // This process is not an owner: its open() must fail, and it lives on.
    match std::fs::File::open(PGPASS) {
        Ok(_) => bail!("a forbidden open of {PGPASS} succeeded"),
        Err(e) => ensure!(
            e.raw_os_error() == Some(libc::EPERM),
            "forbidden open of {PGPASS}: {e}, want EPERM"
        ),
    }
    // A forbidden reader process gets the error too, not a signal.
    let (reader_pid, out) = forbidden_cat()?;
    ensure!(
        out.status.signal().is_none() && out.status.code() == Some(1) && out.stdout.is_empty(),
        "forbidden reader: {} with {} bytes of output",
        out.status,
        out.stdout.len()
    );
    owner_reads(agent, secrets)?;
    // Each refusal is reported, from the LSM hook itself.
    for pid in [std::process::id(), reader_pid] {
        enforced(agent, pid, "denied")?;
    }
    let denied = opens_denied(agent)?;
    ensure!(denied >= 2, "opens_denied {denied}, want >= 2");
    Ok(format!(
        "lsm-deny: EPERM for non-owners (findings with action denied), owner read ok, \
         opens_denied {denied}"
    ))
}

fn no_secret_leak(agent: &Agent, secrets: &Secrets) -> Result<String> {
    let mut texts = agent.raw_lines();
    texts.push(std::fs::read_to_string(crate::agent::LOG).unwrap_or_default());
    for dir in [PathBuf::from("/tmp/proctor-state")] {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            texts.push(
                String::from_utf8_lossy(&std::fs::read(e.path()).unwrap_or_default()).into_owned(),
            );
        }
    }
    for t in &texts {
        for v in [&secrets.aws_key, &secrets.pg_password] {
            ensure!(!t.contains(v.as_str()), "a raw secret value leaked");
        }
    }
    Ok(format!(
        "{} event lines, log and state checked",
        texts.len()
    ))
}
