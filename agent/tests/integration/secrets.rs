//! Real-kernel tests of static-secret monitoring: real files (in a temporary
//! home the agent is told about, and in real well-known locations the tests
//! create and remove), real readers, real findings.

use std::{
    ffi::CString,
    io::Write,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
    time::{Duration, Instant},
};

use crate::harness::*;
use proctor::secrets::fingerprint::Fingerprinter;
use serde_json::Value;

/// Test key for fingerprints (inline in the config, like a cluster-wide key).
const KEY_HEX: &str = "7f1c2a9e4b6d8f0a1c3e5a7b9d1f2e4c6a8b0d2f4e6a8c0b2d4f6e8a0c2e4a6b";

/// Fake credentials, assembled at run time so no credential-shaped literal
/// sits in the source.
fn fake_aws_secret() -> String {
    format!("{}{}", "q8Rz0Lk3Vw7Tn2", "Hy5Bc9Xm4Ps1Dj6Gf0Ua8Ei3Oq")
}
fn fake_aws_id() -> String {
    format!("{}{}", "AKIA", "Z7QX2M4V9K3J8P1R")
}
fn fake_github_token() -> String {
    format!("{}{}", "ghp_", "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z5A")
}

struct Fixture {
    agent: AgentProc,
    home: tempfile::TempDir,
    state: tempfile::TempDir,
    owner_cat: PathBuf,
}

fn aws_credentials() -> String {
    format!(
        "[default]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
        fake_aws_id(),
        fake_aws_secret()
    )
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| start_fixture(""))
}

/// The same agent on the `syscall` file hook set, for what only an open
/// shows: the path argument as passed (`requested_path`), the name of a
/// hard link that is not the catalogued one, write-only opens, and files
/// created after start before the next rescan. The default set on this
/// kernel (page-cache) sees reads, not opens (docs/security-model.md).
fn syscall_fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| start_fixture("kernel:\n  file_hooks: syscall\n"))
}

fn start_fixture(kernel: &str) -> Fixture {
    {
        let home = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        let aws = home.path().join(".aws");
        std::fs::create_dir_all(&aws).unwrap();
        std::fs::write(aws.join("credentials"), aws_credentials()).unwrap();
        for (name, content) in [
            (".netrc", "machine example.invalid login u password p4ss\n"),
            (".pgpass", "localhost:5432:db:u:pw1\n"),
            (".git-credentials", "https://u:tok@example.invalid\n"),
            (".vault-token", "s.testtesttesttest\n"),
        ] {
            std::fs::write(home.path().join(name), content).unwrap();
        }
        // A copy of cat that policy names as the owner of the AWS credentials.
        let bin = home.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let owner_cat = bin.join("owner-cat");
        copy_exe("/bin/cat", &owner_cat);
        let config = format!(
            "status_interval: 1s\n{TEST_METRICS}{kernel}\
             state_dir: {state}\n\
             fingerprint:\n  key: {KEY_HEX}\n\
             process_table:\n  exit_grace: 5s\n\
             secrets:\n  extra_homes: [{home}]\n  search_dirs: []\n  rules:\n\
             \x20   - secret: {{id: aws-cli-credentials}}\n\
             \x20     owners: [{{exe_path: {owner}}}]\n",
            state = state.path().display(),
            home = home.path().display(),
            owner = owner_cat.display(),
        );
        let agent = AgentProc::start(&config);
        Fixture {
            agent,
            home,
            state,
            owner_cat,
        }
    }
}

fn fingerprint_of(content: &[u8]) -> String {
    Fingerprinter::from_hex(KEY_HEX)
        .unwrap()
        .fingerprint(content)
}

