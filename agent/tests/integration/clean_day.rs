//! A normal admin's and developer's day on the default policy is quiet: real packaged tools reading their own credentials give `info`, while cat, python3 and a copied binary reading the same files stay high; local connects after a key read are no exfiltration.

use std::{
    os::unix::{fs::PermissionsExt, process::CommandExt},
    path::PathBuf,
    process::{Command, Stdio},
    sync::OnceLock,
};

use crate::harness::*;
use serde_json::Value;

const KEY_HEX: &str = "3c5e7a9b1d2f4e6a8c0b2d4f6e8a0c2e4a6b7f1c2a9e4b6d8f0a1c3e5a7b9d1f";
const PY: &str = PYTHON3;
/// The packaged git: /usr/local/bin/git on a build machine is no package's file.
const PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// A throwaway user with a home holding an SSH key and git credentials, and
/// an agent started after they exist (so discovery watches them).
struct Day {
    agent: AgentProc,
    user: String,
    home: PathBuf,
    key: PathBuf,
    /// A directory any user may enter, for the copied binary.
    scratch: tempfile::TempDir,
    /// The rpm database the agent reads (empty until a test installs into it).
    rpmdb: PathBuf,
    _state: tempfile::TempDir,
}

/// The throwaway user, removed with its home when the test binary exits
/// (the fixture is a static, which is never dropped).
static USER: OnceLock<(String, PathBuf)> = OnceLock::new();

extern "C" fn remove_user() {
    if let Some((u, base)) = USER.get() {
        let _ = Command::new("userdel").args(["-f", "-r", u]).status();
        let _ = Command::new("rpm")
            .arg("--dbpath")
            .arg(base.join("rpmdb"))
            .args(["-e", "--nodeps", "--noscripts", RPM_NAME])
            .status();
        let _ = std::fs::remove_dir_all(RPM_DIR);
        let _ = std::fs::remove_dir_all(base);
    }
}

/// The test package: a copy of cat installed by rpm as a program named `git`
/// (an expected client of git credentials).
const RPM_NAME: &str = "proctor-clean-day";
const RPM_DIR: &str = "/usr/libexec/proctor-clean-day";

fn sh(cmd: &mut Command) -> String {
    let out = cmd.env("PATH", PATH).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn day() -> &'static Day {
    static D: OnceLock<Day> = OnceLock::new();
    D.get_or_init(|| {
        let user = format!("pqd{}", std::process::id() % 100000);
        // /var/tmp: the user must traverse it (a build machine's /tmp may be 0700).
        let base = tempfile::tempdir_in("/var/tmp").unwrap().keep();
        USER.set((user.clone(), base.clone())).unwrap();
        // SAFETY: registers a plain function; atexit has no other precondition.
        unsafe { libc::atexit(remove_user) };
        std::fs::set_permissions(base.as_path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let home = base.as_path().join(&user);
        sh(Command::new("useradd")
            .args(["-m", "-s", "/bin/sh", "-d"])
            .arg(&home)
            .arg(&user));
        let ssh = home.join(".ssh");
        std::fs::create_dir_all(&ssh).unwrap();
        let key = ssh.join("id_ed25519");
        sh(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "clean-day", "-f"])
            .arg(&key));
        std::fs::write(
            home.join(".git-credentials"),
            "https://dev:clean-day-token@git.example.invalid\n",
        )
        .unwrap();
        std::fs::write(home.join(".gitconfig"), "[credential]\n\thelper = store\n").unwrap();
        sh(Command::new("chown").arg("-R").arg(&user).arg(&home));
        let state = tempfile::tempdir().unwrap();
        let rpmdb = base.join("rpmdb");
        let config = format!(
            // The syscall file hook set: useradd rewrites /etc/shadow under a
            // new inode (write and rename), and userdel reads that one; the
            // page-cache set watches inodes and sees the new one only from
            // the next rescan (docs/security-model.md).
            "status_interval: 1s\n{TEST_METRICS}\
             state_dir: {state}\n\
             kernel:\n  file_hooks: syscall\n\
             fingerprint:\n  key: {KEY_HEX}\n\
             process_table:\n  exit_grace: 5s\n\
             secrets:\n  extra_homes: [{home}]\n  search_dirs: []\n\
             packages:\n  rpm_databases: [{db}]\n",
            state = state.path().display(),
            home = home.display(),
            db = rpmdb.join("rpmdb.sqlite").display(),
        );
        let agent = AgentProc::start(&config);
        let scratch = tempfile::tempdir_in("/var/tmp").unwrap();
        std::fs::set_permissions(scratch.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        Day {
            agent,
            user,
            home,
            key,
            scratch,
            rpmdb,
            _state: state,
        }
    })
}

