//! Finding the catalogued files already on a node, with a walk guided by the patterns.

use std::{
    borrow::Cow,
    collections::{BTreeMap, BTreeSet, HashSet},
    ffi::{OsStr, OsString},
    fs,
    os::unix::fs::MetadataExt,
    path::{Component, Path, PathBuf},
};

use super::{
    pattern::{is_default_home, ComponentMatcher, PatternTrie},
    Catalog,
};
use crate::{
    paths::normalize,
    safe_open::{self, Links},
};

/// How much of a file [`Catalog::discover`] reads for a content check. Every
/// marker the built-in checks look for sits near the top of its file; a cap
/// keeps a multi-gigabyte `.env`-named dump from stalling start-up.
pub const CONTENT_PEEK_BYTES: usize = 64 * 1024;

impl Catalog {
    /// The catalogued files that exist under `roots`, as (path, entry id),
    /// sorted by path. See [`Catalog::discover_report`].
    pub fn discover(&self, roots: &DiscoverRoots) -> Vec<(PathBuf, String)> {
        self.discover_report(roots).found
    }

    /// Walks the file system for existing catalogued files.
    ///
    /// The walk follows the patterns: literal components are looked up, not
    /// listed, so `~/.aws/credentials` costs one `stat` per home; only `**`
    /// and the "anywhere" patterns list whole trees, within
    /// [`DiscoverRoots::max_depth`] / [`DiscoverRoots::anywhere_max_depth`].
    /// Symlinked directories are never entered (they would escape `root` or
    /// loop); a symlinked file is resolved inside `root` and reported by its
    /// real path, which is the one the kernel reports when it is opened.
    /// A file is classified by that real path: a catalogued name that is a
    /// link (`~/.pgpass -> /etc/hostname`) lends its entry to the target only
    /// when the target is owned by the owner of the directory holding the
    /// link, which nobody else can write (see [`DiscoverReport::untrusted_links`]).
    /// `/proc`, `/sys` and `/dev` are never walked. Files whose entry has a
    /// content check are read (at most [`CONTENT_PEEK_BYTES`]) when
    /// [`DiscoverRoots::check_content`] is set, and dropped if it fails.
    pub fn discover_report(&self, roots: &DiscoverRoots) -> DiscoverReport {
        let mut extra_homes = roots.extra_homes.clone();
        if roots.passwd_homes {
            extra_homes.extend(passwd_homes(&roots.root));
        }
        let extra_homes: Vec<PathBuf> = extra_homes
            .iter()
            .filter_map(|h| normalize(h))
            .filter(|h| h.as_os_str() != "/" && !is_pseudo_fs(h))
            .collect();
        let catalog: Cow<'_, Catalog> = if extra_homes
            .iter()
            .all(|h| self.extra_homes().contains(h) || is_default_home(h))
        {
            Cow::Borrowed(self)
        } else {
            match self.with_homes(&extra_homes) {
                Ok(c) => Cow::Owned(c),
                Err(_) => Cow::Borrowed(self),
            }
        };
        let mut walker = Walker {
            catalog: &catalog,
            roots,
            visited: 0,
            truncated: false,
            unreadable: 0,
            content_mismatch: 0,
            untrusted_links: 0,
            seen: HashSet::new(),
            found: BTreeMap::new(),
        };

        let mut anywhere_bases: BTreeSet<PathBuf> = BTreeSet::new();
        anywhere_bases.insert(PathBuf::from("/root"));
        if let Ok(dir) = fs::read_dir(walker.actual(Path::new("/home"))) {
            for child in dir.flatten() {
                if child.file_type().is_ok_and(|t| t.is_dir()) {
                    anywhere_bases.insert(Path::new("/home").join(child.file_name()));
                }
            }
        }
        anywhere_bases.extend(catalog.extra_homes().iter().cloned());
        anywhere_bases.extend(roots.anywhere_dirs.iter().filter_map(|d| normalize(d)));

        // Patterns are merged into a trie and followed component by
        // component, so a directory shared by many patterns (`/home/*`) is
        // listed once. The "anywhere" patterns instead share one listing of
        // each home and anywhere dir, matched against the whole catalog.
        let mut guided = PatternTrie::default();
        let mut deep: BTreeMap<PathBuf, usize> = BTreeMap::new();
        for pattern in catalog.expanded().iter().flatten() {
            if pattern.starts_with("**/") {
                let dirs_after = pattern.split('/').filter(|c| *c != "**").count() - 1;
                for base in &anywhere_bases {
                    let depth = deep.entry(base.clone()).or_default();
                    *depth = (*depth).max(roots.anywhere_max_depth + dirs_after);
                }
            } else {
                guided.insert(pattern.split('/').filter(|c| !c.is_empty()));
            }
        }

        walker.guided(Path::new("/"), &guided, roots.max_depth);
        // A deep walk already covered by an enclosing deep walk is skipped.
        let jobs: Vec<(PathBuf, usize)> = deep.into_iter().collect();
        for (base, depth) in &jobs {
            let covered = jobs.iter().any(|(outer, outer_depth)| {
                base != outer
                    && base.starts_with(outer)
                    && *outer_depth
                        >= depth + (base.components().count() - outer.components().count())
            });
            if !covered && !walker.truncated {
                walker.deep(base, *depth);
            }
        }

        DiscoverReport {
            found: walker.found.into_iter().collect(),
            visited: walker.visited,
            truncated: walker.truncated,
            unreadable: walker.unreadable,
            content_mismatch: walker.content_mismatch,
            untrusted_links: walker.untrusted_links,
        }
    }
}

