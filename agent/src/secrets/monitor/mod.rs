//! Static-secret monitoring: decides which secret files the kernel watches
//! (written through [`KernelWatch`]), turns matched opens into `file_open`
//! events and `secret-read` findings, scans new processes' environments, and
//! records everything in the inventory.

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use std::{
    num::NonZeroUsize,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use lru::LruCache;
use proctor_common::{InodeKey, QuarantineEntry};
use serde::Serialize;

use crate::{
    clock::now_ns,
    detect::findings,
    event::{Process, SecretInfo},
    identity::hash_cache::FileKey,
    identity::per_process::{PerProcess, ProcessKey},
    secrets::catalog::{Catalog, DiscoverRoots},
    secrets::env,
    secrets::fingerprint::Fingerprinter,
    secrets::inventory::{
        ContentAge, DestinationBatch, InventoryStore, InventoryWriter, SecretRecord, Write,
    },
    secrets::kernel_watch::{
        name_key, quarantine_entry, quarantine_entry_of, KernelMaps, KernelWatch,
    },
    secrets::owner_files::OwnerFiles,
    secrets::policy::{Enforcement, SecretsConfig},
    secrets::read_batch::ReadBatch,
    secrets::search::{self, SearchWatch},
    secrets::usage::{identity_key, SecretUsage},
};

/// Content beyond this is not read: the fingerprint covers the first MiB.
pub const MAX_SECRET_BYTES: u64 = 1 << 20;

/// Distinct clean environments remembered (16 bytes each): a node runs a
/// few hundred distinct ones at a time.
const CLEAN_ENVS: usize = 1024;
/// Secrets whose read reports are kept for sharing (one per secret file
/// content on the node, in practice far fewer).
const SECRET_INFOS: usize = 4096;

pub use crate::kernel::decode::{file_key, inode_key, user_dev_to_kernel};

/// A secret file the kernel watches by inode.
#[derive(Debug, Clone)]
struct Watched {
    /// Shared with every read's match: a read of a watched inode copies no
    /// string until its event needs one.
    path: Arc<str>,
    catalog_id: Arc<str>,
    /// The Kubernetes Secret a kubelet volume file holds.
    kube: Option<Arc<crate::secrets::kube::KubeSecret>>,
}

#[derive(Debug, Default, Serialize)]
pub struct MonitorStats {
    pub watched_inodes: usize,
    pub watched_dirs: usize,
    pub watched_names: usize,
    pub opens_matched: u64,
    /// Opens the kernel filter passed that turned out not to be secrets
    /// (a file named `credentials` outside any catalogued place, say).
    pub opens_not_secret: u64,
    pub reads_reported: u64,
    /// Reads by expected clients (packaged programs proven by their exec'd
    /// file): `info`, never bound to a workload.
    pub expected_client_reads: u64,
    pub env_secrets: u64,
    /// New processes whose environment could not be read (the kernel's
    /// copy failed, or for processes older than the agent, /proc had it no more).
    pub env_unreadable: u64,
    /// New processes whose environment was larger than the kernel captures
    /// (`ENV_LEN`, 16 KiB): variables past the cut were not scanned.
    pub env_truncated: u64,
    /// New processes whose captured environment was a copy of one already
    /// scanned clean (a build or shell loop handing its environment on):
    /// judged without scanning it again.
    pub env_clean_repeats: u64,
    /// Secret files not read for a fingerprint or content check because the
    /// open found no regular file (a FIFO or device named like a secret) or
    /// another inode than the kernel reported.
    pub reads_refused: u64,
    /// Secret files read for a fingerprint: once per file version (the
    /// kernel's size, mtime and ctime), never per read.
    pub fingerprint_reads: u64,
    /// Failed inventory reads of the monitor; `stats_json` adds the records
    /// the writer thread could not write (refused by the store, or dropped
    /// while writes queued behind a locked file).
    pub store_errors: u64,
    /// Connections of secret carriers not kept for the blast radius: too
    /// many distinct destinations waited for a write.
    pub destinations_dropped: u64,
    pub map_errors: u64,
    /// Readers killed by `enforce: kill`.
    pub killed: u64,
    /// Opens refused by the LSM hook for `enforce: kill`.
    pub denied: u64,
    /// Processes currently cut off by block-egress.
    pub quarantined: usize,
    /// Times a file the policy names by literal `exe_path` was replaced,
    /// removed or created (a package upgrade): owners and kill allow lists
    /// follow the new file.
    pub owner_files_changed: u64,
    pub last_scan_visited: usize,
    pub last_scan_truncated: bool,
    /// Rescans started because a directory holding secrets changed (the
    /// page-cache hook set, which sees no file creation). Directory polls,
    /// rescans and the kubelet volume walk run on the blocking pool.
    pub new_file_rescans: u64,
    /// Kubelet Secret and projected volume files watched, named from the pod list.
    pub kube_secret_files: usize,
    /// Volume files the pod list does not explain (pod not listed yet,
    /// configMap and downwardAPI keys): not watched as Secrets.
    pub kube_unnamed_files: usize,
    /// Entries in Secret volumes that are no regular file of a Secret's size
    /// (links, FIFOs, devices, huge files): refused.
    pub kube_refused_entries: usize,
    /// Volumes whose `..data` is missing or leads out of the volume.
    pub kube_bad_volumes: usize,
}

/// The ready-built parts a monitor works with; [`crate::secrets::setup`]
/// makes them from the configuration and the loaded probes.
pub struct MonitorParts<K> {
    /// The catalog, with `~/` expanded to the node's homes.
    pub catalog: Catalog,
    pub fingerprinter: Fingerprinter,
    pub store: InventoryStore,
    /// The kernel's watch lists.
    pub kernel: K,
    /// Where discovery looks for secret files.
    pub discover: DiscoverRoots,
}

pub struct SecretMonitor<K: KernelWatch = KernelMaps> {
    /// Shared with the rescans on the blocking pool.
    catalog: Arc<Catalog>,
    policy: SecretsConfig,
    fingerprinter: Fingerprinter,
    /// The connection a due rescan's job reads the inventory with (on the
    /// blocking pool); absent while lent, or after a failed job lost it.
    survey_store: Option<InventoryStore>,
    /// The connection the rotation ages are read with, on the blocking pool.
    ages: LentStore<Vec<ContentAge>>,
    /// Every write of the event path goes through this thread.
    writer: InventoryWriter,
    /// secret-stale reports made, before the writer has noted them.
    stale_sent: crate::secrets::rotation::SentReports,
    kernel: K,
    /// Processes block-egress has cut off.
    /// Processes quarantined by block-egress, with the kernel's key for each.
    quarantined: PerProcess<QuarantineEntry>,
    watched: Vec<Watched>,
    by_inode: HashMap<InodeKey, u32>,
    dirs: HashSet<InodeKey>,
    /// Shared with each read's match (a re-read copies no fingerprint).
    fingerprints: LruCache<FileKey, Option<Arc<str>>>,
    /// What reads report about a secret, by fingerprint (see
    /// `read_secret_info`); cleared when it reaches [`SECRET_INFOS`].
    secret_infos: HashMap<String, Arc<SecretInfo>>,
    searches: SearchWatch,
    /// The last reader's identity key (see [`Self::reader_key`]).
    last_reader: Option<(Arc<Process>, Arc<str>)>,
    /// (identity, variable, fingerprint) already reported by secret-env.
    env_reported: LruCache<(String, String, String), ()>,
    /// Captured environments already scanned clean (see [`env::CleanBlocks`]).
    clean_envs: env::CleanBlocks,
    discover: DiscoverRoots,
    last_scan: Instant,
    /// Directories holding watched secrets (and their parents) with their
    /// last seen mtime, polled when the kernel does not report new files.
    new_file_dirs: Option<HashMap<PathBuf, Option<std::time::SystemTime>>>,
    /// The policy's literal executables, by (dev, inode), and when they were
    /// last looked at.
    owner_files: OwnerFiles,
    owner_files_checked: Instant,
    usage: SecretUsage,
    reads: ReadBatch,
    /// The kubelet's Secret volumes, when a pod list names them.
    kube: Option<kube::KubeState>,
    destinations: DestinationBatch,
    /// The look at the node's files running on the blocking pool.
    survey_in_flight: Option<tokio::task::JoinHandle<survey::Surveyed>>,
    pub stats: MonitorStats,
}

impl<K: KernelWatch> SecretMonitor<K> {
    /// Fills the kernel's name and allow lists, then discovers and watches
    /// the secret files on the node. `policy` is the `secrets:` section.
    pub fn new(policy: SecretsConfig, parts: MonitorParts<K>) -> Result<Self> {
        let MonitorParts {
            catalog,
            fingerprinter,
            store,
            kernel,
            discover,
        } = parts;
        let usage = SecretUsage::new(
            policy.replay.mode,
            policy.replay.learning_window,
            policy.exfil.window,
            policy.exfil.metadata_endpoints.clone(),
        );
        let writer = InventoryWriter::start(store.open_another()?)
            .context("start the inventory writer thread")?;
        let ages = LentStore::new(store.open_another()?);
        let mut m = Self {
            catalog: Arc::new(catalog),
            policy,
            fingerprinter,
            survey_store: Some(store),
            ages,
            writer,
            stale_sent: Default::default(),
            kernel,
            quarantined: PerProcess::default(),
            watched: Vec::new(),
            by_inode: HashMap::new(),
            dirs: HashSet::new(),
            fingerprints: LruCache::new(NonZeroUsize::new(4096).unwrap()),
            secret_infos: HashMap::new(),
            searches: SearchWatch::default(),
            last_reader: None,
            env_reported: LruCache::new(NonZeroUsize::new(16384).unwrap()),
            clean_envs: env::CleanBlocks::new(NonZeroUsize::new(CLEAN_ENVS).unwrap()),
            discover,
            last_scan: Instant::now(),
            new_file_dirs: None,
            owner_files: OwnerFiles::default(),
            owner_files_checked: Instant::now(),
            reads: ReadBatch::default(),
            destinations: DestinationBatch::default(),
            usage,
            kube: None,
            survey_in_flight: None,
            stats: MonitorStats::default(),
        };
        m.install_names()?;
        m.owner_files = OwnerFiles::resolve(m.policy.literal_exe_paths());
        m.install_kill_owners()?;
        m.scan();
        Ok(m)
    }

    /// The executables each kill rule allows, by inode, for the kernel.
    fn install_kill_owners(&mut self) -> Result<()> {
        for (i, rule) in self.policy.rules.iter().enumerate() {
            if !rule.enforce.contains(&Enforcement::Kill) {
                continue;
            }
            for owner in &rule.owners {
                let Some(glob) = &owner.exe_path else {
                    continue;
                };
                let id = self.owner_files.id(&glob.pattern).with_context(|| {
                    format!(
                        "secrets.rules[{i}] enforces kill for owner {}: no regular file there; \
                         a kill rule's owners must exist when the agent starts",
                        glob.pattern
                    )
                })?;
                self.kernel.allow_reader(i as u32, file_key(id))?;
            }
        }
        Ok(())
    }

    /// Looks at the policy's literal executables again (at most once a
    /// second). A replaced owner keeps its rights under its new inode and
    /// the old inode loses them: a freed inode number may be reused by an
    /// unrelated file.
    fn follow_owner_files(&mut self) {
        if self.owner_files_checked.elapsed() < Duration::from_secs(1) {
            return;
        }
        self.owner_files_checked = Instant::now();
        for change in self.owner_files.refresh() {
            self.stats.owner_files_changed += 1;
            let show = |id: Option<(u64, u64)>| {
                id.map(|(d, i)| format!("dev {d} inode {i}"))
                    .unwrap_or_else(|| "no file".into())
            };
            tracing::warn!(
                "secrets policy: {} changed ({} -> {}); owners and exceptions naming it now \
                 match the new file",
                change.path,
                show(change.before),
                show(change.after)
            );
            for (i, rule) in self.policy.rules.iter().enumerate() {
                let names_it = rule.enforce.contains(&Enforcement::Kill)
                    && rule.owners.iter().any(|o| {
                        o.exe_path
                            .as_ref()
                            .is_some_and(|g| g.pattern == change.path)
                    });
                if !names_it {
                    continue;
                }
                if let Some(old) = change.before {
                    self.kernel.disallow_reader(i as u32, file_key(old));
                }
                if let Some(new) = change.after {
                    if let Err(e) = self.kernel.allow_reader(i as u32, file_key(new)) {
                        self.stats.map_errors += 1;
                        tracing::warn!(
                            "secrets.rules[{i}]: cannot allow the new {}: {e:#}",
                            change.path
                        );
                    }
                }
            }
        }
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The cluster's fingerprint key (a reload plants decoys with it).
    pub fn fingerprinter(&self) -> &Fingerprinter {
        &self.fingerprinter
    }

    /// Puts every literal secret basename in the kernel's name filter, with
    /// the directory names that anchor it where every pattern has one.
    fn install_names(&mut self) -> Result<()> {
        let anchors = name_anchors(&self.catalog);
        let mut lengths = 0u64;
        let mut n = 0;
        for name in self.catalog.basenames() {
            if name_key(&name).is_none() {
                continue;
            }
            let anchored = match anchors.get(&name) {
                Some(Some(dirs)) => {
                    for d in dirs.iter().filter(|d| name_key(d).is_some()) {
                        self.kernel.watch_parent_name(d)?;
                    }
                    true
                }
                _ => false,
            };
            self.kernel.watch_name(&name, anchored)?;
            lengths |= 1 << name.len();
            n += 1;
        }
        self.kernel.set_name_lengths(lengths)?;
        self.stats.watched_names = n;
        Ok(())
    }

    /// The page-cache hook set sees reads of watched inodes only: a secret
    /// created (or renamed over one) after the last scan would go unseen
    /// until the next. With this on, the directories that hold watched
    /// secrets, and their parents, are polled (one stat each, every call)
    /// and a change in any of them rescans at once (see [`Self::survey`]).
    pub fn poll_new_files(&mut self) {
        self.new_file_dirs.get_or_insert_with(HashMap::new);
        self.note_dirs(
            &self
                .watched
                .iter()
                .map(|w| w.path.to_string())
                .collect::<Vec<_>>(),
        );
    }

    fn note_dirs(&mut self, secret_paths: &[String]) {
        let Some(dirs) = self.new_file_dirs.as_mut() else {
            return;
        };
        for p in secret_paths {
            let Some(dir) = Path::new(p).parent() else {
                continue;
            };
            for d in [Some(dir), dir.parent()].into_iter().flatten() {
                if !dirs.contains_key(d) {
                    let mtime = std::fs::metadata(d).and_then(|m| m.modified()).ok();
                    dirs.insert(d.to_path_buf(), mtime);
                }
            }
        }
    }

    fn rescan_due(&self) -> bool {
        self.last_scan.elapsed() >= self.policy.rescan_interval
    }

    /// Starts watching the secret file at `path` (inode and directory) and
    /// records it in the inventory; returns its fingerprint.
    fn track(
        &mut self,
        path: &str,
        catalog_id: &str,
        meta: &std::fs::Metadata,
        open_fd: Option<(u32, i32)>,
    ) -> Option<String> {
        let fp = self.fingerprint(path, meta, open_fd);
        let parent = Path::new(path)
            .parent()
            .filter(|_| self.watches_new_files(catalog_id))
            .and_then(|d| std::fs::metadata(d).ok());
        self.track_version(path, catalog_id, meta, fp.clone(), parent.as_ref());
        fp
    }

    /// Whether new files of `catalog_id` may appear under names no kernel
    /// filter knows, so the directory of each one found is watched.
    fn watches_new_files(&self, catalog_id: &str) -> bool {
        self.catalog
            .entry(catalog_id)
            .is_some_and(|e| new_files_need_dir_watch(&e.paths))
    }

    /// Watches a file version already fingerprinted (inode, directory, kill
    /// rule) and records it in the inventory; `parent` is its directory's
    /// metadata, when the entry watches directories.
    fn track_version(
        &mut self,
        path: &str,
        catalog_id: &str,
        meta: &std::fs::Metadata,
        fp: Option<String>,
        parent: Option<&std::fs::Metadata>,
    ) {
        self.fingerprints
            .put(FileKey::of(meta), fp.as_deref().map(Arc::from));
        let key = inode_key(meta);
        if !self.by_inode.contains_key(&key) {
            self.note_dirs(&[path.to_string()]);
            let slot = self.watched.len() as u32;
            self.watched.push(Watched {
                path: path.into(),
                catalog_id: catalog_id.into(),
                kube: None,
            });
            if self.kernel.watch_inode(key, slot, path).is_err() {
                self.stats.map_errors += 1;
            }
            self.by_inode.insert(key, slot);
            self.stats.watched_inodes = self.by_inode.len();
        }
        if let Some(rule) = self.policy.enforces(catalog_id, path, Enforcement::Kill) {
            if self.kernel.deny_inode(key, rule as u32).is_err() {
                self.stats.map_errors += 1;
            }
        }
        let kind = self
            .entry_of(catalog_id)
            .map(|e| e.kind.as_str())
            .unwrap_or("generic_credentials");
        if let Some(pm) = parent.filter(|_| self.watches_new_files(catalog_id)) {
            let dk = inode_key(pm);
            if self.dirs.insert(dk) && self.kernel.watch_dir(dk).is_err() {
                self.stats.map_errors += 1;
            }
            self.stats.watched_dirs = self.dirs.len();
        }
        let rec = SecretRecord {
            path: path.to_string(),
            catalog_id: catalog_id.to_string(),
            kind: kind.to_string(),
            fingerprint: fp.clone(),
            dev: meta.dev(),
            inode: meta.ino(),
            size: meta.size(),
            mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            first_seen_ns: now_ns(),
            present: true,
        };
        self.writer.send(Write::Secret(rec));
    }

    /// Stops watching an inode whose secret is gone.
    fn unwatch(&mut self, kdev: u32, ino: u64) {
        let key = InodeKey {
            dev: kdev,
            _pad: 0,
            ino,
        };
        if self.by_inode.remove(&key).is_some() {
            self.kernel.unwatch_inode(key);
            self.stats.watched_inodes = self.by_inode.len();
        }
    }

    /// Keyed fingerprint of a file version, read once per version. Reads
    /// through the opener's own fd when it is still open (the very file it
    /// got), else through the path, and only if it is the same regular file.
    fn fingerprint(
        &mut self,
        path: &str,
        meta: &std::fs::Metadata,
        open_fd: Option<(u32, i32)>,
    ) -> Option<String> {
        let key = FileKey::of(meta);
        if let Some(fp) = self.fingerprints.get(&key) {
            return fp.as_deref().map(String::from);
        }
        let expect = Some((meta.dev(), meta.ino()));
        self.stats.fingerprint_reads += 1;
        let fp = match file_probe::read_secret(path, open_fd, expect, MAX_SECRET_BYTES) {
            Ok(mut buf) => {
                let fp = self.fingerprinter.fingerprint(&buf);
                buf.fill(0);
                Some(fp)
            }
            Err(refused) => {
                self.stats.reads_refused += u64::from(refused);
                None
            }
        };
        self.fingerprints.put(key, fp.as_deref().map(Arc::from));
        fp
    }

    /// A connection by `p`: secret-exfil findings, if it carries secrets;
    /// block-egress quarantines the process when a rule asks for it.
    pub fn on_connect(
        &mut self,
        p: &Process,
        ip: std::net::IpAddr,
        port: u16,
    ) -> Vec<crate::event::Finding> {
        if !self.policy.exfil.enabled {
            return Vec::new();
        }
        let dest = std::net::SocketAddr::new(ip, port).to_string();
        let who = identity_key(p);
        for s in self.usage.carried(p) {
            if let Some(path) = &s.path {
                self.destinations.record(path, &who, &dest, now_ns());
            }
        }
        let mut found = self.usage.on_connect(p, ip, port);
        for f in &mut found {
            let Some(s) = &f.secret else { continue };
            let path = s.path.clone().unwrap_or_default();
            if self
                .policy
                .enforces(&s.id, &path, Enforcement::BlockEgress)
                .is_some()
            {
                self.quarantine(ProcessKey::of(p), quarantine_entry_of(p));
                f.action = Some("egress_blocked");
            }
        }
        found
    }

    /// `p` submitted its first io_uring request of opcode `op`:
    /// secret-io-uring findings, if it carries secrets.
    pub fn on_io_uring(&mut self, p: &Process, op: &str) -> Vec<crate::event::Finding> {
        self.usage.on_io_uring(p, op)
    }

    fn quarantine(&mut self, k: ProcessKey, start: QuarantineEntry) {
        if self.kernel.quarantine(k.pid, start).is_err() {
            self.stats.map_errors += 1;
        }
        self.quarantined.insert(k, start);
        self.stats.quarantined = self.quarantined.len();
    }

    /// A new process carries what its parent read, and its quarantine (the
    /// kernel's fork hook already applied it before the child ran; this
    /// keeps the agent's account, and covers a parent quarantined while the
    /// fork record was in flight). `parent` is `None` when the agent never
    /// knew the parent: the child inherits nothing.
    pub fn on_fork(&mut self, parent: Option<ProcessKey>, child: ProcessKey) {
        self.usage.inherit(parent, child);
        if let Some(old) = self.quarantined.remove(child.pid) {
            self.kernel.release(child.pid, old);
        }
        if parent.is_some_and(|p| self.quarantined.contains(p)) {
            self.quarantine(child, quarantine_entry(child, false));
        }
        self.stats.quarantined = self.quarantined.len();
    }

    /// The identity key of `reader`, made once per process view: a process
    /// re-reading secrets holds one `Arc<Process>` until something about it
    /// changes, and the key was an allocation per read.
    fn reader_key(&mut self, reader: &Arc<Process>) -> Arc<str> {
        match &self.last_reader {
            Some((p, key)) if Arc::ptr_eq(p, reader) => key.clone(),
            _ => {
                let key: Arc<str> = identity_key(reader).into();
                self.last_reader = Some((reader.clone(), key.clone()));
                key
            }
        }
    }

    fn record_read(&mut self, path: &str, who: &str, reader: &Process, at_ns: u64, reads: u64) {
        self.reads.record(path, who, reader, at_ns, reads);
    }

    /// Writes the reads gathered in memory once the oldest has waited
    /// [`crate::secrets::read_batch::READ_FLUSH`]; called after every ring-buffer drain.
    pub fn flush_reads_if_due(&mut self) {
        if self.reads.is_due(Instant::now()) {
            self.flush_reads();
        }
    }

    /// Hands every read gathered in memory to the inventory's writer (one
    /// transaction).
    pub fn flush_reads(&mut self) {
        if let Some(reads) = self.reads.take() {
            self.writer.send(Write::Reads(reads));
        }
        if let Some(destinations) = self.destinations.take() {
            self.writer.send(Write::Destinations(destinations));
        }
        self.stats.destinations_dropped = self.destinations.dropped;
    }

    /// Tools searching for secret file names (`find / -name id_rsa`).
    pub fn on_exec_search_tool(&mut self, p: &Process) -> Option<crate::event::Finding> {
        search::search_tool_hunt(p, &self.catalog)
    }

    /// Whether environments are scanned at all (`scan_environment`).
    pub fn scans_environment(&self) -> bool {
        self.policy.scan_environment
    }

    /// The captured block's digest (for [`Self::env_captured`]), and its
    /// scan when a copy of it was already scanned clean.
    pub fn env_known_clean(
        &mut self,
        block: &[u8],
        truncated: bool,
    ) -> (env::BlockDigest, Option<env::BlockScan>) {
        let digest = self.clean_envs.digest(block, truncated);
        if !self.clean_envs.known(digest) {
            return (digest, None);
        }
        self.stats.env_clean_repeats += 1;
        // A pod's secretKeyRef variables are found by name, not by shape.
        let vars = if self.wants_key_refs() {
            env::block_vars(block, truncated)
        } else {
            Vec::new()
        };
        let scan = env::BlockScan {
            vars,
            secrets: Vec::new(),
        };
        (digest, Some(scan))
    }

    /// What an environment captured at exec holds, from its scan (done off
    /// the event loop, see [`env::scan_block`]) of the block with `digest`.
    pub fn env_captured(
        &mut self,
        scan: env::BlockScan,
        truncated: bool,
        digest: env::BlockDigest,
    ) -> EnvFound {
        if truncated {
            self.stats.env_truncated += 1;
        }
        self.clean_envs.judged(digest, &scan);
        EnvFound {
            secrets: scan.secrets,
            key_ref_candidates: self.key_ref_candidates(scan.vars),
        }
    }

    /// Counts an environment the kernel could not copy.
    pub fn env_not_captured(&mut self) {
        self.stats.env_unreadable += 1;
    }

    /// secret-env findings for `p`, once per (workload, variable, secret).
    pub fn env_findings(&mut self, p: &Process, found: EnvFound) -> Vec<crate::event::Finding> {
        let EnvFound {
            mut secrets,
            key_ref_candidates,
            ..
        } = found;
        // Which pod and container `p` is in is known once it is resolved.
        self.kube_env(p, &key_ref_candidates, &mut secrets);
        let mut out = Vec::new();
        for s in secrets {
            let fp = self.fingerprinter.fingerprint(s.value.as_bytes());
            if self
                .env_reported
                .put((identity_key(p), s.var.clone(), fp.clone()), ())
                .is_some()
            {
                continue;
            }
            self.stats.env_secrets += 1;
            let path = format!("env:{}", s.var);
            let rec = SecretRecord {
                path: path.clone(),
                catalog_id: if s.k8s.is_some() {
                    crate::secrets::kube::SECRET_ENTRY.to_string()
                } else {
                    format!("env:{}", s.detector)
                },
                kind: s.kind.as_str().to_string(),
                fingerprint: Some(fp.clone()),
                dev: 0,
                inode: 0,
                size: 0,
                mtime_ns: 0,
                first_seen_ns: now_ns(),
                present: true,
            };
            self.writer.send(Write::Secret(rec));
            let who = identity_key(p);
            self.record_read(&path, &who, p, now_ns(), 1);
            let secret = Arc::new(SecretInfo {
                id: s.k8s.as_ref().map_or_else(
                    || format!("env:{}", s.detector),
                    |k| crate::secrets::kube::secret_id(k, false),
                ),
                kind: s.kind.as_str().to_string(),
                fingerprint: Some(fp),
                path: None,
                variable: Some(s.var.clone()),
                k8s: s.k8s.clone(),
            });
            // The pod spec gives a secretKeyRef variable to this container:
            // its own, no replay.
            let replay = if s.k8s.is_some() {
                None
            } else {
                let rule_ids = self.policy.rule_ids(&secret.id, &path);
                self.track_use(&secret, &rule_ids, p, &who, Role::Foreign, Instant::now())
            };
            out.push(findings::secret_env(p, secret));
            out.extend(replay);
        }
        out
    }

    /// Forgets per-process state of processes that are gone.
    pub fn forget_process(&mut self, pid: u32) {
        self.searches.forget(pid);
        self.usage.forget(pid);
        if let Some(start) = self.quarantined.remove(pid) {
            self.kernel.release(pid, start);
            self.stats.quarantined = self.quarantined.len();
        }
    }

    pub fn housekeeping(&mut self) {
        self.flush_reads();
        self.follow_owner_files();
        self.searches.prune(self.policy.search.window);
    }

    /// secret-stale findings due now (see [`crate::secrets::rotation`]),
    /// judged on the content ages the last call started reading (on the
    /// blocking pool: called once per status interval, a finding comes at
    /// most one interval later than its due time). No read while no rule
    /// sets a `max_age`.
    pub fn stale_findings(&mut self) -> Vec<crate::event::Finding> {
        let done = self.ages.finished();
        if self.policy.any_max_age() {
            self.ages.start(InventoryStore::content_ages);
        }
        let ages = match done {
            None => return Vec::new(),
            Some(Ok(ages)) => ages,
            Some(Err(e)) => {
                tracing::warn!("rotation age not judged: {e:#}");
                self.stats.store_errors += 1;
                return Vec::new();
            }
        };
        let writer = &self.writer;
        crate::secrets::rotation::stale_findings(
            ages,
            &self.policy,
            now_ns(),
            &mut self.stale_sent,
            |path, at| writer.send(Write::StaleReported(path.to_string(), at)),
        )
    }

    pub fn stats_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(&self.stats).unwrap_or_default();
        v["store_errors"] = (self.stats.store_errors + self.writer.lost()).into();
        v["bound_secrets"] = self.usage.bound_secrets().into();
        v["processes_carrying_secrets"] = self.usage.tainted_processes().into();
        v
    }

    pub fn rescan_interval(&self) -> Duration {
        self.policy.rescan_interval
    }
}

/// What a new process's environment holds, read at exec; judged once the
/// process is resolved (its pod and container known).
#[derive(Default)]
pub struct EnvFound {
    secrets: Vec<env::EnvSecret>,
    /// Variables named like some pod's `secretKeyRef` variable.
    key_ref_candidates: Vec<(String, String)>,
}

impl EnvFound {
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty() && self.key_ref_candidates.is_empty()
    }
}

