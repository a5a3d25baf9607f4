//! The agent's configuration file (YAML), its embedded default and validation.
//!
//! Unknown keys are errors, not warnings: a misspelt key that silently does
//! nothing is how monitoring gaps are born.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::{
    secrets::catalog::Catalog, secrets::fingerprint::Fingerprinter, secrets::policy::SecretsConfig,
};

pub const DEFAULT_CONFIG: &str = include_str!("default-config.yaml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub node_name: String,
    pub kernel: KernelConfig,
    pub hash: HashConfig,
    pub health: HealthConfig,
    pub process_table: ProcessTableConfig,
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub status_interval: Duration,
    pub sinks: Vec<SinkConfig>,
    /// How long sinks keep delivering after SIGTERM before what they hold
    /// goes to their spools.
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub shutdown_grace: Duration,
    /// Per-identity rate limiting with summary events (off by default).
    pub rate_limit: crate::pipeline::rate_limit::RateLimitConfig,
    /// Where the agent keeps its state (inventory, fingerprint key).
    pub state_dir: PathBuf,
    pub fingerprint: FingerprintConfig,
    pub secrets: SecretsConfig,
    pub metrics: crate::export::metrics::MetricsConfig,
    /// The gRPC API on a Unix socket (`proctor attest`, `proctor events`).
    pub api: crate::api::ApiConfig,
    /// Pod metadata (namespace, name, service account, labels, images).
    pub kubernetes: crate::identity::pods::KubernetesConfig,
    /// Package databases (dpkg, rpm) that vouch for expected secret clients.
    pub packages: crate::identity::packages::PackagesConfig,
}

/// The key of secret fingerprints. Give every node of a cluster the same key
/// so that one secret has one fingerprint everywhere.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FingerprintConfig {
    /// A file holding the key (64 hex digits); created with a random key when
    /// missing. Default: `<state_dir>/fingerprint.key`.
    pub key_file: Option<PathBuf>,
    /// The key itself, 64 hex digits (e.g. from a Kubernetes Secret).
    pub key: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KernelConfig {
    pub ring_buffer_bytes: u32,
    /// Pending bytes at which the kernel wakes the reader at once (each
    /// time the backlog crosses a multiple of it; 0: for every record).
    /// Unset: a 32nd of `ring_buffer_bytes` (see [`KernelConfig::wakeup_bytes`]).
    pub wakeup_bytes: Option<u32>,
    /// How often the reader drains the ring buffer without being woken.
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub poll_interval: Duration,
    /// Which hooks see file access (see [`FileHooks`]).
    pub file_hooks: FileHooks,
    /// Accesses of one file by one process image within this window after
    /// the reported one are counted in the kernel, not reported (0: off).
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub repeat_window: Duration,
    /// The exec, fork, exit and page-cache programs with direct BTF loads
    /// where the verifier takes them (default); false loads their
    /// helper-read kind everywhere, as on a kernel that refuses the direct
    /// one (a way around a kernel whose BTF misleads, and how the tests run
    /// that kind on a kernel that would not need it).
    pub direct_loads: bool,
}

pub use crate::kernel::probes::FileHooks;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HashConfig {
    pub max_file_bytes: u64,
    pub cache_entries: usize,
    pub workers: usize,
    /// How long an event may wait for its process's hashes before it goes
    /// out with `hash_status: "pending"` (the hash follows in `process_hash`).
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub emit_wait: Duration,
}

/// What `/healthz` calls a stalled pipeline.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// The ring buffer not drained, or the emitter not advancing, for this
    /// long makes `/healthz` fail.
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub stall_after: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            stall_after: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProcessTableConfig {
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub exit_grace: Duration,
    pub max_exited: usize,
}

pub use crate::export::sinks::config::SinkConfig;

