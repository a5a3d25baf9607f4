//! The kubelet's Secret and projected volume directories on the node, walked without following links out of a volume.
//!
//! `<kubelet root>/pods/<pod uid>/volumes/kubernetes.io~secret/<volume>/` holds
//! `key -> ..data/key` and `..data -> ..2026_12_04_21_00_00.123456789`; the
//! kubelet writes a new timestamped directory and swaps `..data` when the
//! Secret changes. The walk reads `..data` as one directory name inside the
//! volume (never a path out of it), then lists that directory: regular files
//! are the Secret's keys; links, FIFOs, devices and oversized files are
//! refused and counted, whoever planted them.

use std::{
    collections::HashMap,
    fs,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

/// The kubelet's directory of a volume plugin under `pods/<uid>/volumes/`.
pub const SECRET_PLUGIN: &str = "kubernetes.io~secret";
pub const PROJECTED_PLUGIN: &str = "kubernetes.io~projected";

/// A Secret holds at most 1 MiB in all; a bigger file in a Secret volume
/// was not written by the kubelet.
pub const MAX_KEY_BYTES: u64 = 1 << 20;
/// Keys may be nested (`items[].path: a/b`); deeper than this is no kubelet layout.
const MAX_KEY_DEPTH: usize = 4;
/// Files per volume the walk keeps; a Secret with more keys is cut here and counted.
const MAX_KEYS_PER_VOLUME: usize = 256;

/// One key of a Secret or projected volume, as the kubelet wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeFile {
    pub pod_uid: String,
    pub volume: String,
    /// `true` for a projected volume.
    pub projected: bool,
    /// The key's path inside the volume (`password`, `nested/key`).
    pub key: String,
    /// The real file: `<volume>/..<timestamp>/<key>`.
    pub path: PathBuf,
    /// (st_dev, st_ino).
    pub inode: (u64, u64),
}

/// What the walk of one volume found, and the `..data` target it read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumeScan {
    pub data_dir: String,
    pub files: Vec<VolumeFile>,
    /// Entries that are no regular file of a sane size (links, FIFOs,
    /// devices, files over [`MAX_KEY_BYTES`]) or cut by the key limits.
    pub refused: usize,
}

/// All secret and projected volumes under a kubelet root.
#[derive(Debug, Default)]
pub struct Layout {
    /// Volume directory -> its scan.
    pub volumes: HashMap<PathBuf, VolumeScan>,
    /// Volumes whose `..data` is missing or points out of the volume.
    pub bad_volumes: usize,
}

impl Layout {
    pub fn files(&self) -> impl Iterator<Item = &VolumeFile> {
        self.volumes.values().flat_map(|v| v.files.iter())
    }

    pub fn refused(&self) -> usize {
        self.volumes.values().map(|v| v.refused).sum()
    }
}

/// Walks `<kubelet_root>/pods`. A volume whose `..data` still names the
/// directory `previous` saw keeps that scan (the kubelet never rewrites a
/// timestamped directory in place), so a poll costs one `readlink` per volume.
pub fn scan(kubelet_root: &Path, previous: &Layout) -> Layout {
    let mut out = Layout::default();
    for (pod_uid, pod_dir) in real_dirs(&kubelet_root.join("pods")) {
        for (plugin, projected) in [(SECRET_PLUGIN, false), (PROJECTED_PLUGIN, true)] {
            let plugin_dir = pod_dir.join("volumes").join(plugin);
            for (volume, vol_dir) in real_dirs(&plugin_dir) {
                let Some(data_dir) = data_dir_name(&vol_dir) else {
                    out.bad_volumes += 1;
                    continue;
                };
                if let Some(prev) = previous
                    .volumes
                    .get(&vol_dir)
                    .filter(|p| p.data_dir == data_dir)
                {
                    out.volumes.insert(vol_dir, prev.clone());
                    continue;
                }
                let mut scan = VolumeScan {
                    data_dir: data_dir.clone(),
                    ..VolumeScan::default()
                };
                let at = VolumeAt {
                    pod_uid: &pod_uid,
                    volume: &volume,
                    projected,
                };
                walk_keys(&vol_dir.join(&data_dir), "", 0, &at, &mut scan);
                out.volumes.insert(vol_dir, scan);
            }
        }
    }
    out
}

struct VolumeAt<'a> {
    pod_uid: &'a str,
    volume: &'a str,
    projected: bool,
}

/// The subdirectories of `dir` that are real directories (no links), by name.
fn real_dirs(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| Some((e.file_name().into_string().ok()?, e.path())))
        .collect()
}

/// The name `..data` points to, when it is a timestamped directory of this
/// volume: one component starting with `..`, a real directory (no link).
fn data_dir_name(vol_dir: &Path) -> Option<String> {
    let target = fs::read_link(vol_dir.join("..data")).ok()?;
    let name = target.to_str()?;
    let sane = name.len() > 2
        && name.starts_with("..")
        && name != "..data"
        && !name.contains('/')
        && !name.contains('\0');
    if !sane {
        return None;
    }
    let meta = fs::symlink_metadata(vol_dir.join(name)).ok()?;
    meta.is_dir().then(|| name.to_string())
}

