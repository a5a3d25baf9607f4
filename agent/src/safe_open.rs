//! Opening files that an event or a user named: never blocking, only regular files, the inode the kernel reported, reads capped.
//!
//! A path, fd or pid arriving with an event may be hostile: a FIFO held open
//! by a writer that never writes blocks `open` or `read` forever, `/dev/zero`
//! never reaches EOF, a symlink may be retargeted between the kernel's look
//! and ours, and procfs files report `st_size` 0 whatever they hold. Every
//! such open goes through here:
//!
//! - the path is stat'ed first and anything but a regular file (or, when the
//!   kernel named one, another inode) is refused without being opened, so a
//!   device's open side effects never happen;
//! - the open is `O_RDONLY | O_NONBLOCK | O_CLOEXEC` (plus `O_NOFOLLOW` where
//!   no link is expected), so a FIFO swapped in after the stat cannot block;
//! - the opened fd is checked again with `fstat`, which is the final word;
//! - reads stop at a byte cap whatever `st_size` says.
//!
//! `/proc/<pid>/fd/N` and `/proc/<pid>/exe` are magic links that must be
//! followed: for them [`Links::Follow`] and the `fstat` check carry the weight.

use std::{
    fs::{File, Metadata, OpenOptions},
    io::{self, Read},
    os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt},
    path::{Path, PathBuf},
};

/// Whether the last component of the path may be a symlink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// The path is expected to be a link (`/proc/<pid>/fd/N`, an exec'd
    /// script named through a symlink): follow it and check what it led to.
    Follow,
    /// The path was resolved already: a symlink there now is a race, refused.
    NoFollow,
}

/// (st_dev, st_ino) as `stat(2)` reports them.
pub type Inode = (u64, u64);

#[derive(Debug, thiserror::Error)]
pub enum SafeOpenError {
    #[error("{path}: cannot open: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{path}: is a {kind}, not a regular file; only regular files are read \
         (a FIFO or device there could block or never end)"
    )]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error(
        "{path}: is inode {got:?} (dev, ino), not {want:?} the kernel reported; \
         the path was replaced after the event, so it is not read"
    )]
    InodeChanged {
        path: PathBuf,
        want: Inode,
        got: Inode,
    },
    #[error("{path}: holds more than {cap} bytes, the most read here; not read")]
    TooLarge { path: PathBuf, cap: u64 },
}

/// What kind of file `meta` describes, for messages.
pub fn kind_of(meta: &Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_file() {
        "regular file"
    } else if t.is_dir() {
        "directory"
    } else if t.is_symlink() {
        "symlink"
    } else if t.is_fifo() {
        "FIFO"
    } else if t.is_socket() {
        "socket"
    } else if t.is_char_device() {
        "character device"
    } else if t.is_block_device() {
        "block device"
    } else {
        "special file"
    }
}

/// `meta` must be a regular file and, when `expect` is given, that inode.
pub fn check(path: &Path, meta: &Metadata, expect: Option<Inode>) -> Result<(), SafeOpenError> {
    if !meta.file_type().is_file() {
        return Err(SafeOpenError::NotRegular {
            path: path.to_path_buf(),
            kind: kind_of(meta),
        });
    }
    if let Some(want) = expect {
        let got = (meta.dev(), meta.ino());
        if got != want {
            return Err(SafeOpenError::InodeChanged {
                path: path.to_path_buf(),
                want,
                got,
            });
        }
    }
    Ok(())
}

/// Opens `path` for reading as described in the module documentation and
/// returns the file with its `fstat`.
pub fn open_regular(
    path: &Path,
    links: Links,
    expect: Option<Inode>,
) -> Result<(File, Metadata), SafeOpenError> {
    let io_err = |source| SafeOpenError::Io {
        path: path.to_path_buf(),
        source,
    };
    let pre = match links {
        Links::Follow => std::fs::metadata(path),
        Links::NoFollow => std::fs::symlink_metadata(path),
    }
    .map_err(io_err)?;
    check(path, &pre, expect)?;
    open_then_check(path, links, expect)
}

