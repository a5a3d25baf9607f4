//! A new `secrets:` policy applied to the running monitor (config reload):
//! kernel maps changed in place, process, taint, binding and inventory state kept.
//!
//! Order matters for `enforce: kill`: new allow entries go in first, deny
//! entries are then overwritten (a map update is atomic per key), and only
//! then are stale entries removed, so a kill rule present before and after
//! the reload never has a moment without its deny entry.

use std::{
    collections::{BTreeSet, HashSet},
    sync::Arc,
};

use anyhow::Result;
use proctor_common::InodeKey;

use super::{file_key, name_anchors, SecretMonitor};
use crate::secrets::{
    catalog::{Catalog, DiscoverRoots},
    kernel_watch::{name_key, KernelWatch},
    owner_files::OwnerFiles,
    policy::{Enforcement, SecretsConfig},
};

/// A policy checked against the node and ready to apply: nothing in the
/// kernel or the monitor has changed yet.
pub struct PreparedPolicy {
    policy: SecretsConfig,
    catalog: Catalog,
    discover: DiscoverRoots,
    owner_files: OwnerFiles,
    allows: HashSet<(u32, InodeKey)>,
}

/// The (rule, executable) pairs the kernel lets read the secrets of each
/// kill rule, and an error for each owner that is no file.
fn kill_allows(
    policy: &SecretsConfig,
    files: &OwnerFiles,
) -> (HashSet<(u32, InodeKey)>, Vec<String>) {
    let mut out = HashSet::new();
    let mut missing = Vec::new();
    for (i, rule) in policy.rules.iter().enumerate() {
        if !rule.enforce.contains(&Enforcement::Kill) {
            continue;
        }
        for glob in rule.owners.iter().filter_map(|o| o.exe_path.as_ref()) {
            match files.id(&glob.pattern) {
                Some(id) => {
                    out.insert((i as u32, file_key(id)));
                }
                None => missing.push(format!(
                    "secrets.rules[{i}] enforces kill for owner {}: no regular file there; \
                     a kill rule's owners must exist when the policy is applied",
                    glob.pattern
                )),
            }
        }
    }
    (out, missing)
}

/// The kernel name filter's contents for a catalog: names with their
/// anchoring flag, and the anchoring directory names.
fn name_sets(catalog: &Catalog) -> (Vec<(String, bool)>, BTreeSet<String>) {
    let anchors = name_anchors(catalog);
    let mut names = Vec::new();
    let mut parents = BTreeSet::new();
    for name in catalog.basenames() {
        if name_key(&name).is_none() {
            continue;
        }
        let anchored = match anchors.get(&name) {
            Some(Some(dirs)) => {
                parents.extend(dirs.iter().filter(|d| name_key(d).is_some()).cloned());
                true
            }
            _ => false,
        };
        names.push((name, anchored));
    }
    (names, parents)
}

impl<K: KernelWatch> SecretMonitor<K> {
    /// Checks `policy` (with its node catalog) against the node: every kill
    /// rule's owner must be a file. An error leaves the running policy as it is.
    pub fn prepare_policy(
        &self,
        policy: SecretsConfig,
        catalog: Catalog,
        discover: DiscoverRoots,
    ) -> Result<PreparedPolicy> {
        let owner_files = OwnerFiles::resolve(policy.literal_exe_paths());
        let (allows, missing) = kill_allows(&policy, &owner_files);
        if !missing.is_empty() {
            anyhow::bail!("{}", missing.join("; "));
        }
        Ok(PreparedPolicy {
            policy,
            catalog,
            discover,
            owner_files,
            allows,
        })
    }

    /// Makes `p` the running policy. Map errors are counted (`map_errors`)
    /// and logged, as everywhere else in the monitor.
    pub fn apply_policy(&mut self, p: PreparedPolicy) {
        let PreparedPolicy {
            policy,
            catalog,
            discover,
            owner_files,
            allows,
        } = p;
        // An old owner gone since is simply not in the kernel any more.
        let (old_allows, _) = kill_allows(&self.policy, &self.owner_files);
        for &(rule, exe) in allows.difference(&old_allows) {
            if let Err(e) = self.kernel.allow_reader(rule, exe) {
                self.map_error("allow a kill rule's owner", e);
            }
        }
        let (old_names, old_parents) = name_sets(&self.catalog);
        self.catalog = Arc::new(catalog);
        self.discover = discover;
        self.owner_files = owner_files;
        self.usage.reconfigure(
            policy.replay.mode,
            policy.replay.learning_window,
            policy.exfil.window,
            policy.exfil.metadata_endpoints.clone(),
        );
        let old_policy = std::mem::replace(&mut self.policy, policy);
        if let Err(e) = self.install_names() {
            self.map_error("add catalog names", e);
        }
        self.redo_deny_entries(&old_policy);
        self.forget_uncatalogued();
        // New catalog entries and search places: their files are watched
        // (and denied, for kill rules) from this scan on.
        self.scan();
        for &(rule, exe) in old_allows.difference(&allows) {
            self.kernel.disallow_reader(rule, exe);
        }
        let (names, parents) = name_sets(&self.catalog);
        let keep: HashSet<&str> = names.iter().map(|(n, _)| n.as_str()).collect();
        for (gone, _) in old_names.iter().filter(|(n, _)| !keep.contains(n.as_str())) {
            self.kernel.unwatch_name(gone);
        }
        for gone in old_parents.difference(&parents) {
            self.kernel.unwatch_parent_name(gone);
        }
    }

    /// Each watched file's deny entry as the new policy says: overwritten
    /// with its (possibly renumbered) kill rule, or removed.
    fn redo_deny_entries(&mut self, old: &SecretsConfig) {
        let watched: Vec<(InodeKey, Arc<str>, Arc<str>)> = self
            .by_inode
            .iter()
            .filter_map(|(k, slot)| {
                let w = self.watched.get(*slot as usize)?;
                Some((*k, w.catalog_id.clone(), w.path.clone()))
            })
            .collect();
        for (key, id, path) in watched {
            match self.policy.enforces(&id, &path, Enforcement::Kill) {
                Some(rule) => {
                    if let Err(e) = self.kernel.deny_inode(key, rule as u32) {
                        self.map_error("deny a secret to non-owners", e);
                    }
                }
                None if old.enforces(&id, &path, Enforcement::Kill).is_some() => {
                    self.kernel.undeny_inode(key);
                }
                None => {}
            }
        }
    }

    /// Watched files whose catalog entry the reload removed (kubelet volume
    /// files are named by the pod list, not the catalog, and stay).
    fn forget_uncatalogued(&mut self) {
        let gone: Vec<InodeKey> = self
            .by_inode
            .iter()
            .filter(|(_, slot)| {
                self.watched
                    .get(**slot as usize)
                    .is_some_and(|w| w.kube.is_none() && self.entry_of(&w.catalog_id).is_none())
            })
            .map(|(k, _)| *k)
            .collect();
        for key in gone {
            self.unwatch(key.dev, key.ino);
        }
    }

    fn map_error(&mut self, what: &str, e: anyhow::Error) {
        self.stats.map_errors += 1;
        tracing::warn!("secrets policy reload: cannot {what}: {e:#}");
    }
}
