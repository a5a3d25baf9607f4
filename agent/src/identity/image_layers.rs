//! Container image layers as package evidence: a program exec'd from a runtime's overlayfs is an expected client when it is an image layer's unmodified, root-owned file that the dpkg or rpm database inside the same image lists.
//!
//! The exec'd file's device is an overlayfs mount's: its mountinfo line (of
//! the process, its parent, the host's init, or the agent, whichever still
//! shows it) gives the mount point and the `lowerdir=` and `upperdir=`
//! stack. The file is image content only when
//!
//! - no entry exists at its path in the upper directory (a copied-up or
//!   container-written file is the container's, whatever its content);
//! - the topmost lower layer holding the path lies below a configured
//!   runtime snapshot root (`packages.image_roots`), and every directory
//!   from `/` down to the file is a real directory (no symlink), root-owned
//!   and not writable by group or others (sticky directories such as
//!   `/var/tmp` excepted, whose entries only their owner may replace);
//! - the layer's file is a regular root-owned file, not writable by group or
//!   others, and its SHA-256 is the one the hash cache verified for the
//!   exec'd version;
//! - the topmost layer of the same stack whose package database (dpkg's
//!   `var/lib/dpkg/info/*.md5sums` or rpm's `rpmdb.sqlite`) lists the path
//!   records that file's digest.
//!
//! Each layer's database is read once per (dev, inode, mtime), without
//! following links and capped, and like every check here only on the
//! blocking pool.

use std::{
    num::NonZeroUsize,
    os::unix::fs::MetadataExt,
    path::{Component, Path, PathBuf},
    sync::{Arc, Mutex},
};

use lru::LruCache;

use crate::{
    identity::{
        package_index::{
            digests, FileClaim, PackageIndex, PackagedExe, PackagesConfig, MAX_VERIFY_BYTES,
        },
        rpmdb::{self, FileDigest},
    },
    kernel::mounts::{parse_mountinfo, unescape},
    safe_open::{self, Links},
};

/// mountinfo is read up to this size (tens of thousands of mounts).
const MAX_MOUNTINFO_BYTES: u64 = 16 << 20;
/// Layer databases kept parsed.
const CACHED_LAYER_DBS: usize = 256;
/// Where an image keeps its package databases, relative to a layer.
const LAYER_DPKG_INFO: &str = "var/lib/dpkg/info";
const LAYER_RPM_DBS: [&str; 2] = [
    "var/lib/rpm/rpmdb.sqlite",
    "usr/lib/sysimage/rpm/rpmdb.sqlite",
];

/// The overlayfs mount an exec'd file lives on, as its mountinfo line says.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Overlay {
    /// The file's path relative to the overlay's root, without a leading `/`.
    rel: String,
    /// Lower layers, topmost first, as the mounter named them.
    lowers: Vec<String>,
    upper: Option<String>,
}

/// A parsed layer database, keyed by the (dev, ino, mtime) it was read at.
type LayerDbKey = (u64, u64, i64, i64);

/// Image-layer evidence for programs run from container root file systems.
pub struct ImageLayers {
    /// The host's `/` as the agent sees it (see [`PackagesConfig::root`]).
    root: PathBuf,
    /// Configured snapshot roots, as the agent reaches them.
    image_roots: Vec<PathBuf>,
    dbs: Mutex<LruCache<LayerDbKey, Arc<PackageIndex>>>,
}

/// What the layer check concluded.
#[derive(Debug, PartialEq, Eq)]
pub enum LayerVerdict {
    /// Image content vouched for by the image's package database.
    Packaged(PackagedExe),
    /// Not image content, or no database of the image lists it.
    No,
    /// The file's overlay mount is no longer visible anywhere (every process
    /// that showed it exited): ask again for the next process.
    Unknown,
}

impl ImageLayers {
    pub fn new(cfg: &PackagesConfig) -> ImageLayers {
        ImageLayers {
            root: cfg.root.clone(),
            image_roots: cfg.image_roots.iter().map(|r| cfg.local(r)).collect(),
            dbs: Mutex::new(LruCache::new(NonZeroUsize::new(CACHED_LAYER_DBS).unwrap())),
        }
    }

