//! Kubernetes Secrets on a node: the kubelet's volume files and `secretKeyRef` variables, named from the pod list.
//!
//! A file of a pod's Secret or projected volume ([`layout`]) becomes a
//! [`K8sSecretRef`]: namespace, Secret name (or service account, for a
//! projected token), key, pod, volume and where each container sees it.
//! Files of configMap and downwardAPI sources are no secrets and are left
//! out. The secret id is `k8s:<namespace>/<secret>/<key>` (a token:
//! `k8s:<namespace>/serviceaccount:<name>/<path>`), the same on every node,
//! so a SIEM joins reads of one Secret across nodes by it or by fingerprint.

pub mod layout;

use std::sync::Arc;

use crate::{
    event::{K8sSecretRef, Severity},
    identity::pods::{PodMeta, SecretVolume, VolumeSource},
    secrets::catalog::{CatalogEntry, ClientName, SecretKind},
};

pub use layout::{Layout, VolumeFile};

/// Entry id of Secret keys (policy rules and the inventory name it).
pub const SECRET_ENTRY: &str = "kubernetes-secret";
/// Entry id of projected service-account tokens.
pub const SA_TOKEN_ENTRY: &str = "kubernetes-sa-token";
/// The detector name of `secretKeyRef` variables in secret-env findings.
pub const ENV_DETECTOR: &str = "kubernetes-secret-key-ref";

/// The node-side programs whose job it is to read pods' Secret volumes: the
/// kubelet writes them, the runtime bind-mounts them.
const NODE_CLIENTS: &[&str] = &["kubelet", "containerd", "crio", "runc", "crun"];

/// The entries Kubernetes Secret files are judged by: not catalogue
/// entries (they are found through the pod list, not by path patterns), but
/// the same shape, so policy rules, severities and expected clients apply.
pub fn entries(kubelet_root: &str) -> Vec<CatalogEntry> {
    let clients: Vec<ClientName> = NODE_CLIENTS
        .iter()
        .map(|n| ClientName::parse(n).expect("built-in client name"))
        .collect();
    let root = kubelet_root.trim_end_matches('/');
    let mut secret = CatalogEntry::new(
        SECRET_ENTRY,
        SecretKind::KubernetesSecret,
        Severity::High,
        &[&format!("{root}/pods/*/volumes/kubernetes.io~secret/**")],
        "A key of a Kubernetes Secret in a pod's Secret or projected volume; \
         the pods it is mounted into and the kubelet read it, nobody else",
    );
    secret.mitre = Arc::from(["T1552.001".into(), "T1552.007".into()]);
    secret.expected_clients = clients.clone();
    let mut token = CatalogEntry::new(
        SA_TOKEN_ENTRY,
        SecretKind::KubernetesToken,
        Severity::High,
        &[&format!("{root}/pods/*/volumes/kubernetes.io~projected/**")],
        "A pod's projected service-account token",
    );
    token.mitre = Arc::from(["T1528".into(), "T1552.007".into()]);
    token.expected_clients = clients;
    vec![secret, token]
}

/// A kubelet volume file with the Secret it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeSecret {
    pub file: VolumeFile,
    pub secret: K8sSecretRef,
    /// A projected service-account token rather than a Secret key.
    pub sa_token: bool,
}

impl KubeSecret {
    pub fn id(&self) -> String {
        secret_id(&self.secret, self.sa_token)
    }

    /// The entry it is judged by.
    pub fn entry_id(&self) -> &'static str {
        if self.sa_token {
            SA_TOKEN_ENTRY
        } else {
            SECRET_ENTRY
        }
    }
}

/// `k8s:<namespace>/<secret>/<key>`, or for a token
/// `k8s:<namespace>/serviceaccount:<name>/<path>`.
pub fn secret_id(s: &K8sSecretRef, sa_token: bool) -> String {
    let ns = s.namespace.as_deref().unwrap_or("-");
    if sa_token {
        format!("k8s:{ns}/serviceaccount:{}/{}", s.name, s.key)
    } else {
        format!("k8s:{ns}/{}/{}", s.name, s.key)
    }
}

