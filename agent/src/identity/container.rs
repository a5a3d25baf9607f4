//! Container id, runtime and pod uid of a cgroup, believed only where the kubelet or a runtime made it.
//!
//! Anyone who may create cgroups (root, a user in their systemd-delegated
//! `user@UID.service` subtree, a container with a writable cgroupfs) can
//! name one `kubepods-besteffort-pod<uid>.slice/cri-containerd-<id>.scope`.
//! So a name alone proves nothing: the workload is read only at the fixed
//! positions the kubelet and the runtimes use under their own roots, and
//! only when the chain of directories is one no delegated party could have
//! made. What a path claims elsewhere is refused and, when it can only be a
//! forgery, reported (`identity-forgery`).

use std::{
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::Arc,
};

use futures::future::{BoxFuture, Shared};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerInfo {
    pub id: String,
    /// containerd | cri-o | docker | podman | systemd
    pub runtime: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PodRef {
    pub uid: String,
    /// Filled from pod metadata when a source is configured; null otherwise.
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub service_account: Option<String>,
}

/// Where a cgroup puts a process, as far as it could be vouched for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Workload {
    pub container: Option<ContainerInfo>,
    pub pod: Option<PodRef>,
    /// Set when the path claims a container or pod that was not granted.
    pub refused: Option<Refusal>,
}

/// A container or pod claim that was not believed, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The cgroup path making the claim.
    pub path: String,
    pub claimed_container: Option<String>,
    pub claimed_pod: Option<String>,
    pub reason: String,
    /// Whether the claim can only be a forgery (`identity-forgery`). A
    /// rootless container in its own user's delegated subtree is refused
    /// container identity but is no forgery.
    pub forgery: bool,
}

/// A cgroup's verdict, computed once per cgroup id off the event loop.
pub type WorkloadFuture = Shared<BoxFuture<'static, Arc<Workload>>>;

/// The cgroup roots the verdict trusts, as the refusal reason names them.
const ROOTS: &str = "kubepods, kubepods.slice, docker, system.slice/docker-*.scope, \
                     machine.slice, libpod_parent";