/// Where and how far [`Catalog::discover`] looks.
#[derive(Clone, Debug)]
pub struct DiscoverRoots {
    /// The file system root the catalog's absolute paths are relative to: `/`
    /// on a host, the host mount (e.g. `/host`) in a container, a temporary
    /// directory in tests. Reported paths are relative to it (they start with
    /// `/` and do not contain it).
    pub root: PathBuf,
    /// Also treat the home directories listed in `<root>/etc/passwd` as homes.
    pub passwd_homes: bool,
    /// Further homes, as paths inside `root`.
    pub extra_homes: Vec<PathBuf>,
    /// Directories, besides the homes, searched for the "anywhere" (`**/`) patterns.
    pub anywhere_dirs: Vec<PathBuf>,
    /// How many directory levels a `**` inside a pattern may descend.
    pub max_depth: usize,
    /// How many directory levels below a home or an anywhere dir the
    /// "anywhere" patterns are searched.
    pub anywhere_max_depth: usize,
    /// The most directory entries examined in total; the walk stops there and
    /// says so in [`DiscoverReport::truncated`].
    pub max_entries: usize,
    /// Read the files whose entry has a content check and keep only those that pass.
    pub check_content: bool,
}

impl DiscoverRoots {
    /// The host's own file system.
    pub fn host() -> DiscoverRoots {
        DiscoverRoots::under("/")
    }

    /// A file system mounted at `root`, with the default limits.
    pub fn under(root: impl Into<PathBuf>) -> DiscoverRoots {
        DiscoverRoots {
            root: root.into(),
            passwd_homes: true,
            extra_homes: Vec::new(),
            anywhere_dirs: ["/srv", "/opt", "/app", "/var/www"]
                .iter()
                .map(PathBuf::from)
                .collect(),
            max_depth: 8,
            anywhere_max_depth: 5,
            max_entries: 200_000,
            check_content: true,
        }
    }
}

impl Default for DiscoverRoots {
    fn default() -> Self {
        DiscoverRoots::host()
    }
}

