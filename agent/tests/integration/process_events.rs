//! Real-kernel tests of the process lifecycle probes: every assertion is about
//! events the running agent produced for real processes these tests spawned.

use std::{ffi::CString, io::Write, os::unix::process::CommandExt, path::Path, process::Command};

use crate::harness::*;

fn cgroup2_root() -> std::path::PathBuf {
    proctor::kernel::mounts::cgroup2_mount().expect("cgroup2 is mounted")
}

/// A cgroup the test creates and removes, so the expected id and path are known.
struct TestCgroup {
    dir: std::path::PathBuf,
    rel: String,
}

impl TestCgroup {
    fn new(name: &str) -> Self {
        let rel = format!("/proctor-test-{name}-{}", std::process::id());
        let dir = cgroup2_root().join(rel.trim_start_matches('/'));
        std::fs::create_dir_all(&dir).unwrap();
        Self { dir, rel }
    }

    fn id(&self) -> u64 {
        ino_dev(&self.dir).0
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.dir);
    }
}

#[test]
fn exec_of_known_binary_reports_path_args_ids_cgroup_and_hash() {
    let agent = shared();
    let m = marker("known");
    let cg = TestCgroup::new("known");
    let procs = cg.dir.join("cgroup.procs");
    let mut cmd = Command::new("/bin/echo");
    cmd.arg(&m).arg("second arg");
    // Join the cgroup between fork and exec, so the exec happens inside it.
    unsafe {
        cmd.pre_exec(move || {
            std::fs::write(&procs, b"0")?;
            Ok(())
        })
    };
    let pid = run(&mut cmd);

    let ev = agent.wait_for(|e| is_exec_with(e, &m));
    let p = &ev["process"];
    assert_eq!(ev["schema"], "proctor.event/v1");
    assert!(ev["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(p["pid"], pid);
    assert_eq!(p["ppid"], std::process::id());
    assert_eq!(p["uid"], unsafe { libc::getuid() });
    assert_eq!(p["gid"], unsafe { libc::getgid() });
    assert_eq!(p["args"], serde_json::json!(["/bin/echo", m, "second arg"]));
    assert_eq!(p["args_redacted"], false);
    assert_eq!(p["comm"], "echo");
    let echo = resolve("/bin/echo");
    assert_eq!(p["exe"]["path"], echo.to_str().unwrap());
    assert_eq!(p["exe"]["sha256"], sha256_file(&echo));
    assert_eq!(p["exe"]["hash_status"], "ok");
    let (ino, dev) = ino_dev(&echo);
    assert_eq!(p["exe"]["inode"], ino);
    assert_eq!(p["exe"]["dev"], dev);
    assert_eq!(p["exe"]["fileless"], false);
    assert_eq!(p["exe"]["deleted"], false);
    assert_eq!(p["cgroup"]["id"], cg.id());
    assert_eq!(p["cgroup"]["path"], cg.rel.as_str());
    assert_eq!(p["attestation"], "kernel-exec");
    assert_eq!(p["exec_id"].as_str().unwrap().len(), 32);
    // The test process was running before the agent: its exec is the parent.
    assert!(p["parent_exec_id"].is_string(), "{ev}");

    let exit =
        agent.wait_for(|e| e["kind"] == "process_exit" && e["process"]["exec_id"] == p["exec_id"]);
    assert_eq!(exit["exit"]["code"], 0);
    assert!(exit["seq"].as_u64() > ev["seq"].as_u64());
}

#[test]
fn credentials_on_command_lines_never_reach_the_event() {
    let agent = shared();
    let m = marker("redact");
    // (argv after the program, what the event must show).
    let lines: &[(&str, &[&str], &[&str])] = &[
        (
            "/bin/echo",
            &[
                "--password=S3cret",
                "https://u:S3cret@db.invalid/x",
                "--token",
                "S3cret",
            ],
            &[
                "--password=<redacted>",
                "https://u:<redacted>@db.invalid/x",
                "--token",
                "<redacted>",
            ],
        ),
        (
            "/bin/echo",
            &["Authorization: Bearer S3cret", "db_password=S3cret"],
            &["Authorization: Bearer <redacted>", "db_password=<redacted>"],
        ),
        (
            "/bin/sh",
            &[
                "-c",
                "exit 0; mysql -uroot -pS3cret; curl -u u:S3cret x",
                "sh",
            ],
            &[
                "-c",
                "exit 0; mysql -uroot -p<redacted>; curl -u u:<redacted> x",
                "sh",
            ],
        ),
    ];
    for (i, (program, args, shown)) in lines.iter().enumerate() {
        let tag = format!("{m}-{i}");
        run(Command::new(program).args(*args).arg(&tag));
        let ev = agent.wait_for(|e| is_exec_with(e, &tag));
        let p = &ev["process"];
        let mut want = vec![program.to_string()];
        want.extend(shown.iter().map(|s| s.to_string()));
        want.push(tag.clone());
        assert_eq!(p["args"], serde_json::json!(want), "{ev}");
        assert_eq!(p["args_redacted"], true, "{ev}");
        assert!(!ev.to_string().contains("S3cret"), "{ev}");
    }
}

#[test]
fn script_and_interpreter_both_identified() {
    let agent = shared();
    let m = marker("script");
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("hello.sh");
    write_exe(&script, "#!/bin/sh\nexit 3\n");
    run(Command::new(&script).arg(&m));

    let ev = agent.wait_for(|e| is_exec_with(e, &m));
    let p = &ev["process"];
    let sh = resolve("/bin/sh");
    assert_eq!(p["exe"]["path"], sh.to_str().unwrap(), "{ev}");
    assert_eq!(p["exe"]["inode"], ino_dev(&sh).0);
    assert_eq!(p["exe"]["sha256"], sha256_file(&sh));
    let interp = &p["interpreter"];
    assert_eq!(interp["path"], "/bin/sh");
    assert_eq!(interp["script"]["path"], script.to_str().unwrap());
    assert_eq!(interp["script"]["sha256"], sha256_file(&script));
    assert_eq!(interp["script"]["inode"], ino_dev(&script).0);
    let exit =
        agent.wait_for(|e| e["kind"] == "process_exit" && e["process"]["exec_id"] == p["exec_id"]);
    assert_eq!(exit["exit"]["code"], 3);
}

#[test]
fn binary_overwritten_in_place_gets_a_new_hash() {
    let agent = shared();
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("tool");
    copy_exe("/bin/true", &bin);
    let first_hash = sha256_file(&bin);
    let m1 = marker("overwrite1");
    run(Command::new(&bin).arg(&m1));
    let e1 = agent.wait_for(|e| is_exec_with(e, &m1));

    // Same inode, different content.
    let other = std::fs::read("/bin/false").unwrap();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&bin)
        .unwrap();
    f.write_all(&other).unwrap();
    drop(f);
    let second_hash = sha256_file(&bin);
    assert_ne!(first_hash, second_hash);
    let m2 = marker("overwrite2");
    run(Command::new(&bin).arg(&m2));
    let e2 = agent.wait_for(|e| is_exec_with(e, &m2));

    assert_eq!(e1["process"]["exe"]["inode"], e2["process"]["exe"]["inode"]);
    assert_eq!(e1["process"]["exe"]["sha256"], first_hash, "{e1}");
    assert_eq!(e2["process"]["exe"]["sha256"], second_hash, "{e2}");
}

/// Opens `path` without O_CLOEXEC so a child can exec it through /proc/self/fd.
fn open_inheritable(path: &Path) -> i32 {
    let c = CString::new(path.to_str().unwrap()).unwrap();
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY) };
    assert!(fd >= 0, "open {}", path.display());
    fd
}

