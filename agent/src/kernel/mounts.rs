//! Where the kernel's file systems are mounted, as a process sees them
//! (`/proc/<pid>/mountinfo`): cgroup programs attach to the cgroup2 mount,
//! cgroup ids resolve to paths below it, an exec'd file's overlay names its
//! image layers.

use std::path::PathBuf;

/// One line of a mountinfo file; the root and the mount point with their
/// octal escapes undone, the super options as written (their values may
/// hold an escaped `,`: split first, then [`unescape`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// `major:minor` of the mounted device.
    pub majmin: String,
    /// The mounted directory of that file system.
    pub root: String,
    pub mount_point: String,
    pub fstype: String,
    pub super_options: String,
}

/// The well-formed lines of mountinfo text, in order.
pub fn parse_mountinfo(text: &str) -> impl Iterator<Item = MountEntry> + '_ {
    text.lines().filter_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let mut l = left.split(' ');
        let majmin = l.nth(2)?.to_string();
        let root = unescape(l.next()?);
        let mount_point = unescape(l.next()?);
        let mut r = right.split(' ');
        let fstype = r.next()?.to_string();
        let super_options = r.nth(1)?.to_string();
        Some(MountEntry {
            majmin,
            root,
            mount_point,
            fstype,
            super_options,
        })
    })
}

/// This process's mounts (`/proc/self/mountinfo`), empty when unreadable.
pub fn own_mounts() -> Vec<MountEntry> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|t| parse_mountinfo(&t).collect())
        .unwrap_or_default()
}

/// mountinfo's octal escapes (`\040` for a space, `\054` for a comma).
pub fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let code = (b[i] == b'\\')
            .then(|| s.get(i + 1..i + 4))
            .flatten()
            .and_then(|d| u8::from_str_radix(d, 8).ok());
        match code {
            Some(v) => {
                out.push(v);
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Where cgroup2 is mounted, from /proc/self/mountinfo.
pub fn cgroup2_mount() -> Option<PathBuf> {
    cgroup2_mounts().into_iter().next().map(|(at, _)| at)
}

/// Every cgroup2 mount: (mount point, the mounted cgroup as seen from our
/// cgroup namespace), in mount order.
pub fn cgroup2_mounts() -> Vec<(PathBuf, String)> {
    own_mounts()
        .into_iter()
        .filter(|m| m.fstype == "cgroup2")
        .map(|m| (PathBuf::from(m.mount_point), m.root))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_with_optional_fields_and_escapes_parse_and_broken_ones_are_skipped() {
        let text = "36 35 98:0 /mnt\\040x /mnt/a\\054b rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n\
                    30 1 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n\
                    garbage\n";
        let all: Vec<MountEntry> = parse_mountinfo(text).collect();
        assert_eq!(all.len(), 2, "{all:?}");
        assert_eq!(
            all[0],
            MountEntry {
                majmin: "98:0".into(),
                root: "/mnt x".into(),
                mount_point: "/mnt/a,b".into(),
                fstype: "ext3".into(),
                super_options: "rw,errors=continue".into(),
            }
        );
        assert_eq!(
            (all[1].fstype.as_str(), all[1].mount_point.as_str()),
            ("cgroup2", "/sys/fs/cgroup")
        );
    }

    #[test]
    fn escapes_are_undone_and_a_lone_backslash_is_kept() {
        assert_eq!(unescape("/a\\040b\\054c"), "/a b,c");
        assert_eq!(unescape("/plain"), "/plain");
        assert_eq!(unescape("/trailing\\"), "/trailing\\");
    }
}
