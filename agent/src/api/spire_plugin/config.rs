//! The plugin's configuration: the `plugin_data` of its block in the SPIRE
//! agent config, which SPIRE hands over as HCL text in `Configure`.
//!
//! ```hcl
//! agent_socket    = "/run/proctor/proctor.sock"
//! selector_groups = ["unix", "k8s", "proctor"]
//! ```
//!
//! Both keys are optional; no `plugin_data` at all (SPIRE then sends an empty
//! text) means the defaults.

use std::path::PathBuf;

use serde::Deserialize;

use crate::api::DEFAULT_SOCKET;

/// A family of selectors the agent answers with (the `type` of
/// `proctor.v1.Selector`). Which ones a SPIRE deployment wants differs: the
/// `unix` and `k8s` forms repeat what SPIRE's own unix and k8s attestors
/// say (but from kernel evidence), `proctor` is what only proctor knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SelectorGroup {
    Unix,
    K8s,
    Proctor,
}

impl SelectorGroup {
    pub const ALL: [SelectorGroup; 3] = [Self::Unix, Self::K8s, Self::Proctor];

    /// The selector type the agent's API uses for this group.
    pub fn name(self) -> &'static str {
        match self {
            Self::Unix => "unix",
            Self::K8s => "k8s",
            Self::Proctor => "proctor",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginConfig {
    /// The proctor agent's API socket (`api.socket` in its config).
    pub agent_socket: PathBuf,
    /// Which selector groups go to SPIRE (default: all).
    pub selector_groups: Vec<SelectorGroup>,
}

impl Default for PluginConfig {
    fn default() -> Self {
        Self {
            agent_socket: PathBuf::from(DEFAULT_SOCKET),
            selector_groups: SelectorGroup::ALL.to_vec(),
        }
    }
}

impl PluginConfig {
    /// Parses `plugin_data`. Errors name the key (and for syntax errors the
    /// line and column) and say what would be accepted.
    pub fn parse(hcl_text: &str) -> anyhow::Result<Self> {
        if hcl_text.trim().is_empty() {
            return Ok(Self::default());
        }
        // Through hcl::Value: deserializing the body directly follows the HCL
        // JSON mapping, which turns `agent_socket = 5` into the string "${5}".
        let value: hcl::Value = hcl::from_str(hcl_text)
            .map_err(|e| anyhow::anyhow!("plugin_data is not valid HCL: {e}"))?;
        let de = serde::de::IntoDeserializer::<hcl::Error>::into_deserializer(value);
        let cfg: Self = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path == "." || path.is_empty() {
                anyhow::anyhow!("plugin_data: {inner} (known keys: agent_socket, selector_groups)")
            } else {
                anyhow::anyhow!("plugin_data key {path}: {inner}")
            }
        })?;
        if !cfg.agent_socket.is_absolute() {
            anyhow::bail!(
                "plugin_data key agent_socket: {:?} is not an absolute path; give the proctor \
                 agent's api.socket, e.g. \"{DEFAULT_SOCKET}\"",
                cfg.agent_socket
            );
        }
        if cfg.selector_groups.is_empty() {
            anyhow::bail!(
                "plugin_data key selector_groups: empty, so the plugin would never say anything; \
                 list at least one of \"unix\", \"k8s\", \"proctor\" (or leave the key out for all)"
            );
        }
        Ok(cfg)
    }

    pub fn emits(&self, selector_type: &str) -> bool {
        self.selector_groups
            .iter()
            .any(|g| g.name() == selector_type)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_means_defaults() {
        assert_eq!(PluginConfig::parse("").unwrap(), PluginConfig::default());
        assert_eq!(PluginConfig::parse(" \n").unwrap(), PluginConfig::default());
    }

    #[test]
    fn parses_keys() {
        // As SPIRE's HCL printer writes a plugin_data block: aligned, and
        // lists possibly spread over lines with a trailing comma.
        let c = PluginConfig::parse(
            "agent_socket    = \"/tmp/p.sock\"\nselector_groups = [\n  \"proctor\",\n  \"unix\",\n]\n",
        )
        .unwrap();
        assert_eq!(c.agent_socket, PathBuf::from("/tmp/p.sock"));
        assert_eq!(
            c.selector_groups,
            vec![SelectorGroup::Proctor, SelectorGroup::Unix]
        );
        assert!(c.emits("unix") && !c.emits("k8s"));
    }

    #[test]
    fn errors_name_the_key() {
        let e = PluginConfig::parse("agent_sock = \"/x\"")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("agent_sock") && e.contains("agent_socket"),
            "{e}"
        );
        let e = PluginConfig::parse("agent_socket = 5")
            .unwrap_err()
            .to_string();
        assert!(e.contains("key agent_socket: invalid type: integer"), "{e}");
        let e = PluginConfig::parse("selector_groups = [\"unix\", \"docker\"]")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("selector_groups") && e.contains("docker") && e.contains("k8s"),
            "{e}"
        );
        let e = PluginConfig::parse("selector_groups = []")
            .unwrap_err()
            .to_string();
        assert!(e.contains("key selector_groups"), "{e}");
        let e = PluginConfig::parse("agent_socket = \"run/p.sock\"")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("key agent_socket") && e.contains("absolute"),
            "{e}"
        );
        let e = PluginConfig::parse("agent_socket = ")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not valid HCL"), "{e}");
    }
}
