//! The kernel's watch lists for secret files (open filter and enforcement
//! maps) behind one small interface, so the monitor decides and this writes.

#[cfg(test)]
use std::collections::{HashMap, HashSet};

use anyhow::{Context, Result};
use aya::maps::{Array, MapData};
use proctor_common::{
    name_prefilter_bit, name_prefix, read_prefilter_bit, AllowKey, InodeKey, QuarantineEntry,
    NAME_KEY_LEN, NAME_NEEDS_ANCHOR,
};

use std::{path::Path, sync::Arc};

use crate::{
    event::{Attestation, Process},
    identity::per_process::ProcessKey,
    kernel::{
        probes::{EnforcementMaps, OpenFilter},
        tmpfs_watch::TmpfsWatch,
    },
};

/// What the secret monitor asks of the kernel. [`KernelMaps`] writes the
/// real BPF maps; unit tests use `RecordedWatch` to see the decisions.
pub trait KernelWatch {
    /// Opens of files named `name` pass the filter; an `anchored` name only
    /// when its parent or grandparent is a name given to [`Self::watch_parent_name`].
    fn watch_name(&mut self, name: &str, anchored: bool) -> Result<()>;
    /// A directory name that anchors generic secret names (`.aws` for `config`).
    fn watch_parent_name(&mut self, name: &str) -> Result<()>;
    /// A name no catalog entry uses any more (a reload removed it).
    fn unwatch_name(&mut self, name: &str);
    /// An anchoring directory name no entry uses any more.
    fn unwatch_parent_name(&mut self, name: &str);
    /// Bit `n` set: some watched name is `n` bytes long.
    fn set_name_lengths(&mut self, bitmap: u64) -> Result<()>;
    /// Opens of this inode (the watched file at `path`) pass the filter
    /// and carry `slot`.
    fn watch_inode(&mut self, key: InodeKey, slot: u32, path: &str) -> Result<()>;
    /// Opens of new files in this directory pass the filter.
    fn watch_dir(&mut self, key: InodeKey) -> Result<()>;
    /// Forgets an inode (its watch and any deny entry): its secret is gone.
    fn unwatch_inode(&mut self, key: InodeKey);
    /// Readers of this inode are no longer stopped (no kill rule names it now).
    fn undeny_inode(&mut self, key: InodeKey);
    /// `exe` may read the secrets of kill rule `rule`.
    fn allow_reader(&mut self, rule: u32, exe: InodeKey) -> Result<()>;
    /// `exe` no longer may (the owner's file was replaced).
    fn disallow_reader(&mut self, rule: u32, exe: InodeKey);
    /// Readers of this inode other than rule `rule`'s owners are stopped.
    fn deny_inode(&mut self, key: InodeKey, rule: u32) -> Result<()>;
    /// The process `pid` started as `start` may connect nowhere
    /// (block-egress); the kernel quarantines its later children itself.
    fn quarantine(&mut self, pid: u32, start: QuarantineEntry) -> Result<()>;
    /// Lifts the quarantine of that process, never of a later holder of the pid.
    fn release(&mut self, pid: u32, start: QuarantineEntry);
}

/// How the kernel recognises the process `k` in its quarantine map: by the
/// start time of its group leader, which the kernel reads from the task.
/// `coarse` start times come from `/proc/<pid>/stat` (clock ticks) for
/// processes that predate the agent; the kernel compares those at tick precision.
pub fn quarantine_entry(k: ProcessKey, coarse: bool) -> QuarantineEntry {
    QuarantineEntry {
        start_boottime_ns: crate::clock::to_boot_ns(k.start_time_ns),
        granularity_ns: if coarse { crate::clock::tick_ns() } else { 1 },
    }
}

/// [`quarantine_entry`] of a process as the monitor sees it.
pub fn quarantine_entry_of(p: &Process) -> QuarantineEntry {
    quarantine_entry(ProcessKey::of(p), p.attestation == Attestation::ProcfsScan)
}

/// `name` as a zero-padded map key, if it fits.
pub fn name_key(name: &str) -> Option<[u8; NAME_KEY_LEN]> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= NAME_KEY_LEN {
        return None;
    }
    let mut key = [0u8; NAME_KEY_LEN];
    key[..bytes.len()].copy_from_slice(bytes);
    Some(key)
}