fn secret_reads<'a>(events: &'a [Value], path: &str) -> impl Iterator<Item = &'a Value> {
    let path = path.to_string();
    events.iter().filter(move |e| {
        e["kind"] == "finding"
            && e["finding"]["rule"] == "secret-read"
            && e["finding"]["secret"]["path"] == path.as_str()
    })
}

fn severity(e: &Value) -> &str {
    e["finding"]["severity"].as_str().unwrap_or("?")
}

fn is_high(e: &Value) -> bool {
    matches!(severity(e), "high" | "critical")
}

/// The secret-read of `path` by a process whose exe is one of `exes` and
/// whose args contain `arg` (or any, when `arg` is empty).
fn wait_read_by(agent: &AgentProc, path: &str, exes: &[&str], arg: &str) -> Value {
    agent.wait_for(|e| {
        e["kind"] == "finding"
            && e["finding"]["rule"] == "secret-read"
            && e["finding"]["secret"]["path"] == path
            && exes.iter().any(|x| e["process"]["exe"]["path"] == *x)
            && (arg.is_empty() || has_arg(e, arg))
    })
}

fn wait_read(agent: &AgentProc, path: &str, exe: &str, arg: &str) -> Value {
    wait_read_by(agent, path, &[exe], arg)
}

/// git runs its store helper as `git credential-store`, found through its
/// exec path: either packaged copy of the git binary.
const GIT: [&str; 2] = ["/usr/lib/git-core/git", "/usr/bin/git"];

fn runuser(user: &str) -> Command {
    let mut c = Command::new("runuser");
    c.args(["-u", user, "--"]);
    c
}

#[test]
fn a_clean_day_of_packaged_tools_is_info_while_cat_python_and_a_copied_binary_stay_high() {
    let d = day();
    let a = &d.agent;
    let key = d.key.to_str().unwrap();
    let creds = d.home.join(".git-credentials");
    let creds = creds.to_str().unwrap();
    let u = d.user.as_str();
    // The admin's part: su, passwd -S, chage -l, a throwaway user added and removed.
    let m = format!("true {}", marker("su"));
    sh(Command::new("su").args(["-l", u, "-c", &m]));
    sh(Command::new("passwd").args(["-S", u]));
    sh(Command::new("chage").args(["-l", u]));
    let other = format!("{u}x");
    sh(Command::new("useradd").args(["-M", "-s", "/usr/sbin/nologin", &other]));
    sh(Command::new("userdel").arg(&other));
    // The developer's part, as the user: their own key and git credentials.
    sh(runuser(u).args(["ssh-keygen", "-y", "-f", key]));
    let mut git = runuser(u);
    git.args([
        "env",
        &format!("HOME={}", d.home.display()),
        "/usr/bin/git",
        "credential",
        "fill",
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped());
    let mut child = git.env("PATH", PATH).spawn().unwrap();
    std::io::Write::write_all(
        child.stdin.as_mut().unwrap(),
        b"protocol=https\nhost=git.example.invalid\n\n",
    )
    .unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("username=dev"),
        "git credential fill did not use the store helper"
    );
    // The same files read by tools whose job it is not.
    let copy = d.scratch.path().join("ssh-keygen");
    copy_exe("/usr/bin/ssh-keygen", &copy);
    sh(runuser(u).arg(&copy).args(["-y", "-f", key]));
    let cat_m = marker("cat");
    sh(Command::new("sh").args(["-c", "cat /etc/shadow > /dev/null", &cat_m]));
    let py_m = marker("py");
    sh(Command::new(PY).args([
        "-c",
        "import sys; [open(p).read() for p in sys.argv[1:-1]]",
        key,
        creds,
        "/etc/shadow",
        &py_m,
    ]));

    // Every expected client's read was seen, as info, naming its package.
    let expected = [
        (
            "/etc/shadow",
            &["/usr/bin/su"][..],
            m.as_str(),
            "util-linux",
        ),
        ("/etc/shadow", &["/usr/bin/passwd"], u, "passwd"),
        ("/etc/shadow", &["/usr/bin/chage"], u, "passwd"),
        (
            "/etc/shadow",
            &["/usr/sbin/useradd"],
            other.as_str(),
            "passwd",
        ),
        (
            "/etc/shadow",
            &["/usr/sbin/userdel"],
            other.as_str(),
            "passwd",
        ),
        (key, &["/usr/bin/ssh-keygen"], key, "openssh-client"),
        (creds, &GIT, "", "git"),
    ];
    for (path, exe, arg, package) in expected {
        // Printed only when the test fails: what is awaited, and the reads seen so far.
        eprintln!("waiting for {exe:?} reading {path}");
        for e in secret_reads(&a.events(), path) {
            eprintln!(
                "  seen: {} {} {} {}",
                e["process"]["exe"],
                e["process"]["args"],
                severity(e),
                e["finding"]["summary"]
            );
        }
        let e = wait_read_by(a, path, exe, arg);
        assert_eq!(severity(&e), "info", "{exe:?} reading {path}: {e}");
        let client = e["finding"]["evidence"]["expected_client"]
            .as_str()
            .unwrap_or("");
        assert!(client.starts_with(&format!("{package}:")), "{exe:?}: {e}");
    }
    // Side by side: cat, python3 and the copied ssh-keygen stay high or critical.
    let cat = a.wait_for(|e| {
        e["finding"]["rule"] == "secret-read"
            && e["finding"]["secret"]["path"] == "/etc/shadow"
            && e["process"]["comm"] == "cat"
            && e["process"]["ppid"].as_u64().is_some()
    });
    assert_eq!(severity(&cat), "critical", "{cat}");
    let copied = wait_read(a, key, copy.to_str().unwrap(), key);
    assert!(
        is_high(&copied),
        "a copied ssh-keygen is no expected client: {copied}"
    );
    assert!(
        copied["finding"]["evidence"]["expected_client"].is_null(),
        "{copied}"
    );
    for path in [key, creds, "/etc/shadow"] {
        let e = wait_read(a, path, "/usr/bin/python3.11", &py_m);
        assert!(is_high(&e), "python3 reading {path}: {e}");
    }

    // Nothing high or critical from any expected client, and no replay of
    // shadow between passwd and chage (the same file read by its own tools).
    let events = a.events();
    let client_exes = [
        "/usr/bin/su",
        "/usr/bin/passwd",
        "/usr/bin/chage",
        "/usr/sbin/useradd",
        "/usr/sbin/userdel",
        "/usr/sbin/runuser",
        "/usr/bin/ssh-keygen",
        "/usr/lib/git-core/git",
        "/usr/bin/git",
    ];
    for path in [key, creds, "/etc/shadow"] {
        for e in secret_reads(&events, path) {
            let exe = e["process"]["exe"]["path"].as_str().unwrap_or("");
            assert!(
                !(client_exes.contains(&exe) && is_high(e)),
                "an expected client's read raised a high finding: {e}"
            );
        }
    }
    for e in events
        .iter()
        .filter(|e| e["finding"]["rule"] == "secret-replay")
    {
        let exe = e["process"]["exe"]["path"].as_str().unwrap_or("");
        assert!(
            !client_exes.contains(&exe),
            "an expected client made a replay: {e}"
        );
    }
    // Replay still works for the foreign readers: python3 after cat bound shadow.
    let replay = a.wait_for(|e| {
        e["finding"]["rule"] == "secret-replay"
            && e["finding"]["secret"]["path"] == "/etc/shadow"
            && has_arg(e, &py_m)
    });
    assert_eq!(severity(&replay), "high", "{replay}");
}