impl Default for Config {
    fn default() -> Self {
        Self {
            node_name: String::new(),
            kernel: KernelConfig::default(),
            hash: HashConfig::default(),
            health: HealthConfig::default(),
            process_table: ProcessTableConfig::default(),
            status_interval: Duration::from_secs(30),
            sinks: vec![SinkConfig::stdout()],
            shutdown_grace: Duration::from_secs(5),
            rate_limit: crate::pipeline::rate_limit::RateLimitConfig::default(),
            state_dir: PathBuf::from("/var/lib/proctor"),
            fingerprint: FingerprintConfig::default(),
            secrets: SecretsConfig::default(),
            metrics: crate::export::metrics::MetricsConfig::default(),
            api: crate::api::ApiConfig::default(),
            kubernetes: crate::identity::pods::KubernetesConfig::default(),
            packages: crate::identity::packages::PackagesConfig::default(),
        }
    }
}

impl KernelConfig {
    /// The wakeup threshold in force. Unset, it scales with the ring: every
    /// wakeup costs the agent a round through its tasks (measured: 64 KiB
    /// woke it every ~13 execs of a storm, ~22% of its CPU per exec more
    /// than 256 KiB), and a 32nd of the ring still wakes it long before
    /// the ring can fill.
    pub fn wakeup_bytes(&self) -> u32 {
        self.wakeup_bytes.unwrap_or(self.ring_buffer_bytes / 32)
    }
}

impl Default for KernelConfig {
    fn default() -> Self {
        Self {
            ring_buffer_bytes: 8 << 20,
            wakeup_bytes: None,
            poll_interval: Duration::from_millis(50),
            file_hooks: FileHooks::Auto,
            repeat_window: Duration::from_secs(1),
            direct_loads: true,
        }
    }
}

impl Default for HashConfig {
    fn default() -> Self {
        Self {
            max_file_bytes: 256 << 20,
            cache_entries: 16384,
            workers: 2,
            emit_wait: Duration::from_millis(250),
        }
    }
}

impl Default for ProcessTableConfig {
    fn default() -> Self {
        Self {
            exit_grace: Duration::from_secs(30),
            max_exited: 2048,
        }
    }
}

/// A YAML error without the values it quotes: a token or key typed into the
/// wrong field would otherwise be repeated in the error, which reaches logs
/// and, on a live reload, the `agent_status` event. Field names, types and
/// the position stay, which is what fixing the file needs.
fn without_values(msg: &str) -> String {
    static QUOTED: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = QUOTED.get_or_init(|| {
        regex::Regex::new(
            r#"(invalid (?:type|value): string) "(?:[^"\\]|\\.)*"|unknown variant `[^`]*`"#,
        )
        .unwrap()
    });
    re.replace_all(msg, |c: &regex::Captures| match c.get(1) {
        Some(kind) => format!("{} (value not shown)", kind.as_str()),
        None => "unknown variant (value not shown)".to_string(),
    })
    .into_owned()
}

