//! The package databases' index of executables (dpkg md5sums, rpm headers) and the check that one file is a package's unmodified file.
//!
//! Built on the blocking pool by [`crate::identity::packages`], which also
//! caches the verdicts; the container image layers' own databases are read
//! with the same parsers (see [`crate::identity::image_layers`]).

use std::{
    collections::HashMap,
    fs::File,
    io::Read,
    os::unix::fs::{MetadataExt, OpenOptionsExt},
    path::{Path, PathBuf},
    sync::Arc,
};

use md5::{Digest, Md5};
use serde::Deserialize;
use sha2::Sha256;

use crate::identity::rpmdb::{self, FileDigest};

/// Where dpkg keeps its per-package file lists and checksums.
pub const DPKG_INFO: &str = "/var/lib/dpkg/info";

/// The package databases whose programs can be expected secret clients.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PackagesConfig {
    /// Where the host's `/` is as the agent sees it: `/` for a host
    /// install; in a container, the directory where the host's `/usr` and
    /// package databases are mounted. Database paths and the programs'
    /// paths are looked up below it.
    pub root: PathBuf,
    /// dpkg's info directory (host path).
    pub dpkg_info: PathBuf,
    /// rpm SQLite databases (host paths); those that do not exist are skipped.
    pub rpm_databases: Vec<PathBuf>,
    /// Container runtimes' overlayfs snapshot directories (host paths): a
    /// program from an image layer below one of them is vouched for by the
    /// image's own package database.
    pub image_roots: Vec<PathBuf>,
}

impl Default for PackagesConfig {
    fn default() -> Self {
        Self {
            root: PathBuf::from("/"),
            dpkg_info: PathBuf::from(DPKG_INFO),
            rpm_databases: vec![
                PathBuf::from("/var/lib/rpm/rpmdb.sqlite"),
                PathBuf::from("/usr/lib/sysimage/rpm/rpmdb.sqlite"),
            ],
            image_roots: vec![
                PathBuf::from(
                    "/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots",
                ),
                PathBuf::from("/var/lib/containers/storage/overlay"),
                PathBuf::from("/var/lib/docker/overlay2"),
            ],
        }
    }
}

impl PackagesConfig {
    /// Every path must be absolute and plain: a relative root or one with
    /// `..` would make the trust checks about some other directory.
    pub fn validate(&self) -> Result<(), String> {
        let named = std::iter::once(("packages.root", &self.root))
            .chain(std::iter::once(("packages.dpkg_info", &self.dpkg_info)))
            .chain(
                self.rpm_databases
                    .iter()
                    .map(|p| ("packages.rpm_databases", p)),
            )
            .chain(self.image_roots.iter().map(|p| ("packages.image_roots", p)));
        for (key, p) in named {
            let plain = p.components().all(|c| {
                matches!(
                    c,
                    std::path::Component::RootDir | std::path::Component::Normal(_)
                )
            });
            if !p.is_absolute() || !plain {
                return Err(format!(
                    "{key}: {} is not an absolute path without `.` or `..`; \
                     give the host path from /, e.g. /var/lib/docker/overlay2",
                    p.display()
                ));
            }
        }
        Ok(())
    }

    /// `host_path` as the agent reaches it.
    pub(super) fn local(&self, host_path: &Path) -> PathBuf {
        self.root
            .join(host_path.strip_prefix("/").unwrap_or(host_path))
    }

    /// What to stat to notice a database change: dpkg's directory, each rpm
    /// database and its write-ahead log.
    pub(super) fn watched(&self) -> Vec<PathBuf> {
        let mut out = vec![self.local(&self.dpkg_info)];
        for db in &self.rpm_databases {
            let local = self.local(db);
            let mut wal = local.clone().into_os_string();
            wal.push("-wal");
            out.push(local);
            out.push(wal.into());
        }
        out
    }
}
/// Packaged files larger than this are not verified (no client is this big).
pub(super) const MAX_VERIFY_BYTES: u64 = 512 << 20;

/// An executable proven to be an installed package's unmodified file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackagedExe {
    pub package: Arc<str>,
    /// The path dpkg installed it at (absolute; in a container, inside
    /// its root file system).
    pub path: String,
    /// The image layer (snapshot id) whose package database vouched for
    /// it; `None` for the host's packages.
    pub layer: Option<Arc<str>>,
}