/// What [`Catalog::discover_report`] found and how complete the search was.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiscoverReport {
    /// (real path inside the root, entry id), sorted by path.
    pub found: Vec<(PathBuf, String)>,
    /// Directory entries examined.
    pub visited: usize,
    /// The walk hit [`DiscoverRoots::max_entries`] and stopped early.
    pub truncated: bool,
    /// Catalogued paths that could not be resolved or read; kept in `found`
    /// when only their content could not be read.
    pub unreadable: usize,
    /// Catalogued paths whose content check failed (left out of `found`).
    pub content_mismatch: usize,
    /// Catalogued names that are links to an uncatalogued file someone else
    /// owns (left out of `found`): anyone may name a link `.pgpass`, and the
    /// file it points at must not become a secret for that.
    pub untrusted_links: usize,
}

/// Home directories from `<root>/etc/passwd` that `/root` and `/home/*` do not
/// already cover: service accounts such as `/var/lib/postgresql`. Homes with
/// a single component (`/`, `/bin`, `/nonexistent`) and those under `/proc`,
/// `/sys`, `/dev`, `/usr` are left out: none is a place people keep
/// credentials, and `/` would turn the "anywhere" search into a full walk.
pub fn passwd_homes(root: &Path) -> Vec<PathBuf> {
    let Ok(passwd) = fs::read(root.join("etc/passwd")) else {
        return Vec::new();
    };
    let mut homes = BTreeSet::new();
    for line in String::from_utf8_lossy(&passwd).lines() {
        let Some(home) = line.split(':').nth(5).and_then(|h| normalize(Path::new(h))) else {
            continue;
        };
        // A home reached through a symlink (`/home -> /var/home`) is opened,
        // and reported by the kernel, under its real path.
        let Some(real) = resolve_in_root(root, &home) else {
            continue;
        };
        if real.components().count() < 3
            || is_default_home(&real)
            || ["/proc", "/sys", "/dev", "/usr"]
                .iter()
                .any(|p| real.starts_with(p))
            || real.to_str().is_none()
        {
            continue;
        }
        let actual = root.join(real.strip_prefix("/").unwrap_or(&real));
        if fs::symlink_metadata(&actual).is_ok_and(|m| m.is_dir()) {
            homes.insert(real);
        }
    }
    homes.into_iter().collect()
}

const SKIP_DIRS: &[&str] = &[
    // Large trees of downloaded or generated files where nobody keeps a
    // credential file; every catalogued file inside them is reached by a
    // literal pattern instead.
    "node_modules",
    ".git",
    ".hg",
    ".svn",
    "__pycache__",
    ".cache",
    ".npm",
    ".cargo",
    ".rustup",
    ".m2",
    ".gradle",
    ".local",
];

struct Walker<'a> {
    catalog: &'a Catalog,
    roots: &'a DiscoverRoots,
    visited: usize,
    truncated: bool,
    unreadable: usize,
    content_mismatch: usize,
    untrusted_links: usize,
    seen: HashSet<PathBuf>,
    found: BTreeMap<PathBuf, String>,
}

