//! The monitor's part for Kubernetes Secrets: watching the kubelet's volume files by inode, following `..data` swaps, who each content is mounted into, and `secretKeyRef` variables.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    os::unix::fs::MetadataExt,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use super::{inode_key, user_dev_to_kernel, SecretMonitor};
use crate::{
    event::Process,
    identity::pods::{PodCache, PodMeta},
    secrets::catalog::{CatalogEntry, SecretKind},
    secrets::env::EnvSecret,
    secrets::kernel_watch::KernelWatch,
    secrets::kube::{self, KubeSecret, Layout},
};

/// How often the kubelet's volume directories are looked at again: new
/// pods' volumes and `..data` swaps are watched within this. A look costs
/// one directory listing per pod and one `readlink` per volume.
const KUBE_POLL: Duration = Duration::from_secs(2);

pub(super) struct KubeState {
    root: PathBuf,
    entries: Vec<CatalogEntry>,
    layout: Layout,
    pod_generation: Option<u64>,
    pub(super) last_poll: Option<Instant>,
    pods: HashMap<String, Arc<PodMeta>>,
    /// Every variable name some pod sets from a Secret (`secretKeyRef`).
    key_ref_vars: HashSet<String>,
    /// Fingerprint -> pods (uid -> `namespace/name`) whose volumes hold that content.
    mounted: HashMap<String, BTreeMap<String, String>>,
}

/// The pod a process belongs to, as the pod list vouched for it: (uid, container name).
fn vouched_pod(p: &Process) -> Option<(&str, Option<&str>)> {
    let uid = p.pod.as_ref()?.get("uid")?.as_str()?;
    let container = p
        .container
        .as_ref()
        .and_then(|c| c.get("name"))
        .and_then(|n| n.as_str());
    Some((uid, container))
}

impl<K: KernelWatch> SecretMonitor<K> {
    /// Watches the Secret and projected volumes under `kubelet_root`
    /// (`kubernetes.kubelet_root`), named from the pod list given to
    /// [`Self::poll_kube`].
    pub fn watch_kubelet(&mut self, kubelet_root: PathBuf) {
        let entries = kube::entries(&kubelet_root.to_string_lossy());
        self.kube = Some(KubeState {
            root: kubelet_root,
            entries,
            layout: Layout::default(),
            pod_generation: None,
            last_poll: None,
            pods: HashMap::new(),
            key_ref_vars: HashSet::new(),
            mounted: HashMap::new(),
        });
    }

    /// The entry `id` names: the catalogue's, or a Kubernetes Secret entry.
    pub(super) fn entry_of(&self, id: &str) -> Option<&CatalogEntry> {
        self.catalog.entry(id).or_else(|| {
            self.kube
                .as_ref()
                .and_then(|k| k.entries.iter().find(|e| e.id == id))
        })
    }

    /// Whether the kubelet's volumes are due for another look (every [`KUBE_POLL`]).
    pub(super) fn kube_due(&self) -> bool {
        self.kube
            .as_ref()
            .is_some_and(|st| st.last_poll.is_none_or(|t| t.elapsed() >= KUBE_POLL))
    }

    /// The kubelet root and the layout last seen, for a look elsewhere
    /// (the walk keeps the scans of volumes whose `..data` did not move).
    pub(super) fn take_kube_layout(&mut self) -> Option<(PathBuf, Layout)> {
        let st = self.kube.as_mut()?;
        st.last_poll = Some(Instant::now());
        Some((st.root.clone(), std::mem::take(&mut st.layout)))
    }

    /// Puts back a layout taken for a look that did not happen.
    pub(super) fn put_kube_layout(&mut self, old: Layout) {
        if let Some(st) = self.kube.as_mut() {
            st.layout = old;
            st.last_poll = None;
        }
    }

    /// Looks at the kubelet's volumes here and now (the daemon has the
    /// walk done on the blocking pool, see [`Self::survey`]).
    #[cfg(test)]
    pub fn poll_kube(&mut self, pods: Option<&PodCache>) {
        if !self.kube_due() {
            return;
        }
        let Some((root, old)) = self.take_kube_layout() else {
            return;
        };
        let fresh = kube::layout::scan(&root, &old);
        self.apply_kube(fresh, old, pods);
    }