/// No raw secret value anywhere in what the agent printed or stored.
fn assert_no_leak(agent: &AgentProc, state: &Path, values: &[String]) {
    let out: String = agent
        .events()
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    let err = agent.stderr();
    for v in values {
        assert!(
            !out.contains(v.as_str()),
            "a raw secret value appears in the agent's events"
        );
        assert!(
            !err.contains(v.as_str()),
            "a raw secret value appears in the agent's logs"
        );
    }
    for entry in walk(state) {
        let bytes = std::fs::read(&entry).unwrap_or_default();
        for v in values {
            assert!(
                !bytes.windows(v.len()).any(|w| w == v.as_bytes()),
                "a raw secret value appears in state file {}",
                entry.display()
            );
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn cat_of_aws_credentials_is_a_secret_read_with_kernel_identity() {
    let f = fixture();
    let creds = f.home.path().join(".aws/credentials");
    let m = marker("cat");
    run(Command::new("/bin/cat").arg(&creds).arg0(&m));
    let ev = read_finding(&f.agent, &m);
    let finding = &ev["finding"];
    assert_eq!(finding["secret"]["id"], "aws-cli-credentials");
    assert_eq!(finding["secret"]["kind"], "cloud_credentials");
    assert_eq!(
        finding["secret"]["fingerprint"],
        fingerprint_of(aws_credentials().as_bytes())
    );
    assert_eq!(finding["severity"], "high", "non-owner read: {ev}");
    assert!(finding["mitre"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t == "T1552.001"));
    assert_eq!(ev["file"]["path"], creds.to_str().unwrap());
    let p = &ev["process"];
    assert_eq!(p["exe"]["sha256"], sha256_file(&resolve("/bin/cat")));
    assert!(p["cgroup"]["id"].as_u64().unwrap() > 0);
    // The file_open event the finding rests on came right before it.
    let seq = finding["evidence"]["event_seqs"][0].as_u64().unwrap();
    let open = f.agent.wait_for(|e| e["seq"] == seq);
    assert_eq!(open["kind"], "file_open");
    assert_eq!(open["file"]["access"], "read");
    assert_no_leak(
        &f.agent,
        f.state.path(),
        &[fake_aws_secret(), fake_aws_id()],
    );
}

#[test]
fn owner_read_is_info() {
    let f = fixture();
    let m = marker("owner");
    run(Command::new(&f.owner_cat)
        .arg(f.home.path().join(".aws/credentials"))
        .arg0(&m));
    let ev = read_finding(&f.agent, &m);
    assert_eq!(ev["finding"]["severity"], "info", "{ev}");
    assert!(ev["finding"]["summary"].as_str().unwrap().contains("owner"));
}

#[test]
fn traversal_relative_paths_and_dirfd_resolve_to_the_real_path() {
    let f = syscall_fixture();
    let creds = f.home.path().join(".aws/credentials");
    let want = creds.to_str().unwrap();

    let m1 = marker("traversal");
    let dotted = f.home.path().join(".aws/../.aws/./credentials");
    run(Command::new("/bin/cat").arg(&dotted).arg0(&m1));
    let e1 = read_finding(&f.agent, &m1);
    assert_eq!(e1["file"]["path"], want);
    assert_eq!(e1["file"]["requested_path"], dotted.to_str().unwrap());

    let m2 = marker("relative");
    run(Command::new("/bin/cat")
        .arg("./credentials")
        .current_dir(f.home.path().join(".aws"))
        .arg0(&m2));
    let e2 = read_finding(&f.agent, &m2);
    assert_eq!(e2["file"]["path"], want);
    assert_eq!(e2["file"]["requested_path"], "./credentials");

    // openat(dirfd, "credentials") from this very process.
    let dir = CString::new(f.home.path().join(".aws").to_str().unwrap()).unwrap();
    let name = CString::new("credentials").unwrap();
    let dfd = unsafe { libc::open(dir.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY) };
    let fd = unsafe { libc::openat(dfd, name.as_ptr(), libc::O_RDONLY) };
    assert!(dfd >= 0 && fd >= 0);
    unsafe {
        libc::close(fd);
        libc::close(dfd);
    }
    let me = std::process::id();
    f.agent.wait_for(|e| {
        e["kind"] == "finding"
            && e["process"]["pid"] == me
            && e["file"]["requested_path"] == "credentials"
            && e["file"]["path"] == want
    });
}

#[test]
fn hard_link_cp_and_dd_reads_are_caught() {
    let f = syscall_fixture();
    let creds = f.home.path().join(".aws/credentials");
    let link_dir = tempfile::tempdir_in(f.home.path()).unwrap();
    let link = link_dir.path().join("innocent.txt");
    std::fs::hard_link(&creds, &link).unwrap();
    let m = marker("link");
    run(Command::new("/bin/cat").arg(&link).arg0(&m));
    let ev = read_finding(&f.agent, &m);
    assert_eq!(ev["finding"]["secret"]["id"], "aws-cli-credentials");
    assert_eq!(ev["file"]["path"], link.to_str().unwrap());
    assert_eq!(ev["finding"]["secret"]["path"], creds.to_str().unwrap());

    let copy = link_dir.path().join("copy");
    let mc = marker("cp");
    run(Command::new("/bin/cp").arg(&creds).arg(&copy).arg0(&mc));
    read_finding(&f.agent, &mc);
    let md = marker("dd");
    run(Command::new("/bin/dd")
        .arg(format!("if={}", creds.display()))
        .arg("of=/dev/null")
        .arg0(&md));
    read_finding(&f.agent, &md);
}

#[test]
fn write_only_open_is_not_a_read() {
    let f = syscall_fixture();
    let target = f.home.path().join(".vault-token");
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&target)
        .unwrap();
    file.write_all(b"").unwrap();
    drop(file);
    let me = std::process::id();
    let open = f.agent.wait_for(|e| {
        e["kind"] == "file_open"
            && e["process"]["pid"] == me
            && e["file"]["path"] == target.to_str().unwrap()
    });
    assert_eq!(open["file"]["access"], "write");
    // Nothing that rests on that open is a read finding.
    let seq = open["seq"].clone();
    let later = f.agent.status_after(f.agent.last_seq());
    assert!(later["seq"].as_u64() > seq.as_u64());
    assert!(!f.agent.events().iter().any(|e| {
        e["kind"] == "finding"
            && e["finding"]["evidence"]["event_seqs"]
                .as_array()
                .is_some_and(|s| s.contains(&seq))
    }));
}

#[test]
fn secret_created_after_start_is_picked_up() {
    let f = syscall_fixture();
    let kube = f.home.path().join(".kube");
    std::fs::create_dir_all(&kube).unwrap();
    let cfg = kube.join("config");
    std::fs::write(
        &cfg,
        "apiVersion: v1\nkind: Config\nusers:\n- name: u\n  user:\n    token: abc\n",
    )
    .unwrap();
    let m = marker("newkube");
    run(Command::new("/bin/cat").arg(&cfg).arg0(&m));
    let ev = read_finding(&f.agent, &m);
    assert_eq!(ev["finding"]["secret"]["id"], "kubeconfig-user");

    // Rewritten with a new inode (as `aws configure` and editors do).
    let creds = f.home.path().join(".aws/credentials");
    let tmp = f.home.path().join(".aws/credentials.tmp");
    let rotated = aws_credentials().replace("0000", "1111");
    std::fs::write(&tmp, &rotated).unwrap();
    std::fs::rename(&tmp, &creds).unwrap();
    let m2 = marker("rotated");
    run(Command::new("/bin/cat").arg(&creds).arg0(&m2));
    let ev = read_finding(&f.agent, &m2);
    assert_eq!(
        ev["finding"]["secret"]["fingerprint"],
        fingerprint_of(rotated.as_bytes())
    );
    // Put the original back for the other tests.
    std::fs::write(&tmp, aws_credentials()).unwrap();
    std::fs::rename(&tmp, &creds).unwrap();
}

/// The projected service-account token layout kubelet writes, in its real place.
#[test]
fn kubernetes_token_swapped_by_symlink_rename() {
    // Files created after start under a watched name: an open hook's case.
    let f = syscall_fixture();
    let base = Path::new("/run/secrets/kubernetes.io/serviceaccount");
    let created_root = !Path::new("/run/secrets").exists();
    std::fs::create_dir_all(base).unwrap();
    struct Cleanup(bool);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all("/run/secrets/kubernetes.io");
            if self.0 {
                let _ = std::fs::remove_dir("/run/secrets");
            }
        }
    }
    let _cleanup = Cleanup(created_root);
    let gen1 = base.join("..2026_11_23_01");
    std::fs::create_dir_all(&gen1).unwrap();
    std::fs::write(gen1.join("token"), "eyJ.test-token-one.sig").unwrap();
    std::os::unix::fs::symlink("..2026_11_23_01", base.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/token", base.join("token")).unwrap();

    let m1 = marker("sa1");
    run(Command::new("/bin/cat").arg(base.join("token")).arg0(&m1));
    let e1 = read_finding(&f.agent, &m1);
    assert_eq!(e1["finding"]["secret"]["id"], "k8s-service-account-token");
    assert_eq!(
        e1["finding"]["secret"]["fingerprint"],
        fingerprint_of(b"eyJ.test-token-one.sig")
    );

    // Rotation: new directory, new ..data symlink renamed over the old one.
    let gen2 = base.join("..2026_11_23_02");
    std::fs::create_dir_all(&gen2).unwrap();
    std::fs::write(gen2.join("token"), "eyJ.test-token-two.sig").unwrap();
    std::os::unix::fs::symlink("..2026_11_23_02", base.join("..data_tmp")).unwrap();
    std::fs::rename(base.join("..data_tmp"), base.join("..data")).unwrap();
    std::fs::remove_dir_all(&gen1).unwrap();
    let m2 = marker("sa2");
    run(Command::new("/bin/cat").arg(base.join("token")).arg0(&m2));
    let e2 = read_finding(&f.agent, &m2);
    assert_eq!(
        e2["finding"]["secret"]["fingerprint"],
        fingerprint_of(b"eyJ.test-token-two.sig")
    );
    assert_eq!(
        e2["file"]["path"],
        "/run/secrets/kubernetes.io/serviceaccount/..2026_11_23_02/token"
    );
}

#[test]
fn etc_shadow_through_dot_dot() {
    let f = fixture();
    let m = marker("shadow");
    run(Command::new("/bin/cat").arg("/etc/../etc/shadow").arg0(&m));
    let ev = read_finding(&f.agent, &m);
    assert_eq!(ev["file"]["path"], "/etc/shadow");
    assert_eq!(ev["finding"]["secret"]["id"], "shadow");
    assert!(ev["finding"]["mitre"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t == "T1003.008"));
}

#[test]
fn many_unwatched_opens_produce_no_events() {
    // 100k opens load both CPUs: not beside a storm that counts its drops.
    let _machine = exclusive();
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("ordinary-file.txt");
    std::fs::write(&plain, b"nothing to see").unwrap();
    for _ in 0..100_000 {
        drop(std::fs::File::open(&plain).unwrap());
    }
    // Positive control in the same run: the open hook is attached and
    // reporting, so the silence about the plain file means something.
    let m = marker("unwatched-control");
    run(Command::new("/bin/cat")
        .arg(f.home.path().join(".pgpass"))
        .arg0(&m));
    let control = read_finding(&f.agent, &m);
    assert_eq!(control["finding"]["secret"]["id"], "pgpass", "{control}");
    // Let the agent drain, then look.
    f.agent.status_after(f.agent.last_seq());
    f.agent.status_after(f.agent.last_seq());
    let p = plain.to_str().unwrap();
    assert!(!f
        .agent
        .events()
        .iter()
        .any(|e| e["file"]["path"] == p || e.to_string().contains("ordinary-file.txt")));
}

#[test]
fn environment_secrets_are_found_without_their_values() {
    let f = fixture();
    let m = marker("env");
    let mut child = Command::new("/bin/sleep")
        .arg("3")
        .arg0(&m)
        .env("AWS_ACCESS_KEY_ID", fake_aws_id())
        .env("AWS_SECRET_ACCESS_KEY", fake_aws_secret())
        .env("GITHUB_TOKEN", fake_github_token())
        .spawn()
        .unwrap();
    let gh = f.agent.wait_for(|e| {
        e["kind"] == "finding"
            && e["finding"]["rule"] == "secret-env"
            && has_arg(e, &m)
            && e["finding"]["secret"]["variable"] == "GITHUB_TOKEN"
    });
    assert_eq!(
        gh["finding"]["secret"]["fingerprint"],
        fingerprint_of(fake_github_token().as_bytes())
    );
    f.agent.wait_for(|e| {
        e["kind"] == "finding"
            && e["finding"]["rule"] == "secret-env"
            && has_arg(e, &m)
            && e["finding"]["secret"]["variable"]
                .as_str()
                .is_some_and(|v| v.starts_with("AWS_"))
    });
    child.wait().unwrap();
    assert_no_leak(
        &f.agent,
        f.state.path(),
        &[fake_github_token(), fake_aws_secret(), fake_aws_id()],
    );
}

#[test]
fn credential_discovery_is_a_secret_search() {
    let f = fixture();
    let h = f.home.path();
    let m = marker("search");
    run(Command::new("/bin/cat")
        .args([
            h.join(".aws/credentials"),
            h.join(".netrc"),
            h.join(".pgpass"),
            h.join(".git-credentials"),
            h.join(".vault-token"),
        ])
        .arg0(&m));
    let ev = f.agent.wait_for(|e| {
        e["kind"] == "finding" && e["finding"]["rule"] == "secret-search" && has_arg(e, &m)
    });
    assert_eq!(
        ev["finding"]["evidence"]["paths"].as_array().unwrap().len(),
        5
    );

    let m2 = marker("find");
    run(Command::new("/usr/bin/find")
        .args([h.to_str().unwrap(), "-name", "id_rsa"])
        .arg0(&m2));
    // argv[0] is the marker, so comm is still "find" only through the binary name.
    f.agent.wait_for(|e| {
        e["kind"] == "finding"
            && e["finding"]["rule"] == "secret-search"
            && e["process"]["comm"] == "find"
            && has_arg(e, "id_rsa")
    });
}

#[test]
fn read_by_a_deleted_binary_is_escalated() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("reader");
    copy_exe("/bin/cat", &bin);
    let c = CString::new(bin.to_str().unwrap()).unwrap();
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY) };
    std::fs::remove_file(&bin).unwrap();
    let m = marker("deleted-reader");
    run(Command::new(format!("/proc/self/fd/{fd}"))
        .arg(f.home.path().join(".aws/credentials"))
        .arg0(&m));
    unsafe { libc::close(fd) };
    let ev = read_finding(&f.agent, &m);
    assert_eq!(ev["finding"]["severity"], "critical", "{ev}");
    assert!(ev["finding"]["evidence"]["escalation"]
        .as_str()
        .unwrap()
        .contains("deleted"));
    f.agent.wait_for(|e| {
        e["kind"] == "finding" && e["finding"]["rule"] == "untrusted-binary" && has_arg(e, &m)
    });
}