impl Walker<'_> {
    fn actual(&self, logical: &Path) -> PathBuf {
        self.roots
            .root
            .join(logical.strip_prefix("/").unwrap_or(logical))
    }

    fn count(&mut self) -> bool {
        if self.visited >= self.roots.max_entries {
            self.truncated = true;
            return false;
        }
        self.visited += 1;
        true
    }

    /// Follows the patterns of `node` from `dir`: literal components are
    /// looked up, glob components list the directory (once for all of them),
    /// `**` descends at most `deep_left` more directory levels.
    fn guided(&mut self, dir: &Path, node: &PatternTrie, deep_left: usize) {
        if is_pseudo_fs(dir) || self.truncated {
            return;
        }
        let mut listing: Option<Vec<(OsString, fs::FileType)>> = None;
        for (comp, child) in &node.children {
            if self.truncated {
                return;
            }
            match &child.matcher {
                ComponentMatcher::AnyDepth => self.any_depth(dir, child, deep_left),
                ComponentMatcher::Never => {}
                ComponentMatcher::Literal => {
                    if !self.count() {
                        return;
                    }
                    let path = dir.join(comp);
                    if let Ok(meta) = fs::symlink_metadata(self.actual(&path)) {
                        self.step(&path, meta.file_type(), child, deep_left);
                    }
                }
                ComponentMatcher::Glob(matcher) => {
                    let entries = match &listing {
                        Some(entries) => entries.clone(),
                        None => listing.insert(self.list(dir)).clone(),
                    };
                    for (name, file_type) in entries {
                        if matcher.is_match(Path::new(&name)) {
                            self.step(&dir.join(&name), file_type, child, deep_left);
                        }
                    }
                }
            }
        }
    }

    /// `path` matched the component of `node`: a file ends a pattern, a real
    /// directory (never a symlink) continues the ones that go deeper.
    fn step(&mut self, path: &Path, file_type: fs::FileType, node: &PatternTrie, deep_left: usize) {
        if file_type.is_dir() {
            if !node.children.is_empty() {
                self.guided(path, node, deep_left);
            }
        } else if node.terminal {
            self.candidate(path);
        }
    }

    /// `node` follows a `**`: try it at `dir` and in every directory below,
    /// down to `deep_left` levels.
    fn any_depth(&mut self, dir: &Path, node: &PatternTrie, deep_left: usize) {
        self.guided(dir, node, deep_left);
        if deep_left == 0 {
            return;
        }
        for (name, file_type) in self.list(dir) {
            if file_type.is_dir() && !is_skipped_dir(&name) {
                self.any_depth(&dir.join(name), node, deep_left - 1);
            }
        }
    }

    /// The entries of `dir` with their types (symlinks not followed), each
    /// counted against the budget.
    fn list(&mut self, dir: &Path) -> Vec<(OsString, fs::FileType)> {
        let Ok(listing) = fs::read_dir(self.actual(dir)) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for child in listing.flatten() {
            if !self.count() {
                break;
            }
            if let Ok(file_type) = child.file_type() {
                out.push((child.file_name(), file_type));
            }
        }
        out
    }

    /// Lists everything under `base` down to `depth` levels and keeps what
    /// the catalog matches.
    fn deep(&mut self, base: &Path, depth: usize) {
        // The base itself must be reachable without crossing a symlink.
        let mut prefix = PathBuf::from("/");
        for comp in base.components().skip(1) {
            prefix.push(comp);
            match fs::symlink_metadata(self.actual(&prefix)) {
                Ok(m) if m.is_dir() => {}
                _ => return,
            }
        }
        let mut stack = vec![(base.to_path_buf(), depth)];
        while let Some((dir, left)) = stack.pop() {
            if is_pseudo_fs(&dir) || self.truncated {
                continue;
            }
            for (name, file_type) in self.list(&dir) {
                let path = dir.join(&name);
                if file_type.is_dir() {
                    if left > 0 && !is_skipped_dir(&name) {
                        stack.push((path, left - 1));
                    }
                } else if self.catalog.match_path(&path).is_some() {
                    self.candidate(&path);
                }
            }
        }
    }

    fn candidate(&mut self, path: &Path) {
        let Some(real) = resolve_in_root(&self.roots.root, path) else {
            self.unreadable += 1;
            return;
        };
        // The same file is reached through several patterns and walks; judge it once.
        if is_pseudo_fs(&real) || !self.seen.insert(real.clone()) {
            return;
        }
        let entry = match self.catalog.match_path(&real) {
            Some(e) => e,
            None => match self.catalog.match_path(path) {
                Some(e) if self.link_trusted(path, &real) => e,
                Some(_) => {
                    self.untrusted_links += 1;
                    return;
                }
                None => return,
            },
        };
        let actual = self.actual(&real);
        match fs::symlink_metadata(&actual) {
            Ok(m) if m.is_file() => {}
            // Directories, FIFOs, sockets, devices: not a secret file, and a
            // FIFO would block the content read.
            Ok(_) => return,
            Err(_) => {
                self.unreadable += 1;
                return;
            }
        }
        if self.roots.check_content && entry.content.is_some() {
            match read_peek(&actual) {
                Some(head) if !self.catalog.content_matches(entry, &head) => {
                    self.content_mismatch += 1;
                    return;
                }
                Some(_) => {}
                None => self.unreadable += 1,
            }
        }
        self.found.insert(real, entry.id.clone());
    }

    /// Whether the catalogued name `logical`, which leads to the uncatalogued
    /// `real`, may lend its entry to it: the directory holding the name is
    /// writable by its owner alone (no group or other write bit) and that
    /// owner also owns `real`. A user's own dotfiles linked into their home
    /// pass; a link in a home to a file of root or of another user does not.
    fn link_trusted(&self, logical: &Path, real: &Path) -> bool {
        let Some(dir) = logical
            .parent()
            .and_then(|p| resolve_in_root(&self.roots.root, p))
        else {
            return false;
        };
        match (
            fs::metadata(self.actual(&dir)),
            fs::symlink_metadata(self.actual(real)),
        ) {
            (Ok(dir), Ok(file)) => dir.mode() & 0o022 == 0 && dir.uid() == file.uid(),
            _ => false,
        }
    }
}

