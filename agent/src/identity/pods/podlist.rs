//! The kubelet's `/pods` answer (a `v1.PodList`), reduced to what identity
//! needs: who the pod is, which container id runs which image, and which
//! Kubernetes Secrets reach its containers (volumes and `secretKeyRef` env).
//!
//! A list that is not a PodList is an error naming what was wrong; a single
//! pod without a uid is skipped and counted, not allowed to spoil the rest.

use std::collections::BTreeMap;

use serde::Deserialize;

/// One pod as the agent keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodMeta {
    pub uid: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub service_account: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// Containers that have a runtime id (regular, init and ephemeral).
    pub containers: Vec<ContainerMeta>,
    /// Secret and projected volumes, with where each container mounts them.
    pub secret_volumes: Vec<SecretVolume>,
    /// Environment variables set from a Secret (`valueFrom.secretKeyRef`).
    pub secret_env: Vec<SecretEnvRef>,
    /// The pod facts SPIRE's k8s workload attestor makes selectors of.
    pub attest: PodAttestFacts,
}

/// What SPIRE's k8s attestor reads from a pod besides its name, namespace,
/// service account and labels: node, owners and the images its container
/// statuses report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodAttestFacts {
    /// `spec.nodeName`.
    pub node_name: Option<String>,
    /// `metadata.ownerReferences`.
    pub owners: Vec<OwnerRef>,
    /// Every non-empty `image` and `imageID` of `status.containerStatuses`,
    /// sorted, without duplicates (SPIRE matches a tag or a digest).
    pub images: Vec<String>,
    /// How many `status.containerStatuses` there are.
    pub image_count: usize,
    /// As `images`, of `status.initContainerStatuses`.
    pub init_images: Vec<String>,
    pub init_image_count: usize,
}

/// One `metadata.ownerReferences` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerRef {
    pub kind: String,
    pub name: String,
    pub uid: String,
}

/// A volume of a pod that holds Secret data: the kubelet's directory
/// `volumes/kubernetes.io~secret/<name>` or `volumes/kubernetes.io~projected/<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretVolume {
    pub name: String,
    /// `false`: a `secret` volume; `true`: a `projected` one.
    pub projected: bool,
    pub sources: Vec<VolumeSource>,
    /// (container name, mount path in the container).
    pub mounts: Vec<(String, String)>,
}

/// Where the files of a secret or projected volume come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeSource {
    /// A Secret; `items` (key, file path) when only some keys are projected.
    Secret {
        name: String,
        items: Vec<(String, String)>,
    },
    /// The pod's service-account token, written at `path`.
    ServiceAccountToken { path: String },
    /// A configMap, downwardAPI or clusterTrustBundle source: no secret; its
    /// file paths when listed.
    NotSecret { paths: Vec<String> },
}

/// `env[].valueFrom.secretKeyRef` of one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretEnvRef {
    pub container: String,
    pub variable: String,
    pub secret: String,
    pub key: String,
}

/// A container of a pod, by the id its runtime gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerMeta {
    /// The bare id, as it appears in cgroup paths (no `containerd://`).
    pub id: String,
    pub name: String,
    pub image: Option<String>,
    /// The image's digest reference (`imageID`), when the runtime reports one.
    pub image_id: Option<String>,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct PodList {
    pub pods: Vec<PodMeta>,
    /// Items without a uid (not a pod the agent can match to anything).
    pub skipped: usize,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("the answer is not JSON ({0}); check that the URL is the kubelet's /pods endpoint")]
    NotJson(String),
    #[error("the answer is JSON but not a PodList ({0}); check that the URL is the kubelet's /pods endpoint")]
    NotPodList(String),
}

