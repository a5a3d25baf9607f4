//! Reads of watched secrets on tmpfs, through fanotify inode marks.
//!
//! shmem has its own read and fault paths, which the page-cache tracepoints
//! do not see, and Kubernetes Secret volumes, `/run` and `/dev/shm` are
//! tmpfs. An inode mark costs nothing to the reads of any other file (the
//! kernel tests a per-inode mark mask), so the page-cache set stays free of
//! syscall tracing and still sees these secrets. Only the watched tmpfs
//! inodes are marked; a secret with a kill rule gets a permission mark
//! instead, so that a forbidden reader is refused and killed before its
//! first byte.

use std::{
    collections::{HashMap, HashSet},
    fs::File,
    io,
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
        unix::fs::MetadataExt,
    },
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use proctor_common::{InodeKey, MATCH_INODE, OPEN_SYSCALL_FANOTIFY};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::{
    clock::{boot_ns, tick_ns},
    kernel::decode::{inode_key, kernel_dev_to_user, OpenRecord},
    safe_open::{open_regular, Links},
    sync::lock,
};

/// A marked inode: where the watch table has it, and its kill rule.
struct Marked {
    slot: u32,
    path: PathBuf,
    deny: Option<u32>,
}

#[derive(Default)]
struct Marks {
    by_inode: HashMap<InodeKey, Marked>,
    /// (kill rule, executable inode) pairs a rule allows, as the kernel's
    /// ALLOWED_READERS map has them.
    allowed: HashSet<(u32, InodeKey)>,
}

/// A read of a marked inode, as the pipeline gets it.
pub struct TmpfsRead {
    pub rec: OpenRecord,
    /// The reader's start (boot-time ns, clock-tick precision) from
    /// `/proc/<pid>/stat` at the event, so that a reader that has exited
    /// by the time the pipeline looks is still found, and a pid reused by
    /// then is not taken for it. `None`: already gone when the agent read
    /// the event (a notification does not wait for the agent); the
    /// pipeline then takes the newest process of that pid started before it.
    pub start_ns: Option<u64>,
}

/// What `agent_status.kernel.tmpfs` reports.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TmpfsFigures {
    /// Watched secrets on tmpfs, marked now.
    pub marked: usize,
    /// Reads reported (before repeat folding).
    pub events: u64,
    /// Reads folded into a later record's `repeats`.
    pub folded: u64,
    /// Readers refused and killed by a kill rule.
    pub killed: u64,
    /// Events lost: the kernel's queue overflowed, or the agent's channel
    /// to the pipeline was full.
    pub dropped: u64,
    /// The reader loop ended (its error is in the log): reads of secrets on
    /// tmpfs are not reported any more, and kill rules on them no longer
    /// hold readers. `hook_set.tmpfs_reads` says `none` from then on.
    pub stopped: bool,
}

/// Lets every held reader through when the reader loop ends, however.
struct ReleaseOnExit<'a>(&'a TmpfsWatch);

impl Drop for ReleaseOnExit<'_> {
    fn drop(&mut self) {
        self.0.stop_blocking();
    }
}

/// The fanotify group and the marks the secret monitor asked for.
pub struct TmpfsWatch {
    group: OwnedFd,
    marks: Mutex<Marks>,
    events: AtomicU64,
    folded: AtomicU64,
    killed: AtomicU64,
    dropped: AtomicU64,
    /// The reader loop ended: no permission mark may be set any more.
    stopped: AtomicBool,
}

impl AsRawFd for TmpfsWatch {
    fn as_raw_fd(&self) -> RawFd {
        self.group.as_raw_fd()
    }
}

/// fanotify mask of a mark: a permission event where a kill rule must be
/// able to refuse the read, a notification elsewhere.
fn mask_of(deny: Option<u32>) -> u64 {
    if deny.is_some() {
        libc::FAN_ACCESS_PERM
    } else {
        libc::FAN_ACCESS
    }
}