/// A network namespace reached through a veth pair: 198.18.78.1 here,
/// 198.18.78.2 inside (outside every default allowed network).
struct Remote {
    ns: String,
    veth: String,
    _exclusive: std::sync::MutexGuard<'static, ()>,
}

impl Remote {
    fn new() -> Remote {
        let exclusive = exclusive();
        let id = std::process::id() % 100000;
        let (ns, veth, peer) = (format!("pqd-n{id}"), format!("pq{id}h"), format!("pq{id}n"));
        let run = |cmd: String| {
            let st = Command::new("sh").args(["-c", &cmd]).status().unwrap();
            assert!(st.success(), "network set-up failed: {cmd}");
        };
        run(format!("ip netns add {ns}"));
        run(format!("ip link add {veth} type veth peer name {peer}"));
        run(format!("ip link set {peer} netns {ns}"));
        run(format!(
            "ip addr add 198.18.78.1/24 dev {veth} && ip link set {veth} up"
        ));
        run(format!(
            "ip netns exec {ns} sh -c 'ip addr add 198.18.78.2/24 dev {peer} && ip link set {peer} up'"
        ));
        Remote {
            ns,
            veth,
            _exclusive: exclusive,
        }
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.veth])
            .status();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

/// Reads a key, then does what sshd does at start-up (getaddrinfo for its
/// listening port, whose RFC 6724 sort connects UDP sockets to `::` and
/// `0.0.0.0`), connects to loopback, and finally to a real remote peer.
const READ_THEN_CONNECT_PY: &str = r#"
import socket, sys
open(sys.argv[1]).read()
socket.getaddrinfo(None, 2222, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
for fam, addr in ((socket.AF_INET6, "::"), (socket.AF_INET, "0.0.0.0"), (socket.AF_INET, "127.0.0.1")):
    u = socket.socket(fam, socket.SOCK_DGRAM)
    u.connect((addr, 2222))
    u.close()
print("local done", flush=True)
sys.stdin.readline()
t = socket.socket()
t.settimeout(3)
try:
    t.connect(("198.18.78.2", 2222))
except OSError:
    pass
"#;

#[test]
fn a_key_read_then_unspecified_or_loopback_connects_is_no_exfiltration_but_a_remote_peer_is() {
    let d = day();
    let a = &d.agent;
    let remote = Remote::new();
    let m = marker("exfil");
    let mut child = Command::new(PY)
        .args(["-c", READ_THEN_CONNECT_PY, d.key.to_str().unwrap(), &m])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "local done");
    // The hook saw the local connects (positive control), the sshd-like ones included.
    for dst in ["::", "0.0.0.0", "127.0.0.1"] {
        a.wait_for(|e| {
            e["kind"] == "net_connect"
                && e["process"]["pid"] == pid
                && e["net"]["dst_ip"] == dst
                && e["net"]["dst_port"] == 2222
        });
    }
    let read = wait_read(a, d.key.to_str().unwrap(), "/usr/bin/python3.11", &m);
    assert!(is_high(&read), "{read}");
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    let exfil =
        a.wait_for(|e| e["finding"]["rule"] == "secret-exfil" && e["process"]["pid"] == pid);
    assert_eq!(
        exfil["finding"]["evidence"]["destinations"][0], "198.18.78.2:2222",
        "{exfil}"
    );
    let all: Vec<Value> = a
        .events()
        .into_iter()
        .filter(|e| e["finding"]["rule"] == "secret-exfil" && e["process"]["pid"] == pid)
        .collect();
    assert_eq!(all.len(), 1, "only the remote peer counts: {all:?}");
    drop(remote);
}