    /// Whether `claim`, exec'd by `pid` (child of `ppid`), is an image
    /// layer's packaged program. Blocking: call on the blocking pool.
    pub fn verify(&self, claim: &FileClaim, pid: u32, ppid: u32) -> LayerVerdict {
        // overlayfs has an anonymous device (major 0); a disk's file is no
        // layer's, and its verdict needs no mountinfo.
        if self.image_roots.is_empty() || libc::major(claim.dev) != 0 {
            return LayerVerdict::No;
        }
        let sources = [
            format!("/proc/{pid}/mountinfo"),
            format!("/proc/{ppid}/mountinfo"),
            "/proc/1/mountinfo".to_string(),
            "/proc/self/mountinfo".to_string(),
        ];
        // The first view showing the file's overlay decides: one device is
        // one overlay superblock, whoever mounted it.
        let overlay = sources.iter().find_map(|src| {
            let text = read_proc(Path::new(src))?;
            find_overlay(&text, claim.dev, &claim.path)
        });
        match overlay {
            None => LayerVerdict::Unknown,
            Some(o) => self
                .vouch(claim, &o)
                .map_or(LayerVerdict::No, LayerVerdict::Packaged),
        }
    }

    /// The lower directory `named` (as mountinfo shows it) as the agent
    /// reaches it: a host path below [`Self::root`]. containerd names long
    /// stacks relative to its snapshots directory; such a layer is looked
    /// up below each configured root.
    fn lower_candidates(&self, named: &str) -> Vec<PathBuf> {
        let p = Path::new(named);
        if p.is_absolute() {
            let rel = p.strip_prefix("/").unwrap_or(p);
            vec![self.root.join(rel)]
        } else if p.components().all(|c| matches!(c, Component::Normal(_))) {
            self.image_roots.iter().map(|r| r.join(p)).collect()
        } else {
            Vec::new()
        }
    }

    /// The configured root `layer` lies below (both canonical) and the
    /// layer's snapshot id: its first path component below that root.
    fn snapshot_of(&self, layer: &Path) -> Option<(PathBuf, String)> {
        let layer = std::fs::canonicalize(layer).ok()?;
        for root in &self.image_roots {
            let Ok(root) = std::fs::canonicalize(root) else {
                continue;
            };
            if let Ok(below) = layer.strip_prefix(&root) {
                let id = below.components().next()?;
                return Some((layer.clone(), id.as_os_str().to_string_lossy().into_owned()));
            }
        }
        None
    }

    fn vouch(&self, claim: &FileClaim, o: &Overlay) -> Option<PackagedExe> {
        if let Some(upper) = &o.upper {
            let uppers: Vec<PathBuf> = self
                .lower_candidates(upper)
                .into_iter()
                .filter(|u| u.is_dir())
                .collect();
            // Anything at the path in the upper directory (a copy-up, a file
            // the container wrote, a whiteout) is not image content; an
            // upper directory the agent cannot see proves nothing either way.
            if uppers.is_empty()
                || uppers
                    .iter()
                    .any(|u| std::fs::symlink_metadata(u.join(&o.rel)).is_ok())
            {
                return None;
            }
        }
        let layers: Vec<PathBuf> = o
            .lowers
            .iter()
            .flat_map(|l| self.lower_candidates(l))
            .filter(|l| l.is_dir())
            .collect();
        // The topmost layer holding the path is the one the overlay shows.
        let shown = layers
            .iter()
            .find(|l| std::fs::symlink_metadata(l.join(&o.rel)).is_ok())?;
        let (layer, _) = self.snapshot_of(shown)?;
        let file = layer.join(&o.rel);
        if !trusted_path(&file) {
            return None;
        }
        let (f, meta) = safe_open::open_regular(&file, Links::NoFollow, None).ok()?;
        if meta.uid() != 0 || meta.mode() & 0o022 != 0 || meta.size() > MAX_VERIFY_BYTES {
            return None;
        }
        let (md5, sha) = digests(&f).ok()?;
        if hex::encode(sha) != claim.sha256 {
            return None;
        }
        let wanted = format!("/{}", o.rel);
        for l in &layers {
            let Some((layer, id)) = self.snapshot_of(l) else {
                continue;
            };
            let Some(index) = self.layer_index(&layer) else {
                continue;
            };
            let Some((path, package, digest)) = index.lookup(&wanted).into_iter().next() else {
                continue;
            };
            let packaged = match digest {
                FileDigest::Md5(d) => d == md5,
                FileDigest::Sha256(d) => d == sha,
            };
            return packaged.then(|| PackagedExe {
                package,
                path,
                layer: Some(id.into()),
            });
        }
        None
    }

