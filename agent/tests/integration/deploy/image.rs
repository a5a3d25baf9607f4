//! The container image: built offline with Podman from deploy/container,
//! then `proctor doctor` inside it, and `proctor run` inside it with exactly
//! the least-privilege DaemonSet's capabilities, volumes and security
//! settings, seeing a process started on the host.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use serde_yaml_ng::Value;

use super::*;
use crate::harness::{exclusive, podman_run_base, proctor_bin, run_ok, run_tool, text};

const PODMAN_HINT: &str = "apt-get install podman runc";

fn podman() -> Command {
    Command::new("podman")
}

/// Removes the test image (and a leftover container) however the test ends.
struct ImageGuard {
    tag: String,
    container: String,
}

impl Drop for ImageGuard {
    fn drop(&mut self) {
        let _ = podman()
            .args(["rm", "-f", "-t", "0", &self.container])
            .output();
        let _ = podman().args(["rmi", "-f", &self.tag]).output();
    }
}

/// Capabilities in this process's bounding set (podman cannot grant others).
fn bounding_caps() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0)
}

fn cap_number(name: &str) -> u32 {
    match name {
        "DAC_READ_SEARCH" => 2,
        "NET_ADMIN" => 12,
        "SYS_PTRACE" => 19,
        "SYS_ADMIN" => 21,
        "SYS_RESOURCE" => 24,
        "PERFMON" => 38,
        "BPF" => 39,
        other => panic!("cap_number: add {other}"),
    }
}

fn ensure_host_mount(fstype: &str, target: &str) {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mounted = info.lines().any(|l| {
        let (left, right) = l.split_once(" - ").unwrap_or(("", ""));
        left.split_whitespace().nth(4) == Some(target)
            && right.split_whitespace().next() == Some(fstype)
    });
    if !mounted {
        // A Kubernetes node has them (systemd mounts both); so does this host then.
        run_ok(
            Command::new("mount").args(["-t", fstype, fstype, target]),
            "util-linux",
        );
    }
}

/// `podman run` arguments equivalent to the DaemonSet's pod: its security
/// context, its volumes (host paths the agent writes to replaced by scratch
/// directories), its command line. Returns the arguments and notes on what
/// this machine could not grant.
fn podman_args_for(r: &Rendering, scratch: &Path) -> (Vec<String>, Vec<String>) {
    let ds = r.daemonset();
    let spec = at(ds, "spec.template.spec").unwrap();
    let c = r.container();
    let sc = at(c, "securityContext").unwrap();
    let mut a: Vec<String> = Vec::new();
    let mut notes = Vec::new();
    if at(spec, "hostPID").and_then(Value::as_bool) == Some(true) {
        a.extend(["--pid".into(), "host".into()]);
    }
    if caps(sc, "drop").contains("ALL") {
        a.extend(["--cap-drop".into(), "all".into()]);
    }
    let bnd = bounding_caps();
    for cap in caps(sc, "add") {
        if bnd & (1u64 << cap_number(&cap)) != 0 {
            a.extend(["--cap-add".into(), cap.to_lowercase()]);
        } else {
            notes.push(format!(
                "CAP_{cap} is not in this machine's bounding set; not granted"
            ));
        }
    }
    if at(sc, "readOnlyRootFilesystem").and_then(Value::as_bool) == Some(true) {
        a.push("--read-only".into());
    }
    if at(sc, "allowPrivilegeEscalation").and_then(Value::as_bool) == Some(false) {
        a.extend(["--security-opt".into(), "no-new-privileges".into()]);
    }
    match str_at(sc, "seccompProfile.type") {
        Some("Unconfined") => a.extend(["--security-opt".into(), "seccomp=unconfined".into()]),
        Some("Localhost") => {
            let name = str_at(sc, "seccompProfile.localhostProfile").unwrap_or_default();
            let file = seccomp_profile_file(name);
            a.extend([
                "--security-opt".into(),
                format!("seccomp={}", file.display()),
            ]);
        }
        Some("RuntimeDefault") | None => {}
        Some(other) => panic!("{}: seccomp {other} not handled by this test", r.name),
    }
    if let Some(user) = at(sc, "runAsUser").and_then(Value::as_i64) {
        a.extend(["--user".into(), user.to_string()]);
    }
    for m in seq_at(c, "volumeMounts") {
        let mount = str_at(m, "mountPath").unwrap();
        let ro = at(m, "readOnly").and_then(Value::as_bool).unwrap_or(false);
        let (_, v) = volume_for(r, mount).unwrap();
        let vname = str_at(v, "name").unwrap();
        if let Some(host) = str_at(v, "hostPath.path") {
            // Writable host paths (but the kernel's own, under /sys) become
            // scratch directories: the test must not leave state on the
            // machine's /var/lib/proctor or /run/proctor.
            let created_by_kubelet = str_at(v, "hostPath.type") == Some("DirectoryOrCreate");
            let src = if (ro || host.starts_with("/sys/"))
                && (Path::new(host).exists() || !created_by_kubelet)
            {
                PathBuf::from(host)
            } else {
                // Writable, or missing here (this machine is no kubelet's
                // node): the empty directory the kubelet would create.
                let d = scratch.join(format!("host-{vname}"));
                std::fs::create_dir_all(&d).unwrap();
                d
            };
            let mut opts = vec![if ro { "ro" } else { "rw" }];
            if str_at(m, "mountPropagation") == Some("HostToContainer") {
                opts.push("rslave");
            }
            a.extend([
                "--volume".into(),
                format!("{}:{mount}:{}", src.display(), opts.join(",")),
            ]);
        } else if let Some(cm) = str_at(v, "configMap.name") {
            let obj = r
                .objects
                .iter()
                .find(|o| kind_of(o) == "ConfigMap" && name_of(o) == cm)
                .unwrap();
            let d = scratch.join(format!("configmap-{vname}"));
            std::fs::create_dir_all(&d).unwrap();
            for (k, val) in at(obj, "data").and_then(Value::as_mapping).unwrap() {
                std::fs::write(d.join(k.as_str().unwrap()), val.as_str().unwrap()).unwrap();
            }
            a.extend(["--volume".into(), format!("{}:{mount}:ro", d.display())]);
        } else if str_at(v, "secret.secretName").is_some() {
            // What the operator creates: `--from-literal=key=$(openssl rand -hex 32)`.
            let d = scratch.join(format!("secret-{vname}"));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("key"), "5eed".repeat(16)).unwrap();
            a.extend(["--volume".into(), format!("{}:{mount}:ro", d.display())]);
        } else if at(v, "emptyDir").is_some() {
            a.extend(["--tmpfs".into(), mount.to_string()]);
        } else {
            panic!(
                "{}: volume {vname} of a kind this test cannot reproduce",
                r.name
            );
        }
    }
    (a, notes)
}

