//! Connects on the page-cache file hook set, which attaches no syscall
//! tracepoint: the cgroup connect/sendmsg hooks report them, the TCP state
//! machine gives their outcome, and the agent's sweep reports a connect that
//! failed before its handshake. Traffic goes to loopback and to network
//! namespaces the tests create.

use std::{
    net::TcpListener, os::unix::process::CommandExt, process::Command, sync::OnceLock,
    time::Duration,
};

use crate::harness::*;
use serde_json::Value;

fn fixture() -> &'static HomeAgent {
    static F: OnceLock<HomeAgent> = OnceLock::new();
    F.get_or_init(|| {
        // Catalogued at start: the page-cache set sees reads of it at once.
        let files = [(
            ".netrc",
            "machine egress.test login u password conn-hooks\n",
        )];
        HomeAgent::start(&files, |home, state| {
            format!(
                "status_interval: 1s\n{TEST_METRICS}\
                 state_dir: {state}\n\
                 kernel:\n  file_hooks: page-cache\n\
                 secrets:\n  extra_homes: [{h}]\n  search_dirs: []\n  rules:\n\
                 \x20   - secret: {{id: netrc}}\n\
                 \x20     enforce: [block-egress]\n",
                state = state.display(),
                h = home.display(),
            )
        })
    })
}

const CONNECT_PY: &str = r#"
import socket, sys, time
kind, host, port, times = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
for _ in range(times):
    if kind == "udp":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.sendto(b"x", (host, port))
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if kind == "nonblock":
            s.setblocking(False)
        try:
            s.connect((host, port))
        except (BlockingIOError, OSError):
            pass
        time.sleep(0.05)
    s.close()
time.sleep(0.3)
"#;

/// Runs the connect helper `times` times in one process named `m`.
fn connect(m: &str, kind: &str, host: &str, port: u16, times: u32) {
    run(Command::new(PYTHON3)
        .arg0(m)
        .args(["-c", CONNECT_PY, kind, host])
        .args([port.to_string(), times.to_string()]));
}

fn net_event(agent: &AgentProc, m: &str) -> Value {
    agent.wait_for(|e| e["kind"] == "net_connect" && has_arg(e, m))
}

fn net_events(agent: &AgentProc, m: &str) -> Vec<Value> {
    agent
        .events()
        .into_iter()
        .filter(|e| e["kind"] == "net_connect" && has_arg(e, m))
        .collect()
}

/// The `sent` figures of the next agent_status.
fn sent(agent: &AgentProc) -> Value {
    let s = agent.status_after(agent.last_seq());
    s["status"]["kernel"]["sent"].clone()
}

fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn the_page_cache_set_attaches_no_syscall_tracepoint_and_says_what_its_connect_path_is() {
    let f = fixture();
    let status = f.agent.wait_for(|e| e["kind"] == "agent_status");
    let set = &status["status"]["hook_set"];
    assert_eq!(set["file_access"], "page-cache", "{status}");
    assert_eq!(set["connect"], "cgroup+tp_btf", "{status}");
    assert_eq!(set["datagram"], "cgroup", "{status}");
    let hooks = status["status"]["hooks"].as_array().unwrap();
    let names: Vec<&str> = hooks.iter().filter_map(|h| h["hook"].as_str()).collect();
    // Positive control: the hooks the set does attach are listed.
    for want in [
        "cgroup/connect4",
        "tp_btf/inet_sock_set_state",
        "tp_btf/mm_filemap_get_pages",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    assert!(
        !names.iter().any(|h| h.starts_with("tracepoint/syscalls/")),
        "a syscall tracepoint is attached: {names:?}"
    );
    // The kernel agrees: none of the agent's programs is a tracepoint program.
    for h in hooks {
        let id = h["id"].as_u64().unwrap();
        let out = run_ok(
            Command::new("bpftool").args(["-j", "prog", "show", "id", &id.to_string()]),
            "apt-get install bpftool",
        );
        let prog: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_ne!(prog["type"], "tracepoint", "{h} is {prog}");
    }
    let doctor = String::from_utf8_lossy(&proctor_ok(["doctor"])).to_string();
    assert!(
        doctor.contains("connect path"),
        "doctor states the connect path's blind spots:\n{doctor}"
    );
}

#[test]
fn tcp_connects_get_their_outcome_from_the_tcp_state_machine() {
    let f = fixture();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let closed = closed_port();
    for (name, kind, to, want, errno) in [
        ("pc-tcp-ok", "tcp", port, "success", None),
        (
            "pc-tcp-refused",
            "tcp",
            closed,
            "refused",
            Some(libc::ECONNREFUSED),
        ),
        ("pc-nonblock-ok", "nonblock", port, "success", None),
        (
            "pc-nonblock-refused",
            "nonblock",
            closed,
            "refused",
            Some(libc::ECONNREFUSED),
        ),
    ] {
        let m = marker(name);
        connect(&m, kind, "127.0.0.1", to, 1);
        let ev = net_event(&f.agent, &m);
        let n = &ev["net"];
        assert_eq!(n["result"], want, "{name}: {ev}");
        assert_eq!(n["errno"].as_i64(), errno.map(i64::from), "{name}: {ev}");
        assert_eq!(n["dst_port"], to, "{name}: {ev}");
        assert_eq!(n["protocol"], "tcp", "{name}: {ev}");
        assert_eq!(n["observed_by"], "socket_hook", "{name}: {ev}");
        assert_eq!(n["async_result"], true, "{name}: {ev}");
    }
    drop(listener);
}

#[test]
fn a_udp_datagram_is_reported_at_once() {
    let f = fixture();
    let sink = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sink.local_addr().unwrap().port();
    let m = marker("pc-udp");
    connect(&m, "udp", "127.0.0.1", port, 1);
    let ev = net_event(&f.agent, &m);
    let n = &ev["net"];
    assert_eq!(
        (&n["protocol"], &n["operation"], &n["result"]),
        (&"udp".into(), &"sendmsg".into(), &"success".into()),
        "{ev}"
    );
    let mut buf = [0u8; 4];
    sink.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(sink.recv(&mut buf).unwrap(), 1, "the datagram went out");
}

#[test]
fn a_connect_that_fails_before_the_handshake_is_still_reported_once_and_counted() {
    let f = fixture();
    let before = sent(&f.agent);
    // A namespace of its own with no route at all: ENETUNREACH before SYN_SENT.
    let m = marker("pc-unroutable");
    let out = Command::new("unshare")
        .args([
            "--net",
            PYTHON3,
            "-c",
            CONNECT_PY,
            "tcp",
            "198.18.99.9",
            "80",
            "3",
            &m,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Positive control beside it: a connect that does reach its handshake.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let ok = marker("pc-routable");
    connect(
        &ok,
        "tcp",
        "127.0.0.1",
        listener.local_addr().unwrap().port(),
        1,
    );

    let ev = f.agent.wait_for_timeout(Duration::from_secs(15), |e| {
        e["kind"] == "net_connect" && has_arg(e, &m)
    });
    let n = &ev["net"];
    assert_eq!(n["result"], "failed_before_handshake", "{ev}");
    assert_eq!(n["dst_ip"], "198.18.99.9", "{ev}");
    assert!(n.get("errno").is_none(), "errno is unknown here: {ev}");
    let good = net_event(&f.agent, &ok);
    assert_eq!(good["net"]["result"], "success", "{good}");
    // Two more sweeps: the handshake that succeeded is never swept as a
    // failure, and the three failures are one event.
    std::thread::sleep(Duration::from_secs(5));
    let after = sent(&f.agent);
    assert_eq!(
        net_events(&f.agent, &m).len(),
        1,
        "{:?}",
        net_events(&f.agent, &m)
    );
    let good_events = net_events(&f.agent, &ok);
    assert_eq!(good_events.len(), 1, "{good_events:?}");
    let n = |s: &Value, k: &str| s[k].as_u64().unwrap();
    assert_eq!(
        n(&after, "connect_failed_before_handshake")
            - n(&before, "connect_failed_before_handshake"),
        3,
        "before {before} after {after}"
    );
    assert!(
        n(&after, "connect_deduplicated") - n(&before, "connect_deduplicated") >= 2,
        "before {before} after {after}"
    );
}

#[test]
fn repeated_connects_are_reported_once_and_counted() {
    let f = fixture();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let before = sent(&f.agent);
    let m = marker("pc-repeat");
    connect(&m, "tcp", "127.0.0.1", port, 20);
    net_event(&f.agent, &m);
    sent(&f.agent);
    let after = sent(&f.agent);
    let events = net_events(&f.agent, &m);
    assert_eq!(events.len(), 1, "{events:?}");
    let dedup = |s: &Value| s["connect_deduplicated"].as_u64().unwrap();
    assert!(
        dedup(&after) - dedup(&before) >= 19,
        "before {before} after {after}"
    );
}

/// Reads the secret, then connects to the namespace's peer until
/// block-egress refuses it.
const READ_THEN_REFUSED_PY: &str = r#"
import socket, sys, time
open(sys.argv[1]).read()
deadline = time.time() + 15
while time.time() < deadline:
    try:
        socket.create_connection(("198.18.77.2", 8080), timeout=5).close()
    except PermissionError:
        print("refused")
        sys.exit(0)
    time.sleep(0.05)
print("never refused")
"#;

#[test]
fn block_egress_still_refuses_and_the_refusal_is_reported() {
    let f = fixture();
    let mut net = TestNet::new();
    net.listen(8080);
    let m = marker("pc-egress");
    let out = Command::new(PYTHON3)
        .arg0(&m)
        .args(["-c", READ_THEN_REFUSED_PY])
        .arg(f.home.path().join(".netrc"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "refused",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let denied = f.agent.wait_for(|e| {
        e["kind"] == "net_connect" && has_arg(e, &m) && e["net"]["result"] == "denied"
    });
    assert_eq!(denied["net"]["errno"], libc::EPERM, "{denied}");
    // Positive control: a process that read no secret is let through.
    let free = marker("pc-egress-free");
    connect(&free, "tcp", "198.18.77.2", 8080, 1);
    let allowed = net_event(&f.agent, &free);
    assert_eq!(allowed["net"]["result"], "success", "{allowed}");
}
