//! Where the kernel's file systems are mounted, as this process sees them:
//! cgroup programs attach to the cgroup2 mount, and cgroup ids resolve to
//! paths below it.

use std::path::PathBuf;

/// Where cgroup2 is mounted, from /proc/self/mountinfo.
pub fn cgroup2_mount() -> Option<PathBuf> {
    cgroup2_mounts().into_iter().next().map(|(at, _)| at)
}

/// Every cgroup2 mount: (mount point, the mounted cgroup as seen from our
/// cgroup namespace), in mount order.
pub fn cgroup2_mounts() -> Vec<(PathBuf, String)> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    info.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            if right.split_whitespace().next()? != "cgroup2" {
                return None;
            }
            let mut f = left.split_whitespace();
            let root = f.nth(3)?.to_string();
            Some((PathBuf::from(f.next()?), root))
        })
        .collect()
}
