//! Kubernetes Secrets end to end: a kubelet directory layout of two pods' Secret and projected volumes, the pod list from the HTTPS kubelet stand-in, real readers placed in the pods' cgroups.
//!
//! Pod `shop/web-a` mounts Secret `db-creds` (volume `db`), Secret `rot`
//! (volume `rotating`, swapped by a test like the kubelet does) and its
//! service-account token (projected, beside a configMap key); its container
//! `app` gets `DB_PASSWORD` from `secretKeyRef db-creds/password`. Pod
//! `shop/batch-b` mounts Secret `api-key` (other content). Readers are
//! `cat` processes joined to the pods' containers' cgroups, or on the host.

use std::{
    fs,
    os::unix::{fs::symlink, process::CommandExt},
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
    time::{Duration, Instant},
};

use crate::harness::*;
use crate::pod_metadata::{agent_config, pod_status, Answer, Kubelet};
use proctor::secrets::fingerprint::Fingerprinter;
use serde_json::{json, Value};

const KEY_HEX: &str = "3b1c2a9e4b6d8f0a1c3e5a7b9d1f2e4c6a8b0d2f4e6a8c0b2d4f6e8a0c2e4a6b";
/// Secret volume files the agent names: db/password, rotating/token,
/// kube-api-access/token, api/key (kube-api-access/ca.crt is a configMap key).
const NAMED_FILES: u64 = 4;

/// Secret values, assembled at run time so no credential-shaped literal
/// sits in the source.
fn db_password() -> String {
    format!("{}{}", "kq7Vz2Lp9", "Xw4Tn8Rb3Hs")
}
fn api_key() -> String {
    format!("{}{}", "ak_7fQ2mZ9x", "Lr4Vt8Kc1Wp")
}
fn sa_token() -> String {
    format!(
        "{}.{}.{}",
        "eyJhbGciOiJSUzI1NiJ9", "eyJzdWIiOiJ3ZWIifQ", "c2lnbmF0dXJl"
    )
}
fn rot_value(n: u32) -> String {
    format!("rot-{n}-{}", "Qm3Xv8Zk2Np7")
}

fn fingerprint(v: &str) -> String {
    Fingerprinter::from_hex(KEY_HEX)
        .unwrap()
        .fingerprint(v.as_bytes())
}

struct Pod {
    cg: PlacedCgroup,
    uid: String,
    cid: String,
}

impl Pod {
    fn new(name: &str) -> Pod {
        let (uid, cid) = pod_and_container_ids(&format!("kube-secrets-{name}"));
        let cg = PlacedCgroup::new(&format!("kubepods/besteffort/pod{uid}/{cid}"));
        Pod { cg, uid, cid }
    }
}

struct Fixture {
    agent: AgentProc,
    root: tempfile::TempDir,
    /// Empty files named by markers, for `cat`'s argv.
    markers: tempfile::TempDir,
    a: Pod,
    b: Pod,
    _kubelet: Kubelet,
    _state: tempfile::TempDir,
}

const TS1: &str = "..2026_12_04_21_00_00.000000001";

/// A volume as the kubelet writes it: files in a timestamped directory,
/// `..data` pointing at it, each key a link through `..data`.
fn volume(root: &Path, uid: &str, plugin: &str, name: &str, keys: &[(&str, &str)]) -> PathBuf {
    let vol = root.join(format!("pods/{uid}/volumes/{plugin}/{name}"));
    fs::create_dir_all(vol.join(TS1)).unwrap();
    for (k, v) in keys {
        fs::write(vol.join(TS1).join(k), v).unwrap();
        symlink(format!("..data/{k}"), vol.join(k)).unwrap();
    }
    symlink(TS1, vol.join("..data")).unwrap();
    vol
}