fn read_peek(path: &Path) -> Option<Vec<u8>> {
    // The path was resolved already: a symlink now is a race, and a FIFO
    // swapped in after the type check must not hang start-up.
    let (mut file, _) = safe_open::open_regular(path, Links::NoFollow, None).ok()?;
    safe_open::read_prefix(path, &mut file, CONTENT_PEEK_BYTES as u64).ok()
}

/// Resolves the symlinks of `logical` as if `root` were `/`: absolute link
/// targets are taken relative to `root` and `..` never climbs above it.
fn resolve_in_root(root: &Path, logical: &Path) -> Option<PathBuf> {
    const MAX_LINKS: usize = 40;
    let mut pending: Vec<std::ffi::OsString> = logical
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    let mut resolved = PathBuf::from("/");
    let mut links = 0;
    while let Some(comp) = pending.pop() {
        if comp == ".." {
            resolved.pop();
            continue;
        }
        let candidate = resolved.join(&comp);
        let actual = root.join(candidate.strip_prefix("/").ok()?);
        let meta = fs::symlink_metadata(&actual).ok()?;
        if !meta.file_type().is_symlink() {
            resolved = candidate;
            continue;
        }
        links += 1;
        if links > MAX_LINKS {
            return None;
        }
        let target = fs::read_link(&actual).ok()?;
        if target.is_absolute() {
            resolved = PathBuf::from("/");
        }
        for c in target.components().rev() {
            match c {
                Component::Normal(n) => pending.push(n.to_os_string()),
                Component::ParentDir => pending.push("..".into()),
                _ => {}
            }
        }
    }
    Some(resolved)
}

fn is_pseudo_fs(path: &Path) -> bool {
    ["/proc", "/sys", "/dev"]
        .iter()
        .any(|p| path.starts_with(p))
}

