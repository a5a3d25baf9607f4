//! The files that policy names by a literal `exe_path`, identified by (st_dev, inode) as the agent's own mount namespace sees them, and followed across replacement.
//!
//! A process's executable path is spelled inside its own mount namespace: a
//! container, or a user who made one with `unshare -Urm`, can put any file at
//! `/usr/bin/<owner>`. What the workload cannot forge is which file the
//! kernel executed, (dev, inode), so a literal `exe_path` matches only that
//! file. Packages replace binaries by renaming a new file over the old one:
//! [`OwnerFiles::refresh`] notices the new inode so the owner keeps its
//! rights (and the kernel's allow list follows, see the monitor).

use std::{collections::BTreeMap, os::unix::fs::MetadataExt};

/// (st_dev as `stat(2)` reports it, inode).
pub type FileId = (u64, u64);

/// One literal path whose file changed since the last look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerFileChange {
    pub path: String,
    pub before: Option<FileId>,
    pub after: Option<FileId>,
}

/// The current file behind every literal `exe_path` in the policy (owners of
/// every rule and readers of every exception).
#[derive(Debug, Clone, Default)]
pub struct OwnerFiles {
    ids: BTreeMap<String, Option<FileId>>,
}

impl OwnerFiles {
    /// Looks up each of `paths` (the policy's literal executables) now.
    pub fn resolve(paths: impl IntoIterator<Item = String>) -> Self {
        let mut files = Self::default();
        for path in paths {
            let id = stat(&path);
            files.ids.insert(path, id);
        }
        files
    }

    /// Looks again; returns the paths whose file is not the one seen before
    /// (replaced, removed or created).
    pub fn refresh(&mut self) -> Vec<OwnerFileChange> {
        let mut changes = Vec::new();
        for (path, id) in self.ids.iter_mut() {
            let now = stat(path);
            if now != *id {
                changes.push(OwnerFileChange {
                    path: path.clone(),
                    before: *id,
                    after: now,
                });
                *id = now;
            }
        }
        changes
    }

    /// The file at `path`, if the policy names it literally and it exists.
    pub fn id(&self, path: &str) -> Option<FileId> {
        self.ids.get(path).copied().flatten()
    }

    /// Whether the executable `(dev, inode)` is the file at literal `path`.
    pub fn is(&self, path: &str, exe: FileId) -> bool {
        self.id(path) == Some(exe)
    }
}

/// Whether a glob pattern is a plain path.
pub fn is_literal(pattern: &str) -> bool {
    !pattern.contains(['*', '?', '[', '{'])
}

/// stat(2), following links: `/usr/bin/python3 -> python3.11` names the
/// file the kernel executes. Paths come from the agent's own config.
fn stat(path: &str) -> Option<FileId> {
    std::fs::metadata(path)
        .ok()
        .filter(|m| m.is_file())
        .map(|m| (m.dev(), m.ino()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_paths_are_followed_across_a_rename_over_them() {
        let dir = tempfile::tempdir().unwrap();
        let owner = dir.path().join("owner");
        std::fs::write(&owner, b"v1").unwrap();
        let mut files = OwnerFiles::resolve([owner.display().to_string()]);
        let path = owner.to_str().unwrap();
        let v1 = files.id(path).expect("resolved");
        assert!(files.refresh().is_empty());
        // A package upgrade: new file, renamed over the old one.
        let staged = dir.path().join("owner.new");
        std::fs::write(&staged, b"v2").unwrap();
        std::fs::rename(&staged, &owner).unwrap();
        let changes = files.refresh();
        let v2 = files.id(path).unwrap();
        assert_ne!(v1, v2);
        assert_eq!(
            changes,
            vec![OwnerFileChange {
                path: path.into(),
                before: Some(v1),
                after: Some(v2),
            }]
        );
        assert!(files.is(path, v2) && !files.is(path, v1));
        std::fs::remove_file(&owner).unwrap();
        assert_eq!(files.refresh()[0].after, None);
        assert!(!files.is(path, v2));
    }

    #[test]
    fn a_directory_or_a_missing_file_is_no_owner() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let files = OwnerFiles::resolve([d.to_string(), format!("{d}/missing")]);
        assert_eq!(files.id(dir.path().to_str().unwrap()), None);
        assert_eq!(files.id(&format!("{}/missing", dir.path().display())), None);
    }
}
