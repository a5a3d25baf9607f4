//! The `kubernetes:` section of the agent's config: where pod metadata comes from.

use std::{path::PathBuf, time::Duration};

use serde::{Deserialize, Deserializer};

pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Where pod lists come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The node's kubelet, `/pods`: no load on the API server.
    Kubelet,
    /// The API server's pod list, restricted to this node's pods.
    ApiServer,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Kubelet => "kubelet",
            Source::ApiServer => "api_server",
        }
    }
}

/// `enabled: auto | true | false`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enabled {
    /// On when the service-account token file exists (the agent runs in a pod).
    Auto,
    On,
    Off,
}

impl<'de> Deserialize<'de> for Enabled {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bool(true) => Ok(Self::On),
            Raw::Bool(false) => Ok(Self::Off),
            Raw::Text(s) if s == "auto" => Ok(Self::Auto),
            Raw::Text(s) => Err(serde::de::Error::custom(format!(
                "kubernetes.enabled is {s:?}; write auto, true or false"
            ))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KubernetesConfig {
    pub enabled: Enabled,
    pub source: Source,
    /// The kubelet's `/pods` endpoint. `${NAME}` is replaced by the
    /// environment variable NAME (the DaemonSet sets HOST_IP to the node's IP).
    pub kubelet_url: String,
    /// The API server's base URL (`${NAME}` as in `kubelet_url`); the agent
    /// asks for `/api/v1/pods?fieldSelector=spec.nodeName=<node>`.
    pub api_server_url: String,
    /// Bearer token sent to the kubelet, read again for every request
    /// (projected tokens rotate).
    pub token_file: PathBuf,
    /// CA bundle (PEM) that signed the kubelet's serving certificate.
    pub ca_file: Option<PathBuf>,
    /// Accept any kubelet certificate. Kubelets often serve a self-signed
    /// certificate; this trades the check of who answers for working at all.
    pub insecure_skip_verify: bool,
    /// How often the whole pod list is fetched again.
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub refresh_interval: Duration,
    /// Least time between two fetches asked for by a pod or container the
    /// cache does not know yet.
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub min_refresh_interval: Duration,
    /// Connect + answer timeout of one fetch.
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub timeout: Duration,
    /// The kubelet's root directory as the agent sees it: pods' Secret and
    /// projected volumes are under `<kubelet_root>/pods/<uid>/volumes/`.
    pub kubelet_root: PathBuf,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        Self {
            enabled: Enabled::Auto,
            source: Source::Kubelet,
            kubelet_url: "https://${HOST_IP}:10250/pods".into(),
            api_server_url: "https://${KUBERNETES_SERVICE_HOST}:${KUBERNETES_SERVICE_PORT}".into(),
            token_file: PathBuf::from(format!("{SERVICE_ACCOUNT_DIR}/token")),
            ca_file: Some(PathBuf::from(format!("{SERVICE_ACCOUNT_DIR}/ca.crt"))),
            insecure_skip_verify: false,
            refresh_interval: Duration::from_secs(30),
            min_refresh_interval: Duration::from_secs(2),
            timeout: Duration::from_secs(10),
            kubelet_root: PathBuf::from("/var/lib/kubelet"),
        }
    }
}

impl KubernetesConfig {
    /// Whether the kubelet source runs, and if not, why.
    pub fn active(&self) -> Result<(), String> {
        match self.enabled {
            Enabled::On => Ok(()),
            Enabled::Off => Err("kubernetes.enabled is false".into()),
            Enabled::Auto if self.token_file.exists() => Ok(()),
            Enabled::Auto => Err(format!(
                "kubernetes.enabled is auto and there is no service-account token at {} \
                 (not running in a pod)",
                self.token_file.display()
            )),
        }
    }

    /// Static checks (the files are checked at each fetch: they may appear later).
    pub fn validate(&self) -> Result<(), String> {
        if self.refresh_interval < Duration::from_secs(1) {
            return Err("kubernetes.refresh_interval must be at least 1s".into());
        }
        if self.timeout.is_zero() {
            return Err("kubernetes.timeout must be above 0".into());
        }
        if !self.kubelet_root.is_absolute() {
            return Err(format!(
                "kubernetes.kubelet_root {:?} is not an absolute path; write the kubelet's \
                 root as the agent sees it (/var/lib/kubelet, or where the DaemonSet mounts it)",
                self.kubelet_root
            ));
        }
        for (key, url) in [
            ("kubelet_url", &self.kubelet_url),
            ("api_server_url", &self.api_server_url),
        ] {
            let shape = url.replace("${", "").replace('}', "");
            if !(shape.starts_with("https://") || shape.starts_with("http://")) {
                return Err(format!(
                    "kubernetes.{key} {url:?} is not an http(s) URL; write e.g. \
                     https://${{HOST_IP}}:10250/pods"
                ));
            }
        }
        Ok(())
    }