/// `namespace/name` of a pod, or its uid when the list has no name.
pub fn pod_label(pod: &PodMeta) -> String {
    match (&pod.namespace, &pod.name) {
        (Some(ns), Some(n)) => format!("{ns}/{n}"),
        _ => pod.uid.clone(),
    }
}

/// Names a volume file from its pod's spec; `None` for files that hold no
/// Secret (configMap, downwardAPI) or that the spec does not explain.
pub fn name(file: &VolumeFile, pod: &PodMeta) -> Option<KubeSecret> {
    let vol = pod
        .secret_volumes
        .iter()
        .find(|v| v.name == file.volume && v.projected == file.projected)?;
    let (name, key, sa_token) = source_of(vol, &file.key, pod)?;
    let in_pod_paths = vol
        .mounts
        .iter()
        .map(|(c, m)| format!("{c}:{}/{}", m.trim_end_matches('/'), file.key))
        .collect();
    Some(KubeSecret {
        file: file.clone(),
        secret: K8sSecretRef {
            namespace: pod.namespace.clone(),
            name,
            key,
            pod_uid: pod.uid.clone(),
            pod: pod.name.clone(),
            volume: Some(file.volume.clone()),
            in_pod_paths,
        },
        sa_token,
    })
}

/// (Secret or service account name, key, is a token) of the file at
/// `path` in volume `vol`.
fn source_of(vol: &SecretVolume, path: &str, pod: &PodMeta) -> Option<(String, String, bool)> {
    // A listed item names its key exactly.
    for src in &vol.sources {
        match src {
            VolumeSource::Secret { name, items } => {
                if let Some((key, _)) = items.iter().find(|(_, p)| p == path) {
                    return Some((name.clone(), key.clone(), false));
                }
            }
            VolumeSource::ServiceAccountToken { path: p } if p == path => {
                let sa = pod
                    .service_account
                    .clone()
                    .unwrap_or_else(|| "default".into());
                return Some((sa, path.to_string(), true));
            }
            VolumeSource::NotSecret { paths } if paths.iter().any(|p| p == path) => return None,
            _ => {}
        }
    }
    // Otherwise the file is a key of the one Secret projected whole; with
    // several such Secrets (or unlisted configMap keys beside one) the
    // file's origin is ambiguous and it is not named.
    let whole: Vec<&String> = vol
        .sources
        .iter()
        .filter_map(|s| match s {
            VolumeSource::Secret { name, items } if items.is_empty() => Some(name),
            _ => None,
        })
        .collect();
    let unlisted_other = vol
        .sources
        .iter()
        .any(|s| matches!(s, VolumeSource::NotSecret { paths } if paths.is_empty()));
    match whole.as_slice() {
        [name] if !unlisted_other => Some(((*name).clone(), path.to_string(), false)),
        _ => None,
    }
}

