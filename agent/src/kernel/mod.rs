//! The kernel side as user space sees it: which hooks this kernel allows,
//! loading and attaching the probes with offsets read from the kernel's BTF,
//! and decoding the records they send.

pub mod btf_offsets;
pub mod connect_sweep;
pub mod decode;
pub mod doctor;
pub mod mounts;
pub mod preflight;
pub mod probes;
pub mod tmpfs_watch;

use std::os::fd::AsRawFd;

use tokio::io::unix::AsyncFd;

/// Registers a kernel fd (a map, the fanotify group) with the tokio reactor.
/// `inner` must own its fd and keep it open, unchanged, for as long as it
/// lives: aya maps and [`tmpfs_watch::TmpfsWatch`] do.
pub fn watch_fd<T: AsRawFd>(inner: T) -> std::io::Result<AsyncFd<T>> {
    // SAFETY: as documented above; the AsyncFd owns `inner`.
    Ok(unsafe { AsyncFd::register(inner) }?)
}
