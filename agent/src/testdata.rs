//! Hand-built events for unit tests (formats, sinks, rate limits): realistic
//! values, every kind.

use std::sync::Arc;

use serde_json::json;

use crate::{
    event::Severity,
    event::{
        Attestation, Cgroup, Event, Evidence, Exe, ExitInfo, FileInfo, Finding, Interpreter, Kind,
        NetInfo, Process, ScriptIdentity, SecretInfo, SCHEMA,
    },
};

/// 2026-11-23T15:04:05.123456789Z
pub const T_NS: u64 = 1_795_446_245_123_456_789;
pub const START_NS: u64 = T_NS - 2_000_000_000;
pub const EXEC_ID: &str = "3f1c9a0d5b7e4c21a8d6f0e2b4c6d8e0";
pub const PARENT_EXEC_ID: &str = "9a8b7c6d5e4f30211203948576afbecd";
pub const SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
pub const CONTAINER_ID: &str = "5d0f3e1c2b4a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
pub const FINGERPRINT: &str =
    "hmac-sha256:0b1c2d3e4f5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

pub fn process() -> Process {
    Process {
        pid: 4242,
        ppid: 4200,
        exec_id: EXEC_ID.into(),
        parent_exec_id: Some(PARENT_EXEC_ID.into()),
        start_time_ns: START_NS,
        uid: 1000,
        gid: 1001,
        euid: 0,
        egid: 0,
        comm: "curl".into(),
        args: vec![
            "curl".into(),
            "-sS".into(),
            "https://example.com/upload".into(),
        ],
        args_truncated: false,
        args_redacted: false,
        exe: Exe {
            path: "/usr/bin/curl".into(),
            sha256: Some(SHA256.into()),
            hash_status: "ok",
            inode: 1_234_567,
            dev: libc::makedev(259, 2),
            size: 260_328,
            fileless: false,
            deleted: false,
            modified_after_exec: false,
            path_namespace: "host",
        },
        interpreter: None,
        cgroup: Cgroup {
            id: 9876,
            path: Some("/kubepods.slice/kubepods-pod1.slice/cri-containerd-5d0f.scope".into()),
        },
        container: Some(json!({"id": CONTAINER_ID, "runtime": "containerd"})),
        pod: Some(json!({
            "namespace": "payments",
            "name": "api-7d9f",
            "uid": "8c1b2a3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
            "service_account": "api",
        })),
        attestation: Attestation::KernelExec,
    }
}

/// A bare-host process: no container, no pod, no parent exec id, no hash.
pub fn host_process() -> Process {
    Process {
        pid: 1,
        ppid: 0,
        exec_id: "00112233445566778899aabbccddeeff".into(),
        parent_exec_id: None,
        comm: "systemd".into(),
        args: vec![],
        exe: Exe {
            path: "/usr/lib/systemd/systemd".into(),
            sha256: None,
            hash_status: "too_large",
            ..process().exe
        },
        interpreter: Some(Interpreter {
            path: "/bin/sh".into(),
            script: ScriptIdentity {
                path: "/opt/run.sh".into(),
                sha256: Some(SHA256.into()),
                hash_status: "ok",
                inode: Some(77),
                dev: Some(libc::makedev(8, 1)),
                size: Some(120),
            },
        }),
        container: None,
        pod: None,
        attestation: Attestation::ProcfsScan,
        ..process()
    }
}

pub fn event(kind: Kind) -> Event {
    event_with(kind, process())
}

pub fn event_with(kind: Kind, process: Process) -> Event {
    let mut ev = Event {
        schema: SCHEMA,
        time: crate::event::EventTime::at(T_NS),
        node: Arc::from("node-a"),
        kind,
        seq: 42,
        process: Arc::new(process),
        exit: None,
        status: None,
        file: None,
        finding: None,
        net: None,
        suppressed: None,
    };
    match kind {
        Kind::ProcessExec | Kind::ProcessHash => {}
        Kind::ProcessExit => {
            ev.exit = Some(ExitInfo {
                code: Some(3),
                signal: None,
                core_dumped: false,
                duration_ns: 2_000_000_000,
            })
        }
        Kind::FileOpen => ev.file = Some(Arc::new(file("/home/alice/.aws/credentials"))),
        Kind::NetConnect => ev.net = Some(Box::new(net("success", None))),
        Kind::Finding => {
            ev.file = Some(Arc::new(file("/home/alice/.aws/credentials")));
            ev.finding = Some(Box::new(finding("secret-read", Severity::High)));
        }
        Kind::AgentStatus => ev.status = Some(json!({"state": "running", "uptime_seconds": 12.5})),
    }
    ev
}