/// The real maps, taken from the loaded probes, and the fanotify marks
/// for secrets on tmpfs where the page-cache hooks watch file access.
pub struct KernelMaps {
    filter: OpenFilter,
    enforcement: EnforcementMaps,
    tmpfs: Option<Arc<TmpfsWatch>>,
}

impl KernelMaps {
    pub fn new(
        filter: OpenFilter,
        enforcement: EnforcementMaps,
        tmpfs: Option<Arc<TmpfsWatch>>,
    ) -> Self {
        Self {
            filter,
            enforcement,
            tmpfs,
        }
    }
}

/// A name the caller did not check with [`name_key`] is a bug, not a kernel error.
fn key_of(name: &str) -> Result<[u8; NAME_KEY_LEN]> {
    name_key(name).with_context(|| format!("{name:?} does not fit a kernel name key"))
}

/// Sets `bit` in a prefilter bitmap. Bits are never cleared: a stale one
/// costs the kernel a hash lookup that misses, a missing one a watched
/// access skipped, so the bit goes in before the entry it filters.
fn set_bit(map: &mut Array<MapData, u64>, bit: u32, what: &str) -> Result<()> {
    let word = map.get(&(bit >> 6), 0).unwrap_or(0);
    map.set(bit >> 6, word | 1u64 << (bit & 63), 0)
        .with_context(|| format!("kernel {what} prefilter: cannot set a bit"))
}

impl KernelWatch for KernelMaps {
    fn watch_name(&mut self, name: &str, anchored: bool) -> Result<()> {
        let value = if anchored { NAME_NEEDS_ANCHOR } else { 0 };
        let key = key_of(name)?;
        let bit = name_prefilter_bit(name_prefix(name.as_bytes()), name.len() as u32);
        set_bit(&mut self.filter.name_prefilter, bit, "name")?;
        self.filter
            .names
            .insert(key, value, 0)
            .with_context(|| format!("kernel name filter: cannot add {name:?}"))
    }

    fn watch_parent_name(&mut self, name: &str) -> Result<()> {
        self.filter
            .parents
            .insert(key_of(name)?, 0, 0)
            .with_context(|| format!("kernel name filter: cannot add {name:?}"))
    }

    fn unwatch_name(&mut self, name: &str) {
        if let Some(k) = name_key(name) {
            let _ = self.filter.names.remove(&k);
        }
    }

    fn unwatch_parent_name(&mut self, name: &str) {
        if let Some(k) = name_key(name) {
            let _ = self.filter.parents.remove(&k);
        }
    }

    fn set_name_lengths(&mut self, bitmap: u64) -> Result<()> {
        self.filter
            .name_lengths
            .set(0, bitmap, 0)
            .context("kernel name filter: cannot set the length bitmap")
    }

    fn watch_inode(&mut self, key: InodeKey, slot: u32, path: &str) -> Result<()> {
        set_bit(
            &mut self.filter.read_prefilter,
            read_prefilter_bit(key.ino),
            "inode",
        )?;
        self.filter.inodes.insert(key, slot, 0)?;
        match &self.tmpfs {
            Some(t) => t.watch(key, slot, Path::new(path)),
            None => Ok(()),
        }
    }

    fn watch_dir(&mut self, key: InodeKey) -> Result<()> {
        set_bit(
            &mut self.filter.read_prefilter,
            read_prefilter_bit(key.ino),
            "inode",
        )?;
        Ok(self.filter.dirs.insert(key, 0, 0)?)
    }

    fn unwatch_inode(&mut self, key: InodeKey) {
        if let Some(t) = &self.tmpfs {
            t.unwatch(key);
        }
        let _ = self.filter.inodes.remove(&key);
        let _ = self.enforcement.deny_inodes.remove(&key);
    }

    fn undeny_inode(&mut self, key: InodeKey) {
        if let Some(t) = &self.tmpfs {
            if let Err(e) = t.set_deny(key, None) {
                tracing::warn!("tmpfs kill rule not lifted: {e:#}");
            }
        }
        let _ = self.enforcement.deny_inodes.remove(&key);
    }

    fn allow_reader(&mut self, rule: u32, exe: InodeKey) -> Result<()> {
        if let Some(t) = &self.tmpfs {
            t.allow_reader(rule, exe, true);
        }
        let key = AllowKey { rule, _pad: 0, exe };
        self.enforcement
            .allowed_readers
            .insert(key, 0, 0)
            .context("kernel allow list: cannot add an owner")
    }

