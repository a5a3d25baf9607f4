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
//!
//! # Where things are
//!
//! * `model`: the entry, its secret kind and content check, and the errors of
//!   a bad entry;
//! * `builtin`: the built-in entries (rendered in docs/secret-catalog.md);
//! * `pattern`: validating, expanding and compiling path patterns, their
//!   specificity, and the basename prefixes and suffixes the kernel compares;
//! * `content`: compiling and running content checks;
//! * `index`: the compiled [`Catalog`] and which entry a path is an instance of;
//! * `discover`: the walk that finds catalogued files already on the node;
//! * `doc`: the Markdown table of docs/secret-catalog.md.

mod builtin;
mod content;
mod discover;
mod doc;
mod index;
mod model;
mod pattern;
#[cfg(test)]
mod testkeys;

pub use builtin::builtin_entries;
pub use content::contains_private_key_block;
pub use discover::{passwd_homes, DiscoverReport, DiscoverRoots, CONTENT_PEEK_BYTES};
pub use index::Catalog;
pub use model::{CatalogEntry, CatalogError, ClientName, ContentCheck, SecretKind};
pub use pattern::MAX_BASENAME_LEN;