impl Config {
    /// Parses and validates YAML text; `origin` names the source in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let cfg: Config = if text.trim().is_empty() {
            Config::default()
        } else {
            serde_yaml_ng::from_str(text).map_err(|e| {
                let at = e
                    .location()
                    .map(|l| format!("{origin}:{}:{}", l.line(), l.column()))
                    .unwrap_or_else(|| origin.to_string());
                anyhow::anyhow!(
                    "invalid configuration at {at}: {}",
                    without_values(&e.to_string())
                )
            })?
        };
        cfg.validate()
            .with_context(|| format!("invalid configuration in {origin}"))?;
        Ok(cfg)
    }

    pub fn load(path: Option<&Path>) -> Result<Self> {
        match path {
            None => Self::parse(DEFAULT_CONFIG, "<embedded default config>"),
            Some(p) => {
                let text = std::fs::read_to_string(p).with_context(|| {
                    format!(
                        "cannot read config file {}; check the path, or omit --config to run \
                         on the embedded default",
                        p.display()
                    )
                })?;
                Self::parse(&text, &p.display().to_string())
            }
        }
    }

    fn validate(&self) -> Result<()> {
        let rb = self.kernel.ring_buffer_bytes;
        if rb < 4096 || !rb.is_power_of_two() {
            bail!("kernel.ring_buffer_bytes is {rb}; it must be a power of two of at least 4096");
        }
        if self.kernel.wakeup_bytes() > rb / 2 {
            bail!(
                "kernel.wakeup_bytes is {}; it must be at most half of kernel.ring_buffer_bytes ({rb})",
                self.kernel.wakeup_bytes()
            );
        }
        if self.kernel.poll_interval < Duration::from_millis(1)
            || self.kernel.poll_interval > Duration::from_secs(1)
        {
            bail!("kernel.poll_interval must be between 1ms and 1s");
        }
        if self.kernel.repeat_window > Duration::from_secs(60) {
            bail!(
                "kernel.repeat_window is {:?}; it must be at most 60s (0 reports every access), \
                 or a process re-reading a secret would go unreported for too long",
                self.kernel.repeat_window
            );
        }
        if self.hash.workers == 0 || self.hash.workers > 64 {
            bail!(
                "hash.workers is {}; it must be between 1 and 64",
                self.hash.workers
            );
        }
        if self.hash.cache_entries == 0 {
            bail!("hash.cache_entries must be at least 1");
        }
        if self.hash.emit_wait < Duration::from_millis(1)
            || self.hash.emit_wait > Duration::from_secs(5)
        {
            bail!(
                "hash.emit_wait is {:?}; it must be between 1ms and 5s (events wait this long \
                 for hashes, then go out with hash_status \"pending\")",
                self.hash.emit_wait
            );
        }
        let stall = self.health.stall_after;
        if stall < Duration::from_secs(1) || stall > Duration::from_secs(600) {
            bail!("health.stall_after is {stall:?}; it must be between 1s and 10m");
        }
        if stall <= self.hash.emit_wait + self.kernel.poll_interval {
            bail!(
                "health.stall_after ({stall:?}) must exceed hash.emit_wait plus \
                 kernel.poll_interval, or a healthy pipeline would look stalled; raise it"
            );
        }
        if self.status_interval < Duration::from_millis(100) {
            bail!("status_interval must be at least 100ms");
        }
        self.catalog()?;
        self.secrets.validate().map_err(anyhow::Error::msg)?;
        self.kubernetes.validate().map_err(anyhow::Error::msg)?;
        self.packages.validate().map_err(anyhow::Error::msg)?;
        if self.sinks.is_empty() {
            bail!("sinks is empty: events would go nowhere; add `- type: stdout`");
        }
        let names =
            crate::export::sinks::config::resolve_names(&self.sinks).map_err(anyhow::Error::msg)?;
        for (s, name) in self.sinks.iter().zip(&names) {
            s.validate(name).map_err(anyhow::Error::msg)?;
        }
        if self.shutdown_grace > Duration::from_secs(600) {
            bail!("shutdown_grace must be at most 10m");
        }
        self.rate_limit.validate().map_err(anyhow::Error::msg)?;
        Ok(())
    }

    /// The secret catalog: built-in, minus `secrets.disable`, plus `secrets.catalog`.
    pub fn catalog(&self) -> Result<Catalog> {
        let builtin = Catalog::builtin();
        for id in &self.secrets.disable {
            if builtin.entry(id).is_none() {
                bail!("secrets.disable names {id:?}, which is not a built-in catalog id (see docs/secret-catalog.md)");
            }
        }
        let kept = builtin
            .entries()
            .iter()
            .filter(|e| !self.secrets.disable.contains(&e.id))
            .cloned()
            .collect();
        Catalog::from_entries(kept)
            .and_then(|c| c.extend(self.secrets.catalog.clone()))
            .context("invalid secrets.catalog")
    }

    /// The fingerprint key: inline, from its file, or created in the state dir.
    pub fn fingerprinter(&self) -> Result<Fingerprinter> {
        if let Some(k) = &self.fingerprint.key {
            return Fingerprinter::from_hex(k).context("invalid fingerprint.key");
        }
        let path = self
            .fingerprint
            .key_file
            .clone()
            .unwrap_or_else(|| self.state_dir.join("fingerprint.key"));
        let key = Fingerprinter::load_or_create_key(&path)
            .with_context(|| format!("fingerprint key {}", path.display()))?;
        Ok(Fingerprinter::new(key))
    }

    /// The node name events carry: the configured one or the host name.
    pub fn node(&self) -> String {
        if !self.node_name.is_empty() {
            return self.node_name.clone();
        }
        // In a pod the host name is the pod's; the DaemonSet passes the node's.
        if let Some(n) = std::env::var("NODE_NAME").ok().filter(|n| !n.is_empty()) {
            return n;
        }
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into())
    }
}

