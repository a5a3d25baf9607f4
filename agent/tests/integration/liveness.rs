//! The agent is never blinded silently: missing hooks fail start-up or
//! `/readyz` and show as `none`, and a slow hash never holds the stream.

use std::{
    io::Read,
    os::unix::process::CommandExt,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::harness::{
    http_get, is_exec_with, marker, proctor_bin, run, sha256_file, write_exe, AgentProc,
    STARTUP_TIMEOUT,
};

const CAP_SYS_ADMIN: libc::c_ulong = 21;

fn config(state_dir: &Path, extra: &str) -> String {
    format!(
        "status_interval: 1s\nstate_dir: {}\nfingerprint:\n  key: {}\nmetrics:\n  \
         listen: 127.0.0.1:0\napi:\n  enabled: false\n{extra}",
        state_dir.display(),
        "ab".repeat(32)
    )
}

/// Runs the agent as a container without CAP_SYS_ADMIN would: its own mount
/// namespace, CAP_SYS_ADMIN dropped from the bounding set (so it cannot
/// mount tracefs itself) and, when `hide_tracefs`, an empty read-only tmpfs
/// over /sys/kernel/tracing and /sys/kernel/debug (where tracefs would be).
fn without_sys_admin(cmd: &mut Command, hide_tracefs: bool) {
    // SAFETY: only async-signal-safe calls (unshare, mount, prctl) between
    // fork and exec, on data prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            let check = |rc: libc::c_int| {
                if rc == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            };
            check(libc::unshare(libc::CLONE_NEWNS))?;
            check(libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ))?;
            if hide_tracefs {
                for target in [c"/sys/kernel/tracing", c"/sys/kernel/debug"] {
                    check(libc::mount(
                        c"tmpfs".as_ptr(),
                        target.as_ptr(),
                        c"tmpfs".as_ptr(),
                        libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV,
                        c"size=4k".as_ptr().cast(),
                    ))?;
                }
            }
            check(libc::prctl(libc::PR_CAPBSET_DROP, CAP_SYS_ADMIN, 0, 0, 0))?;
            Ok(())
        });
    }
}

fn started_status(agent: &AgentProc) -> Value {
    agent.wait_for(|e| e["kind"] == "agent_status" && e["status"]["state"] == "started")
}

fn metrics_addr(status: &Value) -> String {
    status["status"]["metrics_listen"]
        .as_str()
        .unwrap_or_else(|| panic!("no metrics_listen in {status}"))
        .to_string()
}

#[test]
fn secrets_without_the_file_open_hook_refuse_to_start_naming_the_hook_and_the_fix() {
    let state = tempfile::tempdir().unwrap();
    // The syscall set is the one that needs tracefs (the page-cache and LSM
    // sets attach without it).
    let cfg_text = config(state.path(), "kernel:\n  file_hooks: syscall\n");
    let mut cfg = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut cfg, cfg_text.as_bytes()).unwrap();

    // Blind: no tracefs, and no way to mount it.
    let mut cmd = Command::new(proctor_bin());
    without_sys_admin(&mut cmd, true);
    let mut child = cmd
        .args(["run", "--config"])
        .arg(cfg.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            child.kill().ok();
            child.wait().ok();
            panic!("the blind agent with secrets enabled did not exit; it must refuse to start");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    assert!(!status.success(), "exit {status}; stderr:\n{stderr}");
    for needed in [
        "secrets.enabled",
        "tracepoint/syscalls/sys_exit_openat",
        "tracefs",
        "mount -t tracefs tracefs /sys/kernel/tracing",
        "secrets.enabled: false",
    ] {
        assert!(
            stderr.contains(needed),
            "{needed:?} missing from stderr:\n{stderr}"
        );
    }
    assert!(
        !stdout.contains("\"started\""),
        "it said started before failing:\n{stdout}"
    );

    // Positive control: the same config and capabilities, tracefs where it
    // belongs: the agent starts with the open hook attached.
    let agent = AgentProc::start_with(&cfg_text, |c| without_sys_admin(c, false));
    let st = started_status(&agent);
    assert_eq!(st["status"]["hook_set"]["file_open"], "tracepoint", "{st}");
    assert_eq!(
        st["status"]["kill_enforcement"], "tracepoint-sigkill",
        "{st}"
    );
    let (code, body) = http_get(&metrics_addr(&st), "/readyz");
    assert_eq!((code, body.as_str()), (200, "ready\n"), "{st}");
}

