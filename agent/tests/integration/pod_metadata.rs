//! Pod metadata from the kubelet's `/pods` endpoint, end to end: the real
//! agent polls an HTTPS endpoint, real processes run in cgroups shaped like
//! the kubelet's, and their events and attestation answers name the pod.
//!
//! No kubelet runs here, so the endpoint is the harness's HTTPS stand-in on
//! loopback, with a CA the test generates, serving a recorded
//! kubelet PodList (data/kubelet-podlist-standin.json) and checking
//! the bearer token like a kubelet's authenticator would.

use std::{
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::Command,
    sync::{Arc, Mutex},
};

use crate::harness::*;
use serde_json::Value;

const PODLIST: &str = include_str!("data/kubelet-podlist-standin.json");
/// The pod `shop/checkout-7c9d8f6b5-x2x8q` of the recorded list and its
/// `checkout` container: each test serves them under ids of its own.
const POD_UID: &str = "6a3e1f4b-2c7d-4e8a-9b10-5d2c8e7f1a90";
const CONTAINER_ID: &str = "8b3f5d7e9a1c2e4f6a8b0d2c4e6f8a1b3d5c7e9f0a2b4c6d8e1f3a5b7c9d0e2f";
const TOKEN: &str = "proctor-test-token-not-a-real-credential";

/// The recorded PodList with the checkout pod and container renamed.
pub(crate) fn podlist_with(uid: &str, cid: &str) -> String {
    PODLIST.replace(POD_UID, uid).replace(CONTAINER_ID, cid)
}

/// What the stand-in answers.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    PodList,
    ServerError,
    Garbage,
}

/// The kubelet (or API server) stand-in: the harness's HTTPS stand-in with
/// its own CA, answering what `answer` says to requests with the token.
pub(crate) struct Kubelet {
    server: StandIn,
    certs: Certs,
    answer: Arc<Mutex<Answer>>,
}

impl Kubelet {
    /// Serves `podlist` (see [`podlist_with`]) when `answer` says so.
    pub(crate) fn start(answer: Answer, podlist: String) -> Self {
        let certs = certs("proctor test kubelet CA");
        std::fs::write(certs.dir.path().join("token"), format!("{TOKEN}\n")).unwrap();
        let answer = Arc::new(Mutex::new(answer));
        let a = answer.clone();
        let server = StandIn::start(
            Some(&certs),
            Arc::new(move |req| respond(req, &a, &podlist)),
        );
        Self {
            server,
            certs,
            answer,
        }
    }

    fn port(&self) -> u16 {
        self.server.port()
    }

    fn set(&self, a: Answer) {
        *self.answer.lock().unwrap() = a;
    }

    fn file(&self, name: &str) -> PathBuf {
        self.certs.dir.path().join(name)
    }

    /// Requests that carried the bearer token, and those that did not.
    fn with_and_without_token(&self) -> (usize, usize) {
        let reqs = self.server.requests();
        let with = reqs.iter().filter(|r| authorized(r)).count();
        (with, reqs.len() - with)
    }

    /// Path and query of every request.
    fn paths(&self) -> Vec<String> {
        self.server.requests().into_iter().map(|r| r.path).collect()
    }

    /// The agent's `kubernetes:` section for this stand-in.
    fn config(&self) -> String {
        format!(
            "kubernetes:\n  enabled: true\n  kubelet_url: https://127.0.0.1:{}/pods\n  \
             token_file: {}\n  ca_file: {}\n  refresh_interval: 1s\n  min_refresh_interval: 200ms\n",
            self.port(),
            self.file("token").display(),
            self.certs.ca.display()
        )
    }
}

fn authorized(req: &Request) -> bool {
    req.headers.get("authorization").map(String::as_str) == Some(&format!("Bearer {TOKEN}"))
}

fn respond(req: &Request, answer: &Mutex<Answer>, podlist: &str) -> (u16, String) {
    // The kubelet's list, or the API server's restricted to node-1.
    let known = ["/pods", "/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-1"];
    if !authorized(req) {
        (401, "Unauthorized".to_string())
    } else if !known.contains(&req.path.as_str()) {
        (404, "404 page not found".to_string())
    } else {
        match *answer.lock().unwrap() {
            Answer::PodList => (200, podlist.to_string()),
            Answer::ServerError => (500, "internal error".to_string()),
            Answer::Garbage => (
                200,
                "{\"kind\":\"PodList\",\"items\":[{\"metadata\"".to_string(),
            ),
        }
    }
}