    /// The URL to fetch, `${NAME}` replaced from the environment. `node`:
    /// this node's name, which the API server's list is restricted to.
    pub fn url(&self, node: &str) -> Result<String, String> {
        let env = |k: &str| std::env::var(k).ok();
        match self.source {
            Source::Kubelet => expand("kubelet_url", &self.kubelet_url, env),
            Source::ApiServer => {
                if node.is_empty()
                    || !node
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
                {
                    return Err(format!(
                        "the node name {node:?} is not a Kubernetes node name; set node_name \
                         or NODE_NAME (the DaemonSet sets it from spec.nodeName)"
                    ));
                }
                let base = expand("api_server_url", &self.api_server_url, env)?;
                Ok(format!(
                    "{}/api/v1/pods?fieldSelector=spec.nodeName%3D{node}",
                    base.trim_end_matches('/')
                ))
            }
        }
    }
}

/// Replaces `${NAME}` in config key `key`'s value `s` with `var(NAME)`; an
/// unset or empty variable is an error.
fn expand(key: &str, s: &str, var: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let Some(end) = after.find('}') else {
            return Err(format!("kubernetes.{key} {s:?} has an unclosed ${{"));
        };
        let name = &after[..end];
        match var(name).filter(|v| !v.is_empty()) {
            Some(v) => out.push_str(&v),
            None => {
                return Err(format!(
                    "kubernetes.{key} {s:?} names ${{{name}}}, which is not set; set it \
                     (the DaemonSet sets HOST_IP from fieldRef status.hostIP; Kubernetes sets \
                     KUBERNETES_SERVICE_HOST/PORT in every pod) or write the address"
                ))
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_forms_and_expansion() {
        let c: KubernetesConfig = serde_yaml_ng::from_str("{}").unwrap();
        assert_eq!(c, KubernetesConfig::default());
        for (y, e) in [
            ("enabled: auto", Enabled::Auto),
            ("enabled: true", Enabled::On),
            ("enabled: false", Enabled::Off),
        ] {
            let c: KubernetesConfig = serde_yaml_ng::from_str(y).unwrap();
            assert_eq!(c.enabled, e);
        }
        let e = serde_yaml_ng::from_str::<KubernetesConfig>("enabled: maybe").unwrap_err();
        assert!(e.to_string().contains("auto, true or false"), "{e}");
        let e = serde_yaml_ng::from_str::<KubernetesConfig>("kubelet_ur: x").unwrap_err();
        assert!(e.to_string().contains("kubelet_ur"), "{e}");

        let env = |k: &str| (k == "HOST_IP").then(|| "10.1.2.3".to_string());
        let k = "kubelet_url";
        assert_eq!(
            expand(k, "https://${HOST_IP}:10250/pods", env).unwrap(),
            "https://10.1.2.3:10250/pods"
        );
        let e = expand(k, "https://${NOPE}:10250/pods", env).unwrap_err();
        assert!(e.contains("${NOPE}") && e.contains("not set"), "{e}");
        let e = expand(k, "https://${HOST_IP", env).unwrap_err();
        assert!(e.contains("unclosed"), "{e}");

        let api = KubernetesConfig {
            source: Source::ApiServer,
            api_server_url: "https://127.0.0.1:6443/".into(),
            ..Default::default()
        };
        assert_eq!(
            api.url("node-1").unwrap(),
            "https://127.0.0.1:6443/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-1"
        );
        assert!(api.url("").unwrap_err().contains("node name"));
        assert!(api.url("a&b=c").unwrap_err().contains("node name"));
        let c: KubernetesConfig = serde_yaml_ng::from_str("source: api_server").unwrap();
        assert_eq!(c.source, Source::ApiServer);

        let bad = KubernetesConfig {
            kubelet_url: "127.0.0.1:10250".into(),
            ..Default::default()
        };
        assert!(bad.validate().unwrap_err().contains("not an http(s) URL"));
        let rel = KubernetesConfig {
            kubelet_root: "var/lib/kubelet".into(),
            ..Default::default()
        };
        assert!(rel.validate().unwrap_err().contains("kubelet_root"));
        assert!(KubernetesConfig::default().validate().is_ok());
    }
}