fn is_skipped_dir(name: &OsStr) -> bool {
    name.to_str().is_some_and(|n| SKIP_DIRS.contains(&n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::catalog::testkeys::{pem, private_pem};

    fn write(root: &Path, path: &str, content: &str) {
        let full = root.join(path.trim_start_matches('/'));
        fs::create_dir_all(full.parent().unwrap()).unwrap();
        fs::write(full, content).unwrap();
    }

    fn symlink(root: &Path, link: &str, target: &str) {
        let full = root.join(link.trim_start_matches('/'));
        fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, full).unwrap();
    }

    fn fake_root() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let key = private_pem("OPENSSH ");
        write(
            root,
            "/etc/passwd",
            "root:x:0:0:root:/root:/bin/bash\n\
            daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
            nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n\
            postgres:x:110:118::/var/lib/postgresql:/bin/bash\n\
            svc:x:112:120::/srv/svc-home:/bin/sh\n\
            odd:x:111:119::/:/bin/sh\n\
            alice:x:1000:1000::/home/alice:/bin/bash\n",
        );
        write(root, "/etc/shadow", "root:*:19000:0:99999:7:::\n");
        write(
            root,
            "/home/alice/.aws/credentials",
            "[default]\naws_secret_access_key = not-a-real-value\n",
        );
        write(
            root,
            "/home/alice/.aws/config",
            "[default]\nregion = eu-west-1\n",
        );
        write(root, "/home/alice/.ssh/id_ed25519", &key);
        write(
            root,
            "/home/alice/.ssh/id_ed25519.pub",
            "ssh-ed25519 AAAA alice\n",
        );
        write(root, "/home/alice/proj/.env", "DEBUG=1\n");
        write(root, "/home/alice/proj/node_modules/pkg/.env", "X=1\n");
        write(root, "/home/alice/a/b/c/d/e/f/.env", "X=1\n");
        symlink(root, "/home/alice/loop", ".");
        write(root, "/root/.bash_history", "ls\n");
        write(
            root,
            "/var/lib/postgresql/.pgpass",
            "*:*:*:postgres:example\n",
        );
        write(
            root,
            "/data/svc/.git-credentials",
            "https://svc:pw@git.example.org\n",
        );
        symlink(root, "/srv/svc-home", "/data/svc");
        write(root, "/etc/ssl/private/site.key", &private_pem(""));
        write(
            root,
            "/etc/apt/trusted.gpg.d/vendor.key",
            &pem("PGP ", "PUBLIC KEY BLOCK"),
        );
        write(
            root,
            "/etc/kubernetes/pki/etcd/ca.key",
            &private_pem("RSA "),
        );
        let sa = "/run/secrets/kubernetes.io/serviceaccount";
        write(
            root,
            &format!("{sa}/..2024_01_01_00_00_00.1/token"),
            "eyJhbGciOiJSUzI1NiJ9.e30.c2ln\n",
        );
        symlink(root, &format!("{sa}/..data"), "..2024_01_01_00_00_00.1");
        symlink(root, &format!("{sa}/token"), "..data/token");
        symlink(root, "/var/run", "/run");
        write(
            root,
            "/mnt/vault/bob-aws",
            "[default]\naws_secret_access_key = not-a-real-value\n",
        );
        symlink(root, "/home/bob/.aws/credentials", "/mnt/vault/bob-aws");
        write(root, "/srv/app/.env.production", "DB_PASSWORD=example\n");
        write(root, "/srv/app/.env.example", "DB_PASSWORD=\n");
        fs::create_dir_all(root.join("srv/app/sub")).unwrap();
        let fifo = std::ffi::CString::new(
            root.join("srv/app/sub/.env")
                .into_os_string()
                .into_encoded_bytes(),
        )
        .unwrap();
        // SAFETY: fifo is a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        write(root, "/proc/1/root/.env", "X=1\n");
        dir
    }

    #[test]
    fn discover_finds_catalogued_files_under_a_fake_root() {
        let dir = fake_root();
        let mut roots = DiscoverRoots::under(dir.path());
        roots.anywhere_dirs.push("/proc".into());
        let report = Catalog::builtin().discover_report(&roots);
        let found: Vec<(String, String)> = report
            .found
            .iter()
            .map(|(p, id)| (p.to_str().unwrap().to_string(), id.clone()))
            .collect();
        let expected: Vec<(String, String)> = [
            ("/data/svc/.git-credentials", "git-credentials"),
            ("/etc/kubernetes/pki/etcd/ca.key", "etcd-pki-key"),
            ("/etc/shadow", "shadow"),
            ("/etc/ssl/private/site.key", "tls-private-key"),
            ("/home/alice/.aws/credentials", "aws-cli-credentials"),
            ("/home/alice/.ssh/id_ed25519", "ssh-private-key"),
            ("/home/alice/proj/.env", "dotenv"),
            ("/mnt/vault/bob-aws", "aws-cli-credentials"),
            ("/root/.bash_history", "shell-history"),
            (
                "/run/secrets/kubernetes.io/serviceaccount/..2024_01_01_00_00_00.1/token",
                "k8s-service-account-token",
            ),
            ("/srv/app/.env.production", "dotenv"),
            ("/var/lib/postgresql/.pgpass", "pgpass"),
        ]
        .iter()
        .map(|(p, id)| (p.to_string(), id.to_string()))
        .collect();
        assert_eq!(found, expected);
        assert!(!report.truncated);
        // ~/.aws/config with only a region, and the public key named *.key.
        assert_eq!(report.content_mismatch, 2);
        assert_eq!(Catalog::builtin().discover(&roots), report.found);
    }

    #[test]
    fn discover_without_content_checks_or_passwd_and_with_a_budget() {
        let dir = fake_root();
        let mut roots = DiscoverRoots::under(dir.path());
        roots.check_content = false;
        roots.passwd_homes = false;
        let found = Catalog::builtin().discover(&roots);
        let has = |p: &str| found.iter().any(|(f, _)| f == Path::new(p));
        assert!(has("/home/alice/.aws/config"));
        assert!(has("/etc/apt/trusted.gpg.d/vendor.key"));
        assert!(!has("/var/lib/postgresql/.pgpass"));

        roots.max_entries = 5;
        let report = Catalog::builtin().discover_report(&roots);
        assert!(report.truncated);
        assert!(report.visited <= 5);
    }

    #[test]
    fn a_link_named_like_a_secret_lends_its_name_only_to_its_owners_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let chown = |p: &str, uid: u32| {
            std::os::unix::fs::lchown(root.join(p.trim_start_matches('/')), Some(uid), None)
                .unwrap()
        };
        write(root, "/etc/hostname", "node-1\n");
        // eve points her .pgpass at a public file root owns.
        fs::create_dir_all(root.join("home/eve")).unwrap();
        chown("/home/eve", 1001);
        symlink(root, "/home/eve/.pgpass", "/etc/hostname");
        chown("/home/eve/.pgpass", 1001);
        // frank keeps his real .pgpass among his dotfiles.
        write(root, "/home/frank/dotfiles/pgpass", "*:*:*:frank:pw\n");
        chown("/home/frank", 1002);
        chown("/home/frank/dotfiles", 1002);
        chown("/home/frank/dotfiles/pgpass", 1002);
        symlink(root, "/home/frank/.pgpass", "dotfiles/pgpass");
        // A directory anyone may write proves nothing about who made the link.
        fs::create_dir_all(root.join("srv/drop")).unwrap();
        fs::set_permissions(
            root.join("srv/drop"),
            std::os::unix::fs::PermissionsExt::from_mode(0o1777),
        )
        .unwrap();
        write(root, "/srv/shared-notes", "notes\n");
        symlink(root, "/srv/drop/.env", "/srv/shared-notes");

        let mut roots = DiscoverRoots::under(root);
        roots.passwd_homes = false;
        let report = Catalog::builtin().discover_report(&roots);
        assert_eq!(
            report.found,
            vec![(
                PathBuf::from("/home/frank/dotfiles/pgpass"),
                "pgpass".to_string()
            )],
            "{report:?}"
        );
        assert_eq!(report.untrusted_links, 2, "{report:?}");
    }

    #[test]
    fn passwd_homes_keeps_service_homes_only() {
        let dir = fake_root();
        assert_eq!(
            passwd_homes(dir.path()),
            vec![
                PathBuf::from("/data/svc"),
                PathBuf::from("/var/lib/postgresql")
            ]
        );
        assert!(passwd_homes(Path::new("/nonexistent-proctor-root")).is_empty());
    }
}
