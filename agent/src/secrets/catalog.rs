//! The catalog of well-known static-credential files.
//!
//! Each entry names one kind of secret file (AWS CLI credentials, a kubelet
//! key, a shell history, ...) by the paths it lives at, an optional check of
//! its content, the ATT&CK techniques a foreign read of it maps to and the
//! severity of such a read. The catalog drives three things:
//!
//! * the kernel-side filter: [`Catalog::basenames`], [`Catalog::basename_prefixes`]
//!   and [`Catalog::basename_suffixes`] tell the probes which opens are worth an
//!   event at all, so that the common `open()` costs a hash lookup and nothing else;
//! * the userspace decision: [`Catalog::match_path`] confirms (or drops) each
//!   such event against the full patterns;
//! * the start-up inventory: [`Catalog::discover`] finds the catalogued files
//!   that already exist on the node.
//!
//! # Path patterns
//!
//! Patterns are globs (the `globset` syntax) over absolute, lexically
//! normalised paths. `*`, `?` and `[...]` never cross a `/`; `**` as a whole
//! component crosses any number of directories, including none. A pattern is
//! one of:
//!
//! * `/absolute/...`: matched as written;
//! * `~/rest`: `rest` under any user's home, i.e. `/root/rest`, `/home/*/rest`
//!   and `<home>/rest` for every extra home given to [`Catalog::with_homes`]
//!   (the daemon passes the homes of `/etc/passwd`, see [`passwd_homes`]);
//! * `**/rest`: `rest` in any directory. [`Catalog::discover`] only searches
//!   homes and [`DiscoverRoots::anywhere_dirs`] for these, depth-limited.
//!
//! # Which entry wins
//!
//! A path can match several entries (`/etc/kubernetes/pki/etcd/server.key` is
//! both an etcd key and a key under `/etc`). The entry whose matching pattern
//! has the most literal characters wins, because the longer literal pattern is
//! the one someone wrote for this very file; on a tie the entry listed first
//! wins. An entry's `exclude` patterns remove paths from that entry only.

use std::{
    borrow::Cow,
    collections::{BTreeMap, BTreeSet, HashMap, HashSet},
    ffi::{OsStr, OsString},
    fmt::Write as _,
    fs,
    io::Read,
    os::unix::fs::OpenOptionsExt,
    path::{Component, Path, PathBuf},
    sync::OnceLock,
};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use regex::bytes::Regex as BytesRegex;
use serde::{Deserialize, Serialize};

use crate::{event::Severity, paths::normalize};

/// The longest basename, prefix or suffix the kernel filter compares (its map
/// keys are 64-byte NUL-terminated buffers).
pub const MAX_BASENAME_LEN: usize = 63;

/// How much of a file [`Catalog::discover`] reads for a content check. Every
/// marker the built-in checks look for sits near the top of its file; a cap
/// keeps a multi-gigabyte `.env`-named dump from stalling start-up.
pub const CONTENT_PEEK_BYTES: usize = 64 * 1024;

/// What a secret is; the `secret.kind` field of findings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretKind {
    CloudCredentials,
    KubernetesToken,
    Kubeconfig,
    PrivateKey,
    RegistryCredentials,
    PackageRegistryToken,
    VcsCredentials,
    DatabaseCredentials,
    Dotenv,
    VaultToken,
    CiCredentials,
    ApiToken,
    History,
    PasswordFile,
    Keytab,
    VpnKey,
    GenericCredentials,
}

impl SecretKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SecretKind::CloudCredentials => "cloud_credentials",
            SecretKind::KubernetesToken => "kubernetes_token",
            SecretKind::Kubeconfig => "kubeconfig",
            SecretKind::PrivateKey => "private_key",
            SecretKind::RegistryCredentials => "registry_credentials",
            SecretKind::PackageRegistryToken => "package_registry_token",
            SecretKind::VcsCredentials => "vcs_credentials",
            SecretKind::DatabaseCredentials => "database_credentials",
            SecretKind::Dotenv => "dotenv",
            SecretKind::VaultToken => "vault_token",
            SecretKind::CiCredentials => "ci_credentials",
            SecretKind::ApiToken => "api_token",
            SecretKind::History => "history",
            SecretKind::PasswordFile => "password_file",
            SecretKind::Keytab => "keytab",
            SecretKind::VpnKey => "vpn_key",
            SecretKind::GenericCredentials => "generic_credentials",
        }
    }
}

/// A test of a file's content that tells a real secret from a file that only
/// shares its name (an `~/.aws/config` holding just a region, a public key
/// named `*.key`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContentCheck {
    /// A PEM `-----BEGIN ... PRIVATE KEY-----` block (RSA, EC, DSA, PKCS#8,
    /// encrypted, OpenSSH, PGP `PRIVATE KEY BLOCK`) or a PuTTY key file.
    ContainsPrivateKeyBlock,
    /// Any of these byte strings, case-sensitive.
    ContainsAny(Vec<String>),
    /// A match of this regular expression (the `regex` crate's syntax) anywhere
    /// in the content.
    Regex(String),
}

/// One kind of secret file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogEntry {
    /// Stable kebab-case name; findings and policy refer to the entry by it.
    pub id: String,
    pub kind: SecretKind,
    pub description: String,
    /// Path patterns, see the module documentation.
    pub paths: Vec<String>,
    /// Paths that match `paths` but are not this secret (`*.pub`, `.env.example`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<ContentCheck>,
    /// MITRE ATT&CK technique ids.
    #[serde(default)]
    pub mitre: Vec<String>,
    /// Severity of a read by a process that is not one of the secret's
    /// owners; `medium` when a policy entry does not say.
    #[serde(default)]
    pub severity: Severity,
}

impl CatalogEntry {
    pub fn new(
        id: &str,
        kind: SecretKind,
        severity: Severity,
        paths: &[&str],
        description: &str,
    ) -> CatalogEntry {
        CatalogEntry {
            id: id.to_string(),
            kind,
            description: description.to_string(),
            paths: paths.iter().map(|p| p.to_string()).collect(),
            exclude: Vec::new(),
            content: None,
            mitre: Vec::new(),
            severity,
        }
    }

    fn mitre(mut self, ids: &[&str]) -> CatalogEntry {
        self.mitre = ids.iter().map(|s| s.to_string()).collect();
        self
    }

    fn content(mut self, check: ContentCheck) -> CatalogEntry {
        self.content = Some(check);
        self
    }

    fn exclude(mut self, patterns: &[&str]) -> CatalogEntry {
        self.exclude = patterns.iter().map(|s| s.to_string()).collect();
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(
        "catalog entry id {id:?} is not kebab-case \
         (lowercase letters and digits, words joined by '-')"
    )]
    InvalidId { id: String },
    #[error(
        "catalog entry id {id:?} appears more than once; ids must be unique \
         (to replace a built-in entry, use Catalog::extend)"
    )]
    DuplicateId { id: String },
    #[error("catalog entry {id}: no path patterns; give at least one under `paths`")]
    NoPaths { id: String },
    #[error("catalog entry {id}: path pattern {pattern:?} {reason}")]
    BadPattern {
        id: String,
        pattern: String,
        reason: &'static str,
    },
    #[error("catalog entry {id}: path pattern {pattern:?} is not a valid glob: {source}")]
    BadGlob {
        id: String,
        pattern: String,
        #[source]
        source: globset::Error,
    },
    #[error("catalog entry {id}: content check: {reason}")]
    BadContentCheck { id: String, reason: String },
    #[error(
        "the catalog's path patterns do not compile together ({0}); \
         use fewer or simpler patterns"
    )]
    TooLarge(#[source] globset::Error),
    #[error("home directory {home:?} must be an absolute, normalised path other than /")]
    BadHome { home: PathBuf },
}

/// A compiled catalog.
#[derive(Clone, Debug)]
pub struct Catalog {
    entries: Vec<CatalogEntry>,
    /// Homes beyond `/root` and `/home/*` that `~/` stands for.
    homes: Vec<PathBuf>,
    /// Every entry's `paths`, expanded (`~/` replaced by the homes).
    expanded: Vec<Vec<String>>,
    include: GlobSet,
    /// For each glob of `include`: (entry index, specificity).
    include_owner: Vec<(usize, usize)>,
    exclude: GlobSet,
    exclude_owner: Vec<usize>,
    checks: Vec<Option<BytesRegex>>,
    by_id: HashMap<String, usize>,
}

impl Catalog {
    /// The built-in catalog, see [`builtin_entries`] and docs/secret-catalog.md.
    pub fn builtin() -> Catalog {
        Catalog::from_entries(builtin_entries()).expect("the built-in catalog is valid")
    }

    pub fn from_entries(entries: Vec<CatalogEntry>) -> Result<Catalog, CatalogError> {
        Catalog::build(entries, Vec::new())
    }

    /// This catalog with `entries` added: an entry whose id is already in the
    /// catalog replaces that entry in place, the others are appended in order.
    pub fn extend(&self, entries: Vec<CatalogEntry>) -> Result<Catalog, CatalogError> {
        let mut merged = self.entries.clone();
        for entry in entries {
            match merged.iter().position(|e| e.id == entry.id) {
                Some(i) => merged[i] = entry,
                None => merged.push(entry),
            }
        }
        Catalog::build(merged, self.homes.clone())
    }

    /// This catalog with `~/` also standing for `homes` (e.g. service accounts
    /// whose home is `/var/lib/postgresql`). `/root` and `/home/<user>` are
    /// always covered.
    pub fn with_homes(&self, homes: &[PathBuf]) -> Result<Catalog, CatalogError> {
        let mut all = self.homes.clone();
        for home in homes {
            let normal = normalize(home)
                .filter(|n| n.as_os_str() != "/" && n.to_str().is_some())
                .ok_or_else(|| CatalogError::BadHome { home: home.clone() })?;
            if !all.contains(&normal) && !is_default_home(&normal) {
                all.push(normal);
            }
        }
        Catalog::build(self.entries.clone(), all)
    }

