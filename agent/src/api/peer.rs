//! Who is calling: the kernel's credentials of the peer of each accepted
//! connection (`SO_PEERCRED`, `SO_PEERGROUPS`), and the per-service allow
//! lists every call is checked against.

use std::{
    collections::BTreeSet,
    io,
    os::fd::AsRawFd,
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
    /// Supplementary groups of the peer when it connected (`SO_PEERGROUPS`):
    /// the kernel's copy, so a pid reused after the connect cannot lend its
    /// groups; `None` when the kernel would not tell (never allowed by gid).
    pub groups: Option<Vec<u32>>,
}

/// Callers allowed by uid or gid (effective or supplementary).
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

    fn admits(&self, p: &PeerInfo) -> bool {
        self.allows(p.uid, p.gid, p.groups.as_deref().unwrap_or(&[]))
    }
}

/// The API's services, each with its own callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Attestation,
    Events,
    Inventory,
    /// `grpc.health.v1.Health`: open to a caller admitted to any service.
    Health,
}

impl Service {
    fn key(self) -> &'static str {
        match self {
            Service::Attestation => "attestation",
            Service::Events => "events",
            Service::Inventory => "inventory",
            Service::Health => "health",
        }
    }
}

/// Who may call what. An identity server needs Attestation only; the event
/// stream and the inventory carry every user's command lines and paths, so
/// admitting a caller to one service never admits it to the others.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// Admitted to every service (`api.allow_uids`, `allow_gids`, `group`).
    pub all: AllowList,
    pub attestation: AllowList,
    pub events: AllowList,
    pub inventory: AllowList,
}

impl Access {
    pub fn admits(&self, service: Service, p: &PeerInfo) -> bool {
        if self.all.admits(p) {
            return true;
        }
        match service {
            Service::Attestation => self.attestation.admits(p),
            Service::Events => self.events.admits(p),
            Service::Inventory => self.inventory.admits(p),
            Service::Health => [&self.attestation, &self.events, &self.inventory]
                .iter()
                .any(|l| l.admits(p)),
        }
    }

    /// Whether any list names a gid (only then are groups worth asking for).
    fn uses_gids(&self) -> bool {
        [&self.all, &self.attestation, &self.events, &self.inventory]
            .iter()
            .any(|l| !l.gids.is_empty())
    }
}

/// The peer's supplementary groups as the kernel recorded them at connect
/// time. The first call learns the size (ERANGE), the second reads.
fn peer_groups(stream: &UnixStream) -> io::Result<Vec<u32>> {
    let fd = stream.as_raw_fd();
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    for _ in 0..2 {
        let mut len = (groups.len() * std::mem::size_of::<libc::gid_t>()) as libc::socklen_t;
        // SAFETY: `groups` has room for `len` bytes and lives across the call.
        let r = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let n = len as usize / std::mem::size_of::<libc::gid_t>();
        if r == 0 {
            groups.truncate(n);
            return Ok(groups);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ERANGE) || n <= groups.len() {
            return Err(e);
        }
        groups.resize(n, 0);
    }
    Err(io::Error::other(
        "SO_PEERGROUPS: the group list kept growing",
    ))
}

/// The credentials of the peer of `stream`; `None` when the kernel will not
/// say (such a peer is never admitted).
pub fn peer_info(stream: &UnixStream, access: &Access) -> Option<PeerInfo> {
    match stream.peer_cred() {
        Ok(c) => {
            let groups = if access.uses_gids() {
                match peer_groups(stream) {
                    Ok(g) => Some(g),
                    Err(e) => {
                        tracing::warn!(
                            "api: cannot read the supplementary groups of uid {} (SO_PEERGROUPS: \
                             {e}); it is judged by uid and primary gid only",
                            c.uid()
                        );
                        None
                    }
                }
            } else {
                None
            };
            Some(PeerInfo {
                uid: c.uid(),
                gid: c.gid(),
                pid: c.pid(),
                groups,
            })
        }
        Err(e) => {
            tracing::warn!("api: cannot read the peer credentials of a connection: {e}");
            None
        }
    }
}

/// An accepted connection with its peer's credentials.
pub struct PeerStream {
    inner: UnixStream,
    info: Arc<Option<PeerInfo>>,
}

impl PeerStream {
    pub fn new(inner: UnixStream, access: &Access) -> Self {
        let info = Arc::new(peer_info(&inner, access));
        Self { inner, info }
    }
}

