//! Live reconfiguration: SIGHUP or a change of the config file re-reads it,
//! applies what can change live and reports the rest, keeping all state.
//!
//! The file is watched through its directory, not its inode: Kubernetes
//! updates a mounted ConfigMap by renaming a new `..data` symlink over the
//! old one, which the file's own inode never hears about.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use futures::StreamExt;
use inotify::{EventStream, Inotify, WatchMask};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::{
    signal::unix::{signal, Signal, SignalKind},
    time::Instant,
};

use super::{hook_check::check_hooks, Agent};
use crate::{
    config::{self, Config, DEFAULT_CONFIG},
    secrets::setup,
};

/// A config file larger than this is refused unread.
const MAX_CONFIG_BYTES: u64 = 4 << 20;

/// File events closer together than this are one change (a ConfigMap swap
/// is several renames and unlinks).
const SETTLE: std::time::Duration = std::time::Duration::from_millis(200);

/// Where the config came from, and the texts reloads are judged against.
pub struct ConfigSource {
    pub(super) path: Option<PathBuf>,
    /// What the agent started with: restart-only keys differing from it
    /// are `needs_restart` until the agent restarts.
    started: String,
    /// The last text applied: live keys differing from it are `changed`.
    applied: String,
    /// The hash of the last text read (applied or refused): a file event
    /// that leaves the content as it was is no reload.
    seen_sha256: String,
}

impl ConfigSource {
    /// Reads the text the agent starts with (`None`: the embedded default).
    /// The agent's config is parsed from this very text ([`Self::config`]),
    /// so a change made meanwhile is a change for the first reload.
    pub fn open(path: Option<PathBuf>) -> Result<Self> {
        let text = match &path {
            Some(p) => read_capped(p)?,
            None => DEFAULT_CONFIG.to_string(),
        };
        Ok(Self {
            path,
            seen_sha256: sha256_hex(&text),
            applied: text.clone(),
            started: text,
        })
    }

    /// The configuration the agent starts with, validated.
    pub fn config(&self) -> Result<Config> {
        Config::parse(&self.started, &self.origin())
    }

    fn origin(&self) -> String {
        self.path
            .as_ref()
            .map_or("<embedded default config>".into(), |p| {
                p.display().to_string()
            })
    }
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The config file's text, refusing anything but a regular file of sane size.
fn read_capped(path: &Path) -> Result<String> {
    let cannot = || {
        format!(
            "cannot read config file {}; check the path, or omit --config to run on the \
             embedded default",
            path.display()
        )
    };
    let meta = std::fs::metadata(path).with_context(cannot)?;
    if !meta.is_file() || meta.len() > MAX_CONFIG_BYTES {
        anyhow::bail!(
            "config file {} is not a regular file of at most {MAX_CONFIG_BYTES} bytes; fix the \
             path given to --config",
            path.display()
        );
    }
    std::fs::read_to_string(path).with_context(cannot)
}

/// What asks for a reload: SIGHUP, and changes in the config file's directory.
pub(super) struct Triggers {
    hup: Signal,
    dir: Option<EventStream<Vec<u8>>>,
    /// When the burst of file events seen so far counts as settled. Kept
    /// here, not in [`Self::next`]'s future: the reader loop drops that
    /// future whenever another branch wins, and a change must not be lost.
    settled_at: Option<Instant>,
}

impl Triggers {
    pub fn new(path: Option<&Path>) -> Result<Self> {
        let hup = signal(SignalKind::hangup()).context("install SIGHUP handler")?;
        let dir = path.and_then(|p| match watch_dir(p) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(
                    "config file {} is not watched ({e:#}); send SIGHUP to reload it",
                    p.display()
                );
                None
            }
        });
        // One look right away: the file may have changed between its first
        // read and this watch.
        let settled_at = dir.as_ref().map(|_| Instant::now());
        Ok(Self {
            hup,
            dir,
            settled_at,
        })
    }

    /// The next reason to reload: `SIGHUP`, or `file` once file events have
    /// been quiet for [`SETTLE`]. Cancel-safe.
    pub async fn next(&mut self) -> &'static str {
        let Self {
            hup,
            dir,
            settled_at,
        } = self;
        loop {
            let settle = async {
                match *settled_at {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            let event = async {
                match dir.as_mut() {
                    Some(s) => s.next().await.is_some(),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = hup.recv() => return "SIGHUP",
                _ = settle => {
                    *settled_at = None;
                    return "file";
                }
                more = event => {
                    if more {
                        *settled_at = Some(Instant::now() + SETTLE);
                    } else {
                        tracing::warn!("the config file watch ended; send SIGHUP to reload");
                        *dir = None;
                    }
                }
            }
        }
    }
}

/// inotify on the directory holding `path` (the name itself may be a
/// symlink through `..data`, which is renamed, never written).
fn watch_dir(path: &Path) -> Result<EventStream<Vec<u8>>> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let inotify = Inotify::init().context("inotify_init")?;
    inotify
        .watches()
        .add(
            &dir,
            WatchMask::CLOSE_WRITE
                | WatchMask::MOVED_TO
                | WatchMask::MOVED_FROM
                | WatchMask::CREATE
                | WatchMask::DELETE,
        )
        .with_context(|| format!("inotify watch on {}", dir.display()))?;
    Ok(inotify.into_event_stream(vec![0u8; 4096])?)
}

