//! The API server: socket set-up, the peer check and the services.

use std::{
    future::Future,
    io,
    os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use anyhow::{bail, Context as _, Result};
use tokio::{net::UnixListener, sync::watch};
use tonic::{service::interceptor::InterceptedService, transport::Server};

use crate::api::{
    attest::AttestationService,
    events::EventsService,
    inventory::InventoryService,
    pb::{
        attestation_server::AttestationServer, events_server::EventsServer,
        inventory_server::InventoryServer,
    },
    peer::{self, Access, PeerStream, Service},
    selectors::resolve_group,
    ApiConfig, ApiHandles,
};

/// A bound API socket, not serving yet. Binding first lets `proctor run`
/// fail at start-up (socket in use, bad group) before it loads anything.
pub struct ApiServer {
    cfg: ApiConfig,
    listener: UnixListener,
    access: Arc<Access>,
    /// (dev, inode) of the socket file we created, to remove only ours.
    socket_id: (u64, u64),
}

/// Binds `cfg.socket` and serves until `shutdown` completes; then stops
/// accepting, ends open streams (UNAVAILABLE) and removes the socket.
pub async fn serve(
    cfg: ApiConfig,
    handles: ApiHandles,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    ApiServer::bind(cfg)?.run(handles, shutdown).await
}

/// Removes what is at `path` if it is a socket nobody listens on; fails if
/// it is anything else, or a live socket.
fn clear_stale_socket(path: &Path) -> Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("api socket {}", path.display())),
    };
    if !meta.file_type().is_socket() {
        bail!(
            "api socket {} exists and is not a socket; refusing to replace it (set api.socket \
             to another path or remove the file)",
            path.display()
        );
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => bail!(
            "api socket {} is in use: another proctor (or another program) is serving on it",
            path.display()
        ),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Ok(()),
        Err(e) => {
            Err(e).with_context(|| format!("probe the existing api socket {}", path.display()))
        }
    }
}

impl ApiServer {
    /// Creates the socket: its directory (mode 0755) when missing, the socket
    /// with mode 0600 (0660 and the group set with `cfg.group`), created in a
    /// private directory and renamed into place so that it is never
    /// reachable with other permissions. Must be called in a tokio runtime.
    pub fn bind(cfg: ApiConfig) -> Result<Self> {
        let path = cfg.socket.clone();
        let name = path
            .file_name()
            .with_context(|| format!("api.socket {} names no file", path.display()))?
            .to_string_lossy()
            .into_owned();
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let gid = match &cfg.group {
            Some(g) => Some(resolve_group(g).with_context(|| {
                format!("api.group {g:?}: no such group in /etc/group (give a name or a number)")
            })?),
            None => None,
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&dir)
            .with_context(|| format!("create the api socket directory {}", dir.display()))?;
        clear_stale_socket(&path)?;

        let tmp = dir.join(format!(
            ".{name}.{}.{}",
            std::process::id(),
            crate::clock::now_ns()
        ));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&tmp)
            .with_context(|| format!("create {}", tmp.display()))?;
        let bound = (|| -> Result<std::os::unix::net::UnixListener> {
            let staged = tmp.join(&name);
            let l = std::os::unix::net::UnixListener::bind(&staged)
                .with_context(|| format!("bind the api socket {}", staged.display()))?;
            // Per-service callers are not the socket's owner or group: the
            // socket admits everyone and the peer check decides.
            let mode = if cfg.services.names_callers() {
                0o666
            } else if gid.is_some() {
                0o660
            } else {
                0o600
            };
            std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(mode))
                .with_context(|| format!("chmod {:o} {}", mode, staged.display()))?;
            if let Some(g) = gid {
                std::os::unix::fs::chown(&staged, None, Some(g))
                    .with_context(|| format!("chgrp {g} {}", staged.display()))?;
            }
            std::fs::rename(&staged, &path)
                .with_context(|| format!("move the api socket into place at {}", path.display()))?;
            Ok(l)
        })();
        let _ = std::fs::remove_dir_all(&tmp);
        let listener = bound?;
        let meta = std::fs::symlink_metadata(&path)
            .with_context(|| format!("stat the api socket {}", path.display()))?;
        listener.set_nonblocking(true)?;
        let listener = UnixListener::from_std(listener).context("register the api socket")?;
        let access = Arc::new(cfg.access(gid));
        Ok(Self {
            cfg,
            listener,
            access,
            socket_id: (meta.dev(), meta.ino()),
        })
    }

    pub fn path(&self) -> &Path {
        &self.cfg.socket
    }

    /// Serves until `shutdown` completes, then removes the socket.
    pub async fn run(self, handles: ApiHandles, shutdown: impl Future<Output = ()>) -> Result<()> {
        let ApiServer {
            cfg,
            listener,
            access,
            socket_id,
        } = self;
        let (stop_tx, stop_rx) = watch::channel(false);

        let attestation = AttestationService {
            handles: handles.clone(),
            hash_wait: cfg.hash_wait,
            shutdown: stop_rx.clone(),
        };
        let events = EventsService {
            events: handles.events.clone(),
            shutdown: stop_rx.clone(),
        };
        let inventory = InventoryService {
            path: handles.inventory_path.clone(),
        };
        let (health, health_service) = tonic_health::server::health_reporter();
        health
            .set_serving::<AttestationServer<AttestationService>>()
            .await;
        health.set_serving::<EventsServer<EventsService>>().await;
        health
            .set_serving::<InventoryServer<InventoryService>>()
            .await;

        let accepting = access.clone();
        let incoming = futures::stream::unfold((listener, accepting), |(l, access)| async move {
            loop {
                match l.accept().await {
                    Ok((s, _)) => {
                        let s = PeerStream::new(s, &access);
                        return Some((Ok::<_, io::Error>(s), (l, access)));
                    }
                    Err(e) => {
                        // E.g. out of file descriptors: back off instead of spinning.
                        tracing::warn!("api: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
        let signal = async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        };
        tracing::info!("api: serving on {}", cfg.socket.display());
        let check = |s| peer::interceptor(access.clone(), s);
        let served = Server::builder()
            .add_service(AttestationServer::with_interceptor(
                attestation,
                check(Service::Attestation),
            ))
            .add_service(EventsServer::with_interceptor(
                events,
                check(Service::Events),
            ))
            .add_service(InventoryServer::with_interceptor(
                inventory,
                check(Service::Inventory),
            ))
            .add_service(InterceptedService::new(
                health_service,
                check(Service::Health),
            ))
            .serve_with_incoming_shutdown(incoming, signal)
            .await;
        // Remove the socket only if it is still the one we made.
        if let Ok(m) = std::fs::symlink_metadata(&cfg.socket) {
            if (m.dev(), m.ino()) == socket_id {
                let _ = std::fs::remove_file(&cfg.socket);
            }
        }
        served.with_context(|| format!("api server on {}", cfg.socket.display()))
    }
}
