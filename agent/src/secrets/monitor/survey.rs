//! Periodic looks at the node's files (the new-file directory poll, discovery rescans, the kubelet's Secret volumes) done on the blocking pool; the ingest task only hands out the work and applies what it found.

use std::{
    collections::{HashMap, HashSet},
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Instant, SystemTime},
};

use crate::{
    identity::hash_cache::FileKey,
    identity::pods::PodCache,
    secrets::{
        catalog::{Catalog, DiscoverRoots},
        fingerprint::Fingerprinter,
        inventory::{InventoryStore, Write},
        kernel_watch::KernelWatch,
        kube::layout::{self, Layout},
    },
};

use super::{file_probe, lent_store::take_finished, SecretMonitor, MAX_SECRET_BYTES};

/// A look at the node's files, owning what it needs to run on another thread.
pub(super) struct SurveyJob {
    /// Polled directories with the mtime last seen.
    dirs: Vec<(PathBuf, Option<SystemTime>)>,
    /// Whether a rescan is due whatever the directories say.
    rescan: bool,
    catalog: Arc<Catalog>,
    discover: DiscoverRoots,
    /// Fingerprints of file versions already read: not read again.
    known: HashMap<FileKey, Option<Arc<str>>>,
    /// Paths checked for being gone: the watched files, or for a rescan
    /// those the inventory holds as present, read from `inventory` here.
    present: Vec<String>,
    /// The monitor's reading connection, lent for a rescan and handed back.
    inventory: Option<InventoryStore>,
    fingerprinter: Fingerprinter,
    /// The kubelet root and its previous layout (kept scans of unchanged volumes).
    kube: Option<(PathBuf, Layout)>,
}

/// A catalogued file discovery found, read as it is now.
pub(super) struct FoundFile {
    pub path: String,
    pub catalog_id: String,
    pub meta: std::fs::Metadata,
    pub fingerprint: Option<String>,
    pub parent: Option<std::fs::Metadata>,
}

/// What a rescan found.
pub(super) struct Rescan {
    pub visited: usize,
    pub truncated: bool,
    pub files: Vec<FoundFile>,
    /// Inventory paths no longer there.
    pub gone: Vec<String>,
    pub fingerprint_reads: u64,
    pub refused: u64,
    /// Started because a polled directory changed (not by the interval).
    pub by_dirs: bool,
}

/// What a [`SurveyJob`] found.
pub(super) struct Surveyed {
    dirs: Vec<(PathBuf, Option<SystemTime>)>,
    rescan: Option<Rescan>,
    /// The kubelet volumes as they are now, and as they were.
    kube: Option<(Layout, Layout)>,
    /// The connection the job was lent, back.
    inventory: Option<InventoryStore>,
    /// 1 when the inventory could not be read for the rescan.
    store_errors: u64,
}

impl SurveyJob {
    fn run(mut self) -> Surveyed {
        let mut store_errors = 0;
        if let Some(store) = &self.inventory {
            match store.secrets() {
                Ok(known) => {
                    self.present = known
                        .into_iter()
                        .filter(|s| s.present && !s.path.starts_with("env:"))
                        .map(|s| s.path)
                        .collect();
                }
                Err(e) => {
                    tracing::warn!("inventory not read for the rescan: {e:#}");
                    store_errors = 1;
                }
            }
        }
        let mut dirs_changed = false;
        for (d, seen) in &mut self.dirs {
            let now = std::fs::metadata(&*d).and_then(|m| m.modified()).ok();
            if now != *seen {
                *seen = now;
                dirs_changed = true;
            }
        }
        let rescan = (self.rescan || dirs_changed).then(|| {
            let found = self.rescan(dirs_changed);
            // The walk's directory listings and paths, freed in this
            // thread's arena: the RSS soak stepped up by 2-3 MiB at the
            // first periodic rescan (300 s) and kept it.
            crate::heap::give_back_freed();
            found
        });
        let kube = self.kube.take().map(|(root, old)| {
            let fresh = layout::scan(&root, &old);
            (fresh, old)
        });
        Surveyed {
            dirs: self.dirs,
            rescan,
            kube,
            inventory: self.inventory,
            store_errors,
        }
    }

