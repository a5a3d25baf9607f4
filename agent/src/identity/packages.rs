//! Whether a process's exec'd file is an installed package's unmodified program: the index kept current on the blocking pool, verdicts cached per file version, image layers asked for containers.
//!
//! The index maps each executable path in `/var/lib/dpkg/info/*.md5sums`
//! (MD5) and in the rpm database (`rpmdb.sqlite`: SHA-256 on current
//! distributions, MD5 on old packages; see [`crate::identity::rpmdb`]) to its
//! package and digest. A process counts as that package's program only by
//! kernel evidence: the file it exec'd (dev, inode) is the file at the
//! package's path, root-owned and not writable by group or others, its
//! content has the package's digest, and the SHA-256 read in the same pass is
//! the one the hash cache verified for the exec'd version (so the package's
//! digest is about the very content the kernel ran). A copy in /tmp, a
//! modified binary or a binary replaced after exec is not.
//!
//! A program run from a container's root file system is vouched for by the
//! package database inside its image instead (see
//! [`crate::identity::image_layers`]).
//!
//! All file I/O runs on the blocking pool: the index is built at start-up
//! and rebuilt when a database changes (dpkg rewrites its info directory on
//! every install or removal, rpm its SQLite file and its write-ahead log);
//! verdicts are cached per file version.

use std::{
    num::NonZeroUsize,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::SystemTime,
};

use futures::future::{BoxFuture, FutureExt, Shared};
use lru::LruCache;

use crate::{
    event::Process,
    identity::image_layers::{ImageLayers, LayerVerdict},
};

// The rest of the agent keeps naming these through `identity::packages`.
use crate::identity::package_index::{verify_file, FileClaim, PackageIndex};
pub use crate::identity::package_index::{PackagedExe, PackagesConfig};

/// The claim of a file whose hash the hash cache verified for the exec'd
/// version; none for fileless, deleted, modified or unhashed files.
fn exe_claim(p: &Process) -> Option<FileClaim> {
    let e = &p.exe;
    if e.fileless || e.deleted || e.modified_after_exec || e.hash_status != "ok" {
        return None;
    }
    Some(FileClaim {
        path: e.path.clone(),
        dev: e.dev,
        ino: e.inode,
        sha256: e.sha256.clone()?,
    })
}

fn script_claim(p: &Process) -> Option<FileClaim> {
    let s = &p.interpreter.as_ref()?.script;
    if s.hash_status != "ok" {
        return None;
    }
    Some(FileClaim {
        path: s.path.clone(),
        dev: s.dev?,
        ino: s.inode?,
        sha256: s.sha256.clone()?,
    })
}

pub type PackagedFuture = Shared<BoxFuture<'static, Option<PackagedExe>>>;

#[derive(Default)]
struct Loaded {
    index: Arc<PackageIndex>,
    /// The databases' mtimes when `index` was read.
    mtimes: Vec<Option<SystemTime>>,
    /// Bumped on every reload: cached verdicts of an older index are stale.
    generation: u64,
}

/// The package index and the verdicts per file version.
pub struct Packages {
    cfg: PackagesConfig,
    layers: ImageLayers,
    loaded: Mutex<Loaded>,
    verdicts: Mutex<LruCache<(u64, FileClaim), PackagedFuture>>,
    /// The process view [`Packages::verdict`] answered last, with the index
    /// generation and the answer: a process reading files calls it with the
    /// same view for every read, and the cache above needs its key built
    /// (four string copies) to be asked.
    last: Mutex<Option<LastVerdict>>,
    /// Checks that could not decide (a container's mounts gone) and were
    /// dropped from `verdicts` so that the next read asks again.
    undecided: AtomicU64,
}

struct LastVerdict {
    /// Held, so that another view cannot land at its address.
    view: Arc<Process>,
    generation: u64,
    verdict: Option<PackagedExe>,
}

impl Packages {
    /// Starts reading the index on the blocking pool. Must be called inside
    /// a tokio runtime.
    pub fn start(cfg: PackagesConfig) -> Arc<Packages> {
        let p = Arc::new(Packages {
            layers: ImageLayers::new(&cfg),
            cfg,
            loaded: Mutex::default(),
            verdicts: Mutex::new(LruCache::new(NonZeroUsize::new(4096).unwrap())),
            last: Mutex::default(),
            undecided: AtomicU64::new(0),
        });
        let warm = p.clone();
        tokio::task::spawn_blocking(move || warm.current());
        p
    }

