//! SHA-256 of executables, computed once per file version, off the event loop.
//!
//! A file version is (dev, inode, size, mtime, ctime) as the kernel saw it at
//! exec. Before hashing, the opened file is checked to be that very version,
//! and checked again after reading, so a cache entry can never carry the hash
//! of some other file or of content written after the exec. Every open and
//! read goes through [`crate::safe_open`]: a FIFO or device at a candidate
//! path cannot pin a worker, and no file is read past `hash.max_file_bytes`
//! whatever its size claims.

use std::{
    fs::{File, Metadata},
    num::NonZeroUsize,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Instant,
};

use futures::future::{BoxFuture, FutureExt, Shared};
use lru::LruCache;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::safe_open::{self, Links, SafeOpenError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileKey {
    /// st_dev encoding.
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime: (i64, u32),
    pub ctime: (i64, u32),
}

impl FileKey {
    /// The key of the file at `p` as it is now (tests).
    #[cfg(test)]
    pub fn of_path(p: &std::path::Path) -> FileKey {
        FileKey::of(&std::fs::metadata(p).unwrap())
    }

    pub fn of(meta: &std::fs::Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec() as u32),
            ctime: (meta.ctime(), meta.ctime_nsec() as u32),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashOutcome {
    Ok([u8; 32]),
    /// Larger than `hash.max_file_bytes` (by its size, or by what a read
    /// turned up when the size understated it, as procfs files do); not hashed.
    TooLarge,
    /// The path led to a FIFO, socket, device or directory, not a regular
    /// file: never opened for a read that could block or never end.
    NotRegular,
    /// Some file was reachable, but none was the inode the kernel reported.
    Unverified,
    /// The inode is right but its content changed after the exec (size or mtime differ).
    Modified,
    /// Only the inode's ctime moved (chmod, link count, or a write that reset
    /// mtime): the content may or may not be the exec'd one, so no hash is vouched for.
    Changed,
    /// Nothing could be opened (process gone and no usable path).
    Unavailable,
}

impl HashOutcome {
    pub fn status(&self) -> &'static str {
        match self {
            HashOutcome::Ok(_) => "ok",
            HashOutcome::TooLarge => "too_large",
            HashOutcome::NotRegular => "not_regular",
            HashOutcome::Unverified => "unverified",
            HashOutcome::Modified => "modified",
            HashOutcome::Changed => "changed",
            HashOutcome::Unavailable => "unavailable",
        }
    }

    pub fn sha256_hex(&self) -> Option<String> {
        match self {
            HashOutcome::Ok(d) => Some(hex::encode(d)),
            _ => None,
        }
    }

    /// Outcomes that are facts about the file version, not about this attempt.
    fn is_final(&self) -> bool {
        matches!(self, HashOutcome::Ok(_) | HashOutcome::TooLarge)
    }
}

pub type HashFuture = Shared<BoxFuture<'static, HashOutcome>>;

/// Where the content of a file version may be read from.
#[derive(Debug)]
pub enum Source {
    /// Already open (e.g. /proc/<pid>/exe opened the moment the exec record
    /// arrived, so a process that exits at once can still be hashed).
    Open(File),
    Path(PathBuf),
}

impl Source {
    /// The file, checked to be a regular file with the inode of `key`, with
    /// its `fstat` and a name for messages. Paths are followed: an exec'd
    /// name is often a symlink, and /proc/<pid>/exe is a magic link.
    fn open(self, key: &FileKey) -> Result<(File, Metadata, PathBuf), SafeOpenError> {
        let expect = Some((key.dev, key.ino));
        match self {
            Source::Open(f) => {
                let name = PathBuf::from("<file opened at exec>");
                let meta = safe_open::check_open(&name, &f, expect)?;
                Ok((f, meta, name))
            }
            Source::Path(p) => {
                let (f, meta) = safe_open::open_regular(&p, Links::Follow, expect)?;
                Ok((f, meta, p))
            }
        }
    }
}

#[derive(Debug, Default)]
pub struct HashStats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub bytes_hashed: AtomicU64,
    pub hash_ns: AtomicU64,
    pub too_large: AtomicU64,
    pub unverified: AtomicU64,
    /// Requests whose every candidate was a FIFO, socket, device or directory.
    pub not_regular: AtomicU64,
}

#[derive(Debug, Serialize)]
pub struct HashStatsSnapshot {
    pub entries: usize,
    pub hits: u64,
    pub misses: u64,
    pub bytes_hashed: u64,
    pub hash_seconds: f64,
    pub too_large: u64,
    pub unverified: u64,
    pub not_regular: u64,
}