/// The open (never blocking, links as `links` says) and the `fstat` check
/// that has the last word, without a stat before: for paths that can only
/// lead to a regular file.
fn open_then_check(
    path: &Path,
    links: Links,
    expect: Option<Inode>,
) -> Result<(File, Metadata), SafeOpenError> {
    let mut flags = libc::O_NONBLOCK | libc::O_CLOEXEC;
    if links == Links::NoFollow {
        flags |= libc::O_NOFOLLOW;
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
        .map_err(|source| SafeOpenError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    let meta = check_open(path, &file, expect)?;
    Ok((file, meta))
}

/// Opens `/proc/<pid>/exe` without the stat before the open: that link can
/// only lead to a regular file (the kernel executes nothing else, and
/// `PR_SET_MM_EXE_FILE` accepts nothing else), so there is no device or FIFO
/// to keep from being opened, and the `fstat` check still has the last word.
/// A stat costs a path walk through /proc, several microseconds per exec.
pub fn open_exe_link(
    path: &Path,
    expect: Option<Inode>,
) -> Result<(File, Metadata), SafeOpenError> {
    open_then_check(path, Links::Follow, expect)
}

/// Checks a file opened elsewhere (e.g. `/proc/<pid>/exe` opened the moment
/// an exec arrived) the same way and returns its `fstat`.
pub fn check_open(
    path: &Path,
    file: &File,
    expect: Option<Inode>,
) -> Result<Metadata, SafeOpenError> {
    let meta = file.metadata().map_err(|source| SafeOpenError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    check(path, &meta, expect)?;
    Ok(meta)
}

/// At most the first `cap` bytes of `file`, whatever its size claims: for
/// a look at the top of a file (content checks, fingerprints of the first MiB).
pub fn read_prefix(path: &Path, file: &mut File, cap: u64) -> Result<Vec<u8>, SafeOpenError> {
    let mut buf = Vec::new();
    file.take(cap)
        .read_to_end(&mut buf)
        .map_err(|source| SafeOpenError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(buf)
}

/// Feeds all of `file` to `sink` in chunks, failing with `TooLarge` as soon
/// as more than `cap` bytes turn up (a size-0 procfs file or a file growing
/// under the reader is cut off there). Returns the bytes read.
pub fn read_all_capped(
    path: &Path,
    file: &mut File,
    cap: u64,
    mut sink: impl FnMut(&[u8]),
) -> Result<u64, SafeOpenError> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(SafeOpenError::Io {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        total += n as u64;
        if total > cap {
            return Err(SafeOpenError::TooLarge {
                path: path.to_path_buf(),
                cap,
            });
        }
        sink(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use std::{
        ffi::CString,
        os::unix::ffi::OsStrExt,
        time::{Duration, Instant},
    };

    use super::*;

    fn mkfifo(p: &Path) {
        let c = CString::new(p.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }

    #[test]
    fn a_fifo_held_open_by_a_silent_writer_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join(".netrc");
        mkfifo(&fifo);
        // A writer that never writes: a blocking open and read would hang.
        let _writer = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&fifo)
            .unwrap();
        let t = Instant::now();
        for links in [Links::Follow, Links::NoFollow] {
            let err = open_regular(&fifo, links, None).unwrap_err();
            assert!(matches!(err, SafeOpenError::NotRegular { .. }), "{err}");
            assert!(err.to_string().contains("FIFO"), "{err}");
        }
        // Through a magic link too: the fd of the writer.
        let fd_link = PathBuf::from(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&_writer)
        ));
        let err = open_regular(&fd_link, Links::Follow, None).unwrap_err();
        assert!(matches!(err, SafeOpenError::NotRegular { .. }), "{err}");
        assert!(t.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn a_device_is_refused_and_a_symlink_is_refused_where_none_is_expected() {
        let err = open_regular(Path::new("/dev/zero"), Links::Follow, None).unwrap_err();
        assert!(err.to_string().contains("character device"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, b"x").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = open_regular(&link, Links::NoFollow, None).unwrap_err();
        assert!(err.to_string().contains("symlink"), "{err}");
        // Followed where a link is expected, it is the target that counts.
        let (_, meta) = open_regular(&link, Links::Follow, None).unwrap();
        assert_eq!(meta.ino(), std::fs::metadata(&target).unwrap().ino());
    }

    #[test]
    fn another_inode_than_the_kernel_reported_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::fs::write(&a, b"a").unwrap();
        std::fs::write(&b, b"b").unwrap();
        let ma = std::fs::metadata(&a).unwrap();
        let want = (ma.dev(), ma.ino());
        assert!(open_regular(&a, Links::NoFollow, Some(want)).is_ok());
        let err = open_regular(&b, Links::NoFollow, Some(want)).unwrap_err();
        assert!(matches!(err, SafeOpenError::InodeChanged { .. }), "{err}");
        assert!(err.to_string().contains(&b.display().to_string()), "{err}");
    }

    #[test]
    fn reads_are_capped_whatever_the_size_says() {
        // procfs: st_size 0, many kilobytes of content.
        let p = Path::new("/proc/self/maps");
        let (mut f, meta) = open_regular(p, Links::Follow, None).unwrap();
        assert_eq!(meta.size(), 0);
        let err = read_all_capped(p, &mut f, 16, |_| {}).unwrap_err();
        assert!(matches!(err, SafeOpenError::TooLarge { .. }), "{err}");
        let (mut f, _) = open_regular(p, Links::Follow, None).unwrap();
        assert_eq!(read_prefix(p, &mut f, 16).unwrap().len(), 16);

        let dir = tempfile::tempdir().unwrap();
        let small = dir.path().join("small");
        std::fs::write(&small, b"hello").unwrap();
        let (mut f, _) = open_regular(&small, Links::NoFollow, None).unwrap();
        let mut seen = Vec::new();
        let n = read_all_capped(&small, &mut f, 5, |c| seen.extend_from_slice(c)).unwrap();
        assert_eq!((n, seen.as_slice()), (5, &b"hello"[..]));
    }
}