/// Whether new files of an entry can appear under names no kernel name filter
/// knows (`~/.ssh/id_*`, `/etc/kubernetes/pki/**/*.key`): then the directory
/// of each one found is watched. Entries named literally need no directory
/// watch, and "anywhere" patterns (`**/.env.*`) would put busy directories
/// (a project root, /etc) under watch.
fn new_files_need_dir_watch(patterns: &[String]) -> bool {
    patterns.iter().any(|p| {
        !p.starts_with("**/") && p.rsplit('/').next().is_some_and(|last| !is_literal(last))
    })
}

fn is_literal(component: &str) -> bool {
    !component.is_empty() && component != "~" && !component.contains(['*', '?', '[', '{'])
}

/// For each literal basename of the catalog: the directory names one of which
/// must be its parent or grandparent (`config` -> {.kube, .aws, ...}), or
/// `None` when some pattern lets it live anywhere (`**/.env`, `~/.netrc`).
/// The kernel then reads generic names' directories only when the name matched.
pub fn name_anchors(catalog: &Catalog) -> HashMap<String, Option<HashSet<String>>> {
    let mut out: HashMap<String, Option<HashSet<String>>> = HashMap::new();
    for entry in catalog.entries() {
        for pattern in &entry.paths {
            let comps: Vec<&str> = pattern.split('/').collect();
            let Some((last, dirs)) = comps.split_last() else {
                continue;
            };
            if !is_literal(last) {
                continue;
            }
            let anchor = match dirs {
                [.., d] if is_literal(d) => Some(d.to_string()),
                [.., d, "**"] if is_literal(d) => Some(d.to_string()),
                // One unnamed directory below: `~/.oci/sessions/*/token`.
                [.., d, "*"] if is_literal(d) => Some(d.to_string()),
                _ => None,
            };
            let slot = out
                .entry(last.to_string())
                .or_insert_with(|| Some(HashSet::new()));
            match (slot.as_mut(), anchor) {
                (Some(set), Some(a)) => {
                    set.insert(a);
                }
                (_, None) => *slot = None,
                (None, Some(_)) => {}
            }
        }
    }
    out
}

/// Reads still in memory reach the inventory when the agent stops.
impl<K: KernelWatch> Drop for SecretMonitor<K> {
    fn drop(&mut self) {
        self.flush_reads();
    }
}

mod file_probe;
mod kube;
mod lent_store;
mod open;
mod reload;
mod survey;
#[cfg(test)]
mod tests;
mod verdict;

pub use file_probe::{FileFacts, FileJob};
use lent_store::LentStore;
pub use open::OpenMatch;
pub use reload::PreparedPolicy;
use verdict::Role;