#[test]
fn unlinked_executable_is_flagged_and_never_hashed_as_another_file() {
    let agent = shared();
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("vanishing");
    copy_exe("/bin/sleep", &bin);
    let want = sha256_file(&bin);
    let fd = open_inheritable(&bin);
    std::fs::remove_file(&bin).unwrap();
    // A different file now sits at the old path.
    copy_exe("/bin/true", &bin);
    let m = marker("unlinked");
    run(Command::new(format!("/proc/self/fd/{fd}"))
        .arg0(&m)
        .arg("0.5"));
    unsafe { libc::close(fd) };

    let ev = agent.wait_for(|e| is_exec_with(e, &m));
    let exe = &ev["process"]["exe"];
    assert_eq!(exe["deleted"], true, "{ev}");
    assert_eq!(exe["fileless"], false, "{ev}");
    // Alive for half a second: the agent hashes it through /proc/<pid>/exe.
    assert_eq!(exe["sha256"], want.as_str(), "{ev}");
    assert_ne!(exe["sha256"], sha256_file(&bin).as_str());
}

#[test]
fn memfd_exec_is_fileless() {
    let agent = shared();
    let content = std::fs::read("/bin/sleep").unwrap();
    let want = sha256_file(Path::new("/bin/sleep"));
    let name = CString::new("proctor-test-memfd").unwrap();
    let fd = unsafe { libc::memfd_create(name.as_ptr(), 0) };
    assert!(fd >= 0);
    let mut f = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    f.write_all(&content).unwrap();
    let m = marker("memfd");
    run(Command::new(format!("/proc/self/fd/{fd}"))
        .arg0(&m)
        .arg("0.5"));
    drop(f);

    let ev = agent.wait_for(|e| is_exec_with(e, &m));
    let exe = &ev["process"]["exe"];
    assert_eq!(exe["fileless"], true, "{ev}");
    assert_eq!(exe["deleted"], false, "{ev}");
    assert!(
        exe["path"]
            .as_str()
            .unwrap()
            .starts_with("memfd:proctor-test-memfd"),
        "{ev}"
    );
    assert_eq!(exe["sha256"], want.as_str(), "{ev}");
}

