//! What the agent writes and serves is not readable by everyone: the state
//! dir, every file in it, sink spools and file sinks are owner-only (0700 dirs,
//! 0600 files; 0640 and the configured group for a sink read by a log
//! shipper) even when the agent is started with umask 022, looser leftovers
//! are tightened, and /metrics listens on loopback unless told otherwise.

use std::{
    net::Ipv4Addr,
    os::unix::{
        fs::{MetadataExt, PermissionsExt},
        process::CommandExt,
    },
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use crate::harness::*;

const WAIT: Duration = Duration::from_secs(60);

/// A permissive umask in the test process (which the agent inherits), so
/// that owner-only modes prove the agent sets them itself. Returns a
/// positive control: the mode a file created by the test gets.
fn permissive_umask(dir: &Path) -> u32 {
    // SAFETY: umask(2) cannot fail; the tests of this binary create their
    // files with explicit modes or do not care about group/other bits.
    unsafe { libc::umask(0o022) };
    let probe = dir.join("umask-probe");
    std::fs::write(&probe, b"").unwrap();
    let m = mode(&probe);
    std::fs::remove_file(&probe).unwrap();
    m
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// Every entry under `dir` (recursively) with its mode, `dir` first.
fn tree(dir: &Path) -> Vec<(PathBuf, bool, u32)> {
    let mut out = vec![(dir.to_path_buf(), true, mode(dir))];
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        // A file renamed away meanwhile (delivered.tmp) is not there to judge.
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            out.extend(tree(&p));
        } else {
            out.push((p, false, meta.permissions().mode() & 0o7777));
        }
    }
    out
}

fn listing(t: &[(PathBuf, bool, u32)]) -> String {
    t.iter()
        .map(|(p, d, m)| format!("  {m:04o} {}{}", p.display(), if *d { "/" } else { "" }))
        .collect::<Vec<_>>()
        .join("\n")
}

fn gid_of(group: &str) -> u32 {
    std::fs::read_to_string("/etc/group")
        .unwrap()
        .lines()
        .find_map(|l| {
            let mut f = l.split(':');
            (f.next() == Some(group)).then(|| f.nth(1)?.parse().ok())?
        })
        .unwrap_or_else(|| panic!("group {group} is not in /etc/group (Debian has it)"))
}