/// Sections split one level down when a reload says what changed: their
/// keys differ in whether they can change live.
const SPLIT_SECTIONS: &[&str] = &["secrets", "rate_limit"];

/// What a running agent cannot change without a restart: probes, maps and
/// sockets are sized or bound once, and the fingerprint key names every
/// secret in the inventory. A reload reports them as `needs_restart`.
pub const RESTART_ONLY: &[&str] = &[
    "node_name",
    "kernel",
    "hash",
    "process_table",
    "state_dir",
    "fingerprint",
    "metrics",
    "api",
    "kubernetes",
    "shutdown_grace",
    "secrets.enabled",
    "rate_limit.summary_interval",
];

/// Whether `key` (as [`changed_keys`] names it) needs a restart to change.
pub fn needs_restart(key: &str) -> bool {
    RESTART_ONLY.contains(&key)
}

/// The keys whose values differ between two config texts (both already
/// valid): top-level keys, and the keys of [`SPLIT_SECTIONS`] as
/// `secrets.rules`. A key left out and one given as null are the same.
pub fn changed_keys(old: &str, new: &str) -> Result<Vec<String>> {
    let (a, b) = (top_level(old)?, top_level(new)?);
    let mut out = Vec::new();
    let null = serde_yaml_ng::Value::Null;
    for key in a
        .keys()
        .chain(b.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        let (va, vb) = (a.get(key).unwrap_or(&null), b.get(key).unwrap_or(&null));
        if va == vb {
            continue;
        }
        if !SPLIT_SECTIONS.contains(&key.as_str()) {
            out.push(key.clone());
            continue;
        }
        let (sa, sb) = (as_map(va), as_map(vb));
        for sub in sa
            .keys()
            .chain(sb.keys())
            .collect::<std::collections::BTreeSet<_>>()
        {
            if sa.get(sub).unwrap_or(&null) != sb.get(sub).unwrap_or(&null) {
                out.push(format!("{key}.{sub}"));
            }
        }
    }
    Ok(out)
}

type Section = std::collections::BTreeMap<String, serde_yaml_ng::Value>;

fn top_level(text: &str) -> Result<Section> {
    if text.trim().is_empty() {
        return Ok(Section::new());
    }
    let v: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(text).context("configuration is not YAML")?;
    Ok(as_map(&v))
}

fn as_map(v: &serde_yaml_ng::Value) -> Section {
    v.as_mapping()
        .map(|m| {
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.clone())))
                .collect()
        })
        .unwrap_or_default()
}