/// A home holding AWS credentials, a state directory, and the config of an
/// agent that watches the one and keeps its inventory in the other.
struct InventoryCase {
    _home: tempfile::TempDir,
    state: tempfile::TempDir,
    creds: PathBuf,
    cfg_file: PathBuf,
    config: String,
}

impl InventoryCase {
    /// `more`: config sections besides `secrets` (kernel, sinks).
    fn new(more: &str) -> Self {
        let home = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(home.path().join(".aws")).unwrap();
        let creds = home.path().join(".aws/credentials");
        std::fs::write(&creds, aws_credentials()).unwrap();
        let config = format!(
            "status_interval: 1s\n{TEST_METRICS}state_dir: {}\nfingerprint:\n  key: {KEY_HEX}\n{more}secrets:\n  extra_homes: [{}]\n  search_dirs: []\n",
            state.path().display(),
            home.path().display()
        );
        let cfg_file = state.path().join("test-config.yaml");
        std::fs::write(&cfg_file, &config).unwrap();
        Self {
            _home: home,
            state,
            creds,
            cfg_file,
            config,
        }
    }

    /// The credentials' item in `proctor inventory --json`, if listed.
    fn item(&self) -> Option<Value> {
        let out = proctor_ok([
            "inventory".as_ref(),
            "--json".as_ref(),
            "--config".as_ref(),
            self.cfg_file.as_os_str(),
        ]);
        let text = String::from_utf8_lossy(&out).to_string();
        assert!(!text.contains(&fake_aws_secret()));
        let items: Value = serde_json::from_str(&text).unwrap();
        items
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["path"] == self.creds.to_str().unwrap())
            .cloned()
    }
}

