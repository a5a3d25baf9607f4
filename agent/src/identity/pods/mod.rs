//! Pod metadata: cgroup paths name a pod by uid and a container by id; the
//! kubelet (or the API server) knows their namespace, name, service account,
//! labels, container names and images. This cache holds the latest pod list,
//! refreshed in the background, so that events and attestation answers read it without any
//! network call. When the kubelet cannot be reached the agent keeps
//! answering from the cgroup evidence alone (pod uid, container id) and
//! reports the failures (`agent_status.pod_metadata`, a metric, one warning
//! per outage).

pub mod config;
pub mod podlist;
pub mod source;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, RwLock},
    time::{Duration, Instant},
};

use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::Notify;

pub use config::KubernetesConfig;
pub use podlist::{ContainerMeta, PodMeta};

use crate::event::Process;

/// A pod the kubelet stopped listing is kept this long: its processes' exit
/// events and late attestation calls still get its name.
const KEEP_GONE_PODS: Duration = Duration::from_secs(300);
/// A pod or container still unknown after a refresh asks again only after this.
const ASK_AGAIN_AFTER: Duration = Duration::from_secs(30);
const MAX_ASKED: usize = 4096;

struct Entry {
    pod: Arc<PodMeta>,
    seen: Instant,
}

#[derive(Default)]
struct Pods {
    by_uid: HashMap<String, Entry>,
    /// container id -> (pod uid, index in that pod's containers)
    by_container: HashMap<String, (String, usize)>,
}

/// What the source has done so far (for `agent_status` and metrics).
#[derive(Debug, Clone, Default, Serialize)]
pub struct SourceStats {
    /// kubelet | api_server | none
    pub source: &'static str,
    /// starting | ok | failing | disabled
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub fetches_ok: u64,
    pub fetches_failed: u64,
    /// Failures since the last success.
    pub consecutive_failures: u64,
    /// Times the source went from answering to failing (or failed from the start).
    pub outages: u64,
    /// Refreshes asked for by an unknown pod or container, besides the periodic ones.
    pub on_demand_refreshes: u64,
    /// PodList items the agent could not use (no uid).
    pub skipped_items: u64,
    pub last_error: Option<String>,
    /// RFC 3339 time of the last good answer.
    pub last_success: Option<String>,
    pub pods: usize,
}

/// The pod metadata the agent knows, shared by the event path, the API and
/// the source that fills it.
pub struct PodCache {
    pods: RwLock<Pods>,
    /// Rung when a lookup finds a pod or container the cache does not know.
    wanted: Notify,
    asked: Mutex<HashMap<String, Instant>>,
    stats: Mutex<SourceStats>,
}

/// The pod (and container) a process belongs to, as the cache knows them.
pub struct Found {
    pub pod: Arc<PodMeta>,
    pub container: Option<usize>,
}

impl Found {
    pub fn container(&self) -> Option<&ContainerMeta> {
        self.container.and_then(|i| self.pod.containers.get(i))
    }

    /// Writes the pod into `p.pod` and the container's name and image into
    /// `p.container`.
    pub fn apply(&self, p: &mut Process) {
        let pod = &self.pod;
        p.pod = Some(json!({
            "uid": pod.uid,
            "namespace": pod.namespace,
            "name": pod.name,
            "service_account": pod.service_account,
            "labels": pod.labels,
        }));
        if let (Some(c), Some(Value::Object(obj))) = (self.container(), p.container.as_mut()) {
            obj.insert("name".into(), json!(c.name));
            obj.insert("image".into(), json!(c.image));
            obj.insert("image_id".into(), json!(c.image_id));
        }
    }
}

fn str_field<'a>(v: Option<&'a Value>, key: &str) -> Option<&'a str> {
    v?.get(key)?.as_str().filter(|s| !s.is_empty())
}

impl PodCache {
    pub fn new(stats: SourceStats) -> Arc<Self> {
        Arc::new(Self {
            pods: RwLock::default(),
            wanted: Notify::new(),
            asked: Mutex::default(),
            stats: Mutex::new(stats),
        })
    }

    /// Replaces the cache with a fresh PodList; pods no longer listed stay
    /// for a while (see [`KEEP_GONE_PODS`]).
    pub fn replace(&self, pods: Vec<PodMeta>, now: Instant) {
        let mut g = self.pods.write().unwrap();
        for p in pods {
            g.by_uid.insert(
                p.uid.clone(),
                Entry {
                    pod: Arc::new(p),
                    seen: now,
                },
            );
        }
        g.by_uid
            .retain(|_, e| now.duration_since(e.seen) < KEEP_GONE_PODS);
        let by_container = g
            .by_uid
            .iter()
            .flat_map(|(uid, e)| {
                e.pod
                    .containers
                    .iter()
                    .enumerate()
                    .map(move |(i, c)| (c.id.clone(), (uid.clone(), i)))
            })
            .collect();
        g.by_container = by_container;
        let n = g.by_uid.len();
        drop(g);
        self.stats.lock().unwrap().pods = n;
    }