#[test]
fn without_tracefs_and_secrets_off_the_agent_starts_and_says_what_it_cannot_see() {
    let state = tempfile::tempdir().unwrap();
    // The start-up scan queues hashes: wait for them, as TEST_CONFIG does.
    let cfg_text = config(
        state.path(),
        "kernel:\n  file_hooks: syscall\nsecrets:\n  enabled: false\nhash:\n  emit_wait: 5s\n",
    );
    let agent = AgentProc::start_with(&cfg_text, |c| without_sys_admin(c, true));
    let st = started_status(&agent);
    let s = &st["status"];
    assert_eq!(s["hook_set"]["file_open"], "none", "{st}");
    // The cgroup socket hooks need no tracefs: inet connects stay visible,
    // TCP outcomes from the handshake tracepoint.
    assert_eq!(s["hook_set"]["connect"], "cgroup+tp_btf", "{st}");
    assert_eq!(s["hook_set"]["exec"], "tp_btf", "{st}");
    assert_eq!(s["kill_enforcement"], "none", "{st}");
    let addr = metrics_addr(&st);
    // net_connect events are always part of what the agent reports: not ready.
    let (code, body) = http_get(&addr, "/readyz");
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains("tracepoint/syscalls/sys_enter_connect")
            && body.contains("tracefs")
            && body.contains("cgroup socket hooks"),
        "{body}"
    );
    // Alive all the same, and what it can see it reports: an exec.
    let (code, body) = http_get(&addr, "/healthz");
    assert_eq!((code, body.as_str()), (200, "ok\n"));
    let m = marker("blind-exec");
    run(Command::new("/bin/true").arg(&m));
    let exec = agent.wait_for(|e| is_exec_with(e, &m));
    assert_eq!(exec["process"]["exe"]["hash_status"], "ok", "{exec}");
    assert_eq!(
        exec["process"]["exe"]["sha256"].as_str(),
        Some(sha256_file(Path::new("/bin/true")).as_str()),
        "{exec}"
    );
}

/// A copy of /bin/true with 64 MiB after it (the ELF loader ignores it):
/// hashing it takes far longer than 1ms.
fn big_binary(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("big-true");
    let mut bytes = std::fs::read("/bin/true").unwrap();
    let pad: Vec<u8> = (0..1u32 << 20).map(|i| (i * 7 + 3) as u8).collect();
    for _ in 0..64 {
        bytes.extend_from_slice(&pad);
    }
    write_exe(&path, bytes);
    path
}

#[test]
fn an_exec_whose_hash_misses_the_emit_wait_goes_out_pending_and_the_hash_follows() {
    let state = tempfile::tempdir().unwrap();
    let bin_dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let big = big_binary(bin_dir.path());
    let agent = AgentProc::start(&config(
        state.path(),
        "secrets:\n  enabled: false\nhash:\n  emit_wait: 1ms\n",
    ));
    let m = marker("pending-hash");
    run(Command::new(&big).arg(&m));
    let exec = agent.wait_for(|e| is_exec_with(e, &m));
    assert_eq!(exec["process"]["exe"]["hash_status"], "pending", "{exec}");
    assert!(exec["process"]["exe"]["sha256"].is_null(), "{exec}");
    let exec_id = exec["process"]["exec_id"].clone();
    let follow =
        agent.wait_for(|e| e["kind"] == "process_hash" && e["process"]["exec_id"] == exec_id);
    assert_eq!(follow["process"]["exe"]["hash_status"], "ok", "{follow}");
    assert_eq!(
        follow["process"]["exe"]["sha256"].as_str(),
        Some(sha256_file(&big).as_str()),
        "{follow}"
    );
    assert!(follow["seq"].as_u64() > exec["seq"].as_u64(), "{follow}");

    // Side by side: the same file again, its hash now cached, goes out
    // complete at once, with no follow-up.
    let again = marker("cached-hash");
    run(Command::new(&big).arg(&again));
    let exec2 = agent.wait_for(|e| is_exec_with(e, &again));
    assert_eq!(exec2["process"]["exe"]["hash_status"], "ok", "{exec2}");
    assert_eq!(
        exec2["process"]["exe"]["sha256"],
        follow["process"]["exe"]["sha256"]
    );
    let status = agent.status_after(exec2["seq"].as_u64().unwrap());
    let id2 = &exec2["process"]["exec_id"];
    let extra: Vec<Value> = agent
        .events()
        .into_iter()
        .filter(|e| e["kind"] == "process_hash" && e["process"]["exec_id"] == *id2)
        .collect();
    assert!(
        extra.is_empty(),
        "a complete exec got a follow-up: {extra:?}"
    );
    assert!(
        status["status"]["emitted"]["hash_pending"].as_u64() >= Some(1),
        "{status}"
    );
    // The oldest-pending gauge is exported.
    let (_, text) = http_get(&metrics_addr(&status), "/metrics");
    assert!(
        text.contains("proctor_pipeline_oldest_pending_seconds"),
        "{text}"
    );
}
