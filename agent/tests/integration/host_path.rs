//! Executable paths rest on the host's view: a glob `exe_path` owner and the `proctor:exe-host-path` selector hold only for a path that leads to the exec'd file in the agent's mount namespace, never for one a private mount namespace shows.
//!
//! Each test sets a process that runs the real file at a path beside one
//! that runs another binary bind-mounted over that very path inside a mount
//! namespace the test makes (`unshare --mount`): from inside, both read as
//! the same path.

use std::{
    os::unix::process::CommandExt,
    path::PathBuf,
    process::{Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use crate::harness::*;
use serde_json::Value;

struct Fixture {
    agent: AgentProc,
    home: tempfile::TempDir,
    _state: tempfile::TempDir,
    /// Holds `bin/` (the glob owner's directory), the impostors and the socket.
    dir: tempfile::TempDir,
}

impl Fixture {
    fn bin(&self, name: &str) -> PathBuf {
        self.dir.path().join("bin").join(name)
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("api.sock")
    }
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let home = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        std::fs::write(
            home.path().join(".netrc"),
            "machine example.test login u password netrcsecret\n",
        )
        .unwrap();
        let config = format!(
            "status_interval: 1s\n\
             metrics:\n  listen: 127.0.0.1:0\n\
             api:\n  socket: {socket}\n\
             hash:\n  emit_wait: 5s\n\
             state_dir: {state}\n\
             secrets:\n  extra_homes: [{h}]\n  search_dirs: []\n  rules:\n\
             \x20   - secret: {{id: netrc}}\n\
             \x20     owners: [{{exe_path: \"{d}/bin/*\"}}]\n",
            socket = dir.path().join("api.sock").display(),
            state = state.path().display(),
            h = home.path().display(),
            d = dir.path().display(),
        );
        Fixture {
            agent: AgentProc::start(&config),
            home,
            _state: state,
            dir,
        }
    })
}

/// `script` run by bash in a mount namespace of its own, where mounts do not
/// reach the agent's (host) namespace.
#[test]
fn a_glob_owner_is_the_file_at_its_path_on_the_host_not_a_binary_bind_mounted_there_in_a_private_mount_namespace(
) {
    let f = fixture();
    let netrc = f.home.path().join(".netrc");
    let owner = f.bin("netrc-reader");
    copy_exe("/bin/cat", &owner);

    // The real file at the glob's path, run from the host namespace: owner.
    let m = marker("glob-host");
    let out = Command::new(&owner).arg0(&m).arg(&netrc).output().unwrap();
    assert!(out.status.success(), "{:?}", out.status);
    let ev = read_finding(&f.agent, &m);
    assert_eq!(ev["process"]["exe"]["path_namespace"], "host", "{ev}");
    assert_eq!(ev["finding"]["severity"], "info", "{ev}");

    // Another binary over that path in a private mount namespace: the path
    // reads the same, the file is not the host's.
    let impostor = f.dir.path().join("impostor-tac");
    copy_exe("/usr/bin/tac", &impostor);
    let m = marker("glob-impostor");
    let out = exec_bind_mounted(&impostor, &owner, &m, &[netrc.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "unshare: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ev = read_finding(&f.agent, &m);
    assert_eq!(
        ev["process"]["exe"]["path"],
        owner.to_str().unwrap(),
        "the impostor shows the owner's path: {ev}"
    );
    assert_eq!(ev["process"]["exe"]["path_namespace"], "process", "{ev}");
    assert_eq!(ev["finding"]["severity"], "high", "{ev}");
}

/// The selector values of `pid` from `proctor attest --json`.
fn selectors(f: &Fixture, pid: u32) -> Vec<String> {
    let out = Command::new(proctor_bin())
        .args(["attest", &pid.to_string(), "--json", "--socket"])
        .arg(f.socket())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "attest {pid}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id: Value = serde_json::from_slice(&out.stdout).unwrap();
    id["selectors"]
        .as_array()
        .unwrap_or_else(|| panic!("no selectors: {id:#}"))
        .iter()
        .map(|s| {
            format!(
                "{}:{}",
                s["type"].as_str().unwrap_or(""),
                s["value"].as_str().unwrap_or("")
            )
        })
        .collect()
}

#[test]
fn attest_names_the_host_path_of_a_host_process_and_none_for_a_process_in_a_private_mount_namespace(
) {
    let f = fixture();
    let sleeper = f.bin("sleeper");
    copy_exe("/bin/sleep", &sleeper);
    let impostor = f.dir.path().join("impostor-sleep");
    // A different file (another inode) with the same behaviour.
    copy_exe("/bin/sleep", &impostor);

    let host_m = marker("attest-host");
    let host = Kid(spawn(
        Command::new(&sleeper)
            .arg0(&host_m)
            .arg("60")
            .stdout(Stdio::null()),
    ));
    let ns_m = marker("attest-private");
    let private = Kid(spawn(
        exec_bind_mounted(&impostor, &sleeper, &ns_m, &["60"]).stdout(Stdio::null()),
    ));
    // Both execs judged: the check runs off the event loop, before the
    // exec event goes out (within hash.emit_wait).
    for m in [&host_m, &ns_m] {
        let ev = f.agent.wait_for(|e| is_exec_with(e, m));
        assert_eq!(
            ev["process"]["exe"]["path"],
            sleeper.to_str().unwrap(),
            "{ev}"
        );
    }
    let host_sel = format!("proctor:exe-host-path:{}", sleeper.display());
    let unix_path = format!("unix:path:{}", sleeper.display());
    let t = Instant::now();
    let host_v = loop {
        let v = selectors(f, host.0.id());
        if v.contains(&host_sel) || t.elapsed() > Duration::from_secs(20) {
            break v;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(host_v.contains(&host_sel), "{host_sel} missing: {host_v:?}");
    assert!(host_v.contains(&unix_path), "{host_v:?}");

    let ev = f
        .agent
        .wait_for(|e| is_exec_with(e, &ns_m) && e["process"]["exe"]["path_namespace"] != "pending");
    assert_eq!(ev["process"]["exe"]["path_namespace"], "process", "{ev}");
    let ns_v = selectors(f, private.0.id());
    // SPIRE's unix:path is the process's own name for its binary: it stays.
    assert!(ns_v.contains(&unix_path), "{ns_v:?}");
    assert!(
        !ns_v.iter().any(|s| s.starts_with("proctor:exe-host-path:")),
        "a private mount namespace's path passed for the host's: {ns_v:?}"
    );
}
