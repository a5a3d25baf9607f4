//! Who is calling: the kernel's credentials of the peer of each accepted
//! connection (`SO_PEERCRED`), and the allow list every call is checked
//! against.

use std::{
    collections::BTreeSet,
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::UnixStream,
};
use tonic::{transport::server::Connected, Request, Status};

/// The caller, as the kernel described it when it connected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    pub uid: u32,
    pub gid: u32,
    pub pid: Option<i32>,
    /// Supplementary groups of the peer process, read from /proc when the
    /// connection was accepted.
    pub groups: Vec<u32>,
    /// Decided once, at accept time.
    pub allowed: bool,
}

/// Which callers may use the API.
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    pub uids: BTreeSet<u32>,
    pub gids: BTreeSet<u32>,
}

impl AllowList {
    pub fn allows(&self, uid: u32, gid: u32, groups: &[u32]) -> bool {
        self.uids.contains(&uid)
            || self.gids.contains(&gid)
            || groups.iter().any(|g| self.gids.contains(g))
    }
}

/// Supplementary groups of `pid` (empty when unreadable).
fn supplementary_groups(pid: i32) -> Vec<u32> {
    procfs::process::Process::new(pid)
        .and_then(|p| p.status())
        .map(|s| s.groups)
        .unwrap_or_default()
}

/// The credentials of the peer of `stream`, judged against `allow`.
/// A peer whose credentials cannot be read is never allowed.
pub fn peer_info(stream: &UnixStream, allow: &AllowList) -> PeerInfo {
    match stream.peer_cred() {
        Ok(c) => {
            let pid = c.pid();
            let groups = match pid {
                Some(p) if !allow.gids.is_empty() => supplementary_groups(p),
                _ => Vec::new(),
            };
            PeerInfo {
                uid: c.uid(),
                gid: c.gid(),
                pid,
                allowed: allow.allows(c.uid(), c.gid(), &groups),
                groups,
            }
        }
        Err(e) => {
            tracing::warn!("api: cannot read the peer credentials of a connection: {e}");
            PeerInfo {
                uid: u32::MAX,
                gid: u32::MAX,
                pid: None,
                groups: Vec::new(),
                allowed: false,
            }
        }
    }
}

/// An accepted connection with its peer's credentials.
pub struct PeerStream {
    inner: UnixStream,
    info: Arc<PeerInfo>,
}

impl PeerStream {
    pub fn new(inner: UnixStream, allow: &AllowList) -> Self {
        let info = Arc::new(peer_info(&inner, allow));
        Self { inner, info }
    }
}

impl Connected for PeerStream {
    type ConnectInfo = Arc<PeerInfo>;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.info.clone()
    }
}

impl AsyncRead for PeerStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for PeerStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The interceptor on every service: PERMISSION_DENIED unless the peer was
/// allowed when it connected.
pub fn check(req: Request<()>) -> Result<Request<()>, Status> {
    match req.extensions().get::<Arc<PeerInfo>>() {
        Some(p) if p.allowed => Ok(req),
        Some(p) => Err(Status::permission_denied(format!(
            "uid {} (gid {}{}) may not use the proctor API: allow it with api.allow_uids, \
             api.allow_gids or api.group in the agent's config",
            p.uid,
            p.gid,
            p.pid.map(|p| format!(", pid {p}")).unwrap_or_default()
        ))),
        None => Err(Status::permission_denied(
            "the caller's credentials are unknown (not a Unix socket connection)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_list() {
        let a = AllowList {
            uids: [0].into(),
            gids: [42].into(),
        };
        assert!(a.allows(0, 0, &[]));
        assert!(a.allows(1000, 42, &[]));
        assert!(a.allows(1000, 1000, &[7, 42]));
        assert!(!a.allows(1000, 1000, &[7]));
        assert!(!AllowList::default().allows(0, 0, &[0]));
    }

    #[tokio::test]
    async fn peer_of_a_socketpair_is_this_process() {
        let (a, _b) = UnixStream::pair().unwrap();
        let me = unsafe { libc::geteuid() };
        let allow = AllowList {
            uids: [me].into(),
            gids: Default::default(),
        };
        let info = peer_info(&a, &allow);
        assert_eq!(info.uid, me);
        assert_eq!(info.pid, Some(std::process::id() as i32));
        assert!(info.allowed);
        let info = peer_info(&a, &AllowList::default());
        assert!(!info.allowed);
        let mut req = Request::new(());
        req.extensions_mut().insert(Arc::new(info));
        assert_eq!(
            check(req).unwrap_err().code(),
            tonic::Code::PermissionDenied
        );
        assert_eq!(
            check(Request::new(())).unwrap_err().code(),
            tonic::Code::PermissionDenied
        );
    }
}