#[test]
fn inventory_survives_a_restart() {
    let case = InventoryCase::new("");
    let (config, state, creds) = (&case.config, &case.state, &case.creds);
    let m = marker("inv");
    let cat = resolve("/bin/cat");
    let inventory = || {
        case.item()
            .unwrap_or_else(|| panic!("{creds:?} not in inventory"))
    };
    let cat_reads = |item: &Value| {
        item["readers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["exe_path"] == cat.to_str().unwrap())
            .map(|r| r["count"].as_u64().unwrap())
            .sum::<u64>()
    };
    {
        let agent = AgentProc::start(config);
        run(Command::new("/bin/cat").arg(creds).arg0(&m));
        read_finding(&agent, &m);
        // Reads are batched in memory: a running agent writes them within
        // a fraction of a second, and a stopping one writes what is left.
        let deadline = Instant::now() + Duration::from_secs(10);
        while cat_reads(&inventory()) == 0 {
            assert!(
                Instant::now() < deadline,
                "the read never reached the inventory"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let m2 = marker("inv-last");
        run(Command::new("/bin/cat").arg(creds).arg0(&m2));
        read_finding(&agent, &m2);
        assert!(agent.stop().success());
        assert_no_leak(&agent, state.path(), &[fake_aws_secret(), fake_aws_id()]);
    }
    let agent = AgentProc::start(config);
    let item = inventory();
    assert_eq!(item["catalog_id"], "aws-cli-credentials");
    assert_eq!(
        item["fingerprint"],
        fingerprint_of(aws_credentials().as_bytes())
    );
    assert_eq!(cat_reads(&item), 2, "{item}");
    assert!(item["rotation_age_seconds"].is_u64());
    drop(agent);
}

/// Another connection holds the inventory's write lock for longer than
/// SQLite's busy timeout while a process reads a secret 40000 times: the
/// agent's event path does not wait for the file (its ring buffer, 1 MiB
/// here, holds well under a second of those reads, so a wait of the busy
/// timeout on the event path lost records), and once the lock is gone every
/// read reaches the inventory.
#[test]
fn a_locked_inventory_holds_up_no_event_and_loses_no_read() {
    const READS: u64 = 40_000;
    // Every read a record (no folding), and only status events on stdout:
    // the findings of 40000 reads would be 80000 lines for the harness.
    let case = InventoryCase::new(
        "kernel:\n  ring_buffer_bytes: 1048576\n  repeat_window: 0s\nsinks:\n  - type: stdout\n    kinds: [agent_status]\n",
    );
    let (state, creds) = (&case.state, &case.creds);
    let agent = AgentProc::start(&case.config);
    // `python_on` runs the python3 of PATH, wherever it lives.
    let python_reads = || {
        case.item().map_or(0, |i| {
            i["readers"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| r["exe_path"].as_str().unwrap().contains("/python3"))
                .map(|r| r["count"].as_u64().unwrap())
                .sum::<u64>()
        })
    };
    // The secret is in the inventory before the lock is taken.
    let deadline = Instant::now() + Duration::from_secs(30);
    while case.item().is_none() {
        assert!(
            Instant::now() < deadline,
            "the secret never reached the inventory"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let holder = rusqlite::Connection::open(state.path().join("inventory.db")).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let out = python_on(
        &marker("locked-inventory"),
        creds,
        &format!(
            "import os, sys, time\n\
             fd = os.open(sys.argv[1], os.O_RDONLY)\n\
             t0 = time.monotonic()\n\
             for i in range({READS}):\n\
             \x20   os.pread(fd, 1, 0)\n\
             \x20   if i % 500 == 499:\n\
             \x20       ahead = t0 + (i + 1) / 10000 - time.monotonic()\n\
             \x20       if ahead > 0:\n\
             \x20           time.sleep(ahead)\n"
        ),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A status taken after the reads, with the lock still held.
    let status = agent.status_after(agent.last_seq());
    let status = agent.status_after(status["seq"].as_u64().unwrap());
    assert_eq!(
        status["status"]["kernel"]["dropped"]["total"], 0,
        "{status}"
    );
    assert!(
        agent.stderr_shows("the write is retried"),
        "the lock did hold the agent's writes back: {}",
        agent.stderr()
    );
    holder.execute_batch("COMMIT").unwrap();
    drop(holder);

    let deadline = Instant::now() + Duration::from_secs(60);
    let mut got = python_reads();
    while got < READS {
        assert!(
            Instant::now() < deadline,
            "{got} of {READS} reads reached the inventory: {}",
            agent.stderr()
        );
        std::thread::sleep(Duration::from_millis(200));
        got = python_reads();
    }
    assert_eq!(got, READS);
    let status = agent.status_after(agent.last_seq());
    assert_eq!(status["status"]["secrets"]["store_errors"], 0, "{status}");
}

#[test]
fn policy_check_points_at_the_line() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(
        b"secrets:\n  rules:\n    - secret: {id: aws-cli-credentials}\n      owners: [{exe_sha256: nothex}]\n",
    )
    .unwrap();
    let out = Command::new(proctor_bin())
        .args(["policy", "check"])
        .arg(f.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(":4:") && err.contains("SHA-256"), "{err}");

    let mut ok = tempfile::NamedTempFile::new().unwrap();
    ok.write_all(crate_default_config().as_bytes()).unwrap();
    proctor_ok(["policy".as_ref(), "check".as_ref(), ok.path().as_os_str()]);
}

fn crate_default_config() -> &'static str {
    proctor::config::DEFAULT_CONFIG
}