fn wait_until<T>(what: &str, agent: &AgentProc, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; agent stderr:\n{}",
            agent.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn state_spool_and_sink_files_are_owner_only_under_a_permissive_umask() {
    let tmp = tempfile::tempdir().unwrap();
    assert_eq!(
        permissive_umask(tmp.path()),
        0o644,
        "positive control: under umask 022 a plain create is 0644"
    );
    let state = tmp.path().join("state");
    let private_sink = tmp.path().join("private/events.jsonl");
    let shipped_sink = tmp.path().join("shipped/events.jsonl");
    let adm = gid_of("adm");
    let down = free_port(); // nothing listens there: its events go to the spool
    let config = format!(
        "node_name: exposure-modes\nstatus_interval: 1s\nstate_dir: {}\n{TEST_METRICS}shutdown_grace: 1s\n\
         sinks:\n  - type: stdout\n  - {{type: file, name: private, path: {}}}\n  \
         - {{type: file, name: shipped, path: {}, group: adm}}\n  \
         - {{type: syslog, name: down, transport: tcp, address: '127.0.0.1:{down}', \
         kinds: [process_exec], queue_events: 2}}\n",
        state.display(),
        private_sink.display(),
        shipped_sink.display(),
    );
    let agent = AgentProc::start(&config);
    let m = marker("exposure");
    for i in 0..20 {
        run(Command::new("/bin/true").arg(&m).arg(i.to_string()));
    }
    let last = agent.wait_for(|e| is_exec_with(e, &m) && has_arg(e, "19"));
    // Events reached both file sinks and the down sink's spool.
    wait_until(
        "the marker in both sink files and a spool segment",
        &agent,
        || {
            let in_file = |p: &Path| {
                std::fs::read_to_string(p).is_ok_and(|t| t.contains(&m) && t.contains("\"19\""))
            };
            let segs = std::fs::read_dir(state.join("spool/down"))
                .ok()?
                .filter(|e| {
                    e.as_ref()
                        .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".seg"))
                })
                .count();
            (in_file(&private_sink) && in_file(&shipped_sink) && segs > 0).then_some(())
        },
    );

    let t = tree(&state);
    let names: Vec<String> = t
        .iter()
        .map(|(p, _, _)| p.strip_prefix(&state).unwrap().display().to_string())
        .collect();
    // The walk is not vacuous: the files every agent writes are there.
    for want in ["seq", "inventory.db", "fingerprint.key", "spool/down/lock"] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} not in the state dir (last event {last}):\n{}",
            listing(&t)
        );
    }
    assert!(names
        .iter()
        .any(|n| n.starts_with("spool/down/") && n.ends_with(".seg")));
    let loose: Vec<_> = t
        .iter()
        .filter(|(_, dir, m)| *m != if *dir { 0o700 } else { 0o600 })
        .collect();
    assert!(
        loose.is_empty(),
        "entries of the state dir that are not 0700 (dirs) / 0600 (files):\n{}\nwhole state dir:\n{}",
        listing(&loose.into_iter().cloned().collect::<Vec<_>>()),
        listing(&t)
    );

    assert_eq!(mode(&private_sink), 0o600, "{}", private_sink.display());
    assert_eq!(
        mode(private_sink.parent().unwrap()),
        0o700,
        "the private sink's directory"
    );
    let shipped = std::fs::metadata(&shipped_sink).unwrap();
    assert_eq!(
        (mode(&shipped_sink), shipped.gid()),
        (0o640, adm),
        "the sink with `group: adm`: 0640, group adm ({adm})"
    );
    let dir = std::fs::metadata(shipped_sink.parent().unwrap()).unwrap();
    assert_eq!(
        (dir.permissions().mode() & 0o7777, dir.gid()),
        (0o750, adm),
        "the shipped sink's directory: 0750, group adm, so the shipper can reach the file"
    );
    agent.stop();
}

#[test]
fn looser_state_dir_spool_and_sink_file_left_behind_are_tightened() {
    let tmp = tempfile::tempdir().unwrap();
    permissive_umask(tmp.path());
    let state = tmp.path().join("state");
    let spool = state.join("spool/file");
    std::fs::create_dir_all(&spool).unwrap();
    let sink = tmp.path().join("events.jsonl");
    // As an agent of before left them: the umask's modes.
    std::fs::write(state.join("seq"), "0\n").unwrap();
    std::fs::write(spool.join("delivered"), "0\n").unwrap();
    std::fs::write(&sink, "{\"earlier\":true}\n").unwrap();
    for d in [&state, &state.join("spool"), &spool] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    for f in [&state.join("seq"), &spool.join("delivered"), &sink] {
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let before = tree(&state);
    assert!(
        before
            .iter()
            .all(|(_, d, m)| *m == if *d { 0o755 } else { 0o644 }),
        "positive control: the leftovers start loose:\n{}",
        listing(&before)
    );

    let config = format!(
        "node_name: exposure-tighten\nstatus_interval: 1s\nstate_dir: {}\n{TEST_METRICS}\
         sinks:\n  - type: stdout\n  - {{type: file, path: {}}}\n",
        state.display(),
        sink.display()
    );
    let agent = AgentProc::start(&config);
    let m = marker("tighten");
    run(Command::new("/bin/true").arg(&m));
    agent.wait_for(|e| is_exec_with(e, &m));
    let text = wait_until("the marker in the sink file", &agent, || {
        std::fs::read_to_string(&sink)
            .ok()
            .filter(|t| t.contains(&m))
    });
    assert!(
        text.starts_with("{\"earlier\":true}\n"),
        "the sink file was appended to, not replaced:\n{text}"
    );
    assert_eq!(mode(&sink), 0o600, "the sink file left 0644");
    let t = tree(&state);
    let loose: Vec<_> = t
        .iter()
        .filter(|(_, dir, m)| *m != if *dir { 0o700 } else { 0o600 })
        .cloned()
        .collect();
    assert!(
        loose.is_empty(),
        "still loose after start:\n{}\nwhole state dir:\n{}",
        listing(&loose),
        listing(&t)
    );
    assert!(
        agent.stderr_shows(&format!(
            "{} was mode 0755: tightened to 0700",
            state.display()
        )),
        "no warning naming the state dir that was tightened; stderr:\n{}",
        agent.stderr()
    );
    agent.stop();
}

// ------------------------------------------------------------ metrics ----

/// pre_exec: the agent in a network namespace of its own with loopback up,
/// so that it can take the default port 9464 whatever else runs here.
fn own_network_namespace(cmd: &mut Command) {
    // SAFETY: only async-signal-safe calls (unshare, socket, ioctl, close)
    // between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::unshare(libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let mut ifr: libc::ifreq = std::mem::zeroed();
            ifr.ifr_name[0] = b'l' as libc::c_char;
            ifr.ifr_name[1] = b'o' as libc::c_char;
            let up = libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut ifr) == 0 && {
                ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
                libc::ioctl(fd, libc::SIOCSIFFLAGS, &ifr) == 0
            };
            let err = std::io::Error::last_os_error();
            libc::close(fd);
            if up {
                Ok(())
            } else {
                Err(err)
            }
        });
    }
}

