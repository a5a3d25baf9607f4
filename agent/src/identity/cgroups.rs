//! cgroup v2 id -> cgroup path.
//!
//! The kernel reports `bpf_get_current_cgroup_id()`, which is the inode number
//! of the cgroup's directory in the cgroup2 filesystem (pure v2 at
//! /sys/fs/cgroup, or the `unified` hierarchy of a hybrid layout).
//!
//! In a pod the agent usually has a cgroup namespace of its own, while the
//! DaemonSet mounts the host's whole cgroup tree: `/proc/<pid>/cgroup` then
//! shows other processes' cgroups relative to the agent's own (`/../../x`),
//! and the mount's root in mountinfo reads `/../..`. The resolver finds where
//! its namespace sits in the mounted tree and translates those paths, so that
//! paths in events are the host's.

use crate::identity::container::{self, Workload, WorkloadFuture};
use crate::kernel::mounts::cgroup2_mounts;

use futures::future::FutureExt;
use std::{
    collections::HashMap,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

/// `base` (a path below the mount's root) followed by `rel` (`..` allowed);
/// `None` when `rel` climbs above the mount's root (outside what we see).
fn join_within(base: &str, rel: &str) -> Option<String> {
    let mut parts: Vec<&str> = base.split('/').filter(|c| !c.is_empty()).collect();
    for c in rel.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(format!("/{}", parts.join("/")))
}

pub struct CgroupResolver {
    root: Option<PathBuf>,
    /// Our cgroup namespace's root, relative to the mount's root (`/` on a
    /// host without a cgroup namespace). `None`: not found, and paths read
    /// from /proc cannot be placed in the tree (lookups then walk it).
    ns_root: Option<String>,
    paths: HashMap<u64, String>,
    /// Ids a walk did not find, and when: one unknown id does not trigger a
    /// walk per event (e.g. a cgroup removed while its processes' records queue).
    missed: HashMap<u64, Instant>,
    /// Container/pod verdicts per cgroup id: the ownership walk runs once
    /// per cgroup, not per event.
    workloads: HashMap<u64, WorkloadFuture>,
}

const RETRY_MISSED_AFTER: Duration = Duration::from_secs(5);
const MAX_MISSED: usize = 4096;
const MAX_WALK_DEPTH: usize = 32;
const MAX_WORKLOADS: usize = 16384;

impl CgroupResolver {
    pub fn new() -> Self {
        let mounts = cgroup2_mounts();
        let root = mounts.first().map(|(at, _)| at.clone());
        // A mount stacked later on the same point hides the earlier ones.
        let mounted = root.as_ref().and_then(|r| {
            mounts
                .iter()
                .rev()
                .find(|(at, _)| at == r)
                .map(|(_, m)| m.clone())
        });
        let mut r = Self {
            root,
            ns_root: None,
            paths: HashMap::new(),
            missed: HashMap::new(),
            workloads: HashMap::new(),
        };
        r.walk();
        r.ns_root = match mounted.as_deref() {
            // The mount shows our namespace's root: paths need no translation.
            Some(m) if !m.starts_with("/..") => Some("/".to_string()),
            Some(m) => {
                let found = r.find_own_ns_root(m);
                if found.is_none() {
                    tracing::warn!(
                        "the cgroup2 mount at {} shows cgroups above this process's cgroup                          namespace ({m}), and this process's own cgroup was not found in it:                          cgroup paths are found by walking the tree, and processes found at                          start-up may lack their cgroup",
                        r.root.as_ref().map_or("?".into(), |p| p.display().to_string())
                    );
                }
                found
            }
            None => None,
        };
        r
    }

    /// Where our cgroup namespace sits in the mounted tree: the directory
    /// whose `cgroup.procs` lists this process, minus our path inside the
    /// namespace. `mounted` is the mount's root as mountinfo shows it
    /// (`/../..`: two levels above our namespace's root).
    fn find_own_ns_root(&self, mounted: &str) -> Option<String> {
        let root = self.root.as_ref()?;
        let ups = mounted.split('/').filter(|c| *c == "..").count();
        let own = proc_cgroup_v2(std::process::id())?;
        let own_parts: Vec<&str> = own.split('/').filter(|c| !c.is_empty()).collect();
        let depth = ups + own_parts.len();
        let me = std::process::id().to_string();
        let dir = self.paths.values().find(|p| {
            p.split('/').filter(|c| !c.is_empty()).count() == depth
                && p.ends_with(own.trim_end_matches('/'))
                && std::fs::read_to_string(
                    root.join(p.trim_start_matches('/')).join("cgroup.procs"),
                )
                .is_ok_and(|t| t.lines().any(|l| l.trim() == me))
        })?;
        let parts: Vec<&str> = dir.split('/').filter(|c| !c.is_empty()).collect();
        Some(format!("/{}", parts[..ups].join("/")))
    }

    /// A path from /proc/<pid>/cgroup (relative to our cgroup namespace) as
    /// a path in the mounted tree.
    fn placed(&self, ns_path: &str) -> Option<String> {
        join_within(self.ns_root.as_deref()?, ns_path)
    }

    /// The path of cgroup `id` relative to the cgroup2 root, e.g. `/system.slice/x.service`.
    /// `pid` is a hint: its /proc/<pid>/cgroup is tried before walking the tree.
    pub fn path(&mut self, id: u64, pid: u32) -> Option<String> {
        if let Some(p) = self.paths.get(&id) {
            return Some(p.clone());
        }
        let root = self.root.clone()?;
        if let Some(rel) = proc_cgroup_v2(pid).and_then(|p| self.placed(&p)) {
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

    /// The container and pod of cgroup `id` at `path` (from [`Self::path`]),
    /// as far as they can be vouched for (see [`container::check`]). A path
    /// that claims nothing is judged at once; one that does is checked on
    /// the blocking pool when a tokio runtime runs (never on the event loop),
    /// in place otherwise (tests, the CLI).
    pub fn workload(&mut self, id: u64, path: Option<&str>) -> Option<WorkloadFuture> {
        let path = path?;
        if let Some(f) = self.workloads.get(&id) {
            return Some(f.clone());
        }
        let root = self.root.clone()?;
        let rel = path.to_string();
        let fut = match tokio::runtime::Handle::try_current() {
            Ok(rt) if container::needs_walk(path) => {
                let shown = rel.clone();
                rt.spawn_blocking(move || container::check(&root, &rel, id))
                    .map(move |r| Arc::new(r.unwrap_or_else(|e| unchecked(shown, e))))
                    .boxed()
                    .shared()
            }
            _ => futures::future::ready(Arc::new(container::check(&root, &rel, id)))
                .boxed()
                .shared(),
        };
        if self.workloads.len() >= MAX_WORKLOADS {
            self.workloads.clear();
        }
        self.workloads.insert(id, fut.clone());
        Some(fut)
    }

    /// The cgroup v2 id of a live process (the inode of its cgroup directory).
    pub fn id_of_pid(&self, pid: u32) -> Option<u64> {
        let rel = self.placed(&proc_cgroup_v2(pid)?)?;
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

/// The verdict when the check itself died: nothing is vouched for.
fn unchecked(path: String, e: tokio::task::JoinError) -> Workload {
    Workload {
        refused: Some(container::Refusal {
            path,
            claimed_container: None,
            claimed_pod: None,
            reason: format!("the ownership check did not finish ({e})"),
            forgery: false,
        }),
        ..Workload::default()
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
    fn namespace_relative_paths_are_placed_in_the_tree() {
        assert_eq!(join_within("/", "/a/b").as_deref(), Some("/a/b"));
        assert_eq!(join_within("/", "/").as_deref(), Some("/"));
        assert_eq!(
            join_within("/kubepods/pod1/c1", "/../../pod2/c2").as_deref(),
            Some("/kubepods/pod2/c2")
        );
        assert_eq!(join_within("/k/p", "/../../..").as_deref(), None);
        assert_eq!(join_within("/", "/../x"), None);
    }

    #[test]
    fn own_cgroup_resolves() {
        let mut r = CgroupResolver::new();
        let root = r.root.clone().expect("cgroup2 mounted");
        let rel = proc_cgroup_v2(std::process::id()).unwrap();
        let id = ino(&root.join(rel.trim_start_matches('/'))).unwrap();
        assert_eq!(r.path(id, std::process::id()), Some(rel));
    }
}
