//! The file-system half of judging a secret open (stat, content peek, fingerprint read), run on the blocking pool so the ingest task never waits on a disk.

use std::{
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

use crate::{
    safe_open::{self, Links, SafeOpenError},
    secrets::{catalog::CONTENT_PEEK_BYTES, fingerprint::Fingerprinter},
};

use super::MAX_SECRET_BYTES;

/// What an open of a secret needs read from the file system: built on the
/// ingest task from the record (owns everything, so it can move to another
/// thread), run with [`FileJob::run`].
pub struct FileJob {
    /// For an inode match: the watched path, which must still lead to the inode.
    pub(super) watched_path: Option<String>,
    /// The path the kernel resolved: judged when no watched path leads to the inode.
    pub(super) kernel_path: String,
    /// Read the head of the file for the catalog's content check when the
    /// kernel path is used (a name match, or a stale inode match).
    pub(super) peek: bool,
    /// The opener's fd, while it may still hold it.
    pub(super) open_fd: Option<(u32, i32)>,
    /// The inode the kernel reported, st_dev encoding.
    pub(super) dev: u64,
    pub(super) ino: u64,
    pub(super) fingerprinter: Fingerprinter,
}

/// What a [`FileJob`] found.
#[derive(Default)]
pub struct FileFacts {
    /// The watched path leads to another inode now (deleted, number reused).
    pub(super) stale: bool,
    /// The file's head for the content check: `Err(true)` when the open
    /// refused a non-regular file, `Err(false)` when nothing could be read.
    /// Zeroed by whoever checks it.
    pub(super) peek: Option<Result<Vec<u8>, bool>>,
    /// The file as it is now, when it still is the kernel's inode.
    pub(super) meta: Option<std::fs::Metadata>,
    /// Its directory, for the new-file watch of patterned entries.
    pub(super) parent: Option<std::fs::Metadata>,
    /// Keyed fingerprint of the content, when it was read.
    pub(super) fingerprint: Option<String>,
    /// Reads refused (FIFO, device, another inode): counted by the monitor.
    pub(super) refused: u64,
    /// Times the content was read for a fingerprint.
    pub(super) fingerprint_reads: u64,
}

impl FileJob {
    /// Does the stats and reads; blocking.
    pub fn run(self) -> FileFacts {
        let mut facts = FileFacts::default();
        let mut meta = None;
        if let Some(w) = &self.watched_path {
            meta = meta_at(w, self.ino, self.dev);
            facts.stale = meta.is_none();
        }
        let trusted = meta.is_some();
        let path = match (trusted, &self.watched_path) {
            (true, Some(w)) => w.as_str(),
            _ => self.kernel_path.as_str(),
        };
        if !trusted && self.peek {
            let peek = read_secret(path, self.open_fd, None, CONTENT_PEEK_BYTES as u64);
            facts.refused += u64::from(peek == Err(true));
            facts.peek = Some(peek);
        }
        // A file already gone again keeps the kernel's identity: no meta.
        let meta = meta
            .or_else(|| {
                let (pid, fd) = self.open_fd?;
                meta_at(&format!("/proc/{pid}/fd/{fd}"), self.ino, self.dev)
            })
            .or_else(|| meta_at(path, self.ino, self.dev));
        if let Some(m) = meta.as_ref().filter(|m| m.is_file()) {
            facts.fingerprint_reads += 1;
            match read_secret(
                path,
                self.open_fd,
                Some((m.dev(), m.ino())),
                MAX_SECRET_BYTES,
            ) {
                Ok(mut buf) => {
                    facts.fingerprint = Some(self.fingerprinter.fingerprint(&buf));
                    buf.fill(0);
                }
                Err(refused) => facts.refused += u64::from(refused),
            }
            facts.parent = Path::new(path)
                .parent()
                .and_then(|d| std::fs::metadata(d).ok());
        }
        facts.meta = meta;
        facts
    }
}

/// `path`'s metadata if it still is the file (`ino`, `dev` in st_dev encoding).
pub(super) fn meta_at(path: &str, ino: u64, dev: u64) -> Option<std::fs::Metadata> {
    std::fs::metadata(path)
        .ok()
        .filter(|m| m.ino() == ino && m.dev() == dev)
}

/// At most `cap` bytes from the top of the secret at `path`: through
/// `/proc/<pid>/fd/<fd>` (a magic link, followed) when the opener still
/// holds it, else through `path` (already the real path: a link there now
/// is a swap, not followed). Only a regular file, and only inode `expect`
/// when given, is read; the error says whether an open was refused for
/// that (`true`) or nothing could be opened (`false`).
pub(super) fn read_secret(
    path: &str,
    open_fd: Option<(u32, i32)>,
    expect: Option<safe_open::Inode>,
    cap: u64,
) -> Result<Vec<u8>, bool> {
    let by_fd =
        open_fd.map(|(pid, fd)| (PathBuf::from(format!("/proc/{pid}/fd/{fd}")), Links::Follow));
    let mut refused = false;
    for (c, links) in by_fd
        .into_iter()
        .chain([(PathBuf::from(path), Links::NoFollow)])
    {
        match safe_open::open_regular(&c, links, expect) {
            Ok((mut f, _)) => {
                if let Ok(buf) = safe_open::read_prefix(&c, &mut f, cap) {
                    return Ok(buf);
                }
            }
            Err(e @ (SafeOpenError::NotRegular { .. } | SafeOpenError::InodeChanged { .. })) => {
                tracing::debug!("secret not read: {e}");
                refused = true;
            }
            Err(_) => {}
        }
    }
    Err(refused)
}