#[derive(Deserialize)]
struct RawList {
    kind: Option<String>,
    items: Option<Vec<RawPod>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawPod {
    metadata: RawMeta,
    spec: RawSpec,
    status: RawStatus,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawMeta {
    uid: Option<String>,
    name: Option<String>,
    namespace: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    #[serde(rename = "ownerReferences")]
    owner_references: Option<Vec<RawOwner>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawOwner {
    kind: String,
    name: String,
    uid: String,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct RawSpec {
    service_account_name: Option<String>,
    node_name: Option<String>,
    volumes: Option<Vec<RawVolume>>,
    containers: Option<Vec<RawContainer>>,
    init_containers: Option<Vec<RawContainer>>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct RawVolume {
    name: String,
    secret: Option<RawSecretVolume>,
    projected: Option<RawProjected>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct RawSecretVolume {
    secret_name: Option<String>,
    items: Option<Vec<RawItem>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawItem {
    key: String,
    path: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawProjected {
    sources: Option<Vec<RawProjection>>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct RawProjection {
    secret: Option<RawSecretProjection>,
    service_account_token: Option<RawTokenProjection>,
    config_map: Option<RawOtherProjection>,
    #[serde(rename = "downwardAPI")]
    downward_api: Option<RawOtherProjection>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawSecretProjection {
    name: Option<String>,
    items: Option<Vec<RawItem>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawTokenProjection {
    path: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawOtherProjection {
    items: Option<Vec<RawOtherItem>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawOtherItem {
    path: String,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct RawContainer {
    name: String,
    volume_mounts: Option<Vec<RawMount>>,
    env: Option<Vec<RawEnv>>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct RawMount {
    name: String,
    mount_path: String,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct RawEnv {
    name: String,
    value_from: Option<RawEnvSource>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct RawEnvSource {
    secret_key_ref: Option<RawKeyRef>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawKeyRef {
    name: String,
    key: String,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct RawStatus {
    container_statuses: Option<Vec<RawContainerStatus>>,
    init_container_statuses: Option<Vec<RawContainerStatus>>,
    ephemeral_container_statuses: Option<Vec<RawContainerStatus>>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct RawContainerStatus {
    name: String,
    image: Option<String>,
    #[serde(rename = "imageID")]
    image_id: Option<String>,
    #[serde(rename = "containerID")]
    container_id: Option<String>,
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

/// `containerd://<id>` (or `cri-o://`, `docker://`) -> `<id>`; `None` for an
/// empty id (a container not created yet).
pub fn bare_container_id(s: &str) -> Option<&str> {
    let id = s.split_once("://").map_or(s, |(_, id)| id);
    (!id.is_empty()).then_some(id)
}

/// Parses the body of a kubelet `/pods` answer.
pub fn parse(body: &[u8]) -> Result<PodList, ParseError> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| ParseError::NotJson(e.to_string()))?;
    if !v.is_object() {
        return Err(ParseError::NotPodList(format!(
            "top level is {}, not an object",
            json_type(&v)
        )));
    }
    let raw: RawList =
        serde_json::from_value(v).map_err(|e| ParseError::NotPodList(e.to_string()))?;
    if let Some(k) = raw.kind.as_deref().filter(|k| *k != "PodList") {
        return Err(ParseError::NotPodList(format!("kind is {k:?}")));
    }
    let Some(items) = raw.items else {
        return Err(ParseError::NotPodList("it has no `items`".into()));
    };
    let mut out = PodList::default();
    for pod in items {
        let Some(uid) = non_empty(pod.metadata.uid) else {
            out.skipped += 1;
            continue;
        };
        let s = pod.status;
        let images = |statuses: &Option<Vec<RawContainerStatus>>| -> (Vec<String>, usize) {
            let list = statuses.as_deref().unwrap_or_default();
            let set: std::collections::BTreeSet<String> = list
                .iter()
                .flat_map(|c| [&c.image, &c.image_id])
                .filter_map(|i| i.clone().filter(|i| !i.is_empty()))
                .collect();
            (set.into_iter().collect(), list.len())
        };
        let (pod_images, image_count) = images(&s.container_statuses);
        let (init_images, init_image_count) = images(&s.init_container_statuses);
        let containers = [
            s.container_statuses,
            s.init_container_statuses,
            s.ephemeral_container_statuses,
        ]
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|c| {
            let id = bare_container_id(c.container_id.as_deref()?)?.to_string();
            Some(ContainerMeta {
                id,
                name: c.name,
                image: non_empty(c.image),
                image_id: non_empty(c.image_id),
            })
        })
        .collect();
        let spec = pod.spec;
        let attest = PodAttestFacts {
            node_name: non_empty(spec.node_name),
            owners: pod
                .metadata
                .owner_references
                .unwrap_or_default()
                .into_iter()
                .map(|o| OwnerRef {
                    kind: o.kind,
                    name: o.name,
                    uid: o.uid,
                })
                .collect(),
            images: pod_images,
            image_count,
            init_images,
            init_image_count,
        };
        let all_containers: Vec<RawContainer> = [spec.containers, spec.init_containers]
            .into_iter()
            .flatten()
            .flatten()
            .collect();
        out.pods.push(PodMeta {
            uid,
            namespace: non_empty(pod.metadata.namespace),
            name: non_empty(pod.metadata.name),
            service_account: non_empty(spec.service_account_name),
            labels: pod.metadata.labels.unwrap_or_default(),
            containers,
            secret_volumes: secret_volumes(spec.volumes.unwrap_or_default(), &all_containers),
            secret_env: secret_env(&all_containers),
            attest,
        });
    }
    Ok(out)
}

fn items(raw: Option<Vec<RawItem>>) -> Vec<(String, String)> {
    raw.unwrap_or_default()
        .into_iter()
        .map(|i| (i.key, i.path))
        .collect()
}

/// The pod's secret and projected volumes, each with its mounts.
fn secret_volumes(volumes: Vec<RawVolume>, containers: &[RawContainer]) -> Vec<SecretVolume> {
    let mut out = Vec::new();
    for v in volumes {
        let (projected, sources) = if let Some(s) = v.secret {
            let Some(name) = non_empty(s.secret_name) else {
                continue;
            };
            let items = items(s.items);
            (false, vec![VolumeSource::Secret { name, items }])
        } else if let Some(p) = v.projected {
            let sources = p
                .sources
                .unwrap_or_default()
                .into_iter()
                .filter_map(|src| {
                    if let Some(s) = src.secret {
                        let name = non_empty(s.name)?;
                        let items = items(s.items);
                        Some(VolumeSource::Secret { name, items })
                    } else if let Some(t) = src.service_account_token {
                        Some(VolumeSource::ServiceAccountToken { path: t.path })
                    } else {
                        let other = src.config_map.or(src.downward_api)?;
                        let paths = other
                            .items
                            .unwrap_or_default()
                            .into_iter()
                            .map(|i| i.path)
                            .collect();
                        Some(VolumeSource::NotSecret { paths })
                    }
                })
                .collect();
            (true, sources)
        } else {
            continue;
        };
        let mounts = containers
            .iter()
            .flat_map(|c| {
                c.volume_mounts
                    .iter()
                    .flatten()
                    .filter(|m| m.name == v.name)
                    .map(|m| (c.name.clone(), m.mount_path.clone()))
            })
            .collect();
        out.push(SecretVolume {
            name: v.name,
            projected,
            sources,
            mounts,
        });
    }
    out
}

fn secret_env(containers: &[RawContainer]) -> Vec<SecretEnvRef> {
    containers
        .iter()
        .flat_map(|c| {
            c.env.iter().flatten().filter_map(|e| {
                let r = e.value_from.as_ref()?.secret_key_ref.as_ref()?;
                Some(SecretEnvRef {
                    container: c.name.clone(),
                    variable: e.name.clone(),
                    secret: r.name.clone(),
                    key: r.key.clone(),
                })
            })
        })
        .collect()
}

fn json_type(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "4f1c2a9e4b6d8f0a1c3e5a7b9d1f2e4c6a8b0d2f4e6a8c0b2d4f6e8a0c2e4a6b";

    #[test]
    fn a_pod_with_its_containers() {
        let body = format!(
            r#"{{"kind":"PodList","apiVersion":"v1","metadata":{{}},"items":[
              {{"metadata":{{"name":"web-0","namespace":"shop","uid":"u-1","labels":{{"app":"web"}},
                "ownerReferences":[{{"apiVersion":"apps/v1","kind":"StatefulSet","name":"web","uid":"o-1","controller":true}}]}},
                "spec":{{"serviceAccountName":"web","nodeName":"n1","containers":[{{"name":"app","image":"x"}}]}},
                "status":{{"phase":"Running",
                  "initContainerStatuses":[{{"name":"init","image":"busybox:1","imageID":"","containerID":"cri-o://{ID}"}}],
                  "containerStatuses":[{{"name":"app","image":"reg/app:1","imageID":"reg/app@sha256:ab","containerID":"containerd://c1"}},
                                       {{"name":"waiting","image":"reg/w:1","imageID":"","started":false}}]}}}},
              {{"metadata":{{"name":"no-uid"}}}}
            ]}}"#
        );
        let l = parse(body.as_bytes()).unwrap();
        assert_eq!(l.skipped, 1);
        assert_eq!(l.pods.len(), 1);
        let p = &l.pods[0];
        assert_eq!(p.uid, "u-1");
        assert_eq!(p.namespace.as_deref(), Some("shop"));
        assert_eq!(p.service_account.as_deref(), Some("web"));
        assert_eq!(p.labels.get("app").map(String::as_str), Some("web"));
        let ids: Vec<_> = p.containers.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["c1", ID], "a container without an id is left out");
        assert_eq!(
            p.containers[0].image_id.as_deref(),
            Some("reg/app@sha256:ab")
        );
        assert_eq!(p.containers[1].image_id, None, "empty imageID is unknown");
        let a = &p.attest;
        assert_eq!(a.node_name.as_deref(), Some("n1"));
        assert_eq!(
            a.owners,
            [OwnerRef {
                kind: "StatefulSet".into(),
                name: "web".into(),
                uid: "o-1".into()
            }]
        );
        // Tags and digests of every status, the waiting container's too.
        assert_eq!(a.images, ["reg/app:1", "reg/app@sha256:ab", "reg/w:1"]);
        assert_eq!(a.image_count, 2);
        assert_eq!(a.init_images, ["busybox:1"]);
        assert_eq!(a.init_image_count, 1);
    }

    #[test]
    fn secret_volumes_mounts_and_env_references_are_kept() {
        let body = br#"{"kind":"PodList","items":[{"metadata":{"uid":"u-2","namespace":"shop"},
          "spec":{"volumes":[
             {"name":"db","secret":{"secretName":"db-creds","items":[{"key":"password","path":"pw"}]}},
             {"name":"kube-api-access-x","projected":{"sources":[
                {"serviceAccountToken":{"path":"token","expirationSeconds":3607}},
                {"configMap":{"name":"kube-root-ca.crt","items":[{"key":"ca.crt","path":"ca.crt"}]}},
                {"downwardAPI":{"items":[{"path":"namespace"}]}},
                {"secret":{"name":"extra"}}]}},
             {"name":"cache","emptyDir":{}},
             {"name":"nameless","secret":{}}],
           "containers":[{"name":"app",
              "volumeMounts":[{"name":"db","mountPath":"/etc/db"},{"name":"kube-api-access-x","mountPath":"/var/run/secrets/kubernetes.io/serviceaccount"}],
              "env":[{"name":"PLAIN","value":"x"},
                     {"name":"DB_PASSWORD","valueFrom":{"secretKeyRef":{"name":"db-creds","key":"password"}}},
                     {"name":"NODE","valueFrom":{"fieldRef":{"fieldPath":"spec.nodeName"}}}]}]}}]}"#;
        let l = parse(body).unwrap();
        let p = &l.pods[0];
        assert_eq!(p.secret_volumes.len(), 2, "{:?}", p.secret_volumes);
        let db = &p.secret_volumes[0];
        assert_eq!((db.name.as_str(), db.projected), ("db", false));
        assert_eq!(
            db.sources,
            [VolumeSource::Secret {
                name: "db-creds".into(),
                items: vec![("password".into(), "pw".into())]
            }]
        );
        assert_eq!(db.mounts, [("app".to_string(), "/etc/db".to_string())]);
        let sa = &p.secret_volumes[1];
        assert!(sa.projected);
        assert_eq!(
            sa.sources,
            [
                VolumeSource::ServiceAccountToken {
                    path: "token".into()
                },
                VolumeSource::NotSecret {
                    paths: vec!["ca.crt".into()]
                },
                VolumeSource::NotSecret {
                    paths: vec!["namespace".into()]
                },
                VolumeSource::Secret {
                    name: "extra".into(),
                    items: vec![]
                },
            ]
        );
        assert_eq!(
            p.secret_env,
            [SecretEnvRef {
                container: "app".into(),
                variable: "DB_PASSWORD".into(),
                secret: "db-creds".into(),
                key: "password".into()
            }]
        );
    }

    #[test]
    fn malformed_answers_are_named_errors() {
        let err = |b: &str| parse(b.as_bytes()).unwrap_err().to_string();
        assert!(err("").contains("not JSON"));
        assert!(err("<html>401 Unauthorized</html>").contains("not JSON"));
        assert!(err(r#"{"items": [ {"metadata": "#).contains("not JSON"));
        assert!(err("[]").contains("top level is an array"));
        assert!(err("null").contains("top level is null"));
        assert!(err(r#"{"kind":"Status","status":"Failure"}"#).contains("kind is \"Status\""));
        assert!(err(r#"{"kind":"PodList"}"#).contains("no `items`"));
        assert!(err(r#"{"items": 7}"#).contains("not a PodList"));
        assert!(err(r#"{"items": [{"metadata": {"uid": 5}}]}"#).contains("not a PodList"));
        let e = err(r#"{"items": [{"metadata": {"labels": {"a": 1}}}]}"#);
        assert!(e.contains("not a PodList"), "{e}");
        // Empty list and unknown fields are fine.
        assert_eq!(
            parse(br#"{"kind":"PodList","items":[],"extra":{"x":1}}"#).unwrap(),
            PodList::default()
        );
        // Deeply nested garbage does not blow the stack.
        let deep = "[".repeat(100_000);
        assert!(err(&deep).contains("not JSON"));
    }

    #[test]
    fn container_ids_lose_their_scheme() {
        assert_eq!(bare_container_id("containerd://abc"), Some("abc"));
        assert_eq!(bare_container_id("docker://abc"), Some("abc"));
        assert_eq!(bare_container_id("abc"), Some("abc"));
        assert_eq!(bare_container_id("containerd://"), None);
        assert_eq!(bare_container_id(""), None);
    }
}
