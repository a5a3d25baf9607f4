//! The monitor's decisions against an in-memory kernel watch: what gets
//! watched, which reads become which findings, what enforcement installs.

use super::*;
use crate::event::{Kind, Severity};
use crate::kernel::decode::OpenRecord;
use crate::pipeline::emitter::Pending;
use crate::secrets::catalog::CatalogEntry;
use crate::secrets::catalog::SecretKind;
use crate::secrets::kernel_watch::RecordedWatch;
use proctor_common::MATCH_INODE;
use std::{
    collections::{HashMap, HashSet},
    fs,
    net::IpAddr,
    time::Instant,
};

/// A node in a temporary directory: four secret files of three catalog
/// entries, and a monitor over them writing to a [`RecordedWatch`].
struct Node {
    tmp: tempfile::TempDir,
}

impl Node {
    fn new() -> Node {
        let node = Node {
            tmp: tempfile::tempdir().unwrap(),
        };
        for (path, content) in [
            ("keys/a.key", "key a"),
            ("keys/b.key", "key b"),
            ("conf/app.token", "token"),
            ("srv/web/app.env", "API_KEY=1"),
            ("bin/owner", "#!/bin/true"),
        ] {
            node.write(path, content);
        }
        node
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    fn write(&self, rel: &str, content: &str) {
        let p = self.path(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
    }

    fn key(&self, rel: &str) -> InodeKey {
        inode_key(&fs::metadata(self.path(rel)).unwrap())
    }

    fn catalog(&self) -> Catalog {
        let root = self.tmp.path().display();
        let entry = |id, kind, severity, pattern: String| {
            CatalogEntry::new(id, kind, severity, &[pattern.as_str()], "test secret")
        };
        Catalog::from_entries(vec![
            entry(
                "app-key",
                SecretKind::PrivateKey,
                Severity::High,
                format!("{root}/keys/*.key"),
            ),
            entry(
                "app-token",
                SecretKind::ApiToken,
                Severity::High,
                format!("{root}/conf/app.token"),
            ),
            entry(
                "app-env",
                SecretKind::Dotenv,
                Severity::Medium,
                format!("{root}/srv/*/app.env"),
            ),
        ])
        .unwrap()
    }

    /// `policy` is the `secrets:` section as YAML; `{root}` stands for the node.
    fn monitor(&self, policy: &str) -> Result<SecretMonitor<RecordedWatch>> {
        let policy = policy.replace("{root}", &self.tmp.path().display().to_string());
        let policy: SecretsConfig = serde_yaml_ng::from_str(&policy).unwrap();
        let mut discover = DiscoverRoots::host();
        discover.passwd_homes = false;
        discover.anywhere_dirs.clear();
        SecretMonitor::new(
            policy,
            MonitorParts {
                catalog: self.catalog(),
                fingerprinter: Fingerprinter::new([7; 32]),
                store: InventoryStore::open(&self.path("state/inventory.db")).unwrap(),
                kernel: RecordedWatch::default(),
                discover,
            },
        )
    }

    /// A read of `rel` by this test process, matched by inode as the kernel would.
    fn open(&self, m: &SecretMonitor<RecordedWatch>, rel: &str) -> OpenRecord {
        let path = self.path(rel).display().to_string();
        let meta = fs::metadata(&path).unwrap();
        let key = inode_key(&meta);
        OpenRecord {
            ktime_ns: 1_000,
            pid: std::process::id(),
            tgid: std::process::id(),
            uid: 0,
            gid: 0,
            cgroup_id: 1,
            ino: meta.ino(),
            dev: meta.dev(),
            kdev: key.dev,
            readable: true,
            writable: false,
            flags: 0,
            fd: -1,
            dfd: libc::AT_FDCWD,
            syscall: 0,
            matched: MATCH_INODE,
            slot: m.kernel.inodes[&key],
            killed: false,
            denied: false,
            filename: path.clone(),
            path: Some(path),
            repeats: 0,
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec() as u32),
            ctime: (meta.ctime(), meta.ctime_nsec() as u32),
        }
    }
}

/// A process of the binary at `exe`; unhashed, so the path names its identity.
fn reader(exe: &str) -> Arc<Process> {
    let mut p = crate::testdata::process();
    p.exe.path = exe.into();
    p.exe.sha256 = None;
    Arc::new(p)
}

fn findings_of(out: &[Pending], rule: &str) -> Vec<crate::event::Finding> {
    out.iter()
        .filter_map(|p| p.finding.as_deref().cloned())
        .filter(|f| f.rule == rule)
        .collect()
}

fn read(m: &mut SecretMonitor<RecordedWatch>, rec: &OpenRecord, p: &Arc<Process>) -> Vec<Pending> {
    m.on_open(rec, p, None)
}

#[test]
fn discovery_watches_every_found_inode_and_only_glob_named_directories() {
    let node = Node::new();
    let m = node.monitor("{}").unwrap();
    let w = &m.kernel;
    for rel in [
        "keys/a.key",
        "keys/b.key",
        "conf/app.token",
        "srv/web/app.env",
    ] {
        assert!(w.inodes.contains_key(&node.key(rel)), "{rel}: {w:?}");
    }
    assert_eq!(w.inodes.len(), 4, "{w:?}");
    assert_eq!(m.stats.watched_inodes, 4);
    // New keys can appear under any name in keys/; the literal names need no dir watch.
    assert_eq!(w.dirs, HashSet::from([node.key("keys")]), "{w:?}");
    m.writer.sync();
    let stored = m.survey_store.as_ref().unwrap().secrets().unwrap();
    assert_eq!(stored.len(), 4, "{stored:?}");
    assert!(stored.iter().all(|s| s.present && s.fingerprint.is_some()));
}

#[test]
fn rescan_watches_new_files_and_marks_gone_ones_absent() {
    let node = Node::new();
    let mut m = node.monitor("{}").unwrap();
    node.write("keys/c.key", "key c");
    fs::remove_file(node.path("srv/web/app.env")).unwrap();
    // A rescan checks the paths the inventory holds as present: what the
    // writer thread has written by then (here at once; in the agent the
    // first rescan comes minutes after discovery).
    m.writer.sync();
    m.scan();
    assert!(m.kernel.inodes.contains_key(&node.key("keys/c.key")));
    let gone = node.path("srv/web/app.env").display().to_string();
    m.writer.sync();
    let stored = m.survey_store.as_ref().unwrap().secrets().unwrap();
    let row = stored.iter().find(|s| s.path == gone).unwrap();
    assert!(!row.present, "{row:?}");
}

#[test]
fn literal_names_enter_the_name_filter_with_their_anchors() {
    let node = Node::new();
    let m = node.monitor("{}").unwrap();
    let w = &m.kernel;
    // srv/*/app.env: the kernel checks the grandparent too.
    let expected = HashMap::from([("app.token".to_string(), true), ("app.env".into(), true)]);
    assert_eq!(w.names, expected, "globbed names (*.key) cannot be named");
    assert_eq!(
        w.parent_names,
        HashSet::from(["conf".to_string(), "srv".to_string()])
    );
    assert_eq!(
        w.name_lengths,
        (1 << "app.token".len()) | (1 << "app.env".len())
    );
    assert_eq!(m.stats.watched_names, 2);
}

#[test]
fn an_owners_read_is_info_and_a_foreign_read_takes_the_catalog_severity() {
    let node = Node::new();
    node.write("bin/aws", "the aws binary");
    let mut m = node
        .monitor("rules: [{secret: {id: app-token}, owners: [{exe_path: '{root}/bin/aws'}]}]")
        .unwrap();
    let rec = node.open(&m, "conf/app.token");
    let aws = node.path("bin/aws");
    let meta = fs::metadata(&aws).unwrap();
    let mut real = (*reader(aws.to_str().unwrap())).clone();
    (real.exe.dev, real.exe.inode) = (meta.dev(), meta.ino());
    let owner = read(&mut m, &rec, &Arc::new(real));
    assert_eq!(owner[0].kind, Kind::FileOpen);
    let f = &findings_of(&owner, "secret-read")[0];
    assert_eq!(f.severity, Severity::Info, "{f:?}");
    // The owner's path with another file behind it: what a private mount
    // namespace (a container, `unshare -Urm`) can show. Not the owner.
    let impostor = read(&mut m, &rec, &reader(aws.to_str().unwrap()));
    let f = &findings_of(&impostor, "secret-read")[0];
    assert_eq!(f.severity, Severity::High, "{f:?}");
    let foreign = read(&mut m, &rec, &reader("/usr/bin/curl"));
    let f = &findings_of(&foreign, "secret-read")[0];
    assert_eq!(f.severity, Severity::High, "{f:?}");
    assert_eq!(f.secret.as_ref().unwrap().id, "app-token");
    assert!(f.secret.as_ref().unwrap().fingerprint.is_some());
    assert_eq!(m.stats.reads_reported, 3);
    assert_eq!(m.reads.len(), 2, "one pending reader per identity");
}

#[test]
fn an_exception_makes_a_read_expected_with_no_finding() {
    let node = Node::new();
    let mut m = node
        .monitor("exceptions: [{secret: {id: app-token}, reader: {comm: curl}}]")
        .unwrap();
    let rec = node.open(&m, "conf/app.token");
    let out = read(&mut m, &rec, &reader("/usr/bin/curl"));
    assert_eq!(out.len(), 1, "only the file_open event");
    assert!(out[0].finding.is_none());
}

#[test]
fn a_kill_rule_allows_its_owners_and_denies_its_secrets_inodes() {
    let node = Node::new();
    let m = node
        .monitor(
            "rules:
  - secret: {id: app-token}
  - secret: {id: app-key}
    owners: [{exe_path: '{root}/bin/owner'}]
    enforce: [kill]",
        )
        .unwrap();
    let w = &m.kernel;
    assert_eq!(
        w.allowed_readers,
        HashSet::from([(1, node.key("bin/owner"))]),
        "rule 1's owner, by inode"
    );
    let expected = HashMap::from([(node.key("keys/a.key"), 1), (node.key("keys/b.key"), 1)]);
    assert_eq!(w.deny_inodes, expected, "{w:?}");
}

#[test]
fn a_kill_rule_whose_owner_is_missing_refuses_to_start() {
    let node = Node::new();
    let err = node
            .monitor(
                "rules: [{secret: {id: app-key}, owners: [{exe_path: /nonexistent/x}], enforce: [kill]}]",
            )
            .err()
            .expect("a kill rule needs its owners on disk");
    assert!(
        format!("{err:#}").contains("no regular file there"),
        "{err:#}"
    );
}

#[test]
fn a_replaced_kill_owner_keeps_its_rights_under_its_new_inode_only() {
    let node = Node::new();
    let mut m = node
        .monitor(
            "rules: [{secret: {id: app-key}, owners: [{exe_path: '{root}/bin/owner'}], enforce: [kill]}]",
        )
        .unwrap();
    let old = node.key("bin/owner");
    assert_eq!(m.kernel.allowed_readers, HashSet::from([(0, old)]));
    // dpkg's way: a new file renamed over the old one.
    node.write("bin/owner.dpkg-new", "owner v2");
    fs::rename(node.path("bin/owner.dpkg-new"), node.path("bin/owner")).unwrap();
    let new = node.key("bin/owner");
    assert_ne!(old, new);
    m.owner_files_checked = Instant::now() - Duration::from_secs(2);
    m.housekeeping();
    assert_eq!(
        m.kernel.allowed_readers,
        HashSet::from([(0, new)]),
        "the old inode number may be reused by another file"
    );
    assert_eq!(m.stats.owner_files_changed, 1);
    m.housekeeping();
    assert_eq!(
        m.stats.owner_files_changed, 1,
        "looked at most once a second"
    );
}

#[test]
fn kernel_kills_and_denials_show_as_the_findings_action() {
    let node = Node::new();
    let mut m = node.monitor("{}").unwrap();
    let mut rec = node.open(&m, "keys/a.key");
    rec.killed = true;
    let out = read(&mut m, &rec, &reader("/usr/bin/curl"));
    assert_eq!(findings_of(&out, "secret-read")[0].action, Some("killed"));
    assert_eq!(m.stats.killed, 1);
    m.flush_reads();
    let mut rec = node.open(&m, "keys/b.key");
    rec.denied = true;
    let out = read(&mut m, &rec, &reader("/usr/bin/curl"));
    assert_eq!(findings_of(&out, "secret-read")[0].action, Some("denied"));
    assert_eq!(m.stats.denied, 1);
    assert!(m.reads.is_empty(), "a refused open read nothing");
}

#[test]
fn a_stale_inode_slot_is_unwatched_and_its_deny_entry_dropped() {
    let node = Node::new();
    let mut m = node
            .monitor(
                "rules: [{secret: {id: app-key}, owners: [{exe_path: '{root}/bin/owner'}], enforce: [kill]}]",
            )
            .unwrap();
    let mut rec = node.open(&m, "keys/a.key");
    let key = node.key("keys/a.key");
    fs::remove_file(node.path("keys/a.key")).unwrap();
    // The inode number reused by another file: the kernel reports that
    // file's version, whose ctime is its creation, not the secret's.
    rec.ctime.0 += 1;
    read(&mut m, &rec, &reader("/usr/bin/curl"));
    assert!(!m.kernel.inodes.contains_key(&key));
    assert!(!m.kernel.deny_inodes.contains_key(&key));
    assert_eq!(m.stats.watched_inodes, 3);
}

#[test]
fn a_read_of_a_version_already_fingerprinted_touches_no_file() {
    let node = Node::new();
    let mut m = node.monitor("{}").unwrap();
    let rec = node.open(&m, "keys/a.key");
    let reads = m.stats.fingerprint_reads;
    // Moved away after the open: a stat or read now would miss it, the
    // kernel's version of the inode is all the judgement needs.
    fs::rename(node.path("keys/a.key"), node.path("a.key.moved")).unwrap();
    let out = read(&mut m, &rec, &reader("/usr/bin/curl"));
    let found = findings_of(&out, "secret-read");
    assert_eq!(
        found.len(),
        1,
        "{:?}",
        out.iter().map(|p| p.kind).collect::<Vec<_>>()
    );
    assert!(
        found[0].secret.as_ref().unwrap().fingerprint.is_some(),
        "{:?}",
        found[0]
    );
    assert_eq!(m.stats.fingerprint_reads, reads, "the file was read again");
    // Control: a new version (content rewritten) is read.
    fs::rename(node.path("a.key.moved"), node.path("keys/a.key")).unwrap();
    let mut changed = rec.clone();
    changed.size += 1;
    read(&mut m, &changed, &reader("/usr/bin/curl"));
    assert_eq!(m.stats.fingerprint_reads, reads + 1);
}

#[test]
fn re_reads_of_one_secret_share_what_their_findings_say_about_it() {
    let node = Node::new();
    let mut m = node.monitor("{}").unwrap();
    let rec = node.open(&m, "keys/a.key");
    let curl = reader("/usr/bin/curl");
    let secret_of = |out: &[Pending]| findings_of(out, "secret-read")[0].secret.clone().unwrap();
    let first = secret_of(&read(&mut m, &rec, &curl));
    let again = secret_of(&read(&mut m, &rec, &curl));
    assert!(Arc::ptr_eq(&first, &again), "a re-read copied its secret");
    // Another file: its own, never the cached one.
    let other = node.open(&m, "keys/b.key");
    let b = secret_of(&read(&mut m, &other, &curl));
    assert!(!Arc::ptr_eq(&first, &b));
    assert_eq!(b.path, Some(node.path("keys/b.key").display().to_string()));
    // A new version of the first: a new fingerprint, a new one.
    fs::write(node.path("keys/a.key"), "AKIAZZZZZZZZZZZZZZZZ rotated").unwrap();
    let mut changed = rec.clone();
    changed.size += 1;
    let rotated = secret_of(&read(&mut m, &changed, &curl));
    assert_ne!(rotated.fingerprint, first.fingerprint);
    assert_eq!(
        (rotated.id.as_str(), rotated.path.as_ref()),
        (first.id.as_str(), first.path.as_ref())
    );
}

#[test]
fn opens_the_filter_passed_outside_the_catalog_are_not_secrets() {
    let node = Node::new();
    let mut m = node.monitor("{}").unwrap();
    node.write("elsewhere/app.token", "not a secret");
    let mut rec = node.open(&m, "keys/a.key");
    rec.matched = 0;
    rec.path = Some(node.path("elsewhere/app.token").display().to_string());
    assert!(read(&mut m, &rec, &reader("/usr/bin/curl")).is_empty());
    assert_eq!(m.stats.opens_not_secret, 1);
}

#[test]
fn secret_search_fires_once_at_the_distinct_secret_threshold() {
    let node = Node::new();
    let mut m = node
        .monitor("search: {distinct_secrets: 3, window: 60s}")
        .unwrap();
    let p = reader("/usr/bin/curl");
    let mut fired = Vec::new();
    for rel in [
        "keys/a.key",
        "keys/a.key",
        "keys/b.key",
        "conf/app.token",
        "srv/web/app.env",
    ] {
        let rec = node.open(&m, rel);
        fired.push(findings_of(&read(&mut m, &rec, &p), "secret-search").len());
    }
    // The repeated a.key is not a new secret; after firing, the window is quiet.
    assert_eq!(fired, [0, 0, 0, 1, 0]);
}

#[test]
fn block_egress_quarantines_the_reader_and_its_children_until_exit() {
    let node = Node::new();
    let mut m = node
        .monitor("rules: [{secret: {id: app-token}, enforce: [block-egress]}]")
        .unwrap();
    let p = reader("/usr/bin/curl");
    let rec = node.open(&m, "conf/app.token");
    read(&mut m, &rec, &p);
    let inside: IpAddr = "10.1.2.3".parse().unwrap();
    assert!(
        m.on_connect(&p, inside, 443).is_empty(),
        "allowed by default"
    );
    assert!(m.kernel.quarantined.is_empty());
    let outside: IpAddr = "203.0.113.7".parse().unwrap();
    let found = m.on_connect(&p, outside, 443);
    assert_eq!(found[0].rule, "secret-exfil", "{found:?}");
    assert_eq!(found[0].action, Some("egress_blocked"));
    assert!(m.kernel.quarantined.contains_key(&p.pid));
    let parent = ProcessKey::of(&p);
    let child = ProcessKey {
        pid: 5_000,
        start_time_ns: p.start_time_ns + 10,
    };
    m.on_fork(Some(parent), child);
    assert_eq!(
        m.kernel.quarantined.get(&5_000),
        Some(&quarantine_entry(child, false)),
        "the child is quarantined as the process it is, by its start time"
    );
    m.forget_process(p.pid);
    assert_eq!(m.kernel.quarantined.keys().collect::<Vec<_>>(), [&5_000]);
    assert_eq!(m.stats.quarantined, 1);
    // pid 5000 exits unseen and is reused by a child of a clean process:
    // the new holder is not quarantined, and the old entry is lifted.
    let clean = ProcessKey {
        pid: 6_000,
        start_time_ns: 1,
    };
    let reused = ProcessKey {
        pid: 5_000,
        start_time_ns: child.start_time_ns + 1_000_000,
    };
    m.on_fork(Some(clean), reused);
    assert!(
        m.kernel.quarantined.is_empty(),
        "{:?}",
        m.kernel.quarantined
    );
    assert_eq!(m.stats.quarantined, 0);
}

#[test]
fn search_tools_hunting_secret_names_are_flagged() {
    let node = Node::new();
    let mut m = node.monitor("{}").unwrap();
    let mut p = crate::testdata::process();
    p.comm = "find".into();
    p.args = ["find", "/", "-name", "id_rsa", "-o", "-name", "app.token"]
        .map(String::from)
        .to_vec();
    let f = m.on_exec_search_tool(&p).expect("a hunt for keys");
    assert_eq!(f.rule, "secret-search");
    assert_eq!(
        f.evidence.paths[..],
        [Arc::from("id_rsa"), Arc::from("app.token")]
    );
    p.args = ["find", "/", "-name", "*.log"].map(String::from).to_vec();
    assert!(m.on_exec_search_tool(&p).is_none());
    p.comm = "cat".into();
    p.args = ["cat", "id_rsa"].map(String::from).to_vec();
    assert!(m.on_exec_search_tool(&p).is_none(), "not a search tool");
}

#[test]
fn generic_names_are_anchored_specific_ones_are_not() {
    let a = name_anchors(&Catalog::builtin());
    let config = a["config"].as_ref().expect("config is anchored");
    assert!(
        config.contains(".kube") && config.contains(".aws"),
        "{config:?}"
    );
    // The service-account token sits one level below its anchor (..data/token).
    assert!(a["token"].as_ref().unwrap().contains("serviceaccount"));
    assert!(a[".env"].is_none());
    assert!(a[".bash_history"].is_none());
}

#[test]
fn only_glob_named_entries_watch_their_directory() {
    let c = Catalog::builtin();
    let watch = |id: &str| new_files_need_dir_watch(&c.entry(id).unwrap().paths);
    assert!(watch("ssh-private-key"));
    assert!(watch("kubernetes-pki-key"));
    assert!(!watch("shadow"));
    assert!(!watch("aws-cli-credentials"));
    assert!(!watch("dotenv"));
}

#[test]
fn dev_conversion_round_trips() {
    let user = libc::makedev(259, 3);
    let k = user_dev_to_kernel(user);
    assert_eq!(k, (259 << 20) | 3);
    assert_eq!(crate::kernel::decode::kernel_dev_to_user(k), user);
}

/// A kubelet volume `pods/<uid>/volumes/kubernetes.io~secret/db` under the
/// node, `..data` pointing at `ts`, holding `password`.
fn kube_volume(node: &Node, uid: &str, ts: &str, content: &str) {
    let vol = node.path(&format!(
        "kubelet/pods/{uid}/volumes/kubernetes.io~secret/db"
    ));
    node.write(
        &format!("kubelet/pods/{uid}/volumes/kubernetes.io~secret/db/{ts}/password"),
        content,
    );
    let _ = fs::remove_file(vol.join("..data"));
    std::os::unix::fs::symlink(ts, vol.join("..data")).unwrap();
}

fn kube_pod(uid: &str, name: &str) -> crate::identity::pods::PodMeta {
    use crate::identity::pods::{SecretVolume, VolumeSource};
    crate::identity::pods::PodMeta {
        uid: uid.into(),
        namespace: Some("shop".into()),
        name: Some(name.into()),
        service_account: None,
        labels: Default::default(),
        containers: Vec::new(),
        secret_volumes: vec![SecretVolume {
            name: "db".into(),
            projected: false,
            sources: vec![VolumeSource::Secret {
                name: "db-creds".into(),
                items: vec![],
            }],
            mounts: vec![("app".into(), "/etc/db".into())],
        }],
        secret_env: Vec::new(),
        attest: Default::default(),
    }
}

#[test]
fn kubelet_secret_files_are_watched_named_bound_to_their_pods_and_followed_across_swaps() {
    use crate::identity::pods::{PodCache, SourceStats};
    let node = Node::new();
    kube_volume(&node, "ua", "..ts1", "pw-1");
    let mut m = node.monitor("{}").unwrap();
    m.watch_kubelet(node.path("kubelet"));
    let pods = PodCache::new(SourceStats::default());
    // No pod list yet: the file is not named, so not watched as a Secret.
    m.poll_kube(Some(&pods));
    assert_eq!(m.stats.kube_unnamed_files, 1);
    assert_eq!(m.stats.kube_secret_files, 0);
    let old_file = "kubelet/pods/ua/volumes/kubernetes.io~secret/db/..ts1/password";
    assert!(!m.kernel.inodes.contains_key(&node.key(old_file)));

    pods.replace(vec![kube_pod("ua", "web-a")], Instant::now());
    m.kube.as_mut().unwrap().last_poll = None;
    m.poll_kube(Some(&pods));
    assert_eq!(m.stats.kube_secret_files, 1);
    let old_key = node.key(old_file);
    assert!(m.kernel.inodes.contains_key(&old_key));

    // A reader in pod ua is its owner; anyone else replays it.
    let rec = node.open(&m, old_file);
    let mut in_pod = (*reader("/usr/bin/app")).clone();
    in_pod.pod = Some(serde_json::json!({"uid": "ua", "namespace": "shop", "name": "web-a"}));
    let own = read(&mut m, &rec, &Arc::new(in_pod));
    let f = &findings_of(&own, "secret-read")[0];
    assert_eq!(f.severity, Severity::Info, "{f:?}");
    let s = f.secret.as_ref().unwrap();
    assert_eq!(s.id, "k8s:shop/db-creds/password");
    assert_eq!(s.kind, "kubernetes_secret");
    assert_eq!(
        s.k8s.as_ref().unwrap().in_pod_paths,
        ["app:/etc/db/password"]
    );
    assert!(findings_of(&own, "secret-replay").is_empty());
    let host = read(&mut m, &rec, &reader("/usr/bin/cat"));
    let r = &findings_of(&host, "secret-replay")[0];
    assert!(
        r.summary.contains("mounted only into pods shop/web-a"),
        "{r:?}"
    );
    assert_eq!(r.evidence.identities[0], "pod:shop/web-a");

    // The kubelet swaps ..data: the new file is watched, the old forgotten.
    kube_volume(&node, "ua", "..ts2", "pw-2");
    fs::remove_dir_all(node.path("kubelet/pods/ua/volumes/kubernetes.io~secret/db/..ts1")).unwrap();
    m.kube.as_mut().unwrap().last_poll = None;
    m.poll_kube(Some(&pods));
    let new_key = node.key("kubelet/pods/ua/volumes/kubernetes.io~secret/db/..ts2/password");
    assert!(m.kernel.inodes.contains_key(&new_key));
    assert!(!m.kernel.inodes.contains_key(&old_key));
    assert_eq!(m.stats.kube_secret_files, 1);
}

/// `policy` as the monitor's reload gets it (`{root}` stands for the node).
fn prepared(
    node: &Node,
    m: &SecretMonitor<RecordedWatch>,
    policy: &str,
    catalog: Catalog,
) -> Result<PreparedPolicy> {
    let policy = policy.replace("{root}", &node.tmp.path().display().to_string());
    let policy: SecretsConfig = serde_yaml_ng::from_str(&policy).unwrap();
    m.prepare_policy(policy, catalog, m.discover.clone())
}

#[test]
fn a_reload_adds_renumbers_and_removes_kill_rules_in_the_kernel_maps() {
    let node = Node::new();
    let mut m = node.monitor("rules: []").unwrap();
    assert!(m.kernel.deny_inodes.is_empty() && m.kernel.allowed_readers.is_empty());
    let (a, b, owner) = (
        node.key("keys/a.key"),
        node.key("keys/b.key"),
        node.key("bin/owner"),
    );

    let kill = "rules:
  - secret: {id: app-token}
  - secret: {id: app-key}
    owners: [{exe_path: '{root}/bin/owner'}]
    enforce: [kill]";
    let p = prepared(&node, &m, kill, node.catalog()).unwrap();
    m.apply_policy(p);
    assert_eq!(m.kernel.allowed_readers, HashSet::from([(1, owner)]));
    assert_eq!(m.kernel.deny_inodes, HashMap::from([(a, 1), (b, 1)]));

    // The rule before it goes: the kill rule is rule 0 now, everywhere.
    let renumbered = "rules: [{secret: {id: app-key}, owners: [{exe_path: '{root}/bin/owner'}], enforce: [kill]}]";
    let p = prepared(&node, &m, renumbered, node.catalog()).unwrap();
    m.apply_policy(p);
    assert_eq!(m.kernel.allowed_readers, HashSet::from([(0, owner)]));
    assert_eq!(m.kernel.deny_inodes, HashMap::from([(a, 0), (b, 0)]));

    // A kill rule whose owner is missing is refused before anything changes.
    let missing =
        "rules: [{secret: {id: app-token}, owners: [{exe_path: /nonexistent/x}], enforce: [kill]}]";
    let err = prepared(&node, &m, missing, node.catalog()).err().unwrap();
    assert!(
        format!("{err:#}").contains("no regular file there"),
        "{err:#}"
    );
    assert_eq!(m.kernel.deny_inodes, HashMap::from([(a, 0), (b, 0)]));

    let p = prepared(&node, &m, "rules: []", node.catalog()).unwrap();
    m.apply_policy(p);
    assert!(m.kernel.allowed_readers.is_empty(), "{:?}", m.kernel);
    assert!(m.kernel.deny_inodes.is_empty(), "{:?}", m.kernel);
    assert!(
        m.kernel.inodes.contains_key(&a),
        "still watched: only the rule went"
    );
}

#[test]
fn a_reload_that_drops_a_catalog_entry_unwatches_its_files_and_keeps_bindings() {
    let node = Node::new();
    let mut m = node.monitor("rules: []").unwrap();
    let token = node.key("conf/app.token");
    assert!(m.kernel.inodes.contains_key(&token));
    assert!(m.kernel.names.contains_key("app.token"));
    let reader = Arc::new(crate::testdata::process());
    let rec = node.open(&m, "conf/app.token");
    let out = read(&mut m, &rec, &reader);
    assert!(!out.is_empty(), "the read was seen");
    let bound = m.usage.bound_secrets();
    assert_eq!(bound, 1, "the read bound the token to its reader");

    let without_token: Vec<_> = node
        .catalog()
        .entries()
        .iter()
        .filter(|e| e.id != "app-token")
        .cloned()
        .collect();
    let p = prepared(
        &node,
        &m,
        "rules: []",
        Catalog::from_entries(without_token).unwrap(),
    )
    .unwrap();
    m.apply_policy(p);
    assert!(
        !m.kernel.inodes.contains_key(&token),
        "{:?}",
        m.kernel.inodes
    );
    assert!(!m.kernel.names.contains_key("app.token"));
    assert!(
        m.kernel.inodes.contains_key(&node.key("keys/a.key")),
        "others stay"
    );
    assert_eq!(m.usage.bound_secrets(), bound, "bindings survive a reload");
}

#[tokio::test]
async fn rotation_ages_are_read_off_the_ingest_task_and_judged_on_the_next_call() {
    let node = Node::new();
    let old = std::time::SystemTime::now() - Duration::from_secs(2 * 86_400);
    fs::File::options()
        .write(true)
        .open(node.path("conf/app.token"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    // No rule sets a max_age: no inventory read at all.
    let mut quiet = node.monitor("{}").unwrap();
    assert!(quiet.stale_findings().is_empty());
    assert!(quiet.ages.idle().is_some(), "nothing was read");

    let mut m = node
        .monitor("rules:\n- secret: {path: \"{root}/conf/app.token\"}\n  max_age: 1d\n")
        .unwrap();
    m.writer.sync();
    // The first call starts the read and returns at once, with nothing to judge.
    assert!(m.stale_findings().is_empty());
    let mut found = Vec::new();
    for _ in 0..500 {
        found = m.stale_findings();
        if !found.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].rule, crate::event::rule::SECRET_STALE);
    let path = node.path("conf/app.token").display().to_string();
    assert_eq!(
        found[0].secret.as_ref().unwrap().path.as_deref(),
        Some(path.as_str())
    );
}
