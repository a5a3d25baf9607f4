//! `proctor spire-plugin`: an external WorkloadAttestor plugin for the SPIRE
//! agent, speaking hashicorp/go-plugin protocol version 1 over gRPC.
//!
//! The SPIRE agent starts the plugin (`plugin_cmd`/`plugin_args` in its
//! config), reads the handshake line, connects to the socket named in it and
//! calls, in order: the go-plugin broker stream, `Init`, `Configure` (with the
//! HCL `plugin_data`), then `Attest(pid)` for every workload that asks for an
//! identity. The plugin answers `Attest` by asking the running proctor agent
//! over its API socket, so the selectors come from the kernel's exec record.
//! See deploy/spire/README.md for the set-up.

use anyhow::{Context as _, Result};
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::Server;

pub mod attestor;
pub mod config;
pub mod goplugin;
pub mod handshake;
pub mod hclog;

/// Code generated from proto/spire and proto/goplugin.
#[allow(clippy::all, missing_docs)]
pub mod pb {
    pub mod workloadattestor {
        tonic::include_proto!("spire.plugin.agent.workloadattestor.v1");
    }
    pub mod config {
        tonic::include_proto!("spire.service.common.config.v1");
    }
    pub mod init {
        tonic::include_proto!("spire.service.private.init.v1");
    }
    pub mod goplugin {
        tonic::include_proto!("plugin");
    }
}

/// go-plugin's health check asks about this service name.
const HEALTH_SERVICE: &str = "plugin";

/// How long the plugin waits for open calls after a shutdown request.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Whether a go-plugin host started this process (its magic cookie variable
/// is set, right or wrong): its stderr is then read by the host, as hclog JSON.
pub fn started_by_host() -> bool {
    std::env::var_os(handshake::MAGIC_COOKIE_KEY).is_some()
}

/// Runs the plugin until the host shuts it down; the exit code.
pub fn run() -> Result<i32> {
    let request = handshake::check_env(|k| std::env::var(k).ok())?;
    // The host's terminal sends ^C to the whole process group; the host stops
    // its plugins itself (Shutdown), as go-plugin's own plugins do.
    unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(serve(request))?;
    Ok(0)
}

async fn serve(request: handshake::HostRequest) -> Result<()> {
    use pb::{
        config::config_server::ConfigServer,
        goplugin::{
            grpc_broker_server::GrpcBrokerServer, grpc_controller_server::GrpcControllerServer,
            grpc_stdio_server::GrpcStdioServer,
        },
        init::init_server::InitServer,
        workloadattestor::workload_attestor_server::WorkloadAttestorServer,
    };

    let socket = handshake::bind(&request)?;
    let listener = tokio::net::UnixListener::from_std(socket.listener)
        .context("register the plugin socket")?;
    let shutdown = goplugin::Shutdown::default();
    let configured = attestor::Configured::default();
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_service_status(HEALTH_SERVICE, tonic_health::ServingStatus::Serving)
        .await;

    let router = Server::builder()
        .add_service(health_service)
        .add_service(GrpcBrokerServer::new(goplugin::Broker {
            shutdown: shutdown.clone(),
        }))
        .add_service(GrpcControllerServer::new(goplugin::Controller {
            shutdown: shutdown.clone(),
        }))
        .add_service(GrpcStdioServer::new(goplugin::Stdio {
            shutdown: shutdown.clone(),
        }))
        .add_service(InitServer::new(attestor::InitService))
        .add_service(ConfigServer::new(attestor::ConfigService {
            configured: configured.clone(),
        }))
        .add_service(WorkloadAttestorServer::new(attestor::AttestorService {
            configured,
        }));

    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let stop = shutdown.clone();
    tokio::spawn(async move {
        sigterm.recv().await;
        stop.trigger();
    });

    // The host starts talking as soon as it has read this line.
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", handshake::line(&socket.path))
            .and_then(|_| out.flush())
            .context("write the handshake line to stdout")?;
    }

    let down = shutdown.clone();
    let served = router
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async move {
            down.wait().await
        });
    tokio::select! {
        r = served => r.with_context(|| format!("plugin server on {}", socket.path.display()))?,
        _ = async { shutdown.wait().await; tokio::time::sleep(SHUTDOWN_GRACE).await } => {
            tracing::warn!("spire-plugin: calls still open {SHUTDOWN_GRACE:?} after shutdown; exiting");
        }
    }
    drop(socket.dir);
    Ok(())
}