pub struct HashCache {
    entries: Mutex<LruCache<FileKey, HashFuture>>,
    workers: Arc<Semaphore>,
    max_bytes: u64,
    pub stats: Arc<HashStats>,
}

impl HashCache {
    pub fn new(capacity: usize, workers: usize, max_bytes: u64) -> Arc<Self> {
        Arc::new(Self {
            entries: Mutex::new(LruCache::new(
                NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN),
            )),
            workers: Arc::new(Semaphore::new(workers.max(1))),
            max_bytes,
            stats: Arc::default(),
        })
    }

    /// The hash of file version `key`, reading it through the first of
    /// `candidates` that turns out to be that version. Concurrent requests for
    /// one key share one computation. Must be called inside a tokio runtime.
    pub fn request(&self, key: FileKey, candidates: Vec<Source>) -> HashFuture {
        let mut entries = self.entries.lock().unwrap();
        if let Some(f) = entries.get(&key) {
            // A failed attempt (e.g. the process was gone) says nothing about
            // the next one, which may have a live /proc path.
            if f.peek().is_none_or(HashOutcome::is_final) {
                self.stats.hits.fetch_add(1, Ordering::Relaxed);
                return f.clone();
            }
        }
        self.stats.misses.fetch_add(1, Ordering::Relaxed);
        let fut = if key.size > self.max_bytes {
            self.stats.too_large.fetch_add(1, Ordering::Relaxed);
            futures::future::ready(HashOutcome::TooLarge)
                .boxed()
                .shared()
        } else {
            let workers = self.workers.clone();
            let stats = self.stats.clone();
            let max = self.max_bytes;
            // Spawned, not lazily polled: hashing starts now, whoever awaits later.
            let task = tokio::spawn(async move {
                let _permit = workers.acquire_owned().await;
                tokio::task::spawn_blocking(move || {
                    let t = Instant::now();
                    let out = hash_version(key, candidates, max);
                    stats
                        .hash_ns
                        .fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
                    match &out {
                        HashOutcome::Ok(_) => {
                            stats.bytes_hashed.fetch_add(key.size, Ordering::Relaxed);
                        }
                        HashOutcome::Unverified => {
                            stats.unverified.fetch_add(1, Ordering::Relaxed);
                        }
                        HashOutcome::TooLarge => {
                            stats.too_large.fetch_add(1, Ordering::Relaxed);
                        }
                        HashOutcome::NotRegular => {
                            stats.not_regular.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {}
                    }
                    out
                })
                .await
                .unwrap_or(HashOutcome::Unavailable)
            });
            task.map(|r| r.unwrap_or(HashOutcome::Unavailable))
                .boxed()
                .shared()
        };
        entries.put(key, fut.clone());
        fut
    }

    /// A hash never requested because its path led to no regular file.
    pub fn count_not_regular(&self) {
        self.stats.not_regular.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HashStatsSnapshot {
        let s = &self.stats;
        HashStatsSnapshot {
            entries: self.entries.lock().unwrap().len(),
            hits: s.hits.load(Ordering::Relaxed),
            misses: s.misses.load(Ordering::Relaxed),
            bytes_hashed: s.bytes_hashed.load(Ordering::Relaxed),
            hash_seconds: s.hash_ns.load(Ordering::Relaxed) as f64 / 1e9,
            too_large: s.too_large.load(Ordering::Relaxed),
            unverified: s.unverified.load(Ordering::Relaxed),
            not_regular: s.not_regular.load(Ordering::Relaxed),
        }
    }
}

/// Hashes the first candidate that is file version `key`.
pub fn hash_version(key: FileKey, candidates: Vec<Source>, max_bytes: u64) -> HashOutcome {
    let mut saw_other_file = false;
    let mut saw_not_regular = false;
    for source in candidates {
        let (mut file, before, name) = match source.open(&key) {
            Ok(opened) => opened,
            Err(SafeOpenError::InodeChanged { .. }) => {
                saw_other_file = true;
                continue;
            }
            Err(e @ SafeOpenError::NotRegular { .. }) => {
                tracing::debug!("not hashed: {e}");
                saw_not_regular = true;
                continue;
            }
            Err(_) => continue,
        };
        let now = FileKey::of(&before);
        if now != key {
            tracing::debug!(
                "inode {} is not the version the kernel reported: {:?} != {:?}",
                key.ino,
                now,
                key
            );
            return version_change(now, key);
        }
        if before.size() > max_bytes {
            return HashOutcome::TooLarge;
        }
        let digest = match sha256_capped(&name, &mut file, max_bytes) {
            Ok(d) => d,
            Err(SafeOpenError::TooLarge { .. }) => return HashOutcome::TooLarge,
            Err(_) => continue,
        };
        // A write racing with the read would leave a hash of neither version.
        return match file.metadata() {
            Ok(after) if FileKey::of(&after) == key => HashOutcome::Ok(digest),
            Ok(after) => version_change(FileKey::of(&after), key),
            Err(_) => HashOutcome::Changed,
        };
    }
    if saw_other_file {
        HashOutcome::Unverified
    } else if saw_not_regular {
        HashOutcome::NotRegular
    } else {
        HashOutcome::Unavailable
    }
}

fn version_change(now: FileKey, then: FileKey) -> HashOutcome {
    if now.size != then.size || now.mtime != then.mtime {
        HashOutcome::Modified
    } else {
        HashOutcome::Changed
    }
}

/// SHA-256 of all of `file`, or `TooLarge` past `max_bytes`.
fn sha256_capped(name: &Path, file: &mut File, max_bytes: u64) -> Result<[u8; 32], SafeOpenError> {
    let mut h = Sha256::new();
    safe_open::read_all_capped(name, file, max_bytes, |chunk| h.update(chunk))?;
    Ok(h.finalize().into())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn hashes_only_the_version_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::fs::write(&a, b"hello").unwrap();
        std::fs::write(&b, b"other").unwrap();
        let ka = FileKey::of_path(&a);
        let want: [u8; 32] = Sha256::digest(b"hello").into();
        // The wrong file first, then the right one.
        let p = |p: &std::path::Path| Source::Path(p.to_path_buf());
        assert_eq!(
            hash_version(ka, vec![p(&b), p(&a)], 1 << 20),
            HashOutcome::Ok(want)
        );
        assert_eq!(
            hash_version(ka, vec![p(&b)], 1 << 20),
            HashOutcome::Unverified
        );
        assert_eq!(
            hash_version(ka, vec![p(&dir.path().join("missing"))], 1 << 20),
            HashOutcome::Unavailable
        );
        assert_eq!(hash_version(ka, vec![p(&a)], 2), HashOutcome::TooLarge);
        // An already-open fd is tried like a path.
        assert_eq!(
            hash_version(
                ka,
                vec![p(&b), Source::Open(File::open(&a).unwrap())],
                1 << 20
            ),
            HashOutcome::Ok(want)
        );
        // Unlinking moves ctime: the content is no longer vouched for.
        let opened = File::open(&a).unwrap();
        std::fs::remove_file(&a).unwrap();
        assert_eq!(
            hash_version(ka, vec![Source::Open(opened)], 1 << 20),
            HashOutcome::Changed
        );
        std::fs::write(&a, b"hello").unwrap();
        // Same inode, new content: never the old hash, never the new one under the old key.
        let ka = FileKey::of_path(&a);
        let mut f = std::fs::OpenOptions::new().append(true).open(&a).unwrap();
        f.write_all(b" more").unwrap();
        drop(f);
        assert_eq!(
            hash_version(ka, vec![p(&a)], 1 << 20),
            HashOutcome::Modified
        );
    }

    #[test]
    fn fifos_and_devices_are_never_read_and_size_zero_files_are_capped() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("script");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        // A writer that never writes: a blocking open would succeed and the read hang.
        let _writer = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&fifo)
            .unwrap();
        let p = |p: &std::path::Path| Source::Path(p.to_path_buf());
        assert_eq!(
            hash_version(FileKey::of_path(&fifo), vec![p(&fifo)], 1 << 20),
            HashOutcome::NotRegular
        );
        let zero = std::path::Path::new("/dev/zero");
        assert_eq!(
            hash_version(FileKey::of_path(zero), vec![p(zero)], 1 << 20),
            HashOutcome::NotRegular
        );
        // st_size 0, kilobytes of content: cut off at the cap, not hashed.
        let maps = std::path::Path::new("/proc/self/maps");
        let km = FileKey::of_path(maps);
        assert_eq!(km.size, 0);
        assert_eq!(hash_version(km, vec![p(maps)], 64), HashOutcome::TooLarge);
        assert_eq!(HashOutcome::NotRegular.status(), "not_regular");
    }

    #[tokio::test]
    async fn cache_shares_one_computation() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::write(&a, b"x".repeat(10_000)).unwrap();
        let k = FileKey::of_path(&a);
        let cache = HashCache::new(16, 1, 1 << 20);
        let f1 = cache.request(k, vec![Source::Path(a.clone())]);
        let f2 = cache.request(k, vec![Source::Path(a.clone())]);
        assert_eq!(f1.await, f2.await);
        let s = cache.snapshot();
        assert_eq!((s.hits, s.misses, s.bytes_hashed), (1, 1, 10_000));
    }
}
