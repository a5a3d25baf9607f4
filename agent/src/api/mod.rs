//! The agent's gRPC API on a Unix socket (`proto/proctor/v1`).
//!
//! Services: `proctor.v1.Attestation` (who is PID N, and watch it),
//! `proctor.v1.Events` (the JSON event stream, filtered server-side),
//! `proctor.v1.Inventory` (the static-secret inventory) and the standard
//! `grpc.health.v1.Health`.
//!
//! Access: the socket is mode 0600 (0660 with `group`), and every call is
//! checked against the caller's kernel credentials (`SO_PEERCRED` and
//! `SO_PEERGROUPS`, taken when the connection is accepted). `allow_uids`,
//! `allow_gids` and `group` admit a caller to every service;
//! `services.<name>` admits it to that one only (an identity server needs
//! Attestation, not every user's command lines from Events and Inventory).
//! Anyone else gets PERMISSION_DENIED.

use std::{path::PathBuf, sync::Arc, sync::Mutex, time::Duration};

use serde::Deserialize;

use crate::identity::process_table::ProcessTable;
/// What [`ApiHandles::events`] is: the API's callers build one to serve events.
pub use crate::pipeline::feed::Feed;

pub mod attest;
pub mod client;
pub mod events;
pub mod hygiene;
pub mod inventory;
pub mod peer;
pub mod selectors;
pub mod server;
pub mod spire_plugin;

pub use server::{serve, ApiServer};

/// Code generated from proto/proctor/v1.
#[allow(clippy::all, missing_docs)]
pub mod pb {
    tonic::include_proto!("proctor.v1");
}

pub use pb::Identity;

/// Default socket path.
pub const DEFAULT_SOCKET: &str = "/run/proctor/proctor.sock";

/// The `api:` section of the agent's config.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Whether `proctor run` serves the API (the daemon checks this; `serve`
    /// itself does not).
    pub enabled: bool,
    /// Where the Unix socket lives. Its directory is created (mode 0755) when
    /// missing.
    pub socket: PathBuf,
    /// A group (name or number) that owns the socket and may call the API:
    /// the socket becomes mode 0660 and the group is allowed like
    /// `allow_gids`.
    pub group: Option<String>,
    /// Caller uids allowed (default: root only).
    pub allow_uids: Vec<u32>,
    /// Caller gids allowed (effective or supplementary gid of the caller).
    pub allow_gids: Vec<u32>,
    /// Callers admitted to one service only.
    pub services: ServiceAccess,
    /// How long Attest waits for the binary's hash before answering without
    /// the sha256 selectors (hash_status "pending").
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub hash_wait: Duration,
    /// Recent events kept in memory for `Events.Stream` (`proctor events`
    /// without `--follow`).
    pub recent_events: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            socket: PathBuf::from(DEFAULT_SOCKET),
            group: None,
            allow_uids: vec![0],
            allow_gids: Vec::new(),
            services: ServiceAccess::default(),
            hash_wait: Duration::from_secs(2),
            recent_events: 1024,
        }
    }
}

/// `api.services`: callers admitted to one service and no other.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceAccess {
    pub attestation: ServiceAllow,
    pub events: ServiceAllow,
    pub inventory: ServiceAllow,
}

/// The uids and gids of one `api.services` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceAllow {
    pub allow_uids: Vec<u32>,
    pub allow_gids: Vec<u32>,
}

impl ServiceAccess {
    /// Whether any service admits callers of its own.
    pub fn names_callers(&self) -> bool {
        [&self.attestation, &self.events, &self.inventory]
            .iter()
            .any(|a| !a.allow_uids.is_empty() || !a.allow_gids.is_empty())
    }
}

impl ServiceAllow {
    fn list(&self) -> peer::AllowList {
        peer::AllowList {
            uids: self.allow_uids.iter().copied().collect(),
            gids: self.allow_gids.iter().copied().collect(),
        }
    }
}

impl ApiConfig {
    /// The allow lists of every service; `group_gid` is `group` resolved.
    pub fn access(&self, group_gid: Option<u32>) -> peer::Access {
        let mut all = ServiceAllow {
            allow_uids: self.allow_uids.clone(),
            allow_gids: self.allow_gids.clone(),
        }
        .list();
        all.gids.extend(group_gid);
        peer::Access {
            all,
            attestation: self.services.attestation.list(),
            events: self.services.events.list(),
            inventory: self.services.inventory.list(),
        }
    }
}

/// What the API reads from the running agent.
#[derive(Clone)]
pub struct ApiHandles {
    /// The agent's process table (`Agent::table()`).
    pub table: Arc<Mutex<ProcessTable>>,
    /// The agent's emitted events: the recent history and live subscriptions.
    pub events: Feed,
    /// The inventory database (`secrets::inventory::default_path(&cfg.state_dir)`).
    pub inventory_path: PathBuf,
    /// Package and exec-time environment evidence (`binary-package`,
    /// `env-static-secrets` selectors).
    pub hygiene: Arc<hygiene::Evidence>,
}

/// Largest pid Linux hands out (`PID_MAX_LIMIT` on 64-bit).
pub const PID_MAX: i32 = 4_194_304;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_and_yaml() {
        let c: ApiConfig = serde_yaml_ng::from_str("{}").unwrap();
        assert_eq!(c, ApiConfig::default());
        assert_eq!(c.allow_uids, vec![0]);
        let c: ApiConfig = serde_yaml_ng::from_str(
            "socket: /tmp/x.sock\ngroup: proctor\nallow_uids: [0, 1000]\nhash_wait: 500ms\n",
        )
        .unwrap();
        assert_eq!(c.socket, PathBuf::from("/tmp/x.sock"));
        assert_eq!(c.group.as_deref(), Some("proctor"));
        assert_eq!(c.allow_uids, vec![0, 1000]);
        assert_eq!(c.hash_wait, Duration::from_millis(500));
        let e = serde_yaml_ng::from_str::<ApiConfig>("alow_uids: [1]\n").unwrap_err();
        assert!(e.to_string().contains("alow_uids"), "{e}");
        let c: ApiConfig = serde_yaml_ng::from_str(
            "services:\n  attestation:\n    allow_uids: [1000]\n    allow_gids: [77]\n",
        )
        .unwrap();
        let access = c.access(Some(5));
        assert_eq!(access.attestation.uids, [1000].into());
        assert_eq!(access.attestation.gids, [77].into());
        assert!(access.events.uids.is_empty());
        assert_eq!(access.all.gids, [5].into());
        let e = serde_yaml_ng::from_str::<ApiConfig>("services:\n  event:\n    allow_uids: [1]\n")
            .unwrap_err();
        assert!(e.to_string().contains("event"), "{e}");
        let e = serde_yaml_ng::from_str::<ApiConfig>("hash_wait: soon\n").unwrap_err();
        assert!(e.to_string().contains("invalid duration"), "{e}");
    }
}