    fn build(entries: Vec<CatalogEntry>, homes: Vec<PathBuf>) -> Result<Catalog, CatalogError> {
        let mut by_id = HashMap::new();
        let mut include = GlobSetBuilder::new();
        let mut include_owner = Vec::new();
        let mut exclude = GlobSetBuilder::new();
        let mut exclude_owner = Vec::new();
        let mut expanded = Vec::with_capacity(entries.len());
        let mut checks = Vec::with_capacity(entries.len());
        for (index, entry) in entries.iter().enumerate() {
            if !is_kebab_case(&entry.id) {
                return Err(CatalogError::InvalidId {
                    id: entry.id.clone(),
                });
            }
            if by_id.insert(entry.id.clone(), index).is_some() {
                return Err(CatalogError::DuplicateId {
                    id: entry.id.clone(),
                });
            }
            if entry.paths.is_empty() {
                return Err(CatalogError::NoPaths {
                    id: entry.id.clone(),
                });
            }
            let mut entry_expanded = Vec::new();
            for pattern in &entry.paths {
                validate_pattern(&entry.id, pattern)?;
                let specificity = specificity(pattern);
                for glob in expand_home(pattern, &homes) {
                    include.add(compile_glob(&entry.id, &glob)?);
                    include_owner.push((index, specificity));
                    entry_expanded.push(glob);
                }
            }
            for pattern in &entry.exclude {
                validate_pattern(&entry.id, pattern)?;
                for glob in expand_home(pattern, &homes) {
                    exclude.add(compile_glob(&entry.id, &glob)?);
                    exclude_owner.push(index);
                }
            }
            expanded.push(entry_expanded);
            checks.push(compile_check(&entry.id, entry.content.as_ref())?);
        }
        Ok(Catalog {
            include: include.build().map_err(CatalogError::TooLarge)?,
            exclude: exclude.build().map_err(CatalogError::TooLarge)?,
            entries,
            homes,
            expanded,
            include_owner,
            exclude_owner,
            checks,
            by_id,
        })
    }

    pub fn entries(&self) -> &[CatalogEntry] {
        &self.entries
    }

    pub fn entry(&self, id: &str) -> Option<&CatalogEntry> {
        self.by_id.get(id).map(|&i| &self.entries[i])
    }

    /// Homes beyond `/root` and `/home/*` that `~/` stands for.
    pub fn extra_homes(&self) -> &[PathBuf] {
        &self.homes
    }

    /// The entry `path` is an instance of, if any (see "Which entry wins" in
    /// the module documentation). `path` is normalised lexically first (`.`,
    /// `..`, repeated `/`), symlinks are not resolved: give the path the kernel
    /// reported. Relative paths never match.
    pub fn match_path(&self, path: &Path) -> Option<&CatalogEntry> {
        let path = normalize(path)?;
        let hits = self.include.matches(&path);
        if hits.is_empty() {
            return None;
        }
        let excluded: Vec<usize> = self
            .exclude
            .matches(&path)
            .into_iter()
            .map(|g| self.exclude_owner[g])
            .collect();
        hits.into_iter()
            .map(|g| self.include_owner[g])
            .filter(|(entry, _)| !excluded.contains(entry))
            // Highest specificity, then lowest index.
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
            .map(|(entry, _)| &self.entries[entry])
    }

    /// Whether `content` passes `entry`'s content check; true when it has none.
    /// Give it the start of the file ([`CONTENT_PEEK_BYTES`] is enough for
    /// every built-in check).
    pub fn content_matches(&self, entry: &CatalogEntry, content: &[u8]) -> bool {
        let Some(check) = &entry.content else {
            return true;
        };
        if let Some(&i) = self.by_id.get(&entry.id) {
            if self.entries[i].content.as_ref() == Some(check) {
                return self.checks[i]
                    .as_ref()
                    .is_none_or(|re| re.is_match(content));
            }
        }
        // An entry from elsewhere (a policy draft, an older catalog): compile
        // its check on the spot; a check that does not compile matches nothing.
        match compile_check(&entry.id, Some(check)) {
            Ok(Some(re)) => re.is_match(content),
            Ok(None) => true,
            Err(_) => false,
        }
    }

    /// Exact basenames for the kernel filter: the final component of every
    /// pattern whose final component is literal. Generic names such as
    /// `config` or `credentials` are in here on purpose; they cost one
    /// userspace [`Catalog::match_path`] per open, and leaving them out would
    /// blind the agent to `~/.aws/credentials`. A literal longer than
    /// [`MAX_BASENAME_LEN`] bytes goes to the prefixes instead, cut to fit.
    pub fn basenames(&self) -> BTreeSet<String> {
        self.basename_filters().0
    }

    /// Basename prefixes for the kernel filter, from final components such as
    /// `id_*` or `.env.*`: a pattern whose final component has literal text on
    /// both sides of a wildcard contributes the longer side (prefix on a tie).
    pub fn basename_prefixes(&self) -> BTreeSet<String> {
        self.basename_filters().1
    }

    /// Basename suffixes for the kernel filter, from final components such as
    /// `*.key`. Some are broad (`.conf`, `.pem`): the kernel side may pair them
    /// with the parent directory before emitting.
    pub fn basename_suffixes(&self) -> BTreeSet<String> {
        self.basename_filters().2
    }

    /// (entry id, pattern) for every pattern whose final component has no
    /// literal text at all (`/etc/secrets/*`): no basename filter can catch
    /// their opens, so the kernel side must watch the inodes that
    /// [`Catalog::discover`] finds for them.
    pub fn unfiltered_patterns(&self) -> Vec<(&str, &str)> {
        let mut out = Vec::new();
        for entry in &self.entries {
            for pattern in &entry.paths {
                let last = pattern.rsplit('/').next().unwrap_or(pattern);
                if expand_braces(last)
                    .iter()
                    .any(|alt| matches!(classify_basename(alt), BasenameFilter::None))
                {
                    out.push((entry.id.as_str(), pattern.as_str()));
                }
            }
        }
        out
    }

    fn basename_filters(&self) -> (BTreeSet<String>, BTreeSet<String>, BTreeSet<String>) {
        let (mut exact, mut prefixes, mut suffixes) =
            (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
        for entry in &self.entries {
            for pattern in &entry.paths {
                let last = pattern.rsplit('/').next().unwrap_or(pattern);
                for alt in expand_braces(last) {
                    match classify_basename(&alt) {
                        BasenameFilter::Exact(name) if name.len() <= MAX_BASENAME_LEN => {
                            exact.insert(name);
                        }
                        BasenameFilter::Exact(name) | BasenameFilter::Prefix(name) => {
                            prefixes.insert(truncate_front(&name).to_string());
                        }
                        BasenameFilter::Suffix(name) => {
                            suffixes.insert(truncate_back(&name).to_string());
                        }
                        BasenameFilter::None => {}
                    }
                }
            }
        }
        (exact, prefixes, suffixes)
    }

    /// A Markdown table of the catalog, for docs/secret-catalog.md.
    pub fn markdown_table(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "| ID | Kind | Severity | Paths | Content check | MITRE ATT&CK | Description |\n",
        );
        out.push_str("| --- | --- | --- | --- | --- | --- | --- |\n");
        for e in &self.entries {
            let mut paths: Vec<String> = e.paths.iter().map(|p| code(p)).collect();
            if !e.exclude.is_empty() {
                let ex: Vec<String> = e.exclude.iter().map(|p| code(p)).collect();
                paths.push(format!("excluding {}", ex.join(", ")));
            }
            let check = match &e.content {
                None => "none".to_string(),
                Some(ContentCheck::ContainsPrivateKeyBlock) => "private key block".to_string(),
                Some(ContentCheck::ContainsAny(markers)) => {
                    let m: Vec<String> = markers.iter().map(|s| code(s)).collect();
                    format!("contains any of {}", m.join(", "))
                }
                Some(ContentCheck::Regex(re)) => format!("matches {}", code(re)),
            };
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} | {} | {} |",
                e.id,
                e.kind.as_str(),
                e.severity.as_str(),
                paths.join("<br>"),
                check,
                e.mitre.join(", "),
                cell(&e.description),
            );
        }
        out
    }

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
            .all(|h| self.homes.contains(h) || is_default_home(h))
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
        anywhere_bases.extend(catalog.homes.iter().cloned());
        anywhere_bases.extend(roots.anywhere_dirs.iter().filter_map(|d| normalize(d)));

        // Patterns are merged into a trie and followed component by
        // component, so a directory shared by many patterns (`/home/*`) is
        // listed once. The "anywhere" patterns instead share one listing of
        // each home and anywhere dir, matched against the whole catalog.
        let mut guided = PatternTrie::default();
        let mut deep: BTreeMap<PathBuf, usize> = BTreeMap::new();
        for pattern in catalog.expanded.iter().flatten() {
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

/// Whether `content` holds a private key block (see
/// [`ContentCheck::ContainsPrivateKeyBlock`]).
pub fn contains_private_key_block(content: &[u8]) -> bool {
    private_key_regex().is_match(content)
}

fn private_key_regex() -> &'static BytesRegex {
    static RE: OnceLock<BytesRegex> = OnceLock::new();
    RE.get_or_init(|| {
        BytesRegex::new(
            r"-----BEGIN ([A-Z0-9]+ )*PRIVATE KEY( BLOCK)?-----|PuTTY-User-Key-File-[0-9]+:",
        )
        .unwrap()
    })
}