impl TmpfsWatch {
    /// A content-class group (permission events need it), non-blocking.
    pub fn open() -> Result<Arc<Self>> {
        // SAFETY: plain syscall with constant flags.
        let fd = unsafe {
            libc::fanotify_init(
                libc::FAN_CLASS_CONTENT | libc::FAN_CLOEXEC | libc::FAN_NONBLOCK,
                (libc::O_RDONLY | libc::O_CLOEXEC | libc::O_LARGEFILE | libc::O_NOATIME) as u32,
            )
        };
        if fd < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EPERM) {
                bail!(
                    "cannot create a fanotify group for secrets on tmpfs: the agent lacks \
                     CAP_SYS_ADMIN (EPERM), which a content-class group needs; grant it (the \
                     least-privilege DaemonSet does not) or accept the syscall hook set"
                );
            }
            bail!(
                "cannot create a fanotify group for secrets on tmpfs: {e}; proctor needs \
                 CAP_SYS_ADMIN and a kernel built with CONFIG_FANOTIFY and \
                 CONFIG_FANOTIFY_ACCESS_PERMISSIONS"
            );
        }
        // SAFETY: fanotify_init returned a new descriptor we now own.
        let group = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Arc::new(Self {
            group,
            marks: Mutex::new(Marks::default()),
            events: AtomicU64::new(0),
            folded: AtomicU64::new(0),
            killed: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
        }))
    }

    pub fn figures(&self) -> TmpfsFigures {
        TmpfsFigures {
            marked: lock(&self.marks).by_inode.len(),
            events: self.events.load(Ordering::Relaxed),
            folded: self.folded.load(Ordering::Relaxed),
            killed: self.killed.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            stopped: self.stopped(),
        }
    }

    /// Whether the reader loop ended.
    pub fn stopped(&self) -> bool {
        self.stopped.load(Ordering::Relaxed)
    }

    /// Events lost on the way to the pipeline.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Adds or removes `mask` on the inode at `path`, opened without following
    /// a link and checked to be the regular file `key` names. `Ok(false)`: that
    /// file is not on tmpfs (the page-cache hooks see it).
    fn mark_path(&self, key: InodeKey, path: &Path, op: libc::c_uint, mask: u64) -> Result<bool> {
        let expect = (kernel_dev_to_user(key.dev), key.ino);
        let (file, _) = open_regular(path, Links::NoFollow, Some(expect))
            .with_context(|| format!("cannot mark {} for tmpfs reads", path.display()))?;
        // SAFETY: zeroed statfs is a valid out-parameter.
        let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
        // SAFETY: valid fd and out-pointer.
        if unsafe { libc::fstatfs(file.as_raw_fd(), &mut fs) } != 0 {
            return Err(io::Error::last_os_error())
                .with_context(|| format!("fstatfs of {}", path.display()));
        }
        if fs.f_type != libc::TMPFS_MAGIC {
            return Ok(false);
        }
        // SAFETY: the group and the file are open; a NULL path marks the
        // object `file` refers to.
        let rc = unsafe {
            libc::fanotify_mark(
                self.group.as_raw_fd(),
                op,
                mask,
                file.as_raw_fd(),
                std::ptr::null(),
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error())
                .with_context(|| format!("fanotify_mark of {}", path.display()));
        }
        Ok(true)
    }

    /// Marks the watched secret `key` at `path` if it lives on tmpfs.
    pub fn watch(&self, key: InodeKey, slot: u32, path: &Path) -> Result<()> {
        let deny = lock(&self.marks).by_inode.get(&key).and_then(|m| m.deny);
        if self.mark_path(key, path, libc::FAN_MARK_ADD, mask_of(deny))? {
            lock(&self.marks).by_inode.insert(
                key,
                Marked {
                    slot,
                    path: path.to_path_buf(),
                    deny,
                },
            );
        }
        Ok(())
    }

    /// Forgets `key`. A mark left on an inode that moved is harmless: its
    /// events find no entry and are not reported.
    pub fn unwatch(&self, key: InodeKey) {
        let Some(m) = lock(&self.marks).by_inode.remove(&key) else {
            return;
        };
        let _ = self.mark_path(key, &m.path, libc::FAN_MARK_REMOVE, mask_of(m.deny));
    }

    /// Sets or lifts the kill rule of a marked inode: its mark changes
    /// between a notification and a permission event.
    pub fn set_deny(&self, key: InodeKey, rule: Option<u32>) -> Result<()> {
        // Nobody would answer a permission event: keep the plain mark.
        let rule = rule.filter(|_| !self.stopped());
        let (path, old) = {
            let mut marks = lock(&self.marks);
            let Some(m) = marks.by_inode.get_mut(&key) else {
                return Ok(());
            };
            let old = std::mem::replace(&mut m.deny, rule);
            (m.path.clone(), old)
        };
        if mask_of(old) == mask_of(rule) {
            return Ok(());
        }
        // The new kind of event first: a read in between is reported twice,
        // never missed.
        self.mark_path(key, &path, libc::FAN_MARK_ADD, mask_of(rule))?;
        self.mark_path(key, &path, libc::FAN_MARK_REMOVE, mask_of(old))?;
        Ok(())
    }

    /// `exe` may (or may no longer) read the secrets of kill rule `rule`.
    pub fn allow_reader(&self, rule: u32, exe: InodeKey, allowed: bool) {
        let mut marks = lock(&self.marks);
        if allowed {
            marks.allowed.insert((rule, exe));
        } else {
            marks.allowed.remove(&(rule, exe));
        }
    }

    /// Reads events until the group fails, sending one record per
    /// (process, inode) and repeat window, as the kernel hooks fold them.
    /// Ends only on an error (the caller supervises it: an ERROR log and a
    /// failing /healthz); however it ends, even by a panic or by being
    /// dropped, no reader stays held by a permission mark.
    pub async fn run(
        self: Arc<Self>,
        tx: mpsc::Sender<TmpfsRead>,
        repeat_window: Duration,
    ) -> Result<()> {
        let _release = ReleaseOnExit(&self);
        let afd = crate::kernel::watch_fd(Arc::clone(&self))
            .context("tmpfs secret reads are not watched: cannot poll the fanotify group")?;
        let mut folds = Folds::new(repeat_window);
        let mut buf = EventBuf::default();
        loop {
            let mut guard = afd.readable().await.context(
                "tmpfs secret reads are not watched any more: poll of the fanotify group",
            )?;
            let bytes =
                match self.read_events(&mut buf) {
                    Ok(b) => b,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        guard.clear_ready();
                        continue;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e).context(
                        "tmpfs secret reads are not watched any more: read of the fanotify group",
                    ),
                };
            for rec in self.handle_events(bytes, &mut folds) {
                if tx.try_send(rec).is_err() {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// One read of the group into `buf`: the bytes of the whole events the
    /// kernel wrote (an error `WouldBlock` when none are queued).
    fn read_events<'b>(&self, buf: &'b mut EventBuf) -> io::Result<&'b [u8]> {
        // SAFETY: buf is writable for its whole length.
        let n = unsafe {
            libc::read(
                self.group.as_raw_fd(),
                buf.0.as_mut_ptr().cast(),
                std::mem::size_of_val(&buf.0),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel wrote n bytes of whole events into buf.
        Ok(unsafe { std::slice::from_raw_parts(buf.0.as_ptr().cast::<u8>(), n as usize) })
    }

    /// Answers permission events and turns reads of marked inodes into records.
    fn handle_events(&self, bytes: &[u8], folds: &mut Folds) -> Vec<TmpfsRead> {
        let mut out = Vec::new();
        let own = std::process::id() as i32;
        for meta in events(bytes) {
            if meta.vers != libc::FANOTIFY_METADATA_VERSION {
                tracing::error!(
                    "fanotify metadata version {} (expected {}): event skipped",
                    meta.vers,
                    libc::FANOTIFY_METADATA_VERSION
                );
                self.release_event(&meta);
                continue;
            }
            if meta.mask & libc::FAN_Q_OVERFLOW != 0 {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("fanotify queue overflowed: tmpfs secret reads were lost");
                continue;
            }
            if meta.fd < 0 {
                continue;
            }
            // SAFETY: the kernel opened this fd for us with the event.
            let file = unsafe { File::from_raw_fd(meta.fd) };
            if let Some(rec) = self.one_event(&meta, &file, own, folds) {
                out.push(rec);
            }
        }
        out
    }

    fn one_event(
        &self,
        meta: &libc::fanotify_event_metadata,
        file: &File,
        own: i32,
        folds: &mut Folds,
    ) -> Option<TmpfsRead> {
        let perm = meta.mask & libc::FAN_ACCESS_PERM != 0;
        let st = file.metadata().ok();
        let key = st.as_ref().map(inode_key);
        let found = key.as_ref().and_then(|k| {
            let marks = lock(&self.marks);
            let m = marks.by_inode.get(k)?;
            Some((m.slot, m.path.clone(), m.deny))
        });
        // /proc is read outside the lock: the monitor marks files meanwhile.
        let allowed = found.as_ref().is_none_or(|(_, _, deny)| {
            deny.is_none_or(|rule| {
                exe_key(meta.pid)
                    .is_some_and(|exe| lock(&self.marks).allowed.contains(&(rule, exe)))
            })
        });
        // The agent's own fingerprint reads are allowed and not reported.
        let kill = meta.pid != own && !allowed;
        if kill {
            // The signal first, while the reader is still held: answered
            // first, it would run on with EPERM (and could exit on its own)
            // before the kill lands.
            // SAFETY: plain signal to the blocked reader.
            unsafe { libc::kill(meta.pid, libc::SIGKILL) };
            self.killed.fetch_add(1, Ordering::Relaxed);
        }
        if perm {
            self.respond(file, kill);
        }
        if meta.pid == own {
            return None;
        }
        let ((slot, path, _), st, key) = (found?, st?, key?);
        self.events.fetch_add(1, Ordering::Relaxed);
        let tgid = meta.pid as u32;
        let repeats = if kill {
            0
        } else {
            match folds.fold(tgid, key) {
                Some(r) => r,
                None => {
                    self.folded.fetch_add(1, Ordering::Relaxed);
                    return None;
                }
            }
        };
        let start_ns = procfs::process::Process::new(meta.pid)
            .and_then(|p| p.stat())
            .ok()
            .map(|st| st.starttime * tick_ns());
        let rec = OpenRecord {
            ktime_ns: boot_ns(),
            pid: tgid,
            tgid,
            uid: 0,
            gid: 0,
            cgroup_id: 0,
            ino: st.ino(),
            dev: st.dev(),
            kdev: key.dev,
            readable: true,
            writable: false,
            flags: libc::O_RDONLY as u32,
            fd: -1,
            dfd: libc::AT_FDCWD,
            syscall: OPEN_SYSCALL_FANOTIFY,
            matched: MATCH_INODE,
            slot,
            killed: kill,
            denied: false,
            filename: String::new(),
            path: Some(path.to_string_lossy().into_owned()),
            repeats,
            size: st.size(),
            mtime: (st.mtime(), st.mtime_nsec() as u32),
            ctime: (st.ctime(), st.ctime_nsec() as u32),
        };
        Some(TmpfsRead { rec, start_ns })
    }

    /// Closes the fd of an event not handled, letting a permission event's
    /// reader through.
    fn release_event(&self, meta: &libc::fanotify_event_metadata) {
        if meta.fd < 0 {
            return;
        }
        // SAFETY: the kernel opened this fd for us with the event.
        let file = unsafe { File::from_raw_fd(meta.fd) };
        if meta.mask & libc::FAN_ACCESS_PERM != 0 {
            self.respond(&file, false);
        }
    }

    /// The reader loop is ending: permission marks become plain ones and
    /// every event still queued is let through, so that no reader of a
    /// secret under a kill rule waits for an answer that will not come.
    fn stop_blocking(&self) {
        self.stopped.store(true, Ordering::Relaxed);
        let denied: Vec<(InodeKey, PathBuf)> = lock(&self.marks)
            .by_inode
            .iter_mut()
            .filter_map(|(k, m)| m.deny.take().map(|_| (*k, m.path.clone())))
            .collect();
        for (key, path) in denied {
            let _ = self.mark_path(key, &path, libc::FAN_MARK_ADD, libc::FAN_ACCESS);
            let _ = self.mark_path(key, &path, libc::FAN_MARK_REMOVE, libc::FAN_ACCESS_PERM);
        }
        let mut buf = EventBuf::default();
        while let Ok(bytes) = self.read_events(&mut buf) {
            if bytes.is_empty() {
                return;
            }
            for meta in events(bytes) {
                self.release_event(&meta);
            }
        }
    }

    /// Answers a permission event; a reader must never stay blocked, so a
    /// failed answer is logged loudly (the kernel lets the read through when
    /// the group closes).
    fn respond(&self, file: &File, deny: bool) {
        let resp = libc::fanotify_response {
            fd: file.as_raw_fd(),
            response: if deny {
                libc::FAN_DENY
            } else {
                libc::FAN_ALLOW
            },
        };
        // SAFETY: writes one response struct to our group.
        let n = unsafe {
            libc::write(
                self.group.as_raw_fd(),
                (&resp as *const libc::fanotify_response).cast(),
                std::mem::size_of::<libc::fanotify_response>(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            // A reader killed while held takes its event with it.
            if deny && e.raw_os_error() == Some(libc::ENOENT) {
                return;
            }
            tracing::error!("cannot answer a fanotify permission event: {e}");
        }
    }
}

/// Room for a batch of events, aligned for `fanotify_event_metadata`.
struct EventBuf([u64; 4096 / 8]);

impl Default for EventBuf {
    fn default() -> Self {
        Self([0; 4096 / 8])
    }
}

/// The events in `bytes` (whole ones, as a read of the group returns them).
fn events(mut bytes: &[u8]) -> impl Iterator<Item = libc::fanotify_event_metadata> + '_ {
    let size = std::mem::size_of::<libc::fanotify_event_metadata>();
    std::iter::from_fn(move || {
        if bytes.len() < size {
            return None;
        }
        // SAFETY: at least one metadata struct remains; read unaligned.
        let meta: libc::fanotify_event_metadata =
            unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
        bytes = &bytes[(meta.event_len as usize).clamp(size, bytes.len())..];
        Some(meta)
    })
}

/// The executable of `pid` as the kernel's allow list keys it. The reader
/// is blocked in its read while this runs, so the pid is still its own.
fn exe_key(pid: i32) -> Option<InodeKey> {
    std::fs::metadata(format!("/proc/{pid}/exe"))
        .ok()
        .map(|m| inode_key(&m))
}

/// Repeat folding per (process, inode): the first read in a window is
/// reported with the count of reads folded since the previous report.
struct Folds {
    window: Duration,
    seen: HashMap<(u32, InodeKey), (Instant, u32)>,
}

/// Entries kept before the expired ones are swept.
const FOLDS_CAP: usize = 4096;

impl Folds {
    fn new(window: Duration) -> Self {
        Self {
            window,
            seen: HashMap::new(),
        }
    }

    /// `Some(repeats)` to report now, `None` when folded.
    fn fold(&mut self, tgid: u32, key: InodeKey) -> Option<u32> {
        let now = Instant::now();
        if self.window.is_zero() {
            return Some(0);
        }
        if self.seen.len() >= FOLDS_CAP {
            let window = self.window;
            self.seen
                .retain(|_, (at, _)| now.duration_since(*at) < window);
        }
        match self.seen.get_mut(&(tgid, key)) {
            Some((at, n)) if now.duration_since(*at) < self.window => {
                *n += 1;
                None
            }
            Some((at, n)) => {
                let repeats = std::mem::take(n);
                *at = now;
                Some(repeats)
            }
            None => {
                self.seen.insert((tgid, key), (now, 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(ino: u64) -> InodeKey {
        InodeKey {
            dev: 1,
            _pad: 0,
            ino,
        }
    }

    #[test]
    fn reads_in_one_window_fold_into_the_next_report() {
        let mut f = Folds::new(Duration::from_millis(50));
        assert_eq!(f.fold(7, key(1)), Some(0));
        assert_eq!(f.fold(7, key(1)), None);
        assert_eq!(f.fold(7, key(1)), None);
        // Another process or inode is its own pair.
        assert_eq!(f.fold(8, key(1)), Some(0));
        assert_eq!(f.fold(7, key(2)), Some(0));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(f.fold(7, key(1)), Some(2));
        assert_eq!(Folds::new(Duration::ZERO).fold(7, key(1)), Some(0));
    }

    #[test]
    fn a_secret_on_tmpfs_is_marked_and_one_elsewhere_is_not() {
        let Ok(w) = TmpfsWatch::open() else {
            // Creating a group needs CAP_SYS_ADMIN; the integration topic
            // `file_hooks::` proves the reads under CI.
            assert!(
                std::env::var("CI").is_err(),
                "fanotify unavailable under CI"
            );
            return;
        };
        let on_disk = std::env::current_exe().unwrap();
        let k = inode_key(&std::fs::metadata(&on_disk).unwrap());
        w.watch(k, 0, &on_disk).unwrap();
        let tmpfs = Path::new("/dev/shm");
        if tmpfs.is_dir() {
            let p = tmpfs.join(format!("proctor-tmpfs-watch-{}", std::process::id()));
            std::fs::write(&p, b"x").unwrap();
            let k2 = inode_key(&std::fs::metadata(&p).unwrap());
            w.watch(k2, 1, &p).unwrap();
            assert_eq!(w.figures().marked, 1, "only the tmpfs file is marked");
            w.set_deny(k2, Some(3)).unwrap();
            w.set_deny(k2, None).unwrap();
            // With no reader loop, a permission mark would hold every reader:
            // once the loop is declared stopped, reads go through, even after
            // a kill rule is set again.
            w.set_deny(k2, Some(3)).unwrap();
            assert!(!w.figures().stopped);
            w.stop_blocking();
            assert!(w.figures().stopped, "a stopped reader is reported");
            w.set_deny(k2, Some(4)).unwrap();
            let cat = std::process::Command::new("timeout")
                .args(["10", "cat"])
                .arg(&p)
                .output()
                .unwrap();
            assert!(cat.status.success(), "a reader was held: {cat:?}");
            w.unwatch(k2);
            std::fs::remove_file(&p).unwrap();
        }
        assert_eq!(w.figures().marked, 0);
        // A path whose inode is not the key's is refused, not marked.
        assert!(w.watch(key(u64::MAX), 2, &on_disk).is_err());
    }
}