fn walk_keys(dir: &Path, prefix: &str, depth: usize, at: &VolumeAt<'_>, out: &mut VolumeScan) {
    let Ok(rd) = fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let Ok(name) = e.file_name().into_string() else {
            out.refused += 1;
            continue;
        };
        let path = e.path();
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        let key = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        if meta.is_dir() {
            if depth + 1 < MAX_KEY_DEPTH {
                walk_keys(&path, &key, depth + 1, at, out);
            } else {
                out.refused += 1;
            }
            continue;
        }
        if !meta.is_file() || meta.len() > MAX_KEY_BYTES || out.files.len() >= MAX_KEYS_PER_VOLUME {
            tracing::debug!(
                "{}: not watched as a Kubernetes Secret key ({}, {} bytes)",
                path.display(),
                crate::safe_open::kind_of(&meta),
                meta.len()
            );
            out.refused += 1;
            continue;
        }
        out.files.push(VolumeFile {
            pod_uid: at.pod_uid.to_string(),
            volume: at.volume.to_string(),
            projected: at.projected,
            key,
            path,
            inode: (meta.dev(), meta.ino()),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A kubelet-style volume: keys as links into `..data`, `..data` a link
    /// to the timestamped directory holding the files.
    fn volume(root: &Path, uid: &str, plugin: &str, name: &str, keys: &[(&str, &str)]) -> PathBuf {
        let vol = root
            .join("pods")
            .join(uid)
            .join("volumes")
            .join(plugin)
            .join(name);
        let ts = "..2026_12_04_21_00_00.000000001";
        fs::create_dir_all(vol.join(ts)).unwrap();
        for (k, v) in keys {
            fs::write(vol.join(ts).join(k), v).unwrap();
            symlink(format!("..data/{k}"), vol.join(k)).unwrap();
        }
        symlink(ts, vol.join("..data")).unwrap();
        vol
    }

    fn keys(l: &Layout) -> Vec<String> {
        let mut k: Vec<String> = l
            .files()
            .map(|f| format!("{}/{}/{}", f.pod_uid, f.volume, f.key))
            .collect();
        k.sort();
        k
    }

    #[test]
    fn finds_the_keys_of_secret_and_projected_volumes() {
        let d = tempfile::tempdir().unwrap();
        volume(d.path(), "pa", SECRET_PLUGIN, "db", &[("password", "x")]);
        volume(
            d.path(),
            "pa",
            PROJECTED_PLUGIN,
            "sa",
            &[("token", "t"), ("ca.crt", "c")],
        );
        fs::create_dir_all(
            d.path()
                .join("pods/pa/volumes/kubernetes.io~empty-dir/cache"),
        )
        .unwrap();
        let l = scan(d.path(), &Layout::default());
        assert_eq!(keys(&l), ["pa/db/password", "pa/sa/ca.crt", "pa/sa/token"]);
        let f = l.files().find(|f| f.key == "password").unwrap();
        assert!(!f.projected);
        assert!(f.path.ends_with("..2026_12_04_21_00_00.000000001/password"));
        assert_eq!(l.refused(), 0);
    }

    #[test]
    fn hostile_entries_are_refused_not_followed() {
        let d = tempfile::tempdir().unwrap();
        let outside = d.path().join("outside");
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("shadow"), "root:x").unwrap();
        let vol = volume(d.path(), "pa", SECRET_PLUGIN, "db", &[("password", "x")]);
        let ts = vol.join("..2026_12_04_21_00_00.000000001");
        // A key that is a link out of the volume, a FIFO, a huge sparse file.
        symlink(outside.join("shadow"), ts.join("escape")).unwrap();
        let fifo =
            std::ffi::CString::new(ts.join("fifo").into_os_string().into_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        let huge = fs::File::create(ts.join("huge")).unwrap();
        huge.set_len(64 << 30).unwrap();
        // A directory link among the keys.
        symlink(&outside, ts.join("dirlink")).unwrap();
        // A volume whose ..data points out of it, and one with no ..data.
        let evil = d.path().join("pods/pb/volumes/kubernetes.io~secret/evil");
        fs::create_dir_all(&evil).unwrap();
        symlink(&outside, evil.join("..data")).unwrap();
        let rel = d.path().join("pods/pb/volumes/kubernetes.io~secret/rel");
        fs::create_dir_all(&rel).unwrap();
        symlink("../../../../../outside", rel.join("..data")).unwrap();
        fs::create_dir_all(d.path().join("pods/pb/volumes/kubernetes.io~secret/bare")).unwrap();
        // A volume directory that is itself a link.
        symlink(
            &outside,
            d.path().join("pods/pb/volumes/kubernetes.io~secret/linked"),
        )
        .unwrap();

        let l = scan(d.path(), &Layout::default());
        assert_eq!(keys(&l), ["pa/db/password"], "{l:?}");
        assert_eq!(l.refused(), 4, "escape, fifo, huge, dirlink: {l:?}");
        assert_eq!(l.bad_volumes, 3, "evil, rel, bare");
    }

    #[test]
    fn a_data_swap_is_found_and_an_unchanged_volume_is_not_walked_again() {
        let d = tempfile::tempdir().unwrap();
        let vol = volume(d.path(), "pa", SECRET_PLUGIN, "db", &[("password", "old")]);
        let first = scan(d.path(), &Layout::default());
        let old = first.files().next().unwrap().clone();

        // Unchanged ..data: the previous scan is kept as it was.
        fs::write(vol.join("..2026_12_04_21_00_00.000000001/late"), "x").unwrap();
        let again = scan(d.path(), &first);
        assert_eq!(keys(&again), ["pa/db/password"]);

        // The kubelet's update: a new timestamped dir, ..data swapped.
        let ts2 = "..2026_12_04_22_00_00.000000002";
        fs::create_dir_all(vol.join(ts2)).unwrap();
        fs::write(vol.join(ts2).join("password"), "new").unwrap();
        fs::rename(vol.join("..data"), vol.join("..data_old")).unwrap();
        symlink(ts2, vol.join("..data")).unwrap();
        let after = scan(d.path(), &again);
        let new = after.files().next().unwrap();
        assert_eq!(new.key, "password");
        assert_ne!(new.inode, old.inode, "the new file's inode is watched");
        assert!(new.path.to_str().unwrap().contains(ts2));
    }
}