fn podlist(a: &Pod, b: &Pod) -> String {
    let status = |name: &str, cid: &str| {
        json!({"phase": "Running", "containerStatuses": [{
            "name": name, "image": "registry.example/shop/app:1", "imageID": "",
            "containerID": format!("containerd://{cid}")}]})
    };
    json!({"kind": "PodList", "apiVersion": "v1", "items": [
        {"metadata": {"uid": a.uid, "namespace": "shop", "name": "web-a"},
         "spec": {"serviceAccountName": "web",
            "volumes": [
                {"name": "db", "secret": {"secretName": "db-creds"}},
                {"name": "rotating", "secret": {"secretName": "rot"}},
                {"name": "kube-api-access", "projected": {"sources": [
                    {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
                    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}}]}}],
            "containers": [{"name": "app",
                "volumeMounts": [{"name": "db", "mountPath": "/etc/db"},
                                 {"name": "kube-api-access", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}],
                "env": [{"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db-creds", "key": "password"}}},
                        {"name": "GREETING", "value": "hello"}]}]},
         "status": status("app", &a.cid)},
        {"metadata": {"uid": b.uid, "namespace": "shop", "name": "batch-b"},
         "spec": {"serviceAccountName": "batch",
            "volumes": [{"name": "api", "secret": {"secretName": "api-key"}}],
            "containers": [{"name": "job", "volumeMounts": [{"name": "api", "mountPath": "/etc/api"}]}]},
         "status": status("job", &b.cid)}
    ]})
    .to_string()
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        // Kubelet Secret volumes are tmpfs: so are these.
        let root = tempfile::tempdir_in(own_tmpfs()).unwrap();
        let (a, b) = (Pod::new("a"), Pod::new("b"));
        let (pw, key, token, rot) = (db_password(), api_key(), sa_token(), rot_value(1));
        volume(root.path(), &a.uid, "kubernetes.io~secret", "db", &[("password", &pw)]);
        volume(root.path(), &a.uid, "kubernetes.io~secret", "rotating", &[("token", &rot)]);
        volume(
            root.path(),
            &a.uid,
            "kubernetes.io~projected",
            "kube-api-access",
            &[("token", &token), ("ca.crt", "-----BEGIN CERTIFICATE-----\n")],
        );
        volume(root.path(), &b.uid, "kubernetes.io~secret", "api", &[("key", &key)]);
        let kubelet = Kubelet::start(Answer::PodList, podlist(&a, &b));
        let state = tempfile::tempdir().unwrap();
        let socket = state.path().join("api.sock");
        // The kubernetes section comes last: kubelet_root joins it.
        let config = format!(
            "state_dir: {}\nfingerprint:\n  key: {KEY_HEX}\nsecrets:\n  search_dirs: []\n{}  kubelet_root: {}\n",
            state.path().display(),
            agent_config(&socket, &kubelet),
            root.path().display()
        );
        let agent = AgentProc::start(&config);
        agent.wait_for(|e| {
            e["kind"] == "agent_status"
                && pod_status(e)["state"] == "ok"
                && e["status"]["secrets"]["kube_secret_files"].as_u64() == Some(NAMED_FILES)
        });
        Fixture {
            agent,
            root,
            markers: tempfile::tempdir().unwrap(),
            a,
            b,
            _kubelet: kubelet,
            _state: state,
        }
    })
}

impl Fixture {
    fn file(&self, pod: &Pod, plugin: &str, volume: &str, key: &str) -> PathBuf {
        self.root
            .path()
            .join(format!("pods/{}/volumes/{plugin}/{volume}/{key}", pod.uid))
    }

    /// `cat <path> <marker>` (the marker an empty file), in `pod`'s container
    /// or on the host; returns the marker.
    fn cat(&self, pod: Option<&Pod>, path: &Path, name: &str) -> String {
        let m = marker(name);
        fs::write(self.markers.path().join(&m), "").unwrap();
        let mut cmd = match pod {
            Some(p) => p.cg.command("/bin/cat"),
            None => Command::new("/bin/cat"),
        };
        run(cmd.arg(path).arg(&m).current_dir(self.markers.path()));
        m
    }

    fn finding(&self, rule: &str, m: &str) -> Value {
        self.agent
            .wait_for(|e| e["kind"] == "finding" && e["finding"]["rule"] == rule && has_arg(e, m))
    }

    /// Findings of `rule` for marker `m` so far (after a later event proved
    /// the agent had handled `m`'s reads).
    fn findings_now(&self, rule: &str, m: &str) -> Vec<Value> {
        self.agent
            .events()
            .into_iter()
            .filter(|e| e["kind"] == "finding" && e["finding"]["rule"] == rule && has_arg(e, m))
            .collect()
    }
}