    fn rescan(&self, by_dirs: bool) -> Rescan {
        let report = self.catalog.discover_report(&self.discover);
        let mut out = Rescan {
            visited: report.visited,
            truncated: report.truncated,
            files: Vec::new(),
            gone: Vec::new(),
            fingerprint_reads: 0,
            refused: 0,
            by_dirs,
        };
        let mut found = HashSet::new();
        for (path, id) in report.found {
            let p = path.to_string_lossy().into_owned();
            found.insert(p.clone());
            // Discovery reports real paths: a symlink or FIFO there now is a
            // swap since the walk, not the secret it judged.
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            let fingerprint = match self.known.get(&FileKey::of(&meta)) {
                Some(fp) => fp.as_deref().map(String::from),
                None => {
                    out.fingerprint_reads += 1;
                    let expect = Some((meta.dev(), meta.ino()));
                    match file_probe::read_secret(&p, None, expect, MAX_SECRET_BYTES) {
                        Ok(mut buf) => {
                            let fp = self.fingerprinter.fingerprint(&buf);
                            buf.fill(0);
                            Some(fp)
                        }
                        Err(refused) => {
                            out.refused += u64::from(refused);
                            None
                        }
                    }
                }
            };
            let parent = path.parent().and_then(|d| std::fs::metadata(d).ok());
            out.files.push(FoundFile {
                path: p,
                catalog_id: id,
                meta,
                fingerprint,
                parent,
            });
        }
        out.gone = self
            .present
            .iter()
            .filter(|p| !found.contains(*p) && !Path::new(p).exists())
            .cloned()
            .collect();
        out
    }
}

impl<K: KernelWatch> SecretMonitor<K> {
    /// The look at the node's files due now, if any: the directory poll
    /// (when on), a rescan past `rescan_interval`, the kubelet volumes.
    fn survey_job(&mut self, force_rescan: bool) -> Option<SurveyJob> {
        let dirs: Vec<_> = self
            .new_file_dirs
            .as_ref()
            .map(|d| d.iter().map(|(p, t)| (p.clone(), *t)).collect())
            .unwrap_or_default();
        let rescan = force_rescan || self.rescan_due();
        let kube = self.kube_due().then(|| self.take_kube_layout()).flatten();
        if dirs.is_empty() && !rescan && kube.is_none() {
            return None;
        }
        // A rescan that is due checks the paths the inventory holds as
        // present, read by the job; a directory poll (every second), or a
        // rescan whose connection a failed job took, the watched files.
        let inventory = if rescan {
            self.survey_store.take()
        } else {
            None
        };
        let present = if inventory.is_some() {
            Vec::new()
        } else {
            self.watched.iter().map(|w| w.path.to_string()).collect()
        };
        Some(SurveyJob {
            dirs,
            rescan,
            catalog: self.catalog.clone(),
            discover: self.discover.clone(),
            known: self
                .fingerprints
                .iter()
                .map(|(k, v)| (*k, v.clone()))
                .collect(),
            present,
            inventory,
            fingerprinter: self.fingerprinter.clone(),
            kube,
        })
    }

    /// Applies a finished look and starts the next one due (called every
    /// second); the file I/O runs on the blocking pool.
    pub fn survey(&mut self, pods: Option<&PodCache>) {
        match take_finished(&mut self.survey_in_flight) {
            Some(Ok(found)) => self.apply_survey(found, pods),
            Some(Err(e)) => tracing::error!(
                "look at the node's secret files failed: {e}; the inventory connection it held is gone, so later rescans check the watched files for being gone instead of the inventory's list"
            ),
            // Still running: the next look waits for it.
            None if self.survey_in_flight.is_some() => return,
            None => {}
        }
        if let Some(job) = self.survey_job(false) {
            if job.rescan {
                self.last_scan = Instant::now();
            }
            self.survey_in_flight = Some(tokio::task::spawn_blocking(move || job.run()));
        }
    }

    /// The same look, done here and now: start-up and a policy reload.
    pub fn scan(&mut self) {
        self.last_scan = Instant::now();
        let Some(mut job) = self.survey_job(true) else {
            return;
        };
        // The kubelet volumes are looked at with the pod list, by `survey`.
        if let Some((_, old)) = job.kube.take() {
            self.put_kube_layout(old);
        }
        let found = job.run();
        self.apply_survey(found, None);
    }

    fn apply_survey(&mut self, found: Surveyed, pods: Option<&PodCache>) {
        let Surveyed {
            dirs,
            rescan,
            kube,
            inventory,
            store_errors,
        } = found;
        if inventory.is_some() {
            self.survey_store = inventory;
        }
        self.stats.store_errors += store_errors;
        if let Some(polled) = self.new_file_dirs.as_mut() {
            for (d, t) in dirs {
                if let Some(seen) = polled.get_mut(&d) {
                    *seen = t;
                }
            }
        }
        if let Some(r) = rescan {
            self.stats.last_scan_visited = r.visited;
            self.stats.last_scan_truncated = r.truncated;
            self.stats.fingerprint_reads += r.fingerprint_reads;
            self.stats.reads_refused += r.refused;
            self.stats.new_file_rescans += u64::from(r.by_dirs);
            for f in r.files {
                self.track_version(
                    &f.path,
                    &f.catalog_id,
                    &f.meta,
                    f.fingerprint,
                    f.parent.as_ref(),
                );
            }
            for p in r.gone {
                self.writer.send(Write::Absent(p));
            }
        }
        if let Some((fresh, old)) = kube {
            self.apply_kube(fresh, old, pods);
        }
    }
}