/// The patterns of a catalog as a tree of path components.
#[derive(Default)]
struct PatternTrie {
    matcher: ComponentMatcher,
    /// A pattern ends here.
    terminal: bool,
    children: BTreeMap<String, PatternTrie>,
}

#[derive(Default)]
enum ComponentMatcher {
    #[default]
    Literal,
    Glob(globset::GlobMatcher),
    AnyDepth,
    Never,
}

impl PatternTrie {
    fn insert<'a>(&mut self, mut comps: impl Iterator<Item = &'a str>) {
        let Some(comp) = comps.next() else {
            self.terminal = true;
            return;
        };
        let child = self.children.entry(comp.to_string()).or_insert_with(|| {
            let matcher = if comp == "**" {
                ComponentMatcher::AnyDepth
            } else if !has_glob_meta(comp) {
                ComponentMatcher::Literal
            } else {
                // validate_pattern compiled every component on its own already.
                GlobBuilder::new(comp)
                    .build()
                    .map_or(ComponentMatcher::Never, |g| {
                        ComponentMatcher::Glob(g.compile_matcher())
                    })
            };
            PatternTrie {
                matcher,
                ..PatternTrie::default()
            }
        });
        child.insert(comps);
    }
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
        let entry = match self
            .catalog
            .match_path(&real)
            .or_else(|| self.catalog.match_path(path))
        {
            Some(e) => e,
            None => return,
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
}