impl PackagedExe {
    /// The `expected_client` evidence: `<package>:<path>` for the host's
    /// packages, `image-layer:<snapshot id>:<package>:<path>` for an image's.
    pub fn evidence(&self) -> String {
        match &self.layer {
            Some(id) => format!("image-layer:{id}:{}:{}", self.package, self.path),
            None => format!("{}:{}", self.package, self.path),
        }
    }

    /// Where the program comes from, for summaries.
    pub fn origin(&self) -> String {
        match &self.layer {
            Some(id) => format!("package {} in image layer {id}", self.package),
            None => format!("package {}", self.package),
        }
    }

    /// The program's name: the file name the package gave it.
    pub fn name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }
}

/// Packaged executables by absolute (host) path.
#[derive(Debug)]
pub struct PackageIndex {
    files: HashMap<String, (Arc<str>, FileDigest)>,
    /// See [`PackagesConfig::root`].
    root: PathBuf,
}

impl Default for PackageIndex {
    fn default() -> Self {
        Self {
            files: HashMap::new(),
            root: PathBuf::from("/"),
        }
    }
}

impl PackageIndex {
    /// Reads every database `cfg` names that exists; a database that
    /// exists and cannot be read is named in the returned problems.
    pub fn load(cfg: &PackagesConfig) -> (PackageIndex, Vec<String>) {
        let mut index = PackageIndex {
            files: HashMap::new(),
            root: cfg.root.clone(),
        };
        let mut problems = Vec::new();
        let dpkg = cfg.local(&cfg.dpkg_info);
        if dpkg.exists() {
            if let Err(e) = index.add_dpkg(&dpkg) {
                problems.push(format!(
                    "cannot read the dpkg database at {}: {e}",
                    dpkg.display()
                ));
            }
        }
        for db in &cfg.rpm_databases {
            let local = cfg.local(db);
            if !local.exists() {
                continue;
            }
            match rpmdb::read_files(&local, |p| is_program_path(p.trim_start_matches('/'))) {
                Ok((files, bad)) => {
                    for (package, path, digest) in files {
                        index.files.insert(path, (package.into(), digest));
                    }
                    if bad > 0 {
                        problems.push(format!(
                            "{bad} package headers in the rpm database {} could not be parsed; \
                             their programs are not recognised",
                            local.display()
                        ));
                    }
                }
                Err(e) => problems.push(format!("{e:#}")),
            }
        }
        (index, problems)
    }

    /// Records one packaged file.
    pub(super) fn insert(&mut self, path: String, package: Arc<str>, digest: FileDigest) {
        self.files.insert(path, (package, digest));
    }

    /// Adds every `*.md5sums` in `dir`, keeping the files in program
    /// directories (a bin, sbin or libexec directory, and dot-less names under
    /// lib such as `git-core/git` or `openssh/sshd-session`).
    pub(super) fn add_dpkg(&mut self, dir: &Path) -> std::io::Result<()> {
        let files = &mut self.files;
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".md5sums")) else {
                continue;
            };
            // Multi-arch packages are named `pkg:arch`.
            let package: Arc<str> = stem.split(':').next().unwrap_or(stem).into();
            let Ok(text) = read_capped(&entry.path(), 16 << 20) else {
                continue;
            };
            for line in text.lines() {
                let Some((md5, rel)) = line.split_once("  ") else {
                    continue;
                };
                let mut digest = [0u8; 16];
                if !is_program_path(rel) || hex::decode_to_slice(md5, &mut digest).is_err() {
                    continue;
                }
                files.insert(
                    format!("/{rel}"),
                    (package.clone(), FileDigest::Md5(digest)),
                );
            }
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The package's record for `path`, trying the merged-/usr alias too
    /// (dpkg may list `bin/su` where the kernel reports `/usr/bin/su`).
    pub(super) fn lookup(&self, path: &str) -> Vec<(String, Arc<str>, FileDigest)> {
        let mut out = Vec::new();
        for candidate in [Some(path.to_string()), usr_alias(path)]
            .into_iter()
            .flatten()
        {
            if let Some((pkg, md5)) = self.files.get(&candidate) {
                out.push((candidate, pkg.clone(), *md5));
            }
        }
        out
    }
}

fn read_capped(path: &Path, cap: u64) -> std::io::Result<String> {
    let f = File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut s = String::new();
    f.take(cap).read_to_string(&mut s)?;
    Ok(s)
}

pub(super) fn is_program_path(rel: &str) -> bool {
    let rel = rel.strip_prefix("usr/").unwrap_or(rel);
    let base = rel.rsplit('/').next().unwrap_or(rel);
    ["bin/", "sbin/", "libexec/", "games/"]
        .iter()
        .any(|d| rel.starts_with(d))
        || (rel.starts_with("lib") && !base.contains('.'))
}

