//! Real-kernel tests of the block-egress quarantine as the kernel keeps it:
//! by process instance (pid and start time), inherited by children in the
//! fork hook before they run, and refusing nothing to a later holder of a
//! quarantined pid.

use std::{net::TcpListener, os::unix::process::CommandExt, process::Command};

use crate::harness::*;
use serde_json::Value;

/// Reads the secret, connects to a remote peer until block-egress refuses
/// it (the quarantine is in place), then forks children that each connect
/// once to a loopback listener as their first act, and prints how many of
/// them were refused.
const QUARANTINED_PARENT_FORKS_PY: &str = r#"
import os, socket, sys, time
open(sys.argv[1]).read()
deadline = time.time() + 15
while True:
    try:
        socket.create_connection(("198.18.77.2", 8080), timeout=5).close()
    except PermissionError:
        break
    if time.time() > deadline:
        print("never quarantined")
        sys.exit(1)
    time.sleep(0.05)
refused = 0
children = int(sys.argv[3])
for _ in range(children):
    pid = os.fork()
    if pid == 0:
        try:
            socket.create_connection(("127.0.0.1", int(sys.argv[2])), timeout=2).close()
            os._exit(1)
        except PermissionError:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    refused += os.waitstatus_to_exitcode(status) == 0
print("refused %d of %d" % (refused, children))
"#;

fn agent_with_block_egress(home: &std::path::Path, state: &std::path::Path) -> AgentProc {
    AgentProc::start(&format!(
        "status_interval: 1s\n{TEST_METRICS}\
         state_dir: {state}\n\
         secrets:\n  extra_homes: [{home}]\n  search_dirs: []\n  rules:\n\
         \x20   - secret: {{id: netrc}}\n\
         \x20     enforce: [block-egress]\n",
        state = state.display(),
        home = home.display(),
    ))
}