/// `$(NAME)` in a container arg, as the kubelet expands it from the
/// container's env: literal values, and `status.podIP` as the container's
/// only address here (`--network none`: loopback). Anything else is left
/// as written, as the kubelet leaves an unknown reference.
fn kubelet_expand(c: &Value, arg: &str) -> String {
    let mut out = arg.to_string();
    for e in seq_at(c, "env") {
        let Some(name) = str_at(e, "name") else {
            continue;
        };
        let value = match (
            str_at(e, "value"),
            str_at(e, "valueFrom.fieldRef.fieldPath"),
        ) {
            (Some(v), _) => v,
            (None, Some("status.podIP")) => "127.0.0.1",
            _ => continue,
        };
        out = out.replace(&format!("$({name})"), value);
    }
    out
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn wait_for_logs(
    container: &str,
    deadline: Duration,
    pred: impl Fn(&str) -> bool,
) -> (bool, String) {
    let start = Instant::now();
    loop {
        let o = podman()
            .args(["logs", container])
            .output()
            .expect("podman logs");
        let out = format!(
            "{}\n--- stderr ---\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        if pred(&String::from_utf8_lossy(&o.stdout)) {
            return (true, out);
        }
        let state = podman()
            .args([
                "inspect",
                "--format",
                "{{.State.Status}} {{.State.ExitCode}}",
                container,
            ])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        if start.elapsed() > deadline || !state.starts_with("running") {
            return (false, format!("container state: {state}\n{out}"));
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn container_image_builds_offline_runs_doctor_and_runs_as_the_daemonset_would() {
    // An image build takes both CPUs: not beside a storm that counts its drops.
    let _machine = exclusive();
    let tag = format!("localhost/proctor:test-{}", std::process::id());
    let container = format!("proctor-deploy-test-{}", std::process::id());
    let _guard = ImageGuard {
        tag: tag.clone(),
        container: container.clone(),
    };
    let scratch = tempfile::tempdir().unwrap();
    let ctx = scratch.path().join("context");

    // 1. Build: rootfs from the binary under test and its ldd libraries, then
    //    `podman build` from scratch (no registry).
    let start = Instant::now();
    run_ok(
        Command::new("sh")
            .arg(deploy().join("container/build-rootfs.sh"))
            .arg("--binary")
            .arg(proctor_bin())
            .arg(&ctx),
        "libc-bin (ldd), binutils (objcopy)",
    );
    run_ok(
        podman()
            .args([
                "build",
                // No cached intermediate images: removing the tag removes all.
                "--layers=false",
                "--network",
                "none",
                "--runtime",
                "runc",
                "-t",
                &tag,
                "-f",
            ])
            .arg(deploy().join("container/Containerfile"))
            .arg(&ctx),
        PODMAN_HINT,
    );
    eprintln!("image {tag} built in {:.1}s", start.elapsed().as_secs_f64());
    let o = run_ok(
        podman().args([
            "image",
            "inspect",
            "--format",
            "{{json .Config.Entrypoint}} {{json .Config.Cmd}}",
            &tag,
        ]),
        PODMAN_HINT,
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        r#"["/usr/bin/proctor"] ["run"]"#,
        "image entrypoint and command"
    );

    // 2. `proctor doctor` inside it: exits 0 or 1 by the kernel, prints its table.
    let o = run_tool(
        podman_run_base().args(["--rm", "--privileged", &tag, "doctor"]),
        PODMAN_HINT,
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        matches!(o.status.code(), Some(0) | Some(1))
            && stdout.contains("btf")
            && stdout.contains("privileges"),
        "`proctor doctor` in the image did not print its table:\n{}",
        text(&o)
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("btf") && l.contains(" ok ")),
        "doctor in the image cannot read the kernel BTF:\n{stdout}"
    );

    // 3. `proctor run` as the least-privilege DaemonSet runs it: same
    //    capabilities, seccomp, read-only root, host PID namespace, volumes
    //    and config. It must see a process started on the host.
    ensure_host_mount("tracefs", "/sys/kernel/tracing");
    let lp = rendering("overlays/least-privilege");
    let (args, notes) = podman_args_for(lp, scratch.path());
    for n in &notes {
        eprintln!("note: {n}");
    }
    let cmd: Vec<String> = seq_at(lp.container(), "args")
        .iter()
        .map(|v| kubelet_expand(lp.container(), v.as_str().unwrap()))
        .collect();
    let mut run_cmd = podman_run_base();
    run_cmd
        .args(["-d", "--name", &container])
        .args(&args)
        .arg(&tag)
        .args(&cmd);
    let shown = format!("{run_cmd:?}");
    let o = run_tool(&mut run_cmd, PODMAN_HINT);
    assert!(o.status.success(), "{shown}\nfailed:\n{}", text(&o));

    let (started, logs) = wait_for_logs(&container, Duration::from_secs(60), |out| {
        out.lines().any(|l| l.contains("\"agent_status\""))
    });
    assert!(
        started,
        "the agent did not start under the least-privilege settings\n({shown}):\n{logs}"
    );
    let marker = format!("deploy-test-marker-{}", std::process::id());
    let (seen, logs) = {
        let start = Instant::now();
        loop {
            // A host process the agent cannot have seen at start-up.
            let _ = Command::new("/bin/sh")
                .args(["-c", "exit 0", &marker])
                .status();
            let r = wait_for_logs(&container, Duration::from_secs(2), |out| {
                out.lines()
                    .any(|l| l.contains("\"process_exec\"") && l.contains(&marker))
            });
            if r.0 || start.elapsed() > Duration::from_secs(30) {
                break r;
            }
        }
    };
    assert!(seen, "the least-privilege agent in the container did not report a host exec ({marker})\n({shown}):\n{logs}");
    let plain = strip_ansi(&logs);
    let bad: Vec<&str> = plain
        .lines()
        .filter(|l| l.contains(" ERROR ") || l.contains("Operation not permitted"))
        .collect();
    assert!(
        bad.is_empty(),
        "the least-privilege agent logged errors:\n{}",
        bad.join("\n")
    );
    let o = run_tool(podman().args(["stop", "-t", "20", &container]), PODMAN_HINT);
    assert!(o.status.success(), "podman stop:\n{}", text(&o));
    let o = run_ok(
        podman().args(["inspect", "--format", "{{.State.ExitCode}}", &container]),
        PODMAN_HINT,
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "0",
        "the agent must exit 0 on SIGTERM (probes detached, events flushed)"
    );

    // 4. Control: the profile is really in force. The same run under a copy
    //    of it without `bpf` cannot create its first map.
    let profile = args
        .iter()
        .find_map(|a| a.strip_prefix("seccomp="))
        .expect("the least-privilege overlay names a seccomp profile");
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(profile).unwrap()).unwrap();
    for rule in json["syscalls"].as_array_mut().unwrap() {
        if let Some(names) = rule["names"].as_array_mut() {
            names.retain(|n| n != "bpf");
        }
    }
    let no_bpf = scratch.path().join("no-bpf.json");
    std::fs::write(&no_bpf, json.to_string()).unwrap();
    let control_args: Vec<String> = args
        .iter()
        .map(|a| {
            if a.starts_with("seccomp=") {
                format!("seccomp={}", no_bpf.display())
            } else {
                a.clone()
            }
        })
        .collect();
    let o = run_tool(
        podman_run_base()
            .arg("--rm")
            .args(&control_args)
            .arg(&tag)
            .args(&cmd),
        PODMAN_HINT,
    );
    assert!(
        !o.status.success() && text(&o).contains("Operation not permitted"),
        "without bpf in the seccomp profile the agent must fail to load (the profile is applied):\n{}",
        text(&o)
    );
}