/// A cgroup where the kubelet's cgroupfs driver with containerd puts a
/// container, `/kubepods/besteffort/pod<uid>/<container id>`, with a pod uid
/// and container id of the test's own (served by its kubelet stand-in).
struct PodCgroup {
    cg: PlacedCgroup,
    rel: String,
    uid: String,
    cid: String,
}

impl PodCgroup {
    fn new(name: &str) -> Self {
        let (uid, cid) = pod_and_container_ids(&format!("pod-metadata-{name}"));
        let cg = PlacedCgroup::new(&format!("kubepods/besteffort/pod{uid}/{cid}"));
        Self {
            rel: cg.rel.clone(),
            cg,
            uid,
            cid,
        }
    }

    fn podlist(&self) -> String {
        podlist_with(&self.uid, &self.cid)
    }

    fn command(&self, program: &str) -> Command {
        self.cg.command(program)
    }
}

pub(crate) fn attest_selectors(socket: &Path, pid: u32) -> Vec<String> {
    selectors_of(&attest_json(socket, pid))
}

/// `proctor attest PID --json` against the agent on `socket`.
pub(crate) fn attest_json(socket: &Path, pid: u32) -> Value {
    let pid = pid.to_string();
    let out = proctor_ok([
        "attest".as_ref(),
        pid.as_ref(),
        "--json".as_ref(),
        "--socket".as_ref(),
        socket.as_os_str(),
    ]);
    serde_json::from_slice(&out).unwrap()
}

/// `type:value` of each selector in an attest answer.
pub(crate) fn selectors_of(id: &Value) -> Vec<String> {
    id["selectors"]
        .as_array()
        .unwrap_or_else(|| panic!("no selectors in {id:#}"))
        .iter()
        .map(|s| {
            format!(
                "{}:{}",
                s["type"].as_str().unwrap(),
                s["value"].as_str().unwrap()
            )
        })
        .collect()
}

pub(crate) fn agent_config(socket: &Path, kubelet: &Kubelet) -> String {
    format!(
        "status_interval: 1s\nmetrics:\n  listen: 127.0.0.1:0\napi:\n  socket: {}\n{}",
        socket.display(),
        kubelet.config()
    )
}

pub(crate) fn pod_status(e: &Value) -> &Value {
    &e["status"]["pod_metadata"]
}

fn exec_in(cg: &PodCgroup, agent: &AgentProc, name: &str) -> Value {
    let m = marker(name);
    run(cg.command("/bin/true").arg(&m));
    agent.wait_for(|e| is_exec_with(e, &m))
}