#[test]
fn pid_reuse_gives_a_new_exec_id() {
    let agent = shared();
    let ma = marker("reuse-a");
    let pid_a = run(Command::new("/bin/true").arg(&ma));
    let mut pid_b = 0;
    let mb = marker("reuse-b");
    // Ask the kernel for the same pid again: ns_last_pid makes the next fork
    // take pid_a unless another process races us, so retry a few times.
    for _ in 0..200 {
        std::fs::write("/proc/sys/kernel/ns_last_pid", format!("{}", pid_a - 1)).unwrap();
        let pid = run(Command::new("/bin/echo").arg(&mb));
        if pid == pid_a {
            pid_b = pid;
            break;
        }
    }
    assert_eq!(pid_b, pid_a, "could not get pid {pid_a} reused");
    let a = agent.wait_for(|e| is_exec_with(e, &ma));
    let b = agent.wait_for(|e| is_exec_with(e, &mb) && e["process"]["pid"] == pid_a);
    assert_eq!(a["process"]["pid"], b["process"]["pid"]);
    assert_ne!(a["process"]["exec_id"], b["process"]["exec_id"]);
    assert_ne!(a["process"]["exe"]["sha256"], b["process"]["exe"]["sha256"]);
}

#[test]
fn bad_config_is_a_clear_error() {
    let out = Command::new(proctor_bin())
        .args(["run", "--config", "/nonexistent/proctor.yaml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/proctor.yaml"), "{err}");

    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(b"status_interval: 1s\nhash:\n  workerz: 2\n")
        .unwrap();
    let out = Command::new(proctor_bin())
        .args(["run", "--config"])
        .arg(f.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("workerz") && err.contains(":3:"), "{err}");
}

#[test]
fn processes_started_before_the_agent_are_scanned() {
    let m = marker("prescan");
    let mut child = Command::new("/bin/sh")
        .args(["-c", "sleep 30; exit 0", &m])
        .spawn()
        .unwrap();
    let agent = AgentProc::start(TEST_CONFIG);
    child.kill().unwrap();
    child.wait().unwrap();
    let exit = agent.wait_for(|e| e["kind"] == "process_exit" && has_arg(e, &m));
    let p = &exit["process"];
    assert_eq!(p["attestation"], "procfs-scan");
    assert_eq!(p["pid"], child.id());
    assert_eq!(p["exe"]["sha256"], sha256_file(&resolve("/bin/sh")));
    assert_eq!(exit["exit"]["signal"], libc::SIGKILL);
}