/// The TCP sockets listening in `pid`'s network namespace on `port`, from
/// /proc/<pid>/net/tcp and tcp6 (address as the kernel has it).
fn listeners(pid: u32, port: u16) -> Vec<String> {
    let mut out = Vec::new();
    for (file, v6) in [("tcp", false), ("tcp6", true)] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{file}")).unwrap();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(&"0A")) = (f.get(1), f.get(3)) else {
                continue;
            };
            let Some((addr, p)) = local.split_once(':') else {
                continue;
            };
            if u16::from_str_radix(p, 16) != Ok(port) {
                continue;
            }
            out.push(if v6 {
                format!("[{addr}]:{port}")
            } else {
                // The kernel prints the network-order address as a native u32.
                let n = u32::from_str_radix(addr, 16).unwrap();
                format!("{}:{port}", Ipv4Addr::from(n.to_ne_bytes()))
            });
        }
    }
    out
}

#[test]
fn metrics_listen_on_loopback_by_default_and_on_the_address_given() {
    let config = "node_name: exposure-metrics\nstatus_interval: 1s\napi:\n  enabled: false\n";
    let agent = AgentProc::start_with(config, own_network_namespace);
    let status = agent.wait_for(|e| e["kind"] == "agent_status");
    assert_eq!(
        status["status"]["metrics_listen"], "127.0.0.1:9464",
        "agent_status names the default listen address: {status}"
    );
    assert_eq!(
        listeners(agent.pid(), 9464),
        ["127.0.0.1:9464"],
        "the agent's only listener on 9464 must be loopback"
    );
    let (code, body) = {
        // The endpoint answers in its namespace: enter it with nsenter.
        let o = run_ok(
            Command::new("nsenter")
                .arg(format!("--net=/proc/{}/ns/net", agent.pid()))
                .args(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}"])
                .arg("http://127.0.0.1:9464/healthz"),
            "util-linux nsenter and curl",
        );
        (String::from_utf8_lossy(&o.stdout).to_string(), text(&o))
    };
    assert_eq!(code, "200", "GET /healthz on loopback: {body}");
    agent.stop();

    // Positive control for the reading above: a wildcard bind shows as such.
    let wide = AgentProc::start_with(config, |cmd| {
        own_network_namespace(cmd);
        cmd.args(["--metrics-listen", "0.0.0.0:9464"]);
    });
    wide.wait_for(|e| {
        e["kind"] == "agent_status" && e["status"]["metrics_listen"] == "0.0.0.0:9464"
    });
    assert_eq!(
        listeners(wide.pid(), 9464),
        ["0.0.0.0:9464"],
        "--metrics-listen 0.0.0.0:9464"
    );
    wide.stop();
}