pub fn file(path: &str) -> FileInfo {
    FileInfo {
        path: path.into(),
        inode: 393_222,
        dev: libc::makedev(8, 1),
        flags: libc::O_RDONLY as u32 | libc::O_CLOEXEC as u32,
        access: "read",
        requested_path: "../.aws/credentials".into(),
        via: None,
        secret_id: None,
        repeats: None,
    }
}

pub fn net(result: &'static str, errno: Option<i32>) -> NetInfo {
    NetInfo {
        family: "inet",
        protocol: "tcp",
        dst_ip: Some("203.0.113.7".into()),
        dst_port: Some(443),
        dst_path: None,
        result,
        errno,
        async_result: false,
        operation: "connect",
        observed_by: "syscall",
    }
}

pub fn finding(rule: &'static str, severity: Severity) -> Finding {
    Finding {
        rule,
        severity,
        summary: "curl (non-owner, pid 4242) read cloud_credentials secret aws-credentials \
                  at /home/alice/.aws/credentials"
            .into(),
        mitre: Arc::from(["T1552.001".into(), "T1083".into()]),
        secret: Some(Arc::new(SecretInfo {
            id: "aws-credentials".into(),
            kind: "cloud_credentials".into(),
            fingerprint: Some(FINGERPRINT.into()),
            path: Some("/home/alice/.aws/credentials".into()),
            variable: None,
            k8s: None,
        })),
        evidence: Evidence {
            exec_ids: smallvec::smallvec![EXEC_ID.into(), PARENT_EXEC_ID.into()],
            event_seqs: smallvec::smallvec![41],
            paths: smallvec::smallvec!["/home/alice/.aws/credentials".into()],
            escalation: Some("reader is untrusted: binary deleted".into()),
            ..Evidence::default()
        },
        action: None,
    }
}

pub const KINDS: [Kind; 7] = [
    Kind::ProcessExec,
    Kind::ProcessExit,
    Kind::FileOpen,
    Kind::NetConnect,
    Kind::Finding,
    Kind::AgentStatus,
    Kind::ProcessHash,
];

/// One event of every kind, then the awkward variants: a bare-host
/// process, a failed and a unix-socket connect, a signal exit, a finding
/// of every severity and one without secret or evidence.
pub fn all_kinds() -> Vec<Event> {
    let mut v: Vec<Event> = KINDS.iter().map(|&k| event(k)).collect();
    v.extend(KINDS.iter().map(|&k| event_with(k, host_process())));
    let mut refused = event(Kind::NetConnect);
    refused.net = Some(Box::new(net("refused", Some(libc::ECONNREFUSED))));
    v.push(refused);
    let mut unix = event(Kind::NetConnect);
    unix.net = Some(Box::new(NetInfo {
        family: "unix",
        protocol: "stream",
        dst_ip: None,
        dst_port: None,
        dst_path: Some("/run/containerd/containerd.sock".into()),
        ..net("success", None)
    }));
    v.push(unix);
    let mut bare_net = event(Kind::NetConnect);
    bare_net.net = None;
    v.push(bare_net);
    let mut killed = event(Kind::ProcessExit);
    killed.exit = Some(ExitInfo {
        code: None,
        signal: Some(9),
        core_dumped: false,
        duration_ns: 5,
    });
    v.push(killed);
    for s in [
        Severity::Info,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ] {
        let mut f = event(Kind::Finding);
        f.finding = Some(Box::new(finding("secret-read", s)));
        v.push(f);
    }
    let mut bare = event(Kind::Finding);
    bare.file = None;
    bare.finding = Some(Box::new(Finding {
        mitre: Arc::from([]),
        secret: None,
        evidence: Evidence::default(),
        ..finding("untrusted-binary", Severity::High)
    }));
    v.push(bare);
    let mut env = event(Kind::Finding);
    env.file = None;
    env.finding = Some(Box::new(Finding {
        secret: Some(Arc::new(SecretInfo {
            id: "env:aws-access-key".into(),
            kind: "cloud_credentials".into(),
            fingerprint: None,
            path: None,
            variable: Some("AWS_SECRET_ACCESS_KEY".into()),
            k8s: None,
        })),
        ..finding("secret-env", Severity::Medium)
    }));
    v.push(env);
    v.push(exfil());
    let mut killed_reader = event(Kind::Finding);
    if let Some(f) = killed_reader.finding.as_mut() {
        f.action = Some("killed");
    }
    v.push(killed_reader);
    v
}

/// secret-exfil: the destination only in the evidence, no `net` object.
pub fn exfil() -> Event {
    let mut ev = event(Kind::Finding);
    ev.file = None;
    let mut f = finding("secret-exfil", Severity::Critical);
    f.evidence.destinations = vec!["[2001:db8::7]:8443".into(), "203.0.113.9:443".into()];
    f.evidence.identities = vec!["ns:payments/sa:api".into()];
    ev.finding = Some(Box::new(f));
    ev
}
