//! Paths as the agent compares them: lexically normalised, never resolved
//! through the file system (a path that arrives with an event may name a
//! link an attacker swaps a moment later).

use std::path::{Component, Path, PathBuf};

/// Lexical normalisation of an absolute path (`/etc/../etc/x` -> `/etc/x`),
/// without touching the file system; `None` for a relative path.
pub fn normalize(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::from("/");
    let mut components = path.components();
    if components.next() != Some(Component::RootDir) {
        return None;
    }
    for c in components {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    Some(out)
}
