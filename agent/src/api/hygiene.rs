//! Hygiene evidence for attestation answers: the exec-time environment verdict of each exec, and whether its binary is an installed package's unmodified program.

use std::{num::NonZeroUsize, sync::Arc, sync::Mutex, time::Duration};

use lru::LruCache;

use crate::{api::selectors::Hygiene, event::Process, identity::packages::Packages};

/// Exec-time environment verdicts kept, one per live process (a process's
/// verdict goes when it exits); past this many live processes the least
/// recently asked lose theirs (and with it the `env-static-secrets:none`
/// selector), never gain one.
const ENV_VERDICTS: usize = 64 * 1024;

/// What the agent learnt about each exec that an identity server may require.
pub struct Evidence {
    /// The agent's package index (`None`: no `binary-package` selectors).
    pub packages: Option<Arc<Packages>>,
    /// exec_id -> the environment held no static credential at exec.
    env: Mutex<LruCache<String, bool>>,
}

impl Default for Evidence {
    fn default() -> Self {
        Self::new(None)
    }
}

impl Evidence {
    pub fn new(packages: Option<Arc<Packages>>) -> Self {
        Self {
            packages,
            env: Mutex::new(LruCache::new(NonZeroUsize::new(ENV_VERDICTS).unwrap())),
        }
    }

    /// Records what the exec-time scan of `exec_id`'s environment found:
    /// `clean` when it read the whole environment and found no credential.
    pub fn record_env(&self, exec_id: &str, clean: bool) {
        self.env
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .put(exec_id.to_string(), clean);
    }

    /// Drops `exec_id`'s verdict: its process exited. Kept only for live
    /// processes, the verdicts of a long-running workload are not pushed out
    /// by a churn of short ones (which had also held ~10 MiB of them).
    pub fn forget_env(&self, exec_id: &str) {
        self.env
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop(exec_id);
    }

    /// Whether `exec_id`'s environment was scanned at exec and was clean.
    pub fn env_clean(&self, exec_id: &str) -> bool {
        self.env
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(exec_id)
            .copied()
            .unwrap_or(false)
    }

    /// The hygiene of `p` (hashes resolved), waiting at most `wait` for the
    /// package check, which reads the binary on the blocking pool.
    pub async fn of(&self, p: &Process, wait: Duration) -> Hygiene {
        let verdict = self.packages.as_ref().and_then(|pk| pk.verify(p));
        let package = match verdict {
            Some(f) => tokio::time::timeout(wait, f).await.ok().flatten(),
            None => None,
        };
        Hygiene {
            // Only the host's packages: an image's own database is written
            // by whoever built the image, no ground for a workload identity.
            package: package
                .filter(|x| x.layer.is_none())
                .map(|x| x.package.to_string()),
            env_clean: self.env_clean(&p.exec_id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_verdicts_are_per_exec_and_unknown_is_not_clean() {
        let e = Evidence::default();
        e.record_env("a", true);
        e.record_env("b", false);
        assert!(e.env_clean("a"));
        assert!(!e.env_clean("b"));
        assert!(!e.env_clean("never-scanned"));
        // An exited process's verdict is dropped; the others stay.
        e.forget_env("a");
        assert!(!e.env_clean("a"));
        assert!(!e.env_clean("b"));
        e.record_env("c", true);
        assert!(e.env_clean("c"));
        assert_eq!(e.env.lock().unwrap().len(), 2);
    }
}