/// `/usr/bin/x` <-> `/bin/x` (and sbin, lib*), for merged-/usr systems.
fn usr_alias(path: &str) -> Option<String> {
    const MERGED: [&str; 4] = ["bin/", "sbin/", "lib/", "lib64/"];
    if let Some(rest) = path.strip_prefix("/usr/") {
        return MERGED
            .iter()
            .any(|d| rest.starts_with(d))
            .then(|| format!("/{rest}"));
    }
    let rest = path.strip_prefix('/')?;
    MERGED
        .iter()
        .any(|d| rest.starts_with(d))
        .then(|| format!("/usr/{rest}"))
}

/// The file a process's identity names: the exec'd binary or a script.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileClaim {
    pub(super) path: String,
    pub(super) dev: u64,
    pub(super) ino: u64,
    pub(super) sha256: String,
}

/// Checks `claim` against the index: the package's file at its path is the
/// claimed inode, owned by root, not writable by group or others, with the
/// package's digest and the claimed SHA-256 (read in one pass).
pub(super) fn verify_file(index: &PackageIndex, claim: &FileClaim) -> Option<PackagedExe> {
    for (path, package, digest) in index.lookup(&claim.path) {
        let local = index.root.join(path.trim_start_matches('/'));
        let Ok(f) = File::options()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&local)
        else {
            continue;
        };
        let Ok(before) = f.metadata() else { continue };
        if !before.is_file()
            || before.dev() != claim.dev
            || before.ino() != claim.ino
            || before.uid() != 0
            || before.mode() & 0o022 != 0
            || before.size() > MAX_VERIFY_BYTES
        {
            continue;
        }
        let Ok((got_md5, got_sha)) = digests(&f) else {
            continue;
        };
        let unchanged = f.metadata().is_ok_and(|after| {
            after.size() == before.size()
                && after.mtime() == before.mtime()
                && after.mtime_nsec() == before.mtime_nsec()
                && after.ctime() == before.ctime()
                && after.ctime_nsec() == before.ctime_nsec()
        });
        let packaged = match digest {
            FileDigest::Md5(md5) => got_md5 == md5,
            FileDigest::Sha256(sha) => got_sha == sha,
        };
        if unchanged && packaged && hex::encode(got_sha) == claim.sha256 {
            return Some(PackagedExe {
                package,
                path,
                layer: None,
            });
        }
    }
    None
}

