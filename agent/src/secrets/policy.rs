//! Secret policy: which workloads own a secret, how bad a foreign read is,
//! which reads are expected, and catalog extensions.
//!
//! Validation happens while deserialising (globs compile inside `Deserialize`),
//! so every error carries the line and column of the offending value.

use std::{path::PathBuf, sync::Arc, time::Duration};

use globset::GlobMatcher;
use serde::{Deserialize, Deserializer};

use crate::{
    event::{Process, Severity},
    identity::host_path::PathNamespace,
    identity::packages::PackagedExe,
    secrets::catalog::{CatalogEntry, ClientName},
    secrets::owner_files::{is_literal, OwnerFiles},
};

/// A glob over absolute paths, compiled when the policy is read.
#[derive(Debug, Clone)]
pub struct PathGlob {
    pub pattern: String,
    glob: globset::Glob,
    matcher: GlobMatcher,
}

impl PathGlob {
    pub fn is_match(&self, path: &str) -> bool {
        self.matcher.is_match(path)
    }
}

impl<'de> Deserialize<'de> for PathGlob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let pattern = String::deserialize(d)?;
        let glob = globset::GlobBuilder::new(&pattern)
            .literal_separator(true)
            .build()
            .map_err(|e| serde::de::Error::custom(format!("invalid glob {pattern:?}: {e}")))?;
        Ok(PathGlob {
            matcher: glob.compile_matcher(),
            glob,
            pattern,
        })
    }
}

/// A lowercase hex SHA-256, checked when the policy is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sha256Hex(pub String);

impl<'de> Deserialize<'de> for Sha256Hex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let s = s.strip_prefix("sha256:").unwrap_or(&s).to_ascii_lowercase();
        if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(serde::de::Error::custom(format!(
                "{s:?} is not a SHA-256 (64 hex digits, optionally prefixed by \"sha256:\")"
            )));
        }
        Ok(Sha256Hex(s))
    }
}

/// Which processes a rule is about. Every field given must match; an empty
/// selector matches nothing (so a typo cannot make everyone an owner).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selector {
    /// The executable, always as the agent's (host) mount namespace sees
    /// it: a literal path matches only the very file at that path, by
    /// (dev, inode); a glob (`/opt/app/bin/*`) matches the exe's path only
    /// when that path leads to the exec'd file in the agent's namespace
    /// (`exe.path_namespace: host`), so a container or an `unshare -Urm`
    /// user presenting `/opt/app/bin/x` from its own mounts matches neither.
    pub exe_path: Option<PathGlob>,
    /// The kernel-observed SHA-256 of the executable.
    pub exe_sha256: Option<Sha256Hex>,
    pub uid: Option<u32>,
    pub comm: Option<String>,
    /// Glob over the cgroup path (`/system.slice/backup.service`).
    pub cgroup: Option<PathGlob>,
}

impl Selector {
    pub fn is_empty(&self) -> bool {
        self.exe_path.is_none()
            && self.exe_sha256.is_none()
            && self.uid.is_none()
            && self.comm.is_none()
            && self.cgroup.is_none()
    }

    pub fn matches(&self, p: &Process, files: &OwnerFiles) -> bool {
        if self.is_empty() {
            return false;
        }
        self.exe_path.as_ref().is_none_or(|g| {
            if is_literal(&g.pattern) {
                !p.exe.fileless && files.is(&g.pattern, (p.exe.dev, p.exe.inode))
            } else {
                p.exe.path_namespace == PathNamespace::Host.as_str() && g.is_match(&p.exe.path)
            }
        }) && self
            .exe_sha256
            .as_ref()
            .is_none_or(|h| p.exe.sha256.as_deref() == Some(h.0.as_str()))
            && self.uid.is_none_or(|u| u == p.uid)
            && self.comm.as_ref().is_none_or(|c| *c == p.comm)
            && self.cgroup.as_ref().is_none_or(|g| {
                p.cgroup
                    .path
                    .as_deref()
                    .is_some_and(|path| g.is_match(path))
            })
    }
}