#[test]
fn a_pods_read_of_its_own_secret_is_a_secret_read_naming_the_secret_and_no_replay() {
    let f = fixture();
    let path = f.file(&f.a, "kubernetes.io~secret", "db", "password");
    let m = f.cat(Some(&f.a), &path, "own-read");
    let read = f.finding("secret-read", &m);
    let s = &read["finding"]["secret"];
    assert_eq!(s["id"], "k8s:shop/db-creds/password", "{read:#}");
    assert_eq!(s["kind"], "kubernetes_secret", "{read:#}");
    assert_eq!(s["fingerprint"], fingerprint(&db_password()), "{read:#}");
    assert_eq!(s["k8s"]["namespace"], "shop", "{read:#}");
    assert_eq!(s["k8s"]["name"], "db-creds", "{read:#}");
    assert_eq!(s["k8s"]["key"], "password", "{read:#}");
    assert_eq!(s["k8s"]["pod_uid"], f.a.uid, "{read:#}");
    assert_eq!(s["k8s"]["pod"], "web-a", "{read:#}");
    assert_eq!(s["k8s"]["volume"], "db", "{read:#}");
    assert_eq!(
        s["k8s"]["in_pod_paths"],
        json!(["app:/etc/db/password"]),
        "{read:#}"
    );
    assert_eq!(
        read["finding"]["severity"], "info",
        "the pod mounts it: {read:#}"
    );
    assert_eq!(read["process"]["pod"]["uid"], f.a.uid, "{read:#}");
    // The file_open before it carries the path the reader opened.
    let open = f
        .agent
        .wait_for(|e| e["kind"] == "file_open" && has_arg(e, &m));
    // On the page-cache hook set there is no open to see, only the read
    // (on this tmpfs, through its fanotify mark): the path is then the
    // catalogued one (kubelet's resolved timestamped directory) and nothing
    // was "requested".
    if open["file"]["via"] == "page_cache" || open["file"]["via"] == "fanotify" {
        let resolved = std::fs::canonicalize(&path).unwrap();
        assert_eq!(open["file"]["path"], resolved.to_str().unwrap(), "{open:#}");
    } else {
        assert_eq!(
            open["file"]["requested_path"],
            path.to_str().unwrap(),
            "{open:#}"
        );
    }
    assert_eq!(
        open["file"]["secret_id"], "k8s:shop/db-creds/password",
        "{open:#}"
    );

    // Side by side: a foreign read of the same file (a workload of its own
    // cgroup, in no pod) does raise replay: the hook and the binding were
    // live for this one.
    let outsider = PlacedCgroup::new(&format!("kube-secrets-outsider-{}", std::process::id()));
    let foreign = marker("own-read-control");
    fs::write(f.markers.path().join(&foreign), "").unwrap();
    run(outsider
        .command("/bin/cat")
        .arg(&path)
        .arg(&foreign)
        .current_dir(f.markers.path()));
    f.finding("secret-replay", &foreign);
    assert!(
        f.findings_now("secret-replay", &m).is_empty(),
        "the pod's own read was called replay: {:#?}",
        f.findings_now("secret-replay", &m)
    );
    assert!(
        !f.agent.stderr().contains(&db_password()),
        "the value leaked into logs"
    );
    let events: String = f.agent.events().iter().map(|e| e.to_string()).collect();
    assert!(
        !events.contains(&db_password()),
        "the value leaked into events"
    );
}

#[test]
fn a_read_by_another_pod_or_the_host_is_replay_naming_the_secret_and_its_pods() {
    let f = fixture();
    let path = f.file(&f.a, "kubernetes.io~secret", "db", "password");
    let m = f.cat(Some(&f.b), &path, "other-pod");
    let replay = f.finding("secret-replay", &m);
    let summary = replay["finding"]["summary"].as_str().unwrap();
    assert!(
        summary.contains("k8s:shop/db-creds/password")
            && summary.contains("pod shop/batch-b")
            && summary.contains("mounted only into pods shop/web-a"),
        "{replay:#}"
    );
    assert_eq!(replay["finding"]["severity"], "high", "{replay:#}");
    let ids = &replay["finding"]["evidence"]["identities"];
    assert_eq!(ids[0], "pod:shop/web-a", "{replay:#}");
    let read = f.finding("secret-read", &m);
    assert_eq!(
        read["finding"]["severity"], "high",
        "a foreign read: {read:#}"
    );

    // The host, as a pod of none.
    let h = f.cat(None, &path, "host-read");
    let replay = f.finding("secret-replay", &h);
    assert!(
        replay["finding"]["summary"]
            .as_str()
            .unwrap()
            .contains("no pod (the node)"),
        "{replay:#}"
    );

    // The service-account token, read from the host: named by its account.
    let tok = f.file(&f.a, "kubernetes.io~projected", "kube-api-access", "token");
    let t = f.cat(None, &tok, "token-read");
    let read = f.finding("secret-read", &t);
    let s = &read["finding"]["secret"];
    assert_eq!(s["id"], "k8s:shop/serviceaccount:web/token", "{read:#}");
    assert_eq!(s["kind"], "kubernetes_token", "{read:#}");
    f.finding("secret-replay", &t);

    // Control beside it: pod B reading its own Secret is no replay, and a
    // configMap key of a projected volume is no secret at all.
    let own = f.file(&f.b, "kubernetes.io~secret", "api", "key");
    let o = f.cat(Some(&f.b), &own, "b-own");
    let read = f.finding("secret-read", &o);
    assert_eq!(
        read["finding"]["secret"]["id"], "k8s:shop/api-key/key",
        "{read:#}"
    );
    let ca = f.file(&f.a, "kubernetes.io~projected", "kube-api-access", "ca.crt");
    let c = f.cat(None, &ca, "ca-read");
    // A later read proves both reads were handled.
    let later = f.cat(None, &own, "after-controls");
    f.finding("secret-read", &later);
    assert!(
        f.findings_now("secret-replay", &o).is_empty(),
        "pod B's own read was replay"
    );
    assert!(
        f.findings_now("secret-read", &c).is_empty(),
        "a configMap key was called a secret"
    );
}

