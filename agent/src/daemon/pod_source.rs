//! Which pod metadata source the config asks for (or why there is none),
//! its poller task and its state for `agent_status`.

use std::sync::Arc;

use anyhow::Result;
use serde::Serialize;

use crate::identity::pods::{self, PodCache, SourceStats};

/// The pod metadata source the config asks for, or why there is none.
pub(super) struct PodSource {
    pub cache: Option<Arc<PodCache>>,
    /// (config, URL) of the pod list to poll; taken when the poller starts.
    poll: Option<(pods::KubernetesConfig, String)>,
    disabled: Option<String>,
}

/// `agent_status.pod_metadata`: the source's figures, or why it is off.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(super) enum PodMetadataStatus {
    Source(SourceStats),
    Disabled {
        source: &'static str,
        state: &'static str,
        reason: Option<String>,
    },
}

impl PodSource {
    pub fn new(cfg: &pods::KubernetesConfig, node: &str) -> Result<Self> {
        let off = |why: String| PodSource {
            cache: None,
            poll: None,
            disabled: Some(why),
        };
        if let Err(why) = cfg.active() {
            return Ok(off(why));
        }
        let url = match cfg.url(node) {
            Ok(u) => u,
            Err(e) if cfg.enabled == pods::config::Enabled::On => anyhow::bail!(e),
            Err(e) => {
                tracing::warn!("pod metadata off: {e}");
                return Ok(off(e));
            }
        };
        Ok(PodSource {
            cache: Some(PodCache::new(pods::source::initial_stats(cfg.source, &url))),
            poll: Some((cfg.clone(), url)),
            disabled: None,
        })
    }

    /// The poller of the pod list, when there is one to poll (taken once).
    pub fn poll_task(&mut self) -> Option<impl std::future::Future<Output = ()> + Send + 'static> {
        match (self.poll.take(), &self.cache) {
            (Some((cfg, url)), Some(cache)) => Some(pods::source::run(cfg, url, cache.clone())),
            _ => None,
        }
    }

    pub fn status(&self) -> PodMetadataStatus {
        match (&self.cache, &self.disabled) {
            (Some(c), _) => PodMetadataStatus::Source(c.stats()),
            (None, why) => PodMetadataStatus::Disabled {
                source: "none",
                state: "disabled",
                reason: why.clone(),
            },
        }
    }
}
