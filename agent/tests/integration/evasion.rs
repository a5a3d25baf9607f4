//! Real-kernel tests of monitoring that must not be walked around: a secret
//! opened and read through io_uring, and a connect issued through io_uring,
//! each next to the same thing done with plain syscalls. The io_uring program
//! is `data/uring_helper.rs`, compiled here with rustc (raw io_uring
//! syscalls, no crate). Traffic stays on loopback.

use std::{
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

use crate::harness::*;
use serde_json::Value;

fn fixture() -> &'static HomeAgent {
    static F: OnceLock<HomeAgent> = OnceLock::new();
    F.get_or_init(|| {
        let files = [(
            ".aws/credentials",
            "[default]\naws_access_key_id = AKIAQURINGTEST0001\naws_secret_access_key = uringk\n",
        )];
        HomeAgent::start(&files, |home, state| {
            format!(
                "status_interval: 1s\n{TEST_METRICS}\
                 state_dir: {state}\n\
                 secrets:\n  extra_homes: [{home}]\n  search_dirs: []\n",
                state = state.display(),
                home = home.display(),
            )
        })
    })
}

/// The io_uring helper, built once per test run.
fn helper() -> &'static Path {
    static H: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, bin) = H.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("uring_helper");
        let src = repo_root().join("agent/tests/integration/data/uring_helper.rs");
        let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
        run_ok(
            Command::new(rustc)
                .args(["--edition", "2021", "-O", "-o"])
                .arg(&bin)
                .arg(&src),
            "rustc builds the test helper; it comes with the Rust toolchain",
        );
        (dir, bin)
    });
    bin
}

/// Runs the helper with `m` as argv[0]; returns what it printed.
fn helper_run(m: &str, args: &[&str]) -> String {
    let out = Command::new(helper()).arg0(m).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "helper {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn finding<'a>(events: &'a [Value], rule: &str, m: &str) -> Option<&'a Value> {
    events
        .iter()
        .find(|e| e["kind"] == "finding" && e["finding"]["rule"] == rule && has_arg(e, m))
}

#[test]
fn a_secret_opened_and_read_through_io_uring_is_reported_like_a_plain_open() {
    let f = fixture();
    let aws = f.home.path().join(".aws/credentials");
    let path = aws.to_str().unwrap();

    // Positive control: the plain open, as before.
    let plain = marker("plain-read");
    assert!(helper_run(&plain, &["plain-read", path]).starts_with("read "));
    let open = f
        .agent
        .wait_for(|e| e["kind"] == "file_open" && has_arg(e, &plain));
    assert_eq!(open["file"]["path"], path, "{open}");
    // No io_uring: absent on the open hooks, `page_cache` on the page-cache set.
    assert!(
        open["file"].get("via").is_none() || open["file"]["via"] == "page_cache",
        "{open}"
    );
    f.agent.wait_for(|e| {
        e["kind"] == "finding" && e["finding"]["rule"] == "secret-read" && has_arg(e, &plain)
    });

    // The same read through IORING_OP_OPENAT + IORING_OP_READ.
    let uring = marker("uring-read");
    assert!(helper_run(&uring, &["uring-read", path]).starts_with("read "));
    let open = f
        .agent
        .wait_for(|e| e["kind"] == "file_open" && has_arg(e, &uring));
    assert_eq!(open["file"]["path"], path, "{open}");
    assert_eq!(open["file"]["via"], "io_uring", "{open}");
    assert_eq!(open["file"]["access"], "read", "{open}");
    let read = f.agent.wait_for(|e| {
        e["kind"] == "finding" && e["finding"]["rule"] == "secret-read" && has_arg(e, &uring)
    });
    assert_eq!(
        read["finding"]["secret"]["id"], "aws-cli-credentials",
        "{read}"
    );
    // It went on to read the secret through io_uring: secret-io-uring.
    let carried = f.agent.wait_for(|e| {
        e["kind"] == "finding" && e["finding"]["rule"] == "secret-io-uring" && has_arg(e, &uring)
    });
    assert_eq!(
        carried["finding"]["secret"]["id"], "aws-cli-credentials",
        "{carried}"
    );

    // The plain reader never touched io_uring: no secret-io-uring for it.
    f.agent.status_after(f.agent.last_seq());
    let events = f.agent.events();
    assert!(
        finding(&events, "secret-io-uring", &plain).is_none(),
        "{:?}",
        finding(&events, "secret-io-uring", &plain)
    );
}