#[test]
fn children_forked_after_the_quarantine_are_refused_on_their_first_connect() {
    let home = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let netrc = home.path().join(".netrc");
    std::fs::write(&netrc, "machine example.invalid login u password forked1\n").unwrap();
    let agent = agent_with_block_egress(home.path(), state.path());
    let mut net = TestNet::new();
    net.listen(8080);
    let local = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = local.local_addr().unwrap().port();

    let m = marker("quarantine-fork");
    let out = Command::new(PYTHON3)
        .arg0(&m)
        .args(["-c", QUARANTINED_PARENT_FORKS_PY, netrc.to_str().unwrap()])
        .args([&port.to_string(), "20"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "refused 20 of 20",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ex = agent.wait_for(|e| {
        e["kind"] == "finding" && e["finding"]["rule"] == "secret-exfil" && has_arg(e, &m)
    });
    assert_eq!(ex["finding"]["action"], "egress_blocked", "{ex}");
    // Positive control: the same listener takes this (unquarantined) process.
    std::net::TcpStream::connect(("127.0.0.1", port)).expect("an unquarantined process connects");
}

/// Ids of the kernel's QUARANTINE map and HOOK_FLAGS array.
struct QuarantineMaps {
    quarantine: u32,
    flags: u32,
}

/// The agent's block-egress quarantine maps, found from the programs it
/// reports as attached (other agents may be loaded too).
fn quarantine_maps(agent: &AgentProc) -> QuarantineMaps {
    let status = agent.wait_for(|e| e["kind"] == "agent_status");
    let hooks = status["status"]["hooks"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let prog = hooks
        .iter()
        .find(|h| {
            h["hook"]
                .as_str()
                .is_some_and(|s| s.starts_with("cgroup/connect4"))
        })
        .unwrap_or_else(|| panic!("no cgroup/connect4 hook in {status}"));
    let show = |what: &str, id: u64| -> Value {
        let out = run_ok(
            Command::new("bpftool").args(["-j", what, "show", "id", &id.to_string()]),
            "apt-get install bpftool",
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let p = show("prog", prog["id"].as_u64().unwrap());
    let find = |name: &str| {
        p["map_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|id| id.as_u64().unwrap())
            .find(|id| show("map", *id)["name"] == name)
            .unwrap_or_else(|| panic!("the connect4 program uses no {name} map: {p}"))
            as u32
    };
    QuarantineMaps {
        quarantine: find("QUARANTINE"),
        flags: find("HOOK_FLAGS"),
    }
}

fn hex_bytes(bytes: &[u8]) -> Vec<String> {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `pid -> (start_boottime_ns, granularity_ns)` into the map, as the
/// agent would: the quarantine flag first (the hooks look for no entry
/// before it is set).
fn plant(maps: &QuarantineMaps, pid: u32, start_ns: u64, granularity_ns: u64) {
    run_ok(
        Command::new("bpftool")
            .args(["map", "update", "id", &maps.flags.to_string(), "key", "hex"])
            .args(hex_bytes(&0u32.to_le_bytes()))
            .args(["value", "hex"])
            .args(hex_bytes(&1u32.to_le_bytes())),
        "apt-get install bpftool",
    );
    let mut value = start_ns.to_le_bytes().to_vec();
    value.extend(granularity_ns.to_le_bytes());
    run_ok(
        Command::new("bpftool")
            .args([
                "map",
                "update",
                "id",
                &maps.quarantine.to_string(),
                "key",
                "hex",
            ])
            .args(hex_bytes(&pid.to_le_bytes()))
            .args(["value", "hex"])
            .args(hex_bytes(&value)),
        "apt-get install bpftool",
    );
}

fn planted(maps: &QuarantineMaps, pid: u32) -> bool {
    Command::new("bpftool")
        .args([
            "map",
            "lookup",
            "id",
            &maps.quarantine.to_string(),
            "key",
            "hex",
        ])
        .args(hex_bytes(&pid.to_le_bytes()))
        .output()
        .unwrap()
        .status
        .success()
}

/// Connects once per line on stdin and answers `ok` or `EPERM`.
const CONNECT_ON_DEMAND_PY: &str = r#"
import socket, sys
for line in sys.stdin:
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2).close()
        print("ok", flush=True)
    except PermissionError:
        print("EPERM", flush=True)
"#;

/// Start of `pid` as /proc/<pid>/stat gives it (clock ticks since boot) in ns,
/// and the tick: the coarse form the agent uses for processes it found in /proc.
fn proc_start(pid: u32) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
    let ticks: u64 = after_comm.split(' ').nth(19).unwrap().parse().unwrap();
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    let tick = 1_000_000_000 / hz;
    (ticks * tick, tick)
}

#[test]
fn a_quarantine_entry_made_for_an_earlier_holder_of_the_pid_refuses_nothing() {
    let home = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let agent = agent_with_block_egress(home.path(), state.path());
    let map = quarantine_maps(&agent);
    let local = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = local.local_addr().unwrap().port();

    let mut child = Command::new(PYTHON3)
        .args(["-c", CONNECT_ON_DEMAND_PY, &port.to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut attempt = || -> String {
        use std::io::{BufRead, Write};
        writeln!(stdin, "go").unwrap();
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        line.trim().to_string()
    };
    assert_eq!(attempt(), "ok");

    // An entry for a process that held this pid a second earlier (its exit
    // never reached the agent): the current holder is not refused, and the
    // kernel drops the stale entry on sight.
    let (start, tick) = proc_start(pid);
    plant(&map, pid, start.saturating_sub(1_000_000_000), tick);
    assert!(planted(&map, pid));
    assert_eq!(
        attempt(),
        "ok",
        "a stale entry refused the pid's new holder"
    );
    assert!(!planted(&map, pid), "the stale entry was not removed");

    // Positive control: the entry for this very process (start at tick
    // precision, as the agent writes it for processes found in /proc) refuses it.
    plant(&map, pid, start, tick);
    assert_eq!(attempt(), "EPERM");
    drop(stdin);
    let status = child.wait().unwrap();
    assert!(status.success());
    // The exit hook removes the entry with the process.
    assert!(!planted(&map, pid), "the entry outlived its process");
}
