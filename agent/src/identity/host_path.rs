//! Whether an executable's path names the very file the kernel ran in the agent's (host) mount namespace, checked on the blocking pool.
//!
//! `/proc/<pid>/exe` reads as the path inside the process's own mount
//! namespace: a container, or a user with `unshare -Urm`, can bind-mount any
//! file over `/opt/app/bin/x`. The kernel's (dev, inode) of the exec'd file
//! cannot be forged, so the path is "host"-true only when the agent's own
//! lookup of it, not following a final symlink, reaches that inode. Policy
//! globs and the `proctor:exe-host-path` selector rest on this answer.
//!
//! The lookup is a `lstat`, which never opens the file, but it still runs off
//! the event loop: a path on a hung network or FUSE mount could stall it.
//! Answers are kept per (file version, path): the file's ctime moves when a
//! link to it is added or removed, so a cached answer cannot outlive a
//! rename over the path or a new hard link to the file.

use std::{
    num::NonZeroUsize,
    os::unix::fs::MetadataExt,
    sync::{Arc, LazyLock, Mutex},
};

use futures::future::{BoxFuture, FutureExt, Shared};
use lru::LruCache;
use tokio::sync::Semaphore;

use crate::identity::hash_cache::FileKey;

/// Where `exe.path` is true (the event field `exe.path_namespace`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathNamespace {
    /// The path leads to the exec'd file in the agent's mount namespace.
    Host,
    /// The path is only the process's own name for the file (another mount
    /// namespace, a file since replaced or deleted, or no path at all).
    Process,
}

impl PathNamespace {
    pub fn as_str(self) -> &'static str {
        match self {
            PathNamespace::Host => "host",
            PathNamespace::Process => "process",
        }
    }
}

/// `exe.path_namespace` while the check is still running.
pub const PENDING: &str = "pending";

pub type PlaceFuture = Shared<BoxFuture<'static, PathNamespace>>;

/// Answers kept; one per distinct (file version, path) exec'd recently.
const CAPACITY: usize = 4096;
/// Lookups in flight at once: a path on a hung mount pins one blocking
/// thread, never the whole pool.
const WORKERS: usize = 2;

struct Cache {
    answers: Mutex<LruCache<(FileKey, String), PlaceFuture>>,
    workers: Arc<Semaphore>,
}

/// One per agent: the answer is a fact about the host's file system, not
/// about any one configuration.
static CACHE: LazyLock<Cache> = LazyLock::new(|| Cache {
    answers: Mutex::new(LruCache::new(
        NonZeroUsize::new(CAPACITY).unwrap_or(NonZeroUsize::MIN),
    )),
    workers: Arc::new(Semaphore::new(WORKERS)),
});

/// The answer for the exec'd file version `key` at `path` (as the agent
/// reads `/proc/<pid>/exe`). Must be called inside a tokio runtime.
pub fn check(key: FileKey, path: &str) -> PlaceFuture {
    if !path.starts_with('/') {
        return futures::future::ready(PathNamespace::Process)
            .boxed()
            .shared();
    }
    let mut answers = crate::sync::lock(&CACHE.answers);
    let k = (key, path.to_string());
    if let Some(f) = answers.get(&k) {
        return f.clone();
    }
    let first = spawn_lookup(key, path.to_string());
    let failed = k.clone();
    let fut = async move {
        match first.await {
            Ok(answer) => answer,
            // The runtime that ran the check shut down before it finished
            // (each test has its own runtime; the cache outlives them). Ask
            // again from the runtime polling now, and forget the dead entry.
            Err(_) => {
                crate::sync::lock(&CACHE.answers).pop(&failed);
                spawn_lookup(key, failed.1)
                    .await
                    .unwrap_or(PathNamespace::Process)
            }
        }
    }
    .boxed()
    .shared();
    answers.put(k, fut.clone());
    fut
}

/// One lookup on the blocking pool, at most `WORKERS` at a time, started now
/// so the answer is on its way before anyone waits for it.
fn spawn_lookup(key: FileKey, path: String) -> tokio::task::JoinHandle<PathNamespace> {
    let workers = CACHE.workers.clone();
    tokio::spawn(async move {
        let _permit = workers.acquire_owned().await;
        tokio::task::spawn_blocking(move || namespace_of(&path, key.dev, key.ino))
            .await
            .unwrap_or(PathNamespace::Process)
    })
}

/// The check itself: `path` looked up in the agent's mount namespace without
/// following a final symlink, compared with the kernel's (dev, inode).
pub fn namespace_of(path: &str, dev: u64, ino: u64) -> PathNamespace {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_file() && m.dev() == dev && m.ino() == ino => PathNamespace::Host,
        _ => PathNamespace::Process,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_very_file_at_the_path_is_host_true() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        let other = dir.path().join("other");
        let link = dir.path().join("link");
        std::fs::write(&real, b"a").unwrap();
        std::fs::write(&other, b"b").unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let m = std::fs::metadata(&real).unwrap();
        let at = |p: &std::path::Path| namespace_of(p.to_str().unwrap(), m.dev(), m.ino());
        assert_eq!(at(&real), PathNamespace::Host);
        // Another file at the path: what a bind mount in another namespace shows.
        assert_eq!(at(&other), PathNamespace::Process);
        // A final symlink is not followed: /proc/<pid>/exe names the file itself.
        assert_eq!(at(&link), PathNamespace::Process);
        assert_eq!(at(&dir.path().join("missing")), PathNamespace::Process);
        assert_eq!(at(dir.path()), PathNamespace::Process);
    }

    #[tokio::test]
    async fn a_rename_over_the_path_is_a_new_question() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::write(&bin, b"v1").unwrap();
        let v1 = FileKey::of_path(&bin);
        let path = bin.to_str().unwrap();
        assert_eq!(check(v1, path).await, PathNamespace::Host);
        // Replaced as a package manager does: the old inode's link count
        // (and so its ctime) moves, the new one is another file version.
        let staged = dir.path().join("bin.new");
        std::fs::write(&staged, b"v2").unwrap();
        std::fs::rename(&staged, &bin).unwrap();
        assert_eq!(
            check(FileKey::of_path(&bin), path).await,
            PathNamespace::Host
        );
        assert_eq!(
            namespace_of(path, v1.dev, v1.ino),
            PathNamespace::Process,
            "the old inode is no longer at the path"
        );
        assert_eq!(check(v1, "memfd:x").await, PathNamespace::Process);
    }

    #[tokio::test]
    async fn a_check_whose_runtime_died_is_asked_again() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::write(&bin, b"x").unwrap();
        let (key, path) = (FileKey::of_path(&bin), bin.to_str().unwrap().to_string());
        let p = path.clone();
        // Spawned on a runtime that is dropped before the lookup runs: the
        // cached future's task is cancelled, as when a test's runtime ends.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            rt.block_on(async { drop(check(key, &p)) });
        })
        .join()
        .unwrap();
        assert_eq!(check(key, &path).await, PathNamespace::Host);
    }
}
