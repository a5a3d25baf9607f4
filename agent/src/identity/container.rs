//! Where a process runs: container id, runtime and Kubernetes pod uid, read
//! from its cgroup path. Every runtime names its cgroups its own way; these
//! are the shapes of containerd (CRI and plain), CRI-O, Docker, Podman and
//! systemd units, with the kubelet's cgroupfs and systemd drivers.

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

fn is_container_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The container a cgroup path belongs to, if any.
pub fn container_of(cgroup_path: &str) -> Option<ContainerInfo> {
    // The innermost component that names a container wins (nested cgroups
    // under a container stay that container).
    for comp in cgroup_path.rsplit('/') {
        let name = comp.strip_suffix(".scope").unwrap_or(comp);
        let found = [
            ("cri-containerd-", "containerd"),
            ("crio-", "cri-o"),
            ("docker-", "docker"),
            ("libpod-", "podman"),
        ]
        .iter()
        .find_map(|(prefix, runtime)| {
            let id = name.strip_prefix(prefix)?;
            // conmon, podman's monitor, is not the container.
            (!id.starts_with("conmon-") && is_container_id(id)).then(|| ContainerInfo {
                id: id.to_string(),
                runtime,
            })
        });
        if found.is_some() {
            return found;
        }
        if is_container_id(name) {
            // A bare id: its parent directory tells the runtime.
            let runtime = if cgroup_path.contains("/docker/") {
                "docker"
            } else if cgroup_path.contains("crio") {
                "cri-o"
            } else {
                "containerd"
            };
            return Some(ContainerInfo {
                id: name.to_string(),
                runtime,
            });
        }
    }
    // A systemd service outside any container: the unit is the workload.
    let unit = cgroup_path.rsplit('/').find(|c| c.ends_with(".service"))?;
    Some(ContainerInfo {
        id: unit.to_string(),
        runtime: "systemd",
    })
}

/// The pod uid from a kubelet cgroup path (`pod<uid>` with dashes for the
/// cgroupfs driver, underscores for the systemd driver).
pub fn pod_of(cgroup_path: &str) -> Option<PodRef> {
    for comp in cgroup_path.split('/') {
        let name = comp.strip_suffix(".slice").unwrap_or(comp);
        let Some(at) = name.rfind("pod") else {
            continue;
        };
        let uid = name[at + 3..].replace('_', "-");
        if uid.len() == 36 && uid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
            return Some(PodRef {
                uid,
                namespace: None,
                name: None,
                service_account: None,
            });
        }
    }
    None
}

/// The `container` and `pod` objects of a process event.
pub fn workload_json(
    cgroup_path: Option<&str>,
) -> (Option<serde_json::Value>, Option<serde_json::Value>) {
    let Some(path) = cgroup_path else {
        return (None, None);
    };
    (
        container_of(path).and_then(|c| serde_json::to_value(c).ok()),
        pod_of(path).and_then(|p| serde_json::to_value(p).ok()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "4f1c2a9e4b6d8f0a1c3e5a7b9d1f2e4c6a8b0d2f4e6a8c0b2d4f6e8a0c2e4a6b";
    const UID: &str = "0d5b2e6c-8a4f-4c1e-9b7d-3f2a1e0c9b8d";

    #[test]
    fn runtimes_and_pods_from_cgroup_paths() {
        let uid_us = UID.replace('-', "_");
        let cases: Vec<(String, Option<&str>, Option<&str>)> = vec![
            // kubelet cgroupfs driver + containerd
            (format!("/kubepods/burstable/pod{UID}/{ID}"), Some("containerd"), Some(UID)),
            // kubelet systemd driver + containerd
            (
                format!("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid_us}.slice/cri-containerd-{ID}.scope"),
                Some("containerd"),
                Some(UID),
            ),
            // CRI-O, systemd driver
            (
                format!("/kubepods.slice/kubepods-pod{uid_us}.slice/crio-{ID}.scope"),
                Some("cri-o"),
                Some(UID),
            ),
            (format!("/docker/{ID}"), Some("docker"), None),
            (format!("/system.slice/docker-{ID}.scope"), Some("docker"), None),
            (format!("/libpod_parent/libpod-{ID}"), Some("podman"), None),
            (format!("/machine.slice/libpod-{ID}.scope/container"), Some("podman"), None),
            ("/system.slice/nginx.service".to_string(), Some("systemd"), None),
            ("/user.slice/user-0.slice/session-1.scope".to_string(), None, None),
            ("/".to_string(), None, None),
        ];
        for (path, runtime, pod) in cases {
            let c = container_of(&path);
            assert_eq!(c.as_ref().map(|c| c.runtime), runtime, "{path}");
            if runtime.is_some_and(|r| r != "systemd") {
                assert_eq!(c.unwrap().id, ID, "{path}");
            }
            assert_eq!(
                pod_of(&path).map(|p| p.uid),
                pod.map(str::to_string),
                "{path}"
            );
        }
        // conmon is podman's monitor process, not the container.
        assert_eq!(
            container_of(&format!("/machine.slice/libpod-conmon-{ID}.scope")),
            None
        );
    }
}
