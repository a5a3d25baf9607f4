//! The gRPC API (src/api) over a real Unix socket, with real processes.
//!
//! These are library-level tests: the process table is filled the way the
//! daemon fills it for processes it finds in /proc (`procfs_seed::scan_pid`
//! on real, running processes), and where a test needs the daemon's later
//! updates (a re-exec, an exit) it makes them itself through the table's
//! public API and publishes the matching events on the agent's event feed,
//! exactly as the daemon would. Those tests are named `library_*`; the end-to-end path
//! through `proctor run` is covered once the daemon serves the API.
//!
//! Needs root (the default allow list is root only, and /proc/<pid>/exe of
//! other users' processes is root's to read).

use std::{
    os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    process::Command,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::StreamExt;
use proctor::{
    api::{
        self,
        client::{self, code_of, EventQuery},
        pb::{AttestRequest, Identity, WatchKind},
        ApiConfig, ApiHandles, Feed,
    },
    event::{Event, Evidence, Finding, Kind, Process, Severity, SCHEMA},
    identity::cgroups::CgroupResolver,
    identity::exec_id::{exec_id, Origin},
    identity::hash_cache::HashCache,
    identity::process_table::{ProcessTable, Record},
    identity::procfs_seed::scan_pid,
    secrets::inventory::{InventoryStore, SecretRecord},
};
use tokio::{sync::oneshot, task::JoinHandle};
use tonic::Code;

use crate::harness::{sha256_file, AgentProc, Kid};

const WAIT: Duration = Duration::from_secs(20);

struct Agent {
    dir: tempfile::TempDir,
    socket: PathBuf,
    table: Arc<Mutex<ProcessTable>>,
    events: Feed,
    cgroups: CgroupResolver,
    hashes: Arc<HashCache>,
    seq: u64,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Agent {
    /// Serves the API on a socket in a fresh directory (created by `serve`).
    async fn start(tweak: impl FnOnce(&mut ApiConfig)) -> Agent {
        Self::start_with_capacity(tweak, 4096).await
    }

    async fn start_with_capacity(tweak: impl FnOnce(&mut ApiConfig), capacity: usize) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("run/proctor/proctor.sock");
        let mut cfg = ApiConfig {
            socket: socket.clone(),
            ..ApiConfig::default()
        };
        tweak(&mut cfg);
        let socket = cfg.socket.clone();
        let table = Arc::new(Mutex::new(ProcessTable::new(Duration::from_secs(30), 1024)));
        let events = Feed::with_live_capacity(cfg.recent_events, capacity);
        let handles = ApiHandles {
            table: table.clone(),
            events: events.clone(),
            inventory_path: dir.path().join("state/inventory.db"),
            hygiene: Default::default(),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let server = api::ApiServer::bind(cfg).expect("bind the api socket");
        let server = tokio::spawn(server.run(handles, async move {
            let _ = stopped.await;
        }));
        Agent {
            dir,
            socket,
            table,
            events,
            cgroups: CgroupResolver::new(),
            hashes: HashCache::new(64, 1, 256 << 20),
            seq: 0,
            stop: Some(stop),
            server: Some(server),
        }
    }

    /// What the daemon does for a process it finds in /proc.
    fn scan(&mut self, pid: u32) -> Record {
        let s = scan_pid(pid, &mut self.cgroups, &self.hashes).expect("scan the process");
        Record {
            snapshot: s.snapshot,
            start_boottime_ns: s.start_boottime_ns,
            coarse_start: true,
            since_boottime_ns: s.start_boottime_ns,
            announced: true,
        }
    }

    fn insert_scanned(&mut self, pid: u32) -> u64 {
        let rec = self.scan(pid);
        let start = rec.start_boottime_ns;
        self.table.lock().unwrap().insert(pid, rec);
        start
    }

    fn publish(&mut self, kind: Kind, process: Arc<Process>, finding: Option<Finding>) {
        self.seq += 1;
        self.events.publish(Arc::new(Event {
            schema: SCHEMA,
            time: proctor::event::EventTime::at(proctor::clock::now_ns()),
            node: "test".into(),
            kind,
            seq: self.seq,
            process,
            exit: None,
            status: None,
            file: None,
            finding: finding.map(Box::new),
            net: None,
            suppressed: None,
        }));
    }

    /// Stops the server; the directory stays until the result is dropped.
    async fn stop(mut self) -> tempfile::TempDir {
        let _ = self.stop.take().unwrap().send(());
        let r = tokio::time::timeout(WAIT, self.server.take().unwrap())
            .await
            .expect("server stops")
            .unwrap();
        r.expect("server ran without error");
        self.dir
    }
}

/// A child that is killed when the test lets go of it.
fn kid(cmd: &str, args: &[&str]) -> Kid {
    Kid(Command::new(cmd).args(args).spawn().expect("spawn"))
}

fn selectors(id: &Identity) -> Vec<String> {
    id.selectors
        .iter()
        .map(|s| format!("{}:{}", s.r#type, s.value))
        .collect()
}

async fn attest_req(socket: &Path, req: AttestRequest) -> Result<Identity, Code> {
    client::attest_request(socket, req)
        .await
        .map_err(|e| code_of(&e).unwrap_or_else(|| panic!("not an API error: {e:#}")))
}

async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < WAIT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn exe_of(pid: u32) -> String {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn library_attest_live_process_has_kernel_hash_and_unix_selectors() {
    let mut agent = Agent::start(|_| {}).await;
    let kid = kid("sleep", &["30"]);
    let pid = kid.pid();
    let start = agent.insert_scanned(pid);
    // Its parent (this test) is known too.
    agent.insert_scanned(std::process::id());

    let id = client::attest(&agent.socket, pid as i32).await.unwrap();
    let sels = selectors(&id);
    let sleep = std::fs::canonicalize("/bin/sleep").unwrap();
    let hash = sha256_file(&sleep);
    let euid = unsafe { libc::geteuid() };
    for want in [
        format!("unix:sha256:{hash}"),
        format!("unix:uid:{euid}"),
        format!("unix:path:{}", sleep.display()),
        format!("proctor:exec-sha256:{hash}"),
        "proctor:attestation:procfs-scan".to_string(),
        "proctor:binary-unmodified:true".to_string(),
        "proctor:fileless:false".to_string(),
        format!(
            "proctor:parent-sha256:{}",
            sha256_file(Path::new("/proc/self/exe"))
        ),
    ] {
        assert!(sels.contains(&want), "{want} missing from {sels:?}");
    }
    assert!(
        sels.contains(&"unix:user:root".to_string()) || euid != 0,
        "{sels:?}"
    );
    assert_eq!(id.pid, pid);
    assert_eq!(id.ppid, std::process::id());
    let parent_exec_id = agent
        .table
        .lock()
        .unwrap()
        .get(std::process::id())
        .unwrap()
        .exec_id()
        .to_string();
    assert_eq!(id.parent_exec_id, parent_exec_id);
    assert_eq!(id.exe_sha256, hash);
    assert_eq!(id.start_time_ns, proctor::clock::to_epoch_ns(start));
    let integrity = id.integrity.clone().unwrap();
    assert!(!integrity.kernel_exec);
    assert_eq!(integrity.hash_status, "ok");
    let json = client::identity_json(&id);
    assert_eq!(json["selectors"][0]["type"], "unix", "{json}");
    assert_eq!(json["integrity"]["hash_status"], "ok", "{json}");
    let text = client::render_identity_text(&id);
    assert!(text.contains(&format!("unix:sha256:{hash}")), "{text}");

    // The same process named by start time and exec id.
    let again = attest_req(
        &agent.socket,
        AttestRequest {
            pid: pid as i32,
            start_time_ns: Some(id.start_time_ns),
            exec_id: Some(id.exec_id.clone()),
        },
    )
    .await
    .unwrap();
    assert_eq!(again.exec_id, id.exec_id);
    // Another start time: the caller means some earlier holder of the pid.
    let reused = attest_req(
        &agent.socket,
        AttestRequest {
            pid: pid as i32,
            start_time_ns: Some(id.start_time_ns - 1_000_000_000),
            exec_id: None,
        },
    )
    .await;
    assert_eq!(reused.unwrap_err(), Code::NotFound);
    let other_exec = attest_req(
        &agent.socket,
        AttestRequest {
            pid: pid as i32,
            start_time_ns: None,
            exec_id: Some("0".repeat(32)),
        },
    )
    .await;
    assert_eq!(other_exec.unwrap_err(), Code::NotFound);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn library_attest_bad_and_gone_pids() {
    let mut agent = Agent::start(|_| {}).await;
    for pid in [0, -1, 99_999_999, i32::MIN] {
        let r = attest_req(
            &agent.socket,
            AttestRequest {
                pid,
                ..Default::default()
            },
        )
        .await;
        assert_eq!(r.unwrap_err(), Code::InvalidArgument, "pid {pid}");
    }
    // A live process the agent has no record of.
    let unknown = kid("sleep", &["30"]);
    let r = client::attest(&agent.socket, unknown.pid() as i32).await;
    assert_eq!(code_of(&r.unwrap_err()), Some(Code::NotFound));

    // Recorded, then exited before the agent processed the exit.
    let mut kid = kid("sleep", &["30"]);
    let pid = kid.pid();
    agent.insert_scanned(pid);
    assert!(client::attest(&agent.socket, pid as i32).await.is_ok());
    kid.kill();
    let r = client::attest(&agent.socket, pid as i32).await;
    let e = r.unwrap_err();
    assert_eq!(code_of(&e), Some(Code::NotFound), "{e:#}");
    assert!(format!("{e:#}").contains("exited"), "{e:#}");
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn library_attest_refuses_a_stale_record_for_a_reused_pid() {
    let mut agent = Agent::start(|_| {}).await;
    let kid = kid("sleep", &["30"]);
    let pid = kid.pid();
    // The agent's record is of an earlier process with this pid (started a
    // second before): /proc says the live one is another process.
    let mut rec = agent.scan(pid);
    rec.start_boottime_ns -= 1_000_000_000;
    agent.table.lock().unwrap().insert(pid, rec);
    let e = client::attest(&agent.socket, pid as i32).await.unwrap_err();
    assert_eq!(code_of(&e), Some(Code::NotFound), "{e:#}");
    assert!(format!("{e:#}").contains("reused"), "{e:#}");
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn library_attest_a_reexec_not_yet_processed_is_unavailable() {
    let mut agent = Agent::start(|_| {}).await;
    let kid = kid("sh", &["-c", "sleep 0.3; exec sleep 30"]);
    let pid = kid.pid();
    agent.insert_scanned(pid);
    let shell = exe_of(pid);
    assert!(!shell.ends_with("/sleep"), "{shell}");
    wait_for("the re-exec", || exe_of(pid).ends_with("/sleep")).await;
    let e = client::attest(&agent.socket, pid as i32).await.unwrap_err();
    assert_eq!(code_of(&e), Some(Code::Unavailable), "{e:#}");
    assert!(format!("{e:#}").contains("retry"), "{e:#}");
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn library_callers_not_on_the_allow_list_are_refused() {
    let mut agent = Agent::start(|c| {
        c.allow_uids = vec![12345];
        c.allow_gids = vec![54321];
    })
    .await;
    let kid = kid("sleep", &["30"]);
    agent.insert_scanned(kid.pid());
    let e = client::attest(&agent.socket, kid.pid() as i32)
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), Some(Code::PermissionDenied), "{e:#}");
    assert!(format!("{e:#}").contains("allow_uids"), "{e:#}");
    let e = match client::stream_events(&agent.socket, EventQuery::default()).await {
        Err(e) => e,
        Ok(mut s) => s.next().await.unwrap().unwrap_err(),
    };
    assert_eq!(code_of(&e), Some(Code::PermissionDenied), "{e:#}");
    let e = client::inventory(&agent.socket).await.unwrap_err();
    assert_eq!(code_of(&e), Some(Code::PermissionDenied), "{e:#}");
    let mut health = tonic_health::pb::health_client::HealthClient::new(
        client::connect(&agent.socket).await.unwrap(),
    );
    let e = health
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn library_socket_is_private_exclusive_and_removed() {
    let agent = Agent::start(|_| {}).await;
    let meta = std::fs::symlink_metadata(&agent.socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let dir = std::fs::metadata(agent.socket.parent().unwrap()).unwrap();
    assert_eq!(dir.permissions().mode() & 0o777, 0o755);
    assert_eq!(meta.uid(), unsafe { libc::geteuid() });
    // Nothing but the socket is left in its directory.
    let names: Vec<_> = std::fs::read_dir(agent.socket.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");

    // A second server on the same socket is refused while the first serves.
    let e = api::ApiServer::bind(ApiConfig {
        socket: agent.socket.clone(),
        ..ApiConfig::default()
    })
    .err()
    .expect("second bind must fail");
    assert!(format!("{e:#}").contains("in use"), "{e:#}");

    // Health (grpc.health.v1) answers SERVING.
    let mut health = tonic_health::pb::health_client::HealthClient::new(
        client::connect(&agent.socket).await.unwrap(),
    );
    let r = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "proctor.v1.Attestation".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        r.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    let socket = agent.socket.clone();
    let tmp = agent.stop().await;
    let dir = tmp.path().to_path_buf();
    assert!(!socket.exists(), "socket left behind");

    // A stale socket (its server died) is replaced; a regular file is not.
    let stale = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    drop(stale);
    let group_cfg = ApiConfig {
        socket: socket.clone(),
        group: Some("0".into()),
        ..ApiConfig::default()
    };
    let s = api::ApiServer::bind(group_cfg.clone()).expect("stale socket replaced");
    let meta = std::fs::symlink_metadata(&socket).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    assert_eq!(meta.gid(), 0);
    drop(s);
    std::fs::remove_file(&socket).unwrap();
    std::fs::write(&socket, b"not a socket").unwrap();
    let e = api::ApiServer::bind(group_cfg).err().expect("not a socket");
    assert!(format!("{e:#}").contains("not a socket"), "{e:#}");
    let e = api::ApiServer::bind(ApiConfig {
        socket: dir.join("x.sock"),
        group: Some("no-such-group-here".into()),
        ..ApiConfig::default()
    })
    .err()
    .expect("unknown group");
    assert!(format!("{e:#}").contains("no-such-group-here"), "{e:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn library_watch_reports_reexec_then_exit() {
    let mut agent = Agent::start(|_| {}).await;
    let mut kid = kid("sh", &["-c", "sleep 1; exec sleep 30"]);
    let pid = kid.pid();
    let start = agent.insert_scanned(pid);
    let shell = exe_of(pid);

    let mut w = client::watch(&agent.socket, pid as i32, None)
        .await
        .unwrap();
    let first = w.next().await.unwrap().unwrap();
    assert_eq!(first.kind, WatchKind::Current as i32);
    let first = first.identity.unwrap();
    assert_eq!(first.exe_path, shell);

    // The re-exec, as the daemon records it: a new exec id, the new binary.
    wait_for("the re-exec", || exe_of(pid).ends_with("/sleep")).await;
    let mut rec = agent.scan(pid);
    let mut p = (*rec.snapshot.process).clone();
    p.exec_id = exec_id(Origin::Exec, pid, proctor::clock::boot_ns());
    p.parent_exec_id = None;
    rec.snapshot.process = Arc::new(p);
    let resolved = rec.snapshot.resolve().await;
    agent.table.lock().unwrap().insert(pid, rec);
    agent.publish(Kind::ProcessExec, resolved.clone(), None);

    let changed = tokio::time::timeout(WAIT, w.next())
        .await
        .expect("CHANGED in time")
        .unwrap()
        .unwrap();
    assert_eq!(changed.kind, WatchKind::Changed as i32);
    let changed = changed.identity.unwrap();
    assert_eq!(*changed.exec_id, *resolved.exec_id);
    assert_ne!(changed.exec_id, first.exec_id);
    let hash = sha256_file(Path::new(&exe_of(pid)));
    assert!(
        selectors(&changed).contains(&format!("unix:sha256:{hash}")),
        "{:?}",
        selectors(&changed)
    );

    // The exit, as the daemon records it.
    kid.kill();
    let exited = agent
        .table
        .lock()
        .unwrap()
        .exit(pid, start, Instant::now())
        .map(|r| r.snapshot.process.clone())
        .expect("record moved to exited");
    agent.publish(Kind::ProcessExit, exited, None);
    let last = tokio::time::timeout(WAIT, w.next())
        .await
        .expect("EXITED in time")
        .unwrap()
        .unwrap();
    assert_eq!(last.kind, WatchKind::Exited as i32);
    assert_eq!(last.identity.unwrap().exec_id, changed.exec_id);
    // The stream ends after EXITED.
    assert!(tokio::time::timeout(WAIT, w.next())
        .await
        .unwrap()
        .is_none());

    // Watching an exec that has exited (still remembered): EXITED at once.
    let mut w = client::watch(&agent.socket, pid as i32, Some(changed.exec_id.clone()))
        .await
        .unwrap();
    let only = w.next().await.unwrap().unwrap();
    assert_eq!(only.kind, WatchKind::Exited as i32);
    assert!(w.next().await.is_none());
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn library_watch_sees_an_exit_nobody_announced() {
    let mut agent = Agent::start(|_| {}).await;
    let mut kid = kid("sleep", &["30"]);
    let pid = kid.pid();
    agent.insert_scanned(pid);
    let mut w = client::watch(&agent.socket, pid as i32, None)
        .await
        .unwrap();
    assert_eq!(
        w.next().await.unwrap().unwrap().kind,
        WatchKind::Current as i32
    );
    // No exit event and no table update (e.g. a fork child that never
    // exec'd, whose exit is not announced): /proc tells.
    kid.kill();
    let last = tokio::time::timeout(WAIT, w.next())
        .await
        .expect("EXITED in time")
        .unwrap()
        .unwrap();
    assert_eq!(last.kind, WatchKind::Exited as i32);
    assert_eq!(last.identity.unwrap().pid, pid);
    let e = client::watch(&agent.socket, 0, None).await.err().unwrap();
    assert_eq!(code_of(&e), Some(Code::InvalidArgument));
    agent.stop().await;
}

fn finding(severity: Severity) -> Finding {
    Finding {
        rule: "secret-read",
        severity,
        summary: format!("test finding {}", severity.as_str()),
        mitre: Arc::from([]),
        secret: None,
        evidence: Evidence::default(),
        action: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn library_events_are_filtered_on_the_server() {
    let mut agent = Agent::start(|_| {}).await;
    let me = agent.scan(std::process::id()).snapshot.current();

    // Recent events, without --follow.
    agent.publish(Kind::ProcessExec, me.clone(), None);
    agent.publish(Kind::Finding, me.clone(), Some(finding(Severity::Low)));
    agent.publish(Kind::Finding, me.clone(), Some(finding(Severity::Critical)));
    let query = EventQuery {
        kinds: vec!["finding".into()],
        min_severity: Some("high".into()),
        follow: false,
        backlog: None,
    };
    let mut lines = Vec::new();
    let t = Instant::now();
    while lines.is_empty() {
        assert!(t.elapsed() < WAIT, "recent events never showed up");
        let mut buf = Vec::new();
        client::print_events(&agent.socket, query.clone(), &mut buf)
            .await
            .unwrap();
        lines = String::from_utf8(buf)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
    }
    assert_eq!(lines.len(), 1, "{lines:?}");
    let v: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(v["schema"], "proctor.event/v1");
    assert_eq!(v["kind"], "finding");
    assert_eq!(v["finding"]["severity"], "critical");
    assert_eq!(v["process"]["pid"], std::process::id());

    // Live, with --follow: only what passes the filter, after the backlog.
    let mut s = client::stream_events(
        &agent.socket,
        EventQuery {
            follow: true,
            backlog: Some(0),
            ..query.clone()
        },
    )
    .await
    .unwrap();
    agent.publish(Kind::ProcessExit, me.clone(), None);
    agent.publish(Kind::Finding, me.clone(), Some(finding(Severity::Medium)));
    agent.publish(Kind::Finding, me.clone(), Some(finding(Severity::High)));
    let line = tokio::time::timeout(WAIT, s.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["finding"]["severity"], "high");
    assert_eq!(v["seq"], agent.seq);

    // Bad filters are refused.
    let e = match client::stream_events(
        &agent.socket,
        EventQuery {
            kinds: vec!["process-exec".into()],
            ..Default::default()
        },
    )
    .await
    {
        Err(e) => e,
        Ok(mut s) => s.next().await.unwrap().unwrap_err(),
    };
    assert_eq!(code_of(&e), Some(Code::InvalidArgument), "{e:#}");

    // The agent stopping ends a follower with UNAVAILABLE, not a hang.
    let _ = agent.stop.take().unwrap().send(());
    let end = tokio::time::timeout(WAIT, s.next()).await.unwrap();
    let e = end.unwrap().unwrap_err();
    assert_eq!(code_of(&e), Some(Code::Unavailable), "{e:#}");
    drop(s);
    tokio::time::timeout(WAIT, agent.server.take().unwrap())
        .await
        .expect("server stops")
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn library_events_lagging_subscriber_is_told_how_many_it_lost() {
    let mut agent = Agent::start_with_capacity(|_| {}, 16).await;
    let me = agent.scan(std::process::id()).snapshot.current();
    let mut s = client::stream_events(
        &agent.socket,
        EventQuery {
            follow: true,
            backlog: Some(0),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    // Far more than the broadcast holds, while the client does not read.
    for _ in 0..5000 {
        agent.publish(Kind::ProcessExec, me.clone(), None);
    }
    let mut got = 0u64;
    let err = loop {
        match tokio::time::timeout(WAIT, s.next()).await.unwrap() {
            Some(Ok(_)) => got += 1,
            Some(Err(e)) => break e,
            None => panic!("stream ended without saying what was lost"),
        }
    };
    assert_eq!(code_of(&err), Some(Code::DataLoss), "{err:#}");
    let msg = format!("{err:#}");
    let lost: u64 = msg
        .split_whitespace()
        .skip_while(|w| *w != "lost")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {msg}"));
    // Delivered plus counted as lost: every event up to the end of the
    // stream (events published after it ended are not this stream's).
    assert!(
        lost > 0 && got + lost <= 5000,
        "got {got}, lost {lost}: {msg}"
    );
    assert!(msg.contains("the stream ends here"), "{msg}");
    eprintln!("lagging subscriber: got {got}, lost {lost}");
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn library_inventory_lists_the_store() {
    let agent = Agent::start(|_| {}).await;
    let e = client::inventory(&agent.socket).await.unwrap_err();
    assert_eq!(code_of(&e), Some(Code::NotFound), "{e:#}");
    assert!(format!("{e:#}").contains("no inventory"), "{e:#}");

    let store = InventoryStore::open(&agent.dir.path().join("state/inventory.db")).unwrap();
    store
        .upsert_secret(&SecretRecord {
            path: "/root/.aws/credentials".into(),
            catalog_id: "aws-cli-credentials".into(),
            kind: "cloud_credentials".into(),
            fingerprint: Some(format!("hmac-sha256:{}", "ab".repeat(32))),
            dev: 1,
            inode: 2,
            size: 3,
            mtime_ns: 0,
            first_seen_ns: 1,
            present: true,
        })
        .unwrap();
    let items = client::inventory(&agent.socket).await.unwrap();
    let items = items.as_array().expect("a JSON array");
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["path"], "/root/.aws/credentials");
    assert_eq!(items[0]["catalog_id"], "aws-cli-credentials");
    // One secret's blast radius, by catalog id; none for an unknown one.
    let found = client::blast_radius(&agent.socket, "aws-cli-credentials")
        .await
        .unwrap();
    assert_eq!(found[0]["path"], "/root/.aws/credentials", "{found}");
    assert!(found[0]["destinations"].is_array(), "{found}");
    let none = client::blast_radius(&agent.socket, "no-such-secret")
        .await
        .unwrap();
    assert_eq!(none, serde_json::json!([]));
    drop(store);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_says_when_no_agent_listens() {
    let dir = tempfile::tempdir().unwrap();
    let e = client::attest(&dir.path().join("none.sock"), 1)
        .await
        .unwrap_err();
    let msg = format!("{e:#}");
    assert!(msg.contains("is `proctor run` running"), "{msg}");
    assert_eq!(code_of(&e), None);
}

/// Runs `proctor ARGS` (the copy `bin`) as uid/gid 65534 with `groups` as
/// its supplementary groups (set in the child, so the kernel's
/// SO_PEERGROUPS copy is theirs).
fn proctor_as_nobody(bin: &Path, groups: &[u32], args: &[&str]) -> std::process::Output {
    use std::os::unix::process::CommandExt;
    let groups: Vec<libc::gid_t> = groups.to_vec();
    let mut cmd = Command::new(bin);
    cmd.args(args);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setgroups(groups.len(), groups.as_ptr()) != 0
                || libc::setgid(65534) != 0
                || libc::setuid(65534) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.output().expect("run proctor as nobody")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_admitted_to_attestation_only_gets_no_events_or_inventory() {
    // /var/tmp, not /tmp: uid 65534 must traverse it (a build machine's /tmp
    // may be 0700), and it runs its own copy of proctor for the same reason.
    let scratch = tempfile::tempdir_in("/var/tmp").unwrap();
    std::fs::set_permissions(scratch.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = scratch.path().join("proctor");
    crate::harness::copy_exe(crate::harness::proctor_bin(), &bin);
    let socket = scratch.path().join("run/proctor.sock");
    let agent = Agent::start(|c| {
        c.socket = socket.clone();
        c.services.attestation.allow_uids = vec![65534];
        c.services.events.allow_gids = vec![4242];
    })
    .await;
    let mode = std::fs::metadata(&agent.socket)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(
        mode, 0o666,
        "per-service callers need a socket they can connect to"
    );
    let mut agent = agent;
    let kid = kid("sleep", &["30"]);
    agent.insert_scanned(kid.pid());
    let socket = agent.socket.to_str().unwrap().to_string();
    let pid = kid.pid().to_string();

    let o = proctor_as_nobody(&bin, &[], &["attest", "--json", "--socket", &socket, &pid]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "attest as nobody: {}{}",
        out,
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("\"uid:0\""), "attest answer: {out}");

    let o = proctor_as_nobody(&bin, &[], &["events", "--socket", &socket]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success(),
        "events as nobody must be refused: {err}"
    );
    assert!(
        err.contains("api.services.events") && err.contains("uid 65534"),
        "the refusal names the caller and the setting: {err}"
    );

    let o = proctor_as_nobody(&bin, &[4242], &["events", "--socket", &socket]);
    assert!(
        o.status.success(),
        "a supplementary group admitted to events (SO_PEERGROUPS): {}",
        String::from_utf8_lossy(&o.stderr)
    );
    // ... but that group gives it neither attestation nor the inventory.
    let o = proctor_as_nobody(&bin, &[4242, 9999], &["attest", "--socket", &socket, &pid]);
    assert!(o.status.success(), "uid 65534 keeps attestation");
    // Root (in allow_uids by default) still has every service: the inventory
    // answers (NotFound: no store yet), it does not refuse.
    let e = client::inventory(&agent.socket).await.unwrap_err();
    assert_eq!(code_of(&e), Some(Code::NotFound), "{e:#}");
    agent.stop().await;
}

/// The daemon's own history: what `proctor run` emitted is what
/// `proctor events` (no `--follow`) gets back over its API socket, the same
/// events with the same seq.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_answers_with_the_events_it_emitted() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("api.sock");
    let agent = AgentProc::start(&format!(
        "metrics:\n  listen: 127.0.0.1:0\n\
         api:\n  socket: {}\n\
         state_dir: {}\n\
         secrets:\n  search_dirs: []\n",
        socket.display(),
        dir.path().join("state").display()
    ));
    let marker = format!("proctor-history-{}", std::process::id());
    let status = Command::new("/bin/true").arg(&marker).status().unwrap();
    assert!(status.success());
    let has_marker = |e: &serde_json::Value| {
        e["kind"] == "process_exec" && e["process"]["args"][1] == marker.as_str()
    };
    let printed = tokio::task::block_in_place(|| agent.wait_for(has_marker));
    let mut s = client::stream_events(
        &socket,
        EventQuery {
            kinds: vec!["process_exec".into()],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut served = Vec::new();
    while let Some(line) = tokio::time::timeout(WAIT, s.next()).await.unwrap() {
        served.push(serde_json::from_str::<serde_json::Value>(&line.unwrap()).unwrap());
    }
    assert!(
        served.iter().all(|e| e["kind"] == "process_exec"),
        "{served:#?}"
    );
    let ours: Vec<_> = served.iter().filter(|e| has_marker(e)).collect();
    assert_eq!(ours.len(), 1, "{served:#?}");
    assert_eq!(ours[0]["seq"], printed["seq"], "{:#}", ours[0]);
    assert_eq!(ours[0]["process"], printed["process"], "{:#}", ours[0]);
}