fn read_peek(path: &Path) -> Option<Vec<u8>> {
    // O_NONBLOCK: a FIFO swapped in after the type check must not hang
    // start-up. O_NOFOLLOW: the path was resolved already; a symlink now is a race.
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut head = Vec::new();
    file.take(CONTENT_PEEK_BYTES as u64)
        .read_to_end(&mut head)
        .ok()?;
    Some(head)
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

fn is_default_home(home: &Path) -> bool {
    home == Path::new("/root") || (home.starts_with("/home") && home.components().count() == 3)
}

fn is_skipped_dir(name: &OsStr) -> bool {
    name.to_str().is_some_and(|n| SKIP_DIRS.contains(&n))
}

fn is_kebab_case(id: &str) -> bool {
    !id.is_empty()
        && id.split('-').all(|word| {
            !word.is_empty()
                && word
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

fn is_glob_meta(c: char) -> bool {
    matches!(c, '*' | '?' | '[' | ']' | '{' | '}' | '\\')
}

fn has_glob_meta(s: &str) -> bool {
    s.contains(is_glob_meta)
}

fn validate_pattern(id: &str, pattern: &str) -> Result<(), CatalogError> {
    let bad = |reason| {
        Err(CatalogError::BadPattern {
            id: id.to_string(),
            pattern: pattern.to_string(),
            reason,
        })
    };
    let body = if let Some(rest) = pattern.strip_prefix("~/") {
        rest
    } else if let Some(rest) = pattern.strip_prefix('/') {
        rest
    } else if pattern.starts_with("**/") {
        pattern
    } else {
        return bad("must start with '/', '~/' or '**/'");
    };
    if body.is_empty() || body.ends_with('/') {
        return bad("must name a file, not end with '/'");
    }
    for comp in body.split('/') {
        match comp {
            "" => return bad("has an empty component ('//')"),
            "." | ".." => {
                return bad(
                    "has a '.' or '..' component; paths are matched after normalisation, \
                     so it could never match",
                )
            }
            c if c.contains("**") && c != "**" => {
                return bad("uses '**' inside a component; '**' must be a whole component")
            }
            "~" => return bad("uses '~' other than as the leading '~/'"),
            c if has_glob_meta(c) && GlobBuilder::new(c).build().is_err() => {
                return bad("has a component that is not a glob on its own; \
                     '{...}' and '[...]' must not span a '/'")
            }
            _ => {}
        }
    }
    Ok(())
}

fn expand_home(pattern: &str, homes: &[PathBuf]) -> Vec<String> {
    let Some(rest) = pattern.strip_prefix("~/") else {
        return vec![pattern.to_string()];
    };
    let mut out = vec![format!("/root/{rest}"), format!("/home/*/{rest}")];
    for home in homes {
        if let Some(h) = home.to_str() {
            out.push(format!("{}/{rest}", globset::escape(h)));
        }
    }
    out
}

fn compile_glob(id: &str, pattern: &str) -> Result<globset::Glob, CatalogError> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map_err(|source| CatalogError::BadGlob {
            id: id.to_string(),
            pattern: pattern.to_string(),
            source,
        })
}

fn compile_check(
    id: &str,
    check: Option<&ContentCheck>,
) -> Result<Option<BytesRegex>, CatalogError> {
    let bad = |reason: String| CatalogError::BadContentCheck {
        id: id.to_string(),
        reason,
    };
    match check {
        None => Ok(None),
        Some(ContentCheck::ContainsPrivateKeyBlock) => Ok(Some(private_key_regex().clone())),
        Some(ContentCheck::ContainsAny(markers)) => {
            if markers.is_empty() || markers.iter().any(|m| m.is_empty()) {
                return Err(bad(
                    "contains_any needs at least one marker and no empty ones".into(),
                ));
            }
            let alternation: Vec<String> = markers.iter().map(|m| regex::escape(m)).collect();
            BytesRegex::new(&alternation.join("|"))
                .map(Some)
                .map_err(|e| bad(e.to_string()))
        }
        Some(ContentCheck::Regex(re)) => BytesRegex::new(re)
            .map(Some)
            .map_err(|e| bad(format!("regex {re:?} does not compile: {e}"))),
    }
}

/// Literal characters in a pattern: wildcards, classes and alternations count
/// nothing, `~/` counts nothing (its expansion is the same for every pattern).
fn specificity(pattern: &str) -> usize {
    let body = pattern.strip_prefix('~').unwrap_or(pattern);
    let mut count = 0;
    let mut depth = 0usize;
    for c in body.chars() {
        match c {
            '[' | '{' => depth += 1,
            ']' | '}' => depth = depth.saturating_sub(1),
            '*' | '?' => {}
            _ if depth == 0 => count += 1,
            _ => {}
        }
    }
    count
}

enum BasenameFilter {
    Exact(String),
    Prefix(String),
    Suffix(String),
    None,
}

fn classify_basename(comp: &str) -> BasenameFilter {
    if !has_glob_meta(comp) {
        return BasenameFilter::Exact(comp.to_string());
    }
    let prefix_len = comp.find(is_glob_meta).unwrap_or(comp.len());
    let suffix_start = comp.rfind(is_glob_meta).map_or(0, |i| i + 1);
    let (prefix, suffix) = (&comp[..prefix_len], &comp[suffix_start..]);
    if prefix.is_empty() && suffix.is_empty() {
        BasenameFilter::None
    } else if prefix.len() >= suffix.len() {
        BasenameFilter::Prefix(prefix.to_string())
    } else {
        BasenameFilter::Suffix(suffix.to_string())
    }
}

/// Expands the `{a,b}` alternations of one path component, so that
/// `*.{key,pem}` yields the suffixes `.key` and `.pem`. Nested or unbalanced
/// braces are left as they are.
fn expand_braces(comp: &str) -> Vec<String> {
    const MAX_ALTERNATIVES: usize = 64;
    let Some(open) = comp.find('{') else {
        return vec![comp.to_string()];
    };
    let Some(close_rel) = comp[open..].find('}') else {
        return vec![comp.to_string()];
    };
    let close = open + close_rel;
    let inner = &comp[open + 1..close];
    if inner.contains('{') {
        return vec![comp.to_string()];
    }
    let mut out = Vec::new();
    for alt in inner.split(',') {
        let joined = format!("{}{}{}", &comp[..open], alt, &comp[close + 1..]);
        for expanded in expand_braces(&joined) {
            if out.len() < MAX_ALTERNATIVES {
                out.push(expanded);
            }
        }
    }
    out
}

fn truncate_front(s: &str) -> &str {
    let mut end = s.len().min(MAX_BASENAME_LEN);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn truncate_back(s: &str) -> &str {
    let mut start = s.len().saturating_sub(MAX_BASENAME_LEN);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn code(s: &str) -> String {
    format!("`{}`", cell(s))
}

const FILES: &str = "T1552.001";
const KEYS: &str = "T1552.004";
const HISTORY: &str = "T1552.003";
const SHADOW: &str = "T1003.008";
const APP_TOKEN: &str = "T1528";
const CONTAINER_API: &str = "T1552.007";
const KERBEROS: &str = "T1558";
const CCACHE: &str = "T1558.005";

fn any(markers: &[&str]) -> ContentCheck {
    ContentCheck::ContainsAny(markers.iter().map(|s| s.to_string()).collect())
}

fn re(pattern: &str) -> ContentCheck {
    ContentCheck::Regex(pattern.to_string())
}

/// The built-in entries, in catalog order.
// Laid out as a table, one entry per block, which rustfmt would unfold.
#[rustfmt::skip]
pub fn builtin_entries() -> Vec<CatalogEntry> {
    use ContentCheck::ContainsPrivateKeyBlock as PrivateKeyBlock;
    use SecretKind::*;
    use Severity::*;
    let e = CatalogEntry::new;
    let aws_keys = || any(&["aws_secret_access_key", "aws_session_token"]);
    let registry_auth = || any(&["\"auth\"", "\"identitytoken\"", "\"registrytoken\""]);
    let url_userinfo = r"[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@";
    vec![
        // Cloud provider CLIs and SDKs.
        e("aws-cli-credentials", CloudCredentials, High, &["~/.aws/credentials"],
            "AWS CLI/SDK shared credentials: access key id and secret access key per profile")
            .content(aws_keys()).mitre(&[FILES]),
        e("aws-cli-config", CloudCredentials, Medium, &["~/.aws/config"],
            "AWS CLI/SDK config file; counts only when it holds keys rather than just profiles and regions")
            .content(aws_keys()).mitre(&[FILES]),
        e("gcp-application-default-credentials", CloudCredentials, High,
            &["~/.config/gcloud/application_default_credentials.json"],
            "Google application default credentials written by `gcloud auth application-default login` (refresh token or service-account key)")
            .content(any(&["\"private_key\"", "\"refresh_token\""])).mitre(&[FILES]),
        e("gcloud-credentials-db", CloudCredentials, High,
            &["~/.config/gcloud/credentials.db", "~/.config/gcloud/access_tokens.db"],
            "gcloud CLI credential store: refresh tokens, service-account keys and cached access tokens")
            .mitre(&[FILES, APP_TOKEN]),
        e("gcloud-legacy-credentials", CloudCredentials, High,
            &["~/.config/gcloud/legacy_credentials/*/adc.json", "~/.config/gcloud/legacy_credentials/*/.boto"],
            "gcloud per-account legacy credential copies")
            .mitre(&[FILES]),
        e("gsutil-boto-config", CloudCredentials, Medium, &["~/.boto"],
            "gsutil/boto configuration; counts when it holds a refresh token, HMAC secret or key file")
            .content(any(&["gs_oauth2_refresh_token", "gs_secret_access_key", "aws_secret_access_key", "gs_service_key_file"]))
            .mitre(&[FILES]),
        e("azure-cli-access-tokens", CloudCredentials, High, &["~/.azure/accessTokens.json"],
            "Azure CLI (before 2.30) token cache with access and refresh tokens")
            .mitre(&[APP_TOKEN, FILES]),
        e("azure-msal-token-cache", CloudCredentials, High, &["~/.azure/msal_token_cache.*"],
            "Azure CLI MSAL token cache with access and refresh tokens")
            .mitre(&[APP_TOKEN, FILES]),
        e("azure-service-principal", CloudCredentials, High, &["~/.azure/service_principal_entries.*"],
            "Azure CLI store of service-principal client secrets and certificates")
            .mitre(&[FILES]),
        e("oci-cli-config", CloudCredentials, Medium, &["~/.oci/config"],
            "Oracle Cloud CLI config: user and tenancy OCIDs, key fingerprint, key file and passphrase")
            .mitre(&[FILES]),
        e("oci-api-signing-key", PrivateKey, High, &["~/.oci/**/*.pem"],
            "Oracle Cloud API signing private key")
            .content(PrivateKeyBlock).mitre(&[KEYS]),
        e("digitalocean-doctl-config", CloudCredentials, High, &["~/.config/doctl/config.yaml"],
            "DigitalOcean doctl config with API access tokens")
            .content(any(&["access-token"])).mitre(&[FILES]),
        e("alibaba-cloud-cli-config", CloudCredentials, High, &["~/.aliyun/config.json"],
            "Alibaba Cloud CLI profiles with AccessKey secrets or STS tokens")
            .content(any(&["access_key_secret", "sts_token"])).mitre(&[FILES]),
        e("ibm-cloud-cli-config", CloudCredentials, High, &["~/.bluemix/config.json"],
            "IBM Cloud CLI session with IAM access and refresh tokens")
            .content(any(&["IAMToken", "IAMRefreshToken"])).mitre(&[FILES, APP_TOKEN]),
        e("linode-cli-config", CloudCredentials, High, &["~/.config/linode-cli"],
            "Linode/Akamai CLI config with personal access tokens")
            .content(any(&["token"])).mitre(&[FILES]),
        e("hetzner-cloud-cli-config", CloudCredentials, High, &["~/.config/hcloud/cli.toml"],
            "Hetzner Cloud CLI contexts with API tokens")
            .content(any(&["token"])).mitre(&[FILES]),
        e("openstack-clouds-yaml", CloudCredentials, High,
            &["~/.config/openstack/clouds.yaml", "/etc/openstack/clouds.yaml"],
            "OpenStack client clouds.yaml with passwords or application credential secrets")
            .content(any(&["password", "application_credential_secret", "token"])).mitre(&[FILES]),
        e("rclone-config", CloudCredentials, Medium, &["~/.config/rclone/rclone.conf"],
            "rclone remotes with cloud storage keys and OAuth tokens")
            .mitre(&[FILES]),
        e("s3cmd-config", CloudCredentials, High, &["~/.s3cfg"],
            "s3cmd config with S3 access and secret keys")
            .content(any(&["secret_key"])).mitre(&[FILES]),
        e("minio-client-config", CloudCredentials, High, &["~/.mc/config.json", "~/.mcli/config.json"],
            "MinIO client aliases with access and secret keys")
            .content(any(&["secretKey"])).mitre(&[FILES]),
        // Kubernetes.
        e("k8s-service-account-token", KubernetesToken, High,
            &["/var/run/secrets/kubernetes.io/serviceaccount/**/token",
              "/run/secrets/kubernetes.io/serviceaccount/**/token"],
            "Kubernetes service-account token mounted into a pod (the `**` also covers the `..<timestamp>/` directory the symlink resolves to)")
            .mitre(&[APP_TOKEN, CONTAINER_API]),
        e("kubelet-pod-volume-token", KubernetesToken, High,
            &["/var/lib/kubelet/pods/*/volumes/kubernetes.io~projected/**/token",
              "/var/lib/kubelet/pods/*/volumes/kubernetes.io~secret/**/token"],
            "Host-side copy of pods' service-account tokens; only the kubelet and the pod itself should read it")
            .mitre(&[APP_TOKEN, CONTAINER_API]),
        e("eks-irsa-token", KubernetesToken, High,
            &["/var/run/secrets/eks.amazonaws.com/serviceaccount/**/token",
              "/run/secrets/eks.amazonaws.com/serviceaccount/**/token"],
            "EKS IAM Roles for Service Accounts web identity token, exchangeable for AWS credentials")
            .mitre(&[APP_TOKEN]),
        e("eks-pod-identity-token", KubernetesToken, High,
            &["/var/run/secrets/pods.eks.amazonaws.com/serviceaccount/**/eks-pod-identity-token",
              "/run/secrets/pods.eks.amazonaws.com/serviceaccount/**/eks-pod-identity-token"],
            "EKS Pod Identity token, exchangeable for AWS credentials")
            .mitre(&[APP_TOKEN]),
        e("azure-workload-identity-token", KubernetesToken, High,
            &["/var/run/secrets/azure/tokens/**/azure-identity-token",
              "/run/secrets/azure/tokens/**/azure-identity-token"],
            "Azure Workload Identity federated token, exchangeable for Entra ID tokens")
            .mitre(&[APP_TOKEN]),
        e("kubeconfig-user", Kubeconfig, High, &["~/.kube/config"],
            "User kubeconfig; counts when it embeds a client key, token or password rather than an exec plugin")
            .content(any(&["client-key-data", "client-key:", "token:", "password:"])).mitre(&[FILES, CONTAINER_API]),
        e("kubernetes-admin-kubeconfig", Kubeconfig, Critical,
            &["/etc/kubernetes/admin.conf", "/etc/kubernetes/super-admin.conf"],
            "kubeadm cluster-admin kubeconfig")
            .mitre(&[FILES, CONTAINER_API]),
        e("kubernetes-component-kubeconfig", Kubeconfig, High,
            &["/etc/kubernetes/kubelet.conf", "/etc/kubernetes/bootstrap-kubelet.conf",
              "/etc/kubernetes/controller-manager.conf", "/etc/kubernetes/scheduler.conf",
              "/var/lib/kubelet/kubeconfig"],
            "Kubeconfigs of the kubelet and control-plane components")
            .mitre(&[FILES, CONTAINER_API]),
        e("k3s-rke2-admin-kubeconfig", Kubeconfig, Critical,
            &["/etc/rancher/k3s/k3s.yaml", "/etc/rancher/rke2/rke2.yaml"],
            "k3s/RKE2 cluster-admin kubeconfig")
            .mitre(&[FILES, CONTAINER_API]),
        e("k3s-rke2-join-token", KubernetesToken, Critical,
            &["/var/lib/rancher/k3s/server/token", "/var/lib/rancher/k3s/server/node-token",
              "/var/lib/rancher/k3s/server/agent-token", "/var/lib/rancher/rke2/server/token",
              "/var/lib/rancher/rke2/server/node-token", "/var/lib/rancher/rke2/server/agent-token"],
            "k3s/RKE2 server and node join tokens")
            .mitre(&[FILES]),
        e("kubernetes-pki-key", PrivateKey, Critical, &["/etc/kubernetes/pki/**/*.key"],
            "Kubernetes control-plane private keys (cluster CA, API server, service-account signing key)")
            .content(PrivateKeyBlock).mitre(&[KEYS]),
        e("etcd-pki-key", PrivateKey, Critical,
            &["/etc/kubernetes/pki/etcd/*.key", "/etc/etcd/**/*.key", "/etc/etcd/**/*-key.pem",
              "/etc/ssl/etcd/**/*-key.pem"],
            "etcd CA, peer and client private keys: whoever holds them reads every cluster secret")
            .content(PrivateKeyBlock).mitre(&[KEYS]),
        e("kubelet-pki-key", PrivateKey, High,
            &["/var/lib/kubelet/pki/*.key", "/var/lib/kubelet/pki/kubelet-*.pem"],
            "Kubelet client and serving private keys")
            .content(PrivateKeyBlock).mitre(&[KEYS]),
        e("kubelet-registry-config", RegistryCredentials, High, &["/var/lib/kubelet/config.json"],
            "Kubelet image-pull credentials")
            .content(registry_auth()).mitre(&[FILES]),
        // SSH, GPG and other private keys.
        e("ssh-private-key", PrivateKey, High, &["~/.ssh/id_*", "~/.ssh/*.pem", "~/.ssh/*.key"],
            "User SSH private keys")
            .exclude(&["**/*.pub"]).content(PrivateKeyBlock).mitre(&[KEYS]),
        e("ssh-host-private-key", PrivateKey, High, &["/etc/ssh/ssh_host_*_key"],
            "SSH server host private keys: whoever holds them can impersonate the host")
            .content(PrivateKeyBlock).mitre(&[KEYS]),
        e("gpg-private-keys", PrivateKey, High, &["~/.gnupg/private-keys-v1.d/*.key"],
            "GnuPG 2.1+ secret keys")
            .mitre(&[KEYS]),
        e("gpg-secret-keyring", PrivateKey, High, &["~/.gnupg/secring.gpg"],
            "GnuPG 1.x secret keyring")
            .mitre(&[KEYS]),
        e("sops-age-key", PrivateKey, High, &["~/.config/sops/age/keys.txt"],
            "age identities SOPS decrypts secrets with")
            .content(any(&["AGE-SECRET-KEY-"])).mitre(&[KEYS]),
        // Container registries.
        e("docker-config", RegistryCredentials, High, &["~/.docker/config.json", "~/.dockercfg"],
            "Docker client registry credentials; counts when they are stored inline rather than in a credential helper")
            .content(registry_auth()).mitre(&[FILES]),
        e("containers-auth", RegistryCredentials, High,
            &["~/.config/containers/auth.json", "/run/containers/*/auth.json",
              "/run/user/*/containers/auth.json"],
            "Podman/Buildah/Skopeo registry credentials")
            .content(registry_auth()).mitre(&[FILES]),
        e("docker-client-tls-key", PrivateKey, High, &["~/.docker/key.pem"],
            "Docker client TLS key for a remote daemon (daemon access is root on that host)")
            .content(PrivateKeyBlock).mitre(&[KEYS]),
        e("helm-registry-config", RegistryCredentials, High, &["~/.config/helm/registry/config.json"],
            "Helm OCI registry credentials")
            .content(registry_auth()).mitre(&[FILES]),
        e("helm-repositories", RegistryCredentials, Medium, &["~/.config/helm/repositories.yaml"],
            "Helm chart repositories; counts when a repository has a password")
            .content(any(&["password:"])).mitre(&[FILES]),
        // Package registries.
        e("npmrc", PackageRegistryToken, High, &["**/.npmrc"],
            "npm registry auth tokens, user or project level")
            .content(any(&["_auth", "_password"])).mitre(&[FILES]),
        e("yarnrc", PackageRegistryToken, High, &["**/.yarnrc.yml"],
            "Yarn Berry registry auth tokens")
            .content(any(&["npmAuthToken", "npmAuthIdent"])).mitre(&[FILES]),
        e("pypirc", PackageRegistryToken, High, &["~/.pypirc"],
            "PyPI upload credentials")
            .content(any(&["password"])).mitre(&[FILES]),
        e("pip-config-credentials", PackageRegistryToken, Medium,
            &["~/.config/pip/pip.conf", "~/.pip/pip.conf", "/etc/pip.conf"],
            "pip config; counts when an index URL embeds user:password")
            .content(re(url_userinfo)).mitre(&[FILES]),
        e("cargo-credentials", PackageRegistryToken, High,
            &["~/.cargo/credentials", "~/.cargo/credentials.toml"],
            "crates.io and alternative registry tokens")
            .content(any(&["token"])).mitre(&[FILES]),
        e("rubygems-credentials", PackageRegistryToken, High,
            &["~/.gem/credentials", "~/.local/share/gem/credentials"],
            "RubyGems API keys")
            .mitre(&[FILES]),
        e("maven-settings", PackageRegistryToken, Medium,
            &["~/.m2/settings.xml", "~/.m2/settings-security.xml"],
            "Maven server passwords and the master password that decrypts them")
            .content(any(&["<password>", "<privateKey>", "<passphrase>", "<master>"])).mitre(&[FILES]),
        e("gradle-properties", PackageRegistryToken, Medium, &["~/.gradle/gradle.properties"],
            "Gradle user properties; counts when a property named like a password, token or secret is set")
            .content(re(r"(?im)^[ \t]*[A-Za-z0-9_.-]*(password|passwd|token|secret|apikey|api_key)[A-Za-z0-9_.-]*[ \t]*[=:][ \t]*\S"))
            .mitre(&[FILES]),
        e("nuget-config", PackageRegistryToken, Medium,
            &["~/.nuget/NuGet/NuGet.Config", "~/.config/NuGet/NuGet.Config"],
            "NuGet package source credentials")
            .content(any(&["Password"])).mitre(&[FILES]),
        e("composer-auth", PackageRegistryToken, High,
            &["~/.composer/auth.json", "~/.config/composer/auth.json"],
            "PHP Composer repository credentials and OAuth tokens")
            .mitre(&[FILES]),
        // Version control.
        e("git-credentials", VcsCredentials, High, &["~/.git-credentials", "~/.config/git/credentials"],
            "git credential-store passwords and tokens in clear text")
            .mitre(&[FILES]),
        e("github-cli-hosts", VcsCredentials, High, &["~/.config/gh/hosts.yml"],
            "GitHub CLI OAuth tokens stored in the file instead of the keyring")
            .content(any(&["oauth_token"])).mitre(&[FILES, APP_TOKEN]),
        e("hub-config", VcsCredentials, High, &["~/.config/hub"],
            "hub (GitHub) CLI OAuth token")
            .content(any(&["oauth_token"])).mitre(&[FILES, APP_TOKEN]),
        e("gitlab-cli-config", VcsCredentials, High, &["~/.config/glab-cli/config.yml"],
            "GitLab CLI tokens")
            .content(any(&["token"])).mitre(&[FILES, APP_TOKEN]),
        e("netrc", GenericCredentials, High, &["~/.netrc", "~/_netrc"],
            "netrc logins used by curl, git, ftp and Go module downloads")
            .content(any(&["password"])).mitre(&[FILES]),
        // Databases.
        e("pgpass", DatabaseCredentials, High, &["~/.pgpass"],
            "PostgreSQL client password file")
            .mitre(&[FILES]),
        e("mysql-client-config", DatabaseCredentials, High, &["~/.my.cnf"],
            "MySQL/MariaDB client options; counts when a password is set")
            .content(any(&["password"])).mitre(&[FILES]),
        e("mysql-login-path", DatabaseCredentials, Medium, &["~/.mylogin.cnf"],
            "mysql_config_editor login paths (obfuscated, trivially reversible)")
            .mitre(&[FILES]),
        e("mysql-debian-maintenance", DatabaseCredentials, High, &["/etc/mysql/debian.cnf"],
            "Debian MySQL/MariaDB maintenance account password")
            .content(any(&["password"])).mitre(&[FILES]),
        e("mongodb-shell-rc", DatabaseCredentials, Medium, &["~/.mongorc.js", "~/.mongoshrc.js"],
            "MongoDB shell start-up script; counts when it authenticates")
            .content(re(r"(?i)(password|pwd\s*:|\.auth\s*\()")).mitre(&[FILES]),
        e("redis-server-config", DatabaseCredentials, Medium,
            &["/etc/redis/redis.conf", "/etc/redis.conf", "/etc/redis/sentinel.conf"],
            "Redis server config; counts when requirepass or masterauth is set")
            .content(re(r"(?m)^[ \t]*(requirepass|masterauth)[ \t]+\S")).mitre(&[FILES]),
        // Environment files.
        e("dotenv", Dotenv, Medium, &["**/.env", "**/.env.*"],
            "dotenv files in any directory; templates (.env.example and the like) are excluded")
            .exclude(&["**/.env.example", "**/.env.sample", "**/.env.template", "**/.env.dist", "**/.env.*.example"])
            .mitre(&[FILES]),
        e("direnv-envrc", Dotenv, Medium, &["**/.envrc"],
            "direnv files; counts when they set a variable named like a secret")
            .content(re(r"(?i)[A-Z0-9_]*(SECRET|TOKEN|PASSWORD|PASSWD|API_?KEY|ACCESS_KEY|PRIVATE_KEY)[A-Z0-9_]*="))
            .mitre(&[FILES]),
        // Secret managers, infrastructure tools and CI.
        e("vault-token", VaultToken, High, &["~/.vault-token"],
            "HashiCorp Vault token cached by `vault login`")
            .mitre(&[APP_TOKEN, FILES]),
        e("terraform-cli-credentials", ApiToken, High, &["~/.terraform.d/credentials.tfrc.json"],
            "Terraform Cloud/Enterprise API tokens written by `terraform login`")
            .mitre(&[APP_TOKEN, FILES]),
        e("terraform-state", GenericCredentials, Medium, &["**/terraform.tfstate", "**/terraform.tfstate.backup"],
            "Terraform state, which keeps resource attributes (generated passwords, keys) in clear text")
            .mitre(&[FILES]),
        e("pulumi-credentials", ApiToken, High, &["~/.pulumi/credentials.json"],
            "Pulumi Cloud access tokens")
            .content(any(&["accessToken"])).mitre(&[APP_TOKEN, FILES]),
        e("databricks-cli-config", ApiToken, High, &["~/.databrickscfg"],
            "Databricks CLI profiles with personal access tokens or passwords")
            .content(any(&["token", "password"])).mitre(&[APP_TOKEN, FILES]),
        e("huggingface-token", ApiToken, High, &["~/.cache/huggingface/token", "~/.huggingface/token"],
            "Hugging Face Hub access token")
            .mitre(&[APP_TOKEN, FILES]),
        e("gitlab-runner-config", CiCredentials, High,
            &["/etc/gitlab-runner/config.toml", "~/.gitlab-runner/config.toml"],
            "GitLab Runner registration and authentication tokens")
            .content(any(&["token"])).mitre(&[FILES]),
        e("jenkins-secrets", CiCredentials, Critical,
            &["/var/lib/jenkins/secrets/master.key", "/var/lib/jenkins/secrets/hudson.util.Secret",
              "/var/lib/jenkins/credentials.xml"],
            "Jenkins credential store and the keys that decrypt it")
            .mitre(&[FILES]),
        // Histories.
        e("shell-history", History, Medium,
            &["~/.bash_history", "~/.zsh_history", "~/.history", "~/.sh_history", "~/.ash_history",
              "~/.local/share/fish/fish_history"],
            "Shell histories, where typed passwords and exported tokens end up")
            .mitre(&[HISTORY]),
        e("database-client-history", History, Medium,
            &["~/.psql_history", "~/.mysql_history", "~/.sqlite_history", "~/.rediscli_history",
              "~/.dbshell", "~/.mongodb/mongosh/mongosh_repl_history"],
            "Database client histories (`ALTER USER ... PASSWORD`, `AUTH`)")
            .mitre(&[HISTORY, FILES]),
        e("repl-history", History, Low, &["~/.python_history", "~/.node_repl_history", "~/.irb_history"],
            "Interactive interpreter histories")
            .mitre(&[HISTORY, FILES]),
        // System password stores.
        e("shadow", PasswordFile, Critical, &["/etc/shadow", "/etc/shadow-"],
            "Local account password hashes")
            .mitre(&[SHADOW]),
        e("gshadow", PasswordFile, High, &["/etc/gshadow", "/etc/gshadow-"],
            "Group password hashes")
            .mitre(&[SHADOW]),
        e("security-opasswd", PasswordFile, High, &["/etc/security/opasswd"],
            "Previous password hashes kept by pam_pwhistory/pam_unix")
            .mitre(&[SHADOW]),
        e("htpasswd", PasswordFile, Medium, &["**/.htpasswd"],
            "HTTP basic-auth password hashes")
            .mitre(&[FILES]),
        e("samba-secrets", PasswordFile, High,
            &["/var/lib/samba/private/secrets.tdb", "/var/lib/samba/private/passdb.tdb"],
            "Samba machine account secret and user password hashes")
            .mitre(&[FILES]),
        // TLS, Kerberos, VPN.
        e("tls-private-key", PrivateKey, High,
            &["/etc/**/*.key", "/etc/ssl/private/*.pem", "/etc/pki/tls/private/*.pem"],
            "TLS and other private keys kept under /etc")
            .content(PrivateKeyBlock).mitre(&[KEYS]),
        e("letsencrypt-private-key", PrivateKey, High,
            &["/etc/letsencrypt/live/*/privkey.pem", "/etc/letsencrypt/archive/*/privkey*.pem"],
            "Let's Encrypt certificate private keys")
            .content(PrivateKeyBlock).mitre(&[KEYS]),
        e("kerberos-keytab", Keytab, High, &["/etc/krb5.keytab", "/etc/**/*.keytab"],
            "Kerberos keytabs: long-term keys of the host or of services")
            .mitre(&[FILES, KERBEROS]),
        e("kerberos-ticket-cache", Keytab, High, &["/tmp/krb5cc_*"],
            "Kerberos credential caches (ticket-granting tickets)")
            .mitre(&[CCACHE]),
        e("wireguard-config", VpnKey, High, &["/etc/wireguard/*.conf"],
            "WireGuard interface config with its private key")
            .content(any(&["PrivateKey"])).mitre(&[KEYS]),
        e("networkmanager-connection-secrets", VpnKey, Medium,
            &["/etc/NetworkManager/system-connections/*.nmconnection"],
            "NetworkManager connections; counts when they hold a Wi-Fi PSK, a password or a VPN secret")
            .content(any(&["psk=", "password=", "private-key=", "secrets="])).mitre(&[FILES]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC_BEGIN: &str =
        "<!-- catalog-table:begin (generated from Catalog::builtin().markdown_table(); do not edit by hand) -->\n";
    const DOC_END: &str = "<!-- catalog-table:end -->\n";
    const DOC_INTRO: &str = "# Built-in secret catalog\n\n\
proctor watches the files below as static secrets. A read of one of them by a process that is \
not among the secret's declared owners produces a `secret-read` finding with the entry's id, \
kind, severity and MITRE ATT&CK techniques; `proctor inventory` lists every catalogued file found \
on the node. Path patterns are globs over absolute, normalised paths: `~/` stands for every \
home directory (`/root`, `/home/<user>` and the homes in `/etc/passwd`), `**/` for any \
directory, and `*` never crosses a `/`. When a path matches several entries, the entry whose \
pattern has the most literal characters wins, then the one listed first. A content check, where \
present, must also pass for the file to count as a secret (an `~/.aws/config` holding only a \
region is not one). Policy can add entries or replace these by id. This table is generated from \
the code (`agent/src/secrets/catalog.rs`); a unit test fails when it drifts.\n\n";

    fn doc_path() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/secret-catalog.md")
    }

    fn generated_section() -> String {
        format!(
            "{DOC_BEGIN}{}{DOC_END}",
            Catalog::builtin().markdown_table()
        )
    }

    /// The generated part of `doc`, from the begin marker through the end marker.
    fn section_of(doc: &str) -> Option<&str> {
        let start = doc.find(DOC_BEGIN)?;
        let end = doc[start..].find(DOC_END)? + start + DOC_END.len();
        Some(&doc[start..end])
    }

    /// A PEM block built at run time, so that no key header sits in the
    /// source for secret scanners to trip over.
    fn pem(label: &str, kind: &str) -> String {
        let dashes = "-----";
        format!("{dashes}BEGIN {label}{kind}{dashes}\nAAAAC3NzaC1lZDI1NTE5\n{dashes}END {label}{kind}{dashes}\n")
    }

    fn private_pem(label: &str) -> String {
        pem(label, "PRIVATE KEY")
    }

    #[test]
    fn builtin_has_enough_unique_entries_with_mitre_ids() {
        let catalog = Catalog::builtin();
        assert!(catalog.entries().len() >= 45, "{}", catalog.entries().len());
        let technique = regex::Regex::new(r"^T[0-9]{4}(\.[0-9]{3})?$").unwrap();
        let mut ids = BTreeSet::new();
        for entry in catalog.entries() {
            assert!(ids.insert(entry.id.clone()), "duplicate id {}", entry.id);
            assert!(!entry.mitre.is_empty(), "{} has no MITRE id", entry.id);
            for id in &entry.mitre {
                assert!(technique.is_match(id), "{}: {id}", entry.id);
            }
            assert!(!entry.description.is_empty(), "{}", entry.id);
            assert!(catalog.entry(&entry.id).is_some());
        }
        assert!(catalog.entry("no-such-entry").is_none());
    }

    const MATCHES: &[(&str, &str)] = &[
        ("/home/alice/.aws/credentials", "aws-cli-credentials"),
        ("/root/.aws/config", "aws-cli-config"),
        ("/home/bob/.config/gcloud/application_default_credentials.json", "gcp-application-default-credentials"),
        ("/home/bob/.config/gcloud/credentials.db", "gcloud-credentials-db"),
        ("/home/bob/.config/gcloud/legacy_credentials/bob@example.com/adc.json", "gcloud-legacy-credentials"),
        ("/home/bob/.boto", "gsutil-boto-config"),
        ("/root/.azure/accessTokens.json", "azure-cli-access-tokens"),
        ("/home/carol/.azure/msal_token_cache.json", "azure-msal-token-cache"),
        ("/home/carol/.azure/msal_token_cache.bin", "azure-msal-token-cache"),
        ("/home/carol/.azure/service_principal_entries.json", "azure-service-principal"),
        ("/root/.oci/config", "oci-cli-config"),
        ("/root/.oci/oci_api_key.pem", "oci-api-signing-key"),
        ("/root/.oci/sessions/DEFAULT/oci_api_key.pem", "oci-api-signing-key"),
        ("/home/dave/.config/doctl/config.yaml", "digitalocean-doctl-config"),
        ("/home/dave/.aliyun/config.json", "alibaba-cloud-cli-config"),
        ("/home/dave/.bluemix/config.json", "ibm-cloud-cli-config"),
        ("/home/dave/.config/linode-cli", "linode-cli-config"),
        ("/etc/openstack/clouds.yaml", "openstack-clouds-yaml"),
        ("/var/run/secrets/kubernetes.io/serviceaccount/token", "k8s-service-account-token"),
        ("/run/secrets/kubernetes.io/serviceaccount/..2024_01_01_00_00_00.000000001/token", "k8s-service-account-token"),
        ("/var/lib/kubelet/pods/0d1c5e/volumes/kubernetes.io~projected/kube-api-access-x7k2p/token", "kubelet-pod-volume-token"),
        ("/var/run/secrets/eks.amazonaws.com/serviceaccount/token", "eks-irsa-token"),
        ("/var/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token", "eks-pod-identity-token"),
        ("/run/secrets/azure/tokens/azure-identity-token", "azure-workload-identity-token"),
        ("/home/alice/.kube/config", "kubeconfig-user"),
        ("/etc/kubernetes/admin.conf", "kubernetes-admin-kubeconfig"),
        ("/etc/kubernetes/kubelet.conf", "kubernetes-component-kubeconfig"),
        ("/etc/rancher/k3s/k3s.yaml", "k3s-rke2-admin-kubeconfig"),
        ("/var/lib/rancher/k3s/server/node-token", "k3s-rke2-join-token"),
        ("/etc/kubernetes/pki/ca.key", "kubernetes-pki-key"),
        ("/etc/kubernetes/pki/sa.key", "kubernetes-pki-key"),
        ("/etc/kubernetes/pki/etcd/server.key", "etcd-pki-key"),
        ("/var/lib/kubelet/pki/kubelet.key", "kubelet-pki-key"),
        ("/var/lib/kubelet/pki/kubelet-client-current.pem", "kubelet-pki-key"),
        ("/var/lib/kubelet/config.json", "kubelet-registry-config"),
        ("/root/.ssh/id_ed25519", "ssh-private-key"),
        ("/home/alice/.ssh/id_rsa", "ssh-private-key"),
        ("/home/alice/.ssh/deploy.pem", "ssh-private-key"),
        ("/etc/ssh/ssh_host_ed25519_key", "ssh-host-private-key"),
        ("/home/alice/.gnupg/private-keys-v1.d/0123456789ABCDEF0123456789ABCDEF01234567.key", "gpg-private-keys"),
        ("/home/alice/.gnupg/secring.gpg", "gpg-secret-keyring"),
        ("/home/alice/.config/sops/age/keys.txt", "sops-age-key"),
        ("/home/alice/.docker/config.json", "docker-config"),
        ("/home/alice/.config/containers/auth.json", "containers-auth"),
        ("/run/containers/0/auth.json", "containers-auth"),
        ("/run/user/1000/containers/auth.json", "containers-auth"),
        ("/home/alice/.npmrc", "npmrc"),
        ("/srv/web/.npmrc", "npmrc"),
        ("/home/alice/.pypirc", "pypirc"),
        ("/etc/pip.conf", "pip-config-credentials"),
        ("/home/alice/.cargo/credentials.toml", "cargo-credentials"),
        ("/home/alice/.cargo/credentials", "cargo-credentials"),
        ("/home/alice/.gem/credentials", "rubygems-credentials"),
        ("/home/alice/.m2/settings.xml", "maven-settings"),
        ("/home/alice/.gradle/gradle.properties", "gradle-properties"),
        ("/home/alice/.nuget/NuGet/NuGet.Config", "nuget-config"),
        ("/home/alice/.config/composer/auth.json", "composer-auth"),
        ("/home/alice/.git-credentials", "git-credentials"),
        ("/home/alice/.config/gh/hosts.yml", "github-cli-hosts"),
        ("/home/alice/.config/hub", "hub-config"),
        ("/home/alice/.netrc", "netrc"),
        ("/home/alice/.pgpass", "pgpass"),
        ("/root/.my.cnf", "mysql-client-config"),
        ("/home/alice/.mongorc.js", "mongodb-shell-rc"),
        ("/etc/redis/redis.conf", "redis-server-config"),
        ("/srv/app/.env.production", "dotenv"),
        ("/home/alice/project/.env", "dotenv"),
        ("/app/.env", "dotenv"),
        ("/home/alice/project/.envrc", "direnv-envrc"),
        ("/root/.vault-token", "vault-token"),
        ("/home/alice/.terraform.d/credentials.tfrc.json", "terraform-cli-credentials"),
        ("/opt/infra/prod/terraform.tfstate", "terraform-state"),
        ("/home/alice/.cache/huggingface/token", "huggingface-token"),
        ("/etc/gitlab-runner/config.toml", "gitlab-runner-config"),
        ("/var/lib/jenkins/secrets/master.key", "jenkins-secrets"),
        ("/home/alice/.bash_history", "shell-history"),
        ("/root/.zsh_history", "shell-history"),
        ("/home/alice/.local/share/fish/fish_history", "shell-history"),
        ("/home/alice/.psql_history", "database-client-history"),
        ("/root/.mysql_history", "database-client-history"),
        ("/home/alice/.python_history", "repl-history"),
        ("/etc/shadow", "shadow"),
        ("/etc/../etc/shadow", "shadow"),
        ("//etc/./shadow", "shadow"),
        ("/etc/gshadow", "gshadow"),
        ("/etc/security/opasswd", "security-opasswd"),
        ("/var/www/site/.htpasswd", "htpasswd"),
        ("/etc/ssl/private/ssl-cert-snakeoil.key", "tls-private-key"),
        ("/etc/nginx/tls/site.key", "tls-private-key"),
        ("/etc/letsencrypt/live/example.org/privkey.pem", "letsencrypt-private-key"),
        ("/etc/letsencrypt/archive/example.org/privkey3.pem", "letsencrypt-private-key"),
        ("/etc/krb5.keytab", "kerberos-keytab"),
        ("/etc/httpd/conf/http.keytab", "kerberos-keytab"),
        ("/tmp/krb5cc_1000", "kerberos-ticket-cache"),
        ("/etc/wireguard/wg0.conf", "wireguard-config"),
        ("/etc/NetworkManager/system-connections/home.nmconnection", "networkmanager-connection-secrets"),
    ];

    const NO_MATCH: &[&str] = &[
        "/home/alice/.ssh/id_ed25519.pub",
        "/root/.ssh/id_rsa-cert.pub",
        "/home/alice/.ssh/known_hosts",
        "/home/alice/.ssh/authorized_keys",
        "/etc/passwd",
        "/etc/group",
        "/home/alice/notes.txt",
        "/etc/../etc/hosts",
        "/etc/ssl/certs/ca-certificates.crt",
        "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
        "/var/run/secrets/kubernetes.io/serviceaccount/namespace",
        "/srv/app/.env.example",
        "/srv/app/.env.sample",
        "/srv/app/.env.production.example",
        "/home/alice/.environment",
        "/home/alice/sub/.aws/credentials",
        "/home/alice/.aws/credentials/backup",
        "/var/lib/postgresql/.pgpass",
        "home/alice/.aws/credentials",
        "",
        "/",
    ];

    #[test]
    fn concrete_paths_match_their_entries() {
        let catalog = Catalog::builtin();
        assert!(MATCHES.len() >= 40);
        for (path, id) in MATCHES {
            let got = catalog.match_path(Path::new(path)).map(|e| e.id.as_str());
            assert_eq!(got, Some(*id), "{path}");
        }
    }

    #[test]
    fn unrelated_paths_do_not_match() {
        let catalog = Catalog::builtin();
        for path in NO_MATCH {
            let got = catalog.match_path(Path::new(path)).map(|e| e.id.as_str());
            assert_eq!(got, None, "{path}");
        }
    }

    #[test]
    fn every_matching_path_passes_the_kernel_basename_filter() {
        let catalog = Catalog::builtin();
        let exact = catalog.basenames();
        let prefixes = catalog.basename_prefixes();
        let suffixes = catalog.basename_suffixes();
        for set in [&exact, &prefixes, &suffixes] {
            assert!(set
                .iter()
                .all(|s| !s.is_empty() && s.len() <= MAX_BASENAME_LEN));
        }
        for (path, _) in MATCHES {
            let name = Path::new(path).file_name().unwrap().to_str().unwrap();
            let passes = exact.contains(name)
                || prefixes.iter().any(|p| name.starts_with(p.as_str()))
                || suffixes.iter().any(|s| name.ends_with(s.as_str()));
            assert!(passes, "{path}: basename {name} escapes the kernel filter");
        }
        for name in ["credentials", "config", "token", ".env", "shadow", ".npmrc"] {
            assert!(exact.contains(name), "{name}");
        }
        for prefix in ["id_", ".env.", "ssh_host_", "krb5cc_", "msal_token_cache."] {
            assert!(prefixes.contains(prefix), "{prefix}");
        }
        for suffix in [".key", ".pem", ".keytab", ".nmconnection"] {
            assert!(suffixes.contains(suffix), "{suffix}");
        }
        assert!(catalog.unfiltered_patterns().is_empty());
    }

    #[test]
    fn basename_filters_handle_braces_long_names_and_bare_wildcards() {
        let long = "a".repeat(70);
        let entries = vec![
            CatalogEntry::new(
                "braces",
                SecretKind::PrivateKey,
                Severity::High,
                &["/etc/x/*.{key,pem}"],
                "x",
            ),
            CatalogEntry::new(
                "long-name",
                SecretKind::ApiToken,
                Severity::Low,
                &[&format!("/etc/{long}")],
                "x",
            ),
            CatalogEntry::new(
                "long-suffix",
                SecretKind::ApiToken,
                Severity::Low,
                &[&format!("/etc/*{long}b")],
                "x",
            ),
            CatalogEntry::new(
                "bare",
                SecretKind::ApiToken,
                Severity::Low,
                &["/etc/secrets/*"],
                "x",
            ),
            CatalogEntry::new(
                "both-sides",
                SecretKind::ApiToken,
                Severity::Low,
                &["/etc/ssl/privkey*.pem"],
                "x",
            ),
        ];
        let catalog = Catalog::from_entries(entries).unwrap();
        let suffixes = catalog.basename_suffixes();
        assert!(suffixes.contains(".key") && suffixes.contains(".pem"));
        let prefixes = catalog.basename_prefixes();
        assert!(prefixes.contains(&"a".repeat(MAX_BASENAME_LEN)));
        assert!(prefixes.contains("privkey"));
        assert!(suffixes.contains(&format!("{}b", "a".repeat(MAX_BASENAME_LEN - 1))));
        assert!(catalog.basenames().is_empty());
        assert_eq!(
            catalog.unfiltered_patterns(),
            vec![("bare", "/etc/secrets/*")]
        );
        assert!(catalog
            .match_path(Path::new(&format!("/etc/{long}")))
            .is_some());
    }

    #[test]
    fn most_literal_pattern_wins_then_catalog_order() {
        let entries = vec![
            CatalogEntry::new(
                "broad",
                SecretKind::PrivateKey,
                Severity::High,
                &["/etc/**/*.key"],
                "x",
            ),
            CatalogEntry::new(
                "narrow",
                SecretKind::PrivateKey,
                Severity::Critical,
                &["/etc/app/*.key"],
                "x",
            ),
            CatalogEntry::new(
                "tie-first",
                SecretKind::ApiToken,
                Severity::Low,
                &["/opt/*/token"],
                "x",
            ),
            CatalogEntry::new(
                "tie-second",
                SecretKind::ApiToken,
                Severity::Low,
                &["/opt/a/*"],
                "x",
            ),
        ];
        let catalog = Catalog::from_entries(entries).unwrap();
        let id = |p: &str| catalog.match_path(Path::new(p)).map(|e| e.id.clone());
        assert_eq!(id("/etc/app/x.key").as_deref(), Some("narrow"));
        assert_eq!(id("/etc/other/x.key").as_deref(), Some("broad"));
        assert_eq!(id("/opt/a/token").as_deref(), Some("tie-first"));
    }

    #[test]
    fn content_checks() {
        let catalog = Catalog::builtin();
        let entry = |id| catalog.entry(id).unwrap();
        let ssh = entry("ssh-private-key");
        for label in ["OPENSSH ", "RSA ", "EC ", "ENCRYPTED ", ""] {
            assert!(
                catalog.content_matches(ssh, private_pem(label).as_bytes()),
                "{label}"
            );
        }
        assert!(catalog.content_matches(ssh, pem("PGP ", "PRIVATE KEY BLOCK").as_bytes()));
        assert!(catalog.content_matches(ssh, b"PuTTY-User-Key-File-3: ssh-ed25519\n"));
        assert!(!catalog.content_matches(ssh, pem("", "PUBLIC KEY").as_bytes()));
        assert!(!catalog.content_matches(ssh, pem("", "CERTIFICATE").as_bytes()));
        assert!(!catalog.content_matches(ssh, b"ssh-ed25519 AAAAC3Nza alice@laptop\n"));

        let aws = entry("aws-cli-config");
        assert!(!catalog.content_matches(aws, b"[default]\nregion = eu-west-1\n"));
        assert!(catalog.content_matches(aws, b"[prod]\naws_secret_access_key = not-a-real-value\n"));

        let redis = entry("redis-server-config");
        assert!(catalog.content_matches(redis, b"port 6379\nrequirepass example-not-real\n"));
        assert!(!catalog.content_matches(redis, b"port 6379\n# requirepass foobared\n"));

        let pip = entry("pip-config-credentials");
        assert!(catalog.content_matches(
            pip,
            b"[global]\nindex-url = https://ci:pw@pypi.example.org/simple\n"
        ));
        assert!(!catalog.content_matches(
            pip,
            b"[global]\nindex-url = https://pypi.example.org/simple\n"
        ));

        let docker = entry("docker-config");
        assert!(catalog.content_matches(
            docker,
            br#"{"auths":{"r.example":{"auth":"dXNlcjpwdw=="}}}"#
        ));
        assert!(
            !catalog.content_matches(docker, br#"{"auths":{"r.example":{}},"credsStore":"pass"}"#)
        );

        // No check: any content counts, even none.
        assert!(catalog.content_matches(entry("shadow"), b""));

        // An entry that is not (or no longer) the catalog's own is checked by its own rule.
        let mut foreign = entry("aws-cli-config").clone();
        foreign.content = Some(ContentCheck::ContainsAny(vec!["region".into()]));
        assert!(catalog.content_matches(&foreign, b"[default]\nregion = eu-west-1\n"));
        foreign.content = Some(ContentCheck::Regex("(".into()));
        assert!(!catalog.content_matches(&foreign, b"anything"));
    }

    #[test]
    fn invalid_entries_are_rejected_with_the_entry_id_and_pattern() {
        let entry = |id: &str, paths: &[&str]| {
            CatalogEntry::new(id, SecretKind::ApiToken, Severity::Low, paths, "x")
        };
        let err = Catalog::from_entries(vec![entry("my-token", &["/etc/[oops/token"])])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("my-token") && err.contains("/etc/[oops/token"),
            "{err}"
        );
        for (paths, needle) in [
            (&["etc/token"][..], "must start with"),
            (&["/etc/../token"][..], "'..'"),
            (&["/etc//token"][..], "empty component"),
            (&["/etc/a**/token"][..], "whole component"),
            (&["/etc/"][..], "must name a file"),
            (&["/etc/{a,b/c}/token"][..], "span a '/'"),
            (&[][..], "no path patterns"),
        ] {
            let err = Catalog::from_entries(vec![entry("bad-one", paths)])
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("bad-one") && err.contains(needle),
                "{paths:?}: {err}"
            );
        }
        let err = Catalog::from_entries(vec![entry("Not_Kebab", &["/x"])])
            .unwrap_err()
            .to_string();
        assert!(err.contains("Not_Kebab"), "{err}");
        let err = Catalog::from_entries(vec![entry("same", &["/x"]), entry("same", &["/y"])])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("same") && err.contains("more than once"),
            "{err}"
        );
        let mut bad_regex = entry("bad-regex", &["/x"]);
        bad_regex.content = Some(ContentCheck::Regex("(unclosed".into()));
        let err = Catalog::from_entries(vec![bad_regex])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("bad-regex") && err.contains("(unclosed"),
            "{err}"
        );
        let mut empty_any = entry("empty-any", &["/x"]);
        empty_any.content = Some(ContentCheck::ContainsAny(vec![]));
        assert!(Catalog::from_entries(vec![empty_any]).is_err());
    }

    #[test]
    fn extend_replaces_by_id_and_appends_new_entries() {
        let builtin = Catalog::builtin();
        let replaced = CatalogEntry::new(
            "dotenv",
            SecretKind::Dotenv,
            Severity::High,
            &["/srv/**/.env"],
            "only /srv",
        );
        let added = CatalogEntry::new(
            "acme-token",
            SecretKind::ApiToken,
            Severity::Critical,
            &["/etc/acme/token"],
            "x",
        )
        .mitre(&[FILES]);
        let catalog = builtin.extend(vec![replaced, added]).unwrap();
        assert_eq!(catalog.entries().len(), builtin.entries().len() + 1);
        let position = |c: &Catalog| c.entries().iter().position(|e| e.id == "dotenv");
        assert_eq!(position(&catalog), position(&builtin));
        assert_eq!(catalog.entry("dotenv").unwrap().severity, Severity::High);
        assert!(catalog.match_path(Path::new("/home/alice/.env")).is_none());
        assert_eq!(
            catalog.match_path(Path::new("/srv/x/.env")).unwrap().id,
            "dotenv"
        );
        assert_eq!(
            catalog.match_path(Path::new("/etc/acme/token")).unwrap().id,
            "acme-token"
        );
    }

    #[test]
    fn with_homes_extends_tilde_patterns() {
        let catalog = Catalog::builtin()
            .with_homes(&[
                PathBuf::from("/var/lib/postgresql"),
                PathBuf::from("/srv/[odd]home/"),
            ])
            .unwrap();
        let id = |p: &str| catalog.match_path(Path::new(p)).map(|e| e.id.clone());
        assert_eq!(id("/var/lib/postgresql/.pgpass").as_deref(), Some("pgpass"));
        assert_eq!(
            id("/srv/[odd]home/.ssh/id_rsa").as_deref(),
            Some("ssh-private-key")
        );
        assert_eq!(id("/srv/ohome/.ssh/id_rsa"), None);
        assert!(Catalog::builtin()
            .with_homes(&[PathBuf::from("/")])
            .is_err());
        assert!(Catalog::builtin()
            .with_homes(&[PathBuf::from("relative")])
            .is_err());
    }

    #[test]
    fn as_str_agrees_with_serde() {
        for entry in builtin_entries() {
            let kind = serde_yaml_ng::to_string(&entry.kind).unwrap();
            assert_eq!(kind.trim(), entry.kind.as_str());
            let severity = serde_yaml_ng::to_string(&entry.severity).unwrap();
            assert_eq!(severity.trim(), entry.severity.as_str());
        }
        let all = [
            Severity::Info,
            Severity::Low,
            Severity::Medium,
            Severity::High,
            Severity::Critical,
        ];
        assert!(all.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn entries_round_trip_through_yaml() {
        let entries = builtin_entries();
        let yaml = serde_yaml_ng::to_string(&entries).unwrap();
        let back: Vec<CatalogEntry> = serde_yaml_ng::from_str(&yaml).unwrap();
        assert_eq!(back, entries);
        assert!(yaml.contains("kind: cloud_credentials") && yaml.contains("severity: critical"));
        assert!(yaml.contains("content: contains_private_key_block"));
    }

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

    #[test]
    fn catalog_doc_is_up_to_date() {
        let doc = fs::read_to_string(doc_path()).unwrap_or_default();
        assert!(
            section_of(&doc) == Some(generated_section().as_str()),
            "docs/secret-catalog.md is out of date with the built-in catalog; regenerate it with \
             `cargo test -p proctor --lib -- regenerate_catalog_doc --ignored`"
        );
    }

    /// Rewrites the generated table of docs/secret-catalog.md and keeps the
    /// hand-written text around it; writes the whole file when it is missing.
    #[test]
    #[ignore = "rewrites docs/secret-catalog.md; run on purpose after changing the catalog"]
    fn regenerate_catalog_doc() {
        let doc = fs::read_to_string(doc_path()).unwrap_or_default();
        let new = match section_of(&doc) {
            Some(old) => doc.replacen(old, &generated_section(), 1),
            None => format!("{DOC_INTRO}{}", generated_section()),
        };
        fs::write(doc_path(), new).unwrap();
    }
}