    fn disallow_reader(&mut self, rule: u32, exe: InodeKey) {
        if let Some(t) = &self.tmpfs {
            t.allow_reader(rule, exe, false);
        }
        let _ = self
            .enforcement
            .allowed_readers
            .remove(&AllowKey { rule, _pad: 0, exe });
    }

    fn deny_inode(&mut self, key: InodeKey, rule: u32) -> Result<()> {
        self.enforcement.deny_inodes.insert(key, rule, 0)?;
        match &self.tmpfs {
            Some(t) => t.set_deny(key, Some(rule)),
            None => Ok(()),
        }
    }

    fn quarantine(&mut self, pid: u32, start: QuarantineEntry) -> Result<()> {
        self.enforcement.quarantine(pid, start)
    }

    fn release(&mut self, pid: u32, start: QuarantineEntry) {
        // The kernel's exit hook already removed it if the process is gone;
        // an entry the fork hook made for a new holder of the pid stays.
        if self.enforcement.quarantine.get(&pid, 0).ok() == Some(start) {
            let _ = self.enforcement.quarantine.remove(&pid);
        }
    }
}

/// Keeps in memory what the monitor asked of the kernel: unit tests read the
/// monitor's decisions from it without loading any probe.
#[cfg(test)]
#[derive(Debug, Default)]
pub struct RecordedWatch {
    /// Name -> anchored.
    pub names: HashMap<String, bool>,
    pub parent_names: HashSet<String>,
    pub name_lengths: u64,
    pub inodes: HashMap<InodeKey, u32>,
    pub dirs: HashSet<InodeKey>,
    /// (rule, executable inode).
    pub allowed_readers: HashSet<(u32, InodeKey)>,
    /// Inode -> kill rule.
    pub deny_inodes: HashMap<InodeKey, u32>,
    pub quarantined: HashMap<u32, QuarantineEntry>,
}

#[cfg(test)]
impl KernelWatch for RecordedWatch {
    fn watch_name(&mut self, name: &str, anchored: bool) -> Result<()> {
        key_of(name)?;
        self.names.insert(name.to_string(), anchored);
        Ok(())
    }

    fn watch_parent_name(&mut self, name: &str) -> Result<()> {
        key_of(name)?;
        self.parent_names.insert(name.to_string());
        Ok(())
    }

    fn unwatch_name(&mut self, name: &str) {
        self.names.remove(name);
    }

    fn unwatch_parent_name(&mut self, name: &str) {
        self.parent_names.remove(name);
    }

    fn set_name_lengths(&mut self, bitmap: u64) -> Result<()> {
        self.name_lengths = bitmap;
        Ok(())
    }

    fn watch_inode(&mut self, key: InodeKey, slot: u32, _path: &str) -> Result<()> {
        self.inodes.insert(key, slot);
        Ok(())
    }

    fn watch_dir(&mut self, key: InodeKey) -> Result<()> {
        self.dirs.insert(key);
        Ok(())
    }

    fn unwatch_inode(&mut self, key: InodeKey) {
        self.inodes.remove(&key);
        self.deny_inodes.remove(&key);
    }

    fn undeny_inode(&mut self, key: InodeKey) {
        self.deny_inodes.remove(&key);
    }

    fn allow_reader(&mut self, rule: u32, exe: InodeKey) -> Result<()> {
        self.allowed_readers.insert((rule, exe));
        Ok(())
    }

    fn disallow_reader(&mut self, rule: u32, exe: InodeKey) {
        self.allowed_readers.remove(&(rule, exe));
    }

    fn deny_inode(&mut self, key: InodeKey, rule: u32) -> Result<()> {
        self.deny_inodes.insert(key, rule);
        Ok(())
    }

    fn quarantine(&mut self, pid: u32, start: QuarantineEntry) -> Result<()> {
        self.quarantined.insert(pid, start);
        Ok(())
    }

    fn release(&mut self, pid: u32, start: QuarantineEntry) {
        if self.quarantined.get(&pid) == Some(&start) {
            self.quarantined.remove(&pid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_fit_become_zero_padded_keys() {
        let k = name_key("id_rsa").unwrap();
        assert_eq!(&k[..6], b"id_rsa");
        assert!(k[6..].iter().all(|b| *b == 0));
        assert!(name_key("").is_none());
        assert!(name_key(&"x".repeat(NAME_KEY_LEN)).is_none());
        assert!(name_key(&"x".repeat(NAME_KEY_LEN - 1)).is_some());
    }
}