    /// The package database of one layer (dpkg's info directory, else an
    /// rpm database), parsed once per version; `None` when the layer has
    /// none or it fails the ownership checks.
    fn layer_index(&self, layer: &Path) -> Option<Arc<PackageIndex>> {
        let dpkg = layer.join(LAYER_DPKG_INFO);
        if let Ok(m) = std::fs::symlink_metadata(&dpkg) {
            if m.is_dir() && trusted_path(&dpkg) {
                return self.cached(&m, || {
                    let mut index = PackageIndex::default();
                    match index.add_dpkg(&dpkg) {
                        Ok(()) => Some(index),
                        Err(e) => {
                            tracing::warn!("cannot read the image layer's dpkg database at {}: {e}; its programs are not recognised as expected secret clients", dpkg.display());
                            None
                        }
                    }
                });
            }
        }
        for rel in LAYER_RPM_DBS {
            let db = layer.join(rel);
            if std::fs::symlink_metadata(&db).is_err() || !trusted_path(&db) {
                continue;
            }
            let Ok((f, m)) = safe_open::open_regular(&db, Links::NoFollow, None) else {
                continue;
            };
            return self.cached(&m, || {
                match rpmdb::read_files_of(&f, &db, |p| {
                    super::package_index::is_program_path(p.trim_start_matches('/'))
                }) {
                    Ok((files, bad)) => {
                        if bad > 0 {
                            tracing::warn!("{bad} package headers in the image layer's rpm database {} could not be parsed; their programs are not recognised", db.display());
                        }
                        let mut index = PackageIndex::default();
                        for (package, path, digest) in files {
                            index.insert(path, package.into(), digest);
                        }
                        Some(index)
                    }
                    Err(e) => {
                        tracing::warn!("{e:#}; its programs are not recognised as expected secret clients");
                        None
                    }
                }
            });
        }
        None
    }

    fn cached(
        &self,
        meta: &std::fs::Metadata,
        load: impl FnOnce() -> Option<PackageIndex>,
    ) -> Option<Arc<PackageIndex>> {
        let key = (meta.dev(), meta.ino(), meta.mtime(), meta.mtime_nsec());
        if let Some(hit) = self.dbs.lock().unwrap().get(&key) {
            return Some(hit.clone());
        }
        let index = Arc::new(load()?);
        self.dbs.lock().unwrap().put(key, index.clone());
        Some(index)
    }
}

/// Whether every component of `path` (absolute, as the agent reaches it)
/// is a real directory or, last, a real file, owned by root and not
/// writable by group or others; a sticky directory may be writable (its
/// entries can be replaced only by their owners: here root).
fn trusted_path(path: &Path) -> bool {
    let mut at = PathBuf::from("/");
    let check = |p: &Path| {
        std::fs::symlink_metadata(p).is_ok_and(|m| {
            let t = m.file_type();
            (t.is_dir() || t.is_file())
                && m.uid() == 0
                && (m.mode() & 0o022 == 0 || (t.is_dir() && m.mode() & 0o1000 != 0))
        })
    };
    if !path.is_absolute() || !check(&at) {
        return false;
    }
    for c in path.components() {
        match c {
            Component::RootDir => continue,
            Component::Normal(n) => at.push(n),
            _ => return false,
        }
        if !check(&at) {
            return false;
        }
    }
    true
}

/// A procfs text file, capped; `None` when the process is gone.
fn read_proc(path: &Path) -> Option<String> {
    let (mut f, _) = safe_open::open_regular(path, Links::NoFollow, None).ok()?;
    let mut buf = Vec::new();
    safe_open::read_all_capped(path, &mut f, MAX_MOUNTINFO_BYTES, |b| {
        buf.extend_from_slice(b)
    })
    .ok()?;
    String::from_utf8(buf).ok()
}

/// The overlay mount (device `dev`) whose mount point holds `path`, the
/// deepest if several do; `None` when the device is no overlay there.
fn find_overlay(mountinfo: &str, dev: u64, path: &str) -> Option<Overlay> {
    let majmin = format!("{}:{}", libc::major(dev), libc::minor(dev));
    let mut best: Option<(usize, Overlay)> = None;
    for m in parse_mountinfo(mountinfo) {
        if m.majmin != majmin || m.fstype != "overlay" {
            continue;
        }
        let Some(inside) = below(path, &m.mount_point) else {
            continue;
        };
        let rel = Path::new(&m.root).join(inside);
        let rel = rel.to_string_lossy().trim_start_matches('/').to_string();
        let mut lowers = Vec::new();
        let mut upper = None;
        for opt in m.super_options.split(',') {
            if let Some(v) = opt.strip_prefix("lowerdir=") {
                // `::` separates data-only layers, which hold no visible path.
                lowers.extend(v.split(':').filter(|l| !l.is_empty()).map(unescape));
            } else if let Some(v) = opt.strip_prefix("lowerdir+=") {
                lowers.push(unescape(v));
            } else if let Some(v) = opt.strip_prefix("upperdir=") {
                upper = Some(unescape(v));
            }
        }
        if best
            .as_ref()
            .is_none_or(|(len, _)| m.mount_point.len() > *len)
        {
            best = Some((m.mount_point.len(), Overlay { rel, lowers, upper }));
        }
    }
    best.map(|(_, o)| o)
}

