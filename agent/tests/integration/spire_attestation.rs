//! Reference attestation, hygiene selectors and SPIRE k8s selector parity, through the go-plugin host of `spire_plugin` against a real agent.
//!
//! A broker's `ProcessReference` (pid, start time, exec id) is answered for
//! that exec and refused after a re-exec or a pid reuse, while the agent's
//! Watch reports the re-exec and the exit; `binary-package`,
//! `binary-unmodified` and `env-static-secrets:none` come only with positive
//! evidence; the k8s values for a pod of the kubelet stand-in are exactly
//! those SPIRE's k8s attestor derives from the same pod list.

use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use crate::harness::{AgentProc, Kid};
use crate::spire_plugin::{agent, agent_conf, run_host, strings, wait_for_hash, WAIT};
use proctor::api::client;
use serde_json::Value;

/// A tokio runtime for the agent API's client calls.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The plugin's answers to `-refs` / `-pidrefs`, in order.
fn reference_answers(socket: &Path, dir: &Path, refs: &Value, pidrefs: &str) -> Vec<Value> {
    let conf = agent_conf(dir, &format!("agent_socket = \"{}\"", socket.display()));
    let run = run_host(
        &[
            "-config",
            conf.to_str().unwrap(),
            "-refs",
            &refs.to_string(),
            "-pidrefs",
            pidrefs,
        ],
        &[],
    );
    assert!(run.status.success(), "host failed: {}", run.stderr);
    assert_eq!(
        run.report["attest_reference_code"], "InvalidArgument",
        "{}",
        run.report
    );
    run.report["attest_reference"].as_array().unwrap().clone()
}

fn next_watch_event(
    rt: &tokio::runtime::Runtime,
    w: &mut std::pin::Pin<
        Box<dyn futures::Stream<Item = anyhow::Result<proctor::api::pb::WatchEvent>> + Send>,
    >,
) -> proctor::api::pb::WatchEvent {
    use futures::StreamExt;
    rt.block_on(async { tokio::time::timeout(WAIT, w.next()).await })
        .expect("no watch event within the wait")
        .expect("the watch ended")
        .expect("the watch failed")
}

/// A broker holds a reference to the workload it attested (pid, start time,
/// exec id). After the workload execs another binary, the plugin refuses
/// that reference (and a pid-reused one), answers for a reference to the new
/// exec, and the agent's Watch told the broker about the exec and the exit.
#[test]
fn attest_reference_answers_for_that_exec_only_and_watch_reports_the_re_exec() {
    use proctor::api::pb::WatchKind;
    let (_agent, socket, _) = agent();
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("go");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    // dash waits on the FIFO, then execs sleep: same pid, same start time.
    let mut kid = Kid(crate::harness::spawn(
        Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("read _ < {}; exec /bin/sleep 300", fifo.display()))
            .stdout(Stdio::null()),
    ));
    let pid = kid.0.id();
    let sh_sha = wait_for_hash(socket, pid);
    let rt = runtime();
    let first = rt.block_on(client::attest(socket, pid as i32)).unwrap();
    assert_eq!(first.exe_sha256, sh_sha);
    let mut w = rt
        .block_on(client::watch(
            socket,
            pid as i32,
            Some(first.exec_id.clone()),
        ))
        .unwrap();
    let current = next_watch_event(&rt, &mut w);
    assert_eq!(current.kind, WatchKind::Current as i32, "{current:?}");

    let reference = |id: &proctor::api::pb::Identity| serde_json::json!({"pid": pid, "start_time_ns": id.start_time_ns, "exec_id": id.exec_id});
    let before = reference_answers(
        socket,
        dir.path(),
        &Value::Array(vec![reference(&first)]),
        "",
    );
    assert!(before[0]["error"].is_null(), "{before:?}");
    let sel = strings(&before[0]["selectors"]);
    assert!(sel.contains(&format!("sha256:{sh_sha}")), "{sel:?}");

    // The exec.
    std::fs::write(&fifo, "go\n").unwrap();
    let changed = next_watch_event(&rt, &mut w);
    assert_eq!(changed.kind, WatchKind::Changed as i32, "{changed:?}");
    let second = changed.identity.clone().unwrap();
    assert_ne!(second.exec_id, first.exec_id, "{changed:?}");
    assert_eq!(second.start_time_ns, first.start_time_ns, "{changed:?}");
    assert!(second.exe_path.ends_with("/sleep"), "{changed:?}");
    let sleep_sha = wait_for_hash(socket, pid);
    assert_ne!(sleep_sha, sh_sha);

    let reused =
        serde_json::json!({"pid": pid, "start_time_ns": first.start_time_ns + 5_000_000_000u64});
    let refs = Value::Array(vec![reference(&first), reference(&second), reused]);
    let after = reference_answers(socket, dir.path(), &refs, &pid.to_string());
    // The stale reference: refused, naming the exec it asked for.
    assert_eq!(after[0]["error"]["code"], "NotFound", "{after:?}");
    let msg = after[0]["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains(&first.exec_id) && msg.contains(&second.exec_id),
        "{msg}"
    );
    assert_eq!(strings(&after[0]["selectors"]), Vec::<String>::new());
    // The reference to the exec that runs now: its selectors.
    assert!(after[1]["error"].is_null(), "{after:?}");
    let sel = strings(&after[1]["selectors"]);
    assert!(sel.contains(&format!("sha256:{sleep_sha}")), "{sel:?}");
    assert!(!sel.contains(&format!("sha256:{sh_sha}")), "{sel:?}");
    // Another start time: a process that reused the pid, refused.
    assert_eq!(after[2]["error"]["code"], "NotFound", "{after:?}");
    assert!(
        after[2]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("reused"),
        "{after:?}"
    );
    // SPIRE's WorkloadPIDReference: whoever has the pid now, like Attest.
    assert_eq!(
        after[3]["type_url"],
        "type.googleapis.com/spiffe.reference.WorkloadPIDReference"
    );
    assert!(after[3]["error"].is_null(), "{after:?}");
    assert!(
        strings(&after[3]["selectors"]).contains(&format!("sha256:{sleep_sha}")),
        "{after:?}"
    );

    // The exit ends the watch.
    kid.kill();
    let exited = next_watch_event(&rt, &mut w);
    assert_eq!(exited.kind, WatchKind::Exited as i32, "{exited:?}");
    assert_eq!(exited.identity.unwrap().exec_id, second.exec_id);
}