impl Connected for PeerStream {
    type ConnectInfo = Arc<Option<PeerInfo>>;

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

/// The check in front of `service`: PERMISSION_DENIED unless the peer, as
/// it was when it connected, is admitted to that service.
pub fn interceptor(
    access: Arc<Access>,
    service: Service,
) -> impl FnMut(Request<()>) -> Result<Request<()>, Status> + Clone {
    move |req: Request<()>| match req.extensions().get::<Arc<Option<PeerInfo>>>() {
        Some(p) => match p.as_ref() {
            Some(p) if access.admits(service, p) => Ok(req),
            Some(p) => Err(Status::permission_denied(format!(
                "uid {} (gid {}{}) may not use the proctor API's {} service: allow it with \
                 api.allow_uids, api.allow_gids or api.group (every service) or with \
                 api.services.{}.allow_uids / allow_gids in the agent's config",
                p.uid,
                p.gid,
                p.pid.map(|p| format!(", pid {p}")).unwrap_or_default(),
                service.key(),
                match service {
                    Service::Health => "attestation",
                    s => s.key(),
                },
            ))),
            None => Err(Status::permission_denied(
                "the kernel did not give the caller's credentials (SO_PEERCRED failed)",
            )),
        },
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

    fn peer(uid: u32, gid: u32, groups: &[u32]) -> PeerInfo {
        PeerInfo {
            uid,
            gid,
            pid: Some(1),
            groups: Some(groups.to_vec()),
        }
    }

    #[test]
    fn a_caller_admitted_to_attestation_gets_nothing_else() {
        let access = Access {
            all: AllowList {
                uids: [0].into(),
                gids: Default::default(),
            },
            attestation: AllowList {
                uids: [1000].into(),
                gids: [77].into(),
            },
            ..Default::default()
        };
        let spire = peer(1000, 1000, &[]);
        assert!(access.admits(Service::Attestation, &spire));
        assert!(access.admits(Service::Health, &spire));
        assert!(!access.admits(Service::Events, &spire));
        assert!(!access.admits(Service::Inventory, &spire));
        let by_group = peer(2000, 2000, &[5, 77]);
        assert!(access.admits(Service::Attestation, &by_group));
        assert!(!access.admits(Service::Events, &by_group));
        // Groups the kernel would not give count for nothing.
        let unknown = PeerInfo {
            groups: None,
            ..by_group.clone()
        };
        assert!(!access.admits(Service::Attestation, &unknown));
        let root = peer(0, 0, &[]);
        for s in [
            Service::Attestation,
            Service::Events,
            Service::Inventory,
            Service::Health,
        ] {
            assert!(access.admits(s, &root), "{s:?}");
        }
        let stranger = peer(3000, 3000, &[3000]);
        assert!(!access.admits(Service::Health, &stranger));
    }

    #[tokio::test]
    async fn peer_of_a_socketpair_is_this_process_with_its_groups() {
        let (a, _b) = UnixStream::pair().unwrap();
        let me = unsafe { libc::geteuid() };
        let mut mine = vec![0 as libc::gid_t; 256];
        let n = unsafe { libc::getgroups(mine.len() as i32, mine.as_mut_ptr()) };
        mine.truncate(n as usize);
        let access = Access {
            all: AllowList {
                uids: [me].into(),
                gids: [u32::MAX - 1].into(),
            },
            ..Default::default()
        };
        let info = peer_info(&a, &access).unwrap();
        assert_eq!(info.uid, me);
        assert_eq!(info.pid, Some(std::process::id() as i32));
        let mut got = info.groups.clone().expect("SO_PEERGROUPS answered");
        got.sort();
        mine.sort();
        assert_eq!(got, mine);
        let mut check = interceptor(Arc::new(access), Service::Events);
        let mut req = Request::new(());
        req.extensions_mut().insert(Arc::new(Some(info.clone())));
        assert!(check(req).is_ok());
        let mut deny = interceptor(Arc::new(Access::default()), Service::Inventory);
        let mut req = Request::new(());
        req.extensions_mut().insert(Arc::new(Some(info)));
        let e = deny(req).unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied);
        assert!(
            e.message().contains("api.services.inventory"),
            "{}",
            e.message()
        );
        assert_eq!(
            deny(Request::new(())).unwrap_err().code(),
            tonic::Code::PermissionDenied
        );
    }
}