/// The variables of `vars` the spec of container `container` of `pod` sets
/// from a Secret (`valueFrom.secretKeyRef`), with that Secret, for the
/// variables that are set and not empty.
pub fn env_refs<'a>(
    pod: &PodMeta,
    container: &str,
    vars: &'a [(String, String)],
) -> Vec<(K8sSecretRef, &'a str, &'a str)> {
    pod.secret_env
        .iter()
        .filter(|r| r.container == container)
        .filter_map(|r| {
            let (var, value) = vars
                .iter()
                .find(|(k, v)| *k == r.variable && !v.is_empty())?;
            Some((
                K8sSecretRef {
                    namespace: pod.namespace.clone(),
                    name: r.secret.clone(),
                    key: r.key.clone(),
                    pod_uid: pod.uid.clone(),
                    pod: pod.name.clone(),
                    volume: None,
                    in_pod_paths: Vec::new(),
                },
                var.as_str(),
                value.as_str(),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::pods::SecretEnvRef;
    use std::path::PathBuf;

    fn pod(volumes: Vec<SecretVolume>) -> PodMeta {
        PodMeta {
            uid: "u1".into(),
            namespace: Some("shop".into()),
            name: Some("web-0".into()),
            service_account: Some("web".into()),
            labels: Default::default(),
            containers: Vec::new(),
            secret_volumes: volumes,
            secret_env: vec![SecretEnvRef {
                container: "app".into(),
                variable: "DB_PASSWORD".into(),
                secret: "db-creds".into(),
                key: "password".into(),
            }],
            attest: Default::default(),
        }
    }

    fn file(volume: &str, projected: bool, key: &str) -> VolumeFile {
        VolumeFile {
            pod_uid: "u1".into(),
            volume: volume.into(),
            projected,
            key: key.into(),
            path: PathBuf::from("/x"),
            inode: (1, 2),
        }
    }

    #[test]
    fn files_are_named_by_their_secret_and_mounts() {
        let p = pod(vec![
            SecretVolume {
                name: "db".into(),
                projected: false,
                sources: vec![VolumeSource::Secret {
                    name: "db-creds".into(),
                    items: vec![("password".into(), "pw".into())],
                }],
                mounts: vec![("app".into(), "/etc/db/".into())],
            },
            SecretVolume {
                name: "kube-api-access".into(),
                projected: true,
                sources: vec![
                    VolumeSource::ServiceAccountToken {
                        path: "token".into(),
                    },
                    VolumeSource::NotSecret {
                        paths: vec!["ca.crt".into()],
                    },
                    VolumeSource::Secret {
                        name: "extra".into(),
                        items: vec![],
                    },
                ],
                mounts: vec![],
            },
        ]);
        let k = name(&file("db", false, "pw"), &p).unwrap();
        assert_eq!(k.id(), "k8s:shop/db-creds/password");
        assert_eq!(k.secret.in_pod_paths, ["app:/etc/db/pw"]);
        assert_eq!(k.entry_id(), SECRET_ENTRY);
        let t = name(&file("kube-api-access", true, "token"), &p).unwrap();
        assert_eq!(t.id(), "k8s:shop/serviceaccount:web/token");
        assert!(t.sa_token);
        assert_eq!(name(&file("kube-api-access", true, "ca.crt"), &p), None);
        let e = name(&file("kube-api-access", true, "api-key"), &p).unwrap();
        assert_eq!(e.id(), "k8s:shop/extra/api-key");
        // The same volume name as a secret volume is another directory.
        assert_eq!(name(&file("db", true, "pw"), &p), None);
        assert_eq!(name(&file("unknown", false, "pw"), &p), None);
    }

    #[test]
    fn ambiguous_projections_are_not_named() {
        let p = pod(vec![SecretVolume {
            name: "mix".into(),
            projected: true,
            sources: vec![
                VolumeSource::Secret {
                    name: "a".into(),
                    items: vec![],
                },
                VolumeSource::Secret {
                    name: "b".into(),
                    items: vec![],
                },
            ],
            mounts: vec![],
        }]);
        assert_eq!(name(&file("mix", true, "k"), &p), None);
    }

    #[test]
    fn secret_key_ref_variables_of_the_container_are_named() {
        let p = pod(vec![]);
        let vars = vec![
            ("DB_PASSWORD".to_string(), "s3cr3t-value".to_string()),
            ("PLAIN".to_string(), "x".to_string()),
        ];
        let refs = env_refs(&p, "app", &vars);
        assert_eq!(refs.len(), 1);
        assert_eq!(secret_id(&refs[0].0, false), "k8s:shop/db-creds/password");
        assert_eq!(refs[0].1, "DB_PASSWORD");
        assert!(env_refs(&p, "sidecar", &vars).is_empty(), "other container");
        let empty = vec![("DB_PASSWORD".to_string(), String::new())];
        assert!(env_refs(&p, "app", &empty).is_empty());
    }
}
