//! The compiled catalog: entries built into glob sets, and which entry a path is an instance of.

use foldhash::{HashMap, HashMapExt};
use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

use globset::{GlobSet, GlobSetBuilder};
use regex::bytes::Regex as BytesRegex;

use super::{
    builtin_entries,
    content::compile_check,
    pattern::{
        classify_basename, compile_glob, expand_braces, expand_home, is_default_home, specificity,
        truncate_back, truncate_front, validate_pattern, BasenameFilter,
    },
    CatalogEntry, CatalogError, MAX_BASENAME_LEN,
};
use crate::paths::normalize;

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

    /// Every entry's `paths` with `~/` replaced by the homes, for the walk.
    pub(super) fn expanded(&self) -> &[Vec<String>] {
        &self.expanded
    }

    /// The entry `path` is an instance of, if any (see "Which entry wins" in
    /// the catalog module's documentation). `path` is normalised lexically first (`.`,
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
    /// Give it the start of the file
    /// ([`CONTENT_PEEK_BYTES`](super::CONTENT_PEEK_BYTES) is enough for every
    /// built-in check).
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        event::Severity,
        secrets::catalog::{builtin::FILES, ContentCheck, SecretKind},
    };

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
}