/// A plausible AWS key pair, assembled at run time (no literal in the source).
fn aws_env() -> [(&'static str, String); 2] {
    [
        ("AWS_ACCESS_KEY_ID", format!("AKIA{}", "Q7ZL3XW9TR2MV5KD")),
        (
            "AWS_SECRET_ACCESS_KEY",
            format!("{}{}", "wJ8rXq2Lk9Vz4Tn7Hb3Md6Pf1Yc5", "Gs0Ua8Ei3OqR"),
        ),
    ]
}

#[test]
fn hygiene_selectors_vouch_for_a_packaged_binary_in_a_clean_environment_only() {
    let (_agent, socket, _) = agent();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("dpkg-query")
        .args(["-S", "/bin/sleep"])
        .output()
        .unwrap();
    let owner = String::from_utf8_lossy(&out.stdout);
    let package = owner.split(':').next().unwrap().trim().to_string();
    assert!(
        !package.is_empty(),
        "dpkg does not name /bin/sleep's package: {owner}"
    );
    let copy = dir.path().join("sleep-copy");
    crate::harness::copy_exe("/bin/sleep", &copy);
    let start = |bin: &Path, keys: bool| {
        let mut cmd = Command::new(bin);
        cmd.arg("300")
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .stdout(Stdio::null());
        if keys {
            cmd.envs(aws_env());
        }
        Kid(crate::harness::spawn(&mut cmd))
    };
    let packaged = start(Path::new("/bin/sleep"), false);
    let copied = start(&copy, false);
    let packaged_keys = start(Path::new("/bin/sleep"), true);
    let copied_keys = start(&copy, true);
    let pids = [&packaged, &copied, &packaged_keys, &copied_keys].map(|k| k.0.id());
    for p in pids {
        wait_for_hash(socket, p);
    }
    // The exec-time scan and the package check finish after the exec event.
    let rt = runtime();
    let t = Instant::now();
    loop {
        let id = rt.block_on(client::attest(socket, pids[0] as i32)).unwrap();
        let v: Vec<&str> = id.selectors.iter().map(|s| s.value.as_str()).collect();
        if v.contains(&"env-static-secrets:none")
            && v.iter().any(|s| s.starts_with("binary-package:"))
        {
            break;
        }
        assert!(
            t.elapsed() < WAIT,
            "no hygiene selectors for the packaged sleep: {v:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let conf = agent_conf(
        dir.path(),
        &format!("agent_socket = \"{}\"", socket.display()),
    );
    let list = pids.map(|p| p.to_string()).join(",");
    let run = run_host(&["-config", conf.to_str().unwrap(), "-pids", &list], &[]);
    assert!(run.status.success(), "host failed: {}", run.stderr);
    let attest = run.report["attest"].as_array().unwrap();
    let sel: Vec<Vec<String>> = attest.iter().map(|a| strings(&a["selectors"])).collect();
    let pkg = format!("binary-package:{package}");
    let none = "env-static-secrets:none".to_string();
    let unmodified = "binary-unmodified:true".to_string();
    // The package's program, clean environment: all three.
    for want in [&pkg, &none, &unmodified] {
        assert!(
            sel[0].contains(want),
            "{want} missing for the packaged sleep: {:?}",
            sel[0]
        );
    }
    // A copy: the same bytes, not the package's file; its environment is clean.
    assert!(
        !sel[1].iter().any(|s| s.starts_with("binary-package:")),
        "{:?}",
        sel[1]
    );
    assert!(
        sel[1].contains(&none) && sel[1].contains(&unmodified),
        "{:?}",
        sel[1]
    );
    // AWS keys in the environment: never "none", the package still stands.
    assert!(
        sel[2].contains(&pkg) && !sel[2].contains(&none),
        "{:?}",
        sel[2]
    );
    assert!(
        !sel[3].contains(&none) && !sel[3].iter().any(|s| s.starts_with("binary-package:")),
        "{:?}",
        sel[3]
    );
    let [_, (_, secret)] = aws_env();
    assert!(!run.report.to_string().contains(&secret) && !run.stderr.contains(&secret));
    drop((packaged, copied, packaged_keys, copied_keys));
}

/// The k8s selector values SPIRE's k8s workload attestor derives from `pod`
/// (a PodList item) for its container `container`, by its documented rules.
fn spire_k8s_values(pod: &Value, container: &str) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    let meta = &pod["metadata"];
    let st = &pod["status"];
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    out.insert(format!("sa:{}", text(&pod["spec"]["serviceAccountName"])));
    out.insert(format!("ns:{}", text(&meta["namespace"])));
    out.insert(format!("node-name:{}", text(&pod["spec"]["nodeName"])));
    out.insert(format!("pod-uid:{}", text(&meta["uid"])));
    out.insert(format!("pod-name:{}", text(&meta["name"])));
    for (key, form) in [
        ("containerStatuses", "pod-image"),
        ("initContainerStatuses", "pod-init-image"),
    ] {
        let statuses = st[key].as_array().cloned().unwrap_or_default();
        out.insert(format!("{form}-count:{}", statuses.len()));
        for c in &statuses {
            for field in ["image", "imageID"] {
                let v = text(&c[field]);
                if !v.is_empty() {
                    out.insert(format!("{form}:{v}"));
                }
            }
        }
    }
    for (k, v) in meta["labels"].as_object().unwrap() {
        out.insert(format!("pod-label:{k}:{}", text(v)));
    }
    for o in meta["ownerReferences"].as_array().unwrap() {
        out.insert(format!(
            "pod-owner:{}:{}",
            text(&o["kind"]),
            text(&o["name"])
        ));
        out.insert(format!(
            "pod-owner-uid:{}:{}",
            text(&o["kind"]),
            text(&o["uid"])
        ));
    }
    let status = st["containerStatuses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == container)
        .unwrap();
    out.insert(format!("container-name:{container}"));
    for field in ["image", "imageID"] {
        let v = text(&status[field]);
        if !v.is_empty() {
            out.insert(format!("container-image:{v}"));
        }
    }
    out
}

#[test]
fn k8s_selectors_are_spires_for_a_pod_of_the_kubelet_stand_in() {
    use crate::pod_metadata::{agent_config, pod_status, podlist_with, Answer, Kubelet};
    let (uid, cid) = crate::harness::pod_and_container_ids("spire-parity");
    let cg = crate::harness::PlacedCgroup::new(&format!("kubepods/besteffort/pod{uid}/{cid}"));
    let podlist = podlist_with(&uid, &cid);
    let kubelet = Kubelet::start(Answer::PodList, podlist.clone());
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("api.sock");
    let agent = AgentProc::start(&agent_config(&socket, &kubelet));
    agent.wait_for(|e| e["kind"] == "agent_status" && pod_status(e)["state"] == "ok");
    let kid = Kid(crate::harness::spawn(
        cg.command("/bin/sleep").arg("120").stdout(Stdio::null()),
    ));
    wait_for_hash(&socket, kid.0.id());

    let list: Value = serde_json::from_str(&podlist).unwrap();
    let pod = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["metadata"]["uid"] == uid.as_str())
        .unwrap();
    let want = spire_k8s_values(pod, "checkout");
    // The stand-in has what the parity needs: owners, an init container, a digest.
    for kind in ["pod-owner:", "pod-init-image:", "pod-image:", "node-name:"] {
        assert!(want.iter().any(|v| v.starts_with(kind)), "{kind} {want:?}");
    }

    let conf = agent_conf(
        dir.path(),
        &format!(
            "agent_socket = \"{}\"\nselector_groups = [\"k8s\"]",
            socket.display()
        ),
    );
    let run = run_host(
        &[
            "-config",
            conf.to_str().unwrap(),
            "-pids",
            &kid.0.id().to_string(),
        ],
        &[],
    );
    assert!(run.status.success(), "host failed: {}", run.stderr);
    let got: std::collections::BTreeSet<String> = strings(&run.report["attest"][0]["selectors"])
        .into_iter()
        .collect();
    assert_eq!(
        got,
        want,
        "proctor's k8s values differ from SPIRE's; only proctor's: {:?}; only SPIRE's: {:?}",
        got.difference(&want).collect::<Vec<_>>(),
        want.difference(&got).collect::<Vec<_>>()
    );
    // A process outside any pod: no k8s values at all.
    let plain = Kid(crate::harness::spawn(
        Command::new("/bin/sleep").arg("120").stdout(Stdio::null()),
    ));
    wait_for_hash(&socket, plain.0.id());
    let run = run_host(
        &[
            "-config",
            conf.to_str().unwrap(),
            "-pids",
            &plain.0.id().to_string(),
        ],
        &[],
    );
    assert!(run.status.success(), "host failed: {}", run.stderr);
    assert_eq!(
        strings(&run.report["attest"][0]["selectors"]),
        Vec::<String>::new()
    );
    drop((kid, plain));
    agent.stop();
}