    /// The pod and container of `p`, from its cgroup evidence (pod uid,
    /// container id). A pod or container the cache does not know asks the
    /// source for a refresh (rate-limited there) and answers `None` now.
    pub fn find(&self, p: &Process) -> Option<Found> {
        let cid = str_field(p.container.as_ref(), "id")
            .filter(|_| str_field(p.container.as_ref(), "runtime") != Some("systemd"));
        let uid = str_field(p.pod.as_ref(), "uid");
        if cid.is_none() && uid.is_none() {
            return None;
        }
        let g = self.pods.read().unwrap();
        if let Some((pod_uid, i)) = cid.and_then(|c| g.by_container.get(c)) {
            // The cgroup path's pod uid, when it has one, must agree.
            if uid.is_none_or(|u| u == pod_uid) {
                if let Some(e) = g.by_uid.get(pod_uid) {
                    return Some(Found {
                        pod: e.pod.clone(),
                        container: Some(*i),
                    });
                }
            }
        }
        let found = uid.and_then(|u| g.by_uid.get(u)).map(|e| Found {
            pod: e.pod.clone(),
            container: None,
        });
        drop(g);
        // A container not listed yet: its status reaches the kubelet's list
        // a moment after it starts.
        if found.is_none() || cid.is_some() {
            if let Some(key) = cid.or(uid).filter(|_| uid.is_some()) {
                self.ask(key);
            }
        }
        found
    }

    /// Asks the source for a refresh on behalf of `key` (a pod uid or
    /// container id), at most once per [`ASK_AGAIN_AFTER`] per key: a pod
    /// the kubelet never lists must not keep the source fetching.
    fn ask(&self, key: &str) {
        let now = Instant::now();
        let mut asked = self.asked.lock().unwrap();
        if asked
            .get(key)
            .is_some_and(|t| now.duration_since(*t) < ASK_AGAIN_AFTER)
        {
            return;
        }
        if asked.len() >= MAX_ASKED {
            asked.retain(|_, t| now.duration_since(*t) < ASK_AGAIN_AFTER);
            if asked.len() >= MAX_ASKED {
                asked.clear();
            }
        }
        asked.insert(key.to_string(), now);
        drop(asked);
        self.wanted.notify_one();
    }

    /// Fills `p`'s `pod` and `container` objects from what the cache knows.
    /// Returns whether anything was known.
    pub fn enrich(&self, p: &mut Process) -> bool {
        let Some(f) = self.find(p) else {
            return false;
        };
        f.apply(p);
        true
    }

    /// Waits until a lookup asks for a refresh.
    pub async fn wanted(&self) {
        self.wanted.notified().await
    }

    pub fn stats(&self) -> SourceStats {
        self.stats.lock().unwrap().clone()
    }

    pub(crate) fn update_stats(&self, f: impl FnOnce(&mut SourceStats)) {
        f(&mut self.stats.lock().unwrap())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Attestation, Cgroup, Exe};

    fn process(container: Option<Value>, pod: Option<Value>) -> Process {
        Process {
            pid: 1,
            ppid: 0,
            exec_id: "e".into(),
            parent_exec_id: None,
            start_time_ns: 0,
            uid: 0,
            gid: 0,
            euid: 0,
            egid: 0,
            comm: "x".into(),
            args: vec![],
            args_truncated: false,
            args_redacted: false,
            exe: Exe {
                path: "/x".into(),
                sha256: None,
                hash_status: "pending",
                inode: 0,
                dev: 0,
                size: 0,
                fileless: false,
                deleted: false,
                modified_after_exec: false,
            },
            interpreter: None,
            cgroup: Cgroup { id: 0, path: None },
            container,
            pod,
            attestation: Attestation::KernelExec,
        }
    }

    fn pod(uid: &str, container: &str) -> PodMeta {
        PodMeta {
            uid: uid.into(),
            namespace: Some("ns".into()),
            name: Some(format!("pod-{uid}")),
            service_account: Some("sa".into()),
            labels: [("app".to_string(), "web".to_string())].into(),
            containers: vec![ContainerMeta {
                id: container.into(),
                name: "app".into(),
                image: Some("img:1".into()),
                image_id: None,
            }],
        }
    }

    #[test]
    fn fills_pod_and_container_and_keeps_gone_pods_for_a_while() {
        let c = PodCache::new(SourceStats::default());
        let t0 = Instant::now();
        c.replace(vec![pod("u1", "c1")], t0);
        let mut p = process(
            Some(json!({"id": "c1", "runtime": "containerd"})),
            Some(json!({"uid": "u1", "namespace": null})),
        );
        assert!(c.enrich(&mut p));
        let pod = p.pod.as_ref().unwrap();
        assert_eq!(pod["namespace"], "ns");
        assert_eq!(pod["service_account"], "sa");
        assert_eq!(pod["labels"]["app"], "web");
        assert_eq!(p.container.as_ref().unwrap()["name"], "app");
        assert_eq!(p.container.as_ref().unwrap()["image"], "img:1");

        // A container id claimed by another pod than the cgroup says: only the pod.
        let mut q = process(
            Some(json!({"id": "c1", "runtime": "containerd"})),
            Some(json!({"uid": "u2"})),
        );
        assert!(!c.enrich(&mut q));

        // Gone from the list: kept a while, then dropped.
        c.replace(vec![], t0 + Duration::from_secs(10));
        assert!(c.enrich(&mut p.clone()));
        c.replace(vec![], t0 + KEEP_GONE_PODS + Duration::from_secs(1));
        assert!(!c.enrich(&mut p.clone()));
        assert_eq!(c.stats().pods, 0);
    }

    #[test]
    fn unknown_pod_asks_for_a_refresh() {
        let c = PodCache::new(SourceStats::default());
        let p = process(None, Some(json!({"uid": "u9"})));
        assert!(c.find(&p).is_none());
        // The permit is stored: the source's wait returns at once.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(5), c.wanted())
                .await
                .expect("refresh requested")
        });
        // A plain process outside any pod asks nothing.
        assert!(c.find(&process(None, None)).is_none());
    }
}