/// `path` relative to `mount_point` when it lies below it (whole components).
fn below<'a>(path: &'a str, mount_point: &str) -> Option<&'a str> {
    if mount_point == "/" {
        return path.strip_prefix('/');
    }
    path.strip_prefix(mount_point)?.strip_prefix('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = "812 790 0:77 / /run/containerd/io.containerd.runtime.v2.task/k8s.io/abc/rootfs rw,relatime - overlay overlay rw,lowerdir=/var/lib/x/snapshots/12/fs:/var/lib/x/snapshots/11/fs,upperdir=/var/lib/x/snapshots/13/fs,workdir=/var/lib/x/snapshots/13/work,uuid=on\n\
        813 812 0:78 / /run/containerd/io.containerd.runtime.v2.task/k8s.io/abc/rootfs/data rw - overlay overlay rw,lowerdir=/a:/b,upperdir=/c,workdir=/d\n\
        30 1 8:1 / / rw - ext4 /dev/sda1 rw\n";

    #[test]
    fn the_overlay_of_the_exec_d_device_names_its_layers_topmost_first() {
        let dev = libc::makedev(0, 77);
        let o = find_overlay(
            LINE,
            dev,
            "/run/containerd/io.containerd.runtime.v2.task/k8s.io/abc/rootfs/usr/bin/git",
        )
        .unwrap();
        assert_eq!(o.rel, "usr/bin/git");
        assert_eq!(
            o.lowers,
            ["/var/lib/x/snapshots/12/fs", "/var/lib/x/snapshots/11/fs"]
        );
        assert_eq!(o.upper.as_deref(), Some("/var/lib/x/snapshots/13/fs"));
        // Inside the container, the same mount is its `/`.
        let inside = LINE.replace(
            "/run/containerd/io.containerd.runtime.v2.task/k8s.io/abc/rootfs rw",
            "/ rw",
        );
        assert_eq!(
            find_overlay(&inside, dev, "/usr/bin/git").unwrap().rel,
            "usr/bin/git"
        );
        // Another device, or an ext4 file: no overlay.
        assert_eq!(
            find_overlay(LINE, libc::makedev(0, 79), "/usr/bin/git"),
            None
        );
        assert_eq!(
            find_overlay(LINE, libc::makedev(8, 1), "/usr/bin/git"),
            None
        );
        // A path outside the mount point is not on that mount.
        assert_eq!(find_overlay(LINE, dev, "/usr/bin/git"), None);
    }

    #[test]
    fn a_path_with_a_user_writable_or_linked_component_is_not_trusted() {
        assert!(trusted_path(Path::new("/usr/bin")));
        let dir = tempfile::tempdir_in("/var/tmp").unwrap();
        let inner = dir.path().join("layer");
        std::fs::create_dir(&inner).unwrap();
        assert!(
            trusted_path(&inner),
            "root-owned 0700 below sticky /var/tmp"
        );
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(!trusted_path(&inner), "world-writable, not sticky");
        std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o755)).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&inner, &link).unwrap();
        assert!(!trusted_path(&link.join("x")));
        assert!(!trusted_path(Path::new("relative/path")));
    }

    /// A snapshot root with layer `1` holding `usr/bin/git` (and, unless
    /// `db` is false, dpkg's md5sums listing it), and `outside/1` with the
    /// same layer beyond every configured root.
    fn tree(db: bool) -> (tempfile::TempDir, ImageLayers, FileClaim) {
        let base = tempfile::tempdir_in("/var/tmp").unwrap();
        let content = b"#!/bin/true\nan image's program\n";
        for top in ["snapshots", "outside"] {
            let layer = base.path().join(top).join("1/fs");
            std::fs::create_dir_all(layer.join("usr/bin")).unwrap();
            std::fs::write(layer.join("usr/bin/git"), content).unwrap();
            if db {
                let info = layer.join(LAYER_DPKG_INFO);
                std::fs::create_dir_all(&info).unwrap();
                let md5 = hex::encode(<md5::Md5 as md5::Digest>::digest(content));
                std::fs::write(info.join("git.md5sums"), format!("{md5}  usr/bin/git\n")).unwrap();
            }
            std::fs::create_dir_all(base.path().join(top).join("2/fs")).unwrap();
        }
        let cfg = PackagesConfig {
            image_roots: vec![base.path().join("snapshots")],
            ..PackagesConfig::default()
        };
        let claim = FileClaim {
            path: "/merged/usr/bin/git".into(),
            dev: 0,
            ino: 0,
            sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(content)),
        };
        (base, ImageLayers::new(&cfg), claim)
    }

    fn overlay(base: &Path, top: &str) -> Overlay {
        let dir = |l: &str| {
            base.join(top)
                .join(l)
                .join("fs")
                .to_string_lossy()
                .into_owned()
        };
        Overlay {
            rel: "usr/bin/git".into(),
            lowers: vec![dir("1")],
            upper: Some(dir("2")),
        }
    }

    #[test]
    fn an_unmodified_layer_file_listed_by_the_image_s_dpkg_is_vouched_for_with_its_layer() {
        let (base, layers, claim) = tree(true);
        let o = overlay(base.path(), "snapshots");
        let found = layers.vouch(&claim, &o).expect("the image's own git");
        assert_eq!(found.evidence(), "image-layer:1:git:/usr/bin/git");
        // Another content than the layer's: the exec'd version is not the image's.
        let other = FileClaim {
            sha256: "0".repeat(64),
            ..claim.clone()
        };
        assert_eq!(layers.vouch(&other, &o), None);
        // The same layer beyond the configured roots: no evidence.
        assert_eq!(layers.vouch(&claim, &overlay(base.path(), "outside")), None);
        // containerd's compact form for long stacks: layers relative to its
        // snapshots directory, looked up below the configured roots only.
        let relative = Overlay {
            lowers: vec!["1/fs".into()],
            upper: Some("2/fs".into()),
            ..o.clone()
        };
        assert!(layers.vouch(&claim, &relative).is_some(), "{relative:?}");
        let escaping = Overlay {
            lowers: vec!["../outside/1/fs".into()],
            ..relative
        };
        assert_eq!(layers.vouch(&claim, &escaping), None);
        // An upper directory out of the agent's sight: no evidence.
        let hidden = Overlay {
            upper: Some("/nonexistent/upper".into()),
            ..o.clone()
        };
        assert_eq!(layers.vouch(&claim, &hidden), None);
        // Copied up (anything at the path in the upper directory): the container's.
        let upper = base.path().join("snapshots/2/fs/usr/bin");
        std::fs::create_dir_all(&upper).unwrap();
        std::fs::copy(
            base.path().join("snapshots/1/fs/usr/bin/git"),
            upper.join("git"),
        )
        .unwrap();
        assert_eq!(layers.vouch(&claim, &o), None);
    }

    #[test]
    fn a_layer_file_no_database_lists_or_that_others_may_write_is_not_vouched_for() {
        let (base, layers, claim) = tree(false);
        let o = overlay(base.path(), "snapshots");
        assert_eq!(layers.vouch(&claim, &o), None, "no package database");
        let (base, layers, claim) = tree(true);
        let o = overlay(base.path(), "snapshots");
        assert!(layers.vouch(&claim, &o).is_some(), "positive control");
        use std::os::unix::fs::PermissionsExt;
        let bin = base.path().join("snapshots/1/fs/usr/bin");
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert_eq!(
            layers.vouch(&claim, &o),
            None,
            "a world-writable layer directory"
        );
    }

    #[test]
    fn an_rpm_database_in_a_lower_layer_vouches_for_a_program_of_another_layer() {
        use crate::identity::rpmdb::testing::{package, write_db};
        let (base, layers, claim) = tree(false);
        let db_layer = base.path().join("snapshots/0/fs");
        std::fs::create_dir_all(db_layer.join("var/lib/rpm")).unwrap();
        write_db(
            &db_layer.join("var/lib/rpm/rpmdb.sqlite"),
            &[package("git-core", "/usr/bin/", &[("git", &claim.sha256)])],
        );
        let mut o = overlay(base.path(), "snapshots");
        o.lowers.push(db_layer.to_string_lossy().into_owned());
        let found = layers
            .vouch(&claim, &o)
            .expect("listed by the base layer's rpm");
        assert_eq!(found.evidence(), "image-layer:0:git-core:/usr/bin/git");
    }
}