#[test]
fn sigterm_detaches_every_program() {
    let agent = AgentProc::start(TEST_CONFIG);
    let started =
        agent.wait_for(|e| e["kind"] == "agent_status" && e["status"]["state"] == "started");
    let ids: Vec<u32> = started["status"]["hooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_u64().unwrap() as u32)
        .collect();
    let hooks: Vec<&str> = started["status"]["hooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["hook"].as_str().unwrap())
        .collect();
    for want in [
        "tp_btf/sched_process_exec",
        "tp_btf/sched_process_fork",
        "tp_btf/sched_process_exit",
    ] {
        assert!(hooks.contains(&want), "{want} not attached: {hooks:?}");
    }
    // File access through whichever set this kernel allows.
    assert!(
        hooks.iter().any(|h| [
            "tp_btf/mm_filemap_get_pages",
            "lsm/file_open",
            "tracepoint/syscalls/sys_exit_openat"
        ]
        .contains(h)),
        "no file-access hook attached: {hooks:?}"
    );
    let loaded = || -> Vec<u32> {
        aya::programs::loaded_programs()
            .filter_map(Result::ok)
            .map(|p| p.id())
            .collect()
    };
    assert!(ids.iter().all(|id| loaded().contains(id)));
    let status = agent.stop();
    assert!(status.success(), "agent exit status {status}");
    agent.wait_for(|e| e["kind"] == "agent_status" && e["status"]["state"] == "stopped");
    // The kernel frees a program after its last fd closes, via RCU: give it a moment.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let still = loop {
        let still: Vec<u32> = ids
            .iter()
            .copied()
            .filter(|id| loaded().contains(id))
            .collect();
        if still.is_empty() || std::time::Instant::now() > deadline {
            break still;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(
        still.is_empty(),
        "programs {still:?} still loaded 10s after the agent exited"
    );
}

/// Processes placed in cgroups where the kubelet (both drivers) with
/// containerd or CRI-O, Docker and Podman put containers get the right
/// container and pod (forged placements: `forgery.rs`).
#[test]
fn container_and_pod_from_runtime_shaped_cgroups() {
    let agent = shared();
    let (uid, id) = pod_and_container_ids("runtime-shaped");
    let uid = uid.as_str();
    let uid_us = uid.replace('-', "_");
    let cases = [
        (format!("kubepods/burstable/pod{uid}/{id}"), "containerd", Some(uid)),
        (
            format!("kubepods.slice/kubepods-pod{uid_us}.slice/cri-containerd-{id}.scope"),
            "containerd",
            Some(uid),
        ),
        (
            format!("kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_us}.slice/crio-{id}.scope"),
            "cri-o",
            Some(uid),
        ),
        (format!("system.slice/docker-{id}.scope"), "docker", None),
        (format!("libpod_parent/libpod-{id}"), "podman", None),
    ];
    for (rel, runtime, pod) in cases {
        let cg = PlacedCgroup::new(&rel);
        let m = marker("cg");
        run(cg.command("/bin/true").arg(&m));
        let ev = agent.wait_for(|e| is_exec_with(e, &m));
        let p = &ev["process"];
        assert_eq!(p["container"]["runtime"], runtime, "{rel}: {ev}");
        assert_eq!(p["container"]["id"], id.as_str(), "{rel}: {ev}");
        match pod {
            Some(u) => assert_eq!(p["pod"]["uid"], u, "{rel}: {ev}"),
            None => assert!(p["pod"].is_null(), "{rel}: {ev}"),
        }
        assert_eq!(p["cgroup"]["path"], cg.rel.as_str());
    }
}

#[test]
fn metrics_health_and_readiness_move_with_real_events() {
    let agent = shared();
    let started =
        agent.wait_for(|e| e["kind"] == "agent_status" && e["status"]["state"] == "started");
    let addr = started["status"]["metrics_listen"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(http_get(&addr, "/healthz").0, 200);
    assert_eq!(http_get(&addr, "/readyz").0, 200);
    let (code, before) = http_get(&addr, "/metrics");
    assert_eq!(code, 200);
    // Well-formed exposition: every sample line is `name{labels} value`, with HELP/TYPE.
    assert!(before.contains("# TYPE proctor_events counter"), "{before}");
    assert!(before.trim_end().ends_with("# EOF"));
    for l in before
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (_, v) = l
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line {l:?}"));
        v.parse::<f64>()
            .unwrap_or_else(|_| panic!("bad value in {l:?}"));
    }
    let execs = |t: &str| sample(t, r#"proctor_events_total{kind="process_exec"}"#);
    let kernel = |t: &str| sample(t, r#"proctor_kernel_records_total{kind="exec"}"#);
    let m = marker("metrics");
    for _ in 0..5 {
        run(Command::new("/bin/true").arg(&m));
    }
    agent.wait_for(|e| is_exec_with(e, &m));
    // The kernel mirror refreshes every 2 s.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (_, after) = http_get(&addr, "/metrics");
        if execs(&after) >= execs(&before) + 5.0 && kernel(&after) >= kernel(&before) + 5.0 {
            assert!(sample(&after, r#"proctor_processes{state="live"}"#) > 0.0);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "counters did not move:\n{after}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// `proctor attest` against the real agent's API socket: the identity of a
/// live process comes from the kernel's exec record.
#[test]
fn attest_cli_answers_from_the_kernel_exec_record() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("api.sock");
    let config = format!(
        "status_interval: 1s\nmetrics:\n  listen: 127.0.0.1:0\napi:\n  socket: {}\n",
        socket.display()
    );
    let agent = AgentProc::start(&config);
    let m = marker("attest");
    let mut child = Command::new("/bin/sleep")
        .arg("30")
        .arg0(&m)
        .spawn()
        .unwrap();
    agent.wait_for(|e| is_exec_with(e, &m));
    let attest = |pid: &str| {
        Command::new(proctor_bin())
            .args(["attest", pid, "--json", "--socket"])
            .arg(&socket)
            .output()
            .unwrap()
    };
    let out = attest(&child.id().to_string());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let text = id.to_string();
    let sleep_hash = sha256_file(&resolve("/bin/sleep"));
    assert!(text.contains(&format!("sha256:{sleep_hash}")), "{id:#}");
    assert!(text.contains("kernel-exec"), "{id:#}");
    assert!(
        text.contains(&format!("uid:{}", unsafe { libc::getuid() })),
        "{id:#}"
    );

    child.kill().unwrap();
    child.wait().unwrap();
    agent.wait_for(|e| e["kind"] == "process_exit" && has_arg(e, &m));
    let gone = attest(&child.id().to_string());
    assert!(!gone.status.success());
    assert!(
        String::from_utf8_lossy(&gone.stderr)
            .to_lowercase()
            .contains("not"),
        "{gone:?}"
    );
    let bad = attest("0");
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr).to_lowercase();
    assert!(err.contains("invalid") || err.contains("argument"), "{err}");
}

/// A real container: Podman runs an image built here from busybox-static
/// (no registry); the container id the agent reports is Podman's.
#[test]
fn podman_container_gets_its_container_id() {
    let agent = shared();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("rootfs");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    copy_exe("/bin/busybox", root.join("bin/busybox"));
    for applet in ["sh", "sleep"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    let tar = dir.path().join("rootfs.tar");
    let ok = |cmd: &mut Command| {
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    ok(Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg("."));
    let image = format!("localhost/proctor-test-bb:{}", std::process::id());
    ok(Command::new("podman")
        .args(["import", "-q"])
        .arg(&tar)
        .arg(&image));
    struct Cleanup(String, Option<String>);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            if let Some(c) = &self.1 {
                let _ = Command::new("podman").args(["rm", "-f", c]).output();
            }
            let _ = Command::new("podman").args(["rmi", "-f", &self.0]).output();
        }
    }
    let mut cleanup = Cleanup(image.clone(), None);
    let m = marker("podman");
    let id = ok(podman_run_base().args(["-d", &image, "/bin/sh", "-c", "sleep 3", &m]));
    cleanup.1 = Some(id.clone());
    // The podman CLI carries the marker too; the container's own shell is the one.
    let ev = agent.wait_for(|e| is_exec_with(e, &m) && e["process"]["comm"] == "sh");
    let p = &ev["process"];
    assert_eq!(p["container"]["runtime"], "podman", "{ev}");
    assert_eq!(p["container"]["id"], id.as_str(), "{ev}");
    assert_eq!(
        p["exe"]["sha256"],
        sha256_file(Path::new("/bin/busybox")),
        "{ev}"
    );
    let inspect = ok(Command::new("podman").args(["inspect", "--format", "{{.Id}}", &id]));
    assert_eq!(inspect, id);
}
