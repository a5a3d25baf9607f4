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
pub use podlist::{
    ContainerMeta, OwnerRef, PodAttestFacts, PodMeta, SecretEnvRef, SecretVolume, VolumeSource,
};

use crate::{event::Process, identity::container::Workload};

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
    /// Bumped by every [`PodCache::replace`].
    generation: u64,
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

/// What the pod list says about a vouched-for pod claim.
pub enum PodAnswer {
    /// The container is one of this pod's.
    Found(Found),
    /// The list is current and does not give the container to that pod:
    /// no pod fields.
    Withheld,
    /// No pod claim, or no current list: the cgroup evidence stands alone.
    Unchanged,
}

impl PodAnswer {
    /// Whether two answers give the same view.
    pub fn same_as(&self, other: &PodAnswer) -> bool {
        match (self, other) {
            (PodAnswer::Found(a), PodAnswer::Found(b)) => {
                Arc::ptr_eq(&a.pod, &b.pod) && a.container == b.container
            }
            (PodAnswer::Withheld, PodAnswer::Withheld) => true,
            (PodAnswer::Unchanged, PodAnswer::Unchanged) => true,
            _ => false,
        }
    }
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
            "node_name": pod.attest.node_name,
            "owners": pod.attest.owners.iter().map(|o| json!({
                "kind": o.kind, "name": o.name, "uid": o.uid,
            })).collect::<Vec<_>>(),
            "images": pod.attest.images,
            "image_count": pod.attest.image_count,
            "init_images": pod.attest.init_images,
            "init_image_count": pod.attest.init_image_count,
        }));
        if let (Some(c), Some(Value::Object(obj))) = (self.container(), p.container.as_mut()) {
            obj.insert("name".into(), json!(c.name));
            obj.insert("image".into(), json!(c.image));
            obj.insert("image_id".into(), json!(c.image_id));
        }
    }
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
        g.generation += 1;
        let n = g.by_uid.len();
        drop(g);
        self.stats.lock().unwrap().pods = n;
    }

    /// What the list says about the pod a cgroup was vouched to be in: the
    /// pod's metadata only when its container id is one of that pod's
    /// container statuses (never from the pod uid alone, which any sandbox
    /// or half-started container shares). A pod or container the cache does
    /// not know asks the source for a refresh (rate-limited there).
    pub fn judge(&self, w: &Workload) -> PodAnswer {
        let Some(uid) = w.pod.as_ref().map(|p| p.uid.as_str()) else {
            return PodAnswer::Unchanged;
        };
        let cid = w.container.as_ref().map(|c| c.id.as_str());
        let g = self.pods.read().unwrap();
        if let Some((pod_uid, i)) = cid.and_then(|c| g.by_container.get(c)) {
            if pod_uid == uid {
                if let Some(e) = g.by_uid.get(pod_uid) {
                    return PodAnswer::Found(Found {
                        pod: e.pod.clone(),
                        container: Some(*i),
                    });
                }
            }
        }
        drop(g);
        // A container not listed yet: its status reaches the kubelet's list
        // a moment after it starts.
        self.ask(cid.unwrap_or(uid));
        if self.is_current() {
            PodAnswer::Withheld
        } else {
            PodAnswer::Unchanged
        }
    }

    /// The pod the list gives `w`'s container to, when that is not the pod
    /// its cgroup names: a claim the runtime's own records contradict.
    pub fn contradiction(&self, w: &Workload) -> Option<String> {
        let (Some(pod), Some(c)) = (&w.pod, &w.container) else {
            return None;
        };
        let g = self.pods.read().unwrap();
        let (owner, _) = g.by_container.get(&c.id)?;
        (*owner != pod.uid).then(|| owner.clone())
    }

    /// Whether the last fetch succeeded: only then does a container missing
    /// from the list withhold pod fields (during an outage the cgroup
    /// evidence stands alone, as it does with no source).
    fn is_current(&self) -> bool {
        self.stats.lock().unwrap().state == "ok"
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

    /// Waits until a lookup asks for a refresh.
    pub async fn wanted(&self) {
        self.wanted.notified().await
    }

    /// Every pod the cache holds (listed now or recently gone), for the
    /// Kubernetes Secret volumes each one mounts.
    pub fn all(&self) -> Vec<Arc<PodMeta>> {
        let g = self.pods.read().unwrap();
        g.by_uid.values().map(|e| e.pod.clone()).collect()
    }

    /// A change counter of the list: equal values, same pods.
    pub fn generation(&self) -> u64 {
        self.pods.read().unwrap().generation
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
    use crate::identity::container::{ContainerInfo, PodRef};

    fn workload(container: Option<&str>, pod: Option<&str>) -> Workload {
        Workload {
            container: container.map(|id| ContainerInfo {
                id: id.into(),
                runtime: "containerd",
            }),
            pod: pod.map(|uid| PodRef {
                uid: uid.into(),
                namespace: None,
                name: None,
                service_account: None,
            }),
            refused: None,
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
            secret_volumes: Vec::new(),
            secret_env: Vec::new(),
            attest: PodAttestFacts::default(),
        }
    }

    fn current() -> Arc<PodCache> {
        PodCache::new(SourceStats {
            state: "ok",
            ..SourceStats::default()
        })
    }

    #[test]
    fn fills_pod_and_container_and_keeps_gone_pods_for_a_while() {
        let c = current();
        let t0 = Instant::now();
        c.replace(vec![pod("u1", "c1"), pod("u2", "c2")], t0);
        let w = workload(Some("c1"), Some("u1"));
        let PodAnswer::Found(f) = c.judge(&w) else {
            panic!("c1 of u1 not found")
        };
        assert_eq!(f.pod.namespace.as_deref(), Some("ns"));
        assert_eq!(f.container().unwrap().name, "app");
        assert_eq!(c.contradiction(&w), None);

        // A container id the list gives to another pod than the cgroup says:
        // withheld, and a contradiction naming the real owner.
        let q = workload(Some("c1"), Some("u2"));
        assert!(matches!(c.judge(&q), PodAnswer::Withheld));
        assert_eq!(c.contradiction(&q).as_deref(), Some("u1"));
        // A listed pod with an unlisted container (the sandbox, a container
        // not listed yet): no pod fields, no contradiction.
        let r = workload(Some("c9"), Some("u1"));
        assert!(matches!(c.judge(&r), PodAnswer::Withheld));
        assert_eq!(c.contradiction(&r), None);
        // A pod uid alone is not enough.
        assert!(matches!(
            c.judge(&workload(None, Some("u1"))),
            PodAnswer::Withheld
        ));

        // Gone from the list: kept a while, then dropped.
        c.replace(vec![], t0 + Duration::from_secs(10));
        assert!(matches!(c.judge(&w), PodAnswer::Found(_)));
        c.replace(vec![], t0 + KEEP_GONE_PODS + Duration::from_secs(1));
        assert!(matches!(c.judge(&w), PodAnswer::Withheld));
        assert_eq!(c.stats().pods, 0);
    }

    #[test]
    fn without_a_current_list_the_cgroup_evidence_stands_alone() {
        let c = PodCache::new(SourceStats::default());
        c.replace(vec![pod("u1", "c1")], Instant::now());
        c.update_stats(|s| s.state = "failing");
        assert!(matches!(
            c.judge(&workload(Some("c9"), Some("u1"))),
            PodAnswer::Unchanged
        ));
        // What the cache does know still names the pod.
        assert!(matches!(
            c.judge(&workload(Some("c1"), Some("u1"))),
            PodAnswer::Found(_)
        ));
    }

    #[test]
    fn unknown_pod_asks_for_a_refresh() {
        let c = current();
        assert!(matches!(
            c.judge(&workload(None, Some("u9"))),
            PodAnswer::Withheld
        ));
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
        assert!(matches!(
            c.judge(&workload(None, None)),
            PodAnswer::Unchanged
        ));
    }
}