/// The `reload` object of the `agent_status` event a reload emits.
#[derive(Debug, Serialize)]
pub(super) struct Reload {
    /// `applied` or `refused`.
    pub result: &'static str,
    /// `SIGHUP` or `file`.
    pub trigger: &'static str,
    pub config_sha256: String,
    /// Live keys that changed (and took effect) with this reload.
    pub changed: Vec<String>,
    /// Keys that differ from what the agent started with and wait for a restart.
    pub needs_restart: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What an applied reload asks of the reader loop.
pub(super) struct Applied {
    pub changed: Vec<String>,
    pub needs_restart: Vec<String>,
}

impl Agent {
    /// Re-reads the config for `trigger`; `None` when a file event left its
    /// content as it was. A config that fails validation, or that the
    /// attached hooks cannot enforce, is refused and the running one stays.
    pub(super) async fn reload(&mut self, trigger: &'static str) -> Option<Reload> {
        let path = self.source.path.clone();
        let read = match &path {
            Some(p) => {
                let p = p.clone();
                tokio::task::spawn_blocking(move || read_capped(&p))
                    .await
                    .unwrap_or_else(|e| Err(anyhow::anyhow!("config read task failed: {e}")))
            }
            None => Ok(DEFAULT_CONFIG.to_string()),
        };
        let (text, sha) = match read {
            Ok(t) => {
                let sha = sha256_hex(&t);
                (Some(t), sha)
            }
            Err(e) => (None, format!("unreadable: {e:#}")),
        };
        if trigger == "file" && sha == self.source.seen_sha256 {
            return None;
        }
        self.source.seen_sha256 = sha.clone();
        let outcome = match text {
            Some(t) => self.apply(&t).await.map(|a| (a, t)),
            None => Err(anyhow::anyhow!(
                "{}",
                sha.trim_start_matches("unreadable: ")
            )),
        };
        let report = match outcome {
            Ok((applied, text)) => {
                self.source.applied = text;
                tracing::info!(
                    "configuration reloaded ({trigger}, sha256 {sha}): changed {:?}, needs restart {:?}",
                    applied.changed,
                    applied.needs_restart
                );
                Reload {
                    result: "applied",
                    trigger,
                    config_sha256: sha,
                    changed: applied.changed,
                    needs_restart: applied.needs_restart,
                    error: None,
                }
            }
            Err(e) => {
                let error = format!(
                    "{e:#}; the running configuration stays: fix the file and reload again"
                );
                tracing::error!("configuration reload refused ({trigger}): {error}");
                Reload {
                    result: "refused",
                    trigger,
                    config_sha256: if sha.starts_with("unreadable") {
                        String::new()
                    } else {
                        sha
                    },
                    changed: Vec::new(),
                    needs_restart: Vec::new(),
                    error: Some(error),
                }
            }
        };
        self.metrics.config_reloaded(report.result);
        Some(report)
    }

    /// Validates `text` and applies its live settings. Everything that can
    /// fail is tried before the secrets policy, the one part applied last.
    async fn apply(&mut self, text: &str) -> Result<Applied> {
        let new = Config::parse(text, &self.source.origin())?;
        check_hooks(&new, &self.probes)?;
        let changed: Vec<String> = config::changed_keys(&self.source.applied, text)?
            .into_iter()
            .filter(|k| !config::needs_restart(k))
            .collect();
        let needs_restart: Vec<String> = config::changed_keys(&self.source.started, text)?
            .into_iter()
            .filter(|k| config::needs_restart(k))
            .collect();
        let secrets_changed = changed.iter().any(|k| k.starts_with("secrets."));
        let prepared = match self.ingest.secrets.as_ref() {
            Some(m) if secrets_changed => {
                let catalog = setup::node_catalog(&new.secrets, new.catalog()?, m.fingerprinter())?;
                let discover = setup::discover_roots(&new.secrets);
                Some(m.prepare_policy(new.secrets.clone(), catalog, discover)?)
            }
            _ => None,
        };
        if changed.iter().any(|k| k == "sinks") {
            self.sinks.reconfigure(&new.sinks).await?;
        }
        if let (Some(m), Some(p)) = (self.ingest.secrets.as_mut(), prepared) {
            m.apply_policy(p);
        }
        if changed.iter().any(|k| k.starts_with("rate_limit.")) {
            let _ = self.rate_limit.send(new.rate_limit.clone());
        }
        self.metrics.health.set_stall_after(new.health.stall_after);
        self.cfg = new.keep_restart_only(&self.cfg);
        Ok(Applied {
            changed,
            needs_restart,
        })
    }
}