fn is_container_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_pod_uid(s: &str) -> bool {
    s.len() == 36 && s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

/// A runtime-prefixed container cgroup name (`cri-containerd-<id>.scope`,
/// `crio-<id>`, `docker-<id>.scope`, `libpod-<id>`); monitors (conmon) are not
/// the container.
fn prefixed_container(comp: &str) -> Option<ContainerInfo> {
    let name = comp.strip_suffix(".scope").unwrap_or(comp);
    [
        ("cri-containerd-", "containerd"),
        ("crio-", "cri-o"),
        ("docker-", "docker"),
        ("libpod-", "podman"),
    ]
    .iter()
    .find_map(|(prefix, runtime)| {
        let id = name.strip_prefix(prefix)?;
        is_container_id(id).then(|| ContainerInfo {
            id: id.to_string(),
            runtime,
        })
    })
}

/// A container cgroup name, prefixed or a bare id (credited to `bare_runtime`).
fn container_name(comp: &str, bare_runtime: &'static str) -> Option<ContainerInfo> {
    prefixed_container(comp).or_else(|| {
        is_container_id(comp).then(|| ContainerInfo {
            id: comp.to_string(),
            runtime: bare_runtime,
        })
    })
}

/// What a path claims by naming alone, in any component.
#[derive(Debug, Default, PartialEq, Eq)]
struct Claim {
    /// The innermost container-like name.
    container: Option<String>,
    /// The first pod-like name's uid.
    pod: Option<String>,
    /// A pod, or a `kubepods` component: nobody but the kubelet has cause to
    /// name a cgroup so.
    kubernetes: bool,
    /// A runtime-prefixed container name (a bare id alone is too weak a
    /// claim to call forged: `nerdctl` and `--cgroup-parent` make those).
    prefixed: bool,
}

impl Claim {
    fn of(parts: &[&str]) -> Self {
        let mut c = Claim::default();
        for comp in parts.iter().rev() {
            if let Some(info) = prefixed_container(comp) {
                c.container.get_or_insert(info.id);
                c.prefixed = true;
            } else if is_container_id(comp) {
                c.container.get_or_insert(comp.to_string());
            }
        }
        for comp in parts {
            let name = comp.strip_suffix(".slice").unwrap_or(comp);
            c.kubernetes |= name.starts_with("kubepods");
            if let Some(at) = name.rfind("pod") {
                let uid = name[at + 3..].replace('_', "-");
                if is_pod_uid(&uid) {
                    c.pod.get_or_insert(uid);
                    c.kubernetes = true;
                }
            }
        }
        c
    }

    fn is_empty(&self) -> bool {
        self.container.is_none() && self.pod.is_none() && !self.kubernetes
    }
}

fn pod_ref(uid: String) -> PodRef {
    PodRef {
        uid,
        namespace: None,
        name: None,
        service_account: None,
    }
}

/// The pod uid of a kubelet pod cgroup: `pod<uid>` (cgroupfs driver) or
/// `kubepods[-<qos>]-pod<uid with _>.slice` (systemd driver).
fn kubelet_pod(systemd: bool, comp: &str) -> Option<String> {
    let uid = if systemd {
        let name = comp.strip_suffix(".slice")?.strip_prefix("kubepods-")?;
        let name = ["besteffort-", "burstable-"]
            .iter()
            .find_map(|q| name.strip_prefix(q))
            .unwrap_or(name);
        name.strip_prefix("pod")?.replace('_', "-")
    } else {
        comp.strip_prefix("pod")?.to_string()
    };
    is_pod_uid(&uid).then_some(uid)
}

/// Below a kubelet root: `[qos]/pod/container`, nothing read deeper (a
/// container's own sub-cgroups are still that container).
fn kubelet_placed(systemd: bool, rest: &[&str]) -> Option<Workload> {
    let qos: &[&str] = if systemd {
        &["kubepods-besteffort.slice", "kubepods-burstable.slice"]
    } else {
        &["besteffort", "burstable"]
    };
    let rest = match rest {
        [q, tail @ ..] if qos.contains(q) => tail,
        _ => rest,
    };
    let [pod, tail @ ..] = rest else {
        return None;
    };
    let uid = kubelet_pod(systemd, pod)?;
    Some(Workload {
        container: tail.first().and_then(|c| container_name(c, "containerd")),
        pod: Some(pod_ref(uid)),
        refused: None,
    })
}

/// The workload a path names at the positions the kubelet and the
/// runtimes use under their roots at the mount root; `None` elsewhere.
fn placed(parts: &[&str]) -> Option<Workload> {
    let container = |c: Option<ContainerInfo>| {
        c.map(|c| Workload {
            container: Some(c),
            ..Workload::default()
        })
    };
    match parts {
        ["kubepods", rest @ ..] => kubelet_placed(false, rest),
        ["kubepods.slice", rest @ ..] => kubelet_placed(true, rest),
        ["docker", id, ..] => container(container_name(id, "docker")),
        ["system.slice", unit, ..] => {
            container(prefixed_container(unit).filter(|c| c.runtime == "docker"))
        }
        ["machine.slice" | "libpod_parent", unit, ..] => {
            container(prefixed_container(unit).filter(|c| c.runtime == "podman"))
        }
        _ => None,
    }
}

/// The index of `user.slice/user-N.slice/user@N.service`, systemd's
/// delegation of a subtree to that user's own service manager.
fn user_manager(parts: &[&str]) -> Option<usize> {
    match parts {
        ["user.slice", u, m, ..]
            if u.starts_with("user-")
                && u.ends_with(".slice")
                && m.starts_with("user@")
                && m.ends_with(".service") =>
        {
            Some(2)
        }
        _ => None,
    }
}

/// What the directories from the mount root down to a cgroup say about who made them.
#[derive(Debug, Default)]
struct Chain {
    /// The first directory not owned by root, and its owner.
    non_root: Option<(String, u32)>,
    /// The directory could not be checked, or is not the cgroup asked about.
    problem: Option<String>,
}

fn walk_chain(root: &Path, parts: &[&str], id: u64) -> Chain {
    let mut chain = Chain::default();
    let mut dir = PathBuf::from(root);
    for (i, comp) in parts.iter().enumerate() {
        dir.push(comp);
        let shown = format!("/{}", parts[..=i].join("/"));
        // lstat: a symlink is never followed out of the cgroup tree.
        let m = match std::fs::symlink_metadata(&dir) {
            Ok(m) => m,
            Err(e) => {
                chain.problem = Some(format!("{shown} cannot be checked ({e})"));
                return chain;
            }
        };
        if !m.is_dir() {
            chain.problem = Some(format!("{shown} is not a directory"));
            return chain;
        }
        if m.uid() != 0 && chain.non_root.is_none() {
            chain.non_root = Some((shown.clone(), m.uid()));
        }
        if i + 1 == parts.len() && m.ino() != id {
            chain.problem = Some(format!(
                "{shown} is no longer the process's cgroup (renamed or replaced)"
            ));
        }
    }
    chain
}

/// The workload of the cgroup with id `id` at `rel` (relative to the
/// cgroup2 mount at `root`). Touches the file system only when the path
/// claims a container or pod.
pub fn check(root: &Path, rel: &str, id: u64) -> Workload {
    let parts: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
    let claim = Claim::of(&parts);
    if claim.is_empty() {
        return Workload {
            container: systemd_unit(&parts),
            ..Workload::default()
        };
    }
    let placed = placed(&parts);
    let chain = walk_chain(root, &parts, id);
    let manager = user_manager(&parts);
    let mut why = Vec::new();
    if placed.is_none() {
        why.push(format!(
            "it is not at a container's or pod's place below the cgroup roots of the kubelet \
             or a container runtime ({ROOTS})"
        ));
    }
    if let Some(at) = manager {
        why.push(format!(
            "it is inside /{}, a subtree systemd delegates to that user",
            parts[..=at].join("/")
        ));
    }
    if let Some((dir, uid)) = &chain.non_root {
        why.push(format!(
            "{dir} is owned by uid {uid}, not root: whoever owns it may name cgroups below it"
        ));
    }
    if let Some(p) = &chain.problem {
        why.push(p.clone());
    }
    match placed {
        Some(w) if why.is_empty() => w,
        _ => {
            let delegated = manager.is_some() || chain.non_root.is_some();
            Workload {
                refused: Some(Refusal {
                    path: rel.to_string(),
                    forgery: claim.kubernetes || (claim.prefixed && !delegated),
                    claimed_container: claim.container,
                    claimed_pod: claim.pod,
                    reason: why.join("; "),
                }),
                ..Workload::default()
            }
        }
    }
}

/// Whether [`check`] would read the file system for `rel`.
pub fn needs_walk(rel: &str) -> bool {
    let parts: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
    !Claim::of(&parts).is_empty()
}

/// A systemd service outside any container: the unit is the workload.
fn systemd_unit(parts: &[&str]) -> Option<ContainerInfo> {
    let unit = parts.iter().rev().find(|c| c.ends_with(".service"))?;
    Some(ContainerInfo {
        id: unit.to_string(),
        runtime: "systemd",
    })
}

impl Workload {
    /// The `container` and `pod` objects of a process event.
    pub fn json(&self) -> (Option<serde_json::Value>, Option<serde_json::Value>) {
        (
            self.container
                .as_ref()
                .and_then(|c| serde_json::to_value(c).ok()),
            self.pod.as_ref().and_then(|p| serde_json::to_value(p).ok()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::chown;

    const ID: &str = "4f1c2a9e4b6d8f0a1c3e5a7b9d1f2e4c6a8b0d2f4e6a8c0b2d4f6e8a0c2e4a6b";
    const UID: &str = "0d5b2e6c-8a4f-4c1e-9b7d-3f2a1e0c9b8d";

    fn parts(p: &str) -> Vec<&str> {
        p.split('/').filter(|c| !c.is_empty()).collect()
    }

    #[test]
    fn runtimes_and_pods_are_read_at_their_places_under_the_roots() {
        let uid_us = UID.replace('-', "_");
        let cases: Vec<(String, Option<&str>, Option<&str>)> = vec![
            (format!("/kubepods/burstable/pod{UID}/{ID}"), Some("containerd"), Some(UID)),
            (format!("/kubepods/pod{UID}/{ID}/nested"), Some("containerd"), Some(UID)),
            (
                format!("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid_us}.slice/cri-containerd-{ID}.scope"),
                Some("containerd"),
                Some(UID),
            ),
            (
                format!("/kubepods.slice/kubepods-pod{uid_us}.slice/crio-{ID}.scope"),
                Some("cri-o"),
                Some(UID),
            ),
            (format!("/kubepods.slice/kubepods-pod{uid_us}.slice"), None, Some(UID)),
            (format!("/docker/{ID}"), Some("docker"), None),
            (format!("/system.slice/docker-{ID}.scope"), Some("docker"), None),
            (format!("/libpod_parent/libpod-{ID}"), Some("podman"), None),
            (format!("/machine.slice/libpod-{ID}.scope/container"), Some("podman"), None),
        ];
        for (path, runtime, pod) in cases {
            let w = placed(&parts(&path)).unwrap_or_else(|| panic!("{path} not placed"));
            assert_eq!(w.container.as_ref().map(|c| c.runtime), runtime, "{path}");
            if runtime.is_some() {
                assert_eq!(w.container.unwrap().id, ID, "{path}");
            }
            assert_eq!(w.pod.map(|p| p.uid).as_deref(), pod, "{path}");
        }
        // Nested names inside a container do not replace the container.
        let nested = format!(
            "/system.slice/docker-{ID}.scope/kubepods/besteffort/pod{UID}/{}",
            "a".repeat(64)
        );
        let w = placed(&parts(&nested)).unwrap();
        assert_eq!(w.container.unwrap().id, ID);
        assert_eq!(w.pod, None);
        // Outside the roots, or off the structure: nothing is placed.
        for p in [
            format!("/user.slice/evil.slice/kubepods-besteffort-pod{uid_us}.slice/cri-containerd-{ID}.scope"),
            format!("/evil/kubepods/pod{UID}/{ID}"),
            format!("/kubepods/besteffort/x/pod{UID}/{ID}"),
            format!("/system.slice/crio-{ID}.scope"),
        ] {
            assert_eq!(placed(&parts(&p)), None, "{p}");
            assert!(!Claim::of(&parts(&p)).is_empty(), "{p} claims something");
        }
        // conmon is podman's monitor process, not the container.
        let conmon = format!("/machine.slice/libpod-conmon-{ID}.scope");
        assert!(Claim::of(&parts(&conmon)).is_empty());
        assert!(Claim::of(&parts("/system.slice/nginx.service")).is_empty());
        assert!(Claim::of(&parts("/user.slice/user-0.slice/session-1.scope")).is_empty());
    }

    #[test]
    fn a_plain_path_is_judged_without_the_file_system() {
        let w = check(Path::new("/nonexistent"), "/system.slice/nginx.service", 1);
        assert_eq!(w.container.unwrap().runtime, "systemd");
        assert_eq!(w.refused, None);
        assert_eq!(
            check(Path::new("/nonexistent"), "/", 1),
            Workload::default()
        );
    }

    /// Ownership, on an ordinary directory tree shaped like cgroups.
    #[test]
    fn ownership_and_delegation_decide_and_forgeries_are_told_from_rootless_containers() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let mk = |rel: &str| {
            std::fs::create_dir_all(root.join(rel.trim_start_matches('/'))).unwrap();
            std::fs::metadata(root.join(rel.trim_start_matches('/')))
                .unwrap()
                .ino()
        };
        let good = format!("/kubepods/besteffort/pod{UID}/{ID}");
        let w = check(root, &good, mk(&good));
        assert_eq!(w.refused, None, "{w:?}");
        assert_eq!(w.pod.unwrap().uid, UID);

        let id = mk(&good);
        chown(
            root.join(format!("kubepods/besteffort/pod{UID}")),
            Some(1000),
            None,
        )
        .unwrap();
        let r = check(root, &good, id).refused.expect("refused");
        assert!(r.forgery && r.reason.contains("uid 1000"), "{r:?}");
        assert_eq!(r.claimed_pod.as_deref(), Some(UID));
        assert_eq!(r.claimed_container.as_deref(), Some(ID));

        let forged = format!(
            "/user.slice/evil.slice/kubepods-besteffort-pod{}.slice/cri-containerd-{ID}.scope",
            UID.replace('-', "_")
        );
        let r = check(root, &forged, mk(&forged)).refused.expect("refused");
        assert!(
            r.forgery && r.reason.contains("not at a container"),
            "{r:?}"
        );

        // A rootless podman container in its user's own subtree: refused, no forgery.
        let rootless =
            format!("/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope");
        let r = check(root, &rootless, mk(&rootless))
            .refused
            .expect("refused");
        assert!(!r.forgery && r.reason.contains("delegates"), "{r:?}");
        // The same name claiming a pod is one.
        let claim = format!("/user.slice/user-1000.slice/user@1000.service/kubepods/pod{UID}/{ID}");
        assert!(check(root, &claim, mk(&claim)).refused.unwrap().forgery);
        // A runtime's name made by root outside the runtime's root is one too.
        let odd = format!("/evil.slice/docker-{ID}.scope");
        assert!(check(root, &odd, mk(&odd)).refused.unwrap().forgery);
        // The inode is the cgroup asked about.
        let other = format!("/docker/{ID}");
        let r = check(root, &other, mk(&other) + 1).refused.unwrap();
        assert!(r.reason.contains("no longer"), "{r:?}");
    }
}