#[test]
fn io_uring_on_an_ordinary_file_raises_nothing_but_is_counted() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("notes.txt");
    std::fs::write(&plain, "nothing secret\n").unwrap();
    let before = f.agent.status_after(f.agent.last_seq());
    let m = marker("uring-plain-file");
    assert!(helper_run(&m, &["uring-read", plain.to_str().unwrap()]).starts_with("read "));
    // The hook saw it: the kernel counted this process's first io_uring requests.
    let sent = |s: &Value| s["status"]["kernel"]["sent"]["io_uring"].as_u64().unwrap();
    let mut after = f.agent.status_after(before["seq"].as_u64().unwrap());
    for _ in 0..10 {
        if sent(&after) >= sent(&before) + 2 {
            break;
        }
        after = f.agent.status_after(after["seq"].as_u64().unwrap());
    }
    assert!(
        sent(&after) >= sent(&before) + 2,
        "openat and read were not counted: before {before}, after {after}"
    );
    let events = f.agent.events();
    let noise: Vec<&Value> = events
        .iter()
        .filter(|e| (e["kind"] == "finding" || e["kind"] == "file_open") && has_arg(e, &m))
        .collect();
    assert!(noise.is_empty(), "{noise:?}");
}

#[test]
fn an_io_uring_connect_is_seen_by_the_socket_hook_and_a_plain_one_once() {
    let f = fixture();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();

    let m = marker("uring-connect");
    assert_eq!(
        helper_run(&m, &["uring-connect", "127.0.0.1", &port]),
        "connect 0"
    );
    let ev = f
        .agent
        .wait_for(|e| e["kind"] == "net_connect" && has_arg(e, &m));
    assert_eq!(ev["net"]["observed_by"], "socket_hook", "{ev}");
    assert_eq!(ev["net"]["operation"], "connect", "{ev}");
    assert_eq!(ev["net"]["protocol"], "tcp", "{ev}");
    assert_eq!(ev["net"]["dst_ip"], "127.0.0.1", "{ev}");
    assert_eq!(ev["net"]["dst_port"].to_string(), port, "{ev}");

    // Positive control: connect(2) is reported once, by its tracepoint where
    // the connect path has one, else by the same socket hook.
    let path = f.agent.status_after(0)["status"]["hook_set"]["connect"]
        .as_str()
        .unwrap()
        .to_string();
    let plain_by = if path.starts_with("tracepoint") {
        "syscall"
    } else {
        "socket_hook"
    };
    let plain = marker("plain-connect");
    run(Command::new("/usr/bin/python3").arg0(&plain).args([
        "-c",
        "import socket,sys; socket.create_connection(('127.0.0.1', int(sys.argv[1]))).close()",
        &port,
    ]));
    let ev = f
        .agent
        .wait_for(|e| e["kind"] == "net_connect" && has_arg(e, &plain));
    assert_eq!(ev["net"]["observed_by"], plain_by, "{path}: {ev}");
    assert_eq!(ev["net"]["result"], "success", "{ev}");
    f.agent.status_after(f.agent.last_seq());
    let seen: Vec<Value> = f
        .agent
        .events()
        .into_iter()
        .filter(|e| e["kind"] == "net_connect" && has_arg(e, &plain))
        .collect();
    assert_eq!(seen.len(), 1, "{seen:?}");
}