    /// The index, re-read first if a package database changed since.
    fn current(&self) -> (Arc<PackageIndex>, u64) {
        let mtimes: Vec<Option<SystemTime>> = self
            .cfg
            .watched()
            .iter()
            .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
            .collect();
        let mut loaded = self.loaded.lock().unwrap();
        if loaded.generation == 0 || loaded.mtimes != mtimes {
            let (index, problems) = PackageIndex::load(&self.cfg);
            for p in &problems {
                tracing::warn!(
                    "{p}; programs of that database are not recognised as expected secret clients"
                );
            }
            if index.is_empty() {
                tracing::warn!(
                    "no package database found below {} (dpkg at {}, rpm at {:?}): no program \
                     is recognised as an expected secret client; set packages.root, \
                     packages.dpkg_info or packages.rpm_databases",
                    self.cfg.root.display(),
                    self.cfg.dpkg_info.display(),
                    self.cfg.rpm_databases
                );
            }
            tracing::debug!("package index: {} programs", index.len());
            *loaded = Loaded {
                index: Arc::new(index),
                mtimes,
                generation: loaded.generation + 1,
            };
        }
        (loaded.index.clone(), loaded.generation)
    }

    /// [`Packages::verify`]'s answer for `p`, awaited; the last view's
    /// answer again when `p` is that very view and the index is unchanged.
    pub async fn verdict(self: &Arc<Self>, p: &Arc<Process>) -> Option<PackagedExe> {
        let generation = self.loaded.lock().unwrap().generation;
        if let Some(last) = self.last.lock().unwrap().as_ref() {
            if Arc::ptr_eq(&last.view, p) && last.generation == generation {
                return last.verdict.clone();
            }
        }
        let undecided = self.undecided.load(Ordering::Relaxed);
        let verdict = match self.verify(p) {
            Some(f) => f.await,
            None => None,
        };
        // An undecided check is not kept here either: the next read asks again.
        let decided = self.undecided.load(Ordering::Relaxed) == undecided;
        *self.last.lock().unwrap() = decided.then(|| LastVerdict {
            view: p.clone(),
            generation,
            verdict: verdict.clone(),
        });
        verdict
    }

    /// Whether `p` runs an installed package's unmodified program: the exec'd
    /// binary, or for a `#!` script the script, with its interpreter packaged
    /// too. `None` when the identity cannot qualify at all.
    pub fn verify(self: &Arc<Self>, p: &Process) -> Option<PackagedFuture> {
        let exe = exe_claim(p)?;
        let script = match &p.interpreter {
            Some(_) => Some(script_claim(p)?),
            None => None,
        };
        let generation = self.loaded.lock().unwrap().generation;
        let key = (generation, script.clone().unwrap_or_else(|| exe.clone()));
        let mut verdicts = self.verdicts.lock().unwrap();
        if let Some(f) = verdicts.get(&key) {
            return Some(f.clone());
        }
        let me = self.clone();
        let (pid, ppid) = (p.pid, p.ppid);
        let cache_key = key.clone();
        let fut = tokio::task::spawn_blocking(move || {
            let (index, _) = me.current();
            let mut unknown = false;
            let mut check = |claim: &FileClaim| {
                verify_file(&index, claim).or_else(|| match me.layers.verify(claim, pid, ppid) {
                    LayerVerdict::Packaged(found) => Some(found),
                    LayerVerdict::No => None,
                    LayerVerdict::Unknown => {
                        unknown = true;
                        None
                    }
                })
            };
            let verdict = check(&exe).and_then(|binary| match &script {
                Some(s) => check(s),
                None => Some(binary),
            });
            if unknown {
                // Its container's mounts were gone: the next process of the
                // same file may still show them. (The verdict was put in the
                // cache before this task could take the lock.)
                me.verdicts.lock().unwrap().pop(&cache_key);
                me.undecided.fetch_add(1, Ordering::Relaxed);
            }
            verdict
        })
        .map(|r| r.ok().flatten())
        .boxed()
        .shared();
        verdicts.put(key, fut.clone());
        Some(fut)
    }
}