#[test]
fn the_kubelets_data_swap_is_followed_and_the_new_content_is_watched() {
    let f = fixture();
    let vol = f.root.path().join(format!(
        "pods/{}/volumes/kubernetes.io~secret/rotating",
        f.a.uid
    ));
    let path = vol.join("token");
    let m = f.cat(Some(&f.a), &path, "before-swap");
    let read = f.finding("secret-read", &m);
    assert_eq!(
        read["finding"]["secret"]["fingerprint"],
        fingerprint(&rot_value(1)),
        "{read:#}"
    );

    // What the kubelet's AtomicWriter does: a new timestamped directory,
    // `..data` replaced by rename, the old directory removed.
    let ts2 = "..2026_12_04_22_00_00.000000002";
    fs::create_dir_all(vol.join(ts2)).unwrap();
    fs::write(vol.join(ts2).join("token"), rot_value(2)).unwrap();
    symlink(ts2, vol.join("..data_tmp")).unwrap();
    fs::rename(vol.join("..data_tmp"), vol.join("..data")).unwrap();
    fs::remove_dir_all(vol.join(TS1)).unwrap();

    // Within the poll interval the new file is watched: a read reports it.
    let want = fingerprint(&rot_value(2));
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    loop {
        let m = f.cat(Some(&f.a), &path, "after-swap");
        let wait_until = Instant::now() + Duration::from_secs(3);
        let mut reads = Vec::new();
        while reads.is_empty() && Instant::now() < wait_until {
            std::thread::sleep(Duration::from_millis(200));
            reads = f.findings_now("secret-read", &m);
        }
        if let Some(read) = reads.first() {
            let s = &read["finding"]["secret"];
            if s["fingerprint"] == want.as_str() {
                assert_eq!(s["id"], "k8s:shop/rot/token", "{read:#}");
                assert_eq!(read["finding"]["severity"], "info", "{read:#}");
                break;
            }
            seen.push(read.clone());
        }
        assert!(
            Instant::now() < deadline,
            "no read after the swap was reported with the new content; reads seen: {seen:#?}"
        );
    }
}

#[test]
fn a_secret_key_ref_variable_is_secret_env_naming_the_secret_and_a_plain_one_is_not() {
    let f = fixture();
    let m = marker("key-ref");
    // Alive while the agent reads its environment at exec.
    let _a = Kid(f
        .a
        .cg
        .command("/bin/sleep")
        .arg("3")
        .arg0(&m)
        .env_clear()
        .env("DB_PASSWORD", db_password())
        .env("GREETING", "hello")
        .spawn()
        .unwrap());
    let env = f.finding("secret-env", &m);
    let s = &env["finding"]["secret"];
    assert_eq!(s["id"], "k8s:shop/db-creds/password", "{env:#}");
    assert_eq!(s["variable"], "DB_PASSWORD", "{env:#}");
    assert_eq!(s["kind"], "kubernetes_secret", "{env:#}");
    assert_eq!(s["k8s"]["pod_uid"], f.a.uid, "{env:#}");
    assert_eq!(s["fingerprint"], fingerprint(&db_password()), "{env:#}");
    // The same exec's plain variable: no finding (the exec was handled, the
    // DB_PASSWORD finding above is its).
    let plain: Vec<Value> = f
        .findings_now("secret-env", &m)
        .into_iter()
        .filter(|e| e["finding"]["secret"]["variable"] != "DB_PASSWORD")
        .collect();
    assert!(
        plain.is_empty(),
        "a plain variable was called a secret: {plain:#?}"
    );
    // Pod B's spec sets no variable from a Secret: the same name and value
    // there is not a secretKeyRef.
    let b = marker("no-key-ref");
    let _b = Kid(f
        .b
        .cg
        .command("/bin/sleep")
        .arg("3")
        .arg0(&b)
        .env_clear()
        .env("DB_PASSWORD", db_password())
        .spawn()
        .unwrap());
    f.agent
        .wait_for(|e| e["kind"] == "process_exec" && has_arg(e, &b));
    let later = f.cat(
        None,
        &f.file(&f.b, "kubernetes.io~secret", "api", "key"),
        "after-env",
    );
    f.finding("secret-read", &later);
    let named: Vec<Value> = f
        .findings_now("secret-env", &b)
        .into_iter()
        .filter(|e| e["finding"]["secret"]["k8s"].is_object())
        .collect();
    assert!(
        named.is_empty(),
        "pod B's variable was named as a Secret: {named:#?}"
    );
}
