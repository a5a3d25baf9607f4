//! cgroup v2 id -> cgroup path.
//!
//! The kernel reports `bpf_get_current_cgroup_id()`, which is the inode number
//! of the cgroup's directory in the cgroup2 filesystem (pure v2 at
//! /sys/fs/cgroup, or the `unified` hierarchy of a hybrid layout).

use std::{
    collections::HashMap,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

/// Where cgroup2 is mounted, from /proc/self/mountinfo.
pub fn cgroup2_mount() -> Option<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        if right.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        left.split_whitespace().nth(4).map(PathBuf::from)
    })
}

pub struct CgroupResolver {
    root: Option<PathBuf>,
    paths: HashMap<u64, String>,
    /// Ids a walk did not find, and when: one unknown id does not trigger a
    /// walk per event (e.g. a cgroup removed while its processes' records queue).
    missed: HashMap<u64, Instant>,
}

const RETRY_MISSED_AFTER: Duration = Duration::from_secs(5);
const MAX_MISSED: usize = 4096;
const MAX_WALK_DEPTH: usize = 32;

impl CgroupResolver {
    pub fn new() -> Self {
        let mut r = Self {
            root: cgroup2_mount(),
            paths: HashMap::new(),
            missed: HashMap::new(),
        };
        r.walk();
        r
    }

    /// The path of cgroup `id` relative to the cgroup2 root, e.g. `/system.slice/x.service`.
    /// `pid` is a hint: its /proc/<pid>/cgroup is tried before walking the tree.
    pub fn path(&mut self, id: u64, pid: u32) -> Option<String> {
        if let Some(p) = self.paths.get(&id) {
            return Some(p.clone());
        }
        let root = self.root.clone()?;
        if let Some(rel) = proc_cgroup_v2(pid) {
            if ino(&root.join(rel.trim_start_matches('/'))) == Some(id) {
                self.paths.insert(id, rel.clone());
                return Some(rel);
            }
        }
        // New cgroups appear all the time (containers, transient units): rescan,
        // but an id that a recent walk did not find is not worth another one yet.
        if self
            .missed
            .get(&id)
            .is_some_and(|t| t.elapsed() < RETRY_MISSED_AFTER)
        {
            return None;
        }
        self.walk();
        let found = self.paths.get(&id).cloned();
        if found.is_none() {
            if self.missed.len() >= MAX_MISSED {
                self.missed.clear();
            }
            self.missed.insert(id, Instant::now());
        }
        found
    }

    /// The cgroup v2 id of a live process (the inode of its cgroup directory).
    pub fn id_of_pid(&self, pid: u32) -> Option<u64> {
        let rel = proc_cgroup_v2(pid)?;
        ino(&self.root.as_ref()?.join(rel.trim_start_matches('/')))
    }

    fn walk(&mut self) {
        let Some(root) = self.root.clone() else {
            return;
        };
        let mut stack = vec![(root.clone(), 0usize)];
        while let Some((dir, depth)) = stack.pop() {
            if let Some(id) = ino(&dir) {
                let rel = dir.strip_prefix(&root).unwrap_or(Path::new(""));
                self.paths.insert(id, format!("/{}", rel.display()));
            }
            if depth >= MAX_WALK_DEPTH {
                continue;
            }
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push((e.path(), depth + 1));
                }
            }
        }
    }
}

impl Default for CgroupResolver {
    fn default() -> Self {
        Self::new()
    }
}

fn ino(p: &Path) -> Option<u64> {
    std::fs::metadata(p).ok().map(|m| m.ino())
}

/// The `0::/path` line of /proc/<pid>/cgroup.
pub fn proc_cgroup_v2(pid: u32) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::").map(|s| s.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_cgroup_resolves() {
        let mut r = CgroupResolver::new();
        let root = r.root.clone().expect("cgroup2 mounted");
        let rel = proc_cgroup_v2(std::process::id()).unwrap();
        let id = ino(&root.join(rel.trim_start_matches('/'))).unwrap();
        assert_eq!(r.path(id, std::process::id()), Some(rel));
    }
}