    /// Applies a walk of the kubelet's volumes (`fresh`, after `old`): new
    /// volumes and swapped `..data` directories are watched, files gone are
    /// forgotten, and files are named again when the pod list changed.
    pub(super) fn apply_kube(&mut self, fresh: Layout, old: Layout, pods: Option<&PodCache>) {
        let Some(st) = self.kube.as_mut() else {
            return;
        };
        let generation = pods.map(|p| p.generation());
        let unchanged = st.pod_generation.is_some()
            && generation == st.pod_generation
            && fresh.volumes.len() == old.volumes.len()
            && fresh.volumes.iter().all(|(dir, v)| {
                old.volumes
                    .get(dir)
                    .is_some_and(|o| o.data_dir == v.data_dir)
            });
        st.layout = fresh;
        if unchanged {
            return;
        }
        st.pod_generation = Some(generation.unwrap_or(0));
        if let Some(p) = pods {
            st.pods = p.all().into_iter().map(|m| (m.uid.clone(), m)).collect();
            st.key_ref_vars = st
                .pods
                .values()
                .flat_map(|m| m.secret_env.iter().map(|r| r.variable.clone()))
                .collect();
        }
        let now: HashSet<(u64, u64)> = st.layout.files().map(|f| f.inode).collect();
        let gone: Vec<(u64, u64)> = old
            .files()
            .map(|f| f.inode)
            .filter(|i| !now.contains(i))
            .collect();
        let mut unnamed = 0;
        let named: Vec<(KubeSecret, String)> = st
            .layout
            .files()
            .filter_map(|f| {
                let pod = st.pods.get(&f.pod_uid);
                let named = pod.and_then(|p| kube::name(f, p).map(|k| (k, kube::pod_label(p))));
                unnamed += usize::from(named.is_none());
                named
            })
            .collect();
        self.stats.kube_refused_entries = st.layout.refused();
        self.stats.kube_bad_volumes = st.layout.bad_volumes;
        self.stats.kube_unnamed_files = unnamed;
        for (dev, ino) in gone {
            self.unwatch(user_dev_to_kernel(dev), ino);
        }
        let mut mounted: HashMap<String, BTreeMap<String, String>> = HashMap::new();
        let mut watched = 0;
        for (k, pod_label) in named {
            // The walk judged this very inode; anything else there now is a swap.
            let Ok(meta) = std::fs::symlink_metadata(&k.file.path) else {
                continue;
            };
            if !meta.is_file() || (meta.dev(), meta.ino()) != k.file.inode {
                continue;
            }
            let path = k.file.path.to_string_lossy().into_owned();
            let fp = self.track(&path, k.entry_id(), &meta, None);
            if let Some(slot) = self.by_inode.get(&inode_key(&meta)) {
                let w = &mut self.watched[*slot as usize];
                w.catalog_id = k.entry_id().into();
                w.path = path.into();
                w.kube = Some(Arc::new(k.clone()));
            }
            if let Some(fp) = fp {
                mounted
                    .entry(fp)
                    .or_default()
                    .insert(k.secret.pod_uid.clone(), pod_label);
            }
            watched += 1;
        }
        self.stats.kube_secret_files = watched;
        if let Some(st) = self.kube.as_mut() {
            st.mounted = mounted;
        }
    }

    /// The pods (`namespace/name`) whose volumes hold the content `fp`.
    pub(super) fn kube_mounted_in(&self, fp: Option<&str>) -> Vec<String> {
        fp.and_then(|fp| self.kube.as_ref()?.mounted.get(fp))
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Whether `p` runs in a pod one of whose volumes holds the content `fp`.
    pub(super) fn kube_reader_is_mounted(&self, fp: Option<&str>, p: &Process) -> bool {
        let Some((uid, _)) = vouched_pod(p) else {
            return false;
        };
        fp.and_then(|fp| self.kube.as_ref()?.mounted.get(fp))
            .is_some_and(|m| m.contains_key(uid))
    }

    /// The variables of `vars` some pod sets from a Secret: kept until the
    /// process's pod is known, the rest dropped at once.
    /// Whether some pod sets a variable from a Secret (`secretKeyRef`).
    pub(super) fn wants_key_refs(&self) -> bool {
        self.key_ref_state().is_some()
    }

    /// The kube state, when some pod sets a variable from a Secret.
    fn key_ref_state(&self) -> Option<&KubeState> {
        self.kube.as_ref().filter(|k| !k.key_ref_vars.is_empty())
    }

    pub(super) fn key_ref_candidates(&self, vars: Vec<(String, String)>) -> Vec<(String, String)> {
        let Some(st) = self.key_ref_state() else {
            return Vec::new();
        };
        vars.into_iter()
            .filter(|(k, v)| !v.is_empty() && st.key_ref_vars.contains(k))
            .collect()
    }

    /// Adds the variables of `vars` that `p`'s pod spec sets from a Secret
    /// (`secretKeyRef`), replacing a shape detector's find of the same variable.
    pub(super) fn kube_env(
        &self,
        p: &Process,
        vars: &[(String, String)],
        out: &mut Vec<EnvSecret>,
    ) {
        let Some((uid, Some(container))) = vouched_pod(p) else {
            return;
        };
        let Some(pod) = self.kube.as_ref().and_then(|k| k.pods.get(uid)) else {
            return;
        };
        for (secret, var, value) in kube::env_refs(pod, container, vars) {
            out.retain(|s| s.var != var);
            out.push(EnvSecret {
                var: var.to_string(),
                detector: kube::ENV_DETECTOR,
                kind: SecretKind::KubernetesSecret,
                value: value.to_string(),
                k8s: Some(secret),
            });
        }
    }
}