/// Names secrets in a rule: a catalog id, or a glob over the secret's path.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    /// Catalog entry id (`aws-cli-credentials`).
    pub id: Option<String>,
    pub path: Option<PathGlob>,
}

impl SecretRef {
    pub fn matches(&self, catalog_id: &str, path: &str) -> bool {
        (self.id.is_some() || self.path.is_some())
            && self.id.as_deref().is_none_or(|i| i == catalog_id)
            && self.path.as_ref().is_none_or(|g| g.is_match(path))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretRule {
    pub secret: SecretRef,
    /// Workloads allowed to read it: their reads are `info`.
    #[serde(default)]
    pub owners: Vec<Selector>,
    /// Programs whose job it is to read it, added to the catalog entry's
    /// `expected_clients`: file names of packaged executables, recognised
    /// only when the exec'd file is the installed package's, unmodified.
    #[serde(default)]
    pub expected_clients: Vec<ClientName>,
    /// Severity of a read by anyone else (default: the catalog's).
    pub severity: Option<Severity>,
    /// Where a process that read this secret may connect
    /// (`CIDR` or `CIDR:port`, IPv6 as `[CIDR]:port`).
    #[serde(default)]
    pub allowed_destinations: Vec<Destination>,
    /// Opt-in enforcement for this secret.
    #[serde(default)]
    pub enforce: Vec<Enforcement>,
    /// Longest a content may go unrotated: older raises `secret-stale`,
    /// again every `max_age` until the content changes.
    #[serde(default, deserialize_with = "crate::duration::deserialize_opt")]
    pub max_age: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Enforcement {
    /// The kernel sends SIGKILL to a reader that is not an owner, before its
    /// open returns. Owners must be given as literal `exe_path`s.
    Kill,
    /// After secret-exfil, the process (and its children) may not connect anywhere.
    BlockEgress,
}

/// A network destination pattern: a CIDR and optionally a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub net: ipnet::IpNet,
    pub port: Option<u16>,
}

impl Destination {
    pub fn contains(&self, ip: std::net::IpAddr, port: u16) -> bool {
        self.net.contains(&ip) && self.port.is_none_or(|p| p == port)
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = |why: &str| {
            format!("invalid destination {s:?}: {why} (write e.g. \"10.0.0.0/8\", \"203.0.113.7:443\" or \"[2001:db8::/32]:443\")")
        };
        let (addr, port) = if let Some(rest) = s.strip_prefix('[') {
            let (a, p) = rest.split_once(']').ok_or_else(|| bad("missing ']'"))?;
            let port = match p.strip_prefix(':') {
                Some(p) => Some(p.parse::<u16>().map_err(|_| bad("bad port"))?),
                None if p.is_empty() => None,
                None => return Err(bad("text after ']'")),
            };
            (a, port)
        } else if s.matches(':').count() == 1 {
            let (a, p) = s.split_once(':').unwrap();
            (a, Some(p.parse::<u16>().map_err(|_| bad("bad port"))?))
        } else {
            (s, None)
        };
        let net = match addr.parse::<ipnet::IpNet>() {
            Ok(n) => n,
            Err(_) => ipnet::IpNet::from(
                addr.parse::<std::net::IpAddr>()
                    .map_err(|_| bad("not an address or CIDR"))?,
            ),
        };
        Ok(Destination { net, port })
    }
}

impl<'de> Deserialize<'de> for Destination {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Destination::parse(&s).map_err(serde::de::Error::custom)
    }
}

fn destinations(list: &[&str]) -> Vec<Destination> {
    list.iter()
        .map(|s| Destination::parse(s).expect("built-in destination"))
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplayMode {
    /// Bind each secret to the identities that use it first.
    Learn,
    /// Bind each secret to the owners its rules declare (no rule: no binding).
    Policy,
    Off,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReplayConfig {
    pub mode: ReplayMode,
    /// In learn mode, identities using a secret within this long after its
    /// first use are bound too (0: only the first identity).
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub learning_window: Duration,
}

impl Default for ReplayConfig {
    fn default() -> Self {
        Self {
            mode: ReplayMode::Learn,
            learning_window: Duration::ZERO,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExfilConfig {
    pub enabled: bool,
    /// How long after a secret read a connection counts against it.
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub window: Duration,
    /// Allowed destinations for secrets whose rules declare none (shared
    /// by every read's taint).
    pub default_allowed: Arc<[Destination]>,
    /// Cloud instance-metadata endpoints: never allowed unless declared, and
    /// named as such in findings.
    pub metadata_endpoints: Vec<Destination>,
}

impl Default for ExfilConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            window: Duration::from_secs(600),
            default_allowed: destinations(&[
                "127.0.0.0/8",
                "::1/128",
                "10.0.0.0/8",
                "172.16.0.0/12",
                "192.168.0.0/16",
                "fc00::/7",
            ])
            .into(),
            metadata_endpoints: destinations(&[
                "169.254.169.254/32",
                "169.254.170.2/32",
                "fd00:ec2::254/128",
            ]),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exception {
    pub secret: SecretRef,
    pub reader: Selector,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SearchConfig {
    /// Distinct secrets one process may open within `window` before
    /// `secret-search` fires.
    pub distinct_secrets: usize,
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub window: Duration,
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self {
            distinct_secrets: 5,
            window: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecretsConfig {
    pub enabled: bool,
    /// Entries added to the built-in catalog; one with a built-in id replaces it.
    pub catalog: Vec<CatalogEntry>,
    /// Built-in catalog ids to leave out.
    pub disable: Vec<String>,
    /// Directories searched for `.env`-style files at start-up, besides homes.
    pub search_dirs: Vec<PathBuf>,
    /// Home directories `~/` stands for besides /root, /home/* and the homes
    /// in /etc/passwd (e.g. users from LDAP, or a CI runner's workspace).
    pub extra_homes: Vec<PathBuf>,
    /// How often the file system is searched again for new secret files that
    /// no kernel filter can name (glob-only catalog patterns).
    #[serde(deserialize_with = "crate::duration::deserialize")]
    pub rescan_interval: Duration,
    /// Look for static credentials in every new process's environment.
    pub scan_environment: bool,
    pub rules: Vec<SecretRule>,
    pub exceptions: Vec<Exception>,
    pub search: SearchConfig,
    pub replay: ReplayConfig,
    pub exfil: ExfilConfig,
    /// Decoy credential files proctor plants; any read of one is `secret-decoy`.
    pub decoys: Vec<crate::secrets::decoys::DecoySpec>,
    /// Built on first use from `rules`, which never change after loading.
    #[serde(skip)]
    rule_index: std::sync::OnceLock<RuleIndex>,
}

/// Which rules can be about a path: one `GlobSet` match instead of one glob
/// per rule, for every secret read (a policy may name hundreds of files).
#[derive(Debug, Clone)]
struct RuleIndex {
    paths: globset::GlobSet,
    /// Glob `i` of `paths` is the path of rule `path_rule[i]`.
    path_rule: Vec<usize>,
    /// Rules without a path (by catalog id): always candidates.
    others: Vec<usize>,
}

impl RuleIndex {
    fn build(rules: &[SecretRule]) -> RuleIndex {
        let mut set = globset::GlobSetBuilder::new();
        let mut path_rule = Vec::new();
        let mut others = Vec::new();
        for (i, r) in rules.iter().enumerate() {
            match &r.secret.path {
                Some(g) => {
                    set.add(g.glob.clone());
                    path_rule.push(i);
                }
                None => others.push(i),
            }
        }
        match set.build() {
            Ok(paths) => RuleIndex {
                paths,
                path_rule,
                others,
            },
            // Too large for one automaton: every rule stays a candidate.
            Err(_) => RuleIndex {
                paths: globset::GlobSet::empty(),
                path_rule: Vec::new(),
                others: (0..rules.len()).collect(),
            },
        }
    }

    /// Indices of the rules that may match `path`, in rule order.
    fn candidates(&self, path: &str) -> Vec<usize> {
        // Without path rules (the default policy has no rules at all) the
        // glob set is not asked: it prepares the path as a candidate first
        // (file name, extension, allocations), ~450 instructions a call and
        // three calls per secret read.
        if self.path_rule.is_empty() {
            return self.others.clone();
        }
        let mut v: Vec<usize> = self
            .paths
            .matches(path)
            .into_iter()
            .map(|g| self.path_rule[g])
            .chain(self.others.iter().copied())
            .collect();
        v.sort_unstable();
        v
    }
}

impl Default for SecretsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            catalog: Vec::new(),
            disable: Vec::new(),
            search_dirs: ["/srv", "/opt", "/app", "/var/www"]
                .iter()
                .map(PathBuf::from)
                .collect(),
            extra_homes: Vec::new(),
            rescan_interval: Duration::from_secs(300),
            scan_environment: true,
            rules: Vec::new(),
            exceptions: Vec::new(),
            search: SearchConfig::default(),
            replay: ReplayConfig::default(),
            exfil: ExfilConfig::default(),
            decoys: Vec::new(),
            rule_index: std::sync::OnceLock::new(),
        }
    }
}

/// What policy says about one read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// An exception covers it: no finding.
    Expected,
    /// The reader is a declared owner.
    Owner,
    /// The reader is an expected client (a packaged program whose job is to
    /// read this secret, proven by the exec'd file): `info`, never bound.
    ExpectedClient,
    /// Anyone else, with the severity to report.
    Foreign(Severity),
}

impl SecretsConfig {
    /// Rules that are inconsistent: kill rules need owners the kernel can
    /// recognise by executable inode.
    pub fn validate(&self) -> Result<(), String> {
        crate::secrets::decoys::validate(&self.decoys)?;
        for (i, r) in self.rules.iter().enumerate() {
            if r.max_age.is_some_and(|a| a < Duration::from_secs(1)) {
                return Err(format!(
                    "secrets.rules[{i}].max_age must be at least 1s (rotation age is judged in seconds); write e.g. \"90d\""
                ));
            }
            if !r.enforce.contains(&Enforcement::Kill) {
                continue;
            }
            for o in &r.owners {
                let literal = o.exe_path.as_ref().is_some_and(|g| is_literal(&g.pattern));
                if !literal
                    || o.exe_sha256.is_some()
                    || o.uid.is_some()
                    || o.comm.is_some()
                    || o.cgroup.is_some()
                {
                    return Err(format!(
                        "secrets.rules[{i}] enforces \"kill\": its owners must each be a literal exe_path only (the kernel allows them by executable inode)"
                    ));
                }
            }
        }
        Ok(())
    }

    /// Whether any rule sets a `max_age` (else no content age is worth reading).
    pub fn any_max_age(&self) -> bool {
        self.rules.iter().any(|r| r.max_age.is_some())
    }

    /// The shortest `max_age` of the rules about this secret, if any sets one.
    pub fn max_age(&self, catalog_id: &str, path: &str) -> Option<Duration> {
        self.rules_for(catalog_id, path)
            .filter_map(|r| r.max_age)
            .min()
    }

    /// Every literal `exe_path` of rule owners and exception readers: the
    /// files [`OwnerFiles`] follows.
    pub fn literal_exe_paths(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .rules
            .iter()
            .flat_map(|r| r.owners.iter())
            .chain(self.exceptions.iter().map(|e| &e.reader))
            .filter_map(|s| s.exe_path.as_ref())
            .map(|g| g.pattern.clone())
            .filter(|p| is_literal(p))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Whether a rule about this secret asks for `e`.
    pub fn enforces(&self, catalog_id: &str, path: &str, e: Enforcement) -> Option<usize> {
        self.indexed_rules_for(catalog_id, path)
            .find(|(_, r)| r.enforce.contains(&e))
            .map(|(i, _)| i)
    }

    /// The rules that are about this secret.
    pub fn rules_for<'a>(
        &'a self,
        catalog_id: &'a str,
        path: &'a str,
    ) -> impl Iterator<Item = &'a SecretRule> {
        self.indexed_rules_for(catalog_id, path).map(|(_, r)| r)
    }

    /// The rules about this secret with their index in `rules`, in order.
    fn indexed_rules_for<'a>(
        &'a self,
        catalog_id: &'a str,
        path: &'a str,
    ) -> impl Iterator<Item = (usize, &'a SecretRule)> {
        let index = self
            .rule_index
            .get_or_init(|| RuleIndex::build(&self.rules));
        index
            .candidates(path)
            .into_iter()
            .map(|i| (i, &self.rules[i]))
            .filter(move |(_, r)| r.secret.matches(catalog_id, path))
    }

    /// The positions of the rules about this secret, in order: looked up
    /// once per read and handed to [`Self::judge`],
    /// [`Self::allowed_destinations`] and [`Self::owners_declared`] (each
    /// asked the glob set for them, three matches of every read's path).
    pub fn rule_ids(&self, catalog_id: &str, path: &str) -> Vec<usize> {
        self.indexed_rules_for(catalog_id, path)
            .map(|(i, _)| i)
            .collect()
    }

    fn rules_at<'a>(&'a self, ids: &'a [usize]) -> impl Iterator<Item = &'a SecretRule> {
        ids.iter().filter_map(|&i| self.rules.get(i))
    }

    /// Whether the rules `ids` (of [`Self::rule_ids`]) name owners.
    pub fn owners_declared(&self, ids: &[usize]) -> bool {
        self.rules_at(ids).any(|r| !r.owners.is_empty())
    }

    /// Where a process that read a secret may connect: what its rules
    /// `ids` (of [`Self::rule_ids`]) declare, else the defaults.
    pub fn allowed_destinations(&self, ids: &[usize]) -> (Arc<[Destination]>, bool) {
        let declared: Vec<Destination> = self
            .rules_at(ids)
            .flat_map(|r| r.allowed_destinations.iter().cloned())
            .collect();
        if declared.is_empty() {
            (self.exfil.default_allowed.clone(), false)
        } else {
            (declared.into(), true)
        }
    }

    /// Judges a read of the secret `entry` at `path` by `reader`, which
    /// runs the packaged program `client` when one was proven; `files` are
    /// the policy's literal executables as they are now.
    pub fn judge(
        &self,
        entry: &CatalogEntry,
        path: &str,
        rule_ids: &[usize],
        reader: &Process,
        client: Option<&PackagedExe>,
        files: &OwnerFiles,
    ) -> Verdict {
        let catalog_id = entry.id.as_str();
        if self
            .exceptions
            .iter()
            .any(|e| e.secret.matches(catalog_id, path) && e.reader.matches(reader, files))
        {
            return Verdict::Expected;
        }
        let rules: Vec<&SecretRule> = self.rules_at(rule_ids).collect();
        if rules
            .iter()
            .any(|r| r.owners.iter().any(|o| o.matches(reader, files)))
        {
            return Verdict::Owner;
        }
        if let Some(name) = client.map(PackagedExe::name) {
            let expected = |c: &ClientName| c.as_str() == name;
            if entry.expected_clients.iter().any(expected)
                || rules
                    .iter()
                    .any(|r| r.expected_clients.iter().any(expected))
            {
                return Verdict::ExpectedClient;
            }
        }
        let severity = rules
            .iter()
            .filter_map(|r| r.severity)
            .max()
            .unwrap_or(entry.severity);
        Verdict::Foreign(severity)
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn literal_exe_paths_of_owners_and_exceptions_without_globs() {
        let p: SecretsConfig = serde_yaml_ng::from_str(
            "rules:\n  - secret: {id: netrc}\n    owners: [{exe_path: /usr/bin/a}, {exe_path: /opt/*/bin/x}]\n\
             exceptions:\n  - secret: {id: pgpass}\n    reader: {exe_path: /usr/bin/a}\n  \
             - secret: {id: pgpass}\n    reader: {exe_path: /usr/bin/b}\n",
        )
        .unwrap();
        assert_eq!(p.literal_exe_paths(), vec!["/usr/bin/a", "/usr/bin/b"]);
    }
    use super::*;

    #[test]
    fn rules_about_a_secret_come_in_order_from_the_index() {
        let mut yaml = String::from("secrets:\n  rules:\n");
        // Hundreds of file rules, as a large policy has, around the ones
        // that matter here.
        for i in 0..300 {
            yaml.push_str(&format!(
                "    - secret: {{path: /srv/app{i}/.env}}\n      severity: low\n"
            ));
        }
        for rule in [
            "{id: dotenv}\n      allowed_destinations: [\"10.0.0.0/8:443\"]",
            "{path: \"/srv/app7/*\"}\n      severity: high",
            "{id: netrc, path: /srv/app7/.env}\n      enforce: [block-egress]",
            "{path: \"/srv/*/.env\"}\n      enforce: [block-egress]",
        ] {
            yaml.push_str(&format!("    - secret: {rule}\n"));
        }
        let cfg = crate::config::Config::parse(&yaml, "test").unwrap().secrets;
        let sev: Vec<Option<Severity>> = cfg
            .rules_for("dotenv", "/srv/app7/.env")
            .map(|r| r.severity)
            .collect();
        // app7's own rule, the id rule, the app7 glob, the /srv/*/.env glob;
        // not the netrc rule (another id) nor the other 299 files.
        assert_eq!(sev, [Some(Severity::Low), None, Some(Severity::High), None]);
        assert_eq!(
            cfg.enforces("dotenv", "/srv/app7/.env", Enforcement::BlockEgress),
            Some(303)
        );
        assert_eq!(
            cfg.enforces("netrc", "/srv/app7/.env", Enforcement::BlockEgress),
            Some(302)
        );
        assert_eq!(
            cfg.enforces("dotenv", "/etc/.env", Enforcement::BlockEgress),
            None
        );
        assert_eq!(cfg.rules_for("dotenv", "/etc/.env").count(), 1);
        // `*` does not cross a `/`.
        assert_eq!(cfg.rules_for("x", "/srv/app7/sub/.env").count(), 0);
    }

    #[test]
    fn only_a_proven_packaged_program_named_by_the_entry_or_a_rule_is_an_expected_client() {
        let yaml = "secrets:\n  rules:\n    - secret: {id: pgpass}\n      expected_clients: [pgbackrest]\n";
        let cfg = crate::config::Config::parse(yaml, "test").unwrap().secrets;
        let entries = crate::secrets::catalog::builtin_entries();
        let entry = |id: &str| entries.iter().find(|e| e.id == id).unwrap().clone();
        let reader = crate::testdata::process();
        let files = OwnerFiles::default();
        let judge = |entry: &CatalogEntry, path: &str, client: Option<&PackagedExe>| {
            let ids = cfg.rule_ids(&entry.id, path);
            cfg.judge(entry, path, &ids, &reader, client, &files)
        };
        let client = |pkg: &str, path: &str| PackagedExe {
            package: pkg.into(),
            path: path.into(),
            layer: None,
        };
        let shadow = entry("shadow");
        let passwd = client("passwd", "/usr/bin/passwd");
        assert_eq!(
            judge(&shadow, "/etc/shadow", Some(&passwd)),
            Verdict::ExpectedClient
        );
        // Unproven (no package verdict), or another entry's client: foreign.
        assert_eq!(
            judge(&shadow, "/etc/shadow", None),
            Verdict::Foreign(Severity::Critical)
        );
        let keygen = client("openssh-client", "/usr/bin/ssh-keygen");
        assert_eq!(
            judge(&shadow, "/etc/shadow", Some(&keygen)),
            Verdict::Foreign(Severity::Critical)
        );
        // A rule adds to the catalog's list.
        let pgpass = entry("pgpass");
        let pgb = client("pgbackrest", "/usr/bin/pgbackrest");
        assert_eq!(
            judge(&pgpass, "/root/.pgpass", Some(&pgb)),
            Verdict::ExpectedClient
        );
        assert_eq!(
            judge(&shadow, "/etc/shadow", Some(&pgb)),
            Verdict::Foreign(Severity::Critical)
        );
    }

    #[test]
    fn an_expected_client_given_as_a_path_is_refused_with_its_line() {
        let yaml = "secrets:\n  rules:\n    - secret: {id: pgpass}\n      expected_clients: [/usr/bin/psql]\n";
        let e = format!(
            "{:#}",
            crate::config::Config::parse(yaml, "test").unwrap_err()
        );
        assert!(
            e.contains("\"/usr/bin/psql\"") && e.contains("not an executable's file name"),
            "{e}"
        );
        assert!(e.contains("line 4"), "{e}");
    }

    fn owner_rule(owner: &str) -> SecretsConfig {
        let yaml =
            format!("secrets:\n  rules:\n    - secret: {{id: pgpass}}\n      owners: [{owner}]\n");
        crate::config::Config::parse(&yaml, "test").unwrap().secrets
    }

    #[test]
    fn an_exe_path_glob_owns_only_a_path_that_is_true_in_the_host_namespace() {
        let cfg = owner_rule("{exe_path: \"/opt/app/bin/*\"}");
        let entries = crate::secrets::catalog::builtin_entries();
        let pgpass = entries.iter().find(|e| e.id == "pgpass").unwrap();
        let files = OwnerFiles::default();
        let mut reader = crate::testdata::process();
        reader.exe.path = "/opt/app/bin/worker".into();
        let ids = cfg.rule_ids("pgpass", "/root/.pgpass");
        let judge = |p: &Process| cfg.judge(pgpass, "/root/.pgpass", &ids, p, None, &files);
        reader.exe.path_namespace = "host";
        assert_eq!(judge(&reader), Verdict::Owner, "{:?}", reader.exe);
        // The same path spelled by another mount namespace, a check not yet
        // done, and a host-true path the glob does not name: not owners.
        for (ns, path) in [
            ("process", "/opt/app/bin/worker"),
            ("pending", "/opt/app/bin/worker"),
            ("host", "/opt/other/bin/worker"),
        ] {
            reader.exe.path_namespace = ns;
            reader.exe.path = path.into();
            assert!(
                matches!(judge(&reader), Verdict::Foreign(_)),
                "{:?}",
                reader.exe
            );
        }
    }

    #[test]
    fn a_literal_exe_path_owns_by_inode_whatever_namespace_spells_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("owner");
        std::fs::write(&bin, b"x").unwrap();
        let literal = bin.display().to_string();
        let cfg = owner_rule(&format!("{{exe_path: {literal}}}"));
        let files = OwnerFiles::resolve(cfg.literal_exe_paths());
        let (dev, ino) = files.id(&literal).unwrap();
        let mut reader = crate::testdata::process();
        reader.exe.path = "/somewhere/else/in/a/container".into();
        reader.exe.path_namespace = "process";
        reader.exe.dev = dev;
        reader.exe.inode = ino;
        let yes = cfg.rules[0].owners[0].matches(&reader, &files);
        reader.exe.path = literal.clone();
        reader.exe.path_namespace = "host";
        reader.exe.inode = ino + 1;
        let other_file = cfg.rules[0].owners[0].matches(&reader, &files);
        assert!(yes && !other_file, "{:?}", reader.exe);
    }

    #[test]
    fn destinations_parse_and_match() {
        let d = Destination::parse("10.0.0.0/8:443").unwrap();
        assert!(d.contains("10.1.2.3".parse().unwrap(), 443));
        assert!(!d.contains("10.1.2.3".parse().unwrap(), 80));
        let d = Destination::parse("[2001:db8::/32]:443").unwrap();
        assert!(d.contains("2001:db8::1".parse().unwrap(), 443));
        let d = Destination::parse("203.0.113.7").unwrap();
        assert!(d.contains("203.0.113.7".parse().unwrap(), 1));
        assert!(Destination::parse("10.0.0.0/33").is_err());
        assert!(Destination::parse("nope:80").unwrap_err().contains("nope"));
    }
}