#[test]
fn kubelet_pod_metadata_names_the_pod_in_events_and_attestation() {
    let cg = PodCgroup::new("meta");
    let kubelet = Kubelet::start(Answer::PodList, cg.podlist());
    // Running before the agent: found by the start-up scan.
    let sleeper = Kid(cg.command("/bin/sleep").arg("120").spawn().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("api.sock");
    let agent = AgentProc::start(&agent_config(&socket, &kubelet));

    let st = agent.wait_for(|e| e["kind"] == "agent_status" && pod_status(e)["state"] == "ok");
    let ps = pod_status(&st);
    assert_eq!(ps["source"], "kubelet", "{ps:#}");
    assert_eq!(ps["pods"], 3, "{ps:#}");
    assert_eq!(ps["fetches_failed"], 0, "{ps:#}");
    let (with_token, without_token) = kubelet.with_and_without_token();
    assert!(with_token >= 1, "the agent never sent the bearer token");
    assert_eq!(without_token, 0, "a request came without the token");
    // The token never shows up in what the agent prints.
    assert!(!agent.stderr().contains(TOKEN));

    let ev = exec_in(&cg, &agent, "pod-exec");
    let p = &ev["process"];
    assert_eq!(p["cgroup"]["path"], cg.rel.as_str(), "{ev:#}");
    assert_eq!(p["pod"]["uid"], cg.uid, "{ev:#}");
    assert_eq!(p["pod"]["namespace"], "shop", "{ev:#}");
    assert_eq!(p["pod"]["name"], "checkout-7c9d8f6b5-x2x8q", "{ev:#}");
    assert_eq!(p["pod"]["service_account"], "checkout", "{ev:#}");
    assert_eq!(p["pod"]["labels"]["app"], "checkout", "{ev:#}");
    assert_eq!(p["container"]["id"], cg.cid, "{ev:#}");
    assert_eq!(p["container"]["runtime"], "containerd", "{ev:#}");
    assert_eq!(p["container"]["name"], "checkout", "{ev:#}");
    assert_eq!(
        p["container"]["image"], "registry.example/shop/checkout:1.4.2",
        "{ev:#}"
    );

    let sel = attest_selectors(&socket, sleeper.0.id());
    for want in [
        format!("k8s:pod-uid:{}", cg.uid),
        "k8s:ns:shop".into(),
        "k8s:sa:checkout".into(),
        "k8s:pod-name:checkout-7c9d8f6b5-x2x8q".into(),
        "k8s:pod-label:app:checkout".into(),
        "k8s:pod-label:pod-template-hash:7c9d8f6b5".into(),
        "k8s:container-name:checkout".into(),
        "k8s:container-image:registry.example/shop/checkout:1.4.2".into(),
        "k8s:container-image:registry.example/shop/checkout@sha256:9c2e4a6f8b0d1c3e5a7f9b2d4c6e8a0f1b3d5c7e9a2f4b6d8c0e1a3f5b7d9c2e".into(),
        format!("proctor:container-id:{}", cg.cid),
        "proctor:attestation:procfs-scan".into(),
    ] {
        assert!(sel.contains(&want), "{want} missing from {sel:#?}");
    }
    // A process outside any pod gets no k8s selectors.
    let plain = Kid(Command::new("/bin/sleep").arg("60").spawn().unwrap());
    let m = plain.0.id();
    agent.wait_for(|e| e["kind"] == "process_exec" && e["process"]["pid"] == m);
    let sel = attest_selectors(&socket, m);
    assert!(!sel.iter().any(|s| s.starts_with("k8s:")), "{sel:#?}");
    drop(sleeper);
    agent.stop();
}

#[test]
fn kubelet_down_agent_answers_from_cgroups_and_reports_the_outage() {
    let cg = PodCgroup::new("down");
    let kubelet = Kubelet::start(Answer::Garbage, cg.podlist());
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("api.sock");
    let agent = AgentProc::start(&agent_config(&socket, &kubelet));

    // Several failed fetches: one outage, counted, explained.
    let st = agent.wait_for(|e| {
        e["kind"] == "agent_status" && pod_status(e)["consecutive_failures"].as_u64() >= Some(3)
    });
    let ps = pod_status(&st);
    assert_eq!(ps["state"], "failing", "{ps:#}");
    assert_eq!(ps["outages"], 1, "{ps:#}");
    assert_eq!(ps["fetches_ok"], 0, "{ps:#}");
    let err = ps["last_error"].as_str().unwrap();
    assert!(err.contains("not JSON") && err.contains("/pods"), "{err}");

    // Events and attestation still carry the cgroup evidence.
    let ev = exec_in(&cg, &agent, "down-exec");
    let p = &ev["process"];
    assert_eq!(p["pod"]["uid"], cg.uid, "{ev:#}");
    assert!(p["pod"]["namespace"].is_null(), "{ev:#}");
    assert_eq!(p["container"]["id"], cg.cid, "{ev:#}");
    assert!(p["container"].get("name").is_none(), "{ev:#}");
    let sleeper = Kid(cg.command("/bin/sleep").arg("120").spawn().unwrap());
    let pid = sleeper.0.id();
    agent.wait_for(|e| e["kind"] == "process_exec" && e["process"]["pid"] == pid);
    let sel = attest_selectors(&socket, pid);
    assert!(sel.contains(&format!("k8s:pod-uid:{}", cg.uid)), "{sel:#?}");
    assert!(
        sel.contains(&format!("proctor:container-id:{}", cg.cid)),
        "{sel:#?}"
    );
    assert!(!sel.iter().any(|s| s.starts_with("k8s:ns:")), "{sel:#?}");

    // HTTP 500 is the same outage: no second warning.
    kubelet.set(Answer::ServerError);
    let before = pod_status(&st)["fetches_failed"].as_u64().unwrap();
    let st = agent.wait_for(|e| {
        e["kind"] == "agent_status"
            && pod_status(e)["last_error"]
                .as_str()
                .is_some_and(|s| s.contains("HTTP 500"))
    });
    let ps = pod_status(&st);
    assert!(ps["fetches_failed"].as_u64().unwrap() > before, "{ps:#}");
    assert_eq!(ps["outages"], 1, "{ps:#}");
    let metrics_addr = st["status"]["metrics_listen"].as_str().unwrap().to_string();
    let (_, metrics) = http_get(&metrics_addr, "/metrics");
    let failed = metrics
        .lines()
        .find(|l| l.starts_with("proctor_pod_metadata_fetches_total{outcome=\"failed\"}"))
        .unwrap_or_else(|| panic!("no failed-fetch counter in:\n{metrics}"));
    let n: f64 = failed.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n >= 1.0, "{failed}");
    assert!(
        agent.stderr_shows("pod metadata unavailable"),
        "no outage warning:\n{}",
        agent.stderr()
    );
    let warnings = agent.stderr().matches("pod metadata unavailable").count();
    assert_eq!(warnings, 1, "one warning per outage:\n{}", agent.stderr());

    // The kubelet answers again: the same process is named by its pod.
    kubelet.set(Answer::PodList);
    agent.wait_for(|e| e["kind"] == "agent_status" && pod_status(e)["state"] == "ok");
    let sel = attest_selectors(&socket, pid);
    assert!(sel.contains(&"k8s:ns:shop".to_string()), "{sel:#?}");
    assert!(
        sel.contains(&"k8s:container-name:checkout".to_string()),
        "{sel:#?}"
    );
    drop(sleeper);
    agent.stop();
}