pub(super) fn digests(mut f: &File) -> std::io::Result<([u8; 16], [u8; 32])> {
    let mut md5 = Md5::new();
    let mut sha = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        md5.update(&buf[..n]);
        sha.update(&buf[..n]);
    }
    Ok((md5.finalize().into(), sha.finalize().into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relative_or_dotted_image_root_is_refused_naming_the_key() {
        assert_eq!(PackagesConfig::default().validate(), Ok(()));
        for bad in ["var/lib/docker/overlay2", "/var/lib/../tmp"] {
            let cfg = PackagesConfig {
                image_roots: vec![PathBuf::from(bad)],
                ..PackagesConfig::default()
            };
            let err = cfg.validate().unwrap_err();
            assert!(err.starts_with("packages.image_roots: "), "{err}");
            assert!(err.contains(bad), "{err}");
        }
    }

    #[test]
    fn program_paths_are_kept_and_data_files_are_not() {
        for p in [
            "usr/bin/ssh-keygen",
            "bin/su",
            "sbin/unix_chkpwd",
            "usr/lib/git-core/git",
            "usr/lib/openssh/sshd-session",
            "usr/libexec/x",
        ] {
            assert!(is_program_path(p), "{p}");
        }
        for p in [
            "usr/share/man/man1/ssh-keygen.1.gz",
            "usr/lib/x86_64-linux-gnu/libssl.so.3",
            "etc/passwd",
        ] {
            assert!(!is_program_path(p), "{p}");
        }
        assert_eq!(usr_alias("/usr/bin/su").as_deref(), Some("/bin/su"));
        assert_eq!(usr_alias("/sbin/x").as_deref(), Some("/usr/sbin/x"));
        assert_eq!(usr_alias("/usr/share/x"), None);
        assert_eq!(usr_alias("/tmp/x"), None);
    }

    #[test]
    fn a_copy_or_an_edited_file_is_not_the_package_s_file() {
        let dir = tempfile::tempdir().unwrap();
        let prog = dir.path().join("prog");
        std::fs::write(&prog, b"#!/bin/true\nreal program\n").unwrap();
        let mut index = PackageIndex::default();
        let md5 = FileDigest::Md5(Md5::digest(b"#!/bin/true\nreal program\n").into());
        index
            .files
            .insert(prog.to_str().unwrap().into(), ("demo".into(), md5));
        let meta = std::fs::metadata(&prog).unwrap();
        let sha = hex::encode(Sha256::digest(b"#!/bin/true\nreal program\n"));
        let claim = FileClaim {
            path: prog.to_str().unwrap().into(),
            dev: meta.dev(),
            ino: meta.ino(),
            sha256: sha.clone(),
        };
        let ok = verify_file(&index, &claim).expect("the package's own file");
        assert_eq!((&*ok.package, ok.name()), ("demo", "prog"));
        // Another inode at another path: not in the package.
        let copy = dir.path().join("copy");
        std::fs::copy(&prog, &copy).unwrap();
        let cm = std::fs::metadata(&copy).unwrap();
        let copied = FileClaim {
            path: copy.to_str().unwrap().into(),
            dev: cm.dev(),
            ino: cm.ino(),
            sha256: sha.clone(),
        };
        assert_eq!(verify_file(&index, &copied), None);
        // The claimed hash is not the content: a version the kernel did not run.
        let other = FileClaim {
            sha256: "0".repeat(64),
            ..claim.clone()
        };
        assert_eq!(verify_file(&index, &other), None);
        // Edited in place: the MD5 no longer matches.
        std::fs::write(&prog, b"#!/bin/true\nedited program\n").unwrap();
        let edited = FileClaim {
            sha256: hex::encode(Sha256::digest(b"#!/bin/true\nedited program\n")),
            ..claim
        };
        assert_eq!(verify_file(&index, &edited), None);
    }

    #[test]
    fn the_host_s_dpkg_database_names_its_programs() {
        let (index, problems) = PackageIndex::load(&PackagesConfig::default());
        assert!(problems.is_empty(), "{problems:?}");
        let found = index.lookup("/usr/bin/ssh-keygen");
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(&*found[0].1, "openssh-client");
        // su is listed as bin/su on merged-/usr Debian 12.
        assert!(!index.lookup("/usr/bin/su").is_empty());
        assert!(index.lookup("/usr/share/doc/git/copyright").is_empty());
    }

    #[test]
    fn an_rpm_database_below_the_configured_root_vouches_for_its_programs() {
        use crate::identity::rpmdb::testing::{package, write_db};
        let host = tempfile::tempdir().unwrap();
        let bin = host.path().join("usr/bin");
        std::fs::create_dir_all(&bin).unwrap();
        let content = b"#!/bin/true\nan rpm program\n";
        std::fs::write(bin.join("ssh"), content).unwrap();
        std::fs::create_dir_all(host.path().join("var/lib/rpm")).unwrap();
        let sha = hex::encode(Sha256::digest(content));
        let other = "00".repeat(32);
        write_db(
            &host.path().join("var/lib/rpm/rpmdb.sqlite"),
            &[
                package("openssh-clients", "/usr/bin/", &[("ssh", &sha)]),
                package("decoy", "/usr/bin/", &[("scp", &other)]),
                b"not a header".to_vec(),
            ],
        );
        let cfg = PackagesConfig {
            root: host.path().to_path_buf(),
            ..PackagesConfig::default()
        };
        let (index, problems) = PackageIndex::load(&cfg);
        assert_eq!(index.len(), 2, "{:?}", index.files);
        assert_eq!(problems.len(), 1, "the bad header is named: {problems:?}");
        assert!(problems[0].contains("1 package headers"), "{problems:?}");
        let meta = std::fs::metadata(bin.join("ssh")).unwrap();
        let claim = FileClaim {
            // The kernel's path: a host path, found below the root.
            path: "/usr/bin/ssh".into(),
            dev: meta.dev(),
            ino: meta.ino(),
            sha256: sha.clone(),
        };
        let ok = verify_file(&index, &claim).expect("the rpm package's own file");
        assert_eq!((&*ok.package, ok.name()), ("openssh-clients", "ssh"));
        // Edited: the package's SHA-256 no longer matches.
        std::fs::write(bin.join("ssh"), b"#!/bin/true\nedited\n").unwrap();
        let edited = FileClaim {
            sha256: hex::encode(Sha256::digest(b"#!/bin/true\nedited\n")),
            ..claim
        };
        assert_eq!(verify_file(&index, &edited), None);
    }
}