/// Builds the test package with rpmbuild and installs it with rpm into the
/// day's rpm database: the file lands at `RPM_DIR/git`, owned by root.
fn install_rpm(db: &std::path::Path) -> PathBuf {
    let top = tempfile::tempdir().unwrap();
    let spec = top.path().join("t.spec");
    std::fs::write(
        &spec,
        format!(
            "Name: {RPM_NAME}\nVersion: 1.0\nRelease: 1\nSummary: test\nLicense: MIT\n\
             %description\ntest\n%install\nmkdir -p %{{buildroot}}{RPM_DIR}\n\
             cp /usr/bin/cat %{{buildroot}}{RPM_DIR}/git\n%files\n{RPM_DIR}/git\n"
        ),
    )
    .unwrap();
    let top_def = format!("_topdir {}", top.path().display());
    run_ok(
        Command::new("rpmbuild")
            .args(["--define", &top_def])
            .args([
                "--define",
                "__strip /bin/true",
                "--define",
                "debug_package %{nil}",
            ])
            .args(["--define", "__brp_strip /bin/true"])
            .arg("-bb")
            .arg(&spec),
        "cargo xtask setup (Debian package rpm)",
    );
    let rpm = std::fs::read_dir(top.path().join("RPMS"))
        .unwrap()
        .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap())
        .map(|f| f.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "rpm"))
        .expect("rpmbuild made no package");
    std::fs::create_dir_all(db).unwrap();
    run_ok(
        Command::new("rpm")
            .arg("--dbpath")
            .arg(db)
            .args(["-i", "--nodeps", "--noscripts", "--replacepkgs"])
            .arg(&rpm),
        "cargo xtask setup (Debian package rpm)",
    );
    PathBuf::from(RPM_DIR).join("git")
}

#[test]
fn a_program_installed_by_rpm_is_an_expected_client_and_its_copy_is_not() {
    let d = day();
    let a = &d.agent;
    let creds = d.home.join(".git-credentials");
    let creds = creds.to_str().unwrap();
    // Installed after the agent started: it notices the database change.
    let git = install_rpm(&d.rpmdb);
    let copy = d.scratch.path().join("git");
    copy_exe(&git, &copy);

    let m = marker("rpm-git");
    sh(Command::new(&git).arg0(&m).arg(creds).stdout(Stdio::null()));
    let e = wait_read(a, creds, git.to_str().unwrap(), &m);
    assert_eq!(severity(&e), "info", "{e}");
    assert_eq!(
        e["finding"]["evidence"]["expected_client"],
        format!("{RPM_NAME}:{}", git.display()),
        "{e}"
    );
    // Side by side: the same bytes from a path no package installed.
    let cm = marker("rpm-copy");
    sh(Command::new(&copy)
        .arg0(&cm)
        .arg(creds)
        .stdout(Stdio::null()));
    let c = wait_read(a, creds, copy.to_str().unwrap(), &cm);
    assert!(
        is_high(&c),
        "a copy of an rpm program is no expected client: {c}"
    );
    assert!(c["finding"]["evidence"]["expected_client"].is_null(), "{c}");
}