impl Config {
    /// `self` (a reloaded config) with the [`RESTART_ONLY`] settings the
    /// agent is actually running with, taken from `running`: what the agent
    /// reports and uses stays true until it restarts.
    pub fn keep_restart_only(mut self, running: &Config) -> Config {
        self.node_name = running.node_name.clone();
        self.kernel = running.kernel.clone();
        self.hash = running.hash.clone();
        self.process_table = running.process_table.clone();
        self.state_dir = running.state_dir.clone();
        self.fingerprint = running.fingerprint.clone();
        self.metrics = running.metrics.clone();
        self.api = running.api.clone();
        self.kubernetes = running.kubernetes.clone();
        self.shutdown_grace = running.shutdown_grace;
        self.secrets.enabled = running.secrets.enabled;
        self.rate_limit.summary_interval = running.rate_limit.summary_interval;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_in_the_wrong_field_is_not_repeated_in_the_error() {
        for text in [
            "rate_limit:\n  enabled: \"hunter2-SECRET-value\"\n",
            "rate_limit:\n  enabled: hunter2-SECRET-value\n",
            "sinks:\n  - type: hunter2-SECRET-value\n",
            "kernel:\n  ring_buffer_bytes: \"hunter2-SECRET\\\"-value\"\n",
        ] {
            let err = format!("{:#}", Config::parse(text, "cfg.yaml").unwrap_err());
            assert!(!err.contains("hunter2"), "{err}");
            assert!(!err.contains("SECRET"), "{err}");
            assert!(err.contains("cfg.yaml:2:"), "the position stays: {err}");
            assert!(err.contains("(value not shown)"), "{err}");
        }
    }

    #[test]
    fn embedded_default_parses_and_matches_code_defaults() {
        let cfg = Config::parse(DEFAULT_CONFIG, "default").unwrap();
        let code = Config::default();
        assert_eq!(cfg.kernel.ring_buffer_bytes, code.kernel.ring_buffer_bytes);
        assert_eq!(cfg.kernel.wakeup_bytes, code.kernel.wakeup_bytes);
        assert_eq!(cfg.kernel.poll_interval, code.kernel.poll_interval);
        assert_eq!(cfg.kernel.file_hooks, code.kernel.file_hooks);
        assert_eq!(cfg.kernel.repeat_window, code.kernel.repeat_window);
        assert_eq!(cfg.hash.max_file_bytes, code.hash.max_file_bytes);
        assert_eq!(cfg.hash.cache_entries, code.hash.cache_entries);
        assert_eq!(cfg.hash.workers, code.hash.workers);
        assert_eq!(cfg.hash.emit_wait, code.hash.emit_wait);
        assert_eq!(cfg.health.stall_after, code.health.stall_after);
        assert_eq!(cfg.process_table.exit_grace, code.process_table.exit_grace);
        assert_eq!(cfg.process_table.max_exited, code.process_table.max_exited);
        assert_eq!(cfg.status_interval, code.status_interval);
        assert_eq!(cfg.sinks, code.sinks);
        assert_eq!(cfg.shutdown_grace, code.shutdown_grace);
        assert_eq!(cfg.rate_limit, code.rate_limit);
        assert_eq!(cfg.state_dir, code.state_dir);
        assert_eq!(cfg.api, code.api);
        assert_eq!(cfg.kubernetes, code.kubernetes);
        assert_eq!(cfg.metrics.listen, code.metrics.listen);
        let (a, b) = (&cfg.secrets, &code.secrets);
        assert_eq!(a.enabled, b.enabled);
        assert_eq!(a.search_dirs, b.search_dirs);
        assert_eq!(a.rescan_interval, b.rescan_interval);
        assert_eq!(a.scan_environment, b.scan_environment);
        assert_eq!(a.search.distinct_secrets, b.search.distinct_secrets);
        assert_eq!(a.search.window, b.search.window);
    }

    #[test]
    fn file_hooks_and_repeat_window_are_validated() {
        let cfg = Config::parse(
            "kernel:\n  file_hooks: page-cache\n  repeat_window: 0s\n",
            "x",
        )
        .unwrap();
        assert_eq!(cfg.kernel.file_hooks, FileHooks::PageCache);
        assert_eq!(cfg.kernel.repeat_window, Duration::ZERO);
        let err = Config::parse("kernel:\n  file_hooks: fast\n", "x").unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("kernel.file_hooks: unknown variant") && msg.contains("`page-cache`"),
            "{msg}"
        );
        let err = Config::parse("kernel:\n  repeat_window: 2m\n", "x").unwrap_err();
        assert!(
            format!("{err:#}").contains("kernel.repeat_window"),
            "{err:#}"
        );
    }

