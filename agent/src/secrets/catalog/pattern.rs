//! Path patterns: validation, `~/` expansion, compilation, specificity and kernel basename filters.
//!
//! The component trie that the discovery walk follows is built here from the same patterns.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use globset::GlobBuilder;

use super::CatalogError;

/// The longest basename, prefix or suffix the kernel filter compares (its map
/// keys are 64-byte NUL-terminated buffers).
pub const MAX_BASENAME_LEN: usize = 63;

fn is_glob_meta(c: char) -> bool {
    matches!(c, '*' | '?' | '[' | ']' | '{' | '}' | '\\')
}

pub(super) fn has_glob_meta(s: &str) -> bool {
    s.contains(is_glob_meta)
}

pub(super) fn validate_pattern(id: &str, pattern: &str) -> Result<(), CatalogError> {
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

pub(super) fn expand_home(pattern: &str, homes: &[PathBuf]) -> Vec<String> {
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

pub(super) fn compile_glob(id: &str, pattern: &str) -> Result<globset::Glob, CatalogError> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map_err(|source| CatalogError::BadGlob {
            id: id.to_string(),
            pattern: pattern.to_string(),
            source,
        })
}

/// The homes `~/` always stands for: `/root` and `/home/<user>`.
pub(super) fn is_default_home(home: &Path) -> bool {
    home == Path::new("/root") || (home.starts_with("/home") && home.components().count() == 3)
}

/// Literal characters in a pattern: wildcards, classes and alternations count
/// nothing, `~/` counts nothing (its expansion is the same for every pattern).
pub(super) fn specificity(pattern: &str) -> usize {
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

pub(super) enum BasenameFilter {
    Exact(String),
    Prefix(String),
    Suffix(String),
    None,
}

pub(super) fn classify_basename(comp: &str) -> BasenameFilter {
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
pub(super) fn expand_braces(comp: &str) -> Vec<String> {
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

pub(super) fn truncate_front(s: &str) -> &str {
    let mut end = s.len().min(MAX_BASENAME_LEN);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

pub(super) fn truncate_back(s: &str) -> &str {
    let mut start = s.len().saturating_sub(MAX_BASENAME_LEN);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// The patterns of a catalog as a tree of path components.
#[derive(Default)]
pub(super) struct PatternTrie {
    pub(super) matcher: ComponentMatcher,
    /// A pattern ends here.
    pub(super) terminal: bool,
    pub(super) children: BTreeMap<String, PatternTrie>,
}

#[derive(Default)]
pub(super) enum ComponentMatcher {
    #[default]
    Literal,
    Glob(globset::GlobMatcher),
    AnyDepth,
    Never,
}

impl PatternTrie {
    pub(super) fn insert<'a>(&mut self, mut comps: impl Iterator<Item = &'a str>) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        event::Severity,
        secrets::catalog::{Catalog, CatalogEntry, SecretKind},
    };

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
}
