//! The services a go-plugin host expects from every gRPC plugin besides
//! the plugin's own: the broker, the controller and the stdio stream.

use std::pin::Pin;

use futures::{Stream, StreamExt};
use tokio::sync::watch;
use tonic::{Request, Response, Status, Streaming};

use super::pb::goplugin::{
    grpc_broker_server::GrpcBroker, grpc_controller_server::GrpcController,
    grpc_stdio_server::GrpcStdio, ConnInfo, Empty, StdioData,
};

type Outgoing<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Set to true when the plugin is to exit (the host's Shutdown, or SIGTERM).
#[derive(Clone)]
pub struct Shutdown {
    tx: watch::Sender<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self {
            tx: watch::channel(false).0,
        }
    }
}

impl Shutdown {
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    pub async fn wait(&self) {
        let mut rx = self.tx.subscribe();
        let _ = rx.wait_for(|down| *down).await;
    }

    /// A stream that sends nothing and ends when `until` completes or the
    /// plugin shuts down (whichever is first).
    fn quiet_stream<T: Send + 'static>(
        &self,
        until: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Outgoing<T> {
        let this = self.clone();
        Box::pin(
            futures::stream::once(async move {
                tokio::select! {
                    _ = until => {}
                    _ = this.wait() => {}
                }
            })
            .filter_map(|_| async { None }),
        )
    }
}

/// `plugin.GRPCBroker`. The host opens the stream while it loads the plugin
/// and offers its host services over it (SPIRE: broker id 1). proctor uses
/// no host services, so offers are only logged, but the stream must stay
/// open for the plugin's lifetime: a host whose broker stream ends fails.
pub struct Broker {
    pub shutdown: Shutdown,
}

#[tonic::async_trait]
impl GrpcBroker for Broker {
    type StartStreamStream = Outgoing<ConnInfo>;

    async fn start_stream(
        &self,
        request: Request<Streaming<ConnInfo>>,
    ) -> Result<Response<Self::StartStreamStream>, Status> {
        let mut incoming = request.into_inner();
        let host_gone = async move {
            while let Some(Ok(offer)) = incoming.next().await {
                tracing::debug!(
                    "spire-plugin: host offers broker service {} at {} {} (not used)",
                    offer.service_id,
                    offer.network,
                    offer.address
                );
            }
        };
        Ok(Response::new(self.shutdown.quiet_stream(host_gone)))
    }
}

/// `plugin.GRPCController`: the host's request to exit.
pub struct Controller {
    pub shutdown: Shutdown,
}

#[tonic::async_trait]
impl GrpcController for Controller {
    async fn shutdown(&self, _: Request<Empty>) -> Result<Response<Empty>, Status> {
        tracing::debug!("spire-plugin: the host asks the plugin to shut down");
        self.shutdown.trigger();
        Ok(Response::new(Empty {}))
    }
}

/// `plugin.GRPCStdio`: newer hosts read a plugin's output over this stream.
/// proctor writes nothing to stdout after the handshake and its log lines go
/// to stderr, which the host reads from the process directly; the stream
/// stays open and silent until the plugin exits.
pub struct Stdio {
    pub shutdown: Shutdown,
}

#[tonic::async_trait]
impl GrpcStdio for Stdio {
    type StreamStdioStream = Outgoing<StdioData>;

    async fn stream_stdio(
        &self,
        _: Request<()>,
    ) -> Result<Response<Self::StreamStdioStream>, Status> {
        Ok(Response::new(
            self.shutdown.quiet_stream(futures::future::pending()),
        ))
    }
}