    #[test]
    fn unknown_key_is_an_error_with_its_line() {
        let err = Config::parse("hash:\n  workers: 2\n  wrokers: 3\n", "x.yaml").unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("wrokers"), "{msg}");
        assert!(msg.contains("x.yaml:3"), "{msg}");
    }

    #[test]
    fn bad_values_are_named() {
        let err = Config::parse("kernel:\n  ring_buffer_bytes: 1000\n", "x").unwrap_err();
        assert!(format!("{err:#}").contains("power of two"));
        let err = Config::parse("status_interval: soon\n", "x").unwrap_err();
        assert!(format!("{err:#}").contains("invalid duration"));
        let err = Config::parse("sinks:\n  - type: carrier-pigeon\n", "x").unwrap_err();
        assert!(
            format!("{err:#}")
                .contains("unknown variant (value not shown), expected one of `stdout`"),
            "{err:#}"
        );
        let err = Config::parse(
            "sinks:\n  - type: hec\n    url: https://splunk:8088/services/collector/event\n",
            "x",
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("token"), "{err:#}");
        let err = Config::parse("sinks:\n  - type: stdout\n    format: yaml\n", "x").unwrap_err();
        assert!(
            format!("{err:#}")
                .contains("sinks[0].format: unknown variant (value not shown), expected"),
            "{err:#}"
        );
    }

    #[test]
    fn missing_file_says_what_to_do() {
        let err = Config::load(Some(Path::new("/nonexistent/proctor.yaml"))).unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("/nonexistent/proctor.yaml") && msg.contains("--config"),
            "{msg}"
        );
    }

    #[test]
    fn hash_emit_wait_and_stall_bound_are_validated() {
        assert!(Config::parse("hash:\n  emit_wait: 1ms\n", "x").is_ok());
        let zero = Config::parse("hash:\n  emit_wait: 0s\n", "x").unwrap_err();
        assert!(format!("{zero:#}").contains("hash.emit_wait"), "{zero:#}");
        let long = Config::parse("hash:\n  emit_wait: 6s\n", "x").unwrap_err();
        assert!(
            format!("{long:#}").contains("between 1ms and 5s"),
            "{long:#}"
        );
        let tight =
            Config::parse("hash:\n  emit_wait: 5s\nhealth:\n  stall_after: 5s\n", "x").unwrap_err();
        assert!(
            format!("{tight:#}").contains("health.stall_after"),
            "{tight:#}"
        );
        let typo = Config::parse("health:\n  stall_afer: 5s\n", "x").unwrap_err();
        assert!(format!("{typo:#}").contains("stall_afer"), "{typo:#}");
    }

    #[test]
    fn a_reload_names_the_keys_that_changed_and_those_that_need_a_restart() {
        let old =
            "kernel:\n  ring_buffer_bytes: 4096\nsecrets:\n  rules: []\n  scan_environment: true\n";
        let new = "kernel:\n  ring_buffer_bytes: 8192\nsecrets:\n  rules:\n    - secret: {id: netrc}\n  \
                   scan_environment: true\n  enabled: false\nsinks:\n  - type: stdout\nrate_limit: ~\n";
        let changed = changed_keys(old, new).unwrap();
        assert_eq!(
            changed,
            ["kernel", "secrets.enabled", "secrets.rules", "sinks"],
            "null is the same as absent, equal keys are not named"
        );
        let restart: Vec<_> = changed.iter().filter(|k| needs_restart(k)).collect();
        assert_eq!(restart, ["kernel", "secrets.enabled"]);
        assert!(changed_keys(old, old).unwrap().is_empty());
        assert_eq!(
            changed_keys("", "status_interval: 5s\n").unwrap(),
            ["status_interval"]
        );
        for key in RESTART_ONLY {
            let top = key.split('.').next().unwrap();
            assert!(
                top_level(DEFAULT_CONFIG).unwrap().contains_key(top),
                "{key} is no key of the default config"
            );
        }
    }

    #[test]
    fn the_wakeup_threshold_scales_with_the_ring_unless_set() {
        let default = Config::parse("", "a").unwrap();
        assert_eq!(default.kernel.wakeup_bytes(), 256 << 10);
        // A small ring with no threshold of its own is valid: the default
        // shrinks with it.
        let small = Config::parse("kernel:\n  ring_buffer_bytes: 65536\n", "b").unwrap();
        assert_eq!(small.kernel.wakeup_bytes(), 2048);
        let set = Config::parse("kernel:\n  wakeup_bytes: 0\n", "c").unwrap();
        assert_eq!(set.kernel.wakeup_bytes(), 0);
        let err = Config::parse(
            "kernel:\n  ring_buffer_bytes: 65536\n  wakeup_bytes: 65536\n",
            "d",
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("at most half"), "{err:#}");
    }

    #[test]
    fn a_reloaded_config_keeps_the_running_restart_only_settings() {
        let running = Config::parse(
            "kernel:\n  ring_buffer_bytes: 4096\n  wakeup_bytes: 1024\n",
            "a",
        )
        .unwrap();
        let new = Config::parse("status_interval: 2s\n", "b").unwrap();
        let applied = new.keep_restart_only(&running);
        assert_eq!(applied.kernel.ring_buffer_bytes, 4096);
        assert_eq!(applied.status_interval, Duration::from_secs(2));
    }
}