/// In a pod the agent has a cgroup namespace of its own while the host's
/// cgroup tree is mounted: /proc/<pid>/cgroup shows other processes'
/// cgroups relative to the agent's (`/../..`). Paths must still come out as
/// the host's, for processes found at start-up as for new ones.
#[test]
fn agent_in_its_own_cgroup_namespace_reports_host_cgroup_paths() {
    let cg = PodCgroup::new("cgns");
    let kubelet = Kubelet::start(Answer::PodList, cg.podlist());
    let sleeper = Kid(cg.command("/bin/sleep").arg("120").spawn().unwrap());
    let root = proctor::kernel::mounts::cgroup2_mount().expect("cgroup2 is mounted");
    let agent_cg = root.join(format!(
        "proctor-test-{}-cgns-agent/pod-agent",
        std::process::id()
    ));
    std::fs::create_dir_all(&agent_cg).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("api.sock");
    let procs = agent_cg.join("cgroup.procs");
    let agent = AgentProc::start_with(&agent_config(&socket, &kubelet), |cmd| unsafe {
        cmd.pre_exec(move || {
            std::fs::write(&procs, b"0")?;
            if libc::unshare(libc::CLONE_NEWCGROUP) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    });
    // The agent really is in a cgroup namespace of its own.
    let ns = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/cgroup")).unwrap();
    assert_ne!(ns(&agent.pid().to_string()), ns("self"));
    agent.wait_for(|e| e["kind"] == "agent_status" && pod_status(e)["state"] == "ok");

    let id = attest_json(&socket, sleeper.0.id());
    assert_eq!(id["cgroup_path"], cg.rel.as_str(), "{id:#}");
    let sel = selectors_of(&id);
    assert!(sel.contains(&format!("k8s:pod-uid:{}", cg.uid)), "{sel:#?}");
    assert!(sel.contains(&"k8s:ns:shop".to_string()), "{sel:#?}");

    let ev = exec_in(&cg, &agent, "cgns-exec");
    assert_eq!(ev["process"]["cgroup"]["path"], cg.rel.as_str(), "{ev:#}");
    assert_eq!(
        ev["process"]["pod"]["name"], "checkout-7c9d8f6b5-x2x8q",
        "{ev:#}"
    );
    drop(sleeper);
    agent.stop();
    let _ = std::fs::remove_dir(&agent_cg);
    let _ = std::fs::remove_dir(agent_cg.parent().unwrap());
}

/// `source: api_server`: the same PodList, from the API server's pod list
/// restricted to this node (a stand-in on loopback again).
#[test]
fn api_server_source_lists_only_this_nodes_pods() {
    let cg = PodCgroup::new("apisrv");
    let api = Kubelet::start(Answer::PodList, cg.podlist());
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("api.sock");
    let config = format!(
        "node_name: node-1\nstatus_interval: 1s\nmetrics:\n  listen: 127.0.0.1:0\napi:\n  \
         socket: {}\nkubernetes:\n  enabled: true\n  source: api_server\n  \
         api_server_url: https://127.0.0.1:{}\n  token_file: {}\n  ca_file: {}\n  \
         refresh_interval: 1s\n",
        socket.display(),
        api.port(),
        api.file("token").display(),
        api.certs.ca.display()
    );
    let agent = AgentProc::start(&config);
    let st = agent.wait_for(|e| e["kind"] == "agent_status" && pod_status(e)["state"] == "ok");
    assert_eq!(pod_status(&st)["source"], "api_server", "{st:#}");
    let paths = api.paths();
    assert!(
        paths
            .iter()
            .all(|p| p == "/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-1"),
        "{paths:?}"
    );
    let ev = exec_in(&cg, &agent, "apisrv-exec");
    assert_eq!(ev["process"]["pod"]["namespace"], "shop", "{ev:#}");
    assert_eq!(ev["process"]["container"]["name"], "checkout", "{ev:#}");
    agent.stop();
}
